// purge-stale-uploads against the real docker-registry 2.8 writing to moto_server: stale uploads (started,
// chunked-partial, cancelled) and an orphan multipart upload are removed; fresh uploads stay and can still be
// completed; every pushed image still pulls byte-identical; a dry run changes nothing and plans the same.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import { JobFailedError } from '../../shared/errors.ts';
import type { Report } from '../../shared/report.ts';
import { startMoto, type Moto, motoClientConfig } from '../../local/moto.ts';
import { freePort } from '../../local/ports.ts';
import {
  cancelUpload,
  completeUpload,
  getManifest,
  patchUpload,
  pullBlob,
  pushBlob,
  pushImage,
  sha256Digest,
  startRegistry,
  startUpload,
  type OpenUpload,
  type PushedImage,
  type Registry,
} from '../../local/registry.ts';

const BUCKET = 'purge-it';
const ROOT = '/fleet/a';
const V2 = 'fleet/a/docker/registry/v2';
const HTTP_SECRET = 'purge-stale-uploads-it-secret-0123456789abcdef';
/** The smallest max age the job allows; the fixed job clock below makes seconds-old uploads look older than it. */
const MAX_AGE_S = 3_600;
const REPOS = ['library/nginx', 'org/team/app', 'team/x_uploads'] as const;

interface Image {
  repo: string;
  tag: string;
  image: PushedImage;
  layers: Buffer[];
  chunked: { digest: string; bytes: Buffer };
}
interface Fresh {
  repo: string;
  upload: OpenUpload;
  bytes: Buffer;
  sent: number;
}

const uploadDir = (repo: string, uuid: string): string => `${V2}/repositories/${repo}/_uploads/${uuid}/`;

