import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { requestApproval } from '../core/approvals.js';
import { cloudDecideDeps, groups } from '../shared/approvals.js';
import { logger } from '../shared/powertools.js';

const { approvals, notifier } = cloudDecideDeps();

/**
 * RequestApproval task (`lambda:invoke.waitForTaskToken`): stores the task token under a new
 * opaque id and posts the Slack message (see {@link requestApproval}). Step Functions waits for
 * the decision or the state's TimeoutSeconds; this function's return value is ignored.
 */
export const handler = middy(async (event: unknown) => {
  const r = await requestApproval(event, { approvals, notifier, groups });
  logger.info('approval requested', { approvalId: r.approvalId });
  return r;
}).use(injectLambdaContext(logger));
