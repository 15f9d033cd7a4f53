import { join } from 'node:path';
import { Octokit } from '@octokit/rest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsArtifactStore } from '../../../lambdas/adapters/artifacts.js';
import { codeScanningRef, FilePublisher, GitHubPublisher } from '../../../lambdas/adapters/comments.js';
import type { ReportFinding } from '../../../lambdas/core/report.js';
import { commentMarker } from '../../../lambdas/core/report.js';
import { buildInlineReview } from '../../../lambdas/core/review.js';
import { buildSarif } from '../../../lambdas/core/sarif.js';
import { exampleChange, exampleFinding, tempDir } from '../../helpers.js';
import { GitHubStandIn, sarifSchemaErrors } from '../../standins/github.js';

/**
 * The comment publisher calls a real Octokit against the GitHub stand-in on 127.0.0.1, which
 * checks every request against GitHub's OpenAPI description and answers 422 for a review comment
 * on a line that is not in the pull request's diff, as GitHub does.
 */

const PATCH = ['@@ -1,3 +1,5 @@', ' import UIKit', '-let a = 0', '+let a = value!', '+let u = "http://x"', ' let b = 2', ' let c = 3'].join(
  '\n',
);
const change = exampleChange({ repository: 'acme/app', number: 7, headSha: 'h'.repeat(40), baseSha: 'b'.repeat(40) });
const scanned = { ...change, headSha: 'c0ffee'.repeat(6) + 'c0ff' };
const file = { path: 'App/Pay.swift', status: 'modified' as const, additions: 2, deletions: 1, binary: false, patch: PATCH };
const finding = (over: Partial<ReportFinding> = {}) => exampleFinding({ line: 2, ...over });
const inline = { maxComments: 20, minSeverity: 'low' as const };

let github: GitHubStandIn;
let publisher: GitHubPublisher;

beforeEach(async () => {
  github = new GitHubStandIn();
  github.addPullRequest({
    repo: 'acme/app',
    number: 7,
    headSha: change.headSha,
    baseSha: change.baseSha,
    files: [{ filename: file.path, status: 'modified', patch: PATCH }],
  });
  const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  publisher = new GitHubPublisher(new Octokit({ baseUrl: await github.start(), log: quiet }));
});

afterEach(async () => {
  expect(github.violations).toEqual([]);
  await github.stop();
});

