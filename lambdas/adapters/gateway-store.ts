import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { type BreakerRecord, type BreakerStateName, type BreakerStore, CircuitBreaker } from '../core/breaker.js';
import {
  type BudgetLedger,
  type BudgetScope,
  type BudgetStatus,
  type Hold,
  holdMember,
  parseHold,
  type ReserveOutcome,
  type UsageRecord,
  type UsageTotals,
} from '../core/budget.js';
import type { BudgetScopeKind } from '../core/errors.js';
import {
  type AcquireOutcome,
  type CachedAnswer,
  type GatewayMetrics,
  type GatewayReads,
  ModelGateway,
  type RateLimitStore,
  type ResponseCache,
  type SlotHolder,
} from '../core/gateway.js';
import type { GatewayConfig, RateLimit } from '../core/gateway-config.js';
import type { ProviderTable } from '../core/ports.js';
import { ItemRequestCombiner } from './request-combiner.js';

/**
 * The gateway's state in the AgentFlow table (DESIGN §8), one item per budget scope, breaker,
 * cached answer and provider rate limit. Every change is one atomic or conditional write:
 * `ConditionalCheckFailedException` is the domain answer "refused" and is mapped to it here.
 */

const isConditionFailure = (e: unknown) =>
  e instanceof ConditionalCheckFailedException || (e as { name?: string })?.name === 'ConditionalCheckFailedException';

/**
 * A combined request refused without being applied, for a reason that may be one part's: a failed
 * condition, or a validation error (e.g. two parts writing one attribute). Sent again part by part.
 */
const refusedUnapplied = (e: unknown) => isConditionFailure(e) || (e as { name?: string })?.name === 'ValidationException';

/** Runs a conditional write; `false` when its condition failed. */
async function conditional(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (e) {
    if (isConditionFailure(e)) return false;
    throw e;
  }
}

const num = (v: unknown, d = 0): number => (typeof v === 'number' ? v : v === undefined ? d : Number(v));
const strings = (v: unknown): string[] => (v instanceof Set ? [...v].map(String) : Array.isArray(v) ? v.map(String) : []);

function budgetStatus(key: string, i: Record<string, unknown>): BudgetStatus {
  return {
    key,
    kind: String(i.kind) as BudgetScopeKind,
    ...(i.limitMicro !== undefined ? { limitMicro: num(i.limitMicro) } : {}),
    committedMicro: num(i.committed),
    spentMicro: num(i.spent),
    openHolds: strings(i.holds).length,
  };
}

/**
 * One unconditional addition to a scope item: a call's cost (`costMicro`, added to `committed` and
 * `spent`; absent for usage alone) and its usage (the per-model totals).
 */
interface ScopeAddition {
  readonly scope: BudgetScope;
  readonly costMicro?: number;
  readonly usage?: UsageRecord;
}

/**
 * A charge to a hold, or its settlement, as one part of a write to its scope item: applies only
 * while the hold is open and its running total (`used~<hold id>`) is `usedMicro` (0: never
 * written; a charge only writes totals above 0). Parts of different holds combine into one conditional write (the AND of
 * their conditions), which applies exactly when each would apply alone: a part touches only its
 * hold's own attributes, and `committed` and `spent` by `ADD`.
 */
interface HoldWrite {
  readonly hold: Hold;
  readonly usedMicro: number;
  /** The running total after the write (a charge); absent: the total is removed (a settlement). */
  readonly toMicro?: number;
  /** Added to `committed` and `spent` (micro-USD, may be negative for `committed`). */
  readonly committedMicro: number;
  readonly spentMicro: number;
  /** Calls added to the month's per-model totals by the same write. */
  readonly usages?: readonly UsageRecord[];
}

/** Budget scopes as `BUDGET#<scope key>` items: `committed`, `spent` (integer micro-USD), `holds` (string set). */
export class DynamoBudgetLedger implements BudgetLedger {
  /**
   * Charges and settlements of holds, combined per scope item while one is in flight: a run's
   * agents all charge and settle on the run's item.
   */
  private readonly holdWrites = new ItemRequestCombiner<HoldWrite>((key, parts) => this.writeHolds(key, parts), refusedUnapplied);
  /** Reservations, combined per scope item while one is in flight (a run's agents start together). */
  private readonly reservations = new ItemRequestCombiner<{ scope: BudgetScope; hold: Hold }, number>(
    (_key, parts) => this.reserveAll(parts),
    refusedUnapplied,
  );

  /**
   * Additions to scopes without a limit (and usage totals), combined per item while one is in
   * flight: every call adds to the same few items (the month, the project's day and month).
   */
  private readonly additions = new ItemRequestCombiner<ScopeAddition>(
    (_key, parts) => this.addAll(parts),
    refusedUnapplied,
    // Summed: the expression grows only with the models named (6 attributes each).
    100,
  );

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  private key(scopeKey: string) {
    return { pk: `BUDGET#${scopeKey}`, sk: 'BUDGET' };
  }

  /** The scope's item as the table has it now (a consistent read), or undefined when there is none. */
  private async item(scopeKey: string): Promise<Record<string, unknown> | undefined> {
    return (await this.doc.send(new GetCommand({ TableName: this.table, Key: this.key(scopeKey), ConsistentRead: true }))).Item;
  }

