import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import middy from '@middy/core';
import { S3ArtifactStore } from '../adapters/artifacts.js';
import { GitHubPublisher } from '../adapters/comments.js';
import { DynamoRunStore } from '../adapters/runs.js';
import { cloudThreads } from '../shared/approvals.js';
import { requireEnv } from '../shared/env.js';
import { githubClient } from '../shared/octokit.js';
import { logger } from '../shared/powertools.js';
import { publish } from './publish.js';

const artifacts = new S3ArtifactStore(new S3Client({}), requireEnv('ARTIFACT_BUCKET'));
const runs = new DynamoRunStore(
  DynamoDBDocumentClient.from(new DynamoDBClient({}), { marshallOptions: { removeUndefinedValues: true } }),
  requireEnv('TABLE_NAME'),
);

/** Publish task: see {@link publish}. */
const threads = cloudThreads();

export const handler = middy(async (event: unknown) =>
  publish(event, { artifacts, runs, forges: { github: new GitHubPublisher(await githubClient()) }, ...(threads ? { threads } : {}) }),
).use(injectLambdaContext(logger));
