import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ChangeSchema, FORGES, type Forge, parseInput, type Request, RequestSchema } from './contracts.js';
import { InvalidInputError } from './errors.js';
import type { ThreadNotifier } from './ports.js';
import { redactSecrets } from './redact.js';
import { approvalThreadText } from './slack.js';

/**
 * Human approvals and external callbacks on Step Functions task tokens (DESIGN §6).
 *
 * A `lambda:invoke.waitForTaskToken` state calls {@link requestApproval}: the task token is stored
 * under an opaque id (`APPROVAL#<id>`), never shown to anyone, and a message with Approve/Reject
 * buttons that carry only the id goes to the channel. {@link decideApproval} checks who decides,
 * makes the decision single-use with one conditional write, and completes the task
 * (SendTaskSuccess / SendTaskFailure) before it answers.
 */

/** `approval`: a person decides; `ci`: the team's CI reports a result through `/webhooks/ci`. */
export const CALLBACK_KINDS = ['approval', 'ci'] as const;
export type CallbackKind = (typeof CALLBACK_KINDS)[number];

/** The error a rejection fails the waiting task with; the compiled Catch turns it into the `rejected` outcome. */
export const REJECTED_ERROR = 'ApprovalRejectedError';

/** A forge account or team/group: a GitHub login or `org/team-slug`; a GitLab username or group path. */
const ForgeName = z.strictObject({ forge: z.enum(FORGES), name: z.string().min(1) });
export type ForgeName = z.infer<typeof ForgeName>;

/** Approvers as stored before forges other than GitHub existed: `{ github: logins, teams: org/slug }`. */
function fromGitHubOnly(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || 'users' in value || 'groups' in value) return value;
  const { github = [], teams = [], ...rest } = value as { github?: string[]; teams?: string[] };
  return {
    ...rest,
    users: github.map((name) => ({ forge: 'github', name })),
    groups: teams.map((name) => ({ forge: 'github', name })),
  };
}

/**
 * Who may decide, resolved from a workflow's `approvers:` list and the environment's groups.
 * Records written before GitLab was supported (`{ slack, github, teams }`) are read as GitHub users
 * and teams.
 */
export const ApproversSchema = z.preprocess(
  fromGitHubOnly,
  z.strictObject({
    /** Slack user ids (`U024BE7LH`). */
    slack: z.array(z.string()).default([]),
    /** Forge accounts: GitHub logins, GitLab usernames. */
    users: z.array(ForgeName).default([]),
    /** Forge teams and groups: GitHub `org/team-slug`, GitLab group paths (`acme/mobile/leads`). */
    groups: z.array(ForgeName).default([]),
  }),
);
export type Approvers = z.infer<typeof ApproversSchema>;

/**
 * How an approver entry names a forge account: `@octocat` and `@org/team` are GitHub's (the
 * prefix may be left out), `gitlab:@jsmith` and `gitlab:@group/sub` GitLab's. Keyed by forge, so a
 * new forge does not compile until it has a prefix.
 */
export const APPROVER_PREFIX: Record<Forge, string> = { github: 'github:', gitlab: 'gitlab:' };

const forgeEntries = { github: z.array(z.string()).optional(), gitlab: z.array(z.string()).optional() } satisfies Record<Forge, z.ZodType>;

/**
 * Approver groups of an environment (cdk.json `environments.<env>.groups`): Slack user ids, GitHub
 * logins or `@org/team` teams, GitLab usernames or `@group/path` groups.
 */
export const ApproverGroupsSchema = z.record(
  z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'a group name is lower-case letters, digits and dashes'),
  z.strictObject({ slack: z.array(z.string()).default([]), ...forgeEntries }),
);
export type ApproverGroups = z.infer<typeof ApproverGroupsSchema>;

const SLACK_USER = /^[UW][A-Z0-9]{2,}$/;
/**
 * A forge account or team after its prefix: `@name` or `@path/of/team` (GitLab groups nest); a
 * trailing `/` names a top-level GitLab group (`gitlab:@acme/`), which would read as a user without it.
 */
