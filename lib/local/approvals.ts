import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type ApprovalNotifier,
  type ApprovalRecord,
  approverName,
  type MessageRef,
  TaskCallbackError,
  type TaskCallbacks,
} from '../../lambdas/core/approvals.js';
import type { ThreadNotifier } from '../../lambdas/core/ports.js';
import { approvalBlocks, decidedBlocks } from '../../lambdas/core/slack.js';

interface Waiting {
  resolve: (output: unknown) => void;
  reject: (error: Error) => void;
  deadline: number;
}

/**
 * The local engine's task tokens: a waiting Task state's override registers a promise under a
 * fresh token; {@link succeed} and {@link fail} settle it, as SendTaskSuccess/SendTaskFailure do
 * in the cloud. A token past its deadline answers `TaskTimedOut` (the engine has already failed
 * the state with `States.Timeout`), an unknown or used token `InvalidToken`.
 */
export class LocalTaskCallbacks implements TaskCallbacks {
  private readonly waiting = new Map<string, Waiting>();

  /** Registers a waiting task; the promise settles on the callback. */
  wait(token: string, timeoutSeconds: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiting.set(token, { resolve, reject, deadline: Date.now() + timeoutSeconds * 1000 });
    });
  }

  private take(token: string): Waiting {
    const w = this.waiting.get(token);
    if (!w) throw new TaskCallbackError('invalid', 'the task token is no longer valid (InvalidToken)');
    this.waiting.delete(token);
    if (Date.now() >= w.deadline) throw new TaskCallbackError('timed-out', 'the task timed out (TaskTimedOut)');
    return w;
  }

  async succeed(taskToken: string, output: Record<string, unknown>): Promise<void> {
    this.take(taskToken).resolve(output);
  }

  async fail(taskToken: string, error: string, cause: string): Promise<void> {
    const e = new Error(cause);
    e.name = error;
    this.take(taskToken).reject(e);
  }
}

/** A message as the local notifier keeps it: what Slack would show. */
export interface LocalMessage {
  id: string;
  channel: string;
  ts: string;
  text: string;
  blocks: unknown[];
  updated: boolean;
}

/**
 * The local stand-in for the Slack message: prints the request (with the command that decides it)
 * through `print`, keeps the Block Kit message as Slack would show it (for tests and `serve`),
 * and appends every post and update to `outbox` (JSON Lines) when given.
 */
export class LocalApprovalNotifier implements ApprovalNotifier, ThreadNotifier {
  readonly messages = new Map<string, LocalMessage>();
  private seq = 0;
  /**
   * Where a CI gate's report goes (`agentflow serve`'s `/webhooks/ci`) and the secret it is signed
   * with (`AGENTFLOW_CI_SECRET`), printed with the commit CI reports on. @default - the route's path only
   */
  ciCallback?: { url: string; secret?: string };

  constructor(
    private readonly print: (line: string) => void,
    private readonly outbox?: string,
  ) {}

  private write(kind: string, m: LocalMessage): void {
    if (!this.outbox) return;
    mkdirSync(dirname(this.outbox), { recursive: true });
    appendFileSync(this.outbox, `${JSON.stringify({ kind, ...m })}\n`);
  }

  /** Starts a manual run's thread (printed, and written to the outbox as `thread`). */
  async start(channel: string, text: string): Promise<{ channel: string; ts: string } | undefined> {
    const ts = `${Math.floor(Date.now() / 1000)}.${String(++this.seq).padStart(6, '0')}`;
    this.write('thread', { id: ts, channel, ts, text, blocks: [], updated: false });
    this.print(`💬 ${channel}: ${text}`);
    return { channel, ts };
  }

  /** Replies in a manual run's thread (printed, and written to the outbox as `reply` with `thread_ts`). */
  async reply(thread: { channel: string; ts: string }, text: string): Promise<void> {
    this.replies.push({ ...thread, text });
    this.write('reply', { id: thread.ts, channel: thread.channel, ts: thread.ts, text, blocks: [], updated: false });
    this.print(`💬 ${thread.channel} (thread ${thread.ts}): ${text}`);
  }

  /** Replaces a thread's first message (printed, and written to the outbox as `update`). */
  async update(message: { channel: string; ts: string }, text: string): Promise<void> {
    this.updates.push({ ...message, text });
    this.write('update', { id: message.ts, channel: message.channel, ts: message.ts, text, blocks: [], updated: true });
    this.print(`💬 ${message.channel} (updated ${message.ts}): ${text}`);
  }

  /** The first messages replaced, in order (tests read them). */
  readonly updates: Array<{ channel: string; ts: string; text: string }> = [];

  /** The thread replies posted, in order (tests read them). */
  readonly replies: Array<{ channel: string; ts: string; text: string }> = [];

  async request(record: ApprovalRecord): Promise<MessageRef | undefined> {
    if (record.kind === 'ci') {
      const report = JSON.stringify({ repository: record.repository, sha: record.headSha, conclusion: 'success' });
      const where = this.ciCallback
        ? `POST ${this.ciCallback.url} ${report} with header x-agentflow-signature-256: sha256=<HMAC-SHA256 of the body, key ${this.ciCallback.secret ? `"${this.ciCallback.secret}"` : 'AGENTFLOW_CI_SECRET (not set: the route answers 503)'}>`
        : `POST /webhooks/ci ${report} on agentflow serve, signed with AGENTFLOW_CI_SECRET`;
      this.print(`⏸ ${record.workflow} › ${record.phase}: waiting for CI to report on ${record.headSha.slice(0, 12)}: ${where}`);
      return undefined;
    }
    const ts = `${Math.floor(Date.now() / 1000)}.${String(++this.seq).padStart(6, '0')}`;
    const m: LocalMessage = { id: record.id, channel: record.channel, ts, ...approvalBlocks(record), updated: false };
    this.messages.set(record.id, m);
    this.write('post', m);
    const who = [...record.approvers.slack, ...record.approvers.users.map(approverName), ...record.approvers.groups.map(approverName)];
    this.print(
      `⏸ ${record.workflow} › ${record.phase}: approval ${record.id} asked in ${record.channel} of ${who.join(', ')} (until ${record.deadline}); decide with: npx agentflow approve ${record.id} [--reject] --as ${record.approvers.slack[0] ?? '<user>'}`,
    );
    return { channel: record.channel, ts };
  }

  async decided(record: ApprovalRecord): Promise<void> {
    const before = this.messages.get(record.id);
    if (!before) return;
    const m: LocalMessage = { ...before, ...decidedBlocks(record), updated: true };
    this.messages.set(record.id, m);
    this.write('update', m);
    this.print(`▶ ${m.text}`);
  }
}
