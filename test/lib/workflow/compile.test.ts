import { join } from 'node:path';
import aslValidator from 'asl-validator';
import { describe, expect, it } from 'vitest';
import { REJECTED_ERROR } from '../../../lambdas/core/approvals.js';
import { AgentItemSchema } from '../../../lambdas/core/contracts.js';
import {
  APPROVAL_REJECTED_ERROR,
  type AslState,
  type Catalog,
  COMMIT_TESTS_STATE,
  compileWorkflow,
  executionTimeoutProblems,
  LAMBDA_SERVICE_ERRORS,
  loadWorkflow,
  MAX_EXECUTION_SECONDS,
  RETRYABLE_ERRORS,
  taskStates,
  toMermaid,
  type Workflow,
  worstCaseSeconds,
} from '../../../lib/workflow/index.js';
import { loadWorkspace, PROJECT_ROOT } from '../../../lib/workspace.js';

const ws = loadWorkspace();
const seeds = loadWorkspace(
  undefined,
  ['code-review.yml', 'pr-review.yml', 'test-generation.yml'].map((f) => join(PROJECT_ROOT, 'test', 'fixtures', 'seed', f)),
);
const all: Workflow[] = [...ws.workflows.values(), ...seeds.workflows.values()];
const prReview = compileWorkflow(ws.workflows.get('pr-review') as Workflow);
const state = (name: string) => prReview.States[name] as AslState;

function compileText(text: string) {
  const r = loadWorkflow('t.yml', text, ws.catalog as Catalog);
  if (!r.value) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return compileWorkflow(r.value);
}

