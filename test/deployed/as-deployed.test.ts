import { execFileSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { sign } from '@octokit/webhooks-methods';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoApprovalStore } from '../../lambdas/adapters/approvals.js';
import { DynamoRunStore } from '../../lambdas/adapters/runs.js';
import type { ExecutionInput, ReviewInput, RunSummary } from '../../lambdas/core/contracts.js';
import { slackSignature } from '../../lambdas/core/signatures.js';
import { APPROVE_ACTION } from '../../lambdas/core/slack.js';
import { CI_SIGNATURE_HEADER } from '../../lambdas/webhook/ci-callback.js';
import { examplePullRequestPayload } from '../../lib/local/example-repo.js';
import { LOCAL_TABLE } from '../../lib/local/runtime.js';
import type { AslDefinition } from '../../lib/workflow/index.js';
import { mergeRequestEventFor } from '../standins/gitlab-seed.js';
import { synthesizeDevStack } from './assembly.js';
import { DeployedHarness, GITLAB_PROJECT, MR_IID, MR_TITLE, PR_NUMBER, REGION, REPOSITORY, SECRETS } from './harness.js';
import { isAllowed, roleStatements } from './iam.js';
import { SecretsManagerStandIn } from './standins.js';
import type { Execution } from './step-functions.js';

/**
 * "A test that runs what deploys": the stack `cdk deploy` would deploy (synthesized in-process,
 * every function bundled by esbuild as for the cloud), run end to end on this machine. Each Task
 * state invokes its function's bundle in child processes with the template's environment; the
 * state machines are the template's definitions on aws-local-stepfunctions; DynamoDB is dynalite;
 * S3, Secrets Manager, Step Functions, GitHub and Slack are stand-ins on 127.0.0.1; the models are
 * the offline model server. Nothing leaves this machine.
 */

let work: string;
let h: DeployedHarness;
/** Gate TimeoutSeconds to use instead of the template's, by state machine name (the timeout scenario). */
const gateTimeouts = new Map<string, number>();

/**
 * The definition with every `.waitForTaskToken` state's TimeoutSeconds (and the `timeoutSeconds`
 * its payload tells RequestApproval, for the message's deadline) set to `seconds`.
 */
function withGateTimeout(def: AslDefinition, seconds: number): AslDefinition {
  const copy = structuredClone(def) as unknown as { States: Record<string, Record<string, unknown>> };
  for (const s of Object.values(copy.States)) {
    if (s.Type !== 'Task' || !String(s.Resource).endsWith('.waitForTaskToken')) continue;
    s.TimeoutSeconds = seconds;
    const payload = (s.Parameters as { Payload?: Record<string, unknown> } | undefined)?.Payload;
    if (payload && 'timeoutSeconds' in payload) payload.timeoutSeconds = seconds;
  }
  return copy as unknown as AslDefinition;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'agentflow-deployed-'));
  const { template, outdir, stackName } = synthesizeDevStack(join(work, 'cdk.out'));
  h = await DeployedHarness.start({
    outdir,
    stackName,
    template,
    workDir: work,
    engine: {
      definitionFor: (sm) => {
        const seconds = gateTimeouts.get(sm.name);
        return seconds === undefined ? sm.definition : withGateTimeout(sm.definition, seconds);
      },
    },
  });
}, 300_000);

