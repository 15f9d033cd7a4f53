import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { DynamoBreakerStore, DynamoBudgetLedger } from '../lambdas/adapters/gateway-store.js';
import type { Decision, PendingApproval } from '../lambdas/core/approvals.js';
import type { Change, ExecutionInput, RunRecord, RunSummary } from '../lambdas/core/contracts.js';
import type { BreakerReport, CostReport } from '../lib/local/costs.js';
import { DEFAULT_MAX_CONCURRENT_RUNS } from '../lib/local/limits.js';
import { exitCodeFor, formatProgress, formatRunLine, runOutcome } from '../lib/local/progress.js';
import type { LocalRuntime } from '../lib/local/runtime.js';
import type { LocalServerOptions } from '../lib/local/server.js';
import { PROJECT_ROOT, WORKFLOWS_DIR } from '../lib/paths.js';
import type { Workflow } from '../lib/workflow/index.js';

// A start imports only commander and what `--help` and `--version` print; each command imports what
// it uses when it runs (`await import(…)`): the workflow loader (zod, yaml), the local runtime, the
// server, the AWS SDK, the publish and SARIF code, the gateway settings. So `agentflow --help` and
// `agentflow validate` load no more than they need (and the bundle's chunks split along these lines).

/** Default folder for local state (artifacts, DynamoDB data, comments). */
const DEFAULT_STATE_DIR = join(PROJECT_ROOT, '.agentflow', 'state');

