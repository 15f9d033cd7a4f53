import { conditionalPhases, phaseLevels } from './load.js';
import {
  type AgentPhase,
  type Comparison,
  type GatePhase,
  type GuardrailPhase,
  type Phase,
  type PhaseKind,
  type RoutePhase,
  type RunKind,
  securityAgents,
  testPhases,
  type WhenCondition,
  type Workflow,
} from './model.js';

/** What a Map state of agents needs of its phase (an agent phase, or the one agent of a route or guardrail). */
type MapPhase = Pick<AgentPhase, 'name' | 'dependsOn' | 'parallel' | 'maxConcurrency' | 'agents'>;

/**
 * The Lambda tasks a compiled state machine calls, and the definition substitution key of each
 * function ARN. The CDK stack fills these in with `definitionSubstitutions`; the local runtime
 * overrides each Task state with the in-process use case of the same kind.
 */
export const TASK_FUNCTIONS = {
  loadContext: 'LoadContextFunctionArn',
  invokeAgent: 'InvokeAgentFunctionArn',
  aggregate: 'AggregateFunctionArn',
  publish: 'PublishFunctionArn',
  requestApproval: 'RequestApprovalFunctionArn',
} as const;
export type TaskKind = keyof typeof TASK_FUNCTIONS;

/** Errors a provider call raises that are worth retrying (DESIGN §7). */
export const RETRYABLE_ERRORS = ['ProviderThrottledError', 'ProviderUnavailableError', 'ProviderTimeoutError'] as const;

/**
 * Transient Lambda service errors, retried on every task.
 * Source: https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html
 */
export const LAMBDA_SERVICE_ERRORS = [
  'Lambda.ClientExecutionTimeoutException',
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
] as const;

/** Amazon States Language JSON (JSONPath query language). */
export type AslState = Record<string, unknown>;
export interface AslDefinition {
  Comment: string;
  StartAt: string;
  TimeoutSeconds?: number;
  States: Record<string, AslState>;
}

/** Per-task timeouts in seconds; the invoke-agent Lambda may run up to Lambda's 900 s maximum. */
export const TASK_TIMEOUT_SECONDS: Record<TaskKind, number> = {
  loadContext: 300,
  invokeAgent: 900,
  aggregate: 120,
  publish: 120,
  // A waiting gate's TimeoutSeconds is the phase's own timeout; this is only the fallback.
  requestApproval: 86_400,
};

/** The error a rejected approval fails the waiting task with (SendTaskFailure). */
export const APPROVAL_REJECTED_ERROR = 'ApprovalRejectedError';

/** The error RequestApproval fails with when the request cannot be posted (the bot is not in the channel…): the gate ends with a reason. */
export const APPROVAL_UNDELIVERABLE_ERROR = 'ApprovalUndeliverableError';

/** The Step Functions integration that waits for a task token. */
export const WAIT_FOR_TASK_TOKEN = 'arn:aws:states:::lambda:invoke.waitForTaskToken';

/** Name of the Task state that runs the agents of `phase` inside its Map state. */
export const agentTaskName = (phase: string) => `Run agent: ${phase}`;
/** Name of the Map state of `phase`. */
export const mapStateName = (phase: string) => `Agents: ${phase}`;

const STATE = {
  checkPullRequest: 'Check pull request',
  recordSkippedPullRequest: 'Record skipped pull request',
  start: 'Start run',
  startCheck: 'Start check',
  load: 'Load context',
  conditions: 'Check conditions',
  skip: 'Skip: conditions not met',
  recordSkip: 'Record skipped run',
  skipped: 'Skipped',
  aggregate: 'Aggregate findings',
  publish: 'Publish results',
  done: 'Done',
  outcome: 'Check outcome',
  noResult: 'No result',
  recordFailure: 'Record failure',
  failed: 'Run failed',
  recordStop: 'Record stopped run',
  stopped: 'Stopped',
} as const;

/** Name of the Task state that commits the generated tests (`output.create_files`). */
export const COMMIT_TESTS_STATE = 'Commit generated tests';
const COMMIT_FAILED_STATE = 'Tests not committed';

/** The key of a phase's results under `$.results` (JSONPath-safe). */
export const phaseKey = (name: string) => name.replace(/[^A-Za-z0-9_]/g, '_');

function lambdaTask(kind: TaskKind, payload: Record<string, unknown>, extra: AslState): AslState {
  return {
    Type: 'Task',
    Resource: 'arn:aws:states:::lambda:invoke',
    Parameters: { FunctionName: `\${${TASK_FUNCTIONS[kind]}}`, Payload: payload },
    TimeoutSeconds: TASK_TIMEOUT_SECONDS[kind],
    Retry: [
      {
        ErrorEquals: [...LAMBDA_SERVICE_ERRORS],
        IntervalSeconds: 2,
        MaxAttempts: 3,
        BackoffRate: 2,
        JitterStrategy: 'FULL',
      },
    ],
    ...extra,
  };
}

const runCatch = [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE.recordFailure }];

/**
 * Compiles a checked workflow to a Step Functions state machine definition.
 *
 * Shape: Check pull request (Choice: the webhook set `skip`, e.g. a draft or a bot's pull request →
 * Record skipped pull request → Skipped) → Start run → Load context → Check conditions (Choice,
 * skip with a reason) → per phase a
 * Pass that injects the agent list and a Map state whose iterator is one InvokeAgent task (Retry on
 * Lambda service errors and on {@link RETRYABLE_ERRORS}, Catch into a failed-agent result) →
 * Aggregate findings → Publish results; independent phases run in a Parallel state. With
 * `output.create_files`, a Publish task (`kind: files`) after the last phase of `output: tests`
 * agents commits their files (`$.files.commit`) and a later `ci` gate waits on that commit. Every
 * top-level task has a Catch into `Record failure` → `Run failed`.
 *
 * Execution input: `{ runId, workflow, change, skip? }` (see `lambdas/core/contracts.ts`).
 *
 * That is a review's frame. A request workflow (`trigger: request`, `workflow.kind`) gets its own
 * (see `compileRequest`): Start run with `{ runId, workflow, request }`, no pull request check,
 * context or check run, the same phase states (`PHASE_STATES`: agents, approval, ci, route,
 * guardrail, with guard and `when` Choices) → Aggregate answer → Publish answer. Both end in the
 * same end states (`endStates`). Function ARNs are `${...Arn}` placeholders from {@link TASK_FUNCTIONS}.
 * @throws Error when the worst case passes Step Functions' one-year limit (see {@link executionTimeoutSeconds})
 */
export function compileWorkflow(workflow: Workflow): AslDefinition {
  return RUN_FRAMES[workflow.kind](workflow);
}

/** The state machine's frame per run kind: a new kind does not compile until it has one. */
const RUN_FRAMES: Record<Workflow['kind'], (workflow: Workflow) => AslDefinition> = {
  review: compileReview,
  request: compileRequest,
};

