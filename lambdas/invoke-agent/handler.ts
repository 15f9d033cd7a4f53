import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { S3Client } from '@aws-sdk/client-s3';
import middy from '@middy/core';
import { S3ArtifactStore } from '../adapters/artifacts.js';
import { requireEnv } from '../shared/env.js';
import { logger } from '../shared/powertools.js';
import { cloudProviders } from '../shared/providers.js';
import { invokeAgent } from './invoke-agent.js';

const artifacts = new S3ArtifactStore(new S3Client({}), requireEnv('ARTIFACT_BUCKET'));
const providers = cloudProviders();

/** InvokeAgent task (one Map iteration): see {@link invokeAgent}. */
export const handler = middy(async (event: unknown) => {
  const result = await invokeAgent(event, { artifacts, providers });
  logger.info('agent finished', { agent: result.name, costUsd: result.costUsd, findings: result.findings });
  return result;
}).use(injectLambdaContext(logger));
