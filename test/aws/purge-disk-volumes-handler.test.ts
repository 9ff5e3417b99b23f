import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import {
  CreateSnapshotCommand,
  CreateTagsCommand,
  DeleteTagsCommand,
  DeleteVolumeCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
  type Volume as SdkVolume,
} from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { loadPurgeDiskVolumesConfig } from '../../functions/purge-disk-volumes/config.ts';
import { job } from '../../functions/purge-disk-volumes/job.ts';
import { JobFailedError, ValidationError } from '../../shared/errors.ts';
import { createJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { logger } from '../../shared/observability.ts';
import { loadEvent } from '../support/events.ts';

const ec2 = mockClient(EC2Client);
const asg = mockClient(AutoScalingClient);
const cw = mockClient(CloudWatchClient);
const ssm = mockClient(SSMClient);
// The delete candidates' attach history: nothing since their marks (used volumes: purge-disk-volumes-history.test.ts).
const trail = mockClient(CloudTrailClient);

const NOW = new Date('2026-11-23T03:00:00.000Z');
const H = 3_600_000;
const ago = (ms: number): string => new Date(NOW.getTime() - ms).toISOString();
const MARK = 'registry-fleet:orphaned-at';
const FLEET = { Key: 'registry-fleet', Value: 'prod' };

const ENV = {
  AWS_REGION: 'us-east-1',
  FLEET_TAG_VALUE: 'prod',
  ASG_NAME: 'prod-asg',
  PRUNE_DOCUMENT_NAME: 'prod-prune-docker',
  PRUNE_WAIT: '3s',
  PRUNE_POLL_INTERVAL: '100ms',
};
function jobWith(env: Record<string, string> = {}) {
  return createJob(job, loadPurgeDiskVolumesConfig({ ...ENV, ...env }), { clock: () => NOW }).run;
}
const run = jobWith();

const v = (id: string, over: Partial<SdkVolume> = {}): SdkVolume => ({
  VolumeId: id,
  State: 'available',
  Size: 100,
  VolumeType: 'gp3',
  Attachments: [],
  Tags: [FLEET],
  ...over,
});

const FRESH = v('vol-0000000000000f1e5', { Size: 8 });
const RIPE = v('vol-00000000000001234', { Size: 500, Tags: [FLEET, { Key: MARK, Value: ago(30 * H) }] });
const YOUNG = v('vol-00000000000005678', { Tags: [FLEET, { Key: MARK, Value: ago(2 * H) }] });
const BACK = v('vol-0000000000000abcd', {
  State: 'in-use',
  Attachments: [{ InstanceId: 'i-00000000000000001', State: 'attached' }],
  Tags: [FLEET, { Key: MARK, Value: ago(30 * H) }],
});
const KEPT = v('vol-0000000000000beef', {
  Tags: [FLEET, { Key: 'registry-fleet:keep', Value: 'true' }, { Key: MARK, Value: ago(300 * H) }],
});
const ROOT = v('vol-0000000000000c0de', { State: 'in-use', Attachments: [{ InstanceId: 'i-00000000000000001', State: 'attached' }] });

const INSTANCES = ['i-00000000000000001', 'i-00000000000000002', 'i-00000000000000003'];
const PRUNE_OUTPUT =
  'ok: image prune\nok: builder prune\nok: removed 3 anonymous volume(s)\nok: truncated 1 log(s) over 100 MiB\n{"freedBytes":2147483648,"usedPercentBefore":92,"usedPercentAfter":61}\n';

function awsError(name: string, message = name): Error {
  return Object.assign(new Error(message), { name });
}

/** The fleet: volumes as given; 3 InService instances, the first at 92 % disk, the second at 40 %, the third silent. */
function fleet(volumes: SdkVolume[], { recheck }: { recheck?: SdkVolume[] } = {}): void {
  const describe = ec2.on(DescribeVolumesCommand);
  if (recheck) describe.resolvesOnce({ Volumes: volumes }).resolves({ Volumes: recheck });
  else
    describe.callsFake((input: { Filters?: { Name?: string; Values?: string[] }[] }) => {
      const byId = input.Filters?.find((f) => f.Name === 'volume-id');
      return { Volumes: byId ? volumes.filter((x) => byId.Values?.includes(x.VolumeId ?? '')) : volumes };
    });
  ec2.on(CreateTagsCommand).resolves({});
  ec2.on(DeleteTagsCommand).resolves({});
  ec2.on(DeleteVolumeCommand).resolves({});
  trail.on(LookupEventsCommand).resolves({ Events: [] });
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      {
        AutoScalingGroupName: 'prod-asg',
        MinSize: 2,
        MaxSize: 4,
        DesiredCapacity: 3,
        DefaultCooldown: 300,
        AvailabilityZones: ['us-east-1a'],
        HealthCheckType: 'ELB',
        CreatedTime: NOW,
        Instances: INSTANCES.map((id) => ({
          InstanceId: id,
          LifecycleState: 'InService',
          HealthStatus: 'Healthy',
          AvailabilityZone: 'us-east-1a',
          ProtectedFromScaleIn: false,
        })),
      },
    ],
  });
  cw.on(GetMetricDataCommand).resolves({
    MetricDataResults: [
      {
        Id: 'm0',
        Timestamps: [new Date(NOW.getTime() - 60_000), new Date(NOW.getTime() - 120_000)],
        Values: [92.4, 91.9],
        StatusCode: 'Complete',
      },
      { Id: 'm1', Timestamps: [new Date(NOW.getTime() - 60_000)], Values: [40.1], StatusCode: 'Complete' },
      { Id: 'm2', Timestamps: [], Values: [], StatusCode: 'Complete' },
    ],
  });
  ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
  ssm
    .on(GetCommandInvocationCommand)
    .rejectsOnce(awsError('InvocationDoesNotExist'))
    .resolvesOnce({ Status: 'InProgress' })
    .resolves({ Status: 'Success', StandardOutputContent: PRUNE_OUTPUT });
}

