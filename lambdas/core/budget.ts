import { BudgetExceededError, type BudgetScopeKind, BudgetUnavailableError } from './errors.js';
import type { BudgetConfig, ProjectLimits } from './gateway-config.js';

/**
 * Budgets (DESIGN §6): before every provider call the gateway holds a worst-case estimate in every
 * scope with a limit — a reservation of the call's own (one conditional write per scope), or room in
 * the agent's held budget ({@link BudgetPool}, reserved the same way, once for many calls); after
 * the call the actual cost is settled (or charged to the pool's hold). Scopes without a limit get
 * the actual cost only.
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
  /**
   * Settles a hold that calls were charged to ({@link BudgetLedger.charge}): `chargedMicro` of
   * `actualMicro` is already in `spent`; the hold's running total is removed with it.
   * `ADD committed :(actual - estimate - over), spent :(actual - charged) DELETE holds :member REMOVE used` if the hold is still there.
   * With `usages` (calls charged by this write, not by {@link BudgetLedger.charge}), the same write
   * adds them to the month's per-model totals.
   * @returns false when already settled or released
   */
  settleCharged(
    scope: BudgetScope,
    hold: Hold,
    actualMicro: number,
    chargedMicro: number,
    usages?: readonly UsageRecord[],
  ): Promise<boolean>;
  /**
   * Records one call's cost against a hold an agent keeps open for several calls (a {@link BudgetPool}):
   * `SET used = :to ADD spent :(to - from), committed :over` if the hold is still there and its
   * running total is `fromMicro` (so charges land once and in order). `committed` grows only by what
   * passes the hold's estimate (`over`), so it stays settled spend + open holds. With `usages` (the
   * calls charged by this write; none by default), the same write adds them to the month's per-model totals.
   * @returns false when not applied (the hold is gone, or this charge landed already)
   */
  charge(
    scope: BudgetScope,
    hold: Hold,
    c: { readonly fromMicro: number; readonly toMicro: number },
    usages?: readonly UsageRecord[],
  ): Promise<boolean>;
  /** Adds settled spend to a scope without a limit, where nothing is reserved: `ADD committed :a, spent :a` (with `usage`, the per-model totals too). */
  add(scope: BudgetScope, actualMicro: number, usage?: UsageRecord): Promise<void>;
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

/** Whether a scope has a limit: only those are reserved in; the others get the settled spend only. */
export const isLimited = (s: BudgetScope): boolean => s.limitMicro !== undefined;

/**
 * A reservation held for a call. The hold is written only in the scopes with a limit (the others
 * cannot refuse, so reserving there would be a write on the call's path for nothing); settling adds
 * the actual cost to every scope.
 */
export class Reservation {
  /** The scopes the hold was written to (those with a limit). */
  readonly held: readonly BudgetScope[];

  constructor(
    private readonly ledger: BudgetLedger,
    readonly scopes: readonly BudgetScope[],
    readonly hold: Hold,
  ) {
    this.held = scopes.filter(isLimited);
  }

  /**
   * Settles every scope to the actual cost (idempotent per hold in the held scopes). A scope that
   * cannot be written keeps the hold until a sweep releases it.
   * @returns true when this call applied the settlement (false: it was already settled)
   */
  async settle(actualMicro: number, usage?: UsageRecord): Promise<boolean> {
    const done = await Promise.all(
      this.scopes.map((s) => {
        const u = s.kind === 'global-month' ? usage : undefined;
        return isLimited(s)
          ? retry(() => this.ledger.settle(s, this.hold, actualMicro, u))
          : retry(() => this.ledger.add(s, actualMicro, u)).then(() => false);
      }),
    );
    return done.some(Boolean) || this.held.length === 0;
  }

