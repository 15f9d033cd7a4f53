import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { createExampleRepo, type ExampleRepo } from '../../lib/local/example-repo.js';
import { type OfflineModelOptions, OfflineModelServer } from '../../lib/local/offline-model.js';
import { LOCAL_TABLE, type LocalTable, startLocalTable } from '../../lib/local/runtime.js';
import { PROJECT_ROOT } from '../../lib/workspace.js';
import { GitLabStandIn } from '../standins/gitlab.js';
import { seedMergeRequestFromGit } from '../standins/gitlab-seed.js';
import { type CfnTemplate, type DeployedStack, LOCAL_ACCOUNT, readDeployedStack } from './assembly.js';
import { LocalEventBus } from './event-bridge.js';
import { AwsCallLog, isAllowed, roleStatements } from './iam.js';
import { LambdaHost } from './lambda-host.js';
import { DynamoDbRecorder, GitHubStandIn, S3StandIn, SecretsManagerStandIn, SlackStandIn } from './standins.js';
import { LocalStepFunctions, type LocalStepFunctionsOptions, StepFunctionsApiStandIn } from './step-functions.js';

/** The bucket name `Ref` of the artifact bucket resolves to. */
export const LOCAL_BUCKET = 'agentflow-dev-artifacts-local';
export const REGION = 'us-east-1';

/** The secrets of `agentflow/dev/*` (fields as lambdas/shared/*.ts and the webhook read them). */
export const SECRETS = {
  'agentflow/dev/github': { token: 'ghs_localharnesstoken0000000000000000', webhookSecret: 'harness-github-webhook-secret' },
  'agentflow/dev/slack': { botToken: 'xoxb-harness-bot-token', signingSecret: 'harness-slack-signing-secret' },
  'agentflow/dev/openai': { apiKey: 'sk-harness-offline' },
  'agentflow/dev/ci': { callbackSecret: 'harness-ci-callback-secret' },
  // `apiUrl` (the GitLab instance's root) is the GitLab stand-in's URL, set when the harness starts.
  'agentflow/dev/gitlab': { token: 'glpat-harness-token', webhookSecret: 'harness-gitlab-webhook-secret' },
} as const;

/** The pull request the example repository stands for. */
export const REPOSITORY = 'acme/shop-apps';
export const PR_NUMBER = 42;

/** The merge request the example repository stands for on GitLab (in a nested group). */
export const GITLAB_PROJECT = 'acme/mobile/shop-apps';
export const MR_IID = 42;
export const MR_TITLE = 'Checkout: pay with card (on GitLab)';

/**
 * The Node.js runtimes of Lambda provide the AWS SDK for JavaScript v3, so NodejsFunction leaves
 * `@aws-sdk/*` out of the bundles (external imports). The harness provides it the same way: a
 * `node_modules/@aws-sdk` next to the asset folders (ESM resolution walks up from `index.mjs`),
 * linked to the project's copy; nothing else of the project's node_modules is reachable, so a
 * dependency the bundle lacks fails as it would in Lambda.
 */
export function provideRuntimeSdk(outdir: string): void {
  const scope = join(outdir, 'node_modules', '@aws-sdk');
  if (existsSync(scope)) return;
  mkdirSync(join(outdir, 'node_modules'), { recursive: true });
  symlinkSync(join(PROJECT_ROOT, 'node_modules', '@aws-sdk'), scope, 'dir');
}

/** Options of {@link DeployedHarness.start}. */
export interface HarnessOptions {
  /** The synthesized cloud assembly: its folder, stack name and template. */
  readonly outdir: string;
  readonly stackName: string;
  readonly template: CfnTemplate;
  /** A temporary folder for the example repository and the environments' HOME. */
  readonly workDir: string;
  readonly offline?: OfflineModelOptions;
  readonly engine?: LocalStepFunctionsOptions;
}

/**
 * The synthesized stack running on this machine: every function's bundle in its own child
 * processes with its template environment, the state machines on aws-local-stepfunctions, and the
 * AWS services, GitHub, Slack and the model providers as servers on 127.0.0.1.
 */