const byTarget = (report: Report, target: string) => report.actions.filter((a) => a.target === target);

beforeEach(() => {
  ec2.reset();
  asg.reset();
  cw.reset();
  ssm.reset();
  trail.reset();
});

describe('purge-disk-volumes on a schedule', () => {
  it('marks, unmarks, re-checks and deletes volumes, prunes the full instance and reports it all', async () => {
    fleet([FRESH, RIPE, YOUNG, BACK, KEPT, ROOT]);
    const report = await run(loadEvent('schedule.json'));

    expect(ec2).toHaveReceivedCommandTimes(CreateTagsCommand, 1);
    expect(ec2).toHaveReceivedCommandWith(CreateTagsCommand, {
      Resources: [FRESH.VolumeId!],
      Tags: [{ Key: MARK, Value: NOW.toISOString() }],
    });
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(DeleteTagsCommand, { Resources: [BACK.VolumeId!], Tags: [{ Key: MARK }] });
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(DeleteVolumeCommand, { VolumeId: RIPE.VolumeId! });
    // The re-check right before the delete: one DescribeVolumes of exactly that id.
    expect(ec2).toHaveReceivedCommandWith(DescribeVolumesCommand, { Filters: [{ Name: 'volume-id', Values: [RIPE.VolumeId!] }] });
    expect(ec2).not.toHaveReceivedCommand(CreateSnapshotCommand);

    expect(cw).toHaveReceivedCommandTimes(GetMetricDataCommand, 1);
    const queries = cw.commandCalls(GetMetricDataCommand)[0]!.args[0].input.MetricDataQueries!;
    // The same call reads the delete candidate's AWS/EBS attachment metric (the CloudTrail-lag hold).
    expect(queries.map((q) => q.MetricStat?.Metric?.Dimensions)).toEqual([
      ...INSTANCES.map((id) => [
        { Name: 'InstanceId', Value: id },
        { Name: 'path', Value: '/' },
        { Name: 'fstype', Value: 'xfs' },
      ]),
      [{ Name: 'VolumeId', Value: RIPE.VolumeId! }],
    ]);
    expect(queries[0]!.MetricStat).toMatchObject({ Metric: { Namespace: 'CWAgent', MetricName: 'disk_used_percent' } });
    expect(queries[3]!.MetricStat).toMatchObject({ Metric: { Namespace: 'AWS/EBS', MetricName: 'VolumeIdleTime' }, Stat: 'SampleCount' });

    expect(ssm).toHaveReceivedCommandExactlyOnceWith(SendCommandCommand, {
      DocumentName: 'prod-prune-docker',
      InstanceIds: ['i-00000000000000001'],
      Parameters: { MaxLogMb: ['100'] },
    });
    expect(ssm).toHaveReceivedCommandTimes(GetCommandInvocationCommand, 3);

    expect(report.summary).toEqual({ planned: 0, applied: 4, skipped: 3, failed: 0 });
    expect(byTarget(report, RIPE.VolumeId!)).toEqual([
      expect.objectContaining({
        type: 'delete-volume',
        status: 'applied',
        reason: 'available and marked orphaned 30h ago (grace 24h)',
        detail: expect.objectContaining({ sizeGiB: 500, estMonthlyUsd: 40 }),
      }),
    ]);
    expect(byTarget(report, KEPT.VolumeId!)).toEqual([
      expect.objectContaining({ status: 'skipped', reason: 'tagged registry-fleet:keep=true: never touched' }),
    ]);
    expect(byTarget(report, YOUNG.VolumeId!)).toEqual([
      expect.objectContaining({ status: 'skipped', reason: expect.stringContaining('marked orphaned 2h ago, grace 24h') }),
    ]);
    expect(byTarget(report, 'i-00000000000000003')).toEqual([
      expect.objectContaining({ status: 'skipped', reason: 'no disk_used_percent datapoint in the last 15m' }),
    ]);
    expect(byTarget(report, 'i-00000000000000001')).toEqual([
      expect.objectContaining({
        type: 'prune-instance',
        status: 'applied',
        reason: 'disk 92.4% used ≥ threshold 85%',
        detail: {
          usedPercent: 92.4,
          maxLogMb: 100,
          commandId: 'cmd-1',
          commandStatus: 'Success',
          freedBytes: 2147483648,
          usedPercentBefore: 92,
          usedPercentAfter: 61,
        },
      }),
    ]);

    expect(report.observed).toEqual({
      volumes: 6,
      volumesAvailable: 4,
      volumesInUse: 2,
      volumesAlreadyMarked: 4,
      instances: 3,
      instancesInService: 3,
      diskReadings: 2,
    });
    expect(report.details).toMatchObject({
      volumes: {
        marked: { count: 1, sizeGiB: 8 },
        unmarked: 1,
        waiting: 1,
        deleted: { count: 1, sizeGiB: 500, estMonthlySavingsUsd: 40 },
        snapshots: [],
      },
      disks: {
        thresholdPercent: 85,
        overThreshold: ['i-00000000000000001'],
        readings: { 'i-00000000000000001': 92.4, 'i-00000000000000002': 40.1 },
        pruneTargets: ['i-00000000000000001'],
        commands: [expect.objectContaining({ instanceId: 'i-00000000000000001', status: 'applied', freedBytes: 2147483648 })],
        freedBytes: 2147483648,
      },
    });
  });

  it('a dry run observes and plans the same, writes nothing', async () => {
    fleet([FRESH, RIPE, YOUNG, BACK, KEPT, ROOT]);
    const report = await run(loadEvent('purge-disk-volumes/manual-dry-run.json'));
    expect(ec2).not.toHaveReceivedCommand(CreateTagsCommand);
    expect(ec2).not.toHaveReceivedCommand(DeleteTagsCommand);
    expect(ec2).not.toHaveReceivedCommand(DeleteVolumeCommand);
    expect(ec2).not.toHaveReceivedCommand(CreateSnapshotCommand);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(ssm).not.toHaveReceivedCommand(GetCommandInvocationCommand);
    expect(report.dryRun).toBe(true);
    expect(report.summary).toEqual({ planned: 4, applied: 0, skipped: 3, failed: 0 });
    expect(report.actions.filter((a) => a.status === 'planned').map((a) => [a.type, a.target])).toEqual([
      ['mark-volume', FRESH.VolumeId],
      ['unmark-volume', BACK.VolumeId],
      ['delete-volume', RIPE.VolumeId],
      ['prune-instance', 'i-00000000000000001'],
    ]);
    expect(report.details).toMatchObject({
      volumes: { deletePlanned: { count: 1, sizeGiB: 500, estMonthlySavingsUsd: 40 } },
      disks: { commands: [{ instanceId: 'i-00000000000000001', status: 'planned' }] },
    });
  });

  it('DRY_RUN=true leashes the schedule', async () => {
    fleet([FRESH, RIPE]);
    const report = await jobWith({ DRY_RUN: 'true' })(loadEvent('schedule.json'));
    expect(ec2).not.toHaveReceivedCommand(DeleteVolumeCommand);
    expect(ec2).not.toHaveReceivedCommand(CreateTagsCommand);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(report.summary.planned).toBe(3);
  });
});

