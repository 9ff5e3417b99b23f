// purge-stale-uploads' inventory mode against the real docker-registry 2.8 writing to moto_server: a realistic
// S3 Inventory (manifest.json + Parquet or gzip CSV data files, split so that upload directories straddle files)
// is generated from the registry's own layout; the pass runs its three steps (plan → Distributed Map of shards,
// run by a local executor with the state machine's own settings → merge) over the real Lambda entry. The shards
// purge exactly the stale uploads and the orphan multipart upload, re-checking live: an upload that became
// active after the inventory was taken is kept; every image still pulls byte-identical.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INVENTORY_MAP } from '../../infra/constructs/purge-inventory.ts';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import { JobFailedError } from '../../shared/errors.ts';
import type { Report } from '../../shared/report.ts';
import { PURGE_PASSES_PREFIX } from '../../shared/purge-keys.ts';
import { repositoriesPrefix } from '../../shared/registry-layout.ts';
import { startMoto, type Moto, motoClientConfig } from '../../local/moto.ts';
import { freePort } from '../../local/ports.ts';
import {
  cancelUpload,
  getManifest,
  patchUpload,
  pullBlob,
  pushImage,
  startRegistry,
  startUpload,
  type OpenUpload,
  type PushedImage,
  type Registry,
} from '../../local/registry.ts';
import { runDistributedMap } from '../support/distributed-map.ts';
import { scanBucket, writeInventory, type WrittenInventory } from '../support/inventory-writer.ts';

const BUCKET = 'purge-inventory-it';
const ROOT = '/fleet/a';
const V2 = 'fleet/a/docker/registry/v2';
const HTTP_SECRET = 'purge-stale-uploads-inventory-it-0123456789abcdef';
const MAX_AGE_MS = 3_600_000;
const REPOS = ['library/nginx', 'org/team/app', 'team/x_uploads'] as const;

type Step = (event: unknown, context?: object) => Promise<unknown>;
const uploadDir = (repo: string, uuid: string): string => `${V2}/repositories/${repo}/_uploads/${uuid}/`;
const targetOf = (dir: string): string => dir.slice(`${V2}/repositories/`.length, -1);

