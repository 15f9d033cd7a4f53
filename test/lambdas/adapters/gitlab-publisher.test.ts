import { Gitlab } from '@gitbeaker/rest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GitLabPublisher, gitLabSuggestion } from '../../../lambdas/adapters/gitlab-publisher.js';
import type { CheckResult } from '../../../lambdas/core/checks.js';
import type { Change } from '../../../lambdas/core/contracts.js';
import { ForkPushRefusedError } from '../../../lambdas/core/errors.js';
import { findingMarker, type InlineComment, type InlineReview, markedResolved } from '../../../lambdas/core/review.js';
import { GitLabStandIn } from '../../standins/gitlab.js';

/*
 * The publisher calls a real gitbeaker client against the stateful GitLab stand-in on 127.0.0.1,
 * which checks every request against GitLab's documented shapes (each test ends with no violation)
 * and answers positions it cannot place with GitLab's 400.
 */

const PROJECT = 'acme/mobile/shop';
const TOKEN = 'glpat-test-token';
const BASE = 'b'.repeat(40);
const START = 'c'.repeat(40);
const HEAD = 'd'.repeat(40);
const MARKER = '<!-- agentflow:pr-review -->';
const CHECK = 'AgentFlow · pr-review';

const change: Change = {
  forge: 'gitlab',
  repository: PROJECT,
  number: 7,
  title: 'Checkout',
  author: 'dev',
  url: '',
  action: 'opened',
  baseSha: BASE,
  headSha: HEAD,
  startSha: START,
  baseRef: 'main',
  headRef: 'feature/checkout',
  fork: false,
};

/** New lines: 1 context (old 1), 2 and 3 added, 4 context (old 3), 5 context (old 4). */
const PATCH = '@@ -1,4 +1,5 @@\n one\n-two\n+TWO\n+three\n four\n five\n';

/** An inline comment with the core's marker and, for `suggest`, a GitHub-style suggestion block. */
const comment = (key: string, line: number, more: Partial<InlineComment> = {}, suggest = false): InlineComment => ({
  path: 'src/app.ts',
  line,
  side: 'RIGHT',
  body: [findingMarker(key), `**high · bug** — finding ${key}`, ...(suggest ? ['', '```suggestion', 'TWO', 'THREE', '```'] : [])].join(
    '\n',
  ),
  key,
  ...more,
});

const review = (comments: InlineComment[], resolved: InlineReview['resolved'] = []): InlineReview => ({
  commitId: HEAD,
  body: '**AgentFlow · pr-review**: findings.',
  comments,
  resolved,
  summaryOnly: 0,
});

const result = (conclusion: CheckResult['conclusion']): CheckResult => ({
  conclusion,
  title: `Review ${conclusion}`,
  summary: 'x'.repeat(400),
  annotations: [],
});

let gitlab: GitLabStandIn;
let publisher: GitLabPublisher;

beforeEach(async () => {
  gitlab = new GitLabStandIn(TOKEN);
  gitlab.addMergeRequest(
    PROJECT,
    7,
    [
      {
        old_path: 'src/app.ts',
        new_path: 'src/app.ts',
        a_mode: '100644',
        b_mode: '100644',
        new_file: false,
        renamed_file: false,
        deleted_file: false,
        diff: PATCH,
      },
    ],
    { baseSha: BASE, startSha: START, headSha: HEAD, sourceBranch: 'feature/checkout', targetBranch: 'main', title: 'Checkout' },
  );
  publisher = new GitLabPublisher(new Gitlab({ host: await gitlab.start(), token: TOKEN }));
});

afterEach(async () => {
  expect(gitlab.violations).toEqual([]);
  await gitlab.stop();
});

const discussions = () => gitlab.discussionsOf(PROJECT, 7).filter((d) => !d.individual_note);
const firstNoteId = (index: number) => discussions()[index]?.notes[0]?.id ?? -1;