afterAll(async () => {
  await h?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

/** Polls `read` until it returns a value (every 50 ms, at most `ms`). */
async function until<T>(read: () => T | undefined | Promise<T | undefined>, what: string, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await read();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Waits for an execution's end; a failure message carries its error and the failed states. */
async function finished(e: Execution): Promise<Execution> {
  const done = await e.done;
  if (done.status !== 'SUCCEEDED') {
    const failed = done.events.filter((ev) => ev.type === 'StateFailed').map((ev) => `${ev.state?.name}: ${ev.Error}: ${ev.Cause}`);
    console.error(`${e.name}: ${done.status} ${done.error}: ${done.cause}\n${failed.join('\n')}`);
  }
  return done;
}

/** Delivers a GitHub webhook to the deployed ingress function, signed with the webhook secret in Secrets Manager. */
async function deliver(event: string, payload: string, secret: string = SECRETS['agentflow/dev/github'].webhookSecret) {
  return h.post(
    '/webhooks/github',
    {
      'content-type': 'application/json',
      'user-agent': 'GitHub-Hookshot/harness',
      'x-github-event': event,
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': await sign(secret, payload),
    },
    payload,
  );
}

/** The execution a delivery started for `workflow`. */
function startedBy(res: { json: unknown }, workflow: string): Execution {
  const list = (res.json as { executions?: Array<{ workflow: string; name: string }> }).executions ?? [];
  const name = list.find((x) => x.workflow === workflow)?.name;
  const e = name ? h.sfn.find(h.machine(workflow).name, name) : undefined;
  if (!e) throw new Error(`the delivery started no ${workflow} execution: ${JSON.stringify(res.json)}`);
  return e;
}

/** Execution input for the example pull request, as the webhook builds it. */
function input(workflow: string, runId: string): ReviewInput {
  return {
    runId,
    workflow,
    change: {
      repository: REPOSITORY,
      number: PR_NUMBER,
      title: 'Checkout: pay with card',
      author: 'mobile-dev',
      url: `https://github.com/${REPOSITORY}/pull/${PR_NUMBER}`,
      action: 'opened',
      baseSha: h.repo.base,
      headSha: h.repo.head,
      baseRef: 'main',
      headRef: 'feature/checkout-payments',
      fork: false,
    },
  };
}

/** A client of the Step Functions stand-in, as an operator's script would use the API. */
const sfnClient = () =>
  new SFNClient({
    region: REGION,
    endpoint: h.sfnApi.url,
    credentials: { accessKeyId: 'AKIAHARNESSLOCAL0000', secretAccessKey: 'harness-local-secret' },
  });

/** The approval id of the Slack approval message posted to `channel` after `since` calls (its Approve button's value). */
function approvalIdIn(channel: string, since: number): string | undefined {
  const buttons = (v: unknown): Array<{ action_id?: string; value?: string }> => {
    if (Array.isArray(v)) return v.flatMap(buttons);
    if (!v || typeof v !== 'object') return [];
    const o = v as Record<string, unknown>;
    return [...(typeof o.action_id === 'string' ? [o as { action_id: string; value?: string }] : []), ...Object.values(o).flatMap(buttons)];
  };
  for (const call of h.slack.calls.slice(since)) {
    if (call.method !== 'chat.postMessage' || String(call.args.channel).replace(/^#/, '') !== channel) continue;
    const id = buttons(call.args.blocks).find((b) => b.action_id === APPROVE_ACTION)?.value;
    if (id) return id;
  }
  return undefined;
}

/** The example pull request's delivery body with another title (another prompt: no cached answers). */
function prPayload(title?: string, headRef?: string): string {
  const body = JSON.parse(examplePullRequestPayload(h.repo, PR_NUMBER)) as { pull_request: { title: string; head: { ref: string } } };
  if (title) body.pull_request.title = title;
  if (headRef) body.pull_request.head.ref = headRef;
  return JSON.stringify(body);
}

const runs = () => new DynamoRunStore(h.table.doc, LOCAL_TABLE);

/**
 * GitLab's documented merge request event (`merge-request-open.json`, from webhook_events.md)
 * pointed at the seeded merge request: its project, iid, branches, title and last commit.
 */
function gitlabOpenPayload(): string {
  return mergeRequestEventFor('merge-request-open', {
    project: GITLAB_PROJECT,
    iid: MR_IID,
    title: MR_TITLE,
    headSha: h.gitlabShas.headSha,
    sourceBranch: 'feature/checkout-payments',
    targetBranch: 'main',
  });
}

/** Delivers a GitLab webhook to the deployed ingress function with its secret token (`X-Gitlab-Token`). */
function deliverGitLab(payload: string, token: string = SECRETS['agentflow/dev/gitlab'].webhookSecret) {
  return h.post(
    '/webhooks/gitlab',
    {
      'content-type': 'application/json',
      'user-agent': 'GitLab/18.6.0',
      'x-gitlab-event': 'Merge Request Hook',
      'x-gitlab-event-uuid': randomUUID(),
      'x-gitlab-token': token,
    },
    payload,
  );
}

describe('As deployed: the synthesized AgentFlow-dev stack, end to end on this machine', () => {
  it('runs every function from its own bundle with the environment of its template', () => {
    // Assess: the harness found the bundles and resolved every environment variable to a local value.
    const ours = [...h.stack.functions.values()].filter((f) => f.environment.POWERTOOLS_SERVICE_NAME?.startsWith('agentflow-'));
    expect(ours.map((f) => f.environment.POWERTOOLS_SERVICE_NAME).sort()).toEqual(
      expect.arrayContaining(['agentflow-invoke-agent', 'agentflow-load-context', 'agentflow-publish', 'agentflow-webhook']),
    );
    for (const f of ours) {
      expect(f.moduleFile, f.logicalId).toMatch(/asset\.[0-9a-f]{64}\/index\.mjs$/);
      for (const [k, v] of Object.entries(f.environment)) expect(v, `${f.logicalId} ${k}`).not.toMatch(/\[object Object\]|\$\{Token/);
    }
    expect(h.stack.stateMachines.size).toBeGreaterThanOrEqual(3);
  });

  it('bundles every dependency but the AWS SDK v3, which the Node.js runtime of Lambda provides', () => {
    const ours = [...h.stack.functions.values()].filter((f) => f.environment.POWERTOOLS_SERVICE_NAME?.startsWith('agentflow-'));
    for (const f of ours) {
      const code = readFileSync(f.moduleFile, 'utf8');
      const imports = [...code.matchAll(/(?:from|import)\s*\(?\s*"((?:@[\w.-]+\/)?[\w.-]+[^"]*)"/g)].map((m) => m[1] as string);
      const external = imports.filter((s) => !s.startsWith('node:'));
      expect(
        external.filter((s) => !s.startsWith('@aws-sdk/')),
        f.logicalId,
      ).toEqual([]);
    }
  });

  it('reviews a pull request from a signed GitHub delivery: SUCCEEDED, the comment on GitHub, the run in DynamoDB', async () => {
    // Prepare
    const before = h.models.stats.bedrock + h.models.stats.openai;

    // Act
    const res = await deliver('pull_request', examplePullRequestPayload(h.repo, PR_NUMBER));
    const done = await finished(startedBy(res, 'pr-review'));

    // Assess
    expect(res.statusCode, res.body).toBe(202);
    expect(done.status).toBe('SUCCEEDED');
    const comment = h.github.comments.find((c) => c.issue === PR_NUMBER && c.body.includes('pr-review'));
    expect(comment?.body).toContain('### Top findings');
    expect(comment?.body).toContain(`](https://github.com/${REPOSITORY}/blob/${h.repo.head}/`);
    expect(comment?.body).toContain('<details><summary>Agents, tokens and cost</summary>');
    // The findings on the diff's lines went to GitHub as one review at the reviewed commit.
    const reviews = h.github.reviews.filter((r) => r.pull === PR_NUMBER);
    expect(reviews).toHaveLength(1);
    expect(reviews[0]).toMatchObject({ event: 'COMMENT', commitId: h.repo.head });
    expect(reviews[0]?.comments.length).toBeGreaterThan(0);
    // The check run on the head commit concluded: two critical findings fail it (fail_on: critical).
    expect(h.github.checkRuns.filter((c) => c.head_sha === h.repo.head && c.name === 'AgentFlow · pr-review')).toEqual([
      expect.objectContaining({ status: 'completed', conclusion: 'failure' }),
    ]);
    // The review read the real diff through the GitHub API: its findings point into the changed files.
    expect(h.github.requests).toContain(`GET /repos/${REPOSITORY}/pulls/${PR_NUMBER}/files?per_page=100`);
    const changed = execFileSync('git', ['-C', h.repo.path, 'diff', '--name-only', h.repo.base, h.repo.head], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
    expect(changed.some((path) => comment?.body.includes(path))).toBe(true);
    const record = await runs().get(done.name);
    expect(record?.status).toBe('SUCCEEDED');
    expect(record?.costUsd).toBeGreaterThan(0);
    expect(record?.commentUrl).toBe(comment?.html_url);
    expect(h.models.stats.bedrock + h.models.stats.openai).toBeGreaterThan(before);
    expect(h.s3.objects.size).toBeGreaterThan(0);
    expect(h.sfnApi.calls).toContain('StartExecution');
    expect(h.github.violations).toEqual([]);
    // The same delivery started test-generation, whose trigger wants a known coverage < 80 %: the
    // example repository has no coverage summary, so that run is recorded SKIPPED.
    const tg = await startedBy(res, 'test-generation').done;
    expect(tg.status).toBe('SUCCEEDED');
    expect(await runs().get(tg.name)).toMatchObject({ status: 'SKIPPED', reason: expect.stringMatching(/coverage/) });
  }, 180_000);

  it('reviews a GitLab merge request from a delivery with its secret token: SUCCEEDED, the note, the positioned discussions and the commit status on GitLab, the run in DynamoDB', async () => {
    // Prepare
    const { gitlab, gitlabShas: shas } = h;
    const executions = () => h.sfn.executions.size;
    const before = executions();

    // Act: first a delivery with a wrong secret token, then GitLab's.
    const refused = await deliverGitLab(gitlabOpenPayload(), 'not-the-webhook-secret');
    const startedByRefused = executions() - before;
    const res = await deliverGitLab(gitlabOpenPayload());
    const execution = startedBy(res, 'pr-review');
    const done = await finished(execution);

    // Assess
    expect(refused.statusCode, refused.body).toBe(401);
    expect(startedByRefused).toBe(0);
    expect(res.statusCode, res.body).toBe(202);
    expect(done.status).toBe('SUCCEEDED');
    // The webhook built a forge-neutral change of GitLab's merge request, at the seeded head.
    expect((execution.input as ExecutionInput).change).toMatchObject({
      forge: 'gitlab',
      repository: GITLAB_PROJECT,
      number: MR_IID,
      baseSha: shas.baseSha,
      startSha: shas.startSha,
      headSha: shas.headSha,
      // GitLab's own action (object_attributes.action); the trigger saw it as change.opened.
      action: 'open',
    });
    const summary = done.output as RunSummary;
    expect(summary.findings).toBeGreaterThan(0);
    // One summary note (not a diff note) with pr-review's marker and the run's cost.
    const notes = gitlab.notesOf(GITLAB_PROJECT, MR_IID).filter((n) => !n.position);
    expect(notes).toHaveLength(1);
    expect(notes[0]?.body).toContain('pr-review');
    expect(notes[0]?.body).toContain(`**$${summary.costUsd.toFixed(4)}** |`);
    expect(notes[0]?.body).toContain(`https://gitlab.example/${GITLAB_PROJECT}/-/blob/${shas.headSha}/`);
    // The findings on the diff's lines went to GitLab as discussions positioned on the merge request's diff refs.
    const threads = gitlab.discussionsOf(GITLAB_PROJECT, MR_IID).filter((d) => !d.individual_note);
    expect(threads.length).toBeGreaterThan(0);
    for (const d of threads) {
      expect(d.notes[0]?.position).toMatchObject({ base_sha: shas.baseSha, start_sha: shas.startSha, head_sha: shas.headSha });
    }
    // The commit status on the head commit: never green for a review with critical findings (fail_on: critical).
    const record = await runs().get(done.name);
    const critical = summary.bySeverity.critical ?? 0;
    // pr-review's status (test-generation, started by the same event, has its own name).
    const statuses = gitlab.statusesOf(GITLAB_PROJECT).filter((s) => s.sha === shas.headSha && s.name === 'AgentFlow · pr-review');
    expect(statuses).toHaveLength(1);
    if (critical > 0) expect(statuses[0]?.status).not.toBe('success');
    expect(record?.check).toBe(critical > 0 ? 'failure' : 'success');
    expect(statuses[0]?.status).toBe(({ success: 'success', failure: 'failed' } as Record<string, string>)[record?.check ?? '']);
    // The run in DynamoDB is the merge request's.
    expect(record).toMatchObject({
      status: 'SUCCEEDED',
      workflow: 'pr-review',
      repository: GITLAB_PROJECT,
      number: MR_IID,
      headSha: shas.headSha,
    });
    expect(record?.costUsd).toBe(summary.costUsd);
    // The nested group's project went to GitLab's API by its URL-encoded full path.
    expect(gitlab.requests.filter((r) => r.route === 'postStatus').map((r) => r.params['0'])).toContain(GITLAB_PROJECT);
    // The ingress, LoadContext and Publish read the GitLab secret (the IAM scenario below checks their grants).
    const readers = h.awsCalls.calls
      .filter((c) => c.action === 'secretsmanager:GetSecretValue' && c.resource === SecretsManagerStandIn.arnOf('agentflow/dev/gitlab'))
      .map((c) => h.host.functionOfKey(c.accessKeyId, h.stack.functions.values())?.environment.POWERTOOLS_SERVICE_NAME);
    expect(new Set(readers)).toEqual(new Set(['agentflow-webhook', 'agentflow-load-context', 'agentflow-publish']));
    expect(gitlab.violations).toEqual([]);
  }, 180_000);

  it('still succeeds when Bedrock answers 503: the agents are served by their OpenAI fallback', async () => {
    // Prepare
    h.models.setFaults({ bedrock: 503 });
    const openaiBefore = h.models.stats.openai;
    try {
      // Act
      // Another head branch: the pull request reviewed above would be re-reviewed incrementally
      // (its diff is unchanged: nothing to call a model for); this one is reviewed in full.
      const res = await deliver(
        'pull_request',
        prPayload('Checkout: pay with card (while Bedrock is down)', 'feature/checkout-bedrock-down'),
      );
      const done = await finished(startedBy(res, 'pr-review'));

      // Assess
      expect(done.status).toBe('SUCCEEDED');
      const record = await runs().get(done.name);
      expect(record?.status).toBe('SUCCEEDED');
      const agents = (record?.agents ?? []) as RunSummary['agents'];
      const bedrockFirst = agents.filter((a) => a.attempts.some((t) => t.provider === 'bedrock'));
      expect(bedrockFirst.length, JSON.stringify(agents)).toBeGreaterThan(0);
      for (const a of bedrockFirst) {
        expect(a.fallbackUsed, a.name).toBe(true);
        expect(a.provider, a.name).toBe('openai');
        // Bedrock failed or was skipped (its circuit breaker opened); OpenAI answered.
        expect(a.attempts.filter((t) => t.provider === 'bedrock').every((t) => t.outcome === 'error' || t.outcome === 'skipped')).toBe(
          true,
        );
        expect(
          a.attempts.some((t) => t.provider === 'openai' && t.outcome === 'ok'),
          a.name,
        ).toBe(true);
      }
      expect(h.models.stats.openai).toBeGreaterThan(openaiBefore);
    } finally {
      h.models.setFaults({});
    }
  }, 180_000);

  it('carries a handler error to the engine under its class name, through the minified bundle', async () => {
    // Prepare: an execution whose change lacks its commits, so LoadContext rejects its payload.
    const bad = input('pr-review', `bad-${randomUUID().slice(0, 8)}`) as unknown as { change: Record<string, unknown> };
    delete bad.change.headSha;

    // Act
    const out = await sfnClient().send(
      new StartExecutionCommand({ stateMachineArn: h.machine('pr-review').arn, name: `bad-${randomUUID()}`, input: JSON.stringify(bad) }),
    );
    const e = h.sfn.executions.get(String(out.executionArn));
    const done = await (e as Execution).done;

    // Assess
    const errors = done.events.flatMap((ev) => [ev.Error, (ev.catch as { Error?: string } | undefined)?.Error]).filter(Boolean);
    expect(errors).toContain('InvalidInputError');
    expect(h.host.invocations.some((i) => i.error === 'InvalidInputError')).toBe(true);
  }, 120_000);

  it('asks the mobile leads in Slack for architecture-migration, and continues when a lead approves', async () => {
    // Prepare
    h.github.teams.set('acme/mobile-leads', new Set(['lead-dev']));
    const since = h.slack.calls.length;
    const name = `arch-${randomUUID().slice(0, 8)}`;
    await sfnClient().send(
      new StartExecutionCommand({
        stateMachineArn: h.machine('architecture-migration').arn,
        name,
        input: JSON.stringify(input('architecture-migration', name)),
      }),
    );
    const execution = h.sfn.find(h.machine('architecture-migration').name, name) as Execution;
    const id = await until(() => approvalIdIn('mobile-leads', since), 'the approval message in #mobile-leads', 120_000);
    // RequestApproval records where the message is once Slack has answered: decide after that, or
    // the decision has no message to update (a race this test would otherwise lose under load).
    const store = new DynamoApprovalStore(h.table.doc, LOCAL_TABLE);
    await until(async () => (await store.get(id))?.message, 'the approval record to hold its Slack message', 60_000);

    // Act: a Slack click by someone who is not an approver, then `/agentflow approve` by a team member on GitHub.
    const click = new URLSearchParams({
      payload: JSON.stringify({
        type: 'block_actions',
        user: { id: 'U0NOTALEAD' },
        actions: [{ action_id: APPROVE_ACTION, value: id }],
        response_url: 'http://127.0.0.1:9/not-slack',
      }),
    }).toString();
    const at = Math.floor(Date.now() / 1000);
    const clicked = await h.post(
      '/webhooks/slack/interactions',
      {
        'content-type': 'application/x-www-form-urlencoded',
        'x-slack-request-timestamp': String(at),
        'x-slack-signature': slackSignature(SECRETS['agentflow/dev/slack'].signingSecret, at, click),
      },
      click,
    );
    const comment = JSON.stringify({
      action: 'created',
      issue: { number: PR_NUMBER, pull_request: { url: `https://api.github.com/repos/${REPOSITORY}/pulls/${PR_NUMBER}` } },
      comment: { body: `/agentflow approve ${id}`, user: { login: 'lead-dev' }, author_association: 'MEMBER' },
      repository: { full_name: REPOSITORY },
    });
    const approved = await deliver('issue_comment', comment);
    const done = await finished(execution);

    // Assess
    expect(clicked.statusCode, clicked.body).toBe(200);
    expect(clicked.json).toMatchObject({ outcome: 'forbidden' });
    expect(approved.statusCode, approved.body).toBe(200);
    expect(approved.json).toMatchObject({ outcome: 'approved' });
    expect(done.status).toBe('SUCCEEDED');
    const approval = await new DynamoApprovalStore(h.table.doc, LOCAL_TABLE).get(id);
    expect(approval?.status).toBe('APPROVED');
    const ingressLogs = h.host.logsOf(h.routeFunction('POST /webhooks/slack/interactions')).slice(-20).join('\n');
    expect(
      h.slack.calls.slice(since).map((c) => c.method),
      ingressLogs,
    ).toEqual(expect.arrayContaining(['chat.postMessage', 'chat.update']));
    expect(h.sfnApi.calls).toContain('SendTaskSuccess');
    expect(h.github.violations).toEqual([]);
  }, 240_000);

  it('waits at the CI gate of test-generation and continues with the signed CI report', async () => {
    // Prepare
    const name = `tg-${randomUUID().slice(0, 8)}`;
    const tg = input('test-generation', name);
    tg.change.testCoverage = 62.5;
    await sfnClient().send(
      new StartExecutionCommand({ stateMachineArn: h.machine('test-generation').arn, name, input: JSON.stringify(tg) }),
    );
    const execution = h.sfn.find(h.machine('test-generation').name, name) as Execution;
    const approvals = new DynamoApprovalStore(h.table.doc, LOCAL_TABLE);
    const gate = await until(
      async () => (await approvals.listPending()).find((a) => a.execution === name && a.kind === 'ci'),
      'the CI gate of the execution',
      120_000,
    );
    // The generated tests were committed (Git Data API) to agentflow/tests/<pr>-<sha7> of the
    // repository, with a draft pull request against the head branch; the gate waits on that commit.
    const branch = `agentflow/tests/${PR_NUMBER}-${h.repo.head.slice(0, 7)}`;
    const generated = execFileSync('git', ['-C', h.repo.path, 'rev-parse', `refs/heads/${branch}`], { encoding: 'utf8' }).trim();
    expect(execFileSync('git', ['-C', h.repo.path, 'rev-parse', `${generated}^`], { encoding: 'utf8' }).trim()).toBe(h.repo.head);
    expect(h.github.pulls).toContainEqual(expect.objectContaining({ head: branch, base: 'feature/checkout-payments', draft: true }));
    expect(await approvals.findPendingCi(REPOSITORY, generated)).toMatchObject({ id: gate.id });
    expect(await approvals.findPendingCi(REPOSITORY, h.repo.head)).toBeUndefined();
    const report = JSON.stringify({
      repository: REPOSITORY,
      sha: generated,
      conclusion: 'success',
      summary: '14 generated tests passed',
    });
    const signed = (secret: string) => ({
      'content-type': 'application/json',
      [CI_SIGNATURE_HEADER]: `sha256=${createHmac('sha256', secret).update(report).digest('hex')}`,
    });

    // Act
    const forged = await h.post('/webhooks/ci', signed('forged'), report);
    const ok = await h.post('/webhooks/ci', signed(SECRETS['agentflow/dev/ci'].callbackSecret), report);
    const done = await finished(execution);

    // Assess
    expect(forged.statusCode).toBe(401);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(done.status).toBe('SUCCEEDED');
    const summary = done.output as RunSummary;
    expect(summary.agents.map((a) => a.phase)).toEqual(['analysis', 'generation', 'review']);
    expect(summary.gates.execution).toMatch(/^approved by CI at .* \(CI success\)$/);
    expect(summary.files).toMatchObject({ sha: generated, branch, url: expect.stringMatching(/\/pull\/\d+$/) });
    expect(await runs().get(name)).toMatchObject({ status: 'SUCCEEDED', files: { sha: generated } });
    expect(h.github.comments.at(-1)?.body).toContain('### Generated tests');
  }, 240_000);

  it('records a stopped execution through the EventBridge rule: run FAILED, approval expired, the pull request told', async () => {
    // Prepare: architecture-migration waiting for its approval.
    const sm = h.machine('architecture-migration');
    const since = h.slack.calls.length;
    const name = `arch-stop-${randomUUID().slice(0, 8)}`;
    const client = sfnClient();
    const started = await client.send(
      new StartExecutionCommand({ stateMachineArn: sm.arn, name, input: JSON.stringify(input('architecture-migration', name)) }),
    );
    const id = await until(() => approvalIdIn('mobile-leads', since), 'the approval message in #mobile-leads', 120_000);

    // Act: an operator stops it (StopExecution); Step Functions tells EventBridge it was ABORTED.
    await client.send(new StopExecutionCommand({ executionArn: started.executionArn }));
    const done = await (h.sfn.executions.get(String(started.executionArn)) as Execution).done;
    await h.bus.settled();

    // Assess
    expect(done.status).toBe('ABORTED');
    expect((await client.send(new DescribeExecutionCommand({ executionArn: started.executionArn }))).status).toBe('ABORTED');
    const delivered = h.bus.deliveries.filter((d) => d.event.detail.executionArn === started.executionArn);
    expect(delivered).toHaveLength(1);
    expect(await delivered[0]?.result).toMatchObject({ ok: true, value: { recorded: true, expired: 1 } });
    expect(await runs().get(name)).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^aborted: /) });
    expect((await new DynamoApprovalStore(h.table.doc, LOCAL_TABLE).get(id))?.status).toBe('EXPIRED');
    expect(h.slack.calls.slice(since).some((c) => c.method === 'chat.update' && /Expired/.test(String(c.args.text)))).toBe(true);
    expect(h.github.comments.some((c) => c.issue === PR_NUMBER && c.body.includes(name))).toBe(true);
    // Only ended executions reach the rule: nothing was delivered for RUNNING or SUCCEEDED.
    expect(h.bus.deliveries.every((d) => ['FAILED', 'TIMED_OUT', 'ABORTED'].includes(String(d.event.detail.status)))).toBe(true);
    expect(h.github.violations).toEqual([]);
  }, 240_000);

  it('ends a gate nobody answers at its TimeoutSeconds and expires its Slack message', async () => {
    // Prepare: the template's 24 h gates, shortened for this run.
    const sm = h.machine('architecture-migration');
    gateTimeouts.set(sm.name, 2);
    const since = h.slack.calls.length;
    const name = `arch-timeout-${randomUUID().slice(0, 8)}`;
    try {
      // Act
      const execution = h.sfn.start(sm.arn, name, input('architecture-migration', name));
      const done = await finished(execution);

      // Assess
      const timeouts = done.events.filter(
        (ev) => ev.Error === 'States.Timeout' || (ev.catch as { Error?: string } | undefined)?.Error === 'States.Timeout',
      );
      expect(timeouts.length).toBeGreaterThan(0);
      const record = await runs().get(name);
      expect(done.status).toBe('SUCCEEDED');
      expect(record).toMatchObject({ status: 'STOPPED', reason: expect.stringMatching(/expired/) });
      // The request went to #mobile-leads, escalated to #mobile-eng-managers, and both messages now say it expired.
      const calls = h.slack.calls.slice(since);
      expect(calls.filter((c) => c.method === 'chat.postMessage').map((c) => String(c.args.channel))).toEqual([
        'mobile-leads',
        'mobile-eng-managers',
      ]);
      const updates = calls.filter((c) => c.method === 'chat.update');
      expect(updates).toHaveLength(2);
      for (const u of updates) expect(String(u.args.text)).toMatch(/Expired/);
      const approvals = new DynamoApprovalStore(h.table.doc, LOCAL_TABLE);
      expect((await approvals.listPending()).filter((a) => a.execution === name)).toEqual([]);
    } finally {
      gateTimeouts.delete(sm.name);
    }
  }, 240_000);

  it('made only AWS calls that the execution role of the calling function in the template allows', () => {
    // Assess: every DynamoDB, S3, Secrets Manager and Step Functions call of the scenarios above,
    // told apart by the access key each function's credentials carry, against its role's policies.
    const functions = [...h.stack.functions.values()];
    const byFunction = new Map<string, string[]>();
    const denied: string[] = [];
    for (const call of h.awsCalls.calls) {
      const fn = h.host.functionOfKey(call.accessKeyId, functions);
      if (!fn) continue; // the test's own API calls (an operator's StartExecution, StopExecution)
      byFunction.set(fn.logicalId, [...(byFunction.get(fn.logicalId) ?? []), call.action]);
      if (!isAllowed(roleStatements(h.stack, fn.logicalId), call.action, call.resource)) {
        denied.push(`${fn.logicalId}: ${call.action} on ${call.resource}`);
      }
    }
    expect([...new Set(denied)]).toEqual([]);
    expect(byFunction.size).toBeGreaterThanOrEqual(5);
    // The check can fail: a call no grant covers is refused (Aggregate has no table access).
    const aggregateFn = functions.find((f) => f.environment.POWERTOOLS_SERVICE_NAME === 'agentflow-aggregate');
    const tableArn = `arn:aws:dynamodb:${REGION}:123456789012:table/${LOCAL_TABLE}`;
    expect(isAllowed(roleStatements(h.stack, aggregateFn?.logicalId ?? ''), 'dynamodb:PutItem', tableArn)).toBe(false);
  });
});
