import { CfnWaitCondition, CfnWaitConditionHandle, Duration, RemovalPolicy, Tags } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as triggers from 'aws-cdk-lib/triggers';
import { Construct } from 'constructs';
import type { IConstruct } from 'constructs';
import { DEFAULT_DRAIN_TIMEOUT_SECONDS, DRAIN_HOOK_NAME, drainHeartbeatSeconds } from '../user-data.ts';
import type { RegistryStorage } from './storage.ts';

export interface RegistryFleetProps {
  vpc: ec2.IVpc;
  storage: RegistryStorage;
  instanceType: string;
  minCapacity: number;
  desiredCapacity: number;
  maxCapacity: number;
  rootVolumeGiB: number;
  /** The rendered user data script (infra/user-data.ts). */
  userData: string;
  fleetTag: { key: string; value: string };
  /** How long a terminating instance may wait for its requests in flight (drainTimeoutSeconds context; default 900). */
  drainTimeoutSeconds?: number;
}

/**
 * The registry instances: role, security group (no ingress of its own: the load balancer adds the registry
 * port from its own group), launch template (AL2023, IMDSv2 hop 1, encrypted gp3, no key pair) and the
 * Auto Scaling group (EC2 health checks only, launch before terminate).
 */
export class RegistryFleet extends Construct {
  readonly role: iam.Role;
  readonly securityGroup: ec2.SecurityGroup;
  readonly launchTemplate: ec2.LaunchTemplate;
  readonly autoScalingGroup: autoscaling.AutoScalingGroup;

  constructor(scope: Construct, id: string, props: RegistryFleetProps) {
    super(scope, id);
    const { minCapacity: min, desiredCapacity: desired, maxCapacity: max } = props;
    if (!(min >= 1 && min <= desired && desired <= max)) {
      throw new Error(`RegistryFleet: expected 1 ≤ minCapacity ≤ desiredCapacity ≤ maxCapacity, got ${min}/${desired}/${max}`);
    }
    if (!props.userData.startsWith('#!')) throw new Error('RegistryFleet: userData must be a script starting with #!');

    this.role = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'registry instances: S3 storage, http.secret, SSM managed instance, CloudWatch agent',
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore'),
        iam.ManagedPolicy.fromAwsManagedPolicyName('CloudWatchAgentServerPolicy'),
      ],
    });
    props.storage.grantRegistry(this.role);
    props.storage.httpSecret.grantRead(this.role);

    this.securityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc: props.vpc,
      description: 'registry instances: registry port from the load balancer only, no SSH',
      allowAllOutbound: true,
    });

    const instanceType = new ec2.InstanceType(props.instanceType);
    const cpuType =
      instanceType.architecture === ec2.InstanceArchitecture.ARM_64 ? ec2.AmazonLinuxCpuType.ARM_64 : ec2.AmazonLinuxCpuType.X86_64;
    this.launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      instanceType,
      // Resolved at deploy time from the public SSM parameter: no lookup, no account needed to synth.
      machineImage: ec2.MachineImage.latestAmazonLinux2023({ cpuType }),
      role: this.role,
      securityGroup: this.securityGroup,
      userData: ec2.UserData.custom(props.userData),
      requireImdsv2: true,
      httpTokens: ec2.LaunchTemplateHttpTokens.REQUIRED,
      httpPutResponseHopLimit: 1,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs(props.rootVolumeGiB, {
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            encrypted: true,
            deleteOnTermination: true,
          }),
        },
      ],
    });
    // Instance and volume tag specifications of the launch template carry the fleet tag.
    Tags.of(this.launchTemplate).add(props.fleetTag.key, props.fleetTag.value);

    this.autoScalingGroup = new autoscaling.AutoScalingGroup(this, 'Group', {
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate: this.launchTemplate,
      minCapacity: min,
      desiredCapacity: desired,
      maxCapacity: max,
      // EC2 status only: ELB health is replace-unhealthy-instances' call (a shared S3 outage must not churn the fleet).
      healthChecks: autoscaling.HealthChecks.ec2({ gracePeriod: Duration.minutes(5) }),
      // Launch before terminate: replacements never drop the fleet below its desired capacity.
      minHealthyPercentage: 100,
      maxHealthyPercentage: 200,
    });
    Tags.of(this.autoScalingGroup).add(props.fleetTag.key, props.fleetTag.value);
    Tags.of(this.autoScalingGroup).add('Name', `${props.fleetTag.value}-registry`);
    this.addDrainHook(props.drainTimeoutSeconds ?? DEFAULT_DRAIN_TIMEOUT_SECONDS);
  }

  /**
   * Drain before terminate: every termination (replacement, scale-in, instance refresh) waits in Terminating:Wait
   * until the instance's watcher (infra/assets/drain-registry.sh) sees no request in flight and completes the hook.
   * The heartbeat outlasts the watcher's own deadline and then CONTINUEs, so a dead watcher never holds a termination.
   */
  private addDrainHook(drainTimeoutSeconds: number): void {
    const heartbeat = drainHeartbeatSeconds(drainTimeoutSeconds);
    if (!(Number.isInteger(drainTimeoutSeconds) && drainTimeoutSeconds >= 30 && heartbeat <= 7_200)) {
      throw new Error(
        `RegistryFleet: drainTimeoutSeconds must be a whole number from 30 to ${7_200 - (heartbeat - drainTimeoutSeconds)}, got ` +
          `${drainTimeoutSeconds}`,
      );
    }
    this.autoScalingGroup.addLifecycleHook('Drain', {
      lifecycleHookName: DRAIN_HOOK_NAME,
      lifecycleTransition: autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
      heartbeatTimeout: Duration.seconds(heartbeat),
      defaultResult: autoscaling.DefaultResult.CONTINUE,
    });
    // A policy of its own, not the role's default policy: naming the group there would make the group (which needs
    // the role through the launch template) depend on itself. Only this group's lifecycle actions.
    new iam.Policy(this, 'DrainPolicy', {
      roles: [this.role],
      statements: [
        new iam.PolicyStatement({
          actions: ['autoscaling:CompleteLifecycleAction'],
          resources: [this.autoScalingGroup.autoScalingGroupArn],
        }),
      ],
    });
  }
}

