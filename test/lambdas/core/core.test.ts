import { describe, expect, it } from 'vitest';
import type { ChangedFile } from '../../../lambdas/core/contracts.js';
import { costUsd } from '../../../lambdas/core/pricing.js';
import { DOCUMENT_CLOSE, DOCUMENT_OPEN, parseAnswer } from '../../../lambdas/core/prompt.js';
import { commentMarker, mergeFindings, renderComment, runOutcome, summarize } from '../../../lambdas/core/report.js';
import { chunkFiles, estimateTokens } from '../../../lambdas/core/tokens.js';
import { executionName, matchWorkflows } from '../../../lambdas/core/triggers.js';

describe('Function: chunkFiles', () => {
  const file = (path: string, lines: number): ChangedFile => ({
    path,
    status: 'modified',
    additions: lines,
    deletions: 0,
    binary: false,
    patch: [`@@ -1,0 +1,${lines} @@`, ...Array.from({ length: lines }, (_, i) => `+line ${i} of ${path} with some code`)].join('\n'),
  });

  it('keeps small files together in one chunk', () => {
    expect(chunkFiles([file('a.swift', 3), file('b.kt', 3)], 10_000)).toHaveLength(1);
  });

  it('splits a change too large for one prompt without losing a line', () => {
    const files = [file('a.swift', 400), file('b.kt', 50), file('c.swift', 5)];
    const chunks = chunkFiles(files, 1_000);
    expect(chunks.length).toBeGreaterThan(3);
    for (const c of chunks) expect(estimateTokens(c)).toBeLessThanOrEqual(1_000);
    const joined = chunks.join('\n');
    // Every added line is there, with its new-file number (line i of a new file is number i + 1).
    for (const f of files) {
      f.patch
        .split('\n')
        .filter((x) => x.startsWith('+'))
        .forEach((l, i) => {
          expect(joined).toMatch(new RegExp(`^ *${i + 1} \\+ ${l.slice(1)}$`, 'm'));
        });
    }
  });

  it('rejects a budget that is not positive', () => {
    expect(() => chunkFiles([], 0)).toThrow(RangeError);
  });
});

describe('Function: costUsd', () => {
  it('prices input, output and cache tokens per million, to the micro-dollar', () => {
    const price = { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 };
    expect(costUsd({ inputTokens: 1_000, outputTokens: 500, cacheReadTokens: 2_000, cacheWriteTokens: 100 }, price)).toBe(0.011475);
    expect(costUsd({ inputTokens: 1, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 }, { ...price, input: 0.4 })).toBe(0);
  });
});

describe('Function: parseAnswer', () => {
  it('accepts the JSON object inside a Markdown fence', () => {
    const r = parseAnswer(
      '```json\n{"summary":"ok","findings":[{"file":"a.swift","line":3,"severity":"high","category":"correctness","message":"m"}]}\n```',
    );
    expect(r.ok && r.answer.findings[0]?.suggestion).toBe('');
  });

  const finding = '{"file":"a.swift","line":3,"severity":"high","category":"correctness","message":"m"}';
  const answer = `{"summary":"ok","findings":[${finding}]}`;

  it('accepts a fenced JSON block with prose around it, and prefers the ```json block to another fence', () => {
    const r = parseAnswer(
      `Here is my review {of the change}:\n\n\`\`\`text\n{"not": "it"}\n\`\`\`\n\`\`\`json\n${answer}\n\`\`\`\nHope it helps!`,
    );
    expect(r.ok && r.answer.findings).toHaveLength(1);
  });

  it('accepts the object when prose before it holds a brace', () => {
    const r = parseAnswer(`I looked at {App.swift} and found one problem. ${answer}`);
    expect(r.ok && r.answer.findings[0]?.line).toBe(3);
  });

  it('accepts the first object when an example object follows it', () => {
    const r = parseAnswer(`${answer}\n\nFor example, an empty review would be {"summary":"","findings":[]}.`);
    expect(r.ok && r.answer.findings).toHaveLength(1);
  });

  it('accepts a Markdown document with raw line breaks inside its JSON string', () => {
    const r = parseAnswer(`{"summary":"ADR","findings":[],"document":"# ADR 12\n\n## Context\n- a \\"quoted\\" word\n\ttab"}`);
    expect(r.ok && r.answer.document).toBe('# ADR 12\n\n## Context\n- a "quoted" word\n\ttab');
  });

  it('says a truncated answer is cut off, an empty one empty, and an off-schema one which field is wrong', () => {
    expect(parseAnswer(`{"summary":"ok","findings":[${finding},{"file":"b.swift","li`)).toEqual({
      ok: false,
      problem: 'its JSON object is cut off (it ends before the object closes)',
    });
    expect(parseAnswer('   ')).toEqual({ ok: false, problem: 'it is empty' });
    expect(parseAnswer('{"verdict":"LGTM"}')).toEqual({
      ok: false,
      problem:
        'its JSON object does not match the format (findings: Invalid input: expected array, received undefined; (root): Unrecognized key: "verdict")',
    });
  });

  it('reads a document written after the JSON object between the document lines, ignoring fences and braces in it', () => {
    const doc = '# ADR 3\n\n```json\n{"summary":"not","findings":"it"}\n```\n{ braces }';
    const r = parseAnswer(`${answer}\n${DOCUMENT_OPEN}\n${doc}\n${DOCUMENT_CLOSE}\n`);
    expect(r).toEqual({ ok: true, answer: { summary: 'ok', findings: [expect.objectContaining({ line: 3 })], document: doc } });
  });

  it('says a document without its closing line is cut off', () => {
    expect(parseAnswer(`${answer}\n${DOCUMENT_OPEN}\n# ADR 3\n\nThe deci`)).toEqual({
      ok: false,
      problem: `its document is cut off (no closing line ${DOCUMENT_CLOSE})`,
    });
  });

  it('reads the nulls of a structured answer (strict mode) as absent fields', () => {
    const r = parseAnswer(`{"summary":"ok","findings":[${finding.replace('}', ',"suggestion":"fix"}')}],"document":null}`);
    expect(r).toEqual({ ok: true, answer: { summary: 'ok', findings: [expect.objectContaining({ suggestion: 'fix' })] } });
  });

  it('rejects prose, bad JSON and a wrong severity with the reason', () => {
    expect(parseAnswer('looks good')).toEqual({ ok: false, problem: 'it contains no JSON object' });
    expect(parseAnswer('{"findings": [}').ok).toBe(false);
    const r = parseAnswer('{"findings":[{"file":"a","line":1,"severity":"urgent","category":"x","message":"m"}]}');
    expect(r.ok ? '' : r.problem).toMatch(/findings\.0\.severity/);
  });
});

