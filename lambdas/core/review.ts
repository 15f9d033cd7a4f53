import { z } from 'zod';
import { type ChangedFile, type InlineOptions, SEVERITIES } from './contracts.js';
import { lineHunks } from './hunks.js';
import { commentText, FIELD_CAPS, ICON, type ReportFinding } from './report.js';
import { fenceFor, normalizePatch } from './tokens.js';
import { findingKey } from './verify.js';

/**
 * The inline review: one pull request review per run whose comments sit on the lines of the diff
 * the findings point at (GitHub: `POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews` with
 * `event: COMMENT`). Pure: Aggregate builds it, Publish hands it to the forge.
 */

/** One inline comment: on `line` of the new file (`side: RIGHT`), or on `startLine`..`line`. */
export const InlineCommentSchema = z.strictObject({
  path: z.string().min(1),
  line: z.number().int().positive(),
  startLine: z.number().int().positive().optional(),
  side: z.literal('RIGHT'),
  body: z.string().min(1),
  /** The finding's key (`findingKey`): the same finding is the same comment on a later run. */
  key: z.string(),
});
export type InlineComment = z.infer<typeof InlineCommentSchema>;

/** The review a run posts (the `review.json` artifact). */
export const InlineReviewSchema = z.strictObject({
  /** The head commit the comments' lines belong to. */
  commitId: z.string().min(1),
  /** The review's own text (the summary comment carries the outcome and the rest). */
  body: z.string().min(1),
  comments: z.array(InlineCommentSchema),
  /**
   * Findings of earlier reviews whose code changed or disappeared: their comments are answered as
   * resolved (by `key`, the fingerprint their comment carries). @default none
   */
  resolved: z
    .array(z.strictObject({ key: z.string(), path: z.string(), line: z.number().int().nonnegative(), message: z.string() }))
    .default([]),
  /** Findings kept out of the review: file level, not on a diff line, below the threshold or over the cap. */
  summaryOnly: z.number().int().nonnegative(),
});
export type InlineReview = z.infer<typeof InlineReviewSchema>;

/** The new-file lines a forge accepts comments on (added and context lines of the real patch), with the hunk of each. */
const commentableLines = (file: Pick<ChangedFile, 'patch' | 'binary'>): Map<number, number> =>
  file.binary ? new Map() : lineHunks(normalizePatch(file.patch));

/** The hidden marker an inline comment starts with: the forge adapters find a finding's comment by it. */
export const findingMarker = (key: string) => `<!-- agentflow:finding:${key} -->`;

/** The key in a comment body's {@link findingMarker}, if the body starts with one (text further down cannot forge it). */
export const markedFinding = (body: string): string | undefined => /^<!-- agentflow:finding:([0-9a-f]{8,64}) -->/.exec(body)?.[1];

/**
 * The marker a reply answering a resolved finding's comment starts with. Like {@link findingMarker},
 * only a body's first line counts: text further down (a suggestion's code, a quote) cannot forge one.
 */
export const resolvedMarker = (key: string) => `<!-- agentflow:resolved:${key} -->`;

/** The key in a reply's {@link resolvedMarker}, if it starts with one. */
export const markedResolved = (body: string): string | undefined => /^<!-- agentflow:resolved:([0-9a-f]{8,64}) -->/.exec(body)?.[1];

/** Longest `replacement` posted as a suggestion (characters); a longer one is left to the message. */
export const MAX_SUGGESTION_CHARS = 4000;

/**
 * The body of one inline comment: a hidden marker with the finding's key, the severity, category
 * and message, the suggested fix, and a ```suggestion block when the finding carries a
 * `replacement` for exactly the commented lines. Model text is made inert (no HTML, links, mentions
 * or references: `commentText`); the replacement stays code inside a fence it cannot close.
 */
export function inlineCommentBody(f: ReportFinding, suggest: boolean): string {
  const out = [
    `${findingMarker(f.fingerprint ?? findingKey(f))}`,
    `**${ICON[f.severity]} ${f.severity} · ${commentText(f.category, FIELD_CAPS.category)}** — ${commentText(f.message)}`,
  ];
  if (f.suggestion) out.push('', `**Fix:** ${commentText(f.suggestion, FIELD_CAPS.suggestion)}`);
  if (suggest && f.replacement !== undefined && f.replacement.length <= MAX_SUGGESTION_CHARS) {
    const code = f.replacement.replace(/\r\n?/g, '\n').replace(/\n$/, '');
    const fence = fenceFor(code);
    // An empty replacement deletes the lines: an empty block (a blank line in it would insert one).
    out.push('', `${fence}suggestion`, ...(code === '' ? [] : [code]), fence);
  }
  out.push('', `<sub>AgentFlow · ${commentText(f.agents.join(', '), FIELD_CAPS.category)}</sub>`);
  return out.join('\n');
}

/**
 * The run's inline review: the most severe findings first, each on its line when that line is an
 * added or context line of the file's real diff (the lines a forge accepts; context shown to the
 * model from the head commit is not), at or above `minSeverity`, at most `maxComments`. A finding
 * whose `endLine` stays in the same hunk is a multi-line comment (`startLine`..`endLine`); its
 * `replacement` becomes a one-click suggestion only then, or for a single line. Everything else
 * (file level, lines outside the diff, below the threshold, over the cap) is counted in
 * `summaryOnly` and is in the summary comment.
 */
export function buildInlineReview(
  findings: readonly ReportFinding[],
  files: readonly ChangedFile[],
  options: InlineOptions,
  commitId: string,
  workflowName: string,
): InlineReview {
  const byPath = new Map(files.map((f) => [f.path, f]));
  const lines = new Map<string, Map<number, number>>();
  const linesOf = (file: ChangedFile) => {
    let m = lines.get(file.path);
    if (!m) {
      m = commentableLines(file);
      lines.set(file.path, m);
    }
    return m;
  };
  const threshold = SEVERITIES.indexOf(options.minSeverity);
  const comments: InlineComment[] = [];
  for (const f of findings) {
    if (comments.length >= options.maxComments) break;
    if (f.line === 0 || SEVERITIES.indexOf(f.severity) > threshold) continue;
    const file = byPath.get(f.file);
    if (!file) continue;
    const commentable = linesOf(file);
    const hunk = commentable.get(f.line);
    if (hunk === undefined) continue;
    // `endLine` 0 or not after `line` means one line.
    const end = f.endLine !== undefined && f.endLine > f.line ? f.endLine : undefined;
    let range = end !== undefined;
    for (let n = f.line + 1; end !== undefined && n <= end; n++) if (commentable.get(n) !== hunk) range = false;
    const single = end === undefined;
    comments.push({
      path: f.file,
      ...(range && end !== undefined ? { startLine: f.line, line: end } : { line: f.line }),
      side: 'RIGHT',
      body: inlineCommentBody(f, range || single),
      key: f.fingerprint ?? findingKey(f),
    });
  }
  const rest = findings.length - comments.length;
  return {
    commitId,
    body: `**AgentFlow · ${commentText(workflowName, FIELD_CAPS.category)}**: ${comments.length} finding${comments.length === 1 ? '' : 's'} on the changed lines${rest > 0 ? `; ${rest} more in the summary comment and the full report` : ''}.`,
    comments,
    resolved: [],
    summaryOnly: rest,
  };
}

/**
 * A reply that dismisses the finding of the comment or discussion it answers (its first line:
 * `/agentflow dismiss` or `@agentflow dismiss`), on every forge.
 */
export const isDismissReply = (body: string): boolean =>
  /^(?:\/agentflow|@agentflow)\s+dismiss\b/i.test(body.trimStart().split('\n')[0] ?? '');
