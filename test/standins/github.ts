import { createPublicKey, type KeyObject, randomBytes, randomUUID, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import ajvDraft04Module from 'ajv-draft-04';
import addFormatsModule from 'ajv-formats';
import { GitDataStandIn } from './github-git.js';
import { runGraphQL } from './github-graphql.js';

/*
 * GitHub's REST API description, as published by GitHub in `@octokit/openapi` (OpenAPI 3.0.3,
 * `generated/api.github.com.json`, 13 MB, schemas by `$ref`; the dereferenced variant is 73 MB).
 * Read once per process (about 200 ms); each operation's schemas are compiled on first use and kept.
 */

/** An OpenAPI parameter as the description gives it (after `$ref` resolution). */
interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: Record<string, unknown>;
}

/** An OpenAPI operation: the parts the stand-in reads. */
interface Operation {
  operationId: string;
  parameters?: ({ $ref: string } | Parameter)[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Record<string, unknown> }> };
  responses?: Record<string, { $ref?: string; content?: Record<string, { schema?: Record<string, unknown> }> }>;
}

interface Description {
  paths: Record<string, Record<string, Operation>>;
  components: { parameters: Record<string, Parameter>; responses: Record<string, unknown> };
}

/** One route of the description: its template split in segments, the operations by method. */
interface Route {
  template: string;
  segments: string[];
  literals: number;
  operations: Record<string, Operation>;
}

let sarifSchema: ValidateFunction | undefined;

/**
 * The problems of `log` against the SARIF 2.1.0 JSON schema (`sarif-2.1.0-rtm.5.json`, the last
 * 2.1.0 schema Microsoft published, as shipped in `@microsoft/jest-sarif`; JSON Schema draft-04,
 * hence `ajv-draft-04`), one line each; none when it validates.
 */
export function sarifSchemaErrors(log: unknown): string[] {
  if (!sarifSchema) {
    const file = createRequire(import.meta.url).resolve('@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json');
    // ajv-draft-04 is CommonJS: under NodeNext its default import is the Ajv class itself.
    const AjvDraft04 = ajvDraft04Module as unknown as typeof ajvDraft04Module.default;
    // unicodeRegExp: false — the schema's `language` pattern (`^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$`)
    // has a stray `]`, valid in a JavaScript regular expression only without the `u` flag.
    const ajv = new AjvDraft04({ allErrors: true, strict: false, unicodeRegExp: false });
    (addFormatsModule as unknown as (a: Ajv) => Ajv)(ajv as unknown as Ajv);
    sarifSchema = ajv.compile(JSON.parse(readFileSync(file, 'utf8'))) as unknown as ValidateFunction;
  }
  const validate = sarifSchema;
  return validate(log) ? [] : errorLines(validate.errors);
}

/** The id under which the whole description is known to ajv, so `#/components/...` refs resolve. */
const SPEC_ID = 'https://api.github.com/openapi.json';

interface Loaded {
  spec: Description;
  routes: Route[];
  ajv: Ajv;
  compiled: Map<string, ValidateFunction>;
}

let loaded: Loaded | undefined;

/** The description, its routes and the ajv that compiles its schemas; built on the first call of the process. */
function description(): Loaded {
  if (loaded) return loaded;
  const file = createRequire(import.meta.url).resolve('@octokit/openapi/generated/api.github.com.json');
  const spec = JSON.parse(readFileSync(file, 'utf8')) as Description;
  const routes: Route[] = Object.entries(spec.paths).map(([template, operations]) => {
    const segments = template.split('/').slice(1);
    return { template, segments, literals: segments.filter((s) => !s.startsWith('{')).length, operations };
  });
  // OpenAPI 3.0 keywords ajv does not know (`example`, `x-github`, `discriminator`…) are ignored (strict: false);
  // `nullable` is understood by ajv itself.
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  // ajv-formats is CommonJS; its default export is the function under NodeNext.
  const addFormats = addFormatsModule as unknown as (a: Ajv) => Ajv;
  addFormats(ajv);
  ajv.addSchema(rebase({ components: spec.components }), SPEC_ID);
  loaded = { spec, routes, ajv, compiled: new Map() };
  return loaded;
}

/** A JSON pointer token (RFC 6901). */
const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** Compiles `schema` (a part of the description) once, with its `#/components/...` refs resolved against the description. */
function compile(key: string, schema: Record<string, unknown>): ValidateFunction {
  const d = description();
  let v = d.compiled.get(key);
  if (!v) {
    v = d.ajv.compile({ $id: `${SPEC_ID}/${pointer(key)}`, ...rebase(schema) });
    d.compiled.set(key, v);
  }
  return v;
}

/**
 * The schema as JSON Schema: local refs (`#/components/...`) made absolute against the description,
 * and OpenAPI 3.0's `nullable: true` turned into a `null` type (ajv takes `nullable` only beside a
 * `type`, and never adds `null` to an `enum`, where GitHub's descriptions put it: `conclusion`, `start_side`).
 */
function rebase(schema: unknown): Record<string, unknown> {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (!node || typeof node !== 'object') return node;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node))
      out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#') ? `${SPEC_ID}${v}` : walk(v);
    if (typeof out.nullable !== 'boolean') return out;
    const { nullable, ...rest } = out;
    if (!nullable) return rest;
    if (typeof rest.type === 'string') {
      return { ...rest, type: [rest.type, 'null'], ...(Array.isArray(rest.enum) ? { enum: [...rest.enum, null] } : {}) };
    }
    return { anyOf: [rest, { type: 'null' }] };
  };
  return walk(schema) as Record<string, unknown>;
}

/** `$ref` of a parameter resolved against `components.parameters`. */
function parameter(p: { $ref: string } | Parameter): Parameter {
  if ('$ref' in p) {
    const found = description().spec.components.parameters[p.$ref.replace('#/components/parameters/', '')];
    if (!found) throw new Error(`the description has no parameter ${p.$ref}`);
    return found;
  }
  return p;
}

/** ajv errors as `path message` lines (path `/` for the whole value). */
function errorLines(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map(
    (e) =>
      `${e.instancePath || '/'} ${e.message ?? 'is invalid'}${e.params && 'allowedValues' in e.params ? ` (${(e.params.allowedValues as unknown[]).join(', ')})` : ''}`,
  );
}

/**
 * Fields of `data` that `schema` does not name, for objects the description closes by listing
 * their properties (no `additionalProperties`): GitHub ignores them, so a misspelt field would
 * otherwise pass silently. Walks nested objects and array items.
 */
function unknownFields(schema: Record<string, unknown> | undefined, data: unknown, at = ''): string[] {
  if (!schema || data === null || typeof data !== 'object') return [];
  if (Array.isArray(data)) {
    const items = schema.items as Record<string, unknown> | undefined;
    return data.flatMap((item, i) => unknownFields(items, item, `${at}/${i}`));
  }
  const properties = schema.properties as Record<string, Record<string, unknown>> | undefined;
  if (!properties || schema.additionalProperties !== undefined) return [];
  const branches = ['anyOf', 'oneOf', 'allOf'].flatMap((k) => (schema[k] as Record<string, unknown>[] | undefined) ?? []);
  const known = new Set([...Object.keys(properties), ...branches.flatMap((b) => Object.keys((b.properties as object | undefined) ?? {}))]);
  return Object.entries(data).flatMap(([k, v]) =>
    known.has(k) ? unknownFields(properties[k], v, `${at}/${k}`) : [`${at}/${k} is not a field of this operation`],
  );
}

/** A request as the stand-in received it, matched to its operation. */
export interface GitHubRequest {
  /** The description's operation id, e.g. `pulls/create-review`; `undefined` for an unknown route. */
  readonly operationId: string | undefined;
  readonly method: string;
  /** The path as sent, without the query. */
  readonly path: string;
  /** Path parameters, decoded; integers as numbers. */
  readonly params: Record<string, string | number>;
  /** Query parameters; integers as numbers. */
  readonly query: Record<string, string | number>;
  readonly body: unknown;
  readonly headers: IncomingMessage['headers'];
}

