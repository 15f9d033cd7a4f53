import picomatch from 'picomatch';
import { REQUEST_EVENT, triggerEventError } from './events.js';
import {
  BUILTIN_TOOL_SERVER,
  BUILTIN_TOOLS,
  type Catalog,
  type Comparison,
  type CreateFilesSettings,
  DEFAULT_CONTEXT_SETTINGS,
  DEFAULT_TEST_PATHS,
  type IncludeExclude,
  type Phase,
  type PhaseKind,
  type ResolvedAgent,
  type ResolvedModel,
  type RoutePhase,
  SECURITY_CATEGORY,
  securityAgents,
  type ToolServer,
  testPhases,
  type WhenCondition,
  type Workflow,
} from './model.js';
import {
  type AgentEntry,
  type AgentSpec,
  AgentSpecSchema,
  type ModelCatalog,
  ModelCatalogSchema,
  PROVIDERS,
  type Provider,
  type Severity,
  type WorkflowSource,
  WorkflowSourceSchema,
} from './schema.js';
import { type Diagnostic, type SourcePath, YamlSource } from './source.js';

/** The result of loading a file: the value when there were no errors, and every diagnostic. */
export interface Loaded<T> {
  readonly value?: T;
  readonly diagnostics: Diagnostic[];
}

/** Parses and checks `workflows/models.yml`. */
export function loadModels(file: string, text: string): Loaded<ModelCatalog> {
  const src = new YamlSource(file, text);
  if (src.diagnostics.length > 0) return { diagnostics: src.diagnostics };
  const parsed = ModelCatalogSchema.safeParse(src.data);
  if (!parsed.success) return { diagnostics: src.fromZod(parsed.error.issues) };
  const diagnostics: Diagnostic[] = [];
  for (const [provider, tiers] of Object.entries(parsed.data.tiers)) {
    for (const [tier, alias] of Object.entries(tiers ?? {})) {
      const m = parsed.data.models[alias];
      if (!m) diagnostics.push(src.at(['tiers', provider, tier], `tiers.${provider}.${tier}: unknown model "${alias}"`));
      else if (m.provider !== provider) {
        diagnostics.push(src.at(['tiers', provider, tier], `tiers.${provider}.${tier}: "${alias}" is a ${m.provider} model`));
      }
    }
  }
  for (const [alias, m] of Object.entries(parsed.data.models)) {
    if (m.structured_output !== undefined && m.provider !== 'openai-compatible') {
      diagnostics.push(
        src.at(
          ['models', alias, 'structured_output'],
          `models.${alias}.structured_output: only openai-compatible models take it (${m.provider} always enforces the answer format); remove it`,
        ),
      );
    }
  }
  for (const [provider, alias] of Object.entries(parsed.data.defaults)) {
    if (alias === undefined) continue;
    const m = parsed.data.models[alias];
    if (!m) diagnostics.push(src.at(['defaults', provider], `defaults.${provider}: unknown model "${alias}"`));
    else if (m.provider !== provider) {
      diagnostics.push(src.at(['defaults', provider], `defaults.${provider}: "${alias}" is a ${m.provider} model`));
    }
  }
  return diagnostics.length > 0 ? { diagnostics } : { value: parsed.data, diagnostics };
}

/** Parses and checks one agent file (`workflows/agents/<name>.yml`); the file name must match `name`. */
export function loadAgent(file: string, text: string, models?: ModelCatalog): Loaded<AgentSpec> {
  const src = new YamlSource(file, text);
  if (src.diagnostics.length > 0) return { diagnostics: src.diagnostics };
  const parsed = AgentSpecSchema.safeParse(src.data);
  if (!parsed.success) return { diagnostics: src.fromZod(parsed.error.issues) };
  const diagnostics: Diagnostic[] = [];
  const base = file
    .split(/[\\/]/)
    .pop()
    ?.replace(/\.ya?ml$/, '');
  if (base && base !== parsed.data.name) {
    diagnostics.push(src.at(['name'], `name: "${parsed.data.name}" must match the file name "${base}"`));
  }
  parsed.data.files?.forEach((glob, i) => {
    const err = globError(glob);
    if (err) diagnostics.push(src.at(['files', i], `files.${i}: ${err}`));
  });
  if (models && parsed.data.model === 'auto') {
    if (!models.tiers[parsed.data.provider]) {
      diagnostics.push(src.at(['model'], `model: "auto" needs tiers.${parsed.data.provider} in workflows/models.yml`));
    }
  } else if (models) {
    const m = findModel(models, parsed.data.model);
    if (!m) diagnostics.push(src.at(['model'], `model: unknown model "${parsed.data.model}" (see workflows/models.yml)`));
    else if (m.provider !== parsed.data.provider) {
      diagnostics.push(src.at(['model'], `model: "${parsed.data.model}" is a ${m.provider} model, not ${parsed.data.provider}`));
    }
    parsed.data.fallback.forEach((f, i) => {
      const err = fallbackError(models, f);
      if (err) diagnostics.push(src.at(['fallback', i], `fallback.${i}: ${err}`));
    });
  }
  return diagnostics.length > 0 ? { diagnostics } : { value: parsed.data, diagnostics };
}

/**
 * Parses, normalises and checks a workflow file against the catalog.
 *
 * Every problem is reported with its position; the workflow is returned only when there are none.
 * Checks: schema, unknown events and actions (GitHub's webhook definitions), unknown agents and
 * models, provider/model mismatches, duplicate phases and agents, unknown `depends_on`, cycles,
 * invalid globs, pull-request conditions on a workflow that only runs manually.
 */
export function loadWorkflow(file: string, text: string, catalog: Catalog): Loaded<Workflow> {
  const src = new YamlSource(file, text);
  if (src.diagnostics.length > 0) return { diagnostics: src.diagnostics };
  const parsed = WorkflowSourceSchema.safeParse(src.data);
  if (!parsed.success) return { diagnostics: src.fromZod(parsed.error.issues) };
  const diagnostics: Diagnostic[] = [];
  const id = (file.split(/[\\/]/).pop() ?? file).replace(/\.ya?ml$/, '');
  const workflow = normalize(id, parsed.data, catalog, src, diagnostics);
  return diagnostics.length > 0 ? { diagnostics } : { value: workflow, diagnostics };
}

/** Finds a model by alias or by provider model id. */
export function findModel(models: ModelCatalog, ref: string): ResolvedModel | undefined {
  const alias = models.models[ref] ? ref : Object.keys(models.models).find((k) => models.models[k]?.id === ref);
  const m = alias ? models.models[alias] : undefined;
  if (!alias || !m) return undefined;
  return {
    provider: m.provider,
    alias,
    modelId: m.id,
    contextWindow: m.context_window,
    maxOutput: m.max_output,
    ...(m.structured_output ? { structuredOutput: m.structured_output } : {}),
    price: m.price
      ? {
          input: m.price.input,
          output: m.price.output,
          cacheRead: m.price.cache_read ?? m.price.input,
          cacheWrite: m.price.cache_write ?? m.price.input,
        }
      : null,
  };
}

function fallbackError(models: ModelCatalog, target: string): string | undefined {
  const [provider, model] = splitTarget(target);
  if (!(PROVIDERS as readonly string[]).includes(provider)) return `unknown provider "${provider}"`;
  const ref = model ?? models.defaults[provider as Provider];
  if (!ref) return `no default model for ${provider}: write ${provider}:<model>`;
  const m = findModel(models, ref);
  if (!m) return `unknown model "${model}"`;
  if (m.provider !== provider) return `"${model}" is a ${m.provider} model, not ${provider}`;
  return undefined;
}

function splitTarget(target: string): [string, string | undefined] {
  const i = target.indexOf(':');
  return i < 0 ? [target, undefined] : [target.slice(0, i), target.slice(i + 1)];
}

const SERVICES: Record<string, Provider> = {
  'claude-api': 'bedrock',
  bedrock: 'bedrock',
  'openai-api': 'openai',
  openai: 'openai',
};

/** All actions a bare `pull_request` trigger stands for: a review when a PR opens or changes. */
export const DEFAULT_PR_ACTIONS = ['opened', 'synchronize', 'reopened', 'ready_for_review'] as const;

/** Conditions that filter pull requests at the webhook; they mean nothing to a manual run. */
const PULL_REQUEST_CONDITIONS = ['skip_drafts', 'skip_bots', 'authors', 'labels', 'branches'] as const;

type Conditions = Exclude<NonNullable<WorkflowSource['trigger']['conditions']>, unknown[]>;

