import { randomUUID } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
  ResourceInUseException,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import dynalite from 'dynalite';
import { DynamoApprovalStore } from '../../lambdas/adapters/approvals.js';
import { FsArtifactStore } from '../../lambdas/adapters/artifacts.js';
import { GitChangeLookup } from '../../lambdas/adapters/changes.js';
import { everyForge, FilePublisher } from '../../lambdas/adapters/comments.js';
import { PowertoolsDeliveryGuard } from '../../lambdas/adapters/delivery-guard.js';
import {
  createDynamoGateway,
  type DynamoBreakerStore,
  type DynamoBudgetLedger,
  DynamoRateLimitStore,
} from '../../lambdas/adapters/gateway-store.js';
import { MemoryGatewayMetrics } from '../../lambdas/adapters/metrics.js';
import { DynamoRunStore, TABLE_KEYS } from '../../lambdas/adapters/runs.js';
import { aggregate } from '../../lambdas/aggregate/aggregate.js';
import {
  type Actor,
  type ApproverGroups,
  type DecideDeps,
  type Decision,
  decideApproval,
  expireApproval,
  isExpireAction,
  listApprovals,
  type PendingApproval,
  RequestApprovalInputSchema,
  requestApproval,
} from '../../lambdas/core/approvals.js';
import {
  type Change,
  ContextArtifactSchema,
  type ExecutionInput,
  type FilesCommit,
  type Forge,
  forgeOf,
  PROVIDERS,
  type RunSummary,
  runSubject,
} from '../../lambdas/core/contracts.js';
import type { ModelGateway } from '../../lambdas/core/gateway.js';
import { type GatewayConfig, GatewayConfigSchema } from '../../lambdas/core/gateway-config.js';
import { MCP_HEADERS_ENV, mcpHeadersSource } from '../../lambdas/core/mcp-headers.js';
import type {
  ChangeLookup,
  ChangeSource,
  ChannelNotifier,
  DeliveryGuard,
  ExecutionStarter,
  ForgeTable,
  JsonValue,
  ProviderTable,
  RunStore,
} from '../../lambdas/core/ports.js';
import { executionEnded } from '../../lambdas/execution-status/execution-status.js';
import { toolBreaker } from '../../lambdas/invoke-agent/agent-tools.js';
import { invokeAgent } from '../../lambdas/invoke-agent/invoke-agent.js';
import { loadContext } from '../../lambdas/load-context/load-context.js';
import { publish } from '../../lambdas/publish/publish.js';
import {
  type AslDefinition,
  compileWorkflow,
  type EnvironmentMcpServer,
  type TaskKind,
  taskKindOf,
  taskStates,
  WAIT_FOR_TASK_TOKEN,
  withMcpServers,
} from '../workflow/index.js';
import type { Workspace } from '../workspace.js';
import { LocalApprovalNotifier, LocalTaskCallbacks } from './approvals.js';
import { inProcessHandler, UNSIGNED, withoutUnusedSteps } from './dynalite-handler.js';
import { BatchedGitChangeSource, GitBatchReader } from './git-batch.js';
import { type OfflineModelOptions, OfflineModelServer } from './offline-model.js';
import { type ProgressError, ProgressTracker } from './progress.js';
import { localProviders, type ProviderModes, providerModes } from './providers.js';

/** The local table's name (the cloud table is named by CloudFormation). */
export const LOCAL_TABLE = 'agentflow';

/** Options of {@link LocalRuntime.start}. */
export interface LocalRuntimeOptions {
  /** Folder for artifacts (`artifacts/`) and the DynamoDB data (`dynamodb/`). */
  stateDir: string;
  /**
   * Publish through these forges instead of writing what would be posted to files (a test's
   * GitHub or GitLab stand-in on 127.0.0.1); a forge left out gets the file publisher.
   * @default the file publisher for every forge
   */
  forges?: Partial<ForgeTable>;
  /**
   * Read the changes of these forges from them instead of the local repository (a test's GitLab
   * stand-in); a forge left out is read with `git` from `repoPath`.
   */
  changeSources?: Partial<Record<Forge, ChangeSource>>;
  /** The local git repository LoadContext diffs. */
  repoPath: string;
  workspace: Workspace;
  /** Keep DynamoDB data in `stateDir` (false: in memory). @default true */
  persist?: boolean;
  offline?: OfflineModelOptions;
  /** Where provider calls go. @default providerModes() from the environment */
  modes?: ProviderModes;
  /** Retry waits locally, in ms, instead of the definition's backoff. @default 100 */
  retryDelayMs?: number;
  /** Called when publish writes the pull-request comment. */
  onComment?: (body: string, path: string) => void;
  /** Told where the inline review GitHub would get was written and how many comments it holds. */
  onReview?: (path: string, comments: number) => void;
  /** Told where the SARIF code scanning would get (`output.code_scanning`) was written and how many results it holds. */
  onSarif?: (path: string, results: number) => void;
  /**
   * The channel `output.slack: true` posts in locally (printed and appended to
   * `<stateDir>/slack-outbox.jsonl`, as every local Slack message). @default '#default'
   */
  slackChannel?: string;
  /** Budgets, breaker, retry, rate limits and cache of the model gateway. @default all defaults (no budget limits) */
  gateway?: GatewayConfig;
  /**
   * MCP servers that replace the workflows' servers of the same name (cdk.json
   * `environments.local.mcpServers`: the stand-ins, for an offline run). @default {} (the workflows' own)
   */
  mcpServers?: Readonly<Record<string, EnvironmentMcpServer>>;
  /** Environment given to every stdio MCP server besides `PATH` (tests point the stand-ins' call log here). @default {} */
  mcpEnv?: Readonly<Record<string, string>>;
  /** Approver groups of the environment config (cdk.json `environments.local.groups`). @default {} */
  groups?: ApproverGroups;
  /** Prints approval requests and outcomes. @default console.log */
  print?: (line: string) => void;
  /**
   * Executions that run at once; more wait (RUNNING, in start order) for one to finish, so a burst
   * of deliveries does not starve the server's event loop and its ingress answers.
   * @default {@link DEFAULT_MAX_CONCURRENT_RUNS}
   */
  maxConcurrentRuns?: number;
}

