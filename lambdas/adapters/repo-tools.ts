import { BUILTIN_TOOL_SERVER, type BuiltinTool, type Change, type ChangedFile } from '../core/contracts.js';
import { parseHunks } from '../core/hunks.js';
import type { ChangeSource } from '../core/ports.js';
import {
  type AllowedTool,
  cleanToolText,
  inputText,
  MAX_TOOL_INPUT_CHARS,
  MAX_TOOL_OUTPUT_CHARS,
  parseToolName,
  type Toolbox,
  type ToolCallRecord,
  type ToolDefinition,
  toolName,
} from '../core/tools.js';

/** Matches `search` returns at most. */
export const MAX_SEARCH_MATCHES = 50;
/** Longest `search` query, in characters (a longer regular expression is refused). */
export const MAX_SEARCH_QUERY_CHARS = 200;

/** The change the built-in tools read: its changed files as the context artifact holds them (redacted). */
export interface RepoToolsChange {
  readonly change: Change;
  readonly files: readonly ChangedFile[];
}

/** Each built-in tool as a model is offered it: description and input schema. */
const BUILTIN_SPECS: Record<BuiltinTool, { description: string; inputSchema: Record<string, unknown> }> = {
  list_changed_files: {
    description: 'List the files the change under review touches: path, status (added, modified, removed, renamed) and +/- line counts.',
    inputSchema: { type: 'object', properties: {}, additionalProperties: false },
  },
  read_file: {
    description: "Read one of the change's files at its head commit (only files the change touches).",
    inputSchema: {
      type: 'object',
      properties: { path: { type: 'string', description: 'The path as list_changed_files gives it' } },
      required: ['path'],
      additionalProperties: false,
    },
  },
  search: {
    description:
      "Search the changed files' lines at the head commit (the lines the diff shows) for a text (case-insensitive, literal). Returns path:line: text for each match.",
    inputSchema: {
      type: 'object',
      properties: {
        query: { type: 'string', description: `The text to find (case-insensitive), at most ${MAX_SEARCH_QUERY_CHARS} characters` },
      },
      required: ['query'],
      additionalProperties: false,
    },
  },
};

const isBuiltin = (name: string): name is BuiltinTool => Object.hasOwn(BUILTIN_SPECS, name);

/** The head lines a file's patch shows, with their new-file line numbers (added and context lines). */
function headLines(file: ChangedFile): Array<{ line: number; text: string }> {
  const hunks = parseHunks(file.shown ?? file.patch) ?? parseHunks(file.patch) ?? [];
  return hunks.flatMap((h) => h.lines.filter((l) => l.marker === '+' || l.marker === ' ').map((l) => ({ line: l.new, text: l.text })));
}

/**
 * The whole head content of a file when its patch holds all of it: an added file whose one hunk
 * starts at line 1 and adds every line. Undefined otherwise.
 */
function wholeFromPatch(file: ChangedFile): string | undefined {
  if (file.status !== 'added') return undefined;
  const hunks = parseHunks(file.patch);
  const only = hunks?.length === 1 ? hunks[0] : undefined;
  if (only?.oldCount !== 0 || only.newStart > 1 || only.lines.some((l) => l.marker === '-' || l.marker === ' ')) return undefined;
  return only.lines
    .filter((l) => l.marker === '+')
    .map((l) => l.text)
    .join('\n');
}

/**
 * The built-in, read-only tools over the change under review (`server: agentflow`, see
 * `BUILTIN_TOOLS`), as a {@link Toolbox}:
 *
 * - `list_changed_files`: every changed file's path, status and +/- counts (from the context artifact);
 * - `read_file({ path })`: a changed file at the head commit — from the context artifact when its
 *   patch holds the whole file (an added file), else through `readHeadFile` (the forge), else the
 *   file's diff, saying so (also when the forge cannot be read). A path the change does not touch is refused, so nothing outside the
 *   change is read; a removed file has no head content;
 * - `search({ query })`: case-insensitive literal matches over the head lines the diffs show, at
 *   most {@link MAX_SEARCH_MATCHES}. No regular expressions: the lines come from the change's
 *   author, and a backtracking pattern over them could hold the Lambda (`^(a+)+$` on 31 characters
 *   took 66 s), where no timeout can interrupt synchronous matching.
 *
 * Only the tools of `allow` are offered and called; every tool is read-only (`write: false`
 * whatever the allow-list says). Outputs are redacted and capped ({@link cleanToolText}).
 *
 * @example
 * ```ts
 * const tools = new RepoToolbox({ change, files }, [{ name: 'read_file' }], { readHeadFile: (c, p) => source.readHeadFile(c, p) });
 * await tools.call('agentflow__read_file', { path: 'App/Pay.swift' }); // { ok: true, output: '…' }
 * ```
 */
export class RepoToolbox implements Toolbox {
  private readonly allowed: readonly BuiltinTool[];
  private readonly unknown: string[];

  constructor(
    private readonly subject: RepoToolsChange | undefined,
    allow: readonly AllowedTool[],
    private readonly options: {
      /** Reads a file at the change's head commit (the forge's `readHeadFile`). @default - the context artifact only */
      readHeadFile?: ChangeSource['readHeadFile'];
      /** The server name the tools are offered under. @default {@link BUILTIN_TOOL_SERVER} */
      server?: string;
    } = {},
  ) {
    this.allowed = allow.map((a) => a.name).filter(isBuiltin);
    this.unknown = allow.map((a) => a.name).filter((n) => !isBuiltin(n));
  }

