import aslValidator from 'asl-validator';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { AgentItemSchema, RequestAggregateInputSchema } from '../../../lambdas/core/contracts.js';
import {
  type AslDefinition,
  type AslState,
  type Catalog,
  compileWorkflow,
  loadWorkflow,
  type Workflow,
} from '../../../lib/workflow/index.js';
import { loadWorkspace } from '../../../lib/workspace.js';

const ws = loadWorkspace();
const triage = ws.workflows.get('support-triage') as Workflow;
const teamRequest = ws.workflows.get('team-request') as Workflow;
const triageDef = compileWorkflow(triage);

const errors = (text: string) => loadWorkflow('workflows/t.yml', text, ws.catalog as Catalog).diagnostics.map((d) => d.message);

/** A request workflow around `phases` (YAML lines, indented by 2). */
const requestWorkflow = (phases: string, extra = '') =>
  `name: T\ntrigger: { event: request }\nmcp_servers:\n  desk: { url: "https://desk.example.com/mcp" }\n${extra}phases:\n${phases}`;

type Handler = (input: Record<string, unknown>) => Promise<unknown>;

/**
 * Runs a compiled definition on aws-local-stepfunctions (the local runtime's engine) with a
 * handler per Task state (Map iterations by their inner Task's name) and returns the states
 * entered, in order, and the execution's output.
 */
async function run(def: AslDefinition, handlers: Record<string, Handler>, input: unknown) {
  const entered: string[] = [];
  const wrapped = Object.fromEntries(
    Object.entries(handlers).map(([name, h]) => [
      name,
      async (i: Record<string, unknown>) => {
        entered.push(name);
        return h(i);
      },
    ]),
  );
  const sm = new StateMachine(def as unknown as StateMachineDefinition, { validationOptions: { checkArn: false, checkPaths: false } });
  const exec = sm.run(input as never, {
    overrides: { taskResourceLocalHandlers: wrapped as never },
    context: { Task: { Token: 'local' } } as never,
  });
  const states: string[] = [];
  const logs = (async () => {
    for await (const ev of exec.eventLogs) if (ev.type === 'StateEntered') states.push((ev as { state: { name: string } }).state.name);
  })();
  const output = await exec.result.catch((e: unknown) => ({ failed: e }));
  await logs;
  return { states, entered, output };
}

/** An agent's Map result as InvokeAgent returns it (the Task's Payload). */
const agentResult = (phase: string, extra: Record<string, unknown> = {}) => ({
  Payload: {
    name: phase,
    phase,
    status: 'succeeded',
    provider: 'bedrock',
    model: 'claude-sonnet',
    costUsd: 0.001,
    answerRef: `a/${phase}`,
    ...extra,
  },
});

/** Handlers of support-triage's tasks: the route, the billing amount, the judge's verdict and the screen are the scenario. */
function triageHandlers(o: {
  route?: string;
  amount?: number | string;
  verdict?: string;
  screen?: Record<string, unknown>;
  seen?: Record<string, Record<string, unknown>>;
}): Record<string, Handler> {
  const keep =
    (name: string, h: Handler): Handler =>
    async (i) => {
      if (o.seen) o.seen[name] = i;
      return h(i);
    };
  return {
    'Run agent: screen': async () =>
      o.screen ?? agentResult('screen', { guardrail: { intervened: false, blocked: false, interventions: [] } }),
    'Run agent: triage': async () => agentResult('triage', o.route ? { decision: o.route, decisionReason: 'because' } : {}),
    'Run agent: billing': async () => agentResult('billing', { data: { refund_usd: o.amount ?? 150, order_id: '1234' } }),
    'Run agent: technical': async () => agentResult('technical'),
    'Run agent: order-status': async () => agentResult('order-status'),
    'Run agent: refund': async () => agentResult('refund', { data: { refund_id: 'R-1' } }),
    'Run agent: reply-check': async () =>
      agentResult('reply-check', { guardrail: { intervened: false, blocked: false, interventions: [] } }),
    'Run agent: judge': async () => agentResult('judge', { data: { verdict: o.verdict ?? 'pass' } }),
    'Approve: refund-approval': keep('Approve: refund-approval', async () => ({ outcome: 'approved', by: 'U024BE7LH' })),
    'Approve: send-approval': keep('Approve: send-approval', async () => ({ outcome: 'approved', by: 'U024BE7LH' })),
    'Aggregate answer': keep('Aggregate answer', async () => ({ Payload: { reportRef: 'r', summary: { status: 'SUCCEEDED' } } })),
    'Publish answer': async () => ({ Payload: {} }),
    'Record stopped run': keep('Record stopped run', async () => ({ Payload: {} })),
    'Record failure': keep('Record failure', async () => ({ Payload: {} })),
  };
}

