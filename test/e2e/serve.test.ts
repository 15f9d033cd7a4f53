import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sign } from '@octokit/webhooks-methods';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../lambdas/core/contracts.js';
import type { ExampleRepo } from '../../lib/local/example-repo.js';
import { PROJECT_ROOT } from '../../lib/workspace.js';
import { exampleRepo, tempDir } from '../helpers.js';

const CLI = join(PROJECT_ROOT, 'bin', 'agentflow.js');
const SECRET = 'serve-test-secret';
const run = promisify(execFile);

let repo: ExampleRepo;
let stateDir: string;
let server: ChildProcess;
let url = '';

beforeAll(async () => {
  repo = exampleRepo();
  stateDir = tempDir();
  server = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--repo', repo.path, '--state-dir', stateDir], {
    env: { ...process.env, AGENTFLOW_GITHUB_WEBHOOK_SECRET: SECRET, AGENTFLOW_OFFLINE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  url = await new Promise<string>((ok, fail) => {
    let out = '';
    server.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) ok(m[1]);
    });
    server.on('exit', (code) => fail(new Error(`serve exited with ${code}: ${out}`)));
  });
});

afterAll(async () => {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
});

const payload = () =>
  JSON.stringify({
    action: 'opened',
    number: 42,
    pull_request: {
      title: 'Checkout: pay with card',
      html_url: 'https://github.com/acme/shop-apps/pull/42',
      user: { login: 'mobile-dev' },
      base: { sha: repo.base, ref: 'main' },
      head: { sha: repo.head, ref: 'feature/checkout-payments' },
    },
    repository: { full_name: 'acme/shop-apps' },
  });

async function post(body: string, signature: string | undefined, delivery: string) {
  return fetch(`${url}/webhooks/github`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'pull_request',
      'x-github-delivery': delivery,
      ...(signature ? { 'x-hub-signature-256': signature } : {}),
    },
    body,
  });
}

describe('e2e: agentflow serve', () => {
  it('refuses a forged or unsigned delivery with 401 and starts nothing', async () => {
    const body = payload();
    expect((await post(body, await sign('not-the-secret', body), 'forged-1')).status).toBe(401);
    expect((await post(body, undefined, 'unsigned-1')).status).toBe(401);
    const runs = (await (await fetch(`${url}/runs`)).json()) as { runs: RunRecord[] };
    expect(runs.runs).toEqual([]);
  });

  it('runs pr-review for a signed delivery and shows it under /runs and in `agentflow runs`', async () => {
    const body = payload();
    const res = await post(body, await sign(SECRET, body), 'a1b2c3d4-0000-4000-8000-000000000042');
    expect(res.status).toBe(202);
    const { executions } = (await res.json()) as { executions: Array<{ name: string }> };
    const name = executions[0]?.name as string;
    expect(name).toBe('a1b2c3d4-0000-4000-8000-000000000042-pr-review');

    let record: RunRecord | undefined;
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`${url}/runs/${name}`);
      record = r.ok ? ((await r.json()) as RunRecord) : undefined;
      if (record && record.status !== 'RUNNING') break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    expect(record).toMatchObject({ status: 'SUCCEEDED', workflow: 'pr-review', repository: 'acme/shop-apps', number: 42 });
    expect(record?.findings).toBeGreaterThan(0);
    expect(record?.agents).toHaveLength(4);

    // The same delivery again (a redelivery) starts nothing new.
    const again = await post(body, await sign(SECRET, body), 'a1b2c3d4-0000-4000-8000-000000000042');
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ duplicate: true });

    const { stdout } = await run(process.execPath, [CLI, 'runs', '--json', '--state-dir', stateDir]);
    expect((JSON.parse(stdout) as { runs: RunRecord[] }).runs.map((r) => r.runId)).toEqual([name]);
  });
});
