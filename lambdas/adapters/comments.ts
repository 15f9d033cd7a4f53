import { gzipSync } from 'node:zlib';
import type { Octokit } from '@octokit/rest';
import { ANNOTATIONS_PER_REQUEST, type CheckResult } from '../core/checks.js';
import { type Change, FORGES } from '../core/contracts.js';
import type {
  ArtifactStore,
  CheckCreate,
  CommitRequest,
  CommittedFiles,
  FindingFeedback,
  ForgePublisher,
  ForgeTable,
  PostedReview,
} from '../core/ports.js';
import { type InlineReview, isDismissReply, markedFinding, markedResolved, resolvedMarker } from '../core/review.js';
import type { SarifLog } from '../core/sarif.js';
import { splitRepository, TRUSTED_ASSOCIATIONS } from '../core/triggers.js';
import { commitInLocalRepository, commitOnGitHub } from './commits.js';

/**
 * The pull-request comment on GitHub: updates the comment that carries the marker, or creates
 * one (`GET/POST /repos/{o}/{r}/issues/{n}/comments`, `PATCH .../issues/comments/{id}`).
 */
export class GitHubPublisher implements ForgePublisher {
  constructor(private readonly octokit: Octokit) {}

  private own: Promise<string | undefined> | undefined;
  private readonly permissions = new Map<string, Promise<boolean>>();

  /**
   * Which review comments are AgentFlow's: those of the token's user (`GET /user`), or, for a
   * GitHub App (its installation token may not read `/user`), those of a `Bot` account.
   */
  private async ownComments(): Promise<(c: { user?: { login?: string; type?: string } | null }) => boolean> {
    // A token's user (`GET /user`), else a GitHub App's bot (`GET /app` with the App's JWT, which
    // the App auth strategy signs: `<slug>[bot]`); other failures (5xx, rate limits) are thrown,
    // not remembered, so a hiccup cannot make AgentFlow disown its comments and post them again.
    const refused = (e: unknown) => [401, 403, 404].includes((e as { status?: number }).status ?? 0);
    this.own ??= this.octokit.rest.users
      .getAuthenticated()
      .then((r) => r.data.login)
      .catch(async (e: unknown) => {
        if (!refused(e)) throw e;
        return this.octokit.rest.apps.getAuthenticated().then(
          (r) => (r.data?.slug ? `${r.data.slug}[bot]` : undefined),
          (e2: unknown) => {
            if (!refused(e2)) throw e2;
            return undefined;
          },
        );
      })
      .catch((e: unknown) => {
        this.own = undefined;
        throw e;
      });
    const login = await this.own;
    return login !== undefined ? (c) => c.user?.login === login : (c) => c.user?.type === 'Bot';
  }

  /**
   * The pull request's review threads by the database id (as a string) of their first comment (GraphQL: REST has
   * no threads), or none when GraphQL cannot be read.
   * Source: https://docs.github.com/en/graphql/reference/objects#pullrequestreviewthread (2026-11).
   */
  private async threads(owner: string, repo: string, number: number): Promise<Map<string, ReviewThread>> {
    const out = new Map<string, ReviewThread>();
    let after: string | null = null;
    try {
      for (let page = 0; page < 30; page++) {
        const r: ThreadsPage = await this.octokit.graphql(THREADS_QUERY, { owner, repo, number, after });
        const threads = r.repository?.pullRequest?.reviewThreads;
        for (const t of threads?.nodes ?? []) {
          // `fullDatabaseId` (BigInt, as a string): `databaseId` is an Int and cannot hold ids above 2³¹.
          const first = t?.comments.nodes?.[0]?.fullDatabaseId;
          if (t && first !== undefined && first !== null) out.set(String(first), { id: t.id, isResolved: t.isResolved });
        }
        if (!threads?.pageInfo.hasNextPage) break;
        after = threads.pageInfo.endCursor;
      }
    } catch {
      // GraphQL refused (a token without it, GHES without the field): replies still say it.
    }
    return out;
  }

