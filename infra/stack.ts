import { CfnOutput, Stack, Tags } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { parseDuration } from '../shared/duration.ts';
import { ALL_JOBS, GC_JOB, type FleetConfig, type JobName } from './config.ts';
import { CollectGarbage } from './constructs/collect-garbage.ts';
import { ControlPlane } from './constructs/control-plane.ts';
import { FleetDocuments } from './constructs/fleet-documents.ts';
import { FleetBoot, RegistryFleet } from './constructs/fleet.ts';
import { RunHistory } from './constructs/history.ts';
import { LogQueries } from './constructs/log-queries.ts';
import { RegistryLoadBalancer } from './constructs/load-balancer.ts';
import { Monitoring } from './constructs/monitoring.ts';
import { denyUserParameters, LISTING_CHECKPOINT_SID } from './constructs/job-policies.ts';
import { PurgeInventory } from './constructs/purge-inventory.ts';
import { DockerHubPullThroughCache } from './constructs/pull-through-cache.ts';
import { RegistryNetwork } from './constructs/network.ts';
import { HTPASSWD_OBJECT_KEY, REGISTRY_KEY_PREFIX, RegistryStorage } from './constructs/storage.ts';
import { applyHistoryNagSuppressions, applyNagSuppressions, applyPullThroughNagSuppressions } from './nag-suppressions.ts';
import { pullThroughImage } from './pull-through.ts';
import type { FleetScripts } from './user-data.ts';
import { readFleetScripts, renderUserData } from './user-data.ts';

export interface RegistryFleetStackProps extends StackProps {
  config: FleetConfig;
  /** The on-instance scripts (default: read from infra/assets/). */
  scripts?: FleetScripts;
}

