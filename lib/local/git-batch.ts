import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { DIFF_MAX_BUFFER, GIT_DIFF, GIT_MAX_BUFFER, GitChangeSource, git, gitEnv, parseGitDiff } from '../../lambdas/adapters/changes.js';
import type { Change, ChangedFile } from '../../lambdas/core/contracts.js';
import type { ChangeSource } from '../../lambdas/core/ports.js';
import { assertSafeRef } from '../../lambdas/core/refs.js';

/** Largest file read, as `GitChangeSource` reads it (`git cat-file blob` with its output buffer): larger reads as absent. */
const MAX_FILE_BYTES = GIT_MAX_BUFFER;

/** Diffs a {@link BatchedGitChangeSource} keeps (by commit pair). */
const DIFFS_KEPT = 8;
/** The most patch text (characters, all files) of a diff that is kept. */
const DIFF_KEPT_CHARS = 4_000_000;

/** A found object's header line: `<oid> <type> <size>`. */
const HEADER = /^([0-9a-f]{40,64}) (\S+) (\d+)$/;

/** What the batch answered for one object name: its id, type and content, or nothing (missing, ambiguous). */
interface GitObject {
  oid: string;
  type: string;
  body: Buffer;
}

/** One read waiting for its answer, in the order the object names were written. */
interface Pending {
  resolve(object: GitObject | undefined): void;
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
  /** The answer being read, once its header is in: the body's size (+ its newline). */
  private body?: { size: number; oid: string; type: string };
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
    // The batch reads one name per line: a path with a line break goes the slow way (assertSafeRef refused such a SHA).
    if (/[\n\r\0]/.test(path)) return this.fallback.readHeadFile(change, path);
    let object: GitObject | undefined;
    try {
      object = await this.read(`${change.headSha}:${path}`);
    } catch {
      return this.fallback.readHeadFile(change, path);
    }
    return object?.type === 'blob' && object.body.length <= MAX_FILE_BYTES ? object.body.toString('utf8') : undefined;
  }

  /**
   * The commit `ref` names (`<ref>^{commit}`), or undefined when it names none, is not a safe ref
   * or cannot be asked (as `rev-parse --verify`, without a process).
   */
  async commit(ref: string): Promise<string | undefined> {
    try {
      assertSafeRef(ref); // refuses control characters, line breaks included
      const object = await this.read(`${ref}^{commit}`);
      return object?.type === 'commit' ? object.oid : undefined;
    } catch {
      return undefined;
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

  private read(name: string): Promise<GitObject | undefined> {
    const child = this.process();
    return new Promise<GitObject | undefined>((resolve, fail) => {
      this.pending.push({ resolve, fail });
      // Kept alive while a read waits; idle, the process never holds the event loop open.
      (child.stdout as Socket).ref();
      child.stdin.write(`${name}\n`);
    });
  }

  private process(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    // As GitChangeSource: variables that would point git at another repository are left out.
    const child = spawn('git', ['-C', this.repoPath, 'cat-file', '--batch'], { env: gitEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
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
        this.body = { size: Number(m[3]) + 1, oid: m[1] as string, type: m[2] as string };
      }
      const body = this.body;
      if (this.buffered < body.size) return;
      const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
      const content = all.subarray(0, body.size - 1);
      const rest = all.subarray(body.size);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      this.body = undefined;
      this.settle({ oid: body.oid, type: body.type, body: content });
    }
  }

  private settle(object: GitObject | undefined): void {
    this.pending.shift()?.resolve(object);
    if (this.pending.length === 0 && this.child) (this.child.stdout as Socket).unref();
  }
}

/**
 * {@link GitChangeSource} with its head-file reads and its commits resolved through a
 * {@link GitBatchReader}, and the diff from the merge base in one `git diff --merge-base` (where
 * GitChangeSource runs `rev-parse` twice, `merge-base`, then `diff`: four processes one after
 * another before LoadContext can start). Anything unusual — a ref that names no commit, no or
 * several merge bases, a git without `--merge-base` (before 2.30) — is left to GitChangeSource,
 * so its errors are the same.
 */
export class BatchedGitChangeSource implements ChangeSource {
  private readonly git: GitChangeSource;
  constructor(
    private readonly repoPath: string,
    private readonly reader: GitBatchReader,
  ) {
    this.git = new GitChangeSource(repoPath);
  }

  /**
   * Diffs listed (or being listed), by resolved commit pair: commits do not change, so neither does
   * the diff between two (a second workflow on the same push, a re-run, `review --full`). The
   * {@link DIFFS_KEPT} used last are kept, each up to {@link DIFF_KEPT_CHARS} of patch text; callers
   * asking for a pair being listed share that listing.
   */
  private readonly diffs = new Map<string, Promise<ChangedFile[] | undefined>>();

  async listChangedFiles(change: Change): Promise<ChangedFile[]> {
    const [base, head] = await Promise.all([this.reader.commit(change.baseSha), this.reader.commit(change.headSha)]);
    if (base && head) {
      const key = `${base}...${head}`;
      let listing = this.diffs.get(key);
      if (listing) {
        // Used last: kept longest.
        this.diffs.delete(key);
      } else {
        listing = git(this.repoPath, [...GIT_DIFF, '--merge-base', '--end-of-options', base, head], DIFF_MAX_BUFFER).then(
          (out) => parseGitDiff(out),
          // GitChangeSource runs it step by step and says what is wrong.
          () => undefined,
        );
      }
      this.diffs.set(key, listing);
      const files = await listing;
      if (!files || files.reduce((n, f) => n + f.patch.length, 0) > DIFF_KEPT_CHARS) {
        if (this.diffs.get(key) === listing) this.diffs.delete(key);
      } else if (this.diffs.size > DIFFS_KEPT) {
        this.diffs.delete(this.diffs.keys().next().value as string);
      }
      // A copy: the caller may change what it is given.
      if (files) return structuredClone(files);
    }
    return this.git.listChangedFiles(change);
  }

  readHeadFile(change: Change, path: string): Promise<string | undefined> {
    return this.reader.readHeadFile(change, path);
  }
}
