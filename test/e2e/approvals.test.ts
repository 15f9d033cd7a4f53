import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../lambdas/core/contracts.js';
import { ApprovalUndeliverableError } from '../../lambdas/core/errors.js';
import { githubSignature } from '../../lambdas/core/signatures.js';
import { routeIngress } from '../../lambdas/webhook/routes.js';
import type { ExampleRepo } from '../../lib/local/example-repo.js';
import type { ExecutionResult, LocalRuntime } from '../../lib/local/runtime.js';
import { localIngress, startLocalServer } from '../../lib/local/server.js';
import type { GatePhase, Workflow } from '../../lib/workflow/index.js';
import { loadWorkspace, type Workspace } from '../../lib/workspace.js';
import { exampleInput, exampleRepo, LEAD, testRuntime, waitFor } from '../helpers.js';

const CI_SECRET = 'ci-callback-secret';
let repo: ExampleRepo;

/** The shipped workspace with the architecture-migration approval's timeouts replaced (seconds). */
function withGate(ws: Workspace, gate: Partial<GatePhase>): Workspace {
  const wf = ws.workflows.get('architecture-migration') as Workflow;
  const phases = wf.phases.map((p) => (p.kind === 'approval' ? { ...p, ...gate } : p));
  return { ...ws, workflows: new Map([...ws.workflows, ['architecture-migration', { ...wf, phases }]]) };
}

const runtime = (workspace: Workspace) => testRuntime(repo, { workspace });

/** Starts architecture-migration and waits until its approval is pending. */
async function startAndWait(rt: LocalRuntime, name: string): Promise<{ id: string; done: Promise<ExecutionResult> }> {
  const done = rt.startExecution('architecture-migration', name, exampleInput(repo, name, 'architecture-migration'));
  const pending = await waitFor(async () => (await rt.listApprovals()).find((a) => a.execution === name), `the approval of ${name}`);
  return { id: pending.id, done };
}

beforeAll(() => {
  repo = exampleRepo();
});

describe('e2e: approval gate on the local runtime (architecture-migration)', () => {
  let rt: LocalRuntime;
  beforeAll(async () => {
    rt = await runtime(loadWorkspace());
  });
  afterAll(async () => {
    await rt.stop();
  });

  it('waits for the approval, continues on Approve, and the documentation agent writes the ADR and migration guide', async () => {
    const { id, done } = await startAndWait(rt, 'mig-approve');
    expect(id).toMatch(/^[A-Za-z0-9_-]{16}$/);
    const message = rt.notifier.messages.get(id);
    // The buttons carry the approval id and nothing else (never the task token).
    expect(JSON.stringify(message?.blocks)).not.toContain('local-');
    const decision = await rt.decide(id, 'approve', { slack: LEAD });
    expect(decision.outcome).toBe('approved');
    const result = await done;
    expect(result.status).toBe('SUCCEEDED');
    const summary = result.output as RunSummary;
    expect(summary.agents.map((a) => [a.phase, a.name, a.status])).toEqual([
      ['architecture', 'architecture', 'succeeded'],
      ['migration-plan', 'migration-planning', 'succeeded'],
      ['impact', 'impact-analysis', 'succeeded'],
      ['documentation', 'architecture-docs', 'succeeded'],
    ]);
    expect(summary.agents.find((a) => a.name === 'migration-planning')?.provider).toBe('openai');
    expect(summary.gates.approve).toMatch(new RegExp(`^approved by <@${LEAD}> at `));
    const report = (await rt.artifacts.getJson(`runs/mig-approve/report.json`)) as {
      agents: Array<{ name: string; documentRef?: string }>;
    };
    const ref = report.agents.find((a) => a.name === 'architecture-docs')?.documentRef;
    const doc = await rt.artifacts.getText(ref as string);
    expect(doc).toContain('# ADR:');
    expect(doc).toContain('# Migration guide');
    // The Slack message now shows the outcome and who decided, without buttons.
    expect(rt.notifier.messages.get(id)?.updated).toBe(true);
    expect(rt.notifier.messages.get(id)?.text).toContain(`Approved by <@${LEAD}>`);
    expect(JSON.stringify(rt.notifier.messages.get(id)?.blocks)).not.toContain('button');
  });

  it('a replayed click has one effect: the second is told "already decided"', async () => {
    const { id, done } = await startAndWait(rt, 'mig-replay');
    expect((await rt.decide(id, 'approve', { slack: LEAD })).outcome).toBe('approved');
    const again = await rt.decide(id, 'approve', { slack: LEAD });
    expect(again.outcome).toBe('already-decided');
    expect(again.message).toContain('already decided');
    expect((await done).status).toBe('SUCCEEDED');
  });

  it('a non-approver is refused and the token is untouched: the approver can still decide', async () => {
    const { id, done } = await startAndWait(rt, 'mig-forbidden');
    const refused = await rt.decide(id, 'approve', { slack: 'U0NOTALEAD' });
    expect(refused.outcome).toBe('forbidden');
    expect((await rt.approvals.get(id))?.status).toBe('PENDING');
    expect((await rt.listApprovals()).map((a) => a.id)).toContain(id);
    expect((await rt.decide(id, 'reject', { user: { forge: 'github', name: 'octocat' } })).outcome).toBe('rejected');
    const result = await done;
    expect(result.status).toBe('SUCCEEDED');
    const record = await rt.runs.get('mig-forbidden');
    expect(record?.status).toBe('STOPPED');
    expect(record?.reason).toContain('Approval "approve" ended rejected');
  });

  it('Approve and Reject clicked at the same moment: exactly one decision', async () => {
    const { id, done } = await startAndWait(rt, 'mig-race');
    const results = await Promise.all([
      rt.decide(id, 'approve', { slack: LEAD }),
      rt.decide(id, 'reject', { slack: LEAD }),
      rt.decide(id, 'approve', { user: { forge: 'github', name: 'octocat' } }),
      rt.decide(id, 'reject', { user: { forge: 'github', name: 'octocat' } }),
    ]);
    const won = results.filter((r) => r.outcome === 'approved' || r.outcome === 'rejected');
    expect(won).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'already-decided')).toHaveLength(3);
    const result = await done;
    const record = await rt.runs.get('mig-race');
    expect(record?.status).toBe(won[0]?.outcome === 'approved' ? 'SUCCEEDED' : 'STOPPED');
    expect(result.status).toBe('SUCCEEDED');
  });
});