  /** Attributes every write refreshes: kind, limit, expiry and (except runs) the listing index. */
  private meta(scope: BudgetScope) {
    const listed = scope.kind !== 'run';
    return {
      set: `kind = :kind, expiresAt = :exp${scope.limitMicro !== undefined ? ', limitMicro = :limit' : ''}${listed ? ', gsi1pk = :g, gsi1sk = :gk' : ''}`,
      values: {
        ':kind': scope.kind,
        ':exp': scope.expiresAtSeconds,
        ...(scope.limitMicro !== undefined ? { ':limit': scope.limitMicro } : {}),
        ...(listed ? { ':g': 'BUDGETS', ':gk': scope.key } : {}),
      },
    };
  }

  async reserve(scope: BudgetScope, hold: Hold): Promise<ReserveOutcome> {
    try {
      return { ok: true, committedMicro: await this.reservations.submit(scope.key, { scope, hold }) };
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      // Read again rather than from the refusal (ReturnValuesOnConditionCheckFailure): DynamoDB sends
      // that item in its wire format, which the document client does not convert on an error
      // (aws/aws-sdk-js-v3#6723), and dynalite does not send it at all (architect/dynalite#182).
      const item = await this.item(scope.key);
      // The hold is there: a write of it landed although its answer was lost (reserveAll).
      if (strings(item?.holds).includes(holdMember(hold))) return { ok: true, committedMicro: num(item?.committed) };
      const now = Date.now();
      const expired = strings(item?.holds).filter((m) => (parseHold(m)?.expiresAtMs ?? Number.POSITIVE_INFINITY) < now).length;
      return { ok: false, committedMicro: num(item?.committed), expiredHolds: expired, spentMicro: num(item?.spent) };
    }
  }

  /**
   * Reservations in one scope item as one write: the holds' estimates added together, under the
   * limit less their sum (so it applies only when each, one after another, would).
   * @returns the scope's `committed` after the write (micro-USD)
   * @throws ConditionalCheckFailedException when the limit does not leave room, or when the write's
   *   first hold is in the item already (the write landed before)
   */
  private async reserveAll(parts: readonly { scope: BudgetScope; hold: Hold }[]): Promise<number> {
    const scope = mergedScope(parts);
    const meta = this.meta(scope);
    const limits = parts.flatMap((p) => (p.scope.limitMicro === undefined ? [] : [p.scope.limitMicro]));
    const estimate = parts.reduce((n, p) => n + p.hold.estimateMicro, 0);
    const limited = limits.length > 0;
    const threshold = Math.min(...limits) - estimate;
    // Not applied twice: the SDK sends a write again when its answer was lost (a timeout, a reset
    // socket), and the first may have landed. Every hold of one write lands with it or not at all,
    // and hold ids are new, so the write's first hold in the item means this write landed already
    // (the caller finds its hold there: reserve). A new item (no `committed` yet) takes the holds
    // only when their sum fits the limit. Written without parentheses (AND binds before OR), which
    // dynalite parses in a fraction of the time.
    const fresh = 'NOT contains(holds, :first)';
    const condition = !limited
      ? fresh
      : threshold >= 0
        ? `${fresh} AND attribute_not_exists(committed) OR ${fresh} AND committed <= :threshold`
        : `${fresh} AND committed <= :threshold`;
    const members = parts.map((p) => holdMember(p.hold));
    const r = await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: this.key(scope.key),
        UpdateExpression: `SET ${meta.set} ADD committed :est, holds :hold`,
        ConditionExpression: condition,
        ExpressionAttributeValues: {
          ...meta.values,
          ':est': estimate,
          ':hold': new Set(members),
          ':first': members[0],
          ...(limited ? { ':threshold': threshold } : {}),
        },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    return num(r.Attributes?.committed);
  }

