/**
 * Diff hunks as the prompts show them: a unified patch parsed into hunks with old- and new-file
 * line numbers, widened with context from the file at the head commit, and rendered with a line
 * number on every line (models are poor at counting lines from `@@` headers). Pure functions.
 *
 * The numbered layout, one diff line per prompt line:
 *
 * ```text
 * @@ -10,4 +10,5 @@ func pay()
 *   10   let a = 1
 *   11 + let b = 2
 * (11) - let c = 3
 *   12 + let c = 4
 *   13   return
 * ```
 *
 * a right-aligned number, one space, the marker (`+` added, ` ` context, `-` removed), one space,
 * then the line's text exactly as in the file. Added and context lines carry their number in the
 * new file (the head commit); a removed line has none and carries its old-file number in
 * parentheses. Hunk headers, `\ No newline at end of file` and any line outside a hunk are shown
 * as they are.
 */

/** One line of a hunk with its line numbers (0 where the line has none in that file). */
export interface PatchLine {
  /** `+` added, `-` removed, ` ` context, `\` a "\ No newline at end of file" note. */
  readonly marker: '+' | '-' | ' ' | '\\';
  /** The line without its marker (with its `\r` when the file has CRLF line endings). */
  readonly text: string;
  /** Old-file line number of a context or removed line; 0 otherwise. */
  readonly old: number;
  /** New-file line number of a context or added line; 0 otherwise. */
  readonly new: number;
}

/** One `@@ -oldStart,oldCount +newStart,newCount @@heading` hunk of a unified diff. */
export interface Hunk {
  readonly oldStart: number;
  readonly oldCount: number;
  readonly newStart: number;
  readonly newCount: number;
  /** The text after the closing `@@` (git's function heading, with its leading space), or ''. */
  readonly heading: string;
  readonly lines: readonly PatchLine[];
}

const HUNK_HEADER = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$/;

/**
 * Parses a unified patch (the hunks of one file, as GitHub's `patch` and {@link GitChangeSource}
 * give them) into hunks with line numbers.
 *
 * @returns the hunks, or undefined when the text is not a well-formed patch: a line before the
 *   first header, a line without a diff marker, or a hunk whose lines do not match its counts
 * @example parseHunks('@@ -1 +1,2 @@\n a\n+b')?.[0]?.lines[1] // { marker: '+', text: 'b', old: 0, new: 2 }
 */
export function parseHunks(patch: string): Hunk[] | undefined {
  const hunks: Hunk[] = [];
  let current: { header: Omit<Hunk, 'lines'>; lines: PatchLine[]; old: number; new: number } | undefined;
  const close = () => {
    if (!current) return true;
    const { header, lines } = current;
    const olds = lines.filter((l) => l.marker === ' ' || l.marker === '-').length;
    const news = lines.filter((l) => l.marker === ' ' || l.marker === '+').length;
    if (olds !== header.oldCount || news !== header.newCount) return false;
    hunks.push({ ...header, lines });
    return true;
  };
  const all = patch.split('\n');
  // A patch that ends with a line break has an empty last "line": not a line of the diff.
  if (all.length > 1 && all.at(-1) === '') all.pop();
  for (const line of all) {
    const h = HUNK_HEADER.exec(line);
    if (h) {
      if (!close()) return undefined;
      const header = {
        oldStart: Number(h[1]),
        oldCount: h[2] === undefined ? 1 : Number(h[2]),
        newStart: Number(h[3]),
        newCount: h[4] === undefined ? 1 : Number(h[4]),
        heading: h[5] ?? '',
      };
      current = { header, lines: [], old: firstLine(header.oldStart, header.oldCount), new: firstLine(header.newStart, header.newCount) };
      continue;
    }
    if (!current) return undefined;
    const marker = line[0];
    const text = line.slice(1);
    if (marker === '+') current.lines.push({ marker, text, old: 0, new: current.new++ });
    else if (marker === '-') current.lines.push({ marker, text, old: current.old++, new: 0 });
    else if (marker === ' ') current.lines.push({ marker, text, old: current.old++, new: current.new++ });
    else if (marker === '\\') current.lines.push({ marker, text, old: 0, new: 0 });
    else return undefined;
  }
  return close() ? hunks : undefined;
}

/** The first line a hunk side covers: its start, or the line after it when the side is empty (`-5,0`). */
const firstLine = (start: number, count: number) => (count === 0 ? start + 1 : start);

