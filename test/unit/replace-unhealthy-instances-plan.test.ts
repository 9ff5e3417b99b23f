import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.ts';
import {
  followUpName,
  type Fleet,
  type Member,
  type ReplacePolicy,
  type Request,
} from '../../functions/replace-unhealthy-instances/model.ts';
import { summarizeReplacements } from '../../functions/replace-unhealthy-instances/job.ts';
import { ago, brief, fleet, HOUR, id, member, MIN, NOW, plan, schedule, sick } from '../support/replace-unhealthy-instances-fixtures.ts';

describe('planReplacements', () => {
  const cases: {
    name: string;
    fleet: Fleet;
    request?: Request;
    over?: Partial<ReplacePolicy>;
    actions: string[];
    skipped: string[];
    circuitOpen?: boolean;
  }[] = [
    { name: 'a healthy fleet: nothing', fleet: fleet([member(1), member(2), member(3)]), actions: [], skipped: [] },
    {
      name: 'one unhealthy target (confirmed): set its health, the maintenance policy launches first',
      fleet: fleet([member(1), sick(2), member(3), member(4)]),
      actions: [`set-instance-health ${id(2)}`],
      skipped: [],
    },
    {
      name: 'one impaired by EC2 status checks (target still healthy)',
      fleet: fleet([member(1), member(2, { instanceStatus: 'impaired', unhealthySince: ago(3 * MIN) }), member(3)]),
      actions: [`set-instance-health ${id(2)}`],
      skipped: [],
    },
    {
      name: 'system status impaired counts too',
      fleet: fleet([member(1), member(2, { systemStatus: 'impaired', unhealthySince: ago(3 * MIN) }), member(3)]),
      actions: [`set-instance-health ${id(2)}`],
      skipped: [],
    },
    {
      name: 'first sighting: mark it, replace on a later run (confirmation)',
      fleet: fleet([member(1), sick(2, { unhealthySince: undefined }), member(3)]),
      actions: [`mark-unhealthy ${id(2)}`],
      skipped: [],
    },
    {
      name: 'marked but not yet confirmed',
      fleet: fleet([member(1), sick(2, { unhealthySince: ago(MIN) }), member(3)]),
      actions: [],
      skipped: [`confirming ${id(2)}`],
    },
    {
      name: 'UNHEALTHY_CONFIRM=0 replaces at first sighting',
      fleet: fleet([member(1), sick(2, { unhealthySince: undefined }), member(3)]),
      over: { unhealthyConfirmMs: 0 },
      actions: [`set-instance-health ${id(2)}`],
      skipped: [],
    },
    {
      name: 'recovered: the mark is removed',
      fleet: fleet([member(1), member(2, { unhealthySince: ago(MIN) }), member(3)]),
      actions: [`unmark ${id(2)}`],
      skipped: [],
    },
    {
      name: 'all unhealthy: the breaker opens, zero replacements, marks cleared',
      fleet: fleet([sick(1), sick(2), sick(3, { unhealthySince: undefined })]),
      actions: [`unmark ${id(1)}`, `unmark ${id(2)}`],
      skipped: [`circuit-open ${id(1)}`, `circuit-open ${id(2)}`, `circuit-open ${id(3)}`],
      circuitOpen: true,
    },
    {
      name: 'exactly at the threshold (2 of 4 = 50%, max 50): closed, acts (one per run)',
      fleet: fleet([sick(1), sick(2, { unhealthySince: ago(20 * MIN) }), member(3), member(4)]),
      actions: [`set-instance-health ${id(2)}`],
      skipped: [`max-replacements-per-run ${id(1)}`],
      circuitOpen: false,
    },
    {
      name: 'just over the threshold (3 of 5 = 60%): open',
      fleet: fleet([sick(1), sick(2), sick(3), member(4), member(5)]),
      actions: [`unmark ${id(1)}`, `unmark ${id(2)}`, `unmark ${id(3)}`],
      skipped: [`circuit-open ${id(1)}`, `circuit-open ${id(2)}`, `circuit-open ${id(3)}`],
      circuitOpen: true,
    },
    {
      name: 'a single-instance fleet that is unhealthy is 100%, but one broken member is no shared outage: replaced (issue 12 item 11)',
      fleet: fleet([sick(1)]),
      actions: [`set-instance-health ${id(1)}`],
      skipped: [],
      circuitOpen: false,
    },
    {
      name: 'inside its grace period',
      fleet: fleet([member(1), sick(2, { launchTime: ago(4 * MIN), unhealthySince: undefined }), member(3)]),
      actions: [],
      skipped: [`grace-period ${id(2)}`],
    },
    {
      name: 'unknown launch time counts as brand new',
      fleet: fleet([member(1), sick(2, { launchTime: undefined }), member(3)]),
      actions: [],
      skipped: [`grace-period ${id(2)}`],
    },
    {
      name: 'target initial or draining is not unhealthy',
      fleet: fleet([
        member(1),
        member(2, { target: { state: 'initial', reason: 'Elb.RegistrationInProgress' } }),
        member(3, { target: { state: 'draining' } }),
        member(4, { target: undefined }),
      ]),
      actions: [],
      skipped: [],
    },
    {
      name: 'replacement already in flight: a Pending instance',
      fleet: fleet([member(1), sick(2), member(3), member(4, { lifecycle: 'Pending', launchTime: ago(MIN) })], { desired: 3 }),
      actions: [],
      skipped: [`in-flight ${id(2)}`],
    },
    {
      name: 'in flight: the group already marked one Unhealthy',
      fleet: fleet([member(1), sick(2, { asgHealth: 'Unhealthy' }), sick(3), member(4)]),
      actions: [],
      skipped: [`in-flight ${id(2)}`, `in-flight ${id(3)}`],
    },
    {
      name: 'in flight: a scaling activity in progress',
      fleet: fleet(
        [member(1), sick(2), member(3)],
        {},
        { activitiesInProgress: [{ id: 'a1', status: 'InProgress', description: 'Launching a new EC2 instance' }] },
      ),
      actions: [],
      skipped: [`in-flight ${id(2)}`],
    },
    {
      name: 'in flight: an instance refresh',
      fleet: fleet([member(1), sick(2), member(3)], {}, { instanceRefreshes: [{ id: 'r1', status: 'InProgress' }] }),
      actions: [],
      skipped: [`in-flight ${id(2)}`],
    },
    {
      name: 'suspended ReplaceUnhealthy',
      fleet: fleet([member(1), sick(2), member(3)], { suspendedProcesses: ['AZRebalance', 'ReplaceUnhealthy'] }),
      actions: [],
      skipped: [`process-suspended ${id(2)}`],
    },
    {
      name: 'suspended Terminate',
      fleet: fleet([member(1), sick(2), member(3)], { suspendedProcesses: ['Terminate'] }),
      actions: [],
      skipped: [`process-suspended ${id(2)}`],
    },
    {
      name: 'AZRebalance alone does not block',
      fleet: fleet([member(1), sick(2), member(3)], { suspendedProcesses: ['AZRebalance'] }),
      actions: [`set-instance-health ${id(2)}`],
      skipped: [],
    },
    {
      name: 'never a Standby instance',
      fleet: fleet([member(1), sick(2, { lifecycle: 'Standby' }), member(3)], { desired: 2 }),
      request: { kind: 'manual', instanceIds: [id(2)] },
      actions: [],
      skipped: [`not-in-service ${id(2)}`],
    },
    {
      name: 'no launch-before-terminate policy: raise desired by one (capacity-preserving path)',
      fleet: fleet([member(1), sick(2), member(3)], { maintenancePolicy: undefined }),
      actions: [`raise-desired ${id(2)}`],
      skipped: [],
    },
    {
      name: 'a policy that may terminate first (MinHealthyPercentage 90) takes the capacity-preserving path',
      fleet: fleet([member(1), sick(2), member(3)], { maintenancePolicy: { minHealthyPercentage: 90, maxHealthyPercentage: 120 } }),
      actions: [`raise-desired ${id(2)}`],
      skipped: [],
    },
    {
      name: 'capacity-preserving path at max: no headroom',
      fleet: fleet([member(1), sick(2), member(3)], { maintenancePolicy: undefined, max: 3 }),
      actions: [],
      skipped: [`no-headroom ${id(2)}`],
    },
    {
      name: 'capacity-preserving path, new instance still Pending: wait',
      fleet: fleet(
        [
          member(1),
          sick(2, { replacingSince: ago(MIN), desiredBeforeRaise: 3 }),
          member(3),
          member(4, { lifecycle: 'Pending', launchTime: ago(MIN), target: undefined }),
        ],
        { maintenancePolicy: undefined, desired: 4 },
      ),
      actions: [],
      skipped: [`replacement-in-progress ${id(2)}`],
    },
    {
      name: 'capacity-preserving path, new instance InService but its target is initial: wait',
      fleet: fleet(
        [
          member(1),
          sick(2, { replacingSince: ago(3 * MIN), desiredBeforeRaise: 3 }),
          member(3),
          member(4, { launchTime: ago(2 * MIN), target: { state: 'initial' } }),
        ],
        { maintenancePolicy: undefined, desired: 4 },
      ),
      actions: [],
      skipped: [`replacement-in-progress ${id(2)}`],
    },
    {
      name: 'capacity-preserving path, replacement serves: terminate the old one with decrement',
      fleet: fleet(
        [
          member(1),
          sick(2, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 4 }),
          member(3),
          member(4, { launchTime: ago(4 * MIN) }),
          sick(5),
        ],
        { maintenancePolicy: undefined, desired: 5 },
      ),
      actions: [`terminate-replaced ${id(2)}`],
      skipped: [`replacement-in-progress ${id(5)}`],
    },
    {
      name: 'capacity-preserving path, replacement never serves: stalled after REPLACEMENT_TIMEOUT, and the tag expires (issue 12 item 10)',
      fleet: fleet(
        [member(1), sick(2, { replacingSince: ago(40 * MIN), desiredBeforeRaise: 3 }), member(3), sick(4, { launchTime: ago(39 * MIN) })],
        { maintenancePolicy: undefined, desired: 4 },
      ),
      actions: [`expire-replacing ${id(2)}`],
      skipped: [`replacement-stalled ${id(2)}`, `replacement-in-progress ${id(4)}`],
    },
    {
      name: 'capacity-preserving path, MAX_REPLACEMENTS_PER_RUN 2: still one raise at a time (each raise is desired + 1)',
      fleet: fleet(
        [sick(1, { unhealthySince: ago(9 * MIN) }), sick(2, { unhealthySince: ago(5 * MIN) }), member(3), member(4), member(5), member(6)],
        { maintenancePolicy: undefined, max: 12 },
      ),
      over: { maxReplacementsPerRun: 2 },
      actions: [`raise-desired ${id(1)}`],
      skipped: [`replacement-in-progress ${id(2)}`],
    },
    {
      name: 'capacity-preserving path, tag left behind but desired never raised (SetDesiredCapacity and the untag failed): stalled, the tag expires, no terminate',
      fleet: fleet(
        [member(1), sick(2, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 3 }), member(3), member(4, { launchTime: ago(4 * MIN) })],
        { maintenancePolicy: undefined, desired: 3 },
      ),
      actions: [`expire-replacing ${id(2)}`],
      skipped: [`replacement-stalled ${id(2)}`],
    },
    {
      name: 'capacity-preserving path, a scale-in undid the raise: stalled, the tag expires, no terminate',
      fleet: fleet(
        [member(1), sick(2, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 4 }), member(3), member(4, { launchTime: ago(4 * MIN) })],
        { maintenancePolicy: undefined, desired: 4 },
      ),
      actions: [`expire-replacing ${id(2)}`],
      skipped: [`replacement-stalled ${id(2)}`],
    },
    {
      name: 'capacity-preserving path, raise in effect but no member launched after the tag: wait, no terminate',
      fleet: fleet(
        [member(1), sick(2, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 3 }), member(3), member(4, { launchTime: ago(6 * MIN) })],
        { maintenancePolicy: undefined, desired: 4 },
      ),
      actions: [],
      skipped: [`replacement-in-progress ${id(2)}`],
    },
    {
      name: 'capacity-preserving path, a tag that does not record the desired before the raise: stalled, no terminate',
      fleet: fleet([member(1), sick(2, { replacingSince: ago(5 * MIN) }), member(3), member(4, { launchTime: ago(4 * MIN) })], {
        maintenancePolicy: undefined,
        desired: 4,
      }),
      actions: [],
      skipped: [`replacement-stalled ${id(2)}`],
    },
    {
      name: 'capacity-preserving path, two tagged (an older run) and one replacement: one terminate per run, the fleet re-observed first',
      fleet: fleet(
        [
          sick(1, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 4 }),
          sick(2, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 4 }),
          member(3),
          member(4),
          member(5, { launchTime: ago(4 * MIN) }),
        ],
        { maintenancePolicy: undefined, desired: 5 },
      ),
      actions: [`terminate-replaced ${id(1)}`],
      skipped: [`replacement-in-progress ${id(2)}`],
    },
    {
      name: 'at most MAX_REPLACEMENTS_PER_RUN, oldest mark first',
      fleet: fleet([sick(1, { unhealthySince: ago(5 * MIN) }), sick(2, { unhealthySince: ago(9 * MIN) }), member(3), member(4), member(5)]),
      over: { maxReplacementsPerRun: 1 },
      actions: [`set-instance-health ${id(2)}`],
      skipped: [`max-replacements-per-run ${id(1)}`],
    },
    {
      name: 'the instance named by the alarm goes first',
      fleet: fleet([sick(1, { unhealthySince: ago(9 * MIN) }), sick(2, { unhealthySince: ago(5 * MIN) }), member(3), member(4), member(5)]),
      request: { kind: 'alarm', state: 'ALARM', instanceId: id(2) },
      actions: [`set-instance-health ${id(2)}`],
      skipped: [`max-replacements-per-run ${id(1)}`],
    },
    {
      name: 'an alarm naming a non-member: reported, the sweep still runs',
      fleet: fleet([member(1), sick(2), member(3)]),
      request: { kind: 'alarm', state: 'ALARM', instanceId: 'i-0fffffffffffffff0' },
      actions: [`set-instance-health ${id(2)}`],
      skipped: ['not-a-member i-0fffffffffffffff0'],
    },
    {
      name: 'manual instanceIds: replaces a named healthy-looking member, no confirmation needed; others are left',
      fleet: fleet([member(1), sick(2), member(3), member(4)]),
      request: { kind: 'manual', instanceIds: [id(3)] },
      actions: [`set-instance-health ${id(3)}`],
      skipped: [`not-named ${id(2)}`],
    },
    {
      name: 'manual instanceIds still respects the grace period',
      fleet: fleet([member(1), member(2, { launchTime: ago(MIN) }), member(3)]),
      request: { kind: 'manual', instanceIds: [id(2)] },
      actions: [],
      skipped: [`grace-period ${id(2)}`],
    },
    {
      name: 'manual instanceIds without force: the breaker still holds',
      fleet: fleet([sick(1), sick(2), sick(3), member(4)]),
      request: { kind: 'manual', instanceIds: [id(1)] },
      actions: [`unmark ${id(1)}`],
      skipped: [`circuit-open ${id(1)}`, `not-named ${id(2)}`, `not-named ${id(3)}`],
      circuitOpen: true,
    },
    {
      name: 'manual force: bypasses the open breaker for the named instance only',
      fleet: fleet([sick(1), sick(2), sick(3), member(4)]),
      request: { kind: 'manual', instanceIds: [id(1)], force: true },
      actions: [`set-instance-health ${id(1)}`],
      skipped: [`not-named ${id(2)}`, `not-named ${id(3)}`],
      circuitOpen: true,
    },
    {
      name: 'manual force does not bypass the in-flight guard',
      fleet: fleet([sick(1), sick(2), sick(3), member(4, { lifecycle: 'Pending' })], { desired: 4 }),
      request: { kind: 'manual', instanceIds: [id(1)], force: true },
      actions: [],
      skipped: [`in-flight ${id(1)}`, `not-named ${id(2)}`, `not-named ${id(3)}`].sort(),
      circuitOpen: true,
    },
  ];

  it.each(cases)('$name', ({ fleet: f, request, over, actions, skipped, circuitOpen }) => {
    const p = plan(f, request, over);
    const got = brief(p);
    expect(got.actions).toEqual(actions);
    expect([...got.skipped].sort()).toEqual([...skipped].sort());
    if (circuitOpen !== undefined) expect(p.assessment.circuitOpen).toBe(circuitOpen);
  });

  it('defines the unhealthy percent over InService members and reports the exact-threshold case as closed', () => {
    const p = plan(fleet([sick(1), sick(2), member(3), member(4), member(5, { lifecycle: 'Standby' })], { desired: 4 }));
    expect(p.assessment).toMatchObject({
      inService: 4,
      unhealthy: 2,
      healthy: 2,
      unhealthyPercent: 50,
      maxUnhealthyPercent: 50,
      circuitOpen: false,
    });
    const open = plan(fleet([sick(1), sick(2), member(3), member(4)]), schedule, { maxUnhealthyPercent: 49 });
    expect(open.assessment).toMatchObject({ unhealthyPercent: 50, circuitOpen: true, guards: ['circuit-open'] });
    expect(open.skipped[0]?.reason).toMatch(/^circuit-open: 2 of 4 InService instances unhealthy \(50% > 49%\)/);
  });

  it('counts unhealthy instances inside their grace period towards the breaker', () => {
    const p = plan(fleet([sick(1), sick(2, { launchTime: ago(MIN) }), sick(3, { launchTime: ago(MIN) }), member(4)]));
    expect(p.assessment).toMatchObject({ unhealthy: 3, circuitOpen: true });
    expect(p.actions.filter((a) => a.type === 'set-instance-health')).toEqual([]);
  });

  it('reports causes, the path and the action details', () => {
    const p = plan(fleet([member(1), sick(2, { instanceStatus: 'impaired' }), member(3)], { maintenancePolicy: undefined }));
    expect(p.assessment).toMatchObject({
      path: 'launch-then-terminate',
      maintenancePolicy: 'none',
      byCause: { targetUnhealthy: 1, ec2Impaired: 1 },
    });
    expect(p.assessment.candidates).toEqual([{ instanceId: id(2), causes: ['target-unhealthy', 'ec2-impaired'], ageSeconds: 86_400 }]);
    expect(p.actions[0]).toMatchObject({
      type: 'raise-desired',
      desiredFrom: 3,
      desiredTo: 4,
      markedAt: NOW.toISOString(),
      causes: ['target-unhealthy', 'ec2-impaired'],
    });
  });

  it('manual instanceIds naming a non-member: a clear error, nothing planned', () => {
    const f = fleet([member(1), member(2)]);
    expect(() => plan(f, { kind: 'manual', instanceIds: [id(1), 'i-0badbadbadbadbad0'] })).toThrow(ValidationError);
    expect(() => plan(f, { kind: 'manual', instanceIds: ['i-0badbadbadbadbad0'] })).toThrow(
      `invalid manual payload: instanceIds: i-0badbadbadbadbad0 is not a member of Auto Scaling group registry (members: ${id(1)}, ${id(2)})`,
    );
  });

  it('force without instanceIds is a validation error', () => {
    expect(() => plan(fleet([member(1)]), { kind: 'manual', force: true })).toThrow(/force: expected together with instanceIds/);
  });

  it('is idempotent: after set-instance-health the group marks the instance Unhealthy and the next plan waits', () => {
    const before = fleet([member(1), sick(2), member(3)]);
    expect(brief(plan(before)).actions).toEqual([`set-instance-health ${id(2)}`]);
    const after = fleet([member(1), sick(2, { asgHealth: 'Unhealthy' }), member(3)]);
    expect(plan(after).actions).toEqual([]);
  });

  it('capacity-preserving path: a terminate only while the raise is in effect, with a replacement launched after the tag', () => {
    const tagged = (over: Partial<Member> = {}) => sick(2, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 3, ...over });
    const fresh = member(4, { launchTime: ago(4 * MIN) });
    const happy = plan(fleet([member(1), tagged(), member(3), fresh], { maintenancePolicy: undefined, desired: 4 }));
    expect(happy.actions).toMatchObject([
      { type: 'terminate-replaced', target: id(2), reason: `replacement ${id(4)} serves; 3 others InService, desired 4 → 3` },
    ]);

    // The raise is gone: the tag is removed at once, so a later +1 scale-out can never look like this job's raise.
    const gone = plan(fleet([member(1), tagged(), member(3), fresh], { maintenancePolicy: undefined, desired: 3 }));
    expect(gone.actions).toMatchObject([{ type: 'expire-replacing', target: id(2) }]);
    expect(gone.skipped[0]?.reason).toMatch(
      /^replacement-stalled: desired capacity 3 is not above 3, the desired before the raise .*the raise is gone/,
    );
    expect(gone.assessment.stalled).toEqual([id(2)]);

    const old = plan(
      fleet([member(1), tagged(), member(3), member(4, { launchTime: ago(6 * MIN) })], { maintenancePolicy: undefined, desired: 4 }),
    );
    expect(old.actions).toEqual([]);
    expect(old.skipped[0]?.reason).toContain(`no member launched since ${ago(5 * MIN)} serves`);

    // Launched in the same second as the tag counts (EC2 launch times are to the second).
    const sameSecond = plan(
      fleet(
        [
          member(1),
          tagged({ replacingSince: '2026-11-23T02:55:00.700Z' }),
          member(3),
          member(4, { launchTime: '2026-11-23T02:55:00.000Z' }),
        ],
        { maintenancePolicy: undefined, desired: 4 },
      ),
    );
    expect(brief(sameSecond).actions).toEqual([`terminate-replaced ${id(2)}`]);

    // Two tagged by an older run, one raise: after the first terminate (desired 5 → 4) the second is stalled and its tag expires,
    // never a second decrement.
    const after = plan(
      fleet(
        [sick(2, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 4 }), member(3), member(4), member(5, { launchTime: ago(4 * MIN) })],
        { maintenancePolicy: undefined, desired: 4 },
      ),
    );
    expect(brief(after)).toEqual({ actions: [`expire-replacing ${id(2)}`], skipped: [`replacement-stalled ${id(2)}`] });
  });

  it('is idempotent on the capacity-preserving path: once tagged and raised, the next plan only waits', () => {
    const after = fleet([member(1), sick(2, { replacingSince: NOW.toISOString(), desiredBeforeRaise: 3 }), member(3)], {
      maintenancePolicy: undefined,
      desired: 4,
    });
    const p = plan(after);
    expect(p.actions).toEqual([]);
    expect(p.skipped.map((s) => s.guard)).toEqual(['replacement-in-progress']);
  });
});

