import { formatDuration } from '../../shared/duration.ts';
import type { Plan } from '../../shared/job.ts';
import { hashStateOffset, uploadDataKey, uploadDirPrefix } from '../../shared/registry-layout.ts';
import {
  ACTIVITY_GUARD_MS,
  describeActivity,
  latestActivity,
  type AbortMultipartUpload,
  type OpenMultipartUpload,
  type PurgeAction,
  type PurgePlan,
  type PurgePolicy,
  type UploadDirectory,
  type UploadsState,
} from './model.ts';

/**
 * The purge decision, pure: (state, policy, now) → Plan. An upload is stale when older than the max age
 * (strictly, as distribution's purger: exactly at the boundary is fresh) and idle: nothing of it — an object,
 * its multipart upload's Initiated, one of its parts — is newer than the activity guard. Its action aborts its
 * multipart upload(s) and deletes every object of its directory — nothing else is ever planned: every key an
 * action names is `<root>/docker/registry/v2/repositories/<name>/_uploads/<uuid>/<rest>` of a stale directory.
 * An upload whose parts were not read is never planned (`unchecked`): observe reads them for every candidate.
 */

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

const UNCHECKED = "its multipart upload's parts were not read (ListParts): kept until a run reads them";

/** A candidate before the budget: an action, or one whose parts must be read first (it still holds its budget). */
interface Candidate {
  readonly action: PurgeAction;
  readonly unchecked: boolean;
}

/**
 * The plan over `state`; a partial listing plans nothing (a half-listed upload must never look complete). The
 * listing rides along for apply, which saves or clears its checkpoint (model.ts checkpointFate).
 */
export function plan(
  state: Pick<UploadsState, 'uploads' | 'orphanMultipartUploads' | 'listingRun'>,
  policy: PurgePolicy,
  now: Date,
): PurgePlan {
  const listing = state.listingRun ? { listing: state.listingRun } : {};
  if (state.listingRun && !state.listingRun.complete) return { actions: [], skipped: [], ...listing };
  return { ...decide(state, policy, now), ...listing };
}

/**
 * The multipart uploads, not read yet, of the candidates the plan holds as `unchecked`: exactly the parts whose
 * reading can change the plan (observe reads them, then asks again). Pure.
 */
export function unreadCandidateParts(
  state: Pick<UploadsState, 'uploads' | 'orphanMultipartUploads'>,
  policy: PurgePolicy,
  now: Date,
): OpenMultipartUpload[] {
  const targets = new Set(
    decide(state, policy, now)
      .skipped.filter((a) => a.held === 'unchecked')
      .map((a) => a.target),
  );
  if (targets.size === 0) return [];
  const dirs = state.uploads.filter((d) => targets.has(`${d.repository}/_uploads/${d.uploadId}`)).flatMap((d) => d.multipartUploads);
  const orphans = state.orphanMultipartUploads.filter((m) => targets.has(`${m.repository}/_uploads/${m.uploadId}/data`));
  return [...dirs, ...orphans].filter((m) => m.parts === undefined);
}

function decide(state: Pick<UploadsState, 'uploads' | 'orphanMultipartUploads'>, policy: PurgePolicy, now: Date): Plan<PurgeAction> {
  const t = now.getTime();
  const candidates: Candidate[] = [];
  const skipped: PurgeAction[] = [];
  for (const dir of state.uploads) {
    const verdict = judgeUpload(dir, policy, t);
    if (verdict === undefined) continue;
    if ('skip' in verdict) skipped.push(verdict.skip);
    else candidates.push(verdict);
  }
  const onSameKey = siblingsByDataKey(state.orphanMultipartUploads);
  for (const mpu of state.orphanMultipartUploads) {
    const verdict = judgeOrphan(mpu, onSameKey.get(dataKeyId(mpu)) ?? [mpu], policy, t);
    if (verdict === undefined) continue;
    if ('skip' in verdict) skipped.push(verdict.skip);
    else candidates.push(verdict);
  }
  return withinBudget(candidates, skipped, policy);
}

type Verdict = Candidate | { readonly skip: PurgeAction } | undefined;

