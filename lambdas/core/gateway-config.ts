import { z } from 'zod';

const usd = z.number().positive();

const ProjectLimits = z.strictObject({
  /** USD per UTC day. */
  dailyUsd: usd.optional(),
  /** USD per UTC calendar month. */
  monthlyUsd: usd.optional(),
});
export type ProjectLimits = z.infer<typeof ProjectLimits>;

export const BudgetConfigSchema = z.strictObject({
  /** Most one run may spend, in USD; a workflow's `budget.max_usd_per_run` may lower it. */
  perRunUsd: usd.optional(),
  /** The whole organisation's limits (only `monthlyUsd` is a global scope). */
  global: z.strictObject({ monthlyUsd: usd.optional() }).default({}),
  /** Limits per project (a workflow's `budget.project`, else the repository name). */
  projects: z.record(z.string().min(1), ProjectLimits).default({}),
  /** Limits for projects not listed in `projects`. @default no limit */
  defaultProject: ProjectLimits.optional(),
});
export type BudgetConfig = z.infer<typeof BudgetConfigSchema>;

export const BreakerConfigSchema = z.strictObject({
  /** Counted failures (throttles, 5xx, timeouts) in the window that open the breaker. @default 5 */
  failureThreshold: z.number().int().min(1).default(5),
  /** Share of failed calls in the window that opens it, once `minimumCalls` were made. @default 0.5 */
  failureRatio: z.number().gt(0).max(1).default(0.5),
  /** @default 10 */
  minimumCalls: z.number().int().min(1).default(10),
  /** Length of the counting window in seconds. @default 60 */
  windowSeconds: z.number().int().min(1).default(60),
  /** First cooldown in seconds; doubles after each failed probe. @default 30 */
  cooldownSeconds: z.number().min(0.01).default(30),
  /** Longest cooldown in seconds. @default 600 */
  maxCooldownSeconds: z.number().min(0.01).default(600),
  /** How long a half-open probe holds its lease before another caller may probe, in seconds. @default the provider timeout + 10 */
  probeLeaseSeconds: z.number().min(0.01).optional(),
});
export type BreakerConfig = z.infer<typeof BreakerConfigSchema>;

export const RateLimitSchema = z.strictObject({
  /** Token bucket refill rate; the bucket holds at most one minute's worth. */
  requestsPerMinute: z.number().positive(),
  /** Calls in flight at once across all Lambdas / local runs. */
  maxConcurrency: z.number().int().min(1),
});
export type RateLimit = z.infer<typeof RateLimitSchema>;

/**
 * Default per-provider limits. They are AgentFlow's own conservative defaults, not the providers'
 * quotas: set them to your account's Bedrock service quotas and OpenAI tier.
 */
export const DEFAULT_RATE_LIMITS = {
  bedrock: { requestsPerMinute: 100, maxConcurrency: 20 },
  openai: { requestsPerMinute: 300, maxConcurrency: 20 },
  'openai-compatible': { requestsPerMinute: 600, maxConcurrency: 8 },
} as const satisfies Record<string, RateLimit>;

/**
 * The model gateway's settings: budgets, circuit breaker, retries, rate limits and cache.
 *
 * Written in cdk.json `context.environments.<env>` next to the other environment settings (the
 * stack passes them to the InvokeAgent Lambda as the `AGENTFLOW_GATEWAY` JSON variable); local
 * commands read `environments.local`, or `--config <file>` with the same shape. Every field has a
 * default, so `{}` is a valid configuration (no budget limits, default breaker and limits).
 *
 * @example
 * {
 *   "budgets": {
 *     "perRunUsd": 2,
 *     "global": { "monthlyUsd": 3000 },
 *     "projects": { "ios-app": { "dailyUsd": 50, "monthlyUsd": 600 } }
 *   },
 *   "rateLimits": { "bedrock": { "requestsPerMinute": 100, "maxConcurrency": 20 } }
 * }
 */
export const GatewayConfigSchema = z.object({
  budgets: BudgetConfigSchema.default({ global: {}, projects: {} }),
  breaker: BreakerConfigSchema.default({
    failureThreshold: 5,
    failureRatio: 0.5,
    minimumCalls: 10,
    windowSeconds: 60,
    cooldownSeconds: 30,
    maxCooldownSeconds: 600,
  }),
  retry: z
    .strictObject({
      /** Tries per provider within one call before moving to the next provider. @default 3 */
      attemptsPerProvider: z.number().int().min(1).max(10).default(3),
      /** Backoff base in ms: try n waits random(0, min(max, base × 2^n)) (full jitter). @default 500 */
      baseDelayMs: z.number().int().min(0).default(500),
      /** @default 8000 */
      maxDelayMs: z.number().int().min(0).default(8000),
    })
    .default({ attemptsPerProvider: 3, baseDelayMs: 500, maxDelayMs: 8000 }),
  /** Per-provider token bucket and concurrency limits; unlisted providers use {@link DEFAULT_RATE_LIMITS}. */
  rateLimits: z.partialRecord(z.enum(['bedrock', 'openai', 'openai-compatible']), RateLimitSchema).default({}),
  cache: z
    .strictObject({
      /** @default true */
      enabled: z.boolean().default(true),
      /** How long an answer is reused, in hours. @default 24 */
      ttlHours: z.number().positive().default(24),
    })
    .default({ enabled: true, ttlHours: 24 }),
  /** Timeout of one provider call in seconds. @default 120 */
  providerTimeoutSeconds: z.number().int().min(1).max(840).default(120),
  /** Base URL of the `openai-compatible` provider (Ollama, vLLM, a corporate gateway), e.g. `http://localhost:11434/v1`. */
  openaiCompatibleBaseUrl: z.string().url().optional(),
});
export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;

/** The keys of {@link GatewayConfigSchema}: the stack copies these from an environment's config. */
export const GATEWAY_CONFIG_KEYS = Object.keys(GatewayConfigSchema.shape) as Array<keyof GatewayConfig>;

/**
 * Parses gateway settings, ignoring keys that are not gateway settings (so a whole environment
 * entry from cdk.json can be passed).
 * @throws Error naming the field path and the problem
 */
export function parseGatewayConfig(raw: unknown, where: string): GatewayConfig {
  const picked: Record<string, unknown> = {};
  if (raw && typeof raw === 'object') {
    for (const k of GATEWAY_CONFIG_KEYS) if (k in raw) picked[k] = (raw as Record<string, unknown>)[k];
  }
  const r = GatewayConfigSchema.safeParse(picked);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Error(`${where}.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}
