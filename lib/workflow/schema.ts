import { z } from 'zod';

/**
 * Model providers AgentFlow can call. `bedrock` is Claude on Amazon Bedrock (Converse API);
 * `openai-compatible` is any server speaking OpenAI chat completions at a configured base URL.
 */
export const PROVIDERS = ['bedrock', 'openai', 'openai-compatible'] as const;

/**
 * How an `openai-compatible` model can be held to an answer format (`structured_output`):
 * `json_schema` (a strict JSON Schema `response_format`), `json_object` (JSON mode) or `prompt`
 * (the prompt alone, the default). Bedrock and OpenAI always enforce the format natively.
 */
export const STRUCTURED_OUTPUTS = ['json_schema', 'json_object', 'prompt'] as const;
export type StructuredOutput = (typeof STRUCTURED_OUTPUTS)[number];

/** Model tiers for routing (`model: auto`). */
export const TIERS = ['simple', 'medium', 'complex'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** Severity of a finding, most severe first. */
export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

const name = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'use lower-case letters, digits and dashes (for example "code-review")');

/** A price per million tokens in USD. */
const usdPerMillion = z.number().nonnegative();

/**
 * One model in `workflows/models.yml`.
 *
 * Prices are USD per million tokens; `context_window` and `max_output` are tokens.
 */
export const ModelSchema = z.strictObject({
  provider: z.enum(PROVIDERS),
  id: z.string().min(1).describe('the provider model id or Bedrock inference profile id'),
  foundation_model: z.string().optional().describe('Bedrock only: the foundation model id behind an inference profile (for IAM grants)'),
  context_window: z.number().int().positive(),
  max_output: z.number().int().positive(),
  tier: z.enum(TIERS),
  price: z
    .strictObject({
      input: usdPerMillion,
      output: usdPerMillion,
      cache_read: usdPerMillion.optional(),
      cache_write: usdPerMillion.optional(),
    })
    .optional()
    .describe('USD per million tokens; a model without a price is never called (the gateway cannot bound its cost)'),
  source: z.string().url(),
  as_of: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'use a date like 2025-11-01'),
  deprecated: z.boolean().optional(),
  structured_output: z
    .enum(STRUCTURED_OUTPUTS)
    .optional()
    .describe(
      'openai-compatible only: json_schema (strict response_format), json_object (JSON mode) or prompt (default); bedrock and openai always enforce the answer format',
    ),
});
export type ModelSpec = z.infer<typeof ModelSchema>;

const TierModels = z.strictObject({ simple: z.string(), medium: z.string(), complex: z.string() });

/**
 * The model catalog file. `defaults` names the model used when only a provider is given; `tiers`
 * names, per provider, the model `model: auto` picks for each tier.
 */
export const ModelCatalogSchema = z.strictObject({
  defaults: z.strictObject({ bedrock: z.string(), openai: z.string(), 'openai-compatible': z.string().optional() }),
  tiers: z.partialRecord(z.enum(PROVIDERS), TierModels).default({}),
  models: z.record(z.string().regex(/^[a-z0-9][a-z0-9.:-]*$/), ModelSchema),
});
export type ModelCatalog = z.infer<typeof ModelCatalogSchema>;

/** Categories a finding can carry; an agent declares which it reports. */
export const CATEGORIES = [
  'correctness',
  'quality',
  'performance',
  'security',
  'testing',
  'documentation',
  'architecture',
  'accessibility',
] as const;

/** A non-empty list of globs (checked by the loader: relative, balanced brackets, compilable). */
const globList = z.array(z.string().min(1)).min(1);

/**
 * `include` / `exclude` lists; at least one must be given. `include`: at least one entry must
 * match; `exclude`: no entry may match.
 */
const includeExclude = (what: string) =>
  z
    .strictObject({
      include: globList.optional().describe(`${what} that must match (any one)`),
      exclude: globList.optional().describe(`${what} that must not match`),
    })
    .refine((f) => f.include !== undefined || f.exclude !== undefined, { message: 'give include, exclude or both' });

/** Which changed files an agent or a workflow reviews (globs; one without a slash matches the file name in any folder). */
export const PathsSchema = includeExclude('file globs');

