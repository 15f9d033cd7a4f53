import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEnvironmentConfig, loadLocalGatewayConfig } from '../../lib/config.js';
import { WorkflowStateMachine } from '../../lib/constructs/workflow-state-machine.js';
import {
  AgentFlowStack,
  addEnvironmentStack,
  checkAskWorkflow,
  gatewayEnvironment,
  slackChannelWarnings,
  slackGroupWarnings,
} from '../../lib/stack.js';
import { callbackStatesWithoutTimeout, compileWorkflow, type ModelCatalog, taskStates, type Workflow } from '../../lib/workflow/index.js';
import { loadWorkspace, PROJECT_ROOT } from '../../lib/workspace.js';

const groups = {
  'mobile-leads': { slack: ['U024BE7LH'], github: ['@acme/mobile-leads'] },
  'support-leads': { slack: ['U024BE7LH'] },
  'mobile-team': { slack: ['U024BE7LH'] },
  'support-team': { slack: ['U024BE7LH'] },
};
const environments = {
  dev: {
    region: 'us-east-1',
    logRetentionDays: 14,
    removalPolicy: 'destroy',
    groups,
    ingressReservedConcurrency: 20,
    guardrail: { id: 'gr-support1', version: '3' },
    askWorkflow: 'team-request',
  },
  prod: { region: 'eu-west-1', logRetentionDays: 90, removalPolicy: 'retain' },
};

let template: Template;
const ws = loadWorkspace();

beforeAll(() => {
  // Skip bundling: the template is what we assert; `npx cdk synth` bundles for real.
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new AgentFlowStack(app, 'AgentFlow-dev', {
    envName: 'dev',
    config: loadEnvironmentConfig(environments, 'dev'),
    workflows: [...ws.workflows.values()],
    models: ws.catalog?.models as ModelCatalog,
    projectRoot: PROJECT_ROOT,
    env: { region: 'us-east-1', account: '123456789012' },
  });
  template = Template.fromStack(stack);
});

