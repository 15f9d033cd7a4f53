import { SarifBuilder, SarifResultBuilder, SarifRuleBuilder, SarifRunBuilder } from 'node-sarif-builder';
import type { Log, Result } from 'sarif';
import pkg from '../../package.json' with { type: 'json' };
import type { Severity } from './contracts.js';
import { findingKey } from './verify.js';

/** A SARIF 2.1.0 log (the `sarif` types of DefinitelyTyped, which node-sarif-builder builds). */
export type SarifLog = Log;

/** The finding fields a SARIF result is made of (a report finding; `agents` are the agents that reported it). */
export interface SarifFinding {
  file: string;
  /** New-file line; 0 for a finding about the whole file (no region). */
  line: number;
  endLine?: number;
  severity: Severity;
  category: string;
  message: string;
  suggestion?: string;
  agents?: readonly string[];
}

/**
 * SARIF `level` of each severity: what code scanning shows as error, warning or note.
 * Source: SARIF 2.1.0 §3.27.10 (level: error, warning, note, none) and
 * https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning (2026-11).
 */
export const SARIF_LEVELS: Record<Severity, Result.level> = {
  critical: 'error',
  high: 'error',
  medium: 'warning',
  low: 'note',
  info: 'note',
};

/** The rule id of a finding category: `agentflow/<category>` in lower case, with anything but letters, digits, `.`, `_` and `-` as `-`. */
export const sarifRuleId = (category: string): string =>
  `agentflow/${
    category
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'finding'
  }`;

/**
 * The findings `output.code_scanning` uploads: those reported by one of `agents` (the workflow's
 * agents whose catalog `categories` include `security`; the compiler names them in the Publish
 * input). A finding two agents merged counts when either of them is one.
 */
export function securityFindings<F extends { agents?: readonly string[] }>(findings: readonly F[], agents: readonly string[]): F[] {
  const wanted = new Set(agents);
  return findings.filter((f) => (f.agents ?? []).some((a) => wanted.has(a)));
}

/**
 * Builds the SARIF 2.1.0 log of `findings` with node-sarif-builder: one run whose tool driver is
 * AgentFlow (this package's version), one rule per category ({@link sarifRuleId}), one result per
 * finding — `level` by {@link SARIF_LEVELS}, the message (then the suggestion), the file as the
 * artifact location (a path relative to the repository root, as code scanning expects) with the
 * region `line`..`endLine` (none for a whole-file finding, line 0), and the finding's key
 * (`findingKey`, the one the verifier and inline review use) as the partial fingerprint, so code
 * scanning follows an alert from one commit to the next. `category` (the workflow id) becomes the
 * run's `automationDetails.id` (`<category>/`), which keeps two workflows' analyses of one commit apart.
 *
 * @example
 * ```ts
 * const sarif = buildSarif(securityFindings(findings, ['security']), 'pr-review');
 * await publisher.uploadCodeScanning(change, 'pr-review', sarif);
 * ```
 */
export function buildSarif(findings: readonly SarifFinding[], category: string): SarifLog {
  const run = new SarifRunBuilder().initSimple({
    toolDriverName: 'AgentFlow',
    toolDriverVersion: pkg.version,
  });
  run.run.automationDetails = { id: `${category}/` };
  const rules = new Map<string, string>();
  for (const f of findings) rules.set(sarifRuleId(f.category), f.category);
  for (const [id, name] of [...rules].sort(([a], [b]) => a.localeCompare(b))) {
    run.addRule(
      new SarifRuleBuilder().initSimple({
        ruleId: id,
        shortDescriptionText: `AgentFlow finding: ${name}`,
        fullDescriptionText: `Findings of category "${name}" reported by AgentFlow's review agents.`,
      }),
    );
  }
  for (const f of findings) {
    const result = new SarifResultBuilder();
    result.setRuleId(sarifRuleId(f.category));
    result.setLevel(SARIF_LEVELS[f.severity]);
    result.setMessageText(f.suggestion ? `${f.message}\n\nSuggestion: ${f.suggestion}` : f.message);
    result.setLocationArtifactUri({ uri: f.file });
    if (f.line > 0) result.setLocationRegion({ startLine: f.line, endLine: Math.max(f.line, f.endLine ?? f.line) });
    result.result.partialFingerprints = { 'agentflow/v1': findingKey(f) };
    result.result.properties = { severity: f.severity, ...(f.agents?.length ? { agents: [...f.agents] } : {}) };
    run.addResult(result);
  }
  const log = new SarifBuilder();
  log.addRun(run);
  return log.buildSarifOutput();
}
