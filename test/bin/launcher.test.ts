import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: plain JavaScript without types (the launcher's builder)
import { BUNDLED_PACKAGES } from '../../bin/build-cli.js';
import { PROJECT_ROOT } from '../../lib/workspace.js';
import { tempDir } from '../helpers.js';

const exec = promisify(execFile);

/**
 * A copy of the project's sources (bin, lib, lambdas, workflows and the files beside them, with
 * node_modules linked), so the tests can edit sources and break builds without touching the
 * working tree's.
 */
function projectCopy(o: { ownPackages?: readonly string[] } = {}): string {
  const root = join(tempDir('agentflow-launcher-'), 'project');
  mkdirSync(root);
  for (const dir of ['bin', 'lib', 'lambdas', 'workflows']) cpSync(join(PROJECT_ROOT, dir), join(root, dir), { recursive: true });
  for (const file of ['package.json', 'tsconfig.json', 'cdk.json']) cpSync(join(PROJECT_ROOT, file), join(root, file));
  const modules = join(PROJECT_ROOT, 'node_modules');
  if (!o.ownPackages?.length) {
    symlinkSync(modules, join(root, 'node_modules'), 'dir');
    return root;
  }
  // A node_modules of links to the project's packages, but for copies of `ownPackages` (which a test may touch).
  mkdirSync(join(root, 'node_modules'));
  for (const name of readdirSync(modules)) {
    const [from, to] = [join(modules, name), join(root, 'node_modules', name)];
    if (o.ownPackages.includes(name)) cpSync(from, to, { recursive: true });
    else symlinkSync(from, to, statSync(from).isDirectory() ? 'dir' : 'file');
  }
  return root;
}

/** Runs `<root>/bin/agentflow.js` with the Node running the tests; exit code, stdout and stderr. */
async function launch(root: string, ...args: string[]) {
  try {
    const r = await exec(process.execPath, [join(root, 'bin', 'agentflow.js'), ...args], { cwd: root });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** When the bundle in `root` was last built (its manifest's build start), or undefined without one. */
const builtAt = (root: string): number | undefined => {
  const manifest = join(root, 'dist', 'cli', 'agentflow.inputs.json');
  return existsSync(manifest) ? (JSON.parse(readFileSync(manifest, 'utf8')) as { builtAt: number }).builtAt : undefined;
};

/** Replaces `from` by `to` in `<root>/<file>` (which must hold it). */
const edit = (root: string, file: string, from: string, to: string) => {
  const path = join(root, file);
  const text = readFileSync(path, 'utf8');
  expect(text).toContain(from);
  writeFileSync(path, text.replace(from, to));
};

describe('bin/agentflow.js (launcher)', () => {
  const { version } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  let root: string;

  beforeAll(() => {
    root = projectCopy();
  });

  it('builds the missing bundle, then prints the version of package.json with --version', async () => {
    // Act
    const r = await launch(root, '--version');

    // Assess: nothing on stdout but the version; the bundle and its manifest are there.
    expect(r).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    expect(existsSync(join(root, 'dist', 'cli', 'agentflow.mjs'))).toBe(true);
    expect(builtAt(root)).toEqual(expect.any(Number));
  }, 60_000);

  it('runs the bundle as it is while no input changed', async () => {
    // Prepare: a fresh bundle whose entry point is replaced, which only running it can show.
    await launch(root, '--version');
    const before = builtAt(root);
    const bundle = join(root, 'dist', 'cli', 'agentflow.mjs');
    const real = readFileSync(bundle);
    writeFileSync(bundle, "console.log('the bundle ran');\n");
    try {
      // Act
      const r = await launch(root, '--help');

      // Assess
      expect(r).toEqual({ code: 0, stdout: 'the bundle ran\n', stderr: '' });
      expect(builtAt(root)).toBe(before);
    } finally {
      writeFileSync(bundle, real);
    }
  }, 60_000);

  it('rebuilds the bundle before running it when a source it was built from changed', async () => {
    // Prepare: the entry point's text and a constant of a module only `run` imports, changed after the build.
    await launch(root, '--version');
    const before = builtAt(root) ?? 0;
    edit(root, 'bin/agentflow.ts', "'Run AI agent workflows on pull requests:", "'Run edited AI agent workflows on pull requests:");
    edit(root, 'lambdas/core/contracts.ts', 'export const MAX_REQUEST_CHARS = 4_000;', 'export const MAX_REQUEST_CHARS = 4_321;');

    // Act
    const help = await launch(root, '--help');
    const runHelp = await launch(root, 'run', '--help');

    // Assess: what the edited sources print, from a newer build.
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('Run edited AI agent workflows on pull requests');
    expect(runHelp.stdout).toMatch(/at most\s+4321\s+characters/);
    expect(builtAt(root)).toBeGreaterThan(before);
  }, 60_000);

  it('rebuilds when an input is only touched, and validates a workflow from the new build', async () => {
    // Prepare
    await launch(root, '--version');
    const before = builtAt(root) ?? 0;
    const now = new Date();
    utimesSync(join(root, 'lib', 'workflow', 'load.ts'), now, now);

    // Act
    const r = await launch(root, 'validate', 'workflows/pr-review.yml');

    // Assess
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^✔ pr-review: /);
    expect(builtAt(root)).toBeGreaterThan(before);
  }, 60_000);

  it('bundles zod, yaml and commander (no import of them from node_modules), and rebuilds when one of them is reinstalled', async () => {
    // Prepare: a project whose yaml is a copy of its own (the test touches it).
    const root = projectCopy({ ownPackages: ['yaml'] });
    await launch(root, '--version');
    const before = builtAt(root) ?? 0;
    const dir = join(root, 'dist', 'cli');
    const manifest = JSON.parse(readFileSync(join(dir, 'agentflow.inputs.json'), 'utf8')) as { inputs: string[] };
    const imported = readdirSync(dir)
      .filter((f) => f.endsWith('.mjs'))
      .flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/\b(?:from\s*|import\()"([^".][^"]*)"/g)].map((m) => m[1] ?? ''));

    // Assess the build: each bundled package counts as its package.json; no other node_modules file is an input.
    // (esbuild records the linked node_modules by its real path.)
    const packageInputs = manifest.inputs.filter((f) => f.includes('node_modules/')).map((f) => f.replace(/^.*node_modules\//, ''));
    expect(packageInputs.sort()).toEqual(BUNDLED_PACKAGES.map((p: string) => `${p}/package.json`).sort());
    expect(imported.length).toBeGreaterThan(0);
    for (const pkg of BUNDLED_PACKAGES) expect(imported.filter((i) => i === pkg || i.startsWith(`${pkg}/`))).toEqual([]);

    // Act: a reinstall of yaml, as its package.json written again.
    const now = new Date();
    utimesSync(join(root, 'node_modules', 'yaml', 'package.json'), now, now);
    const r = await launch(root, 'validate', 'workflows/pr-review.yml');

    // Assess
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(builtAt(root)).toBeGreaterThan(before);
  }, 60_000);

  it('runs the TypeScript sources through tsx, never the stale bundle, when the bundle cannot be rebuilt', async () => {
    // Prepare: a stale bundle (the entry point edited after the build), and a build that cannot write its source map.
    const copy = projectCopy();
    await launch(copy, '--version');
    const before = builtAt(copy);
    edit(copy, 'bin/agentflow.ts', "'Run AI agent workflows on pull requests:", "'Run AI agent workflows from tsx on pull requests:");
    const map = join(copy, 'dist', 'cli', 'agentflow.mjs.map');
    rmSync(map);
    mkdirSync(map);

    // Act
    const r = await launch(copy, '--help');

    // Assess: the edited text, through tsx, with one line on stderr saying so; the bundle was left as it was.
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Run AI agent workflows from tsx on pull requests');
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^agentflow: could not build the CLI bundle \(.+\); running the TypeScript sources through tsx$/),
    ]);
    expect(builtAt(copy)).toBe(before);
  }, 60_000);
});
