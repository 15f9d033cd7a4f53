import { describe, expect, it } from 'vitest';
import { type ExecutionInput, MAX_REQUEST_CHARS } from '../../../lambdas/core/contracts.js';
import type { ExecutionStarter, RunStore, ThreadNotifier } from '../../../lambdas/core/ports.js';
import { slackSignature } from '../../../lambdas/core/signatures.js';
import { COMMAND_HELP, parseCommand } from '../../../lambdas/core/slack.js';
import type { WorkflowTrigger } from '../../../lambdas/core/triggers.js';
import { handleSlackCommand, resolveAsk, type SlackDeps } from '../../../lambdas/webhook/slack.js';
import { LEAD } from '../../helpers.js';

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

const command = (text: string, user = LEAD, trigger = 'trig-1') =>
  new URLSearchParams({ command: '/agentflow', text, user_id: user, trigger_id: trigger, channel_id: 'C-SUPPORT' }).toString();

const SUPPORT: WorkflowTrigger = { id: 'support', events: ['request'], runBy: ['U024BE7LH'] };
const IT: WorkflowTrigger = { id: 'it-helpdesk', events: ['request'] };
const REVIEW: WorkflowTrigger = { id: 'pr-review', events: ['pull_request.opened', 'manual'] };

/** Slack deps with a recording starter and thread notifier; `start` replaces the starter's behaviour. */
function deps(over: Partial<SlackDeps> = {}, start?: ExecutionStarter['start']) {
  const started: Array<{ workflow: string; name: string; input: ExecutionInput }> = [];
  const threads: Array<{ channel: string; text: string }> = [];
  const notifier: ThreadNotifier = {
    start: async (channel, text) => {
      threads.push({ channel, text });
      return { channel, ts: '1700000000.000100' };
    },
    reply: async () => undefined,
  };
  const starter: ExecutionStarter = {
    start:
      start ??
      (async (workflow, name, input) => {
        started.push({ workflow, name, input: input as ExecutionInput });
        return { name, started: true };
      }),
  };
  const d: SlackDeps = {
    signingSecrets: async () => [SIGNING],
    workflows: [SUPPORT, IT, REVIEW],
    groups: {},
    starter,
    runs: {} as RunStore,
    changes: {} as SlackDeps['changes'],
    approvals: {} as SlackDeps['approvals'],
    threads: notifier,
    ...over,
  };
  return { deps: d, started, threads };
}

const answer = async (text: string, d: SlackDeps, user = LEAD) =>
  JSON.parse((await handleSlackCommand(signed(command(text, user)), d)).body) as { response_type: string; text: string };

describe('Function: parseCommand (ask)', () => {
  it('keeps the words after ask as typed, line breaks included', () => {
    expect(parseCommand('ask support I was charged\ntwice')).toEqual({ kind: 'ask', text: 'support I was charged\ntwice' });
    expect(parseCommand('  ASK   where is my order?')).toEqual({ kind: 'ask', text: 'where is my order?' });
  });

  it('refuses an ask without a request, saying what to write', () => {
    expect(parseCommand('ask')).toEqual({ kind: 'error', message: 'What is your request? Write `/agentflow ask [<workflow>] <request>`.' });
    expect(COMMAND_HELP).toContain('/agentflow ask [<workflow>] <request>');
  });
});

describe('Function: resolveAsk', () => {
  it('takes the request workflow the first word names, else the default, else the only one', () => {
    expect(resolveAsk('it-helpdesk my laptop is slow', [SUPPORT, IT], undefined)).toEqual({ workflow: IT, request: 'my laptop is slow' });
    expect(resolveAsk('my laptop is slow', [SUPPORT, IT], 'it-helpdesk')).toEqual({ workflow: IT, request: 'my laptop is slow' });
    expect(resolveAsk('refund order 1234', [SUPPORT, REVIEW], undefined)).toEqual({ workflow: SUPPORT, request: 'refund order 1234' });
    // A review workflow's name is part of the request: only request workflows are asked.
    expect(resolveAsk('pr-review is slow', [SUPPORT, REVIEW], undefined)).toEqual({ workflow: SUPPORT, request: 'pr-review is slow' });
  });

  it('refuses to guess between several request workflows, and a default that answers no requests', () => {
    expect(resolveAsk('my laptop is slow', [SUPPORT, IT], undefined)).toEqual({
      answer: 'Which workflow? Write `/agentflow ask <workflow> <request>` with one of `support`, `it-helpdesk`.',
    });
    expect(resolveAsk('x', [SUPPORT, IT, REVIEW], 'pr-review')).toEqual({
      answer: 'The default request workflow `pr-review` does not answer requests; name one: `support`, `it-helpdesk`.',
    });
    expect(resolveAsk('support', [SUPPORT, IT], undefined)).toEqual({
      answer: 'What should `support` do? Write `/agentflow ask support <request>`.',
    });
    expect(resolveAsk('x', [REVIEW], undefined)).toEqual({ answer: 'No workflow here answers requests (none has `trigger: request`).' });
  });
});

