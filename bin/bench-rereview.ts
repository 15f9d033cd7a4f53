/**
 * Bench figures for incremental re-review (part of `npm run bench`): a 20-file pull request is
 * reviewed, then one file is pushed again (`synchronize`). Prints the re-review's tokens ÷ the
 * first review's (target ≤ 15 %), the inline comments the second review posts again (target 0),
 * the findings carried over, and that a fix resolves its finding on a third push.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ExecutionInput } from '../lambdas/core/contracts.js';
import { RunSummarySchema } from '../lambdas/core/contracts.js';
import { GatewayConfigSchema } from '../lambdas/core/gateway-config.js';
import { InlineReviewSchema } from '../lambdas/core/review.js';
import { freshRepo } from '../lib/local/example-repo.js';
import { LocalRuntime } from '../lib/local/runtime.js';
import { loadWorkspace } from '../lib/workspace.js';
import type { BenchResult } from './bench-plan.js';

/** Files in the pull request. */
export const REREVIEW_FILES = 20;

/** A Swift file of about 45 lines (a store with a few methods), two of them with problems the offline rules flag. */
const swift = (i: number, extra = '') =>
  [
    'import Foundation',
    '',
    `/// Loads and caches the items of feature ${i}.`,
    `final class Store${i} {`,
    '  private var cache: [String: Data] = [:]',
    '  private let session: URLSession',
    '',
    '  init(session: URLSession = .shared) {',
    '    self.session = session',
    '  }',
    '',
    '  func load() -> Data {',
    `    let url = URL(string: "https://api.example.com/v1/items/${i}")!`,
    '    let data = try! Data(contentsOf: url)',
    extra,
    '    return data',
    '  }',
    '',
    '  func cached(_ key: String) -> Data? {',
    '    cache[key]',
    '  }',
    '',
    '  func store(_ data: Data, for key: String) {',
    '    cache[key] = data',
    '  }',
    '',
    '  func clear() {',
    '    cache.removeAll()',
    '  }',
    '',
    '  func count() -> Int {',
    '    cache.count',
    '  }',
    '',
    '  func keys() -> [String] {',
    '    cache.keys.sorted()',
    '  }',
    '',
    '  func size() -> Int {',
    '    cache.values.reduce(0) { $0 + $1.count }',
    '  }',
    '}',
    '',
  ].join('\n');

export async function rereviewBench(record: (r: BenchResult) => void, work: string): Promise<void> {
  const dir = join(work, 'rereview-repo');
  const { git } = freshRepo(dir, '2026-01-05T10:00:00Z');
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  };
  git('init', '-q', '-b', 'main');
  write('README.md', '# bench\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'base');
  const base = git('rev-parse', 'HEAD');
  git('checkout', '-q', '-b', 'feature');
  for (let i = 0; i < REREVIEW_FILES; i++) write(`ios/Feature${i}/Store${i}.swift`, swift(i));
  git('add', '-A');
  git('commit', '-q', '-m', 'twenty files');
  const head1 = git('rev-parse', 'HEAD');
  // Push 2: one file gets one more line.
  write('ios/Feature3/Store3.swift', swift(3, '    print("loaded")'));
  git('commit', '-q', '-am', 'one more line');
  const head2 = git('rev-parse', 'HEAD');
  // Push 3: the force unwrap in Store3 is fixed.
  write(
    'ios/Feature3/Store3.swift',
    swift(3, '    print("loaded")').replace('let data = try! Data(contentsOf: url)', 'let data = (try? Data(contentsOf: url)) ?? Data()'),
  );
  git('commit', '-q', '-am', 'fix');
  const head3 = git('rev-parse', 'HEAD');

  const rt = await LocalRuntime.start({
    stateDir: join(work, 'state-rereview'),
    repoPath: dir,
    workspace: loadWorkspace(),
    persist: false,
    modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
    offline: { delayMs: 0, faults: {} },
    gateway: GatewayConfigSchema.parse({ cache: { enabled: false } }),
    print: () => undefined,
  });
  const input = (runId: string, head: string, action: string): ExecutionInput => ({
    runId,
    workflow: 'pr-review',
    change: {
      repository: 'acme/shop-apps',
      number: 42,
      title: 'bench re-review',
      author: 'bench',
      url: '',
      action,
      baseSha: base,
      headSha: head,
      baseRef: 'main',
      headRef: 'feature',
    },
  });
  const runs = [
    ['rr-1', head1, 'opened'],
    ['rr-2', head2, 'synchronize'],
    ['rr-3', head3, 'synchronize'],
  ] as const;
  const out: Array<{ tokens: number; keys: string[]; summary: ReturnType<typeof RunSummarySchema.parse>; resolved: number }> = [];
  try {
    for (const [id, head, action] of runs) {
      await rt.execute('pr-review', id, input(id, head, action));
      const report = (await rt.artifacts.getJson(`runs/${id}/report.json`)) as { summary: unknown };
      const summary = RunSummarySchema.parse(report.summary);
      const review = InlineReviewSchema.parse(await rt.artifacts.getJson(`runs/${id}/review.json`));
      out.push({
        tokens: summary.inputTokens + summary.outputTokens,
        keys: review.comments.map((c) => c.key),
        summary,
        resolved: review.resolved.length,
      });
    }
  } finally {
    await rt.stop();
  }
  const [first, second, third] = out as [(typeof out)[0], (typeof out)[0], (typeof out)[0]];
  const posted = new Set(first.keys);
  const duplicates =
    [...second.keys, ...third.keys].filter((k) => posted.has(k)).length + second.keys.filter((k) => third.keys.includes(k)).length;
  record({
    name: `re-review after a 1-file push to a ${REREVIEW_FILES}-file PR: first review`,
    value: first.tokens,
    unit: 'tokens',
    target: null,
  });
  record({ name: 're-review after a 1-file push: re-review', value: second.tokens, unit: 'tokens', target: null });
  record({
    name: 're-review tokens ÷ first review tokens',
    value: Math.round((second.tokens / Math.max(1, first.tokens)) * 1000) / 10,
    unit: '%',
    target: '≤ 15',
  });
  record({ name: 're-review: inline comments posted again (duplicates, 3 runs)', value: duplicates, unit: 'comments', target: '0' });
  record({
    name: 're-review: findings carried over without a new comment',
    value: (second.summary.incremental?.carried ?? 0) + (second.summary.incremental?.repeated ?? 0),
    unit: `of ${second.summary.findings}`,
    target: null,
  });
  record({ name: 're-review: findings resolved by the fix push', value: third.resolved, unit: 'findings', target: '≥ 1' });
}
