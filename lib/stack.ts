import { Annotations, Aws, type CfnElement, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { type CfnStage, HttpApi, HttpMethod } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { AttributeType, Billing, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Rule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction as LambdaFunctionTarget } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { BlockPublicAccess, Bucket, BucketEncryption } from 'aws-cdk-lib/aws-s3';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { TABLE_KEYS } from '../lambdas/adapters/runs.js';
import { resolveApprovers } from '../lambdas/core/approvals.js';
import { GATEWAY_CONFIG_KEYS, parseGatewayConfig } from '../lambdas/core/gateway-config.js';
import { ENDED_STATUSES } from '../lambdas/execution-status/execution-status.js';
import { INGRESS_ROUTES } from '../lambdas/webhook/routes.js';
import { type EnvironmentConfig, loadEnvironmentConfig } from './config.js';
import { Operations } from './constructs/operations.js';
import { SpendDashboard } from './constructs/spend-dashboard.js';
import { TaskFunction } from './constructs/task-function.js';
import { WorkflowStateMachine } from './constructs/workflow-state-machine.js';
import {
  compileWorkflow,
  formatDiagnostic,
  hasCallbackStates,
  hasHttpServers,
  type ModelCatalog,
  mapPhases,
  stdioServers,
  type TaskKind,
  type Workflow,
  webhookTrigger,
  withMcpServers,
} from './workflow/index.js';
import type { Workspace } from './workspace.js';

/** The CloudWatch namespace of the gateway's metrics. */
export const METRICS_NAMESPACE = 'AgentFlow';

/**
 * Lambda environment variables share a 4 KB limit; the gateway settings get most of it.
 * Source: https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html (2025-11).
 */
const MAX_GATEWAY_ENV_BYTES = 3072;

/**
 * The gateway settings of an environment as the InvokeAgent Lambda reads them (`AGENTFLOW_GATEWAY`).
 * @throws Error when they are too large for a Lambda environment variable
 */
export function gatewayEnvironment(config: EnvironmentConfig): string {
  const picked = Object.fromEntries(GATEWAY_CONFIG_KEYS.map((k) => [k, config[k]]));
  const json = JSON.stringify(parseGatewayConfig(picked, 'gateway settings'));
  if (Buffer.byteLength(json) > MAX_GATEWAY_ENV_BYTES) {
    throw new Error(
      `cdk.json: the gateway settings (budgets, rateLimits, ...) are ${Buffer.byteLength(json)} bytes as JSON; ` +
        `Lambda environment variables allow about ${MAX_GATEWAY_ENV_BYTES}: use defaultProject instead of listing many projects`,
    );
  }
  return json;
}

/**
 * Checks that every group a workflow's `approvers:`, `escalate.approvers:` or `run_by:` names is
 * defined in the environment's `groups`.
 * @throws Error naming the workflow, the entry and the context path to add it under
 */
export function checkGroups(workflows: readonly Workflow[], config: EnvironmentConfig, envName: string): void {
  for (const wf of workflows) {
    const lists = [
      wf.trigger.runBy,
      ...wf.phases.flatMap((p) => (p.kind === 'approval' || p.kind === 'ci' ? [p.approvers, p.escalate?.approvers ?? []] : [])),
    ];
    for (const list of lists) {
      try {
        resolveApprovers(list, config.groups);
      } catch (e) {
        throw new Error(`cdk.json: context.environments.${envName}.groups: workflow ${wf.id}: ${(e as Error).message}`);
      }
    }
  }
}

/**
 * Warnings for workflows whose `output.slack: true` (or `slack_notification: true`) posts in the
 * default channel when the environment names none (`slackChannel`): their summaries would not be posted.
 */
export function slackChannelWarnings(workflows: readonly Workflow[], config: EnvironmentConfig, envName: string): string[] {
  if (config.slackChannel) return [];
  return workflows
    .filter((wf) => wf.output.slack === 'default')
    .map(
      (wf) =>
        `workflow ${wf.id}: output.slack: true posts in the default Slack channel and context.environments.${envName}.slackChannel in cdk.json names none: set it, or name the channel in the workflow (slack: "#channel")`,
    );
}

/**
 * Warnings for approval gates and `run_by:` lists whose approvers resolve to no Slack user: nobody
 * can click Approve or run `/agentflow run` from Slack (GitHub comments still work for approvals).
 */
export function slackGroupWarnings(workflows: readonly Workflow[], config: EnvironmentConfig, envName: string): string[] {
  const out: string[] = [];
  for (const wf of workflows) {
    const lists: Array<[string, readonly string[]]> = [
      ...wf.phases.flatMap(
        (p): Array<[string, readonly string[]]> =>
          p.kind === 'approval'
            ? [
                [`approval "${p.name}"`, p.approvers],
                ...(p.escalate ? ([[`escalation of "${p.name}"`, p.escalate.approvers]] as Array<[string, readonly string[]]>) : []),
              ]
            : [],
      ),
      ...(wf.trigger.runBy.length > 0 ? ([['run_by', wf.trigger.runBy]] as Array<[string, readonly string[]]>) : []),
    ];
    for (const [what, list] of lists) {
      if (resolveApprovers(list, config.groups).slack.length === 0) {
        out.push(
          `workflow ${wf.id}: ${what} names no Slack user (${list.join(', ')}): add Slack user ids (U…) to context.environments.${envName}.groups in cdk.json, or nobody can ${what === 'run_by' ? 'start it from Slack' : 'approve it from Slack'}`,
        );
      }
    }
  }
  return out;
}

/** Props of {@link AgentFlowStack}. */
export interface AgentFlowStackProps extends StackProps {
  /** The environment name (`dev`, `prod`): names secrets and resources. */
  readonly envName: string;
  readonly config: EnvironmentConfig;
  /** The checked workflows; one state machine each. */
  readonly workflows: readonly Workflow[];
  readonly models: ModelCatalog;
  /** The project root (for bundling). */
  readonly projectRoot: string;
}

/**
 * AgentFlow for one environment: the HTTP API (`POST /webhooks/github`, `/webhooks/gitlab`, `/webhooks/slack/commands`,
 * `/webhooks/slack/interactions`, `/webhooks/ci`, one ingress Lambda), the task Lambdas (with the
 * approval task), one STANDARD state machine per workflow, the DynamoDB table, the artifact bucket,
 * and the Secrets Manager secrets referenced by name (`agentflow/<env>/github`, `/gitlab`, `/slack`, `/openai`, `/ci`,
 * and `/mcp` when an agent reaches an MCP server by URL).
 */
export class AgentFlowStack extends Stack {
  constructor(scope: Construct, id: string, props: AgentFlowStackProps) {
    super(scope, id, props);
    const removalPolicy = props.config.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    const logRetention = props.config.logRetentionDays as RetentionDays;
    const prefix = `agentflow-${props.envName}`;

    // Retained environments (prod) are protected from deletion: the stack and the table.
    if (removalPolicy === RemovalPolicy.RETAIN) this.terminationProtection = true;
    const table = new TableV2(this, 'Table', {
      deletionProtection: removalPolicy === RemovalPolicy.RETAIN,
      partitionKey: { name: TABLE_KEYS.partitionKey, type: AttributeType.STRING },
      sortKey: { name: TABLE_KEYS.sortKey, type: AttributeType.STRING },
      billing: Billing.onDemand(),
      timeToLiveAttribute: TABLE_KEYS.ttl,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy,
      globalSecondaryIndexes: [
        {
          indexName: TABLE_KEYS.runsIndex,
          partitionKey: { name: TABLE_KEYS.indexPartitionKey, type: AttributeType.STRING },
          sortKey: { name: TABLE_KEYS.indexSortKey, type: AttributeType.STRING },
        },
      ],
    });
    const accessLogBucket = new Bucket(this, 'ArtifactsAccessLogs', {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy,
      autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
      lifecycleRules: [{ expiration: Duration.days(90) }],
    });
    Validations.of(accessLogBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the server access log bucket of the artifact bucket; it does not log its own access.',
    });
    const bucket = new Bucket(this, 'Artifacts', {
      serverAccessLogsBucket: accessLogBucket,
      serverAccessLogsPrefix: 'artifacts/',
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy,
      autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
      // A pull request's review state (pulls/) outlives its runs' artifacts; one idle for 180 days
      // is forgotten and its next run reviews every file.
      lifecycleRules: [
        { prefix: 'runs/', expiration: Duration.days(90) },
        { prefix: 'pulls/', expiration: Duration.days(180) },
      ],
    });
    const githubSecret = Secret.fromSecretNameV2(this, 'GitHubSecret', `agentflow/${props.envName}/github`);
    const openaiSecret = Secret.fromSecretNameV2(this, 'OpenAISecret', `agentflow/${props.envName}/openai`);
    const slackSecret = Secret.fromSecretNameV2(this, 'SlackSecret', `agentflow/${props.envName}/slack`);
    const ciSecret = Secret.fromSecretNameV2(this, 'CiSecret', `agentflow/${props.envName}/ci`);
    // GitLab merge requests: token, webhookSecret, apiUrl (self-managed). Read only when a run is on GitLab.
    const gitlabSecret = Secret.fromSecretNameV2(this, 'GitLabSecret', `agentflow/${props.envName}/gitlab`);
    checkGroups(props.workflows, props.config, props.envName);
    checkAskWorkflow(props.workflows, props.config, props.envName);
    for (const warning of slackGroupWarnings(props.workflows, props.config, props.envName)) {
      Annotations.of(this).addWarningV2('agentflow:approvers-without-slack', warning);
    }
    for (const warning of slackChannelWarnings(props.workflows, props.config, props.envName)) {
      Annotations.of(this).addWarningV2('agentflow:slack-without-channel', warning);
    }
    const groupsJson = JSON.stringify(props.config.groups);

    const common = { projectRoot: props.projectRoot, logRetention, removalPolicy };
    const loadContext = new TaskFunction(this, 'LoadContext', {
      ...common,
      task: 'load-context',
      timeout: Duration.seconds(120),
      memorySize: 1024,
      environment: {
        ARTIFACT_BUCKET: bucket.bucketName,
        GITHUB_SECRET_NAME: githubSecret.secretName,
        GITHUB_API_URL: props.config.githubApiUrl,
        GITLAB_SECRET_NAME: gitlabSecret.secretName,
      },
    }).fn;
    const invokeAgent = new TaskFunction(this, 'InvokeAgent', {
      ...common,
      task: 'invoke-agent',
      timeout: Duration.seconds(900),
      memorySize: 1024,
      environment: {
        ARTIFACT_BUCKET: bucket.bucketName,
        OPENAI_SECRET_NAME: openaiSecret.secretName,
        TABLE_NAME: table.tableName,
        AGENTFLOW_GATEWAY: gatewayEnvironment(props.config),
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      },
    }).fn;
    const aggregate = new TaskFunction(this, 'Aggregate', {
      ...common,
      task: 'aggregate',
      timeout: Duration.seconds(60),
      environment: { ARTIFACT_BUCKET: bucket.bucketName, POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE },
    }).fn;
    const publish = new TaskFunction(this, 'Publish', {
      ...common,
      task: 'publish',
      timeout: Duration.seconds(60),
      environment: {
        ARTIFACT_BUCKET: bucket.bucketName,
        TABLE_NAME: table.tableName,
        GITHUB_SECRET_NAME: githubSecret.secretName,
        GITHUB_API_URL: props.config.githubApiUrl,
        GITLAB_SECRET_NAME: gitlabSecret.secretName,
        // Manual runs started from Slack get their outcome in the request's thread; output.slack posts summaries.
        SLACK_SECRET_NAME: slackSecret.secretName,
        ...(props.config.slackChannel ? { SLACK_DEFAULT_CHANNEL: props.config.slackChannel } : {}),
      },
    }).fn;

    const requestApproval = new TaskFunction(this, 'RequestApproval', {
      ...common,
      task: 'request-approval',
      timeout: Duration.seconds(30),
      environment: {
        TABLE_NAME: table.tableName,
        SLACK_SECRET_NAME: slackSecret.secretName,
        GITHUB_SECRET_NAME: githubSecret.secretName,
        GITHUB_API_URL: props.config.githubApiUrl,
        AGENTFLOW_GROUPS: groupsJson,
      },
    }).fn;

    // Grants: each function gets what its use case touches, no more.
    table.grantReadWriteData(requestApproval); // APPROVAL# items
    slackSecret.grantRead(requestApproval);
    // Artifacts: exactly the object actions each use case makes (S3ArtifactStore: GetObject,
    // PutObject), under `runs/` (a run's artifacts) or `pulls/` (a pull request's review state,
    // which LoadContext reads and Publish keeps: see lambdas/core/incremental.ts).
    const artifactAccess = (fn: typeof loadContext, actions: string[], prefix: 'runs' | 'pulls' = 'runs') => {
      fn.addToRolePolicy(new PolicyStatement({ actions, resources: [bucket.arnForObjects(`${prefix}/*`)] }));
      // A reader also lists `runs/`: without s3:ListBucket, S3 answers a missing key (a spend record
      // not written yet) with 403 AccessDenied instead of 404 NoSuchKey.
      // Source: https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_Permissions (2026-11)
      if (actions.includes('s3:GetObject')) {
        fn.addToRolePolicy(
          new PolicyStatement({
            actions: ['s3:ListBucket'],
            resources: [bucket.bucketArn],
            conditions: { StringLike: { 's3:prefix': [`${prefix}/*`] } },
          }),
        );
      }
    };
    artifactAccess(loadContext, ['s3:PutObject']);
    artifactAccess(loadContext, ['s3:GetObject'], 'pulls');
    githubSecret.grantRead(loadContext);
    gitlabSecret.grantRead(loadContext);
    artifactAccess(invokeAgent, ['s3:GetObject', 's3:PutObject']);
    openaiSecret.grantRead(invokeAgent);
    table.grantReadWriteData(invokeAgent); // budgets, breakers, cache, rate limits
    artifactAccess(aggregate, ['s3:GetObject', 's3:PutObject']);
    artifactAccess(publish, ['s3:GetObject']);
    artifactAccess(publish, ['s3:GetObject', 's3:PutObject'], 'pulls');
    table.grantReadWriteData(publish);
    githubSecret.grantRead(publish);
    gitlabSecret.grantRead(publish);
    slackSecret.grantRead(publish);
    const bedrockResources = bedrockModelArns(props.workflows, props.models);
    if (bedrockResources.length > 0) {
      invokeAgent.addToRolePolicy(new PolicyStatement({ actions: ['bedrock:InvokeModel'], resources: bedrockResources }));
    }
    // guardrail: phases apply the environment's Bedrock guardrail (or their own) with ApplyGuardrail.
    const guardrails = guardrailArns(props.workflows, props.config);
    if (guardrails.length > 0) {
      invokeAgent.addToRolePolicy(new PolicyStatement({ actions: ['bedrock:ApplyGuardrail'], resources: guardrails }));
    }
    // MCP servers reached by URL get their headers (credentials) from agentflow/<env>/mcp, read only by InvokeAgent.
    if (hasHttpServers(props.workflows)) {
      const mcpSecret = Secret.fromSecretNameV2(this, 'McpSecret', `agentflow/${props.envName}/mcp`);
      mcpSecret.grantRead(invokeAgent);
      invokeAgent.addEnvironment('MCP_SECRET_NAME', mcpSecret.secretName);
    }
    if (props.config.guardrail) {
      invokeAgent.addEnvironment('AGENTFLOW_GUARDRAIL_ID', props.config.guardrail.id);
      invokeAgent.addEnvironment('AGENTFLOW_GUARDRAIL_VERSION', props.config.guardrail.version);
    }

    const functions: Record<TaskKind, typeof loadContext> = { loadContext, invokeAgent, aggregate, publish, requestApproval };
    const machines = props.workflows.map((workflow) => ({
      workflow,
      sm: new WorkflowStateMachine(this, `Workflow-${workflow.id}`, {
        workflow,
        functions,
        namePrefix: prefix,
        logRetention,
        removalPolicy,
      }).stateMachine,
    }));

    const webhook = new TaskFunction(this, 'Webhook', {
      ...common,
      task: 'webhook',
      // GitHub waits 10 s and Slack 3 s for an answer: the function must finish (or fail) well before.
      timeout: Duration.seconds(8),
      memorySize: 512,
      ...(props.config.ingressReservedConcurrency > 0 ? { reservedConcurrentExecutions: props.config.ingressReservedConcurrency } : {}),
      environment: {
        TABLE_NAME: table.tableName,
        GITHUB_SECRET_NAME: githubSecret.secretName,
        GITHUB_API_URL: props.config.githubApiUrl,
        GITLAB_SECRET_NAME: gitlabSecret.secretName,
        SLACK_SECRET_NAME: slackSecret.secretName,
        CI_SECRET_NAME: ciSecret.secretName,
        AGENTFLOW_GROUPS: groupsJson,
        // `/agentflow ask <request>` without a workflow name starts this request workflow.
        ...(props.config.askWorkflow ? { AGENTFLOW_ASK_WORKFLOW: props.config.askWorkflow } : {}),
        AGENTFLOW_WORKFLOWS: JSON.stringify(
          machines.map(({ workflow, sm }) => ({ ...webhookTrigger(workflow), stateMachineArn: sm.stateMachineArn })),
        ),
      },
    }).fn;
    for (const secret of [githubSecret, gitlabSecret, slackSecret, ciSecret]) secret.grantRead(webhook);
    table.grantReadWriteData(webhook); // delivery idempotency records, approvals, run records
    for (const { workflow, sm } of machines) {
      sm.grantStartExecution(webhook);
      // SendTaskSuccess / SendTaskFailure for decisions: only to machines that wait for one.
      if (hasCallbackStates(compileWorkflow(workflow))) sm.grantTaskResponse(webhook);
      // DescribeExecution for `/agentflow status` (not the rest of grantRead).
      webhook.addToRolePolicy(
        new PolicyStatement({
          actions: ['states:DescribeExecution'],
          resources: [`arn:${Aws.PARTITION}:states:${Aws.REGION}:${Aws.ACCOUNT_ID}:execution:${sm.stateMachineName}:*`],
        }),
      );
    }

    // Executions that end outside their own Catch paths (TIMED_OUT, ABORTED, an uncaught FAILED)
    // still get their final run record, their pending approvals expired and a word on the PR.
    const executionStatus = new TaskFunction(this, 'ExecutionStatus', {
      ...common,
      task: 'execution-status',
      timeout: Duration.seconds(60),
      environment: {
        TABLE_NAME: table.tableName,
        SLACK_SECRET_NAME: slackSecret.secretName,
        GITHUB_SECRET_NAME: githubSecret.secretName,
        GITHUB_API_URL: props.config.githubApiUrl,
        GITLAB_SECRET_NAME: gitlabSecret.secretName,
      },
    }).fn;
    table.grantReadWriteData(executionStatus);
    slackSecret.grantRead(executionStatus);
    githubSecret.grantRead(executionStatus);
    gitlabSecret.grantRead(executionStatus);
    new Rule(this, 'ExecutionEnded', {
      description: 'AgentFlow executions that FAILED, TIMED_OUT or were ABORTED → ExecutionStatus',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: { status: [...ENDED_STATUSES], stateMachineArn: machines.map(({ sm }) => sm.stateMachineArn) },
      },
      targets: [new LambdaFunctionTarget(executionStatus, { retryAttempts: 8 })],
    });

    const api = new HttpApi(this, 'Api', { apiName: `${prefix}-webhooks`, description: 'AgentFlow webhooks: GitHub, Slack, CI' });
    const ingress = new HttpLambdaIntegration('Ingress', webhook);
    for (const path of INGRESS_ROUTES) api.addRoutes({ path, methods: [HttpMethod.POST], integration: ingress });
    // Stage throttling and access logs (request id, route, status, latency; no bodies, no headers).
    const accessLogs = new LogGroup(this, 'ApiAccessLogs', { retention: logRetention, removalPolicy });
    const stage = api.defaultStage?.node.defaultChild as CfnStage;
    stage.defaultRouteSettings = {
      throttlingRateLimit: props.config.apiThrottle.rateLimit,
      throttlingBurstLimit: props.config.apiThrottle.burstLimit,
    };
    stage.accessLogSettings = {
      destinationArn: accessLogs.logGroupArn,
      format: JSON.stringify({
        requestId: '$context.requestId',
        ip: '$context.identity.sourceIp',
        requestTime: '$context.requestTime',
        routeKey: '$context.routeKey',
        status: '$context.status',
        responseLength: '$context.responseLength',
        latencyMs: '$context.responseLatency',
        integrationError: '$context.integrationErrorMessage',
      }),
    };

    const ops = new Operations(this, 'Operations', {
      prefix,
      namespace: METRICS_NAMESPACE,
      stateMachines: machines.map(({ workflow, sm }) => ({ id: workflow.id, sm })),
      functions: {
        LoadContext: loadContext,
        InvokeAgent: invokeAgent,
        Aggregate: aggregate,
        Publish: publish,
        RequestApproval: requestApproval,
        Webhook: webhook,
        ExecutionStatus: executionStatus,
      },
      api,
      ...(props.config.alarmEmail ? { email: props.config.alarmEmail } : {}),
    });
    // cdk-nag (AwsSolutions) findings that stay, each acknowledged by its full id with the reason.
    const logicalId = (c: Construct) => this.getLogicalId(c.node.defaultChild as CfnElement);
    const ack = (scope: Construct, findingId: string, reason: string) => Validations.of(scope).acknowledge({ id: findingId, reason });
    ack(
      this,
      `AwsSolutions-IAM5[Resource::<${logicalId(table)}.Arn>/index/*]`,
      'TableV2 data grants include the table’s indexes: run listings query the runs index (GSI); the items are scoped by key in code.',
    );
    ack(
      this,
      `AwsSolutions-IAM5[Resource::<${logicalId(bucket)}.Arn>/runs/*]`,
      'Artifacts are written and read per run under runs/<execution>/…: the object keys are not known at deploy time; the actions are exactly GetObject/PutObject.',
    );
    ack(
      this,
      `AwsSolutions-IAM5[Resource::<${logicalId(bucket)}.Arn>/pulls/*]`,
      'A review state per pull request under pulls/<forge>/<owner>/<repo>/<n>/<workflow>/: the keys are not known at deploy time; LoadContext only reads, Publish reads and writes.',
    );
    for (const fn of Object.values(functions)) {
      ack(
        this,
        `AwsSolutions-IAM5[Resource::<${logicalId(fn)}.Arn>:*]`,
        'lambda:InvokeFunction on the function and its qualified ARNs (versions, aliases), as Step Functions invokes it (CDK grantInvoke).',
      );
    }
    for (const { sm } of machines) {
      ack(
        this,
        `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<${logicalId(sm)}.Name>:*]`,
        'states:DescribeExecution on this state machine’s executions (for /agentflow status); execution names are made per delivery.',
      );
    }
    for (const arn of bedrockResources.filter((a) => a.includes(':bedrock:*::foundation-model/'))) {
      ack(
        this,
        `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/${arn.split('foundation-model/')[1]}]`,
        'A cross-region inference profile routes to its foundation model in several regions; the model is named exactly (https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html).',
      );
    }
    ack(
      api,
      'AwsSolutions-APIG4',
      'GitHub, Slack and CI webhooks carry HMAC signatures over the raw body, which the ingress function verifies (401 otherwise); API Gateway authorizers cannot verify them.',
    );

    new CfnOutput(this, 'AlarmTopicArn', {
      value: ops.topic.topicArn,
      description: 'SNS topic of the AgentFlow alarms (subscribe your on-call)',
    });

    new CfnOutput(this, 'GitHubWebhookUrl', {
      value: `${api.apiEndpoint}/webhooks/github`,
      description: 'Payload URL for the GitHub webhook (content type application/json)',
    });
    new CfnOutput(this, 'GitLabWebhookUrl', {
      value: `${api.apiEndpoint}/webhooks/gitlab`,
      description: 'URL of the GitLab project webhook (Merge request events, Comments; secret token from agentflow/<env>/gitlab)',
    });
    new CfnOutput(this, 'SlackCommandUrl', {
      value: `${api.apiEndpoint}/webhooks/slack/commands`,
      description: 'Request URL of the /agentflow slash command',
    });
    new CfnOutput(this, 'SlackInteractionsUrl', {
      value: `${api.apiEndpoint}/webhooks/slack/interactions`,
      description: 'Interactivity Request URL of the Slack app (Approve/Reject buttons)',
    });
    new CfnOutput(this, 'CiCallbackUrl', {
      value: `${api.apiEndpoint}/webhooks/ci`,
      description: 'Where CI reports generated-test results (signed)',
    });
    const dashboard = new SpendDashboard(this, 'Spend', { dashboardName: `${prefix}-spend`, namespace: METRICS_NAMESPACE }).dashboard;
    new CfnOutput(this, 'SpendDashboardName', { value: dashboard.dashboardName });
    new CfnOutput(this, 'ArtifactBucketName', { value: bucket.bucketName });
    new CfnOutput(this, 'TableName', { value: table.tableName });
  }
}

