import { z } from 'zod';
import type { ApprovalRecord, ApprovalStatus } from './approvals.js';
import { checkName } from './checks.js';

/** `action_id`s of the approval message's buttons; their `value` is the approval id and nothing else. */
export const APPROVE_ACTION = 'agentflow_approve';
export const REJECT_ACTION = 'agentflow_reject';

const prLink = (r: ApprovalRecord) =>
  r.number > 0
    ? `<https://github.com/${r.repository}/pull/${r.number}|${r.repository}#${r.number}>`
    : `${r.repository}@${r.headSha.slice(0, 7)}`;

/** Look-alikes for Slack's formatting marks, so untrusted text shows no bold, italic, strike or code. */
const FORMATTING_MARKS: Record<string, string> = { '*': '∗', _: 'ˍ', '~': '∼', '`': 'ˋ' };

/**
 * Untrusted text (a request, a model's answer data) for an approval message: {@link slackInert}
 * (no mention, link or URL survives) and Slack's formatting marks replaced by look-alikes; an
 * underscore inside a word (`amount_usd`) stays, as it formats nothing.
 */
const approvalInert = (s: string, max: number) =>
  slackInert(s, max).replace(/[*~`]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])/g, (c) => FORMATTING_MARKS[c] ?? c);

/** What an approval message says it is about: the pull request, or who asked what. */
function approvalSubject(r: ApprovalRecord, textChars: number): string {
  if (!r.request) return `${prLink(r)}${r.title ? ` “${slackInert(r.title, 200)}”` : ''}`;
  return `the request of ${approvalInert(r.request.requester, 60)}: “${approvalInert(r.request.text, textChars)}”`;
}

/** Answer data fields shown in an approval message, and the characters of a key and a value. */
const DATA_FIELDS = 10;
const DATA_KEY_CHARS = 40;
const DATA_VALUE_CHARS = 100;

/**
 * Why a gate with `approval.when` asks: the condition (from the workflow) and the answer data it
 * read, the fields the condition names first, at most {@link DATA_FIELDS}, each key and value inert.
 */
function approvalReason(r: ApprovalRecord): string[] {
  if (!r.about) return [];
  const condition = slackText(r.about.condition).replace(/`/g, "'");
  const named = new Set(r.about.condition.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []);
  const fields = Object.entries(r.data ?? {}).sort(([a], [b]) => Number(named.has(b)) - Number(named.has(a)));
  const lines = fields
    .slice(0, DATA_FIELDS)
    .map(([k, v]) => `• ${approvalInert(k, DATA_KEY_CHARS)}: ${v === null ? '—' : approvalInert(String(v), DATA_VALUE_CHARS)}`);
  const more = fields.length - DATA_FIELDS;
  return [
    `Asked because \`${condition}\` (the answer of ${slackText(r.about.phase)}${lines.length ? '):' : ' gave no data to show).'}`,
    ...lines,
    ...(more > 0 ? [`…and ${more} more field${more === 1 ? '' : 's'}`] : []),
  ];
}

