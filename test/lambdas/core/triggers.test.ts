import examples from '@octokit/webhooks-examples';
import { describe, expect, it } from 'vitest';
import {
  CHANGE_EVENTS,
  changeFromPullRequest,
  preconditions as check,
  isBotLogin,
  matchWorkflows,
  type PullRequestEvent,
  PullRequestEventSchema,
  pullRequestSubject,
  type WorkflowTrigger,
  WorkflowTriggerSchema,
} from '../../../lambdas/core/triggers.js';
import { CHANGE_ACTIONS } from '../../../lib/workflow/events.js';

/** GitHub's own `pull_request.opened` example payload (octokit/webhooks), parsed as the webhook parses it. */
function openedExample(): PullRequestEvent {
  const pr = (examples as unknown as Array<{ name: string; examples: Array<Record<string, unknown>> }>)
    .find((e) => e.name === 'pull_request')
    ?.examples.find((e) => e.action === 'opened');
  return PullRequestEventSchema.parse(structuredClone(pr));
}

/** The example with `pull_request` fields replaced. */
function event(over: Record<string, unknown>): PullRequestEvent {
  const e = openedExample();
  return { ...e, pull_request: { ...e.pull_request, ...over } };
}

/** The filters over a pull_request event's subject. */
const preconditions = (e: PullRequestEvent, t: WorkflowTrigger) => check(pullRequestSubject(e), t);

const trigger = (over: Partial<WorkflowTrigger> = {}): WorkflowTrigger => ({ id: 'pr-review', events: ['pull_request.opened'], ...over });

describe('Function: preconditions', () => {
  it("reviews GitHub's example pull request (a person's, not a draft) with the defaults", () => {
    // Prepare
    const e = openedExample();

    // Assess
    expect(e.pull_request).toMatchObject({ draft: false, user: { login: 'Codertocat', type: 'User' } });
    expect(preconditions(e, trigger())).toBeUndefined();
  });

  it('skips a draft pull request by default, and reviews it with skipDrafts: false', () => {
    expect(preconditions(event({ draft: true }), trigger())).toBe('draft pull request');
    expect(preconditions(event({ draft: true }), trigger({ skipDrafts: false }))).toBeUndefined();
  });

  it('skips a bot author by its [bot] login suffix and by user.type Bot, unless skipBots is false', () => {
    expect(preconditions(event({ user: { login: 'renovate[bot]', type: 'Bot' } }), trigger())).toBe('author renovate[bot] is a bot');
    expect(preconditions(event({ user: { login: 'dependabot[bot]' } }), trigger())).toBe('author dependabot[bot] is a bot');
    expect(preconditions(event({ user: { login: 'ci-builder', type: 'Bot' } }), trigger())).toBe('author ci-builder is a bot');
    expect(preconditions(event({ user: { login: 'renovate[bot]', type: 'Bot' } }), trigger({ skipBots: false }))).toBeUndefined();
    expect(isBotLogin('octocat')).toBe(false);
  });

  it('skips an excluded author by name or glob, case-insensitively, with or without the [bot] suffix', () => {
    const authors = { include: [], exclude: ['renovate', '*-bot'] };
    const t = trigger({ skipBots: false, authors });
    expect(preconditions(event({ user: { login: 'Renovate[bot]', type: 'Bot' } }), t)).toBe(
      'author Renovate[bot] excluded (authors.exclude: renovate)',
    );
    expect(preconditions(event({ user: { login: 'release-bot' } }), t)).toBe('author release-bot excluded (authors.exclude: *-bot)');
    expect(preconditions(openedExample(), t)).toBeUndefined();
  });

  it('reads brackets in an authors glob literally: *[bot] matches bot logins, not "matt"', () => {
    const t = trigger({ skipBots: false, authors: { include: [], exclude: ['*[bot]'] } });
    expect(preconditions(event({ user: { login: 'matt' } }), t)).toBeUndefined();
    expect(preconditions(event({ user: { login: 'dependabot[bot]' } }), t)).toBe(
      'author dependabot[bot] excluded (authors.exclude: *[bot])',
    );
  });

  it('reviews only the authors of authors.include when it is given', () => {
    const t = trigger({ authors: { include: ['octocat', 'mobile-*'], exclude: [] } });
    expect(preconditions(event({ user: { login: 'mobile-dev' } }), t)).toBeUndefined();
    expect(preconditions(openedExample(), t)).toBe('author Codertocat is not in authors.include (octocat, mobile-*)');
  });

  it('skips a pull request with an excluded label (case-insensitive) and one without any label of labels.include', () => {
    const labels = (...names: string[]) => ({ labels: names.map((name) => ({ name })) });
    expect(preconditions(event(labels('bug', 'WIP')), trigger({ labels: { include: [], exclude: ['wip'] } }))).toBe('label WIP excluded');
    expect(preconditions(event(labels('bug')), trigger({ labels: { include: ['review-me'], exclude: [] } }))).toBe(
      'no label of labels.include (review-me)',
    );
    expect(preconditions(event(labels('Review-Me')), trigger({ labels: { include: ['review-me'], exclude: ['wip'] } }))).toBeUndefined();
  });

  it('filters the base branch with globs', () => {
    const t = trigger({ branches: { include: ['main', 'release/**'], exclude: ['release/legacy-*'] } });
    const base = (ref: string) => event({ base: { sha: 'a'.repeat(40), ref } });
    expect(preconditions(base('main'), t)).toBeUndefined();
    expect(preconditions(base('release/2.4'), t)).toBeUndefined();
    expect(preconditions(base('release/legacy-1'), t)).toBe('base branch release/legacy-1 excluded (branches.exclude: release/legacy-*)');
    expect(preconditions(base('master'), t)).toBe('base branch master is not in branches.include (main, release/**)');
  });

  it('checks drafts first: a draft by a bot is skipped as a draft', () => {
    expect(preconditions(event({ draft: true, user: { login: 'renovate[bot]', type: 'Bot' } }), trigger())).toBe('draft pull request');
  });
});

