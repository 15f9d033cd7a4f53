import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { githubSignature } from '../../lambdas/core/signatures.js';
import { claimFolder } from '../../lib/local/runtime.js';
import { PROJECT_ROOT } from '../../lib/workspace.js';
import { exampleRepo, tempDir, waitFor } from '../helpers.js';
import { sarifSchemaErrors } from '../standins/github.js';

const CLI = join(PROJECT_ROOT, 'bin', 'agentflow.js');
const exec = promisify(execFile);
const cli = (...args: string[]) => cliWith({}, ...args);
/** Runs the CLI with the offline model server and `env` added to the environment. */
const cliWith = async (env: Record<string, string>, ...args: string[]) => {
  try {
    const r = await exec(process.execPath, [CLI, ...args], { env: { ...process.env, AGENTFLOW_OFFLINE: '1', ...env } });
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

  it('stops at once, with one line, on a state folder another process holds (nothing it started keeps it alive)', async () => {
    // Prepare: this process holds the folder, as a running `serve` would.
    const stateDir = tempDir();
    mkdirSync(join(stateDir, 'dynamodb'), { recursive: true });
    const release = claimFolder(join(stateDir, 'dynamodb'));
    try {
      // Act: were the offline model server left running, the CLI would never exit (and the test would time out).
      const r = await cli('run', 'team-request', '--request', 'Create a ticket', '--state-dir', stateDir);

      // Assess
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/is in use by process \d+/);
    } finally {
      release();
    }
  }, 30_000);

  it('prints its version (package.json) with --version and -V', async () => {
    const { version } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await cli(flag);
      expect(r).toMatchObject({ code: 0, stdout: `${version}\n` });
    }
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
    // Four reviewers and the verifier (pr-review has verify: true).
    expect(out.agents).toHaveLength(5);
    expect(out.verification).toMatchObject({ checked: out.findings, dropped: 0 });
    // The inline review GitHub would get, written beside the comment.
    expect(out.reviewPath).toMatch(/pr-review\.review\.json$/);
    expect(out.inlineComments).toBeGreaterThan(0);
    // The fields the README documents (the run summary may carry more, e.g. the review plan's).
    expect(Object.keys(out.agents[0])).toEqual(
      expect.arrayContaining([
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
      ]),
    );
    expect(out.costUsd).toBeGreaterThan(0);
    expect(r.stderr).toContain('▶ Agents: review');
  });

  it('writes what code scanning and Slack would get, prints where, and writes --sarif', async () => {
    // Prepare: a workflow with the security agent, code scanning and a Slack channel.
    const dir = tempDir();
    const workflow = join(dir, 'security-scan.yml');
    writeFileSync(
      workflow,
      'name: Security scan\ntrigger: { event: pull_request.opened }\nphases:\n  - name: review\n    agents: [security]\noutput: { code_scanning: true, slack: "#mobile-security" }\n',
    );
    const repo = exampleRepo();
    const sarifFile = join(dir, 'out', 'run.sarif');

    // Act
    const r = await cli(
      'run',
      workflow,
      '--repo',
      repo.path,
      '--base',
      repo.base,
      '--head',
      repo.head,
      '--state-dir',
      join(dir, 'state'),
      '--sarif',
      sarifFile,
    );

    // Assess
    expect(r.code).toBe(0);
    const written = /code scanning SARIF with (\d+) results? written to (\S+security-scan\.results\.sarif)/.exec(r.stdout);
    expect(written).not.toBeNull();
    const local = JSON.parse(readFileSync(written?.[2] as string, 'utf8'));
    expect(sarifSchemaErrors(local)).toEqual([]);
    expect(local.runs[0].results.length).toBe(Number(written?.[1]));
    expect(local.runs[0].results.length).toBeGreaterThan(0);
    expect(r.stdout).toContain(`written to ${sarifFile}`);
    expect(JSON.parse(readFileSync(sarifFile, 'utf8'))).toEqual(local);
    expect(r.stdout).toMatch(/💬 #mobile-security: ✅ \*security-scan\* SUCCEEDED on local\/repository#1/);
  });

  it('exits 2 on a PARTIAL run, 1 with --fail-on-partial, and says why in the last line and the JSON', async () => {
    // Prepare: the offline Bedrock refuses every call, so the three Bedrock agents fail and the OpenAI one succeeds.
    const repo = exampleRepo();
    const faults = { AGENTFLOW_OFFLINE_FAULTS: 'bedrock:400' };
    const args = ['run', 'pr-review', '--repo', repo.path, '--base', repo.base, '--head', repo.head, '--json'];

    // Act
    const partial = await cliWith(faults, ...args, '--state-dir', tempDir());
    const strict = await cliWith(faults, ...args, '--fail-on-partial', '--state-dir', tempDir());

    // Assess
    expect(partial.code).toBe(2);
    expect(strict.code).toBe(1);
    const out = JSON.parse(partial.stdout.trim().split('\n').at(-1) as string);
    expect(out).toMatchObject({ status: 'PARTIAL', reason: expect.stringMatching(/^3 of 4 agents failed/) });
    expect(partial.stderr.trim().split('\n').at(-1)).toMatch(/^▲ run \S+ PARTIAL: 3 of 4 agents failed/);
    // Each failed agent: one ✖ line with the error's name and message, and no ✔ for it.
    expect(partial.stderr).toMatch(/^✖ {3}Run agent: review \[security\] \(\d+ ms\) — ProviderRejectedError: \S/m);
    expect(partial.stderr).not.toMatch(/^✔ {3}Run agent: review \[security\]/m);
    expect(partial.stderr).not.toMatch(/— error: $/m);
  });

  it('exits 1 on a FAILED run and still lists every agent with its error', async () => {
    // Prepare: every offline provider refuses every call.
    const repo = exampleRepo();

    // Act
    const r = await cliWith(
      { AGENTFLOW_OFFLINE_FAULTS: 'bedrock:400,openai:400' },
      ...['run', 'pr-review', '--repo', repo.path, '--base', repo.base, '--head', repo.head, '--json', '--state-dir', tempDir()],
    );

    // Assess
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
    expect(out).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/^every agent failed/) });
    // Every reviewer failed with its error; the verifier had nothing to check.
    expect(out.agents.map((a: { status: string; error: unknown }) => [a.status, typeof a.error])).toEqual([
      ...Array.from({ length: 4 }, () => ['failed', 'string']),
      ['succeeded', 'object'],
    ]);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^✖ run \S+ FAILED: every agent failed/);
  });

  describe('run: refs and repository', () => {
    /** The one stderr line of a refused `run` (any more would be git's stderr or a stack trace). */
    const refused = async (...args: string[]) => {
      const r = await cli('run', 'pr-review', '--state-dir', tempDir(), ...args);
      return { code: r.code, lines: r.stderr.trim().split('\n'), stdout: r.stdout };
    };

    it('rejects a --repo that is not a git repository with one line and exit 1', async () => {
      // Prepare
      const dir = tempDir('agentflow-not-a-repo-');

      // Act
      const r = await refused('--repo', dir, '--base', 'main', '--head', 'feature/x');

      // Assess
      expect(r).toEqual({ code: 1, lines: [`agentflow: ${dir} is not a git repository`], stdout: '' });
    });

    it('rejects a --head that names no commit with one line and exit 1', async () => {
      // Prepare
      const repo = exampleRepo();

      // Act
      const r = await refused('--repo', repo.path, '--base', 'main', '--head', 'does-not-exist');

      // Assess
      expect(r).toEqual({ code: 1, lines: [`agentflow: no commit "does-not-exist" in ${repo.path}`], stdout: '' });
    });

    it('rejects an option-like --head before git runs, with one line and exit 1', async () => {
      // Prepare
      const repo = exampleRepo();

      // Act
      const r = await refused('--repo', repo.path, '--base', 'main', '--head', '-x');

      // Assess
      expect(r).toEqual({ code: 1, lines: ['agentflow: invalid git ref "-x": starts with "-"'], stdout: '' });
    });

    it('reviews only the branch’s own files when the base moved 30 commits on (diff from the merge base)', async () => {
      // Prepare: the example branch changes 3 files; main then moves on with 30 commits touching 30 other files.
      const repo = exampleRepo();
      const git = (...args: string[]) =>
        execFileSync('git', ['-C', repo.path, '-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'commit.gpgsign=false', ...args], {
          encoding: 'utf8',
        });
      git('checkout', '-q', 'main');
      mkdirSync(join(repo.path, 'ios/Shop/Later'), { recursive: true });
      for (let i = 1; i <= 30; i++) {
        writeFileSync(join(repo.path, `ios/Shop/Later/Screen${i}.swift`), `struct Screen${i} {}\n`);
        git('add', '--', `ios/Shop/Later/Screen${i}.swift`);
        git('commit', '-q', '-m', `main ${i}`);
      }
      const stateDir = tempDir();

      // Act
      const r = await cli(
        'run',
        'pr-review',
        '--repo',
        repo.path,
        '--base',
        'main',
        '--head',
        'feature/checkout-payments',
        '--json',
        '--state-dir',
        stateDir,
      );

      // Assess
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
      expect(out.status).toBe('SUCCEEDED');
      const context = JSON.parse(readFileSync(join(stateDir, 'artifacts', 'runs', out.execution, 'context.json'), 'utf8'));
      expect(context.stats.filesChanged).toBe(3);
      expect(context.files.map((f: { path: string }) => f.path).sort()).toEqual([
        'android/app/src/main/java/com/acme/shop/cart/CartRepository.kt',
        'ios/Shop/Checkout/CheckoutViewModel.swift',
        'ios/Shop/Checkout/PaymentClient.swift',
      ]);
    });
  });

  describe('run: the local API of a run waiting at a gate', () => {
    it('accepts a delivery signed with the configured AGENTFLOW_GITHUB_WEBHOOK_SECRET and refuses the development secret', async () => {
      // Prepare: architecture-migration waits at its approval; its local API is in serve.json.
      const repo = exampleRepo();
      const stateDir = tempDir();
      const secret = 'cli-test-configured-secret';
      const child = spawn(
        process.execPath,
        [
          CLI,
          'run',
          'architecture-migration',
          '--repo',
          repo.path,
          '--base',
          repo.base,
          '--head',
          repo.head,
          '--json',
          '--state-dir',
          stateDir,
        ],
        { env: { ...process.env, AGENTFLOW_OFFLINE: '1', AGENTFLOW_GITHUB_WEBHOOK_SECRET: secret }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      child.stdout?.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      const exited = new Promise<number | null>((ok) => child.once('exit', ok));
      try {
        const servePath = join(stateDir, 'serve.json');
        const { url, token } = await waitFor(
          async () => (existsSync(servePath) ? (JSON.parse(readFileSync(servePath, 'utf8')) as { url: string; token: string }) : undefined),
          'serve.json',
        );
        const id = await waitFor(async () => {
          const r = await fetch(`${url}/approvals`, { headers: { authorization: `Bearer ${token}` } });
          return ((await r.json()) as { approvals: Array<{ id: string }> }).approvals[0]?.id;
        }, 'the approval');
        const body = JSON.stringify({
          action: 'created',
          issue: { number: 1, pull_request: { url: 'https://api.github.com/repos/local/repository/pulls/1' } },
          comment: { body: `/agentflow approve ${id}`, user: { login: 'octocat' }, author_association: 'MEMBER' },
          repository: { full_name: 'local/repository' },
        });
        const deliver = (key: string, delivery: string) =>
          fetch(`${url}/webhooks/github`, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'x-github-event': 'issue_comment',
              'x-github-delivery': delivery,
              'x-hub-signature-256': githubSignature(key, body),
            },
            body,
          });

        // Act
        const dev = await deliver('agentflow-local-dev-secret', 'run-dev-1');
        const configured = await deliver(secret, 'run-configured-1');

        // Assess
        expect(dev.status).toBe(401);
        expect(configured.status).toBe(200);
        expect(await configured.json()).toMatchObject({ outcome: 'approved' });
        expect(await exited).toBe(0);
        expect(JSON.parse(stdout.trim().split('\n').at(-1) as string)).toMatchObject({
          status: 'SUCCEEDED',
          workflow: 'architecture-migration',
        });
        expect(existsSync(servePath)).toBe(false);
      } finally {
        child.kill();
      }
    });
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
