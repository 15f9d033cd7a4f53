import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsArtifactStore } from '../../../lambdas/adapters/artifacts.js';
import { everyForge } from '../../../lambdas/adapters/comments.js';
import type { RunRecord, RunSummary } from '../../../lambdas/core/contracts.js';
import type { ChannelNotifier, CommitRequest, ForgePublisher, RunStore } from '../../../lambdas/core/ports.js';
import type { InlineReview } from '../../../lambdas/core/review.js';
import type { SarifLog } from '../../../lambdas/core/sarif.js';
import { publish } from '../../../lambdas/publish/publish.js';
import { exampleChange, tempDir } from '../../helpers.js';

/** Run records in a map (the port's contract; DynamoRunStore is tested against dynalite elsewhere). */
class MemoryRuns implements RunStore {
  readonly records = new Map<string, RunRecord>();
  async put(r: RunRecord) {
    this.records.set(r.runId, r);
  }
  async create(r: RunRecord) {
    if (this.records.has(r.runId)) return false;
    this.records.set(r.runId, r);
    return true;
  }
  async get(id: string) {
    return this.records.get(id);
  }
  async list() {
    return [...this.records.values()];
  }
}

const summary: RunSummary = {
  workflow: 'pr-review',
  status: 'SUCCEEDED',
  excluded: {},
  findings: 1,
  bySeverity: { high: 1 },
  costUsd: 0.01,
  inputTokens: 10,
  outputTokens: 5,
  agents: [],
  offline: true,
  relocated: 0,
  gates: {},
};
const review: InlineReview = {
  commitId: 'h'.repeat(40),
  body: 'AgentFlow: 1 finding',
  comments: [{ path: 'a.swift', line: 2, side: 'RIGHT', body: 'x', key: 'k' }],
  resolved: [],
  summaryOnly: 0,
};

describe('Function: publish (the inline review)', () => {
  it('records the run and keeps the summary comment when the forge refuses the review (the error is in the record)', async () => {
    // Prepare: a token that may comment on issues but not review pull requests (GitHub answers 403).
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const runs = new MemoryRuns();
    const posted: string[] = [];
    const comments: ForgePublisher = {
      upsertComment: async (_c, _m, body) => {
        posted.push(body);
        return 'https://github.com/acme/app/pull/42#issuecomment-1';
      },
      postReview: async () => {
        throw Object.assign(new Error('Resource not accessible by integration'), { name: 'HttpError', status: 403 });
      },
      startCheck: async () => undefined,
      completeCheck: async () => {
        throw Object.assign(new Error('Resource not accessible by integration'), { name: 'HttpError', status: 403 });
      },
      uploadCodeScanning: async () => null,
      readFeedback: async () => [],
      commitFiles: async () => {
        throw new Error('no files in this test');
      },
    };
    const commentRef = await artifacts.putText('runs/r1/comment.md', 'summary');
    const reviewRef = await artifacts.putJson('runs/r1/review.json', review);

    // Act
    const out = await publish(
      {
        kind: 'report',
        runId: 'r1',
        workflow: 'pr-review',
        change: exampleChange(),
        report: { reportRef: 'runs/r1/report.json', commentRef, reviewRef, summary },
        outputs: { review: true, databaseLog: true },
        check: { failOn: 'critical' },
      },
      { artifacts, forges: everyForge(comments), runs },
    );

    // Assess
    expect(out.commentUrl).toBe('https://github.com/acme/app/pull/42#issuecomment-1');
    expect(posted).toEqual(['summary']);
    expect(runs.records.get('r1')).toMatchObject({
      status: 'SUCCEEDED',
      inlineComments: 0,
      reviewError: 'HttpError: Resource not accessible by integration',
      checkError: 'HttpError: Resource not accessible by integration',
    });
  });
});

