import type { ChangedFile } from './contracts.js';
import { lineHunks } from './hunks.js';
import { normalizePatch } from './tokens.js';

/**
 * The new-file line numbers the prompts show for a changed file: added lines and the context lines
 * around them (what a reviewer sees and can comment on), from `shown` (the patch with the context
 * LoadContext added from the head commit) when there is one, else from `patch`. Removed lines have
 * no new-file line. `\r\n` is one line break, as git counts lines.
 */
export function shownLines(file: Pick<ChangedFile, 'patch' | 'shown'>): Set<number> {
  // The prompts' own numbering (`numberLines`): a finding's line is a number the model was shown.
  return new Set(lineHunks(normalizePatch(file.shown ?? file.patch)).keys());
}

/** The result of {@link placeFindings}. */
export interface Placement<T> {
  findings: T[];
  /** Findings moved to file level (line 0) because their file or line is not in the diff. */
  relocated: number;
}

/**
 * Puts every finding where the diff is: a finding on a file of the change and a line the diff
 * shows (added or context) stays; a path written with `./`, `a/` or `b/` is mapped to the changed
 * file; any other line becomes a file-level note (line 0), and a file not in the change keeps its
 * name but at file level — never a line comment at a wrong place. Counts what it moved.
 */
export function placeFindings<T extends { file: string; line: number }>(
  findings: readonly T[],
  files: readonly ChangedFile[],
): Placement<T> {
  const byPath = new Map(files.map((f) => [f.path, f]));
  const shown = new Map<string, Set<number>>();
  let relocated = 0;
  const placed = findings.map((f) => {
    const path = byPath.has(f.file) ? f.file : f.file.replace(/^(?:\.\/|[ab]\/)/, '');
    const file = byPath.get(path);
    if (f.line === 0) return file ? { ...f, file: path } : f;
    if (!file) {
      relocated++;
      return { ...f, line: 0 };
    }
    let lines = shown.get(path);
    if (!lines) {
      lines = shownLines(file);
      shown.set(path, lines);
    }
    if (lines.has(f.line)) return { ...f, file: path };
    relocated++;
    return { ...f, file: path, line: 0 };
  });
  return { findings: placed, relocated };
}