function normalize(id: string, w: WorkflowSource, catalog: Catalog, src: YamlSource, diagnostics: Diagnostic[]): Workflow {
  const trigger = normalizeTrigger(w, src, diagnostics);
  for (const side of ['include', 'exclude'] as const) {
    w.paths?.[side]?.forEach((glob, i) => {
      const err = globError(glob);
      if (err) diagnostics.push(src.at(['paths', side, i], `paths.${side}.${i}: ${err}`));
    });
  }

  // Legacy workflow-level fallback rules: `if: claude-api.fails / use: openai-api`.
  const legacyFallback = new Map<Provider, Provider>();
  let notifyOnFailure: string | undefined;
  let stopOnFailure = false;
  w.fallback?.forEach((rule, i) => {
    const from = SERVICES[rule.if.replace(/\.fails$/, '')];
    if (!from) diagnostics.push(src.at(['fallback', i, 'if'], `fallback.${i}.if: unknown service in "${rule.if}"`));
    if (rule.use) {
      const to = SERVICES[rule.use];
      if (!to) diagnostics.push(src.at(['fallback', i, 'use'], `fallback.${i}.use: unknown service "${rule.use}"`));
      else if (from) legacyFallback.set(from, to);
    }
    if (rule.notify) notifyOnFailure = rule.notify;
    if (rule.continue === false) stopOnFailure = true;
  });

  const phaseSources: Array<{ path: SourcePath; phase: NonNullable<WorkflowSource['phases']>[number] }> = w.phases
    ? w.phases.map((phase, i) => ({ path: ['phases', i], phase }))
    : [
        {
          path: [],
          phase: { name: 'review', agents: w.agents ?? [], parallel: w.execution !== 'sequential' },
        },
      ];

  const phases: Phase[] = [];
  const seen = new Set<string>();
  const tools: ToolContext = { servers: w.mcp_servers ?? {}, src, diagnostics };
  for (const { path, phase } of phaseSources) {
    if (seen.has(phase.name)) diagnostics.push(src.at([...path, 'name'], `duplicate phase name "${phase.name}"`));
    seen.add(phase.name);
    if (phase.route) {
      const r = phase.route;
      const agent = resolveAgent(r.agent, catalog, legacyFallback, src, [...path, 'route', 'agent'], diagnostics, tools);
      if (!r.to.includes(r.default)) {
        diagnostics.push(
          src.at([...path, 'route', 'default'], `route.default: "${r.default}" is not one of route.to (${r.to.join(', ')})`),
        );
      }
      if (agent) {
        phases.push({
          kind: 'route',
          name: phase.name,
          dependsOn: phase.depends_on ?? [],
          agent: { ...agent, output: 'route', route: { choices: r.to, default: r.default } },
          to: r.to,
          default: r.default,
        });
      }
      continue;
    }
    if (phase.guardrail) {
      const g = phase.guardrail;
      const gp: SourcePath = [...path, 'guardrail'];
      if (g.source === 'input' && g.check)
        diagnostics.push(src.at([...gp, 'check'], 'guardrail.check names answers to check: use it with source: output'));
      if (g.source === 'output' && !g.check)
        diagnostics.push(src.at(gp, 'guardrail source: output needs check: [<phases whose answer it checks>]'));
      if (g.pii === 'off' && g.pii_types) diagnostics.push(src.at([...gp, 'pii_types'], 'guardrail.pii_types does nothing with pii: off'));
      const model = findModel(catalog.models, catalog.models.defaults.bedrock);
      if (model) {
        phases.push({
          kind: 'guardrail',
          name: phase.name,
          dependsOn: phase.depends_on ?? [],
          agent: guardrailAgent(model, g),
        });
      }
      continue;
    }
    if (phase.approval) {
      const a = phase.approval;
      const when = a.when ? parseWhen(a.when, src, [...path, 'approval', 'when'], diagnostics) : undefined;
      phases.push({
        kind: 'approval',
        name: phase.name,
        dependsOn: phase.depends_on ?? [],
        ...(when ? { when } : {}),
        channel: a.channel,
        approvers: a.approvers,
        timeoutSeconds: durationToSeconds(a.timeout),
        onTimeout: a.on_timeout,
        ...(a.escalate
          ? {
              escalate: {
                channel: a.escalate.channel,
                approvers: a.escalate.approvers ?? a.approvers,
                timeoutSeconds: durationToSeconds(a.escalate.timeout),
              },
            }
          : {}),
      });
      continue;
    }
    if (phase.ci) {
      phases.push({
        kind: 'ci',
        name: phase.name,
        dependsOn: phase.depends_on ?? [],
        channel: '',
        approvers: [],
        timeoutSeconds: durationToSeconds(phase.ci.timeout),
        onTimeout: phase.ci.on_timeout === 'continue' ? 'approve' : 'reject',
      });
      continue;
    }
    const agentsPath: SourcePath = w.phases ? [...path, 'agents'] : ['agents'];
    const agents: ResolvedAgent[] = [];
    const names = new Set<string>();
    (phase.agents ?? []).forEach((entry, i) => {
      const agent = resolveAgent(entry, catalog, legacyFallback, src, [...agentsPath, i], diagnostics, tools);
      if (!agent) return;
      if (names.has(agent.name)) {
        diagnostics.push(src.at([...agentsPath, i], `agent "${agent.name}" appears twice in phase "${phase.name}"`));
      }
      names.add(agent.name);
      agents.push(agent);
    });
    const parallel = phase.parallel ?? true;
    phases.push({
      kind: 'agents',
      name: phase.name,
      dependsOn: phase.depends_on ?? [],
      parallel,
      required: phase.required ?? stopOnFailure,
      maxConcurrency: parallel ? (phase.max_concurrency ?? Math.min(40, Math.max(1, agents.length))) : 1,
      agents,
    });
  }
  // A route's targets run after it: the dependency is implied.
  for (const route of phases.filter((p): p is RoutePhase => p.kind === 'route')) {
    route.to.forEach((target, t) => {
      const i = phases.findIndex((p) => p.name === target);
      const ps = phaseSources.find((x) => x.phase.name === target);
      const at: SourcePath = [...(phaseSources.find((x) => x.phase.name === route.name)?.path ?? []), 'route', 'to', t];
      const p = phases[i];
      if (!p || !ps) {
        diagnostics.push(src.at(at, `route.to: unknown phase "${target}"`));
        return;
      }
      if (p.kind !== 'agents')
        diagnostics.push(src.at(at, `route.to: "${target}" is a ${p.kind} phase; a route chooses among agent phases`));
      if (!p.dependsOn.includes(route.name)) {
        phases[i] = { ...p, dependsOn: [...p.dependsOn, route.name] } as Phase;
        ps.phase = { ...ps.phase, depends_on: [...(ps.phase.depends_on ?? []), route.name] };
      }
    });
  }
  const graphOk = diagnostics.length;
  checkGraph(phaseSources, src, diagnostics);
  if (diagnostics.length === graphOk && phases.length === phaseSources.length) {
    for (const level of phaseLevels(phases)) {
      if (level.length < 2) continue;
      for (const p of level.filter((x) => x.kind !== 'agents')) {
        const at = phaseSources.find((x) => x.phase.name === p.name)?.path ?? [];
        const others = level.filter((x) => x !== p).map((x) => x.name);
        diagnostics.push(
          src.at(
            [...at, 'depends_on'],
            `${p.kind} phase "${p.name}" would run side by side with ${others.join(', ')}; make it depend on them or them on it`,
          ),
        );
      }
    }
  }

  const kind: Workflow['kind'] = trigger.events.includes(REQUEST_EVENT) ? 'request' : 'review';
  const verifier = verifierPhase(w, phases, catalog, src, diagnostics);
  if (verifier) phases.push(verifier);
  const graphSound = diagnostics.length === graphOk && phases.length >= phaseSources.length;
  checkPhaseKinds(kind, w, phases, phaseSources, src, diagnostics, graphSound);
  const withWrites = allowWrites(phases, w.allow_write_tools === true, phaseSources, src, diagnostics);

  const output = normalizeOutput(w, withWrites, src, diagnostics, kind);

  return {
    id,
    kind,
    name: w.name,
    description: w.description ?? '',
    trigger,
    ...(w.paths ? { paths: includeExclude(w.paths) } : {}),
    context:
      w.context === 'none'
        ? { lines: 0, wholeFileLines: 0, enclosing: false }
        : {
            lines: w.context?.lines ?? DEFAULT_CONTEXT_SETTINGS.lines,
            wholeFileLines: w.context?.whole_file_lines ?? DEFAULT_CONTEXT_SETTINGS.wholeFileLines,
            enclosing: w.context?.enclosing ?? DEFAULT_CONTEXT_SETTINGS.enclosing,
          },
    budget: {
      ...(w.budget?.max_usd_per_run !== undefined ? { maxUsdPerRun: w.budget.max_usd_per_run } : {}),
      ...(w.budget?.project ? { project: w.budget.project } : {}),
    },
    phases: withWrites,
    output,
    ...(notifyOnFailure ? { notifyOnFailure } : {}),
  };
}

