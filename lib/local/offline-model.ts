import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { OFFLINE_FINGERPRINT } from '../../lambdas/adapters/providers.js';
import { formatTokens, type JsonSchema } from '../../lambdas/core/answer-format.js';
import { PROVIDERS, type Provider } from '../../lambdas/core/contracts.js';
import { DOCUMENT_CLOSE, DOCUMENT_OPEN } from '../../lambdas/core/prompt.js';
import { countTokens, type TokenizerFamily } from '../../lambdas/core/tokenizer.js';
import { offlineRequestAnswer } from './offline-requests.js';
import { type OfflineFinding, reviewPrompt } from './offline-rules.js';
import { offlineTests } from './offline-tests.js';
import { bedrockToolTurn, type OfflineToolResult, offlineToolCall, openAIToolTurn } from './offline-tools.js';
import { offlineVerdicts } from './offline-verifier.js';

/**
 * A fault the server injects instead of answering: an HTTP status 400–599 (400 says "context too
 * long"), `invalid` (a well-formed response whose answer is not JSON; with a forced Bedrock tool, a
 * text block and no tool use), `malformed` (HTTP 200 with a truncated body), `hang` (never answers:
 * the client's timeout must end the call), an answer shape ({@link ANSWER_SHAPES}, text answers
 * only) or an answer fault ({@link ANSWER_FAULTS}, every answer mode).
 */
export type OfflineFault = number | 'invalid' | 'malformed' | 'hang' | AnswerShape | AnswerFault;

/** Injected faults by provider, e.g. `{ bedrock: 503, 'openai-compatible': 'hang' }`. */
export type OfflineFaults = Partial<Record<Provider, OfflineFault>>;

/** Options of the offline model server. */
export interface OfflineModelOptions {
  /** Delay before every answer in ms. @default AGENTFLOW_OFFLINE_DELAY_MS or 0 */
  delayMs?: number;
  /**
   * Faults by provider, e.g. `{ bedrock: 503 }`.
   * @default parsed from AGENTFLOW_OFFLINE_FAULTS when the server is constructed (`bedrock:503,openai:429`, `openai-compatible:hang`)
   */
  faults?: OfflineFaults;
}

/**
 * Answer shapes real models give around a valid JSON answer (the parser must read each without a
 * repair prompt): `fenced-prose` — prose, a ```json fence, more prose; `brace-prose` — prose with
 * braces before the object; `two-objects` — the answer followed by an example object.
 */
export const ANSWER_SHAPES = ['fenced-prose', 'brace-prose', 'two-objects'] as const;
export type AnswerShape = (typeof ANSWER_SHAPES)[number];

/**
 * Broken answers, in every answer mode (text, JSON mode, strict `json_schema`, Bedrock tool use):
 * `truncated` — the answer cut at about half, marked `finish_reason: "length"` / `stopReason:
 * "max_tokens"` (a cut tool use carries an empty `input`); `empty` — no content at all;
 * `off-schema` — valid JSON that does not match the findings format (`findings` a string).
 */
export const ANSWER_FAULTS = ['truncated', 'empty', 'off-schema'] as const;
export type AnswerFault = (typeof ANSWER_FAULTS)[number];

/**
 * How a request asks for its answer: `text` (no format: the prompt describes it), `json_object`
 * (OpenAI JSON mode), `json_schema` (OpenAI structured outputs) or `tool` (a Bedrock toolConfig
 * whose `toolChoice` forces a tool: the answer is that tool's input).
 */
export type AnswerMode = 'text' | 'json_object' | 'json_schema' | 'tool';

/** `answer` (a JSON object) in the shape `fault` asks for; any other fault leaves it as it is. */
export function shapeAnswer(answer: string, fault: OfflineFault | undefined): string {
  switch (fault) {
    case 'fenced-prose':
      return `Here is my review of the change.\n\n\`\`\`json\n${answer}\n\`\`\`\n\nLet me know if you want more detail.`;
    case 'brace-prose':
      return `I read the diff {all parts} and the {context}; my answer: ${answer}`;
    case 'two-objects':
      return `${answer}\n\nFor reference, an empty review looks like {"summary":"","findings":[]}.`;
    default:
      return answer;
  }
}

const FAULT_WORDS = ['invalid', 'malformed', 'hang', ...ANSWER_SHAPES, ...ANSWER_FAULTS] as const;
const PROVIDER_SET: ReadonlySet<string> = new Set(PROVIDERS);

/**
 * Parses `AGENTFLOW_OFFLINE_FAULTS`: comma-separated `provider:fault` entries, where provider is one
 * of {@link PROVIDERS} and fault an HTTP status 400–599, `invalid`, `malformed`, `hang`, an answer shape ({@link ANSWER_SHAPES})
 * or an answer fault ({@link ANSWER_FAULTS}: `truncated`, `empty`, `off-schema`) (see {@link OfflineFault}). A later entry for the same provider replaces an earlier one.
 *
 * @example parseFaults('bedrock:503, openai-compatible:hang') // → { bedrock: 503, 'openai-compatible': 'hang' }
 * @throws Error with one line naming the bad entry and the accepted forms, e.g.
 *   `AGENTFLOW_OFFLINE_FAULTS: "foo:503" — provider must be one of bedrock, openai, openai-compatible; fault an HTTP status (400-599), invalid, malformed, hang, fenced-prose, brace-prose, two-objects, truncated, empty or off-schema`
 */