describe('e2e: approval timeouts', () => {
  it('on_timeout reject stops the run, and a click after the timeout is told "expired"', async () => {
    const rt = await runtime(withGate(loadWorkspace(), { timeoutSeconds: 1, onTimeout: 'reject' }));
    try {
      const { id, done } = await startAndWait(rt, 'mig-timeout');
      const result = await done;
      expect(result.status).toBe('SUCCEEDED');
      const record = await rt.runs.get('mig-timeout');
      expect(record?.reason).toContain('ended timeout');
      // The phases before the gate were paid for: the STOPPED record says what, to the micro-dollar of the ledger.
      const spent = (await rt.ledger.get('run#mig-timeout'))?.spentMicro ?? 0;
      expect(spent).toBeGreaterThan(0);
      expect(record?.costUsd).toBe(spent / 1e6);
      // The timeout path marked the request expired and updated its message, before anyone clicked.
      expect((await rt.approvals.get(id))?.status).toBe('EXPIRED');
      expect(rt.notifier.messages.get(id)?.text).toContain('Expired at');
      const late = await rt.decide(id, 'approve', { slack: LEAD });
      expect(late.outcome).toBe('expired');
      expect(late.message).toContain('expired');
      expect(await rt.listApprovals()).toEqual([]);
      // The gate's timeout gave the execution's place back exactly once: none is held or owed now.
      expect(rt.placesTaken).toBe(0);
    } finally {
      await rt.stop();
    }
  });

  it('stops the run with what to fix when Slack will not post the request (not_in_channel), instead of failing it', async () => {
    const rt = await runtime(loadWorkspace());
    try {
      rt.notifier.request = async (r) => {
        throw new ApprovalUndeliverableError(`Slack will not post the approval request to ${r.channel} (not_in_channel): invite the app`);
      };
      const result = await rt.execute(
        'architecture-migration',
        'mig-undelivered',
        exampleInput(repo, 'mig-undelivered', 'architecture-migration'),
      );
      expect(result.status).toBe('SUCCEEDED');
      const record = await rt.runs.get('mig-undelivered');
      expect(record?.status).toBe('STOPPED');
      expect(record?.reason).toMatch(
        /^Approval "approve" could not be requested: Slack will not post to #\S+ \(not_in_channel, channel_not_found or is_archived\)\. Invite the AgentFlow app/,
      );
      expect(await rt.listApprovals()).toEqual([]);
      // The gate's timeout gave the execution's place back once: none is held now.
      expect(rt.placesTaken).toBe(0);
    } finally {
      await rt.stop();
    }
  });

  it('on_timeout escalate asks the escalation channel, whose approval continues the run', async () => {
    const rt = await runtime(
      withGate(loadWorkspace(), {
        timeoutSeconds: 1,
        onTimeout: 'escalate',
        escalate: { channel: '#eng-managers', approvers: [LEAD], timeoutSeconds: 30 },
      }),
    );
    try {
      const first = await startAndWait(rt, 'mig-escalate');
      const second = (
        await waitFor(
          async () => (await rt.listApprovals()).find((a) => a.execution === 'mig-escalate' && a.id !== first.id),
          'the escalation',
        )
      ).id;
      expect(rt.notifier.messages.get(second as string)?.channel).toBe('#eng-managers');
      expect(rt.notifier.messages.get(first.id)?.text).toContain('Expired at');
      expect((await rt.decide(second as string, 'approve', { slack: LEAD })).outcome).toBe('approved');
      const result = await first.done;
      expect(result.status).toBe('SUCCEEDED');
      expect((result.output as RunSummary).gates.approve).toMatch(/^approved by/);
    } finally {
      await rt.stop();
    }
  });

  it('on_timeout approve continues without a decision', async () => {
    const rt = await runtime(withGate(loadWorkspace(), { timeoutSeconds: 1, onTimeout: 'approve' }));
    try {
      const { done } = await startAndWait(rt, 'mig-auto');
      const result = await done;
      expect(result.status).toBe('SUCCEEDED');
      expect((result.output as RunSummary).gates.approve).toBe('timeout');
      expect((await rt.runs.get('mig-auto'))?.status).toBe('SUCCEEDED');
    } finally {
      await rt.stop();
    }
  });
});

