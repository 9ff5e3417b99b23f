/**
 * Generated registry layouts for collect-garbage's pure plan (fast-check): repositories sharing layers, image
 * indexes, cross-repo mounts (a `_layers` link in a repository none of whose manifests uses it), manifests whose
 * tag was deleted (revision gone, blob left), dangling links, and blobs and links on both sides of the grace.
 * `applyInMemory` applies a plan's actions to a state the way S3 would, for runs after the first.
 */
import fc from 'fast-check';
import type { Digest, GcAction, GcState, ManifestContent, Repository } from '../../functions/collect-garbage/model.ts';

export const NOW = Date.parse('2026-12-01T00:00:00Z');
export const HOUR = 3_600_000;
export const GRACE_MS = 48 * HOUR;

export const digestOf = (n: number): Digest => `sha256:${n.toString(16).padStart(64, '0')}`;

/** Ages in hours: some inside the grace, most well past it. */
const age = fc.oneof(fc.integer({ min: 0, max: 47 }), fc.integer({ min: 49, max: 24 * 400 }));

interface ImageSpec {
  blobs: number[];
  age: number;
  tag?: string;
  /** Indexes name earlier images of the same repository as children. */
  children: number[];
  /** Its revision link was deleted (the tag deleted through the API): the manifest blob stays, unreferenced. */
  deleted: boolean;
}

const image = fc.record({
  blobs: fc.uniqueArray(fc.integer({ min: 0, max: 39 }), { minLength: 1, maxLength: 4 }),
  age,
  tag: fc.option(fc.constantFrom('latest', 'v1', 'v2', 'pr-1', 'pr-2', 'main'), { nil: undefined }),
  children: fc.uniqueArray(fc.integer({ min: 0, max: 5 }), { maxLength: 2 }),
  deleted: fc.boolean(),
});

const repo = fc.record({
  images: fc.array(image, { minLength: 0, maxLength: 5 }),
  extraLinks: fc.uniqueArray(fc.record({ blob: fc.integer({ min: 0, max: 45 }), age }), { maxLength: 4, selector: (l) => l.blob }),
});

export const layoutArb = fc.record({
  repos: fc.array(repo, { minLength: 1, maxLength: 4 }),
  blobAges: fc.array(age, { minLength: 46, maxLength: 46 }),
  strayBlobs: fc.uniqueArray(fc.integer({ min: 40, max: 45 }), { maxLength: 6 }),
  retention: fc.option(
    fc.constantFrom(
      [{ repository: '**', untaggedAfterDays: 7 }],
      [{ repository: 'r0', keepLast: 1 }],
      [{ repository: 'r*', tagPrefix: 'pr-', expireAfterDays: 30 }],
    ),
    { nil: undefined },
  ),
});

export type Layout = typeof layoutArb extends fc.Arbitrary<infer T> ? T : never;

/** Layer blobs are digests 0–45; manifest blobs 1000 + repo*100 + index. */
export function stateOf(layout: Layout): GcState {
  const manifests: Record<string, ManifestContent> = {};
  const blobs = new Map<Digest, { size: number; lastModified: number }>();
  const repositories: Repository[] = layout.repos.map((r, ri) => {
    const name = `r${ri}`;
    const revisions: Repository['revisions'][number][] = [];
    const tags: Repository['tags'][number][] = [];
    const layers = new Map<Digest, number>();
    r.images.forEach((img: ImageSpec, ii) => {
      const d = digestOf(1000 + ri * 100 + ii);
      const children = img.children.filter((c) => c < ii).map((c) => digestOf(1000 + ri * 100 + c));
      manifests[d] = { kind: 'manifest', blobs: img.blobs.map(digestOf), children };
      const at = NOW - img.age * HOUR;
      blobs.set(d, { size: 500, lastModified: at });
      for (const b of img.blobs) layers.set(digestOf(b), Math.max(layers.get(digestOf(b)) ?? 0, at));
      if (img.deleted) return;
      revisions.push({ digest: d, lastModified: at });
      if (img.tag && !tags.some((t) => t.name === img.tag))
        tags.push({ name: img.tag, current: d, pushedAt: at, keys: [`tags/${img.tag}/current/link`] });
    });
    for (const l of r.extraLinks) layers.set(digestOf(l.blob), NOW - l.age * HOUR);
    return { name, revisions, tags, layers: [...layers].map(([digest, lastModified]) => ({ digest, lastModified })) };
  });
  const used = new Set<number>([...layout.repos.flatMap((r) => r.images.flatMap((i: ImageSpec) => i.blobs)), ...layout.strayBlobs]);
  for (const b of used) blobs.set(digestOf(b), { size: 1000 + b, lastModified: NOW - (layout.blobAges[b] ?? 100) * HOUR });
  pruneManifests(manifests, repositories);
  return {
    kind: 'sweep',
    root: '',
    markStartedAt: NOW,
    versioning: 'Enabled',
    repositories,
    blobs: [...blobs].map(([digest, b]) => ({ digest, ...b })),
    manifests,
    keysListed: 0,
    manifestReads: 0,
    checkpoint: { found: false },
  };
}

/** The state after every action applied (S3 deletes), as the next run's observe would list it. */
export function applyInMemory(state: GcState, actions: readonly GcAction[]): GcState {
  const expired = new Set(actions.flatMap((a) => (a.type === 'expire-manifest' ? [`${a.repository}@${a.digest}`] : [])));
  const links = new Set(actions.flatMap((a) => (a.type === 'delete-layer-link' ? [`${a.repository}@${a.digest}`] : [])));
  const blobs = new Set(actions.flatMap((a) => (a.type === 'delete-blob' ? [a.digest] : [])));
  const repositories = state.repositories.map((r) => ({
    ...r,
    revisions: r.revisions.filter((v) => !expired.has(`${r.name}@${v.digest}`)),
    tags: r.tags.filter((t) => !t.current || !expired.has(`${r.name}@${t.current}`)),
    layers: r.layers.filter((l) => !links.has(`${r.name}@${l.digest}`)),
  }));
  const manifests = Object.fromEntries(Object.entries(state.manifests).filter(([d]) => !blobs.has(d as Digest)));
  pruneManifests(manifests, repositories);
  return { ...state, repositories, blobs: state.blobs.filter((b) => !blobs.has(b.digest)), manifests };
}

/** Independent of plan.ts: every blob a manifest of `repo` references, through index children. */
export function referencedIn(state: GcState, repo: Repository): Set<Digest> {
  const out = new Set<Digest>();
  const visit = (d: Digest) => {
    if (out.has(d)) return;
    out.add(d);
    const m = state.manifests[d];
    if (m?.kind === 'manifest') {
      m.blobs.forEach((b) => out.add(b));
      m.children.forEach(visit);
    }
  };
  repo.revisions.forEach((v) => visit(v.digest));
  return out;
}

/** Keep the manifests observe would read: those a revision names, and the children of those, transitively. */
function pruneManifests(manifests: Record<string, ManifestContent>, repositories: readonly Repository[]): void {
  const keep = new Set<string>();
  const visit = (d: string) => {
    if (keep.has(d)) return;
    keep.add(d);
    const m = manifests[d];
    if (m?.kind === 'manifest') m.children.forEach(visit);
  };
  repositories.forEach((r) => r.revisions.forEach((v) => visit(v.digest)));
  for (const d of Object.keys(manifests)) if (!keep.has(d)) delete manifests[d];
}
