import { fromMicro } from '../core/budget.js';
import { type PublishInput, type PublishOutput, type Request, type RunRecord, runSubject } from '../core/contracts.js';
import { redactSecrets } from '../core/redact.js';
import { errorText } from '../core/report.js';
import {
  MAX_SLACK_ANSWER_CHARS,
  type RequestRunMessage,
  requestOutcomeText,
  requestSummaryText,
  slackAnswer,
  slackInert,
} from '../core/slack.js';
import { readSpend } from '../core/spend.js';
import { errorLine, postToChannel } from './channels.js';
import type { PublishDeps } from './publish.js';

/** The Publish inputs of a `request` run: its answer, or its end without one. */
export type RequestPublishInput = Extract<PublishInput, { kind: 'answer' | 'failed' | 'stopped' }>;

/**
 * Tells the request's Slack thread how the run ended: its first message ("Working on…") becomes
 * the outcome (`update`; without it, or when Slack refuses the update, the outcome is a reply),
 * then `replies` follow in order.
 * @returns `slackError` for the run record when a post failed (never throws)
 */
async function tellThread(
  deps: PublishDeps,
  request: Request | undefined,
  outcome: string,
  replies: readonly string[],
): Promise<{ slackError?: string }> {
  const thread = request?.thread;
  if (!thread || !deps.threads) return {};
  const threads = deps.threads;
  // A first message that cannot be updated (deleted, too old) still gets the outcome, as a reply.
  const updated = threads.update
    ? await threads.update(thread, outcome).then(
        () => true,
        () => false,
      )
    : false;
  try {
    if (!updated) await threads.reply(thread, outcome);
    for (const text of replies) await threads.reply(thread, text);
    return {};
  } catch (e) {
    return { slackError: `the request's Slack thread: ${errorLine(e)}` };
  }
}

/**
 * The answer as its thread reply: the model's Markdown made inert ({@link slackAnswer}: no
 * mention, `<!channel>` or link survives), secrets redacted once more, at most
 * {@link MAX_SLACK_ANSWER_CHARS}; a cut answer says how long it is and where the whole is.
 */
export async function answerReply(text: string, answerRef: string): Promise<string> {
  const clean = (await redactSecrets(text)).text;
  const { text: shown, cut } = slackAnswer(clean);
  if (!cut) return shown;
  return `${shown}\n\n_(cut at ${MAX_SLACK_ANSWER_CHARS.toLocaleString('en-US')} of ${clean.length.toLocaleString('en-US')} characters: the whole answer is the run's artifact ${slackInert(answerRef, 300)})_`;
}

/**
 * What a run's agents spent, in USD: the sum of their spend records' invocations (= what the budget
 * ledger settled), one record per agent of `results` (the Map states' outputs, by phase key).
 */
async function spentUsd(deps: PublishDeps, runId: string, results: RequestResults): Promise<number> {
  const agents = Object.values(results).flat();
  const spent = await Promise.all(agents.map((a) => readSpend(deps.artifacts, runId, a.phase, a.name)));
  return fromMicro(spent.flatMap((r) => r.invocations).reduce((s, i) => s + i.costMicro, 0));
}

/** The agents' results a `stopped` or `failed` Publish input carries. */
type RequestResults = Extract<RequestPublishInput, { kind: 'stopped' }>['results'];

/**
 * Publish of a `request` run (issue 15), with no forge involved:
 * - `answer`: writes the run record (outcome, the ledger's cost, who asked and the request's start
 *   redacted, the answer's reference, the phases, the tool calls; the agents with `databaseLog`),
 *   turns the thread's first message into the outcome and replies with the answer
 *   ({@link answerReply}), and posts the summary in `outputs.slack`;
 * - `failed` / `stopped`: records the end with its cost from the spend records of the agents that
 *   ran before it ({@link spentUsd}; a `failed` input without `results` records 0 and shows no
 *   cost) and tells the thread and, for `failed`, the `notify` channel.
 *
 * A Slack post that fails is recorded as `slackError`; the run record is written regardless.
 * @returns `{ commentUrl: null }` (nothing is posted on a forge)
 */
