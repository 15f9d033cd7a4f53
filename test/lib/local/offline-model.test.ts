import { BedrockRuntimeClient, ConverseCommand, type Message } from '@aws-sdk/client-bedrock-runtime';
import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FINDINGS_FORMAT } from '../../../lambdas/core/answer-format.js';
import { AgentItemSchema, PROVIDERS } from '../../../lambdas/core/contracts.js';
import { DOCUMENT_CLOSE, DOCUMENT_OPEN, parseAnswer, systemPrompt } from '../../../lambdas/core/prompt.js';
import { countTokens, type TokenizerFamily } from '../../../lambdas/core/tokenizer.js';
import {
  type OfflineModelOptions,
  OfflineModelServer,
  offlineAnswer,
  offlineReview,
  parseFaults,
  REPLY_PRIMING_TOKENS,
  schemaMismatch,
  strictSchemaProblem,
  TOKENS_PER_MESSAGE,
} from '../../../lib/local/offline-model.js';
import { localProviders } from '../../../lib/local/providers.js';
import { LocalRuntime } from '../../../lib/local/runtime.js';
import { loadWorkspace } from '../../../lib/workspace.js';
import { tempDir } from '../../helpers.js';

/**
 * The offline model server through the real clients: the `openai` SDK at `openaiUrl` /
 * `compatibleUrl` (HTTP/1.1) and the Bedrock runtime client's ConverseCommand at `bedrockUrl`
 * (cleartext HTTP/2, the client's default handler, as lib/local/providers.ts builds it).
 */
let server: OfflineModelServer | undefined;
beforeEach(() => {
  // The server reads AGENTFLOW_OFFLINE_FAULTS only when no faults are passed; start each test without one.
  vi.stubEnv('AGENTFLOW_OFFLINE_FAULTS', '');
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
  vi.unstubAllEnvs();
});

async function start(options: OfflineModelOptions = { faults: {} }): Promise<OfflineModelServer> {
  server = await new OfflineModelServer(options).start();
  return server;
}

const openai = (baseURL: string) => new OpenAI({ apiKey: 'offline', baseURL, maxRetries: 0 });
const bedrock = (endpoint: string) =>
  new BedrockRuntimeClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'offline', secretAccessKey: 'offline' },
    maxAttempts: 1,
  });

const SYSTEM = 'You review Swift code and answer with JSON findings.';
/** A prompt whose answer (two force-unwrap findings with message and suggestion) is well over 50 tokens. */
const PROMPT = [
  'Agent: code-review',
  'Categories: correctness',
  '### App/Checkout.swift (modified)',
  '```diff',
  '10 + let token = cardToken!',
  '11 + let amount = total!',
  '```',
].join('\n');

/** The chat-format count the server documents: o200k tokens of each role and content, plus the per-message and priming overhead. */
const expectedInput = (messages: Array<{ role: string; content: string }>, family: TokenizerFamily = 'openai') =>
  messages.reduce(
    (n, m) => n + TOKENS_PER_MESSAGE + countTokens(m.role, family, { margin: false }) + countTokens(m.content, family, { margin: false }),
    REPLY_PRIMING_TOKENS,
  );

