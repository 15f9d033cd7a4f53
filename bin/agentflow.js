#!/usr/bin/env node
// Launcher: runs the CLI bundle (dist/cli/agentflow.mjs, built from bin/agentflow.ts by
// bin/build-cli.js), so a start compiles no TypeScript. A missing or stale bundle (a source it was
// built from changed since) is rebuilt first; when it cannot be built (no esbuild, dist/ not
// writable), the TypeScript sources run through tsx, as `npx agentflow` did before the bundle.
import module from 'node:module';
import { pathToFileURL } from 'node:url';
import { BUNDLE, buildCli, bundleIsFresh } from './build-cli.js';

// Node 22.1+ keeps the compiled code of the modules it loads (cache in the OS temp folder): later starts parse less.
module.enableCompileCache?.();

let bundle = bundleIsFresh();
if (!bundle) {
  if (process.stderr.isTTY) process.stderr.write('agentflow: building the CLI (dist/cli) from its sources…\n');
  try {
    await buildCli();
    bundle = true;
  } catch (e) {
    // esbuild's first error with its place (file:line:column), or the first line of any other error.
    const first = e?.errors?.[0];
    const where = first?.location ? `${first.location.file}:${first.location.line}:${first.location.column}: ` : '';
    const reason = first ? `${where}${first.text}` : String(e?.message ?? e).split('\n')[0];
    process.stderr.write(`agentflow: could not build the CLI bundle (${reason}); running the TypeScript sources through tsx\n`);
  }
}
if (bundle) {
  await import(pathToFileURL(BUNDLE).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./agentflow.ts');
}
