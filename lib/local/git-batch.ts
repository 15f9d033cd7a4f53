import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { GitChangeSource } from '../../lambdas/adapters/changes.js';
import type { Change, ChangedFile } from '../../lambdas/core/contracts.js';
import type { ChangeSource } from '../../lambdas/core/ports.js';
import { assertSafeRef } from '../../lambdas/core/refs.js';

/** Largest file read (as `git cat-file blob` through `GitChangeSource`, whose output buffer is 16 MB): larger reads as absent. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** A found object's header line: `<oid> <type> <size>`. */
const HEADER = /^[0-9a-f]{40,64} (\S+) (\d+)$/;

/** One read waiting for its answer, in the order the object names were written. */
interface Pending {
  resolve(text: string | undefined): void;
  fail(e: Error): void;
}

/**
 * Reads head files through one long-lived `git cat-file --batch` per repository instead of a
 * `git cat-file blob` process per file: starting a process costs the runtime's event loop
 * 10–30 ms of CPU (fork of a large process), and LoadContext reads the guidance files, the
 * repository config and every changed file's head before the agents start (issue 16). Same
 * answers as {@link GitChangeSource.readHeadFile}: the text of the blob `<head>:<path>`, else
 * `undefined` (no such path, not a blob, an unsafe ref, a file over 16 MB); a name the batch
 * protocol cannot carry (a line break) and any failure of the batch process are read the old way.
 */
export class GitBatchReader {
  private child?: ChildProcessWithoutNullStreams;
  private readonly pending: Pending[] = [];
  /** Bytes of the current answer: its header line, then its body. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The body size (+ its newline) of the answer being read, once its header is in. */
  private body?: { size: number; blob: boolean };
  private readonly fallback: GitChangeSource;

  constructor(private readonly repoPath: string) {
    this.fallback = new GitChangeSource(repoPath);
  }

  /** The head file `path` of `change`, as {@link GitChangeSource.readHeadFile} reads it. */
  async readHeadFile(change: Change, path: string): Promise<string | undefined> {
    try {
      assertSafeRef(change.headSha);
    } catch {
      return undefined;
    }
    if (/[\n\r\0]/.test(path) || /[\n\r\0]/.test(change.headSha)) return this.fallback.readHeadFile(change, path);
    try {
      return await this.read(`${change.headSha}:${path}`);
    } catch {
      return this.fallback.readHeadFile(change, path);
    }
  }

  /** Ends the batch process (reads after this start a new one). */
  close(): void {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    this.failAll(new Error('git cat-file --batch closed'));
    child.stdin.end();
    child.kill();
  }

  private read(name: string): Promise<string | undefined> {
    const child = this.process();
    return new Promise<string | undefined>((resolve, fail) => {
      this.pending.push({ resolve, fail });
      // Kept alive while a read waits; idle, the process never holds the event loop open.
      (child.stdout as Socket).ref();
      child.stdin.write(`${name}\n`);
    });
  }

  private process(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const env: NodeJS.ProcessEnv = {};
    // As GitChangeSource: variables that would point git at another repository are left out.
    const redirecting = new Set(['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_COMMON_DIR', 'GIT_NAMESPACE']);
    for (const [k, v] of Object.entries(process.env)) if (!redirecting.has(k)) env[k] = v;
    const child = spawn('git', ['-C', this.repoPath, 'cat-file', '--batch'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.chunks = [];
    this.buffered = 0;
    this.body = undefined;
    const gone = (e: Error) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.failAll(e);
    };
    child.on('error', gone);
    child.on('exit', (code) => gone(new Error(`git cat-file --batch exited (${code})`)));
    child.stdin.on('error', gone);
    child.stderr.resume();
    child.stdout.on('data', (data: Buffer) => this.take(data));
    child.unref();
    (child.stdin as unknown as Socket).unref();
    (child.stderr as Socket).unref();
    (child.stdout as Socket).unref();
    return child;
  }

  private failAll(e: Error): void {
    for (const p of this.pending.splice(0)) p.fail(e);
  }

  /** Parses answers off the batch output: a header line, then (when found) the body and a newline. */
  private take(data: Buffer): void {
    this.chunks.push(data);
    this.buffered += data.length;
    for (;;) {
      if (!this.body) {
        const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
        const nl = all.indexOf(10);
        if (nl < 0) {
          this.chunks = [all];
          return;
        }
        const header = all.subarray(0, nl).toString('utf8');
        const rest = all.subarray(nl + 1);
        this.chunks = rest.length > 0 ? [rest] : [];
        this.buffered = rest.length;
        const m = HEADER.exec(header);
        if (!m) {
          // `<name> missing` / `<name> ambiguous`: nothing follows.
          this.settle(undefined);
          continue;
        }
        this.body = { size: Number(m[2]) + 1, blob: m[1] === 'blob' };
      }
      const body = this.body;
      if (this.buffered < body.size) return;
      const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
      const content = all.subarray(0, body.size - 1);
      const rest = all.subarray(body.size);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      this.body = undefined;
      this.settle(body.blob && content.length <= MAX_FILE_BYTES ? content.toString('utf8') : undefined);
    }
  }

  private settle(text: string | undefined): void {
    this.pending.shift()?.resolve(text);
    if (this.pending.length === 0 && this.child) (this.child.stdout as Socket).unref();
  }
}

/** {@link GitChangeSource} with its head-file reads through a {@link GitBatchReader}. */
export class BatchedGitChangeSource implements ChangeSource {
  private readonly git: GitChangeSource;
  constructor(
    repoPath: string,
    private readonly reader: GitBatchReader,
  ) {
    this.git = new GitChangeSource(repoPath);
  }

  listChangedFiles(change: Change): Promise<ChangedFile[]> {
    return this.git.listChangedFiles(change);
  }

  readHeadFile(change: Change, path: string): Promise<string | undefined> {
    return this.reader.readHeadFile(change, path);
  }
}
