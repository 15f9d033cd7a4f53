import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type ApproverGroups, ApproverGroupsSchema } from '../lambdas/core/approvals.js';
import { type GatewayConfig, GatewayConfigSchema, parseGatewayConfig } from '../lambdas/core/gateway-config.js';

/**
 * CloudWatch Logs retention values allowed by the API, in days.
 * Source: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
 */
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] as const;

/** One environment in cdk.json `context.environments.<name>`. */
export const EnvironmentConfigSchema = z.strictObject({
  /** AWS account id; default: the CLI's current account. */
  account: z
    .string()
    .regex(/^\d{12}$/, 'an AWS account id has 12 digits')
    .optional(),
  region: z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'use a region name such as us-east-1'),
  logRetentionDays: z.number().refine((d) => (RETENTION_DAYS as readonly number[]).includes(d), {
    message: `use one of ${RETENTION_DAYS.join(', ')}`,
  }),
  /** `destroy` deletes the table and bucket with the stack (dev); `retain` keeps them (prod). */
  removalPolicy: z.enum(['destroy', 'retain']),
  githubApiUrl: z.string().url().default('https://api.github.com'),
  /**
   * Approver groups workflows name in `approvers:` and `run_by:`: Slack user ids, GitHub logins or
   * `@org/team` teams, GitLab usernames or `@group/path` groups, e.g.
   * `{ "mobile-leads": { "slack": ["U024BE7LH"], "github": ["@acme/mobile-leads"], "gitlab": ["jsmith"] } }`.
   */
  groups: ApproverGroupsSchema.default({}),
  /**
   * The Slack channel a workflow's `output.slack: true` (or `slack_notification: true`) posts run
   * summaries in, e.g. `#mobile-reviews`; a workflow naming its channel does not need it.
   * @default none: such a workflow's summary is not posted (its run record says why) and synth warns
   */
  slackChannel: z.string().min(1).optional(),
  /**
   * The request workflow `/agentflow ask <request>` asks when the user names none (a workflow id
   * whose trigger is `request`).
   * @default - the only request workflow; with several, the user names one
   */
  askWorkflow: z.string().min(1).optional(),
  /**
   * MCP servers of this environment, by the name workflows give them in `mcp_servers:`: each
   * replaces the workflow's server of that name here (a streamable HTTP `url`, or locally a stdio
   * `command`), e.g. `{ "tracker": { "url": "https://mcp.tracker.acme.dev/mcp" } }`. A deployed
   * environment needs a `url` for every server its workflows use (a Lambda cannot start a stdio
   * server it does not ship); the local environment may start stand-ins.
   * @default {} (the workflows' own servers)
   */
  mcpServers: z
    .record(
      z.string().regex(/^[A-Za-z0-9-]+$/),
      z.union([
        z.strictObject({ command: z.string().min(1), args: z.array(z.string()).default([]) }),
        z.strictObject({ url: z.string().url() }),
      ]),
    )
    .default({}),
  /**
   * The Amazon Bedrock guardrail `guardrail:` phases use in the cloud when they name none (their
   * `bedrock:`), by id and version. Absent: such phases apply AgentFlow's own rules in the Lambda.
   * Source: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ApplyGuardrail.html (read 2026-11).
   */
  guardrail: z.strictObject({ id: z.string().min(1), version: z.string().min(1) }).optional(),
  /** E-mail address subscribed to the alarm topic (it must confirm the subscription). */
  alarmEmail: z.string().email().optional(),
  /**
   * Concurrent executions reserved for the webhook Lambda, so a burst of deliveries cannot starve
   * (or be starved by) the task Lambdas. Lambda keeps 10 of the account's quota unreserved, so an
   * account whose quota is 10 (some new accounts) cannot reserve any: 0 (the default) reserves none;
   * the shipped prod environment reserves 20.
   * @default 0
   */
  ingressReservedConcurrency: z.number().int().min(0).max(1000).default(0),
  /** Webhook API stage throttling: steady requests per second and burst. @default 50 rps, burst 100 */
  apiThrottle: z
    .strictObject({ rateLimit: z.number().min(1), burstLimit: z.number().int().min(1) })
    .default({ rateLimit: 50, burstLimit: 100 }),
  // The model gateway's settings: budgets, breaker, retry, rateLimits, cache, providerTimeoutSeconds.
  ...GatewayConfigSchema.shape,
});
export type EnvironmentConfig = z.infer<typeof EnvironmentConfigSchema>;

