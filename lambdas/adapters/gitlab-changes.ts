import type { Gitlab, MergeRequestDiffSchema } from '@gitbeaker/rest';
import { structuredPatch } from 'diff';
import type { Change, ChangedFile } from '../core/contracts.js';
import type { ChangeSource } from '../core/ports.js';

/**
 * Diffs per page we ask GitLab for (`per_page`; GitLab's maximum is 100).
 * Source: https://docs.gitlab.com/api/rest/#pagination (read 2026-11).
 */
const DIFFS_PER_PAGE = 100;
/** Most diff pages we read: 30 × 100 = 3000 files, the cap {@link GitHubChangeSource} puts on a compare. */
const DIFFS_MAX_PAGES = 30;
/** Lines of context around each rebuilt hunk, as `git diff` and GitLab show them. */
const CONTEXT_LINES = 3;

/** The gitbeaker client the source calls (`new Gitlab({ host, token })` from `@gitbeaker/rest`). */
export type GitLabClient = InstanceType<typeof Gitlab<false>>;

/**
 * One entry of `GET /projects/:id/merge_requests/:iid/diffs`: gitbeaker's `MergeRequestDiffSchema`
 * plus the flags GitLab adds and gitbeaker does not type (`too_large`, `collapsed`).
 * Source: https://docs.gitlab.com/api/merge_requests/#list-merge-request-diffs (read 2026-11).
 */
type GitLabDiffEntry = MergeRequestDiffSchema & { too_large?: boolean; collapsed?: boolean };

/** The HTTP status of a failed gitbeaker call (`GitbeakerRequestError.cause.response.status`), if any. */
export function gitLabStatus(e: unknown): number | undefined {
  const status = (e as { cause?: { response?: { status?: unknown } } }).cause?.response?.status;
  return typeof status === 'number' ? status : undefined;
}

/** The unified diff hunks of GitLab's `diff` text: from the first `@@` line on (GitLab leaves out the `---`/`+++` lines; some versions keep them). */
function hunksOnly(diff: string): string {
  const hunk = /^@@/m.exec(diff);
  return hunk ? diff.slice(hunk.index).replace(/\n$/, '') : '';
}

/** Added and removed lines of a unified diff (hunk headers and `\ No newline` markers not counted). */
function countLines(patch: string): { additions: number; deletions: number } {
  let additions = 0;
  let deletions = 0;
  for (const line of patch.split('\n')) {
    if (line.startsWith('+')) additions++;
    else if (line.startsWith('-')) deletions++;
  }
  return { additions, deletions };
}

/** GitLab's status of a diff entry, as GitHub names it. */
function statusOf(d: GitLabDiffEntry): ChangedFile['status'] {
  if (d.new_file) return 'added';
  if (d.deleted_file) return 'removed';
  if (d.renamed_file) return 'renamed';
  return 'modified';
}

/**
 * The unified diff hunks (`@@ -a,n +b,m @@`, {@link CONTEXT_LINES} lines of context) from `base`
 * to `head`, as `git diff` writes them without its header lines; empty when the texts are equal.
 * Computed by jsdiff (`diff`, `structuredPatch`).
 */
export function unifiedHunks(base: string, head: string): string {
  if (base === head) return '';
  const { hunks } = structuredPatch('a', 'b', base, head, '', '', { context: CONTEXT_LINES });
  const range = (start: number, len: number) => (len === 1 ? `${start}` : `${start},${len}`);
  return hunks
    .flatMap((h) => [
      // jsdiff numbers an empty side from 1 where git writes 0 (`@@ -0,0 +1,3 @@`).
      `@@ -${range(h.oldLines === 0 ? h.oldStart - 1 : h.oldStart, h.oldLines)} +${range(h.newLines === 0 ? h.newStart - 1 : h.newStart, h.newLines)} @@`,
      ...h.lines,
    ])
    .join('\n');
}

/** Whether GitLab's diff text says the file is binary (`Binary files a/x and b/y differ`). */
const BINARY_DIFF = /^Binary files .* differ$/m;

