/**
 * `npm run bench`: prints AgentFlow's speed and cost figures and writes bench/results.json
 * (`[{ name, value, unit, target }]`).
 *
 * - orchestration overhead (bin/bench-orchestration.ts): pr-review's 4-agent parallel phase and a
 *   40-agent phase with every offline-model answer delayed 1000 ms; end-to-end wall time ÷ 1000 ms
 *   (one-after-another would be ≥ 4.0 and 40.0), and the overhead per state transition;
 * - state transitions per pr-review run and the Step Functions cost per 1,000 runs;
 * - the model gateway (bin/bench-gateway.ts): overhead per call over a direct SDK call to the same
 *   local server on an agent's held budget (budgets in 4 scopes, breaker, rate limit, cache miss +
 *   store, Powertools metrics serialisation), p50 and p99 of paired samples, DynamoDB requests before
 *   the answer, the same without a pool, budget reservations per second at 50 concurrent callers
 *   (dynalite), and provider requests sent during a 503 burst;
 * - the webhook handler in process per delivery (verify, match, idempotency record, start on the
 *   local engine), p50 and p99, and a duplicate delivery's answer;
 * - incremental re-review: tokens of a re-review after a 1-file push ÷ the first review's, and
 *   comments posted again (bin/bench-rereview.ts);
 * - the review plan, budget shares and token estimates (bin/bench-plan.ts) and ingress under load
 *   through the local server (bin/bench-ingress.ts);
 * - the tool loop (bin/bench-tools.ts): its overhead per iteration excluding model and tool time,
 *   and a 5-iteration agent's wall time ÷ the sum of its model and MCP tool times (target ≤ 1.1);
 * - the CLI's start (bin/bench-cli.ts): `node bin/agentflow.js --help` and `validate`, median wall time;
 * - each Lambda's bundle as CDK deploys it (esbuild, minified, `@aws-sdk/*` from the nodejs24.x
 *   runtime) and its module load time in a fresh Node process.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { GatewayConfigSchema } from '../lambdas/core/gateway-config.js';
import { SFN_USD_PER_TRANSITION } from '../lambdas/core/pricing.js';
import { githubSignature } from '../lambdas/core/signatures.js';
import { handleGithubDelivery } from '../lambdas/webhook/github-delivery.js';
import { createExampleRepo } from '../lib/local/example-repo.js';
import { LocalRuntime } from '../lib/local/runtime.js';
import { localIngress } from '../lib/local/server.js';
import { loadWorkspace, PROJECT_ROOT } from '../lib/workspace.js';
import { cliBench } from './bench-cli.js';
import { deployedBench } from './bench-deployed.js';
import { gatewayBenches } from './bench-gateway.js';
import { ingressBench } from './bench-ingress.js';
import { DELAY_MS, orchestrationBench } from './bench-orchestration.js';
import { reviewPlanBench } from './bench-plan.js';
import { rereviewBench } from './bench-rereview.js';
import { secretsBench } from './bench-secrets.js';
import { toolLoopBench } from './bench-tools.js';

interface Result {
  name: string;
  value: number;
  unit: string;
  target: string | null;
  /** The 1-minute load average when the figure was taken (2 cores here). */
  load?: number;
}
const results: Result[] = [];
const record = (r: Result) => {
  results.push(r);
  // The machine's load beside every figure (issue 16): a figure taken while it is busy says so.
  r.load = Number(loadavg()[0]?.toFixed(2) ?? 0);
  console.log(
    `${r.name.padEnd(52)} ${String(r.value).padStart(12)} ${r.unit.padEnd(10)} ${r.target ? `target ${r.target}`.padEnd(28) : ''.padEnd(28)} load ${r.load}/${cpus().length}`,
  );
};

const work = join(tmpdir(), `agentflow-bench-${process.pid}`);
mkdirSync(work, { recursive: true });
const repo = createExampleRepo(join(work, 'repo'));
const change = {
  repository: 'acme/shop-apps',
  number: 42,
  title: 'bench',
  author: 'bench',
  url: '',
  action: 'opened',
  baseSha: repo.base,
  headSha: repo.head,
  baseRef: 'main',
  headRef: 'feature',
};

console.log('AgentFlow bench (offline model server, dynalite, local runtime)\n');

// 1. Orchestration overhead with 1000 ms model answers: pr-review's 4-agent phase and a 40-agent
// phase, wall ÷ one answer and ms per state transition (bin/bench-orchestration.ts).
await orchestrationBench(record, work, repo, change);

