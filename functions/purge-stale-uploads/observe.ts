import {
  GetObjectCommand,
  ListMultipartUploadsCommand,
  paginateListObjectsV2,
  type ListObjectsV2CommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { mapLimit } from '../../shared/concurrency.ts';
import { ConfigError, errorName } from '../../shared/errors.ts';
import { DEFAULT_TIME_MARGIN_MS, type RunContext } from '../../shared/job.ts';
import { repositoriesPrefix, uploadDataKey, uploadDirPrefix, uploadsPrefix } from '../../shared/registry-layout.ts';
import { loadCheckpoint, type CheckpointOptions } from './checkpoint.ts';
import type { Config } from './config.ts';
import type {
  CheckpointFound,
  ListedMultipartUpload,
  ListedObject,
  ListingProgress,
  ListingRange,
  ListingReport,
  OpenMultipartUpload,
  PartsRead,
  PurgePolicy,
  PurgeScope,
  PurgeState,
  StartedAtRead,
  UploadDirectory,
  UploadsState,
} from './model.ts';
import { collectUploads, mustReadStartedAt, planClock } from './model.ts';
import { unreadCandidateParts } from './plan.ts';
import { readParts } from './recheck.ts';

/** GETs of `startedat` in flight at once. */
export const STARTEDAT_READ_CONCURRENCY = 16;
/** ListParts in flight at once (candidates only). */
export const PARTS_READ_CONCURRENCY = 16;

/**
 * The job's observe, reads only: the checkpoint (whole-registry runs), the listing resumed from it while the time
 * budget less LISTING_RESERVE lasts, `startedat` where needed, then the parts of every candidate, judged as of
 * the plan's clock. What becomes of the checkpoint is apply's step (model.ts checkpointFate).
 */
export async function observe({ s3 }: { s3: S3Client }, scope: PurgeScope, ctx: RunContext<Config>): Promise<PurgeState> {
  const o = observeOptions(scope, ctx);
  const listed = scope.repository === undefined ? await observeResumably(s3, o, ctx) : await observeUploads(s3, o);
  const { state, partsReads } = await readCandidateParts(s3, listed, scope.policy, ctx, planClock(listed, ctx.now));
  return { ...state, maxAgeMs: scope.policy.maxAgeMs, partsReads };
}

function observeOptions({ policy, repository }: PurgeScope, ctx: RunContext<Config>): ObserveOptions {
  return {
    bucket: ctx.config.bucket,
    root: ctx.config.root,
    ...(repository !== undefined ? { repository } : {}),
    maxAgeMs: policy.maxAgeMs,
    startedAtReadWindowMs: ctx.config.startedAtReadWindowMs,
    listConcurrency: ctx.config.listConcurrency,
    now: ctx.now,
    signal: ctx.signal,
  };
}

/** A whole-registry listing: resumed from the checkpoint, if there is a usable one. */
async function observeResumably(s3: S3Client, o: ObserveOptions, ctx: RunContext<Config>): Promise<UploadsState> {
  const checkpoint: CheckpointOptions = {
    bucket: o.bucket,
    root: o.root,
    listConcurrency: o.listConcurrency,
    signal: o.signal,
    now: o.now,
  };
  const loaded = await loadCheckpoint(s3, checkpoint);
  return observeUploads(s3, {
    ...o,
    resumable: { ...(loaded.progress ? { from: loaded.progress } : {}), found: loaded.found, hasTime: listingHasTime(ctx) },
  });
}

/**
 * The listing takes a page only while more than its reserve (beyond the runner's margin) is left: the run that
 * completes a listing must still read its candidates' parts and apply, or every candidate stays `parts not read`
 * and the listing is wasted. The reserve is LISTING_RESERVE, at most half the time the run started with, so a
 * shorter timeout (a local invoke) still lists.
 */
function listingHasTime(ctx: RunContext<Config>): () => boolean {
  const atStart = ctx.timeLeftMs?.();
  if (atStart === undefined) return () => ctx.hasTime();
  const reserve = DEFAULT_TIME_MARGIN_MS + Math.min(ctx.config.listingReserveMs, atStart / 2);
  return () => ctx.hasTime() && (ctx.timeLeftMs?.() ?? Infinity) >= reserve;
}

export interface ObserveOptions {
  readonly bucket: string;
  readonly root: string;
  /** Limit to one repository (its own `_uploads/`, not nested repositories). */
  readonly repository?: string;
  readonly maxAgeMs: number;
  readonly startedAtReadWindowMs: number;
  readonly listConcurrency: number;
  readonly now: Date;
  readonly signal: AbortSignal;
  /** Budget-bounded, resumable listing (whole-registry runs; see checkpoint.ts). */
  readonly resumable?: Resumable;
}

/** Makes the listing resumable: it continues `from`, and stops taking pages once `hasTime()` is false. */
export interface Resumable {
  readonly from?: ListingProgress;
  /** The checkpoint as observe found it (carried to apply with the progress). */
  readonly found: CheckpointFound;
  hasTime(): boolean;
}

/**
 * Reads the upload state of the registry in one pass: open multipart uploads first (so an upload started
 * during the listing has its directory listed too), then every key under `repositories/` (flat listings,
 * in parallel key ranges), then `startedat` where the object time alone cannot decide.
 */
export async function observeUploads(s3: S3Client, o: ObserveOptions): Promise<UploadsState> {
  try {
    return await observeListing(s3, o);
  } catch (error) {
    if (errorName(error) === 'NoSuchBucket') {
      throw new ConfigError(`REGISTRY_BUCKET "${o.bucket}" does not exist (NoSuchBucket): check the function's REGISTRY_BUCKET`);
    }
    throw error;
  }
}

async function observeListing(s3: S3Client, o: ObserveOptions): Promise<UploadsState> {
  const prefix = o.repository === undefined ? repositoriesPrefix(o.root) : uploadsPrefix(o.root, o.repository);
  const listed = await listAll(s3, o, prefix);
  const resumable = o.resumable ? resumableFields(o.resumable, listed) : {};
  if (!listed.complete) return { ...emptyState(o, listed.progress.keysListed), ...resumable };
  const { multipartUploads, objects } = listed.progress;
  const collected = { ...collectUploads(objects, multipartUploads, o.root, o.repository), keysListed: listed.progress.keysListed };
  // A resumed listing keeps the clock it began with: what was listed then is judged as of then.
  const read = await readStartedAts(s3, o, collected.uploads, listed.progress.startedAt);
  return { ...(o.repository !== undefined ? { repository: o.repository } : {}), ...collected, ...read, ...resumable };
}

function resumableFields(r: Resumable, listed: Listed): Pick<UploadsState, 'listing' | 'listingRun'> {
  return {
    listing: listingReport(listed),
    listingRun: { progress: listed.progress, found: r.found, complete: listed.complete },
  };
}

/** A listing the time budget cut short: nothing to plan on yet (a half-listed upload must never look complete). */
function emptyState(o: ObserveOptions, keysListed: number): UploadsState {
  return {
    ...(o.repository !== undefined ? { repository: o.repository } : {}),
    uploads: [],
    orphanMultipartUploads: [],
    keysListed,
    strayUploadKeys: 0,
    folderKeys: 0,
    foreignKeys: 0,
    foreignMultipartUploads: 0,
    startedAtReads: 0,
  };
}

function listingReport(listed: Listed): ListingReport {
  const { progress } = listed;
  return {
    status: listed.complete ? 'complete' : 'partial',
    resumed: progress.runs > 1,
    runs: progress.runs,
    keysListed: progress.keysListed,
    keysListedThisRun: listed.keysListedThisRun,
    ranges: { total: progress.ranges.length, done: progress.ranges.filter((r) => r.done).length },
    startedAt: new Date(progress.startedAt).toISOString(),
  };
}

/** Reads `startedat` of the uploads whose object time alone cannot decide (near the age boundary as of `now`). */
async function readStartedAts(
  s3: S3Client,
  o: ObserveOptions,
  uploads: readonly UploadDirectory[],
  now: number,
): Promise<{ uploads: UploadDirectory[]; startedAtReads: number }> {
  const toRead = uploads.filter((dir) => {
    const startedAt = dir.objects.find((x) => x.rest === 'startedat');
    return startedAt !== undefined && mustReadStartedAt(startedAt.lastModified, o.maxAgeMs, o.startedAtReadWindowMs, now);
  });
  const reads = new Map<UploadDirectory, StartedAtRead>();
  await mapLimit(toRead, STARTEDAT_READ_CONCURRENCY, async (dir) => {
    reads.set(dir, await readStartedAt(s3, o, `${uploadDirPrefix(o.root, dir.repository, dir.uploadId)}startedat`));
  });
  return {
    uploads: uploads.map((dir) => {
      const startedAt = reads.get(dir);
      return startedAt ? { ...dir, startedAt } : dir;
    }),
    startedAtReads: toRead.length,
  };
}

/** The time in `startedat` (the first 256 bytes are plenty: the registry writes one RFC 3339 time). */
async function readStartedAt(s3: S3Client, o: ObserveOptions, key: string): Promise<StartedAtRead> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: key, Range: 'bytes=0-255' }), { abortSignal: o.signal });
    const text = ((await res.Body?.transformToString()) ?? '').trim();
    const at = Date.parse(text);
    // distribution writes RFC 3339 (time.RFC3339); anything else is not a time we trust.
    return /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(text) && Number.isFinite(at)
      ? { kind: 'time', at }
      : { kind: 'unparseable', text: text.slice(0, 64) };
  } catch (error) {
    if (errorName(error) === 'NoSuchKey') return { kind: 'vanished' };
    throw error;
  }
}

