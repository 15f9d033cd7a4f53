import type { Octokit } from '@octokit/rest';
import { describe, expect, it } from 'vitest';
import { GitHubChangeLookup, GitHubChangeSource } from '../../../lambdas/adapters/changes.js';
import type { Change } from '../../../lambdas/core/contracts.js';
import { InvalidInputError } from '../../../lambdas/core/errors.js';

/*
 * No GitHub stand-in on 127.0.0.1 exists in test/ yet: these tests check the mapping of the REST
 * calls with a fake octokit that records its calls and answers from a script.
 */

const BASE_TIP = 'b'.repeat(40);
const HEAD = 'h'.repeat(40);
const MERGE_BASE = 'm'.repeat(40);

type Params = Record<string, unknown>;

/** A GitHub diff entry (`files[]` of a compare, `pulls/{n}/files`). */
const entry = (filename: string, more: Params = {}) => ({
  sha: 'f'.repeat(40),
  filename,
  status: 'modified',
  additions: 1,
  deletions: 0,
  changes: 1,
  blob_url: '',
  raw_url: '',
  contents_url: '',
  patch: '@@ -1 +1,2 @@\n a\n+b',
  ...more,
});

/** A fake octokit: `compare(params)` answers the compare calls; every call is recorded. */
function fakeOctokit(o: { compare?: (p: Params) => Params; commits?: Record<string, string>; pullFiles?: Params[] }) {
  const calls: { method: string; params: Params }[] = [];
  const record = (method: string, params: Params) => calls.push({ method, params });
  const octokit = {
    paginate: async (method: (p: Params) => Promise<{ data: unknown[] }>, params: Params) => (await method(params)).data,
    rest: {
      repos: {
        getCommit: async (p: Params) => {
          record('getCommit', p);
          const sha = o.commits?.[String(p.ref)];
          if (!sha) throw Object.assign(new Error('Not Found'), { status: 404 });
          return { data: { sha } };
        },
        compareCommitsWithBasehead: async (p: Params) => {
          record('compareCommitsWithBasehead', p);
          return { data: o.compare?.(p) ?? {} };
        },
      },
      pulls: {
        listFiles: async (p: Params) => {
          record('pulls.listFiles', p);
          return { data: o.pullFiles ?? [] };
        },
      },
    },
  };
  // A stand-in for the few REST methods these classes call, not a whole client.
  return { octokit: octokit as unknown as Octokit, calls };
}

const manualChange = (number: number): Change => ({
  repository: 'acme/shop-apps',
  number,
  title: 'main...feature/x',
  author: '',
  url: '',
  action: 'manual',
  baseSha: MERGE_BASE,
  headSha: HEAD,
  baseRef: 'main',
  headRef: 'feature/x',
});

describe('Class: GitHubChangeLookup', () => {
  it('resolves two refs to the merge base and the head commit through the compare API', async () => {
    // Prepare
    const { octokit, calls } = fakeOctokit({
      commits: { main: BASE_TIP, 'feature/x': HEAD },
      compare: () => ({ base_commit: { sha: BASE_TIP }, merge_base_commit: { sha: MERGE_BASE }, commits: [{ sha: HEAD }] }),
    });

    // Act
    const change = await new GitHubChangeLookup(octokit).refs('acme/shop-apps', 'main', 'feature/x');

    // Assess
    expect(change).toMatchObject({ number: 0, baseSha: MERGE_BASE, headSha: HEAD, baseRef: 'main', headRef: 'feature/x' });
    expect(calls.find((c) => c.method === 'compareCommitsWithBasehead')?.params).toMatchObject({
      owner: 'acme',
      repo: 'shop-apps',
      basehead: `${BASE_TIP}...${HEAD}`,
    });
  });

  it('rejects a ref that names no commit with one line naming it', async () => {
    // Prepare
    const { octokit } = fakeOctokit({ commits: { main: BASE_TIP } });

    // Act
    const act = new GitHubChangeLookup(octokit).refs('acme/shop-apps', 'main', 'feature/x');

    // Assess
    await expect(act).rejects.toThrow(new Error('no commit "feature/x" in acme/shop-apps'));
  });

  it('rejects an unsafe ref before calling GitHub', async () => {
    // Prepare
    const { octokit, calls } = fakeOctokit({ commits: { main: BASE_TIP } });

    // Act
    const act = new GitHubChangeLookup(octokit).refs('acme/shop-apps', 'main', '../../x');

    // Assess
    await expect(act).rejects.toThrow(InvalidInputError);
    expect(calls).toEqual([]);
  });
});

