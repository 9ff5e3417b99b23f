// The handler end to end with mocked SDK clients: observe's calls and batching, apply's writes (and none in a
// dry run), idempotency, failures and the report. The fleet is the stateful model in test/support/fleet-sim.ts.
import {
  SetDesiredCapacityCommand,
  SetInstanceHealthCommand,
  TerminateInstanceInAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
} from '@aws-sdk/client-auto-scaling';
import { CreateTagsCommand, DeleteTagsCommand, DescribeInstanceStatusCommand } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { REPLACING_TAG, UNHEALTHY_SINCE_TAG } from '../../functions/replace-unhealthy-instances/model.ts';
import { JobFailedError, ValidationError } from '../../shared/errors.ts';
import { loadEvent } from '../support/events.ts';
import { FleetSim, type SimOptions } from '../support/fleet-sim.ts';

vi.hoisted(() => {
  process.env.ASG_NAME = 'registry';
  process.env.TARGET_GROUP_ARN = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/registry/6d0ecf831eec9f09';
  process.env.UNHEALTHY_CONFIRM = '2m';
});
const { run } = await import('../../functions/replace-unhealthy-instances/handler.ts');

const MIN = 60_000;
let sim: FleetSim;
let mocks: ReturnType<FleetSim['mock']>;
afterEach(() => mocks.restore());

function fleet(options: Partial<SimOptions> = {}): FleetSim {
  sim = new FleetSim({
    size: 4,
    start: Date.now(),
    maintenancePolicy: { MinHealthyPercentage: 100, MaxHealthyPercentage: 200 },
    ...options,
  });
  mocks = sim.mock();
  return sim;
}
/** Instance n is failing its target health check, and was marked unhealthy `markedAgoMs` ago (null: not marked). */
function breakInstance(n: number, markedAgoMs: number | null = 10 * MIN): string {
  const i = sim.instances[n]!;
  i.targetFault = () => true;
  if (markedAgoMs !== null) i.tags.set(UNHEALTHY_SINCE_TAG, new Date(Date.now() - markedAgoMs).toISOString());
  return i.id;
}

