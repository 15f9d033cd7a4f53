import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GitChangeSource } from '../../../lambdas/adapters/changes.js';
import { ApproversSchema, mayDecide, resolveApprovers } from '../../../lambdas/core/approvals.js';
import type { Change } from '../../../lambdas/core/contracts.js';
import { parseCommand } from '../../../lambdas/core/slack.js';
import { satisfies } from '../../../lambdas/core/triggers.js';
import { headCoverage } from '../../../lambdas/load-context/load-context.js';
import { tempDir } from '../../helpers.js';

describe('Function: resolveApprovers', () => {
  const groups = { 'mobile-leads': { slack: ['U024BE7LH'], github: ['octocat', '@acme/mobile-leads'] } };

  it('reads Slack ids, @users, @org/teams and groups, without repeats', () => {
    expect(resolveApprovers(['U024BE7LH', 'mobile-leads', '@hubot', '@acme/ios'], groups)).toEqual({
      slack: ['U024BE7LH'],
      users: [
        { forge: 'github', name: 'octocat' },
        { forge: 'github', name: 'hubot' },
      ],
      groups: [
        { forge: 'github', name: 'acme/mobile-leads' },
        { forge: 'github', name: 'acme/ios' },
      ],
    });
  });

  it('reads GitLab users and nested groups with the gitlab: prefix, and gitlab lists of a group', () => {
    const both = { leads: { slack: [], github: ['octocat'], gitlab: ['jsmith', '@acme/mobile/leads'] } };
    expect(resolveApprovers(['leads', 'gitlab:@j.doe_2', 'github:@hubot'], both)).toEqual({
      slack: [],
      users: [
        { forge: 'github', name: 'octocat' },
        { forge: 'gitlab', name: 'jsmith' },
        { forge: 'gitlab', name: 'j.doe_2' },
        { forge: 'github', name: 'hubot' },
      ],
      groups: [{ forge: 'gitlab', name: 'acme/mobile/leads' }],
    });
    expect(() => resolveApprovers(['gitlab:jsmith'], {})).toThrow(/gitlab:@user/);
    // A top-level GitLab group needs a trailing slash (without it the name is a user's).
    expect(resolveApprovers(['gitlab:@acme/', 'gitlab:@acme'], {})).toEqual({
      slack: [],
      users: [{ forge: 'gitlab', name: 'acme' }],
      groups: [{ forge: 'gitlab', name: 'acme' }],
    });
    expect(() => resolveApprovers(['@acme/'], {})).toThrow(/is not a Slack user id/);
    // GitHub teams have one org level; a nested path is not one.
    expect(() => resolveApprovers(['@acme/mobile/leads'], {})).toThrow(/is not a Slack user id/);
  });

  it('reads an approval stored before GitLab (github logins and teams) as GitHub users and teams', () => {
    expect(ApproversSchema.parse({ slack: ['U1'], github: ['octocat'], teams: ['acme/leads'] })).toEqual({
      slack: ['U1'],
      users: [{ forge: 'github', name: 'octocat' }],
      groups: [{ forge: 'github', name: 'acme/leads' }],
    });
  });

  it('lets a GitLab username decide through a group only on GitLab', async () => {
    const record = {
      kind: 'approval',
      approvers: { slack: [], users: [{ forge: 'gitlab', name: 'JSmith' }], groups: [{ forge: 'gitlab', name: 'acme/leads' }] },
    } as never;
    const teams = { gitlab: { isMember: async (group: string, user: string) => group === 'acme/leads' && user === 'lead' } };
    expect(await mayDecide(record, { user: { forge: 'gitlab', name: 'jsmith' } }, teams)).toBe(true);
    expect(await mayDecide(record, { user: { forge: 'gitlab', name: 'lead' } }, teams)).toBe(true);
    expect(await mayDecide(record, { user: { forge: 'github', name: 'jsmith' } }, teams)).toBe(false);
    expect(await mayDecide(record, { user: { forge: 'github', name: 'lead' } }, teams)).toBe(false);
  });

  it('names an undefined group', () => {
    expect(() => resolveApprovers(['release-managers'], groups)).toThrow(/approver group "release-managers" is not defined/);
  });

  it('lets a GitHub login decide through a team only when the directory says it is a member', async () => {
    const record = {
      kind: 'approval',
      approvers: { slack: [], users: [], groups: [{ forge: 'github', name: 'acme/mobile-leads' }] },
    } as never;
    const teams = { github: { isMember: async (team: string, login: string) => team === 'acme/mobile-leads' && login === 'lead' } };
    expect(await mayDecide(record, { user: { forge: 'github', name: 'lead' } }, teams)).toBe(true);
    expect(await mayDecide(record, { user: { forge: 'github', name: 'someone' } }, teams)).toBe(false);
    // The same name on another forge is another person.
    expect(await mayDecide(record, { user: { forge: 'gitlab', name: 'lead' } }, teams)).toBe(false);
    expect(await mayDecide(record, { slack: 'U024BE7LH' }, teams)).toBe(false);
    expect(await mayDecide(record, { ci: true }, teams)).toBe(false);
  });
});

