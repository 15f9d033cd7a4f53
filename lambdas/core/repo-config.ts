import { isNode, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { SEVERITIES, type Severity } from './contracts.js';

/**
 * Repository configuration (issue 13 point 6): a reviewed repository may hold `.agentflow.yml`
 * and review guidance files (`AGENTS.md`, `CLAUDE.md`, `.github/copilot-instructions.md`).
 *
 * Both are read at the change's **base** commit, never its head: a pull request cannot change the
 * rules it is reviewed by (turn the security agent off, ignore its own files, inject guidance).
 * A new or changed `.agentflow.yml` applies once merged. The workflow's settings stay the ceiling:
 * the file can narrow what is reviewed and posted, never widen it or raise a budget.
 */

/** The file's path in the repository. */
export const REPO_CONFIG_PATH = '.agentflow.yml';

/** Guidance files given to the agents when present, in this order. */
export const GUIDANCE_FILES = ['AGENTS.md', 'CLAUDE.md', '.github/copilot-instructions.md'] as const;

/** Characters of guidance (all files and path instructions together) given to the agents at most; the rest is cut. */
export const MAX_GUIDANCE_CHARS = 12_000;

/** Errors of an invalid `.agentflow.yml` reported at most, and characters of each (they travel in the run summary). */
export const MAX_REPO_CONFIG_ERRORS = 20;
export const MAX_REPO_CONFIG_ERROR_CHARS = 300;

const capErrors = (errors: readonly string[]): string[] => {
  const shown = errors
    .slice(0, MAX_REPO_CONFIG_ERRORS)
    .map((e) => (e.length > MAX_REPO_CONFIG_ERROR_CHARS ? `${e.slice(0, MAX_REPO_CONFIG_ERROR_CHARS - 1)}…` : e));
  return errors.length > shown.length ? [...shown, `${REPO_CONFIG_PATH}: … ${errors.length - shown.length} more errors`] : shown;
};

/** The largest `.agentflow.yml` read (characters); a larger one is an error and the defaults apply. */
export const MAX_REPO_CONFIG_CHARS = 64_000;

/** `.agentflow.yml` as written. Every key is optional; unknown keys are errors. */
export const RepoConfigSchema = z.strictObject({
  version: z.literal(1).optional().describe('the file format; 1'),
  path_instructions: z
    .array(
      z.strictObject({
        path: z.string().min(1).max(300).describe('a glob over changed paths, as in the workflow `paths:`'),
        instructions: z.string().min(1).max(2000).describe('what reviewers of matching files should check'),
      }),
    )
    .max(50)
    .optional(),
  ignore: z.array(z.string().min(1).max(300)).max(200).optional().describe('globs of changed paths not to review'),
  disable_agents: z
    .array(z.string().min(1).max(100))
    .max(50)
    .optional()
    .describe("agents of the workflow that do not run on this repository's changes"),
  max_inline_comments: z.number().int().min(0).max(100).optional().describe('at most the workflow’s own cap'),
  inline_min_severity: z.enum(SEVERITIES).optional().describe('at least as severe as the workflow’s own threshold'),
  fail_on: z
    .enum([...SEVERITIES, 'none'])
    .optional()
    .describe('findings at or above this severity fail the check run'),
  guidance: z.boolean().optional().describe('give AGENTS.md, CLAUDE.md and .github/copilot-instructions.md to the agents; default true'),
});
export type RepoConfigSource = z.infer<typeof RepoConfigSchema>;

/** The repository's settings as a run applies them (see {@link effectiveSettings}). */
export interface RepoSettings {
  pathInstructions: Array<{ path: string; instructions: string }>;
  ignore: string[];
  disableAgents: string[];
  maxInlineComments?: number;
  inlineMinSeverity?: Severity;
  failOn?: Severity | 'none';
  guidance: boolean;
}

/** What reading `.agentflow.yml` gave: its settings, or the errors (then the defaults apply). */
export interface RepoConfig {
  /** Whether the file exists at the base commit. */
  found: boolean;
  settings: RepoSettings;
  /** `path:line:col: message`, empty when the file is valid or absent. */
  errors: string[];
}

const DEFAULTS: RepoSettings = { pathInstructions: [], ignore: [], disableAgents: [], guidance: true };

/**
 * Reads `.agentflow.yml`. An invalid file gives its errors as `path:line:col: message` and the
 * default settings (the review runs as the workflow says); an absent file (`text` undefined) gives
 * the defaults without errors.
 *
 * @param agents the workflow's agent names (`disable_agents` must name them)
 * @example parseRepoConfig('fail_on: high\n', ['security']).settings.failOn // 'high'
 */
export function parseRepoConfig(text: string | undefined, agents: readonly string[]): RepoConfig {
  if (text === undefined) return { found: false, settings: DEFAULTS, errors: [] };
  if (text.length > MAX_REPO_CONFIG_CHARS) {
    return {
      found: true,
      settings: DEFAULTS,
      errors: [`${REPO_CONFIG_PATH}:1:1: the file is larger than ${MAX_REPO_CONFIG_CHARS} characters`],
    };
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number, message: string) => {
    const { line, col } = lines.linePos(offset);
    return `${REPO_CONFIG_PATH}:${line}:${col}: ${message}`;
  };
  // The position of the value at `path` (or of its nearest existing parent).
  const where = (path: ReadonlyArray<PropertyKey>): number => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as Array<string | number>, true);
      if (isNode(node) && node.range) return node.range[0];
    }
    return 0;
  };
  const fail = (errors: readonly string[]): RepoConfig => ({ found: true, settings: DEFAULTS, errors: capErrors(errors) });
  if (doc.errors.length > 0) return fail(doc.errors.map((e) => at(e.pos[0], e.message.split('\n')[0] ?? e.message)));
  // An empty file is a valid file with no settings.
  const parsed = RepoConfigSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    return fail(
      parsed.error.issues.flatMap((i) =>
        i.code === 'unrecognized_keys'
          ? i.keys.map((k) => {
              const pair = doc.getIn(i.path as Array<string | number>, true);
              const key =
                isNode(pair) && 'items' in pair
                  ? (pair.items as Array<{ key: { value?: unknown; range?: [number, number, number] } }>).find((p) => p.key?.value === k)
                      ?.key
                  : undefined;
              return at(key?.range?.[0] ?? where(i.path), `unknown key "${k}"`);
            })
          : [at(where(i.path), i.message)],
      ),
    );
  }
  const c = parsed.data;
  const unknown = (c.disable_agents ?? []).flatMap((name, i) =>
    agents.includes(name)
      ? []
      : [at(where(['disable_agents', i]), `no agent named "${name}" in this workflow (its agents: ${agents.join(', ') || 'none'})`)],
  );
  if (unknown.length > 0) return fail(unknown);
  return {
    found: true,
    errors: [],
    settings: {
      pathInstructions: (c.path_instructions ?? []).map((p) => ({ path: p.path, instructions: p.instructions })),
      ignore: c.ignore ?? [],
      disableAgents: c.disable_agents ?? [],
      ...(c.max_inline_comments !== undefined ? { maxInlineComments: c.max_inline_comments } : {}),
      ...(c.inline_min_severity !== undefined ? { inlineMinSeverity: c.inline_min_severity } : {}),
      ...(c.fail_on !== undefined ? { failOn: c.fail_on } : {}),
      guidance: c.guidance ?? true,
    },
  };
}

/**
 * The inline review's settings with the repository's applied: its cap at most the workflow's, its
 * threshold at least as severe as the workflow's (the workflow is the ceiling).
 */
export function effectiveInline(
  workflow: { maxComments: number; minSeverity: Severity },
  repo: Pick<RepoSettings, 'maxInlineComments' | 'inlineMinSeverity'> | undefined,
): { maxComments: number; minSeverity: Severity } {
  const rank = (s: Severity) => SEVERITIES.indexOf(s);
  return {
    maxComments: Math.min(workflow.maxComments, repo?.maxInlineComments ?? workflow.maxComments),
    minSeverity:
      repo?.inlineMinSeverity !== undefined && rank(repo.inlineMinSeverity) < rank(workflow.minSeverity)
        ? repo.inlineMinSeverity
        : workflow.minSeverity,
  };
}
