import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type McpServerConfig, McpToolbox } from '../../lambdas/adapters/mcp-toolbox.js';
import { PROJECT_ROOT } from '../../lib/workspace.js';
import type { LoggedCall } from './mcp-standin-kit.js';

/*
 * The issue-tracker MCP stand-in's request tools (mcp-issue-tracker.ts: search_issues, create_issue)
 * over stdio through McpToolbox; its misbehaving tools are tested in test/lambdas/adapters/mcp-toolbox.test.ts.
 */

const tracker = (env: Record<string, string> = {}): McpServerConfig => ({
  name: 'issues',
  command: process.execPath,
  args: ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'standins', 'mcp-issue-tracker.ts')],
  env: { NODE_PATH: join(PROJECT_ROOT, 'node_modules'), ...env },
  allow: [{ name: 'search_issues' }, { name: 'create_issue', write: true }],
});

describe('MCP stand-in: issue tracker', () => {
  let box: McpToolbox | undefined;
  afterEach(async () => {
    await box?.close();
    box = undefined;
  });

  it('lists search_issues and create_issue (title, body, pr)', async () => {
    box = new McpToolbox([tracker()], { timeoutMs: 20_000, allowWrite: true });
    const defs = await box.definitions();
    expect(defs.map((d) => [d.name, d.write, Object.keys((d.inputSchema.properties ?? {}) as object), d.inputSchema.required])).toEqual([
      ['issues__search_issues', false, ['query'], ['query']],
      ['issues__create_issue', true, ['title', 'body', 'pr'], ['title', 'body']],
    ]);
  }, 60_000);

  it('creates an issue for the requester, answers its key, and finds it with the seeded ones', async () => {
    box = new McpToolbox([tracker()], { timeoutMs: 20_000, allowWrite: true });
    const created = await box.call(
      'issues__create_issue',
      { title: 'Checkout total wrong in PR 42', body: 'The total skips the discount.', pr: 42 },
      { requester: 'slack:U024BE7LH' },
    );
    expect(created).toMatchObject({
      ok: true,
      output: 'Created ISSUE-1: Checkout total wrong in PR 42\nPR: 42\nReported for: slack:U024BE7LH',
    });
    expect((await box.call('issues__search_issues', { query: 'checkout' })).output?.split('\n')).toEqual([
      '3 issue(s) match "checkout": ISSUE-901, ISSUE-902, ISSUE-1',
      '- ISSUE-901 (open): Checkout crashes on an empty cart',
      '- ISSUE-902 (open): Flaky unit test in the checkout suite',
      '- ISSUE-1 (open): Checkout total wrong in PR 42',
    ]);
    expect((await box.call('issues__search_issues', { query: 'bluetooth' })).output).toBe('0 issues match "bluetooth".');
  }, 60_000);

  it('refuses a requester the server denies, creating nothing, and logs the call as refused', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'agentflow-mcp-')), 'calls.jsonl');
    box = new McpToolbox([tracker({ MCP_DENY_REQUESTERS: 'slack:U0BLOCKED', MCP_CALL_LOG: path })], {
      timeoutMs: 20_000,
      allowWrite: true,
    });
    const r = await box.call('issues__create_issue', { title: 'x', body: 'y' }, { requester: 'slack:U0BLOCKED' });
    expect(r).toMatchObject({
      ok: false,
      output: 'slack:U0BLOCKED may not use create_issue on this issue tracker (refused by the server)',
    });
    expect((await box.call('issues__search_issues', { query: 'x' }, { requester: 'slack:U024BE7LH' })).output).toBe('0 issues match "x".');
    const lines: LoggedCall[] = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.tool, l.requester, l.outcome])).toEqual([
      ['create_issue', 'slack:U0BLOCKED', 'refused'],
      ['search_issues', 'slack:U024BE7LH', 'ok'],
    ]);
  }, 60_000);
});
