import { afterEach, describe, expect, it } from 'vitest';
import {
  DynamoBreakerStore,
  DynamoBudgetLedger,
  DynamoGatewayReads,
  DynamoRateLimitStore,
  DynamoResponseCache,
} from '../../../lambdas/adapters/gateway-store.js';
import { ItemRequestCombiner } from '../../../lambdas/adapters/request-combiner.js';
import type { BudgetScope, Hold } from '../../../lambdas/core/budget.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../../../lib/local/runtime.js';

// Issue 16: writes to one item that arrive while one is in flight go as one request (group commit).

/** A write that takes `ms` and records what it was sent. */
function recorder(ms = 5, fail?: (parts: readonly number[]) => Error | undefined) {
  const sent: number[][] = [];
  const write = async (_key: string, parts: readonly number[]) => {
    sent.push([...parts]);
    await new Promise((r) => setTimeout(r, ms));
    const e = fail?.(parts);
    if (e) throw e;
  };
  return { sent, write };
}

describe('Class: ItemRequestCombiner', () => {
  it('sends the first write at once and the ones arriving during it together, per item', async () => {
    const r = recorder();
    const c = new ItemRequestCombiner<number>(r.write);
    await Promise.all([c.submit('a', 1), c.submit('a', 2), c.submit('a', 3), c.submit('b', 4)]);
    expect(r.sent).toEqual([[1], [4], [2, 3]]);
    // Nothing in flight: the next write goes alone again.
    await c.submit('a', 5);
    expect(r.sent.at(-1)).toEqual([5]);
  });

  it('sends at most maxParts in one request', async () => {
    const r = recorder();
    const c = new ItemRequestCombiner<number>(r.write, undefined, 2);
    await Promise.all([1, 2, 3, 4, 5].map((n) => c.submit('a', n)));
    expect(r.sent).toEqual([[1], [2, 3], [4, 5]]);
  });

  it('sends a combined request refused for a part again part by part: each caller gets its own outcome', async () => {
    const refused = Object.assign(new Error('refused'), { name: 'ConditionalCheckFailedException' });
    const r = recorder(5, (parts) => (parts.includes(3) ? refused : undefined));
    const c = new ItemRequestCombiner<number>(r.write, (e) => (e as Error).name === 'ConditionalCheckFailedException');
    const outcomes = await Promise.allSettled([1, 2, 3, 4].map((n) => c.submit('a', n)));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[2] as PromiseRejectedResult).reason).toBe(refused);
    expect(r.sent).toEqual([[1], [2, 3, 4], [2], [3], [4]]);
  });

  it('stops holding the item back for a request that does not answer in time (a socket lost while a Lambda was frozen)', async () => {
    const sent: number[][] = [];
    const c = new ItemRequestCombiner<number>(
      (_key, parts) => {
        sent.push([...parts]);
        // The first request never answers.
        return parts.includes(1) ? new Promise<void>(() => undefined) : Promise.resolve();
      },
      undefined,
      20,
      50,
    );
    void c.submit('a', 1);
    // Queued behind the request that never answers, then sent once it is late.
    await Promise.all([c.submit('a', 2), c.submit('a', 3)]);
    expect(sent).toEqual([[1], [2, 3]]);
    await c.submit('a', 4);
    expect(sent.at(-1)).toEqual([4]);
  });

  it('gives any other error to every caller of the combined request, without sending it again (it may have landed)', async () => {
    const timeout = Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
    const r = recorder(5, (parts) => (parts.length > 1 ? timeout : undefined));
    const c = new ItemRequestCombiner<number>(r.write, (e) => (e as Error).name === 'ConditionalCheckFailedException');
    const outcomes = await Promise.allSettled([1, 2, 3].map((n) => c.submit('a', n)));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
    expect(r.sent).toEqual([[1], [2, 3]]);
    // The item is free again for the next request.
    await c.submit('a', 4);
    expect(r.sent.at(-1)).toEqual([4]);
  });
});