  settle(scope: BudgetScope, hold: Hold, actualMicro: number, usage?: UsageRecord): Promise<boolean> {
    const meta = this.meta(scope);
    const u = usage ? usageUpdate([usage]) : undefined;
    return conditional(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(scope.key),
          UpdateExpression: `SET ${meta.set} ADD committed :delta, spent :actual${u ? `, ${u.add}` : ''} DELETE holds :hold`,
          ConditionExpression: 'contains(holds, :member)',
          ...(u ? { ExpressionAttributeNames: u.names } : {}),
          ExpressionAttributeValues: {
            ...meta.values,
            ...u?.values,
            ':delta': actualMicro - hold.estimateMicro,
            ':actual': actualMicro,
            ':hold': new Set([holdMember(hold)]),
            ':member': holdMember(hold),
          },
        }),
      ),
    );
  }

  async settleCharged(
    scope: BudgetScope,
    hold: Hold,
    actualMicro: number,
    chargedMicro: number,
    usages: readonly UsageRecord[] = [],
  ): Promise<boolean> {
    // Conditional on the hold's running total as the caller knows it: a charge that landed although
    // its write reported an error (or one that landed after the caller read it) is not added twice.
    // On a mismatch the total is read again and the settlement computed from it (a few tries).
    // No meta attributes are written: the item has them from its reservation (a sweep's scope has no expiry to give).
    let charged = chargedMicro;
    for (let attempt = 0; attempt < 4; attempt++) {
      const over = Math.max(0, charged - hold.estimateMicro);
      const applied = await conditional(() =>
        this.holdWrites.submit(scope.key, {
          hold,
          usedMicro: charged,
          committedMicro: Math.max(actualMicro, charged) - hold.estimateMicro - over,
          spentMicro: Math.max(0, actualMicro - charged),
          ...(usages.length > 0 ? { usages } : {}),
        }),
      );
      if (applied) return true;
      const now = await this.usedOf(scope, hold);
      if (now === undefined) return false; // settled or released already
      charged = now;
    }
    return false;
  }

  /** A hold's running total as the ledger has it (consistent read); undefined when the hold is gone. */
  private async usedOf(scope: BudgetScope, hold: Hold): Promise<number | undefined> {
    const item = await this.item(scope.key);
    if (!strings(item?.holds).includes(holdMember(hold))) return undefined;
    return num(item?.[usedAttribute(hold)]);
  }

  async charge(
    scope: BudgetScope,
    hold: Hold,
    c: { readonly fromMicro: number; readonly toMicro: number },
    usages: readonly UsageRecord[] = [],
  ): Promise<boolean> {
    // Conditional on the previous total, so each charge lands once and in order. When the condition
    // fails, the total is read: already `to` (a write that landed although it reported an error):
    // done; another value (the caller's was stale): charged from it.
    let from = c.fromMicro;
    for (let attempt = 0; attempt < 4; attempt++) {
      if (from >= c.toMicro) return true;
      const over = Math.max(0, c.toMicro - hold.estimateMicro) - Math.max(0, from - hold.estimateMicro);
      const applied = await conditional(() =>
        this.holdWrites.submit(scope.key, {
          hold,
          usedMicro: from,
          toMicro: c.toMicro,
          committedMicro: over,
          spentMicro: c.toMicro - from,
          ...(usages.length > 0 ? { usages } : {}),
        }),
      );
      if (applied) return true;
      const now = await this.usedOf(scope, hold);
      if (now === undefined) return false; // the hold is gone (swept): the charge cannot land
      from = now;
    }
    return false;
  }

  /**
   * {@link HoldWrite}s to the scope item `scopeKey` as one conditional write.
   * @throws ConditionalCheckFailedException when a part's condition does not hold
   */
  private async writeHolds(scopeKey: string, parts: readonly HoldWrite[]): Promise<void> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const sets: string[] = [];
    const removes: string[] = [];
    const conditions: string[] = [];
    const settled: string[] = [];
    parts.forEach((p, i) => {
      const member = holdMember(p.hold);
      names[`#h${i}`] = usedAttribute(p.hold);
      values[`:m${i}`] = member;
      if (p.usedMicro !== 0) values[`:f${i}`] = p.usedMicro;
      // A running total is only ever written above 0 (a charge moves it from `from` up to `to`), so
      // a total of 0 is an absent one: no OR, which dynalite's parser handles far faster.
      conditions.push(`contains(holds, :m${i}) AND ${p.usedMicro === 0 ? `attribute_not_exists(#h${i})` : `#h${i} = :f${i}`}`);
      if (p.toMicro === undefined) {
        removes.push(`#h${i}`);
        settled.push(member);
      } else {
        sets.push(`#h${i} = :t${i}`);
        values[`:t${i}`] = p.toMicro;
      }
    });
    const usages = parts.flatMap((p) => p.usages ?? []);
    const u = usages.length > 0 ? usageUpdate(usages) : undefined;
    values[':c'] = parts.reduce((n, p) => n + p.committedMicro, 0);
    values[':s'] = parts.reduce((n, p) => n + p.spentMicro, 0);
    if (settled.length > 0) values[':settled'] = new Set(settled);
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: this.key(scopeKey),
        UpdateExpression: [
          ...(sets.length > 0 ? [`SET ${sets.join(', ')}`] : []),
          `ADD committed :c, spent :s${u ? `, ${u.add}` : ''}`,
          ...(settled.length > 0 ? ['DELETE holds :settled'] : []),
          ...(removes.length > 0 ? [`REMOVE ${removes.join(', ')}`] : []),
        ].join(' '),
        // One flat chain of ANDs, no parentheses: dynalite's parser backtracks over each (a 20-part
        // write took 30–40 ms of CPU with each part and its OR in parentheses, 5 ms flat).
        ConditionExpression: conditions.join(' AND '),
        ExpressionAttributeNames: { ...names, ...u?.names },
        ExpressionAttributeValues: { ...values, ...u?.values },
      }),
    );
  }

  add(scope: BudgetScope, actualMicro: number, usage?: UsageRecord): Promise<void> {
    return this.additions.submit(scope.key, { scope, costMicro: actualMicro, ...(usage ? { usage } : {}) });
  }

  /**
   * Additions to one scope item as one write: the costs summed, the usage summed per model, the
   * item's kind, limit and listing from the latest part and the latest expiry of them all.
   */
  private async addAll(parts: readonly ScopeAddition[]): Promise<void> {
    const scope = mergedScope(parts);
    const meta = this.meta(scope);
    const costs = parts.flatMap((p) => (p.costMicro === undefined ? [] : [p.costMicro]));
    const usages = parts.flatMap((p) => (p.usage ? [p.usage] : []));
    const u = usages.length > 0 ? usageUpdate(usages) : undefined;
    const adds = [...(costs.length > 0 ? ['committed :a', 'spent :a'] : []), ...(u ? [u.add] : [])];
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: this.key(scope.key),
        UpdateExpression: `SET ${meta.set}${adds.length > 0 ? ` ADD ${adds.join(', ')}` : ''}`,
        ...(u ? { ExpressionAttributeNames: u.names } : {}),
        ExpressionAttributeValues: {
          ...meta.values,
          ...u?.values,
          ...(costs.length > 0 ? { ':a': costs.reduce((a, b) => a + b, 0) } : {}),
        },
      }),
    );
  }

  release(scope: BudgetScope, hold: Hold): Promise<boolean> {
    return conditional(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(scope.key),
          UpdateExpression: 'ADD committed :minus DELETE holds :hold REMOVE #used',
          // A hold calls were charged to is settled (settleCharged), never released: that would take
          // their cost out of `committed` while `spent` keeps it.
          ConditionExpression: 'contains(holds, :member) AND (attribute_not_exists(#used) OR #used = :zero)',
          ExpressionAttributeNames: { '#used': usedAttribute(hold) },
          ExpressionAttributeValues: {
            ':zero': 0,
            ':minus': -hold.estimateMicro,
            ':hold': new Set([holdMember(hold)]),
            ':member': holdMember(hold),
          },
        }),
      ),
    );
  }

  async sweep(scope: BudgetScope, nowMs: number): Promise<number> {
    const item = await this.item(scope.key);
    let released = 0;
    for (const member of strings(item?.holds)) {
      const hold = parseHold(member);
      if (!hold || hold.expiresAtMs >= nowMs) continue;
      // A pool's hold keeps what its calls were charged (already in `spent`); the rest is released.
      const used = num(item?.[usedAttribute(hold)]);
      if (await (used > 0 ? this.settleCharged(scope, hold, used, used) : this.release(scope, hold))) released++;
    }
    return released;
  }

  /** Sweeps every listed scope (what `agentflow costs --sweep` runs). @returns holds released */
  async sweepAll(nowMs: number): Promise<number> {
    let n = 0;
    for (const s of await this.list()) {
      n += await this.sweep({ kind: s.kind, key: s.key, expiresAtSeconds: 0 }, nowMs);
    }
    return n;
  }

  async list(): Promise<BudgetStatus[]> {
    const items = await queryAll(this.doc, this.table, 'BUDGETS');
    return items.map((i) => budgetStatus(String(i.gsi1sk), i));
  }

  async get(scopeKey: string): Promise<BudgetStatus | undefined> {
    const item = await this.item(scopeKey);
    return item ? budgetStatus(scopeKey, item) : undefined;
  }

  recordUsage(usage: UsageRecord): Promise<void> {
    const scope: BudgetScope = {
      kind: 'global-month',
      key: `global#month#${usage.month}`,
      expiresAtSeconds: Math.floor(Date.now() / 1000) + 400 * 24 * 3600,
    };
    return this.additions.submit(scope.key, { scope, usage });
  }

  /** The month's totals per provider and model, kept as `u|<provider>|<model>|<field>` attributes of the global-month item. */
  async listUsage(month: string): Promise<UsageTotals[]> {
    const r = await this.doc.send(new GetCommand({ TableName: this.table, Key: this.key(`global#month#${month}`) }));
    const rows = new Map<string, UsageTotals & Record<string, unknown>>();
    for (const [name, value] of Object.entries(r.Item ?? {})) {
      const m = /^u\|([^|]+)\|([^|]+)\|(\w+)$/.exec(name);
      if (!m) continue;
      const [, provider, model, field] = m as unknown as [string, string, string, keyof UsageTotals];
      const row = rows.get(`${provider}|${model}`) ?? {
        month,
        provider,
        model,
        calls: 0,
        cacheHits: 0,
        costMicro: 0,
        inputTokens: 0,
        outputTokens: 0,
        cachedTokens: 0,
      };
      (row as Record<string, unknown>)[field] = num(value);
      rows.set(`${provider}|${model}`, row);
    }
    return [...rows.values()];
  }
}

