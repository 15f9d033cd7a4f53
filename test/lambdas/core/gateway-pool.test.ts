import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { budgetScopes, isLimited, toMicro } from '../../../lambdas/core/budget.js';
import type { ModelRef } from '../../../lambdas/core/contracts.js';
import { type GatewayCall, worstCaseOf } from '../../../lambdas/core/gateway.js';
import { BudgetConfigSchema } from '../../../lambdas/core/gateway-config.js';
import { LOCAL_TABLE } from '../../../lib/local/runtime.js';
import { type GatewayEnv, type GatewayEnvOptions, startGateway } from '../../helpers.js';

// Issue 16: an agent's held budget (BudgetPool), the cache + breaker read in one BatchGetItem, the
// bookkeeping after an answer off its path, and the breaker consulted on every try.

const sonnet: ModelRef = {
  provider: 'bedrock',
  alias: 'claude-sonnet',
  modelId: 'us.anthropic.claude-sonnet',
  contextWindow: 200_000,
  price: { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 },
};

let env: GatewayEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});
async function gateway(o: GatewayEnvOptions = {}): Promise<GatewayEnv> {
  env = await startGateway(o);
  return env;
}

/** Every scope with a limit (dev's shape): a call without a pool would reserve in all four. */
const LIMITS = BudgetConfigSchema.parse({
  perRunUsd: 5,
  global: { monthlyUsd: 3000 },
  projects: { 'ios-app': { dailyUsd: 50, monthlyUsd: 600 } },
});

let n = 0;
const call = (over: Partial<GatewayCall> = {}): GatewayCall => ({
  candidates: [sonnet],
  system: 'You review Swift code. Answer with JSON.',
  messages: [{ role: 'user', content: `Agent: code-review\nCategories: correctness\n+let x = y! // ${++n}` }],
  maxTokens: 1000,
  temperature: 0.2,
  scopes: budgetScopes(LIMITS, { runId: 'run-pool', project: 'ios-app', now: new Date() }),
  cache: true,
  labels: { workflow: 'pr-review', agent: 'code-review', project: 'ios-app' },
  deadlineMs: Date.now() + 30_000,
  ...over,
});

/** Counts the DynamoDB requests the gateway's client sends, by operation. */
function countRequests(g: GatewayEnv): { list: string[] } {
  const seen = { list: [] as string[] };
  g.table.doc.middlewareStack.add(
    (next, context) => async (args) => {
      seen.list.push(String((context as { commandName?: string }).commandName ?? '?').replace(/Command$/, ''));
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
  return seen;
}

/**
 * Makes the gateway's UpdateItems whose expression matches `pattern` fail: `landed-once`, the first
 * one after it landed (its answer lost, as a timeout or a reset socket loses it); `always`, every one
 * before it is sent (the table unavailable).
 */
function failUpdates(g: GatewayEnv, pattern: RegExp, how: 'landed-once' | 'always'): { failed: number } {
  const seen = { failed: 0 };
  g.table.doc.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { UpdateExpression?: string };
      const hit =
        String((context as { commandName?: string }).commandName).startsWith('UpdateItem') && pattern.test(input.UpdateExpression ?? '');
      if (hit && how === 'always') {
        seen.failed++;
        throw new Error('the table is unavailable');
      }
      const out = await next(args);
      if (hit && seen.failed++ === 0) throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
      return out;
    },
    { step: 'initialize', name: `fail ${pattern.source}` },
  );
  return seen;
}

