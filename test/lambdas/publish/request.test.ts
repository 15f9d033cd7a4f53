import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsArtifactStore } from '../../../lambdas/adapters/artifacts.js';
import { everyForge } from '../../../lambdas/adapters/comments.js';
import { SlackThreadNotifier } from '../../../lambdas/adapters/slack.js';
import type { RunRecord, RunSummary } from '../../../lambdas/core/contracts.js';
import type { ChannelNotifier, ForgePublisher, RunStore } from '../../../lambdas/core/ports.js';
import { spendKey } from '../../../lambdas/core/spend.js';
import { publish } from '../../../lambdas/publish/publish.js';
import { tempDir } from '../../helpers.js';

/** Run records in a map (the port's contract; DynamoRunStore is tested against dynalite elsewhere). */
class MemoryRuns implements RunStore {
  readonly records = new Map<string, RunRecord>();
  async put(r: RunRecord) {
    this.records.set(r.runId, r);
  }
  async create(r: RunRecord) {
    if (this.records.has(r.runId)) return false;
    this.records.set(r.runId, r);
    return true;
  }
  async get(id: string) {
    return this.records.get(id);
  }
  async list() {
    return [...this.records.values()];
  }
}

/** A forge no request run may touch: every call fails the test. */
const untouchable = new Proxy({} as ForgePublisher, {
  get: (_t, name) => () => {
    throw new Error(`a request run called the forge (${String(name)})`);
  },
});

/**
 * A stand-in for the Slack Web API on 127.0.0.1 (`POST /api/<method>`, `{ ok, channel, ts }`
 * answers), recording what the real WebClient of `SlackThreadNotifier` sends.
 */
