import { budgetScopes } from '../core/budget.js';
import {
  type AgentResult,
  AgentResultSchema,
  type AttemptRecord,
  ContextArtifactSchema,
  type Finding,
  FindingSchema,
  type InvokeAgentInput,
  InvokeAgentInputSchema,
  MAX_ATTEMPTS_KEPT,
  type ModelRef,
  parseInput,
} from '../core/contracts.js';
import { ProviderRejectedError } from '../core/errors.js';
import type { GatewayAnswer, GatewayCall, ModelGateway } from '../core/gateway.js';
import type { BudgetConfig } from '../core/gateway-config.js';
import type { ArtifactStore, ChatMessage, TokenUsage } from '../core/ports.js';
import { addUsage, NO_USAGE, roundUsd } from '../core/pricing.js';
import { chunkMessage, earlierFindings, parseAnswer, repairMessages, systemPrompt } from '../core/prompt.js';
import { routeModel } from '../core/routing.js';
import { chunkFiles, estimateTokens } from '../core/tokens.js';
import { splitRepository } from '../core/triggers.js';

export interface InvokeAgentDeps {
  artifacts: ArtifactStore;
  /** Every model call goes through the gateway (budgets, breaker, fallback, cache, rate limits). */
  gateway: ModelGateway;
  /** The environment's budget limits. */
  budgets: BudgetConfig;
  now?: () => number;
  /** Instant (ms since the epoch) by which the agent must finish; in Lambda, its remaining time minus a margin. @default now + 10 minutes */
  deadlineMs?: () => number;
}

/** Largest diff chunk per prompt, in tokens, even for models with bigger windows: review quality drops on huge prompts. */
export const MAX_CHUNK_TOKENS = 60_000;

/** Artifact key of an agent's findings. */
export const findingsKey = (runId: string, phase: string, agent: string) => `runs/${runId}/findings/${phase}/${agent}.json`;

/** Artifact key of the Markdown document an `output: document` agent writes. */
export const documentKey = (runId: string, phase: string, agent: string) => `runs/${runId}/documents/${phase}/${agent}.md`;

/** The findings of earlier phases' agents (`previous` holds their small results with findings refs). */
async function previousFindings(
  previous: Record<string, unknown>,
  artifacts: ArtifactStore,
): Promise<Array<{ agent: string; finding: Finding }>> {
  const results = Object.values(previous)
    .flatMap((v) => (Array.isArray(v) ? v : []))
    .map((r) => AgentResultSchema.safeParse(r))
    .flatMap((r) => (r.success && r.data.status === 'succeeded' && r.data.findingsRef ? [r.data] : []));
  const out: Array<{ agent: string; finding: Finding }> = [];
  for (const r of results) {
    const stored = (await artifacts.getJson(r.findingsRef as string)) as { findings?: unknown };
    for (const finding of FindingSchema.array()
      .catch([])
      .parse(stored.findings ?? []))
      out.push({ agent: r.name, finding });
  }
  return out;
}

/**
 * InvokeAgent: reviews the run's context with one agent.
 *
 * Picks the model (`model: auto` routes by change size and the agent's complexity), builds the
 * prompt from the agent's catalog entry, splits the diff into chunks that fit the smallest context
 * window of the agent's candidate models (window − max_tokens − prompt, at most
 * {@link MAX_CHUNK_TOKENS}), asks the model gateway once per chunk (budgets, circuit breakers,
 * fallback, cache), validates each answer against the findings schema (one repair prompt on an
 * invalid answer), stores the findings as an artifact and returns a small {@link AgentResult}
 * (tokens; cost in USD; every attempt).
 *
 * @throws InvalidInputError on a bad Map item
 * @throws BudgetExceededError | BudgetUnavailableError | CircuitOpenError | PriceUnknownError (no call made)
 * @throws ProviderThrottledError | ProviderUnavailableError | ProviderTimeoutError (retryable; every candidate failed)
 * @throws ProviderRejectedError when the provider refuses the request or the answer is still invalid
 *   after the repair prompt (the raw answer is stored under `runs/<run>/raw/...`)
 * @throws ProviderAuthError when every candidate refused the credentials
 */
