import { Gitlab } from '@gitbeaker/rest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { GitLabClient } from '../../../lambdas/adapters/gitlab-changes.js';
import { DEVELOPER_ACCESS, GitLabChangeLookup, GitLabGroupDirectory } from '../../../lambdas/adapters/gitlab-lookup.js';
import { GitLabStandIn } from '../../standins/gitlab.js';

/*
 * The lookups the ingress and the approvals use, through a real gitbeaker client against the GitLab
 * stand-in on 127.0.0.1 (each test ends with no violation of GitLab's documented request shapes).
 */

const PROJECT = 'acme/mobile/shop';
const TOKEN = 'glpat-lookup-token';
const BASE = 'b'.repeat(40);
const START = 'c'.repeat(40);
const HEAD = 'd'.repeat(40);

let gitlab: GitLabStandIn;
let client: GitLabClient;

beforeEach(async () => {
  gitlab = new GitLabStandIn(TOKEN);
  gitlab.addProject(PROJECT);
  gitlab.addMergeRequest(PROJECT, 7, [], {
    baseSha: BASE,
    startSha: START,
    headSha: HEAD,
    sourceBranch: 'feature/checkout',
    targetBranch: 'main',
    title: 'Checkout: pay with card',
  });
  client = new Gitlab({ host: await gitlab.start(), token: TOKEN }) as GitLabClient;
});

afterEach(async () => {
  expect(gitlab.violations).toEqual([]);
  await gitlab.stop();
});

describe('Class: GitLabChangeLookup', () => {
  it("reads a merge request's change with GitLab's base, start and head SHAs (diff_refs), branches and fork flag", async () => {
    const change = await new GitLabChangeLookup(client).pullRequest(PROJECT, 7);
    expect(change).toMatchObject({
      forge: 'gitlab',
      repository: PROJECT,
      number: 7,
      title: 'Checkout: pay with card',
      baseSha: BASE,
      startSha: START,
      headSha: HEAD,
      baseRef: 'main',
      headRef: 'feature/checkout',
      fork: false,
    });
    expect(change.url).toBe(`https://gitlab.example/${PROJECT}/-/merge_requests/7`);
    expect(await new GitLabChangeLookup(client).diffRefs(PROJECT, 7)).toMatchObject({ baseSha: BASE, startSha: START, headSha: HEAD });
  });

  it('marks a merge request from another project as a fork', async () => {
    gitlab.addProject('someone/shop');
    gitlab.addMergeRequest(PROJECT, 8, [], {
      baseSha: BASE,
      headSha: HEAD,
      sourceBranch: 'x',
      targetBranch: 'main',
      sourceProject: 'someone/shop',
    });
    expect((await new GitLabChangeLookup(client).pullRequest(PROJECT, 8)).fork).toBe(true);
  });

  it('fails for an unknown merge request (the ingress answers 503 and GitLab may redeliver)', async () => {
    await expect(new GitLabChangeLookup(client).pullRequest(PROJECT, 99)).rejects.toThrow();
  });

  it('resolves two refs to the head SHA and their merge base, and names a ref that does not resolve', async () => {
    gitlab.setBranch(PROJECT, 'release/1.2', START);
    gitlab.setMergeBase(PROJECT, START, HEAD, BASE);
    const change = await new GitLabChangeLookup(client).refs(PROJECT, 'release/1.2', HEAD);
    expect(change).toMatchObject({ forge: 'gitlab', number: 0, baseSha: BASE, headSha: HEAD, baseRef: 'release/1.2', headRef: HEAD });
    await expect(new GitLabChangeLookup(client).refs(PROJECT, 'nope', HEAD)).rejects.toThrow('no commit "nope" in acme/mobile/shop');
    await expect(new GitLabChangeLookup(client).refs(PROJECT, '--upload-pack=x', HEAD)).rejects.toThrow();
  });

  it('lets Developers and above review again, not Reporters or non-members', async () => {
    gitlab.addMember(PROJECT, 'dev', DEVELOPER_ACCESS);
    gitlab.addMember(PROJECT, 'reporter', 20);
    const lookup = new GitLabChangeLookup(client);
    const id = (name: string) => gitlab.addUser(name).id;
    expect(await lookup.canWrite(PROJECT, id('dev'))).toBe(true);
    expect(await lookup.canWrite(PROJECT, id('reporter'))).toBe(false);
    expect(await lookup.canWrite(PROJECT, id('stranger'))).toBe(false);
  });
});

describe('Class: GitLabGroupDirectory', () => {
  it('answers membership of a nested group by username; an unknown user or group is not a member', async () => {
    gitlab.addGroupMember('acme/mobile/leads', 'jsmith', 30);
    gitlab.addUser('outsider');
    const groups = new GitLabGroupDirectory(client);
    expect(await groups.isMember('acme/mobile/leads', 'jsmith')).toBe(true);
    expect(await groups.isMember('acme/mobile/leads', 'outsider')).toBe(false);
    expect(await groups.isMember('acme/mobile/leads', 'nobody')).toBe(false);
    expect(await groups.isMember('acme/unknown', 'jsmith')).toBe(false);
  });
});
