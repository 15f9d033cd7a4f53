import { z } from 'zod';
import { fromMicro } from '../core/budget.js';
import { type CheckOutcome, checkAnnotations, checkConclusion, checkName } from '../core/checks.js';
import {
  FindingSchema,
  forgeOf,
  type PublishInput,
  PublishInputSchema,
  type PublishOutput,
  parseInput,
  type RunRecord,
  SEVERITIES,
  type Severity,
} from '../core/contracts.js';
import { InvalidInputError } from '../core/errors.js';
import { type FeedbackTally, feedbackDelta, ReviewStateSchema, reviewStateKey } from '../core/incremental.js';
import type { ArtifactStore, ChannelNotifier, ForgeTable, RunStore, ThreadNotifier } from '../core/ports.js';
import { commentMarker, commentText, errorText, type ReportFinding } from '../core/report.js';
import { InlineReviewSchema } from '../core/review.js';
import { buildSarif, securityFindings } from '../core/sarif.js';
import { runOutcomeText, runSummaryText } from '../core/slack.js';
import { readSpend } from '../core/spend.js';
import { errorLine, postToChannel } from './channels.js';
import { commitGeneratedFiles } from './commit-files.js';
import { publishRequest } from './request.js';

/** The findings of a run's report (`report.json`): the check run's annotations, the code scanning SARIF (and `agentflow run --sarif`). */
export async function reportFindings(artifacts: ArtifactStore, reportRef: string): Promise<ReportFinding[]> {
  const stored = (await artifacts.getJson(reportRef).catch(() => ({}))) as { findings?: unknown };
  // Item by item and lenient about extra fields: one odd finding costs its annotation, not all of them.
  const item = FindingSchema.extend({ agents: z.array(z.string()).default([]) }).strip();
  return (Array.isArray(stored.findings) ? stored.findings : []).flatMap((f) => {
    const r = item.safeParse(f);
    return r.success ? [r.data] : [];
  });
}

/**
 * The `fail_on` a check applies: the repository's (`.agentflow.yml`) only when it is stricter than
 * the workflow's — it may fail on more, never on less (`none` fails on nothing).
 */
export function appliedFailOn(workflow: Severity | 'none', repository: Severity | 'none' | undefined): Severity | 'none' {
  if (repository === undefined || repository === 'none') return workflow;
  if (workflow === 'none') return repository;
  return SEVERITIES.indexOf(repository) > SEVERITIES.indexOf(workflow) ? repository : workflow;
}

export interface PublishDeps {
  artifacts: ArtifactStore;
  /** The publisher of each forge; the change's forge (`forgeOf`) gets everything the run writes. */
  forges: ForgeTable;
  runs: RunStore;
  /** Replies in a manual run's Slack thread (`change.thread`). @default none */
  threads?: ThreadNotifier;
  /** Posts the summary (`outputs.slack`) and the failure (`notify`) in a channel. @default none: such a post is recorded as `slackError` */
  channels?: ChannelNotifier;
  /** The channel `slack: true` (`default`) posts in (`slackChannel` of the environment config). @default none: recorded as `slackError` */
  defaultChannel?: string;
  now?: () => Date;
}

/**
 * Publish: posts the comment (one per pull request and workflow, found again by its hidden
 * marker) when `outputs.review` is on and the change is a pull request (number > 0), and
 * writes the run record. Also records skipped
 * and failed runs (the state machine's skip path and run-level Catch call it with `kind`).
 *
 * @returns the comment's URL (or local path), or null when nothing was posted
 * @throws InvalidInputError on a bad input; errors of the comment publisher or run store
 */
