import { describe, expect, it } from 'vitest';
import type { ChangedFile } from '../../../lambdas/core/contracts.js';
import {
  acceptanceRates,
  applyFeedback,
  fileDigest,
  fingerprintOf,
  incrementalScope,
  knownTo,
  newLines,
  type ReviewState,
  reconcile,
} from '../../../lambdas/core/incremental.js';
import type { ReportFinding } from '../../../lambdas/core/report.js';

const file = (path: string, patch: string, status: ChangedFile['status'] = 'modified'): ChangedFile => ({
  path,
  status,
  additions: 1,
  deletions: 0,
  patch,
  binary: false,
});

const cart = file(
  'App/Cart.swift',
  [
    '@@ -10,3 +10,4 @@ final class Cart {',
    '   func total() -> Int {',
    '+    let key = "sk_live_x"',
    '     return items.count',
    '   }',
  ].join('\n'),
);
// The same code moved 5 lines down by an edit above it.
const cartMoved = file(
  'App/Cart.swift',
  [
    '@@ -1,3 +1,4 @@',
    ' import Foundation',
    '+import Combine',
    ' ',
    ' // cart',
    '@@ -10,3 +15,4 @@ final class Cart {',
    '   func total() -> Int {',
    '+    let key = "sk_live_x"',
    '     return items.count',
    '   }',
  ].join('\n'),
);
const cartFixed = file(
  'App/Cart.swift',
  [
    '@@ -10,3 +10,4 @@ final class Cart {',
    '   func total() -> Int {',
    '+    let key = Secrets.key',
    '     return items.count',
    '   }',
  ].join('\n'),
);
const other = file('App/Other.swift', '@@ -1,1 +1,2 @@\n a\n+b');

const finding = (over: Partial<ReportFinding> = {}): ReportFinding => ({
  file: 'App/Cart.swift',
  line: 11,
  severity: 'critical',
  category: 'security',
  message: 'Hard-coded secret key.',
  suggestion: '',
  agents: ['security'],
  ...over,
});

const change = (headSha: string) => ({ headSha, baseSha: 'base0000' });

/** `reconcile` with a first review's defaults: no findings, the cart file, no previous state. */
const rec = (o: Partial<Parameters<typeof reconcile>[0]>) =>
  reconcile({ findings: [], files: [cart], previous: undefined, scope: undefined, change: change('h1'), runId: 'r', ...o });

