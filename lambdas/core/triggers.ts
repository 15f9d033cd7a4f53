import picomatch from 'picomatch';
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

/**
 * Include / exclude patterns: a value passes when it matches an `include` entry (or `include` is
 * empty) and matches no `exclude` entry.
 */
export interface IncludeExclude {
  include: readonly string[];
  exclude: readonly string[];
}

/**
 * A workflow as the ingress routes see it: its id, the events that start it, who may run it and
 * the pull-request filters of its trigger (see {@link preconditions}).
 */
export interface WorkflowTrigger {
  id: string;
  /** `pull_request.<action>` or `manual`. */
  events: readonly string[];
  /** The `lines_changed` condition, checked at the webhook from the event's additions + deletions. */
  linesChanged?: Comparison;
  /** Who may start a manual run from Slack (user ids or group names); empty: anyone. */
  runBy?: readonly string[];
  /** Skip draft pull requests. @default true */
  skipDrafts?: boolean;
  /** Skip pull requests opened by bots (user type `Bot`, or a login ending in `[bot]`). @default true */
  skipBots?: boolean;
  /** Author logins or globs, case-insensitive; a name also matches the login with its `[bot]` suffix. */
  authors?: IncludeExclude;
  /** Label names, case-insensitive: `include` needs one on the pull request, `exclude` skips it for any. */
  labels?: IncludeExclude;
  /** Base branch globs (`main`, `release/**`). */
  branches?: IncludeExclude;
}

const IncludeExcludeSchema = z.strictObject({ include: z.array(z.string()), exclude: z.array(z.string()) });

/** The trigger fields of a compiled workflow, as the stack passes them to the webhook (`AGENTFLOW_WORKFLOWS`). */
export const WorkflowTriggerSchema = z.strictObject({
  id: z.string(),
  events: z.array(z.string()),
  linesChanged: z.strictObject({ op: z.enum(['>', '>=', '<', '<=', '==']), value: z.number() }).optional(),
  runBy: z.array(z.string()).optional(),
  skipDrafts: z.boolean().optional(),
  skipBots: z.boolean().optional(),
  authors: IncludeExcludeSchema.optional(),
  labels: IncludeExcludeSchema.optional(),
  branches: IncludeExcludeSchema.optional(),
});

/** The fields of a GitHub `pull_request` event we use (a subset; other fields are ignored). */
export const PullRequestEventSchema = z.object({
  action: z.string(),
  number: z.number().int(),
  pull_request: z.object({
    title: z.string().default(''),
    html_url: z.string().default(''),
    user: z.object({ login: z.string(), type: z.string().optional() }).nullable().optional(),
    base: z.object({ sha: z.string(), ref: z.string(), repo: z.object({ full_name: z.string() }).nullish() }),
    /** `repo` is null when the fork was deleted. */
    head: z.object({ sha: z.string(), ref: z.string(), repo: z.object({ full_name: z.string() }).nullish() }),
    additions: z.number().int().nonnegative().optional(),
    deletions: z.number().int().nonnegative().optional(),
    draft: z.boolean().optional(),
    labels: z.array(z.object({ name: z.string() })).optional(),
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

/** Whether `login` is a GitHub App's bot account: GitHub gives those logins a `[bot]` suffix. */
export const isBotLogin = (login: string) => login.endsWith('[bot]');

/** Whether `login` matches a name or glob of an `authors` list (case-insensitive, with or without `[bot]`). */
function authorMatches(login: string, patterns: readonly string[]): string | undefined {
  const logins = [login, login.replace(/\[bot\]$/, '')].map((l) => l.toLowerCase());
  return patterns.find((p) => {
    const pattern = p.toLowerCase();
    // Brackets are literal in logins (`renovate[bot]`), never a character class.
    const glob = pattern.replace(/[[\]]/g, (c) => `\\${c}`);
    return logins.some((l) => l === pattern || picomatch.isMatch(l, glob, { dot: true }));
  });
}

/**
 * Why the pull request of `event` is not reviewed by `trigger`, or `undefined` when it is: the
 * trigger's pull-request filters, checked at the webhook from the payload, in this order:
 *
 * 1. `skipDrafts` (default true): `pull_request.draft` → `draft pull request`;
 * 2. `skipBots` (default true): `user.type === 'Bot'` or a login ending in `[bot]` →
 *    `author renovate[bot] is a bot`;
 * 3. `authors` (logins or globs, case-insensitive; `renovate` also matches `renovate[bot]`);
 * 4. `labels` (names, case-insensitive): `exclude` skips a pull request with any of them
 *    (`label wip excluded`), `include` needs one;
 * 5. `branches` (globs over the base branch, `release/**`).
 *
 * A pull request the webhook skips still gets a run: the execution starts with `skip` set to the
 * reason and records SKIPPED (DESIGN §4).
 *
 * @example
 * preconditions(event, { id: 'pr-review', events: ['pull_request.opened'] }); // 'draft pull request' for a draft
 */
export function preconditions(event: PullRequestEvent, trigger: WorkflowTrigger): string | undefined {
  const pr = event.pull_request;
  const login = pr.user?.login ?? '';
  if ((trigger.skipDrafts ?? true) && pr.draft === true) return 'draft pull request';
  if ((trigger.skipBots ?? true) && (pr.user?.type === 'Bot' || isBotLogin(login))) return `author ${login} is a bot`;
  if (trigger.authors) {
    const excluded = authorMatches(login, trigger.authors.exclude);
    if (excluded) return `author ${login} excluded (authors.exclude: ${excluded})`;
    if (trigger.authors.include.length > 0 && !authorMatches(login, trigger.authors.include)) {
      return `author ${login} is not in authors.include (${trigger.authors.include.join(', ')})`;
    }
  }
  if (trigger.labels) {
    const names = (pr.labels ?? []).map((l) => l.name);
    const has = (wanted: string) => names.find((n) => n.toLowerCase() === wanted.toLowerCase());
    const excluded = trigger.labels.exclude.map(has).find((n) => n !== undefined);
    if (excluded) return `label ${excluded} excluded`;
    if (trigger.labels.include.length > 0 && !trigger.labels.include.some(has)) {
      return `no label of labels.include (${trigger.labels.include.join(', ')})`;
    }
  }
  if (trigger.branches) {
    const ref = pr.base.ref;
    const excluded = trigger.branches.exclude.find((g) => picomatch.isMatch(ref, g, { dot: true }));
    if (excluded) return `base branch ${ref} excluded (branches.exclude: ${excluded})`;
    if (trigger.branches.include.length > 0 && !trigger.branches.include.some((g) => picomatch.isMatch(ref, g, { dot: true }))) {
      return `base branch ${ref} is not in branches.include (${trigger.branches.include.join(', ')})`;
    }
  }
  return undefined;
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
    forge: 'github',
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
    fork: isFork(e.pull_request.head.repo?.full_name, e.pull_request.base.repo?.full_name ?? e.repository.full_name),
  };
}

/** Whether a pull request's head is in another repository than its base (a deleted fork: `head.repo` null, a fork). */
export const isFork = (head: string | undefined, base: string): boolean => head?.toLowerCase() !== base.toLowerCase();

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
