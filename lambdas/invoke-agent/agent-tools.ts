import { type McpServerConfig, McpToolbox } from '../adapters/mcp-toolbox.js';
import { RepoToolbox } from '../adapters/repo-tools.js';
import { type BreakerStore, CircuitBreaker } from '../core/breaker.js';
import { type AgentItem, type Change, type ChangedFile, forgeOf, type Request, type ToolServer } from '../core/contracts.js';

type ToolLimit = NonNullable<ToolServer['allow'][number]['limits']>[number];

import type { GatewayConfig } from '../core/gateway-config.js';
import type { McpHeadersSource } from '../core/mcp-headers.js';
import type { ChangeSource } from '../core/ports.js';
import { notCalled, parseToolName, type Toolbox, type ToolCallRecord, type ToolDefinition, toolName } from '../core/tools.js';

/** What building an agent's tools needs besides the agent (all optional: InvokeAgent's deps). */
export interface AgentToolsOptions {
  /** Breakers of the MCP servers' tools (`mcp:<server>`/`<tool>`, the gateway's table). @default - no breaker */
  readonly breaker?: CircuitBreaker;
  /** How long connecting, listing and one tool call may take, in ms. @default McpToolbox's 30 s */
  readonly toolTimeoutMs?: number;
  /** Reads a changed file at the head commit for the built-in `read_file`. @default - the context artifact only */
  readonly readHeadFile?: ChangeSource['readHeadFile'];
  /** Environment given to every stdio MCP server besides `PATH` (AgentFlow's own stays out). @default {} */
  readonly mcpEnv?: Readonly<Record<string, string>>;
  /**
   * The headers (credentials) of each MCP server reached by URL: the `mcp` secret in the cloud,
   * `AGENTFLOW_MCP_HEADERS` locally. Read only when the agent connects to such a server.
   * @default - no headers
   */
  readonly mcpHeaders?: McpHeadersSource;
}

/**
 * The circuit breaker of MCP tools (`mcp:<server>`/`<tool>`): the gateway's breaker settings over
 * the gateway's breaker store, so `agentflow breakers` shows tools next to models. The probe lease
 * is the gateway's (`probeLeaseSeconds`, else the provider timeout + 10 s).
 */
export function toolBreaker(store: BreakerStore, config: Pick<GatewayConfig, 'breaker' | 'providerTimeoutSeconds'>): CircuitBreaker {
  const probeLeaseMs = (config.breaker.probeLeaseSeconds ?? config.providerTimeoutSeconds + 10) * 1000;
  return new CircuitBreaker(store, config.breaker, Date.now, () => crypto.randomUUID(), probeLeaseMs);
}

/**
 * Whether the agent may offer and call write tools: the item allows them (`allowWrite`: the
 * phase is behind an approval gate or the workflow allows them) and the run is not about a change
 * from a fork (`fork` absent counts as a fork). A request run has no change.
 */
export function writeAllowed(agent: Pick<AgentItem, 'allowWrite' | 'output'>, change: Change | undefined): boolean {
  // Only agents that answer requests act: a review agent runs once per chunk and is retried (the loader refuses its write tools too).
  const acts = agent.output === 'answer' || agent.output === 'route';
  return acts && agent.allowWrite && (change === undefined || change.fork === false);
}

/** Who the tools act for: the request's requester, or a review's `<forge>:<author>`. */
export function requesterOf(request: Request | undefined, change: Change | undefined): string | undefined {
  if (request) return request.requester;
  return change?.author ? `${forgeOf(change)}:${change.author}` : undefined;
}

/** A {@link Toolbox} over several, each with the servers it answers for; a tool of no server is refused. */
export class CompositeToolbox implements Toolbox {
  constructor(private readonly parts: ReadonlyArray<{ readonly servers: readonly string[]; readonly toolbox: Toolbox }>) {}

  async definitions(options?: { timeoutMs?: number }): Promise<ToolDefinition[]> {
    return (await Promise.all(this.parts.map((p) => p.toolbox.definitions(options)))).flat();
  }

  unavailable(): ReadonlyArray<{ server: string; error: string }> {
    return this.parts.flatMap((p) => p.toolbox.unavailable());
  }

  async call(name: string, input: unknown, options?: { requester?: string; timeoutMs?: number }): Promise<ToolCallRecord> {
    const server = parseToolName(name)?.server;
    const part = this.parts.find((p) => server !== undefined && p.servers.includes(server)) ?? this.parts[0];
    // The first part refuses a name of no server (every Toolbox refuses a tool not on its allow-list).
    if (part) return part.toolbox.call(name, input, options);
    return { name, input: '', ok: false, refused: true, error: `tool "${name}" is not on this agent's allow-list`, redacted: 0, ms: 0 };
  }

  async close(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.toolbox.close().catch(() => undefined)));
  }
}

/**
 * A {@link Toolbox} that holds tools with `limits` to them: each limited argument, added up over
 * this agent's calls, stays within the number an earlier phase's answer gave (its `data.<field>`,
 * from the Map state's `previous` results). A call whose argument is not a non-negative number,
 * whose bound is unknown (the phase gave no such number), or that would pass the bound is refused
 * and says why; only calls that succeed count. This binds a write to what a gate compared: a refund
 * up to the amount the billing agent proposed, which a person approved when it was over $100.
 */
export class LimitedToolbox implements Toolbox {
  private readonly used = new Map<string, number>();

