import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../lambdas/core/contracts.js';
import type { ExampleRepo } from '../../lib/local/example-repo.js';
import type { LocalRuntime } from '../../lib/local/runtime.js';
import { exampleInput, exampleRepo, testRuntime } from '../helpers.js';

let repo: ExampleRepo;
let rt: LocalRuntime;
const comments: string[] = [];
beforeAll(async () => {
  repo = exampleRepo();
  rt = await testRuntime(repo, { onComment: (body) => comments.push(body) });
});
afterAll(async () => {
  await rt?.stop();
});

describe('e2e: a manual run on two refs (no pull request)', () => {
  it('reviews the refs, records the run and its report, and tries no pull-request comment (number 0)', async () => {
    // Prepare: what `/agentflow run pr-review base=main head=…` starts: a change with number 0.
    const base = exampleInput(repo, 'manual-1');
    const input = { ...base, change: { ...base.change, number: 0, url: '', title: 'main...feature/checkout-payments' } };

    // Act
    const result = await rt.execute('pr-review', 'manual-1', input);

    // Assess
    expect(result.status).toBe('SUCCEEDED');
    expect((result.output as RunSummary).findings).toBeGreaterThan(0);
    expect(comments).toEqual([]);
    const record = await rt.runs.get('manual-1');
    expect(record).toMatchObject({
      status: 'SUCCEEDED',
      number: 0,
      commentUrl: null,
      reportRef: expect.stringContaining('runs/manual-1/report.json'),
    });
  });
});
