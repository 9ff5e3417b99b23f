import { gunzipSync, gzipSync } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { describeError } from './errors.ts';

/**
 * The run history (ARCHITECTURE §5): every run's whole report — every action, not the log line's cut — as one
 * JSON object, Hive-partitioned for Athena: `<prefix>/job=<job>/date=YYYY-MM-DD/<startedAt>-<request id>.json`
 * (`.json.gz` when large). Writing it never fails the run: the outcome goes into the report instead.
 */

/** Reports larger than this are gzipped (a purge of 10 000 uploads is megabytes of JSON, and compresses ~20×). */
export const GZIP_ABOVE_BYTES = 256 * 1024;

export interface HistoryTarget {
  readonly bucket: string;
  /** Without leading or trailing slash, e.g. `reports`. */
  readonly prefix: string;
}

/** What the report says about its history object: where it is, or why it could not be written there. */
export type HistoryRecord = { key: string } | { key: string; error: string };

/** The minimum of a report this module needs. */
export interface HistoryReport {
  readonly job: string;
  readonly startedAt: string;
}

const SAFE = /[^A-Za-z0-9._-]/g;

/** The object key of a run; `startedAt` (ISO, UTC) orders runs within a day, the request id makes it unique. */
export function historyKey(target: Pick<HistoryTarget, 'prefix'>, job: string, startedAt: string, requestId: string, gzip = false): string {
  const date = startedAt.slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new Error(`historyKey: startedAt must be an ISO time, got ${JSON.stringify(startedAt)}`);
  const name = `${startedAt}-${requestId.replace(SAFE, '_')}.json${gzip ? '.gz' : ''}`;
  return `${target.prefix}/job=${job.replace(SAFE, '_')}/date=${date}/${name}`;
}

/** The prefix that holds one job's runs of one day (the reader lists these). */
export function historyDayPrefix(target: Pick<HistoryTarget, 'prefix'>, job: string, date: string): string {
  return `${target.prefix}/job=${job}/date=${date}/`;
}

/** The body to write: JSON, gzipped above GZIP_ABOVE_BYTES. */
export function encodeHistory(report: unknown): { body: Buffer; gzip: boolean } {
  const json = Buffer.from(JSON.stringify(report), 'utf8');
  return json.length > GZIP_ABOVE_BYTES ? { body: gzipSync(json), gzip: true } : { body: json, gzip: false };
}

/** The report stored under `key` (gunzipped when the key ends `.gz`). */
export function decodeHistory<R = unknown>(key: string, bytes: Uint8Array): R {
  const raw = key.endsWith('.gz') ? gunzipSync(bytes) : Buffer.from(bytes);
  return JSON.parse(raw.toString('utf8')) as R;
}

/**
 * Write `report` (with `history: { key }` set, so the stored object says where it lives) in one PutObject.
 * Resolves to the record for the report; an S3 error is returned as `{ key, error }`, never thrown.
 */
export async function writeHistory<R extends HistoryReport>(
  s3: S3Client,
  target: HistoryTarget,
  report: R,
  requestId: string,
  signal?: AbortSignal,
): Promise<HistoryRecord> {
  // The key depends on whether the body is gzipped, and the body contains the key: size it with the longer key.
  const probe = encodeHistory({ ...report, history: { key: historyKey(target, report.job, report.startedAt, requestId, true) } });
  const key = historyKey(target, report.job, report.startedAt, requestId, probe.gzip);
  const { body, gzip } = encodeHistory({ ...report, history: { key } });
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: target.bucket,
        Key: key,
        Body: body,
        ContentType: 'application/json',
        ...(gzip ? { ContentEncoding: 'gzip' } : {}),
      }),
      signal ? { abortSignal: signal } : {},
    );
    return { key };
  } catch (error) {
    return { key, error: `s3://${target.bucket}/${key}: ${describeError(error)}` };
  }
}