describe('the re-check right before a delete', () => {
  it.each<[string, SdkVolume[], string]>([
    [
      'attached since observed',
      [{ ...RIPE, State: 'in-use', Attachments: [{ InstanceId: 'i-00000000000000002', State: 'attaching' }] }],
      're-checked before delete: state is in-use (attached to i-00000000000000002); not deleted',
    ],
    [
      'attaching while still "available"',
      [{ ...RIPE, Attachments: [{ InstanceId: 'i-00000000000000002', State: 'attaching' }] }],
      're-checked before delete: state is available (attached to i-00000000000000002); not deleted',
    ],
    [
      'tagged keep since observed',
      [{ ...RIPE, Tags: [...RIPE.Tags!, { Key: 'registry-fleet:keep', Value: 'true' }] }],
      're-checked before delete: now tagged registry-fleet:keep=true; not deleted',
    ],
    [
      'fleet tag removed',
      [{ ...RIPE, Tags: [{ Key: MARK, Value: ago(30 * H) }] }],
      're-checked before delete: fleet tag registry-fleet=prod is gone; not deleted',
    ],
    [
      'unmarked by another run',
      [{ ...RIPE, Tags: [FLEET] }],
      `re-checked before delete: mark changed from ${ago(30 * H)} to (none); not deleted`,
    ],
  ])('%s → skipped, DeleteVolume never sent', async (_name, recheck, reason) => {
    fleet([RIPE], { recheck });
    const report = await run({ skipPrune: true });
    expect(ec2).not.toHaveReceivedCommand(DeleteVolumeCommand);
    expect(byTarget(report, RIPE.VolumeId!)).toEqual([expect.objectContaining({ type: 'delete-volume', status: 'skipped', reason })]);
  });

  it('already gone → done, no delete sent', async () => {
    fleet([RIPE], { recheck: [] });
    const report = await run({ skipPrune: true });
    expect(ec2).not.toHaveReceivedCommand(DeleteVolumeCommand);
    expect(byTarget(report, RIPE.VolumeId!)[0]).toMatchObject({ status: 'applied', detail: { alreadyGone: true } });
  });

  it('attached between the re-check and DeleteVolume: EC2 says VolumeInUse → skipped, not failed', async () => {
    fleet([RIPE]);
    ec2.on(DeleteVolumeCommand).rejects(awsError('VolumeInUse', `Volume ${RIPE.VolumeId} is currently attached to i-2`));
    const report = await run({ skipPrune: true });
    expect(byTarget(report, RIPE.VolumeId!)[0]).toMatchObject({ status: 'skipped', reason: expect.stringContaining('VolumeInUse') });
    expect(report.summary.failed).toBe(0);
  });

  it('InvalidVolume.NotFound on delete counts as done', async () => {
    fleet([RIPE]);
    ec2.on(DeleteVolumeCommand).rejects(awsError('InvalidVolume.NotFound'));
    const report = await run({ skipPrune: true });
    expect(byTarget(report, RIPE.VolumeId!)[0]).toMatchObject({ status: 'applied', detail: { alreadyGone: true } });
  });

  it('any other delete error fails the action and the run, after the other actions ran', async () => {
    fleet([RIPE, FRESH]);
    ec2.on(DeleteVolumeCommand).rejects(awsError('UnauthorizedOperation', 'not allowed'));
    await expect(run({ skipPrune: true })).rejects.toThrow(JobFailedError);
    expect(ec2).toHaveReceivedCommandWith(CreateTagsCommand, { Resources: [FRESH.VolumeId!] });
  });
});

