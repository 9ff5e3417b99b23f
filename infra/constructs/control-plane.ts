import { ArnFormat, Duration, SecretValue, Stack } from 'aws-cdk-lib';
import type * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { purgeDiskVolumesEnvironment } from '../../functions/purge-disk-volumes/config.ts';
import { purgeStaleUploadsEnvironment } from '../../functions/purge-stale-uploads/config.ts';
import { replaceUnhealthyInstancesEnvironment } from '../../functions/replace-unhealthy-instances/config.ts';
import { rotateCertificatesEnvironment } from '../../functions/rotate-certificates/config.ts';
import { syncHtpasswdEnvironment } from '../../functions/sync-htpasswd/config.ts';
import { JOBS } from '../config.ts';
import type { JobName } from '../config.ts';
import type { FleetDocuments } from './fleet-documents.ts';
import { jobStatements } from './job-policies.ts';
import { OpsFunction } from './ops-function.ts';
import type { RegistryStorage } from './storage.ts';
import { HTPASSWD_OBJECT_KEY, REGISTRY_KEY_PREFIX } from './storage.ts';

export interface ControlPlaneProps {
  /** `<stackName>-<job>` names the functions; also the fleet tag value. */
  namePrefix: string;
  functionsDir: string;
  dryRun: boolean;
  metricsNamespace: string;
  logRetention: logs.RetentionDays;
  schedules: Record<JobName, string>;
  storage: RegistryStorage;
  autoScalingGroup: autoscaling.AutoScalingGroup;
  targetGroup: elbv2.ApplicationTargetGroup;
  loadBalancer: elbv2.ApplicationLoadBalancer;
  httpsListener: elbv2.ApplicationListener;
  documents: FleetDocuments;
  fleetTag: { key: string; value: string };
  usersParameterPath: string;
  uploadMaxAge: string;
  diskUsedPercentThreshold: number;
  domainName: string;
  hostedZoneId?: string;
  certificate: { mode: 'acm' | 'acme'; acmeDirectoryUrl?: string; acmeEmail?: string };
  /** POWERTOOLS_LOG_LEVEL of every function (default INFO). */
  logLevel?: string;
  /** UnHealthyHostCount datapoints (1-minute periods) before the alarm invokes replace-unhealthy-instances (default 2). */
  unhealthyAlarmDatapoints?: number;
  /**
   * rotate-certificates: the listener's certificate. The ACM expiry rule names it (events for other certificates in
   * the account start no run), and it is the one certificate the job may re-import over without the fleet tag.
   */
  listenerCertificateArn?: string;
}

const TIMEOUTS: Record<JobName, Duration> = {
  'replace-unhealthy-instances': Duration.minutes(5),
  'purge-stale-uploads': Duration.minutes(15),
  'purge-disk-volumes': Duration.minutes(5),
  'rotate-certificates': Duration.minutes(15),
  'sync-htpasswd': Duration.minutes(5),
};

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

/**
 * The five jobs and what triggers them: schedules, the target group's UnHealthyHostCount alarm
 * (→ replace-unhealthy-instances), the disk alarm (→ purge-disk-volumes), SSM "Parameter Store Change"
 * under the users path (→ sync-htpasswd) and ACM's expiry event (→ rotate-certificates).
 */
export class ControlPlane extends Construct {
  readonly functions: Record<JobName, OpsFunction>;
  /** Each job's least-privilege statements (inventory mode gives its shards the purge job's `_uploads` ones). */
  readonly statements: Record<JobName, iam.PolicyStatement[]>;
  /** Each job's environment (inventory mode's shards plan with the purge job's). */
  readonly environments: Record<JobName, Record<string, string>>;
  readonly unhealthyHostsAlarm: cloudwatch.Alarm;
  readonly diskAlarm: cloudwatch.Alarm;
  readonly acmeAccountSecret?: secretsmanager.Secret;
  /** replace-unhealthy-instances' follow-ups: its own schedule group, and the role Scheduler assumes to invoke it. */
  readonly followUpGroup: scheduler.CfnScheduleGroup;
  readonly followUpRole: iam.Role;
  /** rotate-certificates (acme): a rotation's pending stage (the issued certificate and key until ACM has them). */
  readonly acmePendingSecret?: secretsmanager.Secret;
  /** The `fleet` dimension of every job metric (FLEET_NAME of every function): the stack name. */
  readonly fleetName: string;
  /** The disk alarm's Metrics Insights query: this fleet's instances only (the dashboard graphs it too). */
  readonly diskQuery: string;

