import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { McpToolbox } from '../../../lambdas/adapters/mcp-toolbox.js';
import { FINDINGS_FORMAT } from '../../../lambdas/core/answer-format.js';
import { budgetScopes } from '../../../lambdas/core/budget.js';
import type { ModelRef } from '../../../lambdas/core/contracts.js';
import type { GatewayAnswer, GatewayCall } from '../../../lambdas/core/gateway.js';
import { BudgetConfigSchema } from '../../../lambdas/core/gateway-config.js';
import { requestTokens, TOOL_USE_OVERHEAD_TOKENS } from '../../../lambdas/core/tokenizer.js';
import { MAX_TOOL_CALLS_PER_TURN, runToolLoop } from '../../../lambdas/core/tool-loop.js';
import { PROJECT_ROOT } from '../../../lib/workspace.js';
import { type GatewayEnv, startGateway } from '../../helpers.js';

/*
 * The tool loop end to end: the real gateway (budgets, breaker, ledger on dynalite) calling the
 * offline model server in both wire formats (Bedrock Converse toolUse/toolResult, OpenAI tool_calls
 * and tool messages — the server checks each result answers a call), and an MCP server over stdio.
 */

const price = { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 };
const MODELS: Record<'bedrock' | 'openai', ModelRef> = {
  bedrock: { provider: 'bedrock', alias: 'claude-sonnet', modelId: 'us.anthropic.claude-sonnet', contextWindow: 200_000, price },
  openai: {
    provider: 'openai',
    alias: 'gpt-4.1-mini',
    modelId: 'gpt-4.1-mini',
    contextWindow: 1_000_000,
    price: { input: 0.4, output: 1.6, cacheRead: 0.1, cacheWrite: 0.4 },
  },
};

const toolbox = () =>
  new McpToolbox(
    [
      {
        name: 'issues',
        command: process.execPath,
        args: ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'standins', 'mcp-issue-tracker.ts')],
        env: { NODE_PATH: join(PROJECT_ROOT, 'node_modules') },
        allow: [{ name: 'create_ticket', write: true }, { name: 'whoami' }, { name: 'fail' }],
      },
    ],
    { timeoutMs: 20_000, allowWrite: true },
  );

let env: GatewayEnv;
let runs = 0;
const call = (model: ModelRef, task: string, over: Partial<GatewayCall> = {}): Omit<GatewayCall, 'tools'> => {
  const runId = `loop-${++runs}`;
  return {
    candidates: [model],
    system: 'You handle team requests with the tools you are given. Answer with JSON.',
    messages: [{ role: 'user', content: task }],
    maxTokens: 500,
    temperature: 0,
    scopes: budgetScopes(BudgetConfigSchema.parse({}), { runId, project: 'team', now: new Date() }),
    cache: false,
    labels: { workflow: 'team-request', agent: 'planner', project: 'team' },
    deadlineMs: Date.now() + 60_000,
    ...over,
  };
};

beforeAll(async () => {
  env = await startGateway();
});
afterAll(async () => {
  await env?.stop();
});

