import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoApprovalStore } from '../../../lambdas/adapters/approvals.js';
import { type ApprovalRecord, requestApproval } from '../../../lambdas/core/approvals.js';
import { LocalApprovalNotifier } from '../../../lib/local/approvals.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../../../lib/local/runtime.js';
import { type AslDefinition, compileWorkflow, type Workflow } from '../../../lib/workflow/index.js';
import { loadWorkspace } from '../../../lib/workspace.js';
import { LEAD } from '../../helpers.js';

/**
 * The contract between the compiler and RequestApproval for a request run: the compiled
 * support-triage runs on aws-local-stepfunctions (the local runtime's engine), and its gate's Task
 * calls the real {@link requestApproval} with the payload the definition builds.
 */
const triage = compileWorkflow(loadWorkspace().workflows.get('support-triage') as Workflow);
const request = { text: 'I was charged twice for order 1234 <!channel>', requester: 'slack:U0CUSTOMER' };
/** The approver group the shipped support-triage names. */
const groups = { 'support-leads': { slack: [LEAD] } };
const guardrail = { guardrail: { intervened: false, blocked: false, interventions: [] } };
const agent =
  (phase: string, extra: Record<string, unknown> = {}) =>
  async () => ({
    Payload: { name: phase, phase, status: 'succeeded', provider: 'bedrock', model: 'm', costUsd: 0, answerRef: `a/${phase}`, ...extra },
  });

/** The gate's Task payload with `'result.$'` (the phase's first result) instead of `'data.$'`. */
function withResultPath(def: AslDefinition): AslDefinition {
  const states = structuredClone(def.States) as Record<string, { Parameters?: { Payload?: Record<string, unknown> } }>;
  const payload = states['Approve: refund-approval']?.Parameters?.Payload;
  if (payload) {
    delete payload['data.$'];
    payload['result.$'] = '$.results.billing[0]';
  }
  return { ...def, States: states } as AslDefinition;
}

describe('Contract: the compiled request-run gate and RequestApproval (support-triage)', () => {
  let table: LocalTable;
  let approvals: DynamoApprovalStore;
  const notifier = new LocalApprovalNotifier(() => undefined);

  beforeAll(async () => {
    table = await startLocalTable();
    approvals = new DynamoApprovalStore(table.doc, LOCAL_TABLE);
  });
  afterAll(async () => {
    await table.stop();
  });

  /** Runs support-triage routed to billing; the gate stores and posts its request, then is approved. */
  async function runToGate(def: AslDefinition, billing: Record<string, unknown>, runId: string) {
    const asked: string[] = [];
    const handlers = {
      'Run agent: screen': agent('screen', guardrail),
      'Run agent: triage': agent('triage', { decision: 'billing', decisionReason: 'a refund' }),
      'Run agent: billing': agent('billing', billing),
      'Run agent: refund': agent('refund'),
      'Run agent: reply-check': agent('reply-check', guardrail),
      'Run agent: judge': agent('judge', { data: { verdict: 'pass' } }),
      'Approve: refund-approval': async (i: { Payload: Record<string, unknown> }) => {
        asked.push((await requestApproval({ ...i.Payload, taskToken: `token-${runId}` }, { approvals, notifier, groups })).approvalId);
        return { outcome: 'approved', by: `<@${LEAD}>` };
      },
      'Aggregate answer': async () => ({ Payload: { reportRef: 'r', summary: { status: 'SUCCEEDED' } } }),
      'Publish answer': async () => ({ Payload: {} }),
      'Record stopped run': async () => ({ Payload: {} }),
      'Record failure': async () => ({ Payload: {} }),
    };
    const sm = new StateMachine(def as unknown as StateMachineDefinition, { validationOptions: { checkArn: false, checkPaths: false } });
    const exec = sm.run({ runId, workflow: 'support-triage', request } as never, {
      overrides: { taskResourceLocalHandlers: handlers as never },
      // As on the local runtime: the engine has no task tokens.
      context: { Task: { Token: 'local' } } as never,
    });
    const output = await exec.result.catch((e: unknown) => ({ failed: String(e) }));
    const record = asked[0] ? await approvals.get(asked[0]) : undefined;
    return { output, record };
  }

  it('sends the request, the condition and the answer data: the record and the message have them', async () => {
    // Act
    const { output, record } = await runToGate(triage, { data: { refund_usd: 150, order_id: '1234' } }, 'triage-150');

    // Assess
    expect(output).not.toHaveProperty('failed');
    expect(record).toMatchObject({
      workflow: 'support-triage',
      phase: 'refund-approval',
      execution: 'triage-150',
      channel: '#support-leads',
      approvers: { slack: [LEAD], users: [], groups: [] },
      request: { requester: 'slack:U0CUSTOMER', text: request.text },
      about: { phase: 'billing', condition: 'billing.refund_usd > 100' },
      data: { refund_usd: 150, order_id: '1234' },
    } satisfies Partial<ApprovalRecord>);
    const message = JSON.stringify(notifier.messages.get(record?.id ?? ''));
    expect(message).toContain('billing.refund_usd &gt; 100');
    expect(message).toContain('• refund_usd: 150');
    expect(message).not.toContain('<!channel>');
  });

  it('asks without data when the billing agent gave none, with the result path in the payload', async () => {
    const { output, record } = await runToGate(withResultPath(triage), { status: 'failed' }, 'triage-failed');
    expect(output).not.toHaveProperty('failed');
    expect(record?.about).toEqual({ phase: 'billing', condition: 'billing.refund_usd > 100' });
    expect(record?.data).toBeUndefined();
    expect(JSON.stringify(notifier.messages.get(record?.id ?? ''))).toContain('gave no data to show');
  });
});
