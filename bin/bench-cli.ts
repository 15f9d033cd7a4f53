import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../lib/paths.js';

type Record_ = (r: { name: string; value: number; unit: string; target: string | null }) => void;

const exec = promisify(execFile);

/** Timed starts of each command (after one untimed start, which also rebuilds a stale bundle). */
const RUNS = 7;

/** The commands timed: the CLI's start alone, and a start that loads and checks one workflow. */
const COMMANDS: readonly { name: string; args: readonly string[] }[] = [
  { name: 'agentflow --help', args: ['--help'] },
  { name: 'agentflow validate workflows/pr-review.yml', args: ['validate', 'workflows/pr-review.yml'] },
];

/**
 * Wall time of `node bin/agentflow.js <command>` from spawn to exit, with the Node running the
 * bench (process.execPath), as a person typing the command waits for it: the median of {@link RUNS}
 * starts after one warm start (the OS file cache, Node's compile cache, a fresh CLI bundle).
 * @throws when a command exits with an error
 */
export async function cliBench(record: Record_): Promise<void> {
  const cli = join(PROJECT_ROOT, 'bin', 'agentflow.js');
  for (const { name, args } of COMMANDS) {
    const start = async () => {
      const t = performance.now();
      await exec(process.execPath, [cli, ...args], { cwd: PROJECT_ROOT });
      return performance.now() - t;
    };
    await start();
    const ms: number[] = [];
    for (let i = 0; i < RUNS; i++) ms.push(await start());
    ms.sort((a, b) => a - b);
    record({
      name: `${name}, wall time from spawn to exit, median of ${RUNS} (Node ${process.versions.node})`,
      value: Math.round(ms[Math.floor(RUNS / 2)] ?? 0),
      unit: 'ms',
      target: '≤ 300 (issue 16)',
    });
  }
}

// `npx tsx bin/bench-cli.ts` prints the figures alone.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await cliBench((r) => console.log(`${r.name}: ${r.value} ${r.unit} (target ${r.target})`));
}
