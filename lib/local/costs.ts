import type { DynamoBreakerStore, DynamoBudgetLedger } from '../../lambdas/adapters/gateway-store.js';
import { describeBreaker } from '../../lambdas/core/breaker.js';
import { budgetScopes, fromMicro } from '../../lambdas/core/budget.js';
import type { BudgetConfig } from '../../lambdas/core/gateway-config.js';

/** One budget scope as `agentflow costs` shows it. Amounts in USD. */
export interface ScopeReport {
  scope: string;
  kind: string;
  limitUsd: number | null;
  /** Settled spend + open reservations. */
  committedUsd: number;
  spentUsd: number;
  reservedUsd: number;
  openReservations: number;
  /** committed / limit in percent, or null without a limit. */
  usedPercent: number | null;
}

/** Spend per provider and model in a month. */
export interface ModelCostReport {
  provider: string;
  model: string;
  calls: number;
  cacheHits: number;
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
}

/** What `agentflow costs --json` prints and `GET /costs` returns. */
export interface CostReport {
  month: string;
  scopes: ScopeReport[];
  models: ModelCostReport[];
  totalUsd: number;
}

/**
 * Reads budgets and monthly usage from the table. Configured project and global scopes of the
 * current day and month are listed even before their first call.
 */
export async function costReport(ledger: DynamoBudgetLedger, config: BudgetConfig, now = new Date()): Promise<CostReport> {
  const month = now.toISOString().slice(0, 7);
  const stored = await ledger.list();
  const byKey = new Map(stored.map((s) => [s.key, s]));
  const configured = [
    ...budgetScopes(config, { runId: '-', project: '-', now }).filter((s) => s.kind === 'global-month'),
    ...Object.keys(config.projects).flatMap((p) =>
      budgetScopes(config, { runId: '-', project: p, now }).filter((s) => s.kind === 'project-day' || s.kind === 'project-month'),
    ),
  ];
  for (const s of configured) {
    if (!byKey.has(s.key) && s.limitMicro !== undefined) {
      byKey.set(s.key, { key: s.key, kind: s.kind, limitMicro: s.limitMicro, committedMicro: 0, spentMicro: 0, openHolds: 0 });
    }
  }
  const scopes = [...byKey.values()]
    .sort((a, b) => a.key.localeCompare(b.key))
    .map((s) => ({
      scope: s.key,
      kind: s.kind,
      limitUsd: s.limitMicro === undefined ? null : fromMicro(s.limitMicro),
      committedUsd: fromMicro(s.committedMicro),
      spentUsd: fromMicro(s.spentMicro),
      reservedUsd: fromMicro(s.committedMicro - s.spentMicro),
      openReservations: s.openHolds,
      usedPercent: s.limitMicro ? Math.round((s.committedMicro / s.limitMicro) * 1000) / 10 : null,
    }));
  const models = (await ledger.listUsage(month))
    .map((u) => ({
      provider: u.provider,
      model: u.model,
      calls: u.calls,
      cacheHits: u.cacheHits,
      costUsd: fromMicro(u.costMicro),
      inputTokens: u.inputTokens,
      outputTokens: u.outputTokens,
      cachedTokens: u.cachedTokens,
    }))
    .sort((a, b) => b.costUsd - a.costUsd);
  return { month, scopes, models, totalUsd: fromMicro(models.reduce((n, m) => n + Math.round(m.costUsd * 1e6), 0)) };
}

/** Renders a {@link CostReport} as text tables. */
export function formatCostReport(r: CostReport): string {
  const usd = (n: number | null) => (n === null ? '—' : `$${n.toFixed(n !== 0 && Math.abs(n) < 0.01 ? 6 : 2)}`);
  const lines = [`Budgets (committed = spent + reserved)`, ''];
  lines.push(
    [
      'SCOPE'.padEnd(44),
      'LIMIT'.padStart(10),
      'COMMITTED'.padStart(12),
      'SPENT'.padStart(12),
      'RESERVED'.padStart(12),
      'USED'.padStart(7),
    ].join(' '),
  );
  for (const s of r.scopes) {
    lines.push(
      [
        s.scope.padEnd(44),
        usd(s.limitUsd).padStart(10),
        usd(s.committedUsd).padStart(12),
        usd(s.spentUsd).padStart(12),
        usd(s.reservedUsd).padStart(12),
        (s.usedPercent === null ? '—' : `${s.usedPercent}%`).padStart(7),
      ].join(' '),
    );
  }
  if (r.scopes.length === 0) lines.push('(no budgets used or configured yet)');
  lines.push('', `Spend by provider and model, ${r.month}`, '');
  lines.push(
    [
      'PROVIDER'.padEnd(18),
      'MODEL'.padEnd(16),
      'CALLS'.padStart(7),
      'CACHE HITS'.padStart(10),
      'INPUT'.padStart(10),
      'OUTPUT'.padStart(9),
      'COST'.padStart(12),
    ].join(' '),
  );
  for (const m of r.models) {
    lines.push(
      [
        m.provider.padEnd(18),
        m.model.padEnd(16),
        String(m.calls).padStart(7),
        String(m.cacheHits).padStart(10),
        String(m.inputTokens).padStart(10),
        String(m.outputTokens).padStart(9),
        usd(m.costUsd).padStart(12),
      ].join(' '),
    );
  }
  if (r.models.length === 0) lines.push('(no calls this month)');
  lines.push('', `Total ${r.month}: ${usd(r.totalUsd)}`);
  return lines.join('\n');
}

/** One breaker as `agentflow breakers` shows it. */
export interface BreakerReport {
  provider: string;
  model: string;
  state: string;
  detail: string;
  failures: number;
  calls: number;
  cooldownSeconds: number;
  openUntil: string | null;
  timesOpened: number;
  lastError: string | null;
}

/** Reads every circuit breaker from the table. */
export async function breakerReport(store: DynamoBreakerStore, now = Date.now()): Promise<BreakerReport[]> {
  return (await store.list())
    .map((b) => ({
      provider: b.provider,
      model: b.model,
      state: b.state,
      detail: describeBreaker(b, now),
      failures: b.failures,
      calls: b.calls,
      cooldownSeconds: b.cooldownMs / 1000,
      openUntil: b.openUntilMs ? new Date(b.openUntilMs).toISOString() : null,
      timesOpened: b.opened ?? 0,
      lastError: b.lastError ?? null,
    }))
    .sort((a, b) => `${a.provider}${a.model}`.localeCompare(`${b.provider}${b.model}`));
}

/** Renders breakers as a text table. */
export function formatBreakers(rows: readonly BreakerReport[]): string {
  if (rows.length === 0) return 'no circuit breakers yet (every provider is closed until it fails)';
  const lines = [['PROVIDER'.padEnd(18), 'MODEL'.padEnd(48), 'STATE'.padEnd(10), 'OPENED'.padStart(6), ' DETAIL'].join(' ')];
  for (const b of rows) {
    lines.push(
      [
        b.provider.padEnd(18),
        b.model.padEnd(48),
        b.state.padEnd(10),
        String(b.timesOpened).padStart(6),
        ` ${b.detail}${b.lastError ? ` — last error: ${b.lastError}` : ''}`,
      ].join(' '),
    );
  }
  return lines.join('\n');
}