/** The `output:` keys as written (the list shape merged). */
type OutputSource = Exclude<NonNullable<WorkflowSource['output']>, readonly unknown[]>;

/**
 * The `output:` block as the model has it. Every setting does something, or a diagnostic at its
 * line says why not: a key given twice in the list shape (the later would win silently), both
 * spellings of one setting (`review`/`github_review`/`github_comment`, `slack`/`slack_notification`), the
 * review's settings with `review: false` (no review, comment or check run is posted), and
 * `code_scanning: true` on a workflow without a security agent (nothing to upload).
 */
function normalizeOutput(
  w: WorkflowSource,
  phases: readonly Phase[],
  src: YamlSource,
  diagnostics: Diagnostic[],
  kind: Workflow['kind'],
): Workflow['output'] {
  const entries: OutputSource[] = w.output ? (Array.isArray(w.output) ? w.output : [w.output]) : [];
  const at = (key: keyof OutputSource): SourcePath => {
    if (!Array.isArray(w.output)) return ['output', key];
    const i = w.output.findIndex((entry) => entry[key] !== undefined);
    return ['output', Math.max(i, 0), key];
  };
  const o: OutputSource = {};
  entries.forEach((entry, i) => {
    for (const [key, value] of Object.entries(entry) as [keyof OutputSource, unknown][]) {
      if (value === undefined) continue;
      if (o[key] !== undefined) diagnostics.push(src.at(['output', i, key], `output.${key} is given twice; keep one`));
      (o as Record<string, unknown>)[key] = value;
    }
  });
  for (const [key, older] of [
    ['review', 'github_review'],
    ['review', 'github_comment'],
    ['github_review', 'github_comment'],
    ['slack', 'slack_notification'],
  ] as const) {
    if (o[key] !== undefined && o[older] !== undefined) {
      diagnostics.push(src.at(at(older), `output.${older} is the older form of output.${key}: give only one of them`));
    }
  }
  // The inline review, the comment's format and the check run exist only when the workflow posts on the pull request.
  const review = o.review ?? o.github_review ?? o.github_comment;
  if (review === false) {
    for (const key of ['max_inline_comments', 'inline_min_severity', 'fail_on', 'format'] as const) {
      if (o[key] === undefined) continue;
      diagnostics.push(src.at(at(key), `output.${key} does nothing with review: false (no review, comment or check run is posted)`));
    }
  }
  if (o.code_scanning && securityAgents({ phases }).length === 0) {
    diagnostics.push(
      src.at(
        at('code_scanning'),
        `output.code_scanning uploads the findings of security agents (categories: [${SECURITY_CATEGORY}]) and this workflow has none: add one (e.g. security) or remove it`,
      ),
    );
  }
  // GitLab takes SARIF only as a CI artifact: on a workflow only merge requests start, the upload would never happen.
  const events = Array.isArray(w.trigger.event) ? w.trigger.event : [w.trigger.event];
  if (o.code_scanning && events.every((e) => e.startsWith('merge_request.'))) {
    diagnostics.push(
      src.at(
        at('code_scanning'),
        'output.code_scanning uploads to GitHub code scanning, and this workflow only starts on GitLab merge requests (GitLab takes SARIF only as a CI job artifact): remove it',
      ),
    );
  }
  const slack = typeof o.slack === 'string' ? o.slack : o.slack === true || o.slack_notification ? 'default' : undefined;
  // A request run has no change to post on: the review's settings do nothing there; a review has no answer to send.
  if (kind === 'request') {
    for (const key of REVIEW_OUTPUTS) {
      if (o[key] === undefined || (key === 'review' && o[key] === false)) continue;
      diagnostics.push(
        src.at(at(key), `output.${key} posts on a pull or merge request, and a request workflow (trigger: request) has none: remove it`),
      );
    }
  } else if (o.answer !== undefined) {
    diagnostics.push(
      src.at(at('answer'), 'output.answer sends an answer to a request: only request workflows (trigger: request) have one'),
    );
  }
  const answerProducers = phases.filter(answers).map((p) => p.name);
  const answer = kind === 'request' ? (o.answer === undefined ? [...answerProducers].reverse() : [o.answer].flat()) : [];
  if (o.answer !== undefined) {
    [o.answer].flat().forEach((name) => {
      if (!phases.some((p) => p.name === name)) diagnostics.push(src.at(at('answer'), `output.answer: unknown phase "${name}"`));
      else if (!answerProducers.includes(name)) {
        diagnostics.push(
          src.at(
            at('answer'),
            `output.answer: phase "${name}" writes no answer (answer agents and output guardrails do; phases that do: ${answerProducers.join(', ') || 'none'})`,
          ),
        );
      }
    });
  }
  if (kind === 'request' && answer.length === 0) {
    diagnostics.push(src.at(['phases'], 'a request workflow needs a phase that answers: an agent with output: answer'));
  }
  const createFiles = kind === 'request' ? undefined : normalizeCreateFiles(o.create_files, at('create_files'), phases, src, diagnostics);
  return {
    answer,
    review: kind === 'request' ? false : (review ?? true),
    ...(slack ? { slack } : {}),
    codeScanning: o.code_scanning ?? false,
    databaseLog: o.database_log ?? true,
    ...(createFiles ? { createFiles } : {}),
    inline: {
      maxComments: o.max_inline_comments ?? DEFAULT_MAX_INLINE_COMMENTS,
      minSeverity: o.inline_min_severity ?? DEFAULT_INLINE_MIN_SEVERITY,
    },
    failOn: o.fail_on ?? DEFAULT_FAIL_ON,
  };
}

/**
 * `output.create_files` as the compiler has it (`true`: the {@link DEFAULT_TEST_PATHS}), or
 * undefined when off. Diagnostics at the setting's line: a glob that is absolute, leaves the
 * repository or does not compile; no agent that writes files (`output: tests`) in the workflow;
 * a `ci` phase that does not come after the phase of those agents (it would wait on a commit that
 * does not exist yet).
 */
function normalizeCreateFiles(
  value: OutputSource['create_files'],
  at: SourcePath,
  phases: readonly Phase[],
  src: YamlSource,
  diagnostics: Diagnostic[],
): CreateFilesSettings | undefined {
  if (value === undefined || value === false) return undefined;
  const settings = value === true ? {} : value;
  (settings.paths ?? []).forEach((glob, i) => {
    const err = globError(glob);
    if (err) diagnostics.push(src.at([...at, 'paths', i], `output.create_files.paths: ${err}`));
  });
  const writers = testPhases(phases);
  if (writers.length === 0) {
    diagnostics.push(
      src.at(
        at,
        'output.create_files commits the files of agents with output: tests and this workflow has none: give the test-writing agent output: tests in its catalog file, or remove create_files',
      ),
    );
  } else {
    const levels = phaseLevels(phases);
    const levelOf = (name: string) => levels.findIndex((l) => l.some((p) => p.name === name));
    const last = Math.max(...writers.map((p) => levelOf(p.name)));
    for (const ci of phases.filter((p) => p.kind === 'ci')) {
      if (levelOf(ci.name) <= last) {
        diagnostics.push(
          src.at(
            at,
            `output.create_files: ci phase "${ci.name}" would wait before the tests are committed; make it depend on ${writers.map((p) => p.name).join(', ')}`,
          ),
        );
      }
    }
  }
  return { paths: settings.paths ?? DEFAULT_TEST_PATHS, pushToPullRequest: settings.push_to_pr ?? false };
}

/**
 * The trigger of a workflow source: events checked against GitHub's webhook definitions (a bare
 * `pull_request` stands for {@link DEFAULT_PR_ACTIONS}), conditions merged from the list shape,
 * globs checked, pull-request filters refused on a workflow that only starts manually, and
 * `ready_for_review` added while drafts are skipped (a draft skipped when it opens is reviewed when
 * it is marked ready, not never).
 */