const input = { runId: 'r-1', workflow: 'support-triage', request: { text: 'I was charged twice for order 1234', requester: 'slack:U1' } };

describe('Request workflows: loading', () => {
  it('loads the shipped team-request and support-triage as request workflows with tools, routes, guardrails and conditional gates', () => {
    expect(teamRequest.kind).toBe('request');
    expect(triage.kind).toBe('request');
    expect(triage.phases.map((p) => `${p.kind}:${p.name}`)).toEqual([
      'guardrail:screen',
      'route:triage',
      'agents:billing',
      'agents:technical',
      'agents:order-status',
      'approval:refund-approval',
      'agents:refund',
      'guardrail:reply-check',
      'agents:judge',
      'approval:send-approval',
    ]);
    expect(triage.output.answer).toEqual(['reply-check']);
    // The route's targets run after it (the dependency is implied).
    expect(triage.phases.find((p) => p.name === 'technical')?.dependsOn).toEqual(['triage']);
  });

  it('allows write tools after an approval gate or with allow_write_tools, and nowhere else', () => {
    const agent = (wf: Workflow, phase: string) => {
      const p = wf.phases.find((x) => x.name === phase);
      return p?.kind === 'agents' ? p.agents[0] : undefined;
    };
    expect(agent(triage, 'refund')?.allowWrite).toBe(true);
    expect(agent(triage, 'billing')?.allowWrite).toBe(false);
    expect(agent(teamRequest, 'act')?.allowWrite).toBe(true);
    expect(
      agent(teamRequest, 'act')?.tools.map((t) => `${t.name}:${t.allow.map((a) => `${a.name}${a.write ? '(w)' : ''}`).join(',')}`),
    ).toEqual(['tracker:search_issues,create_issue(w)', 'ci:get_pipeline,rerun_pipeline(w)']);
    expect(agent(teamRequest, 'act')).toMatchObject({ maxIterations: 6, timeLimitSeconds: 120, output: 'answer' });
  });

  it('compiles Map items InvokeAgent accepts (tools, route, guardrail settings)', () => {
    for (const wf of [triage, teamRequest]) {
      for (const [, s] of Object.entries(compileWorkflow(wf).States)) {
        if (s.Type !== 'Pass' || !Array.isArray(s.Result)) continue;
        for (const item of s.Result) expect(AgentItemSchema.safeParse(item).error).toBeUndefined();
      }
    }
  });

  it.each([
    [
      'a write tool with no approval gate before it and no allow_write_tools',
      requestWorkflow(
        '  - name: act\n    agents:\n      - agent: team-assistant\n        tools: [{ server: desk, allow: [{ name: refund, write: true }] }]\n',
      ),
      /agent "team-assistant" lists write tools \(desk\.refund\) but no approval gate comes before phase "act"/,
    ],
    [
      'a tool server the workflow does not declare',
      requestWorkflow('  - name: act\n    agents:\n      - agent: team-assistant\n        tools: [{ server: jira, allow: [search] }]\n'),
      /tools: unknown server "jira" \(known: agentflow, desk; declare it under mcp_servers\)/,
    ],
    [
      'max_iterations without tools',
      requestWorkflow('  - name: act\n    agents:\n      - agent: team-assistant\n        max_iterations: 3\n'),
      /max_iterations caps the tool loop: it does nothing without tools/,
    ],
    [
      'a review agent in a request workflow',
      requestWorkflow('  - name: act\n    agents: [security]\n'),
      /agent "security" reviews a change \(output: findings\); a request workflow's agents answer/,
    ],
    [
      'the built-in change tools in a request workflow',
      requestWorkflow(
        '  - name: act\n    agents:\n      - agent: team-assistant\n        tools: [{ server: agentflow, allow: [read_file] }]\n',
      ),
      /the built-in tools \(server: agentflow\) read the change under review; a request workflow has none/,
    ],
    [
      'a route default that is not a target',
      requestWorkflow(
        '  - name: triage\n    route: { agent: support-supervisor, to: [a, b], default: c }\n  - name: a\n    agents: [team-assistant]\n  - name: b\n    agents: [technical-specialist]\n',
      ),
      /route.default: "c" is not one of route.to \(a, b\)/,
    ],
    [
      'a phase running beside the targets of a route',
      requestWorkflow(
        '  - name: triage\n    route: { agent: support-supervisor, to: [a, b], default: a }\n  - name: a\n    agents: [team-assistant]\n  - name: b\n    agents: [technical-specialist]\n  - name: c\n    depends_on: [triage]\n    agents: [billing-specialist]\n',
      ),
      /phase "c" would run beside the targets of route "triage"; make it depend on them/,
    ],
    [
      'a numeric comparison on a word',
      requestWorkflow(
        '  - name: a\n    agents: [billing-specialist]\n  - name: ok\n    depends_on: [a]\n    approval: { channel: "#x", approvers: [U1], timeout: 1h, when: "a.amount_usd > lots" }\n',
      ),
      /approval.when: > compares numbers; "lots" is not one/,
    ],
    [
      'a condition on a phase the gate does not come after',
      requestWorkflow(
        '  - name: a\n    agents: [billing-specialist]\n  - name: ok\n    approval: { channel: "#x", approvers: [U1], timeout: 1h, when: "a.amount_usd > 100" }\n',
      ),
      /approval.when: "a" is not an earlier phase this gate depends on/,
    ],
    [
      'an output guardrail without the answers it checks',
      requestWorkflow(
        '  - name: a\n    agents: [billing-specialist]\n  - name: g\n    depends_on: [a]\n    guardrail: { source: output }\n',
      ),
      /guardrail source: output needs check/,
    ],
    [
      'a request trigger mixed with change events',
      'name: T\ntrigger: { event: [request, change.opened] }\nphases:\n  - name: act\n    agents: [team-assistant]\n',
      /trigger: request starts a request workflow; it cannot be combined with change events or manual/,
    ],
    [
      'a review output on a request workflow',
      requestWorkflow('  - name: act\n    agents: [team-assistant]\n', '').replace('phases:', 'output: { fail_on: high }\nphases:'),
      /output.fail_on posts on a pull or merge request, and a request workflow \(trigger: request\) has none/,
    ],
    [
      'a route in a review workflow',
      'name: T\ntrigger: { event: change.opened }\nphases:\n  - name: triage\n    route: { agent: support-supervisor, to: [a, b], default: a }\n  - name: a\n    agents: [security]\n  - name: b\n    agents: [code-review]\n',
      /route phase "triage": routes are only in request workflows \(trigger: request\)/,
    ],
    [
      'an answer agent in a review workflow',
      'name: T\ntrigger: { event: change.opened }\nphases:\n  - name: a\n    agents: [team-assistant]\n',
      /agent "team-assistant" answers requests \(output: answer\): use it in a request workflow/,
    ],
    [
      'a write tool a way around its approval gate reaches (the gate on one route branch only)',
      requestWorkflow(
        '  - name: r1\n    route: { agent: support-supervisor, to: [billing, technical], default: technical }\n  - name: billing\n    agents: [billing-specialist]\n  - name: technical\n    agents: [technical-specialist]\n  - name: g\n    depends_on: [billing]\n    approval: { channel: "#x", approvers: [U1], timeout: 1h }\n  - name: w\n    depends_on: [g, technical]\n    agents:\n      - agent: refund-agent\n        tools: [{ server: desk, allow: [{ name: issue_refund, write: true }] }]\n',
      ),
      /agent "refund-agent" lists write tools \(desk\.issue_refund\) but no approval gate comes before phase "w" on every way to it/,
    ],
    [
      'a write tool behind a gate that approves on timeout',
      requestWorkflow(
        '  - name: g\n    approval: { channel: "#x", approvers: [U1], timeout: 1h, on_timeout: approve }\n  - name: w\n    depends_on: [g]\n    agents:\n      - agent: refund-agent\n        tools: [{ server: desk, allow: [{ name: issue_refund, write: true }] }]\n',
      ),
      /a gate with on_timeout: approve does not count/,
    ],
    [
      'a route that may itself be skipped',
      requestWorkflow(
        '  - name: r1\n    route: { agent: support-supervisor, to: [billing, technical], default: technical }\n  - name: billing\n    agents: [billing-specialist]\n  - name: technical\n    agents: [technical-specialist]\n  - name: r2\n    depends_on: [billing]\n    route: { agent: support-supervisor, to: [order-status, judge], default: judge }\n  - name: order-status\n    agents: [order-status-specialist]\n  - name: judge\n    agents: [reply-judge]\n',
      ),
      /route "r2" runs only when billing ran: a route must always run/,
    ],
    [
      'a condition on a phase the route may skip while the gate runs',
      requestWorkflow(
        '  - name: r1\n    route: { agent: support-supervisor, to: [billing, technical], default: technical }\n  - name: billing\n    agents: [billing-specialist]\n  - name: technical\n    agents: [technical-specialist]\n  - name: g\n    depends_on: [billing, technical]\n    approval: { channel: "#x", approvers: [U1], timeout: 1h, when: "billing.refund_usd > 100" }\n',
      ),
      /approval.when: "billing" may be skipped while this gate runs/,
    ],
    [
      'a condition on a data field the agent does not answer (a misspelt field would always ask)',
      requestWorkflow(
        '  - name: billing\n    agents: [billing-specialist]\n  - name: g\n    depends_on: [billing]\n    approval: { channel: "#x", approvers: [U1], timeout: 1h, when: "billing.amount > 100" }\n',
      ),
      /approval.when: agent "billing-specialist" answers no field "amount" \(its prompt's Data fields: order_id, refund_usd, refund\)/,
    ],
  ])('refuses %s with its line and column', (_what, text, message) => {
    const found = errors(text);
    expect(
      found.some((m) => message.test(m)),
      found.join('\n'),
    ).toBe(true);
  });
});

describe('Request workflows: compiling (synth of the state machines)', () => {
  const s = (name: string) => triageDef.States[name] as AslState;

  it('compiles support-triage to a definition asl-validator accepts, starting from the request', () => {
    const r = aslValidator(structuredClone(triageDef), { checkPaths: true, checkArn: false });
    expect(r.errors).toEqual([]);
    expect(s('Start run')).toMatchObject({ Parameters: { 'request.$': '$.request' } });
    expect(JSON.stringify(triageDef)).not.toContain('contextRef');
    expect(JSON.stringify(triageDef)).not.toContain('$.change');
  });

  it("routes with a Choice on the route agent's decision, with a default branch", () => {
    expect(s('Route: triage')).toEqual({
      Type: 'Choice',
      Comment: expect.stringContaining('billing, technical, order-status'),
      Choices: ['billing', 'technical', 'order-status'].map((to) => ({
        And: [
          { Variable: '$.results.triage[0].decision', IsPresent: true },
          { Variable: '$.results.triage[0].decision', StringEquals: to },
        ],
        Next: `Phase: ${to}`,
      })),
      Default: 'Phase: technical',
    });
  });

  it('puts a Choice on the earlier answer before a gate with when, and asks when the field is absent', () => {
    expect(s('When: refund-approval')).toMatchObject({
      Type: 'Choice',
      Choices: [
        {
          And: [
            { Variable: '$.results.billing[0].data.refund_usd', IsPresent: true },
            { Variable: '$.results.billing[0].data.refund_usd', IsNumeric: true },
            { Not: { Variable: '$.results.billing[0].data.refund_usd', NumericGreaterThan: 100 } },
          ],
          Next: 'Not needed: refund-approval',
        },
      ],
      Default: 'Approve: refund-approval',
    });
    expect(s('Not needed: refund-approval')).toMatchObject({
      ResultPath: '$.gates.refund_approval',
      Parameters: { outcome: 'not-needed' },
    });
    expect(s('When: send-approval').Choices).toEqual([
      expect.objectContaining({
        And: [
          { Variable: '$.results.judge[0].data.verdict', IsPresent: true },
          { Variable: '$.results.judge[0].data.verdict', IsString: true },
          { Not: { Not: { Variable: '$.results.judge[0].data.verdict', StringEquals: 'pass' } } },
        ],
      }),
    ]);
    // The approval request shows what made it ask.
    expect((s('Approve: refund-approval').Parameters as { Payload: Record<string, unknown> }).Payload).toMatchObject({
      'request.$': '$.request',
      about: { phase: 'billing', condition: 'billing.refund_usd > 100' },
      'result.$': '$.results.billing[0]',
    });
  });

  it('guards a phase after conditional phases and stops on a guardrail block', () => {
    expect(s('Guard: refund-approval')).toMatchObject({
      Choices: [{ Variable: '$.results.billing', IsPresent: true, Next: 'When: refund-approval' }],
    });
    expect(s('Guard: reply-check')).toMatchObject({
      Choices: [{ Or: ['technical', 'order_status', 'refund'].map((k) => ({ Variable: `$.results.${k}`, IsPresent: true })) }],
    });
    expect(s('Check guardrail: screen')).toMatchObject({ Default: 'Guardrail failed: screen' });
    expect(s('Blocked: screen')).toMatchObject({ ResultPath: '$.stop', Next: 'Record stopped run' });
  });

  it('retries an agent that may write only when its invocation was throttled (it never ran)', () => {
    const retry = (name: string) =>
      (
        ((s(`Agents: ${name}`).ItemProcessor as { States: Record<string, AslState> }).States[`Run agent: ${name}`] as AslState)
          .Retry as AslState[]
      )[0]?.ErrorEquals;
    expect(retry('refund')).toEqual(['Lambda.TooManyRequestsException']);
    expect(retry('billing')).toEqual(expect.arrayContaining(['Lambda.ServiceException', 'Lambda.TooManyRequestsException']));
  });

  it('gives Aggregate the plan it records skipped phases from, and the phases whose answer is sent', () => {
    const payload = (s('Aggregate answer').Parameters as { Payload: Record<string, unknown> }).Payload;
    const fixed = Object.fromEntries(Object.entries(payload).filter(([k]) => !k.endsWith('.$')));
    const parsed = RequestAggregateInputSchema.parse({
      ...fixed,
      runId: 'r',
      workflow: 'w',
      request: input.request,
      results: {},
      gates: {},
    });
    expect(parsed.plan).toContainEqual({ phase: 'technical', kind: 'agents', routeOf: 'triage', after: [] });
    expect(parsed.plan).toContainEqual({ phase: 'reply-check', kind: 'guardrail', after: ['refund', 'technical', 'order-status'] });
    expect(parsed.answer).toEqual(['reply-check']);
  });
});

describe('Request workflows: running the compiled support-triage on the local engine', () => {
  it('routes a refund of $150 to billing, asks for approval, refunds, checks the reply and sends it', async () => {
    const seen: Record<string, Record<string, unknown>> = {};
    const r = await run(triageDef, triageHandlers({ route: 'billing', amount: 150, seen }), input);
    expect(r.entered).toEqual([
      'Run agent: screen',
      'Run agent: triage',
      'Run agent: billing',
      'Approve: refund-approval',
      'Run agent: refund',
      'Run agent: reply-check',
      'Run agent: judge',
      'Aggregate answer',
      'Publish answer',
    ]);
    expect(r.states).toContain('Not needed: send-approval');
    const gates = (seen['Aggregate answer'] as { Payload: { gates: Record<string, unknown> } }).Payload.gates;
    expect(gates.refund_approval).toMatchObject({ outcome: 'approved' });
    expect(gates.send_approval).toMatchObject({ outcome: 'not-needed', reason: expect.stringContaining('judge.verdict is pass') });
  });

  it('goes on without asking for a refund of $45', async () => {
    const seen: Record<string, Record<string, unknown>> = {};
    const r = await run(triageDef, triageHandlers({ route: 'billing', amount: 45, seen }), input);
    expect(r.entered).not.toContain('Approve: refund-approval');
    expect(r.entered).toContain('Run agent: refund');
    const gates = (seen['Aggregate answer'] as { Payload: { gates: Record<string, unknown> } }).Payload.gates;
    expect(gates.refund_approval).toEqual({
      outcome: 'not-needed',
      reason: 'no approval needed: billing.refund_usd is 45, and it asks when billing.refund_usd > 100',
    });
  });

  it('asks when the amount is missing or not a number (the gate fails safe)', async () => {
    const r = await run(triageDef, triageHandlers({ route: 'billing', amount: 'a lot' }), input);
    expect(r.entered).toContain('Approve: refund-approval');
  });

  it('skips billing, the refund gate and the refund when the route chooses technical', async () => {
    const r = await run(triageDef, triageHandlers({ route: 'technical' }), input);
    expect(r.entered).toEqual([
      'Run agent: screen',
      'Run agent: triage',
      'Run agent: technical',
      'Run agent: reply-check',
      'Run agent: judge',
      'Aggregate answer',
      'Publish answer',
    ]);
  });

  it('takes the default branch when the route agent gave no decision (it failed)', async () => {
    const r = await run(triageDef, triageHandlers({}), input);
    expect(r.entered).toContain('Run agent: technical');
  });

  it('asks a person before sending a reply the judge failed', async () => {
    const r = await run(triageDef, triageHandlers({ route: 'order-status', verdict: 'fail' }), input);
    expect(r.entered).toContain('Approve: send-approval');
  });

  it('stops with the reason when the input guardrail blocks, and when it could not check (fails closed)', async () => {
    const seen: Record<string, Record<string, unknown>> = {};
    const blocked = agentResult('screen', {
      guardrail: {
        intervened: true,
        blocked: true,
        interventions: [{ policy: 'prompt-attack', name: 'prompt attack', action: 'blocked' }],
      },
      decisionReason: 'blocked: prompt attack',
    });
    const r = await run(triageDef, triageHandlers({ screen: blocked, seen }), input);
    expect(r.entered).toEqual(['Run agent: screen', 'Record stopped run']);
    expect((seen['Record stopped run'] as { Payload: { reason: string } }).Payload.reason).toBe(
      'Guardrail "screen" stopped the run: blocked: prompt attack; the later phases did not run.',
    );
    const failed = await run(triageDef, triageHandlers({ screen: agentResult('screen', { status: 'failed' }), seen }), input);
    expect(failed.entered).toEqual(['Run agent: screen', 'Record stopped run']);
    expect((seen['Record stopped run'] as { Payload: { reason: string } }).Payload.reason).toMatch(/could not check the text/);
  });
});