describe('Stack: AgentFlowStack', () => {
  it('routes POST /webhooks/github, /webhooks/gitlab, the two Slack routes and /webhooks/ci on an HTTP API to the ingress Lambda', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP' });
    for (const path of [
      '/webhooks/github',
      '/webhooks/gitlab',
      '/webhooks/slack/commands',
      '/webhooks/slack/interactions',
      '/webhooks/ci',
    ]) {
      template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: `POST ${path}` });
    }
  });

  it('every state machine with a callback state is STANDARD, and every callback state has TimeoutSeconds', () => {
    const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine')) as Array<{
      Properties: { StateMachineType: string; DefinitionString: unknown };
    }>;
    const withCallbacks = machines.filter((m) => JSON.stringify(m.Properties.DefinitionString).includes('waitForTaskToken'));
    expect(withCallbacks.length).toBeGreaterThanOrEqual(2);
    for (const m of withCallbacks) expect(m.Properties.StateMachineType).toBe('STANDARD');
    for (const wf of ws.workflows.values()) {
      const def = compileWorkflow(wf);
      expect(callbackStatesWithoutTimeout(def), wf.id).toEqual([]);
      for (const [name, st] of taskStates(def).filter(([, t]) => String(t.Resource).endsWith('.waitForTaskToken'))) {
        expect(st.TimeoutSeconds, `${wf.id}: ${name}`).toBeGreaterThan(0);
      }
    }
  });

  it('rejects at synth a callback state without TimeoutSeconds, and one on an EXPRESS state machine', () => {
    const wf = ws.workflows.get('architecture-migration') as Workflow;
    const def = compileWorkflow(wf);
    const gate = def.States['Approve: approve'] as Record<string, unknown>;
    delete gate.TimeoutSeconds;
    const synth = (props: Partial<ConstructorParameters<typeof WorkflowStateMachine>[2]>) => () => {
      const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
      const stack = new Stack(app, 'Check', { env: { account: '123456789012', region: 'us-east-1' } });
      const fn = LambdaFunction.fromFunctionAttributes(stack, 'Fn', {
        functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:f',
        sameEnvironment: true,
      });
      const functions = { loadContext: fn, invokeAgent: fn, aggregate: fn, publish: fn, requestApproval: fn };
      new WorkflowStateMachine(stack, 'Machine', {
        workflow: wf,
        functions,
        namePrefix: 't',
        logRetention: 1 as never,
        removalPolicy: RemovalPolicy.DESTROY,
        ...props,
      });
      app.synth();
    };
    expect(synth({ definition: def })).toThrow(/callback state "Approve: approve" waits for a task token without TimeoutSeconds/);
    expect(synth({ type: StateMachineType.EXPRESS })).toThrow(/callback states need a STANDARD state machine/);
  });

  it('rejects at synth a state machine whose TimeoutSeconds is shorter than its gates: an approval must never outlive its execution', () => {
    const wf = ws.workflows.get('architecture-migration') as Workflow;
    const def = { ...compileWorkflow(wf), TimeoutSeconds: 6 * 3600 };
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Check', { env: { account: '123456789012', region: 'us-east-1' } });
    const fn = LambdaFunction.fromFunctionAttributes(stack, 'Fn', {
      functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:f',
      sameEnvironment: true,
    });
    new WorkflowStateMachine(stack, 'Machine', {
      workflow: wf,
      functions: { loadContext: fn, invokeAgent: fn, aggregate: fn, publish: fn, requestApproval: fn },
      namePrefix: 't',
      logRetention: 1 as never,
      removalPolicy: RemovalPolicy.DESTROY,
      definition: def,
    });
    expect(() => app.synth()).toThrow(
      /workflow architecture-migration: TimeoutSeconds 21600 is shorter than the worst case of its steps \(\d+ s: .*\): a gate could outlive its execution/,
    );
  });

  it('warns at synth when an approval gate’s approvers have no Slack user (the shipped cdk.json’s empty mobile-leads.slack)', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new AgentFlowStack(app, 'AgentFlow-dev', {
      envName: 'dev',
      config: loadEnvironmentConfig(
        { dev: { ...environments.dev, groups: { ...groups, 'mobile-leads': { slack: [], github: ['@acme/mobile-leads'] } } } },
        'dev',
      ),
      workflows: [...ws.workflows.values()],
      models: ws.catalog?.models as ModelCatalog,
      projectRoot: PROJECT_ROOT,
      env: { region: 'us-east-1', account: '123456789012' },
    });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('names no Slack user'));
    expect(warnings.map((w) => String(w.entry.data))).toContainEqual(
      expect.stringMatching(
        /^workflow architecture-migration: approval "approve" names no Slack user \(mobile-leads\): add Slack user ids \(U…\) to context\.environments\.dev\.groups/,
      ),
    );
    // The main test stack's group has a Slack id: no warning there.
    expect(slackGroupWarnings([...ws.workflows.values()], loadEnvironmentConfig(environments, 'dev'), 'dev')).toEqual([]);
  });

  it('warns about output.slack: true when the environment names no default channel (slackChannel)', () => {
    const config = loadEnvironmentConfig(environments, 'dev');
    const wf = {
      ...(ws.workflows.get('pr-review') as Workflow),
      output: { ...(ws.workflows.get('pr-review') as Workflow).output, slack: 'default' },
    };
    expect(slackChannelWarnings([wf], { ...config, slackChannel: undefined }, 'dev')).toEqual([
      'workflow pr-review: output.slack: true posts in the default Slack channel and context.environments.dev.slackChannel in cdk.json names none: set it, or name the channel in the workflow (slack: "#channel")',
    ]);
    expect(slackChannelWarnings([wf], { ...config, slackChannel: '#mobile-reviews' }, 'dev')).toEqual([]);
    expect(slackChannelWarnings([...ws.workflows.values()], { ...config, slackChannel: undefined }, 'dev')).toEqual([]);
  });

  it('fails synth naming the context path when a workflow names an undefined approver group', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    expect(
      () =>
        new AgentFlowStack(app, 'AgentFlow-prod', {
          envName: 'prod',
          config: loadEnvironmentConfig(environments, 'prod'),
          workflows: [...ws.workflows.values()],
          models: ws.catalog?.models as ModelCatalog,
          projectRoot: PROJECT_ROOT,
        }),
    ).toThrow(
      /cdk\.json: context\.environments\.prod\.groups: workflow architecture-migration: approver group "mobile-leads" is not defined/,
    );
  });

  it('lets the ingress Lambda answer task tokens and gives RequestApproval the Slack secret and groups', () => {
    const text = JSON.stringify(template.toJSON());
    expect(text).toContain('states:SendTaskSuccess');
    expect(text).toContain('states:SendTaskFailure');
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ SLACK_SECRET_NAME: 'agentflow/dev/slack', AGENTFLOW_GROUPS: Match.stringLikeRegexp('U024BE7LH') }),
      },
    });
  });

  it('creates one STANDARD state machine per workflow with logging ALL (no execution data: task tokens stay out of logs) and tracing', () => {
    template.resourceCountIs('AWS::StepFunctions::StateMachine', ws.workflows.size);
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineName: 'agentflow-dev-pr-review',
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: false }),
      DefinitionSubstitutions: Match.objectLike({ InvokeAgentFunctionArn: Match.anyValue(), LoadContextFunctionArn: Match.anyValue() }),
    });
  });

  it('runs every task Lambda on Node.js 24 with tracing, and the webhook under GitHub’s 10 s', () => {
    const fns = Object.values(template.findResources('AWS::Lambda::Function')).filter((f) =>
      JSON.stringify(f).includes('POWERTOOLS_SERVICE_NAME'),
    ) as Array<{ Properties: { Runtime: string; Architectures: string[] } }>;
    expect(fns).toHaveLength(7);
    for (const f of fns) expect([f.Properties.Runtime, f.Properties.Architectures]).toEqual(['nodejs24.x', ['arm64']]);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Timeout: 8,
      ReservedConcurrentExecutions: 20,
      Environment: { Variables: Match.objectLike({ GITHUB_SECRET_NAME: 'agentflow/dev/github', AGENTFLOW_WORKFLOWS: Match.anyValue() }) },
    });
    template.hasResourceProperties('AWS::Lambda::Function', { Timeout: 900, TracingConfig: { Mode: 'Active' } });
  });

  it('names the gitlab secret to the ingress, LoadContext, Publish and ExecutionStatus, and lets each of them read it', () => {
    const fns = template.findResources('AWS::Lambda::Function', {
      Properties: { Environment: { Variables: Match.objectLike({ GITLAB_SECRET_NAME: 'agentflow/dev/gitlab' }) } },
    });
    const names = Object.keys(fns).map((id) => id.replace(/[0-9A-F]{8}$/, ''));
    for (const fn of ['Webhook', 'LoadContext', 'Publish', 'ExecutionStatus']) expect(names.some((n) => n.startsWith(fn))).toBe(true);
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain('secret:agentflow/dev/gitlab');
    template.hasOutput('GitLabWebhookUrl', {});
  });

  it('records executions that end FAILED, TIMED_OUT or ABORTED through an EventBridge rule on exactly the workflows’ state machines', () => {
    const rules = Object.values(template.findResources('AWS::Events::Rule')) as Array<{
      Properties: {
        EventPattern: { source: string[]; 'detail-type': string[]; detail: { status: string[]; stateMachineArn: unknown[] } };
        Targets: unknown[];
      };
    }>;
    expect(rules).toHaveLength(1);
    const pattern = rules[0]?.Properties.EventPattern;
    expect(pattern?.source).toEqual(['aws.states']);
    expect(pattern?.['detail-type']).toEqual(['Step Functions Execution Status Change']);
    expect(pattern?.detail.status).toEqual(['FAILED', 'TIMED_OUT', 'ABORTED']);
    expect(pattern?.detail.stateMachineArn).toHaveLength(ws.workflows.size);
    expect(JSON.stringify(rules[0]?.Properties.Targets)).toContain('ExecutionStatus');
  });

  it('alarms to one SNS topic on failed and timed-out executions, Lambda errors and throttles, API 5xx, failed agents, budget refusals and opened breakers', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')) as Array<{
      Properties: { AlarmName: string; AlarmActions: unknown[] };
    }>;
    const names = alarms.map((a) => a.Properties.AlarmName);
    for (const wf of ws.workflows.keys()) {
      expect(names).toContain(`agentflow-dev: ${wf} executions failed`);
      expect(names).toContain(`agentflow-dev: ${wf} executions timed out`);
    }
    for (const fn of ['LoadContext', 'InvokeAgent', 'Aggregate', 'Publish', 'RequestApproval', 'Webhook', 'ExecutionStatus']) {
      expect(names).toContain(`agentflow-dev: ${fn} Lambda errors`);
      expect(names).toContain(`agentflow-dev: ${fn} Lambda throttles`);
    }
    for (const n of ['webhook API 5xx answers', 'agents failed', 'budget refusals', 'circuit breakers opened'])
      expect(names).toContain(`agentflow-dev: ${n}`);
    for (const a of alarms) expect(a.Properties.AlarmActions).toHaveLength(1);
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'agentflow-dev: agents failed',
      Metrics: [Match.objectLike({ Expression: 'SELECT SUM(AgentsFailed) FROM "AgentFlow"' })],
    });
  });

  it('throttles the webhook API stage and writes its access log; state machine log groups have generated names', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
      AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
    });
    for (const lg of Object.values(template.findResources('AWS::Logs::LogGroup')) as Array<{ Properties: { LogGroupName?: unknown } }>) {
      expect(lg.Properties.LogGroupName).toBeUndefined();
    }
  });

  it('has the table with TTL and the runs index, and an encrypted, private artifact bucket', () => {
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      GlobalSecondaryIndexes: [Match.objectLike({ IndexName: 'gsi1' })],
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: Match.anyValue(),
    });
  });

  it('allows bedrock:InvokeModel on the configured Claude models only', () => {
    const policies = template.findResources('AWS::IAM::Policy');
    const statements = Object.values(policies).flatMap(
      (p) =>
        (p as { Properties: { PolicyDocument: { Statement: Array<{ Action: unknown; Resource: unknown }> } } }).Properties.PolicyDocument
          .Statement,
    );
    const bedrock = statements.filter((s) => JSON.stringify(s.Action).includes('bedrock:'));
    const invoke = bedrock.filter((s) => JSON.stringify(s.Action).includes('bedrock:InvokeModel'));
    expect(invoke).toHaveLength(1);
    const resources = JSON.stringify(invoke[0]?.Resource);
    expect(resources).toContain('inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0');
    expect(resources).toContain('foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0');
    expect(resources).not.toContain('claude-opus');
    expect(resources).not.toMatch(/foundation-model\/\*/);
  });

  it("lets InvokeAgent apply exactly the environment's Bedrock guardrail, named in its environment", () => {
    const policies = template.findResources('AWS::IAM::Policy');
    const statements = Object.values(policies).flatMap(
      (p) =>
        (p as { Properties: { PolicyDocument: { Statement: Array<{ Action: unknown; Resource: unknown }> } } }).Properties.PolicyDocument
          .Statement,
    );
    const apply = statements.filter((s) => JSON.stringify(s.Action).includes('bedrock:ApplyGuardrail'));
    expect(apply).toHaveLength(1);
    expect(JSON.stringify(apply[0]?.Resource)).toContain(':guardrail/gr-support1');
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: Match.anyValue(),
      Environment: { Variables: Match.objectLike({ AGENTFLOW_GUARDRAIL_ID: 'gr-support1', AGENTFLOW_GUARDRAIL_VERSION: '3' }) },
    });
  });

  it("refuses at synth an environment whose MCP servers a Lambda cannot reach (stdio), and uses the environment's URL for a server", () => {
    const env = (mcpServers: unknown) => ({
      environments: { ...environments, dev: { ...environments.dev, mcpServers } },
      'aws:cdk:bundling-stacks': [],
    });
    expect(() =>
      addEnvironmentStack(new App({ context: env({ support: { command: 'npx', args: ['tsx', 'x.ts'] } }) }), 'dev', ws, PROJECT_ROOT),
    ).toThrow(
      /context\.environments\.dev\.mcpServers: a deployed agent can reach MCP servers by url only[\s\S]*support-triage: billing-specialist → support \(npx\)/,
    );
    const stack = addEnvironmentStack(
      new App({ context: env({ support: { url: 'https://mcp.support.acme.dev/mcp' } }) }),
      'dev',
      ws,
      PROJECT_ROOT,
    );
    const machines = Template.fromStack(stack).findResources('AWS::StepFunctions::StateMachine');
    const triage = JSON.stringify(Object.values(machines).find((m) => JSON.stringify(m).includes('support-triage')));
    expect(triage).toContain('https://mcp.support.acme.dev/mcp');
    expect(triage).not.toContain('mcp.support.example.com');
  });

  it('gives InvokeAgent the mcp secret (MCP_SECRET_NAME, read access) only when an agent reaches an MCP server by URL', () => {
    const secretOf = (t: Template) => {
      const [roleId, fn] = Object.values(t.findResources('AWS::Lambda::Function'))
        .filter((f) => f.Properties.Environment?.Variables?.POWERTOOLS_SERVICE_NAME === 'agentflow-invoke-agent')
        .map((f) => [f.Properties.Role['Fn::GetAtt'][0] as string, f] as const)[0] ?? [undefined, undefined];
      const readers = Object.values(t.findResources('AWS::IAM::Policy')).filter((p) =>
        JSON.stringify(p.Properties.PolicyDocument).includes('secret:agentflow/dev/mcp-??????'),
      );
      const actions = readers.flatMap((p) =>
        (p.Properties.PolicyDocument.Statement as Array<{ Action: unknown; Resource: unknown }>)
          .filter((st) => JSON.stringify(st.Resource).includes('secret:agentflow/dev/mcp-'))
          .map((st) => st.Action),
      );
      return {
        name: fn?.Properties.Environment.Variables.MCP_SECRET_NAME,
        readers: readers.map((p) => p.Properties.Roles),
        roleId,
        actions,
      };
    };
    // The workspace's team-request and support-triage reach their trackers by URL.
    const withHttp = secretOf(template);
    expect(withHttp.name).toBe('agentflow/dev/mcp');
    expect(withHttp.readers).toEqual([[{ Ref: withHttp.roleId }]]);
    expect(withHttp.actions).toEqual([['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret']]);
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const reviewOnly = new AgentFlowStack(app, 'AgentFlow-dev', {
      envName: 'dev',
      config: loadEnvironmentConfig({ dev: { ...environments.dev, askWorkflow: undefined } }, 'dev'),
      workflows: [...ws.workflows.values()].filter((w) => w.id === 'pr-review'),
      models: ws.catalog?.models as ModelCatalog,
      projectRoot: PROJECT_ROOT,
      env: { region: 'us-east-1', account: '123456789012' },
    });
    const without = Template.fromStack(reviewOnly);
    expect(secretOf(without).name).toBeUndefined();
    expect(JSON.stringify(without.toJSON())).not.toContain('agentflow/dev/mcp');
  });

  it("gives the webhook the environment's askWorkflow, and refuses one that is not a request workflow", () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ AGENTFLOW_ASK_WORKFLOW: 'team-request' }) },
    });
    expect(() => checkAskWorkflow([...ws.workflows.values()], { askWorkflow: 'pr-review' }, 'dev')).toThrow(
      'cdk.json: context.environments.dev.askWorkflow: "pr-review" is not a request workflow (trigger: request) of this deployment; request workflows: support-triage, team-request',
    );
  });

  it('synthesizes the request workflows: a Choice on the route, a Choice before the conditional gate, request in place of the change', () => {
    const machines = template.findResources('AWS::StepFunctions::StateMachine');
    const definition = (id: string) => {
      const m = Object.values(machines).find((x) => JSON.stringify(x).includes(`-${id}`)) as { Properties: { DefinitionString: unknown } };
      return JSON.stringify(m.Properties.DefinitionString);
    };
    const triage = definition('support-triage');
    for (const state of [
      'Route: triage',
      'When: refund-approval',
      'Not needed: refund-approval',
      'Check guardrail: screen',
      'Aggregate answer',
    ]) {
      expect(triage).toContain(state);
    }
    expect(triage).toContain('StringEquals\\":\\"billing');
    expect(triage).toContain('NumericGreaterThan\\":100');
    expect(triage).not.toContain('contextRef');
    expect(definition('team-request')).toContain('https://mcp.tracker.example.com/mcp');
  });

  it('lets only the webhook start executions and reads secrets by name', () => {
    const text = JSON.stringify(template.toJSON());
    expect(text).toContain('states:StartExecution');
    expect(text).toContain('secret:agentflow/dev/openai-??????');
  });
});

