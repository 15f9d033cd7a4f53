import { type RemovalPolicy, Validations } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  type AslDefinition,
  callbackStatesWithoutTimeout,
  compileWorkflow,
  executionTimeoutProblems,
  hasCallbackStates,
  TASK_FUNCTIONS,
  type TaskKind,
  type Workflow,
} from '../workflow/index.js';

/** Props of {@link WorkflowStateMachine}. */
export interface WorkflowStateMachineProps {
  readonly workflow: Workflow;
  /** The Lambda function of each task kind the compiled definition calls. */
  readonly functions: Readonly<Record<TaskKind, IFunction>>;
  /** Name prefix, e.g. `agentflow-dev`. */
  readonly namePrefix: string;
  readonly logRetention: RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  /** STANDARD (the default) or EXPRESS; a definition with callback states must be STANDARD. */
  readonly type?: StateMachineType;
  /** A definition to deploy instead of the compiled one (tests of the synth-time checks). */
  readonly definition?: AslDefinition;
}

/**
 * One STANDARD state machine for one workflow, from the same compiled definition the local runtime
 * runs (`compileWorkflow`); function ARNs arrive through definition substitutions. Logging ALL
 * without execution data (task tokens stay out of logs), X-Ray tracing on, and invoke grants on
 * exactly the task functions.
 */
export class WorkflowStateMachine extends Construct {
  readonly stateMachine: StateMachine;

  constructor(scope: Construct, id: string, props: WorkflowStateMachineProps) {
    super(scope, id);
    const definition = props.definition ?? compileWorkflow(props.workflow);
    const type = props.type ?? StateMachineType.STANDARD;
    // Synth-time checks: nothing may wait forever, no step may outlive the execution, and task tokens exist only on STANDARD.
    this.node.addValidation({
      validate: () => [
        ...callbackStatesWithoutTimeout(definition).map(
          (s) => `workflow ${props.workflow.id}: callback state "${s}" waits for a task token without TimeoutSeconds`,
        ),
        ...executionTimeoutProblems(definition).map((p) => `workflow ${props.workflow.id}: ${p}`),
        ...(hasCallbackStates(definition) && type !== StateMachineType.STANDARD
          ? [`workflow ${props.workflow.id}: callback states need a STANDARD state machine (Express has no task tokens)`]
          : []),
      ],
    });
    const size = JSON.stringify(definition).length;
    // Source: https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html (definition size 1 MB)
    if (size > 1_000_000) {
      throw new Error(
        `workflow ${props.workflow.id}: the compiled definition is ${size} bytes, over Step Functions' 1 MB limit; shorten the agent prompts`,
      );
    }
    const substitutions: Record<string, string> = {};
    for (const [kind, key] of Object.entries(TASK_FUNCTIONS) as Array<[TaskKind, string]>) {
      substitutions[key] = props.functions[kind].functionArn;
    }
    this.stateMachine = new StateMachine(this, 'StateMachine', {
      stateMachineName: `${props.namePrefix}-${props.workflow.id}`.slice(0, 80),
      stateMachineType: type,
      definitionBody: DefinitionBody.fromString(JSON.stringify(definition)),
      definitionSubstitutions: substitutions,
      tracingEnabled: true,
      logs: {
        // A generated name: a retained log group of an earlier (failed or destroyed) deploy does
        // not block the next one with "already exists".
        destination: new LogGroup(this, 'Logs', { retention: props.logRetention, removalPolicy: props.removalPolicy }),
        level: LogLevel.ALL,
        // Execution data (inputs, outputs) stays out of the logs: it holds task tokens.
        includeExecutionData: false,
      },
    });
    for (const fn of new Set(Object.values(props.functions))) fn.grantInvoke(this.stateMachine);
    Validations.of(this).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'X-Ray tracing and CloudWatch Logs delivery for Step Functions (logs:CreateLogDelivery, …) support no resource-level permissions (https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html).',
    });
  }
}
