// The S3 key layout of distribution 2.8 (registry:2) that purge-stale-uploads relies on, observed on the
// real `docker-registry` writing to moto_server. If this test fails, the purge job's idea of the layout
// (shared/registry-layout.ts) is wrong: fix both together.
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, S3Client, paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import { startMoto, motoClientConfig } from '../../local/moto.ts';
import type { Moto } from '../../local/moto.ts';
import { freePort } from '../../local/ports.ts';
import { cancelUpload, getManifest, pullBlob, pushBlob, pushImage, startUpload, startRegistry } from '../../local/registry.ts';
import type { OpenUpload, PushedBlob, PushedImage, Registry } from '../../local/registry.ts';

const HTTP_SECRET = 'layout-contract-http-secret-0123456789abcdef';
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

interface RepoState {
  name: string;
  tag: string;
  image: PushedImage;
  chunked: PushedBlob & { bytes: Buffer };
  layerBytes: Buffer[];
  unfinished: OpenUpload;
  postedOnly: OpenUpload;
  cancelled: OpenUpload;
}

const hexOf = (digest: string): string => digest.replace(/^sha256:/, '');

async function listKeys(s3: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket })) {
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
  }
  return keys.sort();
}

async function readText(s3: S3Client, bucket: string, key: string): Promise<string> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await res.Body?.transformToString()) ?? '';
}

/**
 * Pushes an image (2 monolithic layers) and a chunked blob; leaves two unfinished uploads (POST + PATCH,
 * POST only) and one cancelled upload.
 */
async function populateRepo(url: string, name: string, tag: string): Promise<RepoState> {
  const layerBytes = [randomBytes(3_000), randomBytes(5_000)];
  const image = await pushImage(url, name, tag, { layers: layerBytes });
  const chunkedBytes = randomBytes(250_001);
  const chunked = await pushBlob(url, name, chunkedBytes, { chunked: true, chunkSize: 100_000 });
  const unfinished = await startUpload(url, name, { bytes: randomBytes(1_234) }); // POST + one PATCH
  const postedOnly = await startUpload(url, name);
  const cancelled = await startUpload(url, name); // POST …
  await cancelUpload(cancelled.location); // … then DELETE
  const chunkedBlob = { ...chunked, bytes: chunkedBytes };
  return { name, tag, image, chunked: chunkedBlob, layerBytes, unfinished, postedOnly, cancelled };
}

/** Every key the registry should have written, per the contract in REGISTRY-FACTS.md. */
function expectedKeys(v2: string, repos: readonly RepoState[]): string[] {
  const keys = new Set<string>();
  const blobData = (digest: string): string => `${v2}/blobs/sha256/${hexOf(digest).slice(0, 2)}/${hexOf(digest)}/data`;
  for (const r of repos) {
    const repo = `${v2}/repositories/${r.name}`;
    for (const blob of [r.image.config, ...r.image.layers, r.chunked]) {
      keys.add(blobData(blob.digest));
      keys.add(`${repo}/_layers/sha256/${hexOf(blob.digest)}/link`);
    }
    const manifest = hexOf(r.image.manifestDigest);
    keys.add(blobData(r.image.manifestDigest)); // manifests live in the blob store too (no _layers link)
    keys.add(`${repo}/_manifests/revisions/sha256/${manifest}/link`);
    keys.add(`${repo}/_manifests/tags/${r.tag}/current/link`);
    keys.add(`${repo}/_manifests/tags/${r.tag}/index/sha256/${manifest}/link`);
    // The unfinished upload: startedat, the hash state written by the POST (0) and by the PATCH (offset).
    keys.add(`${repo}/_uploads/${r.unfinished.uuid}/startedat`);
    keys.add(`${repo}/_uploads/${r.unfinished.uuid}/hashstates/sha256/0`);
    keys.add(`${repo}/_uploads/${r.unfinished.uuid}/hashstates/sha256/${r.unfinished.offset}`);
    keys.add(`${repo}/_uploads/${r.postedOnly.uuid}/startedat`);
    keys.add(`${repo}/_uploads/${r.postedOnly.uuid}/hashstates/sha256/0`);
    // The cancelled upload: the DELETE leaves a lone hash state behind, without startedat.
    keys.add(`${repo}/_uploads/${r.cancelled.uuid}/hashstates/sha256/0`);
  }
  return [...keys].sort();
}

