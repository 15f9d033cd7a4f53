/**
 * AgentFlow's own secret rules: token formats secretlint's recommended preset does not cover, and
 * what mobile repositories leak (keystore and signing passwords, plist/json API keys, partial PEM
 * blocks, basic-auth URLs, `.env` and `gradle.properties` entries).
 *
 * Formats follow the vendors' documentation: AWS access key ids (IAM "Understanding unique ID
 * prefixes"), GitHub token prefixes (GitHub blog 2021-04-05), Slack tokens and webhooks, Stripe
 * `sk_`/`rk_` keys, Google `AIza` keys and `GOCSPX-` client secrets, Twilio `SK` key sids, SendGrid
 * `SG.`, Mapbox `sk.` tokens, npm `npm_`, GitLab `glpat-`, Sentry `sntrys_`/DSNs, Azure storage
 * `AccountKey=`/SAS `sig=`, Anthropic `sk-ant-`, OpenAI `sk-`, PEM/PGP private keys (RFC 7468, RFC 4880).
 */
import { isAllowedValue, isRandomQueryValue, isSecretValue, SECRET_QUERY_PARAM, shannonEntropy } from './allow.js';

/** One match of a rule: the character range to replace and the kind named in the marker. */
export interface SecretHit {
  start: number;
  end: number;
  kind: string;
}

/** A rule: a global regex; `group` names the capture to redact (whole match when absent). */
interface Rule {
  readonly kind: string;
  readonly re: RegExp;
  readonly group?: number;
  /** Extra check on the captured value (name is capture 1 for assignment rules). */
  readonly accept?: (value: string, m: RegExpExecArray) => boolean;
}

const random = (minEntropy: number) => (v: string) => !isAllowedValue(v) && shannonEntropy(v) >= minEntropy;

/** Names that hold credentials in code, config and `.env` files. */
const NAME =
  '(?<![A-Za-z0-9_.-])[A-Za-z0-9_.-]{0,60}?(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_.-]?key|apikey|access[_.-]?key|auth[_.-]?key|private[_.-]?key|signing[_.-]?key|encryption[_.-]?key|master[_.-]?key|admin[_.-]?key|credentials?|current_key|dsn|webhook[_.-]?url)[A-Za-z0-9_.-]{0,60}';
const PASSWORD_NAME = /pass|pwd/i;
const kindOfName = (name: string): 'password' | 'token' => (PASSWORD_NAME.test(name) ? 'password' : 'token');
const assignmentKind = (name: string) => (kindOfName(name) === 'password' ? 'password' : 'secret-assignment');

/** PEM blocks that hold no secret (certificates, public keys): partial-PEM lines inside are left alone. */
const PUBLIC_PEM =
  /-----BEGIN (?:CERTIFICATE|PUBLIC KEY|RSA PUBLIC KEY|PGP PUBLIC KEY BLOCK|CERTIFICATE REQUEST)-----(?:(?!-----BEGIN )[\s\S])*?-----END [A-Z ]{1,40}-----/g;

