/** Domain types of purge-stale-uploads: what observe sees, what plan decides over. No SDK types. */
import { classifyKey, parseUploadDataKey } from '../../shared/registry-layout.ts';

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
  /** What happened to the checkpoint: `saved`, `cleared`, or `discarded: <why>` (then the listing started over). */
  readonly checkpoint?: string;
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