/** One rendered prompt line of {@link numberLines} and where the patch stands at it. */
export interface NumberedLine {
  /** The line as the prompt shows it. */
  readonly text: string;
  /** The line is a hunk header. */
  readonly header: boolean;
  /** The line lies in a hunk (after a header). */
  readonly inHunk: boolean;
  /** The diff marker of a numbered line (`+` added, ` ` context, `-` removed); absent on headers and unnumbered lines. */
  readonly marker?: '+' | ' ' | '-';
  /** Old- and new-file line numbers where this line lands (a header's starts). */
  readonly oldLine: number;
  readonly newLine: number;
}

/**
 * The lines of `patch` in the numbered layout (see the module docstring). Lenient: any line it
 * cannot number (before the first header, without a marker) is kept as it is, so nothing is
 * dropped. Linear in the size of the patch. `patch` should already be normalised
 * (`normalizePatch`): a `\r` is not a line break here.
 *
 * @example numberLines('@@ -9,2 +9,2 @@\n-a\n+b\n c').map((l) => l.text)
 * // ['@@ -9,2 +9,2 @@', '(9) - a', '  9 + b', ' 10   c']
 */
export function numberLines(patch: string): NumberedLine[] {
  const raw = patch.split('\n');
  // First pass: the numbers, and the widest number column they need.
  const numbers: Array<{ header: boolean; inHunk: boolean; oldLine: number; newLine: number; label?: string }> = [];
  let oldLine = 0;
  let newLine = 0;
  let inHunk = false;
  let width = 1;
  for (const line of raw) {
    const h = HUNK_HEADER.exec(line);
    if (h) {
      oldLine = Number(h[1]);
      newLine = Number(h[3]);
      inHunk = true;
      numbers.push({ header: true, inHunk, oldLine, newLine });
      continue;
    }
    const at = { header: false, inHunk, oldLine, newLine };
    const c = line[0];
    if (!inHunk || (c !== '+' && c !== '-' && c !== ' ')) {
      numbers.push(at);
      continue;
    }
    const label = c === '-' ? `(${oldLine})` : String(newLine);
    width = Math.max(width, label.length);
    numbers.push({ ...at, label });
    if (c !== '-') newLine++;
    if (c !== '+') oldLine++;
  }
  return raw.map((line, i) => {
    const n = numbers[i] as (typeof numbers)[number];
    if (n.label === undefined) return { text: line, header: n.header, inHunk: n.inHunk, oldLine: n.oldLine, newLine: n.newLine };
    const marker = line[0] as '+' | ' ' | '-';
    const text = `${n.label.padStart(width)} ${marker} ${line.slice(1)}`;
    return { text, header: n.header, inHunk: n.inHunk, oldLine: n.oldLine, newLine: n.newLine, marker };
  });
}

/**
 * The new-file lines of a patch that a reviewer sees (added and context lines), each with the
 * 1-based index of its hunk: the lines placement keeps findings on, and (for the real patch) the
 * lines a forge accepts comments on, a multi-line comment staying inside one hunk. `patch` is
 * normalised (`normalizePatch`), as for {@link numberLines}.
 */
export function lineHunks(patch: string): Map<number, number> {
  const lines = new Map<number, number>();
  let hunk = 0;
  for (const l of numberLines(patch)) {
    if (l.header) hunk++;
    else if (l.marker === '+' || l.marker === ' ') lines.set(l.newLine, hunk);
  }
  return lines;
}

/** How much of the head file the prompts show around each hunk (the workflow's `context:`). */
export interface ContextOptions {
  /**
   * Lines of context below each change, and above it when no enclosing declaration is found.
   * @default 20
   */
  readonly lines: number;
  /** A head file of at most this many lines is shown whole; 0: never. @default 150 */
  readonly wholeFileLines: number;
  /**
   * Start the context above a change at its enclosing declaration (see {@link enclosingDeclaration}).
   * @default true
   */
  readonly enclosing: boolean;
}

/** The default context: the enclosing declaration or 20 lines above, 20 below, small files (≤ 150 lines) whole. */
export const DEFAULT_CONTEXT: ContextOptions = { lines: 20, wholeFileLines: 150, enclosing: true };

/** No context beyond git's: the plain patch. */
export const NO_CONTEXT: ContextOptions = { lines: 0, wholeFileLines: 0, enclosing: false };

