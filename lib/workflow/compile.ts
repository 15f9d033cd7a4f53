import { phaseLevels } from './load.js';
import type { AgentPhase, Comparison, Workflow } from './model.js';

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
};

/** Name of the Task state that runs the agents of `phase` inside its Map state. */
export const agentTaskName = (phase: string) => `Run agent: ${phase}`;
/** Name of the Map state of `phase`. */
export const mapStateName = (phase: string) => `Agents: ${phase}`;

const STATE = {
  start: 'Start run',
  load: 'Load context',
  conditions: 'Check conditions',
  skip: 'Skip: conditions not met',
  recordSkip: 'Record skipped run',
  skipped: 'Skipped',
  aggregate: 'Aggregate findings',
  publish: 'Publish results',
  done: 'Done',
  recordFailure: 'Record failure',
  failed: 'Run failed',
} as const;

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
 * Shape: Start run → Load context → Check conditions (Choice, skip with a reason) → per phase a
 * Pass that injects the agent list and a Map state whose iterator is one InvokeAgent task (Retry on
 * Lambda service errors and on {@link RETRYABLE_ERRORS}, Catch into a failed-agent result) →
 * Aggregate findings → Publish results; independent phases run in a Parallel state. Every
 * top-level task has a Catch into `Record failure` → `Run failed`.
 *
 * Execution input: `{ runId, workflow, change }` (see `lambdas/core/contracts.ts`).
 * Function ARNs are `${...Arn}` placeholders from {@link TASK_FUNCTIONS}.
 */
export function compileWorkflow(workflow: Workflow): AslDefinition {
  const states: Record<string, AslState> = {};
  const levels = phaseLevels(workflow.phases);
  const firstAfterConditions = levels.length > 0 ? levelStateName(levels, 0) : STATE.aggregate;
  const hasConditions = Boolean(workflow.trigger.filesChanged || workflow.trigger.linesChanged || workflow.trigger.testCoverage);

  states[STATE.start] = {
    Type: 'Pass',
    Comment: 'Keeps only the small run fields; everything large travels by reference.',
    Parameters: {
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      'change.$': '$.change',
      results: {},
    },
    Next: STATE.load,
  };
  states[STATE.load] = lambdaTask(
    'loadContext',
    {
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      'change.$': '$.change',
      filesChanged: workflow.trigger.filesChanged ?? [],
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
      },
      { ResultPath: null, Catch: runCatch, Next: STATE.skipped },
    );
    states[STATE.skipped] = { Type: 'Succeed', Comment: 'The trigger conditions did not hold.' };
  }

  levels.forEach((level, i) => {
    const next = i + 1 < levels.length ? levelStateName(levels, i + 1) : STATE.aggregate;
    const [only] = level;
    if (level.length === 1 && only) {
      Object.assign(states, phaseStates(only, next, true, workflow.budget));
      return;
    }
    const before = workflow.phases.filter((p) => levels.slice(0, i).flat().includes(p));
    const selector: Record<string, string> = {};
    for (const p of before) selector[`${phaseKey(p.name)}.$`] = `$[0].results.${phaseKey(p.name)}`;
    level.forEach((p, b) => {
      selector[`${phaseKey(p.name)}.$`] = `$[${b}].results.${phaseKey(p.name)}`;
    });
    states[levelStateName(levels, i)] = {
      Type: 'Parallel',
      Comment: 'Phases that do not depend on each other run side by side.',
      Branches: level.map((p) => {
        const branch = phaseStates(p, undefined, false, workflow.budget);
        return { StartAt: phaseStartName(p), States: branch };
      }),
      ResultSelector: selector,
      ResultPath: '$.results',
      Catch: runCatch,
      Next: next,
    };
  });

  const requiredPhases = workflow.phases.filter((p) => p.required).map((p) => p.name);
  states[STATE.aggregate] = lambdaTask(
    'aggregate',
    {
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      'change.$': '$.change',
      'contextRef.$': '$.context.contextRef',
      'results.$': '$.results',
      workflowName: workflow.name,
      requiredPhases,
    },
    {
      ResultSelector: {
        'reportRef.$': '$.Payload.reportRef',
        'commentRef.$': '$.Payload.commentRef',
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
        githubReview: workflow.output.githubReview,
        databaseLog: workflow.output.databaseLog,
        ...(workflow.output.slack ? { slack: workflow.output.slack } : {}),
      },
    },
    {
      ResultSelector: { 'commentUrl.$': '$.Payload.commentUrl' },
      ResultPath: '$.published',
      // The execution's output is the run summary.
      OutputPath: '$.report.summary',
      Catch: runCatch,
      Next: STATE.done,
    },
  );
  states[STATE.done] = { Type: 'Succeed', Comment: 'The review is published.' };
  states[STATE.recordFailure] = lambdaTask(
    'publish',
    {
      kind: 'failed',
      'runId.$': '$.runId',
      'workflow.$': '$.workflow',
      'change.$': '$.change',
      'error.$': '$.error',
      ...(workflow.notifyOnFailure ? { notify: workflow.notifyOnFailure } : {}),
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

  return {
    Comment: `AgentFlow workflow "${workflow.name}" (${workflow.id}): ${workflow.description || 'generated from YAML'}`.slice(0, 500),
    StartAt: STATE.start,
    TimeoutSeconds: 6 * 3600,
    States: states,
  };
}

function levelStateName(levels: AgentPhase[][], i: number): string {
  const level = levels[i] ?? [];
  const [only] = level;
  if (level.length === 1 && only) return phaseStartName(only);
  return `Phases: ${level.map((p) => p.name).join(' + ')}`;
}

const phaseStartName = (p: AgentPhase) => `Phase: ${p.name}`;

/** The Pass + Map pair of one phase. `next` undefined ends the branch (inside a Parallel). */
function phaseStates(phase: AgentPhase, next: string | undefined, topLevel: boolean, budget: Workflow['budget']): Record<string, AslState> {
  const key = phaseKey(phase.name);
  const failed = `Agent failed: ${phase.name}`;
  const iterator = {
    ProcessorConfig: { Mode: 'INLINE' },
    StartAt: agentTaskName(phase.name),
    States: {
      [agentTaskName(phase.name)]: {
        ...lambdaTask('invokeAgent', { 'input.$': '$' }, {}),
        Parameters: { FunctionName: `\${${TASK_FUNCTIONS.invokeAgent}}`, 'Payload.$': '$' },
        Retry: [
          {
            ErrorEquals: [...LAMBDA_SERVICE_ERRORS],
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
      'contextRef.$': '$.context.contextRef',
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
    [phaseStartName(phase)]: {
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
    // Coverage unknown (no source reported it) does not skip the run.
    rules.push({
      Or: [
        { Not: { Variable: '$.context.stats.testCoverage', IsPresent: true } },
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
  if (t.testCoverage) parts.push(`have test coverage ${t.testCoverage.op} ${t.testCoverage.value}%`);
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