export async function publishRequest(input: RequestPublishInput, deps: PublishDeps): Promise<PublishOutput> {
  const now = (deps.now ?? (() => new Date()))().toISOString();
  const previous = await deps.runs.get(input.runId);
  // The request as the record and every Slack post show it: secrets redacted.
  const request = input.request ? { ...input.request, text: (await redactSecrets(input.request.text)).text } : undefined;
  const base: RunRecord = {
    runId: input.runId,
    workflow: input.workflow,
    status: 'RUNNING',
    ...runSubject({ request }),
    startedAt: previous?.startedAt ?? now,
    finishedAt: now,
    costUsd: 0,
    findings: 0,
    agents: [],
    commentUrl: null,
  };
  const message = (m: Omit<RequestRunMessage, 'workflow' | 'text' | 'requester'>): RequestRunMessage => ({
    workflow: input.workflow,
    text: request?.text ?? '',
    requester: request?.requester ?? '',
    ...m,
  });
  switch (input.kind) {
    case 'answer': {
      const { summary, reportRef } = input.report;
      const done = message({
        status: summary.status,
        costUsd: summary.costUsd,
        toolCalls: summary.toolCalls ?? 0,
        toolErrors: summary.toolErrors ?? 0,
        ...(summary.reason ? { reason: summary.reason } : {}),
      });
      let replies = ['No answer: no phase of the workflow answered the request.'];
      if (summary.answerRef) {
        try {
          replies = [await answerReply(await deps.artifacts.getText(summary.answerRef), summary.answerRef)];
        } catch (e) {
          replies = [
            `The answer could not be read (${slackInert(errorLine(e), 300)}); it is the run's artifact ${slackInert(summary.answerRef, 300)}.`,
          ];
        }
      }
      const thread = await tellThread(deps, request, requestOutcomeText(done), replies);
      const channel = input.outputs.slack ? await postToChannel(deps, input.outputs.slack, requestSummaryText(done)) : {};
      const slackError = [channel.slackError, thread.slackError].filter(Boolean).join('; ');
      await deps.runs.put({
        ...base,
        status: summary.status,
        ...(summary.reason ? { reason: summary.reason } : {}),
        costUsd: summary.costUsd,
        ...(input.outputs.databaseLog ? { agents: summary.agents } : {}),
        reportRef,
        ...(summary.answerRef ? { answerRef: summary.answerRef } : {}),
        phases: summary.phases ?? [],
        toolCalls: summary.toolCalls ?? 0,
        toolErrors: summary.toolErrors ?? 0,
        ...(slackError ? { slackError } : {}),
      });
      return { commentUrl: null };
    }
    case 'stopped': {
      // What the phases before the stop spent, from their spend records (= the budget ledger).
      const costUsd = await spentUsd(deps, input.runId, input.results);
      const done = message({ status: 'STOPPED', costUsd, reason: input.reason });
      const thread = await tellThread(deps, request, requestOutcomeText(done), [`⏹️ The run stopped: ${slackInert(input.reason, 600)}`]);
      await deps.runs.put({ ...base, status: 'STOPPED', reason: input.reason, costUsd, ...thread });
      return { commentUrl: null };
    }
    case 'failed': {
      const error = errorText(input.error) ?? input.error.Error;
      // What the phases before the failure spent (a phase whose Map state failed is not in `results`).
      const costUsd = input.results ? await spentUsd(deps, input.runId, input.results) : undefined;
      const done = message({ status: 'FAILED', reason: error, ...(costUsd !== undefined ? { costUsd } : {}) });
      const thread = await tellThread(deps, request, requestOutcomeText(done), [`❌ The run failed: ${slackInert(error, 600)}`]);
      const notified = input.notify ? await postToChannel(deps, input.notify, requestSummaryText(done)) : {};
      const slackError = [notified.slackError, thread.slackError].filter(Boolean).join('; ');
      await deps.runs.put({ ...base, status: 'FAILED', error, costUsd: costUsd ?? 0, ...(slackError ? { slackError } : {}) });
      return { commentUrl: null };
    }
    default: {
      const never: never = input;
      throw new Error(`unhandled request publish kind ${JSON.stringify(never)}`);
    }
  }
}
