import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Octokit } from '@octokit/rest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitChangeSource } from '../../lambdas/adapters/changes.js';
import { GitHubPublisher } from '../../lambdas/adapters/comments.js';
import { type Change, type RunSummary, RunSummarySchema } from '../../lambdas/core/contracts.js';
import { reviewStateKey } from '../../lambdas/core/incremental.js';
import { markedFinding } from '../../lambdas/core/review.js';
import { freshRepo } from '../../lib/local/example-repo.js';
import type { LocalRuntime } from '../../lib/local/runtime.js';
import { tempDir, testRuntime } from '../helpers.js';
import { GitHubStandIn } from '../standins/github.js';

const REPO = 'acme/shop-apps';
const PR = 42;

/** A Swift file the offline reviewers flag (a force-unwrapped URL, a `try!`). */
const swift = (name: string, extra = '', fixed = false) =>
  [
    'import Foundation',
    '',
    `final class ${name} {`,
    '  func load() -> Data {',
    `    let url = URL(string: "https://api.example.com/${name.toLowerCase()}")!`,
    fixed ? '    let data = (try? Data(contentsOf: url)) ?? Data()' : '    let data = try! Data(contentsOf: url)',
    extra,
    '    return data',
    '  }',
    '}',
    '',
  ].join('\n');

/**
 * Incremental re-review end to end: the local runtime reviews a pull request of a real git
 * repository three times (opened, a push to one file, a fix and a dismissal) and publishes through
 * GitHubPublisher to the GitHub stand-in, which validates every request against GitHub's OpenAPI
 * description and keeps the reviews, comments, replies and reactions.
 */