/**
 * The scope that combined writes to one item (`parts`, in arrival order) write: the latest part's
 * kind, limit and listing, with the latest expiry of them all.
 */
function mergedScope(parts: readonly { readonly scope: BudgetScope }[]): BudgetScope {
  const last = (parts[parts.length - 1] as { scope: BudgetScope }).scope;
  return { ...last, expiresAtSeconds: Math.max(...parts.map((p) => p.scope.expiresAtSeconds)) };
}

/** The attribute keeping what calls were charged to a pool's hold (micro-USD), next to the hold in the scope item. */
const usedAttribute = (hold: Hold): string => `used~${hold.id}`;

/**
 * The `ADD` clause adding calls to the per-model totals (attribute names
 * `u|<provider>|<model>|<field>`), summed per provider and model.
 */
function usageUpdate(records: readonly UsageRecord[]): { add: string; names: Record<string, string>; values: Record<string, number> } {
  const totals = new Map<string, number>();
  for (const u of records) {
    const fields: Record<string, number> = {
      calls: u.cacheHit ? 0 : 1,
      cacheHits: u.cacheHit ? 1 : 0,
      costMicro: u.costMicro,
      inputTokens: u.inputTokens,
      outputTokens: u.outputTokens,
      cachedTokens: u.cachedTokens,
    };
    for (const [f, v] of Object.entries(fields)) {
      const name = `u|${u.provider}|${u.model}|${f}`;
      totals.set(name, (totals.get(name) ?? 0) + v);
    }
  }
  const names: Record<string, string> = {};
  const values: Record<string, number> = {};
  const add = [...totals].map(([name, v], i) => {
    names[`#u${i}`] = name;
    values[`:u${i}`] = v;
    return `#u${i} :u${i}`;
  });
  return { add: add.join(', '), names, values };
}

