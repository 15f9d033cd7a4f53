import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  AwardEmojiSchema,
  BranchSchema,
  CommitStatusSchema,
  DiffRefsSchema,
  ExpandedUserSchema,
  MemberSchema,
  MergeRequestDiffSchema,
  MergeRequestSchema,
  SimpleUserSchema,
} from '@gitbeaker/rest';

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
 *
 * The publisher's routes (notes, discussions, award emoji, members, commit statuses, branches,
 * commits, merge requests) keep state and answer in the shapes of gitbeaker's schemas (the fields
 * AgentFlow reads, as `Pick`s); their validation follows GitLab's REST docs, read 2026-11:
 * https://docs.gitlab.com/api/notes/, https://docs.gitlab.com/api/discussions/,
 * https://docs.gitlab.com/api/emoji_reactions/, https://docs.gitlab.com/api/members/,
 * https://docs.gitlab.com/api/commits/, https://docs.gitlab.com/api/branches/,
 * https://docs.gitlab.com/api/merge_requests/.
 */

/** One diff of a seeded merge request, as `GET …/merge_requests/:iid/diffs` lists it. */
export type SeededDiff = MergeRequestDiffSchema & { too_large?: boolean; collapsed?: boolean };

/** A request the stand-in answered: the route's name, the decoded path parameters and the query. */
export interface GitLabRequest {
  route: string;
  params: Record<string, string>;
  query: Record<string, string>;
}

/** A user as the stand-in keeps it (the fields of gitbeaker's `SimpleUserSchema` AgentFlow reads). */
export type StandInUser = Pick<SimpleUserSchema, 'id' | 'username' | 'name' | 'state' | 'avatar_url' | 'web_url'>;

/** A merge request as the stand-in keeps it (fields of gitbeaker's `MergeRequestSchema`). */
type StoredMergeRequest = Pick<
  MergeRequestSchema,
  | 'id'
  | 'iid'
  | 'project_id'
  | 'title'
  | 'description'
  | 'state'
  | 'web_url'
  | 'source_branch'
  | 'target_branch'
  | 'source_project_id'
  | 'target_project_id'
  | 'draft'
> & { diff_refs: DiffRefsSchema; author: StandInUser };

/** A text position as GitLab stores it on a diff note. */
interface StoredPosition {
  base_sha: string;
  start_sha: string;
  head_sha: string;
  position_type: 'text';
  old_path: string;
  new_path: string;
  old_line: number | null;
  new_line: number;
  line_range?: { start: StoredRangeEnd; end: StoredRangeEnd };
}

/** One end of a stored `line_range`, numbers as integers. */
interface StoredRangeEnd {
  line_code: string;
  type: string;
  old_line: number | null;
  new_line: number | null;
}

/** A note of a discussion (GitLab's `DiscussionNoteSchema` plus its resolution and position). */
export interface StoredNote {
  id: number;
  type: 'DiffNote' | 'DiscussionNote' | null;
  body: string;
  author: StandInUser;
  created_at: string;
  updated_at: string;
  system: boolean;
  noteable_id: number;
  noteable_type: 'MergeRequest';
  noteable_iid: number;
  resolvable: boolean;
  resolved?: boolean;
  resolved_by?: StandInUser | null;
  position?: StoredPosition;
  awards: Array<Pick<AwardEmojiSchema, 'id' | 'name' | 'awardable_id' | 'awardable_type'> & { user: StandInUser }>;
}

/** A discussion: an individual note (a plain MR note) or a thread. */
export interface StoredDiscussion {
  id: string;
  individual_note: boolean;
  notes: StoredNote[];
}

/** A commit status as GitLab lists it (fields of gitbeaker's `CommitStatusSchema`). */
type StoredStatus = Pick<
  CommitStatusSchema,
  'id' | 'sha' | 'ref' | 'name' | 'target_url' | 'description' | 'created_at' | 'allow_failure'
> & {
  status: string;
  author: StandInUser;
};

/** A seeded project: its merge requests' diffs by iid and its files by ref, then path, and the publisher's state. */
interface Project {
  id: number;
  path: string;
  diffs: Map<number, SeededDiff[]>;
  files: Map<string, Map<string, string>>;
  mergeRequests: Map<number, StoredMergeRequest>;
  discussions: Map<number, StoredDiscussion[]>;
  members: Map<number, number>;
  statuses: StoredStatus[];
  branches: Map<string, string>;
}

/** What a test seeds for a merge request besides its diffs. */
export interface SeededMergeRequest {
  baseSha: string;
  startSha?: string;
  headSha: string;
  sourceBranch: string;
  targetBranch: string;
  title?: string;
  /** The source project's full path when it is a fork. @default the project itself */
  sourceProject?: string;
  /** The author's username. @default 'dev' */
  author?: string;
}

/** Commit status states GitLab accepts (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit, read 2026-11; `skipped` since https://gitlab.com/gitlab-org/gitlab/-/merge_requests/168350). */
const STATUS_STATES = ['pending', 'running', 'success', 'failed', 'canceled', 'skipped'];
/** States after which a new status of the same name starts (GitLab updates only a running or pending one). */
const FINISHED_STATES = ['success', 'failed', 'canceled', 'skipped'];

/** GitLab's answer to a position it cannot place on the diff. */
const LINE_CODE_ERROR = { message: '400 Bad request - Note {:line_code=>["can\'t be blank", "must be a valid line code"]}' };

/** A request body: JSON, or form data with GitLab's bracketed names nested (gitbeaker sends a discussion's position as form data). */
type Body = Record<string, unknown>;

