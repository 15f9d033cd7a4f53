import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { WORKFLOWS_DIR } from './paths.js';
import {
  type AgentSpec,
  type Catalog,
  type Diagnostic,
  loadAgent,
  loadModels,
  loadWorkflow,
  type ModelCatalog,
  type Workflow,
} from './workflow/index.js';

export { PROJECT_ROOT, WORKFLOWS_DIR } from './paths.js';

/** Everything under a workflows folder, loaded and checked. */
export interface Workspace {
  readonly dir: string;
  readonly catalog?: Catalog;
  readonly workflows: ReadonlyMap<string, Workflow>;
  readonly diagnostics: Diagnostic[];
}

const display = (file: string) => relative(process.cwd(), file) || file;
const isYaml = (f: string) => /\.ya?ml$/.test(f);

/**
 * Loads `models.yml`, `agents/*.yml` and the workflow files of a workflows folder.
 *
 * @param dir the workflows folder (default: the project's `workflows/`)
 * @param only workflow files to load instead of every `*.yml` in `dir`
 */
export function loadWorkspace(dir: string = WORKFLOWS_DIR, only?: readonly string[]): Workspace {
  const diagnostics: Diagnostic[] = [];
  const modelsFile = join(dir, 'models.yml');
  let models: ModelCatalog | undefined;
  try {
    const r = loadModels(display(modelsFile), readFileSync(modelsFile, 'utf8'));
    diagnostics.push(...r.diagnostics);
    models = r.value;
  } catch (e) {
    diagnostics.push({ file: display(modelsFile), line: 1, col: 1, message: `cannot read: ${(e as Error).message}` });
  }
  const agents = new Map<string, AgentSpec>();
  const agentsDir = join(dir, 'agents');
  for (const f of safeList(agentsDir).filter(isYaml)) {
    const file = join(agentsDir, f);
    const r = loadAgent(display(file), readFileSync(file, 'utf8'), models);
    diagnostics.push(...r.diagnostics);
    if (r.value) agents.set(r.value.name, r.value);
  }
  const catalog = models ? { agents, models } : undefined;
  const workflows = new Map<string, Workflow>();
  const targets =
    only ??
    safeList(dir)
      .filter((f) => isYaml(f) && f !== 'models.yml')
      .map((f) => join(dir, f));
  for (const file of targets) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      diagnostics.push({ file: display(file), line: 1, col: 1, message: `cannot read: ${(e as Error).message}` });
      continue;
    }
    if (!catalog) continue;
    const r = loadWorkflow(display(file), text, catalog);
    diagnostics.push(...r.diagnostics);
    if (r.value) workflows.set(r.value.id, r.value);
  }
  return { dir, ...(catalog ? { catalog } : {}), workflows, diagnostics };
}

/**
 * Resolves what a user typed as a workflow: an id (`pr-review`) in the workflows folder or a path.
 * @throws Error naming the known workflows when nothing matches
 */
export function resolveWorkflowFile(ref: string, dir: string = WORKFLOWS_DIR): string {
  const candidates = [ref, join(dir, ref), join(dir, `${ref}.yml`), join(dir, `${ref}.yaml`)];
  for (const c of candidates) {
    try {
      if (statSync(c).isFile()) return resolve(c);
    } catch {
      // try the next candidate
    }
  }
  const known = safeList(dir)
    .filter((f) => isYaml(f) && f !== 'models.yml')
    .map((f) => basename(f).replace(/\.ya?ml$/, ''));
  throw new Error(`unknown workflow "${ref}" (known: ${known.join(', ') || 'none'})`);
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
