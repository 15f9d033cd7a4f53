import { describe, expect, it } from 'vitest';
import { MAX_SEARCH_MATCHES, RepoToolbox, type RepoToolsChange } from '../../../lambdas/adapters/repo-tools.js';
import type { ChangedFile } from '../../../lambdas/core/contracts.js';
import { exampleChange } from '../../helpers.js';

/*
 * The built-in tools over a change (`agentflow__…`), on a change as the context artifact holds it.
 */

const file = (path: string, status: ChangedFile['status'], lines: string[], over: Partial<ChangedFile> = {}): ChangedFile => ({
  path,
  status,
  additions: lines.filter((l) => l.startsWith('+')).length,
  deletions: lines.filter((l) => l.startsWith('-')).length,
  binary: false,
  patch: lines.join('\n'),
  ...over,
});

const subject: RepoToolsChange = {
  change: exampleChange(),
  files: [
    file('App/Pay.swift', 'modified', ['@@ -10,2 +10,3 @@', ' func pay() {', '-  let t = token', '+  let t = cardToken!', '+  charge(t)']),
    file('App/New.swift', 'added', ['@@ -0,0 +1,2 @@', '+struct New {}', '+let apiKey = "AKIAQ3EGUIOE5TNGXX7Z"']),
    file('App/Old.swift', 'removed', ['@@ -1,1 +0,0 @@', '-struct Old {}']),
    file('App/Renamed.swift', 'renamed', [], { previousPath: 'App/Before.swift' }),
  ],
};

const ALL = [{ name: 'list_changed_files' }, { name: 'read_file' }, { name: 'search' }];

