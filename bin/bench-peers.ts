/**
 * `npm run bench:peers` (issue 16 point 6): AgentFlow's model gateway overhead beside a peer's, the
 * open-source Portkey AI Gateway (`@portkey-ai/gateway`, {@link PORTKEY_VERSION}), in front of the
 * same local model server in the same run, and their ratio. Writes bench/peers.json. Separate from
 * `npm test` and `npm run bench`: it needs the npm registry.
 *
 * - Portkey is installed into a scratch folder (`npm install --prefix <tmp>`, never into this
 *   project's package.json or lockfile) and run as a child process on Node 24, bound to 127.0.0.1
 *   only. Its server (`build/start-server.js`) calls `serve({ fetch, port })` of `@hono/node-server`
 *   with no hostname, so it would listen on every interface, and it has no host flag or variable
 *   (only `--port=`, `--headless`). A module hook (`--import`) resolves that one import, from that
 *   one file, to a wrapper that adds `hostname: '127.0.0.1'` and prints the bound address; the bench
 *   then checks the listening socket's address (the child's `server.address()`, and on Linux the
 *   kernel's table of listening sockets, /proc/net/tcp and tcp6) and refuses to go on otherwise.
 * - The model server is the offline one (`OfflineModelServer`, no delay), on the OpenAI wire format.
 *   Direct: the `openai` SDK to its base URL. Portkey: the same SDK at Portkey, routed with
 *   `x-portkey-provider: openai` and `x-portkey-custom-host: <the offline server's /v1 URL>`.
 *   AgentFlow: `gateway.complete` as `npm run bench` builds it ({@link benchGateway}: budgets in 4
 *   scopes, breaker, rate limit, cache miss + store, Powertools metrics) with an `openai` model,
 *   dynalite in a child process (its CPU not ours, as DynamoDB's is not the Lambda's). The same
 *   request body everywhere; the prompt varies per call, so no cache answers.
 * - Overheads are paired samples as in `npm run bench`: each call's time through a gateway minus the
 *   direct call made just before it; p50 and p99 over {@link SAMPLES} pairs after {@link WARMUP}
 *   warm-up rounds. Each round measures both gateways, in alternating order.
 *
 * Where Portkey cannot be installed (no registry), it says so, prints Portkey's published figure
 * with its source ({@link PUBLISHED}), and still measures AgentFlow's overhead. Every server and
 * child process is stopped at the end, also on error.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import OpenAI from 'openai';
import { type BudgetPool, budgetScopes, POOL_GROWTH } from '../lambdas/core/budget.js';
import { type GatewayCall, worstCaseOf } from '../lambdas/core/gateway.js';
import { OfflineModelServer } from '../lib/local/offline-model.js';
import { connectLocalTable, type LocalTable } from '../lib/local/runtime.js';
import { PROJECT_ROOT } from '../lib/workspace.js';
import { benchGateway, shippedModel } from './bench-tools.js';

/** The Portkey gateway version measured (npm `@portkey-ai/gateway`, latest on 2026-11-30). */
const PORTKEY_VERSION = '1.15.2';
const PORTKEY_PACKAGE = `@portkey-ai/gateway@${PORTKEY_VERSION}`;

/** Portkey's own published latency figure, printed when it cannot be installed. */
const PUBLISHED = {
  claim: 'Blazing fast (<1ms latency) with a tiny footprint (122kb)',
  source: 'https://github.com/Portkey-AI/gateway/blob/main/README.md (also the README of the npm package, 1.15.2)',
  note: "a README claim, no method given; Portkey's hosted service states 20-40 ms added latency (https://portkey.ai/docs, FAQ), network included",
};

const SAMPLES = 300;
const WARMUP = 20;
const LOOPBACK = '127.0.0.1';

interface Row {
  name: string;
  value: number;
  unit: string;
  /** The 1-minute load average when the figure was taken. */
  load: number;
}
const rows: Row[] = [];
const record = (name: string, value: number, unit: string) => {
  const row = { name, value, unit, load: Number(loadavg()[0]?.toFixed(2) ?? 0) };
  rows.push(row);
  console.log(`${name.padEnd(58)} ${String(value).padStart(9)} ${unit.padEnd(6)} load ${row.load}/${cpus().length}`);
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? 0;
const ms = (x: number) => Number(x.toFixed(2));

/** Child processes to stop on the way out, whatever the way. */
const children = new Set<ChildProcess>();
const stopChild = async (child: ChildProcess): Promise<void> => {
  children.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const c of children) c.kill('SIGKILL');
    process.exit(130);
  });
}