function normalizeTrigger(w: WorkflowSource, src: YamlSource, diagnostics: Diagnostic[]): Workflow['trigger'] {
  const written = Array.isArray(w.trigger.event) ? w.trigger.event : [w.trigger.event];
  written.forEach((e, i) => {
    const err = triggerEventError(e);
    if (err) diagnostics.push(src.at(Array.isArray(w.trigger.event) ? ['trigger', 'event', i] : ['trigger', 'event'], err));
  });
  const events = [...new Set(written.flatMap((e) => (e === 'pull_request' ? DEFAULT_PR_ACTIONS.map((a) => `pull_request.${a}`) : [e])))];
  const condList = w.trigger.conditions ? (Array.isArray(w.trigger.conditions) ? w.trigger.conditions : [w.trigger.conditions]) : [];
  const conditions: Conditions = Object.assign({}, ...condList);
  const condPath = (key: string): SourcePath => {
    if (!Array.isArray(w.trigger.conditions)) return ['trigger', 'conditions', key];
    const i = w.trigger.conditions.findIndex((c) => key in c);
    return ['trigger', 'conditions', i, key];
  };
  const checkGlobs = (globs: readonly string[] | undefined, path: SourcePath, label: string) =>
    globs?.forEach((glob, i) => {
      const err = globError(glob);
      if (err) diagnostics.push(src.at([...path, i], `${label}.${i}: ${err}`));
    });
  checkGlobs(conditions.files_changed, condPath('files_changed'), 'files_changed');
  for (const key of ['authors', 'branches'] as const) {
    for (const side of ['include', 'exclude'] as const) checkGlobs(conditions[key]?.[side], [...condPath(key), side], `${key}.${side}`);
  }
  if (!events.some((e) => /^(?:pull_request|merge_request|change)\./.test(e))) {
    for (const key of PULL_REQUEST_CONDITIONS.filter((k) => conditions[k] !== undefined)) {
      const message = `${key} filters pull requests, but this workflow only starts manually: remove it or add a pull_request, merge_request or change event`;
      diagnostics.push(src.at(condPath(key), message, { key: true }));
    }
  }
  const skipDrafts = conditions.skip_drafts ?? true;
  if (skipDrafts && events.includes('pull_request.opened') && !events.includes('pull_request.ready_for_review')) {
    events.push('pull_request.ready_for_review');
  }
  // The same for both forges: a change.opened workflow reviews a draft when it is marked ready.
  if (skipDrafts && events.includes('change.opened') && !events.includes('change.ready')) events.push('change.ready');
  return {
    events,
    ...(conditions.files_changed ? { filesChanged: conditions.files_changed } : {}),
    ...(conditions.lines_changed ? { linesChanged: parseComparison(conditions.lines_changed) } : {}),
    ...(conditions.test_coverage ? { testCoverage: parseComparison(conditions.test_coverage) } : {}),
    runBy: w.trigger.run_by ?? [],
    skipDrafts,
    skipBots: conditions.skip_bots ?? true,
    ...(conditions.authors ? { authors: includeExclude(conditions.authors) } : {}),
    ...(conditions.labels ? { labels: includeExclude(conditions.labels) } : {}),
    ...(conditions.branches ? { branches: includeExclude(conditions.branches) } : {}),
  };
}

const includeExclude = (f: { include?: string[] | undefined; exclude?: string[] | undefined }): IncludeExclude => ({
  include: f.include ?? [],
  exclude: f.exclude ?? [],
});

/** Parses `"> 100"` or `"< 80%"`. The schema has already checked the shape. */
export function parseComparison(text: string): Comparison {
  const m = /^\s*(>=|<=|==|>|<)\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  if (!m) throw new Error(`not a comparison: ${text}`);
  return { op: m[1] as Comparison['op'], value: Number(m[2]) };
}

function globError(glob: string): string | undefined {
  if (glob.startsWith('/')) return `"${glob}" is absolute; globs match paths relative to the repository root`;
  if (glob.split('/').includes('..')) return `"${glob}" leaves the repository ("..")`;
  let depth = 0;
  for (const ch of glob.replace(/\\./g, '')) {
    if (ch === '{' || ch === '[') depth++;
    if (ch === '}' || ch === ']') depth--;
    if (depth < 0) break;
  }
  if (depth !== 0) return `"${glob}" has unbalanced brackets`;
  try {
    picomatch.makeRe(glob, { strictBrackets: true });
  } catch (e) {
    return `"${glob}" is not a valid glob: ${(e as Error).message}`;
  }
  return undefined;
}

/** Finds an agent by name, alias, or name without its `-agent` suffix. */
export function findAgent(agents: ReadonlyMap<string, AgentSpec>, ref: string): AgentSpec | undefined {
  const direct = agents.get(ref) ?? agents.get(ref.replace(/-agent$/, ''));
  if (direct) return direct;
  for (const spec of agents.values()) if (spec.aliases.includes(ref)) return spec;
  return undefined;
}

function resolveAgent(
  entry: AgentEntry,
  catalog: Catalog,
  legacyFallback: ReadonlyMap<Provider, Provider>,
  src: YamlSource,
  path: SourcePath,
  diagnostics: Diagnostic[],
  toolContext: ToolContext,
): ResolvedAgent | undefined {
  const ref = typeof entry === 'string' ? entry : 'agent' in entry ? entry.agent : entry.name;
  const refPath = typeof entry === 'string' ? path : [...path, 'agent' in entry ? 'agent' : 'name'];
  const spec = findAgent(catalog.agents, ref);
  if (!spec) {
    const known = [...catalog.agents.keys()].join(', ');
    diagnostics.push(src.at(refPath, `unknown agent "${ref}" (known: ${known})`));
    return undefined;
  }
  let provider: Provider | undefined;
  let model: string | undefined;
  let maxTokens = spec.max_tokens;
  let temperature = spec.temperature;
  let tasks = spec.tasks;
  let fallbackRefs = spec.fallback;
  let cache = spec.cache;
  const paths = agentPaths(entry, spec, src, path, diagnostics);
  let modelPath: SourcePath = path;
  if (typeof entry !== 'string' && 'agent' in entry) {
    provider = entry.provider;
    model = entry.model;
    cache = entry.cache ?? cache;
    modelPath = [...path, entry.model ? 'model' : 'provider'];
    maxTokens = entry.max_tokens ?? maxTokens;
    temperature = entry.temperature ?? temperature;
    tasks = entry.tasks ?? tasks;
    fallbackRefs = entry.fallback ?? fallbackRefs;
  } else if (typeof entry !== 'string') {
    provider = entry.service ? SERVICES[entry.service] : undefined;
    model = entry.config?.model;
    modelPath = entry.config?.model ? [...path, 'config', 'model'] : [...path, 'service'];
    maxTokens = entry.config?.max_tokens ?? maxTokens;
    temperature = entry.config?.temperature ?? temperature;
    tasks = entry.tasks ?? tasks;
  }
  const models = catalog.models;
  let resolved: ResolvedModel | undefined;
  let auto: ResolvedAgent['auto'];
  if (model === 'auto' || (!model && (!provider || provider === spec.provider) && spec.model === 'auto')) {
    const p = provider ?? spec.provider;
    const tiers = models.tiers[p];
    const picks = tiers
      ? { simple: findModel(models, tiers.simple), medium: findModel(models, tiers.medium), complex: findModel(models, tiers.complex) }
      : undefined;
    if (!picks?.simple || !picks.medium || !picks.complex) {
      diagnostics.push(src.at(modelPath, `model "auto" needs tiers.${p} (simple, medium, complex) in workflows/models.yml`));
      return undefined;
    }
    auto = { simple: picks.simple, medium: picks.medium, complex: picks.complex };
    resolved = auto[spec.complexity];
  } else if (model) {
    resolved = findModel(models, model);
    if (!resolved) {
      diagnostics.push(src.at(modelPath, `unknown model "${model}" (see workflows/models.yml)`));
      return undefined;
    }
    if (provider && resolved.provider !== provider) {
      diagnostics.push(src.at(modelPath, `model "${model}" is a ${resolved.provider} model, not ${provider}`));
      return undefined;
    }
  } else if (provider && provider !== spec.provider) {
    const ref = models.defaults[provider];
    if (!ref) {
      diagnostics.push(src.at(modelPath, `no default model for ${provider} in workflows/models.yml: name a model`));
      return undefined;
    }
    resolved = findModel(models, ref);
  } else {
    resolved = findModel(models, spec.model);
  }
  if (!resolved) {
    diagnostics.push(src.at(modelPath, `agent "${spec.name}" names an unknown model "${spec.model}"`));
    return undefined;
  }
  const fallback: ResolvedModel[] = [];
  fallbackRefs.forEach((target, i) => {
    const [p, m] = splitTarget(target);
    const err = fallbackError(models, target);
    if (err) {
      diagnostics.push(src.at(typeof entry === 'string' ? path : [...path, 'fallback', i], `fallback "${target}": ${err}`));
      return;
    }
    const fm = findModel(models, m ?? models.defaults[p as Provider] ?? '');
    if (fm) fallback.push(fm);
  });
  const legacy = legacyFallback.get(resolved.provider);
  if (legacy && !fallback.some((f) => f.provider === legacy)) {
    const fm = findModel(models, models.defaults[legacy] ?? '');
    if (fm) fallback.push(fm);
  }
  if (maxTokens >= resolved.contextWindow) {
    diagnostics.push(src.at(path, `max_tokens ${maxTokens} does not fit ${resolved.alias}'s context window`));
  }
  // A model cannot write more than its max_output: asking for more fails every call (HTTP 400).
  const maxTokensPath: SourcePath =
    typeof entry === 'string'
      ? path
      : 'agent' in entry && entry.max_tokens !== undefined
        ? [...path, 'max_tokens']
        : !('agent' in entry) && entry.config?.max_tokens !== undefined
          ? [...path, 'config', 'max_tokens']
          : path;
  const routed = auto ? [auto.simple, auto.medium, auto.complex] : [];
  const writers = [
    { m: resolved, role: 'model' },
    ...routed.map((m) => ({ m, role: 'tier model' })),
    ...fallback.map((m) => ({ m, role: 'fallback' })),
  ];
  for (const { m, role } of writers) {
    const maxOutput = models.models[m.alias]?.max_output;
    if (maxOutput !== undefined && maxTokens > maxOutput) {
      diagnostics.push(
        src.at(
          maxTokensPath,
          `max_tokens ${maxTokens} of agent "${spec.name}" is more than its ${role} ${m.alias} can write (max_output ${maxOutput} in models.yml)`,
        ),
      );
    }
  }
  return {
    name: spec.name,
    model: resolved,
    fallback: fallback.filter((f) => f.modelId !== resolved.modelId),
    maxTokens,
    temperature,
    categories: spec.categories,
    tasks,
    prompt: spec.prompt.trim(),
    cache,
    complexity: spec.complexity,
    output: spec.output,
    ...(auto ? { auto } : {}),
    paths,
    ...agentTools(entry, toolContext, path),
  };
}

