import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server as LowLevelServer } from '@modelcontextprotocol/sdk/server/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DynamoBreakerStore } from '../../../lambdas/adapters/gateway-store.js';
import { type McpServerConfig, McpToolbox, toolBreakerProvider } from '../../../lambdas/adapters/mcp-toolbox.js';
import { breakerKey, CircuitBreaker } from '../../../lambdas/core/breaker.js';
import { GatewayConfigSchema } from '../../../lambdas/core/gateway-config.js';
import { mcpHeadersSource } from '../../../lambdas/core/mcp-headers.js';
import { MAX_TOOL_OUTPUT_CHARS, parseToolName, toolName } from '../../../lambdas/core/tools.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../../../lib/local/runtime.js';
import { PROJECT_ROOT } from '../../../lib/workspace.js';

/*
 * McpToolbox against a real MCP server over stdio (test/standins/mcp-issue-tracker.ts, the SDK's
 * own server) with the gateway's DynamoDB circuit breaker on dynalite.
 */

const TRACKER = join(PROJECT_ROOT, 'test', 'standins', 'mcp-issue-tracker.ts');
const tracker = (allow: McpServerConfig['allow'], name = 'issues'): McpServerConfig => ({
  name,
  command: process.execPath,
  args: ['--import', 'tsx', TRACKER],
  env: { NODE_PATH: join(PROJECT_ROOT, 'node_modules') },
  allow,
});

let table: LocalTable;
let breakers: DynamoBreakerStore;
const breaker = (clock: () => number = Date.now) =>
  new CircuitBreaker(
    breakers,
    GatewayConfigSchema.parse({ breaker: { failureThreshold: 2, cooldownSeconds: 60 } }).breaker,
    clock,
    () => crypto.randomUUID(),
    60_000,
  );

beforeAll(async () => {
  table = await startLocalTable();
  breakers = new DynamoBreakerStore(table.doc, LOCAL_TABLE);
});
afterAll(async () => {
  await table?.stop();
});

describe('Function: toolName / parseToolName', () => {
  it('names a tool <server>__<tool> within the models’ [a-zA-Z0-9_-]{1,64}, and reads it back', () => {
    expect(toolName('issues', 'create_ticket')).toBe('issues__create_ticket');
    expect(parseToolName('issues__create_ticket')).toEqual({ server: 'issues', tool: 'create_ticket' });
    expect(parseToolName('create_ticket')).toBeUndefined();
    expect(() => toolName('issues', 'create ticket')).toThrow(/cannot be named to a model/);
  });
});

