import { describe, expect, it } from 'vitest';
import { type CheckOutcome, checkAnnotations, checkConclusion, checkName, MAX_ANNOTATIONS } from '../../../lambdas/core/checks.js';
import { exampleFinding } from '../../helpers.js';

describe('Function: checkConclusion', () => {
  it.each([
    ['SUCCEEDED', 'success'],
    ['PARTIAL', 'neutral'],
    ['SKIPPED', 'neutral'],
    ['STOPPED', 'neutral'],
    ['FAILED', 'failure'],
    ['TIMED_OUT', 'timed_out'],
    ['ABORTED', 'cancelled'],
  ] as const)(
    'concludes a %s run without blocking findings as %s (never success for a review that did not happen)',
    (outcome, conclusion) => {
      expect(checkConclusion(outcome as CheckOutcome, [{ severity: 'high' }], 'critical')).toBe(conclusion);
    },
  );

  it('fails on findings at or above fail_on whatever the outcome, and never on findings with none', () => {
    expect(checkConclusion('SUCCEEDED', [{ severity: 'critical' }], 'critical')).toBe('failure');
    expect(checkConclusion('PARTIAL', [{ severity: 'high' }], 'high')).toBe('failure');
    expect(checkConclusion('SUCCEEDED', [{ severity: 'medium' }], 'high')).toBe('success');
    expect(checkConclusion('SUCCEEDED', [{ severity: 'critical' }], 'none')).toBe('success');
  });
});

describe('Function: checkAnnotations', () => {
  it('annotates findings on lines (file-level notes stay in the summary), by severity level, with the fix, at most 500', () => {
    const findings = [
      exampleFinding({ severity: 'critical', endLine: 13 }),
      exampleFinding({ severity: 'medium', line: 0 }),
      exampleFinding({ severity: 'low', line: 20 }),
    ];
    expect(checkAnnotations(findings)).toEqual([
      {
        path: 'App/Pay.swift',
        start_line: 11,
        end_line: 13,
        annotation_level: 'failure',
        title: 'critical · correctness',
        message: 'Force unwrap crashes when value is nil.\n\nFix: Use guard let.',
      },
      expect.objectContaining({ start_line: 20, end_line: 20, annotation_level: 'notice' }),
    ]);
    expect(checkAnnotations(Array.from({ length: 600 }, (_, i) => exampleFinding({ line: i + 1 })))).toHaveLength(MAX_ANNOTATIONS);
  });

  it('names the check after the workflow', () => {
    expect(checkName('pr-review')).toBe('AgentFlow · pr-review');
  });
});
