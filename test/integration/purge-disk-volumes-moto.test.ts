// purge-disk-volumes against moto_server: real EC2 volume, tag, snapshot and delete semantics (as moto emulates
// them). Runs are driven through createJob with an injected clock, so "25 hours later" needs no waiting.
// moto runs no SSM commands: the prune path's results are covered in test/aws with aws-sdk-client-mock.
import { AutoScalingClient, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import {
  AttachVolumeCommand,
  CreateLaunchTemplateCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DescribeImagesCommand,
  DetachVolumeCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
  RunInstancesCommand,
  type Tag,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadPurgeDiskVolumesConfig } from '../../functions/purge-disk-volumes/config.ts';
import { job } from '../../functions/purge-disk-volumes/job.ts';
import { MARK_TAG } from '../../functions/purge-disk-volumes/model.ts';
import { createJob } from '../../shared/job.ts';
import { testContext } from '../support/run-context.ts';
import { toTrigger } from '../../shared/triggers.ts';
import { startMoto, type Moto } from '../../local/moto.ts';
import { startCloudTrailStandIn, type CloudTrailStandIn } from '../../local/cloudtrail.ts';

const T0 = new Date('2026-11-23T03:00:00.000Z');
const H = 3_600_000;
const FLEET: Tag = { Key: 'registry-fleet', Value: 'it-stack' };
const ENV = {
  AWS_REGION: 'us-east-1',
  FLEET_TAG_VALUE: 'it-stack',
  ASG_NAME: 'it-asg',
  PRUNE_DOCUMENT_NAME: 'it-prune',
  PRUNE_WAIT: '1s',
  PRUNE_POLL_INTERVAL: '100ms',
};

let moto: Moto;
/** moto has no CloudTrail event history: the stand-in records the attaches the test's EC2 client makes through it. */
let trail: CloudTrailStandIn;
/** The scenario's time, which the stand-in stamps on the events it records (the runs' clocks are injected too). */
let scenarioNow = T0;
let ec2: EC2Client;
let imageId: string;

const at = (date: Date, env: Record<string, string> = {}) =>
  createJob(job, loadPurgeDiskVolumesConfig({ ...ENV, ...env }), { clock: () => date }).run;

beforeAll(async () => {
  moto = await startMoto();
  // The job's clients are created lazily on first use, from the SDK's own environment variables.
  Object.assign(process.env, moto.env);
  trail = await startCloudTrailStandIn({ upstream: moto.endpoint, clock: () => scenarioNow });
  process.env.AWS_ENDPOINT_URL_CLOUDTRAIL = trail.endpoint;
  ec2 = new EC2Client({ endpoint: trail.endpoint, region: 'us-east-1' });
  // moto's built-in AMIs are the same after every reset: look one up once.
  const images = await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'], MaxResults: 5 }));
  imageId = images.Images?.[0]?.ImageId ?? 'ami-12c6146b';
});
afterAll(async () => {
  ec2?.destroy();
  await trail?.stop();
  await moto?.stop();
});
beforeEach(async () => {
  await moto.reset();
  trail.reset();
  scenarioNow = T0;
});

async function instance(): Promise<string> {
  const res = await ec2.send(
    new RunInstancesCommand({
      ImageId: imageId,
      MinCount: 1,
      MaxCount: 1,
      InstanceType: 't3.small',
      Placement: { AvailabilityZone: 'us-east-1a' },
    }),
  );
  return res.Instances![0]!.InstanceId!;
}

async function volume(sizeGiB: number, tags: Tag[]): Promise<string> {
  const res = await ec2.send(
    new CreateVolumeCommand({
      AvailabilityZone: 'us-east-1a',
      Size: sizeGiB,
      VolumeType: 'gp3',
      ...(tags.length > 0 ? { TagSpecifications: [{ ResourceType: 'volume', Tags: tags }] } : {}),
    }),
  );
  return res.VolumeId!;
}

async function attach(volumeId: string, instanceId: string, device: string): Promise<void> {
  await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }));
}