describe('Class: GitLabPublisher', () => {
  describe('Method: upsertComment', () => {
    it('creates the summary note, then edits it: one note after two runs', async () => {
      // Act
      const first = await publisher.upsertComment(change, MARKER, `${MARKER}\nfirst`);
      const second = await publisher.upsertComment(change, MARKER, `${MARKER}\nsecond`);

      // Assess
      const notes = gitlab.notesOf(PROJECT, 7);
      expect(notes.map((n) => n.body)).toEqual([`${MARKER}\nsecond`]);
      expect(first).toBe(`https://gitlab.example/${PROJECT}/-/merge_requests/7#note_${notes[0]?.id}`);
      expect(second).toBe(first);
    });

    it('does not take over a note another user forged with the marker', async () => {
      // Prepare
      const forged = gitlab.addNote(PROJECT, 7, 'mallory', `${MARKER}\nforged`);

      // Act
      await publisher.upsertComment(change, MARKER, `${MARKER}\nours`);

      // Assess
      const notes = gitlab.notesOf(PROJECT, 7);
      expect(notes).toHaveLength(2);
      expect(forged.body).toBe(`${MARKER}\nforged`);
      expect(notes[1]).toMatchObject({ body: `${MARKER}\nours`, author: { username: 'agentflow-bot' } });
    });
  });

  describe('Method: postReview', () => {
    it('positions inline discussions with the base, start and head SHAs and a GitLab suggestion block', async () => {
      // Prepare
      const multi = comment('aaaa1111', 3, { startLine: 2 }, true);
      const context = comment('bbbb2222', 4);

      // Act
      const posted = await publisher.postReview(change, MARKER, review([multi, context]));

      // Assess
      expect(posted).toMatchObject({ comments: 2, keys: ['aaaa1111', 'bbbb2222'], resolved: 0 });
      expect(posted.url).toBe(`https://gitlab.example/${PROJECT}/-/merge_requests/7#note_${firstNoteId(0)}`);
      const [a, b] = discussions().map((d) => d.notes[0]);
      expect(a?.position).toMatchObject({
        base_sha: BASE,
        start_sha: START,
        head_sha: HEAD,
        new_path: 'src/app.ts',
        new_line: 3,
        old_line: null,
      });
      expect(a?.position?.line_range).toMatchObject({ start: { type: 'new', new_line: 2 }, end: { type: 'new', new_line: 3 } });
      expect(a?.body).toContain('```suggestion:-1+0\nTWO\nTHREE\n```');
      expect(a?.body).not.toContain('```suggestion\n');
      expect(b?.position).toMatchObject({ new_line: 4, old_line: 3 });
    });

    it('posts nothing new when the same review is posted again (dedup by fingerprint)', async () => {
      // Prepare
      const comments = [comment('aaaa1111', 2), comment('bbbb2222', 4)];
      await publisher.postReview(change, MARKER, review(comments));
      // A marker someone else writes hides nothing.
      gitlab.addNote(PROJECT, 7, 'mallory', findingMarker('cccc3333'));

      // Act
      const again = await publisher.postReview(change, MARKER, review([...comments, comment('cccc3333', 5)]));

      // Assess
      expect(again).toEqual({
        url: `https://gitlab.example/${PROJECT}/-/merge_requests/7#note_${firstNoteId(2)}`,
        comments: 1,
        keys: ['aaaa1111', 'bbbb2222', 'cccc3333'],
        resolved: 0,
      });
      expect(await publisher.postReview(change, MARKER, review(comments))).toEqual({
        url: null,
        comments: 0,
        keys: ['aaaa1111', 'bbbb2222'],
        resolved: 0,
      });
      expect(discussions()).toHaveLength(3);
    });

    it('answers a resolved finding once and resolves its discussion, not twice', async () => {
      // Prepare
      await publisher.postReview(change, MARKER, review([comment('aaaa1111', 2)]));
      const gone = [{ key: 'aaaa1111', path: 'src/app.ts', line: 2, message: 'finding' }];

      // Act
      const first = await publisher.postReview(change, MARKER, review([], gone));
      const second = await publisher.postReview(change, MARKER, review([], gone));

      // Assess
      expect(first).toEqual({ url: null, comments: 0, keys: [], resolved: 1 });
      expect(second.resolved).toBe(0);
      const notes = discussions()[0]?.notes ?? [];
      expect(notes.map((n) => markedResolved(n.body))).toEqual([undefined, 'aaaa1111']);
      expect(notes[1]?.body).toContain(`✅ Resolved at \`${HEAD.slice(0, 7)}\``);
      expect(notes[0]).toMatchObject({ resolved: true, resolved_by: { username: 'agentflow-bot' } });
    });

    it('skips a position GitLab refuses and posts the rest', async () => {
      // Act
      const posted = await publisher.postReview(change, MARKER, review([comment('aaaa1111', 40), comment('bbbb2222', 2)]));

      // Assess
      expect(posted).toMatchObject({ comments: 1, keys: ['bbbb2222'] });
      expect(discussions()).toHaveLength(1);
    });
  });

  describe('Method: readFeedback', () => {
    it('counts thumbs of others, a discussion a person resolved and a dismissal by a Developer', async () => {
      // Prepare
      await publisher.postReview(change, MARKER, review([comment('aaaa1111', 2), comment('bbbb2222', 4)]));
      const [first, second] = [firstNoteId(0), firstNoteId(1)];
      gitlab.addAward(PROJECT, 7, first, 'alice', 'thumbsup');
      gitlab.addAward(PROJECT, 7, first, 'agentflow-bot', 'thumbsup');
      gitlab.addAward(PROJECT, 7, first, 'bob', 'thumbsdown');
      gitlab.addMember(PROJECT, 'dev', 30);
      gitlab.addReply(PROJECT, 7, first, 'dev', '/agentflow dismiss not a bug here');
      gitlab.resolve(PROJECT, 7, second, 'alice');

      // Act
      const feedback = await publisher.readFeedback(change);

      // Assess
      expect(feedback).toEqual([
        { key: 'aaaa1111', up: 1, down: 1, dismissedBy: 'dev' },
        { key: 'bbbb2222', up: 0, down: 0, resolved: true },
      ]);
    });

    it('ignores a dismissal by a Guest (access level 10) and AgentFlow’s own resolution', async () => {
      // Prepare
      await publisher.postReview(change, MARKER, review([comment('aaaa1111', 2)]));
      gitlab.addMember(PROJECT, 'guest', 10);
      gitlab.addReply(PROJECT, 7, firstNoteId(0), 'guest', '@agentflow dismiss');
      await publisher.postReview(change, MARKER, review([], [{ key: 'aaaa1111', path: 'src/app.ts', line: 2, message: 'x' }]));

      // Act
      const feedback = await publisher.readFeedback(change);

      // Assess
      expect(feedback).toEqual([{ key: 'aaaa1111', up: 0, down: 0 }]);
    });
  });

  describe('Method: completeCheck', () => {
    it('moves the commit status from pending to failed for a failing review, on the source branch', async () => {
      // Prepare
      await publisher.startCheck(change, CHECK, 'run-1');
      expect(gitlab.statusesOf(PROJECT)).toMatchObject([{ sha: HEAD, name: CHECK, status: 'pending', ref: 'feature/checkout' }]);

      // Act
      const url = await publisher.completeCheck(change, CHECK, 'run-1', result('failure'), 'always');

      // Assess
      const statuses = gitlab.statusesOf(PROJECT);
      expect(statuses).toHaveLength(1);
      expect(statuses[0]).toMatchObject({ status: 'failed', target_url: url });
      expect(url).toBe(`https://gitlab.example/${PROJECT}/-/merge_requests/7#agentflow-run=run-1`);
      expect(statuses[0]?.description).toHaveLength(255);
      expect(statuses[0]?.description).toMatch(/^Review failure: x+$/);
    });

    it('leaves the one pending status when a start is retried', async () => {
      // Act
      await publisher.startCheck(change, CHECK, 'run-1');
      await publisher.startCheck(change, CHECK, 'run-1');

      // Assess
      expect(gitlab.statusesOf(PROJECT).map((s) => s.status)).toEqual(['pending']);
    });

    it("puts a fork's status on the merge request's ref in the target project", async () => {
      await publisher.startCheck({ ...change, fork: true }, CHECK, 'run-1');
      expect(gitlab.statusesOf(PROJECT)).toMatchObject([{ status: 'pending', ref: 'refs/merge-requests/7/head' }]);
    });

    it('does not report a neutral result as success', async () => {
      // Prepare
      await publisher.startCheck(change, CHECK, 'run-1');

      // Act
      await publisher.completeCheck(change, CHECK, 'run-1', result('neutral'), 'always');

      // Assess
      expect(gitlab.statusesOf(PROJECT).map((s) => s.status)).toEqual(['skipped']);
    });

    it('leaves a status of this run that already concluded', async () => {
      // Prepare
      await publisher.startCheck(change, CHECK, 'run-1');
      const url = await publisher.completeCheck(change, CHECK, 'run-1', result('failure'), 'always');

      // Act
      const again = await publisher.completeCheck(change, CHECK, 'run-1', result('success'), 'always');

      // Assess
      expect(again).toBe(url);
      expect(gitlab.statusesOf(PROJECT).map((s) => s.status)).toEqual(['failed']);
    });

    it("does not hide an earlier status with 'if-none', and writes nothing with 'never'", async () => {
      // Prepare
      await publisher.startCheck(change, CHECK, 'run-0');
      await publisher.completeCheck(change, CHECK, 'run-0', result('failure'), 'always');

      // Act
      const ifNone = await publisher.completeCheck(change, CHECK, 'run-1', result('neutral'), 'if-none');
      const never = await publisher.completeCheck(change, CHECK, 'run-1', result('neutral'), 'never');
      const always = await publisher.completeCheck(change, CHECK, 'run-2', result('success'), 'always');

      // Assess
      expect([ifNone, never]).toEqual([null, null]);
      expect(always).toMatch(/#agentflow-run=run-2$/);
      expect(gitlab.statusesOf(PROJECT).map((s) => s.status)).toEqual(['failed', 'success']);
    });

    it("creates a status with 'if-none' when the commit has none of that name", async () => {
      // Act
      const url = await publisher.completeCheck(change, CHECK, 'run-1', result('neutral'), 'if-none');

      // Assess
      expect(url).toMatch(/#agentflow-run=run-1$/);
      expect(gitlab.statusesOf(PROJECT).map((s) => s.status)).toEqual(['skipped']);
    });
  });

  describe('Method: uploadCodeScanning', () => {
    it('returns null: GitLab takes SARIF only as a CI job artifact', async () => {
      // Act
      const where = await publisher.uploadCodeScanning(change, 'pr-review', { version: '2.1.0', runs: [] });

      // Assess
      expect(where).toBeNull();
      expect(gitlab.requests).toEqual([]);
    });
  });

  describe('Method: commitFiles', () => {
    const request = {
      branch: 'agentflow/tests/7-ddddddd',
      message: 'Tests for !7',
      files: [
        { path: 'src/app.ts', content: 'updated\n' },
        { path: 'test/app.test.ts', content: 'new\n' },
      ],
    };

    it('creates the branch and a draft merge request into the source branch', async () => {
      // Prepare
      gitlab.putFile(PROJECT, HEAD, 'src/app.ts', 'one\nTWO\n');

      // Act
      const done = await publisher.commitFiles(change, request);

      // Assess
      expect(gitlab.branchOf(PROJECT, request.branch)).toBe(done.sha);
      expect(Object.fromEntries(gitlab.filesAt(PROJECT, done.sha))).toEqual({ 'src/app.ts': 'updated\n', 'test/app.test.ts': 'new\n' });
      const mr = gitlab.mergeRequestsOf(PROJECT).get(8);
      expect(mr).toMatchObject({ source_branch: request.branch, target_branch: 'feature/checkout', draft: true });
      expect(mr?.title).toBe('Draft: Tests for !7: Checkout');
      expect(done).toEqual({ branch: request.branch, sha: done.sha, url: mr?.web_url, pullRequest: 8 });
    });

    it('reuses the open merge request from the branch and moves the branch', async () => {
      // Prepare
      const first = await publisher.commitFiles(change, request);

      // Act
      const second = await publisher.commitFiles(change, { ...request, files: [{ path: 'test/app.test.ts', content: 'v2\n' }] });

      // Assess
      expect(second.pullRequest).toBe(first.pullRequest);
      expect(second.sha).not.toBe(first.sha);
      expect(gitlab.branchOf(PROJECT, request.branch)).toBe(second.sha);
      expect(gitlab.mergeRequestsOf(PROJECT).size).toBe(2);
    });

    it('refuses to push to a fork’s source branch, or one not known not to be a fork', async () => {
      // Act & Assess
      await expect(publisher.commitFiles({ ...change, fork: true }, { ...request, pushToPullRequest: true })).rejects.toThrow(
        ForkPushRefusedError,
      );
      const { fork: _fork, ...unknown } = change;
      await expect(publisher.commitFiles(unknown, { ...request, pushToPullRequest: true })).rejects.toThrow(ForkPushRefusedError);
      expect(gitlab.requests).toEqual([]);
    });

    it('refuses to push when the source branch moved past the head', async () => {
      // Prepare
      const moved = 'e'.repeat(40);
      gitlab.setBranch(PROJECT, 'feature/checkout', moved);

      // Act & Assess
      await expect(publisher.commitFiles(change, { ...request, pushToPullRequest: true })).rejects.toThrow(/moved to eeeeeee/);
      expect(gitlab.branchOf(PROJECT, 'feature/checkout')).toBe(moved);
    });

    it('pushes onto the source branch when its tip is still the head', async () => {
      // Act
      const done = await publisher.commitFiles(change, { ...request, pushToPullRequest: true });

      // Assess
      expect(gitlab.branchOf(PROJECT, 'feature/checkout')).toBe(done.sha);
      expect(done).toEqual({ branch: 'feature/checkout', sha: done.sha, url: `https://gitlab.example/${PROJECT}/-/merge_requests/7` });
    });
  });
});

describe('Function: gitLabSuggestion', () => {
  it('anchors the suggestion on the last line and counts the lines above it', () => {
    expect(gitLabSuggestion('x\n````suggestion\na\n````', { line: 9, startLine: 6 })).toBe('x\n````suggestion:-3+0\na\n````');
    expect(gitLabSuggestion('```suggestion\na\n```', { line: 9 })).toBe('```suggestion:-0+0\na\n```');
  });
});