/** An answer: status, JSON body (a string is sent as text), extra headers. */
export interface GitHubAnswer {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

/** A changed file of a seeded pull request (`GET .../pulls/{n}/files`), with its unified-diff patch. */
export interface SeededFile {
  readonly filename: string;
  readonly status: 'added' | 'removed' | 'modified' | 'renamed' | 'copied' | 'changed' | 'unchanged';
  /** The unified diff of the file (hunks only); absent for a binary file. */
  readonly patch?: string;
  /** @default - counted from the patch */
  readonly additions?: number;
  /** @default - counted from the patch */
  readonly deletions?: number;
  readonly previous_filename?: string;
}

/** A pull request to seed with {@link GitHubStandIn.addPullRequest}. */
export interface SeededPullRequest {
  /** `owner/name` */
  readonly repo: string;
  readonly number: number;
  readonly headSha: string;
  readonly baseSha: string;
  readonly files: readonly SeededFile[];
  /** @default `PR #<number>` */
  readonly title?: string;
  /** @default 'octocat' */
  readonly author?: string;
  /** @default 'feature' */
  readonly headRef?: string;
  /** @default 'main' */
  readonly baseRef?: string;
}

/** A comparison to seed with {@link GitHubStandIn.addComparison} (`GET /repos/{o}/{r}/compare/{base}...{head}`). */
export interface SeededComparison {
  readonly repo: string;
  /** The base and head as the request names them (refs or SHAs). */
  readonly base: string;
  readonly head: string;
  readonly mergeBaseSha: string;
  readonly files: readonly SeededFile[];
}

type Json = Record<string, unknown>;
type Handler = (req: GitHubRequest, repo: string) => GitHubAnswer;

/**
 * Lines a review comment may be placed on, per side, from a unified-diff patch (RIGHT: added and
 * context; LEFT: removed and context), each with the index of its hunk (a multi-line comment must
 * stay in one). A patch's trailing line break is not a line.
 */
export function commentableLines(patch: string): { LEFT: Map<number, number>; RIGHT: Map<number, number> } {
  const sides = { LEFT: new Map<number, number>(), RIGHT: new Map<number, number>() };
  let left = 0;
  let right = 0;
  let hunk = 0;
  const lines = patch.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const line of lines) {
    const h = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (h) {
      left = Number(h[1]);
      right = Number(h[2]);
      hunk++;
    } else if (line.startsWith('+')) sides.RIGHT.set(right++, hunk);
    else if (line.startsWith('-')) sides.LEFT.set(left++, hunk);
    else if (line.startsWith(' ') || line === '') {
      sides.LEFT.set(left++, hunk);
      sides.RIGHT.set(right++, hunk);
    }
  }
  return sides;
}

const HOST = 'https://github.com';
const API = 'https://api.github.com';
const NOW = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** A `simple-user` as GitHub returns it. */
function user(login: string, id = 1): Json {
  const url = `${API}/users/${encodeURIComponent(login)}`;
  return {
    login,
    id,
    node_id: `U_${id}`,
    avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
    gravatar_id: '',
    url,
    html_url: `${HOST}/${encodeURIComponent(login)}`,
    followers_url: `${url}/followers`,
    following_url: `${url}/following{/other_user}`,
    gists_url: `${url}/gists{/gist_id}`,
    starred_url: `${url}/starred{/owner}{/repo}`,
    subscriptions_url: `${url}/subscriptions`,
    organizations_url: `${url}/orgs`,
    repos_url: `${url}/repos`,
    events_url: `${url}/events{/privacy}`,
    received_events_url: `${url}/received_events`,
    type: login.endsWith('[bot]') ? 'Bot' : 'User',
    site_admin: false,
  };
}

/** The 422 GitHub answers for a request it understood but will not do. */
const unprocessable = (error: string, documentation = 'https://docs.github.com/rest'): GitHubAnswer => ({
  status: 422,
  body: { message: 'Unprocessable Entity', errors: [error], documentation_url: documentation, status: '422' },
});
const notFound = (what = 'Not Found'): GitHubAnswer => ({
  status: 404,
  body: { message: what, documentation_url: 'https://docs.github.com/rest', status: '404' },
});

/** Most annotations a check run create or update takes. Source: the Checks API description of `output.annotations` ("a maximum of 50 per API request"). */
const MAX_ANNOTATIONS = 50;

/**
 * A GitHub REST API stand-in on 127.0.0.1 for tests: give its base URL to Octokit as `baseUrl`.
 *
 * **What it validates**, for every request, against GitHub's official OpenAPI description
 * (`@octokit/openapi`, `api.github.com.json`): the route and method exist; every required path and
 * query parameter is there and each path/query parameter has the description's type (integers,
 * enums); the JSON body matches the operation's request-body schema (ajv, with formats) and names no
 * field the operation does not have. A request that does not match is still answered (404 for an
 * unknown route, 422 for a bad body or parameter) and leaves a line in {@link violations} naming the
 * operation id and the ajv error path, so a test asserts `violations` is empty.
 *
 * **What it keeps**, in plain maps per repository: issue comments, pull request reviews and their
 * review comments (with `in_reply_to_id` threads), reactions, check runs by head SHA, refs, file
 * contents at a ref, seeded pull requests with their files, comparisons. Review comments are placed
 * like GitHub places them: a line outside the pull request's diff answers 422 "Line could not be
 * resolved" (RIGHT: added and context lines of the patch; LEFT: removed and context). A check run
 * create or update with more than 50 annotations answers 422.
 *
 * Operations with no handler are validated, then answered 404 `{ message: 'Not Found (stand-in: not
 * implemented)' }`; {@link respond} scripts one operation's answer for a test.
 *
 * @example
 * ```ts
 * const github = new GitHubStandIn();
 * const octokit = new Octokit({ baseUrl: await github.start() });
 * github.addPullRequest({ repo: 'acme/app', number: 7, headSha, baseSha, files: [{ filename: 'a.ts', status: 'modified', patch }] });
 * await octokit.rest.pulls.createReview({ owner: 'acme', repo: 'app', pull_number: 7, event: 'COMMENT', body: 'x' });
 * expect(github.violations).toEqual([]);
 * await github.stop();
 * ```
 */
export class GitHubStandIn {
  /** One line per request that does not match the description: `<METHOD> <path>: <operation id> <problem>`. */
  readonly violations: string[] = [];
  /** One line per answer that does not match the operation's response schema (only with `checkResponses`). */
  readonly responseViolations: string[] = [];
  /** Every request received, in order. */
  readonly requests: GitHubRequest[] = [];

