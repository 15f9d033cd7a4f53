import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { DeployedFunction } from './assembly.js';

/** The bootstrap each container runs (plain JavaScript, no loader). */
const CONTAINER = join(import.meta.dirname, 'container.mjs');

/**
 * An error a function returned, as Step Functions sees it: `name` is the function's `errorType`
 * (what Retry and Catch match), `message` the Lambda error JSON Step Functions puts in `Cause`.
 */
export class LambdaFunctionError extends Error {
  constructor(
    readonly errorType: string,
    readonly errorMessage: string,
    readonly functionId: string,
  ) {
    super(JSON.stringify({ errorType, errorMessage }));
    this.name = errorType;
  }
}

/** One invocation as the host saw it. */
export interface InvocationRecord {
  readonly functionId: string;
  readonly ms: number;
  /** The `errorType` of a failed invocation. */
  readonly error?: string;
  readonly errorMessage?: string;
}

interface Pending {
  resolve: (payload: unknown) => void;
  reject: (e: Error) => void;
}

/** A warm execution environment: one child process running one function's bundle, one invocation at a time. */
class Container {
  readonly ready: Promise<void>;
  busy = false;
  dead = false;
  /** The last lines the function wrote (its logs), for failure messages. */
  readonly log: string[] = [];
  private readonly pending = new Map<string, Pending>();

  constructor(
    readonly fn: DeployedFunction,
    env: Record<string, string>,
  ) {
    const child: ChildProcess = spawn(process.execPath, [CONTAINER, fn.moduleFile, fn.exportName], {
      cwd: fn.codeDir,
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child = child;
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line) this.log.push(line);
      if (this.log.length > 200) this.log.splice(0, this.log.length - 200);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.ready = new Promise((ok, fail) => {
      child.once('message', () => ok());
      child.once('exit', (code) =>
        fail(new Error(`container of ${fn.logicalId} exited (${code}) before it was ready: ${this.log.join('\n')}`)),
      );
    });
    this.ready.catch(() => undefined);
    child.on('message', (m: { id?: string; ok?: boolean; payload?: string; errorType?: string; errorMessage?: string }) => {
      if (!m.id) return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (!p) return;
      if (m.ok) p.resolve(JSON.parse(m.payload ?? 'null'));
      else p.reject(new LambdaFunctionError(m.errorType ?? 'Error', m.errorMessage ?? '', fn.logicalId));
    });
    child.on('exit', (code, signal) => {
      this.dead = true;
      for (const p of this.pending.values()) {
        p.reject(new LambdaFunctionError('Runtime.ExitError', `RequestId: exited with ${code ?? signal}`, fn.logicalId));
      }
      this.pending.clear();
    });
  }

  private readonly child: ChildProcess;

  async invoke(event: unknown): Promise<unknown> {
    await this.ready;
    const id = randomUUID();
    const deadlineMs = Date.now() + this.fn.timeoutSeconds * 1000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // The function ran past its Timeout: Lambda stops the environment.
        this.pending.delete(id);
        this.stop();
        reject(new LambdaFunctionError('Sandbox.Timedout', `Task timed out after ${this.fn.timeoutSeconds}.00 seconds`, this.fn.logicalId));
      }, this.fn.timeoutSeconds * 1000);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, event, deadlineMs, requestId: id });
    });
  }

  stop(): Promise<void> {
    this.dead = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((ok) => {
      this.child.once('exit', () => ok());
      this.child.kill('SIGKILL');
    });
  }
}

/**
 * Runs the bundled functions of a synthesized stack the way the Lambda service does: each
 * invocation in a warm execution environment of its function (a child process of
 * `process.execPath` that imported the bundle once, with the template's environment variables
 * plus `endpoints`), one invocation per environment at a time; concurrent invocations get more
 * environments, as Lambda scales out. Functions never share an environment.
 */
export class LambdaHost {
  private readonly pools = new Map<string, Container[]>();
  readonly invocations: InvocationRecord[] = [];

  /**
   * @param runtimeEnv what the Lambda runtime sets in every environment (region, credentials,
   *   `PATH`), under the template's variables
   * @param overrides set over the template's variables: where the SDKs and API clients send requests
   */
  constructor(
    private readonly runtimeEnv: Record<string, string>,
    private readonly overrides: Record<string, string> = {},
  ) {}

  /**
   * The access key id of `fn`'s execution role credentials: one per function, so a stand-in can
   * tell from a request's SigV4 signature which function made it (see `iam.ts`).
   */
  accessKeyOf(fn: DeployedFunction): string {
    return `AKIA${createHash('sha256').update(fn.logicalId).digest('hex').slice(0, 16).toUpperCase()}`;
  }

  /** The function whose credentials carry `accessKeyId`. */
  functionOfKey(accessKeyId: string, functions: Iterable<DeployedFunction>): DeployedFunction | undefined {
    for (const f of functions) if (this.accessKeyOf(f) === accessKeyId) return f;
    return undefined;
  }

  /** The environment variables of `fn` in its execution environment. */
  environmentOf(fn: DeployedFunction): Record<string, string> {
    return {
      ...this.runtimeEnv,
      AWS_ACCESS_KEY_ID: this.accessKeyOf(fn),
      AWS_LAMBDA_FUNCTION_NAME: fn.logicalId,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memorySize),
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
      LAMBDA_TASK_ROOT: fn.codeDir,
      AGENTFLOW_HARNESS_FUNCTION_ARN: fn.arn,
      TZ: ':UTC',
      // The template's variables win over the runtime's, as in Lambda (NODE_OPTIONS included).
      ...fn.environment,
      ...this.overrides,
    };
  }

  /**
   * Invokes `fn` with `event` (JSON), in a free warm environment or a new one.
   * @throws LambdaFunctionError named like the function's error (`errorType`)
   */
  async invoke(fn: DeployedFunction, event: unknown): Promise<unknown> {
    const pool = this.pools.get(fn.logicalId) ?? [];
    this.pools.set(fn.logicalId, pool);
    let c = pool.find((x) => !x.busy && !x.dead);
    if (!c) {
      c = new Container(fn, this.environmentOf(fn));
      pool.push(c);
    }
    c.busy = true;
    const started = Date.now();
    try {
      const out = await c.invoke(JSON.parse(JSON.stringify(event ?? null)));
      this.invocations.push({ functionId: fn.logicalId, ms: Date.now() - started });
      return out;
    } catch (e) {
      const err = e as LambdaFunctionError;
      this.invocations.push({ functionId: fn.logicalId, ms: Date.now() - started, error: err.name, errorMessage: err.errorMessage });
      throw e;
    } finally {
      c.busy = false;
      if (c.dead) pool.splice(pool.indexOf(c), 1);
    }
  }

  /** The recent log lines of every environment of a function (for a failing test's message). */
  logsOf(logicalId: string): string[] {
    return (this.pools.get(logicalId) ?? []).flatMap((c) => c.log);
  }

  /** Stops every environment. */
  async stop(): Promise<void> {
    await Promise.all([...this.pools.values()].flat().map((c) => c.stop()));
    this.pools.clear();
  }
}
