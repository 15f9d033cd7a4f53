import { BudgetExceededError, type BudgetScopeKind, BudgetUnavailableError } from './errors.js';
import type { BudgetConfig, ProjectLimits } from './gateway-config.js';

/**
 * Budgets (DESIGN §6): before every provider call the gateway reserves a worst-case estimate in
 * every scope, each with one conditional write; after the call it settles to the actual cost.
 *
 * Amounts are integer micro-dollars (1 USD = 1,000,000) so sums are exact in DynamoDB and in
 * JavaScript alike.
 */

/** Micro-dollars per USD. */
export const MICRO_PER_USD = 1_000_000;

/** USD → integer micro-dollars (rounded). */
export const toMicro = (usd: number): number => Math.round(usd * MICRO_PER_USD);
/** Integer micro-dollars → USD. */
export const fromMicro = (micro: number): number => micro / MICRO_PER_USD;

/** One budget a call counts against. `limitMicro` absent: tracked but unlimited. */
export interface BudgetScope {
  readonly kind: BudgetScopeKind;
  /** Stable key: `run#<runId>`, `project#<p>#day#<yyyy-mm-dd>`, `project#<p>#month#<yyyy-mm>`, `global#month#<yyyy-mm>`. */
  readonly key: string;
  readonly limitMicro?: number;
  /** When the scope's item may be deleted (TTL), seconds since the epoch. */
  readonly expiresAtSeconds: number;
}

/**
 * An open reservation in one or more scopes. The ledger stores it inside each scope item as the
 * member `<expiresAtMs>~<estimateMicro>~<id>` of a string set, so settling and releasing are
 * single conditional writes (`contains(holds, member)`) and expired ones can be found without a scan.
 */
export interface Hold {
  readonly id: string;
  readonly estimateMicro: number;
  /** After this instant (ms since the epoch) a sweep may release the hold: its call crashed. */
  readonly expiresAtMs: number;
}

/** Encodes a hold as its set member. */
export const holdMember = (h: Hold): string => `${h.expiresAtMs}~${h.estimateMicro}~${h.id}`;

/** Decodes a set member written by {@link holdMember}; `undefined` for anything else. */
export function parseHold(member: string): Hold | undefined {
  const m = /^(\d+)~(\d+)~(.+)$/.exec(member);
  return m ? { expiresAtMs: Number(m[1]), estimateMicro: Number(m[2]), id: m[3] as string } : undefined;
}

/** The result of one conditional reservation. `committedMicro` is the scope's value after (ok) or as found (refused). */
export type ReserveOutcome =
  | { ok: true; committedMicro: number }
  | {
      ok: false;
      committedMicro: number;
      expiredHolds: number;
      /** Settled spend as found (absent: unknown, treated as the committed amount). */
      spentMicro?: number;
    };

/** A scope's state as `agentflow costs` shows it. */
export interface BudgetStatus {
  readonly key: string;
  readonly kind: BudgetScopeKind;
  readonly limitMicro?: number;
  /** Settled spend + open reservations. */
  readonly committedMicro: number;
  /** Settled spend only. */
  readonly spentMicro: number;
  readonly openHolds: number;
}

/**
 * Where budgets are kept (DynamoDB `BUDGET#` items). Every method is one atomic or conditional
 * write, or one consistent read.
 * @throws Error (any) when the store cannot be reached; the guard turns it into BudgetUnavailableError
 */
export interface BudgetLedger {
  /** `ADD committed :estimate, holds :member` if `committed <= limit - estimate` (unconditional without a limit). */
  reserve(scope: BudgetScope, hold: Hold): Promise<ReserveOutcome>;
  /**
   * `ADD committed :(actual - estimate), spent :actual DELETE holds :member` if the hold is still
   * there; with `usage`, the same write adds the call to the month's per-model totals (the gateway
   * passes it for the global-month scope only, so a call is counted once, in the same write).
   * @returns false when already settled or released
   */
  settle(scope: BudgetScope, hold: Hold, actualMicro: number, usage?: UsageRecord): Promise<boolean>;
  /** `ADD committed :-estimate DELETE holds :member` if the hold is still there. @returns false when already gone */
  release(scope: BudgetScope, hold: Hold): Promise<boolean>;
  /** Releases the scope's holds whose expiry is before `nowMs`. @returns how many it released */
  sweep(scope: BudgetScope, nowMs: number): Promise<number>;
  /** Every project and global scope (run scopes are listed with their runs). */
  list(): Promise<BudgetStatus[]>;
  /** Adds a cache hit (or another call without a reservation) to the month's totals per provider and model. */
  recordUsage(usage: UsageRecord): Promise<void>;
}

/** One call's usage for the monthly per-provider, per-model totals. Cost in micro-USD. */
export interface UsageRecord {
  readonly month: string;
  readonly provider: string;
  readonly model: string;
  readonly costMicro: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cachedTokens: number;
  readonly cacheHit: boolean;
}

/** A month's totals for one provider and model, as `agentflow costs` shows them. */
export interface UsageTotals {
  readonly month: string;
  readonly provider: string;
  readonly model: string;
  readonly calls: number;
  readonly cacheHits: number;
  readonly costMicro: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cachedTokens: number;
}

/** Options of {@link budgetScopes}. */
export interface ScopeOptions {
  runId: string;
  project: string;
  /** A workflow's `budget.max_usd_per_run`; the lower of this and the config's `perRunUsd` applies. */
  maxUsdPerRun?: number | undefined;
  now: Date;
}

const DAY_S = 24 * 3600;

/**
 * The four scopes of a call: the run, the project's UTC day and month, and the global month.
 * Limits come from the environment's budget config and the workflow's per-run limit.
 */