/** Installs Portkey's gateway into `dir` with npm; the reason when it cannot. */
function installPortkey(dir: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  // npm as `npm run` started us (its CLI on our Node), else the one on the PATH.
  const npmCli = process.env.npm_execpath;
  const [cmd, pre] = npmCli?.endsWith('.js') ? [process.execPath, [npmCli]] : ['npm', []];
  const args = [...pre, 'install', '--prefix', dir, PORTKEY_PACKAGE, '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'];
  // Offline, npm would retry for about a minute before giving up: once, briefly.
  args.push('--fetch-retries=1', '--fetch-retry-mintimeout=2000', '--fetch-retry-maxtimeout=5000');
  return new Promise((ok) => {
    execFile(cmd, args, { cwd: dir, timeout: 180_000, maxBuffer: 16 << 20 }, (err, _out, stderr) => {
      if (!err) return ok({ ok: true });
      const line =
        stderr
          .split('\n')
          .find((l) => /ERR!.*(code|network|request|fetch|ENOTFOUND|ECONN|ETIMEDOUT|EAI_AGAIN)/i.test(l))
          ?.trim() ??
        stderr.trim().split('\n')[0] ??
        err.message;
      ok({ ok: false, reason: line || err.message });
    });
  });
}

/**
 * The files that bind Portkey to 127.0.0.1: a resolve hook that sends `@hono/node-server`, imported
 * from Portkey's `start-server.js` only, to a wrapper of it whose `serve` adds the hostname and
 * prints the address the server is bound to (one line, `PEERS-LISTENING {json}`).
 * @returns the `--import` URL registering the hook
 */
function writeLoopbackHook(dir: string): string {
  writeFileSync(
    join(dir, 'loopback-serve.mjs'),
    [
      "import * as real from '@hono/node-server';",
      "export * from '@hono/node-server';",
      'export function serve(options, listening) {',
      `  const server = real.serve({ ...options, hostname: '${LOOPBACK}' }, (info) => {`,
      "    console.log('PEERS-LISTENING ' + JSON.stringify(server.address()));",
      '    listening?.(info);',
      '  });',
      '  return server;',
      '}',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'loopback-hooks.mjs'),
    [
      `const wrapper = ${JSON.stringify(pathToFileURL(join(dir, 'loopback-serve.mjs')).href)};`,
      'export async function resolve(specifier, context, next) {',
      "  if (specifier === '@hono/node-server' && context.parentURL?.endsWith('/@portkey-ai/gateway/build/start-server.js'))",
      '    return { url: wrapper, shortCircuit: true };',
      '  return next(specifier, context);',
      '}',
      '',
    ].join('\n'),
  );
  const register = join(dir, 'loopback-register.mjs');
  writeFileSync(register, "import { register } from 'node:module';\nregister('./loopback-hooks.mjs', import.meta.url);\n");
  return pathToFileURL(register).href;
}

/**
 * The local addresses of sockets listening on TCP `port`, from the kernel's tables (Linux);
 * undefined where there are none to read.
 */
function kernelListeners(port: number): string[] | undefined {
  const out: string[] = [];
  let read = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue;
    read = true;
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const [hexAddr, hexPort] = (f[1] ?? '').split(':');
      if (f[3] !== '0A' || !hexAddr || Number.parseInt(hexPort ?? '', 16) !== port) continue; // 0A: LISTEN
      // Each 32-bit word is in the host's byte order (little-endian here).
      const bytes = (hexAddr.match(/.{8}/g) ?? []).flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => Number.parseInt(b, 16)));
      if (bytes.length === 4) out.push(bytes.join('.'));
      else {
        const groups = Array.from({ length: 8 }, (_, i) => (((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0)).toString(16));
        const v6 = groups.join(':');
        out.push(v6 === '0:0:0:0:0:0:0:0' ? '::' : v6 === '0:0:0:0:0:0:0:1' ? '::1' : v6);
      }
    }
  }
  return read ? out : undefined;
}

interface Portkey {
  child: ChildProcess;
  port: number;
  bound: { address: string; port: number; checkedBy: string };
}

/** Starts the installed gateway on an ephemeral port of 127.0.0.1 and checks it listens there only. */
async function startPortkey(dir: string): Promise<Portkey> {
  const entry = join(dir, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
  const child = spawn(process.execPath, ['--import', writeLoopbackHook(dir), entry, '--port=0', '--headless'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const address = await new Promise<{ address: string; port: number }>((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`Portkey did not start in 30 s: ${stderr.trim()}`)), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`Portkey exited (${code}) before listening: ${stderr.trim()}`));
    });
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PEERS-LISTENING (\{.*\})/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        ok(JSON.parse(m[1]));
      }
    });
  });
  if (address.address !== LOOPBACK) throw new Error(`Portkey listens on ${address.address}, not ${LOOPBACK} only: stopped`);
  const kernel = kernelListeners(address.port);
  if (kernel && (kernel.length === 0 || kernel.some((a) => a !== LOOPBACK)))
    throw new Error(`Portkey's port ${address.port} is listened on at ${kernel.join(', ') || 'no address'}, not ${LOOPBACK} only: stopped`);
  return {
    child,
    port: address.port,
    bound: {
      address: address.address,
      port: address.port,
      checkedBy: kernel ? "the child's server.address() and /proc/net/tcp{,6}" : "the child's server.address()",
    },
  };
}

