import type { ChangedFile } from './contracts.js';

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

/** Renders one changed file the way prompts show it. */
export function renderFile(file: ChangedFile): string {
  const header =
    file.status === 'renamed' && file.previousPath
      ? `### ${file.path} (renamed from ${file.previousPath}, +${file.additions} -${file.deletions})`
      : `### ${file.path} (${file.status}, +${file.additions} -${file.deletions})`;
  return `${header}\n\`\`\`diff\n${file.binary ? '(binary file)' : file.patch}\n\`\`\`\n`;
}

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
  const lines = file.patch.split('\n');
  const pieces: string[] = [];
  let part: string[] = [];
  let n = 0;
  // Line numbers in the old and new file where the next line lands, so that a part which starts
  // inside a hunk gets a hunk header of its own and line numbers stay right.
  let oldLine = 0;
  let newLine = 0;
  const header = (i: number) => `### ${file.path} (${file.status}, part ${i})\n\`\`\`diff\n`;
  const overhead = estimateTokens(`${header(99)}@@ -000000,0 +000000,0 @@\n\`\`\`\n`);
  const limit = Math.max(1, budgetTokens - overhead);
  // Characters in `part` joined with newlines, tracked as lines are added (no re-joining per line).
  let partLength = -1;
  const emit = () => {
    if (part.length === 0) return;
    n++;
    pieces.push(`${header(n)}${part.join('\n')}\n\`\`\`\n`);
    part = [];
    partLength = -1;
  };
  const push = (line: string) => {
    if (part.length === 0 && !line.startsWith('@@') && newLine > 0) {
      const h = `@@ -${oldLine},0 +${newLine},0 @@`;
      part.push(h);
      partLength += h.length + 1;
    }
    part.push(line);
    partLength += line.length + 1;
  };
  const withLine = (line: string) => Math.ceil((partLength + line.length + 1) / CHARS_PER_TOKEN);
  for (const line of lines) {
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (hunk && part.length > 0 && withLine(line) > limit / 2) emit();
    if (withLine(line) > limit) emit();
    if (hunk) {
      oldLine = Number(hunk[1]);
      newLine = Number(hunk[2]);
      push(line);
      continue;
    }
    // A single line longer than the budget is cut into pieces rather than dropped.
    let rest = line;
    while (estimateTokens(rest) > limit) {
      const cut = Math.floor(limit * CHARS_PER_TOKEN);
      push(rest.slice(0, cut));
      emit();
      rest = rest.slice(cut);
    }
    push(rest);
    if (line.startsWith('+')) newLine++;
    else if (line.startsWith('-')) oldLine++;
    else {
      oldLine++;
      newLine++;
    }
  }
  emit();
  return pieces;
}
