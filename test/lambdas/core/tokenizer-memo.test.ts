import { describe, expect, it } from 'vitest';
import { CLAUDE_SAFETY_MARGIN, countTokens } from '../../../lambdas/core/tokenizer.js';

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
});