async function queryAll(doc: DynamoDBDocumentClient, table: string, partition: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const r = await doc.send(
      new QueryCommand({
        TableName: table,
        IndexName: 'gsi1',
        KeyConditionExpression: 'gsi1pk = :p',
        ExpressionAttributeValues: { ':p': partition },
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    out.push(...(r.Items ?? []));
    start = r.LastEvaluatedKey;
  } while (start);
  return out;
}

/** Circuit breakers as `BREAKER#<provider>#<model>` items. */
export class DynamoBreakerStore implements BreakerStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  private key(key: string) {
    return { pk: `BREAKER#${key}`, sk: 'BREAKER' };
  }

  /** A `BREAKER#` item as a record. */
  record(i: Record<string, unknown>): BreakerRecord {
    return {
      key: String(i.pk).slice('BREAKER#'.length),
      provider: String(i.provider ?? ''),
      model: String(i.model ?? ''),
      state: (i.state as BreakerStateName | undefined) ?? 'closed',
      failures: num(i.failures),
      calls: num(i.calls),
      windowStartMs: num(i.windowStart),
      cooldownMs: num(i.cooldownMs),
      ...(i.openUntil !== undefined ? { openUntilMs: num(i.openUntil) } : {}),
      ...(i.probeId !== undefined ? { probeId: String(i.probeId) } : {}),
      ...(i.probeLeaseUntil !== undefined ? { probeLeaseUntilMs: num(i.probeLeaseUntil) } : {}),
      ...(i.lastError !== undefined ? { lastError: String(i.lastError) } : {}),
      ...(i.updatedAt !== undefined ? { updatedAtMs: num(i.updatedAt) } : {}),
      opened: num(i.opened),
    };
  }

  async get(key: string): Promise<BreakerRecord | undefined> {
    const r = await this.doc.send(new GetCommand({ TableName: this.table, Key: this.key(key), ConsistentRead: true }));
    return r.Item ? this.record(r.Item) : undefined;
  }

  claimProbe(key: string, o: { nowMs: number; probeId: string; leaseUntilMs: number }): Promise<boolean> {
    return conditional(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(key),
          UpdateExpression: 'SET #s = :half, probeId = :pid, probeLeaseUntil = :lease, updatedAt = :now',
          ConditionExpression: '(#s = :open AND openUntil <= :now) OR (#s = :half AND probeLeaseUntil <= :now)',
          ExpressionAttributeNames: { '#s': 'state' },
          ExpressionAttributeValues: {
            ':half': 'half-open',
            ':open': 'open',
            ':pid': o.probeId,
            ':lease': o.leaseUntilMs,
            ':now': o.nowMs,
          },
        }),
      ),
    );
  }

  async count(
    key: string,
    o: { provider: string; model: string; nowMs: number; windowMs: number; failed: boolean },
  ): Promise<{ failures: number; calls: number }> {
    const floor = o.nowMs - o.windowMs;
    const common = {
      ':p': o.provider,
      ':m': o.model,
      ':closed': 'closed',
      ':g': 'BREAKERS',
      ':gk': key,
      ':now': o.nowMs,
      ':one': 1,
      ':f': o.failed ? 1 : 0,
    };
    const base = 'provider = :p, model = :m, #s = if_not_exists(#s, :closed), gsi1pk = :g, gsi1sk = :gk, updatedAt = :now';
    for (let i = 0; i < 8; i++) {
      try {
        const r = await this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: this.key(key),
            UpdateExpression: `SET ${base} ADD calls :one, failures :f`,
            ConditionExpression: 'windowStart > :floor',
            ExpressionAttributeNames: { '#s': 'state' },
            ExpressionAttributeValues: { ...common, ':floor': floor },
            ReturnValues: 'ALL_NEW',
          }),
        );
        return { failures: num(r.Attributes?.failures), calls: num(r.Attributes?.calls) };
      } catch (e) {
        if (!isConditionFailure(e)) throw e;
      }
      // The window has passed (or never started): start a new one with this call, unless another caller just did.
      const started = await conditional(() =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: this.key(key),
            UpdateExpression: `SET ${base}, windowStart = :now, calls = :one, failures = :f`,
            ConditionExpression: 'attribute_not_exists(windowStart) OR windowStart <= :floor',
            ExpressionAttributeNames: { '#s': 'state' },
            ExpressionAttributeValues: { ...common, ':floor': floor },
          }),
        ),
      );
      if (started) return { failures: o.failed ? 1 : 0, calls: 1 };
    }
    throw new Error(`circuit breaker ${key}: could not count the call (window contention)`);
  }

  trip(
    key: string,
    o: { provider: string; model: string; nowMs: number; cooldownMs: number; reason: string; force: boolean },
  ): Promise<boolean> {
    return conditional(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(key),
          UpdateExpression:
            'SET #s = :open, openUntil = :until, cooldownMs = :cd, lastError = :r, updatedAt = :now, provider = :p, model = :m, gsi1pk = :g, gsi1sk = :gk ADD opened :one',
          ConditionExpression: o.force ? 'attribute_not_exists(#s) OR #s <> :open' : 'attribute_not_exists(#s) OR #s = :closed',
          ExpressionAttributeNames: { '#s': 'state' },
          ExpressionAttributeValues: {
            ':open': 'open',
            ...(o.force ? {} : { ':closed': 'closed' }),
            ':until': o.nowMs + o.cooldownMs,
            ':cd': o.cooldownMs,
            ':r': o.reason,
            ':now': o.nowMs,
            ':p': o.provider,
            ':m': o.model,
            ':g': 'BREAKERS',
            ':gk': key,
            ':one': 1,
          },
        }),
      ),
    );
  }

  reopen(key: string, o: { probeId: string; nowMs: number; cooldownMs: number; reason: string }): Promise<boolean> {
    return conditional(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(key),
          UpdateExpression:
            'SET #s = :open, openUntil = :until, cooldownMs = :cd, lastError = :r, updatedAt = :now REMOVE probeId, probeLeaseUntil ADD opened :one',
          ConditionExpression: '#s = :half AND probeId = :pid',
          ExpressionAttributeNames: { '#s': 'state' },
          ExpressionAttributeValues: {
            ':open': 'open',
            ':half': 'half-open',
            ':pid': o.probeId,
            ':until': o.nowMs + o.cooldownMs,
            ':cd': o.cooldownMs,
            ':r': o.reason,
            ':now': o.nowMs,
            ':one': 1,
          },
        }),
      ),
    );
  }

  close(key: string, o: { probeId: string; nowMs: number; cooldownMs: number }): Promise<boolean> {
    return conditional(() =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(key),
          UpdateExpression:
            'SET #s = :closed, failures = :zero, calls = :zero, windowStart = :now, cooldownMs = :cd, updatedAt = :now REMOVE probeId, probeLeaseUntil, openUntil',
          ConditionExpression: '#s = :half AND probeId = :pid',
          ExpressionAttributeNames: { '#s': 'state' },
          ExpressionAttributeValues: {
            ':closed': 'closed',
            ':half': 'half-open',
            ':pid': o.probeId,
            ':zero': 0,
            ':now': o.nowMs,
            ':cd': o.cooldownMs,
          },
        }),
      ),
    );
  }

  async list(): Promise<BreakerRecord[]> {
    return (await queryAll(this.doc, this.table, 'BREAKERS')).map((i) => this.record(i));
  }
}

