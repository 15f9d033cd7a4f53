import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { S3ArtifactStore } from '../adapters/artifacts.js';
import { createDynamoGateway } from '../adapters/gateway-store.js';
import { PowertoolsGatewayMetrics } from '../adapters/metrics.js';
import { parseGatewayConfig } from '../core/gateway-config.js';
import { optionalEnv, requireEnv } from '../shared/env.js';
import { logger } from '../shared/powertools.js';
import { cloudProviders } from '../shared/providers.js';
import { invokeAgent } from './invoke-agent.js';

const config = parseGatewayConfig(JSON.parse(optionalEnv('AGENTFLOW_GATEWAY', '{}')), 'AGENTFLOW_GATEWAY');
const artifacts = new S3ArtifactStore(new S3Client({}), requireEnv('ARTIFACT_BUCKET'));
const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}), { marshallOptions: { removeUndefinedValues: true } });
const metrics = new Metrics({ namespace: optionalEnv('POWERTOOLS_METRICS_NAMESPACE', 'AgentFlow') });
const { gateway } = createDynamoGateway({
  doc,
  table: requireEnv('TABLE_NAME'),
  providers: cloudProviders(config),
  config,
  metrics: new PowertoolsGatewayMetrics(metrics),
});

/** Time kept back from the Lambda timeout so the agent can store its result, in ms. */
const MARGIN_MS = 15_000;

/** InvokeAgent task (one Map iteration): see {@link invokeAgent}. */
export const handler = middy(async (event: unknown, context: Context) => {
  const result = await invokeAgent(event, {
    artifacts,
    gateway,
    budgets: config.budgets,
    deadlineMs: () => Date.now() + Math.max(1000, context.getRemainingTimeInMillis() - MARGIN_MS),
  });
  logger.info('agent finished', { agent: result.name, costUsd: result.costUsd, findings: result.findings, calls: result.calls });
  return result;
}).use(injectLambdaContext(logger));
