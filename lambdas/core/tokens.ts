import type { ChangedFile } from './contracts.js';
import { numberLines } from './hunks.js';

/**
 * Estimated tokens of `text`: one token per 3.5 characters, rounded up. Source code tokenizes
 * denser than prose (about 3.5 characters per token for Claude and GPT-4-class tokenizers), so
 * this errs towards more tokens: chunks stay inside the context window.
 */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

/** Characters per token assumed for chunk sizes (code runs 3.5–4.5 in o200k and Claude's tokenizer). */
const CHARS_PER_TOKEN = 3.5;

/**
 * Renders one changed file the way prompts show it: a `### path (status, +a -d)` header and the
 * patch with line numbers (see `numberLines` in `hunks.ts`: the new-file number on added and
 * context lines, `(old number)` on removed lines) in a ```diff fence longer than any backtick run
 * in it, so no line of the diff can close it. The patch shown is `shown` (the patch widened with
 * context from the head commit) when LoadContext made one, else the real `patch`; the counts are
 * the real patch's. Line endings are git's: `\r\n` is a line break, a lone `\r` is shown as `␍`
 * (see {@link normalizePatch}); control characters in paths are escaped so a file name cannot add
 * lines.
 *
 * @example
 * renderFile({ path: 'a.swift', status: 'modified', additions: 1, deletions: 1, binary: false,
 *   patch: '@@ -9,2 +9,2 @@\n-a\n+b\n c' });
 * // ### a.swift (modified, +1 -1)
 * // ```diff
 * // @@ -9,2 +9,2 @@
 * // (9) - a
 * //   9 + b
 * //  10   c
 * // ```
 */
export function renderFile(file: ChangedFile): string {
  const path = promptPath(file.path);
  const header =
    file.status === 'renamed' && file.previousPath
      ? `### ${path} (renamed from ${promptPath(file.previousPath)}, +${file.additions} -${file.deletions})`
      : `### ${path} (${file.status}, +${file.additions} -${file.deletions})`;
  const patch = file.binary ? '(binary file)' : numberedPatch(file);
  const fence = fenceFor(patch);
  return `${header}\n${fence}diff\n${patch}\n${fence}\n`;
}

/** The lines of the patch a prompt shows for `file`, numbered (see {@link renderFile}). */
const numberedLines = (file: Pick<ChangedFile, 'patch' | 'shown'>) => numberLines(normalizePatch(file.shown ?? file.patch));

/** The numbered patch text of `file` (see {@link renderFile}). */
const numberedPatch = (file: Pick<ChangedFile, 'patch' | 'shown'>) =>
  numberedLines(file)
    .map((l) => l.text)
    .join('\n');

/**
 * A patch with git's line structure for a prompt: `\r\n` becomes `\n`, and a lone `\r` (which a
 * model or a line splitter could read as a line break) becomes the visible `␍`, so a carriage
 * return in an added line never changes which lines are reviewed. A `\r` that ends the patch is
 * the end of a `\r\n` whose `\n` was trimmed with the patch's last line break.
 *
 * @example normalizePatch('+a\r\n+b\rc\r') // '+a\n+b␍c'
 */
export function normalizePatch(patch: string): string {
  return patch.replace(/\r\n|\r$/g, (m) => (m === '\r' ? '' : '\n')).replace(/\r/g, '␍');
}

