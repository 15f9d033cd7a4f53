import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import examples from '@octokit/webhooks-examples';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PowertoolsDeliveryGuard } from '../../../lambdas/adapters/delivery-guard.js';
import type { DeliveryGuard, ExecutionStarter } from '../../../lambdas/core/ports.js';
import { githubSignature } from '../../../lambdas/core/signatures.js';
import { type GithubDeliveryDeps, handleGithubDelivery } from '../../../lambdas/webhook/github-delivery.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../../../lib/local/runtime.js';
import { localIngress, workflowTriggers } from '../../../lib/local/server.js';
import { webhookTrigger } from '../../../lib/workflow/index.js';
import { loadWorkspace } from '../../../lib/workspace.js';
import { exampleRepo, testRuntime, waitFor } from '../../helpers.js';

const SECRET = "It's a Secret to Everybody";
const OLD_SECRET = 'the secret before the rotation';

let table: LocalTable;
beforeAll(async () => {
  table = await startLocalTable();
});
afterAll(async () => {
  await table.stop();
});

/** A starter that records every StartExecution call (it does not de-duplicate: the guard must). */
function recorder(options: { failFirst?: boolean; delayMs?: number } = {}) {
  const calls: Array<{ workflow: string; name: string; input: unknown }> = [];
  let fail = options.failFirst ?? false;
  const starter: ExecutionStarter = {
    start: async (workflow, name, input) => {
      await new Promise((r) => setTimeout(r, options.delayMs ?? 0));
      if (fail) {
        fail = false;
        throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      }
      calls.push({ workflow, name, input });
      return { name, started: true };
    },
  };
  return { calls, starter };
}

const prEvent = (action = 'opened', extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    action,
    number: 7,
    pull_request: {
      title: 'T',
      html_url: 'https://github.com/acme/app/pull/7',
      user: { login: 'dev' },
      base: { sha: 'b'.repeat(40), ref: 'main' },
      head: { sha: 'c'.repeat(40), ref: 'feature' },
      additions: 120,
      deletions: 30,
      ...extra,
    },
    repository: { full_name: 'acme/app' },
  });

const workflows = [
  { id: 'pr-review', events: ['pull_request.opened', 'pull_request.synchronize'] },
  { id: 'big-only', events: ['pull_request.opened'], linesChanged: { op: '>' as const, value: 500 } },
];

let seq = 0;
const newDelivery = () => `72d3162e-cc78-11e3-81ab-${String(++seq).padStart(12, '0')}`;

function deps(starter: ExecutionStarter, over: Partial<GithubDeliveryDeps> = {}): GithubDeliveryDeps {
  return {
    secrets: async () => [SECRET, OLD_SECRET],
    workflows,
    starter,
    guard: new PowertoolsDeliveryGuard({ client: table.client, table: LOCAL_TABLE }),
    ...over,
  };
}

const headers = (body: string | Buffer, delivery: string, extra: Record<string, string | undefined> = {}) => ({
  'content-type': 'application/json',
  'x-github-event': 'pull_request',
  'x-github-delivery': delivery,
  'x-hub-signature-256': githubSignature(SECRET, body),
  ...extra,
});

const tableItems = async () => (await table.doc.send(new ScanCommand({ TableName: LOCAL_TABLE }))).Items?.length ?? 0;

