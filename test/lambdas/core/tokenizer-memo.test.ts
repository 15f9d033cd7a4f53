import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import claudeRanks from '@anthropic-ai/tokenizer/claude.json' with { type: 'json' };
import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';
import o200k from 'js-tiktoken/ranks/o200k_base';
import { describe, expect, it } from 'vitest';
import { CLAUDE_SAFETY_MARGIN, countTokens, longRuns, sliceEnd } from '../../../lambdas/core/tokenizer.js';
import { PROJECT_ROOT } from '../../../lib/workspace.js';

/** countTokens' plain count without anything remembered: js-tiktoken's encode on each slice. */
function reference(enc: Tiktoken, text: string, nfkc: boolean): number {
  const source = nfkc ? text.normalize('NFKC') : text;
  let n = 0;
  const encode = (part: string) => {
    for (let i = 0; i < part.length; ) {
      const end = sliceEnd(part, i);
      n += enc.encode(part.slice(i, end), [], []).length;
      i = end;
    }
  };
  let last = 0;
  for (const m of source.matchAll(/\S{128,}|[ \t]{128,}|\s{128,}/g)) {
    encode(source.slice(last, m.index));
    // Pieces of 32 (33 to keep a surrogate pair whole), one token added per cut.
    for (let i = 0; i < m[0].length; ) {
      let to = Math.min(m[0].length, i + 32);
      if (to < m[0].length && /[\ud800-\udbff]/.test(m[0][to - 1] ?? '')) to++;
      n += enc.encode(m[0].slice(i, to), [], []).length + (to < m[0].length ? 1 : 0);
      i = to;
    }
    last = m.index + m[0].length;
  }
  encode(source.slice(last));
  return n;
}

