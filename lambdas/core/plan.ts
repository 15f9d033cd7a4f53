import picomatch from 'picomatch';
import { FINDINGS_FORMAT, formatTokens } from './answer-format.js';
import { fromMicro, toMicro, worstCaseMicro } from './budget.js';
import type { AgentItem, AgentPlan, Change, ChangedFile, ContextStats, ModelRef, PathFilter, ReviewPlan } from './contracts.js';
import type { ExclusionReason } from './plan-reasons.js';
import { chunkMessage, systemPrompt } from './prompt.js';
import { routeModel } from './routing.js';
import { countTokens, TOKENIZER_OF, type TokenizerFamily } from './tokenizer.js';
import { type Chunk, estimateTokens, layoutChunks, renderFile } from './tokens.js';
import { VERDICTS_FORMAT, verifierSystemPrompt, verifyMessage } from './verify.js';

/**
 * The review plan (DESIGN §12), made by LoadContext before any model call and followed by every
 * agent:
 *
 * 1. files no reviewer wants are excluded, each with its reason (generated, vendored, lock file,
 *    translation, binary, LFS pointer, snapshot, submodule, or the workflow's `paths:`);
 * 2. the remaining files are put in review order (source before tests and other files, larger
 *    changes first), and each agent gets the ones its `paths` select;
 * 3. each agent's chunks are laid out as InvokeAgent will send them, with their worst-case cost, so
 *    the run budget is divided among the agents before they start (see {@link shareMicro}).
 */

export { EXCLUSION_REASONS, type ExclusionReason } from './plan-reasons.js';

/** `.gitattributes` flags Linguist (and so GitHub's diff view) honours. */
export interface PathAttributes {
  readonly generated?: boolean;
  readonly vendored?: boolean;
}

/** One `.gitattributes` rule we read: a pattern and the Linguist flags it sets or unsets. */
export interface AttributeRule {
  readonly pattern: string;
  readonly generated?: boolean;
  readonly vendored?: boolean;
}

/**
 * Parses the `linguist-generated` and `linguist-vendored` attributes of a `.gitattributes` file
 * (`path linguist-generated`, `-linguist-generated`, `linguist-generated=true|false`). Other
 * attributes, comments and macro definitions are ignored. Later rules override earlier ones, as
 * in git. Source: https://git-scm.com/docs/gitattributes and
 * https://github.com/github-linguist/linguist/blob/main/docs/overrides.md (2026-11-29).
 */
export function parseGitAttributes(text: string): AttributeRule[] {
  const rules: AttributeRule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('[attr]')) continue;
    const [pattern, ...attrs] = line.split(/\s+/);
    if (!pattern) continue;
    const rule: { pattern: string; generated?: boolean; vendored?: boolean } = { pattern };
    for (const a of attrs) {
      const m = /^([-!]?)linguist-(generated|vendored)(?:=(true|false))?$/.exec(a);
      if (!m) continue;
      const on = m[1] === '' && m[3] !== 'false';
      rule[m[2] as 'generated' | 'vendored'] = on;
    }
    if (rule.generated !== undefined || rule.vendored !== undefined) rules.push(rule);
  }
  return rules;
}

/**
 * A gitignore-style matcher over repository paths, the one glob meaning of the workflow language
 * (`files_changed`, `paths`, agent `files`, default rules): a pattern without a slash matches the
 * file name in any folder, a leading slash anchors at the root, a folder pattern (`Pods/`) matches
 * everything below it.
 */
export function globMatcher(patterns: readonly string[]): (path: string) => boolean {
  if (patterns.length === 0) return () => false;
  // gitignore rules: a leading slash anchors at the root; a folder pattern whose only slash is the
  // trailing one (`Pods/`) matches that folder at any depth.
  const anchored = patterns.map((p) => (p.startsWith('/') ? p.slice(1) : p.endsWith('/') && !p.slice(0, -1).includes('/') ? `**/${p}` : p));
  const withSlash = anchored.filter((p) => p.includes('/'));
  const bare = anchored.filter((p) => !p.includes('/'));
  const full = withSlash.length ? picomatch(withSlash, { dot: true }) : () => false;
  const base = bare.length ? picomatch(bare, { dot: true, basename: true }) : () => false;
  // A pattern naming a folder (`Pods/`, `vendor/**`) also matches everything below it.
  const dirs = withSlash.filter((p) => p.endsWith('/')).map((p) => picomatch(`${p}**`, { dot: true }));
  return (path) => full(path) || base(path) || dirs.some((d) => d(path));
}

