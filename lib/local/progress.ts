import type { RunRecord } from '../../lambdas/core/contracts.js';
import type { ProgressEvent } from './runtime.js';

/**
 * The events of aws-local-stepfunctions' `eventLogs` this module reads (its `EventLog` union, which
 * the package does not export): `StateFailed` carries the error as `Error` (its name) and `Cause`
 * (`error.cause ?? error.message`); `StateRetried` the retry count as `retry.attempt`;
 * `StateCaught` only the matching `catch.catcher`, whose `ResultPath` locates `{ Error, Cause }`
 * (Cause = the message) in the output of the `StateExited` event that follows.
 */
export interface EngineEvent {
  type: string;
  timestamp: number;
  /** The Map iteration a nested state's event belongs to. */
  index?: number;
  state?: { name: string; type: string; input: unknown; output?: unknown };
  Error?: string;
  Cause?: unknown;
  retry?: { attempt: number };
  catch?: { catcher: { ResultPath?: string } };
}

/** An error as progress shows it: the name Retry/Catch match and its message. */
export interface ProgressError {
  name: string;
  message: string;
}

interface Pending {
  state: string;
  agent?: string;
  error: ProgressError;
  index?: number;
  resultPath?: string;
}

/** The message of a `Cause` (a string, an Error the task threw as `cause`, or any JSON). */
function causeText(cause: unknown): string {
  if (typeof cause === 'string') return cause;
  if (cause instanceof Error) return cause.message;
  const message = (cause as { message?: unknown } | null)?.message;
  if (typeof message === 'string') return message;
  return cause === undefined ? '' : JSON.stringify(cause);
}

