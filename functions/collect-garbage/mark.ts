/**
 * The mark (pure): what the remaining manifests reference. Every manifest revision of every repository is a root
 * (tagged or not) unless retention expires it; a manifest references its own blob, its config and layers, and
 * — for an image index — its child manifests and, through them, theirs.
 */
import type { Digest, ManifestContent } from './model.ts';

export type Manifests = Readonly<Record<string, ManifestContent>>;

/** Every blob digest reachable from `roots` (the roots' own manifest blobs included). */
export function referencedFrom(roots: Iterable<Digest>, manifests: Manifests): Set<Digest> {
  const seen = new Set<Digest>();
  const stack = [...roots];
  while (stack.length > 0) {
    const d = stack.pop() as Digest;
    if (seen.has(d)) continue;
    seen.add(d);
    const m = manifests[d];
    if (m?.kind !== 'manifest') continue;
    for (const b of m.blobs) seen.add(b);
    for (const c of m.children) stack.push(c);
  }
  return seen;
}

/** The digests of `manifest`'s JSON (schema 2, OCI image/index, manifest list, schema 1), or why it is not one. */
export function parseManifest(text: string): ManifestContent {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { kind: 'unreadable', why: 'not JSON' };
  }
  if (typeof doc !== 'object' || doc === null) return { kind: 'unreadable', why: 'not a JSON object' };
  const m = doc as {
    schemaVersion?: unknown;
    config?: { digest?: unknown };
    layers?: unknown;
    manifests?: unknown;
    fsLayers?: unknown;
    blobs?: unknown;
    subject?: { digest?: unknown };
  };
  const digests = (list: unknown, field: string): Digest[] | undefined => {
    if (list === undefined) return [];
    if (!Array.isArray(list)) return undefined;
    const out: Digest[] = [];
    for (const item of list) {
      const d = (item as Record<string, unknown> | null)?.[field];
      if (typeof d !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d)) return undefined;
      out.push(d as Digest);
    }
    return out;
  };
  if (m.schemaVersion !== 1 && m.schemaVersion !== 2)
    return { kind: 'unreadable', why: `schemaVersion ${JSON.stringify(m.schemaVersion)}` };
  const layers = digests(m.layers, 'digest');
  const fsLayers = digests(m.fsLayers, 'blobSum');
  const children = digests(m.manifests, 'digest');
  const config = m.config === undefined ? [] : digests([m.config], 'digest');
  if (!layers || !fsLayers || !children || !config) return { kind: 'unreadable', why: 'a reference that is not a sha256 digest' };
  return { kind: 'manifest', blobs: [...config, ...layers, ...fsLayers], children };
}
