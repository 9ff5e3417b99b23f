import { ListPartsCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import { errorName } from '../../shared/errors.ts';
import { uploadDataKey, uploadDirPrefix } from '../../shared/registry-layout.ts';
import type { PartsRead, UploadObject } from './model.ts';
import type { PurgeAction } from './model.ts';

/**
 * The S3 reads that tell whether one upload is still alive, shared by observe (the parts of every candidate) and
 * apply (the re-check right before each abort/delete), and by anything else that acts on a plan (the shard mode).
 * A push streamed in one long PATCH writes no object until the request ends: only its parts show it is alive.
 */

export interface ReadOptions {
  readonly bucket: string;
  readonly root: string;
  readonly signal: AbortSignal;
  /** The run's time (ctx.now): what a part or object without a date counts as (alive, never old). */
  readonly now: Date;
}

/** Every part of one multipart upload (ListParts, every page): how many, their bytes, the newest. */
export async function readParts(s3: S3Client, o: ReadOptions, key: string, multipartUploadId: string): Promise<PartsRead> {
  let count = 0;
  let bytes = 0;
  let newest: { partNumber: number; at: number } | undefined;
  let marker: string | undefined;
  try {
    // By hand, not paginateListParts: the paginator follows NextPartNumberMarker whatever IsTruncated says, and
    // moto (like some S3 look-alikes) returns a marker on the last page too.
    for (;;) {
      const page = await s3.send(
        new ListPartsCommand({ Bucket: o.bucket, Key: key, UploadId: multipartUploadId, PartNumberMarker: marker }),
        {
          abortSignal: o.signal,
        },
      );
      for (const part of page.Parts ?? []) {
        count += 1;
        bytes += part.Size ?? 0;
        const at = part.LastModified?.getTime() ?? o.now.getTime();
        if (!newest || at > newest.at) newest = { partNumber: part.PartNumber ?? count, at };
      }
      if (!page.IsTruncated) break;
      if (page.NextPartNumberMarker === undefined || page.NextPartNumberMarker === marker) {
        throw new Error('ListParts returned IsTruncated without advancing its marker');
      }
      marker = page.NextPartNumberMarker;
    }
  } catch (error) {
    if (errorName(error) === 'NoSuchUpload') return { kind: 'gone' };
    throw error;
  }
  return { kind: 'read', count, bytes, ...(newest ? { newest } : {}) };
}

/** One upload as S3 shows it now: the objects of its directory (a prefix listing) and the parts of its multipart uploads. */
export interface UploadNow {
  readonly objects: readonly UploadObject[];
  readonly parts: readonly PartsRead[];
}

/** The upload an action names, read again: its `_uploads/<uuid>/` prefix and ListParts of each multipart upload. */
export async function readActivity(s3: S3Client, o: ReadOptions, action: PurgeAction): Promise<UploadNow> {
  const prefix = uploadDirPrefix(o.root, action.repository, action.uploadId);
  const objects: UploadObject[] = [];
  const pages = paginateListObjectsV2({ client: s3, pageSize: 1000 }, { Bucket: o.bucket, Prefix: prefix }, { abortSignal: o.signal });
  for await (const page of pages) {
    for (const c of page.Contents ?? []) {
      const lastModified = c.LastModified?.getTime() ?? o.now.getTime();
      if (c.Key) objects.push({ rest: c.Key.slice(prefix.length), size: c.Size ?? 0, lastModified });
    }
  }
  const key = uploadDataKey(o.root, action.repository, action.uploadId);
  const parts: PartsRead[] = [];
  for (const id of multipartUploadIdsOf(action)) parts.push(await readParts(s3, o, key, id));
  return { objects, parts };
}

export function multipartUploadIdsOf(action: PurgeAction): readonly string[] {
  return action.type === 'delete-upload' ? action.multipartUploadIds : [action.multipartUploadId];
}

/**
 * Why the upload moved since the plan, or undefined when it did not (pure). Moved = a different set of objects,
 * or any object or part newer than the newest activity the plan saw. A multipart upload gone meanwhile is not a
 * move: nothing can resume it, and its abort counts as done (a completed push also changes the objects: `data`).
 */
export function movedSince(action: PurgeAction, now: UploadNow): string | undefined {
  const seen = Date.parse(action.lastActivityAt);
  const planned = action.type === 'delete-upload' ? action.objects : [];
  const listed = now.objects.map((x) => x.rest).sort();
  const added = listed.filter((rest) => !planned.includes(rest));
  const removed = planned.filter((rest) => !listed.includes(rest));
  if (added.length > 0 || removed.length > 0) {
    const what = [added.length > 0 && `new ${added.join(', ')}`, removed.length > 0 && `gone ${removed.join(', ')}`].filter(Boolean);
    return `its objects changed since the plan (${what.join('; ')})`;
  }
  const written = now.objects.find((x) => x.lastModified > seen);
  if (written) return `${written.rest || 'its folder key'} was written at ${iso(written.lastModified)}, after ${action.lastActivityAt}`;
  for (const p of now.parts) {
    if (p.kind === 'read' && p.newest && p.newest.at > seen) {
      return `part ${p.newest.partNumber} was uploaded at ${iso(p.newest.at)}, after ${action.lastActivityAt}`;
    }
  }
  return undefined;
}

const iso = (ms: number): string => new Date(ms).toISOString();
