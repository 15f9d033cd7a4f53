import { Duration } from 'aws-cdk-lib';
import type { HttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
import { Alarm, ComparisonOperator, type IMetric, MathExpression, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

/** Props of {@link Operations}. */
export interface OperationsProps {
  /** Name prefix, e.g. `agentflow-dev`. */
  readonly prefix: string;
  /** The namespace of AgentFlow's own metrics (gateway, AgentsFailed). */
  readonly namespace: string;
  readonly stateMachines: ReadonlyArray<{ readonly id: string; readonly sm: StateMachine }>;
  /** Every Lambda function, by a short name for the alarm. */
  readonly functions: Readonly<Record<string, IFunction>>;
  readonly api: HttpApi;
  /** Subscribed to the topic by e-mail when set. */
  readonly email?: string;
}

/** One alarm of {@link Operations}: what it watches, for the README and the test. */
export interface AlarmSpec {
  readonly name: string;
  readonly metric: IMetric;
  /** Alarm at or above this many in one 5-minute period. */
  readonly threshold: number;
}

/**
 * Alarms on what needs a person, all to one SNS topic (`<prefix>-alarms`, optionally with an
 * e-mail subscription): executions failed or timed out (per state machine), Lambda errors and
 * throttles (per function), API 5xx answers, agents failed, budget refusals and circuit breakers
 * opened (AgentFlow's metrics, summed over every dimension with a Metrics Insights query).
 * Missing data is "not breaching": no traffic is no alarm.
 */
export class Operations extends Construct {
  readonly topic: Topic;
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: OperationsProps) {
    super(scope, id);
    this.topic = new Topic(this, 'Alarms', { topicName: `${props.prefix}-alarms`, displayName: 'AgentFlow alarms', enforceSSL: true });
    if (props.email) this.topic.addSubscription(new EmailSubscription(props.email));
    const period = Duration.minutes(5);
    const insights = (metric: string) =>
      new MathExpression({ expression: `SELECT SUM(${metric}) FROM "${props.namespace}"`, period, label: metric });
    const specs: AlarmSpec[] = [
      ...props.stateMachines.flatMap(({ id: wf, sm }) => [
        { name: `${wf} executions failed`, metric: sm.metricFailed({ period }), threshold: 1 },
        { name: `${wf} executions timed out`, metric: sm.metricTimedOut({ period }), threshold: 1 },
      ]),
      ...Object.entries(props.functions).flatMap(([name, fn]) => [
        { name: `${name} Lambda errors`, metric: fn.metricErrors({ period }), threshold: 1 },
        { name: `${name} Lambda throttles`, metric: fn.metricThrottles({ period }), threshold: 1 },
      ]),
      { name: 'webhook API 5xx answers', metric: props.api.metricServerError({ period }), threshold: 5 },
      { name: 'agents failed', metric: insights('AgentsFailed'), threshold: 1 },
      { name: 'budget refusals', metric: insights('BudgetRejected'), threshold: 1 },
      { name: 'circuit breakers opened', metric: insights('BreakerOpened'), threshold: 1 },
    ];
    const action = new SnsAction(this.topic);
    for (const [i, spec] of specs.entries()) {
      const alarm = new Alarm(this, `Alarm${i}`, {
        alarmName: `${props.prefix}: ${spec.name}`.slice(0, 255),
        alarmDescription: `AgentFlow: ${spec.name} (at least ${spec.threshold} in 5 minutes)`,
        metric: spec.metric,
        threshold: spec.threshold,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(action);
      this.alarms.push(alarm);
    }
  }
}
