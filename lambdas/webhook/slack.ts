import { randomBytes } from 'node:crypto';
import { type ApproverGroups, type DecideDeps, decideApproval, resolveApprovers } from '../core/approvals.js';
import { type Change, type ExecutionInput, MAX_REQUEST_CHARS } from '../core/contracts.js';
import {
  bodyBytes,
  DeadlineError,
  type HttpRequest,
  type HttpResponse,
  json,
  lowerHeaders,
  MAX_BODY_BYTES,
  mediaType,
  rawBody,
  UNAUTHORIZED,
  withDeadline,
} from '../core/http.js';
import type { ChangeLookup, ExecutionStarter, RunStore, ThreadNotifier } from '../core/ports.js';
import { redactSecrets } from '../core/redact.js';
import { verifySlackSignature } from '../core/signatures.js';
import {
  APPROVE_ACTION,
  BlockActionsSchema,
  COMMAND_HELP,
  ephemeral,
  parseCommand,
  REJECT_ACTION,
  requestStartedText,
  runStartedText,
  SlashCommandSchema,
  slackInert,
} from '../core/slack.js';
import { executionName, type WorkflowTrigger } from '../core/triggers.js';

export interface SlackDeps {
  /** The app's signing secret(s): the current one and, during a rotation, the previous one. */
  signingSecrets: () => Promise<readonly string[]>;
  workflows: readonly WorkflowTrigger[];
  /** Groups that `run_by:` lists may name. */
  groups: ApproverGroups;
  starter: ExecutionStarter;
  runs: RunStore;
  changes: ChangeLookup;
  approvals: DecideDeps;
  /**
   * The environment's default request workflow: `/agentflow ask <request>` without a workflow
   * name asks it (`askWorkflow` of the environment config).
   * @default - the only workflow with `trigger: request`; with several, the user names one
   */
  askWorkflow?: string;
  /** Starts a manual run's Slack thread, where Publish posts its outcome. @default no thread */
  threads?: ThreadNotifier;
  /** Tells the person who clicked something only they see (a POST to the interaction's `response_url`). */
  respond?: (responseUrl: string, message: { response_type: string; text: string; replace_original: boolean }) => Promise<void>;
  /** @default Date.now */
  now?: () => number;
  /** Time left to answer, in ms; Slack waits 3 s. @default 2500 */
  remainingMs?: () => number;
}

const FORM = 'application/x-www-form-urlencoded';

/** Verifies a Slack request and returns its form fields, or the error answer. */
async function verified(req: HttpRequest, deps: SlackDeps): Promise<URLSearchParams | HttpResponse> {
  if (bodyBytes(req) > MAX_BODY_BYTES) return json(413, { message: 'payload too large' });
  const h = lowerHeaders(req.headers);
  if (!h['x-slack-request-timestamp'] || !h['x-slack-signature'])
    return json(400, { message: 'missing X-Slack-Request-Timestamp or X-Slack-Signature' });
  if (mediaType(h['content-type']) !== FORM) return json(415, { message: `Slack sends ${FORM}` });
  const body = rawBody(req);
  const now = Math.floor((deps.now ?? Date.now)() / 1000);
  let secrets: readonly string[];
  try {
    secrets = await withDeadline(deps.signingSecrets(), 1500);
  } catch {
    return json(503, { message: 'try again' });
  }
  const ok = verifySlackSignature(secrets, body, h['x-slack-request-timestamp'], h['x-slack-signature'], now);
  if (!ok) return UNAUTHORIZED();
  return new URLSearchParams(body.toString('utf8'));
}

const say = (text: string): HttpResponse => json(200, ephemeral(text));

/**
 * `POST /webhooks/slack/commands`: the `/agentflow` slash command. The v0 signature is checked on
 * the raw body, with the timestamp within ±5 minutes, before the form is parsed (401, opaque).
 * Answers are ephemeral and come within Slack's 3 s:
 * - `run <workflow> [key=value …]` starts a workflow whose trigger has `manual`, if the user is in
 *   its `run_by:` (user ids or groups); keys `repo` (required), `pr`, or `base` + `head`, and
 *   `coverage`; the execution is named from the command's `trigger_id`, so a replay starts nothing;
 * - `ask [<workflow>] <request>` asks a request workflow (see `askWorkflow`), who may as for `run`;
 * - `status <execution>` shows the run record;
 * - `approve|reject <id>` decides an approval as the user;
 * - anything else gets the help text, with what was wrong.
 */
