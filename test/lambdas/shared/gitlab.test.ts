import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitLabChangeSource } from '../../../lambdas/adapters/gitlab-changes.js';
import type { Change } from '../../../lambdas/core/contracts.js';
import { gitlabFor } from '../../../lambdas/shared/gitlab.js';

/** A self-managed instance that takes connections and never answers. */
let silent: Server;
let url: string;
const sockets = new Set<Socket>();

beforeAll(async () => {
  silent = createServer((socket) => void sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const address = silent.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  url = `http://127.0.0.1:${address.port}`;
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

const change: Change = {
  forge: 'gitlab',
  repository: 'acme/mobile/shop',
  number: 7,
  title: '',
  author: '',
  url: '',
  action: 'open',
  baseSha: 'a'.repeat(40),
  headSha: 'b'.repeat(40),
  baseRef: 'main',
  headRef: 'feature',
};

describe('Function: gitlabFor', () => {
  it('refuses a secret without a token or with an apiUrl that is not a URL', () => {
    expect(() => gitlabFor({ webhookSecret: 'x' })).toThrow(/no "token"/);
    expect(() => gitlabFor({ token: 't', apiUrl: 'gitlab.example.com' })).toThrow(/apiUrl/);
  });

  it('fails a read from a self-managed instance that does not answer, instead of waiting for the Lambda timeout', async () => {
    const client = gitlabFor({ token: 'glpat-test', apiUrl: url }, 300);
    const started = Date.now();
    const error = await new GitLabChangeSource(client).listChangedFiles(change).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(String((error as Error).message)).toMatch(/timed? ?out|timeout|aborted/i);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