describe('Class: ModelGateway with an agent pool', () => {
  it('sends 2 DynamoDB requests before a call answers once the pool has room (one BatchGetItem, one rate-limit write); growing the pool adds one write per limited scope, unless the pool was prepared', async () => {
    const g = await gateway();
    await g.gateway.complete(call()); // a first call fills the new rate-limit bucket
    const seen = countRequests(g);
    const scopes = call().scopes;
    expect(scopes.every(isLimited)).toBe(true);
    const pool = g.gateway.openPool(scopes);
    const onPath: string[][] = [];
    // The requests before the provider answers are the call's path: after the answer, nothing is
    // awaited on a pool (the settlement, breaker count, slot release and cache store are not).
    let beforeAnswer: string[] = [];
    const inner = g.providers.bedrock;
    g.providers.bedrock = {
      complete: async (r) => {
        const a = await inner.complete(r);
        beforeAnswer = [...seen.list];
        return a;
      },
    };
    // One agent invocation: its calls share its deadline.
    const deadlineMs = Date.now() + 30_000;
    for (let i = 0; i < 5; i++) {
      seen.list.length = 0;
      await g.gateway.complete(call({ pool, deadlineMs }));
      // The bookkeeping starts once the answer is handed back: no request of it was sent before.
      expect(seen.list).toEqual(beforeAnswer);
      await pool.drain(); // the bookkeeping of this call, outside the next one's count
      expect(seen.list.length).toBeGreaterThan(beforeAnswer.length);
      onPath.push(beforeAnswer);
    }
    // The first call reserves the pool's hold in the four limited scopes (as a call without a pool would).
    expect(onPath[0]?.sort()).toEqual(['BatchGetItem', 'UpdateItem', 'UpdateItem', 'UpdateItem', 'UpdateItem', 'UpdateItem']);
    for (const path of onPath.slice(1)) expect(path.sort()).toEqual(['BatchGetItem', 'UpdateItem']);
    await pool.close();

    // An agent that knows its first call's worst case reserves the pool's first hold when it starts
    // (InvokeAgent: twice its plan's first part), so that call's path has no budget write either.
    const first = worstCaseOf(call(), sonnet);
    const prepared = g.gateway.openPool(scopes, { prepare: { estimateMicro: 2 * first, deadlineMs } });
    await prepared.ready(); // the agent reads its input meanwhile
    seen.list.length = 0;
    await g.gateway.complete(call({ pool: prepared, deadlineMs }));
    expect(beforeAnswer.sort()).toEqual(['BatchGetItem', 'UpdateItem']);
    expect(prepared.heldMicro).toBe(2 * first);
    await prepared.close();
    for (const s of scopes) expect((await g.ledger.get(s.key))?.openHolds).toBe(0);
  });

  it('keeps the ledger true: spent grows with every call before the pool closes, and closing settles every scope to the sum of the answers', async () => {
    const g = await gateway();
    const scopes = call().scopes;
    const pool = g.gateway.openPool(scopes);
    const deadlineMs = Date.now() + 30_000;
    let total = 0;
    for (let i = 0; i < 4; i++) {
      const a = await g.gateway.complete(call({ pool, deadlineMs }));
      total += a.costMicro;
    }
    await pool.drain();
    for (const s of scopes) {
      const status = await g.ledger.get(s.key);
      expect(status?.spentMicro).toBe(total);
      expect(status?.openHolds).toBe(1); // one hold, twice the first call's worst case: the later calls fit in it
      expect(status?.committedMicro).toBeGreaterThanOrEqual(total);
    }
    expect((await g.ledger.listUsage(new Date().toISOString().slice(0, 7)))[0]).toMatchObject({ calls: 4, costMicro: total });
    await pool.close();
    for (const s of scopes) expect(await g.ledger.get(s.key)).toMatchObject({ committedMicro: total, spentMicro: total, openHolds: 0 });
  });

  it('never lets 30 agents of 6 calls each commit more than the run limit, and the ledger ends at the exact sum of the answers', async () => {
    const g = await gateway({
      offline: { delayMs: 50 },
      config: { rateLimits: { bedrock: { requestsPerMinute: 100_000, maxConcurrency: 1000 } } },
    });
    // $0.25 per run: about 12 worst cases of 1000-token answers; the 180 calls want far more.
    const scopes = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: 0.25 }), { runId: 'run-race', project: 'ios-app', now: new Date() });
    let answered = 0;
    let refused = 0;
    // The guarantee itself: the worst cases of the calls at the provider at once never pass the limit.
    let atProvider = 0;
    let peak = 0;
    const inner = g.providers.bedrock;
    g.providers.bedrock = {
      complete: async (r) => {
        const w = worstCaseOf({ system: r.system, messages: r.messages, maxTokens: r.maxTokens }, sonnet);
        atProvider += w;
        peak = Math.max(peak, atProvider);
        try {
          return await inner.complete(r);
        } finally {
          atProvider -= w;
        }
      },
    };
    await Promise.all(
      Array.from({ length: 30 }, async () => {
        const pool = g.gateway.openPool(scopes);
        const deadlineMs = Date.now() + 3_000;
        try {
          // Three rounds of two calls at once (an agent's chunks), so holds have several calls in flight.
          for (let round = 0; round < 3; round++) {
            await Promise.all(
              [0, 1].map(async () => {
                try {
                  const a = await g.gateway.complete(call({ pool, scopes, cache: false, deadlineMs }));
                  answered += a.costMicro;
                } catch (e) {
                  // Refused, or out of time waiting for the others' holds to settle: nothing was sent.
                  expect(['BudgetExceededError', 'ProviderTimeoutError']).toContain((e as Error).name);
                  refused++;
                }
              }),
            );
          }
        } finally {
          await pool.close();
        }
      }),
    );
    expect(refused).toBeGreaterThan(0);
    const run = await g.ledger.get(scopes[0]?.key ?? '');
    expect(run).toMatchObject({ committedMicro: answered, spentMicro: answered, openHolds: 0 });
    expect(peak).toBeLessThanOrEqual(toMicro(0.25));
  });

  it('after a crash (the pool never closed), a sweep past its lease releases the rest of the hold and keeps what was charged', async () => {
    const g = await gateway();
    const scopes = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: 5 }), { runId: 'run-crash', project: 'ios-app', now: new Date() });
    const pool = g.gateway.openPool(scopes);
    // The agent's deadline is near: its pool's hold lasts until then plus the margin.
    const a = await g.gateway.complete(call({ pool, scopes, deadlineMs: Date.now() + 2_000 }));
    await pool.drain(); // the charge landed; then the Lambda dies without closing the pool
    const run = scopes[0] ?? scopes[0];
    const before = await g.ledger.get(run?.key ?? '');
    expect(before?.spentMicro).toBe(a.costMicro);
    expect(before?.committedMicro).toBeGreaterThan(a.costMicro);
    expect(await g.ledger.sweep(run as (typeof scopes)[number], Date.now() + 60_000)).toBe(1);
    expect(await g.ledger.get(run?.key ?? '')).toMatchObject({ committedMicro: a.costMicro, spentMicro: a.costMicro, openHolds: 0 });
  });
});

