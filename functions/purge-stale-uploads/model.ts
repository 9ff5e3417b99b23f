/** Domain types of purge-stale-uploads: what observe sees, what plan decides over. No SDK types. */
import { formatDuration } from '../../shared/duration.ts';
import type { Action, Outcomes, Plan } from '../../shared/job.ts';
import { classifyKey, parseUploadDataKey } from '../../shared/registry-layout.ts';

/**
 * The shortest max age, for UPLOAD_MAX_AGE and a manual `maxAge` alike: one rule, so no setting can purge an
 * upload younger than an hour. Tests that need younger uploads to look stale move the job's clock instead.
 */
export const MAX_AGE_FLOOR = '1h';
/** The longest max age: past a year the purge would never run, which is a typo rather than a policy. */
export const MAX_AGE_CEILING = '365d';
/**
 * An upload with any sign of life (an object written, its multipart upload initiated, a part uploaded) within
 * this long is kept whatever its age: a push in flight. Never shorter, whatever the max age.
 */
export const ACTIVITY_GUARD_MS = 3_600_000;
/** The reason prefix of a candidate apply skipped because it moved after the plan (its re-check). */
export const CHANGED_DURING_RUN = 'changed-during-run';

export interface PurgePolicy {
  readonly maxAgeMs: number;
  /** Objects deleted + multipart uploads aborted, per run. */
  readonly maxDeletes: number;
}

/** What one run acts on: the policy (a manual `maxAge` overrides UPLOAD_MAX_AGE) and the optional repository. */
export interface PurgeScope {
  readonly policy: PurgePolicy;
  readonly repository?: string;
}

/** One S3 object inside an upload directory. */
export interface UploadObject {
  /** The key below `_uploads/<uuid>/`: `startedat`, `hashstates/sha256/0`, `data`, `''` (a folder key). */
  readonly rest: string;
  readonly size: number;
  /** Epoch ms (S3 LastModified). */
  readonly lastModified: number;
}

/** An open S3 multipart upload on `…/_uploads/<uuid>/data`. */
export interface OpenMultipartUpload {
  readonly repository: string;
  readonly uploadId: string;
  /** S3's UploadId. */
  readonly multipartUploadId: string;
  /** Epoch ms (S3 Initiated). */
  readonly initiated: number;
  /** Its parts, as ListParts told (observe reads them only for candidates; absent: not read). */
  readonly parts?: PartsRead;
}

/**
 * What ListParts told about one multipart upload. A push streamed in one long PATCH writes no object until the
 * request ends, only parts: their times are its sign of life. `gone`: NoSuchUpload, completed or aborted meanwhile.
 */
export type PartsRead =
  | {
      readonly kind: 'read';
      readonly count: number;
      readonly bytes: number;
      readonly newest?: { readonly partNumber: number; readonly at: number };
    }
  | { readonly kind: 'gone' };

/** The newest sign of life of an upload and what it was (for the reason). */
export interface Activity {
  /** Epoch ms. */
  readonly at: number;
  /** `written` (an object), `its multipart upload was initiated`, `part 3 of its multipart upload was uploaded`. */
  readonly what: string;
}

/** The newest of its objects' times, its multipart uploads' Initiated and their parts' times (those read). */
export function latestActivity(objects: readonly UploadObject[], multipartUploads: readonly OpenMultipartUpload[]): Activity | undefined {
  let best: Activity | undefined;
  for (const o of objects) if (!best || o.lastModified > best.at) best = { at: o.lastModified, what: 'written' };
  for (const m of multipartUploads) {
    if (!best || m.initiated > best.at) best = { at: m.initiated, what: 'its multipart upload was initiated' };
    const newest = m.parts?.kind === 'read' ? m.parts.newest : undefined;
    if (newest && newest.at > best.at) best = { at: newest.at, what: `part ${newest.partNumber} of its multipart upload was uploaded` };
  }
  return best;
}

/** `written 10m ago`, `part 3 of its multipart upload was uploaded 5m ago (2026-…Z)`: the time of a non-object sign too. */
export function describeActivity(activity: Activity, now: number): string {
  const idle = now - activity.at;
  const when = idle < 0 ? `${formatDuration(-idle)} in the future (clock skew)` : `${formatDuration(idle)} ago`;
  return activity.what === 'written' ? `${activity.what} ${when}` : `${activity.what} ${when} (${new Date(activity.at).toISOString()})`;
}

