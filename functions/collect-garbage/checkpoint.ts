/**
 * The sweep checkpoint: when MAX_DELETES_PER_RUN (or the time budget) leaves candidates over, apply saves them
 * with the time their mark began; the next run resumes from it instead of marking again, and its re-check reads
 * everything written since that *original* mark, so nothing pushed in between is missed. Like the purge's listing
 * checkpoint it lives in the registry bucket outside every root (IAM names the key), is gzip JSON, and is
 * discarded when older than CHECKPOINT_MAX_AGE_MS or written under another configuration (the report says why).
 * Expiries (retention) are never checkpointed: a run that holds one marks again next time.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { formatDuration } from '../../shared/duration.ts';
import { errorName } from '../../shared/errors.ts';
import { normalizeRoot } from '../../shared/registry-layout.ts';
import type { Reader } from './listing.ts';
import type { GcAction, GcPolicy, Resumed } from './model.ts';

export const CHECKPOINT_MAX_AGE_MS = 36 * 3_600_000;
const VERSION = 1;

export function sweepCheckpointKey(root: string): string {
  const r = normalizeRoot(root);
  return `control-plane/collect-garbage/${r ? `roots/${r}/` : ''}sweep-checkpoint.json.gz`;
}

interface Checkpoint {
  readonly version: number;
  readonly identity: string;
  readonly markStartedAt: number;
  readonly runs: number;
  readonly candidates: readonly GcAction[];
}

/** What a checkpoint was made under: resuming under another grace or retention would act on another plan. */
export function identityOf(r: Pick<Reader, 'bucket' | 'root'>, policy: GcPolicy): string {
  return JSON.stringify({ bucket: r.bucket, root: r.root, graceMs: policy.graceMs, retention: policy.retention ?? null });
}

export type Loaded = { readonly resumed?: Resumed; readonly discarded?: string };

export async function loadCheckpoint(r: Reader, policy: GcPolicy, now: number): Promise<Loaded> {
  let bytes: Uint8Array;
  try {
    const res = await r.s3.send(new GetObjectCommand({ Bucket: r.bucket, Key: sweepCheckpointKey(r.root) }), { abortSignal: r.signal });
    bytes = (await res.Body?.transformToByteArray()) ?? new Uint8Array();
  } catch (error) {
    if (errorName(error) === 'NoSuchKey') return {};
    throw error;
  }
  let c: Checkpoint;
  try {
    c = JSON.parse(gunzipSync(bytes).toString('utf8')) as Checkpoint;
  } catch {
    return { discarded: 'not a readable checkpoint' };
  }
  if (c.version !== VERSION || !Array.isArray(c.candidates)) return { discarded: `version ${String(c.version)} is not ${VERSION}` };
  if (c.identity !== identityOf(r, policy))
    return { discarded: 'written under another configuration (bucket, root, GC_GRACE or GC_RETENTION)' };
  const age = now - c.markStartedAt;
  if (age > CHECKPOINT_MAX_AGE_MS || age < 0)
    return { discarded: `its mark began ${formatDuration(age)} ago, outside 0–${formatDuration(CHECKPOINT_MAX_AGE_MS)}` };
  const candidates = c.candidates.filter((a) => a.type === 'delete-blob' || a.type === 'delete-layer-link');
  return { resumed: { markStartedAt: c.markStartedAt, runs: c.runs, candidates } };
}

/** Save what is left (links and blobs only), or clear the checkpoint when nothing is. */
export async function saveCheckpoint(
  r: Reader,
  policy: GcPolicy,
  markStartedAt: number,
  runs: number,
  left: readonly GcAction[],
): Promise<'saved' | 'cleared'> {
  const Key = sweepCheckpointKey(r.root);
  if (left.length === 0) {
    await r.s3.send(new DeleteObjectCommand({ Bucket: r.bucket, Key }), { abortSignal: r.signal });
    return 'cleared';
  }
  const candidates = left.map(({ held: _held, ...a }) => a as GcAction);
  const body: Checkpoint = { version: VERSION, identity: identityOf(r, policy), markStartedAt, runs, candidates };
  await r.s3.send(new PutObjectCommand({ Bucket: r.bucket, Key, Body: gzipSync(JSON.stringify(body)), ContentType: 'application/gzip' }), {
    abortSignal: r.signal,
  });
  return 'saved';
}
