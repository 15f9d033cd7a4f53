import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import type { AslDefinition } from '../../lib/workflow/index.js';
import type { DeployedStack, DeployedStateMachine } from './assembly.js';
import type { AwsCallLog } from './iam.js';
import type { LambdaHost } from './lambda-host.js';
import { LocalHttpServer, type Received } from './standins.js';

/** An event of the engine's log (the library does not export its type). */
export type EventLog = { type: string; state?: { name: string; type?: string }; Error?: string; Cause?: string } & Record<string, unknown>;

/** What `$$.Task.Token` resolves to in the engine (it has no tokens); the wait task swaps in a real one. */
const TOKEN_PLACEHOLDER = 'harness-task-token';

/** One execution of a synthesized state machine on the local engine. */
export interface Execution {
  readonly arn: string;
  readonly name: string;
  readonly stateMachine: DeployedStateMachine;
  readonly input: unknown;
  readonly startDate: Date;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  output?: unknown;
  error?: string;
  cause?: string;
  stopDate?: Date;
  /** The engine's event log (StateEntered, StateFailed with `Error`, StateCaught, ...). */
  readonly events: EventLog[];
  /** Resolves when the execution ends (whatever its status). */
  readonly done: Promise<Execution>;
  abort(): void;
}

interface Waiter {
  execution: string;
  state: string;
  resolve: (output: unknown) => void;
  reject: (e: Error) => void;
  /** Why SendTask* must be refused now (the task ended without its token). */
  gone?: 'TaskTimedOut' | 'TaskDoesNotExist';
}

/** A Step Functions API error (its `name` is the API's error code). */
export class SfnApiError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Options of {@link LocalStepFunctions}. */
export interface LocalStepFunctionsOptions {
  /**
   * Wait before a retry, in ms, instead of the definition's backoff (the retry policy still
   * decides whether and how often). @default 200
   */
  retryDelayMs?: number;
  /** Rewrites a state machine's definition before an execution (tests: a short gate timeout). */
  definitionFor?: (sm: DeployedStateMachine) => AslDefinition;
  /** Told when an execution starts (RUNNING) and when it ends (what Step Functions sends EventBridge). */
  onStatusChange?: (e: Execution) => void;
}

/** Every Task state of a definition (inside Map and Parallel states too), by name. */
function taskStatesOf(def: { States: Record<string, Record<string, unknown>> }): Array<[string, Record<string, unknown>]> {
  const out: Array<[string, Record<string, unknown>]> = [];
  for (const [name, s] of Object.entries(def.States)) {
    if (s.Type === 'Task') out.push([name, s]);
    const inner = (s.ItemProcessor ?? s.Iterator) as { States: Record<string, Record<string, unknown>> } | undefined;
    if (inner) out.push(...taskStatesOf(inner));
    for (const b of (s.Branches as Array<{ States: Record<string, Record<string, unknown>> }> | undefined) ?? [])
      out.push(...taskStatesOf(b));
  }
  return out;
}

/** Replaces the engine's placeholder task token by `token` wherever the Parameters carry it. */
function withToken(v: unknown, token: string): unknown {
  if (v === TOKEN_PLACEHOLDER) return token;
  if (Array.isArray(v)) return v.map((x) => withToken(x, token));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withToken(x, token)]));
  return v;
}

/**
 * The synthesized state machines on aws-local-stepfunctions, every Task state calling the
 * bundled function its Parameters name (`FunctionName`, the ARN the definition substitutions
 * put there) through the {@link LambdaHost}:
 * - `arn:aws:states:::lambda:invoke`: the result is the Lambda service's (`{ Payload, StatusCode, ... }`);
 * - `...lambda:invoke.waitForTaskToken`: a task token is minted into the payload, the function is
 *   invoked, and the task ends with SendTaskSuccess's output or SendTaskFailure's error and cause;
 * - a function ARN as `Resource`: the function's result itself.
 * A function's error reaches the engine as an error named like the function's `errorType`.
 */
