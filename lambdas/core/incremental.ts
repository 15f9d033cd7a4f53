import { createHash } from 'node:crypto';
import { z } from 'zod';
import { type Change, type ChangedFile, type Finding, FindingSchema, forgeOf } from './contracts.js';
import { parseHunks } from './hunks.js';
import type { FindingFeedback } from './ports.js';
import type { ReportFinding } from './report.js';
import { normalizePatch } from './tokens.js';

/**
 * Incremental re-review (issue 13 point 5). A pull request's review state — what the last review
 * saw and what it raised — is kept per forge, pull request and workflow; the next run reviews only
 * the files whose diff changed since, carries the other files' findings over without new comments,
 * and resolves the findings whose code changed or disappeared. Pure functions: LoadContext,
 * Aggregate and Publish call them.
 */

/** The review state's version; a state of another version is ignored (a full review follows). */
export const REVIEW_STATE_VERSION = 1;

/** Resolved and dismissed fingerprints kept per pull request at most (the oldest are forgotten). */
export const MAX_REMEMBERED_FINGERPRINTS = 2000;

/** An open finding in the review state: the finding, its fingerprint, the code it points at, whether its inline comment exists. */
export const StateFindingSchema = FindingSchema.extend({
  agents: z.array(z.string()),
  fingerprint: z.string().min(1),
  /** The normalised code of its lines when it was raised (see {@link normalizeCode}); '' for a file-level finding. */
  code: z.string(),
  /** Whether an inline comment carries it (it is never posted again). */
  posted: z.boolean(),
  /** The head commit of the review that first raised it. */
  raisedAt: z.string().min(1),
  /** The verifier confirmed it (then a later review does not send it to the verifier again). */
  confirmed: z.boolean().default(false),
});
export type StateFinding = z.infer<typeof StateFindingSchema>;

/**
 * A pull request's review state for one workflow (artifact {@link reviewStateKey}), written by
 * Publish once the review is posted.
 */
export const ReviewStateSchema = z.strictObject({
  version: z.literal(REVIEW_STATE_VERSION),
  /** The head commit the state's review saw (`lastReviewedSha`). */
  headSha: z.string().min(1),
  baseSha: z.string().min(1),
  /** The head branch it reviewed: a state of another branch (a reused local number) is not built on. */
  headRef: z.string().default(''),
  runId: z.string().min(1),
  /** When that run started (ISO 8601): of two runs of one pull request, the later one's state is kept. */
  startedAt: z.string().default(''),
  /** Each changed file's diff digest at that head ({@link fileDigest}). */
  files: z.record(z.string(), z.string()),
  /**
   * What the review was made with (agents, models, paths, repository settings: `reviewConfigDigest`);
   * another configuration reviews every file again (a new agent must see the unchanged files too).
   */
  config: z.string().default(''),
  /** The findings still open. */
  findings: z.array(StateFindingSchema),
  /** Fingerprints resolved (their code changed or disappeared), newest last. */
  resolved: z.array(z.string()),
  /** Fingerprints a person dismissed: never raised again on this pull request. */
  dismissed: z.array(z.string()),
  /** The feedback already counted, per fingerprint (the next run counts only what is new). */
  feedback: z
    .record(
      z.string(),
      z.strictObject({
        up: z.number().int().nonnegative(),
        down: z.number().int().nonnegative(),
        dismissed: z.boolean(),
        resolved: z.boolean().default(false),
        /** The finding's agents and category when it was counted (a dismissed finding leaves the open ones). */
        agents: z.array(z.string()).default([]),
        category: z.string().default(''),
      }),
    )
    .default({}),
});
export type ReviewState = z.infer<typeof ReviewStateSchema>;

/** Where a pull request's review state for `workflow` is kept in the artifact store. */
export const reviewStateKey = (change: Pick<Change, 'forge' | 'repository' | 'number'>, workflow: string): string =>
  `pulls/${forgeOf(change)}/${change.repository}/${change.number}/${workflow}/review-state.json`;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * A file's diff digest: its status, previous path and patch (line endings normalised). Two heads
 * give the same digest when the pull request changes the file identically — a push that does not
 * touch it, a rebase or a merge of the base that leaves its diff as it was — so its review stands.
 * A force-push needs no history: the digests compare diffs, not commits.
 */
export function fileDigest(f: Pick<ChangedFile, 'path' | 'status' | 'previousPath' | 'patch' | 'binary'>): string {
  return sha(`${f.status}\u0000${f.previousPath ?? ''}\u0000${f.binary ? 'binary' : normalizePatch(f.patch)}`).slice(0, 24);
}