describe('Class: BudgetPool under faults (review findings)', () => {
  it('a sweep of a crashed pool keeps the scope item (its TTL attribute untouched)', async () => {
    const g = await gateway();
    const scopes = call().scopes;
    const pool = g.gateway.openPool(scopes);
    await g.gateway.complete(call({ pool, scopes, deadlineMs: Date.now() + 2_000 }));
    await pool.drain();
    const day = scopes.find((s) => s.kind === 'project-day') as (typeof scopes)[number];
    const key = { pk: `BUDGET#${day.key}`, sk: 'BUDGET' };
    const before = (await g.table.doc.send(new GetCommand({ TableName: LOCAL_TABLE, Key: key }))).Item;
    expect(await g.ledger.sweepAll(Date.now() + 60_000)).toBeGreaterThan(0);
    const after = (await g.table.doc.send(new GetCommand({ TableName: LOCAL_TABLE, Key: key }))).Item;
    expect(after?.expiresAt).toBe(before?.expiresAt);
    expect(after).toMatchObject({ committed: after?.spent });
  });

  it('counts a charge once when its write landed but reported an error (the retry finds it there)', async () => {
    const g = await gateway();
    const charges = failUpdates(g, /^SET #h\d+ = :t/, 'landed-once');
    const scopes = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: 5 }), {
      runId: 'run-ambiguous',
      project: 'ios-app',
      now: new Date(),
    });
    const pool = g.gateway.openPool(scopes);
    const a = await g.gateway.complete(call({ pool, scopes }));
    // The charge is sent while the pool is open (closed at once, the settlement would charge it).
    await pool.drain();
    await pool.close();
    expect(charges.failed).toBeGreaterThan(0);
    expect(await g.ledger.get(scopes[0]?.key ?? '')).toMatchObject({ committedMicro: a.costMicro, spentMicro: a.costMicro, openHolds: 0 });
  });

  it('gives its own idle room back instead of waiting on it when a bigger call does not fit', async () => {
    const g = await gateway();
    const small = call({ maxTokens: 1000 });
    const big = call({ maxTokens: 3000 });
    const limit = 2 * worstCaseOf(small, sonnet) + worstCaseOf(big, sonnet) - 1;
    const scopes = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: limit / 1e6 }), {
      runId: 'run-idle',
      project: 'ios-app',
      now: new Date(),
    });
    const deadlineMs = Date.now() + 30_000;
    const pool = g.gateway.openPool(scopes);
    const started = Date.now();
    const a = await g.gateway.complete({ ...small, scopes, pool, deadlineMs });
    const b = await g.gateway.complete({ ...big, scopes, pool, deadlineMs });
    expect(Date.now() - started).toBeLessThan(5_000); // no wait for its own holds (the budget wait lasts until the deadline)
    await pool.close();
    expect(await g.ledger.get(scopes[0]?.key ?? '')).toMatchObject({ spentMicro: a.costMicro + b.costMicro, openHolds: 0 });
  });

  it('charges a call in the settlement when the pool closes before its charge is sent: one write per limited scope, its usage counted once', async () => {
    const g = await gateway();
    const scopes = call().scopes;
    const held = scopes.filter(isLimited);
    const pool = g.gateway.openPool(scopes);
    const budgetWrites: string[] = [];
    g.table.doc.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { Key?: { pk?: string }; UpdateExpression?: string };
        if (String((context as { commandName?: string }).commandName).startsWith('UpdateItem') && input.Key?.pk?.startsWith('BUDGET#')) {
          budgetWrites.push(`${input.Key.pk} ${input.UpdateExpression}`);
        }
        return next(args);
      },
      { step: 'initialize', name: 'budgetWrites' },
    );
    const a = await g.gateway.complete(call({ pool }));
    const reserved = budgetWrites.length;
    // As an agent with one call does: it closes its pool as soon as the answer is back.
    await pool.close();
    const after = budgetWrites.slice(reserved);
    expect(after).toHaveLength(held.length);
    for (const w of after) expect(w).toMatch(/DELETE holds :settled/);
    for (const s of held)
      expect(await g.ledger.get(s.key)).toMatchObject({ committedMicro: a.costMicro, spentMicro: a.costMicro, openHolds: 0 });
    expect(await g.ledger.listUsage(new Date().toISOString().slice(0, 7))).toEqual([
      expect.objectContaining({ model: sonnet.alias, calls: 1, costMicro: a.costMicro, inputTokens: a.usage.inputTokens }),
    ]);
  });

  it('settles a pool whose first call was charged and whose last was not: every scope ends at the sum, the month counts both calls once', async () => {
    const g = await gateway();
    const scopes = call().scopes;
    const pool = g.gateway.openPool(scopes);
    const first = await g.gateway.complete(call({ pool }));
    await pool.drain(); // charged while the pool is open
    const last = await g.gateway.complete(call({ pool }));
    await pool.close(); // its charge goes with the settlement
    const total = first.costMicro + last.costMicro;
    for (const s of scopes) expect(await g.ledger.get(s.key)).toMatchObject({ committedMicro: total, spentMicro: total, openHolds: 0 });
    expect(await g.ledger.listUsage(new Date().toISOString().slice(0, 7))).toEqual([
      expect.objectContaining({ calls: 2, costMicro: total, inputTokens: first.usage.inputTokens + last.usage.inputTokens }),
    ]);
  });

  it('counts the usage a settlement carries once when its write landed but reported an error', async () => {
    const g = await gateway();
    const settlements = failUpdates(g, /DELETE holds :settled/, 'landed-once');
    const scopes = budgetScopes(BudgetConfigSchema.parse({ global: { monthlyUsd: 3000 } }), {
      runId: 'run-ambiguous-settle',
      project: 'ios-app',
      now: new Date(),
    });
    const pool = g.gateway.openPool(scopes);
    const a = await g.gateway.complete(call({ pool, scopes }));
    await pool.close();
    expect(settlements.failed).toBeGreaterThan(0);
    const month = scopes.find((s) => s.kind === 'global-month');
    expect(await g.ledger.get(month?.key ?? '')).toMatchObject({ committedMicro: a.costMicro, spentMicro: a.costMicro, openHolds: 0 });
    expect(await g.ledger.listUsage(new Date().toISOString().slice(0, 7))).toEqual([
      expect.objectContaining({ calls: 1, costMicro: a.costMicro }),
    ]);
  });

  it('charges the call on its own when that settlement fails, so the hold keeps its cost for the sweep', async () => {
    const g = await gateway();
    const scopes = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: 5 }), {
      runId: 'run-settle-fails',
      project: 'ios-app',
      now: new Date(),
    });
    const pool = g.gateway.openPool(scopes);
    failUpdates(g, /DELETE holds :settled/, 'always');
    const a = await g.gateway.complete(call({ pool, scopes }));
    await pool.close();
    expect(await g.ledger.get(scopes[0]?.key ?? '')).toMatchObject({ spentMicro: a.costMicro, openHolds: 1 });
  });

  it('closing waits for a call still in flight, whose cost is then settled', async () => {
    const g = await gateway({ offline: { delayMs: 300 } });
    const scopes = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: 5 }), { runId: 'run-inflight', project: 'ios-app', now: new Date() });
    const pool = g.gateway.openPool(scopes);
    const answer = g.gateway.complete(call({ pool, scopes }));
    await new Promise((r) => setTimeout(r, 150));
    const closed = pool.close();
    const a = await answer;
    await closed;
    expect(await g.ledger.get(scopes[0]?.key ?? '')).toMatchObject({ committedMicro: a.costMicro, spentMicro: a.costMicro, openHolds: 0 });
  });

  it('gives the slot it asked for beside the read back (with its token) when no try starts', async () => {
    const g = await gateway();
    await g.gateway.complete(call()); // the bucket exists
    const slow = (await import('../../../lambdas/adapters/gateway-store.js')).DynamoGatewayReads.prototype;
    const read = slow.read;
    slow.read = async function (this: unknown, ...args: Parameters<typeof read>) {
      await new Promise((r) => setTimeout(r, 150));
      return read.apply(this as never, args);
    };
    try {
      await expect(g.gateway.complete(call({ deadlineMs: Date.now() + 60 }))).rejects.toThrow(/no time left/);
    } finally {
      slow.read = read;
    }
    const rate = (await g.table.doc.send(new GetCommand({ TableName: LOCAL_TABLE, Key: { pk: 'RATE#bedrock', sk: 'RATE' } }))).Item;
    expect([...((rate?.holders as Set<string> | undefined) ?? [])]).toEqual([]);
  });
});

