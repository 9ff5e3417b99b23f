import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';

/**
 * Powertools Logger and Metrics (EMF), one of each per function bundle. Powertools reads its own settings:
 * POWERTOOLS_SERVICE_NAME (set per function by the CDK app), POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL.
 */
export const logger = new Logger();
export const metrics = new Metrics();
