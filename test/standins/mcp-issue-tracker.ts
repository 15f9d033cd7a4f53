/**
 * An issue-tracker MCP server for tests, spoken over stdio with `@modelcontextprotocol/sdk` (run it
 * with `node --import tsx test/standins/mcp-issue-tracker.ts`). It says what it is: a stand-in, no
 * real tracker behind it. Tickets live in memory for the life of the process.
 *
 * Tools: `create_ticket` ({ title, body? } → "Created ISSUE-<n>: <title>"), `get_ticket` ({ id }),
 * `whoami` (the requester in `_meta["io.agentflow/requester"]`), and tools that misbehave on purpose:
 * `leak` (an answer holding an AWS key), `huge` (50,000 characters), `fail` (an `isError` result),
 * `hang` (never answers), `crash` (the process exits), `garbage` (writes a line that is not JSON-RPC
 * to stdout, then never answers).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const server = new McpServer({ name: 'agentflow-issue-tracker-stand-in', version: '1.0.0' });
const tickets = new Map<string, { title: string; body: string }>();
const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });

server.registerTool(
  'create_ticket',
  {
    description: 'Create a ticket in the (stand-in) issue tracker',
    inputSchema: { title: z.string().min(1), body: z.string().optional() },
  },
  async ({ title, body }) => {
    const id = `ISSUE-${tickets.size + 1}`;
    tickets.set(id, { title, body: body ?? '' });
    return text(`Created ${id}: ${title}`);
  },
);
server.registerTool('get_ticket', { description: 'Read a ticket', inputSchema: { id: z.string() } }, async ({ id }) => {
  const t = tickets.get(id);
  return t ? text(`${id}: ${t.title}\n${t.body}`) : { ...text(`no ticket ${id}`), isError: true };
});
server.registerTool('whoami', { description: 'Who the request is made for' }, async (extra) =>
  text(String((extra._meta as Record<string, unknown> | undefined)?.['io.agentflow/requester'] ?? 'nobody')),
);
server.registerTool('leak', { description: 'Answers with a credential in it' }, async () =>
  text('config: token ghp_R8wq3Zk2Lm9Xv4Tn7Pb1Hc6Jd0Yf5Ge2Sa8K and AKIAQ3EGUIOE5TNGXX7Z'),
);
server.registerTool('huge', { description: 'Answers 50,000 characters' }, async () => text('x'.repeat(50_000)));
server.registerTool('fail', { description: 'Answers an error result' }, async () => ({
  ...text('tracker is read-only today'),
  isError: true,
}));
server.registerTool('hang', { description: 'Never answers' }, () => new Promise(() => undefined));
server.registerTool('crash', { description: 'Exits the process' }, () => process.exit(3));
server.registerTool('garbage', { description: 'Writes a line that is not JSON-RPC' }, () => {
  process.stdout.write('this is not json-rpc\n');
  return new Promise(() => undefined);
});

await server.connect(new StdioServerTransport());
