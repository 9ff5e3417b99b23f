import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logger } from '../../shared/observability.ts';
import { loadInventoryModeConfig } from './inventory-config.ts';
import { createInventoryStep } from './inventory-step.ts';

/** The inventory mode's Lambda (plan, shard and merge steps of a pass; see shard.ts). Bundled on its own. */
export const run = createInventoryStep(loadInventoryModeConfig(process.env));
export const handler = middy(run).use(injectLambdaContext(logger, { resetKeys: true }));