describe('e2e: test-generation waits for CI through the signed /webhooks/ci route', () => {
  it('runs analysis → generation → review, waits for CI, and continues with the report; a forged report is refused', async () => {
    const printed: string[] = [];
    const rt = await testRuntime(repo, { workspace: loadWorkspace(), print: (l) => printed.push(l) });
    rt.notifier.ciCallback = { url: 'http://127.0.0.1:8787/webhooks/ci', secret: CI_SECRET };
    try {
      const deps = localIngress(rt, { secret: 'gh', ciSecret: CI_SECRET });
      const input = exampleInput(repo, 'tg-1', 'test-generation');
      input.change.testCoverage = 62.5;
      const done = rt.startExecution('test-generation', 'tg-1', input);
      const pending = await waitFor(async () => (await rt.listApprovals()).find((a) => a.execution === 'tg-1'), 'the CI gate');
      expect(pending).toMatchObject({ kind: 'ci', phase: 'execution' });
      // The generated tests were committed to a branch of the local repository; the gate waits on that commit.
      const branch = `agentflow/tests/42-${repo.head.slice(0, 7)}`;
      const generated = execFileSync('git', ['-C', repo.path, 'rev-parse', `refs/heads/${branch}`], { encoding: 'utf8' }).trim();
      expect(execFileSync('git', ['-C', repo.path, 'rev-parse', `${generated}^`], { encoding: 'utf8' }).trim()).toBe(repo.head);
      const added = execFileSync('git', ['-C', repo.path, 'diff', '--name-only', repo.head, generated], { encoding: 'utf8' })
        .trim()
        .split('\n');
      expect(added.length).toBeGreaterThan(0);
      expect(added.every((p) => /Tests?\.(swift|kt)$/.test(p))).toBe(true);
      // The gate says where CI reports, on which commit, and the secret it signs with.
      expect(printed.join('\n')).toContain(
        `waiting for CI to report on ${generated.slice(0, 12)}: POST http://127.0.0.1:8787/webhooks/ci {"repository":"acme/shop-apps","sha":"${generated}"`,
      );
      expect(printed.join('\n')).toContain(`key "${CI_SECRET}"`);
      const headers = (body: string, secret = CI_SECRET) => ({
        'content-type': 'application/json',
        'x-agentflow-signature-256': githubSignature(secret, body),
      });
      // A report for the pull request's own head does not complete the gate.
      const onHead = JSON.stringify({ repository: 'acme/shop-apps', sha: repo.head, conclusion: 'success' });
      expect((await routeIngress('/webhooks/ci', { headers: headers(onHead), body: onHead }, deps)).statusCode).toBe(404);
      expect((await rt.listApprovals()).find((a) => a.execution === 'tg-1')?.id).toBe(pending.id);
      const report = JSON.stringify({
        repository: 'acme/shop-apps',
        sha: generated,
        conclusion: 'success',
        summary: '14 generated tests passed',
        coverage: 81.2,
      });
      expect((await routeIngress('/webhooks/ci', { headers: headers(report, 'forged'), body: report }, deps)).statusCode).toBe(401);
      const ok = await routeIngress('/webhooks/ci', { headers: headers(report), body: report }, deps);
      expect(ok.statusCode).toBe(200);
      const result = await done;
      expect(result.status).toBe('SUCCEEDED');
      const summary = result.output as RunSummary;
      expect(summary.agents.map((a) => a.phase)).toEqual(['analysis', 'generation', 'review']);
      expect(summary.gates.execution).toMatch(/^approved by CI at .* \(CI success\)$/);
      expect(summary.files).toMatchObject({ sha: generated, branch, refused: [] });
      expect([...(summary.files?.committed ?? [])].sort()).toEqual([...added].sort());
      expect((await rt.runs.get('tg-1'))?.files?.sha).toBe(generated);
      // A second report for the same commit finds no waiting gate.
      expect((await routeIngress('/webhooks/ci', { headers: headers(report), body: report }, deps)).statusCode).toBe(404);
    } finally {
      await rt.stop();
    }
  });
});

