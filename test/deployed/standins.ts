import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { GitChangeSource } from '../../lambdas/adapters/changes.js';
import type { Change } from '../../lambdas/core/contracts.js';
import type { ExampleRepo } from '../../lib/local/example-repo.js';
import { runGraphQL } from '../standins/github-graphql.js';
import type { AwsCallLog } from './iam.js';

/**
 * Stand-ins for the services the deployed functions call, each an HTTP server on 127.0.0.1 that
 * speaks the service's wire protocol for the few operations AgentFlow uses (and answers any other
 * with an error naming it): S3 (REST, path-style), Secrets Manager (JSON 1.1), the GitHub REST API
 * (routes checked against GitHub's OpenAPI description), and the Slack Web API.
 */

/** A request as the stand-ins see it. */
export interface Received {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** An HTTP server on an ephemeral 127.0.0.1 port. */
export class LocalHttpServer {
  private server?: Server;
  url = '';

  constructor(private readonly handle: (req: Received, res: ServerResponse) => Promise<void> | void) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const u = new URL(req.url ?? '/', 'http://127.0.0.1');
        const received: Received = {
          method: req.method ?? 'GET',
          path: u.pathname,
          query: u.searchParams,
          headers: req.headers,
          body: Buffer.concat(chunks),
        };
        Promise.resolve(this.handle(received, res)).catch((e: unknown) => {
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`stand-in failed: ${(e as Error).stack ?? e}`);
        });
      });
    });
    await new Promise<void>((ok) => this.server?.listen(0, '127.0.0.1', ok));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((ok) => (this.server ? this.server.close(() => ok()) : ok()));
  }
}

const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

/**
 * The body of an `aws-chunked` upload (`<hex size>[;chunk-signature=…]\r\n<data>\r\n … 0\r\n<trailers>`),
 * which the SDK sends when it streams a checksum as a trailer.
 */
