import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import type * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { replaceUnhealthyInstancesEnvironment } from '../../../functions/replace-unhealthy-instances/config.ts';
import { FOLLOW_UP_SCHEDULE_PREFIX, REPLACEMENTS_TAG, REPLACING_TAG, UNHEALTHY_SINCE_TAG } from '../../../shared/fleet-tags.ts';
import { allow, fleetTagged, stackArn } from '../job-policies.ts';
import { OpsFunction } from '../ops-function.ts';
import { jobFunctionProps } from './job-props.ts';
import type { JobProps } from './job-props.ts';

export interface ReplaceUnhealthyInstancesProps extends JobProps {
  autoScalingGroup: autoscaling.AutoScalingGroup;
  targetGroup: elbv2.ApplicationTargetGroup;
  fleetTag: { key: string; value: string };
  /** Its follow-ups: the schedule group and the role Scheduler assumes to invoke it (the control plane's). */
  followUp: { scheduleGroupName: string; invokeRoleArn: string };
  /** UnHealthyHostCount datapoints (1-minute periods) before the alarm invokes the job (default 2). */
  unhealthyAlarmDatapoints?: number;
}

/**
 * The function's ARN formatted from its name: its own environment and the follow-up role's policy name it, and a
 * function cannot reference itself.
 */
export function replaceUnhealthyInstancesArn(stack: Stack, namePrefix: string): string {
  return stack.formatArn({
    service: 'lambda',
    resource: 'function',
    resourceName: `${namePrefix}-replace-unhealthy-instances`,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** replace-unhealthy-instances: its function, least privilege, and the target group's UnHealthyHostCount alarm. */
export class ReplaceUnhealthyInstances extends OpsFunction {
  readonly unhealthyHostsAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: ReplaceUnhealthyInstancesProps) {
    const stack = Stack.of(scope);
    const asg = props.autoScalingGroup;
    const environment = replaceUnhealthyInstancesEnvironment({
      ASG_NAME: asg.autoScalingGroupName,
      TARGET_GROUP_ARN: props.targetGroup.targetGroupArn,
      FOLLOW_UP_GROUP: props.followUp.scheduleGroupName,
      FOLLOW_UP_ROLE_ARN: props.followUp.invokeRoleArn,
      FOLLOW_UP_TARGET_ARN: replaceUnhealthyInstancesArn(stack, props.namePrefix),
    });
    const statements = replaceUnhealthyInstancesStatements(stack, asg.autoScalingGroupArn, props.fleetTag, props.followUp);
    super(scope, id, jobFunctionProps('replace-unhealthy-instances', props, { timeout: Duration.minutes(5), environment, statements }));

    // In the control plane's scope, not this one: the alarm's logical id predates this construct, and a new one
    // would make CloudFormation replace the alarm.
    this.unhealthyHostsAlarm = new cloudwatch.Alarm(scope, 'UnhealthyHostsAlarm', {
      alarmDescription: 'a registry instance fails the load balancer health check: invokes replace-unhealthy-instances',
      metric: props.targetGroup.metrics.unhealthyHostCount({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // Detection costs datapoints × 1 minute (+ CloudWatch's publication delay): 2 by default, 1 with the faster context.
      evaluationPeriods: props.unhealthyAlarmDatapoints ?? 2,
      datapointsToAlarm: props.unhealthyAlarmDatapoints ?? 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.unhealthyHostsAlarm.addAlarmAction(new cwActions.LambdaAction(this.fn));
  }
}

function replaceUnhealthyInstancesStatements(
  stack: Stack,
  autoScalingGroupArn: string,
  fleetTag: { key: string; value: string },
  followUp: ReplaceUnhealthyInstancesProps['followUp'],
): iam.PolicyStatement[] {
  return [
    allow(
      [
        'autoscaling:DescribeAutoScalingGroups',
        'autoscaling:DescribeScalingActivities',
        'autoscaling:DescribeInstanceRefreshes',
        'autoscaling:DescribeAutoScalingInstances',
        'elasticloadbalancing:DescribeTargetHealth',
        'ec2:DescribeInstanceStatus',
        'ec2:DescribeInstances',
      ],
      ['*'],
    ),
    allow(
      ['autoscaling:SetInstanceHealth', 'autoscaling:SetDesiredCapacity', 'autoscaling:TerminateInstanceInAutoScalingGroup'],
      [autoScalingGroupArn],
    ),
    // The job's two marker tags on the fleet's instances (first seen unhealthy; replacement in progress).
    // ForAllValues holds for a request naming no key (DeleteTags without Tags removes them all): Null forbids that.
    allow(['ec2:CreateTags', 'ec2:DeleteTags'], [stackArn(stack, 'ec2', 'instance', '*')], {
      ...fleetTagged(fleetTag, 'aws:ResourceTag'),
      'ForAllValues:StringEquals': { 'aws:TagKeys': [UNHEALTHY_SINCE_TAG, REPLACING_TAG] },
      Null: { 'aws:TagKeys': 'false' },
    }),
    // The replacement budget's ledger: one tag key, on the group only.
    allow(['autoscaling:DescribeTags'], ['*']),
    allow(['autoscaling:CreateOrUpdateTags'], [autoScalingGroupArn], {
      'ForAllValues:StringEquals': { 'aws:TagKeys': [REPLACEMENTS_TAG] },
    }),
    // Its follow-ups: create and delete only its own schedules (the name prefix, in its own group), and hand
    // Scheduler only the role that can invoke nothing but this function.
    allow(
      ['scheduler:CreateSchedule', 'scheduler:DeleteSchedule'],
      [stackArn(stack, 'scheduler', 'schedule', `${followUp.scheduleGroupName}/${FOLLOW_UP_SCHEDULE_PREFIX}*`)],
    ),
    allow(['iam:PassRole'], [followUp.invokeRoleArn], { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } }),
  ];
}
