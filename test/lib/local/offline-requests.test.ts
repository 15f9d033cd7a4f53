import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { McpToolbox } from '../../../lambdas/adapters/mcp-toolbox.js';
import { answerSystemPrompt, parseAgentAnswer, parseRouteAnswer, requestMessage, routeSystemPrompt } from '../../../lambdas/core/answer.js';
import { budgetScopes } from '../../../lambdas/core/budget.js';
import type { ModelRef, Provider } from '../../../lambdas/core/contracts.js';
import { BudgetConfigSchema } from '../../../lambdas/core/gateway-config.js';
import type { ChatMessage, ToolSpec } from '../../../lambdas/core/ports.js';
import { runToolLoop } from '../../../lambdas/core/tool-loop.js';
import { OfflineModelServer } from '../../../lib/local/offline-model.js';
import {
  chosenTools,
  dataFields,
  offlineRequestAnswer,
  offlineRequestToolCall,
  offlineToolInput,
  requestParts,
  stem,
} from '../../../lib/local/offline-requests.js';
import { type OfflineToolResult, offlineToolCall } from '../../../lib/local/offline-tools.js';
import { localProviders } from '../../../lib/local/providers.js';
import { PROJECT_ROOT } from '../../../lib/workspace.js';
import { type GatewayEnv, startGateway } from '../../helpers.js';

/*
 * The offline model's answers to a request run's agents (lib/local/offline-requests.ts): the rules
 * as functions, then over HTTP through the real provider adapters in both wire formats (Bedrock
 * Converse toolUse/toolResult, OpenAI tool_calls and tool messages), then a whole tool loop through
 * the gateway against the support back-office MCP stand-in.
 */

const ROUTER = routeSystemPrompt({
  prompt: [
    'You send each request to the team that can answer it.',
    '- billing: refund, charge, invoice, double charge',
    '- ci: pipeline, build, failing test, rerun',
    '- general: question',
  ].join('\n'),
  route: { choices: ['billing', 'ci', 'general'], default: 'general' },
});

const BILLING_PROMPT = [
  'You answer billing requests with the support back office.',
  'Offline: call support__get_order when order',
  'Offline: call issue_refund when refund',
  'Data fields: amount_usd (number), order_id (string), refund (boolean), verdict (pass|fail)',
  'Fail when: fraud, chargeback',
].join('\n');
const BILLING = answerSystemPrompt({ prompt: BILLING_PROMPT });
const DOUBLE_CHARGE = 'I was charged twice for order 1234 ($150). Please refund one.';
const ask = (request: string, earlier: Array<{ phase: string; text: string }> = []) =>
  requestMessage('billing-specialist', 'slack:U024BE7LH', request, earlier);

const SUPPORT_TOOLS: ToolSpec[] = [
  {
    name: 'support__get_order',
    description: 'Read an order',
    inputSchema: { type: 'object', properties: { order_id: { type: 'string' } }, required: ['order_id'] },
  },
  {
    name: 'support__issue_refund',
    description: 'Refund an order',
    inputSchema: {
      type: 'object',
      properties: { order_id: { type: 'string' }, amount_usd: { type: 'number' } },
      required: ['order_id', 'amount_usd'],
    },
  },
  {
    name: 'support__search_kb',
    description: 'Search articles',
    inputSchema: { type: 'object', properties: { query: { type: 'string' } } },
  },
];
const result = (name: string, text: string, isError = false): OfflineToolResult => ({ name, text, isError });

describe('Function: stem', () => {
  it('reads plural and verb forms as one word, as the keyword rules need', () => {
    expect(new Set(['refund', 'refunds', 'refunded', 'refunding'].map(stem))).toEqual(new Set(['refund']));
    expect(new Set(['charge', 'charges', 'charged'].map(stem))).toEqual(new Set(['charg']));
    expect(new Set(['rerun', 'reruns', 'rerunning'].map(stem))).toEqual(new Set(['rerun']));
  });
});

