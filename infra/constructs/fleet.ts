import { Duration, Tags } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
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
  }
}
