import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { S3Client } from '@aws-sdk/client-s3';
import middy from '@middy/core';
import { S3ArtifactStore } from '../adapters/artifacts.js';
import { optionalEnv, requireEnv } from '../shared/env.js';
import { logger } from '../shared/powertools.js';
import { AGENTS_FAILED_METRIC, aggregate } from './aggregate.js';

const artifacts = new S3ArtifactStore(new S3Client({}), requireEnv('ARTIFACT_BUCKET'));

const metrics = new Metrics({ namespace: optionalEnv('POWERTOOLS_METRICS_NAMESPACE', 'AgentFlow') });

/** Aggregate task: see {@link aggregate}. Emits `AgentsFailed` (agents of the run whose status is failed: the stack's alarm). */
export const handler = middy(async (event: unknown) => {
  const out = await aggregate(event, { artifacts });
  metrics.addDimensions({ workflow: out.summary.workflow });
  metrics.addMetric(AGENTS_FAILED_METRIC, MetricUnit.Count, out.summary.agents.filter((a) => a.status === 'failed').length);
  metrics.publishStoredMetrics();
  return out;
}).use(injectLambdaContext(logger));
