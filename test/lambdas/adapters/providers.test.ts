import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelProvider, ModelRequest } from '../../../lambdas/core/ports.js';
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
        '@@ -10,0 +10,2 @@',
        '+let token = cardToken!',
        '+let amount = total!',
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
