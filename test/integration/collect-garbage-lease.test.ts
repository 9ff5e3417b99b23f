// The registry-storage lease (shared/lease.ts) on moto's conditional writes: of racing acquirers exactly one wins
// (the others get a 412 and report it held), a live lease is never taken, an expired or released one is, and a
// release never frees a lease someone else holds. Then the single-flight itself: purge-stale-uploads with
// STORAGE_LEASE=true does nothing while collect-garbage holds the lease, and deletes its stale upload after.
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client, paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto, motoClientConfig } from '../../local/moto.ts';
import { startS3Proxy } from '../../local/s3-proxy.ts';
import { acquireLease, LEASE_TTL_MS, leaseKey, releaseLease, type HeldLease } from '../../shared/lease.ts';

const BUCKET = 'gc-lease';
const ROOT = 'fleet/a';
const spec = { bucket: BUCKET, root: ROOT };

describe('registry-storage lease on moto', () => {
  let moto: Moto;
  let s3: S3Client;
  const body = async () =>
    JSON.parse(
      (await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: leaseKey(ROOT) }))).Body?.transformToString()) ?? '{}',
    ) as {
      holder: string;
      expiresAt: number;
    };

  beforeAll(async () => {
    moto = await startMoto();
    s3 = new S3Client(motoClientConfig(moto));
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  });
  afterAll(async () => {
    s3?.destroy();
    await moto?.stop();
  });

  it('lives under control-plane/leases/, one per registry root', () => {
    expect(leaseKey(ROOT)).toBe('control-plane/leases/roots/fleet/a/registry-storage.json');
    expect(leaseKey('')).toBe('control-plane/leases/registry-storage.json');
  });

  it('exactly one of eight racing acquirers wins; the lease is then held until released', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => acquireLease(s3, spec, `job-${i}`)));
    const winners = results.filter((r) => r.acquired);
    expect(winners).toHaveLength(1);
    const lease = (winners[0] as { lease: HeldLease }).lease;
    expect((await body()).holder).toBe(lease.holder);
    for (const r of results.filter((x) => !x.acquired)) expect(r).toMatchObject({ heldBy: lease.holder });
    expect(await acquireLease(s3, spec, 'late')).toMatchObject({ acquired: false, heldBy: lease.holder });
    expect(await releaseLease(s3, lease)).toBe('released');
    expect((await body()).expiresAt).toBe(0);
    const next = await acquireLease(s3, spec, 'collect-garbage');
    expect(next.acquired).toBe(true);
    // The first holder's stale handle cannot release the new holder's lease.
    expect(await releaseLease(s3, lease)).toBe('lost');
    expect((await body()).holder).toBe('collect-garbage');
    if (next.acquired) await releaseLease(s3, next.lease);
  });

  it('takes over an expired lease (a holder that crashed)', async () => {
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: leaseKey(ROOT),
        Body: JSON.stringify({ holder: 'crashed', token: 'x', expiresAt: Date.now() - 1 }),
      }),
    );
    const got = await acquireLease(s3, spec, 'purge-stale-uploads');
    expect(got.acquired).toBe(true);
    if (got.acquired) {
      expect(got.lease.expiresAt).toBeGreaterThan(Date.now() + LEASE_TTL_MS - 60_000);
      await releaseLease(s3, got.lease);
    }
  });

  it('purge-stale-uploads (STORAGE_LEASE=true) does nothing while collect-garbage holds it, and purges once it is free', async () => {
    const dir = `${ROOT}/docker/registry/v2/repositories/library/nginx/_uploads/0badc0de-0000-4000-8000-00000000000a/`;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${dir}startedat`, Body: '2020-01-01T00:00:00Z' }));
    const gc = await acquireLease(s3, spec, 'collect-garbage');
    expect(gc.acquired).toBe(true);
    // The upload looks 3 h old to the job (its activity guard is 1 h); the lease object keeps its real time.
    const proxy = await startS3Proxy(moto.endpoint);
    proxy.shiftTimes({ byMs: 3 * 3_600_000 });
    const env = { REGISTRY_BUCKET: BUCKET, REGISTRY_ROOT: ROOT, STORAGE_LEASE: 'true', UPLOAD_MAX_AGE: '1h' };
    Object.assign(process.env, moto.env, { AWS_ENDPOINT_URL: proxy.endpoint }, env);
    const { run } = await import('../../functions/purge-stale-uploads/handler.ts');
    const uploads = async () => {
      const out: string[] = [];
      for await (const p of paginateListObjectsV2({ client: s3 }, { Bucket: BUCKET, Prefix: dir }))
        for (const o of p.Contents ?? []) out.push(o.Key ?? '');
      return out;
    };
    const held = await run({ reason: 'while gc runs' });
    expect(held.details?.lease).toMatchObject({ heldBy: 'collect-garbage' });
    expect(held.actions).toEqual([]);
    expect(await uploads()).toEqual([`${dir}startedat`]);
    if (gc.acquired) await releaseLease(s3, gc.lease);
    const free = await run({ reason: 'after gc' });
    await proxy.stop();
    expect(free.summary.applied).toBe(1);
    expect(await uploads()).toEqual([]);
    expect((await body()).expiresAt).toBe(0); // purge gave it back
  });
});
