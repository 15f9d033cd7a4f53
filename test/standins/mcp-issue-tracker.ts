/**
 * An issue-tracker MCP server for tests, spoken over stdio with `@modelcontextprotocol/sdk` (run it
 * with `node --import tsx test/standins/mcp-issue-tracker.ts`). It says what it is: a stand-in, no
 * real tracker behind it. Issues live in memory for the life of the process, after three seeded
 * ones (ISSUE-901 to ISSUE-903); created ones are numbered ISSUE-1, ISSUE-2, ….
 *
 * Tools: `search_issues` (read: { query } → "<n> issue(s) match "<query>": ISSUE-…, …", then one
 * line per issue), `create_issue` (write: { title, body, pr? } → "Created ISSUE-<n>: <title>", then
 * the PR and who asked), `create_ticket` ({ title, body? } → "Created ISSUE-<n>: <title>"),
 * `get_ticket` ({ id }), `whoami` (the requester in `_meta["io.agentflow/requester"]`). Every tool
 * but `whoami` refuses a requester in `MCP_DENY_REQUESTERS` and logs to `MCP_CALL_LOG`
 * (mcp-standin-kit.ts). And tools that misbehave on purpose:
 * `leak` (an answer holding an AWS key), `huge` (50,000 characters), `fail` (an `isError` result),
 * `hang` (never answers), `crash` (the process exits), `garbage` (writes a line that is not JSON-RPC
 * to stdout, then never answers).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';
import { guarded, text } from './mcp-standin-kit.js';

const NAME = 'issue tracker';
const server = new McpServer({ name: 'agentflow-issue-tracker-stand-in', version: '1.0.0' });
interface Issue {
  title: string;
  body: string;
  status: 'open' | 'closed';
  pr?: number;
  by?: string;
}
const SEED: Array<[string, Issue]> = [
  ['ISSUE-901', { title: 'Checkout crashes on an empty cart', body: 'Tapping Pay with no items crashes the app.', status: 'open' }],
  ['ISSUE-902', { title: 'Flaky unit test in the checkout suite', body: 'test/checkout.test.ts fails one run in ten.', status: 'open' }],
  [
    'ISSUE-903',
    { title: 'Login button misaligned on small screens', body: 'iPhone SE: the button overlaps the footer.', status: 'closed' },
  ],
];
const issues = new Map<string, Issue>(SEED);
let created = 0;
const add = (issue: Issue) => {
  const id = `ISSUE-${++created}`;
  issues.set(id, issue);
  return id;
};

server.registerTool(
  'search_issues',
  {
    description: 'Search the (stand-in) issue tracker: issues whose title or body has a word of the query',
    inputSchema: { query: z.string().min(1) },
  },
  guarded(NAME, 'search_issues', ({ query }: { query: string }) => {
    const words = query.toLowerCase().match(/[a-z0-9]{3,}/g) ?? [];
    const found = [...issues].filter(([, i]) => words.some((w) => `${i.title} ${i.body}`.toLowerCase().includes(w)));
    if (found.length === 0) return text(`0 issues match "${query}".`);
    return text(
      [
        `${found.length} issue(s) match "${query}": ${found.map(([id]) => id).join(', ')}`,
        ...found.map(([id, i]) => `- ${id} (${i.status}): ${i.title}`),
      ].join('\n'),
    );
  }),
);
server.registerTool(
  'create_issue',
  {
    description: 'Create an issue in the (stand-in) issue tracker; answers its key',
    inputSchema: { title: z.string().min(1), body: z.string(), pr: z.number().int().optional() },
  },
  guarded(NAME, 'create_issue', ({ title, body, pr }: { title: string; body: string; pr?: number }, requester) => {
    const id = add({ title, body, status: 'open', ...(pr === undefined ? {} : { pr }), ...(requester ? { by: requester } : {}) });
    return text(
      [`Created ${id}: ${title}`, ...(pr === undefined ? [] : [`PR: ${pr}`]), `Reported for: ${requester ?? 'nobody'}`].join('\n'),
    );
  }),
);
server.registerTool(
  'create_ticket',
  {
    description: 'Create a ticket in the (stand-in) issue tracker',
    inputSchema: { title: z.string().min(1), body: z.string().optional() },
  },
  guarded(NAME, 'create_ticket', ({ title, body }: { title: string; body?: string }) =>
    text(`Created ${add({ title, body: body ?? '', status: 'open' })}: ${title}`),
  ),
);
server.registerTool(
  'get_ticket',
  { description: 'Read a ticket', inputSchema: { id: z.string() } },
  guarded(NAME, 'get_ticket', ({ id }: { id: string }) => {
    const t = issues.get(id);
    return t ? text(`${id}: ${t.title}\n${t.body}`) : text(`no ticket ${id}`, true);
  }),
);
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
