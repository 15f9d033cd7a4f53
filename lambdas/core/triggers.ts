import { z } from 'zod';
import type { Change } from './contracts.js';
import { InvalidInputError } from './errors.js';

/** A numeric comparison such as `lines_changed: "> 100"`. */
export interface Comparison {
  op: '>' | '>=' | '<' | '<=' | '==';
  value: number;
}

/** Whether `value` satisfies `c`. */
export function satisfies(value: number, c: Comparison): boolean {
  switch (c.op) {
    case '>':
      return value > c.value;
    case '>=':
      return value >= c.value;
    case '<':
      return value < c.value;
    case '<=':
      return value <= c.value;
    case '==':
      return value === c.value;
  }
}

/** A workflow as the ingress routes see it: its id, the events that start it and who may run it. */
export interface WorkflowTrigger {
  id: string;
  /** `pull_request.<action>` or `manual`. */
  events: readonly string[];
  /** The `lines_changed` condition, checked at the webhook from the event's additions + deletions. */
  linesChanged?: Comparison;
  /** Who may start a manual run from Slack (user ids or group names); empty: anyone. */
  runBy?: readonly string[];
}

/** The trigger fields of a compiled workflow, as the stack passes them to the webhook (`AGENTFLOW_WORKFLOWS`). */
export const WorkflowTriggerSchema = z.strictObject({
  id: z.string(),
  events: z.array(z.string()),
  linesChanged: z.strictObject({ op: z.enum(['>', '>=', '<', '<=', '==']), value: z.number() }).optional(),
  runBy: z.array(z.string()).optional(),
});

/** The fields of a GitHub `pull_request` event we use (a subset; other fields are ignored). */
export const PullRequestEventSchema = z.object({
  action: z.string(),
  number: z.number().int(),
  pull_request: z.object({
    title: z.string().default(''),
    html_url: z.string().default(''),
    user: z.object({ login: z.string() }).nullable().optional(),
    base: z.object({ sha: z.string(), ref: z.string() }),
    head: z.object({ sha: z.string(), ref: z.string() }),
    additions: z.number().int().nonnegative().optional(),
    deletions: z.number().int().nonnegative().optional(),
  }),
  repository: z.object({ full_name: z.string() }),
});
export type PullRequestEvent = z.infer<typeof PullRequestEventSchema>;

/**
 * Splits `owner/name` into its parts.
 * @throws InvalidInputError when it is not `owner/name`
 */
export function splitRepository(fullName: string): { owner: string; repo: string } {
  const [owner, repo, ...rest] = fullName.split('/');
  if (!owner || !repo || rest.length > 0) throw new InvalidInputError(`repository must be owner/name, got "${fullName}"`);
  return { owner, repo };
}

/** The workflows whose trigger names `event.action` (e.g. `pull_request.opened`). */
export function matchWorkflows(event: string, action: string, workflows: readonly WorkflowTrigger[]): WorkflowTrigger[] {
  const name = `${event}.${action}`;
  return workflows.filter((w) => w.events.includes(name));
}

/** The fields of a GitHub `issue_comment` event we use: a comment on a pull request. */
export const IssueCommentEventSchema = z.object({
  action: z.string(),
  issue: z.object({ number: z.number().int(), pull_request: z.object({}).passthrough().optional() }),
  comment: z.object({ body: z.string(), user: z.object({ login: z.string() }), author_association: z.string().default('NONE') }),
  repository: z.object({ full_name: z.string() }),
});
export type IssueCommentEvent = z.infer<typeof IssueCommentEventSchema>;

/** Comment authors who may ask for a review again: people with write access to the repository. */
export const TRUSTED_ASSOCIATIONS = ['OWNER', 'MEMBER', 'COLLABORATOR'] as const;

/** The run's change from a pull_request event. */
export function changeFromPullRequest(e: PullRequestEvent): Change {
  return {
    repository: e.repository.full_name,
    number: e.number,
    title: e.pull_request.title,
    author: e.pull_request.user?.login ?? '',
    url: e.pull_request.html_url,
    action: e.action,
    baseSha: e.pull_request.base.sha,
    headSha: e.pull_request.head.sha,
    baseRef: e.pull_request.base.ref,
    headRef: e.pull_request.head.ref,
  };
}

/**
 * The execution name for a delivery and workflow: `<delivery>-<workflow>`, with characters
 * Step Functions does not allow replaced by `_`, at most 80 characters. The same delivery always
 * gives the same name, so a redelivery cannot start a second execution (Standard execution
 * names are unique for 90 days).
 * Source: https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
 */
export function executionName(deliveryId: string, workflow: string): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');
  const d = clean(deliveryId).slice(0, 48) || 'delivery';
  return `${d}-${clean(workflow)}`.slice(0, 80);
}