/** A cached answer's item as read, or undefined when absent or expired at `nowMs`. */
function cachedAnswer(i: Record<string, unknown> | undefined, nowMs: number): CachedAnswer | undefined {
  if (!i || num(i.expiresAtMs) <= nowMs) return undefined;
  return {
    text: String(i.text),
    usage: i.usage as CachedAnswer['usage'],
    createdAtMs: num(i.createdAtMs),
    ...(typeof i.servedBy === 'string' ? { servedBy: i.servedBy } : {}),
  };
}

/**
 * The cache lookup and the breaker read of a try in one consistent `BatchGetItem` (one round trip
 * instead of two; a consistent read of both costs 1 RCU each for items up to 4 KB). Keys DynamoDB
 * returns unprocessed (throttling) are read again, one `GetItem` each.
 */
export class DynamoGatewayReads implements GatewayReads {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly breakers: DynamoBreakerStore,
  ) {}

  /**
   * Reads of one breaker, with the cached answers their calls look up, combined while one is in
   * flight: calls to one model that start together share a read sent after each of them asked.
   */
  private readonly combined = new ItemRequestCombiner<string | undefined, Map<string, Record<string, unknown>>>(
    (breakerKey, cacheKeys) => this.readAll(breakerKey, cacheKeys),
    refusedUnapplied,
    // BatchGetItem reads 100 keys at most: the breaker and up to 99 cached answers.
    99,
  );

  async read(cacheKey: string | undefined, breakerKey: string, nowMs: number) {
    const items = await this.combined.submit(breakerKey, cacheKey);
    const breakerItem = items.get(`BREAKER#${breakerKey}`);
    return {
      hit: cacheKey === undefined ? undefined : cachedAnswer(items.get(`CACHE#${cacheKey}`), nowMs),
      breaker: breakerItem ? this.breakers.record(breakerItem) : undefined,
    };
  }

  /**
   * The breaker's item and the cached answers' (consistent reads), by `pk`: one GetItem without
   * a cache key, else one BatchGetItem (keys left unprocessed are read one by one).
   */
  private async readAll(breakerKey: string, cacheKeys: readonly (string | undefined)[]): Promise<Map<string, Record<string, unknown>>> {
    const breaker = { pk: `BREAKER#${breakerKey}`, sk: 'BREAKER' };
    const caches = [...new Set(cacheKeys.filter((k): k is string => k !== undefined))].map((k) => ({ pk: `CACHE#${k}`, sk: 'CACHE' }));
    const found = new Map<string, Record<string, unknown>>();
    if (caches.length === 0) {
      const r = await this.doc.send(new GetCommand({ TableName: this.table, Key: breaker, ConsistentRead: true }));
      if (r.Item) found.set(breaker.pk, r.Item);
      return found;
    }
    const r = await this.doc.send(
      new BatchGetCommand({ RequestItems: { [this.table]: { Keys: [breaker, ...caches], ConsistentRead: true } } }),
    );
    const items = [...(r.Responses?.[this.table] ?? [])];
    for (const key of (r.UnprocessedKeys?.[this.table]?.Keys ?? []) as Record<string, unknown>[]) {
      const again = await this.doc.send(new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }));
      if (again.Item) items.push(again.Item);
    }
    for (const i of items) found.set(String(i.pk), i);
    return found;
  }
}