export async function publish(raw: unknown, deps: PublishDeps): Promise<PublishOutput> {
  const parsed: PublishInput = parseInput(PublishInputSchema, raw, 'Publish');
  // `output.create_files`: the generated tests are committed before the CI gate waits on them.
  if (parsed.kind === 'files') return { commentUrl: null, files: await commitGeneratedFiles(parsed, deps) };
  // A `request` run (issue 15): its answer, or its end, goes to the request's thread; no forge is involved.
  if (parsed.kind === 'answer' || ((parsed.kind === 'failed' || parsed.kind === 'stopped') && !parsed.change)) {
    return publishRequest(parsed, deps);
  }
  if (!parsed.change) throw new InvalidInputError('Publish: give change (a review) or request (a request run)');
  const input = { ...parsed, change: parsed.change };
  const forge = deps.forges[forgeOf(input.change)];
  // The run starts: its check run shows `in_progress` on the head commit. A check the forge refuses
  // (a token without checks: write) does not stop the review.
  if (input.kind === 'started') {
    if (input.change.number > 0) await forge.startCheck(input.change, checkName(input.workflow), input.runId).catch(() => undefined);
    return { commentUrl: null };
  }
  const now = (deps.now ?? (() => new Date()))().toISOString();
  const previous = await deps.runs.get(input.runId);
  const base: RunRecord = {
    runId: input.runId,
    workflow: input.workflow,
    status: 'RUNNING',
    repository: input.change.repository,
    number: input.change.number,
    headSha: input.change.headSha,
    startedAt: previous?.startedAt ?? now,
    finishedAt: now,
    costUsd: 0,
    findings: 0,
    agents: [],
  };
  // A manual run started from Slack is told its outcome in its thread; a lost reply loses nothing else.
  const tell = async (outcome: Parameters<typeof runOutcomeText>[0]) => {
    const thread = input.change.thread;
    if (thread && deps.threads) await deps.threads.reply(thread, runOutcomeText(outcome)).catch(() => undefined);
  };
  // The check run concludes honestly (see `checkConclusion`); a refusal is recorded, never fatal.
  const conclude = async (
    outcome: CheckOutcome,
    severities: ReadonlyArray<{ severity: Severity }>,
    findings: readonly ReportFinding[],
    title: string,
    text: string,
  ) => {
    if (!input.check || input.change.number <= 0) return { checkUrl: null };
    // The repository's `.agentflow.yml` may set its own `fail_on` (read at the base commit).
    const failOn = appliedFailOn(input.check.failOn, input.kind === 'report' ? input.report.summary.repo?.failOn : undefined);
    const conclusion = checkConclusion(outcome, severities, failOn);
    const result = { conclusion, title, summary: text, annotations: checkAnnotations(findings) };
    // A skip decided at the webhook never hides what an earlier run of this commit concluded.
    const create = input.kind === 'skipped' ? 'if-none' : 'always';
    try {
      const checkUrl = await forge.completeCheck(input.change, checkName(input.workflow), input.runId, result, create);
      return { check: conclusion, checkUrl };
    } catch (e) {
      return { checkError: errorLine(e), checkUrl: null };
    }
  };
  const message = {
    workflow: input.workflow,
    repository: input.change.repository,
    number: input.change.number,
    headSha: input.change.headSha,
    title: input.change.title,
    url: input.change.url,
  };
  switch (input.kind) {
    case 'skipped': {
      const { checkUrl: _, ...check } = await conclude('SKIPPED', [], [], 'Skipped', commentText(input.reason));
      await deps.runs.put({ ...base, status: 'SKIPPED', reason: input.reason, ...check });
      await tell({ status: 'SKIPPED', reason: input.reason });
      return { commentUrl: null };
    }
    case 'stopped': {
      // What the phases before the gate spent, from their spend records (= the budget ledger).
      const agents = Object.values(input.results).flat();
      const spent = await Promise.all(agents.map((a) => readSpend(deps.artifacts, input.runId, a.phase, a.name)));
      const costUsd = fromMicro(spent.flatMap((r) => r.invocations).reduce((s, i) => s + i.costMicro, 0));
      const { checkUrl: _, ...check } = await conclude('STOPPED', [], [], 'Stopped', commentText(input.reason));
      await deps.runs.put({ ...base, status: 'STOPPED', reason: input.reason, costUsd, ...check });
      await tell({ status: 'STOPPED', reason: input.reason });
      return { commentUrl: null };
    }
    case 'failed': {
      const error = errorText(input.error) ?? input.error.Error;
      const { checkUrl, ...check } = await conclude('FAILED', [], [], 'The review failed', commentText(error));
      // The failure is posted where the workflow asks (`notify:`, else its `output.slack` channel).
      const notified = input.notify
        ? await postToChannel(deps, input.notify, runSummaryText({ ...message, status: 'FAILED', reason: error, checkUrl }))
        : {};
      await deps.runs.put({ ...base, status: 'FAILED', error, ...check, ...notified });
      await tell({ status: 'FAILED', reason: error });
      return { commentUrl: null };
    }
    case 'report': {
      const { summary } = input.report;
      let commentUrl: string | null = null;
      // A change without a pull request (a manual run on two refs, number 0) has no comment thread:
      // its results are the run record and the report.
      let inline = 0;
      let reviewError: string | undefined;
      let onChange: string[] = [];
      let resolvedReplies = 0;
      if (input.outputs.review && input.change.number > 0) {
        const body = await deps.artifacts.getText(input.report.commentRef);
        commentUrl = await forge.upsertComment(input.change, commentMarker(input.workflow), body);
        // The findings on the diff's lines as one review (the summary comment lists them all). A
        // review the forge refuses does not undo the run: it is recorded, the summary stands.
        if (input.report.reviewRef) {
          const review = InlineReviewSchema.parse(await deps.artifacts.getJson(input.report.reviewRef));
          try {
            const posted = await forge.postReview(input.change, commentMarker(input.workflow), review);
            inline = posted.comments;
            onChange = posted.keys;
            resolvedReplies = posted.resolved;
          } catch (e) {
            reviewError = `${(e as Error).name}: ${(e as Error).message}`.slice(0, 300);
          }
        }
      }
      // The review state the next run builds on (incremental re-review), kept once the review is
      // posted: its findings whose comment is on the pull request are never posted again.
      // A review the forge refused is not kept: its resolved findings would never be answered; the
      // next run reconciles against the last kept state again. Of two runs of one pull request, the
      // state of the one started later wins (an older run finishing last does not roll it back).
      let stateError: string | undefined;
      let feedback: FeedbackTally[] = [];
      if (input.report.stateRef && input.change.number > 0 && reviewError) {
        stateError = 'not kept: the inline review was not posted, so the next run reconciles with the last kept review';
      } else if (input.report.stateRef && input.change.number > 0) {
        try {
          const key = reviewStateKey(input.change, input.workflow);
          const next = ReviewStateSchema.parse(await deps.artifacts.getJson(input.report.stateRef));
          const kept = ReviewStateSchema.safeParse(await deps.artifacts.getJson(key).catch(() => undefined));
          if (kept.success && kept.data.startedAt > base.startedAt) {
            stateError = `not kept: run ${kept.data.runId}, started later, kept its review state`;
          } else {
            const on = new Set(onChange);
            next.findings = next.findings.map((f) => (on.has(f.fingerprint) ? { ...f, posted: true } : f));
            await deps.artifacts.putJson(key, { ...next, startedAt: base.startedAt });
            // People's feedback is counted once: what this state counts and the one it replaces did not.
            feedback = feedbackDelta(kept.success ? kept.data.feedback : undefined, next.feedback);
          }
        } catch (e) {
          stateError = `${(e as Error).name}: ${(e as Error).message}`.slice(0, 300);
        }
      }
      const findings = input.check || input.outputs.codeScanning ? await reportFindings(deps.artifacts, input.report.reportRef) : [];
      const counts = SEVERITIES.filter((s) => (summary.bySeverity[s] ?? 0) > 0)
        .map((s) => `${summary.bySeverity[s]} ${s}`)
        .join(', ');
      // The conclusion follows the summary's counts (the findings the comment shows); the report's
      // findings are only the annotations.
      const { checkUrl, ...check } = await conclude(
        summary.status,
        SEVERITIES.flatMap((severity) => Array.from({ length: summary.bySeverity[severity] ?? 0 }, () => ({ severity }))),
        findings,
        `${summary.status}: ${summary.findings} finding${summary.findings === 1 ? '' : 's'}${counts ? ` (${counts})` : ''}`,
        [
          ...(summary.reason ? [commentText(summary.reason)] : []),
          input.check && summary.repo?.failOn !== undefined && appliedFailOn(input.check.failOn, summary.repo.failOn) !== input.check.failOn
            ? `Findings at or above **${appliedFailOn(input.check.failOn, summary.repo.failOn)}** fail this check (\`fail_on\` of the repository's \`.agentflow.yml\`, stricter than the workflow's); the summary comment and the inline review have them all.`
            : `Findings at or above **${input.check?.failOn ?? 'critical'}** fail this check (\`output.fail_on\`); the summary comment and the inline review have them all.`,
        ].join('\n\n'),
      );
      // The security agents' findings as a code scanning analysis of the head commit; a refused
      // upload (no security_events: write, code scanning off) is recorded, the review stands.
      let scanning: { codeScanning?: string; codeScanningError?: string } = {};
      if (input.outputs.codeScanning) {
        const sarif = buildSarif(securityFindings(findings, input.outputs.codeScanning.agents), input.workflow);
        try {
          const where = await forge.uploadCodeScanning(input.change, input.workflow, sarif);
          scanning = where ? { codeScanning: where } : { codeScanningError: 'the change has no Git ref to upload the analysis for' };
        } catch (e) {
          scanning = { codeScanningError: errorLine(e) };
        }
      }
      const slack = input.outputs.slack
        ? await postToChannel(
            deps,
            input.outputs.slack,
            runSummaryText({
              ...message,
              status: summary.status,
              findings: summary.findings,
              bySeverity: summary.bySeverity,
              costUsd: summary.costUsd,
              ...(summary.reason ? { reason: summary.reason } : {}),
              checkUrl,
            }),
          )
        : {};
      // The outcome and the cost are always recorded (they are what `agentflow runs` and the
      // status commands show); `database_log` adds the per-agent details.
      await deps.runs.put({
        ...base,
        status: summary.status,
        ...(summary.reason ? { reason: summary.reason } : {}),
        costUsd: summary.costUsd,
        findings: summary.findings,
        ...(input.outputs.databaseLog ? { agents: summary.agents } : {}),
        commentUrl,
        reportRef: input.report.reportRef,
        relocated: summary.relocated,
        inlineComments: inline,
        ...(reviewError ? { reviewError } : {}),
        ...(stateError ? { stateError } : {}),
        ...(resolvedReplies > 0 ? { resolvedReplies } : {}),
        ...(summary.incremental ? { incremental: summary.incremental } : {}),
        ...(summary.files ? { files: summary.files } : {}),
        ...(feedback.length > 0 ? { feedback } : {}),
        ...check,
        ...scanning,
        ...slack,
        ...(summary.verification
          ? {
              verification: {
                checked: summary.verification.checked,
                confirmed: summary.verification.confirmed,
                dropped: summary.verification.dropped,
                downgraded: summary.verification.downgraded,
                unverified: summary.verification.unverified,
              },
            }
          : {}),
      });
      await tell({
        status: summary.status,
        findings: summary.findings,
        costUsd: summary.costUsd,
        ...(summary.reason ? { reason: summary.reason } : {}),
      });
      return { commentUrl, ...(feedback.length > 0 ? { feedback } : {}) };
    }
    default: {
      const never: never = input;
      throw new Error(`unhandled publish kind ${JSON.stringify(never)}`);
    }
  }
}
