import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FsArtifactStore } from '../../../lambdas/adapters/artifacts.js';
import { aggregate } from '../../../lambdas/aggregate/aggregate.js';
import { FINDINGS_FORMAT } from '../../../lambdas/core/answer-format.js';
import type { AgentItem, ContextArtifact, StructuredOutput } from '../../../lambdas/core/contracts.js';
import type { GatewayAnswer, GatewayCall, ModelGateway } from '../../../lambdas/core/gateway.js';
import { GatewayConfigSchema } from '../../../lambdas/core/gateway-config.js';
import { buildPlan, promptTokens } from '../../../lambdas/core/plan.js';
import { readSpend, spendKey } from '../../../lambdas/core/spend.js';
import { VERDICTS_FORMAT } from '../../../lambdas/core/verify.js';
import { findingsKey, invokeAgent } from '../../../lambdas/invoke-agent/invoke-agent.js';
import type { OfflineModelServer } from '../../../lib/local/offline-model.js';
import { type GatewayEnv, startGateway, tempDir } from '../../helpers.js';

const price = { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 };
const agent = (provider: 'bedrock' | 'openai', contextWindow = 200_000): AgentItem => ({
  name: 'code-review',
  model: { provider, alias: provider === 'bedrock' ? 'claude-sonnet' : 'gpt-4.1-mini', modelId: 'm', contextWindow, price },
  fallback: [],
  maxTokens: 1000,
  temperature: 0.2,
  categories: ['correctness', 'quality'],
  tasks: [],
  prompt: 'Review the change like a senior iOS engineer and report crashes and quality problems.',
  cache: true,
  complexity: 'medium',
  output: 'findings',
  paths: { include: [], exclude: [] },
  tools: [],
  maxIterations: 8,
  timeLimitSeconds: 300,
  allowWrite: false,
  reads: [],
});

/** An agent on an openai-compatible model (Ollama, vLLM) with the given `structured_output`. */
const compatibleAgent = (structuredOutput: StructuredOutput, output: AgentItem['output'] = 'findings'): AgentItem => ({
  ...agent('openai'),
  model: { provider: 'openai-compatible', alias: 'qwen-coder', modelId: 'qwen2.5-coder', contextWindow: 200_000, price, structuredOutput },
  output,
});

const context = (files: ContextArtifact['files']): ContextArtifact => ({
  change: {
    repository: 'acme/app',
    number: 1,
    title: 'T',
    author: 'dev',
    url: '',
    action: 'opened',
    baseSha: 'a',
    headSha: 'b',
    baseRef: '',
    headRef: '',
  },
  files,
  stats: {
    filesChanged: files.length,
    additions: 1,
    deletions: 0,
    linesChanged: 1,
    matchedFiles: 1,
    redactions: 0,
    estimatedTokens: 10,
    filesExcluded: 0,
  },
});

const swift = (lines: string[]): ContextArtifact['files'][number] => ({
  path: 'App/Checkout.swift',
  status: 'modified',
  additions: lines.length,
  deletions: 0,
  binary: false,
  patch: [`@@ -10,0 +10,${lines.length} @@`, ...lines.map((l) => `+${l}`)].join('\n'),
});

let env: GatewayEnv | undefined;
let server: OfflineModelServer | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
  server = undefined;
});

async function setup(files: ContextArtifact['files'], offline: ConstructorParameters<typeof OfflineModelServer>[0] = {}) {
  env = await startGateway({ offline });
  server = env.server;
  const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
  const contextRef = await artifacts.putJson('runs/r1/context.json', context(files));
  const providers = { gateway: env.gateway, budgets: env.config.budgets };
  return { artifacts, providers, contextRef };
}

/** The gateway with every call it is given recorded in `sent`. */
const recording = (inner: ModelGateway): { gateway: ModelGateway; sent: GatewayCall[] } => {
  const sent: GatewayCall[] = [];
  const gateway = {
    complete: (c: GatewayCall) => {
      sent.push(c);
      return inner.complete(c);
    },
  } as unknown as ModelGateway;
  return { gateway, sent };
};

const input = (a: AgentItem, contextRef: string) => ({ agent: a, runId: 'r1', workflow: 'pr-review', phase: 'review', contextRef });

