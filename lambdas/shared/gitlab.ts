import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { Gitlab } from '@gitbeaker/rest';
import { z } from 'zod';
import type { GitLabClient } from '../adapters/gitlab-changes.js';
import { requireEnv } from './env.js';

/**
 * The `gitlab` secret (`agentflow/<env>/gitlab`): `token` (a project, group or personal access
 * token with the `api` scope; a Developer role at least, to post discussions and commit statuses),
 * `webhookSecret` (the project webhook's secret token; `previousWebhookSecret` during a rotation)
 * and `apiUrl` for a self-managed instance (its root, `https://gitlab.example.com`; default gitlab.com).
 * Source: https://docs.gitlab.com/user/profile/personal_access_tokens/#personal-access-token-scopes (read 2026-11).
 */
export const GitLabSecretSchema = z.object({
  token: z.string().min(1),
  apiUrl: z.string().url().optional(),
});

/**
 * How long one GitLab request may take before it fails, in ms: a self-managed instance that does
 * not answer fails the step with that reason instead of holding the Lambda to its timeout.
 */
export const GITLAB_QUERY_TIMEOUT_MS = 10_000;

/**
 * A gitbeaker client for the `gitlab` secret's token at its `apiUrl` (gitlab.com without one); a
 * request that gets no answer within `queryTimeoutMs` fails (gitbeaker's `queryTimeout`).
 * @throws Error when the secret has no token or its `apiUrl` is not a URL
 * @example gitlabFor({ token: 'glpat-…', apiUrl: 'https://gitlab.example.com' })
 */
export function gitlabFor(secret: unknown, queryTimeoutMs: number = GITLAB_QUERY_TIMEOUT_MS): GitLabClient {
  const parsed = GitLabSecretSchema.safeParse(secret);
  if (!parsed.success) throw new Error('the gitlab secret has no "token" (or its "apiUrl" is not a URL)');
  return new Gitlab({
    host: parsed.data.apiUrl ?? 'https://gitlab.com',
    token: parsed.data.token,
    queryTimeout: queryTimeoutMs,
  }) as GitLabClient;
}

const cached = new Map<number, Promise<GitLabClient>>();

/**
 * The GitLab client of this Lambda, from the secret named by `GITLAB_SECRET_NAME`, built on first
 * use and reused (one per `queryTimeoutMs`: the ingress, which must answer GitLab within 10 s,
 * uses a shorter one); a failed read is retried on the next call.
 * @throws Error when the secret cannot be read (GitLab not set up in this environment) or holds no token
 */
export function gitlabClient(queryTimeoutMs: number = GITLAB_QUERY_TIMEOUT_MS): Promise<GitLabClient> {
  let client = cached.get(queryTimeoutMs);
  if (!client) {
    client = getSecret(requireEnv('GITLAB_SECRET_NAME'), { transform: 'json', maxAge: 300 })
      .then((secret) => gitlabFor(secret, queryTimeoutMs))
      .catch((e: unknown) => {
        cached.delete(queryTimeoutMs);
        throw e;
      });
    cached.set(queryTimeoutMs, client);
  }
  return client;
}
