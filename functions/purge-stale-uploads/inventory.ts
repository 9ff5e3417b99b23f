import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { parse as parseCsv } from 'csv-parse';
import { parquetMetadataAsync, parquetRead, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import * as z from 'zod/mini';
import { ValidationError } from '../../shared/errors.ts';
import type { ListedObject } from './model.ts';

/**
 * S3 Inventory, read the way S3 writes it (inventory mode, see shard.ts). A delivery is a `manifest.json`
 * (`sourceBucket`, `fileFormat`, `fileSchema`, `files: [{key, size, MD5checksum}]`) next to data files:
 * gzip CSV without a header (columns in `fileSchema` order, keys URL-encoded) or Parquet (`key`, `size`,
 * `last_modified_date` as TIMESTAMP_MILLIS). Only keys with an `_uploads` path component leave this file:
 * the rest of the registry (links, manifests: 99 % of the rows) is only counted.
 */

export type InventoryFormat = 'CSV' | 'Parquet';

export interface InventoryFile {
  readonly key: string;
  readonly size: number;
}

export interface InventoryManifest {
  readonly sourceBucket: string;
  /** The destination bucket's name (the manifest gives its ARN). */
  readonly destinationBucket: string;
  /** Epoch ms: when S3 began scanning the bucket for this delivery. */
  readonly createdAt: number;
  readonly format: InventoryFormat;
  /** CSV: the column names in order. Parquet: the schema's field names. */
  readonly columns: readonly string[];
  readonly files: readonly InventoryFile[];
}

const MANIFEST_FORM =
  'expected an S3 Inventory manifest.json: ' +
  '{sourceBucket, destinationBucket, creationTimestamp, fileFormat, fileSchema, files: [{key, size}]}';

const manifestShape = z.object({
  sourceBucket: z.string(),
  destinationBucket: z.string(),
  creationTimestamp: z.string().check(z.regex(/^\d+$/)),
  fileFormat: z.string(),
  fileSchema: z.string(),
  files: z.array(z.object({ key: z.string().check(z.minLength(1)), size: z.number().check(z.nonnegative()) })),
});

/** The columns each format must have for the purge: key, size, object time. */
const NEEDED: Record<InventoryFormat, readonly string[]> = {
  CSV: ['Key', 'Size', 'LastModifiedDate'],
  Parquet: ['key', 'size', 'last_modified_date'],
};

/**
 * Parses and checks a manifest: it must be for `bucket`, in CSV or Parquet, with the Key/Size/LastModifiedDate
 * fields. Anything else is a ValidationError naming the field and echoing the value (nothing is read or purged).
 */
export function parseManifest(text: string, bucket: string, where: string): InventoryManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ValidationError(`inventory manifest ${where} is not JSON (${JSON.stringify(text.slice(0, 60))}): ${MANIFEST_FORM}`);
  }
  const r = manifestShape.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = (issue?.path ?? []).join('.') || '(manifest)';
    throw new ValidationError(`inventory manifest ${where}: field ${field}: ${issue?.message ?? 'invalid'}: ${MANIFEST_FORM}`);
  }
  const m = r.data;
  if (m.sourceBucket !== bucket) {
    throw new ValidationError(
      `inventory manifest ${where}: sourceBucket ${JSON.stringify(m.sourceBucket)} is not REGISTRY_BUCKET "${bucket}"`,
    );
  }
  const format = m.fileFormat === 'CSV' || m.fileFormat === 'Parquet' ? m.fileFormat : undefined;
  if (!format) {
    throw new ValidationError(
      `inventory manifest ${where}: fileFormat ${JSON.stringify(m.fileFormat)}: expected CSV or Parquet (ORC is not read)`,
    );
  }
  const columns = format === 'CSV' ? m.fileSchema.split(',').map((c) => c.trim()) : parquetFieldNames(m.fileSchema);
  const missing = NEEDED[format].filter((c) => !columns.includes(c));
  if (missing.length > 0) {
    throw new ValidationError(
      `inventory manifest ${where}: fileSchema ${JSON.stringify(m.fileSchema.slice(0, 200))} lacks ${missing.join(', ')}: ` +
        'configure the inventory with the Size and LastModifiedDate fields',
    );
  }
  return {
    sourceBucket: m.sourceBucket,
    destinationBucket: m.destinationBucket.replace(/^arn:aws[a-z-]*:s3:::/, ''),
    createdAt: Number(m.creationTimestamp),
    format,
    columns,
    files: m.files.map((f) => ({ key: f.key, size: f.size })),
  };
}

