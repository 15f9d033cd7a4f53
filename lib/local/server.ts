import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { z } from 'zod';
import { actorOf } from '../../lambdas/core/approvals.js';
import { warmTokenizers } from '../../lambdas/core/tokenizer.js';
import type { WorkflowTrigger } from '../../lambdas/core/triggers.js';
import { INGRESS_ROUTES, type IngressDeps, routeIngress } from '../../lambdas/webhook/routes.js';
import { webhookTrigger } from '../workflow/index.js';
import { breakerReport, costReport } from './costs.js';
import { bearerMatches, newLocalApiToken } from './local-api-token.js';
import type { LocalRuntime } from './runtime.js';

/** Largest body the local server accepts: API Gateway HTTP API's 10 MB payload limit. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Options of {@link startLocalServer}. */
export interface LocalServerOptions {
  runtime: LocalRuntime;
  /** The GitHub webhook secret (AGENTFLOW_GITHUB_WEBHOOK_SECRET). */
  secret: string;
  /** The previous GitHub webhook secret during a rotation (AGENTFLOW_GITHUB_WEBHOOK_SECRET_PREVIOUS). */
  previousSecret?: string;
  /** The GitLab webhook's secret token (AGENTFLOW_GITLAB_WEBHOOK_SECRET); without it `/webhooks/gitlab` answers 503. */
  gitlabSecret?: string;
  /** The previous GitLab secret token during a rotation (AGENTFLOW_GITLAB_WEBHOOK_SECRET_PREVIOUS). */
  previousGitlabSecret?: string;
  /** The Slack app's signing secret (AGENTFLOW_SLACK_SIGNING_SECRET); without it the Slack routes answer 503. */
  slackSigningSecret?: string;
  /** The CI callback secret (AGENTFLOW_CI_SECRET); without it `/webhooks/ci` answers 503. */
  ciSecret?: string;
  /**
   * The request workflow `/agentflow ask <request>` asks when the user names none (`askWorkflow`
   * of cdk.json `environments.local`). @default - the only request workflow
   */
  askWorkflow?: string;
  /** @default 0 (an ephemeral port) */
  port?: number;
  /**
   * The bearer token the local API routes require (`Authorization: Bearer <token>`).
   * @default a new random token ({@link LocalServer.token})
   */
  token?: string;
}

/** Local default GitHub webhook secret when AGENTFLOW_GITHUB_WEBHOOK_SECRET is not set. */
export const DEV_WEBHOOK_SECRET = 'agentflow-local-dev-secret';

/**
 * The webhook secrets of the local server from the environment — one function for `serve` and
 * the local API of a waiting `run`: AGENTFLOW_GITHUB_WEBHOOK_SECRET (default
 * {@link DEV_WEBHOOK_SECRET}), AGENTFLOW_GITHUB_WEBHOOK_SECRET_PREVIOUS, AGENTFLOW_GITLAB_WEBHOOK_SECRET
 * (and `_PREVIOUS`), AGENTFLOW_SLACK_SIGNING_SECRET and AGENTFLOW_CI_SECRET. `notes` says what is missing, one line each.
 */
export function localServerSecrets(env: NodeJS.ProcessEnv = process.env): {
  secrets: Omit<LocalServerOptions, 'runtime' | 'port' | 'token'>;
  notes: string[];
} {
  const github = env.AGENTFLOW_GITHUB_WEBHOOK_SECRET;
  const previous = env.AGENTFLOW_GITHUB_WEBHOOK_SECRET_PREVIOUS;
  const gitlab = env.AGENTFLOW_GITLAB_WEBHOOK_SECRET;
  const previousGitlab = env.AGENTFLOW_GITLAB_WEBHOOK_SECRET_PREVIOUS;
  const slack = env.AGENTFLOW_SLACK_SIGNING_SECRET;
  const ci = env.AGENTFLOW_CI_SECRET;
  const notes = [
    ...(github ? [] : [`AGENTFLOW_GITHUB_WEBHOOK_SECRET is not set: using the development secret "${DEV_WEBHOOK_SECRET}"`]),
    ...(gitlab ? [] : ['AGENTFLOW_GITLAB_WEBHOOK_SECRET is not set: /webhooks/gitlab answers 503']),
    ...(slack ? [] : ['AGENTFLOW_SLACK_SIGNING_SECRET is not set: the Slack routes answer 503']),
    ...(ci ? [] : ['AGENTFLOW_CI_SECRET is not set: /webhooks/ci answers 503']),
  ];
  return {
    secrets: {
      secret: github || DEV_WEBHOOK_SECRET,
      ...(previous ? { previousSecret: previous } : {}),
      ...(gitlab ? { gitlabSecret: gitlab } : {}),
      ...(gitlab && previousGitlab ? { previousGitlabSecret: previousGitlab } : {}),
      ...(slack ? { slackSigningSecret: slack } : {}),
      ...(ci ? { ciSecret: ci } : {}),
    },
    notes,
  };
}

