#!/usr/bin/env node
// Launcher: runs the TypeScript CLI through tsx, so `npx agentflow` needs no build step.
import { register } from 'tsx/esm/api';

register();
await import('./agentflow.ts');
