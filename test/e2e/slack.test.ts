import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slackSignature, verifySlackSignature } from '../../lambdas/core/signatures.js';
import { APPROVE_ACTION, REJECT_ACTION } from '../../lambdas/core/slack.js';
import { type IngressDeps, routeIngress } from '../../lambdas/webhook/routes.js';
import { handleSlackCommand } from '../../lambdas/webhook/slack.js';
import type { ExampleRepo } from '../../lib/local/example-repo.js';
import type { LocalRuntime } from '../../lib/local/runtime.js';
import { localIngress } from '../../lib/local/server.js';
import type { Workflow } from '../../lib/workflow/index.js';
import { loadWorkspace, type Workspace } from '../../lib/workspace.js';
import { exampleRepo, LEAD, testRuntime, waitFor } from '../helpers.js';

const SIGNING = 'local-slack-signing-secret';
let repo: ExampleRepo;

/** Slack's documented request-signing example. Source: https://api.slack.com/authentication/verifying-requests-from-slack (2026-11) */
const EXAMPLE = {
  secret: '8f742231b10e8888abcd99yyyzzz85a5',
  timestamp: '1531420618',
  body: 'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
  signature: 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
};

function signed(body: string, at = Math.floor(Date.now() / 1000), secret = SIGNING) {
  return {
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(at),
      'x-slack-signature': slackSignature(secret, at, body),
    },
    body,
  };
}

const command = (text: string, user = LEAD, trigger = `trig-${Math.random().toString(36).slice(2)}`) =>
  new URLSearchParams({ command: '/agentflow', text, user_id: user, trigger_id: trigger, channel_id: 'C1' }).toString();

const click = (id: string, action: string, user = LEAD) =>
  new URLSearchParams({
    payload: JSON.stringify({
      type: 'block_actions',
      user: { id: user },
      actions: [{ action_id: action, value: id }],
      response_url: 'https://hooks.slack.com/actions/T/1/x',
    }),
  }).toString();

function withTimeout(ws: Workspace, seconds: number): Workspace {
  const wf = ws.workflows.get('architecture-migration') as Workflow;
  const phases = wf.phases.map((p) => (p.kind === 'approval' ? { ...p, timeoutSeconds: seconds, onTimeout: 'reject' as const } : p));
  return { ...ws, workflows: new Map([...ws.workflows, ['architecture-migration', { ...wf, phases }]]) };
}

const runtime = (workspace = loadWorkspace()) => testRuntime(repo, { workspace });
const pendingFor = async (rt: LocalRuntime, execution: string) =>
  (await waitFor(async () => (await rt.listApprovals()).find((x) => x.execution === execution), `the approval of ${execution}`)).id;

