/**
 * Images for collect-garbage's e2e without docker: an OCI image layout written to a directory (real gzip layers,
 * a config and a manifest), pushed and pulled with skopeo (a real registry client: it HEADs every blob first and
 * skips those the registry says exist).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

const run = promisify(execFile);
const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A gzip "layer" (a gzipped blob of `seed`-derived bytes; skopeo copies it as is). */
export function layerOf(seed: string, size = 4_000): Buffer {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++)
    bytes[i] = createHash('sha256')
      .update(`${seed}:${Math.floor(i / 32)}`)
      .digest()[i % 32] as number;
  return gzipSync(bytes);
}

export interface OciImage {
  readonly dir: string;
  readonly layers: readonly string[];
  readonly config: string;
  readonly manifest: string;
}

/** Write an OCI layout with one image tagged `tag`. */
export function writeOci(layers: readonly Buffer[], configSeed: string, tag = 'latest'): OciImage {
  const dir = mkdtempSync(join(tmpdir(), 'gc-oci-'));
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer) => {
    const d = sha(b);
    writeFileSync(join(blobs, d.slice(7)), b);
    return d;
  };
  const layerDigests = layers.map(put);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Labels: { seed: configSeed } },
      rootfs: { type: 'layers', diff_ids: layerDigests },
    }),
  );
  const configDigest = put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map((l, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigests[i], size: l.length })),
    }),
  );
  const manifestDigest = put(manifest);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return { dir, layers: layerDigests, config: configDigest, manifest: manifestDigest };
}

const host = (url: string) => url.replace(/^https?:\/\//, '');

export async function skopeoPush(image: OciImage, registryUrl: string, repoTag: string, tag = 'latest'): Promise<string> {
  const { stderr, stdout } = await run(
    'skopeo',
    ['copy', '--dest-tls-verify=false', '--dest-no-creds', `oci:${image.dir}:${tag}`, `docker://${host(registryUrl)}/${repoTag}`],
    { timeout: 60_000 },
  );
  return `${stdout}${stderr}`;
}

/** Pull `repoTag` into a fresh OCI layout; its blobs by digest (the bytes as served). */
export async function skopeoPull(registryUrl: string, repoTag: string): Promise<Map<string, Buffer>> {
  const dir = mkdtempSync(join(tmpdir(), 'gc-pull-'));
  await run(
    'skopeo',
    ['copy', '--src-tls-verify=false', '--src-no-creds', `docker://${host(registryUrl)}/${repoTag}`, `oci:${dir}:pulled`],
    { timeout: 60_000 },
  );
  const blobs = join(dir, 'blobs', 'sha256');
  return new Map(readdirSync(blobs).map((f) => [`sha256:${f}`, readFileSync(join(blobs, f))]));
}

/** The bytes of each blob of an OCI layout written by `writeOci`. */
export function blobsOf(image: OciImage): Map<string, Buffer> {
  const blobs = join(image.dir, 'blobs', 'sha256');
  return new Map(readdirSync(blobs).map((f) => [`sha256:${f}`, readFileSync(join(blobs, f))]));
}
