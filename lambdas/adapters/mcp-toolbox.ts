import { STATUS_CODES } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { CircuitBreaker } from '../core/breaker.js';
import { DeadlineError, withDeadline } from '../core/http.js';
import { headerSecrets, MCP_HEADERS_ENV, type McpHeadersSource, scrubSecrets } from '../core/mcp-headers.js';
import {
  type AllowedTool,
  cleanToolText,
  inputText,
  MAX_TOOL_INPUT_CHARS,
  MAX_TOOL_OUTPUT_CHARS,
  parseToolName,
  TOOL_NAME_SEPARATOR,
  type Toolbox,
  type ToolCallRecord,
  type ToolDefinition,
  toolName,
} from '../core/tools.js';

/**
 * One MCP server an agent may use: a command started over stdio, or a streamable HTTP URL, and the
 * tools of it the workflow allows (every other tool is neither offered nor called).
 * Transports: https://modelcontextprotocol.io/specification/2025-06-18/basic/transports (read 2026-11).
 */
export type McpServerConfig = {
  /** The name tools are offered under (`<name>__<tool>`): letters, digits, `_` and `-`. */
  readonly name: string;
  readonly allow: readonly AllowedTool[];
} & (
  | { readonly command: string; readonly args?: readonly string[]; readonly env?: Readonly<Record<string, string>>; readonly url?: never }
  | { readonly url: string; readonly headers?: Readonly<Record<string, string>>; readonly command?: never }
);

/**
 * How long connecting, listing and one call may take, in ms, unless the toolbox's `timeoutMs` says
 * otherwise; a call or a listing given less time (what is left of the run) gets that.
 */
export const DEFAULT_TOOL_TIMEOUT_MS = 30_000;
/** The `_meta` key that passes the requester's identity to a server (which decides what that person may do). */
export const REQUESTER_META_KEY = 'io.agentflow/requester';
/** The breaker "provider" of a server's tools: one breaker per server and tool. */
export const toolBreakerProvider = (server: string) => `mcp:${server}`;

interface Connected {
  readonly client: Client;
  readonly transport: StdioClientTransport | StreamableHTTPClientTransport;
}

/** Connecting to a server (reading its headers, starting or reaching it) failed; `timedOut` when it ran out of time. */
class McpConnectError extends Error {
  constructor(
    message: string,
    readonly timedOut: boolean,
  ) {
    // No cause: what the server said may hold a header value until McpToolbox.reason takes it out.
    super(message);
    this.name = 'McpConnectError';
  }
}

/** A timer over `ms` from now: the ms left (at least 1, as the SDK and `withDeadline` want). */
const countdown = (ms: number) => {
  const until = Date.now() + ms;
  return () => Math.max(1, until - Date.now());
};

/**
 * An error in one line: a server's HTTP answer as `HTTP <status> <reason>` first (with a hint for
 * 401 and 403, its headers being the likely cause), then what it said. Not cut: a reason is cut
 * only once header values are out (`McpToolbox.reason`), so no part of one is left.
 */
const oneLine = (e: unknown): string => {
  const message = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ');
  if (!(e instanceof StreamableHTTPError) || e.code === undefined || e.code < 100) return message;
  const hint = e.code === 401 || e.code === 403 ? ` (check its headers: the mcp secret, or ${MCP_HEADERS_ENV} locally)` : '';
  return `HTTP ${e.code} ${STATUS_CODES[e.code] ?? ''}${hint}: ${message}`;
};

/**
 * A {@link Toolbox} over MCP servers through `@modelcontextprotocol/sdk`: each server is connected
 * on first use (a stdio server is started as a child process; an HTTP server is reached by
 * streamable HTTP), its tools listed once and filtered by the allow-list.
 *
 * Each call: a tool not on the allow-list is refused (and says so); its breaker
 * (`mcp:<server>`/`<tool>`, the gateway's DynamoDB breaker) may refuse it while open; the call,
 * with reading the server's headers and connecting to it (or starting it again) first, gets the
 * sooner of its own `timeoutMs` and the toolbox's. A timeout, a crash (the server is started again
 * on the next call) or an answer that is not MCP's shape is a failed record with the reason and
 * counts as a failure on the breaker; an error result (`isError`) or a JSON-RPC error answer (the
 * server refusing this input) is a failed record too, but the server answered, so it counts as a
 * success (a half-open breaker's probe closes it). A write tool sent and then timed out, or whose
 * server went away before answering, says that whether it took effect is unknown and not to call
 * it again without checking. The requester's identity goes in the request's `_meta`
 * ({@link REQUESTER_META_KEY}). Inputs and outputs are redacted and capped ({@link cleanToolText}).
 *
 * An HTTP server's headers (its credentials: `headers`, then `httpHeaders`) go to its transport
 * only: every text the server sends back (answers, error results, errors, the reasons of
 * {@link McpToolbox.unavailable}) has their values taken out ({@link scrubSecrets}) before it
 * reaches a record, an error or a model.
 */