/** Fresh (undefined), held (skip), or a candidate; `unchecked` when its parts were not read. */
function judgeUpload(dir: UploadDirectory, policy: PurgePolicy, t: number): Verdict {
  const activity = latestActivity(dir.objects, dir.multipartUploads);
  const base = {
    type: 'delete-upload' as const,
    target: `${dir.repository}/_uploads/${dir.uploadId}`,
    repository: dir.repository,
    uploadId: dir.uploadId,
    objects: dir.objects.map((o) => o.rest).sort(),
    multipartUploadIds: dir.multipartUploads.map((m) => m.multipartUploadId).sort(),
    bytes: dir.objects.reduce((sum, o) => sum + o.size, 0),
    ...uploadedBytes(dir),
  };
  const lastActivityAt = new Date(activity?.at ?? t).toISOString();
  if (dir.startedAt?.kind === 'vanished') {
    const reason = 'startedat vanished during the run (completed or cancelled): left for the next run';
    return { skip: { ...base, ageMs: 0, lastActivityAt, held: 'changed', reason } };
  }
  const age = ageOf(dir);
  if (!age || !activity) return undefined;
  const ageMs = t - age.since;
  if (!(ageMs > policy.maxAgeMs)) return undefined; // fresh: untouched, counted in the report
  const action = { ...base, ageMs, lastActivityAt };
  // The guard is fixed, not min(max age, guard): a shorter max age must not shorten the protection of a push.
  if (t - activity.at <= ACTIVITY_GUARD_MS) {
    const reason = `started ${formatDuration(ageMs)} ago but ${describeActivity(activity, t)}: a push in flight is kept`;
    return { skip: { ...action, held: 'active', reason } };
  }
  const verb = age.source.startsWith('startedat') ? 'started' : 'last written';
  const reason = `${verb} ${formatDuration(ageMs)} ago > ${formatDuration(policy.maxAgeMs)} (${age.source})`;
  return { action: { ...action, reason }, unchecked: dir.multipartUploads.some((m) => m.parts === undefined) };
}

const dataKeyId = (mpu: OpenMultipartUpload): string => `${mpu.repository}/_uploads/${mpu.uploadId}`;

function siblingsByDataKey(mpus: readonly OpenMultipartUpload[]): Map<string, OpenMultipartUpload[]> {
  const byKey = new Map<string, OpenMultipartUpload[]>();
  for (const m of mpus) byKey.set(dataKeyId(m), [...(byKey.get(dataKeyId(m)) ?? []), m]);
  return byKey;
}

/**
 * An orphan's activity is that of every multipart upload on the same data key: the S3 driver resumes a push by
 * listing the key's multipart uploads, so an old one may be the one a live push writes to next.
 */
function judgeOrphan(mpu: OpenMultipartUpload, onSameKey: readonly OpenMultipartUpload[], policy: PurgePolicy, t: number): Verdict {
  const ageMs = t - mpu.initiated;
  if (!(ageMs > policy.maxAgeMs)) return undefined;
  const activity = latestActivity([], onSameKey) ?? { at: mpu.initiated, what: 'its multipart upload was initiated' };
  const maxAge = formatDuration(policy.maxAgeMs);
  if (t - activity.at <= ACTIVITY_GUARD_MS) {
    const reason = `multipart upload initiated ${formatDuration(ageMs)} ago but ${describeActivity(activity, t)}: a push in flight is kept`;
    return { skip: { ...orphanAction(mpu, ageMs, activity.at, reason), held: 'active' } };
  }
  const reason = `multipart upload initiated ${formatDuration(ageMs)} ago > ${maxAge}, no upload directory left`;
  return { action: orphanAction(mpu, ageMs, activity.at, reason), unchecked: mpu.parts === undefined };
}

/**
 * Oldest first, so a run cut by the limit removes what has cost the longest; the next run continues. An unchecked
 * candidate keeps its place in the budget: observe reads exactly the parts of those that fit, then plans again.
 */
function withinBudget(candidates: Candidate[], skipped: PurgeAction[], policy: PurgePolicy): Plan<PurgeAction> {
  candidates.sort(({ action: a }, { action: b }) => b.ageMs - a.ageMs || (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  const actions: PurgeAction[] = [];
  let budget = policy.maxDeletes;
  for (const { action, unchecked } of candidates) {
    const cost = deletionsOf(action);
    if (cost <= budget) {
      budget -= cost;
      if (unchecked) skipped.push({ ...action, held: 'unchecked', reason: UNCHECKED });
      else actions.push(action);
    } else if (action.type === 'delete-upload' && cost > policy.maxDeletes) {
      skipped.push({
        ...action,
        held: 'too-large',
        reason: `needs ${cost} deletions, more than MAX_DELETES_PER_RUN=${policy.maxDeletes}: raise it to purge this upload`,
      });
    } else {
      const reason = `deferred: MAX_DELETES_PER_RUN=${policy.maxDeletes} reached (the next run continues)`;
      skipped.push({ ...action, held: 'limit', reason } as PurgeAction);
    }
  }
  return { actions, skipped };
}

function orphanAction(mpu: OpenMultipartUpload, ageMs: number, lastActivity: number, reason: string): AbortMultipartUpload {
  return {
    type: 'abort-multipart-upload',
    target: `${mpu.repository}/_uploads/${mpu.uploadId}/data`,
    reason,
    repository: mpu.repository,
    uploadId: mpu.uploadId,
    multipartUploadId: mpu.multipartUploadId,
    ageMs,
    lastActivityAt: new Date(lastActivity).toISOString(),
  };
}

function uploadedBytes(dir: UploadDirectory): { uploadedBytes?: number } {
  const offsets = dir.objects.map((o) => hashStateOffset(o.rest)).filter((n): n is number => n !== undefined);
  return offsets.length > 0 ? { uploadedBytes: Math.max(...offsets) } : {};
}