  private server: Server | undefined;
  private nextId = 1000;
  private readonly pulls = new Map<string, SeededPullRequest & { id: number }>();
  private readonly issueComments = new Map<string, Json[]>();
  private readonly pullReviews = new Map<string, Json[]>();
  private readonly reviewComments = new Map<string, Json[]>();
  private readonly reactionsByComment = new Map<string, Json[]>();
  private readonly apps = new Map<number, { key: KeyObject; installationId: number }>();
  private readonly collaborators = new Map<string, string>();
  /** Review threads resolved, by the id of their first comment. */
  private readonly resolvedThreads = new Set<number>();
  private readonly issuedTokens = new Set<string>();
  private readonly runs = new Map<string, Json[]>();
  private readonly refsByRepo = new Map<string, string>();
  private readonly contents = new Map<string, string>();
  private readonly comparisons = new Map<string, SeededComparison>();
  private readonly sarifs = new Map<string, Array<{ id: string; commitSha: string; ref: string; sarif: unknown }>>();
  private readonly scripted = new Map<string, (req: GitHubRequest) => GitHubAnswer | undefined>();
  private readonly handlers: Record<string, Handler> = {
    'issues/list-comments': (req, repo) => this.page(req, this.issueComments.get(`${repo}#${req.params.issue_number}`) ?? []),
    'issues/create-comment': (req, repo) => this.createIssueComment(req, repo),
    'issues/update-comment': (req, repo) => this.updateIssueComment(req, repo),
    'reactions/list-for-pull-request-review-comment': (req, repo) =>
      this.reviewComment(repo, Number(req.params.comment_id))
        ? this.page(req, this.reactionsByComment.get(`${repo}#${req.params.comment_id}`) ?? [])
        : notFound(),
    'pulls/get': (req, repo) => this.pullRequestAnswer(repo, Number(req.params.pull_number)),
    'apps/create-installation-access-token': (req) => this.installationToken(req),
    'repos/get-collaborator-permission-level': (req, repo) => {
      const permission = this.collaborators.get(`${repo}#${String(req.params.username).toLowerCase()}`);
      if (!permission) return notFound();
      const role = permission === 'admin' ? 'admin' : permission === 'write' || permission === 'maintain' ? 'write' : 'read';
      return { status: 200, body: { permission: role, role_name: permission, user: user(String(req.params.username)) } };
    },
    'pulls/list-files': (req, repo) => {
      const pr = this.pulls.get(`${repo}#${req.params.pull_number}`);
      return pr
        ? this.page(
            req,
            pr.files.map((f) => diffEntry(repo, pr.headSha, f)),
          )
        : notFound();
    },
    'pulls/create-review': (req, repo) => this.createReview(req, repo),
    'pulls/list-reviews': (req, repo) => this.page(req, this.pullReviews.get(`${repo}#${req.params.pull_number}`) ?? []),
    'pulls/list-review-comments': (req, repo) => this.page(req, this.reviewComments.get(`${repo}#${req.params.pull_number}`) ?? []),
    'pulls/create-reply-for-review-comment': (req, repo) => this.reply(req, repo),
    'checks/create': (req, repo) => this.createCheckRun(req, repo),
    'checks/update': (req, repo) => this.updateCheckRun(req, repo),
    'checks/list-for-ref': (req, repo) => {
      const sha = this.resolve(repo, String(req.params.ref));
      const all = (sha ? this.runs.get(`${repo}@${sha}`) : undefined) ?? [];
      const named = req.query.check_name ? all.filter((r) => r.name === req.query.check_name) : all;
      const perPage = Number(req.query.per_page ?? 30);
      const page = Number(req.query.page ?? 1);
      return { status: 200, body: { total_count: named.length, check_runs: named.slice((page - 1) * perPage, page * perPage) } };
    },
    'repos/get-content': (req, repo) => this.content(req, repo),
    'repos/get-commit': (req, repo) => {
      const sha = this.resolve(repo, String(req.params.ref));
      return sha ? { status: 200, body: commit(repo, sha) } : unprocessable(`No commit found for SHA: ${req.params.ref}`);
    },
    'repos/compare-commits-with-basehead': (req, repo) => this.compare(req, repo),
    'code-scanning/upload-sarif': (req, repo) => this.uploadSarif(req, repo),
    'pulls/create': (req, repo) => this.createPull(req, repo),
    'pulls/list': (req, repo) => {
      const owner = repo.split('/')[0];
      const open = [...this.pulls.values()].filter(
        (p) =>
          p.repo === repo &&
          (req.query.head === undefined || `${owner}:${p.headRef ?? 'feature'}` === req.query.head) &&
          (req.query.base === undefined || (p.baseRef ?? 'main') === req.query.base),
      );
      return this.page(
        req,
        open.map((p) => ({ ...pullRequest(p, p.id), draft: this.drafts.has(`${repo}#${p.number}`) })),
      );
    },
  };

  /** The Git Data API with state (blobs, trees, commits, refs): see {@link GitDataStandIn}. */
  readonly git = new GitDataStandIn((repo, ref) => this.resolve(repo, ref));
  /** Pull requests opened as drafts through `POST …/pulls`. */
  private readonly drafts = new Set<string>();

  /** The pull requests of `repo` (seeded and opened through the API), with their draft flag. */
  pullRequestsOf(repo: string): Array<{ number: number; head: string; base: string; headSha: string; draft: boolean; title: string }> {
    return [...this.pulls.values()]
      .filter((p) => p.repo === repo)
      .map((p) => ({
        number: p.number,
        head: p.headRef ?? 'feature',
        base: p.baseRef ?? 'main',
        headSha: p.headSha,
        draft: this.drafts.has(`${repo}#${p.number}`),
        title: p.title ?? '',
      }));
  }

  /**
   * `POST …/pulls`: the head must be a branch (created through the Git Data API or seeded) and the
   * base a known branch (a seeded ref or a pull request's head or base branch); 422 "A pull request
   * already exists for <owner>:<head>." when one is open.
   */
  private createPull(req: GitHubRequest, repo: string): GitHubAnswer {
    const body = req.body as { title?: string; head: string; base: string; draft?: boolean };
    const docs = 'https://docs.github.com/rest/pulls/pulls#create-a-pull-request';
    const owner = repo.split('/')[0];
    const head = body.head.includes(':') ? (body.head.split(':')[1] ?? body.head) : body.head;
    const headSha = this.git.branch(repo, head);
    if (!headSha) return unprocessable(`head: invalid (no branch ${head})`, docs);
    const seeded = [...this.pulls.values()].filter((p) => p.repo === repo);
    const baseSha =
      this.git.branch(repo, body.base) ??
      seeded.find((p) => (p.headRef ?? 'feature') === body.base)?.headSha ??
      seeded.find((p) => (p.baseRef ?? 'main') === body.base)?.baseSha;
    if (!baseSha) return unprocessable(`base: invalid (no branch ${body.base})`, docs);
    if (seeded.some((p) => (p.headRef ?? 'feature') === head && p.headSha !== undefined && this.drafts.has(`${repo}#${p.number}`))) {
      return unprocessable(`A pull request already exists for ${owner}:${head}.`, docs);
    }
    const number = Math.max(0, ...seeded.map((p) => p.number)) + 1;
    this.addPullRequest({ repo, number, headSha, baseSha, files: [], title: body.title ?? head, headRef: head, baseRef: body.base });
    if (body.draft) this.drafts.add(`${repo}#${number}`);
    const pr = this.pulls.get(`${repo}#${number}`);
    return pr ? { status: 201, body: { ...pullRequest(pr, pr.id), draft: body.draft === true } } : notFound();
  }

  constructor(private readonly options: { readonly checkResponses?: boolean; readonly login?: string } = {}) {}

  /** Binds 127.0.0.1 on a free port and loads the description. @returns the base URL for Octokit's `baseUrl` */
  async start(): Promise<string> {
    description();
    this.server = createServer((req, res) => {
      this.serve(req, res).catch((e: unknown) => {
        this.violations.push(`${req.method} ${req.url}: stand-in error ${(e as Error).stack ?? String(e)}`);
        send(res, { status: 500, body: { message: 'stand-in error' } });
      });
    });
    const server = this.server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Closes the server. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
  }

  /** Seeds a pull request and its changed files (the lines review comments may be placed on). */
  addPullRequest(pr: SeededPullRequest): void {
    this.pulls.set(`${pr.repo}#${pr.number}`, { ...pr, id: this.pulls.get(`${pr.repo}#${pr.number}`)?.id ?? this.id() });
    this.refsByRepo.set(`${pr.repo}@${pr.headSha}`, pr.headSha);
    this.refsByRepo.set(`${pr.repo}@${pr.baseSha}`, pr.baseSha);
  }

  /** Seeds a ref (branch, tag or SHA) naming a commit. */
  addRef(repo: string, ref: string, sha: string): void {
    this.refsByRepo.set(`${repo}@${ref}`, sha);
    this.refsByRepo.set(`${repo}@${sha}`, sha);
  }

  /** Seeds a file's content at a ref (`GET /repos/{o}/{r}/contents/{path}?ref=`). */
  addFile(repo: string, ref: string, path: string, content: string): void {
    this.contents.set(`${repo}@${ref}:${path}`, content);
  }

  /** Seeds a comparison; GitHub lists its files on the first page only (up to 300), as it documents. */
  addComparison(c: SeededComparison): void {
    this.comparisons.set(`${c.repo}@${c.base}...${c.head}`, c);
  }

