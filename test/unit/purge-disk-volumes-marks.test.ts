import { describe, expect, it } from 'vitest';
import { MARK_TAG, type Policy, type State, type Volume } from '../../functions/purge-disk-volumes/model.ts';
import { plan as planPurge } from '../../functions/purge-disk-volumes/plan.ts';

/**
 * What the mark means (issue 12, items 5 and 6): only the exact ISO form the job writes is a mark, and a mark
 * counts only while the volume's attach history since then (CloudTrail) is read and empty.
 */

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
const vol = (id: string, mark: string | undefined): Volume => ({
  id,
  state: 'available',
  sizeGiB: 100,
  volumeType: 'gp3',
  attachedTo: [],
  tags: mark === undefined ? FLEET : { ...FLEET, [MARK_TAG]: mark },
});
/** CloudTrail read from well before any mark in these tests up to now: no attach, no detach. */
const quiet = { kind: 'history', since: ago(400 * H), until: now.toISOString(), events: [] } as const;

function planFor(volumes: Volume[], usage: State['usage'] = Object.fromEntries(volumes.map((v) => [v.id, quiet]))) {
  return planPurge({ scope: { volumes: true, prune: false }, volumes, readings: {}, usage, attachedMetrics: {} }, policy, now);
}
const typesOf = (p: ReturnType<typeof planFor>) => p.actions.map((a) => [a.type, a.target]);

describe('strict marks: only the form the job writes', () => {
  it('a mark the job wrote 30h ago (and a quiet history) → delete', () => {
    expect(typesOf(planFor([vol('vol-1', ago(30 * H))]))).toEqual([['delete-volume', 'vol-1']]);
  });

  it.each([
    '1',
    'keep 1',
    'Dec 25',
    '2001',
    '2026-11-20',
    '2026-11-20T03:00:00Z',
    '2026-11-20T03:00:00.000+00:00',
    '2026-11-20 03:00:00.000Z',
    ' 2026-11-20T03:00:00.000Z',
    '2026-11-20T03:00:00.000Z ',
    '2026-11-20t03:00:00.000z',
    '+002026-11-20T03:00:00.000Z',
    '2026-02-30T03:00:00.000Z',
    '2026-11-20T24:00:00.000Z',
    'Fri, 20 Nov 2026 03:00:00 GMT',
    '1763607600000',
    '',
  ])('mark %j is not a mark: marked again with the run time and reported, never deleted', (mark) => {
    const plan = planFor([vol('vol-1', mark)]);
    expect(plan.actions).toEqual([
      expect.objectContaining({
        type: 'mark-volume',
        target: 'vol-1',
        orphanedAt: now.toISOString(),
        reason: `unreadable mark ${JSON.stringify(mark)}: marked again`,
      }),
    ]);
  });
});

describe('a mark counts only if the volume was not used since', () => {
  const MARK = ago(30 * H);
  const history = (events: { name: string; at: string; instanceId?: string }[]) => ({
    kind: 'history' as const,
    since: ago(31 * H),
    until: now.toISOString(),
    events,
  });

  it('attached and detached since the mark → marked again (the grace starts over), never deleted', () => {
    const plan = planFor([vol('vol-1', MARK)], {
      'vol-1': history([
        { name: 'AttachVolume', at: ago(20 * H), instanceId: 'i-0123456789abcdef0' },
        { name: 'DetachVolume', at: ago(10 * H), instanceId: 'i-0123456789abcdef0' },
      ]),
    });
    expect(plan.actions).toEqual([
      expect.objectContaining({
        type: 'mark-volume',
        target: 'vol-1',
        orphanedAt: now.toISOString(),
        reason: `used since its mark ${MARK}: AttachVolume ${ago(20 * H)} (i-0123456789abcdef0), DetachVolume ${ago(10 * H)} (i-0123456789abcdef0): marked again`,
      }),
    ]);
  });

  it('an event up to a minute before the mark counts too (CloudTrail times are whole seconds, from AWS clocks)', () => {
    const plan = planFor([vol('vol-1', MARK)], {
      'vol-1': history([{ name: 'DetachVolume', at: new Date(Date.parse(MARK) - 30_000).toISOString() }]),
    });
    expect(typesOf(plan)).toEqual([['mark-volume', 'vol-1']]);
  });

  it('history not read (the lookup did not run) → not deleted, waits for the next run', () => {
    const plan = planFor([vol('vol-1', MARK)], {});
    expect(plan.actions).toEqual([]);
    expect(plan.skipped).toEqual([
      expect.objectContaining({
        type: 'delete-volume',
        target: 'vol-1',
        reason: 'attach history since the mark not read in this run: not deleted (next run)',
      }),
    ]);
  });

  it('history read from later than the mark does not cover it → not deleted', () => {
    const plan = planFor([vol('vol-1', MARK)], { 'vol-1': { ...history([]), since: ago(29 * H) } });
    expect(plan.actions).toEqual([]);
    expect(plan.skipped[0]?.reason).toBe(`attach history read from ${ago(29 * H)} only, not from the mark ${MARK}: not deleted (next run)`);
  });

  it('history unreadable → a refusal that fails the run after the report; nothing deleted', () => {
    const plan = planFor([vol('vol-1', MARK)], {
      'vol-1': { kind: 'unreadable', error: 'AccessDeniedException: not authorized to perform cloudtrail:LookupEvents' },
    });
    expect(plan.actions).toEqual([]);
    expect(plan.refusals).toEqual([
      {
        type: 'delete-volume',
        target: 'vol-1',
        reason:
          'attach history unreadable (CloudTrail LookupEvents: AccessDeniedException: not authorized to perform cloudtrail:LookupEvents): not deleted',
      },
    ]);
  });

  it('only the volume that was used is held back; a quiet one is deleted in the same run', () => {
    const plan = planFor([vol('vol-used', MARK), vol('vol-quiet', MARK)], {
      'vol-used': history([{ name: 'AttachVolume', at: ago(2 * H), instanceId: 'i-0123456789abcdef0' }]),
      'vol-quiet': history([]),
    });
    expect(typesOf(plan)).toEqual([
      ['mark-volume', 'vol-used'],
      ['delete-volume', 'vol-quiet'],
    ]);
  });
});
