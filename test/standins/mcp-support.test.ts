import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type McpServerConfig, McpToolbox } from '../../lambdas/adapters/mcp-toolbox.js';
import { PROJECT_ROOT } from '../../lib/workspace.js';
import type { LoggedCall } from './mcp-standin-kit.js';

/*
 * The support back-office MCP stand-in (mcp-support.ts) over stdio, listed and called through
 * McpToolbox as an agent's tool loop calls it.
 */

const log = () => join(mkdtempSync(join(tmpdir(), 'agentflow-mcp-')), 'calls.jsonl');
const support = (env: Record<string, string> = {}): McpServerConfig => ({
  name: 'support',
  command: process.execPath,
  args: ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'standins', 'mcp-support.ts')],
  env: { NODE_PATH: join(PROJECT_ROOT, 'node_modules'), ...env },
  allow: [{ name: 'get_order' }, { name: 'issue_refund', write: true }, { name: 'search_kb' }],
});
const logged = (path: string): LoggedCall[] =>
  readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

describe('MCP stand-in: support back office', () => {
  let box: McpToolbox | undefined;
  afterEach(async () => {
    await box?.close();
    box = undefined;
  });

  it('lists get_order, issue_refund and search_kb with their input fields', async () => {
    box = new McpToolbox([support()], { timeoutMs: 20_000, allowWrite: true });
    const defs = await box.definitions();
    expect(defs.map((d) => [d.name, d.write, Object.keys((d.inputSchema.properties ?? {}) as object)])).toEqual([
      ['support__get_order', false, ['order_id']],
      ['support__issue_refund', true, ['order_id', 'amount_usd']],
      ['support__search_kb', false, ['query']],
    ]);
  }, 60_000);

  it('answers the seeded orders ($150 and $45) in any id form, and searches the knowledge base', async () => {
    box = new McpToolbox([support()], { timeoutMs: 20_000 });
    expect((await box.call('support__get_order', { order_id: '#1234' })).output).toBe(
      'Order 1234: delivered, $150.00 (amount_usd: 150), customer ana@example.com\nItems: Wireless headphones',
    );
    expect((await box.call('support__get_order', { order_id: 'ORD-1235' })).output?.split('\n')[0]).toBe(
      'Order 1235: shipped, $45.00 (amount_usd: 45), customer ben@example.com',
    );
    expect(await box.call('support__get_order', { order_id: '9999' })).toMatchObject({ ok: false, output: 'no order 9999' });
    const kb = await box.call('support__search_kb', { query: 'charged twice' });
    expect(kb.output?.split('\n')).toEqual([
      '1 article(s) match "charged twice": Refunds and double charges',
      '- Refunds and double charges: If you were charged twice, we refund the duplicate charge within 5 business days.',
    ]);
  }, 60_000);

  it('refunds up to what is left of the order, and refuses more', async () => {
    box = new McpToolbox([support()], { timeoutMs: 20_000, allowWrite: true });
    const first = await box.call('support__issue_refund', { order_id: '1235', amount_usd: 40 }, { requester: 'slack:U024BE7LH' });
    expect(first).toMatchObject({ ok: true, output: 'Refund RF-1 of $40.00 issued for order 1235\nIssued for: slack:U024BE7LH' });
    const more = await box.call('support__issue_refund', { order_id: '1235', amount_usd: 10 });
    expect(more).toMatchObject({
      ok: false,
      output: 'refused: a refund of $10.00 is more than the $5.00 left of order 1235 ($45.00)',
    });
  }, 60_000);

  it('refuses a requester the server denies, and logs which calls reached it for whom', async () => {
    const path = log();
    box = new McpToolbox([support({ MCP_DENY_REQUESTERS: 'slack:U0BLOCKED, slack:U0OTHER', MCP_CALL_LOG: path })], {
      timeoutMs: 20_000,
      allowWrite: true,
    });
    const refused = await box.call('support__issue_refund', { order_id: '1234', amount_usd: 150 }, { requester: 'slack:U0BLOCKED' });
    expect(refused).toMatchObject({
      ok: false,
      error:
        'support__issue_refund answered an error: slack:U0BLOCKED may not use issue_refund on this support back office (refused by the server)',
    });
    await box.call('support__get_order', { order_id: '1234' }, { requester: 'slack:U024BE7LH' });
    await box.call('support__get_order', { order_id: '1234' });
    expect(logged(path)).toEqual([
      {
        server: 'support back office',
        tool: 'issue_refund',
        arguments: { order_id: '1234', amount_usd: 150 },
        requester: 'slack:U0BLOCKED',
        outcome: 'refused',
      },
      { server: 'support back office', tool: 'get_order', arguments: { order_id: '1234' }, requester: 'slack:U024BE7LH', outcome: 'ok' },
      { server: 'support back office', tool: 'get_order', arguments: { order_id: '1234' }, requester: null, outcome: 'ok' },
    ]);
  }, 60_000);
});
