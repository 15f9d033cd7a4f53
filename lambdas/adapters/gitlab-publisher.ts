import { createHash } from 'node:crypto';
import type { CommitAction, CommitablePipelineStatus, DiscussionNoteSchema, MergeRequestSchema } from '@gitbeaker/rest';
import type { CheckConclusion, CheckResult } from '../core/checks.js';
import type { Change } from '../core/contracts.js';
import { ForkPushRefusedError } from '../core/errors.js';
import { parseHunks } from '../core/hunks.js';
import type { CheckCreate, CommitRequest, CommittedFiles, FindingFeedback, ForgePublisher, PostedReview } from '../core/ports.js';
import { type InlineComment, type InlineReview, isDismissReply, markedFinding, markedResolved, resolvedMarker } from '../core/review.js';
import type { SarifLog } from '../core/sarif.js';
import { MAX_FEEDBACK_COMMENTS } from './comments.js';
import { forkCommitRefusal } from './commits.js';
import { GitLabChangeSource, type GitLabClient, gitLabStatus } from './gitlab-changes.js';
import { GitLabChangeLookup } from './gitlab-lookup.js';

/**
 * The states a commit status ends in for each check conclusion. `skipped` (accepted by the commit
 * status API since https://gitlab.com/gitlab-org/gitlab/-/merge_requests/168350) stands
 * for `neutral`: a partial or skipped review is not a success; a timeout is a failure.
 * Source: https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit (read 2026-11).
 */
const STATUS_STATE: Record<CheckConclusion, GitLabStatusState> = {
  success: 'success',
  failure: 'failed',
  neutral: 'skipped',
  cancelled: 'canceled',
  timed_out: 'failed',
};

/** How long the discussion post may take when the client sets no `queryTimeout`, in ms (gitbeaker's default). */
const DEFAULT_QUERY_TIMEOUT_MS = 300_000;

/**
 * The `ref` of a commit status: the merge request's source branch, or for a fork's merge request
 * its `refs/merge-requests/<iid>/head` in the target project (the fork's branch is not there, and
 * without a ref GitLab picks the first branch holding the SHA, or answers 404 "References for commit").
 * Source: https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit (read 2026-11).
 */
function statusRef(change: Change): { ref?: string } {
  if (change.fork !== false && change.number > 0) return { ref: `refs/merge-requests/${change.number}/head` };
  return change.headRef ? { ref: change.headRef } : {};
}

/** A commit status state AgentFlow writes (gitbeaker's `CommitablePipelineStatus` plus `skipped`). */
type GitLabStatusState = CommitablePipelineStatus | 'skipped';

/** Commit status states that end a status (GitLab starts a new status of that name after one of them). */
const CONCLUDED_STATES: readonly string[] = ['success', 'failed', 'canceled', 'skipped'];

/** Longest commit status `description` GitLab keeps (characters). Source: as {@link STATUS_STATE}. */
const MAX_STATUS_DESCRIPTION = 255;

/**
 * A note of a merge request discussion as GitLab answers it: gitbeaker's `DiscussionNoteSchema`
 * with the fields GitLab adds for resolvable notes (`resolved_by` is a user, not the string
 * gitbeaker types). Source: https://docs.gitlab.com/api/discussions/#list-all-merge-request-discussion-items (read 2026-11).
 */
type GitLabNote = DiscussionNoteSchema & {
  resolved?: boolean;
  resolved_by?: { id: number; username: string } | null;
};

/** A merge request discussion with its notes (the first one opens it). */
interface GitLabDiscussion extends Record<string, unknown> {
  id: string;
  notes?: GitLabNote[];
}

/** One of AgentFlow's own finding discussions: its key, the discussion and its first note. */
interface OwnFinding {
  key: string;
  discussion: GitLabDiscussion;
  first: GitLabNote;
}

/** The fragment of a commit status `target_url` naming the run that wrote it. */
const runFragment = (runId: string) => `agentflow-run=${encodeURIComponent(runId)}`;

