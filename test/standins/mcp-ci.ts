/**
 * A CI-system MCP server for tests, spoken over stdio with `@modelcontextprotocol/sdk` (run it with
 * `node --import tsx test/standins/mcp-ci.ts`). It says what it is: a stand-in, no real CI behind
 * it. Pipelines live in memory for the life of the process, after three seeded ones: 7781 (PR 42,
 * failed in job `unit-tests`), 7790 (PR 43, passed), 7795 (PR 44, running). Reruns are numbered
 * from 7800.
 *
 * Tools: `get_pipeline` (read: { pr?, pipeline_id? } → "Pipeline <id> for PR <pr>: <status>", then
 * the failed job and its log line; the latest pipeline of the PR when only `pr` is given),
 * `rerun_pipeline` (write: { pipeline_id?, pr? } → "Started pipeline <new id> for PR <pr> (rerun of
 * <id>): running"). Both refuse a requester in `MCP_DENY_REQUESTERS` and log to `MCP_CALL_LOG`
 * (mcp-standin-kit.ts).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';
import { guarded, text } from './mcp-standin-kit.js';

const NAME = 'CI system';
interface Pipeline {
  id: number;
  pr: number;
  status: 'failed' | 'passed' | 'running';
  failedJob?: string;
  log?: string;
  rerunOf?: number;
}
const pipelines: Pipeline[] = [
  { id: 7781, pr: 42, status: 'failed', failedJob: 'unit-tests', log: 'FAIL test/checkout.test.ts › applies the discount code' },
  { id: 7790, pr: 43, status: 'passed' },
  { id: 7795, pr: 44, status: 'running' },
];
let next = 7800;

/** The pipeline by id, else the latest of the PR. */
const find = (args: { pr?: number; pipeline_id?: number }) =>
  args.pipeline_id !== undefined
    ? pipelines.find((p) => p.id === args.pipeline_id)
    : pipelines.filter((p) => p.pr === args.pr).sort((a, b) => b.id - a.id)[0];
const which = (args: { pr?: number; pipeline_id?: number }) =>
  args.pipeline_id !== undefined ? `pipeline ${args.pipeline_id}` : `a pipeline for PR ${args.pr}`;
const selector = { pr: z.number().int().optional(), pipeline_id: z.number().int().optional() };
type Selector = { pr?: number; pipeline_id?: number };

const server = new McpServer({ name: 'agentflow-ci-stand-in', version: '1.0.0' });
server.registerTool(
  'get_pipeline',
  { description: "Read a pipeline of the (stand-in) CI system: by pipeline_id, or a pull request's latest by pr", inputSchema: selector },
  guarded(NAME, 'get_pipeline', (args: Selector) => {
    if (args.pr === undefined && args.pipeline_id === undefined) return text('give pr or pipeline_id', true);
    const p = find(args);
    if (!p) return text(`no ${which(args)}`, true);
    return text(
      [
        `Pipeline ${p.id} for PR ${p.pr}: ${p.status}${p.failedJob ? ` (job ${p.failedJob})` : ''}`,
        ...(p.failedJob ? [`Failed job: ${p.failedJob}`, `Log: ${p.log ?? ''}`] : []),
        ...(p.rerunOf ? [`Rerun of: ${p.rerunOf}`] : []),
      ].join('\n'),
    );
  }),
);
server.registerTool(
  'rerun_pipeline',
  { description: 'Run a pipeline of the (stand-in) CI system again; answers the new pipeline id', inputSchema: selector },
  guarded(NAME, 'rerun_pipeline', (args: Selector, requester) => {
    if (args.pr === undefined && args.pipeline_id === undefined) return text('give pr or pipeline_id', true);
    const p = find(args);
    if (!p) return text(`no ${which(args)}`, true);
    if (p.status === 'running') return text(`pipeline ${p.id} is still running: nothing to rerun`, true);
    const rerun: Pipeline = { id: next++, pr: p.pr, status: 'running', rerunOf: p.id };
    pipelines.push(rerun);
    return text(`Started pipeline ${rerun.id} for PR ${rerun.pr} (rerun of ${p.id}): running\nStarted for: ${requester ?? 'nobody'}`);
  }),
);

await server.connect(new StdioServerTransport());
