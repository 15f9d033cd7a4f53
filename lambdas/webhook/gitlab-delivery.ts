import { type DecideDeps, decideApproval } from '../core/approvals.js';
import type { Change } from '../core/contracts.js';
import {
  changeFromMergeRequest,
  GITLAB_EVENTS,
  type MergeRequestEvent,
  MergeRequestEventSchema,
  type MergeRequestNoteEvent,
  MergeRequestNoteEventSchema,
  type MergeRequestRefs,
  mergeRequestDeliveryKey,
  mergeRequestSubject,
} from '../core/gitlab-events.js';
import { type HttpRequest, type HttpResponse, json, MAX_BODY_BYTES, withDeadline } from '../core/http.js';
import { isDismissReply } from '../core/review.js';
import { verifyGitlabToken } from '../core/signatures.js';
import { parseCommand } from '../core/slack.js';
import { matchWorkflows, preconditions, type WorkflowTrigger } from '../core/triggers.js';
import { admitDelivery, type DeliveryRules, isAnswer, type StartDeps, start, unavailable } from './start.js';

/** What the GitLab route needs (wired by the Lambda handler and the local server). */
export interface GitlabDeliveryDeps extends StartDeps {
  /**
   * The webhook's secret tokens: the current one and, during a rotation, the previous one
   * (compared with `X-Gitlab-Token`, see `verifyGitlabToken`).
   */
  secrets: () => Promise<readonly string[]>;
  workflows: readonly WorkflowTrigger[];
  /**
   * A merge request's SHAs, since the webhook payload has no base: GitLab's `diff_refs` in the
   * cloud, the merge base of the target branch in the local repository. `hint` is what the payload
   * says (`last_commit.id`, `target_branch`).
   * @throws any error: the delivery is answered 503 and nothing starts (GitLab does not retry on
   *   its own: the delivery shows as failed in the webhook's Recent events, where it can be resent)
   */
  refs(project: string, iid: number, hint: { headSha: string; targetBranch: string }): Promise<MergeRequestRefs>;
  /**
   * Whether the GitLab user may ask for a review (`/agentflow review`): Developer access or more to
   * `project` (a path such as `acme/app`).
   * @throws any error: answered 503
   */
  mayReview(project: string, userId: number, username: string): Promise<boolean>;
  /**
   * The merge request's current change (head, base, start SHAs) for `/agentflow review`.
   * @throws any error: answered 503
   */
  mergeRequest(project: string, iid: number): Promise<Change>;
  /** `/agentflow approve|reject <id>` in a merge request note. @default - answered "approvals are not configured" */
  approvals?: DecideDeps;
}

/** GitLab's delivery headers and secret token (https://docs.gitlab.com/user/project/integrations/webhooks/#delivery-headers, read 2026-11). */
const GITLAB_DELIVERIES: DeliveryRules = {
  eventHeader: 'x-gitlab-event',
  idHeader: 'x-gitlab-event-uuid',
  missing: 'X-Gitlab-Event or X-Gitlab-Event-UUID',
  contentType: 'send webhooks as application/json',
  verify: (secrets, _body, headers) => verifyGitlabToken(secrets, headers['x-gitlab-token']),
};

const USAGE = 'note ignored: use /agentflow approve <id>, /agentflow reject <id>, /agentflow review [--full] or /agentflow dismiss';

/**
 * Handles one GitLab webhook delivery (`POST /webhooks/gitlab`), in the same order as GitHub's:
 * body over {@link MAX_BODY_BYTES} → 413; missing `X-Gitlab-Event` / `X-Gitlab-Event-UUID` → 400;
 * Content-Type not `application/json` → 415; `X-Gitlab-Token` against the current and previous
 * secret → 401 (nothing else done); an event other than `Merge Request Hook` / `Note Hook` → 200
 * ignored; a body that is not JSON or not the event's shape → 400. Header names:
 * https://docs.gitlab.com/user/project/integrations/webhooks/#delivery-headers (read 2026-11).
 *
 * `Merge Request Hook`: the workflows whose trigger names `merge_request.<action>` or the neutral
 * event it stands for (`change.opened` for open / reopen, `change.updated` for update, `change.ready`
 * for a draft marked ready) start, one execution each, named from the event's identity (project,
 * merge request, action, head: `mergeRequestDeliveryKey`, not the UUID, which one push shares
 * between merge requests and a resend changes); the guard makes a resend or a concurrent
 * duplicate start nothing new (see {@link start}). An `update` without `object_attributes.oldrev`
 * (a title, description, label or draft edit: no new commits) starts nothing. The SHAs come from
 * `deps.refs` (a failure → 503, nothing started); filters (draft, bot, authors, labels, target
 * branch) give a SKIPPED run. `lines_changed` is checked by the state machine once the diff is read
 * (GitLab's payload has no line counts), not here.
 *
 * `Note Hook` on a merge request (`noteable_type` `MergeRequest`, action `create` or absent), first
 * line `/agentflow …`: `approve|reject <id>` decides an approval as the note's author;
 * `review [--full]` (Developer access or more, `deps.mayReview`) starts the workflows of
 * `merge_request.update` / `change.updated` again, whatever the filters say; a dismissal
 * (`isDismissReply`: `/agentflow dismiss` or `@agentflow dismiss`) answers that the next review reads
 * it; anything else answers the usage.
 */
