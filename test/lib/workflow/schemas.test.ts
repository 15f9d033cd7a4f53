import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCHEMA_DIR, schemaFiles } from '../../../bin/schemas.js';

describe('JSON Schemas for editors', () => {
  it.each(Object.keys(schemaFiles()))('lib/workflow/schemas/%s is up to date (npm run schemas)', (file) => {
    expect(readFileSync(join(SCHEMA_DIR, file), 'utf8')).toBe(schemaFiles()[file]);
  });

  it('describes the workflow fields, including the older shapes', () => {
    const schema = JSON.parse(schemaFiles()['workflow.schema.json'] as string) as { properties: Record<string, unknown> };
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['name', 'trigger', 'phases', 'agents', 'execution', 'fallback', 'output', 'budget']),
    );
  });
});
