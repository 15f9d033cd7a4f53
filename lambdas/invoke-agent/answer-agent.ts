import {
  answerSystemPrompt,
  declaresDataFields,
  type EarlierAnswer,
  parseAgentAnswer,
  parseRouteAnswer,
  requestMessage,
  routeSystemPrompt,
} from '../core/answer.js';
import { budgetScopes, fromMicro } from '../core/budget.js';
import {
  type AgentItem,
  type AgentResult,
  AgentResultSchema,
  type GuardrailSettings,
  type InvokeAgentInput,
  MAX_ATTEMPTS_KEPT,
  type ModelRef,
  type Request,
} from '../core/contracts.js';
import { BudgetExceededError, InvalidInputError, PriceUnknownError, ProviderRejectedError } from '../core/errors.js';
import type { GatewayAnswer, GatewayCall } from '../core/gateway.js';
import {
  type Guardrail,
  type GuardrailIntervention,
  type GuardrailResult,
  type GuardrailSource,
  LocalGuardrail,
  type LocalPiiType,
} from '../core/guardrails.js';
import type { ChatMessage } from '../core/ports.js';
import { repairMessages } from '../core/prompt.js';
import { redactSecrets } from '../core/redact.js';
import { runToolLoop, type ToolLoopResult } from '../core/tool-loop.js';
import { type Toolbox, type ToolCallRecord, toolName } from '../core/tools.js';
import { agentToolbox } from './agent-tools.js';
import type { InvokeAgentDeps } from './invoke-agent.js';
import { agentPool, SpendMeter } from './meter.js';

/**
 * The agents of a `request` run (issue 15): `answer` and `route` agents answer the person's
 * request through the model gateway (with their tools, in a tool loop), `guardrail` steps check
 * the request or an answer with no model call.
 */

/** Artifact key of an `answer` agent's answer (Markdown, model output, redacted). */
export const answerKey = (runId: string, phase: string, agent: string) => `runs/${runId}/answers/${phase}/${agent}.md`;

/** Artifact key of an agent's tool call records (`ToolCallRecord[]`, redacted and capped). */
export const toolCallsKey = (runId: string, phase: string, agent: string) => `runs/${runId}/tools/${phase}/${agent}.json`;

/**
 * Artifact key of the text a guardrail step lets through (masked or unchanged): the request
 * (`INPUT`, no `phases`) under `guarded/request/`, an answer under `guarded/answer/`. Later agents
 * read the request from a `guarded/request/` result ({@link isRequestGuardrail}).
 */
export const guardedKey = (runId: string, phase: string, agent: string, of: 'request' | 'answer') =>
  `runs/${runId}/guarded/${of}/${phase}/${agent}.md`;

/** Whether an agent result is a guardrail step's check of the request (its `answerRef` is the request, masked). */
export const isRequestGuardrail = (r: Pick<AgentResult, 'guardrail' | 'answerRef'>): boolean =>
  r.guardrail !== undefined && r.answerRef?.includes('/guarded/request/') === true;

/**
 * The earlier phases' results in `previous` (a Map state's array, or one result), in their order,
 * by phase name (the result's own `phase`: the state's keys are JSONPath-safe, `order-status` is
 * kept under `order_status`); failed ones left out.
 */
function earlierResults(previous: Record<string, unknown>): Array<{ phase: string; result: AgentResult }> {
  return Object.values(previous).flatMap((v) =>
    (Array.isArray(v) ? v : [v]).flatMap((r) => {
      const parsed = AgentResultSchema.safeParse(r);
      return parsed.success && parsed.data.status !== 'failed' ? [{ phase: parsed.data.phase, result: parsed.data }] : [];
    }),
  );
}

/**
 * The request text the agent gets: the text an earlier INPUT guardrail let through (masked), else
 * the request's own; secrets redacted either way (it goes to a model).
 */