export async function handleSlackCommand(req: HttpRequest, deps: SlackDeps): Promise<HttpResponse> {
  const form = await verified(req, deps);
  if (!(form instanceof URLSearchParams)) return form;
  const parsed = SlashCommandSchema.safeParse(Object.fromEntries(form));
  if (!parsed.success) return json(400, { message: 'not a slash command' });
  const { user_id: user, trigger_id: trigger, channel_id: channel } = parsed.data;
  const cmd = parseCommand(parsed.data.text);
  switch (cmd.kind) {
    case 'help':
      return say(COMMAND_HELP);
    case 'error':
      return say(`${cmd.message}\n${COMMAND_HELP}`);
    case 'review':
      return say(
        '`/agentflow review` works as a comment on a pull request. In Slack, use `/agentflow run <workflow> repo=owner/name pr=<n>`.',
      );
    case 'approve':
    case 'reject':
      return say((await decideApproval(cmd.id, cmd.kind, { slack: user }, deps.approvals)).message);
    case 'status': {
      const run = await deps.runs.get(cmd.execution);
      if (!run) {
        const wf = deps.workflows.find((w) => cmd.execution.endsWith(`-${w.id}`));
        const status = wf ? await deps.starter.status?.(wf.id, cmd.execution) : undefined;
        return say(status ? `\`${cmd.execution}\` (${wf?.id}): *${status}*` : `No run named \`${cmd.execution}\`.`);
      }
      const numbers = run.request
        ? `${run.toolCalls ?? 0} tool calls, $${run.costUsd.toFixed(4)}`
        : `${run.findings} findings, $${run.costUsd.toFixed(4)}`;
      // A reason or error may quote a model or a provider: made inert.
      const why = run.reason ?? run.error;
      const extra = why ? slackInert(why, 600) : run.status === 'SUCCEEDED' ? numbers : '';
      const subject = run.request ? `for ${run.request.requester}` : `on ${run.repository}${run.number ? `#${run.number}` : ''}`;
      return say(`\`${run.runId}\` (${run.workflow}) ${subject}: *${run.status}*${extra ? ` — ${extra}` : ''}`);
    }
    case 'run':
      return runWorkflow(cmd.workflow, cmd.params, user, trigger, channel, deps);
    case 'ask':
      return askWorkflow(cmd.text, user, trigger, channel, deps);
  }
}

/**
 * Whether `user` may start `wf` from Slack: anyone when its `run_by:` is empty, else the Slack
 * users it names and the members of the groups it names.
 * @returns the answer that refuses, or undefined when the user may
 */
function refusal(wf: WorkflowTrigger, user: string, deps: SlackDeps, verb: 'run' | 'ask'): HttpResponse | undefined {
  if (!wf.runBy || wf.runBy.length === 0) return undefined;
  let allowed: string[];
  try {
    allowed = resolveApprovers(wf.runBy, deps.groups).slack;
  } catch (e) {
    return say(`\`${wf.id}\` cannot be started: ${(e as Error).message}.`);
  }
  return allowed.includes(user) ? undefined : say(`You may not ${verb} \`${wf.id}\`; ask someone in ${wf.runBy.join(', ')}.`);
}

/** The trigger event of workflows that answer a person's request (`/agentflow ask`, `agentflow run --request`). */
export const REQUEST_EVENT = 'request';

/**
 * Which request workflow `/agentflow ask <text>` asks, and the request: the workflow the first
 * word names (the rest is the request), else `askWorkflow`, else the only request workflow.
 * @returns the workflow and the request, or the answer that says what to write
 */