/** How far above a change {@link enclosingDeclaration} looks, in lines. */
export const ENCLOSING_SEARCH_LINES = 60;

/**
 * A line that starts a declaration in Swift, Kotlin, Java, Objective-C, TypeScript/JavaScript or
 * Python: after modifiers and annotations, one of func/fun/class/struct/enum/extension/protocol/
 * interface/object/init/deinit/def/function/actor/record/constructor, or `@implementation` /
 * `@interface` / `- (…)` / `+ (…)` (Objective-C). Java-style methods: {@link isJavaMethod}. Every
 * alternative is linear (no nested quantifiers over overlapping classes).
 */
const DECLARATION =
  /^\s*(?:(?:@\w+(?:\([^)]*\))?|public|private|protected|internal|fileprivate|open|static|final|abstract|override|sealed|data|inline|suspend|export|default|async|mutating|nonmutating|convenience|required|lazy|class|companion|enum|inner|value|operator|infix|tailrec|external|actual|expect|synchronized|native|readonly|declare)\s+)*(?:func|fun|class|struct|enum|extension|protocol|interface|object|init|deinit|def|function|actor|record|constructor|subscript)\b|^\s*@(?:implementation|interface|protocol)\b|^\s*[-+]\s*\(/;

/** Java modifiers that may start a method declaration (see {@link isJavaMethod}). */
const JAVA_MODIFIERS = new Set(['public', 'private', 'protected', 'static', 'final', 'abstract', 'synchronized']);

/**
 * A Java-style method declaration `modifiers… Type name(…` with no `;` (a call or a field is not
 * one): split into words rather than matched by one pattern, so a crafted line cannot make the
 * test backtrack (it is linear in the line's length).
 */
function isJavaMethod(line: string): boolean {
  if (line.includes(';')) return false;
  const paren = line.indexOf('(');
  if (paren < 0) return false;
  const words = line.slice(0, paren).trim().split(/\s+/);
  let i = 0;
  while (i < words.length && JAVA_MODIFIERS.has(words[i] as string)) i++;
  if (i === 0 || words.length - i < 2) return false;
  const name = words[words.length - 1] as string;
  return /^\w+$/.test(name) && words.slice(i, -1).every((w) => /^[\w<>[\],.?]+$/.test(w));
}

/** Longest line {@link enclosingDeclaration} tests as a declaration. */
const MAX_DECLARATION_CHARS = 300;

/** Indentation width of a line: spaces count 1, tabs 4. */
function indentation(line: string): number {
  let n = 0;
  for (const c of line) {
    if (c === ' ') n++;
    else if (c === '\t') n += 4;
    else break;
  }
  return n;
}

/**
 * The 1-based line of the declaration that encloses line `at` of `lines`: the nearest line above
 * it, at most {@link ENCLOSING_SEARCH_LINES} lines up, that is less indented than `text` (the
 * changed line) and starts a declaration (see `DECLARATION`), or undefined when there is none.
 */
export function enclosingDeclaration(lines: readonly string[], at: number, text: string): number | undefined {
  const indent = indentation(text);
  if (indent === 0) return undefined;
  for (let n = Math.min(at - 1, lines.length); n >= Math.max(1, at - ENCLOSING_SEARCH_LINES); n--) {
    const line = lines[n - 1] ?? '';
    if (line.trim() === '' || indentation(line) >= indent) continue;
    // Declarations are short lines; the length bound also keeps the pattern's backtracking small.
    if (line.length <= MAX_DECLARATION_CHARS && (DECLARATION.test(line) || isJavaMethod(line))) return n;
  }
  return undefined;
}

/** The result of {@link widenPatch}. */
export interface Widened {
  /** The patch with context lines from the head file, in unified diff form. */
  readonly patch: string;
  /** The head-file lines it added (not in the original patch), for a caller that counts what they hold. */
  readonly context: readonly string[];
}

/**
 * Widens each hunk of `patch` with unchanged lines of `head` (the file at the head commit):
 *
 * - a head file of at most `wholeFileLines` lines is shown whole;
 * - otherwise each hunk starts at the declaration enclosing its first change (`enclosing`, see
 *   {@link enclosingDeclaration}) or `lines` lines above it, and ends `lines` lines below its
 *   last change (never less than git's own context);
 * - widened hunks that overlap or touch merge into one hunk with a correct `@@ -a,b +c,d @@`
 *   header (git's heading is kept when it still names a line above the hunk).
 *
 * Context lines come from `head` (unchanged lines, so their old-file numbers follow by offset).
 * `\r` stays where the patch and head have it (`normalizePatch` handles it when rendering).
 * Linear in the size of the patch and the head file.
 *
 * @returns the widened patch, or undefined when there is nothing to widen or `head` does not
 *   match `patch` (a context or added line differs from the head line at that number: a stale
 *   patch or a redaction that differs), so the caller keeps the plain patch
 */
export function widenPatch(patch: string, head: string, options: ContextOptions = DEFAULT_CONTEXT): Widened | undefined {
  const hunks = parseHunks(patch);
  if (!hunks || hunks.length === 0 || head === '') return undefined;
  const lines = head.split('\n');
  const finalNewline = head.endsWith('\n');
  if (finalNewline) lines.pop();
  const total = lines.length;
  for (const h of hunks) {
    for (const l of h.lines) if (l.new > 0 && lines[l.new - 1] !== l.text) return undefined;
    if (firstLine(h.newStart, h.newCount) + h.newCount - 1 > total) return undefined;
  }
  const whole = total <= options.wholeFileLines;

  // The new-file range each hunk is widened to.
  const ranges = hunks.map((h) => {
    const first = firstLine(h.newStart, h.newCount);
    const last = first + h.newCount - 1;
    if (whole) return { top: 1, bottom: total };
    let changedFirst: PatchLine | undefined;
    let topAt = first;
    let bottomAt = last;
    let next = first;
    for (const l of h.lines) {
      if (l.marker === '+' || l.marker === '-') {
        if (!changedFirst) {
          changedFirst = l;
          topAt = l.marker === '+' ? l.new : next;
        }
        bottomAt = l.marker === '+' ? l.new : next - 1;
      }
      if (l.new > 0) next = l.new + 1;
    }
    const declaration = options.enclosing && changedFirst ? enclosingDeclaration(lines, topAt, changedFirst.text) : undefined;
    const top = Math.max(1, Math.min(first, declaration ?? topAt - options.lines));
    const bottom = Math.min(total, Math.max(last, bottomAt + options.lines));
    return { top, bottom };
  });

  // Merge overlapping or touching ranges; each group keeps its hunks in order.
  const groups: Array<{ top: number; bottom: number; hunks: Hunk[] }> = [];
  hunks.forEach((h, i) => {
    const r = ranges[i] as { top: number; bottom: number };
    const prev = groups.at(-1);
    if (prev && r.top <= prev.bottom + 1) {
      prev.bottom = Math.max(prev.bottom, r.bottom);
      prev.hunks.push(h);
    } else groups.push({ top: r.top, bottom: r.bottom, hunks: [h] });
  });

  const out: string[] = [];
  const context: string[] = [];
  for (const g of groups) {
    const body: string[] = [];
    let oldCount = 0;
    let newCount = 0;
    let pos = g.top;
    const addContext = (until: number) => {
      for (; pos <= until; pos++) {
        const line = lines[pos - 1] ?? '';
        body.push(` ${line}`);
        context.push(line);
        oldCount++;
        newCount++;
      }
    };
    const h0 = g.hunks[0] as Hunk;
    const first0 = firstLine(h0.newStart, h0.newCount);
    addContext(first0 - 1);
    const above = context.slice(context.length - body.length);
    for (const h of g.hunks) {
      addContext(firstLine(h.newStart, h.newCount) - 1);
      for (const l of h.lines) body.push(`${l.marker}${l.text}`);
      oldCount += h.oldCount;
      newCount += h.newCount;
      pos = firstLine(h.newStart, h.newCount) + h.newCount;
    }
    const beforeTail = pos;
    addContext(g.bottom);
    if (pos > beforeTail && pos - 1 === total && !finalNewline) body.push('\\ No newline at end of file');
    const oldTop = g.top + (firstLine(h0.oldStart, h0.oldCount) - first0);
    const heading = h0.heading.trim();
    const keepHeading = heading === '' || !above.some((l) => l.trim().startsWith(heading));
    out.push(
      `@@ -${oldCount === 0 ? oldTop - 1 : oldTop},${oldCount} +${newCount === 0 ? g.top - 1 : g.top},${newCount} @@${keepHeading ? h0.heading : ''}`,
      ...body,
    );
  }
  return { patch: out.join('\n'), context };
}