/** A forge that records what the run writes and concludes check runs at a fixed URL. */
function recordingForge(over: Partial<ForgePublisher> = {}) {
  const uploads: Array<{ workflow: string; sarif: SarifLog }> = [];
  const commits: CommitRequest[] = [];
  const forge: ForgePublisher = {
    upsertComment: async () => 'https://github.com/acme/shop-apps/pull/42#issuecomment-1',
    postReview: async () => ({ url: null, comments: 0, keys: [], resolved: 0 }),
    startCheck: async () => undefined,
    completeCheck: async () => 'https://github.com/acme/shop-apps/runs/7',
    uploadCodeScanning: async (_c, workflow, sarif) => {
      uploads.push({ workflow, sarif });
      return 'https://api.github.com/repos/acme/shop-apps/code-scanning/sarifs/u1';
    },
    readFeedback: async () => [],
    commitFiles: async (_c, request) => {
      commits.push(request);
      return {
        branch: request.branch,
        sha: 'c0ffee0000000000000000000000000000000000',
        url: 'https://github.com/acme/shop-apps/pull/43',
        pullRequest: 43,
      };
    },
    ...over,
  };
  return { forge, uploads, commits };
}

/** Channel posts in memory; `refuse` makes every post throw as the Slack client does. */
function recordingChannels(refuse?: Error) {
  const posts: Array<{ channel: string; text: string }> = [];
  const channels: ChannelNotifier = {
    post: async (channel, text) => {
      if (refuse) throw refuse;
      posts.push({ channel, text });
      return { channel, ts: '1.000001' };
    },
  };
  return { channels, posts };
}

/** A report run's Publish input with two findings in `report.json`: one of the security agent, one not. */
async function reportInput(artifacts: FsArtifactStore, outputs: Record<string, unknown>, change = exampleChange()) {
  const commentRef = await artifacts.putText('runs/r2/comment.md', 'summary');
  const reportRef = await artifacts.putJson('runs/r2/report.json', {
    findings: [
      {
        file: 'App/Api.swift',
        line: 7,
        severity: 'critical',
        category: 'secrets',
        message: 'API key in source.',
        suggestion: '',
        agents: ['security'],
      },
      {
        file: 'App/Pay.swift',
        line: 11,
        severity: 'high',
        category: 'correctness',
        message: 'Force unwrap.',
        suggestion: '',
        agents: ['code-review'],
      },
    ],
  });
  return {
    kind: 'report',
    runId: 'r2',
    workflow: 'pr-review',
    change,
    report: {
      reportRef,
      commentRef,
      summary: { ...summary, findings: 2, bySeverity: { critical: 1, high: 1 }, costUsd: 0.0123 },
    },
    outputs: { review: true, databaseLog: true, ...outputs },
    check: { failOn: 'critical' },
  };
}

describe('Function: publish (code scanning)', () => {
  it("uploads the security agents' findings as SARIF and records where", async () => {
    // Prepare
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const runs = new MemoryRuns();
    const { forge, uploads } = recordingForge();

    // Act
    await publish(await reportInput(artifacts, { codeScanning: { agents: ['security'] } }), { artifacts, forges: everyForge(forge), runs });

    // Assess
    expect(uploads).toHaveLength(1);
    expect(uploads[0]?.workflow).toBe('pr-review');
    expect(uploads[0]?.sarif.runs[0]?.results?.map((r) => r.locations?.[0]?.physicalLocation?.artifactLocation?.uri)).toEqual([
      'App/Api.swift',
    ]);
    expect(runs.records.get('r2')?.codeScanning).toBe('https://api.github.com/repos/acme/shop-apps/code-scanning/sarifs/u1');
  });

  it('uploads nothing without code_scanning', async () => {
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const { forge, uploads } = recordingForge();
    await publish(await reportInput(artifacts, {}), { artifacts, forges: everyForge(forge), runs: new MemoryRuns() });
    expect(uploads).toEqual([]);
  });

  it('records a refused upload on the run record and publishes the rest (not fatal)', async () => {
    // Prepare: code scanning is off on the repository (GitHub answers 403).
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const runs = new MemoryRuns();
    const { forge } = recordingForge({
      uploadCodeScanning: async () => {
        throw Object.assign(new Error('Advanced Security must be enabled for this repository to use code scanning.'), {
          name: 'HttpError',
          status: 403,
        });
      },
    });

    // Act
    const out = await publish(await reportInput(artifacts, { codeScanning: { agents: ['security'] } }), {
      artifacts,
      forges: everyForge(forge),
      runs,
    });

    // Assess
    expect(out.commentUrl).toBe('https://github.com/acme/shop-apps/pull/42#issuecomment-1');
    expect(runs.records.get('r2')).toMatchObject({
      status: 'SUCCEEDED',
      check: 'failure',
      codeScanningError: 'HttpError: Advanced Security must be enabled for this repository to use code scanning.',
    });
  });
});

