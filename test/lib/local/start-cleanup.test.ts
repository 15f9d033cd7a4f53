import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalRuntime } from '../../../lib/local/runtime.js';
import { loadWorkspace } from '../../../lib/workspace.js';
import { tempDir } from '../../helpers.js';

/** This process's listening servers (what would keep it alive after an error). */
const servers = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('LocalRuntime.start when it fails after the table and the model server started', () => {
  it('throws the error, leaves no server listening, and leaves the state folder free for the next start', async () => {
    // Prepare: a fault in the last step of start (reconciling the folder's runs), after the
    // persisted table claimed the folder and the offline model server listens.
    const stateDir = tempDir();
    const options = {
      stateDir,
      repoPath: tempDir(),
      workspace: loadWorkspace(),
      modes: { openai: 'offline', bedrock: 'offline', 'openai-compatible': 'offline' } as const,
      print: () => undefined,
    };
    const before = servers();
    const reconcile = vi
      .spyOn(LocalRuntime.prototype as unknown as { reconcile: () => Promise<unknown> }, 'reconcile')
      .mockRejectedValueOnce(new Error('injected: reconcile failed'));

    // Act
    const failed = await LocalRuntime.start(options).catch((e: unknown) => e);

    // Assess: the error as thrown; the model server closed (it leaves the list within a few turns).
    expect(reconcile).toHaveBeenCalledTimes(1);
    expect(failed).toMatchObject({ message: 'injected: reconcile failed' });
    for (let i = 0; i < 50 && servers() > before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(servers()).toBe(before);
    // The folder's claim went with the table: a new start opens it (no "held by another process").
    const again = await LocalRuntime.start(options);
    try {
      expect(again.recovered).toBeDefined();
    } finally {
      await again.stop();
    }
  });
});
