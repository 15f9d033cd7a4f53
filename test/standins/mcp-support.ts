/**
 * A support back-office MCP server for tests, spoken over stdio with `@modelcontextprotocol/sdk`
 * (run it with `node --import tsx test/standins/mcp-support.ts`). It says what it is: a stand-in,
 * no real shop behind it. Fixed seed data: orders 1234 ($150.00, delivered), 1235 ($45.00,
 * shipped) and 1236 ($89.99, processing), and four knowledge-base articles; refunds live in memory
 * for the life of the process, numbered RF-1, RF-2, ….
 *
 * Tools: `get_order` (read: { order_id } → "Order <id>: <status>, $<amount> (amount_usd: <amount>),
 * customer <email>", then the items; `order_id` may be `1234`, `#1234` or `ORD-1234`),
 * `issue_refund` (write: { order_id, amount_usd } → "Refund RF-<n> of $<amount> issued for order
 * <id>"; refuses more than what is left of the order's amount), `search_kb` (read: { query } →
 * "<n> article(s) match "<query>": <titles>", then each title and first line). Every tool refuses a
 * requester in `MCP_DENY_REQUESTERS` and logs to `MCP_CALL_LOG` (mcp-standin-kit.ts).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';
import { guarded, text } from './mcp-standin-kit.js';

const NAME = 'support back office';
interface Order {
  items: string[];
  amountUsd: number;
  status: 'delivered' | 'shipped' | 'processing';
  email: string;
  refundedUsd: number;
}
const orders = new Map<string, Order>([
  ['1234', { items: ['Wireless headphones'], amountUsd: 150, status: 'delivered', email: 'ana@example.com', refundedUsd: 0 }],
  ['1235', { items: ['USB-C cable', 'Phone case'], amountUsd: 45, status: 'shipped', email: 'ben@example.com', refundedUsd: 0 }],
  ['1236', { items: ['Smart plug (2-pack)'], amountUsd: 89.99, status: 'processing', email: 'chloe@example.com', refundedUsd: 0 }],
]);
const ARTICLES = [
  { title: 'Refunds and double charges', body: 'If you were charged twice, we refund the duplicate charge within 5 business days.' },
  { title: 'Shipping times', body: 'Orders ship within 2 business days; delivery takes 3 to 5 days.' },
  { title: 'Returning an item', body: 'Return an item within 30 days of delivery for a full refund.' },
  { title: 'Resetting your password', body: 'Use "Forgot password" on the sign-in screen to get a reset link.' },
];
let refunds = 0;
const usd = (n: number) => `$${n.toFixed(2)}`;
/** `1234`, `#1234`, `ORD-1234` → `1234`. */
const orderKey = (id: string) => /(\d+)/.exec(id)?.[1] ?? id;

const server = new McpServer({ name: 'agentflow-support-stand-in', version: '1.0.0' });
server.registerTool(
  'get_order',
  { description: 'Read an order of the (stand-in) shop', inputSchema: { order_id: z.string().min(1) } },
  guarded(NAME, 'get_order', ({ order_id }: { order_id: string }) => {
    const key = orderKey(order_id);
    const o = orders.get(key);
    if (!o) return text(`no order ${order_id}`, true);
    return text(
      [
        `Order ${key}: ${o.status}, ${usd(o.amountUsd)} (amount_usd: ${o.amountUsd}), customer ${o.email}`,
        `Items: ${o.items.join(', ')}`,
        ...(o.refundedUsd > 0 ? [`Refunded so far: ${usd(o.refundedUsd)}`] : []),
      ].join('\n'),
    );
  }),
);
server.registerTool(
  'issue_refund',
  {
    description: 'Refund (part of) an order of the (stand-in) shop, in USD; answers the refund id',
    inputSchema: { order_id: z.string().min(1), amount_usd: z.number().positive() },
  },
  guarded(NAME, 'issue_refund', ({ order_id, amount_usd }: { order_id: string; amount_usd: number }, requester) => {
    const key = orderKey(order_id);
    const o = orders.get(key);
    if (!o) return text(`no order ${order_id}`, true);
    const left = o.amountUsd - o.refundedUsd;
    if (amount_usd > left + 1e-9) {
      return text(`refused: a refund of ${usd(amount_usd)} is more than the ${usd(left)} left of order ${key} (${usd(o.amountUsd)})`, true);
    }
    o.refundedUsd += amount_usd;
    return text(`Refund RF-${++refunds} of ${usd(amount_usd)} issued for order ${key}\nIssued for: ${requester ?? 'nobody'}`);
  }),
);
server.registerTool(
  'search_kb',
  { description: 'Search the (stand-in) knowledge base: articles with a word of the query', inputSchema: { query: z.string().min(1) } },
  guarded(NAME, 'search_kb', ({ query }: { query: string }) => {
    const words = (query.toLowerCase().match(/[a-z0-9]{3,}/g) ?? []).map((w) => w.replace(/(ed|s)$/, ''));
    const found = ARTICLES.filter((a) => words.some((w) => `${a.title} ${a.body}`.toLowerCase().includes(w)));
    if (found.length === 0) return text(`0 articles match "${query}".`);
    return text(
      [
        `${found.length} article(s) match "${query}": ${found.map((a) => a.title).join('; ')}`,
        ...found.map((a) => `- ${a.title}: ${a.body}`),
      ].join('\n'),
    );
  }),
);

await server.connect(new StdioServerTransport());