export function parseFaults(text: string | undefined): OfflineFaults {
  const faults: OfflineFaults = {};
  for (const part of (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const at = part.lastIndexOf(':');
    const provider = part.slice(0, at).trim();
    const fault = parseFault(part.slice(at + 1).trim());
    if (at < 0 || !isProvider(provider) || fault === undefined) {
      throw new Error(
        `AGENTFLOW_OFFLINE_FAULTS: "${part}" — provider must be one of ${PROVIDERS.join(', ')}; ` +
          `fault an HTTP status (400-599), ${FAULT_WORDS.slice(0, -1).join(', ')} or ${FAULT_WORDS.at(-1)}`,
      );
    }
    faults[provider] = fault;
  }
  return faults;
}

function isProvider(name: string): name is Provider {
  return PROVIDER_SET.has(name);
}

function parseFault(text: string): OfflineFault | undefined {
  if ((FAULT_WORDS as readonly string[]).includes(text)) return text as (typeof FAULT_WORDS)[number];
  if (!/^\d{3}$/.test(text)) return undefined;
  const status = Number(text);
  return status >= 400 && status <= 599 ? status : undefined;
}

/** Requests the server has answered, by provider (for tests and the bench). */
export type OfflineStats = Record<Provider, number>;

/** The providers that speak the OpenAI chat completions wire format. */
type OpenAIWireProvider = Exclude<Provider, 'bedrock'>;

/**
 * The path prefix of each OpenAI-wire provider on the HTTP listener: the base URL the runtime gives
 * that provider's SDK client ({@link OfflineModelServer.openaiUrl}, {@link OfflineModelServer.compatibleUrl}).
 * The prefix is how the server tells the two providers apart (for faults, stats and `modelCalls`).
 */
export const OPENAI_WIRE_PREFIX: Record<OpenAIWireProvider, string> = {
  openai: '/v1',
  'openai-compatible': '/compat/v1',
};

/**
 * Chat-format overhead in tokens: each message costs its role and content plus
 * {@link TOKENS_PER_MESSAGE}, and the reply is primed with {@link REPLY_PRIMING_TOKENS}.
 * Source: OpenAI cookbook "How to count tokens with tiktoken" (gpt-4o family), checked 2026-11-29.
 */
export const TOKENS_PER_MESSAGE = 3;
/** Tokens that prime the assistant's reply, once per request (see {@link TOKENS_PER_MESSAGE}). */
export const REPLY_PRIMING_TOKENS = 3;

/**
 * Input tokens the offline server reports for a chat: the o200k_base count (`countTokens(…, 'openai')`)
 * of every message's role and content, plus {@link TOKENS_PER_MESSAGE} per message and
 * {@link REPLY_PRIMING_TOKENS}. The system prompt, when not empty, counts as one more message. The
 * OpenAI wire format counts with o200k; the Bedrock (Claude) one with Anthropic's published Claude
 * tokenizer, without the gateway's safety margin (`family: 'claude'`).
 */
export function offlineInputTokens(
  system: string,
  messages: ReadonlyArray<{ role: string; content: string }>,
  family: TokenizerFamily = 'openai',
): number {
  const all = system ? [{ role: 'system', content: system }, ...messages] : messages;
  const count = (t: string) => countTokens(t, family, { margin: false });
  return all.reduce((n, m) => n + TOKENS_PER_MESSAGE + count(m.role) + count(m.content), REPLY_PRIMING_TOKENS);
}

/**
 * Cuts an answer to at most `maxTokens` o200k tokens, as a provider stops generating at its limit.
 * Returns the text to send, its token count and whether it was cut. Without a limit (or when the
 * answer fits) the text is whole.
 */
export function capAnswer(text: string, maxTokens: number | undefined): { text: string; tokens: number; truncated: boolean } {
  const whole = countTokens(text, 'openai');
  if (maxTokens === undefined || whole <= maxTokens) return { text, tokens: whole, truncated: false };
  const fits = (n: number) => countTokens(text.slice(0, n), 'openai') <= maxTokens;
  // The longest prefix that fits: binary search over characters (a prefix never has fewer tokens
  // than a shorter one, up to a token split at the cut, which the loop below corrects).
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  while (lo > 0 && !fits(lo)) lo--;
  // Never end on the first half of a surrogate pair.
  if (lo > 0 && /[\uD800-\uDBFF]/.test(text.charAt(lo - 1))) lo--;
  const cut = text.slice(0, lo);
  return { text: cut, tokens: countTokens(cut, 'openai'), truncated: true };
}

/** The offline model's review: what {@link offlineAnswer} lays out for an answer mode. */
export interface OfflineReview {
  summary: string;
  findings: OfflineFinding[];
  /** For `output: document` agents (the system prompt has a `## Document` section). */
  document?: string;
  /** For `output: tests` agents (the system prompt has a `## Test files` section). */
  files?: Array<{ path: string; content: string }>;
}

/**
 * The offline model's review of a system prompt + messages: findings for the asked categories,
 * from the last user message with text (the chunk, or the chunk a repair prompt asks about again).
 * Tool results never change it: a review agent that used the built-in tools (offline-tools.ts)
 * answers the findings it answers without them.
 */
export function offlineReview(system: string, messages: Array<{ role: string; content: string }>): OfflineReview {
  // The last user message with text: a Bedrock tool loop's tool results come in user messages without any.
  const user = [...messages].reverse().find((m) => m.role === 'user' && m.content !== '')?.content ?? '';
  // A repair request: answer the original prompt again.
  const prompt = /could not be used/.test(user) ? (messages.find((m) => m.role === 'user')?.content ?? user) : user;
  const categories = (/^Categories: (.+)$/m.exec(prompt)?.[1] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const agent = /^Agent: (.+)$/m.exec(prompt)?.[1] ?? 'agent';
  const findings = reviewPrompt(prompt, categories);
  return {
    summary: `${agent}: ${findings.length} finding(s) from the offline model's rules for ${categories.join(', ') || 'no categories'}.`,
    findings,
    ...(/^## Document$/m.test(system) ? { document: offlineDocument(prompt, agent, findings) } : {}),
    ...(/^## Test files$/m.test(system) ? { files: offlineTests(prompt) } : {}),
  };
}

/**
 * The answer the offline model gives to a system prompt + messages, as the answer `mode` asks:
 * `text` — the JSON object, then a document (if any) between the lines `=== DOCUMENT ===` and
 * `=== END DOCUMENT ===`, as the system prompt asks a prompt-only model; `json_object` — one JSON
 * object with the document in `"document"`; `json_schema` / `tool` — that object with every field
 * present (`document: null` when there is none), as a strict schema requires.
 *
 * A request run's agent (an `answerSystemPrompt` / `routeSystemPrompt` system prompt) gets its
 * `{"answer", "data"}` or `{"route", "reason"}` object instead, in every mode, from the request and
 * the conversation's tool `results` ({@link offlineRequestAnswer}, lib/local/offline-requests.ts).
 */
export function offlineAnswer(
  system: string,
  messages: Array<{ role: string; content: string }>,
  mode: AnswerMode = 'text',
  results: readonly OfflineToolResult[] = [],
): string {
  // The verifier (`verifyMessage`): verdicts, the same object in every mode (it has no optional field).
  const first = messages.find((m) => m.role === 'user')?.content ?? '';
  if (first.startsWith('Verify: ')) return JSON.stringify(offlineVerdicts(first));
  const request = offlineRequestAnswer(system, first, results);
  if (request !== undefined) return request;
  const { document, ...review } = offlineReview(system, messages);
  if (mode === 'text') return `${JSON.stringify(review)}${document ? `\n${DOCUMENT_OPEN}\n${document}\n${DOCUMENT_CLOSE}` : ''}`;
  if (mode === 'json_object') return JSON.stringify({ ...review, ...(document ? { document } : {}) });
  // The tests format (`report_tests`) has files and no document.
  return JSON.stringify(review.files ? review : { ...review, document: document ?? null });
}

/**
 * The offline model's document (for `output: document` agents): an ADR and a migration guide
 * assembled from the earlier phases' findings in the prompt and this change's own findings.
 */
function offlineDocument(
  prompt: string,
  agent: string,
  findings: ReadonlyArray<{ file: string; line: number; message: string; suggestion: string }>,
): string {
  const pr = /^Pull request: (.+)$/m.exec(prompt)?.[1] ?? 'the change';
  const earlier = [...prompt.matchAll(/^- \[(\w+)\] ([\w-]+): (.+)$/gm)].map((m) => ({ severity: m[1], agent: m[2], text: m[3] }));
  const by = (a: string) => earlier.filter((e) => e.agent === a).map((e) => `- ${e.text}`);
  const context = by('architecture');
  const steps = by('migration-planning');
  const impact = by('impact-analysis');
  const files = [...new Set(findings.map((f) => f.file))];
  return [
    `# ADR: Architecture migration for ${pr}`,
    '',
    '_Written by the AgentFlow offline model (rule-based stand-in), not by a real model._',
    '',
    '## Status',
    '',
    'Accepted (the approval gate of the workflow was approved).',
    '',
    '## Context',
    '',
    ...(context.length ? context : ['- No architecture findings were reported.']),
    '',
    '## Decision',
    '',
    `Migrate incrementally, one step per pull request, in the order of the migration guide below${files.length ? `, starting with ${files.slice(0, 3).join(', ')}` : ''}.`,
    '',
    '## Consequences',
    '',
    ...(impact.length ? impact : ['- No impact findings were reported.']),
    '',
    '# Migration guide',
    '',
    ...(steps.length
      ? steps.map((s, i) => `${i + 1}. ${s.slice(2)} Verify with the module's tests; roll back by reverting the step's pull request.`)
      : ['1. No migration steps were reported.']),
    '',
    `_Agent: ${agent}._`,
  ].join('\n');
}

/** A tool / json_schema name both vendors accept. */
const FORMAT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const isObject = (v: unknown): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Where `schema` breaks OpenAI's strict-mode rules, as OpenAI words it, or undefined when it keeps
 * them: the root is an object; every object with `properties` has `additionalProperties: false` and
 * lists every property in `required`. Source: https://platform.openai.com/docs/guides/structured-outputs
 * ("Supported schemas"), checked 2026-11.
 */
export function strictSchemaProblem(schema: JsonSchema): string | undefined {
  if (schema.type !== 'object')
    return "schema must be a JSON Schema of 'type: \"object\"', got 'type: " + JSON.stringify(schema.type) + "'.";
  const walk = (node: unknown, context: string[]): string | undefined => {
    if (Array.isArray(node)) {
      for (const [i, n] of node.entries()) {
        const p = walk(n, [...context, String(i)]);
        if (p) return p;
      }
      return undefined;
    }
    if (!isObject(node)) return undefined;
    const where = `In context=(${context.map((c) => `'${c}'`).join(', ')})`;
    if (isObject(node.properties)) {
      if (node.additionalProperties !== false) return `${where}, 'additionalProperties' is required to be supplied and to be false.`;
      const required = Array.isArray(node.required) ? node.required : [];
      const missing = Object.keys(node.properties).filter((k) => !required.includes(k));
      if (missing.length > 0) {
        return `${where}, 'required' is required to be supplied and to be an array including every key in properties. Missing '${missing[0]}'.`;
      }
    }
    for (const key of ['properties', 'items', 'anyOf', '$defs'] as const) {
      if (node[key] === undefined) continue;
      const children = node[key];
      if (key === 'properties' || key === '$defs') {
        for (const [name, child] of Object.entries(children as JsonSchema)) {
          const p = walk(child, [...context, key, name]);
          if (p) return p;
        }
      } else {
        const p = walk(children, [...context, key]);
        if (p) return p;
      }
    }
    return undefined;
  };
  return walk(schema, []);
}

/**
 * Where `value` does not match `schema`, or undefined when it does. Checks the keywords an answer
 * format uses (`type`, `properties`, `required`, `additionalProperties: false`, `items`, `enum`,
 * `const`, `anyOf`, `minimum`, `maximum`); local `$ref`s are not followed. Enough for the offline
 * server to check its own answer against the schema a request sends (no validator dependency).
 */
export function schemaMismatch(value: unknown, schema: JsonSchema, path = '$'): string | undefined {
  if (Array.isArray(schema.anyOf)) {
    const ok = schema.anyOf.some((s) => isObject(s) && schemaMismatch(value, s, path) === undefined);
    if (!ok) return `${path}: matches no anyOf branch`;
  }
  const types = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];
  const typeOf = (v: unknown) =>
    v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v === 'number' ? 'number' : typeof v;
  const actual = typeOf(value);
  if (types.length > 0 && !types.some((t) => t === actual || (t === 'number' && actual === 'integer'))) {
    return `${path}: expected ${types.join(' or ')}, got ${actual}`;
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) return `${path}: not one of ${JSON.stringify(schema.enum)}`;
  if ('const' in schema && schema.const !== value) return `${path}: not ${JSON.stringify(schema.const)}`;
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) return `${path}: below ${schema.minimum}`;
    if (typeof schema.maximum === 'number' && value > schema.maximum) return `${path}: above ${schema.maximum}`;
  }
  if (Array.isArray(value) && isObject(schema.items)) {
    for (const [i, v] of value.entries()) {
      const m = schemaMismatch(v, schema.items, `${path}[${i}]`);
      if (m) return m;
    }
  }
  if (isObject(value)) {
    const properties = isObject(schema.properties) ? schema.properties : {};
    for (const key of Array.isArray(schema.required) ? (schema.required as string[]) : []) {
      if (!(key in value)) return `${path}: missing "${key}"`;
    }
    for (const [key, v] of Object.entries(value)) {
      const s = properties[key];
      if (isObject(s)) {
        const m = schemaMismatch(v, s, `${path}.${key}`);
        if (m) return m;
      } else if (schema.additionalProperties === false) return `${path}: unexpected "${key}"`;
    }
  }
  return undefined;
}

/**
 * The answer mode and schema of an OpenAI chat completions request's `response_format`, or the
 * 400 `invalid_request_error` message OpenAI gives for a bad one: an unknown type; `json_schema`
 * without a valid `name` or a `schema` object; with `strict: true`, a schema breaking the strict
 * rules ({@link strictSchemaProblem}); `json_object` when no message mentions JSON.
 * Source: https://platform.openai.com/docs/api-reference/chat/create (`response_format`), checked 2026-11.
 */
export function openAIAnswerMode(
  format: unknown,
  messages: ReadonlyArray<{ content: string }>,
): { mode: AnswerMode; schema?: JsonSchema } | { error: string } {
  if (format === undefined || format === null) return { mode: 'text' };
  if (!isObject(format)) return { error: "Invalid type for 'response_format': expected an object." };
  if (format.type === 'text') return { mode: 'text' };
  if (format.type === 'json_object') {
    if (!messages.some((m) => /json/i.test(m.content))) {
      return { error: "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'." };
    }
    return { mode: 'json_object' };
  }
  if (format.type !== 'json_schema') {
    return { error: `Invalid value: '${String(format.type)}'. Supported values are: 'text', 'json_object' and 'json_schema'.` };
  }
  const spec = format.json_schema;
  if (!isObject(spec)) return { error: "Missing required parameter: 'response_format.json_schema'." };
  if (typeof spec.name !== 'string' || !FORMAT_NAME.test(spec.name)) {
    return { error: "Invalid 'response_format.json_schema.name': must be 1-64 characters of a-z, A-Z, 0-9, underscores and dashes." };
  }
  if (!isObject(spec.schema)) return { error: "Missing required parameter: 'response_format.json_schema.schema'." };
  if (spec.strict === true) {
    const problem = strictSchemaProblem(spec.schema);
    if (problem) return { error: `Invalid schema for response_format '${spec.name}': ${problem}` };
  }
  return { mode: 'json_schema', schema: spec.schema };
}

/**
 * The tool names of an OpenAI request's `tools`, or the 400 OpenAI gives: `tools` not a list of
 * `{ type: "function", function: { name, parameters } }` (name 1–64 of letters, digits, `_`, `-`),
 * or a `role: "tool"` message answering no `tool_calls` id of an earlier assistant message.
 * Source: https://platform.openai.com/docs/api-reference/chat/create (`tools`, tool messages), read 2026-11.
 */
export function openAITools(
  tools: unknown,
  messages: ReadonlyArray<{ role: string; tool_call_id?: string; tool_calls?: Array<{ id?: string }> }>,
): { names: string[] } | { error: string; param: string } {
  const names: string[] = [];
  if (tools !== undefined) {
    if (!Array.isArray(tools)) return { error: "Invalid type for 'tools': expected an array.", param: 'tools' };
    for (const [i, t] of tools.entries()) {
      const fn = isObject(t) && t.type === 'function' ? t.function : undefined;
      if (!isObject(fn) || typeof fn.name !== 'string' || !FORMAT_NAME.test(fn.name)) {
        return {
          error: `Invalid 'tools[${i}].function.name': must be 1-64 characters of a-z, A-Z, 0-9, underscores and dashes.`,
          param: `tools[${i}].function.name`,
        };
      }
      if (fn.parameters !== undefined && !isObject(fn.parameters))
        return { error: `Invalid 'tools[${i}].function.parameters': expected an object.`, param: `tools[${i}].function.parameters` };
      names.push(fn.name);
    }
  }
  const called = new Set<string>();
  for (const [i, m] of messages.entries()) {
    for (const c of m.tool_calls ?? []) if (c.id) called.add(c.id);
    if (m.role === 'tool' && !called.has(m.tool_call_id ?? '')) {
      return {
        error: "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
        param: `messages.[${i}].role`,
      };
    }
  }
  return { names };
}

/**
 * Bedrock's ValidationException for a `toolResult` block whose `toolUseId` no earlier `toolUse`
 * block has, or undefined when every result answers a call.
 */
function unmatchedToolResult(
  messages: ReadonlyArray<{ content: Array<{ toolUse?: { toolUseId?: string }; toolResult?: { toolUseId?: string } }> }>,
): string | undefined {
  const used = new Set<string>();
  for (const [i, m] of messages.entries()) {
    for (const c of m.content) {
      if (c.toolUse?.toolUseId) used.add(c.toolUse.toolUseId);
      if (c.toolResult && !used.has(c.toolResult.toolUseId ?? '')) {
        return `The toolResult block at messages.${i}.content has a toolUseId that matches no toolUse block of an earlier message.`;
      }
    }
  }
  return undefined;
}

/**
 * The answer mode and forced tool of a Converse request's `toolConfig`, or the 400
 * ValidationException message Bedrock gives for a bad one: `tools` not a non-empty list; a tool
 * without `toolSpec.name` (1–64 of letters, digits, `_`, `-`) or an `inputSchema.json` object
 * schema; a `toolChoice.tool.name` naming no declared tool. `toolChoice` `tool` or `any` forces a
 * tool (the named one, or the first); `auto` or none leaves the offline model answering in text.
 * Source: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ToolConfiguration.html, checked 2026-11.
 */
export function bedrockAnswerMode(
  toolConfig: unknown,
): { mode: AnswerMode; tool?: { name: string; description: string; schema: JsonSchema }; offered?: string[] } | { error: string } {
  if (toolConfig === undefined) return { mode: 'text' };
  if (!isObject(toolConfig) || !Array.isArray(toolConfig.tools) || toolConfig.tools.length === 0) {
    return { error: 'The value at toolConfig.tools must be a list of at least one tool.' };
  }
  const tools: Array<{ name: string; description: string; schema: JsonSchema }> = [];
  for (const [i, t] of toolConfig.tools.entries()) {
    const spec = isObject(t) ? t.toolSpec : undefined;
    if (!isObject(spec) || typeof spec.name !== 'string' || !FORMAT_NAME.test(spec.name)) {
      return {
        error: `The value at toolConfig.tools.${i + 1}.member.toolSpec.name failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+`,
      };
    }
    const json = isObject(spec.inputSchema) ? spec.inputSchema.json : undefined;
    if (!isObject(json) || json.type !== 'object') {
      return { error: `The value at toolConfig.tools.${i + 1}.member.toolSpec.inputSchema.json must be a JSON Schema of type object.` };
    }
    tools.push({ name: spec.name, description: typeof spec.description === 'string' ? spec.description : '', schema: json });
  }
  const choice = toolConfig.toolChoice;
  // No forced tool: the model may call any of them (a tool loop), or answer in text.
  if (choice === undefined || (isObject(choice) && 'auto' in choice)) return { mode: 'text', offered: tools.map((t) => t.name) };
  if (isObject(choice) && 'any' in choice) return { mode: 'tool', tool: tools[0] };
  const named = isObject(choice) && isObject(choice.tool) ? choice.tool.name : undefined;
  const tool = tools.find((t) => t.name === named);
  if (!tool) return { error: `The tool ${JSON.stringify(named)} in toolConfig.toolChoice.tool.name is not in toolConfig.tools.` };
  return { mode: 'tool', tool };
}

/**
 * `value` with every property a schema requires but `value` lacks set to `null`, recursively (a
 * model under strict structured output writes `null` for an optional field it does not fill).
 */
function withNulls(value: unknown, schema: JsonSchema): unknown {
  if (Array.isArray(value)) {
    const items = schema.items;
    return items && typeof items === 'object' && !Array.isArray(items) ? value.map((v) => withNulls(v, items as JsonSchema)) : value;
  }
  if (!value || typeof value !== 'object') return value;
  const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const key of (schema.required ?? []) as string[]) if (!(key in out)) out[key] = null;
  for (const [key, sub] of Object.entries(props)) {
    if (out[key] !== null && out[key] !== undefined) out[key] = withNulls(out[key], branchOf(sub));
  }
  return out;
}

