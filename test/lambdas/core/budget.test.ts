import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoBudgetLedger } from '../../../lambdas/adapters/gateway-store.js';
import { type BudgetScope, budgetScopes, reserveBudget, toMicro, worstCaseMicro } from '../../../lambdas/core/budget.js';
import { BudgetConfigSchema } from '../../../lambdas/core/gateway-config.js';
import { requestTokens } from '../../../lambdas/core/tokenizer.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../../../lib/local/runtime.js';

let table: LocalTable;
let ledger: DynamoBudgetLedger;
beforeAll(async () => {
  table = await startLocalTable();
  ledger = new DynamoBudgetLedger(table.doc, LOCAL_TABLE);
});
afterAll(async () => {
  await table.stop();
});

let n = 0;
const scope = (limitUsd?: number): BudgetScope => ({
  kind: 'project-day',
  key: `project#test-${++n}#day#2026-11-21`,
  ...(limitUsd !== undefined ? { limitMicro: toMicro(limitUsd) } : {}),
  expiresAtSeconds: 2_000_000_000,
});
const hold = (id: string, estimateMicro: number, expiresAtMs = Date.now() + 60_000) => ({ id, estimateMicro, expiresAtMs });

/** A deterministic pseudo-random sequence (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('Function: reserveBudget', () => {
  it('never lets 200 concurrent reservations with random estimates commit more than the $5 limit, and settles to the exact sum', async () => {
    // Prepare
    const s = scope(5);
    const random = rng(42);
    const calls = Array.from({ length: 200 }, (_, i) => {
      const estimate = 10_000 + Math.floor(random() * 190_000); // $0.01 – $0.20 worst case
      return { id: `call-${i}`, estimate, actual: Math.floor(random() * estimate) };
    });
    // Act: every reservation is one conditional write; the value each successful write returns is
    // the committed amount right after it, so the maximum over them is the maximum ever reached.
    const seen: number[] = [];
    const outcomes = await Promise.all(
      calls.map(async (c) => {
        const h = hold(c.id, c.estimate);
        const r = await ledger.reserve(s, h);
        if (r.ok) seen.push(r.committedMicro);
        return { ...c, h, ok: r.ok };
      }),
    );
    // Assess
    const accepted = outcomes.filter((o) => o.ok);
    expect(accepted.length).toBeGreaterThan(20);
    expect(accepted.length).toBeLessThan(200);
    expect(Math.max(...seen)).toBeLessThanOrEqual(toMicro(5));
    const committed = (await ledger.get(s.key))?.committedMicro ?? 0;
    expect(committed).toBe(accepted.reduce((t, o) => t + o.estimate, 0));
    expect(committed).toBeLessThanOrEqual(toMicro(5));

    await Promise.all(accepted.map((o) => ledger.settle(s, o.h, o.actual)));
    const after = await ledger.get(s.key);
    const actualSum = accepted.reduce((t, o) => t + o.actual, 0);
    expect(after).toMatchObject({ committedMicro: actualSum, spentMicro: actualSum, openHolds: 0 });
  });

  it('settles each call once: a repeated settle or release changes nothing', async () => {
    const s = scope(1);
    const h = hold('once', 500_000);
    await ledger.reserve(s, h);
    expect(await ledger.settle(s, h, 1_234)).toBe(true);
    expect(await ledger.settle(s, h, 1_234)).toBe(false);
    expect(await ledger.release(s, h)).toBe(false);
    expect(await ledger.get(s.key)).toMatchObject({ committedMicro: 1_234, spentMicro: 1_234, openHolds: 0 });
  });

  it('leaves the budget free after a burst of 64k-token reservations that settle at almost no cost (no pinning at the cap)', async () => {
    const s = scope(5);
    const estimate = worstCaseMicro(requestTokens('bedrock', 'system', [{ content: 'x'.repeat(2000) }]), 64_000, {
      input: 3,
      output: 15,
      cacheRead: 0.3,
      cacheWrite: 3.75,
    });
    expect(estimate).toBeGreaterThan(960_000); // ≈ $0.97 each: five fit under $5
    for (let round = 0; round < 4; round++) {
      const results = await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          const h = hold(`burst-${round}-${i}`, estimate);
          try {
            const r = await reserveBudget(ledger, [s], h, Date.now());
            await r.settle(40); // $0.00004 actual
            return true;
          } catch (e) {
            expect((e as Error).name).toBe('BudgetExceededError');
            return false;
          }
        }),
      );
      expect(results.filter(Boolean).length).toBeGreaterThanOrEqual(5);
    }
    const after = await ledger.get(s.key);
    expect(after?.openHolds).toBe(0);
    expect(after?.committedMicro).toBe(after?.spentMicro);
    expect(after?.committedMicro).toBeLessThan(10_000);
  });

  it('adds a reservation once when the SDK sends it again after a lost answer (alone, and combined with others)', async () => {
    // Prepare: a client whose first reservation write reaches the table and then loses its answer,
    // as a timeout or a reset socket does; the SDK's retry sends the same write again.
    const doc = DynamoDBDocumentClient.from(table.newClient(), { marshallOptions: { removeUndefinedValues: true } });
    let lost = 0;
    let sent = 0;
    /** The least holds a write must carry to lose its answer: 2 loses a combined write's. */
    let lose = 1;
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        const input = (args as { input?: { UpdateExpression?: string; ExpressionAttributeValues?: Record<string, { SS?: string[] }> } })
          .input;
        const name = String((context as { commandName?: string }).commandName);
        const reservation = name.startsWith('UpdateItem') && (input?.UpdateExpression ?? '').includes('ADD committed :est');
        if (reservation) sent++;
        let out: Awaited<ReturnType<typeof next>>;
        try {
          out = await next(args);
        } catch (e) {
          // DynamoDB sends the refused item in its wire format ({ S }, { N }, { SS }) when asked for
          // it (ReturnValuesOnConditionCheckFailure), which the document client does not convert on
          // an error; dynalite sends none. Attached here, so reading it as converted would fail.
          const key = (args as { input?: { Key?: Record<string, unknown> } }).input?.Key;
          if (reservation && (e as Error).name === 'ConditionalCheckFailedException' && key) {
            const raw = await table.client.send(new GetItemCommand({ TableName: LOCAL_TABLE, Key: key as never, ConsistentRead: true }));
            Object.assign(e as object, { Item: raw.Item });
          }
          throw e;
        }
        const holds = input?.ExpressionAttributeValues?.[':hold']?.SS?.length ?? 0;
        if (reservation && lost === 0 && holds >= lose) {
          lost++;
          throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError', $metadata: {} });
        }
        return out;
      },
      // Inside the SDK's retry step: each attempt passes here.
      { step: 'finalizeRequest', priority: 'low', name: 'loseFirstAnswer' },
    );
    const flaky = new DynamoBudgetLedger(doc, LOCAL_TABLE);

    for (const parallel of [1, 5]) {
      lost = 0;
      sent = 0;
      lose = Math.min(parallel, 2);
      const s = scope(10);

      // Act: `parallel` reservations at once (combined into one write), each settled to 1,000 µUSD.
      const reservations = await Promise.all(
        Array.from({ length: parallel }, (_, i) => reserveBudget(flaky, [s], hold(`lost-${parallel}-${i}`, 300_000), Date.now())),
      );
      const during = await ledger.get(s.key);
      await Promise.all(reservations.map((r) => r.settle(1_000)));

      // Assess: a write lost its answer and was sent again (a combined one, then part by part); its estimates counted once.
      expect(lost).toBe(1);
      expect(sent).toBeGreaterThanOrEqual(parallel === 1 ? 2 : 4);
      expect(during).toMatchObject({ committedMicro: parallel * 300_000, openHolds: parallel });
      expect(await ledger.get(s.key)).toMatchObject({ committedMicro: parallel * 1_000, spentMicro: parallel * 1_000, openHolds: 0 });
    }
    doc.destroy();
  });

  it('keeps every combined write within DynamoDB expression limits (4 KB, 300 operators and functions), which dynalite does not check', async () => {
    // Prepare: the gateway's client, watched. DynamoDB refuses an expression over 4 KB or with more
    // than 300 operators or functions (Amazon DynamoDB Developer Guide, "Constraints" and "Count
    // expression operators", read 2026-11-30).
    const doc = DynamoDBDocumentClient.from(table.newClient(), { marshallOptions: { removeUndefinedValues: true } });
    const seen = { longest: 0, mostOperators: 0, mostParts: 0 };
    const operators =
      /\b(?:AND|OR|NOT|BETWEEN|IN|attribute_exists|attribute_not_exists|attribute_type|begins_with|contains|size|if_not_exists|list_append)\b|<>|<=|>=|=|<|>/g;
    doc.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { ConditionExpression?: string; UpdateExpression?: string; ExpressionAttributeValues?: object };
        for (const e of [input.ConditionExpression, input.UpdateExpression]) {
          if (!e) continue;
          seen.longest = Math.max(seen.longest, e.length);
          seen.mostOperators = Math.max(seen.mostOperators, e.match(operators)?.length ?? 0);
        }
        seen.mostParts = Math.max(
          seen.mostParts,
          Object.keys(input.ExpressionAttributeValues ?? {}).filter((k) => /^:m\d+$/.test(k)).length,
        );
        return next(args);
      },
      { step: 'initialize', name: 'expressionLimits' },
    );
    const store = new DynamoBudgetLedger(doc, LOCAL_TABLE);
    const limited = scope(10_000);
    const unlimited = scope();
    const usage = (i: number) => ({
      month: '2026-11',
      provider: 'bedrock',
      model: `model-${i % 9}`,
      costMicro: 100,
      inputTokens: 1000,
      outputTokens: 100,
      cachedTokens: 10,
      cacheHit: false,
    });

    // Act: 81 callers at once in each kind of write (the first of each goes alone, the rest combined).
    const holds = Array.from({ length: 81 }, (_, i) => hold(`limits-${i}`, 50_000));
    const reserved = await Promise.all(holds.map((h) => store.reserve(limited, h)));
    const charged = await Promise.all(holds.map((h, i) => store.charge(limited, h, { fromMicro: 0, toMicro: 1_000 }, [usage(i)])));
    const settled = await Promise.all(holds.map((h) => store.settleCharged(limited, h, 1_000, 1_000)));
    await Promise.all(holds.map((_, i) => store.add(unlimited, 100, usage(i))));

    // Assess
    expect(reserved.every((r) => r.ok)).toBe(true);
    expect(charged.every(Boolean) && settled.every(Boolean)).toBe(true);
    expect(await ledger.get(limited.key)).toMatchObject({ committedMicro: 81_000, spentMicro: 81_000, openHolds: 0 });
    expect(await ledger.get(unlimited.key)).toMatchObject({ spentMicro: 8_100 });
    expect(seen.mostParts).toBe(20); // the combiner's most parts per write, reached
    expect(seen.longest).toBeLessThanOrEqual(4096);
    expect(seen.mostOperators).toBeLessThanOrEqual(300);
    doc.destroy();
  });

  it('releases the reservation of a crashed call once its lease expires, when the scope would otherwise refuse', async () => {
    const s = scope(1);
    await ledger.reserve(s, hold('crashed', 900_000, Date.now() - 1)); // lease already over: its Lambda died
    const r = await reserveBudget(ledger, [s], hold('next', 800_000), Date.now());
    await r.settle(100);
    expect(await ledger.get(s.key)).toMatchObject({ committedMicro: 100, openHolds: 0 });
  });

  it('rejects the reservation that would pass a limit, names the scope, and releases the scopes already reserved', async () => {
    const roomy = scope(100);
    const tight = scope(1);
    await ledger.reserve(tight, hold('earlier', 700_000));
    const err = await reserveBudget(ledger, [roomy, tight], hold('big', 400_000), Date.now()).catch((e: unknown) => e);
    expect(err).toMatchObject({
      name: 'BudgetExceededError',
      scopeKey: tight.key,
      limitUsd: 1,
      committedUsd: 0.7,
      estimateUsd: 0.4,
    });
    expect((err as Error).message).toMatch(/limit \$1\.00, committed \$0\.700000, this call may cost up to \$0\.400000; no call was made/);
    expect(await ledger.get(roomy.key)).toMatchObject({ committedMicro: 0, openHolds: 0 });
  });

  it('fails closed with BudgetUnavailableError when the table cannot be written', async () => {
    const broken = new DynamoBudgetLedger(table.doc, 'no-such-table');
    await expect(reserveBudget(broken, [scope(5)], hold('x', 1), Date.now())).rejects.toMatchObject({ name: 'BudgetUnavailableError' });
  });
});