export async function invokeAgent(raw: unknown, deps: InvokeAgentDeps): Promise<AgentResult> {
  const now = deps.now ?? Date.now;
  const started = now();
  const deadlineMs = deps.deadlineMs?.() ?? started + 10 * 60_000;
  const input: InvokeAgentInput = parseInput(InvokeAgentInputSchema, raw, 'InvokeAgent');
  const { agent } = input;
  const context = ContextArtifactSchema.parse(await deps.artifacts.getJson(input.contextRef));
  const route = routeModel(agent, context.stats);
  const primary: ModelRef = route?.model ?? agent.model;
  const candidates = [primary, ...agent.fallback.filter((f) => f.modelId !== primary.modelId || f.provider !== primary.provider)];
  const project = input.budget.project ?? splitRepository(context.change.repository).repo;
  const scopes = budgetScopes(deps.budgets, {
    runId: input.runId,
    project,
    maxUsdPerRun: input.budget.maxUsdPerRun,
    now: new Date(started),
  });
  const earlier = earlierFindings(await previousFindings(input.previous, deps.artifacts));
  const system = systemPrompt(agent);
  const window = Math.min(...candidates.map((c) => c.contextWindow));
  const overhead = estimateTokens(system) + estimateTokens(chunkMessage(agent, context.change, '', 0, 1, earlier)) + 64;
  const budget = Math.min(MAX_CHUNK_TOKENS, Math.floor((window - agent.maxTokens - overhead) * 0.9));
  const chunks = context.files.length > 0 ? chunkFiles(context.files, budget) : [];

  let usage: TokenUsage = NO_USAGE;
  let cost = 0;
  let calls = 0;
  let cacheHits = 0;
  let fallbackUsed = false;
  let repaired = false;
  let servedBy: string | undefined;
  let answeredBy: ModelRef = primary;
  const attempts: AttemptRecord[] = [];
  const ask = async (messages: ChatMessage[]): Promise<GatewayAnswer> => {
    const call: GatewayCall = {
      candidates,
      system,
      messages,
      maxTokens: agent.maxTokens,
      temperature: agent.temperature,
      scopes,
      cache: agent.cache,
      cacheIf: (text) => parseAnswer(text).ok,
      labels: { workflow: input.workflow, agent: agent.name, project },
      deadlineMs,
    };
    const a = await deps.gateway.complete(call);
    usage = addUsage(usage, a.usage);
    cost += a.costUsd;
    calls += a.cacheHit ? 0 : 1;
    cacheHits += a.cacheHit ? 1 : 0;
    fallbackUsed ||= a.fallbackUsed;
    servedBy = a.servedBy ?? servedBy;
    answeredBy = a.model;
    attempts.push(...a.attempts);
    return a;
  };
  const findings: Finding[] = [];
  const documents: string[] = [];
  for (const [i, chunk] of chunks.entries()) {
    const messages: ChatMessage[] = [{ role: 'user', content: chunkMessage(agent, context.change, chunk, i, chunks.length, earlier) }];
    const first = await ask(messages);
    let parsed = parseAnswer(first.text);
    if (!parsed.ok) {
      repaired = true;
      const second = await ask(repairMessages(messages, first.text, parsed.problem));
      parsed = parseAnswer(second.text);
      if (!parsed.ok) {
        const rawRef = await deps.artifacts.putText(
          `runs/${input.runId}/raw/${input.phase}/${agent.name}-part${i + 1}.txt`,
          `${first.text}\n\n--- after the repair prompt ---\n\n${second.text}`,
        );
        throw new ProviderRejectedError(
          `${agent.name}: ${second.model.alias} answered in an invalid format twice (${parsed.problem}); raw answer at ${rawRef}`,
          second.model.provider,
        );
      }
    }
    findings.push(...parsed.answer.findings);
    if (parsed.answer.document) documents.push(parsed.answer.document);
  }
  const documentRef =
    agent.output === 'document' && documents.length > 0
      ? await deps.artifacts.putText(documentKey(input.runId, input.phase, agent.name), documents.join('\n\n---\n\n'), 'text/markdown')
      : undefined;
  const findingsRef = await deps.artifacts.putJson(findingsKey(input.runId, input.phase, agent.name), {
    agent: agent.name,
    phase: input.phase,
    model: answeredBy.alias,
    findings,
  });
  return {
    name: agent.name,
    phase: input.phase,
    status: 'succeeded',
    provider: answeredBy.provider,
    model: answeredBy.alias,
    inputTokens: usage.inputTokens + usage.cacheReadTokens + usage.cacheWriteTokens,
    outputTokens: usage.outputTokens,
    cachedTokens: usage.cacheReadTokens,
    costUsd: roundUsd(cost),
    findings: findings.length,
    findingsRef,
    ...(documentRef ? { documentRef } : {}),
    chunks: chunks.length,
    repaired,
    ...(servedBy ? { servedBy } : {}),
    durationMs: now() - started,
    calls,
    cacheHits,
    fallbackUsed,
    ...(route ? { routing: route.reason } : {}),
    attempts: attempts.slice(-MAX_ATTEMPTS_KEPT),
  };
}
