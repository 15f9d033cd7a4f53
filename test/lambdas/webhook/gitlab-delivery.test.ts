import { readFileSync } from 'node:fs';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoApprovalStore } from '../../../lambdas/adapters/approvals.js';
import { PowertoolsDeliveryGuard } from '../../../lambdas/adapters/delivery-guard.js';
import type { ApprovalRecord, DecideDeps } from '../../../lambdas/core/approvals.js';
import type { Change } from '../../../lambdas/core/contracts.js';
import type { DeliveryGuard, ExecutionStarter } from '../../../lambdas/core/ports.js';
import { githubSignature } from '../../../lambdas/core/signatures.js';
import type { WorkflowTrigger } from '../../../lambdas/core/triggers.js';
import { handleGithubDelivery } from '../../../lambdas/webhook/github-delivery.js';
import { type GitlabDeliveryDeps, handleGitlabDelivery } from '../../../lambdas/webhook/gitlab-delivery.js';
import { routeIngress } from '../../../lambdas/webhook/routes.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../../../lib/local/runtime.js';

const TOKEN = 'gitlab-webhook-token';
const OLD_TOKEN = 'the token before the rotation';

let table: LocalTable;
beforeAll(async () => {
  table = await startLocalTable();
});
afterAll(async () => {
  await table.stop();
});

/** A fixture recorded from GitLab's documentation (see test/fixtures/gitlab/README.md), as an object to adapt. */
type Fixture = { object_attributes: Record<string, unknown>; user: Record<string, unknown> } & Record<string, unknown>;
const fixture = (name: string): Fixture => JSON.parse(readFileSync(new URL(`../../fixtures/gitlab/${name}.json`, import.meta.url), 'utf8'));
const raw = (name: string) => readFileSync(new URL(`../../fixtures/gitlab/${name}.json`, import.meta.url), 'utf8');

/** The merge request fixture with `object_attributes` fields replaced. */
function mergeRequest(name: string, attributes: Record<string, unknown> = {}, top: Record<string, unknown> = {}): string {
  const e = fixture(name);
  Object.assign(e.object_attributes, attributes);
  return JSON.stringify({ ...e, ...top });
}

/** GitLab's merge request note example with `note` as its text. */
function note(text: string, attributes: Record<string, unknown> = {}): string {
  const e = fixture('note-merge-request');
  Object.assign(e.object_attributes, { note: text, ...attributes });
  return JSON.stringify(e);
}

/** A starter that records every StartExecution call (it does not de-duplicate: the guard must). */
function recorder(options: { delayMs?: number } = {}) {
  const calls: Array<{ workflow: string; name: string; input: { change: Change; skip?: string } }> = [];
  const starter: ExecutionStarter = {
    start: async (workflow, name, input) => {
      await new Promise((r) => setTimeout(r, options.delayMs ?? 0));
      calls.push({ workflow, name, input: input as { change: Change; skip?: string } });
      return { name, started: true };
    },
  };
  return { calls, starter };
}

const BASE = 'b'.repeat(40);
const START = 'a'.repeat(40);

const workflows: WorkflowTrigger[] = [
  { id: 'mr-review', events: ['merge_request.open', 'merge_request.reopen', 'merge_request.update'] },
  { id: 'gh-only', events: ['pull_request.opened'] },
];

let seq = 0;
const newUuid = () => `13792a34-cac6-4fda-95a8-${String(++seq).padStart(12, '0')}`;

let scopes = 0;
/**
 * The delivery guard on the shared table, its keys scoped to one test's deps: the fixtures are the
 * same merge request event, whose delivery key (project, iid, action, head) would repeat across tests.
 */
function scopedGuard(): DeliveryGuard {
  const inner = new PowertoolsDeliveryGuard({ client: table.client, table: LOCAL_TABLE });
  const scope = `t${++scopes}`;
  return {
    once: (key, work, remainingMs) => inner.once(`${scope}:${key}`, work, remainingMs),
    forget: (matches) => inner.forget(matches),
  };
}

function deps(starter: ExecutionStarter, over: Partial<GitlabDeliveryDeps> = {}) {
  const refsCalls: Array<[string, number, { headSha: string; targetBranch: string }]> = [];
  const d: GitlabDeliveryDeps = {
    secrets: async () => [TOKEN, OLD_TOKEN],
    workflows,
    starter,
    guard: scopedGuard(),
    refs: async (project, iid, hint) => {
      refsCalls.push([project, iid, hint]);
      return { baseSha: BASE, startSha: START, headSha: hint.headSha };
    },
    mayReview: async () => true,
    mergeRequest: async () => {
      throw new Error('not used by this test');
    },
    ...over,
  };
  return Object.assign(d, { refsCalls });
}

