import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitChangeSource } from '../../lambdas/adapters/changes.js';
import { RepoToolbox } from '../../lambdas/adapters/repo-tools.js';
import { toMicro } from '../../lambdas/core/budget.js';
import type { Change, ReviewInput } from '../../lambdas/core/contracts.js';
import { readSpend } from '../../lambdas/core/spend.js';
import type { ToolCallRecord } from '../../lambdas/core/tools.js';
import { toolCallsKey } from '../../lambdas/invoke-agent/answer-agent.js';
import type { LocalRuntime } from '../../lib/local/runtime.js';
import { loadWorkspace, WORKFLOWS_DIR } from '../../lib/workspace.js';
import { exampleChange, exampleInput, exampleRepo, tempDir, testRuntime } from '../helpers.js';

/*
 * A review agent that uses AgentFlow's built-in, read-only tools (issue 15), end to end on the
 * local runtime: the offline model's review rule (lib/local/offline-tools.ts, rule 3) lists the
 * changed files and reads the chunk's first file before it answers, through the real tool loop,
 * RepoToolbox and git. First on the example repository, then on a real Android repository (a
 * local mirror of android/nowinandroid, cloned without a work tree: git reads the commits).
 */

/** The mirror of android/nowinandroid (a git directory without work tree). */
const NOWINANDROID = process.env.AGENTFLOW_NOWINANDROID_MIRROR ?? '/work/.mirror/android+nowinandroid/repo';

const TOOLS = 'tools: [{ server: agentflow, allow: [read_file, search, list_changed_files] }]';

/** A workflows folder with the same one-phase review twice: `review-tools` (code-review with the built-in tools) and `review-plain`. */
function reviewWorkflows(): string {
  const dir = join(tempDir(), 'workflows');
  mkdirSync(join(dir, 'agents'), { recursive: true });
  copyFileSync(join(WORKFLOWS_DIR, 'models.yml'), join(dir, 'models.yml'));
  copyFileSync(join(WORKFLOWS_DIR, 'agents', 'code-review.yml'), join(dir, 'agents', 'code-review.yml'));
  const workflow = (name: string, agent: string) =>
    `name: ${name}\ntrigger: { event: [change.opened, change.updated] }\nbudget: { max_usd_per_run: 2.00, project: mobile-apps }\nphases:\n  - name: review\n    agents:\n      - ${agent}\noutput: { review: true }\n`;
  writeFileSync(join(dir, 'review-tools.yml'), workflow('Review with tools', `agent: code-review\n        ${TOOLS}`));
  writeFileSync(join(dir, 'review-plain.yml'), workflow('Review without tools', 'code-review'));
  return dir;
}

/** The agent entry of a run record (its `agents` are stored untyped). */
interface RecordedAgent {
  readonly name: string;
  readonly toolCalls: number;
  readonly toolErrors: number;
  readonly iterations: number;
}

/** A run's findings as the report keeps them, without what differs between runs. */
async function reportFindings(rt: LocalRuntime, runId: string) {
  const report = (await rt.artifacts.getJson(`runs/${runId}/report.json`)) as {
    findings: Array<{ file: string; line: number; severity: string; category: string; message: string }>;
  };
  return report.findings.map(({ file, line, severity, category, message }) => ({ file, line, severity, category, message }));
}

/**
 * Runs `review-tools` and `review-plain` on the same change and checks what every run must show:
 * SUCCEEDED, the tool calls recorded (a listing, then a read of a changed file, per chunk; all ok),
 * the counts in the run record, the cost equal to the spend record and the ledger, and the same
 * findings as without tools. Returns the tool calls.
 */
async function reviewBothWays(rt: LocalRuntime, runId: string, input: ReviewInput): Promise<ToolCallRecord[]> {
  // Act
  const withTools = await rt.execute('review-tools', runId, input);
  const plain = await rt.execute('review-plain', `${runId}-plain`, { ...input, runId: `${runId}-plain`, workflow: 'review-plain' });

  // Assess: the run and the tool calls.
  expect(withTools.status).toBe('SUCCEEDED');
  expect(plain.status).toBe('SUCCEEDED');
  const calls = (await rt.artifacts.getJson(toolCallsKey(runId, 'review', 'code-review'))) as ToolCallRecord[];
  const lists = calls.filter((c) => c.name === 'agentflow__list_changed_files');
  const reads = calls.filter((c) => c.name === 'agentflow__read_file');
  expect(lists.length).toBeGreaterThan(0);
  expect(reads).toHaveLength(lists.length);
  expect(calls).toHaveLength(lists.length + reads.length);
  for (const c of calls) expect(c, c.name).toMatchObject({ ok: true, output: expect.any(String) });
  expect(calls.some((c) => c.refused)).toBe(false);
  // Every read is of a file the listing names.
  const listed = new Set(lists.flatMap((c) => (c.output ?? '').split('\n').map((l) => l.split('\t')[0])));
  for (const r of reads) expect(listed.has(JSON.parse(r.input).path), r.input).toBe(true);

  // The run record counts them: one model call per tool call, and one answer per chunk (one listing each).
  const record = await rt.runs.get(runId);
  const agent = ((record?.agents ?? []) as RecordedAgent[]).find((a) => a.name === 'code-review');
  expect(agent).toMatchObject({ toolCalls: calls.length, toolErrors: 0, iterations: calls.length + lists.length });

  // The cost is the agent's spend record, and the run's settled spend in the ledger.
  const spend = await readSpend(rt.artifacts, runId, 'review', 'code-review');
  const spentMicro = spend.invocations.reduce((s, i) => s + i.costMicro, 0);
  expect(spentMicro).toBeGreaterThan(0);
  expect(toMicro(record?.costUsd ?? -1)).toBe(spentMicro);
  expect((await rt.ledger.get(`run#${runId}`))?.spentMicro).toBe(spentMicro);

  // The findings are the ones the agent gives without tools.
  expect(await reportFindings(rt, runId)).toEqual(await reportFindings(rt, `${runId}-plain`));
  return calls;
}