/** The non-null branch of a nullable schema (`anyOf: [T, {type: 'null'}]`), else the schema. */
function branchOf(schema: JsonSchema): JsonSchema {
  const any = schema.anyOf as JsonSchema[] | undefined;
  return any?.find((s) => s.type !== 'null') ?? schema;
}

/**
 * The text the offline model sends for `mode` and `fault` (before the answer limit) and whether an
 * injected fault already cut it; `error` when its own answer does not match `schema` (a bug of the
 * offline rules, answered as HTTP 500).
 */
function faultedAnswer(
  system: string,
  messages: Array<{ role: string; content: string }>,
  mode: AnswerMode,
  fault: OfflineFault | undefined,
  schema: JsonSchema | undefined,
  results: readonly OfflineToolResult[] = [],
): { text: string; cut: boolean } | { error: string } {
  if (fault === 'invalid') return { text: 'Here are my thoughts on the change (not JSON).', cut: false };
  if (fault === 'empty') return { text: '', cut: false };
  if (fault === 'off-schema') {
    return { text: JSON.stringify({ summary: 'Reviewed.', findings: 'none: the change looks fine' }), cut: false };
  }
  let text = offlineAnswer(system, messages, mode, results);
  if (schema) {
    // A strict schema lists every property as required: the absent optional ones are null.
    text = JSON.stringify(withNulls(JSON.parse(text), schema));
    const mismatch = schemaMismatch(JSON.parse(text), schema);
    if (mismatch) return { error: `offline model server: its answer does not match the requested schema (${mismatch})` };
  }
  if (mode === 'text' || mode === 'json_object') text = shapeAnswer(text, fault);
  if (fault === 'truncated') return { text: text.slice(0, Math.floor(text.length / 2)), cut: true };
  return { text, cut: false };
}