export class LocalStepFunctions {
  readonly executions = new Map<string, Execution>();
  private readonly waiters = new Map<string, Waiter>();
  private readonly validated = new Set<string>();

  constructor(
    readonly stack: DeployedStack,
    readonly host: LambdaHost,
    private readonly options: LocalStepFunctionsOptions = {},
  ) {}

  /** The state machine an ARN names. @throws SfnApiError StateMachineDoesNotExist */
  stateMachine(arn: string): DeployedStateMachine {
    const sm = [...this.stack.stateMachines.values()].find((s) => s.arn === arn);
    if (!sm) throw new SfnApiError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${arn}'`);
    return sm;
  }

  private handlers(def: AslDefinition, execution: () => string): Record<string, (input: unknown) => Promise<unknown>> {
    const out: Record<string, (input: unknown) => Promise<unknown>> = {};
    for (const [stateName, state] of taskStatesOf(def as unknown as { States: Record<string, Record<string, unknown>> })) {
      const resource = String(state.Resource);
      const fnOf = (arn: unknown) => {
        const fn = this.stack.functionByArn(String(arn));
        if (!fn) throw new Error(`Task state "${stateName}" names function ${String(arn)}, which is not in the synthesized stack`);
        return fn;
      };
      if (resource === 'arn:aws:states:::lambda:invoke') {
        out[stateName] = async (input) => {
          const p = input as { FunctionName: string; Payload?: unknown };
          const payload = await this.host.invoke(fnOf(p.FunctionName), p.Payload ?? {});
          return {
            ExecutedVersion: '$LATEST',
            Payload: payload,
            SdkHttpMetadata: { HttpStatusCode: 200 },
            SdkResponseMetadata: { RequestId: randomUUID() },
            StatusCode: 200,
          };
        };
      } else if (resource === 'arn:aws:states:::lambda:invoke.waitForTaskToken') {
        out[stateName] = async (input) => {
          const p = input as { FunctionName: string; Payload?: unknown };
          const token = Buffer.from(`${execution()}|${stateName}|${randomUUID()}`).toString('base64url');
          const answered = new Promise<unknown>((resolve, reject) => {
            this.waiters.set(token, { execution: execution(), state: stateName, resolve, reject });
          });
          answered.catch(() => undefined);
          await this.host.invoke(fnOf(p.FunctionName), withToken(p.Payload ?? {}, token));
          return answered;
        };
      } else if (resource.startsWith('arn:aws:lambda:')) {
        out[stateName] = async (input) => this.host.invoke(fnOf(resource), input);
      } else {
        out[stateName] = async () => {
          throw new Error(`Task state "${stateName}": the harness has no local service for ${resource}`);
        };
      }
    }
    return out;
  }