/** Code as a fingerprint compares it: each line trimmed, inner whitespace collapsed, blank lines dropped. */
export function normalizeCode(lines: readonly string[]): string {
  return lines
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter((l) => l !== '')
    .join('\n');
}

/** The new-file lines a patch shows (added and context lines), by line number. */
export function newLines(patch: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const h of parseHunks(normalizePatch(patch)) ?? []) {
    for (const l of h.lines) if (l.marker !== '-' && l.new > 0) out.set(l.new, l.text);
  }
  return out;
}

/** The normalised code of lines `line`..`endLine` of `lines`, or '' when any of them is not shown. */
function codeAt(lines: ReadonlyMap<number, string>, line: number, endLine: number | undefined): string {
  if (line <= 0) return '';
  const end = endLine !== undefined && endLine > line ? Math.min(endLine, line + 50) : line;
  const out: string[] = [];
  for (let n = line; n <= end; n++) {
    const text = lines.get(n);
    if (text === undefined) return '';
    out.push(text);
  }
  return normalizeCode(out);
}

const normalizeText = (s: string) => s.toLowerCase().replace(/\s+/g, ' ').trim();

/**
 * A finding's fingerprint: its file, its category and the normalised code of the lines it points
 * at — not the line number, so a finding that moves with its code keeps it, and not the model's
 * wording when there is code. A file-level finding (or one whose lines the diff does not show) is
 * fingerprinted by its normalised message instead.
 *
 * @param lines the file's new-side lines ({@link newLines} of its shown patch)
 */
export function fingerprintOf(
  f: Pick<Finding, 'file' | 'line' | 'endLine' | 'category' | 'message'>,
  lines: ReadonlyMap<number, string>,
): { fingerprint: string; code: string } {
  const code = codeAt(lines, f.line, f.endLine);
  const subject = code !== '' ? `code\u0000${code}` : `message\u0000${normalizeText(f.message)}`;
  return { fingerprint: sha(`${f.file}\u0000${normalizeText(f.category)}\u0000${subject}`).slice(0, 20), code };
}

/**
 * The findings an earlier review of the pull request confirmed and left open (their fingerprints
 * are in `previous`): the verifier need not check them again. `files` locate their code.
 */
export function knownTo(
  previous: ReviewState | undefined,
  files: readonly ChangedFile[],
): (f: Pick<Finding, 'file' | 'line' | 'endLine' | 'category' | 'message'>) => boolean {
  // Only what the verifier confirmed: a finding it lowered, or never checked, is checked again.
  const known = new Set((previous?.findings ?? []).filter((f) => f.confirmed).map((f) => f.fingerprint));
  if (known.size === 0) return () => false;
  const byPath = new Map(files.map((f) => [f.path, f]));
  const lines = new Map<string, Map<number, string>>();
  return (f) => {
    let m = lines.get(f.file);
    if (!m) {
      const file = byPath.get(f.file);
      m = file && !file.binary ? newLines(file.shown ?? file.patch) : new Map<number, string>();
      lines.set(f.file, m);
    }
    return known.has(fingerprintOf(f, m).fingerprint);
  };
}

/** Where the review stands before this run: which files it reviews and the previous state it builds on. */
export interface IncrementalScope {
  /** The previous review's head commit. */
  since: string;
  /** Paths whose diff is the same as at `since`: not reviewed again. */
  unchanged: string[];
}

/**
 * The files this run need not review: those whose diff digest equals the previous review's.
 * None when there is no previous state, it is of another head branch or another review configuration
 * ({@link reviewConfigDigest}), or a full review is asked for.
 */
export function incrementalScope(
  files: readonly ChangedFile[],
  previous: ReviewState | undefined,
  full: boolean,
  headRef = '',
  config = '',
): IncrementalScope | undefined {
  if (!previous || full || previous.headRef !== headRef || previous.config !== config) return undefined;
  const unchanged = files.filter((f) => previous.files[f.path] === fileDigest(f)).map((f) => f.path);
  return { since: previous.headSha, unchanged };
}

/** What {@link reconcile} decided. */
export interface Reconciled {
  /** Every open finding after this run: this run's (fingerprinted) and those carried over, most severe first. */
  findings: Array<ReportFinding & { fingerprint: string; carried?: string }>;
  /** This run's findings raised before (same fingerprint): already on the pull request. */
  repeated: number;
  /** Findings of the previous review carried over: their files are unchanged, or their code still is. */
  carried: number;
  /** Findings of the previous review whose code changed or disappeared. */
  resolved: StateFinding[];
  /** Earlier findings no longer under review (their file ignored, their agents turned off): dropped, not resolved. */
  retired: number;
  /** Findings a person dismissed (dropped): raised again by this run, or open until now. */
  dismissed: number;
  /** The state this run leaves (Publish writes it once the review is posted; `posted` set there). */
  next: ReviewState;
}

