import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import {
  exitCodeFor,
  FINAL_RUN_STATUSES,
  type FinalRunStatus,
  formatProgress,
  formatRunLine,
  ProgressTracker,
  runOutcome,
} from '../../../lib/local/progress.js';
import type { ProgressEvent } from '../../../lib/local/runtime.js';

const agentOf = (input: unknown) => {
  const name = (input as { agent?: { name?: unknown } } | null)?.agent?.name;
  return typeof name === 'string' ? name : undefined;
};
const describeOutput = (output: unknown) => {
  const status = (output as { status?: unknown } | null)?.status;
  return typeof status === 'string' ? status : undefined;
};

const named = (name: string, message: string, options?: { cause?: unknown }) => Object.assign(new Error(message, options), { name });

/**
 * Runs `definition` on aws-local-stepfunctions (the engine of the local runtime) with `handlers`
 * for its Task states and returns the progress lines, durations written as `N ms`.
 */
async function progressOf(
  definition: Record<string, unknown>,
  handlers: Record<string, (input: unknown) => Promise<unknown>>,
  input: unknown = {},
): Promise<string[]> {
  const sm = new StateMachine(definition as unknown as StateMachineDefinition, { validationOptions: { checkArn: false } });
  const exec = sm.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: handlers as never,
      retryIntervalOverrides: Object.fromEntries(Object.keys(handlers).map((n) => [n, 0])),
    },
  });
  const tracker = new ProgressTracker('exec-1', { agentOf, describe: describeOutput });
  const events: ProgressEvent[] = [];
  const logs = (async () => {
    for await (const ev of exec.eventLogs) events.push(...tracker.push(ev));
    events.push(...tracker.flush());
  })();
  await exec.result.catch(() => undefined);
  await logs;
  return events.map((e) => formatProgress(e)).flatMap((l) => (l ? [l.replace(/\(\d+ ms\)/, '(N ms)')] : []));
}

const task = (extra: Record<string, unknown>) => ({ Type: 'Task', Resource: 'arn:aws:states:::lambda:invoke', ...extra });

describe('Class: ProgressTracker', () => {
  it('prints a caught error once, with its name and message, and no ✔ for that state', async () => {
    // Prepare
    const definition = {
      StartAt: 'Load context',
      States: {
        'Load context': task({
          Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Record failure' }],
          End: true,
        }),
        'Record failure': { Type: 'Pass', End: true },
      },
    };
    const handlers = {
      // The thrown error has a cause: the engine's StateFailed Cause is that cause, the Catch output keeps the message.
      'Load context': async () => {
        throw named('InvalidInputError', '../app is not a git repository', { cause: new Error('fatal: not a git repository') });
      },
    };

    // Act
    const lines = await progressOf(definition, handlers);

    // Assess
    expect(lines).toEqual([
      '▶ Load context',
      '✖ Load context (N ms) — InvalidInputError: ../app is not a git repository',
      '▶ Record failure',
      '✔ Record failure (N ms)',
    ]);
  });

  it('prints each retry with the error that caused it, then the state’s one outcome', async () => {
    // Prepare
    let calls = 0;
    const definition = {
      StartAt: 'Aggregate findings',
      States: {
        'Aggregate findings': task({ Retry: [{ ErrorEquals: ['States.ALL'], MaxAttempts: 3 }], End: true }),
      },
    };
    const handlers = {
      'Aggregate findings': async () => {
        calls++;
        if (calls < 3) throw named('ProviderThrottledError', `slow down ${calls}`);
        return { status: 'ok' };
      },
    };

    // Act
    const lines = await progressOf(definition, handlers);

    // Assess
    expect(lines).toEqual([
      '▶ Aggregate findings',
      '↻ Aggregate findings — ProviderThrottledError: slow down 1; attempt 2',
      '↻ Aggregate findings — ProviderThrottledError: slow down 2; attempt 3',
      '✔ Aggregate findings (N ms) — ok',
    ]);
  });

  it('prints an agent’s uncaught failure in its Map iteration and the Map state’s caught error, neither with ✔', async () => {
    // Prepare
    const definition = {
      StartAt: 'Agents: review',
      States: {
        'Agents: review': {
          Type: 'Map',
          ItemsPath: '$.agents',
          MaxConcurrency: 1,
          Iterator: { StartAt: 'Run agent: review', States: { 'Run agent: review': task({ End: true }) } },
          Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Done' }],
          End: true,
        },
        Done: { Type: 'Succeed' },
      },
    };
    const handlers = {
      'Run agent: review': async (input: unknown) => {
        if (agentOf(input) === 'security') throw named('BudgetExceededError', 'the run budget is spent');
        return { status: 'partial' };
      },
    };

    // Act
    const lines = await progressOf(definition, handlers, { agents: [{ agent: { name: 'code-review' } }, { agent: { name: 'security' } }] });

    // Assess
    expect(lines).toEqual([
      '▶ Agents: review',
      '▶   Run agent: review [code-review]',
      '▲   Run agent: review [code-review] (N ms) — partial',
      '▶   Run agent: review [security]',
      '✖   Run agent: review [security] — BudgetExceededError: the run budget is spent',
      '✖ Agents: review (N ms) — BudgetExceededError: the run budget is spent',
      '▶ Done',
      '✔ Done (N ms)',
    ]);
  });

  it('prints a Fail state that ends the execution as failed, with its error and cause', async () => {
    // Prepare
    const definition = {
      StartAt: 'Run failed',
      States: { 'Run failed': { Type: 'Fail', Error: 'AgentFlowRunFailed', Cause: 'every agent failed' } },
    };

    // Act
    const lines = await progressOf(definition, {});

    // Assess
    expect(lines).toEqual(['▶ Run failed', '✖ Run failed — AgentFlowRunFailed: every agent failed']);
  });
});