/** One agent in `workflows/agents/<name>.yml`: its prompt and defaults. */
export const AgentSpecSchema = z
  .strictObject({
    name,
    description: z.string().min(1),
    aliases: z.array(z.string()).default([]),
    provider: z.enum(PROVIDERS),
    model: z.string().min(1).describe('a model alias from models.yml, or "auto" to route by change size and complexity'),
    fallback: z.array(z.string()).default([]),
    cache: z.boolean().default(true).describe('reuse an identical earlier answer from the response cache'),
    max_tokens: z.number().int().min(256).max(64_000).default(4000),
    temperature: z.number().min(0).max(1).default(0.2),
    complexity: z.enum(TIERS).default('medium'),
    categories: z
      .array(z.enum(CATEGORIES))
      .default([])
      .describe('the finding categories the agent reports (at least one, except for output: answer, which reports none)'),
    tasks: z.array(z.string()).default([]),
    output: z
      .enum(['findings', 'document', 'tests', 'answer'])
      .default('findings')
      .describe(
        "findings (a review), document (findings and a Markdown document), tests (findings and test files, committed by the workflow's output.create_files) or answer (an answer to a person's request with structured data fields, in request workflows)",
      ),
    files: globList
      .optional()
      .describe(
        'globs of the changed files this agent reviews (a glob without a slash matches the file name in any folder); default: every file',
      ),
    prompt: z.string().min(40, 'write the instructions the model gets (at least a few sentences)'),
  })
  .superRefine((a, ctx) => {
    if (a.output !== 'answer' && a.categories.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['categories'],
        message: 'name the categories of the findings the agent reports (at least one)',
      });
    }
    if (a.output === 'answer' && a.categories.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['categories'], message: 'an answer agent reports no findings: remove categories' });
    }
    if (a.output === 'answer' && a.files)
      ctx.addIssue({ code: 'custom', path: ['files'], message: 'an answer agent reviews no files: remove files' });
  });
export type AgentSpec = z.infer<typeof AgentSpecSchema>;

const fallbackTarget = z
  .string()
  .regex(
    /^(bedrock|openai|openai-compatible)(:[A-Za-z0-9.:-]+)?$/,
    'write a fallback as provider or provider:model, e.g. "openai:gpt-4.1-mini"',
  );

/** A tool name as an MCP server lists it (offered to models as `<server>__<tool>`). */
const toolName = z.string().regex(/^[A-Za-z0-9_-]{1,60}$/, 'a tool name has letters, digits, _ and - only');

/** One server's tools an agent may call: `allow` lists them; `{ name, write: true }` marks a tool that changes something. */
const ToolUse = z.strictObject({
  server: z
    .string()
    .min(1)
    .describe(
      'a server of the workflow\'s mcp_servers, or "agentflow" for the built-in read-only tools (read_file, search, list_changed_files)',
    ),
  allow: z
    .array(
      z.union([
        toolName,
        z.strictObject({
          name: toolName,
          write: z.boolean().optional(),
          limits: z
            .record(
              z.string().regex(/^[A-Za-z0-9_]{1,64}$/, 'an argument name has letters, digits and _ only'),
              z.string().regex(/^[a-z0-9][a-z0-9-]*\.[A-Za-z0-9_]+$/, "write <phase>.<field>, an earlier answer's data field"),
            )
            .optional()
            .describe(
              "request workflows: a numeric argument's total over the agent's calls may not pass an earlier answer's data field, e.g. { amount_usd: billing.refund_usd }",
            ),
        }),
      ]),
    )
    .min(1)
    .describe('the tools the agent may call; every other tool of the server is neither offered nor called'),
});

/** A duration of at least one second and at most a year (Step Functions' limit on an execution). */
const duration = z.string().regex(/^\d+[smhd]$/, 'write a duration like 30m, 24h or 2d');

/** A v1 agent entry that overrides catalog fields. */
const AgentOverride = z.strictObject({
  agent: z.string().min(1),
  provider: z.enum(PROVIDERS).optional(),
  model: z.string().optional(),
  max_tokens: z.number().int().min(256).max(64_000).optional(),
  temperature: z.number().min(0).max(1).optional(),
  fallback: z.array(fallbackTarget).optional(),
  tasks: z.array(z.string()).optional(),
  cache: z.boolean().optional(),
  paths: PathsSchema.optional().describe("the changed files this agent reviews; include replaces the catalog's files"),
  tools: z.array(ToolUse).min(1).optional().describe('tools the agent may call in a tool-use loop (MCP servers, built-in tools)'),
  max_iterations: z.number().int().min(1).max(50).optional().describe("model calls of the agent's tool loop at most; default 8"),
  time_limit: duration.optional().describe("the agent's time limit (at most 14m30s: the task's 15 minutes); default 5m"),
  reads: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe('request workflows: the earlier phases whose answers the agent gets (default every earlier phase that answered)'),
});

