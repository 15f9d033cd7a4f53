import { createServer as createTcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Gitlab } from '@gitbeaker/rest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitLabChangeSource, type GitLabClient } from '../../lambdas/adapters/gitlab-changes.js';
import { GitLabPublisher } from '../../lambdas/adapters/gitlab-publisher.js';
import { toMicro } from '../../lambdas/core/budget.js';
import { type Change, RunSummarySchema } from '../../lambdas/core/contracts.js';
import { markedFinding } from '../../lambdas/core/review.js';
import { gitlabFor } from '../../lambdas/shared/gitlab.js';
import type { ExampleRepo } from '../../lib/local/example-repo.js';
import type { LocalRuntime } from '../../lib/local/runtime.js';
import { type LocalServer, startLocalServer } from '../../lib/local/server.js';
import { loadWorkspace, WORKFLOWS_DIR } from '../../lib/workspace.js';
import { exampleRepo, testRuntime } from '../helpers.js';
import { GitLabStandIn } from '../standins/gitlab.js';
import { mergeRequestEventFor, seedMergeRequestFromGit } from '../standins/gitlab-seed.js';

const PROJECT = 'acme/mobile/shop-apps';
const IID = 42;
const TOKEN = 'glpat-e2e-token';
const WEBHOOK_SECRET = 'gitlab-e2e-webhook-secret';

/**
 * A GitLab merge request reviewed end to end: a merge request event from GitLab's documented
 * payload (its project, iid and SHAs set to the example repository's) is delivered to
 * `agentflow serve`'s `/webhooks/gitlab` with its secret token; the local runtime runs pr-review,
 * reads the change from GitLab's REST API (`GitLabChangeSource`) and publishes through
 * `GitLabPublisher` to the GitLab stand-in, which checks every discussion's position against the
 * merge request's diff refs and lines, and keeps the notes, discussions and commit statuses.
 */
describe('e2e: a GitLab merge request on the GitLab stand-in', () => {
  let gitlab: GitLabStandIn;
  let rt: LocalRuntime;
  let server: LocalServer;
  let repo: ExampleRepo;
  let shas: { baseSha: string; startSha: string; headSha: string };

  /** The documented merge request event, pointed at the example merge request. */
  function mergeRequestEvent(file: string): string {
    const target = { project: PROJECT, iid: IID, headSha: repo.head, sourceBranch: 'feature/checkout-payments', targetBranch: 'main' };
    return mergeRequestEventFor(file.replace(/\.json$/, ''), target);
  }

  async function deliver(body: string, uuid: string, token = WEBHOOK_SECRET) {
    const r = await fetch(`${server.url}/webhooks/gitlab`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-gitlab-event': 'Merge Request Hook',
        'x-gitlab-event-uuid': uuid,
        'x-gitlab-token': token,
        'user-agent': 'GitLab/18.6.0',
      },
      body,
    });
    return {
      status: r.status,
      body: (await r.json()) as { duplicate?: boolean; executions?: Array<{ workflow: string; name: string; started: boolean }> },
    };
  }

  /** Waits for the pr-review execution a delivery started and returns its summary. */
  async function reviewed(res: Awaited<ReturnType<typeof deliver>>) {
    const name = res.body.executions?.find((e) => e.workflow === 'pr-review')?.name;
    if (!name) throw new Error(`no pr-review execution: ${JSON.stringify(res.body)}`);
    const result = await rt.executions.get(name);
    expect(result?.status).toBe('SUCCEEDED');
    const report = (await rt.artifacts.getJson(`runs/${name}/report.json`)) as { summary: unknown };
    return { name, summary: RunSummarySchema.parse(report.summary) };
  }

  const notes = () => gitlab.notesOf(PROJECT, IID).filter((n) => !n.position);
  const threads = () => gitlab.discussionsOf(PROJECT, IID).filter((d) => !d.individual_note);
  const keys = () => threads().map((d) => markedFinding(d.notes[0]?.body ?? '') ?? '');

  beforeAll(async () => {
    repo = exampleRepo();
    gitlab = new GitLabStandIn(TOKEN);
    shas = seedMergeRequestFromGit(gitlab, {
      repo: repo.path,
      project: PROJECT,
      iid: IID,
      base: 'main',
      head: repo.head,
      sourceBranch: 'feature/checkout-payments',
      targetBranch: 'main',
      title: 'Checkout: pay with card',
    });
    gitlab.addUser('agentflow-bot');
    const client = new Gitlab({ host: await gitlab.start(), token: TOKEN }) as GitLabClient;
    rt = await testRuntime(repo, {
      workspace: loadWorkspace(undefined, [join(WORKFLOWS_DIR, 'pr-review.yml')]),
      forges: { gitlab: new GitLabPublisher(client) },
      changeSources: { gitlab: new GitLabChangeSource(client) },
    });
    server = await startLocalServer({ runtime: rt, secret: 'unused-github-secret', gitlabSecret: WEBHOOK_SECRET, port: 0 });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await rt?.stop();
    expect(gitlab.violations).toEqual([]);
    await gitlab.stop();
  });

  it('refuses a delivery with a wrong secret token: 401 and nothing started or written', async () => {
    const before = (await rt.runs.list(100)).length;
    const r = await deliver(mergeRequestEvent('merge-request-open.json'), 'uuid-wrong-token', 'not-the-secret');
    expect(r.status).toBe(401);
    expect((await rt.runs.list(100)).length).toBe(before);
    expect(notes()).toEqual([]);
  });

  it('opened: reviews the merge request and publishes the GitLab way, with the cost of the ledger', async () => {
    const r = await deliver(mergeRequestEvent('merge-request-open.json'), 'uuid-open-1');
    expect(r.status).toBe(202);
    const { name, summary } = await reviewed(r);
    expect(summary.findings).toBeGreaterThan(0);

    // One sticky summary note, showing the run's settled spend to the micro-dollar.
    expect(notes()).toHaveLength(1);
    const spent = (await rt.ledger.get(`run#${name}`))?.spentMicro ?? -1;
    expect(toMicro(summary.costUsd)).toBe(spent);
    expect(notes()[0]?.body).toContain(`**$${summary.costUsd.toFixed(4)}** |`);
    // Its line links go to GitLab blobs at the head commit.
    expect(notes()[0]?.body).toContain(`https://gitlab.example/${PROJECT}/-/blob/${shas.headSha}/`);
    // GitLab writes a merge request as !42 (#42 is an issue there).
    expect(notes()[0]?.body).toContain(`${PROJECT}!${IID} at`);

    // Diff discussions on the diff's new lines, positioned on the merge request's diff refs.
    const posted = threads();
    expect(posted.length).toBeGreaterThan(0);
    for (const d of posted) {
      expect(d.notes[0]?.position).toMatchObject({ base_sha: shas.baseSha, start_sha: shas.startSha, head_sha: shas.headSha });
    }
    expect(new Set(keys()).size).toBe(posted.length);

    // The commit status on the head SHA says what the check run says on GitHub: never green for a failing review.
    // pr-review fails on critical findings (fail_on default): the example has a hard-coded key.
    const critical = summary.bySeverity.critical ?? 0;
    const status = gitlab.statusesOf(PROJECT).filter((s) => s.sha === shas.headSha);
    expect(status.map((s) => s.status)).toEqual([critical > 0 ? 'failed' : 'success']);
    const record = await rt.runs.get(name);
    expect(record?.status).toBe('SUCCEEDED');
    expect(record?.check).toBe(critical > 0 ? 'failure' : 'success');
  });

  it('a redelivery of the same event (same X-Gitlab-Event-UUID) starts nothing new', async () => {
    const before = (await rt.runs.list(100)).length;
    const r = await deliver(mergeRequestEvent('merge-request-open.json'), 'uuid-open-1');
    expect(r.status).toBe(200);
    expect(r.body.duplicate).toBe(true);
    expect((await rt.runs.list(100)).length).toBe(before);
  });

  it('a title edit (update without new commits) starts nothing', async () => {
    const before = (await rt.runs.list(100)).length;
    const r = await deliver(mergeRequestEvent('merge-request-update-title.json'), 'uuid-title-1');
    expect(r.status).toBe(200);
    expect(r.body.executions ?? []).toEqual([]);
    expect((await rt.runs.list(100)).length).toBe(before);
  });

  it('an update with commits reviews again incrementally: the summary note edited, no discussion posted twice', async () => {
    const before = keys();
    const r = await deliver(mergeRequestEvent('merge-request-update.json'), 'uuid-update-1');
    expect(r.status).toBe(202);
    const { summary } = await reviewed(r);
    expect(summary.incremental).toBeDefined();
    expect(notes()).toHaveLength(1);
    expect(keys()).toEqual(before);
  });
});