  /** Seeds a reaction on a pull request review comment. */
  addReaction(
    repo: string,
    commentId: number,
    login: string,
    content: '+1' | '-1' | 'laugh' | 'confused' | 'heart' | 'hooray' | 'rocket' | 'eyes',
  ): void {
    const id = this.id();
    const list = this.reactionsByComment.get(`${repo}#${commentId}`) ?? [];
    list.push({ id, node_id: `REA_${id}`, user: user(login, id), content, created_at: NOW() });
    this.reactionsByComment.set(`${repo}#${commentId}`, list);
  }

  /** Seeds a collaborator's permission on a repository (`GET …/collaborators/{username}/permission`). */
  addCollaborator(repo: string, login: string, permission: 'admin' | 'maintain' | 'write' | 'triage' | 'read'): void {
    this.collaborators.set(`${repo}#${login.toLowerCase()}`, permission);
  }

  /**
   * Registers a GitHub App (its public key, as GitHub keeps it) installed as `installationId`.
   * From then on the stand-in behaves as GitHub does for check runs: creating or updating one needs
   * an installation token of an App (`POST /app/installations/{id}/access_tokens`, authenticated
   * with the App's RS256 JWT); any other credential gets 403 "You must authenticate via a GitHub App."
   */
  addApp(appId: number, publicKeyPem: string, installationId: number): void {
    this.apps.set(appId, { key: createPublicKey(publicKeyPem), installationId });
  }

  /** Installation tokens issued so far. */
  get installationTokensIssued(): number {
    return this.issuedTokens.size;
  }

  /**
   * Seeds a person's reply to a pull request review comment (as the web UI posts it), with their
   * `author_association` (MEMBER: write access).
   */
  addReviewReply(repo: string, pr: number, commentId: number, login: string, body: string, association = 'MEMBER'): void {
    const list = this.reviewComments.get(`${repo}#${pr}`) ?? [];
    const parent = list.find((c) => c.id === commentId);
    if (!parent) throw new Error(`no review comment ${commentId} on ${repo}#${pr}`);
    list.push(
      this.newReviewComment(repo, pr, this.id(), String(parent.commit_id), {
        path: parent.path,
        body,
        diff_hunk: parent.diff_hunk,
        in_reply_to_id: parent.id,
        ...(parent.line !== undefined ? { line: parent.line, original_line: parent.line, side: parent.side } : {}),
        start_line: null,
        original_start_line: null,
        start_side: null,
        subject_type: 'line',
        user: user(login, this.id()),
        author_association: association,
      }),
    );
    this.reviewComments.set(`${repo}#${pr}`, list);
  }

  /**
   * Scripts the answer of one operation (by operation id) from now on; the request is still
   * validated. The script answers `undefined` to fall back to the stand-in's handler.
   */
  respond(operationId: string, script: (req: GitHubRequest) => GitHubAnswer | undefined): void {
    this.scripted.set(operationId, script);
  }

  /** Issue comments of an issue or pull request, oldest first. */
  comments(repo: string, issue: number): readonly Json[] {
    return this.issueComments.get(`${repo}#${issue}`) ?? [];
  }

  /** Reviews of a pull request, oldest first. */
  reviews(repo: string, pr: number): readonly Json[] {
    return this.pullReviews.get(`${repo}#${pr}`) ?? [];
  }

  /** Review comments of a pull request (inline, replies included), oldest first. */
  reviewCommentsOf(repo: string, pr: number): readonly Json[] {
    return this.reviewComments.get(`${repo}#${pr}`) ?? [];
  }

  /** Check runs of a commit, oldest first. */
  checkRuns(repo: string, sha: string): readonly Json[] {
    return this.runs.get(`${repo}@${sha}`) ?? [];
  }

  /** SARIF uploads of a repository, oldest first, with the log decoded (base64, then gunzip, then JSON). */
  sarifUploads(repo: string): ReadonlyArray<{ id: string; commitSha: string; ref: string; sarif: unknown }> {
    return this.sarifs.get(repo) ?? [];
  }

  /**
   * `POST /repos/{o}/{r}/code-scanning/sarifs`: the `sarif` field must be a gzip-compressed SARIF
   * log, base64-encoded, valid against the SARIF 2.1.0 schema (GitHub answers 400 otherwise) and at
   * most 10 MB compressed (413); answers 202 with the upload's id and status URL.
   * Source: https://docs.github.com/en/rest/code-scanning/code-scanning#upload-an-analysis-as-sarif-data (2026-11).
   */
  private uploadSarif(req: GitHubRequest, repo: string): GitHubAnswer {
    const body = req.body as { commit_sha: string; ref: string; sarif: string };
    const zipped = Buffer.from(body.sarif, 'base64');
    if (zipped.length > 10 * 1024 * 1024) return { status: 413, body: { message: 'Payload Too Large', status: '413' } };
    let sarif: unknown;
    try {
      sarif = JSON.parse(gunzipSync(zipped).toString('utf8'));
    } catch (e) {
      this.violations.push(`POST ${req.path}: the sarif field is not base64 of a gzip-compressed JSON file (${(e as Error).message})`);
      return { status: 400, body: { message: 'Invalid SARIF: not gzip-compressed, base64-encoded JSON', status: '400' } };
    }
    const problems = sarifSchemaErrors(sarif);
    if (problems.length > 0) {
      this.violations.push(`POST ${req.path}: the SARIF log does not validate against the 2.1.0 schema: ${problems.join('; ')}`);
      return { status: 400, body: { message: `Invalid SARIF: ${problems.join('; ')}`, status: '400' } };
    }
    const id = randomUUID();
    const list = this.sarifs.get(repo) ?? [];
    list.push({ id, commitSha: body.commit_sha, ref: body.ref, sarif });
    this.sarifs.set(repo, list);
    return { status: 202, body: { id, url: `${API}/repos/${repo}/code-scanning/sarifs/${id}` } };
  }