const SEVERITY_RANK = ['critical', 'high', 'medium', 'low', 'info'];

/**
 * Reconciles this run's findings with the previous review's state:
 * - a dismissed fingerprint is dropped;
 * - a finding raised before keeps its first record (it is not posted again);
 * - a previous finding of a file not reviewed again (its diff is unchanged) is carried over as it was;
 * - a previous finding of a file reviewed again stays open when its code is still in the file's
 *   diff (moved to where it is now) — a model not repeating it does not resolve it — and is
 *   resolved when its code changed or disappeared, or its file left the pull request.
 *
 * @param files this run's changed files (their diffs locate code)
 * @param scope which files were not reviewed again (none: a full review)
 */
export function reconcile(input: {
  findings: readonly ReportFinding[];
  files: readonly ChangedFile[];
  previous: ReviewState | undefined;
  scope: IncrementalScope | undefined;
  change: Pick<Change, 'headSha' | 'baseSha'> & { headRef?: string };
  runId: string;
  /** Whether the verifier confirmed a finding of this run. @default none was */
  confirmed?: (f: ReportFinding) => boolean;
  /** The review configuration's digest ({@link reviewConfigDigest}). @default '' */
  config?: string;
  /** Files this run did not finish (a failed agent's, cut by the budget): their file-level findings stand. @default none */
  unfinished?: ReadonlySet<string>;
  /**
   * Earlier findings no longer under review — their file is now excluded (`.agentflow.yml`
   * `ignore`, the workflow's `paths`) or every agent that raised them is turned off: they leave the
   * open findings without being resolved (nothing about their code is known). @default none
   */
  retired?: (f: Pick<StateFinding, 'file' | 'agents'>) => boolean;
}): Reconciled {
  const { previous } = input;
  const byPath = new Map(input.files.map((f) => [f.path, f]));
  // A renamed file's findings follow it.
  const renamed = new Map(
    input.files.flatMap((f) => (f.previousPath !== undefined && f.previousPath !== f.path ? [[f.previousPath, f.path]] : [])),
  );
  const renamedFrom = new Map([...renamed].map(([from, to]) => [to, from]));
  const linesCache = new Map<string, Map<number, string>>();
  const linesOf = (path: string) => {
    let m = linesCache.get(path);
    if (!m) {
      const f = byPath.get(path);
      m = f && !f.binary ? newLines(f.shown ?? f.patch) : new Map();
      linesCache.set(path, m);
    }
    return m;
  };
  const dismissed = new Set(previous?.dismissed ?? []);
  const before = new Map((previous?.findings ?? []).map((f) => [f.fingerprint, f]));
  const unchanged = new Set(input.scope?.unchanged ?? []);
  const open = new Map<string, ReportFinding & { fingerprint: string; carried?: string }>();
  const states = new Map<string, StateFinding>();
  let repeated = 0;
  const dropped = new Set<string>();
  for (const f of input.findings) {
    const found = fingerprintOf(f, linesOf(f.file));
    // Raised before under the file's old name: the same finding.
    const from = renamedFrom.get(f.file);
    const old = from !== undefined ? fingerprintOf({ ...f, file: from }, linesOf(f.file)) : undefined;
    const known = (x: { fingerprint: string }) => before.has(x.fingerprint) || dismissed.has(x.fingerprint);
    const { fingerprint, code } = old && known(old) && !known(found) ? old : found;
    if (dismissed.has(fingerprint)) {
      dropped.add(fingerprint);
      continue;
    }
    if (open.has(fingerprint)) continue;
    const earlier = before.get(fingerprint);
    if (earlier) repeated++;
    open.set(fingerprint, { ...f, fingerprint, ...(earlier ? { carried: earlier.raisedAt } : {}) });
    states.set(fingerprint, {
      ...stripReport(f),
      fingerprint,
      code,
      posted: earlier?.posted ?? false,
      raisedAt: earlier?.raisedAt ?? input.change.headSha,
      confirmed: (earlier?.confirmed ?? false) || (input.confirmed?.(f) ?? false),
    });
  }
  let carried = 0;
  let retired = 0;
  const resolved: StateFinding[] = [];
  for (const p of previous?.findings ?? []) {
    if (open.has(p.fingerprint)) continue;
    // Dismissed since the last review: it leaves the open findings (and is counted once).
    if (dismissed.has(p.fingerprint)) {
      dropped.add(p.fingerprint);
      continue;
    }
    const path = byPath.has(p.file) ? p.file : (renamed.get(p.file) ?? p.file);
    const file = byPath.get(path);
    if (file && input.retired?.({ file: path, agents: p.agents })) {
      retired++;
      continue;
    }
    let keep: StateFinding | undefined;
    if (file && unchanged.has(path)) keep = p;
    else if (file && p.code !== '') {
      // Its code still in the file's diff (perhaps moved): it stands, whether a model repeated it or not.
      const at = locate(linesOf(path), p.code);
      if (at !== undefined) {
        const span = p.endLine !== undefined && p.endLine > p.line ? p.endLine - p.line : 0;
        keep = { ...p, file: path, line: at, ...(span > 0 ? { endLine: at + span } : {}) };
      }
    }
    // A file-level finding of a file reviewed again that no model raised again is resolved (its
    // fingerprint is its wording: a reworded one is a new finding, so none piles up) — unless the
    // run did not finish that file.
    else if (file && p.line === 0 && input.unfinished?.has(path)) keep = p;
    if (!keep) {
      resolved.push(p);
      continue;
    }
    carried++;
    const { fingerprint: _f, code: _c, posted: _p, raisedAt, confirmed: _v, ...finding } = keep;
    open.set(keep.fingerprint, { ...finding, fingerprint: keep.fingerprint, carried: raisedAt });
    states.set(keep.fingerprint, keep);
  }
  const findings = [...open.values()].sort(
    (a, b) => SEVERITY_RANK.indexOf(a.severity) - SEVERITY_RANK.indexOf(b.severity) || a.file.localeCompare(b.file) || a.line - b.line,
  );
  const remember = (xs: string[]) => xs.slice(-MAX_REMEMBERED_FINGERPRINTS);
  return {
    findings,
    repeated,
    carried,
    resolved,
    dismissed: dropped.size,
    retired,
    next: {
      version: REVIEW_STATE_VERSION,
      headSha: input.change.headSha,
      baseSha: input.change.baseSha,
      headRef: input.change.headRef ?? '',
      runId: input.runId,
      // Publish sets it from the run record when it keeps the state.
      startedAt: '',
      files: Object.fromEntries(input.files.map((f) => [f.path, fileDigest(f)])),
      config: input.config ?? '',
      findings: findings.map((f) => states.get(f.fingerprint) as StateFinding),
      resolved: remember([...(previous?.resolved ?? []).filter((r) => !open.has(r)), ...resolved.map((r) => r.fingerprint)]),
      dismissed: remember([...dismissed]),
      feedback: previous?.feedback ?? {},
    },
  };
}

