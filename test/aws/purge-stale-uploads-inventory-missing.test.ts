// A missing key in the inventory bucket under real IAM (issue 21 item 2): the inventory Lambda may list only the
// prefixes its code lists (an s3:prefix condition), so S3 answers a GetObject of a missing key with 403
// AccessDenied, never NoSuchKey (S3 tells them apart only for a caller allowed an unconditioned ListBucket). A key
// that may be missing (a manifestKey or a pass named by hand) is decided "missing" by a listing of exactly that
// key; a denial of an existing object stays an error. moto enforces no IAM: the 403s are mocked here.
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadInventoryModeConfig } from '../../functions/purge-stale-uploads/inventory-config.ts';
import { planPass, readDescriptor } from '../../functions/purge-stale-uploads/shard.ts';
import { ValidationError } from '../../shared/errors.ts';

const s3mock = mockClient(S3Client);
const config = loadInventoryModeConfig({
  AWS_REGION: 'us-east-1',
  REGISTRY_BUCKET: 'registry-bucket',
  INVENTORY_BUCKET: 'inventory-bucket',
});
const signal = new AbortController().signal;
const now = new Date('2026-12-08T03:00:00Z');
const manifestKey = 'control-plane/purge-stale-uploads/inventory/registry-bucket/purge-stale-uploads/2026-12-07T01-00Z/manifest.json';
const passKey = 'control-plane/purge-stale-uploads/passes/by-hand-1/pass.json';
const denied = () =>
  new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Access Denied' });

describe('a possibly-missing key of the inventory bucket, when GetObject of a missing key is 403', () => {
  beforeEach(() => {
    s3mock.reset();
    s3mock.on(GetObjectCommand).rejects(denied());
    s3mock.on(ListObjectsV2Command).resolves({ Contents: [], KeyCount: 0 });
  });

  it('a manifestKey that does not exist: the pass is refused naming the key, and nothing is written', async () => {
    const pass = planPass(new S3Client({}), config, 'by-hand-1', { manifestKey }, now, signal);
    await expect(pass).rejects.toThrow(ValidationError);
    await expect(pass).rejects.toThrow(`s3://inventory-bucket/${manifestKey} does not exist`);
    expect(s3mock.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'inventory-bucket', Prefix: manifestKey, MaxKeys: 1 },
    ]);
    expect(s3mock.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('a manifest that exists but cannot be read: an error saying so, never "missing"', async () => {
    s3mock.on(ListObjectsV2Command).resolves({ Contents: [{ Key: manifestKey }], KeyCount: 1 });
    const pass = planPass(new S3Client({}), config, 'by-hand-1', { manifestKey }, now, signal);
    await expect(pass).rejects.toThrow(`s3://inventory-bucket/${manifestKey} exists but GetObject is denied`);
    await expect(pass).rejects.not.toThrow(ValidationError);
    expect(s3mock.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('a shard or merge of a pass that was never planned: refused naming its pass.json', async () => {
    await expect(readDescriptor(new S3Client({}), config, 'by-hand-1', signal)).rejects.toThrow(
      `s3://inventory-bucket/${passKey} does not exist`,
    );
  });

  it('a listing that is itself denied: an error naming both, never "missing"', async () => {
    s3mock.on(ListObjectsV2Command).rejects(denied());
    await expect(readDescriptor(new S3Client({}), config, 'by-hand-1', signal)).rejects.toThrow(
      `cannot tell whether s3://inventory-bucket/${passKey} exists`,
    );
  });
});