/** The package's version (package.json), for `--version`. */
const VERSION = (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const program = new Command()
  .name('agentflow')
  .description('Run AI agent workflows on pull requests: validate, graph and run them locally, serve the webhooks, decide approvals.')
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError();

const stateDirOption = () =>
  new Option('--state-dir <dir>', 'folder for local state (artifacts, run records, budgets, breakers, cache)').default(DEFAULT_STATE_DIR);
const configOption = () =>
  new Option(
    '--config <file>',
    'gateway settings (budgets, breaker, rateLimits, cache) as JSON/YAML; default: cdk.json context.environments.local',
  );
const workflowsOption = () => new Option('--workflows <dir>', 'workflows folder').default(WORKFLOWS_DIR);

/** run's --request; its text (the longest request, from contracts.ts) is set when run starts. */
const requestOption = new Option('--request <text>');
/** serve's --max-concurrent-runs, with the local runtime's default (lib/local/limits.ts: light for every start). */
const maxConcurrentRunsOption = new Option(
  '--max-concurrent-runs <n>',
  'executions that run at once; later ones wait (RUNNING) for a free place, so webhooks are answered fast under bursts',
).default(String(DEFAULT_MAX_CONCURRENT_RUNS));

/**
 * Completes the option of `command` whose text comes from a module too heavy for every start
 * (run's --request), before the command line is parsed: so `run`, `run --help` and `help run` show it.
 */
async function completeOptions(command: string | undefined): Promise<void> {
  if (command === 'run') {
    const { MAX_REQUEST_CHARS } = await import('../lambdas/core/contracts.js');
    requestOption.description = `the request a request workflow (trigger: request) answers, at most ${MAX_REQUEST_CHARS} characters`;
  }
}

program
  .command('validate')
  .description('Validate workflows, agents and models; errors print as path:line:col: message (exit 1)')
  .argument('[paths...]', 'workflow files (default: every workflow in the workflows folder)')
  .addOption(workflowsOption())
  .action(async (paths: string[], opts: { workflows: string }) => {
    const { loadWorkspace } = await import('../lib/workspace.js');
    const { compileWorkflow, formatDiagnostic, mapPhases } = await import('../lib/workflow/index.js');
    const ws = loadWorkspace(opts.workflows, paths.length ? paths.map((p) => resolve(p)) : undefined);
    for (const d of ws.diagnostics) console.error(formatDiagnostic(d));
    if (ws.diagnostics.length > 0) {
      console.error(`✖ ${ws.diagnostics.length} problem${ws.diagnostics.length === 1 ? '' : 's'}`);
      process.exitCode = 1;
      return;
    }
    for (const wf of ws.workflows.values()) {
      const def = compileWorkflow(wf);
      const count = (kinds: readonly string[]) => wf.phases.filter((p) => kinds.includes(p.kind)).length;
      const agents = mapPhases(wf.phases)
        .filter(({ phase }) => phase.kind !== 'guardrail')
        .reduce((n, { agents: a }) => n + a.length, 0);
      const parts = [
        `${wf.phases.length} phase(s)`,
        `${agents} agent(s)`,
        ...(
          [
            [count(['approval', 'ci']), 'gate(s)'],
            [count(['route']), 'route(s)'],
            [count(['guardrail']), 'guardrail(s)'],
          ] as const
        )
          .filter(([n]) => n > 0)
          .map(([n, what]) => `${n} ${what}`),
        `${Object.keys(def.States).length} states`,
      ];
      console.log(`✔ ${wf.id}${wf.kind === 'request' ? ' (request)' : ''}: ${parts.join(', ')}`);
    }
    console.log(`✔ ${ws.catalog?.agents.size ?? 0} agents, ${Object.keys(ws.catalog?.models.models ?? {}).length} models valid`);
  });

program
  .command('graph')
  .description('Print the compiled state machine of a workflow as a Mermaid diagram')
  .argument('<workflow>', 'workflow id (pr-review) or file')
  .option('--asl', 'print the Amazon States Language JSON instead')
  .addOption(workflowsOption())
  .action(async (ref: string, opts: { asl?: boolean; workflows: string }) => {
    const wf = await loadOne(ref, opts.workflows);
    const { compileWorkflow, toMermaid } = await import('../lib/workflow/index.js');
    const def = compileWorkflow(wf);
    console.log(opts.asl ? JSON.stringify(def, null, 2) : toMermaid(def));
  });

program
  .command('run')
  .description(
    'Run a workflow locally. A review workflow reviews a local git repository: the diff from merge-base(--base, --head) to --head, as GitHub shows a pull request (--repo, --base, --head). ' +
      'A request workflow (trigger: request) answers --request as /agentflow ask does, and prints the answer, the phases that ran or were skipped, the tool calls and the cost. ' +
      'Exit code: 0 succeeded, skipped or stopped; 2 partial; 1 failed or bad input',
  )
  .argument('<workflow>', 'workflow id (pr-review) or file')
  .option(
    '--repo <path>',
    'local git repository (a review workflow; a request workflow: the repository its built-in tools read, default .)',
  )
  .option('--base <ref>', 'base branch, tag or commit SHA (a review workflow)')
  .option('--head <ref>', 'head branch, tag or commit SHA (a review workflow)')
  .addOption(requestOption)
  .option('--requester <id>', 'who asks, as the tools see them (a request workflow)', `local:${localUser()}`)
  .option('--json', 'end the output with one JSON object (progress goes to stderr)')
  .option('--fail-on-partial', 'exit 1 instead of 2 when the run is PARTIAL (for CI jobs that only treat 1 as failure)')
  .option('--number <n>', 'pull request number: runs of one number and --head branch build on each other (incremental re-review)', '1')
  .option(
    '--full',
    'review every file again, not only those whose diff changed since the last run of this --number and --head (as /agentflow review --full)',
  )
  .option('--title <title>', 'pull request title to show', 'Local change')
  .option('--repository <owner/name>', 'repository name to show', 'local/repository')
  .option(
    '--sarif <file>',
    "write the security agents' findings (categories: [security]) of the run to <file> as SARIF 2.1.0, as output.code_scanning uploads them",
  )
  .addOption(stateDirOption())
  .addOption(configOption())
  .addOption(workflowsOption())
  .action(async (ref: string, opts: RunOptions) => {
    const wf = await loadOne(ref, opts.workflows);
    if (wf.kind === 'request') return runRequest(wf, ref, opts);
    if (opts.request !== undefined) {
      throw new UsageError(
        `${wf.id} reviews changes and answers no request (its trigger has no request event): drop --request, or run a workflow with trigger: request`,
      );
    }
    if (!opts.repo || !opts.base || !opts.head)
      throw new UsageError(`${wf.id} reviews a change: pass --repo <path>, --base <ref> and --head <ref>`);
    const repo = resolve(opts.repo);
    const change = await localChange({ ...opts, repo: opts.repo, base: opts.base, head: opts.head });
    const out = opts.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
    let commentPath: string | null = null;
    let reviewPath: string | null = null;
    let reviewComments = 0;
    let sarifPath: string | null = null;
    let sarifResults = 0;
    const { LocalRuntime } = await import('../lib/local/runtime.js');
    const { loadLocalGroups, loadLocalMcpServers } = await import('../lib/config.js');
    const { loadWorkspace, resolveWorkflowFile } = await import('../lib/workspace.js');
    const runtime = await LocalRuntime.start({
      stateDir: opts.stateDir,
      repoPath: repo,
      workspace: loadWorkspace(opts.workflows, [resolveWorkflowFile(ref, opts.workflows)]),
      gateway: await gatewayConfig(opts.config),
      groups: loadLocalGroups(PROJECT_ROOT),
      mcpServers: loadLocalMcpServers(PROJECT_ROOT),
      print: out,
      onComment: (_body, path) => {
        commentPath = path;
      },
      onReview: (path, comments) => {
        reviewPath = path;
        reviewComments = comments;
      },
      onSarif: (path, results) => {
        sarifPath = path;
        sarifResults = results;
      },
    });
    // A workflow with an approval or CI gate waits for a decision: serve the local API so that
    // `agentflow approvals` / `agentflow approve` (another terminal, same --state-dir) can reach it,
    // and the webhook routes check the configured secrets, as `serve`'s do.
    const api = wf.phases.some((p) => p.kind !== 'agents')
      ? await serveState(runtime, opts.stateDir, 0, (await import('../lib/local/server.js')).localServerSecrets().secrets)
      : undefined;
    try {
      out(`AgentFlow: ${wf.name} on ${repo} (${change.baseSha.slice(0, 7)}...${change.headSha.slice(0, 7)}, from their merge base)`);
      out(`providers: ${describeModes(runtime)}`);
      runtime.listeners.add((e) => {
        const line = formatProgress(e);
        if (line) out(line);
      });
      const { executionName } = await import('../lambdas/core/triggers.js');
      const name = executionName(`local-${Date.now().toString(36)}`, wf.id);
      const input: ExecutionInput = { runId: name, workflow: wf.id, change };
      const result = await runtime.startExecution(wf.id, name, input);
      if (commentPath) out(`\n${readFileSync(commentPath, 'utf8')}`);
      if (commentPath) out(`comment written to ${commentPath}`);
      if (reviewPath) out(`review with ${reviewComments} inline comment${reviewComments === 1 ? '' : 's'} written to ${reviewPath}`);
      if (sarifPath) out(`code scanning SARIF with ${sarifResults} result${sarifResults === 1 ? '' : 's'} written to ${sarifPath}`);
      const record = await runtime.runs.get(name);
      // --sarif: the security agents' findings of the report (none when the run ended before it).
      const sarifFile = opts.sarif ? resolve(opts.sarif) : undefined;
      if (sarifFile) {
        const { reportFindings } = await import('../lambdas/publish/publish.js');
        const { buildSarif, securityFindings } = await import('../lambdas/core/sarif.js');
        const { securityAgents } = await import('../lib/workflow/model.js');
        const findings = record?.reportRef ? await reportFindings(runtime.artifacts, record.reportRef) : [];
        const sarif = buildSarif(securityFindings(findings, securityAgents(wf)), wf.id);
        mkdirSync(dirname(sarifFile), { recursive: true });
        writeFileSync(sarifFile, `${JSON.stringify(sarif, null, 2)}\n`);
        const n = sarif.runs[0]?.results?.length ?? 0;
        out(`SARIF with ${n} security finding${n === 1 ? '' : 's'} written to ${sarifFile}`);
      }
      const summary = await runSummary(runtime, result, record);
      const outcome = runOutcome(record, result);
      out(formatRunLine(name, outcome, result));
      if (opts.json) {
        console.log(
          JSON.stringify({
            status: outcome.status,
            ...(outcome.reason ? { reason: outcome.reason } : {}),
            execution: name,
            workflow: wf.id,
            costUsd: summary?.costUsd ?? 0,
            agents: (summary?.agents ?? []).map(({ phase: _phase, findings: _findings, ...a }) => ({ ...a, error: a.error ?? null })),
            findings: summary?.findings ?? 0,
            // Findings moved to file level (not on a line the diff shows) and the verifier's counts and reasons.
            ...(summary?.relocated ? { relocated: summary.relocated } : {}),
            ...(summary?.verification ? { verification: summary.verification } : {}),
            commentPath,
            ...(reviewPath ? { reviewPath, inlineComments: reviewComments } : {}),
            ...(sarifPath ? { sarifPath } : {}),
            ...(sarifFile ? { sarifFile } : {}),
            ...(record?.status === 'SKIPPED' ? { skipped: record.reason } : {}),
            ...(record?.status === 'STOPPED' ? { stopped: record.reason } : {}),
            ...(summary?.gates && Object.keys(summary.gates).length ? { gates: summary.gates } : {}),
            ...(result.error ? { error: result.error } : {}),
          }),
        );
      }
      process.exitCode = exitCodeFor(outcome.status, { failOnPartial: opts.failOnPartial });
    } finally {
      await api?.close();
      await runtime.stop();
    }
  });

program
  .command('serve')
  .description('Serve the webhook routes (GitHub, GitLab, Slack, CI) and the local API (runs, costs, approvals) on 127.0.0.1')
  .addHelpText(
    'after',
    [
      '',
      'Secrets (environment variables; a route whose secret is not set answers 503):',
      '  AGENTFLOW_GITHUB_WEBHOOK_SECRET   /webhooks/github (default: a development secret); _PREVIOUS during a rotation',
      '  AGENTFLOW_GITLAB_WEBHOOK_SECRET   /webhooks/gitlab (X-Gitlab-Token); _PREVIOUS during a rotation',
      '  AGENTFLOW_SLACK_SIGNING_SECRET    /webhooks/slack/commands and /webhooks/slack/interactions',
      '  AGENTFLOW_CI_SECRET               /webhooks/ci',
    ].join('\n'),
  )
  .option('--port <n>', 'port (0 picks a free one)', '3000')
  .option('--repo <path>', 'local git repository the pull requests point at', '.')
  .addOption(maxConcurrentRunsOption)
  .addOption(stateDirOption())
  .addOption(configOption())
  .addOption(workflowsOption())
  .action(async (opts: { port: string; repo: string; stateDir: string; workflows: string; config?: string; maxConcurrentRuns: string }) => {
    const maxConcurrentRuns = Number(opts.maxConcurrentRuns);
    if (!Number.isInteger(maxConcurrentRuns) || maxConcurrentRuns < 1) {
      throw new UsageError(`--max-concurrent-runs must be a whole number ≥ 1 (got "${opts.maxConcurrentRuns}")`);
    }
    const { loadWorkspace } = await import('../lib/workspace.js');
    const { formatDiagnostic } = await import('../lib/workflow/index.js');
    const ws = loadWorkspace(opts.workflows);
    if (ws.diagnostics.length > 0) {
      for (const d of ws.diagnostics) console.error(formatDiagnostic(d));
      throw new UsageError('fix the workflows above first (npx agentflow validate)');
    }
    const { localServerSecrets } = await import('../lib/local/server.js');
    const { LocalRuntime } = await import('../lib/local/runtime.js');
    const { loadLocalAskWorkflow, loadLocalGroups, loadLocalMcpServers } = await import('../lib/config.js');
    const { secrets, notes } = localServerSecrets();
    for (const note of notes) console.error(note);
    const runtime = await LocalRuntime.start({
      stateDir: opts.stateDir,
      repoPath: resolve(opts.repo),
      workspace: ws,
      gateway: await gatewayConfig(opts.config),
      groups: loadLocalGroups(PROJECT_ROOT),
      mcpServers: loadLocalMcpServers(PROJECT_ROOT),
      maxConcurrentRuns,
      onSarif: (path, results) => console.log(`code scanning SARIF with ${results} result${results === 1 ? '' : 's'} written to ${path}`),
    });
    runtime.listeners.add((e) => {
      const line = formatProgress(e);
      if (line) console.log(`[${e.execution}] ${line}`);
    });
    // `/agentflow ask <request>` without a workflow name asks cdk.json's `environments.local.askWorkflow`.
    const askWorkflow = loadLocalAskWorkflow(PROJECT_ROOT);
    const server = await serveState(runtime, opts.stateDir, Number(opts.port), { ...secrets, ...(askWorkflow ? { askWorkflow } : {}) });
    console.log(`AgentFlow listening on ${server.url}`);
    console.log(
      `  POST ${server.url}/webhooks/github   ${server.url}/webhooks/gitlab   ${server.url}/webhooks/slack/commands   ${server.url}/webhooks/slack/interactions   ${server.url}/webhooks/ci`,
    );
    console.log(`  GET ${server.url}/runs   /runs/<execution>   /costs   /breakers   /approvals   POST /approvals/<id>`);
    console.log(`  local API token (Authorization: Bearer …): in ${join(opts.stateDir, 'serve.json')}`);
    console.log(`  workflows: ${[...ws.workflows.keys()].join(', ')}; providers: ${describeModes(runtime)}`);
    const stop = async () => {
      await server.close();
      await runtime.stop();
      process.exit(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });

program
  .command('runs')
  .description('List runs (from a running `agentflow serve` on the same --state-dir, or the state folder)')
  .option('--json', 'print JSON')
  .addOption(stateDirOption())
  .action(async (opts: { json?: boolean; stateDir: string }) => {
    const runs = await listRuns(opts.stateDir);
    if (opts.json) {
      console.log(JSON.stringify({ runs }, null, 2));
      return;
    }
    if (runs.length === 0) {
      console.log('no runs yet');
      return;
    }
    console.log(
      ['STATUS    ', 'EXECUTION'.padEnd(60), 'WORKFLOW'.padEnd(16), 'PR / ASKED BY'.padEnd(22), 'FINDINGS', 'COST (USD)'].join(' '),
    );
    for (const r of runs) {
      console.log(
        [
          r.status.padEnd(10),
          r.runId.padEnd(60),
          r.workflow.padEnd(16),
          // A request run has no pull request: who asked.
          (r.request ? r.request.requester : `${r.repository}#${r.number}`).padEnd(22),
          String(r.findings).padStart(8),
          `$${r.costUsd.toFixed(4)}`.padStart(10),
        ].join(' '),
      );
    }
  });

program
  .command('stats')
  .description(
    "Acceptance of the findings per agent and category: people's 👍 (accepted), 👎 and dismissals (rejected) on the inline comments, from the run records",
  )
  .option('--json', 'print JSON')
  .addOption(stateDirOption())
  .action(async (opts: { json?: boolean; stateDir: string }) => {
    const { acceptanceRates } = await import('../lambdas/core/incremental.js');
    const rates = acceptanceRates(await listRuns(opts.stateDir, STATS_RUNS));
    if (opts.json) {
      console.log(JSON.stringify({ acceptance: rates }, null, 2));
      return;
    }
    if (rates.length === 0) {
      console.log('no feedback yet: react 👍 / 👎 to an inline comment, or reply `/agentflow dismiss`, then run the workflow again');
      return;
    }
    console.log(['AGENT'.padEnd(20), 'CATEGORY'.padEnd(20), 'ACCEPTED', 'REJECTED', 'DISMISSED', 'ACCEPTANCE'].join(' '));
    for (const r of rates) {
      console.log(
        [
          r.agent.padEnd(20),
          r.category.padEnd(20),
          String(r.accepted).padStart(8),
          String(r.rejected).padStart(8),
          String(r.dismissed).padStart(9),
          (r.rate === null ? '—' : `${Math.round(r.rate * 100)} %`).padStart(10),
        ].join(' '),
      );
    }
  });

program
  .command('approvals')
  .description('List pending approvals and CI gates (id, workflow, execution, phase, expires) of a running serve/run on --state-dir')
  .option('--json', 'print JSON')
  .addOption(stateDirOption())
  .action(async (opts: { json?: boolean; stateDir: string }) => {
    const served = (await fromServe(opts.stateDir, '/approvals')) as { approvals: PendingApproval[] } | undefined;
    let approvals = served?.approvals;
    if (!approvals) {
      const runtime = await stateRuntime(opts.stateDir);
      try {
        approvals = await runtime.listApprovals();
      } finally {
        await runtime.stop();
      }
    }
    if (opts.json) {
      console.log(JSON.stringify({ approvals }, null, 2));
      return;
    }
    if (approvals.length === 0) {
      console.log('no pending approvals');
      return;
    }
    console.log(
      ['ID'.padEnd(18), 'KIND'.padEnd(9), 'WORKFLOW'.padEnd(24), 'PHASE'.padEnd(14), 'EXPIRES'.padEnd(26), 'EXECUTION'].join(' '),
    );
    for (const a of approvals) {
      console.log(
        [a.id.padEnd(18), a.kind.padEnd(9), a.workflow.padEnd(24), a.phase.padEnd(14), a.deadline.padEnd(26), a.execution].join(' '),
      );
    }
  });

program
  .command('approve')
  .description(
    'Approve (or --reject) a pending approval as a Slack user id, @github-login or gitlab:@username, through the running serve/run on --state-dir',
  )
  .argument('<id>', 'approval id (from `agentflow approvals` or the Slack message)')
  .option('--reject', 'reject instead of approving')
  .option(
    '--as <user>',
    'decide as this Slack user id (U…), @github-login or gitlab:@username (default: the first Slack user of the local groups)',
  )
  .addOption(stateDirOption())
  .action(async (id: string, opts: { reject?: boolean; as?: string; stateDir: string }) => {
    const { loadLocalGroups } = await import('../lib/config.js');
    const who = opts.as ?? Object.values(loadLocalGroups(PROJECT_ROOT)).flatMap((g) => g.slack)[0];
    if (!who) throw new UsageError('pass --as <Slack user id, @github-login or gitlab:@username>');
    const { localApiHeaders, readServeState } = await import('../lib/local/local-api-token.js');
    const served = readServeState(opts.stateDir);
    if (!served) {
      throw new UsageError(
        `no running \`agentflow serve\` or \`agentflow run\` on ${opts.stateDir}: the waiting execution lives in that process (start it with the same --state-dir)`,
      );
    }
    const r = await fetch(`${served.url}/approvals/${encodeURIComponent(id)}`, {
      method: 'POST',
      headers: localApiHeaders(served.token, true),
      body: JSON.stringify({ decision: opts.reject ? 'reject' : 'approve', as: who }),
    });
    const decision = (await r.json()) as Decision;
    const ok = decision.outcome === 'approved' || decision.outcome === 'rejected';
    console.log(`${ok ? '✔' : '✖'} ${decision.message ?? JSON.stringify(decision)}`);
    if (!ok) process.exitCode = 1;
  });

program
  .command('costs')
  .description('Show budgets (committed, spent, reserved against limits) and spend per provider and model')
  .option('--json', 'print JSON')
  .option('--table <name>', 'read a deployed AgentFlow table instead of the local state (uses your AWS credentials)')
  .option('--region <region>', 'AWS region of --table (default: AWS_REGION)')
  .option('--sweep', 'first release reservations of crashed calls whose lease has expired')
  .addOption(stateDirOption())
  .addOption(configOption())
  .action(async (opts: { json?: boolean; table?: string; region?: string; sweep?: boolean; stateDir: string; config?: string }) => {
    const { costReport, formatCostReport } = await import('../lib/local/costs.js');
    const config = await gatewayConfig(opts.config);
    // While serve runs, it sweeps (the folder is its own); otherwise the sweep runs below.
    const swept =
      opts.sweep && !opts.table
        ? ((await fromServe(opts.stateDir, '/costs/sweep', 'POST')) as { released?: number } | undefined)
        : undefined;
    if (swept && !opts.json) console.error(`released ${swept.released ?? 0} expired reservation(s)`);
    const report = await withGatewayTables(opts, '/costs', async ({ ledger }) => {
      if (opts.sweep && !swept) {
        const n = await ledger.sweepAll(Date.now());
        if (!opts.json) console.error(`released ${n} expired reservation(s)`);
      }
      return costReport(ledger, config.budgets);
    });
    console.log(opts.json ? JSON.stringify(report, null, 2) : formatCostReport(report as CostReport));
  });

program
  .command('breakers')
  .description('Show the circuit breaker of every provider and model (closed, open, half-open)')
  .option('--json', 'print JSON')
  .option('--table <name>', 'read a deployed AgentFlow table instead of the local state (uses your AWS credentials)')
  .option('--region <region>', 'AWS region of --table (default: AWS_REGION)')
  .addOption(stateDirOption())
  .action(async (opts: { json?: boolean; table?: string; region?: string; stateDir: string }) => {
    const { breakerReport, formatBreakers } = await import('../lib/local/costs.js');
    const rows = await withGatewayTables(opts, '/breakers', async ({ breakers }) => ({ breakers: await breakerReport(breakers) }));
    const list = (rows as { breakers: BreakerReport[] }).breakers;
    console.log(opts.json ? JSON.stringify({ breakers: list }, null, 2) : formatBreakers(list));
  });

async function gatewayConfig(file: string | undefined) {
  const { loadLocalGatewayConfig } = await import('../lib/config.js');
  try {
    return loadLocalGatewayConfig(PROJECT_ROOT, file);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function describeModes(runtime: LocalRuntime): string {
  return Object.entries(runtime.modes)
    .map(([p, m]) => `${p} → ${m}`)
    .join(', ');
}

/**
 * Runs `read` against the gateway's tables: a deployed table (`--table`), a running `serve` on the
 * same state folder (through `path` of its HTTP API, since the folder is locked while it runs), or
 * the state folder itself.
 */
async function withGatewayTables<T>(
  opts: { table?: string; region?: string; stateDir: string },
  path: string,
  read: (t: { ledger: DynamoBudgetLedger; breakers: DynamoBreakerStore }) => Promise<T>,
): Promise<T | unknown> {
  if (opts.table) {
    const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
    const { DynamoDBDocumentClient } = await import('@aws-sdk/lib-dynamodb');
    const { DynamoBreakerStore, DynamoBudgetLedger } = await import('../lambdas/adapters/gateway-store.js');
    const client = new DynamoDBClient(opts.region ? { region: opts.region } : {});
    const doc = DynamoDBDocumentClient.from(client);
    try {
      return await read({ ledger: new DynamoBudgetLedger(doc, opts.table), breakers: new DynamoBreakerStore(doc, opts.table) });
    } finally {
      client.destroy();
    }
  }
  const served = await fromServe(opts.stateDir, path);
  if (served !== undefined) return served;
  const runtime = await stateRuntime(opts.stateDir);
  try {
    return await read({ ledger: runtime.ledger, breakers: runtime.breakers });
  } finally {
    await runtime.stop();
  }
}

/**
 * Starts the local server for `runtime` and records its URL and bearer token in
 * `<stateDir>/serve.json` (mode 0600), so the other commands on the same state folder (which
 * dynalite locks) go through its HTTP API.
 */
async function serveState(
  runtime: LocalRuntime,
  stateDir: string,
  port: number,
  secrets: Omit<LocalServerOptions, 'runtime' | 'port' | 'token'>,
): Promise<{ url: string; close(): Promise<void> }> {
  const { startLocalServer } = await import('../lib/local/server.js');
  const { removeServeState, writeServeState } = await import('../lib/local/local-api-token.js');
  const server = await startLocalServer({ runtime, port, ...secrets });
  writeServeState(stateDir, { url: server.url, pid: process.pid, token: server.token });
  return {
    url: server.url,
    close: async () => {
      removeServeState(stateDir);
      await server.close();
    },
  };
}

/** GET `path` from the local API of the serve/run holding `stateDir`, with its token; undefined if none answers. */
async function fromServe(stateDir: string, path: string, method: 'GET' | 'POST' = 'GET'): Promise<unknown> {
  const { localApiHeaders, readServeState } = await import('../lib/local/local-api-token.js');
  const served = readServeState(stateDir);
  if (!served) return undefined;
  try {
    const r = await fetch(`${served.url}${path}`, {
      method,
      headers: localApiHeaders(served.token, method === 'POST'),
      ...(method === 'POST' ? { body: '{}' } : {}),
    });
    if (r.ok) return await r.json();
  } catch {
    // serve is gone: read the folder
  }
  return undefined;
}

/** A runtime on the state folder that starts no model server (for reading state). */
async function stateRuntime(stateDir: string): Promise<LocalRuntime> {
  const { LocalRuntime } = await import('../lib/local/runtime.js');
  const { loadWorkspace } = await import('../lib/workspace.js');
  return LocalRuntime.start({
    stateDir,
    repoPath: '.',
    workspace: loadWorkspace(WORKFLOWS_DIR, []),
    modes: { openai: 'openai-compatible', bedrock: 'aws', 'openai-compatible': 'remote' },
  });
}

interface RunOptions {
  repo?: string;
  base?: string;
  head?: string;
  request?: string;
  requester: string;
  json?: boolean;
  failOnPartial?: boolean;
  number: string;
  title: string;
  repository: string;
  stateDir: string;
  workflows: string;
  config?: string;
  sarif?: string;
  full?: boolean;
}

/**
 * The run summary `run` reports: the execution's output, or, when the execution failed after
 * aggregating (FAILED: every agent failed), the summary in the run's report artifact, so the
 * agents, their errors and what they cost still show.
 */
async function runSummary(
  runtime: LocalRuntime,
  result: { status: 'SUCCEEDED' | 'FAILED'; output: unknown },
  record: RunRecord | undefined,
): Promise<Partial<RunSummary> | undefined> {
  if (result.status === 'SUCCEEDED') return result.output as Partial<RunSummary>;
  if (!record?.reportRef) return undefined;
  const { z } = await import('zod');
  const { RunSummarySchema } = await import('../lambdas/core/contracts.js');
  const stored = await runtime.artifacts.getJson(record.reportRef).catch(() => undefined);
  // The report artifact's part `run --json` reads.
  const report = z.object({ summary: RunSummarySchema }).safeParse(stored);
  return report.success ? report.data.summary : undefined;
}

/** Bad input on the command line (exit 1, one line, no stack trace). */
class UsageError extends Error {}

/**
 * The change `run` reviews: --base and --head checked with {@link assertSafeRef} before git runs,
 * then resolved to commits in --repo (named as given, so errors read `../app is not a git repository`).
 * @throws UsageError with one line when a ref is unsafe, --repo is not a repository or a ref names no commit
 */
async function localChange(opts: RunOptions & { repo: string; base: string; head: string }): Promise<Change> {
  const { GitChangeLookup } = await import('../lambdas/adapters/changes.js');
  const { assertSafeRef } = await import('../lambdas/core/refs.js');
  try {
    assertSafeRef(opts.base);
    assertSafeRef(opts.head);
    const refs = await new GitChangeLookup(opts.repo).refs(opts.repository, opts.base, opts.head);
    return {
      ...refs,
      number: Number(opts.number),
      title: opts.title,
      author: process.env.USER ?? '',
      action: 'opened',
      ...(opts.full ? { fullReview: true } : {}),
    };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The user name `--requester` defaults to (`local:<user>`). */
function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    // no passwd entry (a container's arbitrary uid)
    return process.env.USER ?? 'unknown';
  }
}

/** The parts of a request run's report (`aggregateRequest`) `run` prints. */
async function requestReportSchema() {
  const { z } = await import('zod');
  const { RunSummarySchema } = await import('../lambdas/core/contracts.js');
  const { ReportedToolCallSchema } = await import('../lambdas/aggregate/request.js');
  return z.object({
    summary: RunSummarySchema,
    answer: z.object({ phase: z.string(), agent: z.string(), text: z.string() }).nullish(),
    toolCalls: z.array(z.object({ agent: z.string(), phase: z.string(), calls: z.array(ReportedToolCallSchema) })).default([]),
  });
}

/** Model text for a terminal: no control characters (escape sequences) but line breaks and tabs. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point (an answer must not drive the terminal)
const terminalText = (s: string) => s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');

/**
 * `agentflow run <workflow> --request "<text>"`: runs a request workflow (trigger: request) on the
 * local runtime as `/agentflow ask` would start it, then prints the answer, the phases (ran, or
 * skipped and why), the tool calls (agent, tool, ok or the error, ms) and the cost (the ledger's:
 * the run record's), and with `--json` ends with one JSON object of the same.
 * @throws UsageError without --request, with --base/--head/--sarif, or with a request Slack would not take
 */
async function runRequest(wf: Workflow, ref: string, opts: RunOptions): Promise<void> {
  if (opts.request === undefined) throw new UsageError(`${wf.id} answers requests (trigger: request): pass --request "<text>"`);
  const review = (['base', 'head', 'sarif', 'full'] as const).filter((o) => opts[o] !== undefined);
  if (review.length > 0) {
    throw new UsageError(`${wf.id} answers requests: ${review.map((o) => `--${o}`).join(', ')} belong to review workflows; drop them`);
  }
  const { MAX_REQUEST_CHARS, RequestSchema } = await import('../lambdas/core/contracts.js');
  const parsed = RequestSchema.safeParse({ text: opts.request.trim(), requester: opts.requester });
  if (!parsed.success) {
    throw new UsageError(
      `--request must hold 1 to ${MAX_REQUEST_CHARS} characters and --requester 1 to 200 (${parsed.error.issues.map((i) => i.path.join('.')).join(', ')})`,
    );
  }
  // As /agentflow ask does: a secret pasted into the request goes to no record, model or terminal.
  const { redactSecrets } = await import('../lambdas/core/redact.js');
  const request = { ...parsed.data, text: (await redactSecrets(parsed.data.text)).text };
  const out = opts.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
  const { LocalRuntime } = await import('../lib/local/runtime.js');
  const { loadLocalGroups, loadLocalMcpServers } = await import('../lib/config.js');
  const { loadWorkspace, resolveWorkflowFile } = await import('../lib/workspace.js');
  const runtime = await LocalRuntime.start({
    stateDir: opts.stateDir,
    repoPath: resolve(opts.repo ?? '.'),
    workspace: loadWorkspace(opts.workflows, [resolveWorkflowFile(ref, opts.workflows)]),
    gateway: await gatewayConfig(opts.config),
    groups: loadLocalGroups(PROJECT_ROOT),
    mcpServers: loadLocalMcpServers(PROJECT_ROOT),
    print: out,
  });
  // An approval gate waits for a decision: serve the local API for `agentflow approve`, as for reviews.
  const api = wf.phases.some((p) => p.kind === 'approval' || p.kind === 'ci')
    ? await serveState(runtime, opts.stateDir, 0, (await import('../lib/local/server.js')).localServerSecrets().secrets)
    : undefined;
  try {
    out(`AgentFlow: ${wf.name} answering a request from ${request.requester}`);
    out(`providers: ${describeModes(runtime)}`);
    runtime.listeners.add((e) => {
      const line = formatProgress(e);
      if (line) out(line);
    });
    const { executionName } = await import('../lambdas/core/triggers.js');
    const name = executionName(`local-${Date.now().toString(36)}`, wf.id);
    const result = await runtime.startExecution(wf.id, name, { runId: name, workflow: wf.id, request });
    const record = await runtime.runs.get(name);
    const stored = record?.reportRef ? await runtime.artifacts.getJson(record.reportRef).catch(() => undefined) : undefined;
    const report = (await requestReportSchema()).safeParse(stored);
    const summary = report.success ? report.data.summary : undefined;
    const answer = report.success ? (report.data.answer ?? undefined) : undefined;
    const calls = report.success
      ? report.data.toolCalls.flatMap((t) => t.calls.map((c) => ({ agent: t.agent, phase: t.phase, ...c })))
      : [];
    const phases = record?.phases ?? summary?.phases ?? [];
    out('');
    out(answer ? `Answer (phase ${answer.phase}, agent ${answer.agent}):\n${terminalText(answer.text)}` : 'No answer.');
    if (phases.length > 0) {
      out('\nPhases:');
      for (const p of phases) out(`  ${p.status === 'ran' ? '✔' : '○'} ${p.phase} ${p.status}${p.reason ? `: ${p.reason}` : ''}`);
    }
    if (calls.length > 0) {
      out('\nTool calls:');
      for (const c of calls) {
        const outcome = c.ok ? 'ok' : `${c.refused ? 'refused' : 'error'}${c.error ? `: ${terminalText(c.error).slice(0, 200)}` : ''}`;
        out(`  ${c.phase}/${c.agent}  ${c.name}  ${outcome}  ${c.ms} ms`);
      }
    }
    const costUsd = record?.costUsd ?? summary?.costUsd ?? 0;
    out(`\nCost: $${costUsd.toFixed(6)}${summary ? ` (${summary.inputTokens}+${summary.outputTokens} tokens)` : ''}`);
    const outcome = runOutcome(record, result);
    out(formatRunLine(name, outcome, result));
    if (opts.json) {
      console.log(
        JSON.stringify({
          status: outcome.status,
          ...(outcome.reason ? { reason: outcome.reason } : {}),
          execution: name,
          workflow: wf.id,
          requester: request.requester,
          costUsd,
          answer: answer?.text ?? null,
          ...(record?.answerRef ? { answerRef: record.answerRef } : {}),
          phases,
          toolCalls: calls.map((c) => ({
            agent: c.agent,
            phase: c.phase,
            name: c.name,
            ok: c.ok,
            ...(c.refused ? { refused: true } : {}),
            ...(c.error ? { error: c.error } : {}),
            ms: c.ms,
          })),
          agents: summary?.agents ?? [],
          ...(result.error ? { error: result.error } : {}),
        }),
      );
    }
    process.exitCode = exitCodeFor(outcome.status, { failOnPartial: opts.failOnPartial });
  } finally {
    await api?.close();
    await runtime.stop();
  }
}

async function loadOne(ref: string, dir: string): Promise<Workflow> {
  const { loadWorkspace, resolveWorkflowFile } = await import('../lib/workspace.js');
  const { formatDiagnostic } = await import('../lib/workflow/index.js');
  let file: string;
  try {
    file = resolveWorkflowFile(ref, dir);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const ws = loadWorkspace(dir, [file]);
  const wf = [...ws.workflows.values()][0];
  if (!wf || ws.diagnostics.length > 0) {
    for (const d of ws.diagnostics) console.error(formatDiagnostic(d));
    throw new UsageError(`${ref} is not valid`);
  }
  return wf;
}

/** Run records `stats` adds up at most (each holds only the feedback new to it). */
const STATS_RUNS = 10_000;

async function listRuns(stateDir: string, limit = 100): Promise<RunRecord[]> {
  const served = (await fromServe(stateDir, '/runs')) as { runs: RunRecord[] } | undefined;
  if (served) return served.runs;
  const runtime = await stateRuntime(stateDir);
  try {
    return await runtime.runs.list(limit);
  } finally {
    await runtime.stop();
  }
}

// The program's own options (--help, --version) take no value: its first word is the command (`help run`: the second).
const words = process.argv.slice(2).filter((a) => !a.startsWith('-'));
completeOptions(words[0] === 'help' ? words[1] : words[0])
  .then(() => program.parseAsync(process.argv))
  .catch((e: unknown) => {
    // One line, no stack trace; exit 1 for bad input and errors alike (2 means a PARTIAL run).
    console.error(`agentflow: ${(e as Error).message}`);
    // `--json` promises one JSON object at the end of the output, on errors too.
    if (process.argv.slice(2).includes('--json')) console.log(JSON.stringify({ status: 'FAILED', error: (e as Error).message }));
    process.exitCode = 1;
  });
