// Directory claims of inventory shards (shard.ts claimDirectory): the first shard to write a claim acts on the
// directory; a retry of the same pass and shard finds its own claim (412, then the claim's body) and keeps acting;
// any other holder, or a claim this code did not write, keeps the directory out; a write in flight (409) is waited out.
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

  // 409 (ConditionalRequestConflict) is S3's "retry": a write of the key is in flight, which may be this attempt's own
  // first try that the SDK retried over. The holder decides once the write has landed, as after 412.
  it('after 409, its own overlapping write landed (the retry then gets 412 naming this shard): the directory is ours', async () => {
    s3mock.on(PutObjectCommand).rejectsOnce(failed('ConditionalRequestConflict', 409)).rejects(failed('PreconditionFailed', 412));
    s3mock.on(GetObjectCommand, { Key: claimKey }).resolves(body('{"pass":"nightly-1","index":3}') as never);
    expect(await claimDirectory(new S3Client({}), config, shard, dir, signal)).toBe(true);
    expect(s3mock.commandCalls(PutObjectCommand)).toHaveLength(2);
  });

  it("after 409, another shard's write landed: not ours", async () => {
    s3mock.on(PutObjectCommand).rejectsOnce(failed('ConditionalRequestConflict', 409)).rejects(failed('PreconditionFailed', 412));
    s3mock.on(GetObjectCommand, { Key: claimKey }).resolves(body('{"pass":"nightly-1","index":4}') as never);
    expect(await claimDirectory(new S3Client({}), config, shard, dir, signal)).toBe(false);
  });

  it('after 409, the conflicting write never landed: the retried claim is written, and the key is never read while missing', async () => {
    s3mock.on(PutObjectCommand).rejectsOnce(failed('ConditionalRequestConflict', 409)).resolves({});
    expect(await claimDirectory(new S3Client({}), config, shard, dir, signal)).toBe(true);
    expect(s3mock.commandCalls(GetObjectCommand)).toHaveLength(0);
  });

  it('409 on every try fails the shard rather than dropping the directory for the pass', async () => {
    s3mock.on(PutObjectCommand).rejects(failed('ConditionalRequestConflict', 409));
    await expect(claimDirectory(new S3Client({}), config, shard, dir, signal)).rejects.toThrow(/ConditionalRequestConflict/);
    expect(s3mock.commandCalls(GetObjectCommand)).toHaveLength(0);
  });

  it('any other error fails the shard (Step Functions retries it; the claim, if written, is recognised then)', async () => {
    s3mock.on(PutObjectCommand).rejects(failed('SlowDown', 503));
    await expect(claimDirectory(new S3Client({}), config, shard, dir, signal)).rejects.toThrow(/SlowDown/);
  });
});
