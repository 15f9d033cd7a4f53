import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoApprovalStore } from '../../../lambdas/adapters/approvals.js';
import {
  type ApprovalRecord,
  decideApproval,
  expireApproval,
  listApprovals,
  REJECTED_ERROR,
  RequestApprovalInputSchema,
  requestApproval,
} from '../../../lambdas/core/approvals.js';
import { InvalidInputError } from '../../../lambdas/core/errors.js';
import type { ThreadNotifier } from '../../../lambdas/core/ports.js';
import { approvalBlocks, decidedBlocks } from '../../../lambdas/core/slack.js';
import { LocalApprovalNotifier, LocalTaskCallbacks } from '../../../lib/local/approvals.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../../../lib/local/runtime.js';
import { exampleChange, LEAD } from '../../helpers.js';

const SLACK_TOKEN = 'xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx';

/** A request run's RequestApproval payload as the compiled gate of a `when:` sends it. */
const requestPayload = (over: Record<string, unknown> = {}) => ({
  taskToken: 'local-token-1',
  runId: 'req-support-1',
  workflow: 'support-triage',
  phase: 'refund-approval',
  channel: '#support-leads',
  approvers: [LEAD],
  timeoutSeconds: 7200,
  request: { text: 'I was charged twice for order 1234, please refund', requester: 'slack:U0CUSTOMER' },
  about: { phase: 'billing', condition: 'billing.amount_usd > 100' },
  data: { order_id: 'A-1234', amount_usd: 250, duplicate: true, note: null },
  ...over,
});

/** The parts a message is made of, as one string (what a reader or Slack's parser sees). */
const shown = (m: { text: string; blocks: unknown[] } | undefined) => JSON.stringify(m);

describe('Schema: RequestApprovalInputSchema', () => {
  it('parses a review run’s payload from before request runs (change only) as before', () => {
    // Prepare
    const old = { taskToken: 't', runId: 'r', workflow: 'w', phase: 'p', timeoutSeconds: 60, change: exampleChange() };

    // Act
    const input = RequestApprovalInputSchema.parse(old);

    // Assess
    expect(input.change?.repository).toBe(exampleChange().repository);
    expect(input).not.toHaveProperty('request');
    expect(input.kind).toBe('approval');
  });

  it('parses a request run’s payload with the condition and the answer data, and again once parsed', () => {
    const input = RequestApprovalInputSchema.parse(requestPayload());
    expect(input.request?.requester).toBe('slack:U0CUSTOMER');
    expect(input.about).toEqual({ phase: 'billing', condition: 'billing.amount_usd > 100' });
    expect(input.data).toEqual({ order_id: 'A-1234', amount_usd: 250, duplicate: true, note: null });
    // The local runtime parses the payload, adds its token and has requestApproval parse it again.
    expect(RequestApprovalInputSchema.parse({ ...input, taskToken: 'x' }).request).toEqual(input.request);
    expect(RequestApprovalInputSchema.parse(requestPayload({ data: null })).data).toBeNull();
  });

  it('rejects a payload with both change and request, or neither, naming the field', async () => {
    const deps = { approvals: {} as never, notifier: {} as never, groups: {} };
    await expect(requestApproval(requestPayload({ change: exampleChange() }), deps)).rejects.toThrow(InvalidInputError);
    await expect(requestApproval(requestPayload({ change: exampleChange() }), deps)).rejects.toThrow(/change: give change .* or request/);
    await expect(requestApproval(requestPayload({ request: undefined }), deps)).rejects.toThrow(/change: give change/);
  });

  it('rejects a ci gate of a request run (CI reports on a commit) and answer data that is not flat', () => {
    expect(RequestApprovalInputSchema.safeParse(requestPayload({ kind: 'ci' })).error?.issues[0]?.path).toEqual(['kind']);
    expect(RequestApprovalInputSchema.safeParse(requestPayload({ data: { nested: { a: 1 } } })).success).toBe(false);
    expect(RequestApprovalInputSchema.safeParse(requestPayload({ data: { long: 'x'.repeat(201) } })).success).toBe(false);
  });
});

