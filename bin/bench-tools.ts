import { Console } from 'node:console';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createDynamoGateway } from '../lambdas/adapters/gateway-store.js';
import { McpToolbox } from '../lambdas/adapters/mcp-toolbox.js';
import { PowertoolsGatewayMetrics } from '../lambdas/adapters/metrics.js';
import { budgetScopes } from '../lambdas/core/budget.js';
import type { ModelRef } from '../lambdas/core/contracts.js';
import type { GatewayAnswer, GatewayCall } from '../lambdas/core/gateway.js';
import { GatewayConfigSchema } from '../lambdas/core/gateway-config.js';
import { runToolLoop } from '../lambdas/core/tool-loop.js';
import type { Toolbox } from '../lambdas/core/tools.js';
import { OfflineModelServer } from '../lib/local/offline-model.js';
import { localProviders } from '../lib/local/providers.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../lib/local/runtime.js';
import { findModel } from '../lib/workflow/index.js';
import { loadWorkspace, PROJECT_ROOT } from '../lib/workspace.js';

type Record_ = (r: { name: string; value: number; unit: string; target: string | null }) => void;

/**
 * The model gateway as the benches measure it: the offline server's providers, budgets so large no
 * run is refused, a rate limit that never makes a caller wait (overhead, not throttling), and
 * Powertools Metrics serialising EMF as in Lambda into a null stream.
 */
export function benchGateway(server: OfflineModelServer, table: LocalTable) {
  const providers = localProviders({ openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' }, server);
  const config = GatewayConfigSchema.parse({
    budgets: { perRunUsd: 1000, global: { monthlyUsd: 1_000_000 }, projects: { bench: { dailyUsd: 100_000, monthlyUsd: 1_000_000 } } },
    rateLimits: {
      bedrock: { requestsPerMinute: 1_000_000, maxConcurrency: 1000 },
      openai: { requestsPerMinute: 1_000_000, maxConcurrency: 1000 },
      'openai-compatible': { requestsPerMinute: 1_000_000, maxConcurrency: 1000 },
    },
  });
  const metrics = new Metrics({ namespace: 'AgentFlowBench', serviceName: 'bench' });
  (metrics as unknown as { console: Console }).console = new Console(new Writable({ write: (_c, _e, cb) => cb() }));
  const { gateway, ledger } = createDynamoGateway({
    doc: table.doc,
    table: LOCAL_TABLE,
    providers,
    config,
    metrics: new PowertoolsGatewayMetrics(metrics),
  });
  return { gateway, ledger, providers, config };
}

/**
 * A model of the shipped catalog (workflows/models.yml: its id, context window and prices with their
 * sources), as the benches call it.
 * @throws Error when the catalog has no such model
 */
export function shippedModel(alias: string): ModelRef {
  const models = loadWorkspace().catalog?.models;
  const m = models ? findModel(models, alias) : undefined;
  if (!m) throw new Error(`bench: workflows/models.yml has no model ${alias}`);
  return m;
}

/** Answer delay of the offline model in this bench, ms: a model call takes about this long. */
const MODEL_DELAY_MS = 200;

/**
 * Issue 15's tool-loop figures: a 5-iteration agent (4 tool calls to the CI stand-in over MCP
 * stdio, then an answer) through the real gateway (dynalite, budgets on) and the offline model
 * (answers delayed {@link MODEL_DELAY_MS} ms). Model time is each `gateway.complete` (gateway
 * included), tool time each `toolbox.call` (MCP round trip, redaction); the loop's own overhead is
 * the rest of the wall time, per iteration. Target: wall ÷ (model + tool) ≤ 1.1.
 */
export async function toolLoopBench(record: Record_): Promise<void> {
  const server = await new OfflineModelServer({ delayMs: MODEL_DELAY_MS, faults: {} }).start();
  const table = await startLocalTable();
  const toolbox = new McpToolbox([
    {
      name: 'ci',
      command: process.execPath,
      args: ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'standins', 'mcp-ci.ts')],
      allow: [{ name: 'get_pipeline' }],
    },
  ]);
  try {
    const { gateway, config } = benchGateway(server, table);
    const sonnet = shippedModel('claude-sonnet');
    let modelMs = 0;
    let toolMs = 0;
    const timedGateway = {
      complete: async (call: GatewayCall): Promise<GatewayAnswer> => {
        const t = performance.now();
        try {
          return await gateway.complete(call);
        } finally {
          modelMs += performance.now() - t;
        }
      },
    };
    const timedToolbox: Toolbox = {
      definitions: () => toolbox.definitions(),
      unavailable: () => toolbox.unavailable(),
      close: () => toolbox.close(),
      call: async (name, input, options) => {
        const t = performance.now();
        try {
          return await toolbox.call(name, input, options);
        } finally {
          toolMs += performance.now() - t;
        }
      },
    };
    // Four tool calls, one per turn, then the answer: five model calls.
    const task = [1, 2, 3, 4].map((i) => `call ci__get_pipeline {"pipeline_id": "778${i}"}`).join('\n');
    const one = async (runId: string) => {
      const t = performance.now();
      const r = await runToolLoop(
        timedGateway,
        {
          candidates: [sonnet],
          system: 'You check CI pipelines with the tools you are offered and answer in one sentence.',
          messages: [{ role: 'user', content: `Agent: team-assistant\n${task}` }],
          maxTokens: 500,
          temperature: 0,
          scopes: budgetScopes(config.budgets, { runId, project: 'bench', now: new Date() }),
          cache: false,
          labels: { workflow: 'team-request', agent: 'team-assistant', project: 'bench' },
          deadlineMs: Date.now() + 60_000,
        },
        timedToolbox,
        { maxIterations: 8, requester: 'slack:U024BE7LH' },
      );
      return { wall: performance.now() - t, r };
    };
    await one('bench-tools-warm'); // starts the stdio server and lists its tools once
    const runs = 5;
    modelMs = 0;
    toolMs = 0;
    let wall = 0;
    let iterations = 0;
    let calls = 0;
    for (let i = 0; i < runs; i++) {
      const { wall: w, r } = await one(`bench-tools-${i}`);
      if (r.status !== 'complete' || r.iterations !== 5)
        throw new Error(`the bench's loop ended ${r.status} after ${r.iterations} iterations: ${r.reason}`);
      wall += w;
      iterations += r.iterations;
      calls += r.calls.length;
    }
    const overheadPerIteration = (wall - modelMs - toolMs) / iterations;
    record({
      name: 'tool loop: overhead per iteration (excl. model, tool)',
      value: Number(overheadPerIteration.toFixed(2)),
      unit: 'ms',
      target: null,
    });
    record({
      name: 'tool loop: model call (gateway incl.), mean',
      value: Number((modelMs / iterations).toFixed(1)),
      unit: 'ms',
      target: null,
    });
    record({ name: 'tool loop: MCP tool call (stdio), mean', value: Number((toolMs / calls).toFixed(1)), unit: 'ms', target: null });
    record({
      name: 'tool loop: 5-iteration wall ÷ (model + tool)',
      value: Number((wall / (modelMs + toolMs)).toFixed(3)),
      unit: 'ratio',
      target: '≤ 1.1',
    });
  } finally {
    await toolbox.close();
    await table.stop();
    await server.stop();
  }
}
