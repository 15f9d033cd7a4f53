import type { AgentResult, Change, ChangedFile, Finding, GateOutcome, RunOutcome, RunSummary, Severity } from './contracts.js';
import { type Forge, forgeOf, SEVERITIES } from './contracts.js';
import { placeFindings } from './placement.js';
import type { ExclusionReason } from './plan-reasons.js';
import { roundUsd } from './pricing.js';
import { normalizeMessage as norm, VERIFY_PHASE, type VerificationSummary } from './verify.js';

/** A finding with the agents that reported it. */
export interface ReportFinding extends Finding {
  agents: string[];
  /** Its stable fingerprint (`fingerprintOf` in incremental.ts): file, category and the code it points at. */
  fingerprint?: string;
  /** Set when an earlier review raised it: that review's head commit (it is already on the pull request). */
  carried?: string;
}

const rank = (s: Severity) => SEVERITIES.indexOf(s);

/**
 * Merges findings across agents: findings on the same file and line with the same category or
 * the same message are one finding; it keeps the highest severity, the longest suggestion and
 * every agent that reported it. Sorted by severity, then file and line.
 */
export function mergeFindings(perAgent: ReadonlyArray<{ agent: string; findings: readonly Finding[] }>): ReportFinding[] {
  const merged: ReportFinding[] = [];
  // Findings can only merge on the same file and line: one bucket each, so merging stays linear
  // in the number of findings (a scan of all merged findings per finding was quadratic).
  const byLine = new Map<string, ReportFinding[]>();
  for (const { agent, findings } of perAgent) {
    for (const f of findings) {
      const key = `${f.line}\u0000${f.file}`;
      const bucket = byLine.get(key) ?? [];
      const same = bucket.find((m) => m.category === f.category || norm(m.message) === norm(f.message));
      if (!same) {
        const added = { ...f, agents: [agent] };
        merged.push(added);
        bucket.push(added);
        byLine.set(key, bucket);
        continue;
      }
      if (!same.agents.includes(agent)) same.agents.push(agent);
      if (rank(f.severity) < rank(same.severity)) {
        same.severity = f.severity;
        same.message = f.message;
        // The range and the suggested code go with the message they belong to.
        if (f.endLine !== undefined) same.endLine = f.endLine;
        else delete same.endLine;
        if (f.replacement !== undefined) same.replacement = f.replacement;
        else delete same.replacement;
      }
      if (f.suggestion.length > same.suggestion.length) same.suggestion = f.suggestion;
    }
  }
  return merged.sort((a, b) => rank(a.severity) - rank(b.severity) || a.file.localeCompare(b.file) || a.line - b.line);
}

/**
 * The run's findings as the report shows them: each agent result's findings placed on the diff
 * (see `placeFindings`; without the changed files they stay as they are), then merged across the
 * results in their order (see {@link mergeFindings}). Aggregate and the verifier both call this, so
 * the findings the verifier checks are exactly those the report shows.
 */
export function reviewFindings(
  perResult: ReadonlyArray<{ agent: string; findings: readonly Finding[] }>,
  files: readonly ChangedFile[] | undefined,
): { findings: ReportFinding[]; relocated: number } {
  let relocated = 0;
  const placed = files
    ? perResult.map((r) => {
        const p = placeFindings(r.findings, files);
        relocated += p.relocated;
        return { agent: r.agent, findings: p.findings };
      })
    : perResult;
  return { findings: mergeFindings(placed), relocated };
}

/** `s` cut at a word boundary to at most `max` characters, with `…` when cut. */
function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  const cut = s.slice(0, max);
  const space = cut.lastIndexOf(' ');
  return `${space > max / 2 ? cut.slice(0, space) : cut}…`;
}

/** Reads a Step Functions error cause: Lambda's JSON `{errorMessage}` or plain text. */
export function errorText(error: AgentResult['error']): string | undefined {
  if (!error) return undefined;
  let cause = error.Cause ?? '';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string };
    if (parsed.errorMessage) cause = parsed.errorMessage;
  } catch {
    // a plain-text cause
  }
  return cause ? `${error.Error}: ${cause}` : error.Error;
}

/** Builds the run summary (USD rounded to the micro-dollar). */
/** One line per gate outcome: `approved by <@U024BE7LH> at …`, `timeout`, `rejected by @octocat`. */
export function describeGate(g: GateOutcome): string {
  const by = g.by ?? g.decision?.by;
  const at = g.at ?? g.decision?.at;
  const extra = typeof g.conclusion === 'string' ? ` (CI ${g.conclusion})` : '';
  return `${g.outcome}${by ? ` by ${by}` : ''}${at ? ` at ${at}` : ''}${extra}`;
}

/** Files the plan excluded and agents' files cut by the budget, as the comment lists them. */
export interface NotReviewed {
  readonly agent: string;
  readonly reason: string;
  readonly paths: readonly string[];
}

/**
 * The run's outcome from its agents (DESIGN §12): SUCCEEDED when every agent succeeded (a run
 * with no agents, too); SKIPPED when no agent had a file to review; FAILED when none produced a result (every agent failed), or when an agent
 * of a `required` phase did not succeed; PARTIAL otherwise (some failed, or were cut short by the
 * budget). The reason says which agents and why, in one sentence.
 */
