import {
  type Change,
  type ChangedFile,
  type ContextArtifact,
  forgeOf,
  type LoadContextInput,
  LoadContextInputSchema,
  type LoadContextOutput,
  parseInput,
} from '../core/contracts.js';
import { type ContextOptions, widenPatch } from '../core/hunks.js';
import {
  applyFeedback,
  incrementalScope,
  type ReviewState,
  ReviewStateSchema,
  reviewConfigDigest,
  reviewStateKey,
} from '../core/incremental.js';
import {
  buildPlan,
  candidatesOf,
  chunkTokensFor,
  globMatcher,
  MAX_CHUNK_TOKENS,
  parseGitAttributes,
  promptTokens,
  reviewOrder,
  selects,
} from '../core/plan.js';
import { mapLimited } from '../core/pool.js';
import type { ArtifactStore, ChangeSource, ForgeTable } from '../core/ports.js';
import { guidanceSection } from '../core/prompt.js';
import { redactSecrets } from '../core/redact.js';
import { GUIDANCE_FILES, MAX_GUIDANCE_CHARS, parseRepoConfig, REPO_CONFIG_PATH } from '../core/repo-config.js';
import { countTokens } from '../core/tokenizer.js';
import { estimateTokens, renderFile } from '../core/tokens.js';

export interface LoadContextDeps {
  changes: ChangeSource;
  artifacts: ArtifactStore;
  /** The forges' publishers, to read the feedback on the last review's comments. @default none: no feedback is read */
  forges?: ForgeTable;
}

/** Artifact key of a run's context. */
export const contextKey = (runId: string) => `runs/${runId}/context.json`;

/**
 * Where a `test_coverage` condition reads coverage: an Istanbul/nyc `json-summary` file (also written
 * by Slather, Kover and JaCoCo converters) committed or produced at the head commit; its
 * `total.lines.pct` is the percentage. A manual run's `coverage=<percent>` takes precedence.
 */
export const COVERAGE_SUMMARY_PATH = 'coverage/coverage-summary.json';

/** The head commit's line coverage in percent, or undefined when there is no readable summary. */
export async function headCoverage(change: Change, changes: ChangeSource): Promise<number | undefined> {
  const text = await changes.readHeadFile(change, COVERAGE_SUMMARY_PATH);
  if (!text) return undefined;
  try {
    const pct = (JSON.parse(text) as { total?: { lines?: { pct?: unknown } } }).total?.lines?.pct;
    return typeof pct === 'number' && pct >= 0 && pct <= 100 ? pct : undefined;
  } catch {
    return undefined;
  }
}

/** Most head files LoadContext reads for context per run; files past it (in review order) show their plain patch. */
export const MAX_CONTEXT_FILES = 300;

/** Head files read at the same time for context. */
export const CONTEXT_READ_CONCURRENCY = 8;

/** A head file longer than this (characters) is not read for context: its plain patch is shown. */
export const MAX_CONTEXT_FILE_CHARS = 1_000_000;

/**
 * The cap on a file's widened render (see {@link withContext}): at most this many times its plain
 * render's tokens, or the plain render plus {@link CONTEXT_EXTRA_TOKENS}, whichever is larger.
 */
export const CONTEXT_RATIO = 3;

/** Tokens of context a file may always add, however small its plain render (see {@link CONTEXT_RATIO}). */
export const CONTEXT_EXTRA_TOKENS = 1_500;

/** A redaction marker, as `redactSecrets` writes it. */
const REDACTION_MARKER = /\[REDACTED:[a-z-]+\]/g;

/**
 * The patch the prompts show for `file`, given its (redacted) text at the head commit: the patch
 * widened by `options` (see `widenPatch`), else with ±`lines` only (no whole file, no enclosing
 * declaration), else undefined (the plain patch), taking the first whose render
 *
 * - stays within max({@link CONTEXT_RATIO} × the plain render, plain + {@link CONTEXT_EXTRA_TOKENS})
 *   estimated tokens, and
 * - stays within `splitAtTokens` when the plain render does (context never makes a file too large
 *   for one chunk: a file is split only when its plain patch is).
 *
 * @param splitAtTokens the smallest chunk budget of the run's agents (`chunkTokensFor`)
 * @returns the shown patch and the head lines it added, or undefined to show the plain patch
 */
