import { CreateBucketCommand, ListBucketsCommand } from '@aws-sdk/client-s3';
import { DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureClients, ec2Client, MAX_ATTEMPTS, s3Client } from '../../shared/aws.ts';
import { startMoto, type Moto } from '../../local/moto.ts';

/**
 * shared/aws.ts relies on the SDK's own endpoint variables instead of reading them itself: check that the
 * pinned SDK honours AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL, and that S3_FORCE_PATH_STYLE is applied.
 */
let moto: Moto;
const saved = { ...process.env };

beforeAll(async () => {
  moto = await startMoto();
  // The service-specific variable for S3, the global one for everything else.
  process.env.AWS_ENDPOINT_URL_S3 = moto.endpoint;
  process.env.AWS_ENDPOINT_URL = moto.endpoint;
  configureClients({ s3ForcePathStyle: true });
});

afterAll(async () => {
  process.env = saved;
  await moto?.stop();
});

describe('shared/aws.ts clients against moto_server', () => {
  it('S3 follows AWS_ENDPOINT_URL_S3 and uses path-style addressing', async () => {
    const s3 = s3Client();
    await s3.send(new CreateBucketCommand({ Bucket: 'endpoint-check' }));
    const { Buckets } = await s3.send(new ListBucketsCommand({}));
    expect(Buckets?.map((b) => b.Name)).toContain('endpoint-check');
    expect(await s3.config.forcePathStyle).toBe(true);
  });

  it('EC2 follows AWS_ENDPOINT_URL', async () => {
    const { Volumes } = await ec2Client().send(new DescribeVolumesCommand({}));
    expect(Volumes).toEqual([]);
  });

  it('clients are singletons with the standard retry budget', async () => {
    expect(s3Client()).toBe(s3Client());
    expect(await s3Client().config.maxAttempts()).toBe(MAX_ATTEMPTS);
  });
});
