import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { OFFLINE_FINGERPRINT } from '../../lambdas/adapters/providers.js';
import { PROVIDERS, type Provider } from '../../lambdas/core/contracts.js';
import { countTokens, type TokenizerFamily } from '../../lambdas/core/tokenizer.js';
import { reviewPrompt } from './offline-rules.js';

/**
 * A fault the server injects instead of answering: an HTTP status 400–599 (400 says "context too
 * long"), `invalid` (a well-formed response whose answer is not JSON), `malformed` (HTTP 200 with a
 * truncated body) or `hang` (never answers: the client's timeout must end the call).
 */
export type OfflineFault = number | 'invalid' | 'malformed' | 'hang' | AnswerShape;

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

const FAULT_WORDS = ['invalid', 'malformed', 'hang', ...ANSWER_SHAPES] as const;
const PROVIDER_SET: ReadonlySet<string> = new Set(PROVIDERS);

/**
 * Parses `AGENTFLOW_OFFLINE_FAULTS`: comma-separated `provider:fault` entries, where provider is one
 * of {@link PROVIDERS} and fault an HTTP status 400–599, `invalid`, `malformed`, `hang` or an answer shape ({@link ANSWER_SHAPES})
 * (see {@link OfflineFault}). A later entry for the same provider replaces an earlier one.
 *
 * @example parseFaults('bedrock:503, openai-compatible:hang') // → { bedrock: 503, 'openai-compatible': 'hang' }
 * @throws Error with one line naming the bad entry and the accepted forms, e.g.
 *   `AGENTFLOW_OFFLINE_FAULTS: "foo:503" — provider must be one of bedrock, openai, openai-compatible; fault an HTTP status (400-599), invalid, malformed, hang, fenced-prose, brace-prose or two-objects`
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

/** The answer the offline model gives to a system prompt + messages: findings for the asked categories. */
export function offlineAnswer(system: string, messages: Array<{ role: string; content: string }>): string {
  const user = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  // A repair request: answer the original prompt again.
  const prompt = /could not be used/.test(user) ? (messages.find((m) => m.role === 'user')?.content ?? user) : user;
  const categories = (/^Categories: (.+)$/m.exec(prompt)?.[1] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const agent = /^Agent: (.+)$/m.exec(prompt)?.[1] ?? 'agent';
  const findings = reviewPrompt(prompt, categories);
  return JSON.stringify({
    summary: `${agent}: ${findings.length} finding(s) from the offline model's rules for ${categories.join(', ') || 'no categories'}.`,
    findings,
    ...(/^## Document$/m.test(system) ? { document: offlineDocument(prompt, agent, findings) } : {}),
  });
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

  private async onOpenAI(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
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
      messages?: Array<{ role: string; content: string }>;
      max_tokens?: unknown;
      max_completion_tokens?: unknown;
    };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      send(400, { error: { message: 'body is not JSON', type: 'invalid_request_error' } });
      return;
    }
    this.stats[provider]++;
    this.countModel(`${provider}:${body.model ?? ''}`);
    await this.wait();
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
    const messages = (body.messages ?? []).map((m) => ({ role: m.role, content: typeof m.content === 'string' ? m.content : '' }));
    const system = messages.find((m) => m.role === 'system')?.content ?? '';
    const answer =
      fault === 'invalid'
        ? 'Here are my thoughts on the change (not JSON).'
        : shapeAnswer(
            offlineAnswer(
              system,
              messages.filter((m) => m.role !== 'system'),
            ),
            fault,
          );
    const out = capAnswer(answer, tokenLimit(body.max_completion_tokens, body.max_tokens));
    const promptTokens = offlineInputTokens('', messages);
    // OpenAI caches prompt prefixes of 1,024 tokens or more automatically.
    const cached = this.cachedPrefix(system, 1024).read;
    send(200, {
      id: `chatcmpl-offline-${this.stats[provider]}`,
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
    const send = (status: number, body: unknown, errorType?: string) => {
      if (stream.destroyed) return;
      stream.respond({
        ':status': status,
        'content-type': 'application/json',
        ...(errorType ? { 'x-amzn-errortype': `${errorType}:http://internal.amazon.com/coral/com.amazon.bedrock/` } : {}),
      });
      stream.end(JSON.stringify(body));
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
      messages?: Array<{ role: string; content: Array<{ text?: string }> }>;
      inferenceConfig?: { maxTokens?: unknown };
    };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      send(400, { message: 'body is not JSON' }, 'ValidationException');
      return;
    }
    this.stats.bedrock++;
    this.countModel(`bedrock:${decodeURIComponent(m[1] ?? '')}`);
    await this.wait();
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
    // Text blocks only: a cachePoint block adds no text.
    const system = (body.system ?? []).flatMap((s) => (s.text === undefined ? [] : [s.text])).join('\n');
    const messages = (body.messages ?? []).map((msg) => ({ role: msg.role, content: msg.content.map((c) => c.text ?? '').join('') }));
    const answer =
      fault === 'invalid' ? 'I reviewed the change; it looks fine overall.' : shapeAnswer(offlineAnswer(system, messages), fault);
    const out = capAnswer(answer, tokenLimit(body.inferenceConfig?.maxTokens));
    // Bedrock serves Claude: count with Claude's published tokenizer (no margin), as that provider would.
    const allInput = offlineInputTokens(system, messages, 'claude');
    // A cache point after the system prompt caches it (Claude's minimum cacheable prefix: 1,024 tokens).
    const cache = (body.system ?? []).some((b) => b.cachePoint) ? this.cachedPrefix(system, 1024, 'claude') : { read: 0, write: 0 };
    const inputTokens = Math.max(0, allInput - cache.read - cache.write);
    send(200, {
      output: { message: { role: 'assistant', content: [{ text: out.text }] } },
      stopReason: out.truncated ? 'max_tokens' : 'end_turn',
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
