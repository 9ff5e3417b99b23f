// Directory claims of inventory shards (shard.ts claimDirectory): the first shard to write a claim acts on the
// directory; a retry of the same pass and shard finds its own claim (412, then the claim's body) and keeps acting;
// any other holder, a claim this code did not write, or a write in flight keeps the directory out.
import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadInventoryModeConfig } from '../../functions/purge-stale-uploads/inventory-config.ts';
import { claimDirectory } from '../../functions/purge-stale-uploads/shard.ts';

const s3mock = mockClient(S3Client);
const config = loadInventoryModeConfig({ AWS_REGION: 'us-east-1', REGISTRY_BUCKET: 'registry-bucket' });
const dir = { repository: 'library/nginx', uploadId: '3f2a0000-0000-4000-8000-000000000001' };
const shard = { pass: 'nightly-1', index: 3 };
const signal = new AbortController().signal;
const failed = (name: string, status: number) =>
  new S3ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: status }, message: name });
const body = (text: string) => ({ Body: { transformToString: async () => text } });
const claimKey = 'control-plane/purge-stale-uploads/passes/nightly-1/claims/library/nginx/_uploads/3f2a0000-0000-4000-8000-000000000001';

describe('directory claims of inventory shards', () => {
  beforeEach(() => s3mock.reset());

  it('the first writer owns the directory, and its claim names the pass and the shard', async () => {
    s3mock.on(PutObjectCommand).resolves({});
    expect(await claimDirectory(new S3Client({}), config, shard, dir, signal)).toBe(true);
    const put = s3mock.commandCalls(PutObjectCommand)[0]?.args[0].input;
    expect(put).toMatchObject({ Bucket: 'registry-bucket', Key: claimKey, IfNoneMatch: '*' });
    expect(JSON.parse(String(put?.Body))).toEqual({ pass: 'nightly-1', index: 3 });
  });

  it.each([
    ['a retry of the same shard of the same pass', '{"pass":"nightly-1","index":3}', true],
    ['another shard of the pass', '{"pass":"nightly-1","index":4}', false],
    ['the same index of another pass', '{"pass":"nightly-0","index":3}', false],
    ['an empty claim (written before claims named their shard)', '', false],
  ])('after 412, %s: %s', async (_, holder, owns) => {
    s3mock.on(PutObjectCommand).rejects(failed('PreconditionFailed', 412));
    s3mock.on(GetObjectCommand, { Key: claimKey }).resolves(body(holder) as never);
    expect(await claimDirectory(new S3Client({}), config, shard, dir, signal)).toBe(owns);
  });

  it('a claim being written by someone else right now (409) is not ours, and is not read', async () => {
    s3mock.on(PutObjectCommand).rejects(failed('ConditionalRequestConflict', 409));
    expect(await claimDirectory(new S3Client({}), config, shard, dir, signal)).toBe(false);
    expect(s3mock.commandCalls(GetObjectCommand)).toHaveLength(0);
  });

  it('any other error fails the shard (Step Functions retries it; the claim, if written, is recognised then)', async () => {
    s3mock.on(PutObjectCommand).rejects(failed('SlowDown', 503));
    await expect(claimDirectory(new S3Client({}), config, shard, dir, signal)).rejects.toThrow(/SlowDown/);
  });
});