async function detach(volumeId: string, instanceId: string, device: string): Promise<void> {
  await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }));
}

/** Every volume in moto: id → { state, tags }. */
async function world(): Promise<Record<string, { state: string; tags: Record<string, string> }>> {
  const res = await ec2.send(new DescribeVolumesCommand({}));
  return Object.fromEntries(
    (res.Volumes ?? []).map((v) => [
      v.VolumeId!,
      { state: v.State!, tags: Object.fromEntries((v.Tags ?? []).map((t) => [t.Key!, t.Value!])) },
    ]),
  );
}

describe('purge-disk-volumes on moto_server', () => {
  it('two runs a grace apart delete exactly the orphaned fleet volumes; a dry run changes nothing', async () => {
    const host = await instance();
    const orphanA = await volume(10, [FLEET]);
    const orphanC = await volume(30, [FLEET]);
    const comesBack = await volume(20, [FLEET]);
    const foreign = await volume(40, []);
    const otherFleet = await volume(40, [{ Key: 'registry-fleet', Value: 'another-stack' }]);
    const kept = await volume(50, [FLEET, { Key: 'registry-fleet:keep', Value: 'true' }]);
    const inUse = await volume(60, [FLEET]);
    await attach(inUse, host, '/dev/sdf');
    const before = await world();
    expect(before[inUse]!.state).toBe('in-use');

    // Dry run: observes and plans the marks, changes no tag.
    const dry = await at(T0)({ dryRun: true, skipPrune: true });
    expect(
      dry.actions
        .filter((a) => a.status === 'planned')
        .map((a) => [a.type, a.target])
        .sort(),
    ).toEqual(
      [
        ['mark-volume', orphanA],
        ['mark-volume', orphanC],
        ['mark-volume', comesBack],
      ].sort(),
    );
    expect(await world()).toEqual(before);

    // Run 1: marks the three available fleet volumes, nothing else.
    const first = await at(T0)({ skipPrune: true });
    expect(first.summary).toMatchObject({ applied: 3, failed: 0 });
    const afterFirst = await world();
    for (const id of [orphanA, orphanC, comesBack]) expect(afterFirst[id]!.tags[MARK_TAG]).toBe(T0.toISOString());
    for (const id of [foreign, otherFleet, kept, inUse]) expect(afterFirst[id]).toEqual(before[id]);

    // An hour later: still within the grace, nothing changes.
    const early = await at(new Date(T0.getTime() + H))({ skipPrune: true });
    expect(early.summary).toMatchObject({ applied: 0, failed: 0 });
    expect(await world()).toEqual(afterFirst);

    // Between the runs one of them is attached again.
    await attach(comesBack, host, '/dev/sdg');

    // A dry run past the grace deletes nothing.
    await at(new Date(T0.getTime() + 25 * H))({ dryRun: true, skipPrune: true });
    expect(Object.keys(await world()).sort()).toEqual(Object.keys(afterFirst).sort());

    // Run 2, past the grace: deletes the two still-orphaned ones, unmarks the re-attached one.
    const second = await at(new Date(T0.getTime() + 25 * H))({ skipPrune: true });
    expect(second.summary).toMatchObject({ applied: 3, failed: 0 });
    const after = await world();
    expect(after[orphanA]).toBeUndefined();
    expect(after[orphanC]).toBeUndefined();
    expect(after[comesBack]).toEqual({ state: 'in-use', tags: { 'registry-fleet': 'it-stack' } });
    for (const id of [foreign, otherFleet, kept, inUse]) expect(after[id]).toEqual(before[id]);
    expect(second.details).toMatchObject({ volumes: { deleted: { count: 2, sizeGiB: 40, estMonthlySavingsUsd: 3.2 }, unmarked: 1 } });

    // Idempotent: a third run has nothing left to do.
    const third = await at(new Date(T0.getTime() + 26 * H))({ skipPrune: true });
    expect(third.summary).toMatchObject({ planned: 0, applied: 0, failed: 0 });
  });

  it('a volume attached and detached between run 1 and run 2 is not deleted: run 2 marks it again (CloudTrail history)', async () => {
    const host = await instance();
    const used = await volume(10, [FLEET]);
    const unused = await volume(10, [FLEET]);
    await at(T0)({ skipPrune: true });

    // Between the daily runs: attached at T0+3h, detached again at T0+6h; available again by run 2.
    scenarioNow = new Date(T0.getTime() + 3 * H);
    await attach(used, host, '/dev/sdf');
    scenarioNow = new Date(T0.getTime() + 6 * H);
    await detach(used, host, '/dev/sdf');
    expect(trail.events().map((e) => e.eventName)).toEqual(['AttachVolume', 'DetachVolume']);
    expect((await world())[used]).toEqual({ state: 'available', tags: { 'registry-fleet': 'it-stack', [MARK_TAG]: T0.toISOString() } });

    const run2 = new Date(T0.getTime() + 25 * H);
    const second = await at(run2)({ skipPrune: true });
    const w = await world();
    expect(w[unused]).toBeUndefined();
    expect(w[used]).toEqual({ state: 'available', tags: { 'registry-fleet': 'it-stack', [MARK_TAG]: run2.toISOString() } });
    expect(second.actions.find((a) => a.target === used)).toMatchObject({
      type: 'mark-volume',
      status: 'applied',
      reason: expect.stringMatching(/^used since its mark .*AttachVolume .*DetachVolume/),
    });
    expect(trail.lookups()).toBe(2);

    // A full grace after the new mark with no use since: deleted.
    await at(new Date(run2.getTime() + 25 * H))({ skipPrune: true });
    expect((await world())[used]).toBeUndefined();
  });

  it("VOLUME_GRACE's floor: a volume used minutes after its mark is never deleted on a history still arriving", async () => {
    trail.setDelay(10 * 60_000); // CloudTrail: 5–15 minutes
    const host = await instance();
    const used = await volume(10, [FLEET]);
    await at(T0)({ skipPrune: true });
    scenarioNow = new Date(T0.getTime() + 2 * 60_000);
    await attach(used, host, '/dev/sdf');
    scenarioNow = new Date(T0.getTime() + 3 * 60_000);
    await detach(used, host, '/dev/sdf');

    // Five minutes after the mark, the attach and detach are not delivered yet: a 4-minute grace would delete on
    // that history. Such a grace is refused at cold start (VOLUME_GRACE's floor), before anything runs.
    scenarioNow = new Date(T0.getTime() + 5 * 60_000);
    const early = async () => at(scenarioNow, { VOLUME_GRACE: '4m' })({ skipPrune: true });
    await expect(early()).rejects.toThrow(/VOLUME_GRACE="4m" is not valid: expected a duration.*at least 1h/);
    expect((await world())[used]).toMatchObject({ state: 'available' });

    // At the floor, the events are delivered by the first run that may delete: the volume is marked again.
    scenarioNow = new Date(T0.getTime() + 61 * 60_000);
    const report = await at(scenarioNow, { VOLUME_GRACE: '1h' })({ skipPrune: true });
    expect(report.actions.find((a) => a.target === used)).toMatchObject({ type: 'mark-volume', status: 'applied' });
    expect((await world())[used]).toEqual({
      state: 'available',
      tags: { 'registry-fleet': 'it-stack', [MARK_TAG]: scenarioNow.toISOString() },
    });
  });

  it('attached at now − 10m and detached at now − 2m, both still in CloudTrail delivery: held by its EBS metrics, re-marked next run', async () => {
    trail.setDelay(15 * 60_000); // CloudTrail: 5–15 minutes late
    const host = await instance();
    const used = await volume(10, [FLEET]);
    const unused = await volume(10, [FLEET]);
    await at(T0)({ skipPrune: true });
    const run2 = new Date(T0.getTime() + 25 * H);
    scenarioNow = new Date(run2.getTime() - 10 * 60_000);
    await attach(used, host, '/dev/sdf');
    scenarioNow = new Date(run2.getTime() - 2 * 60_000);
    await detach(used, host, '/dev/sdf');
    // EBS publishes AWS/EBS metrics only while a volume is attached (moto emits none: the test puts them).
    const cw = new CloudWatchClient({ endpoint: moto.endpoint, region: 'us-east-1' });
    await cw.send(
      new PutMetricDataCommand({
        Namespace: 'AWS/EBS',
        MetricData: [6, 5, 4, 3].map((minutes) => ({
          MetricName: 'VolumeIdleTime',
          Dimensions: [{ Name: 'VolumeId', Value: used }],
          Timestamp: new Date(run2.getTime() - minutes * 60_000),
          Value: 60,
          Unit: 'Seconds',
        })),
      }),
    );
    cw.destroy();

    scenarioNow = run2;
    const second = await at(run2)({ skipPrune: true });
    expect(trail.events().map((e) => e.eventName)).toEqual(['AttachVolume', 'DetachVolume']);
    const w = await world();
    expect(w[unused]).toBeUndefined();
    expect(w[used]).toEqual({ state: 'available', tags: { 'registry-fleet': 'it-stack', [MARK_TAG]: T0.toISOString() } });
    expect(second.actions.find((a) => a.target === used)).toMatchObject({
      type: 'delete-volume',
      status: 'skipped',
      reason: expect.stringMatching(/AWS\/EBS datapoint .*CLOUDTRAIL_LAG 20m.*not deleted \(next run\)/),
    });
    expect(second.details).toMatchObject({ volumes: { heldForLag: 1, deleted: { count: 1 } } });

    // The next run, the events delivered: the use is seen and the grace starts over.
    const run3 = new Date(run2.getTime() + H);
    scenarioNow = run3;
    const third = await at(run3)({ skipPrune: true });
    expect(third.actions.find((a) => a.target === used)).toMatchObject({
      type: 'mark-volume',
      status: 'applied',
      reason: expect.stringMatching(/^used since its mark .*AttachVolume .*DetachVolume/),
    });
    expect((await world())[used]).toEqual({ state: 'available', tags: { 'registry-fleet': 'it-stack', [MARK_TAG]: run3.toISOString() } });
  });

  it('manual volumeIds limit the run to those volumes and never touch a non-fleet one', async () => {
    const mine = await volume(10, [FLEET]);
    const other = await volume(10, [FLEET]);
    const foreign = await volume(10, []);
    const report = await at(T0)({ volumeIds: [mine, foreign, 'vol-0123456789abcdef0'], skipPrune: true });
    const w = await world();
    expect(w[mine]!.tags[MARK_TAG]).toBe(T0.toISOString());
    expect(w[other]!.tags[MARK_TAG]).toBeUndefined();
    expect(w[foreign]!.tags).toEqual({});
    expect(report.actions.filter((a) => a.status === 'skipped').map((a) => [a.target, a.reason])).toEqual([
      [foreign, 'no fleet tag registry-fleet=it-stack: never touched'],
      ['vol-0123456789abcdef0', 'named in the payload but not found'],
    ]);
  });

  it('snapshot before delete: a snapshot tagged with the volume id and the fleet tag, then the delete', async () => {
    const orphan = await volume(12, [FLEET]);
    const withSnapshots = (date: Date) => at(date, { SNAPSHOT_BEFORE_DELETE: 'true' });
    await withSnapshots(T0)({ skipPrune: true });
    const report = await withSnapshots(new Date(T0.getTime() + 25 * H))({ skipPrune: true });
    expect((await world())[orphan]).toBeUndefined();
    const snaps = await ec2.send(
      new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: 'tag:registry-fleet:source-volume', Values: [orphan] }] }),
    );
    expect(snaps.Snapshots).toHaveLength(1);
    const snap = snaps.Snapshots![0]!;
    expect(snap.VolumeId).toBe(orphan);
    expect(Object.fromEntries((snap.Tags ?? []).map((t) => [t.Key, t.Value]))).toMatchObject({
      'registry-fleet': 'it-stack',
      'registry-fleet:source-volume': orphan,
    });
    expect(report.details).toMatchObject({ volumes: { snapshots: [{ volumeId: orphan, snapshotId: snap.SnapshotId }] } });
  });

  it('a volume attached between plan and apply is re-checked and not deleted', async () => {
    const host = await instance();
    const vol = await volume(10, [FLEET]);
    await ec2.send(
      new CreateTagsCommand({ Resources: [vol], Tags: [{ Key: MARK_TAG, Value: new Date(T0.getTime() - 48 * H).toISOString() }] }),
    );
    const config = loadPurgeDiskVolumesConfig(ENV);
    const trigger = toTrigger({ skipPrune: true }, job.options);
    const run = testContext({ config, trigger, scope: job.scope(trigger, config), dryRun: false, now: T0 });
    const state = await job.observe(job.clients(), run.scope, run);
    const plan = job.plan(state, run);
    expect(plan.actions.map((a) => [a.type, a.target])).toEqual([['delete-volume', vol]]);

    await attach(vol, host, '/dev/sdh'); // the race: an attach lands after the plan

    const outcomes = await job.apply(plan, run, job.clients());
    expect(outcomes[0]).toMatchObject({ status: 'skipped', reason: expect.stringContaining('re-checked before delete: state is in-use') });
    expect((await world())[vol]!.state).toBe('in-use');
  });

  it('disk readings come from one GetMetricData over the group InService instances (moto CloudWatch and ASG)', async () => {
    await ec2.send(
      new CreateLaunchTemplateCommand({ LaunchTemplateName: 'it-lt', LaunchTemplateData: { ImageId: imageId, InstanceType: 't3.small' } }),
    );
    const autoScaling = new AutoScalingClient({ endpoint: moto.endpoint, region: 'us-east-1' });
    await autoScaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: 'it-asg',
        MinSize: 2,
        MaxSize: 2,
        DesiredCapacity: 2,
        AvailabilityZones: ['us-east-1a'],
        LaunchTemplate: { LaunchTemplateName: 'it-lt' },
      }),
    );
    const group = await autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['it-asg'] }));
    const ids = group.AutoScalingGroups![0]!.Instances!.map((i) => i.InstanceId!);
    expect(ids).toHaveLength(2);
    autoScaling.destroy();

    const now = new Date();
    const cw = new CloudWatchClient({ endpoint: moto.endpoint, region: 'us-east-1' });
    await cw.send(
      new PutMetricDataCommand({
        Namespace: 'CWAgent',
        MetricData: ids.map((id, k) => ({
          MetricName: 'disk_used_percent',
          Dimensions: [
            { Name: 'InstanceId', Value: id },
            { Name: 'path', Value: '/' },
            { Name: 'fstype', Value: 'xfs' },
          ],
          Timestamp: new Date(now.getTime() - 60_000),
          Value: k === 0 ? 93.5 : 20,
          Unit: 'Percent',
        })),
      }),
    );
    cw.destroy();

    const report = await at(now)({ dryRun: true, skipVolumes: true });
    expect(report.observed).toMatchObject({ instances: 2, instancesInService: 2, diskReadings: 2 });
    expect(report.details).toMatchObject({
      disks: { readings: { [ids[0]!]: 93.5, [ids[1]!]: 20 }, overThreshold: [ids[0]], pruneTargets: [ids[0]] },
    });
    expect(report.actions).toEqual([
      expect.objectContaining({ type: 'prune-instance', target: ids[0], status: 'planned', reason: 'disk 93.5% used ≥ threshold 85%' }),
    ]);
  });
});
