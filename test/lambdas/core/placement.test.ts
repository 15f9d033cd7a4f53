import { describe, expect, it } from 'vitest';
import type { ChangedFile, Finding } from '../../../lambdas/core/contracts.js';
import { placeFindings, shownLines } from '../../../lambdas/core/placement.js';
import { mergeFindings } from '../../../lambdas/core/report.js';

const file = (path: string, patch: string, status: ChangedFile['status'] = 'modified'): ChangedFile => ({
  path,
  status,
  additions: 0,
  deletions: 0,
  patch,
  binary: false,
});

const finding = (f: string, line: number, category = 'correctness'): Finding => ({
  file: f,
  line,
  severity: 'high',
  category,
  message: `problem at ${line}`,
  suggestion: '',
});

describe('Function: shownLines', () => {
  it('numbers added and context lines by the new file, and gives removed lines none', () => {
    // The new file: lines 10 (context), 11 (added), 12 (context); the old line 11 was removed.
    const lines = shownLines(file('a.swift', '@@ -10,3 +10,3 @@\n let a = 1\n-let b = 2\n+let b = 3\n let c = 4'));
    expect([...lines]).toEqual([10, 11, 12]);
  });

  it('follows several hunks, a new file and a rename, and counts \\r\\n as one line break', () => {
    expect([...shownLines(file('n.kt', '@@ -0,0 +1,3 @@\n+a\n+b\n+c', 'added'))]).toEqual([1, 2, 3]);
    expect([...shownLines(file('r.swift', '@@ -5,2 +5,2 @@\n x\n-y\n+z\n@@ -40 +40,2 @@\n w\n+v', 'renamed'))]).toEqual([5, 6, 40, 41]);
    expect([...shownLines(file('crlf.swift', '@@ -1,2 +1,3 @@\r\n a\r\n+b\r\n c\r\n\\ No newline at end of file'))]).toEqual([1, 2, 3]);
  });
});

describe('Function: shownLines (with context)', () => {
  it('reads the shown patch (with context from the head commit) when there is one', () => {
    // Prepare: git's hunk shows lines 10–12; the prompts showed 5–15.
    const patch = '@@ -10,3 +10,3 @@\n a\n-b\n+B\n c';
    const shown = `@@ -5,11 +5,11 @@\n${[5, 6, 7, 8, 9].map((n) => ` l${n}`).join('\n')}\n a\n-b\n+B\n c\n${[13, 14, 15].map((n) => ` l${n}`).join('\n')}`;

    // Act / Assess
    expect([...shownLines({ patch, shown })]).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(placeFindings([finding('a.swift', 6), finding('a.swift', 30)], [{ ...file('a.swift', patch), shown }])).toMatchObject({
      findings: [{ line: 6 }, { line: 0 }],
      relocated: 1,
    });
  });
});

describe('Function: placeFindings', () => {
  const files = [file('App/Pay.swift', '@@ -10,3 +10,4 @@\n let a = 1\n+let b = token!\n+let c = 2\n let d = 3\n let e = 4')];

  it('keeps a finding on a shown line, and maps a/ b/ ./ paths to the changed file', () => {
    const r = placeFindings([finding('App/Pay.swift', 11), finding('b/App/Pay.swift', 12), finding('./App/Pay.swift', 10)], files);
    expect(r.findings.map((f) => `${f.file}:${f.line}`)).toEqual(['App/Pay.swift:11', 'App/Pay.swift:12', 'App/Pay.swift:10']);
    expect(r.relocated).toBe(0);
  });

  it('moves a finding on a line the diff does not show, or on a file outside the change, to file level and counts it', () => {
    const r = placeFindings([finding('App/Pay.swift', 200), finding('App/Other.swift', 3), finding('App/Pay.swift', 0)], files);
    expect(r.findings.map((f) => `${f.file}:${f.line}`)).toEqual(['App/Pay.swift:0', 'App/Other.swift:0', 'App/Pay.swift:0']);
    expect(r.relocated).toBe(2);
  });
});

describe('Function: mergeFindings (many findings)', () => {
  it('merges 14,000 findings of two agents into one per file, line and category, keeping both agents', () => {
    const many = Array.from({ length: 7_000 }, (_, i) => finding(`F${i % 70}.swift`, i));
    const merged = mergeFindings([
      { agent: 'code-review', findings: many },
      { agent: 'security', findings: many.map((f) => ({ ...f, severity: 'critical' as const })) },
    ]);
    expect(merged).toHaveLength(7_000);
    expect(merged.every((f) => f.severity === 'critical' && f.agents.join() === 'code-review,security')).toBe(true);
  });
});