describe('e2e: incremental re-review on the GitHub stand-in', () => {
  let github: GitHubStandIn;
  let rt: LocalRuntime;
  let dir: string;
  let git: (...args: string[]) => string;
  let base: string;
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  };

  /** Seeds the pull request at `head` in the stand-in (its files as git diffs them) and runs pr-review. */
  async function review(runId: string, head: string, action: string): Promise<RunSummary> {
    const change: Change = {
      forge: 'github',
      repository: REPO,
      number: PR,
      title: 'Stores',
      author: 'octocat',
      url: `https://github.com/${REPO}/pull/${PR}`,
      action,
      baseSha: base,
      headSha: head,
      baseRef: 'main',
      headRef: 'feature',
    };
    const files = await new GitChangeSource(dir).listChangedFiles(change);
    github.addPullRequest({
      repo: REPO,
      number: PR,
      headSha: head,
      baseSha: base,
      files: files.map((f) => ({ filename: f.path, status: f.status, patch: f.patch })),
    });
    const result = await rt.execute('pr-review', runId, { runId, workflow: 'pr-review', change });
    expect(result.status).toBe('SUCCEEDED');
    const report = (await rt.artifacts.getJson(`runs/${runId}/report.json`)) as { summary: unknown };
    return RunSummarySchema.parse(report.summary);
  }

  type Comment = { id: number; body: string; path: string; in_reply_to_id?: number };
  const comments = () => github.reviewCommentsOf(REPO, PR) as Comment[];
  /** The finding keys of AgentFlow's inline comments, one per comment (replies excluded). */
  const keys = () => comments().flatMap((c) => (c.in_reply_to_id === undefined ? [markedFinding(c.body) ?? ''] : []));

  beforeAll(async () => {
    github = new GitHubStandIn();
    const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
    const publisher = new GitHubPublisher(new Octokit({ baseUrl: await github.start(), log: quiet }));
    dir = join(tempDir(), 'repo');
    ({ git } = freshRepo(dir, '2026-01-05T10:00:00Z'));
    git('init', '-q', '-b', 'main');
    write('README.md', '# shop\n');
    git('add', '-A');
    git('commit', '-q', '-m', 'base');
    base = git('rev-parse', 'HEAD');
    git('checkout', '-q', '-b', 'feature');
    for (const n of ['Cart', 'Orders', 'Profile']) write(`App/${n}Store.swift`, swift(`${n}Store`));
    git('add', '-A');
    git('commit', '-q', '-m', 'stores');
    rt = await testRuntime({ path: dir, base, head: git('rev-parse', 'HEAD') }, { forges: { github: publisher } });
  });
  afterAll(async () => {
    await rt.stop();
    expect(github.violations).toEqual([]);
    await github.stop();
  });

  it('second push: only the changed file is reviewed again, findings carry over, no comment is posted twice', async () => {
    const first = await review('rr-1', git('rev-parse', 'HEAD'), 'opened');
    const posted = keys();
    expect(posted.length).toBeGreaterThan(3);
    expect(new Set(posted).size).toBe(posted.length);

    write('App/OrdersStore.swift', swift('OrdersStore', '    print("loaded")'));
    git('commit', '-q', '-am', 'log');
    const second = await review('rr-2', git('rev-parse', 'HEAD'), 'synchronize');
    expect(second.incremental).toMatchObject({ since: expect.any(String), filesUnchanged: 2 });
    expect(second.agents.filter((a) => a.phase !== 'verify').every((a) => a.filesReviewed <= 1)).toBe(true);
    // (The bench measures the ratio on a 20-file pull request; here each call's fixed prompt weighs more.)
    expect(second.inputTokens + second.outputTokens).toBeLessThan(first.inputTokens + first.outputTokens);
    // Every finding of the first review is still open, and none was posted again.
    expect(second.findings).toBeGreaterThanOrEqual(first.findings);
    const now = keys();
    expect(new Set(now).size).toBe(now.length);
    expect(now.slice(0, posted.length)).toEqual(posted);
  });

  it('fixed code: its comment is answered as resolved; dismissed: never raised again; feedback is recorded', async () => {
    // A member dismisses the first comment on CartStore; ProfileStore's try! is fixed.
    const cart = comments().find((c) => c.path === 'App/CartStore.swift' && c.in_reply_to_id === undefined) as Comment;
    github.addReaction(REPO, cart.id, 'alice', '-1');
    github.addCollaborator(REPO, 'carol', 'maintain');
    github.addReviewReply(REPO, PR, cart.id, 'carol', '/agentflow dismiss false positive in a test fixture');
    const dismissed = markedFinding(cart.body) as string;
    const before = keys();
    write('App/ProfileStore.swift', swift('ProfileStore', '', true));
    git('commit', '-q', '-am', 'fix');

    const third = await review('rr-3', git('rev-parse', 'HEAD'), 'synchronize');

    expect(third.incremental?.resolved).toBeGreaterThanOrEqual(1);
    const replies = comments().filter((c) => c.in_reply_to_id !== undefined && c.body.includes('✅ Resolved at'));
    expect(replies.length).toBe(third.incremental?.resolved);
    for (const r of replies) {
      expect(comments().find((c) => c.id === r.in_reply_to_id)?.path).toBe('App/ProfileStore.swift');
      expect(github.isThreadResolved(r.in_reply_to_id as number)).toBe(true);
    }
    const report = (await rt.artifacts.getJson('runs/rr-3/report.json')) as { findings: Array<{ fingerprint?: string }> };
    expect(report.findings.map((f) => f.fingerprint)).not.toContain(dismissed);
    const state = (await rt.artifacts.getJson(reviewStateKey({ forge: 'github', repository: REPO, number: PR }, 'pr-review'))) as {
      dismissed: string[];
    };
    expect(state.dismissed).toContain(dismissed);
    expect(third.incremental?.dismissed).toBe(1);
    // Counted once, when the state holding it was kept: the 👎 and the dismissal.
    const record = await rt.runs.get('rr-3');
    expect(record?.feedback).toEqual([{ agent: expect.any(String), category: expect.any(String), accepted: 0, rejected: 2, dismissed: 1 }]);
    // Nothing was posted twice across the three reviews.
    const after = keys();
    expect(new Set(after).size).toBe(after.length);
    expect(after.slice(0, before.length)).toEqual(before);
  });
});