const headers = (uuid: string, extra: Record<string, string | undefined> = {}) => ({
  'content-type': 'application/json',
  'x-gitlab-event': 'Merge Request Hook',
  'x-gitlab-event-uuid': uuid,
  'x-gitlab-token': TOKEN,
  ...extra,
});

const tableItems = async () => (await table.doc.send(new ScanCommand({ TableName: LOCAL_TABLE }))).Items?.length ?? 0;

describe('Function: handleGitlabDelivery (request checks)', () => {
  const body = raw('merge-request-open');
  const cases: Array<[string, () => { body: string; headers: Record<string, string | undefined> }, number]> = [
    ['wrong token', () => ({ body, headers: headers(newUuid(), { 'x-gitlab-token': 'wrong' }) }), 401],
    ['missing token', () => ({ body, headers: headers(newUuid(), { 'x-gitlab-token': undefined }) }), 401],
    ['token with a prefix of the secret', () => ({ body, headers: headers(newUuid(), { 'x-gitlab-token': TOKEN.slice(0, 10) }) }), 401],
    ['missing X-Gitlab-Event-UUID', () => ({ body, headers: headers(newUuid(), { 'x-gitlab-event-uuid': undefined }) }), 400],
    ['missing X-Gitlab-Event', () => ({ body, headers: headers(newUuid(), { 'x-gitlab-event': undefined }) }), 400],
    ['wrong content type', () => ({ body, headers: headers(newUuid(), { 'content-type': 'application/x-www-form-urlencoded' }) }), 415],
    ['oversized body', () => ({ body: 'x'.repeat(5 * 1024 * 1024 + 1), headers: headers(newUuid()) }), 413],
  ];
  it.each(cases)(
    '%s: the right status and no side effect (no StartExecution, no guard write, no refs lookup)',
    async (_n, make, status) => {
      // Prepare
      const rec = recorder();
      const d = deps(rec.starter);
      const before = await tableItems();
      const { body: b, headers: h } = make();

      // Act
      const res = await handleGitlabDelivery({ headers: h, body: b }, d);

      // Assess
      expect(res.statusCode).toBe(status);
      expect(rec.calls).toEqual([]);
      expect(d.refsCalls).toEqual([]);
      expect(await tableItems()).toBe(before);
      if (status === 401) expect(JSON.parse(res.body)).toEqual({ message: 'unauthorized' });
      expect(res.body).not.toContain(TOKEN);
    },
  );

  it('accepts the previous token during a rotation', async () => {
    const rec = recorder();
    const res = await handleGitlabDelivery({ headers: headers(newUuid(), { 'x-gitlab-token': OLD_TOKEN }), body }, deps(rec.starter));
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => c.workflow)).toEqual(['mr-review']);
  });

  it('ignores an event no route uses with 200 (after the token check)', async () => {
    const rec = recorder();
    const push = '{"object_kind":"push"}';
    const res = await handleGitlabDelivery(
      { headers: headers(newUuid(), { 'x-gitlab-event': 'Push Hook' }), body: push },
      deps(rec.starter),
    );
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body).message).toContain('ignored');
    expect(rec.calls).toEqual([]);
  });

  it('refuses a body that is not a merge request event with 400', async () => {
    const rec = recorder();
    const res = await handleGitlabDelivery({ headers: headers(newUuid()), body: '{"object_kind":"merge_request"}' }, deps(rec.starter));
    expect(res.statusCode).toBe(400);
    expect(rec.calls).toEqual([]);
  });

  it('answers 503 naming what to configure when the route has no deps', async () => {
    const res = await routeIngress('/webhooks/gitlab', { headers: headers(newUuid()), body }, { github: {} as never });
    expect(res.statusCode).toBe(503);
    expect(JSON.parse(res.body).message).toBe('GitLab (webhook secret) is not configured');
  });
});

