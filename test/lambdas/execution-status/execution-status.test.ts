import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoApprovalStore } from '../../../lambdas/adapters/approvals.js';
import { everyForge } from '../../../lambdas/adapters/comments.js';
import { DynamoRunStore } from '../../../lambdas/adapters/runs.js';
import type { ApprovalRecord } from '../../../lambdas/core/approvals.js';
import type { CheckResult } from '../../../lambdas/core/checks.js';
import type { Change, RunRecord } from '../../../lambdas/core/contracts.js';
import { executionEnded, fromStatusEvent } from '../../../lambdas/execution-status/execution-status.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../../../lib/local/runtime.js';
import { exampleChange } from '../../helpers.js';

let table: LocalTable;
let runs: DynamoRunStore;
let approvals: DynamoApprovalStore;
beforeAll(async () => {
  table = await startLocalTable();
  runs = new DynamoRunStore(table.doc, LOCAL_TABLE);
  approvals = new DynamoApprovalStore(table.doc, LOCAL_TABLE);
});
afterAll(async () => {
  await table?.stop();
});

const change = (number: number): Change => exampleChange({ number, title: 'Migrate to SwiftData', author: 'dev', headRef: 'feature' });

/** A Step Functions "Execution Status Change" event as EventBridge delivers it (shape of the AWS docs' sample). */
const statusEvent = (runId: string, status: 'FAILED' | 'TIMED_OUT' | 'ABORTED', number: number) => ({
  version: '0',
  id: 'a1b2c3d4-0000-0000-0000-000000000000',
  'detail-type': 'Step Functions Execution Status Change',
  source: 'aws.states',
  account: '123456789012',
  time: '2026-11-29T10:00:00Z',
  region: 'us-east-1',
  resources: [`arn:aws:states:us-east-1:123456789012:execution:agentflow-dev-architecture-migration:${runId}`],
  detail: {
    executionArn: `arn:aws:states:us-east-1:123456789012:execution:agentflow-dev-architecture-migration:${runId}`,
    stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:agentflow-dev-architecture-migration',
    name: runId,
    status,
    startDate: Date.parse('2026-11-27T10:00:00Z'),
    stopDate: Date.parse('2026-11-29T10:00:00Z'),
    input: JSON.stringify({ runId, workflow: 'architecture-migration', change: change(number) }),
    inputDetails: { included: true },
    output: null,
    outputDetails: null,
    error: status === 'FAILED' ? 'States.Runtime' : null,
    cause: status === 'FAILED' ? 'An error occurred while executing the state "Aggregate findings".' : null,
  },
});

const running = (runId: string, number: number): RunRecord => ({
  runId,
  workflow: 'architecture-migration',
  status: 'RUNNING',
  repository: 'acme/shop-apps',
  number,
  headSha: 'b'.repeat(40),
  startedAt: '2026-11-27T10:00:00.000Z',
  costUsd: 0.0421,
  findings: 0,
  agents: [],
});

const pending = (id: string, execution: string): ApprovalRecord => ({
  id,
  kind: 'approval',
  taskToken: `token-${id}`,
  workflow: 'architecture-migration',
  execution,
  phase: 'approve',
  channel: '#mobile-leads',
  approvers: { slack: ['U024BE7LH'], users: [], groups: [] },
  status: 'PENDING',
  createdAt: '2026-11-27T10:05:00.000Z',
  deadline: '2026-11-30T10:05:00.000Z',
  repository: 'acme/shop-apps',
  number: 7,
  headSha: 'b'.repeat(40),
  title: 'Migrate to SwiftData',
  escalation: false,
});

function fakes() {
  const told: ApprovalRecord[] = [];
  const comments: Array<{ number: number; marker: string; body: string }> = [];
  const checks: Array<{ name: string; result: CheckResult; create: string }> = [];
  return {
    told,
    comments,
    checks,
    deps: {
      runs,
      approvals,
      notifier: { request: async () => undefined, decided: async (r: ApprovalRecord) => void told.push(r) } as never,
      forges: everyForge({
        upsertComment: async (c: Change, marker: string, body: string) => {
          comments.push({ number: c.number, marker, body });
          return `https://github.com/acme/shop-apps/pull/${c.number}#issuecomment-1`;
        },
        completeCheck: async (_c: Change, name: string, _runId: string, result: CheckResult, create: string) => {
          checks.push({ name, result, create });
          return null;
        },
      } as never),
    },
  };
}

