import type { z } from 'zod';
import { fromMicro } from '../core/budget.js';
import {
  type AgentResult,
  AgentResultSchema,
  type AggregateInput,
  AggregateInputSchema,
  type AggregateOutput,
  ContextArtifactSchema,
  FindingSchema,
  parseInput,
  type RequestAggregateInputSchema,
} from '../core/contracts.js';
import { knownTo, type Reconciled, ReviewStateSchema, reconcile } from '../core/incremental.js';
import type { ArtifactStore } from '../core/ports.js';
import { effectiveInline } from '../core/repo-config.js';
import { type NotReviewed, type ReportFinding, renderComment, reviewFindings, summarize } from '../core/report.js';
import { buildInlineReview } from '../core/review.js';
import { applyVerdicts, findingKey, VERIFY_PHASE, VerdictsArtifactSchema, type VerificationSummary } from '../core/verify.js';
import { withSpend } from './agent-spend.js';
import { aggregateRequest, type RequestAggregateOutput } from './request.js';

export interface AggregateDeps {
  artifacts: ArtifactStore;
}

/**
 * The findings after the verifier pass: its verdicts applied (see `applyVerdicts`), or, when the
 * verifier ran but left no verdicts (it failed), every finding kept and counted unverified. Without
 * a verifier the findings are unchanged and there is no verification summary.
 */
async function verified(
  findings: ReportFinding[],
  agents: readonly AgentResult[],
  artifacts: ArtifactStore,
  earlier: (f: ReportFinding) => boolean,
): Promise<{ findings: ReportFinding[]; verification?: VerificationSummary }> {
  const verifier = agents.find((a) => a.phase === VERIFY_PHASE);
  if (!verifier) return { findings };
  if (!verifier.verdictsRef) {
    return {
      findings,
      verification: { checked: 0, confirmed: 0, dropped: 0, downgraded: 0, unverified: findings.length, notes: [] },
    };
  }
  return applyVerdicts(findings, VerdictsArtifactSchema.parse(await artifacts.getJson(verifier.verdictsRef)), earlier);
}

/** The keys (`findingKey`) of the findings the verifier confirmed in this run. */
async function confirmedByVerifier(agents: readonly AgentResult[], artifacts: ArtifactStore): Promise<Set<string>> {
  const ref = agents.find((a) => a.phase === VERIFY_PHASE)?.verdictsRef;
  if (!ref) return new Set();
  const stored = VerdictsArtifactSchema.safeParse(await artifacts.getJson(ref).catch(() => undefined));
  return new Set(stored.success ? Object.entries(stored.data.verdicts).flatMap(([k, v]) => (v.confirmed ? [k] : [])) : []);
}

/** The metric the Aggregate function emits per run: agents whose status is failed (the stack alarms on it). */
export const AGENTS_FAILED_METRIC = 'AgentsFailed';

/**
 * Aggregate: for a `request` run (`kind: 'request'`) see `aggregateRequest`; for a review, reads
 * every agent's findings and spend records, merges and de-duplicates the
 * findings, decides the run's outcome (SUCCEEDED / PARTIAL / FAILED, see `summarize`), stores the
 * full report (JSON) and the pull-request comment (Markdown) as artifacts, and returns their
 * references with a small summary (counts, tokens, USD).
 *
 * Costs come from the agents' spend records (every settled call, including retries, repairs,
 * fallbacks and agents that failed later), so the summary's `costUsd` equals the run's settled
 * spend in the budget ledger to the micro-dollar.
 *
 * @throws InvalidInputError on a bad input
 */
