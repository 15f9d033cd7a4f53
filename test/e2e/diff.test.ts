import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { GitChangeLookup, GitChangeSource } from '../../lambdas/adapters/changes.js';
import type { Change } from '../../lambdas/core/contracts.js';
import { InvalidInputError } from '../../lambdas/core/errors.js';
import { tempDir } from '../helpers.js';

/** A git repository in a fresh temporary folder, with a `git` that commits as `t <t@t>`. */
function newRepo() {
  const dir = join(tempDir('agentflow-diff-'), 'repo');
  mkdirSync(dir, { recursive: true });
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'commit.gpgsign=false', ...args], {
      encoding: 'utf8',
    }).trim();
  const write = (path: string, content: string | Buffer) => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  };
  /** Writes the files, stages them and commits; returns the commit's SHA. */
  const commit = (message: string, files: Record<string, string | Buffer>) => {
    for (const [path, content] of Object.entries(files)) write(path, content);
    git('add', '--', ...Object.keys(files));
    git('commit', '-q', '-m', message);
    return git('rev-parse', 'HEAD');
  };
  git('init', '-q', '-b', 'main');
  return { dir, git, write, commit };
}

const change = (baseSha: string, headSha: string): Change => ({
  repository: 'local/repository',
  number: 1,
  title: '',
  author: '',
  url: '',
  action: 'opened',
  baseSha,
  headSha,
  baseRef: baseSha,
  headRef: headSha,
});

const lines = (n: number, tag = '') => `${Array.from({ length: n }, (_, i) => `line ${i + 1}${tag}`).join('\n')}\n`;

