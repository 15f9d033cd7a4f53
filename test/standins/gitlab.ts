import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MergeRequestDiffSchema } from '@gitbeaker/rest';

/*
 * A GitLab REST API stand-in on 127.0.0.1 for the routes `GitLabChangeSource` calls.
 *
 * Request validation: no GitLab OpenAPI description is published in the npm registry (a search of
 * the registry for "gitlab openapi" found none, 2026-11), so requests are checked against the
 * shapes gitbeaker's types document (`@gitbeaker/core`: `MergeRequests.allDiffs` takes
 * `PaginationRequestOptions<'offset'>` = `page`, `per_page`; `RepositoryFiles.showRaw` takes `ref`
 * and `lfs`) and GitLab's REST docs (https://docs.gitlab.com/api/rest/, read 2026-11): a project
 * is named by its id or its URL-encoded full path (`group%2Fproject`), `per_page` is 1–100.
 * Answers use the shapes of gitbeaker's `MergeRequestDiffSchema` plus GitLab's `too_large` and
 * `collapsed` flags.
 */

/** One diff of a seeded merge request, as `GET …/merge_requests/:iid/diffs` lists it. */
export type SeededDiff = MergeRequestDiffSchema & { too_large?: boolean; collapsed?: boolean };

/** A request the stand-in answered: the route's name, the decoded path parameters and the query. */
export interface GitLabRequest {
  route: 'listDiffs' | 'rawFile';
  params: Record<string, string>;
  query: Record<string, string>;
}

/** A seeded project: its merge requests' diffs by iid and its files by ref, then path. */
interface Project {
  id: number;
  diffs: Map<number, SeededDiff[]>;
  files: Map<string, Map<string, string>>;
}

/** GitLab's default and largest `per_page` (https://docs.gitlab.com/api/rest/#pagination, read 2026-11). */
const DEFAULT_PER_PAGE = 20;
const MAX_PER_PAGE = 100;

/**
 * A stateful GitLab stand-in: seed projects by full path ({@link addProject}), merge request diffs
 * ({@link addMergeRequest}) and files at refs ({@link putFile}); call {@link start} for the base
 * URL (`http://127.0.0.1:<port>`, give it to gitbeaker as `host`) and {@link stop} at the end.
 *
 * - Auth: every request must carry `PRIVATE-TOKEN: <token>` or `Authorization: Bearer <token>`;
 *   otherwise 401 `{"message":"401 Unauthorized"}`, as GitLab answers.
 * - Pagination: offset pagination with GitLab's headers `x-page`, `x-per-page`, `x-next-page`,
 *   `x-prev-page`, `x-total`, `x-total-pages` and a `Link` header (`rel="next"`, `"prev"`,
 *   `"first"`, `"last"`).
 * - 404 `{"message":"404 Project Not Found"}` / `"404 Not found"` / `"404 File Not Found"` for an
 *   unknown project, merge request or file.
 * - Violations: an unknown route, an unknown or malformed query parameter, a project path that is
 *   not URL-encoded, each leave a line in {@link violations} (and get 404 / 400).
 *
 * @example
 * const gitlab = new GitLabStandIn('glpat-test');
 * gitlab.addProject('acme/shop');
 * const client = new Gitlab({ host: await gitlab.start(), token: 'glpat-test' });
 * expect(gitlab.violations).toEqual([]);
 */
export class GitLabStandIn {
  /** Requests that break the documented shapes; a test asserts it is empty. */
  readonly violations: string[] = [];
  /** Every request answered (after auth), in order. */
  readonly requests: GitLabRequest[] = [];
  private readonly projects = new Map<string, Project>();
  private server?: Server;

  constructor(private readonly token = 'glpat-standin') {}

  /** Seeds a project by its full path (`group/sub/project`). */
  addProject(path: string): void {
    if (!this.projects.has(path)) this.projects.set(path, { id: this.projects.size + 1, diffs: new Map(), files: new Map() });
  }

  /** Seeds merge request `iid` of the project at `path` with its diffs. */
  addMergeRequest(path: string, iid: number, diffs: readonly SeededDiff[]): void {
    this.project(path).diffs.set(iid, [...diffs]);
  }

  /** Seeds the file `file` at `ref` (a SHA or branch) of the project at `path`. */
  putFile(path: string, ref: string, file: string, content: string): void {
    const p = this.project(path);
    const files = p.files.get(ref) ?? new Map<string, string>();
    files.set(file, content);
    p.files.set(ref, files);
  }

  private project(path: string): Project {
    this.addProject(path);
    const p = this.projects.get(path);
    if (!p) throw new Error(`no project ${path}`);
    return p;
  }

