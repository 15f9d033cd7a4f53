import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Octokit, RestEndpointMethodTypes } from '@octokit/rest';
import type { Change, ChangedFile, Forge } from '../core/contracts.js';
import type { ChangeLookup, ChangeSource } from '../core/ports.js';
import { assertSafeRef } from '../core/refs.js';
import { isFork, splitRepository } from '../core/triggers.js';

const exec = promisify(execFile);

/** A changed file as the GitHub REST API returns it (pull request files and compare `files`). */
type GitHubDiffEntry = RestEndpointMethodTypes['pulls']['listFiles']['response']['data'][number];

/**
 * Files per compare page we ask for. GitHub documents that a compare lists its changed files on
 * the first page only, at most 300 of them; we still ask for the next page while a page comes back
 * with at least this many files and new names, so a paginated file list is read whole as well.
 * Source: https://docs.github.com/rest/commits/commits#compare-two-commits ("Working with large comparisons").
 */
const COMPARE_PER_PAGE = 100;
/** Most compare pages we read: 30 × 100 = 3000 files, the cap GitHub puts on a pull request's file list. */
const COMPARE_MAX_PAGES = 30;

/** Maps one GitHub diff entry to the stored shape. */
function fromGitHub(f: GitHubDiffEntry): ChangedFile {
  return {
    path: f.filename,
    status: f.status,
    additions: f.additions,
    deletions: f.deletions,
    // GitHub omits `patch` for binary files and for very large diffs.
    patch: f.patch ?? '',
    binary: f.patch === undefined && f.changes === 0,
    ...(f.previous_filename ? { previousPath: f.previous_filename } : {}),
  };
}

/**
 * Changed files of a change from the GitHub REST API: a pull request's files
 * (`GET /repos/{o}/{r}/pulls/{n}/files`; when the pull request's head has moved past the reviewed
 * `headSha`, the compare of the reviewed SHAs instead, so lines and inline comments belong to the
 * reviewed commit), or, for a change without a pull request (`number: 0`),
 * the files of the compare `GET /repos/{o}/{r}/compare/{base}...{head}` (three dots: from the
 * merge base, as a pull request shows them).
 */
export class GitHubChangeSource implements ChangeSource {
  constructor(private readonly octokit: Octokit) {}

  async listChangedFiles(change: Change): Promise<ChangedFile[]> {
    const { owner, repo } = splitRepository(change.repository);
    if (change.number === 0) return (await this.compareFiles(owner, repo, change.baseSha, change.headSha)).map(fromGitHub);
    const files = await this.octokit.paginate(this.octokit.rest.pulls.listFiles, {
      owner,
      repo,
      pull_number: change.number,
      per_page: 100,
    });
    // The files list is the pull request's current diff: when a push moved its head past the
    // reviewed commit, the compare of the reviewed SHAs is the diff that commit's lines belong to.
    const { data: pr } = await this.octokit.rest.pulls.get({ owner, repo, pull_number: change.number });
    if (pr.head.sha !== change.headSha) return (await this.compareFiles(owner, repo, change.baseSha, change.headSha)).map(fromGitHub);
    return files.map(fromGitHub);
  }

  /** The compare's files, page by page while a page is full and brings new names (see {@link COMPARE_PER_PAGE}). */
  private async compareFiles(owner: string, repo: string, base: string, head: string): Promise<GitHubDiffEntry[]> {
    const basehead = `${assertSafeRef(base)}...${assertSafeRef(head)}`;
    const files = new Map<string, GitHubDiffEntry>();
    for (let page = 1; page <= COMPARE_MAX_PAGES; page++) {
      const { data } = await this.octokit.rest.repos.compareCommitsWithBasehead({
        owner,
        repo,
        basehead,
        per_page: COMPARE_PER_PAGE,
        page,
      });
      const listed = data.files ?? [];
      const fresh = listed.filter((f) => !files.has(f.filename));
      for (const f of fresh) files.set(f.filename, f);
      if (listed.length < COMPARE_PER_PAGE || fresh.length === 0) break;
    }
    return [...files.values()];
  }

  async readHeadFile(change: Change, path: string): Promise<string | undefined> {
    const { owner, repo } = splitRepository(change.repository);
    try {
      const r = await this.octokit.rest.repos.getContent({ owner, repo, path, ref: change.headSha, mediaType: { format: 'raw' } });
      return typeof r.data === 'string' ? r.data : undefined;
    } catch (e) {
      if ((e as { status?: number }).status === 404) return undefined;
      throw e;
    }
  }
}