describe('Class: McpToolbox', () => {
  it('offers only the allowed tools and calls one, passing the requester to the server', async () => {
    const toolbox = new McpToolbox([tracker([{ name: 'create_ticket', write: true }, { name: 'whoami' }])], {
      timeoutMs: 20_000,
      allowWrite: true,
    });
    try {
      const defs = await toolbox.definitions();
      expect(defs.map((d) => [d.name, d.write])).toEqual([
        ['issues__create_ticket', true],
        ['issues__whoami', false],
      ]);
      expect(defs[0]?.inputSchema).toMatchObject({ type: 'object', properties: { title: { type: 'string' } } });
      const created = await toolbox.call('issues__create_ticket', { title: 'Crash in PR 42' });
      expect(created).toMatchObject({ ok: true, output: 'Created ISSUE-1: Crash in PR 42', input: '{"title":"Crash in PR 42"}' });
      expect(await toolbox.call('issues__whoami', {}, { requester: 'U024BE7LH' })).toMatchObject({ ok: true, output: 'U024BE7LH' });
    } finally {
      await toolbox.close();
    }
  }, 60_000);

  it('neither offers nor calls a write tool unless the phase allows writes (an approval gate first)', async () => {
    const toolbox = new McpToolbox([tracker([{ name: 'create_ticket', write: true }, { name: 'whoami' }])], { timeoutMs: 20_000 });
    try {
      expect((await toolbox.definitions()).map((d) => d.name)).toEqual(['issues__whoami']);
      expect(await toolbox.call('issues__create_ticket', { title: 'x' })).toMatchObject({
        ok: false,
        refused: true,
        error: 'tool "issues__create_ticket" changes something and is not allowed here (an approval gate must come first)',
      });
      expect(() => new McpToolbox([{ ...tracker([]), name: 'a__b' }])).toThrow(/must not contain "__"/);
    } finally {
      await toolbox.close();
    }
  }, 60_000);

  it('refuses a tool that is not on the allow-list, and says so, without calling the server', async () => {
    const toolbox = new McpToolbox([tracker([{ name: 'whoami' }])], { timeoutMs: 20_000 });
    try {
      const r = await toolbox.call('issues__create_ticket', { title: 'x' });
      expect(r).toMatchObject({ ok: false, refused: true, error: 'tool "issues__create_ticket" is not on this agent\'s allow-list' });
      expect(await toolbox.call('other__whoami', {})).toMatchObject({ refused: true });
    } finally {
      await toolbox.close();
    }
  }, 60_000);

  it('redacts secrets and caps the size of what a tool answers', async () => {
    const toolbox = new McpToolbox([tracker([{ name: 'leak' }, { name: 'huge' }])], { timeoutMs: 20_000 });
    try {
      const leak = await toolbox.call('issues__leak', {});
      expect(leak.ok).toBe(true);
      expect(leak.output).toBe('config: token [REDACTED:github-token] and [REDACTED:aws-access-key]');
      expect(leak.redacted).toBe(2);
      const huge = await toolbox.call('issues__huge', {});
      expect(huge.output?.length).toBeLessThan(MAX_TOOL_OUTPUT_CHARS + 100);
      expect(huge.output).toContain('more characters cut by AgentFlow');
    } finally {
      await toolbox.close();
    }
  }, 60_000);

  it('fails a call that hangs, an error result, a crash and garbage with the reason, counts them on the breaker, and refuses while it is open', async () => {
    const b = breaker();
    const toolbox = new McpToolbox(
      [tracker([{ name: 'hang' }, { name: 'fail' }, { name: 'crash' }, { name: 'garbage' }, { name: 'whoami' }], 'flaky')],
      {
        breaker: b,
        timeoutMs: 20_000,
      },
    );
    try {
      // Started first: a call's timeout covers starting the server too.
      await toolbox.definitions();
      const hang = await toolbox.call('flaky__hang', {}, { timeoutMs: 500 });
      expect(hang).toMatchObject({ ok: false, error: expect.stringMatching(/flaky__hang failed: .*time/i) });
      const fail = await toolbox.call('flaky__fail', {});
      expect(fail).toMatchObject({ ok: false, error: 'flaky__fail answered an error: tracker is read-only today' });
      // An input the model broke is refused before the server (and never counts on the breaker).
      expect(await toolbox.call('flaky__whoami', { _unparsed: '{"x": ' })).toMatchObject({ ok: false, refused: true });
      const crash = await toolbox.call('flaky__crash', {});
      expect(crash).toMatchObject({ ok: false, error: expect.stringMatching(/^flaky__crash failed: /) });
      // The server is started again after the crash.
      expect(await toolbox.call('flaky__whoami', {})).toMatchObject({ ok: true, output: 'nobody' });
      const garbage = await toolbox.call('flaky__garbage', {}, { timeoutMs: 500 });
      expect(garbage.ok).toBe(false);
      // The hang's breaker opened after two failures of that tool (the threshold here): the next call is refused.
      await toolbox.call('flaky__hang', {}, { timeoutMs: 300 });
      const refused = await toolbox.call('flaky__hang', {});
      expect(refused).toMatchObject({ ok: false, refused: true, error: 'the circuit breaker of flaky__hang is open' });
      expect(await breakers.get(`${toolBreakerProvider('flaky')}#hang`)).toMatchObject({ state: 'open' });
      // An error result is the tool answering: its breaker stays closed.
      expect((await breakers.get(`${toolBreakerProvider('flaky')}#fail`))?.state ?? 'closed').toBe('closed');
    } finally {
      await toolbox.close();
    }
  }, 90_000);

  it('gives restarting a crashed server only the time the call has, not the 30 s default', async () => {
    // Prepare: a server that starts once; started again, it never speaks MCP (a hung restart).
    const started = join(tmpdir(), `mcp-restart-${crypto.randomUUID()}`);
    const once: McpServerConfig = {
      name: 'once',
      command: '/bin/sh',
      args: ['-c', 'if [ -e "$0" ]; then exec sleep 600; fi; touch "$0"; exec "$1" --import tsx "$2"', started, process.execPath, TRACKER],
      env: { NODE_PATH: join(PROJECT_ROOT, 'node_modules') },
      allow: [{ name: 'crash' }, { name: 'whoami' }, { name: 'create_ticket', write: true }],
    };
    const toolbox = new McpToolbox([once], { allowWrite: true });
    try {
      expect(await toolbox.call('once__whoami', {})).toMatchObject({ ok: true, output: 'nobody' });
      expect(await toolbox.call('once__crash', {})).toMatchObject({ ok: false });

      // Act
      const read = await toolbox.call('once__whoami', {}, { timeoutMs: 500 });
      const write = await toolbox.call('once__create_ticket', { title: 'x' }, { timeoutMs: 500 });

      // Assess: each call gave up within its own time (generous bound: the default would be 30 s).
      expect(read).toMatchObject({
        ok: false,
        error: expect.stringMatching(/^once__whoami failed: timed out after 500 ms \(connecting to MCP server "once"/),
      });
      expect(read.ms).toBeLessThan(5_000);
      // The write never reached the server, so its outcome is known: it did not happen.
      expect(write).toMatchObject({ ok: false, error: expect.stringMatching(/^once__create_ticket failed: timed out after 500 ms/) });
      expect(write.ms).toBeLessThan(5_000);
    } finally {
      await toolbox.close();
    }
  }, 60_000);

  it('tells the model a write tool that timed out or lost its server may have taken effect, and not to repeat it', async () => {
    // Prepare
    const toolbox = new McpToolbox(
      [
        tracker(
          [
            { name: 'hang', write: true },
            { name: 'crash', write: true },
          ],
          'writes',
        ),
      ],
      {
        timeoutMs: 20_000,
        allowWrite: true,
      },
    );
    try {
      // Started first: a call's timeout covers starting the server too.
      await toolbox.definitions();

      // Act
      const hang = await toolbox.call('writes__hang', {}, { timeoutMs: 500 });
      const crash = await toolbox.call('writes__crash', {});

      // Assess
      expect(hang).toMatchObject({
        ok: false,
        error: 'writes__hang timed out after 500 ms: whether it took effect is unknown; do not call it again without checking',
      });
      expect(crash).toMatchObject({
        ok: false,
        error: expect.stringMatching(
          /^writes__crash lost its server before answering \(.*\): whether it took effect is unknown; do not call it again without checking$/,
        ),
      });
    } finally {
      await toolbox.close();
    }
  }, 60_000);

  it('offers no tools from a server that cannot start, and says why', async () => {
    const toolbox = new McpToolbox([{ name: 'missing', command: '/nonexistent/mcp-server', allow: [{ name: 'x' }] }], { timeoutMs: 5_000 });
    try {
      expect(await toolbox.definitions()).toEqual([]);
      expect(toolbox.unavailable()).toEqual([{ server: 'missing', error: expect.any(String) }]);
      expect(await toolbox.call('missing__x', {})).toMatchObject({ ok: false, error: expect.stringMatching(/^missing__x failed: /) });
    } finally {
      await toolbox.close();
    }
  }, 30_000);
});

/** The bearer token the HTTP tracker accepts, and one it refuses. */
const TOKEN = 'trk_live_9f8e7d6c5b4a3210';
const WRONG = 'trk_live_0000stale0000';
/** A second header of the secret, in no shape a generic secret detector knows. */
const TENANT_KEY = 'acme-7c41e09b55';

/**
 * A tracker MCP server over streamable HTTP on 127.0.0.1 (the SDK's server, stateless: one server
 * and transport per request) that wants `Authorization: Bearer <TOKEN>`. Careless on purpose: its
 * 401 answer and its `echo_auth` tool repeat the headers it got (`Authorization`, `X-Tenant-Key`).
 */
/** Serves one MCP request statelessly with `mcp` (a new server per request, as the SDK's stateless example does). */
async function serveOnce(
  mcp: { connect(t: StreamableHTTPServerTransport): Promise<void>; close(): Promise<void> },
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on('close', () => {
    void transport.close();
    void mcp.close();
  });
  await mcp.connect(transport);
  await transport.handleRequest(req, res);
}

/** Listens on 127.0.0.1 (a free port) and says where, with a stop that closes every connection. */
async function listen(http: Server): Promise<{ url: string; stop: () => Promise<void> }> {
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    stop: () =>
      new Promise((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}

async function startHttpTracker(): Promise<{ url: string; stop: () => Promise<void> }> {
  const http: Server = createServer(async (req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res
        .writeHead(401, { 'content-type': 'text/plain' })
        .end(`invalid credentials: ${req.headers.authorization ?? 'none'} for tenant key ${req.headers['x-tenant-key'] ?? 'none'}`);
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const mcp = new McpServer({ name: 'agentflow-http-tracker-stand-in', version: '1.0.0' });
    mcp.registerTool('get_ticket', { description: 'A ticket by id', inputSchema: { id: z.string() } }, async ({ id }) => ({
      content: [{ type: 'text', text: `${id}: Checkout crashes on an empty cart` }],
    }));
    mcp.registerTool('echo_auth', { description: 'Repeats the Authorization header' }, async (extra) => ({
      content: [
        { type: 'text', text: `you sent ${extra.requestInfo?.headers.authorization} and ${extra.requestInfo?.headers['x-tenant-key']}` },
      ],
    }));
    await serveOnce(mcp, req, res);
  });
  return listen(http);
}

describe('Class: McpToolbox (streamable HTTP with headers)', () => {
  let server: Awaited<ReturnType<typeof startHttpTracker>>;
  beforeAll(async () => {
    server = await startHttpTracker();
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** A toolbox over the HTTP tracker whose headers come from `secret` (the mcp secret's JSON text). */
  const httpTracker = (secret: string) => {
    const asked: string[] = [];
    const headers = mcpHeadersSource(async () => secret, 'agentflow/dev/mcp');
    const toolbox = new McpToolbox([{ name: 'tracker', url: server.url, allow: [{ name: 'get_ticket' }, { name: 'echo_auth' }] }], {
      timeoutMs: 10_000,
      httpHeaders: (name) => {
        asked.push(name);
        return headers(name);
      },
    });
    return { toolbox, asked };
  };

  it('sends the secret’s headers to the server: with the right token the tools work, and an echoed token is taken out', async () => {
    // Prepare
    const { toolbox, asked } = httpTracker(
      JSON.stringify({ tracker: { headers: { Authorization: `Bearer ${TOKEN}`, 'X-Tenant-Key': TENANT_KEY } } }),
    );
    try {
      // Act
      const defs = await toolbox.definitions();
      const ticket = await toolbox.call('tracker__get_ticket', { id: 'ISSUE-901' });
      const echoed = await toolbox.call('tracker__echo_auth', {});

      // Assess
      expect(defs.map((d) => d.name)).toEqual(['tracker__get_ticket', 'tracker__echo_auth']);
      expect(ticket).toMatchObject({ ok: true, output: 'ISSUE-901: Checkout crashes on an empty cart' });
      expect(echoed.ok).toBe(true);
      expect(echoed.output).toBe('you sent [redacted: MCP header] and [redacted: MCP header]');
      expect(echoed.redacted).toBe(2);
      expect(JSON.stringify([defs, ticket, echoed])).not.toMatch(new RegExp(`${TOKEN}|${TENANT_KEY}`));
      expect(asked).toEqual(['tracker']);
    } finally {
      await toolbox.close();
    }
  }, 30_000);

  it('fails a call refused with HTTP 401 with an error naming the server and the status, and no token anywhere', async () => {
    // Prepare
    const { toolbox } = httpTracker(
      JSON.stringify({ tracker: { headers: { Authorization: `Bearer ${WRONG}`, 'X-Tenant-Key': TENANT_KEY } } }),
    );
    try {
      // Act
      const defs = await toolbox.definitions();
      const unavailable = toolbox.unavailable();
      const record = await toolbox.call('tracker__get_ticket', { id: 'ISSUE-901' });

      // Assess
      expect(defs).toEqual([]);
      expect(unavailable).toEqual([
        { server: 'tracker', error: expect.stringMatching(/^connecting to MCP server "tracker": HTTP 401 Unauthorized/) },
      ]);
      expect(record).toMatchObject({
        ok: false,
        error: expect.stringMatching(
          /^tracker__get_ticket failed: connecting to MCP server "tracker": HTTP 401 Unauthorized \(check its headers/,
        ),
      });
      // The server repeated the header in its 401 answer: AgentFlow does not.
      expect(record.error).toContain('invalid credentials: [redacted: MCP header] for tenant key [redacted: MCP header]');
      expect(JSON.stringify([defs, unavailable, record])).not.toMatch(new RegExp(`${WRONG}|${TOKEN}|${TENANT_KEY}`));
    } finally {
      await toolbox.close();
    }
  }, 30_000);

  it('fails the call of a server the secret gives no headers, with HTTP 401', async () => {
    // Prepare: the secret names another server only.
    const { toolbox, asked } = httpTracker(JSON.stringify({ wiki: { headers: { Authorization: `Bearer ${TOKEN}` } } }));
    try {
      // Act
      const record = await toolbox.call('tracker__get_ticket', { id: 'ISSUE-901' });

      // Assess
      expect(record).toMatchObject({ ok: false, error: expect.stringContaining('HTTP 401 Unauthorized') });
      expect(record.error).toContain('invalid credentials: none for tenant key none');
      expect(asked).toEqual(['tracker']);
    } finally {
      await toolbox.close();
    }
  }, 30_000);

  it('fails the call when the secret is malformed, naming it and the server but not quoting it', async () => {
    // Prepare: a header value with a line break (a smuggled header).
    const { toolbox } = httpTracker(JSON.stringify({ tracker: { headers: { Authorization: `Bearer ${TOKEN}\r\nX-Admin: 1` } } }));
    try {
      // Act
      const record = await toolbox.call('tracker__get_ticket', { id: 'ISSUE-901' });

      // Assess
      expect(record).toMatchObject({
        ok: false,
        error: expect.stringMatching(
          /^tracker__get_ticket failed: reading the headers of MCP server "tracker": agentflow\/dev\/mcp is not .*tracker\.headers\.Authorization: a header value is printable ASCII/,
        ),
      });
      expect(record.error).not.toContain(TOKEN);
    } finally {
      await toolbox.close();
    }
  }, 30_000);
});

/**
 * An MCP server over streamable HTTP on 127.0.0.1 that answers every `tools/call` with a JSON-RPC
 * error (-32602, as a server does for arguments it refuses), built on the SDK's low-level `Server`
 * (its `McpServer` turns a tool's errors into `isError` results instead).
 */
async function startRefusingServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  const http: Server = createServer(async (req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const mcp = new LowLevelServer({ name: 'agentflow-refusing-stand-in', version: '1.0.0' }, { capabilities: { tools: {} } });
    mcp.setRequestHandler(ListToolsRequestSchema, async () => ({
      tools: [
        { name: 'get_ticket', description: 'A ticket by id', inputSchema: { type: 'object', properties: { id: { type: 'string' } } } },
      ],
    }));
    mcp.setRequestHandler(CallToolRequestSchema, async () => {
      throw new McpError(ErrorCode.InvalidParams, 'id must look like ISSUE-<n>');
    });
    await serveOnce(mcp, req, res);
  });
  return listen(http);
}

describe('Class: McpToolbox (a server answering a JSON-RPC error)', () => {
  let server: Awaited<ReturnType<typeof startRefusingServer>>;
  beforeAll(async () => {
    server = await startRefusingServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('closes a half-open breaker when its probe is answered with a JSON-RPC error (the server works)', async () => {
    // Prepare: the tool's breaker opened a while ago; its cooldown is over, so the next call probes.
    let now = Date.now();
    const key = breakerKey(toolBreakerProvider('strict'), 'get_ticket');
    await breakers.trip(key, {
      provider: toolBreakerProvider('strict'),
      model: 'get_ticket',
      nowMs: now,
      cooldownMs: 1_000,
      reason: 'earlier timeouts',
      force: true,
    });
    now += 2_000;
    const toolbox = new McpToolbox([{ name: 'strict', url: server.url, allow: [{ name: 'get_ticket' }] }], {
      breaker: breaker(() => now),
      timeoutMs: 10_000,
    });
    try {
      // Act
      const record = await toolbox.call('strict__get_ticket', { id: '42' });

      // Assess: the refusal reaches the model, and the probe's answer closed the breaker (no lease left held).
      expect(record).toMatchObject({
        ok: false,
        error: expect.stringMatching(/^strict__get_ticket refused the call: .*id must look like ISSUE-<n>/),
      });
      expect(await breakers.get(key)).toMatchObject({ state: 'closed' });
      expect(await toolbox.call('strict__get_ticket', { id: '42' })).not.toHaveProperty('refused');
    } finally {
      await toolbox.close();
    }
  }, 30_000);
});
