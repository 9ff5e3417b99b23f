import {
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type ListObjectsV2CommandInput,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, ValidationError } from '../../shared/errors.ts';
import { loadEvent } from '../support/events.ts';

vi.hoisted(() => {
  process.env.REGISTRY_BUCKET = 'registry-bucket';
  process.env.GC_GRACE = '1h';
  process.env.GC_SETTLE = '0s';
});
const { run } = await import('../../functions/collect-garbage/handler.ts');

const s3 = mockClient(S3Client);
const OLD = new Date(Date.now() - 100 * 3_600_000);
const hex = (n: number) => n.toString(16).padStart(64, '0');
const blobKey = (n: number) => `docker/registry/v2/blobs/sha256/${hex(n).slice(0, 2)}/${hex(n)}/data`;
const noSuchKey = () => Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' });

beforeEach(() => {
  s3.reset();
  s3.on(GetBucketVersioningCommand).resolves({ Status: 'Enabled' });
  // One unreferenced blob, no repository: the plan deletes it.
  s3.on(ListObjectsV2Command).callsFake((input: ListObjectsV2CommandInput) =>
    input.Prefix === 'docker/registry/v2/blobs/' ? { Contents: [{ Key: blobKey(7), Size: 10, LastModified: OLD }] } : { Contents: [] },
  );
  s3.on(GetObjectCommand).rejects(noSuchKey());
});

describe('collect-garbage handler (mocked S3)', () => {
  it('dry run: plans the unreferenced blob, takes no lease and sends no write', async () => {
    const report = await run(loadEvent('collect-garbage/manual-dry-run.json'));
    expect(report.actions.map((a) => [a.type, a.target, a.status])).toEqual([['delete-blob', `sha256:${hex(7)}`, 'planned']]);
    expect(s3).not.toHaveReceivedCommand(DeleteObjectsCommand);
    expect(s3).not.toHaveReceivedCommand(PutObjectCommand);
  });

  it('a scheduled run takes the lease (If-None-Match), deletes, and gives the lease back (If-Match)', async () => {
    s3.on(PutObjectCommand).resolves({ ETag: '"e1"' });
    s3.on(DeleteObjectsCommand).resolves({});
    const report = await run(loadEvent('collect-garbage/schedule.json'));
    expect(report.summary).toMatchObject({ applied: 1, failed: 0 });
    expect(s3).toHaveReceivedCommandWith(DeleteObjectsCommand, { Delete: { Objects: [{ Key: blobKey(7) }], Quiet: true } });
    const puts = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    expect(puts[0]).toMatchObject({ Key: 'control-plane/leases/registry-storage.json', IfNoneMatch: '*' });
  });

  it('rejects a bad restore digest before any S3 request', async () => {
    await expect(run({ restore: ['sha256:ABC'] })).rejects.toThrow(ValidationError);
    await expect(run({ restore: [] })).rejects.toThrow(/restore: expected a list of 1 to 1000 blob digests/);
    expect(s3.calls()).toHaveLength(0);
  });

  it('names REGISTRY_BUCKET when the bucket does not exist', async () => {
    s3.on(GetBucketVersioningCommand).rejects(Object.assign(new Error('nope'), { name: 'NoSuchBucket' }));
    await expect(run({ dryRun: true })).rejects.toThrow(ConfigError);
  });
});