/** The start of a run record's `error` when {@link LocalRuntime.reconcile} found it interrupted (such a run may start again). */
export const INTERRUPTED = 'interrupted:';

import { DEFAULT_MAX_CONCURRENT_RUNS } from './limits.js';

/** Executions the embedded runtime runs at once by default (more wait their turn): in ./limits.ts, light for the CLI's start. */
export { DEFAULT_MAX_CONCURRENT_RUNS };

/** What {@link LocalRuntime.reconcile} put right: runs marked interrupted, approvals expired, budget holds released. */
export interface Recovery {
  runs: number;
  approvals: number;
  holds: number;
  /** Webhook deliveries whose idempotency record was deleted because their execution was interrupted. */
  deliveries: number;
}

/** What a state machine execution ended with. */
export interface ExecutionResult {
  name: string;
  workflow: string;
  status: 'SUCCEEDED' | 'FAILED';
  /** The execution output: the run summary (or the skip) on success. */
  output: unknown;
  error?: string;
  /** State transitions (states entered), as Step Functions Standard bills them. */
  transitions: number;
  durationMs: number;
}

/**
 * A progress event of a running execution, for printing (see {@link ProgressTracker}): one
 * `entered` and then one outcome per state execution — `exited`, `caught` (a Catch took the
 * error) or `failed` (nothing did) — with a `retried` before each retry.
 */
export interface ProgressEvent {
  execution: string;
  kind: 'entered' | 'exited' | 'failed' | 'retried' | 'caught';
  state: string;
  /** Agent name for states inside a Map iteration. */
  agent?: string;
  /** A short description of what a Task state returned (`exited`). */
  detail?: string;
  /** The error of a `failed`, `caught` or `retried` state: its name (what Retry/Catch match) and message. */
  error?: ProgressError;
  /** An agent's result when not a success: `partial` (part of its files reviewed) or `failed` (`exited`). */
  outcome?: 'partial' | 'failed';
  /** The attempt a retry starts: 2 for the first retry (`retried`). */
  attempt?: number;
  /** Time from entering the state to its outcome, retries included, in ms. */
  ms?: number;
}

/**
 * The embedded runtime: runs the compiled definitions of a workspace on this machine with
 * aws-local-stepfunctions, every Task state overridden by the in-process use case the Lambda
 * runs; DynamoDB is dynalite on 127.0.0.1; artifacts are files; models are the real SDK
 * clients, pointed at the offline model server when no credentials are set.
 */