  /**
   * `POST /app/installations/{installation_id}/access_tokens`: the `Authorization: Bearer` JWT must
   * be RS256-signed by a registered App's key, name it as `iss`, be current (`iat` ≤ now + 60 s,
   * `exp` > now, at most 10 minutes long) and the installation must be that App's.
   * Source: https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app (2026-11).
   */
  private installationToken(req: GitHubRequest): GitHubAnswer {
    const unauthorized = (why: string): GitHubAnswer => {
      this.violations.push(`POST ${req.path}: ${why}`);
      return { status: 401, body: { message: `A JSON web token could not be decoded (${why})`, status: '401' } };
    };
    const jwt = /^bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''))?.[1];
    const [h, p, sig] = jwt?.split('.') ?? [];
    if (!h || !p || !sig) return unauthorized('no Bearer JWT');
    let payload: { iss?: unknown; iat?: number; exp?: number };
    try {
      const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { alg?: string };
      if (header.alg !== 'RS256') return unauthorized(`alg ${String(header.alg)}, not RS256`);
      payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    } catch {
      return unauthorized('not a JWT');
    }
    const app = this.apps.get(Number(payload.iss));
    if (!app) return unauthorized(`no App ${String(payload.iss)}`);
    if (!verify('RSA-SHA256', Buffer.from(`${h}.${p}`), app.key, Buffer.from(sig, 'base64url'))) return unauthorized('bad signature');
    const now = Math.floor(Date.now() / 1000);
    if (typeof payload.iat !== 'number' || typeof payload.exp !== 'number') return unauthorized('no iat or exp');
    if (payload.iat > now + 60 || payload.exp <= now || payload.exp - payload.iat > 600) return unauthorized('expired or too long');
    if (Number(req.params.installation_id) !== app.installationId) return { status: 404, body: { message: 'Not Found', status: '404' } };
    const token = `ghs_${randomBytes(18).toString('hex')}`;
    this.issuedTokens.add(token);
    return {
      status: 201,
      body: {
        token,
        expires_at: new Date(Date.now() + 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        permissions: { checks: 'write', contents: 'read', issues: 'write', pull_requests: 'write' },
        repository_selection: 'all',
      },
    };
  }

  /**
   * The GraphQL root over the stand-in's state: `repository.pullRequest.reviewThreads` (a thread per
   * top-level review comment, `PRRT_<its id>`, with `isResolved` and its comments' `fullDatabaseId`) and
   * the `resolveReviewThread` mutation. Source: https://docs.github.com/en/graphql/reference/mutations#resolvereviewthread (2026-11).
   */
  private graphqlRoot(): { query: Record<string, unknown>; mutation: Record<string, unknown> } {
    const threadsOf = (repo: string, n: number) => {
      const all = this.reviewComments.get(`${repo}#${n}`) ?? [];
      return all
        .filter((c) => c.in_reply_to_id === undefined || c.in_reply_to_id === null)
        .map((c) => ({
          id: `PRRT_${c.id as number}`,
          isResolved: this.resolvedThreads.has(c.id as number),
          comments: ({ first }: { first?: number }) => ({
            nodes: [c, ...all.filter((r) => r.in_reply_to_id === c.id)]
              .slice(0, first ?? 100)
              .map((x) => ({ fullDatabaseId: String(x.id) })),
          }),
        }));
    };
    return {
      query: {
        repository: ({ owner, name }: { owner: string; name: string }) => ({
          pullRequest: ({ number }: { number: number }) =>
            this.pulls.has(`${owner}/${name}#${number}`)
              ? {
                  reviewThreads: ({ first, after }: { first?: number; after?: string }) => {
                    const threads = threadsOf(`${owner}/${name}`, number);
                    const start = after ? Number(after) : 0;
                    const page = threads.slice(start, start + (first ?? 100));
                    const end = start + page.length;
                    return { nodes: page, pageInfo: { hasNextPage: end < threads.length, endCursor: String(end) } };
                  },
                }
              : null,
        }),
      },
      mutation: {
        resolveReviewThread: ({ input }: { input: { threadId: string } }) => {
          const id = Number(/^PRRT_(\d+)$/.exec(input.threadId)?.[1]);
          const known = [...this.reviewComments.values()].some((list) => list.some((c) => c.id === id));
          if (!known) throw new Error(`Could not resolve to a node with the global id of '${input.threadId}'`);
          this.resolvedThreads.add(id);
          return { thread: { id: input.threadId, isResolved: true } };
        },
      },
    };
  }

  /** Marks the thread of review comment `commentId` resolved (as a person does in the web UI). */
  resolveThreadOf(commentId: number): void {
    this.resolvedThreads.add(commentId);
  }

  /** Whether the thread of review comment `commentId` is resolved. */
  isThreadResolved(commentId: number): boolean {
    return this.resolvedThreads.has(commentId);
  }

  private id(): number {
    return this.nextId++;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = (req.method ?? 'GET').toLowerCase();
    const raw = await readBody(req);
    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        this.violations.push(`${method.toUpperCase()} ${url.pathname}: body is not JSON`);
        send(res, { status: 400, body: { message: 'Problems parsing JSON' } });
        return;
      }
    }
    const where = `${method.toUpperCase()} ${url.pathname}`;
    if (url.pathname === '/graphql' && method === 'post') {
      const { answer, problems } = await runGraphQL((body ?? {}) as { query?: unknown; variables?: unknown }, this.graphqlRoot());
      for (const p of problems) this.violations.push(`${where}: ${p}`);
      this.requests.push({ operationId: 'graphql', method, path: url.pathname, params: {}, query: {}, body, headers: req.headers });
      send(res, { status: 200, body: answer as Json });
      return;
    }
    const match = matchRoute(url.pathname);
    const operation = match?.route.operations[method];
    const query: Record<string, string> = Object.fromEntries(url.searchParams);
    if (!match || !operation) {
      this.violations.push(
        match
          ? `${where}: the route ${match.route.template} has no ${method.toUpperCase()} operation`
          : `${where}: no such route in GitHub's REST API`,
      );
      this.requests.push({
        operationId: undefined,
        method,
        path: url.pathname,
        params: match?.params ?? {},
        query,
        body,
        headers: req.headers,
      });
      send(res, notFound());
      return;
    }
    const op = operation.operationId;
    const problems = this.validate(operation, match.params, query, body);
    const request: GitHubRequest = {
      operationId: op,
      method,
      path: url.pathname,
      params: typed(operation, 'path', match.params),
      query: typed(operation, 'query', query),
      body,
      headers: req.headers,
    };
    this.requests.push(request);
    if (problems.length > 0) {
      for (const p of problems) this.violations.push(`${where}: ${op} ${p}`);
      send(res, { status: 422, body: { message: 'Invalid request.', errors: problems, status: '422' } });
      return;
    }
    const repo = `${match.params.owner}/${match.params.repo}`;
    // GitHub lets only GitHub Apps write check runs.
    // Source: https://docs.github.com/en/rest/checks/runs#create-a-check-run (2026-11)
    if (this.apps.size > 0 && (op === 'checks/create' || op === 'checks/update')) {
      const token = /^(?:token|bearer)\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''))?.[1];
      if (!token || !this.issuedTokens.has(token)) {
        send(res, { status: 403, body: { message: 'You must authenticate via a GitHub App.', status: '403' } });
        return;
      }
    }
    const handler = this.handlers[op] ?? this.git.handler(op);
    const answer =
      this.scripted.get(op)?.(request) ?? (handler ? handler(request, repo) : notFound('Not Found (stand-in: not implemented)'));
    if (this.options.checkResponses && answer.status < 300 && typeof answer.body !== 'string') this.checkResponse(where, operation, answer);
    send(res, answer);
  }

  /** The request's problems against the operation: parameters (presence, type) and body (schema, unknown fields). */
  private validate(operation: Operation, path: Record<string, string>, query: Record<string, string>, body: unknown): string[] {
    const op = operation.operationId;
    const problems: string[] = [];
    const params = (operation.parameters ?? []).map(parameter);
    for (const p of params) {
      if (p.in !== 'path' && p.in !== 'query') continue;
      const value = (p.in === 'path' ? path : query)[p.name];
      if (value === undefined) {
        if (p.required) problems.push(`misses the required ${p.in} parameter ${p.name}`);
        continue;
      }
      if (!p.schema) continue;
      const check = compile(`${op}/${p.in}/${p.name}`, p.schema);
      if (!check(coerce(p.schema, value)))
        problems.push(`${p.in} parameter ${p.name}=${JSON.stringify(value)}: ${errorLines(check.errors).join('; ')}`);
    }
    for (const name of Object.keys(query)) {
      if (!params.some((p) => p.in === 'query' && p.name === name)) problems.push(`has no query parameter ${name}`);
    }
    const schema = operation.requestBody?.content?.['application/json']?.schema;
    if (body === undefined) {
      if (operation.requestBody?.required) problems.push('misses its required body');
    } else if (!schema) problems.push('takes no JSON body');
    else {
      const check = compile(`${op}/body`, schema);
      if (!check(body)) problems.push(...errorLines(check.errors).map((e) => `body ${e}`));
      problems.push(...unknownFields(schema, body).map((e) => `body ${e}`));
    }
    return problems;
  }

  /** Records where an answer does not match the operation's response schema for its status. */
  private checkResponse(where: string, operation: Operation, answer: GitHubAnswer): void {
    let response = operation.responses?.[String(answer.status)];
    if (response?.$ref)
      response = description().spec.components.responses[response.$ref.replace('#/components/responses/', '')] as typeof response;
    const schema = response?.content?.['application/json']?.schema;
    if (!schema) {
      if (answer.body !== undefined)
        this.responseViolations.push(`${where}: ${operation.operationId} has no ${answer.status} JSON response`);
      return;
    }
    const check = compile(`${operation.operationId}/response/${answer.status}`, schema);
    if (!check(answer.body))
      this.responseViolations.push(...errorLines(check.errors).map((e) => `${where}: ${operation.operationId} response ${e}`));
  }

  /** A list answer, paged by `per_page`/`page` with a `Link: rel="next"` header as GitHub pages. */
  private page(req: GitHubRequest, all: readonly Json[]): GitHubAnswer {
    const perPage = Number(req.query.per_page ?? 30);
    const page = Number(req.query.page ?? 1);
    const headers: Record<string, string> = {};
    if (page * perPage < all.length) {
      const next = new URL(`http://${req.headers.host ?? '127.0.0.1'}${req.path}`);
      for (const [k, v] of Object.entries(req.query)) next.searchParams.set(k, String(v));
      next.searchParams.set('page', String(page + 1));
      headers.link = `<${next.toString()}>; rel="next"`;
    }
    return { status: 200, body: all.slice((page - 1) * perPage, page * perPage), headers };
  }

  private resolve(repo: string, ref: string): string | undefined {
    return this.refsByRepo.get(`${repo}@${ref}`);
  }

  private createIssueComment(req: GitHubRequest, repo: string): GitHubAnswer {
    const n = Number(req.params.issue_number);
    const id = this.id();
    const now = NOW();
    const comment: Json = {
      id,
      node_id: `IC_${id}`,
      url: `${API}/repos/${repo}/issues/comments/${id}`,
      html_url: `${HOST}/${repo}/pull/${n}#issuecomment-${id}`,
      issue_url: `${API}/repos/${repo}/issues/${n}`,
      body: (req.body as { body: string }).body,
      user: user(this.options.login ?? 'agentflow[bot]'),
      created_at: now,
      updated_at: now,
      author_association: 'NONE',
    };
    const list = this.issueComments.get(`${repo}#${n}`) ?? [];
    list.push(comment);
    this.issueComments.set(`${repo}#${n}`, list);
    return { status: 201, body: comment };
  }

  private updateIssueComment(req: GitHubRequest, repo: string): GitHubAnswer {
    const id = Number(req.params.comment_id);
    for (const [key, list] of this.issueComments) {
      if (!key.startsWith(`${repo}#`)) continue;
      const found = list.find((c) => c.id === id);
      if (found) {
        found.body = (req.body as { body: string }).body;
        found.updated_at = NOW();
        return { status: 200, body: found };
      }
    }
    return notFound();
  }

  private pullRequestAnswer(repo: string, number: number): GitHubAnswer {
    const pr = this.pulls.get(`${repo}#${number}`);
    return pr ? { status: 200, body: pullRequest(pr, pr.id) } : notFound();
  }

  private reviewComment(repo: string, id: number): Json | undefined {
    for (const [key, list] of this.reviewComments) {
      if (!key.startsWith(`${repo}#`)) continue;
      const found = list.find((c) => c.id === id);
      if (found) return found;
    }
    return undefined;
  }

  private createReview(req: GitHubRequest, repo: string): GitHubAnswer {
    const n = Number(req.params.pull_number);
    const pr = this.pulls.get(`${repo}#${n}`);
    if (!pr) return notFound();
    const docs = 'https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request';
    const body = req.body as {
      commit_id?: string;
      body?: string;
      event?: string;
      comments?: {
        path: string;
        position?: number;
        line?: number;
        side?: string;
        start_line?: number;
        start_side?: string;
        body: string;
      }[];
    };
    const comments = body.comments ?? [];
    // A review is of a commit of the pull request: its lines are resolved against that commit.
    if (body.commit_id !== undefined && body.commit_id !== pr.headSha)
      return unprocessable(`No commit found for SHA: ${body.commit_id}`, docs);
    if ((body.event === 'REQUEST_CHANGES' || body.event === 'COMMENT') && !body.body && comments.length === 0)
      return unprocessable('Review body is required when event is COMMENT or REQUEST_CHANGES', docs);
    for (const c of comments) {
      const file = pr.files.find((f) => f.filename === c.path);
      if (!file) return unprocessable('Path could not be resolved', docs);
      const lines = commentableLines(file.patch ?? '');
      if (c.line === undefined) {
        if (c.position === undefined) return unprocessable('Line could not be resolved', docs);
        continue;
      }
      // GitHub takes exactly LEFT or RIGHT (the OpenAPI description types `side` as any string).
      if (c.side !== undefined && c.side !== 'LEFT' && c.side !== 'RIGHT') return unprocessable('Side must be LEFT or RIGHT', docs);
      if (c.start_side !== undefined && c.start_side !== 'LEFT' && c.start_side !== 'RIGHT')
        return unprocessable('Start side must be LEFT or RIGHT', docs);
      const side = c.side ?? 'RIGHT';
      if (!lines[side].has(c.line)) return unprocessable('Line could not be resolved', docs);
      if (c.start_line !== undefined) {
        const startSide = c.start_side ?? side;
        if (!lines[startSide].has(c.start_line)) return unprocessable('Start line could not be resolved', docs);
        if (startSide === side && c.start_line >= c.line) return unprocessable('start_line must precede line', docs);
        if (lines[startSide].get(c.start_line) !== lines[side].get(c.line))
          return unprocessable('start_line must be part of the same hunk as the line.', docs);
      }
    }
    const id = this.id();
    const commitId = body.commit_id ?? pr.headSha;
    const htmlUrl = `${HOST}/${repo}/pull/${n}#pullrequestreview-${id}`;
    const pullUrl = `${API}/repos/${repo}/pulls/${n}`;
    const review: Json = {
      id,
      node_id: `PRR_${id}`,
      user: user(this.options.login ?? 'agentflow[bot]'),
      body: body.body ?? '',
      state:
        body.event === 'APPROVE'
          ? 'APPROVED'
          : body.event === 'REQUEST_CHANGES'
            ? 'CHANGES_REQUESTED'
            : body.event === 'COMMENT'
              ? 'COMMENTED'
              : 'PENDING',
      html_url: htmlUrl,
      pull_request_url: pullUrl,
      _links: { html: { href: htmlUrl }, pull_request: { href: pullUrl } },
      ...(body.event ? { submitted_at: NOW() } : {}),
      commit_id: commitId,
      author_association: 'NONE',
    };
    const reviews = this.pullReviews.get(`${repo}#${n}`) ?? [];
    reviews.push(review);
    this.pullReviews.set(`${repo}#${n}`, reviews);
    const inline = this.reviewComments.get(`${repo}#${n}`) ?? [];
    for (const c of comments) {
      const file = pr.files.find((f) => f.filename === c.path);
      inline.push(
        this.newReviewComment(repo, n, id, commitId, {
          path: c.path,
          body: c.body,
          diff_hunk: hunkOf(file?.patch ?? '', c.line),
          ...(c.position !== undefined ? { position: c.position, original_position: c.position } : {}),
          ...(c.line !== undefined ? { line: c.line, original_line: c.line, side: c.side ?? 'RIGHT' } : {}),
          ...(c.start_line !== undefined
            ? { start_line: c.start_line, original_start_line: c.start_line, start_side: c.start_side ?? c.side ?? 'RIGHT' }
            : { start_line: null, original_start_line: null, start_side: null }),
          subject_type: 'line',
        }),
      );
    }
    this.reviewComments.set(`${repo}#${n}`, inline);
    return { status: 200, body: review };
  }

  private newReviewComment(repo: string, n: number, reviewId: number, commitId: string, fields: Json): Json {
    const id = this.id();
    const now = NOW();
    const url = `${API}/repos/${repo}/pulls/comments/${id}`;
    const htmlUrl = `${HOST}/${repo}/pull/${n}#discussion_r${id}`;
    const pullUrl = `${API}/repos/${repo}/pulls/${n}`;
    return {
      url,
      pull_request_review_id: reviewId,
      id,
      node_id: `PRRC_${id}`,
      commit_id: commitId,
      original_commit_id: commitId,
      user: user(this.options.login ?? 'agentflow[bot]'),
      created_at: now,
      updated_at: now,
      html_url: htmlUrl,
      pull_request_url: pullUrl,
      author_association: 'NONE',
      _links: { self: { href: url }, html: { href: htmlUrl }, pull_request: { href: pullUrl } },
      ...fields,
    };
  }

  private reply(req: GitHubRequest, repo: string): GitHubAnswer {
    const n = Number(req.params.pull_number);
    const list = this.reviewComments.get(`${repo}#${n}`) ?? [];
    const parent = list.find((c) => c.id === Number(req.params.comment_id));
    if (!parent) return notFound();
    const root = (parent.in_reply_to_id as number | undefined) ?? (parent.id as number);
    const reviewId = this.id();
    const comment = this.newReviewComment(repo, n, reviewId, String(parent.commit_id), {
      path: parent.path,
      body: (req.body as { body: string }).body,
      diff_hunk: parent.diff_hunk,
      in_reply_to_id: root,
      ...(parent.line !== undefined ? { line: parent.line, original_line: parent.line, side: parent.side } : {}),
      start_line: parent.start_line ?? null,
      original_start_line: parent.start_line ?? null,
      start_side: parent.start_side ?? null,
      subject_type: 'line',
    });
    list.push(comment);
    return { status: 201, body: comment };
  }

  private createCheckRun(req: GitHubRequest, repo: string): GitHubAnswer {
    const body = req.body as Json & { name: string; head_sha: string };
    const invalid = checkRunProblem(body);
    if (invalid) return invalid;
    const id = this.id();
    const run: Json = {
      id,
      node_id: `CR_${id}`,
      head_sha: body.head_sha,
      name: body.name,
      url: `${API}/repos/${repo}/check-runs/${id}`,
      html_url: `${HOST}/${repo}/runs/${id}`,
      details_url: body.details_url ?? null,
      external_id: body.external_id ?? null,
      status: 'queued',
      conclusion: null,
      started_at: NOW(),
      completed_at: null,
      check_suite: { id: this.id() },
      app: null,
      pull_requests: [],
      output: {
        title: null,
        summary: null,
        text: null,
        annotations_count: 0,
        annotations_url: `${API}/repos/${repo}/check-runs/${id}/annotations`,
      },
      annotations: [] as unknown[],
    };
    applyCheckRun(run, body);
    const list = this.runs.get(`${repo}@${body.head_sha}`) ?? [];
    list.push(run);
    this.runs.set(`${repo}@${body.head_sha}`, list);
    this.refsByRepo.set(`${repo}@${body.head_sha}`, body.head_sha);
    return { status: 201, body: publicRun(run) };
  }

  private updateCheckRun(req: GitHubRequest, repo: string): GitHubAnswer {
    const id = Number(req.params.check_run_id);
    const run = [...this.runs.entries()]
      .filter(([k]) => k.startsWith(`${repo}@`))
      .flatMap(([, l]) => l)
      .find((r) => r.id === id);
    if (!run) return notFound();
    const body = req.body as Json;
    const invalid = checkRunProblem(body);
    if (invalid) return invalid;
    applyCheckRun(run, body);
    return { status: 200, body: publicRun(run) };
  }

  private content(req: GitHubRequest, repo: string): GitHubAnswer {
    const path = String(req.params.path);
    const ref = String(req.query.ref ?? 'main');
    const text = this.contents.get(`${repo}@${ref}:${path}`);
    if (text === undefined) return notFound();
    if (String(req.headers.accept ?? '').includes('.raw')) return { status: 200, body: text };
    const sha = 'c'.repeat(40);
    const url = `${API}/repos/${repo}/contents/${path}?ref=${ref}`;
    const html = `${HOST}/${repo}/blob/${ref}/${path}`;
    const git = `${API}/repos/${repo}/git/blobs/${sha}`;
    return {
      status: 200,
      body: {
        type: 'file',
        encoding: 'base64',
        size: Buffer.byteLength(text),
        name: path.split('/').pop(),
        path,
        content: Buffer.from(text).toString('base64'),
        sha,
        url,
        git_url: git,
        html_url: html,
        download_url: `https://raw.githubusercontent.com/${repo}/${ref}/${path}`,
        _links: { self: url, git, html },
      },
    };
  }

  private compare(req: GitHubRequest, repo: string): GitHubAnswer {
    const basehead = String(req.params.basehead);
    const c = this.comparisons.get(`${repo}@${basehead}`);
    if (!c) return notFound();
    const headSha = this.resolve(repo, c.head) ?? c.head;
    const baseSha = this.resolve(repo, c.base) ?? c.base;
    const paged = req.query.page !== undefined || req.query.per_page !== undefined;
    const page = Number(req.query.page ?? 1);
    const files = page === 1 ? c.files.slice(0, 300).map((f) => diffEntry(repo, headSha, f)) : [];
    const url = `${API}/repos/${repo}/compare/${basehead}`;
    const html = `${HOST}/${repo}/compare/${basehead}`;
    return {
      status: 200,
      body: {
        url,
        html_url: html,
        permalink_url: `${HOST}/${repo}/compare/${baseSha}...${headSha}`,
        diff_url: `${html}.diff`,
        patch_url: `${html}.patch`,
        base_commit: commit(repo, baseSha),
        merge_base_commit: commit(repo, c.mergeBaseSha),
        status: 'ahead',
        ahead_by: 1,
        behind_by: 0,
        total_commits: 1,
        commits: paged && page > 1 ? [] : [commit(repo, headSha)],
        files,
      },
    };
  }
}

