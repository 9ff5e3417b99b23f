// collect-garbage retention on docker-registry 2.8 + moto (versioned): with {"repository":"team/*","keepLast":1}
// the older of two tagged images is expired through the layout as distribution's DELETE does (revision link and
// the tag's keys), its unique blobs are reclaimed in the same run, the shared layer stays, the newer image pulls
// byte-identical, the expired tag answers 404, and a repository no rule matches is untouched.
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, PutBucketVersioningCommand, S3Client, paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCollectGarbageConfig } from '../../functions/collect-garbage/config.ts';
import { job } from '../../functions/collect-garbage/job.ts';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import { startMoto, type Moto, motoClientConfig } from '../../local/moto.ts';
import { freePort } from '../../local/ports.ts';
import { startRegistry, type Registry } from '../../local/registry.ts';
import { startS3Proxy, type S3Proxy } from '../../local/s3-proxy.ts';
import { createJob } from '../../shared/job.ts';
import { blobsOf, layerOf, skopeoPull, skopeoPush, writeOci, type OciImage } from '../support/gc-oci.ts';

const BUCKET = 'gc-retention';
const V2 = 'docker/registry/v2';

describe('collect-garbage retention on docker-registry 2.8 + moto', () => {
  let moto: Moto;
  let proxy: S3Proxy;
  let s3: S3Client;
  let registry: Registry;
  let v1: OciImage;
  let v2: OciImage;
  let other: OciImage;
  async function keys(): Promise<string[]> {
    const out: string[] = [];
    for await (const p of paginateListObjectsV2({ client: s3 }, { Bucket: BUCKET, Prefix: `${V2}/` }))
      for (const o of p.Contents ?? []) out.push(o.Key ?? '');
    return out;
  }

  beforeAll(async () => {
    moto = await startMoto();
    proxy = await startS3Proxy(moto.endpoint);
    Object.assign(process.env, { ...moto.env, AWS_ENDPOINT_URL: proxy.endpoint });
    s3 = new S3Client(motoClientConfig(moto));
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
    const port = await freePort();
    registry = await startRegistry({
      config: renderRegistryConfig({
        bucket: BUCKET,
        region: 'us-east-1',
        regionEndpoint: moto.endpoint,
        httpAddr: `127.0.0.1:${port}`,
        httpSecret: 'gc-retention-secret-0123456789abcdef',
        deleteEnabled: true,
        redirectDisable: true,
      }),
    });
    const shared = layerOf('r-shared');
    v1 = writeOci([layerOf('r-v1'), shared], 'v1');
    v2 = writeOci([layerOf('r-v2'), shared], 'v2');
    other = writeOci([layerOf('r-other')], 'other');
    await skopeoPush(v1, registry.url, 'team/app:v1');
    await skopeoPush(other, registry.url, 'library/other:old');
    await sleep(1_100); // tag times have whole seconds: v2 is the newer push
    await skopeoPush(v2, registry.url, 'team/app:v2');
    await sleep(1_100);
    proxy.shiftTimes({ byMs: 3 * 3_600_000, before: new Date() });
    await sleep(1_100);
  });
  afterAll(async () => {
    await registry?.stop();
    s3?.destroy();
    await proxy?.stop();
    await moto?.stop();
  });

  it('expires team/app:v1 (keepLast 1), reclaims its unique blobs, keeps the shared layer and library/other', async () => {
    const config = loadCollectGarbageConfig({
      ...moto.env,
      AWS_ENDPOINT_URL: proxy.endpoint,
      REGISTRY_BUCKET: BUCKET,
      GC_GRACE: '1h',
      GC_SETTLE: '0s',
      GC_RETENTION: JSON.stringify({ rules: [{ repository: 'team/*', keepLast: 1 }] }),
    });
    const report = await createJob(job, config).run({});
    expect(report.summary.failed).toBe(0);
    const applied = (type: string) =>
      report.actions
        .filter((a) => a.type === type && a.status === 'applied')
        .map((a) => a.target)
        .sort();
    expect(applied('expire-manifest')).toEqual([`team/app@${v1.manifest}`]);
    expect(applied('delete-blob')).toEqual([v1.layers[0], v1.config, v1.manifest].sort());
    const left = await keys();
    expect(left.filter((k) => k.includes('/_manifests/tags/v1/'))).toEqual([]);
    expect(left.some((k) => k.endsWith(`/${v2.layers[1]?.slice(7)}/data`))).toBe(true); // the shared layer
    expect(
      (await fetch(`${registry.url}/v2/team/app/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }))
        .status,
    ).toBe(404);
    for (const [image, ref] of [
      [v2, 'team/app:v2'],
      [other, 'library/other:old'],
    ] as const) {
      const pulled = await skopeoPull(registry.url, ref);
      const local = blobsOf(image);
      for (const d of [...image.layers, image.config]) expect(pulled.get(d)?.equals(local.get(d) as Buffer), `${ref} ${d}`).toBe(true);
    }
  });
});