let server: Server;
let slackApiUrl = '';
const calls: Array<{ method: string; args: Record<string, string> }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const method = (req.url ?? '').replace(/^\/api\//, '');
      const args = req.headers['content-type']?.includes('json') ? JSON.parse(body) : Object.fromEntries(new URLSearchParams(body));
      calls.push({ method, args });
      res.writeHead(200, { 'content-type': 'application/json' });
      if (args.channel === 'C-GONE') return void res.end(JSON.stringify({ ok: false, error: 'channel_not_found' }));
      if (method === 'chat.update' && args.ts === 'deleted') return void res.end(JSON.stringify({ ok: false, error: 'message_not_found' }));
      res.end(JSON.stringify({ ok: true, channel: args.channel, ts: method === 'chat.update' ? args.ts : '1700000000.000200' }));
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  slackApiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/`;
});
afterAll(async () => {
  await new Promise((ok) => server.close(ok));
});

const THREAD = { channel: 'C-SUPPORT', ts: '1700000000.000100' };
const REQUEST = { text: 'I was charged twice for order 1234, please refund one.', requester: 'slack:U1', thread: THREAD };

const summary = (over: Partial<RunSummary> = {}): RunSummary => ({
  workflow: 'support',
  status: 'SUCCEEDED',
  excluded: {},
  findings: 0,
  bySeverity: {},
  costUsd: 0.004356,
  inputTokens: 3000,
  outputTokens: 600,
  agents: [],
  offline: true,
  relocated: 0,
  gates: {},
  phases: [
    { phase: 'triage', status: 'ran' },
    { phase: 'tech', status: 'skipped', reason: 'route "triage" chose "billing"' },
  ],
  toolCalls: 2,
  toolErrors: 1,
  ...over,
});

function env() {
  const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
  const runs = new MemoryRuns();
  const posts: Array<{ channel: string; text: string }> = [];
  const channels: ChannelNotifier = {
    post: async (channel, text) => {
      posts.push({ channel, text });
      return { channel, ts: '1' };
    },
  };
  const threads = new SlackThreadNotifier('xoxb-test', { slackApiUrl });
  return { artifacts, runs, posts, channels, threads, deps: { artifacts, runs, forges: everyForge(untouchable), threads, channels } };
}

/** The Slack calls made since `from`, for the request's thread. */
const threadCalls = (from: number) => calls.slice(from).filter((c) => c.args.channel === THREAD.channel);

describe('Function: publish (kind answer)', () => {
  it('records the run with the ledger cost, the redacted request, the phases and tool calls, and answers in the thread', async () => {
    // Prepare
    const { artifacts, runs, posts, deps } = env();
    const answerRef = await artifacts.putText('runs/r1/answers/reply.md', 'Refunded $40.00 for order 1234.\nAnything else?');
    const before = calls.length;

    // Act
    const out = await publish(
      {
        kind: 'answer',
        runId: 'r1',
        workflow: 'support',
        request: { ...REQUEST, text: `${REQUEST.text} my token is ghp_0123456789abcdefghijklmnopqrstuvwxyz01` },
        report: { reportRef: 'runs/r1/report.json', summary: summary({ answerRef }) },
        outputs: { databaseLog: true, slack: '#support-log' },
      },
      deps,
    );

    // Assess
    expect(out).toEqual({ commentUrl: null });
    const record = runs.records.get('r1');
    expect(record).toMatchObject({
      status: 'SUCCEEDED',
      costUsd: 0.004356,
      repository: '',
      number: 0,
      answerRef,
      reportRef: 'runs/r1/report.json',
      toolCalls: 2,
      toolErrors: 1,
      phases: summary().phases,
      request: { requester: 'slack:U1', text: expect.stringContaining('I was charged twice') },
    });
    expect(record?.request?.text).not.toContain('ghp_');
    expect(record?.slackError).toBeUndefined();
    const [update, reply, ...more] = threadCalls(before);
    expect(more).toEqual([]);
    expect(update).toMatchObject({ method: 'chat.update', args: { channel: THREAD.channel, ts: THREAD.ts } });
    expect(update?.args.text).toMatch(/^✅ Answered: I was charged twice/);
    expect(update?.args.text).toContain('2 tool calls (1 failed or refused), $0.0044');
    expect(update?.args.text).not.toContain('ghp_');
    expect(reply).toMatchObject({ method: 'chat.postMessage', args: { thread_ts: THREAD.ts, unfurl_links: 'false' } });
    expect(reply?.args.text).toBe('Refunded $40.00 for order 1234.\nAnything else?');
    expect(posts).toEqual([{ channel: '#support-log', text: expect.stringMatching(/^✅ \*support\* SUCCEEDED for slack:\u200bU1: /) }]);
    expect(posts[0]?.text).toContain('$0.0044');
  });

  it('posts a hostile answer as data: no <!channel>, mention or link survives, and a long answer is cut saying where the rest is', async () => {
    const { artifacts, deps } = env();
    const hostile = `<!channel> <@U0ADMIN> click <https://evil.example/login|your bank> or https://evil.example now, @here\n${'x'.repeat(4000)}`;
    const answerRef = await artifacts.putText('runs/r2/answers/reply.md', hostile);
    const before = calls.length;

    await publish(
      {
        kind: 'answer',
        runId: 'r2',
        workflow: 'support',
        request: REQUEST,
        report: { reportRef: 'runs/r2/report.json', summary: summary({ answerRef }) },
        outputs: { databaseLog: false },
      },
      deps,
    );

    const reply = threadCalls(before).find((c) => c.method === 'chat.postMessage');
    const text = reply?.args.text ?? '';
    expect(text).not.toMatch(/<[!@#]|<https?:/);
    expect(text).not.toMatch(/https?:\/\//);
    expect(text).not.toMatch(/@here\b/);
    expect(text).not.toMatch(/evil\.example/);
    expect(text.startsWith('&lt;!channel&gt; &lt;@\u200bU0ADMIN&gt;')).toBe(true);
    expect(text).toContain(
      `_(cut at 3,000 of ${hostile.length.toLocaleString('en-US')} characters: the whole answer is the run's artifact`,
    );
    expect(text.length).toBeLessThan(40_000);
  });

  it('replies with the outcome when the first message cannot be updated, then with the answer', async () => {
    const { artifacts, runs, deps } = env();
    const answerRef = await artifacts.putText('runs/r6/answers/reply.md', 'Done.');
    const before = calls.length;
    await publish(
      {
        kind: 'answer',
        runId: 'r6',
        workflow: 'support',
        request: { ...REQUEST, thread: { channel: THREAD.channel, ts: 'deleted' } },
        report: { reportRef: 'runs/r6/report.json', summary: summary({ answerRef }) },
        outputs: { databaseLog: false },
      },
      deps,
    );
    const made = threadCalls(before).map((c) => [c.method, c.args.text?.slice(0, 10)]);
    expect(made).toEqual([
      ['chat.update', '✅ Answered'],
      ['chat.postMessage', '✅ Answered'],
      ['chat.postMessage', 'Done.'],
    ]);
    expect(runs.records.get('r6')?.slackError).toBeUndefined();
  });

  it('says there is no answer when no phase answered, and records a thread Slack refused', async () => {
    const { runs, deps } = env();
    await publish(
      {
        kind: 'answer',
        runId: 'r3',
        workflow: 'support',
        request: { ...REQUEST, thread: { channel: 'C-GONE', ts: '1.2' } },
        report: { reportRef: 'runs/r3/report.json', summary: summary({ status: 'PARTIAL', reason: 'no phase answered the request' }) },
        outputs: { databaseLog: false },
      },
      deps,
    );
    expect(runs.records.get('r3')).toMatchObject({
      status: 'PARTIAL',
      reason: 'no phase answered the request',
      slackError: expect.stringContaining("the request's Slack thread"),
      agents: [],
    });
  });
});

