import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsArtifactStore } from '../../../lambdas/adapters/artifacts.js';
import { aggregate } from '../../../lambdas/aggregate/aggregate.js';
import type { RequestReport } from '../../../lambdas/aggregate/request.js';
import { type AgentResult, AgentResultSchema } from '../../../lambdas/core/contracts.js';
import { type InvocationSpend, spendKey } from '../../../lambdas/core/spend.js';
import { tempDir } from '../../helpers.js';

const RUN = 'slack-t1-support';

/** An agent result as the Map iteration returns it. */
const result = (over: Partial<AgentResult> & Pick<AgentResult, 'name' | 'phase'>): AgentResult =>
  AgentResultSchema.parse({
    status: 'succeeded',
    provider: 'bedrock',
    model: 'claude-haiku',
    inputTokens: 100,
    outputTokens: 20,
    costUsd: 0.001,
    findings: 0,
    ...over,
  });

/** One settled invocation of a spend record (micro-USD). */
const invocation = (costMicro: number): InvocationSpend => ({
  id: `i-${costMicro}`,
  startedAt: '2026-11-30T00:00:00.000Z',
  costMicro,
  inputTokens: 1000,
  outputTokens: 200,
  cachedTokens: 0,
  calls: 1,
  cacheHits: 0,
  repairs: 0,
  truncated: 0,
  attempts: [],
  estimatedInputTokens: 0,
  reportedInputTokens: 0,
});

/** The plan of a support workflow: guard the request, triage, one of two specialists, a refund approval, then a reply. */
const PLAN = [
  { phase: 'guard', kind: 'guardrail', after: [] },
  { phase: 'triage', kind: 'route', after: [] },
  { phase: 'billing', kind: 'agents', routeOf: 'triage', after: [] },
  { phase: 'tech', kind: 'agents', routeOf: 'triage', after: [] },
  { phase: 'approve-refund', kind: 'approval', after: ['billing'] },
  { phase: 'reply', kind: 'agents', after: [] },
];

async function setup() {
  const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
  const answerRef = await artifacts.putText(`runs/${RUN}/answers/reply.md`, 'Your refund of $40 is on its way.');
  const billingAnswer = await artifacts.putText(`runs/${RUN}/answers/billing.md`, 'Order 1234 was charged twice.');
  const callsRef = await artifacts.putJson(`runs/${RUN}/tools/billing.json`, [
    { name: 'billing__lookup_order', input: '{"order":"1234"}', ok: true, output: '{"charges":2}', redacted: 0, ms: 12 },
    { name: 'billing__refund', input: '{}', ok: false, error: 'not allowed', refused: true, redacted: 0, ms: 0 },
  ]);
  return { artifacts, answerRef, billingAnswer, callsRef };
}

const input = (results: Record<string, unknown[]>, over: Record<string, unknown> = {}) => ({
  kind: 'request' as const,
  runId: RUN,
  workflow: 'support',
  request: { text: 'I was charged twice for order 1234, token ghp_0123456789abcdefghijklmnopqrstuvwxyz01', requester: 'slack:U1' },
  results,
  gates: {},
  plan: PLAN,
  answer: ['reply'],
  ...over,
});

