// purge-stale-uploads' listing checkpoint over many runs, on moto (issue 21 items 1 and 1b): a listing that needs
// three daily runs completes and purges (the checkpoint's age counts from its last save, not from the listing's
// start); the run that completes a listing leaves time for the rest of the run and keeps the checkpoint until
// apply is done; a dry run never clears nor replaces it. Time is simulated per listing page: each page of the
// tree listing takes simulated seconds off the Lambda's remaining time.
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, S3Client, paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Client } from '../../shared/aws.ts';
import { createJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { listingCheckpointKey } from '../../shared/purge-keys.ts';
import { loadPurgeStaleUploadsConfig } from '../../functions/purge-stale-uploads/config.ts';
import { job } from '../../functions/purge-stale-uploads/job.ts';
import { seedLayout, type Layout } from '../support/purge-layout.ts';
import { startSeededMoto, type SeededMoto } from '../support/seeded-moto.ts';

const ROOT = 'fleet/c';
const H = 3_600_000;
const CHECKPOINT = listingCheckpointKey(ROOT);
/** 6 × 10 repositories × 148 links + the uploads: 8,970 keys, 9 pages of one serial listing. */
const SPEC = { namespaces: 6, reposPerNamespace: 10, linksPerRepo: 148, stale: 30, fresh: 12, cancelled: 6, orphans: 3 };

describe('purge-stale-uploads: the listing checkpoint across runs', () => {
  let moto: SeededMoto;
  let s3: S3Client;
  /** Tree-listing pages (ListObjectsV2 outside one upload's prefix) and ListParts the job's client has sent. */
  const sent = { pages: 0, listParts: 0 };

  const runner = (bucket: string, clock: Date, env: Record<string, string> = {}) =>
    createJob(
      job,
      loadPurgeStaleUploadsConfig({
        ...moto.env,
        REGISTRY_BUCKET: bucket,
        REGISTRY_ROOT: ROOT,
        UPLOAD_MAX_AGE: '1h',
        STARTEDAT_READ_WINDOW: '876000h',
        LIST_CONCURRENCY: '1',
        ...env,
      }),
      { clock: () => clock },
    ).run;
  /**
   * A Lambda whose remaining time drops 180 s per listing page: 730 s at the start, 190 s after three pages.
   * The runner stops at 15 s left, so a listing allowed to run to it takes a fourth page and leaves nothing.
   */
  const pagedBudget = () => {
    const start = sent.pages;
    return { getRemainingTimeInMillis: () => 190_000 + (3 - (sent.pages - start)) * 180_000 };
  };
  /** Plenty of time for the listing; none once the first ListParts went out. */
  const timeGoneAtListParts = () => {
    const start = sent.listParts;
    return { getRemainingTimeInMillis: () => (sent.listParts > start ? 1_000 : 600_000) };
  };
  async function seeded(bucket: string, clock: Date): Promise<Layout> {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    return seedLayout(moto, s3, bucket, ROOT, SPEC, clock);
  }
  async function keys(bucket: string): Promise<string[]> {
    const out: string[] = [];
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket }))
      for (const o of page.Contents ?? []) out.push(o.Key ?? '');
    return out;
  }
  const remaining = async (bucket: string, targets: readonly string[]) => {
    const all = await keys(bucket);
    return targets.filter((t) => all.some((k) => k.includes(`${t}/`)));
  };
  const checkpointETag = (bucket: string) =>
    s3.send(new HeadObjectCommand({ Bucket: bucket, Key: CHECKPOINT })).then(
      (r) => r.ETag,
      () => undefined,
    );
  const listingOf = (r: Report) => r.details?.listing as Record<string, unknown>;

  beforeAll(async () => {
    moto = await startSeededMoto();
    Object.assign(process.env, moto.env);
    s3 = new S3Client({
      endpoint: moto.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    runner('unused', new Date()); // createJob configures the shared clients before the first one is made
    s3Client().middlewareStack.add(
      (next, context) => async (args) => {
        const prefix = (args.input as { Prefix?: string }).Prefix ?? '';
        if (context.commandName === 'ListObjectsV2Command' && !prefix.includes('/_uploads/')) sent.pages += 1;
        if (context.commandName === 'ListPartsCommand') sent.listParts += 1;
        return next(args);
      },
      { step: 'initialize', name: 'countListing' },
    );
  }, 120_000);
  afterAll(async () => {
    s3?.destroy();
    await moto?.stop();
  });

  it('10 nightly runs 24h apart, each listing a third of the keys: the stale uploads are gone by run 3', async () => {
    const bucket = 'purge-nightly';
    const clock0 = new Date(Date.now() + 2 * H);
    const layout = await seeded(bucket, clock0);
    const stale = [...layout.staleTargets, ...layout.orphanTargets.map((t) => t.replace(/\/data$/, ''))];
    const reports: Report[] = [];
    for (let night = 0; night < 10; night += 1) {
      reports.push(await runner(bucket, new Date(clock0.getTime() + night * 24 * H))({}, pagedBudget()));
      if (night === 2) {
        expect(listingOf(reports[2] as Report)).toMatchObject({ status: 'complete', resumed: true, runs: 3, checkpoint: 'cleared' });
        expect(await remaining(bucket, layout.staleTargets)).toEqual([]);
        expect(await remaining(bucket, layout.freshTargets)).toEqual(layout.freshTargets);
        expect(reports[2]?.observed).toMatchObject({ partsUnread: 0 });
      }
    }
    expect(stale.length).toBeGreaterThan(0);
    expect(reports.map((r) => (listingOf(r).keysListedThisRun as number) > 0)).toEqual(Array(10).fill(true));
    // No run discarded its checkpoint, none needed attention, and every listing took three runs.
    for (const r of reports) {
      expect(String(listingOf(r).checkpoint)).not.toMatch(/discarded/);
      expect(listingOf(r).attention).toBeUndefined();
    }
    expect(reports.map((r) => listingOf(r).status)).toEqual([
      'partial',
      'partial',
      'complete',
      'partial',
      'partial',
      'complete',
      'partial',
      'partial',
      'complete',
      'partial',
    ]);
  }, 300_000);

  it('the run that completes a listing keeps the checkpoint until apply is done; the next run applies without listing again', async () => {
    const bucket = 'purge-kept';
    const clock0 = new Date(Date.now() + 2 * H);
    const layout = await seeded(bucket, clock0);
    const first = await runner(bucket, clock0)({}, pagedBudget());
    expect(listingOf(first)).toMatchObject({ status: 'partial', checkpoint: 'saved' });

    // Completes the listing, then the time runs out at the first ListParts: nothing can be decided this run.
    const cut = await runner(bucket, new Date(clock0.getTime() + H))({}, timeGoneAtListParts());
    expect(listingOf(cut)).toMatchObject({ status: 'complete', runs: 2 });
    expect(cut.summary.applied).toBe(0);
    expect(listingOf(cut).checkpoint).toMatch(/^kept/);
    expect(await checkpointETag(bucket)).toBeDefined();

    const pagesBefore = sent.pages;
    const next = await runner(bucket, new Date(clock0.getTime() + 2 * H))({}, {});
    expect(sent.pages - pagesBefore).toBe(0); // resumed the completed listing: not one tree page again
    expect(listingOf(next)).toMatchObject({ status: 'complete', resumed: true, runs: 3, checkpoint: 'cleared' });
    expect(next.summary).toMatchObject({ failed: 0, applied: layout.staleTargets.length + layout.orphanTargets.length });
    expect(await remaining(bucket, layout.staleTargets)).toEqual([]);
    expect(await checkpointETag(bucket)).toBeUndefined();
  }, 120_000);

  it('a dry run resumes the checkpoint but never clears or replaces it', async () => {
    const bucket = 'purge-dry';
    const clock0 = new Date(Date.now() + 2 * H);
    const layout = await seeded(bucket, clock0);
    await runner(bucket, clock0)({}, pagedBudget());
    const saved = await checkpointETag(bucket);
    expect(saved).toBeDefined();

    const dry = await runner(bucket, new Date(clock0.getTime() + H))({ dryRun: true }, {});
    expect(listingOf(dry)).toMatchObject({ status: 'complete', resumed: true, runs: 2 });
    expect(dry.summary.planned).toBe(layout.staleTargets.length + layout.orphanTargets.length);
    expect(await checkpointETag(bucket)).toBe(saved);

    // Another configuration (a laptop's LIST_CONCURRENCY) would discard it: a dry run must leave it alone.
    const other = await runner(bucket, new Date(clock0.getTime() + H), { LIST_CONCURRENCY: '2' })({ dryRun: true }, {});
    expect(listingOf(other).checkpoint).toMatch(/^discarded: written under another configuration/);
    expect(await checkpointETag(bucket)).toBe(saved);

    const real = await runner(bucket, new Date(clock0.getTime() + 2 * H))({}, {});
    expect(listingOf(real)).toMatchObject({ status: 'complete', resumed: true, runs: 2, checkpoint: 'cleared' });
    expect(await remaining(bucket, layout.staleTargets)).toEqual([]);
    const body = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: CHECKPOINT })).then(
      () => 'present',
      () => 'gone',
    );
    expect(body).toBe('gone');
  }, 120_000);
});