/** What observe learnt from reading `startedat` (absent when it was not read). */
export type StartedAtRead =
  | { readonly kind: 'time'; readonly at: number }
  | { readonly kind: 'unparseable'; readonly text: string }
  /** Gone between listing and reading: the upload completed or was cancelled meanwhile. */
  | { readonly kind: 'vanished' };

/** `repositories/<repository>/_uploads/<uploadId>/`: every object in it and its open multipart upload(s). */
export interface UploadDirectory {
  readonly repository: string;
  readonly uploadId: string;
  readonly objects: readonly UploadObject[];
  readonly multipartUploads: readonly OpenMultipartUpload[];
  readonly startedAt?: StartedAtRead;
}

export interface UploadsState {
  /** The repository the run was limited to, if any. */
  readonly repository?: string;
  readonly uploads: readonly UploadDirectory[];
  /** Open multipart uploads on an upload's data key whose directory has no object left. */
  readonly orphanMultipartUploads: readonly OpenMultipartUpload[];
  /** Keys listed under `repositories/` (all of them, links and manifests included). */
  readonly keysListed: number;
  /** Keys inside `_uploads/` but in no `<uuid>/` directory (e.g. the `_uploads/` folder key): never deleted. */
  readonly strayUploadKeys: number;
  /** Zero-byte "folder" keys ending in `/` inside `_uploads/` (they crash distribution 2.8's own purger). */
  readonly folderKeys: number;
  /** Keys with an `_uploads` component that are not the registry's shape (bad names, look-alikes): never deleted. */
  readonly foreignKeys: number;
  /** Open multipart uploads under `repositories/` that are not on an upload's data key: never aborted. */
  readonly foreignMultipartUploads: number;
  readonly startedAtReads: number;
  /** How the listing went, when it is resumable (whole-registry runs): see checkpoint.ts. */
  readonly listing?: ListingReport;
  /** The listing's progress and the checkpoint as found (whole-registry runs): apply saves or clears it. */
  readonly listingRun?: ListingRun;
}

/** The report's `details.listing`: a whole-registry listing, complete or cut by the time budget (then resumed next run). */
export interface ListingReport {
  /** `partial`: the time budget ran out first; nothing was planned and the next run continues from the checkpoint. */
  readonly status: 'complete' | 'partial';
  /** Whether this listing began in an earlier run. */
  readonly resumed: boolean;
  /** Runs this listing has taken, this one included. */
  readonly runs: number;
  /** Keys listed over all its runs. */
  readonly keysListed: number;
  readonly keysListedThisRun: number;
  readonly ranges: { readonly total: number; readonly done: number };
  /** The clock of the run that began it: the plan judges ages as of then. */
  readonly startedAt: string;
  /**
   * What happened to the checkpoint (set by summarize from the plan and the outcomes, see checkpointFate):
   * `none`, `saved`, `kept …`, `cleared`, `untouched (dry run)`, each after `discarded: <why>; ` when one was.
   */
  readonly checkpoint?: string;
  /** `listing-stalled: …` when the listing needs a person (the ListingStalled metric): see listingAttention. */
  readonly attention?: string;
}

/** One key range of the flat listing: `from <= key < to` (either bound optional), taken up to `after`. */
export interface ListingRange {
  readonly from?: string;
  readonly to?: string;
  /** The last key taken so far: the next page starts after it (StartAfter), in this run or the next. */
  readonly after?: string;
  readonly done: boolean;
}

/**
 * Where a listing of the repositories tree stands: what apply saves in the checkpoint (checkpoint.ts) and the
 * next run resumes from. `objects` are the `_uploads` keys taken so far (enough to rebuild every candidate);
 * `startedAt` is the clock of the run that began the listing, which stays the plan's `now`.
 */
export interface ListingProgress {
  readonly startedAt: number;
  readonly runs: number;
  readonly ranges: readonly ListingRange[];
  readonly multipartUploads: readonly ListedMultipartUpload[];
  readonly objects: readonly ListedObject[];
  readonly keysListed: number;
}

/** The checkpoint as observe found it. */
export type CheckpointFound =
  | { readonly kind: 'none' }
  /** Resumed; `complete`: its listing was already whole (a run that completed it did not finish applying). */
  | { readonly kind: 'resumed'; readonly complete: boolean }
  /** Not used; `stale`: too old, unreadable or of another version (not a configuration change, which is expected). */
  | { readonly kind: 'discarded'; readonly why: string; readonly stale: boolean };

