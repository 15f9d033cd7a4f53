/**
 * Orchestration overhead (part of `npm run bench`, issue 16): every offline-model answer is delayed
 * 1000 ms and the agents' phase — its Map state, from entered to exited, as the runtime reports it —
 * is divided by one answer's delay (one after another would be the agent count); the whole run's
 * wall time (LoadContext, the phase, Aggregate, Publish) is divided too. Median of 5 runs after a
 * warm-up. Two phases, each on its own {@link LocalRuntime}:
 *
 * - pr-review's 4-agent phase (pr-review without its verifier phase, a second round of calls);
 * - a 40-agent phase: pr-review's one phase with 40 copies of its agents (distinct names),
 *   MaxConcurrency 40 (the Map's most) and the gateway's rate limits raised (maxConcurrency 40,
 *   6000 requests/min per provider) so the figure measures orchestration, not throttling.
 *
 * Also the overhead per state transition: the wall time beyond the answer's delay divided by the
 * states the run entered (each Map iteration's states counted) — the Lambdas' work in process
 * (LoadContext, InvokeAgent around its model call, the gateway's table round trips, Aggregate,
 * Publish) spread over the states — and the local engine's own cost per state
 * (aws-local-stepfunctions running Task states whose handlers answer at once).
 */
import { join } from 'node:path';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import type { Change } from '../lambdas/core/contracts.js';
import { GatewayConfigSchema } from '../lambdas/core/gateway-config.js';
import { LocalRuntime } from '../lib/local/runtime.js';
import { type AgentPhase, mapStateName, type Workflow } from '../lib/workflow/index.js';
import { loadWorkspace, type Workspace } from '../lib/workspace.js';

type Record_ = (r: { name: string; value: number; unit: string; target: string | null }) => void;

/** Every offline-model answer's delay. */
export const DELAY_MS = 1000;
/** Agents of the large phase. */
export const WIDE_AGENTS = 40;

/** Timed runs per figure (the median is reported), after one warm-up run. */
const RUNS = 5;

/** The shipped workspace with pr-review replaced by `edit(pr-review)`. */
function withPrReview(edit: (wf: Workflow) => Workflow): Workspace {
  const shipped = loadWorkspace();
  return {
    ...shipped,
    workflows: new Map([...shipped.workflows].map(([id, wf]) => [id, id === 'pr-review' ? edit(wf) : wf])),
  };
}

/** pr-review without its verifier phase: the 4-agent review phase alone. */
export function fourAgentWorkspace(): Workspace {
  return withPrReview((wf) => ({ ...wf, phases: wf.phases.filter((p) => p.name !== 'verify') }));
}

/** pr-review with one phase of `n` agents: copies of its review phase's agents, named `<agent>-<i>`. */
export function wideWorkspace(n = WIDE_AGENTS): Workspace {
  return withPrReview((wf) => {
    const review = wf.phases.find((p): p is AgentPhase => p.kind === 'agents' && p.name === 'review');
    if (!review) throw new Error('pr-review has no "review" phase');
    const agents = Array.from({ length: n }, (_, i) => {
      const a = review.agents[i % review.agents.length] as AgentPhase['agents'][number];
      return { ...a, name: `${a.name}-${i + 1}` };
    });
    return { ...wf, phases: [{ ...review, parallel: true, maxConcurrency: Math.min(40, n), agents }] };
  });
}

/** What {@link timeRuns} measured: the median wall time and its run's state transitions. */
interface Timed {
  wallMs: number;
  /** The median time of the agents' phase alone: its Map state, from entered to exited (ms). */
  phaseMs: number;
  transitions: number;
  /** Agents that did not succeed with a model call in the median run (a budget refusal would make the figure meaningless). */
  notOk: number;
}

