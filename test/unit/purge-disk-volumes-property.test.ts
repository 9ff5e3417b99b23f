import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KEEP_TAG, MARK_TAG, type Policy, type Volume, type VolumeUsage } from '../../functions/purge-disk-volumes/model.ts';
import { plan as planPurge } from '../../functions/purge-disk-volumes/plan.ts';

/**
 * Generated adversaries for the volume plan (issue 12, item 14): volume histories with attaches and detaches
 * since the mark, keep tags in every spelling, foreign and look-alike tags, and marks in every malformed form.
 * Property: no volume that was attached or detached since its mark, is not the fleet's, or carries keep is ever
 * planned for deletion. And the property is not vacuous: what is safe by every rule is planned (or waits on the
 * per-run limit), and the generator makes plenty of those.
 */

const NOW = new Date('2026-11-23T03:00:00.000Z');
const H = 3_600_000;
const D = 24 * H;
const ago = (ms: number): string => new Date(NOW.getTime() - ms).toISOString();
const FLEET_KEY = 'registry-fleet';

const arbMarkAge = fc.oneof(
  fc.integer({ min: -10 * H, max: 40 * D }),
  fc.integer({ min: 0, max: 30 * H }),
  fc.constantFrom(24 * H, 24 * H - 1, 89 * D, 89 * D + 1, 100 * D),
);
/** Almost-marks: what a person or another tool might write, and near-misses of the job's own form. */
const arbMalformed = fc.oneof(
  fc.constantFrom('1', 'keep 1', 'Dec 25', '2001', 'yesterday', '', ' ', 'true', 'NaN', '0', '-1', '1e12', 'null'),
  arbMarkAge
    .map((age) => {
      const iso = ago(age);
      return [
        iso.slice(0, 10),
        iso.replace('.000Z', 'Z').replace(/\.\d{3}Z$/, 'Z'),
        iso.replace('Z', '+00:00'),
        iso.replace('T', ' '),
        ` ${iso}`,
        `${iso} `,
        iso.toLowerCase(),
        `+00${iso}`,
        new Date(NOW.getTime() - age).toUTCString(),
        String(NOW.getTime() - age),
      ];
    })
    .chain((forms) => fc.constantFrom(...forms)),
  fc.constantFrom('2026-02-30T03:00:00.000Z', '2026-11-20T24:00:00.000Z', '2026-13-01T00:00:00.000Z', '2026-11-20T03:00:60.000Z'),
  fc.string({ maxLength: 30 }),
);
type MarkGen = { kind: 'none' } | { kind: 'valid'; age: number } | { kind: 'malformed'; value: string };
const arbMark: fc.Arbitrary<MarkGen> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 4, arbitrary: arbMarkAge.map((age) => ({ kind: 'valid' as const, age })) },
  { weight: 2, arbitrary: arbMalformed.map((value) => ({ kind: 'malformed' as const, value })) },
);
const arbKeep = fc.constantFrom(
  undefined,
  undefined,
  undefined,
  undefined,
  undefined,
  undefined,
  'true',
  'false',
  'FALSE',
  ' false ',
  'False',
  'yes',
  '',
  'no',
  '0',
);
const OWN: [string, string] = [FLEET_KEY, 'prod'];
const arbFleet = fc.constantFrom<[string, string] | undefined>(
  OWN,
  OWN,
  OWN,
  OWN,
  OWN,
  OWN,
  OWN,
  [FLEET_KEY, 'staging'],
  [FLEET_KEY, 'Prod'],
  ['Registry-Fleet', 'prod'],
  [FLEET_KEY, 'prod '],
  undefined,
);
const arbForeign = fc.dictionary(
  fc.constantFrom(
    'Name',
    'team',
    'registry-fleet:orphaned',
    'registry-fleet:orphaned-at ',
    'Registry-Fleet:Orphaned-At',
    'registry-fleet:keep ',
  ),
  fc.string({ maxLength: 8 }),
  { maxKeys: 3 },
);
/** Attach/detach events relative to the mark: before it, around it (seconds), after it. */
const arbEvent = fc.record({
  name: fc.constantFrom('AttachVolume', 'DetachVolume'),
  sinceMark: fc.oneof(fc.integer({ min: -5 * D, max: 40 * D }), fc.integer({ min: -120_000, max: 120_000 })),
  instanceId: fc.constantFrom('i-0123456789abcdef0', 'i-00000000000000002'),
});
type GenEvent = typeof arbEvent extends fc.Arbitrary<infer T> ? T : never;
/** How this run's CloudTrail lookup went: read from (before) the mark, read from too late, unreadable, not done. */
const arbLookup = fc.constantFrom('covering', 'covering', 'covering', 'covering', 'covering', 'covering', 'late', 'unreadable', 'missing');

