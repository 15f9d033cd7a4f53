import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import OpenAI from 'openai';
import { BedrockProvider, OpenAIProvider } from '../adapters/providers.js';
import { ProviderRejectedError } from '../core/errors.js';
import type { GatewayConfig } from '../core/gateway-config.js';
import type { ModelProvider, ProviderTable } from '../core/ports.js';
import { requireEnv } from './env.js';
import { secretField } from './secrets.js';

/**
 * A provider whose client is built on first use (its key comes from Secrets Manager). A failed
 * build (the secret does not exist yet, a throttled read) is not kept: the next call tries again,
 * so a secret created after the function's first run is seen by a warm function.
 */
export class LazyProvider implements ModelProvider {
  private inner?: Promise<ModelProvider>;
  constructor(private readonly make: () => Promise<ModelProvider>) {}
  complete(req: Parameters<ModelProvider['complete']>[0]) {
    if (!this.inner) {
      const made = this.make();
      this.inner = made;
      made.catch(() => {
        if (this.inner === made) this.inner = undefined;
      });
    }
    return this.inner.then((p) => p.complete(req));
  }
}

/**
 * The cloud provider table: Bedrock through IAM; OpenAI with the key in the secret named by
 * `OPENAI_SECRET_NAME` (field `apiKey`); `openai-compatible` at the configured
 * `openaiCompatibleBaseUrl`, with the same secret's optional `compatibleApiKey` field. SDK retries
 * are off: the gateway owns retrying (backoff with full jitter, then fallback), and each call's
 * timeout is the gateway's `providerTimeoutSeconds`.
 */
export function cloudProviders(config: GatewayConfig): ProviderTable {
  const timeout = config.providerTimeoutSeconds * 1000;
  return {
    bedrock: new BedrockProvider(new BedrockRuntimeClient({ maxAttempts: 1, requestHandler: { requestTimeout: timeout } })),
    openai: new LazyProvider(async () => {
      const apiKey = await secretField(requireEnv('OPENAI_SECRET_NAME'), 'apiKey');
      return new OpenAIProvider(new OpenAI({ apiKey, maxRetries: 0, timeout }));
    }),
    'openai-compatible': new LazyProvider(async () => {
      const baseURL = config.openaiCompatibleBaseUrl;
      if (!baseURL) {
        throw new ProviderRejectedError(
          'openai-compatible: no base URL configured (set openaiCompatibleBaseUrl in cdk.json context.environments.<env>)',
          'openai-compatible',
        );
      }
      const apiKey = await secretField(requireEnv('OPENAI_SECRET_NAME'), 'compatibleApiKey').catch(() => 'none');
      return new OpenAIProvider(new OpenAI({ apiKey, baseURL, maxRetries: 0, timeout }), { compatible: true });
    }),
  };
}
