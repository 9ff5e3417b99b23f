import { describe, expect, it } from 'vitest';
import type { Report } from '../../shared/report.ts';
import { mergeReports, type PassDescriptor } from '../../functions/purge-stale-uploads/shard.ts';

const descriptor: PassDescriptor = {
  version: 1,
  pass: 'nightly-1',
  manifestKey: 'inv/b/purge-stale-uploads/2026-11-23T01-00Z/manifest.json',
  manifest: {
    sourceBucket: 'b',
    destinationBucket: 'b',
    createdAt: Date.parse('2026-11-23T01:00:00Z'),
    format: 'Parquet',
    columns: [],
    files: [
      { key: 'a', size: 1 },
      { key: 'b', size: 1 },
    ],
  },
  now: Date.parse('2026-11-23T03:00:00Z'),
  maxAgeMs: 168 * 3_600_000,
  dryRun: false,
  shards: 3,
};

const shard = (index: number, over: Partial<Report> = {}): Report => ({
  job: 'purge-stale-uploads',
  trigger: { kind: 'manual', dryRun: false, options: {} },
  dryRun: false,
  startedAt: '2026-11-23T03:00:01.000Z',
  finishedAt: '2026-11-23T03:00:09.000Z',
  observed: { uploads: 10 + index, stale: 2 },
  actions: [
    { type: 'delete-upload', target: `r${index}/_uploads/1`, reason: 'old', status: 'applied' },
    { type: 'delete-upload', target: `r${index}/_uploads/2`, reason: 'young', status: 'skipped' },
  ],
  summary: { planned: 0, applied: 1, skipped: 1, failed: 0 },
  truncated: false,
  details: {
    pass: 'nightly-1',
    done: { objectsDeleted: 3, multipartUploadsAborted: 1 },
    requests: { total: 7, ListObjectsV2: 4, GetObject: 3 },
    inventory: { index, rows: 1_000, uploadRows: 20, candidates: 2 },
    perRepository: { [`r${index}`]: { uploads: 1, stale: 1 }, shared: { uploads: 2, stale: index } },
  },
  ...over,
});

describe('the pass report (merge)', () => {
  it('sums the shards, lists the failed and the missing, and puts failures first', () => {
    const failed = shard(1, {
      summary: { planned: 0, applied: 0, skipped: 0, failed: 1 },
      actions: [{ type: 'delete-upload', target: 'r1/_uploads/9', reason: 'old', status: 'failed', error: 'AccessDenied' }],
    });
    const merged = mergeReports(
      descriptor,
      new Map([
        [0, [shard(0)]],
        [1, [failed]],
      ]),
      undefined,
      new Date('2026-11-23T03:10:00Z'),
    );
    expect(merged.summary).toEqual({ planned: 0, applied: 1, skipped: 1, failed: 1 });
    expect(merged.observed).toEqual({ uploads: 21, stale: 4 });
    expect(merged.actions[0]).toMatchObject({ status: 'failed', target: 'r1/_uploads/9' });
    expect(merged.startedAt).toBe('2026-11-23T03:00:00.000Z');
    expect(merged.details).toMatchObject({
      mode: 'inventory',
      pass: 'nightly-1',
      maxAge: '168h',
      manifest: { key: descriptor.manifestKey, format: 'Parquet', files: 2 },
      shards: { items: 3, reported: 2, failed: [1], missing: [2] },
      done: { objectsDeleted: 6, multipartUploadsAborted: 2 },
      requests: { total: 14, ListObjectsV2: 8, GetObject: 6 },
      inventory: { rows: 2_000, uploadRows: 40, candidates: 4 },
      perRepository: { shared: { uploads: 4, stale: 1 }, r0: { uploads: 1, stale: 1 } },
    });
  });

  it('says the map failed, and caps the action list like the runner', () => {
    const many = shard(0, {
      actions: Array.from({ length: 250 }, (_, i) => ({
        type: 'delete-upload',
        target: `x/_uploads/${i}`,
        reason: 'old',
        status: 'applied' as const,
      })),
    });
    const error = { Error: 'States.ExceedToleratedFailureThreshold', Cause: '2 of 3 items failed' };
    const merged = mergeReports(descriptor, new Map([[0, [many]]]), error, new Date());
    expect(merged.actions).toHaveLength(200);
    expect(merged.truncated).toBe(true);
    expect(merged.details?.shards).toEqual({ items: 3, reported: 1, failed: [], missing: [1, 2], mapError: error });
  });
});

describe('the pass report counts every attempt of a shard', () => {
  it('lists a shard retried after its attempt died, and counts the attempt that reported', () => {
    const died = { index: 0, attempt: 'req-1', failedAt: '2026-11-23T03:00:05.000Z', error: 'SlowDown: Please reduce your request rate.' };
    const merged = mergeReports(
      descriptor,
      new Map([
        [0, [died, shard(0)]],
        [1, [shard(1)]],
        [2, [shard(2)]],
      ]),
      undefined,
      new Date(),
    );
    expect(merged.summary).toEqual({ planned: 0, applied: 3, skipped: 3, failed: 0 });
    expect(merged.details?.shards).toEqual({
      items: 3,
      reported: 3,
      failed: [],
      missing: [],
      retried: [{ index: 0, attempts: 2, errors: ['SlowDown: Please reduce your request rate.'] }],
      retriedShards: 1,
    });
    expect(merged.refusals).toBeUndefined();
  });

  it('adds up two attempts that both reported, and a shard whose every attempt died is missing: a refusal', () => {
    const first = shard(0, { actions: [{ type: 'delete-upload', target: 'r0/_uploads/a', reason: 'old', status: 'applied' }] });
    const second = shard(0, { actions: [{ type: 'delete-upload', target: 'r0/_uploads/b', reason: 'old', status: 'applied' }] });
    const died = (attempt: string) => ({ index: 2, attempt, failedAt: '2026-11-23T03:00:05.000Z', error: 'SlowDown: again' });
    const merged = mergeReports(
      descriptor,
      new Map([
        [0, [first, second]],
        [1, [shard(1)]],
        [2, [died('a'), died('b')]],
      ]),
      undefined,
      new Date(),
    );
    expect(merged.actions.map((a) => a.target).sort()).toEqual(['r0/_uploads/a', 'r0/_uploads/b', 'r1/_uploads/1', 'r1/_uploads/2']);
    expect(merged.details?.done).toEqual({ objectsDeleted: 9, multipartUploadsAborted: 3 });
    expect(merged.details?.shards).toMatchObject({ reported: 2, missing: [2], retried: [{ index: 0 }, { index: 2, attempts: 2 }] });
    expect(merged.refusals).toEqual([{ type: 'incomplete-pass', target: 'inventory pass nightly-1', reason: 'shards 2 reported nothing' }]);
  });
});
