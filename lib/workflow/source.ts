import { type Document, isMap, isNode, isScalar, isSeq, LineCounter, type Node, parseDocument, visit, type YAMLError } from 'yaml';
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
    const seen = new Set<string>();
    for (const err of this.doc.errors) {
      const { offset, message } = syntaxError(this.doc, text, err);
      const { line, col } = this.lines.linePos(offset);
      // One diagnostic per position: the parser often reports one mistake twice.
      if (seen.has(`${line}:${col}`)) continue;
      seen.add(`${line}:${col}`);
      this.diagnostics.push({ file, line, col, message });
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

/**
 * Where a YAML syntax error is reported and what it says. The parser gives the offset where it
 * noticed the mistake (`err.pos`; `linePos` is only set with `prettyErrors`). For a quoted string
 * or a flow collection (`{ … }`, `[ … ]`) that is never closed, that is the end of the file or the
 * next key; the diagnostic points at the opening quote or bracket instead. A line indented too far
 * under a `key: value` is reported at that line.
 */
function syntaxError(doc: Document, text: string, err: YAMLError): { offset: number; message: string } {
  const message = err.message.split('\n')[0] ?? err.message;
  const quote = /^Missing closing (["'])quote/.exec(message)?.[1];
  const flow = /^Flow (map|sequence) in block collection/.exec(message)?.[1];
  if (quote || flow) {
    let opened: Node | undefined;
    visit(doc, (_key, node) => {
      if (!isNode(node) || node.range?.[1] !== err.pos[0]) return undefined;
      const unclosedQuote = quote && isScalar(node) && node.type === (quote === '"' ? 'QUOTE_DOUBLE' : 'QUOTE_SINGLE');
      const unclosedFlow = flow && (isMap(node) || isSeq(node)) && node.flow && isMap(node) === (flow === 'map');
      if (!unclosedQuote && !unclosedFlow) return undefined;
      opened = node;
      return visit.BREAK;
    });
    const start = opened?.range?.[0];
    if (start !== undefined) {
      const message = quote
        ? `the quoted string starting here is never closed: add the closing ${quote}`
        : `the ${flow === 'map' ? '{' : '['} here is never closed: add the closing ${flow === 'map' ? '}' : ']'}`;
      return { offset: start, message };
    }
  }
  if (err.code === 'BLOCK_AS_IMPLICIT_KEY' || err.code === 'MULTILINE_IMPLICIT_KEY') {
    // `key: value` followed by a line indented further: the parser reads the two lines as one
    // value that is then used as a key. The mistake is the indentation of the second line.
    const lineStart = text.lastIndexOf('\n', err.pos[0] - 1) + 1;
    const indent = text.slice(lineStart).search(/\S/);
    const rest = text.slice(err.pos[0]);
    const next = /\n([ \t]*)(?=\S)/.exec(rest);
    const valueOnly = !/^[^\n]*:(\s|$)/.test(rest);
    if (next && valueOnly && (next[1] ?? '').length > indent) {
      return {
        offset: err.pos[0] + next.index + next[0].length,
        message: `this line is indented further than the line above, which has a value already: check the indentation (${message})`,
      };
    }
  }
  // Indentation errors start at the line's leading spaces; point at what is indented.
  const spaces = /^ +(?=\S)/.exec(text.slice(err.pos[0]));
  return { offset: err.pos[0] + (spaces?.[0].length ?? 0), message };
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