/** A review's state machine (see {@link compileWorkflow}). */
function compileReview(workflow: Workflow): AslDefinition {
  const states: Record<string, AslState> = {};
  const levels = phaseLevels(workflow.phases);
  const firstAfterConditions = levels.length > 0 ? levelStateName(levels, 0) : STATE.aggregate;
  // The check run (`output.fail_on`) of a workflow that posts on the pull request.
  const check = workflow.output.review ? { check: { failOn: workflow.output.failOn } } : {};
  const hasConditions = Boolean(workflow.trigger.filesChanged || workflow.trigger.linesChanged || workflow.trigger.testCoverage);

  // First, before Start run: Start run's Parameters cannot copy an optional field (a path that is
  // absent fails the execution with States.Runtime), so the skip is decided on the raw input.
  states[STATE.checkPullRequest] = {
    Type: 'Choice',
    Comment: 'The webhook skips a pull request its trigger filters out (draft, bot author, label, branch) with a reason.',
    Choices: [{ Variable: '$.skip', IsPresent: true, Next: STATE.recordSkippedPullRequest }],
    Default: STATE.start,
  };
  states[STATE.recordSkippedPullRequest] = lambdaTask(
    'publish',
    { kind: 'skipped', 'runId.$': '$.runId', 'workflow.$': '$.workflow', 'change.$': '$.change', 'reason.$': '$.skip', ...check },
    { ResultPath: null, Catch: runCatch, Next: STATE.skipped },
  );
  states[STATE.skipped] = { Type: 'Succeed', Comment: 'The pull request or the change did not meet the trigger.' };
  states[STATE.start] = {
    Type: 'Pass',
    Comment: 'Keeps only the small run fields; everything large travels by reference.',
    Parameters: {
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      'change.$': '$.change',
      results: {},
      gates: {},
    },
    Next: workflow.output.review ? STATE.startCheck : STATE.load,
  };
  if (workflow.output.review) {
    states[STATE.startCheck] = lambdaTask(
      'publish',
      { kind: 'started', 'runId.$': '$.runId', 'workflow.$': '$.workflow', 'change.$': '$.change', ...check },
      {
        Comment: 'The check run on the head commit shows in_progress; a check that cannot be started does not stop the review.',
        ResultPath: null,
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.checkError', Next: STATE.load }],
        Next: STATE.load,
      },
    );
  }
  states[STATE.load] = lambdaTask(
    'loadContext',
    {
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      'change.$': '$.change',
      filesChanged: workflow.trigger.filesChanged ?? [],
      coverage: workflow.trigger.testCoverage !== undefined,
      paths: { include: workflow.paths?.include ?? [], exclude: workflow.paths?.exclude ?? [] },
      // Every agent, for the review plan (which files each reviews, chunks, budget shares).
      agents: workflow.phases.flatMap((p) => (p.kind === 'agents' ? p.agents.map((agent) => ({ phase: p.name, agent })) : [])),
      // What the prompts show around each hunk; absent: LoadContext's default (the workflow loader always sets it).
      ...(workflow.context ? { context: workflow.context } : {}),
    },
    {
      ResultSelector: { 'contextRef.$': '$.Payload.contextRef', 'stats.$': '$.Payload.stats' },
      ResultPath: '$.context',
      Catch: runCatch,
      Next: hasConditions ? STATE.conditions : firstAfterConditions,
    },
  );

  if (hasConditions) {
    states[STATE.conditions] = {
      Type: 'Choice',
      Comment: `Runs only when the change ${describeConditions(workflow)}.`,
      Choices: [{ And: conditionRules(workflow), Next: firstAfterConditions }],
      Default: STATE.skip,
    };
    states[STATE.skip] = {
      Type: 'Pass',
      Result: { reason: `The change does not meet the trigger: it must ${describeConditions(workflow)}.` },
      ResultPath: '$.skip',
      Next: STATE.recordSkip,
    };
    states[STATE.recordSkip] = lambdaTask(
      'publish',
      {
        kind: 'skipped',
        'runId.$': '$.runId',
        'workflow.$': '$.workflow',
        'change.$': '$.change',
        'reason.$': '$.skip.reason',
        'stats.$': '$.context.stats',
        ...check,
      },
      { ResultPath: null, Catch: runCatch, Next: STATE.skipped },
    );
  }

  // `output.create_files`: after the last level with agents that write tests, one Task commits
  // their files; a later ci gate waits on that commit (`$.files.commit.sha`).
  const writers = workflow.output.createFiles ? testPhases(workflow.phases) : [];
  const commitLevel = writers.length > 0 ? Math.max(...writers.map((p) => levels.findIndex((l) => l.includes(p)))) : -1;
  if (workflow.output.createFiles && commitLevel >= 0) {
    const after = commitLevel + 1 < levels.length ? levelStateName(levels, commitLevel + 1) : STATE.aggregate;
    Object.assign(states, commitStates(workflow.output.createFiles, writers, after));
  }
  levels.forEach((_level, i) => {
    const next = i === commitLevel ? COMMIT_TESTS_STATE : i + 1 < levels.length ? levelStateName(levels, i + 1) : STATE.aggregate;
    const ctx: PhaseContext = {
      run: 'review',
      next,
      budget: workflow.budget,
      ...(commitLevel >= 0 && i > commitLevel ? { commitSha: '$.files.commit.sha' } : {}),
    };
    Object.assign(states, levelStates(workflow, levels, i, ctx));
  });

  const requiredPhases = workflow.phases.filter((p) => p.kind === 'agents' && p.required).map((p) => p.name);
  states[STATE.aggregate] = lambdaTask(
    'aggregate',
    {
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      'change.$': '$.change',
      'contextRef.$': '$.context.contextRef',
      'results.$': '$.results',
      'gates.$': '$.gates',
      workflowName: workflow.name,
      requiredPhases,
      inline: workflow.output.inline,
      ...(commitLevel >= 0 ? { 'files.$': '$.files.commit' } : {}),
    },
    {
      ResultSelector: {
        'reportRef.$': '$.Payload.reportRef',
        'commentRef.$': '$.Payload.commentRef',
        'reviewRef.$': '$.Payload.reviewRef',
        'stateRef.$': '$.Payload.stateRef',
        'summary.$': '$.Payload.summary',
      },
      ResultPath: '$.report',
      Catch: runCatch,
      Next: STATE.publish,
    },
  );
  states[STATE.publish] = lambdaTask(
    'publish',
    {
      kind: 'report',
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      'change.$': '$.change',
      'report.$': '$.report',
      outputs: {
        review: workflow.output.review,
        databaseLog: workflow.output.databaseLog,
        ...(workflow.output.slack ? { slack: workflow.output.slack } : {}),
        ...(workflow.output.codeScanning ? { codeScanning: { agents: securityAgents(workflow) } } : {}),
      },
      ...check,
    },
    {
      ResultSelector: { 'commentUrl.$': '$.Payload.commentUrl' },
      ResultPath: '$.published',
      // The execution's output is the run summary.
      OutputPath: '$.report.summary',
      Catch: runCatch,
      Next: STATE.outcome,
    },
  );
  Object.assign(
    states,
    endStates(workflow, 'review', {
      subject: { 'change.$': '$.change' },
      extra: check,
      stoppable: workflow.phases.some((p) => p.kind !== 'agents'),
    }),
  );

  return {
    Comment: `AgentFlow workflow "${workflow.name}" (${workflow.id}): ${workflow.description || 'generated from YAML'}`.slice(0, 500),
    StartAt: STATE.checkPullRequest,
    // Derived from the steps: every gate (and escalation) ends before the execution does.
    TimeoutSeconds: executionTimeoutSeconds({ StartAt: STATE.checkPullRequest, States: states }),
    States: states,
  };
}

