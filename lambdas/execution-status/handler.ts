import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { DynamoRunStore } from '../adapters/runs.js';
import { cloudDecideDeps, cloudThreads, doc } from '../shared/approvals.js';
import { requireEnv } from '../shared/env.js';
import { cloudPublishers } from '../shared/forges.js';
import { logger } from '../shared/powertools.js';
import { executionEnded, fromStatusEvent } from './execution-status.js';

const { approvals, notifier } = cloudDecideDeps();
const threads = cloudThreads();
const runs = new DynamoRunStore(doc, requireEnv('TABLE_NAME'));
const publishers = cloudPublishers();

/**
 * EventBridge target for Step Functions "Execution Status Change" events with status FAILED,
 * TIMED_OUT or ABORTED on AgentFlow's state machines: see {@link executionEnded}.
 */
export const handler = middy(async (event: unknown) => {
  const ended = fromStatusEvent(event);
  // A forge only for a pull or merge request to tell (its client reads the token on first use).
  const forges = ended.change && ended.change.number > 0 ? publishers : undefined;
  const r = await executionEnded(ended, { runs, approvals, notifier, ...(forges ? { forges } : {}), ...(threads ? { threads } : {}) });
  logger.info('execution ended', { runId: ended.runId, status: ended.status, ...r });
  return r;
}).use(injectLambdaContext(logger));