  /** Releases the hold in every held scope (idempotent); used when the call failed or was not made. */
  async release(): Promise<void> {
    await Promise.all(this.held.map((s) => retry(() => this.ledger.release(s, this.hold)).catch(() => false)));
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
 * Reserves `hold` in every scope with a limit at once, each with one conditional write (a scope
 * without a limit cannot refuse: it gets the settled cost only). When a scope refuses,
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
  const limited = scopes.filter(isLimited);
  const results = await Promise.allSettled(
    limited.map(async (s) => {
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
    r.status === 'fulfilled' && !r.value.ok ? [{ scope: limited[i] as BudgetScope, outcome: r.value }] : [],
  )[0];
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!refused && !failed) return reservation;
  // Release only where the reservation was written (a refused or failed scope holds nothing).
  const held = limited.filter((_, i) => {
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

/** What a call holds while it runs: a {@link Reservation} of its own, or room in an agent's {@link BudgetPool}. */
export interface CallHold {
  readonly hold: Hold;
  /** Settles the call's actual cost (micro-USD); `usage` goes to the month's per-model totals. */
  settle(actualMicro: number, usage?: UsageRecord): Promise<unknown>;
  /** Gives the call's hold back: it failed or was not made. */
  release(): Promise<void>;
}

/** One hold of a pool: its reservation, what calls settled against it and what calls in flight hold. */
interface PoolHold {
  readonly reservation: Reservation;
  /** Settled cost of the calls charged to this hold, micro-USD. */
  usedMicro: number;
  /** Worst cases of the calls in flight on this hold, micro-USD. */
  inFlightMicro: number;
  /** What each held scope's `used` total holds in the ledger (charges landed), by scope key. */
  readonly charged: Map<string, number>;
  /** Charges are written one after another per hold (each is conditional on the previous total). */
  chain: Promise<unknown>;
  /**
   * Usage of calls whose charge was not sent because the pool was closing by then: the hold's
   * settlement writes it to the month's totals (the `global-month` scope) instead.
   */
  readonly unwritten: UsageRecord[];
}

/** How much a pool reserves when a call does not fit: this many times the call's worst case (less when the cap says so). */
export const POOL_GROWTH = 2;

/**
 * An agent's held share of the budget (issue 16): the agent's calls take their worst case from
 * holds it keeps open in every limited scope for its whole invocation, instead of one reservation
 * per call, so a call's critical path has no budget write once the pool has room.
 *
 * - A call that fits (room = estimate − settled − in flight, and the hold's lease covers the call)
 *   is admitted in memory. One that does not makes the pool reserve a new hold (through the same
 *   conditional writes and waiting as a call's own reservation) of {@link POOL_GROWTH} × its worst
 *   case — at most `capMicro` in all, never less than the call's worst case.
 * - Each call's actual cost is charged to its hold in the background (`charge`: spent grows with
 *   every call, so reports and other runs see it; a crash loses at most the call in flight), and
 *   to scopes without a limit by `add`.
 * - {@link close} waits for that bookkeeping and settles every hold to what it was used for: the
 *   rest of the hold is released. A hold whose agent crashed is released by a sweep after its
 *   lease (the agent's deadline + margin), keeping what was charged.
 *
 * No overspend: every call's worst case is inside a hold the ledger granted, and the pool never
 * lets the calls on a hold hold more than its estimate.
 *
 * @example
 * ```ts
 * const pool = gateway.openPool(scopes, { capMicro: shareLeft });
 * try {
 *   await gateway.complete({ ...call, pool });
 * } finally {
 *   await pool.close(); // bookkeeping landed, leftovers released
 * }
 * ```
 */
export class BudgetPool {
  private readonly holds: PoolHold[] = [];
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;
  /** A reservation made ahead of the first call ({@link prepare}), until it is answered. */
  private preparing: Promise<void> | undefined;
  /** Calls holding room now, and who waits for them all to end ({@link close}). */
  private inFlight = 0;
  private readonly idle: Array<() => void> = [];

  constructor(
    private readonly ledger: BudgetLedger,
    readonly scopes: readonly BudgetScope[],
    /** The most the pool holds in all (micro-USD), e.g. what is left of the agent's share. @default no cap */
    private capMicro = Number.POSITIVE_INFINITY,
  ) {}

  /** Lowers the most the pool may hold from now on (micro-USD), e.g. once an earlier invocation's spend is known. */
  limit(capMicro: number): void {
    this.capMicro = Math.min(this.capMicro, Math.max(0, capMicro));
  }

  /**
   * Reserves a first hold of `estimateMicro` now, while the agent still reads its input, so its
   * first call finds room (one conditional write per limited scope, not on the call's path). A
   * refusal or a table error is not an error here: the first call then reserves for itself.
   */
  prepare(hold: Hold, nowMs: number): void {
    if (this.closed || hold.estimateMicro <= 0 || this.holds.length > 0 || this.preparing) return;
    const amount = Math.min(hold.estimateMicro, this.capMicro);
    if (amount <= 0) return;
    const p = reserveBudget(this.ledger, this.scopes, { ...hold, estimateMicro: amount }, nowMs).then(
      (r) => {
        // Closed meanwhile (the agent ended before calling): give it back.
        if (this.closed) return r.release();
        this.holds.push({ reservation: r, usedMicro: 0, inFlightMicro: 0, charged: new Map(), chain: Promise.resolve(), unwritten: [] });
      },
      () => undefined,
    );
    this.preparing = p.then(() => {
      this.preparing = undefined;
    });
    this.track(p);
  }

  /** Waits for a reservation {@link prepare} made, if one is still unanswered. */
  async ready(): Promise<void> {
    await this.preparing;
  }

  /** False once {@link close} was called: later calls reserve for themselves. */
  get open(): boolean {
    return !this.closed;
  }

  /** Micro-USD held in all (estimates of the open holds). */
  get heldMicro(): number {
    return this.holds.reduce((s, h) => s + h.reservation.hold.estimateMicro, 0);
  }

  /** How much to reserve for a call of `estimateMicro` that fits in no hold. */
  growth(estimateMicro: number): number {
    return Math.max(estimateMicro, Math.min(POOL_GROWTH * estimateMicro, this.capMicro - this.heldMicro));
  }

  /**
   * Admits a call of `estimateMicro` on a hold with room whose lease lasts until `leaseNeededMs`.
   * @returns the call's hold, or undefined when none has room (reserve more: {@link add})
   */
  fit(estimateMicro: number, leaseNeededMs: number): CallHold | undefined {
    if (this.closed) return undefined;
    const h = this.holds.find(
      (p) =>
        p.reservation.hold.expiresAtMs >= leaseNeededMs &&
        p.usedMicro + p.inFlightMicro + estimateMicro <= p.reservation.hold.estimateMicro,
    );
    return h ? this.ticket(h, estimateMicro) : undefined;
  }

  /** Adds a reservation the pool's caller made (see {@link growth}) and admits the call of `estimateMicro` on it. */
  add(reservation: Reservation, estimateMicro: number): CallHold {
    // Closed while the reservation was made: it is the call's own (settled by the call), not the pool's.
    if (this.closed) return reservation;
    const h: PoolHold = { reservation, usedMicro: 0, inFlightMicro: 0, charged: new Map(), chain: Promise.resolve(), unwritten: [] };
    this.holds.push(h);
    return this.ticket(h, estimateMicro);
  }

  /**
   * Settles the holds no call is using now (to what they were used for) and drops them from the
   * pool, so their unused room is free again: before the pool reserves more when a reservation was
   * refused (its own idle room must not be what refuses it).
   */
  async releaseIdle(): Promise<void> {
    const idle = this.holds.filter((h) => h.inFlightMicro === 0);
    if (idle.length === 0) return;
    for (const h of idle) this.holds.splice(this.holds.indexOf(h), 1);
    await Promise.all(idle.map((h) => this.settle(h)));
  }

  /**
   * Settles one hold to what its calls used (after its charges), releasing the rest: the calls not
   * charged yet are charged by the same write, with their usage.
   */
  private async settle(h: PoolHold): Promise<void> {
    await h.chain;
    const { reservation } = h;
    const usages = h.unwritten.splice(0);
    await Promise.all(
      reservation.held.map((s) => {
        const u = s.kind === 'global-month' ? usages : [];
        const charged = h.charged.get(s.key) ?? 0;
        return retry(() => this.ledger.settleCharged(s, reservation.hold, h.usedMicro, charged, u)).catch(async () => {
          // The settlement did not land: the calls it would have charged are charged on their own, so
          // the hold's sweep keeps their cost (a charge finding the hold settled after all does nothing).
          if (charged >= h.usedMicro) return false;
          return retry(() => this.ledger.charge(s, reservation.hold, { fromMicro: charged, toMicro: h.usedMicro }, u)).catch(() => false);
        });
      }),
    );
  }

  /** Runs bookkeeping of a call made on the pool off the call's path; {@link close} waits for it. */
  track(work: Promise<unknown>): void {
    const p = work.catch(() => undefined);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Waits for the bookkeeping of every call made so far (charges, breaker counts, slot releases, cache stores). */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /**
   * Waits for the pool's bookkeeping, then settles each hold to the cost of the calls charged to
   * it, releasing the rest. Idempotent; later calls on the pool reserve for themselves.
   */
  async close(): Promise<void> {
    this.closed = true;
    // Calls still in flight settle on their holds first (else their cost would miss the settlement).
    while (this.inFlight > 0) await new Promise<void>((r) => this.idle.push(r));
    // Each hold is settled once its own charges have landed, beside the rest of the bookkeeping
    // (costs added to the scopes without a limit, breaker counts, slot releases), which it does not need.
    await Promise.all([this.drain(), ...this.holds.splice(0).map((h) => this.settle(h))]);
  }

  private ticket(h: PoolHold, estimateMicro: number): CallHold {
    h.inFlightMicro += estimateMicro;
    this.inFlight++;
    let open = true;
    const end = () => {
      if (!open) return false;
      open = false;
      h.inFlightMicro -= estimateMicro;
      this.inFlight--;
      if (this.inFlight === 0) for (const r of this.idle.splice(0)) r();
      return true;
    };
    return {
      hold: h.reservation.hold,
      settle: async (actualMicro, usage) => {
        if (!end()) return;
        h.usedMicro += actualMicro;
        const to = h.usedMicro;
        const { reservation } = h;
        // Charges to the held scopes in order (each conditional on the last total); the scopes
        // without a limit get the cost added. A charge whose turn comes once the pool is closing is
        // not sent: the hold's settlement, next in line, writes it (one write per scope, not two).
        h.chain = h.chain.then(() => {
          if (this.closed) {
            if (usage) h.unwritten.push(usage);
            return undefined;
          }
          return Promise.all(
            reservation.held.map(async (s) => {
              const u = s.kind === 'global-month' && usage ? [usage] : [];
              const landed = await retry(() =>
                this.ledger.charge(s, reservation.hold, { fromMicro: h.charged.get(s.key) ?? 0, toMicro: to }, u),
              ).catch(() => false);
              if (landed) h.charged.set(s.key, to);
            }),
          );
        });
        this.track(h.chain);
        const unlimited = this.scopes.filter((s) => !isLimited(s));
        this.track(
          Promise.all(unlimited.map((s) => retry(() => this.ledger.add(s, actualMicro, s.kind === 'global-month' ? usage : undefined)))),
        );
      },
      release: async () => {
        end();
      },
    };
  }
}
