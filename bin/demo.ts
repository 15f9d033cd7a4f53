/**
 * `npm run demo`: reviews the example app's pull request end to end on this machine.
 *
 * Builds the example git repository, starts the local runtime and the webhook route, sends a real
 * GitHub `pull_request.opened` payload (from @octokit/webhooks-examples, re-pointed at the example
 * repository's commits) signed with the webhook secret, follows the execution state by state and
 * prints the pull-request comment. Uses real providers when credentials are set (OPENAI_API_KEY,
 * OPENAI_BASE_URL, AWS credentials), the offline model server otherwise.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import examples from '@octokit/webhooks-examples';
import { sign } from '@octokit/webhooks-methods';
import type { RunRecord, RunSummary } from '../lambdas/core/contracts.js';
import { createExampleRepo } from '../lib/local/example-repo.js';
import { formatProgress } from '../lib/local/progress.js';
import { LocalRuntime } from '../lib/local/runtime.js';
import { startLocalServer } from '../lib/local/server.js';
import { loadWorkspace, PROJECT_ROOT, resolveWorkflowFile } from '../lib/workspace.js';

const root = join(PROJECT_ROOT, '.agentflow');
const stateDir = join(root, 'demo');
rmSync(stateDir, { recursive: true, force: true });
const repo = createExampleRepo(join(root, 'example-repo'));
const secret = process.env.AGENTFLOW_GITHUB_WEBHOOK_SECRET ?? 'agentflow-demo-secret';

const workspace = loadWorkspace(undefined, [resolveWorkflowFile('pr-review')]);
let commentPath = '';
const runtime = await LocalRuntime.start({
  stateDir,
  repoPath: repo.path,
  workspace,
  onComment: (_b, p) => {
    commentPath = p;
  },
});
const server = await startLocalServer({ runtime, secret });
let exitCode = 1;
try {
  console.log(`AgentFlow demo: reviewing a Swift + Kotlin change to the example app (${repo.path})`);
  console.log(`webhook route: ${server.url}/webhooks/github`);
  console.log(`providers: openai → ${runtime.modes.openai}, bedrock → ${runtime.modes.bedrock}\n`);
  runtime.listeners.add((e) => {
    const line = formatProgress(e);
    if (line) console.log(line);
  });

  const sample = (examples as unknown as Array<{ name: string; examples: Array<Record<string, unknown>> }>)
    .find((e) => e.name === 'pull_request')
    ?.examples.find((x) => x.action === 'opened');
  if (!sample) throw new Error('@octokit/webhooks-examples has no pull_request.opened example');
  const payload = structuredClone(sample) as {
    number: number;
    pull_request: Record<string, unknown> & { base: Record<string, unknown>; head: Record<string, unknown>; user: Record<string, unknown> };
    repository: Record<string, unknown>;
  };
  payload.number = 42;
  Object.assign(payload.pull_request, {
    number: 42,
    title: 'Checkout: pay with card; cart: coupons',
    html_url: 'https://github.com/acme/shop-apps/pull/42',
  });
  Object.assign(payload.pull_request.base, { sha: repo.base, ref: 'main' });
  Object.assign(payload.pull_request.head, { sha: repo.head, ref: 'feature/checkout-payments' });
  Object.assign(payload.pull_request.user, { login: 'mobile-dev' });
  Object.assign(payload.repository, { full_name: 'acme/shop-apps', name: 'shop-apps' });
  const body = JSON.stringify(payload);
  const delivery = randomUUID();

  const res = await fetch(`${server.url}/webhooks/github`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'pull_request',
      'x-github-delivery': delivery,
      'x-hub-signature-256': await sign(secret, body),
      'user-agent': 'GitHub-Hookshot/agentflow-demo',
    },
    body,
  });
  const answer = (await res.json()) as { executions?: Array<{ name: string; workflow: string }> };
  console.log(`POST /webhooks/github (delivery ${delivery}) → ${res.status} ${JSON.stringify(answer)}\n`);
  const name = answer.executions?.[0]?.name;
  const execution = name ? runtime.executions.get(name) : undefined;
  if (res.status !== 202 || !name || !execution) throw new Error('the webhook did not start an execution');
  const result = await execution;
  if (commentPath) console.log(`\n${readFileSync(commentPath, 'utf8')}`);
  const record = (await (
    await fetch(`${server.url}/runs/${name}`, { headers: { authorization: `Bearer ${server.token}` } })
  ).json()) as RunRecord;
  const summary = result.output as RunSummary | null;
  console.log(`comment: ${commentPath || '(none)'}`);
  console.log(`run record (GET /runs/${name}): ${record.status}, ${record.findings} findings, $${record.costUsd.toFixed(6)}`);
  console.log(
    `${result.status === 'SUCCEEDED' ? '✔' : '✖'} ${result.status.toLowerCase()} in ${result.durationMs} ms, ${result.transitions} state transitions` +
      (summary ? `, ${summary.agents.filter((a) => a.status === 'succeeded').length}/${summary.agents.length} agents succeeded` : '') +
      (result.error ? `: ${result.error}` : ''),
  );
  exitCode = result.status === 'SUCCEEDED' ? 0 : 1;
} finally {
  await server.close();
  await runtime.stop();
}
process.exit(exitCode);
