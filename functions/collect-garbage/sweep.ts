/**
 * The sweep (apply's phases), each re-checking right before it acts:
 *
 * 1. **Expire** (retention): per manifest, list its repository's `_manifests/` again; skip it if its revision link
 *    was re-written or a tag written since the mark names it; else delete the revision link and every key of each
 *    tag that names it (distribution's DELETE by digest: the revision link, then Untag of each tag).
 *    If any expiry does not apply, nothing else is deleted this run: its manifest still references its blobs.
 * 2. **Re-check, then delete**: list `repositories/` again; every revision link and `_layers` link written since
 *    the mark began (S3 lists are strongly consistent) is read, and any candidate they reference or link is
 *    dropped (`changed-during-run`). Then the dangling links go, then the blobs (delete markers: the bucket is
 *    versioned, plan refuses otherwise).
 * 3. **Restore what raced**: after GC_SETTLE (longer than a manifest PUT takes from its blob check to its link),
 *    list again; any deleted blob or link that a manifest or link written since phase 2's listing references is
 *    restored at once (its delete marker removed) and the action reports `restored`.
 */
import { DeleteObjectCommand, DeleteObjectsCommand } from '@aws-sdk/client-s3';
import { mapLimit } from '../../shared/concurrency.ts';
import { describeError } from '../../shared/errors.ts';
import type { Outcome, RunContext } from '../../shared/job.ts';
import { repositoriesPrefix } from '../../shared/registry-layout.ts';
import type { Config } from './config.ts';
import { parseRepositoryKey } from './layout.ts';
import { listPrefix, listRepositoryKeys, readLink, readManifestClosure, type Listed, type Reader } from './listing.ts';
import { referencedFrom } from './mark.ts';
import { CLOCK_SKEW_MS, type Digest, type GcAction, type ManifestContent } from './model.ts';
import { latestMarker } from './observe.ts';

export const CHANGED_DURING_RUN = 'changed-during-run';
const DELETE_BATCH = 1000;

type Expire = Extract<GcAction, { type: 'expire-manifest' }>;
type LinkDelete = Extract<GcAction, { type: 'delete-layer-link' }>;
type BlobDelete = Extract<GcAction, { type: 'delete-blob' }>;

export interface SweepOptions {
  readonly markStartedAt: number;
  readonly settleMs: number;
}

/** What was written since a time: manifests by repository, and `_layers` links. */
interface Written {
  readonly revisions: Map<string, Digest[]>;
  readonly layers: Set<string>;
  readonly manifests: Record<string, ManifestContent>;
}

const linkId = (repository: string, digest: Digest) => `${repository}\n${digest}`;

async function writtenSince(r: Reader, since: number): Promise<Written> {
  const keys = await listRepositoryKeys(r);
  const revisions = new Map<string, Digest[]>();
  const layers = new Set<string>();
  for (const k of keys) {
    if (k.lastModified < since) continue;
    const p = parseRepositoryKey(k.key, r.root);
    if (p.kind === 'revision') revisions.set(p.repository, [...(revisions.get(p.repository) ?? []), p.digest]);
    else if (p.kind === 'layer') layers.add(linkId(p.repository, p.digest));
  }
  const manifests = await readManifestClosure(r, [...revisions.values()].flat());
  return { revisions, layers, manifests };
}

/** Blobs the written manifests reference or the written links link, and per repository the digests its new manifests reference. */
function protectedBy(w: Written): { blobs: Set<Digest>; links: Set<string> } {
  const blobs = new Set<Digest>();
  const links = new Set<string>(w.layers);
  for (const [repository, digests] of w.revisions) {
    for (const d of referencedFrom(digests, w.manifests)) {
      blobs.add(d);
      links.add(linkId(repository, d));
    }
  }
  for (const id of w.layers) blobs.add(id.split('\n')[1] as Digest);
  return { blobs, links };
}

/** Phase 1: one expiry, re-checked against its repository's `_manifests/` as it is now. */
export async function expireManifest(r: Reader, a: Expire, markStartedAt: number): Promise<Outcome> {
  const keys = await listPrefix(r, `${repositoriesPrefix(r.root)}${a.repository}/_manifests/`);
  const revision = keys.find((k) => {
    const p = parseRepositoryKey(k.key, r.root);
    return p.kind === 'revision' && p.repository === a.repository && p.digest === a.digest;
  });
  if (!revision) return { status: 'skipped', reason: `${CHANGED_DURING_RUN}: its revision link is already gone` };
  if (revision.lastModified > a.revisionModified)
    return { status: 'skipped', reason: `${CHANGED_DURING_RUN}: pushed again since the mark` };
  const tagKeys = new Map<string, Listed[]>();
  for (const k of keys) {
    const p = parseRepositoryKey(k.key, r.root);
    if ((p.kind === 'tag-current' || p.kind === 'tag-index') && p.repository === a.repository)
      tagKeys.set(p.tag, [...(tagKeys.get(p.tag) ?? []), k]);
  }
  const untag: string[] = [];
  for (const [tag, list] of tagKeys) {
    const current = list.find((k) => k.key.endsWith('/current/link'));
    if (!current) continue;
    const names = a.tags.includes(tag) || current.lastModified >= markStartedAt ? await readLink(r, current.key) : undefined;
    if (names !== a.digest) continue;
    if (!a.tags.includes(tag)) return { status: 'skipped', reason: `${CHANGED_DURING_RUN}: tag ${tag} was pushed onto it since the mark` };
    untag.push(...list.map((k) => k.key));
  }
  const failed = await deleteKeys(r, [revision.key, ...untag]);
  if (failed.size > 0) return { status: 'failed', error: [...failed.values()][0] ?? 'delete failed' };
  return { status: 'applied', detail: { keysDeleted: 1 + untag.length } };
}

