import { AbortMultipartUploadCommand, DeleteObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { mapLimit } from '../../shared/concurrency.ts';
import { describeError, errorName } from '../../shared/errors.ts';
import type { ApplyContext, Outcome } from '../../shared/job.ts';
import { clearCheckpoint, saveCheckpoint, type CheckpointOptions } from './checkpoint.ts';
import type { Config } from './config.ts';
import { CHANGED_DURING_RUN, checkpointFate, saveBeforeApply, type PurgePlan } from './model.ts';
import type { PurgeAction } from './model.ts';
import { dataKeyOf, objectKeysOf } from './plan.ts';
import { movedSince, multipartUploadIdsOf, readActivity } from './recheck.ts';

/**
 * Applies a purge plan in two phases. It batches (DeleteObjects carries up to 1000 keys of many uploads), so
 * apply works on the whole plan rather than one action at a time as the other jobs' `apply(action, …)` do.
 *
 * 1. **Re-check, then abort**, `ABORT_CONCURRENCY` actions at a time: right before its abort, each action's upload
 *    is read again (its prefix listing + ListParts, recheck.ts); if anything moved since the plan — an object or
 *    a part newer than what the plan saw, a new or missing object — it is skipped (`changed-during-run`) and left
 *    whole for the next run. Then its multipart upload(s) are aborted. The parts are what costs
 *    money, so they go first: if the run dies after this phase, the upload's directory (a few bytes) is still
 *    listed, still stale, and the next run deletes it. (Deleting first would leave, on a crash, a multipart
 *    upload that only ListMultipartUploads can find.) Once aborted, an upload cannot be resumed, so the re-check
 *    before the abort also covers the deletes that follow.
 * 2. **Delete** the directories' objects with DeleteObjects, at most 1000 keys per request (Quiet: only
 *    failures come back), `DELETE_CONCURRENCY` requests at a time. A directory whose abort failed is not
 *    deleted, so the next run still sees the whole upload and retries both.
 *
 * Per-key errors map back to the upload that owns the key: that upload's action fails, the others succeed.
 * `NoSuchUpload` / `NoSuchKey` count as done. Throttling (`SlowDown`, 503) is retried by the SDK; a request
 * that still fails fails only the actions it carried. No new request starts once the time budget runs low.
 *
 * Around the two phases, the listing's checkpoint (whole-registry runs, checkpoint.ts): saved before acting (a
 * partial listing's progress, or a listing of several runs now complete), cleared once the plan is done
 * (model.ts checkpointFate). The runner never calls apply in a dry run, so a dry run never writes it.
 */
export const ABORT_CONCURRENCY = 16;
export const DELETE_CONCURRENCY = 4;
export const DELETE_BATCH = 1000;

export interface ApplyOptions {
  readonly bucket: string;
  readonly root: string;
}

/** The job's apply: the checkpoint's save, the whole plan at once (see above), then the checkpoint's clear. */
export async function apply(plan: PurgePlan, ctx: ApplyContext<Config>, { s3 }: { s3: S3Client }): Promise<(Outcome | undefined)[]> {
  const listing = plan.listing;
  const checkpoint = checkpointOptions(ctx);
  if (listing && saveBeforeApply(listing)) await saveCheckpoint(s3, checkpoint, listing.progress);
  const outcomes = await applyPurge(s3, plan.actions, ctx, { bucket: ctx.config.bucket, root: ctx.config.root });
  if (listing && checkpointFate(listing, plan, outcomes) === 'cleared') await clearCheckpoint(s3, checkpoint);
  return outcomes;
}

function checkpointOptions(ctx: ApplyContext<Config>): CheckpointOptions {
  const { bucket, root, listConcurrency } = ctx.config;
  return { bucket, root, listConcurrency, signal: ctx.signal, now: ctx.now };
}

interface Progress {
  notStarted: boolean;
  /** Why the re-check found it moved (then nothing is done to it). */
  changed?: string;
  aborted: number;
  abortsAlreadyGone: number;
  abortsNotStarted: number;
  deleted: number;
  deletesNotStarted: number;
  errors: string[];
}

export async function applyPurge(
  s3: S3Client,
  actions: readonly PurgeAction[],
  ctx: Pick<ApplyContext<unknown>, 'signal' | 'hasTime' | 'now'>,
  o: ApplyOptions,
): Promise<(Outcome | undefined)[]> {
  const progress: Progress[] = actions.map(() => ({
    notStarted: false,
    aborted: 0,
    abortsAlreadyGone: 0,
    abortsNotStarted: 0,
    deleted: 0,
    deletesNotStarted: 0,
    errors: [],
  }));
  const canStart = (): boolean => !ctx.signal.aborted && ctx.hasTime();

  // Phase 1: re-check each action's upload, then abort its multipart upload(s).
  await mapLimit(actions, ABORT_CONCURRENCY, async (action, index) => {
    const p = progress[index] as Progress;
    if (!canStart()) {
      p.notStarted = true;
      return;
    }
    await recheckAndAbort(s3, action, p, { ...o, signal: ctx.signal, now: ctx.now }, canStart);
  });

  // Phase 2: delete the objects of every upload whose multipart uploads are all gone.
  const owner = new Map<string, number>();
  const keys: string[] = [];
  actions.forEach((action, index) => {
    const p = progress[index] as Progress;
    if (p.notStarted || p.changed !== undefined || p.errors.length > 0 || p.abortsNotStarted > 0) return;
    for (const key of objectKeysOf(action, o.root)) {
      owner.set(key, index);
      keys.push(key);
    }
  });
  const batches: string[][] = [];
  for (let i = 0; i < keys.length; i += DELETE_BATCH) batches.push(keys.slice(i, i + DELETE_BATCH));
  await mapLimit(batches, DELETE_CONCURRENCY, async (batch) => {
    const owners = (key: string): Progress => progress[owner.get(key) as number] as Progress;
    if (!canStart()) {
      for (const key of batch) owners(key).deletesNotStarted += 1;
      return;
    }
    const failed = new Set<string>();
    try {
      const res = await s3.send(
        new DeleteObjectsCommand({ Bucket: o.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        { abortSignal: ctx.signal },
      );
      for (const e of res.Errors ?? []) {
        if (!e.Key || !owner.has(e.Key) || e.Code === 'NoSuchKey') continue;
        failed.add(e.Key);
        owners(e.Key).errors.push(`delete ${e.Key}: ${e.Code ?? 'Error'}: ${e.Message ?? 'no message'}`);
      }
    } catch (error) {
      const message = describeError(error);
      for (const key of batch) {
        failed.add(key);
        owners(key).errors.push(`DeleteObjects of ${batch.length} keys: ${message}`);
      }
    }
    for (const key of batch) if (!failed.has(key)) owners(key).deleted += 1;
  });

  return actions.map((action, index) => outcomeOf(action, progress[index] as Progress));
}

async function recheckAndAbort(
  s3: S3Client,
  action: PurgeAction,
  p: Progress,
  o: ApplyOptions & { signal: AbortSignal; now: Date },
  canStart: () => boolean,
): Promise<void> {
  let now;
  try {
    now = await readActivity(s3, o, action);
  } catch (error) {
    p.errors.push(`re-check: ${describeError(error)}`);
    return;
  }
  p.changed = movedSince(action, now);
  if (p.changed !== undefined) return;
  const key = dataKeyOf(action, o.root);
  for (const [i, uploadId] of multipartUploadIdsOf(action).entries()) {
    if (now.parts[i]?.kind === 'gone') {
      p.abortsAlreadyGone += 1; // completed or aborted since the plan: nothing left to abort
      continue;
    }
    if (!canStart()) {
      p.abortsNotStarted += 1;
      continue;
    }
    try {
      await s3.send(new AbortMultipartUploadCommand({ Bucket: o.bucket, Key: key, UploadId: uploadId }), { abortSignal: o.signal });
      p.aborted += 1;
    } catch (error) {
      if (errorName(error) === 'NoSuchUpload' || errorName(error) === 'NoSuchKey') p.abortsAlreadyGone += 1;
      else p.errors.push(`abort ${uploadId}: ${describeError(error)}`);
    }
  }
}

function outcomeOf(action: PurgeAction, p: Progress): Outcome | undefined {
  if (p.notStarted) return undefined;
  if (p.changed !== undefined) return { status: 'skipped', reason: `${CHANGED_DURING_RUN}: ${p.changed}: left whole for the next run` };
  const detail = {
    multipartUploadsAborted: p.aborted + p.abortsAlreadyGone,
    objectsDeleted: p.deleted,
    ...(action.type === 'delete-upload' && p.deleted === action.objects.length ? { bytesDeleted: action.bytes } : {}),
  };
  if (p.errors.length > 0) {
    const kept = action.type === 'delete-upload' && p.deleted === 0 ? ' (directory kept: the next run retries)' : '';
    return { status: 'failed', error: `${p.errors[0]}${p.errors.length > 1 ? ` (+${p.errors.length - 1} more)` : ''}${kept}`, detail };
  }
  const started = p.aborted + p.abortsAlreadyGone + p.deleted;
  if (p.abortsNotStarted > 0 || p.deletesNotStarted > 0) {
    return started === 0 ? undefined : { status: 'skipped', reason: 'the Lambda time budget ran low part-way (the next run continues)' };
  }
  return { status: 'applied', detail };
}