/**
 * Checks that the environment's `askWorkflow` (what `/agentflow ask` starts without a workflow
 * name) is a request workflow of this deployment.
 * @throws Error naming the context path, the value and the request workflows there are
 */
export function checkAskWorkflow(workflows: readonly Workflow[], config: Pick<EnvironmentConfig, 'askWorkflow'>, envName: string): void {
  if (config.askWorkflow === undefined) return;
  const requests = workflows.filter((w) => w.kind === 'request').map((w) => w.id);
  if (!requests.includes(config.askWorkflow)) {
    throw new Error(
      `cdk.json: context.environments.${envName}.askWorkflow: "${config.askWorkflow}" is not a request workflow (trigger: request) of this deployment; request workflows: ${requests.join(', ') || 'none'}`,
    );
  }
}

/**
 * IAM resources for `bedrock:ApplyGuardrail`: the environment's guardrail (cdk.json `guardrail`)
 * when a workflow has a `guardrail:` phase, and every guardrail a phase names (`bedrock: { id }`).
 * Source: https://docs.aws.amazon.com/bedrock/latest/userguide/guardrails-permissions.html (read 2026-11).
 */
export function guardrailArns(workflows: readonly Workflow[], config: Pick<EnvironmentConfig, 'guardrail'>): string[] {
  const ids = new Set<string>();
  for (const wf of workflows) {
    for (const p of wf.phases) {
      if (p.kind !== 'guardrail') continue;
      const id = p.agent.guardrail?.guardrailId ?? config.guardrail?.id;
      if (id) ids.add(id);
    }
  }
  return [...ids].map((id) =>
    id.startsWith('arn:') ? id : `arn:${Aws.PARTITION}:bedrock:${Aws.REGION}:${Aws.ACCOUNT_ID}:guardrail/${id}`,
  );
}

