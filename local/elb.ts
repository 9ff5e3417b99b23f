import { ACMClient, ImportCertificateCommand } from '@aws-sdk/client-acm';
import { CreateSubnetCommand, CreateVpcCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateTargetGroupCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { CreateHostedZoneCommand, Route53Client } from '@aws-sdk/client-route-53';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { TestCertificate } from './certs.ts';

export interface AwsClients {
  readonly ec2: EC2Client;
  readonly elbv2: ElasticLoadBalancingV2Client;
  readonly acm: ACMClient;
  readonly route53: Route53Client;
  readonly secrets: SecretsManagerClient;
}

/** Test-side clients pointed at an emulator endpoint (moto). */
export function awsClients(endpoint: string): AwsClients {
  const opts = { endpoint, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
  return {
    ec2: new EC2Client(opts),
    elbv2: new ElasticLoadBalancingV2Client(opts),
    acm: new ACMClient(opts),
    route53: new Route53Client(opts),
    secrets: new SecretsManagerClient(opts),
  };
}

export async function importCertificate(acm: ACMClient, cert: TestCertificate, arn?: string): Promise<string> {
  const enc = new TextEncoder();
  const res = await acm.send(
    new ImportCertificateCommand({
      Certificate: enc.encode(cert.certPem),
      PrivateKey: enc.encode(cert.keyPem),
      ...(arn ? { CertificateArn: arn } : {}),
    }),
  );
  return res.CertificateArn as string;
}

export interface LoadBalancerSetup {
  readonly loadBalancerArn: string;
  readonly httpsListenerArn: string;
  readonly httpListenerArn: string;
  readonly hostedZoneId: string;
}

/** VPC with two subnets, an internet-facing ALB, an HTTPS listener with `certificateArn`, an HTTP listener, a hosted zone. */
export async function createLoadBalancer(c: AwsClients, certificateArn: string, zoneName: string): Promise<LoadBalancerSetup> {
  const vpc = await c.ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }));
  const vpcId = vpc.Vpc?.VpcId as string;
  const subnets = await Promise.all(
    ['us-east-1a', 'us-east-1b'].map((az, i) =>
      c.ec2.send(new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: `10.0.${i}.0/24`, AvailabilityZone: az })),
    ),
  );
  const lb = await c.elbv2.send(
    new CreateLoadBalancerCommand({ Name: 'registry', Subnets: subnets.map((s) => s.Subnet?.SubnetId as string), Type: 'application' }),
  );
  const loadBalancerArn = lb.LoadBalancers?.[0]?.LoadBalancerArn as string;
  const tg = await c.elbv2.send(
    new CreateTargetGroupCommand({ Name: 'registry', Protocol: 'HTTP', Port: 5000, VpcId: vpcId, TargetType: 'instance' }),
  );
  const forward = [{ Type: 'forward' as const, TargetGroupArn: tg.TargetGroups?.[0]?.TargetGroupArn as string }];
  const https = await c.elbv2.send(
    new CreateListenerCommand({
      LoadBalancerArn: loadBalancerArn,
      Protocol: 'HTTPS',
      Port: 443,
      Certificates: [{ CertificateArn: certificateArn }],
      DefaultActions: forward,
    }),
  );
  const http = await c.elbv2.send(
    new CreateListenerCommand({ LoadBalancerArn: loadBalancerArn, Protocol: 'HTTP', Port: 80, DefaultActions: forward }),
  );
  const zone = await c.route53.send(new CreateHostedZoneCommand({ Name: zoneName, CallerReference: `zone-${Date.now()}` }));
  return {
    loadBalancerArn,
    httpsListenerArn: https.Listeners?.[0]?.ListenerArn as string,
    httpListenerArn: http.Listeners?.[0]?.ListenerArn as string,
    hostedZoneId: (zone.HostedZone?.Id as string).replace('/hostedzone/', ''),
  };
}