describe('Class: OfflineModelServer (OpenAI chat completions)', () => {
  it.each(['max_tokens', 'max_completion_tokens'] as const)(
    'cuts a long answer at %s 50 and reports finish_reason "length" with at most 50 completion tokens',
    async (field) => {
      // Prepare
      const s = await start();
      // Act
      const r = await openai(s.openaiUrl).chat.completions.create({
        model: 'gpt-4.1-mini',
        messages: [
          { role: 'system', content: SYSTEM },
          { role: 'user', content: PROMPT },
        ],
        [field]: 50,
      });
      // Assess
      const text = r.choices[0]?.message.content ?? '';
      expect(r.choices[0]?.finish_reason).toBe('length');
      expect(r.usage?.completion_tokens).toBeLessThanOrEqual(50);
      expect(r.usage?.completion_tokens).toBe(countTokens(text, 'openai'));
      expect(text.length).toBeGreaterThan(0);
      expect(() => JSON.parse(text)).toThrow();
    },
  );

  it('sends the whole answer with finish_reason "stop" when it fits max_tokens', async () => {
    const s = await start();
    const r = await openai(s.openaiUrl).chat.completions.create({
      model: 'gpt-4.1-mini',
      messages: [
        { role: 'system', content: SYSTEM },
        { role: 'user', content: PROMPT },
      ],
      max_tokens: 4000,
    });
    const text = r.choices[0]?.message.content ?? '';
    expect(r.choices[0]?.finish_reason).toBe('stop');
    expect(JSON.parse(text).findings).toHaveLength(2);
    expect(r.usage?.completion_tokens).toBe(countTokens(text, 'openai'));
    expect(r.usage?.total_tokens).toBe((r.usage?.prompt_tokens ?? 0) + (r.usage?.completion_tokens ?? 0));
  });

  it('reports prompt tokens as the o200k count of every message plus the chat-format overhead', async () => {
    const s = await start();
    const messages = [
      { role: 'system' as const, content: SYSTEM },
      { role: 'user' as const, content: PROMPT },
      { role: 'assistant' as const, content: 'not JSON' },
      { role: 'user' as const, content: 'Your answer could not be used. Answer with JSON only.' },
    ];
    const r = await openai(s.openaiUrl).chat.completions.create({ model: 'gpt-4.1-mini', messages });
    expect(r.usage?.prompt_tokens).toBe(expectedInput(messages));
    expect(r.usage?.prompt_tokens_details?.cached_tokens).toBe(0);
  });
});

describe('Class: OfflineModelServer (Bedrock Converse)', () => {
  const converse = (maxTokens: number, system = SYSTEM) =>
    new ConverseCommand({
      modelId: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
      system: [{ text: system }, { cachePoint: { type: 'default' } }],
      messages: [{ role: 'user', content: [{ text: PROMPT }] }],
      inferenceConfig: { maxTokens, temperature: 0.2 },
    });

  it('cuts a long answer at inferenceConfig.maxTokens 50 and reports stopReason "max_tokens" with at most 50 output tokens', async () => {
    const s = await start();
    const r = await bedrock(s.bedrockUrl).send(converse(50));
    const text = r.output?.message?.content?.[0]?.text ?? '';
    expect(r.stopReason).toBe('max_tokens');
    expect(r.usage?.outputTokens).toBeLessThanOrEqual(50);
    expect(r.usage?.outputTokens).toBe(countTokens(text, 'openai'));
  });

  it('sends the whole answer with stopReason "end_turn" when it fits maxTokens', async () => {
    const s = await start();
    const r = await bedrock(s.bedrockUrl).send(converse(4000));
    const text = r.output?.message?.content?.[0]?.text ?? '';
    expect(r.stopReason).toBe('end_turn');
    expect(JSON.parse(text).findings).toHaveLength(2);
    expect(r.usage?.outputTokens).toBe(countTokens(text, 'openai'));
  });

  it("reports input tokens as the Claude tokenizer's count of the system prompt and messages plus the chat-format overhead", async () => {
    const s = await start();
    const r = await bedrock(s.bedrockUrl).send(converse(4000));
    const input = expectedInput(
      [
        { role: 'system', content: SYSTEM },
        { role: 'user', content: PROMPT },
      ],
      'claude',
    );
    expect(r.usage).toMatchObject({ inputTokens: input, cacheReadInputTokens: 0, cacheWriteInputTokens: 0 });
    expect(r.usage?.totalTokens).toBe(input + (r.usage?.outputTokens ?? 0));
  });

  it('writes a system prompt of 1,024 tokens or more to the simulated cache, then reads it, counted with the tokenizer', async () => {
    const s = await start();
    const long = `${SYSTEM}\n${'Report every force unwrap with its file and line. '.repeat(120)}`;
    const cached = countTokens(long, 'claude', { margin: false });
    expect(cached).toBeGreaterThanOrEqual(1024);
    const first = await bedrock(s.bedrockUrl).send(converse(4000, long));
    const second = await bedrock(s.bedrockUrl).send(converse(4000, long));
    expect(first.usage).toMatchObject({ cacheWriteInputTokens: cached, cacheReadInputTokens: 0 });
    expect(second.usage).toMatchObject({ cacheWriteInputTokens: 0, cacheReadInputTokens: cached });
    expect((second.usage?.inputTokens ?? 0) + cached).toBe(
      expectedInput(
        [
          { role: 'system', content: long },
          { role: 'user', content: PROMPT },
        ],
        'claude',
      ),
    );
  });
});