  /**
   * Starts an execution (StartExecution).
   * @throws SfnApiError ExecutionAlreadyExists, StateMachineDoesNotExist
   */
  start(stateMachineArn: string, name: string = randomUUID(), input: unknown = {}): Execution {
    const sm = this.stateMachine(stateMachineArn);
    const arn = `${sm.arn.replace(':stateMachine:', ':execution:')}:${name}`;
    if (this.executions.has(arn)) throw new SfnApiError('ExecutionAlreadyExists', `Execution Already Exists: '${arn}'`);
    const def = this.options.definitionFor?.(sm) ?? sm.definition;
    const key = `${sm.arn}:${JSON.stringify(def).length}`;
    const machine = new StateMachine(
      def as unknown as StateMachineDefinition,
      this.validated.has(key) ? { validationOptions: { noValidate: true } } : { validationOptions: { checkArn: false } },
    );
    this.validated.add(key);
    const handlers = this.handlers(def, () => arn);
    const startDate = new Date();
    const run = machine.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: handlers as never,
        retryIntervalOverrides: Object.fromEntries(Object.keys(handlers).map((n) => [n, this.options.retryDelayMs ?? 200])),
      },
      context: {
        Execution: {
          Id: arn,
          Name: name,
          Input: input as never,
          StartTime: startDate.toISOString(),
          RoleArn: 'arn:aws:iam::123456789012:role/local',
        },
        StateMachine: { Id: sm.arn, Name: sm.name },
        Task: { Token: TOKEN_PLACEHOLDER },
      } as never,
    });
    const events: EventLog[] = [];
    const execution: Execution = {
      arn,
      name,
      stateMachine: sm,
      input,
      startDate,
      status: 'RUNNING',
      events,
      abort: () => run.abort(),
      done: undefined as unknown as Promise<Execution>,
    };
    const logs = (async () => {
      for await (const ev of run.eventLogs) {
        // A wait task that ended without its token (TimeoutSeconds, a Catch, the execution's end) takes it with it.
        const ended = ev as unknown as EventLog;
        events.push(ended);
        if ((ended.type === 'StateFailed' || ended.type === 'StateCaught') && ended.state) {
          for (const w of this.waiters.values()) {
            if (w.execution === arn && w.state === ended.state.name) w.gone ??= 'TaskTimedOut';
          }
        }
      }
    })();
    (execution as { done: Promise<Execution> }).done = (async () => {
      try {
        execution.output = await run.result;
        execution.status = 'SUCCEEDED';
      } catch (e) {
        const err = e as Error & { cause?: { name?: string; message?: string } };
        execution.status = err.name === 'ExecutionTimeoutError' ? 'TIMED_OUT' : err.name === 'ExecutionAbortedError' ? 'ABORTED' : 'FAILED';
        if (execution.status === 'FAILED') {
          execution.error = err.cause?.name ?? err.name;
          execution.cause = err.cause?.message ?? err.message;
        } else if (execution.status === 'TIMED_OUT') {
          execution.error = 'States.Timeout';
        }
      }
      execution.stopDate = new Date();
      this.options.onStatusChange?.(execution);
      await logs.catch(() => undefined);
      for (const w of this.waiters.values()) if (w.execution === arn) w.gone ??= 'TaskDoesNotExist';
      return execution;
    })();
    this.executions.set(arn, execution);
    this.options.onStatusChange?.(execution);
    return execution;
  }

  private waiter(token: string): Waiter {
    const w = this.waiters.get(token);
    if (!w) throw new SfnApiError('InvalidToken', 'Invalid Token');
    if (w.gone === 'TaskTimedOut') throw new SfnApiError('TaskTimedOut', 'Task Timed Out');
    if (w.gone) throw new SfnApiError('TaskDoesNotExist', 'Task Does Not Exist');
    return w;
  }

  /** The state machine ARN of the execution a task token belongs to (what SendTask* is authorized on). */
  tokenStateMachine(token: string): string | undefined {
    const w = this.waiters.get(token);
    return w ? this.executions.get(w.execution)?.stateMachine.arn : undefined;
  }

  /** SendTaskHeartbeat: checks the token (the engine has no heartbeat timeouts). */
  heartbeat(token: string): void {
    this.waiter(token);
  }

  /** SendTaskSuccess. @throws SfnApiError InvalidToken, TaskTimedOut, TaskDoesNotExist */
  sendTaskSuccess(token: string, output: string): void {
    const w = this.waiter(token);
    this.waiters.delete(token);
    w.resolve(JSON.parse(output));
  }

  /** SendTaskFailure: the task fails with `error` as the name Retry/Catch match and `cause`. */
  sendTaskFailure(token: string, error = 'States.TaskFailed', cause = ''): void {
    const w = this.waiter(token);
    this.waiters.delete(token);
    const e = new Error(cause);
    e.name = error;
    w.reject(e);
  }

  /** The execution `name` of the state machine of workflow `id` (`agentflow-dev-<id>`), if started. */
  find(stateMachineName: string, name: string): Execution | undefined {
    return [...this.executions.values()].find((e) => e.stateMachine.name === stateMachineName && e.name === name);
  }

  /** Aborts every running execution. */
  async stop(): Promise<void> {
    for (const e of this.executions.values()) if (e.status === 'RUNNING') e.abort();
    await Promise.all([...this.executions.values()].map((e) => e.done.catch(() => undefined)));
  }
}