describe('Schema: WorkflowTriggerSchema', () => {
  it('reads the filters the stack writes into AGENTFLOW_WORKFLOWS and refuses an unknown field', () => {
    const written = { ...trigger(), skipDrafts: true, skipBots: false, labels: { include: [], exclude: ['wip'] } };
    expect(WorkflowTriggerSchema.parse(JSON.parse(JSON.stringify(written)))).toEqual(written);
    expect(WorkflowTriggerSchema.safeParse({ ...written, skipDraft: true }).success).toBe(false);
  });
});

describe('Function: changeFromPullRequest', () => {
  it("marks a pull request whose head is in another repository as a fork (GitHub's example is not one)", () => {
    // Prepare
    const same = openedExample();
    const headOf = (full_name: string | null) => ({ ...same.pull_request.head, repo: full_name === null ? null : { full_name } });

    // Act / Assess
    expect(changeFromPullRequest(same).fork).toBe(false);
    expect(changeFromPullRequest(event({ head: headOf('someone/fork-of-repo') })).fork).toBe(true);
    // A deleted fork has no head repository: treated as a fork.
    expect(changeFromPullRequest(event({ head: headOf(null) })).fork).toBe(true);
  });
});

describe('Function: matchWorkflows (forge-neutral events)', () => {
  const wfs: WorkflowTrigger[] = [
    { id: 'opened', events: ['change.opened'] },
    { id: 'updated', events: ['change.updated'] },
    { id: 'gh', events: ['pull_request.opened'] },
    { id: 'gl', events: ['merge_request.open', 'merge_request.merge'] },
  ];
  const ids = (event: string, action: string) => matchWorkflows(event, action, wfs).map((w) => w.id);

  it('matches change.opened for GitHub opened / reopened and GitLab open / reopen, beside the forge event itself', () => {
    expect(ids('pull_request', 'opened')).toEqual(['opened', 'gh']);
    expect(ids('pull_request', 'reopened')).toEqual(['opened']);
    expect(ids('merge_request', 'open')).toEqual(['opened', 'gl']);
    expect(ids('merge_request', 'reopen')).toEqual(['opened']);
  });

  it('matches change.updated for GitHub synchronize and GitLab update only', () => {
    expect(ids('pull_request', 'synchronize')).toEqual(['updated']);
    expect(ids('merge_request', 'update')).toEqual(['updated']);
    expect(ids('merge_request', 'merge')).toEqual(['gl']);
    expect(ids('pull_request', 'closed')).toEqual([]);
  });

  it("does not cross forges: GitHub's action names start nothing on GitLab, nor the reverse", () => {
    expect(ids('merge_request', 'opened')).toEqual([]);
    expect(ids('pull_request', 'open')).toEqual([]);
    expect(ids('push', 'opened')).toEqual([]);
  });

  it("lists the same change actions as the compiler's validation (lib/workflow/events.ts)", () => {
    expect(Object.keys(CHANGE_EVENTS)).toEqual(CHANGE_ACTIONS.map((a) => `change.${a}`));
  });
});
