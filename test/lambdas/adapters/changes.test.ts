import { Octokit } from '@octokit/rest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GitHubChangeLookup, GitHubChangeSource } from '../../../lambdas/adapters/changes.js';
import type { Change } from '../../../lambdas/core/contracts.js';
import { InvalidInputError } from '../../../lambdas/core/errors.js';
import { GitHubStandIn, type SeededFile } from '../../standins/github.js';

/*
 * The adapters call a real Octokit against the GitHub stand-in on 127.0.0.1, which checks every
 * request against GitHub's OpenAPI description (each test ends with no violation).
 */

const REPOSITORY = 'acme/shop-apps';
const BASE_TIP = 'b'.repeat(40);
const HEAD = 'h'.repeat(40);
const MERGE_BASE = 'm'.repeat(40);
const PATCH = '@@ -1 +1,2 @@\n a\n+b';

/** A changed file as the stand-in lists it (`files[]` of a compare, `pulls/{n}/files`). */
const entry = (filename: string, more: Partial<SeededFile> = {}): SeededFile => ({ filename, status: 'modified', patch: PATCH, ...more });

let github: GitHubStandIn;
let octokit: Octokit;

beforeEach(async () => {
  github = new GitHubStandIn();
  // Octokit logs each 4xx on the console; the tests assert them instead.
  const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  octokit = new Octokit({ baseUrl: await github.start(), log: quiet });
});

afterEach(async () => {
  expect(github.violations).toEqual([]);
  await github.stop();
});

/** The requests of one operation the stand-in received, as `{ params, query }`. */
const requestsOf = (operationId: string) =>
  github.requests.filter((r) => r.operationId === operationId).map((r) => ({ params: r.params, query: r.query }));

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
  it('reads a pull request as a change with its base and head commits', async () => {
    // Prepare
    github.addPullRequest({
      repo: REPOSITORY,
      number: 7,
      headSha: HEAD,
      baseSha: BASE_TIP,
      files: [],
      title: 'Pay',
      author: 'alice',
      headRef: 'feature/pay',
    });

    // Act
    const change = await new GitHubChangeLookup(octokit).pullRequest(REPOSITORY, 7);

    // Assess
    expect(change).toEqual({
      forge: 'github',
      repository: REPOSITORY,
      number: 7,
      title: 'Pay',
      author: 'alice',
      url: 'https://github.com/acme/shop-apps/pull/7',
      action: 'manual',
      baseSha: BASE_TIP,
      headSha: HEAD,
      baseRef: 'main',
      headRef: 'feature/pay',
      // The stand-in's head and base are the same repository: not a fork.
      fork: false,
    });
  });

  it('resolves two refs to the merge base and the head commit through the compare API', async () => {
    // Prepare
    github.addRef(REPOSITORY, 'main', BASE_TIP);
    github.addRef(REPOSITORY, 'feature/x', HEAD);
    github.addComparison({ repo: REPOSITORY, base: BASE_TIP, head: HEAD, mergeBaseSha: MERGE_BASE, files: [] });

    // Act
    const change = await new GitHubChangeLookup(octokit).refs('acme/shop-apps', 'main', 'feature/x');

    // Assess
    expect(change).toMatchObject({ number: 0, baseSha: MERGE_BASE, headSha: HEAD, baseRef: 'main', headRef: 'feature/x' });
    expect(requestsOf('repos/compare-commits-with-basehead')).toEqual([
      { params: { owner: 'acme', repo: 'shop-apps', basehead: `${BASE_TIP}...${HEAD}` }, query: { per_page: 1 } },
    ]);
  });

  it('rejects a ref that names no commit with one line naming it', async () => {
    // Prepare
    github.addRef(REPOSITORY, 'main', BASE_TIP);

    // Act
    const act = new GitHubChangeLookup(octokit).refs('acme/shop-apps', 'main', 'feature/x');

    // Assess
    await expect(act).rejects.toThrow(new Error('no commit "feature/x" in acme/shop-apps'));
  });

  it('rejects an unsafe ref before calling GitHub', async () => {
    // Prepare
    github.addRef(REPOSITORY, 'main', BASE_TIP);

    // Act
    const act = new GitHubChangeLookup(octokit).refs('acme/shop-apps', 'main', '../../x');

    // Assess
    await expect(act).rejects.toThrow(InvalidInputError);
    expect(github.requests).toEqual([]);
  });
});

