import { describe, expect, it } from 'vitest';
import { loadPurgeDiskVolumesConfig } from '../../functions/purge-disk-volumes/config.ts';
import { summarize } from '../../functions/purge-disk-volumes/job.ts';
import { RequestCounter } from '../../shared/requests.ts';
import { MARK_TAG, type Policy, type State, type Volume, type VolumeUsage } from '../../functions/purge-disk-volumes/model.ts';
import { plan as planPurge } from '../../functions/purge-disk-volumes/plan.ts';

/**
 * CloudTrail delivers management events 5–15 minutes late (issue 21 item 4): a lookup "up to now" is incomplete
 * for the last minutes. EBS publishes a volume's AWS/EBS metrics only while it is attached: a datapoint within
 * CLOUDTRAIL_LAG holds the delete until a run whose history holds the attach.
 */

const now = new Date('2026-11-23T03:00:00.000Z');
const M = 60_000;
const H = 60 * M;
const ago = (ms: number): string => new Date(now.getTime() - ms).toISOString();

const policy: Policy = {
  fleetTag: { key: 'registry-fleet', value: 'prod' },
  volumeGraceMs: 10 * M, // below the floor on purpose: plan is pure, the config enforces the floor
  cloudTrailLagMs: 20 * M,
  snapshotBeforeDelete: false,
  maxVolumeDeletesPerRun: 10,
  asgName: 'prod-asg',
  diskUsedPercentThreshold: 85,
  pruneMaxLogMb: 100,
  maxPruneInstancesPerRun: 10,
};
const vol = (id: string, mark: string): Volume => ({
  id,
  state: 'available',
  sizeGiB: 100,
  volumeType: 'gp3',
  attachedTo: [],
  tags: { 'registry-fleet': 'prod', [MARK_TAG]: mark },
});
const quiet = (since: string): VolumeUsage => ({ kind: 'history', since, until: now.toISOString(), events: [] });

/** Observe's state for one candidate: its history (quiet) and the newest AWS/EBS datapoint, if any. */
function planOne(v: Volume, attachedMetrics: State['attachedMetrics']) {
  const usage = { [v.id]: quiet(ago(26 * H)) };
  const p = planPurge(
    { scope: { volumes: true, prune: false }, volumes: [v], readings: {}, usage, ...(attachedMetrics ? { attachedMetrics } : {}) },
    policy,
    now,
  );
  return {
    actions: p.actions.map((a) => [a.type, a.target]),
    skipped: p.skipped.map((a) => [a.target, a.type === 'delete-volume' ? a.held : undefined, a.reason]),
  };
}

describe('CloudTrail delivery lag: an AWS/EBS datapoint within CLOUDTRAIL_LAG holds a delete', () => {
  it('mark 25h old, quiet history, a datapoint 3 minutes ago (attached then, events not delivered): held, next run', () => {
    const p = planOne(vol('vol-1', ago(25 * H)), { 'vol-1': ago(3 * M) });
    expect(p.actions).toEqual([]);
    expect(p.skipped).toEqual([
      ['vol-1', 'lag', expect.stringMatching(/AWS\/EBS datapoint at .*CLOUDTRAIL_LAG 20m.*not deleted \(next run\)/)],
    ]);
  });

  it('a datapoint at the edge (lag + one 5-minute period ago) holds; one just before it does not', () => {
    expect(planOne(vol('vol-1', ago(25 * H)), { 'vol-1': ago(25 * M) }).skipped).toEqual([['vol-1', 'lag', expect.any(String)]]);
    expect(planOne(vol('vol-1', ago(25 * H)), { 'vol-1': ago(25 * M + 1000) }).actions).toEqual([['delete-volume', 'vol-1']]);
  });

  it('no datapoint (not attached in the window): deleted', () => {
    expect(planOne(vol('vol-1', ago(25 * H)), {}).actions).toEqual([['delete-volume', 'vol-1']]);
  });

  it('the metrics not read this run: held as unread, never deleted on CloudTrail alone', () => {
    const p = planOne(vol('vol-1', ago(25 * H)), undefined);
    expect(p.actions).toEqual([]);
    expect(p.skipped).toEqual([['vol-1', 'unread', expect.stringContaining('AWS/EBS attachment metrics not read')]]);
  });
});

describe('the summary counts held volumes from the structured held field', () => {
  it('one waiting for the grace, one held for the lag, one deleted', () => {
    const volumes = [vol('vol-1', ago(5 * M)), vol('vol-2', ago(25 * H)), vol('vol-3', ago(25 * H))];
    const usage = Object.fromEntries(volumes.map((v) => [v.id, quiet(ago(26 * H))]));
    const state = { scope: { volumes: true, prune: false }, volumes, readings: {}, usage, attachedMetrics: { 'vol-2': ago(2 * M) } };
    const p = planPurge(state, policy, now);
    const summary = summarize(state, p, [], { dryRun: true, requests: new RequestCounter() });
    expect(summary.details?.volumes).toMatchObject({ waiting: 1, heldForLag: 1, deletePlanned: { count: 1 } });
  });
});

describe('VOLUME_GRACE has a floor of 1h', () => {
  const env = { AWS_REGION: 'us-east-1', FLEET_TAG_VALUE: 'prod', ASG_NAME: 'prod-asg', PRUNE_DOCUMENT_NAME: 'prod-prune' };
  it.each(['1s', '10m', '59m'])('VOLUME_GRACE=%s is refused, naming the field, the value and the form', (value) => {
    expect(() => loadPurgeDiskVolumesConfig({ ...env, VOLUME_GRACE: value })).toThrow(
      new RegExp(`VOLUME_GRACE="${value}" is not valid: expected a duration.*at least 1h`),
    );
  });
  it('1h is accepted; CLOUDTRAIL_LAG defaults to 20m and is bounded', () => {
    expect(loadPurgeDiskVolumesConfig({ ...env, VOLUME_GRACE: '1h' }).policy).toMatchObject({ volumeGraceMs: H, cloudTrailLagMs: 20 * M });
    expect(() => loadPurgeDiskVolumesConfig({ ...env, CLOUDTRAIL_LAG: '2h' })).toThrow(
      /CLOUDTRAIL_LAG="2h" is not valid: expected a duration/,
    );
  });
});
