import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import OpenAI from 'openai';
import { BedrockProvider, OpenAIProvider } from '../../lambdas/adapters/providers.js';
import type { ProviderTable } from '../../lambdas/core/ports.js';
import type { OfflineModelServer } from './offline-model.js';

/** Where each provider's calls go in local mode. */
export interface ProviderModes {
  openai: 'openai' | 'openai-compatible' | 'offline';
  bedrock: 'aws' | 'offline';
}

/**
 * Which providers need the offline model server, from the environment:
 * OpenAI is real with `OPENAI_API_KEY` (at `OPENAI_BASE_URL` when set), an OpenAI-compatible server
 * with only `OPENAI_BASE_URL` (Ollama, vLLM), else offline. Bedrock is real when AWS credentials
 * are configured (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, web identity, container credentials or
 * `~/.aws/credentials`), else offline. `AGENTFLOW_OFFLINE=1` forces both offline.
 */
export function providerModes(env: NodeJS.ProcessEnv = process.env): ProviderModes {
  if (env.AGENTFLOW_OFFLINE === '1') return { openai: 'offline', bedrock: 'offline' };
  const openai = env.OPENAI_API_KEY ? 'openai' : env.OPENAI_BASE_URL ? 'openai-compatible' : 'offline';
  const aws =
    Boolean(env.AWS_ACCESS_KEY_ID || env.AWS_PROFILE || env.AWS_WEB_IDENTITY_TOKEN_FILE || env.AWS_CONTAINER_CREDENTIALS_FULL_URI) ||
    existsSync(join(homedir(), '.aws', 'credentials'));
  return { openai, bedrock: aws ? 'aws' : 'offline' };
}

/** Per-call timeout for local provider calls in ms. */
const TIMEOUT_MS = 120_000;

/** Builds the provider table for local mode with the same adapters the Lambdas use. */
export function localProviders(
  modes: ProviderModes,
  offline: OfflineModelServer | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ProviderTable {
  const need = (what: string) => {
    if (!offline) throw new Error(`the offline model server is needed for ${what} but was not started`);
    return offline;
  };
  const openai =
    modes.openai === 'offline'
      ? new OpenAIProvider(new OpenAI({ apiKey: 'offline', baseURL: need('openai').openaiUrl, maxRetries: 0, timeout: TIMEOUT_MS }))
      : new OpenAIProvider(
          new OpenAI({
            apiKey: env.OPENAI_API_KEY || 'none',
            ...(env.OPENAI_BASE_URL ? { baseURL: env.OPENAI_BASE_URL } : {}),
            maxRetries: 0,
            timeout: TIMEOUT_MS,
          }),
          { compatible: Boolean(env.OPENAI_BASE_URL) },
        );
  const bedrock =
    modes.bedrock === 'offline'
      ? new BedrockProvider(
          new BedrockRuntimeClient({
            endpoint: need('bedrock').bedrockUrl,
            region: 'us-east-1',
            credentials: { accessKeyId: 'offline', secretAccessKey: 'offline' },
            maxAttempts: 1,
          }),
        )
      : new BedrockProvider(new BedrockRuntimeClient({ region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1', maxAttempts: 1 }));
  return { openai, bedrock };
}
