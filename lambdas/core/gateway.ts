import { createHash } from 'node:crypto';
import type { AnswerFormat } from './answer-format.js';
import { type Admission, type BreakerRecord, breakerKey, type CircuitBreaker, type FailureKind } from './breaker.js';
import {
  type BudgetLedger,
  BudgetPool,
  type BudgetScope,
  type CallHold,
  fromMicro,
  type Hold,
  type Reservation,
  reserveBudget,
  toMicro,
  type UsageRecord,
  worstCaseMicro,
} from './budget.js';
import type { ModelRef } from './contracts.js';
import {
  BudgetExceededError,
  BudgetUnavailableError,
  CircuitOpenError,
  PriceUnknownError,
  ProviderAuthError,
  ProviderRejectedError,
  ProviderThrottledError,
  ProviderTimeoutError,
  ProviderUnavailableError,
} from './errors.js';
import type { GatewayConfig, RateLimit } from './gateway-config.js';
import { DEFAULT_RATE_LIMITS } from './gateway-config.js';
import type { ChatMessage, ModelResponse, ProviderTable, TokenUsage, ToolCall, ToolSpec } from './ports.js';
import { costUsd } from './pricing.js';
import { withoutBoundary } from './prompt.js';
import { requestTokens, TOKENIZER_OF, type TokenizerFamily } from './tokenizer.js';

/**
 * The model gateway: every model call of every agent goes through {@link ModelGateway.complete},
 * which walks the agent's provider chain (primary, then fallbacks) and for each candidate:
 *
 * 1. fails closed on a model without a price (`PriceUnknownError`, next candidate);
 * 2. reads the response cache and the candidate's circuit breaker in one round trip (a consistent
 *    `BatchGetItem` in DynamoDB), asking for a rate-limit slot at the same time; a cached answer
 *    costs $0; an open breaker (or half-open with a probe in flight) skips the candidate;
 * 3. without a slot, waits for one (concurrency and a token bucket per provider) until the deadline;
 * 4. holds the worst-case cost (input counted with the provider's tokenizer, output at
 *    `maxTokens`) in every scope with a limit: from the agent's held budget ({@link BudgetPool},
 *    `GatewayCall.pool`) when it has room — no write — else with one conditional write per scope.
 *    A refusal that only calls in flight cause waits for them to settle; any other moves to a
 *    cheaper candidate or ends with `BudgetExceededError`;
 * 5. calls the provider with a timeout; on a retryable error retries with exponential backoff and
 *    full jitter while time is left, asking the breaker again before every retry (and before a
 *    try that waited for its slot, or whose slot says a call failed since the read), so callers
 *    admitted before it opened stop sending; then moves to the next candidate;
 * 6. settles the budget to the actual cost, counts the breaker outcome, gives the slot back, stores
 *    the answer in the cache and emits metrics — after the answer has returned, for a call on a
 *    pool (`pool.close()` waits for it), before it otherwise.
 *
 * On a pool, a call with room sends 2 DynamoDB requests before its answer (the read and the slot),
 * in one round trip.
 *
 * Every attempt (provider, model, outcome, error, ms) is returned, and on failure appended to the
 * error's message, so reports show what happened.
 */

/** One try of one candidate, as reports show it. */
export interface Attempt {
  readonly provider: string;
  readonly model: string;
  readonly outcome: 'ok' | 'cache-hit' | 'error' | 'skipped';
  /** Error name and a short message for `error` / `skipped`. */
  readonly error?: string;
  readonly ms: number;
}

/** A cached answer (DynamoDB `CACHE#<sha256>`). */
export interface CachedAnswer {
  readonly text: string;
  readonly usage: TokenUsage;
  readonly createdAtMs: number;
  /** The stand-in server that gave the answer (the offline model), so a cached answer still says so. */
  readonly servedBy?: string;
}

/** The response cache: answers by request hash, with an expiry (read through {@link GatewayReads}). */
export interface ResponseCache {
  put(key: string, answer: CachedAnswer, expiresAtMs: number): Promise<void>;
}

/**
 * Reads a cached answer and a circuit breaker's record in one round trip (the DynamoDB adapter: one
 * consistent `BatchGetItem`), before every try of a candidate.
 */
export interface GatewayReads {
  /**
   * @param cacheKey the request's cache key, or undefined when the cache is not used
   * @returns the answer when cached and not expired at `nowMs`, and the breaker's record (undefined: never counted, closed)
   * @throws Error when the table cannot be read (the gateway fails closed: no call)
   */
  read(
    cacheKey: string | undefined,
    breakerKey: string,
    nowMs: number,
  ): Promise<{ hit: CachedAnswer | undefined; breaker: BreakerRecord | undefined }>;
}

/** A held concurrency slot of a provider's rate limit. */
export interface SlotHolder {
  readonly id: string;
  /** After this instant (ms) the slot counts as abandoned (its caller crashed). */
  readonly leaseUntilMs: number;
}

/**
 * The answer to a slot request: ok, or which limit is full and how long to wait before asking again (ms).
 * `failedAtMs`: when a call of the provider last failed and gave its slot back (epoch ms, as the
 * slot's write read it; absent: never) — the gateway reads the breaker again when that is after its read.
 */