/**
 * IAM resources for `bedrock:InvokeModel` on exactly the Bedrock models the workflows use (agents
 * and fallbacks): the inference profile in this region and its foundation model in every region the
 * profile routes to. Source: https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html
 */
export function bedrockModelArns(workflows: readonly Workflow[], models: ModelCatalog): string[] {
  const arns = new Set<string>();
  for (const wf of workflows) {
    for (const phase of wf.phases) {
      for (const agent of mapPhases([phase]).flatMap((m) => (m.agents[0]?.output === 'guardrail' ? [] : m.agents))) {
        const routed = agent.auto ? [agent.auto.simple, agent.auto.medium, agent.auto.complex] : [];
        for (const m of [agent.model, ...routed, ...agent.fallback]) {
          if (m.provider !== 'bedrock') continue;
          const spec = models.models[m.alias];
          if (m.modelId.includes('.anthropic.') || /^(us|eu|apac|global)\./.test(m.modelId)) {
            arns.add(`arn:${Aws.PARTITION}:bedrock:${Aws.REGION}:${Aws.ACCOUNT_ID}:inference-profile/${m.modelId}`);
            arns.add(`arn:${Aws.PARTITION}:bedrock:*::foundation-model/${spec?.foundation_model ?? m.modelId.replace(/^[a-z]+\./, '')}`);
          } else {
            arns.add(`arn:${Aws.PARTITION}:bedrock:${Aws.REGION}::foundation-model/${m.modelId}`);
          }
        }
      }
    }
  }
  return [...arns].sort();
}

