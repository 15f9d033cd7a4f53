import claudeRanks from '@anthropic-ai/tokenizer/claude.json' with { type: 'json' };
import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';
import o200k from 'js-tiktoken/ranks/o200k_base';
import type { Provider } from './contracts.js';

/**
 * Token counts from real tokenizers (js-tiktoken, pure JavaScript, no WASM):
 *
 * - `openai`: `o200k_base`, the encoding of GPT-4o, GPT-4.1, o-series and GPT-5 models (exact for
 *   the text but for long unbroken runs, see {@link countTokens}; the chat format adds a few tokens
 *   per message, see {@link MESSAGE_OVERHEAD_TOKENS}).
 *   Source: https://github.com/openai/tiktoken (model → encoding table), checked 2026-11-29.
 * - `claude`: Anthropic's published Claude tokenizer (`@anthropic-ai/tokenizer`, the ranks of the
 *   Claude 1/2 models, loaded into js-tiktoken), the closest one available: Anthropic publishes no
 *   tokenizer for Claude 3 and later, so estimates for Claude are multiplied by
 *   {@link CLAUDE_SAFETY_MARGIN} (pass `margin: false` for the plain count). Source: https://docs.anthropic.com/en/docs/build-with-claude/token-counting
 *   (the exact count is the Count Tokens API, a network call we do not make per chunk), 2026-11-29.
 *
 * Reservations use these counts as their input part, so they stay close to what the provider
 * reports (the bench prints estimated ÷ reported) instead of counting every byte as a token.
 */
export type TokenizerFamily = 'openai' | 'claude';

/**
 * Multiplier on Claude counts (see the module docstring). Anthropic states no ratio between its
 * published tokenizer and Claude 3+; 5 % keeps the estimate above the legacy count without
 * reserving (and so refusing) much more than calls cost. The gateway settles to the provider's
 * reported usage, so the margin only decides how close to a limit a call may start.
 */
export const CLAUDE_SAFETY_MARGIN = 1.05;

/** Tokens a chat request adds per message (role markers, separators): OpenAI's cookbook counts 3 for gpt-4o-class models; we take 4. */
export const MESSAGE_OVERHEAD_TOKENS = 4;
/** Tokens a request adds once (the assistant priming; OpenAI's cookbook: 3). */
export const REQUEST_OVERHEAD_TOKENS = 8;

/**
 * Input tokens a provider adds to a request that offers tools, besides the tools' JSON: Claude's
 * hidden tool-use system prompt (159–530 tokens by model and tool choice; we take 600), none
 * documented for OpenAI's function calling (the definitions' JSON is counted).
 * Source: https://docs.anthropic.com/en/docs/tool-use-pricing-and-tokens (read 2026-11).
 */
export const TOOL_USE_OVERHEAD_TOKENS: Record<Provider, number> = { bedrock: 600, openai: 0, 'openai-compatible': 0 };

/** The tokenizer family of a provider: `bedrock` serves Claude; the OpenAI APIs use o200k. */
export const TOKENIZER_OF: Record<Provider, TokenizerFamily> = {
  bedrock: 'claude',
  openai: 'openai',
  'openai-compatible': 'openai',
};

/** A family's encoder and what {@link pieceCount} keeps beside it. */
interface Encoder {
  readonly enc: Tiktoken;
  /** The encoding's pre-tokenizer (its `pat_str`), as js-tiktoken compiles it. */
  readonly pattern: RegExp;
  /** Tokens of pre-tokens seen before (words, operators, runs of spaces: code repeats them). */
  readonly pieces: Map<string, number>;
  /** Tokens of slices seen before ({@link sliceEnd}): the same diff in every agent's prompt. */
  readonly slices: Map<string, number>;
  /** Characters of {@link slices}' keys. */
  sliceChars: number;
}

const encoders: Partial<Record<TokenizerFamily, Encoder>> = {};

function encoder(family: TokenizerFamily): Encoder {
  const cached = encoders[family];
  if (cached) return cached;
  // The rank file is plain JSON (a static import, so bundles carry it).
  const ranks = family === 'openai' ? o200k : (claudeRanks as TiktokenBPE);
  const made = {
    enc: new Tiktoken(ranks),
    pattern: new RegExp(ranks.pat_str, 'ug'),
    pieces: new Map<string, number>(),
    slices: new Map<string, number>(),
    sliceChars: 0,
  };
  encoders[family] = made;
  return made;
}

