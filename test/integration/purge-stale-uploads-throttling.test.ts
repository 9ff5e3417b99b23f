// S3 throttling (503 SlowDown) during a purge: the SDK's retries absorb it and the run completes; the
// report's request count includes the retried attempts. moto sits behind a proxy that injects the errors.
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.ts';
import type { Report } from '../../shared/report.ts';
import { startMoto, type Moto, motoClientConfig } from '../../local/moto.ts';
import { startS3Proxy, type S3Proxy } from '../../local/s3-proxy.ts';

const BUCKET = 'purge-throttle';
const R = 'docker/registry/v2/repositories/';
const id = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

describe('purge-stale-uploads under S3 throttling, and on a missing bucket', () => {
  let moto: Moto;
  let proxy: S3Proxy;
  let s3: S3Client;
  let run: (event: unknown) => Promise<Report>;
  let runOnMissingBucket: (event: unknown) => Promise<Report>;

  beforeAll(async () => {
    moto = await startMoto();
    proxy = await startS3Proxy(moto.endpoint);
    s3 = new S3Client(motoClientConfig(moto));
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    for (let n = 1; n <= 30; n += 1) {
      const dir = `${R}app-${n % 3}/_uploads/${id(n)}/`;
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${dir}hashstates/sha256/0`, Body: Buffer.from('h') }));
      await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `${dir}data` }));
    }
    await s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: `${R}app-0/_layers/sha256/${'ab'.repeat(32)}/link`, Body: Buffer.from('sha256:ab') }),
    );
    Object.assign(process.env, { ...moto.env, AWS_ENDPOINT_URL: proxy.endpoint });
    const { createJob } = await import('../../shared/job.ts');
    const { job } = await import('../../functions/purge-stale-uploads/job.ts');
    const { loadPurgeStaleUploadsConfig } = await import('../../functions/purge-stale-uploads/config.ts');
    // The hash states were written just now: a clock 2 h ahead makes them older than the 1 h max age.
    const later = new Date(Date.now() + 2 * 3_600_000);
    const config = loadPurgeStaleUploadsConfig({ ...process.env, REGISTRY_BUCKET: BUCKET, UPLOAD_MAX_AGE: '1h' });
    run = createJob(job, config, { clock: () => later }).run;
    runOnMissingBucket = createJob(job, loadPurgeStaleUploadsConfig({ ...process.env, REGISTRY_BUCKET: 'no-such-bucket' })).run;
  });
  afterAll(async () => {
    s3?.destroy();
    await proxy?.stop();
    await moto?.stop();
  });

  it('retries SlowDown on listing, aborts and deletes, loses nothing, and counts the retries', async () => {
    proxy.failNext('ListObjectsV2', 1);
    proxy.failNext('AbortMultipartUpload', 3);
    proxy.failNext('DeleteObjects', 2);
    const report = await run({});
    expect(report.summary).toEqual({ planned: 0, applied: 30, skipped: 0, failed: 0 });
    expect(proxy.counts()).toMatchObject({ AbortMultipartUpload: 33, DeleteObjects: 3 });
    expect(report.details).toMatchObject({ requests: { AbortMultipartUpload: 33, DeleteObjects: 3, ListMultipartUploads: 1 } });
    expect((report.details?.requests as Record<string, number>).total).toBe(proxy.total());
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? []).toEqual([]);
    const left = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    expect((left.Contents ?? []).map((c) => c.Key)).toEqual([`${R}app-0/_layers/sha256/${'ab'.repeat(32)}/link`]);
  });

  it('names REGISTRY_BUCKET when the bucket does not exist', async () => {
    const error = await runOnMissingBucket({}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(
      'REGISTRY_BUCKET "no-such-bucket" does not exist (NoSuchBucket): check the function\'s REGISTRY_BUCKET',
    );
  });
});
