import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { CreateTagsCommand, DeleteTagsCommand, DeleteVolumeCommand, DescribeVolumesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadPurgeDiskVolumesConfig } from '../../functions/purge-disk-volumes/config.ts';
import { job } from '../../functions/purge-disk-volumes/job.ts';
import { ValidationError } from '../../shared/errors.ts';
import { createJob } from '../../shared/job.ts';

/**
 * A targeted run does what it names and nothing else (issue 12, item 9): a payload naming instances prunes those
 * instances only and leaves every volume alone unless it names volumes too; a named instance that is not a member
 * of the group is an error that names it, before anything is changed.
 */

const ec2 = mockClient(EC2Client);
const asg = mockClient(AutoScalingClient);
const cw = mockClient(CloudWatchClient);
const ssm = mockClient(SSMClient);
const trail = mockClient(CloudTrailClient);

const NOW = new Date('2026-11-23T03:00:00.000Z');
const FLEET = { Key: 'registry-fleet', Value: 'prod' };
const MEMBERS = ['i-00000000000000001', 'i-00000000000000002'];
const ORPHAN = 'vol-0000000000000f1e5';
const ENV = {
  AWS_REGION: 'us-east-1',
  FLEET_TAG_VALUE: 'prod',
  ASG_NAME: 'prod-asg',
  PRUNE_DOCUMENT_NAME: 'prod-prune-docker',
  PRUNE_POLL_INTERVAL: '100ms',
};
const run = createJob(job, loadPurgeDiskVolumesConfig(ENV), { clock: () => NOW }).run;

beforeEach(() => {
  for (const m of [ec2, asg, cw, ssm, trail]) m.reset();
  ec2
    .on(DescribeVolumesCommand)
    .resolves({ Volumes: [{ VolumeId: ORPHAN, State: 'available', Size: 8, VolumeType: 'gp3', Attachments: [], Tags: [FLEET] }] });
  ec2.on(CreateTagsCommand).resolves({});
  asg.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      {
        AutoScalingGroupName: 'prod-asg',
        MinSize: 2,
        MaxSize: 2,
        DesiredCapacity: 2,
        DefaultCooldown: 300,
        HealthCheckType: 'ELB',
        AvailabilityZones: ['us-east-1a'],
        CreatedTime: NOW,
        Instances: MEMBERS.map((id) => ({
          InstanceId: id,
          LifecycleState: 'InService',
          HealthStatus: 'Healthy',
          AvailabilityZone: 'us-east-1a',
          ProtectedFromScaleIn: false,
        })),
      },
    ],
  });
  cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
  ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
  ssm
    .on(GetCommandInvocationCommand)
    .resolves({ Status: 'Success', StandardOutputContent: '{"freedBytes":1,"usedPercentBefore":90,"usedPercentAfter":50}\n' });
  trail.on(LookupEventsCommand).resolves({ Events: [] });
});

const nothingWritten = (): void => {
  expect(ec2).not.toHaveReceivedCommand(CreateTagsCommand);
  expect(ec2).not.toHaveReceivedCommand(DeleteTagsCommand);
  expect(ec2).not.toHaveReceivedCommand(DeleteVolumeCommand);
  expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
};

describe('a payload that names instances', () => {
  it('prunes exactly those instances and never looks at, marks or deletes a volume', async () => {
    const report = await run({ instanceIds: ['i-00000000000000002'] });
    expect(ssm).toHaveReceivedCommandExactlyOnceWith(SendCommandCommand, { InstanceIds: ['i-00000000000000002'] });
    expect(ec2).not.toHaveReceivedCommand(DescribeVolumesCommand);
    expect(ec2).not.toHaveReceivedCommand(CreateTagsCommand);
    expect(report.actions.map((a) => [a.type, a.target, a.status])).toEqual([['prune-instance', 'i-00000000000000002', 'applied']]);
    expect(report.details).not.toHaveProperty('volumes');
  });

  it('with volumeIds too, acts on both: the named volumes and the named instances', async () => {
    const report = await run({ instanceIds: ['i-00000000000000001'], volumeIds: [ORPHAN] });
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(CreateTagsCommand, { Resources: [ORPHAN] });
    expect(ssm).toHaveReceivedCommandExactlyOnceWith(SendCommandCommand, { InstanceIds: ['i-00000000000000001'] });
    expect(report.actions.map((a) => [a.type, a.target])).toEqual([
      ['mark-volume', ORPHAN],
      ['prune-instance', 'i-00000000000000001'],
    ]);
  });

  it.each([
    [
      { instanceIds: ['i-0000000000000dead'] },
      'instanceIds: i-0000000000000dead is not a member of Auto Scaling group prod-asg (members: i-00000000000000001, i-00000000000000002)',
    ],
    [
      { instanceIds: ['i-00000000000000001', 'i-0000000000000dead', 'i-0000000000000beef'] },
      'instanceIds: i-0000000000000dead, i-0000000000000beef are not members of Auto Scaling group prod-asg',
    ],
    [{ instanceIds: ['i-0000000000000dead'], dryRun: true }, 'instanceIds: i-0000000000000dead is not a member'],
    [{ instanceIds: ['i-0000000000000dead'], volumeIds: [ORPHAN] }, 'instanceIds: i-0000000000000dead is not a member'],
  ])('a non-member in %o is an error naming it; nothing is changed', async (payload, message) => {
    const attempt = run(payload);
    await expect(attempt).rejects.toThrow(ValidationError);
    await expect(attempt).rejects.toThrow(message);
    nothingWritten();
  });
});

describe('a payload that names volumes only', () => {
  it('acts on those volumes and prunes no instance', async () => {
    const report = await run({ volumeIds: [ORPHAN] });
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(CreateTagsCommand, { Resources: [ORPHAN] });
    expect(asg).not.toHaveReceivedCommand(DescribeAutoScalingGroupsCommand);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(report.actions.map((a) => a.type)).toEqual(['mark-volume']);
  });
});
