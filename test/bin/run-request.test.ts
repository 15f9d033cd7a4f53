import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_REQUEST_CHARS } from '../../lambdas/core/contracts.js';
import { PROJECT_ROOT, WORKFLOWS_DIR } from '../../lib/workspace.js';
import { exampleRepo, tempDir } from '../helpers.js';

const CLI = join(PROJECT_ROOT, 'bin', 'agentflow.js');
const exec = promisify(execFile);

/** Runs the CLI with the offline model server; exit code, stdout and stderr. */
const cli = async (...args: string[]) => {
  try {
    const r = await exec(process.execPath, [CLI, ...args], { env: { ...process.env, AGENTFLOW_OFFLINE: '1' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

/** A workflows folder with a request workflow (`ask`, trigger: request) and its answer agent. */
let workflows = '';
beforeAll(() => {
  workflows = join(tempDir(), 'workflows');
  mkdirSync(join(workflows, 'agents'), { recursive: true });
  copyFileSync(join(WORKFLOWS_DIR, 'models.yml'), join(workflows, 'models.yml'));
  writeFileSync(
    join(workflows, 'agents', 'helper.yml'),
    [
      'name: helper',
      "description: Answers a person's question",
      'provider: bedrock',
      'model: claude-haiku',
      'output: answer',
      "prompt: You answer a person's question about their order in a few sentences. Be precise and kind.",
      '',
    ].join('\n'),
  );
  writeFileSync(join(workflows, 'ask.yml'), 'name: Ask\ntrigger: { event: request }\nphases:\n  - name: reply\n    agents: [helper]\n');
});

describe('CLI: agentflow run --request', () => {
  it('refuses --request on a review workflow, saying why, with exit 1 and one line', async () => {
    const repo = exampleRepo();
    const r = await cli('run', 'pr-review', '--repo', repo.path, '--base', repo.base, '--head', repo.head, '--request', 'hi');
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'agentflow: pr-review reviews changes and answers no request (its trigger has no request event): drop --request, or run a workflow with trigger: request',
    );
  });

  it('refuses a review workflow without --repo, --base and --head', async () => {
    const r = await cli('run', 'pr-review', '--json');
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('agentflow: pr-review reviews a change: pass --repo <path>, --base <ref> and --head <ref>');
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ status: 'FAILED' });
  });

  it('refuses a request workflow without --request', async () => {
    const r = await cli('run', 'ask', '--workflows', workflows);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('agentflow: ask answers requests (trigger: request): pass --request "<text>"');
  });

  it("refuses a review's options on a request workflow, and a request longer than a run takes", async () => {
    const base = await cli('run', 'ask', '--workflows', workflows, '--request', 'where is my order?', '--base', 'main');
    expect(base.code).toBe(1);
    expect(base.stderr.trim()).toBe('agentflow: ask answers requests: --base belong to review workflows; drop them');
    const long = await cli('run', 'ask', '--workflows', workflows, '--request', 'x'.repeat(MAX_REQUEST_CHARS + 1));
    expect(long.code).toBe(1);
    expect(long.stderr.trim()).toBe(`agentflow: --request must hold 1 to ${MAX_REQUEST_CHARS} characters and --requester 1 to 200 (text)`);
  });

  it('runs a request workflow and prints the answer, the phases and the cost; --json ends with them', async () => {
    const stateDir = tempDir();
    const r = await cli('run', 'ask', '--workflows', workflows, '--request', 'Where is my order 1234?', '--json', '--state-dir', stateDir);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^Answer \(phase reply, agent helper\):$/m);
    expect(r.stderr).toMatch(/^ {2}✔ reply ran$/m);
    expect(r.stderr).toMatch(/^Cost: \$\d+\.\d{6} /m);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
    expect(out).toMatchObject({
      status: 'SUCCEEDED',
      workflow: 'ask',
      requester: expect.stringMatching(/^local:/),
      answer: expect.any(String),
      answerRef: expect.any(String),
      phases: [{ phase: 'reply', status: 'ran' }],
      toolCalls: [],
    });
    expect(out.costUsd).toBeGreaterThan(0);
    // `runs` shows who asked instead of a pull request, with the same cost.
    const runs = await cli('runs', '--json', '--state-dir', stateDir);
    expect(JSON.parse(runs.stdout).runs[0]).toMatchObject({
      runId: out.execution,
      costUsd: out.costUsd,
      request: { requester: out.requester },
    });
  });

  it('documents --request and --requester in run --help', async () => {
    const r = await cli('run', '--help');
    expect(r.code).toBe(0);
    // Commander wraps the help at the terminal's width.
    const help = r.stdout.replace(/\s+/g, ' ');
    expect(help).toContain('--request <text>');
    expect(help).toMatch(/--requester <id> .*\(default: "local:/);
    expect(help).toContain('A request workflow (trigger: request) answers --request');
  });
});
