/**
 * Removes credentials from text before it reaches a model or an artifact.
 *
 * Each match is replaced by `[REDACTED:<kind>]`, so reviewers (and models) still see that a secret
 * was committed. Patterns follow the token formats the vendors document (AWS access key ids,
 * GitHub `ghp_`/`github_pat_`, Slack `xox?-`, OpenAI `sk-`, Google `AIza`, Stripe `sk_live_`),
 * PEM private keys, JWTs, and quoted values assigned to names like `apiKey`, `secret`, `password`.
 */
const RULES: ReadonlyArray<{ kind: string; re: RegExp; group?: number }> = [
  { kind: 'private-key', re: /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g },
  { kind: 'aws-access-key', re: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { kind: 'github-token', re: /\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})\b/g },
  { kind: 'slack-token', re: /\bxox[abposr]-[A-Za-z0-9-]{10,}\b/g },
  { kind: 'openai-key', re: /\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b/g },
  { kind: 'stripe-key', re: /\b[rs]k_live_[A-Za-z0-9]{16,}\b/g },
  { kind: 'google-api-key', re: /\bAIza[0-9A-Za-z_-]{35}\b/g },
  { kind: 'jwt', re: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b/g },
  {
    kind: 'secret-assignment',
    re: /((?:api[_-]?key|apikey|secret|client[_-]?secret|token|password|passwd|auth[_-]?key|private[_-]?key)\w*["']?\s*[:=]\s*(?:@)?["'])([^"'\s]{8,})(["'])/gi,
    group: 2,
  },
];

/** The result of {@link redactSecrets}: the clean text and how many secrets were removed. */
export interface Redaction {
  text: string;
  count: number;
}

/** Replaces every credential found in `text` with `[REDACTED:<kind>]`. Pure; never throws. */
export function redactSecrets(text: string): Redaction {
  let count = 0;
  let out = text;
  for (const rule of RULES) {
    out = out.replace(rule.re, (...m: string[]) => {
      const whole = m[0] ?? '';
      if (whole.includes('[REDACTED:')) return whole;
      count++;
      if (rule.group === undefined) return `[REDACTED:${rule.kind}]`;
      return `${m[1]}[REDACTED:${rule.kind}]${m[3]}`;
    });
  }
  return { text: out, count };
}
