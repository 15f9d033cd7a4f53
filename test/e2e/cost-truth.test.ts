import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { toMicro } from '../../lambdas/core/budget.js';
import { RunSummarySchema } from '../../lambdas/core/contracts.js';
import { GatewayConfigSchema } from '../../lambdas/core/gateway-config.js';
import type { ExampleRepo } from '../../lib/local/example-repo.js';
import type { LocalRuntime, LocalRuntimeOptions } from '../../lib/local/runtime.js';
import { exampleInput, exampleRepo, testRuntime } from '../helpers.js';

/**
 * Cost truth (issue: "cost equals the ledger"): for every run, the cost the comment, the run
 * record, the report and the metrics show equals the run's settled spend in the budget ledger to
 * the micro-dollar — whether agents succeed, fail after paid calls, are refused by the budget,
 * fall back, or answer from the cache.
 */

let repo: ExampleRepo;
beforeAll(() => {
  repo = exampleRepo();
});

let rt: LocalRuntime | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
});

const usd = (n: number) => `$${n.toFixed(n > 0 && n < 0.0001 ? 6 : 4)}`;

/** Runs pr-review once and checks every reported cost against the ledger; returns the summary. */
async function runAndCompare(runId: string, options: Partial<LocalRuntimeOptions> = {}, existing?: LocalRuntime, full = false) {
  let comment = '';
  rt =
    existing ??
    (await testRuntime(repo, {
      ...options,
      onComment: (b) => {
        comment = b;
      },
    }));
  if (existing) existing.options.onComment = (b) => (comment = b);
  const costBefore = rt.metrics.totals.CostUsd ?? 0;
  const input = exampleInput(repo, runId);
  await rt.execute('pr-review', runId, full ? { ...input, change: { ...input.change, fullReview: true } } : input);
  const ledger = await rt.ledger.get(`run#${runId}`);
  const spentMicro = ledger?.spentMicro ?? 0;
  const record = await rt.runs.get(runId);
  const report = (await rt.artifacts.getJson(`runs/${runId}/report.json`)) as { summary: unknown };
  const summary = RunSummarySchema.parse(report.summary);

  // Run record, report and comment show the ledger's settled spend of this run, exactly.
  expect(toMicro(record?.costUsd ?? -1)).toBe(spentMicro);
  expect(toMicro(summary.costUsd)).toBe(spentMicro);
  expect(summary.agents.reduce((s, a) => s + toMicro(a.costUsd), 0)).toBe(spentMicro);
  expect(comment).toContain(`**${usd(summary.costUsd)}** |`);
  // The metrics count every settled call too.
  expect(toMicro((rt.metrics.totals.CostUsd ?? 0) - costBefore)).toBe(spentMicro);
  // Nothing is left reserved.
  expect(ledger?.openHolds ?? 0).toBe(0);
  return { summary, record, comment, spentMicro };
}

describe('e2e: the reported cost equals the settled spend in the ledger', () => {
  it('when every agent succeeds', async () => {
    const { summary, spentMicro } = await runAndCompare('cost-ok');
    expect(summary.status).toBe('SUCCEEDED');
    expect(spentMicro).toBeGreaterThan(0);
  });

  it('when one agent fails after paid calls (an answer that stays invalid after the repair prompt)', async () => {
    const { summary, comment, record } = await runAndCompare('cost-partial', { offline: { faults: { openai: 'invalid' } } });
    expect(summary.status).toBe('PARTIAL');
    const failed = summary.agents.find((a) => a.name === 'test-coverage');
    expect(failed).toMatchObject({ status: 'failed', calls: 2, repairs: 1 });
    expect(failed?.costUsd).toBeGreaterThan(0);
    expect(record?.status).toBe('PARTIAL');
    expect(comment).toMatch(/\*\*⚠️ PARTIAL\*\* — 1 of 4 agents failed: test-coverage \(ProviderRejectedError/);
  });

  it('when every agent fails after paid calls, and the run is FAILED', async () => {
    const { summary, spentMicro, record } = await runAndCompare('cost-failed', {
      offline: { faults: { openai: 'invalid', bedrock: 'invalid' } },
    });
    expect(summary.status).toBe('FAILED');
    expect(record?.status).toBe('FAILED');
    expect(spentMicro).toBeGreaterThan(0);
    for (const a of summary.agents.filter((x) => x.phase !== 'verify')) expect(a.calls, a.name).toBeGreaterThan(0);
    // No finding survived to check: the verifier made no call and cost nothing.
    expect(summary.agents.find((a) => a.phase === 'verify')).toMatchObject({ calls: 0, costUsd: 0 });
  });

  it('when the run budget refuses some agents', async () => {
    const { summary } = await runAndCompare('cost-budget', {
      gateway: GatewayConfigSchema.parse({ budgets: { perRunUsd: 0.05 }, retry: { baseDelayMs: 1, maxDelayMs: 5 } }),
    });
    expect(summary.agents.some((a) => a.status === 'failed' && a.calls === 0)).toBe(true);
  });

  it('when agents finish on their fallback after the primary failed', async () => {
    const { summary } = await runAndCompare('cost-fallback', { offline: { faults: { bedrock: 503 } } });
    expect(summary.agents.filter((a) => a.fallbackUsed).length).toBeGreaterThan(0);
  });

  it('when the same change is reviewed again from the response cache ($0)', async () => {
    const first = await runAndCompare('cost-cache-1');
    expect(first.spentMicro).toBeGreaterThan(0);
    // A full review (`/agentflow review --full`): an incremental one would review nothing again.
    const second = await runAndCompare('cost-cache-2', {}, rt, true);
    expect(second.spentMicro).toBe(0);
    expect(second.summary.agents.every((a) => a.cacheHits > 0 && a.calls === 0)).toBe(true);
  });
});
