import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type McpServerConfig, McpToolbox } from '../../lambdas/adapters/mcp-toolbox.js';
import { PROJECT_ROOT } from '../../lib/workspace.js';
import type { LoggedCall } from './mcp-standin-kit.js';

/*
 * The CI-system MCP stand-in (mcp-ci.ts) over stdio, listed and called through McpToolbox.
 */

const ci = (env: Record<string, string> = {}): McpServerConfig => ({
  name: 'ci',
  command: process.execPath,
  args: ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'standins', 'mcp-ci.ts')],
  env: { NODE_PATH: join(PROJECT_ROOT, 'node_modules'), ...env },
  allow: [{ name: 'get_pipeline' }, { name: 'rerun_pipeline', write: true }],
});

describe('MCP stand-in: CI system', () => {
  let box: McpToolbox | undefined;
  afterEach(async () => {
    await box?.close();
    box = undefined;
  });

  it('lists get_pipeline and rerun_pipeline, each taking pr or pipeline_id', async () => {
    box = new McpToolbox([ci()], { timeoutMs: 20_000, allowWrite: true });
    const defs = await box.definitions();
    expect(defs.map((d) => [d.name, d.write, Object.keys((d.inputSchema.properties ?? {}) as object)])).toEqual([
      ['ci__get_pipeline', false, ['pr', 'pipeline_id']],
      ['ci__rerun_pipeline', true, ['pr', 'pipeline_id']],
    ]);
  }, 60_000);

  it('reads a pull request’s latest pipeline with its failed job, reruns it, and reads the rerun by its new id', async () => {
    box = new McpToolbox([ci()], { timeoutMs: 20_000, allowWrite: true });
    expect((await box.call('ci__get_pipeline', { pr: 42 })).output).toBe(
      'Pipeline 7781 for PR 42: failed (job unit-tests)\nFailed job: unit-tests\nLog: FAIL test/checkout.test.ts › applies the discount code',
    );
    const rerun = await box.call('ci__rerun_pipeline', { pipeline_id: 7781 }, { requester: 'slack:U024BE7LH' });
    expect(rerun).toMatchObject({
      ok: true,
      output: 'Started pipeline 7800 for PR 42 (rerun of 7781): running\nStarted for: slack:U024BE7LH',
    });
    expect((await box.call('ci__get_pipeline', { pr: 42 })).output).toBe('Pipeline 7800 for PR 42: running\nRerun of: 7781');
    expect(await box.call('ci__rerun_pipeline', { pr: 42 })).toMatchObject({
      ok: false,
      output: 'pipeline 7800 is still running: nothing to rerun',
    });
    expect(await box.call('ci__get_pipeline', {})).toMatchObject({ ok: false, output: 'give pr or pipeline_id' });
  }, 60_000);

  it('refuses a requester the server denies, and logs the call as refused', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'agentflow-mcp-')), 'calls.jsonl');
    box = new McpToolbox([ci({ MCP_DENY_REQUESTERS: 'slack:U0BLOCKED', MCP_CALL_LOG: path })], { timeoutMs: 20_000, allowWrite: true });
    const r = await box.call('ci__rerun_pipeline', { pr: 42 }, { requester: 'slack:U0BLOCKED' });
    expect(r).toMatchObject({ ok: false, output: 'slack:U0BLOCKED may not use rerun_pipeline on this CI system (refused by the server)' });
    const lines: LoggedCall[] = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toEqual([
      { server: 'CI system', tool: 'rerun_pipeline', arguments: { pr: 42 }, requester: 'slack:U0BLOCKED', outcome: 'refused' },
    ]);
  }, 60_000);
});