/** The first line where `code` (normalised, possibly several lines) starts among `lines`. */
function locate(lines: ReadonlyMap<number, string>, code: string): number | undefined {
  const want = code.split('\n');
  const numbers = [...lines.keys()].sort((a, b) => a - b);
  for (const start of numbers) {
    let n = start;
    let i = 0;
    while (i < want.length) {
      const text = lines.get(n);
      if (text === undefined) break;
      const norm = normalizeCode([text]);
      // Blank lines inside the code are skipped (normalised code has none); it cannot start on one.
      if (norm === '' && i > 0) {
        n++;
        continue;
      }
      if (norm !== want[i]) break;
      i++;
      n++;
    }
    if (i === want.length) return start;
  }
  return undefined;
}

/** A report finding as a plain finding with its agents (the state keeps no report-only fields). */
function stripReport(f: ReportFinding): Omit<StateFinding, 'fingerprint' | 'code' | 'posted' | 'raisedAt' | 'confirmed'> {
  return {
    file: f.file,
    line: f.line,
    severity: f.severity,
    category: f.category,
    message: f.message,
    suggestion: f.suggestion,
    ...(f.endLine !== undefined ? { endLine: f.endLine } : {}),
    ...(f.replacement !== undefined ? { replacement: f.replacement } : {}),
    agents: [...f.agents],
  };
}

/** People's verdicts on one agent's findings of one category, new since the last count. */
export interface FeedbackTally {
  agent: string;
  category: string;
  /** 👍 reactions and threads a person resolved. */
  accepted: number;
  /** 👎 reactions and dismissals. */
  rejected: number;
  /** Of `rejected`, the dismissals. */
  dismissed: number;
}

/** The metrics of people's feedback (per workflow, agent and category; the dashboard graphs them). */
export const FINDINGS_ACCEPTED_METRIC = 'FindingsAccepted';
export const FINDINGS_REJECTED_METRIC = 'FindingsRejected';

