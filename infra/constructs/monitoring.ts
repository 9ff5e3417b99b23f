import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import type { JobName } from '../config.ts';
import type { ControlPlane } from './control-plane.ts';
import { DISK_QUERY } from './control-plane.ts';

export interface MonitoringProps {
  controlPlane: ControlPlane;
  loadBalancer: elbv2.ApplicationLoadBalancer;
  targetGroup: elbv2.ApplicationTargetGroup;
  metricsNamespace: string;
  alarmEmail?: string;
  dashboardName: string;
}

/**
 * Job failure alarms → one SNS topic (optional e-mail): each function's Errors, each job's `FailedActions`
 * (EMF, dimensions service + dryRun) and replace-unhealthy-instances' `CircuitOpen`; plus a dashboard.
 */
export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'registry fleet: job failures', enforceSSL: true });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const notify = new cwActions.SnsAction(this.topic);

    const jobMetric = (job: string, name: string, dryRun: 'true' | 'false'): cloudwatch.Metric =>
      new cloudwatch.Metric({
        namespace: props.metricsNamespace,
        metricName: name,
        dimensionsMap: { service: job, dryRun },
        statistic: 'Sum',
        period: Duration.minutes(5),
      });
    const alarm = (id: string, description: string, metric: cloudwatch.IMetric): cloudwatch.Alarm => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmDescription: description,
        metric,
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(notify);
      this.alarms.push(a);
      return a;
    };

    const fns = props.controlPlane.functions;
    for (const [job, ops] of Object.entries(fns) as [JobName, (typeof fns)[JobName]][]) {
      const id = job.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
      alarm(`${id}Errors`, `${job}: the function failed (error, timeout or JobFailedError)`, ops.fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }));
      // Dry runs never apply, so only dryRun=false can count failed actions.
      alarm(`${id}FailedActions`, `${job}: at least one action failed`, jobMetric(job, 'FailedActions', 'false'));
    }
    alarm(
      'ReplaceCircuitOpen',
      'replace-unhealthy-instances refused to act: too much of the fleet is unhealthy at once (shared outage?)',
      new cloudwatch.MathExpression({
        expression: 'FILL(live, 0) + FILL(dry, 0)',
        usingMetrics: {
          live: jobMetric('replace-unhealthy-instances', 'CircuitOpen', 'false'),
          dry: jobMetric('replace-unhealthy-instances', 'CircuitOpen', 'true'),
        },
        label: 'CircuitOpen',
        period: Duration.minutes(5),
      }),
    );
    props.controlPlane.unhealthyHostsAlarm.addAlarmAction(notify);
    props.controlPlane.diskAlarm.addAlarmAction(notify);

    const jobs = Object.keys(fns) as JobName[];
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: props.dashboardName });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Targets',
        left: [props.targetGroup.metrics.healthyHostCount(), props.targetGroup.metrics.unhealthyHostCount()],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Load balancer',
        left: [props.loadBalancer.metrics.requestCount()],
        right: [
          props.loadBalancer.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT),
          props.loadBalancer.metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Root disk used % (max over instances)',
        left: [new cloudwatch.MathExpression({ expression: DISK_QUERY, label: 'max disk_used_percent', period: Duration.minutes(5) })],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Job errors', left: jobs.map((j) => fns[j].fn.metricErrors({ label: j })), width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Applied actions', left: jobs.map((j) => jobMetric(j, 'AppliedActions', 'false').with({ label: j })), width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Failed actions', left: jobs.map((j) => jobMetric(j, 'FailedActions', 'false').with({ label: j })), width: 8 }),
    );
    this.dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: [props.controlPlane.unhealthyHostsAlarm, props.controlPlane.diskAlarm, ...this.alarms], width: 24 }));
  }
}