/**
 * Why a request to a local API route (every route but the signed webhook routes) is refused, if it
 * is: a `Host` other than this server's loopback names (DNS rebinding) or an `Origin` (a browser
 * page) → 403; no `Authorization: Bearer <token>` → 401 (`GET /health` needs none); a JSON route
 * without `Content-Type: application/json` → 415.
 */
export function refuseLocalRequest(
  req: Pick<IncomingMessage, 'method' | 'headers'>,
  path: string,
  port: number,
  token: string,
): { status: 401 | 403 | 415; message: string } | undefined {
  const allowed = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
  if (!allowed.includes((req.headers.host ?? '').toLowerCase())) {
    return { status: 403, message: `refused: Host must be one of ${allowed.join(', ')}` };
  }
  if (req.headers.origin !== undefined) return { status: 403, message: 'refused: the local API does not answer browsers (Origin)' };
  if (req.method === 'GET' && path === '/health') return undefined;
  if (!bearerMatches(req.headers.authorization, token)) {
    return { status: 401, message: 'send Authorization: Bearer <token> (the token is in serve.json in the state folder)' };
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') return { status: 415, message: 'send Content-Type: application/json' };
  }
  return undefined;
}

/** The workflows as the ingress routes see them. */
export function workflowTriggers(runtime: LocalRuntime): WorkflowTrigger[] {
  return [...runtime.options.workspace.workflows.values()].map(webhookTrigger);
}

/** The ingress routes' dependencies on the local runtime (the same use cases the webhook Lambda runs). */
export function localIngress(runtime: LocalRuntime, options: Omit<LocalServerOptions, 'runtime' | 'port'>): IngressDeps {
  const workflows = workflowTriggers(runtime);
  const secrets = [options.secret, options.previousSecret ?? ''].filter(Boolean);
  const slack = options.slackSigningSecret;
  const ci = options.ciSecret;
  const gitlab = [options.gitlabSecret ?? '', options.previousGitlabSecret ?? ''].filter(Boolean);
  const changes = runtime.changeLookup;
  return {
    github: {
      secrets: async () => secrets,
      workflows,
      starter: runtime.starter,
      guard: runtime.guard,
      approvals: runtime.decideDeps,
      changes: runtime.changeLookup,
    },
    ...(gitlab.length > 0
      ? {
          gitlab: {
            secrets: async () => gitlab,
            workflows,
            starter: runtime.starter,
            guard: runtime.guard,
            approvals: runtime.decideDeps,
            // The payload has no base: the merge base of the target branch and the head in the local repository.
            refs: async (project, _iid, hint) => {
              const c = await changes.refs(project, hint.targetBranch, hint.headSha);
              return { baseSha: c.baseSha, headSha: c.headSha };
            },
            // No GitLab here to ask: on 127.0.0.1, whoever holds the secret token may ask for a review.
            mayReview: async () => true,
            // The merge request of the latest local run of it (a GitHub pull request of the same name is another change).
            mergeRequest: async (project, iid) => {
              const change = await changes.pullRequest(project, iid);
              if (change.forge !== 'gitlab') throw new Error(`merge request ${project}!${iid} has no local run yet`);
              return change;
            },
          },
        }
      : {}),
    ...(slack
      ? {
          slack: {
            signingSecrets: async () => [slack],
            workflows,
            groups: runtime.options.groups ?? {},
            starter: runtime.starter,
            runs: runtime.runs,
            changes: runtime.changeLookup,
            approvals: runtime.decideDeps,
            threads: runtime.notifier,
            ...(options.askWorkflow ? { askWorkflow: options.askWorkflow } : {}),
          },
        }
      : {}),
    ...(ci ? { ci: { secrets: async () => [ci], approvals: runtime.decideDeps } } : {}),
  };
}

/** `POST /approvals/<id>` body: the local stand-in for a click (serve binds 127.0.0.1 only). */
const LocalDecisionSchema = z.strictObject({ decision: z.enum(['approve', 'reject']), as: z.string().min(1) });

/**
 * Builds the API Gateway HTTP API event (payload format 2.0) for a request, as the cloud route
 * hands it to the webhook Lambda: lower-cased headers; a body that is not UTF-8 text is base64.
 */