/** A wait in seconds as people say it: `45 s`, `30 min`, `2 h`, `1 d 4 h`. */
function waitText(seconds: number): string {
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.round(seconds / 360) / 10} h`;
  const days = Math.floor(seconds / 86_400);
  const hours = Math.round((seconds - days * 86_400) / 3600);
  return hours ? `${days} d ${hours} h` : `${days} d`;
}

/**
 * The approval request as Block Kit: what is asked (the pull request, or for a request run who
 * asked and the request's start), why when the gate has `approval.when` (the condition and the
 * answer data it read), by when, and Approve/Reject buttons whose value is only the opaque
 * approval id (a task token is up to 2,048 characters; a button value holds 2,000, and a token
 * must not be shown to anyone). Everything from a pull request, a requester or a model is inert
 * (no mention, link or formatting comes through).
 * Source: https://api.slack.com/reference/block-kit/block-elements#button (2026-11)
 *
 * @example
 * ```
 * *Approval needed*: support-triage › *refund*
 * the request of slack:​U0CUST: “I was charged twice for order 1234…”
 * Asked because `billing.amount_usd > 100` (the answer of billing):
 * • amount_usd: 250
 * Decide by 2026-11-22T00:00:00.000Z (in 1 d, execution `req-1`).
 * ```
 */
export function approvalBlocks(r: ApprovalRecord): { text: string; blocks: unknown[] } {
  const what = `${slackText(r.workflow)} › ${slackText(r.phase)}`;
  const text = r.request
    ? `Approval needed: ${what} for a request of ${approvalInert(r.request.requester, 60)}`
    : `Approval needed: ${what} for ${r.repository}${r.number ? `#${r.number}` : ''}`;
  const wait = waitText((Date.parse(r.deadline) - Date.parse(r.createdAt)) / 1000);
  const body = [
    `*${r.escalation ? 'Escalated approval' : 'Approval needed'}*: ${slackText(r.workflow)} › *${slackText(r.phase)}*`,
    approvalSubject(r, 200),
    ...approvalReason(r),
    `Decide by ${r.deadline} (in ${wait}, execution \`${r.execution}\`).`,
  ];
  const elsewhere = r.request
    ? `Or send \`/agentflow approve ${r.id}\` (or \`reject\`) in Slack.`
    : `Or comment \`/agentflow approve ${r.id}\` (or \`reject\`) on the pull request.`;
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: body.join('\n'), verbatim: true } },
      {
        type: 'actions',
        block_id: 'agentflow_decision',
        elements: [
          { type: 'button', action_id: APPROVE_ACTION, style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value: r.id },
          { type: 'button', action_id: REJECT_ACTION, style: 'danger', text: { type: 'plain_text', text: 'Reject' }, value: r.id },
        ],
      },
      { type: 'context', elements: [{ type: 'mrkdwn', text: elsewhere }] },
    ],
  };
}

/** The message after the decision (or the expiry): the outcome and who decided, no buttons. */
export function decidedBlocks(r: ApprovalRecord): { text: string; blocks: unknown[] } {
  const outcome =
    r.status === 'APPROVED'
      ? `:white_check_mark: Approved by ${r.decidedBy} at ${r.decidedAt}`
      : r.status === 'REJECTED'
        ? `:x: Rejected by ${r.decidedBy} at ${r.decidedAt}`
        : `:hourglass: Expired at ${r.deadline} without a decision`;
  const text = `${slackText(r.workflow)} › ${slackText(r.phase)}: ${outcome}`;
  return {
    text,
    blocks: [
      {
        type: 'section',
        text: {
          type: 'mrkdwn',
          text: `${slackText(r.workflow)} › *${slackText(r.phase)}* for ${approvalSubject(r, 100)}\n${outcome}`,
          verbatim: true,
        },
      },
    ],
  };
}

/** A name from a workflow (a phase, a channel) in code marks, with nothing live in it. */
const codeName = (s: string) => `\`${slackText(s).replace(/`/g, "'")}\``;

/**
 * Who decided, for a request's thread: a Slack user as the mention `actorName` wrote (`<@U…>`),
 * anyone else (`@octocat`, `CI`) inert.
 */
const deciderText = (by: string | undefined) => (by && /^<@[UW][A-Z0-9]{2,}>$/.test(by) ? by : slackInert(by ?? 'someone', 60));

/** The reply in a request run's thread for each state of its approval: asked, then decided. */
const APPROVAL_THREAD_TEXT: Record<ApprovalStatus, (r: ApprovalRecord) => string> = {
  PENDING: (r) => {
    const why = r.about ? `, asked because ${codeName(r.about.condition)}` : '';
    const wait = waitText((Date.parse(r.deadline) - Date.parse(r.createdAt)) / 1000);
    const head = r.escalation ? '⏸ Escalated: waiting' : '⏸ Waiting';
    return `${head} for a person's approval (${codeName(r.phase)} in ${slackText(r.channel)}${why}), up to ${wait}.`;
  },
  APPROVED: (r) => `✅ Approved by ${deciderText(r.decidedBy)}, going on.`,
  REJECTED: (r) => `❌ Rejected by ${deciderText(r.decidedBy)}: the run stops.`,
  EXPIRED: (r) => `⌛ Nobody decided ${codeName(r.phase)} in time.`,
};

