import type { AgentResult, Change, Finding, GateOutcome, RunSummary, Severity } from './contracts.js';
import { SEVERITIES } from './contracts.js';
import { roundUsd } from './pricing.js';

/** A finding with the agents that reported it. */
export interface ReportFinding extends Finding {
  agents: string[];
}

const rank = (s: Severity) => SEVERITIES.indexOf(s);
const norm = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .trim();

/**
 * Merges findings across agents: findings on the same file and line with the same category or
 * the same message are one finding; it keeps the highest severity, the longest suggestion and
 * every agent that reported it. Sorted by severity, then file and line.
 */
export function mergeFindings(perAgent: ReadonlyArray<{ agent: string; findings: readonly Finding[] }>): ReportFinding[] {
  const merged: ReportFinding[] = [];
  for (const { agent, findings } of perAgent) {
    for (const f of findings) {
      const same = merged.find(
        (m) => m.file === f.file && m.line === f.line && (m.category === f.category || norm(m.message) === norm(f.message)),
      );
      if (!same) {
        merged.push({ ...f, agents: [agent] });
        continue;
      }
      if (!same.agents.includes(agent)) same.agents.push(agent);
      if (rank(f.severity) < rank(same.severity)) {
        same.severity = f.severity;
        same.message = f.message;
      }
      if (f.suggestion.length > same.suggestion.length) same.suggestion = f.suggestion;
    }
  }
  return merged.sort((a, b) => rank(a.severity) - rank(b.severity) || a.file.localeCompare(b.file) || a.line - b.line);
}

/** Reads a Step Functions error cause: Lambda's JSON `{errorMessage}` or plain text. */
export function errorText(error: AgentResult['error']): string | undefined {
  if (!error) return undefined;
  let cause = error.Cause ?? '';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string };
    if (parsed.errorMessage) cause = parsed.errorMessage;
  } catch {
    // a plain-text cause
  }
  return cause ? `${error.Error}: ${cause}` : error.Error;
}

/** Builds the run summary (USD rounded to the micro-dollar). */
/** One line per gate outcome: `approved by <@U024BE7LH> at …`, `timeout`, `rejected by @octocat`. */
export function describeGate(g: GateOutcome): string {
  const by = g.by ?? g.decision?.by;
  const at = g.at ?? g.decision?.at;
  const extra = typeof g.conclusion === 'string' ? ` (CI ${g.conclusion})` : '';
  return `${g.outcome}${by ? ` by ${by}` : ''}${at ? ` at ${at}` : ''}${extra}`;
}

export function summarize(
  workflow: string,
  agents: readonly AgentResult[],
  findings: readonly ReportFinding[],
  gates: Readonly<Record<string, GateOutcome>> = {},
): RunSummary {
  const bySeverity: Record<string, number> = {};
  for (const s of SEVERITIES) bySeverity[s] = 0;
  for (const f of findings) bySeverity[f.severity] = (bySeverity[f.severity] ?? 0) + 1;
  return {
    workflow,
    findings: findings.length,
    bySeverity,
    costUsd: roundUsd(agents.reduce((s, a) => s + a.costUsd, 0)),
    inputTokens: agents.reduce((s, a) => s + a.inputTokens, 0),
    outputTokens: agents.reduce((s, a) => s + a.outputTokens, 0),
    offline: agents.some((a) => a.servedBy !== undefined),
    gates: Object.fromEntries(Object.entries(gates).map(([k, g]) => [k, describeGate(g)])),
    agents: agents.map((a) => {
      const error = errorText(a.error);
      return {
        name: a.name,
        phase: a.phase,
        status: a.status,
        provider: a.provider,
        model: a.model,
        inputTokens: a.inputTokens,
        outputTokens: a.outputTokens,
        costUsd: a.costUsd,
        findings: a.findings,
        ...(error ? { error } : {}),
        calls: a.calls,
        cacheHits: a.cacheHits,
        fallbackUsed: a.fallbackUsed,
        ...(a.routing ? { routing: a.routing } : {}),
        attempts: a.attempts,
      };
    }),
  };
}

/**
 * What the gateway did for an agent, for the report: model routing, cache hits, fallback and the
 * attempts that did not answer (provider/model, error name, ms).
 */
export function gatewayNotes(a: RunSummary['agents'][number]): string {
  const notes: string[] = [];
  if (a.routing) notes.push(a.routing);
  if (a.cacheHits > 0) notes.push(`${a.cacheHits} cache hit${a.cacheHits === 1 ? '' : 's'} ($0)`);
  if (a.fallbackUsed) notes.push('fallback used');
  const failed = a.attempts.filter((t) => t.outcome === 'error' || t.outcome === 'skipped');
  if (failed.length > 0) {
    notes.push(
      `attempts: ${failed
        .map(
          (t) =>
            `${t.provider}/${t.model} ${t.outcome === 'skipped' ? 'skipped' : 'failed'} (${(t.error ?? '').split(':')[0]}, ${t.ms} ms)`,
        )
        .join('; ')}`,
    );
  }
  return notes.join(' · ');
}

