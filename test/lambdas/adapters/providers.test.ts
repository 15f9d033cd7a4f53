import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BedrockProvider, compatibleFormat, OpenAIProvider } from '../../../lambdas/adapters/providers.js';
import { FINDINGS_FORMAT, FORMAT_TRANSPORT } from '../../../lambdas/core/answer-format.js';
import { STRUCTURED_OUTPUTS, type StructuredOutput } from '../../../lambdas/core/contracts.js';
import { ProviderRejectedError } from '../../../lambdas/core/errors.js';
import type { ModelProvider, ModelRequest } from '../../../lambdas/core/ports.js';
import { parseAnswer } from '../../../lambdas/core/prompt.js';
import { countTokens } from '../../../lambdas/core/tokenizer.js';
import { LazyProvider } from '../../../lambdas/shared/providers.js';
import { OfflineModelServer } from '../../../lib/local/offline-model.js';
import { localProviders } from '../../../lib/local/providers.js';

/**
 * The provider adapters through their real SDK clients against the offline model server on
 * 127.0.0.1, which cuts answers at the request's max tokens as the providers do.
 */
let server: OfflineModelServer;
let providers: ReturnType<typeof localProviders>;
beforeAll(async () => {
  server = await new OfflineModelServer({ faults: {} }).start();
  providers = localProviders({ openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' }, server);
});
afterAll(async () => {
  await server.stop();
});

/** A review request whose answer (two findings with message and suggestion) is well over 50 tokens. */
const request = (maxTokens: number): ModelRequest => ({
  modelId: 'offline-model',
  system: 'You review Swift code and answer with JSON findings.',
  messages: [
    {
      role: 'user',
      content: [
        'Agent: code-review',
        'Categories: correctness',
        '### App/Checkout.swift (modified)',
        '```diff',
        '10 + let token = cardToken!',
        '11 + let amount = total!',
        '```',
      ].join('\n'),
    },
  ],
  maxTokens,
  temperature: 0,
});

describe.each([
  ['OpenAIProvider', 'openai'],
  ['OpenAIProvider (compatible)', 'openai-compatible'],
  ['BedrockProvider', 'bedrock'],
] as const)('Class: %s', (_name, provider) => {
  it('marks the response truncated when the answer stops at maxTokens', async () => {
    // Act
    const r = await providers[provider].complete(request(50));
    // Assess
    expect(r.truncated).toBe(true);
    expect(r.usage.outputTokens).toBeLessThanOrEqual(50);
    expect(r.usage.outputTokens).toBe(countTokens(r.text, 'openai'));
  });

  it('leaves truncated unset when the answer is complete', async () => {
    const r = await providers[provider].complete(request(4000));
    expect(r.truncated).toBeUndefined();
    expect(JSON.parse(r.text).findings).toHaveLength(2);
  });

  it('marks a structured answer truncated when it stops at maxTokens', async () => {
    const r = await providers[provider].complete({ ...request(50), answerFormat: FINDINGS_FORMAT, structuredOutput: 'json_schema' });
    expect(r.truncated).toBe(true);
    expect(r.usage.outputTokens).toBeLessThanOrEqual(50);
    expect(parseAnswer(r.text).ok).toBe(false);
  });
});

/** Request bodies as sent on the wire (the OpenAI SDK's fetch), newest last. */
const sentBodies: Array<Record<string, unknown>> = [];
const recordingFetch: typeof fetch = async (url, init) => {
  if (typeof init?.body === 'string') sentBodies.push(JSON.parse(init.body));
  return fetch(url, init);
};
const openaiProvider = (compatible: boolean) =>
  new OpenAIProvider(
    new OpenAI({ apiKey: 'offline', baseURL: compatible ? server.compatibleUrl : server.openaiUrl, maxRetries: 0, fetch: recordingFetch }),
    { compatible },
  );

/** The Converse inputs as the SDK command carried them, newest last. */
const sentConverse: Array<Record<string, unknown>> = [];
const bedrockProvider = () => {
  const client = new BedrockRuntimeClient({
    endpoint: server.bedrockUrl,
    region: 'us-east-1',
    credentials: { accessKeyId: 'offline', secretAccessKey: 'offline' },
    maxAttempts: 1,
  });
  client.middlewareStack.add(
    (next) => async (args) => {
      sentConverse.push(args.input as Record<string, unknown>);
      return next(args);
    },
    { step: 'initialize' },
  );
  return new BedrockProvider(client);
};

describe('Class: BedrockProvider (answer format)', () => {
  it('forces a tool whose input schema is the answer format, keeps the cache point, and reads the toolUse input', async () => {
    // Act
    const r = await bedrockProvider().complete({ ...request(4000), answerFormat: FINDINGS_FORMAT });
    // Assess
    const sent = sentConverse.at(-1);
    expect(sent?.toolConfig).toEqual({
      tools: [
        { toolSpec: { name: 'report_review', description: FINDINGS_FORMAT.description, inputSchema: { json: FINDINGS_FORMAT.schema } } },
      ],
      toolChoice: { tool: { name: 'report_review' } },
    });
    expect(sent?.system).toEqual([{ text: request(1).system }, { cachePoint: { type: 'default' } }]);
    const answer = JSON.parse(r.text);
    expect(answer).toMatchObject({ document: null });
    expect(answer.findings).toHaveLength(2);
    expect(r.usage.outputTokens).toBe(countTokens(r.text, 'openai'));
    expect(parseAnswer(r.text)).toMatchObject({ ok: true, answer: { findings: [{ line: 10 }, { line: 11 }] } });
  });

  it('sends no toolConfig without an answer format', async () => {
    await bedrockProvider().complete(request(4000));
    expect(sentConverse.at(-1)).not.toHaveProperty('toolConfig');
  });
});

describe('Class: OpenAIProvider (answer format)', () => {
  it('asks openai for a strict json_schema response format with the generated schema', async () => {
    const r = await openaiProvider(false).complete({ ...request(4000), answerFormat: FINDINGS_FORMAT });
    expect(sentBodies.at(-1)).toMatchObject({
      max_completion_tokens: 4000,
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'report_review', description: FINDINGS_FORMAT.description, strict: true, schema: FINDINGS_FORMAT.schema },
      },
    });
    expect(JSON.parse(r.text)).toMatchObject({ document: null });
    expect(parseAnswer(r.text).ok).toBe(true);
  });

  it('keeps JSON mode for openai without an answer format', async () => {
    await openaiProvider(false).complete(request(4000));
    expect(sentBodies.at(-1)?.response_format).toEqual({ type: 'json_object' });
  });

  it.each([
    ['json_schema', { type: 'json_schema', json_schema: { name: 'report_review', strict: true, schema: FINDINGS_FORMAT.schema } }],
    ['json_object', { type: 'json_object' }],
    ['prompt', undefined],
  ] as const)(
    'sends openai-compatible the response format its structured_output %s allows, with max_tokens',
    async (capability, format) => {
      const r = await openaiProvider(true).complete({
        ...request(4000),
        system: 'Answer with one JSON object.',
        answerFormat: FINDINGS_FORMAT,
        structuredOutput: capability as StructuredOutput,
      });
      const sent = sentBodies.at(-1);
      expect(sent).toMatchObject({ max_tokens: 4000 });
      expect(sent).not.toHaveProperty('max_completion_tokens');
      if (format) expect(sent?.response_format).toMatchObject(format);
      else expect(sent).not.toHaveProperty('response_format');
      expect(parseAnswer(r.text).ok).toBe(true);
    },
  );

  it('rejects a refusal (ProviderRejectedError naming it), since a refusal carries no JSON', async () => {
    // Prepare: a server that refuses, as OpenAI reports it (`message.refusal`, content null).
    const refusing = new OpenAI({
      apiKey: 'offline',
      baseURL: 'http://127.0.0.1:9/v1',
      maxRetries: 0,
      fetch: async () =>
        new Response(
          JSON.stringify({
            id: 'chatcmpl-1',
            object: 'chat.completion',
            created: 0,
            model: 'gpt-4.1-mini',
            choices: [
              {
                index: 0,
                message: { role: 'assistant', content: null, refusal: "I'm sorry, I cannot help with that." },
                finish_reason: 'stop',
              },
            ],
            usage: { prompt_tokens: 10, completion_tokens: 8, total_tokens: 18 },
          }),
          { status: 200, headers: { 'content-type': 'application/json' } },
        ),
    });
    // Act
    const e = await new OpenAIProvider(refusing).complete({ ...request(4000), answerFormat: FINDINGS_FORMAT }).catch((x: unknown) => x);
    // Assess
    expect(e).toBeInstanceOf(ProviderRejectedError);
    expect((e as Error).message).toBe("openai: the model refused to answer: I'm sorry, I cannot help with that.");
  });
});