export type AcquireOutcome = { ok: true; failedAtMs?: number } | { ok: false; reason: 'concurrency' | 'rate'; waitMs: number };

/** Provider rate limits kept in the table (`RATE#<provider>`): a token bucket and the set of calls in flight. */
export interface RateLimitStore {
  /**
   * Takes a token from the provider's bucket (capacity: one minute's worth) and adds `holder` to its
   * in-flight set if it holds fewer than `limit.maxConcurrency` — both or neither. Refills the bucket
   * and sweeps abandoned holders when the first try is refused.
   */
  acquire(provider: string, holder: SlotHolder, limit: RateLimit, nowMs: number): Promise<AcquireOutcome>;
  /**
   * Gives a slot back; with `refund`, its token too (the call it was taken for was not made); with
   * `failedAtMs`, records that the call failed then (epoch ms; its failure counted by the breaker first).
   */
  leave(provider: string, holder: SlotHolder, o?: { readonly refund?: boolean; readonly failedAtMs?: number }): Promise<void>;
}

/** Names of the gateway's metrics (Powertools Metrics / EMF). */
export type GatewayMetricName =
  | 'CostUsd'
  | 'InputTokens'
  | 'OutputTokens'
  | 'CachedTokens'
  | 'CacheHit'
  | 'BudgetRejected'
  | 'BreakerOpened'
  | 'FallbackUsed'
  | 'ProviderLatency';

/** Dimensions of every gateway metric. */
export interface GatewayDimensions {
  readonly workflow: string;
  readonly agent: string;
  readonly provider: string;
  readonly model: string;
  readonly project: string;
}

/** Where the gateway's metrics go (Powertools Metrics in Lambda; counters locally). */
export interface GatewayMetrics {
  record(dimensions: GatewayDimensions, values: Partial<Record<GatewayMetricName, number>>): void;
}

/** What an agent asks the gateway for. */
export interface GatewayCall {
  /** The primary model, then its fallbacks, in order. */
  readonly candidates: readonly ModelRef[];
  readonly system: string;
  readonly messages: readonly ChatMessage[];
  /** Upper bound on answer tokens. */
  readonly maxTokens: number;
  readonly temperature: number;
  /** Budget scopes this call counts against (see `budgetScopes`). */
  readonly scopes: readonly BudgetScope[];
  /** Use the response cache. @default true */
  readonly cache?: boolean;
  /** Only answers this accepts are cached (e.g. ones that parse). @default every answer */
  readonly cacheIf?: (text: string) => boolean;
  /**
   * The shape the answer must have, enforced natively where the candidate model can (see
   * `ModelRequest.answerFormat`); part of the cache key. @default - none: the prompt describes it
   */
  readonly answerFormat?: AnswerFormat;
  readonly labels: { readonly workflow: string; readonly agent: string; readonly project: string };
  /** No try starts after this instant (ms since the epoch); tries are cut to the time left. */
  readonly deadlineMs: number;
  /**
   * The request's input tokens per tokenizer family when the caller counted them already
   * (`requestTokens` of the same system and messages), so the prompt is tokenized once per call.
   * @default counted here
   */
  readonly inputTokens?: Partial<Record<TokenizerFamily, number>>;
  /** Tools the model may call (a tool loop: see `core/tool-loop.ts`); part of the cache key and the reservation. @default none */
  readonly tools?: readonly ToolSpec[];
  /**
   * The agent's held budget ({@link ModelGateway.openPool}, same `scopes`): the call's worst case is
   * taken from it in memory when it has room, and the call's bookkeeping after the answer (charge,
   * breaker count, slot release, cache store) runs off the answer's path until `pool.close()`.
   * @default none: the call reserves in every limited scope and settles before it returns
   */
  readonly pool?: BudgetPool;
}

/** The gateway's answer. Costs in USD. */
export interface GatewayAnswer {
  readonly text: string;
  /** The tools the model asked for instead of (or besides) answering. */
  readonly toolCalls?: readonly ToolCall[];
  readonly usage: TokenUsage;
  /** The candidate that answered. */
  readonly model: ModelRef;
  readonly costUsd: number;
  /** The cost as settled in the budget ledger, in integer micro-USD (0 for a cache hit): what run totals add up. */
  readonly costMicro: number;
  /** The reservation the call held (worst case), in USD; 0 for a cache hit. */
  readonly estimateUsd: number;
  /** Input tokens the reservation counted (tokenizer estimate + chat overhead); 0 for a cache hit. */
  readonly estimatedInputTokens: number;
  /** The answer was cut at `maxTokens`. */
  readonly truncated: boolean;
  readonly cacheHit: boolean;
  readonly fallbackUsed: boolean;
  readonly attempts: readonly Attempt[];
  readonly servedBy?: string;
}