/**
 * A request workflow's state machine (issue 15): Start run (the request, empty results and gates)
 * → its phases level by level (route Choices, guards, `when` Choices, guardrail Choices) →
 * Aggregate answer (`kind: request`) → Publish answer (the person's thread, the run record) →
 * Check outcome. A guardrail block or a gate's refusal → Record stopped run; any failure →
 * Record failure. Execution input: `{ runId, workflow, request }`.
 */
function compileRequest(workflow: Workflow): AslDefinition {
  const states: Record<string, AslState> = {};
  const levels = phaseLevels(workflow.phases);
  const conditional = conditionalPhases(workflow.phases);
  const aggregate = 'Aggregate answer';
  const publish = 'Publish answer';
  states[STATE.start] = {
    Type: 'Pass',
    Comment: "Keeps only the small run fields: the person's request (at most 4,000 characters) and the results to come.",
    Parameters: { 'runId.$': '$.runId', 'workflow.$': '$.workflow', 'request.$': '$.request', results: {}, gates: {} },
    Next: levels.length > 0 ? levelStateName(levels, 0, conditional) : aggregate,
  };
  levels.forEach((_, i) => {
    const next = i + 1 < levels.length ? levelStateName(levels, i + 1, conditional) : aggregate;
    Object.assign(states, levelStates(workflow, levels, i, { run: 'request', next, budget: workflow.budget }));
  });
  const requiredPhases = workflow.phases.filter((p) => p.kind === 'agents' && p.required).map((p) => p.name);
  states[aggregate] = lambdaTask(
    'aggregate',
    {
      kind: 'request',
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      'request.$': '$.request',
      'results.$': '$.results',
      'gates.$': '$.gates',
      workflowName: workflow.name,
      requiredPhases,
      plan: workflow.phases.map((p) => {
        const c = conditional.get(p.name);
        return { phase: p.name, kind: p.kind, ...(c?.routeOf ? { routeOf: c.routeOf } : {}), after: c?.after ?? [] };
      }),
      answer: workflow.output.answer,
    },
    {
      ResultSelector: { 'reportRef.$': '$.Payload.reportRef', 'summary.$': '$.Payload.summary' },
      ResultPath: '$.report',
      Catch: runCatch,
      Next: publish,
    },
  );
  states[publish] = lambdaTask(
    'publish',
    {
      kind: 'answer',
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      'request.$': '$.request',
      'report.$': '$.report',
      outputs: { databaseLog: workflow.output.databaseLog, ...(workflow.output.slack ? { slack: workflow.output.slack } : {}) },
    },
    { ResultPath: null, OutputPath: '$.report.summary', Catch: runCatch, Next: STATE.outcome },
  );
  // Only a gate or a guardrail can stop a request run.
  Object.assign(
    states,
    endStates(workflow, 'request', {
      subject: { 'request.$': '$.request' },
      extra: {},
      stoppable: workflow.phases.some((p) => p.kind !== 'agents' && p.kind !== 'route'),
    }),
  );
  return {
    Comment: `AgentFlow request workflow "${workflow.name}" (${workflow.id}): ${workflow.description || 'generated from YAML'}`.slice(
      0,
      500,
    ),
    StartAt: STATE.start,
    TimeoutSeconds: executionTimeoutSeconds({ StartAt: STATE.start, States: states }),
    States: states,
  };
}

/** What a run kind's end states say: what is delivered, and what can stop a run. */
const END_WORDS: Record<RunKind, { delivered: string; stoppedBy: string; failedWhy: string }> = {
  review: {
    delivered: 'The review is published',
    stoppedBy: 'A gate ended the run: rejected, timed out or CI failed to report.',
    failedWhy: 'the report says why',
  },
  request: {
    delivered: 'The answer is sent',
    stoppedBy: 'A guardrail or a gate ended the run: blocked, rejected or timed out.',
    failedWhy: 'the run record says why',
  },
};

/**
 * The states every run ends in: Check outcome (a FAILED summary fails the execution: No result) →
 * Done; Record stopped run → Stopped (when a phase can stop the run); Record failure → Run failed
 * (every top-level Catch). `subject` is the run's change or request; `extra` the check settings.
 */
function endStates(
  workflow: Workflow,
  run: RunKind,
  o: { subject: Record<string, string>; extra: Record<string, unknown>; stoppable: boolean },
): Record<string, AslState> {
  const words = END_WORDS[run];
  const base = { 'runId.$': '$.runId', 'workflow.$': '$.workflow', ...o.subject };
  const states: Record<string, AslState> = {
    [STATE.outcome]: {
      Type: 'Choice',
      Comment: `${words.delivered} either way; a run in which no agent produced a result fails the execution.`,
      Choices: [{ Variable: '$.status', StringEquals: 'FAILED', Next: STATE.noResult }],
      Default: STATE.done,
    },
    [STATE.noResult]: {
      Type: 'Fail',
      Comment: `Every agent failed (or a required phase did not complete); ${words.failedWhy}.`,
      Error: 'AgentFlowRunFailed',
      CausePath: '$.reason',
    },
    [STATE.done]: { Type: 'Succeed', Comment: `${words.delivered}.` },
  };
  if (o.stoppable) {
    states[STATE.recordStop] = lambdaTask(
      'publish',
      { kind: 'stopped', ...base, 'reason.$': '$.stop.reason', 'gates.$': '$.gates', 'results.$': '$.results', ...o.extra },
      { ResultPath: null, Catch: runCatch, Next: STATE.stopped },
    );
    states[STATE.stopped] = { Type: 'Succeed', Comment: words.stoppedBy };
  }
  states[STATE.recordFailure] = lambdaTask(
    'publish',
    {
      kind: 'failed',
      ...base,
      'error.$': '$.error',
      // What the agents spent before the failure (a request run's record shows it; Start run set `results`).
      ...(run === 'request' ? { 'results.$': '$.results' } : {}),
      // The failure goes to the `fallback: - notify:` channel, else where the summary would have gone.
      ...((workflow.notifyOnFailure ?? workflow.output.slack) ? { notify: workflow.notifyOnFailure ?? workflow.output.slack } : {}),
      ...o.extra,
    },
    {
      ResultPath: null,
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.recordError', Next: STATE.failed }],
      Next: STATE.failed,
    },
  );
  states[STATE.failed] = {
    Type: 'Fail',
    Error: 'AgentFlowRunFailed',
    Cause: 'A required step failed; see the Record failure state input for the error.',
  };
  return states;
}