describe('Function: mergeFindings', () => {
  it('merges the same problem reported by two agents and keeps the higher severity', () => {
    const f = { file: 'a.swift', line: 3, category: 'security', message: 'Key in code', suggestion: '' };
    const merged = mergeFindings([
      { agent: 'code-review', findings: [{ ...f, severity: 'medium' }] },
      {
        agent: 'security',
        findings: [
          { ...f, severity: 'critical', suggestion: 'rotate it' },
          { ...f, line: 9, severity: 'low' },
        ],
      },
    ]);
    expect(merged).toHaveLength(2);
    expect(merged[0]).toMatchObject({ severity: 'critical', agents: ['code-review', 'security'], suggestion: 'rotate it' });
  });

  it('keeps the suggested code and range with the message they belong to', () => {
    const f = { file: 'a.swift', line: 2, category: 'security', suggestion: '' };
    const merged = mergeFindings([
      { agent: 'a1', findings: [{ ...f, severity: 'low', message: 'Use https.', endLine: 3, replacement: 'let u = "https://x"' }] },
      { agent: 'a2', findings: [{ ...f, severity: 'critical', message: 'SQL injection here.' }] },
    ]);
    expect(merged).toHaveLength(1);
    expect(merged[0]).toMatchObject({ severity: 'critical', message: 'SQL injection here.' });
    expect(merged[0]?.replacement).toBeUndefined();
    expect(merged[0]?.endLine).toBeUndefined();
  });
});

