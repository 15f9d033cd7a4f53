import type { BreakerConfig } from './gateway-config.js';

/**
 * Circuit breaker per provider and model (DESIGN §6), kept in the table so every Lambda and
 * every local run sees one state.
 *
 * closed → open: `failureThreshold` counted failures (throttles, 5xx, timeouts) in the window, or
 * at least `failureRatio` of at least `minimumCalls` calls since the window's first failure (a
 * healthy breaker's successes are not written); a 401/403 opens it at once; a 400
 * does not count. open rejects without calling. When the cooldown has passed, exactly one caller
 * wins a conditional transition to half-open (with a lease) and probes: success closes the
 * breaker, failure reopens it with twice the cooldown (at most `maxCooldownSeconds`).
 */

export type BreakerStateName = 'closed' | 'open' | 'half-open';

/** A breaker's stored state. Times are ms since the epoch. */
export interface BreakerRecord {
  readonly key: string;
  readonly provider: string;
  readonly model: string;
  readonly state: BreakerStateName;
  readonly failures: number;
  readonly calls: number;
  readonly windowStartMs: number;
  /** Cooldown the breaker opened (or will reopen) with, in ms. */
  readonly cooldownMs: number;
  readonly openUntilMs?: number;
  readonly probeId?: string;
  readonly probeLeaseUntilMs?: number;
  readonly lastError?: string;
  readonly updatedAtMs?: number;
  /** How many times it opened. */
  readonly opened?: number;
}

/** The conditional writes a breaker needs; the DynamoDB adapter implements them on `BREAKER#` items. */
export interface BreakerStore {
  /** Consistent read; `undefined` when the breaker has never counted anything (closed). */
  get(key: string): Promise<BreakerRecord | undefined>;
  /**
   * open with `openUntil <= now`, or half-open with `probeLeaseUntil <= now` → half-open with this
   * probe and lease, as one conditional write. @returns true for the one caller that won
   */
  claimProbe(key: string, o: { nowMs: number; probeId: string; leaseUntilMs: number }): Promise<boolean>;
  /** Atomically counts a call (and a failure) in the current window, starting a new window when it has passed. */
  count(
    key: string,
    o: { provider: string; model: string; nowMs: number; windowMs: number; failed: boolean },
  ): Promise<{ failures: number; calls: number }>;
  /** closed (or, with `force`, any state but open) → open for `cooldownMs`. @returns true when this call opened it */
  trip(
    key: string,
    o: { provider: string; model: string; nowMs: number; cooldownMs: number; reason: string; force: boolean },
  ): Promise<boolean>;
  /** half-open held by `probeId` → open for `cooldownMs`. */
  reopen(key: string, o: { probeId: string; nowMs: number; cooldownMs: number; reason: string }): Promise<boolean>;
  /** half-open held by `probeId` → closed, counters and cooldown reset. */
  close(key: string, o: { probeId: string; nowMs: number; cooldownMs: number }): Promise<boolean>;
  list(): Promise<BreakerRecord[]>;
}

/** What the breaker lets a caller do. */
export type Admission =
  | {
      readonly kind: 'closed';
      readonly key: string;
      /**
       * Whether a success is counted: only while the window holds a failure (the failure ratio is
       * taken over the calls since the window's first failure). false: a healthy breaker, whose
       * successes change nothing, so none is written. @default true
       */
      readonly counting?: boolean;
    }
  | { readonly kind: 'probe'; readonly key: string; readonly probeId: string; readonly cooldownMs: number }
  | { readonly kind: 'rejected'; readonly key: string; readonly state: 'open' | 'half-open'; readonly retryAtMs?: number };

/** How a failed call counts: `counted` (throttle, 5xx, timeout), `auth` (401/403: open at once), `ignored` (400). */
export type FailureKind = 'counted' | 'auth' | 'ignored';

/** The breaker's key for a provider and model. */
export const breakerKey = (provider: string, modelId: string): string => `${provider}#${modelId}`;

/** Circuit breaker logic over a {@link BreakerStore}. */
export class CircuitBreaker {
  constructor(
    private readonly store: BreakerStore,
    private readonly config: BreakerConfig,
    private readonly clock: () => number,
    private readonly newId: () => string,
    /** How long a probe may take before another caller may probe, in ms. */
    private readonly probeLeaseMs: number,
  ) {}