describe('purge-stale-uploads inventory mode on docker-registry 2.8 + moto', () => {
  let moto: Moto;
  let s3: S3Client;
  let registry: Registry;
  const images: { repo: string; tag: string; image: PushedImage; layers: Buffer[] }[] = [];
  const staleDirs: string[] = [];
  const freshDirs: string[] = [];
  let revived: { dir: string; upload: OpenUpload };
  const lookAlikes: string[] = [];
  let orphanKey: string;
  let clock: Date;
  let step: Step;
  let parquet: WrittenInventory;
  let csv: WrittenInventory;

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
  const registryKeys = async () => (await listKeys()).filter((k) => k.startsWith(`${V2}/`));

  /**
   * One pass as the state machine runs it: plan → Distributed Map over items.json → the orphan shard → merge (the
   * map's Catch goes straight to merge).
   */
  async function pass(
    name: string,
    input: Record<string, unknown>,
    invoke: (item: unknown) => Promise<unknown> = (item) => step(item, {}),
  ) {
    const planned = (await step({ step: 'plan', pass: name, input }, {})) as { itemsKey: string; shards: number; orphans: unknown };
    const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: planned.itemsKey }));
    const items = JSON.parse((await res.Body?.transformToString()) ?? '[]') as unknown[];
    const map = await runDistributedMap(items, INVENTORY_MAP, (item) => invoke(item), { timeScale: 0.01 });
    if (!map.error) await step(planned.orphans, {});
    // The merge returns only where the pass's report is (a state's output stays small): read it from there.
    const merged = await step({ step: 'merge', pass: name, ...(map.error ? { mapError: map.error } : {}) }, {}).then(
      async () => {
        const kept = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${PURGE_PASSES_PREFIX}${name}/report.json` }));
        return JSON.parse((await kept.Body?.transformToString()) ?? '{}') as Report;
      },
      (e: unknown) => (e instanceof JobFailedError ? e : Promise.reject(e)),
    );
    return { planned, items, map, merged };
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
      images.push({ repo, tag: `v${i}`, image: await pushImage(registry.url, repo, `v${i}`, { layers }), layers });
    }
    // Stale: started (POST only), chunked-partial (POST + PATCH), cancelled (a lone hash state).
    for (const repo of REPOS) {
      const started = await startUpload(registry.url, repo);
      const partial = await patchUpload(await startUpload(registry.url, repo, { bytes: randomBytes(40_000) }), randomBytes(30_000));
      const cancelled = await startUpload(registry.url, repo);
      await cancelUpload(cancelled.location);
      staleDirs.push(...[started, partial, cancelled].map((u) => uploadDir(repo, u.uuid)));
      if (repo === 'org/team/app') revived = { dir: uploadDir(repo, partial.uuid), upload: partial };
    }
    orphanKey = `${V2}/repositories/library/nginx/_uploads/0badc0de-0000-4000-8000-000000000001/data`;
    await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: orphanKey }));
    lookAlikes.push(
      `${V2}/repositories/library/nginx/_layers/_uploads/0badc0de-0000-4000-8000-000000000002/data`,
      `${V2}/repositories/library/nginx/_uploads/`,
      `${V2}/repositories/library/nginx/_uploads/not-a-uuid/startedat`,
    );
    for (const key of lookAlikes)
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from(key.endsWith('/') ? '' : 'x') }));
    const staleEnd = Date.now();
    await sleep(4_000); // startedat has whole seconds: keep the two groups > 2 s apart
    const freshStart = Date.now();
    for (const repo of REPOS) {
      freshDirs.push(uploadDir(repo, (await startUpload(registry.url, repo)).uuid));
      freshDirs.push(uploadDir(repo, (await startUpload(registry.url, repo, { bytes: randomBytes(20_000) })).uuid));
    }
    // The pass clock: stale uploads are > 1h old, fresh ones < 1h (the job's notion of now, shifted; the floor stays 1h).
    clock = new Date((staleEnd + freshStart) / 2 + MAX_AGE_MS);

    // The day's inventory, taken now; directories straddle data files (3 rows a file).
    const rows = await scanBucket(s3, BUCKET, repositoriesPrefix(ROOT));
    const createdAt = new Date(clock.getTime() - 20 * 60_000);
    parquet = await writeInventory(s3, BUCKET, BUCKET, rows, { format: 'Parquet', rowsPerFile: 3, createdAt });
    csv = await writeInventory(s3, BUCKET, BUCKET, rows, {
      format: 'CSV',
      rowsPerFile: 3,
      createdAt: new Date(createdAt.getTime() + 60_000),
    });

    const { loadInventoryModeConfig } = await import('../../functions/purge-stale-uploads/inventory-config.ts');
    const { createInventoryStep } = await import('../../functions/purge-stale-uploads/inventory-step.ts');
    Object.assign(process.env, moto.env);
    const config = loadInventoryModeConfig({ ...moto.env, REGISTRY_BUCKET: BUCKET, REGISTRY_ROOT: ROOT, UPLOAD_MAX_AGE: '1h' });
    step = createInventoryStep(config, { clock: () => clock }) as Step;
  }, 120_000);

  afterAll(async () => {
    await registry?.stop();
    s3?.destroy();
    await moto?.stop();
  });

  let dry: Report;

  it('a dry pass over the Parquet inventory plans every stale upload and the orphan once, and changes nothing', async () => {
    const before = await registryKeys();
    const multipartBefore = await openMultipart();
    const { planned, items, map, merged } = await pass('dry-1', { dryRun: true, manifestKey: parquet.manifestKey });
    expect(planned.shards).toBe(parquet.dataKeys.length + 1);
    expect(items).toHaveLength(parquet.dataKeys.length);
    expect(map.failures).toEqual([]);
    expect(map.peakConcurrency).toBeLessThanOrEqual(INVENTORY_MAP.maxConcurrency);
    dry = merged as Report;
    expect(dry.dryRun).toBe(true);
    const targets = dry.actions.map((a) => a.target);
    expect(new Set(targets).size).toBe(targets.length); // a directory split over files is acted on by one shard only
    expect(targets.sort()).toEqual([...staleDirs.map(targetOf), `${targetOf(orphanKey.replace(/data$/, ''))}/data`].sort());
    expect(dry.summary).toEqual({ planned: staleDirs.length + 1, applied: 0, skipped: 0, failed: 0 });
    expect(dry.details).toMatchObject({
      mode: 'inventory',
      manifest: { key: parquet.manifestKey, format: 'Parquet', files: parquet.dataKeys.length },
      shards: { items: planned.shards, reported: planned.shards, failed: [], missing: [] },
    });
    const inv = dry.details?.inventory as { rows: number; uploadRows: number; rechecked: number; notOwned: number };
    expect(inv.rows).toBe((await scanBucket(s3, BUCKET, repositoriesPrefix(ROOT))).length);
    expect(inv.notOwned).toBeGreaterThan(0); // straddling directories were seen by two shards, owned by one
    expect(await registryKeys()).toEqual(before);
    expect(await openMultipart()).toEqual(multipartBefore);
  });

  it('a real pass over the CSV inventory purges exactly the stale uploads, keeping one that became active since', async () => {
    // After the inventory was taken, a push resumes on a stale upload: new hash state, new part.
    revived.upload = await patchUpload(revived.upload, randomBytes(25_000));
    const before = await registryKeys();
    const multipartBefore = await openMultipart();
    const { map, merged } = await pass('real-1', { manifestKey: csv.manifestKey });
    expect(map.failures).toEqual([]);
    const real = merged as Report;
    const gone = staleDirs.filter((d) => d !== revived.dir);
    expect(real.summary).toMatchObject({ applied: gone.length + 1, failed: 0 });
    expect(real.actions.find((a) => a.target === targetOf(revived.dir))).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/push in flight is kept/),
    });
    const keys = await registryKeys();
    expect(keys).toEqual(before.filter((k) => !gone.some((d) => k.startsWith(d))));
    for (const key of lookAlikes) expect(keys).toContain(key);
    for (const dir of [...freshDirs, revived.dir]) expect(keys.some((k) => k.startsWith(dir))).toBe(true);
    const open = await openMultipart();
    expect(open).toEqual(multipartBefore.filter((u) => !u.startsWith(orphanKey) && !gone.some((d) => u.startsWith(d))));
    // Every image pulls byte-identical.
    for (const img of images) {
      expect((await getManifest(registry.url, img.repo, img.tag)).body.equals(img.image.manifest)).toBe(true);
      for (const [i, layer] of img.image.layers.entries())
        expect((await pullBlob(registry.url, img.repo, layer.digest)).equals(img.layers[i] as Buffer)).toBe(true);
    }
    // One merged report, kept with the pass.
    const kept = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${PURGE_PASSES_PREFIX}real-1/report.json` }));
    expect(JSON.parse((await kept.Body?.transformToString()) ?? '{}')).toMatchObject({ summary: real.summary });
  });

  it('throttled shards are retried with backoff; a shard that keeps failing fails the pass past the tolerance, and the merge says which', async () => {
    let throttles = 0;
    const flaky = async (item: unknown): Promise<unknown> => {
      const index = (item as { index: number }).index;
      if (index % 3 === 0 && throttles < 6) {
        throttles += 1;
        throw Object.assign(new Error('Rate Exceeded.'), { name: 'Lambda.TooManyRequestsException' });
      }
      if (index === 1) throw Object.assign(new Error('boom'), { name: 'Error' });
      return step(item, {});
    };
    const { map, merged } = await pass('flaky-1', { dryRun: true, manifestKey: parquet.manifestKey }, flaky);
    expect(throttles).toBe(6);
    expect(Math.max(...map.attempts)).toBeGreaterThan(1);
    expect(map.failures).toEqual([{ index: 1, error: 'Error: boom' }]);
    const pct = 100 / map.attempts.length;
    expect(map.error ? pct > INVENTORY_MAP.toleratedFailurePercentage : pct <= INVENTORY_MAP.toleratedFailurePercentage).toBe(true);
    expect(merged).toBeInstanceOf(JobFailedError);
    expect((merged as JobFailedError).message).toMatch(/shards 1 reported nothing/);
    expect(((merged as JobFailedError).report as Report).details?.shards).toMatchObject({ missing: [1] });
  });

  it('refuses a manifest of another bucket, naming the field, before touching anything', async () => {
    const key = parquet.manifestKey.replace(/manifest\.json$/, 'other/manifest.json');
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: key,
        Body: JSON.stringify({
          sourceBucket: 'someone-else',
          destinationBucket: 'arn:aws:s3:::x',
          version: '2016-11-30',
          creationTimestamp: String(clock.getTime()),
          fileFormat: 'CSV',
          fileSchema: 'Bucket, Key, Size, LastModifiedDate',
          files: [],
        }),
      }),
    );
    await expect(step({ step: 'plan', pass: 'bad-1', input: { manifestKey: key } }, {})).rejects.toThrow(
      /sourceBucket "someone-else" is not REGISTRY_BUCKET "purge-inventory-it"/,
    );
  });
});