function decodeAwsChunked(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = Number.parseInt(body.subarray(at, eol).toString('latin1').split(';')[0] ?? '0', 16);
    if (!size) break;
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/**
 * An S3 stand-in for PutObject, GetObject and HeadObject on path-style URLs (`/<bucket>/<key>`),
 * the addressing the SDK uses for an IP endpoint. Objects live in memory.
 */
export class S3StandIn extends LocalHttpServer {
  readonly objects = new Map<string, { body: Buffer; contentType: string }>();
  readonly requests: string[] = [];
  /**
   * Whether the caller (by access key id) may `s3:ListBucket` the bucket: S3 answers a missing key
   * with 403 AccessDenied instead of 404 NoSuchKey to a caller that may not.
   * Source: https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_Permissions
   */
  mayList?: (accessKeyId: string, bucketArn: string) => boolean;

  constructor(
    readonly buckets: readonly string[],
    private readonly log?: AwsCallLog,
  ) {
    super((req, res) => this.onRequest(req, res));
  }

  private error(res: ServerResponse, status: number, code: string, message: string) {
    res.writeHead(status, { 'content-type': 'application/xml' });
    res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`);
  }

  private onRequest(req: Received, res: ServerResponse) {
    const [, bucket = '', ...rest] = req.path.split('/');
    const key = decodeURIComponent(rest.join('/'));
    this.requests.push(`${req.method} ${bucket}/${key}`);
    if (!this.buckets.includes(bucket)) return this.error(res, 404, 'NoSuchBucket', `The specified bucket does not exist: ${bucket}`);
    if (!key) return this.error(res, 501, 'NotImplemented', `the S3 stand-in has no bucket operation ${req.method}`);
    const id = `${bucket}/${key}`;
    const action = { PUT: 's3:PutObject', GET: 's3:GetObject', HEAD: 's3:GetObject' }[req.method] ?? `s3:${req.method}`;
    this.log?.record(req.headers.authorization, action, `arn:aws:s3:::${id}`);
    if (req.method === 'PUT') {
      const chunked = String(req.headers['content-encoding'] ?? '').includes('aws-chunked');
      const body = chunked ? decodeAwsChunked(req.body) : req.body;
      this.objects.set(id, { body, contentType: String(req.headers['content-type'] ?? 'binary/octet-stream') });
      res.writeHead(200, { etag: `"${body.length.toString(16)}"` });
      res.end();
      return;
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      const o = this.objects.get(id);
      if (!o) {
        const caller = /Credential=([A-Z0-9]+)\//.exec(String(req.headers.authorization ?? ''))?.[1] ?? '';
        if (this.mayList && !this.mayList(caller, `arn:aws:s3:::${bucket}`)) return this.error(res, 403, 'AccessDenied', 'Access Denied');
        return this.error(res, 404, 'NoSuchKey', 'The specified key does not exist.');
      }
      res.writeHead(200, {
        'content-type': o.contentType,
        'content-length': String(o.body.length),
        etag: `"${o.body.length.toString(16)}"`,
        'last-modified': new Date().toUTCString(),
      });
      res.end(req.method === 'GET' ? o.body : undefined);
      return;
    }
    this.error(res, 501, 'NotImplemented', `the S3 stand-in has no operation ${req.method} on objects`);
  }
}

/** A Secrets Manager stand-in: `GetSecretValue` (JSON 1.1, `X-Amz-Target: secretsmanager.GetSecretValue`). */
export class SecretsManagerStandIn extends LocalHttpServer {
  readonly reads: string[] = [];

  constructor(
    readonly secrets: Record<string, Record<string, string>>,
    private readonly log?: AwsCallLog,
  ) {
    super((req, res) => this.onRequest(req, res));
  }

  /** The ARN of a secret (name + the six random characters Secrets Manager adds). */
  static arnOf(name: string): string {
    return `arn:aws:secretsmanager:us-east-1:123456789012:secret:${name}-AbCdEf`;
  }

  private onRequest(req: Received, res: ServerResponse) {
    const target = String(req.headers['x-amz-target'] ?? '');
    const err = (type: string, message: string) => sendJson(res, 400, { __type: type, message }, { 'x-amzn-errortype': type });
    if (target !== 'secretsmanager.GetSecretValue') return err('InvalidRequestException', `the stand-in has no operation ${target}`);
    const { SecretId } = JSON.parse(req.body.toString('utf8')) as { SecretId: string };
    this.reads.push(SecretId);
    this.log?.record(req.headers.authorization, 'secretsmanager:GetSecretValue', SecretsManagerStandIn.arnOf(SecretId));
    const value = this.secrets[SecretId];
    if (!value) return err('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    sendJson(res, 200, {
      ARN: SecretsManagerStandIn.arnOf(SecretId),
      Name: SecretId,
      VersionId: '00000000-0000-0000-0000-000000000001',
      SecretString: JSON.stringify(value),
      VersionStages: ['AWSCURRENT'],
      CreatedDate: 1_767_225_600,
    });
  }
}

/** Operations of GitHub's OpenAPI description: `METHOD /path/{param}` (from `@octokit/openapi-types`). */
export function githubOpenApiRoutes(): Array<{ method: string; template: string; pattern: RegExp }> {
  const require = createRequire(import.meta.url);
  const file = join(dirname(require.resolve('@octokit/openapi-types/package.json')), 'types.d.ts');
  const text = readFileSync(file, 'utf8');
  const start = text.indexOf('export interface paths {');
  const end = text.indexOf('\nexport ', start + 10);
  const routes: Array<{ method: string; template: string; pattern: RegExp }> = [];
  let current: string | undefined;
  for (const line of text.slice(start, end).split('\n')) {
    const p = /^ {2}"(\/[^"]*)": \{/.exec(line);
    if (p) {
      current = p[1];
      continue;
    }
    const m = /^ {4}(get|put|post|delete|patch|head): operations\[/.exec(line);
    if (m && current) {
      const pattern = new RegExp(`^${current.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`);
      routes.push({ method: (m[1] as string).toUpperCase(), template: current, pattern });
    }
  }
  if (routes.length < 500) throw new Error(`could not read the paths of GitHub's OpenAPI description from ${file}`);
  return routes;
}

/** A comment the GitHub stand-in holds. */
export interface GitHubComment {
  id: number;
  issue: number;
  body: string;
  html_url: string;
  user: { login: string };
}

/**
 * A GitHub REST API stand-in for one repository whose data comes from a real git repository
 * (`createExampleRepo`): pull request files and compares are git's diff in GitHub's shape, contents
 * are the head commit's files. Every request is checked against GitHub's OpenAPI description (the
 * route must exist) and for a token; problems are listed in {@link violations}.
 */
export class GitHubStandIn extends LocalHttpServer {
  readonly comments: GitHubComment[] = [];
  /** Check runs (`POST …/check-runs`, `PATCH …/check-runs/{id}`). */
  readonly checkRuns: Array<{
    id: number;
    name: string;
    head_sha: string;
    external_id: string | null;
    status: string;
    conclusion: string | null;
  }> = [];
  /** Pull request reviews posted (`POST …/pulls/{n}/reviews`). */
  readonly reviews: Array<{ pull: number; event: string; body: string; commitId: string; comments: unknown[] }> = [];
  readonly requests: string[] = [];
  readonly violations: string[] = [];
  /** Team memberships: `org/team` → logins. */
  readonly teams = new Map<string, Set<string>>();
  private readonly routes = githubOpenApiRoutes();
  /** Review threads resolved through GraphQL, by the id of their comment. */
  readonly resolvedThreads = new Set<number>();
  private nextId = 1000;
  private readonly source: GitChangeSource;

  constructor(
    readonly repo: ExampleRepo,
    readonly options: { repository: string; number: number; token: string; title?: string },
  ) {
    super((req, res) => this.onRequest(req, res));
    this.source = new GitChangeSource(repo.path);
  }

  private change(): Change {
    return {
      repository: this.options.repository,
      number: this.options.number,
      title: this.options.title ?? 'Checkout: pay with card',
      author: 'mobile-dev',
      url: `https://github.com/${this.options.repository}/pull/${this.options.number}`,
      action: 'opened',
      baseSha: this.repo.base,
      headSha: this.repo.head,
      baseRef: 'main',
      headRef: 'feature/checkout-payments',
    };
  }

  /** The change's files in GitHub's diff-entry shape. */
  private async files(): Promise<Array<Record<string, unknown>>> {
    const files = await this.source.listChangedFiles(this.change());
    return files.map((f) => ({
      sha: this.repo.head,
      filename: f.path,
      status: f.status,
      additions: f.additions,
      deletions: f.deletions,
      changes: f.additions + f.deletions,
      blob_url: `https://github.com/${this.options.repository}/blob/${this.repo.head}/${f.path}`,
      raw_url: `https://github.com/${this.options.repository}/raw/${this.repo.head}/${f.path}`,
      contents_url: `${this.url}/repos/${this.options.repository}/contents/${f.path}?ref=${this.repo.head}`,
      ...(f.binary ? {} : { patch: f.patch }),
      ...(f.previousPath ? { previous_filename: f.previousPath } : {}),
    }));
  }

  private page<T>(req: Received, res: ServerResponse, items: T[]): void {
    const perPage = Number(req.query.get('per_page') ?? 30);
    const page = Number(req.query.get('page') ?? 1);
    const slice = items.slice((page - 1) * perPage, page * perPage);
    const headers: Record<string, string> = {};
    if (page * perPage < items.length) {
      const next = new URL(`${this.url}${req.path}`);
      for (const [k, v] of req.query) next.searchParams.set(k, v);
      next.searchParams.set('page', String(page + 1));
      headers.link = `<${next}>; rel="next"`;
    }
    sendJson(res, 200, slice, headers);
  }

  private async onRequest(req: Received, res: ServerResponse): Promise<void> {
    const line = `${req.method} ${req.path}`;
    this.requests.push(`${line}${req.query.size ? `?${req.query}` : ''}`);
    const graphql = req.method === 'POST' && req.path === '/graphql';
    if (!graphql && !this.routes.some((r) => r.method === req.method && r.pattern.test(req.path))) {
      this.violations.push(`${line}: no such operation in GitHub's OpenAPI description`);
    }
    const auth = String(req.headers.authorization ?? '');
    if (auth !== `token ${this.options.token}` && auth !== `bearer ${this.options.token}` && auth !== `Bearer ${this.options.token}`) {
      this.violations.push(`${line}: Authorization is not the token of the GitHub secret`);
      return sendJson(res, 401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });
    }
    const repoPrefix = `/repos/${this.options.repository}`;
    // GraphQL (review threads, resolveReviewThread), validated against GitHub's published schema:
    // one thread per inline comment of the reviews posted, numbered as GET …/pulls/{n}/comments numbers them.
    if (graphql) {
      const comments = this.reviews.flatMap((r) => r.comments);
      const { answer, problems } = await runGraphQL(JSON.parse(req.body.toString('utf8') || '{}'), {
        query: {
          repository: () => ({
            pullRequest: () => ({
              reviewThreads: () => ({
                nodes: comments.map((_c, i) => ({
                  id: `PRRT_${9000 + i}`,
                  isResolved: this.resolvedThreads.has(9000 + i),
                  comments: () => ({ nodes: [{ fullDatabaseId: String(9000 + i) }] }),
                })),
                pageInfo: { hasNextPage: false, endCursor: null },
              }),
            }),
          }),
        },
        mutation: {
          resolveReviewThread: ({ input }: { input: { threadId: string } }) => {
            this.resolvedThreads.add(Number(input.threadId.replace('PRRT_', '')));
            return { thread: { id: input.threadId, isResolved: true } };
          },
        },
      });
      for (const p of problems) this.violations.push(`${line}: ${p}`);
      return sendJson(res, 200, answer);
    }
    const notFound = () => sendJson(res, 404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
    const n = this.options.number;
    let m: RegExpExecArray | null;
    const route = (method: string | undefined, re: RegExp) => (method === undefined || req.method === method ? re.exec(req.path) : null);

    if (req.method === 'GET' && req.path === `${repoPrefix}/pulls/${n}/files`) return this.page(req, res, await this.files());
    if (req.method === 'GET' && req.path === `${repoPrefix}/pulls/${n}`) {
      const c = this.change();
      return sendJson(res, 200, {
        number: n,
        state: 'open',
        title: c.title,
        html_url: c.url,
        user: { login: c.author },
        draft: false,
        base: { sha: c.baseSha, ref: c.baseRef },
        head: { sha: c.headSha, ref: c.headRef },
      });
    }
    m = route('GET', new RegExp(`^${repoPrefix}/compare/(.+)$`));
    if (m) {
      const [base, head] = decodeURIComponent(m[1] as string).split('...');
      if (base !== this.repo.base || head !== this.repo.head) return notFound();
      const files = await this.files();
      const page = Number(req.query.get('page') ?? 1);
      const perPage = Number(req.query.get('per_page') ?? 30);
      return sendJson(res, 200, {
        status: 'ahead',
        ahead_by: 1,
        behind_by: 0,
        total_commits: 1,
        merge_base_commit: { sha: this.repo.base },
        base_commit: { sha: this.repo.base },
        commits: [{ sha: this.repo.head }],
        files: files.slice((page - 1) * perPage, page * perPage),
      });
    }
    m = route('GET', new RegExp(`^${repoPrefix}/commits/(?!.*/check-runs$)(.+)$`));
    if (m) {
      try {
        const sha = execFileSync('git', ['-C', this.repo.path, 'rev-parse', '--verify', `${decodeURIComponent(m[1] as string)}^{commit}`], {
          encoding: 'utf8',
        }).trim();
        return sendJson(res, 200, { sha });
      } catch {
        return sendJson(res, 422, { message: 'No commit found for SHA' });
      }
    }
    m = route('GET', new RegExp(`^${repoPrefix}/contents/(.+)$`));
    if (m) {
      const ref = req.query.get('ref') ?? this.repo.head;
      const path = decodeURIComponent(m[1] as string);
      let text: string;
      try {
        text = execFileSync('git', ['-C', this.repo.path, 'cat-file', 'blob', `${ref}:${path}`], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        });
      } catch {
        return notFound();
      }
      if (String(req.headers.accept ?? '').includes('raw')) {
        res.writeHead(200, { 'content-type': 'application/vnd.github.raw; charset=utf-8' });
        res.end(text);
        return;
      }
      return sendJson(res, 200, { type: 'file', path, encoding: 'base64', content: Buffer.from(text).toString('base64') });
    }
    m = route(undefined, new RegExp(`^${repoPrefix}/issues/(\\d+)/comments$`));
    if (m) {
      const issue = Number(m[1]);
      if (req.method === 'GET')
        return this.page(
          req,
          res,
          this.comments.filter((c) => c.issue === issue),
        );
      if (req.method === 'POST') {
        const { body } = JSON.parse(req.body.toString('utf8')) as { body: string };
        const id = this.nextId++;
        const c: GitHubComment = {
          id,
          issue,
          body,
          html_url: `https://github.com/${this.options.repository}/pull/${issue}#issuecomment-${id}`,
          user: { login: 'agentflow[bot]' },
        };
        this.comments.push(c);
        return sendJson(res, 201, c);
      }
    }
    // Check runs: created in progress when a run starts, concluded by Publish.
    m = route('POST', new RegExp(`^${repoPrefix}/check-runs$`));
    if (m) {
      const body = JSON.parse(req.body.toString('utf8')) as {
        name: string;
        head_sha: string;
        external_id?: string;
        status?: string;
        conclusion?: string;
      };
      const run = {
        id: this.nextId++,
        name: body.name,
        head_sha: body.head_sha,
        external_id: body.external_id ?? null,
        status: body.status ?? 'queued',
        conclusion: body.conclusion ?? null,
      };
      this.checkRuns.push(run);
      return sendJson(res, 201, { ...run, html_url: `https://github.com/${this.options.repository}/runs/${run.id}` });
    }
    m = route('PATCH', new RegExp(`^${repoPrefix}/check-runs/(\\d+)$`));
    if (m) {
      const run = this.checkRuns.find((c) => c.id === Number(m?.[1]));
      if (!run) return notFound();
      const body = JSON.parse(req.body.toString('utf8')) as { status?: string; conclusion?: string };
      if (body.status) run.status = body.status;
      if (body.conclusion) run.conclusion = body.conclusion;
      return sendJson(res, 200, { ...run, html_url: `https://github.com/${this.options.repository}/runs/${run.id}` });
    }
    m = route('GET', new RegExp(`^${repoPrefix}/commits/([^/]+)/check-runs$`));
    if (m) {
      const name = req.query.get('check_name');
      const runs = this.checkRuns.filter((c) => c.head_sha === m?.[1] && (!name || c.name === name));
      return sendJson(res, 200, { total_count: runs.length, check_runs: runs });
    }
    m = route('GET', new RegExp(`^${repoPrefix}/pulls/(\\d+)/reviews$`));
    if (m) {
      const pull = Number(m[1]);
      return this.page(
        req,
        res,
        this.reviews
          .filter((r) => r.pull === pull)
          .map((r, i) => ({
            id: i + 1,
            body: r.body,
            commit_id: r.commitId,
            html_url: `https://github.com/${this.options.repository}/pull/${pull}#pullrequestreview-${i + 1}`,
          })),
      );
    }
    // The review comments posted so far (inline comments of the reviews), as GitHub lists them.
    // The token's user (AgentFlow tells its own review comments by it) and the reactions on a
    // review comment (none: nobody reacts in these scenarios).
    if (req.method === 'GET' && req.path === '/user') return sendJson(res, 200, { login: 'agentflow[bot]', id: 1, type: 'Bot' });
    m = route('GET', new RegExp(`^${repoPrefix}/pulls/comments/(\\d+)/reactions$`));
    if (m) return this.page(req, res, []);
    m = route('GET', new RegExp(`^${repoPrefix}/pulls/(\\d+)/comments$`));
    if (m) {
      const pull = Number(m[1]);
      const comments = this.reviews
        .filter((r) => r.pull === pull)
        .flatMap((r) => r.comments as Array<{ path?: string; line?: number; body?: string }>)
        .map((c, i) => ({
          id: 9000 + i,
          path: c.path ?? '',
          line: c.line ?? null,
          body: c.body ?? '',
          user: { login: 'agentflow[bot]', type: 'Bot' },
        }));
      return this.page(req, res, comments);
    }
    m = route('POST', new RegExp(`^${repoPrefix}/pulls/(\\d+)/reviews$`));
    if (m) {
      const review = JSON.parse(req.body.toString('utf8')) as { body?: string; event?: string; commit_id?: string; comments?: unknown[] };
      const id = this.nextId++;
      this.reviews.push({
        pull: Number(m[1]),
        event: review.event ?? '',
        body: review.body ?? '',
        commitId: review.commit_id ?? this.repo.head,
        comments: review.comments ?? [],
      });
      return sendJson(res, 200, {
        id,
        state: review.event === 'COMMENT' ? 'COMMENTED' : 'PENDING',
        body: review.body ?? '',
        html_url: `https://github.com/${this.options.repository}/pull/${m[1]}#pullrequestreview-${id}`,
        user: { login: 'agentflow[bot]' },
      });
    }
    m = route('PATCH', new RegExp(`^${repoPrefix}/issues/comments/(\\d+)$`));
    if (m) {
      const c = this.comments.find((x) => x.id === Number(m?.[1]));
      if (!c) return notFound();
      c.body = (JSON.parse(req.body.toString('utf8')) as { body: string }).body;
      return sendJson(res, 200, c);
    }
    m = route('GET', /^\/orgs\/([^/]+)\/teams\/([^/]+)\/memberships\/([^/]+)$/);
    if (m) {
      const members = this.teams.get(`${m[1]}/${m[2]}`);
      if (!members?.has(m[3] as string)) return notFound();
      return sendJson(res, 200, { state: 'active', role: 'member', url: `${this.url}${req.path}` });
    }
    if (this.gitData(req, res, repoPrefix)) return;
    this.violations.push(`${line}: the GitHub stand-in does not answer this route`);
    return notFound();
  }

  /** Pull requests opened through `POST …/pulls` (the generated tests' drafts). */
  readonly pulls: Array<{ number: number; head: string; base: string; draft: boolean; title: string }> = [];

  /** Runs git in the example repository (a temporary index when given), stdin `input`. */
  private git(args: string[], input?: string, index?: string): string {
    return execFileSync('git', ['-C', this.repo.path, ...args], {
      encoding: 'utf8',
      input,
      stdio: ['pipe', 'pipe', 'ignore'],
      env: {
        ...process.env,
        ...(index ? { GIT_INDEX_FILE: index } : {}),
        GIT_AUTHOR_NAME: 'AgentFlow',
        GIT_AUTHOR_EMAIL: 'agentflow@example.com',
        GIT_COMMITTER_NAME: 'AgentFlow',
        GIT_COMMITTER_EMAIL: 'agentflow@example.com',
      },
    }).trim();
  }

  /**
   * The Git Data API on the example repository itself (blobs, trees on a base tree, commits,
   * branch refs) and pull requests of its branches (`GET/POST …/pulls`), so generated tests land
   * as real commits a test can read with git. @returns false when the route is not one of these
   */
  private gitData(req: Received, res: ServerResponse, repoPrefix: string): boolean {
    const body = () => JSON.parse(req.body.toString('utf8')) as Record<string, unknown>;
    const tryGit = (args: string[], input?: string, index?: string) => {
      try {
        return this.git(args, input, index);
      } catch {
        return undefined;
      }
    };
    const refBody = (ref: string, sha: string) => ({
      ref,
      node_id: ref,
      url: `${this.url}${repoPrefix}/git/${ref}`,
      object: { type: 'commit', sha, url: '' },
    });
    const answer = (send: () => void) => {
      send();
      return true;
    };
    let m: RegExpExecArray | null;
    if (req.method === 'POST' && req.path === `${repoPrefix}/git/blobs`) {
      const b = body() as { content: string; encoding?: string };
      const text = b.encoding === 'base64' ? Buffer.from(b.content, 'base64').toString('utf8') : b.content;
      const sha = this.git(['hash-object', '-w', '--stdin'], text);
      return answer(() => sendJson(res, 201, { sha, url: `${this.url}${repoPrefix}/git/blobs/${sha}` }));
    }
    m = new RegExp(`^${repoPrefix}/git/commits/([0-9a-f]{40})$`).exec(req.path);
    if (req.method === 'GET' && m) {
      const tree = tryGit(['rev-parse', `${m[1]}^{tree}`]);
      if (!tree) return answer(() => sendJson(res, 404, { message: 'Not Found' }));
      const message = this.git(['log', '-1', '--format=%B', m[1] as string]);
      return answer(() => sendJson(res, 200, { sha: m?.[1], tree: { sha: tree, url: '' }, parents: [], message }));
    }
    if (req.method === 'POST' && req.path === `${repoPrefix}/git/trees`) {
      const b = body() as { base_tree?: string; tree: Array<{ path: string; mode: string; sha: string }> };
      const index = join(this.repo.path, '.git', `agentflow-standin-index-${this.nextId++}`);
      if (b.base_tree) this.git(['read-tree', b.base_tree], undefined, index);
      for (const e of b.tree) this.git(['update-index', '--add', '--cacheinfo', `${e.mode},${e.sha},${e.path}`], undefined, index);
      const sha = this.git(['write-tree'], undefined, index);
      execFileSync('rm', ['-f', index]);
      return answer(() => sendJson(res, 201, { sha, url: '', truncated: false, tree: b.tree }));
    }
    if (req.method === 'POST' && req.path === `${repoPrefix}/git/commits`) {
      const b = body() as { message: string; tree: string; parents: string[] };
      const sha = this.git(['commit-tree', b.tree, ...b.parents.flatMap((p) => ['-p', p]), '-m', b.message]);
      return answer(() =>
        sendJson(res, 201, { sha, tree: { sha: b.tree, url: '' }, parents: b.parents.map((p) => ({ sha: p })), message: b.message }),
      );
    }
    if (req.method === 'POST' && req.path === `${repoPrefix}/git/refs`) {
      const b = body() as { ref: string; sha: string };
      if (tryGit(['rev-parse', '--verify', '--quiet', b.ref]))
        return answer(() => sendJson(res, 422, { message: 'Reference already exists' }));
      this.git(['update-ref', b.ref, b.sha]);
      return answer(() => sendJson(res, 201, refBody(b.ref, b.sha)));
    }
    m = new RegExp(`^${repoPrefix}/git/refs/(.+)$`).exec(req.path);
    if (req.method === 'PATCH' && m) {
      const ref = `refs/${decodeURIComponent(m[1] as string)}`;
      const b = body() as { sha: string; force?: boolean };
      const current = tryGit(['rev-parse', '--verify', '--quiet', ref]);
      if (!current) return answer(() => sendJson(res, 422, { message: 'Reference does not exist' }));
      if (!b.force && tryGit(['merge-base', '--is-ancestor', current, b.sha]) === undefined) {
        return answer(() => sendJson(res, 422, { message: 'Update is not a fast forward' }));
      }
      this.git(['update-ref', ref, b.sha]);
      return answer(() => sendJson(res, 200, refBody(ref, b.sha)));
    }
    if (req.path === `${repoPrefix}/pulls` && req.method === 'GET') {
      const owner = this.options.repository.split('/')[0];
      const head = req.query.get('head');
      const open = this.pulls.filter((p) => !head || `${owner}:${p.head}` === head);
      return answer(() =>
        this.page(
          req,
          res,
          open.map((p) => ({
            number: p.number,
            draft: p.draft,
            html_url: `https://github.com/${this.options.repository}/pull/${p.number}`,
          })),
        ),
      );
    }
    if (req.path === `${repoPrefix}/pulls` && req.method === 'POST') {
      const b = body() as { title: string; head: string; base: string; draft?: boolean };
      if (!tryGit(['rev-parse', '--verify', '--quiet', `refs/heads/${b.head}`]))
        return answer(() => sendJson(res, 422, { message: `head: invalid` }));
      if (!tryGit(['rev-parse', '--verify', '--quiet', `refs/heads/${b.base}`]))
        return answer(() => sendJson(res, 422, { message: `base: invalid` }));
      const pr = {
        number: this.options.number + 1 + this.pulls.length,
        head: b.head,
        base: b.base,
        draft: b.draft === true,
        title: b.title,
      };
      this.pulls.push(pr);
      const html_url = `https://github.com/${this.options.repository}/pull/${pr.number}`;
      return answer(() => sendJson(res, 201, { number: pr.number, draft: pr.draft, html_url }));
    }
    return false;
  }
}

/** A call of the Slack Web API stand-in: the method and its arguments (form or JSON). */
export interface SlackCall {
  method: string;
  args: Record<string, unknown>;
  token: string;
}

/** A Slack Web API stand-in (`POST /api/<method>`): `chat.postMessage` and `chat.update`. */
export class SlackStandIn extends LocalHttpServer {
  readonly calls: SlackCall[] = [];
  private ts = 1_767_225_600;

  constructor(readonly botToken: string) {
    super((req, res) => this.onRequest(req, res));
  }

  /** The base URL the WebClient takes as `slackApiUrl`. */
  get apiUrl(): string {
    return `${this.url}/api/`;
  }

  private onRequest(req: Received, res: ServerResponse) {
    const method = req.path.replace(/^\/api\//, '');
    const text = req.body.toString('utf8');
    const type = String(req.headers['content-type'] ?? '');
    const args: Record<string, unknown> = type.includes('json')
      ? (JSON.parse(text) as Record<string, unknown>)
      : Object.fromEntries(
          [...new URLSearchParams(text)].map(([k, v]) => {
            try {
              return [k, k === 'blocks' || k === 'attachments' ? JSON.parse(v) : v];
            } catch {
              return [k, v];
            }
          }),
        );
    const token = String(req.headers.authorization ?? '').replace(/^Bearer /, '') || String(args.token ?? '');
    this.calls.push({ method, args, token });
    if (token !== this.botToken) return sendJson(res, 200, { ok: false, error: 'invalid_auth' });
    if (method === 'chat.postMessage') {
      const ts = `${this.ts++}.000100`;
      return sendJson(res, 200, {
        ok: true,
        channel: `C${String(args.channel)
          .toUpperCase()
          .replace(/[^A-Z0-9]/g, '')}`,
        ts,
        message: { ts },
      });
    }
    if (method === 'chat.update') return sendJson(res, 200, { ok: true, channel: args.channel, ts: args.ts });
    return sendJson(res, 200, { ok: false, error: 'unknown_method' });
  }
}

/**
 * A pass-through in front of dynalite that records each DynamoDB call (`dynamodb:<Operation>` on
 * the table, or the index a Query or Scan names) with the caller's access key, for the IAM check.
 */
export class DynamoDbRecorder extends LocalHttpServer {
  constructor(
    private readonly target: string,
    private readonly log: AwsCallLog,
    private readonly tableArn: (table: string) => string,
  ) {
    super((req, res) => this.forward(req, res));
  }

  private forward(req: Received, res: ServerResponse): Promise<void> {
    const op = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? 'Unknown';
    try {
      const body = JSON.parse(req.body.toString('utf8')) as {
        TableName?: string;
        IndexName?: string;
        RequestItems?: Record<string, unknown>;
        TransactItems?: Array<Record<string, { TableName?: string }>>;
      };
      const tables = [
        ...(body.TableName ? [body.TableName] : []),
        ...Object.keys(body.RequestItems ?? {}),
        ...(body.TransactItems ?? []).flatMap((t) => Object.values(t).map((x) => x.TableName ?? '')),
      ];
      for (const t of new Set(tables)) {
        const arn = body.IndexName ? `${this.tableArn(t)}/index/${body.IndexName}` : this.tableArn(t);
        this.log.record(req.headers.authorization, `dynamodb:${op}`, arn);
      }
    } catch {
      this.log.record(req.headers.authorization, `dynamodb:${op}`, 'unparsed-request');
    }
    return new Promise((ok) => {
      const url = new URL(this.target);
      const out = httpRequest(
        { host: url.hostname, port: url.port, method: req.method, path: req.path, headers: { ...req.headers, host: url.host } },
        (answer) => {
          res.writeHead(answer.statusCode ?? 500, answer.headers);
          answer.pipe(res);
          answer.on('end', () => ok());
        },
      );
      out.on('error', (e) => {
        res.writeHead(502);
        res.end(String(e));
        ok();
      });
      out.end(req.body);
    });
  }
}
