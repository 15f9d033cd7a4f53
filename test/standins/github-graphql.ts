import { schema as published } from '@octokit/graphql-schema';
import { buildSchema, type DocumentNode, execute, type GraphQLSchema, parse, validate } from 'graphql';

let schema: GraphQLSchema | undefined;

/**
 * GitHub's GraphQL schema as published (npm `@octokit/graphql-schema`, `schema.graphql`), built
 * once per process (about a second).
 */
export function githubGraphQLSchema(): GraphQLSchema {
  schema ??= buildSchema(published.idl, { assumeValidSDL: true });
  return schema;
}

/** A GraphQL answer as GitHub sends it: `data`, or `errors` (HTTP 200 either way, as GitHub does). */
export interface GraphQLAnswer {
  data?: unknown;
  errors?: Array<{ message: string }>;
}

/**
 * Runs a GraphQL request against GitHub's published schema: the document must parse and validate
 * (fields, arguments, variables and their types as GitHub declares them), then it is executed with
 * `root` (plain objects and functions of their arguments, as graphql-js's default resolver reads
 * them). A field the stand-in does not hold resolves to null, which fails a non-null field loudly.
 */
export async function runGraphQL(
  body: { query?: unknown; variables?: unknown },
  root: { query: Record<string, unknown>; mutation: Record<string, unknown> },
): Promise<{ answer: GraphQLAnswer; problems: string[] }> {
  if (typeof body.query !== 'string')
    return { answer: { errors: [{ message: 'A query attribute must be specified' }] }, problems: ['no query'] };
  let document: DocumentNode;
  try {
    document = parse(body.query);
  } catch (e) {
    return { answer: { errors: [{ message: (e as Error).message }] }, problems: [(e as Error).message] };
  }
  const invalid = validate(githubGraphQLSchema(), document);
  if (invalid.length > 0)
    return { answer: { errors: invalid.map((e) => ({ message: e.message })) }, problems: invalid.map((e) => e.message) };
  const isMutation = document.definitions.some((d) => d.kind === 'OperationDefinition' && d.operation === 'mutation');
  const result = await execute({
    schema: githubGraphQLSchema(),
    document,
    rootValue: isMutation ? root.mutation : root.query,
    variableValues: (body.variables ?? {}) as Record<string, unknown>,
  });
  const errors = (result.errors ?? []).map((e) => ({ message: e.message }));
  return { answer: { data: result.data ?? null, ...(errors.length > 0 ? { errors } : {}) }, problems: errors.map((e) => e.message) };
}
