import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { SFNClient } from '@aws-sdk/client-sfn';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { z } from 'zod';
import { SfnExecutionStarter } from '../adapters/starter.js';
import { requireEnv } from '../shared/env.js';
import { logger } from '../shared/powertools.js';
import { secretField } from '../shared/secrets.js';
import { handleGithubDelivery } from './github-delivery.js';

/** `AGENTFLOW_WORKFLOWS`: `[{ id, events, stateMachineArn }]`, written by the stack. */
const workflows = z
  .array(z.strictObject({ id: z.string(), events: z.array(z.string()), stateMachineArn: z.string() }))
  .parse(JSON.parse(requireEnv('AGENTFLOW_WORKFLOWS')));
const starter = new SfnExecutionStarter(new SFNClient({}), Object.fromEntries(workflows.map((w) => [w.id, w.stateMachineArn])));
const secretName = requireEnv('GITHUB_SECRET_NAME');

/** POST /webhooks/github: verify, match, start (see {@link handleGithubDelivery}). */
export const handler = middy(async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
  const res = await handleGithubDelivery(
    { headers: event.headers, body: event.body, isBase64Encoded: event.isBase64Encoded },
    { secret: () => secretField(secretName, 'webhookSecret'), workflows, starter },
  );
  logger.info('github delivery', { status: res.statusCode, delivery: event.headers['x-github-delivery'] });
  return res;
}).use(injectLambdaContext(logger));