describe('e2e: a review agent with the built-in tools, on the example repository', () => {
  let rt: LocalRuntime;
  const repo = exampleRepo();
  beforeAll(async () => {
    rt = await testRuntime(repo, { workspace: loadWorkspace(reviewWorkflows()) });
  });
  afterAll(async () => {
    await rt?.stop();
  });

  it('lists the changed files and reads one before it answers; the findings stay those without tools, the cost the ledger’s', async () => {
    const calls = await reviewBothWays(rt, 'tools-example', exampleInput(repo, 'tools-example', 'review-tools'));
    expect((await reportFindings(rt, 'tools-example')).length).toBeGreaterThan(0);
    expect(calls[0]?.name).toBe('agentflow__list_changed_files');
    expect(calls[1]?.name).toBe('agentflow__read_file');
  });
});

/** The merge of android/nowinandroid#2024: its last five first-parent commits add a Kotlin TODO the offline rules flag. */
const GRADLE_921 = 'fc7eaf538464667e88a9bf8697012cd97e488227';

describe('e2e: a review agent with the built-in tools, on android/nowinandroid', () => {
  let rt: LocalRuntime;
  let clone: string;
  const git = (...args: string[]) => execFileSync('git', ['-C', clone, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  /** The change from five first-parent commits before `head` to `head` (a manual run: number 0). */
  const changeOf = (head: string): Change =>
    exampleChange({
      repository: 'android/nowinandroid',
      number: 0,
      title: `${head}~5...${head}`,
      author: '',
      baseSha: git('rev-parse', `${head}~5`).trim(),
      headSha: git('rev-parse', head).trim(),
    });
  beforeAll(async () => {
    if (!existsSync(NOWINANDROID)) {
      throw new Error(`no nowinandroid mirror at ${NOWINANDROID}: set AGENTFLOW_NOWINANDROID_MIRROR to a clone of android/nowinandroid`);
    }
    // Without a work tree: the runtime reads commits with git (a checkout needs blobs the mirror may lack).
    clone = join(tempDir(), 'nowinandroid');
    execFileSync('git', ['clone', '-q', '--no-checkout', NOWINANDROID, clone]);
    rt = await testRuntime(exampleRepo(), { repoPath: clone, workspace: loadWorkspace(reviewWorkflows()) });
  });
  afterAll(async () => {
    await rt?.stop();
  });

  it.each([
    ['HEAD~5..HEAD', 'HEAD', 'tools-android-head'],
    [`${GRADLE_921.slice(0, 8)}~5..${GRADLE_921.slice(0, 8)} (a TODO)`, GRADLE_921, 'tools-android-todo'],
  ])(
    'reviews %s reading only changed Kotlin files, whole, at the head commit, with the findings it gives without tools',
    async (_range, head, runId) => {
      const change = changeOf(head);
      const calls = await reviewBothWays(rt, runId, { runId, workflow: 'review-tools', change });
      const changed = git('diff', '--name-only', `${change.baseSha}...${change.headSha}`).trim().split('\n');
      for (const r of calls.filter((c) => c.name === 'agentflow__read_file')) {
        const path = JSON.parse(r.input).path as string;
        expect(changed).toContain(path);
        expect(path).toMatch(/\.kt$/);
        // The whole file from git, not the diff fallback (outputs are capped: compare the start).
        const whole = git('cat-file', 'blob', `${change.headSha}:${path}`);
        expect(whole.startsWith((r.output ?? '').slice(0, 500))).toBe(true);
      }
      if (head === GRADLE_921)
        expect(await reportFindings(rt, runId)).toEqual([expect.objectContaining({ category: 'quality', severity: 'info' })]);
    },
  );

  it('refuses read_file for a file of the repository the change does not touch', async () => {
    // Prepare: the built-in tools over this change, as InvokeAgent builds them.
    const change = changeOf('HEAD');
    const source = new GitChangeSource(clone);
    const files = await source.listChangedFiles(change);
    const tools = new RepoToolbox({ change, files }, [{ name: 'read_file', write: false }], {
      readHeadFile: (c, p) => source.readHeadFile(c, p),
    });
    expect(files.map((f) => f.path)).not.toContain('README.md');
    expect(git('cat-file', '-t', `${change.headSha}:README.md`).trim()).toBe('blob');

    // Act
    const record = await tools.call('agentflow__read_file', { path: 'README.md' });

    // Assess
    expect(record).toMatchObject({
      ok: false,
      refused: true,
      error: 'README.md is not a file this change touches: only changed files can be read',
    });
    expect(record.output).toBeUndefined();
  });
});