const FORGE_ACCOUNT = /^@([A-Za-z0-9][A-Za-z0-9_.-]*(?:\/[A-Za-z0-9_.-]+)*)(\/)?$/;
/** GitHub teams have exactly one `org/` level; GitLab usernames may hold `.` and `_`. */
const FORGE_SHAPE: Record<Forge, { user: RegExp; group: RegExp }> = {
  github: { user: /^[A-Za-z0-9-]+$/, group: /^[A-Za-z0-9-]+\/[A-Za-z0-9_.-]+$/ },
  gitlab: { user: /^[A-Za-z0-9_.-]+$/, group: /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/ },
};

/** The forge and account an entry names (`@x`, `github:@x`, `gitlab:@x/y`), or undefined. */
function forgeAccount(entry: string): { forge: Forge; name: string; group: boolean } | undefined {
  const forge = FORGES.find((f) => entry.startsWith(APPROVER_PREFIX[f])) ?? (entry.startsWith('@') ? 'github' : undefined);
  if (!forge) return undefined;
  const m = FORGE_ACCOUNT.exec(entry.startsWith('@') ? entry : entry.slice(APPROVER_PREFIX[forge].length));
  const name = m?.[1];
  if (!name) return undefined;
  if (m[2]) return forge === 'gitlab' && FORGE_SHAPE.gitlab.user.test(name) ? { forge, name, group: true } : undefined;
  if (FORGE_SHAPE[forge].user.test(name)) return { forge, name, group: false };
  if (FORGE_SHAPE[forge].group.test(name)) return { forge, name, group: true };
  return undefined;
}

/**
 * Resolves an approver list: a Slack user id (`U024BE7LH`), a GitHub user (`@octocat`) or team
 * (`@acme/mobile-leads`), a GitLab user (`gitlab:@jsmith`) or group (`gitlab:@acme/mobile/leads`;
 * a top-level group with a trailing slash: `gitlab:@acme/`), or the name of a group in `groups`.
 * @throws InvalidInputError naming an entry that is none of these
 */
export function resolveApprovers(entries: readonly string[], groups: ApproverGroups): Approvers {
  const out: Approvers = { slack: [], users: [], groups: [] };
  const add = (entry: string, from: string) => {
    const account = forgeAccount(entry);
    if (SLACK_USER.test(entry)) out.slack.push(entry);
    else if (account) (account.group ? out.groups : out.users).push({ forge: account.forge, name: account.name });
    else {
      throw new InvalidInputError(
        `approver "${entry}"${from} is not a Slack user id (U…), @github-user, @org/team, gitlab:@user, gitlab:@group or a group`,
      );
    }
  };
  for (const entry of entries) {
    const group = groups[entry];
    if (group) {
      for (const s of group.slack) add(s, ` of group ${entry}`);
      for (const forge of FORGES) {
        for (const g of group[forge] ?? []) add(`${APPROVER_PREFIX[forge]}${g.startsWith('@') ? g : `@${g}`}`, ` of group ${entry}`);
      }
    } else if (
      SLACK_USER.test(entry) ||
      forgeAccount(entry) ||
      entry.startsWith('@') ||
      FORGES.some((f) => entry.startsWith(APPROVER_PREFIX[f]))
    ) {
      add(entry, '');
    } else {
      throw new InvalidInputError(`approver group "${entry}" is not defined (add it under groups in the environment config)`);
    }
  }
  const unique = (names: ForgeName[]) => [...new Map(names.map((n) => [`${n.forge}:${n.name.toLowerCase()}`, n])).values()];
  return { slack: [...new Set(out.slack)], users: unique(out.users), groups: unique(out.groups) };
}

/**
 * The actor a person names on the command line or the local API: a Slack user id (`U024BE7LH`),
 * a GitHub login (`@octocat`, `github:@octocat`) or a GitLab username (`gitlab:@jsmith`).
 * @returns undefined when `who` is none of these
 */
