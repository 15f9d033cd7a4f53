import { BedrockRuntimeClient, type ContentBlock, ConverseCommand, type ToolInputSchema } from '@aws-sdk/client-bedrock-runtime';
import type { DocumentType } from '@smithy/types';
import OpenAI from 'openai';
import type { AnswerFormat } from '../core/answer-format.js';
import type { StructuredOutput } from '../core/contracts.js';
import {
  ProviderAuthError,
  type ProviderError,
  ProviderRejectedError,
  ProviderThrottledError,
  ProviderTimeoutError,
  ProviderUnavailableError,
} from '../core/errors.js';
import type { ChatMessage, ModelProvider, ModelRequest, ModelResponse, ToolCall } from '../core/ports.js';

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
  /**
   * `true` for servers other than api.openai.com (Ollama, vLLM): uses `max_tokens`, and a
   * `response_format` only as the model's `structured_output` says. @default false
   */
  compatible?: boolean;
  /** The provider name errors carry. @default 'openai' ('openai-compatible' when `compatible`) */
  name?: string;
}

/** The `response_format` of a chat completion request. */
type ResponseFormat = OpenAI.Chat.Completions.ChatCompletionCreateParams['response_format'];

/**
 * The strict `json_schema` response format for `format`: the answer is JSON matching the schema
 * (constrained decoding). Source: OpenAI "Structured model outputs",
 * https://platform.openai.com/docs/guides/structured-outputs (checked 2026-11).
 */
export function jsonSchemaFormat(format: AnswerFormat): ResponseFormat {
  return {
    type: 'json_schema',
    json_schema: { name: format.name, description: format.description, strict: true, schema: format.schema },
  };
}

/**
 * The `response_format` an `openai-compatible` model gets for `format`, by its `structured_output`
 * capability: `json_schema` → {@link jsonSchemaFormat}; `json_object` → JSON mode
 * (`{type: 'json_object'}`, the prompt gives the shape); `prompt` → none. Without a format: none.
 */
export function compatibleFormat(format: AnswerFormat | undefined, capability: StructuredOutput = 'prompt'): ResponseFormat | undefined {
  if (!format) return undefined;
  const formats: Record<StructuredOutput, () => ResponseFormat | undefined> = {
    json_schema: () => jsonSchemaFormat(format),
    json_object: () => ({ type: 'json_object' }),
    prompt: () => undefined,
  };
  return formats[capability]();
}

/**
 * OpenAI chat completions through the `openai` SDK. Usage: `prompt_tokens` minus
 * `prompt_tokens_details.cached_tokens` is uncached input; cached tokens are cache reads.
 * `finish_reason: "length"` (the answer hit `maxTokens`) sets `truncated: true`.
 *
 * Answer format: with `answerFormat`, `openai` sends a strict `json_schema` response format
 * ({@link jsonSchemaFormat}) and `openai-compatible` what the model's `structuredOutput` allows
 * ({@link compatibleFormat}); without one, `openai` keeps JSON mode (`json_object`). A
 * `message.refusal` (the model declined, so there is no JSON) is a {@link ProviderRejectedError}
 * naming the refusal. Source: https://platform.openai.com/docs/guides/structured-outputs
 * ("Refusals"), checked 2026-11.
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
    const responseFormat = this.options.compatible
      ? compatibleFormat(req.answerFormat, req.structuredOutput)
      : req.answerFormat
        ? jsonSchemaFormat(req.answerFormat)
        : ({ type: 'json_object' } as const);
    try {
      r = await this.client.chat.completions.create(
        {
          model: req.modelId,
          messages: [{ role: 'system', content: req.system }, ...req.messages.flatMap(openAIMessages)],
          temperature: req.temperature,
          ...(req.tools && req.tools.length > 0
            ? {
                tools: req.tools.map((t) => ({
                  type: 'function' as const,
                  function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.inputSchema },
                })),
              }
            : {}),
          ...(this.options.compatible ? { max_tokens: req.maxTokens } : { max_completion_tokens: req.maxTokens }),
          ...(responseFormat ? { response_format: responseFormat } : {}),
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
    const refusal = choice?.message?.refusal;
    if (refusal) throw new ProviderRejectedError(`${this.name}: the model refused to answer: ${refusal}`, this.name, 200);
    const toolCalls = openAIToolCalls(choice?.message?.tool_calls);
    return {
      text: choice?.message?.content ?? '',
      ...(toolCalls.length > 0 ? { toolCalls } : {}),
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
 * One of our messages as OpenAI chat messages: an assistant message carries its `tool_calls`
 * (arguments as a JSON string); tool results become one `role: "tool"` message each (before the
 * user's text, if any). Source: https://platform.openai.com/docs/guides/function-calling (read 2026-11).
 */
function openAIMessages(m: ChatMessage): OpenAI.Chat.Completions.ChatCompletionMessageParam[] {
  if (m.role === 'assistant') {
    if (!m.toolCalls?.length) return [{ role: 'assistant', content: m.content }];
    return [
      {
        role: 'assistant',
        content: m.content || null,
        tool_calls: m.toolCalls.map((c) => ({
          id: c.id,
          type: 'function' as const,
          function: { name: c.name, arguments: JSON.stringify(c.input ?? {}) },
        })),
      },
    ];
  }
  const results = (m.toolResults ?? []).map((r) => ({
    role: 'tool' as const,
    tool_call_id: r.id,
    content: r.isError ? `ERROR: ${r.content}` : r.content,
  }));
  return m.content ? [...results, { role: 'user', content: m.content }] : results;
}