  constructor(
    private readonly inner: Toolbox,
    private readonly limits: ReadonlyMap<string, readonly ToolLimit[]>,
    private readonly previous: Readonly<Record<string, unknown>>,
  ) {}

  definitions(options?: { timeoutMs?: number }): Promise<ToolDefinition[]> {
    return this.inner.definitions(options);
  }

  unavailable(): ReadonlyArray<{ server: string; error: string }> {
    return this.inner.unavailable();
  }

  /** The number `phase` answered in `data.<field>`, when it did. */
  private bound(l: ToolLimit): number | undefined {
    for (const v of Object.values(this.previous)) {
      for (const r of Array.isArray(v) ? v : [v]) {
        const result = r as { phase?: unknown; data?: Record<string, unknown> } | null;
        if (result?.phase !== l.phase) continue;
        const n = result.data?.[l.field];
        return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
      }
    }
    return undefined;
  }

  async call(name: string, input: unknown, options?: { requester?: string; timeoutMs?: number }): Promise<ToolCallRecord> {
    const limits = this.limits.get(name) ?? [];
    const args = (input && typeof input === 'object' ? input : {}) as Record<string, unknown>;
    // Recorded as the loop's own refusals are: the input redacted and capped.
    const refuse = (error: string): Promise<ToolCallRecord> => notCalled({ name, input }, error);
    const adds: Array<[string, number]> = [];
    for (const l of limits) {
      const key = `${name}:${l.arg}`;
      const bound = this.bound(l);
      const value = args[l.arg];
      const ref = `${l.phase}.${l.field}`;
      if (bound === undefined) return refuse(`not called: ${l.arg} is limited by ${ref}, and that phase gave no number`);
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
        return refuse(`not called: ${l.arg} must be a number of at most ${bound} (${ref})`);
      const used = this.used.get(key) ?? 0;
      if (used + value > bound) {
        return refuse(
          `not called: ${l.arg} ${value} would bring this run's total to ${used + value}, over ${bound} (${ref}${used > 0 ? `; ${used} used` : ''})`,
        );
      }
      adds.push([key, value]);
    }
    const record = await this.inner.call(name, input, options);
    if (record.ok) for (const [key, value] of adds) this.used.set(key, (this.used.get(key) ?? 0) + value);
    return record;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** An MCP tool server of the workflow as McpToolbox takes it (stdio command or streamable HTTP URL). */
function mcpConfig(server: ToolServer, env: Readonly<Record<string, string>>): McpServerConfig {
  const allow = server.allow.map((a) => ({ name: a.name, write: a.write }));
  if (server.command !== undefined) return { name: server.name, command: server.command, args: server.args, env: { ...env }, allow };
  if (server.url !== undefined) return { name: server.name, url: server.url, allow };
  throw new Error(`tool server "${server.name}" has neither a command nor a url (nor builtin: true)`);
}

/**
 * The agent's tools (`agent.tools`): its MCP servers in one {@link McpToolbox} (breaker, timeout,
 * allow-list, write policy), the built-in server (`builtin: true`, `agentflow__…`) as a
 * {@link RepoToolbox} over the run's change, combined. Undefined when the agent has no tools.
 * The caller closes it (`close()`, in a `finally`).
 *
 * @throws Error when a server has neither command, url nor builtin (the compiler refuses such a workflow)
 */
export function agentToolbox(
  agent: Pick<AgentItem, 'tools' | 'allowWrite' | 'output'>,
  run: {
    readonly change?: Change | undefined;
    readonly files?: readonly ChangedFile[] | undefined;
    /** The earlier phases' results (the Map state's `previous`): the bounds of tools with `limits`. */
    readonly previous?: Readonly<Record<string, unknown>>;
  },
  options: AgentToolsOptions = {},
): Toolbox | undefined {
  if (agent.tools.length === 0) return undefined;
  const parts: Array<{ servers: string[]; toolbox: Toolbox }> = [];
  const mcp = agent.tools.filter((s) => !s.builtin);
  if (mcp.length > 0) {
    const configs = mcp.map((s) => mcpConfig(s, options.mcpEnv ?? {}));
    parts.push({
      servers: configs.map((c) => c.name),
      toolbox: new McpToolbox(configs, {
        allowWrite: writeAllowed(agent, run.change),
        ...(options.breaker ? { breaker: options.breaker } : {}),
        ...(options.toolTimeoutMs ? { timeoutMs: options.toolTimeoutMs } : {}),
        ...(options.mcpHeaders && configs.some((c) => c.url !== undefined) ? { httpHeaders: options.mcpHeaders } : {}),
      }),
    });
  }
  for (const s of agent.tools.filter((t) => t.builtin)) {
    const subject = run.change ? { change: run.change, files: run.files ?? [] } : undefined;
    parts.push({
      servers: [s.name],
      toolbox: new RepoToolbox(subject, s.allow, {
        server: s.name,
        ...(options.readHeadFile ? { readHeadFile: options.readHeadFile } : {}),
      }),
    });
  }
  const toolbox = parts.length === 1 && parts[0] ? parts[0].toolbox : new CompositeToolbox(parts);
  const limits = new Map(
    agent.tools.flatMap((t) => t.allow.flatMap((a) => (a.limits?.length ? [[toolName(t.name, a.name), a.limits] as const] : []))),
  );
  return limits.size > 0 ? new LimitedToolbox(toolbox, limits, run.previous ?? {}) : toolbox;
}
