import type { WebhookMergeRequestEventSchema, WebhookMergeRequestNoteEventSchema } from '@gitbeaker/rest';
import { z } from 'zod';
import type { Change } from './contracts.js';
import type { ChangeSubject } from './triggers.js';

/**
 * GitLab webhook payloads the ingress acts on: the merge request event (`X-Gitlab-Event: Merge
 * Request Hook`) and the comment event on a merge request (`Note Hook`). The schemas are subsets:
 * unknown fields are accepted and dropped (the execution input carries ids and SHAs only).
 * Source: https://docs.gitlab.com/user/project/integrations/webhook_events/ (read 2026-11)
 */

/** `X-Gitlab-Event` values the route acts on; any other event is answered 200 and ignored. */
export const GITLAB_EVENTS = ['Merge Request Hook', 'Note Hook'] as const;
export type GitlabEvent = (typeof GITLAB_EVENTS)[number];

/**
 * The values of `object_attributes.action` in a merge request event, in GitLab's order. `approved`
 * / `unapproved` are the merge request as a whole (all required approvals), `approval` /
 * `unapproval` one user's.
 * Source: https://docs.gitlab.com/user/project/integrations/webhook_events/#merge-request-events (read 2026-11)
 */
export const MERGE_REQUEST_ACTIONS = [
  'open',
  'close',
  'reopen',
  'update',
  'approved',
  'unapproved',
  'approval',
  'unapproval',
  'merge',
] as const;
export type MergeRequestAction = (typeof MERGE_REQUEST_ACTIONS)[number];

const UserSchema = z.object({
  id: z.number().int(),
  username: z.string(),
  /** Not in GitLab's documented payload; honoured when an instance sends it. */
  bot: z.boolean().optional(),
});
const LabelSchema = z.object({ title: z.string() });
const ProjectSchema = z.object({ id: z.number().int(), path_with_namespace: z.string() });

/** The fields of a merge request event we use. */
export const MergeRequestEventSchema = z.object({
  object_kind: z.literal('merge_request'),
  user: UserSchema,
  /** The target project: the one the webhook is configured on. */
  project: ProjectSchema,
  object_attributes: z.object({
    iid: z.number().int().nonnegative(),
    title: z.string().default(''),
    url: z.string().default(''),
    target_branch: z.string(),
    source_branch: z.string(),
    source_project_id: z.number().int(),
    target_project_id: z.number().int(),
    author_id: z.number().int().optional(),
    draft: z.boolean().optional(),
    work_in_progress: z.boolean().optional(),
    /** Absent on events GitLab sends without an action (a system update). */
    action: z.string().optional(),
    /** The head before a push: present only when the update brought code changes. */
    oldrev: z.string().optional(),
    last_commit: z.object({ id: z.string() }).optional(),
    labels: z.array(LabelSchema).nullish(),
  }),
  labels: z.array(LabelSchema).nullish(),
  /** What an `update` changed, `previous` → `current` (`draft` when a draft is marked ready). */
  changes: z.object({ draft: z.object({ previous: z.boolean().nullish(), current: z.boolean().nullish() }).optional() }).optional(),
});
export type MergeRequestEvent = z.infer<typeof MergeRequestEventSchema>;

/** The fields of a comment (note) event we use; `merge_request` is there when the note is on one. */
export const MergeRequestNoteEventSchema = z.object({
  object_kind: z.literal('note'),
  user: UserSchema,
  project: ProjectSchema,
  object_attributes: z.object({
    /** The note's id: one command is one note (the delivery key). */
    id: z.number().int(),
    note: z.string(),
    noteable_type: z.string(),
    /** `create` or `update` (GitLab 16.11 and later); absent before. */
    action: z.string().optional(),
    system: z.boolean().optional(),
  }),
  merge_request: z.object({ iid: z.number().int().nonnegative() }).optional(),
});
export type MergeRequestNoteEvent = z.infer<typeof MergeRequestNoteEventSchema>;

/** Type-level check that `T` is assignable to `U`; used below, nothing at run time. */
type Fits<T extends U, U> = T;
/**
 * Compile-time proof that gitbeaker's typing of GitLab's payloads passes our schemas' input types
 * (a field renamed or retyped on either side fails `tsc`).
 */
export type GitbeakerPayloadsFit = [
  Fits<WebhookMergeRequestEventSchema, z.input<typeof MergeRequestEventSchema>>,
  Fits<WebhookMergeRequestNoteEventSchema, z.input<typeof MergeRequestNoteEventSchema>>,
];

/**
 * GitLab's bot usernames: the user behind a project or group access token,
 * `project_{project_id}_bot_{random_string}` / `group_{group_id}_bot_{random_string}`
 * (`project_123_bot_4ffca233d8298ea1`), and the older `project_{project_id}_bot` /
 * `project_{project_id}_bot{count}` form. Sources:
 * https://docs.gitlab.com/user/project/settings/project_access_tokens/#bot-users-for-projects,
 * https://docs.gitlab.com/user/group/settings/group_access_tokens/#bot-users-for-groups,
 * https://gitlab.com/gitlab-org/gitlab/-/merge_requests/69033 (the older form) (read 2026-11)
 */