// 1b. pr-review as shipped (the verifier after the 4 agents: two rounds of 1000 ms answers).
let transitions = 0;
{
  const rt = await LocalRuntime.start({
    stateDir: join(work, 'state-delay-verify'),
    repoPath: repo.path,
    workspace: loadWorkspace(),
    persist: false,
    modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
    offline: { delayMs: DELAY_MS, faults: {} },
    gateway: GatewayConfigSchema.parse({ cache: { enabled: false } }),
  });
  await rt.execute('pr-review', 'warmup', { runId: 'warmup', workflow: 'pr-review', change });
  const t0 = performance.now();
  // A full review: after the warm-up an incremental one would find the change reviewed and call no model.
  const r = await rt.execute('pr-review', 'verify-1', {
    runId: 'verify-1',
    workflow: 'pr-review',
    change: { ...change, fullReview: true },
  });
  const ms = performance.now() - t0;
  transitions = r.transitions;
  await rt.stop();
  if (r.status !== 'SUCCEEDED') throw new Error(`bench run failed: ${r.error}`);
  record({
    name: 'pr-review with the verifier: wall ÷ one answer (two rounds of model calls)',
    value: Number((ms / DELAY_MS).toFixed(3)),
    unit: 'ratio',
    target: '≈ 2 × the phase ratio',
  });
  record({ name: 'state transitions per pr-review run', value: transitions, unit: 'count', target: null });
  record({
    name: 'Step Functions cost per 1,000 pr-review runs',
    value: Number((transitions * SFN_USD_PER_TRANSITION * 1000).toFixed(4)),
    unit: 'USD',
    target: null,
  });
}

// 2. Model cost of one pr-review run on the example change (offline token counts, real prices).
{
  const rt = await LocalRuntime.start({
    stateDir: join(work, 'state-cost'),
    repoPath: repo.path,
    workspace: loadWorkspace(),
    persist: false,
    modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
    offline: { delayMs: 0, faults: {} },
  });
  const t0 = performance.now();
  const r = await rt.execute('pr-review', 'cost', { runId: 'cost', workflow: 'pr-review', change });
  const ms = performance.now() - t0;
  // A full review (`/agentflow review --full`): an incremental one would review nothing, this measures the cache.
  const again = await rt.execute('pr-review', 'cost-again', {
    runId: 'cost-again',
    workflow: 'pr-review',
    change: { ...change, fullReview: true },
  });
  const calls = (rt.offline?.stats.bedrock ?? 0) + (rt.offline?.stats.openai ?? 0);
  await rt.stop();
  record({ name: 'pr-review run with instant answers, wall time', value: Math.round(ms), unit: 'ms', target: null });
  record({
    name: 'model cost of one pr-review run (example change)',
    value: (r.output as { costUsd: number }).costUsd,
    unit: 'USD',
    target: null,
  });
  record({
    name: 'same change reviewed again (response cache hits)',
    value: (again.output as { costUsd: number }).costUsd,
    unit: 'USD',
    target: null,
  });
  record({ name: 'provider calls for both runs (second run: 0)', value: calls, unit: 'count', target: null });
}

// 2b. Review plan, budget shares, token estimates (bin/bench-plan.ts).
await reviewPlanBench(record, work);

// 2b'. Incremental re-review after a 1-file push to a 20-file pull request (bin/bench-rereview.ts).
await rereviewBench(record, work);

// 2c. Ingress under load through the local server (bin/bench-ingress.ts).
await ingressBench(record, work);

// 2d. Secret redaction: recall and false positives on the corpus, throughput (bin/bench-secrets.ts).
await secretsBench(record);

// 2e. pr-review as deployed (synthesized stack, bundles, stand-ins) beside the local runtime (bin/bench-deployed.ts).
await deployedBench(record);

// 3. Model gateway (bin/bench-gateway.ts): overhead per call over a direct SDK call on an agent's
// held budget, DynamoDB requests before the answer, without a pool, reservations per second (dynalite
// in process and in a child process), and provider requests sent during a 503 burst.
await gatewayBenches(record);