export function actorOf(who: string): Actor | undefined {
  if (SLACK_USER.test(who)) return { slack: who };
  const account = forgeAccount(who);
  return account && !account.group ? { user: { forge: account.forge, name: account.name } } : undefined;
}

/** How an approver is shown: `@octocat`, `@acme/leads`, `gitlab:@jsmith`. */
export const approverName = (n: ForgeName): string => (n.forge === 'github' ? `@${n.name}` : `${APPROVER_PREFIX[n.forge]}@${n.name}`);

/**
 * An earlier agent's answer data as a gate carries it (`AgentResult.data`: model output, so
 * untrusted): a flat record of strings of at most 200 characters, numbers, booleans and null.
 */
export const ApprovalDataSchema = z.record(z.string(), z.union([z.string().max(200), z.number(), z.boolean(), z.null()]));
export type ApprovalData = z.infer<typeof ApprovalDataSchema>;

/**
 * Why a gate with `approval.when` asks: the phase whose answer data the condition read, and the
 * condition as written in the workflow (`billing.amount_usd > 100`).
 */
export const ApprovalAboutSchema = z.strictObject({
  phase: z.string().min(1).max(200),
  condition: z.string().min(1).max(500),
});
export type ApprovalAbout = z.infer<typeof ApprovalAboutSchema>;

/**
 * The waiting task's payload (the compiled approval gate sends it). A review run's gate sends
 * `change` (`'change.$': '$.change'`), a request run's `request` (`'request.$': '$.request'`):
 * exactly one of them. A gate with `approval.when` also sends `about` and the answer `data` the
 * condition read (`'data.$': '$.results.<phase key>[0].data'`). Payloads from before request runs
 * (`change` only) parse as they did.
 * @throws (through {@link parseInput}) InvalidInputError naming the field: both or neither of
 * `change` and `request`, or a `ci` gate without `change`
 */
export const RequestApprovalInputSchema = z
  .strictObject({
    taskToken: z.string().min(1).max(2048),
    runId: z.string().min(1),
    workflow: z.string().min(1),
    phase: z.string().min(1),
    kind: z.enum(CALLBACK_KINDS).default('approval'),
    /** Slack channel for the message (`#mobile-leads`); empty for CI callbacks. */
    channel: z.string().default(''),
    approvers: z.array(z.string()).default([]),
    /** The state's TimeoutSeconds: after it the decision is "expired". */
    timeoutSeconds: z.number().int().positive(),
    /** True on the escalation step of `on_timeout: escalate`. */
    escalation: z.boolean().default(false),
    /** A review run's pull or merge request. */
    change: ChangeSchema.optional(),
    /** A request run's request (`/agentflow ask`): who asked and what. */
    request: RequestSchema.optional(),
    /** `approval.when` only: the condition that made the gate ask. */
    about: ApprovalAboutSchema.optional(),
    /** `approval.when` only: the answer data the condition read; null or absent when the agent gave none. */
    data: ApprovalDataSchema.nullable().optional(),
    /**
     * `approval.when` only, instead of `data`: the first result of the phase the condition read
     * (`'result.$': '$.results.<phase key>[0]'`), a path that exists whenever the phase ran, where
     * `[0].data` is missing when the agent failed or gave no data (and a missing path fails the
     * execution before the task starts). Only its `data` is read, when it is flat answer data.
     */
    result: z.record(z.string(), z.unknown()).optional(),
    /**
     * `ci` only: the commit whose report completes the gate (the generated tests' commit of
     * `output.create_files`). @default change.headSha
     */
    commitSha: z.string().min(1).optional(),
  })
  .superRefine((i, ctx) => {
    if ((i.change ? 1 : 0) + (i.request ? 1 : 0) !== 1) {
      ctx.addIssue({ code: 'custom', path: ['change'], message: 'give change (a review run) or request (a request run), not both' });
    }
    if (i.kind === 'ci' && !i.change) {
      ctx.addIssue({ code: 'custom', path: ['kind'], message: 'a ci gate waits for a commit: it needs change (a review run)' });
    }
  });