/**
 * What a request run's Slack thread is told about its approval gate (issue 15): while it waits,
 * the phase, the channel it asks in, the condition of an `approval.when` gate and how long it
 * waits; once decided, the outcome and who decided. No approver is named while it waits (nobody
 * is pinged in the requester's thread) and no answer data is shown; names from the workflow are
 * escaped, a non-Slack decider is inert.
 *
 * @example
 * ```
 * ⏸ Waiting for a person's approval (`refund-approval` in #support-leads, asked because `billing.amount_usd &gt; 100`), up to 4 h.
 * ✅ Approved by <@U0LEAD>, going on.
 * ```
 */
export const approvalThreadText = (r: ApprovalRecord): string => APPROVAL_THREAD_TEXT[r.status](r);

/** A parsed `/agentflow` command (Slack slash command text or a pull-request comment). */
export type AgentflowCommand =
  | { kind: 'run'; workflow: string; params: Record<string, string> }
  /** `ask [<workflow>] <request>`: the words after `ask`, as typed (the webhook tells a workflow name from the request). */
  | { kind: 'ask'; text: string }
  | { kind: 'status'; execution: string }
  | { kind: 'approve' | 'reject'; id: string }
  | { kind: 'review'; full: boolean }
  | { kind: 'help' }
  | { kind: 'error'; message: string };

export const COMMAND_HELP = [
  '`/agentflow run <workflow> [key=value …]` starts a workflow (keys: repo=owner/name, pr=<number>, base=<ref>, head=<ref>, coverage=<percent>)',
  '`/agentflow ask [<workflow>] <request>` asks the agents of a request workflow; the answer comes in a thread',
  '`/agentflow status <execution>` shows a run',
  '`/agentflow approve <id>` / `/agentflow reject <id>` decides an approval',
  '`/agentflow review [--full]` (on a pull request) reviews what changed since the last review again; `--full` reviews every file',
].join('\n');

/**
 * Parses the words after `/agentflow`. `key=value` pairs take no spaces; an unknown verb or a
 * missing argument is a `kind: 'error'` with a message that says what to write.
 */
export function parseCommand(text: string): AgentflowCommand {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const [verb, ...rest] = words;
  switch (verb?.toLowerCase()) {
    case undefined:
    case 'help':
      return { kind: 'help' };
    case 'run': {
      const [workflow, ...pairs] = rest;
      if (!workflow || workflow.includes('='))
        return { kind: 'error', message: 'Which workflow? Write `/agentflow run <workflow> [key=value …]`.' };
      const params: Record<string, string> = {};
      for (const p of pairs) {
        const m = /^([a-z_]+)=(\S+)$/.exec(p);
        if (!m?.[1] || m[2] === undefined) return { kind: 'error', message: `\`${p}\` is not key=value.` };
        params[m[1]] = m[2];
      }
      return { kind: 'run', workflow, params };
    }
    case 'ask': {
      const request = text.trim().slice(verb.length).trim();
      return request
        ? { kind: 'ask', text: request }
        : { kind: 'error', message: 'What is your request? Write `/agentflow ask [<workflow>] <request>`.' };
    }
    case 'status':
      return rest[0]
        ? { kind: 'status', execution: rest[0] }
        : { kind: 'error', message: 'Which execution? Write `/agentflow status <execution>`.' };
    case 'approve':
    case 'reject':
      return rest[0]
        ? { kind: verb.toLowerCase() as 'approve' | 'reject', id: rest[0] }
        : { kind: 'error', message: `Which approval? Write \`/agentflow ${verb} <id>\`.` };
    case 'review':
      if (rest.some((w) => w !== '--full')) return { kind: 'error', message: 'Write `/agentflow review` or `/agentflow review --full`.' };
      return { kind: 'review', full: rest.includes('--full') };
    default:
      return { kind: 'error', message: `Unknown command \`${verb}\`.` };
  }
}