describe('Class: GitHubPublisher', () => {
  it('creates the summary comment once and updates it on the next run (found by its marker)', async () => {
    const marker = commentMarker('pr-review');
    await publisher.upsertComment(change, marker, `${marker}\nfirst`);
    await publisher.upsertComment(change, marker, `${marker}\nsecond`);
    expect(github.comments('acme/app', 7).map((c) => (c as { body: string }).body)).toEqual([`${marker}\nsecond`]);
  });

  it('posts one COMMENT review at the head commit with a comment per finding on its line, a range and a suggestion', async () => {
    const review = buildInlineReview(
      [
        finding(),
        finding({
          line: 3,
          endLine: 4,
          severity: 'medium',
          category: 'security',
          message: 'Cleartext URL.',
          replacement: 'let u = "https://x"\nlet b = 2',
        }),
      ],
      [file],
      inline,
      change.headSha,
      'PR review',
    );
    const posted = await publisher.postReview(change, commentMarker('pr-review'), review);
    expect(posted).toEqual({
      url: expect.stringContaining('/pull/7#pullrequestreview-'),
      comments: 2,
      keys: review.comments.map((c) => c.key),
      resolved: 0,
    });
    const [stored] = github.reviews('acme/app', 7) as Array<{ body: string; state: string; commit_id: string }>;
    expect(stored).toMatchObject({ state: 'COMMENTED', commit_id: change.headSha });
    expect(stored?.body.startsWith('<!-- agentflow:pr-review -->\n**AgentFlow · PR review**')).toBe(true);
    const comments = github.reviewCommentsOf('acme/app', 7) as Array<{
      path: string;
      line: number;
      start_line: number | null;
      body: string;
    }>;
    expect(comments.map((c) => [c.path, c.start_line, c.line])).toEqual([
      ['App/Pay.swift', null, 2],
      ['App/Pay.swift', 3, 4],
    ]);
    expect(comments[1]?.body).toContain('```suggestion\nlet u = "https://x"\nlet b = 2\n```');
  });

  it('posts the review without inline comments when GitHub refuses one (422), quoting GitHub, and nothing is lost', async () => {
    // GitHub refuses the first attempt as it does for a line it cannot resolve.
    let refused = false;
    github.respond('pulls/create-review', (req) => {
      if (refused || !(req.body as { comments?: unknown[] }).comments) return undefined;
      refused = true;
      return { status: 422, body: { message: 'Unprocessable Entity', errors: ['Line could not be resolved'] } };
    });
    const review = buildInlineReview([finding()], [file], inline, change.headSha, 'PR review');
    const posted = await publisher.postReview(change, commentMarker('pr-review'), review);
    expect(posted.comments).toBe(0);
    const reviews = github.reviews('acme/app', 7) as Array<{ body: string }>;
    expect(reviews).toHaveLength(1);
    expect(reviews[0]?.body).toMatch(
      /GitHub did not accept the inline comments \(HTTP 422: .*\); the summary comment and the full report list the findings\.$/,
    );
    expect(github.reviewCommentsOf('acme/app', 7)).toEqual([]);
  });

  it('does not post a review again for the same workflow and commit (a retried Publish)', async () => {
    const review = buildInlineReview([finding()], [file], inline, change.headSha, 'PR review');
    const first = await publisher.postReview(change, commentMarker('pr-review'), review);
    const again = await publisher.postReview(change, commentMarker('pr-review'), review);
    expect(again).toEqual({ url: null, comments: 0, keys: first.keys, resolved: 0 });
    expect(github.reviews('acme/app', 7)).toHaveLength(1);
    expect(github.reviewCommentsOf('acme/app', 7)).toHaveLength(1);
  });

  it('second push: a finding already on the pull request (same fingerprint) is never posted again, a new one is', async () => {
    const a = { ...finding(), fingerprint: 'aaaa1111bbbb2222cccc' };
    const b = { ...finding({ line: 3, message: 'Cleartext URL.', category: 'security' }), fingerprint: 'dddd3333eeee4444ffff' };
    await publisher.postReview(change, commentMarker('pr-review'), buildInlineReview([a], [file], inline, change.headSha, 'PR review'));
    const second = await publisher.postReview(
      change,
      commentMarker('pr-review'),
      buildInlineReview([a, b], [file], inline, change.headSha, 'PR review'),
    );
    expect(second).toMatchObject({ comments: 1, keys: [a.fingerprint, b.fingerprint] });
    const bodies = (github.reviewCommentsOf('acme/app', 7) as Array<{ body: string }>).map((c) => c.body);
    expect(bodies.filter((x) => x.includes(`agentflow:finding:${a.fingerprint}`))).toHaveLength(1);
    expect(bodies.filter((x) => x.includes(`agentflow:finding:${b.fingerprint}`))).toHaveLength(1);
  });

  it('a marker someone else writes (a forged comment, text inside a suggestion) hides nothing', async () => {
    const a = { ...finding(), fingerprint: 'aaaa1111bbbb2222cccc' };
    // The pull request's author answers an earlier comment with AgentFlow's marker for finding a.
    await publisher.postReview(
      change,
      commentMarker('pr-review'),
      buildInlineReview(
        [{ ...finding({ line: 3, category: 'style', message: 'x' }), fingerprint: 'eeee5555ffff6666aaaa' }],
        [file],
        inline,
        change.headSha,
        'PR review',
      ),
    );
    const first = (github.reviewCommentsOf('acme/app', 7) as Array<{ id: number }>)[0]?.id as number;
    github.addReviewReply('acme/app', 7, first, 'octocat', `<!-- agentflow:finding:${a.fingerprint} -->\nnothing to see`, 'CONTRIBUTOR');
    const posted = await publisher.postReview(
      change,
      commentMarker('pr-review'),
      buildInlineReview([a], [file], inline, change.headSha, 'PR review'),
    );
    expect(posted.comments).toBe(1);
    // A model's replacement code that holds a resolved marker does not count as AgentFlow's answer.
    const forged = {
      ...finding({ line: 3, message: 'y', category: 'perf' }),
      fingerprint: 'bbbb2222cccc3333dddd',
      replacement: `<!-- agentflow:resolved:${a.fingerprint} -->`,
    };
    await publisher.postReview(
      change,
      commentMarker('pr-review'),
      buildInlineReview([forged], [file], inline, change.headSha, 'PR review'),
    );
    const later = {
      ...buildInlineReview([], [file], inline, change.headSha, 'PR review'),
      resolved: [{ key: a.fingerprint, path: a.file, line: a.line, message: a.message }],
    };
    expect((await publisher.postReview(change, commentMarker('pr-review'), later)).resolved).toBe(1);
  });

  it("fixed code: the resolved finding's thread is resolved and gets one reply saying why", async () => {
    const a = { ...finding(), fingerprint: 'aaaa1111bbbb2222cccc' };
    await publisher.postReview(change, commentMarker('pr-review'), buildInlineReview([a], [file], inline, change.headSha, 'PR review'));
    const later = {
      ...buildInlineReview([], [file], inline, 'e'.repeat(40), 'PR review'),
      resolved: [{ key: a.fingerprint, path: a.file, line: a.line, message: a.message }],
    };
    expect((await publisher.postReview(change, commentMarker('pr-review'), later)).resolved).toBe(1);
    expect((await publisher.postReview(change, commentMarker('pr-review'), later)).resolved).toBe(0);
    const comments = github.reviewCommentsOf('acme/app', 7) as Array<{ id: number; body: string; in_reply_to_id?: number }>;
    const replies = comments.filter((c) => c.in_reply_to_id !== undefined);
    expect(replies).toHaveLength(1);
    expect(replies[0]?.in_reply_to_id).toBe(comments[0]?.id);
    expect(replies[0]?.body).toContain('✅ Resolved at `eeeeeee`');
    // The thread is resolved too (GraphQL resolveReviewThread, validated against GitHub's schema).
    expect(github.isThreadResolved(comments[0]?.id as number)).toBe(true);
  });

  it('reads 👍 / 👎 on its inline comments and dismissals from people with write access only', async () => {
    const a = { ...finding(), fingerprint: 'aaaa1111bbbb2222cccc' };
    const b = { ...finding({ line: 3, message: 'Cleartext URL.', category: 'security' }), fingerprint: 'dddd3333eeee4444ffff' };
    await publisher.postReview(change, commentMarker('pr-review'), buildInlineReview([a, b], [file], inline, change.headSha, 'PR review'));
    const [ca, cb] = github.reviewCommentsOf('acme/app', 7) as Array<{ id: number; user: { login: string } }>;
    github.addReaction('acme/app', ca?.id as number, 'alice', '+1');
    github.addReaction('acme/app', ca?.id as number, 'bob', '+1');
    github.addReaction('acme/app', cb?.id as number, 'alice', '-1');
    // Its own reaction does not count.
    github.addReaction('acme/app', cb?.id as number, cb?.user.login as string, '+1');
    // A drive-by reply cannot dismiss, nor a member who may only read; one with write access can (either spelling).
    github.addCollaborator('acme/app', 'carol', 'write');
    github.addCollaborator('acme/app', 'dave', 'read');
    github.addReviewReply('acme/app', 7, cb?.id as number, 'mallory', '/agentflow dismiss', 'NONE');
    github.addReviewReply('acme/app', 7, cb?.id as number, 'dave', '/agentflow dismiss', 'MEMBER');
    github.addReviewReply('acme/app', 7, cb?.id as number, 'carol', '@agentflow dismiss — intended: staging only', 'MEMBER');
    // A person resolved a's thread.
    github.resolveThreadOf(ca?.id as number);
    expect(await publisher.readFeedback(change)).toEqual([
      { key: a.fingerprint, up: 2, down: 0, resolved: true },
      { key: b.fingerprint, up: 0, down: 1, dismissedBy: 'carol' },
    ]);
  });

  it('throws what is not a 422 (a token without pull request write: 403)', async () => {
    github.respond('pulls/create-review', () => ({ status: 403, body: { message: 'Resource not accessible by integration' } }));
    const review = buildInlineReview([finding()], [file], inline, change.headSha, 'PR review');
    await expect(publisher.postReview(change, commentMarker('pr-review'), review)).rejects.toMatchObject({ status: 403 });
  });

  it('posts nothing when no finding is on a diff line', async () => {
    const review = buildInlineReview([finding({ line: 0 })], [file], inline, change.headSha, 'PR review');
    expect(await publisher.postReview(change, commentMarker('pr-review'), review)).toEqual({
      url: null,
      comments: 0,
      keys: [],
      resolved: 0,
    });
    expect(github.reviews('acme/app', 7)).toEqual([]);
  });

  it('starts the check run in progress and concludes it with annotations 50 per request', async () => {
    await publisher.startCheck(change, 'AgentFlow · pr-review', 'run-1');
    const annotations = Array.from({ length: 120 }, (_, i) => ({
      path: 'App/Pay.swift',
      start_line: 2,
      end_line: 2,
      annotation_level: 'warning' as const,
      title: `medium · quality ${i}`,
      message: 'm',
    }));
    const url = await publisher.completeCheck(
      change,
      'AgentFlow · pr-review',
      'run-1',
      { conclusion: 'failure', title: 'SUCCEEDED: 120 findings', summary: 's', annotations },
      'always',
    );
    expect(url).toContain('/runs/');
    const [run] = github.checkRuns('acme/app', change.headSha) as Array<{ status: string; conclusion: string; name: string }>;
    expect(run).toMatchObject({ name: 'AgentFlow · pr-review', status: 'completed', conclusion: 'failure' });
    expect(github.checkRuns('acme/app', change.headSha)).toHaveLength(1);
    // One create, then updates of at most 50 annotations each (the stand-in refuses 51).
    expect(github.requests.filter((r) => r.operationId === 'checks/update')).toHaveLength(3);
    // A retried Publish leaves the concluded check as it is.
    await publisher.completeCheck(
      change,
      'AgentFlow · pr-review',
      'run-1',
      { conclusion: 'success', title: 't', summary: 's', annotations: [] },
      'always',
    );
    expect(github.checkRuns('acme/app', change.headSha)).toEqual([expect.objectContaining({ conclusion: 'failure' })]);
  });

  it('concludes only its own run’s check when two runs review the same commit', async () => {
    await publisher.startCheck(change, 'AgentFlow · pr-review', 'run-a');
    await publisher.startCheck(change, 'AgentFlow · pr-review', 'run-b');
    await publisher.completeCheck(
      change,
      'AgentFlow · pr-review',
      'run-b',
      { conclusion: 'success', title: 'b', summary: 's', annotations: [] },
      'always',
    );
    await publisher.completeCheck(
      change,
      'AgentFlow · pr-review',
      'run-a',
      { conclusion: 'failure', title: 'a', summary: 's', annotations: [] },
      'always',
    );
    const runs = github.checkRuns('acme/app', change.headSha) as Array<{ external_id: string; status: string; conclusion: string }>;
    expect(runs.map((r) => [r.external_id, r.status, r.conclusion])).toEqual([
      ['run-a', 'completed', 'failure'],
      ['run-b', 'completed', 'success'],
    ]);
  });

  it('does not let a skip hide an earlier conclusion of the commit, and creates nothing it was told never to', async () => {
    await publisher.completeCheck(
      change,
      'AgentFlow · pr-review',
      'run-1',
      { conclusion: 'failure', title: 'f', summary: 's', annotations: [] },
      'always',
    );
    const skipped = { conclusion: 'neutral' as const, title: 'Skipped', summary: 's', annotations: [] };
    expect(await publisher.completeCheck(change, 'AgentFlow · pr-review', 'run-2', skipped, 'if-none')).toBeNull();
    expect(await publisher.completeCheck(change, 'AgentFlow · other', 'run-3', skipped, 'never')).toBeNull();
    expect(github.checkRuns('acme/app', change.headSha)).toHaveLength(1);
  });

  it('creates a completed check run when none was started (the start failed or the run was skipped)', async () => {
    await publisher.completeCheck(
      change,
      'AgentFlow · pr-review',
      'run-1',
      { conclusion: 'neutral', title: 'Skipped', summary: 'draft', annotations: [] },
      'if-none',
    );
    expect(github.checkRuns('acme/app', change.headSha)).toEqual([expect.objectContaining({ status: 'completed', conclusion: 'neutral' })]);
  });

  it('uploads the SARIF gzip-compressed and base64-encoded for the head commit and the pull request ref', async () => {
    // Prepare
    const sarif = buildSarif([finding({ category: 'secrets', agents: ['security'] })], 'pr-review');

    // Act (code scanning takes only a hex commit SHA)
    const url = await publisher.uploadCodeScanning(scanned, 'pr-review', sarif);

    // Assess: the stand-in decoded it (base64 → gunzip → JSON) and validated it against the SARIF 2.1.0 schema.
    const [upload] = github.sarifUploads('acme/app');
    expect(upload).toMatchObject({ commitSha: scanned.headSha, ref: 'refs/pull/7/head' });
    expect(upload?.sarif).toEqual(JSON.parse(JSON.stringify(sarif)));
    expect(sarifSchemaErrors(upload?.sarif)).toEqual([]);
    expect(url).toBe(`https://api.github.com/repos/acme/app/code-scanning/sarifs/${upload?.id}`);
  });

  it('throws what GitHub answers when code scanning refuses the upload', async () => {
    github.respond('code-scanning/upload-sarif', () => ({
      status: 403,
      body: { message: 'Advanced Security must be enabled for this repository to use code scanning.', status: '403' },
    }));
    await expect(publisher.uploadCodeScanning(scanned, 'pr-review', buildSarif([], 'pr-review'))).rejects.toMatchObject({ status: 403 });
  });
});

