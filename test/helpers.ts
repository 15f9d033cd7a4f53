import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionInput } from '../lambdas/core/contracts.js';
import { createExampleRepo, type ExampleRepo } from '../lib/local/example-repo.js';

/** A fresh temporary folder. */
export const tempDir = (prefix = 'agentflow-test-') => mkdtempSync(join(tmpdir(), prefix));

/** The example repository in a fresh temporary folder. */
export const exampleRepo = (): ExampleRepo => createExampleRepo(join(tempDir(), 'repo'));

/** Execution input for the example pull request. */
export function exampleInput(repo: ExampleRepo, runId: string, workflow = 'pr-review'): ExecutionInput {
  return {
    runId,
    workflow,
    change: {
      repository: 'acme/shop-apps',
      number: 42,
      title: 'Checkout: pay with card',
      author: 'mobile-dev',
      url: '',
      action: 'opened',
      baseSha: repo.base,
      headSha: repo.head,
      baseRef: 'main',
      headRef: 'feature/checkout-payments',
    },
  };
}
