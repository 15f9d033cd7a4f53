import { BudgetExceededError, ProviderTimeoutError } from './errors.js';
import type { GatewayAnswer, GatewayCall } from './gateway.js';
import type { ChatMessage, ToolResultMessage, ToolSpec } from './ports.js';
import { notCalled, type Toolbox, type ToolCallRecord } from './tools.js';

/** Iterations (model calls) an agent's tool loop makes at most unless its `max_iterations` says otherwise. */
export const DEFAULT_MAX_ITERATIONS = 8;

/**
 * Tool calls made at most of one model answer (8). The calls after the eighth are not made: each is
 * recorded as refused and answered to the model `not called: at most 8 tool calls per turn`, so one
 * answer cannot run a burst of actions (a hundred `create_issue` calls); the model may ask again in
 * its next turn, and `max_iterations` bounds the turns. AgentFlow's own limit, not a provider's.
 */
export const MAX_TOOL_CALLS_PER_TURN = 8;

/** How a tool loop ended. */
export interface ToolLoopResult {
  /** `complete`: the model answered; `partial`: the loop stopped first (see `reason`) with what it had. */
  readonly status: 'complete' | 'partial';
  /** Why a partial loop stopped: the iteration cap, the budget, the time, a cut answer or a server that offered no tools. */
  readonly reason?: string;
  /** The model's last text (its answer when complete). */
  readonly text: string;
  /** Every tool call, in order, as recorded (redacted, capped). */
  readonly calls: readonly ToolCallRecord[];
  /** Model calls made. */
  readonly iterations: number;
  /** The model calls' settled cost, in micro-USD and USD (the ledger's figures, summed). */
  readonly costMicro: number;
  readonly costUsd: number;
  /** The last answer of the gateway (model, usage, attempts), when one came. */
  readonly last?: GatewayAnswer;
  /** Servers whose tools could not be listed, with why (their tools were not offered). */
  readonly unavailable: ReadonlyArray<{ server: string; error: string }>;
}

/** Less time than this left before the deadline: no further model or tool call starts (ms). */
const MIN_STEP_MS = 2_000;

/**
 * Runs an agent as a tool loop: every model call goes through the gateway (its budget reserved per
 * iteration for the whole conversation so far and the tool specs, the breaker, the rate limits),
 * offered the toolbox's tools (listed within the time left); each tool the model asks for, up to
 * {@link MAX_TOOL_CALLS_PER_TURN} per answer, is called through the {@link Toolbox} (allow-list,
 * write policy, breaker, timeout, redaction) and its result given back, until the model answers
 * without a tool call. A call past the cap, or with less than 2 s left, is not made: it is recorded
 * as refused and the model is told why.
 *
 * Never a silent success: reaching `maxIterations` with the model still calling tools, running out
 * of budget ({@link BudgetExceededError}) or of time, an answer cut at `maxTokens`, or a configured
 * server that offered no tools ends the loop as `partial` with what it has and why. Other gateway
 * errors are thrown with the calls made so far on the error's `toolCalls` (so actions already taken
 * are still recorded). A tool's failure is not the loop's: the model gets the reason and goes on.
 *
 * @throws Error when `call.answerFormat` is set: a loop ends in text (its answer is parsed after)
 * @example
 * ```ts
 * const r = await runToolLoop(gateway, call, toolbox, { maxIterations: 5, requester: 'U024BE7LH' });
 * // r.status === 'partial' → report PARTIAL with r.reason; r.calls → the report's tool table
 * ```
 */