/** The gateway's collaborators. */
export interface GatewayDeps {
  readonly providers: ProviderTable;
  readonly ledger: BudgetLedger;
  readonly breaker: CircuitBreaker;
  readonly cache: ResponseCache;
  readonly limits: RateLimitStore;
  readonly metrics: GatewayMetrics;
  readonly config: GatewayConfig;
  /** The cache and breaker reads of a try, in one round trip. */
  readonly reads: GatewayReads;
  /** @default Date.now */
  readonly clock?: () => number;
  /** @default setTimeout-based */
  readonly sleep?: (ms: number) => Promise<void>;
  /** @default Math.random */
  readonly random?: () => number;
  /** @default crypto.randomUUID */
  readonly newId?: () => string;
}

/**
 * SHA-256 over provider, model, parameters, the answer format's name (with the model's
 * `structuredOutput`, so an answer is never served across formats), the tools offered and the full
 * prompt (tool calls and results included): the response cache key. The random data boundary of a
 * user message does not count (`withoutBoundary`).
 */
export function cacheKey(
  model: ModelRef,
  call: Pick<GatewayCall, 'system' | 'messages' | 'maxTokens' | 'temperature' | 'answerFormat' | 'tools'>,
): string {
  const messages = call.messages.map((m) => ({ ...m, content: withoutBoundary(m.content) }));
  // Without a format or tools the material is what it was before they existed (earlier keys stay valid).
  const format = call.answerFormat ? [call.answerFormat.name, model.structuredOutput ?? 'prompt'] : [];
  const tools = call.tools && call.tools.length > 0 ? [{ tools: call.tools }] : [];
  const material = JSON.stringify([
    model.provider,
    model.modelId,
    call.maxTokens,
    call.temperature,
    call.system,
    messages,
    ...format,
    ...tools,
  ]);
  return createHash('sha256').update(material).digest('hex');
}

/**
 * Runs `work` once the current answer has been handed back: after the caller's continuation (its
 * promise reactions) has run, in the event loop's next check phase. Its CPU (building and sending
 * the bookkeeping's requests) is then not spent between the provider's answer and the caller's.
 */
const afterAnswer = <T>(work: () => Promise<T>): Promise<T> => new Promise<void>((ok) => setImmediate(ok)).then(work);

const short = (e: unknown): string => {
  const err = e as Error;
  return `${err.name}: ${err.message}`.slice(0, 200);
};

/** How a provider error counts for the breaker: throttles, 5xx and timeouts count; 401/403 open at once; 400 does not count. */
export function failureKind(e: unknown): FailureKind {
  if (e instanceof ProviderAuthError) return 'auth';
  if (e instanceof ProviderThrottledError || e instanceof ProviderUnavailableError || e instanceof ProviderTimeoutError) return 'counted';
  return 'ignored';
}

const isRetryable = (e: unknown) => failureKind(e) === 'counted';

/** See the module docstring. */
export class ModelGateway {
  private readonly clock: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly newId: () => string;

  constructor(private readonly deps: GatewayDeps) {
    this.clock = deps.clock ?? Date.now;
    this.sleep = deps.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = deps.random ?? Math.random;
    this.newId = deps.newId ?? (() => crypto.randomUUID());
  }