/**
 * Changed files of a GitLab merge request from the GitLab REST API through `@gitbeaker/rest`, in
 * the stored {@link ChangedFile} shape {@link GitHubChangeSource} gives for GitHub.
 *
 * - `change.repository` is the project's full path (`group/sub/project`; gitbeaker URL-encodes it
 *   as `group%2Fsub%2Fproject`), `change.number` the merge request's iid, `change.baseSha` and
 *   `change.headSha` GitLab's `diff_refs.base_sha` and `head_sha`.
 * - The list: `GET /projects/:id/merge_requests/:iid/diffs?per_page=100`, pages followed by the
 *   `Link` header, at most {@link DIFFS_MAX_PAGES} pages (later files are left out, as GitHub caps
 *   a pull request's list). Source: https://docs.gitlab.com/api/merge_requests/#list-merge-request-diffs (read 2026-11).
 * - Status: `new_file` → added, `deleted_file` → removed, `renamed_file` → renamed (`previousPath`
 *   = `old_path`), else modified; `patch` holds the hunks only; additions and deletions are counted
 *   from them.
 * - Binary: a diff `Binary files … differ`, or a rebuilt file whose text holds a NUL byte or comes
 *   back as a Blob: `binary: true`, empty patch, no counts.
 * - Too large: an entry flagged `too_large` or `collapsed`, or a text diff GitLab left empty (but
 *   not a pure rename): the file is read at `baseSha` and at `headSha`
 *   (`GET /projects/:id/repository/files/:path/raw?ref=`; a side that does not exist is empty) and
 *   its hunks are computed here ({@link unifiedHunks}). GitLab collapses a file's diff at 10 % of
 *   its diff limits and the API then lists it with an empty `diff`. Sources:
 *   https://docs.gitlab.com/administration/diff_limits/ and
 *   https://gitlab.com/gitlab-org/gitlab/-/issues/414389 (read 2026-11).
 *
 * @throws GitbeakerRequestError when GitLab refuses a call (401 for a wrong token, 404 for an
 *   unknown project or merge request); {@link gitLabStatus} reads its HTTP status
 * @example
 * const source = new GitLabChangeSource(new Gitlab({ host: 'https://gitlab.com', token }));
 * await source.listChangedFiles(change); // [{ path: 'src/a.ts', status: 'modified', … }]
 */
export class GitLabChangeSource implements ChangeSource {
  constructor(private readonly gitlab: GitLabClient) {}

  async listChangedFiles(change: Change): Promise<ChangedFile[]> {
    const entries = (await this.gitlab.MergeRequests.allDiffs(change.repository, change.number, {
      perPage: DIFFS_PER_PAGE,
      maxPages: DIFFS_MAX_PAGES,
    })) as GitLabDiffEntry[];
    const files: ChangedFile[] = [];
    for (const d of entries) files.push(await this.fromGitLab(change, d));
    return files;
  }

  /** Maps one diff entry, rebuilding its hunks from the file versions when GitLab left them out. */
  private async fromGitLab(change: Change, d: GitLabDiffEntry): Promise<ChangedFile> {
    const status = statusOf(d);
    const base = {
      path: d.new_path,
      status,
      ...(d.renamed_file && d.old_path !== d.new_path ? { previousPath: d.old_path } : {}),
    };
    if (BINARY_DIFF.test(d.diff)) return { ...base, additions: 0, deletions: 0, patch: '', binary: true };
    let patch = hunksOnly(d.diff);
    const pureRename = status === 'renamed' && !d.too_large && !d.collapsed;
    if (d.too_large === true || d.collapsed === true || (patch === '' && !pureRename)) {
      const [before, after] = await Promise.all([
        status === 'added' ? '' : this.readRaw(change.repository, d.old_path, change.baseSha),
        status === 'removed' ? '' : this.readRaw(change.repository, d.new_path, change.headSha),
      ]);
      if (before === undefined || after === undefined) return { ...base, additions: 0, deletions: 0, patch: '', binary: true };
      patch = unifiedHunks(before, after);
    }
    return { ...base, ...countLines(patch), patch, binary: false };
  }

  /**
   * The text of `path` at `ref`: '' when the file is not there (404), undefined when it is binary
   * (a Blob answer or a NUL byte).
   */
  private async readRaw(projectPath: string, path: string, ref: string): Promise<string | undefined> {
    let body: string | Blob;
    try {
      body = await this.gitlab.RepositoryFiles.showRaw(projectPath, path, ref);
    } catch (e) {
      if (gitLabStatus(e) === 404) return '';
      throw e;
    }
    if (typeof body !== 'string') return undefined;
    return body.includes('\0') ? undefined : body;
  }

  /**
   * `GET /projects/:id/repository/files/:path/raw?ref=<headSha>`; undefined on 404.
   * Source: https://docs.gitlab.com/api/repository_files/#get-raw-file-from-repository (read 2026-11).
   * @throws GitbeakerRequestError for any other refusal
   */
  async readHeadFile(change: Change, path: string): Promise<string | undefined> {
    try {
      const body = await this.gitlab.RepositoryFiles.showRaw(change.repository, path, change.headSha);
      return typeof body === 'string' ? body : await body.text();
    } catch (e) {
      if (gitLabStatus(e) === 404) return undefined;
      throw e;
    }
  }
}
