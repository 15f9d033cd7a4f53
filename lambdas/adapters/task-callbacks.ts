import { SendTaskFailureCommand, SendTaskSuccessCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { TaskCallbackError, type TaskCallbacks } from '../core/approvals.js';

/** Step Functions' answers that mean the waiting task is gone: it timed out, or the token is no longer valid. */
function gone(e: unknown): never {
  const name = (e as Error).name;
  if (name === 'TaskTimedOut') throw new TaskCallbackError('timed-out', 'the task timed out');
  if (name === 'InvalidToken' || name === 'TaskDoesNotExist')
    throw new TaskCallbackError('invalid', `the task token is no longer valid (${name})`);
  throw e;
}

/**
 * {@link TaskCallbacks} on Step Functions `SendTaskSuccess` / `SendTaskFailure`. Error and cause are
 * cut to the API's limits (256 and 32,768 characters).
 * Source: https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskFailure.html (2026-11)
 */
export class SfnTaskCallbacks implements TaskCallbacks {
  constructor(private readonly sfn: SFNClient) {}

  async succeed(taskToken: string, output: Record<string, unknown>): Promise<void> {
    await this.sfn.send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(output) })).catch(gone);
  }

  async fail(taskToken: string, error: string, cause: string): Promise<void> {
    await this.sfn.send(new SendTaskFailureCommand({ taskToken, error: error.slice(0, 256), cause: cause.slice(0, 32_768) })).catch(gone);
  }
}