  /** `resolveReviewThread`; a refusal is left alone (the reply says the finding is resolved). */
  private async resolveThread(threadId: string): Promise<void> {
    await this.octokit.graphql(RESOLVE_THREAD, { threadId }).catch(() => undefined);
  }

  /** Every review comment of the pull request, replies included (`GET …/pulls/{pull_number}/comments`, 100 a page). */
  private reviewComments(owner: string, repo: string, number: number) {
    return this.octokit.paginate(this.octokit.rest.pulls.listReviewComments, { owner, repo, pull_number: number, per_page: 100 });
  }

  /**
   * Whether `login` may write to the repository (`GET /repos/{o}/{r}/collaborators/{u}/permission`:
   * admin, maintain or write); `author_association` alone does not say (a member may only read).
   */
  private canWrite(owner: string, repo: string, login: string): Promise<boolean> {
    let p = this.permissions.get(login);
    if (!p) {
      p = this.octokit.rest.repos.getCollaboratorPermissionLevel({ owner, repo, username: login }).then(
        (r) => ['admin', 'maintain', 'write'].includes(r.data.permission),
        () => false,
      );
      this.permissions.set(login, p);
    }
    return p;
  }

  /** Generated files through the Git Data API and a draft pull request: see {@link commitOnGitHub}. */
  async commitFiles(change: Change, request: CommitRequest): Promise<CommittedFiles> {
    return commitOnGitHub(this.octokit, change, request);
  }

  async upsertComment(change: Change, marker: string, body: string): Promise<string | null> {
    const { owner, repo } = splitRepository(change.repository);
    const comments = await this.octokit.paginate(this.octokit.rest.issues.listComments, {
      owner,
      repo,
      issue_number: change.number,
      per_page: 100,
    });
    const mine = comments.find((c) => c.body?.includes(marker));
    if (mine) {
      const r = await this.octokit.rest.issues.updateComment({ owner, repo, comment_id: mine.id, body });
      return r.data.html_url;
    }
    const r = await this.octokit.rest.issues.createComment({ owner, repo, issue_number: change.number, body });
    return r.data.html_url;
  }

  /**
   * `POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews` with `event: COMMENT`, `commit_id` the
   * head SHA and one comment per finding (`line`, `side: RIGHT`, `start_line`/`start_side` for a
   * range). The pull request's review comments are read first
   * (`GET /repos/{owner}/{repo}/pulls/{pull_number}/comments`): a finding whose marker
   * (`findingMarker`, its fingerprint) is already on the pull request is never posted again — a
   * retried Publish, a re-review, a concurrent run. GitHub refuses the whole review (422, e.g.
   * "Line could not be resolved") when it cannot place one comment: the review is then posted
   * without inline comments, its body quoting GitHub's message. Each resolved finding's comment
   * gets one reply saying so (`POST …/pulls/{pull_number}/comments/{comment_id}/replies`; REST
   * cannot resolve a thread). Other errors are thrown.
   * Source: https://docs.github.com/en/rest/pulls/reviews#create-a-review-for-a-pull-request,
   * https://docs.github.com/en/rest/pulls/comments (2026-11).
   */
  async postReview(change: Change, marker: string, review: InlineReview): Promise<PostedReview> {
    if (review.comments.length === 0 && review.resolved.length === 0) return { url: null, comments: 0, keys: [], resolved: 0 };
    const { owner, repo } = splitRepository(change.repository);
    const onPull = await this.reviewComments(owner, repo, change.number);
    const byKey = new Map<string, (typeof onPull)[number]>();
    const answered = new Set<string>();
    // Only AgentFlow's own comments count: a marker anyone else writes hides nothing.
    const own = await this.ownComments();
    for (const c of onPull.filter(own)) {
      const key = markedFinding(c.body);
      if (key && c.in_reply_to_id === undefined && !byKey.has(key)) byKey.set(key, c);
      const done = markedResolved(c.body);
      if (done) answered.add(done);
    }
    let resolved = 0;
    const threads = review.resolved.length > 0 ? await this.threads(owner, repo, change.number) : new Map<string, ReviewThread>();
    for (const r of review.resolved) {
      const comment = byKey.get(r.key);
      if (!comment) continue;
      const thread = threads.get(String(comment.id));
      if (!answered.has(r.key)) {
        await this.octokit.rest.pulls.createReplyForReviewComment({
          owner,
          repo,
          pull_number: change.number,
          comment_id: comment.id,
          body: `${resolvedMarker(r.key)}\n✅ Resolved at \`${review.commitId.slice(0, 7)}\`: the code this comment pointed at changed or is gone.`,
        });
        resolved++;
      }
      // Then resolved where GitHub allows it (GraphQL; a token without that right leaves the reply),
      // after the reply, so a thread AgentFlow resolved always carries its answer.
      if (thread && !thread.isResolved) await this.resolveThread(thread.id);
    }
    const already = review.comments.filter((c) => byKey.has(c.key)).map((c) => c.key);
    const fresh = review.comments.filter((c) => !byKey.has(c.key));
    if (fresh.length === 0) return { url: null, comments: 0, keys: already, resolved };
    const comments = fresh.map((c) => ({
      path: c.path,
      line: c.line,
      side: c.side,
      ...(c.startLine !== undefined ? { start_line: c.startLine, start_side: c.side } : {}),
      body: c.body,
    }));
    const post = (refused?: string) =>
      this.octokit.rest.pulls.createReview({
        owner,
        repo,
        pull_number: change.number,
        commit_id: review.commitId,
        event: 'COMMENT',
        body: refused
          ? `${marker}\n${review.body}\n\nGitHub did not accept the inline comments (${refused}); the summary comment and the full report list the findings.`
          : `${marker}\n${review.body}`,
        ...(refused ? {} : { comments }),
      });
    try {
      const r = await post();
      return { url: r.data.html_url, comments: comments.length, keys: [...already, ...fresh.map((c) => c.key)], resolved };
    } catch (e) {
      if ((e as { status?: number }).status !== 422) throw e;
      const r = await post(`HTTP 422: ${((e as Error).message || 'Unprocessable Entity').slice(0, 200)}`);
      return { url: r.data.html_url, comments: 0, keys: already, resolved };
    }
  }

