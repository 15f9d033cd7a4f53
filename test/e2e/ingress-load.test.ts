import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayConfigSchema } from '../../lambdas/core/gateway-config.js';
import { deliveryHeaders, type ExampleRepo } from '../../lib/local/example-repo.js';
import { LocalRuntime } from '../../lib/local/runtime.js';
import { type LocalServer, startLocalServer } from '../../lib/local/server.js';
import { loadWorkspace, WORKFLOWS_DIR } from '../../lib/workspace.js';
import { examplePullRequestPayload, exampleRepo, tempDir } from '../helpers.js';

const SECRET = 'ingress-load-secret';
const DELIVERIES = 50;
const MAX_RUNS = 3;

let repo: ExampleRepo;
let runtime: LocalRuntime;
let server: LocalServer;
/** Executions that have entered a state and not yet ended, and the most seen at once. */
const active = new Set<string>();
let peak = 0;

beforeAll(async () => {
  repo = exampleRepo();
  // Only pr-review: test-generation's CI gate would wait for a CI callback this test never sends.
  const workspace = loadWorkspace(undefined, [join(WORKFLOWS_DIR, 'pr-review.yml')]);
  runtime = await LocalRuntime.start({
    stateDir: tempDir(),
    repoPath: repo.path,
    workspace,
    persist: false,
    modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
    offline: { delayMs: 20, faults: {} },
    gateway: GatewayConfigSchema.parse({ cache: { enabled: false } }),
    print: () => undefined,
    maxConcurrentRuns: MAX_RUNS,
  });
  runtime.listeners.add((e) => {
    if (active.has(e.execution)) return;
    active.add(e.execution);
    peak = Math.max(peak, active.size);
    void runtime.executions.get(e.execution)?.finally(() => active.delete(e.execution));
  });
  server = await startLocalServer({ runtime, secret: SECRET, port: 0 });
});

afterAll(async () => {
  await server?.close();
  await runtime?.stop();
});

async function deliver(
  id: string,
  number: number,
): Promise<{ id: string; status: number; body: { duplicate?: boolean; executions?: Array<{ name: string; started: boolean }> } }> {
  const body = examplePullRequestPayload(repo, number);
  const r = await fetch(`${server.url}/webhooks/github`, {
    method: 'POST',
    headers: await deliveryHeaders(SECRET, body, id),
    body,
  });
  return {
    id,
    status: r.status,
    body: (await r.json()) as { duplicate?: boolean; executions?: Array<{ name: string; started: boolean }> },
  };
}

describe('e2e: ingress under load', () => {
  it('answers 50 concurrent signed deliveries (and 10 redeliveries among them) 2xx exactly once each, starts each execution once, and runs at most maxConcurrentRuns at a time', async () => {
    const ids = Array.from({ length: DELIVERIES }, (_, i) => `load-${i + 1}`);
    const redelivered = ids.slice(0, 10);
    const answers = await Promise.all([
      ...ids.map((id, i) => deliver(id, i + 1)),
      ...redelivered.map((id) => deliver(id, Number(id.slice(5)))),
    ]);
    // Every delivery is answered, and with a 2xx: a started execution is never answered with an error.
    expect(answers).toHaveLength(DELIVERIES + redelivered.length);
    expect(answers.filter((a) => a.status >= 300)).toEqual([]);
    // Exactly one answer per delivery id started something; the other answer of a redelivered id is a duplicate.
    for (const id of ids) {
      const mine = answers.filter((a) => a.id === id);
      expect(
        mine.filter((a) => !a.body.duplicate),
        id,
      ).toHaveLength(1);
    }
    for (const a of answers.filter((x) => !x.body.duplicate)) expect(a.body.executions?.map((e) => e.started)).toEqual([true]);
    // One pr-review execution per delivery, none twice.
    const names = [...runtime.executions.keys()];
    expect(new Set(names).size).toBe(names.length);
    expect(names.filter((n) => n.startsWith('load-')).length).toBe(names.length);
    expect(new Set(names.map((n) => n.replace(/-[a-z-]+$/, '')))).toEqual(new Set(ids));
    const results = await Promise.all(runtime.executions.values());
    expect(results.map((r) => r.status)).toEqual(results.map(() => 'SUCCEEDED'));
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(MAX_RUNS);
    // Nothing is left RUNNING.
    expect((await runtime.runs.list(500)).filter((r) => r.status === 'RUNNING')).toEqual([]);
  }, 170_000);
});
