import { describe, expect, it } from 'vitest';
import { LocalRuntime } from '../../../lib/local/runtime.js';
import { loadWorkspace } from '../../../lib/workspace.js';
import { tempDir } from '../../helpers.js';

describe('LocalRuntime.start on a Node without Promise.withResolvers (Node 20)', () => {
  it('says the local runtime needs Node 22 before starting anything, instead of failing every state', async () => {
    const promise = Promise as unknown as { withResolvers?: unknown };
    const withResolvers = promise.withResolvers;
    // Node 20 has no Promise.withResolvers (aws-local-stepfunctions calls it).
    promise.withResolvers = undefined;
    try {
      await expect(
        LocalRuntime.start({ stateDir: tempDir(), repoPath: tempDir(), workspace: loadWorkspace(), persist: false }),
      ).rejects.toThrow(/needs Node 22 or later \(this is Node [\d.]+\): run it as `npx agentflow …`/);
    } finally {
      promise.withResolvers = withResolvers;
    }
  });
});
