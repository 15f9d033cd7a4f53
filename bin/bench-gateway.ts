/**
 * The model gateway's figures in `npm run bench` (issue 16), against dynalite in this process (as
 * `agentflow run` uses it) and in a child process (its CPU not ours, as DynamoDB's is not the Lambda's):
 *
 * - overhead per call over a direct SDK call to the same local server, p50 and p99 of paired
 *   samples (each gateway call minus the direct call made just before it), with budgets in all four
 *   scopes, breaker, rate limit and cache (a miss and a store) on. Calls are made as agents make
 *   them: 30 agents of 10 calls, each agent on its held budget (`openPool`, its first hold reserved
 *   when the agent starts, as InvokeAgent does); the bookkeeping after
 *   each answer is waited for outside the timed part, so its CPU is not counted in the next direct call;
 * - DynamoDB requests before the answer, once the agent's pool has room and on the call that grows it;
 * - the same overhead without a pool (one reservation and settlement per call, as before issue 16);
 * - budget reservations per second at 50 concurrent callers;
 * - provider requests sent while Bedrock answers 503 to 90 callers arriving at once (30 runs × 3
 *   agents; 20 in flight at most; the breaker opens at 5 failures): target ≤ threshold + concurrency.
 *
 * Run alone: `npx tsx bin/bench-gateway.ts`.
 */
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { budgetScopes, POOL_GROWTH, reserveBudget } from '../lambdas/core/budget.js';
import { type GatewayCall, worstCaseOf } from '../lambdas/core/gateway.js';
import { OfflineModelServer } from '../lib/local/offline-model.js';
import { connectLocalTable, type LocalTable, startLocalTable } from '../lib/local/runtime.js';
import { PROJECT_ROOT } from '../lib/workspace.js';
import { benchGateway, shippedModel } from './bench-tools.js';

type Record_ = (r: { name: string; value: number; unit: string; target: string | null }) => void;

const sonnet = shippedModel('claude-sonnet');
const system = 'You review Swift code and answer with JSON findings.';
const message = (i: number) => [{ role: 'user' as const, content: `Agent: code-review\nCategories: correctness\n+let v${i} = value!` }];

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? 0;
const ms = (x: number) => Number(x.toFixed(2));

/** Counts the DynamoDB requests the table's client sends. */
function counter(table: LocalTable): { n: number } {
  const c = { n: 0 };
  table.doc.middlewareStack.add(
    (next) => async (args) => {
      c.n++;
      return next(args);
    },
    { step: 'initialize', name: 'benchCountRequests' },
  );
  return c;
}

async function overheadBench(record: Record_, where: string, table: LocalTable): Promise<void> {
  const server = await new OfflineModelServer({ delayMs: 0, faults: {} }).start();
  const { gateway, ledger, providers, config } = benchGateway(server, table);
  const requests = counter(table);
  // The requests sent before the provider answers are the call's path (on a pool nothing after is awaited).
  let beforeAnswer = 0;
  const inner = providers.bedrock;
  providers.bedrock = {
    complete: async (r) => {
      const a = await inner.complete(r);
      beforeAnswer = requests.n;
      return a;
    },
  };
  const base = (i: number, runId: string, deadlineMs: number): GatewayCall => ({
    candidates: [sonnet],
    system,
    messages: message(i),
    maxTokens: 1000,
    temperature: 0.2,
    scopes: budgetScopes(config.budgets, { runId, project: 'bench', now: new Date() }),
    cache: true,
    labels: { workflow: 'pr-review', agent: 'code-review', project: 'bench' },
    deadlineMs,
  });
  const direct = () => async (i: number) => {
    const t = performance.now();
    await inner.complete({ modelId: sonnet.modelId, system, messages: message(i), maxTokens: 1000, temperature: 0.2 });
    return performance.now() - t;
  };
  const once = direct();
  // Warm-up: the rate-limit bucket, the SDK clients, the JIT.
  for (let i = 0; i < 20; i++) {
    await once(-i);
    await gateway.complete(base(-1000 - i, 'bench-warm', Date.now() + 60_000));
  }

  // On an agent's pool: 30 agents × 10 calls.
  const AGENTS = 30;
  const CALLS = 10;
  const overhead: number[] = [];
  const bookkeeping: number[] = [];
  const steadyPath: number[] = [];
  const growPath: number[] = [];
  let i = 0;
  for (let a = 0; a < AGENTS; a++) {
    const deadlineMs = Date.now() + 120_000;
    const runId = `bench-pool-${where.length}-${a}`;
    // As InvokeAgent opens it: the first hold (twice the first call's worst case) reserved when the
    // agent starts, while it reads its input (outside the timed part).
    const first = base(i, runId, deadlineMs);
    const pool = gateway.openPool(first.scopes, { prepare: { estimateMicro: POOL_GROWTH * worstCaseOf(first, sonnet), deadlineMs } });
    await pool.ready();
    for (let c = 0; c < CALLS; c++, i++) {
      const d = await once(i);
      const held = pool.heldMicro;
      const from = requests.n;
      beforeAnswer = from;
      const t = performance.now();
      await gateway.complete({ ...base(i, runId, deadlineMs), pool });
      overhead.push(performance.now() - t - d);
      (pool.heldMicro > held ? growPath : steadyPath).push(beforeAnswer - from);
      const t2 = performance.now();
      await pool.drain();
      bookkeeping.push(performance.now() - t2);
    }
    await pool.close();
  }
  record({
    name: `gateway overhead per call, p50 of paired samples (${where})`,
    value: ms(pct(overhead, 0.5)),
    unit: 'ms',
    target: '≤ 5 (issue 16)',
  });
  record({
    name: `gateway overhead per call, p99 of paired samples (${where})`,
    value: ms(pct(overhead, 0.99)),
    unit: 'ms',
    target: '≤ 15 (issue 16)',
  });
  record({
    name: `  bookkeeping after the answer, off its path, p50 (${where})`,
    value: ms(pct(bookkeeping, 0.5)),
    unit: 'ms',
    target: null,
  });
  record({
    name: `  DynamoDB requests before the answer, pool has room (${where})`,
    value: Math.max(...steadyPath),
    unit: 'requests',
    target: '≤ 4 (issue 16)',
  });
  record({
    name: `  DynamoDB requests before the answer, call grows the pool (${where})`,
    value: growPath.length > 0 ? Math.max(...growPath) : 0,
    unit: 'requests',
    target: `${growPath.length} of ${AGENTS * CALLS} calls (first holds reserved at agent start)`,
  });

  // Without a pool: one reservation in each of the four scopes and its settlement per call, awaited.
  const single: number[] = [];
  for (let k = 0; k < 100; k++, i++) {
    const d = await once(i);
    const t = performance.now();
    await gateway.complete(base(i, `bench-single-${k}`, Date.now() + 60_000));
    single.push(performance.now() - t - d);
  }
  record({
    name: `  without a pool (reserve + settle per call), p50 (${where})`,
    value: ms(pct(single, 0.5)),
    unit: 'ms',
    target: null,
  });

  // Reservations per second: 50 callers reserving in all four scopes (one conditional write each) and settling, for 3 s.
  const scopes = budgetScopes(config.budgets, { runId: 'bench-reservations', project: 'bench', now: new Date() });
  let reserved = 0;
  const until = performance.now() + 3000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 50 }, async (_, w) => {
      for (let k = 0; performance.now() < until; k++) {
        const r = await reserveBudget(
          ledger,
          scopes,
          { id: `w${w}-${k}`, estimateMicro: 50_000, expiresAtMs: Date.now() + 60_000 },
          Date.now(),
        );
        reserved++;
        await r.settle(1_000);
      }
    }),
  );
  record({
    name: `reservations/s, 50 callers, 4 scopes + settle (${where})`,
    value: Math.round(reserved / ((performance.now() - started) / 1000)),
    unit: '/s',
    target: null,
  });
  await server.stop();
  await table.stop();
}

