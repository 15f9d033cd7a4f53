import { BUILTIN_TOOL_SERVER } from '../../lambdas/core/contracts.js';
import { toolName } from '../../lambdas/core/tools.js';
import { offlineRequestToolCall } from './offline-requests.js';

/**
 * How the offline model server answers a request that offers tools, the same way every time.
 *
 * 1. **Directives** (they take priority): the task (the first user message) says which tools to
 *    call, one line each —
 *
 *        call <tool> {"json": "input"}
 *
 *    — and the model calls them in that order, one per turn (the turn is the number of tool results
 *    the conversation holds already). `repeat <tool> {…}` calls that tool on every turn, so a loop
 *    only ends at its iteration cap. When every `call` line has its result, the model answers in
 *    text as it would without tools.
 * 2. **Request agents** (a system prompt of `answerSystemPrompt` / `routeSystemPrompt`) without any
 *    directive: the tools the request's words choose, each once, in the order offered, with input
 *    built from the tool's input schema ({@link offlineRequestToolCall}, lib/local/offline-requests.ts).
 * 3. **Review agents** (a system prompt of `systemPrompt`, lambdas/core/prompt.ts: the findings
 *    answer format) offered AgentFlow's built-in tools, without any directive: one call per turn,
 *    each tool once, only the built-in tools offered ({@link offlineReviewToolCall}) —
 *    1. `agentflow__list_changed_files` with `{}`;
 *    2. `agentflow__read_file` with `{"path"}` of the first file of the chunk (its `### <path> (…)`
 *       headers, in order) that is neither removed nor binary and, when the listing answered, that
 *       the listing names;
 *
 *    then the review in text, from the chunk alone: the findings are exactly those the agent
 *    gives without tools (the rules of lib/local/offline-rules.ts read the diff, not the tool
 *    results). `agentflow__search` is never called. A repair conversation (a new one, without the
 *    earlier tool results) calls the tools again.
 *
 * A deterministic stand-in, not a model.
 */

/** One tool call the offline model makes on this turn. */
export interface OfflineToolCall {
  readonly name: string;
  readonly input: Record<string, unknown>;
}

/** A tool a request offers: its name as the model sees it (`<server>__<tool>`) and its input's JSON Schema. */
export interface OfflineTool {
  readonly name: string;
  readonly inputSchema: Record<string, unknown>;
}

/** A tool result the conversation holds: the tool it answers (by the call's id), its text, whether it is an error. */
export interface OfflineToolResult {
  readonly name: string;
  readonly text: string;
  readonly isError: boolean;
}

/** What the offline model knows of a tool loop on this turn. */
export interface OfflineToolTurn {
  /** The system prompt (text blocks joined). */
  readonly system: string;
  /** The first user message. */
  readonly task: string;
  /** The tools the request offers, in order. */
  readonly offered: readonly OfflineTool[];
  /** The tool results the conversation holds, in order. */
  readonly results: readonly OfflineToolResult[];
}

const DIRECTIVE = /^\s*(call|repeat)\s+([a-zA-Z0-9_-]{1,64})(?:\s+(\{.*\}))?\s*$/gm;

/** The `call` / `repeat` lines of a task, in order. */
function directivesOf(task: string): Array<{ repeat: boolean; name: string; input: Record<string, unknown> }> {
  return [...task.matchAll(DIRECTIVE)].map((m) => {
    let input: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(m[3] ?? '{}') as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) input = parsed as Record<string, unknown>;
    } catch {
      // A directive with broken JSON calls the tool without input.
    }
    return { repeat: m[1] === 'repeat', name: m[2] ?? '', input };
  });
}

/**
 * The tool call of this turn, or undefined when the model answers in text instead: the task's
 * directives when it has any (a directive naming a tool not offered is called anyway: the caller
 * must refuse it), else a request agent's own choice ({@link offlineRequestToolCall}).
 */
export function offlineToolCall(turn: OfflineToolTurn): OfflineToolCall | undefined {
  if (turn.offered.length === 0) return undefined;
  const directives = directivesOf(turn.task);
  if (directives.length === 0) return offlineRequestToolCall(turn) ?? offlineReviewToolCall(turn);
  const repeat = directives.find((d) => d.repeat);
  if (repeat) return { name: repeat.name, input: repeat.input };
  const next = directives[turn.results.length];
  return next ? { name: next.name, input: next.input } : undefined;
}