const arbVolume = fc.record({
  fleet: arbFleet,
  keep: arbKeep,
  foreign: arbForeign,
  mark: arbMark,
  state: fc.constantFrom(
    'available',
    'available',
    'available',
    'available',
    'available',
    'available',
    'in-use',
    'creating',
    'deleting',
    'error',
  ),
  attached: fc.integer({ min: 0, max: 4 }).map((n) => (n === 0 ? ['i-0123456789abcdef0'] : [])),
  events: fc.oneof(fc.constant<GenEvent[]>([]), fc.array(arbEvent, { minLength: 1, maxLength: 3 })),
  lookup: arbLookup,
  sizeGiB: fc.integer({ min: 1, max: 1000 }),
});
type Gen = typeof arbVolume extends fc.Arbitrary<infer T> ? T : never;

const STRICT_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const markValue = (g: Gen): string | undefined =>
  g.mark.kind === 'none' ? undefined : g.mark.kind === 'valid' ? ago(g.mark.age) : g.mark.value;
/** The test's own reading of a mark: the exact form `Date#toISOString` writes, and a real instant. */
const markMs = (value: string | undefined): number | undefined => {
  if (value === undefined || !STRICT_ISO.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) && new Date(ms).toISOString() === value ? ms : undefined;
};

function toWorld(gens: Gen[]) {
  const volumes: Volume[] = [];
  const usage: Record<string, VolumeUsage> = {};
  const truth = new Map<string, { gen: Gen; eventTimes: number[]; mark: string | undefined }>();
  gens.forEach((g, i) => {
    const id = `vol-${String(i).padStart(8, '0')}`;
    const mark = markValue(g);
    // Events are placed relative to the mark (or to now − 10 d when there is no readable one).
    const anchor = markMs(mark) ?? NOW.getTime() - 10 * D;
    const events = g.events.map((e) => ({ ...e, at: Math.min(NOW.getTime(), anchor + e.sinceMark) }));
    const tags: Record<string, string> = { ...g.foreign };
    if (g.fleet) tags[g.fleet[0]] = g.fleet[1];
    if (g.keep !== undefined) tags[KEEP_TAG] = g.keep;
    if (mark !== undefined) tags[MARK_TAG] = mark;
    volumes.push({ id, state: g.state, sizeGiB: g.sizeGiB, volumeType: 'gp3', attachedTo: g.attached, tags });
    // What CloudTrail answers for [since, now]: exactly the events inside that window.
    const since = g.lookup === 'late' ? anchor + 3 * H : anchor - 5 * 60_000;
    if (g.lookup === 'covering' || g.lookup === 'late') {
      usage[id] = {
        kind: 'history',
        since: new Date(since).toISOString(),
        until: NOW.toISOString(),
        events: events
          .filter((e) => e.at >= since)
          .map((e) => ({ name: e.name, at: new Date(e.at).toISOString(), instanceId: e.instanceId })),
      };
    } else if (g.lookup === 'unreadable') usage[id] = { kind: 'unreadable', error: 'ThrottlingException: Rate exceeded' };
    truth.set(id, { gen: g, eventTimes: events.map((e) => e.at), mark });
  });
  return { volumes, usage, truth };
}

