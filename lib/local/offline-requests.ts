import { DATA_CLOSE, DATA_OPEN } from '../../lambdas/core/prompt.js';
import type { OfflineTool, OfflineToolCall, OfflineToolResult, OfflineToolTurn } from './offline-tools.js';

/**
 * How the offline model server answers the agents of a `request` run (issue 15): a deterministic
 * stand-in, not a model. It reads the system prompt that `answerSystemPrompt` / `routeSystemPrompt`
 * (lambdas/core/answer.ts) build, the user message of `requestMessage` (the request and the earlier
 * answers between their data boundaries) and the tool results of the conversation, and applies the
 * rules below. The agent's prompt (the system prompt before `## Answer format`) may hold lines that
 * steer the rules; each is one line, anywhere in the prompt, case-insensitive:
 *
 * | line | for | effect |
 * |---|---|---|
 * | `- <choice>: word, word, …` | route | the keywords of a route choice |
 * | `Data fields: amount_usd (number), order_id (string), refund (boolean), verdict (pass\|fail)` | answer | the fields of `data` |
 * | `Fail when: word, word, …` | answer | an enum field takes its second value |
 * | `Offline: call <tool> when word, word, …` | both | a tool to call (`<tool>` the offered name `<server>__<tool>` or the tool's own name; without `when …` always) |
 *
 * **Words.** Text is compared by lower-case words (`[a-z0-9]+`) cut to a simple stem (`refunds`,
 * `refunded`, `refunding` → `refund`; `charges`, `charged` → `charg`); a keyword of several words
 * matches those words in a row.
 *
 * **Route** (`{"route", "reason"}`): each choice of the answer format scores the number of its
 * keywords (its `- <choice>:` line, and its own name, `-`/`_` read as spaces) that occur in the
 * request; the highest score wins, a tie the choice named first in the answer format; no keyword at
 * all → the default of the answer format (`When none fits, choose "…"`).
 *
 * **Answer** (`{"answer", "data"}`): the answer is Markdown naming the agent, quoting the first line
 * of every tool result (`` - `<tool>`: <first line> ``, `(error)` after the name of an error
 * result; `No tool was called.` without any), the phases whose answers it read, and the data. Each
 * field of `data`, by its type:
 * - `number`: the number after the field's own name in the tool results, the latest first
 *   (`amount_usd: 150`); else,
 *   when a word of the name is about money (amount, usd, price, total, cost, refund, charge, fee,
 *   balance), the first money amount (`$150`, `150 USD`, `150.00`) in the tool results, the earlier
 *   answers, the request; otherwise the number after the name's first word that is not id/key/number
 *   (`pr` → `PR 42`, `PR #42`, also "pull request 42", "MR 42"; `pipeline_id` → `pipeline 7781`) in
 *   the request, the earlier answers, the tool results (the latest first); else null.
 * - `string`: an id: the token with a digit after the name's first word that is not id/key/number
 *   (`order_id` → `order 1234` / `order #1234` → `1234`, `order ORD-1234` → `ORD-1234`; `issue_key`
 *   → `ISSUE-7`, the word and its number in one token), else the first `#1234` (→ `1234`) or
 *   `ABC-123` token — searched in the request, the earlier answers, then the tool results, the
 *   latest first (a key a write tool answered wins over one a search listed); else null.
 * - `boolean`: true when every word of the name except is/has/needs/should/wants occurs in the request.
 * - `a|b|…` (an enum): the first value, or the second when a `Fail when:` word occurs in the request
 *   or an earlier answer.
 * - any other type: null.
 *
 * **Tool calls** (no `call` / `repeat` directive in the task: those come first, see
 * offline-tools.ts): with `Offline: call` lines (one per tool), the offered tools they name whose
 * `when` words (any) occur in the request (a line naming a tool that is not offered calls nothing);
 * without, each offered tool whose own name's words (after `__`, split on `_` and `-`, without
 * get/list/search/find/read/fetch/query/lookup/show/create/add/make/update/set) occur at least half
 * in the request. They are called in the order offered, once each (a tool with a
 * result, even an error, is done); then the agent answers. The input has each property of the
 * tool's input schema that a value is found for: numbers and ids as for `data` (money from the
 * request first, then the tool results); strings named title/summary/subject/name/query/q/topic →
 * the request's first sentence (≤ 80 characters); body/description/text/content/details/message/
 * comment/note → the request (≤ 500); an enum → its first value; other strings → an id when one is
 * near the name, else the first sentence; booleans as for `data`.
 */