/** The line of `systemPrompt`'s answer format (lambdas/core/prompt.ts) that only a review agent's system prompt has. */
const REVIEW_FORMAT = /^\{"summary": "<one or two sentences>", "findings": \[/m;

/** A file header of a chunk (`renderFile` / `layoutChunks`, lambdas/core/tokens.ts): path, then status and counts or part. */
const FILE_HEADER = /^### (.+) \((renamed from .*|[a-z-]+)(?:, \+\d+ -\d+|, part \d+)?\)$/;

/** The built-in tools a review agent calls, in this order. */
const LIST_CHANGED_FILES = toolName(BUILTIN_TOOL_SERVER, 'list_changed_files');
const READ_FILE = toolName(BUILTIN_TOOL_SERVER, 'read_file');

/**
 * The files of a review chunk (the task), in order, that have content to read: each `### <path> (…)`
 * header whose status is not `removed` and whose diff is not `(binary file)`. A path is listed once
 * (a file split in parts has one header per part).
 */
export function readableChunkFiles(task: string): string[] {
  const out: string[] = [];
  const blocks = task.split(/^(?=### )/m).slice(1);
  for (const block of blocks) {
    const m = FILE_HEADER.exec(block.split('\n', 1)[0] ?? '');
    const path = m?.[1];
    if (!path || m[2] === 'removed' || /^\(binary file\)$/m.test(block) || out.includes(path)) continue;
    out.push(path);
  }
  return out;
}

/**
 * A review agent's tool call on this turn (rule 3 of this module), or undefined when it answers:
 * `agentflow__list_changed_files`, then `agentflow__read_file` of the first readable file of the
 * chunk ({@link readableChunkFiles}) that the listing names (when the listing answered without an
 * error: its lines are `path<TAB>status…`), each only when offered, each once. Undefined for any
 * other system prompt.
 *
 * @example
 * offlineReviewToolCall({ system: systemPrompt(agent), task: chunkMessage(…), offered: [list, read], results: [] });
 * // → { name: 'agentflow__list_changed_files', input: {} }
 */
export function offlineReviewToolCall(turn: OfflineToolTurn): OfflineToolCall | undefined {
  if (!REVIEW_FORMAT.test(turn.system)) return undefined;
  const offered = new Set(turn.offered.map((t) => t.name));
  const plan: OfflineToolCall[] = [];
  if (offered.has(LIST_CHANGED_FILES)) plan.push({ name: LIST_CHANGED_FILES, input: {} });
  if (offered.has(READ_FILE)) {
    const listing = turn.results.find((r) => r.name === LIST_CHANGED_FILES && !r.isError);
    const listed = listing ? new Set(listing.text.split('\n').map((l) => l.split('\t', 1)[0])) : undefined;
    const path = readableChunkFiles(turn.task).find((p) => listed?.has(p) ?? true);
    if (path !== undefined) plan.push({ name: READ_FILE, input: { path } });
  }
  // Never more calls than planned, even when a result names no call.
  if (turn.results.length >= plan.length) return undefined;
  const done = new Set(turn.results.map((r) => r.name));
  return plan.find((c) => !done.has(c.name));
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The prefix the OpenAI adapter puts before an error result's text (lambdas/adapters/providers.ts). */
const OPENAI_ERROR_PREFIX = 'ERROR: ';

/**
 * The offered tools and the tool results of an OpenAI chat completions request: `tools[].function`
 * (`parameters` as the input schema) and each `role: "tool"` message, named by the assistant
 * `tool_calls` entry its `tool_call_id` answers (a text starting `ERROR: ` is an error result).
 */
export function openAIToolTurn(
  tools: unknown,
  messages: ReadonlyArray<{
    role: string;
    content: unknown;
    tool_call_id?: string;
    tool_calls?: Array<{ id?: string; function?: { name?: string } }>;
  }>,
): Pick<OfflineToolTurn, 'offered' | 'results'> {
  const offered = (Array.isArray(tools) ? tools : []).flatMap((t) => {
    const fn = isRecord(t) && isRecord(t.function) ? t.function : undefined;
    return fn && typeof fn.name === 'string' ? [{ name: fn.name, inputSchema: isRecord(fn.parameters) ? fn.parameters : {} }] : [];
  });
  const names = new Map<string, string>();
  const results: OfflineToolResult[] = [];
  for (const m of messages) {
    for (const c of m.tool_calls ?? []) if (c.id) names.set(c.id, c.function?.name ?? '');
    if (m.role !== 'tool') continue;
    const text = typeof m.content === 'string' ? m.content : '';
    const isError = text.startsWith(OPENAI_ERROR_PREFIX);
    results.push({ name: names.get(m.tool_call_id ?? '') ?? '', text: isError ? text.slice(OPENAI_ERROR_PREFIX.length) : text, isError });
  }
  return { offered, results };
}

/**
 * The offered tools and the tool results of a Bedrock Converse request: `toolConfig.tools[].toolSpec`
 * (`inputSchema.json`) and each `toolResult` block (its text blocks joined, JSON blocks as JSON;
 * `status: "error"` an error), named by the `toolUse` block its `toolUseId` answers.
 */
export function bedrockToolTurn(
  toolConfig: unknown,
  messages: ReadonlyArray<{ content: ReadonlyArray<Record<string, unknown>> }>,
): Pick<OfflineToolTurn, 'offered' | 'results'> {
  const tools = isRecord(toolConfig) && Array.isArray(toolConfig.tools) ? toolConfig.tools : [];
  const offered = tools.flatMap((t) => {
    const spec = isRecord(t) && isRecord(t.toolSpec) ? t.toolSpec : undefined;
    const json = spec && isRecord(spec.inputSchema) && isRecord(spec.inputSchema.json) ? spec.inputSchema.json : {};
    return spec && typeof spec.name === 'string' ? [{ name: spec.name, inputSchema: json }] : [];
  });
  const names = new Map<string, string>();
  const results: OfflineToolResult[] = [];
  for (const m of messages) {
    for (const block of m.content) {
      const use = block.toolUse;
      if (isRecord(use) && typeof use.toolUseId === 'string') names.set(use.toolUseId, typeof use.name === 'string' ? use.name : '');
      const result = block.toolResult;
      if (!isRecord(result)) continue;
      const parts = Array.isArray(result.content) ? result.content : [];
      const text = parts
        .map((p) => (isRecord(p) && typeof p.text === 'string' ? p.text : isRecord(p) && 'json' in p ? JSON.stringify(p.json) : ''))
        .join('\n');
      results.push({ name: names.get(String(result.toolUseId ?? '')) ?? '', text, isError: result.status === 'error' });
    }
  }
  return { offered, results };
}
