// Builds the CLI bundle: bin/agentflow.ts and the project sources it imports, bundled by esbuild
// into dist/cli/agentflow.mjs (ESM; packages imported from node_modules at run time, but for the
// few in BUNDLED_PACKAGES, bundled in), so `agentflow` starts
// without compiling TypeScript. What the commands import when they start (`await import(…)`) goes
// to chunks beside it (dist/cli/chunk-<hash>.mjs), so startup loads only what every command needs. Plain JavaScript (Node 20+): the launcher (bin/agentflow.js) imports
// it before anything is compiled. `node bin/build-cli.js` builds (npm's `prepare` runs it at install).
//
// Next to the bundle, agentflow.inputs.json records when the build started and the files it read
// (esbuild's metafile, plus this builder and tsconfig.json). The bundle is fresh while every one of
// them still exists and none was modified since that start: checking is one small read and ~100 stats.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (the folder holding package.json). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The CLI's TypeScript entry point. */
export const ENTRY = join(ROOT, 'bin', 'agentflow.ts');
/** The bundle the launcher runs. */
export const BUNDLE = join(ROOT, 'dist', 'cli', 'agentflow.mjs');
/** What the bundle was built from: `{ builtAt, esbuild, inputs }` (inputs relative to ROOT, `/`-separated). */
export const MANIFEST = join(ROOT, 'dist', 'cli', 'agentflow.inputs.json');

/** Files that shape the bundle without being bundled: a change to either rebuilds it too. */
const BUILD_FILES = ['bin/build-cli.js', 'tsconfig.json'];
/** How long a chunk no build uses stays (a CLI started from the build before may still import it). */
const OLD_CHUNK_MS = 60 * 60 * 1000;

/**
 * Whether the bundle can run as is: it and its manifest exist, and every input recorded in the
 * manifest exists and was last modified before the build that read it started.
 * @example
 * if (!bundleIsFresh()) await buildCli();
 */
export function bundleIsFresh() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(MANIFEST, 'utf8'));
    statSync(BUNDLE);
  } catch {
    return false;
  }
  const { builtAt, inputs } = manifest ?? {};
  if (typeof builtAt !== 'number' || !Array.isArray(inputs) || inputs.length === 0) return false;
  for (const input of inputs) {
    const stat = statSync(join(ROOT, input), { throwIfNoEntry: false });
    if (!stat || stat.mtimeMs > builtAt) return false;
  }
  return true;
}

/**
 * Builds the bundle (and its source map and manifest) with esbuild. Each file is written under a
 * temporary name and renamed, so a CLI starting meanwhile never imports half a file; launchers
 * building at the same time write the same bundle.
 * @returns the number of input files
 * @throws when esbuild is not installed, a source does not compile, or dist/cli cannot be written
 */