  /**
   * Reads the pull request's review comments (`GET …/pulls/{pull_number}/comments`): AgentFlow's
   * (those with a finding marker, the latest {@link MAX_FEEDBACK_COMMENTS}) get their reactions
   * read (`GET …/pulls/comments/{comment_id}/reactions`, the commenter's own excluded), and the
   * replies to them that say `/agentflow dismiss` or `@agentflow dismiss` on their first line
   * dismiss the finding when their author has write access (`author_association` OWNER, MEMBER or
   * COLLABORATOR; others are ignored). REST does not show whether a thread is resolved.
   * Source: https://docs.github.com/en/rest/reactions/reactions#list-reactions-for-a-pull-request-review-comment (2026-11).
   */
  async readFeedback(change: Change): Promise<FindingFeedback[]> {
    this.permissions.clear();
    const { owner, repo } = splitRepository(change.repository);
    const all = await this.reviewComments(owner, repo, change.number);
    const own = await this.ownComments();
    const mine = all
      .filter(own)
      .flatMap((c) => {
        const key = c.in_reply_to_id === undefined ? markedFinding(c.body) : undefined;
        return key ? [{ key, comment: c }] : [];
      })
      .slice(-MAX_FEEDBACK_COMMENTS);
    const trusted = TRUSTED_ASSOCIATIONS as readonly string[];
    const threads = mine.length > 0 ? await this.threads(owner, repo, change.number) : new Map<string, ReviewThread>();
    const out: FindingFeedback[] = [];
    for (const { key, comment } of mine) {
      const reactions = await this.octokit.paginate(this.octokit.rest.reactions.listForPullRequestReviewComment, {
        owner,
        repo,
        comment_id: comment.id,
        per_page: 100,
      });
      const others = reactions.filter((r) => r.user?.login !== comment.user?.login);
      let dismissal: (typeof all)[number] | undefined;
      for (const r of all) {
        if (r.in_reply_to_id !== comment.id || !isDismissReply(r.body)) continue;
        if (!trusted.includes(r.author_association) || !r.user?.login) continue;
        if (await this.canWrite(owner, repo, r.user.login)) {
          dismissal = r;
          break;
        }
      }
      // A thread a person resolved (AgentFlow resolves only threads it answered as resolved).
      const thread = threads.get(String(comment.id));
      const ours = all.some((r) => r.in_reply_to_id === comment.id && markedResolved(r.body) !== undefined && own(r));
      out.push({
        key,
        ...(thread?.isResolved && !ours ? { resolved: true } : {}),
        up: others.filter((r) => r.content === '+1').length,
        down: others.filter((r) => r.content === '-1').length,
        ...(dismissal ? { dismissedBy: dismissal.user?.login ?? 'unknown' } : {}),
      });
    }
    return out;
  }