/** Writes an agent's spend record: one invocation per cost (micro-USD, as the ledger settled it). */
async function spendRecord(artifacts: FsArtifactStore, runId: string, phase: string, agent: string, costsMicro: number[]) {
  await artifacts.putJson(spendKey(runId, phase, agent), {
    agent,
    phase,
    invocations: costsMicro.map((costMicro, i) => ({
      id: `i${i + 1}`,
      startedAt: '2026-11-30T00:00:00.000Z',
      costMicro,
      inputTokens: 10,
      outputTokens: 1,
      cachedTokens: 0,
      calls: 1,
      cacheHits: 0,
      repairs: 0,
    })),
  });
}

describe('Function: publish (failed and stopped request runs)', () => {
  it('records a stopped request with what the agents before the stop spent and tells the thread, without the forge', async () => {
    const { artifacts, runs, deps } = env();
    await spendRecord(artifacts, 'r4', 'guard', 'guardrail', [1500]);
    const before = calls.length;
    await publish(
      {
        kind: 'stopped',
        runId: 'r4',
        workflow: 'support',
        request: REQUEST,
        reason: 'guardrail "guard" blocked the request (denied topic: legal advice)',
        results: { guard: [{ name: 'guardrail', phase: 'guard' }] },
      },
      deps,
    );
    expect(runs.records.get('r4')).toMatchObject({ status: 'STOPPED', costUsd: 0.0015, request: { requester: 'slack:U1' } });
    const [update, reply] = threadCalls(before);
    expect(update?.method).toBe('chat.update');
    expect(update?.args.text).toMatch(/^⏹️ Stopped: I was charged twice.* — \$0\.0015\n/);
    expect(reply?.args.text).toMatch(/^⏹️ The run stopped: guardrail "guard" blocked/);
  });

  it('records a failed request, tells the thread and the notify channel, and shows no cost it does not know', async () => {
    const { runs, posts, deps } = env();
    const before = calls.length;
    await publish(
      {
        kind: 'failed',
        runId: 'r5',
        workflow: 'support',
        request: REQUEST,
        error: { Error: 'States.Timeout', Cause: 'the execution timed out' },
        notify: '#oncall',
      },
      deps,
    );
    expect(runs.records.get('r5')).toMatchObject({ status: 'FAILED', error: 'States.Timeout: the execution timed out', number: 0 });
    const [update, reply] = threadCalls(before);
    expect(update?.args.text).toMatch(/^❌ Not answered: I was charged twice/);
    expect(update?.args.text).not.toContain('$');
    expect(reply?.args.text).toBe('❌ The run failed: States.\u200bTimeout:\u200b the execution timed out');
    expect(posts).toEqual([{ channel: '#oncall', text: expect.stringMatching(/^❌ \*support\* FAILED for slack:/) }]);
  });

  it('records a failed request with what its agents spent by their spend records, and shows that cost', async () => {
    // Prepare: two phases ran (two invocations of the triage agent) before the run failed.
    const { artifacts, runs, posts, deps } = env();
    await spendRecord(artifacts, 'r7', 'triage', 'supervisor', [1200, 300]);
    await spendRecord(artifacts, 'r7', 'billing', 'billing-specialist', [2500]);
    const before = calls.length;

    // Act
    await publish(
      {
        kind: 'failed',
        runId: 'r7',
        workflow: 'support',
        request: REQUEST,
        error: { Error: 'States.TaskFailed', Cause: 'refund: Lambda timed out' },
        results: {
          triage: [{ name: 'supervisor', phase: 'triage', status: 'succeeded' }],
          billing: [{ name: 'billing-specialist', phase: 'billing', status: 'succeeded' }],
        },
        notify: '#oncall',
      },
      deps,
    );

    // Assess
    expect(runs.records.get('r7')).toMatchObject({
      status: 'FAILED',
      costUsd: 0.004,
      error: 'States.TaskFailed: refund: Lambda timed out',
    });
    const [update] = threadCalls(before);
    expect(update?.args.text).toMatch(/^❌ Not answered: I was charged twice.* — \$0\.0040\n/);
    expect(posts[0]?.text).toContain('$0.0040');
  });
});