/** A Markdown code fence of backticks longer than any backtick run in `text` (at least three). */
export function fenceFor(text: string): string {
  let longest = 0;
  for (const m of text.matchAll(/`+/g)) longest = Math.max(longest, m[0].length);
  return '`'.repeat(Math.max(3, longest + 1));
}

/** A path on one prompt line: control characters (newlines, carriage returns…) as `\uXXXX` escapes. */
const promptPath = (path: string) =>
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this replaces.
  path.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * Splits the changed files into chunks of at most `budgetTokens` estimated tokens each, keeping
 * files whole where they fit and splitting a file that alone is too large at hunk (`@@`)
 * boundaries, then at line boundaries. Nothing is dropped: every line of every patch lands in
 * exactly one chunk.
 *
 * @param budgetTokens tokens available for the diff in one prompt (> 0)
 * @returns chunks of rendered diff text, in file order
 * @throws RangeError when `budgetTokens` is not positive
 */
export function chunkFiles(files: readonly ChangedFile[], budgetTokens: number): string[] {
  return layoutChunks(files, budgetTokens).map((c) => c.text);
}

/** A chunk of rendered diff text and the paths of the files (or file parts) it holds. */
export interface Chunk {
  readonly text: string;
  readonly paths: readonly string[];
}

/** {@link chunkFiles} with the paths each chunk holds (a file split in parts appears in each part's chunk). */
export function layoutChunks(files: readonly ChangedFile[], budgetTokens: number): Chunk[] {
  if (!(budgetTokens > 0)) throw new RangeError(`token budget must be positive, got ${budgetTokens}`);
  const chunks: Chunk[] = [];
  // Lengths are tracked instead of re-measuring the growing chunk: linear in the size of the change.
  let current: string[] = [];
  let paths: string[] = [];
  let currentLength = 0;
  const flush = () => {
    if (current.length) chunks.push({ text: current.join(''), paths });
    current = [];
    paths = [];
    currentLength = 0;
  };
  for (const file of files) {
    const rendered = renderFile(file);
    if (Math.ceil((currentLength + rendered.length) / CHARS_PER_TOKEN) <= budgetTokens) {
      current.push(rendered);
      paths.push(file.path);
      currentLength += rendered.length;
      continue;
    }
    flush();
    if (estimateTokens(rendered) <= budgetTokens) {
      current = [rendered];
      paths = [file.path];
      currentLength = rendered.length;
      continue;
    }
    for (const piece of splitPatch(file, budgetTokens)) chunks.push({ text: piece, paths: [file.path] });
  }
  flush();
  return chunks;
}

function splitPatch(file: ChangedFile, budgetTokens: number): string[] {
  const lines = numberedLines(file);
  const fence = fenceFor(lines.map((l) => l.text).join('\n'));
  const pieces: string[] = [];
  let part: string[] = [];
  let n = 0;
  const header = (i: number) => `### ${promptPath(file.path)} (${file.status}, part ${i})\n${fence}diff\n`;
  const overhead = estimateTokens(`${header(99)}@@ -000000,0 +000000,0 @@\n${fence}\n`);
  const limit = Math.max(1, budgetTokens - overhead);
  // Characters in `part` joined with newlines, tracked as lines are added (no re-joining per line).
  let partLength = -1;
  const emit = () => {
    if (part.length === 0) return;
    n++;
    pieces.push(`${header(n)}${part.join('\n')}\n${fence}\n`);
    part = [];
    partLength = -1;
  };
  // A part which starts inside a hunk gets a hunk header of its own (the old and new line where
  // its first line lands); every line carries its own number as well.
  const push = (line: string, at: (typeof lines)[number]) => {
    if (part.length === 0 && !at.header && at.inHunk) {
      const h = `@@ -${at.oldLine},0 +${at.newLine},0 @@`;
      part.push(h);
      partLength += h.length + 1;
    }
    part.push(line);
    partLength += line.length + 1;
  };
  const withLine = (line: string) => Math.ceil((partLength + line.length + 1) / CHARS_PER_TOKEN);
  for (const at of lines) {
    const line = at.text;
    if (at.header && part.length > 0 && withLine(line) > limit / 2) emit();
    if (withLine(line) > limit) emit();
    // A single line longer than the budget is cut into pieces rather than dropped.
    let rest = line;
    while (estimateTokens(rest) > limit) {
      const cut = Math.floor(limit * CHARS_PER_TOKEN);
      push(rest.slice(0, cut), at);
      emit();
      rest = rest.slice(cut);
    }
    push(rest, at);
  }
  emit();
  return pieces;
}
