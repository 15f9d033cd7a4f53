import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { S3ArtifactStore } from '../adapters/artifacts.js';
import { BedrockGuardrail } from '../adapters/bedrock-guardrail.js';
import { createDynamoGateway } from '../adapters/gateway-store.js';
import { PowertoolsGatewayMetrics } from '../adapters/metrics.js';
import { parseGatewayConfig } from '../core/gateway-config.js';
import { optionalEnv, requireEnv } from '../shared/env.js';
import { cloudChangeSource } from '../shared/forges.js';
import { logger } from '../shared/powertools.js';
import { cloudProviders } from '../shared/providers.js';
import { secretMcpHeaders } from '../shared/secrets.js';
import { toolBreaker } from './agent-tools.js';
import { guardrailChooser } from './answer-agent.js';
import { invokeAgent } from './invoke-agent.js';

const config = parseGatewayConfig(JSON.parse(optionalEnv('AGENTFLOW_GATEWAY', '{}')), 'AGENTFLOW_GATEWAY');
const artifacts = new S3ArtifactStore(new S3Client({}), requireEnv('ARTIFACT_BUCKET'));
const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}), { marshallOptions: { removeUndefinedValues: true } });
const metrics = new Metrics({ namespace: optionalEnv('POWERTOOLS_METRICS_NAMESPACE', 'AgentFlow') });
const { gateway, breakers } = createDynamoGateway({
  doc,
  table: requireEnv('TABLE_NAME'),
  providers: cloudProviders(config),
  config,
  metrics: new PowertoolsGatewayMetrics(metrics),
});

// MCP tools' breakers live beside the models' (same table, same settings).
const breaker = toolBreaker(breakers, config);
// The built-in read_file reads a changed file from its forge (clients built on first use).
const changes = cloudChangeSource();
// HTTP MCP servers' headers (credentials): the `mcp` secret, set when a workflow has such a server.
const mcpSecretName = optionalEnv('MCP_SECRET_NAME', '');
const mcpHeaders = mcpSecretName ? secretMcpHeaders(mcpSecretName) : undefined;
const bedrock = new BedrockRuntimeClient({});
/** The environment's Bedrock guardrail (`AGENTFLOW_GUARDRAIL_ID`, `AGENTFLOW_GUARDRAIL_VERSION`, default `DRAFT`). */
const environmentGuardrail = {
  id: optionalEnv('AGENTFLOW_GUARDRAIL_ID', ''),
  version: optionalEnv('AGENTFLOW_GUARDRAIL_VERSION', 'DRAFT'),
};

/** A guardrail step's guardrail: its local rules, then Bedrock Guardrails on what they let through when the step or the environment names one. */
const guardrailFor = guardrailChooser(environmentGuardrail, (g) => new BedrockGuardrail(bedrock, g));

/** Time kept back from the Lambda timeout so the agent can store its result, in ms. */
const MARGIN_MS = 15_000;

/** InvokeAgent task (one Map iteration): see {@link invokeAgent}. */
export const handler = middy(async (event: unknown, context: Context) => {
  const result = await invokeAgent(event, {
    artifacts,
    gateway,
    budgets: config.budgets,
    breaker,
    readHeadFile: (change, path) => changes.readHeadFile(change, path),
    guardrailFor,
    ...(mcpHeaders ? { mcpHeaders } : {}),
    deadlineMs: () => Date.now() + Math.max(1000, context.getRemainingTimeInMillis() - MARGIN_MS),
  });
  logger.info('agent finished', {
    agent: result.name,
    status: result.status,
    costUsd: result.costUsd,
    findings: result.findings,
    calls: result.calls,
    toolCalls: result.toolCalls,
    toolErrors: result.toolErrors,
  });
  return result;
}).use(injectLambdaContext(logger));
