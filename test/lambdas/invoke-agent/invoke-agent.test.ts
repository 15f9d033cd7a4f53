import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FsArtifactStore } from '../../../lambdas/adapters/artifacts.js';
import type { AgentItem, ContextArtifact } from '../../../lambdas/core/contracts.js';
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
  stats: { filesChanged: files.length, additions: 1, deletions: 0, linesChanged: 1, matchedFiles: 1, redactions: 0, estimatedTokens: 10 },
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

  it('fails with ProviderRejectedError after one repair prompt when the answer stays invalid, keeping the raw answer', async () => {
    const { artifacts, providers, contextRef } = await setup([swift(['let a = b!'])], { faults: { openai: 'invalid' } });
    await expect(invokeAgent(input(agent('openai'), contextRef), { artifacts, ...providers })).rejects.toMatchObject({
      name: 'ProviderRejectedError',
      message: expect.stringMatching(/invalid format twice.*runs\/r1\/raw\/review\/code-review-part1\.txt/),
    });
    expect(server?.stats.openai).toBe(2);
    expect(await artifacts.getText('runs/r1/raw/review/code-review-part1.txt')).toMatch(/not JSON/);
  });

  it.each([
    [503, 'ProviderUnavailableError'],
    [429, 'ProviderThrottledError'],
    [400, 'ProviderRejectedError'],
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
