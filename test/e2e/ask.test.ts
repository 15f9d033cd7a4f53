import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromMicro } from '../../lambdas/core/budget.js';
import { slackSignature } from '../../lambdas/core/signatures.js';
import { readSpend } from '../../lambdas/core/spend.js';
import { type IngressDeps, routeIngress } from '../../lambdas/webhook/routes.js';
import type { LocalRuntime } from '../../lib/local/runtime.js';
import { localIngress } from '../../lib/local/server.js';
import { loadWorkspace, WORKFLOWS_DIR } from '../../lib/workspace.js';
import { exampleRepo, LEAD, tempDir, testRuntime } from '../helpers.js';

const SIGNING = 'local-slack-signing-secret';

function signed(body: string, at = Math.floor(Date.now() / 1000)) {
  return {
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(at),
      'x-slack-signature': slackSignature(SIGNING, at, body),
    },
    body,
  };
}

const command = (text: string, trigger: string) =>
  new URLSearchParams({ command: '/agentflow', text, user_id: LEAD, trigger_id: trigger, channel_id: 'C-SUPPORT' }).toString();

/** A workflows folder with one request workflow (`ask`) whose answer agent runs offline. */
function askWorkflows(): string {
  const dir = join(tempDir(), 'workflows');
  mkdirSync(join(dir, 'agents'), { recursive: true });
  copyFileSync(join(WORKFLOWS_DIR, 'models.yml'), join(dir, 'models.yml'));
  writeFileSync(
    join(dir, 'agents', 'helper.yml'),
    "name: helper\ndescription: Answers a person's question\nprovider: bedrock\nmodel: claude-haiku\noutput: answer\nprompt: You answer a person's question about their order in a few sentences. Be precise and kind.\n",
  );
  writeFileSync(
    join(dir, 'ask.yml'),
    'name: Ask\ntrigger: { event: request, run_by: [mobile-leads] }\nphases:\n  - name: reply\n    agents: [helper]\n',
  );
  return dir;
}

describe('e2e: /agentflow ask on the local runtime', () => {
  let rt: LocalRuntime;
  let deps: IngressDeps;
  beforeAll(async () => {
    rt = await testRuntime(exampleRepo(), { workspace: loadWorkspace(askWorkflows()) });
    deps = localIngress(rt, { secret: 'gh', slackSigningSecret: SIGNING });
  });
  afterAll(async () => {
    await rt.stop();
  });

  it("answers in the thread of the message it posted: the first message becomes the outcome, the answer a reply; the record has the ledger's cost", async () => {
    // Act
    const res = await routeIngress(
      '/webhooks/slack/commands',
      signed(command('ask Where is my order 1234? <!channel>', 'trig-ask-1')),
      deps,
    );

    // Assess: the ephemeral answer names the execution, which runs to the end.
    const text = JSON.parse(res.body).text as string;
    const name = /execution `([^`]+)`/.exec(text)?.[1] ?? '';
    expect(name).toBe('slack-trig-ask-1-ask');
    expect((await rt.executions.get(name))?.status).toBe('SUCCEEDED');
    const record = await rt.runs.get(name);
    expect(record).toMatchObject({
      status: 'SUCCEEDED',
      workflow: 'ask',
      request: { requester: `slack:${LEAD}`, text: 'Where is my order 1234? <!channel>' },
      phases: [{ phase: 'reply', status: 'ran' }],
      toolCalls: 0,
      answerRef: expect.any(String),
    });
    // The cost is what the agent's spend record settled (the budget ledger's figure).
    const spend = await readSpend(rt.artifacts, name, 'reply', 'helper');
    expect(record?.costUsd).toBe(fromMicro(spend.invocations.reduce((s, i) => s + i.costMicro, 0)));
    expect(record?.costUsd).toBeGreaterThan(0);
    // The thread: "Working on…" (inert), then that message updated to the outcome, and the answer as a reply.
    const [update] = rt.notifier.updates;
    expect(update?.channel).toBe('C-SUPPORT');
    expect(update?.text).toMatch(/^✅ Answered: Where is my order 1234\?/);
    expect(update?.text).toContain(`$${record?.costUsd.toFixed(4)}`);
    expect(update?.text).not.toContain('<!channel>');
    const replies = rt.notifier.replies.filter((r) => r.ts === update?.ts);
    expect(replies).toHaveLength(1);
    expect(replies[0]?.text.length).toBeGreaterThan(0);
    expect(replies[0]?.text).not.toMatch(/<[!@]/);
  });

  it('refuses someone outside run_by and starts nothing', async () => {
    const before = rt.executions.size;
    const body = new URLSearchParams({
      command: '/agentflow',
      text: 'ask hello',
      user_id: 'U0STRANGER',
      trigger_id: 't2',
      channel_id: 'C1',
    });
    const res = await routeIngress('/webhooks/slack/commands', signed(body.toString()), deps);
    expect(JSON.parse(res.body).text).toBe('You may not ask `ask`; ask someone in mobile-leads.');
    expect(rt.executions.size).toBe(before);
  });
});