export class LocalRuntime {
  readonly artifacts: FsArtifactStore;
  readonly definitions = new Map<string, AslDefinition>();
  readonly executions = new Map<string, Promise<ExecutionResult>>();
  readonly listeners = new Set<(e: ProgressEvent) => void>();
  providers!: ProviderTable;
  runs!: RunStore;
  /** The model gateway every InvokeAgent task calls through (state in the local table). */
  gateway!: ModelGateway;
  ledger!: DynamoBudgetLedger;
  breakers!: DynamoBreakerStore;
  readonly metrics = new MemoryGatewayMetrics();
  gatewayConfig!: GatewayConfig;
  offline?: OfflineModelServer;
  modes!: ProviderModes;
  /** Approvals and CI callbacks waiting on task tokens (`APPROVAL#` items in the local table). */
  approvals!: DynamoApprovalStore;
  /** The local engine's task tokens (SendTaskSuccess / SendTaskFailure). */
  readonly callbacks = new LocalTaskCallbacks();
  /** The approval messages as Slack would show them (also appended to `<stateDir>/slack-outbox.jsonl`). */
  notifier!: LocalApprovalNotifier;
  /** Powertools idempotency records for webhook deliveries, in the local table. */
  guard!: DeliveryGuard;
  /** Resolves `pr=` and `base=`/`head=` of commands against the local repository and earlier runs. */
  changeLookup!: ChangeLookup;
  private table?: LocalTable;
  private readonly starting = new Set<string>();
  /** Executions running now, and the starts waiting for a free place (see `maxConcurrentRuns`). */
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  private constructor(readonly options: LocalRuntimeOptions) {
    this.artifacts = new FsArtifactStore(join(options.stateDir, 'artifacts'));
    this.headReader = new GitBatchReader(options.repoPath);
    this.git = new BatchedGitChangeSource(options.repoPath, this.headReader);
    for (const [id, wf] of options.workspace.workflows)
      this.definitions.set(id, compileWorkflow(withMcpServers(wf, options.mcpServers ?? {})));
  }

  /** Starts dynalite, the offline model server when a provider needs it, and the table. */
  static async start(options: LocalRuntimeOptions): Promise<LocalRuntime> {
    // aws-local-stepfunctions calls Promise.withResolvers (Node 22+): say so before anything starts,
    // instead of every state failing with "Promise.withResolvers is not a function".
    if (typeof (Promise as { withResolvers?: unknown }).withResolvers !== 'function') {
      throw new Error(
        `the local runtime needs Node 22 or later (this is Node ${process.versions.node}): run it as \`npx agentflow …\` or \`npm run …\`, which use the project's Node 24`,
      );
    }
    const rt = new LocalRuntime(options);
    rt.gatewayConfig = options.gateway ?? GatewayConfigSchema.parse({});
    const compatibleUrl = rt.gatewayConfig.openaiCompatibleBaseUrl;
    rt.modes = options.modes ?? providerModes(process.env, compatibleUrl);
    if (Object.values(rt.modes).includes('offline')) {
      rt.offline = await new OfflineModelServer(options.offline).start();
    }
    rt.providers = localProviders(rt.modes, rt.offline, process.env, compatibleUrl);
    const persist = options.persist ?? true;
    // A folder another process holds (or any failure to open the table) leaves nothing running:
    // the offline model server would keep the process alive after the error.
    const table = await startLocalTable(persist ? join(options.stateDir, 'dynamodb') : undefined).catch(async (e: unknown) => {
      await rt.offline?.stop().catch(() => undefined);
      throw e;
    });
    rt.table = table;
    try {
      const doc = table.doc;
      rt.runs = new DynamoRunStore(doc, LOCAL_TABLE);
      const gw = createDynamoGateway({ doc, table: LOCAL_TABLE, providers: rt.providers, config: rt.gatewayConfig, metrics: rt.metrics });
      rt.gateway = gw.gateway;
      rt.ledger = gw.ledger;
      rt.breakers = gw.breakers;
      rt.approvals = new DynamoApprovalStore(doc, LOCAL_TABLE);
      // Ingress has a client of its own (as its Lambda does in the cloud).
      rt.ingressClient = table.newClient();
      rt.guard = new PowertoolsDeliveryGuard({ client: rt.ingressClient, table: LOCAL_TABLE });
      rt.ingressRuns = new DynamoRunStore(DynamoDBDocumentClient.from(rt.ingressClient), LOCAL_TABLE);
      rt.changeLookup = new GitChangeLookup(options.repoPath, async (repository, number) => {
        const run = (await rt.runs.list(200)).find((r) => r.repository === repository && r.number === number);
        if (!run) return undefined;
        const ctx = ContextArtifactSchema.safeParse(await rt.artifacts.getJson(`runs/${run.runId}/context.json`).catch(() => undefined));
        return ctx.success ? ctx.data.change : undefined;
      });
      rt.notifier = new LocalApprovalNotifier(options.print ?? ((l) => console.log(l)), join(options.stateDir, 'slack-outbox.jsonl'));
      // This process now owns the folder (claimFolder): whatever a previous owner left running is gone.
      if (persist) rt.recovered = await rt.reconcile();
    } catch (e) {
      // Nothing started may outlive the error (the table and the model server would keep the process alive).
      rt.ingressClient?.destroy();
      await table.stop().catch(() => undefined);
      await rt.offline?.stop().catch(() => undefined);
      throw e;
    }
    return rt;
  }

  /** What {@link reconcile} put right when this runtime opened its state folder. */
  recovered: Recovery = { runs: 0, approvals: 0, holds: 0, deliveries: 0 };