  private get server(): string {
    return this.options.server ?? BUILTIN_TOOL_SERVER;
  }

  async definitions(): Promise<ToolDefinition[]> {
    if (!this.subject) return [];
    return this.allowed.map((tool) => ({
      name: toolName(this.server, tool),
      server: this.server,
      tool,
      ...BUILTIN_SPECS[tool],
      write: false,
    }));
  }

  unavailable(): ReadonlyArray<{ server: string; error: string }> {
    if (!this.subject) return [{ server: this.server, error: 'the built-in tools read a change, and this run has none' }];
    if (this.unknown.length > 0) return [{ server: this.server, error: `no built-in tool ${this.unknown.join(', ')}` }];
    return [];
  }

  async close(): Promise<void> {}

  async call(name: string, input: unknown): Promise<ToolCallRecord> {
    const started = Date.now();
    const inputClean = await cleanToolText(inputText(input), MAX_TOOL_INPUT_CHARS);
    const record = async (r: { ok: boolean; output?: string; error?: string; refused?: boolean }): Promise<ToolCallRecord> => {
      const output = r.output === undefined ? undefined : await cleanToolText(r.output, MAX_TOOL_OUTPUT_CHARS);
      return {
        name,
        input: inputClean.text,
        ok: r.ok,
        ...(output ? { output: output.text } : {}),
        ...(r.error ? { error: r.error } : {}),
        ...(r.refused ? { refused: true } : {}),
        redacted: inputClean.redacted + (output?.redacted ?? 0),
        ms: Date.now() - started,
      };
    };
    const parsed = parseToolName(name);
    const tool = parsed?.server === this.server ? this.allowed.find((t) => t === parsed.tool) : undefined;
    if (!tool || !this.subject) return record({ ok: false, refused: true, error: `tool "${name}" is not on this agent's allow-list` });
    const args = input !== null && typeof input === 'object' && !Array.isArray(input) ? (input as Record<string, unknown>) : {};
    const run: Record<BuiltinTool, () => Promise<Parameters<typeof record>[0]>> = {
      list_changed_files: async () => ({ ok: true, output: this.list() }),
      read_file: () => this.read(args.path),
      search: async () => this.search(args.query),
    };
    try {
      return await record(await run[tool]());
    } catch (e) {
      return record({
        ok: false,
        error: `${name} failed: ${(e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 300)}`,
      });
    }
  }

  private list(): string {
    const files = this.subject?.files ?? [];
    if (files.length === 0) return 'The change touches no files.';
    return files
      .map(
        (f) =>
          `${f.path}\t${f.status}${f.previousPath ? ` (from ${f.previousPath})` : ''}\t+${f.additions} -${f.deletions}${f.binary ? '\tbinary' : ''}`,
      )
      .join('\n');
  }

  private async read(path: unknown): Promise<{ ok: boolean; output?: string; error?: string; refused?: boolean }> {
    if (typeof path !== 'string' || path === '')
      return { ok: false, error: 'give the file as {"path": "<a path list_changed_files gives>"}' };
    const subject = this.subject as RepoToolsChange;
    const file = subject.files.find((f) => f.path === path);
    if (!file) return { ok: false, refused: true, error: `${path} is not a file this change touches: only changed files can be read` };
    if (file.status === 'removed') return { ok: false, error: `${path} is removed by the change: it has no content at the head commit` };
    if (file.binary) return { ok: false, error: `${path} is a binary file` };
    let why = '';
    let whole = wholeFromPatch(file);
    try {
      whole ??= await this.options.readHeadFile?.(subject.change, path);
    } catch (e) {
      // The forge could not be read (down, no credentials): the diff still answers most questions.
      why = ` (the forge could not be read: ${(e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 200)})`;
    }
    if (whole !== undefined) return { ok: true, output: whole };
    return {
      ok: true,
      output: `The whole file cannot be read here${why}; its diff at the head commit (${subject.change.headSha.slice(0, 12)}):\n${file.shown ?? file.patch}`,
    };
  }

  private search(query: unknown): { ok: boolean; output?: string; error?: string } {
    if (typeof query !== 'string' || query === '') return { ok: false, error: 'give the search as {"query": "<text>"}' };
    if (query.length > MAX_SEARCH_QUERY_CHARS) return { ok: false, error: `the query is longer than ${MAX_SEARCH_QUERY_CHARS} characters` };
    const needle = query.toLowerCase();
    const test = (line: string) => line.toLowerCase().includes(needle);
    const matches: string[] = [];
    let more = 0;
    for (const file of this.subject?.files ?? []) {
      if (file.binary || file.status === 'removed') continue;
      for (const l of headLines(file)) {
        if (!test(l.text)) continue;
        if (matches.length < MAX_SEARCH_MATCHES) matches.push(`${file.path}:${l.line}: ${l.text.trim()}`);
        else more++;
      }
    }
    if (matches.length === 0) return { ok: true, output: `No match for ${JSON.stringify(query)} in the changed files.` };
    return { ok: true, output: [...matches, ...(more > 0 ? [`[… ${more} more matches]`] : [])].join('\n') };
  }
}