  constructor(scope: Construct, id: string, props: ControlPlaneProps) {
    super(scope, id);
    const stack = Stack.of(this);
    if (!/^\/([^/]+\/)+$/.test(props.usersParameterPath)) {
      throw new Error(`ControlPlane: usersParameterPath "${props.usersParameterPath}" must start and end with /`);
    }
    if (props.certificate.mode === 'acme') {
      if (!props.certificate.acmeDirectoryUrl || !props.certificate.acmeEmail || !props.hostedZoneId) {
        throw new Error('ControlPlane: acme mode needs acmeDirectoryUrl, acmeEmail and hostedZoneId');
      }
      this.acmeAccountSecret = new secretsmanager.Secret(this, 'AcmeAccountSecret', {
        description: 'rotate-certificates: the ACME account key (written by the job on its first run)',
        secretStringValue: SecretValue.unsafePlainText('{}'),
      });
      // A new id (was `AcmePendingSecret`): the release before wrote the private key into the stages, and every old
      // version stays readable by VersionId. On upgrade CloudFormation creates this secret ({}: an order in flight is
      // placed again) and deletes the old one with all its versions, without a recovery window.
      this.acmePendingSecret = new secretsmanager.Secret(this, 'AcmePendingSecretNoKeys', {
        description: 'rotate-certificates: the pending stage of an ACME rotation (written by the job; {} = nothing pending)',
        secretStringValue: SecretValue.unsafePlainText('{}'),
      });
    }

    // replace-unhealthy-instances schedules its own confirming run: a dedicated group, and a role Scheduler
    // assumes that may invoke this one function only. The function's ARN is formatted from its name (the
    // function cannot reference itself in its own environment).
    const replaceName = `${props.namePrefix}-replace-unhealthy-instances`;
    const replaceArn = stack.formatArn({
      service: 'lambda',
      resource: 'function',
      resourceName: replaceName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.followUpGroup = new scheduler.CfnScheduleGroup(this, 'ReplaceFollowUps', { name: `${props.namePrefix}-replace-follow-ups` });
    this.followUpRole = new iam.Role(this, 'ReplaceFollowUpInvoke', {
      description: 'EventBridge Scheduler: invoke replace-unhealthy-instances for its follow-ups (nothing else)',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    });
    this.followUpRole.addToPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [replaceArn] }));
    const followUpGroupName = this.followUpGroup.name as string;

    const asgName = props.autoScalingGroup.autoScalingGroupName;
    this.fleetName = props.namePrefix;
    this.diskQuery = diskQuery(asgName);
    const bucketName = props.storage.bucket.bucketName;
    // Each job's variables through its own config module's builder: a name the function does not read, or a
    // missing required one, fails the typecheck here instead of the function's cold start.
    const environment: Record<JobName, Record<string, string>> = {
      'purge-stale-uploads': purgeStaleUploadsEnvironment({ REGISTRY_BUCKET: bucketName, UPLOAD_MAX_AGE: props.uploadMaxAge }),
      'replace-unhealthy-instances': replaceUnhealthyInstancesEnvironment({
        ASG_NAME: asgName,
        TARGET_GROUP_ARN: props.targetGroup.targetGroupArn,
        FOLLOW_UP_GROUP: followUpGroupName,
        FOLLOW_UP_ROLE_ARN: this.followUpRole.roleArn,
        FOLLOW_UP_TARGET_ARN: replaceArn,
      }),
      'purge-disk-volumes': purgeDiskVolumesEnvironment({
        FLEET_TAG_KEY: props.fleetTag.key,
        FLEET_TAG_VALUE: props.fleetTag.value,
        ASG_NAME: asgName,
        DISK_USED_PERCENT_THRESHOLD: String(props.diskUsedPercentThreshold),
        PRUNE_DOCUMENT_NAME: props.documents.pruneDockerName,
      }),
      'rotate-certificates': rotateCertificatesEnvironment({
        LISTENER_ARN: props.httpsListener.listenerArn,
        DOMAIN_NAME: props.domainName,
        CERTIFICATE_MODE: props.certificate.mode,
        FLEET_TAG_KEY: props.fleetTag.key,
        FLEET_TAG_VALUE: props.fleetTag.value,
        ...(props.hostedZoneId ? { HOSTED_ZONE_ID: props.hostedZoneId } : {}),
        ...(this.acmeAccountSecret
          ? {
              ACME_DIRECTORY_URL: props.certificate.acmeDirectoryUrl ?? '',
              ACME_EMAIL: props.certificate.acmeEmail ?? '',
              ACME_ACCOUNT_SECRET_ARN: this.acmeAccountSecret.secretArn,
              ...(this.acmePendingSecret ? { ACME_PENDING_SECRET_ARN: this.acmePendingSecret.secretArn } : {}),
            }
          : {}),
      }),
      'sync-htpasswd': syncHtpasswdEnvironment({
        HTPASSWD_PARAMETER_PATH: props.usersParameterPath,
        REGISTRY_BUCKET: bucketName,
        HTPASSWD_OBJECT_KEY,
        ASG_NAME: asgName,
        SYNC_DOCUMENT_NAME: props.documents.syncHtpasswdName,
      }),
    };
    const statements = jobStatements(stack, {
      bucketArn: props.storage.bucket.bucketArn,
      registryKeyPrefix: REGISTRY_KEY_PREFIX,
      htpasswdObjectKey: HTPASSWD_OBJECT_KEY,
      autoScalingGroupArn: props.autoScalingGroup.autoScalingGroupArn,
      listenerArn: props.httpsListener.listenerArn,
      syncDocumentName: props.documents.syncHtpasswdName,
      pruneDocumentName: props.documents.pruneDockerName,
      usersParameterPath: props.usersParameterPath,
      fleetTag: props.fleetTag,
      ...(props.hostedZoneId ? { hostedZoneId: props.hostedZoneId } : {}),
      ...(this.acmeAccountSecret ? { acmeAccountSecretArn: this.acmeAccountSecret.secretArn } : {}),
      followUp: { scheduleGroupName: followUpGroupName, invokeRoleArn: this.followUpRole.roleArn },
      ...(this.acmePendingSecret ? { acmePendingSecretArn: this.acmePendingSecret.secretArn } : {}),
      ...(props.listenerCertificateArn ? { listenerCertificateArn: props.listenerCertificateArn } : {}),
    });

