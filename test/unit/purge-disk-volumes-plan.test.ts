import { describe, expect, it } from 'vitest';
import {
  KEEP_TAG,
  MARK_TAG,
  estimateMonthlyUsd,
  type DiskReading,
  type FleetInstance,
  type Policy,
  type Volume,
} from '../../functions/purge-disk-volumes/model.ts';
import { planPrunes, plan as planPurge, planVolumes as planVolumesWithHistory } from '../../functions/purge-disk-volumes/plan.ts';

const now = new Date('2026-11-23T03:00:00.000Z');
const H = 3_600_000;
const ago = (ms: number): string => new Date(now.getTime() - ms).toISOString();

const policy: Policy = {
  fleetTag: { key: 'registry-fleet', value: 'prod' },
  volumeGraceMs: 24 * H,
  cloudTrailLagMs: 20 * 60_000,
  snapshotBeforeDelete: false,
  maxVolumeDeletesPerRun: 10,
  asgName: 'prod-asg',
  diskUsedPercentThreshold: 85,
  pruneMaxLogMb: 100,
  maxPruneInstancesPerRun: 10,
};
const FLEET = { 'registry-fleet': 'prod' };

/** These tables are about the mark rules: every volume's CloudTrail history was read and is quiet (see -marks.test.ts), no AWS/EBS datapoint. */
const planVolumes = (volumes: readonly Volume[], scope: { volumeIds?: string[] }, p: Policy, at: Date) =>
  planVolumesWithHistory(
    volumes,
    scope,
    p,
    at,
    Object.fromEntries(
      volumes.map((v) => [v.id, { kind: 'history', since: '2000-01-01T00:00:00.000Z', until: at.toISOString(), events: [] }]),
    ),
    {},
  );

function vol(id: string, over: Partial<Volume> = {}): Volume {
  return { id, state: 'available', sizeGiB: 100, volumeType: 'gp3', attachedTo: [], tags: FLEET, ...over };
}

/** [type, target, reason-substring] for every action and skip, for compact table assertions. */
function summary(plan: ReturnType<typeof planVolumes>) {
  return {
    actions: plan.actions.map((a) => [a.type, a.target]),
    skipped: plan.skipped.map((a) => [a.target, a.reason]),
  };
}

