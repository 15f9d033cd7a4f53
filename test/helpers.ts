import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDynamoGateway } from '../lambdas/adapters/gateway-store.js';
import { MemoryGatewayMetrics } from '../lambdas/adapters/metrics.js';
import type { Change, ReviewInput } from '../lambdas/core/contracts.js';
import { GatewayConfigSchema } from '../lambdas/core/gateway-config.js';
import type { ReportFinding } from '../lambdas/core/report.js';
import { createExampleRepo, type ExampleRepo } from '../lib/local/example-repo.js';

export { examplePullRequestPayload } from '../lib/local/example-repo.js';

import { type OfflineModelOptions, OfflineModelServer } from '../lib/local/offline-model.js';
import { localProviders } from '../lib/local/providers.js';
import { LOCAL_TABLE, LocalRuntime, type LocalRuntimeOptions, startLocalTable } from '../lib/local/runtime.js';
import { type Catalog, formatDiagnostic, loadWorkflow } from '../lib/workflow/index.js';
import { loadWorkspace } from '../lib/workspace.js';

/** A fresh temporary folder. */
export const tempDir = (prefix = 'agentflow-test-') => mkdtempSync(join(tmpdir(), prefix));

/** The example repository in a fresh temporary folder. */
export const exampleRepo = (): ExampleRepo => createExampleRepo(join(tempDir(), 'repo'));

/**
 * The example pull request as a change (acme/shop-apps#42), on placeholder SHAs unless given.
 * @example exampleChange({ number: 0, headSha: repo.head })
 */
export function exampleChange(over: Partial<Change> = {}): Change {
  return {
    repository: 'acme/shop-apps',
    number: 42,
    title: 'Checkout: pay with card',
    author: 'mobile-dev',
    url: '',
    action: 'opened',
    baseSha: 'a'.repeat(40),
    headSha: 'b'.repeat(40),
    baseRef: 'main',
    headRef: 'feature/checkout-payments',
    ...over,
  };
}

/** Execution input for the example pull request. */
export function exampleInput(repo: ExampleRepo, runId: string, workflow = 'pr-review'): ReviewInput {
  return { runId, workflow, change: exampleChange({ baseSha: repo.base, headSha: repo.head }) };
}

/** Options of {@link startGateway}. */
export interface GatewayEnvOptions {
  offline?: OfflineModelOptions;
  /** Gateway settings (merged over fast test retries: 3 tries, 1–5 ms backoff). */
  config?: Record<string, unknown>;
  clock?: () => number;
}

/**
 * A model gateway on real parts: dynalite (in memory) for budgets, breakers, cache and rate
 * limits; the offline model server on 127.0.0.1 for both wire formats; the real SDK clients.
 */
export async function startGateway(o: GatewayEnvOptions = {}) {
  const server = await new OfflineModelServer(o.offline).start();
  const table = await startLocalTable();
  const config = GatewayConfigSchema.parse({ retry: { attemptsPerProvider: 3, baseDelayMs: 1, maxDelayMs: 5 }, ...o.config });
  const metrics = new MemoryGatewayMetrics();
  const providers = localProviders({ openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' }, server);
  const gw = createDynamoGateway({
    doc: table.doc,
    table: LOCAL_TABLE,
    providers,
    config,
    metrics,
    ...(o.clock ? { clock: o.clock } : {}),
  });
  return {
    ...gw,
    server,
    table,
    metrics,
    config,
    providers,
    stop: async () => {
      await server.stop();
      await table.stop();
    },
  };
}
export type GatewayEnv = Awaited<ReturnType<typeof startGateway>>;

/** The Slack user of the test approver group (Slack's documented example user). */
export const LEAD = 'U024BE7LH';

/**
 * A local runtime on the example repository for tests: in memory, offline models, fast retries,
 * approval requests not printed, with the approver group `mobile-leads` = { slack: [LEAD], github: [octocat] }.
 */
export function testRuntime(repo: ExampleRepo, options: Partial<LocalRuntimeOptions> = {}): Promise<LocalRuntime> {
  return LocalRuntime.start({
    stateDir: tempDir(),
    repoPath: repo.path,
    workspace: loadWorkspace(),
    persist: false,
    modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
    retryDelayMs: 1,
    gateway: GatewayConfigSchema.parse({ retry: { baseDelayMs: 1, maxDelayMs: 5 } }),
    groups: {
      'mobile-leads': { slack: [LEAD], github: ['octocat'] },
      'support-leads': { slack: [LEAD] },
      'mobile-team': { slack: [LEAD] },
      'support-team': { slack: [LEAD] },
    },
    print: () => undefined,
    ...options,
  });
}

/** Polls `read` every 20 ms until it returns a value (at most ~12 s). */
export async function waitFor<T>(read: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = await read();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Loads a workflow text as `workflows/test.yml` against the shipped catalog (agents and models). */
export const loadTestWorkflow = (text: string) => loadWorkflow('workflows/test.yml', text, loadWorkspace().catalog as Catalog);

/** The diagnostics of {@link loadTestWorkflow} as `file:line:col: message` lines. */
export const workflowErrors = (text: string) => loadTestWorkflow(text).diagnostics.map(formatDiagnostic);

/** A merged finding for tests: code-review's force unwrap at `App/Pay.swift:11` unless `over` says otherwise. */
export const exampleFinding = (over: Partial<ReportFinding> = {}): ReportFinding => ({
  file: 'App/Pay.swift',
  line: 11,
  severity: 'high',
  category: 'correctness',
  message: 'Force unwrap crashes when value is nil.',
  suggestion: 'Use guard let.',
  agents: ['code-review'],
  ...over,
});
