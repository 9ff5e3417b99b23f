/**
 * The S3 reads the mark and the re-checks share: listing a prefix whole, turning `repositories/` keys into
 * repositories, and reading manifests. The mark (observe.ts) and the re-checks (sweep.ts) read the layout the
 * same way, so a re-check can never see less than the mark did.
 */
import { GetObjectCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import { mapLimit } from '../../shared/concurrency.ts';
import { errorName } from '../../shared/errors.ts';
import { repositoriesPrefix } from '../../shared/registry-layout.ts';
import { blobDataKey, parseRepositoryKey } from './layout.ts';
import { parseManifest } from './mark.ts';
import type { Digest, Link, ManifestContent, Repository, Tag } from './model.ts';

export interface Listed {
  readonly key: string;
  readonly size: number;
  /** Epoch ms. */
  readonly lastModified: number;
}

export interface Reader {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly root: string;
  readonly concurrency: number;
  readonly signal: AbortSignal;
}

export async function listPrefix(r: Reader, prefix: string): Promise<Listed[]> {
  const out: Listed[] = [];
  const pages = paginateListObjectsV2({ client: r.s3, pageSize: 1000 }, { Bucket: r.bucket, Prefix: prefix }, { abortSignal: r.signal });
  for await (const page of pages)
    for (const o of page.Contents ?? [])
      if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified?.getTime() ?? 0 });
  return out;
}

/** Every key under `repositories/`, the top-level directories listed in parallel (one delimiter listing first). */
export async function listRepositoryKeys(r: Reader): Promise<Listed[]> {
  const base = repositoriesPrefix(r.root);
  const tops: string[] = [];
  const direct: Listed[] = [];
  const pages = paginateListObjectsV2({ client: r.s3 }, { Bucket: r.bucket, Prefix: base, Delimiter: '/' }, { abortSignal: r.signal });
  for await (const page of pages) {
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) tops.push(p.Prefix);
    for (const o of page.Contents ?? [])
      if (o.Key) direct.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified?.getTime() ?? 0 });
  }
  const lists = await mapLimit(tops, r.concurrency, (prefix) => listPrefix(r, prefix));
  return [...direct, ...lists.flat()];
}

interface Building {
  revisions: Link[];
  layers: Link[];
  tags: Map<string, { keys: string[]; pushedAt: number; currentKey?: string }>;
}

/** Repositories from their keys (tag `current` digests not filled in: see `readTagCurrents`). */
export function repositoriesOf(keys: readonly Listed[], root: string): { repositories: Repository[]; currentKeys: Map<string, string> } {
  const byName = new Map<string, Building>();
  const of = (name: string): Building => {
    let b = byName.get(name);
    if (!b) byName.set(name, (b = { revisions: [], layers: [], tags: new Map() }));
    return b;
  };
  for (const k of keys) {
    const p = parseRepositoryKey(k.key, root);
    if (p.kind === 'revision') of(p.repository).revisions.push({ digest: p.digest, lastModified: k.lastModified });
    else if (p.kind === 'layer') of(p.repository).layers.push({ digest: p.digest, lastModified: k.lastModified });
    else if (p.kind === 'tag-current' || p.kind === 'tag-index') {
      const tags = of(p.repository).tags;
      const t = tags.get(p.tag) ?? { keys: [], pushedAt: 0 };
      t.keys.push(k.key);
      if (p.kind === 'tag-current') {
        t.pushedAt = k.lastModified;
        t.currentKey = k.key;
      }
      tags.set(p.tag, t);
    }
  }
  const currentKeys = new Map<string, string>();
  const repositories = [...byName.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, b]): Repository => {
      const tags: Tag[] = [...b.tags.entries()].map(([tag, t]) => {
        if (t.currentKey) currentKeys.set(`${name}:${tag}`, t.currentKey);
        return { name: tag, pushedAt: t.pushedAt, keys: t.keys };
      });
      return { name, revisions: b.revisions, layers: b.layers, tags };
    });
  return { repositories, currentKeys };
}

/** A link file's digest (`sha256:…`), or undefined when it is gone or not a digest. */
export async function readLink(r: Reader, key: string): Promise<Digest | undefined> {
  try {
    const res = await r.s3.send(new GetObjectCommand({ Bucket: r.bucket, Key: key }), { abortSignal: r.signal });
    const text = ((await res.Body?.transformToString()) ?? '').trim();
    return /^sha256:[0-9a-f]{64}$/.test(text) ? (text as Digest) : undefined;
  } catch (error) {
    if (errorName(error) === 'NoSuchKey') return undefined;
    throw error;
  }
}

/** Fill in each tag's `current` digest (retention needs to know which image a tag names). */
export async function readTagCurrents(
  r: Reader,
  repositories: readonly Repository[],
  currentKeys: ReadonlyMap<string, string>,
): Promise<Repository[]> {
  return mapLimit(repositories, r.concurrency, async (repo) => ({
    ...repo,
    tags: await mapLimit(repo.tags, 4, async (t) => {
      const key = currentKeys.get(`${repo.name}:${t.name}`);
      const current = key ? await readLink(r, key) : undefined;
      return current ? { ...t, current } : t;
    }),
  }));
}

/** Read manifests (their blob data) by digest. */
export async function readManifests(r: Reader, digests: Iterable<Digest>): Promise<Record<string, ManifestContent>> {
  const list = [...new Set(digests)];
  const contents = await mapLimit(list, r.concurrency * 2, async (d): Promise<ManifestContent> => {
    try {
      const res = await r.s3.send(new GetObjectCommand({ Bucket: r.bucket, Key: blobDataKey(r.root, d) }), { abortSignal: r.signal });
      return parseManifest((await res.Body?.transformToString()) ?? '');
    } catch (error) {
      if (errorName(error) === 'NoSuchKey') return { kind: 'missing' };
      throw error;
    }
  });
  return Object.fromEntries(list.map((d, i) => [d, contents[i] as ManifestContent]));
}

/**
 * Read manifests by digest, then the children they name (an index over images whose revisions may be gone), until
 * none is unknown: the mark follows an index to its children's layers, so it must know the children's content.
 */
export async function readManifestClosure(r: Reader, digests: Iterable<Digest>): Promise<Record<string, ManifestContent>> {
  const manifests: Record<string, ManifestContent> = {};
  let unknown = [...new Set(digests)];
  while (unknown.length > 0) {
    Object.assign(manifests, await readManifests(r, unknown));
    unknown = [...new Set(Object.values(manifests).flatMap((m) => (m.kind === 'manifest' ? m.children : [])))].filter(
      (d) => !(d in manifests),
    );
  }
  return manifests;
}