    const fns = {} as Record<JobName, OpsFunction>;
    for (const job of JOBS) {
      fns[job] = new OpsFunction(this, toId(job), {
        job,
        functionsDir: props.functionsDir,
        functionName: `${props.namePrefix}-${job}`,
        timeout: TIMEOUTS[job],
        dryRun: props.dryRun,
        metricsNamespace: props.metricsNamespace,
        environment: environment[job],
        statements: statements[job],
        schedule: props.schedules[job],
        logRetention: props.logRetention,
        ...(props.logLevel ? { logLevel: props.logLevel } : {}),
        fleetName: this.fleetName,
      });
    }
    this.functions = fns;
    this.statements = statements;
    this.environments = environment;

    // Target group health → replace-unhealthy-instances (the alarm action invokes the function directly).
    this.unhealthyHostsAlarm = new cloudwatch.Alarm(this, 'UnhealthyHostsAlarm', {
      alarmDescription: 'a registry instance fails the load balancer health check: invokes replace-unhealthy-instances',
      metric: props.targetGroup.metrics.unhealthyHostCount({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // Detection costs datapoints × 1 minute (+ CloudWatch's publication delay): 2 by default, 1 with the faster context.
      evaluationPeriods: props.unhealthyAlarmDatapoints ?? 2,
      datapointsToAlarm: props.unhealthyAlarmDatapoints ?? 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.unhealthyHostsAlarm.addAlarmAction(new cwActions.LambdaAction(fns['replace-unhealthy-instances'].fn));

    // Any of this fleet's instances' root disk over the threshold → purge-disk-volumes (which prunes it over SSM).
    this.diskAlarm = new cloudwatch.Alarm(this, 'DiskAlarm', {
      alarmDescription: `a registry instance's root disk is over ${props.diskUsedPercentThreshold}% used: invokes purge-disk-volumes`,
      metric: new cloudwatch.MathExpression({ expression: this.diskQuery, label: 'max disk_used_percent', period: Duration.minutes(5) }),
      threshold: props.diskUsedPercentThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.diskAlarm.addAlarmAction(new cwActions.LambdaAction(fns['purge-disk-volumes'].fn));

    new events.Rule(this, 'UsersChanged', {
      description: 'a registry user parameter changed: invokes sync-htpasswd',
      eventPattern: {
        source: ['aws.ssm'],
        detailType: ['Parameter Store Change'],
        detail: { name: events.Match.prefix(props.usersParameterPath) },
      },
      targets: [new targets.LambdaFunction(fns['sync-htpasswd'].fn)],
    });

    new events.Rule(this, 'CertificateExpiring', {
      description: 'an ACM certificate approaches expiry: invokes rotate-certificates',
      // Only the listener's certificate: ACM sends this event daily for every expiring certificate in the account.
      // After an acm-mode rotation the listener holds a new ARN; the daily schedule covers it (and the plan ignores
      // an event for a certificate that is not the listener's).
      eventPattern: {
        source: ['aws.acm'],
        detailType: ['ACM Certificate Approaching Expiration'],
        ...(props.listenerCertificateArn ? { resources: [props.listenerCertificateArn] } : {}),
      },
      targets: [new targets.LambdaFunction(fns['rotate-certificates'].fn)],
    });
  }
}

function toId(job: string): string {
  return job.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}
