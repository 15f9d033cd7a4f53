import picomatch from 'picomatch';
import { z } from 'zod';
import type { Change, Forge } from './contracts.js';
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
  /**
   * `pull_request.<action>` (GitHub), `merge_request.<action>` (GitLab), the forge-neutral
   * `change.opened` / `change.updated` (see {@link CHANGE_EVENTS}) or `manual`.
   */
  events: readonly string[];
  /**
   * The `lines_changed` condition, checked at the GitHub webhook from the event's additions +
   * deletions. GitLab's merge request event carries no counts: the state machine checks it (for
   * every forge) once the diff is read.
   */
  linesChanged?: Comparison;
  /** Who may start a manual run from Slack (user ids or group names); empty: anyone. */
  runBy?: readonly string[];
  /** Skip draft pull requests. @default true */
  skipDrafts?: boolean;
  /** Skip changes opened by bots (see {@link ChangeSubject.bot}). @default true */
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

/**
 * The webhook event of each forge whose actions start workflows: `pull_request.<action>` on
 * GitHub, `merge_request.<action>` on GitLab.
 */
export const FORGE_CHANGE_EVENT: Record<Forge, string> = { github: 'pull_request', gitlab: 'merge_request' };

/**
 * Forge-neutral trigger events and the forge actions each stands for, so one workflow serves both
 * forges: `change.opened` is a pull or merge request opened or reopened, `change.updated` one that
 * got new commits (GitLab's `update` counts only with `object_attributes.oldrev`, which the
 * webhook checks), `change.ready` a draft marked ready for review (GitHub's `ready_for_review`;
 * GitLab sends an `update` whose `changes.draft` goes from true to false, which its webhook
 * calls `ready`). Sources: https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request,
 * https://docs.gitlab.com/user/project/integrations/webhook_events/#merge-request-events (read 2026-11)
 */
export const CHANGE_EVENTS = {
  'change.opened': { github: ['opened', 'reopened'], gitlab: ['open', 'reopen'] },
  'change.updated': { github: ['synchronize'], gitlab: ['update'] },
  'change.ready': { github: ['ready_for_review'], gitlab: ['ready'] },
} as const satisfies Record<string, Record<Forge, readonly string[]>>;
export type ChangeEvent = keyof typeof CHANGE_EVENTS;

/**
 * The workflows whose trigger names `event.action` (`pull_request.opened`, `merge_request.open`)
 * or the forge-neutral event that action stands for ({@link CHANGE_EVENTS}: `pull_request.opened`
 * also starts `change.opened` workflows). The forge is the one whose change event `event` is
 * ({@link FORGE_CHANGE_EVENT}); any other event matches its own name only.
 *
 * @example
 * matchWorkflows('merge_request', 'reopen', [{ id: 'review', events: ['change.opened'] }]); // [review]
 */
export function matchWorkflows(event: string, action: string, workflows: readonly WorkflowTrigger[]): WorkflowTrigger[] {
  const forge = (Object.keys(FORGE_CHANGE_EVENT) as Forge[]).find((f) => FORGE_CHANGE_EVENT[f] === event);
  const neutral = forge
    ? (Object.keys(CHANGE_EVENTS) as ChangeEvent[]).filter((n) => (CHANGE_EVENTS[n][forge] as readonly string[]).includes(action))
    : [];
  const names = [`${event}.${action}`, ...neutral];
  return workflows.filter((w) => w.events.some((e) => names.includes(e)));
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
 * A pull or merge request as the trigger filters see it, the same shape for every forge (built by
 * {@link pullRequestSubject} and `mergeRequestSubject` in `gitlab-events.ts`).
 */
export interface ChangeSubject {
  forge: Forge;
  /** A draft (GitHub `draft`; GitLab `draft` or `work_in_progress`). */
  draft: boolean;
  /** The author's login or username; empty when not known. */
  author: string;
  /** The author is a bot account (each forge's rule: `isBotLogin`, `isGitlabBot`). */
  bot: boolean;
  /** Label names. */
  labels: readonly string[];
  /** The branch the change merges into (GitHub base, GitLab target branch). */
  baseRef: string;
}

/** What a forge calls a change, for skip reasons (`draft merge request`). */
export const CHANGE_NOUN: Record<Forge, string> = { github: 'pull request', gitlab: 'merge request' };

/** The filter view of a GitHub `pull_request` event. */
export function pullRequestSubject(event: PullRequestEvent): ChangeSubject {
  const pr = event.pull_request;
  const login = pr.user?.login ?? '';
  return {
    forge: 'github',
    draft: pr.draft === true,
    author: login,
    bot: pr.user?.type === 'Bot' || isBotLogin(login),
    labels: (pr.labels ?? []).map((l) => l.name),
    baseRef: pr.base.ref,
  };
}

/**
 * Why `change` is not reviewed by `trigger`, or `undefined` when it is: the trigger's filters,
 * checked at the webhook from the payload, in this order:
 *
 * 1. `skipDrafts` (default true): a draft → `draft pull request` / `draft merge request`;
 * 2. `skipBots` (default true): a bot author → `author renovate[bot] is a bot`;
 * 3. `authors` (logins or globs, case-insensitive; `renovate` also matches `renovate[bot]`);
 * 4. `labels` (names, case-insensitive): `exclude` skips a change with any of them
 *    (`label wip excluded`), `include` needs one;
 * 5. `branches` (globs over the base / target branch, `release/**`).
 *
 * A change the webhook skips still gets a run: the execution starts with `skip` set to the
 * reason and records SKIPPED (DESIGN §4).
 *
 * @example
 * preconditions(pullRequestSubject(event), { id: 'pr-review', events: ['pull_request.opened'] }); // 'draft pull request' for a draft
 */
export function preconditions(change: ChangeSubject, trigger: WorkflowTrigger): string | undefined {
  const login = change.author;
  if ((trigger.skipDrafts ?? true) && change.draft) return `draft ${CHANGE_NOUN[change.forge]}`;
  if ((trigger.skipBots ?? true) && change.bot) return `author ${login} is a bot`;
  if (trigger.authors) {
    const excluded = authorMatches(login, trigger.authors.exclude);
    if (excluded) return `author ${login} excluded (authors.exclude: ${excluded})`;
    if (trigger.authors.include.length > 0 && !authorMatches(login, trigger.authors.include)) {
      return `author ${login} is not in authors.include (${trigger.authors.include.join(', ')})`;
    }
  }
  if (trigger.labels) {
    const has = (wanted: string) => change.labels.find((n) => n.toLowerCase() === wanted.toLowerCase());
    const excluded = trigger.labels.exclude.map(has).find((n) => n !== undefined);
    if (excluded) return `label ${excluded} excluded`;
    if (trigger.labels.include.length > 0 && !trigger.labels.include.some(has)) {
      return `no label of labels.include (${trigger.labels.include.join(', ')})`;
    }
  }
  if (trigger.branches) {
    const ref = change.baseRef;
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