/** What resolving an agent's `tools:` needs: the workflow's MCP servers, and where to report. */
interface ToolContext {
  readonly servers: NonNullable<WorkflowSource['mcp_servers']>;
  readonly src: YamlSource;
  readonly diagnostics: Diagnostic[];
}

/** The agent's time limit unless `time_limit` says otherwise: 5 minutes. */
export const DEFAULT_TIME_LIMIT_SECONDS = 300;
/** The longest `time_limit`: the InvokeAgent task's 900 s less 30 s to record what the agent did. */
export const MAX_TIME_LIMIT_SECONDS = 870;
/** Model calls of a tool loop unless `max_iterations` says otherwise. Tied to lambdas/core/tool-loop.ts by a test. */
export const DEFAULT_MAX_ITERATIONS = 8;

/**
 * An agent entry's `tools:`, `max_iterations`, `time_limit` and `reads:` resolved: each server
 * from the workflow's `mcp_servers:` (or the built-in `agentflow` tools, which are read-only), its
 * allow-list as `{ name, write }`. `allowWrite` is decided later from the phase's place
 * ({@link allowWrites}).
 */
function agentTools(
  entry: AgentEntry,
  ctx: ToolContext,
  path: SourcePath,
): Pick<ResolvedAgent, 'tools' | 'maxIterations' | 'timeLimitSeconds' | 'allowWrite' | 'reads'> {
  const e = typeof entry !== 'string' && 'agent' in entry ? entry : undefined;
  const { src, diagnostics } = ctx;
  const tools: ToolServer[] = [];
  e?.tools?.forEach((use, i) => {
    const at: SourcePath = [...path, 'tools', i];
    const allow = use.allow.map((a) =>
      typeof a === 'string'
        ? { name: a, write: false, limits: [] }
        : {
            name: a.name,
            write: a.write ?? false,
            limits: Object.entries(a.limits ?? {}).map(([arg, ref]) => {
              const [phase = '', field = ''] = ref.split('.');
              return { arg, phase, field };
            }),
          },
    );
    if (tools.some((t) => t.name === use.server))
      diagnostics.push(src.at([...at, 'server'], `tools: server "${use.server}" is listed twice; merge its allow lists`));
    if (use.server === BUILTIN_TOOL_SERVER) {
      allow.forEach((a, j) => {
        if (!(BUILTIN_TOOLS as readonly string[]).includes(a.name)) {
          diagnostics.push(src.at([...at, 'allow', j], `unknown built-in tool "${a.name}" (known: ${BUILTIN_TOOLS.join(', ')})`));
        } else if (a.write) diagnostics.push(src.at([...at, 'allow', j], `built-in tool "${a.name}" is read-only: remove write`));
      });
      tools.push({ name: BUILTIN_TOOL_SERVER, args: [], builtin: true, allow });
      return;
    }
    const server = ctx.servers[use.server];
    if (!server) {
      const known = [BUILTIN_TOOL_SERVER, ...Object.keys(ctx.servers)].join(', ');
      diagnostics.push(src.at([...at, 'server'], `tools: unknown server "${use.server}" (known: ${known}; declare it under mcp_servers)`));
      return;
    }
    tools.push({
      name: use.server,
      ...('command' in server ? { command: server.command, args: server.args ?? [] } : { url: server.url, args: [] }),
      builtin: false,
      allow,
    });
  });
  if (e?.max_iterations !== undefined && tools.length === 0) {
    diagnostics.push(src.at([...path, 'max_iterations'], 'max_iterations caps the tool loop: it does nothing without tools'));
  }
  const timeLimit = e?.time_limit ? durationToSeconds(e.time_limit) : DEFAULT_TIME_LIMIT_SECONDS;
  if (timeLimit > MAX_TIME_LIMIT_SECONDS || timeLimit < 10) {
    diagnostics.push(
      src.at([...path, 'time_limit'], `time_limit must be between 10s and ${MAX_TIME_LIMIT_SECONDS}s (the task's 900 s less 30 s)`),
    );
  }
  return {
    tools,
    maxIterations: e?.max_iterations ?? DEFAULT_MAX_ITERATIONS,
    timeLimitSeconds: Math.min(Math.max(timeLimit, 10), MAX_TIME_LIMIT_SECONDS),
    allowWrite: false,
    reads: e?.reads ?? [],
  };
}

/** The built-in guardrail agent of a `guardrail:` phase (it calls no model: `model` only fills the Map item). */
function guardrailAgent(model: ResolvedModel, g: NonNullable<GuardrailSource>): ResolvedAgent {
  return {
    name: GUARDRAIL_AGENT,
    model,
    fallback: [],
    maxTokens: 256,
    temperature: 0,
    categories: [],
    tasks: [],
    prompt: '',
    cache: false,
    complexity: 'simple',
    output: 'guardrail',
    paths: { include: [], exclude: [] },
    tools: [],
    maxIterations: 1,
    timeLimitSeconds: 60,
    allowWrite: false,
    reads: [],
    guardrail: {
      source: g.source === 'input' ? 'INPUT' : 'OUTPUT',
      phases: g.check ?? [],
      deniedTopics: g.denied_topics ?? [],
      ...(g.pii === 'off' ? { pii: [] } : g.pii_types ? { pii: g.pii_types } : {}),
      piiAction: g.pii === 'block' ? 'block' : 'mask',
      promptAttack: g.prompt_attack ?? true,
      ...(g.bedrock ? { guardrailId: g.bedrock.id, guardrailVersion: g.bedrock.version } : {}),
    },
  };
}

type GuardrailSource = NonNullable<WorkflowSource['phases']>[number]['guardrail'];

/** The name of the built-in guardrail agent. */
export const GUARDRAIL_AGENT = 'guardrail';

