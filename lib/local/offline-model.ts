import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { OFFLINE_FINGERPRINT } from '../../lambdas/adapters/providers.js';
import { reviewPrompt } from './offline-rules.js';

/**
 * A fault the server injects instead of answering: an HTTP status (400 says "context too long"),
 * `invalid` (a well-formed response whose answer is not JSON), `malformed` (HTTP 200 with a
 * truncated body) or `hang` (never answers: the client's timeout must end the call).
 */
export type OfflineFault = number | 'invalid' | 'malformed' | 'hang';

/** Options of the offline model server. */
export interface OfflineModelOptions {
  /** Delay before every answer in ms. @default AGENTFLOW_OFFLINE_DELAY_MS or 0 */
  delayMs?: number;
  /**
   * Faults by provider, e.g. `{ bedrock: 503 }`.
   * @default parsed from AGENTFLOW_OFFLINE_FAULTS (`bedrock:503,openai:429`, `openai:invalid`)
   */
  faults?: Partial<Record<'bedrock' | 'openai', OfflineFault>>;
}

/** Parses `AGENTFLOW_OFFLINE_FAULTS` (`provider:status|invalid`, comma separated). @throws Error on a malformed entry */
export function parseFaults(text: string | undefined): Partial<Record<'bedrock' | 'openai', OfflineFault>> {
  const faults: Partial<Record<'bedrock' | 'openai', OfflineFault>> = {};
  for (const part of (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(bedrock|openai):(\d{3}|invalid|malformed|hang)$/.exec(part);
    if (!m) throw new Error(`AGENTFLOW_OFFLINE_FAULTS: cannot read "${part}" (write provider:status, e.g. bedrock:503)`);
    faults[m[1] as 'bedrock' | 'openai'] = /^\d+$/.test(m[2] as string) ? Number(m[2]) : (m[2] as OfflineFault);
  }
  return faults;
}

/** Requests the server has answered, by provider (for tests and the bench). */
export interface OfflineStats {
  openai: number;
  bedrock: number;
}

const tokens = (s: string) => Math.max(1, Math.ceil(s.length / 4));

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

/**
 * A model server on 127.0.0.1 that speaks two wire formats with deterministic, rule-based answers:
 * OpenAI chat completions (`POST /v1/chat/completions`, HTTP/1.1) and Bedrock Converse
 * (`POST /model/{modelId}/converse`, cleartext HTTP/2, as the Bedrock runtime client speaks).
 * It stands in for the real providers when no credentials are configured, and names itself in
 * every answer (`system_fingerprint` / `additionalModelResponseFields.servedBy`).
 */
export class OfflineModelServer {
  readonly stats: OfflineStats = { openai: 0, bedrock: 0 };
  /** Requests by `provider:model id`. */
  readonly modelCalls: Record<string, number> = {};
  private http?: Server;
  private h2?: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  openaiUrl = '';
  bedrockUrl = '';

  constructor(private readonly options: OfflineModelOptions = {}) {}

  private get delayMs(): number {
    return this.options.delayMs ?? Number(process.env.AGENTFLOW_OFFLINE_DELAY_MS ?? 0);
  }

  private fault(provider: 'bedrock' | 'openai'): OfflineFault | undefined {
    return (this.options.faults ?? parseFaults(process.env.AGENTFLOW_OFFLINE_FAULTS))[provider];
  }

  private countModel(key: string): void {
    this.modelCalls[key] = (this.modelCalls[key] ?? 0) + 1;
  }

  /** Replaces the injected faults (tests: a provider recovers or starts failing). */
  setFaults(faults: Partial<Record<'bedrock' | 'openai', OfflineFault>>): void {
    this.options.faults = faults;
  }

  /** System prompts seen in the last 5 minutes (the providers' prompt cache TTL), for cache-token usage. */
  private readonly seenPrefixes = new Map<string, number>();

  /** Tokens of `prefix` read from the simulated prompt cache (0 on the first sight, which writes it). */
  private cachedPrefix(prefix: string, minTokens: number): { read: number; write: number } {
    const t = tokens(prefix);
    if (t < minTokens) return { read: 0, write: 0 };
    const seen = this.seenPrefixes.get(prefix);
    this.seenPrefixes.set(prefix, Date.now());
    return seen !== undefined && Date.now() - seen < 300_000 ? { read: t, write: 0 } : { read: 0, write: t };
  }

  /** Starts both listeners on 127.0.0.1 (ephemeral ports unless given). */
  async start(ports: { openai?: number; bedrock?: number } = {}): Promise<this> {
    this.http = createServer((req, res) => void this.onOpenAI(req, res));
    await new Promise<void>((ok) => this.http?.listen(ports.openai ?? 0, '127.0.0.1', ok));
    this.openaiUrl = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}/v1`;
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
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      send(404, { error: { message: `offline model server: no route ${req.method} ${req.url}`, type: 'invalid_request_error' } });
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: { model?: string; messages?: Array<{ role: string; content: string }> };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      send(400, { error: { message: 'body is not JSON', type: 'invalid_request_error' } });
      return;
    }
    this.stats.openai++;
    this.countModel(`openai:${body.model ?? ''}`);
    await this.wait();
    const fault = this.fault('openai');
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
    const messages = body.messages ?? [];
    const system = messages.find((m) => m.role === 'system')?.content ?? '';
    const text =
      fault === 'invalid'
        ? 'Here are my thoughts on the change (not JSON).'
        : offlineAnswer(
            system,
            messages.filter((m) => m.role !== 'system'),
          );
    const promptTokens = tokens(messages.map((m) => m.content).join('\n'));
    const completionTokens = tokens(text);
    // OpenAI caches prompt prefixes of 1,024 tokens or more automatically.
    const cached = this.cachedPrefix(system, 1024).read;
    send(200, {
      id: `chatcmpl-offline-${this.stats.openai}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model ?? 'offline',
      system_fingerprint: OFFLINE_FINGERPRINT,
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
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
    const fault = this.fault('bedrock');
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
    const system = (body.system ?? []).map((s) => s.text ?? '').join('\n');
    const messages = (body.messages ?? []).map((msg) => ({ role: msg.role, content: msg.content.map((c) => c.text ?? '').join('') }));
    const text = fault === 'invalid' ? 'I reviewed the change; it looks fine overall.' : offlineAnswer(system, messages);
    const allInput = tokens(system + messages.map((x) => x.content).join('\n'));
    // A cache point after the system prompt caches it (Claude's minimum cacheable prefix: 1,024 tokens).
    const cache = (body.system ?? []).some((b) => b.cachePoint) ? this.cachedPrefix(system, 1024) : { read: 0, write: 0 };
    const inputTokens = Math.max(0, allInput - cache.read - cache.write);
    const outputTokens = tokens(text);
    send(200, {
      output: { message: { role: 'assistant', content: [{ text }] } },
      stopReason: 'end_turn',
      usage: {
        inputTokens,
        outputTokens,
        totalTokens: allInput + outputTokens,
        cacheReadInputTokens: cache.read,
        cacheWriteInputTokens: cache.write,
      },
      metrics: { latencyMs: this.delayMs },
      additionalModelResponseFields: { servedBy: OFFLINE_FINGERPRINT },
    });
  }
}
