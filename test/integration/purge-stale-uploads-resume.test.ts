// purge-stale-uploads' resumable listing on moto: a listing cut by the time budget saves a checkpoint, plans and
// changes nothing, and the next runs resume it; the run that completes it plans exactly what one uninterrupted
// run plans (same actions, same reasons: ages as of the listing's first clock), then clears the checkpoint. A
// checkpoint from another configuration, or last saved too long ago, is discarded and the report says why.
import { CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, S3Client, paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Client } from '../../shared/aws.ts';
import { createJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { listingCheckpointKey } from '../../shared/purge-keys.ts';
import { loadPurgeStaleUploadsConfig } from '../../functions/purge-stale-uploads/config.ts';
import { job } from '../../functions/purge-stale-uploads/job.ts';
import { seedLayout, type Layout } from '../support/purge-layout.ts';
import { startSeededMoto, type SeededMoto } from '../support/seeded-moto.ts';

const BUCKET = 'purge-resume';
const ROOT = 'fleet/b';
const H = 3_600_000;
const CHECKPOINT = listingCheckpointKey(ROOT);

describe('purge-stale-uploads: resumable listing', () => {
  let moto: SeededMoto;
  let s3: S3Client;
  let layout: Layout;
  let clock0: Date;
  /**
   * ListObjectsV2 requests of the tree listing the job's own client has sent: the budget below is counted in them
   * (not the one-upload prefix listings of apply's re-check, which come after the listing).
   */
  let listPages = 0;

  const runner = (env: Record<string, string>, clock: Date) =>
    createJob(
      job,
      loadPurgeStaleUploadsConfig({
        ...moto.env,
        REGISTRY_BUCKET: BUCKET,
        REGISTRY_ROOT: ROOT,
        UPLOAD_MAX_AGE: '1h',
        STARTEDAT_READ_WINDOW: '876000h',
        LIST_CONCURRENCY: '4',
        ...env,
      }),
      { clock: () => clock },
    ).run;
  /** A Lambda context whose time runs out once the run has taken `pages` listing pages. */
  const budget = (pages: number) => {
    const start = listPages;
    return { getRemainingTimeInMillis: () => (listPages - start >= pages ? 1_000 : 600_000) };
  };
  async function keys(prefix = ''): Promise<string[]> {
    const out: string[] = [];
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: BUCKET, Prefix: prefix }))
      for (const o of page.Contents ?? []) out.push(o.Key ?? '');
    return out.sort();
  }
  async function multipart(): Promise<string[]> {
    const res = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    return (res.Uploads ?? []).map((u) => `${u.Key} ${u.UploadId}`).sort();
  }
  const checkpointExists = () =>
    s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: CHECKPOINT })).then(
      () => true,
      () => false,
    );
  const planOf = (r: Report) =>
    r.actions.filter((a) => a.status !== 'skipped').map(({ type, target, reason }) => ({ type, target, reason }));

  beforeAll(async () => {
    moto = await startSeededMoto();
    Object.assign(process.env, moto.env); // the job's shared client is made on first use from the SDK's environment
    s3 = new S3Client({
      endpoint: moto.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    clock0 = new Date(Date.now() + 2 * H);
    const spec = { namespaces: 6, reposPerNamespace: 10, linksPerRepo: 150, stale: 30, fresh: 12, cancelled: 6, orphans: 3 };
    layout = await seedLayout(moto, s3, BUCKET, ROOT, spec, clock0);
    runner({}, clock0); // createJob configures the shared clients (path-style) before the first one is made
    s3Client().middlewareStack.add(
      (next, context) => async (args) => {
        const prefix = (args.input as { Prefix?: string }).Prefix ?? '';
        if (context.commandName === 'ListObjectsV2Command' && !prefix.includes('/_uploads/')) listPages += 1;
        return next(args);
      },
      { step: 'initialize', name: 'countListPages' },
    );
  }, 120_000);
  afterAll(async () => {
    s3?.destroy();
    await moto?.stop();
  });

  let uninterrupted: Report;

  it('an uninterrupted run (dry) lists everything in one go and writes no checkpoint', async () => {
    uninterrupted = await runner({}, clock0)({ dryRun: true }, {});
    expect(uninterrupted.details?.listing).toMatchObject({
      status: 'complete',
      resumed: false,
      runs: 1,
      keysListed: layout.keys,
      checkpoint: 'none',
    });
    expect(
      planOf(uninterrupted)
        .map((a) => a.target)
        .sort(),
    ).toEqual([...layout.staleTargets, ...layout.orphanTargets].sort());
    expect(await checkpointExists()).toBe(false);
  });

  it('a listing cut by the budget resumes run after run and ends with exactly the uninterrupted plan', async () => {
    const keysBefore = await keys();
    const multipartBefore = await multipart();
    const reports: Report[] = [];
    const pagesBefore = listPages;
    for (let i = 0; i < 30; i += 1) {
      // Every run has its own, later clock: the plan must still judge as of the listing's first one.
      const report = await runner({}, new Date(clock0.getTime() + i * 10 * 60_000))({}, budget(4));
      reports.push(report);
      if (report.details?.listing && (report.details.listing as { status: string }).status === 'complete') break;
      expect(report.stoppedEarly).toBe('time');
      expect(report.summary).toEqual({ planned: 0, applied: 0, skipped: 0, failed: 0 });
      expect(report.details?.listing).toMatchObject({ status: 'partial', runs: i + 1, checkpoint: 'saved' });
      if (i === 0) expect(await keys()).toEqual([...keysBefore, CHECKPOINT].sort()); // nothing changed but the checkpoint
      expect(await multipart()).toEqual(multipartBefore);
      expect(await checkpointExists()).toBe(true);
    }
    const last = reports.at(-1) as Report;
    expect(reports.length).toBeGreaterThanOrEqual(3);
    expect(last.details?.listing).toMatchObject({
      status: 'complete',
      resumed: true,
      runs: reports.length,
      keysListed: layout.keys,
      ranges: { total: 4, done: 4 },
      startedAt: clock0.toISOString(),
      checkpoint: 'cleared',
    });
    expect(planOf(last)).toEqual(planOf(uninterrupted));
    expect(last.summary).toMatchObject({ failed: 0, applied: planOf(uninterrupted).length });
    expect(await checkpointExists()).toBe(false);

    // The registry after: every stale upload and orphan gone, fresh uploads and every link still there.
    const after = await keys();
    for (const t of layout.staleTargets) expect(after.some((k) => k.includes(`${t}/`))).toBe(false);
    for (const t of layout.freshTargets) expect(after.some((k) => k.includes(`${t}/startedat`))).toBe(true);
    expect(after.filter((k) => k.endsWith('/link'))).toHaveLength(keysBefore.filter((k) => k.endsWith('/link')).length);
    expect(await multipart()).toHaveLength(layout.freshTargets.length);

    // Cost: resuming re-reads at most one page per range per run; the delimiter listings happen once.
    const uninterruptedPages = Number((uninterrupted.details?.requests as Record<string, number>).ListObjectsV2);
    expect(listPages - pagesBefore).toBeLessThanOrEqual(uninterruptedPages + 4 * reports.length);
  });

  it('discards a checkpoint written under another LIST_CONCURRENCY, and says so', async () => {
    // Real runs: a dry run never writes the checkpoint (purge-stale-uploads-checkpoint.test.ts).
    const cut = await runner({}, clock0)({}, budget(5));
    expect(cut.details?.listing).toMatchObject({ status: 'partial', checkpoint: 'saved' });
    const other = await runner({ LIST_CONCURRENCY: '2' }, clock0)({}, {});
    expect(other.details?.listing).toMatchObject({ status: 'complete', resumed: false, runs: 1 });
    expect((other.details?.listing as { checkpoint: string }).checkpoint).toMatch(
      /^discarded: written under another configuration \(listConcurrency 4 → 2\); cleared$/,
    );
    expect(await checkpointExists()).toBe(false);
  });

  it('discards a checkpoint last saved more than 36h ago, and says it needs attention', async () => {
    await runner({}, clock0)({}, budget(5));
    expect(await checkpointExists()).toBe(true);
    const later = await runner({}, new Date(clock0.getTime() + 37 * H))({}, {});
    expect((later.details?.listing as { checkpoint: string }).checkpoint).toMatch(
      /^discarded: last saved 37h ago, more than 36h; cleared$/,
    );
    expect((later.details?.listing as { attention: string }).attention).toMatch(/^listing-stalled: its checkpoint was discarded/);
    expect(await checkpointExists()).toBe(false);
    expect(later.details?.listing).toMatchObject({
      status: 'complete',
      resumed: false,
      startedAt: new Date(clock0.getTime() + 37 * H).toISOString(),
    });
  });
});
