import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The project's folders, in a module that imports nothing heavy (the CLI's option defaults need them at every start).

/** The project root (the folder holding package.json). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The shipped workflows folder. */
export const WORKFLOWS_DIR = join(PROJECT_ROOT, 'workflows');
