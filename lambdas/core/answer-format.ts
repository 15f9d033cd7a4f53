import { z } from 'zod';
import { ModelAnswerSchema, type Provider, type StructuredOutput, TestsAnswerSchema } from './contracts.js';
import { countTokens, TOKENIZER_OF } from './tokenizer.js';

/** A JSON Schema object (draft 2020-12 subset), as sent to a provider. */
export type JsonSchema = { [key: string]: unknown };

/**
 * The shape an answer must have, travelling with a model call so that a provider that can enforce it
 * does (Bedrock Converse: a forced tool whose input schema it is; OpenAI: `response_format` with a
 * strict `json_schema`). Providers that cannot ignore it and the prompt describes the shape instead.
 */
export interface AnswerFormat {
  /** The tool / schema name: letters, digits, `_` and `-`, at most 64 characters (both vendors' limit). */
  readonly name: string;
  /** What the answer is, for the model (the tool description). */
  readonly description: string;
  /**
   * A JSON Schema that OpenAI's strict mode accepts: every object lists all its properties in
   * `required` and has `additionalProperties: false`; an optional field is required and nullable
   * (`anyOf: [T, {type: 'null'}]`); only keywords strict mode supports. See {@link answerFormatOf}.
   */
  readonly schema: JsonSchema;
}

/**
 * JSON Schema keywords OpenAI's strict mode supports; any other is dropped (the zod parse of the
 * answer still checks it, e.g. `minLength`). Source: OpenAI "Structured model outputs", section
 * "Supported schemas", https://platform.openai.com/docs/guides/structured-outputs (checked 2026-11).
 */
const STRICT_KEYWORDS: ReadonlySet<string> = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'enum',
  'const',
  'anyOf',
  'description',
  'title',
  '$defs',
  '$ref',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minItems',
  'maxItems',
]);

/** A tool / schema name both vendors accept. */
const FORMAT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const isObject = (v: unknown): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Whether `schema` already admits `null` (then a `null` could not be told from an absent field). */
const admitsNull = (schema: JsonSchema): boolean =>
  schema.type === 'null' ||
  (Array.isArray(schema.type) && schema.type.includes('null')) ||
  (Array.isArray(schema.anyOf) && schema.anyOf.some((s) => isObject(s) && admitsNull(s)));

/** `schema` made strict-compatible, recursively (see {@link answerFormatOf}); `path` names it in errors. */
function strict(schema: JsonSchema, path: string): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (!STRICT_KEYWORDS.has(key)) continue;
    if (key === 'properties' && isObject(value)) {
      const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
      const properties: JsonSchema = {};
      for (const [name, prop] of Object.entries(value)) {
        if (!isObject(prop)) throw new Error(`answer format: ${path}.${name} is not a schema`);
        const inner = strict(prop, `${path}.${name}`);
        if (admitsNull(inner)) {
          throw new Error(
            `answer format: ${path}.${name} accepts null, which strict mode uses for an absent field; make it optional instead`,
          );
        }
        properties[name] = required.has(name) ? inner : { anyOf: [inner, { type: 'null' }] };
      }
      out.properties = properties;
      out.required = Object.keys(properties);
      out.additionalProperties = false;
    } else if (key === 'items' && isObject(value)) out.items = strict(value, `${path}[]`);
    else if (key === 'anyOf' && Array.isArray(value)) out.anyOf = value.map((s, i) => strict(s as JsonSchema, `${path}|${i}`));
    else if (key === '$defs' && isObject(value)) {
      out.$defs = Object.fromEntries(Object.entries(value).map(([k, s]) => [k, strict(s as JsonSchema, `$defs.${k}`)]));
    } else if (key !== 'required' && key !== 'additionalProperties') out[key] = value;
  }
  if (out.type === 'object' && !out.properties) {
    throw new Error(`answer format: ${path} is an object without properties, which strict mode cannot describe`);
  }
  return out;
}

/**
 * Builds an {@link AnswerFormat} from a zod schema: its JSON Schema (`z.toJSONSchema`, the parsed
 * output's shape, so a field with a default is required) made strict-compatible — every property
 * in `required`, the optional ones as `anyOf: [T, {type: 'null'}]`, `additionalProperties: false`
 * on every object, keywords strict mode does not support dropped (`default`, `minLength`,
 * `$schema`…). Read an answer back with {@link normalizeStructured} before the zod parse.
 *
 * @example
 * ```ts
 * const VERDICT_FORMAT = answerFormatOf(VerdictSchema, 'report_verdict', 'Report whether each finding holds.');
 * await gateway.complete({ ...call, answerFormat: VERDICT_FORMAT });
 * ```
 * @throws Error when `name` is not 1–64 letters, digits, `_` or `-`; when the root is not an object;
 *   when a field already accepts `null` (it would be read back as absent); when an object has no
 *   declared properties (a record)
 */