/** Parses `approval.when` (`"refund.amount_usd > 100"`); the schema has checked the shape. */
function parseWhen(text: string, src: YamlSource, at: SourcePath, diagnostics: Diagnostic[]): WhenCondition | undefined {
  const m = /^\s*([a-z0-9][a-z0-9-]*)\.([A-Za-z0-9_]+)\s*(>=|<=|==|!=|>|<)\s*(?:"([^"]*)"|(\S+))\s*$/.exec(text);
  if (!m) return undefined;
  const [, phase = '', field = '', op = '==', quoted, bare = ''] = m;
  const value: number | string | boolean =
    quoted !== undefined ? quoted : bare === 'true' ? true : bare === 'false' ? false : /^-?\d+(\.\d+)?$/.test(bare) ? Number(bare) : bare;
  if (typeof value !== 'number' && !['==', '!='].includes(op)) {
    diagnostics.push(src.at(at, `approval.when: ${op} compares numbers; "${String(value)}" is not one`));
    return undefined;
  }
  return { phase, field, op: op as WhenCondition['op'], value, text: text.trim() };
}

/**
 * The data fields an answer agent's prompt declares (its line `Data fields: name (type), …`, on
 * one line), or undefined when it declares none (then any field may be compared). Tied to
 * lambdas/core/answer.ts `declaresDataFields` by a test: both read the same line.
 */
export function declaredDataFields(prompt: string): string[] | undefined {
  const line = /^[ \t]*Data fields:[ \t]*(\S.*)$/im.exec(prompt)?.[1];
  if (line === undefined) return undefined;
  return line
    .split(',')
    .map((f) => /^\s*([A-Za-z0-9_]+)/.exec(f)?.[1])
    .filter((f): f is string => f !== undefined);
}

/** Why `field` cannot be compared on `agent`'s answer (a misspelt field would make a gate always ask), or undefined. */
function undeclaredField(agent: ResolvedAgent | undefined, field: string): string | undefined {
  const declared = agent ? declaredDataFields(agent.prompt) : undefined;
  if (!agent || declared === undefined || declared.includes(field)) return undefined;
  return `agent "${agent.name}" answers no field "${field}" (its prompt's Data fields: ${declared.join(', ') || 'none'})`;
}

/** Whether a phase writes an answer a later phase, a guardrail or `output.answer` can use. */
const answers = (p: Phase): boolean =>
  (p.kind === 'agents' && p.agents.some((a) => a.output === 'answer')) ||
  (p.kind === 'guardrail' && p.agent.guardrail?.source === 'OUTPUT');

/** The `output:` keys of a review (they post on a change). */
const REVIEW_OUTPUTS = [
  'review',
  'github_review',
  'github_comment',
  'code_scanning',
  'create_files',
  'max_inline_comments',
  'inline_min_severity',
  'fail_on',
  'format',
] as const;

/**
 * Whether phase `by` comes before `name` on every way the run can reach it: each of `name`'s
 * dependencies is `by` or is itself dominated by `by` (a phase after conditional phases runs when
 * one of them ran, so every dependency must be). A phase without dependencies is dominated by none.
 */
function dominates(phases: readonly Phase[], by: string, name: string, seen = new Set<string>()): boolean {
  const p = phases.find((x) => x.name === name);
  if (!p || p.dependsOn.length === 0 || seen.has(name)) return false;
  seen.add(name);
  return p.dependsOn.every((d) => d === by || dominates(phases, by, d, seen));
}

/** Every phase that `name` depends on, directly or not. */
function ancestors(phases: readonly Phase[], name: string): Set<string> {
  const out = new Set<string>();
  const walk = (n: string) => {
    for (const d of phases.find((p) => p.name === n)?.dependsOn ?? []) {
      if (out.has(d)) continue;
      out.add(d);
      walk(d);
    }
  };
  walk(name);
  return out;
}

/**
 * Which phases are conditional: a route's targets, and phases after a conditional phase (they run
 * when at least one of their conditional dependencies ran). The compiler guards these with Choice
 * states; Aggregate records why one did not run.
 */
export function conditionalPhases(phases: readonly Phase[]): Map<string, { routeOf?: string; after: string[] }> {
  const out = new Map<string, { routeOf?: string; after: string[] }>();
  for (const r of phases) if (r.kind === 'route') for (const t of r.to) out.set(t, { routeOf: r.name, after: [] });
  for (const level of phaseLevels(phases)) {
    for (const p of level) {
      if (out.has(p.name)) continue;
      const after = p.dependsOn.filter((d) => out.has(d));
      if (after.length > 0) out.set(p.name, { after });
    }
  }
  return out;
}

/**
 * The phase kinds a workflow's run kind allows, and the rules of routes, guardrails, conditional
 * gates and `reads:`, each reported at its line.
 */