export function runOutcome(
  agents: ReadonlyArray<Pick<AgentResult, 'name' | 'phase' | 'status' | 'filesNotReviewed' | 'notReviewed' | 'error' | 'calls' | 'chunks'>>,
  requiredPhases: readonly string[] = [],
): { status: RunOutcome; reason?: string } {
  // The verifier checks the reviewers' findings: whether the review happened is the reviewers'
  // outcome; a verifier that did not finish makes a reviewed run PARTIAL (its findings unverified).
  const verifiers = agents.filter((a) => a.phase === VERIFY_PHASE);
  if (verifiers.length > 0 && verifiers.length < agents.length) {
    const reviewed = runOutcome(
      agents.filter((a) => a.phase !== VERIFY_PHASE),
      requiredPhases,
    );
    const unfinished = verifiers.filter((a) => a.status !== 'succeeded');
    if (reviewed.status !== 'SUCCEEDED' || unfinished.length === 0) return reviewed;
    const why = unfinished.map((a) => clip((errorText(a.error) ?? a.notReviewed ?? 'error').replace(/ \[attempts: .*\]$/s, ''), 300));
    return { status: 'PARTIAL', reason: `findings not verified: ${why.join('; ')}` };
  }
  const failed = agents.filter((a) => a.status === 'failed');
  const partial = agents.filter((a) => a.status === 'partial');
  const why = (a: (typeof agents)[number]) =>
    `${a.name} (${clip((errorText(a.error) ?? a.notReviewed ?? 'error').replace(/ \[attempts: .*\]$/s, ''), 300)})`;
  const required = agents.filter((a) => a.status !== 'succeeded' && requiredPhases.includes(a.phase));
  if (agents.length > 0 && failed.length === agents.length) {
    const budgetOnly = failed.every(
      (a) => a.error?.Error === 'BudgetExceededError' && (a.error.Cause ?? '').startsWith('not reviewed') && a.calls === 0,
    );
    return {
      status: 'FAILED',
      reason: budgetOnly
        ? 'not reviewed: budget — the run budget does not cover one chunk of any agent; raise max_usd_per_run or narrow paths'
        : `every agent failed: ${failed.map(why).join('; ')}`,
    };
  }
  // A review of nothing is not a success: no agent had a file to read.
  if (agents.length > 0 && agents.every((a) => a.status === 'succeeded' && a.chunks === 0)) {
    return { status: 'SKIPPED', reason: 'nothing to review: the review plan excludes every changed file (see Not reviewed)' };
  }
  if (required.length > 0) {
    return { status: 'FAILED', reason: `required phase did not complete: ${required.map((a) => `${a.phase}/${why(a)}`).join('; ')}` };
  }
  if (failed.length === 0 && partial.length === 0) return { status: 'SUCCEEDED' };
  const parts = [
    ...(failed.length ? [`${failed.length} of ${agents.length} agents failed: ${failed.map(why).join('; ')}`] : []),
    ...partial.map(
      (a) => `${a.name} did not review ${a.filesNotReviewed} file${a.filesNotReviewed === 1 ? '' : 's'} (${a.notReviewed ?? 'budget'})`,
    ),
  ];
  return { status: 'PARTIAL', reason: parts.join('; ') };
}

export function summarize(
  workflow: string,
  agents: readonly AgentResult[],
  findings: readonly ReportFinding[],
  gates: Readonly<Record<string, GateOutcome>> = {},
  extra: {
    /** The run's cost in USD when known exactly (the sum of settled micro-dollars). @default the agents' costUsd added up */
    costUsd?: number;
    excluded?: ReadonlyArray<{ path: string; reason: string }>;
    requiredPhases?: readonly string[];
    /** Findings moved to file level (see `placeFindings`). @default 0 */
    relocated?: number;
    /** What the verifier pass did (see `applyVerdicts`); absent when the workflow does not verify. */
    verification?: VerificationSummary;
  } = {},
): RunSummary {
  const bySeverity: Record<string, number> = {};
  for (const s of SEVERITIES) bySeverity[s] = 0;
  for (const f of findings) bySeverity[f.severity] = (bySeverity[f.severity] ?? 0) + 1;
  const excluded: Record<string, number> = {};
  for (const e of extra.excluded ?? []) excluded[e.reason] = (excluded[e.reason] ?? 0) + 1;
  const outcome = runOutcome(agents, extra.requiredPhases);
  return {
    workflow,
    status: outcome.status,
    ...(outcome.reason ? { reason: outcome.reason } : {}),
    excluded,
    findings: findings.length,
    bySeverity,
    costUsd: extra.costUsd ?? roundUsd(agents.reduce((s, a) => s + a.costUsd, 0)),
    inputTokens: agents.reduce((s, a) => s + a.inputTokens, 0),
    outputTokens: agents.reduce((s, a) => s + a.outputTokens, 0),
    offline: agents.some((a) => a.servedBy !== undefined),
    relocated: extra.relocated ?? 0,
    ...(extra.verification ? { verification: extra.verification } : {}),
    gates: Object.fromEntries(Object.entries(gates).map(([k, g]) => [k, describeGate(g)])),
    agents: agents.map((a) => {
      const error = errorText(a.error);
      return {
        name: a.name,
        phase: a.phase,
        status: a.status,
        provider: a.provider,
        model: a.model,
        inputTokens: a.inputTokens,
        outputTokens: a.outputTokens,
        costUsd: a.costUsd,
        findings: a.findings,
        ...(error ? { error } : {}),
        calls: a.calls,
        cacheHits: a.cacheHits,
        fallbackUsed: a.fallbackUsed,
        ...(a.routing ? { routing: a.routing } : {}),
        attempts: a.attempts,
        filesReviewed: a.filesReviewed,
        filesNotReviewed: a.filesNotReviewed,
        ...(a.notReviewed ? { notReviewed: a.notReviewed } : {}),
        ...(a.shareUsd !== undefined ? { shareUsd: a.shareUsd } : {}),
        repairs: a.repairs,
        truncated: a.truncated,
        rawAnswers: a.rawAnswers,
        toolCalls: a.toolCalls,
        toolErrors: a.toolErrors,
        iterations: a.iterations,
        ...(a.decision ? { decision: a.decision } : {}),
      };
    }),
  };
}

