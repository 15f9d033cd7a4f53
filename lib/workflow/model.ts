import type { Provider, Severity, StructuredOutput } from './schema.js';

/** Token prices of a model in USD per million tokens. */
export interface ModelPrice {
  readonly input: number;
  readonly output: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
}

/** A model reference resolved against `workflows/models.yml`. */
export interface ResolvedModel {
  readonly provider: Provider;
  /** The alias in models.yml, e.g. `claude-sonnet`. */
  readonly alias: string;
  /** The provider's model id (a Bedrock inference profile id or an OpenAI model name). */
  readonly modelId: string;
  /** Tokens the model accepts in one request (prompt + answer). */
  readonly contextWindow: number;
  /** The most tokens the model writes in one answer (`max_output` in models.yml). */
  readonly maxOutput?: number;
  /** `openai-compatible` only: `structured_output` in models.yml (absent: `prompt`). */
  readonly structuredOutput?: StructuredOutput;
  /** `null` when models.yml gives no price: the gateway then never calls the model. */
  readonly price: ModelPrice | null;
}

/**
 * Include / exclude patterns: a value passes when it matches an `include` entry (or `include` is
 * empty) and no `exclude` entry.
 */
export interface IncludeExclude {
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

/**
 * One agent as it runs in a phase: its catalog entry merged with the workflow's overrides.
 * This is the Map state's item, so it is kept small (the prompt is a few KB at most).
 */
export interface ResolvedAgent {
  readonly name: string;
  readonly model: ResolvedModel;
  readonly fallback: readonly ResolvedModel[];
  /** Upper bound on answer tokens per call. */
  readonly maxTokens: number;
  readonly temperature: number;
  readonly categories: readonly string[];
  readonly tasks: readonly string[];
  readonly prompt: string;
  /** Use the gateway's response cache. */
  readonly cache: boolean;
  /** The agent's declared complexity: the tier `model: auto` starts from. */
  readonly complexity: 'simple' | 'medium' | 'complex';
  /**
   * `document`: the agent writes a Markdown document (stored as an artifact) besides its findings;
   * `verdicts`: the built-in verifier (workflow `verify:`), which checks the other agents' findings;
   * `tests`: findings and test files (`{ path, content }`), committed by `output.create_files`.
   */
  readonly output: 'findings' | 'document' | 'verdicts' | 'tests' | 'answer' | 'route' | 'guardrail';
  /** Only for the built-in verifier (`output: verdicts`): findings per call and what happens to an unconfirmed one. */
  readonly verify?: { readonly batch: number; readonly unconfirmed: 'drop' | 'downgrade' };
  /** For `model: auto`: the provider's tier models; InvokeAgent picks one by the change size. */
  readonly auto?: { readonly simple: ResolvedModel; readonly medium: ResolvedModel; readonly complex: ResolvedModel };
  /**
   * The changed files this agent reviews (globs): `include` is the workflow entry's
   * `paths.include`, else the catalog's `files` (empty: every file); `exclude` is `paths.exclude`.
   */
  readonly paths: IncludeExclude;
  /** Tool servers the agent may call (`tools:`), resolved from the workflow's `mcp_servers:`; empty: none. */
  readonly tools: readonly ToolServer[];
  /** Model calls of the tool loop at most (`max_iterations`). @default 8 */
  readonly maxIterations: number;
  /** The agent's time limit in seconds (`time_limit`). @default 300 */
  readonly timeLimitSeconds: number;
  /** Tools marked `write: true` may run: the phase comes after an approval gate, or the workflow sets `allow_write_tools`. */
  readonly allowWrite: boolean;
  /** `output: route`: the phases it may choose and the default. */
  readonly route?: { readonly choices: readonly string[]; readonly default: string };
  /** `output: guardrail`: the built-in guardrail step. */
  readonly guardrail?: GuardrailSettings;
  /** The earlier phases whose answers the agent gets as data (`reads:`); empty: every earlier phase that answered. */
  readonly reads: readonly string[];
}

/**
 * The built-in read-only tools over the change under review, offered as `agentflow__<tool>`. The
 * Lambdas' copy is `BUILTIN_TOOLS` in `lambdas/core/contracts.ts`; a test keeps the two equal.
 */
export const BUILTIN_TOOLS = ['read_file', 'search', 'list_changed_files'] as const;
/** The server name of the built-in tools. */
export const BUILTIN_TOOL_SERVER = 'agentflow';

/** A tool server of an agent (see `ToolServerSchema` in `lambdas/core/contracts.ts`, which a test ties to this). */
export interface ToolServer {
  readonly name: string;
  readonly command?: string;
  readonly args: readonly string[];
  readonly url?: string;
  readonly builtin: boolean;
  readonly allow: ReadonlyArray<{ readonly name: string; readonly write: boolean; readonly limits: readonly ToolLimit[] }>;
}

/** `limits: { <arg>: <phase>.<field> }` of an allowed tool: the argument's total over the agent's calls stays within that answer field. */
export interface ToolLimit {
  readonly arg: string;
  readonly phase: string;
  readonly field: string;
}

/** The built-in guardrail step's settings (see `GuardrailSettingsSchema` in `lambdas/core/contracts.ts`). */
export interface GuardrailSettings {
  readonly source: 'INPUT' | 'OUTPUT';
  readonly phases: readonly string[];
  readonly deniedTopics: ReadonlyArray<{ readonly name: string; readonly phrases: readonly string[] }>;
  readonly pii?: readonly string[];
  readonly piiAction: 'mask' | 'block';
  readonly promptAttack: boolean;
  readonly guardrailId?: string;
  readonly guardrailVersion?: string;
}

/** A numeric comparison from a condition such as `lines_changed: "> 100"`. */
export interface Comparison {
  readonly op: '>' | '>=' | '<' | '<=' | '==';
  readonly value: number;
}

/** A phase of agents run as one Map state. */
export interface AgentPhase {
  readonly kind: 'agents';
  readonly name: string;
  readonly dependsOn: readonly string[];
  /** `false` runs the agents one after another (MaxConcurrency 1). */
  readonly parallel: boolean;
  /** When true, a failed agent fails the run. */
  readonly required: boolean;
  readonly maxConcurrency: number;
  readonly agents: readonly ResolvedAgent[];
}

/**
 * A phase that waits on a Step Functions task token: `approval` for a person's decision in Slack
 * (or a pull-request comment), `ci` for the team's CI to report through `/webhooks/ci`.
 */
export interface GatePhase {
  readonly kind: 'approval' | 'ci';
  readonly name: string;
  readonly dependsOn: readonly string[];
  /** Slack channel of the approval message (empty for `ci`). */
  readonly channel: string;
  /** Slack user ids, `@github-user`, `@org/team` or group names of the environment config. */
  readonly approvers: readonly string[];
  /** The waiting state's TimeoutSeconds. */
  readonly timeoutSeconds: number;
  /** What a timeout means: `approve`/`reject` (for `ci`: continue/fail), or `escalate` to a second request. */
  readonly onTimeout: 'approve' | 'reject' | 'escalate';
  readonly escalate?: { readonly channel: string; readonly approvers: readonly string[]; readonly timeoutSeconds: number };
  /** `approval.when`: ask only when this holds for an earlier phase's answer data; otherwise go on without asking. */
  readonly when?: WhenCondition;
}

/**
 * `approval.when: "<phase>.<field> <op> <value>"`: a comparison on a field of the `data` an earlier
 * phase's (one) agent answered. Numbers compare with every op; strings and booleans with `==`/`!=`.
 * An absent or unreadable field asks (the gate fails safe).
 */
export interface WhenCondition {
  readonly phase: string;
  readonly field: string;
  readonly op: '>' | '>=' | '<' | '<=' | '==' | '!=';
  readonly value: number | string | boolean;
  /** As written, for the run record and the Choice state's comment. */
  readonly text: string;
}

/**
 * A phase whose one agent (`output: route`) picks the phase that runs next among `to` (compiled
 * to a Choice state on the agent's `decision`, with `default`); the others are skipped.
 */
export interface RoutePhase {
  readonly kind: 'route';
  readonly name: string;
  readonly dependsOn: readonly string[];
  readonly agent: ResolvedAgent;
  readonly to: readonly string[];
  readonly default: string;
}

/**
 * A guardrail step: the built-in guardrail agent (`output: guardrail`) checks the request (`INPUT`)
 * or an earlier answer (`OUTPUT`); a block stops the run (a Choice state), a mask goes on with the
 * masked text.
 */
export interface GuardrailPhase {
  readonly kind: 'guardrail';
  readonly name: string;
  readonly dependsOn: readonly string[];
  readonly agent: ResolvedAgent;
}

export type Phase = AgentPhase | GatePhase | RoutePhase | GuardrailPhase;
/** Every phase kind: the compiler's table of phase states is keyed by it. */
export type PhaseKind = Phase['kind'];

/** The phases that run agents in a Map state (agents, route, guardrail), with their agents. */
export function mapPhases(phases: readonly Phase[]): Array<{ phase: Phase; agents: readonly ResolvedAgent[] }> {
  const out: Array<{ phase: Phase; agents: readonly ResolvedAgent[] }> = [];
  for (const p of phases) {
    if (p.kind === 'agents') out.push({ phase: p, agents: p.agents });
    else if (p.kind === 'route' || p.kind === 'guardrail') out.push({ phase: p, agents: [p.agent] });
  }
  return out;
}

/**
 * A workflow's `context:` (see `ContextOptions` in `lambdas/core/hunks.ts`): lines of context
 * below each change (and above it without an enclosing declaration), the line count up to which a
 * file is shown whole, and whether the context starts at the enclosing declaration. `none` is
 * `{ lines: 0, wholeFileLines: 0, enclosing: false }`.
 */
export interface ContextSettings {
  readonly lines: number;
  readonly wholeFileLines: number;
  readonly enclosing: boolean;
}

/** The context of a workflow without `context:`: 20 lines, files of ≤ 150 lines whole, the enclosing declaration. */
export const DEFAULT_CONTEXT_SETTINGS: ContextSettings = { lines: 20, wholeFileLines: 150, enclosing: true };

/** `output.create_files` as the compiler uses it. */
export interface CreateFilesSettings {
  /** Globs of the repository's test folders. @default DEFAULT_TEST_PATHS */
  readonly paths: readonly string[];
  /** Commit to the pull request's own branch (refused for a fork). @default false */
  readonly pushToPullRequest: boolean;
}

/**
 * The test folders of a mobile repository, where `create_files: true` lets generated files go:
 * Xcode test targets (`AppTests/`, `*Tests.swift`), Gradle unit and instrumented test source sets
 * (`src/test/`, `src/androidTest/`) and JUnit file names.
 */
export const DEFAULT_TEST_PATHS: readonly string[] = [
  '**/*Tests/**',
  '**/*Tests.swift',
  '**/src/test/**',
  '**/src/androidTest/**',
  '**/*Test.kt',
  '**/*Test.java',
];

/** The run kinds: a `review` of a change, or the answer to a person's `request` (the contracts' `RUN_KINDS`; a test ties them). */
export const RUN_KINDS = ['review', 'request'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

/** The normalised, checked workflow the compiler consumes. */
export interface Workflow {
  /** The file name without `.yml`; names the state machine. */
  readonly id: string;
  /** `review` (a change: pull request, merge request, two refs) or `request` (a person's request: trigger `request`). */
  readonly kind: RunKind;
  readonly name: string;
  readonly description: string;
  readonly trigger: {
    /** `pull_request.<action>` or `manual`. */
    readonly events: readonly string[];
    readonly filesChanged?: readonly string[];
    readonly linesChanged?: Comparison;
    readonly testCoverage?: Comparison;
    /** Who may start a manual run (Slack user ids or group names); empty: anyone in the workspace. */
    readonly runBy: readonly string[];
    /** Skip draft pull requests (`skip_drafts`, default true); `pull_request.ready_for_review` starts them. */
    readonly skipDrafts: boolean;
    /** Skip pull requests whose author is a bot (`skip_bots`, default true). */
    readonly skipBots: boolean;
    /** Author logins or globs (case-insensitive); a name also matches the login with its `[bot]` suffix. */
    readonly authors?: IncludeExclude;
    /** Label names (case-insensitive): `include` needs one of them on the PR, `exclude` skips a PR with any. */
    readonly labels?: IncludeExclude;
    /** Base branch globs (`main`, `release/**`). */
    readonly branches?: IncludeExclude;
  };
  /** The changed files the review plan keeps (`paths:`); absent: every file. */
  readonly paths?: IncludeExclude;
  /** What the prompts show of each file at the head commit around its hunks (`context:`). @default DEFAULT_CONTEXT_SETTINGS */
  readonly context?: ContextSettings;
  readonly budget: { readonly maxUsdPerRun?: number; readonly project?: string };
  readonly phases: readonly Phase[];
  readonly output: {
    readonly review: boolean;
    /** Channel the run's summary is posted in (`output.slack`); `default` (`slack: true`): the environment's `slackChannel`. */
    readonly slack?: string;
    /** Upload the findings of {@link securityAgents} to GitHub code scanning as SARIF (`output.code_scanning`). @default false */
    readonly codeScanning: boolean;
    readonly databaseLog: boolean;
    /**
     * `output.create_files`: commit the test files of the `tests` agents (only under `paths`, the
     * repository's test folders) to a branch with a draft pull request, or to the pull request's
     * branch with `pushToPullRequest`. Absent: files are never committed.
     */
    readonly createFiles?: CreateFilesSettings;
    /** Inline review comments: at most `maxComments`, none below `minSeverity` (`output.max_inline_comments`, `output.inline_min_severity`). */
    readonly inline: { readonly maxComments: number; readonly minSeverity: Severity };
    /** Findings at or above this severity fail the check run (`output.fail_on`); `none`: never on findings. */
    readonly failOn: Severity | 'none';
    /** Request workflows: the phases whose answer is sent, in order (the first that ran); empty for a review. */
    readonly answer: readonly string[];
  };
  /** Channel to notify when the run fails (from the older `fallback: - notify:` rule). */
  readonly notifyOnFailure?: string;
}

/**
 * A workflow as the webhook sees it (`AGENTFLOW_WORKFLOWS` in the cloud, the ingress routes
 * locally): the fields of `WorkflowTrigger` in `lambdas/core/triggers.ts`, which checks them
 * against each pull_request delivery.
 */
export interface WebhookTrigger {
  readonly id: string;
  readonly events: readonly string[];
  readonly linesChanged?: Comparison;
  readonly runBy?: readonly string[];
  readonly skipDrafts: boolean;
  readonly skipBots: boolean;
  readonly authors?: IncludeExclude;
  readonly labels?: IncludeExclude;
  readonly branches?: IncludeExclude;
}

/** The trigger of `workflow` as the webhook checks it; `runBy` only when someone is named. */
export function webhookTrigger(workflow: Workflow): WebhookTrigger {
  const t = workflow.trigger;
  return {
    id: workflow.id,
    events: t.events,
    ...(t.linesChanged ? { linesChanged: t.linesChanged } : {}),
    ...(t.runBy.length > 0 ? { runBy: t.runBy } : {}),
    skipDrafts: t.skipDrafts,
    skipBots: t.skipBots,
    ...(t.authors ? { authors: t.authors } : {}),
    ...(t.labels ? { labels: t.labels } : {}),
    ...(t.branches ? { branches: t.branches } : {}),
  };
}

/** The agent catalog and the model catalog a workflow is checked against. */
export interface Catalog {
  readonly agents: ReadonlyMap<string, import('./schema.js').AgentSpec>;
  readonly models: import('./schema.js').ModelCatalog;
}

/** The phases of a workflow that run agents (gates left out). */
export const agentPhases = (wf: Pick<Workflow, 'phases'>): AgentPhase[] => wf.phases.filter((p): p is AgentPhase => p.kind === 'agents');

/** The phases whose agents write test files (`output: tests`): `output.create_files` commits after them. */
export const testPhases = (phases: readonly Phase[]): AgentPhase[] =>
  phases.filter((p): p is AgentPhase => p.kind === 'agents' && p.agents.some((a) => a.output === 'tests'));

/** The category whose agents' findings `output.code_scanning` uploads (and `agentflow run --sarif` writes). */
export const SECURITY_CATEGORY = 'security';

/**
 * The workflow's security agents: those whose catalog `categories` include `security` (in
 * workflows/agents: `security`). Their findings — a finding merged from several agents counts when
 * one of them is a security agent — are the code scanning analysis.
 */
export const securityAgents = (wf: Pick<Workflow, 'phases'>): string[] => [
  ...new Set(
    agentPhases(wf)
      .flatMap((p) => p.agents)
      .filter((a) => a.output !== 'verdicts' && a.categories.includes(SECURITY_CATEGORY))
      .map((a) => a.name),
  ),
];