describe('Function: approvalBlocks and decidedBlocks (request runs)', () => {
  const record: ApprovalRecord = {
    id: 'q1w2e3r4t5y6u7i8',
    kind: 'approval',
    taskToken: `AQB${'x'.repeat(100)}`,
    workflow: 'support-triage',
    execution: 'req-support-1',
    phase: 'refund-approval',
    channel: '#support-leads',
    approvers: { slack: [LEAD], users: [], groups: [] },
    status: 'PENDING',
    createdAt: '2026-11-21T00:00:00.000Z',
    deadline: '2026-11-21T02:00:00.000Z',
    repository: '',
    number: 0,
    headSha: '',
    title: '',
    escalation: false,
    request: { requester: 'slack:U0CUSTOMER', text: 'Refund <!channel> *now* _soon_ <https://evil.example|click> @here `x`' },
    about: { phase: 'billing', condition: 'billing.amount_usd > 100' },
    data: { note: '<@U0ATTACKER> see <https://evil.example|here>', amount_usd: 250, order_id: 'A-1234', missing: null },
  };

  it('shows who asked, the request, the condition, the data fields, the workflow, phase and timeout', () => {
    // Act
    const m = approvalBlocks(record);
    const body = (m.blocks[0] as { text: { text: string } }).text.text;

    // Assess
    expect(m.text).toBe('Approval needed: support-triage › refund-approval for a request of slack:\u200bU0CUSTOMER');
    expect(body).toContain('support-triage › *refund-approval*');
    expect(body).toContain('the request of slack:\u200bU0CUSTOMER: “Refund');
    expect(body).toContain('Asked because `billing.amount_usd &gt; 100` (the answer of billing):');
    // The field the condition names comes first.
    expect(body.split('\n').filter((l) => l.startsWith('• '))[0]).toBe('• amount_usd: 250');
    expect(body).toContain('• order_id: A-1234');
    expect(body).toContain('• missing: —');
    expect(body).toContain('Decide by 2026-11-21T02:00:00.000Z (in 2 h, execution `req-support-1`).');
    expect(shown(m)).toContain('/agentflow approve q1w2e3r4t5y6u7i8');
    expect(shown(m)).not.toContain('pull request');
  });

  it('lets no mention, link or formatting of the request or the data through', () => {
    const all = [shown(approvalBlocks(record)), shown(decidedBlocks({ ...record, status: 'REJECTED', decidedBy: `<@${LEAD}>` }))];
    for (const s of all) {
      expect(s).not.toContain('<!channel>');
      expect(s).not.toContain('<@U0ATTACKER>');
      expect(s).not.toContain('<https://evil');
      expect(s).not.toContain('https://evil');
      expect(s).not.toContain('@here');
      expect(s).not.toContain('*now*');
      expect(s).not.toContain('_soon_');
      expect(s).not.toContain('`x`');
      expect(s).toContain('&lt;!channel&gt;');
    }
    expect(all[0]).toContain('&lt;@\u200bU0ATTACKER&gt;');
  });

  it('caps the data fields at 10 and says how many more there are', () => {
    const data = Object.fromEntries(Array.from({ length: 13 }, (_, i) => [`f${i}`, 'v'.repeat(200)]));
    const body = (approvalBlocks({ ...record, data }).blocks[0] as { text: { text: string } }).text.text;
    expect(body.split('\n').filter((l) => l.startsWith('• '))).toHaveLength(10);
    expect(body).toContain('…and 3 more fields');
    expect(body).not.toContain('v'.repeat(100));
  });

  it('makes a review run’s pull request title inert too', () => {
    const review = { ...record, request: undefined, about: undefined, data: undefined, repository: 'acme/ios-app', number: 12 };
    const m = approvalBlocks({ ...review, title: 'Fix <!channel> <https://evil.example|x>' });
    expect(shown(m)).not.toContain('<!channel>');
    expect(shown(m)).not.toContain('<https://evil');
    expect(shown(m)).toContain('<https://github.com/acme/ios-app/pull/12|acme/ios-app#12>');
    expect(shown(m)).toContain('on the pull request');
  });
});