/**
 * The commit of the generated tests: a Publish task (`kind: files`) given the results of the
 * phases whose agents write tests, its `{ sha, branch, url, committed, refused }` kept at
 * `$.files.commit`; a failed task keeps the pull request's head there with the error, so the run
 * (and a ci gate, on the head) goes on.
 */
function commitStates(
  settings: NonNullable<Workflow['output']['createFiles']>,
  writers: readonly AgentPhase[],
  next: string,
): Record<string, AslState> {
  const results: Record<string, string> = {};
  for (const p of writers) results[`${phaseKey(p.name)}.$`] = `$.results.${phaseKey(p.name)}`;
  return {
    [COMMIT_TESTS_STATE]: lambdaTask(
      'publish',
      {
        kind: 'files',
        'runId.$': '$.runId',
        'workflow.$': '$.workflow',
        'change.$': '$.change',
        results,
        createFiles: { paths: settings.paths, pushToPullRequest: settings.pushToPullRequest },
      },
      {
        Comment: `Commits the test files of ${writers.map((p) => p.name).join(', ')} (only under the test folders) and opens a draft pull request.`,
        ResultSelector: { 'commit.$': '$.Payload.files' },
        ResultPath: '$.files',
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.filesError', Next: COMMIT_FAILED_STATE }],
        Next: next,
      },
    ),
    [COMMIT_FAILED_STATE]: {
      Type: 'Pass',
      Comment: 'The commit failed: the run goes on with the pull request head, the report says why.',
      Parameters: {
        commit: {
          'sha.$': '$.change.headSha',
          committed: [],
          refused: [],
          'error.$': "States.Format('{}: the generated tests were not committed', $.filesError.Error)",
        },
      },
      ResultPath: '$.files',
      Next: next,
    },
  };
}

function levelStateName(
  levels: Phase[][],
  i: number,
  conditional: ReadonlyMap<string, { routeOf?: string; after: string[] }> = new Map(),
): string {
  const level = levels[i] ?? [];
  const [only] = level;
  if (level.length === 1 && only) return entryName(only, conditional);
  // A route's targets: the route's Choice starts them; nothing else enters the level.
  if (only && level.every((p) => conditional.get(p.name)?.routeOf !== undefined)) return phaseStartName(only);
  return `Phases: ${level.map((p) => p.name).join(' + ')}`;
}

/** The first state of a phase's own states (after any guard or `when` Choice: see {@link entryName}). */
const PHASE_START: { [K in PhaseKind]: (p: Extract<Phase, { kind: K }>) => string } = {
  agents: (p) => `Phase: ${p.name}`,
  route: (p) => `Phase: ${p.name}`,
  guardrail: (p) => `Phase: ${p.name}`,
  approval: (p) => gateStateName(p, false),
  ci: (p) => gateStateName(p, false),
};
const phaseStartName = (p: Phase): string => PHASE_START[p.kind](p as never);

/**
 * The state a phase is entered by: its guard when it runs only after conditional phases
 * (`Guard: <phase>`), else its `when` Choice (`When: <phase>`), else its first state.
 */
function entryName(p: Phase, conditional: ReadonlyMap<string, { routeOf?: string; after: string[] }>): string {
  const c = conditional.get(p.name);
  if (c && !c.routeOf) return `Guard: ${p.name}`;
  if (p.kind === 'approval' && p.when) return `When: ${p.name}`;
  return phaseStartName(p);
}

/** How a phase's states are made: the run kind, where it goes next, the budget, a ci gate's commit. */
interface PhaseContext {
  readonly run: RunKind;
  /** The next state; undefined ends the branch (a phase inside a Parallel state). */
  readonly next: string | undefined;
  readonly budget: Workflow['budget'];
  /** A ci gate waits on this commit (JSONPath) instead of the change's head. */
  readonly commitSha?: string;
  /** The phase is a state of the top level (not inside a Parallel branch): its Map catches into Record failure. */
  readonly topLevel?: boolean;
}

/** The states of each phase kind: a new kind does not compile until it is handled here. */
const PHASE_STATES: { [K in PhaseKind]: (p: Extract<Phase, { kind: K }>, ctx: PhaseContext) => Record<string, AslState> } = {
  agents: (p, ctx) => phaseStates(p, ctx.next, ctx.topLevel ?? true, ctx.budget, ctx.run),
  approval: (p, ctx) => gateStates(p, required(ctx.next, p), undefined, ctx.run),
  ci: (p, ctx) => gateStates(p, required(ctx.next, p), ctx.commitSha, ctx.run),
  route: (p, ctx) => routeStates(p, ctx),
  guardrail: (p, ctx) => guardrailStates(p, ctx),
};

function required(next: string | undefined, p: Phase): string {
  if (next === undefined) throw new Error(`compiler: phase "${p.name}" (${p.kind}) cannot end a Parallel branch`);
  return next;
}

/** A phase's result as a Choice state reads it: an agent phase's first result, or a gate's outcome. */
const resultPath = (p: Phase) =>
  p.kind === 'approval' || p.kind === 'ci' ? `$.gates.${phaseKey(p.name)}` : `$.results.${phaseKey(p.name)}`;

/**
 * The states of level `i`: one phase (with its guard and `when` Choice when it has them), the
 * targets of a route (each goes on to the next level; only the chosen one runs), or agent phases
 * side by side in a Parallel state.
 */
function levelStates(workflow: Workflow, levels: Phase[][], i: number, ctx: PhaseContext): Record<string, AslState> {
  const level = levels[i] ?? [];
  const conditional = conditionalPhases(workflow.phases);
  const states: Record<string, AslState> = {};
  const next = required(ctx.next, level[0] as Phase);
  const routed = level.length > 0 && level.every((p) => conditional.get(p.name)?.routeOf !== undefined);
  if (level.length === 1 || routed) {
    for (const p of level) {
      Object.assign(states, PHASE_STATES[p.kind](p as never, { ...ctx, topLevel: true }));
      const c = conditional.get(p.name);
      if (c && !c.routeOf) {
        const after = workflow.phases.filter((x) => c.after.includes(x.name));
        states[`Guard: ${p.name}`] = {
          Type: 'Choice',
          Comment: `Phase "${p.name}" runs when ${c.after.join(' or ')} ran; otherwise it is skipped (the run record says why).`,
          Choices: [
            {
              ...(after.length === 1
                ? { Variable: resultPath(after[0] as Phase), IsPresent: true }
                : { Or: after.map((x) => ({ Variable: resultPath(x), IsPresent: true })) }),
              Next: p.kind === 'approval' && p.when ? `When: ${p.name}` : phaseStartName(p),
            },
          ],
          Default: next,
        };
      }
      if (p.kind === 'approval' && p.when) Object.assign(states, whenStates(p, p.when, next));
    }
    return states;
  }
  const before = workflow.phases.filter((p) => levels.slice(0, i).flat().includes(p));
  const selector: Record<string, string> = {};
  for (const p of before.filter((x) => x.kind !== 'approval' && x.kind !== 'ci')) {
    selector[`${phaseKey(p.name)}.$`] = `$[0].results.${phaseKey(p.name)}`;
  }
  const branches = level.map((p) => {
    if (p.kind !== 'agents') throw new Error(`compiler: ${p.kind} phase "${p.name}" cannot share a level (the loader refuses it)`);
    selector[`${phaseKey(p.name)}.$`] = `$[${level.indexOf(p)}].results.${phaseKey(p.name)}`;
    return { StartAt: phaseStartName(p), States: phaseStates(p, undefined, false, ctx.budget, ctx.run) };
  });
  states[levelStateName(levels, i, conditional)] = {
    Type: 'Parallel',
    Comment: 'Phases that do not depend on each other run side by side.',
    Branches: branches,
    ResultSelector: selector,
    ResultPath: '$.results',
    Catch: runCatch,
    Next: next,
  };
  return states;
}