/** The design documents' agent shape: `name`, `type`, `service`, `config`, `tasks`. */
const AgentLegacy = z.strictObject({
  name: z.string().min(1),
  type: z.string().optional(),
  service: z.enum(['claude-api', 'openai-api', 'bedrock', 'openai']).optional(),
  config: z
    .looseObject({
      model: z.string().optional(),
      max_tokens: z.number().int().min(256).max(64_000).optional(),
      temperature: z.number().min(0).max(1).optional(),
      focus: z.string().optional(),
    })
    .optional(),
  tasks: z.array(z.string()).optional(),
});

export const AgentEntrySchema = z.union([z.string().min(1), AgentOverride, AgentLegacy]);
export type AgentEntry = z.infer<typeof AgentEntrySchema>;

const comparison = z.string().regex(/^\s*(>=|<=|==|>|<)\s*\d+(\.\d+)?\s*$/, 'write a comparison like "> 100"');
const percentComparison = z.string().regex(/^\s*(>=|<=|==|>|<)\s*\d+(\.\d+)?\s*%\s*$/, 'write a comparison like "< 80%"');

const Conditions = z.strictObject({
  files_changed: z.array(z.string().min(1)).min(1).optional(),
  lines_changed: comparison.optional(),
  test_coverage: percentComparison.optional(),
  skip_drafts: z.boolean().optional().describe('skip draft pull requests (they start on ready_for_review); default true'),
  skip_bots: z.boolean().optional().describe('skip pull requests opened by bots (user type Bot or a login ending in [bot]); default true'),
  authors: includeExclude('author logins or globs (a name also matches the login with its [bot] suffix)')
    .optional()
    .describe('whose pull requests start the workflow'),
  labels: includeExclude('label names (case-insensitive)')
    .optional()
    .describe('labels a pull request must have (include: any one) or must not have (exclude: none)'),
  branches: includeExclude('base branch globs').optional().describe('the base branches whose pull requests start the workflow'),
});

const event = z
  .string()
  .regex(/^[a-z_]+(\.[a-z_]+)?$/, 'use change.<action>, pull_request, pull_request.<action>, merge_request.<action> or manual')
  .describe(
    'change.opened, change.updated or change.ready (GitHub pull requests and GitLab merge requests), pull_request (opened, synchronize, reopened, ready_for_review), pull_request.<action>, merge_request.<action> (GitLab) or manual',
  );

