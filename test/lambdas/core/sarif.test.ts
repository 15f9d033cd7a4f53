import { describe, expect, it } from 'vitest';
import { buildSarif, SARIF_LEVELS, sarifRuleId, securityFindings } from '../../../lambdas/core/sarif.js';
import { findingKey } from '../../../lambdas/core/verify.js';
import { exampleFinding } from '../../helpers.js';
import { sarifSchemaErrors } from '../../standins/github.js';

const secret = exampleFinding({
  file: 'App/Api.swift',
  line: 7,
  endLine: 9,
  severity: 'critical',
  category: 'hard-coded secret',
  message: 'An API key is in the source.',
  suggestion: 'Read it from the keychain.',
  agents: ['security'],
});
const plist = exampleFinding({
  file: 'App/Info.plist',
  line: 0,
  severity: 'medium',
  category: 'transport',
  message: 'NSAllowsArbitraryLoads turns ATS off.',
  suggestion: '',
  agents: ['security', 'code-review'],
});
const unwrap = exampleFinding();

describe('Function: buildSarif', () => {
  it('builds a log that validates against the SARIF 2.1.0 schema', () => {
    // Act
    const log = buildSarif([secret, plist, unwrap], 'pr-review');

    // Assess
    expect(sarifSchemaErrors(log)).toEqual([]);
    expect(log.version).toBe('2.1.0');
    expect(log.runs[0]?.tool.driver).toMatchObject({ name: 'AgentFlow', version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(log.runs[0]?.automationDetails).toEqual({ id: 'pr-review/' });
  });

  it('validates an empty log (a run without security findings clears the earlier alerts)', () => {
    const log = buildSarif([], 'pr-review');
    expect(sarifSchemaErrors(log)).toEqual([]);
    expect(log.runs[0]?.results).toEqual([]);
  });

  it('is refused by the schema check when a result is malformed (the check is not vacuous)', () => {
    const log = buildSarif([secret], 'pr-review');
    const bad = { ...log, runs: [{ ...log.runs[0], results: [{ level: 'fatal', message: {} }] }] };
    expect(sarifSchemaErrors(bad).length).toBeGreaterThan(0);
  });

  it('gives one rule per category and each result its rule, level by severity, message with the suggestion', () => {
    const run = buildSarif([secret, plist, unwrap, { ...unwrap, line: 30 }], 'pr-review').runs[0];
    expect(run?.tool.driver.rules?.map((r) => r.id)).toEqual([
      'agentflow/correctness',
      'agentflow/hard-coded-secret',
      'agentflow/transport',
    ]);
    expect(run?.results?.map((r) => [r.ruleId, r.level])).toEqual([
      ['agentflow/hard-coded-secret', 'error'],
      ['agentflow/transport', 'warning'],
      ['agentflow/correctness', 'error'],
      ['agentflow/correctness', 'error'],
    ]);
    expect(run?.results?.[0]?.message.text).toBe('An API key is in the source.\n\nSuggestion: Read it from the keychain.');
    expect(run?.results?.[1]?.message.text).toBe('NSAllowsArbitraryLoads turns ATS off.');
  });

  it('maps critical and high to error, medium to warning, low and info to note', () => {
    expect(SARIF_LEVELS).toEqual({ critical: 'error', high: 'error', medium: 'warning', low: 'note', info: 'note' });
  });

  it('places a finding on its lines, and a whole-file finding (line 0) on the file without a region', () => {
    const [first, second] = buildSarif([secret, plist], 'pr-review').runs[0]?.results ?? [];
    expect(first?.locations?.[0]?.physicalLocation).toMatchObject({
      artifactLocation: { uri: 'App/Api.swift' },
      region: { startLine: 7, endLine: 9 },
    });
    expect(second?.locations?.[0]?.physicalLocation?.artifactLocation?.uri).toBe('App/Info.plist');
    expect(second?.locations?.[0]?.physicalLocation?.region).toBeUndefined();
  });

  it("fingerprints each result with the finding's key, so an alert is followed from commit to commit", () => {
    const [first] = buildSarif([secret], 'pr-review').runs[0]?.results ?? [];
    expect(first?.partialFingerprints).toEqual({ 'agentflow/v1': findingKey(secret) });
  });

  it('makes a rule id of any category', () => {
    expect(sarifRuleId('Insecure Storage / Keychain')).toBe('agentflow/insecure-storage-keychain');
    expect(sarifRuleId('!!!')).toBe('agentflow/finding');
  });
});

describe('Function: securityFindings', () => {
  it('keeps the findings one of the security agents reported, merged ones included', () => {
    expect(securityFindings([secret, plist, unwrap], ['security'])).toEqual([secret, plist]);
    expect(securityFindings([secret, plist, unwrap], [])).toEqual([]);
  });
});