/**
 * The content blocks of a Converse answer: with a forced tool, one `toolUse` block whose `input` is
 * the answer's JSON (an answer cut at the limit carries `{}`: its input never closed; an empty or
 * non-JSON answer is sent as text, as a model that ignored the tool); otherwise one text block (none
 * for an empty answer).
 */
function bedrockContent(
  out: { text: string; truncated: boolean },
  tool: string | undefined,
  n: number,
): Array<{ text: string } | { toolUse: { toolUseId: string; name: string; input: unknown } }> {
  if (tool) {
    let input: unknown;
    try {
      input = out.truncated ? {} : JSON.parse(out.text);
    } catch {
      input = undefined;
    }
    if (input !== undefined) return [{ toolUse: { toolUseId: `tooluse_offline_${n}`, name: tool, input } }];
  }
  return out.text ? [{ text: out.text }] : [];
}

/** The OpenAI-wire providers, in {@link PROVIDERS} order. */
const OPENAI_WIRE_PROVIDERS = PROVIDERS.filter((p): p is OpenAIWireProvider => p !== 'bedrock');

/** A positive whole number of tokens from a request field, else `undefined` (no limit). */
const tokenLimit = (...values: unknown[]): number | undefined =>
  values.find((v): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0);

/**
 * A model server on 127.0.0.1 that speaks two wire formats with deterministic, rule-based answers:
 * OpenAI chat completions (HTTP/1.1; `POST /v1/chat/completions` for `openai`,
 * `POST /compat/v1/chat/completions` for `openai-compatible`, see {@link OPENAI_WIRE_PREFIX}) and
 * Bedrock Converse (`POST /model/{modelId}/converse`, cleartext HTTP/2, as the Bedrock runtime
 * client speaks). It stands in for the real providers when no credentials are configured, and names
 * itself in every answer (`system_fingerprint` / `additionalModelResponseFields.servedBy`).
 *
 * Usage is what a provider would report: input tokens from {@link offlineInputTokens}, output
 * tokens the o200k count of the answer actually sent (both formats; see the function's note). The
 * request's answer limit (OpenAI `max_completion_tokens` or `max_tokens`, Bedrock
 * `inferenceConfig.maxTokens`) is respected: a longer answer is cut to the limit ({@link capAnswer})
 * and marked `finish_reason: "length"` / `stopReason: "max_tokens"`; otherwise `"stop"` / `"end_turn"`.
 *
 * Answer formats are checked as the real services check them: an OpenAI `response_format`
 * ({@link openAIAnswerMode}: `json_object`, or `json_schema` with a name, a schema and, when
 * `strict`, the strict rules; otherwise HTTP 400 `invalid_request_error`) and a Bedrock `toolConfig`
 * ({@link bedrockAnswerMode}: otherwise HTTP 400 `ValidationException`). With a forced tool the
 * answer is a `toolUse` block and `stopReason: "tool_use"`; with a `json_schema` the content is the
 * JSON. The server's own answer is checked against the schema sent ({@link schemaMismatch}).
 * Output tokens are counted from what is sent (the tool input's JSON for a tool use).
 *
 * @throws Error from the constructor when `AGENTFLOW_OFFLINE_FAULTS` cannot be read (see {@link parseFaults})
 */
