import { type DecideDeps, decideApproval } from '../core/approvals.js';
import type { Change } from '../core/contracts.js';
import {
  bodyBytes,
  type HttpRequest,
  type HttpResponse,
  json,
  lowerHeaders,
  MAX_BODY_BYTES,
  mediaType,
  rawBody,
  UNAUTHORIZED,
  withDeadline,
} from '../core/http.js';
import type { ChangeLookup } from '../core/ports.js';
import { verifyGithubSignature } from '../core/signatures.js';
import { parseCommand } from '../core/slack.js';
import {
  changeFromPullRequest,
  IssueCommentEventSchema,
  matchWorkflows,
  PullRequestEventSchema,
  preconditions,
  pullRequestSubject,
  satisfies,
  TRUSTED_ASSOCIATIONS,
  type WorkflowTrigger,
} from '../core/triggers.js';
import { type DeliveryRules, type StartDeps, start, unavailable } from './start.js';

export type { HttpRequest, HttpResponse } from '../core/http.js';

/** GitHub's delivery headers and HMAC signature (https://docs.github.com/en/webhooks/webhook-events-and-payloads#delivery-headers, 2026-11). */
const _GITHUB_DELIVERIES: DeliveryRules = {
  eventHeader: 'x-github-event',
  idHeader: 'x-github-delivery',
  missing: 'X-GitHub-Event or X-GitHub-Delivery',
  contentType: 'send webhooks as application/json (the webhook\'s "Content type" setting)',
  verify: (secrets, body, headers) => verifyGithubSignature(secrets, body, headers['x-hub-signature-256']),
};

/** GitHub events the route acts on; any other event is answered 200 and ignored. */
export const GITHUB_EVENTS = ['pull_request', 'issue_comment'] as const;

export interface GithubDeliveryDeps extends StartDeps {
  /**
   * The webhook secrets: the current one and, during a rotation, the previous one (Secrets
   * Manager `webhookSecret` and `previousWebhookSecret` in the cloud, environment variables locally).
   */
  secrets: () => Promise<readonly string[]>;
  workflows: readonly WorkflowTrigger[];
  /** `/agentflow approve|reject <id>` on a pull request. */
  approvals?: DecideDeps;
  /** `/agentflow review` on a pull request: the pull request's current head and base. */
  changes?: ChangeLookup;
}

/**
 * Handles one GitHub webhook delivery (`POST /webhooks/github`).
 *
 * Order, each step before any later work: body over {@link MAX_BODY_BYTES} → 413; missing
 * `X-GitHub-Event` / `X-GitHub-Delivery` → 400; Content-Type not `application/json` → 415;
 * `X-Hub-Signature-256` checked on the raw bytes (base64-encoded bodies decoded first) against the
 * current and the previous secret → 401; `ping` → 200; an event no route uses → 200 ignored; then
 * the JSON is parsed (400 if it is not JSON or not the event's shape). Error bodies are opaque.
 *
 * `pull_request`: the workflows whose trigger names the action (or the forge-neutral event it
 * stands for: `change.opened`, `change.updated`) and whose `lines_changed` holds for
 * the event's additions + deletions are started, one execution each, named from the delivery id;
 * a pull request the trigger's filters leave out (draft, bot author, authors, labels, branches: see
 * {@link preconditions}) is started with `skip` set to the reason, so it leaves a SKIPPED run;
 * the guard makes a redelivery (sequential or concurrent) answer 200 `duplicate` with one set of
 * executions; a failed StartExecution answers 503 and keeps nothing, so a redelivery starts them.
 * Answers: 202 `{ delivery, executions }`, 200 `{ duplicate: true, ... }`.
 *
 * `issue_comment` on a pull request, first line `/agentflow …`: `approve|reject <id>` decides an
 * approval as the comment's author (GitHub login or team); `review` (by an owner, member or
 * collaborator) starts the workflows triggered by `pull_request.synchronize` (or `change.updated`) again, whatever the
 * pull-request filters say.
 */
