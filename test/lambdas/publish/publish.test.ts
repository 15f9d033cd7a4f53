import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsArtifactStore } from '../../../lambdas/adapters/artifacts.js';
import type { RunRecord, RunSummary } from '../../../lambdas/core/contracts.js';
import type { ForgePublisher, RunStore } from '../../../lambdas/core/ports.js';
import type { InlineReview } from '../../../lambdas/core/review.js';
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
        outputs: { githubReview: true, databaseLog: true },
        check: { failOn: 'critical' },
      },
      { artifacts, forges: { github: comments }, runs },
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
