import { z } from 'zod';
import type { ApprovalNotifier, ApprovalStore } from '../core/approvals.js';
import { checkConclusion, checkName } from '../core/checks.js';
import { type Change, ExecutionInputSchema, type Forge, forgeOf, type Request, type RunRecord } from '../core/contracts.js';
import type { ForgePublisher, RunStore, ThreadNotifier } from '../core/ports.js';
import { commentMarker, commentText, endedComment } from '../core/report.js';
import { requestOutcomeText, runOutcomeText } from '../core/slack.js';

/** How an execution ended outside its own Catch paths (what EventBridge reports and the machine did not record). */
export const ENDED_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;

/**
 * The EventBridge event Step Functions sends when an execution's status changes (the fields this
 * use case reads). Source: https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html (2025-11).
 */
export const ExecutionStatusEventSchema = z.object({
  source: z.literal('aws.states'),
  'detail-type': z.literal('Step Functions Execution Status Change'),
  detail: z.object({
    executionArn: z.string(),
    stateMachineArn: z.string(),
    name: z.string(),
    status: z.enum(ENDED_STATUSES),
    /** ms since the epoch */
    startDate: z.number(),
    stopDate: z.number().nullish(),
    /** The execution input as JSON text (absent when over EventBridge's size limit). */
    input: z.string().nullish(),
    error: z.string().nullish(),
    cause: z.string().nullish(),
  }),
});
export type ExecutionStatusEvent = z.infer<typeof ExecutionStatusEventSchema>;

/** An execution that ended without recording its end: from EventBridge in the cloud, from the engine locally. */
export interface EndedExecution {
  /** The execution name, which is the run id. */
  runId: string;
  workflow: string;
  change?: Change;
  /** A `request` run's request: its Slack thread is told. */
  request?: Request;
  status: (typeof ENDED_STATUSES)[number];
  /** ms since the epoch */
  startedAt: number;
  stoppedAt: number;
  error?: string;
  cause?: string;
}

export interface ExecutionEndedDeps {
  runs: RunStore;
  approvals: ApprovalStore;
  notifier: ApprovalNotifier;
  /** Each forge's publisher (the change's forge tells the pull request). @default none: nothing is posted */
  forges?: { [F in Forge]: Pick<ForgePublisher, 'upsertComment' | 'completeCheck'> };
  /** Replies in a manual run's Slack thread (`change.thread`). */
  threads?: ThreadNotifier;
}

/** What {@link executionEnded} did. */
export interface ExecutionEndedResult {
  /** Whether the run record was written here (false: the state machine had recorded the end itself). */
  recorded: boolean;
  /** Approvals and CI gates of the run that were pending and are now EXPIRED. */
  expired: number;
  /** Where the pull request was told, if it was. */
  commentUrl: string | null;
}

/** The run's end in words: `States.Timeout: …`, `aborted: …`, or the error and cause. */
export function endedReason(e: Pick<EndedExecution, 'status' | 'startedAt' | 'stoppedAt' | 'error' | 'cause'>): string {
  const seconds = Math.round((e.stoppedAt - e.startedAt) / 1000);
  switch (e.status) {
    case 'TIMED_OUT':
      return `States.Timeout: the execution timed out after ${seconds} s (the state machine's TimeoutSeconds); what it had not finished did not run`;
    case 'ABORTED':
      return `aborted: the execution was stopped after ${seconds} s (StopExecution); what it had not finished did not run`;
    case 'FAILED':
      return `${e.error || 'States.Runtime'}: ${(e.cause || 'the execution failed outside its error handling').slice(0, 400)}`;
  }
}

/**
 * Records the end of an execution that stopped outside its own Catch paths — a timeout, an
 * abort, a failure the definition does not catch — so nothing stays RUNNING or waiting:
 * the RUNNING (or missing) run record becomes FAILED with the reason, every approval and CI
 * gate of the run still pending becomes EXPIRED (its Slack message says so), and a pull request
 * (number > 0) is told in the workflow's comment. A run the state machine already recorded
 * (FAILED through `Record failure`, STOPPED, …) keeps its record; its pending approvals are still
 * expired. Idempotent: EventBridge may deliver an event twice.
 */