describe('Function: aggregate (kind request)', () => {
  it('records the phases that ran and why the others were skipped, and picks the answer of the answer phase', async () => {
    // Prepare
    const { artifacts, answerRef, billingAnswer, callsRef } = await setup();
    const results = {
      guard: [result({ name: 'guardrail', phase: 'guard' })],
      triage: [result({ name: 'triage', phase: 'triage', decision: 'billing', decisionReason: 'a charge' })],
      billing: [
        result({ name: 'billing', phase: 'billing', answerRef: billingAnswer, toolCalls: 2, toolErrors: 1, toolCallsRef: callsRef }),
      ],
      reply: [result({ name: 'reply', phase: 'reply', answerRef })],
    };

    // Act
    const out = await aggregate(
      input(results, { gates: { 'approve-refund': { outcome: 'not-needed', reason: 'refund.amount_usd 40 is not > 100' } } }),
      { artifacts },
    );

    // Assess
    expect(out.summary.phases).toEqual([
      { phase: 'guard', status: 'ran' },
      { phase: 'triage', status: 'ran' },
      { phase: 'billing', status: 'ran' },
      { phase: 'tech', status: 'skipped', reason: 'route "triage" chose "billing"' },
      { phase: 'approve-refund', status: 'skipped', reason: 'refund.amount_usd 40 is not > 100' },
      { phase: 'reply', status: 'ran' },
    ]);
    expect(out.summary).toMatchObject({ status: 'SUCCEEDED', answerRef, toolCalls: 2, toolErrors: 1, findings: 0, bySeverity: {} });
    expect(out.summary.reason).toBeUndefined();
    const report = (await artifacts.getJson(out.reportRef)) as RequestReport;
    expect(report.answer).toEqual({ phase: 'reply', agent: 'reply', ref: answerRef, text: 'Your refund of $40 is on its way.' });
    expect(report.toolCalls).toEqual([
      {
        agent: 'billing',
        phase: 'billing',
        calls: [
          expect.objectContaining({ name: 'billing__lookup_order', ok: true, ms: 12 }),
          expect.objectContaining({ name: 'billing__refund', ok: false, refused: true, error: 'not allowed' }),
        ],
      },
    ]);
    // The request is kept redacted in the report.
    expect(report.request.text).not.toContain('ghp_');
  });

  it("finds results and gates under the compiler's state keys (a phase name's - as _)", async () => {
    const { artifacts, answerRef } = await setup();
    const plan = [
      { phase: 'triage', kind: 'route', after: [] },
      { phase: 'order-status', kind: 'agents', routeOf: 'triage', after: [] },
      { phase: 'refund-approval', kind: 'approval', after: [] },
      { phase: 'send-approval', kind: 'approval', after: [] },
      { phase: 'reply-check', kind: 'guardrail', after: [] },
    ];
    const results = {
      triage: [result({ name: 'triage', phase: 'triage', decision: 'order-status' })],
      order_status: [result({ name: 'orders', phase: 'order-status' })],
      reply_check: [result({ name: 'guardrail', phase: 'reply-check', answerRef })],
    };
    const gates = {
      refund_approval: { outcome: 'approved', by: '<@U024BE7LH>' },
      send_approval: { outcome: 'not-needed', reason: 'judge.verdict is "pass", not == fail' },
    };
    const out = await aggregate(input(results, { plan, gates, answer: ['reply-check'] }), { artifacts });
    expect(out.summary.phases).toEqual([
      { phase: 'triage', status: 'ran' },
      { phase: 'order-status', status: 'ran' },
      { phase: 'refund-approval', status: 'ran' },
      { phase: 'send-approval', status: 'skipped', reason: 'judge.verdict is "pass", not == fail' },
      { phase: 'reply-check', status: 'ran' },
    ]);
    expect(out.summary.answerRef).toBe(answerRef);
  });

  it('skips a phase after conditional phases none of which ran, naming them', async () => {
    const { artifacts, answerRef } = await setup();
    const results = {
      triage: [result({ name: 'triage', phase: 'triage', decision: 'tech' })],
      tech: [result({ name: 'tech', phase: 'tech' })],
      reply: [result({ name: 'reply', phase: 'reply', answerRef })],
    };
    const out = await aggregate(input(results, { plan: PLAN.slice(1) }), { artifacts });
    expect(out.summary.phases).toContainEqual({ phase: 'billing', status: 'skipped', reason: 'route "triage" chose "tech"' });
    expect(out.summary.phases).toContainEqual({ phase: 'approve-refund', status: 'skipped', reason: 'none of billing ran' });
  });

  it('takes the first answer phase that ran with an answer, and the last answering phase when answer is empty', async () => {
    const { artifacts, answerRef, billingAnswer } = await setup();
    const results = {
      triage: [result({ name: 'triage', phase: 'triage', decision: 'billing' })],
      billing: [result({ name: 'billing', phase: 'billing', answerRef: billingAnswer })],
      reply: [result({ name: 'reply', phase: 'reply', answerRef })],
    };
    const first = await aggregate(input(results, { answer: ['tech', 'billing', 'reply'] }), { artifacts });
    expect(first.summary.answerRef).toBe(billingAnswer);
    const last = await aggregate(input(results, { answer: [] }), { artifacts });
    expect(last.summary.answerRef).toBe(answerRef);
  });

  it('is PARTIAL when an agent stopped early, naming it with its stop reason', async () => {
    const { artifacts, answerRef } = await setup();
    const results = {
      triage: [result({ name: 'triage', phase: 'triage', decision: 'billing' })],
      billing: [result({ name: 'billing', phase: 'billing', status: 'partial', stopReason: 'max_iterations (8) reached' })],
      reply: [result({ name: 'reply', phase: 'reply', answerRef })],
    };
    const out = await aggregate(input(results), { artifacts });
    expect(out.summary).toMatchObject({ status: 'PARTIAL', reason: 'stopped early: billing/billing (max_iterations (8) reached)' });
  });

  it('is FAILED when every agent failed or a required phase did not complete', async () => {
    const { artifacts, answerRef } = await setup();
    const failed = result({
      name: 'triage',
      phase: 'triage',
      status: 'failed',
      error: { Error: 'ProviderUnavailableError', Cause: 'every provider failed' },
    });
    const none = await aggregate(input({ triage: [failed] }), { artifacts });
    expect(none.summary).toMatchObject({
      status: 'FAILED',
      reason: 'every agent failed: triage/triage (ProviderUnavailableError: every provider failed)',
    });
    expect(none.summary.answerRef).toBeUndefined();
    const required = await aggregate(
      input({ triage: [failed], reply: [result({ name: 'reply', phase: 'reply', answerRef })] }, { requiredPhases: ['triage'] }),
      { artifacts },
    );
    expect(required.summary).toMatchObject({
      status: 'FAILED',
      reason: expect.stringMatching(/^required phase did not complete: triage\/triage/),
    });
  });

  it("costs what the agents' spend records settled (the ledger), not what their results say", async () => {
    // Prepare: the billing agent was retried once by Step Functions; both invocations spent.
    const { artifacts, answerRef } = await setup();
    await artifacts.putJson(spendKey(RUN, 'billing', 'billing'), {
      agent: 'billing',
      phase: 'billing',
      invocations: [invocation(1234), invocation(2345)],
    });
    await artifacts.putJson(spendKey(RUN, 'reply', 'reply'), { agent: 'reply', phase: 'reply', invocations: [invocation(777)] });
    const results = {
      billing: [result({ name: 'billing', phase: 'billing', costUsd: 0.002345 })],
      reply: [result({ name: 'reply', phase: 'reply', answerRef, costUsd: 0.000777 })],
    };

    // Act
    const out = await aggregate(input(results, { plan: [], answer: [] }), { artifacts });

    // Assess: 1234 + 2345 + 777 micro-USD.
    expect(out.summary.costUsd).toBe(0.004356);
    expect(out.summary.agents.find((a) => a.name === 'billing')).toMatchObject({ costUsd: 0.003579, calls: 2 });
  });
});