describe('snapshot before delete', () => {
  const withSnapshots = jobWith({ SNAPSHOT_BEFORE_DELETE: 'true' });

  it('starts a tagged snapshot, deletes once it is pending, reports the snapshot id', async () => {
    fleet([RIPE]);
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(CreateSnapshotCommand).resolves({ SnapshotId: 'snap-0123456789abcdef0', State: 'pending', VolumeId: RIPE.VolumeId });
    const report = await withSnapshots({ skipPrune: true });
    expect(ec2).toHaveReceivedCommandWith(CreateSnapshotCommand, {
      VolumeId: RIPE.VolumeId!,
      TagSpecifications: [
        {
          ResourceType: 'snapshot',
          Tags: [
            FLEET,
            { Key: 'registry-fleet:source-volume', Value: RIPE.VolumeId! },
            { Key: 'Name', Value: `${RIPE.VolumeId} (deleted by purge-disk-volumes)` },
          ],
        },
      ],
    });
    const calls = ec2.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name);
    expect(calls.indexOf('CreateSnapshotCommand')).toBeLessThan(calls.indexOf('DeleteVolumeCommand'));
    expect(byTarget(report, RIPE.VolumeId!)[0]).toMatchObject({ status: 'applied', detail: { snapshotId: 'snap-0123456789abcdef0' } });
    expect(report.details).toMatchObject({ volumes: { snapshots: [{ volumeId: RIPE.VolumeId, snapshotId: 'snap-0123456789abcdef0' }] } });
  });

  it('reuses the snapshot an earlier run started', async () => {
    fleet([RIPE]);
    ec2
      .on(DescribeSnapshotsCommand)
      .resolves({ Snapshots: [{ SnapshotId: 'snap-0000000000000aaaa', State: 'completed', StartTime: new Date(ago(1 * H)) }] });
    const report = await withSnapshots({ skipPrune: true });
    expect(ec2).not.toHaveReceivedCommand(CreateSnapshotCommand);
    expect(ec2).toHaveReceivedCommandTimes(DeleteVolumeCommand, 1);
    expect(byTarget(report, RIPE.VolumeId!)[0]).toMatchObject({ status: 'applied', detail: { snapshotId: 'snap-0000000000000aaaa' } });
  });

  it('a snapshot in error keeps the volume and fails the action', async () => {
    fleet([RIPE]);
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(CreateSnapshotCommand).resolves({ SnapshotId: 'snap-0000000000000bbbb', State: 'error' });
    await expect(withSnapshots({ skipPrune: true })).rejects.toThrow('snapshot snap-0000000000000bbbb is error: volume kept');
    expect(ec2).not.toHaveReceivedCommand(DeleteVolumeCommand);
  });
});