describe('Function: compileWorkflow', () => {
  it.each(all.map((w) => [w.id, w]))('compiles %s to a definition asl-validator accepts', (_id, wf) => {
    const def = compileWorkflow(wf as Workflow);
    const r = aslValidator(structuredClone(def), { checkPaths: true, checkArn: false });
    expect(r.errors).toEqual([]);
    expect(r.isValid).toBe(true);
  });

  it('starts with the run fields, then LoadContext with only a reference and stats coming back', () => {
    expect(prReview.StartAt).toBe('Check pull request');
    expect(state('Check pull request').Default).toBe('Start run');
    expect(state('Start run').Next).toBe('Start check');
    // The check run shows in_progress; a failure to start it goes on to the review.
    expect(state('Start check')).toMatchObject({
      Type: 'Task',
      Parameters: { FunctionName: '${PublishFunctionArn}', Payload: { kind: 'started', check: { failOn: 'critical' } } },
      ResultPath: null,
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.checkError', Next: 'Load context' }],
      Next: 'Load context',
    });
    expect(state('Load context')).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      Parameters: { FunctionName: '${LoadContextFunctionArn}' },
      ResultSelector: { 'contextRef.$': '$.Payload.contextRef', 'stats.$': '$.Payload.stats' },
      ResultPath: '$.context',
      Next: 'Check conditions',
    });
  });

  it('records a pull request the webhook skipped (execution input skip) before any work, with its reason', () => {
    expect(state('Check pull request')).toEqual({
      Type: 'Choice',
      Comment: expect.stringContaining('draft'),
      Choices: [{ Variable: '$.skip', IsPresent: true, Next: 'Record skipped pull request' }],
      Default: 'Start run',
    });
    expect(state('Record skipped pull request')).toMatchObject({
      Type: 'Task',
      Parameters: {
        FunctionName: '${PublishFunctionArn}',
        Payload: { kind: 'skipped', 'runId.$': '$.runId', 'workflow.$': '$.workflow', 'change.$': '$.change', 'reason.$': '$.skip' },
      },
      ResultPath: null,
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Record failure' }],
      Next: 'Skipped',
    });
    // A workflow without conditions has the Skipped state too.
    const manual = compileText('name: T\ntrigger: { event: manual }\nphases:\n  - name: review\n    agents: [code-review]\n');
    expect(manual.States.Skipped).toMatchObject({ Type: 'Succeed' });
    expect(manual.States['Check conditions']).toBeUndefined();
  });

  it("passes the workflow's paths to LoadContext and each agent's paths in its Map item", () => {
    const def = compileText(`name: T
trigger: { event: pull_request.opened }
paths: { include: ["ios/**"], exclude: ["ios/Generated/**"] }
phases:
  - name: review
    agents:
      - security
      - agent: documentation
        paths: { exclude: ["CHANGELOG.md"] }
`);
    const load = def.States['Load context'] as { Parameters: { Payload: Record<string, unknown> } };
    expect(load.Parameters.Payload.paths).toEqual({ include: ['ios/**'], exclude: ['ios/Generated/**'] });
    expect((state('Load context').Parameters as { Payload: Record<string, unknown> }).Payload.paths).toEqual({ include: [], exclude: [] });
    const [security, docs] = (def.States['Phase: review'] as AslState).Result as Array<{ paths: unknown }>;
    expect(AgentItemSchema.parse(security).paths.include).toContain('AndroidManifest.xml');
    expect(docs?.paths).toEqual({ include: ws.catalog?.agents.get('documentation')?.files, exclude: ['CHANGELOG.md'] });
  });

  it('skips with a reason when files_changed does not hold', () => {
    expect(state('Check conditions')).toMatchObject({
      Type: 'Choice',
      Choices: [{ And: [{ Variable: '$.context.stats.matchedFiles', NumericGreaterThan: 0 }], Next: 'Phase: review' }],
      Default: 'Skip: conditions not met',
    });
    expect((state('Skip: conditions not met').Result as { reason: string }).reason).toMatch(/change a file matching \*\.swift/);
  });

  it('compiles lines_changed and test_coverage into Choice rules (unknown coverage does not meet the condition)', () => {
    const def = compileWorkflow(seeds.workflows.get('test-generation') as Workflow);
    const rules = ((def.States['Check conditions'] as AslState).Choices as Array<{ And: unknown[] }>)[0]?.And;
    expect(rules).toContainEqual({
      And: [
        { Variable: '$.context.stats.testCoverage', IsPresent: true },
        { Variable: '$.context.stats.testCoverage', NumericLessThan: 80 },
      ],
    });
    const cr = compileWorkflow(seeds.workflows.get('code-review') as Workflow);
    expect(((cr.States['Check conditions'] as AslState).Choices as Array<{ And: unknown[] }>)[0]?.And).toContainEqual({
      Variable: '$.context.stats.linesChanged',
      NumericGreaterThan: 100,
    });
  });

  it('injects the phase agents with a Pass state whose items match the InvokeAgent contract', () => {
    const pass = state('Phase: review');
    expect(pass).toMatchObject({ Type: 'Pass', ResultPath: '$.phaseAgents', Next: 'Agents: review' });
    for (const item of pass.Result as unknown[]) expect(AgentItemSchema.safeParse(item).success).toBe(true);
  });

  it('runs the agents of a parallel phase in a Map state with an ItemSelector of references', () => {
    expect(state('Agents: review')).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.phaseAgents',
      MaxConcurrency: 4,
      ItemSelector: {
        'agent.$': '$$.Map.Item.Value',
        'runId.$': '$.runId',
        phase: 'review',
        'contextRef.$': '$.context.contextRef',
        'previous.$': '$.results',
      },
      ResultPath: '$.results.review',
      Next: 'Phase: verify',
    });
  });

  it('runs the verifier (verify: true) as the last phase, one agent that sees every earlier result, before Aggregate', () => {
    const pass = state('Phase: verify');
    expect(pass).toMatchObject({ Type: 'Pass', Next: 'Agents: verify' });
    const [verifier] = pass.Result as Array<{ name: string; output: string }>;
    expect(AgentItemSchema.parse(verifier)).toMatchObject({
      name: 'verifier',
      output: 'verdicts',
      verify: { batch: 20, unconfirmed: 'drop' },
    });
    expect(state('Agents: verify')).toMatchObject({
      Type: 'Map',
      MaxConcurrency: 1,
      ItemSelector: { phase: 'verify', 'previous.$': '$.results' },
      ResultPath: '$.results.verify',
      Next: 'Aggregate findings',
    });
    // The review plan gives the verifier its share of the run budget like any agent.
    const load = state('Load context') as { Parameters: { Payload: { agents: Array<{ phase: string }> } } };
    expect(load.Parameters.Payload.agents.map((a) => a.phase)).toContain('verify');
  });

  it('retries Lambda service errors and retryable provider errors with backoff and full jitter, and catches the rest per agent', () => {
    const proc = state('Agents: review').ItemProcessor as { States: Record<string, AslState> };
    const task = proc.States['Run agent: review'] as AslState;
    expect(task.Retry).toEqual([
      expect.objectContaining({ ErrorEquals: [...LAMBDA_SERVICE_ERRORS], BackoffRate: 2, JitterStrategy: 'FULL' }),
      expect.objectContaining({ ErrorEquals: [...RETRYABLE_ERRORS], BackoffRate: 2, JitterStrategy: 'FULL', MaxDelaySeconds: 30 }),
    ]);
    expect(task.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Agent failed: review' }]);
    expect(proc.States['Agent failed: review']).toMatchObject({
      Type: 'Pass',
      Parameters: { status: 'failed', 'error.$': '$.error' },
      End: true,
    });
  });

  it('runs a phase with parallel: false one agent at a time', () => {
    const def = compileWorkflow(seeds.workflows.get('test-generation') as Workflow);
    expect((def.States['Agents: analysis'] as AslState).MaxConcurrency).toBe(1);
  });

  it('runs phases that do not depend on each other side by side in a Parallel state, keeping every result', () => {
    const def = compileText(`name: T
trigger: { event: manual }
phases:
  - name: first
    agents: [code-review]
  - name: sec
    depends_on: [first]
    agents: [security]
  - name: docs
    depends_on: [first]
    agents: [documentation]
`);
    const par = def.States['Phases: sec + docs'] as AslState;
    expect(par.Type).toBe('Parallel');
    expect(par.ResultSelector).toEqual({ 'first.$': '$[0].results.first', 'sec.$': '$[0].results.sec', 'docs.$': '$[1].results.docs' });
    expect(par.ResultPath).toBe('$.results');
    expect((def.States['Agents: first'] as AslState).Next).toBe('Phases: sec + docs');
  });

  it('catches every top-level task into Record failure and a Fail state', () => {
    for (const name of ['Load context', 'Agents: review', 'Aggregate findings', 'Publish results']) {
      expect(state(name).Catch, name).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Record failure' }]);
    }
    expect(state('Record failure')).toMatchObject({ Type: 'Task', Parameters: { Payload: { kind: 'failed' } }, Next: 'Run failed' });
    expect(state('Run failed')).toMatchObject({ Type: 'Fail', Error: 'AgentFlowRunFailed' });
  });

  it('passes code_scanning (with the security agents) and the Slack channel to Publish, and the channel to the failure record', () => {
    // Prepare
    const text = `name: T
trigger: { event: pull_request.opened }
phases:
  - name: review
    agents: [code-review, security]
output: { code_scanning: true, slack: "#mobile-reviews" }
`;

    // Act
    const def = compileText(text);

    // Assess
    const publish = (def.States['Publish results'] as AslState).Parameters as { Payload: { outputs: unknown } };
    expect(publish.Payload.outputs).toEqual({
      review: true,
      databaseLog: true,
      slack: '#mobile-reviews',
      codeScanning: { agents: ['security'] },
    });
    expect(((def.States['Record failure'] as AslState).Parameters as { Payload: { notify?: string } }).Payload.notify).toBe(
      '#mobile-reviews',
    );
    // Without the settings, neither is in the input.
    expect((state('Publish results').Parameters as { Payload: { outputs: unknown } }).Payload.outputs).toEqual({
      review: true,
      databaseLog: true,
    });
    expect((state('Record failure').Parameters as { Payload: { notify?: string } }).Payload.notify).toBeUndefined();
  });

  it('gives every task a timeout and names every state for people', () => {
    for (const [name, s] of taskStates(prReview)) {
      expect(s.TimeoutSeconds, name).toBeGreaterThan(0);
      expect(name).not.toMatch(/^Task\d*$/);
    }
  });

  it('catches the error name the decision use case fails a rejected task with', () => {
    // lib/workflow imports nothing of lambdas/: the two constants must agree.
    expect(APPROVAL_REJECTED_ERROR).toBe(REJECTED_ERROR);
  });

  it('keeps the compiled definition small', () => {
    expect(JSON.stringify(prReview).length).toBeLessThan(64 * 1024);
  });
});

