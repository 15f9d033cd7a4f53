import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoApprovalStore } from '../adapters/approvals.js';
import { GitLabGroupDirectory } from '../adapters/gitlab-lookup.js';
import { SlackApprovalNotifier, SlackThreadNotifier } from '../adapters/slack.js';
import { SfnTaskCallbacks } from '../adapters/task-callbacks.js';
import { GitHubTeamDirectory } from '../adapters/teams.js';
import {
  type ApprovalNotifier,
  type ApproverGroups,
  ApproverGroupsSchema,
  type DecideDeps,
  type TeamDirectory,
} from '../core/approvals.js';
import type { Forge } from '../core/contracts.js';
import type { ThreadNotifier } from '../core/ports.js';
import { optionalEnv, requireEnv } from './env.js';
import { gitlabClient } from './gitlab.js';
import { githubClient } from './octokit.js';
import { logger } from './powertools.js';
import { secretField } from './secrets.js';

/**
 * Clients with short timeouts: the ingress must answer GitHub within 10 s and Slack within 3 s, so
 * a slow dependency fails fast (and the route answers 5xx) instead of holding the request.
 */
export const FAST = { maxAttempts: 2, requestHandler: { connectionTimeout: 1000, requestTimeout: 2500 } } as const;

export const dynamo = new DynamoDBClient(FAST);
export const doc = DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } });
export const sfn = new SFNClient(FAST);

/** Approver groups from `AGENTFLOW_GROUPS` (written by the stack from cdk.json `groups`). */
export const groups: ApproverGroups = ApproverGroupsSchema.parse(JSON.parse(optionalEnv('AGENTFLOW_GROUPS', '{}')));

/**
 * A Slack client built on first use from the bot token in `SLACK_SECRET_NAME` (field `botToken`),
 * with `SLACK_API_URL` as its base URL when set. A failed build (a secret read that failed) is not
 * kept: the next call tries again.
 */
function lazySlack<T>(make: (token: string, options: { slackApiUrl?: string }) => T): () => Promise<T> {
  let client: Promise<T> | undefined;
  return () => {
    client ??= secretField(requireEnv('SLACK_SECRET_NAME'), 'botToken')
      .then((token) => make(token, { slackApiUrl: process.env.SLACK_API_URL || undefined }))
      .catch((e: unknown) => {
        client = undefined;
        throw e;
      });
    return client;
  };
}

/** The Slack approval notifier (see {@link lazySlack}). */
function slackNotifier(): ApprovalNotifier {
  const get = lazySlack((token, options) => new SlackApprovalNotifier(token, options));
  return {
    request: async (r) => (await get()).request(r),
    // The use cases go on when an update fails (the decision stands); the failure is logged, since the
    // message keeps buttons that no longer work.
    decided: async (r) =>
      (await get()).decided(r).catch((e: unknown) => {
        logger.warn('Slack message update failed', { approvalId: r.id, error: (e as Error).message });
        throw e;
      }),
  };
}

/**
 * The Slack thread notifier of manual runs, built on first use from the bot token in
 * `SLACK_SECRET_NAME`; without that variable (a function not given the Slack secret) there is none.
 */
export function cloudThreads(): ThreadNotifier | undefined {
  if (!process.env.SLACK_SECRET_NAME) return undefined;
  const get = lazySlack((token, options) => new SlackThreadNotifier(token, options));
  return {
    start: async (channel, text) => (await get()).start(channel, text),
    reply: async (thread, text) => (await get()).reply(thread, text),
    update: async (message, text) => (await get()).update(message, text),
  };
}

/**
 * Everything deciding an approval needs in the cloud: the table, Step Functions, Slack (the approval
 * message and, with `SLACK_SECRET_NAME`, a request's thread), GitHub teams and GitLab groups.
 * `gitlabTimeoutMs` bounds each GitLab request of a group check (the ingress must answer within
 * GitLab's 10 s). @default the GitLab client's 10 s
 */
export function cloudDecideDeps(options: { gitlabTimeoutMs?: number } = {}): DecideDeps {
  const approvals = new DynamoApprovalStore(doc, requireEnv('TABLE_NAME'));
  const threads = cloudThreads();
  return {
    approvals,
    callbacks: new SfnTaskCallbacks(sfn),
    notifier: slackNotifier(),
    ...(threads ? { threads } : {}),
    teams: {
      github: { isMember: async (team, login) => new GitHubTeamDirectory(await githubClient()).isMember(team, login) },
      gitlab: {
        isMember: async (group, username) =>
          new GitLabGroupDirectory(await gitlabClient(options.gitlabTimeoutMs)).isMember(group, username),
      },
    } satisfies Record<Forge, TeamDirectory>,
  };
}