function checkPhaseKinds(
  kind: Workflow['kind'],
  w: WorkflowSource,
  phases: readonly Phase[],
  sources: ReadonlyArray<{ path: SourcePath; phase: { name: string } }>,
  src: YamlSource,
  diagnostics: Diagnostic[],
  graphSound: boolean,
): void {
  const at = (name: string, ...rest: Array<string | number>): SourcePath => [
    ...(sources.find((x) => x.phase.name === name)?.path ?? []),
    ...rest,
  ];
  const events = Array.isArray(w.trigger.event) ? w.trigger.event : [w.trigger.event];
  if (kind === 'request') {
    if (events.some((e) => e !== REQUEST_EVENT)) {
      diagnostics.push(
        src.at(['trigger', 'event'], 'trigger: request starts a request workflow; it cannot be combined with change events or manual'),
      );
    }
    if (w.trigger.conditions)
      diagnostics.push(src.at(['trigger', 'conditions'], 'trigger.conditions filter changes: a request workflow has none', { key: true }));
    for (const key of ['paths', 'context', 'verify'] as const) {
      if (w[key] !== undefined)
        diagnostics.push(src.at([key], `${key} applies to a review of a change: a request workflow has none`, { key: true }));
    }
  }
  for (const p of phases) {
    const { agents, what } = PHASE_CHECKS[p.kind](p as never);
    if (kind === 'review' && what) diagnostics.push(src.at(at(p.name, 'name'), `${what} only in request workflows (trigger: request)`));
    for (const a of agents) {
      const i = p.kind === 'agents' ? p.agents.indexOf(a) : -1;
      const agentAt = p.kind === 'agents' ? at(p.name, 'agents', i) : at(p.name);
      if (kind === 'request' && a.output !== 'answer' && a.output !== 'route' && a.output !== 'guardrail') {
        diagnostics.push(
          src.at(
            agentAt,
            `agent "${a.name}" reviews a change (output: ${a.output}); a request workflow's agents answer (output: answer in its catalog file)`,
          ),
        );
      }
      if (kind === 'review' && a.output === 'answer') {
        diagnostics.push(
          src.at(agentAt, `agent "${a.name}" answers requests (output: answer): use it in a request workflow (trigger: request)`),
        );
      }
      if (kind === 'request' && a.tools.some((t) => t.builtin)) {
        diagnostics.push(
          src.at(agentAt, `the built-in tools (server: ${BUILTIN_TOOL_SERVER}) read the change under review; a request workflow has none`),
        );
      }
      // A review agent runs once per chunk and Step Functions retries it: a write would be repeated.
      const writes = a.tools.flatMap((t) => t.allow.filter((x) => x.write).map((x) => `${t.name}.${x.name}`));
      if (kind === 'review' && writes.length > 0) {
        diagnostics.push(
          src.at(
            agentAt,
            `agent "${a.name}" reviews a change and may not use write tools (${writes.join(', ')}): it runs once per part of the change and is retried, so a write would be repeated; act in a request workflow`,
          ),
        );
      }
      if (kind === 'review' && a.reads.length > 0)
        diagnostics.push(src.at(agentAt, 'reads: only in request workflows (answers are given to later agents there)'));
      const before = ancestors(phases, p.name);
      a.tools.forEach((t) => {
        t.allow.forEach((tool) => {
          for (const l of tool.limits) {
            const target = phases.find((x) => x.name === l.phase);
            const ok =
              target?.kind === 'agents' &&
              target.agents.length === 1 &&
              target.agents[0]?.output === 'answer' &&
              before.has(l.phase) &&
              (!graphSound || !conditionalPhases(phases).has(l.phase) || dominates(phases, l.phase, p.name));
            const undeclared = target?.kind === 'agents' ? undeclaredField(target.agents[0], l.field) : undefined;
            if (kind === 'review') {
              diagnostics.push(src.at(agentAt, `tool "${tool.name}": limits compare an earlier answer: only in request workflows`));
            } else if (ok && undeclared) {
              diagnostics.push(src.at(agentAt, `tool "${tool.name}": limits.${l.arg}: ${undeclared}`));
            } else if (!ok) {
              diagnostics.push(
                src.at(
                  agentAt,
                  `tool "${tool.name}": limits.${l.arg} names "${l.phase}", which must be an earlier phase with one answer agent that runs whenever this phase does`,
                ),
              );
            }
          }
        });
      });
      a.reads.forEach((r) => {
        const target = phases.find((x) => x.name === r);
        if (!target || !before.has(r) || !answers(target)) {
          diagnostics.push(src.at(agentAt, `reads: "${r}" is not an earlier phase that answers (it must be one this phase depends on)`));
        }
      });
    }
    if (p.kind === 'guardrail') {
      const before = ancestors(phases, p.name);
      p.agent.guardrail?.phases.forEach((c, i) => {
        const target = phases.find((x) => x.name === c);
        if (!target || !before.has(c) || !answers(target)) {
          diagnostics.push(
            src.at(
              at(p.name, 'guardrail', 'check', i),
              `guardrail.check: "${c}" is not an earlier phase that answers (it must be one this phase depends on)`,
            ),
          );
        }
      });
    }
    if (p.kind === 'approval' && p.when) {
      const target = phases.find((x) => x.name === p.when?.phase);
      const whenAt = at(p.name, 'approval', 'when');
      if (kind === 'review')
        diagnostics.push(src.at(whenAt, 'approval.when compares an answer field: only in request workflows (trigger: request)'));
      else if (!target || !ancestors(phases, p.name).has(target.name)) {
        diagnostics.push(src.at(whenAt, `approval.when: "${p.when.phase}" is not an earlier phase this gate depends on`));
      } else if (graphSound && conditionalPhases(phases).has(target.name) && !dominates(phases, target.name, p.name)) {
        diagnostics.push(
          src.at(
            whenAt,
            `approval.when: "${target.name}" may be skipped while this gate runs (a route or an earlier skip); make the gate depend only on it, or compare a phase that always runs`,
          ),
        );
      } else if (target.kind !== 'agents' || target.agents.length !== 1 || target.agents[0]?.output !== 'answer') {
        diagnostics.push(
          src.at(whenAt, `approval.when: phase "${target.name}" must have exactly one agent with output: answer (its data is compared)`),
        );
      } else {
        const undeclared = undeclaredField(target.agents[0], p.when.field);
        if (undeclared) diagnostics.push(src.at(whenAt, `approval.when: ${undeclared}`));
      }
    }
    if (p.kind === 'ci' && kind === 'request')
      diagnostics.push(src.at(at(p.name, 'ci'), 'a ci phase waits for CI on a change: a request workflow has none'));
  }
  if (!graphSound) return;
  // Routes and conditional phases compile to Choice states between levels: each must be alone in its level.
  const levels = phaseLevels(phases);
  const conditional = conditionalPhases(phases);
  levels.forEach((level, i) => {
    for (const p of level) {
      if ((p.kind === 'route' || p.kind === 'guardrail') && level.length > 1) {
        diagnostics.push(
          src.at(
            at(p.name, 'name'),
            `${p.kind} "${p.name}" would run side by side with ${level
              .filter((x) => x !== p)
              .map((x) => x.name)
              .join(', ')}; make them depend on each other`,
          ),
        );
      }
      if (p.kind === 'route') {
        const next = levels[i + 1] ?? [];
        const strays = next.filter((x) => !p.to.includes(x.name));
        const late = p.to.filter((t) => !next.some((x) => x.name === t));
        if (strays.length > 0)
          diagnostics.push(
            src.at(
              at(strays[0]?.name ?? '', 'name'),
              `phase "${strays[0]?.name}" would run beside the targets of route "${p.name}"; make it depend on them`,
            ),
          );
        if (late.length > 0)
          diagnostics.push(
            src.at(
              at(p.name, 'route', 'to'),
              `route "${p.name}": ${late.join(', ')} must depend only on "${p.name}" (or earlier phases) so the route can start them`,
            ),
          );
      }
      const c = conditional.get(p.name);
      if (c && !c.routeOf && level.length > 1) {
        diagnostics.push(
          src.at(
            at(p.name, 'depends_on'),
            `phase "${p.name}" runs only when ${c.after.join(' or ')} ran, so it cannot run side by side with ${level
              .filter((x) => x !== p)
              .map((x) => x.name)
              .join(', ')}; make them depend on each other`,
          ),
        );
      }
    }
  });
  for (const r of phases.filter((p): p is RoutePhase => p.kind === 'route')) {
    const c = conditional.get(r.name);
    if (c) {
      diagnostics.push(
        src.at(
          at(r.name, 'name'),
          `route "${r.name}" runs only when ${c.routeOf ? `route "${c.routeOf}" chooses it` : `${c.after.join(' or ')} ran`}: a route must always run (choose among more targets in one route instead)`,
        ),
      );
    }
    for (const t of r.to) {
      const target = phases.find((x) => x.name === t);
      const others = (target?.dependsOn ?? []).filter((d) => d !== r.name && conditional.has(d));
      if (others.length > 0) {
        diagnostics.push(
          src.at(
            at(t, 'depends_on'),
            `route target "${t}" also depends on ${others.join(', ')}, which may not run: a target depends on its route (and phases that always run)`,
          ),
        );
      }
      if (target?.kind === 'agents' && target.required) {
        diagnostics.push(src.at(at(t, 'required'), `required does nothing on "${t}": a route target runs only when chosen`, { key: true }));
      }
    }
  }
  const targets = phases.filter((p): p is RoutePhase => p.kind === 'route').flatMap((r) => r.to);
  const twice = targets.find((t, i) => targets.indexOf(t) !== i);
  if (twice)
    diagnostics.push(src.at(at(twice, 'name'), `phase "${twice}" is the target of two routes; a phase can be chosen by one route only`));
}

/** Per phase kind: its agents, and what it is when only request workflows may have it. A new kind does not compile until listed. */
const PHASE_CHECKS: { [K in PhaseKind]: (p: Extract<Phase, { kind: K }>) => { agents: readonly ResolvedAgent[]; what?: string } } = {
  agents: (p) => ({ agents: p.agents }),
  approval: () => ({ agents: [] }),
  ci: () => ({ agents: [] }),
  route: (p) => ({ agents: [p.agent], what: `route phase "${p.name}": routes are` }),
  guardrail: (p) => ({ agents: [p.agent], what: `guardrail phase "${p.name}": guardrails are` }),
};

/**
 * Decides each agent's `allowWrite`: tools marked `write: true` may run when the workflow sets
 * `allow_write_tools` or an approval gate comes before the agent's phase (a `when` gate counts: it
 * asks whenever its condition holds). A write tool that could never run is refused at its line.
 */
function allowWrites(
  phases: readonly Phase[],
  allowAll: boolean,
  sources: ReadonlyArray<{ path: SourcePath; phase: { name: string } }>,
  src: YamlSource,
  diagnostics: Diagnostic[],
): Phase[] {
  // A gate that approves on timeout lets the write happen with nobody deciding: it does not count.
  const gates = phases.filter((p) => p.kind === 'approval' && p.onTimeout !== 'approve').map((p) => p.name);
  const gated = (name: string) => gates.some((g) => dominates(phases, g, name));
  const decide = (p: Phase, a: ResolvedAgent, at: SourcePath): ResolvedAgent => {
    const allow = allowAll || gated(p.name);
    const writes = a.tools.flatMap((t) => t.allow.filter((x) => x.write).map((x) => `${t.name}.${x.name}`));
    if (!allow && writes.length > 0) {
      diagnostics.push(
        src.at(
          at,
          `agent "${a.name}" lists write tools (${writes.join(', ')}) but no approval gate comes before phase "${p.name}" on every way to it (a gate with on_timeout: approve does not count) and the workflow does not set allow_write_tools: they would never be called`,
        ),
      );
    }
    return { ...a, allowWrite: allow && writes.length > 0 };
  };
  const at = (name: string, ...rest: Array<string | number>): SourcePath => [
    ...(sources.find((x) => x.phase.name === name)?.path ?? []),
    ...rest,
  ];
  return phases.map((p) => {
    if (p.kind === 'agents') return { ...p, agents: p.agents.map((a, i) => decide(p, a, at(p.name, 'agents', i))) };
    if (p.kind === 'route') return { ...p, agent: decide(p, p.agent, at(p.name, 'route', 'agent')) };
    return p;
  });
}