export function resolveAsk(
  text: string,
  workflows: readonly WorkflowTrigger[],
  askWorkflow: string | undefined,
): { workflow: WorkflowTrigger; request: string } | { answer: string } {
  const candidates = workflows.filter((w) => w.events.includes(REQUEST_EVENT));
  const known = candidates.map((w) => `\`${w.id}\``).join(', ');
  if (candidates.length === 0) return { answer: 'No workflow here answers requests (none has `trigger: request`).' };
  const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(text.trim());
  const named = candidates.find((w) => w.id === m?.[1]);
  if (named) {
    const request = (m?.[2] ?? '').trim();
    return request
      ? { workflow: named, request }
      : { answer: `What should \`${named.id}\` do? Write \`/agentflow ask ${named.id} <request>\`.` };
  }
  if (askWorkflow) {
    const chosen = candidates.find((w) => w.id === askWorkflow);
    if (chosen) return { workflow: chosen, request: text.trim() };
    return { answer: `The default request workflow \`${askWorkflow}\` does not answer requests; name one: ${known}.` };
  }
  const only = candidates.length === 1 ? candidates[0] : undefined;
  if (only) return { workflow: only, request: text.trim() };
  return { answer: `Which workflow? Write \`/agentflow ask <workflow> <request>\` with one of ${known}.` };
}

/**
 * `/agentflow ask [<workflow>] <request>`: starts the request workflow ({@link resolveAsk}) if the
 * user is in its `run_by:`, with the request (cut at {@link MAX_REQUEST_CHARS}, which the answer
 * says) from `slack:<user>`, after posting the thread's first message ("Working on: …") in the
 * channel, where Publish answers. The execution is named from the command's `trigger_id`.
 */
async function askWorkflow(text: string, user: string, trigger: string, channel: string, deps: SlackDeps): Promise<HttpResponse> {
  const resolved = resolveAsk(text, deps.workflows, deps.askWorkflow);
  if ('answer' in resolved) return say(resolved.answer);
  const { workflow: wf } = resolved;
  const refused = refusal(wf, user, deps, 'ask');
  if (refused) return refused;
  const cut = resolved.request.length > MAX_REQUEST_CHARS;
  const remaining = deps.remainingMs ?? (() => 2500);
  const name = executionName(`slack-${trigger || randomBytes(8).toString('hex')}`, wf.id);
  let threaded = false;
  try {
    const work = (async () => {
      // A secret pasted into the request is removed before it is posted in the channel, kept in a
      // record or given to an agent.
      const request = (await redactSecrets(cut ? resolved.request.slice(0, MAX_REQUEST_CHARS) : resolved.request)).text;
      // The request's thread: its first message becomes the outcome, the answer a reply. No
      // thread (no notifier, the bot cannot post there) does not stop the run.
      const thread =
        channel && deps.threads
          ? await deps.threads
              .start(channel, requestStartedText({ workflow: wf.id, text: request, execution: name }))
              .catch(() => undefined)
          : undefined;
      threaded = thread !== undefined;
      const input: ExecutionInput = {
        runId: name,
        workflow: wf.id,
        request: { text: request, requester: `slack:${user}`, ...(thread ? { thread } : {}) },
      };
      return deps.starter.start(wf.id, name, input);
    })();
    const r = await withDeadline(work, remaining());
    const note = cut ? ` Your request was cut at ${MAX_REQUEST_CHARS.toLocaleString('en-US')} characters.` : '';
    const where = threaded
      ? "the answer comes in this channel's thread"
      : `AgentFlow cannot post here, so see the answer with \`/agentflow status ${r.name}\``;
    return say(
      r.started
        ? `Asked \`${wf.id}\` (execution \`${r.name}\`): ${where}.${note}`
        : `\`${r.name}\` is already running (this command was received before).`,
    );
  } catch (e) {
    // The start may have gone through after all: asking again would be a second run (and act twice).
    const why =
      e instanceof DeadlineError
        ? `Step Functions did not answer in time; check \`/agentflow status ${name}\` before asking again`
        : (e as Error).message;
    return say(`Could not ask \`${wf.id}\`: ${why}.`);
  }
}