/** The attributes of `path` under `rules` (the last matching rule of each flag wins). */
export function attributesOf(path: string, rules: readonly AttributeRule[]): PathAttributes {
  let generated: boolean | undefined;
  let vendored: boolean | undefined;
  for (const r of rules) {
    if (!globMatcher([r.pattern])(path)) continue;
    if (r.generated !== undefined) generated = r.generated;
    if (r.vendored !== undefined) vendored = r.vendored;
  }
  return { ...(generated !== undefined ? { generated } : {}), ...(vendored !== undefined ? { vendored } : {}) };
}

/** The exclusions decided by path rules. */
type RuleReason = 'vendored' | 'generated' | 'lock file' | 'translation' | 'snapshot';

/**
 * Default path rules a mobile team expects, after GitHub Linguist's `vendor.yml` and
 * `generated.rb` (https://github.com/github-linguist/linguist/tree/main/lib/linguist, 2026-11-29),
 * narrowed to iOS, Android, Flutter and React Native projects. `.gitattributes` overrides the
 * generated and vendored rules either way; the workflow's `paths.include` re-includes any of them.
 */
export const DEFAULT_RULES: Readonly<Record<RuleReason, readonly string[]>> = {
  vendored: [
    'Pods/',
    'Carthage/',
    'vendor/',
    'third_party/',
    'third-party/',
    'node_modules/',
    '.yarn/',
    'bower_components/',
    'external/',
    '*.min.js',
    '*.min.css',
    '*.xcframework/',
    '*.framework/',
  ],
  generated: [
    'build/',
    'DerivedData/',
    '.gradle/',
    'generated/',
    'Generated/',
    '*.generated.swift',
    '*.pb.swift',
    '*.grpc.swift',
    '*.pb.go',
    '*.g.dart',
    '*.freezed.dart',
    '*.pbxproj',
    '*.xcworkspacedata',
    'R.java',
    'BuildConfig.java',
    '*.designer.cs',
  ],
  'lock file': [
    'Podfile.lock',
    'Package.resolved',
    'Cartfile.resolved',
    'Gemfile.lock',
    'package-lock.json',
    'yarn.lock',
    'pnpm-lock.yaml',
    'pubspec.lock',
    'gradle.lockfile',
    '*.lockfile',
    'Cargo.lock',
    'composer.lock',
    'Pipfile.lock',
    'poetry.lock',
  ],
  translation: [
    '*.strings',
    '*.stringsdict',
    '*.xcstrings',
    '*.xliff',
    '*.xlf',
    '*.lproj/*.strings',
    '**/values-*/strings.xml',
    '**/values-*/plurals.xml',
    '*.po',
    '*.pot',
    '*.arb',
    '**/locales/**/*.json',
    '**/l10n/**',
    '**/i18n/**/*.json',
  ],
  snapshot: ['__Snapshots__/', '__snapshots__/', '*.snap', '**/snapshots/**/*.png', '**/screenshots/**'],
};

const RULE_MATCHERS = Object.fromEntries(Object.entries(DEFAULT_RULES).map(([k, v]) => [k, globMatcher(v)])) as Record<
  keyof typeof DEFAULT_RULES,
  (path: string) => boolean
>;

/** Headers of generated files (Linguist's generated.rb and common code generators), read from the first added lines. */
const GENERATED_HEADER =
  /(?:\bDO NOT EDIT\b|@generated\b|\bAuto-?generated\b|\bautomatically generated\b|\bGenerated (?:by|using) (?:SwiftGen|Sourcery|protoc|the protocol buffer compiler|Apollo|R\.swift|Xcode|Dagger|Hilt|KSP|Room)|This file was generated)/i;

/** A Git LFS pointer (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md). */
const LFS_POINTER = /^\+version https:\/\/git-lfs\.github\.com\/spec\/v1$/m;
/** A submodule change as git and GitHub show it. */
const SUBMODULE = /^[-+]Subproject commit [0-9a-f]{7,64}/m;

