/**
 * distribution 2.8's S3 key layout (registry:2), as observed in test/integration/shared-registry-layout.test.ts and
 * REGISTRY-FACTS.md. Everything that turns an S3 key into registry meaning lives here, and it is strict: a key
 * is an upload key only when every part of it is what the registry itself would write.
 *
 *   <root>/docker/registry/v2/repositories/<name>/_uploads/<uuid>/startedat
 *   <root>/docker/registry/v2/repositories/<name>/_uploads/<uuid>/hashstates/sha256/<offset>
 *   <root>/docker/registry/v2/repositories/<name>/_uploads/<uuid>/data        (the open multipart upload)
 *
 * `<name>` follows distribution's reference grammar: path components never start with `_`, so the first
 * component that does (`_uploads`, `_layers`, `_manifests`) ends the name. A repository may still be called
 * `my_uploads` or `team/x_uploads`: those are names, not upload directories.
 */

/** distribution's reference grammar (reference/regexp.go), anchored. */
const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]*)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*(?::[0-9]+)?`;
const NAME = new RegExp(`^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
/** distribution's NameTotalLengthMax. */
export const REPOSITORY_NAME_MAX_LENGTH = 255;

/** Upload ids are RFC 4122 UUIDs in lower-case hex (distribution's uuid.Generate). */
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const UPLOADS_DIR = '_uploads';

/** Whether `name` is a repository name the registry accepts (`library/nginx`, `org/team/app`, `host:5000/x`). */
export function isRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= REPOSITORY_NAME_MAX_LENGTH && NAME.test(name);
}

export function isUploadId(id: string): boolean {
  return UPLOAD_ID.test(id);
}

/**
 * The registry's `storage.s3.rootdirectory` as a key prefix: leading and trailing slashes dropped (the S3
 * driver drops the leading one), `''` when unset. `/fleet/a/` → `fleet/a`.
 */
export function normalizeRoot(root: string | undefined): string {
  return (root ?? '').trim().replace(/^\/+/, '').replace(/\/+$/, '');
}

/** `<root>/docker/registry/v2/` (`docker/registry/v2/` without a root). */
export function v2Prefix(root: string | undefined): string {
  const r = normalizeRoot(root);
  return `${r ? `${r}/` : ''}docker/registry/v2/`;
}

/** `<root>/docker/registry/v2/repositories/`: every repository's keys start here. */
export function repositoriesPrefix(root: string | undefined): string {
  return `${v2Prefix(root)}repositories/`;
}

/** `…/repositories/<name>/_uploads/`: the upload directories of one repository. */
export function uploadsPrefix(root: string | undefined, repository: string): string {
  return `${repositoriesPrefix(root)}${repository}/${UPLOADS_DIR}/`;
}

/** `…/repositories/<name>/_uploads/<uuid>/`: one upload directory. */
export function uploadDirPrefix(root: string | undefined, repository: string, uploadId: string): string {
  return `${uploadsPrefix(root, repository)}${uploadId}/`;
}

/** The key of an upload's data: the registry keeps its open multipart upload on this key. */
export function uploadDataKey(root: string | undefined, repository: string, uploadId: string): string {
  return `${uploadDirPrefix(root, repository, uploadId)}data`;
}

/** A key inside an upload directory. */
export interface UploadKey {
  readonly repository: string;
  readonly uploadId: string;
  /** The key below `_uploads/<uuid>/`: `startedat`, `hashstates/sha256/0`, `data`, or `''` for a folder key. */
  readonly rest: string;
}

/** What a key under `repositories/` is, for the upload purge. */
export type RepositoryKey =
  | ({ readonly kind: 'upload' } & UploadKey)
  /** Inside `<name>/_uploads/` but not inside a `<uuid>/` directory (the `_uploads/` folder key, a stray file). */
  | { readonly kind: 'uploads-other'; readonly repository: string; readonly rest: string }
  /** Registry data that is not an upload: `_layers`, `_manifests`, or anything else below a valid name. */
  | { readonly kind: 'repository-data'; readonly repository: string }
  /** Not the registry's shape: outside `repositories/`, an invalid name, a key without a `_` section. */
  | { readonly kind: 'foreign' };

/**
 * Classify an S3 key against the layout under `root`. Strict: a name that breaks distribution's grammar, or an
 * upload id that is not a UUID, is `foreign` / `uploads-other`, never an upload.
 */
export function classifyKey(key: string, root: string | undefined): RepositoryKey {
  const prefix = repositoriesPrefix(root);
  if (!key.startsWith(prefix)) return { kind: 'foreign' };
  const parts = key.slice(prefix.length).split('/');
  const section = parts.findIndex((p) => p.startsWith('_'));
  if (section < 1) return { kind: 'foreign' };
  const repository = parts.slice(0, section).join('/');
  if (!isRepositoryName(repository)) return { kind: 'foreign' };
  if (parts[section] !== UPLOADS_DIR) return { kind: 'repository-data', repository };
  const uploadId = parts[section + 1] ?? '';
  const inDir = parts.length > section + 2;
  if (!inDir || !isUploadId(uploadId)) return { kind: 'uploads-other', repository, rest: parts.slice(section + 1).join('/') };
  return { kind: 'upload', repository, uploadId, rest: parts.slice(section + 2).join('/') };
}

/** The upload directory a key belongs to, or undefined when it is not inside one. */
export function parseUploadKey(key: string, root: string | undefined): UploadKey | undefined {
  const k = classifyKey(key, root);
  return k.kind === 'upload' ? { repository: k.repository, uploadId: k.uploadId, rest: k.rest } : undefined;
}

/** Whether `key` is the registry's multipart-upload key of an upload (`…/_uploads/<uuid>/data`). */
export function parseUploadDataKey(key: string, root: string | undefined): UploadKey | undefined {
  const k = parseUploadKey(key, root);
  return k?.rest === 'data' ? k : undefined;
}

/** The byte offset a hash-state key records (`hashstates/sha256/1234` → 1234): bytes received so far. */
export function hashStateOffset(rest: string): number | undefined {
  const m = /^hashstates\/[a-z0-9]+\/(\d+)$/.exec(rest);
  return m ? Number(m[1]) : undefined;
}
