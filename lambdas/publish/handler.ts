import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import middy from '@middy/core';
import { S3ArtifactStore } from '../adapters/artifacts.js';
import { DynamoRunStore } from '../adapters/runs.js';
import { SlackThreadNotifier } from '../adapters/slack.js';
import { FINDINGS_ACCEPTED_METRIC, FINDINGS_REJECTED_METRIC } from '../core/incremental.js';
import type { ChannelNotifier } from '../core/ports.js';
import { cloudThreads } from '../shared/approvals.js';
import { optionalEnv, requireEnv } from '../shared/env.js';
import { cloudPublishers } from '../shared/forges.js';
import { logger } from '../shared/powertools.js';
import { secretField } from '../shared/secrets.js';
import { publish } from './publish.js';

const artifacts = new S3ArtifactStore(new S3Client({}), requireEnv('ARTIFACT_BUCKET'));
const runs = new DynamoRunStore(
  DynamoDBDocumentClient.from(new DynamoDBClient({}), { marshallOptions: { removeUndefinedValues: true } }),
  requireEnv('TABLE_NAME'),
);

/** Publish task: see {@link publish}. */
const threads = cloudThreads();

/**
 * Channel posts (`output.slack`, `notify:`) with the bot token in `SLACK_SECRET_NAME`, read on the
 * first post (a failed read is not kept); none without that variable.
 */
function cloudChannels(): ChannelNotifier | undefined {
  const secret = process.env.SLACK_SECRET_NAME;
  if (!secret) return undefined;
  let client: Promise<SlackThreadNotifier> | undefined;
  return {
    post: async (channel, text) => {
      client ??= secretField(secret, 'botToken')
        .then((token) => new SlackThreadNotifier(token, { slackApiUrl: process.env.SLACK_API_URL || undefined }))
        .catch((e: unknown) => {
          client = undefined;
          throw e;
        });
      return (await client).post(channel, text);
    },
  };
}
const channels = cloudChannels();
/** `output.slack: true` posts here (`slackChannel` of the environment config, written by the stack). */
const defaultChannel = optionalEnv('SLACK_DEFAULT_CHANNEL', '');

const forges = cloudPublishers();

const metrics = new Metrics({ namespace: optionalEnv('POWERTOOLS_METRICS_NAMESPACE', 'AgentFlow') });

/**
 * Publish task: see {@link publish}. Emits, per workflow, agent and category, `FindingsAccepted` /
 * `FindingsRejected`: people's feedback on the inline comments counted by this run (once: against
 * the review state it replaces).
 */
export const handler = middy(async (event: unknown) => {
  const out = await publish(event, {
    artifacts,
    runs,
    forges,
    ...(threads ? { threads } : {}),
    ...(channels ? { channels } : {}),
    ...(defaultChannel ? { defaultChannel } : {}),
  });
  const workflow = (event as { workflow?: unknown }).workflow;
  for (const t of out.feedback ?? []) {
    const single = metrics.singleMetric();
    single.addDimensions({ workflow: typeof workflow === 'string' ? workflow : 'unknown', agent: t.agent, category: t.category });
    single.addMetric(FINDINGS_ACCEPTED_METRIC, MetricUnit.Count, t.accepted);
    single.addMetric(FINDINGS_REJECTED_METRIC, MetricUnit.Count, t.rejected);
  }
  return out;
}).use(injectLambdaContext(logger));
