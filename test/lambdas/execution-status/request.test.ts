import { describe, expect, it } from 'vitest';
import type { ApprovalNotifier, ApprovalStore } from '../../../lambdas/core/approvals.js';
import type { RunRecord } from '../../../lambdas/core/contracts.js';
import type { RunStore, ThreadNotifier } from '../../../lambdas/core/ports.js';
import { executionEnded, fromStatusEvent } from '../../../lambdas/execution-status/execution-status.js';

const THREAD = { channel: 'C-SUPPORT', ts: '1700000000.000100' };
const REQUEST = { text: 'Refund order 1234', requester: 'slack:U1', thread: THREAD };

/** A request run's execution that timed out, as EventBridge reports it. */
const timedOut = {
  source: 'aws.states',
  'detail-type': 'Step Functions Execution Status Change',
  detail: {
    executionArn: 'arn:aws:states:us-east-1:123456789012:execution:agentflow-dev-support:slack-t1-support',
    stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:agentflow-dev-support',
    name: 'slack-t1-support',
    status: 'TIMED_OUT',
    startDate: Date.parse('2026-11-30T10:00:00Z'),
    stopDate: Date.parse('2026-11-30T10:15:00Z'),
    input: JSON.stringify({ runId: 'slack-t1-support', workflow: 'support', request: REQUEST }),
  },
};

describe('Function: executionEnded (a request run)', () => {
  it("records the end, keeping who asked, and turns the thread's first message into the outcome", async () => {
    // Prepare: the RUNNING record the start wrote.
    const records = new Map<string, RunRecord>([
      [
        'slack-t1-support',
        {
          runId: 'slack-t1-support',
          workflow: 'support',
          status: 'RUNNING',
          repository: '',
          number: 0,
          headSha: '',
          startedAt: '2026-11-30T10:00:00.000Z',
          costUsd: 0,
          findings: 0,
          agents: [],
          request: { requester: 'slack:U1', text: 'Refund order 1234' },
        },
      ],
    ]);
    const runs = { get: async (id: string) => records.get(id), put: async (r: RunRecord) => void records.set(r.runId, r) } as RunStore;
    const told: Array<{ how: string; text: string }> = [];
    const threads: ThreadNotifier = {
      start: async () => undefined,
      reply: async (_t, text) => void told.push({ how: 'reply', text }),
      update: async (_m, text) => void told.push({ how: 'update', text }),
    };
    const approvals = { listPending: async () => [] } as unknown as ApprovalStore;

    // Act
    const ended = fromStatusEvent(timedOut);
    await executionEnded(ended, { runs, approvals, notifier: {} as ApprovalNotifier, threads });

    // Assess
    expect(ended.request).toEqual(REQUEST);
    expect(records.get('slack-t1-support')).toMatchObject({
      status: 'FAILED',
      request: { requester: 'slack:U1' },
      error: expect.stringMatching(/^States\.Timeout/),
    });
    expect(told.map((t) => t.how)).toEqual(['update', 'reply']);
    expect(told[0]?.text).toMatch(/^❌ Not answered: Refund order 1234\n/);
  });
});
