import { gunzipSync, gzipSync } from 'node:zlib';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { formatDuration } from '../../shared/duration.ts';
import { ConfigError, errorName } from '../../shared/errors.ts';
import { listingCheckpointKey } from '../../shared/purge-keys.ts';
import type { CheckpointFound, ListingProgress } from './model.ts';

/**
 * The resumable listing's checkpoint (the default mode, up to ~10⁷ keys). A whole-registry run lists until its
 * time budget (less LISTING_RESERVE) runs low; apply then saves where each key range stands, the multipart
 * uploads and the `_uploads` keys taken so far (enough to rebuild every candidate), and the run plans nothing;
 * the next run resumes there. The run that completes a listing of several runs saves it whole before acting and
 * clears it once apply is done (model.ts checkpointFate). Observe only reads it; a dry run never writes it.
 *
 * It lives in the registry bucket, outside the registry's root (`control-plane/purge-stale-uploads/…`, one per
 * root): the bucket is already the fleet's, it holds any size (an SSM parameter stops at 8 KB, and the keys of a
 * large registry's uploads do not fit), and IAM can name the one key exactly. A checkpoint last saved more than
 * CHECKPOINT_MAX_AGE_MS ago, or written under another configuration (bucket, root, prefix, LIST_CONCURRENCY), is
 * discarded and the report says why. Its age counts from its last save, not from the listing's start, so a
 * listing that needs many daily runs still completes; safety across those runs rests on the re-check right
 * before each abort/delete (apply), which reads every candidate live.
 */
export const CHECKPOINT_MAX_AGE_MS = 36 * 3_600_000;
const VERSION = 1;

/** What a checkpoint was listed under; a resume under anything else would mix two listings. */
interface ListingIdentity {
  readonly bucket: string;
  readonly root: string;
  readonly prefix: string;
  readonly listConcurrency: number;
}

interface Checkpoint {
  readonly version: number;
  readonly identity: ListingIdentity;
  readonly savedAt: number;
  readonly progress: ListingProgress;
}

export interface CheckpointOptions {
  readonly bucket: string;
  readonly root: string;
  readonly listConcurrency: number;
  readonly signal: AbortSignal;
  readonly now: Date;
}

export interface LoadedCheckpoint {
  readonly found: CheckpointFound;
  /** The progress to resume (only when `found` is `resumed`). */
  readonly progress?: ListingProgress;
}

const identityOf = (o: CheckpointOptions): ListingIdentity => ({
  bucket: o.bucket,
  root: o.root,
  prefix: 'repositories/',
  listConcurrency: o.listConcurrency,
});

/** Reads the checkpoint (observe's first request of a whole-registry run); never writes. */
export async function loadCheckpoint(s3: S3Client, o: CheckpointOptions): Promise<LoadedCheckpoint> {
  const key = listingCheckpointKey(o.root);
  const bytes = await readBytes(s3, o, key);
  if (bytes === undefined) return { found: { kind: 'none' } };
  let checkpoint: Checkpoint;
  try {
    checkpoint = JSON.parse(gunzipSync(bytes).toString('utf8')) as Checkpoint;
  } catch {
    return { found: { kind: 'discarded', why: `s3://${o.bucket}/${key} is not a readable checkpoint`, stale: true } };
  }
  const changed = configurationChange(checkpoint, identityOf(o));
  if (changed) return { found: { kind: 'discarded', why: changed, stale: false } };
  const why = staleness(checkpoint, o.now.getTime());
  if (why) return { found: { kind: 'discarded', why, stale: true } };
  const complete = checkpoint.progress.ranges.every((r) => r.done);
  return { found: { kind: 'resumed', complete }, progress: checkpoint.progress };
}

async function readBytes(s3: S3Client, o: CheckpointOptions, key: string): Promise<Uint8Array | undefined> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: key }), { abortSignal: o.signal });
    return (await res.Body?.transformToByteArray()) ?? new Uint8Array();
  } catch (error) {
    if (errorName(error) === 'NoSuchKey') return undefined;
    // The first request of a run: a missing bucket is the configuration's fault, named as observe names it.
    if (errorName(error) === 'NoSuchBucket') {
      throw new ConfigError(`REGISTRY_BUCKET "${o.bucket}" does not exist (NoSuchBucket): check the function's REGISTRY_BUCKET`);
    }
    throw error;
  }
}

/** The configuration fields that differ from the checkpoint's (undefined: none). */
function configurationChange(c: Checkpoint, identity: ListingIdentity): string | undefined {
  const changed = (Object.keys(identity) as (keyof ListingIdentity)[]).filter((k) => c.identity?.[k] !== identity[k]);
  if (changed.length === 0) return undefined;
  const what = changed.map((k) => `${k} ${JSON.stringify(c.identity?.[k])} → ${JSON.stringify(identity[k])}`).join(', ');
  return `written under another configuration (${what})`;
}

/** Why a checkpoint must not be resumed (undefined: it may): another version, or its last save too long ago. */
function staleness(c: Checkpoint, now: number): string | undefined {
  if (c.version !== VERSION || !c.progress || !Array.isArray(c.progress.ranges) || typeof c.savedAt !== 'number')
    return `checkpoint version ${String(c.version)} is not ${VERSION}`;
  const age = now - c.savedAt;
  if (age > CHECKPOINT_MAX_AGE_MS) return `last saved ${formatDuration(age)} ago, more than ${formatDuration(CHECKPOINT_MAX_AGE_MS)}`;
  if (age < 0) return `saved in the future (${new Date(c.savedAt).toISOString()})`;
  return undefined;
}

/** Saves the listing's progress (apply's step; `savedAt` is this run's clock, from which its age counts). */
export async function saveCheckpoint(s3: S3Client, o: CheckpointOptions, progress: ListingProgress): Promise<void> {
  const checkpoint: Checkpoint = { version: VERSION, identity: identityOf(o), savedAt: o.now.getTime(), progress };
  const body = gzipSync(JSON.stringify(checkpoint));
  const key = listingCheckpointKey(o.root);
  await s3.send(new PutObjectCommand({ Bucket: o.bucket, Key: key, Body: body, ContentType: 'application/gzip' }), {
    abortSignal: o.signal,
  });
}

/** Deletes the checkpoint (apply's step once the listing's plan is done, or to drop a discarded one). */
export async function clearCheckpoint(s3: S3Client, o: CheckpointOptions): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: listingCheckpointKey(o.root) }), { abortSignal: o.signal });
}
