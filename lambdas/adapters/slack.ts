import { WebClient } from '@slack/web-api';
import type { ApprovalNotifier, ApprovalRecord, MessageRef } from '../core/approvals.js';
import { approvalBlocks, decidedBlocks } from '../core/slack.js';

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

  async request(record: ApprovalRecord): Promise<MessageRef | undefined> {
    if (record.kind !== 'approval' || !record.channel) return undefined;
    const r = await this.client.chat.postMessage({ channel: record.channel.replace(/^#/, ''), ...approvalBlocks(record) } as never);
    return r.ts && r.channel ? { channel: r.channel, ts: r.ts } : undefined;
  }

  async decided(record: ApprovalRecord): Promise<void> {
    if (!record.message) return;
    await this.client.chat.update({ channel: record.message.channel, ts: record.message.ts, ...decidedBlocks(record) } as never);
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