/**
 * The tool calls of an OpenAI answer. Arguments that are not a JSON object (a model can write
 * broken JSON) are kept as `{ "_unparsed": "<text>" }`, so the loop tells the model instead of failing.
 */
function openAIToolCalls(calls: OpenAI.Chat.Completions.ChatCompletionMessageToolCall[] | undefined): ToolCall[] {
  return (calls ?? []).flatMap((c) => {
    if (c.type !== 'function') return [];
    let input: unknown;
    try {
      input = JSON.parse(c.function.arguments || '{}');
    } catch {
      input = { _unparsed: c.function.arguments };
    }
    return [{ id: c.id, name: c.function.name, input }];
  });
}

/**
 * One of our messages as Converse content blocks: text, then `toolUse` blocks (assistant) or
 * `toolResult` blocks (user). Source: https://docs.aws.amazon.com/bedrock/latest/userguide/tool-use-inference-call.html (read 2026-11).
 */
function converseContent(m: ChatMessage): ContentBlock[] {
  const blocks: ContentBlock[] = [];
  for (const r of m.toolResults ?? []) {
    blocks.push({ toolResult: { toolUseId: r.id, content: [{ text: r.content }], ...(r.isError ? { status: 'error' as const } : {}) } });
  }
  if (m.content) blocks.push({ text: m.content });
  for (const c of m.toolCalls ?? []) blocks.push({ toolUse: { toolUseId: c.id, name: c.name, input: (c.input ?? {}) as DocumentType } });
  return blocks.length > 0 ? blocks : [{ text: '' }];
}

/**
 * The Converse `toolConfig` that makes the model answer in `format`: one tool whose input schema is
 * the format's schema, and `toolChoice` forcing that tool, so the answer is the tool's input (no
 * text). Sources: https://docs.aws.amazon.com/bedrock/latest/userguide/tool-use-inference-call.html
 * and https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ToolChoice.html
 * (a specific tool: Anthropic Claude 3 and later, Amazon Nova), checked 2026-11.
 */
export function toolConfigOf(format: AnswerFormat) {
  return {
    tools: [
      {
        toolSpec: {
          name: format.name,
          description: format.description,
          // The SDK types the schema as a Smithy document (any JSON value); a JSON Schema object is one.
          inputSchema: { json: format.schema as ToolInputSchema.JsonMember['json'] },
        },
      },
    ],
    toolChoice: { tool: { name: format.name } },
  };
}

/**
 * Claude on Amazon Bedrock through the Converse API. Usage fields: `inputTokens`,
 * `outputTokens`, `cacheReadInputTokens`, `cacheWriteInputTokens`. `stopReason: "max_tokens"`
 * (the answer hit `maxTokens`) sets `truncated: true`.
 *
 * Answer format: with `answerFormat`, the request forces a tool whose input schema is the format's
 * ({@link toolConfigOf}) and the answer's `text` is the JSON of the first `toolUse` block's `input`;
 * when the model wrote no tool use, the text blocks are the answer (parsed like a prompt-only one).
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
            content: i === 0 && req.messages.length > 1 ? [...converseContent(m), cachePoint] : converseContent(m),
          })),
          inferenceConfig: { maxTokens: req.maxTokens, temperature: req.temperature },
          ...(req.answerFormat ? { toolConfig: toolConfigOf(req.answerFormat) } : {}),
          ...(!req.answerFormat && req.tools && req.tools.length > 0
            ? {
                toolConfig: {
                  tools: req.tools.map((t) => ({
                    // Bedrock refuses an empty description (1 character at least); MCP's is optional.
                    toolSpec: {
                      name: t.name,
                      ...(t.description ? { description: t.description } : {}),
                      inputSchema: { json: t.inputSchema as ToolInputSchema.JsonMember['json'] },
                    },
                  })),
                },
              }
            : {}),
        }),
        req.timeoutMs ? { abortSignal: AbortSignal.timeout(req.timeoutMs) } : undefined,
      );
      const content = r.output?.message?.content ?? [];
      // A tool loop: every toolUse block is a call; otherwise a toolUse is the forced answer format.
      const toolCalls: ToolCall[] =
        req.tools && req.tools.length > 0 && !req.answerFormat
          ? content.flatMap((c) =>
              c.toolUse ? [{ id: c.toolUse.toolUseId ?? '', name: c.toolUse.name ?? '', input: c.toolUse.input ?? {} }] : [],
            )
          : [];
      const toolUse = toolCalls.length === 0 ? content.find((c) => c.toolUse !== undefined)?.toolUse : undefined;
      const text = toolUse ? JSON.stringify(toolUse.input ?? {}) : content.map((c) => c.text ?? '').join('');
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
        ...(toolCalls.length > 0 ? { toolCalls } : {}),
      };
    } catch (e) {
      const err = e as Error & { $metadata?: { httpStatusCode?: number }; code?: string };
      const name = err.code === 'ETIMEDOUT' ? 'Timeout' : err.name;
      throw classifyProviderError('bedrock', err.$metadata?.httpStatusCode, name, err.message, e);
    }
  }
}

export { BedrockRuntimeClient, OpenAI };
