import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import OpenAI from 'openai';
import { BedrockProvider, OpenAIProvider } from '../../lambdas/adapters/providers.js';
import { ProviderRejectedError } from '../../lambdas/core/errors.js';
import type { ModelProvider, ProviderTable } from '../../lambdas/core/ports.js';
import type { OfflineModelServer } from './offline-model.js';

/** Where each provider's calls go in local mode. */
export interface ProviderModes {
  openai: 'openai' | 'openai-compatible' | 'offline';
  bedrock: 'aws' | 'offline';
  /** `remote` when `OPENAI_COMPATIBLE_BASE_URL` (or the config's `openaiCompatibleBaseUrl`) names a server. */
  'openai-compatible': 'remote' | 'offline';
}

/**
 * Which providers need the offline model server, from the environment:
 * OpenAI is real with `OPENAI_API_KEY` (at `OPENAI_BASE_URL` when set), an OpenAI-compatible server
 * with only `OPENAI_BASE_URL` (Ollama, vLLM), else offline. Bedrock is real when AWS credentials
 * are configured (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, web identity, container credentials or
 * `~/.aws/credentials`), else offline. The `openai-compatible` provider is remote when
 * `OPENAI_COMPATIBLE_BASE_URL` or `compatibleBaseUrl` is set, else offline.
 * `AGENTFLOW_OFFLINE=1` forces all offline.
 */
export function providerModes(env: NodeJS.ProcessEnv = process.env, compatibleBaseUrl?: string): ProviderModes {
  if (env.AGENTFLOW_OFFLINE === '1') return { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' };
  const openai = env.OPENAI_API_KEY ? 'openai' : env.OPENAI_BASE_URL ? 'openai-compatible' : 'offline';
  const aws =
    Boolean(env.AWS_ACCESS_KEY_ID || env.AWS_PROFILE || env.AWS_WEB_IDENTITY_TOKEN_FILE || env.AWS_CONTAINER_CREDENTIALS_FULL_URI) ||
    existsSync(join(homedir(), '.aws', 'credentials'));
  const compatible = env.OPENAI_COMPATIBLE_BASE_URL || compatibleBaseUrl ? 'remote' : 'offline';
  return { openai, bedrock: aws ? 'aws' : 'offline', 'openai-compatible': compatible };
}

/** Per-call timeout for local provider calls in ms (the gateway passes a shorter one per call). */
const TIMEOUT_MS = 120_000;

/**
 * Builds the provider table for local mode with the same adapters the Lambdas use. Offline
 * providers point at the offline model server: `openai` at its `openaiUrl` (`…/v1`),
 * `openai-compatible` at its `compatibleUrl` (`…/compat/v1`, so the server serves that provider's
 * faults and counts its calls apart), `bedrock` at its `bedrockUrl`.
 *
 * @throws Error when a provider is offline but `offline` is undefined (the server was not started)
 */
export function localProviders(
  modes: ProviderModes,
  offline: OfflineModelServer | undefined,
  env: NodeJS.ProcessEnv = process.env,
  compatibleBaseUrl?: string,
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
  const compatibleUrl = env.OPENAI_COMPATIBLE_BASE_URL || compatibleBaseUrl;
  const compatible: ModelProvider =
    modes['openai-compatible'] === 'remote' && compatibleUrl
      ? new OpenAIProvider(
          new OpenAI({ apiKey: env.OPENAI_COMPATIBLE_API_KEY || 'none', baseURL: compatibleUrl, maxRetries: 0, timeout: TIMEOUT_MS }),
          { compatible: true },
        )
      : offline
        ? new OpenAIProvider(new OpenAI({ apiKey: 'offline', baseURL: offline.compatibleUrl, maxRetries: 0, timeout: TIMEOUT_MS }), {
            compatible: true,
          })
        : {
            complete: () =>
              Promise.reject(
                new ProviderRejectedError(
                  'openai-compatible: set OPENAI_COMPATIBLE_BASE_URL (e.g. http://localhost:11434/v1)',
                  'openai-compatible',
                ),
              ),
          };
  return { openai, bedrock, 'openai-compatible': compatible };
}