  /**
   * Answers one request through the candidate chain.
   *
   * @throws BudgetExceededError when a scope's limit would be passed and no cheaper candidate is left (no call made)
   * @throws BudgetUnavailableError when the budget table cannot be used (fail closed, no call made)
   * @throws ProviderRejectedError on a 400 from the provider (not retried, no fallback: the request itself is at fault)
   * @throws CircuitOpenError when every candidate's breaker is open
   * @throws PriceUnknownError when no candidate has a price
   * @throws ProviderThrottledError | ProviderUnavailableError | ProviderTimeoutError | ProviderAuthError
   *   when every candidate failed (the last error, with all attempts in its message)
   */
  async complete(call: GatewayCall): Promise<GatewayAnswer> {
    const attempts: Attempt[] = [];
    let last: unknown;
    for (const [index, model] of call.candidates.entries()) {
      const dims: GatewayDimensions = { ...call.labels, provider: model.provider, model: model.alias };
      const t0 = this.clock();
      const skip = (e: Error) => {
        attempts.push({ provider: model.provider, model: model.alias, outcome: 'skipped', error: short(e), ms: this.clock() - t0 });
        last = e;
      };
      if (!model.price) {
        skip(new PriceUnknownError(`${model.alias} has no price in workflows/models.yml; it is not called`));
        continue;
      }
      const useCache = (call.cache ?? true) && this.deps.config.cache.enabled;
      const key = useCache ? cacheKey(model, call) : undefined;
      // The cache lookup and the breaker read: one round trip for both. The rate-limit slot is asked
      // for at the same time (one try, no waiting), so a call that goes ahead has both after one
      // round trip; a cache hit or an open breaker gives it back.
      const early = this.trySlot(model.provider, this.leaseFrom(call));
      const readAtMs = this.clock();
      const { hit, breaker } = await this.read(model, key);
      // A slot taken for a call that is not made goes back with its token.
      const giveBack = async () => {
        const slot = await early;
        if (slot) await this.deps.limits.leave(model.provider, slot.holder, { refund: true }).catch(() => undefined);
      };
      if (hit) {
        attempts.push({ provider: model.provider, model: model.alias, outcome: 'cache-hit', ms: this.clock() - t0 });
        this.deps.metrics.record(dims, { CacheHit: 1, CostUsd: 0, FallbackUsed: index > 0 ? 1 : 0 });
        const counted = () => Promise.all([this.usage(model, hit.usage, 0, true), giveBack()]);
        if (call.pool?.open) call.pool.track(afterAnswer(counted));
        else await counted();
        return {
          text: hit.text,
          usage: hit.usage,
          model,
          costUsd: 0,
          costMicro: 0,
          estimateUsd: 0,
          estimatedInputTokens: 0,
          truncated: false,
          cacheHit: true,
          fallbackUsed: index > 0,
          attempts,
          ...(hit.servedBy ? { servedBy: hit.servedBy } : {}),
        };
      }
      let admission: Admission;
      try {
        admission = await this.admit(model, breaker);
      } catch (e) {
        await giveBack();
        throw e;
      }
      if (admission.kind === 'rejected') {
        await giveBack();
        skip(new CircuitOpenError(`${model.provider}/${model.alias}: circuit breaker ${admission.state}`));
        continue;
      }
      // An answer that asks for tools is not cached: the cache keeps text, and the tools' results differ per run.
      const store = (a: GatewayAnswer): Promise<void> =>
        key !== undefined && !a.toolCalls?.length && (call.cacheIf?.(a.text) ?? true)
          ? this.deps.cache
              .put(
                key,
                { text: a.text, usage: a.usage, createdAtMs: this.clock(), ...(a.servedBy ? { servedBy: a.servedBy } : {}) },
                this.clock() + this.deps.config.cache.ttlHours * 3600_000,
              )
              .catch(() => undefined)
          : Promise.resolve();
      // The read and the slot's write are served side by side; what the slot says of the provider's
      // last failure decides whether the read stands (tryCandidate).
      const slot = await early;
      const taken = slot ? { ...slot, used: false } : undefined;
      let outcome: Awaited<ReturnType<ModelGateway['tryCandidate']>>;
      try {
        outcome = await this.tryCandidate(call, model, admission, dims, attempts, store, taken, readAtMs);
      } finally {
        // The first try did not start (no time left, an error before it): the early slot goes back.
        if (taken && !taken.used) await this.deps.limits.leave(model.provider, taken.holder, { refund: true }).catch(() => undefined);
      }
      if (outcome.ok) {
        const a = outcome.answer;
        this.deps.metrics.record(dims, {
          CostUsd: a.costUsd,
          InputTokens: a.usage.inputTokens + a.usage.cacheReadTokens + a.usage.cacheWriteTokens,
          OutputTokens: a.usage.outputTokens,
          CachedTokens: a.usage.cacheReadTokens,
          CacheHit: 0,
          FallbackUsed: index > 0 ? 1 : 0,
          ProviderLatency: outcome.latencyMs,
        });
        return { ...a, fallbackUsed: index > 0 };
      }
      last = outcome.error;
      if (outcome.error instanceof BudgetExceededError) {
        this.deps.metrics.record(dims, { BudgetRejected: 1 });
        // A refused reservation moves on to a cheaper fallback (one whose worst case is lower); a
        // dearer one would be refused too.
        const cheaper = call.candidates.slice(index + 1).some((c) => c.price && worstCaseOf(call, c) < worstCaseOf(call, model));
        if (!cheaper) throw withAttempts(outcome.error, attempts);
        continue;
      }
      if (outcome.stop) throw withAttempts(outcome.error, attempts);
    }
    if (attempts.length > 0 && attempts.every((a) => a.error?.startsWith('CircuitOpenError'))) {
      throw withAttempts(new CircuitOpenError('every provider of this agent has an open circuit breaker; no call was made'), attempts);
    }
    throw withAttempts(last ?? new ProviderUnavailableError('no candidate model', 'none'), attempts);
  }

  /**
   * An agent's held budget in `scopes` (see {@link BudgetPool}): give it to every call of the agent
   * (`GatewayCall.pool`) and close it when the agent ends.
   * @param o.capMicro the most the pool may hold in all (micro-USD), e.g. what is left of the agent's share
   * @param o.prepare a first hold to reserve now (e.g. the agent's first call's worst case, twice: `POOL_GROWTH`), so that call finds room
   */
  openPool(
    scopes: readonly BudgetScope[],
    o: { readonly capMicro?: number; readonly prepare?: { readonly estimateMicro: number; readonly deadlineMs: number } } = {},
  ): BudgetPool {
    const pool = new BudgetPool(this.deps.ledger, scopes, o.capMicro);
    if (o.prepare) {
      // Held like the pool's other holds: until the agent's deadline, plus the margin.
      pool.prepare(
        { id: this.newId(), estimateMicro: o.prepare.estimateMicro, expiresAtMs: o.prepare.deadlineMs + LEASE_MARGIN_MS },
        this.clock(),
      );
    }
    return pool;
  }