describe('countTokens memo', () => {
  const text = Array.from({ length: 40 }, (_, i) => `let value${i} = compute(${i}) // line ${i}`).join('\n');

  it('counts a text seen before the same as the first time, with and without the Claude margin', () => {
    const openai = countTokens(text, 'openai');
    const plain = countTokens(text, 'claude', { margin: false });
    expect(countTokens(text, 'openai')).toBe(openai);
    expect(countTokens(text, 'claude')).toBe(Math.ceil(plain * CLAUDE_SAFETY_MARGIN));
    expect(countTokens(text, 'claude', { margin: false })).toBe(plain);
    // The same text in another family is counted by that family's tokenizer.
    expect(openai).toBeGreaterThan(0);
    expect(plain).toBeGreaterThan(0);
  });

  it('stays right past its bounds (many distinct texts, then the first again)', () => {
    const first = countTokens(`${text}\nfirst`, 'openai');
    for (let i = 0; i < 700; i++) countTokens(`${text}\n// variant ${i}`, i % 2 ? 'openai' : 'claude');
    expect(countTokens(`${text}\nfirst`, 'openai')).toBe(first);
    expect(countTokens('short', 'openai')).toBe(countTokens('short', 'openai'));
  });

  it('counts what js-tiktoken encodes, a pre-token at a time (code, prose, Unicode, special-token text, long runs)', () => {
    const root = PROJECT_ROOT;
    const texts = [
      ...['lambdas/core/tokenizer.ts', 'README.md', 'workflows/pr-review.yml', 'package.json'].map((f) =>
        readFileSync(join(root, f), 'utf8'),
      ),
      'héllo wörld ✓ 日本語のテキスト 🎉🎉 \u0000 <|endoftext|> <EOT> x\r\n\r\n   \t\t  y',
      "'s't're it's I'LL we'VE 123456789 1,234.5",
      `${' '.repeat(300)}a\n\n\n   \n  x${'A'.repeat(1000)}`,
      Array.from({ length: 400 }, (_, i) => String.fromCodePoint(32 + ((i * 7919) % 0x2fff))).join(''),
    ];
    const openai = new Tiktoken(o200k);
    const claude = new Tiktoken(claudeRanks as TiktokenBPE);
    for (const [i, t] of texts.entries()) {
      expect(countTokens(t, 'openai'), `openai ${i}`).toBe(reference(openai, t, false));
      expect(countTokens(t, 'claude', { margin: false }), `claude ${i}`).toBe(reference(claude, t, true));
      // Twice: the second time from what was remembered.
      expect(countTokens(`${t} `, 'openai'), `openai ${i} again`).toBe(reference(openai, `${t} `, false));
    }
  });

  it('never counts fewer tokens than the whole text encoded at once, and stays within 0.2 % of it (and two tokens per cut in a long run)', () => {
    const root = PROJECT_ROOT;
    const code = ['lambdas/core/gateway.ts', 'lambdas/adapters/gateway-store.ts', 'lib/local/runtime.ts'].map((f) =>
      readFileSync(join(root, f), 'utf8'),
    );
    // A unified diff of those files against nothing, as a prompt carries one.
    const diff = code.map((c, i) => `diff --git a/f${i} b/f${i}\n@@ -0,0 +1 @@\n${c.replace(/^/gm, '+')}`).join('\n');
    const openai = new Tiktoken(o200k);
    const claude = new Tiktoken(claudeRanks as TiktokenBPE);
    // Markdown's hard line breaks: two spaces before a line end (a cut after them would err low).
    const markdown = Array.from({ length: 400 }, (_, i) => `Line ${i} of the notes, with a break  \n${i % 3 ? '' : '\n'}`).join('');
    // Lines starting with `/` (o200k's punctuation pre-token runs through a line end into it), lines
    // ending in a no-break space, and one 40 KB line of words without a line end.
    const slashes = Array.from({ length: 800 }, (_, i) => `/dd${'x'.repeat(i % 23)}{`).join('\n');
    const nbsp = Array.from({ length: 400 }, (_, i) => `let a${i} = ${i};\u00a0\n\u3000b${i}`).join('\n');
    const oneLine = Array.from({ length: 5000 }, (_, i) => ['lorem', 'ipsum_', '(x)', '{y}'][i % 4]).join(' ');
    // Long runs cut into pieces (BPE on the parts can count fewer than on the whole, and a cut
    // between the halves of a surrogate pair would count two U+FFFD).
    const runs = [
      `a${'\n'.repeat(128)}b`,
      `foo${'\n'.repeat(200)}bar`,
      `a${'🎉'.repeat(64)}`,
      'wqcaaqeeakoiwoccomskkiyamaumkgeaiicqeqssaiamsksucyqyycawkggesecameyweaecykacwiqqwyikyiusekgccqmegyueoamguusqqyiimqgmasmieqsuqymu',
      `const x = "https://example.com/${'aZ09_-'.repeat(15)}?q=${'0f'.repeat(20)}";`,
    ];
    for (const t of [...code, diff, markdown, slashes, nbsp, oneLine, ...runs, readFileSync(join(root, 'README.md'), 'utf8')]) {
      const wholeOpenai = openai.encode(t, [], []).length;
      const wholeClaude = claude.encode(t.normalize('NFKC'), [], []).length;
      const ours = [countTokens(t, 'openai'), countTokens(t, 'claude', { margin: false })];
      expect(ours[0]).toBeGreaterThanOrEqual(wholeOpenai);
      expect(ours[1]).toBeGreaterThanOrEqual(wholeClaude);
      // Within 0.2 %, plus two tokens per cut inside a long run (the one added, and one that BPE
      // on the parts may count above the whole).
      const cuts = [...longRuns(t.normalize('NFKC'))].reduce((k, [a, b]) => k + Math.ceil((b - a) / 32) - 1, 0);
      const slack = (whole: number) => Math.ceil(whole * 1.002) + 2 * cuts;
      expect(ours[0]).toBeLessThanOrEqual(slack(wholeOpenai));
      expect(ours[1]).toBeLessThanOrEqual(slack(wholeClaude));
    }
  });

  it('cuts indented code often (before the last space or tab of an indent) and counts it exactly as the whole text', () => {
    const code = readFileSync(join(PROJECT_ROOT, 'lambdas/core/gateway.ts'), 'utf8');
    const tabs = code.replace(/^( {2})+/gm, (m) => '\t'.repeat(m.length / 2));
    const openai = new Tiktoken(o200k);
    const claude = new Tiktoken(claudeRanks as TiktokenBPE);
    for (const t of [code, tabs, `${code.slice(0, 6000).replace(/^/gm, '+')}`]) {
      let slices = 0;
      for (let i = 0; i < t.length; slices++) i = sliceEnd(t, i);
      expect(slices).toBeGreaterThan(t.length / 1500);
      expect(countTokens(t, 'openai')).toBe(openai.encode(t, [], []).length);
      expect(countTokens(t, 'claude', { margin: false })).toBe(claude.encode(t.normalize('NFKC'), [], []).length);
    }
  });

  it('finds the long runs the regex finds (spaces, tabs, line ends, Unicode spaces, long words), in one pass', () => {
    const bits = [
      'a',
      'word',
      ' ',
      '\t',
      '\n',
      '\r\n',
      '\u00a0',
      '\u2028',
      '\u3000',
      'é',
      '🎉',
      'x'.repeat(130),
      ' '.repeat(130),
      '\n'.repeat(64),
    ];
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    for (let k = 0; k < 300; k++) {
      // Runs of one bit repeated, so long runs of every kind occur.
      let text = '';
      while (text.length < 2000) text += (bits[next() % bits.length] as string).repeat(1 + (next() % 140));
      const expected = [...text.matchAll(/\S{128,}|[ \t]{128,}|\s{128,}/g)].map((m) => [m.index, m.index + m[0].length]);
      expect([...longRuns(text)], `text ${k}`).toEqual(expected);
    }
  });

  it("cuts the same lines the same way behind different headers (so each agent's copy of a diff is counted once)", () => {
    const diff = Array.from({ length: 2000 }, (_, i) => `+  let value${i} = compute(${i * 7}) // ${'x'.repeat(i % 50)}`).join('\n');
    const cuts = (text: string, offset: number) => {
      const out: number[] = [];
      for (let i = 0; i < text.length; ) {
        i = sliceEnd(text, i);
        if (i >= offset) out.push(i - offset);
      }
      return out;
    };
    const a = `Agent: security\nPart 1 of 1\n<<<BEGIN-1234>>>\n`;
    const b = `Agent: code-review-with-a-longer-name\nCategories: correctness, style\n<<<BEGIN-abcd>>>\n`;
    const inA = cuts(a + diff, a.length);
    const inB = cuts(b + diff, b.length);
    // After the first cut or two the cuts coincide, to the end.
    const shared = inA.filter((c) => inB.includes(c));
    expect(shared.length).toBeGreaterThan(inA.length - 3);
    expect(inA.at(-1)).toBe(diff.length);
  });
});
