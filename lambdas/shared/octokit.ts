import { Octokit } from '@octokit/rest';
import { requireEnv } from './env.js';
import { secretField } from './secrets.js';

let cached: Promise<Octokit> | undefined;

/**
 * The Octokit of this Lambda, authenticated with the token in the secret named by
 * `GITHUB_SECRET_NAME` (field `token`), built on first use and reused; a failed read is retried on
 * the next call. `GITHUB_API_URL` points it at GitHub Enterprise Server.
 * @throws Error when the secret cannot be read or has no `token`
 */
export function githubClient(): Promise<Octokit> {
  cached ??= secretField(requireEnv('GITHUB_SECRET_NAME'), 'token')
    .then((token) => new Octokit({ auth: token, baseUrl: process.env.GITHUB_API_URL || 'https://api.github.com', userAgent: 'agentflow' }))
    .catch((e: unknown) => {
      cached = undefined;
      throw e;
    });
  return cached;
}
