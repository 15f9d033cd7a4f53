import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/workspace.js';
import { exampleRepo, tempDir } from '../helpers.js';

const CLI = join(PROJECT_ROOT, 'bin', 'agentflow.js');
const exec = promisify(execFile);
const cli = async (...args: string[]) => {
  try {
    const r = await exec(process.execPath, [CLI, ...args], { env: { ...process.env, AGENTFLOW_OFFLINE: '1' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

/** `agentflow run pr-review --json` on a fresh example repository, keeping state in `stateDir`. */
const runExample = (stateDir: string) => {
  const repo = exampleRepo();
  return cli('run', 'pr-review', '--repo', repo.path, '--base', repo.base, '--head', repo.head, '--json', '--state-dir', stateDir);
};

describe('CLI: agentflow', () => {
  it('validates the shipped workflows', async () => {
    const r = await cli('validate');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('✔ pr-review');
  });

  it('prints every error of a bad workflow as path:line:col: message and exits 1', async () => {
    const file = join(tempDir(), 'bad.yml');
    writeFileSync(
      file,
      'name: Bad\ntrigger: { event: pull_request.opened }\nphases:\n  - name: review\n    agents: [nobody]\n  - name: x\n    depends_on: [ghost]\n    agents: [security]\n',
    );
    const r = await cli('validate', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.yml:5:14: unknown agent "nobody"/);
    expect(r.stderr).toMatch(/bad\.yml:7:18: depends_on: unknown phase "ghost"/);
  });

  it('prints the compiled state machine as Mermaid', async () => {
    const r = await cli('graph', 'pr-review');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^flowchart TD/);
    expect(r.stdout).toContain('Agents: review (Map, max 4)');
  });

  it('runs a workflow on a local repository and ends with one JSON object', async () => {
    const r = await runExample(tempDir());
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const out = JSON.parse(lines[lines.length - 1] as string);
    expect(out).toMatchObject({
      status: 'SUCCEEDED',
      workflow: 'pr-review',
      findings: expect.any(Number),
      commentPath: expect.stringMatching(/pr-review\.md$/),
    });
    expect(out.agents).toHaveLength(4);
    expect(Object.keys(out.agents[0]).sort()).toEqual([
      'attempts',
      'cacheHits',
      'calls',
      'costUsd',
      'error',
      'fallbackUsed',
      'inputTokens',
      'model',
      'name',
      'outputTokens',
      'provider',
      'status',
    ]);
    expect(out.costUsd).toBeGreaterThan(0);
    expect(r.stderr).toContain('▶ Agents: review');
  });

  it("shows the run's spend in `costs` and the breakers in `breakers`, from the same --state-dir", async () => {
    const stateDir = tempDir();
    const run = await runExample(stateDir);

    expect(run.code).toBe(0);
    const costUsd = JSON.parse(run.stdout.trim().split('\n').at(-1) as string).costUsd as number;

    const costs = await cli('costs', '--json', '--state-dir', stateDir);
    expect(costs.code).toBe(0);
    const report = JSON.parse(costs.stdout);
    const month = new Date().toISOString().slice(0, 7);
    expect(report.month).toBe(month);
    const global = report.scopes.find((s: { scope: string }) => s.scope === `global#month#${month}`);
    expect(global).toMatchObject({ limitUsd: 3000, openReservations: 0, reservedUsd: 0 });
    expect(global.spentUsd).toBeCloseTo(costUsd, 6);
    expect([...new Set(report.models.map((m: { provider: string }) => m.provider))].sort()).toEqual(['bedrock', 'openai']);
    expect(report.totalUsd).toBeCloseTo(costUsd, 6);

    const text = await cli('costs', '--state-dir', stateDir);
    expect(text.stdout).toMatch(/global#month#\d{4}-\d{2}\s+\$3000\.00/);
    const breakers = await cli('breakers', '--json', '--state-dir', stateDir);
    expect(JSON.parse(breakers.stdout).breakers.every((b: { state: string }) => b.state === 'closed')).toBe(true);
  });

  it('has --help on every command', async () => {
    for (const cmd of ['validate', 'graph', 'run', 'serve', 'runs', 'costs', 'breakers']) {
      const r = await cli(cmd, '--help');
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(/^Usage: agentflow /);
    }
  });
});
