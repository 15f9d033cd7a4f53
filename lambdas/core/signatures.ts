import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** `sha256=` followed by 64 lowercase or uppercase hex digits. */
const GITHUB_SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;

function equalHex(expected: Buffer, hex: string): boolean {
  const given = Buffer.from(hex.toLowerCase(), 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Checks GitHub's `X-Hub-Signature-256` header against the raw request bytes: HMAC-SHA256 of the
 * body keyed by the webhook secret, as `sha256=<hex>`. Any of `secrets` may match (the new and the
 * old secret during a rotation). Constant-time comparison; a malformed or truncated header is
 * simply invalid.
 * Source: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries (2026-11)
 */
export function verifyGithubSignature(secrets: readonly string[], rawBody: Buffer, header: string | undefined): boolean {
  const m = header ? GITHUB_SIGNATURE.exec(header.trim()) : null;
  if (!m?.[1]) return false;
  const hex = m[1];
  return secrets.some((s) => s.length > 0 && equalHex(createHmac('sha256', s).update(rawBody).digest(), hex));
}

/**
 * Checks GitLab's `X-Gitlab-Token` header: GitLab sends the webhook's secret token itself (it signs
 * nothing), so the header must equal one of `secrets` (the current and, during a rotation, the
 * previous one). Both sides are hashed with SHA-256 first and the digests compared with
 * `crypto.timingSafeEqual`, so neither the content nor the length of a secret leaks through timing;
 * every secret is compared, whichever matches. An empty or missing header, or an empty secret, never matches.
 * Source: https://docs.gitlab.com/user/project/integrations/webhooks/#validate-payloads-by-using-a-secret-token (read 2026-11)
 *
 * @example
 * verifyGitlabToken(['new-token', 'old-token'], req.headers['x-gitlab-token']); // true for either
 */
export function verifyGitlabToken(secrets: readonly string[], header: string | undefined): boolean {
  if (!header) return false;
  const given = createHash('sha256').update(header).digest();
  let ok = false;
  for (const s of secrets) {
    if (s.length > 0 && timingSafeEqual(createHash('sha256').update(s).digest(), given)) ok = true;
  }
  return ok;
}

/** Signs a body the way GitHub does (`sha256=<hex>`); for tests, the demo and the CI callback. */
export function githubSignature(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Slack's replay window: a request whose timestamp is further than this from now is refused. */
export const SLACK_WINDOW_SECONDS = 5 * 60;

/**
 * Checks a Slack request: `X-Slack-Signature` is `v0=` + HMAC-SHA256 of `v0:<X-Slack-Request-Timestamp>:<raw body>`
 * keyed by the app's signing secret, and the timestamp is within ±{@link SLACK_WINDOW_SECONDS} of `nowSeconds`
 * (both sides, so a request from the future is refused too). Any of `secrets` may match.
 * Source: https://api.slack.com/authentication/verifying-requests-from-slack (2026-11)
 */
export function verifySlackSignature(
  secrets: readonly string[],
  rawBody: Buffer,
  timestamp: string | undefined,
  signature: string | undefined,
  nowSeconds: number,
): boolean {
  if (!timestamp || !/^\d{1,12}$/.test(timestamp) || !signature) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > SLACK_WINDOW_SECONDS) return false;
  const m = /^v0=([0-9a-fA-F]{64})$/.exec(signature.trim());
  if (!m?.[1]) return false;
  const hex = m[1];
  const base = Buffer.concat([Buffer.from(`v0:${timestamp}:`), rawBody]);
  return secrets.some((s) => s.length > 0 && equalHex(createHmac('sha256', s).update(base).digest(), hex));
}

/** Signs a Slack request body (`v0=<hex>`); for tests and the local tools. */
export function slackSignature(secret: string, timestamp: number | string, body: string | Buffer): string {
  const base = Buffer.concat([Buffer.from(`v0:${timestamp}:`), Buffer.isBuffer(body) ? body : Buffer.from(body)]);
  return `v0=${createHmac('sha256', secret).update(base).digest('hex')}`;
}
