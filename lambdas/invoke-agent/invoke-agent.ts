import { type AnswerFormat, FINDINGS_FORMAT, formatTokens, TESTS_FORMAT } from '../core/answer-format.js';
import { type BudgetPool, budgetScopes, fromMicro, POOL_GROWTH, toMicro } from '../core/budget.js';
import {
  type AgentItem,
  type AgentOutput,
  type AgentResult,
  AgentResultSchema,
  type ContextArtifact,
  ContextArtifactSchema,
  type Finding,
  FindingSchema,
  type GeneratedFile,
  type GuardrailSettings,
  type InvokeAgentInput,
  InvokeAgentInputSchema,
  MAX_ATTEMPTS_KEPT,
  type ModelAnswer,
  type ModelRef,
  parseInput,
  type TestsAnswer,
} from '../core/contracts.js';
import { BudgetExceededError, InvalidInputError, PriceUnknownError, ProviderRejectedError } from '../core/errors.js';
import { type GatewayAnswer, type GatewayCall, type ModelGateway, worstCaseOf } from '../core/gateway.js';
import type { BudgetConfig } from '../core/gateway-config.js';
import { type GeneratedFilesArtifact, screenGeneratedFiles } from '../core/generated-files.js';
import { knownTo, ReviewStateSchema } from '../core/incremental.js';
import { answerTokens, candidatesOf, chunkTokensFor, promptTokens, shareMicro, verdictTokens } from '../core/plan.js';
import { mapLimited } from '../core/pool.js';
import type { ArtifactStore, ChatMessage } from '../core/ports.js';
import {
  chunkMessage,
  earlierFindings,
  guidanceSection,
  parseAnswer,
  parseTestsAnswer,
  repairMessages,
  salvageFindings,
  salvageItems,
  systemPrompt,
} from '../core/prompt.js';
import { redactAnswer, redactSecrets } from '../core/redact.js';
import { reviewFindings } from '../core/report.js';
import { requestTokens, TOKENIZER_OF, type TokenizerFamily } from '../core/tokenizer.js';
import { type Chunk, estimateTokens, layoutChunks } from '../core/tokens.js';
import { runToolLoop } from '../core/tool-loop.js';
import type { Toolbox, ToolCallRecord } from '../core/tools.js';
import { splitRepository } from '../core/triggers.js';
import {
  parseVerdicts,
  VERDICTS_FORMAT,
  type Verdict,
  type VerdictAnswer,
  VerdictSchema,
  type VerdictsArtifact,
  type VerifyBatch,
  verifierSystemPrompt,
  verifyBatches,
  verifyMessage,
} from '../core/verify.js';
import { type AgentToolsOptions, agentToolbox, requesterOf } from './agent-tools.js';
import { type GuardrailChoice, localGuardrailFor, runAnswerAgent, runGuardrailAgent, toolCallsKey } from './answer-agent.js';
import { agentPool, SpendMeter } from './meter.js';

export interface InvokeAgentDeps extends AgentToolsOptions {
  artifacts: ArtifactStore;
  /** Every model call goes through the gateway (budgets, breaker, fallback, cache, rate limits). */
  gateway: ModelGateway;
  /** The environment's budget limits. */
  budgets: BudgetConfig;
  now?: () => number;
  /** Instant (ms since the epoch) by which the agent must finish; in Lambda, its remaining time minus a margin. @default now + 10 minutes */
  deadlineMs?: () => number;
  /** Chunks of one agent in flight at once (the gateway's rate limits still apply per provider). @default {@link CHUNK_CONCURRENCY} */
  concurrency?: number;
  /**
   * The guardrail of a `guardrail` step's settings and the name its results show as model.
   * @default the local rules ({@link localGuardrailFor}); the cloud handler uses Bedrock Guardrails when configured
   */
  guardrailFor?: (settings: GuardrailSettings) => GuardrailChoice;
}

/** Chunks of one agent sent at once by default. */
export const CHUNK_CONCURRENCY = 4;

/** Artifact key of an agent's findings. */
export const findingsKey = (runId: string, phase: string, agent: string) => `runs/${runId}/findings/${phase}/${agent}.json`;

