import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Octokit } from '@octokit/rest';
import type { Change, ChangedFile } from '../core/contracts.js';
import type { ChangeLookup, ChangeSource } from '../core/ports.js';
import { splitRepository } from '../core/triggers.js';

const run = promisify(execFile);

/** Changed files of a pull request from the GitHub REST API (`GET /repos/{o}/{r}/pulls/{n}/files`). */
export class GitHubChangeSource implements ChangeSource {
  constructor(private readonly octokit: Octokit) {}

  async listChangedFiles(change: Change): Promise<ChangedFile[]> {
    const { owner, repo } = splitRepository(change.repository);
    const files = await this.octokit.paginate(this.octokit.rest.pulls.listFiles, {
      owner,
      repo,
      pull_number: change.number,
      per_page: 100,
    });
    return files.map((f) => ({
      path: f.filename,
      status: f.status,
      additions: f.additions,
      deletions: f.deletions,
      // GitHub omits `patch` for binary files and for very large diffs.
      patch: f.patch ?? '',
      binary: f.patch === undefined && f.changes === 0,
      ...(f.previous_filename ? { previousPath: f.previous_filename } : {}),
    }));
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
 * Changed files between the change's base and head commits of a local git repository
 * (`git diff -M base head`), the local stand-in for the GitHub API.
 */
export class GitChangeSource implements ChangeSource {
  constructor(private readonly repoPath: string) {}

  async listChangedFiles(change: Change): Promise<ChangedFile[]> {
    let out: string;
    try {
      ({ stdout: out } = await run(
        'git',
        ['-C', this.repoPath, 'diff', '-M', '--no-color', '--no-ext-diff', '--unified=3', change.baseSha, change.headSha],
        { maxBuffer: 256 * 1024 * 1024 },
      ));
    } catch (e) {
      const msg = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
      throw new Error(`cannot diff ${change.baseSha}..${change.headSha} in ${this.repoPath}: ${msg}`);
    }
    return parseUnifiedDiff(out);
  }

  async readHeadFile(change: Change, path: string): Promise<string | undefined> {
    try {
      const { stdout } = await run('git', ['-C', this.repoPath, 'show', `${change.headSha}:${path}`], { maxBuffer: 16 * 1024 * 1024 });
      return stdout;
    } catch {
      return undefined;
    }
  }
}

/** Parses `git diff` output into changed files. Exported for tests. */
export function parseUnifiedDiff(diff: string): ChangedFile[] {
  const files: ChangedFile[] = [];
  const sections = diff.split(/^diff --git /m).slice(1);
  for (const section of sections) {
    const lines = section.split('\n');
    const head = lines[0] ?? '';
    const m = /^a\/(.+) b\/(.+)$/.exec(head);
    let path = m?.[2] ?? head;
    let previousPath: string | undefined;
    let status: ChangedFile['status'] = 'modified';
    let binary = false;
    const hunkStart = lines.findIndex((l) => l.startsWith('@@'));
    const meta = hunkStart < 0 ? lines : lines.slice(0, hunkStart);
    for (const l of meta) {
      if (l.startsWith('new file mode')) status = 'added';
      else if (l.startsWith('deleted file mode')) status = 'removed';
      else if (l.startsWith('rename from ')) {
        previousPath = l.slice('rename from '.length);
        status = 'renamed';
      } else if (l.startsWith('rename to ')) path = l.slice('rename to '.length);
      else if (l.startsWith('Binary files')) binary = true;
    }
    const patchLines = hunkStart < 0 ? [] : lines.slice(hunkStart);
    while (patchLines.length > 0 && patchLines[patchLines.length - 1] === '') patchLines.pop();
    let additions = 0;
    let deletions = 0;
    for (const l of patchLines) {
      if (l.startsWith('+')) additions++;
      else if (l.startsWith('-')) deletions++;
    }
    files.push({ path, status, additions, deletions, patch: patchLines.join('\n'), binary, ...(previousPath ? { previousPath } : {}) });
  }
  return files;
}

/** A change between two refs, without a pull request (`number: 0`). */
function refsChange(repository: string, base: string, head: string, baseSha: string, headSha: string): Change {
  return {
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
  };
}

/** {@link ChangeLookup} on the GitHub REST API (`GET /repos/{o}/{r}/pulls/{n}`, `GET /repos/{o}/{r}/commits/{ref}`). */
export class GitHubChangeLookup implements ChangeLookup {
  constructor(private readonly octokit: Octokit) {}

  async pullRequest(repository: string, number: number): Promise<Change> {
    const { owner, repo } = splitRepository(repository);
    const { data: pr } = await this.octokit.rest.pulls.get({ owner, repo, pull_number: number });
    return {
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
    };
  }

  async refs(repository: string, base: string, head: string): Promise<Change> {
    const { owner, repo } = splitRepository(repository);
    const sha = async (ref: string) => (await this.octokit.rest.repos.getCommit({ owner, repo, ref })).data.sha;
    const [baseSha, headSha] = await Promise.all([sha(base), sha(head)]);
    return refsChange(repository, base, head, baseSha, headSha);
  }
}

/**
 * {@link ChangeLookup} on a local git repository: refs resolve with `git rev-parse`; a pull request
 * is the change of its latest local run (`known`), since there is no GitHub to ask.
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

  async refs(repository: string, base: string, head: string): Promise<Change> {
    const sha = async (ref: string) => {
      try {
        return (await run('git', ['-C', this.repoPath, 'rev-parse', '--verify', `${ref}^{commit}`])).stdout.trim();
      } catch {
        throw new Error(`${ref} is not a commit in ${this.repoPath}`);
      }
    };
    const [baseSha, headSha] = await Promise.all([sha(base), sha(head)]);
    return refsChange(repository, base, head, baseSha, headSha);
  }
}