describe('Function: handleGitlabDelivery (merge request events)', () => {
  it("starts GitLab's documented open example with the change: forge gitlab, the SHAs of the refs lookup, ids only", async () => {
    // Prepare
    const rec = recorder();
    const d = deps(rec.starter);
    const uuid = newUuid();

    // Act
    const res = await handleGitlabDelivery({ headers: headers(uuid), body: raw('merge-request-open') }, d);

    // Assess
    expect(res.statusCode).toBe(202);
    expect(d.refsCalls).toEqual([
      ['gitlabhq/gitlab-test', 1, { headSha: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7', targetBranch: 'master' }],
    ]);
    expect(rec.calls.map((c) => [c.workflow, c.name])).toEqual([['mr-review', `gl-1-1-open-da1560886d4f-mr-review`]]);
    expect(rec.calls[0]?.input).toEqual({
      runId: `gl-1-1-open-da1560886d4f-mr-review`,
      workflow: 'mr-review',
      change: {
        forge: 'gitlab',
        repository: 'gitlabhq/gitlab-test',
        number: 1,
        title: 'MS-Viewport',
        author: 'root',
        url: 'http://example.com/diaspora/merge_requests/1',
        action: 'open',
        baseSha: BASE,
        startSha: START,
        headSha: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
        baseRef: 'master',
        headRef: 'ms-viewport',
        fork: false,
      },
    });
  });

  it('marks a merge request from another project as a fork', async () => {
    const rec = recorder();
    const body = mergeRequest('merge-request-open', { source_project_id: 99 });
    const res = await handleGitlabDelivery({ headers: headers(newUuid()), body }, deps(rec.starter));
    expect(res.statusCode).toBe(202);
    expect(rec.calls[0]?.input.change.fork).toBe(true);
  });

  it('starts an update that brought new commits (oldrev) at its new head', async () => {
    const rec = recorder();
    const res = await handleGitlabDelivery({ headers: headers(newUuid()), body: raw('merge-request-update') }, deps(rec.starter));
    expect(res.statusCode).toBe(202);
    expect(rec.calls[0]?.input.change).toMatchObject({ action: 'update', headSha: 'f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d' });
  });

  it('starts nothing for a title and label edit (an update without oldrev), saying why', async () => {
    const rec = recorder();
    const d = deps(rec.starter);
    const res = await handleGitlabDelivery({ headers: headers(newUuid()), body: raw('merge-request-update-title') }, d);
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body).message).toContain('no new commits');
    expect(rec.calls).toEqual([]);
    expect(d.refsCalls).toEqual([]);
  });

  it('starts change.ready workflows when a draft is marked ready (an update whose changes.draft goes true → false)', async () => {
    const rec = recorder();
    const d = deps(rec.starter, { workflows: [...workflows, { id: 'neutral', events: ['change.opened', 'change.ready'] }] });
    const ready = { action: 'update', draft: false, work_in_progress: false };
    const body = mergeRequest('merge-request-update-title', ready, { changes: { draft: { previous: true, current: false } } });
    const res = await handleGitlabDelivery({ headers: headers(newUuid()), body }, d);
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => c.workflow)).toEqual(['neutral']);
    // Marked draft again: an edit, nothing starts.
    const back = mergeRequest('merge-request-update-title', ready, { changes: { draft: { previous: false, current: true } } });
    const again = await handleGitlabDelivery({ headers: headers(newUuid()), body: back }, d);
    expect(again.statusCode).toBe(200);
    expect(rec.calls).toHaveLength(1);
  });

  it("judges the merge request's author, not whoever pushed: a bot's push to a person's merge request is reviewed", async () => {
    const rec = recorder();
    const d = deps(rec.starter, {
      refs: async (_p, _i, hint) => ({ baseSha: BASE, startSha: START, headSha: hint.headSha, author: 'alice' }),
    });
    const bot = { id: 4242, username: 'project_15_bot_3f2a9c', name: 'Renovate token' };
    const body = mergeRequest('merge-request-update', { author_id: 7 }, { user: bot });
    const res = await handleGitlabDelivery({ headers: headers(newUuid()), body }, d);
    expect(res.statusCode).toBe(202);
    expect(rec.calls[0]?.input.skip).toBeUndefined();
    expect(rec.calls[0]?.input.change.author).toBe('alice');
  });

  it('starts a reopened merge request', async () => {
    const rec = recorder();
    const body = mergeRequest('merge-request-open', { action: 'reopen' });
    const res = await handleGitlabDelivery({ headers: headers(newUuid()), body }, deps(rec.starter));
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => c.workflow)).toEqual(['mr-review']);
  });

  it('ignores an action no workflow names (merge) with 200', async () => {
    const rec = recorder();
    const body = mergeRequest('merge-request-open', { action: 'merge' });
    const res = await handleGitlabDelivery({ headers: headers(newUuid()), body }, deps(rec.starter));
    expect(res.statusCode).toBe(200);
    expect(rec.calls).toEqual([]);
  });

  it('starts a draft merge request with skip set to the reason, so it leaves a SKIPPED run', async () => {
    const rec = recorder();
    const body = mergeRequest('merge-request-open', { draft: true });
    const res = await handleGitlabDelivery({ headers: headers(newUuid()), body }, deps(rec.starter));
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => [c.workflow, c.input.skip])).toEqual([['mr-review', 'draft merge request']]);
  });

  it("skips a project access token's bot user and a filtered target branch", async () => {
    const rec = recorder();
    const filtered: WorkflowTrigger[] = [
      { id: 'mr-review', events: ['merge_request.open'] },
      { id: 'release', events: ['merge_request.open'], skipBots: false, branches: { include: ['release/**'], exclude: [] } },
    ];
    const bot = fixture('merge-request-open');
    bot.user.username = 'project_14_bot_4ffca233d8298ea1';
    const res = await handleGitlabDelivery(
      { headers: headers(newUuid()), body: JSON.stringify(bot) },
      deps(rec.starter, { workflows: filtered }),
    );
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => [c.workflow, c.input.skip])).toEqual([
      ['mr-review', 'author project_14_bot_4ffca233d8298ea1 is a bot'],
      ['release', 'base branch master is not in branches.include (release/**)'],
    ]);
  });

  it('the same delivery twice in a row: one execution, the second answer a 200 duplicate', async () => {
    const rec = recorder();
    const d = deps(rec.starter);
    const uuid = newUuid();
    const body = raw('merge-request-open');
    const first = await handleGitlabDelivery({ headers: headers(uuid), body }, d);
    const second = await handleGitlabDelivery({ headers: headers(uuid), body }, d);
    expect(first.statusCode).toBe(202);
    expect(second.statusCode).toBe(200);
    expect(JSON.parse(second.body)).toMatchObject({ duplicate: true, executions: [{ name: `gl-1-1-open-da1560886d4f-mr-review` }] });
    expect(rec.calls).toHaveLength(1);
  });

  it('a resend from GitLab (a new X-Gitlab-Event-UUID for the same event) starts nothing new', async () => {
    const rec = recorder();
    const d = deps(rec.starter);
    const body = raw('merge-request-open');
    expect((await handleGitlabDelivery({ headers: headers(newUuid()), body }, d)).statusCode).toBe(202);
    const resent = await handleGitlabDelivery({ headers: headers(newUuid()), body }, d);
    expect(resent.statusCode).toBe(200);
    expect(JSON.parse(resent.body).duplicate).toBe(true);
    expect(rec.calls).toHaveLength(1);
  });

  it('one push updating two merge requests (GitLab sends both with the same X-Gitlab-Event-UUID): both start', async () => {
    const rec = recorder();
    const d = deps(rec.starter);
    const uuid = newUuid();
    for (const iid of [1, 2]) {
      const res = await handleGitlabDelivery({ headers: headers(uuid), body: mergeRequest('merge-request-update', { iid }) }, d);
      expect(res.statusCode).toBe(202);
    }
    expect(rec.calls.map((c) => c.input.change.number)).toEqual([1, 2]);
    expect(new Set(rec.calls.map((c) => c.name)).size).toBe(2);
  });

  it('the same delivery twice at once (two instances): one execution', async () => {
    const rec = recorder({ delayMs: 150 });
    const uuid = newUuid();
    const body = raw('merge-request-open');
    const guard = scopedGuard();
    const results = await Promise.all([
      handleGitlabDelivery({ headers: headers(uuid), body }, deps(rec.starter, { guard })),
      handleGitlabDelivery({ headers: headers(uuid), body }, deps(rec.starter, { guard })),
    ]);
    expect(rec.calls).toHaveLength(1);
    expect(results.filter((r) => JSON.parse(r.body).duplicate === true)).toHaveLength(1);
  });

  it('answers 503 and starts nothing when the refs lookup fails, so a redelivery starts it', async () => {
    // Prepare
    const rec = recorder();
    const uuid = newUuid();
    const body = raw('merge-request-open');
    const failing = deps(rec.starter, {
      refs: async () => {
        throw new Error('GitLab API 502');
      },
    });
    const before = await tableItems();

    // Act
    const failed = await handleGitlabDelivery({ headers: headers(uuid), body }, failing);
    const afterFailure = await tableItems();
    const redelivered = await handleGitlabDelivery({ headers: headers(uuid), body }, deps(rec.starter));

    // Assess
    expect(failed.statusCode).toBe(503);
    expect(failed.body).not.toContain('502');
    expect(afterFailure).toBe(before);
    expect(redelivered.statusCode).toBe(202);
    expect(rec.calls).toHaveLength(1);
  });
});