describe('Function: handleSlackCommand (ask)', () => {
  it("posts the thread's first message and starts the request workflow with the request, the requester and the thread", async () => {
    // Prepare
    const { deps: d, started, threads } = deps();

    // Act
    const res = await answer('ask support I was charged twice for order 1234 <!channel>', d);

    // Assess
    expect(res.response_type).toBe('ephemeral');
    expect(res.text).toBe("Asked `support` (execution `slack-trig-1-support`): the answer comes in this channel's thread.");
    expect(threads).toEqual([{ channel: 'C-SUPPORT', text: expect.stringMatching(/^⏳ Working on: I was charged twice/) }]);
    expect(threads[0]?.text).toContain('&lt;!channel&gt;');
    expect(started).toEqual([
      {
        workflow: 'support',
        name: 'slack-trig-1-support',
        input: {
          runId: 'slack-trig-1-support',
          workflow: 'support',
          request: {
            text: 'I was charged twice for order 1234 <!channel>',
            requester: `slack:${LEAD}`,
            thread: { channel: 'C-SUPPORT', ts: '1700000000.000100' },
          },
        },
      },
    ]);
  });

  it('points /agentflow run of a request workflow to /agentflow ask', async () => {
    const { deps: d, started } = deps();
    expect((await answer('run support repo=acme/app', d)).text).toBe(
      '`support` answers requests: write `/agentflow ask support <request>`.',
    );
    expect(started).toEqual([]);
  });

  it("refuses a user who is not in the workflow's run_by, starting nothing", async () => {
    const { deps: d, started, threads } = deps();
    const res = await answer('ask support refund me', d, 'U0STRANGER');
    expect(res.text).toBe('You may not ask `support`; ask someone in U024BE7LH.');
    expect(started).toEqual([]);
    expect(threads).toEqual([]);
  });

  it('cuts a request longer than MAX_REQUEST_CHARS and says so', async () => {
    const { deps: d, started } = deps({ workflows: [IT] });
    const res = await answer(`ask ${'a'.repeat(MAX_REQUEST_CHARS + 10)}`, d);
    expect(res.text).toContain(`Your request was cut at ${MAX_REQUEST_CHARS.toLocaleString('en-US')} characters.`);
    expect(started[0]?.input.request?.text).toHaveLength(MAX_REQUEST_CHARS);
  });

  it('shows a request run by who asked, its tool calls and cost, with its reason made inert', async () => {
    const record = {
      runId: 'slack-trig-1-support',
      workflow: 'support',
      status: 'SUCCEEDED' as const,
      repository: '',
      number: 0,
      headSha: '',
      startedAt: '2026-11-30T00:00:00.000Z',
      costUsd: 0.0042,
      findings: 0,
      agents: [],
      toolCalls: 2,
      request: { requester: 'slack:U1', text: 'refund' },
    };
    const runs = { get: async () => record } as unknown as RunStore;
    const { deps: d } = deps({ runs });
    expect((await answer('status slack-trig-1-support', d)).text).toBe(
      '`slack-trig-1-support` (support) for slack:U1: *SUCCEEDED* — 2 tool calls, $0.0042',
    );
    const partial = { ...record, status: 'PARTIAL' as const, reason: 'stopped early: see <https://evil.example|here>' };
    const { deps: e } = deps({ runs: { get: async () => partial } as unknown as RunStore });
    expect((await answer('status slack-trig-1-support', e)).text).not.toContain('<https');
  });

  it('answers within the time Slack waits when Step Functions does not, saying to check the run before asking again (it may have started)', async () => {
    // Prepare: a start that never answers; 50 ms left to answer.
    const { deps: d } = deps({ remainingMs: () => 50 }, () => new Promise(() => undefined));

    // Act
    const res = await answer('ask it-helpdesk my laptop is slow', d);

    // Assess
    expect(res.text).toBe(
      'Could not ask `it-helpdesk`: Step Functions did not answer in time; check `/agentflow status slack-trig-1-it-helpdesk` before asking again.',
    );
  });

  it('removes a secret pasted into the request before it is posted in the channel or started', async () => {
    // Prepare
    const { deps: d, started, threads } = deps();

    // Act
    await answer('ask it-helpdesk please rotate AKIAQ3EGUIOE5TNGXX7Z for the build bot', d);

    // Assess
    expect(started).toHaveLength(1);
    expect(JSON.stringify(started)).not.toContain('AKIAQ3EGUIOE5TNGXX7Z');
    expect(JSON.stringify(threads)).not.toContain('AKIAQ3EGUIOE5TNGXX7Z');
    expect(JSON.stringify(started)).toContain('please rotate');
  });
});