  /** The cached answer (when `key` is given) and the candidate's breaker record, in one round trip. */
  private async read(model: ModelRef, key: string | undefined): Promise<{ hit: CachedAnswer | undefined; breaker: BreakerRead }> {
    try {
      const r = await this.deps.reads.read(key, breakerKey(model.provider, model.modelId), this.clock());
      return { hit: r.hit, breaker: { ok: true, record: r.breaker } };
    } catch (e) {
      // The breaker could not be read: no call (the admission says so); a cache that cannot be read is a miss.
      return { hit: undefined, breaker: { ok: false, error: e } };
    }
  }

  /** What the breaker lets this try do, from a record just read. @throws BudgetUnavailableError when the table could not be used (no call) */
  private async admit(model: ModelRef, read: BreakerRead): Promise<Admission> {
    try {
      if (!read.ok) throw read.error;
      return await this.deps.breaker.admit(model.provider, model.modelId, { record: read.record });
    } catch (e) {
      throw new BudgetUnavailableError(`gateway table unavailable (circuit breaker), no call was made: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /**
   * Tries one candidate up to `attemptsPerProvider` times (a probe: once). Every try consults the
   * breaker (the first with the cache lookup, retries and tries that waited for a rate-limit slot
   * with a read of their own), so callers admitted before it opened stop sending. Before each try
   * the rate-limit slot and the budget hold are taken side by side. After a success, the
   * settlement, breaker count, slot release and cache store are written side by side: before the
   * answer returns, or in the background for a call on an agent's pool.
   */
  private async tryCandidate(
    call: GatewayCall,
    model: ModelRef,
    first: Exclude<Admission, { kind: 'rejected' }>,
    dims: GatewayDimensions,
    attempts: Attempt[],
    store: (a: GatewayAnswer) => Promise<void>,
    /** A slot taken already for the first try (`used` once a try took it), with what its write said of the provider's last failure. */
    early: { readonly holder: SlotHolder; readonly failedAtMs: number | undefined; used: boolean } | undefined,
    /** When the breaker was read for the first try (epoch ms). */
    readAtMs: number,
  ): Promise<{ ok: true; answer: GatewayAnswer; latencyMs: number } | { ok: false; error: unknown; stop: boolean }> {
    const { retry, providerTimeoutSeconds } = this.deps.config;
    let tries = first.kind === 'probe' ? 1 : retry.attemptsPerProvider;
    const price = model.price as NonNullable<ModelRef['price']>;
    const inputTokens = inputTokensOf(call, model);
    const estimateMicro = worstCaseMicro(inputTokens, call.maxTokens, price);
    // A lease covers the call it guards: taken at `now`, the call may last until `now` + the call's
    // longest time, plus a margin; a hold or slot still there after it belongs to a crashed caller.
    const leaseFrom = this.leaseFrom(call);
    const circuitOpen = (state: string, t0: number) => {
      const e = new CircuitOpenError(`${model.provider}/${model.alias}: circuit breaker ${state}`);
      attempts.push({ provider: model.provider, model: model.alias, outcome: 'skipped', error: short(e), ms: this.clock() - t0 });
      return { ok: false as const, error: e, stop: false };
    };
    let admission: Exclude<Admission, { kind: 'rejected' }> = first;
    let error: unknown;
    for (let n = 1; n <= tries; n++) {
      const t0 = this.clock();
      const left = call.deadlineMs - t0;
      if (left <= 0) {
        error ??= new ProviderTimeoutError(`${model.provider}: no time left for another try`, model.provider);
        break;
      }
      const record = (e: unknown) =>
        attempts.push({ provider: model.provider, model: model.alias, outcome: 'error', error: short(e), ms: this.clock() - t0 });
      const id = this.newId();
      // The slot and the budget are taken side by side. When the budget must wait for calls in
      // flight to settle, the slot is given back meanwhile (others may use it) and taken again
      // afterwards, so neither lease has to outlast the wait.
      // Set when the budget must wait: a slot acquisition still polling stops at its next try.
      // `waited`: the try waited for a slot. `failedAtMs`: what the slot it took says of the last failure.
      const abandon: { set: boolean; waited: boolean; failedAtMs?: number } = { set: false, waited: false };
      const takeEarly = n === 1 && early !== undefined;
      if (early && takeEarly) early.used = true;
      const firstSlot =
        early && takeEarly ? Promise.resolve(early.holder) : this.acquireSlot(model.provider, id, leaseFrom, call.deadlineMs, abandon);
      const given = { back: false };
      const giveSlotBack = async () => {
        given.back = true;
        abandon.set = true;
        const holder = await firstSlot.catch(() => undefined);
        if (holder) await this.deps.limits.leave(model.provider, holder).catch(() => undefined);
      };
      const [slot, budget] = await Promise.allSettled([firstSlot, this.holdFor(call, id, estimateMicro, leaseFrom, giveSlotBack)]);
      let holder = slot.status === 'fulfilled' && !given.back ? slot.value : undefined;
      let slotError = slot.status === 'rejected' && !given.back ? slot.reason : undefined;
      if (budget.status === 'fulfilled' && !holder && !slotError) {
        try {
          abandon.waited = true;
          holder = await this.acquireSlot(model.provider, id, leaseFrom, call.deadlineMs);
        } catch (e) {
          slotError = e;
        }
      }
      const leave = (o?: { failedAtMs: number }) =>
        holder ? this.deps.limits.leave(model.provider, holder, o).catch(() => undefined) : undefined;
      if (!holder || budget.status === 'rejected') {
        await Promise.all([leave(), budget.status === 'fulfilled' ? budget.value.release() : undefined]);
        // A budget refusal stops the call; a full rate limit moves on to the next candidate.
        const e = budget.status === 'rejected' ? budget.reason : slotError;
        record(e);
        return { ok: false, error: e, stop: budget.status === 'rejected' };
      }
      const reservation = budget.value;
      // The first try's breaker read was taken beside its early slot's request. Its slot — the early
      // one, or one taken later without waiting — returns the provider's last counted failure: when
      // that is after the read (less a margin for callers' clocks), a failing call may have given
      // the slot back after the read was served, and the breaker is read again.
      const slotFailedAtMs = takeEarly ? early?.failedAtMs : abandon.failedAtMs;
      const failedSinceRead = n === 1 && (slotFailedAtMs ?? Number.NEGATIVE_INFINITY) >= readAtMs - CLOCK_MARGIN_MS;
      if ((n > 1 || abandon.waited || failedSinceRead) && admission.kind === 'closed') {
        // A retry, a try that waited for a slot, or one whose slot says a call failed since the read
        // asks the breaker again once it holds the slot: calls that failed meanwhile may have opened it.
        let again: Admission;
        try {
          again = await this.admit(model, (await this.read(model, undefined)).breaker);
        } catch (e) {
          await Promise.all([reservation.release(), leave()]);
          throw e;
        }
        if (again.kind === 'rejected') {
          await Promise.all([reservation.release(), leave()]);
          return circuitOpen(again.state, t0);
        }
        admission = again;
        if (again.kind === 'probe') tries = n;
      }
      // The waits took time: the call gets what is left now and ends before either lease does;
      // none starts with less than a second.
      const now = this.clock();
      const remaining =
        Math.min(call.deadlineMs, holder.leaseUntilMs - LEASE_MARGIN_MS, reservation.hold.expiresAtMs - LEASE_MARGIN_MS) - now;
      if (remaining < MIN_CALL_MS) {
        await Promise.all([reservation.release(), leave()]);
        error = new ProviderTimeoutError(
          `${model.provider}: no time left for the call after waiting for a slot and the budget`,
          model.provider,
        );
        record(error);
        break;
      }
      const started = this.clock();
      let response: ModelResponse;
      try {
        response = await this.deps.providers[model.provider].complete({
          modelId: model.modelId,
          system: call.system,
          messages: [...call.messages],
          maxTokens: call.maxTokens,
          temperature: call.temperature,
          timeoutMs: Math.min(providerTimeoutSeconds * 1000, remaining),
          ...(call.answerFormat ? { answerFormat: call.answerFormat } : {}),
          ...(model.structuredOutput ? { structuredOutput: model.structuredOutput } : {}),
          ...(call.tools && call.tools.length > 0 ? { tools: [...call.tools] } : {}),
        });
      } catch (e) {
        record(e);
        error = e;
        // The failure is counted before the slot is given back, so a caller that takes the slot
        // next sees the breaker this failure opened.
        const [, opened] = await Promise.all([
          reservation.release(),
          this.deps.breaker.onFailure(admission, model.provider, model.modelId, failureKind(e), short(e)).catch(() => false),
        ]);
        // A failure the breaker counts goes back with the slot: a caller that takes it reads the breaker again.
        await leave(failureKind(e) !== 'ignored' ? { failedAtMs: this.clock() } : undefined);
        if (opened) this.deps.metrics.record(dims, { BreakerOpened: 1 });
        if (e instanceof ProviderRejectedError) return { ok: false, error: e, stop: true };
        if (!isRetryable(e) || opened) break;
        if (n < tries) {
          const delay = this.random() * Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (n - 1));
          if (this.clock() + delay >= call.deadlineMs) break;
          await this.sleep(delay);
        }
        continue;
      }
      const latency = this.clock() - started;
      const cost = costUsd(response.usage, price);
      const actualMicro = toMicro(cost);
      attempts.push({ provider: model.provider, model: model.alias, outcome: 'ok', ms: this.clock() - t0 });
      const answer: GatewayAnswer = {
        text: response.text,
        ...(response.toolCalls && response.toolCalls.length > 0 ? { toolCalls: response.toolCalls } : {}),
        usage: response.usage,
        model,
        costUsd: cost,
        costMicro: actualMicro,
        estimateUsd: fromMicro(estimateMicro),
        estimatedInputTokens: inputTokens,
        truncated: response.truncated ?? false,
        cacheHit: false,
        fallbackUsed: false, // set by complete(), which knows the candidate's place in the chain
        attempts,
        ...(response.servedBy ? { servedBy: response.servedBy } : {}),
      };
      const bookkeeping = () =>
        Promise.all([
          reservation.settle(actualMicro, this.usageRecord(model, response.usage, actualMicro, false)).catch(() => false),
          this.deps.breaker.onSuccess(admission, model.provider, model.modelId).catch(() => undefined),
          leave(),
          store(answer),
        ]);
      // On an agent's pool nothing after the answer holds a guarantee the caller needs before it
      // goes on (the hold stays until the charge lands: the call's estimate is counted in the pool
      // until then; the slot is freed a moment later): it starts once the answer is handed back,
      // and the pool waits for it when it closes. A probe's result closes the breaker before the answer returns.
      if (call.pool?.open && admission.kind === 'closed') call.pool.track(afterAnswer(bookkeeping));
      else await bookkeeping();
      return { ok: true, answer, latencyMs: latency };
    }
    return { ok: false, error, stop: false };
  }

  /**
   * The call's budget hold: room in the agent's pool when it has some (no write), else a new hold
   * in the pool ({@link BudgetPool.growth}: more than the call needs, so the next calls fit; when
   * that is refused, exactly the call's worst case), else — without a pool — a reservation of
   * the call's own.
   * @throws BudgetExceededError | BudgetUnavailableError as {@link reserveWaiting}
   */
  private async holdFor(
    call: GatewayCall,
    id: string,
    estimateMicro: number,
    leaseFrom: (nowMs: number) => number,
    onWait: () => Promise<void>,
  ): Promise<CallHold> {
    const pool = call.pool?.open ? call.pool : undefined;
    if (!pool) return this.reserveWaiting(call, { id, estimateMicro }, leaseFrom, onWait);
    await pool.ready();
    const fitted = pool.fit(estimateMicro, leaseFrom(this.clock()));
    if (fitted) return fitted;
    // A pool's holds last the agent's whole time: until its deadline, plus the margin.
    const poolLease = () => call.deadlineMs + LEASE_MARGIN_MS;
    const grow = pool.growth(estimateMicro);
    if (grow > estimateMicro) {
      try {
        const now = this.clock();
        return pool.add(
          await reserveBudget(this.deps.ledger, pool.scopes, { id, estimateMicro: grow, expiresAtMs: poolLease() }, now),
          estimateMicro,
        );
      } catch (e) {
        if (!(e instanceof BudgetExceededError)) throw e;
      }
    }
    // Refused (or no room to grow): the pool's own idle room must not be what refuses the call.
    await pool.releaseIdle();
    return pool.add(await this.reserveWaiting({ ...call, scopes: pool.scopes }, { id, estimateMicro }, poolLease, onWait), estimateMicro);
  }

  /**
   * Reserves the call's worst case in every scope. A refusal that only reservations of calls in
   * flight cause (the settled spend leaves room: `BudgetExceededError.transient`) is tried again
   * with backoff and full jitter for up to {@link BUDGET_WAIT_MS}, since those calls will settle
   * to their (usually much lower) actual cost; a refusal the settled spend causes is final.
   * Each try's hold carries a lease from that try (`leaseFrom`); `onWait` runs once, before the
   * first wait.
   * @throws BudgetExceededError | BudgetUnavailableError as `reserveBudget`
   */
  private async reserveWaiting(
    call: GatewayCall,
    hold: Omit<Hold, 'expiresAtMs'>,
    leaseFrom: (nowMs: number) => number,
    onWait: () => Promise<void>,
  ): Promise<Reservation> {
    const giveUpAt = Math.min(call.deadlineMs - MIN_CALL_MS, this.clock() + BUDGET_WAIT_MS);
    for (let n = 0; ; n++) {
      const now = this.clock();
      try {
        return await reserveBudget(this.deps.ledger, call.scopes, { ...hold, expiresAtMs: leaseFrom(now) }, now);
      } catch (e) {
        if (!(e instanceof BudgetExceededError && e.transient)) throw e;
        const wait = 25 + this.random() * Math.min(2_000, 100 * 2 ** n);
        if (this.clock() + wait >= giveUpAt) throw e;
        if (n === 0) await onWait();
        await this.sleep(wait);
      }
    }
  }

  /**
   * The lease of a hold or slot taken at `now` for one call of `call`: the call may last until
   * `now` + its longest time (the provider timeout, cut to the deadline), plus a margin; a hold or
   * slot still there after it belongs to a crashed caller.
   */
  private leaseFrom(call: Pick<GatewayCall, 'deadlineMs'>): (nowMs: number) => number {
    const timeoutMs = this.deps.config.providerTimeoutSeconds * 1000;
    return (now) => now + Math.min(timeoutMs, call.deadlineMs - now) + LEASE_MARGIN_MS;
  }

  /** One try for a slot of `provider` (no waiting). @returns the holder, or undefined when refused or the table failed (the call asks again) */
  private async trySlot(
    provider: ModelRef['provider'],
    leaseFrom: (nowMs: number) => number,
  ): Promise<{ holder: SlotHolder; failedAtMs: number | undefined } | undefined> {
    const limit: RateLimit = this.deps.config.rateLimits[provider] ?? DEFAULT_RATE_LIMITS[provider];
    const holder: SlotHolder = { id: this.newId(), leaseUntilMs: leaseFrom(this.clock()) };
    const r = await this.deps.limits.acquire(provider, holder, limit, this.clock()).catch(() => undefined);
    return r?.ok ? { holder, failedAtMs: r.failedAtMs } : undefined;
  }

  /**
   * Waits for a concurrency slot and a rate-limit token of `provider`, polling with jitter; each
   * try's lease is `leaseFrom(now)`.
   * @returns the holder the slot was taken with (give it to `leave`), or undefined once `abandon` is set
   * @throws ProviderThrottledError when none is free before the deadline (not counted by the breaker)
   * @throws BudgetUnavailableError when the table cannot be used
   */
  private async acquireSlot(
    provider: ModelRef['provider'],
    id: string,
    leaseFrom: (nowMs: number) => number,
    deadlineMs: number,
    abandon: { readonly set: boolean; waited?: boolean; failedAtMs?: number } = { set: false },
  ): Promise<SlotHolder | undefined> {
    const limit: RateLimit = this.deps.config.rateLimits[provider] ?? DEFAULT_RATE_LIMITS[provider];
    for (;;) {
      if (abandon.set) return undefined;
      let r: AcquireOutcome;
      const holder: SlotHolder = { id, leaseUntilMs: leaseFrom(this.clock()) };
      try {
        r = await this.deps.limits.acquire(provider, holder, limit, this.clock());
      } catch (e) {
        throw new BudgetUnavailableError(`gateway table unavailable (rate limit), no call was made: ${(e as Error).message}`, { cause: e });
      }
      if (r.ok) {
        abandon.failedAtMs = r.failedAtMs;
        return holder;
      }
      const wait = r.waitMs * (1 + this.random());
      if (this.clock() + wait >= deadlineMs) {
        const what = r.reason === 'rate' ? `${limit.requestsPerMinute} requests per minute` : `${limit.maxConcurrency} calls in flight`;
        throw new ProviderThrottledError(`${provider}: AgentFlow rate limit (${what}) had no room before the deadline`, provider);
      }
      abandon.waited = true;
      await this.sleep(wait);
    }
  }

  /** Adds a call to the month's per-model totals; a lost write only loses a statistic, never a budget. */
  private async usage(model: ModelRef, u: TokenUsage, costMicro: number, cacheHit: boolean): Promise<void> {
    await this.deps.ledger.recordUsage(this.usageRecord(model, u, costMicro, cacheHit)).catch(() => undefined);
  }

  private usageRecord(model: ModelRef, u: TokenUsage, costMicro: number, cacheHit: boolean): UsageRecord {
    return {
      month: new Date(this.clock()).toISOString().slice(0, 7),
      provider: model.provider,
      model: model.alias,
      costMicro,
      inputTokens: u.inputTokens + u.cacheReadTokens + u.cacheWriteTokens,
      outputTokens: u.outputTokens,
      cachedTokens: u.cacheReadTokens,
      cacheHit,
    };
  }
}

/** A lease (budget hold, rate-limit slot) outlasts the longest call it guards by this much (ms). */
export const LEASE_MARGIN_MS = 10_000;

/**
 * How far callers' clocks may disagree (ms): a failure recorded by another Lambda up to this long
 * before a breaker read still makes the caller read again. AWS hosts keep time with the Amazon Time
 * Sync Service (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/set-time.html), typically well
 * within a millisecond; Lambda publishes no bound of its own, so the margin is generous.
 */
const CLOCK_MARGIN_MS = 2_000;

/** A provider call is not started with less time than this before the deadline (ms). */
export const MIN_CALL_MS = 1_000;

/** Longest wait for reservations of calls in flight to settle before a budget refusal is final (ms). */
export const BUDGET_WAIT_MS = 120_000;

/** The worst-case cost (micro-USD) of `call` on `model`: its reservation. */
export function worstCaseOf(
  call: Pick<GatewayCall, 'system' | 'messages' | 'maxTokens' | 'inputTokens' | 'tools'>,
  model: ModelRef,
): number {
  if (!model.price) return Number.POSITIVE_INFINITY;
  return worstCaseMicro(inputTokensOf(call, model), call.maxTokens, model.price);
}

/** The call's input tokens for `model`'s tokenizer: the caller's count, or counted now. */
function inputTokensOf(call: Pick<GatewayCall, 'system' | 'messages' | 'inputTokens' | 'tools'>, model: ModelRef): number {
  return call.inputTokens?.[TOKENIZER_OF[model.provider]] ?? requestTokens(model.provider, call.system, call.messages, call.tools);
}

/** A breaker record as read, or why it could not be. */
type BreakerRead = { ok: true; record: BreakerRecord | undefined } | { ok: false; error: unknown };

/** Appends the attempts to an error's message so the Catch's Cause (and the report) shows them. */
function withAttempts(e: unknown, attempts: readonly Attempt[]): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  // Kept on the error too, so the agent's spend record (and the report) lists them.
  (err as Error & { attempts?: readonly Attempt[] }).attempts = [...attempts];
  if (attempts.length > 0) {
    const list = attempts.map((a) => `${a.provider}/${a.model} ${a.outcome}${a.error ? ` (${a.error.split(':')[0]})` : ''} ${a.ms} ms`);
    err.message = `${err.message} [attempts: ${list.join('; ')}]`;
  }
  return err;
}