/**
 * What the gateway did for an agent, for the report: model routing, cache hits, fallback and the
 * attempts that did not answer (provider/model, error name, ms).
 */
export function gatewayNotes(a: RunSummary['agents'][number]): string {
  const notes: string[] = [];
  if (a.routing) notes.push(a.routing);
  if (a.cacheHits > 0) notes.push(`${a.cacheHits} cache hit${a.cacheHits === 1 ? '' : 's'} ($0)`);
  if (a.fallbackUsed) notes.push('fallback used');
  if (a.repairs > 0) notes.push(`${a.repairs} repair prompt${a.repairs === 1 ? '' : 's'}`);
  if (a.truncated > 0) notes.push(`${a.truncated} answer${a.truncated === 1 ? '' : 's'} cut at max_tokens (findings before the cut kept)`);
  if (a.rawAnswers.length > 0)
    notes.push(`raw answer${a.rawAnswers.length === 1 ? '' : 's'}: ${a.rawAnswers.map((w) => `\`${w}\``).join(', ')}`);
  const failed = a.attempts.filter((t) => t.outcome === 'error' || t.outcome === 'skipped');
  if (failed.length > 0) {
    notes.push(
      `attempts: ${failed
        .map(
          (t) =>
            `${t.provider}/${t.model} ${t.outcome === 'skipped' ? 'skipped' : 'failed'} (${(t.error ?? '').split(':')[0]}, ${t.ms} ms)`,
        )
        .join('; ')}`,
    );
  }
  return notes.join(' · ');
}

/** The icon of each severity in comments. */
export const ICON: Record<Severity, string> = { critical: '🔴', high: '🟠', medium: '🟡', low: '🔵', info: '⚪' };

/** The hidden marker that lets publish find its own comment again. */
export const commentMarker = (workflow: string) => `<!-- agentflow:${workflow} -->`;

/**
 * GitHub rejects comment bodies over 65,536 characters; we stay under 60,000 and say what was left
 * out. Source: https://docs.github.com/en/rest/issues/comments (body size limit, 2025).
 */
export const MAX_COMMENT_CHARS = 60_000;

/**
 * Text from outside (errors, names) as plain text outside a table (headings, lists, the status
 * line): no HTML tags, no Markdown links or emphasis from it; code spans keep a `|` as it is (only
 * a table needs `\|`, and outside one GitHub would show the backslash).
 */
const escapeText = (s: string) => inlineText(s, FIELD_CAPS.reason, code);

/**
 * Model-written text for a comment body outside a table (an inline review comment): inert like
 * {@link cellText} (no HTML, links, mentions or references), code spans kept, capped at `max`.
 */
export const commentText = (s: string, max: number = FIELD_CAPS.message) => inlineText(s, max, code);
const cell = (s: string) => cellText(s, FIELD_CAPS.reason);
/** A path in a code span that its own backticks cannot end. */
const code = (s: string) => {
  const ticks = '`'.repeat(Math.max(0, ...Array.from(s.matchAll(/`+/g), (m) => m[0].length)) + 1);
  return `${ticks}${ticks.length > 1 ? ' ' : ''}${s.replace(/\r\n|\r|\n/g, ' ')}${ticks.length > 1 ? ' ' : ''}${ticks}`;
};
/** Field caps for model-written text in the comment (characters, before escaping); longer text ends in `…`. */
export const FIELD_CAPS = { file: 300, category: 100, message: 1_000, suggestion: 2_000, reason: 1_000 } as const;

