import { randomUUID } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import * as z from 'zod/mini';
import { configureClients, s3Client } from '../../shared/aws.ts';
import { describeError, JobFailedError, UnsupportedEventError } from '../../shared/errors.ts';
import type { HistoryRecord } from '../../shared/history.ts';
import { finishRun, runJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { logger } from '../../shared/observability.ts';
import type { InventoryModeConfig } from './inventory-config.ts';
import { inventoryJob, shardOptions } from './inventory-source.ts';
import {
  checkPass,
  mergeShards,
  passKeys,
  planPass,
  putJson,
  readAttempts,
  readDescriptor,
  releasePassLease,
  type AttemptError,
  type PassDescriptor,
} from './shard.ts';

/**
 * The inventory Lambda's three steps, `{"step": "plan" | "shard" | "merge", …}` from the state machine (see
 * shard.ts). A shard is one part of the pass's run: `runJob` with the inventory as observe source, its whole report
 * kept per attempt in the pass folder (also when it fails, before the failure reaches the Distributed Map). The
 * merge finishes the pass as the runner finishes a run, and returns only a small result: the report itself is in
 * the run history and the pass folder, and a state's output must stay under 256 KiB.
 */

const stepEvent = z.discriminatedUnion('step', [
  z.strictObject({ step: z.literal('plan'), pass: z.string(), input: z.optional(z.unknown()) }),
  z.strictObject({ step: z.literal('merge'), pass: z.string(), mapError: z.optional(z.unknown()) }),
]);

/** What a shard returns to the Distributed Map (its report is in S3): small, whatever the shard did. */
export interface ShardResult {
  readonly index: number;
  readonly summary: Report['summary'];
  readonly stoppedEarly?: 'time';
}

/** What the merge returns to the state machine: where the pass's report is, and its counts. */
export interface PassResult {
  readonly pass: string;
  readonly summary: Report['summary'];
  /** `s3://…/report.json` in the pass folder. */
  readonly report: string;
  readonly history?: HistoryRecord;
  readonly stoppedEarly?: 'time';
}

type StepContext = Partial<Context>;

export function createInventoryStep(config: InventoryModeConfig, { clock = () => new Date() }: { clock?: () => Date } = {}) {
  configureClients(config);
  return async (event: unknown, context: StepContext = {}, { signal = new AbortController().signal } = {}) => {
    const s3 = s3Client();
    if (typeof event === 'object' && event !== null && (event as { step?: unknown }).step === 'shard') {
      return runShard(s3, config, event, context, signal, clock);
    }
    const parsed = stepEvent.safeParse(event);
    if (!parsed.success)
      throw new UnsupportedEventError(`inventory step ${JSON.stringify(event).slice(0, 200)} (expected step plan, shard or merge)`);
    const e = parsed.data;
    return e.step === 'plan'
      ? planPass(s3, config, e.pass, e.input, clock(), signal)
      : mergePass(s3, config, e.pass, e.mapError, context, signal, clock);
  };
}

const shardRef = z.object({ pass: shardOptions.pass, index: shardOptions.index });

async function runShard(
  s3: S3Client,
  config: InventoryModeConfig,
  event: object,
  context: StepContext,
  signal: AbortSignal,
  clock: () => Date,
): Promise<ShardResult> {
  // Each attempt its own object: a retry never overwrites what an earlier attempt did (or why it died).
  const attempt = (context.awsRequestId ?? randomUUID()).replace(/[^A-Za-z0-9-]/g, '_');
  const ref = shardRef.safeParse(event);
  const keep = ref.success ? passKeys(config, ref.data.pass).attempt(ref.data.index, attempt) : undefined;
  try {
    const report = await runJob(inventoryJob, config, event, context, {
      signal,
      clock,
      ...(keep ? { keepPart: (part) => putJson(s3, config, keep, part, signal) } : {}),
    });
    return {
      // An item that is not a shard's never gets here: the runner refuses it, naming the field.
      index: ref.success ? ref.data.index : -1,
      summary: report.summary,
      ...(report.stoppedEarly ? { stoppedEarly: 'time' } : {}),
    };
  } catch (error) {
    // Died before its report (its part is kept when it has one): say so for the merge, then let Step Functions retry.
    if (keep && ref.success && !(error instanceof JobFailedError)) {
      const died: AttemptError = { index: ref.data.index, attempt, failedAt: clock().toISOString(), error: describeError(error) };
      await putJson(s3, config, keep, died, signal).catch((e: unknown) =>
        logger.error('attempt record failed', { error: describeError(e) }),
      );
    }
    throw error;
  }
}

/**
 * One report for the pass from every attempt of every shard, finished by the runner (history, notification,
 * metrics, the `job report` line); kept at `report.json` in the pass folder too. Throws JobFailedError after it
 * all when an action failed, or a shard failed or is missing.
 */
async function mergePass(
  s3: S3Client,
  config: InventoryModeConfig,
  pass: string,
  mapError: unknown,
  context: StepContext,
  signal: AbortSignal,
  clock: () => Date,
): Promise<PassResult> {
  checkPass(pass);
  const descriptor = await readDescriptor(s3, config, pass, signal);
  try {
    return await finishPass(s3, config, descriptor, mapError, context, signal, clock);
  } finally {
    // Also after a failed pass: collect-garbage may run again as soon as this pass touches nothing any more.
    await releasePassLease(s3, config, descriptor, signal);
  }
}

async function finishPass(
  s3: S3Client,
  config: InventoryModeConfig,
  descriptor: PassDescriptor,
  mapError: unknown,
  context: StepContext,
  signal: AbortSignal,
  clock: () => Date,
): Promise<PassResult> {
  const pass = descriptor.pass;
  const keys = passKeys(config, pass);
  const merged = mergeShards(descriptor, await readAttempts(s3, config, pass, signal), mapError);
  logger.appendKeys({ job: inventoryJob.name, trigger: 'manual', dryRun: descriptor.dryRun, correlationId: pass });
  let report: Report;
  try {
    report = await finishRun(inventoryJob.name, merged.partial, merged.actions, {
      planned: merged.planned,
      refusals: merged.refusals,
      metrics: merged.metrics,
      config,
      context,
      signal,
      clock,
    });
  } catch (error) {
    const failed = error instanceof JobFailedError ? (error.report as Report | undefined) : undefined;
    if (failed) await putJson(s3, config, keys.report, failed, signal);
    throw error;
  }
  await putJson(s3, config, keys.report, report, signal);
  return {
    pass,
    summary: report.summary,
    report: `s3://${config.inventoryBucket}/${keys.report}`,
    ...(report.history ? { history: report.history } : {}),
    ...(report.stoppedEarly ? { stoppedEarly: 'time' as const } : {}),
  };
}