describe('a leftover replacing tag (issue 12 item 10)', () => {
  const noPolicy = { maintenancePolicy: undefined };
  const tagged = (over: Partial<Member> = {}) => sick(2, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 3, ...over });
  const fresh = member(4, { launchTime: ago(4 * MIN) });

  it('an unrelated scale-out after the raise never leads to a terminate with decrement', () => {
    // The job set desired 3 → 4; something else scaled the group to 5 since; a member launched after the tag serves.
    const p = plan(fleet([member(1), tagged(), member(3), fresh, member(5, { launchTime: ago(3 * MIN) })], { ...noPolicy, desired: 5 }));
    expect(brief(p)).toEqual({ actions: [], skipped: [`replacement-stalled ${id(2)}`] });
    expect(p.skipped[0]?.reason).toMatch(/^replacement-stalled: desired capacity 5 is not the 4 this job set/);
  });

  it('a tagged instance that is healthy again is not terminated: the raise is undone instead', () => {
    const p = plan(
      fleet([member(1), member(2, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 3 }), member(3), fresh], { ...noPolicy, desired: 4 }),
    );
    expect(brief(p).actions).toEqual([`undo-raise ${id(2)}`]);
    expect(p.actions[0]).toMatchObject({ desiredFrom: 4, desiredTo: 3 });
    expect(p.actions.some((a) => a.type === 'terminate-replaced')).toBe(false);
  });

  it('a replacement an operator asked for (manual instanceIds, by=operator) goes ahead although the instance looks healthy', () => {
    const p = plan(
      fleet(
        [member(1), member(2, { replacingSince: ago(5 * MIN), desiredBeforeRaise: 3, replacementByOperator: true }), member(3), fresh],
        { ...noPolicy, desired: 4 },
      ),
    );
    expect(brief(p).actions).toEqual([`terminate-replaced ${id(2)}`]);
  });

  it('a 48 h old tag never acts: it is reported stalled and removed', () => {
    const p = plan(
      fleet([member(1), tagged({ replacingSince: ago(48 * HOUR) }), member(3), member(4, { launchTime: ago(47 * HOUR) })], {
        ...noPolicy,
        desired: 4,
      }),
    );
    expect(brief(p)).toEqual({ actions: [`expire-replacing ${id(2)}`], skipped: [`replacement-stalled ${id(2)}`] });
    expect(p.assessment.stalled).toEqual([id(2)]);
  });
});