/** `message s3.inventory { required binary key (STRING); optional int64 size; … }` → `['key', 'size', …]`. */
function parquetFieldNames(schema: string): string[] {
  return [...schema.matchAll(/(?:required|optional|repeated)\s+\w+\s+([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1] as string);
}

/** What reading one data file saw (the shard's report). */
export interface InventoryReadStats {
  rows: number;
  uploadRows: number;
  bytesRead: number;
}

export interface InventoryReadOptions {
  readonly bucket: string;
  readonly file: InventoryFile;
  readonly format: InventoryFormat;
  readonly columns: readonly string[];
  /** The run's clock: a row without a date counts as written now (never old enough to delete), as in the listing. */
  readonly now: number;
  readonly signal: AbortSignal;
}

/**
 * Every row of one data file whose key has an `_uploads` component, as the listing would have given it. The file is
 * named by the pass's manifest and expires with it (the bucket's lifecycle), so it exists unless removed by hand; a
 * missing one is a 403, not NoSuchKey (the role lists only a few prefixes): the shard fails, and the pass with it.
 */
export async function readInventoryFile(s3: S3Client, o: InventoryReadOptions, stats: InventoryReadStats): Promise<ListedObject[]> {
  const out: ListedObject[] = [];
  const keep: Keep = (key, size, lastModified) => {
    stats.uploadRows += 1;
    out.push({ key, size, lastModified });
  };
  if (o.format === 'Parquet') await readParquet(s3, o, stats, keep);
  else await readCsv(s3, o, stats, keep);
  return out;
}

type Keep = (key: string, size: number, lastModified: number) => void;

/**
 * Parquet is read in place with ranged GETs (the footer, then the three needed column chunks of one row group
 * at a time), so memory is bounded by a row group, never by the file.
 */
async function readParquet(s3: S3Client, o: InventoryReadOptions, stats: InventoryReadStats, keep: Keep): Promise<void> {
  const file = s3RangeBuffer(s3, o, stats);
  const metadata: FileMetaData = await parquetMetadataAsync(file);
  let start = 0;
  for (const group of metadata.row_groups) {
    const end = start + Number(group.num_rows);
    await parquetRead({
      file,
      metadata,
      compressors,
      columns: ['key', 'size', 'last_modified_date'],
      rowStart: start,
      rowEnd: end,
      // Millisecond numbers, not Date objects: 10⁷ Dates are allocation the shard does not need.
      parsers: { timestampFromMilliseconds: (ms: bigint) => Number(ms) },
      onComplete: (rows: unknown[][]) => {
        stats.rows += rows.length;
        for (const [key, size, lastModified] of rows as [string, bigint | number | null, number | null][]) {
          if (key.includes('/_uploads/')) keep(key, Number(size ?? 0), lastModified ?? o.now);
        }
      },
    });
    start = end;
    if (o.signal.aborted) throw o.signal.reason;
  }
}

/** An AsyncBuffer over one S3 object: each slice is one ranged GET. */
function s3RangeBuffer(s3: S3Client, o: InventoryReadOptions, stats: InventoryReadStats): AsyncBuffer {
  return {
    byteLength: o.file.size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const last = (end ?? o.file.size) - 1;
      const res = await s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: o.file.key, Range: `bytes=${start}-${last}` }), {
        abortSignal: o.signal,
      });
      const bytes = (await res.Body?.transformToByteArray()) ?? new Uint8Array();
      stats.bytesRead += bytes.byteLength;
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    },
  };
}

/** gzip CSV is streamed: GET → gunzip → csv-parse, one record at a time. */
async function readCsv(s3: S3Client, o: InventoryReadOptions, stats: InventoryReadStats, keep: Keep): Promise<void> {
  const at = (name: string): number => o.columns.indexOf(name);
  const [keyAt, sizeAt, timeAt] = [at('Key'), at('Size'), at('LastModifiedDate')];
  const res = await s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: o.file.key }), { abortSignal: o.signal });
  const body = res.Body as Readable | undefined;
  if (!body) throw new Error(`inventory data file ${o.file.key}: empty response body`);
  body.on('data', (chunk: Buffer) => (stats.bytesRead += chunk.byteLength));
  const records = body.pipe(createGunzip()).pipe(parseCsv({ relax_column_count: true }));
  for await (const record of records as AsyncIterable<string[]>) {
    stats.rows += 1;
    const raw = record[keyAt] ?? '';
    // `_` is never URL-encoded: rows without `_uploads` (99 % of them) are dropped before any decoding.
    if (!raw.includes('_uploads')) continue;
    // CSV inventory URL-encodes keys (spaces as %20 or +).
    const key = /[%+]/.test(raw) ? decodeURIComponent(raw.replace(/\+/g, ' ')) : raw;
    if (!key.includes('/_uploads/')) continue;
    const time = Date.parse(record[timeAt] ?? '');
    keep(key, Number(record[sizeAt] || 0), Number.isFinite(time) ? time : o.now);
  }
}