export async function handleGitlabDelivery(req: HttpRequest, deps: GitlabDeliveryDeps): Promise<HttpResponse> {
  const admitted = await admitDelivery(req, GITLAB_DELIVERIES, deps);
  if (isAnswer(admitted)) return admitted;
  const { event } = admitted;

  if (!(GITLAB_EVENTS as readonly string[]).includes(event)) return json(200, { message: `event ${event} ignored: no route uses it` });
  let payload: unknown;
  try {
    payload = JSON.parse(admitted.body.toString('utf8'));
  } catch {
    return json(400, { message: 'body is not JSON' });
  }
  if (event === 'Note Hook') {
    const note = MergeRequestNoteEventSchema.safeParse(payload);
    if (!note.success) return json(400, { message: 'not a note event payload' });
    // One note is one command (its id; see mergeRequestDeliveryKey for why not the UUID).
    return handleNote(note.data, `gl-${note.data.project.id}-note-${note.data.object_attributes.id}`, deps);
  }
  const parsed = MergeRequestEventSchema.safeParse(payload);
  if (!parsed.success) return json(400, { message: 'not a merge request event payload' });
  return handleMergeRequest(parsed.data, deps);
}

async function handleMergeRequest(e: MergeRequestEvent, deps: GitlabDeliveryDeps): Promise<HttpResponse> {
  const mr = e.object_attributes;
  // A draft marked ready arrives as an update without commits: `ready` (workflows of `change.ready`).
  const markedReady = mr.action === 'update' && !mr.oldrev && e.changes?.draft?.previous === true && e.changes.draft.current === false;
  const action = markedReady ? 'ready' : mr.action;
  if (!action) return json(200, { message: 'merge request event without an action ignored' });
  if (action === 'update' && !mr.oldrev) {
    return json(200, { message: 'merge_request.update ignored: no new commits (a title, description, label or draft edit)' });
  }
  const matched = matchWorkflows('merge_request', action, deps.workflows);
  if (matched.length === 0) {
    const what = markedReady ? 'a draft marked ready (change.ready)' : `merge_request.${action}`;
    return json(200, { message: `${what} ignored: no workflow is triggered by it` });
  }
  const remaining = deps.remainingMs ?? (() => 8000);
  let refs: MergeRequestRefs;
  try {
    const hint = { headSha: mr.last_commit?.id ?? '', targetBranch: mr.target_branch };
    refs = await withDeadline(deps.refs(e.project.path_with_namespace, mr.iid, hint), remaining() - 2500);
  } catch {
    return unavailable();
  }
  const subject = mergeRequestSubject(e, refs);
  return start(mergeRequestDeliveryKey(e, action), matched, changeFromMergeRequest(e, refs), deps, (w) => preconditions(subject, w));
}

async function handleNote(e: MergeRequestNoteEvent, delivery: string, deps: GitlabDeliveryDeps): Promise<HttpResponse> {
  const first = e.object_attributes.note.trim().split('\n')[0]?.trim() ?? '';
  const action = e.object_attributes.action;
  const onMergeRequest = e.object_attributes.noteable_type === 'MergeRequest' && e.merge_request !== undefined;
  if (!onMergeRequest || (action !== undefined && action !== 'create') || e.object_attributes.system === true) {
    return json(200, { message: 'note ignored: not a new /agentflow command on a merge request' });
  }
  // Dismissals (`/agentflow dismiss`, `@agentflow dismiss`) are read from the notes by the next review's publisher.
  if (isDismissReply(e.object_attributes.note)) return json(200, { message: 'recorded by the next review' });
  if (!/^\/agentflow\b/.test(first)) return json(200, { message: 'note ignored: not a new /agentflow command on a merge request' });
  const args = first.replace(/^\/agentflow\s*/, '');
  const cmd = parseCommand(args);
  const username = e.user.username;
  const project = e.project.path_with_namespace;
  const iid = e.merge_request?.iid ?? 0;
  const remaining = deps.remainingMs ?? (() => 8000);
  switch (cmd.kind) {
    case 'approve':
    case 'reject': {
      if (!deps.approvals) return json(200, { message: 'approvals are not configured' });
      const decision = await decideApproval(cmd.id, cmd.kind, { user: { forge: 'gitlab', name: username } }, deps.approvals);
      return json(200, decision);
    }
    case 'review': {
      let allowed: boolean;
      try {
        allowed = await withDeadline(deps.mayReview(project, e.user.id, username), remaining() - 2500);
      } catch {
        return unavailable();
      }
      if (!allowed) return json(200, { outcome: 'forbidden', message: `@${username} may not request a review (needs Developer access)` });
      const workflows = matchWorkflows('merge_request', 'update', deps.workflows);
      if (workflows.length === 0) return json(200, { message: 'no workflow reviews merge requests' });
      let change: Change;
      try {
        change = await withDeadline(deps.mergeRequest(project, iid), remaining() - 2500);
      } catch {
        return unavailable();
      }
      // No preconditions: a person with Developer access asked (as on GitHub).
      return start(delivery, workflows, { ...change, action: 'review', ...(cmd.full ? { fullReview: true } : {}) }, deps);
    }
    default:
      return json(200, { message: USAGE });
  }
}