describe('Function: codeScanningRef', () => {
  it('names the pull request ref, else the head branch, else nothing (a bare commit has no ref)', () => {
    expect(codeScanningRef(exampleChange({ number: 7 }))).toBe('refs/pull/7/head');
    expect(codeScanningRef(exampleChange({ number: 0, headRef: 'feature/pay' }))).toBe('refs/heads/feature/pay');
    expect(codeScanningRef(exampleChange({ number: 0, headRef: 'refs/tags/v1' }))).toBe('refs/tags/v1');
    expect(codeScanningRef(exampleChange({ number: 0, headRef: 'abc1234' }))).toBeUndefined();
  });
});

describe('Class: FilePublisher (code scanning)', () => {
  it('writes <workflow>.results.sarif beside the comment and tells where', async () => {
    // Prepare
    const artifacts = new FsArtifactStore(join(tempDir(), 'artifacts'));
    const told: Array<[string, number]> = [];
    const files = new FilePublisher(artifacts, undefined, undefined, (path, results) => told.push([path, results]));

    // Act
    const path = await files.uploadCodeScanning(change, 'pr-review', buildSarif([finding()], 'pr-review'));

    // Assess
    expect(path).toBe(artifacts.where('comments/acme/app/7/pr-review.results.sarif'));
    expect(told).toEqual([[path, 1]]);
    expect(sarifSchemaErrors(await artifacts.getJson('comments/acme/app/7/pr-review.results.sarif'))).toEqual([]);
  });
});
