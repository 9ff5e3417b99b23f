// The checkpoint's fate and the stalled listing, pure (model.ts): what apply does with the checkpoint and what the
// report says, for each way a whole-registry run can end.
import { describe, expect, it } from 'vitest';
import type { Outcomes } from '../../shared/job.ts';
import { renderNotification } from '../../shared/notify.ts';
import {
  applyFinished,
  checkpointFate,
  checkpointNote,
  CHANGED_DURING_RUN,
  listingAttention,
  LISTING_STALL_RUNS,
  saveBeforeApply,
  type CheckpointFound,
  type ListingRun,
  type PurgeAction,
  type PurgePlan,
} from '../../functions/purge-stale-uploads/model.ts';

const listing = (runs: number, complete: boolean, found: CheckpointFound = { kind: 'none' }): ListingRun => ({
  progress: { startedAt: 0, runs, ranges: [{ done: complete }], multipartUploads: [], objects: [], keysListed: 10 },
  found,
  complete,
});
const action: PurgeAction = {
  type: 'abort-multipart-upload',
  target: 'app/_uploads/u/data',
  reason: 'old',
  repository: 'app',
  uploadId: 'u',
  multipartUploadId: 'm',
  ageMs: 1,
  lastActivityAt: '2026-01-01T00:00:00.000Z',
};
const planOf = (run: ListingRun, skipped: PurgeAction[] = []): PurgePlan => ({ actions: [action], skipped, listing: run });
const applied: Outcomes = [{ status: 'applied' }];
const cut: Outcomes = [undefined];

describe('the listing checkpoint after apply', () => {
  it('a partial listing is saved before apply, and the report says saved', () => {
    const run = listing(2, false, { kind: 'resumed', complete: false });
    expect(saveBeforeApply(run)).toBe(true);
    expect(checkpointFate(run, { actions: [], skipped: [] }, [])).toBe('saved');
  });

  it('a listing of one run that found no checkpoint never writes one, whatever apply did', () => {
    const run = listing(1, true);
    expect(saveBeforeApply(run)).toBe(false);
    expect(checkpointFate(run, planOf(run), cut)).toBe('none');
    expect(checkpointFate(run, planOf(run), applied)).toBe('none');
  });

  it('a listing of several runs is saved whole before apply and kept while apply is not done', () => {
    const run = listing(3, true, { kind: 'resumed', complete: false });
    expect(saveBeforeApply(run)).toBe(true);
    expect(checkpointFate(run, planOf(run), cut)).toBe('kept');
    expect(checkpointNote(run, planOf(run), cut, false)).toMatch(/^kept until apply is done/);
    expect(checkpointFate(run, planOf(run), applied)).toBe('cleared');
  });

  it('a candidate left with its parts unread, or an action cut part-way, is not done; a re-check that found it moved is', () => {
    const run = listing(3, true, { kind: 'resumed', complete: false });
    expect(applyFinished(planOf(run, [{ ...action, held: 'unchecked' }]), applied)).toBe(false);
    expect(applyFinished(planOf(run), [{ status: 'skipped', reason: 'the Lambda time budget ran low part-way' }])).toBe(false);
    expect(applyFinished(planOf(run), [{ status: 'skipped', reason: `${CHANGED_DURING_RUN}: moved` }])).toBe(true);
  });

  it('a listing found complete is not saved again (its age keeps counting from that save)', () => {
    expect(saveBeforeApply(listing(4, true, { kind: 'resumed', complete: true }))).toBe(false);
  });

  it('a dry run leaves the checkpoint untouched, and says why one was discarded', () => {
    const found: CheckpointFound = { kind: 'discarded', why: 'written under another configuration (x)', stale: false };
    const run = listing(1, true, found);
    expect(checkpointNote(run, planOf(run), [], true)).toBe('discarded: written under another configuration (x); untouched (dry run)');
    expect(checkpointNote(run, planOf(run), applied, false)).toBe('discarded: written under another configuration (x); cleared');
  });
});

describe('a stalled listing needs attention', () => {
  it('a checkpoint discarded as stale does; one discarded for a configuration change does not', () => {
    expect(listingAttention(listing(1, false, { kind: 'discarded', why: 'last saved 37h ago, more than 36h', stale: true }))).toBe(
      'listing-stalled: its checkpoint was discarded (last saved 37h ago, more than 36h) and the listing started over',
    );
    expect(listingAttention(listing(1, false, { kind: 'discarded', why: 'written under another configuration', stale: false }))).toBe(
      undefined,
    );
  });

  it(`a listing not complete after ${LISTING_STALL_RUNS} runs does; one that completes then does not`, () => {
    expect(listingAttention(listing(LISTING_STALL_RUNS - 1, false))).toBeUndefined();
    expect(listingAttention(listing(LISTING_STALL_RUNS, false))).toMatch(/^listing-stalled: the listing has taken 7 runs/);
    expect(listingAttention(listing(LISTING_STALL_RUNS, true))).toBeUndefined();
  });
});

describe('the notification of a stalled listing', () => {
  it('says needs attention: listing stalled, although nothing failed or was applied', () => {
    const report = {
      job: 'purge-stale-uploads',
      trigger: { kind: 'schedule' },
      dryRun: false,
      startedAt: '2026-12-08T03:00:00.000Z',
      finishedAt: '2026-12-08T03:14:00.000Z',
      summary: { planned: 0, applied: 0, skipped: 0, failed: 0 },
      actions: [],
      metrics: { ListingStalled: 1, StaleUploads: 0 },
    };
    const n = renderNotification(report, { region: 'us-east-1' });
    expect(n?.status).toBe('attention');
    expect(n?.message.split('\n')[0]).toBe('purge-stale-uploads: needs attention: listing stalled');
    expect(renderNotification({ ...report, metrics: { ListingStalled: 0 } }, { region: 'us-east-1' })).toBeUndefined();
  });
});