describe('Function: requestApproval and decideApproval (request runs, on dynalite)', () => {
  let table: LocalTable;
  let approvals: DynamoApprovalStore;
  const lines: string[] = [];
  const notifier = new LocalApprovalNotifier((l) => lines.push(l));
  const callbacks = new LocalTaskCallbacks();
  const now = () => new Date('2026-11-21T00:00:00.000Z');
  let seq = 0;

  beforeAll(async () => {
    table = await startLocalTable();
    approvals = new DynamoApprovalStore(table.doc, LOCAL_TABLE);
  });
  afterAll(async () => {
    await table.stop();
  });

  /** Requests an approval for a request run and registers its waiting task. */
  async function requested(over: Record<string, unknown> = {}, threads?: ThreadNotifier) {
    const taskToken = `local-token-${++seq}`;
    const waiting = callbacks.wait(taskToken, 3600);
    waiting.catch(() => undefined);
    const { approvalId } = await requestApproval(requestPayload({ taskToken, runId: `req-${seq}`, ...over }), {
      approvals,
      notifier,
      ...(threads ? { threads } : {}),
      groups: {},
      now,
    });
    return { id: approvalId, waiting, runId: `req-${seq}` };
  }

  describe('a request run’s Slack thread (`/agentflow ask`)', () => {
    const thread = { channel: 'C0ASKS', ts: '1764460800.000100' };
    const asked = {
      request: { text: 'Refund <!channel> <https://evil.example|now>', requester: 'slack:U0CUSTOMER', thread },
      data: { note: '<@U0ATTACKER> see <https://evil.example|here>', amount_usd: 250, order_id: 'A-1234' },
    };
    /** A thread notifier that keeps what it was asked to post. */
    const recorder = () => new LocalApprovalNotifier(() => undefined);

    it('tells the thread what the gate waits for: the phase, its channel, the condition and how long, no approver and no data', async () => {
      // Prepare
      const threads = recorder();

      // Act
      const { id } = await requested(asked, threads);

      // Assess
      expect(threads.replies).toEqual([
        {
          ...thread,
          text: "⏸ Waiting for a person's approval (`refund-approval` in #support-leads, asked because `billing.amount_usd &gt; 100`), up to 2 h.",
        },
      ]);
      const text = threads.replies[0]?.text ?? '';
      for (const value of ['250', 'A-1234', 'ATTACKER', 'evil', LEAD, 'Refund']) expect(text).not.toContain(value);
      expect((await approvals.get(id))?.request?.thread).toEqual(thread);
    });

    it('keeps a hostile condition inert in the thread', async () => {
      const threads = recorder();
      await requested({ ...asked, about: { phase: 'billing', condition: 'billing.note == "<!channel> `x` <@U0ATTACKER>"' } }, threads);
      const text = threads.replies[0]?.text ?? '';
      expect(text).not.toMatch(/<[!@]/);
      expect(text).toContain('&lt;!channel&gt;');
      expect(text).not.toContain('`x`');
    });

    it('tells the thread who approved, who rejected, and when nobody decided in time', async () => {
      // Prepare
      const threads = recorder();
      const deps = { approvals, callbacks, notifier, threads, now };
      const approved = await requested(asked, threads);
      const rejected = await requested(asked, threads);
      const expired = await requested(asked, threads);

      // Act
      await decideApproval(approved.id, 'approve', { slack: LEAD }, deps);
      await decideApproval(rejected.id, 'reject', { slack: LEAD }, deps);
      await expireApproval({ action: 'expire', runId: expired.runId, phase: 'refund-approval' }, deps);

      // Assess
      expect(threads.replies.map((r) => r.text).filter((t) => !t.startsWith('⏸'))).toEqual([
        `✅ Approved by <@${LEAD}>, going on.`,
        `❌ Rejected by <@${LEAD}>: the run stops.`,
        '⌛ Nobody decided `refund-approval` in time.',
      ]);
      await expect(approved.waiting).resolves.toMatchObject({ outcome: 'approved' });
      await expect(rejected.waiting).rejects.toMatchObject({ name: REJECTED_ERROR });
    });

    it('tells the thread once when a decision comes after the deadline, and not again on the timeout path', async () => {
      const threads = recorder();
      const { id, runId } = await requested(asked, threads);
      const later = () => new Date('2026-11-21T03:00:00.000Z');
      expect((await decideApproval(id, 'approve', { slack: LEAD }, { approvals, callbacks, notifier, threads, now: later })).outcome).toBe(
        'expired',
      );
      expect(await expireApproval({ action: 'expire', runId, phase: 'refund-approval' }, { approvals, notifier, threads })).toEqual({
        expired: false,
      });
      expect(threads.replies.map((r) => r.text).slice(1)).toEqual(['⌛ Nobody decided `refund-approval` in time.']);
    });

    it('asks, decides and expires even when every thread post fails', async () => {
      // Prepare
      const failing: ThreadNotifier = {
        start: async () => undefined,
        reply: async () => {
          throw new Error('channel_not_found');
        },
      };
      const deps = { approvals, callbacks, notifier, threads: failing, now };

      // Act
      const first = await requested(asked, failing);
      const second = await requested(asked, failing);

      // Assess
      expect((await decideApproval(first.id, 'approve', { slack: LEAD }, deps)).outcome).toBe('approved');
      await expect(first.waiting).resolves.toMatchObject({ outcome: 'approved' });
      expect(await expireApproval({ action: 'expire', runId: second.runId, phase: 'refund-approval' }, deps)).toEqual({ expired: true });
    });

    it('posts nothing for a review run’s gate or a request without a thread', async () => {
      const threads = recorder();
      const deps = { approvals, callbacks, notifier, threads, now };
      const review = await requested({ request: undefined, about: undefined, data: undefined, change: exampleChange() }, threads);
      const unthreaded = await requested({}, threads);
      await decideApproval(review.id, 'approve', { slack: LEAD }, deps);
      await decideApproval(unthreaded.id, 'reject', { slack: LEAD }, deps);
      expect(threads.replies).toEqual([]);
    });
  });

  it('stores the requester, the request’s start with secrets redacted, the condition and the data', async () => {
    // Prepare
    const text = `Refund order 1234, my token is ${SLACK_TOKEN} ${'and more '.repeat(40)}`;

    // Act
    const { id } = await requested({
      request: { text, requester: 'slack:U0CUSTOMER' },
      data: { note: `key ${SLACK_TOKEN}`, amount_usd: 250 },
    });

    // Assess
    const record = await approvals.get(id);
    expect(record).toMatchObject({
      kind: 'approval',
      status: 'PENDING',
      workflow: 'support-triage',
      phase: 'refund-approval',
      repository: '',
      number: 0,
      about: { phase: 'billing', condition: 'billing.amount_usd > 100' },
      data: { note: 'key [REDACTED:slack-token]', amount_usd: 250 },
      approvers: { slack: [LEAD], users: [], groups: [] },
    });
    expect(record?.request?.requester).toBe('slack:U0CUSTOMER');
    expect(record?.request?.text).toMatch(/^Refund order 1234, my token is \[REDACTED:slack-token\] and more/);
    expect(record?.request?.text).toHaveLength(200);
    expect(JSON.stringify(record)).not.toContain(SLACK_TOKEN);
    expect(shown(notifier.messages.get(id))).not.toContain(SLACK_TOKEN);
    expect(shown(notifier.messages.get(id))).toContain('billing.amount_usd &gt; 100');
    expect(await listApprovals(approvals, now())).toContainEqual(expect.objectContaining({ id, requester: 'slack:U0CUSTOMER' }));
  });

  it('completes the task on Approve and updates the message with the request and who approved', async () => {
    const { id, waiting } = await requested();
    const decision = await decideApproval(id, 'approve', { slack: LEAD }, { approvals, callbacks, notifier, now });
    expect(decision.outcome).toBe('approved');
    await expect(waiting).resolves.toMatchObject({ outcome: 'approved', by: `<@${LEAD}>`, approvalId: id });
    expect((await approvals.get(id))?.status).toBe('APPROVED');
    const message = notifier.messages.get(id);
    expect(message?.updated).toBe(true);
    expect(message?.text).toContain(`Approved by <@${LEAD}>`);
    expect(shown(message)).toContain('the request of slack:\u200bU0CUSTOMER');
  });

  it('fails the task with ApprovalRejectedError on Reject and shows it', async () => {
    const { id, waiting } = await requested();
    expect((await decideApproval(id, 'reject', { slack: LEAD }, { approvals, callbacks, notifier, now })).outcome).toBe('rejected');
    await expect(waiting).rejects.toMatchObject({ name: REJECTED_ERROR });
    expect(notifier.messages.get(id)?.text).toContain(`Rejected by <@${LEAD}>`);
  });

  it('marks the request expired on the gate’s timeout path and shows it', async () => {
    const { id } = await requested();
    const runId = (await approvals.get(id))?.execution as string;
    expect(await expireApproval({ action: 'expire', runId, phase: 'refund-approval' }, { approvals, notifier })).toEqual({ expired: true });
    expect((await approvals.get(id))?.status).toBe('EXPIRED');
    expect(notifier.messages.get(id)?.text).toContain('Expired at');
    expect((await decideApproval(id, 'approve', { slack: LEAD }, { approvals, callbacks, notifier, now })).outcome).toBe('expired');
  });

  it('refuses a pull request comment’s decision from someone who is not an approver, and the approver still decides', async () => {
    const { id, waiting } = await requested();
    const deps = { approvals, callbacks, notifier, now };
    const refused = await decideApproval(id, 'approve', { user: { forge: 'github', name: 'octocat' } }, deps);
    expect(refused.outcome).toBe('forbidden');
    expect((await approvals.get(id))?.status).toBe('PENDING');
    expect((await decideApproval(id, 'approve', { slack: LEAD }, deps)).outcome).toBe('approved');
    await expect(waiting).resolves.toMatchObject({ outcome: 'approved' });
  });

  it('reads a record stored before request runs (GitHub-only approvers, no request fields)', async () => {
    // Prepare
    await table.doc.send(
      new PutCommand({
        TableName: LOCAL_TABLE,
        Item: {
          pk: 'APPROVAL#old-record-0001',
          sk: 'APPROVAL',
          id: 'old-record-0001',
          kind: 'approval',
          taskToken: 't',
          workflow: 'architecture-migration',
          execution: 'mig-1',
          phase: 'approve',
          channel: '#mobile-leads',
          approvers: { slack: [LEAD], github: ['octocat'], teams: [] },
          status: 'PENDING',
          createdAt: '2026-11-01T00:00:00.000Z',
          deadline: '2026-11-02T00:00:00.000Z',
          repository: 'acme/ios-app',
          number: 12,
          headSha: 'c'.repeat(40),
          title: 'Move checkout to MVVM',
        },
      }),
    );

    // Act
    const record = await approvals.get('old-record-0001');

    // Assess
    expect(record).toMatchObject({ repository: 'acme/ios-app', number: 12, escalation: false });
    expect(record?.request).toBeUndefined();
    expect(record?.approvers.users).toEqual([{ forge: 'github', name: 'octocat' }]);
    expect(shown(approvalBlocks(record as ApprovalRecord))).toContain('acme/ios-app#12');
  });
});
