import { InvalidInputError } from './errors.js';

/** Longest ref we accept, in characters (a ref name is a file path under `.git/refs`; 255 is the usual name limit). */
export const MAX_REF_LENGTH = 255;

/**
 * Characters git refuses anywhere in a ref name (`git check-ref-format`, rules 3–5): ASCII
 * control characters and DEL, space, `~ ^ : ? * [ \`.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what this rule refuses
const REFUSED_CHARACTERS = /[\x00-\x20\x7f~^:?*[\\]/;

/** `s` in double quotes with control characters escaped (JSON escapes all but DEL), so a message stays one line. */
function quote(s: string): string {
  return JSON.stringify(s).replaceAll('\x7f', '\\u007f');
}

/**
 * Why `ref` is not a safe ref name or commit SHA, or undefined when it is. The rules are
 * `git check-ref-format`'s (https://git-scm.com/docs/git-check-ref-format), one-level names
 * allowed (`main`, `HEAD`), plus: not empty, not starting with `-` (git would read it as an
 * option) and at most {@link MAX_REF_LENGTH} characters.
 */
function refProblem(ref: string): string | undefined {
  if (ref.length === 0) return 'is empty';
  if (ref.length > MAX_REF_LENGTH) return `is longer than ${MAX_REF_LENGTH} characters`;
  if (ref.startsWith('-')) return 'starts with "-"';
  const bad = REFUSED_CHARACTERS.exec(ref);
  if (bad) return `contains ${quote(bad[0])}`;
  if (ref.includes('..')) return 'contains ".."';
  if (ref.includes('@{')) return 'contains "@{"';
  if (ref === '@') return 'is "@"';
  if (ref.startsWith('/') || ref.endsWith('/') || ref.includes('//')) return 'has an empty path component';
  if (ref.endsWith('.')) return 'ends with "."';
  for (const component of ref.split('/')) {
    if (component.startsWith('.')) return 'has a path component starting with "."';
    if (component.endsWith('.lock')) return 'has a path component ending with ".lock"';
  }
  return undefined;
}

/**
 * Returns `ref` when it is safe to hand to git as a revision: a branch or tag name that
 * `git check-ref-format` accepts, or a commit SHA (40 or 64 hex digits, or a shorter prefix),
 * optionally followed by an ancestry suffix (`~N`, `^`, `^N`: `main~3`, `abc123^`). Other revision
 * expressions (`@{upstream}`, `a..b`, `:/text`) are refused.
 *
 * @throws InvalidInputError naming the ref (JSON-quoted, so a control character stays visible; cut at 80
 *   characters) and the rule it breaks
 * @example
 * assertSafeRef('feature/checkout'); // 'feature/checkout'
 * assertSafeRef('--upload-pack=evil'); // throws InvalidInputError: invalid git ref "--upload-pack=evil": starts with "-"
 */
export function assertSafeRef(ref: string): string {
  // An ancestry suffix (`main~3`, `abc123^`, `HEAD^2~1`) names a commit relative to a ref: check the ref.
  const suffix = /(?:[~^]\d{0,4})+$/.exec(ref);
  const problem = refProblem(suffix && suffix.index > 0 ? ref.slice(0, suffix.index) : ref);
  if (problem) {
    const shown = ref.length > 80 ? `${ref.slice(0, 80)}…` : ref;
    throw new InvalidInputError(`invalid git ref ${quote(shown)}: ${problem}`);
  }
  return ref;
}
