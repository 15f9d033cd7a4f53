/**
 * `npm run bench`: prints AgentFlow's speed and cost figures and writes bench/results.json
 * (`[{ name, value, unit, target }]`).
 *
 * - orchestration overhead: pr-review's 4-agent parallel phase with every offline-model answer
 *   delayed 1000 ms; end-to-end wall time ÷ 1000 ms (one-after-another would be ≥ 4.0);
 * - state transitions per pr-review run and the Step Functions cost per 1,000 runs;
 * - each Lambda's minified bundle (esbuild, AWS SDK bundled) and its module load time in a fresh
 *   Node process.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { SFN_USD_PER_TRANSITION } from '../lambdas/core/pricing.js';
import { createExampleRepo } from '../lib/local/example-repo.js';
import { LocalRuntime } from '../lib/local/runtime.js';
import { loadWorkspace, PROJECT_ROOT } from '../lib/workspace.js';

interface Result {
  name: string;
  value: number;
  unit: string;
  target: string | null;
}
const results: Result[] = [];
const record = (r: Result) => {
  results.push(r);
  console.log(`${r.name.padEnd(52)} ${String(r.value).padStart(12)} ${r.unit.padEnd(10)} ${r.target ? `target ${r.target}` : ''}`);
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

// 1. Orchestration overhead with 1000 ms model answers.
const DELAY_MS = 1000;
{
  const rt = await LocalRuntime.start({
    stateDir: join(work, 'state-delay'),
    repoPath: repo.path,
    workspace: loadWorkspace(),
    persist: false,
    modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
    offline: { delayMs: DELAY_MS, faults: {} },
  });
  await rt.execute('pr-review', 'warmup', { runId: 'warmup', workflow: 'pr-review', change });
  const runs: number[] = [];
  let transitions = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const r = await rt.execute('pr-review', `delay-${i}`, { runId: `delay-${i}`, workflow: 'pr-review', change });
    runs.push(performance.now() - t0);
    transitions = r.transitions;
    if (r.status !== 'SUCCEEDED') throw new Error(`bench run failed: ${r.error}`);
  }
  await rt.stop();
  const median = [...runs].sort((a, b) => a - b)[1] ?? 0;
  record({ name: 'orchestration: 4 agents × 1000 ms answers, wall time', value: Math.round(median), unit: 'ms', target: null });
  record({
    name: 'orchestration overhead (wall ÷ one answer)',
    value: Number((median / DELAY_MS).toFixed(3)),
    unit: 'ratio',
    target: '≤ 1.25 (sequential: 4.0)',
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
  await rt.stop();
  record({ name: 'pr-review run with instant answers, wall time', value: Math.round(ms), unit: 'ms', target: null });
  record({
    name: 'model cost of one pr-review run (example change)',
    value: (r.output as { costUsd: number }).costUsd,
    unit: 'USD',
    target: null,
  });
}

// 3. Lambda bundles: size and cold module load time.
const env = {
  ...process.env,
  AWS_REGION: 'us-east-1',
  ARTIFACT_BUCKET: 'bench',
  TABLE_NAME: 'bench',
  GITHUB_SECRET_NAME: 'agentflow/bench/github',
  OPENAI_SECRET_NAME: 'agentflow/bench/openai',
  AGENTFLOW_WORKFLOWS: '[]',
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  POWERTOOLS_DEV: 'true',
};
for (const task of ['webhook', 'load-context', 'invoke-agent', 'aggregate', 'publish']) {
  const outfile = join(work, 'bundles', task, 'index.mjs');
  await build({
    entryPoints: [join(PROJECT_ROOT, 'lambdas', task, 'handler.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    minify: true,
    keepNames: true,
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
  record({ name: `bundle ${task} (minified, AWS SDK bundled)`, value: Number(kb.toFixed(1)), unit: 'KB', target: '≤ 1024' });
  record({ name: `module load ${task} (fresh process, median of 5)`, value: Number(median.toFixed(1)), unit: 'ms', target: null });
}

mkdirSync(join(PROJECT_ROOT, 'bench'), { recursive: true });
writeFileSync(join(PROJECT_ROOT, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
console.log('\nwrote bench/results.json');
