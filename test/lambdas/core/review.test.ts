import { describe, expect, it } from 'vitest';
import type { ChangedFile } from '../../../lambdas/core/contracts.js';
import { buildInlineReview, inlineCommentBody } from '../../../lambdas/core/review.js';
import { findingKey } from '../../../lambdas/core/verify.js';
import { exampleFinding } from '../../helpers.js';

const file: ChangedFile = {
  path: 'App/Pay.swift',
  status: 'modified',
  additions: 3,
  deletions: 1,
  binary: false,
  patch: [
    '@@ -10,4 +10,6 @@ func pay()',
    ' let a = 1',
    '-let b = old',
    '+let b = value!',
    '+print(b)',
    '+let u = "http://x"',
    ' return',
    ' }',
  ].join('\n'),
  // The prompts also showed line 2 (context from the head commit): not a line GitHub accepts a comment on.
  shown: ['@@ -2,1 +2,1 @@', ' import UIKit'].join('\n'),
};

const finding = exampleFinding;

const options = { maxComments: 20, minSeverity: 'low' as const };

describe('Function: buildInlineReview', () => {
  it('puts each finding on its line of the diff, on the new file (RIGHT), with the finding key', () => {
    const f = finding();
    const review = buildInlineReview([f], [file], options, 'abc123', 'PR review');
    expect(review).toMatchObject({ commitId: 'abc123', summaryOnly: 0 });
    expect(review.comments).toEqual([{ path: 'App/Pay.swift', line: 11, side: 'RIGHT', body: expect.any(String), key: findingKey(f) }]);
    expect(review.body).toBe('**AgentFlow · PR review**: 1 finding on the changed lines.');
  });

  it('keeps out file-level findings, lines outside the real diff (context shown from the head only), other files, low severities and what is over the cap', () => {
    const findings = [
      finding({ severity: 'critical' }),
      finding({ line: 12, severity: 'medium', category: 'quality', message: 'Debug print.' }),
      finding({ line: 0, message: 'No tests.' }),
      finding({ line: 2, message: 'Shown only as context.' }),
      finding({ file: 'Other.swift' }),
      finding({ line: 13, severity: 'info', category: 'quality', message: 'Note.' }),
    ];
    const review = buildInlineReview(findings, [file], { maxComments: 1, minSeverity: 'medium' }, 'abc', 'W');
    expect(review.comments.map((c) => c.line)).toEqual([11]);
    expect(review.summaryOnly).toBe(5);
    expect(buildInlineReview(findings, [file], { maxComments: 20, minSeverity: 'medium' }, 'abc', 'W').comments.map((c) => c.line)).toEqual(
      [11, 12],
    );
  });

  it('comments on a range within one hunk (startLine..line) and suggests its replacement; a range leaving the hunk is one line without a suggestion', () => {
    const ranged = finding({ line: 11, endLine: 12, replacement: 'guard let b = value else { return }\nprint(b)' });
    const [c] = buildInlineReview([ranged], [file], options, 'abc', 'W').comments;
    expect(c).toMatchObject({ startLine: 11, line: 12 });
    expect(c?.body).toContain('```suggestion\nguard let b = value else { return }\nprint(b)\n```');
    const leaving = finding({ line: 13, endLine: 20, replacement: 'x' });
    const [d] = buildInlineReview([leaving], [file], options, 'abc', 'W').comments;
    expect(d).toMatchObject({ line: 13 });
    expect(d?.startLine).toBeUndefined();
    expect(d?.body).not.toContain('suggestion');
  });
});

describe('Function: inlineCommentBody', () => {
  it('makes model text inert (no HTML, links, mentions) and fences a replacement it cannot close', () => {
    const body = inlineCommentBody(
      finding({ message: 'See [here](https://evil.example) @org/team <img src=x>', replacement: 'let s = """\n```\n"""' }),
      true,
    );
    expect(body).not.toMatch(/\[here\]\(|<img|@org\/team/);
    expect(body).toContain('````suggestion\nlet s = """\n```\n"""\n````');
    expect(body.split('\n')[0]).toMatch(/^<!-- agentflow:finding:[0-9a-f]{16} -->$/);
  });
});