describe('instance disks', () => {
  it('the disk alarm with an InstanceId prunes that instance only, whatever its reading, and leaves volumes alone', async () => {
    fleet([FRESH]);
    const alarm = loadEvent('purge-disk-volumes/alarm-disk-full.json') as {
      detail: { configuration: { metrics: { metricStat: { metric: { dimensions: Record<string, string> } } }[] } };
    };
    alarm.detail.configuration.metrics[0]!.metricStat.metric.dimensions.InstanceId = 'i-00000000000000002';
    const report = await run(alarm);
    expect(ec2).not.toHaveReceivedCommand(DescribeVolumesCommand);
    expect(ssm).toHaveReceivedCommandExactlyOnceWith(SendCommandCommand, { InstanceIds: ['i-00000000000000002'] });
    expect(byTarget(report, 'i-00000000000000002')[0]).toMatchObject({
      status: 'applied',
      reason: 'named by alarm registry-disk-full-i-0abc123def4567890 (disk 40.1% used)',
    });
  });

  it('the disk alarm without an InstanceId prunes every instance over the threshold', async () => {
    fleet([]);
    await run(loadEvent('purge-disk-volumes/alarm-disk-full-asg.json'));
    expect(ssm).toHaveReceivedCommandExactlyOnceWith(SendCommandCommand, { InstanceIds: ['i-00000000000000001'] });
  });

  it('an alarm back to OK does nothing at all', async () => {
    fleet([FRESH]);
    const report = await run(loadEvent('alarm-state-change-ok.json'));
    expect(ec2.calls()).toHaveLength(0);
    expect(ssm.calls()).toHaveLength(0);
    expect(report.actions).toEqual([]);
  });

  it('manual instanceIds: prunes named fleet instances, never strangers (a stranger is an error: nothing is pruned)', async () => {
    fleet([]);
    const report = await run({ instanceIds: ['i-00000000000000003'], skipVolumes: true });
    expect(ssm).toHaveReceivedCommandExactlyOnceWith(SendCommandCommand, { InstanceIds: ['i-00000000000000003'] });
    expect(byTarget(report, 'i-00000000000000003')[0]).toMatchObject({ status: 'applied', reason: 'named by the manual payload' });
    ssm.resetHistory();
    await expect(run({ instanceIds: ['i-00000000000000003', 'i-0000000000000dead'], skipVolumes: true })).rejects.toThrow(
      'instanceIds: i-0000000000000dead is not a member of Auto Scaling group prod-asg',
    );
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
  });

  it('a failed command fails its action with the status and the last stderr line; the freed bytes are still read', async () => {
    fleet([]);
    ssm.on(GetCommandInvocationCommand).resolves({
      Status: 'Failed',
      StatusDetails: 'Failed',
      StandardOutputContent: '{"freedBytes":1024,"usedPercentBefore":90,"usedPercentAfter":90}\n',
      StandardErrorContent: 'failed: builder prune\n',
    });
    const error = await run({ skipVolumes: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as Error).message).toContain('prune-instance i-00000000000000001: prune command Failed (Failed): failed: builder prune');
  });

  it('SendCommand refused: every prune action fails, the volume work still runs', async () => {
    fleet([FRESH]);
    ssm.on(SendCommandCommand).rejects(awsError('InvalidInstanceId', 'Instances [[i-00000000000000001]] not in a valid state'));
    await expect(run(loadEvent('schedule.json'))).rejects.toThrow('SendCommand: InvalidInstanceId');
    expect(ec2).toHaveReceivedCommandWith(CreateTagsCommand, { Resources: [FRESH.VolumeId!] });
    expect(ssm).not.toHaveReceivedCommand(GetCommandInvocationCommand);
  });

  it('a command still running after PRUNE_WAIT is skipped (never applied), with its status and command id', async () => {
    fleet([]);
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    const started = Date.now();
    const report = await jobWith({ PRUNE_WAIT: '400ms' })({ skipVolumes: true });
    expect(Date.now() - started).toBeLessThan(3_000);
    const prunes = byTarget(report, 'i-00000000000000001');
    expect(prunes.map((a) => a.status)).toEqual(['skipped']);
    expect(prunes[0]).toMatchObject({
      target: 'i-00000000000000001',
      reason: expect.stringMatching(
        /^prune command still InProgress after \d+ms \(PRUNE_WAIT 400ms\): command cmd-1; see it with aws ssm get-command-invocation --command-id cmd-1 --instance-id i-00000000000000001$/,
      ),
    });
    expect(report.summary).toMatchObject({ applied: 0, failed: 0 });
    expect(report.details).toMatchObject({
      disks: { commands: [{ instanceId: 'i-00000000000000001', status: 'skipped', reason: expect.stringContaining('command cmd-1') }] },
    });
  });

  it.each([
    [
      'never registered (InvocationDoesNotExist to the end)',
      () => ssm.on(GetCommandInvocationCommand).rejects(awsError('InvocationDoesNotExist')),
      /prune command never delivered: no invocation for the instance .* command cmd-1; see it with aws ssm get-command-invocation/,
    ],
    [
      'Undeliverable',
      () => ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Pending', StatusDetails: 'Undeliverable' }),
      /prune command not delivered \(Undeliverable\): command cmd-1/,
    ],
    [
      'Terminated',
      () => ssm.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress', StatusDetails: 'Terminated' }),
      /prune command not delivered \(Terminated\): command cmd-1/,
    ],
  ])('a command that was never delivered (%s) fails its action, then JobFailedError', async (_name, stub, message) => {
    fleet([]);
    stub();
    const info = vi.spyOn(logger, 'info');
    const error = await jobWith({ PRUNE_WAIT: '300ms' })({ skipVolumes: true }).catch((e: unknown) => e);
    const report = (info.mock.calls.find(([m]) => m === 'job report')?.[1] as { report: Report }).report;
    info.mockRestore();
    expect(error).toBeInstanceOf(JobFailedError);
    expect(byTarget(report, 'i-00000000000000001')).toEqual([
      expect.objectContaining({
        target: 'i-00000000000000001',
        status: 'failed',
        error: expect.stringMatching(message),
        detail: expect.objectContaining({ commandId: 'cmd-1' }),
      }),
    ]);
    expect(report.summary).toMatchObject({ applied: 0, failed: 1 });
  });

  it('the last read lands at the end of PRUNE_WAIT: a command that finishes in the last poll interval is applied', async () => {
    fleet([]);
    ssm.reset();
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    // Reads at 0 and 200 ms see InProgress; a full 200 ms interval no longer fits in the 300 ms wait, the read at 300 ms sees Success.
    ssm
      .on(GetCommandInvocationCommand)
      .resolvesOnce({ Status: 'InProgress' })
      .resolvesOnce({ Status: 'InProgress' })
      .resolves({ Status: 'Success', StandardOutputContent: PRUNE_OUTPUT });
    const report = await jobWith({ PRUNE_WAIT: '300ms', PRUNE_POLL_INTERVAL: '200ms' })({ skipVolumes: true });
    expect(ssm).toHaveReceivedCommandTimes(GetCommandInvocationCommand, 3);
    expect(byTarget(report, 'i-00000000000000001')).toEqual([
      expect.objectContaining({ status: 'applied', detail: expect.objectContaining({ commandStatus: 'Success', freedBytes: 2147483648 }) }),
    ]);
  });

  it('an invocation that shows up late (InvocationDoesNotExist on many reads) is still read to its result within PRUNE_WAIT', async () => {
    fleet([]);
    ssm.reset();
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    const late = ssm.on(GetCommandInvocationCommand);
    for (let i = 0; i < 8; i++) late.rejectsOnce(awsError('InvocationDoesNotExist'));
    late.resolves({ Status: 'Success', StandardOutputContent: PRUNE_OUTPUT });
    const report = await run({ skipVolumes: true });
    expect(ssm).toHaveReceivedCommandTimes(GetCommandInvocationCommand, 9);
    expect(byTarget(report, 'i-00000000000000001')).toEqual([
      expect.objectContaining({ status: 'applied', detail: expect.objectContaining({ freedBytes: 2147483648 }) }),
    ]);
  });

  it('an unreadable last line is reported, not guessed', async () => {
    fleet([]);
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: 'pruned things\n' });
    const report = await run({ skipVolumes: true });
    expect(byTarget(report, 'i-00000000000000001')[0]).toMatchObject({
      status: 'applied',
      detail: { output: 'unreadable: no JSON last line' },
    });
    expect(report.details).toMatchObject({ disks: { freedBytes: 0 } });
  });

  it('a missing Auto Scaling group is a visible error', async () => {
    fleet([]);
    asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
    await expect(run({ skipVolumes: true })).rejects.toThrow('Auto Scaling group prod-asg not found (check ASG_NAME)');
  });
});