/** The fields of a Slack `block_actions` interaction payload we use. */
export const BlockActionsSchema = z.object({
  type: z.literal('block_actions'),
  user: z.object({ id: z.string() }),
  actions: z.array(z.object({ action_id: z.string(), value: z.string().optional() })).min(1),
  response_url: z.string().optional(),
});

/** The fields of a Slack slash command (form-encoded) we use. */
export const SlashCommandSchema = z.object({
  command: z.string(),
  text: z.string().default(''),
  user_id: z.string(),
  trigger_id: z.string().default(''),
  channel_id: z.string().default(''),
});

/** An ephemeral answer: only the person who typed the command or clicked sees it. */
export const ephemeral = (text: string) => ({ response_type: 'ephemeral', text });

/** Text for Slack mrkdwn with nothing live in it: `&`, `<` and `>` escaped (no links, mentions or markup from data). Source: https://api.slack.com/reference/surfaces/formatting#escaping (2026-11) */
export const slackText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The message a manual run's thread starts with. */
export function runStartedText(o: {
  workflow: string;
  execution: string;
  repository: string;
  base: string;
  head: string;
  user: string;
}): string {
  return `▶️ ${slackText(o.workflow)} on ${slackText(o.repository)} ${slackText(o.base)}…${slackText(o.head)}, started by ${slackText(o.user)}: execution ${slackText(o.execution)}. The outcome follows in this thread.`;
}

/** A run's outcome as a thread reply: status, then findings and cost, or the reason. */
export function runOutcomeText(o: { status: string; findings?: number; costUsd?: number; reason?: string }): string {
  const numbers = o.findings !== undefined ? ` — ${o.findings} finding${o.findings === 1 ? '' : 's'}, $${(o.costUsd ?? 0).toFixed(4)}` : '';
  return `${o.status}${numbers}${o.reason ? `. ${slackText(o.reason).slice(0, 600)}` : ''}`;
}

/**
 * Untrusted text (a pull-request title, a reason quoting a model or a provider) made inert for a
 * Slack message: on one line, at most `max` characters, escaped ({@link slackText}: no `<!here>`,
 * `<@U…>` or `<url|label>` survives), and with a zero-width space after each `@`, `.` and `:` so
 * Slack neither links a bare URL or domain (`https://evil.example`, `evil.example`) nor, with
 * `link_names`, a written `@here`.
 */
export function slackInert(s: string, max = 300): string {
  const line = s.replace(/\s+/g, ' ').trim();
  const cut = line.length > max ? `${line.slice(0, max - 1)}…` : line;
  return slackText(cut).replace(/([@.:])/g, '$1\u200b');
}

/**
 * A link for a Slack message from a URL we trust (the pull request's and check run's `html_url`,
 * from GitHub): `<url|label>` when it is an `https://` URL without `<`, `>`, `|` or spaces, else
 * the escaped text (a local file path). The label is escaped.
 */
export function slackLink(url: string, label: string): string {
  return /^https:\/\/[^\s<>|]+$/.test(url) ? `<${url}|${slackText(label)}>` : slackText(url);
}

const STATUS_MARK: Record<string, string> = {
  SUCCEEDED: '✅',
  PARTIAL: '⚠️',
  FAILED: '❌',
  SKIPPED: '⏭️',
  STOPPED: '⏹️',
};