/**
 * Why `file` is not reviewed by default, or undefined when it is reviewed. The order is fixed:
 * binary, LFS pointer, submodule, removed, then `.gitattributes` (generated / vendored, either
 * way), then the default rules.
 */
export function defaultExclusion(file: ChangedFile, attrs: PathAttributes = {}): ExclusionReason | undefined {
  const inherent = inherentExclusion(file);
  if (inherent) return inherent;
  if (file.status === 'removed') return 'removed';
  if (attrs.generated === true) return 'generated';
  if (attrs.vendored === true) return 'vendored';
  for (const reason of Object.keys(RULE_MATCHERS) as Array<keyof typeof RULE_MATCHERS>) {
    if (reason === 'generated' && attrs.generated === false) continue;
    if (reason === 'vendored' && attrs.vendored === false) continue;
    if (RULE_MATCHERS[reason](file.path)) return reason;
  }
  if (attrs.generated !== false) {
    const head = file.patch.split('\n', 12).join('\n');
    if (GENERATED_HEADER.test(head)) return 'generated';
  }
  return undefined;
}

/**
 * Why a file cannot be reviewed whatever the settings: no text diff to read (binary, LFS pointer,
 * submodule bump) or GitHub left its patch out (a diff too large to show).
 */
export function inherentExclusion(file: ChangedFile): ExclusionReason | undefined {
  if (file.binary) return 'binary';
  if (LFS_POINTER.test(file.patch)) return 'LFS pointer';
  if (SUBMODULE.test(file.patch)) return 'submodule';
  if (file.patch === '' && file.additions + file.deletions > 0) return 'diff too large';
  return undefined;
}

const TEST_PATH =
  /(?:^|\/)(?:tests?|spec|__tests__|androidTest|testDebug|[A-Za-z0-9]+Tests|[A-Za-z0-9]+UITests)\/|(?:Tests?|Spec)\.(?:swift|kt|java|m)$|\.(?:test|spec)\.[jt]sx?$/;
const SOURCE_EXT = /\.(?:swift|kt|kts|java|m|mm|h|c|cc|cpp|hpp|dart|js|jsx|ts|tsx|rs|go|py|rb|cs|scala)$/;

/** Review value class of a path: 0 source, 1 tests, 2 everything else (build files, docs, resources). */
export function fileClass(path: string): 0 | 1 | 2 {
  if (TEST_PATH.test(path)) return 1;
  return SOURCE_EXT.test(path) ? 0 : 2;
}

