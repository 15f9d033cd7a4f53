import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { answerFormatOf, FINDINGS_FORMAT, type JsonSchema, normalizeStructured } from '../../../lambdas/core/answer-format.js';
import { ModelAnswerSchema } from '../../../lambdas/core/contracts.js';
import { strictSchemaProblem } from '../../../lib/local/offline-model.js';

/** Every object node of a JSON Schema, with its path. */
function objects(schema: unknown, path = '$'): Array<{ path: string; node: JsonSchema }> {
  if (Array.isArray(schema)) return schema.flatMap((s, i) => objects(s, `${path}[${i}]`));
  if (typeof schema !== 'object' || schema === null) return [];
  const node = schema as JsonSchema;
  const own = node.type === 'object' ? [{ path, node }] : [];
  return [...own, ...Object.entries(node).flatMap(([k, v]) => objects(v, `${path}.${k}`))];
}

describe('Function: answerFormatOf', () => {
  it('makes every object strict: all properties required, additionalProperties false', () => {
    for (const { path, node } of objects(FINDINGS_FORMAT.schema)) {
      expect(node.additionalProperties, path).toBe(false);
      expect(node.required, path).toEqual(Object.keys(node.properties as object));
    }
    expect(strictSchemaProblem(FINDINGS_FORMAT.schema)).toBeUndefined();
  });

  it('turns an optional field into a required nullable one, and keeps a field with a default required and not nullable', () => {
    const props = FINDINGS_FORMAT.schema.properties as Record<string, JsonSchema>;
    expect(props.document).toEqual({ anyOf: [{ type: 'string' }, { type: 'null' }] });
    expect(props.summary).toEqual({ type: 'string' });
  });

  it('drops the keywords strict mode does not support ($schema, default, minLength) and keeps enum and minimum', () => {
    const text = JSON.stringify(FINDINGS_FORMAT.schema);
    expect(text).not.toMatch(/"\$schema"|"default"|"minLength"/);
    expect(text).toContain('"enum":["critical","high","medium","low","info"]');
    expect(text).toContain('"minimum":0');
  });

  it('refuses a schema whose field already accepts null (strict mode uses null for absent)', () => {
    expect(() => answerFormatOf(z.strictObject({ a: z.string().nullable() }), 'x', 'x')).toThrow(/\(root\)\.a accepts null/);
  });

  it('refuses a bad name, a root that is not an object and an object without properties', () => {
    expect(() => answerFormatOf(ModelAnswerSchema, 'report review', 'x')).toThrow(/must be 1-64 letters/);
    expect(() => answerFormatOf(z.array(z.string()), 'x', 'x')).toThrow(/root must be an object/);
    expect(() => answerFormatOf(z.strictObject({ m: z.record(z.string(), z.string()) }), 'x', 'x')).toThrow(/without properties/);
  });
});

describe('Function: normalizeStructured', () => {
  it('removes null fields at every depth so the zod schema parses the answer', () => {
    const answer = {
      summary: 's',
      findings: [{ file: 'a', line: 1, severity: 'low', category: 'c', message: 'm', suggestion: null }],
      document: null,
    };
    expect(normalizeStructured(answer)).toEqual({
      summary: 's',
      findings: [{ file: 'a', line: 1, severity: 'low', category: 'c', message: 'm' }],
    });
    expect(ModelAnswerSchema.safeParse(normalizeStructured(answer)).success).toBe(true);
    expect(ModelAnswerSchema.safeParse(answer).success).toBe(false);
  });
});
