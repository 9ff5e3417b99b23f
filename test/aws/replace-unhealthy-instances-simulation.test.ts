// Fleet simulation: the real job (observe → plan → apply through the SDK clients) against a stateful model of
// the Auto Scaling group, target group and EC2 in virtual time (test/support/fleet-sim.ts), over many runs.
import { afterEach, describe, expect, it } from 'vitest';
import { loadReplaceUnhealthyInstancesConfig } from '../../functions/replace-unhealthy-instances/config.ts';
import { job } from '../../functions/replace-unhealthy-instances/job.ts';
import { runJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { loadEvent } from '../support/events.ts';
import { ASG_NAME, FleetSim, FOLLOW_UP_ENV, TARGET_GROUP_ARN, type SimOptions } from '../support/fleet-sim.ts';

const MIN = 60_000;
const LAUNCH_FIRST = { MinHealthyPercentage: 100, MaxHealthyPercentage: 200 };
const schedule = loadEvent('schedule.json');
const alarm = loadEvent('alarm-action.json');

let restore: (() => void) | undefined;
afterEach(() => restore?.());

function setup(options: Partial<SimOptions> = {}, env: Record<string, string> = {}) {
  const sim = new FleetSim({ size: 4, maintenancePolicy: LAUNCH_FIRST, ...options });
  restore = sim.mock().restore;
  const config = loadReplaceUnhealthyInstancesConfig({ AWS_REGION: 'us-east-1', ASG_NAME, TARGET_GROUP_ARN, ...env });
  const reports: Report[] = [];
  const run = async (event: unknown): Promise<Report> => {
    const report = await runJob(job, config, event, {}, { clock: () => new Date(sim.now) });
    reports.push(report);
    return report;
  };
  /** Advance `totalMs`, running the schedule every 5 minutes and the alarm at the given offsets. */
  const play = async (totalMs: number, alarmsAt: (t: number) => boolean = () => false, stepMs = 5_000): Promise<void> => {
    const start = sim.now;
    for (let t = 0; t <= totalMs; t += stepMs) {
      if (t % (5 * MIN) === 0) await run(schedule);
      if (alarmsAt(t)) await run(alarm);
      for (const due of sim.takeDueSchedules()) await run(due.event); // the follow-ups Scheduler invokes now
      sim.advance(stepMs, stepMs);
    }
    expect(sim.now).toBe(start + totalMs + stepMs);
  };
  const replacements = () =>
    sim.writesOf('SetInstanceHealth').length +
    sim.writesOf('SetDesiredCapacity').filter((w) => (w.input.DesiredCapacity as number) > 4).length;
  return { sim, run, play, reports, replacements };
}

describe('fleet simulation', () => {
  it('a single failure is replaced once, launch before terminate, and capacity never drops below desired', async () => {
    const { sim, play, reports, replacements } = setup();
    const broken = sim.instances[1]!.id;
    const failedAt = sim.now + 30_000;
    sim.instance(broken).targetFault = (t) => t >= failedAt;
    await play(40 * MIN, (t) => t === 90_000); // the alarm fires once, ~1 min after the failure

    expect(replacements()).toBe(1);
    expect(sim.writesOf('SetInstanceHealth')[0]?.input).toEqual({
      InstanceId: broken,
      HealthStatus: 'Unhealthy',
      ShouldRespectGracePeriod: false,
    });
    expect(sim.terminated.map((x) => x.id)).toEqual([broken]);
    expect(sim.terminated.every((x) => !x.wasServing)).toBe(true);
    // Healthy capacity: the group never has fewer InService instances than desired, serving never below the 3 left after the failure.
    expect(Math.min(...sim.samples.map((s) => s.inService - s.desired))).toBeGreaterThanOrEqual(0);
    expect(Math.min(...sim.samples.filter((s) => s.t > failedAt).map((s) => s.serving))).toBe(3);
    expect(sim.samples.at(-1)).toMatchObject({ desired: 4, inService: 4, serving: 4 });
    expect(sim.instances.every((i) => i.tags.size === 0)).toBe(true);
    expect(reports.filter((r) => r.actions.some((a) => a.type === 'set-instance-health' && a.status === 'applied'))).toHaveLength(1);
    expect(reports.at(-1)?.observed).toMatchObject({ members: 4, healthy: 4, unhealthy: 0 });
  });

  it('a shared outage (all unhealthy for 30 minutes, staggered onset and recovery) causes zero replacements', async () => {
    const { sim, play, reports, replacements } = setup();
    const ids = sim.instances.map((i) => i.id);
    const begin = sim.now + 2 * MIN;
    // Each target flips 20 s after the previous one, going down and coming back: the realistic shape of S3 failing.
    sim.outage = (t, i) => {
      const k = ids.indexOf(i.id) * 20_000;
      return t >= begin + k && t < begin + 30 * MIN + k;
    };
    await play(45 * MIN, (t) => t >= 2 * MIN && t <= 33 * MIN && t % MIN === 0); // the alarm re-invoked every minute

    expect(replacements()).toBe(0);
    expect(sim.writesOf('TerminateInstanceInAutoScalingGroup')).toEqual([]);
    expect(sim.terminated).toEqual([]);
    const open = reports.filter((r) => r.details?.circuitOpen === true);
    expect(open.length).toBeGreaterThan(25);
    expect(open[0]?.actions.filter((a) => a.type === 'replace-instance').every((a) => a.reason.startsWith('circuit-open: '))).toBe(true);
    expect(sim.instances.map((i) => i.id)).toEqual(ids);
    // The onset was seen at 1 of 4 unhealthy (breaker closed): the first instance was only marked, and the
    // mark was cleared when the breaker opened a minute later.
    expect(sim.writesOf('CreateTags').length).toBeGreaterThan(0);
    expect(sim.instances.every((i) => i.tags.size === 0)).toBe(true);
    expect(sim.samples.at(-1)).toMatchObject({ desired: 4, inService: 4, serving: 4 });
  });

  it('the same outage WITHOUT confirmation (UNHEALTHY_CONFIRM=0) churns: why the confirmation exists', async () => {
    const { sim, play, replacements } = setup({}, { UNHEALTHY_CONFIRM: '0' });
    const ids = sim.instances.map((i) => i.id);
    const begin = sim.now + 2 * MIN;
    sim.outage = (t, i) => {
      const k = ids.indexOf(i.id) * 20_000;
      return t >= begin + k && t < begin + 30 * MIN + k;
    };
    await play(45 * MIN, (t) => t >= 2 * MIN && t <= 33 * MIN && t % MIN === 0);
    expect(replacements()).toBe(1); // the run at the onset saw 1 of 4 unhealthy and acted
  });

  it('a flapping instance inside its grace period is not replaced', async () => {
    const { sim, play, reports, replacements } = setup({ size: 4 });
    // A new instance joins (desired 4 → 5 by an operator) and flaps during its first minutes.
    sim.desired = 5;
    const fresh = sim.launch();
    const t0 = fresh.launchedAt;
    fresh.targetFault = (t) =>
      (t >= t0 + 95_000 && t < t0 + 150_000) || (t >= t0 + 200_000 && t < t0 + 240_000) || (t >= t0 + 270_000 && t < t0 + 290_000);
    await play(20 * MIN, (t) => t % 30_000 === 0 && t <= 5 * MIN);

    expect(replacements()).toBe(0);
    expect(sim.terminated).toEqual([]);
    const graceSkips = reports.flatMap((r) => r.actions).filter((a) => a.target === fresh.id && a.reason.startsWith('grace-period:'));
    expect(graceSkips.length).toBeGreaterThan(2);
    expect(sim.samples.at(-1)).toMatchObject({ desired: 5, inService: 5, serving: 5 });
  });

  it('10 alarm invocations in one minute cause one replacement (UNHEALTHY_CONFIRM=0: at once)', async () => {
    const { sim, play, reports, replacements } = setup({}, { UNHEALTHY_CONFIRM: '0' });
    const broken = sim.instances[2]!.id;
    const failedAt = sim.now + 30_000;
    sim.instance(broken).targetFault = (t) => t >= failedAt;
    const burst = (t: number) => t >= 60_000 && t < 120_000 && t % 6_000 === 0;
    await play(30 * MIN, burst, 1_000);

    const inBurst = reports.filter((r) => r.trigger.kind === 'alarm');
    expect(inBurst).toHaveLength(10);
    expect(replacements()).toBe(1);
    expect(inBurst[0]?.actions.map((a) => `${a.type} ${a.status}`)).toEqual(['set-instance-health applied']);
    for (const r of inBurst.slice(1))
      expect(r.actions.every((a) => a.status === 'skipped' && a.reason.startsWith('in-flight: '))).toBe(true);
    expect(sim.terminated.map((x) => x.id)).toEqual([broken]);
    expect(Math.min(...sim.samples.map((s) => s.inService - s.desired))).toBeGreaterThanOrEqual(0);
  });

  it('10 alarm invocations in one minute cause one replacement (default confirmation: marked, replaced by a later run)', async () => {
    const { sim, play, replacements } = setup();
    const broken = sim.instances[2]!.id;
    const failedAt = sim.now + 30_000; // after the first scheduled run: the first alarm run sees it first
    sim.instance(broken).targetFault = (t) => t >= failedAt;
    await play(30 * MIN, (t) => t >= 60_000 && t < 120_000 && t % 6_000 === 0, 1_000);

    expect(replacements()).toBe(1);
    expect(sim.writesOf('CreateTags')).toHaveLength(1); // marked once, by the first alarm run
    expect(sim.writesOf('SetInstanceHealth')[0]?.t).toBe(sim.writesOf('CreateTags')[0]!.t + 4 * MIN); // the 5-minute schedule confirms it
    expect(sim.terminated.map((x) => x.id)).toEqual([broken]);
  });

  it('without a launch-before-terminate policy: raise desired, then terminate with decrement once the new one serves', async () => {
    const { sim, play, reports, replacements } = setup({ maintenancePolicy: undefined }, { UNHEALTHY_CONFIRM: '0' });
    const broken = sim.instances[0]!.id;
    sim.instance(broken).targetFault = () => true;
    await play(30 * MIN, (t) => t % MIN === 0 && t <= 10 * MIN);

    expect(replacements()).toBe(1);
    expect(sim.writesOf('SetDesiredCapacity').map((w) => w.input.DesiredCapacity)).toEqual([5]);
    expect(sim.writesOf('TerminateInstanceInAutoScalingGroup').map((w) => w.input)).toEqual([
      { InstanceId: broken, ShouldDecrementDesiredCapacity: true },
    ]);
    expect(sim.terminated.map((x) => x.id)).toEqual([broken]);
    // Never fewer InService than the original desired 4, and the group ends at 4 serving.
    expect(Math.min(...sim.samples.map((s) => s.inService))).toBeGreaterThanOrEqual(4);
    expect(sim.samples.at(-1)).toMatchObject({ desired: 4, inService: 4, serving: 4 });
    const types = reports.flatMap((r) => r.actions.filter((a) => a.status === 'applied').map((a) => a.type));
    expect(types).toEqual(['raise-desired', 'terminate-replaced']);
    expect(reports.find((r) => r.actions.some((a) => a.type === 'raise-desired'))?.details?.path).toBe('launch-then-terminate');
  });

  it('without a launch-before-terminate policy and MAX_REPLACEMENTS_PER_RUN=2: one replacement at a time, healthy capacity never below the original desired', async () => {
    const { sim, play, reports } = setup(
      { size: 6, maintenancePolicy: undefined },
      { UNHEALTHY_CONFIRM: '0', MAX_REPLACEMENTS_PER_RUN: '2' },
    );
    const broken = [sim.instances[1]!.id, sim.instances[4]!.id];
    for (const id of broken) sim.instance(id).targetFault = () => true;
    await play(60 * MIN);

    // Each raise is 6 → 7 and is followed by its terminate (7 → 6) before the next one starts.
    expect(sim.writesOf('SetDesiredCapacity').map((w) => w.input.DesiredCapacity)).toEqual([7, 7]);
    expect(sim.writesOf('TerminateInstanceInAutoScalingGroup').map((w) => w.input)).toEqual(
      broken.map((InstanceId) => ({ InstanceId, ShouldDecrementDesiredCapacity: true })),
    );
    expect(sim.terminated.map((x) => x.id)).toEqual(broken);
    // InService never below the original desired 6; serving never below the 4 healthy at the start; ends whole.
    expect(Math.min(...sim.samples.map((s) => s.inService))).toBeGreaterThanOrEqual(6);
    expect(Math.min(...sim.samples.map((s) => s.desired))).toBe(6);
    expect(Math.min(...sim.samples.map((s) => s.serving))).toBeGreaterThanOrEqual(4);
    expect(sim.samples.at(-1)).toMatchObject({ desired: 6, inService: 6, serving: 6 });
    expect(sim.instances.every((i) => i.tags.size === 0)).toBe(true);
    const first = reports.find((r) => r.actions.some((a) => a.type === 'raise-desired'));
    expect(first?.actions.map((a) => `${a.type} ${a.status}`)).toEqual(['raise-desired applied', 'replace-instance skipped']);
    expect(first?.actions[1]?.reason).toMatch(
      /^replacement-in-progress: one replacement at a time without a launch-before-terminate policy/,
    );
    const types = reports.flatMap((r) => r.actions.filter((a) => a.status === 'applied').map((a) => a.type));
    expect(types).toEqual(['raise-desired', 'terminate-replaced', 'raise-desired', 'terminate-replaced']);
  });
});

describe('fleet simulation: a bad image (issue 12 item 12)', () => {
  it.each([
    ['confirmed by the sweep', {}],
    ['confirmed by follow-ups', FOLLOW_UP_ENV],
  ])(
    'every new instance fails its health check (%s): at most REPLACEMENT_BUDGET replacements per window, then it pages',
    async (_name, env) => {
      const { sim, play, reports } = setup({}, env);
      const original = new Set(sim.instances.map((i) => i.id));
      const broken = sim.instances[1]!.id;
      sim.instance(broken).targetFault = () => true;
      // The bad image: every instance launched from now on fails its health check once in service.
      const launch = sim.launch.bind(sim);
      sim.launch = () => {
        const i = launch();
        i.targetFault = () => true;
        return i;
      };
      await play(3 * 60 * MIN);

      const starts = sim.writesOf('SetInstanceHealth').map((w) => w.t);
      for (const t of starts) expect(starts.filter((s) => s > t - 60 * MIN && s <= t).length).toBeLessThanOrEqual(3);
      expect(starts.length).toBeLessThanOrEqual(9);
      expect(sim.instances.filter((i) => original.has(i.id))).toHaveLength(3);
      const exhausted = reports.filter((r) => r.actions.some((a) => a.reason.startsWith('replacement-budget-exhausted: ')));
      expect(exhausted.length).toBeGreaterThan(0);
      expect(exhausted.every((r) => r.details?.budget !== undefined && (r.details.budget as { exhausted: boolean }).exhausted)).toBe(true);
      expect(sim.schedules.size).toBeLessThanOrEqual(1); // at most the follow-up of the latest mark is pending
    },
  );
});

describe('fleet simulation: follow-ups (issue 18 item 1)', () => {
  const applied = (reports: Report[], type: string) =>
    reports.flatMap((r) => r.actions.filter((a) => a.type === type && a.status === 'applied'));

  it('the mark schedules one follow-up that replaces the instance when the window ends, not at the next tick, and is gone after', async () => {
    const { sim, play, reports, replacements } = setup({}, FOLLOW_UP_ENV);
    const broken = sim.instances[1]!.id;
    const failedAt = sim.now + 30_000;
    sim.instance(broken).targetFault = (t) => t >= failedAt;
    await play(30 * MIN, (t) => t === 90_000);

    expect(replacements()).toBe(1);
    const created = sim.writesOf('CreateSchedule');
    expect(created).toHaveLength(1);
    expect(created[0]?.input).toMatchObject({
      GroupName: FOLLOW_UP_ENV.FOLLOW_UP_GROUP,
      ScheduleExpression: 'at(2026-11-23T03:03:30)',
      ActionAfterCompletion: 'DELETE',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: expect.objectContaining({ Arn: FOLLOW_UP_ENV.FOLLOW_UP_TARGET_ARN, RoleArn: FOLLOW_UP_ENV.FOLLOW_UP_ROLE_ARN }),
    });
    const marked = sim.writesOf('CreateTags')[0]!.t;
    expect(sim.writesOf('SetInstanceHealth')[0]?.t).toBe(marked + 2 * MIN); // the follow-up, not the 5-minute tick
    const followUps = reports.filter((r) => r.trigger.kind === 'follow-up');
    expect(followUps).toHaveLength(1);
    expect(followUps[0]?.actions.map((a) => `${a.type} ${a.target} ${a.status}`)).toEqual([`set-instance-health ${broken} applied`]);
    expect(sim.fired).toHaveLength(1);
    expect(sim.schedules.size).toBe(0); // ActionAfterCompletion DELETE: nothing left behind
    expect(sim.terminated.map((x) => x.id)).toEqual([broken]);
    expect(Math.min(...sim.samples.map((s) => s.inService - s.desired))).toBeGreaterThanOrEqual(0);
  });

  it('a follow-up and a schedule tick arriving together act once', async () => {
    const { sim, play, reports, replacements } = setup({}, FOLLOW_UP_ENV);
    const broken = sim.instances[2]!.id;
    const failedAt = sim.now + 150_000;
    sim.instance(broken).targetFault = (t) => t >= failedAt;
    await play(20 * MIN, (t) => t === 3 * MIN); // marked at 3 min: the follow-up fires at 5 min, with the tick

    expect(replacements()).toBe(1);
    const atFive = reports.filter((r) => Date.parse(r.startedAt) === sim.samples[0]!.t - 5_000 + 5 * MIN);
    expect(atFive.map((r) => r.trigger.kind)).toEqual(['schedule', 'follow-up']);
    expect(applied(atFive, 'set-instance-health')).toHaveLength(1);
    expect(atFive[1]?.actions.map((a) => a.reason)).toEqual([expect.stringMatching(/^in-flight: .*is marked Unhealthy/)]);
    expect(sim.writesOf('CreateSchedule')).toHaveLength(1);
    expect(sim.schedules.size).toBe(0);
  });

  it('an instance that recovers before its follow-up: the follow-up is cancelled with the mark, or plans nothing and says so', async () => {
    const { sim, play, reports, replacements } = setup({}, FOLLOW_UP_ENV);
    const flaky = sim.instances[0]!.id;
    const from = sim.now + 30_000;
    sim.instance(flaky).targetFault = (t) => t >= from && t < from + 100_000;
    await play(15 * MIN, (t) => t === 90_000);
    expect(replacements()).toBe(0);
    expect(sim.writesOf('CreateSchedule')).toHaveLength(1);
    // The 5-minute tick came after the follow-up fired: the follow-up itself found the instance healthy.
    const followUps = reports.filter((r) => r.trigger.kind === 'follow-up');
    expect(followUps).toHaveLength(1);
    expect(followUps[0]?.actions).toEqual([]);
    expect(followUps[0]?.details?.nothingToDo).toMatch(new RegExp(`^follow-up for ${flaky} .*: healthy again`));
    expect(applied(reports, 'unmark').map((a) => a.target)).toEqual([flaky]);
    expect(sim.schedules.size).toBe(0);
    expect(sim.instances.every((i) => i.tags.size === 0)).toBe(true);

    // Recovered and unmarked by a sweep BEFORE the follow-up fires: the unmark deletes the pending schedule.
    const second = setup({}, FOLLOW_UP_ENV);
    const other = second.sim.instances[3]!.id;
    const at = second.sim.now + 4 * MIN;
    second.sim.instance(other).targetFault = (t) => t >= at && t < at + 50_000;
    await second.play(15 * MIN, (t) => t === 4 * MIN + 10_000);
    expect(second.sim.writesOf('CreateSchedule')).toHaveLength(1);
    expect(second.sim.writesOf('DeleteSchedule')).toHaveLength(1);
    expect(second.sim.fired).toEqual([]);
    expect(second.sim.schedules.size).toBe(0);
    expect(second.replacements()).toBe(0);
  });

  it('a shared outage with follow-ups still causes zero replacements', async () => {
    const { sim, play, replacements } = setup({}, FOLLOW_UP_ENV);
    const ids = sim.instances.map((i) => i.id);
    const begin = sim.now + 2 * MIN;
    sim.outage = (t, i) => {
      const k = ids.indexOf(i.id) * 20_000;
      return t >= begin + k && t < begin + 30 * MIN + k;
    };
    await play(45 * MIN, (t) => t >= 2 * MIN && t <= 33 * MIN && t % MIN === 0);
    expect(replacements()).toBe(0);
    expect(sim.terminated).toEqual([]);
    expect(sim.writesOf('CreateSchedule').length).toBeGreaterThan(0);
    expect(sim.schedules.size).toBe(0);
    expect(sim.samples.at(-1)).toMatchObject({ desired: 4, inService: 4, serving: 4 });
  });
});

describe('fleet simulation: a raise and its tag (issue 21 item 5)', () => {
  const isRaiseStep = (command: string, input: Record<string, unknown>): boolean =>
    command === 'SetDesiredCapacity' ||
    (command === 'CreateTags' && (input.Tags as { Key: string }[]).some((t) => t.Key === 'registry-fleet:replacing'));

  it('a run that dies between the raise and its tag, then an unrelated +1 scale-out: the group never shrinks below the scale-out', async () => {
    const { sim, run } = setup({ size: 4, maintenancePolicy: undefined }, { UNHEALTHY_CONFIRM: '0' });
    const broken = sim.instances[0]!.id;
    sim.instance(broken).targetFault = () => true;
    sim.crashAfter = isRaiseStep; // the run dies right after the first of the two writes
    await expect(run(schedule)).rejects.toThrow(/the run crashed/);
    sim.recover();

    // An unrelated scale-out (a scheduled action, an operator): one more than the group has now.
    sim.advance(2 * MIN);
    const scaledTo = sim.desired + 1;
    sim.desired = scaledTo;
    for (let t = 0; t < 60 * MIN; t += 5 * MIN) {
      sim.advance(5 * MIN);
      await run(schedule);
    }
    sim.advance(5 * MIN);
    // What the scale-out asked for stays: the job never decrements below it.
    expect(Math.min(...sim.samples.filter((x) => x.t > sim.now - 60 * MIN).map((x) => x.desired))).toBeGreaterThanOrEqual(scaledTo);
    expect(sim.desired).toBeGreaterThanOrEqual(scaledTo);
  });

  it('desired capacity is re-read right before the raise: a scale-out between observe and the write is not overwritten', async () => {
    const { sim, run, reports } = setup({ size: 4, maintenancePolicy: undefined }, { UNHEALTHY_CONFIRM: '0' });
    sim.instance(sim.instances[0]!.id).targetFault = () => true;
    // The scale-out lands after the job's observation and before its SetDesiredCapacity (during the budget ledger).
    sim.onCall = (op) => {
      if (op !== 'DescribeTags') return;
      sim.onCall = undefined;
      sim.desired += 1;
    };
    await run(schedule);
    expect(sim.desired).toBe(5); // the scale-out's 5, not overwritten by a raise to 4 + 1 = 5 from the stale 4
    expect(reports[0]!.actions.find((a) => a.type === 'raise-desired')).toMatchObject({ status: 'skipped' });
    for (let t = 0; t < 60 * MIN; t += 5 * MIN) {
      sim.advance(5 * MIN);
      await run(schedule);
    }
    expect(Math.min(...sim.samples.map((x) => x.desired))).toBeGreaterThanOrEqual(5);
    expect(sim.desired).toBe(5);
  });

  it('a run that dies between the two writes of an undo-raise, then an unrelated +1 scale-out: the scale-out is never taken back', async () => {
    const { sim, run } = setup({ size: 4, maintenancePolicy: undefined }, { UNHEALTHY_CONFIRM: '0' });
    // The job raised 4 → 5 for this instance, which is healthy again: the plan undoes the raise.
    const recovered = sim.instances[0]!;
    recovered.tags.set('registry-fleet:replacing', `${new Date(sim.now - 2 * MIN).toISOString()} desired-before=4`);
    sim.desired = 5;
    sim.advance(3 * MIN);
    sim.crashAfter = (command, input) =>
      command === 'SetDesiredCapacity' ||
      (command === 'DeleteTags' && (input.Tags as { Key: string }[]).some((t) => t.Key === 'registry-fleet:replacing'));
    await expect(run(schedule)).rejects.toThrow(/the run crashed/);
    sim.recover();

    // An unrelated scale-out, within REPLACEMENT_TIMEOUT of the tag: one more than the group has now.
    sim.advance(2 * MIN);
    const scaledTo = sim.desired + 1;
    sim.desired = scaledTo;
    for (let t = 0; t < 60 * MIN; t += 5 * MIN) {
      sim.advance(5 * MIN);
      await run(schedule);
    }
    expect(Math.min(...sim.samples.filter((x) => x.t > sim.now - 60 * MIN).map((x) => x.desired))).toBeGreaterThanOrEqual(scaledTo);
    expect(sim.desired).toBeGreaterThanOrEqual(scaledTo);
    expect(recovered.tags.has('registry-fleet:replacing')).toBe(false);
  });

  it('a tag whose raise is gone is removed at once: a later +1 scale-out never makes it look like the job raise', async () => {
    const { sim, run, reports } = setup(
      { size: 4, maintenancePolicy: undefined },
      { UNHEALTHY_CONFIRM: '0', MAX_REPLACEMENTS_PER_RUN: '1' },
    );
    // A tag that says the job raised 4 → 5, but desired is 4: the raise failed or was undone without the tag.
    const broken = sim.instances[0]!;
    broken.targetFault = () => true;
    broken.tags.set('registry-fleet:replacing', `${new Date(sim.now - 2 * MIN).toISOString()} desired-before=4`);
    sim.advance(3 * MIN);
    await run(schedule);
    expect(reports[0]!.actions.find((a) => a.target === broken.id && a.type === 'expire-replacing')).toMatchObject({ status: 'applied' });

    // An unrelated scale-out to 5 = the tag's desired-before + 1, before the job's own replacement runs.
    const scaledTo = sim.desired + 1;
    sim.desired = scaledTo;
    for (let t = 0; t < 60 * MIN; t += 5 * MIN) {
      sim.advance(5 * MIN);
      await run(schedule);
    }
    expect(Math.min(...sim.samples.filter((x) => x.t > sim.now - 60 * MIN).map((x) => x.desired))).toBeGreaterThanOrEqual(scaledTo);
    expect(sim.desired).toBeGreaterThanOrEqual(scaledTo);
  });

  it('desired capacity is re-read right before an undo-raise: a scale-out after the observation is not taken back', async () => {
    const { sim, run, reports } = setup({ size: 4, maintenancePolicy: undefined }, { UNHEALTHY_CONFIRM: '0' });
    // The job raised 4 → 5 for this instance, which is healthy again: the plan undoes the raise.
    const recovered = sim.instances[0]!;
    recovered.tags.set('registry-fleet:replacing', `${new Date(sim.now - 2 * MIN).toISOString()} desired-before=4`);
    sim.desired = 5;
    sim.advance(3 * MIN);
    // The scale-out lands after the group was read (the status checks are read last).
    sim.onCall = (op) => {
      if (op !== 'DescribeInstanceStatus') return;
      sim.onCall = undefined;
      sim.desired += 1;
    };
    await run(schedule);
    expect(reports[0]!.actions.find((a) => a.type === 'undo-raise')).toMatchObject({ status: 'skipped' });
    expect(sim.desired).toBe(6);
  });
});
