import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import OpenAI from 'openai';
import { BedrockProvider, OpenAIProvider } from '../adapters/providers.js';
import type { ModelProvider, ProviderTable } from '../core/ports.js';
import { requireEnv } from './env.js';
import { secretField } from './secrets.js';

/** Per-call provider timeout in ms (Lambda's own timeout is 900 s). */
const PROVIDER_TIMEOUT_MS = 240_000;

/** A provider whose client is built on first use (its key comes from Secrets Manager). */
class LazyProvider implements ModelProvider {
  private inner?: Promise<ModelProvider>;
  constructor(private readonly make: () => Promise<ModelProvider>) {}
  complete(req: Parameters<ModelProvider['complete']>[0]) {
    this.inner ??= this.make();
    return this.inner.then((p) => p.complete(req));
  }
}

/**
 * The cloud provider table: Bedrock through IAM, OpenAI with the key in the secret named by
 * `OPENAI_SECRET_NAME` (field `apiKey`). SDK retries are off: Step Functions Retry owns retrying.
 */
export function cloudProviders(): ProviderTable {
  return {
    bedrock: new BedrockProvider(new BedrockRuntimeClient({ maxAttempts: 1, requestHandler: { requestTimeout: PROVIDER_TIMEOUT_MS } })),
    openai: new LazyProvider(async () => {
      const apiKey = await secretField(requireEnv('OPENAI_SECRET_NAME'), 'apiKey');
      return new OpenAIProvider(new OpenAI({ apiKey, maxRetries: 0, timeout: PROVIDER_TIMEOUT_MS }));
    }),
  };
}
