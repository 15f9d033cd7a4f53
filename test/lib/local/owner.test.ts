import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { claimFolder } from '../../../lib/local/runtime.js';
import { PROJECT_ROOT } from '../../../lib/workspace.js';
import { tempDir } from '../../helpers.js';

const run = promisify(execFile);
const OWNER = 'agentflow-owner.json';

/** A child process that tries to claim `dir`, holds it for `holdMs`, and prints `claimed` or the error. */
const contender = (dir: string, holdMs: number) =>
  run(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      `import('./lib/local/runtime.ts').then(async (m) => { try { const release = m.claimFolder(${JSON.stringify(dir)}); console.log('claimed'); await new Promise((r) => setTimeout(r, ${holdMs})); release(); } catch (e) { console.log('refused: ' + e.message); } });`,
    ],
    { cwd: PROJECT_ROOT, encoding: 'utf8' },
  ).then((r) => r.stdout.trim());

describe('Function: claimFolder', () => {
  it('lets exactly one of four processes take over the owner file of a crashed process', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, OWNER), JSON.stringify({ pid: 999_999, startedAt: '2026-01-01T00:00:00Z' }));
    const outcomes = await Promise.all([1, 2, 3, 4].map(() => contender(dir, 8_000)));
    expect(outcomes.filter((o) => o === 'claimed')).toHaveLength(1);
    for (const o of outcomes.filter((x) => x !== 'claimed')) expect(o).toMatch(/^refused: the state folder .* is in use by process \d+ /);
    expect(existsSync(join(dir, OWNER))).toBe(false);
  }, 60_000);

  it('takes over an owner file that names this very pid but was not claimed here (a container restarted as pid 1)', () => {
    const dir = tempDir();
    writeFileSync(join(dir, OWNER), JSON.stringify({ pid: process.pid, startedAt: '2026-01-01T00:00:00Z' }));
    const release = claimFolder(dir);
    try {
      expect(JSON.parse(readFileSync(join(dir, OWNER), 'utf8')).startedAt).not.toBe('2026-01-01T00:00:00Z');
      // A second claim in the same process is refused: one dynalite per folder.
      expect(() => claimFolder(dir)).toThrow(/is in use by process/);
    } finally {
      release();
    }
    expect(existsSync(join(dir, OWNER))).toBe(false);
  });
});