describe('Function: offlineRequestAnswer (route agents)', () => {
  it('routes to the choice with the most keywords in the request, and says which', () => {
    expect(JSON.parse(offlineRequestAnswer(ROUTER, ask(DOUBLE_CHARGE), []) ?? '')).toEqual({
      route: 'billing',
      reason: 'The request mentions "refund", "charge".',
    });
    const ci = JSON.parse(offlineRequestAnswer(ROUTER, ask('The build of PR 42 keeps failing: please rerun the pipeline.'), []) ?? '');
    expect(ci.route).toBe('ci');
    expect(parseRouteAnswer(JSON.stringify(ci), { choices: ['billing', 'ci', 'general'], default: 'general' })).toMatchObject({
      decision: 'ci',
      valid: true,
    });
  });

  it('takes the default when no keyword occurs, though the system prompt itself says "approve this refund"', () => {
    expect(ROUTER).toContain('approve this refund');
    expect(JSON.parse(offlineRequestAnswer(ROUTER, ask('Hello, who is on call this week?'), []) ?? '')).toEqual({
      route: 'general',
      reason: 'No keyword of billing, ci, general occurs in the request: the default.',
    });
  });

  it('breaks a tie by the order of the choices, and reads only the request, not the earlier answers', () => {
    const tie = ask('A refund for the failed pipeline run, please.', [{ phase: 'triage', text: 'pipeline build rerun' }]);
    expect(JSON.parse(offlineRequestAnswer(ROUTER, tie, []) ?? '').route).toBe('billing');
    expect(offlineRequestAnswer('You review Swift code and answer with JSON findings.', ask(DOUBLE_CHARGE), [])).toBeUndefined();
  });
});

describe('Function: offlineRequestAnswer (answer agents)', () => {
  it('fills the data fields from the tool results first, then the request, and cites each tool result’s first line', () => {
    const results = [
      result(
        'support__get_order',
        'Order 1234: delivered, $150.00 (amount_usd: 150), customer ana@example.com\nItems: Wireless headphones',
      ),
      result('support__issue_refund', 'refused: a refund of $500.00 is more than the $150.00 left of order 1234', true),
    ];
    const answer = parseAgentAnswer(offlineRequestAnswer(BILLING, ask('Refund $500 for order #1234 now.'), results) ?? '');
    expect(answer).toEqual({
      ok: true,
      data: { amount_usd: 150, order_id: '1234', refund: true, verdict: 'pass' },
      answer: [
        '**billing-specialist**: answered by the AgentFlow offline model (a rule-based stand-in, not a model).',
        '',
        'Tool results:',
        '- `support__get_order`: Order 1234: delivered, $150.00 (amount_usd: 150), customer ana@example.com',
        '- `support__issue_refund` (error): refused: a refund of $500.00 is more than the $150.00 left of order 1234',
        '',
        'Data: amount_usd = 150, order_id = "1234", refund = true, verdict = "pass".',
      ].join('\n'),
    });
  });

  it.each([
    ['I was charged 45 USD for ORD-1235 twice', { amount_usd: 45, order_id: 'ORD-1235', refund: false }],
    ['Order 1236 cost 89.99 and never came', { amount_usd: 89.99, order_id: '1236', refund: false }],
    ['Where is my parcel? Tracking #778812', { amount_usd: null, order_id: '778812', refund: false }],
  ])('reads money and ids in their written forms without tools: %s', (request, data) => {
    expect(JSON.parse(offlineRequestAnswer(BILLING, ask(request), []) ?? '').data).toMatchObject(data);
  });

  it('takes the enum’s second value when an earlier answer holds a "Fail when" word, and names the phases read', () => {
    const text = offlineRequestAnswer(BILLING, ask(DOUBLE_CHARGE, [{ phase: 'risk', text: 'The card has a chargeback open.' }]), []);
    const a = JSON.parse(text ?? '');
    expect(a.data.verdict).toBe('fail');
    expect(a.answer).toContain('No tool was called.');
    expect(a.answer).toContain('Earlier answers read: risk.');
  });

  it('answers {} as data when the prompt declares no fields, and reads the declared types', () => {
    const plain = answerSystemPrompt({ prompt: 'You answer questions.' });
    expect(JSON.parse(offlineRequestAnswer(plain, ask('What is up?'), []) ?? '').data).toEqual({});
    expect(dataFields('Data fields: n (number), id, ok (boolean), v (pass|fail|skip), x (list)')).toEqual([
      { name: 'n', type: 'number' },
      { name: 'id', type: 'string' },
      { name: 'ok', type: 'boolean' },
      { name: 'v', type: ['pass', 'fail', 'skip'] },
      { name: 'x', type: 'other' },
    ]);
  });

  it('reads the request and the earlier answers between their data boundaries', () => {
    expect(requestParts(ask(DOUBLE_CHARGE, [{ phase: 'triage', text: 'billing' }]))).toEqual({
      agent: 'billing-specialist',
      request: DOUBLE_CHARGE,
      earlier: [{ phase: 'triage', text: 'billing' }],
    });
  });
});