describe('Class: ModelGateway breaker read beside the slot', () => {
  // The read and the slot's write are served side by side: the slot may be one a failing call gave
  // back after the read was served. The slot's write says when the provider last failed.

  /** Delays the rate-limit store's answers by `ms` (its writes are served at once). */
  async function slowSlot(ms: number): Promise<() => void> {
    const store = (await import('../../../lambdas/adapters/gateway-store.js')).DynamoRateLimitStore.prototype;
    const acquire = store.acquire;
    store.acquire = async function (this: unknown, ...args: Parameters<typeof acquire>) {
      const r = await acquire.apply(this as never, args);
      await new Promise((ok) => setTimeout(ok, ms));
      return r;
    };
    return () => {
      store.acquire = acquire;
    };
  }

  it('does not read the breaker again when no call failed since the read, however late its slot came', async () => {
    const g = await gateway();
    await g.gateway.complete(call()); // the bucket exists: the next slot is one write
    const seen = countRequests(g);
    const restore = await slowSlot(40);
    try {
      await g.gateway.complete(call());
    } finally {
      restore();
    }
    expect(seen.list.filter((op) => op === 'BatchGetItem' || op === 'GetItem')).toEqual(['BatchGetItem']);
  });

  it('reads the breaker again before the call when a call failed and gave its slot back since the read', async () => {
    const g = await gateway({
      offline: { faults: { bedrock: 503 } },
      config: { retry: { attemptsPerProvider: 1, baseDelayMs: 1, maxDelayMs: 2 } },
    });
    await expect(g.gateway.complete(call({ cache: false }))).rejects.toThrow();
    const rate = (await g.table.doc.send(new GetCommand({ TableName: LOCAL_TABLE, Key: { pk: 'RATE#bedrock', sk: 'RATE' } }))).Item;
    expect(Number(rate?.lastFailureMs)).toBeGreaterThan(Date.now() - 5_000);
    g.server.setFaults({});
    const seen = countRequests(g);
    await g.gateway.complete(call({ cache: false }));
    // The breaker read beside the slot (alone: no cache key), then again before the call.
    expect(seen.list.filter((op) => op === 'BatchGetItem' || op === 'GetItem')).toEqual(['GetItem', 'GetItem']);
  });
});