const RULES: ReadonlyArray<Rule> = [
  {
    kind: 'private-key',
    re: /-----BEGIN ([A-Z0-9 ]{0,40})PRIVATE KEY(?: BLOCK)?-----(?:(?:(?!-----BEGIN )[\s\S])*?-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|(?:(?:\\n|\r?\n)[+\- ]?[A-Za-z0-9+/=: -]*)*)/g,
  },
  // A changed line in the middle of a PEM/PGP body: 64 base64 characters (RFC 7468 line width).
  { kind: 'private-key-fragment', re: /^[+\- ]?[ \t]*([A-Za-z0-9+/]{64})[ \t]*$/gm, group: 1, accept: random(4.5) },
  { kind: 'aws-access-key', re: /\b((?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b/g, group: 1, accept: (v) => !isAllowedValue(v) },
  {
    kind: 'aws-secret-key',
    re: /aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])/gi,
    group: 1,
    accept: random(3.5),
  },
  { kind: 'github-token', re: /\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})\b/g, group: 1, accept: random(3) },
  { kind: 'slack-token', re: /\b(xox[abposre]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{20,})\b/g, group: 1, accept: random(3) },
  { kind: 'slack-webhook', re: /https:\/\/hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9_/-]{20,}/g, accept: random(3) },
  { kind: 'discord-webhook', re: /https:\/\/(?:ptb\.|canary\.)?discord(?:app)?\.com\/api\/webhooks\/\d+\/[A-Za-z0-9_-]{40,}/g },
  { kind: 'teams-webhook', re: /https:\/\/[a-z0-9-]+\.webhook\.office\.com\/webhookb2\/[A-Za-z0-9@/_-]{40,}/g },
  { kind: 'anthropic-key', re: /\b(sk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_-]{80,})/g, group: 1, accept: random(3.5) },
  {
    kind: 'openai-key',
    re: /\b(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})/g,
    group: 1,
    accept: (v) => /\d/.test(v) && random(3.5)(v),
  },
  { kind: 'stripe-key', re: /\b([rs]k_(?:live|test)_[A-Za-z0-9]{16,})\b/g, group: 1, accept: random(3) },
  { kind: 'stripe-webhook-secret', re: /\b(whsec_[A-Za-z0-9]{24,})\b/g, group: 1, accept: random(3) },
  { kind: 'google-api-key', re: /\b(AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])/g, group: 1, accept: random(3) },
  { kind: 'google-oauth-secret', re: /\b(GOCSPX-[A-Za-z0-9_-]{28})/g, group: 1, accept: random(3) },
  { kind: 'google-oauth-token', re: /\b(ya29\.[0-9A-Za-z_-]{30,}|1\/\/0[0-9A-Za-z_-]{40,})/g, group: 1, accept: random(3.5) },
  { kind: 'firebase-server-key', re: /\b(AAAA[A-Za-z0-9_-]{7}:APA91b[A-Za-z0-9_-]{100,})/g, group: 1 },
  { kind: 'twilio-api-key', re: /\b(SK[0-9a-f]{32})\b/g, group: 1, accept: random(3) },
  { kind: 'sendgrid-key', re: /\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})/g, group: 1 },
  { kind: 'mailgun-key', re: /\b(key-[0-9a-f]{32})\b/g, group: 1, accept: random(3) },
  { kind: 'mailchimp-key', re: /\b([0-9a-f]{32}-us\d{1,2})\b/g, group: 1, accept: random(3) },
  { kind: 'mapbox-token', re: /\b(sk\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,})/g, group: 1 },
  { kind: 'npm-token', re: /\b(npm_[A-Za-z0-9]{36})\b/g, group: 1, accept: random(3) },
  { kind: 'npm-token', re: /\/\/[^\s:/]+(?:\/[^\s:/]+)*\/:_(?:authToken|auth|password)[ \t]*=[ \t]*([^\s$"'][^\s"']{8,})/g, group: 1 },
  { kind: 'gitlab-token', re: /\b(gl(?:pat|dt|rt|soat|cbt|ptt|ft)-[A-Za-z0-9_-]{20,})/g, group: 1, accept: random(3) },
  { kind: 'sentry-token', re: /\b(sntr[ysu]_[A-Za-z0-9+/=_-]{40,})/g, group: 1 },
  { kind: 'sentry-dsn', re: /https:\/\/([0-9a-f]{32})(?::[0-9a-f]{32})?@[a-z0-9.-]*sentry\.io\//g, group: 1, accept: random(3) },
  { kind: 'azure-storage-key', re: /AccountKey=([A-Za-z0-9+/]{40,}={0,2})/g, group: 1, accept: random(4) },
  { kind: 'azure-sas-token', re: /[?&;]sig=([A-Za-z0-9%+/]{30,}(?:%3D|=){0,2})/g, group: 1, accept: random(4) },
  { kind: 'square-token', re: /\b(sq0(?:atp|csp)-[0-9A-Za-z_-]{22,43}|EAAA[A-Za-z0-9_-]{60})\b/g, group: 1, accept: random(3) },
  { kind: 'digitalocean-token', re: /\b(do[por]_v1_[a-f0-9]{64})\b/g, group: 1 },
  { kind: 'postman-key', re: /\b(PMAK-[a-f0-9]{24}-[a-f0-9]{34})\b/g, group: 1 },
  { kind: 'newrelic-key', re: /\b(NRAK-[A-Z0-9]{27})\b/g, group: 1 },
  { kind: 'pypi-token', re: /\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})/g, group: 1 },
  { kind: 'rubygems-key', re: /\b(rubygems_[a-f0-9]{48})\b/g, group: 1 },
  { kind: 'telegram-bot-token', re: /\b(\d{8,10}:AA[A-Za-z0-9_-]{33})(?![A-Za-z0-9_-])/g, group: 1 },
  { kind: 'shopify-token', re: /\b(shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32})\b/g, group: 1 },
  { kind: 'jwt', re: /\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})/g, group: 1 },
  // https://user:password@host — only the password is redacted.
  {
    kind: 'basic-auth-url',
    re: /\b[a-z][a-z0-9+.-]{0,30}:\/\/[^\s:@/"'<>]{1,256}:([^\s@/"'<>]{1,256})@[^\s/"'<>]+/gi,
    group: 1,
    accept: (v) => !isAllowedValue(v) && !/^\$/.test(v) && v.length >= 4,
  },
  // Credentials in URL query strings: `?access_token=…`, `&key=…`, `&token=…` (only the value).
  {
    kind: 'url-query-secret',
    re: new RegExp(`[?&;](?:${SECRET_QUERY_PARAM})=([^&#\\s"'<>\`\\\\]+)`, 'gi'),
    group: 1,
    accept: (v) => isRandomQueryValue(v),
  },
  // Credentials in HTTP headers and command lines: `Authorization: Bearer …`, `curl -u user:password`.
  { kind: 'bearer-token', re: /\b(?:Bearer|Basic)\s+([A-Za-z0-9._~+/-]{16,}=*)/g, group: 1, accept: random(3.5) },
  {
    kind: 'basic-auth',
    re: /\s(?:-u|--user)\s+["'`]?[^\s:"'`]+:([^\s"'`@]{4,})/g,
    group: 1,
    accept: (v) => !isAllowedValue(v) && !v.startsWith('$'),
  },
  // Android signing configs: storePassword "…" / keyPassword = '…' (Groovy and Kotlin DSL).
  {
    kind: 'signing-password',
    re: /\b((?:store|key)Password)\b[ \t]*(?:=[ \t]*)?(?:\([ \t]*)?["']([^"'\n]+)["']/g,
    group: 2,
    accept: (v, m) => isSecretValue(m[1] ?? '', v, 'password'),
  },
  // GoogleService-Info.plist and other plists: <key>API_KEY</key> <string>…</string>.
  {
    kind: 'plist-secret',
    re: new RegExp(`<key>(${NAME})</key>[ \\t]*(?:\\r?\\n[+ -]?[ \\t]*)?<string>([^<\\n]+)</string>`, 'gi'),
    group: 2,
    accept: (v, m) => isSecretValue(m[1] ?? '', v, kindOfName(m[1] ?? '')),
  },
  // Android build scripts: buildConfigField("String", "API_KEY", "\"…\"") and resValue("string", "api_key", "…").
  {
    kind: 'secret-assignment',
    re: new RegExp(
      `(?:buildConfigField|resValue)[ \\t]*(?:\\([ \\t]*)?["']\\w+["']\\s*,\\s*["'](${NAME})["']\\s*,\\s*["'](?:\\\\["'])?([^"'\\\\\\n]+)`,
      'gi',
    ),
    group: 2,
    accept: (v, m) => isSecretValue(m[1] ?? '', v, kindOfName(m[1] ?? '')),
  },
  // Quoted assignments in code, JSON and YAML: apiKey = "…", "current_key": "…", password: '…'.
  {
    kind: 'secret-assignment',
    re: new RegExp(`(${NAME})["']?[ \\t]*(?::=|=>|[:=])[ \\t]*@?["'\`]([^"'\`\\n]+)["'\`]`, 'gi'),
    group: 2,
    accept: (v, m) => isSecretValue(m[1] ?? '', v, kindOfName(m[1] ?? '')),
  },
  // Unquoted line assignments: .env, gradle.properties, local.properties, YAML, shell exports.
  {
    kind: 'secret-assignment',
    re: new RegExp(`^[+\\- ]?[ \\t]*(?:export[ \\t]+)?(${NAME})[ \\t]*[:=][ \\t]*([^\\s"'\`#][^\\s"'\`]*?)[;,]?[ \\t]*$`, 'gim'),
    group: 2,
    accept: (v, m) => isSecretValue(m[1] ?? '', v, kindOfName(m[1] ?? '')),
  },
];

/** The rules with the `d` flag, so a capture's position is exact. */
const COMPILED: ReadonlyArray<Rule> = RULES.map((r) => ({ ...r, re: new RegExp(r.re.source, `${r.re.flags}d`) }));

/** Applies AgentFlow's own rules to `text`. Overlapping hits are resolved by the caller. */
export function findOwnSecrets(text: string): SecretHit[] {
  return applyRules(text, COMPILED);
}

/**
 * A rule's regex anchored to the start or end of the whole input (`^`/`$` without the `m` flag):
 * it may match a text alone and not the same text among others.
 */
function anchored(r: Rule): boolean {
  if (r.re.multiline) return false;
  const src = r.re.source;
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '^' || c === '$') return true;
  }
  return false;
}

