import { describe, expect, it } from 'vitest';
import { declaresDataFields } from '../../lambdas/core/answer.js';
import { REJECTED_ERROR } from '../../lambdas/core/approvals.js';
import {
  AGENT_OUTPUTS,
  PROVIDERS as CONTRACT_PROVIDERS,
  SEVERITIES as CONTRACT_SEVERITIES,
  STRUCTURED_OUTPUTS as CONTRACT_STRUCTURED_OUTPUTS,
  BUILTIN_TOOL_SERVER as CORE_BUILTIN_TOOL_SERVER,
  BUILTIN_TOOLS as CORE_BUILTIN_TOOLS,
  DEFAULT_FAIL_ON as CORE_FAIL_ON,
  DEFAULT_INLINE_MIN_SEVERITY as CORE_INLINE_MIN_SEVERITY,
  DEFAULT_MAX_INLINE_COMMENTS as CORE_MAX_INLINE_COMMENTS,
  RUN_KINDS as CORE_RUN_KINDS,
} from '../../lambdas/core/contracts.js';
import * as errors from '../../lambdas/core/errors.js';
import { stateKey } from '../../lambdas/core/request-report.js';
import { DEFAULT_MAX_ITERATIONS as CORE_MAX_ITERATIONS } from '../../lambdas/core/tool-loop.js';
import {
  VERIFIER_AGENT as CORE_VERIFIER_AGENT,
  DEFAULT_VERIFY_BATCH as CORE_VERIFY_BATCH,
  VERIFY_PHASE as CORE_VERIFY_PHASE,
  VERIFY_ACTIONS,
} from '../../lambdas/core/verify.js';
import { APPROVAL_REJECTED_ERROR, compileWorkflow, LAMBDA_SERVICE_ERRORS, RETRYABLE_ERRORS } from '../../lib/workflow/compile.js';
import {
  BUILTIN_TOOL_SERVER as LOAD_BUILTIN_TOOL_SERVER,
  BUILTIN_TOOLS as LOAD_BUILTIN_TOOLS,
  DEFAULT_MAX_ITERATIONS as LOAD_MAX_ITERATIONS,
  RUN_KINDS as LOAD_RUN_KINDS,
  phaseKey,
} from '../../lib/workflow/index.js';
import {
  declaredDataFields,
  DEFAULT_FAIL_ON as LOAD_FAIL_ON,
  DEFAULT_INLINE_MIN_SEVERITY as LOAD_INLINE_MIN_SEVERITY,
  DEFAULT_MAX_INLINE_COMMENTS as LOAD_MAX_INLINE_COMMENTS,
  VERIFIER_AGENT as LOAD_VERIFIER_AGENT,
  DEFAULT_VERIFY_BATCH as LOAD_VERIFY_BATCH,
  VERIFY_PHASE as LOAD_VERIFY_PHASE,
} from '../../lib/workflow/load.js';
import type { ResolvedAgent } from '../../lib/workflow/model.js';
import {
  PROVIDERS as WORKFLOW_PROVIDERS,
  SEVERITIES as WORKFLOW_SEVERITIES,
  STRUCTURED_OUTPUTS as WORKFLOW_STRUCTURED_OUTPUTS,
  WorkflowSourceSchema,
} from '../../lib/workflow/schema.js';
import { loadWorkspace } from '../../lib/workspace.js';

/**
 * Names written on both sides of the boundary between the workflow compiler (lib/workflow, which
 * imports nothing of the Lambdas) and the Lambdas: the error names Retry and Catch match, the
 * provider and severity lists. Any difference fails here.
 */

/** Every error class the Lambdas' core exports, by class name. */
const errorClasses: Array<[string, unknown]> = Object.entries(errors as Record<string, unknown>).filter(
  ([, v]) => typeof v === 'function' && (v as { prototype: unknown }).prototype instanceof Error,
);

/** An error name a compiled definition may match: a Lambda error class, the rejected approval, or a Step Functions / Lambda service error. */
const known = new Set([...errorClasses.map(([n]) => n), REJECTED_ERROR, ...LAMBDA_SERVICE_ERRORS]);

function errorEquals(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) errorEquals(n, out);
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'ErrorEquals' && Array.isArray(v)) out.push(...v.map(String));
      else errorEquals(v, out);
    }
  }
  return out;
}