describe('Function: renderComment', () => {
  it('shows findings by severity linked to file:line, failed agents with their reason, tokens and USD', () => {
    const findings = mergeFindings([
      {
        agent: 'security',
        findings: [{ file: 'Pay.swift', line: 10, severity: 'critical', category: 'security', message: 'Secret', suggestion: 'Rotate' }],
      },
    ]);
    const summary = summarize(
      'pr-review',
      [
        {
          name: 'security',
          phase: 'review',
          status: 'succeeded',
          provider: 'openai',
          model: 'gpt-4.1-mini',
          inputTokens: 1000,
          outputTokens: 200,
          cachedTokens: 0,
          costUsd: 0.00072,
          findings: 1,
          chunks: 1,
          repaired: false,
          durationMs: 5,
          calls: 1,
          cacheHits: 0,
          fallbackUsed: false,
          attempts: [],
          filesReviewed: 0,
          filesNotReviewed: 0,
          repairs: 0,
          truncated: 0,
          rawAnswers: [],
          toolCalls: 0,
          toolErrors: 0,
          iterations: 0,
        },
        {
          name: 'code-review',
          phase: 'review',
          status: 'failed',
          provider: 'bedrock',
          model: 'claude-sonnet',
          inputTokens: 0,
          outputTokens: 0,
          cachedTokens: 0,
          costUsd: 0,
          findings: 0,
          chunks: 0,
          repaired: false,
          durationMs: 0,
          calls: 0,
          cacheHits: 0,
          fallbackUsed: false,
          attempts: [],
          filesReviewed: 0,
          filesNotReviewed: 0,
          repairs: 0,
          truncated: 0,
          rawAnswers: [],
          toolCalls: 0,
          toolErrors: 0,
          iterations: 0,
          error: { Error: 'ProviderUnavailableError', Cause: '{"errorMessage":"bedrock: 503"}' },
        },
      ],
      findings,
    );
    const md = renderComment({
      workflowName: 'PR review',
      workflow: 'pr-review',
      change: {
        repository: 'acme/app',
        number: 1,
        title: '',
        author: '',
        url: '',
        action: 'opened',
        baseSha: 'a',
        headSha: 'b1234567',
        baseRef: '',
        headRef: '',
      },
      runId: 'r1',
      findings,
      summary,
    });
    expect(md.startsWith(commentMarker('pr-review'))).toBe(true);
    expect(md).toContain(
      '- 🔴 **critical** · security — Secret ([`Pay.swift:10`](https://github.com/acme/app/blob/b1234567/Pay.swift#L10))',
    );
    expect(md).not.toContain('Rotate');
    expect(summary.status).toBe('PARTIAL');
    expect(md).toContain('**⚠️ PARTIAL** — 1 of 2 agents failed: code-review (ProviderUnavailableError: bedrock: 503)');
    expect(md).toContain('| code-review | ❌ failed: ProviderUnavailableError: bedrock: 503 |');
    expect(md).toContain('| security | ✅ succeeded | openai | gpt-4.1-mini | 1,000 | 200 | $0.0007 |');
    expect(summary.costUsd).toBe(0.00072);
  });
});

describe('Function: executionName', () => {
  it('is stable per delivery and workflow, Step Functions-safe and at most 80 characters', () => {
    const n = executionName('72d3162e-cc78-11e3-81ab-4c9367dc0958', 'pr-review');
    expect(n).toBe('72d3162e-cc78-11e3-81ab-4c9367dc0958-pr-review');
    const long = executionName('x'.repeat(100) + ' /?', 'w'.repeat(60));
    expect(long.length).toBeLessThanOrEqual(80);
    expect(long).toMatch(/^[A-Za-z0-9_-]+$/);
  });
});

describe('Function: matchWorkflows', () => {
  it('matches event.action against each trigger', () => {
    const wfs = [
      { id: 'a', events: ['pull_request.opened'] },
      { id: 'b', events: ['pull_request.closed'] },
    ];
    expect(matchWorkflows('pull_request', 'opened', wfs).map((w) => w.id)).toEqual(['a']);
    expect(matchWorkflows('pull_request', 'labeled', wfs)).toEqual([]);
  });
});

describe('Function: runOutcome', () => {
  const agent = (name: string, over: Partial<Parameters<typeof runOutcome>[0][number]> = {}) => ({
    name,
    phase: 'review',
    status: 'succeeded' as const,
    filesNotReviewed: 0,
    calls: 1,
    chunks: 1,
    ...over,
  });

  it('is SUCCEEDED when every agent reviewed everything, PARTIAL when one was cut by the budget', () => {
    expect(runOutcome([agent('a'), agent('b')])).toEqual({ status: 'SUCCEEDED' });
    expect(runOutcome([agent('a'), agent('b', { status: 'partial', filesNotReviewed: 3, notReviewed: 'budget: no room' })])).toEqual({
      status: 'PARTIAL',
      reason: 'b did not review 3 files (budget: no room)',
    });
  });

  it('is FAILED "not reviewed: budget" only when no agent made a call; FAILED naming the errors otherwise', () => {
    const refused = { Error: 'BudgetExceededError', Cause: 'not reviewed: budget: no room' };
    expect(runOutcome([agent('a', { status: 'failed', calls: 0, error: refused })]).reason).toMatch(/^not reviewed: budget/);
    expect(runOutcome([agent('a', { status: 'failed', calls: 2, error: refused })]).reason).toMatch(/^every agent failed: a \(/);
  });

  it('is SKIPPED when the plan left no agent a file to review', () => {
    expect(runOutcome([agent('a', { chunks: 0, calls: 0 }), agent('b', { chunks: 0, calls: 0 })])).toMatchObject({
      status: 'SKIPPED',
      reason: expect.stringMatching(/^nothing to review/),
    });
  });

  it('is FAILED when an agent of a required phase did not finish, even if others succeeded', () => {
    const r = runOutcome([agent('a'), agent('b', { phase: 'gate', status: 'partial', filesNotReviewed: 1 })], ['gate']);
    expect(r.status).toBe('FAILED');
    expect(r.reason).toMatch(/^required phase did not complete: gate\/b/);
  });
});