/** Pre-tokens remembered per family at most (then forgotten all at once). */
const MAX_PIECES = 200_000;

/**
 * `enc.encode(text, [], []).length`, a pre-token at a time: js-tiktoken splits the text with the
 * encoding's pattern and encodes each piece on its own (no special token is treated as one here),
 * so the count is the sum of the pieces' counts, and a piece matched in a text is matched whole
 * again on its own (the pattern's one lookahead, `\s+(?!\S)`, only holds more easily at the end).
 * A piece seen before costs a lookup instead of a UTF-8 encoding and a rank search.
 */
function pieceCount(e: Encoder, text: string): number {
  let n = 0;
  e.pattern.lastIndex = 0;
  for (const m of text.matchAll(e.pattern)) {
    const piece = m[0];
    let c = e.pieces.get(piece);
    if (c === undefined) {
      c = e.enc.encode(piece, [], []).length;
      if (e.pieces.size >= MAX_PIECES) e.pieces.clear();
      e.pieces.set(piece, c);
    }
    n += c;
  }
  return n;
}

/**
 * Builds both encoders now (about 1.1 s for o200k, 0.4 s for Claude's, once per process), so a
 * server does not spend that time inside its first request. Safe to call more than once.
 */
export function warmTokenizers(): void {
  encoder('openai');
  encoder('claude');
}

/**
 * Tokens of `text` for a tokenizer family (no chat overhead). Special-token text in the input is
 * counted as ordinary text, as providers do for user content. The tokenizer's own count of the whole
 * text, except in runs of 128 or more characters without a break (a minified line, a base64 blob),
 * counted in 32-character pieces plus one token per piece after the first: there it errs high.
 * Texts and their slices are remembered (a diff every agent's prompt carries is counted once).
 *
 * @example countTokens('let x = 1', 'openai') // → 5
 */
export function countTokens(text: string, family: TokenizerFamily, options: { margin?: boolean } = {}): number {
  if (text.length === 0) return 0;
  const n = counted(text, family);
  return family === 'claude' && options.margin !== false ? Math.ceil(n * CLAUDE_SAFETY_MARGIN) : n;
}

/**
 * Texts counted lately, per family (the plain count), most recent last: the same text is counted
 * again and again — a system prompt for every chunk and every candidate of an agent, and in local
 * mode once more by the offline model server in the same process to report its usage. Bounded by
 * {@link MEMO_ENTRIES} and {@link MEMO_CHARS}; a text shorter than {@link MEMO_MIN_CHARS} is counted
 * again (cheaper than keeping it).
 */
const memo: Record<TokenizerFamily, Map<string, number>> = { openai: new Map(), claude: new Map() };
let memoChars = 0;
const MEMO_ENTRIES = 512;
const MEMO_CHARS = 8 * 1024 * 1024;
const MEMO_MIN_CHARS = 256;

/** {@link countTokens} without the margin, through {@link memo}. */
function counted(text: string, family: TokenizerFamily): number {
  if (text.length < MEMO_MIN_CHARS || text.length > MEMO_CHARS / 4) return bpeCount(text, family);
  const known = memo[family];
  const hit = known.get(text);
  if (hit !== undefined) {
    // Most recent last: delete and set again.
    known.delete(text);
    known.set(text, hit);
    return hit;
  }
  const n = bpeCount(text, family);
  known.set(text, n);
  memoChars += text.length;
  while (memo.openai.size + memo.claude.size > MEMO_ENTRIES || memoChars > MEMO_CHARS) {
    // Evict the least recent of the larger map.
    const from = memo.openai.size >= memo.claude.size ? memo.openai : memo.claude;
    const oldest = from.keys().next().value;
    if (oldest === undefined) break;
    from.delete(oldest);
    memoChars -= oldest.length;
  }
  return n;
}