/** Runs `fn` with console and stdout/stderr captured; returns what was written. */
async function captureOutput<T>(fn: () => Promise<T>): Promise<{ value: T; output: string }> {
  const out: string[] = [];
  const spies = [
    vi.spyOn(process.stdout, 'write').mockImplementation((c) => out.push(String(c)) > 0),
    vi.spyOn(process.stderr, 'write').mockImplementation((c) => out.push(String(c)) > 0),
    ...(['log', 'info', 'warn', 'error', 'debug'] as const).map((m) =>
      vi.spyOn(console, m).mockImplementation((...a) => out.push(a.join(' '))),
    ),
  ];
  try {
    return { value: await fn(), output: out.join('\n') };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

describe('Function: handleGithubDelivery (signature)', () => {
  it("accepts GitHub's documented test vector", async () => {
    // Source: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    const res = await handleGithubDelivery(
      {
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'ping',
          'x-github-delivery': 'd1',
          'x-hub-signature-256': 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17',
        },
        body: 'Hello, World!',
      },
      deps(recorder().starter),
    );
    expect(res.statusCode).toBe(200);
  });

  const body = prEvent();
  const cases: Array<[string, () => { body: string; headers: Record<string, string | undefined> }, number]> = [
    ['tampered body', () => ({ body: body.replace('"T"', '"X"'), headers: headers(body, newDelivery()) }), 401],
    [
      'wrong secret',
      () => ({ body, headers: { ...headers(body, newDelivery()), 'x-hub-signature-256': githubSignature('wrong', body) } }),
      401,
    ],
    [
      'sha1= only',
      () => ({
        body,
        headers: {
          ...headers(body, newDelivery()),
          'x-hub-signature-256': undefined,
          'x-hub-signature': 'sha1=0123456789abcdef0123456789abcdef01234567',
        },
      }),
      401,
    ],
    [
      'truncated digest',
      () => ({ body, headers: { ...headers(body, newDelivery()), 'x-hub-signature-256': githubSignature(SECRET, body).slice(0, 40) } }),
      401,
    ],
    [
      'missing headers',
      () => ({ body, headers: { ...headers(body, newDelivery()), 'x-github-event': undefined, 'x-github-delivery': undefined } }),
      400,
    ],
    [
      'wrong content type',
      () => ({
        body: `payload=${encodeURIComponent(body)}`,
        headers: { ...headers(`payload=${encodeURIComponent(body)}`, newDelivery()), 'content-type': 'application/x-www-form-urlencoded' },
      }),
      415,
    ],
  ];
  it.each(cases)(
    '%s: the right status and zero side effects (no execution, no table write, nothing logged that holds the secret or body)',
    async (_name, make, status) => {
      const rec = recorder();
      const before = await tableItems();
      const { body: b, headers: h } = make();
      const { value: res, output } = await captureOutput(() => handleGithubDelivery({ headers: h, body: b }, deps(rec.starter)));
      expect(res.statusCode).toBe(status);
      expect(rec.calls).toEqual([]);
      expect(await tableItems()).toBe(before);
      expect(output).not.toContain(SECRET);
      expect(output).not.toContain('pull_request');
      // Opaque bodies: nothing about which check failed or what was expected.
      if (status === 401) expect(JSON.parse(res.body)).toEqual({ message: 'unauthorized' });
      expect(res.body).not.toContain(SECRET);
    },
  );

  it('a body re-serialised from parsed JSON fails verification', async () => {
    const original = prEvent().replace(/,/g, ', ');
    const reserialised = JSON.stringify(JSON.parse(original));
    const rec = recorder();
    const res = await handleGithubDelivery({ headers: headers(original, newDelivery()), body: reserialised }, deps(rec.starter));
    expect(res.statusCode).toBe(401);
    expect(rec.calls).toEqual([]);
  });

  it('a base64-encoded body passes (verified on the decoded bytes)', async () => {
    const body = prEvent();
    const rec = recorder();
    const res = await handleGithubDelivery(
      { headers: headers(body, newDelivery()), body: Buffer.from(body).toString('base64'), isBase64Encoded: true },
      deps(rec.starter),
    );
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => c.workflow)).toEqual(['pr-review']);
  });

  it('accepts the previous secret during a rotation', async () => {
    const body = prEvent();
    const rec = recorder();
    const res = await handleGithubDelivery(
      { headers: { ...headers(body, newDelivery()), 'x-hub-signature-256': githubSignature(OLD_SECRET, body) }, body },
      deps(rec.starter),
    );
    expect(res.statusCode).toBe(202);
  });

  it('refuses an oversized body with 413 before verifying it', async () => {
    const rec = recorder();
    const huge = 'x'.repeat(5 * 1024 * 1024 + 1);
    const res = await handleGithubDelivery({ headers: headers('{}', newDelivery()), body: huge }, deps(rec.starter));
    expect(res.statusCode).toBe(413);
    expect(rec.calls).toEqual([]);
  });
});

