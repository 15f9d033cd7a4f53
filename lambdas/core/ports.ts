import type { AnswerFormat } from './answer-format.js';
import type { CheckResult } from './checks.js';
import type { Change, ChangedFile, Forge, Provider, RunRecord, StructuredOutput } from './contracts.js';
import type { InlineReview } from './review.js';
import type { SarifLog } from './sarif.js';

/**
 * Ports: what the use cases need from the outside world. Adapters in `lambdas/adapters`
 * implement them with AWS SDK, Octokit and provider clients (cloud) or local equivalents.
 */

/** Stores JSON and text artifacts by key (S3 in the cloud, a folder locally). */
export interface ArtifactStore {
  putJson(key: string, value: unknown): Promise<string>;
  getJson(key: string): Promise<unknown>;
  putText(key: string, text: string, contentType?: string): Promise<string>;
  getText(key: string): Promise<string>;
  /** Where a person finds `key`: the absolute file path locally, `s3://<bucket>/<key>` in the cloud. */
  where(key: string): string;
}

/** Lists the files a pull request changes, with their patches. */
export interface ChangeSource {
  /** @throws Error when the repository or commits cannot be read */
  listChangedFiles(change: Change): Promise<ChangedFile[]>;
  /**
   * A text file at the change's head commit, or undefined when it does not exist (for the coverage
   * summary, see {@link COVERAGE_SUMMARY_PATH}).
   */
  readHeadFile(change: Change, path: string): Promise<string | undefined>;
}

/**
 * One message to a chat model. A tool loop adds the model's tool calls to its `assistant` message
 * and the tools' results to the next `user` message (Bedrock Converse `toolUse` / `toolResult`
 * blocks; OpenAI `tool_calls` and `role: tool` messages).
 */
export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
  /** `assistant` only: the tools the model asked for. */
  toolCalls?: ToolCall[];
  /** `user` only: the results of the previous message's tool calls, by id. */
  toolResults?: ToolResultMessage[];
}

/** A tool a model may call: its name (`[a-zA-Z0-9_-]{1,64}`), what it does, and its input's JSON Schema (an object). */
export interface ToolSpec {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
}

/** A model's request to call a tool: the provider's call id, the tool and its input. */
export interface ToolCall {
  id: string;
  name: string;
  input: unknown;
}

/** A tool's result given back to the model for the call `id`. */
export interface ToolResultMessage {
  id: string;
  /** The tool's output, or why it failed (redacted and capped: see `core/tools.ts`). */
  content: string;
  isError?: boolean;
}

/** A request to a model. `maxTokens` bounds the answer. */
export interface ModelRequest {
  modelId: string;
  system: string;
  messages: ChatMessage[];
  maxTokens: number;
  temperature: number;
  /** Abort the call after this many ms (ProviderTimeoutError). @default the client's timeout */
  timeoutMs?: number;
  /**
   * The shape the answer must have. Bedrock and OpenAI enforce it natively (a forced tool; a strict
   * `json_schema` response format) and answer with its JSON as `text`; `openai-compatible` as
   * {@link structuredOutput} says. @default - none: the prompt alone describes the answer
   */
  answerFormat?: AnswerFormat;
  /**
   * What the target model supports for {@link answerFormat} (`structured_output` in models.yml;
   * read by `openai-compatible` only). @default 'prompt'
   */
  structuredOutput?: StructuredOutput;
  /** Tools the model may call instead of answering (a tool loop); not with {@link answerFormat}. @default none */
  tools?: ToolSpec[];
}

/** Token usage as the provider reported it. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
}

/** A model's answer. `servedBy` names a stand-in server (the offline model) when one answered. */
export interface ModelResponse {
  text: string;
  usage: TokenUsage;
  /** The answer was cut at `maxTokens` (OpenAI `finish_reason: "length"`, Bedrock `stopReason: "max_tokens"`). */
  truncated?: boolean;
  servedBy?: string;
  /** The tools the model asked for (Bedrock `stopReason: "tool_use"`, OpenAI `finish_reason: "tool_calls"`); `text` is what it said besides. */
  toolCalls?: ToolCall[];
}

