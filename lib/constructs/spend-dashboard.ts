import { Duration } from 'aws-cdk-lib';
import { Dashboard, GraphWidget, MathExpression, TextWidget } from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { FINDINGS_ACCEPTED_METRIC, FINDINGS_REJECTED_METRIC } from '../../lambdas/core/incremental.js';

/** Props of {@link SpendDashboard}. */
export interface SpendDashboardProps {
  /** Dashboard name. */
  readonly dashboardName: string;
  /** The EMF namespace the gateway's metrics are published in. @default 'AgentFlow' */
  readonly namespace?: string;
}

/**
 * A CloudWatch dashboard of the model gateway's metrics (Powertools Metrics, EMF): spend in USD by
 * provider and model, tokens, cache hits, budget rejections, breaker openings, fallbacks and
 * provider latency (p50/p99). Widgets use `SEARCH` over the gateway's dimensions (workflow, agent,
 * provider, model, project, service), so new models and projects appear without a deploy.
 */
export class SpendDashboard extends Construct {
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: SpendDashboardProps) {
    super(scope, id);
    const ns = props.namespace ?? 'AgentFlow';
    const dims = '{' + [ns, 'agent', 'model', 'project', 'provider', 'service', 'workflow'].join(',') + '}';
    // One line per dimension combination (provider, model, agent, ...), and their sum.
    const each = (metric: string, stat: string, label: string) =>
      new MathExpression({ expression: `SEARCH('${dims} MetricName="${metric}"', '${stat}', 3600)`, label, period: Duration.hours(1) });
    const total = (metric: string, label: string) =>
      new MathExpression({ expression: `SUM(SEARCH('${dims} MetricName="${metric}"', 'Sum', 3600))`, label, period: Duration.hours(1) });
    this.dashboard = new Dashboard(this, 'Dashboard', { dashboardName: props.dashboardName });
    this.dashboard.addWidgets(
      new TextWidget({
        markdown: '# AgentFlow spend\nModel cost in USD as the gateway priced it from provider usage (workflows/models.yml prices).',
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({ title: 'Spend (USD / hour), total', left: [total('CostUsd', 'USD')], width: 12 }),
      new GraphWidget({ title: 'Spend (USD / hour) by provider, model, agent', left: [each('CostUsd', 'Sum', '')], width: 12 }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Tokens / hour',
        left: [total('InputTokens', 'input'), total('OutputTokens', 'output'), total('CachedTokens', 'cached')],
        width: 12,
      }),
      new GraphWidget({
        title: 'Gateway events / hour',
        left: [
          total('CacheHit', 'cache hits'),
          total('FallbackUsed', 'fallbacks'),
          total('BudgetRejected', 'budget rejections'),
          total('BreakerOpened', 'breakers opened'),
        ],
        width: 12,
      }),
    );
    // People's feedback on inline comments (Aggregate's FindingsAccepted / FindingsRejected, per agent and category).
    const feedback = '{' + [ns, 'agent', 'category', 'service', 'workflow'].join(',') + '}';
    const fb = (metric: string, label: string, sum: boolean) =>
      new MathExpression({
        expression: sum
          ? `SUM(SEARCH('${feedback} MetricName="${metric}"', 'Sum', 86400))`
          : `SEARCH('${feedback} MetricName="${metric}"', 'Sum', 86400)`,
        label,
        period: Duration.days(1),
      });
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Review feedback / day: accepted (👍) and rejected (👎, dismissed)',
        left: [fb(FINDINGS_ACCEPTED_METRIC, 'accepted', true), fb(FINDINGS_REJECTED_METRIC, 'rejected', true)],
        width: 12,
      }),
      new GraphWidget({
        title: 'Rejected findings / day by agent and category',
        left: [fb(FINDINGS_REJECTED_METRIC, '', false)],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Provider latency (ms)',
        left: [each('ProviderLatency', 'p50', 'p50'), each('ProviderLatency', 'p99', 'p99')],
        width: 24,
      }),
    );
  }
}