export async function handleGithubDelivery(req: HttpRequest, deps: GithubDeliveryDeps): Promise<HttpResponse> {
  if (bodyBytes(req) > MAX_BODY_BYTES) return json(413, { message: `payload too large (limit ${MAX_BODY_BYTES} bytes)` });
  const h = lowerHeaders(req.headers);
  const event = h['x-github-event'];
  const delivery = h['x-github-delivery'];
  if (!event || !delivery) return json(400, { message: 'missing X-GitHub-Event or X-GitHub-Delivery header' });
  if (mediaType(h['content-type']) !== 'application/json') {
    return json(415, { message: 'send webhooks as application/json (the webhook\'s "Content type" setting)' });
  }
  const body = rawBody(req);
  const remaining = deps.remainingMs ?? (() => 8000);
  let secrets: readonly string[];
  try {
    secrets = await withDeadline(deps.secrets(), remaining() - 1500);
  } catch {
    return unavailable();
  }
  if (!verifyGithubSignature(secrets, body, h['x-hub-signature-256'])) return UNAUTHORIZED();

  if (event === 'ping') return json(200, { message: 'pong' });
  if (!(GITHUB_EVENTS as readonly string[]).includes(event)) return json(200, { message: `event ${event} ignored: no route uses it` });
  let payload: unknown;
  try {
    payload = JSON.parse(body.toString('utf8'));
  } catch {
    return json(400, { message: 'body is not JSON' });
  }
  if (event === 'issue_comment') return handleComment(payload, delivery, deps);

  const parsed = PullRequestEventSchema.safeParse(payload);
  if (!parsed.success) return json(400, { message: 'not a pull_request event payload' });
  const matched = matchWorkflows(event, parsed.data.action, deps.workflows);
  if (matched.length === 0) {
    return json(200, { message: `pull_request.${parsed.data.action} ignored: no workflow is triggered by it` });
  }
  const { additions, deletions } = parsed.data.pull_request;
  const lines = additions !== undefined && deletions !== undefined ? additions + deletions : undefined;
  const wanted = matched.filter((w) => !w.linesChanged || lines === undefined || satisfies(lines, w.linesChanged));
  if (wanted.length === 0) {
    return json(200, {
      message: `pull_request.${parsed.data.action} ignored: ${lines} changed lines do not meet lines_changed of ${matched.map((w) => w.id).join(', ')}`,
    });
  }
  const pr = parsed.data;
  const subject = pullRequestSubject(pr);
  return start(delivery, wanted, changeFromPullRequest(pr), deps, (w) => preconditions(subject, w));
}

async function handleComment(payload: unknown, delivery: string, deps: GithubDeliveryDeps): Promise<HttpResponse> {
  const parsed = IssueCommentEventSchema.safeParse(payload);
  if (!parsed.success) return json(400, { message: 'not an issue_comment event payload' });
  const e = parsed.data;
  const first = e.comment.body.trim().split('\n')[0]?.trim() ?? '';
  if (e.action !== 'created' || !e.issue.pull_request || !/^\/agentflow\b/.test(first)) {
    return json(200, { message: 'comment ignored: not an /agentflow command on a pull request' });
  }
  const cmd = parseCommand(first.replace(/^\/agentflow\s*/, ''));
  const login = e.comment.user.login;
  switch (cmd.kind) {
    case 'approve':
    case 'reject': {
      if (!deps.approvals) return json(200, { message: 'approvals are not configured' });
      const decision = await decideApproval(cmd.id, cmd.kind, { user: { forge: 'github', name: login } }, deps.approvals);
      return json(200, decision);
    }
    case 'review': {
      if (!(TRUSTED_ASSOCIATIONS as readonly string[]).includes(e.comment.author_association)) {
        return json(200, { outcome: 'forbidden', message: `@${login} may not request a review (needs write access)` });
      }
      const workflows = matchWorkflows('pull_request', 'synchronize', deps.workflows);
      if (!deps.changes || workflows.length === 0) return json(200, { message: 'no workflow reviews pull requests' });
      let change: Change;
      try {
        change = await deps.changes.pullRequest(e.repository.full_name, e.issue.number);
      } catch {
        return unavailable();
      }
      // No preconditions here: a person with write access asked for this review, so a draft, a
      // bot's pull request or a filtered label or branch is reviewed anyway (the filters keep
      // unwanted reviews from starting on their own, not from being asked for).
      return start(delivery, workflows, { ...change, action: 'review', ...(cmd.full ? { fullReview: true } : {}) }, deps);
    }
    default:
      return json(200, { message: 'comment ignored: use /agentflow approve <id>, /agentflow reject <id> or /agentflow review [--full]' });
  }
}
