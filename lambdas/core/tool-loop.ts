import { BudgetExceededError } from './errors.js';
import type { GatewayAnswer, GatewayCall } from './gateway.js';
import type { ChatMessage, ToolResultMessage, ToolSpec } from './ports.js';
import type { Toolbox, ToolCallRecord } from './tools.js';

/** Iterations (model calls) an agent's tool loop makes at most unless its `max_iterations` says otherwise. */
export const DEFAULT_MAX_ITERATIONS = 8;

/** How a tool loop ended. */
export interface ToolLoopResult {
  /** `complete`: the model answered; `partial`: the loop stopped first (see `reason`) with what it had. */
  readonly status: 'complete' | 'partial';
  /** Why a partial loop stopped: the iteration cap, the budget, or the time. */
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
}

/**
 * Runs an agent as a tool loop: every model call goes through the gateway (its budget reserved per
 * iteration, the breaker, the rate limits), offered the toolbox's tools; each tool the model asks
 * for is called through the {@link Toolbox} (allow-list, breaker, timeout, redaction) and its result
 * given back, until the model answers without a tool call.
 *
 * Never a silent success: reaching `maxIterations` with the model still calling tools, running out
 * of budget ({@link BudgetExceededError}) or of time ends the loop as `partial` with what it has and
 * why. Other gateway errors are thrown (the agent failed). A tool's failure is not the loop's: the
 * model gets the reason and goes on.
 *
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
  const maxIterations = options.maxIterations ?? DEFAULT_MAX_ITERATIONS;
  const now = options.now ?? Date.now;
  const tools: ToolSpec[] = (await toolbox.definitions()).map((d) => ({
    name: d.name,
    description: d.description,
    inputSchema: d.inputSchema,
  }));
  const messages: ChatMessage[] = [...call.messages];
  const calls: ToolCallRecord[] = [];
  let costMicro = 0;
  let costUsd = 0;
  let text = '';
  let last: GatewayAnswer | undefined;
  const partial = (iterations: number, reason: string): ToolLoopResult => ({
    status: 'partial',
    reason,
    text,
    calls,
    iterations,
    costMicro,
    costUsd,
    ...(last ? { last } : {}),
  });
  for (let i = 1; i <= maxIterations; i++) {
    if (now() >= call.deadlineMs) return partial(i - 1, 'the agent ran out of time');
    let answer: GatewayAnswer;
    try {
      answer = await gateway.complete({ ...call, messages, ...(tools.length > 0 ? { tools } : {}), cache: call.cache ?? true });
    } catch (e) {
      if (e instanceof BudgetExceededError) return partial(i - 1, `the budget ran out: ${e.message}`);
      throw e;
    }
    last = answer;
    costMicro += answer.costMicro;
    costUsd += answer.costUsd;
    text = answer.text;
    const asked = answer.toolCalls ?? [];
    if (asked.length === 0) return { status: 'complete', text, calls, iterations: i, costMicro, costUsd, last };
    messages.push({ role: 'assistant', content: answer.text, toolCalls: [...asked] });
    const results: ToolResultMessage[] = [];
    for (const c of asked) {
      const record = await toolbox.call(c.name, c.input, options.requester ? { requester: options.requester } : {});
      calls.push(record);
      results.push({
        id: c.id,
        content: record.ok ? (record.output ?? '') : (record.error ?? 'failed'),
        ...(record.ok ? {} : { isError: true }),
      });
    }
    messages.push({ role: 'user', content: '', toolResults: results });
  }
  return partial(maxIterations, `reached max_iterations (${maxIterations}) with the model still calling tools`);
}
