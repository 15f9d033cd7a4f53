import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { WorkflowTrigger } from '../../lambdas/core/triggers.js';
import { handleGithubDelivery } from '../../lambdas/webhook/github-delivery.js';
import { breakerReport, costReport } from './costs.js';
import type { LocalRuntime } from './runtime.js';

/** Largest body the local server accepts: API Gateway HTTP API's 10 MB payload limit. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Options of {@link startLocalServer}. */
export interface LocalServerOptions {
  runtime: LocalRuntime;
  /** The GitHub webhook secret (AGENTFLOW_GITHUB_WEBHOOK_SECRET). */
  secret: string;
  /** @default 0 (an ephemeral port) */
  port?: number;
}

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

/** A running local server. */
export interface LocalServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/**
 * Serves AgentFlow's routes on 127.0.0.1: `POST /webhooks/github` (the webhook use case, starting
 * executions on the local runtime), `GET /runs`, `GET /runs/<execution>` (run records as JSON)
 * `GET /costs` (budgets and spend, as `agentflow costs --json`), `GET /breakers` and `GET /health`.
 */
export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const { runtime } = options;
  const workflows: WorkflowTrigger[] = [...runtime.options.workspace.workflows.values()].map((w) => ({
    id: w.id,
    events: w.trigger.events,
  }));
  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body, null, 2));
  };
  const server = createServer(async (req, res) => {
    try {
      const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
      if (req.method === 'POST' && path === '/webhooks/github') {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const c of req) {
          size += (c as Buffer).length;
          if (size > MAX_BODY_BYTES) {
            send(res, 413, { message: 'payload too large' });
            req.destroy();
            return;
          }
          chunks.push(c as Buffer);
        }
        const event = toHttpApiEvent(req, Buffer.concat(chunks));
        const r = await handleGithubDelivery(
          { headers: event.headers, body: event.body, isBase64Encoded: event.isBase64Encoded },
          { secret: async () => options.secret, workflows, starter: runtime.starter },
        );
        send(res, r.statusCode, r.body, r.headers);
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
  return {
    url,
    server,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