/**
 * Reads the environment `name` from the `environments` context value.
 * @throws Error naming the context path and the problem, so `cdk synth` fails with it
 */
export function loadEnvironmentConfig(environments: unknown, name: string): EnvironmentConfig {
  const all = z.record(z.string(), z.unknown()).safeParse(environments);
  if (!all.success) throw new Error('cdk.json: context.environments must be an object of environments');
  const raw = all.data[name];
  if (raw === undefined) {
    throw new Error(
      `cdk.json: context.environments.${name} is not defined (known: ${Object.keys(all.data).join(', ')}); pass -c env=<name>`,
    );
  }
  const r = EnvironmentConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Error(`cdk.json: context.environments.${name}.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

/** The `groups` of cdk.json `context.environments.local` in `projectRoot` (none when there is no cdk.json). */
export function loadLocalGroups(projectRoot: string): ApproverGroups {
  let cdk: { context?: { environments?: { local?: { groups?: unknown } } } } = {};
  try {
    cdk = JSON.parse(readFileSync(join(projectRoot, 'cdk.json'), 'utf8'));
  } catch {
    return {};
  }
  const r = ApproverGroupsSchema.safeParse(cdk.context?.environments?.local?.groups ?? {});
  if (!r.success) throw new Error(`cdk.json: context.environments.local.groups: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data;
}

/** `askWorkflow` of cdk.json `context.environments.local` in `projectRoot` (none when there is no cdk.json or it names none). */
export function loadLocalAskWorkflow(projectRoot: string): string | undefined {
  let cdk: { context?: { environments?: { local?: { askWorkflow?: unknown } } } } = {};
  try {
    cdk = JSON.parse(readFileSync(join(projectRoot, 'cdk.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const value = cdk.context?.environments?.local?.askWorkflow;
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0) throw new Error('cdk.json: context.environments.local.askWorkflow: a workflow id');
  return value;
}

/**
 * The `mcpServers` of cdk.json `context.environments.local` in `projectRoot`: the servers an
 * offline run uses instead of the workflows' own (the stand-ins under test/standins). None when
 * there is no cdk.json.
 * @throws Error naming the field when the entry is not `{ url }` or `{ command, args }`
 */
export function loadLocalMcpServers(projectRoot: string): EnvironmentConfig['mcpServers'] {
  let cdk: { context?: { environments?: { local?: { mcpServers?: unknown } } } } = {};
  try {
    cdk = JSON.parse(readFileSync(join(projectRoot, 'cdk.json'), 'utf8'));
  } catch {
    return {};
  }
  const r = EnvironmentConfigSchema.shape.mcpServers.safeParse(cdk.context?.environments?.local?.mcpServers ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Error(`cdk.json: context.environments.local.mcpServers.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

/**
 * The gateway settings local commands use: the file given with `--config` (JSON or YAML, the
 * shape of a cdk.json `context.environments.<env>` entry; only gateway keys are read), else
 * cdk.json `context.environments.local` in `projectRoot`, else the defaults.
 * @throws Error naming the file and field path of an invalid setting
 */
export function loadLocalGatewayConfig(projectRoot: string, configFile?: string): GatewayConfig {
  if (configFile) {
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (e) {
      throw new Error(`${configFile}: cannot read the config file (${(e as Error).message})`);
    }
    return parseGatewayConfig(configFile.endsWith('.json') ? JSON.parse(text) : parseYaml(text), configFile);
  }
  let cdk: { context?: { environments?: { local?: unknown } } } = {};
  try {
    cdk = JSON.parse(readFileSync(join(projectRoot, 'cdk.json'), 'utf8'));
  } catch {
    // no cdk.json: defaults
  }
  return parseGatewayConfig(cdk.context?.environments?.local ?? {}, 'cdk.json: context.environments.local');
}