export class OfflineModelServer {
  readonly stats: OfflineStats = { bedrock: 0, openai: 0, 'openai-compatible': 0 };
  /** Requests by `provider:model id`. */
  readonly modelCalls: Record<string, number> = {};
  private http?: Server;
  private h2?: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private faults: OfflineFaults;
  /** Base URL of the `openai` provider (`http://127.0.0.1:{port}/v1`), set by {@link start}. */
  openaiUrl = '';
  /** Base URL of the `openai-compatible` provider (`http://127.0.0.1:{port}/compat/v1`), set by {@link start}. */
  compatibleUrl = '';
  /** Endpoint of the Bedrock runtime client (`http://127.0.0.1:{port}`), set by {@link start}. */
  bedrockUrl = '';

  constructor(private readonly options: OfflineModelOptions = {}) {
    // Read here, not per request, so a bad value fails when the runtime starts, as one line.
    this.faults = options.faults ?? parseFaults(process.env.AGENTFLOW_OFFLINE_FAULTS);
  }

  private get delayMs(): number {
    return this.options.delayMs ?? Number(process.env.AGENTFLOW_OFFLINE_DELAY_MS ?? 0);
  }

  private countModel(key: string): void {
    this.modelCalls[key] = (this.modelCalls[key] ?? 0) + 1;
  }