  /**
   * `POST /repos/{owner}/{repo}/check-runs` (`status: in_progress`, `head_sha`). Needs a GitHub
   * App installation token with `checks: write` (a personal token gets 403).
   * Source: https://docs.github.com/en/rest/checks/runs#create-a-check-run (2026-11).
   */
  async startCheck(change: Change, name: string, runId: string): Promise<void> {
    const { owner, repo } = splitRepository(change.repository);
    await this.octokit.rest.checks.create({ owner, repo, name, head_sha: change.headSha, status: 'in_progress', external_id: runId });
  }

  /**
   * Finds this run's check run among every check run `name` of the head commit (`filter: all`,
   * matched by `external_id`); updates it when it is open (`PATCH …/check-runs/{id}`), leaves it
   * when it is concluded, else creates a completed one as `create` says. The first request carries
   * the conclusion, output and the first 50 annotations, further updates 50 more each (GitHub
   * appends them).
   */
  async completeCheck(change: Change, name: string, runId: string, result: CheckResult, create: CheckCreate): Promise<string | null> {
    const { owner, repo } = splitRepository(change.repository);
    const { data } = await this.octokit.rest.checks.listForRef({
      owner,
      repo,
      ref: change.headSha,
      check_name: name,
      filter: 'all',
      per_page: 100,
    });
    const mine = data.check_runs.find((c) => c.external_id === runId);
    if (mine?.status === 'completed') return mine.html_url ?? null;
    const open = mine;
    if (!open && (create === 'never' || (create === 'if-none' && data.check_runs.length > 0))) return null;
    const batches: CheckResult['annotations'][] = [];
    for (let i = 0; i < result.annotations.length; i += ANNOTATIONS_PER_REQUEST) {
      batches.push(result.annotations.slice(i, i + ANNOTATIONS_PER_REQUEST));
    }
    const output = (annotations: CheckResult['annotations']) => ({
      title: result.title,
      summary: result.summary,
      ...(annotations.length > 0 ? { annotations } : {}),
    });
    const [first = [], ...rest] = batches;
    const done = open
      ? await this.octokit.rest.checks.update({
          owner,
          repo,
          check_run_id: open.id,
          status: 'completed',
          conclusion: result.conclusion,
          output: output(first),
        })
      : await this.octokit.rest.checks.create({
          owner,
          repo,
          name,
          head_sha: change.headSha,
          external_id: runId,
          status: 'completed',
          conclusion: result.conclusion,
          output: output(first),
        });
    for (const annotations of rest) {
      await this.octokit.rest.checks.update({ owner, repo, check_run_id: done.data.id, output: output(annotations) });
    }
    return done.data.html_url ?? null;
  }

  /**
   * `POST /repos/{owner}/{repo}/code-scanning/sarifs` with the SARIF gzip-compressed and
   * base64-encoded, `commit_sha` the head and `ref` as {@link codeScanningRef} says (nothing is
   * uploaded without one). Needs `security_events: write` (GitHub App) or a token with
   * `security_events` scope, and code scanning available on the repository (public, or GitHub
   * Advanced Security): otherwise 403. GitHub processes the upload later (202).
   * Source: https://docs.github.com/en/rest/code-scanning/code-scanning#upload-an-analysis-as-sarif-data (2026-11).
   */
  async uploadCodeScanning(change: Change, _workflow: string, sarif: SarifLog): Promise<string | null> {
    const ref = codeScanningRef(change);
    if (!ref) return null;
    const { owner, repo } = splitRepository(change.repository);
    const r = await this.octokit.rest.codeScanning.uploadSarif({
      owner,
      repo,
      commit_sha: change.headSha,
      ref,
      sarif: gzipSync(JSON.stringify(sarif)).toString('base64'),
      tool_name: 'AgentFlow',
    });
    return r.data.url ?? null;
  }
}