/** The value at a JSONPath of the form `$` or `$.a.b` (what compiled Catch ResultPaths use), else undefined. */
function valueAt(json: unknown, path: string | undefined): unknown {
  if (path === undefined || path === '$') return json;
  if (!/^\$(\.[A-Za-z_][\w-]*)+$/.test(path)) return undefined;
  let v = json;
  for (const key of path.slice(2).split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
  return v;
}

/** The `{ Error, Cause }` a Catch put at `resultPath` of a state's output, when it is there. */
function caughtError(output: unknown, resultPath: string | undefined): ProgressError | undefined {
  const v = valueAt(output, resultPath) as { Error?: unknown; Cause?: unknown } | undefined;
  return typeof v?.Error === 'string' ? { name: v.Error, message: causeText(v.Cause) } : undefined;
}

/** The outcome an agent task's result reports (`status: 'partial' | 'failed'`), when not success. */
function outcomeOf(output: unknown): ProgressEvent['outcome'] {
  const status = (output as { status?: unknown } | null)?.status;
  return status === 'failed' || status === 'partial' ? status : undefined;
}

/**
 * Turns the engine's event log into progress events, one outcome per state execution: a state
 * that fails is held until the engine retries it (`retried`, with the error), catches it
 * (`caught`, with the error, in place of its `exited`) or gives up on it (`failed`, when its Map
 * iteration or the execution fails). Pure apart from its own bookkeeping.
 *
 * @example
 * const tracker = new ProgressTracker('exec-1', { agentOf, describe });
 * for await (const ev of execution.eventLogs) for (const p of tracker.push(ev)) print(formatProgress(p));
 * for (const p of tracker.flush()) print(formatProgress(p));
 */
export class ProgressTracker {
  private readonly enteredAt = new Map<string, number>();
  /** Failed, not yet retried, caught or given up on; by state and iteration. */
  private readonly failed = new Map<string, Pending>();
  /** Caught, waiting for the state's `StateExited`. */
  private readonly caught = new Map<string, Pending>();

  constructor(
    private readonly execution: string,
    private readonly read: {
      /** The agent a state's input belongs to (states inside an agent Map iteration). */
      agentOf: (input: unknown) => string | undefined;
      /** A short description of a Task state's output. */
      describe: (output: unknown) => string | undefined;
    },
  ) {}

  /** The progress events one engine event makes (none, one, or the failures it settles). */
  push(ev: EngineEvent): ProgressEvent[] {
    const s = ev.state;
    if (!s) {
      if (ev.type === 'MapIterationFailed') return this.settle((p) => p.index === ev.index);
      if (ev.type === 'ParallelBranchFailed') return this.settle((p) => p.index === undefined);
      if (ev.type === 'ExecutionFailed' || ev.type === 'ExecutionAborted' || ev.type === 'ExecutionTimeout') return this.flush();
      return [];
    }
    const key = `${s.name}#${ev.index ?? ''}`;
    const agent = this.read.agentOf(s.input);
    const base = { execution: this.execution, state: s.name, ...(agent ? { agent } : {}) };
    const t0 = this.enteredAt.get(key);
    const ms = t0 !== undefined ? { ms: ev.timestamp - t0 } : {};
    switch (ev.type) {
      case 'StateEntered':
        this.enteredAt.set(key, ev.timestamp);
        return [{ ...base, kind: 'entered' }];
      case 'StateFailed':
        this.failed.set(key, {
          state: s.name,
          ...(agent ? { agent } : {}),
          error: { name: ev.Error ?? 'Error', message: causeText(ev.Cause) },
          ...(ev.index !== undefined ? { index: ev.index } : {}),
        });
        return [];
      case 'StateRetried': {
        const f = this.failed.get(key);
        this.failed.delete(key);
        return [{ ...base, kind: 'retried', attempt: (ev.retry?.attempt ?? 0) + 1, ...(f ? { error: f.error } : {}) }];
      }
      case 'StateCaught': {
        const f = this.failed.get(key);
        this.failed.delete(key);
        const resultPath = ev.catch?.catcher.ResultPath;
        this.caught.set(key, {
          state: s.name,
          ...(agent ? { agent } : {}),
          error: f?.error ?? { name: 'Error', message: '' },
          ...(resultPath !== undefined ? { resultPath } : {}),
        });
        return [];
      }
      case 'StateExited': {
        this.enteredAt.delete(key);
        const c = this.caught.get(key);
        if (c) {
          this.caught.delete(key);
          // The catcher's copy carries the thrown error's own message (the StateFailed Cause may be its `cause`).
          return [{ ...base, ...ms, kind: 'caught', error: caughtError(s.output, c.resultPath) ?? c.error }];
        }
        const detail = s.type === 'Task' ? this.read.describe(s.output) : undefined;
        const outcome = agent ? outcomeOf(s.output) : undefined;
        return [{ ...base, ...ms, kind: 'exited', ...(detail ? { detail } : {}), ...(outcome ? { outcome } : {}) }];
      }
      default:
        return [];
    }
  }

  /** Every failure not reported yet (the execution ended): `failed`, or `caught` when a Catch took it. */
  flush(): ProgressEvent[] {
    return this.settle(() => true);
  }

  private settle(which: (p: Pending) => boolean): ProgressEvent[] {
    const out: ProgressEvent[] = [];
    for (const [pending, kind] of [
      [this.failed, 'failed'],
      [this.caught, 'caught'],
    ] as const) {
      for (const [key, p] of pending) {
        if (!which(p)) continue;
        pending.delete(key);
        out.push({ execution: this.execution, kind, state: p.state, ...(p.agent ? { agent: p.agent } : {}), error: p.error });
      }
    }
    return out;
  }
}

/** An error on one line: `Name: message`, whitespace collapsed, at most 300 characters. */
function errorLine(error: ProgressError | undefined): string {
  if (!error) return 'error (no detail)';
  const text = `${error.name}${error.message ? `: ${error.message}` : ''}`.replace(/\s+/g, ' ').trim();
  return text.length > 300 ? `${text.slice(0, 299)}…` : text;
}

/** The Pass states a compiled Catch routes a failed agent to; the agent's own `caught` line reports it. */
const isCatchStep = (state: string) => state.startsWith('Agent failed');

const OUTCOME_MARK: Record<NonNullable<ProgressEvent['outcome']> | 'succeeded', string> = { succeeded: '✔', partial: '▲', failed: '✖' };

/**
 * Formats a progress event as one line (agents inside Map states indented), or undefined for
 * events not worth a line. Each state execution gets one outcome line: `✔` (or `▲` / `✖` when an
 * agent's result says partial / failed), `✖ … — Name: message` when it failed or was caught,
 * `↻ … — Name: message; attempt n` before a retry.
 */
export function formatProgress(e: ProgressEvent): string | undefined {
  if (isCatchStep(e.state)) return undefined;
  const who = e.agent ? `  ${e.state} [${e.agent}]` : e.state;
  const ms = e.ms !== undefined ? ` (${e.ms} ms)` : '';
  switch (e.kind) {
    case 'entered':
      return `▶ ${who}`;
    case 'exited':
      return `${OUTCOME_MARK[e.outcome ?? 'succeeded']} ${who}${ms}${e.detail ? ` — ${e.detail}` : ''}`;
    case 'retried':
      return `↻ ${who} — ${errorLine(e.error)}; attempt ${e.attempt ?? '?'}`;
    case 'caught':
    case 'failed':
      return `✖ ${who}${ms} — ${errorLine(e.error)}`;
    default: {
      const never: never = e.kind;
      return String(never);
    }
  }
}

/** What a run came to (DESIGN §12): the run record's status once the execution ended. */
export type FinalRunStatus = Exclude<RunRecord['status'], 'RUNNING'>;

/** Exit code of `agentflow run` per final status (DESIGN §12); PARTIAL is 1 with `--fail-on-partial`. */
const EXIT_CODES: Record<FinalRunStatus, number> = { SUCCEEDED: 0, PARTIAL: 2, FAILED: 1, SKIPPED: 0, STOPPED: 0 };

/** Every final status, from the exhaustive table. */
export const FINAL_RUN_STATUSES = Object.keys(EXIT_CODES) as FinalRunStatus[];

const isFinal = (s: unknown): s is FinalRunStatus => typeof s === 'string' && Object.hasOwn(EXIT_CODES, s);

/** A run's outcome and the text that explains it (the record's `reason`, or its `error`). */
export interface RunReport {
  status: FinalRunStatus;
  reason?: string;
}

/**
 * The outcome of a finished run: the run record's status (as publish or the runtime wrote it)
 * with its `reason` or `error`; without a record, the execution output's `status` (the run
 * summary's), or FAILED when the execution failed. An execution that failed after the record said
 * SUCCEEDED or PARTIAL is FAILED, with the execution's error. A PARTIAL run without a reason gets
 * one from the summary's agents (`2 of 4 agents failed`).
 */
export function runOutcome(
  record: Pick<RunRecord, 'status' | 'reason' | 'error'> | undefined,
  execution: { status: 'SUCCEEDED' | 'FAILED'; output: unknown; error?: string | undefined },
): RunReport {
  const output = (execution.output ?? undefined) as { status?: unknown; reason?: unknown; agents?: unknown } | undefined;
  let status: FinalRunStatus;
  let reason: string | undefined;
  if (record && isFinal(record.status)) {
    status = record.status;
    reason = record.reason ?? record.error;
  } else if (execution.status === 'FAILED') {
    status = 'FAILED';
  } else {
    status = isFinal(output?.status) ? output.status : 'SUCCEEDED';
    reason = typeof output?.reason === 'string' ? output.reason : undefined;
  }
  if (execution.status === 'FAILED' && (status === 'SUCCEEDED' || status === 'PARTIAL')) {
    status = 'FAILED';
    reason = undefined;
  }
  if (status === 'FAILED') reason ??= execution.error;
  if (status === 'PARTIAL') reason ??= partialReason(output?.agents);
  return reason ? { status, reason } : { status };
}

function partialReason(agents: unknown): string | undefined {
  if (!Array.isArray(agents) || agents.length === 0) return undefined;
  const count = (s: string) => agents.filter((a) => (a as { status?: unknown } | null)?.status === s).length;
  const failed = count('failed');
  if (failed > 0) return `${failed} of ${agents.length} agents failed`;
  const partial = count('partial');
  return partial > 0 ? `${partial} of ${agents.length} agents reviewed part of their files` : undefined;
}

/**
 * Exit code of `agentflow run` for an outcome (DESIGN §12): 0 succeeded, skipped or stopped;
 * 2 partial (1 with `failOnPartial`, for CI jobs that only treat 1 as failure); 1 failed.
 */
export function exitCodeFor(status: FinalRunStatus, options: { failOnPartial?: boolean } = {}): number {
  return status === 'PARTIAL' && options.failOnPartial ? 1 : EXIT_CODES[status];
}

const RUN_MARK: Record<FinalRunStatus, string> = { SUCCEEDED: '✔', PARTIAL: '▲', FAILED: '✖', SKIPPED: '○', STOPPED: '■' };

/**
 * The last line of `agentflow run`: mark, execution, outcome, its reason, duration and state transitions.
 * @example
 * formatRunLine('local-x-pr-review', { status: 'PARTIAL', reason: '2 of 4 agents failed' }, { durationMs: 1200, transitions: 24 });
 * // '▲ run local-x-pr-review PARTIAL: 2 of 4 agents failed (1200 ms, 24 state transitions)'
 */
export function formatRunLine(execution: string, report: RunReport, stats: { durationMs: number; transitions: number }): string {
  const reason = report.reason ? `: ${report.reason.replace(/\s+/g, ' ').trim()}` : '';
  return `${RUN_MARK[report.status]} run ${execution} ${report.status}${reason} (${stats.durationMs} ms, ${stats.transitions} state transitions)`;
}