describe('replace-unhealthy-instances handler', () => {
  it('an alarm back in OK or INSUFFICIENT_DATA plans nothing, before any AWS call (why plan.ts has no alarm-state check)', async () => {
    fleet();
    breakInstance(1);
    const ok = loadEvent('alarm-action.json') as { alarmData: { state: { value: string } } };
    for (const value of ['OK', 'INSUFFICIENT_DATA']) {
      ok.alarmData.state.value = value;
      const report = await run(ok);
      expect(report.details).toMatchObject({ nothingToDo: expect.stringMatching(new RegExp(`is ${value}$`)) });
      expect(report.actions).toEqual([]);
    }
    expect(sim.totalCalls()).toBe(0);
  });

  it('replaces a confirmed unhealthy instance with SetInstanceHealth and reports it', async () => {
    fleet();
    const broken = breakInstance(1);
    const report = await run(loadEvent('schedule.json'));

    expect(mocks.asg).toHaveReceivedCommandTimes(SetInstanceHealthCommand, 1);
    expect(mocks.asg).toHaveReceivedCommandWith(SetInstanceHealthCommand, {
      InstanceId: broken,
      HealthStatus: 'Unhealthy',
      ShouldRespectGracePeriod: false,
    });
    expect(mocks.asg).not.toHaveReceivedCommand(SetDesiredCapacityCommand);
    expect(sim.instance(broken).asgHealth).toBe('Unhealthy');
    expect(report).toMatchObject({
      job: 'replace-unhealthy-instances',
      dryRun: false,
      observed: {
        group: 'registry',
        desired: 4,
        members: 4,
        inService: 4,
        healthy: 3,
        unhealthy: 1,
        byCause: { targetUnhealthy: 1, ec2Impaired: 0 },
        targets: { healthy: 3, unhealthy: 1 },
      },
      details: {
        path: 'set-instance-health',
        circuitOpen: false,
        unhealthyPercent: 25,
        maintenancePolicy: 'MinHealthyPercentage 100, MaxHealthyPercentage 200',
      },
      summary: { planned: 0, applied: 1, skipped: 0, failed: 0 },
    });
    expect(report.actions).toEqual([
      {
        type: 'set-instance-health',
        target: broken,
        reason: 'target-unhealthy; the maintenance policy launches the replacement before terminating',
        status: 'applied',
        detail: { causes: ['target-unhealthy'], path: 'set-instance-health' },
      },
    ]);

    // Idempotent: the next run (the replacement is launching) does nothing.
    const again = await run(loadEvent('alarm-action.json'));
    expect(mocks.asg).toHaveReceivedCommandTimes(SetInstanceHealthCommand, 1);
    expect(again.summary).toMatchObject({ applied: 0, skipped: 1 });
    expect(again.actions[0]?.reason).toMatch(/^in-flight: .*is marked Unhealthy/);
  });

  it('dry run: observes and plans, writes nothing, every action planned', async () => {
    fleet();
    breakInstance(1);
    breakInstance(2, null);
    const report = await run(loadEvent('replace-unhealthy-instances/manual-dry-run.json'));
    expect(mocks.asg).not.toHaveReceivedCommand(SetInstanceHealthCommand);
    expect(mocks.asg).not.toHaveReceivedCommand(SetDesiredCapacityCommand);
    expect(mocks.asg).not.toHaveReceivedCommand(TerminateInstanceInAutoScalingGroupCommand);
    expect(mocks.ec2).not.toHaveReceivedCommand(CreateTagsCommand);
    expect(sim.writes).toEqual([]);
    expect(report.dryRun).toBe(true);
    expect(report.actions.map((a) => `${a.type} ${a.status}`).sort()).toEqual(['mark-unhealthy planned', 'set-instance-health planned']);
  });

  it('first sighting marks the instance with a tag; the mark goes when it recovers', async () => {
    fleet();
    const flaky = breakInstance(3, null);
    const first = await run(loadEvent('alarm-action.json'));
    expect(first.actions.map((a) => `${a.type} ${a.status}`)).toEqual(['mark-unhealthy applied']);
    expect(mocks.ec2).toHaveReceivedCommandWith(CreateTagsCommand, {
      Resources: [flaky],
      Tags: [{ Key: UNHEALTHY_SINCE_TAG, Value: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) }],
    });
    expect(mocks.asg).not.toHaveReceivedCommand(SetInstanceHealthCommand);

    sim.instance(flaky).targetFault = () => false;
    const second = await run(loadEvent('schedule.json'));
    expect(second.actions.map((a) => `${a.type} ${a.status}`)).toEqual(['unmark applied']);
    expect(mocks.ec2).toHaveReceivedCommandWith(DeleteTagsCommand, { Resources: [flaky], Tags: [{ Key: UNHEALTHY_SINCE_TAG }] });
    expect(sim.instance(flaky).tags.size).toBe(0);
  });

  it('circuit open: zero writes, CircuitOpen in the report', async () => {
    fleet();
    for (const n of [0, 1, 2]) breakInstance(n, null);
    const report = await run(loadEvent('schedule.json'));
    expect(sim.writes).toEqual([]);
    expect(report.details).toMatchObject({ circuitOpen: true, unhealthyPercent: 75, guards: ['circuit-open'] });
    expect(report.summary).toEqual({ planned: 0, applied: 0, skipped: 3, failed: 0 });
  });

  it('manual force replaces only the named instance past the open breaker, and says so', async () => {
    fleet();
    const ids = [0, 1, 2].map((n) => breakInstance(n, null));
    const report = await run({ instanceIds: [ids[1]], force: true, reason: 'test' });
    expect(mocks.asg).toHaveReceivedCommandTimes(SetInstanceHealthCommand, 1);
    expect(mocks.asg).toHaveReceivedCommandWith(SetInstanceHealthCommand, { InstanceId: ids[1] });
    expect(report.details).toMatchObject({ circuitOpen: true, forced: [ids[1]] });
    expect(report.actions.find((a) => a.status === 'applied')).toMatchObject({
      target: ids[1],
      reason: expect.stringContaining('FORCED past the open circuit breaker'),
      detail: { forced: true },
    });
  });

  it('manual instanceIds naming a non-member: ValidationError naming it, nothing written', async () => {
    fleet();
    await expect(run(loadEvent('replace-unhealthy-instances/manual-instance-ids.json'))).rejects.toThrow(ValidationError);
    await expect(run(loadEvent('replace-unhealthy-instances/manual-instance-ids.json'))).rejects.toThrow(
      /i-0123456789abcdef0 is not a member of Auto Scaling group registry/,
    );
    expect(sim.writes).toEqual([]);
  });

  it('force without instanceIds fails before any AWS call', async () => {
    fleet();
    await expect(run({ force: true })).rejects.toThrow(/force: expected together with instanceIds/);
    expect(sim.totalCalls()).toBe(0);
  });

  it('an alarm back in OK makes no AWS call', async () => {
    fleet();
    breakInstance(1);
    const report = await run(loadEvent('alarm-state-change-ok.json'));
    expect(sim.totalCalls()).toBe(0);
    expect(report.details).toEqual({ nothingToDo: 'alarm registry-unhealthy-hosts is OK' });
  });

  it('observes 250 instances in batches of at most 100 ids and counts its calls', async () => {
    fleet({ size: 250 });
    const report = await run(loadEvent('schedule.json'));
    const statusCalls = mocks.ec2.commandCalls(DescribeInstanceStatusCommand);
    expect(statusCalls.map((c) => c.args[0].input.InstanceIds?.length)).toEqual([100, 100, 50]);
    expect(statusCalls.every((c) => c.args[0].input.IncludeAllInstances === true)).toBe(true);
    expect(report.observed).toMatchObject({
      members: 250,
      healthy: 250,
      apiCalls: {
        total: 10,
        'autoscaling:DescribeAutoScalingGroups': 1,
        'autoscaling:DescribeScalingActivities': 1,
        'autoscaling:DescribeInstanceRefreshes': 1,
        'elasticloadbalancing:DescribeTargetHealth': 1,
        'ec2:DescribeInstances': 3,
        'ec2:DescribeInstanceStatus': 3,
      },
    });
    expect(sim.totalCalls()).toBe(10);
  });

  it('retries DescribeInstanceStatus without an id EC2 does not know yet', async () => {
    fleet();
    const ghost = sim.instances[3]!.id;
    sim.unknownToStatus.add(ghost);
    const report = await run(loadEvent('schedule.json'));
    const calls = mocks.ec2.commandCalls(DescribeInstanceStatusCommand);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.args[0].input.InstanceIds).not.toContain(ghost);
    expect(report.observed).toMatchObject({ members: 4, healthy: 4 });
    expect(report.observed.apiCalls).toMatchObject({ 'ec2:DescribeInstanceStatus': 2 });
  });

  it('a missing group is an error naming ASG_NAME', async () => {
    fleet();
    mocks.asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
    await expect(run(loadEvent('schedule.json'))).rejects.toThrow('Auto Scaling group registry not found (ASG_NAME)');
  });

  describe('capacity-preserving path (no launch-before-terminate policy)', () => {
    // The handler runs on the wall clock, the model on its own: start the model a minute ahead so the instance a
    // raise launches is never stamped before the run's replacing tag (as in AWS, where the launch follows the tag).
    const ahead = { maintenancePolicy: undefined, start: Date.now() + MIN };

    it('tags, raises desired by one, later terminates with decrement; re-runs in between do nothing', async () => {
      fleet(ahead);
      const broken = breakInstance(2);
      const first = await run(loadEvent('schedule.json'));
      expect(first.actions.map((a) => `${a.type} ${a.status}`)).toEqual(['raise-desired applied']);
      expect(first.actions[0]?.detail).toMatchObject({ desiredFrom: 4, desiredTo: 5, path: 'launch-then-terminate', tag: REPLACING_TAG });
      expect(mocks.asg).toHaveReceivedCommandWith(SetDesiredCapacityCommand, {
        AutoScalingGroupName: 'registry',
        DesiredCapacity: 5,
        HonorCooldown: false,
      });
      expect(sim.instance(broken).tags.get(REPLACING_TAG)).toMatch(/^\d{4}-\d\d-\d\dT\S+Z desired-before=4$/);

      for (const event of ['alarm-action.json', 'schedule.json']) {
        const mid = await run(loadEvent(event));
        expect(mid.actions.filter((a) => a.status !== 'skipped')).toEqual([]);
      }
      expect(sim.writesOf('SetDesiredCapacity')).toHaveLength(1);

      sim.advance(2 * MIN); // the new instance boots and passes its first health check
      const last = await run(loadEvent('schedule.json'));
      expect(last.actions.map((a) => `${a.type} ${a.status}`)).toEqual(['terminate-replaced applied']);
      expect(mocks.asg).toHaveReceivedCommandWith(TerminateInstanceInAutoScalingGroupCommand, {
        InstanceId: broken,
        ShouldDecrementDesiredCapacity: true,
      });
      expect(sim.desired).toBe(4);
    });

    it('SetDesiredCapacity failing: no tag is written (raise first, tag after) and the run fails after reporting', async () => {
      fleet({ maintenancePolicy: undefined });
      const broken = breakInstance(2);
      mocks.asg.on(SetDesiredCapacityCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }));
      const error = await run(loadEvent('schedule.json')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(JobFailedError);
      expect((error as Error).message).toContain('SetDesiredCapacity: AccessDenied: not authorized; no tag written');
      expect(sim.instance(broken).tags.has(REPLACING_TAG)).toBe(false);
      expect(sim.desired).toBe(4);
    });

    it('the tag failing after the raise: the raise is taken back while exactly it is in effect, and no tag is left', async () => {
      fleet(ahead);
      const broken = breakInstance(2);
      mocks.ec2.on(CreateTagsCommand).rejects(Object.assign(new Error('not authorized'), { name: 'UnauthorizedOperation' }));
      const error = await run(loadEvent('schedule.json')).catch((e: unknown) => e);
      expect((error as Error).message).toContain(
        `CreateTags ${REPLACING_TAG}: UnauthorizedOperation: not authorized; raise undone, desired 5 → 4`,
      );
      expect(sim.instance(broken).tags.has(REPLACING_TAG)).toBe(false);
      expect(sim.writesOf('SetDesiredCapacity').map((w) => w.input.DesiredCapacity)).toEqual([5, 4]);
      expect(sim.desired).toBe(4);
      expect(mocks.asg).not.toHaveReceivedCommand(TerminateInstanceInAutoScalingGroupCommand);
    });

    it('terminating an instance that is already gone counts as done', async () => {
      fleet(ahead);
      const broken = breakInstance(2);
      await run(loadEvent('schedule.json'));
      sim.advance(2 * MIN);
      mocks.asg
        .on(TerminateInstanceInAutoScalingGroupCommand)
        .rejects(Object.assign(new Error(`Instance Id not found - No instance(s) found with id ${broken}`), { name: 'ValidationError' }));
      const report = await run(loadEvent('schedule.json'));
      expect(report.actions[0]).toMatchObject({
        type: 'terminate-replaced',
        status: 'skipped',
        reason: `${broken} is no longer there: nothing to do`,
      });
    });
  });
});