describe('Function: handleGithubDelivery (filtering and idempotency)', () => {
  it('starts the workflows of the event and action whose lines_changed holds; the execution names come from the delivery id; the input holds ids only', async () => {
    const body = prEvent();
    const rec = recorder();
    const delivery = newDelivery();
    const res = await handleGithubDelivery({ headers: headers(body, delivery), body }, deps(rec.starter));
    expect(res.statusCode).toBe(202);
    // big-only needs > 500 changed lines; the event has 150.
    expect(rec.calls.map((c) => [c.workflow, c.name])).toEqual([['pr-review', `${delivery}-pr-review`]]);
    const input = rec.calls[0]?.input as { change: Record<string, unknown> };
    expect(Object.keys(input.change).sort()).toEqual([
      'action',
      'author',
      'baseRef',
      'baseSha',
      'forge',
      'fork',
      'headRef',
      'headSha',
      'number',
      'repository',
      'title',
      'url',
    ]);
    expect(JSON.stringify(input).length).toBeLessThan(1000);
  });

  it('filters event and action before any work: other events and actions start nothing', async () => {
    const rec = recorder();
    const labeled = prEvent('labeled');
    expect((await handleGithubDelivery({ headers: headers(labeled, newDelivery()), body: labeled }, deps(rec.starter))).statusCode).toBe(
      200,
    );
    const push = '{"ref":"refs/heads/main"}';
    const res = await handleGithubDelivery(
      { headers: headers(push, newDelivery(), { 'x-github-event': 'push' }), body: push },
      deps(rec.starter),
    );
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body).message).toContain('ignored');
    expect(rec.calls).toEqual([]);
  });

  it('pull_request.synchronize re-reviews', async () => {
    const body = prEvent('synchronize');
    const rec = recorder();
    const res = await handleGithubDelivery({ headers: headers(body, newDelivery()), body }, deps(rec.starter));
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => c.workflow)).toEqual(['pr-review']);
  });

  it('the same delivery twice in a row: one execution, and the second answer is a 2xx "duplicate"', async () => {
    const body = prEvent();
    const rec = recorder();
    const d = deps(rec.starter);
    const delivery = newDelivery();
    const first = await handleGithubDelivery({ headers: headers(body, delivery), body }, d);
    const second = await handleGithubDelivery({ headers: headers(body, delivery), body }, d);
    expect(first.statusCode).toBe(202);
    expect(second.statusCode).toBe(200);
    expect(JSON.parse(second.body)).toMatchObject({ duplicate: true, executions: [{ name: `${delivery}-pr-review` }] });
    expect(rec.calls).toHaveLength(1);
  });

  it('the same delivery twice at once: one execution', async () => {
    const body = prEvent();
    const rec = recorder({ delayMs: 150 });
    const delivery = newDelivery();
    // Two Lambda instances: separate guards on the same table.
    const results = await Promise.all([
      handleGithubDelivery({ headers: headers(body, delivery), body }, deps(rec.starter)),
      handleGithubDelivery({ headers: headers(body, delivery), body }, deps(rec.starter)),
    ]);
    expect(rec.calls).toHaveLength(1);
    expect(results.map((r) => r.statusCode).sort()).toEqual([202, 202]);
    expect(results.filter((r) => JSON.parse(r.body).duplicate === true)).toHaveLength(1);
  });

  it('a redelivery after a failed start is processed (the failure answers 5xx and keeps nothing)', async () => {
    const body = prEvent();
    const rec = recorder({ failFirst: true });
    const d = deps(rec.starter);
    const delivery = newDelivery();
    const failed = await handleGithubDelivery({ headers: headers(body, delivery), body }, d);
    expect(failed.statusCode).toBe(503);
    expect(failed.body).not.toContain('Throttling');
    const redelivered = await handleGithubDelivery({ headers: headers(body, delivery), body }, d);
    expect(redelivered.statusCode).toBe(202);
    expect(rec.calls).toHaveLength(1);
  });

  it('a slow dependency fails fast with a 5xx inside the time left', async () => {
    const body = prEvent();
    const slow: ExecutionStarter = { start: () => new Promise(() => undefined) };
    // The starter never answers: only the deadline can end the request.
    const res = await handleGithubDelivery({ headers: headers(body, newDelivery()), body }, deps(slow, { remainingMs: () => 1500 }));
    expect(res.statusCode).toBe(503);
  });

  it('waits for a start in flight at the deadline and starts nothing after the answer, so the answer says what started', async () => {
    const two = [
      { id: 'pr-review', events: ['pull_request.opened'] },
      { id: 'docs', events: ['pull_request.opened'] },
    ];
    const body = prEvent();
    const calls: string[] = [];
    const slow: ExecutionStarter = {
      start: async (workflow, name) => {
        await new Promise((r) => setTimeout(r, 1_000));
        calls.push(workflow);
        return { name, started: true };
      },
    };
    const res = await handleGithubDelivery(
      { headers: headers(body, newDelivery()), body },
      deps(slow, {
        workflows: two,
        remainingMs: (() => {
          const end = Date.now() + 1_700;
          return () => end - Date.now();
        })(),
      }),
    );
    await new Promise((r) => setTimeout(r, 1_000));
    // The first start finished inside the grace period; the second was never started.
    expect(res.statusCode).toBe(202);
    expect(JSON.parse(res.body).executions.map((e: { workflow: string }) => e.workflow)).toEqual(['pr-review']);
    expect(calls).toEqual(['pr-review']);
  });

  it('answers 503 when a workflow cannot be started, so a redelivery starts it (the started one does not start twice)', async () => {
    const two = [
      { id: 'pr-review', events: ['pull_request.opened'] },
      { id: 'docs', events: ['pull_request.opened'] },
    ];
    const body = prEvent();
    const failing: ExecutionStarter = {
      start: async (workflow, name) => {
        if (workflow === 'docs') throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
        return { name, started: true };
      },
    };
    const res = await handleGithubDelivery({ headers: headers(body, newDelivery()), body }, deps(failing, { workflows: two }));
    expect(res.statusCode).toBe(503);
  });

  it('never answers an error for a delivery whose execution started, even when the record is written too late', async () => {
    const body = prEvent();
    const rec = recorder();
    // The execution starts, then the idempotency record's completion never comes back in time.
    const guard: DeliveryGuard = {
      once: async (_key, work) => {
        await work();
        return new Promise(() => undefined);
      },
      forget: async () => 0,
    };
    const res = await handleGithubDelivery(
      { headers: headers(body, newDelivery()), body },
      deps(rec.starter, { guard, remainingMs: () => 1500 }),
    );
    expect(res.statusCode).toBe(202);
    expect(JSON.parse(res.body).executions).toEqual([expect.objectContaining({ workflow: 'pr-review', started: true })]);
  });
});

