import { z } from 'zod';
import { InvalidInputError } from './errors.js';
import { EXCLUSION_REASONS } from './plan-reasons.js';

/**
 * Task contracts: the small JSON that travels through the state machine (DESIGN §7). Large
 * things (diffs, findings, reports) travel as artifact references (`ArtifactRef`).
 */

/**
 * Providers AgentFlow calls: `bedrock` is Claude through the Bedrock Converse API, `openai` the
 * OpenAI chat completions API, `openai-compatible` any server speaking it at a configured base URL
 * (Ollama, vLLM, a corporate gateway).
 */
export const PROVIDERS = ['bedrock', 'openai', 'openai-compatible'] as const;
export type Provider = (typeof PROVIDERS)[number];

export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * How an `openai-compatible` model can be held to an answer format (`structured_output` in
 * models.yml): `json_schema` (`response_format` with a strict JSON Schema), `json_object` (JSON mode:
 * valid JSON, shape from the prompt) or `prompt` (the prompt alone). Bedrock (a forced tool) and
 * OpenAI (strict `json_schema`) always enforce the format.
 */
export const STRUCTURED_OUTPUTS = ['json_schema', 'json_object', 'prompt'] as const;
export type StructuredOutput = (typeof STRUCTURED_OUTPUTS)[number];

/**
 * Forges AgentFlow publishes reviews on. Every table keyed by {@link Forge} (publishers, change
 * sources) must name each one, so a new forge does not compile until every output is wired.
 */
export const FORGES = ['github', 'gitlab'] as const;
export type Forge = (typeof FORGES)[number];

/** A key in the artifact store (an S3 key, or a path under the local state folder). */
export const ArtifactRef = z.string().min(1).max(1024);

/** The pull request a run reviews, taken from the webhook event (ids and SHAs only). */
export const ChangeSchema = z.strictObject({
  /** The forge hosting the repository. Absent in executions started before it existed: GitHub. */
  forge: z.enum(FORGES).optional(),
  repository: z.string().min(1).describe('owner/name'),
  number: z.number().int().nonnegative(),
  title: z.string().default(''),
  author: z.string().default(''),
  url: z.string().default(''),
  action: z.string().default('opened'),
  baseSha: z.string().min(1),
  headSha: z.string().min(1),
  /**
   * GitLab's `diff_refs.start_sha`: the target branch's tip when the merge request's diff was
   * computed (a diff discussion's `position` names base, start and head). Absent on GitHub and
   * locally: the base SHA stands for it.
   */
  startSha: z.string().min(1).optional(),
  baseRef: z.string().default(''),
  headRef: z.string().default(''),
  /** Test coverage in percent when a source reported it (used by `test_coverage` conditions). */
  testCoverage: z.number().min(0).max(100).optional(),
  /**
   * Review every file again (`/agentflow review --full`), not only those whose diff changed since
   * the last review (see `incremental.ts`). @default false
   */
  fullReview: z.boolean().optional(),
  /**
   * The pull or merge request comes from a fork (GitHub: `head.repo.full_name !== base.repo.full_name`;
   * GitLab: `source_project_id !== target_project_id`): generated files are not committed (see
   * `forkCommitRefusal`). Absent: not known, treated as a fork.
   */
  fork: z.boolean().optional(),
  /** The Slack message a manual run was started from (`/agentflow run`): the outcome is posted in its thread. */
  thread: z.strictObject({ channel: z.string().min(1), ts: z.string().min(1) }).optional(),
});
export type Change = z.infer<typeof ChangeSchema>;

/** The forge of `change` (GitHub when the change predates the field). */
export const forgeOf = (change: Pick<Change, 'forge'>): Forge => change.forge ?? 'github';

/**
 * People's verdicts on AgentFlow's inline comments, per agent and category, new since the last
 * run of the pull request: 👍 (accepted), 👎 and dismissals (rejected). See `applyFeedback`.
 */
export const FeedbackTalliesSchema = z.array(
  z.strictObject({
    agent: z.string(),
    category: z.string(),
    accepted: z.number().int().nonnegative(),
    rejected: z.number().int().nonnegative(),
    dismissed: z.number().int().nonnegative(),
  }),
);
export type FeedbackTallies = z.infer<typeof FeedbackTalliesSchema>;

/** Longest request text a run takes, in characters (Slack's slash command text is at most 4,000). */
export const MAX_REQUEST_CHARS = 4_000;

/**
 * A person's request a workflow with `trigger: request` answers (issue 15): `/agentflow ask` in
 * Slack, `agentflow run <workflow> --request`. The text is outside data: agents get it fenced as
 * data, never as instructions.
 */
export const RequestSchema = z.strictObject({
  text: z.string().min(1).max(MAX_REQUEST_CHARS),
  /**
   * Who asked, as the tools see them (passed to MCP servers, which decide what that person may
   * do): `slack:<user id>` or `local:<user>`.
   */
  requester: z.string().min(1).max(200),
  /** The Slack thread the answer goes to (the message `/agentflow ask` posted). Absent: the answer is the run record's. */
  thread: z.strictObject({ channel: z.string().min(1), ts: z.string().min(1) }).optional(),
});
export type Request = z.infer<typeof RequestSchema>;

/**
 * The run kinds (issue 15): a `review` of a pull or merge request (`change`), or an answer to a
 * person's `request`. Each compiled state machine is of one kind (its trigger decides).
 */
