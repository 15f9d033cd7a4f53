import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { GitLabStandIn, SeededDiff } from './gitlab.js';

/** `git` in `repo`, its output as text (its errors not printed). */
const git = (repo: string, args: string[]) =>
  execFileSync('git', ['-C', repo, ...args], { maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] }).toString('utf8');

/**
 * The diff entries GitLab's `GET /projects/:id/merge_requests/:iid/diffs` would list for the
 * change `base...head` of a real git repository: one entry per file from `git diff -M` (renames
 * detected as GitLab does), `diff` holding the file's hunks from the first `@@` (GitLab leaves the
 * `---`/`+++` lines out), `Binary files … differ` for binaries, modes from the index lines.
 */
export function gitLabDiffs(repo: string, base: string, head: string): SeededDiff[] {
  const mergeBase = git(repo, ['merge-base', base, head]).trim();
  const text = git(repo, ['-c', 'core.quotePath=false', 'diff', '-M', '--no-color', '--no-ext-diff', mergeBase, head]);
  const parts = text.split(/^(?=diff --git )/m).filter((p) => p.startsWith('diff --git '));
  return parts.map((part) => {
    const cut = part.search(/^(?:@@|Binary files )/m);
    const header = cut >= 0 ? part.slice(0, cut) : part;
    const line = (prefix: string) =>
      header
        .split('\n')
        .find((l) => l.startsWith(prefix))
        ?.slice(prefix.length);
    const paths = /^diff --git a\/(.*) b\/(.*)$/m.exec(header);
    const oldPath = line('rename from ') ?? line('--- a/') ?? paths?.[1] ?? '';
    const newPath = line('rename to ') ?? line('+++ b/') ?? paths?.[2] ?? '';
    const hunk = part.search(/^@@/m);
    const binary = /^Binary files .* differ$/m.exec(part)?.[0];
    const mode = /^index [0-9a-f]+\.\.[0-9a-f]+ (\d+)$/m.exec(header)?.[1];
    return {
      old_path: oldPath,
      new_path: newPath,
      a_mode: line('deleted file mode ') ?? (line('new file mode ') ? '0' : (line('old mode ') ?? mode ?? '100644')),
      b_mode: line('new file mode ') ?? (line('deleted file mode ') ? '0' : (line('new mode ') ?? mode ?? '100644')),
      new_file: line('new file mode ') !== undefined,
      renamed_file: line('rename from ') !== undefined,
      deleted_file: line('deleted file mode ') !== undefined,
      diff: binary ? `${binary}\n` : hunk >= 0 ? part.slice(hunk) : '',
    };
  });
}

/** The text files of `ref` that `diffs` touch (old paths at base, new paths at head), for `putFile`. */
function filesAt(repo: string, ref: string, paths: readonly string[]): Array<{ path: string; content: string }> {
  const out: Array<{ path: string; content: string }> = [];
  for (const path of paths) {
    try {
      out.push({ path, content: git(repo, ['show', `${ref}:${path}`]) });
    } catch {
      // Not at this ref (added or deleted by the change).
    }
  }
  return out;
}

/**
 * Seeds merge request `iid` of project `project` on `gitlab` with the change `base...head` of a
 * real repository: its diffs ({@link gitLabDiffs}), `diff_refs` (base = the merge base, start =
 * the base branch's tip, head), the changed files at base and head, and every file the head holds
 * that a review reads (`.agentflow.yml` and guidance files at the base). Returns the SHAs.
 */
export function seedMergeRequestFromGit(
  gitlab: GitLabStandIn,
  o: { repo: string; project: string; iid: number; base: string; head: string; sourceBranch: string; targetBranch: string; title?: string },
): { baseSha: string; startSha: string; headSha: string; diffs: SeededDiff[] } {
  const headSha = git(o.repo, ['rev-parse', `${o.head}^{commit}`]).trim();
  const startSha = git(o.repo, ['rev-parse', `${o.base}^{commit}`]).trim();
  const baseSha = git(o.repo, ['merge-base', startSha, headSha]).trim();
  const diffs = gitLabDiffs(o.repo, startSha, headSha);
  gitlab.addProject(o.project);
  gitlab.addMergeRequest(o.project, o.iid, diffs, {
    baseSha,
    startSha,
    headSha,
    sourceBranch: o.sourceBranch,
    targetBranch: o.targetBranch,
    ...(o.title ? { title: o.title } : {}),
  });
  const changed = (side: 'old_path' | 'new_path') => diffs.filter((d) => !d.diff.startsWith('Binary files')).map((d) => d[side]);
  for (const f of filesAt(o.repo, baseSha, [...changed('old_path'), '.agentflow.yml', 'AGENTS.md', 'CLAUDE.md'])) {
    gitlab.putFile(o.project, baseSha, f.path, f.content);
  }
  for (const f of filesAt(o.repo, headSha, changed('new_path'))) gitlab.putFile(o.project, headSha, f.path, f.content);
  return { baseSha, startSha, headSha, diffs };
}

/**
 * GitLab's documented merge request event (`test/fixtures/gitlab/<fixture>.json`, from
 * webhook_events.md) pointed at a seeded merge request: its project, iid, branches, title and last
 * commit, not a draft. @returns the JSON body
 */
export function mergeRequestEventFor(
  fixture: string,
  mr: { project: string; iid: number; headSha: string; sourceBranch: string; targetBranch: string; title?: string; host?: string },
): string {
  const e = JSON.parse(readFileSync(new URL(`../fixtures/gitlab/${fixture}.json`, import.meta.url), 'utf8'));
  e.project.path_with_namespace = mr.project;
  e.object_attributes.iid = mr.iid;
  if (mr.title) e.object_attributes.title = mr.title;
  e.object_attributes.target_project_id = e.project.id;
  e.object_attributes.source_project_id = e.project.id;
  e.object_attributes.target_branch = mr.targetBranch;
  e.object_attributes.source_branch = mr.sourceBranch;
  e.object_attributes.url = `${mr.host ?? 'https://gitlab.example'}/${mr.project}/-/merge_requests/${mr.iid}`;
  e.object_attributes.last_commit.id = mr.headSha;
  e.object_attributes.draft = false;
  e.object_attributes.work_in_progress = false;
  return JSON.stringify(e);
}