describe('Function: toMermaid', () => {
  it('draws states, the Map subgraph, choices and catches', () => {
    const m = toMermaid(prReview);
    expect(m.startsWith('flowchart TD\n')).toBe(true);
    expect(m).toMatch(/subgraph s\d+\["Agents: review \(Map, max 4\)"\]/);
    expect(m).toMatch(/-->\|no\| s\d+/);
    expect(m).toMatch(/-\.->\|States\.ALL\|/);
  });
});

describe('Function: executionTimeoutSeconds (the state machine TimeoutSeconds)', () => {
  const shipped = loadWorkspace();

  it('gives every shipped workflow a timeout longer than its worst case: gates, escalations and agent phases with retries', () => {
    for (const wf of shipped.workflows.values()) {
      const def = compileWorkflow(wf);
      const gates = wf.phases.reduce(
        (sum, p) =>
          sum +
          (p.kind !== 'approval' && p.kind !== 'ci'
            ? 0
            : p.timeoutSeconds + (p.kind === 'approval' && p.onTimeout === 'escalate' ? (p.escalate?.timeoutSeconds ?? 0) : 0)),
        0,
      );
      expect(def.TimeoutSeconds, wf.id).toBeGreaterThan(gates);
      expect(def.TimeoutSeconds, wf.id).toBeGreaterThanOrEqual(worstCaseSeconds(def));
      expect(executionTimeoutProblems(def), wf.id).toEqual([]);
    }
  });

  it('outlasts architecture-migration’s 24 h approval plus its 24 h escalation (it was a fixed 6 h)', () => {
    const def = compileWorkflow(shipped.workflows.get('architecture-migration') as Workflow);
    expect(def.TimeoutSeconds).toBeGreaterThan(48 * 3600);
    expect(def.TimeoutSeconds).toBeLessThan(MAX_EXECUTION_SECONDS);
  });

  it('counts a Map state in rounds of MaxConcurrency, a Parallel state by its longest branch, and each retry with its backoff', () => {
    const task = (t: number, next?: string) => ({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      TimeoutSeconds: t,
      Retry: [{ ErrorEquals: ['X'], MaxAttempts: 2, IntervalSeconds: 1, BackoffRate: 2 }],
      ...(next ? { Next: next } : { End: true }),
    });
    const def = {
      StartAt: 'Items',
      States: {
        Items: { Type: 'Pass', Result: [1, 2, 3, 4, 5], ResultPath: '$.items', Next: 'Map' },
        Map: {
          Type: 'Map',
          ItemsPath: '$.items',
          MaxConcurrency: 2,
          ItemProcessor: { StartAt: 'T', States: { T: task(10) } },
          Next: 'Both',
        },
        Both: {
          Type: 'Parallel',
          Branches: [
            { StartAt: 'A', States: { A: task(5) } },
            { StartAt: 'B', States: { B: task(100) } },
          ],
          End: true,
        },
      },
    };
    // A task of t seconds with two retries (1 s, then 2 s apart): 3 t + 3.
    expect(worstCaseSeconds(def)).toBe(3 * (3 * 10 + 3) + (3 * 100 + 3));
  });
});

