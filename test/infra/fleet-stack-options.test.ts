import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Match } from 'aws-cdk-lib/assertions';
import type { Template } from 'aws-cdk-lib/assertions';
import { fakeFunctionsDir, synthFleet } from './support.ts';

// The optional context: an existing VPC, a hosted zone, a given certificate, ACME mode, e-mail, dry run, x86.
const fake = fakeFunctionsDir();
const CERT = 'arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555';
let t: Template;

beforeAll(() => {
  t = synthFleet(
    {
      stackName: 'edge-registry',
      domainName: 'registry.corp.internal',
      hostedZoneId: 'Z0123456789ABCDEFGHIJ',
      hostedZoneName: 'corp.internal',
      certificateArn: CERT,
      certificateMode: 'acme',
      acmeDirectoryUrl: 'https://acme-v02.api.letsencrypt.org/directory',
      acmeEmail: 'ops@example.com',
      vpcId: 'vpc-0123abcd',
      availabilityZones: 'us-east-1a,us-east-1b',
      publicSubnetIds: 'subnet-0000000a,subnet-0000000b',
      privateSubnetIds: 'subnet-0000000c,subnet-0000000d',
      privateRouteTableIds: 'rtb-0000000c,rtb-0000000d',
      instanceType: 'm7i.large',
      minCapacity: '3',
      desiredCapacity: '3',
      maxCapacity: '6',
      alarmEmail: 'ops@example.com',
      dryRun: 'true',
      uploadMaxAge: '14d',
      usersParameterPath: '/edge/users/',
      ingressCidrs: '10.0.0.0/8',
      purgeStaleUploadsSchedule: 'cron(15 1 * * ? *)',
    },
    fake.dir,
  ).template;
}, 120_000); // synth with cdk-nag takes seconds; more on a busy machine
afterAll(() => fake.remove());

describe('fleet stack with every option', () => {
  it('uses the given VPC: no new VPC or NAT, the S3 endpoint on the given private route tables', () => {
    t.resourceCountIs('AWS::EC2::VPC', 0);
    t.resourceCountIs('AWS::EC2::NatGateway', 0);
    t.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcId: 'vpc-0123abcd', RouteTableIds: ['rtb-0000000c', 'rtb-0000000d'] });
    t.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      VPCZoneIdentifier: ['subnet-0000000c', 'subnet-0000000d'],
      MinSize: '3',
      MaxSize: '6',
    });
  });

  it('uses the given certificate (none requested) and adds the alias record', () => {
    t.resourceCountIs('AWS::CertificateManager::Certificate', 0);
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 443, Certificates: [{ CertificateArn: CERT }] });
    t.hasResourceProperties('AWS::Route53::RecordSet', {
      Name: 'registry.corp.internal.',
      Type: 'A',
      HostedZoneId: 'Z0123456789ABCDEFGHIJ',
      AliasTarget: Match.anyValue(),
    });
  });

  it('picks the x86 AMI for an x86 instance type', () => {
    const params = t.toJSON().Parameters as Record<string, { Default?: string }>;
    expect(Object.values(params).map((p) => p.Default)).toContainEqual(expect.stringMatching(/al2023-ami-kernel-[\w.-]+-x86_64$/));
  });

  it('admits only the given networks at the load balancer', () => {
    const groups = Object.values(
      t.findResources('AWS::EC2::SecurityGroup') as Record<string, { Properties: { SecurityGroupIngress?: { CidrIp?: string }[] } }>,
    );
    const cidrs = groups.flatMap((g) => g.Properties.SecurityGroupIngress ?? []).map((r) => r.CidrIp);
    expect(new Set(cidrs)).toEqual(new Set(['10.0.0.0/8']));
  });

  it('leashes every job with DRY_RUN=true and names functions after the stack', () => {
    // The job functions (the first sync's custom-resource provider, which also runs under dryRun, is not a job).
    const fns = Object.values(
      t.findResources('AWS::Lambda::Function') as Record<
        string,
        { Properties: { FunctionName?: string; Environment: { Variables: Record<string, unknown> } } }
      >,
    ).filter((f) => f.Properties.FunctionName !== undefined);
    expect(fns.map((f) => f.Properties.FunctionName).sort()).toEqual(
      [
        'collect-garbage',
        'purge-disk-volumes',
        'purge-stale-uploads',
        'replace-unhealthy-instances',
        'rotate-certificates',
        'sync-htpasswd',
      ].map((j) => `edge-registry-${j}`),
    );
    for (const f of fns) expect(f.Properties.Environment.Variables.DRY_RUN).toBe('true');
    // The fleet dimension of every job metric is the stack name.
    for (const f of fns) expect(f.Properties.Environment.Variables.FLEET_NAME).toBe('edge-registry');
  });

  it('acme mode: account secret, ACME env, Route 53 and secret access for rotate-certificates', () => {
    const secret = Object.keys(
      t.findResources('AWS::SecretsManager::Secret', { Properties: { Description: Match.stringLikeRegexp('ACME account') } }),
    );
    expect(secret).toHaveLength(1);
    t.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'edge-registry-rotate-certificates',
      Environment: {
        Variables: Match.objectLike({
          CERTIFICATE_MODE: 'acme',
          HOSTED_ZONE_ID: 'Z0123456789ABCDEFGHIJ',
          ACME_DIRECTORY_URL: 'https://acme-v02.api.letsencrypt.org/directory',
          ACME_EMAIL: 'ops@example.com',
          ACME_ACCOUNT_SECRET_ARN: { Ref: secret[0] },
        }),
      },
    });
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['route53:ChangeResourceRecordSets', 'route53:ListResourceRecordSets'],
            Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':route53:::hostedzone/Z0123456789ABCDEFGHIJ']] },
          }),
          Match.objectLike({ Action: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'], Resource: { Ref: secret[0] } }),
        ]),
      },
    });
  });

  it('the users path, upload age, schedule and fleet tag follow the context', () => {
    t.hasResourceProperties('AWS::Events::Rule', { EventPattern: Match.objectLike({ detail: { name: [{ prefix: '/edge/users/' }] } }) });
    t.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'edge-registry-purge-stale-uploads',
      Environment: { Variables: Match.objectLike({ UPLOAD_MAX_AGE: '14d' }) },
    });
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(15 1 * * ? *)' });
    t.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 15 } })]),
      },
    });
    t.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'edge-registry-purge-disk-volumes',
      Environment: { Variables: Match.objectLike({ FLEET_TAG_VALUE: 'edge-registry' }) },
    });
  });

  it('subscribes the alarm e-mail to the topic', () => {
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
  });
});