export class DeployedHarness {
  private constructor(
    readonly stack: DeployedStack,
    readonly repo: ExampleRepo,
    readonly table: LocalTable,
    readonly s3: S3StandIn,
    readonly secrets: SecretsManagerStandIn,
    readonly github: GitHubStandIn,
    /** GitLab, with the example change seeded as merge request {@link MR_IID} of {@link GITLAB_PROJECT}. */
    readonly gitlab: GitLabStandIn,
    /** The seeded merge request's diff refs (base = merge base, start = target branch tip, head). */
    readonly gitlabShas: { baseSha: string; startSha: string; headSha: string },
    readonly slack: SlackStandIn,
    readonly models: OfflineModelServer,
    readonly host: LambdaHost,
    readonly sfn: LocalStepFunctions,
    readonly sfnApi: StepFunctionsApiStandIn,
    /** The default event bus with the template's rules (Step Functions status changes go there). */
    readonly bus: LocalEventBus,
    /** The variables set over the template's (endpoints), for the report. */
    readonly overrides: Record<string, string>,
  ) {}

  static async start(o: HarnessOptions): Promise<DeployedHarness> {
    const repo = createExampleRepo(join(o.workDir, 'repo'));
    provideRuntimeSdk(o.outdir);
    const stack = readDeployedStack(o.outdir, o.stackName, o.template, { table: LOCAL_TABLE, bucket: LOCAL_BUCKET, region: REGION });
    const table = await startLocalTable();
    const awsCalls = new AwsCallLog();
    const dynamo = await new DynamoDbRecorder(
      table.endpoint,
      awsCalls,
      (t) => `arn:aws:dynamodb:${REGION}:${LOCAL_ACCOUNT}:table/${t}`,
    ).start();
    const s3 = await new S3StandIn([LOCAL_BUCKET], awsCalls).start();
    // GitLab: the example change as a merge request; its token's user (`GET /user`) is the stand-in's self.
    const gitlab = new GitLabStandIn(SECRETS['agentflow/dev/gitlab'].token, 'agentflow-bot');
    const { baseSha, startSha, headSha } = seedMergeRequestFromGit(gitlab, {
      repo: repo.path,
      project: GITLAB_PROJECT,
      iid: MR_IID,
      base: 'main',
      head: repo.head,
      sourceBranch: 'feature/checkout-payments',
      targetBranch: 'main',
      title: MR_TITLE,
    });
    const gitlabUrl = await gitlab.start();
    const secretValues = structuredClone(SECRETS) as Record<string, Record<string, string>>;
    secretValues['agentflow/dev/gitlab'] = { ...SECRETS['agentflow/dev/gitlab'], apiUrl: gitlabUrl };
    const secrets = await new SecretsManagerStandIn(secretValues, awsCalls).start();
    const github = await new GitHubStandIn(repo, {
      repository: REPOSITORY,
      number: PR_NUMBER,
      token: SECRETS['agentflow/dev/github'].token,
    }).start();
    const slack = await new SlackStandIn(SECRETS['agentflow/dev/slack'].botToken).start();
    const models = await new OfflineModelServer(o.offline ?? { faults: {} }).start();
    // Set over the template's variables: where each SDK and API client sends its requests.
    const overrides: Record<string, string> = {
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.url,
      AWS_ENDPOINT_URL_S3: s3.url,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.url,
      AWS_ENDPOINT_URL_BEDROCK_RUNTIME: models.bedrockUrl,
      OPENAI_BASE_URL: models.openaiUrl,
      GITHUB_API_URL: github.url,
      SLACK_API_URL: slack.apiUrl,
    };
    // What the Lambda runtime gives every environment (under the template's variables).
    const runtime: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: o.workDir,
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      AWS_ACCESS_KEY_ID: 'AKIAHARNESSLOCAL0000',
      AWS_SECRET_ACCESS_KEY: 'harness-local-secret',
      AWS_SESSION_TOKEN: 'harness-local-session',
      // No shared config or credentials of this machine's user leaks in.
      AWS_CONFIG_FILE: join(o.workDir, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(o.workDir, 'no-aws-credentials'),
    };
    const host = new LambdaHost(runtime, overrides);
    // A missing key is 404 only to a function whose role may list the bucket (403 otherwise, as S3 does).
    s3.mayList = (accessKeyId, bucketArn) => {
      const fn = host.functionOfKey(accessKeyId, stack.functions.values());
      return fn ? isAllowed(roleStatements(stack, fn.logicalId), 's3:ListBucket', bucketArn) : true;
    };
    const bus = new LocalEventBus(stack, host, REGION);
    const state = { closing: false };
    const sfn = new LocalStepFunctions(stack, host, {
      ...o.engine,
      onStatusChange: (e) => {
        // Step Functions sends every status change to EventBridge; the rules pick theirs.
        if (!state.closing) bus.executionStatusChanged(e);
        o.engine?.onStatusChange?.(e);
      },
    });
    const sfnApi = await new StepFunctionsApiStandIn(sfn, awsCalls).start();
    overrides.AWS_ENDPOINT_URL_SFN = sfnApi.url;
    const h = new DeployedHarness(
      stack,
      repo,
      table,
      s3,
      secrets,
      github,
      gitlab,
      { baseSha, startSha, headSha },
      slack,
      models,
      host,
      sfn,
      sfnApi,
      bus,
      overrides,
    );
    h.state = state;
    h.awsCalls = awsCalls;
    h.dynamo = dynamo;
    return h;
  }

