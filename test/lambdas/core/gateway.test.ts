import { randomBytes } from 'node:crypto';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { createDynamoGateway } from '../../../lambdas/adapters/gateway-store.js';
import { FINDINGS_FORMAT } from '../../../lambdas/core/answer-format.js';
import { CircuitBreaker } from '../../../lambdas/core/breaker.js';
import { budgetScopes } from '../../../lambdas/core/budget.js';
import type { ModelRef } from '../../../lambdas/core/contracts.js';
import { type GatewayCall, LEASE_MARGIN_MS, worstCaseOf } from '../../../lambdas/core/gateway.js';
import { BudgetConfigSchema } from '../../../lambdas/core/gateway-config.js';
import { LOCAL_TABLE } from '../../../lib/local/runtime.js';
import { type GatewayEnv, type GatewayEnvOptions, startGateway } from '../../helpers.js';

const price = { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 };
const sonnet: ModelRef = {
  provider: 'bedrock',
  alias: 'claude-sonnet',
  modelId: 'us.anthropic.claude-sonnet',
  contextWindow: 200_000,
  price,
};
const mini: ModelRef = {
  provider: 'openai',
  alias: 'gpt-4.1-mini',
  modelId: 'gpt-4.1-mini',
  contextWindow: 1_000_000,
  price: { input: 0.4, output: 1.6, cacheRead: 0.1, cacheWrite: 0.4 },
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

let n = 0;
const call = (over: Partial<GatewayCall> = {}): GatewayCall => ({
  candidates: [sonnet, mini],
  system: 'You review Swift code. Answer with JSON.',
  messages: [{ role: 'user', content: `Agent: code-review\nCategories: correctness\n+let x = y! // ${++n}` }],
  maxTokens: 1000,
  temperature: 0.2,
  scopes: budgetScopes(BudgetConfigSchema.parse({}), { runId: `run-${n}`, project: 'ios-app', now: new Date() }),
  cache: false,
  labels: { workflow: 'pr-review', agent: 'code-review', project: 'ios-app' },
  deadlineMs: Date.now() + 30_000,
  ...over,
});

describe('Class: ModelGateway', () => {
  it('prices a call from the provider usage, settles the budget and emits metrics with all dimensions', async () => {
    const g = await gateway();
    const a = await g.gateway.complete(call());
    expect(a).toMatchObject({ cacheHit: false, fallbackUsed: false, model: { alias: 'claude-sonnet' } });
    expect(a.costUsd).toBeCloseTo((a.usage.inputTokens * 3 + a.usage.outputTokens * 15) / 1e6, 6);
    expect(a.estimateUsd).toBeGreaterThan(a.costUsd);
    expect(a.attempts).toEqual([{ provider: 'bedrock', model: 'claude-sonnet', outcome: 'ok', ms: expect.any(Number) }]);
    const run = await g.ledger.get(`run#run-${n}`);
    expect(run).toMatchObject({ committedMicro: Math.round(a.costUsd * 1e6), spentMicro: Math.round(a.costUsd * 1e6), openHolds: 0 });
    expect(g.metrics.records.at(-1)?.dimensions).toEqual({
      workflow: 'pr-review',
      agent: 'code-review',
      project: 'ios-app',
      provider: 'bedrock',
      model: 'claude-sonnet',
    });
    expect(g.metrics.totals).toMatchObject({ CostUsd: a.costUsd, CacheHit: 0, FallbackUsed: 0 });
  });

  it('answers the same request twice from the cache the second time, at $0 and with no provider call', async () => {
    const g = await gateway();
    const c = call({ cache: true });
    const first = await g.gateway.complete(c);
    const second = await g.gateway.complete({ ...c, scopes: c.scopes });
    expect(first.cacheHit).toBe(false);
    expect(second).toMatchObject({ cacheHit: true, costUsd: 0, text: first.text });
    expect(second.attempts[0]?.outcome).toBe('cache-hit');
    expect(g.server.stats.bedrock).toBe(1);
    expect(g.metrics.totals.CacheHit).toBe(1);
  });

  it('answers the same chunk from the cache although each call draws a new random data boundary', async () => {
    const g = await gateway();
    const message = () => `Agent: code-review\n\n<<<AGENTFLOW-DATA-${randomBytes(8).toString('hex')}>>>`;
    const ask = (content: string) => {
      const id = /DATA-([0-9a-f]{16})/.exec(content)?.[1];
      return call({ cache: true, messages: [{ role: 'user', content: `${content}\n+let x = y!\n<<<END-AGENTFLOW-DATA-${id}>>>` }] });
    };
    const first = await g.gateway.complete(ask(message()));
    const second = await g.gateway.complete(ask(message()));
    expect(second).toMatchObject({ cacheHit: true, text: first.text });
    expect(g.server.stats.bedrock).toBe(1);
  });

  it('never serves a cached answer across answer formats: the same prompt with the findings format is a new call', async () => {
    const g = await gateway();
    const c = call({ cache: true });
    const plain = await g.gateway.complete(c);
    const structured = await g.gateway.complete({ ...c, answerFormat: FINDINGS_FORMAT });
    const again = await g.gateway.complete({ ...c, answerFormat: FINDINGS_FORMAT });
    expect(plain.cacheHit).toBe(false);
    expect(structured).toMatchObject({ cacheHit: false });
    expect(JSON.parse(structured.text)).toHaveProperty('document', null);
    expect(again).toMatchObject({ cacheHit: true, text: structured.text });
    expect(g.server.stats.bedrock).toBe(2);
  });

  it('passes the answer format and each candidate’s structured_output to its provider', async () => {
    const g = await gateway({ offline: { faults: { bedrock: 503 } } });
    const qwen: ModelRef = {
      ...mini,
      provider: 'openai-compatible',
      alias: 'qwen',
      modelId: 'qwen2.5-coder',
      structuredOutput: 'json_object',
    };
    const seen: Array<Record<string, unknown>> = [];
    const compatible = g.providers['openai-compatible'];
    g.providers['openai-compatible'] = {
      complete: (req) => {
        seen.push({ answerFormat: req.answerFormat?.name, structuredOutput: req.structuredOutput });
        return compatible.complete(req);
      },
    };
    const a = await g.gateway.complete(call({ candidates: [sonnet, qwen], answerFormat: FINDINGS_FORMAT }));
    expect(a).toMatchObject({ fallbackUsed: true, model: { alias: 'qwen' } });
    expect(seen).toEqual([{ answerFormat: 'report_review', structuredOutput: 'json_object' }]);
  });

  it('falls back to OpenAI when Bedrock answers 503, after retrying Bedrock with backoff, and records every attempt', async () => {
    const g = await gateway({ offline: { faults: { bedrock: 503 } } });
    const a = await g.gateway.complete(call());
    expect(a).toMatchObject({ fallbackUsed: true, model: { provider: 'openai' } });
    expect(a.attempts.map((t) => `${t.provider}:${t.outcome}`)).toEqual(['bedrock:error', 'bedrock:error', 'bedrock:error', 'openai:ok']);
    expect(a.attempts[0]?.error).toMatch(/^ProviderUnavailableError: bedrock: /);
    expect(g.metrics.totals.FallbackUsed).toBe(1);
  });

  it('opens the Bedrock breaker after five counted failures, then sends Bedrock no calls while it is open', async () => {
    const g = await gateway({ offline: { faults: { bedrock: 503 } } });
    await g.gateway.complete(call()); // 3 failures
    await g.gateway.complete(call()); // 2 more: opens
    const calls = g.server.stats.bedrock;
    expect(calls).toBe(5);
    expect(g.metrics.totals.BreakerOpened).toBe(1);
    const [breaker] = await g.breakers.list();
    expect(breaker).toMatchObject({ provider: 'bedrock', model: sonnet.modelId, state: 'open', failures: 5, cooldownMs: 30_000 });
    for (let i = 0; i < 5; i++) {
      const a = await g.gateway.complete(call());
      expect(a.model.provider).toBe('openai');
      expect(a.attempts[0]).toMatchObject({ provider: 'bedrock', outcome: 'skipped', error: expect.stringMatching(/^CircuitOpenError/) });
    }
    expect(g.server.stats.bedrock).toBe(calls);
  });

  it('counts 20 failures recorded at once without losing one, and opens the breaker exactly once', async () => {
    const g = await gateway();
    const breaker = new CircuitBreaker(g.breakers, g.config.breaker, Date.now, () => crypto.randomUUID(), 60_000);
    const admission = { kind: 'closed' as const, key: 'bedrock#m' };
    const opened = await Promise.all(
      Array.from({ length: 20 }, () => breaker.onFailure(admission, 'bedrock', 'm', 'counted', 'ProviderUnavailableError: 503')),
    );
    expect(opened.filter(Boolean)).toHaveLength(1);
    expect(await g.breakers.get('bedrock#m')).toMatchObject({ state: 'open', failures: 20, calls: 20, opened: 1 });
  });

  it('lets exactly one of 50 callers probe when the cooldown ends; a success closes the breaker', async () => {
    let now = Date.now();
    // Every answer takes 200 ms, so all 50 callers arrive while the probe is in flight.
    const g = await gateway({ offline: { faults: { bedrock: 503 }, delayMs: 200 }, clock: () => now });
    const only = { candidates: [sonnet] };
    for (let i = 0; i < 2; i++) await g.gateway.complete(call(only)).catch(() => undefined);
    expect((await g.breakers.list())[0]?.state).toBe('open');
    const before = g.server.stats.bedrock;
    g.server.setFaults({});
    now += 30_001;
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => g.gateway.complete(call(only))));
    expect(g.server.stats.bedrock - before).toBe(1);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected.every((r) => (r.reason as Error).name === 'CircuitOpenError')).toBe(true);
    expect((await g.breakers.list())[0]).toMatchObject({ state: 'closed', failures: 0, cooldownMs: 30_000 });
  });

  it('reopens the breaker with twice the cooldown when the one probe fails', async () => {
    let now = Date.now();
    const g = await gateway({ offline: { faults: { bedrock: 503 } }, clock: () => now });
    const only = { candidates: [sonnet] };
    for (let i = 0; i < 2; i++) await g.gateway.complete(call(only)).catch(() => undefined);
    const before = g.server.stats.bedrock;
    now += 30_001;
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () => g.gateway.complete(call({ ...only, deadlineMs: now + 30_000 }))),
    );
    expect(g.server.stats.bedrock - before).toBe(1);
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect((await g.breakers.list())[0]).toMatchObject({ state: 'open', cooldownMs: 60_000, openUntilMs: now + 60_000 });
  });

  it('opens the breaker at once on 401 and moves to the next provider', async () => {
    const g = await gateway({ offline: { faults: { bedrock: 401 } } });
    const a = await g.gateway.complete(call());
    expect(a.model.provider).toBe('openai');
    expect(a.attempts[0]?.error).toMatch(/^ProviderAuthError/);
    expect(g.server.stats.bedrock).toBe(1);
    expect((await g.breakers.list())[0]).toMatchObject({ provider: 'bedrock', state: 'open' });
  });

  it('does not count a 400 (context too long) against the breaker and does not retry or fall back', async () => {
    const g = await gateway({ offline: { faults: { bedrock: 400 } } });
    await expect(g.gateway.complete(call())).rejects.toMatchObject({
      name: 'ProviderRejectedError',
      message: expect.stringMatching(/Input is too long.*\[attempts: bedrock\/claude-sonnet error/),
    });
    expect(g.server.stats).toMatchObject({ bedrock: 1, openai: 0 });
    expect((await g.breakers.list()).every((b) => b.failures === 0)).toBe(true);
  });

  it.each([
    ['openai', 429, 'ProviderThrottledError'],
    ['openai', 500, 'ProviderUnavailableError'],
    ['openai', 'malformed', 'ProviderUnavailableError'],
    ['bedrock', 'malformed', 'ProviderUnavailableError'],
    ['bedrock', 429, 'ProviderThrottledError'],
  ] as const)('classifies %s answering %s as %s and retries it', async (provider, fault, name) => {
    const g = await gateway({ offline: { faults: { [provider]: fault } } });
    const model = provider === 'openai' ? mini : sonnet;
    await expect(g.gateway.complete(call({ candidates: [model] }))).rejects.toMatchObject({ name });
    expect(g.server.stats[provider]).toBe(3);
  });

  it('ends a call that hangs with ProviderTimeoutError at the per-call timeout', async () => {
    const g = await gateway({
      offline: { faults: { openai: 'hang' } },
      config: { providerTimeoutSeconds: 1, retry: { attemptsPerProvider: 1 } },
    });
    await expect(g.gateway.complete(call({ candidates: [mini] }))).rejects.toMatchObject({ name: 'ProviderTimeoutError' });
  });

  it('makes no provider call for a model without a price', async () => {
    const g = await gateway();
    await expect(g.gateway.complete(call({ candidates: [{ ...sonnet, price: null }] }))).rejects.toMatchObject({
      name: 'PriceUnknownError',
    });
    expect(g.server.stats).toMatchObject({ bedrock: 0, openai: 0 });
  });

  it('makes no provider call when the budget table cannot be read or written (fail closed)', async () => {
    const g = await gateway();
    const broken = createDynamoGateway({
      doc: g.table.doc,
      table: 'no-such-table',
      providers: g.providers,
      config: g.config,
      metrics: g.metrics,
    });
    await expect(broken.gateway.complete(call())).rejects.toMatchObject({ name: 'BudgetUnavailableError' });
    expect(g.server.stats).toMatchObject({ bedrock: 0, openai: 0 });
  });

  it('refuses a call whose worst case would pass the run budget, naming the scope, with no provider call', async () => {
    const g = await gateway();
    const scopes = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: 0.01 }), { runId: 'tiny', project: 'ios-app', now: new Date() });
    await expect(g.gateway.complete(call({ candidates: [sonnet], scopes, maxTokens: 4000 }))).rejects.toMatchObject({
      name: 'BudgetExceededError',
      scope: 'run',
      scopeKey: 'run#tiny',
    });
    expect(g.server.stats).toMatchObject({ bedrock: 0, openai: 0 });
    expect(g.metrics.totals.BudgetRejected).toBe(1);
  });

  it('tries the cheaper fallback when the primary model’s reservation is refused', async () => {
    const g = await gateway();
    const scopes = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: 0.01 }), {
      runId: 'tiny-fallback',
      project: 'ios-app',
      now: new Date(),
    });
    const a = await g.gateway.complete(call({ scopes, maxTokens: 4000 }));
    expect(a.model.alias).toBe('gpt-4.1-mini');
    expect(a.attempts.map((t) => [t.model, t.outcome, (t.error ?? '').split(':')[0]])).toEqual([
      ['claude-sonnet', 'error', 'BudgetExceededError'],
      ['gpt-4.1-mini', 'ok', ''],
    ]);
    expect(g.server.stats).toMatchObject({ bedrock: 0, openai: 1 });
  });

  it('waits for reservations of calls in flight to settle instead of refusing a call the settled spend leaves room for', async () => {
    const g = await gateway({ offline: { delayMs: 150 } });
    const worst = worstCaseOf(call({ candidates: [sonnet] }), sonnet);
    // Room for one worst case at a time, but for many actual costs.
    const scopes = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: (worst * 1.5) / 1e6 }), {
      runId: 'tight',
      project: 'ios-app',
      now: new Date(),
    });
    const answers = await Promise.all([1, 2, 3].map(() => g.gateway.complete(call({ candidates: [sonnet], scopes }))));
    expect(answers).toHaveLength(3);
    expect(g.server.stats.bedrock).toBe(3);
    const run = await g.ledger.get('run#tight');
    expect(run?.spentMicro).toBe(answers.reduce((s, a) => s + a.costMicro, 0));
    expect(run?.openHolds).toBe(0);
  });

  it('reserves the tokenizer count of the prompt (plus chat overhead) and the call’s max_tokens, not a byte count', async () => {
    const g = await gateway();
    const a = await g.gateway.complete(call({ candidates: [mini] }));
    expect(a.estimatedInputTokens).toBeGreaterThanOrEqual(a.usage.inputTokens + a.usage.cacheReadTokens);
    expect(a.estimatedInputTokens).toBeLessThan(2 * (a.usage.inputTokens + a.usage.cacheReadTokens) + 40);
    expect(a.estimateUsd).toBeCloseTo((a.estimatedInputTokens * 0.4 + 1000 * 1.6) / 1e6, 5);
  });

  it('queues callers beyond the provider concurrency limit instead of sending them all at once', async () => {
    const g = await gateway({
      offline: { delayMs: 50 },
      config: { rateLimits: { bedrock: { requestsPerMinute: 6000, maxConcurrency: 2 } } },
    });
    let inFlight = 0;
    let peak = 0;
    const inner = g.providers.bedrock;
    g.providers.bedrock = {
      complete: async (r) => {
        peak = Math.max(peak, ++inFlight);
        try {
          return await inner.complete(r);
        } finally {
          inFlight--;
        }
      },
    };
    const results = await Promise.all(Array.from({ length: 8 }, () => g.gateway.complete(call({ candidates: [sonnet] }))));
    expect(results).toHaveLength(8);
    expect(peak).toBe(2);
  });

  it('leases its budget holds and rate-limit slot for the call they guard (provider timeout + margin), not for the whole deadline', async () => {
    const g = await gateway({ offline: { delayMs: 50 }, config: { providerTimeoutSeconds: 5 } });
    // A run limit: holds are written only in scopes with a limit.
    const c = call({
      candidates: [sonnet],
      deadlineMs: Date.now() + 15 * 60_000,
      scopes: budgetScopes(BudgetConfigSchema.parse({ perRunUsd: 10 }), { runId: `run-lease-${n}`, project: 'ios-app', now: new Date() }),
    });
    const seen: { holds: string[]; holders: string[] } = { holds: [], holders: [] };
    const inner = g.providers.bedrock;
    g.providers.bedrock = {
      complete: async (r) => {
        const get = (pk: string, sk: string) => g.table.doc.send(new GetCommand({ TableName: LOCAL_TABLE, Key: { pk, sk } }));
        const [budget, rate] = await Promise.all([get(`BUDGET#${c.scopes[0]?.key}`, 'BUDGET'), get('RATE#bedrock', 'RATE')]);
        seen.holds = [...((budget.Item?.holds as Set<string> | undefined) ?? [])];
        seen.holders = [...((rate.Item?.holders as Set<string> | undefined) ?? [])];
        return inner.complete(r);
      },
    };
    const before = Date.now();
    await g.gateway.complete(c);
    const bound = Date.now() + 5_000 + LEASE_MARGIN_MS;
    expect(seen.holds).toHaveLength(1);
    expect(seen.holders).toHaveLength(1);
    for (const member of [...seen.holds, ...seen.holders]) {
      const lease = Number(member.split('~')[0]);
      expect(lease).toBeGreaterThanOrEqual(before + 5_000);
      expect(lease).toBeLessThanOrEqual(bound);
    }
  });

  it('gives its rate-limit slot back while it waits for the budget, so a caller the budget admits is not held up', async () => {
    const g = await gateway({
      offline: { delayMs: 300 },
      config: { rateLimits: { bedrock: { requestsPerMinute: 6000, maxConcurrency: 2 } } },
    });
    const worst = worstCaseOf(call({ candidates: [sonnet] }), sonnet);
    const tight = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: (worst * 1.5) / 1e6 }), {
      runId: 'slot-back',
      project: 'ios-app',
      now: new Date(),
    });
    // Which calls were in flight when each call reached the provider.
    const inFlight = new Set<string>();
    const company: Record<string, string[]> = {};
    const inner = g.providers.bedrock;
    g.providers.bedrock = {
      complete: async (r) => {
        const who = String(r.messages[0]?.content).slice(-6);
        company[who] = [...inFlight];
        inFlight.add(who);
        try {
          return await inner.complete(r);
        } finally {
          inFlight.delete(who);
        }
      },
    };
    const tagged = (tag: string, scopes: GatewayCall['scopes'] = tight) =>
      call({ candidates: [sonnet], scopes, messages: [{ role: 'user', content: `Agent: code-review\n+let x = y! // ${tag}` }] });
    // Two calls of one run with room for one worst case: the second waits for the first to settle.
    const first = g.gateway.complete(tagged('first.'));
    await new Promise((r) => setTimeout(r, 50));
    const second = g.gateway.complete(tagged('second'));
    await new Promise((r) => setTimeout(r, 50));
    // A call of another run: the waiting second call must not sit on the other slot.
    const other = g.gateway.complete(tagged('other.', call().scopes));
    await Promise.all([first, second, other]);
    expect(company['other.']).toEqual(['first.']);
    expect((await g.ledger.get('run#slot-back'))?.openHolds).toBe(0);
  });
});