/** Cached answers as `CACHE#<sha256>` items with a TTL (expiry is also checked on read: TTL deletion lags). */
export class DynamoResponseCache implements ResponseCache {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async put(key: string, answer: CachedAnswer, expiresAtMs: number): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: {
          pk: `CACHE#${key}`,
          sk: 'CACHE',
          text: answer.text,
          usage: answer.usage,
          createdAtMs: answer.createdAtMs,
          ...(answer.servedBy ? { servedBy: answer.servedBy } : {}),
          expiresAtMs,
          expiresAt: Math.ceil(expiresAtMs / 1000),
        },
      }),
    );
  }
}

/**
 * Provider rate limits as `RATE#<provider>` items: a token bucket (`tokens`, `refilledAt`) and the
 * set of calls in flight (`holders`). Taking a slot is one conditional write that both adds the
 * holder and takes a token (`size(holders) < max AND tokens >= 1`); refilling is one write
 * conditioned on the `refilledAt` it was computed from, so concurrent refills cannot add twice.
 */
export class DynamoRateLimitStore implements RateLimitStore {
  /** Slots taken, combined per provider while one is in flight. */
  private readonly takes = new ItemRequestCombiner<{ member: string; max: number }, number | undefined>(
    (provider, parts) => this.takeAll(provider, parts),
    refusedUnapplied,
  );
  /** Slots given back without a refund (an unconditional `DELETE`), combined per provider while one is in flight. */
  private readonly releases = new ItemRequestCombiner<string>(
    (provider, members) =>
      this.doc
        .send(
          new UpdateCommand({
            TableName: this.table,
            Key: this.key(provider),
            UpdateExpression: 'DELETE holders :h',
            ExpressionAttributeValues: { ':h': new Set(members) },
          }),
        )
        .then(() => undefined),
    refusedUnapplied,
    // One set of members: the expression does not grow.
    100,
  );

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  private key(provider: string) {
    return { pk: `RATE#${provider}`, sk: 'RATE' };
  }

  private member(h: SlotHolder): string {
    return `${h.leaseUntilMs}~${h.id}`;
  }

  /** Takes a slot and a token, both or neither: the bucket as written (its last failure), or undefined when full. */
  private async take(provider: string, member: string, max: number): Promise<AcquireOutcome | undefined> {
    try {
      const failedAt = await this.takes.submit(provider, { member, max });
      return failedAt === undefined ? { ok: true } : { ok: true, failedAtMs: failedAt };
    } catch (e) {
      if (isConditionFailure(e)) return undefined;
      throw e;
    }
  }