describe('e2e: a self-managed GitLab instance that does not answer', () => {
  it('fails the run with that reason, and nothing is written on the merge request', async () => {
    // An instance that takes connections and never answers.
    const sockets = new Set<Socket>();
    const silent = createTcpServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const client = gitlabFor({ token: TOKEN, apiUrl: `http://127.0.0.1:${port}` }, 300);
    const posted: string[] = [];
    const publisher = new GitLabPublisher(client);
    const recording = new Proxy(publisher, {
      get: (target, name, receiver) => {
        const v = Reflect.get(target, name, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          posted.push(String(name));
          return v.apply(target, args);
        };
      },
    });
    const repo = exampleRepo();
    const rt = await testRuntime(repo, {
      workspace: loadWorkspace(undefined, [join(WORKFLOWS_DIR, 'pr-review.yml')]),
      forges: { gitlab: recording },
      changeSources: { gitlab: new GitLabChangeSource(client) },
    });
    try {
      const change: Change = {
        forge: 'gitlab',
        repository: PROJECT,
        number: IID,
        title: 'Checkout',
        author: 'dev',
        url: `https://gitlab.example/${PROJECT}/-/merge_requests/${IID}`,
        action: 'open',
        baseSha: repo.base,
        headSha: repo.head,
        baseRef: 'main',
        headRef: 'feature/checkout-payments',
      };
      const result = await rt.execute('pr-review', 'gl-silent', { runId: 'gl-silent', workflow: 'pr-review', change });
      const record = await rt.runs.get('gl-silent');
      expect(result.status).toBe('FAILED');
      expect(record?.status).toBe('FAILED');
      // The run record says why: GitLab did not answer in time (gitbeaker's query timeout).
      expect(record?.error ?? '').toMatch(/timeout/i);
      expect(record?.checkError ?? '').toMatch(/timeout/i);
      // Only the commit status was tried (and failed at the silent host): no note, no discussion, no commit.
      expect(posted.filter((m) => m !== 'startCheck' && m !== 'completeCheck')).toEqual([]);
    } finally {
      await rt.stop();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  }, 60_000);
});
