import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackApprovalNotifier, SlackThreadNotifier } from '../../../lambdas/adapters/slack.js';
import { SfnTaskCallbacks } from '../../../lambdas/adapters/task-callbacks.js';
import { type ApprovalRecord, TaskCallbackError } from '../../../lambdas/core/approvals.js';
import { ApprovalUndeliverableError } from '../../../lambdas/core/errors.js';

/**
 * A stand-in for the Slack Web API on 127.0.0.1 (`POST /api/<method>`, form-encoded arguments,
 * bearer token, `{ ok, channel, ts }` answers), recording what the real WebClient sends.
 */
let server: Server;
let url = '';
const calls: Array<{ method: string; auth: string | undefined; args: Record<string, string> }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const method = (req.url ?? '').replace(/^\/api\//, '');
      const args = req.headers['content-type']?.includes('json') ? JSON.parse(body) : Object.fromEntries(new URLSearchParams(body));
      calls.push({ method, auth: req.headers.authorization, args });
      res.writeHead(200, { 'content-type': 'application/json' });
      // Slack's answer for a channel the bot is not in (HTTP 200, ok: false).
      if (args.channel === 'not-invited') return void res.end(JSON.stringify({ ok: false, error: 'not_in_channel' }));
      res.end(JSON.stringify({ ok: true, channel: 'C0LEADS', ts: method === 'chat.update' ? args.ts : '1700000000.000100' }));
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/`;
});
afterAll(async () => {
  await new Promise((ok) => server.close(ok));
});

const record: ApprovalRecord = {
  id: 'q1w2e3r4t5y6u7i8',
  kind: 'approval',
  taskToken: `AQB${'x'.repeat(1500)}`,
  workflow: 'architecture-migration',
  execution: 'slack-t1-architecture-migration',
  phase: 'approve',
  channel: '#mobile-leads',
  approvers: { slack: ['U024BE7LH'], users: [], groups: [] },
  status: 'PENDING',
  createdAt: '2026-11-21T00:00:00.000Z',
  deadline: '2026-11-22T00:00:00.000Z',
  repository: 'acme/ios-app',
  number: 12,
  headSha: 'c'.repeat(40),
  title: 'Move checkout to MVVM',
  escalation: false,
};

describe('Class: SlackApprovalNotifier (Slack Web API wire format)', () => {
  it('posts Block Kit with Approve/Reject buttons whose value is only the approval id, then updates the message with the outcome', async () => {
    const notifier = new SlackApprovalNotifier('xoxb-test', { slackApiUrl: url });
    const ref = await notifier.request(record);
    expect(ref).toEqual({ channel: 'C0LEADS', ts: '1700000000.000100' });
    const post = calls.find((c) => c.method === 'chat.postMessage');
    expect(post?.auth).toBe('Bearer xoxb-test');
    expect(post?.args.channel).toBe('mobile-leads');
    const blocks = JSON.parse(post?.args.blocks ?? '[]') as Array<{ elements?: Array<{ action_id?: string; value?: string }> }>;
    const buttons = blocks.flatMap((b) => b.elements ?? []).filter((e) => e.action_id);
    expect(buttons.map((b) => [b.action_id, b.value])).toEqual([
      ['agentflow_approve', record.id],
      ['agentflow_reject', record.id],
    ]);
    expect(JSON.stringify(post?.args)).not.toContain(record.taskToken);

    await notifier.decided({
      ...record,
      status: 'APPROVED',
      decidedBy: '<@U024BE7LH>',
      decidedAt: '2026-11-21T01:00:00.000Z',
      message: ref,
    });
    const update = calls.find((c) => c.method === 'chat.update');
    expect(update?.args).toMatchObject({ channel: 'C0LEADS', ts: '1700000000.000100' });
    expect(update?.args.text).toContain('Approved by <@U024BE7LH>');
    expect(update?.args.blocks).not.toContain('button');
  });

  it('turns not_in_channel into ApprovalUndeliverableError naming the channel and the fix (the gate ends with it)', async () => {
    const notifier = new SlackApprovalNotifier('xoxb-test', { slackApiUrl: url });
    const e = await notifier.request({ ...record, channel: '#not-invited' }).catch((x: Error) => x);
    expect(e).toBeInstanceOf(ApprovalUndeliverableError);
    expect((e as Error).message).toBe(
      'Slack will not post the approval request to #not-invited (not_in_channel): invite the AgentFlow app to the channel, or give it the chat:write.public scope',
    );
  });

  it('posts a request run’s approval with the request and the answer data inert, then its outcome', async () => {
    // Prepare
    const notifier = new SlackApprovalNotifier('xoxb-test', { slackApiUrl: url });
    const asked: ApprovalRecord = {
      ...record,
      id: 'r1e2q3u4e5s6t7x8',
      workflow: 'support-triage',
      phase: 'refund-approval',
      repository: '',
      number: 0,
      headSha: '',
      title: '',
      request: { requester: 'slack:U0CUSTOMER', text: 'Refund <!channel> <https://evil.example|click>' },
      about: { phase: 'billing', condition: 'billing.amount_usd > 100' },
      data: { amount_usd: 150, note: '<@U0ATTACKER>' },
    };
    const before = calls.length;

    // Act
    const ref = await notifier.request(asked);
    await notifier.decided({
      ...asked,
      status: 'REJECTED',
      decidedBy: '<@U024BE7LH>',
      decidedAt: '2026-11-21T01:00:00.000Z',
      message: ref,
    });

    // Assess
    const [post, update] = calls.slice(before);
    expect(post?.method).toBe('chat.postMessage');
    expect(post?.args.blocks).toContain('billing.amount_usd &gt; 100');
    expect(post?.args.blocks).toContain('• amount_usd: 150');
    expect(update?.method).toBe('chat.update');
    expect(update?.args.text).toContain('Rejected by <@U024BE7LH>');
    for (const c of [post, update]) {
      const sent = JSON.stringify(c?.args);
      expect(sent).not.toContain('<!channel>');
      expect(sent).not.toContain('<https://evil');
      expect(sent).not.toContain('<@U0ATTACKER>');
    }
  });

  it('posts nothing for a CI gate', async () => {
    const before = calls.length;
    expect(
      await new SlackApprovalNotifier('xoxb-test', { slackApiUrl: url }).request({ ...record, kind: 'ci', channel: '' }),
    ).toBeUndefined();
    expect(calls.length).toBe(before);
  });
});

describe('Class: SlackThreadNotifier (channel posts)', () => {
  it('posts a run summary in the channel without link previews', async () => {
    const notifier = new SlackThreadNotifier('xoxb-test', { slackApiUrl: url });
    const where = await notifier.post('#mobile-reviews', '✅ *pr-review* SUCCEEDED');
    expect(where).toEqual({ channel: 'C0LEADS', ts: '1700000000.000100' });
    const post = calls.filter((c) => c.method === 'chat.postMessage').at(-1);
    expect(post?.args).toMatchObject({ channel: 'mobile-reviews', text: '✅ *pr-review* SUCCEEDED', unfurl_links: 'false' });
  });

  it('throws a post Slack refuses, naming the channel and the fix', async () => {
    const notifier = new SlackThreadNotifier('xoxb-test', { slackApiUrl: url });
    await expect(notifier.post('#not-invited', 'x')).rejects.toMatchObject({
      name: 'SlackPostError',
      message: expect.stringContaining('Slack will not post to #not-invited (not_in_channel)'),
    });
  });
});

describe('Class: SfnTaskCallbacks', () => {
  const failing = (name: string) =>
    new SfnTaskCallbacks({ send: async () => Promise.reject(Object.assign(new Error(name), { name })) } as never);

  it('turns TaskTimedOut, InvalidToken and TaskDoesNotExist into TaskCallbackError; other errors pass through', async () => {
    await expect(failing('TaskTimedOut').succeed('t', {})).rejects.toMatchObject({ reason: 'timed-out' });
    await expect(failing('InvalidToken').fail('t', 'ApprovalRejectedError', '{}')).rejects.toBeInstanceOf(TaskCallbackError);
    await expect(failing('TaskDoesNotExist').succeed('t', {})).rejects.toMatchObject({ reason: 'invalid' });
    await expect(failing('ThrottlingException').succeed('t', {})).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  it('sends the output as JSON and cuts error and cause to the API limits', async () => {
    const sent: unknown[] = [];
    const cb = new SfnTaskCallbacks({ send: async (c: { input: unknown }) => void sent.push(c.input) } as never);
    await cb.succeed('tok', { outcome: 'approved' });
    await cb.fail('tok', 'E'.repeat(300), 'c'.repeat(40_000));
    expect(sent[0]).toEqual({ taskToken: 'tok', output: '{"outcome":"approved"}' });
    expect((sent[1] as { error: string; cause: string }).error).toHaveLength(256);
    expect((sent[1] as { error: string; cause: string }).cause).toHaveLength(32_768);
  });
});
