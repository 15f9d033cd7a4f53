import { IdempotencyAlreadyInProgressError, IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { DeliveryGuard, JsonValue, OnceOutcome } from '../core/ports.js';
import { TABLE_KEYS } from './runs.js';

/** Options of {@link PowertoolsDeliveryGuard}. */
export interface DeliveryGuardOptions {
  client: DynamoDBClient;
  table: string;
  /** How long a finished delivery's record answers "duplicate", in seconds. @default 86400 (one day; the execution name still de-duplicates for 90 days after) */
  expiresAfterSeconds?: number;
}

type Work = () => Promise<JsonValue>;

/** The partition key of every delivery record. */
const STATIC_PK = 'DELIVERY';

/**
 * {@link DeliveryGuard} on Powertools Idempotency with its DynamoDB persistence layer, in the
 * AgentFlow table: items `pk = DELIVERY`, `sk = <prefix>#<md5 of the key>`, TTL in `expiresAt`.
 * An in-progress record carries the caller's remaining time, so a crashed start does not block a
 * redelivery beyond it; a failed start deletes the record.
 */
export class PowertoolsDeliveryGuard implements DeliveryGuard {
  private readonly run: (
    req: { key: string },
    context: { getRemainingTimeInMillis(): number },
    work: Work,
  ) => Promise<{ result: JsonValue; duplicate?: boolean }>;

  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;

  constructor(options: DeliveryGuardOptions) {
    this.doc = DynamoDBDocumentClient.from(options.client);
    this.table = options.table;
    const persistenceStore = new DynamoDBPersistenceLayer({
      tableName: options.table,
      awsSdkV3Client: options.client as never,
      keyAttr: TABLE_KEYS.partitionKey,
      sortKeyAttr: TABLE_KEYS.sortKey,
      staticPkValue: STATIC_PK,
      expiryAttr: 'expiresAt',
    });
    const config = new IdempotencyConfig({
      eventKeyJmesPath: 'key',
      expiresAfterSeconds: options.expiresAfterSeconds ?? 86_400,
      // Runs only when a stored result is returned instead of running the work.
      responseHook: (response) => ({ ...(response as Record<string, JsonValue>), duplicate: true }),
    });
    this.run = makeIdempotent(async (_req: { key: string }, _context: unknown, work: Work) => ({ result: await work() }), {
      persistenceStore,
      config,
      keyPrefix: 'delivery',
    }) as never;
  }

  async forget(matches: (result: JsonValue) => boolean): Promise<number> {
    let forgotten = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': TABLE_KEYS.partitionKey },
          ExpressionAttributeValues: { ':pk': STATIC_PK },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) {
        // Powertools keeps the work's return value in `data`: here `{ result }` (see the constructor).
        const stored = (item.data as { result?: JsonValue } | undefined)?.result;
        if (stored === undefined || !matches(stored)) continue;
        const key = { [TABLE_KEYS.partitionKey]: item[TABLE_KEYS.partitionKey], [TABLE_KEYS.sortKey]: item[TABLE_KEYS.sortKey] };
        await this.doc.send(new DeleteCommand({ TableName: this.table, Key: key }));
        forgotten++;
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return forgotten;
  }

  async once<T extends JsonValue>(key: string, work: () => Promise<T>, remainingMs: number): Promise<OnceOutcome<T>> {
    try {
      const r = await this.run({ key }, { getRemainingTimeInMillis: () => remainingMs }, work);
      return { inProgress: false, duplicate: r.duplicate === true, result: r.result as T };
    } catch (e) {
      if (e instanceof IdempotencyAlreadyInProgressError) return { inProgress: true };
      throw e;
    }
  }
}
