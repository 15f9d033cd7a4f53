import type { AgentResult, GateOutcome, PhaseOutcome, RequestAggregateInput, RunOutcome } from './contracts.js';
import { errorText } from './report.js';

/**
 * What a `request` run's report says (issue 15): which phases ran and why the others did not,
 * the run's outcome from its agents, and which phase's answer is the run's answer. Pure: the
 * Aggregate task reads the artifacts and calls these.
 */

/** One phase of the workflow as Aggregate gets it (`plan` of the request Aggregate input). */
export type PlannedPhase = RequestAggregateInput['plan'][number];

/** The outcome a compiled `approval` with `when:` sets when it did not need to ask. */
export const GATE_NOT_NEEDED = 'not-needed';

/**
 * The key of a phase in the state (`$.results.<key>`, `$.gates.<key>`): its name with every
 * character but letters, digits and `_` as `_`, as the compiler writes it (`phaseKey` in
 * `lib/workflow/compile.ts`, which core may not import). Plan entries, route decisions and agent
 * results name phases by name.
 */
export const stateKey = (phase: string) => phase.replace(/[^A-Za-z0-9_]/g, '_');

/** The entry of `phase` in a record keyed by state key (or, for hand-written inputs, by name). */
function byPhase<T>(record: Readonly<Record<string, T>>, phase: string): T | undefined {
  if (Object.hasOwn(record, phase)) return record[phase];
  const key = stateKey(phase);
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** The reason a gate outcome carries (`{ outcome: 'not-needed', reason }`), when it is a string. */
const gateReason = (g: GateOutcome): string | undefined => (typeof g.reason === 'string' && g.reason ? g.reason : undefined);

/**
 * Where each phase of `plan` went, in plan order: `ran` when its results (an agent phase) or its
 * gate outcome (an approval or CI gate) are there (under the phase's {@link stateKey}); otherwise `skipped` with the first reason
 * that holds:
 * - a gate that was not needed (`approval.when`): the gate's own reason;
 * - a route's target the route did not choose: `route "<routeOf>" chose "<decision>"` (or
 *   `route "<routeOf>" did not run`);
 * - a phase after conditional phases none of which ran: `none of <after> ran`;
 * - else `did not run`.
 *
 * @example
 * ```ts
 * phaseOutcomes([{ phase: 'triage', kind: 'route', after: [] }, { phase: 'billing', kind: 'agents', routeOf: 'triage', after: [] }],
 *   { triage: [{ decision: 'tech' }] }, {});
 * // [{ phase: 'triage', status: 'ran' }, { phase: 'billing', status: 'skipped', reason: 'route "triage" chose "tech"' }]
 * ```
 */
export function phaseOutcomes(
  plan: readonly PlannedPhase[],
  results: Readonly<Record<string, readonly unknown[]>>,
  gates: Readonly<Record<string, GateOutcome>>,
): PhaseOutcome[] {
  const ran = new Set<string>();
  const out: PhaseOutcome[] = [];
  for (const p of plan) {
    const gate = byPhase(gates, p.phase);
    if (gate?.outcome === GATE_NOT_NEEDED) {
      out.push({ phase: p.phase, status: 'skipped', reason: gateReason(gate) ?? 'the approval was not needed' });
      continue;
    }
    if (gate || byPhase(results, p.phase) !== undefined) {
      ran.add(p.phase);
      out.push({ phase: p.phase, status: 'ran' });
      continue;
    }
    out.push({ phase: p.phase, status: 'skipped', reason: skipReason(p, results, ran) });
  }
  return out;
}

function skipReason(p: PlannedPhase, results: Readonly<Record<string, readonly unknown[]>>, ran: ReadonlySet<string>): string {
  if (p.routeOf) {
    const first = byPhase(results, p.routeOf)?.[0] as { decision?: unknown } | undefined;
    if (!ran.has(p.routeOf)) return `route "${p.routeOf}" did not run`;
    if (typeof first?.decision === 'string' && first.decision !== p.phase) return `route "${p.routeOf}" chose "${first.decision}"`;
  }
  if (p.after.length > 0 && !p.after.some((a) => ran.has(a))) return `none of ${p.after.join(', ')} ran`;
  return 'did not run';
}

/** An agent of a request run, as {@link requestOutcome} reads it. */
export type RequestAgent = Pick<AgentResult, 'name' | 'phase' | 'status' | 'stopReason' | 'error' | 'answerRef' | 'guardrail'>;

/** Why an agent did not succeed, in a few words: its stop reason, else its error. */
const whyNot = (a: RequestAgent): string =>
  `${a.phase}/${a.name} (${(a.stopReason ?? errorText(a.error) ?? a.status).replace(/ \[attempts: .*\]$/s, '').slice(0, 300)})`;

/**
 * A request run's outcome: FAILED when no agent produced a result (none ran, or every one
 * failed) or an agent of a `required` phase did not succeed; PARTIAL when an agent failed or
 * stopped early (the reason names each with its stop reason or error), or when no phase answered;
 * else SUCCEEDED.
 */
export function requestOutcome(
  agents: readonly RequestAgent[],
  requiredPhases: readonly string[],
  answered: boolean,
): { status: Exclude<RunOutcome, 'SKIPPED'>; reason?: string } {
  if (agents.length === 0) return { status: 'FAILED', reason: 'no agent ran' };
  const unfinished = agents.filter((a) => a.status !== 'succeeded');
  if (agents.every((a) => a.status === 'failed')) {
    return { status: 'FAILED', reason: `every agent failed: ${unfinished.map(whyNot).join('; ')}` };
  }
  const required = unfinished.filter((a) => requiredPhases.includes(a.phase));
  if (required.length > 0) return { status: 'FAILED', reason: `required phase did not complete: ${required.map(whyNot).join('; ')}` };
  if (unfinished.length > 0) {
    const failed = unfinished.filter((a) => a.status === 'failed');
    const partial = unfinished.filter((a) => a.status === 'partial');
    const parts = [
      ...(failed.length > 0 ? [`${failed.length} of ${agents.length} agents failed: ${failed.map(whyNot).join('; ')}`] : []),
      ...(partial.length > 0 ? [`stopped early: ${partial.map(whyNot).join('; ')}`] : []),
    ];
    return { status: 'PARTIAL', reason: parts.join('; ') };
  }
  if (!answered) return { status: 'PARTIAL', reason: 'no phase answered the request' };
  return { status: 'SUCCEEDED' };
}

/**
 * The run's answer: the first phase of `answer` that ran whose agent wrote an answer
 * (`answerRef`); with an empty `answer`, the last phase in plan order that ran with one
 * (an INPUT guardrail writes none: it checks the request, not an answer).
 * @returns the phase, agent and reference, or undefined when no phase answered
 */
export function pickAnswer(
  plan: readonly PlannedPhase[],
  answer: readonly string[],
  agents: ReadonlyArray<Pick<AgentResult, 'name' | 'phase' | 'answerRef'>>,
): { phase: string; agent: string; ref: string } | undefined {
  const of = (phase: string) => {
    const a = agents.find((x) => x.phase === phase && x.answerRef);
    return a?.answerRef ? { phase, agent: a.name, ref: a.answerRef } : undefined;
  };
  if (answer.length > 0) {
    for (const phase of answer) {
      const found = of(phase);
      if (found) return found;
    }
    return undefined;
  }
  const order = plan.length > 0 ? plan.map((p) => p.phase) : [...new Set(agents.map((a) => a.phase))];
  for (const phase of [...order].reverse()) {
    const found = of(phase);
    if (found) return found;
  }
  return undefined;
}
