import { Logger } from '@aws-lambda-powertools/logger';

/** The one Logger of a Lambda (service name from POWERTOOLS_SERVICE_NAME). */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'agentflow' });