  /**
   * Puts right what a process that stopped without cleaning up (SIGKILL, a crash) left in the
   * state folder. Only called by the folder's owner (see `claimFolder`), so nothing found running
   * is alive: RUNNING runs become FAILED ("interrupted"), pending approvals and CI gates EXPIRED
   * (their message says so), every budget hold is released and every rate-limit slot freed.
   */
  async reconcile(): Promise<Recovery> {
    const at = new Date().toISOString();
    const stale = (await this.runs.list(10_000)).filter((r) => r.status === 'RUNNING');
    for (const r of stale) {
      await this.runs.put({
        ...r,
        status: 'FAILED',
        finishedAt: at,
        error: `${INTERRUPTED} the process running it stopped before it finished (found when the state folder was opened again); a redelivery of the webhook that started it starts it again; start other runs again yourself`,
      });
    }
    const interrupted = new Set(stale.map((r) => r.runId));
    const deliveries = await this.guard.forget((result) => startedOneOf(result, interrupted));
    const pending = await this.approvals.listPending();
    for (const a of pending) {
      await this.approvals.expire(a.id);
      await this.notifier.decided({ ...a, status: 'EXPIRED' });
    }
    const holds = await this.ledger.sweepAll(Number.MAX_SAFE_INTEGER);
    if (this.table) {
      const limits = new DynamoRateLimitStore(this.table.doc, LOCAL_TABLE);
      await Promise.all(PROVIDERS.map((p) => limits.releaseAll(p)));
    }
    return { runs: stale.length, approvals: pending.length, holds, deliveries };
  }

  /** Pending approvals and CI callbacks (no task tokens). */
  listApprovals(): Promise<PendingApproval[]> {
    return listApprovals(this.approvals);
  }

  /** What deciding needs on this runtime: the local table, task tokens and notifier (also a request's thread). */
  get decideDeps(): DecideDeps {
    return { approvals: this.approvals, callbacks: this.callbacks, notifier: this.notifier, threads: this.notifier };
  }

  /** Decides an approval as `actor` (see `decideApproval`); `output` is added to a CI report. */
  decide(id: string, decision: 'approve' | 'reject', actor: Actor, output: Record<string, unknown> = {}): Promise<Decision> {
    return decideApproval(id, decision, actor, this.decideDeps, output);
  }

  /**
   * The waiting Task state's override: mints a task token (the engine has none), runs the
   * RequestApproval use case with it and waits for the callback; the engine's TimeoutSeconds
   * ends the wait with States.Timeout.
   */
  private async waitForCallback(payload: unknown): Promise<unknown> {
    const input = RequestApprovalInputSchema.parse(payload);
    const taskToken = `local-${randomUUID()}`;
    const decided = this.callbacks.wait(taskToken, input.timeoutSeconds);
    await requestApproval(
      { ...input, taskToken },
      { approvals: this.approvals, notifier: this.notifier, threads: this.notifier, groups: this.options.groups ?? {} },
    );
    // A waiting execution gives its place up to the others while a person decides (hours, maybe).
    // When the decision comes it takes a place back at once, above the cap if need be: waiting
    // for one could outlast the gate's TimeoutSeconds and turn a decision in time into a timeout.
    // On a timeout `decided` never settles: the execution goes on without a place.
    this.release(input.runId);
    const result = await decided;
    this.running++;
    this.holding.add(input.runId);
    return result;
  }

  private ingressClient?: DynamoDBClient;
  /** The run records, read through the ingress client (see {@link starter}). */
  private ingressRuns?: RunStore;

  /** Stops the servers. Running executions are not awaited. */
  async stop(): Promise<void> {
    this.headReader.close();
    this.ingressClient?.destroy();
    await this.offline?.stop();
    await this.table?.stop();
  }

  /** An {@link ExecutionStarter} on this runtime: for the webhook use case in `serve` and the demo. */
  get starter(): ExecutionStarter {
    return {
      start: async (workflow, name, input) => {
        // Checked and claimed before the first await, so two deliveries at once start one execution.
        if (this.executions.has(name) || this.starting.has(name)) return { name, started: false };
        this.starting.add(name);
        try {
          const earlier = await (this.ingressRuns ?? this.runs).get(name);
          // A run interrupted by a crash starts again (its delivery's idempotency record was deleted by reconcile).
          if (earlier && !(earlier.status === 'FAILED' && earlier.error?.startsWith(INTERRUPTED))) return { name, started: false };
          void this.startExecution(workflow, name, input as ExecutionInput);
          return { name, started: true };
        } finally {
          this.starting.delete(name);
        }
      },
      status: async (_workflow, name) => {
        const running = this.executions.get(name);
        if (!running) return (await (this.ingressRuns ?? this.runs).get(name))?.status;
        const done = await Promise.race([running, Promise.resolve(undefined)]);
        return done?.status ?? 'RUNNING';
      },
    };
  }