export function withContext(
  file: ChangedFile,
  head: string,
  options: ContextOptions,
  splitAtTokens: number,
): { shown: string; context: readonly string[] } | undefined {
  const plain = estimateTokens(renderFile(file));
  const cap = Math.min(
    Math.max(CONTEXT_RATIO * plain, plain + CONTEXT_EXTRA_TOKENS),
    plain <= splitAtTokens ? splitAtTokens : Number.POSITIVE_INFINITY,
  );
  const narrow: ContextOptions = { lines: options.lines, wholeFileLines: 0, enclosing: false };
  const tries = options.wholeFileLines > 0 || options.enclosing ? [options, narrow] : [narrow];
  for (const o of tries) {
    const widened = widenPatch(file.patch, head, o);
    if (!widened || widened.context.length === 0) continue;
    if (estimateTokens(renderFile({ ...file, shown: widened.patch })) <= cap) return { shown: widened.patch, context: widened.context };
  }
  return undefined;
}

/**
 * The repository's `.agentflow.yml` and guidance files at the change's base commit (a pull request
 * cannot change the rules it is reviewed by), each guidance file redacted, all guidance together
 * capped at {@link MAX_GUIDANCE_CHARS}. A file that cannot be read counts as absent.
 */
async function repositoryConfig(
  change: Change,
  agents: readonly string[],
  changes: ChangeSource,
): Promise<{ artifact: NonNullable<ContextArtifact['repo']>; redactions: number }> {
  const atBase = { ...change, headSha: change.baseSha };
  const read = (path: string) =>
    Promise.resolve()
      .then(() => changes.readHeadFile(atBase, path))
      .catch(() => undefined);
  const config = parseRepoConfig(await read(REPO_CONFIG_PATH), agents);
  let redactions = 0;
  // Path instructions first (redacted; a third of the guidance room at most), then the files.
  const pathInstructions: Array<{ path: string; instructions: string }> = [];
  let room = MAX_GUIDANCE_CHARS;
  for (const p of config.settings.pathInstructions) {
    const r = await redactSecrets(p.instructions);
    redactions += r.count;
    const size = p.path.length + r.text.length;
    if (MAX_GUIDANCE_CHARS - room + size > MAX_GUIDANCE_CHARS / 3) break;
    pathInstructions.push({ path: p.path, instructions: r.text });
    room -= size;
  }
  const guidance: Array<{ path: string; text: string }> = [];
  if (config.settings.guidance) {
    const texts = await Promise.all(GUIDANCE_FILES.map(read));
    for (const [i, raw] of texts.entries()) {
      if (raw === undefined || raw.trim() === '' || room <= 0) continue;
      const r = await redactSecrets(
        raw.length > room ? `${raw.slice(0, room)}\n[… cut at ${MAX_GUIDANCE_CHARS} characters of guidance]` : raw,
      );
      redactions += r.count;
      guidance.push({ path: GUIDANCE_FILES[i] as string, text: r.text });
      room -= r.text.length;
    }
  }
  const s = config.settings;
  return {
    redactions,
    artifact: {
      at: change.baseSha,
      found: config.found,
      errors: config.errors,
      pathInstructions,
      ignore: s.ignore,
      disableAgents: s.disableAgents,
      ...(s.maxInlineComments !== undefined ? { maxInlineComments: s.maxInlineComments } : {}),
      ...(s.inlineMinSeverity !== undefined ? { inlineMinSeverity: s.inlineMinSeverity } : {}),
      ...(s.failOn !== undefined ? { failOn: s.failOn } : {}),
      guidance,
    },
  };
}

/**
 * The last review's state of this pull request and workflow, or undefined when there is none or it
 * cannot be read as a state of this version (a full review follows: nothing is lost).
 */
async function previousReview(change: Change, workflow: string, artifacts: ArtifactStore): Promise<ReviewState | undefined> {
  const stored = await artifacts.getJson(reviewStateKey(change, workflow)).catch(() => undefined);
  const parsed = ReviewStateSchema.safeParse(stored);
  return parsed.success ? parsed.data : undefined;
}

/**
 * LoadContext: fetches the change, redacts credentials from every patch, file path (and previous
 * path) and the change's title (all counted in `stats.redactions`), adds context from the head
 * commit to the patches of the files the plan keeps (the workflow's `context:`; see
 * {@link addContext}: each head file is redacted first, and every marker in a context line it
 * adds counts as a redaction), makes the review plan
 * (which files each agent reviews and why the others are excluded, chunk layout and worst-case
 * cost per agent: see `buildPlan`; `.gitattributes` at the head commit is honoured), computes
 * change stats (and how many files match the workflow's `files_changed` globs; a glob without a
 * slash matches the file name in any folder, as in .gitignore), stores the context with its plan
 * as an artifact and returns only its reference and the stats. No model is called.
 *
 * @throws InvalidInputError when the input does not match the contract
 * @throws Error from the change source when the change cannot be read
 */
