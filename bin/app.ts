import { App } from 'aws-cdk-lib';
import { loadEnvironmentConfig } from '../lib/config.js';
import { AgentFlowStack } from '../lib/stack.js';
import { formatDiagnostic } from '../lib/workflow/index.js';
import { loadWorkspace, PROJECT_ROOT } from '../lib/workspace.js';

/** The CDK app: one AgentFlowStack for the environment named by `-c env=<name>` (default dev). */
const app = new App();
const envName = String(app.node.tryGetContext('env') ?? 'dev');
const config = loadEnvironmentConfig(app.node.tryGetContext('environments'), envName);
const ws = loadWorkspace();
if (ws.diagnostics.length > 0 || !ws.catalog) {
  throw new Error(`workflows are not valid:\n${ws.diagnostics.map(formatDiagnostic).join('\n')}`);
}
new AgentFlowStack(app, `AgentFlow-${envName}`, {
  envName,
  config,
  workflows: [...ws.workflows.values()],
  models: ws.catalog.models,
  projectRoot: PROJECT_ROOT,
  env: { region: config.region, ...(config.account ? { account: config.account } : {}) },
  description: `AgentFlow (${envName}): AI agent workflows on pull requests`,
});
app.synth();