describe('Function: compileWorkflow (output.create_files)', () => {
  const def = compileWorkflow(ws.workflows.get('test-generation') as Workflow);
  const at = (name: string) => def.States[name] as AslState;

  it('commits the generation phase files with a Publish task before the next phase, keeping the commit at $.files.commit', () => {
    expect(at('Agents: generation').Next).toBe(COMMIT_TESTS_STATE);
    expect(at(COMMIT_TESTS_STATE)).toMatchObject({
      Type: 'Task',
      Parameters: {
        FunctionName: '${PublishFunctionArn}',
        Payload: {
          kind: 'files',
          results: { 'generation.$': '$.results.generation' },
          createFiles: { paths: expect.arrayContaining(['**/*Tests/**', '**/src/test/**']), pushToPullRequest: false },
        },
      },
      ResultSelector: { 'commit.$': '$.Payload.files' },
      ResultPath: '$.files',
      Next: 'Phase: review',
    });
    // A failed commit goes on with the pull request's head (the report says why).
    expect(at('Tests not committed')).toMatchObject({ Type: 'Pass', ResultPath: '$.files', Next: 'Phase: review' });
    expect(at('Aggregate findings').Parameters).toMatchObject({ Payload: { 'files.$': '$.files.commit' } });
  });

  it('makes the ci gate wait for the report on the generated commit, not the pull request head', () => {
    expect(at('Wait for CI: execution').Parameters).toMatchObject({
      Payload: { kind: 'ci', 'commitSha.$': '$.files.commit.sha', 'change.$': '$.change' },
    });
    const r = aslValidator(structuredClone(def), { checkPaths: true, checkArn: false });
    expect(r.errors).toEqual([]);
  });

  it('compiles no commit step without create_files', () => {
    expect(prReview.States[COMMIT_TESTS_STATE]).toBeUndefined();
    expect(JSON.stringify(prReview)).not.toContain('commitSha');
  });
});