export type RequestApprovalInput = z.infer<typeof RequestApprovalInputSchema>;

export const APPROVAL_STATUSES = ['PENDING', 'APPROVED', 'REJECTED', 'EXPIRED'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** Where the Slack message is, so it can be updated with the outcome. */
export const MessageRefSchema = z.strictObject({ channel: z.string(), ts: z.string() });
export type MessageRef = z.infer<typeof MessageRefSchema>;

/** Characters of a request's text an approval record keeps (and its message shows). */
export const APPROVAL_REQUEST_CHARS = 200;

/**
 * A request run's request as its approval record keeps it: who asked (`slack:<user id>`,
 * `local:<user>`), the start of the text ({@link APPROVAL_REQUEST_CHARS} characters, secrets
 * redacted first; untrusted: made inert where it is shown) and, for `/agentflow ask`, the Slack
 * thread that is told when the gate asks and when it is decided.
 */
export const ApprovalRequestSchema = z.object({ requester: z.string(), text: z.string(), thread: MessageRefSchema.optional() });
export type ApprovalRequest = z.infer<typeof ApprovalRequestSchema>;

/**
 * An approval (or CI callback) as stored: `pk = APPROVAL#<id>`. The task token never leaves the
 * store. A review run's record names the pull request (`repository`, `number`, `headSha`,
 * `title`); a request run's has `request` instead (the pull request fields empty). Records written
 * before request runs parse as review runs'.
 */
export const ApprovalRecordSchema = z.object({
  id: z.string(),
  kind: z.enum(CALLBACK_KINDS),
  taskToken: z.string(),
  workflow: z.string(),
  execution: z.string(),
  phase: z.string(),
  channel: z.string(),
  approvers: ApproversSchema,
  status: z.enum(APPROVAL_STATUSES),
  createdAt: z.string(),
  /** ISO time after which the decision is "expired" (the state's TimeoutSeconds). */
  deadline: z.string(),
  /** A review run's repository (`owner/name`); empty for a request run. */
  repository: z.string().default(''),
  /** A review run's pull request number; 0 for a request run (and a change without one). */
  number: z.number().default(0),
  /** The pull request's head; for a `ci` gate, the commit CI reports on (the generated tests' commit when there is one). Empty for a request run. */
  headSha: z.string().default(''),
  /** The pull request's title (untrusted: made inert where it is shown). */
  title: z.string().default(''),
  escalation: z.boolean().default(false),
  /** A request run's request: its presence makes the record a request run's. */
  request: ApprovalRequestSchema.optional(),
  /** `approval.when`: the condition that made the gate ask. */
  about: ApprovalAboutSchema.optional(),
  /** `approval.when`: the answer data the condition read (secrets redacted; untrusted). */
  data: ApprovalDataSchema.optional(),
  decidedBy: z.string().optional(),
  decidedAt: z.string().optional(),
  message: MessageRefSchema.optional(),
});
export type ApprovalRecord = z.infer<typeof ApprovalRecordSchema>;

/** What a person (or CI) deciding is known as. */
export interface Actor {
  /** Slack user id, when the decision came from Slack. */
  slack?: string;
  /** A forge account (GitHub login, GitLab username), when it came from a pull or merge request comment. */
  user?: { forge: Forge; name: string };
  /** CI reporting through the signed `/webhooks/ci` route. */
  ci?: boolean;
}

export const actorName = (a: Actor): string => (a.slack ? `<@${a.slack}>` : a.user ? approverName(a.user) : a.ci ? 'CI' : 'unknown');

/** The approval store (DynamoDB `APPROVAL#` items). */
export interface ApprovalStore {
  create(record: ApprovalRecord): Promise<void>;
  get(id: string): Promise<ApprovalRecord | undefined>;
  /**
   * Takes the decision: one conditional write that succeeds only while the record is PENDING and
   * `now` is before its deadline. @returns false when another decision won or it expired
   */
  claim(id: string, status: 'APPROVED' | 'REJECTED', by: string, at: string, now: string): Promise<boolean>;
  /** Undoes {@link claim} when the task could not be told (conditional on the same `by` and `at`). */
  release(id: string, by: string, at: string): Promise<void>;
  /** Marks a pending record whose task is gone as EXPIRED. */
  expire(id: string): Promise<void>;
  /**
   * Lists a created record as pending, with where its message is: called once the message is
   * posted, so a listed approval is always complete.
   */
  activate(id: string, message: MessageRef | undefined): Promise<void>;
  /** Pending records (activated, not decided), soonest deadline first. */
  listPending(): Promise<ApprovalRecord[]>;
  /** The request a waiting state of `execution` made for `phase` (the escalation's when `escalation`). */
  findByRun(execution: string, phase: string, escalation: boolean): Promise<ApprovalRecord | undefined>;
  /** The pending CI callback of a commit, if any. */
  findPendingCi(repository: string, headSha: string): Promise<ApprovalRecord | undefined>;
}

/** Why a task could not be completed: SFN `TaskTimedOut`, `InvalidToken`, `TaskDoesNotExist`. */
export class TaskCallbackError extends Error {
  constructor(
    readonly reason: 'timed-out' | 'invalid',
    message: string,
  ) {
    super(message);
    this.name = 'TaskCallbackError';
  }
}

/** Completes waiting tasks (Step Functions SendTaskSuccess / SendTaskFailure; the local engine's promises). */
export interface TaskCallbacks {
  /** @throws TaskCallbackError when the task timed out or the token is no longer valid; other errors are transient */
  succeed(taskToken: string, output: Record<string, unknown>): Promise<void>;
  /** @throws TaskCallbackError as {@link succeed} */
  fail(taskToken: string, error: string, cause: string): Promise<void>;
}

/** Posts the approval message and updates it with the outcome (Slack Web API; printed locally). */
export interface ApprovalNotifier {
  /** Posts the request; buttons carry only `record.id`. @returns where the message is, when it was posted */
  request(record: ApprovalRecord): Promise<MessageRef | undefined>;
  /** Updates the message with the outcome and who decided. */
  decided(record: ApprovalRecord): Promise<void>;
}

/**
 * Answers whether an account is an active member of a team or group on one forge (GitHub:
 * `org/team-slug`; GitLab: a group path, inherited membership included).
 */
export interface TeamDirectory {
  /** @returns false when the account or the team does not exist; @throws the forge's error for anything else */
  isMember(team: string, login: string): Promise<boolean>;
}

/** One {@link TeamDirectory} per forge (a forge without one: its teams never match). */
export type TeamDirectories = Partial<Record<Forge, TeamDirectory>>;

export interface RequestApprovalDeps {
  approvals: ApprovalStore;
  notifier: ApprovalNotifier;
  /**
   * Tells a request run's Slack thread that its gate waits and how it was decided
   * ({@link approvalThreadText}). @default - the thread is not told
   */
  threads?: ThreadNotifier;
  groups: ApproverGroups;
  now?: () => Date;
  /** @default 12 random bytes, base64url (16 characters) */
  newId?: () => string;
}

/**
 * What an approval record keeps of a request: the requester and the text's start, secrets
 * redacted over the whole text first (so a secret is not cut in two and missed).
 */
async function requestExcerpt(request: Request): Promise<ApprovalRequest> {
  const clean = (await redactSecrets(request.text)).text;
  const text = clean.length > APPROVAL_REQUEST_CHARS ? `${clean.slice(0, APPROVAL_REQUEST_CHARS - 1)}…` : clean;
  return { requester: request.requester, text, ...(request.thread ? { thread: request.thread } : {}) };
}

/**
 * Replies in a request run's Slack thread what its approval now is ({@link approvalThreadText});
 * a review run's record (no thread) is not told. A post that fails is ignored: the thread is a
 * courtesy to the requester, the gate goes on without it.
 */
async function tellRequester(threads: ThreadNotifier | undefined, record: ApprovalRecord): Promise<void> {
  const thread = record.request?.thread;
  if (!thread || !threads) return;
  try {
    await threads.reply(thread, approvalThreadText(record));
  } catch {
    // Ignored: see above.
  }
}

/** The answer data a gate was sent: `data`, else the `data` of `result` when it is flat answer data. */
function dataOf(input: Pick<RequestApprovalInput, 'data' | 'result'>): ApprovalData | undefined {
  if (input.data) return input.data;
  const parsed = ApprovalDataSchema.safeParse(input.result?.data);
  return parsed.success ? parsed.data : undefined;
}

/** Answer data with secrets redacted from its string values (it is shown in a Slack channel). */
async function redactData(data: ApprovalData): Promise<ApprovalData> {
  const entries = await Promise.all(
    Object.entries(data).map(async ([k, v]) => [k, typeof v === 'string' ? (await redactSecrets(v)).text.slice(0, 200) : v] as const),
  );
  return Object.fromEntries(entries);
}

/**
 * RequestApproval (the waiting task's Lambda): stores the task token under a new opaque id and
 * posts the message. Returns the id; Step Functions ignores the return value and waits for the
 * callback or the state's TimeoutSeconds. A review run's record names the pull request; a request
 * run's keeps who asked and the request's first {@link APPROVAL_REQUEST_CHARS} characters; a
 * `when:` gate's keeps the condition and the answer data (secrets redacted from both). A request
 * run with a Slack thread (`/agentflow ask`) is told there that it waits (`deps.threads`).
 * @throws InvalidInputError on a bad payload or an unknown approver group
 *
 * @example
 * ```ts
 * await requestApproval(
 *   { taskToken, runId: 'req-1', workflow: 'support-triage', phase: 'refund-approval', channel: '#support-leads',
 *     approvers: ['support-leads'], timeoutSeconds: 14_400, request: { text: 'Refund order 1234', requester: 'slack:U0CUST' },
 *     about: { phase: 'billing', condition: 'billing.amount_usd > 100' }, data: { amount_usd: 150 } },
 *   { approvals, notifier, groups },
 * ); // { approvalId: 'q1w2e3r4t5y6u7i8' }
 * ```
 */
export async function requestApproval(raw: unknown, deps: RequestApprovalDeps): Promise<{ approvalId: string }> {
  const input = parseInput(RequestApprovalInputSchema, raw, 'RequestApproval');
  const now = (deps.now ?? (() => new Date()))();
  const id = (deps.newId ?? (() => randomBytes(12).toString('base64url')))();
  const subject = input.change
    ? {
        repository: input.change.repository,
        number: input.change.number,
        // A ci gate is found by the commit CI reports on: the generated tests' commit when there is one.
        headSha: (input.kind === 'ci' ? input.commitSha : undefined) ?? input.change.headSha,
        title: input.change.title,
      }
    : { repository: '', number: 0, headSha: '', title: '' };
  const data = dataOf(input);
  const record: ApprovalRecord = {
    id,
    kind: input.kind,
    taskToken: input.taskToken,
    workflow: input.workflow,
    execution: input.runId,
    phase: input.phase,
    channel: input.channel,
    approvers: resolveApprovers(input.approvers, deps.groups),
    status: 'PENDING',
    createdAt: now.toISOString(),
    deadline: new Date(now.getTime() + input.timeoutSeconds * 1000).toISOString(),
    ...subject,
    escalation: input.escalation,
    ...(input.request ? { request: await requestExcerpt(input.request) } : {}),
    ...(input.about ? { about: input.about } : {}),
    ...(data ? { data: await redactData(data) } : {}),
  };
  await deps.approvals.create(record);
  await deps.approvals.activate(id, await deps.notifier.request(record));
  await tellRequester(deps.threads, record);
  return { approvalId: id };
}

/** The payload of the compiled gate's timeout path: mark the timed-out request expired. */
export const ExpireApprovalInputSchema = z.strictObject({
  action: z.literal('expire'),
  runId: z.string().min(1),
  phase: z.string().min(1),
  escalation: z.boolean().default(false),
});

/** Whether a RequestApproval payload is the timeout path's `expire` action. */
export const isExpireAction = (raw: unknown): boolean => (raw as { action?: unknown } | null)?.action === 'expire';

/**
 * ExpireApproval (the gate's timeout path, same Lambda as RequestApproval): marks the state's
 * still-pending request EXPIRED and updates its message, so nobody is left looking at buttons that
 * can no longer work; a request run's thread is told nobody decided in time.
 * @returns whether a pending request was expired
 */
export async function expireApproval(
  raw: unknown,
  deps: Pick<RequestApprovalDeps, 'approvals' | 'notifier' | 'threads'>,
): Promise<{ expired: boolean }> {
  const input = parseInput(ExpireApprovalInputSchema, raw, 'ExpireApproval');
  const record = await deps.approvals.findByRun(input.runId, input.phase, input.escalation);
  if (record?.status !== 'PENDING') return { expired: false };
  await deps.approvals.expire(record.id);
  const expired: ApprovalRecord = { ...record, status: 'EXPIRED' };
  await Promise.all([deps.notifier.decided(expired), tellRequester(deps.threads, expired)]);
  return { expired: true };
}

export interface DecideDeps {
  approvals: ApprovalStore;
  callbacks: TaskCallbacks;
  notifier: ApprovalNotifier;
  /** Tells a request run's Slack thread the decision. @default - the thread is not told */
  threads?: ThreadNotifier;
  teams?: TeamDirectories;
  now?: () => Date;
}

/**
 * Updates the approval message and tells a request run's thread, side by side (the Slack ingress
 * answers within 3 s); neither failure fails the decision.
 */
async function told(deps: Pick<DecideDeps, 'notifier' | 'threads'>, record: ApprovalRecord): Promise<void> {
  await Promise.all([deps.notifier.decided(record).catch(() => undefined), tellRequester(deps.threads, record)]);
}

/** The result of {@link decideApproval}; `message` is what the person is told. */
export interface Decision {
  outcome: 'approved' | 'rejected' | 'already-decided' | 'expired' | 'forbidden' | 'unknown' | 'retry';
  message: string;
  approval?: Pick<ApprovalRecord, 'id' | 'workflow' | 'execution' | 'phase'>;
}

/** Whether `actor` may decide `record`. */
export async function mayDecide(record: ApprovalRecord, actor: Actor, teams?: TeamDirectories): Promise<boolean> {
  if (record.kind === 'ci') return actor.ci === true;
  if (actor.slack) return record.approvers.slack.includes(actor.slack);
  const user = actor.user;
  if (user) {
    const same = (n: ForgeName) => n.forge === user.forge;
    if (record.approvers.users.some((n) => same(n) && n.name.toLowerCase() === user.name.toLowerCase())) return true;
    const directory = teams?.[user.forge];
    for (const group of record.approvers.groups.filter(same))
      if (directory && (await directory.isMember(group.name, user.name))) return true;
  }
  return false;
}

/**
 * Decides an approval (or completes a CI callback) once.
 *
 * Order: unknown id → `unknown`; a decider who is not an approver → `forbidden` (nothing written,
 * the token untouched); already decided → `already-decided`; past the deadline → `expired` (marked
 * EXPIRED and the message updated); then
 * the conditional claim (a concurrent decision loses here); then SendTaskSuccess
 * (`{ outcome, by, at, approvalId, ...output }`) or SendTaskFailure (`ApprovalRejectedError`,
 * cause = the same JSON); `TaskTimedOut`/`InvalidToken` mark it EXPIRED and answer `expired`;
 * any other failure undoes the claim and answers `retry`. The message is updated last, and a
 * request run's thread told the outcome at the same time (a failure of either is ignored).
 */
export async function decideApproval(
  id: string,
  decision: 'approve' | 'reject',
  actor: Actor,
  deps: DecideDeps,
  output: Record<string, unknown> = {},
): Promise<Decision> {
  const now = (deps.now ?? (() => new Date()))();
  const record = await deps.approvals.get(id);
  if (!record) return { outcome: 'unknown', message: `No approval ${id} exists.` };
  const approval = { id, workflow: record.workflow, execution: record.execution, phase: record.phase };
  const what = `${record.workflow} › ${record.phase}`;
  if (!(await mayDecide(record, actor, deps.teams))) {
    return { outcome: 'forbidden', message: `${actorName(actor)} is not an approver of ${what}.`, approval };
  }
  const decided = (r: ApprovalRecord): Decision => ({
    outcome: 'already-decided',
    message: `${what} was already decided: ${r.status.toLowerCase()} by ${r.decidedBy ?? 'someone'}.`,
    approval,
  });
  const expired: Decision = { outcome: 'expired', message: `${what} expired at ${record.deadline}; nothing was changed.`, approval };
  if (record.status === 'EXPIRED') return expired;
  if (record.status !== 'PENDING') return decided(record);
  if (now.getTime() >= Date.parse(record.deadline)) {
    // The state timed out without a decision: mark it and show it on the message and in the thread.
    await deps.approvals.expire(id);
    await told(deps, { ...record, status: 'EXPIRED' });
    return expired;
  }

  const status = decision === 'approve' ? 'APPROVED' : 'REJECTED';
  const by = actorName(actor);
  const at = now.toISOString();
  if (!(await deps.approvals.claim(id, status, by, at, at))) {
    const current = await deps.approvals.get(id);
    if (current && (current.status === 'APPROVED' || current.status === 'REJECTED')) return decided(current);
    return expired;
  }
  const result = { ...output, outcome: decision === 'approve' ? 'approved' : 'rejected', by, at, approvalId: id };
  try {
    if (decision === 'approve') await deps.callbacks.succeed(record.taskToken, result);
    else await deps.callbacks.fail(record.taskToken, REJECTED_ERROR, JSON.stringify(result));
  } catch (e) {
    if (e instanceof TaskCallbackError) {
      await deps.approvals.expire(id);
      await told(deps, { ...record, status: 'EXPIRED' });
      return expired;
    }
    await deps.approvals.release(id, by, at);
    return { outcome: 'retry', message: `Could not deliver the decision on ${what} (${(e as Error).name}); try again.`, approval };
  }
  await told(deps, { ...record, status, decidedBy: by, decidedAt: at });
  return { outcome: result.outcome as 'approved' | 'rejected', message: `${what}: ${result.outcome} by ${by}.`, approval };
}

/** A pending approval as `agentflow approvals` lists it (no task token). */
export interface PendingApproval {
  id: string;
  kind: CallbackKind;
  workflow: string;
  execution: string;
  phase: string;
  channel: string;
  deadline: string;
  repository: string;
  number: number;
  /** A request run's requester (`slack:<user id>`); absent for a review run. */
  requester?: string;
}

/** A record as {@link listApprovals} shows it: no task token, no request text or answer data. */
export const toPending = (r: ApprovalRecord): PendingApproval => ({
  id: r.id,
  kind: r.kind,
  workflow: r.workflow,
  execution: r.execution,
  phase: r.phase,
  channel: r.channel,
  deadline: r.deadline,
  repository: r.repository,
  number: r.number,
  ...(r.request ? { requester: r.request.requester } : {}),
});

/** Pending approvals whose deadline has not passed (a timed-out task's record stays PENDING until swept). */
export async function listApprovals(store: ApprovalStore, now: Date = new Date()): Promise<PendingApproval[]> {
  return (await store.listPending()).filter((r) => Date.parse(r.deadline) > now.getTime()).map(toPending);
}