const WHEN_RULE: Record<WhenCondition['op'], (v: string, value: number | string | boolean) => AslState> = {
  '>': (v, value) => ({ Variable: v, NumericGreaterThan: value }),
  '>=': (v, value) => ({ Variable: v, NumericGreaterThanEquals: value }),
  '<': (v, value) => ({ Variable: v, NumericLessThan: value }),
  '<=': (v, value) => ({ Variable: v, NumericLessThanEquals: value }),
  '==': (v, value) => equalsRule(v, value),
  '!=': (v, value) => ({ Not: equalsRule(v, value) }),
};

function equalsRule(v: string, value: number | string | boolean): AslState {
  if (typeof value === 'number') return { Variable: v, NumericEquals: value };
  if (typeof value === 'boolean') return { Variable: v, BooleanEquals: value };
  return { Variable: v, StringEquals: value };
}

const TYPE_TEST: Record<'number' | 'string' | 'boolean', string> = { number: 'IsNumeric', string: 'IsString', boolean: 'IsBoolean' };

/** Escapes a literal for an intrinsic function's string argument (`'`, `{`, `}` and `\` are special). */
const intrinsicLiteral = (text: string) => text.replace(/[\\'{}]/g, (c) => `\\${c}`);

/**
 * The `when` Choice before an approval gate: when the field is there, of the right type, and the
 * comparison does not hold, the gate is not needed (`$.gates.<phase>` = `{ outcome: 'not-needed',
 * reason }`) and the flow goes on; otherwise (it holds, or the field is absent or unreadable) the
 * gate asks.
 */
function whenStates(phase: GatePhase, when: WhenCondition, next: string): Record<string, AslState> {
  const v = `$.results.${phaseKey(when.phase)}[0].data.${when.field}`;
  const notNeeded = `Not needed: ${phase.name}`;
  return {
    [`When: ${phase.name}`]: {
      Type: 'Choice',
      Comment: `Asks only when ${when.text} (an absent or unreadable field asks).`,
      Choices: [
        {
          And: [
            { Variable: v, IsPresent: true },
            { Variable: v, [TYPE_TEST[typeof when.value as 'number' | 'string' | 'boolean']]: true },
            { Not: WHEN_RULE[when.op](v, when.value) },
          ],
          Next: notNeeded,
        },
      ],
      Default: gateStateName(phase, false),
    },
    [notNeeded]: {
      Type: 'Pass',
      Comment: `${when.text} does not hold: no approval is needed.`,
      Parameters: {
        outcome: 'not-needed',
        'reason.$': `States.Format('no approval needed: ${intrinsicLiteral(`${when.phase}.${when.field}`)} is {}, and it asks when ${intrinsicLiteral(when.text)}', ${v})`,
      },
      ResultPath: `$.gates.${phaseKey(phase.name)}`,
      Next: next,
    },
  };
}

/**
 * A route phase: its agent's Map state, then a Choice on the agent's `decision` that starts the
 * chosen target (the default when the answer names none, or the agent failed).
 */
function routeStates(phase: RoutePhase, ctx: PhaseContext): Record<string, AslState> {
  const choose = `Route: ${phase.name}`;
  const decision = `$.results.${phaseKey(phase.name)}[0].decision`;
  return {
    ...phaseStates({ ...phase, parallel: false, maxConcurrency: 1, agents: [phase.agent] }, choose, true, ctx.budget, ctx.run),
    [choose]: {
      Type: 'Choice',
      Comment: `The agent "${phase.agent.name}" chose one of ${phase.to.join(', ')}; the others are skipped (default ${phase.default}).`,
      Choices: phase.to.map((to) => ({
        And: [
          { Variable: decision, IsPresent: true },
          { Variable: decision, StringEquals: to },
        ],
        Next: `Phase: ${to}`,
      })),
      Default: `Phase: ${phase.default}`,
    },
  };
}

/**
 * A guardrail phase: the built-in guardrail agent's Map state, then a Choice: not blocked → on
 * (with the masked text as the phase's answer); blocked, or the guardrail could not check (fails
 * closed) → the run stops with the reason.
 */
function guardrailStates(phase: GuardrailPhase, ctx: PhaseContext): Record<string, AslState> {
  const key = phaseKey(phase.name);
  const check = `Check guardrail: ${phase.name}`;
  const blocked = `Blocked: ${phase.name}`;
  const failed = `Guardrail failed: ${phase.name}`;
  const at = `$.results.${key}[0]`;
  return {
    ...phaseStates({ ...phase, parallel: false, maxConcurrency: 1, agents: [phase.agent] }, check, true, ctx.budget, ctx.run),
    [check]: {
      Type: 'Choice',
      Comment: 'Not blocked: on. Blocked: the run stops. The guardrail could not check: the run stops (it fails closed).',
      Choices: [
        {
          And: [
            { Variable: `${at}.guardrail.blocked`, IsPresent: true },
            { Variable: `${at}.guardrail.blocked`, BooleanEquals: false },
          ],
          Next: required(ctx.next, phase),
        },
        {
          And: [
            { Variable: `${at}.guardrail.blocked`, IsPresent: true },
            { Variable: `${at}.decisionReason`, IsPresent: true },
          ],
          Next: blocked,
        },
      ],
      Default: failed,
    },
    [blocked]: {
      Type: 'Pass',
      Parameters: {
        'reason.$': `States.Format('Guardrail "${intrinsicLiteral(phase.name)}" stopped the run: {}; the later phases did not run.', ${at}.decisionReason)`,
      },
      ResultPath: '$.stop',
      Next: STATE.recordStop,
    },
    [failed]: {
      Type: 'Pass',
      Result: {
        reason: `Guardrail "${phase.name}" could not check the text, so the run stopped (guardrails fail closed); the later phases did not run.`,
      },
      ResultPath: '$.stop',
      Next: STATE.recordStop,
    },
  };
}

/** Name of the waiting Task state of a gate phase (`Approve: release`, `Wait for CI: execution`). */
export const gateStateName = (p: Pick<GatePhase, 'kind' | 'name'>, escalation: boolean) =>
  p.kind === 'ci' ? `Wait for CI: ${p.name}` : escalation ? `Escalate: ${p.name}` : `Approve: ${p.name}`;

/**
 * The approval gate fragment of a gate phase: one `lambda:invoke.waitForTaskToken` Task per
 * request (with the phase's TimeoutSeconds, always), Catches that turn `ApprovalRejectedError` and
 * `States.Timeout` into outcomes, and a Choice over `approved | rejected | timeout`:
 * approved → `next`; rejected → the stop path; timeout → `on_timeout` (approve → `next`, reject →
 * stop, escalate → a second request to the escalation channel whose own timeout stops the run).
 * A `ci` gate continues on any report; its timeout follows `on_timeout` (continue or fail); with
 * `commitSha` (a JSONPath) it waits for the report on that commit (the generated tests') instead
 * of the pull request's head. The outcome is kept at `$.gates.<phase>`: `{ outcome, by, at, approvalId, ... }`.
 */
export function gateStates(phase: GatePhase, next: string, commitSha?: string, run: RunKind = 'review'): Record<string, AslState> {
  const key = phaseKey(phase.name);
  const at = `$.gates.${key}`;
  const decide = `Decide: ${phase.name}`;
  const rejected = `Rejected: ${phase.name}`;
  const timedOut = `Timed out: ${phase.name}`;
  const stop = `Stop: ${phase.name}`;
  // The escalation has its own Rejected and Decide states, so the definition has no cycle (its
  // worst case, and so the execution's timeout, can be derived from it).
  const decideOf = (escalation: boolean) => (escalation ? `Decide escalation: ${phase.name}` : decide);
  const rejectedOf = (escalation: boolean) => (escalation ? `Rejected escalation: ${phase.name}` : rejected);
  const undeliverable = (escalation: boolean) => `Not delivered${escalation ? ' escalation' : ''}: ${phase.name}`;
  const request = (
    escalation: boolean,
    channel: string,
    approvers: readonly string[],
    timeoutSeconds: number,
    onTimeout: string,
  ): AslState => ({
    Type: 'Task',
    Comment:
      phase.kind === 'ci'
        ? `Waits up to ${timeoutSeconds} s for CI to report through /webhooks/ci.`
        : `Asks ${channel} to approve; waits up to ${timeoutSeconds} s for a decision.`,
    Resource: WAIT_FOR_TASK_TOKEN,
    Parameters: {
      FunctionName: `\${${TASK_FUNCTIONS.requestApproval}}`,
      Payload: {
        'taskToken.$': '$$.Task.Token',
        'runId.$': '$.runId',
        'workflow.$': '$.workflow',
        ...(run === 'review' ? { 'change.$': '$.change' } : { 'request.$': '$.request' }),
        // A conditional gate shows the person what made it ask: the condition and the answer's data.
        ...(phase.when
          ? { about: { phase: phase.when.phase, condition: phase.when.text }, 'result.$': `$.results.${phaseKey(phase.when.phase)}[0]` }
          : {}),
        phase: phase.name,
        kind: phase.kind,
        channel,
        approvers,
        timeoutSeconds,
        escalation,
        // The ci gate waits for the report on the generated tests' commit, not the pull request's head.
        ...(commitSha ? { 'commitSha.$': commitSha } : {}),
      },
    },
    TimeoutSeconds: timeoutSeconds,
    Retry: [{ ErrorEquals: [...LAMBDA_SERVICE_ERRORS], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2, JitterStrategy: 'FULL' }],
    ResultPath: at,
    Catch: [
      { ErrorEquals: [APPROVAL_REJECTED_ERROR], ResultPath: at, Next: rejectedOf(escalation) },
      { ErrorEquals: ['States.Timeout'], ResultPath: null, Next: onTimeout },
      ...(phase.kind === 'approval'
        ? [{ ErrorEquals: [APPROVAL_UNDELIVERABLE_ERROR], ResultPath: null, Next: undeliverable(escalation) }]
        : []),
      ...runCatch,
    ],
    Next: decideOf(escalation),
  });
  const states: Record<string, AslState> = {};
  const escalate = phase.kind === 'approval' && phase.onTimeout === 'escalate' ? phase.escalate : undefined;
  states[gateStateName(phase, false)] = request(
    false,
    phase.channel,
    phase.approvers,
    phase.timeoutSeconds,
    `Expire request: ${phase.name}`,
  );
  const rejectedState = (escalation: boolean): AslState => ({
    Type: 'Pass',
    Comment: 'SendTaskFailure carried the decision as JSON in the Cause.',
    Parameters: { 'decision.$': `States.StringToJson(${at}.Cause)`, outcome: 'rejected' },
    ResultPath: at,
    Next: decideOf(escalation),
  });
  states[rejected] = rejectedState(false);
  // On a timeout, first mark the request expired (its message shows it), then record the outcome.
  const expireRequest = (escalation: boolean, next: string): AslState =>
    lambdaTask(
      'requestApproval',
      { action: 'expire', 'runId.$': '$.runId', phase: phase.name, escalation },
      {
        Comment: 'Marks the timed-out request EXPIRED and updates its message; a failure here does not stop the run.',
        TimeoutSeconds: 60,
        ResultPath: null,
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: null, Next: next }],
        Next: next,
      },
    );
  states[`Expire request: ${phase.name}`] = expireRequest(false, timedOut);
  states[timedOut] = { Type: 'Pass', Result: { outcome: 'timeout' }, ResultPath: at, Next: decide };
  const onTimeout = escalate ? gateStateName(phase, true) : phase.onTimeout === 'approve' ? next : stop;
  states[decide] = {
    Type: 'Choice',
    Comment: phase.kind === 'ci' ? 'Any CI report continues; a timeout follows on_timeout.' : 'approve, reject or timeout (on_timeout).',
    Choices: [
      { Variable: `${at}.outcome`, StringEquals: 'timeout', Next: onTimeout },
      { Variable: `${at}.outcome`, StringEquals: 'rejected', Next: phase.kind === 'ci' ? next : stop },
      { Variable: `${at}.outcome`, StringEquals: 'approved', Next: next },
    ],
    Default: stop,
  };
  if (escalate) {
    const expired = `Expired: ${phase.name}`;
    states[gateStateName(phase, true)] = request(
      true,
      escalate.channel,
      escalate.approvers,
      escalate.timeoutSeconds,
      `Expire escalation: ${phase.name}`,
    );
    states[`Expire escalation: ${phase.name}`] = expireRequest(true, expired);
    states[rejectedOf(true)] = rejectedState(true);
    states[expired] = { Type: 'Pass', Result: { outcome: 'expired' }, ResultPath: at, Next: decideOf(true) };
    states[decideOf(true)] = {
      Type: 'Choice',
      Comment: 'The escalation: approved continues; rejected or expired stops.',
      Choices: [{ Variable: `${at}.outcome`, StringEquals: 'approved', Next: next }],
      Default: stop,
    };
  }
  // The request could not be posted (Slack: the bot is not in the channel, …): the gate ends the
  // run as STOPPED with what to fix, instead of failing it.
  if (phase.kind === 'approval') {
    const where = (escalation: boolean) => (escalation ? (escalate?.channel ?? phase.channel) : phase.channel);
    for (const escalation of escalate ? [false, true] : [false]) {
      states[undeliverable(escalation)] = {
        Type: 'Pass',
        Comment: 'RequestApproval could not post the request (ApprovalUndeliverableError).',
        Result: {
          reason: `Approval "${phase.name}" could not be requested: Slack will not post to ${where(escalation)} (not_in_channel, channel_not_found or is_archived). Invite the AgentFlow app to the channel or give it the chat:write.public scope; the later phases did not run.`,
        },
        ResultPath: '$.stop',
        Next: STATE.recordStop,
      };
    }
  }
  states[stop] = {
    Type: 'Pass',
    Parameters: {
      'reason.$': `States.Format('${phase.kind === 'ci' ? 'CI gate' : 'Approval'} "${phase.name}" ended {}; the later phases did not run.', ${at}.outcome)`,
    },
    ResultPath: '$.stop',
    Next: STATE.recordStop,
  };
  return states;
}