/**
 * Adds `AgentFlow-<envName>` to `app` as `cdk deploy` builds it: the environment `envName` of the
 * app's `environments` context (cdk.json), the checked workspace (every workflow, agent and model).
 * @returns the stack
 * @throws Error naming the context path of an invalid environment, or listing the workflows' diagnostics
 */
export function addEnvironmentStack(app: Construct, envName: string, workspace: Workspace, projectRoot: string): AgentFlowStack {
  const config = loadEnvironmentConfig(app.node.tryGetContext('environments'), envName);
  if (workspace.diagnostics.length > 0 || !workspace.catalog) {
    throw new Error(`workflows are not valid:\n${workspace.diagnostics.map(formatDiagnostic).join('\n')}`);
  }
  // The environment's MCP servers replace the workflows' servers of the same name; a Lambda can reach only URLs.
  const workflows = [...workspace.workflows.values()].map((w) => withMcpServers(w, config.mcpServers));
  const stdio = workflows.flatMap((w) => stdioServers(w).map((s) => `${w.id}: ${s}`));
  if (stdio.length > 0) {
    throw new Error(
      `cdk.json: context.environments.${envName}.mcpServers: a deployed agent can reach MCP servers by url only (a Lambda cannot start a command it does not ship); give these servers a url:\n${stdio.join('\n')}`,
    );
  }
  return new AgentFlowStack(app, `AgentFlow-${envName}`, {
    envName,
    config,
    workflows,
    models: workspace.catalog.models,
    projectRoot,
    env: { region: config.region, ...(config.account ? { account: config.account } : {}) },
    description: `AgentFlow (${envName}): AI agent workflows on pull requests`,
  });
}