export function budgetScopes(config: BudgetConfig, o: ScopeOptions): BudgetScope[] {
  const day = o.now.toISOString().slice(0, 10);
  const month = day.slice(0, 7);
  const nowS = Math.floor(o.now.getTime() / 1000);
  const project: ProjectLimits = config.projects[o.project] ?? config.defaultProject ?? {};
  const perRun = [config.perRunUsd, o.maxUsdPerRun].filter((v): v is number => v !== undefined);
  const limit = (usd: number | undefined) => (usd === undefined ? {} : { limitMicro: toMicro(usd) });
  return [
    {
      kind: 'run',
      key: `run#${o.runId}`,
      ...limit(perRun.length > 0 ? Math.min(...perRun) : undefined),
      expiresAtSeconds: nowS + 35 * DAY_S,
    },
    { kind: 'project-day', key: `project#${o.project}#day#${day}`, ...limit(project.dailyUsd), expiresAtSeconds: nowS + 40 * DAY_S },
    {
      kind: 'project-month',
      key: `project#${o.project}#month#${month}`,
      ...limit(project.monthlyUsd),
      expiresAtSeconds: nowS + 400 * DAY_S,
    },
    { kind: 'global-month', key: `global#month#${month}`, ...limit(config.global.monthlyUsd), expiresAtSeconds: nowS + 400 * DAY_S },
  ];
}

/** Token prices in USD per million tokens. */
export interface Price {
  readonly input: number;
  readonly output: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
}

/**
 * Worst-case cost of a call in micro-dollars: every input token at the dearest input rate (input,
 * cache write or cache read) plus `maxTokens` answer tokens at the output rate. USD per million
 * tokens × tokens = micro-dollars; rounded up.
 */
export function worstCaseMicro(inputTokens: number, maxTokens: number, price: Price): number {
  const inputRate = Math.max(price.input, price.cacheWrite, price.cacheRead);
  return Math.ceil(inputTokens * inputRate + maxTokens * price.output);
}

/** A reservation held in every scope of a call. */
export class Reservation {
  constructor(
    private readonly ledger: BudgetLedger,
    readonly scopes: readonly BudgetScope[],
    readonly hold: Hold,
  ) {}

  /**
   * Settles every scope to the actual cost (idempotent per hold). A scope that cannot be written
   * keeps the hold until a sweep releases it.
   * @returns true when this call applied the settlement (false: it was already settled)
   */
  async settle(actualMicro: number, usage?: UsageRecord): Promise<boolean> {
    const done = await Promise.all(
      this.scopes.map((s) => retry(() => this.ledger.settle(s, this.hold, actualMicro, s.kind === 'global-month' ? usage : undefined))),
    );
    return done.some(Boolean);
  }

  /** Releases the hold in every scope (idempotent); used when the call failed or was not made. */
  async release(): Promise<void> {
    await Promise.all(this.scopes.map((s) => retry(() => this.ledger.release(s, this.hold)).catch(() => false)));
  }
}

async function retry<T>(f: () => Promise<T>, tries = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (i >= tries) throw e;
      await new Promise((r) => setTimeout(r, 20 * 2 ** i));
    }
  }
}

/**
 * Reserves `hold` in every scope at once, each with one conditional write. When a scope refuses,
 * its expired holds (of crashed calls) are swept and it is tried once more; if it still refuses,
 * the scopes already reserved are released and {@link BudgetExceededError} names the scope.
 *
 * @throws BudgetExceededError when the estimate does not fit a scope's limit (nothing stays reserved)
 * @throws BudgetUnavailableError when the ledger cannot be read or written (fail closed; nothing stays reserved)
 */
export async function reserveBudget(ledger: BudgetLedger, scopes: readonly BudgetScope[], hold: Hold, nowMs: number): Promise<Reservation> {
  for (const s of scopes) {
    if (s.limitMicro !== undefined && hold.estimateMicro > s.limitMicro) {
      throw new BudgetExceededError(s.kind, s.key, fromMicro(s.limitMicro), 0, fromMicro(hold.estimateMicro));
    }
  }
  const results = await Promise.allSettled(
    scopes.map(async (s) => {
      let r = await ledger.reserve(s, hold);
      if (!r.ok && r.expiredHolds > 0) {
        await ledger.sweep(s, nowMs);
        r = await ledger.reserve(s, hold);
      }
      return r;
    }),
  );
  const reservation = new Reservation(ledger, scopes, hold);
  const refused = results.flatMap((r, i) =>
    r.status === 'fulfilled' && !r.value.ok ? [{ scope: scopes[i] as BudgetScope, outcome: r.value }] : [],
  )[0];
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!refused && !failed) return reservation;
  // Release only where the reservation was written (a refused or failed scope holds nothing).
  const held = scopes.filter((_, i) => {
    const r = results[i];
    return r?.status === 'fulfilled' && r.value.ok;
  });
  await new Reservation(ledger, held, hold).release();
  if (failed) {
    throw new BudgetUnavailableError(`budget table unavailable, no call was made: ${(failed.reason as Error)?.message ?? failed.reason}`, {
      cause: failed.reason,
    });
  }
  const { scope, outcome } = refused as NonNullable<typeof refused>;
  const spent = outcome.spentMicro ?? outcome.committedMicro;
  throw new BudgetExceededError(
    scope.kind,
    scope.key,
    fromMicro(scope.limitMicro ?? 0),
    fromMicro(outcome.committedMicro),
    fromMicro(hold.estimateMicro),
    spent + hold.estimateMicro <= (scope.limitMicro ?? 0),
  );
}