describe('Function: runToolLoop', () => {
  let box: McpToolbox | undefined;
  afterEach(async () => {
    await box?.close();
    box = undefined;
  });

  for (const provider of ['bedrock', 'openai'] as const) {
    it(`${provider}: calls the tools the model asks for, gives it their results, and ends when it answers; cost = the ledger`, async () => {
      box = toolbox();
      const task =
        'Create a ticket for the crash in PR 42, then tell me who asked.\ncall issues__create_ticket {"title": "Crash in PR 42"}\ncall issues__whoami {}';
      const c = call(MODELS[provider], task);
      const r = await runToolLoop(env.gateway, c, box, { requester: 'U024BE7LH' });
      expect(r.status).toBe('complete');
      expect(r.iterations).toBe(3);
      expect(r.calls.map((x) => [x.name, x.ok, x.output])).toEqual([
        ['issues__create_ticket', true, 'Created ISSUE-1: Crash in PR 42'],
        ['issues__whoami', true, 'U024BE7LH'],
      ]);
      // Every iteration went through the gateway and settled in the run's budget scope.
      const ledger = await env.ledger.get(c.scopes[0]?.key ?? '');
      expect(ledger?.spentMicro).toBe(r.costMicro);
      expect(r.costMicro).toBeGreaterThan(0);
    }, 90_000);
  }

  it('a tool that fails, and one not on the allow-list: the model is told and goes on', async () => {
    box = toolbox();
    const r = await runToolLoop(env.gateway, call(MODELS.openai, 'call issues__fail {}\ncall issues__delete_everything {}'), box);
    expect(r.status).toBe('complete');
    expect(r.calls.map((x) => [x.name, x.ok, x.refused ?? false])).toEqual([
      ['issues__fail', false, false],
      ['issues__delete_everything', false, true],
    ]);
    expect(r.calls[1]?.error).toBe('tool "issues__delete_everything" is not on this agent\'s allow-list');
  }, 90_000);

  it('stops at max_iterations as partial with what it has, never a silent success', async () => {
    box = toolbox();
    const r = await runToolLoop(env.gateway, call(MODELS.bedrock, 'repeat issues__whoami {}'), box, { maxIterations: 3 });
    expect(r).toMatchObject({ status: 'partial', iterations: 3, reason: 'reached max_iterations (3) with the model still calling tools' });
    expect(r.calls).toHaveLength(3);
  }, 90_000);

  it('stops as partial when the budget runs out, keeping the calls made', async () => {
    box = toolbox();
    // Each iteration reserves its worst case (≈ $0.008 here) and settles far less: a few fit in $0.012.
    const tight = budgetScopes(BudgetConfigSchema.parse({ perRunUsd: 0.012 }), {
      runId: `loop-budget-${++runs}`,
      project: 'team',
      now: new Date(),
    });
    const c = call(MODELS.bedrock, 'repeat issues__whoami {}', { scopes: tight });
    const r = await runToolLoop(env.gateway, c, box, { maxIterations: 50 });
    expect(r.status).toBe('partial');
    expect(r.reason).toMatch(/^the budget ran out/);
    expect(r.calls.length).toBeGreaterThanOrEqual(1);
    expect(r.calls.length).toBe(r.iterations);
    expect(r.iterations).toBeLessThan(50);
    // What was spent is in the ledger, and within the limit.
    const spent = (await env.ledger.get(c.scopes[0]?.key ?? ''))?.spentMicro ?? -1;
    expect(spent).toBe(r.costMicro);
    expect(spent).toBeLessThanOrEqual(12_000);
  }, 90_000);

  it('is partial, not complete, when a configured server offered no tools; refuses an answer format', async () => {
    box = new McpToolbox([{ name: 'gone', command: '/nonexistent/mcp', allow: [{ name: 'x' }] }], { timeoutMs: 5_000 });
    const r = await runToolLoop(env.gateway, call(MODELS.openai, 'What is open?'), box);
    expect(r.status).toBe('partial');
    expect(r.reason).toMatch(/^answered without the tools of gone/);
    await expect(runToolLoop(env.gateway, { ...call(MODELS.openai, 'x'), answerFormat: FINDINGS_FORMAT }, box)).rejects.toThrow(
      /answers in text/,
    );
  }, 90_000);

  it("reserves the tools' JSON and Claude's hidden tool-use prompt; the Bedrock stand-in refuses tool blocks without a toolConfig", async () => {
    const messages = [{ role: 'user' as const, content: 'hello' }];
    const tools = [{ name: 'issues__whoami', description: 'who', inputSchema: { type: 'object', properties: {} } }];
    expect(requestTokens('bedrock', 'sys', messages, tools) - requestTokens('bedrock', 'sys', messages)).toBeGreaterThan(
      TOOL_USE_OVERHEAD_TOKENS.bedrock,
    );
    const orphan = env.providers.bedrock.complete({
      modelId: 'us.anthropic.claude-sonnet',
      system: 'sys',
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: '', toolCalls: [{ id: 't1', name: 'issues__whoami', input: {} }] },
        { role: 'user', content: '', toolResults: [{ id: 't1', content: 'nobody' }] },
      ],
      maxTokens: 100,
      temperature: 0,
    });
    await expect(orphan).rejects.toThrow(/toolConfig field must be defined/);
  });

  it('makes at most MAX_TOOL_CALLS_PER_TURN calls of one answer, answering the rest "not called"', async () => {
    // Prepare: a scripted gateway whose first answer asks for 12 tickets at once, then answers.
    box = toolbox();
    const asked = Array.from({ length: 12 }, (_, k) => ({
      id: `t${k}`,
      name: 'issues__create_ticket',
      input: { title: `Ticket ${k + 1}` },
    }));
    const seen: GatewayCall[] = [];
    const answer = (over: Partial<GatewayAnswer>): GatewayAnswer => ({
      text: '',
      usage: { inputTokens: 10, outputTokens: 10, cacheReadTokens: 0, cacheWriteTokens: 0 },
      model: MODELS.openai,
      costUsd: 0.000001,
      costMicro: 1,
      estimateUsd: 0.000001,
      estimatedInputTokens: 10,
      truncated: false,
      cacheHit: false,
      fallbackUsed: false,
      attempts: [],
      ...over,
    });
    const script = [answer({ toolCalls: asked }), answer({ text: 'done' })];
    const gateway = {
      complete: async (c: GatewayCall) => {
        seen.push(c);
        const next = script.shift();
        if (!next) throw new Error('the scripted gateway ran out of answers');
        return next;
      },
    };

    // Act
    const r = await runToolLoop(gateway, call(MODELS.openai, 'file them all'), box);

    // Assess: 8 tickets made, 4 not called (recorded, refused, and the model told so for each).
    expect(r.status).toBe('complete');
    expect(r.calls).toHaveLength(12);
    expect(r.calls.slice(0, 8).map((x) => x.output)).toEqual(
      Array.from({ length: 8 }, (_, k) => `Created ISSUE-${k + 1}: Ticket ${k + 1}`),
    );
    expect(r.calls.slice(8)).toEqual(
      asked.slice(8).map((a) =>
        expect.objectContaining({
          name: 'issues__create_ticket',
          input: JSON.stringify(a.input),
          ok: false,
          refused: true,
          error: 'not called: at most 8 tool calls per turn',
        }),
      ),
    );
    const results = seen[1]?.messages.at(-1)?.toolResults ?? [];
    expect(results.map((x) => x.id)).toEqual(asked.map((a) => a.id));
    expect(results.slice(8)).toEqual(
      asked.slice(8).map((a) => ({ id: a.id, content: 'not called: at most 8 tool calls per turn', isError: true })),
    );
    // The server made 8 tickets, no more: the next one is ISSUE-9.
    expect(await box.call('issues__create_ticket', { title: 'check' })).toMatchObject({ output: 'Created ISSUE-9: check' });
    expect(MAX_TOOL_CALLS_PER_TURN).toBe(8);
  }, 60_000);
});