export async function buildCli() {
  const builtAt = Date.now();
  const esbuild = await import('esbuild');
  const outDir = dirname(BUNDLE);
  mkdirSync(outDir, { recursive: true });
  const result = await esbuild.build({
    entryPoints: [ENTRY],
    absWorkingDir: ROOT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.10',
    // Packages stay in node_modules and load at run time, but for BUNDLED_PACKAGES (see there).
    outdir: outDir,
    entryNames: '[name]',
    chunkNames: 'chunk-[hash]',
    outExtension: { '.js': '.mjs' },
    splitting: true,
    write: false,
    sourcemap: 'linked',
    sourcesContent: false,
    metafile: true,
    logLevel: 'silent',
    // Each source's import.meta.url (…dirname, …filename) stays its own file's, not the bundle's
    // (the entry point and its chunks are in one folder, so each output file's URL serves):
    // PROJECT_ROOT is found from lib/paths.ts, createRequire resolves from the importing file.
    banner: {
      js: [
        "import { fileURLToPath as __agentflowFileURLToPath } from 'node:url';",
        "import { dirname as __agentflowDirname } from 'node:path';",
        "import { createRequire as __agentflowCreateRequire } from 'node:module';",
        'const __agentflowBundleUrl = import.meta.url;',
        // The bundled CommonJS packages (yaml, commander) require Node's built-in modules.
        'const require = __agentflowCreateRequire(import.meta.url);',
      ].join(' '),
    },
    define: {
      'import.meta.url': '__agentflowModuleUrl',
      'import.meta.dirname': '__agentflowModuleDirname',
      'import.meta.filename': '__agentflowModuleFilename',
    },
    plugins: [externalPackagesPlugin(), moduleUrlPlugin(outDir)],
  });
  // A bundled package's files count as its package.json, which every install of it rewrites.
  const sources = Object.keys(result.metafile.inputs).map((f) => f.split(sep).join('/'));
  const inputs = [...new Set(sources.map((f) => packageJsonOf(f) ?? f)), ...BUILD_FILES];
  const tmp = `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  // Source maps first, then the chunks (named by their content), the entry point, and the manifest
  // last: an entry point never names a chunk not yet written, a manifest never vouches for an older build.
  const rank = (path) => (path.endsWith('.map') ? 0 : path === BUNDLE ? 2 : 1);
  const files = [...result.outputFiles].sort((a, b) => rank(a.path) - rank(b.path));
  const manifest = { path: MANIFEST, contents: `${JSON.stringify({ builtAt, esbuild: esbuild.version, inputs }, null, 2)}\n` };
  for (const file of [...files, manifest]) {
    try {
      writeFileSync(file.path + tmp, file.contents);
      renameSync(file.path + tmp, file.path);
    } finally {
      rmSync(file.path + tmp, { force: true });
    }
  }
  removeOldChunks(new Set(files.map((f) => f.path)));
  return inputs.length;
}

/**
 * Packages bundled into the CLI rather than imported from node_modules at run time: each is many
 * small modules that every `validate` and `run` loads, and Node resolves and links each module
 * file at every start (zod: about 60 ms from node_modules, 20 ms bundled; yaml: 30 ms → 15 ms on
 * the 2-core bench machine, 2026-11-30). Only packages with no state shared with other packages: nothing
 * passes our zod schemas or errors to a package loaded from node_modules.
 */
export const BUNDLED_PACKAGES = ['zod', 'yaml', 'commander'];

/** The package a bare import names (`@scope/name` or `name`), or undefined for a path or a built-in. */
function packageOf(specifier) {
  if (/^[./]/.test(specifier) || specifier.startsWith('node:')) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** `node_modules/<package>/package.json` for a file inside that package, else undefined. */
function packageJsonOf(file) {
  // The last node_modules in the path: a nested copy (node_modules/a/node_modules/zod) or pnpm's
  // store (node_modules/.pnpm/zod@4/node_modules/zod) is the package itself.
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(file);
  return m ? `${m[1]}/package.json` : undefined;
}

/** Leaves every package but {@link BUNDLED_PACKAGES} to be imported from node_modules at run time. */
function externalPackagesPlugin() {
  return {
    name: 'agentflow-external-packages',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        const pkg = packageOf(args.path);
        if (pkg === undefined || BUNDLED_PACKAGES.includes(pkg)) return undefined;
        return { path: args.path, external: true };
      });
    },
  };
}

/** Deletes the chunks (and maps) of earlier builds that this build does not use, once an hour old. */
function removeOldChunks(current) {
  const dir = dirname(BUNDLE);
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!name.startsWith('chunk-') || current.has(path)) continue;
    try {
      if (Date.now() - statSync(path).mtimeMs > OLD_CHUNK_MS) unlinkSync(path);
    } catch {
      // deleted meanwhile by another build
    }
  }
}

/**
 * Gives every project source that reads import.meta its own module URL, path and folder (see the
 * `define` above), computed from the bundle's URL at run time, so the built tree can move.
 */
function moduleUrlPlugin(outDir) {
  return {
    name: 'agentflow-module-url',
    setup(build) {
      build.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
        if (args.path.split(sep).includes('node_modules')) return undefined;
        const source = await readFile(args.path, 'utf8');
        if (!source.includes('import.meta')) return undefined;
        const url = JSON.stringify(relative(outDir, args.path).split(sep).join('/'));
        // Put on the first line (after a #! line), so the source map's lines stay the source's.
        const prelude =
          `const __agentflowModuleUrl = new URL(${url}, __agentflowBundleUrl).href; ` +
          'const __agentflowModuleFilename = __agentflowFileURLToPath(__agentflowModuleUrl); ' +
          'const __agentflowModuleDirname = __agentflowDirname(__agentflowModuleFilename); ';
        const at = source.startsWith('#!') ? source.indexOf('\n') + 1 : 0;
        return { contents: source.slice(0, at) + prelude + source.slice(at), loader: /\.[cm]?ts$/.test(args.path) ? 'ts' : 'js' };
      });
    },
  };
}

/** Removes the bundle, its map and manifest (the launcher then rebuilds at the next start). */
export function removeBundle() {
  rmSync(dirname(BUNDLE), { recursive: true, force: true });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const n = await buildCli();
    console.log(`agentflow: built ${relative(process.cwd(), BUNDLE) || BUNDLE} from ${n} files`);
  } catch (e) {
    // At install (npm's `prepare`) a failed build must not fail the install: the launcher builds
    // again at the first start, or runs the sources through tsx.
    console.error(
      `agentflow: the CLI bundle was not built (${String(e?.message ?? e).split('\n')[0]}); bin/agentflow.js will run the TypeScript sources`,
    );
    process.exitCode = process.argv.includes('--strict') ? 1 : 0;
  }
}
