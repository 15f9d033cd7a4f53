import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { z } from 'zod';
import { GitHubChangeLookup } from '../adapters/changes.js';
import { PowertoolsDeliveryGuard } from '../adapters/delivery-guard.js';
import { GitLabChangeLookup } from '../adapters/gitlab-lookup.js';
import { DynamoRunStore } from '../adapters/runs.js';
import { respondToSlack } from '../adapters/slack.js';
import { SfnExecutionStarter } from '../adapters/starter.js';
import type { ChangeLookup } from '../core/ports.js';
import { WorkflowTriggerSchema } from '../core/triggers.js';
import { cloudDecideDeps, cloudThreads, doc, dynamo, groups, sfn } from '../shared/approvals.js';
import { optionalEnv, requireEnv } from '../shared/env.js';
import { gitlabClient } from '../shared/gitlab.js';
import { githubClient } from '../shared/octokit.js';
import { logger } from '../shared/powertools.js';
import { rotatingSecret } from '../shared/secrets.js';
import { type IngressDeps, routeIngress } from './routes.js';

/**
 * `AGENTFLOW_WORKFLOWS`: `[{ id, events, linesChanged?, runBy?, skipDrafts, skipBots, authors?, labels?,
 * branches?, stateMachineArn }]`, written by the stack.
 */
const workflows = z
  .array(WorkflowTriggerSchema.extend({ stateMachineArn: z.string() }))
  .parse(JSON.parse(requireEnv('AGENTFLOW_WORKFLOWS')));
const table = requireEnv('TABLE_NAME');
const starter = new SfnExecutionStarter(
  sfn,
  Object.fromEntries(workflows.map((w) => [w.id, w.stateMachineArn])),
  new DynamoRunStore(doc, table),
);
const guard = new PowertoolsDeliveryGuard({ client: dynamo, table });
const threads = cloudThreads();
/** `/agentflow ask <request>` without a workflow name asks this one (`askWorkflow` of the environment config, written by the stack). */
const askWorkflow = optionalEnv('AGENTFLOW_ASK_WORKFLOW', '');
const changes: ChangeLookup = {
  pullRequest: async (repo, n) => new GitHubChangeLookup(await githubClient()).pullRequest(repo, n),
  refs: async (repo, base, head) => new GitHubChangeLookup(await githubClient()).refs(repo, base, head),
};

/**
 * How long one GitLab request of the ingress may take, in ms: GitLab waits 10 s for a webhook's
 * answer (https://docs.gitlab.com/user/project/integrations/webhooks/#webhook-timeout-limits, read 2026-11)
 * and the function's own timeout is 8 s.
 */
const INGRESS_GITLAB_TIMEOUT_MS = 3000;
const gitlab = async () => new GitLabChangeLookup(await gitlabClient(INGRESS_GITLAB_TIMEOUT_MS));
const approvals = cloudDecideDeps({ gitlabTimeoutMs: INGRESS_GITLAB_TIMEOUT_MS });

function deps(context: Context): IngressDeps {
  const remainingMs = () => context.getRemainingTimeInMillis();
  return {
    github: {
      secrets: () => rotatingSecret(requireEnv('GITHUB_SECRET_NAME'), 'webhookSecret'),
      workflows,
      starter,
      guard,
      remainingMs,
      approvals,
      changes,
    },
    gitlab: {
      secrets: () => rotatingSecret(requireEnv('GITLAB_SECRET_NAME'), 'webhookSecret'),
      workflows,
      starter,
      guard,
      remainingMs,
      approvals,
      refs: async (project, iid) => (await gitlab()).diffRefs(project, iid),
      mayReview: async (project, userId) => (await gitlab()).canWrite(project, userId),
      mergeRequest: async (project, iid) => (await gitlab()).pullRequest(project, iid),
    },
    slack: {
      signingSecrets: () => rotatingSecret(requireEnv('SLACK_SECRET_NAME'), 'signingSecret'),
      workflows,
      groups,
      starter,
      runs: new DynamoRunStore(doc, table),
      changes,
      approvals,
      respond: respondToSlack,
      ...(threads ? { threads } : {}),
      ...(askWorkflow ? { askWorkflow } : {}),
      remainingMs: () => Math.min(2500, remainingMs() - 500),
    },
    ci: { secrets: () => rotatingSecret(requireEnv('CI_SECRET_NAME'), 'callbackSecret'), approvals },
  };
}

/**
 * The HTTP API's ingress: `POST /webhooks/github`, `/webhooks/gitlab`, `/webhooks/slack/commands`,
 * `/webhooks/slack/interactions`, `/webhooks/ci` (see `routes.ts`). Logs the route, status and
 * delivery id only: never a body, header value or secret.
 */
export const handler = middy(async (event: APIGatewayProxyEventV2, context: Context): Promise<APIGatewayProxyStructuredResultV2> => {
  const res = await routeIngress(
    event.rawPath,
    { headers: event.headers, body: event.body, isBase64Encoded: event.isBase64Encoded },
    deps(context),
  );
  const delivery = event.headers['x-github-delivery'] ?? event.headers['x-gitlab-event-uuid'];
  logger.info('ingress', { route: event.rawPath, status: res.statusCode, delivery });
  return res;
}).use(injectLambdaContext(logger));
