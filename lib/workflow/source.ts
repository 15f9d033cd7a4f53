import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';

/**
 * One problem found in a source file, pointing at a 1-based line and column.
 *
 * Rendered by {@link formatDiagnostic} as `file:line:col: message`, the format editors and CI
 * annotators understand.
 */
export interface Diagnostic {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

/** Renders a diagnostic as `file:line:col: message`. */
export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

/** A path into a YAML document: map keys and sequence indexes. */
export type SourcePath = ReadonlyArray<string | number>;

/**
 * A parsed YAML file that can point at the source position of any value in it.
 *
 * Parse errors (bad indentation, duplicate keys, tabs) are reported as diagnostics with the
 * position the `yaml` package gives; `data` is `undefined` when the file could not be parsed.
 */
export class YamlSource {
  readonly data: unknown;
  readonly diagnostics: Diagnostic[] = [];
  private readonly lines = new LineCounter();
  private readonly doc;

  constructor(
    readonly file: string,
    readonly text: string,
  ) {
    this.doc = parseDocument(text, { lineCounter: this.lines, uniqueKeys: true, prettyErrors: false });
    for (const err of this.doc.errors) {
      const [line, col] = err.linePos?.[0] ? [err.linePos[0].line, err.linePos[0].col] : [1, 1];
      this.diagnostics.push({ file, line, col, message: err.message.split('\n')[0] ?? err.message });
    }
    this.data = this.doc.errors.length === 0 ? this.doc.toJS() : undefined;
  }

  /**
   * The position of the value at `path`, or of its nearest existing ancestor when the value is
   * missing. With `key: true` the position of the map key is returned instead of the value.
   */
  locate(path: SourcePath, opts: { key?: boolean } = {}): { line: number; col: number } {
    let node: unknown = this.doc.contents;
    let offset = rangeStart(node) ?? 0;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        const last = i === path.length - 1;
        if (last && opts.key) {
          offset = rangeStart(pair.key) ?? offset;
          break;
        }
        node = pair.value;
        offset = rangeStart(node) ?? rangeStart(pair.key) ?? offset;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (item === undefined) break;
        node = item;
        offset = rangeStart(node) ?? offset;
      } else {
        break;
      }
    }
    return this.lines.linePos(offset);
  }

  /** A diagnostic at `path`. */
  at(path: SourcePath, message: string, opts: { key?: boolean } = {}): Diagnostic {
    const { line, col } = this.locate(path, opts);
    return { file: this.file, line, col, message };
  }

  /** Turns zod issues into diagnostics, each at the position of the field it names. */
  fromZod(issues: ReadonlyArray<z.core.$ZodIssue>, base: SourcePath = []): Diagnostic[] {
    const out: Diagnostic[] = [];
    for (const issue of issues) {
      const path = [...base, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
      if (issue.code === 'invalid_union' && issue.errors.length > 0) {
        // Report the branch that got furthest: its issues are the most specific.
        const best = [...issue.errors].sort((a, b) => depth(b) - depth(a))[0] ?? [];
        if (best.length > 0 && depth(best) > 0) {
          out.push(...this.fromZod(best, path));
          continue;
        }
      }
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          out.push(this.at([...path, key], `${describe(path)}unknown field "${key}"`, { key: true }));
        }
        continue;
      }
      out.push(this.at(path, `${describe(path)}${issue.message}`));
    }
    return out;
  }
}

function depth(issues: ReadonlyArray<z.core.$ZodIssue>): number {
  return Math.max(0, ...issues.map((i) => i.path.length));
}

function describe(path: SourcePath): string {
  return path.length === 0 ? '' : `${path.join('.')}: `;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return Array.isArray(range) ? range[0] : undefined;
}