/**
 * Rewrites the GitHub-style ```suggestion block the core renders (covering `startLine`..`line`)
 * as GitLab's ```suggestion:-N+0 anchored on `line` (N = the lines above it). Only a fence
 * opening a line counts; the fence length is kept.
 * Source: https://docs.gitlab.com/user/project/merge_requests/reviews/suggestions/#multi-line-suggestions (read 2026-11).
 */
export function gitLabSuggestion(body: string, comment: Pick<InlineComment, 'line' | 'startLine'>): string {
  const above = comment.startLine !== undefined ? comment.line - comment.startLine : 0;
  return body.replace(/^(`{3,})suggestion$/m, (_m, fence: string) => `${fence}suggestion:-${above}+0`);
}

/** A new-side line of a diff: the old side's line number there (for an added line, the next old line's) and whether it was added. */
export interface DiffLine {
  old: number;
  added: boolean;
}

/** A file of the merge request's diff: its old path and its new-side lines. */
interface DiffFile {
  oldPath: string;
  lines: Map<number, DiffLine>;
}

/**
 * The new-side lines of unified diff hunks (added and context lines) with their old-side numbers,
 * counted as GitLab's diff parser counts them (`Gitlab::Diff::Parser`: an added line carries the
 * old counter without moving it).
 */
export function diffLines(patch: string): Map<number, DiffLine> {
  const out = new Map<number, DiffLine>();
  // A patch the shared parser refuses (malformed) places no line.
  for (const hunk of parseHunks(patch) ?? []) {
    let oldLine = hunk.oldStart;
    for (const line of hunk.lines) {
      if (line.marker === '+') out.set(line.new, { old: oldLine, added: true });
      else if (line.marker === ' ') out.set(line.new, { old: line.old, added: false });
      if (line.marker === ' ' || line.marker === '-') oldLine = line.old + 1;
    }
  }
  return out;
}

/**
 * GitLab's line code of a diff line: `<SHA-1 of the new path>_<old line>_<new line>` (an internal
 * format the API wants in `line_range`). Source: https://gitlab.com/gitlab-org/gitlab/-/issues/247521 (read 2026-11).
 */
const lineCode = (path: string, newLine: number, line: DiffLine) =>
  `${createHash('sha1').update(path).digest('hex')}_${line.old}_${newLine}`;

/** One end of a `line_range`: its line code, `type` (`new` for an added line, else `old`) and line numbers. */
const rangeEnd = (path: string, newLine: number, line: DiffLine) => ({
  line_code: lineCode(path, newLine, line),
  type: line.added ? ('new' as const) : ('old' as const),
  new_line: newLine,
  ...(line.added ? {} : { old_line: line.old }),
});

/**
 * A diff discussion's `position` as GitLab's JSON takes it (gitbeaker's `DiscussionNotePositionTextSchema`
 * with integer lines and a `line_range` of line codes).
 */
export interface GitLabPosition {
  position_type: 'text';
  base_sha: string;
  start_sha: string;
  head_sha: string;
  old_path: string;
  new_path: string;
  new_line: number;
  old_line?: number;
  line_range?: { start: ReturnType<typeof rangeEnd>; end: ReturnType<typeof rangeEnd> };
}

/**
 * The `position` of a diff discussion on `c.line` of the new file: `base_sha`, `start_sha`
 * (default: the base SHA), `head_sha`, the paths, `new_line`, and `old_line` too for a context line
 * (GitLab finds no line code for an unchanged line without both); a multi-line comment adds a
 * `line_range` from `startLine` to `line`. A line the diff does not show is sent as it is (GitLab
 * refuses it). Source: https://docs.gitlab.com/api/discussions/#create-a-new-thread-in-the-merge-request-diff (read 2026-11).
 */
export function diffPosition(change: Change, c: InlineComment, file: DiffFile | undefined): GitLabPosition {
  const end = file?.lines.get(c.line);
  const start = c.startLine !== undefined ? file?.lines.get(c.startLine) : undefined;
  return {
    position_type: 'text',
    base_sha: change.baseSha,
    start_sha: change.startSha ?? change.baseSha,
    head_sha: change.headSha,
    old_path: file?.oldPath ?? c.path,
    new_path: c.path,
    new_line: c.line,
    ...(end && !end.added ? { old_line: end.old } : {}),
    ...(end && start && c.startLine !== undefined
      ? { line_range: { start: rangeEnd(c.path, c.startLine, start), end: rangeEnd(c.path, c.line, end) } }
      : {}),
  };
}

/**
 * Publishes a run's review on a GitLab merge request through `@gitbeaker/rest`.
 *
 * - `change.repository` is the project's full path, `change.number` the merge request's iid,
 *   `baseSha` / `startSha` (default: `baseSha`) / `headSha` its `diff_refs`.
 * - AgentFlow's own notes are those whose author is the token's user (`GET /user`, cached; a failed
 *   lookup is thrown and not remembered, so a hiccup cannot make AgentFlow disown its notes).
 * - The summary: one merge request note; the inline review: one diff discussion per comment; the
 *   check: a commit status on the head SHA; generated files: the Commits API and a draft merge request.
 *
 * @throws GitbeakerRequestError when GitLab refuses a call it has no fallback for ({@link gitLabStatus} reads its status)
 * @example
 * const publisher = new GitLabPublisher(new Gitlab({ host: 'https://gitlab.com', token }));
 * await publisher.upsertComment(change, commentMarker('pr-review'), body); // 'https://gitlab.com/g/p/-/merge_requests/7#note_12'
 */
export class GitLabPublisher implements ForgePublisher {
  constructor(private readonly gitlab: GitLabClient) {}

  private own: Promise<string> | undefined;
  private readonly webUrls = new Map<string, Promise<string>>();
  private readonly access = new Map<number, Promise<boolean>>();

  /** The token's username (`GET /user`), cached once it succeeded. */
  private ownUsername(): Promise<string> {
    this.own ??= this.gitlab.Users.showCurrentUser()
      .then((u) => u.username)
      .catch((e: unknown) => {
        this.own = undefined;
        throw e;
      });
    return this.own;
  }

  /** The merge request's web URL: `change.url` when set, else `GET /projects/:id/merge_requests/:iid` (cached). */
  private webUrl(change: Change): Promise<string> {
    if (change.url) return Promise.resolve(change.url);
    const key = `${change.repository}!${change.number}`;
    let p = this.webUrls.get(key);
    if (!p) {
      p = this.gitlab.MergeRequests.show(change.repository, change.number).then((mr) => mr.web_url);
      p.catch(() => this.webUrls.delete(key));
      this.webUrls.set(key, p);
    }
    return p;
  }

  /** Every discussion of the merge request (`GET …/merge_requests/:iid/discussions`, 100 a page, all pages). */
  private async discussions(change: Change): Promise<GitLabDiscussion[]> {
    return (await this.gitlab.MergeRequestDiscussions.all(change.repository, change.number, { perPage: 100 })) as GitLabDiscussion[];
  }

  /** AgentFlow's finding discussions: the first note is its own and starts with a finding marker. */
  private ownFindings(discussions: readonly GitLabDiscussion[], own: string): OwnFinding[] {
    return discussions.flatMap((discussion) => {
      const first = discussion.notes?.[0];
      const key = first && first.author.username === own ? markedFinding(first.body) : undefined;
      return first && key ? [{ key, discussion, first }] : [];
    });
  }

  /**
   * Edits AgentFlow's own merge request note that contains `marker`
   * (`PUT /projects/:id/merge_requests/:iid/notes/:note_id`), else creates one (`POST …/notes`);
   * a note by anyone else carrying the marker is never taken over.
   * Source: https://docs.gitlab.com/api/notes/#merge-requests (read 2026-11).
   * @returns `<merge request web URL>#note_<id>`
   */
  async upsertComment(change: Change, marker: string, body: string): Promise<string | null> {
    const own = await this.ownUsername();
    const notes = await this.gitlab.MergeRequestNotes.all(change.repository, change.number, { perPage: 100 });
    const mine = notes.find((n) => !n.system && n.author.username === own && n.body.includes(marker));
    const note = mine
      ? await this.gitlab.MergeRequestNotes.edit(change.repository, change.number, mine.id, { body })
      : await this.gitlab.MergeRequestNotes.create(change.repository, change.number, body);
    return `${await this.webUrl(change)}#note_${note.id}`;
  }

  /**
   * One diff discussion per inline comment (`POST /projects/:id/merge_requests/:iid/discussions`
   * with `position: { position_type: 'text', base_sha, start_sha, head_sha, old_path, new_path,
   * new_line }`); a suggestion becomes GitLab's ```suggestion:-N+0 ({@link gitLabSuggestion}).
   * The position takes the old path and old line numbers from the merge request's diff (read once
   * when something is posted; {@link diffPosition}); a multi-line comment carries a `line_range`.
   * The merge request's discussions are read first: a finding whose key is
   * in the marker opening one of AgentFlow's own discussions is never posted again. Resolved
   * findings: one reply (`POST …/discussions/:id/notes`, {@link resolvedMarker}) then the
   * discussion resolved (`PUT …/discussions/:id?resolved=true`; a refusal leaves the reply). A
   * discussion GitLab refuses (400, e.g. a line not in the diff) is skipped and the rest posted:
   * its finding is in the summary note. GitLab has no review object, so `marker` and
   * `review.body` are not posted (the summary note carries them).
   * Source: https://docs.gitlab.com/api/discussions/#create-a-new-thread-in-the-merge-request-diff (read 2026-11).
   * @returns the first discussion posted now (`<web URL>#note_<id>`, or null), the count posted now, the keys on the merge request, the resolved answered now
   */
  async postReview(change: Change, _marker: string, review: InlineReview): Promise<PostedReview> {
    if (review.comments.length === 0 && review.resolved.length === 0) return { url: null, comments: 0, keys: [], resolved: 0 };
    const own = await this.ownUsername();
    const discussions = await this.discussions(change);
    const byKey = new Map<string, OwnFinding>();
    for (const f of this.ownFindings(discussions, own)) if (!byKey.has(f.key)) byKey.set(f.key, f);
    const resolved = await this.answerResolved(change, review, byKey, own);
    const already = review.comments.filter((c) => byKey.has(c.key)).map((c) => c.key);
    const fresh = review.comments.filter((c) => !byKey.has(c.key));
    const files = fresh.length > 0 ? await this.diffFiles(change) : new Map<string, DiffFile>();
    const posted: string[] = [];
    let url: string | null = null;
    for (const c of fresh) {
      const noteId = await this.postDiscussion(change, c, files.get(c.path));
      if (noteId === undefined) continue;
      posted.push(c.key);
      url ??= `${await this.webUrl(change)}#note_${noteId}`;
    }
    return { url, comments: posted.length, keys: [...already, ...posted], resolved };
  }

  /**
   * The merge request's files by new path: the old path and the diff's new-side lines (from
   * {@link GitLabChangeSource}, so a too-large diff is rebuilt as the review saw it).
   */
  private async diffFiles(change: Change): Promise<Map<string, DiffFile>> {
    const files = await new GitLabChangeSource(this.gitlab).listChangedFiles(change);
    return new Map(files.map((f) => [f.path, { oldPath: f.previousPath ?? f.path, lines: diffLines(f.patch) }]));
  }

  /**
   * Posts one diff discussion through gitbeaker's `requester` with a JSON body:
   * `MergeRequestDiscussions.create` sends a position as multipart form data, whose encoding turns
   * every LF of the note into CRLF (the HTML form encoding rule), which would end up in the note and
   * its suggestion. @returns its first note's id, or undefined when GitLab refused the position (400)
   */
  private async postDiscussion(change: Change, c: InlineComment, file: DiffFile | undefined): Promise<number | undefined> {
    const endpoint = `projects/${encodeURIComponent(change.repository)}/merge_requests/${change.number}/discussions`;
    try {
      const r = await this.gitlab.MergeRequests.requester.post<GitLabDiscussion>(endpoint, {
        body: { body: gitLabSuggestion(c.body, c), position: diffPosition(change, c, file) },
        // This call goes past gitbeaker's helpers, which add the client's queryTimeout: add it here.
        signal: AbortSignal.timeout(this.gitlab.MergeRequests.queryTimeout ?? DEFAULT_QUERY_TIMEOUT_MS),
      });
      return r.body.notes?.[0]?.id ?? 0;
    } catch (e) {
      if (gitLabStatus(e) === 400) return undefined;
      throw e;
    }
  }

  /** Replies once to each resolved finding's discussion and resolves it. @returns the replies posted now */
  private async answerResolved(change: Change, review: InlineReview, byKey: Map<string, OwnFinding>, own: string): Promise<number> {
    let count = 0;
    for (const r of review.resolved) {
      const found = byKey.get(r.key);
      if (!found) continue;
      const notes = found.discussion.notes ?? [];
      if (!notes.some((n) => n.author.username === own && markedResolved(n.body) === r.key)) {
        await this.gitlab.MergeRequestDiscussions.addNote(
          change.repository,
          change.number,
          found.discussion.id,
          `${resolvedMarker(r.key)}\n✅ Resolved at \`${review.commitId.slice(0, 7)}\`: the code this comment pointed at changed or is gone.`,
        );
        count++;
      }
      // After the reply, so a discussion AgentFlow resolved always carries its answer.
      if (!found.first.resolved) {
        await this.gitlab.MergeRequestDiscussions.resolve(change.repository, change.number, found.discussion.id, true).catch(
          () => undefined,
        );
      }
    }
    return count;
  }

  /**
   * The feedback on AgentFlow's own finding discussions (the latest {@link MAX_FEEDBACK_COMMENTS}):
   * `thumbsup` / `thumbsdown` award emoji on the first note, AgentFlow's own excluded
   * (`GET …/merge_requests/:iid/notes/:note_id/award_emoji`); `resolved: true` when the discussion
   * was resolved by someone other than AgentFlow; `dismissedBy` the username of the first reply whose
   * first line is `/agentflow dismiss` or `@agentflow dismiss` from a member with at least Developer
   * access (`GET /projects/:id/members/all/:user_id`, `access_level` ≥ 30, read once per user and
   * call; a non-member or a failed lookup cannot dismiss).
   * Sources: https://docs.gitlab.com/api/emoji_reactions/#list-an-awardables-emoji-reactions-on-a-comment,
   * https://docs.gitlab.com/api/members/#get-a-member-of-a-group-or-project-including-inherited-and-invited-members (read 2026-11).
   */
  async readFeedback(change: Change): Promise<FindingFeedback[]> {
    this.access.clear();
    const own = await this.ownUsername();
    const mine = this.ownFindings(await this.discussions(change), own).slice(-MAX_FEEDBACK_COMMENTS);
    const out: FindingFeedback[] = [];
    for (const { key, discussion, first } of mine) {
      const awards = await this.gitlab.MergeRequestNoteAwardEmojis.all(change.repository, change.number, first.id, { perPage: 100 });
      const others = awards.filter((a) => a.user.username !== own);
      const dismissedBy = await this.dismissal(change, discussion, own);
      const resolvedBy = first.resolved ? first.resolved_by?.username : undefined;
      out.push({
        key,
        ...(resolvedBy !== undefined && resolvedBy !== own ? { resolved: true } : {}),
        up: others.filter((a) => a.name === 'thumbsup').length,
        down: others.filter((a) => a.name === 'thumbsdown').length,
        ...(dismissedBy ? { dismissedBy } : {}),
      });
    }
    return out;
  }

  /** The username of the first reply that dismisses the finding with the right to, if any. */
  private async dismissal(change: Change, discussion: GitLabDiscussion, own: string): Promise<string | undefined> {
    for (const n of (discussion.notes ?? []).slice(1)) {
      if (n.system || n.author.username === own || !isDismissReply(n.body)) continue;
      if (await this.canDismiss(change, n.author.id)) return n.author.username;
    }
    return undefined;
  }

  /** Whether user `userId` has at least Developer access to the project (inherited memberships count). */
  private canDismiss(change: Change, userId: number): Promise<boolean> {
    let p = this.access.get(userId);
    if (!p) {
      // A lookup that fails counts as no access: a dismissal is never taken on doubt.
      p = new GitLabChangeLookup(this.gitlab).canWrite(change.repository, userId).catch(() => false);
      this.access.set(userId, p);
    }
    return p;
  }

  /**
   * `POST /projects/:id/statuses/:head_sha` with `state: pending`, `name` the check name, `ref`
   * ({@link statusRef}) and `target_url` the merge request's web URL with the run's fragment
   * (`#agentflow-run=<run id>`), which is how {@link completeCheck} finds the run's status again. A
   * status of that name already pending on the SHA (a retried start) makes GitLab answer 400
   * "Cannot transition status via :enqueue from :pending": it is left as it is.
   * Source: https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit (read 2026-11).
   */
  async startCheck(change: Change, name: string, runId: string): Promise<void> {
    const targetUrl = await this.targetUrl(change, runId);
    try {
      // `pending`, not `running`: GitLab moves a pending status to any conclusion, a running one
      // not to `skipped` (its `skip` event leaves only created/pending states).
      await this.gitlab.Commits.editStatus(change.repository, change.headSha, 'pending', {
        name,
        targetUrl,
        description: 'AgentFlow is reviewing',
        ...statusRef(change),
      });
    } catch (e) {
      // A status of that name already pending (a retried start): GitLab refuses the transition.
      if (gitLabStatus(e) !== 400) throw e;
    }
  }

  /**
   * Concludes the run's commit status `name` on the head SHA. The SHA's statuses of that name are
   * listed (`GET /projects/:id/repository/commits/:sha/statuses?name=&all=true`): one of this run
   * (its `target_url` fragment) already concluded is left; otherwise one status is posted with the
   * state {@link STATUS_STATE} gives and `description` the title and summary cut to 255 characters.
   * GitLab moves the open (`running`/`pending`) status of that name to it, or starts a new one.
   * Without a status of this run, `create` decides: `'always'` posts, `'if-none'` only when the SHA
   * has no status of that name, `'never'` posts nothing. Commit statuses carry no annotations: the
   * findings are in the diff discussions and the summary note.
   * @returns the status's `target_url`, or null when none was written
   */
  async completeCheck(change: Change, name: string, runId: string, result: CheckResult, create: CheckCreate): Promise<string | null> {
    const statuses = await this.gitlab.Commits.allStatuses(change.repository, change.headSha, { name, all: true });
    const fragment = runFragment(runId);
    const mine = statuses.filter((s) => s.target_url?.endsWith(`#${fragment}`));
    const done = mine.find((s) => CONCLUDED_STATES.includes(s.status));
    if (done) return done.target_url;
    const open = mine.length > 0;
    if (!open && (create === 'never' || (create === 'if-none' && statuses.length > 0))) return null;
    const targetUrl = await this.targetUrl(change, runId);
    await this.gitlab.Commits.editStatus(change.repository, change.headSha, STATUS_STATE[result.conclusion] as CommitablePipelineStatus, {
      name,
      targetUrl,
      description: `${result.title}: ${result.summary}`.slice(0, MAX_STATUS_DESCRIPTION),
      ...statusRef(change),
    });
    return targetUrl;
  }

  /** The `target_url` of run `runId`'s status: the merge request's web URL with {@link runFragment}. */
  private async targetUrl(change: Change, runId: string): Promise<string> {
    const url = (await this.webUrl(change)).split('#')[0] ?? '';
    return `${url}#${runFragment(runId)}`;
  }

  /**
   * Nothing is uploaded: GitLab takes SAST and other security reports only as CI job artifacts
   * (`artifacts:reports:sast` in `.gitlab-ci.yml`); its REST API has no endpoint to upload a SARIF
   * log for a merge request. Source: https://docs.gitlab.com/ci/yaml/artifacts_reports/#artifactsreportssast (read 2026-11).
   * @returns null
   */
  async uploadCodeScanning(_change: Change, _workflow: string, _sarif: SarifLog): Promise<string | null> {
    return null;
  }

  /**
   * Commits generated files with the Commits API (`POST /projects/:id/repository/commits`, one
   * `create` or `update` action per file: `update` when the file exists at the head SHA). To
   * `request.branch`: `start_sha` the head SHA and `force: true` (the branch is created, or moved
   * when it exists), then a draft merge request (`Draft: …` title) from it into the change's source
   * branch (a fork's: its target branch) unless `GET /projects/:id/merge_requests?source_branch=&state=opened`
   * finds one. With `pushToPullRequest`: onto the merge request's source branch, only while its tip
   * (`GET …/repository/branches/:branch`) is still the head SHA (GitLab has no compare-and-swap for
   * a commit: the tip is read just before).
   * Sources: https://docs.gitlab.com/api/commits/#create-a-commit-with-multiple-files-and-actions,
   * https://docs.gitlab.com/api/merge_requests/#create-mr (read 2026-11).
   * @throws ForkPushRefusedError for `pushToPullRequest` on a fork's merge request (or one not known not to be)
   * @throws Error when the source branch moved past the head SHA
   */
  async commitFiles(change: Change, request: CommitRequest): Promise<CommittedFiles> {
    const refusal = forkCommitRefusal(change, `${change.repository}!${change.number}`, 'merge request');
    if (refusal) throw new ForkPushRefusedError(refusal);
    if (request.pushToPullRequest) return this.pushToSourceBranch(change, request);
    const actions = await this.actions(change, request);
    const commit = await this.gitlab.Commits.create(change.repository, request.branch, request.message, actions, {
      startSha: change.headSha,
      force: true,
    });
    const mr = await this.draftMergeRequest(change, request);
    return { branch: request.branch, sha: commit.id, url: mr.web_url, pullRequest: mr.iid };
  }

  /** Commits onto the merge request's own source branch, fast-forward only. */
  private async pushToSourceBranch(change: Change, request: CommitRequest): Promise<CommittedFiles> {
    const where = `${change.repository}!${change.number}`;
    if (!change.headRef) throw new ForkPushRefusedError(`${where}: the change has no source branch to push to`);
    const branch = await this.gitlab.Branches.show(change.repository, change.headRef);
    if (branch.commit.id !== change.headSha) {
      throw new Error(
        `${where}: the source branch ${change.headRef} moved to ${branch.commit.id.slice(0, 7)} after the reviewed head ${change.headSha.slice(0, 7)}; nothing was pushed (fast-forward only)`,
      );
    }
    const actions = await this.actions(change, request);
    const commit = await this.gitlab.Commits.create(change.repository, change.headRef, request.message, actions);
    return { branch: change.headRef, sha: commit.id, url: await this.webUrl(change) };
  }

  /** One `create` or `update` action per file, as the file is missing or present at the head SHA. */
  private async actions(change: Change, request: CommitRequest): Promise<CommitAction[]> {
    const out: CommitAction[] = [];
    for (const f of request.files) {
      const exists = await this.gitlab.RepositoryFiles.showRaw(change.repository, f.path, change.headSha).then(
        () => true,
        (e: unknown) => {
          if (gitLabStatus(e) === 404) return false;
          throw e;
        },
      );
      out.push({ action: exists ? 'update' : 'create', filePath: f.path, content: f.content });
    }
    return out;
  }

  /** The open merge request from `request.branch`, or a new draft one. */
  private async draftMergeRequest(change: Change, request: CommitRequest): Promise<Pick<MergeRequestSchema, 'iid' | 'web_url'>> {
    const open = await this.gitlab.MergeRequests.all({
      projectId: change.repository,
      sourceBranch: request.branch,
      state: 'opened',
      perPage: 10,
      maxPages: 1,
    });
    const existing = open[0];
    if (existing) return existing;
    const target = change.fork === false && change.headRef ? change.headRef : change.baseRef;
    const description = [
      `Tests generated by AgentFlow for !${change.number} (head \`${change.headSha.slice(0, 7)}\`).`,
      '',
      ...request.files.map((f) => `- \`${f.path}\``),
      '',
      'Review them, then merge this draft into the merge request’s branch to keep them.',
    ].join('\n');
    return this.gitlab.MergeRequests.create(
      change.repository,
      request.branch,
      target,
      `Draft: Tests for !${change.number}: ${change.title}`.slice(0, 255),
      {
        description,
      },
    );
  }
}
