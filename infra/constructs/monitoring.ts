import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { commonEnvironment } from '../../shared/config.ts';
import type { JobName } from '../config.ts';
import { schedulePeriodSeconds } from '../schedule-period.ts';
import type { ControlPlane } from './control-plane.ts';

export interface MonitoringProps {
  controlPlane: ControlPlane;
  loadBalancer: elbv2.ApplicationLoadBalancer;
  targetGroup: elbv2.ApplicationTargetGroup;
  metricsNamespace: string;
  alarmEmail?: string;
  dashboardName: string;
  /** Each job's schedule: its "has not succeeded for 2 schedule periods" alarm uses the schedule's period. */
  schedules?: Record<JobName, string>;
  /** The circuit-breaker page fires when it has been open this long (minutes, default 30). */
  circuitOpenAlarmMinutes?: number;
}

/** Certificate days left below this pages (the job renews at RENEW_BEFORE, 30 days by default: this means it has not). */
export const CERTIFICATE_DAYS_LEFT_ALARM = 14;

/**
 * Job failure alarms → one SNS topic (optional e-mail): each function's Errors, each job's `FailedActions`
 * (EMF, dimensions service + dryRun + fleet) and replace-unhealthy-instances' `CircuitOpen`; plus a dashboard.
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
        // `fleet` (FLEET_NAME, the stack name): another fleet's runs in this account and region never count here.
        dimensionsMap: { service: job, dryRun, fleet: props.controlPlane.fleetName },
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
      alarm(
        `${id}Errors`,
        `${job}: the function failed (error, timeout or JobFailedError)`,
        ops.fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      );
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
    this.addPages(props, jobMetric, notify);
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
        left: [
          new cloudwatch.MathExpression({
            expression: props.controlPlane.diskQuery,
            label: 'max disk_used_percent',
            period: Duration.minutes(5),
          }),
        ],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Job errors', left: jobs.map((j) => fns[j].fn.metricErrors({ label: j })), width: 8 }),
      new cloudwatch.GraphWidget({
        title: 'Applied actions',
        left: jobs.map((j) => jobMetric(j, 'AppliedActions', 'false').with({ label: j })),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Failed actions',
        left: jobs.map((j) => jobMetric(j, 'FailedActions', 'false').with({ label: j })),
        width: 8,
      }),
    );
    // Run notifications (shared/notify.ts) go to the same topic, with job/status/dryRun attributes to filter on.
    for (const ops of Object.values(fns)) {
      for (const [name, value] of Object.entries(commonEnvironment({ NOTIFY_TOPIC_ARN: this.topic.topicArn })))
        ops.fn.addEnvironment(name, value);
      this.topic.grantPublish(ops.fn);
    }
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms',
        alarms: [props.controlPlane.unhealthyHostsAlarm, props.controlPlane.diskAlarm, ...this.alarms],
        width: 24,
      }),
    );
  }

  /**
   * States that need a person, from the jobs' own metrics (the names are the jobs' contract): a stalled
   * replacement, the replacement budget exhausted, a certificate close to expiry, the circuit breaker open for
   * long, and a job that has not succeeded (or not run) for 2 of its schedule periods. Dry runs count too: a
   * leashed stack still observes, and a stalled or expiring fleet needs a person either way.
   */
  private addPages(
    props: MonitoringProps,
    jobMetric: (job: string, name: string, dryRun: 'true' | 'false') => cloudwatch.Metric,
    notify: cwActions.SnsAction,
  ): void {
    const either = (
      job: string,
      name: string,
      period: Duration,
      statistic: string,
      fill: number,
      combine = 'MAX',
    ): cloudwatch.MathExpression =>
      new cloudwatch.MathExpression({
        expression: `${combine}([FILL(live, ${fill}), FILL(dry, ${fill})])`,
        usingMetrics: {
          live: jobMetric(job, name, 'false').with({ period, statistic }),
          dry: jobMetric(job, name, 'true').with({ period, statistic }),
        },
        label: name,
        period,
      });
    const page = (id: string, description: string, options: Omit<cloudwatch.AlarmProps, 'alarmDescription'>): cloudwatch.Alarm => {
      const a = new cloudwatch.Alarm(this, id, { alarmDescription: description, ...options });
      a.addAlarmAction(notify);
      this.alarms.push(a);
      return a;
    };
    const five = Duration.minutes(5);
    const atLeastOne = {
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    };
    page(
      'ReplacementStalled',
      'replace-unhealthy-instances: a replacement does not serve and the job will not terminate the old instance: check the ' +
        "group's activities (runbook)",
      {
        metric: either('replace-unhealthy-instances', 'ReplacementStalled', five, 'Maximum', 0),
        ...atLeastOne,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      },
    );
    page(
      'ReplacementBudgetExhausted',
      'replace-unhealthy-instances: more instances need replacing than it may replace: unhealthy instances wait (runbook)',
      {
        metric: either('replace-unhealthy-instances', 'ReplacementBudgetExhausted', five, 'Maximum', 0),
        ...atLeastOne,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      },
    );
    // Every run of a stalled listing succeeds, so nothing else tells that stale uploads are no longer purged.
    page(
      'PurgeListingStalled',
      'purge-stale-uploads: its listing was discarded and started over, or not completed in 7 runs: stale uploads wait (runbook)',
      {
        metric: either('purge-stale-uploads', 'ListingStalled', Duration.days(1), 'Maximum', 0),
        ...atLeastOne,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      },
    );
    page(
      'CertificateDaysLeft',
      `rotate-certificates: the served certificate expires in less than ${CERTIFICATE_DAYS_LEFT_ALARM} days and has not been ` +
        `rotated (runbook)`,
      {
        metric: either('rotate-certificates', 'CertificateDaysLeft', Duration.days(1), 'Minimum', 100_000, 'MIN'),
        threshold: CERTIFICATE_DAYS_LEFT_ALARM,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      },
    );
    const minutes = props.circuitOpenAlarmMinutes ?? 30;
    const periods = Math.max(1, Math.ceil(minutes / 5));
    page(
      'CircuitOpenTooLong',
      `replace-unhealthy-instances: the circuit breaker has been open for ${periods * 5} minutes: nothing is being replaced (runbook)`,
      {
        metric: either('replace-unhealthy-instances', 'CircuitOpen', five, 'Maximum', 0),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: periods,
        datapointsToAlarm: periods,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      },
    );
    for (const [job, schedule] of Object.entries(props.schedules ?? {})) {
      const period = Duration.seconds(schedulePeriodSeconds(schedule));
      // A missing or always-failing schedule is silent otherwise: no run means no RunSucceeded, which breaches.
      page(
        `${job.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase())}NotSucceeding`,
        `${job}: no successful run for 2 schedule periods (${schedule}): it fails every time or does not run (runbook)`,
        {
          metric: either(job, 'RunSucceeded', period, 'Sum', 0, 'SUM'),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
          evaluationPeriods: 2,
          datapointsToAlarm: 2,
          treatMissingData: cloudwatch.TreatMissingData.BREACHING,
        },
      );
    }
  }
}
