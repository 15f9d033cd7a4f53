import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { S3Client } from '@aws-sdk/client-s3';
import middy from '@middy/core';
import { S3ArtifactStore } from '../adapters/artifacts.js';
import { requireEnv } from '../shared/env.js';
import { cloudChangeSource, cloudPublishers } from '../shared/forges.js';
import { logger } from '../shared/powertools.js';
import { loadContext } from './load-context.js';

const artifacts = new S3ArtifactStore(new S3Client({}), requireEnv('ARTIFACT_BUCKET'));

const changes = cloudChangeSource();
// The publishers read the feedback on the last review's comments (reactions, dismissals).
const forges = cloudPublishers();

/** LoadContext task: see {@link loadContext}. Reads the change from its forge (GitHub or GitLab). */
export const handler = middy(async (event: unknown) => {
  return loadContext(event, { changes, artifacts, forges });
}).use(injectLambdaContext(logger));
