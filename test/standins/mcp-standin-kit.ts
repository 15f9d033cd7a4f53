/**
 * What the MCP stand-ins (mcp-issue-tracker.ts, mcp-ci.ts, mcp-support.ts) share: the requester a
 * call is made for, the requesters a stand-in refuses, and the call log tests read. Not a server.
 *
 * Environment of a stand-in (given in the server's `env:`, as McpToolbox passes nothing else):
 * - `MCP_DENY_REQUESTERS`: comma-separated requesters refused by every tool that guards its calls
 *   (an `isError` result saying so): the server decides what that person may do.
 * - `MCP_CALL_LOG`: a file each guarded call appends one JSON line to:
 *   `{"server","tool","arguments","requester","outcome"}`, `requester` null when none was sent,
 *   `outcome` `ok`, `error` (the tool answered an error) or `refused` (the requester is denied).
 */
import { appendFileSync } from 'node:fs';

/** The `_meta` key the requester comes in (McpToolbox's `REQUESTER_META_KEY`). */
export const REQUESTER_META_KEY = 'io.agentflow/requester';

/** One line of the call log. */
export interface LoggedCall {
  readonly server: string;
  readonly tool: string;
  readonly arguments: Record<string, unknown>;
  readonly requester: string | null;
  readonly outcome: 'ok' | 'error' | 'refused';
}

/** A tool's answer as the SDK takes it. */
export interface ToolAnswer {
  [key: string]: unknown;
  content: Array<{ type: 'text'; text: string }>;
  isError?: boolean;
}

/** A text answer; an error result with `isError`. */
export const text = (t: string, isError = false): ToolAnswer => ({ content: [{ type: 'text', text: t }], ...(isError ? { isError } : {}) });

/** The requester of a call: `_meta["io.agentflow/requester"]` of the request, or null. */
export function requesterOf(extra: { _meta?: Record<string, unknown> }): string | null {
  const r = extra._meta?.[REQUESTER_META_KEY];
  return typeof r === 'string' && r.length > 0 ? r : null;
}

const denied = () =>
  new Set(
    (process.env.MCP_DENY_REQUESTERS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

/**
 * A tool handler that refuses a denied requester before `handle` runs and logs every call.
 * @param server the stand-in's name in the log
 */
export function guarded<A extends Record<string, unknown>>(
  server: string,
  tool: string,
  handle: (args: A, requester: string | null) => ToolAnswer | Promise<ToolAnswer>,
): (args: A, extra: { _meta?: Record<string, unknown> }) => Promise<ToolAnswer> {
  return async (args, extra) => {
    const requester = requesterOf(extra);
    const refused = requester !== null && denied().has(requester);
    const answer = refused
      ? text(`${requester} may not use ${tool} on this ${server} (refused by the server)`, true)
      : await handle(args, requester);
    const path = process.env.MCP_CALL_LOG;
    if (path) {
      const line: LoggedCall = { server, tool, arguments: args, requester, outcome: refused ? 'refused' : answer.isError ? 'error' : 'ok' };
      appendFileSync(path, `${JSON.stringify(line)}\n`);
    }
    return answer;
  };
}
