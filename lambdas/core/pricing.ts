import type { ModelRef } from './contracts.js';
import type { TokenUsage } from './ports.js';

/**
 * Cost of one call in USD, rounded to the micro-dollar.
 *
 * Prices are USD per million tokens from `workflows/models.yml`. `inputTokens` is the uncached
 * input (Bedrock reports cache reads and writes separately; the OpenAI adapter subtracts
 * `cached_tokens` from `prompt_tokens` before calling this).
 */
export function costUsd(usage: TokenUsage, price: NonNullable<ModelRef['price']>): number {
  const micro =
    usage.inputTokens * price.input +
    usage.outputTokens * price.output +
    usage.cacheReadTokens * price.cacheRead +
    usage.cacheWriteTokens * price.cacheWrite;
  return roundUsd(micro / 1_000_000);
}

/** Rounds a USD amount to the micro-dollar (6 decimals). */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1_000_000) / 1_000_000;
}

/** Adds two usages. */
export function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
    cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
  };
}

export const NO_USAGE: TokenUsage = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 };

/**
 * Step Functions Standard price: USD 0.025 per 1,000 state transitions.
 * Source: https://aws.amazon.com/step-functions/pricing/ (us-east-1, as of 2025-11).
 */
export const SFN_USD_PER_TRANSITION = 0.025 / 1000;