/** One warm-up run and {@link RUNS} timed runs of pr-review on `workspace`. */
async function timeRuns(
  stateDir: string,
  workspace: Workspace,
  repoPath: string,
  change: Change,
  gateway: Parameters<typeof GatewayConfigSchema.parse>[0],
  label: string,
): Promise<Timed> {
  const rt = await LocalRuntime.start({
    stateDir,
    repoPath,
    workspace,
    persist: false,
    modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' },
    offline: { delayMs: DELAY_MS, faults: {} },
    gateway: GatewayConfigSchema.parse(gateway),
    print: () => undefined,
  });
  try {
    // A full review every time: an incremental one would find the change reviewed already and call no model.
    const input = (runId: string) => ({ runId, workflow: 'pr-review', change: { ...change, fullReview: true } });
    await rt.execute('pr-review', `${label}-warmup`, input(`${label}-warmup`));
    const runs: Timed[] = [];
    // The phase's Map state's time, as the runtime reports it when the state exits.
    const phases = new Map<string, number>();
    rt.listeners.add((e) => {
      if (e.kind === 'exited' && e.state === mapStateName('review') && e.ms !== undefined) phases.set(e.execution, e.ms);
    });
    const phaseTimes: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const name = `${label}-${i}`;
      const t0 = performance.now();
      const r = await rt.execute('pr-review', name, input(name));
      const wallMs = performance.now() - t0;
      const phaseMs = phases.get(name);
      if (phaseMs === undefined) throw new Error(`bench run ${name}: the review phase's Map state did not exit`);
      phaseTimes.push(phaseMs);
      if (r.status !== 'SUCCEEDED') throw new Error(`bench run ${name} failed: ${r.error}`);
      const agents = ((await rt.runs.get(name))?.agents ?? []) as Array<{ status?: string; calls?: number }>;
      if (agents.length === 0) throw new Error(`bench run ${name} recorded no agents`);
      // Every agent succeeded with one model call at least (not a budget refusal, not a cached or skipped review).
      const notOk = agents.filter((a) => a.status !== 'succeeded' || !(Number(a.calls) > 0)).length;
      runs.push({ wallMs, phaseMs, transitions: r.transitions, notOk });
    }
    const median = [...runs].sort((a, b) => a.wallMs - b.wallMs)[Math.floor(RUNS / 2)] as Timed;
    return { ...median, phaseMs: [...phaseTimes].sort((a, b) => a - b)[Math.floor(RUNS / 2)] as number };
  } finally {
    await rt.stop();
  }
}

/** States of the engine-only measurement. */
const ENGINE_STATES = 500;

/**
 * The local engine's own time per state: a chain of {@link ENGINE_STATES} Task states (lambda:invoke
 * with a Payload, as the compiled workflows call their functions) whose handlers answer at once,
 * run as the runtime runs a definition (validated once, its event log read). Median of 5 runs, ms.
 */
async function enginePerState(): Promise<number> {
  const states: Record<string, unknown> = {};
  for (let i = 0; i < ENGINE_STATES; i++) {
    states[`S${i}`] = {
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      Parameters: { 'Payload.$': '$' },
      OutputPath: '$.Payload',
      ...(i < ENGINE_STATES - 1 ? { Next: `S${i + 1}` } : { End: true }),
    };
  }
  const definition = { StartAt: 'S0', States: states } as unknown as StateMachineDefinition;
  new StateMachine(definition, { validationOptions: { checkArn: false } });
  const handlers = Object.fromEntries(
    Object.keys(states).map((n) => [n, async (input: { Payload: unknown }) => ({ Payload: input.Payload })]),
  );
  // An input the size of a run's state (the change, the context reference, a phase's results).
  const input = {
    runId: 'engine',
    change: { title: 'x'.repeat(200), url: 'x'.repeat(100) },
    results: { review: Array.from({ length: 4 }, () => ({ costUsd: 0.01, findingsRef: 'x'.repeat(60) })) },
  };
  const times: number[] = [];
  for (let k = 0; k < 6; k++) {
    const sm = new StateMachine(definition, { validationOptions: { noValidate: true } });
    const t0 = performance.now();
    const exec = sm.run(input as never, { overrides: { taskResourceLocalHandlers: handlers as never } });
    const logs = (async () => {
      for await (const _ of exec.eventLogs);
    })();
    await exec.result;
    await logs;
    if (k > 0) times.push((performance.now() - t0) / ENGINE_STATES);
  }
  return [...times].sort((a, b) => a - b)[2] as number;
}