describe('Function: handleGitlabDelivery and handleGithubDelivery (forge-neutral events)', () => {
  const neutral: WorkflowTrigger[] = [
    { id: 'opened', events: ['change.opened'] },
    { id: 'updated', events: ['change.updated'] },
  ];

  it('starts change.opened workflows for a GitLab open and a GitHub pull_request.opened', async () => {
    // Prepare
    const gitlab = recorder();
    const github = recorder();
    const prBody = JSON.stringify({
      action: 'opened',
      number: 7,
      pull_request: {
        title: 'T',
        html_url: 'https://github.com/acme/app/pull/7',
        user: { login: 'dev' },
        base: { sha: BASE, ref: 'main' },
        head: { sha: 'c'.repeat(40), ref: 'feature' },
      },
      repository: { full_name: 'acme/app' },
    });
    const githubDeps = {
      secrets: async () => ['gh-secret'],
      workflows: neutral,
      starter: github.starter,
      guard: new PowertoolsDeliveryGuard({ client: table.client, table: LOCAL_TABLE }),
    };

    // Act
    const gl = await handleGitlabDelivery(
      { headers: headers(newUuid()), body: raw('merge-request-open') },
      deps(gitlab.starter, { workflows: neutral }),
    );
    const gh = await handleGithubDelivery(
      {
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'pull_request',
          'x-github-delivery': newUuid(),
          'x-hub-signature-256': githubSignature('gh-secret', prBody),
        },
        body: prBody,
      },
      githubDeps,
    );

    // Assess
    expect([gl.statusCode, gh.statusCode]).toEqual([202, 202]);
    expect(gitlab.calls.map((c) => [c.workflow, c.input.change.forge])).toEqual([['opened', 'gitlab']]);
    expect(github.calls.map((c) => [c.workflow, c.input.change.forge])).toEqual([['opened', 'github']]);
  });

  it('starts change.updated workflows for a GitLab update with new commits', async () => {
    const rec = recorder();
    const res = await handleGitlabDelivery(
      { headers: headers(newUuid()), body: raw('merge-request-update') },
      deps(rec.starter, { workflows: neutral }),
    );
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => c.workflow)).toEqual(['updated']);
  });
});