export async function loadContext(raw: unknown, deps: LoadContextDeps): Promise<LoadContextOutput> {
  const input: LoadContextInput = parseInput(LoadContextInputSchema, raw, 'LoadContext');
  const files = await deps.changes.listChangedFiles(input.change);
  let redactions = 0;
  const redact = async (text: string) => {
    const r = await redactSecrets(text);
    redactions += r.count;
    return r.text;
  };
  // The title and file paths are untrusted text too: they reach the plan, the prompts and the artifact.
  const change: Change = { ...input.change, title: await redact(input.change.title) };
  const clean = await Promise.all(
    files.map(async (f) => ({
      ...f,
      path: await redact(f.path),
      ...(f.previousPath !== undefined ? { previousPath: await redact(f.previousPath) } : {}),
      patch: await redact(f.patch),
    })),
  );
  const isMatch = input.filesChanged.length > 0 ? globMatcher(input.filesChanged) : () => true;
  const additions = clean.reduce((s, f) => s + f.additions, 0);
  const deletions = clean.reduce((s, f) => s + f.deletions, 0);
  const reviewers = input.agents.filter(({ agent }) => agent.output !== 'verdicts').map(({ agent }) => agent.name);
  const [coverage, gitattributes, repo] = await Promise.all([
    input.change.testCoverage ?? (input.coverage ? headCoverage(input.change, deps.changes) : undefined),
    deps.changes.readHeadFile(input.change, '.gitattributes').catch(() => undefined),
    repositoryConfig(input.change, reviewers, deps.changes),
  ]);
  redactions += repo.redactions;
  const attributes = parseGitAttributes(gitattributes ?? '');
  const stats = { linesChanged: additions + deletions };
  // A pull request reviewed before: only the files whose diff changed since are reviewed again,
  // and what people said about its comments counts (a dismissed finding is never raised again).
  const found = change.number > 0 ? await previousReview(change, input.workflow, deps.artifacts) : undefined;
  // A state of another head branch (a local run reusing a number) is not this pull request's.
  const stored = found && found.headRef === change.headRef ? found : undefined;
  const feedback = stored && deps.forges ? await deps.forges[forgeOf(change)].readFeedback(input.change).catch(() => undefined) : undefined;
  const withFeedback = stored && feedback ? applyFeedback(stored, feedback) : undefined;
  const previous = withFeedback?.state ?? stored;
  const full = change.fullReview === true;
  // What the review is made with: a new agent, model, prompt or setting reviews every file again.
  const config = reviewConfigDigest({
    agents: input.agents.map(({ phase, agent }) => [
      phase,
      agent.name,
      agent.model.modelId,
      agent.fallback.map((m) => m.modelId),
      agent.prompt,
      agent.categories,
      agent.tasks,
      agent.paths,
      agent.output,
      agent.verify ?? null,
    ]),
    paths: input.paths,
    context: input.context,
    repo: { ...repo.artifact, at: undefined, guidance: repo.artifact.guidance.map((g) => g.text) },
  });
  const scope = incrementalScope(clean, previous, full, change.headRef, config);
  const unchanged = new Set(scope?.unchanged ?? []);
  const shown = await addContext(
    { ...input, paths: { ...input.paths, exclude: [...input.paths.exclude, ...repo.artifact.ignore] } },
    change,
    files,
    clean,
    attributes,
    deps.changes,
    unchanged,
  );
  redactions += shown.redactions;
  const reviewed = shown.files;
  const plan = buildPlan({
    files: reviewed,
    stats,
    attributes,
    paths: input.paths,
    agents: input.agents,
    promptTokens: (agent) => promptTokens(agent, change) + estimateTokens(guidanceSection(repo.artifact)),
    unchanged,
    ignore: repo.artifact.ignore,
    disabled: new Set(repo.artifact.disableAgents),
  });
  const excluded = new Set(plan.excluded.map((e) => e.path));
  const artifact: ContextArtifact = {
    change,
    files: reviewed,
    plan,
    repo: repo.artifact,
    reviewConfig: config,
    ...(previous
      ? {
          incremental: {
            since: previous.headSha,
            unchanged: scope?.unchanged ?? [],
            ...(full ? { full } : {}),
            ...(!full && previous.config !== config ? { configChanged: true } : {}),
            previousRef: await deps.artifacts.putJson(`runs/${input.runId}/previous-review-state.json`, previous),
          },
        }
      : {}),
    stats: {
      filesChanged: clean.length,
      additions,
      deletions,
      linesChanged: additions + deletions,
      matchedFiles: clean.filter((f) => isMatch(f.path)).length,
      redactions,
      estimatedTokens: reviewed.reduce((s, f) => s + (excluded.has(f.path) ? 0 : countTokens(renderFile(f), 'openai')), 0),
      filesExcluded: plan.excluded.length,
      ...(coverage !== undefined ? { testCoverage: coverage } : {}),
    },
  };
  const contextRef = await deps.artifacts.putJson(contextKey(input.runId), artifact);
  return { contextRef, stats: artifact.stats };
}

