import { ExecutionAlreadyExists, type SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../../lambdas/adapters/runs.js';
import { SfnExecutionStarter } from '../../../lambdas/adapters/starter.js';
import type { ExecutionInput } from '../../../lambdas/core/contracts.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../../../lib/local/runtime.js';
import { exampleChange } from '../../helpers.js';

let table: LocalTable;
let runs: DynamoRunStore;
beforeAll(async () => {
  table = await startLocalTable();
  runs = new DynamoRunStore(table.doc, LOCAL_TABLE);
});
afterAll(async () => {
  await table?.stop();
});

const ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:agentflow-dev-pr-review';
const input = (runId: string, skip?: string): ExecutionInput => ({
  runId,
  workflow: 'pr-review',
  change: exampleChange({ title: 'Checkout', author: 'dev', headRef: 'feature' }),

  ...(skip ? { skip } : {}),
});

/** A Step Functions client that answers StartExecution as the service does (startDate), or with ExecutionAlreadyExists. */
const sfn = (exists = false) =>
  ({
    send: async () => {
      if (exists) throw new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} });
      return { executionArn: `${ARN}:x`, startDate: new Date('2026-11-29T10:00:00Z') };
    },
  }) as unknown as SFNClient;

describe('SfnExecutionStarter', () => {
  it('writes the RUNNING record when the execution starts, as the local runtime does', async () => {
    const r = await new SfnExecutionStarter(sfn(), { 'pr-review': ARN }, runs).start('pr-review', 'd1-pr-review', input('d1-pr-review'));
    expect(r).toEqual({ name: 'd1-pr-review', started: true });
    expect(await runs.get('d1-pr-review')).toMatchObject({
      status: 'RUNNING',
      repository: 'acme/shop-apps',
      number: 42,
      startedAt: '2026-11-29T10:00:00.000Z',
    });
  });

  it('keeps a record the execution already wrote (a skip can finish first), and writes none for a skipped run or a redelivery', async () => {
    await runs.put({
      runId: 'd2-pr-review',
      workflow: 'pr-review',
      status: 'SKIPPED',
      reason: 'draft',
      repository: 'acme/shop-apps',
      number: 42,
      headSha: 'b'.repeat(40),
      startedAt: '2026-11-29T10:00:00.000Z',
      costUsd: 0,
      findings: 0,
      agents: [],
    });
    await new SfnExecutionStarter(sfn(), { 'pr-review': ARN }, runs).start('pr-review', 'd2-pr-review', input('d2-pr-review'));
    expect((await runs.get('d2-pr-review'))?.status).toBe('SKIPPED');

    await new SfnExecutionStarter(sfn(), { 'pr-review': ARN }, runs).start('pr-review', 'd3-pr-review', input('d3-pr-review', 'draft'));
    expect(await runs.get('d3-pr-review')).toBeUndefined();

    const again = await new SfnExecutionStarter(sfn(true), { 'pr-review': ARN }, runs).start(
      'pr-review',
      'd4-pr-review',
      input('d4-pr-review'),
    );
    expect(again.started).toBe(false);
    expect(await runs.get('d4-pr-review')).toBeUndefined();
  });
});