/** Provider requests sent while Bedrock answers 503 to 90 callers at once (issue 16, point 2). */
async function burstBench(record: Record_): Promise<void> {
  const server = await new OfflineModelServer({ delayMs: 30, faults: { bedrock: 503 } }).start();
  const table = await startLocalTable();
  const { gateway, config } = benchGateway(server, table);
  const CONCURRENCY = 20;
  config.rateLimits.bedrock = { requestsPerMinute: 100_000, maxConcurrency: CONCURRENCY };
  const threshold = config.breaker.failureThreshold;
  const results = await Promise.allSettled(
    Array.from({ length: 90 }, (_, i) =>
      gateway.complete({
        candidates: [sonnet],
        system,
        messages: message(i),
        maxTokens: 1000,
        temperature: 0.2,
        scopes: budgetScopes(config.budgets, { runId: `burst-${i % 30}`, project: 'bench', now: new Date() }),
        cache: false,
        labels: { workflow: 'pr-review', agent: 'code-review', project: 'bench' },
        deadlineMs: Date.now() + 60_000,
      }),
    ),
  );
  if (results.some((r) => r.status === 'fulfilled')) throw new Error('burst bench: a call succeeded against a provider answering 503');
  record({
    name: 'Bedrock 503 burst: provider requests sent (90 callers, 3 tries each)',
    value: server.stats.bedrock,
    unit: 'requests',
    target: `≤ ${threshold + CONCURRENCY} (threshold ${threshold} + concurrency ${CONCURRENCY}; 270 possible)`,
  });
  await server.stop();
  await table.stop();
}

/** Every gateway figure: see the module docstring. */
export async function gatewayBenches(record: Record_): Promise<void> {
  // The local runtime's table: dynalite in this process, its requests handed over without a socket.
  await overheadBench(record, 'dynalite in process, no socket', await startLocalTable());
  // dynalite in a child process, like a remote table.
  const child = spawn(
    process.execPath,
    ['-e', "const d=require('dynalite')({createTableMs:0});d.listen(0,'127.0.0.1',()=>console.log(d.address().port))"],
    {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<string>((ok) => child.stdout.once('data', (d: Buffer) => ok(d.toString().trim())));
  await overheadBench(
    record,
    'dynalite in a child process',
    await connectLocalTable(`http://127.0.0.1:${port}`, async () => void child.kill()),
  );
  await burstBench(record);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await gatewayBenches((r) =>
    console.log(
      `${r.name.padEnd(70)} ${String(r.value).padStart(10)} ${r.unit.padEnd(9)} ${r.target ? `target ${r.target}` : ''}  load ${loadavg()[0]?.toFixed(2)}/${cpus().length}`,
    ),
  );
}
