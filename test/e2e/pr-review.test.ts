import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunSummary, RunSummarySchema } from '../../lambdas/core/contracts.js';
import { GatewayConfigSchema } from '../../lambdas/core/gateway-config.js';
import { TOP_FINDINGS } from '../../lambdas/core/report.js';
import { InlineReviewSchema } from '../../lambdas/core/review.js';
import type { ExampleRepo } from '../../lib/local/example-repo.js';
import type { LocalRuntime, LocalRuntimeOptions } from '../../lib/local/runtime.js';
import { exampleInput, exampleRepo, tempDir, testRuntime } from '../helpers.js';

let repo: ExampleRepo;
beforeAll(() => {
  repo = exampleRepo();
});

const runtimeWith = (options: Partial<LocalRuntimeOptions> = {}) => testRuntime(repo, options);

describe('e2e: pr-review on the local runtime', () => {
  let rt: LocalRuntime;
  let comment = '';
  beforeAll(async () => {
    rt = await runtimeWith({
      onComment: (body) => {
        comment = body;
      },
    });
  });
  afterAll(async () => {
    await rt.stop();
  });

  it('reviews the example change with four agents in parallel and publishes the comment and run record', async () => {
    const result = await rt.execute('pr-review', 'e2e-1', exampleInput(repo, 'e2e-1'));
    expect(result.status).toBe('SUCCEEDED');
    const summary = result.output as RunSummary;
    expect(summary.agents.map((a) => [a.name, a.status, a.provider, a.model])).toEqual([
      ['code-review', 'succeeded', 'bedrock', 'claude-sonnet'],
      ['security', 'succeeded', 'bedrock', 'claude-sonnet'],
      ['test-coverage', 'succeeded', 'openai', 'gpt-4.1-mini'],
      ['documentation', 'succeeded', 'bedrock', 'claude-haiku'],
      // verify: true — the verifier checks the merged findings on the cheap model.
      ['verifier', 'succeeded', 'bedrock', 'claude-haiku'],
    ]);
    for (const a of summary.agents) {
      expect(a.inputTokens, a.name).toBeGreaterThan(0);
      expect(a.costUsd, a.name).toBeGreaterThan(0);
    }
    expect(summary.costUsd).toBeCloseTo(
      summary.agents.reduce((s, a) => s + a.costUsd, 0),
      6,
    );
    expect(summary.bySeverity.critical).toBe(2);
    expect(summary.findings).toBeGreaterThanOrEqual(15);
    expect(summary.offline).toBe(true);

    // The comment: the top findings, most severe first, linked to their lines at the head commit;
    // agents with provider, model, tokens and USD in a collapsed table.
    const blob = `https://github.com/acme/shop-apps/blob/${exampleInput(repo, 'e2e-1').change.headSha}`;
    expect(comment).toMatch(/^<!-- agentflow:pr-review -->/);
    expect(comment).toContain(
      `- 🔴 **critical** · security — A credential is committed in source code (AgentFlow redacted it before review). ([\`ios/Shop/Checkout/PaymentClient.swift:10\`](${blob}/ios/Shop/Checkout/PaymentClient.swift#L10))`,
    );
    expect(comment).toContain(
      `- 🟠 **high** · correctness — \`!!\` throws a NullPointerException when the value is null. ([\`android/app/src/main/java/com/acme/shop/cart/CartRepository.kt:21\`](${blob}/android/app/src/main/java/com/acme/shop/cart/CartRepository.kt#L21))`,
    );
    // Every finding is on the pull request: the top ones listed, the rest in a collapsed list.
    expect(comment.split('\n').filter((l) => /^- [🔴🟠🟡🔵⚪] \*\*/u.test(l))).toHaveLength(summary.findings);
    const top = comment.slice(comment.indexOf('### Top findings'), comment.indexOf('<details>', comment.indexOf('### Top findings')));
    expect(top.split('\n').filter((l) => /^- [🔴🟠🟡🔵⚪] \*\*/u.test(l))).toHaveLength(TOP_FINDINGS);
    expect(comment).toContain(
      `_${summary.findings - TOP_FINDINGS} more findings below, on the changed lines in the inline review and in the full report (run e2e-1)._`,
    );
    expect(comment).toContain(`<details><summary>${summary.findings - TOP_FINDINGS} more findings</summary>`);
    expect(comment).toContain('<details><summary>Agents, tokens and cost</summary>');
    expect(comment).toMatch(/\| code-review \| ✅ succeeded \| bedrock \| claude-sonnet \| [\d,]+ \| [\d,]+ \| \$0\.\d{4} \|/);
    expect(comment).toContain('AgentFlow offline model server');
    expect(comment).not.toContain('AKIAIOSFODNN7EXAMPLE');

    // Nothing but references travelled through the state machine; the run record holds the totals.
    const record = await rt.runs.get('e2e-1');
    expect(record).toMatchObject({
      status: 'SUCCEEDED',
      findings: summary.findings,
      costUsd: summary.costUsd,
      repository: 'acme/shop-apps',
    });
    expect(summary.status).toBe('SUCCEEDED');
    // Every finding of the offline model is on a line the diff shows: none was moved to file level.
    expect(summary.relocated).toBe(0);
    expect(record?.relocated).toBe(0);
    expect(comment).toContain('**✅ SUCCEEDED**');
    // The offline verifier re-applies the offline rules to the cited code: it confirms every finding.
    expect(summary.verification).toMatchObject({ checked: summary.findings, confirmed: summary.findings, dropped: 0, unverified: 0 });
    expect(record?.verification).toMatchObject({ checked: summary.findings, dropped: 0 });
    expect(comment).toMatch(
      new RegExp(
        `\\*\\*Verifier\\*\\* \\(claude-haiku, \\$0\\.\\d{4}\\): ${summary.findings} findings checked — ${summary.findings} confirmed\\.`,
      ),
    );
    // The findings on the diff's lines as one review (what GitHub would get): at most 20 comments,
    // the cleartext URL with a one-click suggestion of the fixed line.
    const review = InlineReviewSchema.parse(await rt.artifacts.getJson('comments/acme/shop-apps/42/pr-review.review.json'));
    expect(review.commitId).toBe(exampleInput(repo, 'e2e-1').change.headSha);
    expect(review.comments.length).toBeGreaterThan(0);
    expect(review.comments.length).toBeLessThanOrEqual(20);
    expect(record?.inlineComments).toBe(review.comments.length);
    const cleartext = review.comments.find(
      (c) => c.path === 'ios/Shop/Checkout/PaymentClient.swift' && c.line === 9 && c.body.includes('Cleartext'),
    );
    expect(cleartext?.body).toContain(
      '```suggestion\n    private let baseURL = URL(string: "https://payments.acme-shop.example/v1")!\n```',
    );
    // The check run on the head commit: started in progress, concluded failure (two critical
    // findings, fail_on: critical), with the findings as annotations.
    const checkRun = (await rt.artifacts.getJson('comments/acme/shop-apps/42/AgentFlow-pr-review.check-run.json')) as {
      status: string;
      conclusion: string;
      output: { title: string; annotations: Array<{ path: string; start_line: number; annotation_level: string }> };
    };
    expect(checkRun).toMatchObject({ status: 'completed', conclusion: 'failure' });
    expect(checkRun.output.title).toMatch(/^SUCCEEDED: \d+ findings \(2 critical/);
    expect(checkRun.output.annotations.filter((a) => a.annotation_level === 'failure').length).toBeGreaterThanOrEqual(2);
    expect(record?.check).toBe('failure');
    // 14 for the review, 3 for the verifier (its Pass, Map and one agent task), 1 to start the check run.
    expect(result.transitions).toBe(18);
  });

  it('never lets a secret reach the model: the stored context is redacted', async () => {
    await rt.execute('pr-review', 'e2e-2', exampleInput(repo, 'e2e-2'));
    const ctx = await rt.artifacts.getText('runs/e2e-2/context.json');
    expect(ctx).toContain('[REDACTED:aws-access-key]');
    expect(ctx).not.toMatch(/AKIAIOSFODNN7EXAMPLE|pk_live_51HxAcmeDemo/);
  });

  it('skips with a reason and a SKIPPED run record when no file matches files_changed', async () => {
    const result = await rt.execute('pr-review', 'e2e-skip', {
      ...exampleInput(repo, 'e2e-skip'),
      change: { ...exampleInput(repo, 'e2e-skip').change, headSha: repo.base },
    });
    expect(result.status).toBe('SUCCEEDED');
    const record = await rt.runs.get('e2e-skip');
    expect(record?.status).toBe('SKIPPED');
    expect(record?.reason).toMatch(/must change a file matching \*\.swift/);
  });

  it('fails the run with a record when the change cannot be loaded', async () => {
    const result = await rt.execute('pr-review', 'e2e-bad', {
      ...exampleInput(repo, 'e2e-bad'),
      change: { ...exampleInput(repo, 'e2e-bad').change, headSha: 'f'.repeat(40) },
    });
    expect(result.status).toBe('FAILED');
    expect((await rt.runs.get('e2e-bad'))?.status).toBe('FAILED');
  });
});

describe('e2e: one provider failing', () => {
  it('reports every agent failed with the reason when Bedrock and OpenAI both fail, and the run is FAILED with that reason', async () => {
    let comment = '';
    const rt = await runtimeWith({
      offline: { faults: { bedrock: 503, openai: 503 } },
      onComment: (b) => {
        comment = b;
      },
    });
    try {
      const result = await rt.execute('pr-review', 'e2e-503', exampleInput(repo, 'e2e-503'));
      // The review is published, then the execution fails with a readable cause.
      expect(result.status).toBe('FAILED');
      expect(result.error).toMatch(/^AgentFlowRunFailed: every agent failed: code-review \((ProviderUnavailableError|CircuitOpenError)/);
      const record = await rt.runs.get('e2e-503');
      expect(record).toMatchObject({ status: 'FAILED', reason: expect.stringMatching(/^every agent failed/) });
      const summary = RunSummarySchema.parse(
        await rt.artifacts.getJson('runs/e2e-503/report.json').then((r) => (r as { summary: unknown }).summary),
      );
      // Every reviewer failed; the verifier had nothing to check and called no model.
      expect(summary.agents.find((a) => a.name === 'verifier')).toMatchObject({ status: 'succeeded', calls: 0 });
      for (const a of summary.agents.filter((x) => x.name !== 'verifier')) {
        expect(a.status, a.name).toBe('failed');
        expect(a.error, a.name).toMatch(/^(ProviderUnavailableError: (bedrock|openai): |CircuitOpenError: )/);
      }
      expect(comment).toContain('**❌ FAILED** — every agent failed: code-review (');
    } finally {
      await rt.stop();
    }
  });

  it('finishes the Bedrock agents on OpenAI when Bedrock answers 503, and sends Bedrock no calls while its breaker is open', async () => {
    let comment = '';
    const rt = await runtimeWith({
      offline: { faults: { bedrock: 503 } },
      onComment: (b) => {
        comment = b;
      },
    });
    try {
      const first = await rt.execute('pr-review', 'e2e-fallback-1', exampleInput(repo, 'e2e-fallback-1'));
      const summary = first.output as RunSummary;
      expect(summary.agents.map((a) => [a.name, a.status, a.provider])).toEqual([
        ['code-review', 'succeeded', 'openai'],
        ['security', 'succeeded', 'openai'],
        ['test-coverage', 'succeeded', 'openai'],
        ['documentation', 'succeeded', 'openai'],
        ['verifier', 'succeeded', 'openai'],
      ]);
      expect(summary.agents.filter((a) => a.fallbackUsed).map((a) => a.name)).toEqual([
        'code-review',
        'security',
        'documentation',
        'verifier',
      ]);
      expect(comment).toMatch(
        /\| code-review \| ✅ succeeded \| openai \| gpt-4\.1 \|.*fallback used · attempts: bedrock\/claude-sonnet failed \(ProviderUnavailableError, \d+ ms\)/,
      );
      const breakers = await rt.breakers.list();
      const sonnet = breakers.find((b) => b.model.includes('claude-sonnet'));
      expect(sonnet).toMatchObject({ provider: 'bedrock', state: 'open' });
      const key = `bedrock:${sonnet?.model}`;
      const sonnetCalls = rt.offline?.modelCalls[key];
      expect(sonnetCalls).toBeGreaterThanOrEqual(5);
      const second = await rt.execute('pr-review', 'e2e-fallback-2', exampleInput(repo, 'e2e-fallback-2'));
      expect((second.output as RunSummary).agents.every((a) => a.status === 'succeeded')).toBe(true);
      expect(rt.offline?.modelCalls[key]).toBe(sonnetCalls);
    } finally {
      await rt.stop();
    }
  });

  it('divides a run budget too small for every agent: the agents it covers review, the others make no call and the comment says why', async () => {
    let comment = '';
    const rt = await runtimeWith({
      gateway: GatewayConfigSchema.parse({ budgets: { perRunUsd: 0.05 }, retry: { baseDelayMs: 1, maxDelayMs: 5 } }),
      onComment: (b) => {
        comment = b;
      },
    });
    try {
      const result = await rt.execute('pr-review', 'e2e-budget', exampleInput(repo, 'e2e-budget'));
      const summary = result.output as RunSummary;
      expect(summary.status).toBe('PARTIAL');
      const refused = summary.agents.filter((a) => a.status === 'failed');
      const reviewed = summary.agents.filter((a) => a.status !== 'failed');
      expect(refused.length).toBeGreaterThan(0);
      expect(reviewed.length).toBeGreaterThan(0);
      for (const a of refused) {
        expect(a.error).toMatch(/^BudgetExceededError: not reviewed: budget: its share of the run budget \(\$0\.0000\) has no room/);
        expect(a.calls, a.name).toBe(0);
      }
      // Each reviewer within its share; the verifier (last) within what the run budget left (asserted below).
      for (const a of reviewed.filter((x) => x.phase !== 'verify')) expect(a.costUsd).toBeLessThanOrEqual(a.shareUsd ?? 0);
      expect(summary.agents.find((a) => a.phase === 'verify')?.shareUsd).toBeUndefined();
      expect(comment).toContain('**⚠️ PARTIAL**');
      expect(comment).toMatch(/### Not reviewed[\s\S]*file.* not reviewed — budget: its share of the run budget/);
      const run = await rt.ledger.get('run#e2e-budget');
      expect(run?.committedMicro).toBeLessThanOrEqual(50_000);
      expect(run?.openHolds).toBe(0);
    } finally {
      await rt.stop();
    }
  });

  it('fails the run with "not reviewed: budget" and makes no provider call when the budget covers no chunk at all', async () => {
    let comment = '';
    const rt = await runtimeWith({
      gateway: GatewayConfigSchema.parse({ budgets: { perRunUsd: 0.0005 } }),
      onComment: (b) => {
        comment = b;
      },
    });
    try {
      const result = await rt.execute('pr-review', 'e2e-nobudget', exampleInput(repo, 'e2e-nobudget'));
      expect(result.status).toBe('FAILED');
      expect(result.error).toMatch(/^AgentFlowRunFailed: not reviewed: budget/);
      expect(rt.offline?.stats).toMatchObject({ bedrock: 0, openai: 0 });
      const record = await rt.runs.get('e2e-nobudget');
      expect(record).toMatchObject({ status: 'FAILED', costUsd: 0, reason: expect.stringMatching(/^not reviewed: budget/) });
      expect(comment).toContain('**❌ FAILED** — not reviewed: budget');
      expect(comment).toMatch(/### Not reviewed\n\n- \*\*code-review\*\*: \d+ files? not reviewed — budget/);
    } finally {
      await rt.stop();
    }
  });

  it('keeps state in --state-dir so a later process sees the runs', async () => {
    const stateDir = tempDir();
    const first = await runtimeWith({ stateDir, persist: true });
    await first.execute('pr-review', 'persisted-1', exampleInput(repo, 'persisted-1'));
    await first.stop();
    const second = await runtimeWith({ stateDir: join(stateDir), persist: true });
    try {
      expect((await second.runs.list()).map((r) => r.runId)).toContain('persisted-1');
    } finally {
      await second.stop();
    }
  });
});
