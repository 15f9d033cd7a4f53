import { verify } from '@octokit/webhooks-methods';
import type { ExecutionInput } from '../core/contracts.js';
import type { ExecutionStarter } from '../core/ports.js';
import { changeFromPullRequest, executionName, matchWorkflows, PullRequestEventSchema, type WorkflowTrigger } from '../core/triggers.js';

/** An HTTP request as API Gateway's HTTP API (payload format 2.0) hands it over. */
export interface HttpRequest {
  headers: Record<string, string | undefined>;
  body?: string | undefined;
  isBase64Encoded?: boolean | undefined;
}

/** The HTTP answer, in API Gateway's Lambda proxy format. */
export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

export interface GithubDeliveryDeps {
  /** The webhook secret (Secrets Manager in the cloud, an environment variable locally). */
  secret: () => Promise<string>;
  workflows: readonly WorkflowTrigger[];
  starter: ExecutionStarter;
}

const json = (statusCode: number, body: unknown): HttpResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

/**
 * Handles one GitHub webhook delivery.
 *
 * Verifies `X-Hub-Signature-256` (HMAC-SHA256 of the raw body; base64-encoded bodies are decoded
 * first) before parsing anything, then starts one execution per workflow whose trigger names the
 * event's action, named from `X-GitHub-Delivery`.
 *
 * Answers: 400 missing headers or a body that is not a pull_request event; 401 missing or bad
 * signature (nothing started); 200 for events no workflow wants (nothing started); 202 with
 * `{ executions: [{ workflow, name, started }] }`.
 */
export async function handleGithubDelivery(req: HttpRequest, deps: GithubDeliveryDeps): Promise<HttpResponse> {
  const h = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const event = h['x-github-event'];
  const delivery = h['x-github-delivery'];
  if (!event || !delivery) return json(400, { message: 'missing X-GitHub-Event or X-GitHub-Delivery header' });
  const signature = h['x-hub-signature-256'];
  if (!signature) return json(401, { message: 'unauthorized' });
  const body = req.isBase64Encoded ? Buffer.from(req.body ?? '', 'base64').toString('utf8') : (req.body ?? '');
  let valid = false;
  try {
    valid = await verify(await deps.secret(), body, signature);
  } catch {
    valid = false;
  }
  if (!valid) return json(401, { message: 'unauthorized' });

  if (event === 'ping') return json(200, { message: 'pong' });
  let payload: unknown;
  try {
    payload = JSON.parse(body);
  } catch {
    return json(400, { message: 'body is not JSON' });
  }
  if (event !== 'pull_request') return json(200, { message: `event ${event} ignored: no workflow handles it` });
  const parsed = PullRequestEventSchema.safeParse(payload);
  if (!parsed.success) return json(400, { message: 'not a pull_request event payload' });
  const ids = matchWorkflows(event, parsed.data.action, deps.workflows);
  if (ids.length === 0) {
    return json(200, { message: `pull_request.${parsed.data.action} ignored: no workflow is triggered by it` });
  }
  const change = changeFromPullRequest(parsed.data);
  const executions = [];
  for (const workflow of ids) {
    const name = executionName(delivery, workflow);
    const input: ExecutionInput = { runId: name, workflow, change };
    const r = await deps.starter.start(workflow, name, input);
    executions.push({ workflow, name: r.name, started: r.started });
  }
  return json(202, { executions });
}