const ICON: Record<Severity, string> = { critical: '🔴', high: '🟠', medium: '🟡', low: '🔵', info: '⚪' };

/** The hidden marker that lets publish find its own comment again. */
export const commentMarker = (workflow: string) => `<!-- agentflow:${workflow} -->`;

/**
 * GitHub rejects comment bodies over 65,536 characters; we stay under 60,000 and say what was left
 * out. Source: https://docs.github.com/en/rest/issues/comments (body size limit, 2025).
 */
export const MAX_COMMENT_CHARS = 60_000;

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>');
const usd = (n: number) => `$${n.toFixed(n > 0 && n < 0.0001 ? 6 : 4)}`;
const int = (n: number) => n.toLocaleString('en-US');

/**
 * Renders the pull-request comment: findings by severity with file:line, per-agent status,
 * provider, model, tokens and cost in USD.
 */
export function renderComment(input: {
  workflowName: string;
  workflow: string;
  change: Change;
  runId: string;
  findings: readonly ReportFinding[];
  summary: RunSummary;
  servedBy?: string;
  /** Documents agents wrote (artifact keys). */
  documents?: ReadonlyArray<{ agent: string; ref: string | undefined }>;
}): string {
  const { summary, findings } = input;
  const failed = summary.agents.filter((a) => a.status === 'failed');
  const sev = SEVERITIES.filter((s) => (summary.bySeverity[s] ?? 0) > 0)
    .map((s) => `${ICON[s]} ${summary.bySeverity[s]} ${s}`)
    .join(' · ');
  const out: string[] = [commentMarker(input.workflow), `## AgentFlow · ${input.workflowName}`, ''];
  out.push(
    `**${findings.length} finding${findings.length === 1 ? '' : 's'}**${sev ? ` (${sev})` : ''} from ${summary.agents.length} agents` +
      ` · ${int(summary.inputTokens + summary.outputTokens)} tokens · ${usd(summary.costUsd)}`,
  );
  if (failed.length > 0) {
    out.push(
      '',
      `> [!WARNING]`,
      `> ${failed.length} of ${summary.agents.length} agents failed: ${failed.map((a) => `**${a.name}** (${a.error ?? 'unknown error'})`).join('; ')}. The other agents' findings are below.`,
    );
  }
  if (input.servedBy) {
    out.push(
      '',
      `> [!NOTE]`,
      `> Answers came from the **${input.servedBy}** (deterministic, rule-based stand-in for Bedrock and OpenAI on 127.0.0.1), not from a real model.`,
    );
  }
  const gates = Object.entries(summary.gates ?? {});
  if (gates.length > 0) {
    out.push('', '### Gates', '', ...gates.map(([phase, text]) => `- **${phase}**: ${text}`));
  }
  const documents = (input.documents ?? []).filter((d) => d.ref);
  if (documents.length > 0) {
    out.push('', '### Documents', '', ...documents.map((d) => `- **${d.agent}** wrote \`${d.ref}\``));
  }
  out.push('', '### Findings', '');
  if (findings.length === 0) {
    out.push('No findings.');
  } else {
    out.push('| Severity | Location | Category | Finding | Agents |', '|---|---|---|---|---|');
    let shown = 0;
    let size = out.join('\n').length + 3000;
    for (const f of findings) {
      const row = `| ${ICON[f.severity]} ${f.severity} | \`${cell(f.file)}${f.line > 0 ? `:${f.line}` : ''}\` | ${cell(f.category)} | ${cell(f.message)}${f.suggestion ? `<br>**Fix:** ${cell(f.suggestion)}` : ''} | ${f.agents.join(', ')} |`;
      if (size + row.length > MAX_COMMENT_CHARS) break;
      out.push(row);
      size += row.length + 1;
      shown++;
    }
    if (shown < findings.length) {
      out.push('', `_${findings.length - shown} more findings are in the full report (run ${input.runId})._`);
    }
  }
  out.push(
    '',
    '### Agents',
    '',
    '| Agent | Status | Provider | Model | Input tokens | Output tokens | Cost (USD) | Gateway |',
    '|---|---|---|---|---:|---:|---:|---|',
  );
  for (const a of summary.agents) {
    out.push(
      `| ${a.name} | ${a.status === 'succeeded' ? '✅ succeeded' : `❌ failed: ${cell(a.error ?? '')}`} | ${a.provider} | ${a.model} | ${int(a.inputTokens)} | ${int(a.outputTokens)} | ${usd(a.costUsd)} | ${cell(gatewayNotes(a))} |`,
    );
  }
  out.push(`| **Total** | | | | **${int(summary.inputTokens)}** | **${int(summary.outputTokens)}** | **${usd(summary.costUsd)}** | |`);
  out.push(
    '',
    `<sub>Run \`${input.runId}\` · ${input.change.repository}#${input.change.number} at ${input.change.headSha.slice(0, 7)}</sub>`,
    '',
  );
  return out.join('\n');
}