/** A copy of GitHub's example payload of `pull_request.<action>` (octokit/webhooks), with `pull_request` fields replaced. */
function githubExample(action: string, pullRequest: Record<string, unknown> = {}): string {
  const sample = (examples as unknown as Array<{ name: string; examples: Array<Record<string, unknown>> }>)
    .find((e) => e.name === 'pull_request')
    ?.examples.find((x) => x.action === action) as { pull_request: Record<string, unknown> } | undefined;
  if (!sample) throw new Error(`@octokit/webhooks-examples has no pull_request.${action} example`);
  const payload = structuredClone(sample);
  Object.assign(payload.pull_request, pullRequest);
  return JSON.stringify(payload);
}

describe('Function: handleGithubDelivery (pull-request filters)', () => {
  it('starts a draft pull request with skip set to the reason, so the run records why it was skipped', async () => {
    const body = prEvent('opened', { draft: true });
    const rec = recorder();
    const res = await handleGithubDelivery({ headers: headers(body, newDelivery()), body }, deps(rec.starter));
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => [c.workflow, (c.input as { skip?: string }).skip])).toEqual([['pr-review', 'draft pull request']]);
    expect(JSON.parse(res.body).executions).toEqual([expect.objectContaining({ workflow: 'pr-review', skip: 'draft pull request' })]);
  });

  it("applies each workflow's own filters: a bot's pull request is skipped by one and reviewed by another", async () => {
    const body = prEvent('opened', { user: { login: 'renovate[bot]', type: 'Bot' } });
    const rec = recorder();
    const bots = [...workflows, { id: 'deps', events: ['pull_request.opened'], skipBots: false }];
    const res = await handleGithubDelivery({ headers: headers(body, newDelivery()), body }, deps(rec.starter, { workflows: bots }));
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => [c.workflow, (c.input as { skip?: string }).skip])).toEqual([
      ['pr-review', 'author renovate[bot] is a bot'],
      ['deps', undefined],
    ]);
  });

  it("starts the shipped pr-review on GitHub's ready_for_review example, without a skip", async () => {
    const body = githubExample('ready_for_review');
    const rec = recorder();
    const shipped = loadWorkspace();
    const res = await handleGithubDelivery(
      { headers: headers(body, newDelivery()), body },
      deps(rec.starter, { workflows: [...shipped.workflows.values()].map(webhookTrigger) }),
    );
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => c.workflow)).toContain('pr-review');
    expect(rec.calls.every((c) => (c.input as { skip?: string }).skip === undefined)).toBe(true);
  });
});