describe('Stack: the model gateway', () => {
  it('gives InvokeAgent the table, the gateway settings and the metrics namespace, and a spend dashboard', () => {
    const fn = Object.values(template.findResources('AWS::Lambda::Function')).find(
      (f) => f.Properties.Environment?.Variables?.POWERTOOLS_SERVICE_NAME === 'agentflow-invoke-agent',
    );
    const vars = fn?.Properties.Environment.Variables;
    expect(vars).toMatchObject({ TABLE_NAME: expect.anything(), POWERTOOLS_METRICS_NAMESPACE: 'AgentFlow' });
    expect(JSON.parse(vars.AGENTFLOW_GATEWAY)).toMatchObject({ breaker: { failureThreshold: 5 }, cache: { enabled: true } });
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    expect(JSON.stringify(template.findResources('AWS::CloudWatch::Dashboard'))).toMatch(/MetricName=.{0,8}CostUsd/);
  });

  it('passes the budgets of cdk.json to the Lambda and refuses settings too large for its environment', () => {
    const config = loadEnvironmentConfig(
      { dev: { ...environments.dev, budgets: { perRunUsd: 2, projects: { 'ios-app': { dailyUsd: 50, monthlyUsd: 600 } } } } },
      'dev',
    );
    expect(JSON.parse(gatewayEnvironment(config)).budgets).toEqual({
      perRunUsd: 2,
      global: {},
      projects: { 'ios-app': { dailyUsd: 50, monthlyUsd: 600 } },
    });
    const many = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`project-${i}`, { dailyUsd: 1 }]));
    const big = loadEnvironmentConfig({ dev: { ...environments.dev, budgets: { projects: many } } }, 'dev');
    expect(() => gatewayEnvironment(big)).toThrow(/gateway settings .* bytes as JSON; .*use defaultProject/);
  });

  it('names the field of an invalid budget', () => {
    expect(() => loadEnvironmentConfig({ dev: { ...environments.dev, budgets: { perRunUsd: -1 } } }, 'dev')).toThrow(
      /context\.environments\.dev\.budgets\.perRunUsd: /,
    );
  });
});