describe('planVolumes: mark → wait → delete, unmark, never', () => {
  it.each<[string, Volume, { actions: string[][]; skipped: string[] }]>([
    ['fresh orphan → mark', vol('vol-1'), { actions: [['mark-volume', 'vol-1']], skipped: [] }],
    [
      'marked 1h ago (< grace) → wait',
      vol('vol-1', { tags: { ...FLEET, [MARK_TAG]: ago(1 * H) } }),
      { actions: [], skipped: ['marked orphaned 1h ago, grace 24h: deletable after 2026-11-24T02:00:00.000Z'] },
    ],
    [
      'marked 24h ago (= grace) → delete',
      vol('vol-1', { tags: { ...FLEET, [MARK_TAG]: ago(24 * H) } }),
      { actions: [['delete-volume', 'vol-1']], skipped: [] },
    ],
    [
      'marked 30h ago (> grace) → delete',
      vol('vol-1', { tags: { ...FLEET, [MARK_TAG]: ago(30 * H) } }),
      { actions: [['delete-volume', 'vol-1']], skipped: [] },
    ],
    [
      'marked, re-attached → unmark',
      vol('vol-1', { state: 'in-use', attachedTo: ['i-1'], tags: { ...FLEET, [MARK_TAG]: ago(30 * H) } }),
      { actions: [['unmark-volume', 'vol-1']], skipped: [] },
    ],
    ['in-use, unmarked → nothing', vol('vol-1', { state: 'in-use', attachedTo: ['i-1'] }), { actions: [], skipped: [] }],
    [
      'attaching (available but has an attachment) → never deleted',
      vol('vol-1', { attachedTo: ['i-1'], tags: { ...FLEET, [MARK_TAG]: ago(30 * H) } }),
      { actions: [['unmark-volume', 'vol-1']], skipped: [] },
    ],
    [
      'no fleet tag → never',
      vol('vol-1', { tags: { [MARK_TAG]: ago(30 * H) } }),
      { actions: [], skipped: ['no fleet tag registry-fleet=prod: never touched'] },
    ],
    [
      'other fleet value → never',
      vol('vol-1', { tags: { 'registry-fleet': 'staging' } }),
      { actions: [], skipped: ['no fleet tag registry-fleet=prod: never touched'] },
    ],
    [
      'keep tag → never (even marked long ago)',
      vol('vol-1', { tags: { ...FLEET, [KEEP_TAG]: 'true', [MARK_TAG]: ago(300 * H) } }),
      { actions: [], skipped: [`tagged ${KEEP_TAG}=true: never touched`] },
    ],
    [
      'keep tag with any value but false → never',
      vol('vol-1', { tags: { ...FLEET, [KEEP_TAG]: 'yes' } }),
      { actions: [], skipped: [`tagged ${KEEP_TAG}=yes: never touched`] },
    ],
    [
      'keep=false → handled as usual',
      vol('vol-1', { tags: { ...FLEET, [KEEP_TAG]: 'false' } }),
      { actions: [['mark-volume', 'vol-1']], skipped: [] },
    ],
    [
      'creating → skipped',
      vol('vol-1', { state: 'creating' }),
      { actions: [], skipped: ['state creating: only available volumes are cleaned up'] },
    ],
    [
      'unreadable mark → marked again',
      vol('vol-1', { tags: { ...FLEET, [MARK_TAG]: 'yesterday' } }),
      { actions: [['mark-volume', 'vol-1']], skipped: [] },
    ],
    [
      'mark in the future (clock skew) → wait',
      vol('vol-1', { tags: { ...FLEET, [MARK_TAG]: ago(-2 * H) } }),
      { actions: [], skipped: ['marked orphaned 0s ago, grace 24h: deletable after 2026-11-24T05:00:00.000Z'] },
    ],
  ])('%s', (_name, volume, expected) => {
    const s = summary(planVolumes([volume], {}, policy, now));
    expect(s.actions).toEqual(expected.actions);
    expect(s.skipped.map(([, reason]) => reason)).toEqual(expected.skipped);
  });

  it('a mark carries the run time; a delete carries the mark it saw, the size and an estimated saving', () => {
    const plan = planVolumes(
      [vol('vol-new', { sizeGiB: 8 }), vol('vol-old', { sizeGiB: 500, volumeType: 'gp2', tags: { ...FLEET, [MARK_TAG]: ago(48 * H) } })],
      {},
      { ...policy, snapshotBeforeDelete: true },
      now,
    );
    expect(plan.actions).toEqual([
      {
        type: 'mark-volume',
        target: 'vol-new',
        reason: 'available (attached to nothing): marked orphaned',
        orphanedAt: now.toISOString(),
        sizeGiB: 8,
        volumeType: 'gp3',
      },
      {
        type: 'delete-volume',
        target: 'vol-old',
        reason: 'available and marked orphaned 48h ago (grace 24h)',
        markedAt: ago(48 * H),
        snapshot: true,
        sizeGiB: 500,
        volumeType: 'gp2',
        estMonthlyUsd: 50,
      },
    ]);
  });

  it('bounds deletes per run, oldest marks first; the rest wait for the next run', () => {
    const volumes = [5, 50, 30, 40, 26].map((h, i) => vol(`vol-${i}`, { tags: { ...FLEET, [MARK_TAG]: ago(h * H) } }));
    const plan = planVolumes(volumes, {}, { ...policy, maxVolumeDeletesPerRun: 2 }, now);
    expect(plan.actions.map((a) => a.target)).toEqual(['vol-1', 'vol-3']);
    expect(summary(plan).skipped).toEqual([
      ['vol-0', 'marked orphaned 5h ago, grace 24h: deletable after 2026-11-23T22:00:00.000Z'],
      ['vol-2', 'over the limit of 2 deletes per run: next run'],
      ['vol-4', 'over the limit of 2 deletes per run: next run'],
    ]);
  });

  it('names volumes from the payload that were not found', () => {
    const plan = planVolumes([vol('vol-a')], { volumeIds: ['vol-a', 'vol-missing'] }, policy, now);
    expect(summary(plan)).toEqual({
      actions: [['mark-volume', 'vol-a']],
      skipped: [['vol-missing', 'named in the payload but not found']],
    });
  });

  it('a mixed table: only the orphaned fleet volumes move', () => {
    const plan = planVolumes(
      [
        vol('vol-orphan'),
        vol('vol-ripe', { tags: { ...FLEET, [MARK_TAG]: ago(25 * H) } }),
        vol('vol-root', { state: 'in-use', attachedTo: ['i-1'] }),
        vol('vol-back', { state: 'in-use', attachedTo: ['i-2'], tags: { ...FLEET, [MARK_TAG]: ago(2 * H) } }),
        vol('vol-foreign', { tags: {} }),
        vol('vol-kept', { tags: { ...FLEET, [KEEP_TAG]: 'true' } }),
      ],
      {},
      policy,
      now,
    );
    expect(summary(plan).actions).toEqual([
      ['mark-volume', 'vol-orphan'],
      ['unmark-volume', 'vol-back'],
      ['delete-volume', 'vol-ripe'],
    ]);
    expect(summary(plan).skipped.map(([id]) => id)).toEqual(['vol-foreign', 'vol-kept']);
  });
});