describe('Function: handleGithubDelivery (/agentflow review is not filtered)', () => {
  it("starts the review a collaborator asks for on a bot's pull request, without a skip: a person asked", async () => {
    // Prepare
    const rec = recorder();
    const botChange = {
      repository: 'acme/app',
      number: 7,
      title: 'Update dependency',
      author: 'renovate[bot]',
      url: '',
      action: 'opened',
      baseSha: 'b'.repeat(40),
      headSha: 'c'.repeat(40),
      baseRef: 'main',
      headRef: 'renovate/deps',
    };
    const changes = { pullRequest: async () => botChange, refs: async () => botChange };
    const body = JSON.stringify({
      action: 'created',
      issue: { number: 7, pull_request: { url: 'https://api.github.com/repos/acme/app/pulls/7' } },
      comment: { body: '/agentflow review', user: { login: 'octocat' }, author_association: 'MEMBER' },
      repository: { full_name: 'acme/app' },
    });

    // Act
    const res = await handleGithubDelivery(
      { headers: headers(body, newDelivery(), { 'x-github-event': 'issue_comment' }), body },
      deps(rec.starter, { changes }),
    );

    // Assess
    expect(res.statusCode).toBe(202);
    expect(rec.calls.map((c) => [c.workflow, (c.input as { skip?: string }).skip])).toEqual([['pr-review', undefined]]);
  });
});

describe('Use case: a draft pull request on the local runtime', () => {
  it("ends GitHub's example pull request, marked draft, as a SKIPPED run with the reason, without loading the change", async () => {
    // Prepare
    const runtime = await testRuntime(exampleRepo());
    try {
      const github = localIngress(runtime, { secret: SECRET }).github;
      const body = githubExample('opened', { draft: true });
      const delivery = newDelivery();

      // Act
      const res = await handleGithubDelivery({ headers: headers(body, delivery), body }, github);

      // Assess
      expect(res.statusCode).toBe(202);
      expect(workflowTriggers(runtime).find((w) => w.id === 'pr-review')).toMatchObject({ skipDrafts: true, skipBots: true });
      const name = `${delivery}-pr-review`;
      const run = await waitFor(async () => {
        const r = await runtime.runs.get(name);
        return r && r.status !== 'RUNNING' ? r : undefined;
      }, `run ${name}`);
      expect(run).toMatchObject({ status: 'SKIPPED', reason: 'draft pull request', repository: 'Codertocat/Hello-World', costUsd: 0 });
      // Nothing was read: the example's SHAs do not exist in the example repository.
      await expect(runtime.artifacts.getJson(`runs/${name}/context.json`)).rejects.toThrow();
    } finally {
      await runtime.stop();
    }
  });
});