describe('Function: handleGitlabDelivery (/agentflow commands in merge request notes)', () => {
  const noteHeaders = (uuid: string) => headers(uuid, { 'x-gitlab-event': 'Note Hook' });
  const reviewed: Change = {
    forge: 'gitlab',
    repository: 'gitlab-org/gitlab-test',
    number: 1,
    title: 'Tempora et eos debitis quae laborum et.',
    author: 'project_5_bot_1a2b3c',
    url: '',
    action: 'update',
    baseSha: BASE,
    startSha: START,
    headSha: '562e173be03b8ff2efb05345d12df18815438a4b',
    baseRef: 'markdown',
    headRef: 'master',
    fork: false,
  };

  async function approvalDeps(approver: { forge: 'github' | 'gitlab'; name: string }) {
    const store = new DynamoApprovalStore(table.doc, LOCAL_TABLE);
    const id = `gl-approval-${++seq}`;
    const record: ApprovalRecord = {
      id,
      kind: 'approval',
      taskToken: 'token',
      workflow: 'mr-review',
      execution: 'exec-1',
      phase: 'release',
      channel: 'C1',
      approvers: { slack: [], users: [approver], groups: [] },
      status: 'PENDING',
      createdAt: new Date().toISOString(),
      deadline: new Date(Date.now() + 3_600_000).toISOString(),
      repository: 'gitlab-org/gitlab-test',
      number: 1,
      headSha: '562e173be03b8ff2efb05345d12df18815438a4b',
      title: '',
      escalation: false,
    };
    await store.create(record);
    const told: string[] = [];
    const approvals: DecideDeps = {
      approvals: store,
      callbacks: {
        succeed: async (token) => {
          told.push(`succeed ${token}`);
        },
        fail: async (token) => {
          told.push(`fail ${token}`);
        },
      },
      notifier: { decided: async () => undefined } as never,
    };
    return { id, approvals, told };
  }

  it("approves as the note's GitLab user", async () => {
    const { id, approvals, told } = await approvalDeps({ forge: 'gitlab', name: 'root' });
    const rec = recorder();
    const res = await handleGitlabDelivery(
      { headers: noteHeaders(newUuid()), body: note(`/agentflow approve ${id}`) },
      deps(rec.starter, { approvals }),
    );
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body).outcome).toBe('approved');
    expect(told).toEqual(['succeed token']);
  });

  it('rejects as the GitLab user, and a GitHub login of the same name may not decide', async () => {
    const gitlab = await approvalDeps({ forge: 'gitlab', name: 'root' });
    const rejected = await handleGitlabDelivery(
      { headers: noteHeaders(newUuid()), body: note(`/agentflow reject ${gitlab.id}`) },
      deps(recorder().starter, { approvals: gitlab.approvals }),
    );
    expect(JSON.parse(rejected.body).outcome).toBe('rejected');
    const github = await approvalDeps({ forge: 'github', name: 'root' });
    const forbidden = await handleGitlabDelivery(
      { headers: noteHeaders(newUuid()), body: note(`/agentflow approve ${github.id}`) },
      deps(recorder().starter, { approvals: github.approvals }),
    );
    expect(JSON.parse(forbidden.body).outcome).toBe('forbidden');
  });

  it('starts the update workflows again for a Developer asking for a review, without filters (a bot author is reviewed)', async () => {
    // Prepare
    const rec = recorder();
    const asked: unknown[] = [];
    const d = deps(rec.starter, {
      mayReview: async (...args) => {
        asked.push(args);
        return true;
      },
      mergeRequest: async (project, iid) => {
        asked.push([project, iid]);
        return reviewed;
      },
    });

    // Act
    const res = await handleGitlabDelivery({ headers: noteHeaders(newUuid()), body: note('/agentflow review --full') }, d);

    // Assess
    expect(res.statusCode).toBe(202);
    expect(asked).toEqual([
      ['gitlab-org/gitlab-test', 1, 'root'],
      ['gitlab-org/gitlab-test', 1],
    ]);
    expect(rec.calls.map((c) => [c.workflow, c.input.skip, c.input.change.action, c.input.change.fullReview])).toEqual([
      ['mr-review', undefined, 'review', true],
    ]);
  });

  it('refuses a review asked by a user without Developer access, and answers 503 when access cannot be checked', async () => {
    const rec = recorder();
    const refused = await handleGitlabDelivery(
      { headers: noteHeaders(newUuid()), body: note('/agentflow review') },
      deps(rec.starter, { mayReview: async () => false }),
    );
    expect(refused.statusCode).toBe(200);
    expect(JSON.parse(refused.body).outcome).toBe('forbidden');
    const failing = await handleGitlabDelivery(
      { headers: noteHeaders(newUuid()), body: note('/agentflow review') },
      deps(rec.starter, {
        mayReview: async () => {
          throw new Error('GitLab API 500');
        },
      }),
    );
    expect(failing.statusCode).toBe(503);
    expect(rec.calls).toEqual([]);
  });

  it('answers a dismissal that the next review reads it, and anything else with the usage', async () => {
    const rec = recorder();
    const dismissed = await handleGitlabDelivery(
      { headers: noteHeaders(newUuid()), body: note('/agentflow dismiss 3 false positive') },
      deps(rec.starter),
    );
    expect(JSON.parse(dismissed.body).message).toBe('recorded by the next review');
    const mention = await handleGitlabDelivery(
      { headers: noteHeaders(newUuid()), body: note('@agentflow dismiss not reachable') },
      deps(rec.starter),
    );
    expect(JSON.parse(mention.body).message).toBe('recorded by the next review');
    const unknown = await handleGitlabDelivery({ headers: noteHeaders(newUuid()), body: note('/agentflow deploy') }, deps(rec.starter));
    expect(unknown.statusCode).toBe(200);
    expect(JSON.parse(unknown.body).message).toContain('/agentflow review [--full]');
    expect(rec.calls).toEqual([]);
  });

  it("ignores GitLab's documented note as it is, an edited command and a command on an issue", async () => {
    const rec = recorder();
    const cases = [
      raw('note-merge-request'),
      note('/agentflow review', { action: 'update' }),
      note('/agentflow review', { noteable_type: 'Issue' }),
    ];
    for (const body of cases) {
      const res = await handleGitlabDelivery({ headers: noteHeaders(newUuid()), body }, deps(rec.starter));
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(res.body).message).toContain('note ignored');
    }
    expect(rec.calls).toEqual([]);
  });
});
