import { redactSecrets } from './redact.js';

/**
 * Tools an agent may call (issue 15): definitions from MCP servers filtered by the workflow's
 * allow-list, and a record of every call. Tool inputs and outputs are outside data: they are
 * redacted (secret scanner) and capped before they reach a model, a report or a log.
 */

/**
 * Longest tool output a model gets, in characters; more is cut and marked. About 2,000 tokens:
 * a tool loop of 8 iterations stays well inside a 200k context window.
 */
export const MAX_TOOL_OUTPUT_CHARS = 8_000;
/** Longest tool input kept in a call's record, in characters. */
export const MAX_TOOL_INPUT_CHARS = 2_000;
/**
 * The separator of a tool's name as a model sees it: `<server>__<tool>`. Bedrock's `toolSpec.name`
 * and OpenAI's function names allow `[a-zA-Z0-9_-]{1,64}`.
 * Sources: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ToolSpecification.html,
 * https://platform.openai.com/docs/api-reference/chat/create (read 2026-11).
 */
export const TOOL_NAME_SEPARATOR = '__';
const MODEL_TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** One allowed tool of a server: its name there, and whether it changes something (`write: true`). */
export interface AllowedTool {
  readonly name: string;
  /** A tool that changes something: refused unless the workflow allows it (see issue 15). @default false */
  readonly write?: boolean;
}

/** A tool as a model is offered it. */
export interface ToolDefinition {
  /** `<server>__<tool>` ({@link toolName}). */
  readonly name: string;
  readonly server: string;
  readonly tool: string;
  readonly description: string;
  /** The tool's JSON Schema for its input (MCP `inputSchema`, an object schema). */
  readonly inputSchema: Record<string, unknown>;
  readonly write: boolean;
}

/** What happened to one tool call: kept in the agent's result and the report. */
export interface ToolCallRecord {
  /** `<server>__<tool>` as the model asked for it. */
  readonly name: string;
  /** The input, redacted and capped at {@link MAX_TOOL_INPUT_CHARS} (JSON). */
  readonly input: string;
  readonly ok: boolean;
  /** The output the model gets: redacted, capped at {@link MAX_TOOL_OUTPUT_CHARS}. */
  readonly output?: string;
  /** Why the call failed or was refused (one line). */
  readonly error?: string;
  /**
   * Not called: not on the allow-list, its breaker is open, a write tool not allowed, its input not
   * JSON, or (by the tool loop) past the calls of one turn or with no time left.
   */
  readonly refused?: boolean;
  /** Secrets the scanner removed from the input and output. */
  readonly redacted: number;
  readonly ms: number;
}

/**
 * The tools of one agent run.
 *
 * @example
 * ```ts
 * const tools = await toolbox.definitions(); // [{ name: 'issues__create_ticket', … }]
 * const r = await toolbox.call('issues__create_ticket', { title: 'Crash in PR 42' }, { requester: 'U024BE7LH' });
 * // r.ok ? r.output : r.error
 * ```
 */
export interface Toolbox {
  /**
   * The allowed tools of every configured server, listed within `timeoutMs` (ms; an implementation
   * may take less, never more). @throws nothing: a server that cannot be listed in time offers no tools (see `unavailable`)
   */
  definitions(options?: { timeoutMs?: number }): Promise<ToolDefinition[]>;
  /**
   * Calls tool `name` with `input`. Never throws: a refusal, a timeout, a crash or a malformed
   * answer is a record with `ok: false` and the reason.
   */
  call(name: string, input: unknown, options?: { requester?: string; timeoutMs?: number }): Promise<ToolCallRecord>;
  /** Servers whose tools could not be listed, with why. */
  unavailable(): ReadonlyArray<{ server: string; error: string }>;
  /** Stops the servers it started (stdio) and closes its connections. */
  close(): Promise<void>;
}

/**
 * A tool's name as a model sees it.
 * @throws Error when the result is not a valid model tool name (`[a-zA-Z0-9_-]{1,64}`)
 */
export function toolName(server: string, tool: string): string {
  const name = `${server}${TOOL_NAME_SEPARATOR}${tool}`;
  if (!MODEL_TOOL_NAME.test(name))
    throw new Error(`tool "${tool}" of server "${server}" cannot be named to a model: ${name} is not [a-zA-Z0-9_-]{1,64}`);
  return name;
}

/** The server and tool of a model's tool name, or undefined when it is not `<server>__<tool>`. */
export function parseToolName(name: string): { server: string; tool: string } | undefined {
  const at = name.indexOf(TOOL_NAME_SEPARATOR);
  if (at <= 0 || at + TOOL_NAME_SEPARATOR.length >= name.length) return undefined;
  return { server: name.slice(0, at), tool: name.slice(at + TOOL_NAME_SEPARATOR.length) };
}

/**
 * Outside text made safe to keep or show a model: secrets redacted, then cut at `max` characters
 * with a marker saying how much was left out.
 */
export async function cleanToolText(text: string, max: number): Promise<{ text: string; redacted: number }> {
  const { text: clean, count } = await redactSecrets(text);
  if (clean.length <= max) return { text: clean, redacted: count };
  return { text: `${clean.slice(0, max)}\n[… ${clean.length - max} more characters cut by AgentFlow]`, redacted: count };
}

/**
 * The record of a tool call that was not made, with why: its input redacted and capped at
 * {@link MAX_TOOL_INPUT_CHARS} as the toolbox's records are (the tool loop's and a limit's refusals).
 */
export async function notCalled(c: { readonly name: string; readonly input: unknown }, why: string): Promise<ToolCallRecord> {
  const input = await cleanToolText(inputText(c.input), MAX_TOOL_INPUT_CHARS);
  return { name: c.name, input: input.text, ok: false, refused: true, error: why, redacted: input.redacted, ms: 0 };
}

/** A call's input as JSON for its record (never throws: an unserialisable input is described). */
export function inputText(input: unknown): string {
  try {
    return JSON.stringify(input ?? {}) ?? '{}';
  } catch {
    return '"[input that is not JSON]"';
  }
}
