import { generateKeyPairSync } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GitHubPublisher } from '../../../lambdas/adapters/comments.js';
import { octokitFor } from '../../../lambdas/shared/octokit.js';
import { exampleChange } from '../../helpers.js';
import { GitHubStandIn } from '../../standins/github.js';

const APP_ID = 123456;
const INSTALLATION = 7890;
const change = exampleChange({ repository: 'acme/app', number: 7, headSha: 'a'.repeat(40), baseSha: 'b'.repeat(40) });

let github: GitHubStandIn;
let baseUrl: string;
const { privateKey, publicKey } = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  publicKeyEncoding: { type: 'spki', format: 'pem' },
});

beforeEach(async () => {
  github = new GitHubStandIn();
  baseUrl = await github.start();
  github.addApp(APP_ID, publicKey, INSTALLATION);
  github.addPullRequest({ repo: 'acme/app', number: 7, headSha: change.headSha, baseSha: change.baseSha, files: [] });
});
afterEach(async () => {
  await github.stop();
});

describe('Function: octokitFor (the github secret)', () => {
  it('authenticates as a GitHub App installation (RS256 JWT, installation token), which may write check runs', async () => {
    const octokit = octokitFor({ appId: String(APP_ID), privateKey, installationId: String(INSTALLATION) }, baseUrl);
    await new GitHubPublisher(octokit).startCheck(change, 'AgentFlow · pr-review', 'run-1');
    expect(github.checkRuns('acme/app', change.headSha)).toHaveLength(1);
    expect(github.installationTokensIssued).toBe(1);
    expect(github.violations).toEqual([]);
  });

  it('with a personal token the check run is refused as GitHub refuses it (403), everything else works', async () => {
    const octokit = octokitFor({ token: 'github_pat_11AAAAAAA0example' }, baseUrl);
    await expect(new GitHubPublisher(octokit).startCheck(change, 'AgentFlow · pr-review', 'run-1')).rejects.toMatchObject({ status: 403 });
    expect(await new GitHubPublisher(octokit).upsertComment(change, '<!-- m -->', '<!-- m -->\nhi')).toContain('/pull/7');
  });

  it('refuses a secret with neither an App nor a token, naming what it needs', () => {
    expect(() => octokitFor({ appId: '1' }, baseUrl)).toThrow(
      /neither a GitHub App \("appId", "privateKey", "installationId"\) nor a "token"/,
    );
    expect(() => octokitFor({ appId: '1', privateKey: 'not a key', installationId: '2' }, baseUrl)).toThrow(/neither/);
  });

  it('a JWT signed by another key gets no installation token', async () => {
    const other = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    const octokit = octokitFor({ appId: APP_ID, privateKey: other.privateKey, installationId: INSTALLATION }, baseUrl);
    await expect(new GitHubPublisher(octokit).startCheck(change, 'AgentFlow · pr-review', 'run-1')).rejects.toMatchObject({ status: 401 });
    expect(github.installationTokensIssued).toBe(0);
    github.violations.length = 0;
  });
});
