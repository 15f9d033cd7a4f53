import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deliveryHeaders, type ExampleRepo } from '../../lib/local/example-repo.js';
import { LocalRuntime } from '../../lib/local/runtime.js';
import { startLocalServer } from '../../lib/local/server.js';
import { loadWorkspace, PROJECT_ROOT, WORKFLOWS_DIR } from '../../lib/workspace.js';
import { examplePullRequestPayload, exampleRepo, tempDir, waitFor } from '../helpers.js';

/**
 * Crash recovery (DESIGN §12, local state folder): a real `agentflow serve` is killed with SIGKILL
 * while a run waits on the model; opening the same state folder again reconciles what it left.
 */

const CLI = join(PROJECT_ROOT, 'bin', 'agentflow.js');
const SECRET = 'recovery-test-secret';

let repo: ExampleRepo;
beforeAll(() => {
  repo = exampleRepo();
});

let child: ChildProcess | undefined;
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await new Promise((r) => child?.once('exit', r));
  }
  child = undefined;
});

/** Starts `agentflow serve` on `stateDir` with slow offline answers; resolves with its URL. */
async function serve(stateDir: string): Promise<string> {
  child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--repo', repo.path, '--state-dir', stateDir], {
    env: { ...process.env, AGENTFLOW_GITHUB_WEBHOOK_SECRET: SECRET, AGENTFLOW_OFFLINE: '1', AGENTFLOW_OFFLINE_DELAY_MS: '60000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = child;
  return new Promise<string>((ok, fail) => {
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) ok(m[1]);
    });
    proc.stderr?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    proc.on('exit', (code) => fail(new Error(`serve exited with ${code}: ${out}`)));
  });
}

async function deliver(url: string, delivery: string): Promise<Response> {
  const body = examplePullRequestPayload(repo);
  return fetch(`${url}/webhooks/github`, {
    method: 'POST',
    headers: await deliveryHeaders(SECRET, body, delivery),
    body,
  });
}

const open = (stateDir: string) =>
  LocalRuntime.start({
    stateDir,
    repoPath: repo.path,
    // pr-review only: the redelivered run below runs to its end (test-generation would wait for CI).
    workspace: loadWorkspace(undefined, [join(WORKFLOWS_DIR, 'pr-review.yml')]),
    modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
    print: () => undefined,
  });

describe('e2e: a serve killed with SIGKILL mid-run', () => {
  it('refuses a second process on the folder with one line, then reconciles runs, budget holds and slots after the kill; a redelivery starts the interrupted run again', async () => {
    const stateDir = tempDir();
    const url = await serve(stateDir);
    expect((await deliver(url, 'recovery-1')).status).toBe(202);
    // The agents are waiting on the (slow) model: their budget holds and slots are taken.
    const owner = join(stateDir, 'dynamodb', 'agentflow-owner.json');
    expect(existsSync(owner)).toBe(true);
    const ctx = join(stateDir, 'artifacts', 'runs', 'recovery-1-pr-review', 'context.json');
    await waitFor(async () => (existsSync(ctx) ? true : undefined), 'the run to load its context');
    await new Promise((r) => setTimeout(r, 1_500));

    // A second process on the same folder stops with one clear line naming the folder and the holder.
    await expect(open(stateDir)).rejects.toThrow(
      new RegExp(`^the state folder ${stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by process ${child?.pid} `),
    );

    child?.kill('SIGKILL');
    await new Promise((r) => child?.once('exit', r));
    expect(JSON.parse(readFileSync(owner, 'utf8')).pid).not.toBe(process.pid);

    const rt = await open(stateDir);
    try {
      // Every workflow the delivery started (pr-review and the others triggered on opened) was interrupted.
      expect(rt.recovered.runs).toBeGreaterThanOrEqual(1);
      expect((await rt.runs.list()).filter((r) => r.status === 'RUNNING')).toEqual([]);
      expect(rt.recovered.holds).toBeGreaterThan(0);
      const record = await rt.runs.get('recovery-1-pr-review');
      expect(record).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^interrupted: /) });
      for (const b of await rt.ledger.list()) expect(b.openHolds, b.key).toBe(0);
      // The folder now belongs to this process.
      expect(JSON.parse(readFileSync(owner, 'utf8')).pid).toBe(process.pid);

      // A redelivery of the interrupted delivery starts it again (not "duplicate"), and it finishes.
      expect(rt.recovered.deliveries).toBe(1);
      const server = await startLocalServer({ runtime: rt, secret: SECRET, port: 0 });
      try {
        const again = await deliver(server.url, 'recovery-1');
        const body = (await again.json()) as { duplicate?: boolean; executions: Array<{ name: string; started: boolean }> };
        expect(again.status).toBe(202);
        expect(body.duplicate).toBeUndefined();
        expect(body.executions).toEqual([{ workflow: 'pr-review', name: 'recovery-1-pr-review', started: true }]);
        const result = await rt.executions.get('recovery-1-pr-review');
        expect(result?.status).toBe('SUCCEEDED');
        expect((await rt.runs.get('recovery-1-pr-review'))?.status).toBe('SUCCEEDED');
        // A second redelivery is a duplicate again.
        expect(((await (await deliver(server.url, 'recovery-1')).json()) as { duplicate?: boolean }).duplicate).toBe(true);
      } finally {
        await server.close();
      }
    } finally {
      await rt.stop();
    }
    expect(existsSync(owner)).toBe(false);
  }, 120_000);
});