/** The 422 GitHub gives a check run create or update it will not take, or `undefined`. */
function checkRunProblem(body: Json): GitHubAnswer | undefined {
  const docs = 'https://docs.github.com/rest/checks/runs';
  const annotations = (body.output as { annotations?: unknown[] } | undefined)?.annotations ?? [];
  if (annotations.length > MAX_ANNOTATIONS)
    return unprocessable(`Only ${MAX_ANNOTATIONS} annotations are allowed per request (got ${annotations.length})`, docs);
  if ((body.status === 'completed' || body.completed_at) && !body.conclusion)
    return unprocessable('conclusion is required when status is completed', docs);
  return undefined;
}

/** Applies a create or update body to a stored check run (a conclusion completes it; annotations add up). */
function applyCheckRun(run: Json, body: Json): void {
  for (const k of ['name', 'details_url', 'external_id', 'started_at'] as const) if (body[k] !== undefined) run[k] = body[k];
  if (body.status !== undefined) run.status = body.status;
  if (body.conclusion !== undefined) {
    run.conclusion = body.conclusion;
    run.status = 'completed';
    run.completed_at = body.completed_at ?? NOW();
  }
  const output = body.output as { title?: string; summary?: string; text?: string; annotations?: unknown[] } | undefined;
  if (output) {
    const stored = run.output as Json;
    const annotations = run.annotations as unknown[];
    annotations.push(...(output.annotations ?? []));
    Object.assign(stored, {
      title: output.title ?? stored.title,
      summary: output.summary ?? stored.summary,
      text: output.text ?? stored.text,
      annotations_count: annotations.length,
    });
  }
}

