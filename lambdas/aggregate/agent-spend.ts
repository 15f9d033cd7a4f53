import { fromMicro } from '../core/budget.js';
import { type AgentResult, MAX_ATTEMPTS_KEPT } from '../core/contracts.js';
import type { ArtifactStore } from '../core/ports.js';
import { readSpend } from '../core/spend.js';

/**
 * An agent's result with its spend taken from its spend record, which holds every invocation
 * (Step Functions retries, and agents whose failure the Map's Catch turned into a result with no
 * cost): the run's cost is then the sum of what the ledger settled. Micro-USD in `costMicro`.
 */
export async function withSpend(a: AgentResult, runId: string, artifacts: ArtifactStore): Promise<AgentResult & { costMicro: number }> {
  const spend = await readSpend(artifacts, runId, a.phase, a.name);
  if (spend.invocations.length === 0) return { ...a, costMicro: Math.round(a.costUsd * 1_000_000) };
  const sum = (f: (i: (typeof spend.invocations)[number]) => number) => spend.invocations.reduce((s, i) => s + f(i), 0);
  const costMicro = sum((i) => i.costMicro);
  return {
    ...a,
    costMicro,
    costUsd: fromMicro(costMicro),
    inputTokens: sum((i) => i.inputTokens),
    outputTokens: sum((i) => i.outputTokens),
    cachedTokens: sum((i) => i.cachedTokens),
    calls: sum((i) => i.calls),
    cacheHits: sum((i) => i.cacheHits),
    // A failed agent's result (from the Map's Catch) has no attempts: take them from its invocations.
    attempts: a.attempts.length > 0 ? a.attempts : spend.invocations.flatMap((i) => i.attempts).slice(-MAX_ATTEMPTS_KEPT),
    repairs: sum((i) => i.repairs),
    truncated: sum((i) => i.truncated),
    repaired: sum((i) => i.repairs) > 0,
  };
}