  private get baseCooldownMs(): number {
    return this.config.cooldownSeconds * 1000;
  }

  /**
   * Asks whether a call to `provider`/`modelId` may go ahead. `preRead` is a record read by
   * the caller a moment ago (the gateway's cache + breaker read: saves a round trip); the transition to half-open is conditional either way.
   * @returns closed (go), probe (go; this caller is the one half-open probe) or rejected (skip this provider)
   */
  async admit(provider: string, modelId: string, preRead?: { record: BreakerRecord | undefined }): Promise<Admission> {
    const key = breakerKey(provider, modelId);
    const rec = preRead ? preRead.record : await this.store.get(key);
    const now = this.clock();
    if (!rec || rec.state === 'closed') {
      const failing = rec !== undefined && rec.failures > 0 && rec.windowStartMs > now - this.config.windowSeconds * 1000;
      return { kind: 'closed', key, counting: failing };
    }
    const due = rec.state === 'open' ? (rec.openUntilMs ?? 0) : (rec.probeLeaseUntilMs ?? 0);
    if (now < due) return { kind: 'rejected', key, state: rec.state, retryAtMs: due };
    const probeId = this.newId();
    const won = await this.store.claimProbe(key, { nowMs: now, probeId, leaseUntilMs: now + this.probeLeaseMs });
    return won
      ? { kind: 'probe', key, probeId, cooldownMs: rec.cooldownMs || this.baseCooldownMs }
      : { kind: 'rejected', key, state: 'half-open' };
  }

  /**
   * Records a successful call: a probe closes the breaker; a closed call counts towards the window
   * while the window holds a failure (see `Admission.counting`).
   */
  async onSuccess(a: Admission, provider: string, modelId: string): Promise<void> {
    if (a.kind === 'probe') {
      await this.store.close(a.key, { probeId: a.probeId, nowMs: this.clock(), cooldownMs: this.baseCooldownMs });
    } else if (a.kind === 'closed' && a.counting !== false) {
      await this.store.count(a.key, {
        provider,
        model: modelId,
        nowMs: this.clock(),
        windowMs: this.config.windowSeconds * 1000,
        failed: false,
      });
    }
  }

  /**
   * Records a failed call.
   * @returns true when this failure opened the breaker (for the BreakerOpened metric)
   */
  async onFailure(a: Admission, provider: string, modelId: string, kind: FailureKind, reason: string): Promise<boolean> {
    if (kind === 'ignored' || a.kind === 'rejected') return false;
    const now = this.clock();
    if (a.kind === 'probe') {
      const cooldownMs = Math.min(this.config.maxCooldownSeconds * 1000, a.cooldownMs * 2);
      return this.store.reopen(a.key, { probeId: a.probeId, nowMs: now, cooldownMs, reason });
    }
    const trip = (force: boolean) =>
      this.store.trip(a.key, { provider, model: modelId, nowMs: now, cooldownMs: this.baseCooldownMs, reason, force });
    if (kind === 'auth') return trip(true);
    const c = await this.store.count(a.key, {
      provider,
      model: modelId,
      nowMs: now,
      windowMs: this.config.windowSeconds * 1000,
      failed: true,
    });
    const ratioTripped = c.calls >= this.config.minimumCalls && c.failures / c.calls >= this.config.failureRatio;
    if (c.failures >= this.config.failureThreshold || ratioTripped) return trip(false);
    return false;
  }
}

/**
 * The state a record shows at `nowMs`: an open breaker past its cooldown is shown as
 * `half-open (due)`, since the next caller will probe.
 */
export function describeBreaker(r: BreakerRecord, nowMs: number): string {
  if (r.state === 'open') {
    const left = (r.openUntilMs ?? 0) - nowMs;
    return left > 0 ? `open, probe in ${Math.ceil(left / 1000)} s` : 'open, cooldown over (next call probes)';
  }
  if (r.state === 'half-open') return 'half-open, probe in flight';
  return `closed, ${r.failures} failure(s) / ${r.calls} call(s) in the window`;
}
