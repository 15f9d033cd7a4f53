import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { type RunRecord, RunRecordSchema } from '../core/contracts.js';
import type { RunStore } from '../core/ports.js';

/** Key schema of the AgentFlow table (DESIGN §8); the CDK table and the local table use it. */
export const TABLE_KEYS = {
  partitionKey: 'pk',
  sortKey: 'sk',
  runsIndex: 'gsi1',
  indexPartitionKey: 'gsi1pk',
  indexSortKey: 'gsi1sk',
  ttl: 'expiresAt',
} as const;

/** Run records live for 180 days (TTL attribute, seconds since the epoch). */
const RUN_TTL_SECONDS = 180 * 24 * 3600;

/** Run records in DynamoDB: `pk = RUN#<runId>`, `sk = RUN`, listed newest first through `gsi1`. */
export class DynamoRunStore implements RunStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async put(record: RunRecord): Promise<void> {
    await this.doc.send(new PutCommand({ TableName: this.table, Item: this.item(record) }));
  }

  async create(record: RunRecord): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({ TableName: this.table, Item: this.item(record), ConditionExpression: 'attribute_not_exists(pk)' }),
      );
      return true;
    } catch (e) {
      if ((e as Error).name === 'ConditionalCheckFailedException') return false;
      throw e;
    }
  }

  private item(record: RunRecord): Record<string, unknown> {
    return {
      ...record,
      pk: `RUN#${record.runId}`,
      sk: 'RUN',
      gsi1pk: 'RUNS',
      gsi1sk: `${record.startedAt}#${record.runId}`,
      expiresAt: Math.floor(Date.parse(record.startedAt) / 1000) + RUN_TTL_SECONDS,
    };
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const r = await this.doc.send(new GetCommand({ TableName: this.table, Key: { pk: `RUN#${runId}`, sk: 'RUN' } }));
    return r.Item ? RunRecordSchema.parse(r.Item) : undefined;
  }

  async list(limit = 50): Promise<RunRecord[]> {
    const r = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: TABLE_KEYS.runsIndex,
        KeyConditionExpression: 'gsi1pk = :p',
        ExpressionAttributeValues: { ':p': 'RUNS' },
        ScanIndexForward: false,
        Limit: limit,
      }),
    );
    return (r.Items ?? []).map((i) => RunRecordSchema.parse(i));
  }
}