async function runWorkflow(
  id: string,
  params: Record<string, string>,
  user: string,
  trigger: string,
  channel: string,
  deps: SlackDeps,
): Promise<HttpResponse> {
  const manual = deps.workflows.filter((w) => w.events.includes('manual'));
  const wf = deps.workflows.find((w) => w.id === id);
  const known = manual.map((w) => `\`${w.id}\``).join(', ') || 'none';
  if (!wf) return say(`There is no workflow \`${id}\`. Workflows you can run by hand: ${known}.`);
  if (wf.events.includes(REQUEST_EVENT) && !wf.events.includes('manual'))
    return say(`\`${id}\` answers requests: write \`/agentflow ask ${id} <request>\`.`);
  if (!wf.events.includes('manual'))
    return say(`\`${id}\` is not started by hand (its trigger has no \`manual\`). Workflows you can run: ${known}.`);
  const refused = refusal(wf, user, deps, 'run');
  if (refused) return refused;
  const repo = params.repo;
  if (!repo || !/^[\w.-]+\/[\w.-]+$/.test(repo))
    return say('Which repository? Add `repo=owner/name` (and `pr=<number>`, or `base=<ref> head=<ref>`).');
  const pr = params.pr;
  if (pr !== undefined && !/^\d+$/.test(pr)) return say(`\`pr=${pr}\` is not a pull request number.`);
  const coverage = params.coverage === undefined ? undefined : Number(params.coverage.replace(/%$/, ''));
  if (coverage !== undefined && !(coverage >= 0 && coverage <= 100)) return say(`\`coverage=${params.coverage}\` is not a percentage.`);
  const remaining = deps.remainingMs ?? (() => 2500);
  try {
    const work = (async () => {
      const base: Change = pr
        ? await deps.changes.pullRequest(repo, Number(pr))
        : await deps.changes.refs(repo, params.base ?? 'main', params.head ?? 'HEAD');
      const name = executionName(`slack-${trigger || randomBytes(8).toString('hex')}`, id);
      // The run's thread: a message in the channel the command came from; the outcome is posted
      // in its thread. No thread (no notifier, the bot cannot post there) does not stop the run.
      const thread =
        channel && deps.threads
          ? await deps.threads
              .start(
                channel,
                runStartedText({
                  workflow: id,
                  execution: name,
                  repository: repo,
                  base: base.baseRef || base.baseSha,
                  head: base.headRef || base.headSha,
                  user,
                }),
              )
              .catch(() => undefined)
          : undefined;
      const change: Change = {
        ...base,
        action: 'manual',
        ...(coverage !== undefined ? { testCoverage: coverage } : {}),
        ...(thread ? { thread } : {}),
      };
      const input: ExecutionInput = { runId: name, workflow: id, change };
      return deps.starter.start(id, name, input);
    })();
    const r = await withDeadline(work, remaining());
    return say(
      r.started
        ? `Started \`${id}\` as execution \`${r.name}\`. Follow it with \`/agentflow status ${r.name}\`.`
        : `\`${r.name}\` is already running (this command was received before).`,
    );
  } catch (e) {
    const why = e instanceof DeadlineError ? 'GitHub or Step Functions did not answer in time; try again' : (e as Error).message;
    return say(`Could not start \`${id}\`: ${why}.`);
  }
}

/**
 * `POST /webhooks/slack/interactions`: Approve/Reject button clicks (`block_actions`). Verified like
 * the commands; the button's value is the approval id. The decision (single-use, approvers only)
 * completes the waiting task before this answers; a refused, late or second click is told so in
 * an ephemeral message through `response_url`. The answer body repeats the outcome as JSON.
 */
export async function handleSlackInteraction(req: HttpRequest, deps: SlackDeps): Promise<HttpResponse> {
  const form = await verified(req, deps);
  if (!(form instanceof URLSearchParams)) return form;
  let payload: unknown;
  try {
    payload = JSON.parse(form.get('payload') ?? '');
  } catch {
    return json(400, { message: 'no interaction payload' });
  }
  const parsed = BlockActionsSchema.safeParse(payload);
  if (!parsed.success) return json(200, { message: 'interaction ignored' });
  const action = parsed.data.actions[0];
  const decision = action?.action_id === APPROVE_ACTION ? 'approve' : action?.action_id === REJECT_ACTION ? 'reject' : undefined;
  if (!decision || !action?.value) return json(200, { message: 'interaction ignored' });
  const result = await decideApproval(action.value, decision, { slack: parsed.data.user.id }, deps.approvals);
  const url = parsed.data.response_url;
  if (url && deps.respond && result.outcome !== 'approved' && result.outcome !== 'rejected') {
    await deps.respond(url, { response_type: 'ephemeral', text: result.message, replace_original: false }).catch(() => undefined);
  }
  return json(200, { ...ephemeral(result.message), outcome: result.outcome });
}