export const GITLAB_BOT_USERNAME = /^(?:project|group)_\d+_bot(?:\d*|_[0-9a-z]+)$/i;
/**
 * GitLab's internal users (lower case): `ghost` stands for a deleted user's contributions; the
 * others are bots GitLab runs itself.
 * Source: https://docs.gitlab.com/administration/internal_users/ (read 2026-11)
 */
export const GITLAB_INTERNAL_USERS: ReadonlySet<string> = new Set([
  'ghost',
  'support-bot',
  'alert-bot',
  'visual-review-bot',
  'gitlab-security-bot',
  'gitlab-migration-bot',
  'gitlab-admin-bot',
  'gitlab-llm-bot',
]);

/**
 * Whether a GitLab user is a bot: `bot: true` when the payload says so, a username of an access
 * token's bot user ({@link GITLAB_BOT_USERNAME}) or one of {@link GITLAB_INTERNAL_USERS}.
 *
 * @example
 * isGitlabBot({ username: 'project_14_bot_3f2a9c' }); // true
 */
export function isGitlabBot(user: { username: string; bot?: boolean | undefined }): boolean {
  return user.bot === true || GITLAB_BOT_USERNAME.test(user.username) || GITLAB_INTERNAL_USERS.has(user.username.toLowerCase());
}

/** The labels of a merge request event: `object_attributes.labels`, else the top-level `labels`. */
const labelsOf = (e: MergeRequestEvent) => (e.object_attributes.labels ?? e.labels ?? []).map((l) => l.title);

/**
 * The merge request's author: the event's `user` when it is the author (`object_attributes.author_id`,
 * always on `open`), else the author `refs` read from the merge request — on an `update` the
 * event's `user` is whoever pushed, and the payload names the author by id only.
 */
function authorOf(e: MergeRequestEvent, refs?: MergeRequestRefs): { username: string; bot?: boolean | undefined } {
  const byUser = e.object_attributes.author_id === undefined || e.object_attributes.author_id === e.user.id;
  return byUser || !refs?.author ? e.user : { username: refs.author };
}

/** The filter view of a merge request event (see `preconditions`), its author from {@link authorOf}. */
export function mergeRequestSubject(e: MergeRequestEvent, refs?: MergeRequestRefs): ChangeSubject {
  const mr = e.object_attributes;
  const author = authorOf(e, refs);
  return {
    forge: 'gitlab',
    draft: mr.draft === true || mr.work_in_progress === true,
    author: author.username,
    bot: isGitlabBot(author),
    labels: labelsOf(e),
    baseRef: mr.target_branch,
  };
}

/**
 * A merge request's SHAs: GitLab's `diff_refs` in the cloud (`base_sha`, `start_sha`, `head_sha`),
 * locally the merge base of the target branch and the head. The webhook payload carries the head
 * (`last_commit.id`) but no base.
 */
export interface MergeRequestRefs {
  baseSha: string;
  startSha?: string;
  headSha: string;
  /** The merge request's author's username, when the lookup read the merge request (the cloud). */
  author?: string;
}

/**
 * The key that makes one merge request event start its executions once: the project, the merge
 * request, the action and the head it is about. Not `X-Gitlab-Event-UUID`: GitLab gives every hook
 * fired by one push the same UUID (two merge requests updated by one push would look like one
 * delivery) and a new one to a resend from its UI (a resend would run twice). Source:
 * gitlabhq `lib/gitlab/web_hooks/recursion_detection/uuid.rb` (read 2026-11). Also the prefix of
 * the execution names (at most 48 characters kept: see `executionName`).
 * @example mergeRequestDeliveryKey(event, 'update') // 'gl-15-42-update-da1560886d4f'
 */
export function mergeRequestDeliveryKey(e: MergeRequestEvent, action: string): string {
  const head = (e.object_attributes.last_commit?.id ?? '').slice(0, 12);
  return `gl-${e.project.id}-${e.object_attributes.iid}-${action}-${head}`;
}

/**
 * The run's change from a merge request event and the SHAs `refs` resolved: `repository` is the
 * target project's path, `number` the merge request's iid, `fork` whether the source project is
 * another one than the target.
 */
export function changeFromMergeRequest(e: MergeRequestEvent, refs: MergeRequestRefs): Change {
  const mr = e.object_attributes;
  return {
    forge: 'gitlab',
    repository: e.project.path_with_namespace,
    number: mr.iid,
    title: mr.title,
    author: authorOf(e, refs).username,
    url: mr.url,
    action: mr.action ?? 'update',
    baseSha: refs.baseSha,
    ...(refs.startSha ? { startSha: refs.startSha } : {}),
    headSha: refs.headSha,
    baseRef: mr.target_branch,
    headRef: mr.source_branch,
    fork: mr.source_project_id !== mr.target_project_id,
  };
}