/** What {@link runSummaryText} reports. */
export interface RunSummaryMessage {
  workflow: string;
  status: string;
  repository: string;
  /** Pull request number; 0 for a change without one. */
  number: number;
  headSha: string;
  /** The pull request's title (untrusted: made inert). */
  title: string;
  /** The pull request's page (`change.url`); empty when unknown. */
  url: string;
  /** Findings in the report; absent for a run that failed before it. */
  findings?: number;
  /** Counts by severity, most severe first in the text. */
  bySeverity?: Partial<Record<'critical' | 'high' | 'medium' | 'low' | 'info', number>>;
  /** USD. */
  costUsd?: number;
  /** Why the run is partial or failed (untrusted: made inert). */
  reason?: string;
  /** The check run's page (or local file), when one was written. */
  checkUrl?: string | null;
}

/**
 * A run's summary for a Slack channel (`output.slack`, and the failure for `notify:`): outcome,
 * the findings by severity and the cost, then links to the pull request and the check run. Plain
 * mrkdwn; everything that comes from the pull request or a model is {@link slackInert}.
 *
 * @example
 * ```
 * ✅ *pr-review* SUCCEEDED on acme/shop-apps#42: Checkout: pay with card
 * 3 findings (1 high, 2 medium), $0.0123
 * Pull request: <https://github.com/acme/shop-apps/pull/42|acme/shop-apps#42> · Check run: <https://github.com/acme/shop-apps/runs/7|AgentFlow · pr-review>
 * ```
 */
export function runSummaryText(m: RunSummaryMessage): string {
  const where = m.number > 0 ? `${m.repository}#${m.number}` : `${m.repository}@${m.headSha.slice(0, 7)}`;
  const lines = [
    `${STATUS_MARK[m.status] ?? '•'} *${slackText(m.workflow)}* ${slackText(m.status)} on ${slackText(where)}${m.title ? `: ${slackInert(m.title, 200)}` : ''}`,
  ];
  if (m.findings !== undefined) {
    const order = ['critical', 'high', 'medium', 'low', 'info'] as const;
    const counts = order
      .filter((s) => (m.bySeverity?.[s] ?? 0) > 0)
      .map((s) => `${m.bySeverity?.[s]} ${s}`)
      .join(', ');
    lines.push(`${m.findings} finding${m.findings === 1 ? '' : 's'}${counts ? ` (${counts})` : ''}, $${(m.costUsd ?? 0).toFixed(4)}`);
  }
  if (m.reason) lines.push(slackInert(m.reason, 600));
  const links = [
    ...(m.url ? [`Pull request: ${slackLink(m.url, where)}`] : []),
    ...(m.checkUrl ? [`Check run: ${slackLink(m.checkUrl, checkName(m.workflow))}`] : []),
  ];
  if (links.length) lines.push(links.join(' · '));
  return lines.join('\n');
}

/**
 * Slack's limits a posted answer keeps to: a message's `text` is cut by Slack past 40,000
 * characters, and a Block Kit section holds 3,000; an answer is posted in at most
 * {@link MAX_SLACK_ANSWER_CHARS} so it also fits a section.
 * Source: https://api.slack.com/methods/chat.postMessage#truncating and
 * https://api.slack.com/reference/block-kit/blocks#section (2026-11)
 */
export const MAX_SLACK_TEXT_CHARS = 40_000;
export const MAX_SLACK_ANSWER_CHARS = 3_000;

/**
 * A model's answer (Markdown, several lines) made inert for a Slack message, as
 * {@link slackInert} does for one line: `&`, `<`, `>` escaped (no `<!channel>`, `<@U…>` or
 * `<url|label>` survives) and a zero-width space after each `@` and after each `.` or `:` before a
 * letter or `/` (no bare URL, domain or written `@here` becomes a link or a ping). Line breaks and plain formatting stay; the
 * answer is cut at `max` characters (before escaping), and `cut` says so.
 *
 * @example
 * ```ts
 * slackAnswer('Done <!channel>, see https://evil.example').text;
 * // 'Done &lt;!channel&gt;, see https:\u200b//evil.\u200bexample'
 * ```
 */