describe('a single-instance fleet (issue 12 item 11)', () => {
  it('its only member, broken on its own, is replaced: one unhealthy member is no evidence of a shared outage', () => {
    const p = plan(fleet([sick(1)], { min: 1 }));
    expect(brief(p)).toEqual({ actions: [`set-instance-health ${id(1)}`], skipped: [] });
    expect(p.assessment.circuitOpen).toBe(false);
  });

  it('two of two unhealthy still open the breaker', () => {
    const p = plan(fleet([sick(1), sick(2)]));
    expect(p.assessment.circuitOpen).toBe(true);
    expect(p.actions.filter((a) => a.type === 'set-instance-health')).toEqual([]);
  });
});

describe('the replacement budget (issue 12 item 12)', () => {
  const budget = { replacementBudget: 3, replacementBudgetWindowMs: HOUR } as Partial<ReplacePolicy>;
  it('past the budget nothing new is replaced: replacement-budget-exhausted, metric ReplacementBudgetExhausted 1', () => {
    const spent = [ago(10 * MIN), ago(25 * MIN), ago(50 * MIN)];
    const f = fleet([member(1), sick(2), member(3)], { replacementLog: spent } as Partial<Fleet['group']>);
    const p = plan(f, schedule, budget);
    expect(brief(p)).toEqual({ actions: [], skipped: [`replacement-budget-exhausted ${id(2)}`] });
    expect(summarizeReplacements(f, p, []).metrics).toMatchObject({ ReplacementBudgetExhausted: 1 });
  });

  it('replacements older than the window do not count', () => {
    const f = fleet([member(1), sick(2), member(3)], { replacementLog: [ago(10 * MIN), ago(61 * MIN), ago(2 * HOUR)] } as Partial<
      Fleet['group']
    >);
    const p = plan(f, schedule, budget);
    expect(brief(p).actions).toEqual([`set-instance-health ${id(2)}`]);
    expect(summarizeReplacements(f, p, []).metrics).toMatchObject({ ReplacementBudgetExhausted: 0 });
  });
});