/** The rules {@link anchored} to the whole input (found once: the rules do not change). */
const ANCHORED: ReadonlySet<Rule> = new Set(COMPILED.filter(anchored));

/** Between texts {@link findOwnSecretsEach} scans at once: a line end on each side of a blank line. */
const SCAN_SEPARATOR = '\n\n';

/**
 * {@link findOwnSecrets} on each of `texts`, the rules tried on each text only when they match
 * somewhere in all of them joined by blank lines (49 regexes on each short field of an answer cost
 * more in setup than in matching). A rule that matches a text alone matches the joined texts too
 * (where that text starts and ends, a line end stands for the start or end of the input, which
 * every rule's `\b`, lookarounds and multiline `^`/`$` treat alike; an earlier match there is a
 * match), so no text loses a hit; rules anchored to the whole input are always tried.
 * @returns one list of hits per text, in order, as {@link findOwnSecrets} gives them
 */
export function findOwnSecretsEach(texts: readonly string[]): SecretHit[][] {
  const joined = texts.join(SCAN_SEPARATOR);
  const rules = COMPILED.filter((r) => {
    if (ANCHORED.has(r)) return true;
    r.re.lastIndex = 0;
    const found = r.re.test(joined);
    r.re.lastIndex = 0;
    return found;
  });
  return texts.map((t) => (rules.length === 0 || t.length === 0 ? [] : applyRules(t, rules)));
}

function applyRules(text: string, rules: ReadonlyArray<Rule>): SecretHit[] {
  const hits: SecretHit[] = [];
  const publicBlocks = [...text.matchAll(PUBLIC_PEM)].map((m) => [m.index, m.index + m[0].length] as const);
  for (const rule of rules) {
    for (const m of text.matchAll(rule.re)) {
      const value = rule.group === undefined ? m[0] : (m[rule.group] ?? '');
      if (value.length === 0 || value.includes('[REDACTED:')) continue;
      if (rule.accept && !rule.accept(value, m)) continue;
      const start = rule.group === undefined ? m.index : (m.indices?.[rule.group]?.[0] ?? m.index);
      if (rule.kind === 'private-key-fragment' && publicBlocks.some(([s, e]) => start >= s && start < e)) continue;
      const kind = rule.kind === 'secret-assignment' ? assignmentKind(m[1] ?? '') : rule.kind;
      hits.push({ start, end: start + value.length, kind });
    }
  }
  return hits;
}
