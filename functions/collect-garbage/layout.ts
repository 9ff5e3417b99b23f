/**
 * The keys collect-garbage reads and deletes, in distribution 2.8's layout (shared/registry-layout.ts, REGISTRY-FACTS.md):
 *
 *   <v2>blobs/sha256/<2 hex>/<hex>/data
 *   <v2>repositories/<name>/_layers/sha256/<hex>/link
 *   <v2>repositories/<name>/_manifests/revisions/sha256/<hex>/link
 *   <v2>repositories/<name>/_manifests/tags/<tag>/current/link
 *   <v2>repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link
 *
 * Parsing is strict (a name outside distribution's grammar, a digest that is not 64 hex): anything else is not ours.
 */
import { isRepositoryName, repositoriesPrefix, v2Prefix } from '../../shared/registry-layout.ts';
import type { Digest } from './model.ts';

const HEX = /^[0-9a-f]{64}$/;
const TAG = /^[\w][\w.-]{0,127}$/;

export const blobsPrefix = (root: string): string => `${v2Prefix(root)}blobs/`;

export function blobDataKey(root: string, digest: Digest): string {
  const hex = digest.slice('sha256:'.length);
  return `${blobsPrefix(root)}sha256/${hex.slice(0, 2)}/${hex}/data`;
}

export function layerLinkKey(root: string, repository: string, digest: Digest): string {
  return `${repositoriesPrefix(root)}${repository}/_layers/sha256/${digest.slice(7)}/link`;
}

export function revisionLinkKey(root: string, repository: string, digest: Digest): string {
  return `${repositoriesPrefix(root)}${repository}/_manifests/revisions/sha256/${digest.slice(7)}/link`;
}

export function tagCurrentKey(root: string, repository: string, tag: string): string {
  return `${repositoriesPrefix(root)}${repository}/_manifests/tags/${tag}/current/link`;
}

/** The digest of `blobs/sha256/<2>/<hex>/data`, or undefined for any other key under blobs/. */
export function parseBlobKey(key: string, root: string): Digest | undefined {
  const prefix = blobsPrefix(root);
  if (!key.startsWith(prefix)) return undefined;
  const [algo, two, hex, data, ...more] = key.slice(prefix.length).split('/');
  if (algo !== 'sha256' || data !== 'data' || more.length > 0 || !hex || !HEX.test(hex) || two !== hex.slice(0, 2)) return undefined;
  return `sha256:${hex}`;
}

export type RepositoryLinkKey =
  | { readonly kind: 'revision' | 'layer'; readonly repository: string; readonly digest: Digest }
  | { readonly kind: 'tag-current'; readonly repository: string; readonly tag: string }
  | { readonly kind: 'tag-index'; readonly repository: string; readonly tag: string; readonly digest: Digest }
  /** Inside a repository but not a link this job reads (`_uploads`, anything else). */
  | { readonly kind: 'other'; readonly repository?: string };

/** What a key under `<v2>repositories/` is to the mark. */
export function parseRepositoryKey(key: string, root: string): RepositoryLinkKey {
  const prefix = repositoriesPrefix(root);
  if (!key.startsWith(prefix)) return { kind: 'other' };
  const parts = key.slice(prefix.length).split('/');
  const section = parts.findIndex((p) => p.startsWith('_'));
  if (section < 1) return { kind: 'other' };
  const repository = parts.slice(0, section).join('/');
  if (!isRepositoryName(repository)) return { kind: 'other' };
  const rest = parts.slice(section);
  const digestAt = (i: number): Digest | undefined =>
    rest[i] === 'sha256' && HEX.test(rest[i + 1] ?? '') && rest[i + 2] === 'link' && rest.length === i + 3
      ? `sha256:${rest[i + 1]}`
      : undefined;
  if (rest[0] === '_layers') {
    const digest = digestAt(1);
    return digest ? { kind: 'layer', repository, digest } : { kind: 'other', repository };
  }
  if (rest[0] === '_manifests' && rest[1] === 'revisions') {
    const digest = digestAt(2);
    return digest ? { kind: 'revision', repository, digest } : { kind: 'other', repository };
  }
  if (rest[0] === '_manifests' && rest[1] === 'tags' && TAG.test(rest[2] ?? '')) {
    const tag = rest[2] as string;
    if (rest[3] === 'current' && rest[4] === 'link' && rest.length === 5) return { kind: 'tag-current', repository, tag };
    const digest = rest[3] === 'index' ? digestAt(4) : undefined;
    if (digest) return { kind: 'tag-index', repository, tag, digest };
  }
  return { kind: 'other', repository };
}