/**
 * The Git ref a code scanning analysis belongs to: `refs/pull/<n>/head` for a pull request, the
 * head branch (`refs/heads/<headRef>`) for a change without one, or undefined when the head is
 * only a commit (code scanning needs a ref).
 */
export function codeScanningRef(change: Change): string | undefined {
  if (change.number > 0) return `refs/pull/${change.number}/head`;
  const head = change.headRef;
  if (!head || /^[0-9a-f]{7,40}$/i.test(head)) return undefined;
  return head.startsWith('refs/') ? head : `refs/heads/${head}`;
}

/** A review thread: its GraphQL node id and whether it is resolved. */
interface ReviewThread {
  id: string;
  isResolved: boolean;
}

interface ThreadsPage {
  repository: {
    pullRequest: {
      reviewThreads: {
        pageInfo: { hasNextPage: boolean; endCursor: string | null };
        nodes: Array<{
          id: string;
          isResolved: boolean;
          comments: { nodes: Array<{ fullDatabaseId: string | number | null } | null> | null };
        } | null> | null;
      };
    } | null;
  } | null;
}

const THREADS_QUERY = `query ($owner: String!, $repo: String!, $number: Int!, $after: String) {
  repository(owner: $owner, name: $repo) {
    pullRequest(number: $number) {
      reviewThreads(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor }
        nodes { id isResolved comments(first: 1) { nodes { fullDatabaseId } } }
      }
    }
  }
}`;

const RESOLVE_THREAD = `mutation ($threadId: ID!) {
  resolveReviewThread(input: { threadId: $threadId }) { thread { id isResolved } }
}`;

/** AgentFlow comments whose feedback a run reads at most (the latest). */
export const MAX_FEEDBACK_COMMENTS = 100;

/** A table giving every forge the same publisher (local mode writes files whatever the forge). */
export const everyForge = (publisher: ForgePublisher): ForgeTable =>
  Object.fromEntries(FORGES.map((forge) => [forge, publisher])) as ForgeTable;

/**
 * Local mode: the comment is written to `comments/<owner>/<repo>/<number>/<marker>.md` in the
 * artifact folder (the same file again for the same pull request and workflow) and `onComment`
 * is told (the CLI prints it); the review, check run and SARIF beside it, `onReview` and `onSarif`
 * told likewise.
 */
export class FilePublisher implements ForgePublisher {
  constructor(
    private readonly artifacts: ArtifactStore & { pathOf?: (key: string) => string },
    private readonly onComment?: (body: string, path: string) => void,
    private readonly onReview?: (path: string, comments: number) => void,
    private readonly onSarif?: (path: string, results: number) => void,
    /** The local repository generated files are committed to (a branch; see {@link commitInLocalRepository}). */
    private readonly repoPath?: string,
  ) {}

  /**
   * Commits generated files to a branch of the local repository (`repoPath`), the working tree and
   * current branch untouched. @throws Error when the publisher was made without a repository
   */
  async commitFiles(change: Change, request: CommitRequest): Promise<CommittedFiles> {
    if (!this.repoPath) throw new Error('no local repository to commit generated files to');
    return commitInLocalRepository(this.repoPath, change, request);
  }

  /**
   * Writes the SARIF GitHub code scanning would get to
   * `comments/<owner>/<repo>/<number>/<workflow>.results.sarif` (uncompressed JSON: the latest run's).
   */
  async uploadCodeScanning(change: Change, workflow: string, sarif: SarifLog): Promise<string | null> {
    const key = `comments/${change.repository}/${change.number}/${workflow.replace(/[^\w.-]+/g, '-')}.results.sarif`;
    await this.artifacts.putText(key, `${JSON.stringify(sarif, null, 2)}\n`, 'application/sarif+json');
    const path = this.artifacts.pathOf ? this.artifacts.pathOf(key) : key;
    this.onSarif?.(
      path,
      sarif.runs.reduce((n, r) => n + (r.results?.length ?? 0), 0),
    );
    return path;
  }