describe('Function: loadLocalGatewayConfig', () => {
  it('reads environments.local of cdk.json, or a --config file of the same shape, and names a bad field with the file', () => {
    expect(loadLocalGatewayConfig(PROJECT_ROOT).budgets.perRunUsd).toBe(2);
    const dir = mkdtempSync(join(tmpdir(), 'agentflow-config-'));
    writeFileSync(join(dir, 'gw.yml'), 'region: us-east-1\nbudgets:\n  global: { monthlyUsd: 10 }\n');
    expect(loadLocalGatewayConfig(PROJECT_ROOT, join(dir, 'gw.yml')).budgets.global.monthlyUsd).toBe(10);
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ breaker: { failureRatio: 2 } }));
    expect(() => loadLocalGatewayConfig(PROJECT_ROOT, join(dir, 'bad.json'))).toThrow(/bad\.json\.breaker\.failureRatio: /);
  });
});

describe('Function: loadEnvironmentConfig', () => {
  it('fails with the context path when an environment is missing or invalid', () => {
    expect(() => loadEnvironmentConfig(environments, 'qa')).toThrow(/context\.environments\.qa is not defined \(known: dev, prod\)/);
    expect(() => loadEnvironmentConfig({ dev: { ...environments.dev, logRetentionDays: 13 } }, 'dev')).toThrow(
      /context\.environments\.dev\.logRetentionDays: use one of 1, 3/,
    );
  });
});