describe('Function: offlineRequestToolCall', () => {
  const turn = (system: string, request: string, results: OfflineToolResult[] = [], offered = SUPPORT_TOOLS) => ({
    system,
    task: ask(request),
    offered,
    results,
  });

  it('calls the tools its "Offline: call" lines choose, in the order offered, once each, then answers', () => {
    const first = offlineRequestToolCall(turn(BILLING, DOUBLE_CHARGE));
    expect(first).toEqual({ name: 'support__get_order', input: { order_id: '1234' } });
    const second = offlineRequestToolCall(turn(BILLING, DOUBLE_CHARGE, [result('support__get_order', 'Order 1234: $150.00')]));
    expect(second).toEqual({ name: 'support__issue_refund', input: { order_id: '1234', amount_usd: 150 } });
    const done = [result('support__get_order', 'x'), result('support__issue_refund', 'failed', true)];
    expect(offlineRequestToolCall(turn(BILLING, DOUBLE_CHARGE, done))).toBeUndefined();
    // A "when" word that is not in the request: the tool is not called.
    expect(offlineRequestToolCall(turn(BILLING, 'Where is order 1235?', [result('support__get_order', 'x')]))).toBeUndefined();
  });

  it('without "Offline" lines, calls the tools whose own name words mostly occur in the request', () => {
    const agent = answerSystemPrompt({ prompt: 'You help customers.' });
    expect(chosenTools('You help customers.', 'Please refund my order 1234', SUPPORT_TOOLS).map((t) => t.name)).toEqual([
      'support__get_order',
      'support__issue_refund',
    ]);
    expect(chosenTools('', 'How do I reset my password?', SUPPORT_TOOLS)).toEqual([]);
    expect(offlineRequestToolCall(turn(agent, 'How do I reset my password?'))).toBeUndefined();
  });

  it('builds the input from the schema: numbers after their word, first sentences, the request as a body', () => {
    const parts = requestParts(ask('The pipeline of PR #42 fails in checkout. It started today.'));
    const input = offlineToolInput(
      {
        name: 'issues__create_issue',
        inputSchema: {
          type: 'object',
          properties: {
            title: { type: 'string' },
            body: { type: 'string' },
            pr: { type: 'integer' },
            pipeline_id: { type: 'number' },
            severity: { type: 'string', enum: ['low', 'high'] },
          },
        },
      },
      { parts, results: [result('ci__get_pipeline', 'Pipeline 7781 for PR 42: failed (job unit-tests)')] },
    );
    expect(input).toEqual({
      title: 'The pipeline of PR #42 fails in checkout.',
      body: 'The pipeline of PR #42 fails in checkout. It started today.',
      pr: 42,
      pipeline_id: 7781,
      severity: 'low',
    });
  });

  it('leaves call/repeat directives in charge: they are called as written, and no tool of the request’s own is added', () => {
    const task = `${ask(DOUBLE_CHARGE)}\ncall support__search_kb {"query": "refund"}`;
    const base = { system: BILLING, task, offered: SUPPORT_TOOLS };
    expect(offlineToolCall({ ...base, results: [] })).toEqual({ name: 'support__search_kb', input: { query: 'refund' } });
    expect(offlineToolCall({ ...base, results: [result('support__search_kb', 'x')] })).toBeUndefined();
  });
});