describe('Class: GitChangeSource', () => {
  it('reads a file that became a symlink (one record, two patch sections) and a submodule bump whatever diff.submodule says', async () => {
    const repo = newRepo();
    const base = repo.commit('base', { 'a.txt': 'hello\n', 'b.swift': 'x\n' });
    repo.git('config', 'diff.submodule', 'log');
    repo.git('rm', '-q', 'a.txt');
    execFileSync('ln', ['-s', 'b.swift', join(repo.dir, 'a.txt')]);
    repo.git('add', 'a.txt');
    repo.git('update-index', '--add', '--cacheinfo', `160000,${base},vendor/lib`);
    const head = repo.commit('type change', { 'b.swift': 'x\ny\n' });
    const files = await new GitChangeSource(repo.dir).listChangedFiles(change(base, head));
    expect(files.map((f) => [f.path, f.status, f.additions, f.deletions])).toEqual([
      ['a.txt', 'changed', 1, 1],
      ['b.swift', 'modified', 1, 0],
      ['vendor/lib', 'added', 1, 0],
    ]);
    expect(files[2]?.patch).toMatch(/^\+Subproject commit [0-9a-f]{40}$/m);
  });

  describe('a branch 30 commits behind its base', () => {
    let repo: ReturnType<typeof newRepo>;
    beforeAll(() => {
      repo = newRepo();
      for (let i = 1; i <= 30; i++) repo.commit(`main ${i}`, { [`docs/main-${i}.md`]: `main ${i}\n`, 'Sources/App.swift': lines(20) });
      repo.git('tag', 'v1');
      repo.git('checkout', '-q', '-b', 'feature/checkout');
      const app = lines(20)
        .replace('line 3\n', 'line 3 changed\n')
        .replace('line 10\n', 'line 10 changed\n')
        .replace('line 17\n', 'line 17 changed\n');
      repo.commit('feature: three lines', { 'Sources/App.swift': app });
      repo.git('checkout', '-q', 'main');
      for (let i = 31; i <= 60; i++) repo.commit(`main ${i}`, { [`docs/main-${i}.md`]: `main ${i}\n`, 'README.md': `main ${i}\n` });
    });

    it('lists only the branch’s own file and its three changed lines, from the merge base (as GitHub)', async () => {
      // Prepare
      const source = new GitChangeSource(repo.dir);
      // The two tips differ in 32 files: a tip-to-tip diff would review main's 30 commits as the branch's.
      expect(repo.git('diff', '--name-only', 'main', 'feature/checkout').split('\n')).toHaveLength(32);

      // Act
      const files = await source.listChangedFiles(change('main', 'feature/checkout'));

      // Assess
      expect(files).toEqual([
        {
          path: 'Sources/App.swift',
          status: 'modified',
          additions: 3,
          deletions: 3,
          binary: false,
          patch: expect.stringMatching(/^@@ -1,20 \+1,20 @@\n/),
        },
      ]);
      const patch = files[0]?.patch ?? '';
      expect(patch.split('\n').filter((l) => l.startsWith('+'))).toEqual(['+line 3 changed', '+line 10 changed', '+line 17 changed']);
      expect(patch.split('\n').filter((l) => l.startsWith('-'))).toEqual(['-line 3', '-line 10', '-line 17']);
    });

    it('takes branch names, tags and SHAs alike', async () => {
      // Prepare
      const source = new GitChangeSource(repo.dir);
      const mainSha = repo.git('rev-parse', 'main');
      const featureSha = repo.git('rev-parse', 'feature/checkout');

      // Act
      const bySha = await source.listChangedFiles(change(mainSha, featureSha));
      const byTag = await source.listChangedFiles(change('v1', 'feature/checkout'));

      // Assess
      expect(bySha.map((f) => [f.path, f.additions, f.deletions])).toEqual([['Sources/App.swift', 3, 3]]);
      expect(byTag.map((f) => [f.path, f.additions, f.deletions])).toEqual([['Sources/App.swift', 3, 3]]);
    });

    it('resolves refs to the tips with GitChangeLookup, whose change diffs from the merge base', async () => {
      // Prepare
      const lookup = new GitChangeLookup(repo.dir);

      // Act
      const c = await lookup.refs('local/repository', 'main', 'feature/checkout');

      // Assess
      expect(c).toMatchObject({
        number: 0,
        baseRef: 'main',
        headRef: 'feature/checkout',
        baseSha: repo.git('rev-parse', 'main'),
        headSha: repo.git('rev-parse', 'feature/checkout'),
      });
      expect((await new GitChangeSource(repo.dir).listChangedFiles(c)).map((f) => f.path)).toEqual(['Sources/App.swift']);
    });
  });

  describe('renames, binaries, odd paths, deletions, LFS pointers and submodules', () => {
    const LFS_POINTER = [
      'version https://git-lfs.github.com/spec/v1',
      'oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393',
      'size 1048576',
      '',
    ].join('\n');
    let repo: ReturnType<typeof newRepo>;
    let base: string;
    let head: string;
    let vendored: string;
    beforeAll(() => {
      repo = newRepo();
      vendored = repo.commit('vendored library', { 'vendor.txt': 'x\n' });
      base = repo.commit('base', {
        'Sources/Checkout/PaymentClient.swift': lines(30),
        'Sources/Old Name.swift': lines(10),
        'Localizable/日本語.strings': '"hello" = "こんにちは";\n',
        'My "quoted" file.swift': 'let a = 1\n',
        'tab\there.txt': 'tab\n',
        'Resources/logo.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]),
        'obsolete.kt': 'fun gone() = Unit\n',
      });
      repo.git('checkout', '-q', '-b', 'feature/assets');
      mkdirSync(join(repo.dir, 'Sources/Payments'));
      repo.git('mv', 'Sources/Checkout/PaymentClient.swift', 'Sources/Payments/PaymentClient.swift');
      repo.git('rm', '-q', 'obsolete.kt');
      repo.git('update-index', '--add', '--cacheinfo', `160000,${vendored},vendor/lib`);
      head = repo.commit('head', {
        'Sources/Payments/PaymentClient.swift': lines(30).replace('line 30\n', 'line 30 edited\n'),
        'Localizable/日本語.strings': '"hello" = "こんにちは";\n"bye" = "さようなら";\n',
        'My "quoted" file.swift': 'let a = 2\n',
        'tab\there.txt': 'tab\ttab\n',
        'Resources/logo.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 9, 9, 9, 9]),
        'Resources/hero.psd': LFS_POINTER,
        'Sources/New Name with spaces.swift': lines(3),
      });
    });

    it('reports each path, status, previous path, counts and binary flag exactly', async () => {
      // Prepare
      const source = new GitChangeSource(repo.dir);

      // Act
      const files = await source.listChangedFiles(change(base, head));

      // Assess
      const byPath = new Map(files.map((f) => [f.path, f]));
      expect(files.map((f) => [f.path, f.status, f.previousPath ?? null, f.additions, f.deletions, f.binary]).sort()).toEqual(
        [
          ['Localizable/日本語.strings', 'modified', null, 1, 0, false],
          ['My "quoted" file.swift', 'modified', null, 1, 1, false],
          ['Resources/hero.psd', 'added', null, 3, 0, false],
          ['Resources/logo.png', 'modified', null, 0, 0, true],
          ['Sources/New Name with spaces.swift', 'added', null, 3, 0, false],
          ['Sources/Payments/PaymentClient.swift', 'renamed', 'Sources/Checkout/PaymentClient.swift', 1, 1, false],
          ['obsolete.kt', 'removed', null, 0, 1, false],
          ['tab\there.txt', 'modified', null, 1, 1, false],
          ['vendor/lib', 'added', null, 1, 0, false],
        ].sort(),
      );
      expect(byPath.get('Resources/logo.png')?.patch).toBe('');
      expect(byPath.get('Sources/Payments/PaymentClient.swift')?.patch).toBe(
        ['@@ -27,4 +27,4 @@ line 26', ' line 27', ' line 28', ' line 29', '-line 30', '+line 30 edited'].join('\n'),
      );
      expect(byPath.get('Localizable/日本語.strings')?.patch).toBe('@@ -1 +1,2 @@\n "hello" = "こんにちは";\n+"bye" = "さようなら";');
      expect(byPath.get('My "quoted" file.swift')?.patch).toBe('@@ -1 +1 @@\n-let a = 1\n+let a = 2');
      expect(byPath.get('obsolete.kt')?.patch).toBe('@@ -1 +0,0 @@\n-fun gone() = Unit');
      // An LFS pointer is a small text file: its patch is kept for the review plan to recognise.
      expect(byPath.get('Resources/hero.psd')?.patch).toBe(
        `@@ -0,0 +1,3 @@\n${LFS_POINTER.trimEnd()
          .split('\n')
          .map((l) => `+${l}`)
          .join('\n')}`,
      );
      expect(byPath.get('vendor/lib')?.patch).toBe(`@@ -0,0 +1 @@\n+Subproject commit ${vendored}`);
      // An unchanged file is not listed, odd name or not.
      expect(byPath.has('Sources/Old Name.swift')).toBe(false);
    });

    it('reads a file at the head commit, and nothing for a path the head does not have', async () => {
      // Prepare
      const source = new GitChangeSource(repo.dir);

      // Act
      const text = await source.readHeadFile(change(base, head), 'Localizable/日本語.strings');
      const missing = await source.readHeadFile(change(base, head), 'obsolete.kt');

      // Assess
      expect(text).toBe('"hello" = "こんにちは";\n"bye" = "さようなら";\n');
      expect(missing).toBeUndefined();
    });
  });

  describe('errors', () => {
    let repo: ReturnType<typeof newRepo>;
    beforeAll(() => {
      repo = newRepo();
      repo.commit('one', { 'a.txt': 'a\n' });
      repo.git('checkout', '-q', '--orphan', 'unrelated');
      repo.commit('other history', { 'b.txt': 'b\n' });
    });

    it('rejects a folder that is not a git repository in one line', async () => {
      // Prepare
      const dir = tempDir('agentflow-not-a-repo-');

      // Act
      const act = new GitChangeSource(dir).listChangedFiles(change('main', 'main'));

      // Assess
      await expect(act).rejects.toThrow(new Error(`${dir} is not a git repository`));
    });

    it('rejects a ref that names no commit in one line', async () => {
      await expect(new GitChangeSource(repo.dir).listChangedFiles(change('main', 'feature/x'))).rejects.toThrow(
        new Error(`no commit "feature/x" in ${repo.dir}`),
      );
      await expect(new GitChangeLookup(repo.dir).refs('local/repository', 'nope', 'main')).rejects.toThrow(
        new Error(`no commit "nope" in ${repo.dir}`),
      );
    });

    it('rejects an option-like or malformed ref before git runs', async () => {
      const dir = tempDir('agentflow-not-a-repo-');
      await expect(new GitChangeSource(dir).listChangedFiles(change('main', '--output=/tmp/x'))).rejects.toThrow(InvalidInputError);
      await expect(new GitChangeLookup(dir).refs('local/repository', 'main', 'main..HEAD')).rejects.toThrow(
        'invalid git ref "main..HEAD": contains ".."',
      );
    });

    it('rejects refs without common history in one line', async () => {
      await expect(new GitChangeSource(repo.dir).listChangedFiles(change('main', 'unrelated'))).rejects.toThrow(
        new Error(`main and unrelated have no common history in ${repo.dir}`),
      );
    });
  });
});
