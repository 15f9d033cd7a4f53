import {
  type AgentResult,
  ContextArtifactSchema,
  type Finding,
  type InvokeAgentInput,
  InvokeAgentInputSchema,
  parseInput,
} from '../core/contracts.js';
import { ProviderRejectedError } from '../core/errors.js';
import type { ArtifactStore, ChatMessage, ProviderTable, TokenUsage } from '../core/ports.js';
import { addUsage, costUsd, NO_USAGE } from '../core/pricing.js';
import { chunkMessage, parseAnswer, repairMessages, systemPrompt } from '../core/prompt.js';
import { chunkFiles, estimateTokens } from '../core/tokens.js';

export interface InvokeAgentDeps {
  artifacts: ArtifactStore;
  providers: ProviderTable;
  now?: () => number;
}

/** Largest diff chunk per prompt, in tokens, even for models with bigger windows: review quality drops on huge prompts. */
export const MAX_CHUNK_TOKENS = 60_000;

/** Artifact key of an agent's findings. */
export const findingsKey = (runId: string, phase: string, agent: string) => `runs/${runId}/findings/${phase}/${agent}.json`;

/**
 * InvokeAgent: reviews the run's context with one agent.
 *
 * Builds the prompt from the agent's catalog entry, splits the diff into chunks that fit the
 * model's context window (window − max_tokens − prompt, at most {@link MAX_CHUNK_TOKENS}), calls
 * the provider once per chunk, validates each answer against the findings schema (one repair prompt
 * on an invalid answer), prices the usage from models.yml, stores the findings as an artifact and
 * returns a small {@link AgentResult} (tokens; cost in USD).
 *
 * @throws InvalidInputError on a bad Map item
 * @throws ProviderThrottledError | ProviderUnavailableError | ProviderTimeoutError (retryable)
 * @throws ProviderRejectedError when the provider refuses the request or the answer is still invalid
 *   after the repair prompt (the raw answer is stored under `runs/<run>/raw/...`)
 * @throws ProviderAuthError when the provider refuses the credentials
 */
export async function invokeAgent(raw: unknown, deps: InvokeAgentDeps): Promise<AgentResult> {
  const now = deps.now ?? Date.now;
  const started = now();
  const input: InvokeAgentInput = parseInput(InvokeAgentInputSchema, raw, 'InvokeAgent');
  const { agent } = input;
  const context = ContextArtifactSchema.parse(await deps.artifacts.getJson(input.contextRef));
  const provider = deps.providers[agent.model.provider];
  const system = systemPrompt(agent);
  const overhead = estimateTokens(system) + estimateTokens(chunkMessage(agent, context.change, '', 0, 1)) + 64;
  const budget = Math.min(MAX_CHUNK_TOKENS, Math.floor((agent.model.contextWindow - agent.maxTokens - overhead) * 0.9));
  const chunks = context.files.length > 0 ? chunkFiles(context.files, budget) : [];

  let usage: TokenUsage = NO_USAGE;
  let repaired = false;
  let servedBy: string | undefined;
  const findings: Finding[] = [];
  for (const [i, chunk] of chunks.entries()) {
    const messages: ChatMessage[] = [{ role: 'user', content: chunkMessage(agent, context.change, chunk, i, chunks.length) }];
    const request = { modelId: agent.model.modelId, system, maxTokens: agent.maxTokens, temperature: agent.temperature };
    const first = await provider.complete({ ...request, messages });
    usage = addUsage(usage, first.usage);
    servedBy = first.servedBy ?? servedBy;
    let parsed = parseAnswer(first.text);
    if (!parsed.ok) {
      repaired = true;
      const second = await provider.complete({ ...request, messages: repairMessages(messages, first.text, parsed.problem) });
      usage = addUsage(usage, second.usage);
      parsed = parseAnswer(second.text);
      if (!parsed.ok) {
        const rawRef = await deps.artifacts.putText(
          `runs/${input.runId}/raw/${input.phase}/${agent.name}-part${i + 1}.txt`,
          `${first.text}\n\n--- after the repair prompt ---\n\n${second.text}`,
        );
        throw new ProviderRejectedError(
          `${agent.name}: ${agent.model.alias} answered in an invalid format twice (${parsed.problem}); raw answer at ${rawRef}`,
          agent.model.provider,
        );
      }
    }
    findings.push(...parsed.answer.findings);
  }
  const findingsRef = await deps.artifacts.putJson(findingsKey(input.runId, input.phase, agent.name), {
    agent: agent.name,
    phase: input.phase,
    model: agent.model.alias,
    findings,
  });
  return {
    name: agent.name,
    phase: input.phase,
    status: 'succeeded',
    provider: agent.model.provider,
    model: agent.model.alias,
    inputTokens: usage.inputTokens + usage.cacheReadTokens + usage.cacheWriteTokens,
    outputTokens: usage.outputTokens,
    cachedTokens: usage.cacheReadTokens,
    costUsd: costUsd(usage, agent.model.price),
    findings: findings.length,
    findingsRef,
    chunks: chunks.length,
    repaired,
    ...(servedBy ? { servedBy } : {}),
    durationMs: now() - started,
  };
}