describe('Function: parseFaults', () => {
  it.each(PROVIDERS)('accepts a fault for the provider %s', (provider) => {
    expect(parseFaults(`${provider}:503`)).toEqual({ [provider]: 503 });
  });

  it('reads several comma-separated entries with statuses and fault words', () => {
    expect(parseFaults(' openai-compatible:503, bedrock:hang,openai:invalid ')).toEqual({
      'openai-compatible': 503,
      bedrock: 'hang',
      openai: 'invalid',
    });
    expect(parseFaults(undefined)).toEqual({});
  });

  it.each(['foo:503', 'openai:99', 'openai:slow', 'openai:600', 'bedrock'])(
    'refuses "%s" with one line naming the entry and the accepted forms',
    (entry) => {
      expect(() => parseFaults(`bedrock:503,${entry}`)).toThrow(
        new Error(
          `AGENTFLOW_OFFLINE_FAULTS: "${entry}" — provider must be one of bedrock, openai, openai-compatible; ` +
            'fault an HTTP status (400-599), invalid, malformed, hang, fenced-prose, brace-prose, two-objects, truncated, empty or off-schema',
        ),
      );
    },
  );

  it('refuses a bad AGENTFLOW_OFFLINE_FAULTS when the server is constructed, not at the first request', () => {
    vi.stubEnv('AGENTFLOW_OFFLINE_FAULTS', 'openai-compatible:503,foo:503');
    expect(() => new OfflineModelServer()).toThrow(/^AGENTFLOW_OFFLINE_FAULTS: "foo:503" — provider must be one of [^\n]+$/);
  });

  it('makes LocalRuntime.start reject with the one-line message when a provider is offline', async () => {
    vi.stubEnv('AGENTFLOW_OFFLINE_FAULTS', 'openai:slow');
    await expect(
      LocalRuntime.start({
        stateDir: tempDir(),
        repoPath: tempDir(),
        workspace: loadWorkspace(),
        persist: false,
        modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
        print: () => undefined,
      }),
    ).rejects.toThrow(new Error(parseFaultsMessage('openai:slow')));
  });
});

/** The message parseFaults throws for `entry`. */
function parseFaultsMessage(entry: string): string {
  try {
    parseFaults(entry);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`parseFaults accepted ${entry}`);
}

