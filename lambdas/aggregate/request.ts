import { z } from 'zod';
import { fromMicro } from '../core/budget.js';
import {
  AgentResultSchema,
  parseInput,
  type RequestAggregateInput,
  RequestAggregateInputSchema,
  type RunSummary,
} from '../core/contracts.js';
import type { ArtifactStore } from '../core/ports.js';
import { redactSecrets } from '../core/redact.js';
import { summarize } from '../core/report.js';
import { phaseOutcomes, pickAnswer, requestOutcome } from '../core/request-report.js';
import { withSpend } from './agent-spend.js';

/** What Aggregate returns for a `request` run (the state machine keeps `$.Payload.reportRef` and `$.Payload.summary`). */
export interface RequestAggregateOutput {
  reportRef: string;
  summary: RunSummary;
}

/**
 * One tool call as the report keeps it: what the agent's `toolCallsRef` artifact holds
 * (`ToolCallRecord`: name, redacted input and output, ok, error, refused, ms), read leniently so
 * that one odd record costs its line, not the report.
 */
export const ReportedToolCallSchema = z.looseObject({
  name: z.string(),
  ok: z.boolean(),
  ms: z.number().nonnegative().default(0),
  error: z.string().optional(),
  refused: z.boolean().optional(),
});
export type ReportedToolCall = z.infer<typeof ReportedToolCallSchema>;

/** The tool calls in a `toolCallsRef` artifact (an array of records, or `{ calls: [...] }`); none when it cannot be read. */
export async function readToolCalls(artifacts: ArtifactStore, ref: string | undefined): Promise<ReportedToolCall[]> {
  if (!ref) return [];
  const raw = await artifacts.getJson(ref).catch(() => undefined);
  const list = Array.isArray(raw)
    ? raw
    : Array.isArray((raw as { calls?: unknown } | undefined)?.calls)
      ? (raw as { calls: unknown[] }).calls
      : [];
  return list.flatMap((c) => {
    const r = ReportedToolCallSchema.safeParse(c);
    return r.success ? [r.data] : [];
  });
}

/**
 * The request report artifact (`runs/<runId>/report.json` of a `request` run): the summary, who
 * asked and the request (redacted), the answer sent (its phase, agent and Markdown text), every
 * agent with its spend, and each agent's tool calls.
 */
export interface RequestReport {
  kind: 'request';
  summary: RunSummary;
  request: { requester: string; text: string };
  answer: { phase: string; agent: string; ref: string; text: string } | null;
  agents: unknown[];
  toolCalls: Array<{ agent: string; phase: string; calls: ReportedToolCall[] }>;
}

/**
 * Aggregate of a `request` run (`kind: 'request'`, see `RequestAggregateInputSchema`): reads every
 * agent's result and spend record, records where each phase went (`phaseOutcomes`), picks the
 * answer (`pickAnswer`), decides the outcome (`requestOutcome`), stores the report
 * ({@link RequestReport}) and returns its reference with the summary (`answerRef`, `phases`,
 * `toolCalls`, `toolErrors`; no findings).
 *
 * The cost is the sum of the agents' spend records (every settled call, retries included), so the
 * summary's `costUsd` equals the run's settled spend in the budget ledger to the micro-dollar.
 *
 * @throws InvalidInputError on a bad input
 */
export async function aggregateRequest(raw: unknown, deps: { artifacts: ArtifactStore }): Promise<RequestAggregateOutput> {
  const input: RequestAggregateInput = parseInput(RequestAggregateInputSchema, raw, 'Aggregate');
  const agents = await Promise.all(
    Object.values(input.results)
      .flat()
      .map((r) => withSpend(AgentResultSchema.parse(r), input.runId, deps.artifacts)),
  );
  const phases = phaseOutcomes(input.plan, input.results, input.gates);
  const answer = pickAnswer(input.plan, input.answer, agents);
  const outcome = requestOutcome(agents, input.requiredPhases, answer !== undefined);
  const costMicro = agents.reduce((s, a) => s + a.costMicro, 0);
  const { reason: _review, ...base } = summarize(input.workflow, agents, [], input.gates, {
    costUsd: fromMicro(costMicro),
    requiredPhases: input.requiredPhases,
  });
  const summary: RunSummary = {
    ...base,
    status: outcome.status,
    ...(outcome.reason ? { reason: outcome.reason } : {}),
    findings: 0,
    bySeverity: {},
    phases,
    toolCalls: agents.reduce((s, a) => s + a.toolCalls, 0),
    toolErrors: agents.reduce((s, a) => s + a.toolErrors, 0),
    ...(answer ? { answerRef: answer.ref } : {}),
  };
  const answerText = answer ? await deps.artifacts.getText(answer.ref).catch(() => '') : '';
  const report: RequestReport = {
    kind: 'request',
    summary,
    request: { requester: input.request.requester, text: (await redactSecrets(input.request.text)).text },
    answer: answer ? { ...answer, text: answerText } : null,
    agents,
    toolCalls: await Promise.all(
      agents
        .filter((a) => a.toolCallsRef)
        .map(async (a) => ({ agent: a.name, phase: a.phase, calls: await readToolCalls(deps.artifacts, a.toolCallsRef) })),
    ),
  };
  const reportRef = await deps.artifacts.putJson(`runs/${input.runId}/report.json`, report);
  return { reportRef, summary };
}