describe('Class: OfflineModelServer (request agents, both wire formats)', () => {
  let server: OfflineModelServer;
  beforeEach(async () => {
    vi.stubEnv('AGENTFLOW_OFFLINE_FAULTS', '');
    server = await new OfflineModelServer({ faults: {} }).start();
  });
  afterEach(async () => {
    await server.stop();
    vi.unstubAllEnvs();
  });

  const MODEL: Record<Exclude<Provider, 'openai-compatible'>, string> = { bedrock: 'us.anthropic.claude-sonnet', openai: 'gpt-4.1-mini' };
  for (const provider of ['bedrock', 'openai'] as const) {
    it(`${provider}: routes a request by its keywords`, async () => {
      const providers = localProviders({ openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' }, server);
      const r = await providers[provider].complete({
        modelId: MODEL[provider],
        system: ROUTER,
        messages: [{ role: 'user', content: ask(DOUBLE_CHARGE) }],
        maxTokens: 500,
        temperature: 0,
      });
      expect(JSON.parse(r.text)).toMatchObject({ route: 'billing' });
    });

    it(`${provider}: calls the chosen tools one per turn, then answers citing their results with data`, async () => {
      const providers = localProviders({ openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' }, server);
      const messages: ChatMessage[] = [{ role: 'user', content: ask(DOUBLE_CHARGE) }];
      const outputs: Record<string, string> = {
        support__get_order: 'Order 1234: delivered, $150.00 (amount_usd: 150), customer ana@example.com',
        support__issue_refund: 'Refund RF-1 of $150.00 issued for order 1234',
      };
      const asked: unknown[] = [];
      for (let turn = 0; turn < 3; turn++) {
        const r = await providers[provider].complete({
          modelId: MODEL[provider],
          system: BILLING,
          messages,
          maxTokens: 1000,
          temperature: 0,
          tools: SUPPORT_TOOLS,
        });
        if (!r.toolCalls?.length) break;
        asked.push(...r.toolCalls.map((c) => [c.name, c.input]));
        messages.push({ role: 'assistant', content: r.text, toolCalls: r.toolCalls });
        messages.push({
          role: 'user',
          content: '',
          toolResults: r.toolCalls.map((c) => ({ id: c.id, content: outputs[c.name] ?? 'unknown tool', isError: !outputs[c.name] })),
        });
      }
      expect(asked).toEqual([
        ['support__get_order', { order_id: '1234' }],
        ['support__issue_refund', { order_id: '1234', amount_usd: 150 }],
      ]);
      const last = await providers[provider].complete({
        modelId: MODEL[provider],
        system: BILLING,
        messages,
        maxTokens: 1000,
        temperature: 0,
        tools: SUPPORT_TOOLS,
      });
      const answer = parseAgentAnswer(last.text);
      expect(answer).toMatchObject({ ok: true, data: { amount_usd: 150, order_id: '1234', refund: true, verdict: 'pass' } });
      expect(answer.ok && answer.answer).toContain('- `support__issue_refund`: Refund RF-1 of $150.00 issued for order 1234');
    });

    it(`${provider}: marks a tool's error result as such in the answer`, async () => {
      const providers = localProviders({ openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' }, server);
      const r = await providers[provider].complete({
        modelId: MODEL[provider],
        system: answerSystemPrompt({ prompt: 'Offline: call support__get_order' }),
        messages: [
          { role: 'user', content: ask('Where is order 9999?') },
          { role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'support__get_order', input: { order_id: '9999' } }] },
          { role: 'user', content: '', toolResults: [{ id: 'c1', content: 'no order 9999', isError: true }] },
        ],
        maxTokens: 1000,
        temperature: 0,
        tools: SUPPORT_TOOLS,
      });
      expect(r.toolCalls ?? []).toEqual([]);
      expect(JSON.parse(r.text).answer).toContain('- `support__get_order` (error): no order 9999');
    });
  }
});

describe('Function: runToolLoop (a request agent on the support stand-in)', () => {
  let env: GatewayEnv;
  beforeAll(async () => {
    env = await startGateway();
  });
  afterAll(async () => {
    await env?.stop();
  });

  const price = { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 };
  const MODELS: Record<'bedrock' | 'openai', ModelRef> = {
    bedrock: { provider: 'bedrock', alias: 'claude-sonnet', modelId: 'us.anthropic.claude-sonnet', contextWindow: 200_000, price },
    openai: { provider: 'openai', alias: 'gpt-4.1-mini', modelId: 'gpt-4.1-mini', contextWindow: 1_000_000, price },
  };

  for (const provider of ['bedrock', 'openai'] as const) {
    it(`${provider}: looks the order up, refunds it as the requester, and answers with the refund and its data`, async () => {
      const log = join(mkdtempSync(join(tmpdir(), 'agentflow-mcp-')), 'calls.jsonl');
      const box = new McpToolbox(
        [
          {
            name: 'support',
            command: process.execPath,
            args: ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'standins', 'mcp-support.ts')],
            env: { NODE_PATH: join(PROJECT_ROOT, 'node_modules'), MCP_CALL_LOG: log },
            allow: [{ name: 'get_order' }, { name: 'issue_refund', write: true }],
          },
        ],
        { timeoutMs: 20_000, allowWrite: true },
      );
      try {
        const r = await runToolLoop(
          env.gateway,
          {
            candidates: [MODELS[provider]],
            system: BILLING,
            messages: [{ role: 'user', content: ask(DOUBLE_CHARGE) }],
            maxTokens: 1000,
            temperature: 0,
            scopes: budgetScopes(BudgetConfigSchema.parse({}), { runId: `request-${provider}`, project: 'support', now: new Date() }),
            cache: false,
            labels: { workflow: 'support-request', agent: 'billing-specialist', project: 'support' },
            deadlineMs: Date.now() + 60_000,
          },
          box,
          { requester: 'slack:U024BE7LH' },
        );
        expect(r.status).toBe('complete');
        expect(r.calls.map((c) => [c.name, c.ok, c.output?.split('\n')[0]])).toEqual([
          ['support__get_order', true, 'Order 1234: delivered, $150.00 (amount_usd: 150), customer ana@example.com'],
          ['support__issue_refund', true, 'Refund RF-1 of $150.00 issued for order 1234'],
        ]);
        const answer = parseAgentAnswer(r.text);
        expect(answer).toMatchObject({ ok: true, data: { amount_usd: 150, order_id: '1234', refund: true, verdict: 'pass' } });
        expect(answer.ok && answer.answer).toContain('Refund RF-1 of $150.00 issued for order 1234');
        const logged = readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
        expect(logged.map((l) => [l.tool, l.requester, l.outcome])).toEqual([
          ['get_order', 'slack:U024BE7LH', 'ok'],
          ['issue_refund', 'slack:U024BE7LH', 'ok'],
        ]);
      } finally {
        await box.close();
      }
    }, 90_000);

    it(`${provider}: without "Offline" lines, calls the CI and tracker tools the request's words name, feeding one result into the next call`, async () => {
      const standin = (name: string, file: string, allow: Array<{ name: string; write?: boolean }>) => ({
        name,
        command: process.execPath,
        args: ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'standins', file)],
        env: { NODE_PATH: join(PROJECT_ROOT, 'node_modules') },
        allow,
      });
      const box = new McpToolbox(
        [
          standin('ci', 'mcp-ci.ts', [{ name: 'get_pipeline' }, { name: 'rerun_pipeline', write: true }]),
          standin('issues', 'mcp-issue-tracker.ts', [{ name: 'create_issue', write: true }]),
        ],
        { timeoutMs: 20_000, allowWrite: true },
      );
      const prompt = [
        'You look after CI failures.',
        'Data fields: pr (number), pipeline_id (number), issue_key (string), verdict (pass|fail)',
        'Fail when: failed, broken',
      ].join('\n');
      try {
        const r = await runToolLoop(
          env.gateway,
          {
            candidates: [MODELS[provider]],
            system: answerSystemPrompt({ prompt }),
            messages: [{ role: 'user', content: ask('The pipeline of PR 42 failed in unit tests. Please rerun it and file an issue.') }],
            maxTokens: 1000,
            temperature: 0,
            scopes: budgetScopes(BudgetConfigSchema.parse({}), { runId: `ci-${provider}`, project: 'mobile', now: new Date() }),
            cache: false,
            labels: { workflow: 'ci-request', agent: 'ci-helper', project: 'mobile' },
            deadlineMs: Date.now() + 60_000,
          },
          box,
          { requester: 'slack:U024BE7LH' },
        );
        expect(r.status).toBe('complete');
        expect(r.calls.map((c) => [c.name, JSON.parse(c.input), c.output?.split('\n')[0]])).toEqual([
          ['ci__get_pipeline', { pr: 42 }, 'Pipeline 7781 for PR 42: failed (job unit-tests)'],
          ['ci__rerun_pipeline', { pr: 42, pipeline_id: 7781 }, 'Started pipeline 7800 for PR 42 (rerun of 7781): running'],
          [
            'issues__create_issue',
            {
              title: 'The pipeline of PR 42 failed in unit tests.',
              body: 'The pipeline of PR 42 failed in unit tests. Please rerun it and file an issue.',
              pr: 42,
            },
            'Created ISSUE-1: The pipeline of PR 42 failed in unit tests.',
          ],
        ]);
        expect(parseAgentAnswer(r.text)).toMatchObject({
          ok: true,
          data: { pr: 42, pipeline_id: 7800, issue_key: 'ISSUE-1', verdict: 'fail' },
        });
      } finally {
        await box.close();
      }
    }, 90_000);
  }
});
