import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { createAppAuth } from '@octokit/auth-app';
import { Octokit } from '@octokit/rest';
import { z } from 'zod';
import { requireEnv } from './env.js';

let cached: Promise<Octokit> | undefined;

/**
 * How AgentFlow authenticates to GitHub, from the `github` secret: a **GitHub App** installation
 * (`appId`, `privateKey` — the App's PEM key — and `installationId`: installation tokens are made
 * and renewed before they expire, and only they may write check runs), or a `token` (a fine-grained
 * or classic personal access token: everything but check runs, whose writes GitHub refuses with 403
 * and the run records as `checkError`). The App wins when both are given.
 * Source: https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation (2026-11).
 */
export const GitHubAuthSchema = z.union([
  z.object({
    appId: z.union([z.string().regex(/^\d+$/), z.number().int().positive()]),
    privateKey: z.string().includes('PRIVATE KEY', { message: 'privateKey must be the App’s PEM private key' }),
    installationId: z.union([z.string().regex(/^\d+$/), z.number().int().positive()]),
  }),
  z.object({ token: z.string().min(1) }),
]);

/**
 * An Octokit for the `github` secret's credentials (see {@link GitHubAuthSchema}) at `baseUrl`.
 * @throws Error naming what the secret lacks when it holds neither an App nor a token
 * @example octokitFor({ appId: '123', privateKey: pem, installationId: '456' }, 'https://api.github.com')
 */
export function octokitFor(secret: unknown, baseUrl: string): Octokit {
  const parsed = GitHubAuthSchema.safeParse(secret);
  if (!parsed.success) {
    throw new Error('the github secret holds neither a GitHub App ("appId", "privateKey", "installationId") nor a "token"');
  }
  const auth = parsed.data;
  if ('appId' in auth) {
    return new Octokit({
      authStrategy: createAppAuth,
      auth: { appId: Number(auth.appId), privateKey: auth.privateKey, installationId: Number(auth.installationId) },
      baseUrl,
      userAgent: 'agentflow',
    });
  }
  return new Octokit({ auth: auth.token, baseUrl, userAgent: 'agentflow' });
}

/**
 * The Octokit of this Lambda, authenticated with the secret named by `GITHUB_SECRET_NAME` (a
 * GitHub App installation or a token: {@link octokitFor}), built on first use and reused; a failed
 * read is retried on the next call. `GITHUB_API_URL` points it at GitHub Enterprise Server.
 * @throws Error when the secret cannot be read or holds no credentials
 */
export function githubClient(): Promise<Octokit> {
  cached ??= getSecret(requireEnv('GITHUB_SECRET_NAME'), { transform: 'json', maxAge: 300 })
    .then((secret) => octokitFor(secret, process.env.GITHUB_API_URL || 'https://api.github.com'))
    .catch((e: unknown) => {
      cached = undefined;
      throw e;
    });
  return cached;
}