describe('Class: DynamoRateLimitStore failures', () => {
  it('records a failing call before its slot is free, and never moves the last failure back in time', async () => {
    const g = await gateway();
    const { DynamoRateLimitStore } = await import('../../../lambdas/adapters/gateway-store.js');
    const limits = new DynamoRateLimitStore(g.table.doc, LOCAL_TABLE);
    const limit = { requestsPerMinute: 100, maxConcurrency: 2 };
    const a = { id: 'a', leaseUntilMs: Date.now() + 60_000 };
    const b = { id: 'b', leaseUntilMs: Date.now() + 60_000 };
    expect(await limits.acquire('bedrock', a, limit, Date.now())).toEqual({ ok: true });
    expect(await limits.acquire('bedrock', b, limit, Date.now())).toEqual({ ok: true });
    // b's newer failure lands first; a's older one, late, does not replace it.
    await limits.leave('bedrock', b, { failedAtMs: 5_000 });
    await limits.leave('bedrock', a, { failedAtMs: 3_000 });
    const c = { id: 'c', leaseUntilMs: Date.now() + 60_000 };
    expect(await limits.acquire('bedrock', c, limit, Date.now())).toEqual({ ok: true, failedAtMs: 5_000 });
    const rate = (await g.table.doc.send(new GetCommand({ TableName: LOCAL_TABLE, Key: { pk: 'RATE#bedrock', sk: 'RATE' } }))).Item;
    expect([...((rate?.holders as Set<string> | undefined) ?? [])]).toHaveLength(1);
  });
});