describe('Function: invokeAgent', () => {
  it.each(['bedrock', 'openai'] as const)(
    'reviews through the real %s SDK client, prices the usage and stores findings by reference',
    async (provider) => {
      const { artifacts, providers, contextRef } = await setup([swift(['let token = cardToken!', 'print("x")'])]);
      const r = await invokeAgent(input(agent(provider), contextRef), { artifacts, ...providers });
      expect(r).toMatchObject({ status: 'succeeded', provider, findings: 2, chunks: 1, servedBy: 'AgentFlow offline model server' });
      expect(r.inputTokens).toBeGreaterThan(0);
      expect(r.costUsd).toBeCloseTo((r.inputTokens * 3 + r.outputTokens * 15) / 1e6, 6);
      const stored = (await artifacts.getJson(findingsKey('r1', 'review', 'code-review'))) as {
        findings: Array<{ line: number; severity: string }>;
      };
      expect(stored.findings.map((f) => [f.line, f.severity])).toEqual([
        [10, 'high'],
        [11, 'low'],
      ]);
      expect(server?.stats[provider]).toBe(1);
    },
  );

  it('writes the spend record of an agent with one call once (the write after the answer is the final one), with what it spent', async () => {
    const { artifacts, providers, contextRef } = await setup([swift(['let token = cardToken!', 'print("x")'])]);
    const spendWrites: string[] = [];
    const putText = artifacts.putText.bind(artifacts);
    artifacts.putText = async (key: string, text: string) => {
      if (key === spendKey('r1', 'review', 'code-review')) spendWrites.push(text);
      return putText(key, text);
    };
    const r = await invokeAgent(input(agent('bedrock'), contextRef), { artifacts, ...providers });
    await new Promise((ok) => setImmediate(ok));
    expect(r.chunks).toBe(1);
    expect(spendWrites).toHaveLength(1);
    const spend = await readSpend(artifacts, 'r1', 'review', 'code-review');
    expect(spend.invocations).toEqual([expect.objectContaining({ calls: 1, costMicro: Math.round(r.costUsd * 1e6) })]);
  });

  it('asks bedrock and openai for the findings format natively (a forced tool, a strict json_schema) and reads their structured answers', async () => {
    for (const provider of ['bedrock', 'openai'] as const) {
      const { artifacts, providers, contextRef } = await setup([swift(['let token = cardToken!', 'print("x")'])]);
      const { gateway, sent } = recording(providers.gateway);
      const r = await invokeAgent(input(agent(provider), contextRef), { artifacts, gateway, budgets: providers.budgets });
      expect(r, provider).toMatchObject({ status: 'succeeded', findings: 2, repairs: 0, calls: 1 });
      expect(sent[0]?.answerFormat).toBe(FINDINGS_FORMAT);
      await env?.stop();
      env = undefined;
    }
  });
  it('runs each chunk of a review agent with tools as a tool loop: the tools offered, the format in the prompt, the answer read as findings', async () => {
    // Prepare
    const { artifacts, providers, contextRef } = await setup([swift(['let token = cardToken!', 'print("x")'])]);
    const { gateway, sent } = recording(providers.gateway);
    const withTools: AgentItem = {
      ...agent('openai'),
      tools: [
        {
          name: 'agentflow',
          builtin: true,
          args: [],
          allow: [
            { name: 'read_file', write: false },
            { name: 'search', write: false },
          ],
        },
      ],
    };

    // Act
    const r = await invokeAgent(input(withTools, contextRef), { artifacts, gateway, budgets: providers.budgets });

    // Assess
    // The offline model reads the chunk's file (read_file; list_changed_files is not offered), then answers.
    expect(r).toMatchObject({ status: 'succeeded', findings: 2, calls: 2, iterations: 2, toolCalls: 1, toolErrors: 0 });
    expect(sent[0]?.tools?.map((t) => t.name)).toEqual(['agentflow__read_file', 'agentflow__search']);
    expect(sent[0]?.answerFormat).toBeUndefined();
    expect(sent[0]?.system).toMatch(/## Answer format/);
    expect(await artifacts.getJson(r.toolCallsRef as string)).toEqual([
      expect.objectContaining({ name: 'agentflow__read_file', input: '{"path":"App/Checkout.swift"}', ok: true }),
    ]);
    const spend = await readSpend(artifacts, 'r1', 'review', 'code-review');
    expect(r.costUsd).toBe(spend.invocations.reduce((s, i) => s + i.costMicro, 0) / 1e6);
  });

  it('asks once more with room up to the model’s max_output when an answer is cut at max_tokens, never the same question again', async () => {
    // Ten force unwraps: ten findings, far more than 256 answer tokens.
    const lines = Array.from({ length: 10 }, (_, i) => `let v${i} = value${i}!`);
    const { artifacts, providers, contextRef } = await setup([swift(lines)]);
    const small = { ...agent('openai'), maxTokens: 256 };
    const asked: number[] = [];
    const gateway = {
      complete: (c: GatewayCall) => {
        asked.push(c.maxTokens);
        return providers.gateway.complete(c);
      },
    } as unknown as ModelGateway;
    const r = await invokeAgent(input({ ...small, model: { ...small.model, maxOutput: 32_768 } }, contextRef), {
      artifacts,
      gateway,
      budgets: providers.budgets,
    });
    expect(r).toMatchObject({ status: 'succeeded', findings: 10, truncated: 1, repairs: 0, calls: 2 });
    // The second call asked for four times the room (1,024 tokens), not the same 256.
    expect(asked).toEqual([256, 1024]);
  });

  it('keeps the findings before the cut when the model can write no more (no max_output room), and says it was truncated', async () => {
    const lines = Array.from({ length: 10 }, (_, i) => `let v${i} = value${i}!`);
    const { artifacts, providers, contextRef } = await setup([swift(lines)]);
    const r = await invokeAgent(input({ ...agent('openai'), maxTokens: 256 }, contextRef), { artifacts, ...providers });
    expect(r).toMatchObject({ status: 'succeeded', truncated: 1, repairs: 0, calls: 1 });
    expect(r.findings).toBeGreaterThan(0);
    expect(r.findings).toBeLessThan(10);
  });

  it('splits a change too large for the model into chunks and reviews every chunk', async () => {
    const lines = Array.from({ length: 300 }, (_, i) => (i % 50 === 0 ? `let v${i} = value!` : `let v${i} = value // ok`));
    const { artifacts, providers, contextRef } = await setup([swift(lines)]);
    const r = await invokeAgent(input(agent('openai', 2_500), contextRef), { artifacts, ...providers });
    expect(r.chunks).toBeGreaterThan(1);
    expect(server?.stats.openai).toBe(r.chunks);
    expect(r.findings).toBe(6);
    const stored = (await artifacts.getJson(findingsKey('r1', 'review', 'code-review'))) as { findings: Array<{ line: number }> };
    expect(stored.findings.map((f) => f.line)).toEqual([10, 60, 110, 160, 210, 260]);
  });

  it('reports the chunk not reviewed (ProviderRejectedError) after one repair prompt when the answer stays invalid, keeping the raw answer and the spend', async () => {
    const { artifacts, providers, contextRef } = await setup([swift(['let a = b!'])], { faults: { openai: 'invalid' } });
    const r = await invokeAgent(input(agent('openai'), contextRef), { artifacts, ...providers });
    expect(r).toMatchObject({ status: 'failed', calls: 2, repairs: 1, filesNotReviewed: 1 });
    expect(r.error).toMatchObject({
      Error: 'ProviderRejectedError',
      Cause: expect.stringMatching(/invalid format twice.*runs\/r1\/raw\/review\/code-review-part1\.txt/),
    });
    expect(server?.stats.openai).toBe(2);
    // Both paid calls are in the agent's spend record, which Aggregate reports.
    const spend = await readSpend(artifacts, 'r1', 'review', 'code-review');
    expect(spend.invocations).toHaveLength(1);
    expect(spend.invocations[0]).toMatchObject({ calls: 2, repairs: 1 });
    expect(spend.invocations[0]?.costMicro).toBeGreaterThan(0);
    expect(await artifacts.getText('runs/r1/raw/review/code-review-part1.txt')).toMatch(/not JSON/);
    // Where the raw answer is, as a person opens it: the absolute path of the file (locally).
    expect(r.rawAnswers).toEqual([artifacts.pathOf('runs/r1/raw/review/code-review-part1.txt')]);
    expect(r.error?.Cause).toContain(artifacts.pathOf('runs/r1/raw/review/code-review-part1.txt'));
  });

  it('redacts secrets a model writes (findings, summary, document) before storing them, and its invalid answer before the repair prompt', async () => {
    // A format-valid token, split so the repository itself holds no secret-shaped literal.
    const token = `gh${'p_'}R7x2Lq9ZmT4vKc8WnJ3pYs6HdF1gBa0Eu5Qi`;
    const { artifacts, providers, contextRef } = await setup([swift(['let a = b!'])]);
    const sent: GatewayCall[] = [];
    let n = 0;
    const gateway = {
      complete: async (call: GatewayCall) => {
        sent.push(call);
        const real = await providers.gateway.complete(call);
        const text =
          ++n === 1
            ? `Here is my review (token ${token}) {`
            : JSON.stringify({
                summary: `Found ${token}`,
                findings: [
                  {
                    file: 'App/Checkout.swift',
                    line: 10,
                    severity: 'high',
                    category: 'security',
                    message: `Leaked ${token} in code`,
                    suggestion: `Revoke ${token}`,
                  },
                ],
              });
        return { ...real, text } as GatewayAnswer;
      },
    };
    const r = await invokeAgent(input(agent('openai'), contextRef), {
      artifacts,
      gateway: gateway as unknown as ModelGateway,
      budgets: providers.budgets,
    });
    expect(r).toMatchObject({ status: 'succeeded', repairs: 1, findings: 1 });
    // The repair prompt hands the model its own answer back: redacted.
    expect(JSON.stringify(sent[1]?.messages)).not.toContain(token);
    expect(JSON.stringify(sent[1]?.messages)).toContain('[REDACTED:');
    const stored = (await artifacts.getJson(findingsKey('r1', 'review', 'code-review'))) as {
      findings: Array<{ message: string; suggestion: string }>;
      answerRedactions: number;
    };
    expect(JSON.stringify(stored)).not.toContain(token);
    expect(stored.findings[0]?.message).toMatch(/^Leaked \[REDACTED:[a-z-]+\] in code$/);
    expect(stored.answerRedactions).toBe(3);
    // The invalid first answer is kept, redacted, and the result says where.
    expect(r.rawAnswers).toHaveLength(1);
    expect(readFileSync(r.rawAnswers[0] as string, 'utf8')).not.toContain(token);
  });

  it('reports a chunk the provider refuses (HTTP 400) as not reviewed, with the error, instead of failing the other chunks', async () => {
    const { artifacts, providers, contextRef } = await setup([swift(['let a = b!'])], { faults: { bedrock: 400 } });
    const r = await invokeAgent(input(agent('bedrock'), contextRef), { artifacts, ...providers });
    expect(r).toMatchObject({ status: 'failed', filesNotReviewed: 1, error: { Error: 'ProviderRejectedError' } });
  });

  it.each([
    [503, 'ProviderUnavailableError'],
    [429, 'ProviderThrottledError'],
    [401, 'ProviderAuthError'],
  ] as const)('classifies HTTP %i from Bedrock as %s', async (status, name) => {
    const { artifacts, providers, contextRef } = await setup([swift(['let a = b!'])], { faults: { bedrock: status } });
    await expect(invokeAgent(input(agent('bedrock'), contextRef), { artifacts, ...providers })).rejects.toMatchObject({ name });
  });

  it('classifies HTTP 429 from OpenAI as ProviderThrottledError', async () => {
    const { artifacts, providers, contextRef } = await setup([swift(['let a = b!'])], { faults: { openai: 429 } });
    await expect(invokeAgent(input(agent('openai'), contextRef), { artifacts, ...providers })).rejects.toMatchObject({
      name: 'ProviderThrottledError',
    });
  });

  it('rejects a Map item that does not match the contract', async () => {
    const { artifacts, providers } = await setup([]);
    await expect(invokeAgent({ agent: { name: 'x' } }, { artifacts, ...providers })).rejects.toMatchObject({ name: 'InvalidInputError' });
  });
});

/** A scripted gateway: answers every call with no findings at a fixed cost, counting calls in flight. Fails loudly past its script. */
function scriptedGateway(o: { costMicro: number; maxCalls: number; delayMs?: number }) {
  const seen: GatewayCall[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const gateway = {
    async complete(call: GatewayCall): Promise<GatewayAnswer> {
      seen.push(call);
      if (seen.length > o.maxCalls) throw new Error(`scripted gateway: call ${seen.length} was not expected`);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, o.delayMs ?? 5));
      inFlight--;
      const model = call.candidates[0];
      if (!model) throw new Error('scripted gateway: no candidate');
      return {
        text: '{"summary":"ok","findings":[]}',
        usage: { inputTokens: 100, outputTokens: 10, cacheReadTokens: 0, cacheWriteTokens: 0 },
        model,
        costUsd: o.costMicro / 1e6,
        costMicro: o.costMicro,
        estimateUsd: 0,
        estimatedInputTokens: 100,
        truncated: false,
        cacheHit: false,
        fallbackUsed: false,
        attempts: [],
      };
    },
  };
  return { gateway: gateway as unknown as ModelGateway, seen, maxInFlight: () => maxInFlight };
}