/** Inline review comments per run unless `output.max_inline_comments` says otherwise. Tied to lambdas/core/contracts.ts by a test. */
export const DEFAULT_MAX_INLINE_COMMENTS = 20;
/** The least severe finding posted inline unless `output.inline_min_severity` says otherwise. */
export const DEFAULT_INLINE_MIN_SEVERITY: Severity = 'low';
/** Findings from this severity fail the check run unless `output.fail_on` says otherwise. Tied to the contracts by a test. */
export const DEFAULT_FAIL_ON: Severity = 'critical';

/** The phase the verifier runs in; a workflow with `verify` on cannot name a phase so. Tied to lambdas/core/verify.ts by a test. */
export const VERIFY_PHASE = 'verify';
/** The verifier agent's name. */
export const VERIFIER_AGENT = 'verifier';
/** Findings per verifier call unless `verify.batch` says otherwise. */
export const DEFAULT_VERIFY_BATCH = 20;
/** Answer tokens of a verifier call: about 100 per verdict for the largest batch (50) and 256 more, capped by the models' max_output. */
const VERIFIER_MAX_TOKENS = 5256;

/**
 * The verifier pass of a workflow with `verify:` (true, or `{ model, fallback, batch, unconfirmed }`):
 * one more agent phase, after every other phase, with the built-in verifier agent (`output:
 * verdicts`). Its model defaults to the simple tier of the first agent's provider (a cheap model),
 * else that provider's default model; its fallbacks default to the simple tier of every other
 * provider the agents fall back to. It answers at temperature 0.
 */
function verifierPhase(
  w: WorkflowSource,
  phases: readonly Phase[],
  catalog: Catalog,
  src: YamlSource,
  diagnostics: Diagnostic[],
): Phase | undefined {
  if (!w.verify) return undefined;
  const opts = w.verify === true ? {} : w.verify;
  const at = (field?: string): SourcePath => (w.verify === true || !field ? ['verify'] : ['verify', field]);
  const reserved = phases.findIndex((p) => p.name === VERIFY_PHASE);
  if (reserved >= 0) {
    diagnostics.push(
      src.at(
        w.phases ? ['phases', reserved, 'name'] : at(),
        `phase name "${VERIFY_PHASE}" is the verifier's when verify is on; rename the phase`,
      ),
    );
    return undefined;
  }
  const reviewers = phases.flatMap((p) => (p.kind === 'agents' ? p.agents : []));
  const first = reviewers[0];
  if (!first) {
    diagnostics.push(src.at(at(), 'verify needs at least one agent phase whose findings it checks'));
    return undefined;
  }
  const models = catalog.models;
  const provider = first.model.provider;
  const ref = opts.model ?? models.tiers[provider]?.simple ?? models.defaults[provider];
  const model = ref ? findModel(models, ref) : undefined;
  if (!model) {
    diagnostics.push(src.at(at('model'), `unknown model "${ref ?? ''}" for the verifier (see workflows/models.yml)`));
    return undefined;
  }
  const fallback: ResolvedModel[] = [];
  (opts.fallback ?? []).forEach((f, i) => {
    const m = findModel(models, f);
    if (m) fallback.push(m);
    else diagnostics.push(src.at(['verify', 'fallback', i], `unknown model "${f}" for the verifier's fallback (see workflows/models.yml)`));
  });
  // Without its own fallback list the verifier falls back as the reviewers do: to the cheap model
  // of each other provider their fallbacks use, so an outage of one provider leaves nothing unverified.
  if (!opts.fallback) {
    const others = new Set(reviewers.flatMap((a) => a.fallback.map((f) => f.provider)).filter((p) => p !== model.provider));
    for (const p of others) {
      const m = findModel(models, models.tiers[p]?.simple ?? models.defaults[p] ?? '');
      if (m) fallback.push(m);
    }
  }
  const maxTokens = Math.min(VERIFIER_MAX_TOKENS, ...[model, ...fallback].map((m) => m.maxOutput ?? VERIFIER_MAX_TOKENS));
  return {
    kind: 'agents',
    name: VERIFY_PHASE,
    dependsOn: phases.map((p) => p.name),
    parallel: false,
    required: false,
    maxConcurrency: 1,
    agents: [
      {
        name: VERIFIER_AGENT,
        model,
        fallback: fallback.filter((f) => f.modelId !== model.modelId),
        maxTokens,
        temperature: 0,
        categories: [],
        tasks: [],
        prompt: '',
        cache: true,
        complexity: 'simple',
        output: 'verdicts',
        paths: { include: [], exclude: [] },
        tools: [],
        maxIterations: DEFAULT_MAX_ITERATIONS,
        timeLimitSeconds: DEFAULT_TIME_LIMIT_SECONDS,
        allowWrite: false,
        reads: [],
        verify: { batch: opts.batch ?? DEFAULT_VERIFY_BATCH, unconfirmed: opts.unconfirmed ?? 'drop' },
      },
    ],
  };
}

/**
 * The changed files an agent reviews: the entry's `paths.include` if given, else the catalog's
 * `files` (empty: every file); `exclude` is the entry's `paths.exclude`. Invalid globs are reported
 * at their position.
 */
function agentPaths(entry: AgentEntry, spec: AgentSpec, src: YamlSource, path: SourcePath, diagnostics: Diagnostic[]): IncludeExclude {
  const own = typeof entry !== 'string' && 'agent' in entry ? entry.paths : undefined;
  for (const side of ['include', 'exclude'] as const) {
    own?.[side]?.forEach((glob, i) => {
      const err = globError(glob);
      if (err) diagnostics.push(src.at([...path, 'paths', side, i], `paths.${side}.${i}: ${err}`));
    });
  }
  return { include: own?.include ?? spec.files ?? [], exclude: own?.exclude ?? [] };
}

type PhaseSource = { path: SourcePath; phase: { name: string; depends_on?: string[] | undefined } };

function checkGraph(phases: PhaseSource[], src: YamlSource, diagnostics: Diagnostic[]): void {
  const byName = new Map(phases.map((p) => [p.phase.name, p]));
  for (const { path, phase } of phases) {
    phase.depends_on?.forEach((dep, i) => {
      if (!byName.has(dep)) {
        diagnostics.push(src.at([...path, 'depends_on', i], `depends_on: unknown phase "${dep}"`));
      } else if (dep === phase.name) {
        diagnostics.push(src.at([...path, 'depends_on', i], `phase "${dep}" depends on itself`));
      }
    });
  }
  // Kahn's algorithm: whatever cannot be ordered is on (or behind) a cycle.
  const indegree = new Map(phases.map((p) => [p.phase.name, 0]));
  for (const { phase } of phases) {
    for (const dep of phase.depends_on ?? [])
      if (byName.has(dep) && dep !== phase.name) indegree.set(phase.name, (indegree.get(phase.name) ?? 0) + 1);
  }
  const queue = [...indegree].filter(([, d]) => d === 0).map(([n]) => n);
  const done = new Set<string>();
  while (queue.length > 0) {
    const n = queue.shift() as string;
    done.add(n);
    for (const { phase } of phases) {
      if (phase.depends_on?.includes(n) && phase.name !== n) {
        const d = (indegree.get(phase.name) ?? 0) - 1;
        indegree.set(phase.name, d);
        if (d === 0) queue.push(phase.name);
      }
    }
  }
  for (const { path, phase } of phases) {
    if (!done.has(phase.name) && !phase.depends_on?.includes(phase.name)) {
      diagnostics.push(src.at([...path, 'depends_on'], `phase "${phase.name}" is on a dependency cycle and can never start`));
    }
  }
}

/** `30s`, `30m`, `24h`, `2d` in seconds (the schema has checked the shape). */
export function durationToSeconds(text: string): number {
  const n = Number.parseInt(text, 10);
  const unit = text.slice(-1) as 's' | 'm' | 'h' | 'd';
  return n * { s: 1, m: 60, h: 3600, d: 86_400 }[unit];
}

/**
 * Orders phases into levels: every phase comes after the phases it depends on, and phases of
 * one level do not depend on each other (they may run side by side).
 */
export function phaseLevels<T extends { name: string; dependsOn: readonly string[] }>(phases: readonly T[]): T[][] {
  const levels: T[][] = [];
  const placed = new Set<string>();
  let rest = [...phases];
  while (rest.length > 0) {
    const level = rest.filter((p) => p.dependsOn.every((d) => placed.has(d)));
    if (level.length === 0) throw new Error('phases form a cycle');
    for (const p of level) placed.add(p.name);
    levels.push(level);
    rest = rest.filter((p) => !level.includes(p));
  }
  return levels;
}
