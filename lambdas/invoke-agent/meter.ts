import type { BudgetPool, BudgetScope } from '../core/budget.js';
import { type AttemptRecord, MAX_ATTEMPTS_KEPT, type ModelRef } from '../core/contracts.js';
import type { GatewayAnswer, GatewayCall, ModelGateway } from '../core/gateway.js';
import type { ArtifactStore, TokenUsage } from '../core/ports.js';
import { addUsage, NO_USAGE } from '../core/pricing.js';
import { type InvocationSpend, readSpend, type SpendRecord, spendKey } from '../core/spend.js';

/**
 * One invocation's accounting of an agent: every gateway answer is added as it arrives (tokens,
 * settled cost in micro-USD, attempts, cache hits) and the agent's spend record
 * (`runs/<run>/spend/<phase>/<agent>.json`) is written after them (on the next turn of the event
 * loop: answers of the same turn share a write, and a save before then takes its place), so Aggregate and Publish add up
 * what the ledger settled — also for an agent that fails later (cost shown = ledger).
 *
 * @example
 * ```ts
 * const meter = await SpendMeter.open(artifacts, { runId, phase, agent: 'triage' }, primary, Date.now());
 * const a = await meter.gateway(gateway).complete(call); // accounted; spend record written on the next turn
 * await meter.save(true); // the final write must land
 * ```
 */
export class SpendMeter {
  /** This invocation's entry of the spend record. */
  readonly mine: InvocationSpend;
  /** Every try of every provider of this invocation, in order (failed calls' tries included). */
  readonly attempts: AttemptRecord[] = [];
  usage: TokenUsage = NO_USAGE;
  fallbackUsed = false;
  servedBy: string | undefined;
  /** The model that answered last (the primary until one answers). */
  answeredBy: ModelRef;
  // Spend record writes are chained so they land in order, one at a time.
  private writes: Promise<unknown> = Promise.resolve();
  /** A write after an answer waits for the next turn of the event loop: a save before then (the final one) writes it instead. */
  private scheduled: NodeJS.Immediate | undefined;

  private constructor(
    private readonly artifacts: ArtifactStore,
    private readonly where: { readonly runId: string; readonly phase: string; readonly agent: string },
    private readonly before: SpendRecord,
    primary: ModelRef,
    started: number,
  ) {
    this.answeredBy = primary;
    this.mine = {
      id: `${started.toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      startedAt: new Date(started).toISOString(),
      costMicro: 0,
      inputTokens: 0,
      outputTokens: 0,
      cachedTokens: 0,
      calls: 0,
      cacheHits: 0,
      repairs: 0,
      truncated: 0,
      attempts: [],
      estimatedInputTokens: 0,
      reportedInputTokens: 0,
    };
  }

  /** Reads the agent's spend record (earlier invocations: Step Functions retries) and starts this invocation's entry. */
  static async open(
    artifacts: ArtifactStore,
    where: { readonly runId: string; readonly phase: string; readonly agent: string },
    primary: ModelRef,
    started: number,
  ): Promise<SpendMeter> {
    return new SpendMeter(artifacts, where, await readSpend(artifacts, where.runId, where.phase, where.agent), primary, started);
  }

  /** What earlier invocations of the same agent in this run spent, in micro-USD. */
  get spentBefore(): number {
    return this.before.invocations.reduce((s, i) => s + i.costMicro, 0);
  }

  /**
   * Writes the spend record with this invocation's entry (and drops a write after an answer that
   * has not started: this one includes it). Writes after each call are best effort (the final one
   * repeats them); the final one must succeed.
   * @throws the artifact store's error, only when `final`
   */
  async save(final = false): Promise<void> {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const record: SpendRecord = {
      ...this.before,
      invocations: [...this.before.invocations, { ...this.mine, attempts: this.attempts.slice(-MAX_ATTEMPTS_KEPT) }],
    };
    const { runId, phase, agent } = this.where;
    const write = this.writes.then(() => this.artifacts.putJson(spendKey(runId, phase, agent), record));
    this.writes = write.catch(() => undefined);
    if (final) await write;
    else await this.writes;
  }

  /** Adds a gateway answer to the invocation and writes the spend record on the next turn of the event loop (best effort). */
  account(a: GatewayAnswer): void {
    const m = this.mine;
    this.usage = addUsage(this.usage, a.usage);
    m.costMicro += a.costMicro;
    m.inputTokens += a.usage.inputTokens + a.usage.cacheReadTokens + a.usage.cacheWriteTokens;
    m.outputTokens += a.usage.outputTokens;
    m.cachedTokens += a.usage.cacheReadTokens;
    m.calls += a.cacheHit ? 0 : 1;
    m.cacheHits += a.cacheHit ? 1 : 0;
    if (!a.cacheHit) {
      m.estimatedInputTokens += a.estimatedInputTokens;
      m.reportedInputTokens += a.usage.inputTokens + a.usage.cacheReadTokens + a.usage.cacheWriteTokens;
    }
    this.fallbackUsed ||= a.fallbackUsed;
    this.servedBy = a.servedBy ?? this.servedBy;
    this.answeredBy = a.model;
    this.attempts.push(...a.attempts);
    // On the next turn, unless the agent saves first: an agent whose last answer this was writes
    // its record once (one artifact write, an S3 PUT in the cloud), not twice in a row.
    this.scheduled ??= setImmediate(() => {
      this.scheduled = undefined;
      void this.save();
    });
  }

  /** Keeps the tries a failed gateway call carries on its error (`attempts`). */
  failed(e: unknown): void {
    const tried = (e as { attempts?: unknown } | undefined)?.attempts;
    if (Array.isArray(tried)) this.attempts.push(...(tried as AttemptRecord[]));
  }

  /** `gateway` with every answer accounted here and every failed call's tries kept (for a tool loop's iterations). */
  gateway(gateway: { complete(call: GatewayCall): Promise<GatewayAnswer> }): { complete(call: GatewayCall): Promise<GatewayAnswer> } {
    return {
      complete: async (call) => {
        try {
          const a = await gateway.complete(call);
          this.account(a);
          return a;
        } catch (e) {
          this.failed(e);
          throw e;
        }
      },
    };
  }
}

/**
 * The agent's held budget for this invocation (`ModelGateway.openPool`): its calls take their worst
 * case from it, so most have no budget write on their path. Close it when the agent ends (it waits
 * for the calls' bookkeeping and releases what was not used).
 * @param capMicro the most it may hold (micro-USD): what is left of the agent's share. @default no cap
 * @param prepare a first hold reserved at once (while the agent reads its input), so its first call finds room
 * @returns undefined for a gateway without pools (a test double)
 */
export function agentPool(
  gateway: ModelGateway,
  scopes: readonly BudgetScope[],
  capMicro?: number,
  prepare?: { readonly estimateMicro: number; readonly deadlineMs: number },
): BudgetPool | undefined {
  if (typeof gateway.openPool !== 'function') return undefined;
  return gateway.openPool(scopes, {
    ...(capMicro !== undefined && Number.isFinite(capMicro) ? { capMicro: Math.max(0, capMicro) } : {}),
    ...(prepare && prepare.estimateMicro > 0 ? { prepare } : {}),
  });
}
