/**
 * Removes credentials from text before it reaches a model or an artifact.
 *
 * Detection combines secretlint's recommended rule preset (`@secretlint/secretlint-rule-preset-recommend`,
 * run in process through `@secretlint/core`) with AgentFlow's own rules for what mobile repositories
 * leak (see `secrets/rules.ts`), filtered by the allow-lists in `secrets/allow.ts` (documented
 * example keys, placeholders, names without values, low-entropy values).
 *
 * Each secret value is replaced by `[REDACTED:<kind>]` (kind: lowercase letters and hyphens), so
 * reviewers and models still see that a secret was committed; the name it was assigned to stays. A
 * secret spanning lines gets one marker per line (diff prefixes and newlines kept), so line numbers
 * in a diff hunk do not move; it still counts once.
 */
import { lintSource } from '@secretlint/core';
import { secretLintProfiler } from '@secretlint/profiler';
import { creator as recommendedPreset } from '@secretlint/secretlint-rule-preset-recommend';
import type { ModelAnswer } from './contracts.js';
import { isAllowedValue } from './secrets/allow.js';
import { findOwnSecrets, findOwnSecretsEach, type SecretHit } from './secrets/rules.js';

// secretlint's profiler is on by default: every rule on every text adds `performance.mark`s to the
// process's timeline and its own list, kept for good (a long-running server or a warm Lambda grows
// without bound), and pairs them with a `performance.measure` that looks its start mark up by name
// among all of them. Nothing here reads the profile; off, a run spends about a tenth less CPU.
secretLintProfiler.setEnabled(false);

/** One redacted secret: its kind as written in the marker. The value is never kept. */
export interface RedactedSecret {
  kind: string;
}

/** The result of {@link redactSecrets}: the clean text, how many secrets were removed and their kinds. */
export interface Redaction {
  text: string;
  count: number;
  /** One entry per redaction, in text order. */
  secrets: RedactedSecret[];
}

/**
 * secretlint configuration: the recommended preset, with `filter-comments` off so that a
 * `secretlint-disable` comment inside a pull request cannot switch detection off.
 */
const SECRETLINT_CONFIG: Parameters<typeof lintSource>[0]['options']['config'] = {
  rules: [
    {
      id: '@secretlint/secretlint-rule-preset-recommend',
      rule: recommendedPreset,
      rules: [{ id: '@secretlint/secretlint-rule-filter-comments', disabled: true }],
    },
  ],
};

