import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelRequest } from '../../../lambdas/core/ports.js';
import { countTokens } from '../../../lambdas/core/tokenizer.js';
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
