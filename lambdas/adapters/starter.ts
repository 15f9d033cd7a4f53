import { DescribeExecutionCommand, ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { ExecutionStarter } from '../core/ports.js';

/** Starts executions with `StartExecution`; a name that already exists means a redelivery. */
export class SfnExecutionStarter implements ExecutionStarter {
  constructor(
    private readonly sfn: SFNClient,
    /** State machine ARN by workflow id. */
    private readonly stateMachines: Readonly<Record<string, string>>,
  ) {}

  async start(workflow: string, name: string, input: unknown): Promise<{ name: string; started: boolean }> {
    const arn = this.stateMachines[workflow];
    if (!arn) throw new Error(`no state machine for workflow ${workflow}`);
    try {
      await this.sfn.send(new StartExecutionCommand({ stateMachineArn: arn, name, input: JSON.stringify(input) }));
      return { name, started: true };
    } catch (e) {
      if (e instanceof ExecutionAlreadyExists) return { name, started: false };
      throw e;
    }
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
