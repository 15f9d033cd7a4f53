/** `npm run schemas`: writes the JSON Schemas editors use for workflow, agent and model files. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentJsonSchema, modelsJsonSchema, workflowJsonSchema } from '../lib/workflow/index.js';
import { PROJECT_ROOT } from '../lib/workspace.js';

/** The schema files and their content. */
export function schemaFiles(): Record<string, string> {
  const render = (s: unknown) => `${JSON.stringify(s, null, 2)}\n`;
  return {
    'workflow.schema.json': render(workflowJsonSchema()),
    'agent.schema.json': render(agentJsonSchema()),
    'models.schema.json': render(modelsJsonSchema()),
  };
}

export const SCHEMA_DIR = join(PROJECT_ROOT, 'lib', 'workflow', 'schemas');

if (process.argv[1]?.endsWith('schemas.ts')) {
  mkdirSync(SCHEMA_DIR, { recursive: true });
  for (const [file, text] of Object.entries(schemaFiles())) writeFileSync(join(SCHEMA_DIR, file), text);
  console.log(`wrote ${Object.keys(schemaFiles()).length} schemas to ${SCHEMA_DIR}`);
}