describe('Class: RepoToolbox', () => {
  it('offers the allowed built-in tools as read-only tools of the agentflow server', async () => {
    // Prepare
    const tools = new RepoToolbox(subject, [{ name: 'read_file', write: true }, { name: 'search' }]);

    // Act
    const defs = await tools.definitions();

    // Assess
    expect(defs.map((d) => [d.name, d.write])).toEqual([
      ['agentflow__read_file', false],
      ['agentflow__search', false],
    ]);
    expect(defs[0]?.inputSchema).toMatchObject({ type: 'object', required: ['path'] });
    expect(tools.unavailable()).toEqual([]);
  });

  it('lists the changed files with their status and +/- counts', async () => {
    // Act
    const r = await new RepoToolbox(subject, ALL).call('agentflow__list_changed_files', {});

    // Assess
    expect(r).toMatchObject({ ok: true, name: 'agentflow__list_changed_files', input: '{}' });
    expect(r.output?.split('\n')).toEqual([
      'App/Pay.swift\tmodified\t+2 -1',
      'App/New.swift\tadded\t+2 -0',
      'App/Old.swift\tremoved\t+0 -1',
      'App/Renamed.swift\trenamed (from App/Before.swift)\t+0 -0',
    ]);
  });

  it('reads an added file whole from its patch, redacting the secret in it, and a modified one through the forge', async () => {
    // Prepare
    const asked: string[] = [];
    const tools = new RepoToolbox(subject, ALL, {
      readHeadFile: async (change, path) => {
        asked.push(`${change.headSha.slice(0, 4)}:${path}`);
        return 'func pay() {\n  let t = cardToken!\n  charge(t)\n}';
      },
    });

    // Act
    const added = await tools.call('agentflow__read_file', { path: 'App/New.swift' });
    const modified = await tools.call('agentflow__read_file', { path: 'App/Pay.swift' });

    // Assess
    expect(added.ok).toBe(true);
    expect(added.output).toMatch(/^struct New \{\}\nlet apiKey = /);
    expect(added.output).not.toMatch(/AKIA/);
    expect(added.redacted).toBe(1);
    expect(modified).toMatchObject({ ok: true, output: 'func pay() {\n  let t = cardToken!\n  charge(t)\n}' });
    // The added file came from the context artifact: only the modified one was read at the head.
    expect(asked).toEqual(['bbbb:App/Pay.swift']);
  });

  it('gives the diff, saying so, when the file cannot be read whole or the forge fails', async () => {
    // Prepare
    const failing = new RepoToolbox(subject, ALL, {
      readHeadFile: async () => {
        throw new Error('environment variable GITHUB_SECRET_NAME is required but not set');
      },
    });

    // Act
    const r = await new RepoToolbox(subject, ALL).call('agentflow__read_file', { path: 'App/Pay.swift' });
    const down = await failing.call('agentflow__read_file', { path: 'App/Pay.swift' });

    // Assess
    expect(r.ok).toBe(true);
    expect(r.output).toMatch(/^The whole file cannot be read here; its diff at the head commit \(bbbbbbbbbbbb\):\n@@ -10,2/);
    expect(down.ok).toBe(true);
    expect(down.output).toMatch(
      /^The whole file cannot be read here \(the forge could not be read: environment variable GITHUB_SECRET_NAME/,
    );
  });

  it('refuses a path the change does not touch, and reads no removed file', async () => {
    // Prepare
    const read: string[] = [];
    const tools = new RepoToolbox(subject, ALL, {
      readHeadFile: async (_c, path) => {
        read.push(path);
        return 'secret';
      },
    });

    // Act
    const outside = await tools.call('agentflow__read_file', { path: '../.env' });
    const other = await tools.call('agentflow__read_file', { path: 'App/Unchanged.swift' });
    const removed = await tools.call('agentflow__read_file', { path: 'App/Old.swift' });

    // Assess
    expect(outside).toMatchObject({ ok: false, refused: true, error: expect.stringMatching(/not a file this change touches/) });
    expect(other).toMatchObject({ ok: false, refused: true });
    expect(removed).toMatchObject({ ok: false, error: expect.stringMatching(/removed by the change/) });
    expect(read).toEqual([]);
  });

  it('searches the head lines of the diffs by literal text, with their new line numbers; a pattern is text, never a regular expression', async () => {
    // Prepare: a line a change's author could write to make a backtracking pattern run for minutes.
    const evil = file('Evil.txt', 'added', ['@@ -0,0 +1 @@', `+${'a'.repeat(40)}!`]);
    const tools = new RepoToolbox({ change: subject.change, files: [...subject.files, evil] }, ALL);

    // Act
    const text = await tools.call('agentflow__search', { query: 'CARDTOKEN' });
    const removedOnly = await tools.call('agentflow__search', { query: 'let t = token' });
    const pattern = await tools.call('agentflow__search', { query: '^(a+)+$', regex: true });
    const literal = await tools.call('agentflow__search', { query: 'charge(t)' });

    // Assess
    expect(text.output).toBe('App/Pay.swift:11: let t = cardToken!');
    expect(removedOnly.output).toMatch(/^No match/);
    expect(pattern.output).toMatch(/^No match for "\^\(a\+\)\+\$"/);
    expect(literal.output).toBe('App/Pay.swift:12: charge(t)');
  });

  it(`caps the matches at ${MAX_SEARCH_MATCHES} and says how many more there are`, async () => {
    // Prepare
    const many = file('Big.txt', 'added', ['@@ -0,0 +1,60 @@', ...Array.from({ length: 60 }, (_, i) => `+match ${i}`)]);
    const tools = new RepoToolbox({ change: subject.change, files: [many] }, ALL);

    // Act
    const r = await tools.call('agentflow__search', { query: 'match' });

    // Assess
    const lines = r.output?.split('\n') ?? [];
    expect(lines).toHaveLength(MAX_SEARCH_MATCHES + 1);
    expect(lines.at(-1)).toBe('[… 10 more matches]');
  });

  it('refuses a tool that is not allowed, of another server, or without a change to read', async () => {
    // Prepare
    const tools = new RepoToolbox(subject, [{ name: 'search' }]);
    const none = new RepoToolbox(undefined, ALL);

    // Act / Assess
    expect(await tools.call('agentflow__read_file', { path: 'App/Pay.swift' })).toMatchObject({ ok: false, refused: true });
    expect(await tools.call('issues__search', { query: 'x' })).toMatchObject({ ok: false, refused: true });
    expect(await none.definitions()).toEqual([]);
    expect(none.unavailable()).toEqual([{ server: 'agentflow', error: expect.stringMatching(/this run has none/) }]);
    expect(await none.call('agentflow__search', { query: 'x' })).toMatchObject({ ok: false, refused: true });
  });
});