/** A whole-registry run's listing, as observe leaves it: what the plan carries for apply to save or clear. */
export interface ListingRun {
  readonly progress: ListingProgress;
  readonly found: CheckpointFound;
  readonly complete: boolean;
}

/** A listing not complete after this many runs needs a person (a week of daily runs): ListingStalled. */
export const LISTING_STALL_RUNS = 7;

/**
 * Why the listing needs a person, or undefined: its checkpoint was discarded as stale (the listing started over,
 * and a registry that needs more runs than the checkpoint lives never completes), or it has taken
 * LISTING_STALL_RUNS runs without completing. Both leave stale uploads unpurged while every run succeeds.
 */
export function listingAttention(run: ListingRun): string | undefined {
  if (run.found.kind === 'discarded' && run.found.stale) {
    return `listing-stalled: its checkpoint was discarded (${run.found.why}) and the listing started over`;
  }
  if (!run.complete && run.progress.runs >= LISTING_STALL_RUNS) {
    const remedy = "raise the function's timeout, LIST_CONCURRENCY, or use inventory mode";
    return `listing-stalled: the listing has taken ${run.progress.runs} runs and is not complete: ${remedy}`;
  }
  return undefined;
}

/** What observe hands the plan: the uploads, with the parts of every candidate read. */
export interface PurgeState extends UploadsState {
  /** The age this run used (for the report). */
  readonly maxAgeMs: number;
  /** Multipart uploads whose parts observe read (ListParts), candidates only. */
  readonly partsReads: number;
}

/**
 * The plan's `now`: a listing resumed from earlier runs is judged as of the clock it began with (checkpoint.ts),
 * so that keys listed then are never aged by the runs it took; any other state, as of the run's own clock.
 */
export function planClock(state: Pick<UploadsState, 'listing'>, now: Date): Date {
  return state.listing ? new Date(state.listing.startedAt) : now;
}

/**
 * Whether `startedat` must be read to decide: only when the object time is within `windowMs` of the age
 * boundary. The registry writes the time into the object in the same request that creates it, so the object
 * time and the content agree to within clock skew; farther from the boundary both give the same answer. A
 * copied or restored bucket only makes the object time newer (the upload looks younger, is kept longer).
 */
export function mustReadStartedAt(objectTime: number, maxAgeMs: number, windowMs: number, now: number): boolean {
  return Math.abs(now - objectTime - maxAgeMs) <= windowMs;
}

/** A listed S3 object, as observe gets it. */
export interface ListedObject {
  readonly key: string;
  readonly size: number;
  readonly lastModified: number;
}

/** A listed S3 multipart upload, as observe gets it. */
export interface ListedMultipartUpload {
  readonly key: string;
  readonly multipartUploadId: string;
  readonly initiated: number;
}

export type CollectedUploads = Pick<
  UploadsState,
  'uploads' | 'orphanMultipartUploads' | 'keysListed' | 'strayUploadKeys' | 'folderKeys' | 'foreignKeys' | 'foreignMultipartUploads'
>;

/**
 * Groups listed keys into upload directories (pure). Only keys `classifyKey` calls `upload` join a directory;
 * only multipart uploads on an upload's `data` key are kept. `repository` limits to one repository.
 */