describe('Table: FORMAT_TRANSPORT (what the estimate counts) against what the adapters send', () => {
  it('counts a schema for an openai-compatible model exactly when its capability sends one', () => {
    for (const capability of STRUCTURED_OUTPUTS) {
      const sent = compatibleFormat(FINDINGS_FORMAT, capability);
      expect(FORMAT_TRANSPORT['openai-compatible'](capability).schema, capability).toBe(sent?.type === 'json_schema');
    }
  });

  it('counts a schema for bedrock (a forced tool, with its system prompt) and openai (a strict json_schema)', () => {
    expect(FORMAT_TRANSPORT.bedrock(undefined)).toEqual({ schema: true, forcedTool: true });
    expect(FORMAT_TRANSPORT.openai(undefined)).toEqual({ schema: true, forcedTool: false });
  });
});

describe('LazyProvider (cloud providers with a key from Secrets Manager)', () => {
  it('reads the secret again on the next call after a failed read, so a secret created later is seen by a warm function', async () => {
    // Prepare: the first read fails (the secret does not exist yet), the second finds it.
    let reads = 0;
    const answer = { text: 'ok' } as unknown as Awaited<ReturnType<ModelProvider['complete']>>;
    const lazy = new LazyProvider(async () => {
      reads++;
      if (reads === 1) throw new Error('ResourceNotFoundException: Secrets Manager can’t find the specified secret.');
      return { complete: async () => answer };
    });
    const req = { modelId: 'm', system: '', messages: [], maxTokens: 1, temperature: 0, timeoutMs: 1000 };

    // Act
    const first = await lazy.complete(req).catch((e: Error) => e);
    const second = await lazy.complete(req);
    const third = await lazy.complete(req);

    // Assess
    expect(first).toBeInstanceOf(Error);
    expect(second).toBe(answer);
    expect(third).toBe(answer);
    expect(reads).toBe(2);
  });
});