describe('bad input changes nothing', () => {
  it.each([
    [{ volumeIds: ['vol-12'] }, ValidationError],
    [{ instanceIds: ['i-xyz'] }, ValidationError],
    [{ olderThan: '1h' }, ValidationError],
    [{ volumeIds: ['vol-0123456789abcdef0'], skipVolumes: true }, ValidationError],
  ])('%o', async (payload, kind) => {
    fleet([FRESH, RIPE]);
    await expect(run(payload)).rejects.toThrow(kind);
    expect(ec2.calls()).toHaveLength(0);
    expect(asg.calls()).toHaveLength(0);
    expect(ssm.calls()).toHaveLength(0);
  });
});

describe('time budget', () => {
  it('a long PRUNE_POLL_INTERVAL never sleeps past the margin: the run stops with the command still running, skipped', async () => {
    fleet([]);
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    const t0 = Date.now();
    // 16 s left at the start: the 15 s margin is crossed after ~1 s, well inside one 1-minute poll interval.
    const left = () => 16_000 - (Date.now() - t0);
    const report = await jobWith({ PRUNE_WAIT: '5m', PRUNE_POLL_INTERVAL: '1m' })(
      { skipVolumes: true },
      { getRemainingTimeInMillis: left },
    );
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(report.stoppedEarly).toBe('time');
    expect(byTarget(report, 'i-00000000000000001')).toEqual([
      expect.objectContaining({
        status: 'skipped',
        reason: expect.stringMatching(
          /^prune command still InProgress after \ds \(the Lambda time budget ran low\): command cmd-1; see it with aws ssm get-command-invocation/,
        ),
      }),
    ]);
  });

  it('takes no new action when the Lambda is about to time out, and says so', async () => {
    fleet([FRESH, RIPE]);
    const report = await run({ skipPrune: true }, { getRemainingTimeInMillis: () => 5_000 });
    expect(ec2).not.toHaveReceivedCommand(CreateTagsCommand);
    expect(ec2).not.toHaveReceivedCommand(DeleteVolumeCommand);
    expect(report.stoppedEarly).toBe('time');
    expect(report.actions.filter((a) => a.type !== 'prune-instance').every((a) => a.status === 'skipped')).toBe(true);
  });
});