/** The whole fleet (ARCHITECTURE §7). Composes the constructs; every decision lives in one of them. */
export class RegistryFleetStack extends Stack {
  constructor(scope: Construct, id: string, props: RegistryFleetStackProps) {
    super(scope, id, props);
    const c = props.config;
    const scripts = props.scripts ?? readFleetScripts();
    const fleetTag = { key: c.fleetTagKey, value: this.stackName };
    const logRetention = c.logRetentionDays as logs.RetentionDays;
    const vpcGiven = c.vpcId !== undefined;

    const network = new RegistryNetwork(this, 'Network', {
      logRetention,
      natGatewayPerAz: c.natGatewayPerAz,
      ...(vpcGiven
        ? {
            existing: {
              vpcId: c.vpcId as string,
              availabilityZones: c.availabilityZones ?? [],
              publicSubnetIds: c.publicSubnetIds ?? [],
              privateSubnetIds: c.privateSubnetIds ?? [],
              privateRouteTableIds: c.privateRouteTableIds ?? [],
            },
          }
        : {}),
    });

    const storage = new RegistryStorage(this, 'Storage', {
      uploadMaxAgeMs: parseDuration(c.uploadMaxAge) ?? 0,
      serverAccessLogs: c.bucketAccessLogs,
      undoDays: c.gcUndoDays,
    });
    const boot = new FleetBoot(this, 'Boot', { logRetention });
    // Optional: the registry image from this account's ECR pull-through cache of Docker Hub (digest pin kept).
    const cache = c.ecrPullThroughCache
      ? new DockerHubPullThroughCache(this, 'PullThroughCache', {
          prefix: c.ecrPullThroughPrefix,
          credentialArn: c.ecrPullThroughCredentialArn as string,
        })
      : undefined;
    const cached = cache ? pullThroughImage(c.registryImage, { registryHost: cache.registryHost, prefix: cache.prefix }) : undefined;
    const userData = renderUserData({
      logGroup: boot.logGroup.logGroupName,
      waitHandleUrl: boot.waitHandle.ref,
      // The instance tells the stack why it is late a few minutes before the wait condition times out.
      bootReportAfterSeconds: (c.bootTimeoutMinutes - 5) * 60,
      region: this.region,
      bucket: storage.bucket.bucketName,
      registryImage: cached?.image ?? c.registryImage,
      ...(cache && cached ? { pullThrough: { registryHost: cache.registryHost, warmImage: cached.warmImage } } : {}),
      httpSecretArn: storage.httpSecret.secretArn,
      htpasswdSource: `s3://${storage.bucket.bucketName}/${HTPASSWD_OBJECT_KEY}`,
      drainTimeoutSeconds: c.drainTimeoutSeconds,
      // Retention deletes tags and manifests the way distribution's DELETE does; only then may the registry delete too.
      registryDeleteEnabled: c.gcRetention !== undefined,
      scripts,
    });
    const fleet = new RegistryFleet(this, 'Fleet', {
      vpc: network.vpc,
      storage,
      instanceType: c.instanceType,
      minCapacity: c.minCapacity,
      desiredCapacity: c.desiredCapacity,
      maxCapacity: c.maxCapacity,
      rootVolumeGiB: c.rootVolumeGiB,
      userData,
      fleetTag,
      drainTimeoutSeconds: c.drainTimeoutSeconds,
    });
    cache?.grantPull(fleet.role);
    new iam.ManagedPolicy(this, 'InstanceUsersDeny', { statements: denyUserParameters(this, c.usersParameterPath), roles: [fleet.role] });
    const hostedZone = c.hostedZoneId && c.hostedZoneName ? { id: c.hostedZoneId, name: c.hostedZoneName } : undefined;
    const lb = new RegistryLoadBalancer(this, 'LoadBalancer', {
      vpc: network.vpc,
      fleet: fleet.autoScalingGroup,
      domainName: c.domainName,
      ingressCidrs: c.ingressCidrs,
      ...(c.albAccessLogs ? { accessLogsBucket: storage.logsBucket } : {}),
      fleetTag,
      deregistrationDelaySeconds: c.drainTimeoutSeconds,
      ...(hostedZone ? { hostedZone } : {}),
      ...(c.certificateArn ? { certificateArn: c.certificateArn } : {}),
    });
    const documents = new FleetDocuments(this, 'Documents', {
      namePrefix: this.stackName,
      installHtpasswdScript: scripts.installHtpasswd,
      pruneDockerScript: scripts.pruneDocker,
    });
    const schedules: Record<JobName, string> = {
      'replace-unhealthy-instances': c.replaceUnhealthyInstancesSchedule,
      'purge-stale-uploads': c.purgeStaleUploadsSchedule,
      'purge-disk-volumes': c.purgeDiskVolumesSchedule,
      'rotate-certificates': c.rotateCertificatesSchedule,
      'sync-htpasswd': c.syncHtpasswdSchedule,
    };
    const controlPlane = new ControlPlane(this, 'ControlPlane', {
      namePrefix: this.stackName,
      functionsDir: c.functionsDir,
      dryRun: c.dryRun,
      metricsNamespace: c.metricsNamespace,
      logRetention,
      schedules,
      storage,
      autoScalingGroup: fleet.autoScalingGroup,
      targetGroup: lb.targetGroup,
      loadBalancer: lb.loadBalancer,
      httpsListener: lb.httpsListener,
      listenerCertificateArn: lb.certificate.certificateArn,
      documents,
      fleetTag,
      usersParameterPath: c.usersParameterPath,
      uploadMaxAge: c.uploadMaxAge,
      diskUsedPercentThreshold: c.diskUsedPercentThreshold,
      unhealthyAlarmDatapoints: c.unhealthyAlarmDatapoints,
      domainName: c.domainName,
      ...(c.hostedZoneId ? { hostedZoneId: c.hostedZoneId } : {}),
      certificate: {
        mode: c.certificateMode,
        ...(c.acmeDirectoryUrl ? { acmeDirectoryUrl: c.acmeDirectoryUrl } : {}),
        ...(c.acmeEmail ? { acmeEmail: c.acmeEmail } : {}),
      },
      logLevel: c.logLevel,
    });
    const gc = new CollectGarbage(this, 'CollectGarbage', {
      namePrefix: this.stackName,
      functionsDir: c.functionsDir,
      bucket: storage.bucket,
      dryRun: c.dryRun,
      mode: c.gcMode,
      schedule: c.gcSchedule,
      grace: c.gcGrace,
      maxDeletesPerRun: c.gcMaxDeletesPerRun,
      ...(c.gcRetention ? { retention: c.gcRetention } : {}),
      metricsNamespace: c.metricsNamespace,
      logRetention,
      logLevel: c.logLevel,
      fleetName: controlPlane.fleetName,
    });
    gc.shareLease(controlPlane.functions['purge-stale-uploads'].fn);
    const history = new RunHistory(this, 'History', {
      retentionDays: c.historyRetentionDays,
      jobs: ALL_JOBS,
      glueTable: c.historyGlueTable,
      namePrefix: this.stackName,
    });
    for (const [job, ops] of Object.entries(controlPlane.functions)) history.grantJob(job, ops.fn);
    gc.recordTo(history);
    new LogQueries(this, 'LogQueries', {
      folder: this.stackName,
      logGroups: [...Object.values(controlPlane.functions), gc.ops].map((ops) => ops.logGroup),
    });
    const monitoring = new Monitoring(this, 'Monitoring', {
      controlPlane,
      loadBalancer: lb.loadBalancer,
      targetGroup: lb.targetGroup,
      metricsNamespace: c.metricsNamespace,
      // Dashboards are global (not per region): the region keeps two regions' fleets of one name apart.
      dashboardName: `${this.stackName}-${this.region}`,
      schedules,
      circuitOpenAlarmMinutes: c.circuitOpenAlarmMinutes,
      ...(c.alarmEmail ? { alarmEmail: c.alarmEmail } : {}),
    });
    gc.alarmTo(monitoring.topic);

    if (c.purgeMode === 'inventory') {
      const purge = controlPlane.functions['purge-stale-uploads'];
      new PurgeInventory(this, 'PurgeInventory', {
        namePrefix: this.stackName,
        functionsDir: c.functionsDir,
        bucket: storage.bucket,
        registryKeyPrefix: REGISTRY_KEY_PREFIX,
        format: c.purgeInventoryFormat,
        dryRun: c.dryRun,
        metricsNamespace: c.metricsNamespace,
        logRetention,
        environment: controlPlane.purgeStaleUploads.environment,
        uploadStatements: controlPlane.purgeStaleUploads.statements.filter((s) => s.sid !== LISTING_CHECKPOINT_SID),
        listingSchedule: purge.scheduleRule,
        history,
        logLevel: c.logLevel,
        storageLease: gc,
      }).alarmTo(monitoring.topic);
    }

    // Also under the stack-wide dry run: sync-htpasswd publishes the first file then too (nothing exists to
    // overwrite or revoke), and no registry starts without it.
    const firstSync = [boot.syncUsersOnDeploy(controlPlane.functions['sync-htpasswd'].fn)];
    boot.waitForInstances({
      count: c.minCapacity,
      timeoutSeconds: c.bootTimeoutMinutes * 60,
      after: [fleet.autoScalingGroup, ...firstSync],
    });

    Tags.of(this).add('app', 'registry-fleet');

    const output = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    output('RegistryUrl', lb.url, 'docker login / push / pull here');
    output('LoadBalancerDnsName', lb.loadBalancer.loadBalancerDnsName, 'point domainName here (CNAME/alias) when no hosted zone is given');
    output('BucketName', storage.bucket.bucketName, 'image storage (RETAIN)');
    output('AutoScalingGroupName', fleet.autoScalingGroup.autoScalingGroupName, 'the registry instances');
    output('TargetGroupArn', lb.targetGroup.targetGroupArn, 'registry target group');
    output('HttpsListenerArn', lb.httpsListener.listenerArn, 'the listener rotate-certificates manages');
    output(
      'UsersParameterPath',
      c.usersParameterPath,
      'put registry users here: one SecureString per user (see the sync-htpasswd runbook)',
    );
    output(
      'HtpasswdObject',
      `s3://${storage.bucket.bucketName}/${HTPASSWD_OBJECT_KEY}`,
      'the rendered htpasswd published by sync-htpasswd',
    );
    output('HttpSecretArn', storage.httpSecret.secretArn, 'the shared registry http.secret');
    output('SyncHtpasswdDocument', documents.syncHtpasswdName, 'SSM document: install htpasswd on instances');
    output('PruneDockerDocument', documents.pruneDockerName, 'SSM document: prune docker on instances');
    output('AlarmTopicArn', monitoring.topic.topicArn, 'job failure notifications');
    output('DashboardName', monitoring.dashboard.dashboardName, 'CloudWatch dashboard');
    output(
      'RegistryLogGroup',
      boot.logGroup.logGroupName,
      'registry access logs (<instance>/registry) and boot logs (<instance>/bootstrap)',
    );
    output(
      'HistoryBucketName',
      history.bucket.bucketName,
      `every run's whole report (HISTORY_BUCKET for npm run history), kept ${c.historyRetentionDays} days`,
    );
    if (history.database) output('HistoryDatabase', `${history.database.ref}`, 'Glue database of the run history table "runs" (Athena)');
    for (const [job, ops] of [...Object.entries(controlPlane.functions), [GC_JOB, gc.ops] as const]) {
      output(`${job.replace(/(^|-)([a-z])/g, (_, __, ch: string) => ch.toUpperCase())}FunctionName`, ops.fn.functionName, `${job} Lambda`);
    }

    applyNagSuppressions(this, { usersParameterPath: c.usersParameterPath });
    applyHistoryNagSuppressions(this);
    if (cache) applyPullThroughNagSuppressions(this, cache.prefix);
  }
}
