import { Gitlab } from '@gitbeaker/rest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GitLabChangeSource, gitLabStatus, unifiedHunks } from '../../../lambdas/adapters/gitlab-changes.js';
import type { Change } from '../../../lambdas/core/contracts.js';
import { GitLabStandIn, type SeededDiff } from '../../standins/gitlab.js';

/*
 * The adapter calls a real gitbeaker client against the GitLab stand-in on 127.0.0.1, which keeps
 * the seeded projects, merge requests and files and records every request that breaks the shapes
 * gitbeaker documents (each test ends with no violation).
 */

const PROJECT = 'acme/mobile/shop';
const TOKEN = 'glpat-test-token';
const BASE = 'b'.repeat(40);
const HEAD = 'h'.repeat(40);

const change: Change = {
  repository: PROJECT,
  number: 7,
  title: 'Checkout',
  author: 'dev',
  url: '',
  action: 'opened',
  baseSha: BASE,
  headSha: HEAD,
  baseRef: 'main',
  headRef: 'feature/checkout',
};

/** A diff entry as GitLab lists it: a modified file unless `more` says otherwise. */
const diff = (path: string, more: Partial<SeededDiff> = {}): SeededDiff => ({
  old_path: path,
  new_path: path,
  a_mode: '100644',
  b_mode: '100644',
  new_file: false,
  renamed_file: false,
  deleted_file: false,
  diff: '@@ -1,2 +1,2 @@\n a\n-b\n+c\n',
  ...more,
});

let gitlab: GitLabStandIn;
let host: string;

beforeEach(async () => {
  gitlab = new GitLabStandIn(TOKEN);
  gitlab.addProject(PROJECT);
  host = await gitlab.start();
});

afterEach(async () => {
  expect(gitlab.violations).toEqual([]);
  await gitlab.stop();
});

const source = (token = TOKEN) => new GitLabChangeSource(new Gitlab({ host, token }));