export function slackAnswer(s: string, max = MAX_SLACK_ANSWER_CHARS): { text: string; cut: boolean } {
  const clean = s.replace(/\r\n?/g, '\n').trim();
  const cut = clean.length > max;
  const kept = cut ? `${clean.slice(0, max - 1)}…` : clean;
  // A zero-width space after every `@`, and after a `.` or `:` that a letter or `/` follows: a
  // domain or URL is broken up, while amounts and times ($150.00, 10:30) stay as written.
  return {
    text: slackText(kept)
      .replace(/@/g, '@\u200b')
      .replace(/([.:])(?=[A-Za-z/])/g, '$1\u200b'),
    cut,
  };
}

/** The message a request's thread starts with (`/agentflow ask`): the request's start, inert. */
export function requestStartedText(o: { workflow: string; text: string; execution: string }): string {
  return `⏳ Working on: ${slackInert(o.text, 100)} (${slackText(o.workflow)}, execution ${slackText(o.execution)}). The answer follows in this thread.`;
}

/** What {@link requestOutcomeText} and {@link requestSummaryText} report about a request run. */
export interface RequestRunMessage {
  workflow: string;
  status: string;
  /** The request (untrusted: made inert, its start only). */
  text: string;
  /** `slack:<id>` or `local:<user>`. */
  requester: string;
  /** USD, the ledger's (the spend records' sum). */
  costUsd?: number;
  toolCalls?: number;
  toolErrors?: number;
  /** Why the run is partial, stopped or failed (untrusted: made inert). */
  reason?: string;
}

const REQUEST_OUTCOME: Record<string, string> = {
  SUCCEEDED: 'Answered',
  PARTIAL: 'Partly answered',
  FAILED: 'Not answered',
  STOPPED: 'Stopped',
  SKIPPED: 'Skipped',
};

/**
 * `3 tool calls (1 failed or refused), $0.0042`: the numbers of a request run, as the run record
 * has them; empty when the cost is not known (a failed run: no number is shown that the ledger
 * did not give).
 */
function requestNumbers(m: RequestRunMessage): string {
  if (m.costUsd === undefined) return '';
  const calls = m.toolCalls;
  const tools =
    calls === undefined ? '' : `${calls} tool call${calls === 1 ? '' : 's'}${m.toolErrors ? ` (${m.toolErrors} failed or refused)` : ''}, `;
  return `${tools}$${m.costUsd.toFixed(4)}`;
}

/**
 * A request thread's first message once the run ended (`chat.update`): the outcome mark, the
 * request's start, the tool calls and the cost, and the reason when there is one.
 *
 * @example
 * ```
 * ✅ Answered: I was charged twice for order 1234… — 2 tool calls, $0.0042
 * ```
 */
export function requestOutcomeText(m: RequestRunMessage): string {
  const numbers = requestNumbers(m);
  const head = `${STATUS_MARK[m.status] ?? '•'} ${REQUEST_OUTCOME[m.status] ?? slackText(m.status)}: ${slackInert(m.text, 100)}${numbers ? ` — ${numbers}` : ''}`;
  return m.reason ? `${head}\n${slackInert(m.reason, 600)}` : head;
}

/**
 * A request run's summary for a Slack channel (`output.slack`, `notify:`): workflow and outcome,
 * who asked and the request's start, the tool calls and the cost, the reason. Everything from
 * the request or a model is {@link slackInert}.
 */
export function requestSummaryText(m: RequestRunMessage): string {
  return [
    `${STATUS_MARK[m.status] ?? '•'} *${slackText(m.workflow)}* ${slackText(m.status)} for ${slackInert(m.requester, 60)}: ${slackInert(m.text, 200)}`,
    ...(requestNumbers(m) ? [requestNumbers(m)] : []),
    ...(m.reason ? [slackInert(m.reason, 600)] : []),
  ].join('\n');
}