export async function executionEnded(e: EndedExecution, deps: ExecutionEndedDeps): Promise<ExecutionEndedResult> {
  const reason = endedReason(e);
  const previous = await deps.runs.get(e.runId);
  const recorded = !previous || previous.status === 'RUNNING';
  let commentUrl: string | null = null;
  if (recorded) {
    const record: RunRecord = {
      runId: e.runId,
      workflow: e.workflow,
      status: 'FAILED',
      repository: e.change?.repository ?? previous?.repository ?? '',
      number: e.change?.number ?? previous?.number ?? 0,
      headSha: e.change?.headSha ?? previous?.headSha ?? '',
      startedAt: previous?.startedAt ?? new Date(e.startedAt).toISOString(),
      finishedAt: new Date(e.stoppedAt).toISOString(),
      costUsd: previous?.costUsd ?? 0,
      findings: previous?.findings ?? 0,
      agents: previous?.agents ?? [],
      error: reason,
      ...(previous?.request ? { request: previous.request } : {}),
    };
    await deps.runs.put(record);
    if (deps.threads && e.change?.thread)
      await deps.threads.reply(e.change.thread, runOutcomeText({ status: 'FAILED', reason })).catch(() => undefined);
    // A request's thread: its "Working on…" message becomes the outcome, the reason a reply.
    const asked = e.request?.thread;
    if (deps.threads && asked && e.request) {
      const outcome = requestOutcomeText({
        workflow: e.workflow,
        status: 'FAILED',
        text: previous?.request?.text ?? '',
        requester: e.request.requester,
        reason,
      });
      await deps.threads.update?.(asked, outcome).catch(() => undefined);
      await deps.threads.reply(asked, runOutcomeText({ status: 'FAILED', reason })).catch(() => undefined);
    }
    const forge = e.change ? deps.forges?.[forgeOf(e.change)] : undefined;
    if (forge && e.change && e.change.number > 0) {
      // The check run this run started must not stay in progress: it ends as the execution did
      // (first, so a failed comment cannot leave it open; none is created when none was started).
      const outcome = e.status === 'TIMED_OUT' ? 'TIMED_OUT' : e.status === 'ABORTED' ? 'ABORTED' : 'FAILED';
      await forge
        .completeCheck(
          e.change,
          checkName(e.workflow),
          e.runId,
          {
            conclusion: checkConclusion(outcome, [], 'none'),
            title: `The execution ${e.status === 'TIMED_OUT' ? 'timed out' : e.status === 'ABORTED' ? 'was stopped' : 'failed'}`,
            summary: commentText(reason),
            annotations: [],
          },
          'never',
        )
        .catch(() => undefined);
      commentUrl = await forge.upsertComment(e.change, commentMarker(e.workflow), endedComment(e.workflow, e.runId, reason));
    }
  }
  let expired = 0;
  for (const a of (await deps.approvals.listPending()).filter((r) => r.execution === e.runId)) {
    await deps.approvals.expire(a.id);
    await deps.notifier.decided({ ...a, status: 'EXPIRED' }).catch(() => undefined);
    expired++;
  }
  return { recorded, expired, commentUrl };
}

/** The ended execution an EventBridge status-change event describes (run id and change from its input). */
export function fromStatusEvent(raw: unknown): EndedExecution {
  const { detail } = ExecutionStatusEventSchema.parse(raw);
  let input: z.infer<typeof ExecutionInputSchema> | undefined;
  try {
    const parsed = ExecutionInputSchema.safeParse(JSON.parse(detail.input ?? 'null'));
    input = parsed.success ? parsed.data : undefined;
  } catch {
    input = undefined;
  }
  return {
    runId: input?.runId ?? detail.name,
    workflow: input?.workflow ?? detail.stateMachineArn.split(':').at(-1) ?? '',
    ...(input?.change ? { change: input.change } : {}),
    ...(input?.request ? { request: input.request } : {}),
    status: detail.status,
    startedAt: detail.startDate,
    stoppedAt: detail.stopDate ?? Date.now(),
    ...(detail.error ? { error: detail.error } : {}),
    ...(detail.cause ? { cause: detail.cause } : {}),
  };
}
