import { Octokit } from '@octokit/rest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { commentableLines, GitHubStandIn } from './github.js';

const HEAD = 'a'.repeat(40);
const BASE = 'b'.repeat(40);
const OWNER = 'acme';
const REPO = 'shop-apps';
const REPOSITORY = `${OWNER}/${REPO}`;
/** New side: lines 10 (context), 11–12 (added), 13 (context); old side: 10 (context), 11 (removed), 12 (context). */
const PATCH = '@@ -10,3 +10,4 @@ class App {\n let a = 1\n-let b = 2\n+let b = 3\n+let c = 4\n let d = 5';

let github: GitHubStandIn;
let octokit: Octokit;

beforeAll(async () => {
  // Every answer of this file is also checked against the operation's response schema.
  github = new GitHubStandIn({ checkResponses: true });
  // Octokit logs each 4xx on the console; the tests assert them instead.
  const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  octokit = new Octokit({ baseUrl: await github.start(), auth: 'test-token', log: quiet });
});

afterAll(async () => {
  await github.stop();
});

let pr = 0;
/** A fresh pull request per test, so state does not leak between tests. */
function seedPullRequest(): number {
  pr += 1;
  github.addPullRequest({
    repo: REPOSITORY,
    number: pr,
    headSha: HEAD,
    baseSha: BASE,
    files: [
      { filename: 'Sources/App.swift', status: 'modified', patch: PATCH },
      { filename: 'Resources/logo.png', status: 'added' },
    ],
  });
  return pr;
}

beforeEach(() => {
  github.violations.length = 0;
  github.responseViolations.length = 0;
  github.requests.length = 0;
});

/**
 * Octokit's `request` without its route types: these tests send what the types would refuse (a wrong
 * enum value, a missing field), as a caller with a cast or an untyped value would.
 */
const untyped = (route: string, params: Record<string, unknown> = {}) =>
  (octokit.request as unknown as (r: string, p: Record<string, unknown>) => Promise<unknown>)(route, params);

/** The status of a rejected Octokit call, and its GitHub error body. */
/** A COMMENT review with `comments` on pull request `n`. */
const commentReview = (n: number, comments: Array<{ path: string; line: number; side?: 'LEFT' | 'RIGHT'; body: string }>) =>
  octokit.rest.pulls.createReview({ owner: OWNER, repo: REPO, pull_number: n, event: 'COMMENT', body: 'x', comments });

async function failure(call: Promise<unknown>): Promise<{ status: number; data: unknown }> {
  try {
    await call;
  } catch (e) {
    const err = e as { status: number; response?: { data: unknown } };
    return { status: err.status, data: err.response?.data };
  }
  throw new Error('the call succeeded');
}

describe('Function: commentableLines', () => {
  it('gives added and context lines on the RIGHT, removed and context lines on the LEFT', () => {
    // Act
    const lines = commentableLines(PATCH);

    // Assess
    expect([...lines.RIGHT.keys()]).toEqual([10, 11, 12, 13]);
    expect([...lines.LEFT.keys()]).toEqual([10, 11, 12]);
  });
});