/** A stored check run without the annotations (GitHub lists them at `output.annotations_url`). */
function publicRun(run: Json): Json {
  const { annotations: _annotations, ...rest } = run;
  return { ...rest, output: { ...(run.output as Json) } };
}

/** The hunk of `patch` that holds new-side `line` (GitHub's `diff_hunk`), or the first hunk. */
function hunkOf(patch: string, line: number | undefined): string {
  const hunks = patch.split(/\n(?=@@ )/);
  if (line === undefined) return hunks[0] ?? '';
  return hunks.find((h) => commentableLines(h).RIGHT.has(line) || commentableLines(h).LEFT.has(line)) ?? hunks[0] ?? '';
}

/** A `diff-entry` as GitHub lists it. */
function diffEntry(repo: string, headSha: string, f: SeededFile): Json {
  const lines = (f.patch ?? '').split('\n');
  const additions = f.additions ?? lines.filter((l) => l.startsWith('+')).length;
  const deletions = f.deletions ?? lines.filter((l) => l.startsWith('-')).length;
  return {
    sha: 'f'.repeat(40),
    filename: f.filename,
    status: f.status,
    additions,
    deletions,
    changes: additions + deletions,
    blob_url: `${HOST}/${repo}/blob/${headSha}/${f.filename}`,
    raw_url: `${HOST}/${repo}/raw/${headSha}/${f.filename}`,
    contents_url: `${API}/repos/${repo}/contents/${f.filename}?ref=${headSha}`,
    ...(f.patch !== undefined ? { patch: f.patch } : {}),
    ...(f.previous_filename ? { previous_filename: f.previous_filename } : {}),
  };
}