export async function runToolLoop(
  gateway: { complete(call: GatewayCall): Promise<GatewayAnswer> },
  call: Omit<GatewayCall, 'tools'>,
  toolbox: Toolbox,
  options: { maxIterations?: number; requester?: string; now?: () => number } = {},
): Promise<ToolLoopResult> {
  if (call.answerFormat) throw new Error('a tool loop answers in text: give its answer format in the prompt, not as answerFormat');
  const maxIterations = options.maxIterations ?? DEFAULT_MAX_ITERATIONS;
  const now = options.now ?? Date.now;
  // The caller's token count is of its first prompt only: each iteration is counted again (history, tools).
  const { inputTokens: _firstCount, ...base } = call;
  const messages: ChatMessage[] = [...call.messages];
  const calls: ToolCallRecord[] = [];
  let unavailable: ToolLoopResult['unavailable'] = [];
  let costMicro = 0;
  let costUsd = 0;
  let text = '';
  let last: GatewayAnswer | undefined;
  const result = (status: ToolLoopResult['status'], iterations: number, reason?: string): ToolLoopResult => ({
    status,
    ...(reason ? { reason } : {}),
    text,
    calls,
    iterations,
    costMicro,
    costUsd,
    unavailable,
    ...(last ? { last } : {}),
  });
  const outOfTime = () => call.deadlineMs - now() < MIN_STEP_MS;
  // The first iteration's time check comes before listing: listing gets what is left but the MIN_STEP_MS of that model call.
  const left = call.deadlineMs - now();
  if (left < MIN_STEP_MS) return result('partial', 0, 'the agent ran out of time');
  const tools: ToolSpec[] = (await toolbox.definitions({ timeoutMs: left - MIN_STEP_MS })).map((d) => ({
    name: d.name,
    description: d.description,
    inputSchema: d.inputSchema,
  }));
  unavailable = toolbox.unavailable();
  for (let i = 1; i <= maxIterations; i++) {
    if (i > 1 && outOfTime()) return result('partial', i - 1, 'the agent ran out of time');
    let answer: GatewayAnswer;
    try {
      answer = await gateway.complete({ ...base, messages, ...(tools.length > 0 ? { tools } : {}) });
    } catch (e) {
      if (e instanceof BudgetExceededError) return result('partial', i - 1, `the budget ran out: ${e.message}`);
      if (e instanceof ProviderTimeoutError && outOfTime()) return result('partial', i - 1, 'the agent ran out of time');
      if (e instanceof Error) Object.assign(e, { toolCalls: calls });
      throw e;
    }
    last = answer;
    costMicro += answer.costMicro;
    costUsd += answer.costUsd;
    text = answer.text;
    // A cut answer's tool calls may be cut too: none of them runs.
    if (answer.truncated) return result('partial', i, `the answer was cut at max_tokens (${call.maxTokens})`);
    const asked = answer.toolCalls ?? [];
    if (asked.length === 0) {
      if (unavailable.length > 0) {
        return result('partial', i, `answered without the tools of ${unavailable.map((u) => `${u.server} (${u.error})`).join(', ')}`);
      }
      return result('complete', i);
    }
    messages.push({ role: 'assistant', content: answer.text, toolCalls: [...asked] });
    const results: ToolResultMessage[] = [];
    for (const [k, c] of asked.entries()) {
      const left = call.deadlineMs - now();
      const record: ToolCallRecord =
        k >= MAX_TOOL_CALLS_PER_TURN
          ? await notCalled(c, `not called: at most ${MAX_TOOL_CALLS_PER_TURN} tool calls per turn`)
          : left < MIN_STEP_MS
            ? await notCalled(c, 'no time left for this tool call')
            : await toolbox.call(c.name, c.input, {
                timeoutMs: left - MIN_STEP_MS / 2,
                ...(options.requester ? { requester: options.requester } : {}),
              });
      calls.push(record);
      results.push({
        id: c.id,
        content: record.ok ? (record.output ?? '') : (record.error ?? 'failed'),
        ...(record.ok ? {} : { isError: true }),
      });
    }
    messages.push({ role: 'user', content: '', toolResults: results });
  }
  return result('partial', maxIterations, `reached max_iterations (${maxIterations}) with the model still calling tools`);
}