export interface FleetBootProps {
  /** Retention of the registry/boot log group (logRetentionDays context). */
  logRetention: logs.RetentionDays;
}

/**
 * What the instances' boot reports to: the log group of the registry's access log and the boot logs, and a
 * wait condition that `cdk deploy` waits on until `count` instances serve (see `waitForInstances`).
 */
export class FleetBoot extends Construct {
  readonly logGroup: logs.LogGroup;
  readonly waitHandle: CfnWaitConditionHandle;
  waitCondition?: CfnWaitCondition;

  constructor(scope: Construct, id: string, props: FleetBootProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
    this.waitHandle = new CfnWaitConditionHandle(this, 'SignalHandle');
  }

  /**
   * A wait condition (rather than the group's CreationPolicy) so it can come after the first sync-htpasswd run
   * as well: the instances cannot serve before the users are published, and the functions are created after
   * the group. A FAILURE signal (an instance late, with its reason) or the timeout fails the deploy.
   */
  /**
   * Invokes sync-htpasswd once on each deploy (asynchronously: its report and alarms tell the outcome), so users
   * created before `cdk deploy` are published while the new instances wait for them; no change event would.
   */
  syncUsersOnDeploy(fn: lambda.Function): triggers.Trigger {
    return new triggers.Trigger(this, 'FirstSync', { handler: fn, invocationType: triggers.InvocationType.EVENT, executeAfter: [fn] });
  }

  waitForInstances(o: { count: number; timeoutSeconds: number; after: readonly IConstruct[] }): CfnWaitCondition {
    if (!(Number.isInteger(o.count) && o.count >= 1)) throw new Error(`FleetBoot: count must be a whole number ≥ 1, got ${o.count}`);
    if (!(Number.isInteger(o.timeoutSeconds) && o.timeoutSeconds >= 300 && o.timeoutSeconds <= 43_200)) {
      throw new Error(`FleetBoot: timeoutSeconds must be a whole number from 300 to 43200, got ${o.timeoutSeconds}`);
    }
    this.waitCondition = new CfnWaitCondition(this, 'InstancesServing', {
      count: o.count,
      handle: this.waitHandle.ref,
      timeout: String(o.timeoutSeconds),
    });
    for (const c of o.after) this.waitCondition.node.addDependency(c);
    return this.waitCondition;
  }
}