export class McpToolbox implements Toolbox {
  private readonly connections = new Map<string, Promise<Connected>>();
  private readonly listed = new Map<string, ToolDefinition[]>();
  private readonly failedServers = new Map<string, string>();
  /** Connections being closed in the background (a timed-out call does not wait for them); `close` does. */
  private readonly closing = new Set<Promise<void>>();
  /** Header values of the HTTP servers connected so far (and their credentials), never given back. */
  private secrets: string[] = [];

  constructor(
    private readonly servers: readonly McpServerConfig[],
    private readonly options: {
      breaker?: CircuitBreaker;
      /** How long connecting, listing and one call may take at most, in ms. @default DEFAULT_TOOL_TIMEOUT_MS (30 s) */
      timeoutMs?: number;
      clientVersion?: string;
      /**
       * Offer and call tools marked `write: true` (the phase is behind an approval gate, or the
       * workflow allows them; never for a fork's change). @default false: write tools are neither offered nor called
       */
      allowWrite?: boolean;
      /**
       * The headers of an HTTP server (the `mcp` secret), read when it is first connected and
       * added to its config's `headers`; a failed read fails the connection. @default - the config's headers only
       */
      httpHeaders?: McpHeadersSource;
    } = {},
  ) {
    for (const s of servers) {
      if (s.name.includes(TOOL_NAME_SEPARATOR)) throw new Error(`MCP server name "${s.name}" must not contain "${TOOL_NAME_SEPARATOR}"`);
      for (const t of s.allow) toolName(s.name, t.name);
    }
  }

  /** Whether `tool` may be offered and called now (a write tool only with `allowWrite`). */
  private usable(tool: AllowedTool): boolean {
    return tool.write !== true || this.options.allowWrite === true;
  }

  private get timeoutMs(): number {
    return this.options.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
  }

  /**
   * The connected client of `server`, started or reached on first use, within `ms` (reading its
   * headers included): a caller never waits longer, even on a connection another call started.
   * @throws McpConnectError when it cannot be connected in time, or at all
   */
  private async connect(server: McpServerConfig, ms: number): Promise<Connected> {
    let c = this.connections.get(server.name);
    if (!c) {
      const attempt = this.open(server, countdown(ms));
      c = attempt;
      // A failed connection is tried again on the next use (unless it was dropped and replaced already).
      attempt.catch(() => {
        if (this.connections.get(server.name) === attempt) this.connections.delete(server.name);
      });
      this.connections.set(server.name, attempt);
    }
    return withDeadline(c, ms).catch((e: unknown) => {
      if (e instanceof DeadlineError) throw new McpConnectError(`connecting to MCP server "${server.name}": ${e.message}`, true);
      throw e;
    });
  }