/** The Pass + Map pair of one phase. `next` undefined ends the branch (inside a Parallel). */
function phaseStates(
  phase: MapPhase,
  next: string | undefined,
  topLevel: boolean,
  budget: Workflow['budget'],
  run: RunKind = 'review',
): Record<string, AslState> {
  const key = phaseKey(phase.name);
  const failed = `Agent failed: ${phase.name}`;
  // An agent that may write is not invoked again after a Lambda error that may have come after it
  // acted (the service errors are ambiguous); only a throttled invocation (it never ran) is retried.
  // Its provider errors are thrown only before any tool call (after one, it returns FAILED instead).
  const writes = phase.agents.some((a) => a.allowWrite);
  const iterator = {
    ProcessorConfig: { Mode: 'INLINE' },
    StartAt: agentTaskName(phase.name),
    States: {
      [agentTaskName(phase.name)]: {
        ...lambdaTask('invokeAgent', { 'input.$': '$' }, {}),
        Parameters: { FunctionName: `\${${TASK_FUNCTIONS.invokeAgent}}`, 'Payload.$': '$' },
        Retry: [
          {
            ErrorEquals: writes ? ['Lambda.TooManyRequestsException'] : [...LAMBDA_SERVICE_ERRORS],
            IntervalSeconds: 2,
            MaxAttempts: 3,
            BackoffRate: 2,
            JitterStrategy: 'FULL',
          },
          {
            ErrorEquals: [...RETRYABLE_ERRORS],
            IntervalSeconds: 3,
            MaxAttempts: 2,
            BackoffRate: 2,
            MaxDelaySeconds: 30,
            JitterStrategy: 'FULL',
          },
        ],
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: failed }],
        OutputPath: '$.Payload',
        End: true,
      },
      [failed]: {
        Type: 'Pass',
        Comment: 'One agent failing does not stop the others; the report names it and why.',
        Parameters: {
          'name.$': '$.agent.name',
          'phase.$': '$.phase',
          status: 'failed',
          'provider.$': '$.agent.model.provider',
          'model.$': '$.agent.model.alias',
          inputTokens: 0,
          outputTokens: 0,
          costUsd: 0,
          findings: 0,
          'error.$': '$.error',
        },
        End: true,
      },
    },
  };
  const map: AslState = {
    Type: 'Map',
    Comment: phase.parallel
      ? `Runs the ${phase.agents.length} agents of phase "${phase.name}" in parallel.`
      : `Runs the agents of phase "${phase.name}" one after another.`,
    ItemsPath: '$.phaseAgents',
    ItemSelector: {
      'agent.$': '$$.Map.Item.Value',
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      phase: phase.name,
      // A review's agents read the change's context; a request's the person's request.
      ...(run === 'review' ? { 'contextRef.$': '$.context.contextRef' } : { 'request.$': '$.request' }),
      'previous.$': '$.results',
      budget,
    },
    MaxConcurrency: phase.parallel ? Math.min(40, phase.maxConcurrency) : 1,
    ItemProcessor: iterator,
    ResultPath: `$.results.${key}`,
    ...(topLevel ? { Catch: runCatch } : {}),
    ...(next ? { Next: next } : { End: true }),
  };
  return {
    [`Phase: ${phase.name}`]: {
      Type: 'Pass',
      Comment: `The agents of phase "${phase.name}"${phase.dependsOn.length ? ` (after ${phase.dependsOn.join(', ')})` : ''}.`,
      Result: phase.agents,
      ResultPath: '$.phaseAgents',
      Next: mapStateName(phase.name),
    },
    [mapStateName(phase.name)]: map,
  };
}

