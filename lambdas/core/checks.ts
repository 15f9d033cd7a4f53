import type { Severity } from './contracts.js';
import { SEVERITIES } from './contracts.js';
import type { ReportFinding } from './report.js';

/**
 * The check run of a review (GitHub: `POST /repos/{owner}/{repo}/check-runs`), one per workflow and
 * head commit: it starts `in_progress` when the run starts and concludes honestly when it ends.
 * Pure: the conclusion, the annotations and the texts. Source for the fields and limits:
 * https://docs.github.com/en/rest/checks/runs (checked 2026-11-29).
 */

/** The check run's name for a workflow: `AgentFlow · <workflow name>`. */
export const checkName = (workflowName: string) => `AgentFlow · ${workflowName}`;

/** Conclusions a check run can end with (GitHub's, the ones AgentFlow uses). */
export const CHECK_CONCLUSIONS = ['success', 'failure', 'neutral', 'cancelled', 'timed_out'] as const;
export type CheckConclusion = (typeof CHECK_CONCLUSIONS)[number];

/** Annotations GitHub takes per request; more go in further updates of the same check run. */
export const ANNOTATIONS_PER_REQUEST = 50;
/** Annotations AgentFlow sends at most per check run (the summary comment and report hold every finding). */
export const MAX_ANNOTATIONS = 500;

/** How a run ended, as the check run sees it. */
export type CheckOutcome = 'SUCCEEDED' | 'PARTIAL' | 'FAILED' | 'SKIPPED' | 'STOPPED' | 'TIMED_OUT' | 'ABORTED';

/** The severity from which findings fail the check (`output.fail_on`), or `none`. */
export type FailOn = Severity | 'none';

/**
 * The check's conclusion: `failure` when findings at or above `failOn` remain (whatever else
 * happened: they are real) or when the review did not happen (FAILED); `timed_out` and `cancelled`
 * for an execution that timed out or was stopped from outside; `neutral` for a PARTIAL review, a
 * run skipped with a reason, or one a person stopped at a gate; `success` only for a review that
 * happened completely with nothing at or above `failOn`.
 */
export function checkConclusion(outcome: CheckOutcome, findings: ReadonlyArray<{ severity: Severity }>, failOn: FailOn): CheckConclusion {
  const blocking = failOn !== 'none' && findings.some((f) => SEVERITIES.indexOf(f.severity) <= SEVERITIES.indexOf(failOn));
  if (blocking) return 'failure';
  const byOutcome: Record<CheckOutcome, CheckConclusion> = {
    SUCCEEDED: 'success',
    PARTIAL: 'neutral',
    SKIPPED: 'neutral',
    STOPPED: 'neutral',
    FAILED: 'failure',
    TIMED_OUT: 'timed_out',
    ABORTED: 'cancelled',
  };
  return byOutcome[outcome];
}

/** One check run annotation (plain text: GitHub does not render Markdown in annotations). */
export interface CheckAnnotation {
  path: string;
  start_line: number;
  end_line: number;
  annotation_level: 'failure' | 'warning' | 'notice';
  title: string;
  message: string;
}

const LEVEL: Record<Severity, CheckAnnotation['annotation_level']> = {
  critical: 'failure',
  high: 'failure',
  medium: 'warning',
  low: 'notice',
  info: 'notice',
};

/**
 * The findings on lines of the change as annotations (at most {@link MAX_ANNOTATIONS}, most severe
 * first): file-level notes have no line and stay in the summary. Messages are capped at 4,000
 * characters (GitHub allows 64 KB).
 */
export function checkAnnotations(findings: readonly ReportFinding[]): CheckAnnotation[] {
  return findings
    .filter((f) => f.line > 0)
    .sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity))
    .slice(0, MAX_ANNOTATIONS)
    .map((f) => ({
      path: f.file,
      start_line: f.line,
      end_line: f.endLine !== undefined && f.endLine > f.line ? f.endLine : f.line,
      annotation_level: LEVEL[f.severity],
      title: `${f.severity} · ${f.category}`.slice(0, 255),
      message: (f.suggestion ? `${f.message}\n\nFix: ${f.suggestion}` : f.message).slice(0, 4000),
    }));
}

/** A concluded check run: conclusion, its title and summary (Markdown, short) and annotations. */
export interface CheckResult {
  conclusion: CheckConclusion;
  title: string;
  summary: string;
  annotations: CheckAnnotation[];
}
