import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/workspace.js';
import { type GoldenFinding, headFiles, QUALITY_CORPUS } from '../fixtures/quality/corpus.js';
import { matchFindings, rates, scoreByAgent, scoreCase } from '../fixtures/quality/score.js';

/** Every category an agent of the catalog declares (`categories: [...]` in workflows/agents/*.yml). */
function agentCategories(): Set<string> {
  const dir = join(PROJECT_ROOT, 'workflows', 'agents');
  const out = new Set<string>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yml'))) {
    const m = /^categories:\s*\[([^\]]*)\]/m.exec(readFileSync(join(dir, f), 'utf8'));
    for (const c of m?.[1]?.split(',') ?? []) out.add(c.trim());
  }
  return out;
}

describe('review-quality corpus', () => {
  it('has at least 30 cases, 6 of them clean, with unique ids, on both platforms', () => {
    expect(QUALITY_CORPUS.length).toBeGreaterThanOrEqual(30);
    expect(QUALITY_CORPUS.filter((c) => c.golden.length === 0).length).toBeGreaterThanOrEqual(6);
    expect(new Set(QUALITY_CORPUS.map((c) => c.id)).size).toBe(QUALITY_CORPUS.length);
    expect(QUALITY_CORPUS.some((c) => c.platform === 'ios')).toBe(true);
    expect(QUALITY_CORPUS.some((c) => c.platform === 'android')).toBe(true);
  });

  it('seeds crashes, threading, leaks, security and missing tests', () => {
    const seeded = QUALITY_CORPUS.flatMap((c) => c.seeded).join('\n');
    for (const kind of [
      'try!',
      'as!',
      '!!',
      'force unwrap',
      'DispatchQueue.main.sync',
      'GlobalScope',
      'runBlocking',
      'retain cycle',
      'context',
      'http://',
      'NSAllowsArbitraryLoads',
      'MD5',
      'SHA-1',
      'without a test',
    ]) {
      expect(seeded, kind).toContain(kind);
    }
  });

  it('every change changes something, and every golden points at lines of a file in the head', () => {
    const known = agentCategories();
    expect(known.has('correctness') && known.has('security') && known.has('testing')).toBe(true);
    for (const c of QUALITY_CORPUS) {
      const head = headFiles(c);
      expect(JSON.stringify(head), c.id).not.toBe(JSON.stringify(c.base));
      expect(c.seeded.length === 0, c.id).toBe(c.golden.length === 0);
      for (const g of c.golden) {
        const text = head[g.file];
        expect(text, `${c.id}: ${g.file}`).toBeTypeOf('string');
        const count = (text ?? '').replace(/\n$/, '').split('\n').length;
        if (g.lineStart === 0) expect(g.lineEnd, c.id).toBe(0);
        else {
          expect(g.lineStart, c.id).toBeGreaterThanOrEqual(1);
          expect(g.lineEnd, c.id).toBeGreaterThanOrEqual(g.lineStart);
          expect(g.lineEnd, c.id).toBeLessThanOrEqual(count);
        }
        expect(known.has(g.category), `${c.id}: ${g.category}`).toBe(true);
      }
    }
  });

  it('keeps no literal credential in its source', () => {
    const source = readFileSync(join(PROJECT_ROOT, 'test', 'fixtures', 'quality', 'corpus.ts'), 'utf8');
    expect(source).not.toMatch(/\b(?:AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|sk_live_[A-Za-z0-9]{16,})/);
  });
});

describe('review-quality scoring', () => {
  const golden: GoldenFinding[] = [
    { file: 'A.swift', lineStart: 10, lineEnd: 12, category: 'correctness' },
    { file: 'A.swift', lineStart: 0, lineEnd: 0, category: 'testing' },
    { file: 'B.kt', lineStart: 5, lineEnd: 5, category: 'security' },
  ];

  it('matches on file, line range (0: any line) and category, one finding per golden', () => {
    const findings = [
      { file: 'A.swift', line: 11, category: 'correctness', agents: ['code-review'] }, // matches golden 0
      { file: 'A.swift', line: 11, category: 'correctness', agents: ['security'] }, // duplicate: golden 0 is taken
      { file: 'A.swift', line: 13, category: 'correctness', agents: ['code-review'] }, // outside the range
      { file: 'A.swift', line: 40, category: 'testing', agents: ['test-coverage'] }, // any line: matches golden 1
      { file: 'B.kt', line: 5, category: 'correctness', agents: ['code-review'] }, // wrong category
      { file: 'C.kt', line: 5, category: 'security', agents: ['security'] }, // wrong file
    ];
    expect(matchFindings(findings, golden)).toEqual([0, -1, -1, 1, -1, -1]);
    const t = scoreCase(findings, golden);
    expect(t).toEqual({ findings: 6, matchedFindings: 2, goldens: 3, matchedGoldens: 2 });
    const r = rates(t);
    expect(r.precision).toBeCloseTo(2 / 6);
    expect(r.recall).toBeCloseTo(2 / 3);
    expect(r.f1).toBeCloseTo((2 * (1 / 3) * (2 / 3)) / (1 / 3 + 2 / 3));
  });

  it('a whole-file golden does not take the finding a line golden needs', () => {
    const g: GoldenFinding[] = [
      { file: 'A.swift', lineStart: 0, lineEnd: 0, category: 'correctness' },
      { file: 'A.swift', lineStart: 3, lineEnd: 3, category: 'correctness' },
    ];
    const f = [
      { file: 'A.swift', line: 3, category: 'correctness' },
      { file: 'A.swift', line: 9, category: 'correctness' },
    ];
    expect(matchFindings(f, g)).toEqual([1, 0]);
  });

  it('says n/a for an empty denominator and 0 when nothing matches', () => {
    expect(rates({ findings: 0, matchedFindings: 0, goldens: 0, matchedGoldens: 0 })).toEqual({ precision: null, recall: null, f1: null });
    expect(rates({ findings: 2, matchedFindings: 0, goldens: 0, matchedGoldens: 0 })).toEqual({ precision: 0, recall: null, f1: null });
    expect(rates({ findings: 2, matchedFindings: 0, goldens: 1, matchedGoldens: 0 })).toEqual({ precision: 0, recall: 0, f1: 0 });
  });

  it('scores each agent on its own findings against the goldens of its categories', () => {
    const findings = [
      { file: 'A.swift', line: 10, category: 'correctness', agents: ['code-review', 'security'] },
      { file: 'B.kt', line: 5, category: 'security', agents: ['security'] },
    ];
    const byAgent = scoreByAgent(findings, golden, {
      'code-review': ['correctness', 'quality'],
      security: ['security'],
      documentation: ['documentation'],
    });
    expect(byAgent.get('code-review')).toEqual({ findings: 1, matchedFindings: 1, goldens: 1, matchedGoldens: 1 });
    expect(byAgent.get('security')).toEqual({ findings: 2, matchedFindings: 1, goldens: 1, matchedGoldens: 1 });
    expect(byAgent.get('documentation')).toEqual({ findings: 0, matchedFindings: 0, goldens: 0, matchedGoldens: 0 });
  });
});