describe('Function: invokeAgent (answer shapes)', () => {
  const diff = () => [swift(['let token = cardToken!', 'print("x")'])];

  it.each([
    ['fenced with prose', 'fenced-prose'],
    ['with a brace in the prose before it', 'brace-prose'],
    ['followed by a second (example) object', 'two-objects'],
  ] as const)('reads an answer %s from a prompt-only and a JSON-mode model with no repair prompt', async (_shape, fault) => {
    for (const mode of ['prompt', 'json_object'] as const) {
      const { artifacts, providers, contextRef } = await setup(diff(), { faults: { 'openai-compatible': fault } });
      const r = await invokeAgent(input(compatibleAgent(mode), contextRef), { artifacts, ...providers });
      expect(r, `${fault} with structured_output ${mode}`).toMatchObject({ status: 'succeeded', findings: 2, repairs: 0, calls: 1 });
      await env?.stop();
      env = undefined;
    }
  });

  it('reads a document written after the JSON object (prompt-only model) and one with raw newlines inside its JSON string', async () => {
    // Prepare: the offline model writes the document between the document lines; a second agent's
    // model answers with the document as a JSON string holding raw line breaks.
    const { artifacts, providers, contextRef } = await setup(diff());
    const raw = `{"summary":"ADR","findings":[],"document":"# ADR 7\n\n## Context\n- a \\"quoted\\" word"}`;
    const rawGateway = {
      complete: async (c: GatewayCall) => ({ ...(await providers.gateway.complete(c)), text: raw }),
    } as unknown as ModelGateway;
    // Act
    const after = await invokeAgent(input({ ...compatibleAgent('prompt', 'document'), name: 'adr' }, contextRef), {
      artifacts,
      ...providers,
    });
    const inJson = await invokeAgent(input({ ...agent('openai'), name: 'adr-raw', output: 'document' }, contextRef), {
      artifacts,
      gateway: rawGateway,
      budgets: providers.budgets,
    });
    // Assess
    expect(after).toMatchObject({ status: 'succeeded', repairs: 0, documentRef: expect.any(String) });
    expect(await artifacts.getText(after.documentRef ?? '')).toMatch(/^# ADR: /m);
    expect(inJson).toMatchObject({ status: 'succeeded', repairs: 0, documentRef: expect.any(String) });
    expect(await artifacts.getText(inJson.documentRef ?? '')).toContain('# ADR 7\n\n## Context\n- a "quoted" word');
  });

  it('keeps the findings before the cut of a truncated answer on openai-compatible and says it was truncated', async () => {
    // Six force unwraps: six findings; the answer is cut at about half.
    const lines = Array.from({ length: 6 }, (_, i) => `let v${i} = value${i}!`);
    const { artifacts, providers, contextRef } = await setup([swift(lines)], { faults: { 'openai-compatible': 'truncated' } });
    const r = await invokeAgent(input(compatibleAgent('prompt'), contextRef), { artifacts, ...providers });
    expect(r).toMatchObject({ status: 'succeeded', truncated: 1, repairs: 0, calls: 1 });
    expect(r.findings).toBeGreaterThan(0);
    expect(r.findings).toBeLessThan(6);
  });

  it('reports the part not reviewed when a truncated bedrock tool answer keeps no whole finding (never a review of nothing)', async () => {
    // A forced tool's input cut at max_tokens arrives as an empty object: no finding can be kept.
    const { artifacts, providers, contextRef } = await setup(diff(), { faults: { bedrock: 'truncated' } });
    const r = await invokeAgent(input(agent('bedrock'), contextRef), { artifacts, ...providers });
    expect(r).toMatchObject({ status: 'failed', truncated: 1, repairs: 0, calls: 1, findings: 0, filesReviewed: 0 });
    expect(r.notReviewed).toMatch(/^answer cut at max_tokens \(1000 tokens\) before a whole item$/);
  });

  it.each(['bedrock', 'openai-compatible'] as const)(
    'refuses an empty answer on %s after one repair prompt (ProviderRejectedError: "it is empty")',
    async (provider) => {
      const { artifacts, providers, contextRef } = await setup(diff(), { faults: { [provider]: 'empty' } });
      const a = provider === 'bedrock' ? agent('bedrock') : compatibleAgent('prompt');
      const r = await invokeAgent(input(a, contextRef), { artifacts, ...providers });
      expect(r).toMatchObject({ status: 'failed', calls: 2, repairs: 1 });
      expect(r.error).toMatchObject({ Error: 'ProviderRejectedError', Cause: expect.stringContaining('it is empty') });
    },
  );

  it.each(['bedrock', 'openai-compatible'] as const)(
    'refuses an off-schema answer on %s after one repair prompt, naming the wrong field',
    async (provider) => {
      const { artifacts, providers, contextRef } = await setup(diff(), { faults: { [provider]: 'off-schema' } });
      const a = provider === 'bedrock' ? agent('bedrock') : compatibleAgent('prompt');
      const r = await invokeAgent(input(a, contextRef), { artifacts, ...providers });
      expect(r).toMatchObject({ status: 'failed', calls: 2, repairs: 1 });
      expect(r.error?.Cause).toMatch(/does not match the format \(findings: /);
    },
  );
});

describe('Function: invokeAgent, following the review plan', () => {
  const many = Array.from({ length: 12 }, (_, i) => ({
    ...swift(Array.from({ length: 120 }, (_, k) => `let v${k} = value${k} // line ${k} of file ${i}`)),
    path: `App/F${String(i).padStart(2, '0')}.swift`,
  }));
  const small = agent('openai', 6_000);

  async function planned(maxUsdPerRun: number | undefined) {
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const ctx = context(many);
    const plan = buildPlan({
      files: many,
      stats: ctx.stats,
      agents: [{ phase: 'review', agent: small }],
      promptTokens: (a) => promptTokens(a, ctx.change),
    });
    const contextRef = await artifacts.putJson('runs/r1/context.json', { ...ctx, plan });
    const budgets = GatewayConfigSchema.parse({ budgets: maxUsdPerRun === undefined ? {} : { perRunUsd: maxUsdPerRun } }).budgets;
    return { artifacts, contextRef, plan, budgets };
  }

  it('sends the chunks of one agent concurrently, at most the given number at once', async () => {
    const { artifacts, contextRef, plan, budgets } = await planned(undefined);
    const chunks = plan.agents[0]?.chunks ?? 0;
    expect(chunks).toBeGreaterThan(4);
    const fake = scriptedGateway({ costMicro: 10, maxCalls: chunks });
    const r = await invokeAgent(input(small, contextRef), { artifacts, gateway: fake.gateway, budgets, concurrency: 3 });
    expect(r).toMatchObject({ status: 'succeeded', chunks, calls: chunks, filesReviewed: 12, filesNotReviewed: 0 });
    expect(fake.maxInFlight()).toBe(3);
    // The answer cap follows the chunk, not the agent's whole max_tokens.
    for (const call of fake.seen) expect(call.maxTokens).toBeLessThanOrEqual(small.maxTokens);
  });

  it('stops at its share of the run budget: reviews the highest-value chunks, lists the rest and reports partial', async () => {
    const { artifacts, contextRef, plan, budgets } = await planned(0.1);
    const a = plan.agents[0];
    expect(a?.needUsd).toBeGreaterThan(0.1);
    const fake = scriptedGateway({ costMicro: 15_000, maxCalls: 100, delayMs: 1 });
    const r = await invokeAgent(input(small, contextRef), { artifacts, gateway: fake.gateway, budgets, concurrency: 1 });
    expect(r.status).toBe('partial');
    expect(r.shareUsd).toBe(0.1);
    expect(r.costUsd).toBeLessThanOrEqual(0.1);
    expect(r.filesReviewed).toBeGreaterThan(0);
    expect(r.filesNotReviewed).toBeGreaterThan(0);
    expect(r.notReviewed).toMatch(/^budget: its share of the run budget/);
    const stored = (await artifacts.getJson(findingsKey('r1', 'review', 'code-review'))) as { notReviewed: string[] };
    expect(stored.notReviewed.length).toBe(r.filesNotReviewed);
    // Files come in review order, so the unreviewed ones are the last ones.
    expect(stored.notReviewed).toContain('App/F11.swift');
    expect(stored.notReviewed).not.toContain('App/F00.swift');
  });

  it('reports "not reviewed: budget" and makes no call when the share does not cover one chunk', async () => {
    const { artifacts, contextRef, budgets } = await planned(0.000_5);
    const fake = scriptedGateway({ costMicro: 1, maxCalls: 0 });
    const r = await invokeAgent(input(small, contextRef), { artifacts, gateway: fake.gateway, budgets });
    expect(r).toMatchObject({ status: 'failed', calls: 0, costUsd: 0, filesReviewed: 0, filesNotReviewed: 12 });
    expect(r.error).toMatchObject({ Error: 'BudgetExceededError', Cause: expect.stringMatching(/^not reviewed: budget/) });
    expect(fake.seen).toHaveLength(0);
  });
});

describe('Function: invokeAgent (the verifier, output: verdicts)', () => {
  const verifier = (): AgentItem => ({
    ...agent('bedrock'),
    name: 'verifier',
    model: {
      provider: 'bedrock',
      alias: 'claude-haiku',
      modelId: 'h',
      contextWindow: 200_000,
      price: { input: 1, output: 5, cacheRead: 0.1, cacheWrite: 1.25 },
    },
    maxTokens: 4096,
    temperature: 0,
    categories: [],
    prompt: '',
    output: 'verdicts',
    verify: { batch: 1, unconfirmed: 'drop' },
  });

  it('checks each earlier finding against the code it cites; Aggregate drops the unconfirmed one and the run cost includes the verifier', async () => {
    // Prepare: code-review reported the force unwrap at line 10 (real) and one at line 11 (invented: it is a print).
    const { artifacts, providers, contextRef } = await setup([swift(['let token = cardToken!', 'print("x")'])]);
    const { gateway, sent } = recording(providers.gateway);
    const review = await invokeAgent(input(agent('bedrock'), contextRef), { artifacts, ...providers });
    const stored = (await artifacts.getJson(findingsKey('r1', 'review', 'code-review'))) as { findings: Array<Record<string, unknown>> };
    const invented = { ...stored.findings[0], line: 11, message: 'Force unwrap of the printed value crashes.' };
    await artifacts.putJson(findingsKey('r1', 'review', 'code-review'), { ...stored, findings: [...stored.findings, invented] });

    // Act
    const v = await invokeAgent(
      { ...input(verifier(), contextRef), phase: 'verify', previous: { review: [{ ...review, findings: 3 }] } },
      { artifacts, gateway, budgets: providers.budgets },
    );
    const out = await aggregate(
      { runId: 'r1', workflow: 'pr-review', change: context([]).change, contextRef, results: { review: [review], verify: [v] } },
      { artifacts },
    );

    // Assess: one call per finding (batch: 1), asked for the verdicts format natively.
    expect(v).toMatchObject({ name: 'verifier', status: 'succeeded', calls: 3, findings: 0, verdictsRef: expect.any(String) });
    expect(sent.map((c) => c.answerFormat)).toEqual([VERDICTS_FORMAT, VERDICTS_FORMAT, VERDICTS_FORMAT]);
    expect(sent[0]?.messages[0]?.content).toMatch(/^Verify: batch 1 of 3 of the findings/);
    expect(out.summary.verification).toMatchObject({ checked: 3, confirmed: 2, dropped: 1, downgraded: 0, unverified: 0 });
    expect(out.summary.verification?.notes).toEqual([
      expect.objectContaining({
        line: 11,
        message: 'Force unwrap of the printed value crashes.',
        reason: expect.stringContaining('no such problem'),
      }),
    ]);
    expect(out.summary.findings).toBe(2);
    // The verifier's spend is the run's: its spend record, summed with the reviewer's.
    const verifierSpend = await readSpend(artifacts, 'r1', 'verify', 'verifier');
    expect(verifierSpend.invocations[0]?.calls).toBe(3);
    expect(out.summary.costUsd).toBeCloseTo(review.costUsd + v.costUsd, 6);
    expect(v.costUsd).toBeGreaterThan(0);
    const comment = await artifacts.getText(out.commentRef);
    expect(comment).toMatch(/\*\*Verifier\*\* \(claude-haiku, \$0\.\d{4}\): 3 findings checked — 2 confirmed, 1 dropped\./);
    expect(comment).toContain('<details><summary>Not confirmed</summary>');
  });

  it('finds its verdicts for the same agent in two phases (it merges findings in the order Aggregate does)', async () => {
    const { artifacts, providers, contextRef } = await setup([swift(['let token = cardToken!', 'print("x")'])]);
    const review = await invokeAgent(input(agent('bedrock'), contextRef), { artifacts, ...providers });
    const stored = (await artifacts.getJson(findingsKey('r1', 'review', 'code-review'))) as { findings: Array<Record<string, unknown>> };
    // The same agent in a later phase reports the unwrap at line 10 again in other words.
    const again = { ...stored.findings[0], message: 'Crash: `cardToken!` is nil before login.' };
    const deepRef = await artifacts.putJson(findingsKey('r1', 'deep', 'code-review'), { ...stored, findings: [again] });
    const deep = { ...review, phase: 'deep', findingsRef: deepRef, findings: 1 };
    const v = await invokeAgent(
      {
        ...input({ ...verifier(), verify: { batch: 20, unconfirmed: 'drop' } }, contextRef),
        phase: 'verify',
        previous: { deep: [deep], review: [review] },
      },
      { artifacts, ...providers },
    );
    const out = await aggregate(
      {
        runId: 'r1',
        workflow: 'pr-review',
        change: context([]).change,
        contextRef,
        results: { deep: [deep], review: [review], verify: [v] },
      },
      { artifacts },
    );
    expect(out.summary.verification).toMatchObject({ checked: 2, confirmed: 2, unverified: 0 });
  });

  it('leaves the findings it got no verdict for unverified and reports itself partial (the run is PARTIAL)', async () => {
    const { artifacts, providers, contextRef } = await setup([swift(['let token = cardToken!', 'print("x")'])]);
    const review = await invokeAgent(input(agent('bedrock'), contextRef), { artifacts, ...providers });
    // The model answers for the first finding of the batch only.
    const gateway = {
      complete: async (c: GatewayCall) => {
        const a = await providers.gateway.complete(c);
        const answer = JSON.parse(a.text) as { verdicts: unknown[] };
        return { ...a, text: JSON.stringify({ verdicts: answer.verdicts.slice(0, 1) }) };
      },
    } as unknown as ModelGateway;
    const v = await invokeAgent(
      {
        ...input({ ...verifier(), verify: { batch: 20, unconfirmed: 'drop' } }, contextRef),
        phase: 'verify',
        previous: { review: [review] },
      },
      { artifacts, gateway, budgets: providers.budgets },
    );
    expect(v).toMatchObject({ status: 'partial', notReviewed: 'no verdict for 1 finding of part 1' });
    const out = await aggregate(
      { runId: 'r1', workflow: 'pr-review', change: context([]).change, contextRef, results: { review: [review], verify: [v] } },
      { artifacts },
    );
    expect(out.summary.verification).toMatchObject({ checked: 1, confirmed: 1, unverified: 1 });
    expect(out.summary).toMatchObject({ status: 'PARTIAL', reason: 'findings not verified: no verdict for 1 finding of part 1' });
  });

  it('reports nothing to check and calls no model when the earlier phases found nothing', async () => {
    const { artifacts, providers, contextRef } = await setup([swift(['let a = 1'])]);
    const v = await invokeAgent({ ...input(verifier(), contextRef), phase: 'verify', previous: {} }, { artifacts, ...providers });
    expect(v).toMatchObject({ status: 'succeeded', calls: 0, chunks: 0 });
    expect(server?.stats.bedrock).toBe(0);
  });
});

describe('Function: invokeAgent (output: tests)', () => {
  it('keeps the test files of the answer (every answer format) and refuses a file with a secret or a path that leaves the repository', async () => {
    // Prepare: the offline model writes an XCTest file for the changed Swift file; a second agent's
    // model also returns a file holding an AWS key and one outside the repository.
    const { artifacts, providers, contextRef } = await setup([swift(['func pay(amount: Int) -> Bool {', '  return amount > 0', '}'])]);
    const key = ['AKIA', 'Z3K7Q2W9X4C8V6B1'].join('');
    const answer = JSON.stringify({
      summary: 'tests',
      findings: [],
      files: [
        { path: 'AppTests/CheckoutTests.swift', content: 'final class CheckoutTests {}\n' },
        { path: 'AppTests/KeyTests.swift', content: `let key = "${key}"\n` },
        { path: '../CheckoutTests.swift', content: 'x' },
      ],
    });
    const scripted = {
      complete: async (c: GatewayCall) => ({ ...(await providers.gateway.complete(c)), text: answer }),
    } as unknown as ModelGateway;

    // Act
    const offline = await Promise.all(
      (['json_schema', 'json_object', 'prompt'] as const).map((mode, i) =>
        invokeAgent(input({ ...compatibleAgent(mode, 'tests'), name: `tests-${i}` }, contextRef), { artifacts, ...providers }),
      ),
    );
    const leaky = await invokeAgent(input({ ...agent('openai'), name: 'leaky', output: 'tests' }, contextRef), {
      artifacts,
      gateway: scripted,
      budgets: providers.budgets,
    });

    // Assess
    for (const r of offline) {
      expect(r).toMatchObject({ status: 'succeeded', repairs: 0, filesRef: expect.any(String) });
      const stored = (await artifacts.getJson(r.filesRef ?? '')) as { files: Array<{ path: string; content: string }>; refused: unknown[] };
      expect(stored.files).toEqual([{ path: 'AppTests/CheckoutTests.swift', content: expect.stringContaining('XCTestCase') }]);
      expect(stored.files[0]?.content).toContain('func test_pay_');
      expect(stored.refused).toEqual([]);
    }
    const stored = (await artifacts.getJson(leaky.filesRef ?? '')) as {
      files: Array<{ path: string }>;
      refused: Array<{ path: string; reason: string }>;
    };
    expect(stored.files.map((f) => f.path)).toEqual(['AppTests/CheckoutTests.swift']);
    expect(stored.refused).toEqual([
      { path: 'AppTests/KeyTests.swift', reason: expect.stringMatching(/secret/) },
      { path: '../CheckoutTests.swift', reason: expect.stringMatching(/\.\./) },
    ]);
    expect(JSON.stringify(stored)).not.toContain(key);
  });
});
