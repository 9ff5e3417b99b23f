import { SecretValue, Stack } from 'aws-cdk-lib';
import type * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { JobName } from '../config.ts';
import type { FleetDocuments } from './fleet-documents.ts';
import { PurgeDiskVolumes } from './jobs/purge-disk-volumes.ts';
import { PurgeStaleUploads } from './jobs/purge-stale-uploads.ts';
import { ReplaceUnhealthyInstances, replaceUnhealthyInstancesArn } from './jobs/replace-unhealthy-instances.ts';
import { RotateCertificates } from './jobs/rotate-certificates.ts';
import { SyncHtpasswd } from './jobs/sync-htpasswd.ts';
import type { OpsFunction } from './ops-function.ts';
import type { RegistryStorage } from './storage.ts';

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

/**
 * The five jobs, one construct each (infra/constructs/jobs/<job>.ts: its environment builder, statements, timeout
 * and trigger), and what they share: the ACME secrets and replace-unhealthy-instances' follow-up group and role.
 * Triggers: schedules, the target group's UnHealthyHostCount alarm (→ replace-unhealthy-instances), the disk alarm
 * (→ purge-disk-volumes), SSM "Parameter Store Change" under the users path (→ sync-htpasswd) and ACM's expiry
 * event (→ rotate-certificates).
 */
export class ControlPlane extends Construct {
  readonly functions: Record<JobName, OpsFunction>;
  /** purge-stale-uploads (inventory mode's shards plan with its environment and get its `_uploads` statements). */
  readonly purgeStaleUploads: PurgeStaleUploads;
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
    // assumes that may invoke this one function only.
    this.followUpGroup = new scheduler.CfnScheduleGroup(this, 'ReplaceFollowUps', { name: `${props.namePrefix}-replace-follow-ups` });
    this.followUpRole = new iam.Role(this, 'ReplaceFollowUpInvoke', {
      description: 'EventBridge Scheduler: invoke replace-unhealthy-instances for its follow-ups (nothing else)',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    });
    this.followUpRole.addToPolicy(
      new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [replaceUnhealthyInstancesArn(stack, props.namePrefix)] }),
    );

    this.fleetName = props.namePrefix;
    // Each job's construct keeps the id its function had under this one (and creates its alarm or rule here), so
    // every logical id stays what it was: a fixed-name function whose id changed would be replaced, and fail.
    const common = (job: JobName) => ({
      namePrefix: props.namePrefix,
      functionsDir: props.functionsDir,
      dryRun: props.dryRun,
      metricsNamespace: props.metricsNamespace,
      logRetention: props.logRetention,
      ...(props.logLevel ? { logLevel: props.logLevel } : {}),
      fleetName: this.fleetName,
      schedule: props.schedules[job],
    });
    const bucket = props.storage.bucket;
    const replace = new ReplaceUnhealthyInstances(this, 'ReplaceUnhealthyInstances', {
      ...common('replace-unhealthy-instances'),
      autoScalingGroup: props.autoScalingGroup,
      targetGroup: props.targetGroup,
      fleetTag: props.fleetTag,
      followUp: { scheduleGroupName: this.followUpGroup.name as string, invokeRoleArn: this.followUpRole.roleArn },
      ...(props.unhealthyAlarmDatapoints === undefined ? {} : { unhealthyAlarmDatapoints: props.unhealthyAlarmDatapoints }),
    });
    const purge = new PurgeStaleUploads(this, 'PurgeStaleUploads', {
      ...common('purge-stale-uploads'),
      bucket,
      uploadMaxAge: props.uploadMaxAge,
    });
    const disk = new PurgeDiskVolumes(this, 'PurgeDiskVolumes', {
      ...common('purge-disk-volumes'),
      autoScalingGroup: props.autoScalingGroup,
      fleetTag: props.fleetTag,
      diskUsedPercentThreshold: props.diskUsedPercentThreshold,
      pruneDocumentName: props.documents.pruneDockerName,
    });
    const rotate = new RotateCertificates(this, 'RotateCertificates', {
      ...common('rotate-certificates'),
      httpsListener: props.httpsListener,
      domainName: props.domainName,
      certificate: props.certificate,
      fleetTag: props.fleetTag,
      ...(props.hostedZoneId ? { hostedZoneId: props.hostedZoneId } : {}),
      ...(this.acmeAccountSecret && this.acmePendingSecret
        ? { acmeSecrets: { account: this.acmeAccountSecret, pending: this.acmePendingSecret } }
        : {}),
      ...(props.listenerCertificateArn ? { listenerCertificateArn: props.listenerCertificateArn } : {}),
    });
    const sync = new SyncHtpasswd(this, 'SyncHtpasswd', {
      ...common('sync-htpasswd'),
      bucket,
      autoScalingGroup: props.autoScalingGroup,
      fleetTag: props.fleetTag,
      usersParameterPath: props.usersParameterPath,
      syncDocumentName: props.documents.syncHtpasswdName,
    });
    this.functions = {
      'replace-unhealthy-instances': replace,
      'purge-stale-uploads': purge,
      'purge-disk-volumes': disk,
      'rotate-certificates': rotate,
      'sync-htpasswd': sync,
    };
    this.purgeStaleUploads = purge;
    this.unhealthyHostsAlarm = replace.unhealthyHostsAlarm;
    this.diskAlarm = disk.diskAlarm;
    this.diskQuery = disk.diskQuery;
  }
}
