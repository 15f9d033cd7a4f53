import { DescribeExecutionCommand, ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { ExecutionInputSchema, runSubject } from '../core/contracts.js';
import type { ExecutionStarter, RunStore } from '../core/ports.js';

/**
 * Starts executions with `StartExecution`; a name that already exists means a redelivery. With a
 * run store, a started run gets its RUNNING record at once (as the local runtime writes it), unless
 * the execution already wrote its own (a skip can finish first): `agentflow runs`, `/agentflow
 * status` and the execution-status handler see it from the start.
 */
export class SfnExecutionStarter implements ExecutionStarter {
  constructor(
    private readonly sfn: SFNClient,
    /** State machine ARN by workflow id. */
    private readonly stateMachines: Readonly<Record<string, string>>,
    private readonly runs?: RunStore,
  ) {}

  async start(workflow: string, name: string, input: unknown): Promise<{ name: string; started: boolean }> {
    const arn = this.stateMachines[workflow];
    if (!arn) throw new Error(`no state machine for workflow ${workflow}`);
    let started: { startDate?: Date };
    try {
      started = await this.sfn.send(new StartExecutionCommand({ stateMachineArn: arn, name, input: JSON.stringify(input) }));
    } catch (e) {
      if (e instanceof ExecutionAlreadyExists) return { name, started: false };
      throw e;
    }
    const run = ExecutionInputSchema.safeParse(input);
    if (this.runs && run.success && run.data.skip === undefined) {
      // A failed write loses only the early RUNNING record: the execution writes its outcome itself.
      await this.runs
        .create({
          runId: name,
          workflow,
          status: 'RUNNING',
          ...runSubject(run.data),
          startedAt: (started.startDate ?? new Date()).toISOString(),
          costUsd: 0,
          findings: 0,
          agents: [],
        })
        .catch(() => false);
    }
    return { name, started: true };
  }

  /** `DescribeExecution`; the execution ARN is the state machine ARN with `:execution:` and the name. */
  async status(workflow: string, name: string): Promise<string | undefined> {
    const arn = this.stateMachines[workflow];
    if (!arn) return undefined;
    try {
      const r = await this.sfn.send(
        new DescribeExecutionCommand({ executionArn: `${arn.replace(':stateMachine:', ':execution:')}:${name}` }),
      );
      return r.status;
    } catch (e) {
      if ((e as Error).name === 'ExecutionDoesNotExist') return undefined;
      throw e;
    }
  }
}