describe('Function: formatProgress', () => {
  const event = (e: Partial<ProgressEvent>): ProgressEvent => ({ execution: 'x', kind: 'exited', state: 'Run agent: review', ...e });

  it('marks an agent’s exit by the outcome its result reports', () => {
    expect(formatProgress(event({ agent: 'security', ms: 5, detail: 'failed, 0 findings', outcome: 'failed' }))).toBe(
      '✖   Run agent: review [security] (5 ms) — failed, 0 findings',
    );
    expect(formatProgress(event({ agent: 'security', outcome: 'partial' }))).toBe('▲   Run agent: review [security]');
    expect(formatProgress(event({ agent: 'security' }))).toBe('✔   Run agent: review [security]');
  });

  it('keeps an error on one line of at most 300 characters', () => {
    // Act
    const line = formatProgress(
      event({ kind: 'caught', state: 'Load context', error: { name: 'Error', message: `a\nb\n${'c'.repeat(400)}` } }),
    );

    // Assess
    expect(line).toMatch(/^✖ Load context — Error: a b c+…$/);
    expect(line?.length).toBeLessThanOrEqual('✖ Load context — '.length + 300);
  });

  it('prints nothing for the Pass state a Catch routes a failed agent to', () => {
    expect(formatProgress(event({ kind: 'entered', state: 'Agent failed: review', agent: 'security' }))).toBeUndefined();
    expect(formatProgress(event({ kind: 'exited', state: 'Agent failed: review', agent: 'security' }))).toBeUndefined();
  });
});

describe('Function: runOutcome', () => {
  const ok = { status: 'SUCCEEDED' as const, output: {} };

  it('takes the run record’s status and reason', () => {
    expect(runOutcome({ status: 'PARTIAL', reason: '2 of 4 agents failed' }, ok)).toEqual({
      status: 'PARTIAL',
      reason: '2 of 4 agents failed',
    });
    expect(runOutcome({ status: 'SKIPPED', reason: 'no matching files' }, ok)).toEqual({ status: 'SKIPPED', reason: 'no matching files' });
    expect(runOutcome({ status: 'STOPPED', reason: 'rejected by <@U1>' }, ok)).toEqual({ status: 'STOPPED', reason: 'rejected by <@U1>' });
  });

  it('takes a failed record’s error as the reason', () => {
    expect(runOutcome({ status: 'FAILED', error: 'every agent failed' }, { status: 'FAILED', output: null, error: 'X: y' })).toEqual({
      status: 'FAILED',
      reason: 'every agent failed',
    });
  });

  it('falls back to the execution: its output’s status, or FAILED with its error', () => {
    expect(
      runOutcome(undefined, {
        status: 'SUCCEEDED',
        output: { status: 'PARTIAL', agents: [{ status: 'failed' }, { status: 'succeeded' }] },
      }),
    ).toEqual({
      status: 'PARTIAL',
      reason: '1 of 2 agents failed',
    });
    expect(runOutcome(undefined, { status: 'SUCCEEDED', output: null })).toEqual({ status: 'SUCCEEDED' });
    expect(runOutcome({ status: 'RUNNING' }, { status: 'FAILED', output: null, error: 'States.Runtime: bad path' })).toEqual({
      status: 'FAILED',
      reason: 'States.Runtime: bad path',
    });
  });

  it('rejects a succeeded record when the execution itself failed', () => {
    expect(runOutcome({ status: 'SUCCEEDED' }, { status: 'FAILED', output: null, error: 'States.Timeout: task timed out' })).toEqual({
      status: 'FAILED',
      reason: 'States.Timeout: task timed out',
    });
  });
});

describe('Function: exitCodeFor', () => {
  it.each<[FinalRunStatus, number, number]>([
    ['SUCCEEDED', 0, 0],
    ['SKIPPED', 0, 0],
    ['STOPPED', 0, 0],
    ['PARTIAL', 2, 1],
    ['FAILED', 1, 1],
  ])('exits %s with %i (%i with --fail-on-partial)', (outcome, code, failOnPartial) => {
    expect(exitCodeFor(outcome)).toBe(code);
    expect(exitCodeFor(outcome, { failOnPartial: true })).toBe(failOnPartial);
  });

  it('has a code for every final status of a run record', () => {
    expect([...FINAL_RUN_STATUSES].sort()).toEqual(['FAILED', 'PARTIAL', 'SKIPPED', 'STOPPED', 'SUCCEEDED']);
    for (const s of FINAL_RUN_STATUSES) expect([0, 1, 2]).toContain(exitCodeFor(s));
  });
});

describe('Function: formatRunLine', () => {
  it('prints the outcome, its reason on one line, the duration and transitions', () => {
    const stats = { durationMs: 1200, transitions: 24 };
    expect(formatRunLine('exec-1', { status: 'FAILED', reason: 'every agent\nfailed' }, stats)).toBe(
      '✖ run exec-1 FAILED: every agent failed (1200 ms, 24 state transitions)',
    );
    expect(formatRunLine('exec-1', { status: 'PARTIAL', reason: '2 of 4 agents failed' }, stats)).toBe(
      '▲ run exec-1 PARTIAL: 2 of 4 agents failed (1200 ms, 24 state transitions)',
    );
    expect(formatRunLine('exec-1', { status: 'SUCCEEDED' }, stats)).toBe('✔ run exec-1 SUCCEEDED (1200 ms, 24 state transitions)');
  });
});
