import { ErrorCode, WebClient } from '@slack/web-api';
import type { ApprovalNotifier, ApprovalRecord, MessageRef } from '../core/approvals.js';
import { ApprovalUndeliverableError } from '../core/errors.js';
import type { ChannelNotifier, ThreadNotifier } from '../core/ports.js';
import { approvalBlocks, decidedBlocks } from '../core/slack.js';

/**
 * Slack `chat.postMessage` errors that no retry fixes, and what to do about each.
 * Source: https://api.slack.com/methods/chat.postMessage#errors (2026-11)
 */
const UNDELIVERABLE: Record<string, string> = {
  not_in_channel: 'invite the AgentFlow app to the channel, or give it the chat:write.public scope',
  channel_not_found: 'check the gate’s channel name, and invite the app if the channel is private',
  is_archived: 'the channel is archived: choose another channel for the gate',
  restricted_action: 'a workspace setting keeps the app from posting there: ask a Slack admin',
};

/**
 * {@link ApprovalNotifier} on the Slack Web API (`chat.postMessage`, `chat.update`) with the bot
 * token. `slackApiUrl` points the client elsewhere (a Slack-compatible stub in tests). CI
 * callbacks post nothing.
 */
export class SlackApprovalNotifier implements ApprovalNotifier {
  private readonly client: WebClient;

  constructor(token: string, options: { slackApiUrl?: string; timeoutMs?: number } = {}) {
    this.client = new WebClient(token, {
      ...(options.slackApiUrl ? { slackApiUrl: options.slackApiUrl } : {}),
      timeout: options.timeoutMs ?? 2500,
      retryConfig: { retries: 1 },
    });
  }

  /**
   * Posts the approval message.
   * @throws ApprovalUndeliverableError when Slack will not post to the channel (the bot is not in it, the channel does not exist or is archived)
   */
  async request(record: ApprovalRecord): Promise<MessageRef | undefined> {
    if (record.kind !== 'approval' || !record.channel) return undefined;
    try {
      const r = await this.client.chat.postMessage({ channel: record.channel.replace(/^#/, ''), ...approvalBlocks(record) } as never);
      return r.ts && r.channel ? { channel: r.channel, ts: r.ts } : undefined;
    } catch (e) {
      const code =
        (e as { code?: string; data?: { error?: string } }).code === ErrorCode.PlatformError
          ? (e as { data?: { error?: string } }).data?.error
          : undefined;
      if (code && UNDELIVERABLE[code]) {
        throw new ApprovalUndeliverableError(
          `Slack will not post the approval request to ${record.channel} (${code}): ${UNDELIVERABLE[code]}`,
        );
      }
      throw e;
    }
  }

  async decided(record: ApprovalRecord): Promise<void> {
    if (!record.message) return;
    await this.client.chat.update({ channel: record.message.channel, ts: record.message.ts, ...decidedBlocks(record) } as never);
  }
}

/**
 * {@link ThreadNotifier} on the Slack Web API: `chat.postMessage` to start a manual run's thread
 * and to reply in it (`thread_ts`), `chat.update` to turn a request's first message into its outcome. A post Slack refuses (the bot is not in the channel…) or that
 * takes longer than `startTimeoutMs` starts no thread: the run goes on without one (the slash
 * command must be answered within 3 s). Also the {@link ChannelNotifier} of run summaries
 * (`post`: the reply client's timeout, errors thrown).
 */
export class SlackThreadNotifier implements ThreadNotifier, ChannelNotifier {
  private readonly client: WebClient;
  private readonly starter: WebClient;

  constructor(token: string, options: { slackApiUrl?: string; timeoutMs?: number; startTimeoutMs?: number } = {}) {
    const base = options.slackApiUrl ? { slackApiUrl: options.slackApiUrl } : {};
    this.client = new WebClient(token, { ...base, timeout: options.timeoutMs ?? 2500, retryConfig: { retries: 1 } });
    this.starter = new WebClient(token, { ...base, timeout: options.startTimeoutMs ?? 700, retryConfig: { retries: 0 } });
  }

  async start(channel: string, text: string): Promise<{ channel: string; ts: string } | undefined> {
    const r = await this.starter.chat.postMessage({ channel, text, unfurl_links: false, unfurl_media: false }).catch(() => undefined);
    return r?.ts && r.channel ? { channel: r.channel, ts: r.ts } : undefined;
  }

  async reply(thread: { channel: string; ts: string }, text: string): Promise<void> {
    await this.client.chat.postMessage({ channel: thread.channel, thread_ts: thread.ts, text, unfurl_links: false, unfurl_media: false });
  }

  /** `chat.update` of the thread's first message (a request's outcome). @throws the client's error */
  async update(message: { channel: string; ts: string }, text: string): Promise<void> {
    await this.client.chat.update({ channel: message.channel, ts: message.ts, text });
  }

  /**
   * `chat.postMessage` in `channel` (a leading `#` dropped), without link previews.
   * @throws the client's error: a platform error names Slack's code (`not_in_channel`…) and what to do
   */
  async post(channel: string, text: string): Promise<{ channel: string; ts: string }> {
    try {
      const r = await this.client.chat.postMessage({ channel: channel.replace(/^#/, ''), text, unfurl_links: false, unfurl_media: false });
      return { channel: r.channel ?? channel, ts: r.ts ?? '' };
    } catch (e) {
      const code = (e as { code?: string }).code === ErrorCode.PlatformError ? (e as { data?: { error?: string } }).data?.error : undefined;
      if (code && UNDELIVERABLE[code]) {
        throw Object.assign(new Error(`Slack will not post to ${channel} (${code}): ${UNDELIVERABLE[code]}`), { name: 'SlackPostError' });
      }
      throw e;
    }
  }
}

/**
 * Tells a Slack user something only they see, through an interaction's `response_url` (a POST of
 * `{ response_type: 'ephemeral', text, replace_original: false }`, 2 s timeout). URLs that are not
 * Slack's (`https://hooks.slack.com/`) are ignored, so a forged payload cannot make us call elsewhere.
 * Source: https://api.slack.com/interactivity/handling#message_responses (2026-11)
 */
export async function respondToSlack(url: string, message: object): Promise<void> {
  if (!url.startsWith('https://hooks.slack.com/')) return;
  await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(message),
    signal: AbortSignal.timeout(2000),
  });
}
