import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GitChangeSource } from '../../../lambdas/adapters/changes.js';
import type { ChangedFile } from '../../../lambdas/core/contracts.js';
import {
  type ContextOptions,
  DEFAULT_CONTEXT,
  enclosingDeclaration,
  numberLines,
  parseHunks,
  widenPatch,
} from '../../../lambdas/core/hunks.js';
import { chunkFiles, renderFile } from '../../../lambdas/core/tokens.js';
import { freshRepo } from '../../../lib/local/example-repo.js';
import { exampleChange, tempDir } from '../../helpers.js';

/** A change in a real git repository: `base` files committed on main, then `edit` run and committed. */
async function change(
  base: Record<string, string>,
  edit: (write: (path: string, text: string) => void, git: (...a: string[]) => string) => void,
) {
  const dir = join(tempDir(), 'repo');
  const { git } = freshRepo(dir, '2026-01-05T10:00:00Z');
  git('init', '-q', '-b', 'main');
  const write = (path: string, text: string) => writeFileSync(join(dir, path), text);
  for (const [path, text] of Object.entries(base)) write(path, text);
  git('add', '-A');
  git('commit', '-q', '-m', 'base');
  const baseSha = git('rev-parse', 'HEAD');
  edit(write, git);
  git('add', '-A');
  git('commit', '-q', '-m', 'head');
  const source = new GitChangeSource(dir);
  const c = exampleChange({ number: 0, baseSha, headSha: git('rev-parse', 'HEAD') });
  const files = await source.listChangedFiles(c);
  const heads = new Map<string, string>();
  for (const f of files) heads.set(f.path, (await source.readHeadFile(c, f.path)) ?? '');
  return { files, heads, base };
}

/** The lines of a file as git counts them (no trailing empty line; `\r` of `\r\n` dropped). */
const linesOf = (text: string) => {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  if (text.endsWith('\n')) lines.pop();
  return lines;
};

/**
 * Checks the rendered numbers against the truth: the line numbered N is line N of the head file,
 * and a removed line numbered (N) is line N of the base file. @returns the new-file numbers shown
 */
function assertNumbersTrue(rendered: string, head: string, base: string): number[] {
  const headLines = linesOf(head);
  const baseLines = linesOf(base);
  const shown: number[] = [];
  for (const line of rendered.split('\n')) {
    const m = /^ *(\d+) [+ ] (.*)$/.exec(line);
    if (m) {
      expect(m[2]).toBe(headLines[Number(m[1]) - 1]);
      shown.push(Number(m[1]));
    }
    const r = /^ *\((\d+)\) - (.*)$/.exec(line);
    if (r) expect(r[2]).toBe(baseLines[Number(r[1]) - 1]);
  }
  return shown;
}

/** `count` lines `<prefix> n` (1-based), each ending with a newline. */
const numbered = (count: number, prefix = 'line') => Array.from({ length: count }, (_, i) => `${prefix} ${i + 1}\n`).join('');

/** Renders `file` widened with `head` (or plain when the head does not match). */
const shownFile = (file: ChangedFile, head: string, options: ContextOptions = DEFAULT_CONTEXT): ChangedFile => {
  const widened = widenPatch(file.patch, head, options);
  return widened ? { ...file, shown: widened.patch } : file;
};

describe('Function: numberLines', () => {
  it('puts the new-file number on added and context lines and the old number in parentheses on removed lines', () => {
    // Act
    const lines = numberLines(
      '@@ -10,3 +10,4 @@ func pay()\n let a = 1\n+let b = 2\n-let c = 3\n+let c = 4\n return\n\\ No newline at end of file',
    );

    // Assess
    expect(lines.map((l) => l.text)).toEqual([
      '@@ -10,3 +10,4 @@ func pay()',
      '  10   let a = 1',
      '  11 + let b = 2',
      '(11) - let c = 3',
      '  12 + let c = 4',
      '  13   return',
      '\\ No newline at end of file',
    ]);
  });

  it('keeps every line it cannot number as it is: nothing is dropped', () => {
    expect(numberLines('not a hunk\n+x').map((l) => l.text)).toEqual(['not a hunk', '+x']);
  });
});

describe('Function: parseHunks', () => {
  it('refuses a patch whose lines do not match the hunk counts', () => {
    expect(parseHunks('@@ -1,2 +1,2 @@\n a\n+b')).toBeUndefined();
    expect(parseHunks('@@ -1 +1,2 @@\n a\n+b')?.[0]?.lines.map((l) => [l.old, l.new])).toEqual([
      [1, 1],
      [0, 2],
    ]);
  });
});