describe('purge-stale-uploads on docker-registry 2.8 + moto', () => {
  let moto: Moto;
  let s3: S3Client;
  let registry: Registry;
  const images: Image[] = [];
  const staleDirs: string[] = [];
  const fresh: Fresh[] = [];
  const lookAlikes: string[] = [];
  let orphanKey: string;
  let clock: Date;
  let run: (event: unknown) => Promise<Report>;

  async function listKeys(): Promise<string[]> {
    const keys: string[] = [];
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: BUCKET }))
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    return keys.sort();
  }
  async function openMultipart(): Promise<string[]> {
    const res = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    return (res.Uploads ?? []).map((u) => `${u.Key} ${u.UploadId}`).sort();
  }

  beforeAll(async () => {
    moto = await startMoto();
    s3 = new S3Client(motoClientConfig(moto));
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const port = await freePort();
    registry = await startRegistry({
      config: renderRegistryConfig({
        bucket: BUCKET,
        region: 'us-east-1',
        rootDirectory: ROOT,
        regionEndpoint: moto.endpoint,
        httpAddr: `127.0.0.1:${port}`,
        httpSecret: HTTP_SECRET,
      }),
    });

    for (const [i, repo] of REPOS.entries()) {
      const layers = [randomBytes(3_000 + i), randomBytes(7_000 + i)];
      const image = await pushImage(registry.url, repo, `v${i}`, { layers });
      const chunkedBytes = randomBytes(120_001);
      const chunked = await pushBlob(registry.url, repo, chunkedBytes, { chunked: true, chunkSize: 50_000 });
      images.push({ repo, tag: `v${i}`, image, layers, chunked: { digest: chunked.digest, bytes: chunkedBytes } });
    }

    // Stale: started (POST only), chunked-partial (POST + 2 PATCHes), cancelled (POST + DELETE: a lone hash state).
    for (const repo of REPOS) {
      const started = await startUpload(registry.url, repo);
      let partial = await startUpload(registry.url, repo, { bytes: randomBytes(40_000) });
      partial = await patchUpload(partial, randomBytes(30_000));
      const cancelled = await startUpload(registry.url, repo);
      await cancelUpload(cancelled.location);
      staleDirs.push(...[started, partial, cancelled].map((u) => uploadDir(repo, u.uuid)));
    }
    // A multipart upload whose directory is gone (moto's Initiated is a fixed 2010 date: always old).
    orphanKey = `${V2}/repositories/library/nginx/_uploads/0badc0de-0000-4000-8000-000000000001/data`;
    await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: orphanKey }));
    // Look-alikes that must never be touched (old enough to be stale if they were uploads).
    lookAlikes.push(
      `${V2}/repositories/library/nginx/_layers/_uploads/0badc0de-0000-4000-8000-000000000002/data`,
      `${V2}/repositories/library/nginx/_uploads/`,
      `${V2}/repositories/library/nginx/_uploads/not-a-uuid/startedat`,
      `docker/registry/v2/repositories/library/nginx/_uploads/0badc0de-0000-4000-8000-000000000003/startedat`,
    );
    for (const key of lookAlikes)
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from(key.endsWith('/') ? '' : 'x') }));
    const staleEnd = Date.now();

    await sleep(4_000); // startedat has whole seconds: keep the two groups > 2 s apart
    const freshStart = Date.now();
    for (const repo of REPOS) {
      const bytes = randomBytes(90_000);
      fresh.push({ repo, upload: await startUpload(registry.url, repo), bytes, sent: 0 });
      const patched = await startUpload(registry.url, repo, { bytes: bytes.subarray(0, 60_000) });
      fresh.push({ repo, upload: patched, bytes, sent: 60_000 });
    }

    // A fixed clock between the groups: stale ones are > MAX_AGE_S old, fresh ones < MAX_AGE_S (startedat rounding included).
    // The stale ones' parts (the partial PATCHes) are then older than the 1 h activity guard too.
    clock = new Date((staleEnd + freshStart) / 2 + MAX_AGE_S * 1000);
    const { createJob } = await import('../../shared/job.ts');
    const { job } = await import('../../functions/purge-stale-uploads/job.ts');
    const { loadPurgeStaleUploadsConfig } = await import('../../functions/purge-stale-uploads/config.ts');
    const env = { ...moto.env, REGISTRY_BUCKET: BUCKET, REGISTRY_ROOT: ROOT, UPLOAD_MAX_AGE: '1h', LIST_CONCURRENCY: '4' };
    Object.assign(process.env, moto.env); // the shared S3 client is created on first use from the SDK's environment
    run = createJob(job, loadPurgeStaleUploadsConfig(env), { clock: () => clock }).run;
  });

  afterAll(async () => {
    await registry?.stop();
    s3?.destroy();
    await moto?.stop();
  });

  let dry: Report;
  let real: Report;
  let keysBefore: string[];
  let multipartBefore: string[];

  it('dry run: changes nothing and plans every stale upload and the orphan', async () => {
    keysBefore = await listKeys();
    multipartBefore = await openMultipart();
    expect(multipartBefore).toHaveLength(REPOS.length * 2 /* stale started + partial */ + REPOS.length * 2 /* fresh */ + 1);
    dry = await run({ dryRun: true });
    expect(await listKeys()).toEqual(keysBefore);
    expect(await openMultipart()).toEqual(multipartBefore);
    expect(dry.dryRun).toBe(true);
    expect(dry.summary).toEqual({ planned: staleDirs.length + 1, applied: 0, skipped: 0, failed: 0 });
    expect(dry.observed).toMatchObject({
      uploads: staleDirs.length + fresh.length,
      stale: staleDirs.length,
      fresh: fresh.length,
      orphanMultipartUploads: 1,
    });
  });

  it('removes every stale directory and multipart upload, and reports the same plan', async () => {
    real = await run({});
    expect(real.summary).toEqual({ planned: 0, applied: staleDirs.length + 1, skipped: 0, failed: 0 });
    const plan = (r: Report) => r.actions.map(({ type, target, reason }) => ({ type, target, reason }));
    expect(plan(real)).toEqual(plan(dry));

    const keys = await listKeys();
    for (const dir of staleDirs) expect(keys.filter((k) => k.startsWith(dir))).toEqual([]);
    const open = await openMultipart();
    expect(open.some((u) => u.startsWith(orphanKey))).toBe(false);
    for (const dir of staleDirs) expect(open.some((u) => u.startsWith(dir))).toBe(false);
    // Exactly the stale directories went; everything else (blobs, links, manifests, look-alikes, fresh uploads) stayed.
    expect(keys).toEqual(keysBefore.filter((k) => !staleDirs.some((d) => k.startsWith(d))));
    for (const key of lookAlikes) expect(keys).toContain(key);
    expect(open).toEqual(multipartBefore.filter((u) => !u.startsWith(orphanKey) && !staleDirs.some((d) => u.startsWith(d))));
    expect(open).toHaveLength(fresh.length);

    expect(real.details).toMatchObject({
      done: { objectsDeleted: (real.details?.planned as { objects: number }).objects, multipartUploadsAborted: REPOS.length * 2 + 1 },
    });
    expect((real.details?.done as { uploadedBytesAborted: number }).uploadedBytesAborted).toBe(REPOS.length * 70_000);
    expect(real.observed).toMatchObject({ folderKeys: 1, strayUploadKeys: 2, startedAtReads: REPOS.length * 2 + fresh.length });
  });

  it('fresh uploads can still be completed, and every image pulls byte-identical', async () => {
    for (const f of fresh) {
      await completeUpload(f.upload.location, f.bytes.subarray(f.sent), sha256Digest(f.bytes));
      expect((await pullBlob(registry.url, f.repo, sha256Digest(f.bytes))).equals(f.bytes)).toBe(true);
    }
    for (const img of images) {
      const manifest = await getManifest(registry.url, img.repo, img.tag);
      expect(manifest.digest).toBe(img.image.manifestDigest);
      expect(manifest.body.equals(img.image.manifest)).toBe(true);
      for (const [i, layer] of img.image.layers.entries())
        expect((await pullBlob(registry.url, img.repo, layer.digest)).equals(img.layers[i] as Buffer)).toBe(true);
      expect((await pullBlob(registry.url, img.repo, img.chunked.digest)).equals(img.chunked.bytes)).toBe(true);
      expect((await pullBlob(registry.url, img.repo, img.image.config.digest)).length).toBe(img.image.config.size);
    }
  });

  it('is idempotent: the next run plans nothing', async () => {
    const again = await run({}).catch((e: unknown) => (e instanceof JobFailedError ? e : Promise.reject(e)));
    expect(again).not.toBeInstanceOf(JobFailedError);
    expect((again as Report).summary).toEqual({ planned: 0, applied: 0, skipped: 0, failed: 0 });
  });
});