describe('Function: executionEnded (EventBridge execution status change)', () => {
  it('records a TIMED_OUT execution as FAILED with the reason, expires its pending approval (Slack told) and says so on the pull request', async () => {
    // Prepare: a run waiting at its approval when the execution timed out.
    await runs.put(running('timed-out-1', 7));
    await approvals.create(pending('ap-timeout-1', 'timed-out-1'));
    await approvals.activate('ap-timeout-1', { channel: 'C1', ts: '1.2' });
    const f = fakes();

    // Act
    const r = await executionEnded(fromStatusEvent(statusEvent('timed-out-1', 'TIMED_OUT', 7)), f.deps);

    // Assess
    expect(r).toMatchObject({ recorded: true, expired: 1, commentUrl: expect.stringContaining('/pull/7') });
    const record = await runs.get('timed-out-1');
    expect(record).toMatchObject({ status: 'FAILED', costUsd: 0.0421, finishedAt: '2026-11-29T10:00:00.000Z' });
    expect(record?.error).toBe(
      "States.Timeout: the execution timed out after 172800 s (the state machine's TimeoutSeconds); what it had not finished did not run",
    );
    expect((await approvals.get('ap-timeout-1'))?.status).toBe('EXPIRED');
    expect(f.told.map((a) => [a.id, a.status])).toEqual([['ap-timeout-1', 'EXPIRED']]);
    expect(f.comments).toHaveLength(1);
    expect(f.comments[0]?.marker).toBe('<!-- agentflow:architecture-migration -->');
    expect(f.comments[0]?.body).toContain('**❌ FAILED** — States.Timeout: the execution timed out after 172800 s');
    // The check run started with the run ends as the execution did, not left in progress.
    expect(f.checks).toEqual([
      {
        name: 'AgentFlow · architecture-migration',
        result: expect.objectContaining({ conclusion: 'timed_out', title: 'The execution timed out', annotations: [] }),
        // Only the check this run started: none is created.
        create: 'never',
      },
    ]);
  });

  it('keeps the record the state machine wrote itself (FAILED through Record failure) and posts nothing, but still expires what waits', async () => {
    // Prepare
    await runs.put({ ...running('failed-1', 8), status: 'FAILED', error: 'ProviderUnavailableError: bedrock down' });
    await approvals.create(pending('ap-failed-1', 'failed-1'));
    await approvals.activate('ap-failed-1', undefined);
    const f = fakes();

    // Act
    const r = await executionEnded(fromStatusEvent(statusEvent('failed-1', 'FAILED', 8)), f.deps);

    // Assess
    expect(r).toEqual({ recorded: false, expired: 1, commentUrl: null });
    expect((await runs.get('failed-1'))?.error).toBe('ProviderUnavailableError: bedrock down');
    expect(f.comments).toEqual([]);
  });

  it('records an ABORTED manual run (no pull request) without trying a comment, and a second delivery of the event changes nothing', async () => {
    // Prepare
    await runs.put(running('aborted-1', 0));
    const f = fakes();
    const event = statusEvent('aborted-1', 'ABORTED', 0);

    // Act
    const first = await executionEnded(fromStatusEvent(event), f.deps);
    const second = await executionEnded(fromStatusEvent(event), f.deps);

    // Assess
    expect(first).toEqual({ recorded: true, expired: 0, commentUrl: null });
    expect(second).toEqual({ recorded: false, expired: 0, commentUrl: null });
    expect((await runs.get('aborted-1'))?.error).toMatch(/^aborted: the execution was stopped after 172800 s \(StopExecution\)/);
    expect(f.comments).toEqual([]);
  });

  it('refuses an event that is not an AgentFlow-relevant status change', () => {
    expect(() => fromStatusEvent({ ...statusEvent('x', 'FAILED', 1), 'detail-type': 'EC2 Instance State-change Notification' })).toThrow();
    expect(() =>
      fromStatusEvent({ ...statusEvent('x', 'FAILED', 1), detail: { ...statusEvent('x', 'FAILED', 1).detail, status: 'SUCCEEDED' } }),
    ).toThrow();
  });
});