export function answerFormatOf(schema: z.ZodType, name: string, description: string): AnswerFormat {
  if (!FORMAT_NAME.test(name)) throw new Error(`answer format: name "${name}" must be 1-64 letters, digits, _ or -`);
  const json = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'throw' }) as JsonSchema;
  if (json.type !== 'object') throw new Error(`answer format ${name}: the root must be an object`);
  return { name, description, schema: strict(json, '(root)') };
}

/**
 * A structured answer with the `null`s strict mode puts in optional fields removed (an object
 * property whose value is `null` becomes absent), recursively, so the zod schema the format was
 * built from parses it. {@link answerFormatOf} refuses schemas where a `null` means something.
 *
 * @example normalizeStructured({ summary: 's', findings: [], document: null }) // → { summary: 's', findings: [] }
 */
export function normalizeStructured(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalizeStructured);
  if (!isObject(value)) return value;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = normalizeStructured(v);
  return out;
}

/**
 * The findings answer of a review agent ({@link ModelAnswerSchema}): `summary`, `findings[]` and,
 * for agents whose output is a document, the Markdown `document` (null otherwise).
 */
export const FINDINGS_FORMAT: AnswerFormat = answerFormatOf(
  ModelAnswerSchema,
  'report_review',
  'Report the review of the change: a short summary, the findings (an empty list when there are none) and, only when your instructions ask for a document, the Markdown document in "document" (null otherwise).',
);

/**
 * The answer of a `tests` agent ({@link TestsAnswerSchema}): `summary`, `findings[]` and the test
 * files to add, `files[]` of `{ path, content }` (an empty list when it writes none).
 */
export const TESTS_FORMAT: AnswerFormat = answerFormatOf(
  TestsAnswerSchema,
  'report_tests',
  'Report the tests written for the change: a short summary, the findings (an empty list when there are none) and the test files to add, each with its repository-relative path under the test folders and its complete content.',
);

/**
 * Tokens of the system prompt Claude adds when a tool is forced (`tool_choice` any / tool): the
 * largest count Anthropic lists for that choice (235–340 by model). Source: Anthropic, "Tool use
 * pricing and tokens", https://docs.anthropic.com/en/docs/tool-use-pricing-and-tokens (checked 2026-11-29).
 */
export const FORCED_TOOL_SYSTEM_TOKENS = 340;

/**
 * How each provider sends an answer format, so its input tokens are counted where they are billed:
 * `schema` — the schema travels with the request (a tool's input schema, a `json_schema` response
 * format); `forcedTool` — the provider adds its tool-use system prompt too.
 */
export const FORMAT_TRANSPORT: Record<Provider, (capability: StructuredOutput | undefined) => { schema: boolean; forcedTool: boolean }> = {
  bedrock: () => ({ schema: true, forcedTool: true }),
  openai: () => ({ schema: true, forcedTool: false }),
  'openai-compatible': (capability) => ({ schema: capability === 'json_schema', forcedTool: false }),
};

/**
 * Input tokens a provider bills for sending `format` with a request (its name, description and
 * schema, plus Claude's tool-use system prompt for a forced tool), counted with `family`'s
 * tokenizer; 0 when the model gets no schema (prompt-only and JSON-mode models).
 */
export function formatTokens(
  format: Pick<AnswerFormat, 'name' | 'description' | 'schema'> | undefined,
  provider: Provider,
  capability?: StructuredOutput,
  options: { margin?: boolean } = {},
): number {
  if (!format) return 0;
  const how = FORMAT_TRANSPORT[provider](capability);
  if (!how.schema) return 0;
  const family = TOKENIZER_OF[provider];
  const key = `${family}:${options.margin !== false}`;
  const counts = SCHEMA_TOKENS.get(format.schema) ?? new Map<string, number>();
  SCHEMA_TOKENS.set(format.schema, counts);
  let n = counts.get(key);
  if (n === undefined) {
    n = countTokens(`${format.name}\n${format.description}\n${JSON.stringify(format.schema)}`, family, options);
    counts.set(key, n);
  }
  return n + (how.forcedTool ? FORCED_TOOL_SYSTEM_TOKENS : 0);
}

/** Token counts of a format's schema by tokenizer family (a format is counted once per process). */
const SCHEMA_TOKENS = new WeakMap<object, Map<string, number>>();