const Phase = z
  .strictObject({
    name,
    description: z.string().optional(),
    depends_on: z.array(z.string()).optional(),
    parallel: z.boolean().optional(),
    required: z.boolean().optional(),
    max_concurrency: z.number().int().min(1).max(40).optional(),
    agents: z.array(AgentEntrySchema).min(1).optional(),
    approval: z
      .strictObject({
        channel: z.string().min(1),
        approvers: z.array(z.string().min(1)).min(1),
        timeout: duration,
        on_timeout: z.enum(['reject', 'approve', 'escalate']).default('reject'),
        when: z
          .string()
          .regex(
            /^\s*[a-z0-9][a-z0-9-]*\.[A-Za-z0-9_]+\s*(>=|<=|==|!=|>|<)\s*("[^"\\']*"|[A-Za-z0-9_.-]+)\s*$/,
            'write a comparison on an earlier phase\'s answer field, like "refund.amount_usd > 100" or "judge.verdict == fail"',
          )
          .optional()
          .describe(
            "request workflows: ask only when this holds for an earlier phase's answer data (an absent or unreadable field asks); otherwise the flow goes on without asking",
          ),
        escalate: z
          .strictObject({ channel: z.string().min(1), approvers: z.array(z.string().min(1)).min(1).optional(), timeout: duration })
          .optional(),
      })
      .optional(),
    ci: z
      .strictObject({
        timeout: duration,
        on_timeout: z.enum(['fail', 'continue']).default('fail'),
      })
      .optional(),
    route: z
      .strictObject({
        agent: AgentEntrySchema.describe('the agent whose answer picks the next phase'),
        to: z.array(name).min(2).describe('the phases it may choose (each runs only when chosen)'),
        default: name.describe('the phase taken when the answer names none of them'),
      })
      .optional()
      .describe('request workflows: an agent picks which one of the phases in to runs next; the others are skipped'),
    guardrail: z
      .strictObject({
        source: z.enum(['input', 'output']).describe('input: the request; output: an answer of the phases in check'),
        check: z.array(name).min(1).optional().describe('output: the phases whose answer is checked (the first of them that ran)'),
        denied_topics: z
          .array(z.strictObject({ name: z.string().min(1), phrases: z.array(z.string().min(1)).min(1) }))
          .optional()
          .describe('topics to refuse (offline rules: a phrase matched as whole words)'),
        pii: z.enum(['mask', 'block', 'off']).optional().describe('what personal data does: mask (default), block or off'),
        pii_types: z
          .array(z.enum(['CREDIT_DEBIT_CARD_NUMBER', 'US_SOCIAL_SECURITY_NUMBER', 'IP_ADDRESS', 'EMAIL', 'PHONE']))
          .min(1)
          .optional()
          .describe('the personal data looked for offline; default all of them'),
        prompt_attack: z.boolean().optional().describe('refuse prompt attacks in the input; default true'),
        bedrock: z
          .strictObject({ id: z.string().min(1), version: z.string().min(1) })
          .optional()
          .describe("the Amazon Bedrock guardrail used in the cloud (default: the environment's guardrail, else the offline rules)"),
      })
      .optional()
      .describe('request workflows: checks the request or an answer; a block stops the run, a mask goes on with the masked text'),
  })
  .refine((p) => [p.agents, p.approval, p.ci, p.route, p.guardrail].filter((k) => k !== undefined).length === 1, {
    message: 'a phase needs exactly one of agents, approval, ci, route or guardrail',
  })
  .refine((p) => p.approval?.on_timeout !== 'escalate' || p.approval.escalate !== undefined, {
    message: 'on_timeout: escalate needs an escalate: { channel, timeout } block',
  });

const Output = z.strictObject({
  answer: z
    .union([name, z.array(name).min(1)])
    .optional()
    .describe(
      'request workflows: the phase(s) whose answer is sent to the person (the first that ran); default the last phases that answer',
    ),
  review: z
    .boolean()
    .optional()
    .describe(
      'post the summary comment, the inline review and the check run (GitHub) or commit status (GitLab) on the pull or merge request; default true',
    ),
  github_review: z.boolean().optional().describe('the older name of review (give one of them)'),
  github_comment: z.boolean().optional().describe('the oldest name of review (give one of them)'),
  slack: z
    .union([z.string().min(1), z.boolean()])
    .optional()
    .describe(
      "post the run summary (outcome, findings by severity, cost, links to the pull request and the check run) in this Slack channel; true: the environment's slackChannel; failed runs are posted there too",
    ),
  slack_notification: z.boolean().optional().describe('the older form of slack: true (give one of them)'),
  database_log: z.boolean().optional().describe("keep each agent's details in the run record; default true"),
  format: z.enum(['markdown']).optional().describe("the summary comment's format: markdown, the only one (needs review)"),
  create_files: z
    .union([
      z.boolean(),
      z.strictObject({
        paths: globList
          .optional()
          .describe(
            "the repository's test folders (globs); a generated file elsewhere is refused; default **/*Tests/**, **/*Tests.swift, **/src/test/**, **/src/androidTest/**, **/*Test.kt, **/*Test.java",
          ),
        push_to_pr: z
          .boolean()
          .optional()
          .describe("commit to the pull request's own branch instead of a draft pull request (never for a fork); default false"),
      }),
    ])
    .optional()
    .describe(
      'commit the test files of the tests agents (output: tests) to agentflow/tests/<pr>-<short sha> and open a draft pull request against the head branch; the ci gate waits on that commit; true: the default test folders',
    ),
  code_scanning: z
    .boolean()
    .optional()
    .describe(
      'upload the findings of the security agents (categories: [security]) to GitHub code scanning as SARIF 2.1.0 for the head commit; default false',
    ),
  max_inline_comments: z
    .number()
    .int()
    .min(0)
    .max(100)
    .optional()
    .describe(
      'findings posted as inline review comments on the changed lines (the rest are in the summary comment); default 20, 0 for none',
    ),
  inline_min_severity: z.enum(SEVERITIES).optional().describe('the least severe finding posted inline; default low'),
  fail_on: z
    .enum([...SEVERITIES, 'none'])
    .optional()
    .describe('findings at or above this severity fail the check run on the head commit; default critical, none never fails on findings'),
});

/**
 * `context:` — the unchanged lines of each file at the head commit the prompts show around its
 * hunks: `none` (git's 3 lines only) or `{ lines, whole_file_lines, enclosing }` (see
 * `ContextOptions` in `lambdas/core/hunks.ts`; each field defaults to 20, 150 and true).
 */
export const ContextSchema = z.union(
  [
    z.literal('none'),
    z.strictObject({
      lines: z
        .number()
        .int()
        .min(0)
        .max(200)
        .optional()
        .describe('lines below each change, and above it without an enclosing declaration; default 20'),
      whole_file_lines: z
        .number()
        .int()
        .min(0)
        .max(1000)
        .optional()
        .describe('a file of at most this many lines is shown whole (0: never); default 150'),
      enclosing: z.boolean().optional().describe("start the context at the change's enclosing declaration; default true"),
    }),
  ],
  { error: 'write none or { lines, whole_file_lines, enclosing }' },
);

const LegacyFallbackRule = z.strictObject({
  if: z.string().regex(/^[a-z-]+\.fails$/, 'write a rule like "claude-api.fails"'),
  use: z.string().optional(),
  notify: z.string().optional(),
  continue: z.boolean().optional(),
});

/**
 * A workflow file as written: the v1 language plus the older shapes of the design documents
 * (`agents:` + `execution:`, list-valued `conditions:`/`output:`, rule-list `fallback:`).
 * {@link normalizeWorkflow} turns it into a {@link Workflow}.
 */
export const WorkflowSourceSchema = z
  .strictObject({
    name: z.string().min(1),
    description: z.string().optional(),
    trigger: z.strictObject({
      event: z.union([event, z.array(event).min(1)]),
      conditions: z.union([Conditions, z.array(Conditions)]).optional(),
      /** Who may start a `manual` run from Slack: Slack user ids or groups of the environment config. */
      run_by: z.array(z.string().min(1)).min(1).optional(),
    }),
    budget: z.strictObject({ max_usd_per_run: z.number().positive().optional(), project: z.string().optional() }).optional(),
    paths: PathsSchema.optional().describe('the changed files the review plan keeps; default every file'),
    context: ContextSchema.optional().describe(
      'what the prompts show of each file at the head commit around its hunks; default { lines: 20, whole_file_lines: 150, enclosing: true }',
    ),
    verify: z
      .union([
        z.boolean(),
        z.strictObject({
          model: z
            .string()
            .min(1)
            .optional()
            .describe("the verifier model (an alias in models.yml); default the simple tier of the agents' provider"),
          fallback: z.array(z.string().min(1)).optional().describe('models tried when the verifier model fails'),
          batch: z.number().int().min(1).max(50).optional().describe('findings checked per model call; default 20'),
          unconfirmed: z
            .enum(['drop', 'downgrade'])
            .optional()
            .describe('what happens to a finding the verifier does not confirm; default drop'),
        }),
      ])
      .optional()
      .describe('after the agents, a cheap model checks each finding against the code it cites (default off; true for the defaults)'),
    mcp_servers: z
      .record(
        z.string().regex(/^[A-Za-z0-9-]+$/, 'a server name has letters, digits and - only'),
        z.union([
          z.strictObject({ command: z.string().min(1), args: z.array(z.string()).optional() }),
          z.strictObject({ url: z.string().url() }),
        ]),
      )
      .optional()
      .describe("MCP servers the agents' tools come from: a command started over stdio, or a streamable HTTP url"),
    allow_write_tools: z
      .boolean()
      .optional()
      .describe(
        "let agents call tools marked write: true without an approval gate before their phase (never for a fork's change); default false",
      ),
    phases: z.array(Phase).min(1).optional(),
    agents: z.array(AgentEntrySchema).min(1).optional(),
    execution: z.enum(['parallel', 'sequential']).optional(),
    fallback: z.array(LegacyFallbackRule).optional(),
    output: z.union([Output, z.array(Output)]).optional(),
  })
  .superRefine((w, ctx) => {
    if (!w.phases && !w.agents) ctx.addIssue({ code: 'custom', message: 'a workflow needs phases (or agents)' });
    if (w.phases && w.agents) {
      ctx.addIssue({ code: 'custom', path: ['agents'], message: 'use phases or agents, not both' });
    }
    if (w.phases && w.execution) {
      ctx.addIssue({ code: 'custom', path: ['execution'], message: 'execution applies to agents; use parallel on a phase' });
    }
  });
export type WorkflowSource = z.infer<typeof WorkflowSourceSchema>;

/** JSON Schema of a workflow file for editors (`# yaml-language-server: $schema=...`). */
export function workflowJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(WorkflowSourceSchema, { io: 'input', unrepresentable: 'any' });
  return { ...schema, title: 'AgentFlow workflow', $id: 'https://agentflow.dev/schema/workflow.json' };
}

/** JSON Schema of an agent catalog file. */
export function agentJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(AgentSpecSchema, { io: 'input' }), title: 'AgentFlow agent' };
}

/** JSON Schema of the model catalog. */
export function modelsJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(ModelCatalogSchema, { io: 'input' }), title: 'AgentFlow models' };
}