describe('e2e: POST /approvals/<id> on the local server', () => {
  /** A request through node:http, which sends the `Host` header it is given. */
  const call = (url: string, path: string, headers: Record<string, string>, body?: string) =>
    new Promise<{ status: number; body: string }>((ok, fail) => {
      const req = request(`${url}${path}`, { method: body === undefined ? 'GET' : 'POST', headers }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () => ok({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', fail);
      req.end(body);
    });

  it('decides for the token holder with any loopback Host and a JSON content type with charset; refuses a wrong token, a bad body and an Origin', async () => {
    // Prepare
    const rt = await runtime(loadWorkspace());
    const server = await startLocalServer({ runtime: rt, secret: 'gh', token: 'local-api-test-token' });
    try {
      const port = new URL(server.url).port;
      const { id, done } = await startAndWait(rt, 'mig-local-api');
      const auth = { authorization: 'Bearer local-api-test-token' };
      const json = { ...auth, 'content-type': 'application/json; charset=utf-8' };
      const body = JSON.stringify({ decision: 'approve', as: LEAD });

      // Act
      const health = await call(server.url, '/health', { host: `localhost:${port}` });
      const wrongToken = await call(server.url, `/approvals/${id}`, { ...json, authorization: 'Bearer local-api-test-tokeN' }, body);
      const lowerCaseScheme = await call(server.url, '/approvals', { authorization: 'bearer local-api-test-token', host: `[::1]:${port}` });
      const otherPort = await call(server.url, '/approvals', { ...auth, host: `127.0.0.1:${Number(port) + 1}` });
      const fromPage = await call(server.url, '/approvals', { ...auth, origin: `http://127.0.0.1:${port}` });
      const notJson = await call(server.url, `/approvals/${id}`, json, '{"decision":');
      const pending = (await rt.approvals.get(id))?.status;
      const decided = await call(server.url, `/approvals/${id}`, { ...json, host: `localhost:${port}` }, body);

      // Assess
      expect(health.status).toBe(200);
      expect(wrongToken.status).toBe(401);
      expect(lowerCaseScheme.status).toBe(200);
      expect(otherPort.status).toBe(403);
      expect(fromPage.status).toBe(403);
      expect(JSON.parse(fromPage.body)).toEqual({ message: expect.stringContaining('Origin') });
      expect(notJson.status).toBe(400);
      expect(pending).toBe('PENDING');
      expect(decided.status).toBe(200);
      expect(JSON.parse(decided.body)).toMatchObject({ outcome: 'approved' });
      expect((await done).status).toBe('SUCCEEDED');
    } finally {
      await server.close();
      await rt.stop();
    }
  });
});
