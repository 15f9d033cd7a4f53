/**
 * How the offline model server answers a request that offers tools, the same way every time:
 * the task (the first user message) says which tools to call, one line each —
 *
 *     call <tool> {"json": "input"}
 *
 * — and the model calls them in that order, one per turn (the turn is the number of tool results
 * the conversation holds already). `repeat <tool> {…}` calls that tool on every turn, so a loop only
 * ends at its iteration cap. When every `call` line has its result, the model answers in text as it
 * would without tools. A deterministic stand-in, not a model: it reads no tool output.
 */

/** One tool call the offline model makes on this turn. */
export interface OfflineToolCall {
  readonly name: string;
  readonly input: Record<string, unknown>;
}

const DIRECTIVE = /^\s*(call|repeat)\s+([a-zA-Z0-9_-]{1,64})(?:\s+(\{.*\}))?\s*$/gm;

/**
 * The tool call of this turn, or undefined when the model answers in text instead.
 * @param task the first user message
 * @param resultsSoFar the tool results the conversation holds
 * @param offered the names of the tools the request offers (a directive naming another tool is called anyway: the caller must refuse it)
 */
export function offlineToolCall(task: string, resultsSoFar: number, offered: readonly string[]): OfflineToolCall | undefined {
  if (offered.length === 0) return undefined;
  const directives = [...task.matchAll(DIRECTIVE)].map((m) => {
    let input: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(m[3] ?? '{}') as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) input = parsed as Record<string, unknown>;
    } catch {
      // A directive with broken JSON calls the tool without input.
    }
    return { repeat: m[1] === 'repeat', name: m[2] ?? '', input };
  });
  const repeat = directives.find((d) => d.repeat);
  if (repeat) return { name: repeat.name, input: repeat.input };
  const next = directives[resultsSoFar];
  return next ? { name: next.name, input: next.input } : undefined;
}
