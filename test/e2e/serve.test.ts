import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sign } from '@octokit/webhooks-methods';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../lambdas/core/contracts.js';
import { slackSignature } from '../../lambdas/core/signatures.js';
import type { ExampleRepo } from '../../lib/local/example-repo.js';
import { PROJECT_ROOT } from '../../lib/workspace.js';
import { examplePullRequestPayload, exampleRepo, LEAD, tempDir, waitFor } from '../helpers.js';

const CLI = join(PROJECT_ROOT, 'bin', 'agentflow.js');
const SECRET = 'serve-test-secret';
const SLACK = 'serve-test-slack-signing-secret';
const run = promisify(execFile);

let repo: ExampleRepo;
let stateDir: string;
let server: ChildProcess;
let url = '';

beforeAll(async () => {
  repo = exampleRepo();
  stateDir = tempDir();
  server = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--repo', repo.path, '--state-dir', stateDir], {
    env: { ...process.env, AGENTFLOW_GITHUB_WEBHOOK_SECRET: SECRET, AGENTFLOW_SLACK_SIGNING_SECRET: SLACK, AGENTFLOW_OFFLINE: '1' },
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

const payload = () => examplePullRequestPayload(repo);

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

/** The local API token `serve` wrote to the state folder. */
const token = () => (JSON.parse(readFileSync(join(stateDir, 'serve.json'), 'utf8')) as { token: string }).token;

/** A request to the local API with the token from the state folder. */
const api = (path: string, init: RequestInit = {}) =>
  fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${token()}`, ...(init.headers as Record<string, string>) } });

/** POST /approvals/<id> through node:http, which sends the `Host` header it is given (fetch sets its own). */
const postWithHost = (id: string, host: string) =>
  new Promise<number>((ok, fail) => {
    const body = JSON.stringify({ decision: 'approve', as: LEAD });
    const req = request(
      `${url}/approvals/${id}`,
      { method: 'POST', headers: { host, authorization: `Bearer ${token()}`, 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        ok(res.statusCode ?? 0);
      },
    );
    req.on('error', fail);
    req.end(body);
  });

/** Polls GET /runs/<name> until the run is no longer RUNNING. */
const finishedRun = (name: string) =>
  waitFor(async () => {
    const r = await api(`/runs/${name}`);
    const record = r.ok ? ((await r.json()) as RunRecord) : undefined;
    return record && record.status !== 'RUNNING' ? record : undefined;
  }, `run ${name}`);

/** Sends a signed `/agentflow <text>` slash command as the lead; returns the status and the ephemeral answer. */
async function slackCommand(text: string, trigger: string): Promise<{ status: number; answer: { response_type: string; text: string } }> {
  const body = new URLSearchParams({ command: '/agentflow', text, user_id: LEAD, trigger_id: trigger }).toString();
  const ts = Math.floor(Date.now() / 1000);
  const res = await fetch(`${url}/webhooks/slack/commands`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(ts),
      'x-slack-signature': slackSignature(SLACK, ts, body),
    },
    body,
  });
  return { status: res.status, answer: (await res.json()) as { response_type: string; text: string } };
}

describe('e2e: agentflow serve', () => {
  it('refuses a forged or unsigned delivery with 401 and starts nothing', async () => {
    const body = payload();
    expect((await post(body, await sign('not-the-secret', body), 'forged-1')).status).toBe(401);
    expect((await post(body, undefined, 'unsigned-1')).status).toBe(401);
    const runs = (await (await api('/runs')).json()) as { runs: RunRecord[] };
    expect(runs.runs).toEqual([]);
  });

  it('runs pr-review for a signed delivery and shows it under /runs and in `agentflow runs`', async () => {
    const body = payload();
    const res = await post(body, await sign(SECRET, body), 'a1b2c3d4-0000-4000-8000-000000000042');
    expect(res.status).toBe(202);
    const { executions } = (await res.json()) as { executions: Array<{ name: string }> };
    const name = executions[0]?.name as string;
    expect(name).toBe('a1b2c3d4-0000-4000-8000-000000000042-pr-review');

    const record = await finishedRun(name);
    expect(record).toMatchObject({ status: 'SUCCEEDED', workflow: 'pr-review', repository: 'acme/shop-apps', number: 42 });
    expect(record?.findings).toBeGreaterThan(0);
    // Four reviewers and the verifier.
    expect(record?.agents).toHaveLength(5);
    expect(record?.verification).toMatchObject({ dropped: 0 });

    // The same delivery again (a redelivery) starts nothing new.
    const again = await post(body, await sign(SECRET, body), 'a1b2c3d4-0000-4000-8000-000000000042');
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ duplicate: true });

    const { stdout } = await run(process.execPath, [CLI, 'runs', '--json', '--state-dir', stateDir]);
    const runs = (JSON.parse(stdout) as { runs: RunRecord[] }).runs;
    expect(runs.filter((r) => r.workflow === 'pr-review').map((r) => r.runId)).toEqual([name]);
    // test-generation is triggered too, and skipped: the example has no coverage summary.
    expect(runs.find((r) => r.workflow === 'test-generation')).toMatchObject({
      status: 'SKIPPED',
      reason: expect.stringContaining('coverage'),
    });
  });

  it('starts a workflow from the Slack command; `agentflow approvals` lists its approval and `agentflow approve` decides it while serve runs', async () => {
    const { status, answer } = await slackCommand(
      `run architecture-migration repo=acme/shop-apps base=${repo.base} head=${repo.head}`,
      '13345224609.738474920.8088930838d88f008e0',
    );
    expect(status).toBe(200);
    expect(answer.response_type).toBe('ephemeral');
    const execution = /execution `([^`]+)`/.exec(answer.text)?.[1] as string;
    expect(execution).toContain('architecture-migration');

    let pending: Array<{ id: string; execution: string; phase: string; deadline: string }> = [];
    for (let i = 0; i < 100 && pending.length === 0; i++) {
      const { stdout } = await run(process.execPath, [CLI, 'approvals', '--json', '--state-dir', stateDir]);
      pending = (JSON.parse(stdout) as { approvals: typeof pending }).approvals.filter((a) => a.execution === execution);
      if (pending.length === 0) await new Promise((ok) => setTimeout(ok, 100));
    }
    expect(pending[0]).toMatchObject({ execution, phase: 'approve' });
    const table = await run(process.execPath, [CLI, 'approvals', '--state-dir', stateDir]);
    expect(table.stdout).toContain(pending[0]?.id);

    const denied = await run(process.execPath, [
      CLI,
      'approve',
      pending[0]?.id as string,
      '--as',
      'U0NOBODY',
      '--state-dir',
      stateDir,
    ]).catch((e) => e);
    expect(denied.stdout).toContain('is not an approver');
    const { stdout } = await run(process.execPath, [CLI, 'approve', pending[0]?.id as string, '--as', LEAD, '--state-dir', stateDir]);
    expect(stdout).toContain(`approved by <@${LEAD}>`);

    const record = await finishedRun(execution);
    expect(record).toMatchObject({ status: 'SUCCEEDED', workflow: 'architecture-migration' });
  });

  it('writes its local API token to serve.json (mode 0600) and refuses GET /runs, /approvals, /costs and /breakers without it', async () => {
    // Prepare
    const state = JSON.parse(readFileSync(join(stateDir, 'serve.json'), 'utf8')) as { url: string; pid: number; token: string };

    // Act
    const statuses = await Promise.all(['/runs', '/approvals', '/costs', '/breakers'].map(async (p) => (await fetch(`${url}${p}`)).status));
    const wrong = await fetch(`${url}/runs`, { headers: { authorization: `Bearer ${state.token.slice(1)}x` } });

    // Assess
    expect(statSync(join(stateDir, 'serve.json')).mode & 0o777).toBe(0o600);
    expect(state).toMatchObject({ url, pid: server.pid, token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    expect(statuses).toEqual([401, 401, 401, 401]);
    expect(wrong.status).toBe(401);
    expect((await api('/runs')).status).toBe(200);
  });

  it('`agentflow costs --sweep` sweeps through the running serve (POST /costs/sweep, token and JSON only)', async () => {
    // Act
    const cli = await run(process.execPath, [CLI, 'costs', '--sweep', '--state-dir', stateDir]);
    const plain = await fetch(`${url}/costs/sweep`, { method: 'POST', headers: { authorization: `Bearer ${token()}` }, body: '{}' });
    const swept = await api('/costs/sweep', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });

    // Assess
    expect(cli.stderr).toMatch(/^released \d+ expired reservation\(s\)$/m);
    expect(plain.status).toBe(415);
    expect(swept.status).toBe(200);
    expect(await swept.json()).toEqual({ released: expect.any(Number) });
  });

  it('refuses POST /approvals/<id> without the token (401), from a browser Origin (403), with a foreign Host (403) and as text/plain (415); with the token it decides', async () => {
    // Prepare: a pending approval.
    const { answer } = await slackCommand(
      `run architecture-migration repo=acme/shop-apps base=${repo.base} head=${repo.head}`,
      'trigger-local-api',
    );
    const execution = /execution `([^`]+)`/.exec(answer.text)?.[1] as string;
    const id = await waitFor(async () => {
      const list = (await (await api('/approvals')).json()) as { approvals: Array<{ id: string; execution: string }> };
      return list.approvals.find((a) => a.execution === execution)?.id;
    }, 'the approval');
    const body = JSON.stringify({ decision: 'approve', as: LEAD });
    const json = { 'content-type': 'application/json' };

    // Act
    const unauthenticated = await fetch(`${url}/approvals/${id}`, { method: 'POST', headers: json, body });
    const browser = await api(`/approvals/${id}`, { method: 'POST', headers: { ...json, origin: 'https://evil.example' }, body });
    const rebound = await postWithHost(id, 'evil.example');
    const rebindWithPort = await postWithHost(id, `evil.example:${new URL(url).port}`);
    const text = await api(`/approvals/${id}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body });
    const stillPending = ((await (await api('/approvals')).json()) as { approvals: Array<{ id: string }> }).approvals.map((a) => a.id);
    const decided = await api(`/approvals/${id}`, { method: 'POST', headers: json, body });

    // Assess
    expect(unauthenticated.status).toBe(401);
    expect(await unauthenticated.json()).toMatchObject({ message: expect.stringContaining('Authorization: Bearer') });
    expect(browser.status).toBe(403);
    expect(rebound).toBe(403);
    expect(rebindWithPort).toBe(403);
    expect(text.status).toBe(415);
    expect(stillPending).toContain(id);
    expect(decided.status).toBe(200);
    expect(await decided.json()).toMatchObject({ outcome: 'approved' });
    expect(await finishedRun(execution)).toMatchObject({ status: 'SUCCEEDED', workflow: 'architecture-migration' });
  });

  it('`/agentflow reject <id>` in a pull-request comment decides as the GitHub user; `/agentflow review` runs the review again', async () => {
    const { answer } = await slackCommand(
      `run architecture-migration repo=acme/shop-apps base=${repo.base} head=${repo.head}`,
      'trigger-2',
    );
    const execution = /execution `([^`]+)`/.exec(answer.text)?.[1] as string;
    const id = await waitFor(async () => {
      const list = (await (await api('/approvals')).json()) as { approvals: Array<{ id: string; execution: string }> };
      return list.approvals.find((a) => a.execution === execution)?.id;
    }, 'the approval');
    const comment = (text: string, login: string, association = 'MEMBER') =>
      JSON.stringify({
        action: 'created',
        issue: { number: 42, pull_request: { url: 'https://api.github.com/repos/acme/shop-apps/pulls/42' } },
        comment: { body: text, user: { login }, author_association: association },
        repository: { full_name: 'acme/shop-apps' },
      });
    const send = async (text: string, login: string, delivery: string, association?: string) => {
      const b = comment(text, login, association);
      const r = await fetch(`${url}/webhooks/github`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'issue_comment',
          'x-github-delivery': delivery,
          'x-hub-signature-256': await sign(SECRET, b),
        },
        body: b,
      });
      return {
        status: r.status,
        body: (await r.json()) as { outcome?: string; message?: string; executions?: Array<{ workflow: string; name: string }> },
      };
    };
    expect((await send(`/agentflow reject ${id}`, 'someone-else', 'c-1')).body.outcome).toBe('forbidden');
    expect((await send(`/agentflow reject ${id}`, 'octocat', 'c-2')).body.outcome).toBe('rejected');

    const review = await send('/agentflow review', 'octocat', 'c-3');
    expect(review.status).toBe(202);
    expect(review.body.executions?.map((e) => e.workflow)).toContain('pr-review');
    expect((await send('/agentflow review', 'drive-by', 'c-4', 'NONE')).body.outcome).toBe('forbidden');
  });
});
