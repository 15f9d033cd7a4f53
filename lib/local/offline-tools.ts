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
  if (directives.length === 0) return offlineRequestToolCall(turn);
  const repeat = directives.find((d) => d.repeat);
  if (repeat) return { name: repeat.name, input: repeat.input };
  const next = directives[turn.results.length];
  return next ? { name: next.name, input: next.input } : undefined;
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