async function requestText(input: InvokeAgentInput, request: Request, deps: InvokeAgentDeps): Promise<string> {
  const guarded = earlierResults(input.previous).find((e) => isRequestGuardrail(e.result) && !e.result.guardrail?.blocked);
  const text = guarded?.result.answerRef ? await deps.artifacts.getText(guarded.result.answerRef) : request.text;
  return (await redactSecrets(text)).text;
}

/**
 * The earlier answers the agent reads: those of `agent.reads` in that order, or (no `reads`) every
 * earlier phase's result with an answer except checks of the request.
 */
async function earlierAnswers(agent: AgentItem, input: InvokeAgentInput, deps: InvokeAgentDeps): Promise<EarlierAnswer[]> {
  const results = earlierResults(input.previous).filter((e) => e.result.answerRef && !isRequestGuardrail(e.result));
  const chosen = agent.reads.length > 0 ? agent.reads.flatMap((p) => results.filter((e) => e.phase === p)) : results;
  const out: EarlierAnswer[] = [];
  for (const e of chosen) out.push({ phase: e.phase, text: await deps.artifacts.getText(e.result.answerRef as string) });
  return out;
}

/** The primary model and candidates of a request's agent: `model: auto` takes the agent's declared tier (a request has no change size). */
function candidatesFor(agent: AgentItem): { primary: ModelRef; candidates: ModelRef[]; routing?: string } {
  const primary = agent.auto?.[agent.complexity] ?? agent.model;
  const candidates = [primary, ...agent.fallback.filter((f) => f.modelId !== primary.modelId || f.provider !== primary.provider)];
  return {
    primary,
    candidates,
    ...(agent.auto ? { routing: `auto → ${primary.alias} (${agent.complexity}): the agent's declared complexity (a request)` } : {}),
  };
}