/** `AWSSecretAccessKey` / `GITHUB_TOKEN` → `aws-secret-access-key` / `github-token`. */
export function kindOf(messageId: string): string {
  const kebab = messageId
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .toLowerCase()
    .replace(/[^a-z]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return kebab.length > 0 ? kebab : 'secret';
}

/**
 * Where a secretlint finding's value is. Some rules report the match start with the value's length
 * (the AWS secret key rule's range starts at the name, 13.1.0), so the value strings in the
 * message data are located in the text, from the range start on; the range is the fallback.
 */
function valueRanges(text: string, range: readonly [number, number], data: unknown): Array<[number, number]> {
  const values = Object.values(typeof data === 'object' && data !== null ? data : {}).filter(
    (v): v is string => typeof v === 'string' && v.length >= 8,
  );
  const found: Array<[number, number]> = [];
  for (const v of values) {
    const at = text.indexOf(v, range[0]);
    if (at >= 0 && at <= range[1] + 512) found.push([at, at + v.length]);
  }
  return found.length > 0 ? found : [[range[0], range[1]]];
}

/** One secretlint finding: the rule's whole match (`range`, in the text linted) and its message. */
interface LintMessage {
  range: readonly [number, number];
  messageId: string;
  data: unknown;
}

/** secretlint's findings in `text`, or undefined when secretlint failed on it. */
async function secretlintMessages(text: string): Promise<LintMessage[] | undefined> {
  try {
    const result = await lintSource({
      source: { filePath: 'diff.txt', content: text, contentType: 'text' },
      options: { config: SECRETLINT_CONFIG, noPhysicFilePath: true, locale: 'en' },
    });
    return result.messages.map((m) => ({ range: m.range, messageId: m.messageId, data: m.data }));
  } catch {
    return undefined;
  }
}

/** `messages` (ranges in `text`) as the values' ranges; closing quotes a rule included are left out. */
function hitsOf(text: string, messages: readonly LintMessage[]): SecretHit[] {
  const hits: SecretHit[] = [];
  for (const m of messages) {
    const kind = kindOf(m.messageId);
    for (let [start, end] of valueRanges(text, m.range, m.data)) {
      while (end > start && /["'`\s,;]/.test(text[end - 1] ?? '')) end--;
      if (end <= start || isAllowedValue(text.slice(start, end))) continue;
      hits.push({ start, end, kind });
    }
  }
  return hits;
}

/** secretlint's findings as ranges; none when secretlint fails on the text (AgentFlow's own rules still run). */
async function secretlintHits(text: string): Promise<SecretHit[]> {
  return hitsOf(text, (await secretlintMessages(text)) ?? []);
}

/**
 * The marker(s) for one secret. A secret spanning lines (a PEM block in a diff) is replaced line by
 * line: every line keeps its newline and its diff prefix (`+`, `-`, ` `) and gets its own marker, so a
 * hunk keeps its line count and every later line keeps its new-file line number.
 */
function replacement(secret: string, kind: string): string {
  const marker = `[REDACTED:${kind}]`;
  if (!secret.includes('\n')) return marker;
  const lines = secret.split('\n').map((line, i) => {
    const cr = line.endsWith('\r') ? '\r' : '';
    const body = cr ? line.slice(0, -1) : line;
    // A PEM boundary line (`-----END …`) starts with a dash of its own: only a sixth dash is a prefix.
    const prefix = i > 0 && (/^[+ ]/.test(body) || /^-(?!----[^-])/.test(body)) ? body.slice(0, 1) : '';
    return body.length > prefix.length ? `${prefix}${marker}${cr}` : line;
  });
  const out = lines.join('\n');
  return out.includes(marker) ? out : marker;
}

/**
 * Replaces every credential found in `text` with `[REDACTED:<kind>]`. Overlapping findings are
 * merged (the earliest, then the longest, wins; a secretlint range holding one of AgentFlow's
 * narrower hits gives way to it, so the name a value was assigned to stays readable). Never throws; never returns a secret's value.
 *
 * @example
 * const { text, count } = await redactSecrets('token: ghp_…');
 * // text === 'token: [REDACTED:github-token]', count === 1
 */
export async function redactSecrets(text: string): Promise<Redaction> {
  if (text.length === 0) return { text, count: 0, secrets: [] };
  return redactWith(text, await secretlintHits(text));
}

/** Between the texts {@link redactTexts} lints as one: a blank line, as between paragraphs. */
const TEXTS_SEPARATOR = '\n\n';

/**
 * A text secretlint may judge as a whole: one that may be a JSON object (its GCP service-account
 * rule parses the whole source, and reports the whole of it).
 */
const WHOLE_TEXT = /^\s*\{/;

/**
 * {@link redactSecrets} on each of `texts`, with secretlint run once on most of them (its setup,
 * about 0.13 ms a call, is most of the cost of a short text). Each text gets what `redactSecrets`
 * would give it alone (a test ties them on the whole secrets corpus):
 * - a rule's match that reaches over the line between two texts (a name in one, a value in the
 *   next; a block over lines) is not used: each text it touches is linted again on its own;
 * - a finding's value is looked for in its own text only;
 * - a text that may be a JSON object is linted on its own (a rule parses the whole source);
 * - when secretlint fails on the joined texts, each is linted on its own.
 * Never throws.
 * @returns one {@link Redaction} per text, in order
 */
export async function redactTexts(texts: readonly string[]): Promise<Redaction[]> {
  const together = texts.flatMap((t, i) => (t.length > 0 && !WHOLE_TEXT.test(t) ? [i] : []));
  const spans = new Map<number, { start: number; end: number }>();
  let at = 0;
  for (const i of together) {
    const length = (texts[i] as string).length;
    spans.set(i, { start: at, end: at + length });
    at += length + TEXTS_SEPARATOR.length;
  }
  const joined = together.length > 1 ? await secretlintMessages(together.map((i) => texts[i]).join(TEXTS_SEPARATOR)) : undefined;
  // Per text, the findings wholly inside it (ranges in the text), when the joined lint can be used for it.
  const found = new Map<number, LintMessage[]>();
  if (joined) {
    for (const i of together) found.set(i, []);
    for (const m of joined) {
      const touched = together.filter((i) => {
        const s = spans.get(i) as { start: number; end: number };
        return m.range[0] < s.end + TEXTS_SEPARATOR.length && m.range[1] > s.start;
      });
      const i = touched[0];
      const s = i === undefined ? undefined : spans.get(i);
      if (touched.length === 1 && s && m.range[0] >= s.start && m.range[1] <= s.end) {
        found.get(i as number)?.push({ ...m, range: [m.range[0] - s.start, m.range[1] - s.start] });
      } else {
        for (const j of touched) found.delete(j);
      }
    }
  }
  const own = findOwnSecretsEach(texts);
  return Promise.all(
    texts.map(async (t, i) => {
      if (t.length === 0) return { text: t, count: 0, secrets: [] };
      const mine = found.get(i);
      return redactWith(t, mine ? hitsOf(t, mine) : await secretlintHits(t), own[i]);
    }),
  );
}

/**
 * `text` with AgentFlow's own findings (`own`, found here unless given) and secretlint's (`linted`),
 * ranges in `text`, replaced by markers.
 */
function redactWith(text: string, linted: readonly SecretHit[], own: readonly SecretHit[] = findOwnSecrets(text)): Redaction {
  // A secretlint range that holds one of ours is wider (it may include the name): ours wins.
  const wider = (h: SecretHit) => own.some((o) => o.start >= h.start && o.end <= h.end);
  const hits = [...own, ...linted.filter((h) => !wider(h))].sort((a, b) => a.start - b.start || b.end - a.end);
  const parts: string[] = [];
  const secrets: RedactedSecret[] = [];
  let at = 0;
  for (const hit of hits) {
    if (hit.start < at) {
      // Overlaps the previous redaction: extend it when this one reaches further.
      if (hit.end > at) at = hit.end;
      continue;
    }
    parts.push(text.slice(at, hit.start), replacement(text.slice(hit.start, hit.end), hit.kind));
    secrets.push({ kind: hit.kind });
    at = hit.end;
  }
  parts.push(text.slice(at));
  return { text: parts.join(''), count: secrets.length, secrets };
}

/**
 * A model answer with every text a model wrote (summary, document, each finding's file, message,
 * category and suggestion) redacted as {@link redactSecrets} would, in one secretlint pass
 * ({@link redactTexts}): model output is scanned again before it is stored, given to later phases
 * or posted, whatever the model saw. A finding's suggested code that holds a secret is dropped.
 * @returns the clean answer and how many secrets were removed from it (the dropped code not counted)
 */
export async function redactAnswer(answer: ModelAnswer): Promise<{ answer: ModelAnswer; count: number }> {
  // Every text of the answer is linted in one pass (redactTexts); `clean` takes them back in order.
  const texts: string[] = [answer.summary, answer.document ?? ''];
  for (const f of answer.findings) texts.push(f.file, f.message, f.category, f.suggestion, f.replacement ?? '');
  const redacted = await redactTexts(texts);
  let next = 0;
  let count = 0;
  const take = () => redacted[next++] as Redaction;
  const clean = () => {
    const r = take();
    count += r.count;
    return r.text;
  };
  const summary = clean();
  const document = clean();
  const findings = answer.findings.map(({ replacement, ...f }) => ({
    ...f,
    file: clean(),
    message: clean(),
    category: clean(),
    suggestion: clean(),
    // Suggested code with a secret in it is dropped, not redacted: a one-click suggestion would
    // commit the placeholder into the code.
    ...(take().count === 0 && replacement !== undefined ? { replacement } : {}),
  }));
  const out: ModelAnswer = {
    ...answer,
    summary,
    findings,
    ...(answer.document !== undefined ? { document } : {}),
  };
  return { answer: out, count };
}