export const RUN_KINDS = ['review', 'request'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

/** Execution input of every compiled state machine: a review's carries `change`, a request's `request`. */
export const ExecutionInputSchema = z
  .strictObject({
    runId: z.string().min(1).max(80),
    workflow: z.string().min(1),
    change: ChangeSchema.optional(),
    request: RequestSchema.optional(),
    /** Set by the webhook when the trigger filters the pull request out: the run records SKIPPED with this reason. */
    skip: z.string().optional(),
  })
  .refine((i) => (i.change ? 1 : 0) + (i.request ? 1 : 0) === 1, {
    message: 'give change (a review) or request (a request run), not both',
  });
export type ExecutionInput = z.infer<typeof ExecutionInputSchema>;
/** The execution input of a `review` run (its `change` is given). */
export type ReviewInput = ExecutionInput & { change: Change };

const ModelRef = z.strictObject({
  provider: z.enum(PROVIDERS),
  alias: z.string(),
  modelId: z.string(),
  contextWindow: z.number().int().positive(),
  /** The most tokens the model writes in one answer (`max_output` in models.yml). */
  maxOutput: z.number().int().positive().optional(),
  /** `openai-compatible` only: how the model is held to an answer format (`structured_output` in models.yml). @default 'prompt' */
  structuredOutput: z.enum(STRUCTURED_OUTPUTS).optional(),
  /** USD per million tokens; `null` when models.yml has no price (the gateway then refuses to call it). */
  price: z
    .strictObject({
      input: z.number().nonnegative(),
      output: z.number().nonnegative(),
      cacheRead: z.number().nonnegative(),
      cacheWrite: z.number().nonnegative(),
    })
    .nullable(),
});
export type ModelRef = z.infer<typeof ModelRef>;

export const TIERS = ['simple', 'medium', 'complex'] as const;
export type Tier = (typeof TIERS)[number];

/** Include / exclude globs (a glob without a slash matches the file name in any folder, as in .gitignore). */
export const PathFilterSchema = z.strictObject({
  include: z.array(z.string()).default([]),
  exclude: z.array(z.string()).default([]),
});
export type PathFilter = z.infer<typeof PathFilterSchema>;

/**
 * What an agent answers with: `findings` (a review), `document` (findings and a Markdown document),
 * `verdicts` (the built-in verifier: whether each earlier finding holds, see `lambdas/core/verify.ts`),
 * `tests` (findings and generated test files, committed by `output.create_files`, see `generated-files.ts`).
 */
export const AGENT_OUTPUTS = ['findings', 'document', 'verdicts', 'tests', 'answer', 'route', 'guardrail'] as const;
export type AgentOutput = (typeof AGENT_OUTPUTS)[number];

/** One tool of an MCP server an agent may call (`allow:` in the workflow): its name there, and whether it changes something. */
export const AllowedToolSchema = z.strictObject({
  name: z.string().min(1).max(64),
  write: z.boolean().default(false),
  /**
   * `limits:` — a numeric argument of the tool (`arg`), added up over the agent's calls, may not
   * pass the number an earlier phase's answer gave (`phase`'s `data.<field>`): e.g. a refund's
   * `amount_usd` up to what the billing agent proposed and the gate compared. A call over it, or
   * without a number, is refused.
   */
  limits: z.array(z.strictObject({ arg: z.string().min(1), phase: z.string().min(1), field: z.string().min(1) })).optional(),
});

/**
 * The built-in, read-only tools over the change under review (`server: agentflow`): read a file at
 * the head commit, search the changed files, list the changed files.
 */
export const BUILTIN_TOOLS = ['read_file', 'search', 'list_changed_files'] as const;
export type BuiltinTool = (typeof BUILTIN_TOOLS)[number];
/** The server name the built-in tools are offered under (`agentflow__read_file`). */
export const BUILTIN_TOOL_SERVER = 'agentflow';

/**
 * A tool server of an agent (`tools:`), as the compiler resolved it from the workflow's
 * `mcp_servers:`: an MCP server over stdio (`command`) or streamable HTTP (`url`), or the
 * built-in tools (`builtin`), with the tools the workflow allows.
 */
export const ToolServerSchema = z.strictObject({
  /** Letters, digits, `_` and `-`; tools are offered as `<name>__<tool>`. */
  name: z.string().regex(/^[A-Za-z0-9-]+(_[A-Za-z0-9-]+)*$/),
  command: z.string().min(1).optional(),
  args: z.array(z.string()).default([]),
  url: z.string().url().optional(),
  builtin: z.boolean().default(false),
  allow: z.array(AllowedToolSchema).min(1),
});
export type ToolServer = z.infer<typeof ToolServerSchema>;

/** A numeric or string comparison on a field of an earlier phase's structured answer (`approval.when`). */
export const WHEN_OPS = ['>', '>=', '<', '<=', '==', '!='] as const;
export type WhenOp = (typeof WHEN_OPS)[number];

/**
 * The built-in guardrail step (`output: guardrail`): which text it checks (the request, or the
 * answer of the first of `phases` that ran), in which direction, with the local rules offline and
 * Bedrock Guardrails (`guardrailId`/`guardrailVersion`) in the cloud; `action` says what a PII
 * match does (`mask` goes on with the masked text, `block` stops the run).
 */
export const GuardrailSettingsSchema = z.strictObject({
  source: z.enum(['INPUT', 'OUTPUT']),
  /** Empty: the request; else the answers of these phases (the first that ran). */
  phases: z.array(z.string()).default([]),
  deniedTopics: z.array(z.strictObject({ name: z.string().min(1), phrases: z.array(z.string().min(1)).min(1) })).default([]),
  pii: z.array(z.string()).optional(),
  piiAction: z.enum(['mask', 'block']).default('mask'),
  promptAttack: z.boolean().default(true),
  /** Bedrock Guardrails in the cloud (the environment's guardrail when absent); the local rules otherwise. */
  guardrailId: z.string().optional(),
  guardrailVersion: z.string().optional(),
});
export type GuardrailSettings = z.infer<typeof GuardrailSettingsSchema>;

/** A Map item: one agent as the compiler resolved it (prices in USD per million tokens). */
export const AgentItemSchema = z.strictObject({
  name: z.string(),
  model: ModelRef,
  fallback: z.array(ModelRef),
  maxTokens: z.number().int().positive(),
  temperature: z.number().min(0).max(1),
  categories: z.array(z.string()),
  tasks: z.array(z.string()),
  prompt: z.string(),
  /** Use the gateway's response cache. */
  cache: z.boolean().default(true),
  /** The agent's declared complexity (routing input for `model: auto`). */
  complexity: z.enum(TIERS).default('medium'),
  output: z.enum(AGENT_OUTPUTS).default('findings'),
  /** Only for the built-in verifier (`output: verdicts`): findings per call and what happens to an unconfirmed one. */
  verify: z.strictObject({ batch: z.number().int().positive(), unconfirmed: z.enum(['drop', 'downgrade']) }).optional(),
  /** Set for `model: auto`: the tier models to pick from by the change size (see `routeModel`). */
  auto: z.strictObject({ simple: ModelRef, medium: ModelRef, complex: ModelRef }).optional(),
  /**
   * Which changed files this agent reviews: `include` globs (the catalog's `files:` and the agent's
   * `paths.include`; empty = every file the plan keeps) and `exclude` globs (`paths.exclude`).
   * A glob without a slash matches the file name in any folder.
   */
  paths: PathFilterSchema.default({ include: [], exclude: [] }),
  /** Tool servers the agent may call (`tools:`); empty: the agent answers without tools. */
  tools: z.array(ToolServerSchema).default([]),
  /** Model calls of the agent's tool loop at most (`max_iterations`). @default 8 */
  maxIterations: z.number().int().min(1).max(50).default(8),
  /** The agent's time limit in seconds (`time_limit`), within the task's 900 s. @default 300 */
  timeLimitSeconds: z.number().int().min(10).max(870).default(300),
  /**
   * Tools marked `write: true` may be offered and called: the phase comes after an approval gate
   * or the workflow sets `allow_write_tools`. Never for a change from a fork (InvokeAgent checks).
   */
  allowWrite: z.boolean().default(false),
  /** `output: route`: the phases the agent may choose (its answer's `route`) and the default. */
  route: z.strictObject({ choices: z.array(z.string()).min(1), default: z.string() }).optional(),
  /** `output: guardrail`: the built-in guardrail step's settings. */
  guardrail: GuardrailSettingsSchema.optional(),
  /**
   * `output: answer` / `route`: the answers of these earlier phases are given to the agent as data
   * (`reads:`; default every earlier phase that wrote an answer).
   */
  reads: z.array(z.string()).default([]),
});
export type AgentItem = z.infer<typeof AgentItemSchema>;

/** Change statistics LoadContext returns; Choice states test these fields. */
export const ContextStatsSchema = z.strictObject({
  filesChanged: z.number().int().nonnegative(),
  additions: z.number().int().nonnegative(),
  deletions: z.number().int().nonnegative(),
  linesChanged: z.number().int().nonnegative(),
  matchedFiles: z.number().int().nonnegative(),
  redactions: z.number().int().nonnegative(),
  /** Tokens of the reviewed files' diffs as the prompts show them, context included (o200k tokenizer; see `lambdas/core/tokenizer.ts`). */
  estimatedTokens: z.number().int().nonnegative(),
  /** Changed files the review plan excludes (generated, vendored, lock, translation, binary, …). */
  filesExcluded: z.number().int().nonnegative().default(0),
  testCoverage: z.number().optional(),
});
export type ContextStats = z.infer<typeof ContextStatsSchema>;

/** Context around each hunk in the prompts (the workflow's `context:`; `none` is all zeros and false). */
export const ContextSettingsSchema = z.strictObject({
  /** Lines below each change, and above it when no enclosing declaration is found. */
  lines: z.number().int().nonnegative(),
  /** A head file of at most this many lines is shown whole; 0: never. */
  wholeFileLines: z.number().int().nonnegative(),
  /** Start the context at the declaration enclosing the change. */
  enclosing: z.boolean(),
});

export const LoadContextInputSchema = z.strictObject({
  runId: z.string(),
  workflow: z.string(),
  change: ChangeSchema,
  /** Globs of the workflow's `files_changed` condition; `matchedFiles` counts files matching any. */
  filesChanged: z.array(z.string()).default([]),
  /** Read the head commit's test coverage (the workflow has a `test_coverage` condition). */
  coverage: z.boolean().default(false),
  /** The workflow's `paths:` (include / exclude globs over the changed files). */
  paths: PathFilterSchema.default({ include: [], exclude: [] }),
  /** Every agent of the workflow's agent phases, for the review plan. */
  agents: z.array(z.strictObject({ phase: z.string(), agent: AgentItemSchema })).default([]),
  /**
   * The workflow's `context:`: how much of each file at the head commit the prompts show around
   * its hunks (see `ContextOptions` in `hunks.ts`). @default 20 lines, files of ≤ 150 lines whole,
   * the enclosing declaration
   */
  context: ContextSettingsSchema.default({ lines: 20, wholeFileLines: 150, enclosing: true }),
});
export type LoadContextInput = z.infer<typeof LoadContextInputSchema>;
export interface LoadContextOutput {
  contextRef: string;
  stats: ContextStats;
}

/** One changed file in the stored context. `patch` is the unified diff hunk text, redacted. */
export const ChangedFileSchema = z.strictObject({
  path: z.string(),
  status: z.enum(['added', 'modified', 'removed', 'renamed', 'copied', 'changed', 'unchanged']),
  additions: z.number().int().nonnegative(),
  deletions: z.number().int().nonnegative(),
  patch: z.string(),
  /**
   * The patch with the context the prompts show: `patch` widened with unchanged lines of the file
   * at the head commit (redacted; see `widenPatch` in `hunks.ts`). Absent: the prompts show `patch`.
   */
  shown: z.string().optional(),
  previousPath: z.string().optional(),
  binary: z.boolean().default(false),
});
export type ChangedFile = z.infer<typeof ChangedFileSchema>;

/** The context artifact: the change, redacted, as every agent of the run sees it. */
export const ExclusionSchema = z.strictObject({ path: z.string(), reason: z.enum(EXCLUSION_REASONS) });

/** One agent's part of the review plan (see `lambdas/core/plan.ts`). USD amounts are worst cases. */
export const AgentPlanSchema = z.strictObject({
  name: z.string(),
  phase: z.string(),
  model: z.string(),
  files: z.array(z.number().int().nonnegative()),
  chunkTokens: z.number().int().positive(),
  chunks: z.number().int().nonnegative(),
  maxTokens: z.number().int().positive(),
  needUsd: z.number().nonnegative(),
  firstChunkUsd: z.number().nonnegative(),
});

/** The review plan every agent follows (see `buildPlan`). */
export const ReviewPlanSchema = z.strictObject({
  excluded: z.array(ExclusionSchema),
  agents: z.array(AgentPlanSchema),
});
export type AgentPlan = z.infer<typeof AgentPlanSchema>;
export type ReviewPlan = z.infer<typeof ReviewPlanSchema>;

export const ContextArtifactSchema = z.strictObject({
  change: ChangeSchema,
  files: z.array(ChangedFileSchema),
  stats: ContextStatsSchema,
  /** Absent in contexts written before the review plan existed: every agent then reviews every file. */
  plan: ReviewPlanSchema.optional(),
  /**
   * An incremental re-review (see `incremental.ts`): the last review's head commit, the files whose
   * diff is as it saw it (not reviewed again) and that review's state as this run read it.
   * Absent: a full review.
   */
  incremental: z
    .strictObject({
      since: z.string().min(1),
      unchanged: z.array(z.string()),
      previousRef: ArtifactRef,
      /** Every file was reviewed again (`/agentflow review --full`). */
      full: z.boolean().optional(),
      /** The review configuration (agents, models, prompts, paths, `.agentflow.yml`) changed since: every file was reviewed again. */
      configChanged: z.boolean().optional(),
    })
    .optional(),
  /** The digest of what the review is made with (`reviewConfigDigest`), kept in the review state. */
  reviewConfig: z.string().optional(),
  /** The repository's `.agentflow.yml` and guidance files as read at the base commit (see `repo-config.ts`). */
  repo: z
    .strictObject({
      /** The commit they were read at (the change's base). */
      at: z.string(),
      found: z.boolean(),
      /** `.agentflow.yml:line:col: message`; non-empty: the defaults were used. */
      errors: z.array(z.string()),
      pathInstructions: z.array(z.strictObject({ path: z.string(), instructions: z.string() })),
      ignore: z.array(z.string()),
      disableAgents: z.array(z.string()),
      maxInlineComments: z.number().int().nonnegative().optional(),
      inlineMinSeverity: z.enum(SEVERITIES).optional(),
      failOn: z.enum([...SEVERITIES, 'none']).optional(),
      /** Guidance files (redacted, capped) given to the agents. */
      guidance: z.array(z.strictObject({ path: z.string(), text: z.string() })),
    })
    .optional(),
});
export type ContextArtifact = z.infer<typeof ContextArtifactSchema>;

/** Inline comments per review unless the workflow's `output.max_inline_comments` says otherwise. */
export const DEFAULT_MAX_INLINE_COMMENTS = 20;
/** The least severe finding posted inline unless `output.inline_min_severity` says otherwise. */
export const DEFAULT_INLINE_MIN_SEVERITY: Severity = 'low';

/** What the workflow says about inline review comments (`output.max_inline_comments`, `output.inline_min_severity`). */
export const InlineOptionsSchema = z.strictObject({
  maxComments: z.number().int().min(0).max(100).default(DEFAULT_MAX_INLINE_COMMENTS),
  minSeverity: z.enum(SEVERITIES).default(DEFAULT_INLINE_MIN_SEVERITY),
});
export type InlineOptions = z.infer<typeof InlineOptionsSchema>;

/** A finding as models must return it and as reports show it. `line` is in the new file. */
export const FindingSchema = z.strictObject({
  file: z.string().min(1),
  line: z.number().int().nonnegative(),
  severity: z.enum(SEVERITIES),
  category: z.string().min(1),
  message: z.string().min(1),
  suggestion: z.string().default(''),
  /** The last line of a problem that spans lines `line`..`endLine` (new-file numbers). */
  endLine: z.number().int().nonnegative().optional(),
  /**
   * The exact code that replaces lines `line`..`endLine` (or `line`), without numbers or markers:
   * posted as a one-click ```suggestion on the pull request when those lines are in the diff.
   */
  replacement: z.string().optional(),
});
export type Finding = z.infer<typeof FindingSchema>;

/** The JSON object a model must answer with. */
export const ModelAnswerSchema = z.strictObject({
  summary: z.string().default(''),
  findings: z.array(FindingSchema),
  /** Markdown, from agents whose output is `document`. */
  document: z.string().optional(),
});
export type ModelAnswer = z.infer<typeof ModelAnswerSchema>;

/** A file a `tests` agent writes: a repository-relative path and the whole content (UTF-8). */
export const GeneratedFileSchema = z.strictObject({
  path: z.string().min(1).max(300),
  content: z.string(),
});
export type GeneratedFile = z.infer<typeof GeneratedFileSchema>;

/** The JSON object a `tests` agent answers with: a review's findings and the test files to add. */
export const TestsAnswerSchema = z.strictObject({
  summary: z.string().default(''),
  findings: z.array(FindingSchema),
  files: z.array(GeneratedFileSchema),
});
export type TestsAnswer = z.infer<typeof TestsAnswerSchema>;

/** A generated file that is not committed, and why (outside the test folders, `..`, a secret, too large…). */
export const RefusedFileSchema = z.strictObject({ path: z.string(), reason: z.string() });
export type RefusedFile = z.infer<typeof RefusedFileSchema>;

/**
 * What the commit of generated files did (`$.files.commit`, the run summary's `files`): the branch,
 * the commit SHA and where to see it (the draft pull request, the branch, or locally the branch
 * name), the paths committed and refused. `sha` is the commit the CI gate waits on: the pull
 * request's head when nothing was committed.
 */
export const FilesCommitSchema = z.strictObject({
  sha: z.string().min(1),
  branch: z.string().optional(),
  url: z.string().optional(),
  /** The draft pull request opened (or reused) for the branch. */
  pullRequest: z.number().int().positive().optional(),
  /** True when the files were pushed to the pull request's own branch (`push_to_pr`). */
  pushed: z.boolean().optional(),
  committed: z.array(z.string()).default([]),
  refused: z.array(RefusedFileSchema).default([]),
  /** Why nothing could be committed (the forge refused, …); the CI gate waits on the pull request's head. */
  error: z.string().optional(),
});
export type FilesCommit = z.infer<typeof FilesCommitSchema>;

export const InvokeAgentInputSchema = z.strictObject({
  agent: AgentItemSchema,
  runId: z.string(),
  workflow: z.string(),
  phase: z.string(),
  /** The review's context (a `review` run); absent in a `request` run. */
  contextRef: ArtifactRef.optional(),
  /** The person's request (a `request` run). */
  request: RequestSchema.optional(),
  /** Results of earlier phases, keyed by phase (small summaries with refs). */
  previous: z.record(z.string(), z.unknown()).default({}),
  /** The workflow's `budget:`; the project defaults to the repository name. */
  budget: z.strictObject({ maxUsdPerRun: z.number().positive().optional(), project: z.string().optional() }).default({}),
});
export type InvokeAgentInput = z.infer<typeof InvokeAgentInputSchema>;

/** One try of one provider by the gateway: provider, model alias, outcome, error, ms. */
export const AttemptSchema = z.strictObject({
  provider: z.string(),
  model: z.string(),
  outcome: z.enum(['ok', 'cache-hit', 'error', 'skipped']),
  error: z.string().optional(),
  ms: z.number().nonnegative(),
});
export type AttemptRecord = z.infer<typeof AttemptSchema>;

/** Attempts kept per agent result, to keep the Map output small. */
export const MAX_ATTEMPTS_KEPT = 20;

/**
 * How an agent ended: `succeeded` (reviewed every planned file), `partial` (reviewed some; the
 * rest were cut by its budget share or a budget limit), `failed` (no result).
 */
export const AGENT_STATUSES = ['succeeded', 'partial', 'failed'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

/** One agent's result: the Map iteration's output. Costs in USD, counts in tokens. */
export const AgentResultSchema = z.strictObject({
  name: z.string(),
  phase: z.string(),
  status: z.enum(AGENT_STATUSES),
  provider: z.string(),
  model: z.string(),
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  cachedTokens: z.number().int().nonnegative().default(0),
  costUsd: z.number().nonnegative(),
  findings: z.number().int().nonnegative(),
  findingsRef: z.string().optional(),
  /** The Markdown document an `output: document` agent wrote. */
  documentRef: ArtifactRef.optional(),
  /** The verifier's verdicts (`output: verdicts`), applied by Aggregate. */
  verdictsRef: ArtifactRef.optional(),
  /** The test files an `output: tests` agent wrote and those it refused (`GeneratedFilesArtifact`). */
  filesRef: ArtifactRef.optional(),
  chunks: z.number().int().nonnegative().default(0),
  repaired: z.boolean().default(false),
  servedBy: z.string().optional(),
  durationMs: z.number().nonnegative().default(0),
  /** Provider calls made (cache hits excluded) and answers taken from the response cache. */
  calls: z.number().int().nonnegative().default(0),
  cacheHits: z.number().int().nonnegative().default(0),
  /** True when a fallback model answered at least one call. */
  fallbackUsed: z.boolean().default(false),
  /** `model: auto`: which model was picked and why. */
  routing: z.string().optional(),
  /** Every try of every provider, in order (at most {@link MAX_ATTEMPTS_KEPT}). */
  attempts: z.array(AttemptSchema).default([]),
  /** Files the plan gave the agent that it reviewed, and that it did not reach. */
  filesReviewed: z.number().int().nonnegative().default(0),
  filesNotReviewed: z.number().int().nonnegative().default(0),
  /** Why files were not reviewed, e.g. `budget: share of $0.50 spent`. */
  notReviewed: z.string().optional(),
  /** The agent's share of the run budget in USD (absent: the run has no limit). */
  shareUsd: z.number().nonnegative().optional(),
  /** Repair prompts sent (answers that did not parse the first time). */
  repairs: z.number().int().nonnegative().default(0),
  /** Answers cut at `max_tokens`; the findings before the cut were kept. */
  truncated: z.number().int().nonnegative().default(0),
  /** Where the raw answers that needed a repair prompt are (absolute path locally, `s3://…` in the cloud). */
  rawAnswers: z.array(z.string()).default([]),
  /** Set by the Map iteration's Catch: `{Error, Cause}` as Step Functions reports them. */
  error: z.object({ Error: z.string(), Cause: z.string().optional() }).optional(),
  /** `output: answer`, `route` or a masking `guardrail`: the answer's text (Markdown, model output: data). */
  answerRef: ArtifactRef.optional(),
  /**
   * The answer's structured fields (`output: answer` agents answer `{ answer, data }`), at most
   * {@link MAX_ANSWER_DATA_CHARS} of JSON: Choice states read them (`approval.when`), so they stay
   * small; scalars only (strings ≤ 200 characters, numbers, booleans).
   */
  data: z.record(z.string(), z.union([z.string().max(200), z.number(), z.boolean(), z.null()])).optional(),
  /** `output: route`: the phase chosen (one of the item's `route.choices`, else its default) and why. */
  decision: z.string().optional(),
  decisionReason: z.string().max(500).optional(),
  /** Why the agent stopped before it finished (`partial`): the iteration cap, the budget, the time limit, a cut answer. */
  stopReason: z.string().max(500).optional(),
  /** Tool calls made (refused ones included), failed or refused, and the model calls of the loop. */
  toolCalls: z.number().int().nonnegative().default(0),
  toolErrors: z.number().int().nonnegative().default(0),
  iterations: z.number().int().nonnegative().default(0),
  /** The calls' records (`ToolCallRecord[]`: name, redacted input/output, ok, error, ms). */
  toolCallsRef: ArtifactRef.optional(),
  /** `output: guardrail`: what the guardrail decided (never the text it matched). */
  guardrail: z
    .strictObject({
      intervened: z.boolean(),
      blocked: z.boolean(),
      interventions: z.array(z.strictObject({ policy: z.string(), name: z.string(), action: z.enum(['blocked', 'masked']) })),
    })
    .optional(),
});
export type AgentResult = z.infer<typeof AgentResultSchema>;

/** Longest JSON of an answer's `data` kept in the Map state's output, in characters. */
export const MAX_ANSWER_DATA_CHARS = 2_000;

/**
 * Where a `request` run's phases went (the run summary's and record's `phases`): `ran`, or
 * `skipped` with the reason (a route chose another phase; a conditional gate was not needed).
 */
export const PhaseOutcomeSchema = z.strictObject({
  phase: z.string(),
  status: z.enum(['ran', 'skipped']),
  reason: z.string().optional(),
});
export type PhaseOutcome = z.infer<typeof PhaseOutcomeSchema>;

/** What a gate phase ended with (`$.gates.<phase>`): SendTaskSuccess output, or the outcome the compiled Catch set. */
export const GateOutcomeSchema = z.looseObject({
  outcome: z.string(),
  by: z.string().optional(),
  at: z.string().optional(),
  approvalId: z.string().optional(),
  decision: z.looseObject({ by: z.string().optional(), at: z.string().optional() }).optional(),
});
export type GateOutcome = z.infer<typeof GateOutcomeSchema>;

export const AggregateInputSchema = z.strictObject({
  runId: z.string(),
  workflow: z.string(),
  change: ChangeSchema,
  contextRef: ArtifactRef,
  results: z.record(z.string(), z.array(z.unknown())),
  /** Outcomes of approval and CI gates by phase key. */
  gates: z.record(z.string(), GateOutcomeSchema).default({}),
  workflowName: z.string().default(''),
  requiredPhases: z.array(z.string()).default([]),
  /** Inline review comments (`output.max_inline_comments`, `output.inline_min_severity`). */
  inline: InlineOptionsSchema.default({ maxComments: DEFAULT_MAX_INLINE_COMMENTS, minSeverity: DEFAULT_INLINE_MIN_SEVERITY }),
  /** The commit of the generated files (`output.create_files`), linked from the summary comment. */
  files: FilesCommitSchema.optional(),
});
export type AggregateInput = z.infer<typeof AggregateInputSchema>;

/**
 * Aggregate of a `request` run (`kind: 'request'`): the agents' results and gates as for a review,
 * the routes taken, and `answer`: the phases whose answer is the run's answer, in order (the first
 * that ran with an answer wins; `output.answer`, default the last phases that answer).
 */
export const RequestAggregateInputSchema = z.strictObject({
  kind: z.literal('request'),
  runId: z.string(),
  workflow: z.string(),
  request: RequestSchema,
  results: z.record(z.string(), z.array(z.unknown())),
  gates: z.record(z.string(), GateOutcomeSchema).default({}),
  workflowName: z.string().default(''),
  requiredPhases: z.array(z.string()).default([]),
  /**
   * Every phase of the workflow in order, to record those that did not run and why: a route's
   * target (`routeOf`: the route phase, whose agent's `decision` chose), or a phase after
   * conditional phases (`after`: it runs when one of them ran). A phase with neither always runs
   * (unless a gate or guardrail stopped the run). `kind` is the phase kind (agents, approval, ci,
   * route, guardrail): an agent phase's results are under `results`, a gate's under `gates`.
   */
  plan: z
    .array(
      z.strictObject({
        phase: z.string(),
        kind: z.string(),
        routeOf: z.string().optional(),
        after: z.array(z.string()).default([]),
      }),
    )
    .default([]),
  /** The phases whose answer is the run's answer, in order (`output.answer`): the first that ran with an answer wins. */
  answer: z.array(z.string()).default([]),
});
export type RequestAggregateInput = z.infer<typeof RequestAggregateInputSchema>;

/** Run summary: counts, cost in USD and per-agent status. Small by construction. */
/**
 * A run's outcome (DESIGN §12): every agent succeeded / some failed or were cut / none produced a
 * result / nothing to review (the plan excluded every changed file, so no agent had work).
 */
export const RUN_OUTCOMES = ['SUCCEEDED', 'PARTIAL', 'FAILED', 'SKIPPED'] as const;
export type RunOutcome = (typeof RUN_OUTCOMES)[number];

/** What an incremental re-review did (the run summary's and run record's `incremental`; see `incremental.ts`). */
export const IncrementalSummarySchema = z.strictObject({
  /** The last review's head commit. */
  since: z.string(),
  /** Every file was reviewed again (`/agentflow review --full`). */
  full: z.boolean().optional(),
  filesUnchanged: z.number().int().nonnegative(),
  new: z.number().int().nonnegative(),
  repeated: z.number().int().nonnegative(),
  carried: z.number().int().nonnegative(),
  resolved: z.number().int().nonnegative(),
  dismissed: z.number().int().nonnegative(),
  /** Earlier findings no longer under review (their file ignored, their agents turned off). */
  retired: z.number().int().nonnegative().optional(),
  /** Why every file was reviewed again: asked for, or the review configuration changed. */
  fullBecause: z.enum(['requested', 'configuration']).optional(),
});

export const RunSummarySchema = z.strictObject({
  workflow: z.string(),
  status: z.enum(RUN_OUTCOMES),
  /** Why the run is PARTIAL or FAILED, in one sentence. */
  reason: z.string().optional(),
  /** Files the review plan excluded, by reason. */
  excluded: z.record(z.string(), z.number()).default({}),
  findings: z.number().int().nonnegative(),
  bySeverity: z.record(z.string(), z.number()),
  costUsd: z.number().nonnegative(),
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  agents: z.array(
    z.strictObject({
      name: z.string(),
      phase: z.string(),
      status: z.enum(AGENT_STATUSES),
      provider: z.string(),
      model: z.string(),
      inputTokens: z.number(),
      outputTokens: z.number(),
      costUsd: z.number(),
      findings: z.number(),
      error: z.string().optional(),
      calls: z.number().default(0),
      cacheHits: z.number().default(0),
      fallbackUsed: z.boolean().default(false),
      routing: z.string().optional(),
      attempts: z.array(AttemptSchema).default([]),
      filesReviewed: z.number().default(0),
      filesNotReviewed: z.number().default(0),
      notReviewed: z.string().optional(),
      shareUsd: z.number().optional(),
      repairs: z.number().default(0),
      truncated: z.number().default(0),
      rawAnswers: z.array(z.string()).default([]),
      toolCalls: z.number().default(0),
      toolErrors: z.number().default(0),
      iterations: z.number().default(0),
      decision: z.string().optional(),
    }),
  ),
  offline: z.boolean(),
  /** Findings moved to file level because their file or line is not in the diff (see `placeFindings`). */
  relocated: z.number().int().nonnegative().default(0),
  /** The verifier pass (`verify:`): findings checked, confirmed, dropped, downgraded, left unverified, and why. */
  verification: z
    .strictObject({
      checked: z.number().int().nonnegative(),
      confirmed: z.number().int().nonnegative(),
      dropped: z.number().int().nonnegative(),
      downgraded: z.number().int().nonnegative(),
      unverified: z.number().int().nonnegative(),
      /** Confirmed by an earlier review of the pull request (incremental re-review): not checked again. */
      earlier: z.number().int().nonnegative().optional(),
      notes: z.array(
        z.strictObject({
          file: z.string(),
          line: z.number(),
          category: z.string().default(''),
          message: z.string(),
          reason: z.string(),
          outcome: z.enum(['dropped', 'downgraded']).default('dropped'),
        }),
      ),
    })
    .optional(),
  /**
   * An incremental re-review (see `incremental.ts`): the last review's head commit, the files not
   * reviewed again (their diff is unchanged), and what happened to the findings: raised by this run
   * (`new`, of which `repeated` were raised before), `carried` over from earlier reviews, `resolved`
   * (their code changed or disappeared), `dismissed` (a person dismissed them earlier).
   */
  incremental: IncrementalSummarySchema.optional(),
  /**
   * The repository's `.agentflow.yml` as this run applied it: its errors (the defaults were used),
   * the agents it turned off, the guidance files given to the agents and its `fail_on`.
   */
  repo: z
    .strictObject({
      errors: z.array(z.string()),
      disabledAgents: z.array(z.string()),
      guidance: z.array(z.string()),
      failOn: z.enum([...SEVERITIES, 'none']).optional(),
    })
    .optional(),
  /** Gate outcomes, e.g. `{ approve: "approved by <@U024BE7LH>" }`. */
  gates: z.record(z.string(), z.string()).default({}),
  /** The generated test files' commit (`output.create_files`), linked from the summary comment. */
  files: FilesCommitSchema.optional(),
  /** A `request` run: which phases ran and which were skipped, with why. */
  phases: z.array(PhaseOutcomeSchema).optional(),
  /** Tool calls the agents made (refused included), and those that failed or were refused. */
  toolCalls: z.number().int().nonnegative().optional(),
  toolErrors: z.number().int().nonnegative().optional(),
  /** A `request` run: the answer sent (Markdown, model output), absent when no phase answered. */
  answerRef: ArtifactRef.optional(),
});
export type RunSummary = z.infer<typeof RunSummarySchema>;

export interface AggregateOutput {
  reportRef: string;
  commentRef: string;
  /** The inline review (`review.json`, see `buildInlineReview`). */
  reviewRef: string;
  /** The pull request's review state after this run (see `incremental.ts`); Publish keeps it once posted. Null without a pull request or for a FAILED run. */
  stateRef: string | null;
  summary: RunSummary;
}

/** The severities from which findings fail a check run (`output.fail_on`), or `none`. */
export const FAIL_ON = [...SEVERITIES, 'none'] as const;
/** `output.fail_on` unless the workflow says otherwise. */
export const DEFAULT_FAIL_ON = 'critical';

/** The workflow's check run on the head commit (present when the workflow posts on the pull request). */
const CheckSettings = z.strictObject({ failOn: z.enum(FAIL_ON).default(DEFAULT_FAIL_ON) });

const PublishStarted = z.strictObject({
  kind: z.literal('started'),
  runId: z.string(),
  workflow: z.string(),
  change: ChangeSchema,
  check: CheckSettings,
});
/** Outputs of executions started before `review` had its forge-neutral name (`githubReview`). */
function fromGitHubReview(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || !('githubReview' in value) || 'review' in value) return value;
  const { githubReview, ...rest } = value as { githubReview: unknown };
  return { ...rest, review: githubReview };
}

const PublishReport = z.strictObject({
  kind: z.literal('report'),
  runId: z.string(),
  workflow: z.string(),
  change: ChangeSchema,
  report: z.strictObject({
    reportRef: ArtifactRef,
    commentRef: ArtifactRef,
    /** The inline review; absent in executions started before inline reviews existed. */
    reviewRef: ArtifactRef.optional(),
    /** The review state to keep for the next run (incremental re-review); absent for a change without a pull request. */
    stateRef: ArtifactRef.nullable().optional(),
    summary: RunSummarySchema,
  }),
  outputs: z.preprocess(
    fromGitHubReview,
    z.strictObject({
      /** Post the summary, the inline review and the check run / commit status on the pull or merge request (`output.review`). */
      review: z.boolean(),
      databaseLog: z.boolean(),
      /** Channel the run's summary is posted in (`output.slack`); `default`: the deployment's default channel. */
      slack: z.string().optional(),
      /**
       * `output.code_scanning`: the findings of these agents (the workflow's agents of category
       * `security`) are uploaded to code scanning as SARIF. Absent: nothing is uploaded.
       */
      codeScanning: z.strictObject({ agents: z.array(z.string()) }).optional(),
    }),
  ),
  check: CheckSettings.optional(),
});
const PublishSkipped = z.strictObject({
  kind: z.literal('skipped'),
  runId: z.string(),
  workflow: z.string(),
  change: ChangeSchema,
  reason: z.string(),
  stats: ContextStatsSchema.optional(),
  check: CheckSettings.optional(),
});
const PublishFailed = z.strictObject({
  kind: z.literal('failed'),
  runId: z.string(),
  workflow: z.string(),
  /** The review's change; a `request` run gives `request` instead. */
  change: ChangeSchema.optional(),
  request: RequestSchema.optional(),
  error: z.object({ Error: z.string(), Cause: z.string().optional() }),
  /** A request run: the agents' results so far (their spend records give what the run spent before it failed). */
  results: z.record(z.string(), z.array(z.looseObject({ name: z.string(), phase: z.string() }))).optional(),
  /** Channel the failure is posted in (`fallback: - notify:`, else `output.slack`); `default` as for `outputs.slack`. */
  notify: z.string().optional(),
  check: CheckSettings.optional(),
});
const PublishStopped = z.strictObject({
  kind: z.literal('stopped'),
  runId: z.string(),
  workflow: z.string(),
  /** The review's change; a `request` run gives `request` instead. */
  change: ChangeSchema.optional(),
  request: RequestSchema.optional(),
  reason: z.string(),
  gates: z.record(z.string(), GateOutcomeSchema).default({}),
  /** The agents' results of the phases before the gate (their spend records give the run's cost). */
  results: z.record(z.string(), z.array(z.looseObject({ name: z.string(), phase: z.string() }))).default({}),
  check: CheckSettings.optional(),
});
/**
 * `output.create_files`: commit the files the `tests` agents of a phase wrote (their results'
 * `filesRef`) to `agentflow/tests/<pr>-<short sha>` (a draft pull request against the head
 * branch), or to the pull request's branch with `pushToPullRequest` (never for a fork).
 */
const PublishFiles = z.strictObject({
  kind: z.literal('files'),
  runId: z.string(),
  workflow: z.string(),
  change: ChangeSchema,
  /** The agent results of the phases whose agents write tests, by phase key (the Map states' outputs). */
  results: z.record(z.string(), z.array(z.unknown())).default({}),
  createFiles: z.strictObject({
    /** Globs of the repository's test folders; a file elsewhere is refused. */
    paths: z.array(z.string().min(1)).min(1),
    pushToPullRequest: z.boolean().default(false),
  }),
});
/**
 * A `request` run's answer: posted in the request's Slack thread (`chat.update` of the message
 * `/agentflow ask` posted, or a reply), recorded in the run record with the tool calls and phases.
 */
const PublishAnswer = z.strictObject({
  kind: z.literal('answer'),
  runId: z.string(),
  workflow: z.string(),
  request: RequestSchema,
  report: z.strictObject({ reportRef: ArtifactRef, summary: RunSummarySchema }),
  outputs: z.strictObject({
    databaseLog: z.boolean(),
    /** Also post the run summary in this channel (`output.slack`). */
    slack: z.string().optional(),
  }),
});
export const PublishInputSchema = z.discriminatedUnion('kind', [
  PublishAnswer,
  PublishFiles,
  PublishStarted,
  PublishReport,
  PublishSkipped,
  PublishFailed,
  PublishStopped,
]);
export type PublishInput = z.infer<typeof PublishInputSchema>;
export interface PublishOutput {
  commentUrl: string | null;
  /** `kind: 'report'`: people's feedback counted by this run (the handler emits it as metrics). */
  feedback?: FeedbackTallies;
  /** `kind: 'files'`: what was committed (the state keeps it at `$.files.commit`). */
  files?: FilesCommit;
}

/** A run record (`RUN#<runId>`): what `agentflow runs` and `GET /runs` show. */
export const RunRecordSchema = z.object({
  runId: z.string(),
  workflow: z.string(),
  status: z.enum(['RUNNING', 'SUCCEEDED', 'PARTIAL', 'SKIPPED', 'STOPPED', 'FAILED']),
  repository: z.string(),
  number: z.number(),
  headSha: z.string(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  costUsd: z.number().default(0),
  findings: z.number().default(0),
  agents: z.array(z.unknown()).default([]),
  reason: z.string().optional(),
  error: z.string().optional(),
  commentUrl: z.string().nullable().optional(),
  reportRef: z.string().optional(),
  /** Findings moved to file level because their file or line is not in the diff. */
  relocated: z.number().optional(),
  /** Findings posted as inline review comments on the diff's lines. */
  inlineComments: z.number().optional(),
  /** Why the inline review could not be posted (the summary comment was). */
  reviewError: z.string().optional(),
  /** Feedback on the pull request's inline comments read by this run, new since the last (`agentflow stats` adds them up). */
  feedback: FeedbackTalliesSchema.optional(),
  /** Why the pull request's review state could not be kept (the next run reviews every file). */
  stateError: z.string().optional(),
  /** Comments of resolved findings answered as resolved by this run. */
  resolvedReplies: z.number().optional(),
  /** The incremental re-review's counts (see the run summary's `incremental`). */
  incremental: IncrementalSummarySchema.optional(),
  /** The check run's conclusion on the head commit, or why it could not be written. */
  check: z.string().optional(),
  checkError: z.string().optional(),
  /** Where the code scanning upload is (`output.code_scanning`), or why it could not be made. */
  codeScanning: z.string().optional(),
  codeScanningError: z.string().optional(),
  /** Why the Slack summary or failure notice could not be posted (`output.slack`, `notify:`). */
  slackError: z.string().optional(),
  /** The verifier pass's counts (see the run summary's `verification`). */
  verification: z
    .object({ checked: z.number(), confirmed: z.number(), dropped: z.number(), downgraded: z.number(), unverified: z.number() })
    .optional(),
  /** The generated test files' commit (`output.create_files`): branch, SHA, URL, files committed and refused. */
  files: FilesCommitSchema.optional(),
  /** A `request` run: who asked and the request's first 300 characters (redacted). */
  request: z.object({ requester: z.string(), text: z.string() }).optional(),
  /** A `request` run: the answer sent, the phases that ran or were skipped and why, the tool calls. */
  answerRef: z.string().optional(),
  phases: z.array(PhaseOutcomeSchema).optional(),
  toolCalls: z.number().optional(),
  toolErrors: z.number().optional(),
});
export type RunRecord = z.infer<typeof RunRecordSchema>;

/** The first characters of a request kept in its run record (`request.text`). */
export const RECORDED_REQUEST_CHARS = 300;

/**
 * What a run record says the run was about: the change's repository, number and head, or for a
 * `request` run who asked and the start of the request (empty repository, number 0). The caller
 * redacts `request.text` when it can (the redaction scanner is async).
 */
export function runSubject(input: {
  change?: Change | undefined;
  request?: Request | undefined;
}): Pick<RunRecord, 'repository' | 'number' | 'headSha' | 'request'> {
  if (input.change) return { repository: input.change.repository, number: input.change.number, headSha: input.change.headSha };
  const request = input.request;
  return {
    repository: '',
    number: 0,
    headSha: '',
    ...(request ? { request: { requester: request.requester, text: request.text.slice(0, RECORDED_REQUEST_CHARS) } } : {}),
  };
}

/**
 * Parses task input with a contract; a mismatch becomes {@link InvalidInputError} naming the
 * field paths.
 */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown, task: string): z.infer<T> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const detail = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
  throw new InvalidInputError(`${task}: invalid input: ${detail}`);
}