/** Artifact key of the verifier's verdicts. */
export const verdictsKey = (runId: string, phase: string, agent: string) => `runs/${runId}/verdicts/${phase}/${agent}.json`;

/** Artifact key of the test files an `output: tests` agent wrote (see `GeneratedFilesArtifact`). */
export const filesKey = (runId: string, phase: string, agent: string) => `runs/${runId}/files/${phase}/${agent}.json`;

/** What an agent of some output kind answers with. */
type KindAnswer = ModelAnswer | VerdictAnswer | TestsAnswer;

/** How a review agent's output kind is asked for and read. */
interface OutputKind {
  system(agent: AgentItem): string;
  format: AnswerFormat;
  parse(text: string): { ok: true; answer: KindAnswer } | { ok: false; problem: string };
  /** The whole items before the cut of an answer cut at max_tokens, or undefined when none can be kept. */
  salvage(text: string): KindAnswer | undefined;
}

/**
 * How each kind of agent runs: a review kind reviews the change's chunks ({@link OutputKind}), a
 * request kind (`answer`, `route`, `guardrail`) answers or checks a person's request. A new kind
 * does not compile until it is wired here.
 */
type AgentKind =
  | { readonly review: OutputKind }
  | { readonly request: (input: InvokeAgentInput, deps: InvokeAgentDeps) => Promise<AgentResult> };
const OUTPUTS: Record<AgentOutput, AgentKind> = {
  findings: {
    review: {
      system: systemPrompt,
      format: FINDINGS_FORMAT,
      parse: parseAnswer,
      salvage: (text) => {
        const findings = salvageFindings(text);
        return findings.length > 0 ? { summary: '', findings } : undefined;
      },
    },
  },
  // A document cut off is not the document: nothing is kept.
  document: { review: { system: systemPrompt, format: FINDINGS_FORMAT, parse: parseAnswer, salvage: () => undefined } },
  // A test file cut off would not compile: nothing is kept.
  tests: { review: { system: systemPrompt, format: TESTS_FORMAT, parse: parseTestsAnswer, salvage: () => undefined } },
  verdicts: {
    review: {
      system: verifierSystemPrompt,
      format: VERDICTS_FORMAT,
      parse: parseVerdicts,
      salvage: (text) => {
        const verdicts = salvageItems(text, 'verdicts', VerdictSchema);
        return verdicts.length > 0 ? { verdicts } : undefined;
      },
    },
  },
  answer: { request: runAnswerAgent },
  route: { request: runAnswerAgent },
  guardrail: { request: runGuardrailAgent },
};

/**
 * The verifier's batches over the earlier phases' findings: placed and merged per result in the
 * results' order, as Aggregate does (`reviewFindings`), then cut into batches of `size` with the
 * code each cites. File-level findings (line 0) cite no line and are not sent: they stay as they are.
 */
function verifyBatchesOf(
  prior: ReadonlyArray<{ agent: string; findings: readonly Finding[] }>,
  files: ContextArtifact['files'],
  size?: number,
  known: (f: Finding) => boolean = () => false,
): Array<Chunk & VerifyBatch> {
  const { findings } = reviewFindings(prior, files);
  return verifyBatches(
    findings.filter((f) => f.line > 0 && !known(f)),
    files,
    size,
  );
}

/** Artifact key of the Markdown document an `output: document` agent writes. */
export const documentKey = (runId: string, phase: string, agent: string) => `runs/${runId}/documents/${phase}/${agent}.md`;

/** The findings of earlier phases' agents, per result in their order (`previous` holds their small results with findings refs). */
async function previousFindings(
  previous: Record<string, unknown>,
  artifacts: ArtifactStore,
): Promise<Array<{ agent: string; findings: Finding[] }>> {
  const results = Object.values(previous)
    .flatMap((v) => (Array.isArray(v) ? v : []))
    .map((r) => AgentResultSchema.safeParse(r))
    .flatMap((r) => (r.success && r.data.status !== 'failed' && r.data.findingsRef ? [r.data] : []));
  const out: Array<{ agent: string; findings: Finding[] }> = [];
  for (const r of results) {
    const stored = (await artifacts.getJson(r.findingsRef as string)) as { findings?: unknown };
    out.push({
      agent: r.name,
      findings: FindingSchema.array()
        .catch([])
        .parse(stored.findings ?? []),
    });
  }
  return out;
}