/**
 * A model provider.
 * @throws ProviderThrottledError | ProviderUnavailableError | ProviderTimeoutError (retryable)
 * @throws ProviderRejectedError | ProviderAuthError (not retryable)
 */
export interface ModelProvider {
  complete(request: ModelRequest): Promise<ModelResponse>;
}

/** Every provider wired: a missing one does not compile. */
export type ProviderTable = Record<Provider, ModelProvider>;

/** When {@link ForgePublisher.completeCheck} may create a check run this run did not start. */
export type CheckCreate = 'always' | 'if-none' | 'never';

/**
 * Publishes a run's review on the change's forge (or, locally, writes what it would post): the
 * summary comment, the inline review and the check run. Everything a run writes on a forge goes
 * through this port; use cases pick the forge's publisher from a {@link ForgeTable}.
 *
 * @example
 * ```ts
 * const url = await publisher.upsertComment(change, commentMarker('pr-review'), body);
 * const posted = await publisher.postReview(change, commentMarker('pr-review'), review);
 * ```
 */
export interface ForgePublisher {
  /** Creates or updates the one comment carrying `marker`; returns its URL or path. */
  upsertComment(change: Change, marker: string, body: string): Promise<string | null>;
  /**
   * Posts one review whose comments sit on the diff's lines (GitHub: a pull request review with
   * `event: COMMENT`). A finding whose comment is already on the change (its key, the fingerprint,
   * is in the comment's hidden marker) is never posted again; the comments of `review.resolved`
   * findings are answered as resolved once. A forge that refuses a comment (HTTP 422) gets the
   * review again without inline comments: their findings are in the summary comment and report.
   * `marker` (the workflow's, as for the summary) starts the review's body. GitLab has no review
   * object: one diff discussion per comment, positioned on the change's base, start and head SHAs;
   * a discussion GitLab refuses (HTTP 400) is left out and the others are posted; the summary note
   * carries the marker and the review's body.
   * @returns where the review is, what was posted now and which findings are on the change
   */
  postReview(change: Change, marker: string, review: InlineReview): Promise<PostedReview>;
  /**
   * The feedback on AgentFlow's inline comments of the change: reactions and dismissals
   * (`/agentflow dismiss` or `@agentflow dismiss` replying to the comment, from someone with write
   * access). Read at the start of a run, so a dismissed finding is never raised again.
   */
  readFeedback(change: Change): Promise<FindingFeedback[]>;
  /** Starts run `runId`'s check run `name` on the change's head commit (`in_progress`, `external_id` the run id). */
  startCheck(change: Change, name: string, runId: string): Promise<void>;
  /**
   * Concludes run `runId`'s check run `name` on the change's head commit, with its annotations sent
   * 50 per request (`ANNOTATIONS_PER_REQUEST`). GitLab: a commit status of that name (success,
   * failed, skipped for neutral, canceled), no annotations (the findings are the discussions). A check run of this run already concluded is left
   * as it is (a retry). Without one: `create: 'always'` creates it concluded, `'if-none'` only when
   * the commit has no check run of that name yet (a skip never hides an earlier conclusion),
   * `'never'` leaves it (nothing was started).
   * @returns where the check run is, or null when none was written
   */
  completeCheck(change: Change, name: string, runId: string, result: CheckResult, create: CheckCreate): Promise<string | null>;
  /**
   * Uploads `sarif` (SARIF 2.1.0, see `buildSarif`) as workflow `workflow`'s code scanning analysis
   * of the change's head commit (GitHub: gzip + base64, `commit_sha` the head, `ref` the pull
   * request's `refs/pull/<n>/head`, or `refs/heads/<headRef>` for a change without one).
   * @returns where the upload is (its status URL, or the local file), or null when the change has no ref to upload for
   * @throws the forge's error (a token without `security_events: write`, code scanning off: 403)
   */
  uploadCodeScanning(change: Change, workflow: string, sarif: SarifLog): Promise<string | null>;
  /**
   * Commits `request.files` on top of the change's head commit (parent: the head SHA, tree: the
   * head's tree with the files added or replaced) to `request.branch` — created, or moved (forced)
   * when it exists — and opens a draft pull request from it against the change's head branch
   * unless one is open already; with `pushToPullRequest`, moves the pull request's own head branch
   * instead (fast-forward only). Locally: a branch of the local repository, the working tree and
   * the current branch untouched.
   *
   * @example
   * ```ts
   * const c = await publisher.commitFiles(change, { branch: testsBranch(change), message, files, pushToPullRequest: false });
   * // → { branch: 'agentflow/tests/42-0a1b2c3', sha: '…', url: 'https://github.com/o/r/pull/43', pullRequest: 43 }
   * ```
   * @throws ForkPushRefusedError for a change from a fork (or one not known not to be a fork): nothing is
   *   committed (locally only `pushToPullRequest` is refused; the local repository runs no CI)
   * @throws the forge's error (a token without `contents: write` / `pull_requests: write`: 403; a head that moved: 422)
   */
  commitFiles(change: Change, request: CommitRequest): Promise<CommittedFiles>;
}