/** Starts architecture-migration through the Slack command and returns its execution name. */
async function runFromSlack(deps: IngressDeps): Promise<string> {
  const res = await routeIngress(
    '/webhooks/slack/commands',
    signed(command(`run architecture-migration repo=acme/shop-apps base=${repo.base} head=${repo.head}`)),
    deps,
  );
  const text = JSON.parse(res.body).text as string;
  const name = /execution `([^`]+)`/.exec(text)?.[1];
  if (!name) throw new Error(text);
  return name;
}

beforeAll(() => {
  repo = exampleRepo();
});

describe('Slack request verification', () => {
  it("Slack's documented signing example passes", async () => {
    expect(
      verifySlackSignature([EXAMPLE.secret], Buffer.from(EXAMPLE.body), EXAMPLE.timestamp, EXAMPLE.signature, Number(EXAMPLE.timestamp)),
    ).toBe(true);
    const res = await handleSlackCommand(
      {
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-slack-request-timestamp': EXAMPLE.timestamp,
          'x-slack-signature': EXAMPLE.signature,
        },
        body: EXAMPLE.body,
      },
      { signingSecrets: async () => [EXAMPLE.secret], now: () => Number(EXAMPLE.timestamp) * 1000 } as never,
    );
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ response_type: 'ephemeral' });
  });

  it('timestamps 600 s old and 600 s ahead are refused; an altered body is refused (opaque 401)', async () => {
    const deps = { signingSecrets: async () => [SIGNING] } as never;
    const now = Math.floor(Date.now() / 1000);
    for (const at of [now - 600, now + 600]) {
      const res = await handleSlackCommand(signed(command('help'), at), deps);
      expect(res.statusCode).toBe(401);
      expect(JSON.parse(res.body)).toEqual({ message: 'unauthorized' });
    }
    const ok = signed(command('help'));
    const altered = await handleSlackCommand({ ...ok, body: ok.body.replace('help', 'status') }, deps);
    expect(altered.statusCode).toBe(401);
    expect((await handleSlackCommand(signed(command('help'), now - 200), deps)).statusCode).toBe(200);
  });
});

describe('e2e: Slack routes on the local runtime', () => {
  let rt: LocalRuntime;
  let deps: IngressDeps;
  beforeAll(async () => {
    rt = await runtime();
    deps = localIngress(rt, { secret: 'gh', slackSigningSecret: SIGNING });
  });
  afterAll(async () => {
    await rt.stop();
  });

  it('/agentflow run starts a manual workflow and answers with an ephemeral message naming the execution; status shows it', async () => {
    const name = await runFromSlack(deps);
    expect(name).toMatch(/^slack-trig-.*-architecture-migration$/);
    const status = await routeIngress('/webhooks/slack/commands', signed(command(`status ${name}`)), deps);
    expect(JSON.parse(status.body)).toMatchObject({
      response_type: 'ephemeral',
      text: expect.stringMatching(new RegExp(`\`${name}\` \\(architecture-migration\\).*RUNNING`)),
    });
    await rt.decide(await pendingFor(rt, name), 'reject', { slack: LEAD });
    await rt.executions.get(name);
  });

  it('/agentflow run on two refs posts a message in the channel and the run’s outcome in its thread (no pull request to comment on)', async () => {
    const name = await runFromSlack(deps);
    await rt.decide(await pendingFor(rt, name), 'reject', { slack: LEAD });
    await rt.executions.get(name);
    const record = await rt.runs.get(name);
    expect(record).toMatchObject({ status: 'STOPPED', number: 0 });
    // The thread's first message names the execution; the outcome is the reply in its thread.
    const outbox = readFileSync(join(rt.options.stateDir, 'slack-outbox.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const started = outbox.find((m) => m.kind === 'thread' && String(m.text).includes(name));
    expect(started?.channel).toBe('C1');
    const replies = rt.notifier.replies.filter((r) => r.ts === started?.ts);
    expect(replies.map((r) => r.text)).toEqual([`STOPPED. ${record?.reason}`]);
  });

  it('an unknown workflow, a workflow without a manual trigger, a malformed command and a user outside run_by get helpful ephemeral errors', async () => {
    const say = async (text: string, user = LEAD) =>
      JSON.parse((await routeIngress('/webhooks/slack/commands', signed(command(text, user)), deps)).body).text as string;
    expect(await say('run nope repo=a/b')).toMatch(/There is no workflow `nope`\. Workflows you can run by hand: `architecture-migration`/);
    expect(await say('run pr-review repo=a/b')).toMatch(/is not started by hand/);
    expect(await say('run architecture-migration')).toMatch(/Which repository\? Add `repo=owner\/name`/);
    expect(await say('run architecture-migration repo=a/b pr')).toMatch(/`pr` is not key=value/);
    expect(await say('frobnicate')).toMatch(/Unknown command `frobnicate`/);
    expect(await say('run architecture-migration repo=acme/shop-apps', 'U0STRANGER')).toMatch(/You may not run `architecture-migration`/);
    // Only the two runs the tests above started: none of these commands started one.
    expect(rt.executions.size).toBe(2);
  });

  it('a replayed interaction has one effect', async () => {
    const name = await runFromSlack(deps);
    const id = await pendingFor(rt, name);
    const req = signed(click(id, APPROVE_ACTION));
    const first = await routeIngress('/webhooks/slack/interactions', req, deps);
    const replay = await routeIngress('/webhooks/slack/interactions', req, deps);
    expect(JSON.parse(first.body).outcome).toBe('approved');
    expect(JSON.parse(replay.body).outcome).toBe('already-decided');
    expect((await rt.executions.get(name))?.status).toBe('SUCCEEDED');
    expect((await rt.runs.get(name))?.status).toBe('SUCCEEDED');
  });

  it('a non-approver is refused and the token is untouched', async () => {
    const name = await runFromSlack(deps);
    const id = await pendingFor(rt, name);
    const before = await rt.approvals.get(id);
    const res = await routeIngress('/webhooks/slack/interactions', signed(click(id, APPROVE_ACTION, 'U0STRANGER')), deps);
    expect(JSON.parse(res.body)).toMatchObject({ outcome: 'forbidden', text: expect.stringContaining('is not an approver') });
    expect(await rt.approvals.get(id)).toEqual(before);
    expect((await rt.listApprovals()).map((a) => a.id)).toContain(id);
    await rt.decide(id, 'reject', { slack: LEAD });
    await rt.executions.get(name);
  });

  it('Approve and Reject clicked at the same moment: exactly one decision', async () => {
    const name = await runFromSlack(deps);
    const id = await pendingFor(rt, name);
    const [a, r] = await Promise.all([
      routeIngress('/webhooks/slack/interactions', signed(click(id, APPROVE_ACTION)), deps),
      routeIngress('/webhooks/slack/interactions', signed(click(id, REJECT_ACTION)), deps),
    ]);
    const outcomes = [JSON.parse(a.body).outcome, JSON.parse(r.body).outcome].sort();
    expect(outcomes.filter((o) => o === 'approved' || o === 'rejected')).toHaveLength(1);
    expect(outcomes).toContain('already-decided');
    expect((await rt.executions.get(name))?.status).toBe('SUCCEEDED');
  });
});

describe('e2e: a click after the timeout', () => {
  it('is told "expired"', async () => {
    const rt = await runtime(withTimeout(loadWorkspace(), 1));
    try {
      const deps = localIngress(rt, { secret: 'gh', slackSigningSecret: SIGNING });
      const name = await runFromSlack(deps);
      const id = await pendingFor(rt, name);
      await rt.executions.get(name);
      const res = await routeIngress('/webhooks/slack/interactions', signed(click(id, APPROVE_ACTION)), deps);
      expect(JSON.parse(res.body)).toMatchObject({ outcome: 'expired', text: expect.stringContaining('expired') });
      expect((await rt.runs.get(name))?.status).toBe('STOPPED');
      // The message now shows that the approval expired, without buttons.
      expect(rt.notifier.messages.get(id)?.text).toContain('Expired at');
    } finally {
      await rt.stop();
    }
  });
});