export function collectUploads(
  objects: readonly ListedObject[],
  multipartUploads: readonly ListedMultipartUpload[],
  root: string,
  repository?: string,
): CollectedUploads {
  const dirs = new Map<
    string,
    { repository: string; uploadId: string; objects: UploadObject[]; multipartUploads: OpenMultipartUpload[] }
  >();
  let strayUploadKeys = 0;
  let folderKeys = 0;
  let foreignKeys = 0;
  for (const object of objects) {
    const k = classifyKey(object.key, root);
    if ((k.kind === 'upload' || k.kind === 'uploads-other') && object.key.endsWith('/')) folderKeys += 1;
    if (k.kind === 'foreign') foreignKeys += 1;
    if (k.kind === 'uploads-other') strayUploadKeys += 1;
    if (k.kind !== 'upload' || (repository !== undefined && k.repository !== repository)) continue;
    const id = `${k.repository}/${k.uploadId}`;
    let dir = dirs.get(id);
    if (!dir) dirs.set(id, (dir = { repository: k.repository, uploadId: k.uploadId, objects: [], multipartUploads: [] }));
    dir.objects.push({ rest: k.rest, size: object.size, lastModified: object.lastModified });
  }

  const orphanMultipartUploads: OpenMultipartUpload[] = [];
  let foreignMultipartUploads = 0;
  for (const m of multipartUploads) {
    const k = parseUploadDataKey(m.key, root);
    if (!k || (repository !== undefined && k.repository !== repository)) {
      foreignMultipartUploads += 1;
      continue;
    }
    const mpu = { repository: k.repository, uploadId: k.uploadId, multipartUploadId: m.multipartUploadId, initiated: m.initiated };
    const dir = dirs.get(`${k.repository}/${k.uploadId}`);
    if (dir) dir.multipartUploads.push(mpu);
    else orphanMultipartUploads.push(mpu);
  }
  return {
    uploads: [...dirs.values()],
    orphanMultipartUploads,
    keysListed: objects.length,
    strayUploadKeys,
    folderKeys,
    foreignKeys,
    foreignMultipartUploads,
  };
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
  /** The newest sign of life the plan saw (ISO): apply's re-check skips the upload if anything is newer. */
  readonly lastActivityAt: string;
  /** Why skipped, when in `plan.skipped`. */
  readonly held?: 'limit' | 'active' | 'changed' | 'too-large' | 'unchecked';
}

export interface AbortMultipartUpload extends Action {
  readonly type: 'abort-multipart-upload';
  readonly repository: string;
  readonly uploadId: string;
  readonly multipartUploadId: string;
  readonly ageMs: number;
  readonly lastActivityAt: string;
  readonly held?: 'limit' | 'active' | 'unchecked';
}

export type PurgeAction = DeleteUpload | AbortMultipartUpload;

/** The purge's plan: the actions, and the listing (whole-registry runs) whose checkpoint apply saves or clears. */
export interface PurgePlan extends Plan<PurgeAction> {
  readonly listing?: ListingRun;
}

/**
 * Whether apply saves the checkpoint before acting: always for a partial listing (its progress); for a listing
 * completed after more than one run, the whole listing, so that a run cut while reading parts or applying is
 * resumed by the next run instead of starting over. A listing found already complete is left as saved: its age
 * keeps counting from that save, so a listing nobody can finish applying expires (and says so).
 */
export function saveBeforeApply(run: ListingRun): boolean {
  if (!run.complete) return true;
  return run.progress.runs > 1 && !(run.found.kind === 'resumed' && run.found.complete);
}

/**
 * Whether apply got through the whole plan: every action has an outcome that is not a time cut (a re-check that
 * found the upload moved counts as done) and no candidate was left with its parts unread.
 */
export function applyFinished(plan: Plan<PurgeAction>, outcomes: Outcomes): boolean {
  if (plan.skipped.some((a) => a.held === 'unchecked')) return false;
  return plan.actions.every((_, i) => {
    const o = outcomes[i];
    return o !== undefined && (o.status !== 'skipped' || o.reason.startsWith(CHANGED_DURING_RUN));
  });
}

/**
 * What becomes of the checkpoint after apply (pure; apply acts on it, summarize reports it): `saved` (partial),
 * `kept` (a listing of several runs whose apply did not finish: the next run resumes it whole), `cleared`, or
 * `none` (there is none). A listing of one run is never kept: the next run lists it again in one run.
 */
export function checkpointFate(run: ListingRun, plan: Plan<PurgeAction>, outcomes: Outcomes): 'saved' | 'kept' | 'cleared' | 'none' {
  if (!run.complete) return 'saved';
  if (run.found.kind === 'none' && !saveBeforeApply(run)) return 'none';
  return run.progress.runs > 1 && !applyFinished(plan, outcomes) ? 'kept' : 'cleared';
}

/** The report's `listing.checkpoint`: the fate, after why a checkpoint was discarded; a dry run never touches it. */
export function checkpointNote(run: ListingRun, plan: Plan<PurgeAction>, outcomes: Outcomes, dryRun: boolean): string {
  const fate = dryRun
    ? run.found.kind === 'none'
      ? 'none'
      : 'untouched (dry run)'
    : { saved: 'saved', cleared: 'cleared', none: 'none', kept: 'kept until apply is done: the next run resumes the whole listing' }[
        checkpointFate(run, plan, outcomes)
      ];
  return run.found.kind === 'discarded' ? `discarded: ${run.found.why}; ${fate}` : fate;
}