/**
 * The environment git runs with: ours without the variables that would point it at another
 * repository, index or object store than `-C <repoPath>` (set, for example, inside a git hook).
 */
export function gitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const redirecting = new Set(['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_COMMON_DIR', 'GIT_NAMESPACE']);
  for (const [k, v] of Object.entries(process.env)) if (!redirecting.has(k)) env[k] = v;
  return env;
}

/** A failed git call: its exit code and the first line git wrote to stderr. */
interface GitFailure {
  code: number | undefined;
  line: string;
}

function gitFailure(e: unknown): GitFailure {
  const err = e as { code?: unknown; stderr?: unknown; message?: string };
  const stderr = typeof err.stderr === 'string' ? err.stderr : '';
  const line =
    stderr
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l.length > 0) ?? String(err.message ?? e);
  return { code: typeof err.code === 'number' ? err.code : undefined, line: line.replace(/^(fatal|error): /, '') };
}

/** One clear line for a git call that failed on the repository itself (not a repository, not readable). */
function repositoryError(repoPath: string, f: GitFailure): Error {
  if (/not a git repository|cannot change to/.test(f.line)) return new Error(`${repoPath} is not a git repository`);
  return new Error(`cannot read the git repository ${repoPath}: ${f.line}`);
}

/** Largest output of one git call (a file read with `cat-file blob`, a listing), bytes: 16 MB. */
export const GIT_MAX_BUFFER = 16 * 1024 * 1024;

/**
 * Runs `git -C <repoPath> …args` (no shell, the environment of {@link gitEnv}) and returns its stdout.
 * @param maxBuffer most bytes of output. @default {@link GIT_MAX_BUFFER}
 * @throws the failure of the child process (exit code, stderr), or one for output over `maxBuffer`
 */
export async function git(repoPath: string, args: readonly string[], maxBuffer = GIT_MAX_BUFFER): Promise<string> {
  const { stdout } = await exec('git', ['-C', repoPath, ...args], { maxBuffer, env: gitEnv(), encoding: 'utf8' });
  return stdout;
}

/**
 * The commit SHA `ref` (a branch, tag or SHA) names in the local repository at `repoPath`.
 * `ref` is checked with {@link assertSafeRef} before git runs.
 *
 * @throws InvalidInputError when `ref` is not a safe ref name
 * @throws Error `<repoPath> is not a git repository`, or `no commit "<ref>" in <repoPath>` — one line each
 * @example
 * await resolveCommit('../app', 'feature/checkout'); // '3f2a…' (40 hex digits)
 */