/** The tokenizer's count of `text` (no margin, no memo). */
function bpeCount(text: string, family: TokenizerFamily): number {
  const enc = encoder(family);
  const source = family === 'claude' ? text.normalize('NFKC') : text;
  // BPE is quadratic in the length of one pre-token: a minified line, a base64 blob or a line of
  // 16 KB of spaces would take seconds to minutes. Runs of LONG_RUN or more non-space (or space)
  // characters are encoded in pieces of about RUN_PIECE characters (never between the two halves
  // of a surrogate pair, which would count as two U+FFFD), the rest in slices cut at line ends
  // (sliceEnd, exact). A cut inside a pre-token can move the count by a token either way (BPE on
  // the parts is not BPE on the whole; the worst seen was one token low per cut, 2026-11-30), so
  // each cut adds one token: a run's count errs high.
  let n = 0;
  const encode = (part: string) => {
    for (let i = 0; i < part.length; ) {
      const end = sliceEnd(part, i);
      n += sliceCount(enc, part.slice(i, end));
      i = end;
    }
  };
  let last = 0;
  for (const [start, end] of longRuns(source)) {
    encode(source.slice(last, start));
    for (let i = start; i < end; ) {
      let to = Math.min(end, i + RUN_PIECE);
      // A high surrogate at the end of the piece: its low half goes with it.
      if (to < end && (source.charCodeAt(to - 1) & 0xfc00) === 0xd800) to++;
      n += pieceCount(enc, source.slice(i, to)) + (to < end ? 1 : 0);
      i = to;
    }
    last = end;
  }
  encode(source.slice(last));
  return n;
}

/** JavaScript's `\s`: the Unicode White_Space characters, line terminators and U+FEFF. */
function isSpace(c: number): boolean {
  return c <= 32
    ? c === 32 || (c >= 9 && c <= 13)
    : c === 0xa0 ||
        c === 0x1680 ||
        (c >= 0x2000 && c <= 0x200a) ||
        c === 0x2028 ||
        c === 0x2029 ||
        c === 0x202f ||
        c === 0x205f ||
        c === 0x3000 ||
        c === 0xfeff;
}

/**
 * The runs `text.matchAll(/\S{128,}|[ \t]{128,}|\s{128,}/g)` finds (as `[start, end)`, with
 * {@link LONG_RUN} for 128), in one pass: a regex tries the run's length again at each of its
 * characters (about 180 µs for 4 KB of code, against a few µs here). Exported for tests.
 */
export function* longRuns(text: string): Generator<readonly [number, number]> {
  const n = text.length;
  let p = 0;
  while (p < n) {
    let e = p;
    if (!isSpace(text.charCodeAt(p))) {
      while (e < n && !isSpace(text.charCodeAt(e))) e++;
      if (e - p >= LONG_RUN) yield [p, e];
      p = e;
      continue;
    }
    while (e < n && (text.charCodeAt(e) === 32 || text.charCodeAt(e) === 9)) e++;
    if (e - p >= LONG_RUN) {
      yield [p, e];
      p = e;
      continue;
    }
    while (e < n && isSpace(text.charCodeAt(e))) e++;
    if (e - p >= LONG_RUN) yield [p, e];
    // Shorter: no run inside it is long enough either.
    p = e;
  }
}

/** Slices longer than this are cut at the last line end that may be (characters). */
const MAX_SLICE = 8192;
/** Shortest slice cut where its content says ({@link sliceEnd}), in characters. */
const MIN_SLICE = 64;
/** Slices remembered per family, in characters at most (then forgotten all at once). */
const MAX_SLICE_CHARS = 4 * 1024 * 1024;

/** `/`: o200k's punctuation pre-token runs on through line ends into it (`{\n//` is one pre-token). */
const SLASH = 47;

/**
 * Where a slice may end at the line end `nl` of `text` (-1: not there): the line before it must end
 * in a non-space. When the next line starts with a non-space (not `/`), right after the line end;
 * when it starts with spaces or tabs and then a non-space, before the last of them. Either way the
 * pre-tokenizers of both families (o200k's and Claude's) split the whole text there too: the line
 * end is a pre-token of its own or ends one (`"\n "`, Claude's `\s+(?!\S)`, which a slice's end
 * takes whole), and the next line's first pre-token starts at the cut (`" foo"`, `"\tfoo"`).
 * o200k's punctuation runs on through a line end only into a `/` right after it.
 */
