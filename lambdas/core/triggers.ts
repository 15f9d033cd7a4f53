import { z } from 'zod';
import type { Change } from './contracts.js';
import { InvalidInputError } from './errors.js';

/** A workflow as the webhook sees it: its id and the events that start it. */
export interface WorkflowTrigger {
  id: string;
  /** `pull_request.<action>` or `manual`. */
  events: readonly string[];
}

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

/** The ids of the workflows whose trigger names `event.action` (e.g. `pull_request.opened`). */
export function matchWorkflows(event: string, action: string, workflows: readonly WorkflowTrigger[]): string[] {
  const name = `${event}.${action}`;
  return workflows.filter((w) => w.events.includes(name)).map((w) => w.id);
}

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
