import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { expireApproval, isExpireAction, requestApproval } from '../core/approvals.js';
import { cloudDecideDeps, groups } from '../shared/approvals.js';
import { logger } from '../shared/powertools.js';

const { approvals, notifier, threads } = cloudDecideDeps();

/**
 * RequestApproval task (`lambda:invoke.waitForTaskToken`): stores the task token under a new
 * opaque id, posts the Slack message and tells a request's thread (see {@link requestApproval}).
 * Step Functions waits for the decision or the state's TimeoutSeconds; this function's return value
 * is ignored. The gate's timeout path calls it with `action: expire` (see {@link expireApproval}).
 */
export const handler = middy(async (event: unknown) => {
  if (isExpireAction(event)) return expireApproval(event, { approvals, notifier, threads });
  const r = await requestApproval(event, { approvals, notifier, threads, groups });
  logger.info('approval requested', { approvalId: r.approvalId });
  return r;
}).use(injectLambdaContext(logger));