  /** Starts an execution and returns its promise (also kept in {@link executions}). */
  startExecution(workflow: string, name: string, input: ExecutionInput): Promise<ExecutionResult> {
    const p = this.execute(workflow, name, input);
    this.executions.set(name, p);
    return p;
  }

  private emit(e: ProgressEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** Head files of the local repository through one `git cat-file --batch` (a process per file cost the event loop 10–30 ms each). */
  private readonly headReader: GitBatchReader;
  /** The local repository's changes (it keeps the last diffs it listed). */
  private readonly git: BatchedGitChangeSource;

  /** The local repository, or a forge's own source for the forges `changeSources` names. */
  private changeSource(): ChangeSource {
    const { git } = this;
    const of = (change: Change) => this.options.changeSources?.[forgeOf(change)] ?? git;
    return {
      listChangedFiles: (change) => of(change).listChangedFiles(change),
      readHeadFile: (change, path) => of(change).readHeadFile(change, path),
    };
  }

  /** Every forge's publisher locally: files in the artifact folder (comment, review, check run, SARIF). */
  private forges(): ForgeTable {
    const files = everyForge(
      new FilePublisher(this.artifacts, this.options.onComment, this.options.onReview, this.options.onSarif, this.options.repoPath),
    );
    return { ...files, ...this.options.forges };
  }

  /** Channel posts locally: printed and written to the Slack outbox like every local Slack message. */
  private channels(): ChannelNotifier {
    return {
      post: async (channel, text) => {
        const where = await this.notifier.start(channel, text);
        if (!where) throw new Error(`the local Slack outbox did not take the post to ${channel}`);
        return where;
      },
    };
  }

  private handlers(def: AslDefinition): Record<string, (input: unknown) => Promise<unknown>> {
    const deps = {
      changes: this.changeSource(),
      artifacts: this.artifacts,
      gateway: this.gateway,
      budgets: this.gatewayConfig.budgets,
      runs: this.runs,
      forges: this.forges(),
      threads: this.notifier,
      channels: this.channels(),
      defaultChannel: this.options.slackChannel ?? '#default',
    };
    const useCases: Record<TaskKind, (payload: unknown) => Promise<unknown>> = {
      loadContext: (p) => loadContext(p, deps),
      // Tools: breakers in the local table beside the models'; the built-in read_file reads the local repository.
      invokeAgent: (p) =>
        invokeAgent(p, {
          ...deps,
          breaker: toolBreaker(this.breakers, this.gatewayConfig),
          readHeadFile: (change, path) => deps.changes.readHeadFile(change, path),
          ...(this.options.mcpEnv ? { mcpEnv: this.options.mcpEnv } : {}),
          // HTTP MCP servers' headers (credentials) locally: AGENTFLOW_MCP_HEADERS, the mcp secret's JSON.
          mcpHeaders: mcpHeadersSource(async () => process.env[MCP_HEADERS_ENV], MCP_HEADERS_ENV),
        }),
      aggregate: (p) => aggregate(p, deps),
      publish: (p) => publish(p, deps),
      requestApproval: (p) => (isExpireAction(p) ? expireApproval(p, this.decideDeps) : this.waitForCallback(p)),
    };
    const out: Record<string, (input: unknown) => Promise<unknown>> = {};
    for (const [name, state] of taskStates(def)) {
      const kind = taskKindOf(state);
      if (!kind) throw new Error(`Task state "${name}" calls no known function; the local runtime cannot run it`);
      const payload = (input: unknown) => (input as { Payload: unknown }).Payload;
      // lambda:invoke without payloadResponseOnly: the service result is { Payload }; a waiting
      // task's result is the callback's output itself.
      out[name] =
        state.Resource === WAIT_FOR_TASK_TOKEN
          ? (input) => useCases[kind](payload(input))
          : async (input) => ({ Payload: await useCases[kind](payload(input)) });
    }
    return out;
  }

  /** Workflows whose definition the engine has validated (validating on every run cost a third of a local run's CPU). */
  private readonly validated = new Set<string>();

  /** Validates every workflow's definition now (a server does this before it listens, off the request path). */
  validateAll(): void {
    for (const [workflow, def] of this.definitions) if (!this.validated.has(workflow)) this.stateMachine(workflow, def);
  }

  /** A state machine for one execution; the definition is validated on its workflow's first run only. */
  private stateMachine(workflow: string, def: AslDefinition): StateMachine {
    const definition = def as unknown as StateMachineDefinition;
    if (!this.validated.has(workflow)) {
      // Throws on an invalid definition, as before.
      const checked = new StateMachine(definition, { validationOptions: { checkArn: false } });
      this.validated.add(workflow);
      return checked;
    }
    return new StateMachine(definition, { validationOptions: { noValidate: true } });
  }

  /**
   * Runs one execution of `workflow` to the end.
   * @throws Error when the workflow is unknown
   */
  async execute(workflow: string, name: string, input: ExecutionInput): Promise<ExecutionResult> {
    const def = this.definitions.get(workflow);
    if (!def) throw new Error(`unknown workflow "${workflow}" (known: ${[...this.definitions.keys()].join(', ')})`);
    const queued = Date.now();
    await this.runs.put({
      runId: name,
      workflow,
      status: 'RUNNING',
      ...runSubject(input),
      startedAt: new Date(queued).toISOString(),
      costUsd: 0,
      findings: 0,
      agents: [],
    });
    await this.turn();
    this.holding.add(name);
    try {
      return await this.run(workflow, name, input, def, queued);
    } finally {
      this.release(name);
    }
  }

  /** Places taken now by running executions (an execution waiting for a decision holds none). */
  get placesTaken(): number {
    return this.running;
  }

  /** Executions holding a place now (one each at most). */
  private readonly holding = new Set<string>();

  /** Gives up `execution`'s place, if it holds one (idempotent). */
  private release(execution: string): void {
    if (this.holding.delete(execution)) this.leave();
  }

  /** Gives a place up: the next waiting start runs. */
  private leave(): void {
    // Above the cap (a decision resumed an execution at once), the place is not passed on.
    if (this.running > Math.max(1, this.options.maxConcurrentRuns ?? DEFAULT_MAX_CONCURRENT_RUNS)) {
      this.running--;
      return;
    }
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }

  /** Waits for a free place among the executions that run at once (FIFO). */
  private async turn(): Promise<void> {
    const max = Math.max(1, this.options.maxConcurrentRuns ?? DEFAULT_MAX_CONCURRENT_RUNS);
    if (this.running < max) this.running++;
    // A leaving execution hands its place straight to the first waiting one (the count stays).
    else await new Promise<void>((go) => this.waiting.push(go));
  }

  private async run(workflow: string, name: string, input: ExecutionInput, def: AslDefinition, queued: number): Promise<ExecutionResult> {
    const started = queued;
    const handlers = this.handlers(def);
    const retryDelay = this.options.retryDelayMs ?? 100;
    const sm = this.stateMachine(workflow, def);
    const exec = sm.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: handlers as never,
        retryIntervalOverrides: Object.fromEntries(Object.keys(handlers).map((n) => [n, retryDelay])),
      },
      // The engine has no task tokens: `$$.Task.Token` resolves to this placeholder and the waiting
      // task's override mints a real one per request.
      context: {
        Execution: { Name: name, Input: input as never, StartTime: new Date(started).toISOString() },
        Task: { Token: 'local' },
      } as never,
    });
    let transitions = 0;
    const progress = new ProgressTracker(name, { agentOf, describe: describeOutput });
    const logs = (async () => {
      for await (const ev of exec.eventLogs) {
        if (ev.type === 'StateEntered') transitions++;
        for (const e of progress.push(ev)) this.emit(e);
      }
      for (const e of progress.flush()) this.emit(e);
    })();
    let result: ExecutionResult;
    try {
      const output = await exec.result;
      result = { name, workflow, status: 'SUCCEEDED', output, transitions, durationMs: Date.now() - started };
    } catch (e) {
      const cause = (e as { cause?: { name?: string; message?: string } }).cause;
      const error = cause?.name ? `${cause.name}: ${cause.message ?? ''}` : (e as Error).message;
      result = { name, workflow, status: 'FAILED', output: null, error, transitions, durationMs: Date.now() - started };
      // As the cloud's ExecutionStatus function does on the status-change event: record the end
      // (unless the machine did), expire the run's pending approvals, tell the pull request.
      const timedOut = (e as Error).name === 'ExecutionTimeoutError';
      await executionEnded(
        {
          runId: name,
          workflow,
          change: input.change,
          request: input.request,
          status: timedOut ? 'TIMED_OUT' : 'FAILED',
          startedAt: started,
          stoppedAt: Date.now(),
          error: timedOut ? 'States.Timeout' : (cause?.name ?? (e as Error).name),
          cause: cause?.message ?? (e as Error).message,
        },
        {
          runs: this.runs,
          approvals: this.approvals,
          notifier: this.notifier,
          forges: this.forges(),
          threads: this.notifier,
        },
      );
    }
    await logs.catch(() => undefined);
    result.transitions = transitions;
    return result;
  }
}