/** A request agent as its system prompt says: an answer agent, or a route agent with its choices and default. */
export type RequestAgent =
  | { readonly kind: 'answer'; readonly prompt: string }
  | { readonly kind: 'route'; readonly prompt: string; readonly choices: readonly string[]; readonly fallback: string };

/** The parts of a request agent's user message (`requestMessage`). */
export interface RequestParts {
  /** The `Agent:` header, or `agent`. */
  readonly agent: string;
  /** The request: the first data block (the whole message without header and directive lines when it has none). */
  readonly request: string;
  /** The earlier answers: each later data block with the phase of its `Earlier answer of phase "<phase>":` line. */
  readonly earlier: ReadonlyArray<{ readonly phase: string; readonly text: string }>;
}

/** A request agent's answer: a route, or an answer with data. */
export type OfflineRequestAnswer =
  | { route: string; reason: string }
  | { answer: string; data: Record<string, string | number | boolean | null> };

const FORMAT_HEADING = '\n## Answer format\n';

/** The request agent `system` is for, or undefined when it is not of `answerSystemPrompt` / `routeSystemPrompt`. */
export function requestAgentOf(system: string): RequestAgent | undefined {
  const at = system.lastIndexOf(FORMAT_HEADING);
  if (at < 0) return undefined;
  const prompt = system.slice(0, at);
  const format = system.slice(at);
  if (/^\{"answer": "<your answer/m.test(format)) return { kind: 'answer', prompt };
  if (!/^\{"route": "<one of the choices>"/m.test(format)) return undefined;
  const listed = /one of (.*)\. Answer with one JSON object/.exec(format)?.[1] ?? '';
  const choices = [...listed.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '').filter(Boolean);
  const fallback = /^When none fits, choose "([^"]*)"\.$/m.exec(format)?.[1] ?? choices[0] ?? '';
  return { kind: 'route', prompt, choices, fallback };
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const FENCE = new RegExp(`<<<${escapeRegExp(DATA_OPEN)}([0-9a-f]+)>>>\\n([\\s\\S]*?)\\n?<<<${escapeRegExp(DATA_CLOSE)}\\1>>>`, 'g');
const HEADER_LINE = /^(Agent|Requested by): .*$|^\s*(call|repeat)\s+[a-zA-Z0-9_-]+.*$/gm;

/** Reads a request agent's user message (see {@link RequestParts}). */
export function requestParts(task: string): RequestParts {
  const agent = /^Agent: (.+)$/m.exec(task)?.[1]?.trim() ?? 'agent';
  const blocks = [...task.matchAll(FENCE)];
  if (blocks.length === 0) return { agent, request: task.replace(HEADER_LINE, '').trim(), earlier: [] };
  const earlier = blocks.slice(1).map((b) => {
    const before = task.slice(0, b.index).trimEnd().split('\n').at(-1) ?? '';
    return { phase: /Earlier answer of phase "(.+)":$/.exec(before)?.[1] ?? 'earlier', text: b[2] ?? '' };
  });
  return { agent, request: blocks[0]?.[2] ?? '', earlier };
}

/**
 * A word's simple stem: lower case; `-ies` → `-y`, `-es` after s/x/z/ch/sh and `-s` (not `-ss`)
 * dropped; then `-ing` / `-ed` dropped (a doubled last consonant other than l, s, z made single);
 * then a final `-e`. Enough to match refund/refunds/refunded and charge/charges/charged.
 */
export function stem(word: string): string {
  let w = word.toLowerCase();
  if (w.length > 4 && w.endsWith('ies')) w = `${w.slice(0, -3)}y`;
  else if (/(s|x|z|ch|sh)es$/.test(w) && w.length > 4) w = w.slice(0, -2);
  else if (w.length > 3 && w.endsWith('s') && !w.endsWith('ss')) w = w.slice(0, -1);
  const cut = w.length > 5 && w.endsWith('ing') ? 3 : w.length > 4 && w.endsWith('ed') ? 2 : 0;
  if (cut > 0) {
    w = w.slice(0, -cut);
    if (/([b-df-hj-km-np-rtv-y])\1$/.test(w)) w = w.slice(0, -1);
  }
  if (w.length > 3 && w.endsWith('e')) w = w.slice(0, -1);
  return w;
}

/** The stems of the words of `text`, in order. */
const stems = (text: string): string[] => (text.toLowerCase().match(/[a-z0-9]+/g) ?? []).map(stem);

/** Whether `phrase` (one or more words) occurs in `words` (stems), its words in a row. */
function hasPhrase(words: readonly string[], phrase: string): boolean {
  const p = stems(phrase);
  if (p.length === 0) return false;
  for (let i = 0; i + p.length <= words.length; i++) if (p.every((s, j) => words[i + j] === s)) return true;
  return false;
}

/** The comma-separated items of the first line `<label>: …` of `prompt` (case-insensitive), or undefined. */
function listLine(prompt: string, label: string): string[] | undefined {
  const m = new RegExp(`^\\s*${label}:\\s*(.+)$`, 'im').exec(prompt);
  return m?.[1]
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The route of a route agent for a request (see the module's rules). */
export function offlineRoute(agent: Extract<RequestAgent, { kind: 'route' }>, request: string): { route: string; reason: string } {
  const words = stems(request);
  const lines = [...agent.prompt.matchAll(/^\s*[-*]\s*([^:\n]+?)\s*:\s*(.+)$/gm)];
  let best: { choice: string; hits: string[] } | undefined;
  for (const choice of agent.choices) {
    const keywords = lines
      .filter((l) => (l[1] ?? '').toLowerCase() === choice.toLowerCase())
      .flatMap((l) => (l[2] ?? '').split(','))
      .map((k) => k.trim())
      .filter(Boolean);
    const hits = [...new Set([choice.replace(/[-_]/g, ' '), ...keywords])].filter((k) => hasPhrase(words, k));
    if (hits.length > (best?.hits.length ?? 0)) best = { choice, hits };
  }
  if (!best) {
    return { route: agent.fallback, reason: `No keyword of ${agent.choices.join(', ')} occurs in the request: the default.` };
  }
  return { route: best.choice, reason: `The request mentions ${best.hits.map((h) => `"${h}"`).join(', ')}.` };
}

/** A field of an answer's `data`, as the prompt's `Data fields:` line declares it. */
export interface DataField {
  readonly name: string;
  /** `number`, `string`, `boolean`, or the values of an enum. */
  readonly type: 'number' | 'string' | 'boolean' | readonly string[] | 'other';
}

/** The fields of the prompt's `Data fields:` line (none without one). */
export function dataFields(prompt: string): DataField[] {
  return (listLine(prompt, 'Data fields') ?? []).flatMap((item) => {
    const m = /^([A-Za-z0-9_]+)\s*(?:\(\s*([^)]*?)\s*\))?$/.exec(item);
    if (!m?.[1]) return [];
    const t = (m[2] ?? 'string').toLowerCase();
    const type: DataField['type'] = t.includes('|')
      ? (m[2] ?? '').split('|').map((v) => v.trim())
      : t === 'number' || t === 'integer'
        ? 'number'
        : t === 'string' || t === 'boolean'
          ? t
          : 'other';
    return [{ name: m[1], type }];
  });
}

/** Texts to search, in order. */
type Sources = readonly string[];

const MONEY_WORDS = new Set(['amount', 'usd', 'price', 'total', 'cost', 'refund', 'charge', 'fee', 'balance']);
const ID_WORDS = new Set(['id', 'key', 'number', 'no', 'ref']);
const FLAG_WORDS = new Set(['is', 'has', 'needs', 'need', 'should', 'wants']);
const PR_WORDS = new Set(['pr', 'pull', 'mr', 'merge']);
const NUMBER = String.raw`(\d[\d,]*(?:\.\d+)?)`;
const MONEY = new RegExp(String.raw`\$\s?${NUMBER}|${NUMBER}\s?(?:usd|dollars?)\b|\b(\d+\.\d{2})\b`, 'i');

const toNumber = (s: string) => Number(s.replace(/,/g, ''));
const nameWords = (name: string) =>
  name
    .toLowerCase()
    .split(/[_\-\s]+/)
    .filter(Boolean);

/** The first money amount in the first source that has one. */
function moneyIn(sources: Sources): number | undefined {
  for (const text of sources) {
    const m = MONEY.exec(text);
    const n = m ? toNumber(m[1] ?? m[2] ?? m[3] ?? '') : Number.NaN;
    if (Number.isFinite(n)) return n;
  }
  return undefined;
}

/** The number after `name` itself (`amount_usd: 150`, `"amount_usd": 150`) in the first source that has one. */
function namedNumberIn(name: string, sources: Sources): number | undefined {
  const re = new RegExp(String.raw`\b${escapeRegExp(name)}\b["']?\s*[:=]\s*\$?${NUMBER}`, 'i');
  for (const text of sources) {
    const m = re.exec(text);
    if (m?.[1]) return toNumber(m[1]);
  }
  return undefined;
}

/** The pattern of the words that name `word` in text: `pr` also as pull/merge request and MR. */
const wordPattern = (word: string) => (PR_WORDS.has(word) ? '(?:pr|pull request|merge request|mr)' : `${escapeRegExp(word)}s?`);

/** The number after `word` (`PR 42`, `PR #42`, `pipeline: 7781`) in the first source that has one. */
function numberAfter(word: string, sources: Sources): number | undefined {
  const re = new RegExp(String.raw`\b${wordPattern(word)}\b\s*(?:no\.?|number|id)?\s*[:#!-]?\s*(\d+(?:\.\d+)?)\b`, 'i');
  for (const text of sources) {
    const m = re.exec(text);
    if (m?.[1]) return Number(m[1]);
  }
  return undefined;
}

/** The id-like token (with a digit) after `word` (`order 1234`, `order #1234`, `order ORD-1234`) in the first source that has one. */
function idAfter(word: string, sources: Sources): string | undefined {
  const w = wordPattern(word);
  // `ISSUE-1` is the word and its number in one token; else a token with a digit after the word.
  const re = new RegExp(
    String.raw`\b(${w}-\d[A-Za-z0-9-]*)|\b${w}\b\s*(?:no\.?|number|id)?\s*[:#!]?\s*((?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9-]*)`,
    'i',
  );
  for (const text of sources) {
    const m = re.exec(text);
    const id = m?.[1] ?? m?.[2];
    if (id) return id;
  }
  return undefined;
}

/** The first `#1234` (→ `1234`) or `ABC-123` token in the first source that has one. */
function anyId(sources: Sources): string | undefined {
  for (const text of sources) {
    const m = /#(\d+)\b|\b([A-Z][A-Z0-9]*-\d+)\b/.exec(text);
    if (m) return m[1] ?? m[2];
  }
  return undefined;
}

/** The first word of a field's name that says what it is about (`order_id` → `order`), or undefined (`id`). */
const subjectWord = (name: string) => nameWords(name).find((w) => !ID_WORDS.has(w));

/** The id a string field names (see the module's rules). */
function idFor(name: string, sources: Sources): string | undefined {
  const word = subjectWord(name);
  return (word ? idAfter(word, sources) : undefined) ?? anyId(sources);
}

/** Whether every word of a flag's name (without is/has/needs/should/wants) occurs in `request`. */
function flagFor(name: string, request: string): boolean {
  const words = stems(request);
  const wanted = nameWords(name).filter((w) => !FLAG_WORDS.has(w));
  return wanted.length > 0 && wanted.every((w) => words.includes(stem(w)));
}

/** What the rules read: the request, the earlier answers and the tool results. */
interface Evidence {
  readonly parts: RequestParts;
  readonly results: readonly OfflineToolResult[];
}

/** The value of one data field (see the module's rules). */
function dataValue(field: DataField, prompt: string, e: Evidence): string | number | boolean | null {
  const tools = e.results.map((r) => r.text);
  const latest = [...tools].reverse();
  const earlier = e.parts.earlier.map((x) => x.text);
  if (field.type === 'number') {
    const word = subjectWord(field.name) ?? '';
    const money = nameWords(field.name).some((w) => MONEY_WORDS.has(w));
    const found = money ? moneyIn([...tools, ...earlier, e.parts.request]) : numberAfter(word, [e.parts.request, ...earlier, ...latest]);
    return namedNumberIn(field.name, latest) ?? found ?? null;
  }
  if (field.type === 'string') return idFor(field.name, [e.parts.request, ...earlier, ...latest]) ?? null;
  if (field.type === 'boolean') return flagFor(field.name, e.parts.request);
  if (Array.isArray(field.type)) {
    const data = stems([e.parts.request, ...earlier].join('\n'));
    const fail = (listLine(prompt, 'Fail when') ?? []).some((w) => hasPhrase(data, w));
    return (fail ? field.type[1] : undefined) ?? field.type[0] ?? null;
  }
  return null;
}

const firstLine = (text: string) => (text.trim().split('\n')[0] ?? '').trim().slice(0, 200);

/** An answer agent's answer (see the module's rules). */
export function offlineAgentAnswer(
  prompt: string,
  e: Evidence,
): { answer: string; data: Record<string, string | number | boolean | null> } {
  const data: Record<string, string | number | boolean | null> = {};
  for (const f of dataFields(prompt)) data[f.name] = dataValue(f, prompt, e);
  const lines = [`**${e.parts.agent}**: answered by the AgentFlow offline model (a rule-based stand-in, not a model).`, ''];
  if (e.results.length === 0) lines.push('No tool was called.');
  else lines.push('Tool results:', ...e.results.map((r) => `- \`${r.name}\`${r.isError ? ' (error)' : ''}: ${firstLine(r.text)}`));
  if (e.parts.earlier.length > 0) lines.push('', `Earlier answers read: ${e.parts.earlier.map((x) => x.phase).join(', ')}.`);
  const shown = Object.entries(data).map(([k, v]) => `${k} = ${JSON.stringify(v)}`);
  if (shown.length > 0) lines.push('', `Data: ${shown.join(', ')}.`);
  return { answer: lines.join('\n'), data };
}

/**
 * The offline model's answer to a request agent — `{"route", "reason"}` or `{"answer", "data"}` as
 * JSON — or undefined when `system` is not a request agent's (see the module's rules).
 */
export function offlineRequestAnswer(system: string, task: string, results: readonly OfflineToolResult[]): string | undefined {
  const agent = requestAgentOf(system);
  if (!agent) return undefined;
  const parts = requestParts(task);
  const answer: OfflineRequestAnswer =
    agent.kind === 'route' ? offlineRoute(agent, parts.request) : offlineAgentAnswer(agent.prompt, { parts, results });
  return JSON.stringify(answer);
}

/** Access verbs a tool's name has that say nothing of what it is about. */
const VERBS = new Set([
  'get',
  'list',
  'search',
  'find',
  'read',
  'fetch',
  'query',
  'lookup',
  'show',
  'create',
  'add',
  'make',
  'update',
  'set',
]);

/** The offered tools a request agent calls, in the order offered (see the module's rules). */
export function chosenTools(prompt: string, request: string, offered: readonly OfflineTool[]): OfflineTool[] {
  const words = stems(request);
  const lines = [...prompt.matchAll(/^\s*Offline:\s*call\s+([A-Za-z0-9_-]+)(?:\s+when\s+(.+?))?\s*$/gim)].map((m) => ({
    tool: m[1] ?? '',
    when: (m[2] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  }));
  if (lines.length > 0) {
    return offered.filter((t) =>
      lines.some(
        (l) => (t.name === l.tool || t.name.endsWith(`__${l.tool}`)) && (l.when.length === 0 || l.when.some((w) => hasPhrase(words, w))),
      ),
    );
  }
  return offered.filter((t) => {
    const own = nameWords(t.name.split('__').at(-1) ?? '').filter((w) => !VERBS.has(w));
    return own.length > 0 && own.filter((w) => words.includes(stem(w))).length * 2 >= own.length;
  });
}

const STRING_SENTENCE = new Set(['title', 'summary', 'subject', 'name', 'query', 'q', 'topic']);
const STRING_WHOLE = new Set(['body', 'description', 'text', 'content', 'details', 'message', 'comment', 'note']);

/** The request's first sentence (its first line up to `.`, `!` or `?`), at most `max` characters. */
function firstSentence(request: string, max: number): string {
  const line = request.trim().split('\n')[0] ?? '';
  const m = /^.*?[.!?](?=\s|$)/.exec(line);
  return (m?.[0] ?? line).trim().slice(0, max).trim();
}

/** The input of a tool call, from its input schema's properties (see the module's rules). */
export function offlineToolInput(tool: OfflineTool, e: Evidence): Record<string, unknown> {
  const properties = tool.inputSchema.properties;
  const input: Record<string, unknown> = {};
  if (!properties || typeof properties !== 'object') return input;
  const tools = e.results.map((r) => r.text);
  const latest = [...tools].reverse();
  const earlier = e.parts.earlier.map((x) => x.text);
  const all = [e.parts.request, ...earlier, ...latest];
  for (const [key, raw] of Object.entries(properties as Record<string, Record<string, unknown>>)) {
    const declared = Array.isArray(raw?.type) ? raw.type.find((t) => t !== 'null') : raw?.type;
    const words = nameWords(key);
    const word = words[0] ?? '';
    let value: unknown;
    if (declared === 'number' || declared === 'integer') {
      value = words.some((w) => MONEY_WORDS.has(w))
        ? (moneyIn([e.parts.request]) ?? namedNumberIn(key, latest) ?? moneyIn([...earlier, ...tools]))
        : numberAfter(subjectWord(key) ?? word, all);
      if (declared === 'integer' && typeof value === 'number') value = Math.trunc(value);
    } else if (declared === 'string') {
      const last = words.at(-1) ?? '';
      if (Array.isArray(raw?.enum)) value = raw.enum[0];
      else if (ID_WORDS.has(last)) value = idFor(key, all);
      else if (STRING_SENTENCE.has(key)) value = firstSentence(e.parts.request, 80) || undefined;
      else if (STRING_WHOLE.has(key)) value = e.parts.request.trim().slice(0, 500) || undefined;
      else value = idAfter(word, all) ?? (firstSentence(e.parts.request, 80) || undefined);
    } else if (declared === 'boolean') value = flagFor(key, e.parts.request);
    if (value !== undefined) input[key] = value;
  }
  return input;
}

/**
 * The tool call a request agent makes on this turn, without directives: the next chosen tool
 * ({@link chosenTools}) without a result yet, with its input ({@link offlineToolInput}); undefined
 * when `turn.system` is not a request agent's or every chosen tool has its result.
 */
export function offlineRequestToolCall(turn: OfflineToolTurn): OfflineToolCall | undefined {
  const agent = requestAgentOf(turn.system);
  if (!agent) return undefined;
  const parts = requestParts(turn.task);
  const chosen = chosenTools(agent.prompt, parts.request, turn.offered);
  // Never more calls than chosen tools, even when a result names no call.
  if (turn.results.length >= chosen.length) return undefined;
  const done = new Set(turn.results.map((r) => r.name));
  const next = chosen.find((t) => !done.has(t.name));
  return next ? { name: next.name, input: offlineToolInput(next, { parts, results: turn.results }) } : undefined;
}