const gpt = shippedModel('gpt-4.1-mini');
const system = 'You review Swift code and answer with JSON findings.';
const prompt = (i: number) => `Agent: code-review\nCategories: correctness\n+let v${i} = value!`;
/** The body the AgentFlow gateway's `openai` provider sends, sent as is directly and through Portkey. */
const body = (i: number) => ({
  model: gpt.modelId,
  messages: [
    { role: 'system' as const, content: system },
    { role: 'user' as const, content: prompt(i) },
  ],
  temperature: 0.2,
  max_completion_tokens: 1000,
  response_format: { type: 'json_object' as const },
});

console.log(`AgentFlow gateway overhead beside Portkey's open-source gateway (${PORTKEY_PACKAGE}), OpenAI wire format\n`);

const scratch = mkdtempSync(join(tmpdir(), 'agentflow-peers-'));
let portkey: Portkey | undefined;
let server: OfflineModelServer | undefined;
let table: LocalTable | undefined;
let exitCode = 0;
try {
  const installed = await installPortkey(scratch);
  if (installed.ok) portkey = await startPortkey(scratch);
  else {
    console.log(`${PORTKEY_PACKAGE} could not be installed (${installed.reason}): no Portkey figure from this machine.`);
    console.log(`Portkey's published figure: "${PUBLISHED.claim}", ${PUBLISHED.source}; ${PUBLISHED.note}.\n`);
  }
  if (portkey)
    console.log(
      `Portkey ${PORTKEY_VERSION} listening on ${portkey.bound.address}:${portkey.bound.port} only (checked by ${portkey.bound.checkedBy})\n`,
    );

  server = await new OfflineModelServer({ delayMs: 0, faults: {} }).start();
  // dynalite in a child process, as `npm run bench`'s second gateway figure.
  const dynalite = spawn(
    process.execPath,
    ['-e', `const d=require('dynalite')({createTableMs:0});d.listen(0,'${LOOPBACK}',()=>console.log(d.address().port))`],
    { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.add(dynalite);
  const port = await new Promise<string>((ok) => dynalite.stdout.once('data', (d: Buffer) => ok(d.toString().trim())));
  table = await connectLocalTable(`http://${LOOPBACK}:${port}`, () => stopChild(dynalite));

  const { gateway, config } = benchGateway(server, table);
  // benchGateway sets a rate limit that never makes a caller wait for bedrock only; openai keeps
  // its default (300 a minute), which these ~640 calls would exceed: the same never-waiting limit.
  config.rateLimits.openai = { requestsPerMinute: 1_000_000, maxConcurrency: 1000 };

  const direct = new OpenAI({ apiKey: 'offline', baseURL: server.openaiUrl, maxRetries: 0, timeout: 30_000 });
  const viaPortkey =
    portkey &&
    new OpenAI({
      apiKey: 'offline',
      baseURL: `http://${LOOPBACK}:${portkey.port}/v1`,
      maxRetries: 0,
      timeout: 30_000,
      defaultHeaders: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': server.openaiUrl },
    });
  const timed = async (f: () => Promise<unknown>) => {
    const t = performance.now();
    await f();
    return performance.now() - t;
  };
  const callDirect = (i: number) => timed(() => direct.chat.completions.create(body(i)));
  const callPortkey = (i: number) => timed(() => (viaPortkey as OpenAI).chat.completions.create(body(i)));
  // As agents call it (bin/bench-gateway.ts): agents of 10 calls, each on its held budget with its first
  // hold reserved when it starts; the bookkeeping after each answer is waited for outside the timed part.
  const CALLS_PER_AGENT = 10;
  let pool: BudgetPool | undefined;
  let deadlineMs = 0;
  const callOf = (i: number): GatewayCall => ({
    candidates: [gpt],
    system,
    messages: [{ role: 'user', content: prompt(i) }],
    maxTokens: 1000,
    temperature: 0.2,
    scopes: budgetScopes(config.budgets, { runId: `peers-${Math.floor(i / CALLS_PER_AGENT)}`, project: 'bench', now: new Date() }),
    cache: true,
    labels: { workflow: 'pr-review', agent: 'code-review', project: 'bench' },
    deadlineMs,
  });
  const callAgentFlow = async (i: number) => {
    if (!pool || i % CALLS_PER_AGENT === 0) {
      await pool?.close();
      deadlineMs = Date.now() + 120_000;
      const first = callOf(i);
      pool = gateway.openPool(first.scopes, { prepare: { estimateMicro: POOL_GROWTH * worstCaseOf(first, gpt), deadlineMs } });
      await pool.ready();
    }
    const on = pool;
    const took = await timed(async () => {
      const a = await gateway.complete({ ...callOf(i), pool: on });
      if (a.cacheHit) throw new Error('the AgentFlow gateway answered from its cache: the bench measures misses');
    });
    await on.drain();
    return took;
  };

  // Portkey forwards to the offline server and answers what it answered.
  if (viaPortkey) {
    const [d, p] = [await direct.chat.completions.create(body(-1)), await viaPortkey.chat.completions.create(body(-1))];
    if (p.choices[0]?.message.content !== d.choices[0]?.message.content || p.system_fingerprint !== d.system_fingerprint)
      throw new Error(`Portkey's answer differs from the offline server's: ${JSON.stringify(p).slice(0, 300)}`);
  }

  const direct_: number[] = [];
  const portkeyOverhead: number[] = [];
  const agentflowOverhead: number[] = [];
  const before = server.stats.openai;
  for (let i = 0; i < WARMUP + SAMPLES; i++) {
    const pairs: Array<[number[], (i: number) => Promise<number>]> = [[agentflowOverhead, callAgentFlow]];
    if (viaPortkey) pairs[i % 2 === 0 ? 'unshift' : 'push']([portkeyOverhead, callPortkey]);
    for (const [into, via] of pairs) {
      const d = await callDirect(i);
      const g = await via(i);
      if (i >= WARMUP) {
        direct_.push(d);
        into.push(g - d);
      }
    }
  }
  await (pool as BudgetPool | undefined)?.close();
  const calls = server.stats.openai - before;
  const expected = (WARMUP + SAMPLES) * (viaPortkey ? 4 : 2);
  if (calls !== expected) throw new Error(`the offline server answered ${calls} calls, not ${expected}: some call did not reach it`);

  record('direct OpenAI SDK call to the local server, p50', ms(pct(direct_, 0.5)), 'ms');
  if (viaPortkey) {
    record(`Portkey ${PORTKEY_VERSION} overhead per call, p50 of paired samples`, ms(pct(portkeyOverhead, 0.5)), 'ms');
    record(`Portkey ${PORTKEY_VERSION} overhead per call, p99 of paired samples`, ms(pct(portkeyOverhead, 0.99)), 'ms');
  }
  record('AgentFlow gateway overhead per call, p50 of paired samples', ms(pct(agentflowOverhead, 0.5)), 'ms');
  record('AgentFlow gateway overhead per call, p99 of paired samples', ms(pct(agentflowOverhead, 0.99)), 'ms');
  if (viaPortkey)
    record('AgentFlow ÷ Portkey overhead (p50)', Number((pct(agentflowOverhead, 0.5) / pct(portkeyOverhead, 0.5)).toFixed(2)), 'ratio');
  else console.log(`Portkey: not measured (not installed); published: "${PUBLISHED.claim}" (see above)`);

  const note =
    'Portkey keeps no budgets: here it only forwards the call (its optional cache, retries and guardrails not asked for). ' +
    "AgentFlow's overhead includes holding the budget in 4 limited scopes (from the agent's pool), the circuit breaker, a rate-limit slot " +
    'and a cache lookup (one DynamoDB round trip: dynalite in a child process) and Powertools metrics; the settlement and cache store after the answer are off its path.';
  console.log(`\n${note}`);
  console.log(`${SAMPLES} paired samples per gateway after ${WARMUP} warm-up rounds; Node ${process.versions.node}.`);
  mkdirSync(join(PROJECT_ROOT, 'bench'), { recursive: true });
  writeFileSync(
    join(PROJECT_ROOT, 'bench', 'peers.json'),
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.versions.node,
        cpus: cpus().length,
        samples: SAMPLES,
        warmup: WARMUP,
        wire: 'openai',
        dynalite: 'child process',
        portkey: portkey
          ? { package: '@portkey-ai/gateway', version: PORTKEY_VERSION, measured: true, bound: portkey.bound }
          : { package: '@portkey-ai/gateway', version: PORTKEY_VERSION, measured: false, published: PUBLISHED },
        results: rows,
        note,
      },
      null,
      2,
    )}\n`,
  );
  console.log('Wrote bench/peers.json');
} catch (e) {
  console.error(`bench:peers failed: ${(e as Error).message}`);
  exitCode = 1;
} finally {
  if (portkey) await stopChild(portkey.child);
  await table?.stop();
  await server?.stop();
  for (const c of children) await stopChild(c);
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(exitCode);
