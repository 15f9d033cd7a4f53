/**
 * As deployed vs local (part of `npm run bench`): the wall time of one pr-review of the example
 * pull request, from the signed delivery to the end of the execution, on the synthesized stack
 * (the bundled functions in child processes with their template environments, the template's
 * definition on the local engine, AWS stand-ins on 127.0.0.1: see test/deployed) and on the
 * embedded local runtime (`agentflow serve`). Each is the median of 3 runs with distinct titles, so
 * no answer comes from the cache; the offline model server answers without delay in both.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayConfigSchema } from '../lambdas/core/gateway-config.js';
import { createExampleRepo, deliveryHeaders, examplePullRequestPayload } from '../lib/local/example-repo.js';
import { LocalRuntime } from '../lib/local/runtime.js';
import { startLocalServer } from '../lib/local/server.js';
import { loadWorkspace, WORKFLOWS_DIR } from '../lib/workspace.js';
import { synthesizeDevStack } from '../test/deployed/assembly.js';
import { DeployedHarness, PR_NUMBER, SECRETS } from '../test/deployed/harness.js';

type Record_ = (r: { name: string; value: number; unit: string; target: string | null }) => void;

const RUNS = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** A pull_request delivery of the example change with its own title (a new prompt: no cache hits). */
function payload(body: string, i: number): string {
  const p = JSON.parse(body) as { pull_request: { title: string } };
  p.pull_request.title = `Checkout: pay with card (bench ${i})`;
  return JSON.stringify(p);
}

export async function deployedBench(record: Record_): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'agentflow-bench-deployed-'));
  try {
    // As deployed.
    const { template, outdir, stackName } = synthesizeDevStack(join(work, 'cdk.out'));
    const h = await DeployedHarness.start({ outdir, stackName, template, workDir: work });
    const deployed: number[] = [];
    try {
      for (let i = 0; i < RUNS; i++) {
        const body = payload(examplePullRequestPayload(h.repo, PR_NUMBER), i);
        const t0 = performance.now();
        const res = await h.post(
          '/webhooks/github',
          await deliveryHeaders(SECRETS['agentflow/dev/github'].webhookSecret, body, randomUUID()),
          body,
        );
        const name = (res.json as { executions?: Array<{ workflow: string; name: string }> }).executions?.find(
          (e) => e.workflow === 'pr-review',
        )?.name;
        const execution = name ? h.sfn.find(h.machine('pr-review').name, name) : undefined;
        if (!execution) throw new Error(`the delivery started no pr-review: ${res.body}`);
        const done = await execution.done;
        if (done.status !== 'SUCCEEDED') throw new Error(`as-deployed pr-review ended ${done.status}: ${done.error}`);
        deployed.push(performance.now() - t0);
      }
    } finally {
      await h.stop();
    }

    // The embedded local runtime, through `serve`'s webhook route.
    const repo = createExampleRepo(join(work, 'local-repo'));
    const runtime = await LocalRuntime.start({
      stateDir: join(work, 'state-local'),
      repoPath: repo.path,
      workspace: loadWorkspace(undefined, [join(WORKFLOWS_DIR, 'pr-review.yml')]),
      persist: false,
      modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
      gateway: GatewayConfigSchema.parse({}),
      print: () => undefined,
    });
    const server = await startLocalServer({ runtime, secret: 'bench-deployed', port: 0 });
    const local: number[] = [];
    try {
      for (let i = 0; i < RUNS; i++) {
        const body = payload(examplePullRequestPayload(repo, PR_NUMBER), i);
        const t0 = performance.now();
        const r = await fetch(`${server.url}/webhooks/github`, {
          method: 'POST',
          headers: await deliveryHeaders('bench-deployed', body, randomUUID()),
          body,
        });
        const name = ((await r.json()) as { executions?: Array<{ name: string }> }).executions?.[0]?.name;
        const result = name ? await runtime.executions.get(name) : undefined;
        if (result?.status !== 'SUCCEEDED') throw new Error(`local pr-review ended ${result?.status}: ${result?.error}`);
        local.push(performance.now() - t0);
      }
    } finally {
      await server.close();
      await runtime.stop();
    }
    const d = median(deployed);
    const l = median(local);
    record({
      name: 'pr-review as deployed (bundles, template, stand-ins): delivery to end, median of 3',
      value: Math.round(d),
      unit: 'ms',
      target: null,
    });
    record({
      name: 'pr-review on the local runtime (serve): delivery to end, median of 3',
      value: Math.round(l),
      unit: 'ms',
      target: null,
    });
    record({ name: 'pr-review as deployed ÷ local runtime', value: Number((d / l).toFixed(2)), unit: 'ratio', target: null });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
