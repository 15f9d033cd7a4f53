import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ChangedFile, ToolServer } from '../../../lambdas/core/contracts.js';
import type { Toolbox, ToolCallRecord } from '../../../lambdas/core/tools.js';
import { agentToolbox, LimitedToolbox, requesterOf, writeAllowed } from '../../../lambdas/invoke-agent/agent-tools.js';
import { PROJECT_ROOT } from '../../../lib/workspace.js';
import { exampleChange } from '../../helpers.js';

const TRACKER = join(PROJECT_ROOT, 'test', 'standins', 'mcp-issue-tracker.ts');
const tracker: ToolServer = {
  name: 'issues',
  command: process.execPath,
  args: ['--import', 'tsx', TRACKER],
  builtin: false,
  allow: [
    { name: 'create_ticket', write: true },
    { name: 'whoami', write: false },
  ],
};
const builtin: ToolServer = {
  name: 'agentflow',
  builtin: true,
  args: [],
  allow: [{ name: 'list_changed_files', write: false }],
};
const files: ChangedFile[] = [
  { path: 'App/Pay.swift', status: 'modified', additions: 1, deletions: 0, binary: false, patch: '@@ -1,0 +1,1 @@\n+x' },
];

describe('Function: writeAllowed', () => {
  it('allows write tools only to an agent that answers requests, when it may write and the change is known not to come from a fork', () => {
    const answer = { allowWrite: true, output: 'answer' } as const;
    expect(writeAllowed(answer, exampleChange({ fork: false }))).toBe(true);
    expect(writeAllowed(answer, exampleChange({ fork: true }))).toBe(false);
    // Not known: treated as a fork.
    expect(writeAllowed(answer, exampleChange())).toBe(false);
    expect(writeAllowed({ ...answer, allowWrite: false }, exampleChange({ fork: false }))).toBe(false);
    // A request run has no change.
    expect(writeAllowed(answer, undefined)).toBe(true);
    // A review agent never writes: it runs once per chunk and is retried.
    expect(writeAllowed({ allowWrite: true, output: 'findings' }, exampleChange({ fork: false }))).toBe(false);
  });
});

describe('Function: requesterOf', () => {
  it("names the request's requester, else the change's author on its forge", () => {
    expect(requesterOf({ text: 'x', requester: 'slack:U024BE7LH' }, undefined)).toBe('slack:U024BE7LH');
    expect(requesterOf(undefined, exampleChange({ forge: 'gitlab', author: 'ann' }))).toBe('gitlab:ann');
    expect(requesterOf(undefined, exampleChange({ author: 'mobile-dev' }))).toBe('github:mobile-dev');
    expect(requesterOf(undefined, undefined)).toBeUndefined();
  });
});

describe('Function: agentToolbox', () => {
  it('has no toolbox for an agent without tools', () => {
    expect(agentToolbox({ tools: [], allowWrite: true, output: 'answer' }, {})).toBeUndefined();
  });

  it('reads the mcp secret’s headers only for a server reached by URL, when it is first connected', async () => {
    // Prepare: a closed port, so the connection fails once the headers are read.
    const asked: string[] = [];
    const mcpHeaders = async (server: string) => {
      asked.push(server);
      return { Authorization: 'Bearer trk_live_9f8e7d6c5b4a3210' };
    };
    const http: ToolServer = {
      name: 'tracker',
      url: 'http://127.0.0.1:9/mcp',
      builtin: false,
      args: [],
      allow: [{ name: 'get_ticket', write: false }],
    };
    const stdioOnly = agentToolbox(
      { tools: [tracker, builtin], allowWrite: false, output: 'answer' },
      {},
      { toolTimeoutMs: 20_000, mcpHeaders, mcpEnv: { NODE_PATH: join(PROJECT_ROOT, 'node_modules') } },
    );
    const withHttp = agentToolbox(
      { tools: [http, builtin], allowWrite: false, output: 'answer' },
      {},
      { toolTimeoutMs: 5_000, mcpHeaders },
    );
    try {
      // Act
      await stdioOnly?.definitions();
      const beforeHttp = [...asked];
      await withHttp?.definitions();

      // Assess
      expect(beforeHttp).toEqual([]);
      expect(asked).toEqual(['tracker']);
      expect(withHttp?.unavailable()).toContainEqual({
        server: 'tracker',
        error: expect.stringContaining('connecting to MCP server "tracker"'),
      });
    } finally {
      await stdioOnly?.close();
      await withHttp?.close();
    }
  }, 60_000);

  it("combines the MCP servers and the built-in tools, routes each call to its server, and offers no write tool for a fork's change", async () => {
    // Prepare
    const toolbox = agentToolbox(
      { tools: [tracker, builtin], allowWrite: true, output: 'answer' },
      { change: exampleChange(), files },
      { toolTimeoutMs: 20_000, mcpEnv: { NODE_PATH: join(PROJECT_ROOT, 'node_modules') } },
    );
    try {
      // Act
      const names = (await toolbox?.definitions())?.map((d) => d.name);
      const listed = await toolbox?.call('agentflow__list_changed_files', {});
      const who = await toolbox?.call('issues__whoami', {}, { requester: 'github:mobile-dev' });
      const write = await toolbox?.call('issues__create_ticket', { title: 'x' });
      const unknown = await toolbox?.call('other__tool', {});

      // Assess
      expect(names).toEqual(['issues__whoami', 'agentflow__list_changed_files']);
      expect(listed).toMatchObject({ ok: true, output: 'App/Pay.swift\tmodified\t+1 -0' });
      expect(who).toMatchObject({ ok: true, output: 'github:mobile-dev' });
      expect(write).toMatchObject({ ok: false, refused: true });
      expect(unknown).toMatchObject({ ok: false, refused: true });
      expect(toolbox?.unavailable()).toEqual([]);
    } finally {
      await toolbox?.close();
    }
  }, 60_000);
});

