import { formatDuration } from '../../shared/duration.ts';
import type { Action, Plan } from '../../shared/job.ts';
import { hashStateOffset, uploadDataKey, uploadDirPrefix } from '../../shared/registry-layout.ts';
import type { OpenMultipartUpload, UploadDirectory, UploadsState } from './model.ts';

/**
 * The purge decision, pure: (state, policy, now) → Plan. An upload is stale when older than the max age
 * (strictly, as distribution's purger: exactly at the boundary is fresh). Its action aborts its multipart
 * upload(s) and deletes every object of its directory — nothing else is ever planned: every key an action
 * names is `<root>/docker/registry/v2/repositories/<name>/_uploads/<uuid>/<rest>` of a stale directory.
 */

/** The manual `maxAge` can never go below this: pushes in flight are safe for at least this long. */
export const MAX_AGE_FLOOR_MS = 3_600_000;
/**
 * An upload written to within min(max age, this) is kept whatever its `startedat` says: a slow push still
 * in flight (new hash states are written on every PATCH).
 */
export const ACTIVITY_GUARD_MS = 3_600_000;

export interface PurgePolicy {
  readonly maxAgeMs: number;
  /** Objects deleted + multipart uploads aborted, per run. */
  readonly maxDeletes: number;
}

export interface DeleteUpload extends Action {
  readonly type: 'delete-upload';
  readonly repository: string;
  readonly uploadId: string;
  /** Keys below `_uploads/<uuid>/` to delete (`startedat`, `hashstates/sha256/0`, …). */
  readonly objects: readonly string[];
  /** S3 UploadIds of its open multipart upload(s) on `…/<uuid>/data`: aborted first. */
  readonly multipartUploadIds: readonly string[];
  /** Bytes of the objects. */
  readonly bytes: number;
  /** Bytes the client had sent (the highest hash-state offset): what the multipart upload's parts hold. */
  readonly uploadedBytes?: number;
  readonly ageMs: number;
  /** Why skipped, when in `plan.skipped`. */
  readonly held?: 'limit' | 'active' | 'changed' | 'too-large';
}

export interface AbortMultipartUpload extends Action {
  readonly type: 'abort-multipart-upload';
  readonly repository: string;
  readonly uploadId: string;
  readonly multipartUploadId: string;
  readonly ageMs: number;
  readonly held?: 'limit';
}

export type PurgeAction = DeleteUpload | AbortMultipartUpload;

/** The S3 operations an action costs against MAX_DELETES_PER_RUN: objects deleted + uploads aborted. */
export function deletionsOf(action: PurgeAction): number {
  return action.type === 'delete-upload' ? action.objects.length + action.multipartUploadIds.length : 1;
}

/** Full S3 keys an action deletes (none for an abort). */
export function objectKeysOf(action: PurgeAction, root: string): string[] {
  if (action.type !== 'delete-upload') return [];
  const dir = uploadDirPrefix(root, action.repository, action.uploadId);
  return action.objects.map((rest) => `${dir}${rest}`);
}

/** The multipart upload key of an action's upload. */
export function dataKeyOf(action: PurgeAction, root: string): string {
  return uploadDataKey(root, action.repository, action.uploadId);
}

interface Age {
  /** Epoch ms the age counts from. */
  readonly since: number;
  readonly source: string;
}

function ageOf(dir: UploadDirectory): Age | undefined {
  const newest = Math.max(...dir.objects.map((o) => o.lastModified));
  const startedAtObject = dir.objects.find((o) => o.rest === 'startedat');
  if (dir.startedAt?.kind === 'time') return { since: dir.startedAt.at, source: 'startedat' };
  if (startedAtObject) {
    const unreadable = dir.startedAt?.kind === 'unparseable' ? ', its content unreadable' : '';
    return { since: startedAtObject.lastModified, source: `startedat object time${unreadable}` };
  }
  if (dir.objects.length === 0) return undefined;
  return { since: newest, source: 'no startedat: a cancelled-upload leftover' };
}