// 4. Webhook handler in process: verify the signature, match the workflows, take the delivery's
// idempotency record (Powertools, dynalite) and start the execution on the local engine. Each
// execution finishes before the next delivery, so the timing is the handler's alone.
{
  const runtime = await LocalRuntime.start({
    stateDir: join(work, 'webhook'),
    repoPath: repo.path,
    workspace: loadWorkspace(undefined, [join(PROJECT_ROOT, 'workflows', 'pr-review.yml')]),
    persist: false,
    modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
    print: () => undefined,
  });
  const secret = 'bench-webhook-secret';
  const deps = localIngress(runtime, { secret }).github;
  const body = JSON.stringify({
    action: 'opened',
    number: 42,
    pull_request: {
      title: 'bench',
      html_url: '',
      user: { login: 'bench' },
      base: { sha: repo.base, ref: 'main' },
      head: { sha: repo.head, ref: 'feature' },
      additions: 120,
      deletions: 30,
    },
    repository: { full_name: 'acme/shop-apps' },
  });
  const headers = (delivery: string) => ({
    'content-type': 'application/json',
    'x-github-event': 'pull_request',
    'x-github-delivery': delivery,
    'x-hub-signature-256': githubSignature(secret, body),
  });
  const fresh: number[] = [];
  const dup: number[] = [];
  for (let i = 0; i < 60; i++) {
    const delivery = `bench-${i}`;
    const t0 = performance.now();
    const res = await handleGithubDelivery({ headers: headers(delivery), body }, deps);
    const t1 = performance.now();
    if (res.statusCode !== 202) throw new Error(`webhook bench: ${res.statusCode} ${res.body}`);
    await runtime.executions.get(`${delivery}-pr-review`);
    const t2 = performance.now();
    await handleGithubDelivery({ headers: headers(delivery), body }, deps);
    dup.push(performance.now() - t2);
    if (i >= 10) fresh.push(t1 - t0); // the first ten warm up the JIT and the table
  }
  await runtime.stop();
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))] ?? 0;
  record({
    name: 'webhook in process per delivery p50 (verify, match, start)',
    value: Number(pct(fresh, 50).toFixed(1)),
    unit: 'ms',
    target: '≪ 10000 (GitHub)',
  });
  record({ name: 'webhook in process per delivery p99', value: Number(pct(fresh, 99).toFixed(1)), unit: 'ms', target: null });
  record({
    name: 'webhook duplicate delivery p50 (stored answer)',
    value: Number(pct(dup.slice(10), 50).toFixed(1)),
    unit: 'ms',
    target: null,
  });
}

// Issue 15: the tool loop's own overhead, and a 5-iteration agent's wall time ÷ its model and tool time.
await toolLoopBench(record);

// Issue 16: the CLI's start — `agentflow --help` and `validate` of one workflow, median wall time (bin/bench-cli.ts).
await cliBench(record);

// 5. Lambda bundles: size and cold module load time.
const env = {
  ...process.env,
  AWS_REGION: 'us-east-1',
  ARTIFACT_BUCKET: 'bench',
  TABLE_NAME: 'bench',
  GITHUB_SECRET_NAME: 'agentflow/bench/github',
  OPENAI_SECRET_NAME: 'agentflow/bench/openai',
  SLACK_SECRET_NAME: 'agentflow/bench/slack',
  CI_SECRET_NAME: 'agentflow/bench/ci',
  AGENTFLOW_WORKFLOWS: '[]',
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  POWERTOOLS_DEV: 'true',
};
for (const task of ['webhook', 'request-approval', 'load-context', 'invoke-agent', 'aggregate', 'publish', 'execution-status']) {
  // Under the project so `@aws-sdk/*` resolves from node_modules, as it does from the Lambda runtime.
  const outfile = join(PROJECT_ROOT, 'node_modules', '.cache', 'agentflow-bench', task, 'index.mjs');
  await build({
    entryPoints: [join(PROJECT_ROOT, 'lambdas', task, 'handler.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    minify: true,
    keepNames: true,
    // As NodejsFunction bundles for nodejs24.x: the runtime provides AWS SDK v3.
    external: ['@aws-sdk/*'],
    mainFields: ['module', 'main'],
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    logLevel: 'silent',
  });
  const kb = statSync(outfile).size / 1024;
  const loads: number[] = [];
  for (let i = 0; i < 5; i++) {
    let out: string;
    try {
      out = execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const t=performance.now(); await import(${JSON.stringify(outfile)}); console.log(performance.now()-t);`,
        ],
        { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
    } catch (e) {
      const stderr = String((e as { stderr?: string }).stderr ?? '');
      throw new Error(
        `bundle ${task} fails to load: ${stderr
          .split('\n')
          .filter((l) => /Error/.test(l))
          .slice(0, 2)
          .join(' ')
          .slice(0, 300)}`,
      );
    }
    loads.push(Number(out.trim()));
  }
  const median = [...loads].sort((a, b) => a - b)[2] ?? 0;
  record({ name: `bundle ${task} (as deployed: minified, SDK from runtime)`, value: Number(kb.toFixed(1)), unit: 'KB', target: '≤ 1024' });
  record({ name: `module load ${task} (fresh process, median of 5)`, value: Number(median.toFixed(1)), unit: 'ms', target: '≤ 150' });
}

mkdirSync(join(PROJECT_ROOT, 'bench'), { recursive: true });
writeFileSync(join(PROJECT_ROOT, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
console.log('\nwrote bench/results.json');
