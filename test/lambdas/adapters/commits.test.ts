import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Octokit } from '@octokit/rest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsArtifactStore } from '../../../lambdas/adapters/artifacts.js';
import { FilePublisher, GitHubPublisher } from '../../../lambdas/adapters/comments.js';
import { ForkPushRefusedError } from '../../../lambdas/core/errors.js';
import { testsBranch } from '../../../lambdas/core/generated-files.js';
import { exampleChange, exampleRepo, tempDir } from '../../helpers.js';
import { GitHubStandIn } from '../../standins/github.js';

/**
 * Generated tests committed through the real Octokit against the GitHub stand-in on 127.0.0.1
 * (every request checked against GitHub's OpenAPI description, responses too; blobs, trees,
 * commits, refs and pull requests kept as state), and locally with git plumbing.
 */

const HEAD = 'a1b2c3d'.padEnd(40, '0');
const change = exampleChange({
  repository: 'acme/app',
  number: 7,
  headSha: HEAD,
  baseSha: 'b'.repeat(40),
  headRef: 'feature/cart',
  fork: false,
});
const files = [
  { path: 'AppTests/CartTests.swift', content: 'import XCTest\n\nfinal class CartTests: XCTestCase {}\n' },
  { path: 'app/src/test/kotlin/com/acme/CartTest.kt', content: 'class CartTest\n' },
];
const request = { branch: testsBranch(change), message: 'Add generated tests', files };

let github: GitHubStandIn;
let publisher: GitHubPublisher;

beforeEach(async () => {
  github = new GitHubStandIn({ checkResponses: true });
  github.addPullRequest({ repo: 'acme/app', number: 7, headSha: HEAD, baseSha: change.baseSha, files: [], headRef: 'feature/cart' });
  github.addRef('acme/app', 'feature/cart', HEAD);
  const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  publisher = new GitHubPublisher(new Octokit({ baseUrl: await github.start(), log: quiet }));
});

afterEach(async () => {
  expect(github.violations).toEqual([]);
  expect(github.responseViolations).toEqual([]);
  await github.stop();
});

describe('Class: GitHubPublisher (commitFiles)', () => {
  it('creates blobs, a tree, a commit on the head, the branch and a draft pull request against the head branch', async () => {
    // Act
    const done = await publisher.commitFiles(change, request);

    // Assess
    expect(done.branch).toBe('agentflow/tests/7-a1b2c3d');
    expect(github.git.branch('acme/app', done.branch)).toBe(done.sha);
    const commit = github.git.commit('acme/app', done.sha);
    expect(commit?.parents).toEqual([HEAD]);
    expect(commit?.files).toEqual(Object.fromEntries(files.map((f) => [f.path, f.content])));
    const draft = github.pullRequestsOf('acme/app').find((p) => p.head === done.branch);
    expect(draft).toMatchObject({ base: 'feature/cart', draft: true, headSha: done.sha });
    expect(done).toMatchObject({ pullRequest: draft?.number, url: `https://github.com/acme/app/pull/${draft?.number}` });
    expect(github.requests.map((r) => r.operationId)).toEqual([
      'git/get-commit',
      'git/create-blob',
      'git/create-blob',
      'git/create-tree',
      'git/create-commit',
      'git/create-ref',
      'pulls/list',
      'pulls/create',
    ]);
  });

  it('moves the branch on a second run (forced) and reuses the open draft pull request', async () => {
    // Prepare
    const first = await publisher.commitFiles(change, request);

    // Act
    const second = await publisher.commitFiles(change, { ...request, files: [{ path: files[0]?.path ?? '', content: 'changed\n' }] });

    // Assess
    expect(second.sha).not.toBe(first.sha);
    expect(github.git.branch('acme/app', request.branch)).toBe(second.sha);
    expect(second.pullRequest).toBe(first.pullRequest);
    expect(github.pullRequestsOf('acme/app').filter((p) => p.draft)).toHaveLength(1);
    const update = github.requests.find((r) => r.operationId === 'git/update-ref');
    expect(update?.body).toMatchObject({ sha: second.sha, force: true });
    expect(github.requests.filter((r) => r.operationId === 'pulls/create')).toHaveLength(1);
  });

  it('pushes to the pull request branch as a fast-forward when asked and the pull request is not from a fork', async () => {
    // Act
    const done = await publisher.commitFiles(change, { ...request, pushToPullRequest: true });

    // Assess
    expect(done.branch).toBe('feature/cart');
    expect(github.git.branch('acme/app', 'feature/cart')).toBe(done.sha);
    expect(github.requests.find((r) => r.operationId === 'git/update-ref')?.body).toMatchObject({ force: false });
    expect(github.requests.some((r) => r.operationId === 'pulls/create')).toBe(false);
  });

  it("commits nothing for a fork's pull request, not even a branch of the base repository (nothing is sent to GitHub)", async () => {
    // Act / Assess: a branch at the fork's head would run the fork's workflows with this repository's secrets.
    await expect(publisher.commitFiles({ ...change, fork: true }, { ...request, pushToPullRequest: true })).rejects.toBeInstanceOf(
      ForkPushRefusedError,
    );
    await expect(publisher.commitFiles({ ...change, fork: true }, request)).rejects.toThrow(/comes from a fork; AgentFlow commits nothing/);
    await expect(publisher.commitFiles({ ...change, fork: undefined }, request)).rejects.toThrow(
      /is not known to come from the same repository/,
    );
    expect(github.requests).toEqual([]);
  });
});

describe('Class: FilePublisher (commitFiles)', () => {
  it('commits to agentflow/tests/<n>-<sha7> of the local repository without touching the working tree, index or HEAD', async () => {
    // Prepare: a local change in the working tree that must survive.
    const repo = exampleRepo();
    const git = (...args: string[]) => execFileSync('git', ['-C', repo.path, ...args], { encoding: 'utf8' }).trim();
    const readme = join(repo.path, 'README.md');
    writeFileSync(readme, 'work in progress\n');
    const before = { head: git('rev-parse', 'HEAD'), branch: git('symbolic-ref', 'HEAD'), status: git('status', '--porcelain') };
    const local = new FilePublisher(new FsArtifactStore(join(tempDir(), 'artifacts')), undefined, undefined, undefined, repo.path);
    const pr = exampleChange({ baseSha: repo.base, headSha: repo.head });

    // Act
    const done = await local.commitFiles(pr, { branch: testsBranch(pr), message: 'Add generated tests', files });

    // Assess
    expect(done.branch).toBe(`agentflow/tests/42-${repo.head.slice(0, 7)}`);
    expect(git('rev-parse', `refs/heads/${done.branch}`)).toBe(done.sha);
    expect(git('rev-parse', `${done.sha}^`)).toBe(repo.head);
    expect(git('show', `${done.sha}:AppTests/CartTests.swift`)).toBe(files[0]?.content.trim());
    expect(git('diff', '--name-only', repo.head, done.sha).split('\n').sort()).toEqual(files.map((f) => f.path).sort());
    expect({ head: git('rev-parse', 'HEAD'), branch: git('symbolic-ref', 'HEAD'), status: git('status', '--porcelain') }).toEqual(before);
    expect(readFileSync(readme, 'utf8')).toBe('work in progress\n');
  });
});
