import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { RemovalPolicy } from 'aws-cdk-lib';
import { Construct } from 'constructs';

export interface ExistingVpc {
  vpcId: string;
  availabilityZones: readonly string[];
  publicSubnetIds: readonly string[];
  privateSubnetIds: readonly string[];
  privateRouteTableIds: readonly string[];
}

export interface RegistryNetworkProps {
  /** Use this VPC (no lookups: ids are given); else a new VPC across 2 AZs with one NAT gateway (or one per AZ). */
  existing?: ExistingVpc;
  logRetention: logs.RetentionDays;
  /** A NAT gateway in each AZ (new VPC only): an AZ outage then never cuts the other AZ's instances off. */
  natGatewayPerAz?: boolean;
}

/** The VPC and its S3 gateway endpoint (registry ⇄ S3 traffic stays off the NAT gateway). */
export class RegistryNetwork extends Construct {
  readonly vpc: ec2.IVpc;

  constructor(scope: Construct, id: string, props: RegistryNetworkProps) {
    super(scope, id);
    const e = props.existing;
    if (e) {
      if (e.availabilityZones.length < 2) throw new Error('RegistryNetwork: an existing VPC needs at least 2 availability zones');
      for (const key of ['publicSubnetIds', 'privateSubnetIds', 'privateRouteTableIds'] as const) {
        if (e[key].length !== e.availabilityZones.length) throw new Error(`RegistryNetwork: ${key} needs one entry per availability zone`);
      }
      this.vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: e.vpcId,
        availabilityZones: [...e.availabilityZones],
        publicSubnetIds: [...e.publicSubnetIds],
        privateSubnetIds: [...e.privateSubnetIds],
        privateSubnetRouteTableIds: [...e.privateRouteTableIds],
      });
    } else {
      const vpc = new ec2.Vpc(this, 'Vpc', {
        maxAzs: 2,
        // One NAT gateway by default (cheap); if its AZ fails, instances in the other AZ lose egress too
        // (dnf, the image pull, CloudWatch), so replacements there cannot boot until it is back.
        natGateways: props.natGatewayPerAz ? 2 : 1,
        subnetConfiguration: [
          { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
          { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        ],
      });
      const flowLogs = new logs.LogGroup(this, 'FlowLogs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
      vpc.addFlowLog('RejectedTraffic', {
        destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
        trafficType: ec2.FlowLogTrafficType.REJECT,
      });
      this.vpc = vpc;
    }
    this.vpc.addGatewayEndpoint('S3', {
      service: ec2.GatewayVpcEndpointAwsService.S3,
      subnets: [{ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }],
    });
  }
}