describe('follow-ups (issue 18 item 1)', () => {
  const on = { followUps: true } as Partial<ReplacePolicy>;
  const followUp = (n: number, markedAt?: string): Request => ({ kind: 'follow-up', instanceId: id(n), ...(markedAt ? { markedAt } : {}) });

  it('a mark schedules exactly one follow-up at markedAt + UNHEALTHY_CONFIRM (to the second)', () => {
    const p = plan(
      fleet([member(1), sick(2, { unhealthySince: undefined }), sick(3, { unhealthySince: undefined }), member(4), member(5)]),
      schedule,
      on,
    );
    expect(brief(p).actions).toEqual([
      `mark-unhealthy ${id(2)}`,
      `mark-unhealthy ${id(3)}`,
      `schedule-follow-up ${id(2)}`,
      `schedule-follow-up ${id(3)}`,
    ]);
    expect(p.actions[2]).toMatchObject({
      markedAt: NOW.toISOString(),
      at: '2026-11-23T03:02:00.000Z',
      followUp: `replace-follow-up-${id(2)}-20261123T030000Z`,
    });
    // Without FOLLOW_UP_* (or with UNHEALTHY_CONFIRM 0) nothing is scheduled: the sweep confirms.
    expect(brief(plan(fleet([member(1), sick(2, { unhealthySince: undefined }), member(3)]))).actions).toEqual([`mark-unhealthy ${id(2)}`]);
    expect(
      brief(plan(fleet([member(1), sick(2, { unhealthySince: undefined }), member(3)]), schedule, { ...on, unhealthyConfirmMs: 0 }))
        .actions,
    ).toEqual([`set-instance-health ${id(2)}`]);
  });

  it('a mark already in place schedules nothing again (a second sighting is not a second mark)', () => {
    const p = plan(fleet([member(1), sick(2, { unhealthySince: ago(MIN) }), member(3)]), schedule, on);
    expect(brief(p)).toEqual({ actions: [], skipped: [`confirming ${id(2)}`] });
  });

  it('a follow-up when the window ends replaces the confirmed instance, and only it', () => {
    const markedAt = ago(2 * MIN);
    const p = plan(
      fleet([member(1), sick(2, { unhealthySince: markedAt }), sick(3, { unhealthySince: undefined }), member(4), member(5)]),
      followUp(2, markedAt),
      on,
    );
    expect(brief(p)).toEqual({ actions: [`set-instance-health ${id(2)}`], skipped: [] });
    expect(p.assessment.followUp).toEqual({ instanceId: id(2), markedAt });
  });

  it.each([
    ['recovered', [member(1), member(2, { unhealthySince: ago(2 * MIN) }), member(3)], /healthy again at .*: nothing to do/],
    ['gone', [member(1), member(3)], /no longer a member of registry \(terminated or detached\): nothing to do/],
    ['unmarked by the breaker', [member(1), sick(2, { unhealthySince: undefined }), member(3)], /no longer marked/],
    ['marked again since', [member(1), sick(2, { unhealthySince: ago(MIN) }), member(3)], /marked again since/],
    [
      'already being replaced by the group',
      [member(1), sick(2, { unhealthySince: ago(2 * MIN), lifecycle: 'Terminating' }), member(3)],
      /is Terminating: the group is handling it/,
    ],
  ])('a follow-up for an instance that is %s plans nothing and says so', (_name, members, said) => {
    const p = plan(fleet(members), followUp(2, ago(2 * MIN)), on);
    expect(brief(p)).toEqual({ actions: [], skipped: [] });
    expect(p.assessment.nothingToDo).toMatch(said);
  });

  it('a follow-up and a schedule tick together act once: the second run finds the replacement in flight', () => {
    const markedAt = ago(2 * MIN);
    const first = plan(fleet([member(1), sick(2, { unhealthySince: markedAt }), member(3)]), followUp(2, markedAt), on);
    expect(brief(first).actions).toEqual([`set-instance-health ${id(2)}`]);
    const after = fleet([member(1), sick(2, { unhealthySince: markedAt, asgHealth: 'Unhealthy' }), member(3)]);
    expect(brief(plan(after, schedule, on))).toEqual({ actions: [], skipped: [`in-flight ${id(2)}`] });
    expect(brief(plan(after, followUp(2, markedAt), on))).toEqual({ actions: [], skipped: [`in-flight ${id(2)}`] });
  });

  it('a follow-up respects the circuit breaker and the budget', () => {
    const markedAt = ago(2 * MIN);
    const outage = plan(fleet([sick(1), sick(2, { unhealthySince: markedAt }), sick(3), member(4)]), followUp(2, markedAt), on);
    expect(brief(outage)).toEqual({ actions: [`unmark ${id(2)}`], skipped: [`circuit-open ${id(2)}`] });
    const spent = { replacementLog: [ago(5 * MIN), ago(15 * MIN), ago(30 * MIN)] } as Partial<Fleet['group']>;
    const broke = plan(fleet([member(1), sick(2, { unhealthySince: markedAt }), member(3)], spent), followUp(2, markedAt), on);
    expect(brief(broke)).toEqual({ actions: [], skipped: [`replacement-budget-exhausted ${id(2)}`] });
    expect(broke.assessment.budget).toMatchObject({ spent: 3, limit: 3, exhausted: true, nextAt: '2026-11-23T03:30:00.000Z' });
  });

  it('an unmark while the follow-up is still pending cancels it; a later unmark has nothing to cancel', () => {
    const young = plan(fleet([member(1), member(2, { unhealthySince: ago(MIN) }), member(3)]), schedule, on);
    expect(young.actions).toEqual([expect.objectContaining({ type: 'unmark', target: id(2), followUp: followUpName(id(2), ago(MIN)) })]);
    const old = plan(fleet([member(1), member(2, { unhealthySince: ago(3 * MIN) }), member(3)]), schedule, on);
    expect(old.actions[0]?.followUp).toBeUndefined();
  });
});