/** Review order: source before tests before other files; within a class, larger changes first; then by path. */
export function reviewOrder(a: ChangedFile, b: ChangedFile): number {
  return (
    fileClass(a.path) - fileClass(b.path) ||
    b.additions + b.deletions - (a.additions + a.deletions) ||
    (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
  );
}

/** One agent as the plan sees it: its Map item and the phase it runs in. */
export interface PlanAgentInput {
  readonly phase: string;
  readonly agent: AgentItem;
}

/** Largest diff chunk per prompt, in tokens, even for models with bigger windows: review quality drops on huge prompts. */
export const MAX_CHUNK_TOKENS = 60_000;

/** Prompt tokens held back per chunk for the findings of earlier phases (at most 30 lines, see `earlierFindings`). */
export const EARLIER_FINDINGS_TOKENS = 2_000;

/**
 * Answer tokens asked for a chunk of `chunkTokens`: a findings answer is far shorter than the diff
 * it reviews, so the call's `max_tokens` (and so its reservation) follows the chunk: 1,024 plus a
 * quarter of the chunk, at most the agent's `max_tokens`. Document and tests agents (whole files) keep their `max_tokens`.
 */
export function answerTokens(agent: Pick<AgentItem, 'maxTokens' | 'output'>, chunkTokens: number): number {
  if (agent.output === 'document' || agent.output === 'tests') return agent.maxTokens;
  return Math.min(agent.maxTokens, 1024 + Math.ceil(chunkTokens / 4));
}

/**
 * Tokens of diff per chunk for an agent: what the smallest context window of its candidate models
 * leaves after the answer, the prompt and the earlier findings (90 %), at most {@link MAX_CHUNK_TOKENS}.
 */
export function chunkTokensFor(agent: AgentItem, candidates: readonly ModelRef[], promptTokens: number): number {
  const window = Math.min(...candidates.map((c) => c.contextWindow));
  return Math.max(256, Math.min(MAX_CHUNK_TOKENS, Math.floor((window - agent.maxTokens - promptTokens - EARLIER_FINDINGS_TOKENS) * 0.9)));
}

/** The model an agent starts with and its fallbacks (the routed model first for `model: auto`). */
export function candidatesOf(
  agent: AgentItem,
  stats: Pick<ContextStats, 'linesChanged'>,
): { primary: ModelRef; candidates: ModelRef[]; routing?: string } {
  const route = routeModel(agent, stats);
  const primary = route?.model ?? agent.model;
  const candidates = [primary, ...agent.fallback.filter((f) => f.modelId !== primary.modelId || f.provider !== primary.provider)];
  return { primary, candidates, ...(route ? { routing: route.reason } : {}) };
}

/** Whether `path` is one an agent with `paths` reviews (include empty = every file; exclude wins). */
export function selects(paths: PathFilter): (path: string) => boolean {
  const inc = globMatcher(paths.include);
  const exc = globMatcher(paths.exclude);
  return (p) => (paths.include.length === 0 || inc(p)) && !exc(p);
}

/**
 * Tokens of an agent's prompt without the diff (system prompt, the chunk message's header lines and
 * the answer format sent with it, as a forced tool: the most any provider bills), as chunk sizes
 * count them. LoadContext and InvokeAgent use this same function. The verifier's is its own prompt,
 * message header and verdicts format.
 */
export function promptTokens(agent: AgentItem, change: Change): number {
  if (agent.output === 'verdicts') {
    return (
      estimateTokens(verifierSystemPrompt(agent)) +
      estimateTokens(verifyMessage(change, '', 0, 1)) +
      formatTokens(VERDICTS_FORMAT, 'bedrock') +
      64
    );
  }
  return (
    estimateTokens(systemPrompt(agent)) +
    estimateTokens(chunkMessage(agent, change, '', 0, 1, '')) +
    formatTokens(FINDINGS_FORMAT, 'bedrock') +
    64
  );
}

/** Options of {@link buildPlan}. */
export interface PlanOptions {
  readonly files: readonly ChangedFile[];
  readonly stats: Pick<ContextStats, 'linesChanged'>;
  /** `.gitattributes` at the head commit (its Linguist flags). */
  readonly attributes?: readonly AttributeRule[];
  /** The workflow's `paths:`. */
  readonly paths?: PathFilter;
  readonly agents: readonly PlanAgentInput[];
  /** Tokens of an agent's prompt without the diff (system prompt, header lines), per agent name. */
  readonly promptTokens: (agent: AgentItem) => number;
  /** Paths whose diff the last review of this pull request saw as it is (incremental re-review). @default none */
  readonly unchanged?: ReadonlySet<string>;
  /** Globs of the repository's `.agentflow.yml` `ignore:`. @default none */
  readonly ignore?: readonly string[];
  /** Agents the repository's `.agentflow.yml` turns off (`disable_agents:`): they get no file. @default none */
  readonly disabled?: ReadonlySet<string>;
}

/**
 * Builds the review plan (see the module docstring). Pure and deterministic: InvokeAgent lays out
 * the same chunks from the same inputs.
 */
export function buildPlan(o: PlanOptions): ReviewPlan {
  const include = o.paths?.include ?? [];
  const exclude = o.paths?.exclude ?? [];
  const included = globMatcher(include);
  const excludedByPaths = globMatcher(exclude);
  // An include glob re-includes a default exclusion only when it names that kind of file itself
  // (`*.strings`, `Pods/**`, `Generated/**`): narrowing to `*.swift` keeps Pods/ and generated Swift out.
  const reincluding = include.filter((p) => Object.values(RULE_MATCHERS).some((matches) => matches(p)));
  const reincluded = globMatcher(reincluding);
  const ignored = globMatcher(o.ignore ?? []);
  const excluded: Array<{ path: string; reason: ExclusionReason }> = [];
  const kept: number[] = [];
  o.files.forEach((f, i) => {
    const inherent = inherentExclusion(f);
    const byDefault = () => {
      const reason = defaultExclusion(f, attributesOf(f.path, o.attributes ?? []));
      return reason && reason !== 'removed' && reincluded(f.path) ? undefined : reason;
    };
    const reason: ExclusionReason | undefined =
      inherent ??
      ((o.ignore?.length ?? 0) > 0 && ignored(f.path) ? 'ignored by .agentflow.yml' : undefined) ??
      (exclude.length > 0 && excludedByPaths(f.path)
        ? 'excluded by paths'
        : include.length > 0 && !included(f.path)
          ? 'not in paths'
          : byDefault()) ??
      (o.unchanged?.has(f.path) ? 'unchanged since the last review' : undefined);
    if (reason) excluded.push({ path: f.path, reason });
    else kept.push(i);
  });
  kept.sort((a, b) => reviewOrder(o.files[a] as ChangedFile, o.files[b] as ChangedFile));
  // Tokens of each rendered file per tokenizer family, counted once and shared by every agent.
  const fileTokens = new Map<string, number>();
  const tokensOf = (chunk: Chunk, family: TokenizerFamily, files: ReadonlyMap<string, ChangedFile>): number => {
    const whole = chunk.paths.map((p) => files.get(p)).filter((f): f is ChangedFile => f !== undefined);
    // A part of a split file is counted on its own; whole files from the cache.
    if (whole.length !== chunk.paths.length || whole.reduce((n, f) => n + renderFile(f).length, 0) !== chunk.text.length) {
      return countTokens(chunk.text, family);
    }
    return whole.reduce((n, f) => {
      const key = `${family}\0${f.path}`;
      let t = fileTokens.get(key);
      if (t === undefined) {
        t = countTokens(renderFile(f), family);
        fileTokens.set(key, t);
      }
      return n + t;
    }, 0);
  };
  const reviews = o.agents.map(({ phase, agent }) => {
    const pick = selects(agent.paths);
    // The verifier reads the reviewers' findings, not files (see verifierPlan).
    const files =
      agent.output === 'verdicts' || o.disabled?.has(agent.name) ? [] : kept.filter((i) => pick((o.files[i] as ChangedFile).path));
    const { primary, candidates } = candidatesOf(agent, o.stats);
    const prompt = o.promptTokens(agent);
    const chunkTokens = chunkTokensFor(agent, candidates, prompt);
    const mine = files.map((i) => o.files[i] as ChangedFile);
    const chunks = mine.length ? layoutChunks(mine, chunkTokens) : [];
    const byPath = new Map(mine.map((f) => [f.path, f]));
    // Each chunk at the worst case of its dearest candidate (the hold InvokeAgent takes), its diff
    // counted with that candidate's tokenizer, plus the prompt, room for earlier findings and the
    // chat overhead.
    const costs = chunks.map((c) => {
      const answer = answerTokens(agent, estimateTokens(c.text));
      return Math.max(
        0,
        ...candidates.map((m) =>
          m.price
            ? worstCaseMicro(
                tokensOf(c, TOKENIZER_OF[m.provider], byPath) + prompt + EARLIER_FINDINGS_TOKENS + PLAN_OVERHEAD_TOKENS,
                answer,
                m.price,
              )
            : 0,
        ),
      );
    });
    return {
      name: agent.name,
      phase,
      model: primary.alias,
      files,
      chunkTokens,
      chunks: chunks.length,
      maxTokens: answerTokens(agent, chunkTokens),
      needUsd: fromMicro(costs.reduce((s, c) => s + c, 0)),
      firstChunkUsd: fromMicro(costs[0] ?? 0),
    };
  });
  const reviewerChunks = reviews.reduce((s, a, k) => s + (o.agents[k]?.agent.output === 'verdicts' ? 0 : a.chunks), 0);
  const agents = reviews.map((a, k) => {
    const item = o.agents[k] as PlanAgentInput;
    return item.agent.output === 'verdicts' ? verifierPlan(a, item.agent, reviewerChunks, o.stats, o.promptTokens(item.agent)) : a;
  });
  // Kept files that no agent's `files`/`paths` select are listed too: nothing is dropped silently.
  const selected = new Set(agents.flatMap((a) => a.files));
  for (const i of kept) if (!selected.has(i)) excluded.push({ path: (o.files[i] as ChangedFile).path, reason: 'no agent reviews it' });
  return { excluded, agents };
}

/** Chat-format tokens the plan adds per chunk (see `requestTokens`: per message and per request). */
const PLAN_OVERHEAD_TOKENS = 64;

/**
 * Findings the plan expects per reviewed chunk when it sizes the verifier's need: a planning
 * figure, not a bound (the prompt allows {@link MAX_FINDINGS_PER_PART}). The verifier runs last and
 * is bound by the run budget, not by its share; its share only keeps this much back from the reviewers.
 */
export const VERIFY_FINDINGS_PER_CHUNK = 5;
/** Prompt tokens of one finding in a verifier batch: its header, message, suggestion and ±6 cited lines. */
export const VERIFY_TOKENS_PER_FINDING = 300;

/** Answer tokens of a verifier call for `count` findings: about 100 per verdict and 256 more, at most the agent's `max_tokens`. */
export const verdictTokens = (agent: Pick<AgentItem, 'maxTokens'>, count: number) => Math.min(agent.maxTokens, 256 + 100 * count);

/**
 * The verifier's part of the plan: no files; batches of `verify.batch` findings for
 * {@link VERIFY_FINDINGS_PER_CHUNK} findings per reviewer chunk, each at the worst case of its
 * dearest candidate ({@link VERIFY_TOKENS_PER_FINDING} per finding, its prompt, the verdicts).
 */
function verifierPlan(
  base: AgentPlan,
  agent: AgentItem,
  reviewerChunks: number,
  stats: Pick<ContextStats, 'linesChanged'>,
  prompt: number,
): AgentPlan {
  const size = agent.verify?.batch ?? 20;
  const findings = reviewerChunks * VERIFY_FINDINGS_PER_CHUNK;
  const batches = Math.ceil(findings / size);
  const { candidates } = candidatesOf(agent, stats);
  const perBatch = Math.min(size, findings);
  const cost = Math.max(
    0,
    ...candidates.map((m) =>
      m.price
        ? worstCaseMicro(perBatch * VERIFY_TOKENS_PER_FINDING + prompt + PLAN_OVERHEAD_TOKENS, verdictTokens(agent, perBatch), m.price)
        : 0,
    ),
  );
  return {
    ...base,
    files: [],
    chunkTokens: Math.max(1, size * VERIFY_TOKENS_PER_FINDING),
    chunks: batches,
    maxTokens: verdictTokens(agent, size),
    needUsd: fromMicro(cost * batches),
    firstChunkUsd: fromMicro(batches > 0 ? cost : 0),
  };
}

/**
 * An agent's share of the run limit (micro-USD), decided before any agent starts from every
 * agent's plan, so each can rely on it while the others run:
 *
 * - when every agent's first chunk fits, each gets its first chunk's worst case, and the rest of
 *   the limit is divided in proportion to each agent's whole need (its chunks' worst cases, so
 *   weighted by its model's price and its files): room for its later chunks and for repairs;
 * - when even the first chunks do not all fit, first chunks are granted cheapest first (then in
 *   plan order) while they fit, so as many agents as possible review something; the others get
 *   nothing and report "not reviewed: budget", and the rest of the limit goes to the granted
 *   agents in proportion to their whole need.
 *
 * Shares add up to at most the limit; an unlimited run gives `Infinity`.
 */
export function shareMicro(plan: readonly AgentPlan[], name: string, phase: string, limitMicro: number | undefined): number {
  if (limitMicro === undefined) return Number.POSITIVE_INFINITY;
  const me = plan.find((a) => a.name === name && a.phase === phase);
  if (!me) return 0;
  const firsts = plan.map((a) => toMicro(a.firstChunkUsd));
  const needs = plan.map((a) => toMicro(a.needUsd));
  // Grant first chunks cheapest first while they fit.
  const granted = new Set<number>();
  let left = limitMicro;
  for (const k of plan.map((_, k) => k).sort((a, b) => (firsts[a] ?? 0) - (firsts[b] ?? 0) || a - b)) {
    const f = firsts[k] ?? 0;
    if (f > left) break;
    granted.add(k);
    left -= f;
  }
  const i = plan.indexOf(me);
  if (!granted.has(i)) return 0;
  // The rest in proportion to each agent's whole need: its later chunks, and room for a repair.
  const sumNeed = [...granted].reduce((s, k) => s + (needs[k] ?? 0), 0);
  const extra = sumNeed > 0 ? Math.floor((left * (needs[i] ?? 0)) / sumNeed) : Math.floor(left / granted.size);
  return (firsts[i] ?? 0) + extra;
}
