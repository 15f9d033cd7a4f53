import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsArtifactStore } from '../../../lambdas/adapters/artifacts.js';
import { GitChangeSource } from '../../../lambdas/adapters/changes.js';
import type { Change, ChangedFile, ContextArtifact } from '../../../lambdas/core/contracts.js';
import { DEFAULT_CONTEXT, parseHunks } from '../../../lambdas/core/hunks.js';
import type { ChangeSource } from '../../../lambdas/core/ports.js';
import { GUIDANCE_FILES, REPO_CONFIG_PATH } from '../../../lambdas/core/repo-config.js';
import { renderFile } from '../../../lambdas/core/tokens.js';
import { contextKey, loadContext, withContext } from '../../../lambdas/load-context/load-context.js';
import { freshRepo } from '../../../lib/local/example-repo.js';
import { exampleChange, tempDir } from '../../helpers.js';

/** A 300-line Swift file whose line 40 holds a password and whose line 60 the change edits. */
const SOURCE = Array.from({ length: 300 }, (_, i) =>
  i === 39 ? '    let password = "q8Wz3LmP0vXs!"\n' : `    let v${i + 1} = ${i + 1}\n`,
).join('');

/** A repository with `Config.swift` changed at line 60; the change and its local change source. */
function repository(): { source: GitChangeSource; change: Change; dir: string } {
  const dir = join(tempDir(), 'repo');
  const { git } = freshRepo(dir, '2026-01-05T10:00:00Z');
  git('init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'Config.swift'), SOURCE);
  git('add', '-A');
  git('commit', '-q', '-m', 'base');
  const baseSha = git('rev-parse', 'HEAD');
  writeFileSync(join(dir, 'Config.swift'), SOURCE.replace('    let v60 = 60\n', '    let v60 = 61\n'));
  git('commit', '-q', '-am', 'head');
  return { source: new GitChangeSource(dir), change: exampleChange({ number: 0, baseSha, headSha: git('rev-parse', 'HEAD') }), dir };
}

/** Runs LoadContext on `changes` and reads back the stored context artifact. */
async function run(changes: ChangeSource, change: Change, context?: unknown) {
  const root = tempDir();
  const artifacts = new FsArtifactStore(root);
  const out = await loadContext({ runId: 'r1', workflow: 'pr-review', change, ...(context ? { context } : {}) }, { changes, artifacts });
  const artifact = (await artifacts.getJson(contextKey('r1'))) as ContextArtifact;
  return { out, artifact, text: readFileSync(artifacts.where(contextKey('r1')), 'utf8') };
}

describe('Function: loadContext', () => {
  it('redacts a secret in a context line (not in the diff) before it reaches the context artifact', async () => {
    // Prepare: the password on line 40 is 20 lines above the change, in the default context.
    const { source, change } = repository();

    // Act
    const { out, artifact, text } = await run(source, change);

    // Assess
    const file = artifact.files[0] as ChangedFile;
    expect(file.patch).not.toContain('password');
    expect(file.shown).toContain('     let password = "[REDACTED:password]"');
    expect(text).not.toContain('q8Wz3LmP0vXs');
    expect(out.stats.redactions).toBe(1);
  });

  it('keeps the real patch in patch and its counts, and the widened patch in shown', async () => {
    // Prepare
    const { source, change } = repository();
    const [listed] = await source.listChangedFiles(change);

    // Act
    const { artifact } = await run(source, change);

    // Assess
    const file = artifact.files[0] as ChangedFile;
    expect(file.patch).toBe(listed?.patch);
    expect(file).toMatchObject({ additions: 1, deletions: 1 });
    expect(parseHunks(file.shown ?? '')?.map((h) => [h.newStart, h.newCount])).toEqual([[40, 41]]);
    expect(renderFile(file)).toContain('\n(60) -     let v60 = 60\n  60 +     let v60 = 61\n');
  });

  it('shows the plain patch with context: none, and reads no head file for it', async () => {
    // Prepare
    const { source, change } = repository();
    const read: string[] = [];
    const counting: ChangeSource = {
      listChangedFiles: (c) => source.listChangedFiles(c),
      readHeadFile: (c, p) => {
        read.push(p);
        return source.readHeadFile(c, p);
      },
    };

    // Act
    const { artifact, out } = await run(counting, change, { lines: 0, wholeFileLines: 0, enclosing: false });

    // Assess
    expect(artifact.files[0]?.shown).toBeUndefined();
    // The repository's config and guidance files are read (at the base commit), no source file.
    expect(read.filter((p) => p !== REPO_CONFIG_PATH && !(GUIDANCE_FILES as readonly string[]).includes(p))).toEqual(['.gitattributes']);
    expect(out.stats.redactions).toBe(0);
  });

  it('shows the plain patch of a file whose head cannot be read', async () => {
    // Prepare
    const { source, change } = repository();
    const failing: ChangeSource = {
      listChangedFiles: (c) => source.listChangedFiles(c),
      readHeadFile: async (_c, p) => {
        if (p === 'Config.swift') throw new Error('GitHub is down');
        return undefined;
      },
    };

    // Act
    const { artifact } = await run(failing, change);

    // Assess
    expect(artifact.files[0]?.shown).toBeUndefined();
  });
});

describe('Function: withContext', () => {
  // A 150-line file of long lines (shown whole by default) with one line changed.
  const long = (i: number) => `let value${i} = "${'x'.repeat(90)}"`;
  const head = `${Array.from({ length: 150 }, (_, i) => (i === 74 ? 'let changed = 1' : long(i + 1))).join('\n')}\n`;
  const file: ChangedFile = {
    path: 'Big.swift',
    status: 'modified',
    additions: 1,
    deletions: 1,
    binary: false,
    patch: [
      '@@ -72,7 +72,7 @@',
      ` ${long(72)}`,
      ` ${long(73)}`,
      ` ${long(74)}`,
      `-${long(75)}`,
      '+let changed = 1',
      ` ${long(76)}`,
      ` ${long(77)}`,
      ` ${long(78)}`,
    ].join('\n'),
  };

  it('falls back to ±lines when the whole file is over the cap', () => {
    // Act
    const widened = withContext(file, head, DEFAULT_CONTEXT, 60_000);

    // Assess: the whole file (~4,500 tokens) is over max(3 × ~250, ~250 + 1,500); lines 55–95 are not.
    expect(parseHunks(widened?.shown ?? '')?.map((h) => [h.newStart, h.newCount])).toEqual([[55, 41]]);
  });

  it('refuses context that would make a file too large for one chunk when its plain patch fits', () => {
    // Act / Assess
    expect(withContext(file, head, DEFAULT_CONTEXT, 400)).toBeUndefined();
  });
});