describe('Class: GitHubChangeSource', () => {
  it('lists the files of a change without a pull request from the compare, mapped like pull request files', async () => {
    // Prepare
    github.addComparison({
      repo: REPOSITORY,
      base: MERGE_BASE,
      head: HEAD,
      mergeBaseSha: MERGE_BASE,
      files: [
        entry('Sources/App.swift'),
        entry('Sources/Payments/Client.swift', { status: 'renamed', previous_filename: 'Sources/Client.swift' }),
        { filename: 'Resources/logo.png', status: 'modified' },
      ],
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
    expect(requestsOf('repos/compare-commits-with-basehead')).toEqual([
      { params: { owner: 'acme', repo: 'shop-apps', basehead: `${MERGE_BASE}...${HEAD}` }, query: { per_page: 100, page: 1 } },
    ]);
  });

  it('reads the next compare page while a page is full, until one brings no new files', async () => {
    // Prepare: a compare that pages its files (GitHub lists them on page 1 only; the adapter reads on
    // while pages are full in case that changes): 250 files over pages of 100.
    const all = Array.from({ length: 250 }, (_, i) => ({
      filename: `src/file-${i}.ts`,
      status: 'modified',
      additions: 1,
      deletions: 0,
      changes: 1,
      sha: 'f'.repeat(40),
      blob_url: '',
      raw_url: '',
      contents_url: '',
    }));
    github.respond('repos/compare-commits-with-basehead', (req) => {
      const page = Number(req.query.page);
      return { status: 200, body: { merge_base_commit: { sha: MERGE_BASE }, files: all.slice((page - 1) * 100, page * 100) } };
    });

    // Act
    const files = await new GitHubChangeSource(octokit).listChangedFiles(manualChange(0));

    // Assess
    expect(files.map((f) => f.path)).toEqual(all.map((f) => f.filename));
    expect(requestsOf('repos/compare-commits-with-basehead').map((r) => r.query.page)).toEqual([1, 2, 3]);
  });

  it('stops when the next page repeats the files or has none (files on page 1 only, as GitHub documents)', async () => {
    // Prepare
    const first = Array.from({ length: 300 }, (_, i) => entry(`src/file-${i}.ts`));
    github.addComparison({ repo: REPOSITORY, base: MERGE_BASE, head: HEAD, mergeBaseSha: MERGE_BASE, files: first });

    // Act
    const files = await new GitHubChangeSource(octokit).listChangedFiles(manualChange(0));

    // Assess
    expect(files).toHaveLength(300);
    expect(requestsOf('repos/compare-commits-with-basehead').map((r) => r.query.page)).toEqual([1, 2]);
  });

  it('lists the files of a pull request from pulls/{n}/files', async () => {
    // Prepare
    github.addPullRequest({
      repo: REPOSITORY,
      number: 42,
      headSha: HEAD,
      baseSha: MERGE_BASE,
      files: [entry('README.md', { status: 'added' })],
    });

    // Act
    const files = await new GitHubChangeSource(octokit).listChangedFiles(manualChange(42));

    // Assess
    expect(files.map((f) => [f.path, f.status])).toEqual([['README.md', 'added']]);
    expect(requestsOf('pulls/list-files')).toEqual([
      { params: { owner: 'acme', repo: 'shop-apps', pull_number: 42 }, query: { per_page: 100 } },
    ]);
  });

  it('reads a file at the head commit as raw text', async () => {
    // Prepare
    github.addFile(REPOSITORY, HEAD, 'Sources/Payments/Client.swift', 'struct Client {}\n');

    // Act
    const text = await new GitHubChangeSource(octokit).readHeadFile(manualChange(42), 'Sources/Payments/Client.swift');

    // Assess
    expect(text).toBe('struct Client {}\n');
    expect(requestsOf('repos/get-content')).toEqual([
      { params: { owner: 'acme', repo: 'shop-apps', path: 'Sources/Payments/Client.swift' }, query: { ref: HEAD } },
    ]);
  });

  it('reads a file the head commit does not have as undefined', async () => {
    // Act
    const text = await new GitHubChangeSource(octokit).readHeadFile(manualChange(42), 'Sources/Missing.swift');

    // Assess
    expect(text).toBeUndefined();
  });
});
