import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { GitChangeSource, git as runGit } from '../../../lambdas/adapters/changes.js';

// Every git process BatchedGitChangeSource starts, counted (it runs as before).
vi.mock('../../../lambdas/adapters/changes.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../lambdas/adapters/changes.js')>();
  return { ...original, git: vi.fn(original.git) };
});

import type { Change } from '../../../lambdas/core/contracts.js';
import { freshRepo } from '../../../lib/local/example-repo.js';
import { BatchedGitChangeSource, GitBatchReader } from '../../../lib/local/git-batch.js';

const dir = join(mkdtempSync(join(tmpdir(), 'agentflow-git-batch-')), 'repo');
const { git } = freshRepo(dir, '2026-01-05T10:00:00Z');
git('init', '-q', '-b', 'main');
mkdirSync(join(dir, 'src', 'deep'), { recursive: true });
const big = Array.from({ length: 20_000 }, (_, i) => `line ${i} — ünïcödé ✓ ${'x'.repeat(i % 40)}`).join('\n');
const files: Record<string, string> = {
  'README.md': '# Shop\n',
  'with space.swift': 'let a = 1\n',
  'src/deep/Big.kt': big,
  'src/empty.txt': '',
  'src/no-newline.txt': 'last line without newline',
  'src/crlf.txt': 'a\r\nb\r\n',
};
for (const [path, text] of Object.entries(files)) writeFileSync(join(dir, path), text);
git('add', '-A');
git('commit', '-q', '-m', 'files');
const head = git('rev-parse', 'HEAD');
const change = (headSha: string): Change => ({
  repository: 'acme/shop',
  number: 1,
  title: 't',
  author: 'a',
  url: '',
  action: 'opened',
  baseSha: headSha,
  headSha,
  baseRef: 'main',
  headRef: 'main',
});

const reader = new GitBatchReader(dir);
const plain = new GitChangeSource(dir);
afterAll(() => reader.close());

describe('GitBatchReader', () => {
  it('reads what GitChangeSource.readHeadFile reads, for files, missing paths, folders and odd refs', async () => {
    const paths = [...Object.keys(files), 'missing.txt', 'src', 'src/deep', './README.md', 'src/deep/../empty.txt', ''];
    const refs = [head, 'main', 'no-such-branch', '--output=/tmp/x', 'HEAD~5'];
    for (const ref of refs) {
      const batched = await Promise.all(paths.map((p) => reader.readHeadFile(change(ref), p)));
      const spawned = await Promise.all(paths.map((p) => plain.readHeadFile(change(ref), p)));
      expect(batched, ref).toEqual(spawned);
    }
    expect(await reader.readHeadFile(change(head), 'src/deep/Big.kt')).toBe(big);
    expect(await reader.readHeadFile(change(head), 'missing.txt')).toBeUndefined();
  });

  it('keeps answers in order when many reads are in flight, and starts again after close', async () => {
    const order = Array.from({ length: 60 }, (_, i) => Object.keys(files)[i % Object.keys(files).length] as string);
    const got = await Promise.all(order.map((p) => reader.readHeadFile(change(head), p)));
    expect(got).toEqual(order.map((p) => files[p]));
    reader.close();
    expect(await reader.readHeadFile(change(head), 'README.md')).toBe('# Shop\n');
  });

  it('reads a path with a line break the old way', async () => {
    expect(await reader.readHeadFile(change(head), 'a\nb')).toBe(await plain.readHeadFile(change(head), 'a\nb'));
  });

  it('lists the changed files as GitChangeSource does, and fails with its errors', async () => {
    // A branch off the first commit: a rename, an edit, a new binary file, a deletion.
    git('checkout', '-q', '-b', 'feature');
    git('mv', 'with space.swift', 'renamed space.swift');
    writeFileSync(join(dir, 'README.md'), '# Shop\n\nMore.\n');
    writeFileSync(join(dir, 'logo.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3, 0, 255]));
    git('rm', '-q', 'src/empty.txt');
    git('add', '-A');
    git('commit', '-q', '-m', 'feature');
    const feature = git('rev-parse', 'HEAD');
    // main moves on: the diff is from the merge base, not from main's head.
    git('checkout', '-q', 'main');
    writeFileSync(join(dir, 'src', 'no-newline.txt'), 'changed on main');
    git('commit', '-q', '-am', 'main moves');
    const main = git('rev-parse', 'HEAD');
    // A commit with no history in common.
    git('checkout', '-q', '--orphan', 'alone');
    git('rm', '-rq', '--cached', '.');
    writeFileSync(join(dir, 'alone.txt'), 'alone');
    git('add', 'alone.txt');
    git('commit', '-q', '-m', 'alone');
    const alone = git('rev-parse', 'HEAD');
    git('checkout', '-q', '-f', 'main');

    const batched = new BatchedGitChangeSource(dir, reader);
    const pair = (baseSha: string, headSha: string): Change => ({ ...change(headSha), baseSha });
    for (const [b, h] of [
      [main, feature],
      ['main', 'feature'],
      [head, main],
      [feature, feature],
    ] as const) {
      expect(await batched.listChangedFiles(pair(b, h)), `${b}...${h}`).toEqual(await plain.listChangedFiles(pair(b, h)));
    }
    for (const [b, h] of [
      [main, alone],
      ['no-such-branch', feature],
      [main, '0'.repeat(40)],
      ['--upload-pack=x', feature],
    ] as const) {
      const want = await plain.listChangedFiles(pair(b, h)).then(
        () => 'resolved',
        (e: Error) => `${e.name}: ${e.message}`,
      );
      const got = await batched.listChangedFiles(pair(b, h)).then(
        () => 'resolved',
        (e: Error) => `${e.name}: ${e.message}`,
      );
      expect(want).not.toBe('resolved');
      expect(got, `${b}...${h}`).toBe(want);
    }
  });

  it('lists the diff of a commit pair once: later listings are copies, with no git process, and two at once share it', async () => {
    const base = git('rev-parse', 'HEAD');
    writeFileSync(join(dir, 'README.md'), '# Shop\n\nCached.\n');
    git('commit', '-q', '-am', 'readme');
    const tip = git('rev-parse', 'HEAD');
    git('reset', '-q', '--hard', base);
    const batched = new BatchedGitChangeSource(dir, reader);
    const pair: Change = { ...change(tip), baseSha: base };
    vi.mocked(runGit).mockClear();
    // Act
    const first = await batched.listChangedFiles(pair);
    const diffs = vi.mocked(runGit).mock.calls.length;
    (first[0] as { patch: string }).patch = 'changed by the caller';
    const second = await batched.listChangedFiles(pair);
    (second[0] as { patch: string }).patch = 'changed again';
    const third = await batched.listChangedFiles(pair);
    const calls = vi.mocked(runGit).mock.calls.length;
    // Two at once, on a source that has not listed the pair yet, share one listing.
    const fresh = new BatchedGitChangeSource(dir, reader);
    const [, fourth] = await Promise.all([fresh.listChangedFiles(pair), fresh.listChangedFiles(pair)]);
    // Assess
    expect(diffs).toBe(1);
    expect(calls).toBe(1);
    expect(vi.mocked(runGit).mock.calls.length).toBe(2);
    const plain = await new GitChangeSource(dir).listChangedFiles(pair);
    expect(third).toEqual(plain);
    expect(fourth).toEqual(plain);
    expect(third?.map((f) => f.path)).toEqual(['README.md']);
  });
});
