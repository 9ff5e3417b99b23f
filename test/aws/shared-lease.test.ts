// The registry-storage lease under the deployed roles' S3 semantics: both roles may read and write the lease key,
// but their s3:ListBucket is scoped by prefix, so S3 answers a GetObject of a key that does not exist with
// 403 AccessDenied, not NoSuchKey (S3 tells "missing" only to a caller allowed to list the bucket for that request).
// The first run after a deploy, when no lease object exists yet, must still take the lease.
import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { acquireLease, leaseKey, releaseLease, type HeldLease } from '../../shared/lease.ts';

const s3Mock = mockClient(S3Client);
const spec = { bucket: 'registry', root: '' };
const s3 = new S3Client({ region: 'us-east-1' });

const s3Error = (name: string, status: number) =>
  new S3ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: status }, message: name });

/** One bucket as the deployed role sees it: conditional writes honoured, a missing key unreadable (403). */
function deployedRoleBucket() {
  const objects = new Map<string, { body: string; etag: string }>();
  let version = 0;
  s3Mock.on(GetObjectCommand).callsFake((input: { Key: string }) => {
    const o = objects.get(input.Key);
    if (!o) throw s3Error('AccessDenied', 403);
    return { Body: { transformToString: async () => o.body }, ETag: o.etag };
  });
  s3Mock.on(PutObjectCommand).callsFake((input: { Key: string; Body: string; IfNoneMatch?: string; IfMatch?: string }) => {
    const o = objects.get(input.Key);
    if (input.IfNoneMatch === '*' && o) throw s3Error('PreconditionFailed', 412);
    if (input.IfMatch !== undefined && o?.etag !== input.IfMatch) throw s3Error('PreconditionFailed', 412);
    const etag = `"${++version}"`;
    objects.set(input.Key, { body: String(input.Body), etag });
    return { ETag: etag };
  });
  return objects;
}

describe('registry-storage lease where a missing key answers 403', () => {
  beforeEach(() => s3Mock.reset());

  it('the first run takes the lease although no lease object exists yet, and the next one finds it held', async () => {
    const objects = deployedRoleBucket();
    const first = await acquireLease(s3, spec, 'collect-garbage');
    expect(first.acquired).toBe(true);
    expect(JSON.parse(objects.get(leaseKey(''))?.body ?? '{}')).toMatchObject({ holder: 'collect-garbage' });

    expect(await acquireLease(s3, spec, 'purge-stale-uploads')).toMatchObject({ acquired: false, heldBy: 'collect-garbage' });

    expect(await releaseLease(s3, (first as { lease: HeldLease }).lease)).toBe('released');
    const next = await acquireLease(s3, spec, 'purge-stale-uploads');
    expect(next.acquired).toBe(true);
    expect(JSON.parse(objects.get(leaseKey(''))?.body ?? '{}')).toMatchObject({ holder: 'purge-stale-uploads' });
  });

  it('a real denial of the write still fails the run (never read as "held")', async () => {
    s3Mock.on(PutObjectCommand).rejects(s3Error('AccessDenied', 403));
    s3Mock.on(GetObjectCommand).rejects(s3Error('AccessDenied', 403));
    await expect(acquireLease(s3, spec, 'collect-garbage')).rejects.toThrow(/AccessDenied/);
  });
});
