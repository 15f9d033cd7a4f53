import { STATUS_CODES } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { CircuitBreaker } from '../core/breaker.js';
import { withDeadline } from '../core/http.js';
import { headerSecrets, type McpHeadersSource, scrubSecrets } from '../core/mcp-headers.js';
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

/** How long connecting, listing and one call may take, in ms. */
export const DEFAULT_TOOL_TIMEOUT_MS = 30_000;
/** The `_meta` key that passes the requester's identity to a server (which decides what that person may do). */
export const REQUESTER_META_KEY = 'io.agentflow/requester';
/** The breaker "provider" of a server's tools: one breaker per server and tool. */
export const toolBreakerProvider = (server: string) => `mcp:${server}`;

interface Connected {
  readonly client: Client;
  readonly transport: StdioClientTransport | StreamableHTTPClientTransport;
}

/**
 * An error in one line: a server's HTTP answer as `HTTP <status> <reason>` first (with a hint for
 * 401 and 403, its headers being the likely cause), then what it said. Not cut: a reason is cut
 * only once header values are out (`McpToolbox.reason`), so no part of one is left.
 */
const oneLine = (e: unknown): string => {
  const message = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ');
  if (!(e instanceof StreamableHTTPError) || e.code === undefined || e.code < 100) return message;
  const hint = e.code === 401 || e.code === 403 ? ' (check its headers: the mcp secret, or AGENTFLOW_MCP_HEADERS locally)' : '';
  return `HTTP ${e.code} ${STATUS_CODES[e.code] ?? ''}${hint}: ${message}`;
};

/**
 * A {@link Toolbox} over MCP servers through `@modelcontextprotocol/sdk`: each server is connected
 * on first use (a stdio server is started as a child process; an HTTP server is reached by
 * streamable HTTP), its tools listed once and filtered by the allow-list.
 *
 * Each call: a tool not on the allow-list is refused (and says so); its breaker
 * (`mcp:<server>`/`<tool>`, the gateway's DynamoDB breaker) may refuse it while open; the call
 * gets `timeoutMs`; a timeout, a crash (the server is started again on the next call), an error
 * result (`isError`) or an answer that is not MCP's shape is a failed record with the reason and
 * counts on the breaker. The requester's identity goes in the request's `_meta`
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
  /** Header values of the HTTP servers connected so far (and their credentials), never given back. */
  private secrets: string[] = [];

  constructor(
    private readonly servers: readonly McpServerConfig[],
    private readonly options: {
      breaker?: CircuitBreaker;
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

  /** The connected client of `server`, started or reached on first use. */
  private connect(server: McpServerConfig): Promise<Connected> {
    let c = this.connections.get(server.name);
    if (!c) {
      c = (async () => {
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
            : new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers: await this.headersOf(server) } });
        try {
          await withDeadline(client.connect(transport), this.timeoutMs).catch((e: unknown) => {
            // No cause: what the server said may hold a header value until McpToolbox.reason takes it out.
            throw new Error(`connecting to MCP server "${server.name}": ${oneLine(e)}`);
          });
        } catch (e) {
          // A server that did not answer in time is stopped, not left running.
          await client.close().catch(() => undefined);
          await transport.close().catch(() => undefined);
          throw e;
        }
        return { client, transport };
      })();
      // A failed connection is tried again on the next use.
      c.catch(() => this.connections.delete(server.name));
      this.connections.set(server.name, c);
    }
    return c;
  }

  /** The headers of an HTTP server (its config's, then the `httpHeaders` source's), their values kept to scrub. */
  private async headersOf(server: McpServerConfig & { url: string }): Promise<Record<string, string>> {
    const extra = this.options.httpHeaders
      ? await this.options.httpHeaders(server.name).catch((e: unknown) => {
          throw new Error(`reading the headers of MCP server "${server.name}": ${e instanceof Error ? e.message : String(e)}`);
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

  /** Forgets a server's connection (its process crashed or the call timed out), closing what is left. */
  private async drop(server: string): Promise<void> {
    const c = this.connections.get(server);
    this.connections.delete(server);
    await c?.then((x) => x.client.close()).catch(() => undefined);
  }

  async definitions(): Promise<ToolDefinition[]> {
    const out: ToolDefinition[] = [];
    for (const server of this.servers) {
      let tools = this.listed.get(server.name);
      if (!tools) {
        try {
          const { client } = await this.connect(server);
          const listedTools = (await client.listTools(undefined, { timeout: this.timeoutMs })).tools;
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
          await this.drop(server.name);
          tools = [];
        }
      }
      out.push(...tools);
    }
    return out;
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
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let result: Awaited<ReturnType<Client['callTool']>>;
    try {
      const { client } = await this.connect(server);
      const args = input !== null && typeof input === 'object' && !Array.isArray(input) ? (input as Record<string, unknown>) : {};
      result = await client.callTool(
        {
          name: parsed.tool,
          arguments: args,
          ...(options.requester ? { _meta: { [REQUESTER_META_KEY]: options.requester } } : {}),
        },
        undefined,
        { timeout: timeoutMs },
      );
    } catch (e) {
      const reason = await this.reason(e);
      // A JSON-RPC error answer is the server refusing this input, not a fault of the server.
      if (e instanceof McpError && e.code !== ErrorCode.RequestTimeout && e.code !== ErrorCode.ConnectionClosed) {
        return record({ ok: false, error: `${name} refused the call: ${reason}` });
      }
      // A crashed, stuck or unreachable server is started again on the next call, and counts on the breaker.
      await this.drop(server.name);
      await count(false, reason);
      return record({ ok: false, error: `${name} failed: ${reason}` });
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

  async close(): Promise<void> {
    await Promise.all([...this.connections.keys()].map((s) => this.drop(s)));
  }
}