describe('Class: GitHubChangeSource', () => {
  it('lists the files of a change without a pull request from the compare, mapped like pull request files', async () => {
    // Prepare
    const { octokit, calls } = fakeOctokit({
      compare: () => ({
        merge_base_commit: { sha: MERGE_BASE },
        files: [
          entry('Sources/App.swift'),
          entry('Sources/Payments/Client.swift', { status: 'renamed', previous_filename: 'Sources/Client.swift' }),
          entry('Resources/logo.png', { additions: 0, changes: 0, patch: undefined }),
        ],
      }),
    });

    // Act
    const files = await new GitHubChangeSource(octokit).listChangedFiles(manualChange(0));

    // Assess
    expect(files).toEqual([
      { path: 'Sources/App.swift', status: 'modified', additions: 1, deletions: 0, patch: '@@ -1 +1,2 @@\n a\n+b', binary: false },
      {
        path: 'Sources/Payments/Client.swift',
        status: 'renamed',
        additions: 1,
        deletions: 0,
        patch: '@@ -1 +1,2 @@\n a\n+b',
        binary: false,
        previousPath: 'Sources/Client.swift',
      },
      { path: 'Resources/logo.png', status: 'modified', additions: 0, deletions: 0, patch: '', binary: true },
    ]);
    expect(calls).toEqual([
      {
        method: 'compareCommitsWithBasehead',
        params: { owner: 'acme', repo: 'shop-apps', basehead: `${MERGE_BASE}...${HEAD}`, per_page: 100, page: 1 },
      },
    ]);
  });

  it('reads the next compare page while a page is full, until one brings no new files', async () => {
    // Prepare: 250 files over pages of 100, then an empty page 4 would follow (never asked for).
    const all = Array.from({ length: 250 }, (_, i) => entry(`src/file-${i}.ts`));
    const { octokit, calls } = fakeOctokit({
      compare: (p) => {
        const page = Number(p.page);
        return { merge_base_commit: { sha: MERGE_BASE }, files: all.slice((page - 1) * 100, page * 100) };
      },
    });

    // Act
    const files = await new GitHubChangeSource(octokit).listChangedFiles(manualChange(0));

    // Assess
    expect(files.map((f) => f.path)).toEqual(all.map((f) => f.filename));
    expect(calls.map((c) => c.params.page)).toEqual([1, 2, 3]);
  });

  it('stops when the next page repeats the files or has none (files on page 1 only, as GitHub documents)', async () => {
    // Prepare
    const first = Array.from({ length: 300 }, (_, i) => entry(`src/file-${i}.ts`));
    const { octokit, calls } = fakeOctokit({
      compare: (p) => ({ merge_base_commit: { sha: MERGE_BASE }, files: Number(p.page) === 1 ? first : [] }),
    });

    // Act
    const files = await new GitHubChangeSource(octokit).listChangedFiles(manualChange(0));

    // Assess
    expect(files).toHaveLength(300);
    expect(calls.map((c) => c.params.page)).toEqual([1, 2]);
  });

  it('lists the files of a pull request from pulls/{n}/files', async () => {
    // Prepare
    const { octokit, calls } = fakeOctokit({ pullFiles: [entry('README.md', { status: 'added' })] });

    // Act
    const files = await new GitHubChangeSource(octokit).listChangedFiles(manualChange(42));

    // Assess
    expect(files.map((f) => [f.path, f.status])).toEqual([['README.md', 'added']]);
    expect(calls).toEqual([{ method: 'pulls.listFiles', params: { owner: 'acme', repo: 'shop-apps', pull_number: 42, per_page: 100 } }]);
  });
});