describe('Function: parseCommand', () => {
  it('parses run with key=value pairs, status, approve/reject and review', () => {
    expect(parseCommand('run architecture-migration repo=acme/ios-app pr=12')).toEqual({
      kind: 'run',
      workflow: 'architecture-migration',
      params: { repo: 'acme/ios-app', pr: '12' },
    });
    expect(parseCommand('status slack-1-pr-review')).toEqual({ kind: 'status', execution: 'slack-1-pr-review' });
    expect(parseCommand('approve AbC-123_x')).toEqual({ kind: 'approve', id: 'AbC-123_x' });
    expect(parseCommand('REJECT x')).toEqual({ kind: 'reject', id: 'x' });
    expect(parseCommand('review')).toEqual({ kind: 'review', full: false });
    expect(parseCommand('review --full')).toEqual({ kind: 'review', full: true });
    expect(parseCommand('review --fast').kind).toBe('error');
    expect(parseCommand('')).toEqual({ kind: 'help' });
  });

  it('says what is missing or malformed', () => {
    expect(parseCommand('run')).toMatchObject({ kind: 'error', message: expect.stringContaining('Which workflow?') });
    expect(parseCommand('run wf repo')).toMatchObject({ kind: 'error', message: expect.stringContaining('`repo` is not key=value') });
    expect(parseCommand('approve')).toMatchObject({ kind: 'error', message: expect.stringContaining('/agentflow approve <id>') });
    expect(parseCommand('deploy')).toMatchObject({ kind: 'error', message: 'Unknown command `deploy`.' });
  });
});

describe('Function: satisfies', () => {
  it('compares like the lines_changed condition', () => {
    expect(satisfies(150, { op: '>', value: 100 })).toBe(true);
    expect(satisfies(100, { op: '>', value: 100 })).toBe(false);
    expect(satisfies(100, { op: '>=', value: 100 })).toBe(true);
    expect(satisfies(79.9, { op: '<', value: 80 })).toBe(true);
  });
});

describe('Function: headCoverage (the test_coverage source)', () => {
  it('reads total.lines.pct of coverage/coverage-summary.json at the head commit, and nothing when it is absent', async () => {
    const dir = tempDir();
    const git = (...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
    git('init', '-q', '-b', 'main');
    git('config', 'user.email', 't@example.com');
    git('config', 'user.name', 't');
    writeFileSync(join(dir, 'a.txt'), 'a\n');
    git('add', '.');
    git('commit', '-qm', 'base');
    const base = git('rev-parse', 'HEAD');
    mkdirSync(join(dir, 'coverage'));
    writeFileSync(
      join(dir, 'coverage', 'coverage-summary.json'),
      JSON.stringify({ total: { lines: { total: 200, covered: 125, pct: 62.5 } } }),
    );
    git('add', '.');
    git('commit', '-qm', 'head');
    const head = git('rev-parse', 'HEAD');
    const change = (headSha: string): Change => ({
      repository: 'a/b',
      number: 1,
      title: '',
      author: '',
      url: '',
      action: 'opened',
      baseSha: base,
      headSha,
      baseRef: '',
      headRef: '',
    });
    const source = new GitChangeSource(dir);
    expect(await headCoverage(change(head), source)).toBe(62.5);
    expect(await headCoverage(change(base), source)).toBeUndefined();
  });
});