const NUMERIC: Record<Comparison['op'], string> = {
  '>': 'NumericGreaterThan',
  '>=': 'NumericGreaterThanEquals',
  '<': 'NumericLessThan',
  '<=': 'NumericLessThanEquals',
  '==': 'NumericEquals',
};

function conditionRules(workflow: Workflow): AslState[] {
  const t = workflow.trigger;
  const rules: AslState[] = [];
  if (t.filesChanged) rules.push({ Variable: '$.context.stats.matchedFiles', NumericGreaterThan: 0 });
  if (t.linesChanged) rules.push({ Variable: '$.context.stats.linesChanged', [NUMERIC[t.linesChanged.op]]: t.linesChanged.value });
  if (t.testCoverage) {
    // Unknown coverage (no summary at the head commit, no coverage= on a manual run) does not meet the condition.
    rules.push({
      And: [
        { Variable: '$.context.stats.testCoverage', IsPresent: true },
        { Variable: '$.context.stats.testCoverage', [NUMERIC[t.testCoverage.op]]: t.testCoverage.value },
      ],
    });
  }
  return rules;
}

function describeConditions(workflow: Workflow): string {
  const t = workflow.trigger;
  const parts: string[] = [];
  if (t.filesChanged) parts.push(`change a file matching ${t.filesChanged.join(', ')}`);
  if (t.linesChanged) parts.push(`change ${t.linesChanged.op} ${t.linesChanged.value} lines`);
  if (t.testCoverage)
    parts.push(`have a known test coverage ${t.testCoverage.op} ${t.testCoverage.value}% (coverage/coverage-summary.json)`);
  return parts.join(' and ');
}

/** Every Task state in a definition (including Map iterators and Parallel branches), by name. */
export function taskStates(def: { States: Record<string, AslState> }): Array<[string, AslState]> {
  const out: Array<[string, AslState]> = [];
  for (const [name, state] of Object.entries(def.States)) {
    if (state.Type === 'Task') out.push([name, state]);
    const proc = (state.ItemProcessor ?? state.Iterator) as { States: Record<string, AslState> } | undefined;
    if (proc) out.push(...taskStates(proc));
    for (const b of (state.Branches as Array<{ States: Record<string, AslState> }> | undefined) ?? []) {
      out.push(...taskStates(b));
    }
  }
  return out;
}