describe('The gateway store: combined writes against the local table', () => {
  let table: LocalTable | undefined;
  afterEach(async () => {
    await table?.stop();
    table = undefined;
  });

  const scope: BudgetScope = { kind: 'run', key: 'run#combined', limitMicro: 10_000_000, expiresAtSeconds: 2_000_000_000 };
  const open: BudgetScope = { kind: 'global-month', key: 'global#month#2026-11', expiresAtSeconds: 2_000_000_000 };
  const usage = (model: string, costMicro: number) => ({
    month: '2026-11',
    provider: 'bedrock',
    model,
    costMicro,
    inputTokens: 100,
    outputTokens: 10,
    cachedTokens: 0,
    cacheHit: false,
  });

  it('40 holds charged and settled at once on one scope item: every cost counted once, fewer requests', async () => {
    table = await startLocalTable();
    let updates = 0;
    table.doc.middlewareStack.add(
      (next, context) => async (args) => {
        if (String((context as { commandName?: string }).commandName).startsWith('UpdateItem')) updates++;
        return next(args);
      },
      { step: 'initialize', name: 'countUpdates' },
    );
    const ledger = new DynamoBudgetLedger(table.doc, LOCAL_TABLE);
    const holds: Hold[] = Array.from({ length: 40 }, (_, i) => ({ id: `h${i}`, estimateMicro: 50_000, expiresAtMs: Date.now() + 60_000 }));
    for (const h of holds) expect((await ledger.reserve(scope, h)).ok).toBe(true);
    updates = 0;
    // Each hold: two charges (1,000 then 3,000 µUSD in all), then its settlement at 3,000 — all holds at once.
    const results = await Promise.all(
      holds.map(async (h, i) => {
        const a = await ledger.charge(scope, h, { fromMicro: 0, toMicro: 1_000 }, i % 2 ? [usage('sonnet', 1_000)] : []);
        const b = await ledger.charge(scope, h, { fromMicro: 1_000, toMicro: 3_000 });
        const s = await ledger.settleCharged(scope, h, 3_000, 3_000);
        return [a, b, s];
      }),
    );
    expect(results.flat().every(Boolean)).toBe(true);
    expect(await ledger.get(scope.key)).toMatchObject({ committedMicro: 40 * 3_000, spentMicro: 40 * 3_000, openHolds: 0 });
    // Alone, 120 writes (two charges and a settlement per hold).
    expect(updates).toBeLessThan(120);
    // A settled hold cannot be charged again (its condition fails, combined or not).
    expect(await ledger.charge(scope, holds[0] as Hold, { fromMicro: 3_000, toMicro: 4_000 })).toBe(false);
  });

  it('a combined write with one stale part still applies the others, and the stale one recovers from the ledger', async () => {
    table = await startLocalTable();
    const ledger = new DynamoBudgetLedger(table.doc, LOCAL_TABLE);
    const holds: Hold[] = Array.from({ length: 6 }, (_, i) => ({ id: `s${i}`, estimateMicro: 50_000, expiresAtMs: Date.now() + 60_000 }));
    for (const h of holds) await ledger.reserve(scope, h);
    await ledger.charge(scope, holds[5] as Hold, { fromMicro: 0, toMicro: 2_000 });
    // Hold 5's caller believes nothing was charged yet (from 0): its part fails in the combined write.
    const results = await Promise.all(holds.map((h) => ledger.charge(scope, h, { fromMicro: 0, toMicro: 2_000 })));
    expect(results).toEqual([true, true, true, true, true, true]);
    expect(await ledger.get(scope.key)).toMatchObject({ spentMicro: 6 * 2_000 });
  });

  it('additions to a scope without a limit, and usage alone, arriving together are summed per model', async () => {
    table = await startLocalTable();
    const ledger = new DynamoBudgetLedger(table.doc, LOCAL_TABLE);
    await Promise.all([
      ...Array.from({ length: 30 }, (_, i) => ledger.add(open, 1_000, usage(i % 3 ? 'sonnet' : 'haiku', 1_000))),
      ledger.recordUsage({ ...usage('sonnet', 0), cacheHit: true }),
    ]);
    expect(await ledger.get(open.key)).toMatchObject({ committedMicro: 30_000, spentMicro: 30_000 });
    const rows = await ledger.listUsage('2026-11');
    expect(rows.find((r) => r.model === 'sonnet')).toMatchObject({ calls: 20, cacheHits: 1, costMicro: 20_000, inputTokens: 2_100 });
    expect(rows.find((r) => r.model === 'haiku')).toMatchObject({ calls: 10, cacheHits: 0, costMicro: 10_000, inputTokens: 1_000 });
  });

  it('reservations arriving together, combined, never pass the limit: exactly as many as fit', async () => {
    table = await startLocalTable();
    const ledger = new DynamoBudgetLedger(table.doc, LOCAL_TABLE);
    const tight: BudgetScope = { ...scope, key: 'run#tight', limitMicro: 1_000_000 };
    // 50 holds of 0.05 USD against a 1 USD limit: 20 fit.
    const holds: Hold[] = Array.from({ length: 50 }, (_, i) => ({ id: `r${i}`, estimateMicro: 50_000, expiresAtMs: Date.now() + 60_000 }));
    const outcomes = await Promise.all(holds.map((h) => ledger.reserve(tight, h)));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(20);
    expect(await ledger.get(tight.key)).toMatchObject({ committedMicro: 1_000_000, openHolds: 20 });
    // A refusal reports the scope as found.
    expect(outcomes.find((o) => !o.ok)).toMatchObject({ ok: false, committedMicro: expect.any(Number) });
  });

  /** Fails the first UpdateItem that `match` accepts (before it is sent), after 20 ms. */
  function failFirst(t: LocalTable, name: string, match: (expression: string) => boolean) {
    let failed = false;
    t.doc.middlewareStack.add(
      (next, context) => async (args) => {
        const expression = String((args.input as { UpdateExpression?: string }).UpdateExpression ?? '');
        if (!failed && String((context as { commandName?: string }).commandName).startsWith('UpdateItem') && match(expression)) {
          failed = true;
          await new Promise((r) => setTimeout(r, 20));
          throw Object.assign(new Error('throttled'), { name });
        }
        return next(args);
      },
      { step: 'initialize', name: 'failFirst' },
    );
  }

  it('a combined reservation on an item without `committed` yet (its first request failed) still keeps the limit', async () => {
    table = await startLocalTable();
    failFirst(table, 'ProvisionedThroughputExceededException', (x) => x.includes('holds :hold'));
    const ledger = new DynamoBudgetLedger(table.doc, LOCAL_TABLE);
    const fresh: BudgetScope = { ...scope, key: 'run#fresh', limitMicro: 1_000_000 };
    // 11 holds of 0.9 USD against 1 USD: one fits.
    const holds: Hold[] = Array.from({ length: 11 }, (_, i) => ({ id: `f${i}`, estimateMicro: 900_000, expiresAtMs: Date.now() + 60_000 }));
    const outcomes = await Promise.allSettled(holds.map((h) => ledger.reserve(fresh, h)));
    expect(outcomes.filter((o) => o.status === 'fulfilled' && o.value.ok)).toHaveLength(1);
    expect(await ledger.get(fresh.key)).toMatchObject({ committedMicro: 900_000, openHolds: 1 });
  });

  it('combined slot takes when every slot is free (no holders set) after a failed first take keep the concurrency limit', async () => {
    table = await startLocalTable();
    const limits = new DynamoRateLimitStore(table.doc, LOCAL_TABLE);
    const limit = { requestsPerMinute: 6000, maxConcurrency: 12 };
    const first = { id: 'first', leaseUntilMs: Date.now() + 60_000 };
    await limits.acquire('bedrock', first, limit, Date.now());
    await limits.leave('bedrock', first);
    failFirst(table, 'ThrottlingException', (x) => x.startsWith('ADD holders'));
    const holders = Array.from({ length: 21 }, (_, i) => ({ id: `u${i}`, leaseUntilMs: Date.now() + 60_000 }));
    const outcomes = await Promise.allSettled(holders.map((h) => limits.acquire('bedrock', h, limit, Date.now())));
    expect(outcomes.filter((o) => o.status === 'fulfilled' && o.value.ok)).toHaveLength(12);
  });

  it('one hold settled twice at once (two sweeps) beside another hold: one settlement lands, the other says so, the other hold is settled', async () => {
    table = await startLocalTable();
    const ledger = new DynamoBudgetLedger(table.doc, LOCAL_TABLE);
    const dup: BudgetScope = { ...scope, key: 'run#dup' };
    const holds: Hold[] = Array.from({ length: 3 }, (_, i) => ({ id: `d${i}`, estimateMicro: 50_000, expiresAtMs: Date.now() + 60_000 }));
    for (const h of holds) await ledger.reserve(dup, h);
    for (const h of holds) await ledger.charge(dup, h, { fromMicro: 0, toMicro: 1_000 });
    const [h0, h1, h2] = holds as [Hold, Hold, Hold];
    // The first goes alone; the other three are combined, two of them for the same hold.
    const results = await Promise.all([
      ledger.settleCharged(dup, h2, 1_000, 1_000),
      ledger.settleCharged(dup, h0, 1_000, 1_000),
      ledger.settleCharged(dup, h0, 1_000, 1_000),
      ledger.settleCharged(dup, h1, 1_000, 1_000),
    ]);
    expect(results[0]).toBe(true);
    expect([results[1], results[2]].sort()).toEqual([false, true]);
    expect(results[3]).toBe(true);
    expect(await ledger.get(dup.key)).toMatchObject({ committedMicro: 3_000, spentMicro: 3_000, openHolds: 0 });
  });

  it('slots taken together, combined, never pass the concurrency limit, and report the last failure', async () => {
    table = await startLocalTable();
    const limits = new DynamoRateLimitStore(table.doc, LOCAL_TABLE);
    const limit = { requestsPerMinute: 6000, maxConcurrency: 12 };
    const first = { id: 'first', leaseUntilMs: Date.now() + 60_000 };
    expect((await limits.acquire('openai', first, limit, Date.now())).ok).toBe(true);
    await limits.leave('openai', first, { failedAtMs: 1_234 });
    const holders = Array.from({ length: 30 }, (_, i) => ({ id: `t${i}`, leaseUntilMs: Date.now() + 60_000 }));
    const outcomes = await Promise.all(holders.map((h) => limits.acquire('openai', h, limit, Date.now())));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(12);
    for (const o of outcomes.filter((o) => o.ok)) expect(o).toMatchObject({ failedAtMs: 1_234 });
  });

  it('breaker reads with cache lookups arriving together share one read: each caller gets its own cached answer', async () => {
    table = await startLocalTable();
    let reads = 0;
    table.doc.middlewareStack.add(
      (next, context) => async (args) => {
        if (/^(BatchGetItem|GetItem)/.test(String((context as { commandName?: string }).commandName))) reads++;
        return next(args);
      },
      { step: 'initialize', name: 'countReads' },
    );
    const breakers = new DynamoBreakerStore(table.doc, LOCAL_TABLE);
    const reads_ = new DynamoGatewayReads(table.doc, LOCAL_TABLE, breakers);
    const cache = new DynamoResponseCache(table.doc, LOCAL_TABLE);
    const now = Date.now();
    const answer = (text: string) => ({
      text,
      usage: { inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 },
      createdAtMs: now,
    });
    await cache.put('a', answer('answer a'), now + 60_000);
    await cache.put('b', answer('answer b'), now + 60_000);
    await cache.put('old', answer('expired'), now - 1);
    await breakers.count('bedrock#m', { provider: 'bedrock', model: 'm', failed: true, nowMs: now, windowMs: 60_000 });
    reads = 0;
    const keys = ['a', 'b', 'missing', undefined, 'old', 'a', 'b', undefined];
    const got = await Promise.all(keys.map((k) => reads_.read(k, 'bedrock#m', now)));
    expect(got.map((g) => g.hit?.text)).toEqual([
      'answer a',
      'answer b',
      undefined,
      undefined,
      undefined,
      'answer a',
      'answer b',
      undefined,
    ]);
    for (const g of got) expect(g.breaker).toMatchObject({ failures: 1 });
    // The first read alone, the other seven in one.
    expect(reads).toBe(2);
  });

  it('slots given back together all leave the rate limit item', async () => {
    table = await startLocalTable();
    const limits = new DynamoRateLimitStore(table.doc, LOCAL_TABLE);
    const limit = { requestsPerMinute: 6000, maxConcurrency: 20 };
    const holders = Array.from({ length: 20 }, (_, i) => ({ id: `c${i}`, leaseUntilMs: Date.now() + 60_000 }));
    for (const h of holders) expect((await limits.acquire('bedrock', h, limit, Date.now())).ok).toBe(true);
    expect((await limits.acquire('bedrock', { id: 'late', leaseUntilMs: Date.now() + 60_000 }, limit, Date.now())).ok).toBe(false);
    await Promise.all(holders.map((h) => limits.leave('bedrock', h)));
    // Every slot is free again: 20 new callers, one after another, all get one.
    for (let i = 0; i < 20; i++) {
      expect((await limits.acquire('bedrock', { id: `next${i}`, leaseUntilMs: Date.now() + 60_000 }, limit, Date.now())).ok).toBe(true);
    }
  });
});