describe('Function: publish (Slack summary)', () => {
  it('posts the outcome, the counts of the report summary, the cost and links to the pull request and the check run', async () => {
    // Prepare
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const { forge } = recordingForge();
    const { channels, posts } = recordingChannels();
    const change = exampleChange({ url: 'https://github.com/acme/shop-apps/pull/42' });

    // Act
    await publish(await reportInput(artifacts, { slack: '#mobile-reviews' }, change), {
      artifacts,
      forges: everyForge(forge),
      runs: new MemoryRuns(),
      channels,
    });

    // Assess
    expect(posts).toHaveLength(1);
    expect(posts[0]?.channel).toBe('#mobile-reviews');
    const text = posts[0]?.text ?? '';
    expect(text).toContain('*pr-review* SUCCEEDED on acme/shop-apps#42');
    expect(text).toContain('2 findings (1 critical, 1 high), $0.0123');
    expect(text).toContain('Pull request: <https://github.com/acme/shop-apps/pull/42|acme/shop-apps#42>');
    expect(text).toContain('Check run: <https://github.com/acme/shop-apps/runs/7|AgentFlow · pr-review>');
  });

  it('posts slack: true (default) in the configured default channel', async () => {
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const { channels, posts } = recordingChannels();
    await publish(await reportInput(artifacts, { slack: 'default' }), {
      artifacts,
      forges: everyForge(recordingForge().forge),
      runs: new MemoryRuns(),
      channels,
      defaultChannel: '#agentflow',
    });
    expect(posts.map((p) => p.channel)).toEqual(['#agentflow']);
  });

  it('keeps an untrusted pull-request title from mentioning anyone or linking anywhere', async () => {
    // Prepare: a title written to ping the channel and to plant a link.
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const { channels, posts } = recordingChannels();
    const change = exampleChange({ title: '<!channel> @here see <https://evil.example/login|the fix> or https://evil.example' });

    // Act
    await publish(await reportInput(artifacts, { slack: '#mobile-reviews' }, change), {
      artifacts,
      forges: everyForge(recordingForge().forge),
      runs: new MemoryRuns(),
      channels,
    });

    // Assess: no Slack control sequence, no written mention, no URL or domain Slack would link.
    const text = posts[0]?.text ?? '';
    expect(text).not.toContain('<!channel>');
    expect(text).not.toContain('<https://evil');
    expect(text).not.toMatch(/@here/);
    expect(text).not.toMatch(/https:\/\/evil/);
    expect(text).not.toMatch(/evil\.example/);
    expect(text).toContain('&lt;!channel&gt;');
  });

  it('records a refused post on the run record and publishes the rest (not fatal)', async () => {
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const runs = new MemoryRuns();
    const refused = Object.assign(new Error('Slack will not post to #private (not_in_channel): invite the AgentFlow app'), {
      name: 'SlackPostError',
    });
    const out = await publish(await reportInput(artifacts, { slack: '#private' }), {
      artifacts,
      forges: everyForge(recordingForge().forge),
      runs,
      channels: recordingChannels(refused).channels,
    });
    expect(out.commentUrl).not.toBeNull();
    expect(runs.records.get('r2')).toMatchObject({
      status: 'SUCCEEDED',
      slackError: 'SlackPostError: Slack will not post to #private (not_in_channel): invite the AgentFlow app',
    });
  });

  it('records slack: true without a configured default channel, and a deployment without a Slack client', async () => {
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const runs = new MemoryRuns();
    await publish(await reportInput(artifacts, { slack: 'default' }), {
      artifacts,
      forges: everyForge(recordingForge().forge),
      runs,
      channels: recordingChannels().channels,
    });
    expect(runs.records.get('r2')?.slackError).toMatch(/default channel and none is configured/);
    await publish(await reportInput(artifacts, { slack: '#a' }), { artifacts, forges: everyForge(recordingForge().forge), runs });
    expect(runs.records.get('r2')?.slackError).toMatch(/no Slack client/);
  });

  it('posts a failed run in the notify channel and records it', async () => {
    // Prepare
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const runs = new MemoryRuns();
    const { channels, posts } = recordingChannels();

    // Act
    await publish(
      {
        kind: 'failed',
        runId: 'r3',
        workflow: 'pr-review',
        change: exampleChange(),
        error: { Error: 'States.Timeout', Cause: 'the task timed out' },
        notify: 'slack-channel',
        check: { failOn: 'critical' },
      },
      { artifacts, forges: everyForge(recordingForge().forge), runs, channels },
    );

    // Assess
    expect(posts).toHaveLength(1);
    expect(posts[0]?.channel).toBe('slack-channel');
    expect(posts[0]?.text).toMatch(/^❌ \*pr-review\* FAILED on acme\/shop-apps#42/);
    expect(posts[0]?.text).toContain('Check run: <https://github.com/acme/shop-apps/runs/7|AgentFlow · pr-review>');
    expect(runs.records.get('r3')?.status).toBe('FAILED');
    expect(runs.records.get('r3')?.slackError).toBeUndefined();
  });
});

describe('Function: appliedFailOn', () => {
  it("applies the repository's fail_on only when it is stricter than the workflow's", async () => {
    const { appliedFailOn } = await import('../../../lambdas/publish/publish.js');
    expect(appliedFailOn('critical', 'high')).toBe('high');
    expect(appliedFailOn('high', 'critical')).toBe('high');
    expect(appliedFailOn('high', 'none')).toBe('high');
    expect(appliedFailOn('none', 'medium')).toBe('medium');
    expect(appliedFailOn('medium', undefined)).toBe('medium');
  });
});

describe('Function: publish (kind: files, output.create_files)', () => {
  const change = exampleChange({ fork: false });
  const filesInput = (filesRef: string, pushToPullRequest = false) => ({
    kind: 'files',
    runId: 'r1',
    workflow: 'test-generation',
    change,
    results: {
      generation: [
        {
          name: 'test-generation',
          phase: 'generation',
          status: 'succeeded',
          provider: 'openai',
          model: 'gpt-4.1',
          inputTokens: 1,
          outputTokens: 1,
          costUsd: 0,
          findings: 0,
          filesRef,
        },
      ],
    },
    createFiles: { paths: ['**/*Tests/**', '**/src/test/**'], pushToPullRequest },
  });

  it('commits only the files under the test folders and reports the rest (and those the agent refused) with why', async () => {
    // Prepare
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const filesRef = await artifacts.putJson('runs/r1/files/generation/test-generation.json', {
      agent: 'test-generation',
      files: [
        { path: 'AppTests/CartTests.swift', content: 'final class CartTests {}\n' },
        { path: 'App/Cart.swift', content: '// not a test\n' },
      ],
      refused: [{ path: 'AppTests/KeyTests.swift', reason: 'contains a secret (aws-access-key)' }],
    });
    const { forge, commits } = recordingForge();

    // Act
    const out = await publish(filesInput(filesRef), { artifacts, forges: everyForge(forge), runs: new MemoryRuns() });

    // Assess
    expect(commits).toEqual([
      expect.objectContaining({
        branch: 'agentflow/tests/42-bbbbbbb',
        files: [{ path: 'AppTests/CartTests.swift', content: 'final class CartTests {}\n' }],
        pushToPullRequest: false,
      }),
    ]);
    expect(out.files).toMatchObject({
      sha: 'c0ffee0000000000000000000000000000000000',
      branch: 'agentflow/tests/42-bbbbbbb',
      pullRequest: 43,
      committed: ['AppTests/CartTests.swift'],
      refused: [
        { path: 'AppTests/KeyTests.swift', reason: expect.stringMatching(/secret/) },
        { path: 'App/Cart.swift', reason: expect.stringMatching(/not under the test folders/) },
      ],
    });
  });

  it('keeps the pull request head for the CI gate and records why when the forge refuses the commit (a fork push)', async () => {
    // Prepare
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const filesRef = await artifacts.putJson('runs/r1/files/generation/test-generation.json', {
      agent: 'test-generation',
      files: [{ path: 'AppTests/CartTests.swift', content: 'x\n' }],
      refused: [],
    });
    const { forge } = recordingForge({
      commitFiles: async () => {
        throw Object.assign(new Error('the pull request comes from a fork'), { name: 'ForkPushRefusedError' });
      },
    });

    // Act
    const out = await publish(filesInput(filesRef, true), { artifacts, forges: everyForge(forge), runs: new MemoryRuns() });

    // Assess
    expect(out.files).toEqual({
      sha: change.headSha,
      committed: [],
      refused: [],
      error: 'ForkPushRefusedError: the pull request comes from a fork',
    });
  });
});