/** ListMultipartUploads under `prefix`, every page. */
export async function listMultipartUploads(s3: S3Client, o: ObserveOptions, prefix: string): Promise<ListedMultipartUpload[]> {
  const uploads: ListedMultipartUpload[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  // The SDK has no paginator for ListMultipartUploads: follow NextKeyMarker/NextUploadIdMarker by hand.
  for (;;) {
    const page = await s3.send(
      new ListMultipartUploadsCommand({ Bucket: o.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      { abortSignal: o.signal },
    );
    for (const u of page.Uploads ?? []) {
      // No date: treat as started now (never old).
      if (u.Key && u.UploadId)
        uploads.push({ key: u.Key, multipartUploadId: u.UploadId, initiated: u.Initiated?.getTime() ?? o.now.getTime() });
    }
    if (!page.IsTruncated) break;
    if (page.NextKeyMarker === keyMarker && page.NextUploadIdMarker === uploadIdMarker) {
      throw new Error('ListMultipartUploads returned IsTruncated without advancing its markers');
    }
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
  return uploads;
}

interface Listed {
  readonly complete: boolean;
  readonly progress: ListingProgress;
  readonly keysListedThisRun: number;
}

/**
 * Open multipart uploads, then every key under `prefix`: the whole listing, or (resumable) as much of it as the
 * time budget allows, continuing where `resumable.from` stopped.
 */
async function listAll(s3: S3Client, o: ObserveOptions, prefix: string): Promise<Listed> {
  const hasTime = o.resumable?.hasTime ?? (() => true);
  const from = o.resumable?.from;
  const multipartUploads = from?.multipartUploads ?? (await listMultipartUploads(s3, o, prefix));
  const ranges = from?.ranges ?? (o.repository === undefined ? await planRanges(s3, o, prefix) : [{ done: false }]);
  const tally = { listed: 0 };
  const parts = await mapLimit(ranges, ranges.length, (range) => listRange(s3, o, prefix, range, tally, hasTime));
  const progress: ListingProgress = {
    startedAt: from?.startedAt ?? o.now.getTime(),
    runs: (from?.runs ?? 0) + 1,
    ranges: parts.map((p) => p.range),
    multipartUploads,
    objects: [...(from?.objects ?? []), ...parts.flatMap((p) => p.objects)],
    keysListed: (from?.keysListed ?? 0) + tally.listed,
  };
  return { complete: progress.ranges.every((r) => r.done), progress, keysListedThisRun: tally.listed };
}

/**
 * The key ranges of the repositories tree, listed flat in parallel (up to `listConcurrency`). A delimiter listing
 * gives the top-level names (one level deeper while there are fewer names than ranges: a registry with one
 * namespace); the ranges split them evenly; each range lists from its first name (StartAfter) and stops at the
 * next range's first name. The ranges partition the key space whatever the names are. Extra cost over one flat
 * listing: the delimiter listings plus at most one overlapping page per range.
 */
async function planRanges(s3: S3Client, o: ObserveOptions, prefix: string): Promise<ListingRange[]> {
  if (o.listConcurrency <= 1) return [{ done: false }];
  let names = await subPrefixes(s3, o, prefix);
  for (let depth = 0; depth < 2 && names.length > 0 && names.length < o.listConcurrency; depth += 1) {
    const deeper = (await mapLimit(names, o.listConcurrency, (name) => subPrefixes(s3, o, name))).flat();
    if (deeper.length <= names.length) break;
    names = deeper;
  }
  if (names.length <= 1) return [{ done: false }];
  names.sort(byteOrder);
  const count = Math.min(o.listConcurrency, names.length);
  const starts = Array.from({ length: count }, (_, i) => names[Math.floor((i * names.length) / count)] as string);
  return starts.map((from, i) => ({ ...(i > 0 ? { from } : {}), ...(i + 1 < count ? { to: starts[i + 1] } : {}), done: false }));
}

/** The common prefixes one level below `prefix` (a delimiter listing, every page). */
async function subPrefixes(s3: S3Client, o: ObserveOptions, prefix: string): Promise<string[]> {
  const names: string[] = [];
  await countedPages(o, { Bucket: o.bucket, Prefix: prefix, Delimiter: '/' }, s3, (page) => {
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) names.push(p.Prefix);
  });
  return names;
}

interface Tally {
  listed: number;
}

/**
 * The keys of one range not taken yet; stops once past `to`, or before a page when `hasTime()` is false (the
 * range then records the last key taken). Only keys with an `_uploads` path component are kept in memory (the
 * rest — links, manifests — are only counted).
 */
async function listRange(
  s3: S3Client,
  o: ObserveOptions,
  prefix: string,
  range: ListingRange,
  tally: Tally,
  hasTime: () => boolean,
  onKey?: (key: string) => void,
): Promise<{ objects: ListedObject[]; range: ListingRange }> {
  if (range.done) return { objects: [], range };
  const out: ListedObject[] = [];
  const { from, to } = range;
  let after = range.after;
  // StartAfter `…/name` (no slash) sorts just before every `…/name/…` key; keys between it and `from` belong
  // to the previous range and are dropped by the `from` bound.
  const startAfter = after ?? from?.slice(0, -1);
  const finished = await countedPages(
    o,
    { Bucket: o.bucket, Prefix: prefix, ...(startAfter !== undefined ? { StartAfter: startAfter } : {}) },
    s3,
    (page) => {
      for (const c of page.Contents ?? []) {
        if (!c.Key) continue;
        if (to !== undefined && byteOrder(c.Key, to) >= 0) return true;
        if (from !== undefined && byteOrder(c.Key, from) < 0) continue;
        tally.listed += 1;
        after = c.Key;
        onKey?.(c.Key);
        // No date: treat as written now (never old enough to delete).
        if (c.Key.includes('/_uploads/'))
          out.push({ key: c.Key, size: c.Size ?? 0, lastModified: c.LastModified?.getTime() ?? o.now.getTime() });
      }
      return false;
    },
    hasTime,
  );
  return {
    objects: out,
    range: { ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}), ...(after ? { after } : {}), done: finished },
  };
}

type Page = {
  Contents?: { Key?: string; Size?: number; LastModified?: Date }[];
  CommonPrefixes?: { Prefix?: string }[];
  IsTruncated?: boolean;
};

/**
 * Runs the ListObjectsV2 paginator (the client counts each page); `onPage` returning true stops it. Resolves
 * true when the listing ended (or `onPage` stopped it), false when `hasTime()` said no before a page. A page
 * that is not truncated ends the listing without asking for time: a listing that ends near the deadline must
 * count as complete, not cost the next run a request to learn it.
 */
async function countedPages(
  o: ObserveOptions,
  input: ListObjectsV2CommandInput,
  s3: S3Client,
  onPage: (page: Page) => boolean | void,
  hasTime: () => boolean = () => true,
): Promise<boolean> {
  const pages = paginateListObjectsV2({ client: s3, pageSize: 1000 }, input, { abortSignal: o.signal });
  const it = pages[Symbol.asyncIterator]();
  for (;;) {
    if (!hasTime()) {
      await it.return?.(undefined);
      return false;
    }
    const next: IteratorResult<Page> = await it.next();
    if (next.done) return true;
    if (onPage(next.value) === true || next.value.IsTruncated === false) {
      await it.return?.(undefined);
      return true;
    }
    if (o.signal.aborted) throw o.signal.reason;
  }
}

/** S3 orders keys by UTF-8 bytes; for the ASCII names of the registry this is plain string order. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** An upload directory to re-read live (inventory mode: a candidate found in a day-old inventory). */
export interface UploadDirRef {
  readonly repository: string;
  readonly uploadId: string;
}

export interface LiveUploads {
  readonly state: UploadsState;
  /** Directories listed live. */
  readonly rechecked: number;
  /** Directories with no object left now (completed or purged since the inventory). */
  readonly vanished: number;
  /** Directories `owns` gave to another shard. */
  readonly notOwned: number;
}

/**
 * The live state of some upload directories, read as the whole-registry observe reads it: each directory's own
 * prefix listing, the open multipart uploads given (listed live at the start of the pass), then `startedat` where
 * the object time cannot decide. `owns(dir, liveKeys)` decides which directories this caller acts on, so that
 * two shards that both saw a directory never both act on it. A directory the time budget left unlisted is skipped.
 */
export async function observeUploadDirs(
  s3: S3Client,
  o: ObserveOptions,
  dirs: readonly UploadDirRef[],
  multipartUploads: readonly ListedMultipartUpload[],
  owns: (dir: UploadDirRef, liveKeys: readonly string[]) => Promise<boolean>,
  hasTime: () => boolean,
): Promise<LiveUploads> {
  const tally = { listed: 0 };
  const listed = await mapLimit(dirs, STARTEDAT_READ_CONCURRENCY, async (dir) => {
    const prefix = uploadDirPrefix(o.root, dir.repository, dir.uploadId);
    // Every key of the directory, not only those the listing keeps (`owns` may want them).
    const keys: string[] = [];
    const part = await listRange(s3, o, prefix, { done: false }, tally, hasTime, (key) => keys.push(key));
    return { dir, prefix, keys, part };
  });
  const done = listed.filter((l) => l.part.range.done);
  const owned = (await mapLimit(done, STARTEDAT_READ_CONCURRENCY, async (l) => ((await owns(l.dir, l.keys)) ? [l] : []))).flat();
  const ownedPrefixes = new Set(owned.map((l) => l.prefix));
  const collected = collectUploads(
    owned.flatMap((l) => l.part.objects),
    multipartUploads.filter((m) => ownedPrefixes.has(m.key.slice(0, m.key.lastIndexOf('/') + 1))),
    o.root,
  );
  const read = await readStartedAts(s3, o, collected.uploads, o.now.getTime());
  return {
    state: { ...collected, ...read, keysListed: tally.listed },
    rechecked: done.length,
    vanished: done.filter((l) => l.keys.length === 0).length,
    notOwned: done.length - owned.length,
  };
}

/**
 * ListParts for exactly the multipart uploads the plan would act on (an upload's parts are its only sign of life
 * during one long PATCH), in rounds: plan, read the parts of the `unchecked` candidates that fit the budget, plan
 * again — a candidate found active frees its budget for the next one. Fresh and deferred uploads are never read.
 * Stops when the time budget runs low: what is left unread stays `unchecked` (kept), never deleted. `planNow` is
 * the clock the plan will judge with (planClock; the shard mode's pass clock): the candidates are the plan's.
 */
export async function readCandidateParts(
  s3: S3Client,
  state: UploadsState,
  policy: PurgePolicy,
  ctx: Pick<RunContext<Pick<Config, 'bucket' | 'root'>>, 'config' | 'signal' | 'now' | 'hasTime'>,
  planNow: Date = ctx.now,
): Promise<{ state: UploadsState; partsReads: number }> {
  const o = { bucket: ctx.config.bucket, root: ctx.config.root, signal: ctx.signal, now: ctx.now };
  let current = state;
  let partsReads = 0;
  for (;;) {
    const unread = unreadCandidateParts(current, policy, planNow);
    if (unread.length === 0 || !ctx.hasTime()) return { state: current, partsReads };
    const reads = new Map<OpenMultipartUpload, PartsRead>();
    await mapLimit(unread, PARTS_READ_CONCURRENCY, async (mpu) => {
      if (!ctx.hasTime()) return;
      reads.set(mpu, await readParts(s3, o, uploadDataKey(o.root, mpu.repository, mpu.uploadId), mpu.multipartUploadId));
    });
    partsReads += reads.size;
    current = withParts(current, reads);
  }
}

function withParts(state: UploadsState, reads: ReadonlyMap<OpenMultipartUpload, PartsRead>): UploadsState {
  const attach = (m: OpenMultipartUpload): OpenMultipartUpload => {
    const parts = reads.get(m);
    return parts ? { ...m, parts } : m;
  };
  return {
    ...state,
    uploads: state.uploads.map((d) =>
      d.multipartUploads.some((m) => reads.has(m)) ? { ...d, multipartUploads: d.multipartUploads.map(attach) } : d,
    ),
    orphanMultipartUploads: state.orphanMultipartUploads.map(attach),
  };
}