/**
 * InvokeAgent: runs one agent (one Map iteration) by its output kind ({@link OUTPUTS}): a review
 * kind reviews the run's change ({@link reviewAgent}); `answer` and `route` agents answer a person's
 * request ({@link runAnswerAgent}); a `guardrail` step checks the request or an answer
 * ({@link runGuardrailAgent}).
 *
 * @throws InvalidInputError on a bad Map item, a review kind without `contextRef`, a request kind without `request`
 * @throws what the kind's function throws (see each)
 */
export async function invokeAgent(raw: unknown, deps: InvokeAgentDeps): Promise<AgentResult> {
  const input: InvokeAgentInput = parseInput(InvokeAgentInputSchema, raw, 'InvokeAgent');
  const kind = OUTPUTS[input.agent.output];
  return 'review' in kind ? reviewAgent(input, deps, kind.review) : kind.request(input, deps);
}

/**
 * Reviews the run's context with one agent, following the review plan.
 *
 * Each kind of agent output is one entry of an exhaustive table (system prompt, answer format sent
 * as structured output, parser, what a cut-off answer keeps): `findings`, `document` and `tests`
 * agents review chunks of the diff (a `tests` agent's files are screened — path, size, secrets —
 * and stored under `runs/<run>/files/…`, `filesRef`, for `output.create_files` to commit); the verifier (`verdicts`, the workflow's `verify:`) checks the earlier
 * phases' findings in batches with the code they cite, writes its verdicts by finding key
 * (`runs/<run>/verdicts/…`, applied by Aggregate), and is bound by the run budget rather than a share.
 *
 * The plan (made by LoadContext) names the files the agent reviews, in review order, and how
 * they are chunked; the agent's share of the run budget is fixed before it starts (`shareMicro`:
 * shares of all agents add up to at most the run limit), less what earlier invocations of the same
 * agent spent. Chunks are sent up to {@link CHUNK_CONCURRENCY} at a time through the model gateway
 * (budgets, circuit breakers, fallback, cache, rate limits), each only while its worst case fits
 * in what is left of the share (else the cheaper fallbacks that fit, else the chunk is not
 * reviewed); each answer is validated against the findings schema (one repair prompt on an invalid
 * answer). Every call's settled cost is written to the agent's spend record as it happens.
 *
 * With tools (`agent.tools`), each chunk's model call is a tool loop ({@link runToolLoop}: the answer
 * format in the prompt, `max_iterations`, the sooner of the task's deadline and `time_limit`): the
 * share holds the first call's worst case (the gateway's budget scopes bound every iteration), the
 * loop's final text is parsed as without tools, and a loop that stopped first leaves its chunk not
 * reviewed with the reason. The tool calls are stored under `runs/<run>/tools/…` (`toolCallsRef`).
 *
 * Outcome: `succeeded` (every chunk reviewed), `partial` (some chunks cut by the budget; the files
 * not reviewed are listed in the findings artifact), `failed` (returned, not thrown, when the
 * budget left no chunk reviewed: "not reviewed: budget", with no provider call beyond the share).
 *
 * @throws InvalidInputError when the input has no `contextRef`
 * @throws CircuitOpenError | PriceUnknownError | BudgetUnavailableError (no call made for that chunk)
 * @throws ProviderThrottledError | ProviderUnavailableError | ProviderTimeoutError (retryable; every candidate failed)
 * @throws ProviderRejectedError when the provider refuses the request or the answer is still invalid
 *   after the repair prompt (the raw answer is stored under `runs/<run>/raw/...`)
 * @throws ProviderAuthError when every candidate refused the credentials
 *   — in every case after the chunks in flight finished and their spend was recorded.
 */