export function toHttpApiEvent(req: IncomingMessage, body: Buffer): APIGatewayProxyEventV2 {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  const text = body.toString('utf8');
  const isText = Buffer.from(text, 'utf8').equals(body);
  const now = new Date();
  return {
    version: '2.0',
    routeKey: `${req.method} ${url.pathname}`,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: headers.host ?? '127.0.0.1',
      domainPrefix: 'local',
      http: {
        method: req.method ?? 'GET',
        path: url.pathname,
        protocol: 'HTTP/1.1',
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: `local-${now.getTime()}`,
      routeKey: `${req.method} ${url.pathname}`,
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    ...(body.length > 0 ? { body: isText ? text : body.toString('base64') } : {}),
    isBase64Encoded: body.length > 0 && !isText,
  };
}

/** Reads a request body; undefined when it exceeds {@link MAX_BODY_BYTES}. */
async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A running local server. */
export interface LocalServer {
  url: string;
  /** The bearer token of the local API routes. */
  token: string;
  server: Server;
  close(): Promise<void>;
}

/**
 * Serves AgentFlow's routes on 127.0.0.1: the ingress routes of the HTTP API (`POST
 * /webhooks/github`, `/webhooks/slack/commands`, `/webhooks/slack/interactions`, `/webhooks/ci`,
 * the same use cases as the webhook Lambda, starting executions on the local runtime), and local
 * tools' API: `GET /runs`, `GET /runs/<execution>`, `GET /costs`, `POST /costs/sweep`, `GET /breakers`, `GET /approvals`
 * (pending, no task tokens), `POST /approvals/<id>` `{ decision, as }` (decide as a Slack user id
 * or `@github-login`) and `GET /health`. The webhook routes check their signatures; every other
 * route passes {@link refuseLocalRequest} first (loopback `Host`, no `Origin`, the bearer token —
 * except `/health` —, JSON bodies).
 */
export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const { runtime } = options;
  // The runs a delivery starts count tokens; building the encoders in the first request's path
  // would hold the event loop for over a second.
  warmTokenizers();
  runtime.validateAll();
  const token = options.token ?? newLocalApiToken();
  const ingress = localIngress(runtime, options);
  const workflows = ingress.github.workflows;
  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body, null, 2));
  };
  const server = createServer(async (req, res) => {
    try {
      const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
      if (req.method === 'POST' && (INGRESS_ROUTES as readonly string[]).includes(path)) {
        const body = await readBody(req);
        if (!body) {
          send(res, 413, { message: 'payload too large' });
          req.destroy();
          return;
        }
        const event = toHttpApiEvent(req, body);
        const r = await routeIngress(path, { headers: event.headers, body: event.body, isBase64Encoded: event.isBase64Encoded }, ingress);
        send(res, r.statusCode, r.body, r.headers);
        return;
      }
      const refused = refuseLocalRequest(req, path, (server.address() as AddressInfo).port, token);
      if (refused) {
        send(res, refused.status, { message: refused.message }, refused.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
        return;
      }
      if (req.method === 'GET' && path === '/approvals') {
        send(res, 200, { approvals: await runtime.listApprovals() });
        return;
      }
      const a = /^\/approvals\/([A-Za-z0-9_-]{1,64})$/.exec(path);
      if (req.method === 'POST' && a?.[1]) {
        const body = await readBody(req);
        if (!body) {
          send(res, 413, { message: 'payload too large' });
          req.destroy();
          return;
        }
        let json: unknown;
        try {
          json = JSON.parse(body.toString('utf8') || '{}');
        } catch {
          json = undefined;
        }
        const parsed = LocalDecisionSchema.safeParse(json);
        if (!parsed.success) {
          send(res, 400, {
            message: 'send { "decision": "approve" | "reject", "as": "<Slack user id, @github-login or gitlab:@username>" }',
          });
          return;
        }
        const actor = actorOf(parsed.data.as);
        if (!actor) {
          send(res, 400, { message: '"as" must be a Slack user id (U…), @github-login or gitlab:@username' });
          return;
        }
        send(res, 200, await runtime.decide(a[1], parsed.data.decision, actor));
        return;
      }
      if (req.method === 'GET' && path === '/runs') {
        send(res, 200, { runs: await runtime.runs.list(100) });
        return;
      }
      const m = /^\/runs\/([A-Za-z0-9_-]{1,80})$/.exec(path);
      if (req.method === 'GET' && m?.[1]) {
        const run = await runtime.runs.get(m[1]);
        if (run) send(res, 200, run);
        else send(res, 404, { message: `no run ${m[1]}` });
        return;
      }
      if (req.method === 'GET' && path === '/costs') {
        send(res, 200, await costReport(runtime.ledger, runtime.gatewayConfig.budgets));
        return;
      }
      if (req.method === 'POST' && path === '/costs/sweep') {
        // Releases the budget holds whose lease expired (crashed calls); the folder is this process's.
        send(res, 200, { released: await runtime.ledger.sweepAll(Date.now()) });
        return;
      }
      if (req.method === 'GET' && path === '/breakers') {
        send(res, 200, { breakers: await breakerReport(runtime.breakers) });
        return;
      }
      if (req.method === 'GET' && path === '/health') {
        send(res, 200, { ok: true, workflows: workflows.map((w) => w.id), providers: runtime.modes });
        return;
      }
      send(res, 404, { message: `no route ${req.method} ${path}` });
    } catch (e) {
      send(res, 500, { message: (e as Error).message });
    }
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, '127.0.0.1', () => ok());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // A waiting CI gate prints where CI reports and the secret it signs with.
  runtime.notifier.ciCallback = { url: `${url}/webhooks/ci`, ...(options.ciSecret ? { secret: options.ciSecret } : {}) };
  return {
    url,
    token,
    server,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
