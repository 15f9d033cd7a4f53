import { App } from 'aws-cdk-lib';
import { addEnvironmentStack } from '../lib/stack.js';
import { loadWorkspace, PROJECT_ROOT } from '../lib/workspace.js';

/** The CDK app: one AgentFlowStack for the environment named by `-c env=<name>` (default dev). */
const app = new App();
addEnvironmentStack(app, String(app.node.tryGetContext('env') ?? 'dev'), loadWorkspace(), PROJECT_ROOT);
app.synth();