/** Whether a delivery's stored result (`{ executions: [{ name }] }`, see github-delivery) started one of `executions`. */
function startedOneOf(result: JsonValue, executions: ReadonlySet<string>): boolean {
  const list = (result as { executions?: unknown } | null)?.executions;
  return Array.isArray(list) && list.some((e) => typeof e?.name === 'string' && executions.has(e.name));
}

function agentOf(input: unknown): string | undefined {
  const a = (input as { agent?: { name?: unknown } } | null)?.agent;
  return typeof a?.name === 'string' ? a.name : undefined;
}

function describeOutput(output: unknown): string | undefined {
  const o = output as Record<string, unknown> | null;
  if (!o || typeof o !== 'object') return undefined;
  if ('findings' in o && 'costUsd' in o && 'status' in o) {
    const cost = `${o.inputTokens}+${o.outputTokens} tokens, $${Number(o.costUsd).toFixed(6)}`;
    const error = o.error as { Error?: string; Cause?: string } | undefined;
    // An agent that returned `failed` (a refused chunk, the budget) says why, like a caught error.
    if (o.status === 'failed' && error?.Error) return `${error.Error}: ${String(error.Cause ?? '').slice(0, 240)} (${cost})`;
    // A request run's agent: its route decision and tool calls, not findings.
    if (o.answerRef !== undefined || o.decision !== undefined || o.guardrail !== undefined || Number(o.toolCalls) > 0) {
      const calls = Number(o.toolCalls ?? 0);
      const stop = typeof o.stopReason === 'string' ? ` (${o.stopReason})` : '';
      return `${o.status}${stop}${typeof o.decision === 'string' ? ` → ${o.decision}` : ''}, ${calls} tool call${calls === 1 ? '' : 's'}${Number(o.toolErrors) > 0 ? ` (${o.toolErrors} failed)` : ''}, ${cost}`;
    }
    const n = Number(o.findings);
    return `${o.status}, ${n} finding${n === 1 ? '' : 's'}${Number(o.filesNotReviewed) > 0 ? `, ${o.filesNotReviewed} files not reviewed` : ''}, ${cost}`;
  }
  // The commit of the generated tests (`output.create_files`), before any gate has decided.
  const commit = (o.files as { commit?: FilesCommit } | undefined)?.commit;
  if (commit && !('report' in o) && Object.keys((o.gates as object | undefined) ?? {}).length === 0) {
    const refused =
      commit.refused.length > 0
        ? `, ${commit.refused.length} refused (${commit.refused.map((r) => `${r.path}: ${r.reason}`).join('; ')})`
        : '';
    return commit.branch
      ? `${commit.committed.length} test files committed to ${commit.branch} (${commit.sha.slice(0, 7)})${commit.url ? ` ${commit.url}` : ''}${refused}`
      : `no test file committed${commit.error ? `: ${commit.error}` : ''}${refused}`;
  }
  const ctx = o.context as { stats?: { filesChanged: number; linesChanged: number; redactions: number } } | undefined;
  if (ctx?.stats && !('report' in o)) {
    return `${ctx.stats.filesChanged} files, ${ctx.stats.linesChanged} changed lines, ${ctx.stats.redactions} secrets redacted`;
  }
  const summary = (o.report as { summary?: RunSummary } | undefined)?.summary;
  if (summary?.phases && !('published' in o))
    return `${summary.answerRef ? 'answered' : 'no answer'}, ${summary.toolCalls ?? 0} tool calls, $${summary.costUsd.toFixed(6)}`;
  if (summary && !('published' in o)) return `${summary.findings} findings, $${summary.costUsd.toFixed(6)}`;
  return undefined;
}

