import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  S3Client,
  type DeleteObjectsCommandInput,
  type ListObjectsV2CommandInput,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, JobFailedError, ValidationError } from '../../shared/errors.ts';
import { runJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { logger } from '../../shared/observability.ts';
import { loadPurgeStaleUploadsConfig } from '../../functions/purge-stale-uploads/config.ts';
import { job } from '../../functions/purge-stale-uploads/job.ts';
import { loadEvent } from '../support/events.ts';

vi.hoisted(() => {
  process.env.REGISTRY_BUCKET = 'registry-bucket';
  process.env.REGISTRY_ROOT = '/fleet/a';
  process.env.UPLOAD_MAX_AGE = '168h';
  process.env.LIST_CONCURRENCY = '1';
});
const { run } = await import('../../functions/purge-stale-uploads/handler.ts');

const NOW = new Date('2026-11-23T03:00:00.000Z');
const H = 3_600_000;
const R = 'fleet/a/docker/registry/v2/repositories/';
const id = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const at = (agoMs: number): Date => new Date(NOW.getTime() - agoMs);

// ------------------------------------------------------------------------------------------------
// An in-memory bucket behind the mocked S3 client: listing (prefix, delimiter, start-after, pages), GET,
// DeleteObjects, multipart uploads.

interface Obj {
  body: string;
  lastModified: Date;
}
let objects: Map<string, Obj>;
let multipart: Map<string, { key: string; initiated: Date }>;
let parts: Map<string, { PartNumber: number; LastModified: Date; Size: number }[]>;
let deleteErrors: Map<string, string>;
const s3 = mockClient(S3Client);

function put(key: string, agoMs: number, body = 'x'): void {
  objects.set(key, { body, lastModified: at(agoMs) });
}
function mpu(key: string, uploadId: string, agoMs: number): void {
  multipart.set(uploadId, { key, initiated: at(agoMs) });
}
/** Parts uploaded to an open multipart upload, `agoMs` each (numbered on from its last part). */
function addParts(uploadId: string, agoMs: number[]): void {
  const list = parts.get(uploadId) ?? [];
  for (const a of agoMs) list.push({ PartNumber: list.length + 1, LastModified: at(a), Size: 5_242_880 });
  parts.set(uploadId, list);
}
/** An upload the registry left: startedat, hash states, and (unless cancelled) an open multipart upload. */
function upload(repo: string, n: number, agoMs: number, { cancelled = false, offsets = [0] } = {}): string {
  const dir = `${R}${repo}/_uploads/${id(n)}/`;
  for (const o of offsets) put(`${dir}hashstates/sha256/${o}`, agoMs, 'h'.repeat(10));
  if (!cancelled) {
    put(
      `${dir}startedat`,
      agoMs,
      at(agoMs)
        .toISOString()
        .replace(/\.\d+Z$/, 'Z'),
    );
    mpu(`${dir}data`, `mpu-${n}`, agoMs);
  }
  return dir;
}

function listObjects(input: ListObjectsV2CommandInput) {
  const prefix = input.Prefix ?? '';
  const max = input.MaxKeys ?? 1000;
  const after = input.ContinuationToken ?? input.StartAfter ?? '';
  const keys = [...objects.keys()].filter((k) => k.startsWith(prefix) && k > after).sort();
  const contents: { Key: string; Size: number; LastModified: Date }[] = [];
  const prefixes = new Set<string>();
  let last = '';
  for (const k of keys) {
    if (contents.length + prefixes.size >= max) break;
    const cut = input.Delimiter ? k.indexOf(input.Delimiter, prefix.length) : -1;
    if (cut >= 0) {
      const p = k.slice(0, cut + 1);
      if (!prefixes.has(p)) prefixes.add(p);
      last = k;
      continue;
    }
    const o = objects.get(k) as Obj;
    contents.push({ Key: k, Size: o.body.length, LastModified: o.lastModified });
    last = k;
  }
  const truncated = keys.some((k) => k > last) && keys.length > 0 && contents.length + prefixes.size >= max;
  // Skip the rest of a common prefix already returned (S3 does not return it twice).
  const token = truncated
    ? input.Delimiter && [...prefixes].some((p) => last.startsWith(p))
      ? `${[...prefixes].at(-1)}\uffff`
      : last
    : undefined;
  return {
    Contents: contents,
    CommonPrefixes: [...prefixes].map((Prefix) => ({ Prefix })),
    IsTruncated: truncated,
    ...(token ? { NextContinuationToken: token } : {}),
    KeyCount: contents.length + prefixes.size,
  };
}

function deleteObjects(input: DeleteObjectsCommandInput) {
  const Errors: { Key: string; Code: string; Message: string }[] = [];
  for (const { Key } of input.Delete?.Objects ?? []) {
    const code = deleteErrors.get(Key as string);
    if (code) Errors.push({ Key: Key as string, Code: code, Message: 'denied by the test' });
    else objects.delete(Key as string);
  }
  return { Errors };
}

beforeEach(() => {
  objects = new Map();
  multipart = new Map();
  parts = new Map();
  deleteErrors = new Map();
  s3.reset();
  s3.on(ListObjectsV2Command).callsFake(listObjects);
  s3.on(ListMultipartUploadsCommand).callsFake((input: { Prefix?: string; KeyMarker?: string; UploadIdMarker?: string }) => {
    // Two per page, to exercise the markers.
    const all = [...multipart.entries()]
      .filter(([, m]) => m.key.startsWith(input.Prefix ?? ''))
      .sort(([ia, a], [ib, b]) => (a.key === b.key ? (ia < ib ? -1 : 1) : a.key < b.key ? -1 : 1))
      .filter(
        ([uid, m]) => !input.KeyMarker || m.key > input.KeyMarker || (m.key === input.KeyMarker && uid > (input.UploadIdMarker ?? '')),
      );
    const page = all.slice(0, 2);
    const last = page.at(-1);
    return {
      Uploads: page.map(([UploadId, m]) => ({ Key: m.key, UploadId, Initiated: m.initiated })),
      IsTruncated: all.length > 2,
      ...(all.length > 2 && last ? { NextKeyMarker: last[1].key, NextUploadIdMarker: last[0] } : {}),
    };
  });
  s3.on(GetObjectCommand).callsFake((input: { Key: string }) => {
    const o = objects.get(input.Key);
    if (!o) throw Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey' });
    return { Body: { transformToString: async () => o.body } };
  });
  s3.on(ListPartsCommand).callsFake((input: { Key: string; UploadId: string; MaxParts?: number; PartNumberMarker?: string }) => {
    const m = multipart.get(input.UploadId);
    if (!m || m.key !== input.Key) throw Object.assign(new Error('The specified upload does not exist.'), { name: 'NoSuchUpload' });
    const after = Number(input.PartNumberMarker ?? 0);
    const all = (parts.get(input.UploadId) ?? []).filter((p) => p.PartNumber > after);
    const page = all.slice(0, input.MaxParts ?? 1000);
    const truncated = all.length > page.length;
    return { Parts: page, IsTruncated: truncated, ...(truncated ? { NextPartNumberMarker: String(page.at(-1)?.PartNumber) } : {}) };
  });
  s3.on(DeleteObjectsCommand).callsFake(deleteObjects);
  s3.on(AbortMultipartUploadCommand).callsFake((input: { UploadId: string; Key: string }) => {
    const m = multipart.get(input.UploadId);
    if (!m || m.key !== input.Key) throw Object.assign(new Error('The specified upload does not exist.'), { name: 'NoSuchUpload' });
    multipart.delete(input.UploadId);
    return {};
  });
  vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

const keysUnder = (prefix: string): string[] => [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
const deleteCalls = () => s3.commandCalls(DeleteObjectsCommand).map((c) => c.args[0].input.Delete?.Objects?.map((o) => o.Key) ?? []);

/** A registry with two images' links, a blob, one stale (started), one stale chunked, one cancelled leftover, one fresh upload. */
function seedRegistry(): Record<string, string> {
  put(`fleet/a/docker/registry/v2/blobs/sha256/ab/${'ab'.repeat(32)}/data`, 1000 * H, 'blob');
  put(`${R}library/nginx/_layers/sha256/${'ab'.repeat(32)}/link`, 1000 * H);
  put(`${R}library/nginx/_manifests/tags/1.27/current/link`, 1000 * H);
  put(`${R}org/team/app/_layers/sha256/${'cd'.repeat(32)}/link`, 1000 * H);
  put(`${R}library/nginx/_layers/_uploads/${id(99)}/data`, 1000 * H); // a look-alike: never touched
  return {
    started: upload('library/nginx', 1, 200 * H),
    chunked: upload('org/team/app', 2, 300 * H, { offsets: [0, 4096, 8192] }),
    cancelled: upload('library/nginx', 3, 250 * H, { cancelled: true }),
    fresh: upload('library/nginx', 4, 2 * H),
  };
}

describe('purge-stale-uploads handler', () => {
  it('aborts and deletes stale uploads only, and reports counts and requests', async () => {
    const dirs = seedRegistry();
    const before = [...objects.keys()];
    const report = await run(loadEvent('schedule.json'));

    for (const dir of [dirs.started, dirs.chunked, dirs.cancelled]) expect(keysUnder(dir as string)).toEqual([]);
    expect(keysUnder(dirs.fresh as string)).toEqual([`${dirs.fresh}hashstates/sha256/0`, `${dirs.fresh}startedat`]);
    expect([...multipart.keys()]).toEqual(['mpu-4']);
    // Everything outside the stale directories is still there.
    const gone = before.filter((k) => !objects.has(k));
    expect(gone.every((k) => [dirs.started, dirs.chunked, dirs.cancelled].some((d) => k.startsWith(d as string)))).toBe(true);
    expect(gone).toHaveLength(2 + 4 + 1);

    expect(report.summary).toEqual({ planned: 0, applied: 3, skipped: 0, failed: 0 });
    expect(report.actions.map((a) => [a.type, a.target, a.status])).toEqual([
      ['delete-upload', `org/team/app/_uploads/${id(2)}`, 'applied'],
      ['delete-upload', `library/nginx/_uploads/${id(3)}`, 'applied'],
      ['delete-upload', `library/nginx/_uploads/${id(1)}`, 'applied'],
    ]);
    expect(report.observed).toMatchObject({
      uploads: 4,
      stale: 3,
      fresh: 1,
      multipartUploads: 3,
      orphanMultipartUploads: 0,
      startedAtReads: 0,
    });
    expect(report.details).toMatchObject({
      maxAge: '168h',
      planned: { uploads: 3, objects: 7, multipartUploads: 2, uploadedBytes: 8192, deletions: 9 },
      done: { objectsDeleted: 7, multipartUploadsAborted: 2, uploadedBytesAborted: 8192 },
      truncated: false,
      perRepository: {
        'library/nginx': { uploads: 3, stale: 2, objectsDeleted: 3, multipartUploadsAborted: 1 },
        'org/team/app': { uploads: 1, stale: 1, objectsDeleted: 4, multipartUploadsAborted: 1 },
      },
      // 1 listing-checkpoint read (none there), 2 MPU pages (2 per page in this fake), 1 listing page, 2 aborts,
      // 1 DeleteObjects; and the activity reads of the 3 candidates: ListParts of the 2 with a multipart upload in
      // observe, then each candidate's re-check right before acting (its prefix listing + ListParts).
      requests: {
        total: 14,
        GetObject: 1,
        ListMultipartUploads: 2,
        ListObjectsV2: 1 + 3,
        ListParts: 2 + 2,
        AbortMultipartUpload: 2,
        DeleteObjects: 1,
      },
    });
    // Aborts go before deletes, deletes are batched and quiet.
    const order = s3.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name);
    expect(order.lastIndexOf('AbortMultipartUploadCommand')).toBeLessThan(order.indexOf('DeleteObjectsCommand'));
    expect(s3).toHaveReceivedCommandWith(DeleteObjectsCommand, {
      Bucket: 'registry-bucket',
      Delete: expect.objectContaining({ Quiet: true }),
    });
  });

  it('dry run: sends no write and reports the same plan', async () => {
    seedRegistry();
    const before = new Map(objects);
    const dry = await run({ dryRun: true });
    expect(s3).not.toHaveReceivedCommand(DeleteObjectsCommand);
    expect(s3).not.toHaveReceivedCommand(AbortMultipartUploadCommand);
    expect(objects).toEqual(before);
    expect(multipart.size).toBe(3);
    expect(dry.summary).toEqual({ planned: 3, applied: 0, skipped: 0, failed: 0 });
    const real = await run({});
    expect(dry.actions.map(({ type, target, reason }) => [type, target, reason])).toEqual(
      real.actions.map(({ type, target, reason }) => [type, target, reason]),
    );
  });

  it('limits a manual run to one repository and honours a maxAge override', async () => {
    const dirs = seedRegistry();
    const report = await run(loadEvent('purge-stale-uploads/manual-repository.json'));
    expect(report.actions.map((a) => a.target)).toEqual([`library/nginx/_uploads/${id(3)}`, `library/nginx/_uploads/${id(1)}`]);
    expect(keysUnder(dirs.chunked as string)).toHaveLength(4); // another repository: untouched
    expect(s3).toHaveReceivedCommandWith(ListObjectsV2Command, { Prefix: `${R}library/nginx/_uploads/` });
    expect(s3).toHaveReceivedCommandWith(ListMultipartUploadsCommand, { Prefix: `${R}library/nginx/_uploads/` });

    const again = await run({ maxAge: '1h' });
    expect(again.details).toMatchObject({ maxAge: '1h' });
    expect(again.actions.map((a) => a.target)).toEqual([`org/team/app/_uploads/${id(2)}`, `library/nginx/_uploads/${id(4)}`]);
  });

  it('reads startedat when the object time is near the boundary, and trusts its content', async () => {
    // Object written 168h ago (inside the 5m window), but the registry wrote a time 400h ago into it.
    const dir = upload('app', 1, 168 * H);
    put(`${dir}startedat`, 168 * H, at(400 * H).toISOString());
    const report = await run({});
    expect(s3).toHaveReceivedCommandTimes(GetObjectCommand, 2); // startedat, and the listing checkpoint (none there)
    expect(s3).toHaveReceivedCommandWith(GetObjectCommand, { Key: `${dir}startedat` });
    expect(report.actions[0]).toMatchObject({
      target: `app/_uploads/${id(1)}`,
      reason: 'started 400h ago > 168h (startedat)',
      status: 'applied',
    });
  });

  it('aborts a stale multipart upload that has no directory left', async () => {
    mpu(`${R}app/_uploads/${id(7)}/data`, 'orphan', 500 * H);
    mpu(`${R}app/_uploads/${id(8)}/data`, 'young', H);
    const report = await run({});
    expect([...multipart.keys()]).toEqual(['young']);
    expect(report.actions).toEqual([
      expect.objectContaining({ type: 'abort-multipart-upload', target: `app/_uploads/${id(7)}/data`, status: 'applied' }),
    ]);
    expect(s3).not.toHaveReceivedCommand(DeleteObjectsCommand);
  });

  it('counts NoSuchUpload as done (idempotent)', async () => {
    const dir = upload('app', 1, 200 * H);
    multipart.clear(); // someone aborted it after our listing
    s3.on(ListMultipartUploadsCommand).resolvesOnce({
      Uploads: [{ Key: `${dir}data`, UploadId: 'mpu-1', Initiated: at(200 * H) }],
      IsTruncated: false,
    });
    const report = await run({});
    expect(report.actions[0]).toMatchObject({ status: 'applied', detail: { multipartUploadsAborted: 1, objectsDeleted: 2 } });
    expect(keysUnder(dir)).toEqual([]);
  });

  describe('failures', () => {
    async function failingRun(event: unknown): Promise<{ error: unknown; report: Report }> {
      const info = vi.spyOn(logger, 'info');
      const error = await run(event).catch((e: unknown) => e);
      const report = (info.mock.calls.find(([m]) => m === 'job report')?.[1] as { report: Report }).report;
      info.mockRestore();
      return { error, report };
    }

    it('a per-key DeleteObjects error fails only the upload that owns the key', async () => {
      const dirs = seedRegistry();
      deleteErrors.set(`${dirs.chunked}hashstates/sha256/4096`, 'AccessDenied');
      const { error, report } = await failingRun({});
      expect(error).toBeInstanceOf(JobFailedError);
      expect(report.summary).toEqual({ planned: 0, applied: 2, skipped: 0, failed: 1 });
      expect(report.actions.find((a) => a.status === 'failed')).toMatchObject({
        target: `org/team/app/_uploads/${id(2)}`,
        error: `delete ${dirs.chunked}hashstates/sha256/4096: AccessDenied: denied by the test`,
        detail: { objectsDeleted: 3, multipartUploadsAborted: 1 },
      });
      expect(keysUnder(dirs.chunked as string)).toEqual([`${dirs.chunked}hashstates/sha256/4096`]);
      expect(keysUnder(dirs.started as string)).toEqual([]);
    });

    it('a failed abort keeps the directory (the next run retries both) and fails that action only', async () => {
      const dirs = seedRegistry();
      s3.on(AbortMultipartUploadCommand, { UploadId: 'mpu-1' }).rejects(
        Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }),
      );
      const { error, report } = await failingRun({});
      expect(error).toBeInstanceOf(JobFailedError);
      expect(report.actions.find((a) => a.status === 'failed')).toMatchObject({
        target: `library/nginx/_uploads/${id(1)}`,
        error: 'abort mpu-1: AccessDenied: Access Denied (directory kept: the next run retries)',
      });
      expect(keysUnder(dirs.started as string)).toHaveLength(2);
      expect(
        deleteCalls()
          .flat()
          .some((k) => k?.startsWith(dirs.started as string)),
      ).toBe(false);
      expect(keysUnder(dirs.chunked as string)).toEqual([]);
    });

    it('a DeleteObjects request that fails (throttled past the retries) fails only the uploads in that batch', async () => {
      for (let n = 1; n <= 600; n += 1) upload('app', n, 200 * H, { cancelled: true, offsets: [0, 1] }); // 1200 keys: 2 batches
      s3.on(DeleteObjectsCommand)
        .rejectsOnce(
          Object.assign(new Error('Please reduce your request rate.'), {
            name: 'SlowDown',
            $metadata: { httpStatusCode: 503, attempts: 5 },
          }),
        )
        .callsFake(deleteObjects);
      const { error, report } = await failingRun({});
      expect(error).toBeInstanceOf(JobFailedError);
      const batches = deleteCalls();
      expect(batches.map((b) => b.length)).toEqual([1000, 200]);
      expect(report.summary).toEqual({ planned: 0, applied: 100, skipped: 0, failed: 500 });
      expect(objects.size).toBe(1000); // the second batch went through
      expect(report.details).toMatchObject({ requests: { DeleteObjects: 6 } }); // 5 attempts + 1
    });

    it('a missing bucket is a clear error naming REGISTRY_BUCKET, and nothing is deleted', async () => {
      s3.on(ListMultipartUploadsCommand).rejects(Object.assign(new Error('The specified bucket does not exist'), { name: 'NoSuchBucket' }));
      const error = await run({}).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toBe(
        'REGISTRY_BUCKET "registry-bucket" does not exist (NoSuchBucket): check the function\'s REGISTRY_BUCKET',
      );
      expect(s3).not.toHaveReceivedCommand(DeleteObjectsCommand);
    });

    it.each([
      [{ maxAge: '30m' }, 'maxAge'],
      [{ maxAge: '-5h' }, 'maxAge'],
      [
        { maxAge: '99999999999999999999h' },
        'maxAge: expected a duration like 24h, 90m or 7d, at least 1h and at most 365d (got "99999999999999999999h")',
      ],
      [{ repository: '../../etc' }, 'repository'],
      [{ repository: '/library/nginx' }, 'repository'],
      [{ everything: true }, 'unknown key "everything"'],
    ])('bad input %j throws before any S3 call', async (payload, message) => {
      seedRegistry();
      await expect(run(payload)).rejects.toThrow(ValidationError);
      await expect(run(payload)).rejects.toThrow(message);
      expect(s3.calls()).toHaveLength(0);
    });
  });

  it('stops taking new actions when the Lambda time runs low', async () => {
    seedRegistry();
    const report = await run({}, { getRemainingTimeInMillis: () => 1_000 });
    expect(report.stoppedEarly).toBe('time');
    expect(s3).not.toHaveReceivedCommand(DeleteObjectsCommand);
    expect(s3).not.toHaveReceivedCommand(AbortMultipartUploadCommand);
    expect(report.actions.every((a) => a.status === 'skipped')).toBe(true);
  });

  it('defers beyond MAX_DELETES_PER_RUN and says so', async () => {
    seedRegistry();
    const config = loadPurgeStaleUploadsConfig({ ...process.env, MAX_DELETES_PER_RUN: '5' });
    const report = await runJob(job, config, {}, {}, { clock: () => NOW });
    expect(report.actions.filter((a) => a.status === 'applied').map((a) => a.target)).toEqual([`org/team/app/_uploads/${id(2)}`]);
    expect(report.details).toMatchObject({ truncated: true, deferred: { actions: 2, deletions: 4 } });
    expect(report.summary).toEqual({ planned: 0, applied: 1, skipped: 2, failed: 0 });
  });
});

describe('activity: a push in flight is kept, and every candidate is re-checked right before it is acted on', () => {
  const listPartsCalls = () => s3.commandCalls(ListPartsCommand).map((c) => c.args[0].input.UploadId);

  it('keeps an upload whose multipart upload is still receiving parts (kept-active); ListParts only for candidates', async () => {
    const dirs = seedRegistry();
    addParts('mpu-1', [3 * H, 10 * 60_000]); // started 200 h ago, a part 10 min ago: one long PATCH
    addParts('mpu-2', [300 * H, 299 * H]);
    addParts('mpu-4', [60_000]); // fresh: never a candidate, never read
    const report = await run({});
    expect(report.actions.map((a) => [a.target, a.status])).toEqual([
      [`org/team/app/_uploads/${id(2)}`, 'applied'],
      [`library/nginx/_uploads/${id(3)}`, 'applied'],
      [`library/nginx/_uploads/${id(1)}`, 'skipped'],
    ]);
    expect(report.actions[2]).toMatchObject({
      reason: `started 200h ago but part 2 of its multipart upload was uploaded 10m ago (${at(10 * 60_000).toISOString()}): a push in flight is kept`,
      detail: { held: 'active' },
    });
    expect(report.observed).toMatchObject({ keptActive: 1, stale: 2 });
    expect(keysUnder(dirs.started as string)).toHaveLength(2);
    expect([...multipart.keys()].sort()).toEqual(['mpu-1', 'mpu-4']);
    // observe: the two candidates with a multipart upload; apply: the re-check of the one acted on.
    expect(listPartsCalls().sort()).toEqual(['mpu-1', 'mpu-2', 'mpu-2']);
  });

  it('follows ListParts pages: a recent part on the last page keeps the upload', async () => {
    const dir = upload('app', 1, 200 * H);
    addParts(
      'mpu-1',
      Array.from({ length: 2_400 }, (_, i) => (i === 2_399 ? 5 * 60_000 : 190 * H)),
    );
    const report = await run({});
    expect(report.actions).toEqual([
      expect.objectContaining({
        status: 'skipped',
        reason: expect.stringContaining('part 2400 of its multipart upload was uploaded 5m ago'),
      }),
    ]);
    expect(listPartsCalls()).toEqual(['mpu-1', 'mpu-1', 'mpu-1']);
    expect(keysUnder(dir)).toHaveLength(2);
    expect(multipart.has('mpu-1')).toBe(true);
  });

  it('skips a candidate that moved between the plan and its abort (changed-during-run), acts on the rest', async () => {
    const dirs = seedRegistry();
    const config = loadPurgeStaleUploadsConfig(process.env);
    // The push resumes after the plan was made: a new hash state in one upload, a new part in another.
    const moving = {
      ...job,
      plan: (state: Parameters<typeof job.plan>[0], ctx: Parameters<typeof job.plan>[1]) => {
        const plan = job.plan(state, ctx);
        put(`${dirs.started}hashstates/sha256/5242880`, 0);
        addParts('mpu-2', [0]);
        return plan;
      },
    };
    const report = await runJob(moving, config, {}, {}, { clock: () => NOW });
    const byTarget = Object.fromEntries(report.actions.map((a) => [a.target, a]));
    expect(byTarget[`library/nginx/_uploads/${id(1)}`]).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/^changed-during-run: /),
    });
    expect(byTarget[`org/team/app/_uploads/${id(2)}`]).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/^changed-during-run: /),
    });
    expect(byTarget[`library/nginx/_uploads/${id(3)}`]).toMatchObject({ status: 'applied' });
    expect(report.observed).toMatchObject({ changedDuringRun: 2 });
    expect(keysUnder(dirs.started as string)).toHaveLength(3);
    expect(keysUnder(dirs.chunked as string)).toHaveLength(4);
    expect(keysUnder(dirs.cancelled as string)).toEqual([]);
    expect([...multipart.keys()].sort()).toEqual(['mpu-1', 'mpu-2', 'mpu-4']);
    expect(s3).not.toHaveReceivedCommandWith(AbortMultipartUploadCommand, { UploadId: 'mpu-1' });
    expect(s3).not.toHaveReceivedCommandWith(AbortMultipartUploadCommand, { UploadId: 'mpu-2' });
  });
});

