import { App, Stack, Validations } from 'aws-cdk-lib';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { loadEnvironmentConfig } from '../../lib/config.js';
import { AgentFlowStack } from '../../lib/stack.js';
import type { ModelCatalog } from '../../lib/workflow/index.js';
import { loadWorkspace, PROJECT_ROOT } from '../../lib/workspace.js';

/**
 * cdk-nag's AwsSolutions rule pack (v3, as a CDK policy-validation plugin) over the whole stack:
 * the synth fails on any finding that is neither fixed nor acknowledged with its full id and a
 * reason in the stack's code.
 */

const ws = loadWorkspace();
const groups = {
  'mobile-leads': { slack: ['U024BE7LH'], github: ['@acme/mobile-leads'] },
  'support-leads': { slack: ['U024BE7LH'] },
  'mobile-team': { slack: ['U024BE7LH'] },
  'support-team': { slack: ['U024BE7LH'] },
};
const environments = {
  dev: { region: 'us-east-1', logRetentionDays: 14, removalPolicy: 'destroy', groups },
  prod: { region: 'eu-west-1', logRetentionDays: 90, removalPolicy: 'retain', groups, alarmEmail: 'oncall@example.com' },
};

function synthWithNag(envName: 'dev' | 'prod') {
  // Skip bundling: the rules read the template.
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new AgentFlowStack(app, `AgentFlow-${envName}`, {
    envName,
    config: loadEnvironmentConfig(environments, envName),
    workflows: [...ws.workflows.values()],
    models: ws.catalog?.models as ModelCatalog,
    projectRoot: PROJECT_ROOT,
    env: { region: environments[envName].region, account: '123456789012' },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}

describe('cdk-nag AwsSolutions checks', () => {
  it.each(['dev', 'prod'] as const)('finds nothing unacknowledged in the %s stack', (envName) => {
    const { app } = synthWithNag(envName);
    let report = '';
    try {
      app.synth();
    } catch (e) {
      report = (e as Error).message;
    }
    // The plugin fails the synth with its report when any finding is neither fixed nor acknowledged.
    expect(report).toBe('');
  });

  it('fails the synth on an unacknowledged finding (the check can fail)', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Bare', { env: { region: 'us-east-1', account: '123456789012' } });
    new Bucket(stack, 'NoLogsNoSsl');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow();
  });

  it('protects the prod stack and its table from deletion, and subscribes the alarm e-mail', () => {
    const { app, stack } = synthWithNag('prod');
    const template = app.synth().getStackByName(stack.stackName);
    expect(stack.terminationProtection).toBe(true);
    const resources = Object.values(template.template.Resources as Record<string, { Type: string; Properties: Record<string, unknown> }>);
    const table = resources.find((r) => r.Type === 'AWS::DynamoDB::GlobalTable');
    expect(JSON.stringify(table?.Properties.Replicas)).toContain('"DeletionProtectionEnabled":true');
    expect(resources.some((r) => r.Type === 'AWS::SNS::Subscription' && r.Properties.Endpoint === 'oncall@example.com')).toBe(true);
  });
});
