import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { S3Client } from '@aws-sdk/client-s3';
import middy from '@middy/core';
import { S3ArtifactStore } from '../adapters/artifacts.js';
import { GitHubChangeSource } from '../adapters/changes.js';
import { GitHubPublisher } from '../adapters/comments.js';
import { requireEnv } from '../shared/env.js';
import { githubClient } from '../shared/octokit.js';
import { logger } from '../shared/powertools.js';
import { loadContext } from './load-context.js';

const artifacts = new S3ArtifactStore(new S3Client({}), requireEnv('ARTIFACT_BUCKET'));

/** LoadContext task: see {@link loadContext}. */
export const handler = middy(async (event: unknown) => {
  const github = await githubClient();
  // The publisher reads the feedback on the last review's comments (reactions, dismissals).
  return loadContext(event, { changes: new GitHubChangeSource(github), artifacts, forges: { github: new GitHubPublisher(github) } });
}).use(injectLambdaContext(logger));
