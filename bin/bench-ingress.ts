/**
 * Ingress under load (part of `npm run bench`): signed GitHub deliveries to the local server, 1, 10
 * and 50 at once, while the runs they start execute in the same process (as `agentflow serve`
 * does). Prints the answer time p50 / p99 per level and the deliveries answered with an error
 * although their execution started (target 0). Then the same for GitLab merge request deliveries
 * (`POST /webhooks/gitlab`, GitLab's documented open example with the example repository's SHAs),
 * p50 printed beside GitHub's with the same target.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayConfigSchema } from '../lambdas/core/gateway-config.js';
import { createExampleRepo, deliveryHeaders, examplePullRequestPayload } from '../lib/local/example-repo.js';
import { LocalRuntime } from '../lib/local/runtime.js';
import { startLocalServer } from '../lib/local/server.js';
import { loadWorkspace } from '../lib/workspace.js';

type Record_ = (r: { name: string; value: number; unit: string; target: string | null }) => void;

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? 0;

/** The answer-time target of a concurrency level, in ms (the same for every forge). */
const targetOf = (level: number) => (level >= 50 ? '< 2000' : '< 1000');

/** An answer to one delivery: its id, the time to the answer in ms, and whether it was a 2xx. */
type Answer = { id: string; ms: number; ok: boolean };

export async function ingressBench(record: Record_, work: string): Promise<void> {
  const repo = createExampleRepo(join(work, 'ingress-repo'));
  const secret = 'bench-ingress-secret';
  const runtime = await LocalRuntime.start({
    stateDir: join(work, 'state-ingress'),
    repoPath: repo.path,
    workspace: loadWorkspace(),
    persist: false,
    modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
    // Answers take 500 ms, so the runs are in flight while the next deliveries arrive.
    offline: { delayMs: 500, faults: {} },
    gateway: GatewayConfigSchema.parse({ cache: { enabled: false } }),
    print: () => undefined,
  });
  const gitlabToken = 'bench-ingress-gitlab-token';
  const server = await startLocalServer({ runtime, secret, gitlabSecret: gitlabToken, port: 0 });
  let n = 0;
  const deliver = async () => {
    const id = `bench-ingress-${++n}`;
    const body = examplePullRequestPayload(repo, n);
    const t0 = performance.now();
    const r = await fetch(`${server.url}/webhooks/github`, {
      method: 'POST',
      headers: await deliveryHeaders(secret, body, id),
      body,
    });
    await r.text();
    return { id, ms: performance.now() - t0, ok: r.status < 300 } satisfies Answer;
  };
  try {
    for (const level of [1, 10, 50]) {
      const answers = await Promise.all(Array.from({ length: level }, () => deliver()));
      // A delivery answered with an error whose execution started anyway is a false error.
      const started = new Set([...runtime.executions.keys()].map((name) => name.replace(/-[a-z-]+$/, '')));
      const falseErrors = answers.filter((a) => !a.ok && started.has(a.id)).length;
      const ms = answers.map((a) => a.ms);
      record({
        name: `ingress through the local server, ${level} concurrent deliveries: p50`,
        value: Math.round(percentile(ms, 0.5)),
        unit: 'ms',
        target: targetOf(level),
      });
      record({ name: `ingress, ${level} concurrent deliveries: p99`, value: Math.round(percentile(ms, 0.99)), unit: 'ms', target: null });
      record({
        name: `ingress, ${level} concurrent deliveries: answered with an error although started`,
        value: falseErrors,
        unit: 'count',
        target: '0',
      });
      await Promise.allSettled([...runtime.executions.values()]);
    }
    await gitlabIngress(record, `${server.url}/webhooks/gitlab`, gitlabToken, runtime, repo);
  } finally {
    await server.close();
    await runtime.stop();
  }
}

/**
 * GitLab merge request deliveries at 1, 10 and 50 at once, measured like GitHub's: HTTP requests
 * with the secret token (`X-Gitlab-Token`) to the same local server (`agentflow serve`'s
 * `/webhooks/gitlab`), which starts pr-review (`change.opened`) for each; the SHAs come from the
 * example repository (the local refs lookup), as `serve` does.
 */
async function gitlabIngress(
  record: Record_,
  url: string,
  token: string,
  runtime: LocalRuntime,
  repo: ReturnType<typeof createExampleRepo>,
): Promise<void> {
  // GitLab's documented merge request example (test/fixtures/gitlab/README.md), pointed at the example repository.
  const example = JSON.parse(readFileSync(new URL('../test/fixtures/gitlab/merge-request-open.json', import.meta.url), 'utf8'));
  let n = 0;
  const deliver = async (): Promise<Answer> => {
    const id = `bench-gitlab-${++n}`;
    example.object_attributes.iid = n;
    example.object_attributes.last_commit.id = repo.head;
    example.object_attributes.target_branch = 'main';
    example.object_attributes.source_branch = 'feature/checkout-payments';
    const body = JSON.stringify(example);
    const t0 = performance.now();
    const headers = {
      'content-type': 'application/json',
      'x-gitlab-event': 'Merge Request Hook',
      'x-gitlab-event-uuid': id,
      'x-gitlab-token': token,
    };
    const r = await fetch(url, { method: 'POST', headers, body });
    await r.text();
    return { id, ms: performance.now() - t0, ok: r.status < 300 };
  };
  for (const level of [1, 10, 50]) {
    const answers = await Promise.all(Array.from({ length: level }, () => deliver()));
    const started = new Set([...runtime.executions.keys()].map((name) => name.replace(/-[a-z-]+$/, '')));
    record({
      name: `GitLab ingress through the local server, ${level} concurrent deliveries: p50`,
      value: Math.round(
        percentile(
          answers.map((a) => a.ms),
          0.5,
        ),
      ),
      unit: 'ms',
      target: targetOf(level),
    });
    record({
      name: `GitLab ingress, ${level} concurrent deliveries: answered with an error although started`,
      value: answers.filter((a) => !a.ok && started.has(a.id)).length,
      unit: 'count',
      target: '0',
    });
    await Promise.allSettled([...runtime.executions.values()]);
  }
}
