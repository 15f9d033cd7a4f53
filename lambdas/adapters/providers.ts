import { BedrockRuntimeClient, ConverseCommand } from '@aws-sdk/client-bedrock-runtime';
import OpenAI from 'openai';
import {
  ProviderAuthError,
  type ProviderError,
  ProviderRejectedError,
  ProviderThrottledError,
  ProviderTimeoutError,
  ProviderUnavailableError,
} from '../core/errors.js';
import type { ModelProvider, ModelRequest, ModelResponse } from '../core/ports.js';

/** The label the offline model server puts in its answers (OpenAI `system_fingerprint`, Bedrock `additionalModelResponseFields.servedBy`). */
export const OFFLINE_FINGERPRINT = 'agentflow-offline';
/** How reports name the offline model server. */
export const OFFLINE_SERVER_NAME = 'AgentFlow offline model server';

/**
 * Classifies a failed provider call by HTTP status (and error name), as DESIGN §7 names them:
 * 429 → throttled; 5xx and connection failures → unavailable; timeouts → timeout; 401/403 → auth;
 * other 4xx (context too long, content policy, bad request) → rejected.
 */
export function classifyProviderError(
  provider: string,
  status: number | undefined,
  name: string,
  message: string,
  cause: unknown,
): ProviderError {
  const text = `${provider}: ${message}`;
  if (/Timeout|Abort/i.test(name)) return new ProviderTimeoutError(text, provider, status, { cause });
  if (status === 429 || /Throttl|TooManyRequests|ServiceQuotaExceeded/.test(name)) {
    return new ProviderThrottledError(text, provider, status ?? 429, { cause });
  }
  if (status === 401 || status === 403 || /AccessDenied|Unrecognized|Authentication|PermissionDenied/.test(name)) {
    return new ProviderAuthError(text, provider, status, { cause });
  }
  if (status !== undefined && status >= 400 && status < 500) return new ProviderRejectedError(text, provider, status, { cause });
  return new ProviderUnavailableError(text, provider, status, { cause });
}

/** Options of {@link OpenAIProvider}. */
export interface OpenAIProviderOptions {
  /** `true` for servers other than api.openai.com (Ollama, vLLM): uses `max_tokens` and no `response_format`. @default false */
  compatible?: boolean;
  /** The provider name errors carry. @default 'openai' ('openai-compatible' when `compatible`) */
  name?: string;
}

/**
 * OpenAI chat completions through the `openai` SDK. Usage: `prompt_tokens` minus
 * `prompt_tokens_details.cached_tokens` is uncached input; cached tokens are cache reads.
 * `finish_reason: "length"` (the answer hit `maxTokens`) sets `truncated: true`.
 */
export class OpenAIProvider implements ModelProvider {
  constructor(
    private readonly client: OpenAI,
    private readonly options: OpenAIProviderOptions = {},
  ) {}

  private get name(): string {
    return this.options.name ?? (this.options.compatible ? 'openai-compatible' : 'openai');
  }

  async complete(req: ModelRequest): Promise<ModelResponse> {
    let r: OpenAI.Chat.Completions.ChatCompletion;
    try {
      r = await this.client.chat.completions.create(
        {
          model: req.modelId,
          messages: [{ role: 'system', content: req.system }, ...req.messages],
          temperature: req.temperature,
          ...(this.options.compatible
            ? { max_tokens: req.maxTokens }
            : { max_completion_tokens: req.maxTokens, response_format: { type: 'json_object' as const } }),
        },
        req.timeoutMs ? { timeout: req.timeoutMs } : undefined,
      );
    } catch (e) {
      const status = e instanceof OpenAI.APIError ? e.status : undefined;
      const name = e instanceof OpenAI.APIConnectionTimeoutError ? 'Timeout' : ((e as Error).constructor?.name ?? 'Error');
      throw classifyProviderError(this.name, status, name, (e as Error).message, e);
    }
    if (!r || typeof r !== 'object' || !Array.isArray(r.choices)) {
      throw new ProviderUnavailableError(`${this.name}: malformed response (no choices)`, this.name, 200);
    }
    const cached = r.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    const choice = r.choices[0];
    return {
      text: choice?.message?.content ?? '',
      usage: {
        inputTokens: Math.max(0, (r.usage?.prompt_tokens ?? 0) - cached),
        outputTokens: r.usage?.completion_tokens ?? 0,
        cacheReadTokens: cached,
        cacheWriteTokens: 0,
      },
      ...(choice?.finish_reason === 'length' ? { truncated: true } : {}),
      ...(r.system_fingerprint === OFFLINE_FINGERPRINT ? { servedBy: OFFLINE_SERVER_NAME } : {}),
    };
  }
}

/**
 * Claude on Amazon Bedrock through the Converse API. Usage fields: `inputTokens`,
 * `outputTokens`, `cacheReadInputTokens`, `cacheWriteInputTokens`. `stopReason: "max_tokens"`
 * (the answer hit `maxTokens`) sets `truncated: true`.
 *
 * Prompt caching: a cache point follows the system prompt (the agent's shared instructions) and,
 * when the request continues a conversation (the repair prompt), the first user message (the
 * change under review), so a repeat of that prefix within the cache TTL is read at the cache-read
 * price. Below the model's minimum cacheable length Bedrock ignores the cache point.
 * Source: https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html (2025-11).
 */
export class BedrockProvider implements ModelProvider {
  constructor(private readonly client: BedrockRuntimeClient) {}

  async complete(req: ModelRequest): Promise<ModelResponse> {
    try {
      const cachePoint = { cachePoint: { type: 'default' as const } };
      const r = await this.client.send(
        new ConverseCommand({
          modelId: req.modelId,
          system: [{ text: req.system }, cachePoint],
          messages: req.messages.map((m, i) => ({
            role: m.role,
            content: i === 0 && req.messages.length > 1 ? [{ text: m.content }, cachePoint] : [{ text: m.content }],
          })),
          inferenceConfig: { maxTokens: req.maxTokens, temperature: req.temperature },
        }),
        req.timeoutMs ? { abortSignal: AbortSignal.timeout(req.timeoutMs) } : undefined,
      );
      const text = (r.output?.message?.content ?? []).map((c) => c.text ?? '').join('');
      const extra = r.additionalModelResponseFields as { servedBy?: string } | undefined;
      return {
        text,
        usage: {
          inputTokens: r.usage?.inputTokens ?? 0,
          outputTokens: r.usage?.outputTokens ?? 0,
          cacheReadTokens: r.usage?.cacheReadInputTokens ?? 0,
          cacheWriteTokens: r.usage?.cacheWriteInputTokens ?? 0,
        },
        ...(r.stopReason === 'max_tokens' ? { truncated: true } : {}),
        ...(extra?.servedBy === OFFLINE_FINGERPRINT ? { servedBy: OFFLINE_SERVER_NAME } : {}),
      };
    } catch (e) {
      const err = e as Error & { $metadata?: { httpStatusCode?: number }; code?: string };
      const name = err.code === 'ETIMEDOUT' ? 'Timeout' : err.name;
      throw classifyProviderError('bedrock', err.$metadata?.httpStatusCode, name, err.message, e);
    }
  }
}

export { BedrockRuntimeClient, OpenAI };