/** What {@link ForgePublisher.commitFiles} commits, and where. */
export interface CommitRequest {
  /** The branch to commit to (`agentflow/tests/<pr>-<short sha>`); ignored with `pushToPullRequest`. */
  readonly branch: string;
  readonly message: string;
  /** Repository-relative paths (checked: see `generated-files.ts`) and UTF-8 contents. */
  readonly files: ReadonlyArray<{ readonly path: string; readonly content: string }>;
  /** Commit to the pull request's own head branch instead of `branch` (never for a fork). @default false */
  readonly pushToPullRequest?: boolean;
}

/** Where {@link ForgePublisher.commitFiles} committed. */
export interface CommittedFiles {
  /** The branch the commit is on (without `refs/heads/`). */
  branch: string;
  /** The new commit's SHA. */
  sha: string;
  /** Where to see it: the draft pull request, else the branch (locally: the branch name and repository path). */
  url: string;
  /** The draft pull request's number (opened now or already open), when one is. */
  pullRequest?: number;
}

/**
 * What people said about one of AgentFlow's inline comments on the change (read by the next run):
 * 👍 / 👎 reactions and dismissals.
 */
export interface FindingFeedback {
  /** The finding's key (its fingerprint) from the comment's hidden marker. */
  key: string;
  /** 👍 reactions on the comment (AgentFlow's own excluded). */
  up: number;
  /** 👎 reactions on the comment. */
  down: number;
  /** Who dismissed it with a reply `/agentflow dismiss` or `@agentflow dismiss`, when that person may (write access). */
  dismissedBy?: string;
  /** A person resolved its thread (AgentFlow's own resolutions excluded): counted as accepted. */
  resolved?: boolean;
}

/** What {@link ForgePublisher.postReview} did. */
export interface PostedReview {
  /** Where the review is, or null when nothing new was posted. */
  url: string | null;
  /** Inline comments posted now. */
  comments: number;
  /** Keys (fingerprints) of the review's findings whose comment is on the pull request now, posted before or now. */
  keys: string[];
  /** Resolved findings whose comment was answered now. */
  resolved: number;
}

/** One publisher per forge: a forge added to `FORGES` does not compile until it has one. */
export type ForgeTable = Record<Forge, ForgePublisher>;

/** Run records (DynamoDB `RUN#` items). */
export interface RunStore {
  put(record: RunRecord): Promise<void>;
  /** Writes `record` only if the run has no record yet. @returns false when one exists (it is kept) */
  create(record: RunRecord): Promise<boolean>;
  get(runId: string): Promise<RunRecord | undefined>;
  list(limit?: number): Promise<RunRecord[]>;
}