/**
 * Records the 4-agent and the 40-agent phase's wall time ÷ one answer's delay, the overhead per
 * state transition of each, and the local engine's own time per state.
 */
export async function orchestrationBench(record: Record_, work: string, repo: { path: string }, change: Change): Promise<void> {
  const ratio = (t: Timed) => Number((t.wallMs / DELAY_MS).toFixed(3));
  const phaseRatio = (t: Timed) => Number((t.phaseMs / DELAY_MS).toFixed(3));
  const perState = (t: Timed) => Number(((t.wallMs - DELAY_MS) / Math.max(1, t.transitions)).toFixed(2));

  // Every run reviews the same change: without `cache: false` the response cache would answer the
  // timed runs. The default rate limits (20 calls at once) are enough for 4 agents.
  const four = await timeRuns(join(work, 'state-delay'), fourAgentWorkspace(), repo.path, change, { cache: { enabled: false } }, 'delay');
  if (four.notOk > 0) throw new Error(`orchestration bench: ${four.notOk} of the 4 agents did not succeed`);
  record({
    name: 'orchestration: 4 agents × 1000 ms answers, the phase (its Map state)',
    value: Math.round(four.phaseMs),
    unit: 'ms',
    target: null,
  });
  record({
    name: 'orchestration overhead, 4-agent phase (Map state ÷ one answer)',
    value: phaseRatio(four),
    unit: 'ratio',
    target: '≤ 1.10 (issue 16)',
  });
  record({
    name: 'the whole run, 4 agents (LoadContext … Publish; wall ÷ one answer)',
    value: ratio(four),
    unit: 'ratio',
    target: null,
  });
  record({
    name: `orchestration overhead per state transition, 4 agents (wall − 1000 ms) ÷ ${four.transitions} states`,
    value: perState(four),
    unit: 'ms/state',
    target: null,
  });

  // 40 agents: the default limits (bedrock and openai: 20 calls at once, 100 and 300 a minute) would
  // queue half the calls behind the others; raised so nothing but the orchestration waits.
  const limit = { requestsPerMinute: 6000, maxConcurrency: WIDE_AGENTS };
  const wide = await timeRuns(
    join(work, 'state-delay-40'),
    wideWorkspace(),
    repo.path,
    change,
    { cache: { enabled: false }, rateLimits: { bedrock: limit, openai: limit, 'openai-compatible': limit } },
    'wide',
  );
  if (wide.notOk > 0) throw new Error(`orchestration bench: ${wide.notOk} of the ${WIDE_AGENTS} agents did not succeed`);
  const setting = `MaxConcurrency ${WIDE_AGENTS}, rate limits ${WIDE_AGENTS} at once + ${limit.requestsPerMinute}/min`;
  record({
    name: `orchestration: ${WIDE_AGENTS} agents × 1000 ms answers, the phase (its Map state; ${setting})`,
    value: Math.round(wide.phaseMs),
    unit: 'ms',
    target: null,
  });
  record({
    name: `orchestration overhead, ${WIDE_AGENTS}-agent phase (Map state ÷ one answer)`,
    value: phaseRatio(wide),
    unit: 'ratio',
    target: '≤ 1.25 (issue 16)',
  });
  record({
    name: `the whole run, ${WIDE_AGENTS} agents (wall ÷ one answer)`,
    value: ratio(wide),
    unit: 'ratio',
    target: null,
  });
  record({
    name: `orchestration overhead per state transition, ${WIDE_AGENTS} agents (wall − 1000 ms) ÷ ${wide.transitions} states`,
    value: perState(wide),
    unit: 'ms/state',
    target: null,
  });
  record({
    name: 'local engine alone per state (Task, instant handler; aws-local-stepfunctions)',
    value: Number((await enginePerState()).toFixed(3)),
    unit: 'ms/state',
    target: null,
  });
}