describe('Class: GitLabChangeSource', () => {
  it('lists an MR’s files with statuses, renames and additions/deletions counted from the hunks', async () => {
    // Prepare
    gitlab.addMergeRequest(PROJECT, 7, [
      diff('src/app.ts'),
      diff('src/new.ts', { new_file: true, a_mode: '0', diff: '@@ -0,0 +1,2 @@\n+x\n+y\n' }),
      diff('src/old.ts', { deleted_file: true, b_mode: '0', diff: '@@ -1 +0,0 @@\n-gone\n' }),
      diff('src/renamed.ts', { old_path: 'src/before.ts', renamed_file: true, diff: '@@ -1 +1 @@\n-p\n+q\n' }),
      diff('src/moved.ts', { old_path: 'src/pure.ts', renamed_file: true, diff: '' }),
    ]);

    // Act
    const files = await source().listChangedFiles(change);

    // Assess
    expect(files).toEqual([
      { path: 'src/app.ts', status: 'modified', additions: 1, deletions: 1, patch: '@@ -1,2 +1,2 @@\n a\n-b\n+c', binary: false },
      { path: 'src/new.ts', status: 'added', additions: 2, deletions: 0, patch: '@@ -0,0 +1,2 @@\n+x\n+y', binary: false },
      { path: 'src/old.ts', status: 'removed', additions: 0, deletions: 1, patch: '@@ -1 +0,0 @@\n-gone', binary: false },
      {
        path: 'src/renamed.ts',
        status: 'renamed',
        previousPath: 'src/before.ts',
        additions: 1,
        deletions: 1,
        patch: '@@ -1 +1 @@\n-p\n+q',
        binary: false,
      },
      { path: 'src/moved.ts', status: 'renamed', previousPath: 'src/pure.ts', additions: 0, deletions: 0, patch: '', binary: false },
    ]);
    expect(gitlab.requests.map((r) => r.params)).toEqual([{ id: PROJECT, iid: '7' }]);
  });

  it('follows pagination across pages', async () => {
    // Prepare
    const many = Array.from({ length: 230 }, (_, i) => diff(`src/f${i}.ts`));
    gitlab.addMergeRequest(PROJECT, 7, many);

    // Act
    const files = await source().listChangedFiles(change);

    // Assess
    expect(files.map((f) => f.path)).toEqual(many.map((d) => d.new_path));
    expect(gitlab.requests.map((r) => [r.query.page ?? '1', r.query.per_page])).toEqual([
      ['1', '100'],
      ['2', '100'],
      ['3', '100'],
    ]);
  });

  it('gives a binary file as binary with no patch', async () => {
    // Prepare
    gitlab.addMergeRequest(PROJECT, 7, [diff('res/logo.png', { diff: 'Binary files a/res/logo.png and b/res/logo.png differ\n' })]);

    // Act
    const files = await source().listChangedFiles(change);

    // Assess
    expect(files).toEqual([{ path: 'res/logo.png', status: 'modified', additions: 0, deletions: 0, patch: '', binary: true }]);
  });

  it('rebuilds a too-large diff from the file versions at base and head', async () => {
    // Prepare
    const before = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`);
    const after = [...before];
    after[4] = 'line five';
    after.splice(15, 1);
    gitlab.addMergeRequest(PROJECT, 7, [diff('src/big.ts', { diff: '', too_large: true, collapsed: true })]);
    gitlab.putFile(PROJECT, BASE, 'src/big.ts', `${before.join('\n')}\n`);
    gitlab.putFile(PROJECT, HEAD, 'src/big.ts', `${after.join('\n')}\n`);

    // Act
    const [file] = await source().listChangedFiles(change);

    // Assess
    expect(file).toEqual({
      path: 'src/big.ts',
      status: 'modified',
      additions: 1,
      deletions: 2,
      binary: false,
      patch: [
        '@@ -2,7 +2,7 @@',
        ' line 2',
        ' line 3',
        ' line 4',
        '-line 5',
        '+line five',
        ' line 6',
        ' line 7',
        ' line 8',
        '@@ -13,7 +13,6 @@',
        ' line 13',
        ' line 14',
        ' line 15',
        '-line 16',
        ' line 17',
        ' line 18',
        ' line 19',
      ].join('\n'),
    });
    expect(gitlab.requests.filter((r) => r.route === 'rawFile').map((r) => r.query.ref)).toEqual([BASE, HEAD]);
  });

  it('rebuilds a new file GitLab listed with an empty diff from the head only', async () => {
    // Prepare
    gitlab.addMergeRequest(PROJECT, 7, [diff('src/generated.ts', { new_file: true, a_mode: '0', diff: '' })]);
    gitlab.putFile(PROJECT, HEAD, 'src/generated.ts', 'export const a = 1;\nexport const b = 2;\n');

    // Act
    const files = await source().listChangedFiles(change);

    // Assess
    expect(files).toEqual([
      {
        path: 'src/generated.ts',
        status: 'added',
        additions: 2,
        deletions: 0,
        patch: '@@ -0,0 +1,2 @@\n+export const a = 1;\n+export const b = 2;',
        binary: false,
      },
    ]);
    expect(gitlab.requests.filter((r) => r.route === 'rawFile').map((r) => r.query.ref)).toEqual([HEAD]);
  });

  it('gives a collapsed file whose versions hold a NUL byte as binary with no patch', async () => {
    // Prepare
    gitlab.addMergeRequest(PROJECT, 7, [diff('assets/font.bin', { diff: '', collapsed: true })]);
    gitlab.putFile(PROJECT, BASE, 'assets/font.bin', 'a\0b');
    gitlab.putFile(PROJECT, HEAD, 'assets/font.bin', 'a\0c');

    // Act
    const files = await source().listChangedFiles(change);

    // Assess
    expect(files).toEqual([{ path: 'assets/font.bin', status: 'modified', additions: 0, deletions: 0, patch: '', binary: true }]);
  });

  it('readHeadFile reads at the head SHA and gives undefined for a missing file', async () => {
    // Prepare
    gitlab.putFile(PROJECT, HEAD, 'coverage/coverage-summary.json', '{"total":{}}');
    gitlab.putFile(PROJECT, BASE, 'only-at-base.txt', 'old');

    // Act
    const found = await source().readHeadFile(change, 'coverage/coverage-summary.json');
    const missing = await source().readHeadFile(change, 'only-at-base.txt');

    // Assess
    expect(found).toBe('{"total":{}}');
    expect(missing).toBeUndefined();
    expect(gitlab.requests.map((r) => r.query.ref)).toEqual([HEAD, HEAD]);
  });

  it('refuses a wrong token (401) and the adapter throws', async () => {
    // Prepare
    gitlab.addMergeRequest(PROJECT, 7, [diff('src/app.ts')]);

    // Act
    const error = await source('glpat-wrong')
      .listChangedFiles(change)
      .catch((e: unknown) => e);

    // Assess
    expect(gitLabStatus(error)).toBe(401);
    expect(gitlab.requests).toEqual([]);
  });

  it('throws 404 for an unknown project', async () => {
    // Act
    const error = await source()
      .listChangedFiles({ ...change, repository: 'acme/unknown' })
      .catch((e: unknown) => e);

    // Assess
    expect(gitLabStatus(error)).toBe(404);
  });
});

describe('Function: unifiedHunks', () => {
  it('gives no hunk for equal texts and one hunk for a new file', () => {
    expect(unifiedHunks('a\nb\n', 'a\nb\n')).toBe('');
    expect(unifiedHunks('', 'x\ny\n')).toBe('@@ -0,0 +1,2 @@\n+x\n+y');
    expect(unifiedHunks('x\n', '')).toBe('@@ -1 +0,0 @@\n-x');
  });
});

describe('Class: GitLabStandIn', () => {
  it('has no violations for the adapter’s requests and records one for an unknown route', async () => {
    // Prepare
    gitlab.addMergeRequest(PROJECT, 7, [diff('src/app.ts')]);
    await source().listChangedFiles(change);
    expect(gitlab.violations).toEqual([]);

    // Act
    const res = await fetch(`${host}/api/v4/projects/acme/mobile/shop/merge_requests/7/diffs`, { headers: { 'PRIVATE-TOKEN': TOKEN } });

    // Assess
    expect(res.status).toBe(404);
    expect(gitlab.violations).toEqual([
      'GET /api/v4/projects/acme/mobile/shop/merge_requests/7/diffs: no such GitLab route in the stand-in',
    ]);
    gitlab.violations.length = 0;
  });
});
