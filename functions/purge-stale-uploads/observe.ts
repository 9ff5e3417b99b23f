import {
  GetObjectCommand,
  ListMultipartUploadsCommand,
  paginateListObjectsV2,
  type ListObjectsV2CommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { mapLimit } from '../../shared/concurrency.ts';
import { ConfigError, errorName } from '../../shared/errors.ts';
import type { RunContext } from '../../shared/job.ts';
import { repositoriesPrefix, uploadDataKey, uploadDirPrefix, uploadsPrefix } from '../../shared/registry-layout.ts';
import type { Config } from './config.ts';
import type {
  ListedMultipartUpload,
  ListedObject,
  OpenMultipartUpload,
  PartsRead,
  PurgePolicy,
  PurgeScope,
  PurgeState,
  StartedAtRead,
  UploadDirectory,
  UploadsState,
} from './model.ts';
import { collectUploads, mustReadStartedAt } from './model.ts';
import { plan } from './plan.ts';
import { readParts } from './recheck.ts';

/** GETs of `startedat` in flight at once. */
export const STARTEDAT_READ_CONCURRENCY = 16;
/** ListParts in flight at once (candidates only). */
export const PARTS_READ_CONCURRENCY = 16;

/**
 * The job's observe: the listing (observeUploads), then the parts of every candidate (readCandidateParts).
 */
export async function observe({ s3 }: { s3: S3Client }, scope: PurgeScope, ctx: RunContext<Config>): Promise<PurgeState> {
  const { policy, repository } = scope;
  const state = await observeUploads(s3, {
    bucket: ctx.config.bucket,
    root: ctx.config.root,
    ...(repository !== undefined ? { repository } : {}),
    maxAgeMs: policy.maxAgeMs,
    startedAtReadWindowMs: ctx.config.startedAtReadWindowMs,
    listConcurrency: ctx.config.listConcurrency,
    now: ctx.now,
    signal: ctx.signal,
  });
  const { state: read, partsReads } = await readCandidateParts(s3, state, policy, ctx);
  return { ...read, maxAgeMs: policy.maxAgeMs, partsReads };
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
  const multipartUploads = await listMultipartUploads(s3, o, prefix);
  const tally = { listed: 0 };
  const objects =
    o.repository === undefined
      ? await listParallel(s3, o, prefix, tally)
      : await listRange(s3, o, { Prefix: prefix }, undefined, undefined, tally);
  const collected = { ...collectUploads(objects, multipartUploads, o.root, o.repository), keysListed: tally.listed };

  const now = o.now.getTime();
  const toRead = collected.uploads.filter((dir) => {
    const startedAt = dir.objects.find((x) => x.rest === 'startedat');
    return startedAt !== undefined && mustReadStartedAt(startedAt.lastModified, o.maxAgeMs, o.startedAtReadWindowMs, now);
  });
  const reads = new Map<UploadDirectory, StartedAtRead>();
  await mapLimit(toRead, STARTEDAT_READ_CONCURRENCY, async (dir) => {
    reads.set(dir, await readStartedAt(s3, o, `${uploadDirPrefix(o.root, dir.repository, dir.uploadId)}startedat`));
  });

  return {
    ...(o.repository !== undefined ? { repository: o.repository } : {}),
    ...collected,
    uploads: collected.uploads.map((dir) => {
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
async function listMultipartUploads(s3: S3Client, o: ObserveOptions, prefix: string): Promise<ListedMultipartUpload[]> {
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

/**
 * Every key under `prefix` (the repositories tree), listed flat in up to `listConcurrency` key ranges at
 * once. A delimiter listing gives the top-level names (one level deeper while there are fewer names than
 * ranges: a registry with one namespace); the ranges split them evenly; each range lists from its first
 * name (StartAfter) and stops at the next range's first name. The ranges partition the key space whatever
 * the names are. Extra cost over one flat listing: the delimiter listings plus at most one overlapping page
 * per range.
 */
async function listParallel(s3: S3Client, o: ObserveOptions, prefix: string, tally: Tally): Promise<ListedObject[]> {
  if (o.listConcurrency <= 1) return listRange(s3, o, { Prefix: prefix }, undefined, undefined, tally);
  let names = await subPrefixes(s3, o, prefix);
  for (let depth = 0; depth < 2 && names.length > 0 && names.length < o.listConcurrency; depth += 1) {
    const deeper = (await mapLimit(names, o.listConcurrency, (name) => subPrefixes(s3, o, name))).flat();
    if (deeper.length <= names.length) break;
    names = deeper;
  }
  if (names.length <= 1) return listRange(s3, o, { Prefix: prefix }, undefined, undefined, tally);
  names.sort(byteOrder);
  const ranges = Math.min(o.listConcurrency, names.length);
  const starts = Array.from({ length: ranges }, (_, i) => names[Math.floor((i * names.length) / ranges)] as string);
  const parts = await mapLimit(starts, ranges, (from, i) =>
    // StartAfter `…/name` (no slash) sorts just before every `…/name/…` key; keys between it and `from` belong
    // to the previous range and are dropped by the `from` bound.
    listRange(
      s3,
      o,
      { Prefix: prefix, ...(i > 0 ? { StartAfter: from.slice(0, -1) } : {}) },
      i > 0 ? from : undefined,
      starts[i + 1],
      tally,
    ),
  );
  return parts.flat();
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
 * Keys of one flat listing with `from <= key < to` (either bound optional); stops once past `to`. Only keys
 * with an `_uploads` path component are kept in memory (the rest — links, manifests — are only counted).
 */
async function listRange(
  s3: S3Client,
  o: ObserveOptions,
  input: Omit<ListObjectsV2CommandInput, 'Bucket'>,
  from: string | undefined,
  to: string | undefined,
  tally: Tally,
): Promise<ListedObject[]> {
  const out: ListedObject[] = [];
  await countedPages(o, { Bucket: o.bucket, ...input }, s3, (page) => {
    let past = false;
    for (const c of page.Contents ?? []) {
      if (!c.Key) continue;
      if (to !== undefined && byteOrder(c.Key, to) >= 0) {
        past = true;
        break;
      }
      if (from !== undefined && byteOrder(c.Key, from) < 0) continue;
      tally.listed += 1;
      // No date: treat as written now (never old enough to delete).
      if (c.Key.includes('/_uploads/'))
        out.push({ key: c.Key, size: c.Size ?? 0, lastModified: c.LastModified?.getTime() ?? o.now.getTime() });
    }
    return past;
  });
  return out;
}

type Page = { Contents?: { Key?: string; Size?: number; LastModified?: Date }[]; CommonPrefixes?: { Prefix?: string }[] };

/** Runs the ListObjectsV2 paginator (the client counts each page); `onPage` returning true stops it. */
async function countedPages(
  o: ObserveOptions,
  input: ListObjectsV2CommandInput,
  s3: S3Client,
  onPage: (page: Page) => boolean | void,
): Promise<void> {
  const pages = paginateListObjectsV2({ client: s3, pageSize: 1000 }, input, { abortSignal: o.signal });
  const it = pages[Symbol.asyncIterator]();
  for (;;) {
    const next: IteratorResult<Page> = await it.next();
    if (next.done) return;
    if (onPage(next.value) === true) {
      await it.return?.(undefined);
      return;
    }
    if (o.signal.aborted) throw o.signal.reason;
  }
}

/** S3 orders keys by UTF-8 bytes; for the ASCII names of the registry this is plain string order. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * ListParts for exactly the multipart uploads the plan would act on (an upload's parts are its only sign of life
 * during one long PATCH), in rounds: plan, read the parts of the `unchecked` candidates that fit the budget, plan
 * again — a candidate found active frees its budget for the next one. Fresh and deferred uploads are never read.
 * Stops when the time budget runs low: what is left unread stays `unchecked` (kept), never deleted.
 */
async function readCandidateParts(
  s3: S3Client,
  state: UploadsState,
  policy: PurgePolicy,
  ctx: RunContext<Config>,
): Promise<{ state: UploadsState; partsReads: number }> {
  const o = { bucket: ctx.config.bucket, root: ctx.config.root, signal: ctx.signal, now: ctx.now };
  let current = state;
  let partsReads = 0;
  for (;;) {
    const unread = unreadOfCandidates(current, policy, ctx.now);
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

/** The multipart uploads, not read yet, of the candidates the plan holds as `unchecked`. */
function unreadOfCandidates(state: UploadsState, policy: PurgePolicy, now: Date): OpenMultipartUpload[] {
  const targets = new Set(
    plan(state, policy, now)
      .skipped.filter((a) => a.held === 'unchecked')
      .map((a) => a.target),
  );
  if (targets.size === 0) return [];
  const dirs = state.uploads.filter((d) => targets.has(`${d.repository}/_uploads/${d.uploadId}`)).flatMap((d) => d.multipartUploads);
  const orphans = state.orphanMultipartUploads.filter((m) => targets.has(`${m.repository}/_uploads/${m.uploadId}/data`));
  return [...dirs, ...orphans].filter((m) => m.parts === undefined);
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