  async upsertComment(change: Change, marker: string, body: string): Promise<string | null> {
    const workflow = /agentflow:([\w.-]+)/.exec(marker)?.[1] ?? 'comment';
    const key = `comments/${change.repository}/${change.number}/${workflow}.md`;
    await this.artifacts.putText(key, body);
    const path = this.artifacts.pathOf ? this.artifacts.pathOf(key) : key;
    this.onComment?.(body, path);
    return path;
  }

  /**
   * Writes the review GitHub would get to `comments/<owner>/<repo>/<number>/<workflow>.review.json`
   * (every run, so the file is the latest run's, even without comments).
   */
  async postReview(change: Change, marker: string, review: InlineReview): Promise<PostedReview> {
    const workflow = /agentflow:([\w.-]+)/.exec(marker)?.[1] ?? 'review';
    const key = `comments/${change.repository}/${change.number}/${workflow}.review.json`;
    await this.artifacts.putJson(key, review);
    const path = this.artifacts.pathOf ? this.artifacts.pathOf(key) : key;
    this.onReview?.(path, review.comments.length);
    return { url: path, comments: review.comments.length, keys: review.comments.map((c) => c.key), resolved: review.resolved.length };
  }

  /**
   * Locally nobody reacts: the feedback is what a person wrote in
   * `comments/<owner>/<repo>/<number>/feedback.json` (`[{ "key": "<fingerprint>", "up": 0, "down": 1,
   * "dismissedBy": "you" }]`, keys from the comments' markers in `<workflow>.review.json`), or none.
   */
  async readFeedback(change: Change): Promise<FindingFeedback[]> {
    const stored = await this.artifacts.getJson(`comments/${change.repository}/${change.number}/feedback.json`).catch(() => []);
    return (Array.isArray(stored) ? stored : []).flatMap((f: unknown) => {
      const x = f as Partial<FindingFeedback>;
      if (typeof x?.key !== 'string') return [];
      return [
        {
          key: x.key,
          up: typeof x.up === 'number' ? x.up : 0,
          down: typeof x.down === 'number' ? x.down : 0,
          ...(typeof x.dismissedBy === 'string' ? { dismissedBy: x.dismissedBy } : {}),
        },
      ];
    });
  }

  /** The check run GitHub would show, in `comments/<owner>/<repo>/<number>/<check name>.check-run.json`. */
  private checkKey(change: Change, name: string): string {
    return `comments/${change.repository}/${change.number}/${name.replace(/[^\w.-]+/g, '-')}.check-run.json`;
  }

  /** Writes the check run `in_progress` for the head commit. */
  async startCheck(change: Change, name: string, runId: string): Promise<void> {
    await this.artifacts.putJson(this.checkKey(change, name), {
      name,
      head_sha: change.headSha,
      external_id: runId,
      status: 'in_progress',
    });
  }

  /** Writes the concluded check run (status, conclusion, output with every annotation); `create` as on GitHub. */
  async completeCheck(change: Change, name: string, runId: string, result: CheckResult, create: CheckCreate): Promise<string | null> {
    const key = this.checkKey(change, name);
    const existing = (await this.artifacts.getJson(key).catch(() => undefined)) as { external_id?: string; status?: string } | undefined;
    if (existing?.external_id === runId && existing.status === 'completed') return this.artifacts.pathOf ? this.artifacts.pathOf(key) : key;
    if (existing?.external_id !== runId && (create === 'never' || (create === 'if-none' && existing))) return null;
    await this.artifacts.putJson(key, {
      name,
      head_sha: change.headSha,
      external_id: runId,
      status: 'completed',
      conclusion: result.conclusion,
      output: { title: result.title, summary: result.summary, annotations: result.annotations },
    });
    return this.artifacts.pathOf ? this.artifacts.pathOf(key) : key;
  }
}