/** A route's handler: the path parameters (decoded) and the request. */
type Handler = (ctx: { res: ServerResponse; url: URL; params: string[]; query: Record<string, string>; body: Body; where: string }) => void;

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
 *   not URL-encoded, each leave a line in {@link violations} (and get 404 / 400); so do an unknown
 *   body field, a missing required one, a commit status state outside GitLab's list and a
 *   malformed commit action.
 * - The publisher's state: the token's user ({@link self}, `GET /user`), merge requests
 *   ({@link addMergeRequest} with `meta`; list, get, create with 409 for a second open one),
 *   notes and discussions (create, edit only by the author, reply, resolve), award emoji, members
 *   (`members/all/:user_id`, 404 for a non-member), commit statuses (a post moves the open status
 *   of that name or starts a new one; 400 for the same state again), branches and commits (the
 *   Commits API with `create`/`update` actions checked against the files at the parent).
 * - A diff position must name the merge request's `diff_refs` SHAs and a line its seeded diff shows
 *   (`old_line` too for a context line, `line_range` with GitLab's line codes); otherwise 400
 *   `{"message":"400 Bad request - Note {:line_code=>[…]}"}` as GitLab answers.
 * - Seeding for tests: {@link addUser}, {@link addMember}, {@link addNote}, {@link addReply},
 *   {@link addAward}, {@link resolve}, {@link setBranch}; reading: {@link discussionsOf},
 *   {@link notesOf}, {@link statusesOf}, {@link mergeRequestsOf}, {@link branchOf}, {@link filesAt}.
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

  constructor(
    private readonly token = 'glpat-standin',
    selfUsername = 'agentflow-bot',
  ) {
    this.self = this.addUser(selfUsername);
  }

  /** The token's user (`GET /user`): AgentFlow. */
  readonly self: StandInUser;
  private readonly users = new Map<string, StandInUser>();
  /** Groups by full path: member user ids and access levels (direct and inherited alike). */
  private readonly groups = new Map<string, { id: number; members: Map<number, number> }>();
  /** Merge bases seeded by {@link setMergeBase}: `<project> <ref> <ref>` → SHA. */
  private readonly mergeBases = new Map<string, string>();
  private nextId = 100;

  /** Seeds a project by its full path (`group/sub/project`). */
  addProject(path: string): void {
    if (!this.projects.has(path)) {
      this.projects.set(path, {
        id: this.projects.size + 1,
        path,
        diffs: new Map(),
        files: new Map(),
        mergeRequests: new Map(),
        discussions: new Map(),
        members: new Map(),
        statuses: [],
        branches: new Map(),
      });
    }
  }

  /**
   * Seeds merge request `iid` of the project at `path` with its diffs and, with `meta`, its
   * branches and `diff_refs` (the source branch's tip is the head SHA; needed by the publisher's routes).
   */
  addMergeRequest(path: string, iid: number, diffs: readonly SeededDiff[], meta?: SeededMergeRequest): void {
    const p = this.project(path);
    p.diffs.set(iid, [...diffs]);
    if (!meta) return;
    const source = meta.sourceProject ? this.project(meta.sourceProject) : p;
    p.mergeRequests.set(iid, {
      id: 1000 + iid,
      iid,
      project_id: p.id,
      title: meta.title ?? `MR ${iid}`,
      description: '',
      state: 'opened',
      web_url: `https://gitlab.example/${path}/-/merge_requests/${iid}`,
      source_branch: meta.sourceBranch,
      target_branch: meta.targetBranch,
      source_project_id: source.id,
      target_project_id: p.id,
      draft: false,
      author: this.addUser(meta.author ?? 'dev'),
      diff_refs: { base_sha: meta.baseSha, start_sha: meta.startSha ?? meta.baseSha, head_sha: meta.headSha },
    });
    source.branches.set(meta.sourceBranch, meta.headSha);
    if (!p.branches.has(meta.targetBranch)) p.branches.set(meta.targetBranch, meta.startSha ?? meta.baseSha);
  }

  /** Seeds (or finds) a user by username. */
  addUser(username: string): StandInUser {
    let u = this.users.get(username);
    if (!u) {
      u = { id: this.nextId++, username, name: username, state: 'active', avatar_url: '', web_url: `https://gitlab.example/${username}` };
      this.users.set(username, u);
    }
    return u;
  }

  /** Makes `username` a member of the project with `accessLevel` (10 Guest, 20 Reporter, 30 Developer, 40 Maintainer). */
  addMember(path: string, username: string, accessLevel: number): void {
    this.project(path).members.set(this.addUser(username).id, accessLevel);
  }

  /** Seeds group `path` (`acme/mobile/leads`) with `username` as a member at `accessLevel` (inherited membership included). */
  addGroupMember(path: string, username: string, accessLevel: number): void {
    const group = this.groups.get(path) ?? { id: 5000 + this.groups.size, members: new Map<number, number>() };
    group.members.set(this.addUser(username).id, accessLevel);
    this.groups.set(path, group);
  }

  /** Says that the merge base of refs `a` and `b` of the project is `sha` (the stand-in keeps no commit graph). */
  setMergeBase(path: string, a: string, b: string, sha: string): void {
    this.mergeBases.set(`${path} ${a} ${b}`, sha);
    this.mergeBases.set(`${path} ${b} ${a}`, sha);
  }

  /** Points branch `name` of the project at `sha`. */
  setBranch(path: string, name: string, sha: string): void {
    this.project(path).branches.set(name, sha);
  }

  /** The discussions of merge request `iid` (live: tests read and change them). */
  discussionsOf(path: string, iid: number): StoredDiscussion[] {
    const p = this.project(path);
    const list = p.discussions.get(iid) ?? [];
    p.discussions.set(iid, list);
    return list;
  }

  /** Every note of merge request `iid`, in order. */
  notesOf(path: string, iid: number): StoredNote[] {
    return this.discussionsOf(path, iid).flatMap((d) => d.notes);
  }

  /** Seeds a plain note (an individual discussion) by `author`. @returns the note */
  addNote(path: string, iid: number, author: string, body: string): StoredNote {
    const note = this.newNote(path, iid, this.addUser(author), body, null);
    this.discussionsOf(path, iid).push({ id: this.discussionId(), individual_note: true, notes: [note] });
    return note;
  }

  /** Seeds a reply by `author` to the discussion whose first note is `noteId`. */
  addReply(path: string, iid: number, noteId: number, author: string, body: string): StoredNote {
    const d = this.discussionsOf(path, iid).find((x) => x.notes[0]?.id === noteId);
    if (!d) throw new Error(`no discussion opened by note ${noteId}`);
    const note = this.newNote(path, iid, this.addUser(author), body, 'DiffNote');
    note.resolvable = true;
    note.resolved = d.notes[0]?.resolved ?? false;
    d.notes.push(note);
    return note;
  }

  /** Seeds an award emoji (`thumbsup`, `thumbsdown`…) by `username` on note `noteId`. */
  addAward(path: string, iid: number, noteId: number, username: string, name: string): void {
    const note = this.notesOf(path, iid).find((n) => n.id === noteId);
    if (!note) throw new Error(`no note ${noteId}`);
    note.awards.push({ id: this.nextId++, name, user: this.addUser(username), awardable_id: noteId, awardable_type: 'Note' });
  }

  /** Resolves the discussion whose first note is `noteId`, as `username` did. */
  resolve(path: string, iid: number, noteId: number, username: string): void {
    const d = this.discussionsOf(path, iid).find((x) => x.notes[0]?.id === noteId);
    if (!d) throw new Error(`no discussion opened by note ${noteId}`);
    this.setResolved(d, true, this.addUser(username));
  }

  /** The commit statuses of the project, oldest first. */
  statusesOf(path: string): readonly StoredStatus[] {
    return this.project(path).statuses;
  }

  /** The merge requests of the project by iid. */
  mergeRequestsOf(path: string): ReadonlyMap<number, StoredMergeRequest> {
    return this.project(path).mergeRequests;
  }

  /** The tip of branch `name`, if it exists. */
  branchOf(path: string, name: string): string | undefined {
    return this.project(path).branches.get(name);
  }

  /** The files of the project at `ref`. */
  filesAt(path: string, ref: string): ReadonlyMap<string, string> {
    return this.project(path).files.get(ref) ?? new Map();
  }

  private newNote(path: string, iid: number, author: StandInUser, body: string, type: StoredNote['type']): StoredNote {
    const now = new Date().toISOString();
    const mr = this.project(path).mergeRequests.get(iid);
    return {
      id: this.nextId++,
      type,
      body,
      author,
      created_at: now,
      updated_at: now,
      system: false,
      noteable_id: mr?.id ?? iid,
      noteable_type: 'MergeRequest',
      noteable_iid: iid,
      resolvable: false,
      awards: [],
    };
  }

  private discussionId(): string {
    return createHash('sha1')
      .update(`d${this.nextId++}`)
      .digest('hex');
  }

  private setResolved(d: StoredDiscussion, resolved: boolean, by: StandInUser): void {
    for (const n of d.notes) {
      if (!n.resolvable) continue;
      n.resolved = resolved;
      n.resolved_by = resolved ? by : null;
    }
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
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const fail = (e: unknown) => {
          this.violations.push(`${req.method} ${req.url}: stand-in error ${(e as Error).stack ?? String(e)}`);
          send(res, 500, { message: '500 Internal Server Error' });
        };
        parseBody(req.headers['content-type'], Buffer.concat(chunks))
          .then((body) => {
            try {
              this.handle(req, res, body);
            } catch (e) {
              fail(e);
            }
          })
          .catch(fail);
      });
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

  private handle(req: IncomingMessage, res: ServerResponse, parsed: Body | undefined): void {
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
    if (!parsed) {
      this.violations.push(`${req.method} ${raw}: the body is neither JSON nor form data`);
      badRequest(res, 'body is not JSON or form data');
      return;
    }
    const body = parsed;
    for (const [method, pattern, name, handler] of this.routes()) {
      const m = req.method === method ? pattern.exec(raw) : null;
      if (!m) continue;
      const params = m.slice(1).map((x) => decodeURIComponent(x ?? ''));
      this.requests.push({ route: name, params: Object.fromEntries(params.map((v, i) => [`${i}`, v])), query });
      handler({ res, url, params, query, body, where: `${method} ${raw}` });
      return;
    }
    this.violations.push(`${req.method} ${raw}: no such GitLab route in the stand-in`);
    send(res, 404, { error: '404 Not Found' });
  }

  /** The publisher's routes: method, raw path pattern (`/api/v4/…`), name, handler. */
  private routes(): Array<[string, RegExp, string, Handler]> {
    const P = '/api/v4/projects/([^/]+)';
    const MR = `${P}/merge_requests/(\\d+)`;
    const r = (pattern: string) => new RegExp(`^${pattern}$`);
    return [
      ['GET', r('/api/v4/user'), 'currentUser', (c) => this.currentUser(c)],
      ['GET', r(`${P}/merge_requests`), 'listMergeRequests', (c) => this.listMergeRequests(c)],
      ['POST', r(`${P}/merge_requests`), 'createMergeRequest', (c) => this.createMergeRequest(c)],
      ['GET', r(MR), 'showMergeRequest', (c) => this.withMergeRequest(c, [], (_p, mr) => send(c.res, 200, publicMergeRequest(mr)))],
      ['GET', r(`${MR}/notes`), 'listNotes', (c) => this.listNotes(c)],
      ['POST', r(`${MR}/notes`), 'createNote', (c) => this.createNote(c)],
      ['PUT', r(`${MR}/notes/(\\d+)`), 'editNote', (c) => this.editNote(c)],
      ['GET', r(`${MR}/notes/(\\d+)/award_emoji`), 'listAwards', (c) => this.listAwards(c)],
      ['GET', r(`${MR}/discussions`), 'listDiscussions', (c) => this.listDiscussions(c)],
      ['POST', r(`${MR}/discussions`), 'createDiscussion', (c) => this.createDiscussion(c)],
      ['POST', r(`${MR}/discussions/([0-9a-f]+)/notes`), 'addDiscussionNote', (c) => this.addDiscussionNote(c)],
      ['PUT', r(`${MR}/discussions/([0-9a-f]+)`), 'resolveDiscussion', (c) => this.resolveDiscussion(c)],
      ['GET', r(`${P}/members/all/(\\d+)`), 'showMember', (c) => this.showMember(c)],
      ['POST', r(`${P}/statuses/([^/]+)`), 'postStatus', (c) => this.postStatus(c)],
      ['GET', r(`${P}/repository/commits/([^/]+)/statuses`), 'listStatuses', (c) => this.listStatuses(c)],
      ['GET', r(`${P}/repository/branches/([^/]+)`), 'showBranch', (c) => this.showBranch(c)],
      ['POST', r(`${P}/repository/commits`), 'createCommit', (c) => this.createCommit(c)],
      ['GET', r(`${P}/repository/commits/([^/]+)`), 'showCommit', (c) => this.showCommit(c)],
      ['GET', r(`${P}/repository/merge_base`), 'mergeBase', (c) => this.mergeBase(c)],
      ['GET', r('/api/v4/users'), 'listUsers', (c) => this.listUsers(c)],
      ['GET', r('/api/v4/groups/([^/]+)/members/all/(\\d+)'), 'showGroupMember', (c) => this.showGroupMember(c)],
    ];
  }

  /** Violations for body fields not in `allowed` and missing `required` ones. @returns whether the body is valid */
  private onlyFields(where: string, body: Body, allowed: readonly string[], required: readonly string[] = []): boolean {
    const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
    for (const k of unknown) this.violations.push(`${where}: unknown body field ${k}`);
    const missing = required.filter((k) => body[k] === undefined || body[k] === '');
    for (const k of missing) this.violations.push(`${where}: missing body field ${k}`);
    return unknown.length === 0 && missing.length === 0;
  }

  /** Runs `then` with the project named by `params[0]`, or answers 404. */
  private withProject(c: Parameters<Handler>[0], then: (p: Project) => void): void {
    const p = this.projects.get(c.params[0] ?? '');
    if (!p) send(c.res, 404, { message: '404 Project Not Found' });
    else then(p);
  }

  /** Runs `then` with the project and merge request `params[1]` after checking the query, or answers 404 / 400. */
  private withMergeRequest(c: Parameters<Handler>[0], query: readonly string[], then: (p: Project, mr: StoredMergeRequest) => void): void {
    if (!this.onlyParams(c.where, c.query, query)) {
      badRequest(c.res, 'unknown parameter');
      return;
    }
    this.withProject(c, (p) => {
      const mr = p.mergeRequests.get(Number(c.params[1]));
      if (!mr) send(c.res, 404, { message: '404 Not found' });
      else then(p, mr);
    });
  }

  /** Answers one page of `items` with GitLab's pagination headers. */
  private sendPage(c: Parameters<Handler>[0], items: readonly unknown[]): void {
    const page = positiveInt(c.query.page ?? '1');
    const perPage = positiveInt(c.query.per_page ?? `${DEFAULT_PER_PAGE}`);
    if (page === undefined || perPage === undefined || perPage > MAX_PER_PAGE) {
      this.violations.push(`${c.where}: page and per_page (1–${MAX_PER_PAGE}) must be positive integers (${c.url.search})`);
      badRequest(c.res, 'page or per_page is invalid');
      return;
    }
    const totalPages = Math.max(1, Math.ceil(items.length / perPage));
    const next = page < totalPages ? page + 1 : undefined;
    const link = (n: number) => {
      const u = new URL(c.url.href);
      u.searchParams.set('page', `${n}`);
      u.searchParams.set('per_page', `${perPage}`);
      return `<${u.href}>`;
    };
    send(c.res, 200, items.slice((page - 1) * perPage, page * perPage), {
      'x-page': `${page}`,
      'x-per-page': `${perPage}`,
      'x-next-page': next ? `${next}` : '',
      'x-prev-page': page > 1 ? `${page - 1}` : '',
      'x-total': `${items.length}`,
      'x-total-pages': `${totalPages}`,
      link: [...(next ? [`${link(next)}; rel="next"`] : []), `${link(1)}; rel="first"`, `${link(totalPages)}; rel="last"`].join(', '),
    });
  }

  /** `GET /user` (https://docs.gitlab.com/api/users/#get-the-current-user). */
  private currentUser(c: Parameters<Handler>[0]): void {
    if (!this.onlyParams(c.where, c.query, [])) {
      badRequest(c.res, 'unknown parameter');
      return;
    }
    const user: Pick<ExpandedUserSchema, 'id' | 'username' | 'name' | 'state' | 'web_url' | 'bot'> = { ...this.self, bot: true };
    send(c.res, 200, user);
  }

  /** `GET /projects/:id/merge_requests?source_branch=&state=` (https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests). */
  private listMergeRequests(c: Parameters<Handler>[0]): void {
    if (!this.onlyParams(c.where, c.query, ['source_branch', 'target_branch', 'state', 'page', 'per_page'])) {
      badRequest(c.res, 'unknown parameter');
      return;
    }
    if (c.query.state && !['opened', 'closed', 'locked', 'merged', 'all'].includes(c.query.state)) {
      this.violations.push(`${c.where}: state ${c.query.state} is not one of opened, closed, locked, merged, all`);
      badRequest(c.res, 'state does not have a valid value');
      return;
    }
    this.withProject(c, (p) => {
      const list = [...p.mergeRequests.values()].filter(
        (mr) =>
          (!c.query.source_branch || mr.source_branch === c.query.source_branch) &&
          (!c.query.target_branch || mr.target_branch === c.query.target_branch) &&
          (!c.query.state || c.query.state === 'all' || mr.state === c.query.state),
      );
      this.sendPage(c, list.reverse().map(publicMergeRequest));
    });
  }

  /** `POST /projects/:id/merge_requests`: 409 when an open one has the same source and target branches. */
  private createMergeRequest(c: Parameters<Handler>[0]): void {
    if (
      !this.onlyFields(
        c.where,
        c.body,
        ['source_branch', 'target_branch', 'title', 'description'],
        ['source_branch', 'target_branch', 'title'],
      )
    ) {
      badRequest(c.res, 'invalid merge request');
      return;
    }
    this.withProject(c, (p) => {
      const source = String(c.body.source_branch);
      const target = String(c.body.target_branch);
      if (!p.branches.has(source) || !p.branches.has(target)) {
        send(c.res, 400, { message: { source_branch: ['is invalid'] } });
        return;
      }
      if ([...p.mergeRequests.values()].some((m) => m.state === 'opened' && m.source_branch === source && m.target_branch === target)) {
        send(c.res, 409, { message: ['Another open merge request already exists for this source branch'] });
        return;
      }
      const iid = Math.max(0, ...p.mergeRequests.keys()) + 1;
      const title = String(c.body.title);
      const head = p.branches.get(source) ?? '';
      const mr: StoredMergeRequest = {
        id: 1000 + iid,
        iid,
        project_id: p.id,
        title,
        author: this.self,
        description: typeof c.body.description === 'string' ? c.body.description : '',
        state: 'opened',
        web_url: `https://gitlab.example/${p.path}/-/merge_requests/${iid}`,
        source_branch: source,
        target_branch: target,
        source_project_id: p.id,
        target_project_id: p.id,
        draft: /^(?:\[draft\]|\(draft\)|draft:)/i.test(title),
        diff_refs: { base_sha: p.branches.get(target) ?? '', start_sha: p.branches.get(target) ?? '', head_sha: head },
      };
      p.mergeRequests.set(iid, mr);
      send(c.res, 201, publicMergeRequest(mr));
    });
  }

  /** `GET …/merge_requests/:iid/notes` (every note, discussion notes included). */
  private listNotes(c: Parameters<Handler>[0]): void {
    this.withMergeRequest(c, ['page', 'per_page', 'sort', 'order_by'], (p) => {
      this.sendPage(c, this.notesOf(p.path, Number(c.params[1])).map(publicNote));
    });
  }

  /** `POST …/merge_requests/:iid/notes`: a note by the token's user. */
  private createNote(c: Parameters<Handler>[0]): void {
    if (!this.onlyFields(c.where, c.body, ['body', 'internal', 'merge_request_diff_sha', 'created_at'], ['body'])) {
      badRequest(c.res, 'body is missing');
      return;
    }
    this.withMergeRequest(c, [], (p, mr) => {
      const note = this.newNote(p.path, mr.iid, this.self, String(c.body.body), null);
      this.discussionsOf(p.path, mr.iid).push({ id: this.discussionId(), individual_note: true, notes: [note] });
      send(c.res, 201, publicNote(note));
    });
  }

  /** `PUT …/merge_requests/:iid/notes/:note_id`: only the author may edit (403 otherwise). */
  private editNote(c: Parameters<Handler>[0]): void {
    if (!this.onlyFields(c.where, c.body, ['body'], ['body'])) {
      badRequest(c.res, 'body is missing');
      return;
    }
    this.withMergeRequest(c, [], (p, mr) => {
      const note = this.notesOf(p.path, mr.iid).find((n) => n.id === Number(c.params[2]));
      if (!note) {
        send(c.res, 404, { message: '404 Note Not Found' });
        return;
      }
      if (note.author.id !== this.self.id) {
        send(c.res, 403, { message: '403 Forbidden' });
        return;
      }
      note.body = String(c.body.body);
      note.updated_at = new Date().toISOString();
      send(c.res, 200, publicNote(note));
    });
  }

  /** `GET …/merge_requests/:iid/notes/:note_id/award_emoji`. */
  private listAwards(c: Parameters<Handler>[0]): void {
    this.withMergeRequest(c, ['page', 'per_page'], (p, mr) => {
      const note = this.notesOf(p.path, mr.iid).find((n) => n.id === Number(c.params[2]));
      if (!note) {
        send(c.res, 404, { message: '404 Note Not Found' });
        return;
      }
      this.sendPage(c, note.awards);
    });
  }

  /** `GET …/merge_requests/:iid/discussions`. */
  private listDiscussions(c: Parameters<Handler>[0]): void {
    this.withMergeRequest(c, ['page', 'per_page'], (p, mr) => {
      this.sendPage(
        c,
        this.discussionsOf(p.path, mr.iid).map((d) => ({ ...d, notes: d.notes.map(publicNote) })),
      );
    });
  }

  /** `POST …/merge_requests/:iid/discussions`, with a `position` checked against the MR's diff_refs and diff. */
  private createDiscussion(c: Parameters<Handler>[0]): void {
    if (!this.onlyFields(c.where, c.body, ['body', 'position', 'commit_id', 'created_at'], ['body'])) {
      badRequest(c.res, 'body is missing');
      return;
    }
    this.withMergeRequest(c, [], (p, mr) => {
      let position: StoredPosition | undefined;
      if (c.body.position !== undefined) {
        position = this.checkPosition(c.where, p, mr, c.body.position);
        if (!position) {
          send(c.res, 400, LINE_CODE_ERROR);
          return;
        }
      }
      const note = this.newNote(p.path, mr.iid, this.self, String(c.body.body), position ? 'DiffNote' : 'DiscussionNote');
      note.resolvable = true;
      note.resolved = false;
      note.resolved_by = null;
      if (position) note.position = position;
      const d: StoredDiscussion = { id: this.discussionId(), individual_note: false, notes: [note] };
      this.discussionsOf(p.path, mr.iid).push(d);
      send(c.res, 201, { ...d, notes: d.notes.map(publicNote) });
    });
  }

  /**
   * A diff note's position: SHAs equal to the MR's `diff_refs`, paths of a diff file, `new_line` a
   * line the diff shows, `old_line` too (and equal) for a context line, `line_range` ends with the
   * file's line codes. @returns the stored position, or undefined (GitLab: 400)
   */
  private checkPosition(where: string, p: Project, mr: StoredMergeRequest, raw: unknown): StoredPosition | undefined {
    const pos = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const allowed = ['base_sha', 'start_sha', 'head_sha', 'position_type', 'old_path', 'new_path', 'old_line', 'new_line', 'line_range'];
    for (const k of Object.keys(pos)) if (!allowed.includes(k)) this.violations.push(`${where}: unknown position field ${k}`);
    if (pos.position_type !== 'text') this.violations.push(`${where}: position_type must be text`);
    const refs = mr.diff_refs;
    if (pos.base_sha !== refs.base_sha || pos.start_sha !== refs.start_sha || pos.head_sha !== refs.head_sha) return undefined;
    const file = (p.diffs.get(mr.iid) ?? []).find((d) => d.new_path === pos.new_path);
    if (!file || pos.old_path !== file.old_path) return undefined;
    const lines = standInDiffLines(file.diff);
    const newLine = lineNumber(pos.new_line);
    const oldLine = pos.old_line === undefined ? undefined : lineNumber(pos.old_line);
    const line = newLine === undefined ? undefined : lines.get(newLine);
    if (!line || newLine === undefined) return undefined;
    if (line.added ? oldLine !== undefined : oldLine !== line.old) return undefined;
    const range = pos.line_range === undefined ? undefined : this.checkRange(where, file.new_path, lines, newLine, pos.line_range);
    if (pos.line_range !== undefined && !range) return undefined;
    return {
      base_sha: refs.base_sha,
      start_sha: refs.start_sha,
      head_sha: refs.head_sha,
      position_type: 'text',
      old_path: file.old_path,
      new_path: file.new_path,
      old_line: line.added ? null : line.old,
      new_line: newLine,
      ...(range ? { line_range: range } : {}),
    };
  }

  /**
   * A `line_range` whose `start` and `end` carry the file's line codes, `end` on `new_line`.
   * @returns it as GitLab stores it, or undefined when it is invalid
   */
  private checkRange(
    where: string,
    path: string,
    lines: Map<number, { old: number; added: boolean }>,
    newLine: number,
    raw: unknown,
  ): StoredPosition['line_range'] {
    const range = raw as { start?: Record<string, unknown>; end?: Record<string, unknown> };
    const sha = createHash('sha1').update(path).digest('hex');
    const code = (n: number) => {
      const l = lines.get(n);
      return l ? `${sha}_${l.old}_${n}` : undefined;
    };
    const ends = [range?.start, range?.end];
    for (const e of ends) {
      for (const k of Object.keys(e ?? {}))
        if (!['line_code', 'type', 'old_line', 'new_line'].includes(k)) this.violations.push(`${where}: unknown line_range field ${k}`);
      if (e?.type !== 'new' && e?.type !== 'old') this.violations.push(`${where}: line_range type must be new or old`);
    }
    const start = lineNumber(range?.start?.new_line);
    const valid =
      start !== undefined && start <= newLine && range?.start?.line_code === code(start) && range?.end?.line_code === code(newLine);
    if (!valid || !range.start || !range.end) return undefined;
    const stored = (e: Record<string, unknown>): StoredRangeEnd => ({
      line_code: String(e.line_code),
      type: String(e.type),
      old_line: lineNumber(e.old_line) ?? null,
      new_line: lineNumber(e.new_line) ?? null,
    });
    return { start: stored(range.start), end: stored(range.end) };
  }

  /** `POST …/discussions/:discussion_id/notes`: a reply by the token's user. */
  private addDiscussionNote(c: Parameters<Handler>[0]): void {
    if (!this.onlyFields(c.where, c.body, ['body', 'created_at'], ['body'])) {
      badRequest(c.res, 'body is missing');
      return;
    }
    this.withMergeRequest(c, [], (p, mr) => {
      const d = this.discussionsOf(p.path, mr.iid).find((x) => x.id === c.params[2]);
      if (!d) {
        send(c.res, 404, { message: '404 Discussion Not Found' });
        return;
      }
      const note = this.newNote(p.path, mr.iid, this.self, String(c.body.body), d.notes[0]?.type ?? null);
      note.resolvable = d.notes[0]?.resolvable ?? false;
      if (note.resolvable) note.resolved = d.notes[0]?.resolved ?? false;
      d.notes.push(note);
      send(c.res, 201, publicNote(note));
    });
  }

  /** `PUT …/discussions/:discussion_id?resolved=true|false`. */
  private resolveDiscussion(c: Parameters<Handler>[0]): void {
    if (!this.onlyFields(c.where, c.body, [])) {
      badRequest(c.res, 'unknown field');
      return;
    }
    if (c.query.resolved !== 'true' && c.query.resolved !== 'false') {
      this.violations.push(`${c.where}: resolved must be true or false`);
      badRequest(c.res, 'resolved is missing');
      return;
    }
    this.withMergeRequest(c, ['resolved'], (p, mr) => {
      const d = this.discussionsOf(p.path, mr.iid).find((x) => x.id === c.params[2]);
      if (!d) {
        send(c.res, 404, { message: '404 Discussion Not Found' });
        return;
      }
      if (!d.notes[0]?.resolvable) {
        send(c.res, 400, { message: '400 Bad request - Discussion is not resolvable' });
        return;
      }
      this.setResolved(d, c.query.resolved === 'true', this.self);
      send(c.res, 200, { ...d, notes: d.notes.map(publicNote) });
    });
  }

  /** `GET /projects/:id/members/all/:user_id`: 404 for a non-member. */
  private showMember(c: Parameters<Handler>[0]): void {
    if (!this.onlyParams(c.where, c.query, [])) {
      badRequest(c.res, 'unknown parameter');
      return;
    }
    this.withProject(c, (p) => {
      const id = Number(c.params[1]);
      const level = p.members.get(id);
      const user = [...this.users.values()].find((u) => u.id === id);
      if (level === undefined || !user) {
        send(c.res, 404, { message: '404 Not found' });
        return;
      }
      const member: Pick<MemberSchema, 'id' | 'username' | 'name' | 'state' | 'access_level'> = {
        id,
        username: user.username,
        name: user.name,
        state: 'active',
        access_level: level as MemberSchema['access_level'],
      };
      send(c.res, 200, member);
    });
  }

  /**
   * `POST /projects/:id/statuses/:sha`: moves the latest running or pending status of that name to
   * `state` (400 for the same state, as GitLab refuses the transition), else starts a new one.
   */
  private postStatus(c: Parameters<Handler>[0]): void {
    const fields = ['state', 'ref', 'name', 'context', 'target_url', 'description', 'coverage', 'pipeline_id'];
    if (!this.onlyFields(c.where, c.body, fields, ['state'])) {
      badRequest(c.res, 'state is missing');
      return;
    }
    const state = String(c.body.state);
    if (!STATUS_STATES.includes(state)) {
      this.violations.push(`${c.where}: state ${state} is not one of ${STATUS_STATES.join(', ')}`);
      badRequest(c.res, 'state does not have a valid value');
      return;
    }
    if (typeof c.body.description === 'string' && c.body.description.length > 255) {
      this.violations.push(`${c.where}: description longer than 255 characters`);
    }
    this.withProject(c, (p) => {
      const sha = c.params[1] ?? '';
      const name = typeof c.body.name === 'string' ? c.body.name : 'default';
      const open = p.statuses.filter((s) => s.sha === sha && s.name === name && !FINISHED_STATES.includes(s.status)).at(-1);
      // GitLab's commit status state machine: `skip` only from created/pending, `run` only from
      // pending, no event to the state it is in (https://gitlab.com/gitlab-org/gitlab, app/models/commit_status.rb).
      const refused =
        open !== undefined &&
        (open.status === state || (state === 'skipped' && open.status === 'running') || (state === 'pending' && open.status === 'running'));
      if (open && refused) {
        send(c.res, 400, { message: `Cannot transition status via :${state} from :${open.status}` });
        return;
      }
      // Without a ref GitLab takes the first branch holding the SHA; none: 404.
      if (typeof c.body.ref !== 'string' && ![...p.branches.values()].includes(sha)) {
        send(c.res, 404, { message: '404 References for commit Not Found' });
        return;
      }
      const status: StoredStatus = open ?? {
        id: this.nextId++,
        sha,
        ref: typeof c.body.ref === 'string' ? c.body.ref : '',
        name,
        target_url: '',
        description: '',
        created_at: new Date().toISOString(),
        allow_failure: false,
        status: state,
        author: this.self,
      };
      status.status = state;
      if (typeof c.body.target_url === 'string') status.target_url = c.body.target_url;
      if (typeof c.body.description === 'string') status.description = c.body.description;
      if (!open) p.statuses.push(status);
      send(c.res, 201, status);
    });
  }

  /** `GET /projects/:id/repository/commits/:sha/statuses?name=&all=`: the latest per name unless `all`. */
  private listStatuses(c: Parameters<Handler>[0]): void {
    if (!this.onlyParams(c.where, c.query, ['ref', 'stage', 'name', 'all', 'page', 'per_page', 'sort', 'order_by', 'pipeline_id'])) {
      badRequest(c.res, 'unknown parameter');
      return;
    }
    this.withProject(c, (p) => {
      const of = p.statuses.filter((s) => s.sha === c.params[1] && (!c.query.name || s.name === c.query.name));
      const latest = c.query.all === 'true' ? of : of.filter((s) => of.filter((t) => t.name === s.name).at(-1) === s);
      this.sendPage(c, [...latest].reverse());
    });
  }

  /** `GET /projects/:id/repository/branches/:branch`. */
  /** The commit a ref names: a branch, or a SHA the project knows (files, diff refs, branches). */
  private resolveRef(p: Project, ref: string): string | undefined {
    if (p.branches.has(ref)) return p.branches.get(ref);
    const known = new Set([...p.files.keys(), ...p.branches.values()]);
    for (const mr of p.mergeRequests.values()) for (const sha of Object.values(mr.diff_refs)) if (sha) known.add(sha);
    return known.has(ref) ? ref : undefined;
  }

  /** `GET /projects/:id/repository/commits/:sha` (https://docs.gitlab.com/api/commits/#get-a-single-commit): a branch or a known SHA. */
  private showCommit(c: Parameters<Handler>[0]): void {
    if (!this.onlyParams(c.where, c.query, ['stats'])) {
      badRequest(c.res, 'unknown parameter');
      return;
    }
    this.withProject(c, (p) => {
      const sha = this.resolveRef(p, c.params[1] ?? '');
      if (!sha) send(c.res, 404, { message: '404 Commit Not Found' });
      else send(c.res, 200, { id: sha, short_id: sha.slice(0, 8), title: 'commit', parent_ids: [] });
    });
  }

  /** `GET /projects/:id/repository/merge_base?refs[]=a&refs[]=b` (https://docs.gitlab.com/api/repositories/#merge-base): a seeded merge base. */
  private mergeBase(c: Parameters<Handler>[0]): void {
    const refs = c.url.searchParams.getAll('refs[]');
    if ([...c.url.searchParams.keys()].some((k) => k !== 'refs[]') || refs.length !== 2) {
      this.violations.push(`${c.where}: merge_base takes exactly two refs[] parameters`);
      badRequest(c.res, 'refs is invalid');
      return;
    }
    this.withProject(c, (p) => {
      const [a = '', b = ''] = refs.map((ref) => this.resolveRef(p, ref) ?? ref);
      const sha = this.mergeBases.get(`${p.path} ${a} ${b}`);
      if (!sha) send(c.res, 404, { message: '404 Commit Not Found' });
      else send(c.res, 200, { id: sha, short_id: sha.slice(0, 8), title: 'merge base', parent_ids: [] });
    });
  }

  /** `GET /users?username=` (https://docs.gitlab.com/api/users/#list-users): the user of that name, or none. */
  private listUsers(c: Parameters<Handler>[0]): void {
    if (!this.onlyParams(c.where, c.query, ['username', 'page', 'per_page'])) {
      badRequest(c.res, 'unknown parameter');
      return;
    }
    const user = this.users.get(c.query.username ?? '');
    send(c.res, 200, user ? [user] : []);
  }

  /** `GET /groups/:id/members/all/:user_id` (https://docs.gitlab.com/api/members/): 404 for a non-member or an unknown group. */
  private showGroupMember(c: Parameters<Handler>[0]): void {
    if (!this.onlyParams(c.where, c.query, [])) {
      badRequest(c.res, 'unknown parameter');
      return;
    }
    const group = this.groups.get(c.params[0] ?? '');
    const id = Number(c.params[1]);
    const level = group?.members.get(id);
    const user = [...this.users.values()].find((u) => u.id === id);
    if (level === undefined || !user) {
      send(c.res, 404, { message: '404 Not found' });
      return;
    }
    send(c.res, 200, { id, username: user.username, name: user.name, state: 'active', access_level: level });
  }

  private showBranch(c: Parameters<Handler>[0]): void {
    if (!this.onlyParams(c.where, c.query, [])) {
      badRequest(c.res, 'unknown parameter');
      return;
    }
    this.withProject(c, (p) => {
      const sha = p.branches.get(c.params[1] ?? '');
      if (!sha) {
        send(c.res, 404, { message: '404 Branch Not Found' });
        return;
      }
      const branch: Pick<BranchSchema, 'name' | 'merged' | 'protected' | 'default'> & { commit: { id: string } } = {
        name: c.params[1] ?? '',
        merged: false,
        protected: false,
        default: false,
        commit: { id: sha },
      };
      send(c.res, 200, branch);
    });
  }

  /**
   * `POST /projects/:id/repository/commits`: `create` of an existing file and `update` of a missing
   * one are refused (400); the parent is `start_sha`, else the branch's tip; an existing branch with
   * `start_sha` needs `force` (GitLab: 400 "A branch called … already exists").
   */
  private createCommit(c: Parameters<Handler>[0]): void {
    const fields = [
      'branch',
      'commit_message',
      'actions',
      'start_branch',
      'start_sha',
      'start_project',
      'author_email',
      'author_name',
      'stats',
      'force',
    ];
    if (!this.onlyFields(c.where, c.body, fields, ['branch', 'commit_message', 'actions'])) {
      badRequest(c.res, 'invalid commit');
      return;
    }
    this.withProject(c, (p) => {
      const branch = String(c.body.branch);
      const startSha = typeof c.body.start_sha === 'string' ? c.body.start_sha : undefined;
      const tip = p.branches.get(branch);
      if (tip && startSha && c.body.force !== true) {
        send(c.res, 400, { message: `A branch called '${branch}' already exists. Switch to that branch in order to make changes` });
        return;
      }
      const parent = startSha ?? tip;
      if (!parent) {
        send(c.res, 400, { message: 'You can only create or edit files when you are on a branch' });
        return;
      }
      const files = new Map(p.files.get(parent) ?? []);
      const actions = Array.isArray(c.body.actions) ? (c.body.actions as Body[]) : [];
      for (const a of actions) {
        for (const k of Object.keys(a))
          if (!['action', 'file_path', 'content', 'encoding', 'previous_path', 'last_commit_id', 'execute_filemode'].includes(k)) {
            this.violations.push(`${c.where}: unknown action field ${k}`);
          }
        const path = String(a.file_path ?? '');
        if (!['create', 'update'].includes(String(a.action)) || !path || typeof a.content !== 'string') {
          this.violations.push(`${c.where}: an action needs action create|update, file_path and content (${JSON.stringify(a)})`);
          badRequest(c.res, 'invalid action');
          return;
        }
        if (a.action === 'create' && files.has(path)) {
          send(c.res, 400, { message: 'A file with this name already exists' });
          return;
        }
        if (a.action === 'update' && !files.has(path)) {
          send(c.res, 400, { message: "A file with this name doesn't exist" });
          return;
        }
        files.set(path, a.content);
      }
      const sha = createHash('sha1')
        .update(`${parent}${JSON.stringify(actions)}${this.nextId++}`)
        .digest('hex');
      p.files.set(sha, files);
      p.branches.set(branch, sha);
      send(c.res, 201, {
        id: sha,
        short_id: sha.slice(0, 8),
        title: String(c.body.commit_message).split('\n')[0],
        message: c.body.commit_message,
        parent_ids: [parent],
      });
    });
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

/** A merge request as GitLab answers it (diff_refs included). */
function publicMergeRequest(mr: StoredMergeRequest): StoredMergeRequest {
  return { ...mr };
}

/** A note as GitLab answers it: its fields without the stand-in's award list. */
function publicNote(n: StoredNote): Omit<StoredNote, 'awards'> {
  const { awards: _awards, ...rest } = n;
  return rest;
}

/** A line number sent as a JSON integer or a string of digits (GitLab coerces both). */
function lineNumber(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  return typeof v === 'string' ? positiveInt(v) : undefined;
}

/**
 * The new-side lines of a GitLab diff text (added and context lines) with the old-side counter at
 * each, as GitLab's diff parser counts them (an added line carries the next old line's number).
 */
function standInDiffLines(diff: string): Map<number, { old: number; added: boolean }> {
  const out = new Map<number, { old: number; added: boolean }>();
  let oldLine = 0;
  let newLine = 0;
  let inHunk = false;
  for (const line of diff.split('\n')) {
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (hunk) {
      [oldLine, newLine, inHunk] = [Number(hunk[1]), Number(hunk[2]), true];
    } else if (!inHunk || line === '' || line.startsWith('\\')) {
      // Header lines before the first hunk, the trailing newline, "\ No newline at end of file".
    } else if (line.startsWith('+')) {
      out.set(newLine++, { old: oldLine, added: true });
    } else if (line.startsWith('-')) {
      oldLine++;
    } else {
      out.set(newLine++, { old: oldLine++, added: false });
    }
  }
  return out;
}

/**
 * A request body: {} when empty, JSON, or `multipart/form-data` / urlencoded whose bracketed names
 * (`position[line_range][start][line_code]`) become nested objects, as Rails parses them.
 * @returns undefined when the body cannot be read
 */
async function parseBody(contentType: string | undefined, buf: Buffer): Promise<Record<string, unknown> | undefined> {
  if (buf.length === 0) return {};
  const type = contentType ?? '';
  if (type.startsWith('application/json')) {
    try {
      const parsed: unknown = JSON.parse(buf.toString('utf8'));
      return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }
  if (!type.startsWith('multipart/form-data') && !type.startsWith('application/x-www-form-urlencoded')) return undefined;
  const form = await new Request('http://127.0.0.1/', { method: 'POST', headers: { 'content-type': type }, body: buf }).formData();
  const out: Record<string, unknown> = {};
  for (const [name, value] of form.entries()) {
    const [head = '', ...rest] = name.split('[').map((k) => k.replace(/\]$/, ''));
    let at = out;
    for (const k of [head, ...rest].slice(0, -1)) {
      const next = (at[k] ?? {}) as Record<string, unknown>;
      at[k] = next;
      at = next;
    }
    at[[head, ...rest].at(-1) ?? head] = typeof value === 'string' ? value : '';
  }
  return out;
}
