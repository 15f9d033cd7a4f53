import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  changeFromMergeRequest,
  isGitlabBot,
  MERGE_REQUEST_ACTIONS,
  MergeRequestEventSchema,
  MergeRequestNoteEventSchema,
  mergeRequestSubject,
} from '../../../lambdas/core/gitlab-events.js';
import { preconditions } from '../../../lambdas/core/triggers.js';
import { GITLAB_MERGE_REQUEST_ACTIONS } from '../../../lib/workflow/events.js';

/** A payload recorded from GitLab's documentation (test/fixtures/gitlab/README.md). */
const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`../../fixtures/gitlab/${name}.json`, import.meta.url), 'utf8'));

describe('Schema: MergeRequestEventSchema and MergeRequestNoteEventSchema', () => {
  it("parses GitLab's documented merge request and merge request note examples", () => {
    const open = MergeRequestEventSchema.parse(fixture('merge-request-open'));
    expect(open.object_attributes).toMatchObject({ iid: 1, action: 'open', target_branch: 'master', source_branch: 'ms-viewport' });
    expect(MergeRequestEventSchema.parse(fixture('merge-request-update')).object_attributes.oldrev).toMatch(/^[0-9a-f]{40}$/);
    expect(MergeRequestEventSchema.parse(fixture('merge-request-update-title')).object_attributes.oldrev).toBeUndefined();
    const note = MergeRequestNoteEventSchema.parse(fixture('note-merge-request'));
    expect(note).toMatchObject({ object_attributes: { noteable_type: 'MergeRequest', action: 'create' }, merge_request: { iid: 1 } });
  });

  it('refuses a merge request payload without the target project', () => {
    const e = fixture('merge-request-open') as Record<string, unknown>;
    expect(MergeRequestEventSchema.safeParse({ ...e, project: undefined }).success).toBe(false);
  });

  it("names the same actions as the compiler's validation (lib/workflow/events.ts)", () => {
    expect([...MERGE_REQUEST_ACTIONS]).toEqual([...GITLAB_MERGE_REQUEST_ACTIONS]);
  });
});

describe('Function: isGitlabBot', () => {
  it("recognises access tokens' bot users, GitLab's internal users and bot: true, not people", () => {
    expect(isGitlabBot({ username: 'project_123_bot_4ffca233d8298ea1' })).toBe(true);
    expect(isGitlabBot({ username: 'group_109_bot_0a1b2c' })).toBe(true);
    expect(isGitlabBot({ username: 'project_20_bot1' })).toBe(true);
    expect(isGitlabBot({ username: 'ghost' })).toBe(true);
    expect(isGitlabBot({ username: 'Support-Bot' })).toBe(true);
    expect(isGitlabBot({ username: 'renovate', bot: true })).toBe(true);
    expect(isGitlabBot({ username: 'root' })).toBe(false);
    expect(isGitlabBot({ username: 'project_manager' })).toBe(false);
  });
});

describe('Function: mergeRequestSubject', () => {
  const open = () => MergeRequestEventSchema.parse(fixture('merge-request-open'));

  it("gives the filters GitLab's example: not a draft, by root, labelled API, into master", () => {
    expect(mergeRequestSubject(open())).toEqual({
      forge: 'gitlab',
      draft: false,
      author: 'root',
      bot: false,
      labels: ['API'],
      baseRef: 'master',
    });
    expect(preconditions(mergeRequestSubject(open()), { id: 'r', events: ['merge_request.open'] })).toBeUndefined();
  });

  it('treats work_in_progress as a draft, and applies labels and branches like on GitHub', () => {
    const e = open();
    e.object_attributes.work_in_progress = true;
    expect(preconditions(mergeRequestSubject(e), { id: 'r', events: [] })).toBe('draft merge request');
    const t = { id: 'r', events: [], labels: { include: [], exclude: ['api'] } };
    expect(preconditions(mergeRequestSubject(open()), t)).toBe('label API excluded');
  });
});

describe('Function: changeFromMergeRequest', () => {
  it('takes the SHAs from the refs lookup and marks a source project other than the target as a fork', () => {
    const e = MergeRequestEventSchema.parse(fixture('merge-request-open'));
    const refs = { baseSha: 'b'.repeat(40), headSha: 'c'.repeat(40) };
    expect(changeFromMergeRequest(e, refs)).toMatchObject({
      forge: 'gitlab',
      repository: 'gitlabhq/gitlab-test',
      number: 1,
      ...refs,
      fork: false,
    });
    expect(changeFromMergeRequest(e, refs).startSha).toBeUndefined();
    e.object_attributes.source_project_id = 99;
    expect(changeFromMergeRequest(e, refs).fork).toBe(true);
  });
});