  /** Replaces the injected faults (tests: a provider recovers or starts failing). */
  setFaults(faults: OfflineFaults): void {
    this.faults = faults;
  }

  /** System prompts seen in the last 5 minutes (the providers' prompt cache TTL), for cache-token usage. */
  private readonly seenPrefixes = new Map<string, number>();

  /** Tokens (o200k) of `prefix` read from the simulated prompt cache (0 on the first sight, which writes it). */
  private cachedPrefix(prefix: string, minTokens: number, family: TokenizerFamily = 'openai'): { read: number; write: number } {
    const t = countTokens(prefix, family, { margin: false });
    if (t < minTokens) return { read: 0, write: 0 };
    const seen = this.seenPrefixes.get(prefix);
    this.seenPrefixes.set(prefix, Date.now());
    return seen !== undefined && Date.now() - seen < 300_000 ? { read: t, write: 0 } : { read: 0, write: t };
  }

  /** Starts both listeners on 127.0.0.1 (ephemeral ports unless given). */
  async start(ports: { openai?: number; bedrock?: number } = {}): Promise<this> {
    this.http = createServer((req, res) => void this.onOpenAI(req, res));
    await new Promise<void>((ok) => this.http?.listen(ports.openai ?? 0, '127.0.0.1', ok));
    const origin = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
    this.openaiUrl = `${origin}${OPENAI_WIRE_PREFIX.openai}`;
    this.compatibleUrl = `${origin}${OPENAI_WIRE_PREFIX['openai-compatible']}`;
    this.h2 = http2.createServer();
    this.h2.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
    });
    this.h2.on('stream', (stream, headers) => void this.onBedrock(stream, headers));
    await new Promise<void>((ok) => this.h2?.listen(ports.bedrock ?? 0, '127.0.0.1', ok));
    this.bedrockUrl = `http://127.0.0.1:${(this.h2.address() as AddressInfo).port}`;
    return this;
  }

  /** Stops both listeners and closes open HTTP/2 sessions. */
  async stop(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    this.http?.closeAllConnections();
    await Promise.all([
      new Promise<void>((ok) => (this.http ? this.http.close(() => ok()) : ok())),
      new Promise<void>((ok) => (this.h2 ? this.h2.close(() => ok()) : ok())),
    ]);
  }

  private async wait(): Promise<void> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
  }

  /**
   * Resolves halfway through the delay (at once without one): when the answer is made. By then the
   * caller, when it runs in this process (the local runtime runs every agent on one thread), has
   * sent the requests it sends together and waits for their answers, so making this answer does
   * not hold the others back — as a provider's work is not the caller's (a 40-agent phase spent
   * about 25 ms of its thread making answers while agents still had calls to send; issue 16).
   */
  private async halfway(): Promise<void> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs / 2));
  }

  private async onOpenAI(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The answer is made while the delay runs (halfway through it: see `halfway`) and sent when
    // it ends, as a provider's latency includes its work: the answer takes `delayMs`, not `delayMs`
    // plus this process's time to make it (which, 40 answers due at once, queued behind each other — issue 16).
    let ready: Promise<void> = Promise.resolve();
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      void ready.then(() => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(text);
      });
    };
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const provider = OPENAI_WIRE_PROVIDERS.find((p) => path === `${OPENAI_WIRE_PREFIX[p]}/chat/completions`);
    if (req.method !== 'POST' || !provider) {
      send(404, { error: { message: `offline model server: no route ${req.method} ${req.url}`, type: 'invalid_request_error' } });
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: {
      model?: string;
      messages?: Array<{
        role: string;
        content: string | null;
        tool_call_id?: string;
        tool_calls?: Array<{ id?: string; function?: { name?: string } }>;
      }>;
      max_tokens?: unknown;
      max_completion_tokens?: unknown;
      response_format?: unknown;
      tools?: unknown;
    };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      send(400, { error: { message: 'body is not JSON', type: 'invalid_request_error' } });
      return;
    }
    const n = ++this.stats[provider];
    this.countModel(`${provider}:${body.model ?? ''}`);
    ready = this.wait();
    // An injected fault is served as before: once the delay has passed.
    const faulted = this.faults[provider] !== undefined;
    if (faulted) await ready;
    const fault = this.faults[provider];
    if (fault === 'hang') return;
    if (fault === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"chatcmpl-offline","choices":[{"index":0,"message":{"role":"assist');
      return;
    }
    if (fault === 400) {
      send(400, {
        error: {
          message: "offline model server: injected HTTP 400: This model's maximum context length is 128000 tokens.",
          type: 'invalid_request_error',
          code: 'context_length_exceeded',
        },
      });
      return;
    }
    if (typeof fault === 'number') {
      send(fault, { error: { message: `offline model server: injected HTTP ${fault}`, type: 'server_error', code: String(fault) } });
      return;
    }
    // Waited for already when faulted (an answer-shape fault: made once the delay is over, as before).
    if (!faulted) await this.halfway();
    const messages = (body.messages ?? []).map((m) => ({ role: m.role, content: typeof m.content === 'string' ? m.content : '' }));
    const system = messages.find((m) => m.role === 'system')?.content ?? '';
    const format = openAIAnswerMode(body.response_format, messages);
    if ('error' in format) {
      send(400, { error: { message: format.error, type: 'invalid_request_error', param: 'response_format', code: null } });
      return;
    }
    const tools = openAITools(body.tools, body.messages ?? []);
    if ('error' in tools) {
      send(400, { error: { message: tools.error, type: 'invalid_request_error', param: tools.param, code: null } });
      return;
    }
    const task = messages.find((m) => m.role === 'user')?.content ?? '';
    const turn = { system, task, ...openAIToolTurn(body.tools, body.messages ?? []) };
    const call = offlineToolCall(turn);
    if (call) {
      const id = `call_offline_${n}`;
      const toolTokens = countTokens(JSON.stringify(body.tools ?? []), 'openai');
      const args = JSON.stringify(call.input);
      send(200, {
        id: `chatcmpl-offline-${n}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: body.model ?? '',
        system_fingerprint: OFFLINE_FINGERPRINT,
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant',
              content: null,
              tool_calls: [{ id, type: 'function', function: { name: call.name, arguments: args } }],
            },
            finish_reason: 'tool_calls',
            logprobs: null,
          },
        ],
        usage: {
          prompt_tokens: offlineInputTokens('', messages) + toolTokens,
          completion_tokens: countTokens(`${call.name}${args}`, 'openai'),
          total_tokens: offlineInputTokens('', messages) + toolTokens + countTokens(`${call.name}${args}`, 'openai'),
        },
      });
      return;
    }
    const answer = faultedAnswer(
      system,
      messages.filter((m) => m.role !== 'system'),
      format.mode,
      fault,
      format.schema,
      turn.results,
    );
    if ('error' in answer) {
      send(500, { error: { message: answer.error, type: 'server_error', code: null } });
      return;
    }
    const out = answer.cut
      ? { text: answer.text, tokens: countTokens(answer.text, 'openai'), truncated: true }
      : capAnswer(answer.text, tokenLimit(body.max_completion_tokens, body.max_tokens));
    // A json_schema response format is billed input (its name, description and schema).
    const spec =
      format.mode === 'json_schema'
        ? (body.response_format as { json_schema?: { name?: string; description?: string } }).json_schema
        : undefined;
    const promptTokens =
      offlineInputTokens('', messages) +
      (format.mode === 'json_schema' && format.schema
        ? formatTokens({ name: spec?.name ?? '', description: spec?.description ?? '', schema: format.schema }, 'openai', undefined, {
            margin: false,
          })
        : 0);
    // OpenAI caches prompt prefixes of 1,024 tokens or more automatically.
    const cached = this.cachedPrefix(system, 1024).read;
    send(200, {
      id: `chatcmpl-offline-${n}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model ?? 'offline',
      system_fingerprint: OFFLINE_FINGERPRINT,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: out.text, refusal: null },
          finish_reason: out.truncated ? 'length' : 'stop',
          logprobs: null,
        },
      ],
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: out.tokens,
        total_tokens: promptTokens + out.tokens,
        prompt_tokens_details: { cached_tokens: Math.min(cached, promptTokens) },
      },
    });
  }

  private async onBedrock(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    // Made during the delay, sent when it ends (see onOpenAI).
    let ready: Promise<void> = Promise.resolve();
    const send = (status: number, body: unknown, errorType?: string) => {
      const text = JSON.stringify(body);
      void ready.then(() => {
        if (stream.destroyed) return;
        stream.respond({
          ':status': status,
          'content-type': 'application/json',
          ...(errorType ? { 'x-amzn-errortype': `${errorType}:http://internal.amazon.com/coral/com.amazon.bedrock/` } : {}),
        });
        stream.end(text);
      });
    };
    const path = String(headers[':path'] ?? '');
    const m = /^\/model\/([^/]+)\/converse$/.exec(path);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    if (headers[':method'] !== 'POST' || !m) {
      send(404, { message: `offline model server: no route ${headers[':method']} ${path}` }, 'ResourceNotFoundException');
      return;
    }
    let body: {
      system?: Array<{ text?: string; cachePoint?: unknown }>;
      messages?: Array<{
        role: string;
        content: Array<{ text?: string; toolUse?: { toolUseId?: string }; toolResult?: { toolUseId?: string } }>;
      }>;
      inferenceConfig?: { maxTokens?: unknown };
      toolConfig?: unknown;
    };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      send(400, { message: 'body is not JSON' }, 'ValidationException');
      return;
    }
    const n = ++this.stats.bedrock;
    this.countModel(`bedrock:${decodeURIComponent(m[1] ?? '')}`);
    ready = this.wait();
    const faulted = this.faults.bedrock !== undefined;
    if (faulted) await ready;
    const fault = this.faults.bedrock;
    if (fault === 'hang') return;
    if (fault === 'malformed') {
      if (!stream.destroyed) {
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end('{"output":{"message":{"role":"assistant","content":[{"te');
      }
      return;
    }
    if (fault === 400) {
      send(400, { message: 'offline model server: injected HTTP 400: Input is too long for requested model.' }, 'ValidationException');
      return;
    }
    if (typeof fault === 'number') {
      const type =
        fault === 429
          ? 'ThrottlingException'
          : fault >= 500
            ? 'ServiceUnavailableException'
            : fault === 403
              ? 'AccessDeniedException'
              : 'ValidationException';
      send(fault, { message: `offline model server: injected HTTP ${fault}` }, type);
      return;
    }
    if (!faulted) await this.halfway();
    // Text blocks only: a cachePoint block adds no text.
    const system = (body.system ?? []).flatMap((s) => (s.text === undefined ? [] : [s.text])).join('\n');
    const messages = (body.messages ?? []).map((msg) => ({ role: msg.role, content: msg.content.map((c) => c.text ?? '').join('') }));
    const format = bedrockAnswerMode(body.toolConfig);
    if ('error' in format) {
      send(400, { message: format.error }, 'ValidationException');
      return;
    }
    const toolBlocks = (body.messages ?? []).some((msg) => msg.content.some((c) => c.toolUse || c.toolResult));
    if (toolBlocks && body.toolConfig === undefined) {
      send(
        400,
        { message: 'The toolConfig field must be defined when using toolUse and toolResult content blocks.' },
        'ValidationException',
      );
      return;
    }
    const unmatched = unmatchedToolResult(body.messages ?? []);
    if (unmatched) {
      send(400, { message: unmatched }, 'ValidationException');
      return;
    }
    const toolTurn = bedrockToolTurn(body.toolConfig, body.messages ?? []);
    if (format.mode === 'text' && format.offered && format.offered.length > 0) {
      const task = messages.find((x) => x.role === 'user')?.content ?? '';
      const call = offlineToolCall({ system, task, ...toolTurn });
      if (call) {
        const toolTokens = countTokens(JSON.stringify((body.toolConfig as { tools?: unknown }).tools ?? []), 'claude');
        const input = offlineInputTokens(system, messages, 'claude') + toolTokens;
        const output = countTokens(`${call.name}${JSON.stringify(call.input)}`, 'claude');
        send(200, {
          output: {
            message: {
              role: 'assistant',
              content: [{ toolUse: { toolUseId: `tooluse_offline_${n}`, name: call.name, input: call.input } }],
            },
          },
          stopReason: 'tool_use',
          usage: {
            inputTokens: input,
            outputTokens: output,
            totalTokens: input + output,
            cacheReadInputTokens: 0,
            cacheWriteInputTokens: 0,
          },
          metrics: { latencyMs: this.delayMs },
          additionalModelResponseFields: { servedBy: OFFLINE_FINGERPRINT },
        });
        return;
      }
    }
    const answer = faultedAnswer(system, messages, format.mode, fault, format.tool?.schema, toolTurn.results);
    if ('error' in answer) {
      send(500, { message: answer.error }, 'InternalServerException');
      return;
    }
    const out = answer.cut
      ? { text: answer.text, tokens: countTokens(answer.text, 'openai'), truncated: true }
      : capAnswer(answer.text, tokenLimit(body.inferenceConfig?.maxTokens));
    const content = bedrockContent(out, format.tool?.name, n);
    // Bedrock serves Claude: count with Claude's published tokenizer (no margin), as that provider would.
    // A forced tool is billed input: its spec and Claude's tool-use system prompt.
    const allInput =
      offlineInputTokens(system, messages, 'claude') +
      (format.tool ? formatTokens(format.tool, 'bedrock', undefined, { margin: false }) : 0);
    // A cache point after the system prompt caches it (Claude's minimum cacheable prefix: 1,024 tokens).
    const cache = (body.system ?? []).some((b) => b.cachePoint) ? this.cachedPrefix(system, 1024, 'claude') : { read: 0, write: 0 };
    const inputTokens = Math.max(0, allInput - cache.read - cache.write);
    send(200, {
      output: { message: { role: 'assistant', content } },
      stopReason: out.truncated ? 'max_tokens' : format.tool && content.some((c) => 'toolUse' in c) ? 'tool_use' : 'end_turn',
      usage: {
        inputTokens,
        outputTokens: out.tokens,
        totalTokens: allInput + out.tokens,
        cacheReadInputTokens: cache.read,
        cacheWriteInputTokens: cache.write,
      },
      metrics: { latencyMs: this.delayMs },
      additionalModelResponseFields: { servedBy: OFFLINE_FINGERPRINT },
    });
  }
}