/** dynalite on 127.0.0.1 with the AgentFlow table, and a document client for it. */
export interface LocalTable {
  readonly doc: DynamoDBDocumentClient;
  readonly client: DynamoDBClient;
  readonly endpoint: string;
  /** Another client for the same table (its own middleware stack and settings; destroy it before `stop`). */
  newClient(): DynamoDBClient;
  stop(): Promise<void>;
}

/**
 * Starts dynalite on an ephemeral 127.0.0.1 port (in memory, or persisted in `path`) and creates
 * the AgentFlow table (same keys and index as the CDK table).
 */
export async function startLocalTable(path?: string): Promise<LocalTable> {
  if (path) mkdirSync(path, { recursive: true });
  // One process per data folder: a second dynalite on the same LevelDB folder crashes its process
  // ("Database is closed") at its first request, so the folder is claimed first.
  const release = path ? claimFolder(path) : () => undefined;
  const db: Server = dynalite({ ...(path ? { path } : {}), createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  try {
    await new Promise<void>((ok, fail) => {
      db.once('error', fail);
      db.listen(0, '127.0.0.1', () => ok());
    });
  } catch (e) {
    release();
    throw e;
  }
  const endpoint = `http://127.0.0.1:${(db.address() as AddressInfo).port}`;
  // This process's clients give their requests to dynalite directly (no socket, no SigV4: see
  // dynalite-handler.ts); other processes use the endpoint.
  const local = inProcessHandler(db);
  return connectLocalTable(
    endpoint,
    async () => {
      // Requests still in flight (an execution's background bookkeeping) end first; later ones fail.
      await local.close();
      await new Promise<void>((ok) => db.close(() => ok()));
      release();
    },
    { requestHandler: local.requestHandler, ...UNSIGNED, trim: withoutUnusedSteps },
  );
}

/** The owner file of a data folder: `{ pid, startedAt }` of the process that holds it. */
const OWNER_FILE = 'agentflow-owner.json';

/** Folders this process has claimed (an owner file naming our own pid is stale unless listed here: a container restarts as pid 1). */
const claimedHere = new Set<string>();

interface Owner {
  pid?: number;
  startedAt?: string;
}

/** Reads an owner file; a file being written this instant is read again before it counts as unreadable. */
function readOwner(file: string): Owner | undefined {
  for (let i = 0; i < 5; i++) {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as Owner;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  return {};
}

/**
 * Claims `dir` for this process with an owner file created exclusively (`{ pid, startedAt }`).
 * The owner file of a process that is gone (SIGKILL, power loss, a container restarted with the
 * same pid) is taken over atomically: it is renamed aside, so of two processes taking over at
 * once only one moves it, and a fresh owner's file moved by mistake is put back.
 * @returns a function that gives the folder up
 * @throws Error (one line) naming the folder and the process that holds it
 */
export function claimFolder(dir: string): () => void {
  const file = join(dir, OWNER_FILE);
  const inUse = (owner: Owner) =>
    new Error(
      `the state folder ${dirname(dir)} is in use by process ${owner.pid} (since ${owner.startedAt ?? 'unknown'}): stop it, talk to it through its API, or pass another --state-dir`,
    );
  if (claimedHere.has(dir)) throw inUse({ pid: process.pid });
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileSync(file, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }), { flag: 'wx', mode: 0o600 });
      claimedHere.add(dir);
      return () => {
        claimedHere.delete(dir);
        if (readOwner(file)?.pid === process.pid) rmSync(file, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = readOwner(file);
    if (owner === undefined) continue;
    const ours = owner.pid === process.pid;
    if (owner.pid !== undefined && !ours && processAlive(owner.pid)) throw inUse(owner);
    // Stale: move it aside; only one contender's rename succeeds.
    const aside = `${file}.${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      renameSync(file, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    const moved = readOwner(aside);
    if (moved?.pid !== owner.pid || moved?.startedAt !== owner.startedAt) {
      // A contender claimed the folder between our read and our rename: give its file back.
      try {
        linkSync(aside, file);
      } catch {
        // a third process claimed it meanwhile; it is the owner now
      }
    }
    rmSync(aside, { force: true });
  }
  throw new Error(`cannot claim the state folder ${dirname(dir)}: its owner file keeps changing`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Connects to a DynamoDB-compatible endpoint (dynalite started elsewhere, e.g. in another process)
 * and creates the AgentFlow table there. `close` runs after the client is destroyed on `stop()`.
 */
export async function connectLocalTable(
  endpoint: string,
  close: () => Promise<void> = async () => undefined,
  /** More client settings (startLocalTable: the in-process request handler), and steps to leave out of each client. */
  more: Partial<DynamoDBClientConfig> & { readonly trim?: (client: DynamoDBClient) => DynamoDBClient } = {},
): Promise<LocalTable> {
  const { trim = (c: DynamoDBClient) => c, ...config } = more;
  const newClient = () =>
    trim(new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, ...config }));
  const client = newClient();
  await createTable(client);
  return {
    doc: DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }),
    client,
    endpoint,
    newClient,
    stop: async () => {
      client.destroy();
      await close();
    },
  };
}

async function createTable(client: DynamoDBClient): Promise<void> {
  try {
    await client.send(
      new CreateTableCommand({
        TableName: LOCAL_TABLE,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: TABLE_KEYS.partitionKey, AttributeType: 'S' },
          { AttributeName: TABLE_KEYS.sortKey, AttributeType: 'S' },
          { AttributeName: TABLE_KEYS.indexPartitionKey, AttributeType: 'S' },
          { AttributeName: TABLE_KEYS.indexSortKey, AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: TABLE_KEYS.partitionKey, KeyType: 'HASH' },
          { AttributeName: TABLE_KEYS.sortKey, KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: TABLE_KEYS.runsIndex,
            KeySchema: [
              { AttributeName: TABLE_KEYS.indexPartitionKey, KeyType: 'HASH' },
              { AttributeName: TABLE_KEYS.indexSortKey, KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
      }),
    );
  } catch (e) {
    if (!(e instanceof ResourceInUseException)) throw e;
  }
  // dynalite answers CreateTable before the table is ACTIVE (a timer, slower under load): wait for it.
  for (let i = 0; i < 200; i++) {
    const d = await client.send(new DescribeTableCommand({ TableName: LOCAL_TABLE }));
    if (d.Table?.TableStatus === 'ACTIVE' && d.Table.GlobalSecondaryIndexes?.every((g) => g.IndexStatus === 'ACTIVE')) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the local DynamoDB table did not become ACTIVE');
}
