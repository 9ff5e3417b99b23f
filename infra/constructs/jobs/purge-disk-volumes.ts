import { Duration, Stack } from 'aws-cdk-lib';
import type * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { purgeDiskVolumesEnvironment } from '../../../functions/purge-disk-volumes/config.ts';
import { MARK_TAG } from '../../../shared/fleet-tags.ts';
import { allow, describeGroups, fleetTagged, sendCommandStatements, stackArn } from '../job-policies.ts';
import { OpsFunction } from '../ops-function.ts';
import { jobFunctionProps } from './job-props.ts';
import type { JobProps } from './job-props.ts';

export interface PurgeDiskVolumesProps extends JobProps {
  autoScalingGroup: autoscaling.AutoScalingGroup;
  fleetTag: { key: string; value: string };
  diskUsedPercentThreshold: number;
  /** The SSM document that prunes an instance's Docker data. */
  pruneDocumentName: string;
}

/**
 * The root-disk reading of one fleet's instances: the CloudWatch agent appends InstanceId and AutoScalingGroupName
 * (and then drops `host`), so the series it publishes has exactly these dimensions (infra/user-data.ts). Naming the
 * group keeps fleet B's full disk from setting off (and pruning through) fleet A's alarm.
 */
export function diskQuery(autoScalingGroupName: string): string {
  return (
    `SELECT MAX(disk_used_percent) FROM SCHEMA(CWAgent, AutoScalingGroupName, InstanceId, fstype, path) WHERE ` +
    `AutoScalingGroupName = '${autoScalingGroupName}' AND path = '/'`
  );
}

/** purge-disk-volumes: its function, least privilege, and the disk alarm that invokes it. */
export class PurgeDiskVolumes extends OpsFunction {
  readonly diskAlarm: cloudwatch.Alarm;
  /** The disk alarm's Metrics Insights query: this fleet's instances only (the dashboard graphs it too). */
  readonly diskQuery: string;

  constructor(scope: Construct, id: string, props: PurgeDiskVolumesProps) {
    const asgName = props.autoScalingGroup.autoScalingGroupName;
    const environment = purgeDiskVolumesEnvironment({
      FLEET_TAG_KEY: props.fleetTag.key,
      FLEET_TAG_VALUE: props.fleetTag.value,
      ASG_NAME: asgName,
      DISK_USED_PERCENT_THRESHOLD: String(props.diskUsedPercentThreshold),
      PRUNE_DOCUMENT_NAME: props.pruneDocumentName,
    });
    const statements = purgeDiskVolumesStatements(Stack.of(scope), props.fleetTag, props.pruneDocumentName);
    super(scope, id, jobFunctionProps('purge-disk-volumes', props, { timeout: Duration.minutes(5), environment, statements }));
    this.diskQuery = diskQuery(asgName);

    // Any of this fleet's instances' root disk over the threshold → this job (which prunes it over SSM). In the
    // control plane's scope, not this one: the alarm's logical id predates this construct.
    this.diskAlarm = new cloudwatch.Alarm(scope, 'DiskAlarm', {
      alarmDescription: `a registry instance's root disk is over ${props.diskUsedPercentThreshold}% used: invokes purge-disk-volumes`,
      metric: new cloudwatch.MathExpression({ expression: this.diskQuery, label: 'max disk_used_percent', period: Duration.minutes(5) }),
      threshold: props.diskUsedPercentThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.diskAlarm.addAlarmAction(new cwActions.LambdaAction(this.fn));
  }
}

function purgeDiskVolumesStatements(
  stack: Stack,
  fleetTag: { key: string; value: string },
  pruneDocumentName: string,
): iam.PolicyStatement[] {
  const volumes = stackArn(stack, 'ec2', 'volume', '*');
  const snapshots = stackArn(stack, 'ec2', 'snapshot', '*', '');
  return [
    allow(['ec2:DescribeVolumes', 'ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'cloudwatch:GetMetricData'], ['*']),
    describeGroups(),
    allow(['ec2:DeleteVolume', 'ec2:CreateSnapshot'], [volumes], fleetTagged(fleetTag, 'aws:ResourceTag')),
    // Its mark on the fleet's volumes, and no other key: a faulty plan cannot strip the keep or the fleet tag.
    // ForAllValues holds for a request naming no key (DeleteTags without Tags removes them all): Null forbids that.
    allow(['ec2:CreateTags', 'ec2:DeleteTags'], [volumes], {
      ...fleetTagged(fleetTag, 'aws:ResourceTag'),
      'ForAllValues:StringEquals': { 'aws:TagKeys': [MARK_TAG] },
      Null: { 'aws:TagKeys': 'false' },
    }),
    // A mark counts only if the volume's CloudTrail history shows no attach since; LookupEvents has no resource scope.
    allow(['cloudtrail:LookupEvents'], ['*']),
    allow(['ec2:CreateSnapshot'], [snapshots]),
    allow(['ec2:CreateTags'], [snapshots], { StringEquals: { 'ec2:CreateAction': 'CreateSnapshot' } }),
    ...sendCommandStatements(stack, fleetTag, pruneDocumentName),
  ];
}