describe('Function: budgetScopes', () => {
  it('derives run, project day, project month and global month scopes with the lower per-run limit', () => {
    const config = BudgetConfigSchema.parse({
      perRunUsd: 2,
      global: { monthlyUsd: 3000 },
      projects: { 'ios-app': { dailyUsd: 50, monthlyUsd: 600 } },
    });
    const scopes = budgetScopes(config, { runId: 'r1', project: 'ios-app', maxUsdPerRun: 1.5, now: new Date('2026-11-21T10:00:00Z') });
    expect(scopes.map((s) => [s.key, s.limitMicro])).toEqual([
      ['run#r1', 1_500_000],
      ['project#ios-app#day#2026-11-21', 50_000_000],
      ['project#ios-app#month#2026-11', 600_000_000],
      ['global#month#2026-11', 3_000_000_000],
    ]);
  });
});

describe('Function: reserveBudget, refusals', () => {
  it('marks a refusal transient when only reservations in flight fill the limit, final when settled spend does', async () => {
    const s = scope(1);
    const big = hold('in-flight', 900_000);
    await reserveBudget(ledger, [s], big, Date.now());
    await expect(reserveBudget(ledger, [s], hold('second', 200_000), Date.now())).rejects.toMatchObject({
      name: 'BudgetExceededError',
      transient: true,
    });
    await ledger.settle(s, big, 900_000);
    await expect(reserveBudget(ledger, [s], hold('third', 200_000), Date.now())).rejects.toMatchObject({
      name: 'BudgetExceededError',
      transient: false,
    });
  });
});
