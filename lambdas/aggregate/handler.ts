import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { S3Client } from '@aws-sdk/client-s3';
import middy from '@middy/core';
import { S3ArtifactStore } from '../adapters/artifacts.js';
import { requireEnv } from '../shared/env.js';
import { logger } from '../shared/powertools.js';
import { aggregate } from './aggregate.js';

const artifacts = new S3ArtifactStore(new S3Client({}), requireEnv('ARTIFACT_BUCKET'));

/** Aggregate task: see {@link aggregate}. */
export const handler = middy(async (event: unknown) => aggregate(event, { artifacts })).use(injectLambdaContext(logger));