/** The task kind a Task state calls, read from its `FunctionName` placeholder. */
export function taskKindOf(state: AslState): TaskKind | undefined {
  const fn = (state.Parameters as Record<string, unknown> | undefined)?.FunctionName;
  const entry = Object.entries(TASK_FUNCTIONS).find(([, key]) => fn === `\${${key}}`);
  return entry?.[0] as TaskKind | undefined;
}

/**
 * Callback states (`.waitForTaskToken`) without `TimeoutSeconds` (or `TimeoutSecondsPath`): such a
 * state waits up to the execution's one-year limit when nobody answers. The stack's synth-time
 * check rejects a definition that has one.
 */
export function callbackStatesWithoutTimeout(def: { States: Record<string, AslState> }): string[] {
  return taskStates(def)
    .filter(([, s]) => String(s.Resource ?? '').endsWith('.waitForTaskToken'))
    .filter(([, s]) => s.TimeoutSeconds === undefined && s.TimeoutSecondsPath === undefined)
    .map(([name]) => name);
}

/** Whether a definition has callback states (which need a STANDARD state machine: Express has no task tokens). */
export const hasCallbackStates = (def: { States: Record<string, AslState> }) =>
  taskStates(def).some(([, s]) => String(s.Resource ?? '').endsWith('.waitForTaskToken'));

/** Step Functions' longest Standard execution: one year, in seconds. Source: https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html (2025-11). */
export const MAX_EXECUTION_SECONDS = 365 * 24 * 3600;

/** The longest a callback task's Lambda invocation takes before it waits (the RequestApproval function's timeout is 30 s). */
const CALLBACK_INVOKE_SECONDS = 60;

/** A branch of states: a definition, a Parallel branch or a Map's item processor. */
interface AslBranch {
  StartAt: string;
  States: Record<string, AslState>;
}

/**
 * The longest an execution of `branch` can take, in seconds, by the definition alone: the longest
 * path from `StartAt` through `Next`, `Default`, `Choices` and `Catch`, where a Task takes its
 * `TimeoutSeconds` once plus once per retry of every retrier (with their backoff waits), a Map
 * takes its items in rounds of `MaxConcurrency` (items: the list the Pass before it injects), a
 * Parallel its longest branch, and a Wait its `Seconds`. Gates count their full timeout (and the
 * escalation's), so an execution timed out after this can never leave a gate waiting. A Task
 * without `TimeoutSeconds` makes it `Infinity`.
 * @throws Error when the graph has a cycle (the compiler makes none)
 */
export function worstCaseSeconds(branch: AslBranch): number {
  const memo = new Map<string, number>();
  const visiting = new Set<string>();
  const itemsOf = (mapName: string, map: AslState): number => {
    const feeder = Object.values(branch.States).find((s) => s.Type === 'Pass' && s.Next === mapName && s.ResultPath === map.ItemsPath);
    return Array.isArray(feeder?.Result) ? feeder.Result.length : 40;
  };
  const own = (name: string, s: AslState): number => {
    switch (s.Type) {
      case 'Task': {
        // A Task without TimeoutSeconds may run until the execution ends: no bound.
        const timeout = Number(s.TimeoutSeconds ?? Number.POSITIVE_INFINITY);
        // A retried callback task waited at most once: only an invocation that failed (quickly,
        // a Lambda service error) is retried; the wait itself ends in a decision or States.Timeout.
        const callback = String(s.Resource ?? '').endsWith('.waitForTaskToken');
        const perRetry = callback ? CALLBACK_INVOKE_SECONDS : timeout;
        let total = timeout;
        for (const r of (s.Retry as AslState[] | undefined) ?? []) {
          const attempts = Number(r.MaxAttempts ?? 3);
          const interval = Number(r.IntervalSeconds ?? 1);
          const rate = Number(r.BackoffRate ?? 2);
          const cap = Number(r.MaxDelaySeconds ?? Number.POSITIVE_INFINITY);
          for (let k = 0; k < attempts; k++) total += perRetry + Math.min(cap, interval * rate ** k);
        }
        return total;
      }
      case 'Map': {
        const rounds = Math.ceil(itemsOf(name, s) / Math.max(1, Number(s.MaxConcurrency ?? 0) || 40));
        return rounds * worstCaseSeconds(s.ItemProcessor as AslBranch);
      }
      case 'Parallel':
        return Math.max(0, ...((s.Branches as AslBranch[] | undefined) ?? []).map(worstCaseSeconds));
      case 'Wait':
        return Number(s.Seconds ?? 0);
      default:
        return 0;
    }
  };
  const from = (name: string): number => {
    const known = memo.get(name);
    if (known !== undefined) return known;
    if (visiting.has(name)) throw new Error(`the definition loops through state "${name}"`);
    const s = branch.States[name];
    if (!s) return 0;
    visiting.add(name);
    const next = [
      s.Next,
      s.Default,
      ...((s.Choices as AslState[] | undefined) ?? []).map((c) => c.Next),
      ...((s.Catch as AslState[] | undefined) ?? []).map((c) => c.Next),
    ].filter((n): n is string => typeof n === 'string');
    const total = own(name, s) + Math.max(0, ...next.map(from));
    visiting.delete(name);
    memo.set(name, total);
    return total;
  };
  return from(branch.StartAt);
}

/**
 * The execution timeout a definition gets: its worst case ({@link worstCaseSeconds}) plus a
 * margin of 10 % (at least 5 minutes), in whole seconds.
 * @throws Error when that passes Step Functions' one-year limit
 */
export function executionTimeoutSeconds(branch: AslBranch): number {
  const worst = worstCaseSeconds(branch);
  const timeout = Math.ceil(worst + Math.max(300, worst * 0.1));
  if (!Number.isFinite(timeout)) throw new Error('a step of the workflow has no timeout');
  if (timeout > MAX_EXECUTION_SECONDS) {
    throw new Error(
      `the workflow can run ${Math.round(worst / 86_400)} days in the worst case, over Step Functions' one-year limit: shorten its gates' timeouts`,
    );
  }
  return timeout;
}

/**
 * Why a definition's execution could end while a step still waits: `TimeoutSeconds` missing or
 * shorter than the worst case (a gate outliving its execution leaves its approval pending and no
 * run record). Empty when it is safe.
 */
export function executionTimeoutProblems(def: AslDefinition): string[] {
  const worst = worstCaseSeconds(def);
  // A step without a timeout has no worst case; `callbackStatesWithoutTimeout` names it.
  if (!Number.isFinite(worst)) return [];
  if (def.TimeoutSeconds === undefined) return [`the state machine has no TimeoutSeconds (worst case ${worst} s)`];
  if (def.TimeoutSeconds < worst) {
    return [
      `TimeoutSeconds ${def.TimeoutSeconds} is shorter than the worst case of its steps (${worst} s: every gate's timeout, escalations, agent phases with their retries): a gate could outlive its execution`,
    ];
  }
  return [];
}
