/**
 * The review-quality benchmark (`npm run bench:quality`, issue 12 point 6): runs the pr-review
 * workflow on every case of the corpus in `test/fixtures/quality/` and prints precision, recall and
 * F1 per agent and overall, tokens and cost per pull request, and how many clean cases got a finding.
 *
 * What it measures depends on the providers, which are picked from the environment exactly as
 * `agentflow run` picks them (`providerModes`):
 * - with no credentials, the offline model server answers: the numbers measure the pipeline's
 *   mechanics (diff parsing and line accuracy, redaction, dedupe of agents' findings, the report),
 *   not a model's judgement — the offline model's rules cannot see leaks or weak crypto;
 * - with real credentials (OPENAI_API_KEY, OPENAI_BASE_URL / OPENAI_COMPATIBLE_BASE_URL, or AWS
 *   credentials for Bedrock) the same command measures the real models.
 * `AGENTFLOW_OFFLINE=1` forces the offline model.
 *
 * A finding matches a golden one on the same file, a line within the golden's range (a golden with
 * line 0 matches any line of the file) and the same category; each golden matches at most one
 * finding. Precision = matched findings / findings, recall = matched goldens / goldens, F1 their
 * harmonic mean ("n/a" when a denominator is 0). A finding counts for every agent in its `agents`
 * list; an agent is scored against the goldens of its own categories.
 *
 * All cases live in one temporary git repository, each on its own branches (`quality/<id>/base`,
 * `quality/<id>/head`), so one runtime reviews them all. Exits 0 (a failed run is reported, not
 * fatal); 1 only when the benchmark itself cannot start.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ExecutionInput } from '../lambdas/core/contracts.js';
import { GatewayConfigSchema } from '../lambdas/core/gateway-config.js';
import { MAX_NOTES } from '../lambdas/core/verify.js';
import { freshRepo } from '../lib/local/example-repo.js';
import { providerModes } from '../lib/local/providers.js';
import { LocalRuntime } from '../lib/local/runtime.js';
import { loadWorkspace } from '../lib/workspace.js';
import { QUALITY_CORPUS, type QualityCase } from '../test/fixtures/quality/corpus.js';
import {
  addTally,
  emptyTally,
  fmt,
  rates,
  type ScoredFinding,
  scoreByAgent,
  scoreCase,
  type Tally,
} from '../test/fixtures/quality/score.js';

export { rates, scoreByAgent, scoreCase } from '../test/fixtures/quality/score.js';

/** A case's two commits in the benchmark repository. */
interface CaseCommits {
  base: string;
  head: string;
}

/**
 * Creates one git repository holding every case as a pair of orphan branches with a base and a head
 * commit (fixed author and dates, so the SHAs are stable).
 */
export function createCorpusRepo(dir: string, cases: readonly QualityCase[]): Map<string, CaseCommits> {
  const { git } = freshRepo(dir, '2026-02-02T10:00:00Z');
  const write = (files: Record<string, string | null>) => {
    for (const [path, text] of Object.entries(files)) {
      const abs = join(dir, path);
      if (text === null) rmSync(abs, { force: true });
      else {
        mkdirSync(dirname(abs), { recursive: true });
        writeFileSync(abs, text);
      }
    }
  };
  git('init', '-q', '-b', 'main');
  const out = new Map<string, CaseCommits>();
  for (const c of cases) {
    git('checkout', '-q', '--orphan', `quality/${c.id}/base`);
    git('read-tree', '--empty');
    git('clean', '-fdxq');
    write(c.base);
    git('add', '-A');
    git('commit', '-q', '--allow-empty', '-m', `${c.id}: base`);
    const base = git('rev-parse', 'HEAD');
    git('checkout', '-q', '-b', `quality/${c.id}/head`);
    write(c.head);
    git('add', '-A');
    git('commit', '-q', '-m', c.title, '--date', '2026-02-03T09:30:00Z');
    out.set(c.id, { base, head: git('rev-parse', 'HEAD') });
  }
  return out;
}