export function planPurge(
  state: Pick<UploadsState, 'uploads' | 'orphanMultipartUploads'>,
  policy: PurgePolicy,
  now: Date,
): Plan<PurgeAction> {
  const t = now.getTime();
  const maxAge = formatDuration(policy.maxAgeMs);
  const candidates: PurgeAction[] = [];
  const skipped: PurgeAction[] = [];

  for (const dir of state.uploads) {
    const target = `${dir.repository}/_uploads/${dir.uploadId}`;
    const base = {
      type: 'delete-upload' as const,
      target,
      repository: dir.repository,
      uploadId: dir.uploadId,
      objects: dir.objects.map((o) => o.rest).sort(),
      multipartUploadIds: dir.multipartUploads.map((m) => m.multipartUploadId).sort(),
      bytes: dir.objects.reduce((sum, o) => sum + o.size, 0),
      ...uploadedBytes(dir),
    };
    if (dir.startedAt?.kind === 'vanished') {
      skipped.push({
        ...base,
        ageMs: 0,
        held: 'changed',
        reason: 'startedat vanished during the run (completed or cancelled): left for the next run',
      });
      continue;
    }
    const age = ageOf(dir);
    if (!age) continue;
    const ageMs = t - age.since;
    if (!(ageMs > policy.maxAgeMs)) continue; // fresh: untouched, counted in the report
    const idleMs = t - Math.max(...dir.objects.map((o) => o.lastModified));
    const guard = Math.min(policy.maxAgeMs, ACTIVITY_GUARD_MS);
    if (idleMs <= guard) {
      skipped.push({
        ...base,
        ageMs,
        held: 'active',
        reason: `started ${formatDuration(ageMs)} ago but written ${formatDuration(idleMs)} ago: a push in flight is kept`,
      });
      continue;
    }
    const verb = age.source.startsWith('startedat') ? 'started' : 'last written';
    candidates.push({ ...base, ageMs, reason: `${verb} ${formatDuration(ageMs)} ago > ${maxAge} (${age.source})` });
  }

  for (const mpu of state.orphanMultipartUploads) {
    const ageMs = t - mpu.initiated;
    if (!(ageMs > policy.maxAgeMs)) continue;
    candidates.push(
      orphanAction(mpu, ageMs, `multipart upload initiated ${formatDuration(ageMs)} ago > ${maxAge}, no upload directory left`),
    );
  }

  // Oldest first, so a run cut by the limit removes what has cost the longest; the next run continues.
  candidates.sort((a, b) => b.ageMs - a.ageMs || (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  const actions: PurgeAction[] = [];
  let budget = policy.maxDeletes;
  for (const action of candidates) {
    const cost = deletionsOf(action);
    if (cost <= budget) {
      actions.push(action);
      budget -= cost;
    } else if (action.type === 'delete-upload' && cost > policy.maxDeletes) {
      skipped.push({
        ...action,
        held: 'too-large',
        reason: `needs ${cost} deletions, more than MAX_DELETES_PER_RUN=${policy.maxDeletes}: raise it to purge this upload`,
      });
    } else {
      skipped.push({
        ...action,
        held: 'limit',
        reason: `deferred: MAX_DELETES_PER_RUN=${policy.maxDeletes} reached (the next run continues)`,
      } as PurgeAction);
    }
  }
  return { actions, skipped };
}

function orphanAction(mpu: OpenMultipartUpload, ageMs: number, reason: string): AbortMultipartUpload {
  return {
    type: 'abort-multipart-upload',
    target: `${mpu.repository}/_uploads/${mpu.uploadId}/data`,
    reason,
    repository: mpu.repository,
    uploadId: mpu.uploadId,
    multipartUploadId: mpu.multipartUploadId,
    ageMs,
  };
}

function uploadedBytes(dir: UploadDirectory): { uploadedBytes?: number } {
  const offsets = dir.objects.map((o) => hashStateOffset(o.rest)).filter((n): n is number => n !== undefined);
  return offsets.length > 0 ? { uploadedBytes: Math.max(...offsets) } : {};
}