describe('Function: widenPatch', () => {
  it('numbers additions and deletions by the head and base files, with 20 lines of context around a top-level change', async () => {
    // Prepare: a 400-line file, lines 200–201 replaced by three lines.
    const text = numbered(400);
    const { files, heads, base } = await change({ 'notes.txt': text }, (write) =>
      write('notes.txt', text.replace('line 200\nline 201\n', 'new 200\nnew 201\nnew 202\n')),
    );
    const file = files[0] as ChangedFile;
    const head = heads.get('notes.txt') as string;

    // Act
    const rendered = renderFile(shownFile(file, head));

    // Assess
    const shown = assertNumbersTrue(rendered, head, base['notes.txt'] as string);
    expect(shown[0]).toBe(180);
    expect(shown.at(-1)).toBe(222);
    expect(rendered).toContain('(200) - line 200');
    expect(rendered).toContain(' 202 + new 202');
    expect(rendered.split('\n')[0]).toBe('### notes.txt (modified, +3 -2)');
  });

  it('keeps right numbers for a renamed and edited file (git mv + edit)', async () => {
    // Prepare
    const text = numbered(300, 'let v');
    const { files, heads, base } = await change({ 'Old.swift': text }, (write, git) => {
      git('mv', 'Old.swift', 'New.swift');
      write('New.swift', text.replace('let v 150\n', 'let v 150 // changed\n'));
    });
    const file = files[0] as ChangedFile;

    // Act
    const rendered = renderFile(shownFile(file, heads.get('New.swift') as string));

    // Assess
    expect(file).toMatchObject({ status: 'renamed', previousPath: 'Old.swift' });
    expect(rendered.split('\n')[0]).toBe('### New.swift (renamed from Old.swift, +1 -1)');
    expect(assertNumbersTrue(rendered, heads.get('New.swift') as string, base['Old.swift'] as string)).toContain(150);
    expect(rendered).toContain(' 150 + let v 150 // changed');
  });

  it('numbers a file with CRLF line endings as git counts lines', async () => {
    // Prepare
    const text = numbered(200).replace(/\n/g, '\r\n');
    const { files, heads, base } = await change({ 'win.txt': text }, (write) =>
      write('win.txt', text.replace('line 100\r\n', 'line 100 edited\r\nline 100b\r\n')),
    );
    const file = files[0] as ChangedFile;
    const head = heads.get('win.txt') as string;

    // Act
    const rendered = renderFile(shownFile(file, head));

    // Assess
    expect(rendered).not.toContain('\r');
    expect(rendered).not.toContain('␍');
    const shown = assertNumbersTrue(rendered, head, base['win.txt'] as string);
    expect(shown).toEqual(Array.from({ length: 42 }, (_, i) => 80 + i));
  });

  it('widens hunks at the start and the end of a file (without a final newline) within the file', async () => {
    // Prepare
    const text = numbered(300).replace(/\n$/, '');
    const { files, heads, base } = await change({ 'edge.txt': text }, (write) =>
      write('edge.txt', `first\n${text.replace('line 2\n', 'line two\n').replace(/line 300$/, 'line three hundred')}`),
    );
    const file = files[0] as ChangedFile;
    const head = heads.get('edge.txt') as string;

    // Act
    const widened = widenPatch(file.patch, head) as { patch: string };
    const rendered = renderFile({ ...file, shown: widened.patch });

    // Assess
    const hunks = parseHunks(widened.patch);
    expect(hunks?.map((h) => [h.oldStart, h.newStart])).toEqual([
      [1, 1],
      [expect.any(Number), 281],
    ]);
    const shown = assertNumbersTrue(rendered, head, base['edge.txt'] as string);
    expect(shown[0]).toBe(1);
    expect(shown.at(-1)).toBe(301);
    expect(rendered).toContain(' 301 + line three hundred\n\\ No newline at end of file');
  });

  it('merges widened hunks that overlap into one hunk with a correct header', async () => {
    // Prepare: two changes 15 lines apart are two git hunks, one widened hunk.
    const text = numbered(400);
    const { files, heads, base } = await change({ 'two.txt': text }, (write) =>
      write('two.txt', text.replace('line 100\n', '').replace('line 115\n', 'line 115\nadded\n')),
    );
    const file = files[0] as ChangedFile;
    const head = heads.get('two.txt') as string;

    // Act
    const widened = widenPatch(file.patch, head) as { patch: string };

    // Assess
    expect(parseHunks(file.patch)).toHaveLength(2);
    const hunks = parseHunks(widened.patch);
    expect(hunks).toHaveLength(1);
    expect(hunks?.[0]).toMatchObject({ oldStart: 80, oldCount: 56, newStart: 80, newCount: 56 });
    assertNumbersTrue(renderFile({ ...file, shown: widened.patch }), head, base['two.txt'] as string);
  });

  it('shows a small file whole', async () => {
    // Prepare
    const text = numbered(100);
    const { files, heads, base } = await change({ 'small.txt': text }, (write) =>
      write('small.txt', text.replace('line 50\n', 'line fifty\n')),
    );
    const file = files[0] as ChangedFile;
    const head = heads.get('small.txt') as string;

    // Act
    const rendered = renderFile(shownFile(file, head));

    // Assess
    expect(assertNumbersTrue(rendered, head, base['small.txt'] as string)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(rendered).toContain('\n@@ -1,100 +1,100 @@\n');
  });

  it('starts the context at the enclosing Swift func and Kotlin fun', async () => {
    // Prepare: a change 40 lines into a function body, far from the file's start.
    const body = (indent: string) => Array.from({ length: 50 }, (_, i) => `${indent}let x${i} = ${i}\n`).join('');
    const swift = `${numbered(200, '// filler')}final class Cart {\n    private func total() -> Int {\n${body('        ')}    }\n}\n`;
    const kotlin = `${numbered(200, '// filler')}class Cart {\n    override fun total(): Int {\n${body('        ')}    }\n}\n`;
    const { files, heads, base } = await change({ 'Cart.swift': swift, 'Cart.kt': kotlin }, (write) => {
      write('Cart.swift', swift.replace('let x40 = 40', 'let x40 = 41'));
      write('Cart.kt', kotlin.replace('let x40 = 40', 'let x40 = 41'));
    });

    for (const file of files) {
      const head = heads.get(file.path) as string;
      const options = { lines: 5, wholeFileLines: 0, enclosing: true };

      // Act
      const rendered = renderFile(shownFile(file, head, options));

      // Assess: from the function's line (202) to 5 lines below the change (line 243).
      const shown = assertNumbersTrue(rendered, head, base[file.path] as string);
      expect(shown[0]).toBe(202);
      expect(shown.at(-1)).toBe(248);
      expect(rendered).toMatch(/^ +202 {7}(private func|override fun) total\(\)/m);
      // Without `enclosing`, 5 lines above.
      expect(
        assertNumbersTrue(renderFile(shownFile(file, head, { ...options, enclosing: false })), head, base[file.path] as string)[0],
      ).toBe(238);
    }
  });

  it('refuses a head file that does not match the patch (a stale patch): the caller keeps the plain patch', async () => {
    // Prepare
    const text = numbered(300);
    const { files } = await change({ 'a.txt': text }, (write) => write('a.txt', text.replace('line 150\n', 'line 150 edited\n')));
    const file = files[0] as ChangedFile;

    // Act / Assess
    expect(widenPatch(file.patch, text)).toBeUndefined();
    expect(widenPatch(file.patch, '')).toBeUndefined();
  });

  it('keeps the numbers right in every part when a widened file is split across chunks', async () => {
    // Prepare
    const text = numbered(140, 'a fairly long line of text to fill the chunk budget');
    const { files, heads, base } = await change({ 'big.txt': text }, (write) =>
      write('big.txt', text.replace(/(a fairly long line of text to fill the chunk budget 7\d)\n/g, '$1 edited\n')),
    );
    const file = files[0] as ChangedFile;
    const head = heads.get('big.txt') as string;

    // Act
    const chunks = chunkFiles([shownFile(file, head)], 600);

    // Assess
    expect(chunks.length).toBeGreaterThan(2);
    const shown = chunks.flatMap((c) => assertNumbersTrue(c, head, base['big.txt'] as string));
    expect(shown).toEqual(Array.from({ length: 140 }, (_, i) => i + 1));
  });
});

describe('Function: enclosingDeclaration', () => {
  it('finds the less indented declaration above, and none for a top-level line', () => {
    const lines = ['class A {', '  init() {', '    let a = 1', '  }', '}'];
    expect(enclosingDeclaration(lines, 3, '    let a = 2')).toBe(2);
    expect(enclosingDeclaration(lines, 2, '  init(x: Int) {')).toBe(1);
    expect(enclosingDeclaration(lines, 1, 'class B {')).toBeUndefined();
  });

  it('finds a Java method by its modifiers, type and name, and not a field initialised by a call', () => {
    const lines = ['  public static List<String> names(int n) {', '    return list;', '  public int x = count();', '    x++;'];
    expect(enclosingDeclaration(lines, 2, '    return list;')).toBe(1);
    expect(enclosingDeclaration(lines, 4, '    x++;')).toBe(1);
  });

  it('widens a head file built to make a declaration pattern backtrack (60 hunks under 540 crafted lines)', () => {
    // Each crafted line is `public`, 290 spaces and `x(;`: a pattern with overlapping classes took
    // about 0.1 s per line and 41 s for this file; words are now tested one by one.
    const crafted = `public${' '.repeat(290)}x(;`;
    const head = Array.from({ length: 600 }, (_, i) => (i % 10 === 0 ? '    let a = 1' : crafted)).join('\n');
    const patch = Array.from({ length: 60 }, (_, k) => [`@@ -${k * 10 + 1},1 +${k * 10 + 1},1 @@`, '-    let a = 0', '+    let a = 1'])
      .flat()
      .join('\n');
    const widened = widenPatch(patch, head);
    expect(widened?.patch.split('\n').filter((l) => l.startsWith('+'))).toHaveLength(60);
  });
});