describe('shared names between the compiler and the Lambdas', () => {
  it('names every error class by its class name, so the name Step Functions sees is the one the compiler writes', () => {
    expect(errorClasses.length).toBeGreaterThan(8);
    // Constructor arguments by class: (message, provider) for most; BudgetExceededError takes amounts.
    const make = (name: string, Cls: unknown) =>
      name === 'BudgetExceededError'
        ? new errors.BudgetExceededError('run', 'run#r', 1, 1, 1)
        : new (Cls as new (m: string, p: string) => Error)('m', 'bedrock');
    for (const [name, Cls] of errorClasses) expect(make(name, Cls).name, name).toBe(name);
  });

  it('retries only errors an InvokeAgent class raises, and catches the rejected approval by the name the approvals use case fails with', () => {
    for (const name of RETRYABLE_ERRORS)
      expect(
        errorClasses.map(([n]) => n),
        name,
      ).toContain(name);
    expect(APPROVAL_REJECTED_ERROR).toBe(REJECTED_ERROR);
  });

  it('matches in every compiled workflow only error names a Lambda or the service raises', () => {
    const ws = loadWorkspace();
    expect(ws.workflows.size).toBeGreaterThan(0);
    for (const wf of ws.workflows.values()) {
      const names = errorEquals(compileWorkflow(wf)).filter((n) => !n.startsWith('States.'));
      for (const n of names) expect(known.has(n), `${wf.id}: ErrorEquals "${n}"`).toBe(true);
    }
  });

  it('lists the same providers, severities and structured outputs in the workflow language as in the Lambdas’ contracts', () => {
    expect([...WORKFLOW_PROVIDERS]).toEqual([...CONTRACT_PROVIDERS]);
    expect([...WORKFLOW_SEVERITIES]).toEqual([...CONTRACT_SEVERITIES]);
    expect([...WORKFLOW_STRUCTURED_OUTPUTS]).toEqual([...CONTRACT_STRUCTURED_OUTPUTS]);
  });

  it('names the verifier pass the same in the workflow loader and the Lambdas (phase, agent, batch, actions)', () => {
    expect(LOAD_VERIFY_PHASE).toBe(CORE_VERIFY_PHASE);
    expect(LOAD_VERIFIER_AGENT).toBe(CORE_VERIFIER_AGENT);
    expect(LOAD_VERIFY_BATCH).toBe(CORE_VERIFY_BATCH);
    const actions = (
      WorkflowSourceSchema.shape.verify.unwrap().options[1] as { shape: { unconfirmed: { unwrap(): { options: string[] } } } }
    ).shape.unconfirmed.unwrap().options;
    expect(actions).toEqual([...VERIFY_ACTIONS]);
    // A key missing here (or one the model does not have) fails to compile.
    const outputs: Record<ResolvedAgent['output'], true> = {
      findings: true,
      document: true,
      verdicts: true,
      tests: true,
      answer: true,
      route: true,
      guardrail: true,
    };
    expect(Object.keys(outputs)).toEqual([...AGENT_OUTPUTS]);
  });

  it('names the run kinds, the built-in tools and the tool loop default the same in the workflow loader and the Lambdas', () => {
    expect([...LOAD_RUN_KINDS]).toEqual([...CORE_RUN_KINDS]);
    expect([...LOAD_BUILTIN_TOOLS]).toEqual([...CORE_BUILTIN_TOOLS]);
    expect(LOAD_BUILTIN_TOOL_SERVER).toBe(CORE_BUILTIN_TOOL_SERVER);
    expect(LOAD_MAX_ITERATIONS).toBe(CORE_MAX_ITERATIONS);
    // Aggregate finds a phase's results under the key the compiler keeps them at.
    for (const name of ['order-status', 'refund.v2', 'a b', 'plain_name']) expect(stateKey(name)).toBe(phaseKey(name));
  });

  it('reads an answer agent\'s "Data fields:" line the same in the workflow loader and the Lambdas', () => {
    const prompts = [
      'Answer billing questions.\nData fields: refund_usd (number), order_id (string)',
      '  Data fields: verdict (pass|fail)',
      'Data fields:\nrefund_usd (number)', // the fields must be on the line itself
      'Data fields:   ',
      'No data here.',
      'data fields: lower_case (number)',
    ];
    for (const p of prompts) expect(declaredDataFields(p) !== undefined, p).toBe(declaresDataFields(p));
    expect(declaredDataFields(prompts[0] as string)).toEqual(['refund_usd', 'order_id']);
  });

  it('has the same inline review defaults in the workflow loader and the Lambdas', () => {
    expect(LOAD_MAX_INLINE_COMMENTS).toBe(CORE_MAX_INLINE_COMMENTS);
    expect(LOAD_INLINE_MIN_SEVERITY).toBe(CORE_INLINE_MIN_SEVERITY);
    expect(LOAD_FAIL_ON).toBe(CORE_FAIL_ON);
  });
});
