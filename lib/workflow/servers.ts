import type { Phase, ResolvedAgent, ToolServer, Workflow } from './model.js';

/** An environment's MCP server: a streamable HTTP `url`, or (locally) a stdio `command` (cdk.json `mcpServers`). */
export type EnvironmentMcpServer = { readonly url: string } | { readonly command: string; readonly args?: readonly string[] };

/**
 * `workflow` with its agents' MCP servers replaced by the environment's servers of the same name
 * (cdk.json `environments.<env>.mcpServers`); servers the environment does not name keep the
 * workflow's transport. The built-in tools are never replaced.
 *
 * @example
 * ```ts
 * withMcpServers(wf, { tracker: { url: 'https://mcp.tracker.acme.dev/mcp' } });
 * ```
 */
export function withMcpServers(workflow: Workflow, servers: Readonly<Record<string, EnvironmentMcpServer>>): Workflow {
  if (Object.keys(servers).length === 0) return workflow;
  const swap = (t: ToolServer): ToolServer => {
    const s = t.builtin ? undefined : servers[t.name];
    if (!s) return t;
    return 'url' in s
      ? { name: t.name, args: [], url: s.url, builtin: false, allow: t.allow }
      : { name: t.name, command: s.command, args: [...(s.args ?? [])], builtin: false, allow: t.allow };
  };
  const agent = (a: ResolvedAgent): ResolvedAgent => (a.tools.length === 0 ? a : { ...a, tools: a.tools.map(swap) });
  const phase = (p: Phase): Phase => {
    if (p.kind === 'agents') return { ...p, agents: p.agents.map(agent) };
    if (p.kind === 'route' || p.kind === 'guardrail') return { ...p, agent: agent(p.agent) };
    return p;
  };
  return { ...workflow, phases: workflow.phases.map(phase) };
}

/**
 * The MCP servers of `workflow` a Lambda cannot reach: stdio servers (a command the function does
 * not ship), as `agent → server` lines. Empty when every server is a URL.
 */
export function stdioServers(workflow: Workflow): string[] {
  const out = new Set<string>();
  for (const p of workflow.phases) {
    const agents = p.kind === 'agents' ? p.agents : p.kind === 'route' || p.kind === 'guardrail' ? [p.agent] : [];
    for (const a of agents) for (const t of a.tools) if (!t.builtin && t.command) out.add(`${a.name} → ${t.name} (${t.command})`);
  }
  return [...out];
}

/**
 * Whether an agent of `workflows` reaches an MCP server by URL: the deployment then gives
 * InvokeAgent the `mcp` secret of those servers' headers (`MCP_SECRET_NAME`).
 */
export function hasHttpServers(workflows: readonly Workflow[]): boolean {
  return workflows.some((w) =>
    w.phases.some((p) => {
      const agents = p.kind === 'agents' ? p.agents : p.kind === 'route' || p.kind === 'guardrail' ? [p.agent] : [];
      return agents.some((a) => a.tools.some((t) => !t.builtin && t.url !== undefined));
    }),
  );
}