  /**
   * Slots taken together as one write: as many holders and tokens as parts, while the holders
   * stay under the smallest limit of them and the tokens last (so it applies only when each part,
   * one after another, would).
   * @returns the provider's last failure as written (ms since the epoch), if any
   * @throws ConditionalCheckFailedException when they do not all fit
   */
  private async takeAll(provider: string, parts: readonly { member: string; max: number }[]): Promise<number | undefined> {
    const n = parts.length;
    const room = Math.min(...parts.map((p) => p.max)) - n;
    const r = await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: this.key(provider),
        UpdateExpression: 'ADD holders :h, tokens :minus',
        // (no holders OR room) AND tokens, written without parentheses (AND binds before OR), which
        // dynalite's parser would backtrack over. No holders (every slot free: an empty set is
        // removed) gives room only when the takes fit the limit.
        ConditionExpression:
          room >= 0
            ? 'tokens >= :n AND attribute_not_exists(holders) OR tokens >= :n AND size(holders) <= :room'
            : 'size(holders) <= :room',
        ExpressionAttributeValues: {
          ':h': new Set(parts.map((p) => p.member)),
          ':room': room,
          ':minus': -n,
          ...(room >= 0 ? { ':n': n } : {}),
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const failedAt = r.Attributes?.lastFailureMs;
    return failedAt === undefined ? undefined : num(failedAt);
  }

  async acquire(provider: string, holder: SlotHolder, limit: RateLimit, nowMs: number): Promise<AcquireOutcome> {
    const member = this.member(holder);
    const first = await this.take(provider, member, limit.maxConcurrency);
    if (first) return first;
    const r = await this.doc.send(new GetCommand({ TableName: this.table, Key: this.key(provider), ConsistentRead: true }));
    const item = r.Item;
    const capacity = limit.requestsPerMinute;
    const perMs = limit.requestsPerMinute / 60_000;
    let tokens = num(item?.tokens);
    if (item?.refilledAt === undefined) {
      // A new bucket starts full.
      await conditional(() =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: this.key(provider),
            UpdateExpression: 'SET tokens = :t, refilledAt = :now',
            ConditionExpression: 'attribute_not_exists(refilledAt)',
            ExpressionAttributeValues: { ':t': capacity, ':now': nowMs },
          }),
        ),
      );
      tokens = capacity;
    } else {
      const seen = num(item.refilledAt);
      const add = Math.round(Math.min(capacity - tokens, Math.max(0, nowMs - seen) * perMs) * 1e6) / 1e6;
      if (add > 0) {
        const refilled = await conditional(() =>
          this.doc.send(
            new UpdateCommand({
              TableName: this.table,
              Key: this.key(provider),
              UpdateExpression: 'SET refilledAt = :now ADD tokens :add',
              ConditionExpression: 'refilledAt = :seen',
              ExpressionAttributeValues: { ':now': nowMs, ':add': add, ':seen': seen },
            }),
          ),
        );
        if (refilled) tokens += add;
      }
    }
    const holders = strings(item?.holders);
    const expired = holders.filter((m) => Number(m.split('~')[0]) < nowMs);
    if (expired.length > 0) {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(provider),
          UpdateExpression: 'DELETE holders :h',
          ExpressionAttributeValues: { ':h': new Set(expired) },
        }),
      );
    }
    const again = await this.take(provider, member, limit.maxConcurrency);
    if (again) return again;
    if (holders.length - expired.length >= limit.maxConcurrency) return { ok: false, reason: 'concurrency', waitMs: 50 };
    return { ok: false, reason: 'rate', waitMs: Math.max(1, Math.ceil((1 - Math.min(1, tokens)) / perMs)) };
  }

  /** Frees every concurrency slot of `provider` (their holders are known to be gone: a crashed local process). */
  async releaseAll(provider: string): Promise<void> {
    await this.doc.send(new UpdateCommand({ TableName: this.table, Key: this.key(provider), UpdateExpression: 'REMOVE holders' }));
  }

  async leave(provider: string, holder: SlotHolder, o: { readonly refund?: boolean; readonly failedAtMs?: number } = {}): Promise<void> {
    const member = this.member(holder);
    if (o.failedAtMs !== undefined) {
      // The failure's time lands before the slot is free (a caller that takes it reads it), and
      // only moves forward: a late write of an older failure does not hide a newer one.
      await conditional(() =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: this.key(provider),
            UpdateExpression: 'SET lastFailureMs = :failed',
            ConditionExpression: 'attribute_not_exists(lastFailureMs) OR lastFailureMs < :failed',
            ExpressionAttributeValues: { ':failed': o.failedAtMs },
          }),
        ),
      );
    }
    if (!o.refund) return this.releases.submit(provider, member);
    await this.doc
      .send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(provider),
          UpdateExpression: 'DELETE holders :h ADD tokens :one',
          // Refunded only while the slot is still held (once).
          ConditionExpression: 'contains(holders, :member)',
          ExpressionAttributeValues: { ':h': new Set([member]), ':one': 1, ':member': member },
        }),
      )
      .catch((e: unknown) => {
        // A slot already gone is not an error.
        if (!isConditionFailure(e)) throw e;
      });
  }
}

/** What {@link createDynamoGateway} needs. */
export interface DynamoGatewayOptions {
  doc: DynamoDBDocumentClient;
  table: string;
  providers: ProviderTable;
  config: GatewayConfig;
  metrics: GatewayMetrics;
  clock?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** The model gateway with all its state in the AgentFlow table (the Lambda and the local runtime use this). */
export function createDynamoGateway(o: DynamoGatewayOptions): {
  gateway: ModelGateway;
  ledger: DynamoBudgetLedger;
  breakers: DynamoBreakerStore;
} {
  const clock = o.clock ?? Date.now;
  const ledger = new DynamoBudgetLedger(o.doc, o.table);
  const breakers = new DynamoBreakerStore(o.doc, o.table);
  const probeLeaseMs = (o.config.breaker.probeLeaseSeconds ?? o.config.providerTimeoutSeconds + 10) * 1000;
  const breaker = new CircuitBreaker(breakers, o.config.breaker, clock, () => crypto.randomUUID(), probeLeaseMs);
  const gateway = new ModelGateway({
    providers: o.providers,
    ledger,
    breaker,
    cache: new DynamoResponseCache(o.doc, o.table),
    limits: new DynamoRateLimitStore(o.doc, o.table),
    reads: new DynamoGatewayReads(o.doc, o.table, breakers),
    metrics: o.metrics,
    config: o.config,
    clock,
    ...(o.sleep ? { sleep: o.sleep } : {}),
  });
  return { gateway, ledger, breakers };
}
