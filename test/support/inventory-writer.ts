import { createHash, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, type S3Client, paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { PURGE_INVENTORY_ID, PURGE_INVENTORY_PREFIX } from '../../shared/purge-keys.ts';

/**
 * An S3 Inventory delivery as S3 writes it (test-only): `<prefix><source-bucket>/<config-id>/data/<uuid>.csv.gz`
 * or `.parquet` data files and `<…>/<YYYY-MM-DDTHH-MMZ>/manifest.json` (+ `manifest.checksum`), with the fields
 * the stack configures (Key, Size, LastModifiedDate; current versions). CSV: no header, every value quoted, keys
 * URL-encoded. Parquet: `message s3.inventory { required binary bucket (STRING); required binary key (STRING);
 * optional int64 size; optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); }`, snappy, written with
 * hyparquet-writer.
 */
export interface InventoryRow {
  readonly key: string;
  readonly size: number;
  readonly lastModified: number;
}

export interface WrittenInventory {
  readonly manifestKey: string;
  readonly dataKeys: readonly string[];
  readonly bytes: number;
}

export interface InventoryWriteOptions {
  readonly format: 'CSV' | 'Parquet';
  /** Rows per data file (S3 splits a large inventory over several files, with no regard for key order). */
  readonly rowsPerFile: number;
  /** When S3 began the scan (names the delivery folder; `creationTimestamp`). */
  readonly createdAt: Date;
  readonly prefix?: string;
  readonly configId?: string;
  readonly rowGroupSize?: number;
}

export const CSV_SCHEMA = 'Bucket, Key, Size, LastModifiedDate';
export const PARQUET_SCHEMA =
  'message s3.inventory { required binary bucket (STRING); required binary key (STRING); optional int64 size; optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); }';

// hyparquet-writer brings its own hyparquet: take the schema type from the writer's options.
type SchemaElement = NonNullable<Parameters<typeof parquetWriteBuffer>[0]['schema']>[number];
const PARQUET_FIELDS: SchemaElement[] = [
  { name: 's3.inventory', num_children: 4 },
  { name: 'bucket', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
  { name: 'key', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
  { name: 'size', type: 'INT64', repetition_type: 'OPTIONAL' },
  {
    name: 'last_modified_date',
    type: 'INT64',
    repetition_type: 'OPTIONAL',
    converted_type: 'TIMESTAMP_MILLIS',
    logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MILLIS' },
  },
];

/** One data file's bytes. */
export function encodeInventoryFile(
  bucket: string,
  rows: readonly InventoryRow[],
  format: 'CSV' | 'Parquet',
  rowGroupSize = 100_000,
): Buffer {
  if (format === 'CSV') {
    const q = (v: string): string => `"${v.replace(/"/g, '""')}"`;
    const lines = rows.map(
      (r) => `${q(bucket)},${q(encodeURIComponent(r.key))},${q(String(r.size))},${q(new Date(r.lastModified).toISOString())}\n`,
    );
    return gzipSync(lines.join(''));
  }
  const buffer = parquetWriteBuffer({
    schema: PARQUET_FIELDS,
    columnData: [
      { name: 'bucket', data: rows.map(() => bucket) },
      { name: 'key', data: rows.map((r) => r.key) },
      { name: 'size', data: rows.map((r) => BigInt(r.size)) },
      { name: 'last_modified_date', data: rows.map((r) => BigInt(r.lastModified)) },
    ],
    rowGroupSize,
  });
  return Buffer.from(buffer);
}

const folderOf = (at: Date): string =>
  at
    .toISOString()
    .replace(/:\d\d\.\d+Z$/, 'Z')
    .replace(/:/g, '-');

/** Writes a whole delivery for `rows` into `destBucket` and returns where its manifest is. */
export async function writeInventory(
  s3: S3Client,
  sourceBucket: string,
  destBucket: string,
  rows: readonly InventoryRow[],
  o: InventoryWriteOptions,
): Promise<WrittenInventory> {
  const base = `${o.prefix ?? PURGE_INVENTORY_PREFIX}${sourceBucket}/${o.configId ?? PURGE_INVENTORY_ID}/`;
  const files: { key: string; size: number; MD5checksum: string }[] = [];
  let bytes = 0;
  for (let i = 0; i < rows.length || (i === 0 && rows.length === 0); i += o.rowsPerFile) {
    const body = encodeInventoryFile(sourceBucket, rows.slice(i, i + o.rowsPerFile), o.format, o.rowGroupSize);
    const key = `${base}data/${randomUUID()}.${o.format === 'CSV' ? 'csv.gz' : 'parquet'}`;
    await s3.send(new PutObjectCommand({ Bucket: destBucket, Key: key, Body: body }));
    files.push({ key, size: body.byteLength, MD5checksum: createHash('md5').update(body).digest('hex') });
    bytes += body.byteLength;
  }
  const manifest = {
    sourceBucket,
    destinationBucket: `arn:aws:s3:::${destBucket}`,
    version: '2016-11-30',
    creationTimestamp: String(o.createdAt.getTime()),
    fileFormat: o.format,
    fileSchema: o.format === 'CSV' ? CSV_SCHEMA : PARQUET_SCHEMA,
    files,
  };
  const text = JSON.stringify(manifest, null, 2);
  const manifestKey = `${base}${folderOf(o.createdAt)}/manifest.json`;
  await s3.send(new PutObjectCommand({ Bucket: destBucket, Key: manifestKey, Body: text }));
  await s3.send(
    new PutObjectCommand({
      Bucket: destBucket,
      Key: `${base}${folderOf(o.createdAt)}/manifest.checksum`,
      Body: createHash('md5').update(text).digest('hex'),
    }),
  );
  return { manifestKey, dataKeys: files.map((f) => f.key), bytes };
}

/** The rows S3 Inventory would list for `prefix` of `bucket` right now (what a delivery "scanned"). */
export async function scanBucket(s3: S3Client, bucket: string, prefix: string): Promise<InventoryRow[]> {
  const rows: InventoryRow[] = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix })) {
    for (const c of page.Contents ?? [])
      if (c.Key) rows.push({ key: c.Key, size: c.Size ?? 0, lastModified: c.LastModified?.getTime() ?? 0 });
  }
  return rows;
}