export async function resolveCommit(repoPath: string, ref: string): Promise<string> {
  assertSafeRef(ref);
  try {
    return (await git(repoPath, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`])).trim();
  } catch (e) {
    const f = gitFailure(e);
    // `rev-parse --verify --quiet` exits 1, silently, when the name resolves to no commit.
    if (f.code === 1) throw new Error(`no commit ${JSON.stringify(ref)} in ${repoPath}`);
    throw repositoryError(repoPath, f);
  }
}

/** The diff {@link GitChangeSource.listChangedFiles} reads and {@link parseGitDiff} parses (before `--end-of-options <from> <to>`). */
export const GIT_DIFF: readonly string[] = [
  '-c',
  'core.quotePath=false',
  'diff',
  '-z',
  '--raw',
  '--numstat',
  '--patch',
  '--find-renames',
  // One section per submodule whatever the user's diff.submodule setting (`log` prints none).
  '--submodule=short',
  '--unified=3',
  '--no-color',
  '--no-ext-diff',
  '--no-textconv',
  '--no-relative',
];

/** The largest diff read, in bytes. */
export const DIFF_MAX_BUFFER = 256 * 1024 * 1024;

/** Status letters of `git diff --raw` (https://git-scm.com/docs/git-diff#_raw_output_format) as GitHub names them. */
const STATUS_BY_LETTER: Readonly<Record<string, ChangedFile['status']>> = {
  A: 'added',
  D: 'removed',
  M: 'modified',
  R: 'renamed',
  C: 'copied',
  T: 'changed',
};

/** One file pair of `git diff --raw -z`. */
interface RawEntry {
  status: ChangedFile['status'];
  path: string;
  previousPath?: string;
}

/**
 * Parses `git diff -z --raw --numstat --patch` output: the raw records, the numstat records (one
 * per raw record, in the same order), a NUL, then the patch text with one `diff --git` section per
 * record, again in the same order. Paths come only from the NUL-separated records, never from the
 * (quoted) patch headers. Binary files (numstat `-\t-`) get an empty patch.
 *
 * @throws Error when the three parts do not line up (a git whose output format we do not know)
 */
export function parseGitDiff(out: string): ChangedFile[] {
  let at = 0;
  const next = (): string => {
    const end = out.indexOf('\0', at);
    if (end < 0) throw new Error('unexpected git diff output: a record is not NUL-terminated');
    const token = out.slice(at, end);
    at = end + 1;
    return token;
  };

  const entries: RawEntry[] = [];
  while (out.startsWith(':', at)) {
    // ":<src mode> <dst mode> <src sha> <dst sha> <status letter><score>", then the path(s).
    const letter = next().split(' ')[4]?.charAt(0) ?? '';
    const src = next();
    if (letter === 'R' || letter === 'C') entries.push({ status: STATUS_BY_LETTER[letter] ?? 'renamed', path: next(), previousPath: src });
    else entries.push({ status: STATUS_BY_LETTER[letter] ?? 'changed', path: src });
  }

  const counts = entries.map((entry) => {
    // "<added>\t<deleted>\t<path>", or "<added>\t<deleted>\t" followed by the source and destination paths.
    const token = next();
    const tab1 = token.indexOf('\t');
    const tab2 = token.indexOf('\t', tab1 + 1);
    const added = token.slice(0, tab1);
    const deleted = token.slice(tab1 + 1, tab2);
    let path = token.slice(tab2 + 1);
    if (path === '') {
      next();
      path = next();
    }
    if (tab1 < 0 || tab2 < 0 || path !== entry.path) {
      throw new Error(`unexpected git diff output: numstat record for ${JSON.stringify(entry.path)}`);
    }
    const binary = added === '-' && deleted === '-';
    return { binary, additions: binary ? 0 : Number(added), deletions: binary ? 0 : Number(deleted) };
  });

  const patchText = out.slice(out.startsWith('\0', at) ? at + 1 : at);
  const starts = [...patchText.matchAll(/^diff --git /gm)].map((m) => m.index);
  // A type change (file ↔ symlink, `T`) is one record but two patch sections (a deletion and an
  // addition): it takes both while there are more sections than records left.
  const sections: string[] = [];
  let s = 0;
  for (const [i, entry] of entries.entries()) {
    const take = entry.status === 'changed' && starts.length - s > entries.length - i ? 2 : 1;
    sections.push(patchText.slice(starts[s], starts[s + take] ?? patchText.length));
    s += take;
  }
  if (s !== starts.length || starts.length < entries.length) {
    throw new Error(`unexpected git diff output: ${entries.length} changed files but ${starts.length} patch sections`);
  }
  return entries.map((entry, i) => {
    const { binary, additions, deletions } = counts[i] ?? { binary: false, additions: 0, deletions: 0 };
    const section = sections[i] ?? '';
    const hunk = /^@@/m.exec(section);
    const patch = binary || !hunk ? '' : section.slice(hunk.index).replace(/\n$/, '');
    return {
      path: entry.path,
      status: entry.status,
      additions,
      deletions,
      patch,
      binary,
      ...(entry.previousPath !== undefined ? { previousPath: entry.previousPath } : {}),
    };
  });
}

/**
 * Changed files of a change in a local git repository, the local stand-in for the GitHub API:
 * the diff from `merge-base(base, head)` to `head` (what GitHub shows for a pull request), with
 * rename detection (`-M`, 50 % similarity, as GitHub), exact paths from git's NUL-separated
 * records, and `binary: true` with an empty patch for binary files.
 */
export class GitChangeSource implements ChangeSource {
  constructor(private readonly repoPath: string) {}

  /**
   * @throws InvalidInputError when the base or head is not a safe ref name
   * @throws Error (one line) when the repository or a commit does not exist, or base and head share no history
   */
  async listChangedFiles(change: Change): Promise<ChangedFile[]> {
    const [base, head] = await Promise.all([resolveCommit(this.repoPath, change.baseSha), resolveCommit(this.repoPath, change.headSha)]);
    let mergeBase: string;
    try {
      mergeBase = (await git(this.repoPath, ['merge-base', '--end-of-options', base, head])).trim();
    } catch (e) {
      const f = gitFailure(e);
      // `git merge-base` exits 1, silently, when the commits share no history.
      if (f.code === 1) throw new Error(`${change.baseSha} and ${change.headSha} have no common history in ${this.repoPath}`);
      throw repositoryError(this.repoPath, f);
    }
    let out: string;
    try {
      out = await git(this.repoPath, [...GIT_DIFF, '--end-of-options', mergeBase, head], DIFF_MAX_BUFFER);
    } catch (e) {
      throw new Error(`cannot diff ${change.baseSha}...${change.headSha} in ${this.repoPath}: ${gitFailure(e).line}`);
    }
    return parseGitDiff(out);
  }

  async readHeadFile(change: Change, path: string): Promise<string | undefined> {
    try {
      return await git(this.repoPath, ['cat-file', 'blob', '--end-of-options', `${assertSafeRef(change.headSha)}:${path}`]);
    } catch {
      return undefined;
    }
  }
}

/** A change between two refs, without a pull request (`number: 0`). */
/** Two refs of a repository as a change without a pull or merge request (`number: 0`), on `forge`. */
export function refsChange(repository: string, base: string, head: string, baseSha: string, headSha: string, forge?: Forge): Change {
  return {
    ...(forge ? { forge } : {}),
    repository,
    number: 0,
    title: `${base}...${head}`,
    author: '',
    url: '',
    action: 'manual',
    baseSha,
    headSha,
    baseRef: base,
    headRef: head,
    // Both refs are in the repository itself.
    fork: false,
  };
}

/**
 * {@link ChangeLookup} on the GitHub REST API: `GET /repos/{o}/{r}/pulls/{n}` for a pull request;
 * for two refs, `GET /repos/{o}/{r}/commits/{ref}` for the head and
 * `GET /repos/{o}/{r}/compare/{base}...{head}` for the merge base, so the change's `baseSha` is
 * the merge base and its diff is the pull request's.
 */
export class GitHubChangeLookup implements ChangeLookup {
  constructor(private readonly octokit: Octokit) {}

  async pullRequest(repository: string, number: number): Promise<Change> {
    const { owner, repo } = splitRepository(repository);
    const { data: pr } = await this.octokit.rest.pulls.get({ owner, repo, pull_number: number });
    return {
      forge: 'github',
      repository,
      number,
      title: pr.title,
      author: pr.user?.login ?? '',
      url: pr.html_url,
      action: 'manual',
      baseSha: pr.base.sha,
      headSha: pr.head.sha,
      baseRef: pr.base.ref,
      headRef: pr.head.ref,
      fork: isFork(pr.head.repo?.full_name, pr.base.repo.full_name),
    };
  }

  /**
   * @throws InvalidInputError when a ref is not a safe ref name
   * @throws Error `no commit "<ref>" in <owner/name>` when a ref does not resolve
   */
  async refs(repository: string, base: string, head: string): Promise<Change> {
    const { owner, repo } = splitRepository(repository);
    assertSafeRef(base);
    assertSafeRef(head);
    const sha = async (ref: string) => {
      try {
        return (await this.octokit.rest.repos.getCommit({ owner, repo, ref, per_page: 1 })).data.sha;
      } catch (e) {
        const status = (e as { status?: number }).status;
        if (status === 404 || status === 422) throw new Error(`no commit ${JSON.stringify(ref)} in ${repository}`);
        throw e;
      }
    };
    const [baseSha, headSha] = await Promise.all([sha(base), sha(head)]);
    const { data } = await this.octokit.rest.repos.compareCommitsWithBasehead({
      owner,
      repo,
      basehead: `${baseSha}...${headSha}`,
      per_page: 1,
    });
    return refsChange(repository, base, head, data.merge_base_commit.sha, headSha);
  }
}

/**
 * {@link ChangeLookup} on a local git repository: refs resolve with `git rev-parse` (the base's
 * tip: {@link GitChangeSource} diffs from the merge base itself); a pull request is the change of
 * its latest local run (`known`), since there is no GitHub to ask.
 */
export class GitChangeLookup implements ChangeLookup {
  constructor(
    private readonly repoPath: string,
    private readonly known: (repository: string, number: number) => Promise<Change | undefined> = async () => undefined,
  ) {}

  async pullRequest(repository: string, number: number): Promise<Change> {
    const change = await this.known(repository, number);
    if (!change) throw new Error(`pull request ${repository}#${number} has no local run yet; use base=<ref> head=<ref>`);
    return change;
  }

  /**
   * @throws InvalidInputError when a ref is not a safe ref name (checked before git runs)
   * @throws Error (one line) when the repository or a commit does not exist
   */
  async refs(repository: string, base: string, head: string): Promise<Change> {
    assertSafeRef(base);
    assertSafeRef(head);
    const baseSha = await resolveCommit(this.repoPath, base);
    const headSha = await resolveCommit(this.repoPath, head);
    return refsChange(repository, base, head, baseSha, headSha);
  }
}