  /** Starts or reaches `server` in the time `left()` gives; a server that did not answer in time is stopped, not left running. */
  private async open(server: McpServerConfig, left: () => number): Promise<Connected> {
    const client = new Client({ name: 'agentflow', version: this.options.clientVersion ?? '1' });
    const transport =
      server.command !== undefined
        ? new StdioClientTransport({
            command: server.command,
            args: [...(server.args ?? [])],
            // Only what the server is given: AgentFlow's own environment (tokens, keys) stays out.
            env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(server.env ?? {}) },
            stderr: 'ignore',
          })
        : new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers: await this.headersOf(server, left()) } });
    try {
      await withDeadline(client.connect(transport), left());
    } catch (e) {
      // Stopped in the background (a stdio server that ignores its closed stdin takes seconds to stop).
      this.retire(
        client
          .close()
          .catch(() => undefined)
          .then(() => transport.close())
          .catch(() => undefined),
      );
      throw new McpConnectError(`connecting to MCP server "${server.name}": ${oneLine(e)}`, e instanceof DeadlineError);
    }
    return { client, transport };
  }

  /**
   * The headers of an HTTP server (its config's, then the `httpHeaders` source's, read within `ms`),
   * their values kept to scrub.
   * @throws McpConnectError when the source fails or does not answer in time
   */
  private async headersOf(server: McpServerConfig & { url: string }, ms: number): Promise<Record<string, string>> {
    const source = this.options.httpHeaders;
    const extra = source
      ? await withDeadline(source(server.name), ms).catch((e: unknown) => {
          throw new McpConnectError(
            `reading the headers of MCP server "${server.name}": ${e instanceof Error ? e.message : String(e)}`,
            e instanceof DeadlineError,
          );
        })
      : undefined;
    const headers = { ...(server.headers ?? {}), ...(extra ?? {}) };
    this.secrets = [...new Set([...this.secrets, ...headerSecrets(headers)])].sort((a, b) => b.length - a.length);
    return headers;
  }

  /** Text from a server or an error, with header values taken out, redacted and capped ({@link cleanToolText}). */
  private async clean(text: string, max: number): Promise<{ text: string; redacted: number }> {
    const scrubbed = scrubSecrets(text, this.secrets);
    const out = await cleanToolText(scrubbed.text, max);
    return { text: out.text, redacted: out.redacted + scrubbed.count };
  }

  /** Why something failed, in one line of at most 300 characters, header values out (then cut, so no part of one is left). */
  private async reason(e: unknown): Promise<string> {
    return (await this.clean(oneLine(e), Number.MAX_SAFE_INTEGER)).text.slice(0, 300);
  }

  /** Keeps `closing` until it settles, so {@link close} can wait for it. */
  private retire(closing: Promise<void>): void {
    this.closing.add(closing);
    void closing.finally(() => this.closing.delete(closing));
  }

  /**
   * Forgets a server's connection (its process crashed or the call timed out) and closes what is
   * left in the background: the next use starts or reaches it again.
   */
  private drop(server: string): void {
    const c = this.connections.get(server);
    this.connections.delete(server);
    if (c) this.retire(c.then((x) => x.client.close()).catch(() => undefined));
  }

  /**
   * The allowed tools of every server, listed in parallel within the sooner of `timeoutMs` and the
   * toolbox's (connecting and reading headers included). A server not listed in time offers no tools
   * and is in {@link unavailable}; one listed once is not asked again.
   */
  async definitions(options: { timeoutMs?: number } = {}): Promise<ToolDefinition[]> {
    const left = countdown(Math.min(options.timeoutMs ?? this.timeoutMs, this.timeoutMs));
    return (await Promise.all(this.servers.map((server) => this.toolsOf(server, left)))).flat();
  }

  /** The allowed tools of one server, connecting and listing in the time `left()` gives ([] and the reason kept when it fails). */
  private async toolsOf(server: McpServerConfig, left: () => number): Promise<ToolDefinition[]> {
    let tools = this.listed.get(server.name);
    if (!tools) {
      try {
        const { client } = await this.connect(server, left());
        const listedTools = (await client.listTools(undefined, { timeout: left() })).tools;
        tools = server.allow
          .filter((allowed) => this.usable(allowed))
          .flatMap((allowed) => {
            const t = listedTools.find((x) => x.name === allowed.name);
            return t
              ? [
                  {
                    name: toolName(server.name, t.name),
                    server: server.name,
                    tool: t.name,
                    description: t.description ?? '',
                    inputSchema: t.inputSchema as Record<string, unknown>,
                    write: allowed.write === true,
                  },
                ]
              : [];
          });
        this.listed.set(server.name, tools);
        this.failedServers.delete(server.name);
      } catch (e) {
        this.failedServers.set(server.name, await this.reason(e));
        this.drop(server.name);
        tools = [];
      }
    }
    return tools;
  }

  unavailable(): ReadonlyArray<{ server: string; error: string }> {
    return [...this.failedServers].map(([server, error]) => ({ server, error }));
  }

  async call(name: string, input: unknown, options: { requester?: string; timeoutMs?: number } = {}): Promise<ToolCallRecord> {
    const started = Date.now();
    const inputClean = await cleanToolText(inputText(input), MAX_TOOL_INPUT_CHARS);
    const record = (r: Omit<ToolCallRecord, 'name' | 'input' | 'ms' | 'redacted'> & { redacted?: number }): ToolCallRecord => ({
      name,
      input: inputClean.text,
      ms: Date.now() - started,
      ...r,
      redacted: inputClean.redacted + (r.redacted ?? 0),
    });
    const parsed = parseToolName(name);
    const server = parsed ? this.servers.find((s) => s.name === parsed.server) : undefined;
    const allowed = parsed && server?.allow.find((t) => t.name === parsed.tool);
    if (!parsed || !server || !allowed) {
      return record({ ok: false, refused: true, error: `tool "${name}" is not on this agent's allow-list` });
    }
    if (!this.usable(allowed)) {
      return record({
        ok: false,
        refused: true,
        error: `tool "${name}" changes something and is not allowed here (an approval gate must come first)`,
      });
    }
    if (input !== null && typeof input === 'object' && '_unparsed' in input) {
      return record({ ok: false, refused: true, error: `the input for ${name} is not a JSON object: send the arguments as JSON` });
    }
    const provider = toolBreakerProvider(server.name);
    const breaker = this.options.breaker;
    // The breaker's table being down does not stop the tool (as in the gateway): it is not consulted.
    const admission = breaker ? await breaker.admit(provider, parsed.tool).catch(() => undefined) : undefined;
    if (admission?.kind === 'rejected') {
      return record({ ok: false, refused: true, error: `the circuit breaker of ${name} is ${admission.state}` });
    }
    const count = async (ok: boolean, reason: string): Promise<void> => {
      if (!admission || !breaker) return;
      const done = ok
        ? breaker.onSuccess(admission, provider, parsed.tool)
        : breaker.onFailure(admission, provider, parsed.tool, 'counted', reason);
      await done.catch(() => undefined);
    };
    // The call's time covers reading headers and connecting (or restarting a crashed server) too.
    const timeoutMs = Math.min(options.timeoutMs ?? this.timeoutMs, this.timeoutMs);
    const left = countdown(timeoutMs - (Date.now() - started));
    let sent = false;
    let result: Awaited<ReturnType<Client['callTool']>>;
    try {
      const { client } = await this.connect(server, left());
      const args = input !== null && typeof input === 'object' && !Array.isArray(input) ? (input as Record<string, unknown>) : {};
      sent = true;
      result = await client.callTool(
        {
          name: parsed.tool,
          arguments: args,
          ...(options.requester ? { _meta: { [REQUESTER_META_KEY]: options.requester } } : {}),
        },
        undefined,
        { timeout: left() },
      );
    } catch (e) {
      const reason = await this.reason(e);
      const timedOut = (e instanceof McpError && e.code === ErrorCode.RequestTimeout) || (e instanceof McpConnectError && e.timedOut);
      const lost = e instanceof McpError && e.code === ErrorCode.ConnectionClosed;
      // A JSON-RPC error answer is the server refusing this input: it answered, so it works (a probe closes the breaker).
      if (e instanceof McpError && !timedOut && !lost) {
        await count(true, '');
        return record({ ok: false, error: `${name} refused the call: ${reason}` });
      }
      // A crashed, stuck or unreachable server is started again on the next call, and counts on the breaker.
      this.drop(server.name);
      await count(false, reason);
      // A write sent and never answered may have been made: the model must not simply repeat it.
      if (sent && allowed.write === true && (timedOut || lost)) {
        const what = timedOut ? `timed out after ${timeoutMs} ms` : `lost its server before answering (${reason})`;
        return record({ ok: false, error: `${name} ${what}: whether it took effect is unknown; do not call it again without checking` });
      }
      return record({
        ok: false,
        error: timedOut ? `${name} failed: timed out after ${timeoutMs} ms (${reason})` : `${name} failed: ${reason}`,
      });
    }
    const text = (Array.isArray(result.content) ? result.content : [])
      .map((c: { type?: string; text?: unknown }) =>
        c.type === 'text' && typeof c.text === 'string' ? c.text : `[${c.type ?? 'unknown'} content]`,
      )
      .join('\n');
    const output = await this.clean(text, MAX_TOOL_OUTPUT_CHARS);
    // The server answered, so it works: an error result is about this input (a failed validation, a refusal).
    await count(true, '');
    if (result.isError === true) {
      return record({
        ok: false,
        error: `${name} answered an error: ${output.text.slice(0, 300)}`,
        output: output.text,
        redacted: output.redacted,
      });
    }
    return record({ ok: true, output: output.text, redacted: output.redacted });
  }

  /** Stops the servers it started and closes its connections, waiting for those being closed already. */
  async close(): Promise<void> {
    for (const s of [...this.connections.keys()]) this.drop(s);
    await Promise.all([...this.closing]);
  }
}