/** One line of an error for a result (`[attempts: …]` details dropped). */
const cause = (e: unknown) => (e instanceof Error ? e.message : String(e)).replace(/ \[attempts:.*$/s, '').slice(0, 1000);

/** The request's agent kinds this module runs. */
type RequestOutput = Extract<AgentItem['output'], 'answer' | 'route'>;

/**
 * Runs an `answer` or `route` agent on a person's request.
 *
 * The system prompt is {@link answerSystemPrompt} / {@link routeSystemPrompt}; the user message is
 * {@link requestMessage} with the request (as an earlier INPUT guardrail masked it) and the earlier
 * phases' answers the agent reads (`reads:`, default every earlier answer), each fenced as data.
 * With tools, the call is a tool loop ({@link runToolLoop}: `max_iterations`, budget, time limit);
 * without, one gateway call, asked again with room up to the models' `max_output` when cut at
 * `max_tokens`, and one repair prompt when an answer object is unreadable. The time
 * limit is the sooner of the task's deadline and `time_limit` seconds from the start.
 *
 * Stores the answer (redacted) under {@link answerKey} (`answer` agents), the tool calls under
 * {@link toolCallsKey}, the spend record after every model call (the result's `costUsd` is its sum).
 * A `route` agent's choice outside `route.choices` takes the default (the state machine routes on
 * it) and says so in `decisionReason`; the agent is `partial` then.
 *
 * Outcome: `succeeded`; `partial` with `stopReason` when the loop stopped first (iteration cap,
 * budget, time, a cut answer, a server that offered no tools), or it answered short of success
 * ({@link shortfalls}: a write tool call failed or was refused, a route outside its choices, a
 * prose answer where the prompt names data fields); `failed` with `error` when the answer
 * stayed unreadable, the budget or the provider refused the call, or a model call failed after tool
 * calls were made (a retry would repeat them).
 *
 * @throws InvalidInputError when the input has no `request`
 * @throws the gateway's other errors (provider down, throttled, breaker open) when no tool was called yet: Step Functions retries them
 */
export async function runAnswerAgent(input: InvokeAgentInput, deps: InvokeAgentDeps): Promise<AgentResult> {
  const now = deps.now ?? Date.now;
  const started = now();
  const { agent, runId, phase } = input;
  const output = agent.output as RequestOutput;
  const request = input.request;
  if (!request) throw new InvalidInputError(`InvokeAgent: agent "${agent.name}" (output: ${output}) answers a request: give request`);
  if (output === 'route' && !agent.route) throw new InvalidInputError(`InvokeAgent: route agent "${agent.name}" has no route choices`);
  const deadlineMs = Math.min(deps.deadlineMs?.() ?? started + 10 * 60_000, started + agent.timeLimitSeconds * 1000);
  const { primary, candidates, routing } = candidatesFor(agent);
  const project = input.budget.project ?? input.workflow;
  const scopes = budgetScopes(deps.budgets, { runId, project, maxUsdPerRun: input.budget.maxUsdPerRun, now: new Date(started) });
  const meter = await SpendMeter.open(deps.artifacts, { runId, phase, agent: agent.name }, primary, started);
  // The agent's held budget: its calls (a tool loop's iterations, a repair) take their worst case from it.
  const pool = agentPool(deps.gateway, scopes);

  const system = output === 'route' ? routeSystemPrompt(agent) : answerSystemPrompt(agent);
  const messages: ChatMessage[] = [
    {
      role: 'user',
      content: requestMessage(
        agent.name,
        request.requester,
        await requestText(input, request, deps),
        await earlierAnswers(agent, input, deps),
      ),
    },
  ];
  // A full answer: a valid route, or an answer object (prose only when the prompt names no data fields).
  const wantsData = declaresDataFields(agent.prompt);
  const readable = (text: string) => {
    if (output === 'route') return parseRouteAnswer(text, agent.route ?? { choices: [], default: '' }).valid;
    const parsed = parseAgentAnswer(text);
    return parsed.ok && !(parsed.prose && wantsData);
  };
  const call: GatewayCall = {
    candidates,
    system,
    messages,
    maxTokens: agent.maxTokens,
    temperature: agent.temperature,
    scopes,
    cache: agent.cache,
    cacheIf: readable,
    labels: { workflow: input.workflow, agent: agent.name, project },
    deadlineMs,
    ...(pool ? { pool } : {}),
  };
  const toolbox = agentToolbox(agent, { previous: input.previous }, deps);
  let ex: Exchange;
  try {
    ex = await exchange(call, {
      agent,
      output,
      readable,
      meter,
      gateway: meter.gateway(deps.gateway),
      toolbox,
      requester: request.requester,
      now,
    });
  } finally {
    // The pool is settled even when closing the tools fails (that error still ends the task, as before).
    try {
      await toolbox?.close();
    } finally {
      await pool?.close();
    }
  }
  if (ex.failure !== undefined) {
    const failure = ex.failure as Error;
    meter.mine.error = `${failure.name}: ${failure.message}`.slice(0, 500);
    await meter.save(true);
    // Nothing was done yet and another try may answer: Step Functions retries it. Once tools acted,
    // a retry would act again; a refused budget, price or request would be refused again.
    const final =
      failure instanceof BudgetExceededError || failure instanceof ProviderRejectedError || failure instanceof PriceUnknownError;
    if (ex.calls.length === 0 && !final) throw failure;
  } else {
    await meter.save(true);
  }
  const toolCallsRef = toolbox ? await deps.artifacts.putJson(toolCallsKey(runId, phase, agent.name), ex.calls) : undefined;
  const base = {
    ...resultBase(agent.name, phase, meter, ex, now() - started),
    ...(routing ? { routing } : {}),
    ...(toolCallsRef ? { toolCallsRef } : {}),
  };
  if (ex.failure !== undefined) {
    return { ...base, status: 'failed', error: { Error: (ex.failure as Error).name ?? 'Error', Cause: cause(ex.failure) } };
  }
  return outcome(input, ex, base, deps);
}

/** What the model exchange of an answer or route agent ended with. */
interface Exchange {
  /** The model's last text (its answer when it answered). */
  readonly text: string;
  readonly calls: readonly ToolCallRecord[];
  /** The tool loop's end, when the agent has tools. */
  readonly loop?: ToolLoopResult;
  /** The last answer was cut at its max_tokens. */
  readonly cut: boolean;
  /** The error that ended it (the tool calls made so far are in `calls`). */
  readonly failure?: unknown;
}

/**
 * The model exchange: a tool loop with tools; without, one call, asked again with room up to the
 * models' max_output when cut, and one repair prompt on an unreadable answer object. Never throws:
 * an error ends it as `failure`.
 */
async function exchange(
  call: GatewayCall,
  o: {
    agent: AgentItem;
    output: RequestOutput;
    readable: (text: string) => boolean;
    meter: SpendMeter;
    gateway: { complete(call: GatewayCall): Promise<GatewayAnswer> };
    toolbox: Toolbox | undefined;
    requester: string;
    now: () => number;
  },
): Promise<Exchange> {
  const { agent, gateway, meter } = o;
  try {
    if (o.toolbox) {
      const loop = await runToolLoop(gateway, call, o.toolbox, { maxIterations: agent.maxIterations, requester: o.requester, now: o.now });
      return { text: loop.text, calls: loop.calls, loop, cut: loop.last?.truncated === true };
    }
    let answer = await gateway.complete(call);
    // Cut at max_tokens: the same question would be cut again. Ask once with room up to what
    // every candidate model can write (max_output), as a review does.
    const room = Math.min(...call.candidates.map((c) => c.maxOutput ?? agent.maxTokens), agent.maxTokens * 4);
    if (answer.truncated && !o.readable(answer.text)) {
      meter.mine.truncated++;
      if (room > agent.maxTokens) answer = await gateway.complete({ ...call, maxTokens: room });
    }
    const first = o.output === 'answer' && !answer.truncated ? parseAgentAnswer(answer.text) : undefined;
    if (!first || first.ok) return { text: answer.text, calls: [], cut: answer.truncated };
    meter.mine.repairs++;
    // The answer goes back to a model: redacted like everything else sent to one.
    const answered = (await redactSecrets(answer.text)).text;
    const repaired = await gateway.complete({ ...call, messages: repairMessages([...call.messages], answered, first.problem) });
    return { text: repaired.text, calls: [], cut: repaired.truncated };
  } catch (e) {
    const made = (e as { toolCalls?: unknown }).toolCalls;
    return { text: '', calls: Array.isArray(made) ? (made as ToolCallRecord[]) : [], cut: false, failure: e };
  }
}

/** The fields of a request agent's result every outcome shares: model, tokens, cost (its spend record), calls, tool counts. */
function resultBase(name: string, phase: string, meter: SpendMeter, ex: Exchange, durationMs: number) {
  return {
    name,
    phase,
    durationMs,
    provider: meter.answeredBy.provider,
    model: meter.answeredBy.alias,
    inputTokens: meter.mine.inputTokens,
    outputTokens: meter.mine.outputTokens,
    cachedTokens: meter.mine.cachedTokens,
    costUsd: fromMicro(meter.mine.costMicro),
    findings: 0,
    chunks: 0,
    repaired: meter.mine.repairs > 0,
    repairs: meter.mine.repairs,
    truncated: meter.mine.truncated + (ex.loop?.last?.truncated ? 1 : 0),
    rawAnswers: [] as string[],
    ...(meter.servedBy ? { servedBy: meter.servedBy } : {}),
    calls: meter.mine.calls,
    cacheHits: meter.mine.cacheHits,
    fallbackUsed: meter.fallbackUsed,
    attempts: meter.attempts.slice(-MAX_ATTEMPTS_KEPT),
    filesReviewed: 0,
    filesNotReviewed: 0,
    toolCalls: ex.calls.length,
    toolErrors: ex.calls.filter((c) => !c.ok).length,
    iterations: ex.loop?.iterations ?? meter.mine.calls + meter.mine.cacheHits,
  } satisfies Omit<AgentResult, 'status'>;
}

/** The names (`<server>__<tool>`) of the tools the agent's servers declare as writes (`allow[].write`). */
const writeTools = (agent: AgentItem): Set<string> =>
  new Set(agent.tools.flatMap((s) => s.allow.filter((a) => a.write).map((a) => toolName(s.name, a.name))));

/**
 * Why a request agent whose exchange completed is short of a success, each one line (none: it
 * succeeded): the tool loop stopped first (its reason); a write tool call failed or was refused
 * (`a write tool call failed: support__issue_refund (<error>)`: what the person asked for may not
 * be done); then `extra`, the answer's own shortfall (a route outside its choices, a prose answer).
 */
function shortfalls(agent: AgentItem, ex: Exchange, extra: readonly string[] = []): string[] {
  const writes = writeTools(agent);
  const failedWrites = ex.calls.filter((c) => !c.ok && writes.has(c.name));
  return [
    ...(ex.loop?.status === 'partial' ? [ex.loop.reason ?? 'stopped'] : []),
    ...(failedWrites.length > 0
      ? [
          `a write tool call failed: ${failedWrites
            .map((c) => `${c.name} (${(c.error ?? c.output ?? 'failed').replace(/[\r\n]+/g, ' ').slice(0, 160)})`)
            .join(', ')}`,
        ]
      : []),
    ...extra,
  ];
}

/** `partial` with the reasons as its `stopReason` (secrets redacted, at most 500 characters), or nothing when there is none. */
async function partialFor(reasons: readonly string[]): Promise<{ status?: 'partial'; stopReason?: string }> {
  if (reasons.length === 0) return {};
  return { status: 'partial', stopReason: (await redactSecrets(reasons.join('; '))).text.slice(0, 500) };
}

/**
 * A request agent's result from the model's last text: a route's decision, or the answer stored
 * (redacted) with its data; partial when the loop stopped first or the answer fell short
 * ({@link shortfalls}); failed when the answer is unreadable.
 */
async function outcome(
  input: InvokeAgentInput,
  ex: Exchange,
  base: ReturnType<typeof resultBase>,
  deps: InvokeAgentDeps,
): Promise<AgentResult> {
  const { agent, runId, phase } = input;
  if (agent.output === 'route') {
    const route = parseRouteAnswer(ex.text, agent.route ?? { choices: [], default: '' });
    const reason = (await redactSecrets(route.reason.replace(/[\r\n]+/g, ' '))).text.slice(0, 500);
    // Off its choices the route still routes (the default), but not as a success.
    const partial = await partialFor(shortfalls(agent, ex, route.valid ? [] : [`route: ${reason}`]));
    return { ...base, status: 'succeeded', ...partial, decision: route.decision, decisionReason: reason };
  }
  const parsed = parseAgentAnswer(ex.text);
  if (!parsed.ok) {
    // The stop reason goes through partialFor as every other one does (redacted, capped).
    const partial = ex.loop?.status === 'partial' ? await partialFor([ex.loop.reason ?? 'stopped']) : undefined;
    // Kept (redacted) so a person can see what the model wrote.
    const rawKey = `runs/${runId}/raw/${phase}/${agent.name}.txt`;
    const rawAnswers = ex.text.trim()
      ? [deps.artifacts.where(await deps.artifacts.putText(rawKey, (await redactSecrets(ex.text)).text))]
      : [];
    // The loop stopped before the model answered: partial, with why (never a silent success, nor a format error).
    if (partial) return { ...base, status: 'partial', ...partial, rawAnswers };
    const why = ex.cut
      ? `answered past max_tokens (${agent.maxTokens}, then the models' max_output): the answer was cut`
      : `answered in an unreadable format (${parsed.problem})`;
    return {
      ...base,
      status: 'failed',
      rawAnswers,
      error: {
        Error: 'ProviderRejectedError',
        Cause: `${agent.name}: ${base.model} ${why}${rawAnswers[0] ? `; raw answer at ${rawAnswers[0]}` : ''}`,
      },
    };
  }
  const answerRef = await deps.artifacts.putText(
    answerKey(runId, phase, agent.name),
    (await redactSecrets(parsed.answer)).text,
    'text/markdown',
  );
  const data: NonNullable<AgentResult['data']> = {};
  for (const [k, v] of Object.entries(parsed.data)) data[k] = typeof v === 'string' ? (await redactSecrets(v)).text.slice(0, 200) : v;
  // Prose is kept as the answer, but later phases test data the prompt asked for and did not get.
  const partial = await partialFor(
    shortfalls(agent, ex, parsed.prose && declaresDataFields(agent.prompt) ? ['answered in prose: no data fields'] : []),
  );
  return { ...base, status: 'succeeded', ...partial, answerRef, data };
}

/** A guardrail and the name results show as its model (`guardrail`, `bedrock-guardrail`). */
export interface GuardrailChoice {
  readonly guardrail: Guardrail;
  readonly model: string;
}

/** The local rules of a `guardrail:` step's settings ({@link LocalGuardrail}). */
export function localGuardrailFor(settings: GuardrailSettings): GuardrailChoice {
  return {
    guardrail: new LocalGuardrail({
      deniedTopics: settings.deniedTopics,
      ...(settings.pii ? { pii: settings.pii as LocalPiiType[] } : {}),
      piiAction: settings.piiAction,
      promptAttack: settings.promptAttack,
    }),
    model: 'guardrail',
  };
}

/**
 * Guardrails applied one after the other: each checks the text the one before let through (masked
 * or unchanged). Blocked as soon as one blocks (the later ones are not asked: nothing of a blocked
 * text goes on); the interventions of every one that ran are kept, in order. An error of any is
 * thrown (the step fails closed).
 *
 * @example inOrder([localRules, bedrock]).apply('INPUT', 'Mail ann@example.com') // Bedrock gets 'Mail {EMAIL}'
 */
export function inOrder(guardrails: readonly Guardrail[]): Guardrail {
  return {
    async apply(source, text) {
      const interventions: GuardrailIntervention[] = [];
      let intervened = false;
      let current = text;
      for (const g of guardrails) {
        const r = await g.apply(source, current);
        interventions.push(...r.interventions);
        intervened ||= r.intervened;
        if (r.blocked) return { intervened: true, blocked: true, text: '', interventions };
        current = r.text;
      }
      return { intervened, blocked: false, text: current, interventions };
    },
  };
}

/**
 * The guardrail of a step's settings in the cloud: the step's local rules ({@link localGuardrailFor}:
 * `denied_topics`, `pii`, `prompt_attack`) always, then Bedrock Guardrails (`bedrock`) on the text
 * they let through when the step names one (`guardrailId`, its `guardrailVersion`, default
 * `DRAFT`) or the environment has one (`environment.id`, the step's version else the
 * environment's); see {@link inOrder}. Results name the model `guardrail+bedrock-guardrail`
 * then, else `guardrail`.
 *
 * @example guardrailChooser({ id: 'gr-abc123', version: '1' }, (g) => new BedrockGuardrail(client, g))
 */
export function guardrailChooser(
  environment: { readonly id?: string | undefined; readonly version: string },
  bedrock: (guardrail: { id: string; version: string }) => Guardrail,
): (settings: GuardrailSettings) => GuardrailChoice {
  return (settings) => {
    const local = localGuardrailFor(settings);
    const id = settings.guardrailId ?? environment.id;
    if (!id) return local;
    const version = settings.guardrailVersion ?? (settings.guardrailId ? 'DRAFT' : environment.version);
    return { guardrail: inOrder([local.guardrail, bedrock({ id, version })]), model: `${local.model}+bedrock-guardrail` };
  };
}

const POLICY_WORDS: Record<string, string> = {
  topic: 'denied topic',
  pii: 'PII',
  'prompt-attack': 'prompt attack',
  content: 'content filter',
  word: 'denied word',
};

/** One line saying why a guardrail blocked or masked, by policy and name only (never the matched text). */
export function guardrailReason(r: GuardrailResult): string | undefined {
  if (!r.intervened) return undefined;
  const acted = r.interventions.filter((i) => i.action === (r.blocked ? 'blocked' : 'masked'));
  const parts = [
    ...new Set(
      acted.map((i) =>
        i.policy === 'prompt-attack' ? 'prompt attack' : `${POLICY_WORDS[i.policy] ?? i.policy} "${i.name.replace(/["\r\n]/g, '')}"`,
      ),
    ),
  ];
  return `${r.blocked ? 'blocked' : 'masked'}: ${parts.join('; ') || 'the guardrail intervened'}`.slice(0, 500);
}

/**
 * Runs a `guardrail` step: no model call. It checks the request (`guardrail.phases` empty) or the
 * answer of the first of `guardrail.phases` that ran, in the direction of `guardrail.source`, with
 * `deps.guardrailFor` (default: the local rules, {@link localGuardrailFor}).
 *
 * Result: provider `agentflow`, cost 0, `guardrail` (intervened, blocked, interventions by name),
 * `answerRef` the text to go on with when not blocked (masked or unchanged; {@link guardedKey}),
 * `decisionReason` one line when it intervened (e.g. `blocked: denied topic "legal-advice"; prompt attack`).
 * Nothing to check (none of `phases` answered): succeeded, no intervention. A guardrail service
 * error: `failed` with the error — the state machine stops the run (fail closed).
 *
 * @throws InvalidInputError when the agent has no guardrail settings, or the request is needed and absent
 */
export async function runGuardrailAgent(input: InvokeAgentInput, deps: InvokeAgentDeps): Promise<AgentResult> {
  const now = deps.now ?? Date.now;
  const started = now();
  const { agent, runId, phase } = input;
  const settings = agent.guardrail;
  if (!settings) throw new InvalidInputError(`InvokeAgent: guardrail step "${agent.name}" has no guardrail settings`);
  const choice = (deps.guardrailFor ?? localGuardrailFor)(settings);
  const base = {
    name: agent.name,
    phase,
    provider: 'agentflow',
    model: choice.model,
    inputTokens: 0,
    outputTokens: 0,
    costUsd: 0,
    findings: 0,
  };
  const done = () => ({ durationMs: now() - started });
  let text: string | undefined;
  const of: 'request' | 'answer' = settings.phases.length === 0 ? 'request' : 'answer';
  if (of === 'request') {
    if (!input.request) throw new InvalidInputError(`InvokeAgent: guardrail step "${agent.name}" checks the request: give request`);
    text = input.request.text;
  } else {
    const results = earlierResults(input.previous);
    const first = settings.phases.flatMap((p) => results.filter((e) => e.phase === p && e.result.answerRef)).at(0);
    if (first?.result.answerRef) text = await deps.artifacts.getText(first.result.answerRef);
  }
  if (text === undefined) {
    return AgentResultSchema.parse({
      ...base,
      status: 'succeeded',
      ...done(),
      guardrail: { intervened: false, blocked: false, interventions: [] },
      decisionReason: `nothing to check: none of ${settings.phases.join(', ')} answered`,
    });
  }
  const source: GuardrailSource = settings.source;
  let r: GuardrailResult;
  try {
    r = await choice.guardrail.apply(source, text);
  } catch (e) {
    return AgentResultSchema.parse({
      ...base,
      status: 'failed',
      ...done(),
      error: { Error: e instanceof Error ? e.name : 'Error', Cause: `guardrail ${agent.name}: ${cause(e)}` },
    });
  }
  // What goes on is stored with secrets redacted too (it goes to models and people next).
  const answerRef = r.blocked
    ? undefined
    : await deps.artifacts.putText(guardedKey(runId, phase, agent.name, of), (await redactSecrets(r.text)).text, 'text/markdown');
  const reason = guardrailReason(r);
  return AgentResultSchema.parse({
    ...base,
    status: 'succeeded',
    ...done(),
    guardrail: {
      intervened: r.intervened,
      blocked: r.blocked,
      interventions: r.interventions.map((i) => ({ policy: i.policy, name: i.name, action: i.action })),
    },
    ...(answerRef ? { answerRef } : {}),
    ...(reason ? { decisionReason: reason } : {}),
  });
}