/** The execution input of one case. */
function caseInput(c: QualityCase, commits: CaseCommits, runId: string, number: number): ExecutionInput {
  return {
    runId,
    workflow: 'pr-review',
    change: {
      repository: 'acme/shop-apps',
      number,
      title: c.title,
      author: 'mobile-dev',
      url: '',
      action: 'opened',
      baseSha: commits.base,
      headSha: commits.head,
      baseRef: `quality/${c.id}/base`,
      headRef: `quality/${c.id}/head`,
    },
  };
}

interface CaseOutcome {
  id: string;
  status: string;
  findings: ScoredFinding[];
  tokens: number;
  costUsd: number;
  ms: number;
  /** The verifier's counts and the findings it did not confirm (the run summary's `verification`). */
  verification?: Verification;
}

type Verification = {
  checked: number;
  confirmed: number;
  dropped: number;
  downgraded: number;
  notes: Array<{ file: string; line: number; category: string; outcome: 'dropped' | 'downgraded' }>;
};

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const padL = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

async function main(): Promise<void> {
  const t0 = performance.now();
  const workspace = loadWorkspace();
  const workflow = workspace.workflows.get('pr-review');
  if (!workflow) throw new Error('workflows/pr-review.yml is missing');
  const agentCategories: Record<string, readonly string[]> = {};
  for (const phase of workflow.phases) {
    if (phase.kind !== 'agents') continue;
    // The verifier reports no findings of its own: its effect is in the overall row and its own line.
    for (const a of phase.agents) if (a.output !== 'verdicts') agentCategories[a.name] = a.categories;
  }
  const modes = providerModes(process.env);
  const offline = Object.values(modes).every((m) => m === 'offline');
  const work = mkdtempSync(join(tmpdir(), 'agentflow-bench-quality-'));
  const cases = QUALITY_CORPUS;
  const commits = createCorpusRepo(join(work, 'repo'), cases);
  const runtime = await LocalRuntime.start({
    stateDir: join(work, 'state'),
    repoPath: join(work, 'repo'),
    workspace,
    persist: false,
    modes,
    gateway: GatewayConfigSchema.parse({ cache: { enabled: false } }),
    print: () => undefined,
  });
  const outcomes: CaseOutcome[] = [];
  try {
    const stamp = Date.now().toString(36);
    let next = 0;
    // A few cases at a time: enough to overlap model calls, gentle on 2 cores and on rate limits.
    const worker = async () => {
      for (let i = next++; i < cases.length; i = next++) {
        const c = cases[i] as QualityCase;
        const runId = `quality-${stamp}-${i + 1}`;
        const started = performance.now();
        // A run that cannot execute (a provider refusing every call, say) scores as no findings.
        const result = await runtime
          .execute('pr-review', runId, caseInput(c, commits.get(c.id) as CaseCommits, runId, i + 1))
          .catch((e: unknown) => ({ status: `ERROR: ${e instanceof Error ? e.message : String(e)}`, output: undefined }));
        const summary = (result.output ?? {}) as {
          inputTokens?: number;
          outputTokens?: number;
          costUsd?: number;
          verification?: Verification;
        };
        const report = (await runtime.artifacts.getJson(`runs/${runId}/report.json`).catch(() => undefined)) as
          | { findings?: ScoredFinding[] }
          | undefined;
        outcomes[i] = {
          id: c.id,
          status: result.status,
          findings: (report?.findings ?? []).map((f) => ({ file: f.file, line: f.line, category: f.category, agents: f.agents ?? [] })),
          tokens: (summary.inputTokens ?? 0) + (summary.outputTokens ?? 0),
          costUsd: summary.costUsd ?? 0,
          ms: performance.now() - started,
          ...(summary.verification ? { verification: summary.verification } : {}),
        };
      }
    };
    await Promise.all(Array.from({ length: 3 }, () => worker()));
  } finally {
    await runtime.stop();
    rmSync(work, { recursive: true, force: true });
  }

  let overall = emptyTally();
  const perAgent = new Map<string, Tally>(Object.keys(agentCategories).map((a) => [a, emptyTally()]));
  let cleanFlagged = 0;
  let cleanCases = 0;
  const misses: string[] = [];
  for (const [i, c] of cases.entries()) {
    const o = outcomes[i] as CaseOutcome;
    const t = scoreCase(o.findings, c.golden);
    overall = addTally(overall, t);
    for (const [agent, tally] of scoreByAgent(o.findings, c.golden, agentCategories))
      perAgent.set(agent, addTally(perAgent.get(agent) ?? emptyTally(), tally));
    if (c.golden.length === 0) {
      cleanCases++;
      if (o.findings.length > 0) cleanFlagged++;
    }
    if (o.status !== 'SUCCEEDED' || t.matchedGoldens < t.goldens || t.matchedFindings < t.findings) {
      misses.push(
        `  ${pad(c.id, 34)} ${pad(o.status, 9)} goldens ${t.matchedGoldens}/${t.goldens}, findings ${t.matchedFindings}/${t.findings} matched`,
      );
    }
  }

  const providers = Object.entries(modes)
    .map(([p, m]) => `${p}=${m}`)
    .join(', ');
  console.log(`Review-quality benchmark: ${cases.length} pull requests (${cleanCases} clean), pr-review workflow; providers: ${providers}`);
  console.log(
    offline
      ? 'Offline model (no credentials): this measures the pipeline mechanics (line accuracy, redaction, dedupe), not a model.\n' +
          'Set OPENAI_API_KEY or AWS credentials to measure real models with the same command.'
      : 'Real providers: this measures the configured models.',
  );
  console.log('');
  const header = `${pad('agent', 16)} ${padL('findings', 8)} ${padL('matched', 8)} ${padL('goldens', 8)} ${padL('found', 6)} ${padL('precision', 9)} ${padL('recall', 7)} ${padL('F1', 5)}`;
  console.log(header);
  console.log('-'.repeat(header.length));
  const row = (name: string, t: Tally) => {
    const r = rates(t);
    console.log(
      `${pad(name, 16)} ${padL(String(t.findings), 8)} ${padL(String(t.matchedFindings), 8)} ${padL(String(t.goldens), 8)} ${padL(String(t.matchedGoldens), 6)} ${padL(fmt(r.precision), 9)} ${padL(fmt(r.recall), 7)} ${padL(fmt(r.f1), 5)}`,
    );
  };
  for (const [agent, t] of perAgent) row(agent, t);
  console.log('-'.repeat(header.length));
  row('overall', overall);
  console.log('');
  const n = outcomes.length || 1;
  const tokens = outcomes.reduce((s, o) => s + o.tokens, 0) / n;
  const cost = outcomes.reduce((s, o) => s + o.costUsd, 0) / n;
  const failed = outcomes.filter((o) => o.status !== 'SUCCEEDED').length;
  console.log(`mean tokens per PR (input+output): ${Math.round(tokens)}`);
  console.log(`mean cost per PR: $${cost.toFixed(4)}`);
  console.log(`clean PRs with at least one finding: ${cleanFlagged} of ${cleanCases}`);
  // The verifier pass: what it checked and dropped, and how many dropped findings were right (a golden).
  const checked = outcomes.reduce((s, o) => s + (o.verification?.checked ?? 0), 0);
  if (outcomes.some((o) => o.verification)) {
    const dropped = outcomes.reduce((s, o) => s + (o.verification?.dropped ?? 0), 0);
    const downgraded = outcomes.reduce((s, o) => s + (o.verification?.downgraded ?? 0), 0);
    const wronglyDropped = cases.reduce(
      (s, c, i) =>
        s +
        scoreCase(
          (outcomes[i]?.verification?.notes ?? []).filter((n) => n.outcome === 'dropped').map((n) => ({ ...n, agents: [] })),
          c.golden,
        ).matchedFindings,
      0,
    );
    const confirmed = outcomes.reduce((s, o) => s + (o.verification?.confirmed ?? 0), 0);
    console.log(
      `verifier: ${checked} findings checked, ${confirmed} confirmed, ${dropped} dropped (${wronglyDropped} of them matched a golden, among the first ${MAX_NOTES} listed per run), ${downgraded} downgraded`,
    );
  }
  console.log(`runs not SUCCEEDED: ${failed}`);
  console.log(`wall time: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (misses.length > 0) {
    console.log('');
    console.log('cases with a miss or an unmatched finding:');
    for (const m of misses) console.log(m);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
      process.exit(1);
    },
  );
}
