import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../functions/purge-stale-uploads/inventory.ts';
import { CSV_SCHEMA, PARQUET_SCHEMA } from '../support/inventory-writer.ts';

const manifest = (over: Record<string, unknown> = {}) =>
  JSON.stringify({
    sourceBucket: 'registry-bucket',
    destinationBucket: 'arn:aws:s3:::registry-bucket',
    version: '2016-11-30',
    creationTimestamp: '1795401600000',
    fileFormat: 'Parquet',
    fileSchema: PARQUET_SCHEMA,
    files: [
      { key: 'inv/registry-bucket/purge-stale-uploads/data/a.parquet', size: 46473, MD5checksum: 'f92e97e547625c91737495137cd306c7' },
    ],
    ...over,
  });

describe('S3 Inventory manifest', () => {
  it('reads a Parquet manifest: its files, the schema field names, the destination bucket name', () => {
    expect(parseManifest(manifest(), 'registry-bucket', 'm')).toEqual({
      sourceBucket: 'registry-bucket',
      destinationBucket: 'registry-bucket',
      createdAt: 1795401600000,
      format: 'Parquet',
      columns: ['bucket', 'key', 'size', 'last_modified_date'],
      files: [{ key: 'inv/registry-bucket/purge-stale-uploads/data/a.parquet', size: 46473 }],
    });
  });

  it('reads a CSV manifest: the columns in fileSchema order', () => {
    expect(parseManifest(manifest({ fileFormat: 'CSV', fileSchema: CSV_SCHEMA }), 'registry-bucket', 'm').columns).toEqual([
      'Bucket',
      'Key',
      'Size',
      'LastModifiedDate',
    ]);
    // S3's full schema: the needed columns anywhere in it.
    const full = 'Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass';
    expect(
      parseManifest(manifest({ fileFormat: 'CSV', fileSchema: full }), 'registry-bucket', 'm').columns.indexOf('LastModifiedDate'),
    ).toBe(6);
  });

  it.each([
    ['not JSON', '{"sourceBucket":', /inventory manifest m is not JSON \("\{\\"sourceBucket\\":"\)/],
    ['another bucket', manifest({ sourceBucket: 'other' }), /sourceBucket "other" is not REGISTRY_BUCKET "registry-bucket"/],
    ['ORC', manifest({ fileFormat: 'ORC' }), /fileFormat "ORC": expected CSV or Parquet \(ORC is not read\)/],
    [
      'no LastModifiedDate',
      manifest({ fileFormat: 'CSV', fileSchema: 'Bucket, Key, Size' }),
      /fileSchema "Bucket, Key, Size" lacks LastModifiedDate/,
    ],
    ['files not a list', manifest({ files: 'a.csv.gz' }), /field files: .*expected an S3 Inventory manifest\.json/],
    ['a file without a key', manifest({ files: [{ size: 1 }] }), /field files\.0\.key/],
    ['creationTimestamp not digits', manifest({ creationTimestamp: 'yesterday' }), /field creationTimestamp/],
  ])('refuses %s, naming what is wrong', (_, text, message) => {
    expect(() => parseManifest(text, 'registry-bucket', 'm')).toThrow(message);
  });
});
