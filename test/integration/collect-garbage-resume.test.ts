// collect-garbage's sweep checkpoint on moto (versioned bucket, layout written as the registry writes it): with
// MAX_DELETES_PER_RUN=2 the first run marks, deletes two and saves the rest; the next runs resume without
// marking, and their re-check still reads everything written since the *first* mark — a manifest pushed between
// runs keeps the candidate it references. The last run clears the checkpoint.
import { createHash } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutBucketVersioningCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepCheckpointKey } from '../../functions/collect-garbage/checkpoint.ts';
import { loadCollectGarbageConfig } from '../../functions/collect-garbage/config.ts';
import { job } from '../../functions/collect-garbage/job.ts';
import { startMoto, type Moto, motoClientConfig } from '../../local/moto.ts';
import { startS3Proxy, type S3Proxy } from '../../local/s3-proxy.ts';
import { createJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';

const BUCKET = 'gc-resume';
const ROOT = 'fleet/r';
const V2 = `${ROOT}/docker/registry/v2`;
const sha = (b: string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blobKey = (d: string) => `${V2}/blobs/sha256/${d.slice(7, 9)}/${d.slice(7)}/data`;

describe('collect-garbage: resumable sweep (checkpoint)', () => {
  let moto: Moto;
  let proxy: S3Proxy;
  let s3: S3Client;
  let run: (event: unknown) => Promise<Report>;
  const garbage = ['g1', 'g2', 'g3', 'g4', 'g5'].map((g) => ({ bytes: `garbage ${g}`, digest: sha(`garbage ${g}`) }));
  const put = (Key: string, Body: string) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body }));
  const exists = (Key: string) =>
    s3.send(new GetObjectCommand({ Bucket: BUCKET, Key })).then(
      async (r) => (await r.Body?.transformToByteArray(), true),
      () => false,
    );
  const applied = (r: Report) => r.actions.filter((a) => a.status === 'applied').map((a) => a.target);

  beforeAll(async () => {
    moto = await startMoto();
    proxy = await startS3Proxy(moto.endpoint);
    Object.assign(process.env, { ...moto.env, AWS_ENDPOINT_URL: proxy.endpoint });
    s3 = new S3Client(motoClientConfig(moto));
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
    for (const g of garbage) await put(blobKey(g.digest), g.bytes);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    proxy.shiftTimes({ byMs: 3 * 3_600_000, before: new Date() }); // the seeded blobs look 3 h old; later writes do not
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const config = loadCollectGarbageConfig({
      ...moto.env,
      AWS_ENDPOINT_URL: proxy.endpoint,
      REGISTRY_BUCKET: BUCKET,
      REGISTRY_ROOT: ROOT,
      GC_GRACE: '1h',
      GC_SETTLE: '0s',
      MAX_DELETES_PER_RUN: '2',
    });
    run = createJob(job, config).run;
  });
  afterAll(async () => {
    s3?.destroy();
    await proxy?.stop();
    await moto?.stop();
  });

  it('run 1 marks, deletes two, saves the other three', async () => {
    const r = await run({});
    expect(applied(r)).toHaveLength(2);
    expect(r.details?.checkpoint).toEqual({ found: false });
    expect(await exists(sweepCheckpointKey(ROOT))).toBe(true);
  });

  it('run 2 resumes without marking; a manifest pushed meanwhile keeps the candidate it references', async () => {
    const stillThere = [];
    for (const g of garbage) if (await exists(blobKey(g.digest))) stillThere.push(g);
    expect(stillThere).toHaveLength(3);
    const saved = stillThere[0] as (typeof garbage)[number];
    // A push between the runs: its manifest (as a blob) and its revision link reference the candidate.
    const manifest = JSON.stringify({ schemaVersion: 2, config: { digest: saved.digest }, layers: [] });
    const md = sha(manifest);
    await put(blobKey(md), manifest);
    await put(`${V2}/repositories/app/_manifests/revisions/sha256/${md.slice(7)}/link`, md);
    await put(`${V2}/repositories/app/_layers/sha256/${saved.digest.slice(7)}/link`, saved.digest);

    const r = await run({});
    expect(r.observed.keysListed).toBe(0); // no mark: resumed
    expect(r.details?.checkpoint).toMatchObject({ found: true, runs: 2 });
    const changed = r.actions.filter((a) => a.status === 'skipped' && a.reason.startsWith('changed-during-run')).map((a) => a.target);
    const done = applied(r);
    expect([...changed, ...done].length).toBe(2);
    if (changed.length === 0) {
      // the saved candidate was not among this run's two: the next run drops it
      const r3 = await run({});
      expect(r3.actions.filter((a) => a.status === 'skipped' && a.reason.startsWith('changed-during-run')).map((a) => a.target)).toEqual([
        saved.digest,
      ]);
    } else expect(changed).toEqual([saved.digest]);
    expect(await exists(blobKey(saved.digest))).toBe(true);
  });

  it('the run that finishes clears the checkpoint; every other garbage blob is gone', async () => {
    for (let i = 0; i < 3 && (await exists(sweepCheckpointKey(ROOT))); i++) await run({});
    expect(await exists(sweepCheckpointKey(ROOT))).toBe(false);
    const left = [];
    for (const g of garbage) if (await exists(blobKey(g.digest))) left.push(g.digest);
    expect(left).toHaveLength(1);
  });
});
