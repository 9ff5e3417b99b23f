/** collect-garbage's reads: the mark's listing (repositories, blobs, manifests), or a restore's delete markers. */
import { GetBucketVersioningCommand, ListObjectVersionsCommand, type S3Client } from '@aws-sdk/client-s3';
import { mapLimit } from '../../shared/concurrency.ts';
import { ConfigError, errorName } from '../../shared/errors.ts';
import type { RunContext } from '../../shared/job.ts';
import { loadCheckpoint } from './checkpoint.ts';
import type { Config } from './config.ts';
import { blobDataKey, blobsPrefix, parseBlobKey } from './layout.ts';
import { listPrefix, listRepositoryKeys, readManifestClosure, readTagCurrents, repositoriesOf, type Reader } from './listing.ts';
import {
  CLOCK_SKEW_MS,
  type Blob,
  type Digest,
  type GcScope,
  type GcState,
  type RestoreState,
  type State,
  type Versioning,
} from './model.ts';

export interface GcClients {
  readonly s3: S3Client;
}

export function readerOf(s3: S3Client, config: Config, signal: AbortSignal): Reader {
  return { s3, bucket: config.bucket, root: config.root, concurrency: config.listConcurrency, signal };
}

export async function observe({ s3 }: GcClients, scope: GcScope, ctx: RunContext<Config>): Promise<State> {
  const r = readerOf(s3, ctx.config, ctx.signal);
  const versioning = await readVersioning(r);
  return scope.restore ? observeRestore(r, versioning, scope.restore) : observeMark(r, versioning, scope);
}

async function readVersioning(r: Reader): Promise<Versioning> {
  try {
    const res = await r.s3.send(new GetBucketVersioningCommand({ Bucket: r.bucket }), { abortSignal: r.signal });
    return res.Status === 'Enabled' ? 'Enabled' : res.Status === 'Suspended' ? 'Suspended' : 'Unversioned';
  } catch (error) {
    // The first request of a run: a missing bucket is the configuration's fault.
    if (errorName(error) === 'NoSuchBucket')
      throw new ConfigError(`REGISTRY_BUCKET "${r.bucket}" does not exist (NoSuchBucket): check the function's REGISTRY_BUCKET`);
    throw error;
  }
}

async function observeMark(r: Reader, versioning: Versioning, scope: GcScope): Promise<GcState> {
  // Compared with S3's LastModified by the re-checks, so it is the wall clock (never a run's injected clock).
  const markStartedAt = Date.now() - CLOCK_SKEW_MS;
  const loaded = await loadCheckpoint(r, scope.policy, Date.now());
  const checkpoint = {
    found: loaded.resumed !== undefined || loaded.discarded !== undefined,
    ...(loaded.discarded ? { discarded: loaded.discarded } : {}),
  };
  if (loaded.resumed) {
    const { resumed } = loaded;
    const base = {
      kind: 'sweep',
      root: r.root,
      versioning,
      repositories: [],
      blobs: [],
      manifests: {},
      keysListed: 0,
      manifestReads: 0,
    } as const;
    return { ...base, markStartedAt: resumed.markStartedAt, resumed, checkpoint };
  }
  const [keys, blobKeys] = await Promise.all([listRepositoryKeys(r), listPrefix(r, blobsPrefix(r.root))]);
  const built = repositoriesOf(keys, r.root);
  const repositories = scope.policy.retention ? await readTagCurrents(r, built.repositories, built.currentKeys) : built.repositories;
  const blobs: Blob[] = [];
  for (const k of blobKeys) {
    const digest = parseBlobKey(k.key, r.root);
    if (digest) blobs.push({ digest, size: k.size, lastModified: k.lastModified });
  }
  const manifests = await readManifestClosure(
    r,
    repositories.flatMap((repo) => repo.revisions.map((rev) => rev.digest)),
  );
  return {
    kind: 'sweep',
    root: r.root,
    markStartedAt,
    versioning,
    repositories,
    blobs,
    manifests,
    keysListed: keys.length + blobKeys.length,
    manifestReads: Object.keys(manifests).length,
    checkpoint,
  };
}

/** The version state of a key: the delete marker that hides it, if the newest version is one. */
export async function latestMarker(r: Reader, key: string): Promise<{ marker?: string; live: boolean }> {
  const res = await r.s3.send(new ListObjectVersionsCommand({ Bucket: r.bucket, Prefix: key, MaxKeys: 50 }), { abortSignal: r.signal });
  const marker = (res.DeleteMarkers ?? []).find((m) => m.Key === key && m.IsLatest)?.VersionId;
  const live = (res.Versions ?? []).some((v) => v.Key === key && v.IsLatest);
  return { ...(marker ? { marker } : {}), live };
}

async function observeRestore(r: Reader, versioning: Versioning, digests: readonly Digest[]): Promise<RestoreState> {
  const blobs = await mapLimit(digests, r.concurrency, async (digest) => {
    const key = blobDataKey(r.root, digest);
    return { digest, key, ...(await latestMarker(r, key)) };
  });
  return { kind: 'restore', versioning, blobs };
}