/** DeleteObjects in batches; the keys that failed, with their error. */
async function deleteKeys(r: Reader, keys: readonly string[]): Promise<Map<string, string>> {
  const failed = new Map<string, string>();
  const batches: string[][] = [];
  for (let i = 0; i < keys.length; i += DELETE_BATCH) batches.push(keys.slice(i, i + DELETE_BATCH));
  await mapLimit(batches, 4, async (batch) => {
    try {
      const res = await r.s3.send(
        new DeleteObjectsCommand({ Bucket: r.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        { abortSignal: r.signal },
      );
      for (const e of res.Errors ?? []) if (e.Key) failed.set(e.Key, `${e.Code ?? 'Error'}: ${e.Message ?? ''}`);
    } catch (error) {
      for (const k of batch) failed.set(k, describeError(error));
    }
  });
  return failed;
}

/** Remove the delete marker that hides `key` (the undo of a GC delete); false when there is none. */
export async function restoreKey(r: Reader, key: string): Promise<string | undefined> {
  const { marker } = await latestMarker(r, key);
  if (!marker) return undefined;
  await r.s3.send(new DeleteObjectCommand({ Bucket: r.bucket, Key: key, VersionId: marker }), { abortSignal: r.signal });
  return marker;
}

/** Phases 2 and 3 for the links and blobs; outcomes in the order of `links` then `blobs`. */
export async function sweep(
  r: Reader,
  links: readonly LinkDelete[],
  blobs: readonly BlobDelete[],
  o: SweepOptions,
  ctx: Pick<RunContext<Config>, 'hasTime'>,
): Promise<(Outcome | undefined)[]> {
  const recheckStartedAt = Date.now() - CLOCK_SKEW_MS;
  const before = protectedBy(await writtenSince(r, o.markStartedAt));
  const outcomes = new Map<GcAction, Outcome>();
  const dropped = (why: string): Outcome => ({ status: 'skipped', reason: `${CHANGED_DURING_RUN}: ${why}` });
  const goLinks = links.filter((a) => {
    if (!before.links.has(linkId(a.repository, a.digest))) return true;
    outcomes.set(a, dropped('a manifest or link written since the mark references it'));
    return false;
  });
  const goBlobs = blobs.filter((a) => {
    if (!before.blobs.has(a.digest)) return true;
    outcomes.set(a, dropped('a manifest or _layers link written since the mark references it'));
    return false;
  });
  if (!ctx.hasTime()) return [...links, ...blobs].map((a) => outcomes.get(a));
  const linkFailures = await deleteKeys(
    r,
    goLinks.map((a) => a.key),
  );
  for (const a of goLinks)
    outcomes.set(a, linkFailures.has(a.key) ? { status: 'failed', error: linkFailures.get(a.key) as string } : { status: 'applied' });
  const blobFailures = await deleteKeys(
    r,
    goBlobs.map((a) => a.key),
  );
  for (const a of goBlobs)
    outcomes.set(
      a,
      blobFailures.has(a.key)
        ? { status: 'failed', error: blobFailures.get(a.key) as string }
        : { status: 'applied', detail: { bytesDeleted: a.size } },
    );

  if (goLinks.length + goBlobs.length > 0) {
    await new Promise((resolve) => setTimeout(resolve, o.settleMs));
    await restoreRaced(r, recheckStartedAt, goLinks, goBlobs, outcomes);
  }
  return [...links, ...blobs].map((a) => outcomes.get(a));
}

/** Phase 3: restore each deleted link or blob that something written since the re-check needs. */
async function restoreRaced(
  r: Reader,
  since: number,
  links: readonly LinkDelete[],
  blobs: readonly BlobDelete[],
  outcomes: Map<GcAction, Outcome>,
): Promise<void> {
  const after = protectedBy(await writtenSince(r, since));
  const deleted = <A extends GcAction>(list: readonly A[]) => list.filter((a) => outcomes.get(a)?.status === 'applied');
  const needed = [
    ...deleted(links).filter((a) => after.links.has(linkId(a.repository, a.digest))),
    ...deleted(blobs).filter((a) => after.blobs.has(a.digest)),
  ];
  await mapLimit(needed, r.concurrency, async (a) => {
    const key = (a as LinkDelete | BlobDelete).key;
    try {
      const marker = await restoreKey(r, key);
      outcomes.set(a, {
        status: 'applied',
        detail: {
          ...(outcomes.get(a) as { detail?: object }).detail,
          bytesDeleted: 0,
          restored: true,
          // No marker on top: the client wrote the key again itself (an upload after the delete), so it is back either way.
          ...(marker ? { removedMarker: marker } : { rewrittenByClient: true }),
        },
      });
    } catch (error) {
      // Deleted and needed, and the undo failed: the one outcome an operator must see.
      outcomes.set(a, { status: 'failed', error: `deleted, then needed by a push, and the restore failed: ${describeError(error)}` });
    }
  });
}