const epoch = (d: Date | undefined) => (d ? d.getTime() / 1000 : undefined);

/**
 * The Step Functions API stand-in (JSON 1.0, `X-Amz-Target: AWSStepFunctions.<Operation>`) over
 * {@link LocalStepFunctions}: StartExecution, DescribeExecution, StopExecution, SendTaskSuccess,
 * SendTaskFailure, SendTaskHeartbeat.
 */
export class StepFunctionsApiStandIn extends LocalHttpServer {
  readonly calls: string[] = [];

  constructor(
    readonly engine: LocalStepFunctions,
    private readonly log?: AwsCallLog,
  ) {
    super((req, res) => this.onRequest(req, res));
  }

  /** The ARN IAM authorizes an operation on: the state machine, the execution, or the token's state machine. */
  private resourceOf(op: string, body: Record<string, string>): string {
    if (op === 'StartExecution') return String(body.stateMachineArn);
    if (op.startsWith('SendTask')) return this.engine.tokenStateMachine(String(body.taskToken)) ?? 'unknown-task-token';
    return String(body.executionArn ?? body.stateMachineArn ?? '*');
  }

  private onRequest(req: Received, res: ServerResponse) {
    const op = String(req.headers['x-amz-target'] ?? '').replace(/^AWSStepFunctions\./, '');
    this.calls.push(op);
    const send = (status: number, body: unknown, type?: string) => {
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', ...(type ? { 'x-amzn-errortype': type } : {}) });
      res.end(JSON.stringify(body));
    };
    try {
      const body = JSON.parse(req.body.toString('utf8') || '{}') as Record<string, string>;
      this.log?.record(req.headers.authorization, `states:${op}`, this.resourceOf(op, body));
      switch (op) {
        case 'StartExecution': {
          const e = this.engine.start(String(body.stateMachineArn), body.name, JSON.parse(body.input ?? '{}'));
          return send(200, { executionArn: e.arn, startDate: epoch(e.startDate) });
        }
        case 'DescribeExecution': {
          const e = this.engine.executions.get(String(body.executionArn));
          if (!e) throw new SfnApiError('ExecutionDoesNotExist', `Execution Does Not Exist: '${body.executionArn}'`);
          return send(200, {
            executionArn: e.arn,
            stateMachineArn: e.stateMachine.arn,
            name: e.name,
            status: e.status,
            startDate: epoch(e.startDate),
            ...(e.stopDate ? { stopDate: epoch(e.stopDate) } : {}),
            input: JSON.stringify(e.input),
            ...(e.status === 'SUCCEEDED' ? { output: JSON.stringify(e.output) } : {}),
            ...(e.error ? { error: e.error, cause: e.cause } : {}),
          });
        }
        case 'StopExecution': {
          const e = this.engine.executions.get(String(body.executionArn));
          if (!e) throw new SfnApiError('ExecutionDoesNotExist', `Execution Does Not Exist: '${body.executionArn}'`);
          e.abort();
          return send(200, { stopDate: Date.now() / 1000 });
        }
        case 'SendTaskSuccess':
          this.engine.sendTaskSuccess(String(body.taskToken), body.output ?? '{}');
          return send(200, {});
        case 'SendTaskFailure':
          this.engine.sendTaskFailure(String(body.taskToken), body.error, body.cause);
          return send(200, {});
        case 'SendTaskHeartbeat':
          this.engine.heartbeat(String(body.taskToken));
          return send(200, {});
        default:
          throw new SfnApiError('UnknownOperationException', `the Step Functions stand-in has no operation ${op}`);
      }
    } catch (e) {
      const err = e as Error;
      const type = err instanceof SfnApiError ? err.name : 'InternalFailure';
      send(err instanceof SfnApiError ? 400 : 500, { __type: `com.amazonaws.swf.service.v2.model#${type}`, message: err.message }, type);
    }
  }
}