function cutAt(text: string, nl: number): number {
  if (nl === 0 || isSpace(text.charCodeAt(nl - 1))) return -1;
  let p = nl + 1;
  while (p < text.length && (text.charCodeAt(p) === 32 || text.charCodeAt(p) === 9)) p++;
  if (p >= text.length || isSpace(text.charCodeAt(p))) return -1;
  if (p === nl + 1) return text.charCodeAt(p) === SLASH ? -1 : p;
  return p - 1;
}

/**
 * Where the slice of `text` starting at `from` ends: at a line end ({@link cutAt}) chosen by the
 * line before it, at least {@link MIN_SLICE} characters on; else at the last line end that may be
 * cut (before {@link MAX_SLICE} characters on, else the first after); else at the end of the text.
 *
 * The same lines are cut the same way whatever comes before them, after a cut or two: a diff that
 * every agent's prompt carries, behind its own header and data boundary, falls into the same
 * slices in each, and {@link sliceCount} counts each once. The slices' pre-tokens are the whole
 * text's (see {@link cutAt}), so the count is the whole text's; a slice never ends in spaces
 * before a line end (the pre-tokenizer's `\s+(?!\S)` would join `"  \n"` at a slice's end, which
 * the whole text splits) nor inside a word. Slices are not needed for speed (runs of 128 or more
 * are cut before, {@link longRuns}), so a text without such a line end is one slice. Exported for
 * tests.
 */
export function sliceEnd(text: string, from: number): number {
  if (from + MIN_SLICE >= text.length) return text.length;
  const limit = from + MAX_SLICE;
  // The last place that may be cut, before the limit.
  let last = -1;
  let lineStart = text.lastIndexOf('\n', from + MIN_SLICE - 1) + 1;
  for (let nl = text.indexOf('\n', from + MIN_SLICE); nl !== -1; nl = text.indexOf('\n', nl + 1)) {
    if (nl >= limit && last !== -1) return last;
    const cut = cutAt(text, nl);
    if (cut !== -1) {
      if (nl >= limit) return cut;
      last = cut;
      const hash = (Math.imul(nl - lineStart, 0x9e3779b1) ^ Math.imul(text.charCodeAt(lineStart), 31) ^ text.charCodeAt(nl - 1)) >>> 0;
      if ((hash & 3) === 0) return cut;
    }
    lineStart = nl + 1;
  }
  // None chosen before the end: at the last that may be, so what follows it (a prompt's closing
  // data boundary, its own in each prompt) does not keep the lines before it from being shared.
  return last !== -1 ? last : text.length;
}

/** {@link pieceCount} of a slice, remembered for slices of {@link MIN_SLICE} characters or more. */
function sliceCount(e: Encoder, slice: string): number {
  if (slice.length < MIN_SLICE) return pieceCount(e, slice);
  const known = e.slices.get(slice);
  if (known !== undefined) return known;
  const n = pieceCount(e, slice);
  if (e.sliceChars + slice.length > MAX_SLICE_CHARS) {
    e.slices.clear();
    e.sliceChars = 0;
  }
  e.slices.set(slice, n);
  e.sliceChars += slice.length;
  return n;
}
/** Non-space runs this long are cut into {@link RUN_PIECE}-character pieces. */
const LONG_RUN = 128;
const RUN_PIECE = 32;

/**
 * Estimated input tokens of a chat request (system prompt and messages) for a provider: the
 * tokenizer count plus the chat-format overhead. The reservation's input part. A tool loop's
 * messages count their tool calls and results as the JSON they are sent as, and `tools` (the
 * tool specs every request of the loop carries) count as their JSON too.
 */
export function requestTokens(
  provider: Provider,
  system: string,
  messages: ReadonlyArray<{ content: string; toolCalls?: unknown[]; toolResults?: unknown[] }>,
  tools?: readonly unknown[],
): number {
  const family = TOKENIZER_OF[provider];
  const json = (v: readonly unknown[] | undefined) => (v && v.length > 0 ? countTokens(JSON.stringify(v), family) : 0);
  const text =
    countTokens(system, family) +
    messages.reduce((n, m) => n + countTokens(m.content, family) + json(m.toolCalls) + json(m.toolResults), 0);
  const toolUse = tools && tools.length > 0 ? json(tools) + TOOL_USE_OVERHEAD_TOKENS[provider] : 0;
  return text + toolUse + REQUEST_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS * (messages.length + 1);
}