const cap = (s: string, max: number) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/** A link to `url` when it is a plain https URL (no spaces, brackets or quotes), else the text as code. */
const safeLink = (text: string, url: string | undefined): string =>
  url && /^https:\/\/[^\s()<>[\]"'`]+$/.test(url) && url.length <= 500
    ? `[${escapeText(text)}](${url})`
    : code(cap(url ?? text, FIELD_CAPS.file));

/**
 * The "Generated tests" section (`output.create_files`): the draft pull request or branch the
 * files were committed to (a link when the forge gave an https URL; the forge's data is escaped
 * all the same), the files, those refused and why, or why nothing was committed.
 */
function testsSection(summary: RunSummary, forge: Forge): string[] {
  const f = summary.files;
  if (!f) return [];
  const out = ['', '### Generated tests', ''];
  const names = CHANGE_NAMES[forge];
  if (f.committed.length > 0 && f.branch) {
    const where = f.pullRequest !== undefined ? `draft ${names.noun} ${names.ref(f.pullRequest)}` : `branch ${f.branch}`;
    out.push(
      `${f.committed.length} test file${f.committed.length === 1 ? '' : 's'} committed as ${code(f.sha.slice(0, 7))} ${f.pushed ? `to this ${names.noun}'s branch ${code(cap(f.branch, FIELD_CAPS.file))}` : `to ${code(cap(f.branch, FIELD_CAPS.file))}`}: ${safeLink(where, f.url)}. CI reports on that commit.`,
      '',
      ...f.committed.slice(0, 20).map((p) => `- ${code(cap(p, FIELD_CAPS.file))}`),
    );
  } else {
    out.push(f.error ? `No test file was committed: ${escapeText(f.error)}` : 'No test file was committed.');
  }
  if (f.refused.length > 0) {
    out.push(
      '',
      `Refused (not committed):`,
      '',
      ...f.refused.slice(0, 20).map((r) => `- ${code(cap(r.path, FIELD_CAPS.file))}: ${escapeText(r.reason)}`),
    );
  }
  return out;
}

/** Characters that would start Markdown or HTML in a cell, as numeric character references (no backslashes: a `\` before a `|` is ambiguous in GFM tables). */
const ENTITY: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '|': '&#124;',
  '\\': '&#92;',
  '`': '&#96;',
  '[': '&#91;',
  ']': '&#93;',
  '*': '&#42;',
  _: '&#95;',
  '~': '&#126;',
};
/** URLs GitHub would turn into links (GFM autolinks: scheme URLs and `www.`), shown as code instead. */
const URL = /\b(?:[a-z][a-z0-9+.-]*:\/\/|www\.)[^\s<>`|]*[^\s<>`|).,;:!?'"]/gi;

