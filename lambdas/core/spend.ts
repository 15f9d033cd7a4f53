import { z } from 'zod';
import { AttemptSchema } from './contracts.js';
import type { ArtifactStore } from './ports.js';

/**
 * Spend records: what each invocation of an agent spent, written by InvokeAgent after every
 * settled call and added up by Aggregate, so a run's reported cost is the sum of the ledger's
 * settlements, including agents that failed later and Step Functions retries.
 */

/** Artifact key of an agent's spend record: every invocation's settled spend (see {@link SpendRecordSchema}). */
export const spendKey = (runId: string, phase: string, agent: string) => `runs/${runId}/spend/${phase}/${agent}.json`;

/** What one invocation of an agent spent. Cost in integer micro-USD as the ledger settled it. */
export const InvocationSpendSchema = z.strictObject({
  id: z.string(),
  startedAt: z.string(),
  costMicro: z.number().int().nonnegative(),
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  cachedTokens: z.number().int().nonnegative(),
  calls: z.number().int().nonnegative(),
  cacheHits: z.number().int().nonnegative(),
  repairs: z.number().int().nonnegative(),
  /** Answers cut at `max_tokens` (their findings before the cut were kept). */
  truncated: z.number().int().nonnegative().default(0),
  /** The gateway's tries of this invocation (the last {@link MAX_ATTEMPTS_KEPT}), failed ones included. */
  attempts: z.array(AttemptSchema).default([]),
  /** Input tokens the reservations counted, and what the provider reported for the same calls. */
  estimatedInputTokens: z.number().int().nonnegative().default(0),
  reportedInputTokens: z.number().int().nonnegative().default(0),
  error: z.string().optional(),
});
export type InvocationSpend = z.infer<typeof InvocationSpendSchema>;

/**
 * An agent's spend record: one entry per invocation (Step Functions retries an agent after a
 * retryable error, and each try spends). Written after every call, so the spend of an agent that
 * fails later is still reported; Aggregate adds these up, so a run's reported cost is the ledger's.
 */
export const SpendRecordSchema = z.strictObject({
  agent: z.string(),
  phase: z.string(),
  invocations: z.array(InvocationSpendSchema),
});
export type SpendRecord = z.infer<typeof SpendRecordSchema>;

/** Reads an agent's spend record; an agent that never wrote one spent nothing. */
export async function readSpend(artifacts: ArtifactStore, runId: string, phase: string, agent: string): Promise<SpendRecord> {
  let raw: unknown;
  try {
    raw = await artifacts.getJson(spendKey(runId, phase, agent));
  } catch (e) {
    if (isNotFound(e)) return { agent, phase, invocations: [] };
    throw e;
  }
  return SpendRecordSchema.parse(raw);
}

/** A missing artifact: S3 `NoSuchKey` (or a 404), a missing file. */
function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.code === 'ENOENT' || err.$metadata?.httpStatusCode === 404;
}