describe('Module: incremental re-review', () => {
  it('fingerprints a finding by file, category and its code, not its line or wording', () => {
    const a = fingerprintOf(finding(), newLines(cart.patch));
    const moved = fingerprintOf(finding({ line: 16, message: 'A secret is committed.' }), newLines(cartMoved.patch));
    expect(a.code).toBe('let key = "sk_live_x"');
    expect(moved.fingerprint).toBe(a.fingerprint);
    expect(fingerprintOf(finding({ category: 'style' }), newLines(cart.patch)).fingerprint).not.toBe(a.fingerprint);
    expect(fingerprintOf(finding(), newLines(cartFixed.patch)).fingerprint).not.toBe(a.fingerprint);
    // A file-level finding: by its normalised message.
    const fileLevel = fingerprintOf(finding({ line: 0, message: 'No  tests.' }), new Map());
    expect(fingerprintOf(finding({ line: 0, message: 'no tests.' }), new Map()).fingerprint).toBe(fileLevel.fingerprint);
  });

  it('reviews only files whose diff changed since the last review (a rebase that keeps a diff keeps its review)', () => {
    const first = rec({ findings: [finding()], files: [cart, other], change: change('head1') });
    expect(incrementalScope([cart, other], first.next, false)).toEqual({
      since: 'head1',
      unchanged: ['App/Cart.swift', 'App/Other.swift'],
    });
    const pushed = file('App/Other.swift', '@@ -1,1 +1,3 @@\n a\n+b\n+c');
    expect(incrementalScope([cart, pushed], first.next, false)?.unchanged).toEqual(['App/Cart.swift']);
    expect(incrementalScope([cart, pushed], first.next, true)).toBeUndefined();
    expect(incrementalScope([cart], undefined, false)).toBeUndefined();
    // A state of another head branch (a local run reusing a number) is not built on.
    expect(incrementalScope([cart, other], first.next, false, 'other-branch')).toBeUndefined();
    expect(fileDigest(cart)).toBe(fileDigest({ ...cart, patch: cart.patch.replace(/\n/g, '\r\n') }));
  });

  it('carries a finding of an unchanged file over without raising it again, and counts a repeat as already posted', () => {
    const first = rec({ findings: [finding()], files: [cart, other], change: change('head1') });
    const state: ReviewState = { ...first.next, findings: first.next.findings.map((f) => ({ ...f, posted: true })) };
    const second = rec({
      findings: [],
      files: [cart, other],
      previous: state,
      scope: { since: 'head1', unchanged: ['App/Cart.swift'] },
      change: change('head2'),
    });
    expect(second.carried).toBe(1);
    expect(second.findings[0]?.carried).toBe('head1');
    expect(second.next.findings[0]?.posted).toBe(true);
    // Raised again by a full review: the same fingerprint, not a new finding.
    const third = rec({ findings: [finding({ message: 'Secret!' })], previous: state, change: change('head3') });
    expect(third.repeated).toBe(1);
    expect(third.findings).toHaveLength(1);
    expect(third.findings[0]?.carried).toBe('head1');
    expect(third.next.findings[0]?.raisedAt).toBe('head1');
  });

  it('resolves a finding whose code changed or whose file left the pull request; keeps one whose code only moved', () => {
    const first = rec({ findings: [finding()], change: change('head1') });
    const fixed = rec({
      findings: [],
      files: [cartFixed],
      previous: first.next,
      scope: { since: 'head1', unchanged: [] },
      change: change('h2'),
    });
    expect(fixed.resolved.map((r) => r.file)).toEqual(['App/Cart.swift']);
    expect(fixed.findings).toEqual([]);
    expect(fixed.next.resolved).toEqual([first.next.findings[0]?.fingerprint]);
    const gone = rec({
      findings: [],
      files: [other],
      previous: first.next,
      scope: { since: 'head1', unchanged: [] },
      change: change('h2'),
    });
    expect(gone.resolved).toHaveLength(1);
    // The model did not repeat it, but the code is still there (5 lines lower): it stays open, moved.
    const moved = rec({
      findings: [],
      files: [cartMoved],
      previous: first.next,
      scope: { since: 'head1', unchanged: [] },
      change: change('h2'),
    });
    expect(moved.resolved).toEqual([]);
    expect(moved.findings[0]?.line).toBe(16);
  });

  it('never raises a dismissed fingerprint again', () => {
    const first = rec({ findings: [finding()], change: change('head1') });
    const fp = first.next.findings[0]?.fingerprint as string;
    const state: ReviewState = { ...first.next, findings: [], dismissed: [fp] };
    const again = rec({ findings: [finding({ line: 11 })], previous: state, change: change('h2') });
    expect(again.findings).toEqual([]);
    expect(again.dismissed).toBe(1);
    expect(again.next.dismissed).toEqual([fp]);
  });

  it('counts feedback once: only reactions and dismissals new since the last run, per agent and category', () => {
    const first = rec({ findings: [finding()], change: change('head1') });
    const fp = first.next.findings[0]?.fingerprint as string;
    const one = applyFeedback(first.next, [{ key: fp, up: 2, down: 0 }]);
    expect(one.tallies).toEqual([{ agent: 'security', category: 'security', accepted: 2, rejected: 0, dismissed: 0 }]);
    // The same reactions read again count nothing; a new 👎 and a dismissal count once.
    expect(applyFeedback(one.state, [{ key: fp, up: 2, down: 0 }]).tallies).toEqual([]);
    const two = applyFeedback(one.state, [{ key: fp, up: 2, down: 1, dismissedBy: 'carol' }]);
    expect(two.tallies).toEqual([{ agent: 'security', category: 'security', accepted: 0, rejected: 2, dismissed: 1 }]);
    expect(two.state.dismissed).toEqual([fp]);
    expect(applyFeedback(two.state, [{ key: fp, up: 2, down: 1, dismissedBy: 'carol' }]).tallies).toEqual([]);
    expect(acceptanceRates([{ feedback: one.tallies }, { feedback: two.tallies }, {}])).toEqual([
      { agent: 'security', category: 'security', accepted: 2, rejected: 2, dismissed: 1, rate: 0.5 },
    ]);
  });

  it('a renamed file keeps its findings: not resolved, not raised as new', () => {
    const first = rec({ findings: [finding()], change: change('h1') });
    const moved = { ...cart, path: 'App/Basket.swift', status: 'renamed' as const, previousPath: 'App/Cart.swift' };
    const kept = rec({ findings: [], files: [moved], previous: first.next, scope: { since: 'h1', unchanged: [] }, change: change('h2') });
    expect(kept.resolved).toEqual([]);
    expect(kept.findings[0]).toMatchObject({ file: 'App/Basket.swift', carried: 'h1' });
    const again = rec({ findings: [finding({ file: 'App/Basket.swift' })], files: [moved], previous: first.next, change: change('h2') });
    expect(again.repeated).toBe(1);
    expect(again.findings[0]?.fingerprint).toBe(first.next.findings[0]?.fingerprint);
  });

  it('a reworded file-level finding does not pile up: the old one is resolved when its file is reviewed again', () => {
    const first = rec({ findings: [finding({ line: 0, message: 'No tests.' })], change: change('h1') });
    const second = rec({ findings: [finding({ line: 0, message: 'Tests are missing.' })], previous: first.next, change: change('h2') });
    expect(second.findings).toHaveLength(1);
    expect(second.resolved).toHaveLength(1);
  });

  it('only findings the verifier confirmed are not checked again; another configuration reviews every file', () => {
    const confirmed = rec({ findings: [finding()], change: change('h1'), confirmed: () => true, config: 'c1' });
    const unchecked = rec({ findings: [finding()], change: change('h1'), config: 'c1' });
    expect(knownTo(confirmed.next, [cart])(finding())).toBe(true);
    expect(knownTo(unchecked.next, [cart])(finding())).toBe(false);
    expect(incrementalScope([cart], confirmed.next, false, '', 'c1')?.unchanged).toEqual(['App/Cart.swift']);
    expect(incrementalScope([cart], confirmed.next, false, '', 'c2')).toBeUndefined();
  });

  it('a reaction taken back and given again counts once', () => {
    const first = rec({ findings: [finding()], change: change('h1') });
    const fp = first.next.findings[0]?.fingerprint as string;
    const one = applyFeedback(first.next, [{ key: fp, up: 1, down: 0 }]);
    const taken = applyFeedback(one.state, [{ key: fp, up: 0, down: 0 }]);
    expect(applyFeedback(taken.state, [{ key: fp, up: 1, down: 0 }]).tallies).toEqual([]);
  });

  it('a dismissed finding stays dismissed when its file is renamed; a file-level finding of an unfinished file stands', () => {
    const first = rec({ findings: [finding()], change: change('h1') });
    const fp = first.next.findings[0]?.fingerprint as string;
    const state: ReviewState = { ...first.next, findings: [], dismissed: [fp] };
    const moved = { ...cart, path: 'App/Basket.swift', status: 'renamed' as const, previousPath: 'App/Cart.swift' };
    const again = rec({ findings: [finding({ file: 'App/Basket.swift' })], files: [moved], previous: state, change: change('h2') });
    expect(again.findings).toEqual([]);
    expect(again.dismissed).toBe(1);
    const fileLevel = rec({ findings: [finding({ line: 0, message: 'No tests.' })], change: change('h1') });
    const cut = rec({ findings: [], previous: fileLevel.next, change: change('h2'), unfinished: new Set(['App/Cart.swift']) });
    expect(cut.resolved).toEqual([]);
    expect(cut.findings).toHaveLength(1);
  });

  it('a carried finding moves to the first line of its code, never to a blank line above it', () => {
    const blankAbove = file(
      'App/Cart.swift',
      [
        '@@ -10,3 +10,5 @@ final class Cart {',
        '   func total() -> Int {',
        '+',
        '+    let key = "sk_live_x"',
        '     return items.count',
        '   }',
      ].join('\n'),
    );
    const first = rec({ findings: [finding()] });
    const moved = rec({ files: [blankAbove], previous: first.next, scope: { since: 'h1', unchanged: [] }, change: change('h2') });
    expect(moved.findings[0]?.line).toBe(12);
  });

  it('findings of a file now ignored, or of agents all turned off, leave the open findings without being resolved', () => {
    const first = rec({
      findings: [finding(), finding({ file: 'App/Other.swift', line: 2, category: 'docs', agents: ['documentation'] })],
      files: [cart, other],
    });
    const next = rec({
      files: [cart, other],
      previous: first.next,
      scope: { since: 'h1', unchanged: ['App/Cart.swift', 'App/Other.swift'] },
      change: change('h2'),
      retired: (f) => f.file === 'App/Cart.swift' || f.agents.every((a) => a === 'documentation'),
    });
    expect(next.findings).toEqual([]);
    expect(next.resolved).toEqual([]);
    expect(next.retired).toBe(2);
  });
});
