import {
  type AgentResult,
  AgentResultSchema,
  type AggregateInput,
  AggregateInputSchema,
  type AggregateOutput,
  FindingSchema,
  parseInput,
} from '../core/contracts.js';
import { RequiredPhaseFailedError } from '../core/errors.js';
import type { ArtifactStore } from '../core/ports.js';
import { mergeFindings, renderComment, summarize } from '../core/report.js';

export interface AggregateDeps {
  artifacts: ArtifactStore;
}

/**
 * Aggregate: reads every agent's findings artifact, merges and de-duplicates them, stores the
 * full report (JSON) and the pull-request comment (Markdown) as artifacts, and returns their
 * references with a small summary (counts, tokens, USD).
 *
 * @throws InvalidInputError on a bad input
 * @throws RequiredPhaseFailedError when a phase marked `required` has a failed agent
 */
export async function aggregate(raw: unknown, deps: AggregateDeps): Promise<AggregateOutput> {
  const input: AggregateInput = parseInput(AggregateInputSchema, raw, 'Aggregate');
  const agents: AgentResult[] = Object.values(input.results)
    .flat()
    .map((r) => AgentResultSchema.parse(r));
  const perAgent = await Promise.all(
    agents
      .filter((a) => a.status === 'succeeded' && a.findingsRef)
      .map(async (a) => {
        const stored = (await deps.artifacts.getJson(a.findingsRef as string)) as { findings?: unknown };
        return { agent: a.name, findings: FindingSchema.array().parse(stored.findings ?? []) };
      }),
  );
  const findings = mergeFindings(perAgent);
  const summary = summarize(input.workflow, agents, findings, input.gates);
  const servedBy = agents.find((a) => a.servedBy)?.servedBy;
  const comment = renderComment({
    workflowName: input.workflowName || input.workflow,
    workflow: input.workflow,
    change: input.change,
    runId: input.runId,
    findings,
    summary,
    ...(servedBy ? { servedBy } : {}),
    documents: agents.map((a) => ({ agent: a.name, ref: a.documentRef })),
  });
  const base = `runs/${input.runId}`;
  const reportRef = await deps.artifacts.putJson(`${base}/report.json`, { summary, findings, agents });
  const commentRef = await deps.artifacts.putText(`${base}/comment.md`, comment, 'text/markdown');
  const failedRequired = summary.agents.filter((a) => a.status === 'failed' && input.requiredPhases.includes(a.phase));
  if (failedRequired.length > 0) {
    throw new RequiredPhaseFailedError(
      `required phase failed: ${failedRequired.map((a) => `${a.phase}/${a.name} (${a.error ?? 'error'})`).join(', ')}`,
    );
  }
  return { reportRef, commentRef, summary };
}