async function reviewAgent(input: InvokeAgentInput, deps: InvokeAgentDeps, kind: OutputKind): Promise<AgentResult> {
  const now = deps.now ?? Date.now;
  const started = now();
  const { agent } = input;
  if (!input.contextRef) {
    throw new InvalidInputError(`InvokeAgent: agent "${agent.name}" (output: ${agent.output}) reviews a change: give contextRef`);
  }
  const context = ContextArtifactSchema.parse(await deps.artifacts.getJson(input.contextRef));
  const toolbox = agentToolbox(agent, { change: context.change, files: context.files }, deps);
  const opened: { pool?: BudgetPool } = {};
  try {
    return await reviewWith(input, deps, kind, context, toolbox, started, opened);
  } finally {
    // The pool's bookkeeping lands and its leftovers are released before the task returns.
    // The pool is settled even when closing the tools fails (that error still ends the task, as before).
    try {
      await toolbox?.close();
    } finally {
      await opened.pool?.close();
    }
  }
}

/** {@link reviewAgent} once the context is read and the agent's tools (if any) are ready. */
async function reviewWith(
  input: InvokeAgentInput,
  deps: InvokeAgentDeps,
  kind: OutputKind,
  context: ContextArtifact,
  toolbox: Toolbox | undefined,
  started: number,
  opened: { pool?: BudgetPool },
): Promise<AgentResult> {
  const now = deps.now ?? Date.now;
  const { agent } = input;
  const taskDeadline = deps.deadlineMs?.() ?? started + 10 * 60_000;
  // A tool loop also keeps to the agent's time limit.
  const deadlineMs = toolbox ? Math.min(taskDeadline, started + agent.timeLimitSeconds * 1000) : taskDeadline;
  const requester = requesterOf(input.request, context.change);
  const { primary, candidates, routing } = candidatesOf(agent, context.stats);
  const project = input.budget.project ?? splitRepository(context.change.repository).repo;
  const scopes = budgetScopes(deps.budgets, {
    runId: input.runId,
    project,
    maxUsdPerRun: input.budget.maxUsdPerRun,
    now: new Date(started),
  });
  const runLimit = scopes.find((s) => s.kind === 'run')?.limitMicro;
  const planned = context.plan?.agents.find((a) => a.name === agent.name && a.phase === input.phase);
  // The verifier runs after every other phase: the run budget (enforced by the gateway) bounds it,
  // not a share kept from the reviewers, who have finished.
  const share =
    context.plan && agent.output !== 'verdicts'
      ? shareMicro(context.plan.agents, agent.name, input.phase, runLimit)
      : Number.POSITIVE_INFINITY;
  // The agent's held budget, at most its share: most calls take their worst case from it with no
  // write. Its first hold (room for the first part's worst case, twice) is reserved now, while the
  // agent reads its earlier findings and spend, so the first call finds room.
  const pool = agentPool(
    deps.gateway,
    scopes,
    share,
    planned ? { estimateMicro: POOL_GROWTH * toMicro(planned.firstChunkUsd), deadlineMs } : undefined,
  );
  if (pool) opened.pool = pool;
  const files = planned ? planned.files.flatMap((i) => context.files[i] ?? []) : context.files;
  const chunkTokens = planned?.chunkTokens ?? chunkTokensFor(agent, candidates, promptTokens(agent, context.change));
  const prior = await previousFindings(input.previous, deps.artifacts);
  // Reviewers follow the repository's guidance; the verifier checks findings against the code only.
  const system = kind.system(agent) + (agent.output === 'verdicts' ? '' : guidanceSection(context.repo));
  // The verifier checks the earlier findings (placed and merged as Aggregate will, so its verdicts
  // find them), in batches; every other agent reviews chunks of the diff with those findings as context.
  // An incremental re-review does not check again what an earlier review of the pull request
  // confirmed (a full review, `/agentflow review --full`, checks everything again).
  const known =
    agent.output === 'verdicts' && context.incremental && !context.incremental.full
      ? knownTo(
          ReviewStateSchema.safeParse(await deps.artifacts.getJson(context.incremental.previousRef).catch(() => undefined)).data,
          context.files,
        )
      : () => false;
  const batches = agent.output === 'verdicts' ? verifyBatchesOf(prior, context.files, agent.verify?.batch, known) : undefined;
  const earlier = batches ? '' : earlierFindings(prior.flatMap((r) => r.findings.map((finding) => ({ agent: r.agent, finding }))));
  const chunks: readonly Chunk[] = batches ?? (files.length > 0 ? layoutChunks(files, chunkTokens) : []);
  const meter = await SpendMeter.open(deps.artifacts, { runId: input.runId, phase: input.phase, agent: agent.name }, primary, started);
  const spentBefore = meter.spentBefore;
  const available = share - spentBefore;
  // Earlier invocations of this agent spent part of its share.
  pool?.limit(available);
  // This invocation's accounting; every answer is added as it arrives.
  const mine = meter.mine;
  // Every model call is accounted in the spend record as it settles (each iteration of a tool loop too).
  const metered = meter.gateway(deps.gateway);
  const toolCalls: ToolCallRecord[] = [];
  let iterations = 0;

  // Worst cases held against the share by calls in flight, plus the settled cost of finished ones.
  let committed = 0;
  let settled = 0;
  let inFlight = 0;
  // Resolved (and replaced) whenever a call in flight finishes, so a chunk waiting for room re-checks.
  const signal = () => {
    let resolve = () => {};
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    return { promise, resolve };
  };
  let finished = signal();
  const done = () => {
    inFlight--;
    finished.resolve();
    finished = signal();
  };
  /** Asks the gateway when the call's worst case fits in what is left of the share; `refused` when it cannot. */
  const ask = async (messages: ChatMessage[], maxTokens: number): Promise<GatewayAnswer | { refused: string }> => {
    // Tokenized once per family for the whole call (the gateway reuses the counts).
    const inputTokens: Partial<Record<TokenizerFamily, number>> = {};
    const prompt: Partial<Record<TokenizerFamily, number>> = {};
    for (const c of candidates) {
      const family = TOKENIZER_OF[c.provider];
      prompt[family] ??= requestTokens(c.provider, system, messages);
      // The answer format is billed input too (a tool's schema, Claude's tool-use prompt): the most any candidate of the family sends.
      inputTokens[family] = Math.max(inputTokens[family] ?? 0, prompt[family] + formatTokens(kind.format, c.provider, c.structuredOutput));
    }
    const call = { system, messages, maxTokens, inputTokens };
    const cost = (c: ModelRef) => (c.price ? worstCaseOf(call, c) : Number.POSITIVE_INFINITY);
    let fits = candidates.filter((c) => committed + cost(c) <= available);
    // Calls in flight hold their worst case; when the settled spend alone leaves room, wait for them.
    while (fits.length === 0 && inFlight > 0 && candidates.some((c) => settled + cost(c) <= available)) {
      await finished.promise;
      // Another chunk failed the agent while this one waited for room: send nothing more.
      if (failure !== undefined) return { refused: '' };
      fits = candidates.filter((c) => committed + cost(c) <= available);
    }
    if (fits.length === 0) {
      const spent = fromMicro(spentBefore + settled).toFixed(4);
      return {
        refused: `budget: its share of the run budget ($${fromMicro(Math.max(0, share)).toFixed(4)}) has no room for the next part ($${spent} spent, the part may cost up to $${fromMicro(Math.min(...candidates.map(cost))).toFixed(4)})`,
      };
    }
    // The hold covers the dearest candidate that may answer (the gateway falls back on a failure).
    const hold = Math.max(...fits.map(cost));
    committed += hold;
    inFlight++;
    const request: GatewayCall = {
      candidates: fits,
      system,
      messages,
      maxTokens,
      temperature: agent.temperature,
      scopes,
      cache: agent.cache,
      cacheIf: (text) => kind.parse(text).ok,
      // A tool loop ends in text: its answer format is in the system prompt only.
      ...(toolbox ? {} : { answerFormat: kind.format }),
      labels: { workflow: input.workflow, agent: agent.name, project },
      deadlineMs,
      inputTokens,
      ...(pool ? { pool } : {}),
    };
    try {
      if (toolbox) {
        const loop = await runToolLoop(metered, request, toolbox, {
          maxIterations: agent.maxIterations,
          ...(requester ? { requester } : {}),
          now,
        });
        toolCalls.push(...loop.calls);
        iterations += loop.iterations;
        committed += loop.costMicro - hold;
        settled += loop.costMicro;
        if (loop.status === 'partial' || !loop.last) return { refused: `tool loop: ${loop.reason ?? 'no answer'}` };
        return { ...loop.last, text: loop.text, costMicro: loop.costMicro, costUsd: loop.costUsd };
      }
      const a = await metered.complete(request);
      committed += a.costMicro - hold;
      settled += a.costMicro;
      iterations++;
      return a;
    } catch (e) {
      committed -= hold;
      const made = (e as { toolCalls?: unknown }).toolCalls;
      if (Array.isArray(made)) toolCalls.push(...(made as ToolCallRecord[]));
      if (e instanceof BudgetExceededError) return { refused: `budget: ${e.message.replace(/ \[attempts:.*$/, '')}` };
      throw e;
    } finally {
      done();
    }
  };

  // The most tokens every candidate model can write (its max_output); unknown: the agent's max_tokens.
  const outputCap = Math.min(...candidates.map((c) => c.maxOutput ?? agent.maxTokens));
  const findings: Finding[][] = chunks.map(() => []);
  const verdicts: Verdict[][] = chunks.map(() => []);
  // Verifier batches answered without a verdict for every finding.
  let incomplete = 0;
  const documents: string[] = [];
  const generated: GeneratedFile[][] = chunks.map(() => []);
  const notReviewed = new Set<string>();
  const reviewed = new Set<string>();
  const reasons = new Set<string>();
  let reviewedChunks = 0;
  let answerRedactions = 0;
  const rawAnswers = new Set<string>();
  let rejection: Error | undefined;
  let failure: unknown;
  const skip = (chunk: (typeof chunks)[number], why?: string) => {
    if (why) reasons.add(why);
    for (const p of chunk.paths) notReviewed.add(p);
  };
  await mapLimited(chunks, deps.concurrency ?? CHUNK_CONCURRENCY, async (chunk, i) => {
    if (failure !== undefined) return skip(chunk);
    const maxTokens = batches
      ? verdictTokens(agent, Object.keys(batches[i]?.ids ?? {}).length)
      : planned
        ? answerTokens(agent, estimateTokens(chunk.text))
        : agent.maxTokens;
    const messages: ChatMessage[] = [
      {
        role: 'user',
        content: batches
          ? verifyMessage(context.change, chunk.text, i, chunks.length)
          : chunkMessage(agent, context.change, chunk.text, i, chunks.length, earlier),
      },
    ];
    try {
      let first = await ask(messages, maxTokens);
      if ('refused' in first) return skip(chunk, first.refused);
      let parsed = kind.parse(first.text);
      if (!parsed.ok && first.truncated) {
        // Cut at max_tokens: asking the same again would be cut again. Ask once with room up to
        // what every candidate model can write (max_output), then keep the findings before a cut
        // that remains (the prompt asks for the most severe first) and say so.
        mine.truncated++;
        const room = Math.min(outputCap, maxTokens * 4);
        const retried = room > maxTokens && failure === undefined;
        if (retried) {
          const again = await ask(messages, room);
          if (!('refused' in again)) {
            first = again;
            parsed = kind.parse(again.text);
          }
        }
        if (!parsed.ok && first.truncated) {
          // Still cut: keep the whole items before the cut (findings, or the verifier's verdicts);
          // with none, the part is not reviewed — never asked again with the same max_tokens.
          const salvaged = kind.salvage(first.text);
          if (!salvaged) {
            return skip(chunk, `answer cut at max_tokens (${maxTokens}${retried ? `, then ${room}` : ''} tokens) before a whole item`);
          }
          parsed = { ok: true, answer: salvaged };
        }
      }
      if (!parsed.ok) {
        mine.repairs++;
        if (failure !== undefined) return skip(chunk);
        // The answer goes back to a model: redacted like everything else sent to one. It is kept
        // (redacted), and where it is shows in the report.
        const answered = (await redactSecrets(first.text)).text;
        const rawKey = `runs/${input.runId}/raw/${input.phase}/${agent.name}-part${i + 1}.txt`;
        await deps.artifacts.putText(rawKey, answered);
        rawAnswers.add(deps.artifacts.where(rawKey));
        const second = await ask(repairMessages(messages, answered, parsed.problem), maxTokens);
        if ('refused' in second) return skip(chunk, second.refused);
        parsed = kind.parse(second.text);
        if (!parsed.ok) {
          await deps.artifacts.putText(
            rawKey,
            (await redactSecrets(`${first.text}\n\n--- after the repair prompt ---\n\n${second.text}`)).text,
          );
          throw new ProviderRejectedError(
            `${agent.name}: ${second.model.alias} answered in an invalid format twice (${parsed.problem}); raw answer at ${deps.artifacts.where(rawKey)}`,
            second.model.provider,
          );
        }
      }
      // Model output is scanned again before it is stored, given to later phases or posted.
      if ('verdicts' in parsed.answer) {
        // Only verdicts on this batch's ids count; a batch missing some leaves those unverified.
        const ids = batches?.[i]?.ids ?? {};
        const given = parsed.answer.verdicts.filter((v) => ids[v.id] !== undefined);
        const redacted = await redactSecrets(given.map((v) => v.reason.replace(/[\r\n]+/g, ' ')).join('\n'));
        answerRedactions += redacted.count;
        const lines = redacted.text.split('\n');
        verdicts[i] = given.map((v, j) => ({ ...v, reason: lines[j] ?? '' }));
        const missing = Object.keys(ids).filter((id) => !given.some((v) => v.id === id)).length;
        if (missing > 0) {
          incomplete++;
          reasons.add(`no verdict for ${missing} finding${missing === 1 ? '' : 's'} of part ${i + 1}`);
        }
      } else {
        // Test files are screened as a whole (a file with a secret is refused, never redacted into the commit).
        if ('files' in parsed.answer) generated[i] = parsed.answer.files;
        const { files: _, ...review } = parsed.answer as TestsAnswer;
        const clean = await redactAnswer(review);
        answerRedactions += clean.count;
        findings[i] = clean.answer.findings;
        if (clean.answer.document) documents[i] = clean.answer.document;
      }
      reviewedChunks++;
      for (const p of chunk.paths) reviewed.add(p);
    } catch (e) {
      if (e instanceof ProviderRejectedError || e instanceof PriceUnknownError) {
        // This chunk's request or answer is at fault, not the provider: the other chunks go on.
        rejection ??= e;
        return skip(chunk, `${e.name}: ${e.message.replace(/ \[attempts:.*$/s, '')}`);
      }
      // Provider down, breaker open, budget table unreachable: the agent fails (Step Functions retries the retryable ones).
      failure ??= e;
      skip(chunk);
    }
  });
  // A file is reviewed only when all its parts were.
  for (const p of notReviewed) reviewed.delete(p);
  // What the tools were asked, kept even when the agent fails (a write tool may have acted).
  const toolCallsRef = toolbox
    ? await deps.artifacts
        .putJson(toolCallsKey(input.runId, input.phase, agent.name), toolCalls)
        .catch((e: unknown) => (failure === undefined ? Promise.reject(e) : undefined))
    : undefined;
  if (failure !== undefined) {
    mine.error = `${(failure as Error).name}: ${(failure as Error).message}`.slice(0, 500);
    await meter.save(true);
    throw failure;
  }
  // The last write must land: without it the run would under-report what this agent spent.
  await meter.save(true);

  const all = findings.flat();
  const docs = documents.filter(Boolean);
  const documentRef =
    agent.output === 'document' && docs.length > 0
      ? await deps.artifacts.putText(documentKey(input.runId, input.phase, agent.name), docs.join('\n\n---\n\n'), 'text/markdown')
      : undefined;
  const filesRef =
    agent.output === 'tests'
      ? await deps.artifacts.putJson(filesKey(input.runId, input.phase, agent.name), {
          agent: agent.name,
          ...(await screenGeneratedFiles(generated.flat())),
        } satisfies GeneratedFilesArtifact)
      : undefined;
  const unreached = files.map((f) => f.path).filter((p) => notReviewed.has(p));
  const reason = reasons.size > 0 ? [...reasons].join('; ') : undefined;
  const findingsRef = await deps.artifacts.putJson(findingsKey(input.runId, input.phase, agent.name), {
    agent: agent.name,
    phase: input.phase,
    model: meter.answeredBy.alias,
    findings: all,
    notReviewed: unreached,
    ...(reason ? { notReviewedReason: reason } : {}),
    /** Secrets found in the model's answers and redacted before anything was stored. */
    answerRedactions,
  });
  const verdictsRef = batches
    ? await deps.artifacts.putJson(verdictsKey(input.runId, input.phase, agent.name), {
        verdicts: Object.fromEntries(
          batches.flatMap((b, i) =>
            (verdicts[i] ?? []).flatMap((v) => {
              const key = b.ids[v.id];
              return key ? [[key, { confirmed: v.confirmed, reason: v.reason }] as const] : [];
            }),
          ),
        ),
        // Findings that got a verdict (a batch that failed checked nothing).
        checked: verdicts.reduce((n, v) => n + v.length, 0),
        action: agent.verify?.unconfirmed ?? 'drop',
      } satisfies VerdictsArtifact)
    : undefined;
  // The verifier succeeded only when every batch got a verdict for every finding.
  const status: AgentResult['status'] = batches
    ? reviewedChunks === chunks.length && incomplete === 0
      ? 'succeeded'
      : reviewedChunks > 0
        ? 'partial'
        : 'failed'
    : unreached.length === 0
      ? 'succeeded'
      : reviewedChunks > 0
        ? 'partial'
        : 'failed';
  return {
    name: agent.name,
    phase: input.phase,
    status,
    provider: meter.answeredBy.provider,
    model: meter.answeredBy.alias,
    inputTokens: meter.usage.inputTokens + meter.usage.cacheReadTokens + meter.usage.cacheWriteTokens,
    outputTokens: meter.usage.outputTokens,
    cachedTokens: meter.usage.cacheReadTokens,
    costUsd: fromMicro(mine.costMicro),
    findings: all.length,
    findingsRef,
    ...(documentRef ? { documentRef } : {}),
    ...(verdictsRef ? { verdictsRef } : {}),
    ...(filesRef ? { filesRef } : {}),
    chunks: chunks.length,
    repaired: mine.repairs > 0,
    repairs: mine.repairs,
    truncated: mine.truncated,
    rawAnswers: [...rawAnswers].slice(0, 10),
    ...(meter.servedBy ? { servedBy: meter.servedBy } : {}),
    durationMs: now() - started,
    calls: mine.calls,
    cacheHits: mine.cacheHits,
    fallbackUsed: meter.fallbackUsed,
    ...(routing ? { routing } : {}),
    attempts: meter.attempts.slice(-MAX_ATTEMPTS_KEPT),
    filesReviewed: reviewed.size,
    filesNotReviewed: unreached.length,
    ...(reason ? { notReviewed: reason } : {}),
    ...(Number.isFinite(share) ? { shareUsd: fromMicro(share) } : {}),
    toolCalls: toolCalls.length,
    toolErrors: toolCalls.filter((c) => !c.ok).length,
    iterations,
    ...(toolCallsRef ? { toolCallsRef } : {}),
    ...(status === 'failed'
      ? {
          error: rejection
            ? { Error: rejection.name, Cause: rejection.message.replace(/ \[attempts:.*$/s, '') }
            : { Error: 'BudgetExceededError', Cause: `not reviewed: ${reason ?? 'budget'}` },
        }
      : {}),
  };
}