const policyWith = (graceMs: number, maxDeletes: number): Policy => ({
  fleetTag: { key: FLEET_KEY, value: 'prod' },
  volumeGraceMs: graceMs,
  cloudTrailLagMs: 20 * 60_000,
  snapshotBeforeDelete: false,
  maxVolumeDeletesPerRun: maxDeletes,
  asgName: 'prod-asg',
  diskUsedPercentThreshold: 85,
  pruneMaxLogMb: 100,
  maxPruneInstancesPerRun: 10,
});

describe('property: the volume plan never deletes a used, foreign or kept volume', () => {
  // 10 000 generated fleets take ~4 s here; the timeout is the bound (< 30 s), for a busy machine.
  it('holds for generated volume histories', { timeout: 30_000 }, () => {
    let deletes = 0;
    let heldBackByHistory = 0;
    let remarkedUnreadable = 0;
    fc.assert(
      fc.property(
        fc.array(arbVolume, { minLength: 1, maxLength: 12 }),
        fc.constantFrom(1 * H, 1 * H, 24 * H, 24 * H, 7 * D, 60 * D),
        fc.integer({ min: 1, max: 12 }),
        (gens, graceMs, maxDeletes) => {
          const { volumes, usage, truth } = toWorld(gens);
          const policy = policyWith(graceMs, maxDeletes);
          const plan = planPurge(
            { scope: { volumes: true, prune: false }, volumes, readings: {}, usage, attachedMetrics: {} },
            policy,
            NOW,
          );

          const planned = plan.actions.filter((a) => a.type === 'delete-volume');
          deletes += planned.length;
          expect(planned.length).toBeLessThanOrEqual(maxDeletes);
          for (const action of planned) {
            const { gen, eventTimes, mark } = truth.get(action.target)!;
            const ms = markMs(mark);
            expect(gen.fleet, action.target).toEqual([FLEET_KEY, 'prod']);
            expect(gen.keep === undefined || gen.keep.trim().toLowerCase() === 'false', `${action.target} keep=${gen.keep}`).toBe(true);
            expect(gen.state === 'available' && gen.attached.length === 0, action.target).toBe(true);
            expect(ms, `${action.target} mark ${JSON.stringify(mark)}`).toBeDefined();
            expect(NOW.getTime() - ms!).toBeGreaterThanOrEqual(graceMs);
            // The heart of it: not attached or detached at any time since the mark.
            expect(
              eventTimes.filter((t) => t >= ms!),
              action.target,
            ).toEqual([]);
            expect(action.type === 'delete-volume' && action.markedAt).toBe(mark);
          }

          // Not vacuous: every volume that is safe by every rule is planned, or waits on the per-run limit.
          const safe = [...truth].filter(([id, { gen, eventTimes, mark }]) => {
            const ms = markMs(mark);
            const u = usage[id];
            return (
              gen.fleet?.[0] === FLEET_KEY &&
              gen.fleet[1] === 'prod' &&
              (gen.keep === undefined || gen.keep.trim().toLowerCase() === 'false') &&
              gen.state === 'available' &&
              gen.attached.length === 0 &&
              ms !== undefined &&
              NOW.getTime() - ms >= graceMs &&
              NOW.getTime() - ms <= 89 * D &&
              u?.kind === 'history' &&
              Date.parse(u.since) <= ms - 60_000 &&
              eventTimes.every((t) => t < ms - 60_000)
            );
          });
          // (The per-run limit counts candidates considered, used or not, so over-limit ones may be unsafe too.)
          const overLimit = plan.skipped.filter((a) => a.type === 'delete-volume' && a.reason.startsWith('over the limit'));
          const reached = new Set([...planned, ...overLimit].map((a) => a.target));
          expect(safe.map(([id]) => id).filter((id) => !reached.has(id))).toEqual([]);
          heldBackByHistory += plan.actions.filter((a) => a.type === 'mark-volume' && a.reason.startsWith('used since its mark')).length;
          remarkedUnreadable += plan.actions.filter((a) => a.type === 'mark-volume' && a.reason.startsWith('unreadable mark')).length;
        },
      ),
      { numRuns: 10_000 },
    );
    expect(deletes).toBeGreaterThan(800);
    expect(heldBackByHistory).toBeGreaterThan(600);
    expect(remarkedUnreadable).toBeGreaterThan(600);
  });
});