/** A `commit` as GitHub returns it (no files). */
function commit(repo: string, sha: string): Json {
  const person = { name: 'Octo Cat', email: 'octocat@github.com', date: '2026-11-01T00:00:00Z' };
  return {
    url: `${API}/repos/${repo}/commits/${sha}`,
    sha,
    node_id: `C_${sha.slice(0, 12)}`,
    html_url: `${HOST}/${repo}/commit/${sha}`,
    comments_url: `${API}/repos/${repo}/commits/${sha}/comments`,
    commit: {
      url: `${API}/repos/${repo}/git/commits/${sha}`,
      author: person,
      committer: person,
      message: 'A commit',
      comment_count: 0,
      tree: { sha: 't'.repeat(40), url: `${API}/repos/${repo}/git/trees/${'t'.repeat(40)}` },
    },
    author: user('octocat'),
    committer: user('octocat'),
    parents: [],
  };
}

/** A `pull-request` as `GET /repos/{o}/{r}/pulls/{n}` returns it. */
function pullRequest(pr: SeededPullRequest, id: number): Json {
  const [owner = '', name = ''] = pr.repo.split('/');
  const api = `${API}/repos/${pr.repo}`;
  const html = `${HOST}/${pr.repo}/pull/${pr.number}`;
  const author = user(pr.author ?? 'octocat');
  const branch = (ref: string, sha: string) => ({ label: `${owner}:${ref}`, ref, sha, user: user(owner), repo: repository(owner, name) });
  const link = (href: string) => ({ href });
  const now = NOW();
  return {
    url: `${api}/pulls/${pr.number}`,
    id,
    node_id: `PR_${id}`,
    html_url: html,
    diff_url: `${html}.diff`,
    patch_url: `${html}.patch`,
    issue_url: `${api}/issues/${pr.number}`,
    commits_url: `${api}/pulls/${pr.number}/commits`,
    review_comments_url: `${api}/pulls/${pr.number}/comments`,
    review_comment_url: `${api}/pulls/comments{/number}`,
    comments_url: `${api}/issues/${pr.number}/comments`,
    statuses_url: `${api}/statuses/${pr.headSha}`,
    number: pr.number,
    state: 'open',
    locked: false,
    title: pr.title ?? `PR #${pr.number}`,
    user: author,
    body: null,
    labels: [],
    milestone: null,
    active_lock_reason: null,
    created_at: now,
    updated_at: now,
    closed_at: null,
    merged_at: null,
    merge_commit_sha: null,
    assignee: null,
    assignees: [],
    requested_reviewers: [],
    requested_teams: [],
    head: branch(pr.headRef ?? 'feature', pr.headSha),
    base: branch(pr.baseRef ?? 'main', pr.baseSha),
    _links: {
      self: link(`${api}/pulls/${pr.number}`),
      html: link(html),
      issue: link(`${api}/issues/${pr.number}`),
      comments: link(`${api}/issues/${pr.number}/comments`),
      review_comments: link(`${api}/pulls/${pr.number}/comments`),
      review_comment: link(`${api}/pulls/comments{/number}`),
      commits: link(`${api}/pulls/${pr.number}/commits`),
      statuses: link(`${api}/statuses/${pr.headSha}`),
    },
    author_association: 'CONTRIBUTOR',
    auto_merge: null,
    draft: false,
    merged: false,
    mergeable: true,
    rebaseable: true,
    mergeable_state: 'clean',
    merged_by: null,
    comments: 0,
    review_comments: 0,
    maintainer_can_modify: false,
    commits: 1,
    additions: pr.files.reduce((n, f) => n + (f.patch ?? '').split('\n').filter((l) => l.startsWith('+')).length, 0),
    deletions: pr.files.reduce((n, f) => n + (f.patch ?? '').split('\n').filter((l) => l.startsWith('-')).length, 0),
    changed_files: pr.files.length,
  };
}

/** A `repository` as a pull request's `head.repo` and `base.repo` carry it. */
function repository(owner: string, name: string): Json {
  const api = `${API}/repos/${owner}/${name}`;
  const urls = Object.fromEntries(
    [
      'archive_url',
      'assignees_url',
      'blobs_url',
      'branches_url',
      'collaborators_url',
      'comments_url',
      'commits_url',
      'compare_url',
      'contents_url',
      'contributors_url',
      'deployments_url',
      'downloads_url',
      'events_url',
      'forks_url',
      'git_commits_url',
      'git_refs_url',
      'git_tags_url',
      'issue_comment_url',
      'issue_events_url',
      'issues_url',
      'keys_url',
      'labels_url',
      'languages_url',
      'merges_url',
      'milestones_url',
      'notifications_url',
      'pulls_url',
      'releases_url',
      'stargazers_url',
      'statuses_url',
      'subscribers_url',
      'subscription_url',
      'tags_url',
      'teams_url',
      'trees_url',
      'hooks_url',
    ].map((k) => [k, `${api}/${k.replace(/_url$/, '')}`]),
  );
  return {
    id: 1,
    node_id: 'R_1',
    name,
    full_name: `${owner}/${name}`,
    owner: user(owner),
    private: false,
    html_url: `${HOST}/${owner}/${name}`,
    description: null,
    fork: false,
    url: api,
    ...urls,
    git_url: `git://github.com/${owner}/${name}.git`,
    ssh_url: `git@github.com:${owner}/${name}.git`,
    clone_url: `${HOST}/${owner}/${name}.git`,
    svn_url: `${HOST}/${owner}/${name}`,
    mirror_url: null,
    homepage: null,
    language: null,
    forks_count: 0,
    stargazers_count: 0,
    watchers_count: 0,
    size: 0,
    default_branch: 'main',
    open_issues_count: 0,
    topics: [],
    has_issues: true,
    has_projects: false,
    has_wiki: false,
    has_pages: false,
    has_downloads: false,
    archived: false,
    disabled: false,
    visibility: 'public',
    pushed_at: '2026-11-01T00:00:00Z',
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-11-01T00:00:00Z',
    forks: 0,
    open_issues: 0,
    watchers: 0,
    license: null,
  };
}

/** The route of the description that `path` matches, preferring the one with more literal segments. */
function matchRoute(path: string): { route: Route; params: Record<string, string> } | undefined {
  const parts = path.split('/').slice(1);
  let best: { route: Route; params: Record<string, string> } | undefined;
  for (const route of description().routes) {
    const params = matchSegments(route.segments, parts);
    if (params && (!best || route.literals > best.route.literals)) best = { route, params };
  }
  return best;
}

/** Path parameters of `parts` against a route's segments; a last `{path}` takes the rest (a file path). */
function matchSegments(segments: string[], parts: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] ?? '';
    const part = parts[i];
    if (part === undefined || part === '') return undefined;
    if (seg.startsWith('{')) {
      const name = seg.slice(1, -1);
      if (i === segments.length - 1 && name === 'path') {
        params[name] = parts.slice(i).map(decodeURIComponent).join('/');
        return params;
      }
      params[name] = decodeURIComponent(part);
    } else if (seg !== part) return undefined;
  }
  return parts.length === segments.length ? params : undefined;
}

/** A query or path value as its schema types it (a string that reads as an integer or a boolean becomes one). */
function coerce(schema: Record<string, unknown>, value: string): unknown {
  if ((schema.type === 'integer' || schema.type === 'number') && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (schema.type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

/** Path or query values with integers as numbers. */
function typed(operation: Operation, where: 'path' | 'query', values: Record<string, string>): Record<string, string | number> {
  const params = (operation.parameters ?? []).map(parameter);
  return Object.fromEntries(
    Object.entries(values).map(([k, v]) => {
      const schema = params.find((p) => p.in === where && p.name === k)?.schema;
      const c = schema ? coerce(schema, v) : v;
      return [k, typeof c === 'number' ? c : v];
    }),
  );
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, answer: GitHubAnswer): void {
  const text = typeof answer.body === 'string';
  res.writeHead(answer.status, {
    'content-type': text ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
    'x-github-media-type': 'github.v3; format=json',
    ...answer.headers,
  });
  res.end(answer.body === undefined ? '' : text ? (answer.body as string) : JSON.stringify(answer.body));
}
