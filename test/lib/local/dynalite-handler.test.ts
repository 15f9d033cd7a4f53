import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { LOCAL_TABLE, startLocalTable } from '../../../lib/local/runtime.js';

// The local table's clients hand their requests to dynalite in this process (lib/local/dynalite-handler.ts).

const key = (sk: string) => ({ pk: 'TEST#handler', sk });

describe('Function: startLocalTable (requests in process)', () => {
  it('answers as dynalite over HTTP would: items, conditional failures by name, and the endpoint for other processes', async () => {
    const table = await startLocalTable();
    try {
      await table.doc.send(new PutCommand({ TableName: LOCAL_TABLE, Item: { ...key('a'), n: 1, text: 'ünïcödé ✓' } }));
      const got = await table.doc.send(new GetCommand({ TableName: LOCAL_TABLE, Key: key('a'), ConsistentRead: true }));
      expect(got.Item).toEqual({ ...key('a'), n: 1, text: 'ünïcödé ✓' });
      await expect(
        table.doc.send(
          new UpdateCommand({
            TableName: LOCAL_TABLE,
            Key: key('a'),
            UpdateExpression: 'ADD n :one',
            ConditionExpression: 'n = :zero',
            ExpressionAttributeValues: { ':one': 1, ':zero': 0 },
          }),
        ),
      ).rejects.toMatchObject({ name: 'ConditionalCheckFailedException' });
      expect(table.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await table.stop();
    }
  });

  it('lets requests in flight end when it stops and refuses later ones, with nothing thrown outside a caller', async () => {
    const table = await startLocalTable();
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      const writes = Array.from({ length: 20 }, (_, i) =>
        table.doc.send(new PutCommand({ TableName: LOCAL_TABLE, Item: { ...key(`w${i}`), i } })).then(
          () => 'written',
          (e: Error) => e.message,
        ),
      );
      await table.stop();
      const after = await table.doc.send(new GetCommand({ TableName: LOCAL_TABLE, Key: key('w1') })).then(
        () => 'answered',
        (e: Error) => e.message,
      );
      const outcomes = await Promise.all(writes);
      await new Promise((r) => setTimeout(r, 100));
      expect(outcomes.every((o) => o === 'written' || o === 'the local table is closed')).toBe(true);
      expect(after).toBe('the local table is closed');
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  it('keeps what was written in its folder across a restart (LevelDB on disk)', async () => {
    const folder = join(mkdtempSync(join(tmpdir(), 'agentflow-handler-')), 'dynamodb');
    const first = await startLocalTable(folder);
    await first.doc.send(new PutCommand({ TableName: LOCAL_TABLE, Item: { ...key('kept'), n: 7 } }));
    await first.stop();
    const second = await startLocalTable(folder);
    try {
      const got = await second.doc.send(new GetCommand({ TableName: LOCAL_TABLE, Key: key('kept'), ConsistentRead: true }));
      expect(got.Item?.n).toBe(7);
    } finally {
      await second.stop();
    }
  });
});