/**
 * Posts a manual run's or a request's Slack thread: the message it was started with, then its
 * outcome (and a request's answer) as replies.
 * Texts are plain (the adapter escapes them for Slack).
 */
export interface ThreadNotifier {
  /** Posts `text` in `channel`. @returns where the message is, or undefined when it could not be posted */
  start(channel: string, text: string): Promise<{ channel: string; ts: string } | undefined>;
  /** Replies `text` in the thread of `thread`. */
  reply(thread: { channel: string; ts: string }, text: string): Promise<void>;
  /**
   * Replaces the text of the thread's first message (`chat.update`): a request's "Working on…"
   * becomes its outcome. @default not offered: the outcome is a reply instead
   *
   * @example
   * ```ts
   * await threads.update?.(request.thread, requestOutcomeText({ status: 'SUCCEEDED', ... }));
   * ```
   */
  update?(message: { channel: string; ts: string }, text: string): Promise<void>;
}

/**
 * Posts a message in a Slack channel: a run's summary (`output.slack`) or its failure (the
 * `fallback: - notify:` channel). Unlike {@link ThreadNotifier.start} it throws what Slack answered,
 * so the run record says why a post is missing. Texts are Slack mrkdwn whose data is escaped
 * (`slackText`): no mention or link comes from a pull request or a model.
 *
 * @example
 * ```ts
 * await channels.post('#mobile-reviews', runSummaryText({ ... }));
 * ```
 */
export interface ChannelNotifier {
  /**
   * Posts `text` in `channel` (a name, with or without `#`, or a channel id).
   * @returns where the message is
   * @throws the Slack client's error (`not_in_channel`, `channel_not_found`, a timeout…)
   */
  post(channel: string, text: string): Promise<{ channel: string; ts: string }>;
}

/** Starts executions of a workflow's state machine. */
export interface ExecutionStarter {
  /**
   * Starts one execution named `name`.
   * @returns `started: false` when an execution of that name already exists (a redelivery)
   */
  start(workflow: string, name: string, input: unknown): Promise<{ name: string; started: boolean }>;
  /** The status of an execution (`RUNNING`, `SUCCEEDED`, …), or undefined when none has that name. */
  status?(workflow: string, name: string): Promise<string | undefined>;
}

/** JSON a {@link DeliveryGuard} can store as a result. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** What {@link DeliveryGuard.once} found. */
export type OnceOutcome<T> = { inProgress: false; duplicate: boolean; result: T } | { inProgress: true };

/**
 * Runs the work for one delivery id at most once (the Powertools idempotency record in DynamoDB).
 */
export interface DeliveryGuard {
  /**
   * Runs `work` once per `key`. A key whose work finished gives its stored result with
   * `duplicate: true`; a key whose work runs elsewhere right now gives `inProgress: true`. When
   * `work` throws, nothing is kept (the error is rethrown), so a redelivery runs it again; a
   * record left by a crash stops blocking once `remainingMs` (the Lambda's remaining time) passes.
   */
  once<T extends JsonValue>(key: string, work: () => Promise<T>, remainingMs: number): Promise<OnceOutcome<T>>;
  /**
   * Forgets the finished keys whose stored result `matches`, so their next delivery runs the work
   * again (a run its process lost in a crash). @returns how many were forgotten
   */
  forget(matches: (result: JsonValue) => boolean): Promise<number>;
}

/** Resolves what a command names into the change a run reviews. */
export interface ChangeLookup {
  /** The pull request's current head and base. @throws Error when it does not exist */
  pullRequest(repository: string, number: number): Promise<Change>;
  /** Two refs (branch, tag or SHA) as a change without a pull request (`number: 0`). @throws Error when a ref does not resolve */
  refs(repository: string, base: string, head: string): Promise<Change>;
}
