import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { GatewayDimensions, GatewayMetricName, GatewayMetrics } from '../core/gateway.js';

/** Units of the gateway's metrics (CloudWatch units). */
export const METRIC_UNITS: Record<GatewayMetricName, (typeof MetricUnit)[keyof typeof MetricUnit]> = {
  CostUsd: MetricUnit.NoUnit,
  InputTokens: MetricUnit.Count,
  OutputTokens: MetricUnit.Count,
  CachedTokens: MetricUnit.Count,
  CacheHit: MetricUnit.Count,
  BudgetRejected: MetricUnit.Count,
  BreakerOpened: MetricUnit.Count,
  FallbackUsed: MetricUnit.Count,
  ProviderLatency: MetricUnit.Milliseconds,
};

/**
 * Gateway metrics through Powertools Metrics (CloudWatch EMF, namespace from
 * `POWERTOOLS_METRICS_NAMESPACE`): one EMF document per record, with the workflow, agent,
 * provider, model and project dimensions. Each distinct dimension set is one CloudWatch custom metric.
 */
export class PowertoolsGatewayMetrics implements GatewayMetrics {
  constructor(private readonly metrics: Metrics) {}

  record(d: GatewayDimensions, values: Partial<Record<GatewayMetricName, number>>): void {
    this.metrics.addDimensions({ workflow: d.workflow, agent: d.agent, provider: d.provider, model: d.model, project: d.project });
    for (const [name, value] of Object.entries(values) as Array<[GatewayMetricName, number]>) {
      this.metrics.addMetric(name, METRIC_UNITS[name], value);
    }
    this.metrics.publishStoredMetrics();
  }
}

/** Gateway metrics kept in memory: totals by metric name (local runs, tests and the bench). */
export class MemoryGatewayMetrics implements GatewayMetrics {
  readonly totals: Partial<Record<GatewayMetricName, number>> = {};
  readonly records: Array<{ dimensions: GatewayDimensions; values: Partial<Record<GatewayMetricName, number>> }> = [];

  record(dimensions: GatewayDimensions, values: Partial<Record<GatewayMetricName, number>>): void {
    this.records.push({ dimensions, values });
    if (this.records.length > 10_000) this.records.shift();
    for (const [k, v] of Object.entries(values) as Array<[GatewayMetricName, number]>) this.totals[k] = (this.totals[k] ?? 0) + v;
  }
}
