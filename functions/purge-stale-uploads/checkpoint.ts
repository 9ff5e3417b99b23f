import { gunzipSync, gzipSync } from 'node:zlib';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { formatDuration } from '../../shared/duration.ts';
import { ConfigError, errorName } from '../../shared/errors.ts';
import { listingCheckpointKey } from '../../shared/purge-keys.ts';
import type { UploadsState } from './model.ts';
import type { ListingProgress, ObserveOptions } from './observe.ts';

/**
 * The resumable listing (the default mode, up to ~10⁷ keys). A whole-registry run lists until its time budget
 * runs low, then saves where each key range stands, the multipart uploads and the `_uploads` keys taken so far
 * (enough to rebuild every candidate), and plans nothing; the next run resumes there, and the run that
 * completes the listing plans on all of it as of the clock the listing began with, then clears the checkpoint.
 *
 * It lives in the registry bucket, outside the registry's root (`control-plane/purge-stale-uploads/…`, one per
 * root): the bucket is already the fleet's, it holds any size (an SSM parameter stops at 8 KB, and the keys of a
 * large registry's uploads do not fit), and IAM can name the one key exactly. A checkpoint older than
 * CHECKPOINT_MAX_AGE_MS, or written under another configuration (bucket, root, prefix, LIST_CONCURRENCY), is
 * discarded and the report says why. Safety across runs rests on the re-check before each abort/delete (apply).
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

export interface ResumableOptions extends Omit<ObserveOptions, 'resumable'> {
  hasTime(): boolean;
}

/** The listing itself (observe.ts observeUploads), handed in so that this file and observe.ts do not import each other. */
export type Lister = (s3: S3Client, o: ObserveOptions) => Promise<UploadsState>;

/**
 * The listing for the job's observe: whole-registry runs list resumably through the checkpoint; a run limited to
 * one repository lists it whole, as before (it is small), and never touches the checkpoint.
 */
export async function observeResumable(s3: S3Client, o: ResumableOptions, observeUploads: Lister): Promise<UploadsState> {
  if (o.repository !== undefined) return observeUploads(s3, o);
  const key = listingCheckpointKey(o.root);
  const identity: ListingIdentity = { bucket: o.bucket, root: o.root, prefix: 'repositories/', listConcurrency: o.listConcurrency };
  const loaded = await loadCheckpoint(s3, o, key, identity);
  let progress: ListingProgress | undefined;
  const state = await observeUploads(s3, {
    ...o,
    resumable: { ...(loaded.progress ? { from: loaded.progress } : {}), hasTime: o.hasTime, save: (p) => (progress = p) },
  });
  const listing = state.listing;
  if (!listing || !progress) return state;
  let note: string;
  if (listing.status === 'partial') {
    await saveCheckpoint(s3, o, key, { version: VERSION, identity, savedAt: o.now.getTime(), progress });
    note = 'saved';
  } else {
    if (loaded.found) await s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: key }), { abortSignal: o.signal });
    note = loaded.found ? 'cleared' : 'none';
  }
  return { ...state, listing: { ...listing, checkpoint: loaded.discarded ? `discarded: ${loaded.discarded}; ${note}` : note } };
}

interface Loaded {
  readonly found: boolean;
  readonly progress?: ListingProgress;
  /** Why a checkpoint that was there is not used. */
  readonly discarded?: string;
}

async function loadCheckpoint(s3: S3Client, o: ResumableOptions, key: string, identity: ListingIdentity): Promise<Loaded> {
  let bytes: Uint8Array;
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: key }), { abortSignal: o.signal });
    bytes = (await res.Body?.transformToByteArray()) ?? new Uint8Array();
  } catch (error) {
    if (errorName(error) === 'NoSuchKey') return { found: false };
    // The first request of a run: a missing bucket is the configuration's fault, named as observe names it.
    if (errorName(error) === 'NoSuchBucket') {
      throw new ConfigError(`REGISTRY_BUCKET "${o.bucket}" does not exist (NoSuchBucket): check the function's REGISTRY_BUCKET`);
    }
    throw error;
  }
  let checkpoint: Checkpoint;
  try {
    checkpoint = JSON.parse(gunzipSync(bytes).toString('utf8')) as Checkpoint;
  } catch {
    return { found: true, discarded: `s3://${o.bucket}/${key} is not a readable checkpoint` };
  }
  const why = staleness(checkpoint, identity, o.now.getTime());
  return why ? { found: true, discarded: why } : { found: true, progress: checkpoint.progress };
}

/** Why a checkpoint must not be resumed (undefined: it may). */
function staleness(c: Checkpoint, identity: ListingIdentity, now: number): string | undefined {
  if (c.version !== VERSION || !c.progress || !Array.isArray(c.progress.ranges))
    return `checkpoint version ${String(c.version)} is not ${VERSION}`;
  const changed = (Object.keys(identity) as (keyof ListingIdentity)[]).filter((k) => c.identity?.[k] !== identity[k]);
  if (changed.length > 0) {
    const what = changed.map((k) => `${k} ${JSON.stringify(c.identity?.[k])} → ${JSON.stringify(identity[k])}`).join(', ');
    return `written under another configuration (${what})`;
  }
  const age = now - c.progress.startedAt;
  if (age > CHECKPOINT_MAX_AGE_MS)
    return `its listing began ${formatDuration(age)} ago, more than ${formatDuration(CHECKPOINT_MAX_AGE_MS)}`;
  if (age < 0) return `its listing began in the future (${new Date(c.progress.startedAt).toISOString()})`;
  return undefined;
}

async function saveCheckpoint(s3: S3Client, o: ResumableOptions, key: string, checkpoint: Checkpoint): Promise<void> {
  const body = gzipSync(JSON.stringify(checkpoint));
  await s3.send(new PutObjectCommand({ Bucket: o.bucket, Key: key, Body: body, ContentType: 'application/gzip' }), {
    abortSignal: o.signal,
  });
}