describe('parallel listing', () => {
  it('lists every key exactly once over key ranges, for a few requests more than one flat listing', async () => {
    for (let r = 0; r < 40; r += 1) {
      const repo = `team-${String(r).padStart(2, '0')}/app${r % 3 === 0 ? '-x' : ''}`;
      for (let l = 0; l < 30; l += 1) put(`${R}${repo}/_layers/sha256/${l.toString(16).padStart(64, '0')}/link`, 1000 * H);
      upload(repo, r, r % 2 ? 200 * H : H);
    }
    put(`${R}team-05-x/_uploads/${id(500)}/hashstates/sha256/0`, 900 * H); // sorts between team-05/ and team-06/
    const total = objects.size;
    const config = loadPurgeStaleUploadsConfig({ ...process.env, LIST_CONCURRENCY: '4' });
    const report = await runJob(job, config, { dryRun: true }, {}, { clock: () => NOW });
    expect(report.observed).toMatchObject({ keysListed: total, uploads: 41, stale: 21 });
    const listings = s3.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input);
    expect(listings.filter((i) => i.Delimiter === '/')).toHaveLength(1);
    expect(new Set(listings.filter((i) => !i.Delimiter).map((i) => i.StartAfter)).size).toBe(4);
    const flatPages = Math.ceil(total / 1000);
    expect(listings.length).toBeLessThanOrEqual(1 + flatPages + 4);
  });
});

describe('parallel listing in a registry with one namespace', () => {
  it('goes one level deeper to find enough names for the ranges', async () => {
    for (let r = 0; r < 12; r += 1) {
      for (let l = 0; l < 20; l += 1) put(`${R}library/app-${r}/_layers/sha256/${l.toString(16).padStart(64, '0')}/link`, 1000 * H);
      upload(`library/app-${r}`, r, 200 * H);
    }
    const total = objects.size;
    const config = loadPurgeStaleUploadsConfig({ ...process.env, LIST_CONCURRENCY: '4' });
    const report = await runJob(job, config, { dryRun: true }, {}, { clock: () => NOW });
    expect(report.observed).toMatchObject({ keysListed: total, uploads: 12, stale: 12 });
    const listings = s3.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input);
    expect(listings.filter((i) => i.Delimiter === '/').map((i) => i.Prefix)).toEqual([R, `${R}library/`]);
    expect(new Set(listings.filter((i) => !i.Delimiter).map((i) => i.StartAfter)).size).toBe(4);
  });
});