/** One line of outside text with no Markdown, HTML, links, URLs or mentions left in it. */
const plainLine = (s: string, span: (s: string) => string = codeCell): string => {
  let out = '';
  let at = 0;
  for (const m of s.matchAll(URL)) {
    out += inertText(s.slice(at, m.index)) + span(m[0]);
    at = m.index + m[0].length;
  }
  return out + inertText(s.slice(at));
};
const inertText = (s: string) =>
  s
    // `#123` and `other/repo#123`: references that would link (and cross-reference) issues and pull
    // requests. Before the character references below, which contain `#` and digits themselves.
    .replace(/#(?=\d)/g, '#\u200b')
    // GitLab's references: `!12` (merge request), `~bug` (label), `%"v1"` (milestone), `$3`
    // (snippet), `&5` (epic) resolve in its rendered text, entities decoded; `^alert#6` is broken
    // at its `#` above (https://docs.gitlab.com/user/markdown/#gitlab-specific-references, read 2026-11).
    // Only where a reference can start, so `R&D`, `$HOME` and `!important` stay as written.
    .replace(/[!$&](?=\d)|[~%](?=[\p{L}\p{N}_"])/gu, (c) => `${c}\u200b`)
    .replace(/[&<>|\\`[\]*_~]/g, (c) => ENTITY[c] as string)
    // `@org/team`, `@user` and e-mail autolinks: a zero-width space after `@` keeps them from resolving.
    .replace(/@(?=[\p{L}\p{N}_-])/gu, '@\u200b');
/**
 * A code span for a table cell: a `|` inside is `\|` (GFM), unless a `\` before it makes that
 * ambiguous; then one line of inert text (line breaks as spaces, URLs as code, `|` as `&#124;`).
 */
const codeCell = (s: string): string => (/\\\|/.test(s) ? plainLine(s.replace(/\r\n|\r|\n/g, ' ')) : code(s).replace(/\|/g, '\\|'));

/**
 * Text a model (or an error that quotes one) wrote, safe for one Markdown table cell: capped at
 * `max` characters, well-formed one-line code spans kept (re-fenced so they cannot break out),
 * everything else inert — `& < > | \ ` [ ] * _ ~` as character references, bare URLs as code,
 * `@` mentions and `#123` references broken by a zero-width space, line breaks (`\r\n`, `\r`,
 * `\n`) as `<br>`. No link survives, not even to the reviewed repository.
 *
 * @example cellText('[fix](https://evil.example) @org/team | <b>') // '&#91;fix&#93;(`https://evil.example`) @\u200borg/team &#124; &lt;b&gt;'
 */
export function cellText(s: string, max: number = FIELD_CAPS.message): string {
  return inlineText(s, max, codeCell);
}

/** {@link cellText} with code spans (kept ones and URLs) made by `span`: {@link codeCell} in a table, {@link code} outside one. */
function inlineText(s: string, max: number, span: (s: string) => string): string {
  return cap(s, max)
    .split(/\r\n|\r|\n/)
    .map((line) => withCodeSpans(line, span))
    .join('<br>');
}

/** Splits one line into well-formed code spans (a backtick run closed by a run of the same length) and text. */
function withCodeSpans(line: string, span: (s: string) => string): string {
  let out = '';
  let at = 0;
  let from = 0;
  for (;;) {
    const open = /`+/g;
    open.lastIndex = from;
    const o = open.exec(line);
    if (!o) break;
    const close = new RegExp(`(?<!\`)\`{${o[0].length}}(?!\`)`, 'g');
    close.lastIndex = o.index + o[0].length;
    const c = close.exec(line);
    const inner = c ? line.slice(o.index + o[0].length, c.index) : '';
    if (!c || inner.trim() === '') {
      from = o.index + o[0].length;
      continue;
    }
    const content = inner.length > 1 && inner.startsWith(' ') && inner.endsWith(' ') ? inner.slice(1, -1) : inner;
    out += plainLine(line.slice(at, o.index), span) + span(content);
    at = c.index + c[0].length;
    from = at;
  }
  return out + plainLine(line.slice(at), span);
}

/** Paths listed in the "Not reviewed" section at most (the full report has all). */
export const MAX_LISTED_FILES = 200;
const OUTCOME_ICON: Record<RunOutcome, string> = { SUCCEEDED: '✅', PARTIAL: '⚠️', FAILED: '❌', SKIPPED: '⏭️' };

/** An agent's status cell: what it did, and for a failed agent that made paid calls, that it did. */
function agentStatus(a: RunSummary['agents'][number]): string {
  switch (a.status) {
    case 'succeeded':
      return '✅ succeeded';
    case 'partial':
      return `⚠️ partial: ${a.filesNotReviewed} file${a.filesNotReviewed === 1 ? '' : 's'} not reviewed (${cell(a.notReviewed ?? 'budget')})`;
    case 'failed': {
      const error =
        a.calls > 0
          ? (a.error ?? '').replace(/no call was made/g, `no further call was made after ${a.calls} paid call${a.calls === 1 ? '' : 's'}`)
          : (a.error ?? '');
      return `❌ failed: ${cell(error)}`;
    }
    default: {
      const never: never = a.status;
      return String(never);
    }
  }
}
const usd = (n: number) => `$${n.toFixed(n > 0 && n < 0.0001 ? 6 : 4)}`;
const int = (n: number) => n.toLocaleString('en-US');

/** Findings the summary comment lists at most, most severe first; the inline review and the full report carry every one. */
export const TOP_FINDINGS = 10;
/** A finding's message in the summary comment is cut here (characters): its inline comment has the full text. */
const SUMMARY_MESSAGE_CAP = 300;
/** A link longer than this (characters) is left out and the location shown as code only. */
const MAX_LINK_CHARS = 2_000;
/** A GitHub `owner/name` (owner: letters, digits, `-`; name: also `.` and `_`, not only dots). */
const REPOSITORY = /^[A-Za-z0-9-]+\/(?!\.+$)[A-Za-z0-9._-]+$/;

/** One path segment for a URL: `encodeURIComponent`, plus `! ' ( ) *`, which it leaves and which end or start Markdown. */
const urlSegment = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * The link to a finding's lines in the pull request's head commit:
 * `https://github.com/<owner/name>/blob/<headSha>/<path>#L<line>` (`#L<line>-L<endLine>` for a
 * range, no anchor for a file-level finding, line 0). Built only from the change's repository and
 * head SHA and the finding's path, each path segment percent-encoded (parentheses, spaces and
 * brackets included), so nothing in the path can end the Markdown link.
 *
 * @returns `undefined` when there is no pull request to link into (number 0: a manual run on refs),
 * the repository is not `owner/name`, the head SHA is not hex, or the path has an empty, `.` or
 * `..` segment (a browser would resolve those out of the commit).
 * @example findingUrl(change, { file: 'App/Pay (v2).swift', line: 10, endLine: 12 })
 * // 'https://github.com/acme/shop-apps/blob/b1234567/App/Pay%20%28v2%29.swift#L10-L12'
 */
export function findingUrl(change: Change, f: Pick<Finding, 'file' | 'line' | 'endLine'>): string | undefined {
  if (change.number <= 0 || !/^[0-9a-f]{7,64}$/i.test(change.headSha)) return undefined;
  const segments = f.file.split('/');
  if (segments.some((s) => s === '' || /^\.+$/.test(s))) return undefined;
  const end = f.endLine !== undefined && f.endLine > f.line ? f.endLine : undefined;
  const url = FILE_LINKS[forgeOf(change)](change, segments.map(urlSegment).join('/'), f.line, end);
  return url !== undefined && url.length <= MAX_LINK_CHARS ? url : undefined;
}

/**
 * What each forge calls a change and how it writes a reference to one: a pull request `#42` on
 * GitHub, a merge request `!42` on GitLab (`#42` there is an issue).
 * Source: https://docs.gitlab.com/user/markdown/#gitlab-specific-references (read 2026-11).
 */
const CHANGE_NAMES: Record<Forge, { noun: string; ref: (n: number) => string }> = {
  github: { noun: 'pull request', ref: (n) => `#${n}` },
  gitlab: { noun: 'merge request', ref: (n) => `!${n}` },
};

/** A GitLab project path: groups and subgroups, then the project (`acme/mobile/shop`). */
const GITLAB_PROJECT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)+$/;

/**
 * The instance a GitLab merge request is on, from its web URL (`https://gitlab.example.com/acme/shop/-/merge_requests/4`
 * → `https://gitlab.example.com`): undefined unless the URL is http(s) and names the project.
 */
function gitlabOrigin(change: Change): string | undefined {
  let url: URL;
  try {
    url = new globalThis.URL(change.url);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  return url.pathname.startsWith(`/${change.repository}/-/`) ? url.origin : undefined;
}

/**
 * Each forge's link to lines of a file at the change's head commit (`path` already
 * percent-encoded, `line` 0 for the whole file), or undefined when the change does not name a
 * repository the forge can link to: a forge added to `FORGES` does not compile until it has one.
 */
const FILE_LINKS: Record<Forge, (change: Change, path: string, line: number, end: number | undefined) => string | undefined> = {
  // https://docs.github.com/en/repositories/working-with-files/using-files/getting-permanent-links-to-files (2026-11)
  github: ({ repository, headSha }, path, line, end) =>
    REPOSITORY.test(repository)
      ? `https://github.com/${repository}/blob/${headSha}/${path}${line > 0 ? `#L${line}${end !== undefined ? `-L${end}` : ''}` : ''}`
      : undefined,
  // https://docs.gitlab.com/user/project/repository/files/#link-to-specific-lines (read 2026-11): `#L10-12`
  gitlab: (change, path, line, end) => {
    const origin = GITLAB_PROJECT.test(change.repository) ? gitlabOrigin(change) : undefined;
    return origin
      ? `${origin}/${change.repository}/-/blob/${change.headSha}/${path}${line > 0 ? `#L${line}${end !== undefined ? `-${end}` : ''}` : ''}`
      : undefined;
  },
};

/** Model text on one summary line: line breaks as spaces, inert (see {@link commentText}), capped at `max`. */
const oneLine = (s: string, max: number) => commentText(s.replace(/\s*(?:\r\n|\r|\n)\s*/g, ' '), max);

/**
 * One finding as a list item of the summary:
 * `- 🔴 **critical** · <category> — <message> ([`path:line`](link))`; the location is a code span
 * (inert), linked only when {@link findingUrl} gives a link. The fix is in the inline comment.
 */
function findingItem(f: ReportFinding, change: Change): string {
  const lines = f.line > 0 ? `:${f.line}${f.endLine !== undefined && f.endLine > f.line ? `-${f.endLine}` : ''}` : '';
  const location = code(`${cap(f.file, FIELD_CAPS.file)}${lines}`);
  const url = findingUrl(change, f);
  return `- ${ICON[f.severity]} **${f.severity}** · ${oneLine(f.category, FIELD_CAPS.category)} — ${oneLine(f.message, SUMMARY_MESSAGE_CAP)} (${url ? `[${location}](${url})` : location})`;
}

const UNCHANGED: ExclusionReason = 'unchanged since the last review';

/** The "Not reviewed" section: one line per agent cut short and for the plan's exclusions; the paths for the collapsed list. */
function notReviewedSection(
  summary: RunSummary,
  planExcluded: ReadonlyArray<{ path: string; reason: string }>,
  notReviewed: readonly NotReviewed[],
): { lines: string[]; files: string[] } {
  const cut = notReviewed.filter((n) => n.paths.length > 0);
  // Files the last review saw as they are were reviewed then (the incremental line says so).
  const excluded = planExcluded.filter((e) => e.reason !== UNCHANGED);
  if (excluded.length === 0 && cut.length === 0) return { lines: [], files: [] };
  const lines = ['', '### Not reviewed', ''];
  for (const n of cut) {
    lines.push(
      `- **${escapeText(n.agent)}**: ${n.paths.length} file${n.paths.length === 1 ? '' : 's'} not reviewed — ${escapeText(n.reason)}${n.reason.startsWith('budget') ? '. Raise `max_usd_per_run` or narrow `paths`.' : ''}`,
    );
  }
  if (excluded.length > 0) {
    const counts = Object.entries(summary.excluded ?? {})
      .filter(([reason]) => reason !== UNCHANGED)
      .map(([reason, n]) => `${n} ${reason}`)
      .join(', ');
    lines.push(
      `- ${excluded.length} file${excluded.length === 1 ? '' : 's'} excluded by the review plan (${counts}); change with \`paths\` in the workflow${excluded.some((e) => e.reason === 'ignored by .agentflow.yml') ? " or `ignore` in the repository's `.agentflow.yml`" : ''}.`,
    );
  }
  const files = [
    ...cut.flatMap((n) => n.paths.map((p) => `- ${code(p)} — ${escapeText(n.agent)}: budget`)),
    ...excluded.map((e) => `- ${code(e.path)} — ${e.reason}`),
  ];
  return { lines, files };
}

/** The verifier's line and its notes (the findings it did not confirm) for the collapsed list; nothing when the workflow does not verify. */
function verifierSection(summary: RunSummary): { lines: string[]; notes: string[] } {
  const v = summary.verification;
  if (!v) return { lines: [], notes: [] };
  const verifier = summary.agents.find((a) => a.phase === VERIFY_PHASE);
  const parts = [
    `${v.confirmed} confirmed`,
    ...(v.dropped ? [`${v.dropped} dropped`] : []),
    ...(v.downgraded ? [`${v.downgraded} downgraded`] : []),
    ...(v.unverified ? [`${v.unverified} not verified`] : []),
    ...(v.earlier ? [`${v.earlier} confirmed by an earlier review, not checked again`] : []),
  ];
  const lines = [
    '',
    `**Verifier**${verifier ? ` (${cell(verifier.model)}, ${usd(verifier.costUsd)})` : ''}: ${v.checked} finding${v.checked === 1 ? '' : 's'} checked — ${parts.join(', ')}.`,
  ];
  const notes = v.notes.map(
    (n) =>
      `- ${codeCell(`${cap(n.file, FIELD_CAPS.file)}${n.line > 0 ? `:${n.line}` : ''}`)} ${cellText(n.message, FIELD_CAPS.message)} — _${cellText(n.reason || 'no reason given', FIELD_CAPS.suggestion)}_`,
  );
  return { lines, notes };
}

/** The agents table (status, provider, model, tokens, USD, gateway notes) and its Total row, collapsed. */
function agentsDetails(summary: RunSummary): string[] {
  return [
    '',
    '<details><summary>Agents, tokens and cost</summary>',
    '',
    '| Agent | Status | Provider | Model | Input tokens | Output tokens | Cost (USD) | Gateway |',
    '|---|---|---|---|---:|---:|---:|---|',
    ...summary.agents.map(
      (a) =>
        `| ${cell(a.name)} | ${a.calls === 0 && summary.repo?.disabledAgents.includes(a.name) ? '⏸ turned off by `.agentflow.yml`' : agentStatus(a)} | ${cell(a.provider)} | ${cell(a.model)} | ${int(a.inputTokens)} | ${int(a.outputTokens)} | ${usd(a.costUsd)} | ${cell(gatewayNotes(a))} |`,
    ),
    `| **Total** | | | | **${int(summary.inputTokens)}** | **${int(summary.outputTokens)}** | **${usd(summary.costUsd)}** | |`,
    '',
    '</details>',
  ];
}

/** A collapsed list of `items` within `budget` characters; the rest counted as in the full report. */
function collapsed(title: string, items: readonly string[], budget: number, limit = items.length): string[] {
  if (items.length === 0) return [];
  const out = ['', `<details><summary>${title}</summary>`, ''];
  let size = out.join('\n').length + 60;
  let shown = 0;
  for (const item of items.slice(0, limit)) {
    if (size + item.length + 1 > budget) break;
    out.push(item);
    size += item.length + 1;
    shown++;
  }
  if (shown < items.length) out.push(`- … ${items.length - shown} more in the full report`);
  out.push('', '</details>');
  return out;
}

/**
 * Renders the pull request's summary comment, short enough for GitHub's comment column: the
 * outcome and why, the counts by severity with tokens, calls and USD, gates and documents, the
 * top {@link TOP_FINDINGS} findings as list items linked to their lines at the head commit (see
 * {@link findingUrl}), what was not reviewed, the verifier's line, and the agents / cost / gateway
 * table collapsed in a `<details>`. The inline review carries every finding on its line with its
 * fix. Everything a model or a pull request wrote (findings, error texts, reasons, names, paths)
 * goes through {@link cellText}, {@link commentText} or a code span that cannot be ended from
 * inside, capped per field ({@link FIELD_CAPS}); the body stays under {@link MAX_COMMENT_CHARS}
 * (findings first, then the collapsed file lists, which say how many they left out).
 */
export function renderComment(input: {
  workflowName: string;
  workflow: string;
  change: Change;
  runId: string;
  findings: readonly ReportFinding[];
  summary: RunSummary;
  servedBy?: string;
  /** Documents agents wrote (artifact keys). */
  documents?: ReadonlyArray<{ agent: string; ref: string | undefined }>;
  /** Files the review plan excluded, with the reason. */
  excluded?: ReadonlyArray<{ path: string; reason: string }>;
  /** Files agents did not reach (budget), per agent. */
  notReviewed?: readonly NotReviewed[];
}): string {
  const { summary, findings } = input;
  const sev = SEVERITIES.filter((s) => (summary.bySeverity[s] ?? 0) > 0)
    .map((s) => `${ICON[s]} ${summary.bySeverity[s]} ${s}`)
    .join(' · ');
  const head: string[] = [commentMarker(input.workflow), `## AgentFlow · ${escapeText(input.workflowName)}`, ''];
  // The outcome and why, before anything else.
  head.push(`**${OUTCOME_ICON[summary.status]} ${summary.status}**${summary.reason ? ` — ${escapeText(summary.reason)}` : ''}`, '');
  const calls = summary.agents.reduce((s, a) => s + a.calls, 0);
  head.push(
    `**${findings.length} finding${findings.length === 1 ? '' : 's'}**${sev ? ` (${sev})` : ''} from ${summary.agents.length} agent${summary.agents.length === 1 ? '' : 's'}` +
      ` · ${int(summary.inputTokens + summary.outputTokens)} tokens · ${calls} model call${calls === 1 ? '' : 's'} · ${usd(summary.costUsd)}`,
  );
  const repo = summary.repo;
  if (repo && repo.errors.length > 0) {
    head.push(
      '',
      '> [!WARNING]',
      `> The repository's \`.agentflow.yml\` (at the base commit) has ${repo.errors.length} error${repo.errors.length === 1 ? '' : 's'}; the workflow's settings were used:`,
      ...repo.errors.slice(0, 20).map((e) => `> - ${code(cap(e, FIELD_CAPS.message))}`),
    );
  }
  if (repo && (repo.disabledAgents.length > 0 || repo.guidance.length > 0)) {
    const parts = [
      ...(repo.disabledAgents.length > 0
        ? [`turned off ${repo.disabledAgents.map((a) => code(cap(a, FIELD_CAPS.category))).join(', ')}`]
        : []),
      ...(repo.guidance.length > 0 ? [`guidance from ${repo.guidance.map((g) => code(g)).join(', ')}`] : []),
    ];
    head.push('', `Repository settings: ${parts.join('; ')}.`);
  }
  const inc = summary.incremental;
  if (inc) {
    const parts = [
      `${inc.filesUnchanged} unchanged file${inc.filesUnchanged === 1 ? '' : 's'} not reviewed again`,
      `${inc.new - inc.repeated} new finding${inc.new - inc.repeated === 1 ? '' : 's'}`,
      ...(inc.repeated + inc.carried > 0 ? [`${inc.repeated + inc.carried} still open from earlier reviews`] : []),
      ...(inc.resolved > 0 ? [`${inc.resolved} resolved`] : []),
      ...(inc.dismissed > 0 ? [`${inc.dismissed} dismissed`] : []),
      ...((inc.retired ?? 0) > 0 ? [`${inc.retired} no longer reviewed (file ignored or agent turned off)`] : []),
    ];
    head.push(
      '',
      inc.full
        ? `Full review (${inc.fullBecause === 'configuration' ? 'the agents, models, paths or `.agentflow.yml` changed' : 'requested'}) since the review of ${code(inc.since.slice(0, 7))}: ${parts.slice(1).join(' · ') || 'no new findings'}.`
        : `Incremental review since ${code(inc.since.slice(0, 7))}: ${parts.join(' · ')}. Comment \`/agentflow review --full\` to review every file again.`,
    );
  }
  if (input.servedBy) {
    head.push(
      '',
      `> [!NOTE]`,
      `> Answers came from the **${input.servedBy}** (deterministic, rule-based stand-in for Bedrock and OpenAI on 127.0.0.1), not from a real model.`,
    );
  }
  const gates = Object.entries(summary.gates ?? {});
  if (gates.length > 0) {
    head.push('', '### Gates', '', ...gates.map(([phase, text]) => `- **${escapeText(phase)}**: ${escapeText(text)}`));
  }
  head.push(...testsSection(summary, forgeOf(input.change)));
  const documents = (input.documents ?? []).filter((d) => d.ref);
  if (documents.length > 0) {
    head.push(
      '',
      '### Documents',
      '',
      ...documents.map((d) => `- **${escapeText(d.agent)}** wrote ${code(cap(d.ref ?? '', FIELD_CAPS.file))}`),
    );
  }
  const notReviewed = notReviewedSection(summary, input.excluded ?? [], input.notReviewed ?? []);
  const verifier = verifierSection(summary);
  const agents = agentsDetails(summary);
  const footer = [
    '',
    `<sub>Run \`${input.runId}\` · ${input.change.repository}${CHANGE_NAMES[forgeOf(input.change)].ref(input.change.number)} at ${input.change.headSha.slice(0, 7)}</sub>`,
    '',
  ];
  const size = (lines: readonly string[]) => lines.reduce((n, l) => n + l.length + 1, 0);
  // Room for the collapsed lists' headers and "more" lines.
  let room = MAX_COMMENT_CHARS - size(head) - size(notReviewed.lines) - size(verifier.lines) - size(agents) - size(footer) - 500;
  const top: string[] = [];
  if (findings.length > 0) {
    top.push('', '### Top findings', '');
    room -= 300;
    let shown = 0;
    for (const f of findings.slice(0, TOP_FINDINGS)) {
      const item = findingItem(f, input.change);
      if (item.length + 1 > room) break;
      top.push(item);
      room -= item.length + 1;
      shown++;
    }
    if (shown < findings.length) {
      const rest = findings.length - shown;
      top.push(
        '',
        `_${rest} more finding${rest === 1 ? '' : 's'} below, on the changed lines in the inline review and in the full report (run ${escapeText(input.runId)})._`,
      );
      // Every finding is on the pull request: those after the top ones in a collapsed list.
      const more = collapsed(
        `${rest} more finding${rest === 1 ? '' : 's'}`,
        findings.slice(shown).map((f) => findingItem(f, input.change)),
        room,
      );
      top.push(...more);
      room -= size(more);
    }
  }
  const files = collapsed('Files', notReviewed.files, room, MAX_LISTED_FILES);
  room -= size(files);
  const notes = verifier.notes.length > 0 ? collapsed('Not confirmed', verifier.notes, room) : [];
  return [...head, ...top, ...notReviewed.lines, ...files, ...verifier.lines, ...notes, ...agents, ...footer].join('\n');
}

/**
 * The workflow's comment when its execution ended without a report (timed out, aborted, failed
 * outside its error handling): the outcome, the reason (inert text) and the execution name.
 */
export function endedComment(workflow: string, runId: string, reason: string): string {
  return [
    commentMarker(workflow),
    `## AgentFlow · ${escapeText(workflow)}`,
    '',
    `**${OUTCOME_ICON.FAILED} FAILED** — ${escapeText(reason)}`,
    '',
    `No review was completed for this change. Execution ${code(cap(runId, FIELD_CAPS.file))}.`,
    '',
  ].join('\n');
}