describe('Class: ModelGateway breaker on every try', () => {
  it('sheds load: 90 callers at once against a Bedrock answering 503 send at most threshold + concurrency requests', async () => {
    // 30 runs × 3 agents arriving together; 20 calls in flight at most; the breaker opens at 5 failures.
    const g = await gateway({
      offline: { faults: { bedrock: 503 }, delayMs: 30 },
      // Retries back off as configured by default (up to 500 ms, then 1 s), not the 1–5 ms of the other tests.
      config: {
        rateLimits: { bedrock: { requestsPerMinute: 100_000, maxConcurrency: 20 } },
        retry: { attemptsPerProvider: 3, baseDelayMs: 500, maxDelayMs: 8000 },
      },
    });
    const results = await Promise.allSettled(
      Array.from({ length: 90 }, () => g.gateway.complete(call({ cache: false, deadlineMs: Date.now() + 20_000 }))),
    );
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    // Without a read before every try, callers admitted before the breaker opened kept retrying (266 of 270).
    // Now: the first 20 in flight, plus a slot handed on after each of the first 4 failures (counted
    // before the slot is given back, the breaker still closed below 5): at most 20 + 5 − 1.
    expect(g.server.stats.bedrock).toBeLessThanOrEqual(5 + 20);
    const names = results.map((r) => (r.status === 'rejected' ? (r.reason as Error).name : ''));
    expect(names.filter((x) => x === 'CircuitOpenError').length).toBeGreaterThan(60);
  });

  it('writes nothing to a healthy breaker on success, and counts successes again once its window holds a failure', async () => {
    const g = await gateway({
      offline: { faults: { bedrock: 503 } },
      config: { retry: { attemptsPerProvider: 1, baseDelayMs: 1, maxDelayMs: 2 } },
    });
    const key = `bedrock#${sonnet.modelId}`;
    await expect(g.gateway.complete(call({ cache: false }))).rejects.toThrow();
    expect(await g.breakers.get(key)).toMatchObject({ state: 'closed', failures: 1, calls: 1 });
    // Bedrock recovers: its successes count while the window holds that failure.
    g.server.setFaults({});
    await g.gateway.complete(call({ cache: false }));
    await g.gateway.complete(call({ cache: false }));
    expect(await g.breakers.get(key)).toMatchObject({ state: 'closed', failures: 1, calls: 3 });
    // A healthy provider's breaker: never written.
    const mini: ModelRef = { ...sonnet, provider: 'openai', alias: 'gpt-4.1-mini', modelId: 'gpt-4.1-mini' };
    await g.gateway.complete(call({ candidates: [mini], cache: false }));
    expect(await g.breakers.get('openai#gpt-4.1-mini')).toBeUndefined();
  });

  it('stops retrying a candidate once another caller opened its breaker, and falls back', async () => {
    const g = await gateway({
      offline: { faults: { bedrock: 503 } },
      config: { retry: { attemptsPerProvider: 3, baseDelayMs: 1, maxDelayMs: 5 } },
    });
    const mini: ModelRef = {
      provider: 'openai',
      alias: 'gpt-4.1-mini',
      modelId: 'gpt-4.1-mini',
      contextWindow: 1_000_000,
      price: { input: 0.4, output: 1.6, cacheRead: 0.1, cacheWrite: 0.4 },
    };
    // Open the breaker from outside while this call waits between its tries.
    const inner = g.providers.bedrock;
    g.providers.bedrock = {
      complete: async (r) => {
        try {
          return await inner.complete(r);
        } finally {
          await g.breakers.trip(`bedrock#${sonnet.modelId}`, {
            provider: 'bedrock',
            model: sonnet.modelId,
            nowMs: Date.now(),
            cooldownMs: 30_000,
            reason: 'another caller',
            force: true,
          });
        }
      },
    };
    const a = await g.gateway.complete(call({ candidates: [sonnet, mini], cache: false }));
    expect(a.model.provider).toBe('openai');
    expect(g.server.stats.bedrock).toBe(1);
    expect(a.attempts.map((t) => [t.provider, t.outcome])).toEqual([
      ['bedrock', 'error'],
      ['bedrock', 'skipped'],
      ['openai', 'ok'],
    ]);
  });
});