  /** The function of the stack an HTTP API route (`POST /webhooks/github`) integrates, from the template. */
  routeFunction(routeKey: string): string {
    const res = this.stack.template.Resources;
    const route = Object.values(res).find((r) => r.Type === 'AWS::ApiGatewayV2::Route' && r.Properties?.RouteKey === routeKey);
    if (!route) throw new Error(`no route ${routeKey} in the template`);
    const target = route.Properties?.Target as { 'Fn::Join'?: [string, unknown[]] } | string | undefined;
    const parts = typeof target === 'string' ? [target] : (target?.['Fn::Join']?.[1] ?? []);
    const integrationId = parts.map((p) => (p && typeof p === 'object' ? (p as { Ref?: string }).Ref : undefined)).find(Boolean);
    const uri = res[integrationId ?? '']?.Properties?.IntegrationUri as { 'Fn::GetAtt'?: [string, string] } | undefined;
    const fnId = uri?.['Fn::GetAtt']?.[0];
    if (!fnId || !this.stack.functions.has(fnId)) throw new Error(`route ${routeKey}: no Lambda integration found`);
    return fnId;
  }

  /**
   * Sends a request to the HTTP API as API Gateway (HTTP API, payload format 2.0) would: the
   * route's function gets the v2 event and its result is the response.
   */
  async post(path: string, headers: Record<string, string>, body: string): Promise<{ statusCode: number; body: string; json: unknown }> {
    const routeKey = `POST ${path}`;
    const fn = this.stack.functions.get(this.routeFunction(routeKey));
    if (!fn) throw new Error(`no function for ${routeKey}`);
    const now = new Date();
    const event = {
      version: '2.0',
      routeKey,
      rawPath: path,
      rawQueryString: '',
      headers: Object.fromEntries(
        Object.entries({ 'content-length': String(Buffer.byteLength(body)), ...headers }).map(([k, v]) => [k.toLowerCase(), v]),
      ),
      requestContext: {
        accountId: '123456789012',
        apiId: 'harness',
        domainName: 'harness.execute-api.us-east-1.amazonaws.com',
        domainPrefix: 'harness',
        http: { method: 'POST', path, protocol: 'HTTP/1.1', sourceIp: '192.0.2.10', userAgent: headers['user-agent'] ?? 'harness' },
        requestId: randomUUID(),
        routeKey,
        stage: '$default',
        time: now.toUTCString(),
        timeEpoch: now.getTime(),
      },
      body,
      isBase64Encoded: false,
    };
    const r = (await this.host.invoke(fn, event)) as APIGatewayProxyStructuredResultV2;
    const text = String(r.body ?? '');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { statusCode: Number(r.statusCode ?? 200), body: text, json };
  }

  /** The state machine of workflow `id` (named `agentflow-dev-<id>` by the stack). */
  machine(workflowId: string) {
    const sm = [...this.stack.stateMachines.values()].find((s) => s.name.endsWith(`-${workflowId}`));
    if (!sm) throw new Error(`no state machine for workflow ${workflowId}`);
    return sm;
  }

  private state = { closing: false };
  /** Every AWS call the stand-ins received, by access key (see {@link LambdaHost.accessKeyOf}). */
  awsCalls = new AwsCallLog();
  private dynamo?: DynamoDbRecorder;

  async stop(): Promise<void> {
    this.state.closing = true;
    await this.sfn.stop();
    await Promise.race([this.bus.settled(), new Promise((r) => setTimeout(r, 10_000))]);
    await this.host.stop();
    await Promise.all([
      this.dynamo?.stop(),
      this.sfnApi.stop(),
      this.s3.stop(),
      this.secrets.stop(),
      this.github.stop(),
      this.gitlab.stop(),
      this.slack.stop(),
      this.models.stop(),
    ]);
    await this.table.stop();
  }
}