/**
 * The files with `shown` set where context from the head commit was added (see {@link withContext}),
 * and how many redaction markers the added context lines hold. Reads, {@link CONTEXT_READ_CONCURRENCY}
 * at a time, the head files of at most {@link MAX_CONTEXT_FILES} files the plan keeps for some agent
 * (in review order: sources first, larger changes first), skipping added files (their patch is the
 * whole file), removed and binary ones; a file that cannot be read, is larger than
 * {@link MAX_CONTEXT_FILE_CHARS} or does not match its patch shows the plain patch. Each head file
 * is redacted whole before any of its lines is used.
 *
 * @param files the files as the change source listed them (their real paths, to read)
 * @param clean the same files, redacted
 */
export async function addContext(
  input: LoadContextInput,
  change: Change,
  files: readonly ChangedFile[],
  clean: readonly ChangedFile[],
  attributes: ReturnType<typeof parseGitAttributes>,
  changes: ChangeSource,
  unchanged: ReadonlySet<string> = new Set(),
): Promise<{ files: ChangedFile[]; redactions: number }> {
  const options = input.context;
  if (options.lines === 0 && options.wholeFileLines === 0 && !options.enclosing) return { files: [...clean], redactions: 0 };
  const stats = { linesChanged: clean.reduce((s, f) => s + f.additions + f.deletions, 0) };
  // The files the plan keeps (an agentless plan lists them as "no agent reviews it"), then those some agent selects.
  const agentless = buildPlan({ files: clean, stats, attributes, paths: input.paths, agents: [], promptTokens: () => 0, unchanged });
  const kept = new Set(agentless.excluded.filter((e) => e.reason === 'no agent reviews it').map((e) => e.path));
  // Reviewers pick files; the verifier (output: verdicts) reads findings, not files, and picks none.
  const reviewers = input.agents.filter(({ agent }) => agent.output !== 'verdicts');
  const pickers = reviewers.map(({ agent }) => selects(agent.paths));
  const wanted = clean
    .map((f, i) => ({ f, i }))
    .filter(
      ({ f }) =>
        kept.has(f.path) &&
        f.status !== 'added' &&
        f.status !== 'removed' &&
        !f.binary &&
        (pickers.length === 0 || pickers.some((pick) => pick(f.path))),
    )
    .sort((a, b) => reviewOrder(a.f, b.f))
    .slice(0, MAX_CONTEXT_FILES);
  // The smallest chunk budget of the run's agents: context must not make a file split that fits it.
  const splitAt = Math.min(
    MAX_CHUNK_TOKENS,
    ...reviewers.map(({ agent }) => chunkTokensFor(agent, candidatesOf(agent, stats).candidates, promptTokens(agent, change))),
  );
  const out = [...clean];
  let redactions = 0;
  await mapLimited(wanted, CONTEXT_READ_CONCURRENCY, async ({ f, i }) => {
    const path = files[i]?.path ?? f.path;
    const raw = await Promise.resolve()
      .then(() => changes.readHeadFile(input.change, path))
      .catch(() => undefined);
    if (raw === undefined || raw.length > MAX_CONTEXT_FILE_CHARS) return;
    const head = await redactSecrets(raw);
    const widened = withContext(f, head.text, options, splitAt);
    if (!widened) return;
    out[i] = { ...f, shown: widened.shown };
    for (const line of widened.context) redactions += line.match(REDACTION_MARKER)?.length ?? 0;
  });
  return { files: out, redactions };
}