  /** Listens on 127.0.0.1 on a free port. @returns the base URL */
  async start(): Promise<string> {
    const server = createServer((req, res) => {
      try {
        this.handle(req, res);
      } catch (e) {
        this.violations.push(`${req.method} ${req.url}: stand-in error ${(e as Error).stack ?? String(e)}`);
        send(res, 500, { message: '500 Internal Server Error' });
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Stops listening. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (req.headers['private-token'] !== this.token && bearer !== this.token) {
      send(res, 401, { message: '401 Unauthorized' });
      return;
    }
    const query = Object.fromEntries(url.searchParams);
    // Raw path: the project path must arrive URL-encoded as one segment.
    const raw = (req.url ?? '/').split('?')[0] ?? '/';
    const diffs = /^\/api\/v4\/projects\/([^/]+)\/merge_requests\/([^/]+)\/diffs$/.exec(raw);
    const file = /^\/api\/v4\/projects\/([^/]+)\/repository\/files\/([^/]+)\/raw$/.exec(raw);
    if (req.method === 'GET' && diffs) {
      this.listDiffs(res, url, decodeURIComponent(diffs[1] ?? ''), diffs[2] ?? '', query);
      return;
    }
    if (req.method === 'GET' && file) {
      this.rawFile(res, decodeURIComponent(file[1] ?? ''), decodeURIComponent(file[2] ?? ''), query);
      return;
    }
    this.violations.push(`${req.method} ${raw}: no such GitLab route in the stand-in`);
    send(res, 404, { error: '404 Not Found' });
  }

  /** The parameters of `query` not in `allowed`, each a violation. @returns whether all were allowed */
  private onlyParams(where: string, query: Record<string, string>, allowed: readonly string[]): boolean {
    const unknown = Object.keys(query).filter((k) => !allowed.includes(k));
    for (const k of unknown) this.violations.push(`${where}: unknown query parameter ${k}`);
    return unknown.length === 0;
  }

  /** `GET /projects/:id/merge_requests/:iid/diffs` (https://docs.gitlab.com/api/merge_requests/#list-merge-request-diffs). */
  private listDiffs(res: ServerResponse, url: URL, projectPath: string, iidText: string, query: Record<string, string>): void {
    const where = `GET /projects/${projectPath}/merge_requests/${iidText}/diffs`;
    this.requests.push({ route: 'listDiffs', params: { id: projectPath, iid: iidText }, query });
    if (!this.onlyParams(where, query, ['page', 'per_page', 'unidiff'])) {
      badRequest(res, 'unknown parameter');
      return;
    }
    const page = positiveInt(query.page ?? '1');
    const perPage = positiveInt(query.per_page ?? `${DEFAULT_PER_PAGE}`);
    const iid = positiveInt(iidText);
    if (page === undefined || perPage === undefined || perPage > MAX_PER_PAGE || iid === undefined) {
      this.violations.push(`${where}: page, per_page (1–${MAX_PER_PAGE}) and iid must be positive integers (${url.search})`);
      badRequest(res, 'page, per_page or iid is invalid');
      return;
    }
    const project = this.projects.get(projectPath);
    if (!project) {
      send(res, 404, { message: '404 Project Not Found' });
      return;
    }
    const all = project.diffs.get(iid);
    if (!all) {
      send(res, 404, { message: '404 Not found' });
      return;
    }
    const totalPages = Math.max(1, Math.ceil(all.length / perPage));
    const next = page < totalPages ? page + 1 : undefined;
    const prev = page > 1 ? page - 1 : undefined;
    const link = (p: number) => {
      const u = new URL(url.pathname, url.origin);
      u.searchParams.set('page', `${p}`);
      u.searchParams.set('per_page', `${perPage}`);
      return `<${u.href}>`;
    };
    const links = [
      ...(prev ? [`${link(prev)}; rel="prev"`] : []),
      ...(next ? [`${link(next)}; rel="next"`] : []),
      `${link(1)}; rel="first"`,
      `${link(totalPages)}; rel="last"`,
    ];
    send(res, 200, all.slice((page - 1) * perPage, page * perPage), {
      'x-page': `${page}`,
      'x-per-page': `${perPage}`,
      'x-next-page': next ? `${next}` : '',
      'x-prev-page': prev ? `${prev}` : '',
      'x-total': `${all.length}`,
      'x-total-pages': `${totalPages}`,
      link: links.join(', '),
    });
  }

  /** `GET /projects/:id/repository/files/:file_path/raw?ref=` (https://docs.gitlab.com/api/repository_files/#get-raw-file-from-repository). */
  private rawFile(res: ServerResponse, projectPath: string, filePath: string, query: Record<string, string>): void {
    const where = `GET /projects/${projectPath}/repository/files/${filePath}/raw`;
    this.requests.push({ route: 'rawFile', params: { id: projectPath, file_path: filePath }, query });
    if (!this.onlyParams(where, query, ['ref', 'lfs'])) {
      badRequest(res, 'unknown parameter');
      return;
    }
    if (!query.ref || (query.lfs !== undefined && query.lfs !== 'true' && query.lfs !== 'false')) {
      this.violations.push(`${where}: ref is required and lfs must be a boolean`);
      badRequest(res, 'ref is missing or lfs is invalid');
      return;
    }
    const project = this.projects.get(projectPath);
    if (!project) {
      send(res, 404, { message: '404 Project Not Found' });
      return;
    }
    const content = project.files.get(query.ref)?.get(filePath);
    if (content === undefined) {
      send(res, 404, { message: '404 File Not Found' });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(content);
  }
}

function positiveInt(text: string): number | undefined {
  return /^[1-9]\d*$/.test(text) ? Number(text) : undefined;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function badRequest(res: ServerResponse, why: string): void {
  send(res, 400, { error: why });
}