describe('estimateMonthlyUsd', () => {
  it.each([
    [100, 'gp3', 8],
    [100, 'gp2', 10],
    [1000, 'sc1', 15],
    [500, 'st1', 22.5],
    [10, 'io1', 1.25],
    [100, 'something-new', 8],
  ])('%i GiB %s → $%d', (size, type, usd) => {
    expect(estimateMonthlyUsd(size, type)).toBe(usd);
  });
});

describe('planPrunes: disk readings', () => {
  const instances: FleetInstance[] = [
    { id: 'i-full', lifecycleState: 'InService' },
    { id: 'i-edge', lifecycleState: 'InService' },
    { id: 'i-ok', lifecycleState: 'InService' },
    { id: 'i-blind', lifecycleState: 'InService' },
    { id: 'i-pending', lifecycleState: 'Pending' },
    { id: 'i-fuller', lifecycleState: 'InService' },
  ];
  const reading = (usedPercent: number): DiskReading => ({ usedPercent, at: ago(60_000) });
  const readings = {
    'i-full': reading(91.26),
    'i-edge': reading(85),
    'i-ok': reading(84.9),
    'i-pending': reading(99),
    'i-fuller': reading(97),
  };

  it('prunes InService instances at or over the threshold, fullest first; says which have no reading', () => {
    const plan = planPrunes(instances, readings, {}, policy);
    expect(plan.actions).toEqual([
      { type: 'prune-instance', target: 'i-fuller', reason: 'disk 97% used ≥ threshold 85%', usedPercent: 97, maxLogMb: 100 },
      { type: 'prune-instance', target: 'i-full', reason: 'disk 91.3% used ≥ threshold 85%', usedPercent: 91.26, maxLogMb: 100 },
      { type: 'prune-instance', target: 'i-edge', reason: 'disk 85% used ≥ threshold 85%', usedPercent: 85, maxLogMb: 100 },
    ]);
    expect(plan.skipped.map((a) => [a.target, a.reason])).toEqual([['i-blind', 'no disk_used_percent datapoint in the last 15m']]);
  });

  it.each([
    [50, ['i-fuller', 'i-full', 'i-edge', 'i-ok']],
    [95, ['i-fuller']],
    [99, []],
  ])('threshold %i%%', (threshold, expected) => {
    expect(planPrunes(instances, readings, {}, { ...policy, diskUsedPercentThreshold: threshold }).actions.map((a) => a.target)).toEqual(
      expected,
    );
  });

  it('bounds prune commands per run', () => {
    const plan = planPrunes(instances, readings, {}, { ...policy, maxPruneInstancesPerRun: 1 });
    expect(plan.actions.map((a) => a.target)).toEqual(['i-fuller']);
    expect(plan.skipped.filter((a) => a.reason.startsWith('over the limit')).map((a) => a.target)).toEqual(['i-full', 'i-edge']);
  });

  it('named instances are pruned whatever their reading, only if InService members of the group', () => {
    const plan = planPrunes(
      instances,
      readings,
      { named: { ids: ['i-ok', 'i-blind', 'i-pending'], source: 'the manual payload' } },
      policy,
    );
    expect(plan.actions.map((a) => [a.target, a.reason])).toEqual([
      ['i-ok', 'named by the manual payload (disk 84.9% used)'],
      ['i-blind', 'named by the manual payload'],
    ]);
    expect(plan.skipped.map((a) => [a.target, a.reason])).toEqual([
      ['i-pending', 'named by the manual payload but Pending, not InService'],
    ]);
    // An alarm may outlive its instance: skipped. A stranger in the payload is bad input (issue 12, item 9): an error.
    const byAlarm = planPrunes(instances, readings, { named: { ids: ['i-stranger'], source: 'alarm disk-full' } }, policy);
    expect(byAlarm.skipped.map((a) => [a.target, a.reason])).toEqual([
      ['i-stranger', 'named by alarm disk-full but not an instance of prod-asg: never pruned'],
    ]);
    expect(() => planPrunes(instances, readings, { named: { ids: ['i-ok', 'i-stranger'], source: 'the manual payload' } }, policy)).toThrow(
      'invalid manual payload: instanceIds: i-stranger is not a member of Auto Scaling group prod-asg (members: i-full, i-edge, i-ok, i-blind, i-pending, i-fuller)',
    );
  });
});

describe('planPurge', () => {
  it('looks only at what the scope observed', () => {
    const onlyDisks = planPurge(
      {
        scope: { volumes: false, prune: true },
        instances: [{ id: 'i-1', lifecycleState: 'InService' }],
        readings: { 'i-1': { usedPercent: 90, at: now.toISOString() } },
      },
      policy,
      now,
    );
    expect(onlyDisks.actions.map((a) => a.type)).toEqual(['prune-instance']);
    const onlyVolumes = planPurge({ scope: { volumes: true, prune: false }, volumes: [vol('vol-1')], readings: {} }, policy, now);
    expect(onlyVolumes.actions.map((a) => a.type)).toEqual(['mark-volume']);
  });
});
