import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sign } from '@octokit/webhooks-methods';
import { PROJECT_ROOT } from '../workspace.js';

/** The example app's sources: `base/` is main, `head/` overlays the pull request's changes. */
export const EXAMPLE_APP = join(PROJECT_ROOT, 'examples', 'mobile-app');

/** The example repository's two commits. */
export interface ExampleRepo {
  path: string;
  base: string;
  head: string;
}

/**
 * An empty folder `dir` (emptied first) for a git repository made the same on every machine: a
 * fixed author and committer, commit dates `date` (ISO 8601; change `env` to move them), no system
 * or user git configuration.
 * @returns the environment git runs with, and `git(...args)` run in `dir` (stdout, trimmed)
 * @throws Error from `git` when git is missing or fails
 */
export function freshRepo(dir: string, date: string): { env: NodeJS.ProcessEnv; git: (...args: string[]) => string } {
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GIT_AUTHOR_NAME: 'Acme Mobile',
    GIT_AUTHOR_EMAIL: 'mobile@acme-shop.example',
    GIT_COMMITTER_NAME: 'Acme Mobile',
    GIT_COMMITTER_EMAIL: 'mobile@acme-shop.example',
    GIT_AUTHOR_DATE: date,
    GIT_COMMITTER_DATE: date,
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: dir,
  };
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', dir, ...args], { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).trim();
  return { env, git };
}

/**
 * (Re)creates a git repository at `dir` with two commits: the example app (`main`) and the pull
 * request's change (`feature/checkout-payments`). Author and dates are fixed, so the SHAs are the
 * same on every machine.
 * @throws Error when git is missing or fails
 */
export function createExampleRepo(dir: string): ExampleRepo {
  const { env, git } = freshRepo(dir, '2026-01-05T10:00:00Z');
  git('init', '-q', '-b', 'main');
  cpSync(join(EXAMPLE_APP, 'base'), dir, { recursive: true });
  git('add', '-A');
  git('commit', '-q', '-m', 'Acme Shop: checkout and cart');
  const base = git('rev-parse', 'HEAD');
  git('checkout', '-q', '-b', 'feature/checkout-payments');
  cpSync(join(EXAMPLE_APP, 'head'), dir, { recursive: true });
  git('add', '-A');
  env.GIT_AUTHOR_DATE = '2026-01-06T09:30:00Z';
  env.GIT_COMMITTER_DATE = '2026-01-06T09:30:00Z';
  git('commit', '-q', '-m', 'Checkout: pay with card; cart: coupons');
  const head = git('rev-parse', 'HEAD');
  return { path: dir, base, head };
}

/**
 * A minimal GitHub `pull_request.opened` delivery body for the example repository's change (the
 * fields the webhook reads), as JSON text ready to sign.
 * @param number the pull request number @default 42
 */
export function examplePullRequestPayload(repo: ExampleRepo, number = 42): string {
  return JSON.stringify({
    action: 'opened',
    number,
    pull_request: {
      title: 'Checkout: pay with card',
      html_url: `https://github.com/acme/shop-apps/pull/${number}`,
      user: { login: 'mobile-dev' },
      base: { sha: repo.base, ref: 'main' },
      head: { sha: repo.head, ref: 'feature/checkout-payments' },
    },
    repository: { full_name: 'acme/shop-apps' },
  });
}

/**
 * The headers GitHub sends with a webhook delivery of `body`: JSON, the event, the delivery id and
 * the `X-Hub-Signature-256` HMAC with `secret` (what `POST /webhooks/github` verifies).
 * Source: https://docs.github.com/en/webhooks/webhook-events-and-payloads#delivery-headers (2026-11)
 * @param event @default 'pull_request'
 */
export async function deliveryHeaders(
  secret: string,
  body: string,
  delivery: string,
  event = 'pull_request',
): Promise<Record<string, string>> {
  return {
    'content-type': 'application/json',
    'x-github-event': event,
    'x-github-delivery': delivery,
    'x-hub-signature-256': await sign(secret, body),
  };
}
