import {
  type Change,
  type ContextArtifact,
  type LoadContextInput,
  LoadContextInputSchema,
  type LoadContextOutput,
  parseInput,
} from '../core/contracts.js';
import { buildPlan, globMatcher, parseGitAttributes, promptTokens } from '../core/plan.js';
import type { ArtifactStore, ChangeSource } from '../core/ports.js';
import { redactSecrets } from '../core/redact.js';
import { countTokens } from '../core/tokenizer.js';
import { renderFile } from '../core/tokens.js';

export interface LoadContextDeps {
  changes: ChangeSource;
  artifacts: ArtifactStore;
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

/**
 * LoadContext: fetches the change, redacts credentials from every patch, file path (and previous
 * path) and the change's title (all counted in `stats.redactions`), makes the review plan
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
  const [coverage, gitattributes] = await Promise.all([
    input.change.testCoverage ?? (input.coverage ? headCoverage(input.change, deps.changes) : undefined),
    deps.changes.readHeadFile(input.change, '.gitattributes').catch(() => undefined),
  ]);
  const plan = buildPlan({
    files: clean,
    stats: { linesChanged: additions + deletions },
    attributes: parseGitAttributes(gitattributes ?? ''),
    paths: input.paths,
    agents: input.agents,
    promptTokens: (agent) => promptTokens(agent, change),
  });
  const excluded = new Set(plan.excluded.map((e) => e.path));
  const artifact: ContextArtifact = {
    change,
    files: clean,
    plan,
    stats: {
      filesChanged: clean.length,
      additions,
      deletions,
      linesChanged: additions + deletions,
      matchedFiles: clean.filter((f) => isMatch(f.path)).length,
      redactions,
      estimatedTokens: clean.reduce((s, f) => s + (excluded.has(f.path) ? 0 : countTokens(renderFile(f), 'openai')), 0),
      filesExcluded: plan.excluded.length,
      ...(coverage !== undefined ? { testCoverage: coverage } : {}),
    },
  };
  const contextRef = await deps.artifacts.putJson(contextKey(input.runId), artifact);
  return { contextRef, stats: artifact.stats };
}
