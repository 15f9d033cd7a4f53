import { describe, expect, it } from 'vitest';
import { LoadContextInputSchema } from '../../../lambdas/core/contracts.js';
import { type AslState, compileWorkflow } from '../../../lib/workflow/index.js';
import { exampleChange, loadTestWorkflow, workflowErrors } from '../../helpers.js';

const load = loadTestWorkflow;
const errors = workflowErrors;

const valid = `name: T
trigger: { event: pull_request.opened }
phases:
  - name: review
    agents: [code-review]
`;

/** The LoadContext task input the compiled workflow passes for `context`. */
const loadInput = (text: string) => {
  const wf = load(text).value;
  if (!wf) throw new Error(errors(text).join('\n'));
  const state = compileWorkflow(wf).States['Load context'] as AslState & { Parameters: { Payload: Record<string, unknown> } };
  return state.Parameters.Payload.context;
};

describe('Workflow setting: context', () => {
  it('defaults to 20 lines, files of at most 150 lines whole and the enclosing declaration', () => {
    expect(load(valid).value?.context).toEqual({ lines: 20, wholeFileLines: 150, enclosing: true });
    expect(loadInput(valid)).toEqual({ lines: 20, wholeFileLines: 150, enclosing: true });
  });

  it('takes each field given, the defaults for the others, and none as no context', () => {
    expect(loadInput(`${valid}context: { lines: 5, enclosing: false }\n`)).toEqual({ lines: 5, wholeFileLines: 150, enclosing: false });
    expect(loadInput(`${valid}context: none\n`)).toEqual({ lines: 0, wholeFileLines: 0, enclosing: false });
  });

  it('refuses a negative or huge line count, an unknown field and another word than none, with line:col', () => {
    expect(errors(`${valid}context: { lines: -1 }\n`)[0]).toMatch(/^workflows\/test\.yml:6:\d+: .*lines/);
    expect(errors(`${valid}context: { whole_file_lines: 100000 }\n`)[0]).toMatch(/^workflows\/test\.yml:6:\d+: .*whole_file_lines/);
    expect(errors(`${valid}context: { line: 3 }\n`)[0]).toMatch(/^workflows\/test\.yml:6:\d+: /);
    expect(errors(`${valid}context: all\n`)).toEqual([
      'workflows/test.yml:6:10: context: write none or { lines, whole_file_lines, enclosing }',
    ]);
  });

  it('gives a LoadContext input without context (an older execution) the default', () => {
    const input = LoadContextInputSchema.parse({ runId: 'r', workflow: 'w', change: exampleChange() });
    expect(input.context).toEqual({ lines: 20, wholeFileLines: 150, enclosing: true });
  });
});