/**
 * Applies the feedback read from the forge to the last review's state: dismissed fingerprints join
 * `dismissed` (never raised again on this pull request), and each commented finding's counts are
 * updated in `feedback` (the most ever seen: a reaction taken back and given again counts once),
 * with its agents and category. What is new is counted by {@link feedbackDelta} once the state is
 * kept, so a run whose state is not kept counts nothing.
 */
export function applyFeedback(
  previous: ReviewState,
  feedback: readonly FindingFeedback[],
): { state: ReviewState; tallies: FeedbackTally[] } {
  const open = new Map(previous.findings.map((f) => [f.fingerprint, f]));
  const counted = { ...previous.feedback };
  const dismissed = new Set(previous.dismissed);
  for (const fb of feedback) {
    const before = counted[fb.key];
    const finding = open.get(fb.key);
    // Feedback on a finding no longer open and never counted: its agent is not known any more.
    if (!before && !finding) continue;
    const isDismissed = (before?.dismissed ?? false) || fb.dismissedBy !== undefined;
    counted[fb.key] = {
      up: Math.max(before?.up ?? 0, fb.up),
      down: Math.max(before?.down ?? 0, fb.down),
      dismissed: isDismissed,
      resolved: (before?.resolved ?? false) || fb.resolved === true,
      agents: finding ? [...finding.agents] : (before?.agents ?? []),
      category: finding?.category ?? before?.category ?? '',
    };
    if (isDismissed) dismissed.add(fb.key);
  }
  const state = { ...previous, dismissed: [...dismissed].slice(-MAX_REMEMBERED_FINGERPRINTS), feedback: counted };
  return { state, tallies: feedbackDelta(previous.feedback, counted) };
}

/**
 * The feedback counted in `next` and not in `kept` (the state stored now), per agent and category:
 * 👍 and threads a person resolved are accepted, 👎 and dismissals rejected. Publish counts it
 * when it keeps `next`, against the state it replaces, so two runs never count the same reaction.
 */
export function feedbackDelta(kept: ReviewState['feedback'] | undefined, next: ReviewState['feedback']): FeedbackTally[] {
  const tallies = new Map<string, FeedbackTally>();
  for (const [key, now] of Object.entries(next)) {
    const before = kept?.[key];
    const newlyDismissed = now.dismissed && !before?.dismissed ? 1 : 0;
    const up = Math.max(0, now.up - (before?.up ?? 0)) + (now.resolved && !before?.resolved ? 1 : 0);
    const down = Math.max(0, now.down - (before?.down ?? 0)) + newlyDismissed;
    if (up === 0 && down === 0) continue;
    for (const agent of now.agents) {
      const id = `${agent}\u0000${now.category}`;
      const t = tallies.get(id) ?? { agent, category: now.category, accepted: 0, rejected: 0, dismissed: 0 };
      t.accepted += up;
      t.rejected += down;
      t.dismissed += newlyDismissed;
      tallies.set(id, t);
    }
  }
  return [...tallies.values()];
}

/** Acceptance of one agent's findings of one category, over runs. */
export interface AcceptanceRate extends FeedbackTally {
  /** accepted ÷ (accepted + rejected), or null without feedback. */
  rate: number | null;
}

/**
 * Adds up the feedback tallies of runs (each run records only what was new to it, so nothing is
 * counted twice) per agent and category, with the acceptance rate; most rejected first.
 */
export function acceptanceRates(runs: ReadonlyArray<{ feedback?: readonly FeedbackTally[] | undefined }>): AcceptanceRate[] {
  const by = new Map<string, FeedbackTally>();
  for (const t of runs.flatMap((r) => r.feedback ?? [])) {
    const id = `${t.agent}\u0000${t.category}`;
    const sum = by.get(id) ?? { agent: t.agent, category: t.category, accepted: 0, rejected: 0, dismissed: 0 };
    sum.accepted += t.accepted;
    sum.rejected += t.rejected;
    sum.dismissed += t.dismissed;
    by.set(id, sum);
  }
  return [...by.values()]
    .map((t) => ({ ...t, rate: t.accepted + t.rejected > 0 ? t.accepted / (t.accepted + t.rejected) : null }))
    .sort((a, b) => b.rejected - a.rejected || a.agent.localeCompare(b.agent) || a.category.localeCompare(b.category));
}

/**
 * The digest of what a review is made with: the reviewers (name, model, prompt, categories, paths),
 * the workflow's paths and context settings and the repository's settings. A state made with
 * another configuration is not built on (see {@link incrementalScope}).
 */
export function reviewConfigDigest(parts: unknown): string {
  return sha(JSON.stringify(parts)).slice(0, 24);
}