describe('Class: GitHubStandIn', () => {
  describe('valid calls', () => {
    it('creates, lists and updates issue comments', async () => {
      // Prepare
      const n = seedPullRequest();

      // Act
      const created = await octokit.rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: n, body: 'first' });
      await octokit.rest.issues.updateComment({ owner: OWNER, repo: REPO, comment_id: created.data.id, body: 'second' });
      const listed = await octokit.paginate(octokit.rest.issues.listComments, { owner: OWNER, repo: REPO, issue_number: n, per_page: 100 });

      // Assess
      expect(created.status).toBe(201);
      expect(created.data.html_url).toBe(`https://github.com/${REPOSITORY}/pull/${n}#issuecomment-${created.data.id}`);
      expect(listed.map((c) => c.body)).toEqual(['second']);
      expect(github.comments(REPOSITORY, n)).toHaveLength(1);
      expect(github.violations).toEqual([]);
      expect(github.responseViolations).toEqual([]);
    });

    it('pages a list with a Link header that Octokit follows', async () => {
      // Prepare
      const n = seedPullRequest();
      for (let i = 0; i < 5; i++) await octokit.rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: n, body: `c${i}` });

      // Act
      const listed = await octokit.paginate(octokit.rest.issues.listComments, { owner: OWNER, repo: REPO, issue_number: n, per_page: 2 });

      // Assess
      expect(listed.map((c) => c.body)).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
      expect(github.requests.filter((r) => r.operationId === 'issues/list-comments').map((r) => r.query.page)).toEqual([undefined, 2, 3]);
      expect(github.violations).toEqual([]);
    });

    it('creates a review with inline comments that the review comment list then shows, and threads a reply', async () => {
      // Prepare
      const n = seedPullRequest();

      // Act
      const review = await octokit.rest.pulls.createReview({
        owner: OWNER,
        repo: REPO,
        pull_number: n,
        commit_id: HEAD,
        event: 'COMMENT',
        body: 'AgentFlow review',
        comments: [
          { path: 'Sources/App.swift', line: 12, side: 'RIGHT', start_line: 11, start_side: 'RIGHT', body: 'range' },
          { path: 'Sources/App.swift', line: 11, side: 'LEFT', body: 'removed line' },
        ],
      });
      const inline = await octokit.rest.pulls.listReviewComments({ owner: OWNER, repo: REPO, pull_number: n });
      const first = inline.data[0];
      if (!first) throw new Error('no review comment');
      const reply = await octokit.rest.pulls.createReplyForReviewComment({
        owner: OWNER,
        repo: REPO,
        pull_number: n,
        comment_id: first.id,
        body: 'fixed',
      });
      const reviews = await octokit.rest.pulls.listReviews({ owner: OWNER, repo: REPO, pull_number: n });

      // Assess
      expect(review.data).toMatchObject({ state: 'COMMENTED', commit_id: HEAD, body: 'AgentFlow review' });
      expect(inline.data.map((c) => [c.path, c.start_line, c.line, c.side, c.body, c.pull_request_review_id])).toEqual([
        ['Sources/App.swift', 11, 12, 'RIGHT', 'range', review.data.id],
        ['Sources/App.swift', null, 11, 'LEFT', 'removed line', review.data.id],
      ]);
      expect(reply.data).toMatchObject({ in_reply_to_id: first.id, path: 'Sources/App.swift', body: 'fixed' });
      expect(reviews.data.map((r) => r.id)).toEqual([review.data.id]);
      expect(github.reviewCommentsOf(REPOSITORY, n)).toHaveLength(3);
      expect(github.violations).toEqual([]);
      expect(github.responseViolations).toEqual([]);
    });

    it('lists the reactions seeded on a review comment', async () => {
      // Prepare
      const n = seedPullRequest();
      await octokit.rest.pulls.createReview({
        owner: OWNER,
        repo: REPO,
        pull_number: n,
        event: 'COMMENT',
        comments: [{ path: 'Sources/App.swift', line: 13, body: 'x' }],
      });
      const id = github.reviewCommentsOf(REPOSITORY, n)[0]?.id as number;
      github.addReaction(REPOSITORY, id, 'alice', '-1');

      // Act
      const reactions = await octokit.rest.reactions.listForPullRequestReviewComment({ owner: OWNER, repo: REPO, comment_id: id });

      // Assess
      expect(reactions.data.map((r) => [r.user?.login, r.content])).toEqual([['alice', '-1']]);
      expect(github.violations).toEqual([]);
      expect(github.responseViolations).toEqual([]);
    });

    it('creates a check run, completes it with annotations, and lists it for the commit', async () => {
      // Act
      const created = await octokit.rest.checks.create({
        owner: OWNER,
        repo: REPO,
        name: 'AgentFlow · pr-review',
        head_sha: HEAD,
        status: 'in_progress',
      });
      const updated = await octokit.rest.checks.update({
        owner: OWNER,
        repo: REPO,
        check_run_id: created.data.id,
        conclusion: 'failure',
        output: {
          title: '1 critical finding',
          summary: 'See the review.',
          annotations: [{ path: 'Sources/App.swift', start_line: 11, end_line: 11, annotation_level: 'failure', message: 'Crash' }],
        },
      });
      const listed = await octokit.rest.checks.listForRef({ owner: OWNER, repo: REPO, ref: HEAD });

      // Assess
      expect(created.data.status).toBe('in_progress');
      expect(updated.data).toMatchObject({
        status: 'completed',
        conclusion: 'failure',
        output: { title: '1 critical finding', annotations_count: 1 },
      });
      expect(listed.data.total_count).toBeGreaterThanOrEqual(1);
      expect(listed.data.check_runs.find((r) => r.id === created.data.id)?.conclusion).toBe('failure');
      expect(github.checkRuns(REPOSITORY, HEAD).some((r) => r.id === created.data.id)).toBe(true);
      expect(github.violations).toEqual([]);
      expect(github.responseViolations).toEqual([]);
    });

    it('answers the reads AgentFlow makes: the pull request, its files, a file at a ref (JSON and raw), a commit and a compare', async () => {
      // Prepare
      const n = seedPullRequest();
      github.addFile(REPOSITORY, HEAD, 'Sources/App.swift', 'let b = 3\n');
      github.addRef(REPOSITORY, 'main', BASE);
      github.addComparison({
        repo: REPOSITORY,
        base: BASE,
        head: HEAD,
        mergeBaseSha: BASE,
        files: [{ filename: 'a.ts', status: 'added', patch: '@@ -0,0 +1 @@\n+x' }],
      });

      // Act
      const pull = await octokit.rest.pulls.get({ owner: OWNER, repo: REPO, pull_number: n });
      const files = await octokit.paginate(octokit.rest.pulls.listFiles, { owner: OWNER, repo: REPO, pull_number: n, per_page: 100 });
      const json = await octokit.rest.repos.getContent({ owner: OWNER, repo: REPO, path: 'Sources/App.swift', ref: HEAD });
      const raw = await octokit.rest.repos.getContent({
        owner: OWNER,
        repo: REPO,
        path: 'Sources/App.swift',
        ref: HEAD,
        mediaType: { format: 'raw' },
      });
      const head = await octokit.rest.repos.getCommit({ owner: OWNER, repo: REPO, ref: 'main' });
      const compare = await octokit.rest.repos.compareCommitsWithBasehead({ owner: OWNER, repo: REPO, basehead: `${BASE}...${HEAD}` });

      // Assess
      expect(pull.data).toMatchObject({ number: n, head: { sha: HEAD }, base: { sha: BASE, ref: 'main' } });
      expect(files.map((f) => [f.filename, f.status, f.patch])).toEqual([
        ['Sources/App.swift', 'modified', PATCH],
        ['Resources/logo.png', 'added', undefined],
      ]);
      expect(Buffer.from((json.data as { content: string }).content, 'base64').toString()).toBe('let b = 3\n');
      expect(raw.data).toBe('let b = 3\n');
      expect(head.data.sha).toBe(BASE);
      expect(compare.data.files?.map((f) => f.filename)).toEqual(['a.ts']);
      expect(github.violations).toEqual([]);
      expect(github.responseViolations).toEqual([]);
    });
  });

  describe('violations', () => {
    it('rejects a review whose event is not one of the enum, naming the operation and the field', async () => {
      // Prepare
      const n = seedPullRequest();

      // Act
      const r = await failure(
        untyped('POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews', {
          owner: OWNER,
          repo: REPO,
          pull_number: n,
          event: 'COMMENTED',
          body: 'x',
        }),
      );

      // Assess
      expect(r.status).toBe(422);
      expect(github.violations).toEqual([
        `POST /repos/${REPOSITORY}/pulls/${n}/reviews: pulls/create-review body /event must be equal to one of the allowed values (APPROVE, REQUEST_CHANGES, COMMENT)`,
      ]);
      expect(github.reviews(REPOSITORY, n)).toEqual([]);
    });

    it('rejects a check run conclusion GitHub does not have', async () => {
      // Act
      const r = await failure(
        untyped('POST /repos/{owner}/{repo}/check-runs', { owner: OWNER, repo: REPO, name: 'x', head_sha: HEAD, conclusion: 'green' }),
      );

      // Assess
      expect(r.status).toBe(422);
      expect(github.violations).toHaveLength(1);
      expect(github.violations[0]).toMatch(
        /^POST \/repos\/acme\/shop-apps\/check-runs: checks\/create body \/conclusion must be equal to one of the allowed values/,
      );
    });

    it('rejects a body field the operation does not have', async () => {
      // Act
      await failure(
        untyped('POST /repos/{owner}/{repo}/issues/{issue_number}/comments', {
          owner: OWNER,
          repo: REPO,
          issue_number: 1,
          body: 'x',
          bodyy: 'y',
        }),
      );

      // Assess
      expect(github.violations).toEqual([
        `POST /repos/${REPOSITORY}/issues/1/comments: issues/create-comment body /bodyy is not a field of this operation`,
      ]);
    });

    it('rejects a request without a required body field', async () => {
      // Act
      await failure(untyped('POST /repos/{owner}/{repo}/check-runs', { owner: OWNER, repo: REPO, name: 'x' }));

      // Assess
      expect(github.violations).toEqual([
        `POST /repos/${REPOSITORY}/check-runs: checks/create body / must have required property 'head_sha'`,
      ]);
    });

    it('rejects a path parameter of the wrong type and a query parameter the operation does not have', async () => {
      // Act
      await failure(untyped('GET /repos/acme/shop-apps/pulls/seven/files?perpage=100'));

      // Assess
      expect(github.violations).toEqual([
        'GET /repos/acme/shop-apps/pulls/seven/files: pulls/list-files path parameter pull_number="seven": / must be integer',
        'GET /repos/acme/shop-apps/pulls/seven/files: pulls/list-files has no query parameter perpage',
      ]);
    });

    it('rejects a missing required query parameter', async () => {
      // Act: `GET /search/issues` requires `q`.
      await failure(untyped('GET /search/issues'));

      // Assess
      expect(github.violations).toEqual(['GET /search/issues: search/issues-and-pull-requests misses the required query parameter q']);
    });

    it('rejects a route GitHub does not have and a method a route does not have', async () => {
      // Act
      const unknown = await failure(untyped('GET /repos/{owner}/{repo}/pull/{n}', { owner: OWNER, repo: REPO, n: 1 }));
      await failure(untyped('DELETE /repos/{owner}/{repo}/check-runs', { owner: OWNER, repo: REPO }));

      // Assess
      expect(unknown.status).toBe(404);
      expect(github.violations).toEqual([
        `GET /repos/${REPOSITORY}/pull/1: no such route in GitHub's REST API`,
        `DELETE /repos/${REPOSITORY}/check-runs: the route /repos/{owner}/{repo}/check-runs has no DELETE operation`,
      ]);
    });

    it('answers a valid operation it does not implement with 404, without a violation', async () => {
      // Act
      const r = await failure(octokit.rest.repos.get({ owner: OWNER, repo: REPO }));

      // Assess
      expect(r).toEqual({
        status: 404,
        data: { message: 'Not Found (stand-in: not implemented)', documentation_url: 'https://docs.github.com/rest', status: '404' },
      });
      expect(github.violations).toEqual([]);
    });
  });

  describe('GitHub rules', () => {
    it('answers 422 "Line could not be resolved" for a review comment on a line outside the diff, and keeps no part of the review', async () => {
      // Prepare
      const n = seedPullRequest();

      // Act
      const r = await failure(
        commentReview(n, [
          { path: 'Sources/App.swift', line: 12, body: 'on the diff' },
          { path: 'Sources/App.swift', line: 40, body: 'off the diff' },
        ]),
      );

      // Assess
      expect(r.status).toBe(422);
      expect(r.data).toMatchObject({ message: 'Unprocessable Entity', errors: ['Line could not be resolved'] });
      expect(github.reviews(REPOSITORY, n)).toEqual([]);
      expect(github.reviewCommentsOf(REPOSITORY, n)).toEqual([]);
      expect(github.violations).toEqual([]);
    });

    it('answers 422 for a LEFT comment on a line the old file’s hunk does not have (new line 13 exists)', async () => {
      // Prepare
      const n = seedPullRequest();

      // Act: new line 13 exists, old line 13 is not in the hunk.
      const r = await failure(commentReview(n, [{ path: 'Sources/App.swift', line: 13, side: 'LEFT', body: 'x' }]));

      // Assess
      expect(r.status).toBe(422);
    });

    it('answers 422 for 51 annotations in one check run update', async () => {
      // Prepare
      const created = await octokit.rest.checks.create({ owner: OWNER, repo: REPO, name: 'x', head_sha: HEAD });
      const annotations = Array.from({ length: 51 }, (_, i) => ({
        path: 'a.ts',
        start_line: i + 1,
        end_line: i + 1,
        annotation_level: 'warning' as const,
        message: `m${i}`,
      }));

      // Act
      const r = await failure(
        octokit.rest.checks.update({
          owner: OWNER,
          repo: REPO,
          check_run_id: created.data.id,
          output: { title: 't', summary: 's', annotations },
        }),
      );

      // Assess
      expect(r.status).toBe(422);
      expect(github.checkRuns(REPOSITORY, HEAD).find((run) => run.id === created.data.id)).toMatchObject({
        output: { annotations_count: 0 },
      });
    });

    it('takes 50 annotations in one check run update', async () => {
      // Prepare
      const created = await octokit.rest.checks.create({ owner: OWNER, repo: REPO, name: 'x', head_sha: HEAD });
      const annotations = Array.from({ length: 50 }, (_, i) => ({
        path: 'a.ts',
        start_line: i + 1,
        end_line: i + 1,
        annotation_level: 'warning' as const,
        message: `m${i}`,
      }));

      // Act
      const r = await octokit.rest.checks.update({
        owner: OWNER,
        repo: REPO,
        check_run_id: created.data.id,
        output: { title: 't', summary: 's', annotations },
      });

      // Assess
      expect(r.data.output.annotations_count).toBe(50);
      expect(github.violations).toEqual([]);
    });
  });
});