describe('registry S3 layout (docker-registry 2.8 on moto)', () => {
  let moto: Moto;
  let s3: S3Client;

  beforeAll(async () => {
    moto = await startMoto();
    s3 = new S3Client(motoClientConfig(moto));
  });
  afterAll(async () => {
    s3?.destroy();
    await moto?.stop();
  });

  describe.each([
    { title: 'no rootdirectory', bucket: 'layout-no-root', rootDirectory: undefined, v2: 'docker/registry/v2' },
    { title: 'rootdirectory /fleet/a', bucket: 'layout-root', rootDirectory: '/fleet/a', v2: 'fleet/a/docker/registry/v2' },
  ])('$title', ({ bucket, rootDirectory, v2 }) => {
    let registry: Registry;
    let repos: RepoState[];
    let window: { from: number; to: number };

    beforeAll(async () => {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      const port = await freePort();
      const config = renderRegistryConfig({
        bucket,
        region: 'us-east-1',
        rootDirectory,
        regionEndpoint: moto.endpoint,
        httpAddr: `127.0.0.1:${port}`,
        httpSecret: HTTP_SECRET,
      });
      registry = await startRegistry({ config });
      const from = Math.floor(Date.now() / 1000) * 1000; // startedat has whole seconds
      repos = [await populateRepo(registry.url, 'library/nginx', '1.27'), await populateRepo(registry.url, 'org/team/app', 'v1')];
      window = { from, to: Date.now() };
    });
    afterAll(async () => {
      await registry?.stop();
    });

    it('writes exactly the documented keys', async () => {
      expect(await listKeys(s3, bucket)).toEqual(expectedKeys(v2, repos));
    });

    it('writes the digest into every link file', async () => {
      for (const r of repos) {
        const repo = `${v2}/repositories/${r.name}`;
        for (const blob of [r.image.config, ...r.image.layers, r.chunked]) {
          expect(await readText(s3, bucket, `${repo}/_layers/sha256/${hexOf(blob.digest)}/link`)).toBe(blob.digest);
        }
        const manifest = r.image.manifestDigest;
        for (const link of [
          `_manifests/revisions/sha256/${hexOf(manifest)}/link`,
          `_manifests/tags/${r.tag}/current/link`,
          `_manifests/tags/${r.tag}/index/sha256/${hexOf(manifest)}/link`,
        ]) {
          expect(await readText(s3, bucket, `${repo}/${link}`)).toBe(manifest);
        }
      }
    });

    it('stamps an unfinished upload with an RFC 3339 startedat, no newline, within the test window', async () => {
      for (const upload of repos.flatMap((r) => [r.unfinished, r.postedOnly].map((u) => ({ ...u, repo: r.name })))) {
        const startedAt = await readText(s3, bucket, `${v2}/repositories/${upload.repo}/_uploads/${upload.uuid}/startedat`);
        expect(startedAt).toMatch(RFC3339);
        expect(startedAt).not.toContain('\n');
        const time = Date.parse(startedAt);
        expect(time).toBeGreaterThanOrEqual(window.from);
        expect(time).toBeLessThanOrEqual(window.to);
      }
    });

    it('keeps an open multipart upload only for each unfinished upload, none for the cancelled ones', async () => {
      const res = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      expect(res.IsTruncated ?? false).toBe(false);
      const openKeys = (res.Uploads ?? []).map((u) => u.Key).sort();
      const expected = repos
        .flatMap((r) => [r.unfinished, r.postedOnly].map((u) => `${v2}/repositories/${r.name}/_uploads/${u.uuid}/data`))
        .sort();
      expect(openKeys).toEqual(expected);
      for (const r of repos) expect(openKeys.join('\n')).not.toContain(r.cancelled.uuid);
    });

    it('redirects blob GETs to a presigned URL on the S3 endpoint (storage.redirect not disabled)', async () => {
      const [r] = repos;
      if (!r) throw new Error('no repo populated');
      const res = await fetch(`${registry.url}/v2/${r.name}/blobs/${r.chunked.digest}`, { redirect: 'manual' });
      await res.body?.cancel();
      expect(res.status).toBe(307);
      expect(res.headers.get('location')).toMatch(new RegExp(`^${moto.endpoint}/${bucket}/${v2}/blobs/sha256/`));
    });

    it('serves the pushed blobs and manifests back byte-identical', async () => {
      for (const r of repos) {
        for (const [i, layer] of r.image.layers.entries()) {
          expect((await pullBlob(registry.url, r.name, layer.digest)).equals(r.layerBytes[i] ?? Buffer.alloc(0))).toBe(true);
        }
        expect((await pullBlob(registry.url, r.name, r.chunked.digest)).equals(r.chunked.bytes)).toBe(true);
        const config = await pullBlob(registry.url, r.name, r.image.config.digest);
        expect(config.length).toBe(r.image.config.size);
        const manifest = await getManifest(registry.url, r.name, r.tag);
        expect(manifest.digest).toBe(r.image.manifestDigest);
        expect(manifest.body.equals(r.image.manifest)).toBe(true);
      }
    });
  });
});
