import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { type ApprovalRecord, ApprovalRecordSchema, type ApprovalStore, type MessageRef } from '../core/approvals.js';
import { TABLE_KEYS } from './runs.js';

/** Approval records are deleted (TTL) this long after their deadline, in seconds (30 days). */
const KEEP_SECONDS = 30 * 24 * 3600;
const PENDING = 'APPROVALS#PENDING';
const key = (id: string) => ({ pk: `APPROVAL#${id}`, sk: 'APPROVAL' });
const ciKey = (repository: string, sha: string) => `CI#${repository}#${sha}`;
const runKey = (execution: string, phase: string, escalation: boolean) => ({
  pk: `APPROVAL_RUN#${execution}`,
  sk: `${phase}#${escalation ? 'escalation' : 'request'}`,
});

const conditionFailed = (e: unknown) =>
  e instanceof ConditionalCheckFailedException || (e as Error).name === 'ConditionalCheckFailedException';

/**
 * Approvals in the AgentFlow table: `pk = APPROVAL#<id>`, `sk = APPROVAL`. Once its message is
 * posted a pending record is in `gsi1` under `APPROVALS#PENDING` (sorted by deadline); a decision
 * removes it from there in the same conditional write that takes it. A CI callback also has a
 * pointer item `pk = CI#<repo>#<sha>`, written first, so CI can report by commit; every request has
 * one under `pk = APPROVAL_RUN#<execution>` so the state's timeout path can find it.
 */
export class DynamoApprovalStore implements ApprovalStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async create(record: ApprovalRecord): Promise<void> {
    const expiresAt = Math.floor(Date.parse(record.deadline) / 1000) + KEEP_SECONDS;
    if (record.kind === 'ci') {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: ciKey(record.repository, record.headSha), sk: 'CI', approvalId: record.id, expiresAt },
        }),
      );
    }
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: { ...record, ...key(record.id), expiresAt },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: { ...runKey(record.execution, record.phase, record.escalation), approvalId: record.id, expiresAt },
      }),
    );
  }

  async findByRun(execution: string, phase: string, escalation: boolean): Promise<ApprovalRecord | undefined> {
    const r = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: runKey(execution, phase, escalation), ConsistentRead: true }),
    );
    const id = r.Item?.approvalId as string | undefined;
    return id ? this.get(id) : undefined;
  }

  async get(id: string): Promise<ApprovalRecord | undefined> {
    const r = await this.doc.send(new GetCommand({ TableName: this.table, Key: key(id), ConsistentRead: true }));
    return r.Item ? ApprovalRecordSchema.parse(r.Item) : undefined;
  }

  async claim(id: string, status: 'APPROVED' | 'REJECTED', by: string, at: string, now: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key(id),
          UpdateExpression: 'SET #s = :s, decidedBy = :by, decidedAt = :at REMOVE gsi1pk, gsi1sk',
          ConditionExpression: '#s = :pending AND deadline > :now',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: { ':s': status, ':by': by, ':at': at, ':pending': 'PENDING', ':now': now },
        }),
      );
      return true;
    } catch (e) {
      if (conditionFailed(e)) return false;
      throw e;
    }
  }

  async release(id: string, by: string, at: string): Promise<void> {
    const record = await this.get(id);
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key(id),
          UpdateExpression: 'SET #s = :pending, gsi1pk = :p, gsi1sk = :sk REMOVE decidedBy, decidedAt',
          ConditionExpression: 'decidedBy = :by AND decidedAt = :at',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: {
            ':pending': 'PENDING',
            ':p': PENDING,
            ':sk': `${record?.deadline ?? ''}#${id}`,
            ':by': by,
            ':at': at,
          },
        }),
      );
    } catch (e) {
      if (!conditionFailed(e)) throw e;
    }
  }

  async expire(id: string): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: key(id),
        UpdateExpression: 'SET #s = :e REMOVE gsi1pk, gsi1sk',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':e': 'EXPIRED' },
      }),
    );
  }

  async activate(id: string, message: MessageRef | undefined): Promise<void> {
    const record = await this.get(id);
    if (!record) return;
    await this.doc
      .send(
        new UpdateCommand({
          TableName: this.table,
          Key: key(id),
          // Only while still pending: a decision may already have taken it.
          UpdateExpression: `SET gsi1pk = :p, gsi1sk = :sk${message ? ', message = :m' : ''}`,
          ConditionExpression: '#s = :pending',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: {
            ':p': PENDING,
            ':sk': `${record.deadline}#${id}`,
            ':pending': 'PENDING',
            ...(message ? { ':m': message } : {}),
          },
        }),
      )
      .catch((e: unknown) => {
        if (!conditionFailed(e)) throw e;
      });
  }

  async listPending(): Promise<ApprovalRecord[]> {
    const out: ApprovalRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const r = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: TABLE_KEYS.runsIndex,
          KeyConditionExpression: 'gsi1pk = :p',
          ExpressionAttributeValues: { ':p': PENDING },
          Limit: 100,
          ExclusiveStartKey: start,
        }),
      );
      out.push(...(r.Items ?? []).map((i) => ApprovalRecordSchema.parse(i)));
      start = r.LastEvaluatedKey;
    } while (start);
    return out;
  }

  async findPendingCi(repository: string, headSha: string): Promise<ApprovalRecord | undefined> {
    const r = await this.doc.send(new GetCommand({ TableName: this.table, Key: { pk: ciKey(repository, headSha), sk: 'CI' } }));
    const id = r.Item?.approvalId as string | undefined;
    const record = id ? await this.get(id) : undefined;
    return record?.status === 'PENDING' ? record : undefined;
  }
}