describe('Class: LimitedToolbox', () => {
  /** A toolbox that records what reached it and answers ok. */
  const inner = (reached: unknown[]): Toolbox => ({
    definitions: async () => [],
    unavailable: () => [],
    close: async () => undefined,
    call: async (name, input): Promise<ToolCallRecord> => {
      reached.push(input);
      return { name, input: JSON.stringify(input), ok: true, output: 'Refund RF-1 issued', redacted: 0, ms: 1 };
    },
  });
  const limits = new Map([['support__issue_refund', [{ arg: 'amount_usd', phase: 'billing', field: 'refund_usd' }]]]);
  const previous = { billing: [{ name: 'billing-specialist', phase: 'billing', status: 'succeeded', data: { refund_usd: 45 } }] };

  it("lets a limited argument add up to the earlier answer's number and refuses what would pass it, saying why", async () => {
    // Prepare
    const reached: unknown[] = [];
    const tools = new LimitedToolbox(inner(reached), limits, previous);

    // Act
    const over = await tools.call('support__issue_refund', { order_id: '1235', amount_usd: 4000 });
    const first = await tools.call('support__issue_refund', { order_id: '1235', amount_usd: 30 });
    const second = await tools.call('support__issue_refund', { order_id: '1235', amount_usd: 20 });
    const rest = await tools.call('support__issue_refund', { order_id: '1235', amount_usd: 15 });
    const other = await tools.call('support__get_order', { order_id: '1235' });

    // Assess: 4000 and a total of 50 > 45 never reach the server; 30 + 15 = 45 does.
    expect(over).toMatchObject({
      ok: false,
      refused: true,
      error: "not called: amount_usd 4000 would bring this run's total to 4000, over 45 (billing.refund_usd)",
    });
    expect(first.ok).toBe(true);
    expect(second).toMatchObject({
      ok: false,
      refused: true,
      error: expect.stringContaining('total to 50, over 45 (billing.refund_usd; 30 used)'),
    });
    expect(rest.ok).toBe(true);
    expect(other.ok).toBe(true);
    expect(reached).toEqual([{ order_id: '1235', amount_usd: 30 }, { order_id: '1235', amount_usd: 15 }, { order_id: '1235' }]);
  });

  it('refuses when the argument is not a number or the earlier phase gave none', async () => {
    // Prepare
    const reached: unknown[] = [];
    const noBound = new LimitedToolbox(inner(reached), limits, { billing: [{ phase: 'billing', data: { refund_usd: 'lots' } }] });
    const tools = new LimitedToolbox(inner(reached), limits, previous);

    // Act
    const unknown = await noBound.call('support__issue_refund', { amount_usd: 1 });
    const text = await tools.call('support__issue_refund', { amount_usd: '45' });
    const negative = await tools.call('support__issue_refund', { amount_usd: -100 });

    // Assess
    expect(unknown.error).toBe('not called: amount_usd is limited by billing.refund_usd, and that phase gave no number');
    expect(text.error).toBe('not called: amount_usd must be a number of at most 45 (billing.refund_usd)');
    expect(negative.refused).toBe(true);
    expect(reached).toEqual([]);
  });
});