export function aggregate(raw: z.input<typeof RequestAggregateInputSchema>, deps: AggregateDeps): Promise<RequestAggregateOutput>;
export function aggregate(raw: z.input<typeof AggregateInputSchema>, deps: AggregateDeps): Promise<AggregateOutput>;
export function aggregate(raw: unknown, deps: AggregateDeps): Promise<AggregateOutput | RequestAggregateOutput>;
export async function aggregate(raw: unknown, deps: AggregateDeps): Promise<AggregateOutput | RequestAggregateOutput> {
  // A `request` run (issue 15) has its own report: the answer, the phases, the tool calls.
  if ((raw as { kind?: unknown } | null)?.kind === 'request') return aggregateRequest(raw, deps);
  const input: AggregateInput = parseInput(AggregateInputSchema, raw, 'Aggregate');
  const agents = await Promise.all(
    Object.values(input.results)
      .flat()
      .map((r) => withSpend(AgentResultSchema.parse(r), input.runId, deps.artifacts)),
  );
  const stored = await Promise.all(
    agents.map(async (a) => {
      if (!a.findingsRef) return { agent: a.name, findings: [], notReviewed: [] as string[] };
      const s = (await deps.artifacts.getJson(a.findingsRef)) as { findings?: unknown; notReviewed?: unknown };
      return {
        agent: a.name,
        findings: FindingSchema.array().parse(s.findings ?? []),
        notReviewed: Array.isArray(s.notReviewed) ? s.notReviewed.filter((p): p is string => typeof p === 'string') : [],
      };
    }),
  );
  const context = ContextArtifactSchema.safeParse(await deps.artifacts.getJson(input.contextRef).catch(() => undefined));
  const excluded = context.success ? (context.data.plan?.excluded ?? []) : [];
  // Findings go where the diff is (a line it shows, else file level), then merge.
  const { findings: merged, relocated } = reviewFindings(stored, context.success ? context.data.files : undefined);
  // A pull request: findings get fingerprints and meet the last review's (incremental re-review).
  const files = context.success ? context.data.files : [];
  const scope = context.success ? context.data.incremental : undefined;
  const kept = scope ? ReviewStateSchema.safeParse(await deps.artifacts.getJson(scope.previousRef).catch(() => undefined)) : undefined;
  const previous = kept?.success ? kept.data : undefined;
  // The verifier's verdicts (workflow `verify:`) apply to the same placed, merged findings it was
  // given; those an earlier review confirmed were not sent again.
  const { findings: raised, verification } = await verified(
    merged,
    agents,
    deps.artifacts,
    knownTo(scope?.full ? undefined : previous, files),
  );
  // Files this run did not finish: a failed agent's (its planned files), those cut by the budget.
  const unfinished = new Set(stored.flatMap((x) => x.notReviewed));
  const plan = context.success ? context.data.plan : undefined;
  for (const a of agents.filter((x) => x.status === 'failed')) {
    const p = plan?.agents.find((x) => x.name === a.name && x.phase === a.phase);
    for (const i of p?.files ?? []) {
      const path = files[i]?.path;
      if (path !== undefined) unfinished.add(path);
    }
  }
  let rec: Reconciled | undefined;
  if (input.change.number > 0 && context.success) {
    const verdicts = await confirmedByVerifier(agents, deps.artifacts);
    // Findings of files the plan now leaves out, or of agents all turned off, are no longer reviewed.
    const out = new Set(excluded.filter((e) => e.reason !== 'unchanged since the last review').map((e) => e.path));
    const off = new Set(context.data.repo?.disableAgents ?? []);
    rec = reconcile({
      unfinished,
      retired: (f) => out.has(f.file) || (f.agents.length > 0 && f.agents.every((a) => off.has(a))),
      findings: raised,
      files,
      previous,
      scope: scope && previous ? { since: scope.since, unchanged: scope.unchanged } : undefined,
      change: input.change,
      runId: input.runId,
      confirmed: (f) => verdicts.has(findingKey(f)),
      config: context.data.reviewConfig ?? '',
    });
  }
  const findings: ReportFinding[] = rec ? rec.findings : raised;
  const totalMicro = agents.reduce((s, a) => s + a.costMicro, 0);
  let summary = summarize(input.workflow, agents, findings, input.gates, {
    costUsd: fromMicro(totalMicro),
    excluded,
    requiredPhases: input.requiredPhases,
    relocated,
    ...(verification ? { verification } : {}),
  });
  const repo = context.success ? context.data.repo : undefined;
  if (repo && (repo.found || repo.guidance.length > 0)) {
    summary = {
      ...summary,
      repo: {
        errors: repo.errors,
        disabledAgents: repo.disableAgents,
        guidance: repo.guidance.map((g) => g.path),
        ...(repo.failOn ? { failOn: repo.failOn } : {}),
      },
    };
  }
  if (rec && scope) {
    summary = {
      ...summary,
      incremental: {
        since: scope.since,
        ...(scope.full ? { full: true, fullBecause: 'requested' as const } : {}),
        ...(scope.configChanged ? { full: true, fullBecause: 'configuration' as const } : {}),
        ...(rec.retired > 0 ? { retired: rec.retired } : {}),
        // Files the plan left out because the last review saw them as they are (not lock files and the like).
        filesUnchanged: excluded.filter((e) => e.reason === 'unchanged since the last review').length,
        new: findings.length - rec.carried,
        repeated: rec.repeated,
        carried: rec.carried,
        resolved: rec.resolved.length,
        dismissed: rec.dismissed,
      },
    };
    // Nothing changed since the last review: its review stands (a skip would hide its findings).
    if (summary.status === 'SKIPPED' && scope.unchanged.length > 0 && excluded.every((e) => e.reason !== 'no agent reviews it')) {
      const n = rec.findings.length;
      summary = {
        ...summary,
        status: 'SUCCEEDED',
        reason: `no reviewed file changed since the review of ${scope.since.slice(0, 7)}: its ${n} open finding${n === 1 ? '' : 's'} stand${n === 1 ? 's' : ''}`,
      };
    }
  }
  // The generated tests' commit (`output.create_files`): linked from the comment, kept in the report.
  if (input.files) summary = { ...summary, files: input.files };
  const notReviewed: NotReviewed[] = agents.flatMap((a, i) =>
    a.filesNotReviewed > 0 ? [{ agent: a.name, reason: a.notReviewed ?? 'not reached', paths: stored[i]?.notReviewed ?? [] }] : [],
  );
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
    excluded,
    notReviewed,
  });
  const base = `runs/${input.runId}`;
  const reportRef = await deps.artifacts.putJson(`${base}/report.json`, { summary, findings, agents, excluded, notReviewed });
  const commentRef = await deps.artifacts.putText(`${base}/comment.md`, comment, 'text/markdown');
  // The inline review: the findings on the diff's lines not on the pull request already (raised
  // by an earlier review whose comment was posted), and the earlier ones this run resolved.
  const postedBefore = new Set((rec?.next.findings ?? []).filter((f) => f.posted).map((f) => f.fingerprint));
  const review = buildInlineReview(
    findings.filter((f) => f.carried === undefined || !postedBefore.has(f.fingerprint ?? '')),
    files,
    // The repository's `.agentflow.yml` may post fewer or only more severe comments, never more.
    effectiveInline(input.inline, repo),
    input.change.headSha,
    input.workflowName || input.workflow,
  );
  review.resolved = (rec?.resolved ?? []).map((r) => ({ key: r.fingerprint, path: r.file, line: r.line, message: r.message }));
  const reviewRef = await deps.artifacts.putJson(`${base}/review.json`, review);
  // The state the next run builds on, without the files this run did not finish (a failed
  // agent's files, files cut by the budget): the next run reviews them.
  let stateRef: string | null = null;
  if (rec && summary.status !== 'FAILED') {
    const next = { ...rec.next, files: Object.fromEntries(Object.entries(rec.next.files).filter(([path]) => !unfinished.has(path))) };
    stateRef = await deps.artifacts.putJson(`${base}/review-state.json`, next);
  }
  return { reportRef, commentRef, reviewRef, stateRef, summary };
}