describe('Class: OfflineModelServer (fault routing)', () => {
  const request = {
    modelId: 'gpt-4.1-mini',
    system: SYSTEM,
    messages: [{ role: 'user' as const, content: PROMPT }],
    maxTokens: 4000,
    temperature: 0,
  };
  const offlineModes = { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' } as const;

  it('serves an openai-compatible fault to openai-compatible requests and not to openai ones', async () => {
    const s = await start({ faults: { 'openai-compatible': 503 } });
    const providers = localProviders(offlineModes, s);
    await expect(providers['openai-compatible'].complete(request)).rejects.toMatchObject({
      name: 'ProviderUnavailableError',
      provider: 'openai-compatible',
      status: 503,
    });
    await expect(providers.openai.complete(request)).resolves.toMatchObject({ servedBy: 'AgentFlow offline model server' });
    expect(s.stats).toEqual({ bedrock: 0, openai: 1, 'openai-compatible': 1 });
    expect(s.modelCalls).toEqual({ 'openai:gpt-4.1-mini': 1, 'openai-compatible:gpt-4.1-mini': 1 });
  });

  it('serves an openai fault to openai requests and not to openai-compatible ones', async () => {
    const s = await start({ faults: { openai: 429 } });
    const providers = localProviders(offlineModes, s);
    await expect(providers.openai.complete(request)).rejects.toMatchObject({ name: 'ProviderThrottledError', provider: 'openai' });
    await expect(providers['openai-compatible'].complete(request)).resolves.toMatchObject({ servedBy: 'AgentFlow offline model server' });
  });

  it('reads the openai-compatible fault from AGENTFLOW_OFFLINE_FAULTS', async () => {
    vi.stubEnv('AGENTFLOW_OFFLINE_FAULTS', 'openai-compatible:503');
    const s = await start({});
    const r = await fetch(`${s.compatibleUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'qwen2.5-coder', messages: [{ role: 'user', content: PROMPT }] }),
    });
    expect(r.status).toBe(503);
    expect(s.compatibleUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/compat\/v1$/);
  });

  it('answers 404 on a path that is neither provider prefix', async () => {
    const s = await start();
    const r = await fetch(s.openaiUrl.replace(/\/v1$/, '/v2/chat/completions'), { method: 'POST', body: '{}' });
    expect(r.status).toBe(404);
    expect(s.stats).toEqual({ bedrock: 0, openai: 0, 'openai-compatible': 0 });
  });
});

describe('Class: OfflineModelServer (Bedrock tool use)', () => {
  const toolConfig = {
    tools: [
      { toolSpec: { name: FINDINGS_FORMAT.name, description: FINDINGS_FORMAT.description, inputSchema: { json: FINDINGS_FORMAT.schema } } },
    ],
    toolChoice: { tool: { name: FINDINGS_FORMAT.name } },
  };
  const converse = (maxTokens: number, config: unknown = toolConfig) =>
    new ConverseCommand({
      modelId: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
      system: [{ text: SYSTEM }],
      messages: [{ role: 'user', content: [{ text: PROMPT }] }],
      inferenceConfig: { maxTokens },
      toolConfig: config as ConverseCommand['input']['toolConfig'],
    });

  it('answers a forced tool with a toolUse block whose input matches the schema, stopReason "tool_use", output tokens of the input JSON', async () => {
    const s = await start();
    const r = await bedrock(s.bedrockUrl).send(converse(4000));
    const block = r.output?.message?.content?.[0];
    expect(block?.toolUse).toMatchObject({ name: 'report_review', toolUseId: expect.any(String) });
    expect(schemaMismatch(block?.toolUse?.input, FINDINGS_FORMAT.schema)).toBeUndefined();
    expect(r.stopReason).toBe('tool_use');
    expect(r.usage?.outputTokens).toBe(countTokens(JSON.stringify(block?.toolUse?.input), 'openai'));
  });

  it('sends an empty tool input and stopReason "max_tokens" when the answer is cut', async () => {
    const s = await start();
    const r = await bedrock(s.bedrockUrl).send(converse(50));
    expect(r.output?.message?.content?.[0]?.toolUse?.input).toEqual({});
    expect(r.stopReason).toBe('max_tokens');
  });

  it.each([
    ['a toolChoice naming no declared tool', { ...toolConfig, toolChoice: { tool: { name: 'other' } } }, /toolChoice\.tool\.name/],
    ['no tools', { tools: [], toolChoice: { tool: { name: 'report_review' } } }, /toolConfig\.tools/],
    [
      'a tool without an input schema',
      { tools: [{ toolSpec: { name: 'report_review', inputSchema: { json: { type: 'string' } } } }], toolChoice: { any: {} } },
      /inputSchema\.json/,
    ],
  ])('refuses %s with HTTP 400 ValidationException', async (_what, config, message) => {
    const s = await start();
    const e = await bedrock(s.bedrockUrl)
      .send(converse(4000, config))
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ name: 'ValidationException', $metadata: { httpStatusCode: 400 } });
    expect((e as Error).message).toMatch(message);
  });
});

describe('Class: OfflineModelServer (a review agent offered the built-in tools)', () => {
  const system = systemPrompt(
    AgentItemSchema.parse({
      name: 'code-review',
      model: { provider: 'bedrock', alias: 'claude-sonnet', modelId: 'anthropic.claude', contextWindow: 200_000, price: null },
      fallback: [],
      maxTokens: 4000,
      temperature: 0,
      categories: ['correctness'],
      tasks: [],
      prompt: 'You review Swift code.',
    }),
  );
  const spec = (name: string) => ({ toolSpec: { name, inputSchema: { json: { type: 'object', properties: {} } } } });
  const toolConfig = { tools: [spec('agentflow__list_changed_files'), spec('agentflow__read_file')] };
  const task: Message = { role: 'user', content: [{ text: PROMPT }] };
  const converse = (messages: NonNullable<ConverseCommand['input']['messages']>) =>
    new ConverseCommand({ modelId: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', system: [{ text: system }], messages, toolConfig });
  const use = (id: string, name: string, input: Record<string, string>): Message => ({
    role: 'assistant',
    content: [{ toolUse: { toolUseId: id, name, input } }],
  });
  const result = (id: string, text: string): Message => ({
    role: 'user',
    content: [{ toolResult: { toolUseId: id, content: [{ text }] } }],
  });

  it('lists the changed files, reads the chunk’s file, then answers the findings it gives without tools (Bedrock Converse)', async () => {
    const s = await start();
    const client = bedrock(s.bedrockUrl);

    const first = await client.send(converse([task]));
    expect(first.stopReason).toBe('tool_use');
    expect(first.output?.message?.content?.[0]?.toolUse).toMatchObject({ name: 'agentflow__list_changed_files', input: {} });

    const listed = [task, use('t1', 'agentflow__list_changed_files', {}), result('t1', 'App/Checkout.swift\tmodified\t+2 -0')];
    const second = await client.send(converse(listed));
    expect(second.output?.message?.content?.[0]?.toolUse).toMatchObject({
      name: 'agentflow__read_file',
      input: { path: 'App/Checkout.swift' },
    });

    const read = [...listed, use('t2', 'agentflow__read_file', { path: 'App/Checkout.swift' }), result('t2', 'let token = cardToken!')];
    const third = await client.send(converse(read));
    expect(third.stopReason).toBe('end_turn');
    const answer = JSON.parse(third.output?.message?.content?.[0]?.text ?? '{}');
    const without = offlineReview(system, [{ role: 'user', content: PROMPT }]);
    expect(answer.findings).toEqual(without.findings);
    expect(answer.findings).toHaveLength(2);
  });

  it('calls the same tools over OpenAI tool calling, and answers the same findings', async () => {
    const s = await start();
    const client = openai(s.openaiUrl);
    const tools = ['agentflow__list_changed_files', 'agentflow__read_file'].map((name) => ({
      type: 'function' as const,
      function: { name, parameters: { type: 'object', properties: {} } },
    }));
    const base = [
      { role: 'system' as const, content: system },
      { role: 'user' as const, content: PROMPT },
    ];
    const first = await client.chat.completions.create({ model: 'gpt-4.1', messages: base, tools });
    const call1 = first.choices[0]?.message.tool_calls?.[0];
    expect(call1?.type === 'function' && call1.function.name).toBe('agentflow__list_changed_files');
    const listed = [
      ...base,
      { role: 'assistant' as const, content: null, tool_calls: [call1 as NonNullable<typeof call1> & { type: 'function' }] },
      { role: 'tool' as const, tool_call_id: call1?.id ?? '', content: 'App/Checkout.swift\tmodified\t+2 -0' },
    ];
    const second = await client.chat.completions.create({ model: 'gpt-4.1', messages: listed, tools });
    const call2 = second.choices[0]?.message.tool_calls?.[0];
    expect(call2?.type === 'function' && [call2.function.name, JSON.parse(call2.function.arguments)]).toEqual([
      'agentflow__read_file',
      { path: 'App/Checkout.swift' },
    ]);
    const read = [
      ...listed,
      { role: 'assistant' as const, content: null, tool_calls: [call2 as NonNullable<typeof call2> & { type: 'function' }] },
      { role: 'tool' as const, tool_call_id: call2?.id ?? '', content: 'let token = cardToken!' },
    ];
    const third = await client.chat.completions.create({ model: 'gpt-4.1', messages: read, tools });
    expect(third.choices[0]?.finish_reason).toBe('stop');
    const answer = JSON.parse(third.choices[0]?.message.content ?? '{}');
    expect(answer.findings).toEqual(offlineReview(system, [{ role: 'user', content: PROMPT }]).findings);
  });
});

describe('Class: OfflineModelServer (OpenAI response formats)', () => {
  const jsonSchema = (schema: unknown, strict = true) => ({
    type: 'json_schema' as const,
    json_schema: { name: FINDINGS_FORMAT.name, strict, schema: schema as Record<string, unknown> },
  });
  const ask = (s: OfflineModelServer, response_format: unknown, system = SYSTEM) =>
    openai(s.openaiUrl).chat.completions.create({
      model: 'gpt-4.1-mini',
      messages: [
        { role: 'system', content: system },
        { role: 'user', content: PROMPT },
      ],
      max_completion_tokens: 4000,
      response_format: response_format as OpenAI.Chat.Completions.ChatCompletionCreateParams['response_format'],
    });

  it('answers a strict json_schema with JSON matching the schema (every field, document null)', async () => {
    const s = await start();
    const r = await ask(s, jsonSchema(FINDINGS_FORMAT.schema));
    const answer = JSON.parse(r.choices[0]?.message.content ?? '');
    expect(schemaMismatch(answer, FINDINGS_FORMAT.schema)).toBeUndefined();
    expect(answer).toMatchObject({ document: null });
    expect(answer.findings).toHaveLength(2);
  });

  it.each([
    [
      'a property missing from required',
      { ...FINDINGS_FORMAT.schema, required: ['summary', 'findings'] },
      "Invalid schema for response_format 'report_review': In context=(), 'required' is required to be supplied and to be an array including every key in properties. Missing 'document'.",
    ],
    [
      'a nested object without additionalProperties: false',
      {
        type: 'object',
        properties: { a: { type: 'object', properties: { b: { type: 'string' } }, required: ['b'] } },
        required: ['a'],
        additionalProperties: false,
      },
      "Invalid schema for response_format 'report_review': In context=('properties', 'a'), 'additionalProperties' is required to be supplied and to be false.",
    ],
  ])('refuses a strict schema with %s: HTTP 400 invalid_request_error as OpenAI words it', async (_what, schema, message) => {
    const s = await start();
    const e = await ask(s, jsonSchema(schema)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e).toMatchObject({ status: 400, error: { type: 'invalid_request_error', message } });
  });

  it('refuses a json_schema without a name or a schema', async () => {
    const s = await start();
    await expect(ask(s, { type: 'json_schema', json_schema: { schema: FINDINGS_FORMAT.schema } })).rejects.toMatchObject({ status: 400 });
    await expect(ask(s, { type: 'json_schema', json_schema: { name: 'x' } })).rejects.toMatchObject({
      status: 400,
      error: { message: "Missing required parameter: 'response_format.json_schema.schema'." },
    });
  });

  it('refuses JSON mode when no message mentions JSON, as OpenAI does', async () => {
    const s = await start();
    await expect(ask(s, { type: 'json_object' }, 'You review Swift code.')).rejects.toMatchObject({
      status: 400,
      error: { message: "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'." },
    });
  });
});

describe('Function: offlineAnswer', () => {
  const documentSystem = `${SYSTEM}\n\n## Document\nWrite an ADR.`;
  const messages = [{ role: 'user', content: PROMPT }];

  it('writes a prompt-only document after the JSON object between the document lines, which parseAnswer reads', () => {
    const text = offlineAnswer(documentSystem, messages);
    expect(text.split('\n')).toContain(DOCUMENT_OPEN);
    expect(text.trimEnd().endsWith(DOCUMENT_CLOSE)).toBe(true);
    expect(JSON.parse(text.slice(0, text.indexOf(`\n${DOCUMENT_OPEN}`)))).not.toHaveProperty('document');
    expect(parseAnswer(text)).toMatchObject({ ok: true, answer: { document: expect.stringMatching(/^# ADR: /) } });
  });

  it('puts the document in the JSON object in JSON mode and in structured modes, where it is null without one', () => {
    expect(JSON.parse(offlineAnswer(documentSystem, messages, 'json_object')).document).toMatch(/^# ADR: /);
    expect(JSON.parse(offlineAnswer(documentSystem, messages, 'tool')).document).toMatch(/^# ADR: /);
    expect(JSON.parse(offlineAnswer(SYSTEM, messages, 'json_schema')).document).toBeNull();
    expect(JSON.parse(offlineAnswer(SYSTEM, messages, 'json_object'))).not.toHaveProperty('document');
  });
});

describe('Function: strictSchemaProblem', () => {
  it('accepts the generated findings format', () => {
    expect(strictSchemaProblem(FINDINGS_FORMAT.schema)).toBeUndefined();
  });

  it('refuses a root that is not an object', () => {
    expect(strictSchemaProblem({ type: 'array', items: {} })).toMatch(/type: \\"object\\"|type: "object"/);
  });
});

describe('Class: OfflineModelServer (answer faults)', () => {
  const request = (answerFormat?: typeof FINDINGS_FORMAT) => ({
    modelId: 'm',
    system: SYSTEM,
    messages: [{ role: 'user' as const, content: PROMPT }],
    maxTokens: 4000,
    temperature: 0,
    ...(answerFormat ? { answerFormat } : {}),
  });

  it.each(PROVIDERS)('cuts the answer at about half and marks it truncated for a truncated fault on %s', async (provider) => {
    const s = await start({ faults: { [provider]: 'truncated' } });
    const r = await localProviders({ openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' }, s)[provider].complete(
      request(FINDINGS_FORMAT),
    );
    expect(r.truncated).toBe(true);
    expect(parseAnswer(r.text).ok).toBe(false);
  });

  it.each(PROVIDERS)('sends no content for an empty fault on %s', async (provider) => {
    const s = await start({ faults: { [provider]: 'empty' } });
    const r = await localProviders({ openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' }, s)[provider].complete(
      request(FINDINGS_FORMAT),
    );
    expect(r.text).toBe('');
    expect(parseAnswer(r.text)).toEqual({ ok: false, problem: 'it is empty' });
  });

  it.each(PROVIDERS)('sends valid JSON off the findings schema for an off-schema fault on %s', async (provider) => {
    const s = await start({ faults: { [provider]: 'off-schema' } });
    const r = await localProviders({ openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' }, s)[provider].complete(
      request(FINDINGS_FORMAT),
    );
    expect(JSON.parse(r.text).findings).toBeTypeOf('string');
    expect(parseAnswer(r.text)).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/^its JSON object does not match the format \(findings: /),
    });
  });

  it('shapes text answers only: a fenced-prose fault leaves a forced tool use as it is', async () => {
    const s = await start({ faults: { bedrock: 'fenced-prose', 'openai-compatible': 'fenced-prose' } });
    const providers = localProviders({ openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' }, s);
    const tool = await providers.bedrock.complete(request(FINDINGS_FORMAT));
    const text = await providers['openai-compatible'].complete(request(FINDINGS_FORMAT));
    expect(() => JSON.parse(tool.text)).not.toThrow();
    expect(text.text).toMatch(/^Here is my review/);
    expect(parseAnswer(text.text).ok).toBe(true);
  });
});
