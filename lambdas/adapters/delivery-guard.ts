import { IdempotencyAlreadyInProgressError, IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
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

  constructor(options: DeliveryGuardOptions) {
    const persistenceStore = new DynamoDBPersistenceLayer({
      tableName: options.table,
      awsSdkV3Client: options.client as never,
      keyAttr: TABLE_KEYS.partitionKey,
      sortKeyAttr: TABLE_KEYS.sortKey,
      staticPkValue: 'DELIVERY',
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
