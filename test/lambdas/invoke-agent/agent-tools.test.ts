import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ChangedFile, ToolServer } from '../../../lambdas/core/contracts.js';
import { agentToolbox, requesterOf, writeAllowed } from '../../../lambdas/invoke-agent/agent-tools.js';
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
const builtin: ToolServer = { name: 'agentflow', builtin: true, args: [], allow: [{ name: 'list_changed_files', write: false }] };
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
    const withHttp = agentToolbox({ tools: [http, builtin], allowWrite: false, output: 'answer' }, {}, { toolTimeoutMs: 5_000, mcpHeaders });
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
