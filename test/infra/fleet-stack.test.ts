import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Match } from 'aws-cdk-lib/assertions';
import type { Template } from 'aws-cdk-lib/assertions';
import { ALL_JOBS, JOBS } from '../../infra/config.ts';
import type { JobName } from '../../infra/config.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

const fake = fakeFunctionsDir();
let t: Template;

beforeAll(() => {
  // The tag form of the image (the default pins a digest too: test/infra/boot.test.ts).
  t = synthFleet({ domainName: 'registry.corp.internal', registryImage: 'registry:2.8.3' }, fake.dir).template;
}, 120_000); // synth with cdk-nag takes seconds; more on a busy machine
afterAll(() => fake.remove());

type Resources = Record<string, { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string }>;
const only = (type: string, props: Record<string, unknown> = {}): [string, Resources[string]] => {
  // The run history's bucket is tested in test/infra/history.test.ts; "the bucket" here is the registry's.
  const found = Object.entries(t.findResources(type, { Properties: props }) as Resources).filter(
    ([id]) => type !== 'AWS::S3::Bucket' || !id.startsWith('HistoryBucket'),
  );
  expect(found, `${type} ${JSON.stringify(props)}`).toHaveLength(1);
  return found[0] as [string, Resources[string]];
};
const fnId = (job: JobName): string => only('AWS::Lambda::Function', { FunctionName: `registry-fleet-${job}` })[0];
const fnArn = (job: JobName) => ({ 'Fn::GetAtt': [fnId(job), 'Arn'] });
/** Every statement of the policies attached to the job's function role. */
function statementsOf(job: JobName): { Action: string | string[]; Resource: unknown; Condition?: unknown; Effect: string }[] {
  const roleId = ((t.toJSON().Resources as Resources)[fnId(job)]?.Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
  const policies = Object.values(t.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } }) as Resources);
  return policies.flatMap((p) => (p.Properties.PolicyDocument as { Statement: never[] }).Statement);
}
const actionsOf = (job: JobName): string[] => statementsOf(job).flatMap((s) => [s.Action].flat());

describe('storage', () => {
  it('is an encrypted, private, TLS-only bucket that is retained', () => {
    const [id, bucket] = only('AWS::S3::Bucket');
    expect(bucket.DeletionPolicy).toBe('Retain');
    expect(bucket.Properties).toMatchObject({
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
    t.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: id },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('aborts incomplete multipart uploads no sooner than the purge age (168h → 8 days)', () => {
    const [, bucket] = only('AWS::S3::Bucket');
    const rules = (
      bucket.Properties.LifecycleConfiguration as { Rules: { AbortIncompleteMultipartUpload?: { DaysAfterInitiation: number } }[] }
    ).Rules;
    // (the other rules expire noncurrent versions: test/infra/collect-garbage.test.ts)
    expect(rules.flatMap((r) => r.AbortIncompleteMultipartUpload?.DaysAfterInitiation ?? [])).toEqual([8]);
    expect(8 * 24).toBeGreaterThanOrEqual(168);
  });

  it('has a bucket policy scoped to the instance role with exactly the registry actions', () => {
    const instanceRole = only('AWS::IAM::Role', {
      AssumeRolePolicyDocument: Match.objectLike({ Statement: [Match.objectLike({ Principal: { Service: 'ec2.amazonaws.com' } })] }),
    })[0];
    t.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { AWS: { 'Fn::GetAtt': [instanceRole, 'Arn'] } },
            Action: ['s3:ListBucket', 's3:GetBucketLocation', 's3:ListBucketMultipartUploads'],
          }),
          Match.objectLike({
            Effect: 'Allow',
            Principal: { AWS: { 'Fn::GetAtt': [instanceRole, 'Arn'] } },
            Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
            Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [only('AWS::S3::Bucket')[0], 'Arn'] }, '/docker/*']] },
          }),
          Match.objectLike({
            Effect: 'Allow',
            Principal: { AWS: { 'Fn::GetAtt': [instanceRole, 'Arn'] } },
            Action: 's3:GetObject',
            Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [only('AWS::S3::Bucket')[0], 'Arn'] }, '/control-plane/htpasswd']] },
          }),
        ]),
      },
    });
  });

  it('routes S3 through a gateway endpoint (not the NAT)', () => {
    t.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('\\.s3$')])] }),
    });
  });

  it('generates the shared http.secret (64 alphanumerics)', () => {
    t.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: { PasswordLength: 64, ExcludePunctuation: true, IncludeSpace: false },
    });
  });

  it('builds a new VPC across 2 AZs with one NAT gateway', () => {
    t.resourceCountIs('AWS::EC2::NatGateway', 1);
    t.resourceCountIs('AWS::EC2::Subnet', 4);
  });
});

describe('fleet', () => {
  it('launch template: AL2023 from the public SSM parameter, IMDSv2 with hop limit 1, encrypted gp3, no key pair', () => {
    const [, lt] = only('AWS::EC2::LaunchTemplate');
    const data = lt.Properties.LaunchTemplateData as Record<string, unknown>;
    expect(data).toMatchObject({
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
      BlockDeviceMappings: [
        { DeviceName: '/dev/xvda', Ebs: { Encrypted: true, VolumeType: 'gp3', VolumeSize: 30, DeleteOnTermination: true } },
      ],
      InstanceType: 't4g.small',
    });
    expect(data).not.toHaveProperty('KeyName');
    const imageParam = (data.ImageId as { Ref: string }).Ref;
    expect(t.toJSON().Parameters[imageParam]).toMatchObject({ Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>' });
    expect(String(t.toJSON().Parameters[imageParam].Default)).toMatch(
      /^\/aws\/service\/ami-amazon-linux-latest\/al2023-ami-kernel-[\w.-]+-arm64$/,
    );
  });

  it('user data: the bucket, region and http.secret ARN are resolved by CloudFormation; the secret value is not in it', () => {
    const [, lt] = only('AWS::EC2::LaunchTemplate');
    const userData = (lt.Properties.LaunchTemplateData as { UserData: { 'Fn::Base64': { 'Fn::Join': [string, unknown[]] } } }).UserData[
      'Fn::Base64'
    ]['Fn::Join'][1];
    const bucket = { Ref: only('AWS::S3::Bucket')[0] };
    const secret = { Ref: only('AWS::SecretsManager::Secret')[0] };
    expect(userData).toContainEqual(bucket);
    expect(userData).toContainEqual(secret);
    expect(userData).toContainEqual({ Ref: 'AWS::Region' });
    const text = userData.filter((p): p is string => typeof p === 'string').join('');
    expect(text).toContain("REGISTRY_IMAGE='registry:2.8.3'");
    expect(text).toContain('/usr/local/sbin/registry-bootstrap.sh 2>&1 | tee -a /var/log/registry-bootstrap.log');
    expect(text).not.toMatch(/secret:\s/); // no http.secret key in the rendered config.yml
  });

  it('tags instances and their volumes with the fleet tag', () => {
    const [, lt] = only('AWS::EC2::LaunchTemplate');
    const specs = (
      lt.Properties.LaunchTemplateData as { TagSpecifications: { ResourceType: string; Tags: { Key: string; Value: string }[] }[] }
    ).TagSpecifications;
    for (const type of ['instance', 'volume']) {
      expect(specs.find((s) => s.ResourceType === type)?.Tags).toContainEqual({ Key: 'registry-fleet', Value: 'registry-fleet' });
    }
  });

  it('instance role: the registry S3 actions, http.secret read, SSM managed instance and the CloudWatch agent', () => {
    const [roleId, role] = only('AWS::IAM::Role', {
      AssumeRolePolicyDocument: Match.objectLike({ Statement: [Match.objectLike({ Principal: { Service: 'ec2.amazonaws.com' } })] }),
    });
    expect(JSON.stringify(role.Properties.ManagedPolicyArns)).toMatch(/AmazonSSMManagedInstanceCore.*CloudWatchAgentServerPolicy/);
    const policy = Object.values(t.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } }) as Resources)[0];
    const statements = (policy?.Properties.PolicyDocument as { Statement: { Action: string | string[] }[] }).Statement;
    expect(statements.flatMap((s) => [s.Action].flat()).sort()).toEqual(
      [
        's3:ListBucket',
        's3:GetBucketLocation',
        's3:ListBucketMultipartUploads',
        's3:GetObject',
        's3:PutObject',
        's3:DeleteObject',
        's3:ListMultipartUploadParts',
        's3:AbortMultipartUpload',
        's3:GetObject', // the published htpasswd only
        'secretsmanager:GetSecretValue',
        'secretsmanager:DescribeSecret',
      ].sort(),
    );
  });

  it('security groups: no SSH anywhere; the registry port only from the load balancer', () => {
    const rules = [
      ...Object.values(t.findResources('AWS::EC2::SecurityGroupIngress') as Resources).map((r) => r.Properties),
      ...Object.values(t.findResources('AWS::EC2::SecurityGroup') as Resources).flatMap(
        (g) => (g.Properties.SecurityGroupIngress as Record<string, unknown>[] | undefined) ?? [],
      ),
    ];
    for (const rule of rules) expect(Number(rule.FromPort) <= 22 && Number(rule.ToPort) >= 22, JSON.stringify(rule)).toBe(false);
    const [, lt] = only('AWS::EC2::LaunchTemplate');
    const instanceSg = (
      (lt.Properties.LaunchTemplateData as { SecurityGroupIds: { 'Fn::GetAtt': [string] }[] }).SecurityGroupIds[0] as {
        'Fn::GetAtt': [string];
      }
    )['Fn::GetAtt'][0];
    const [albId, alb] = only('AWS::ElasticLoadBalancingV2::LoadBalancer');
    const albSg = ((alb.Properties.SecurityGroups as { 'Fn::GetAtt': [string] }[])[0] as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    expect(albId).toBeTruthy();
    const toInstances = Object.values(
      t.findResources('AWS::EC2::SecurityGroupIngress', {
        Properties: { GroupId: { 'Fn::GetAtt': [instanceSg, 'GroupId'] } },
      }) as Resources,
    );
    expect(toInstances.map((r) => r.Properties)).toEqual([
      expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: 5000,
        ToPort: 5000,
        SourceSecurityGroupId: { 'Fn::GetAtt': [albSg, 'GroupId'] },
      }),
    ]);
    expect((t.toJSON().Resources as Resources)[instanceSg]?.Properties).not.toHaveProperty('SecurityGroupIngress');
  });

  it('Auto Scaling group: 2/2/4 across 2 AZs, EC2 health checks only, launch before terminate', () => {
    const [, asg] = only('AWS::AutoScaling::AutoScalingGroup');
    expect(asg.Properties).toMatchObject({
      MinSize: '2',
      DesiredCapacity: '2',
      MaxSize: '4',
      HealthCheckType: 'EC2',
      InstanceMaintenancePolicy: { MinHealthyPercentage: 100, MaxHealthyPercentage: 200 },
    });
    expect(asg.Properties.VPCZoneIdentifier).toHaveLength(2);
  });
});

describe('load balancer', () => {
  it('HTTPS listener with the certificate and the TLS 1.2+/1.3 policy', () => {
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443,
      Protocol: 'HTTPS',
      SslPolicy: 'ELBSecurityPolicy-TLS13-1-2-2021-06',
      Certificates: [
        {
          CertificateArn: {
            Ref: only('AWS::CertificateManager::Certificate', { DomainName: 'registry.corp.internal', ValidationMethod: 'DNS' })[0],
          },
        },
      ],
    });
  });

  it('does not give its own certificate the fleet tag: rotate-certificates deletes only fleet-tagged ones, and the template references this one', () => {
    const [, cert] = only('AWS::CertificateManager::Certificate');
    expect(cert.Properties.Tags ?? []).not.toContainEqual(expect.objectContaining({ Key: 'registry-fleet' }));
  });

  it('redirects HTTP to HTTPS permanently', () => {
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 80,
      Protocol: 'HTTP',
      DefaultActions: [{ Type: 'redirect', RedirectConfig: { Protocol: 'HTTPS', Port: '443', StatusCode: 'HTTP_301' } }],
    });
  });

  it('keeps idle connections long enough for large layer uploads', () => {
    const [, alb] = only('AWS::ElasticLoadBalancingV2::LoadBalancer', { Scheme: 'internet-facing' });
    expect(alb.Properties.LoadBalancerAttributes).toContainEqual({ Key: 'idle_timeout.timeout_seconds', Value: '900' });
  });

  it('target group: registry port, health check GET / expecting 200', () => {
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 5000,
      Protocol: 'HTTP',
      HealthCheckPath: '/',
      HealthCheckPort: '5000',
      Matcher: { HttpCode: '200' },
    });
  });

  it('makes no DNS record without a hosted zone', () => {
    t.resourceCountIs('AWS::Route53::RecordSet', 0);
  });
});

describe('control plane', () => {
  it.each(JOBS)('%s: nodejs24.x on arm64, one at a time, from its bundle, with its log group', (job) => {
    const [, fn] = only('AWS::Lambda::Function', { FunctionName: `registry-fleet-${job}` });
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      ReservedConcurrentExecutions: 1,
      MemorySize: 512,
      Timeout: job === 'purge-stale-uploads' || job === 'rotate-certificates' ? 900 : 300,
      Environment: { Variables: { POWERTOOLS_SERVICE_NAME: job, POWERTOOLS_METRICS_NAMESPACE: 'RegistryControlPlane', DRY_RUN: 'false' } },
      LoggingConfig: { LogGroup: expect.anything() },
    });
  });

  it('log groups keep 30 days', () => {
    const groups = Object.values(t.findResources('AWS::Logs::LogGroup') as Resources);
    expect(groups.length).toBeGreaterThanOrEqual(JOBS.length);
    for (const g of groups) expect(g.Properties.RetentionInDays).toBe(30);
  });

  it('sets the environment of every job per ARCHITECTURE §6', () => {
    const env = (job: JobName) =>
      (
        only('AWS::Lambda::Function', { FunctionName: `registry-fleet-${job}` })[1].Properties.Environment as {
          Variables: Record<string, unknown>;
        }
      ).Variables;
    const bucket = { Ref: only('AWS::S3::Bucket')[0] };
    const asg = { Ref: only('AWS::AutoScaling::AutoScalingGroup')[0] };
    const tg = { Ref: only('AWS::ElasticLoadBalancingV2::TargetGroup')[0] };
    const https = { Ref: only('AWS::ElasticLoadBalancingV2::Listener', { Port: 443 })[0] };
    const syncDoc = {
      Ref: only('AWS::SSM::Document', { Content: Match.objectLike({ parameters: Match.objectLike({ Source: Match.anyValue() }) }) })[0],
    };
    const pruneDoc = {
      Ref: only('AWS::SSM::Document', { Content: Match.objectLike({ parameters: Match.objectLike({ MaxLogMb: Match.anyValue() }) }) })[0],
    };
    expect(env('purge-stale-uploads')).toMatchObject({ REGISTRY_BUCKET: bucket, UPLOAD_MAX_AGE: '168h' });
    expect(env('replace-unhealthy-instances')).toMatchObject({ ASG_NAME: asg, TARGET_GROUP_ARN: tg });
    expect(env('purge-disk-volumes')).toMatchObject({
      FLEET_TAG_KEY: 'registry-fleet',
      FLEET_TAG_VALUE: 'registry-fleet',
      ASG_NAME: asg,
      DISK_USED_PERCENT_THRESHOLD: '85',
      PRUNE_DOCUMENT_NAME: pruneDoc,
    });
    expect(env('rotate-certificates')).toMatchObject({
      LISTENER_ARN: https,
      DOMAIN_NAME: 'registry.corp.internal',
      CERTIFICATE_MODE: 'acm',
    });
    expect(env('rotate-certificates')).not.toHaveProperty('HOSTED_ZONE_ID');
    expect(env('sync-htpasswd')).toMatchObject({
      HTPASSWD_PARAMETER_PATH: '/registry/users/',
      REGISTRY_BUCKET: bucket,
      HTPASSWD_OBJECT_KEY: 'control-plane/htpasswd',
      ASG_NAME: asg,
      SYNC_DOCUMENT_NAME: syncDoc,
    });
  });

  it.each<[JobName, string]>([
    ['replace-unhealthy-instances', 'rate(5 minutes)'],
    ['purge-stale-uploads', 'cron(0 3 * * ? *)'],
    ['purge-disk-volumes', 'cron(30 3 * * ? *)'],
    ['rotate-certificates', 'cron(0 4 * * ? *)'],
    ['sync-htpasswd', 'rate(1 hour)'],
  ])('%s runs on schedule %s', (job, schedule) => {
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: schedule, Targets: [Match.objectLike({ Arn: fnArn(job) })] });
  });

  it('the target group UnHealthyHostCount alarm invokes replace-unhealthy-instances', () => {
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'UnHealthyHostCount',
      Namespace: 'AWS/ApplicationELB',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: Match.arrayWith([fnArn('replace-unhealthy-instances')]),
    });
    t.hasResourceProperties('AWS::Lambda::Permission', {
      FunctionName: fnArn('replace-unhealthy-instances'),
      Principal: 'lambda.alarms.cloudwatch.amazonaws.com',
    });
  });

  it("the disk alarm (max disk_used_percent ≥ 85 over this fleet's group only) invokes purge-disk-volumes", () => {
    const [groupId] = only('AWS::AutoScaling::AutoScalingGroup');
    // The series the agent publishes (append_dimensions InstanceId + AutoScalingGroupName, no host), of this group.
    const query = {
      'Fn::Join': [
        '',
        [
          "SELECT MAX(disk_used_percent) FROM SCHEMA(CWAgent, AutoScalingGroupName, InstanceId, fstype, path) WHERE AutoScalingGroupName = '",
          { Ref: groupId },
          "' AND path = '/'",
        ],
      ],
    };
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 85,
      Metrics: [Match.objectLike({ Expression: query })],
      AlarmActions: Match.arrayWith([fnArn('purge-disk-volumes')]),
    });
    t.hasResourceProperties('AWS::Lambda::Permission', {
      FunctionName: fnArn('purge-disk-volumes'),
      Principal: 'lambda.alarms.cloudwatch.amazonaws.com',
    });
  });

  it('a Parameter Store change under the users path invokes sync-htpasswd', () => {
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['aws.ssm'], 'detail-type': ['Parameter Store Change'], detail: { name: [{ prefix: '/registry/users/' }] } },
      Targets: [Match.objectLike({ Arn: fnArn('sync-htpasswd') })],
    });
  });

  it('ACM expiry events invoke rotate-certificates', () => {
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['aws.acm'], 'detail-type': ['ACM Certificate Approaching Expiration'] },
      Targets: [Match.objectLike({ Arn: fnArn('rotate-certificates') })],
    });
  });

  it('SSM documents: htpasswd install (Source, Sha256, Mode) and docker prune (MaxLogMb), scripts embedded', () => {
    const docs = Object.values(t.findResources('AWS::SSM::Document') as Resources).map((d) => d.Properties);
    expect(docs).toHaveLength(2);
    const sync = docs.find((d) => JSON.stringify(d.Content).includes('"Source"'));
    const prune = docs.find((d) => JSON.stringify(d.Content).includes('"MaxLogMb"'));
    expect(sync).toMatchObject({
      Name: 'registry-fleet-sync-htpasswd',
      UpdateMethod: 'NewVersion',
      DocumentType: 'Command',
      Content: {
        schemaVersion: '2.2',
        parameters: { Mode: { default: 'install', allowedValues: ['install', 'report'] }, Sha256: { default: '-' } },
      },
    });
    expect(prune).toMatchObject({
      Name: 'registry-fleet-prune-docker',
      UpdateMethod: 'NewVersion',
      DocumentType: 'Command',
      Content: { parameters: { MaxLogMb: { default: '100' } } },
    });
    const lines = (d: typeof sync) =>
      (d?.Content as { mainSteps: { inputs: { runCommand: string[] } }[] }).mainSteps[0]?.inputs.runCommand.join('\n') ?? '';
    expect(lines(sync)).toContain("'{{ Source }}' '{{ Sha256 }}' /etc/docker/registry/auth");
    expect(lines(sync)).toContain('--report - /etc/docker/registry/auth');
    expect(lines(prune)).toContain("--max-log-mb '{{ MaxLogMb }}'");
  });
});

describe('SSM document scripts', () => {
  it.each(['Source', 'MaxLogMb'])('the document with %s passes shellcheck (parameters filled in)', (param) => {
    const doc = Object.values(t.findResources('AWS::SSM::Document') as Resources).find((d) =>
      JSON.stringify(d.Properties.Content).includes(`"${param}"`),
    );
    const content = doc?.Properties.Content as { mainSteps: { inputs: { runCommand: string[] } }[] };
    const script = `#!/bin/bash\n${content.mainSteps.map((s) => s.inputs.runCommand.join('\n')).join('\n')}\n`.replace(
      /\{\{ (\w+) \}\}/g,
      'value-of-$1',
    );
    const dir = mkdtempSync(join(tmpdir(), 'ssm-doc-'));
    try {
      writeFileSync(join(dir, 'doc.sh'), script);
      const r = spawnSync('shellcheck', ['--shell=bash', join(dir, 'doc.sh')], { encoding: 'utf8' });
      expect(`${r.stdout}${r.stderr}`).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('least privilege', () => {
  it('purge-stale-uploads: only the bucket, objects only inside upload directories', () => {
    // … plus its listing checkpoint: one exact key (test/infra/purge-inventory.test.ts).
    const checkpoint = ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'];
    expect(actionsOf('purge-stale-uploads').sort()).toEqual(
      // + its own run history prefix (PutObject) and run notifications (Publish): test/infra/history.test.ts.
      [
        's3:ListBucket',
        's3:ListBucketMultipartUploads',
        's3:GetObject',
        's3:DeleteObject',
        's3:AbortMultipartUpload',
        's3:ListMultipartUploadParts',
        's3:PutObject',
        'sns:Publish',
        ...checkpoint,
        // The explicit deny of the manifest and layer trees (test/infra/iam-matrix.test.ts).
        ...['s3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        // the registry-storage lease it shares with collect-garbage (test/infra/collect-garbage.test.ts)
        's3:GetObject',
        's3:PutObject',
      ].sort(),
    );
    const objects = statementsOf('purge-stale-uploads').find((s) => [s.Action].flat().includes('s3:DeleteObject'));
    expect(JSON.stringify(objects?.Resource)).toMatch(/"\/docker\/registry\/v2\/repositories\/\*\/_uploads\/\*"\]/);
  });

  it('replace-unhealthy-instances: writes only on its group', () => {
    const writes = statementsOf('replace-unhealthy-instances').find((s) => [s.Action].flat().includes('autoscaling:SetInstanceHealth'));
    expect(JSON.stringify(writes?.Resource)).toMatch(/autoScalingGroupName\//);
    expect([writes?.Action].flat()).toEqual(
      expect.arrayContaining([
        'autoscaling:SetInstanceHealth',
        'autoscaling:SetDesiredCapacity',
        'autoscaling:TerminateInstanceInAutoScalingGroup',
      ]),
    );
    // Its marker tags (apply.ts: ec2 CreateTags/DeleteTags): only on fleet instances, only those two keys.
    const tags = statementsOf('replace-unhealthy-instances').find((s) => [s.Action].flat().includes('ec2:CreateTags'));
    expect([tags?.Action].flat().sort()).toEqual(['ec2:CreateTags', 'ec2:DeleteTags']);
    expect(JSON.stringify(tags?.Resource)).toMatch(/:instance\/\*/);
    expect(tags?.Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/registry-fleet': 'registry-fleet' },
      'ForAllValues:StringEquals': { 'aws:TagKeys': ['registry-fleet:unhealthy-since', 'registry-fleet:replacing'] },
      Null: { 'aws:TagKeys': 'false' },
    });
  });

  it('purge-disk-volumes: volume writes only on fleet-tagged volumes; SendCommand only the prune document on fleet instances', () => {
    const st = statementsOf('purge-disk-volumes');
    const del = st.find((s) => [s.Action].flat().includes('ec2:DeleteVolume'));
    expect(del?.Condition).toEqual({ StringEquals: { 'aws:ResourceTag/registry-fleet': 'registry-fleet' } });
    const send = st.filter((s) => [s.Action].flat().includes('ssm:SendCommand'));
    expect(send).toHaveLength(2);
    expect(send.find((s) => JSON.stringify(s.Resource).includes(':instance/*'))?.Condition).toEqual({
      StringEquals: { 'ssm:resourceTag/registry-fleet': 'registry-fleet' },
    });
    expect(actionsOf('purge-disk-volumes')).toEqual(
      expect.arrayContaining([
        'ec2:DescribeVolumes',
        'cloudwatch:GetMetricData',
        'ssm:GetCommandInvocation',
        'autoscaling:DescribeAutoScalingGroups',
      ]),
    );
  });

  it('rotate-certificates: listener writes on the HTTPS listener only; deletes only fleet-tagged certificates; no Route 53 without a zone', () => {
    const st = statementsOf('rotate-certificates');
    const modify = st.find((s) => [s.Action].flat().includes('elasticloadbalancing:ModifyListener'));
    expect(modify?.Resource).toEqual({ Ref: only('AWS::ElasticLoadBalancingV2::Listener', { Port: 443 })[0] });
    expect(st.find((s) => [s.Action].flat().includes('acm:DeleteCertificate'))?.Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/registry-fleet': 'registry-fleet' },
    });
    expect(actionsOf('rotate-certificates').some((a) => a.startsWith('route53:'))).toBe(false);
  });

  it('sync-htpasswd: the users path, the htpasswd object, the sync document', () => {
    const st = statementsOf('sync-htpasswd');
    const params = st.find((s) => [s.Action].flat().includes('ssm:GetParametersByPath'));
    expect(JSON.stringify(params?.Resource)).toContain(':parameter/registry/users/*');
    const put = st.find((s) => [s.Action].flat().includes('s3:PutObject'));
    expect(JSON.stringify(put?.Resource)).toContain('/control-plane/htpasswd');
    expect(st.find((s) => [s.Action].flat().includes('kms:Decrypt'))?.Condition).toMatchObject({
      StringEquals: { 'kms:ViaService': expect.anything() },
    });
  });
});

describe('monitoring', () => {
  it("alarms on every job's Errors and FailedActions, and on CircuitOpen, to the SNS topic", () => {
    const topic = { Ref: only('AWS::SNS::Topic')[0] };
    for (const job of JOBS) {
      t.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'Errors',
        Namespace: 'AWS/Lambda',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: fnId(job) } }],
        AlarmActions: [topic],
      });
      t.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'FailedActions',
        Namespace: 'RegistryControlPlane',
        Dimensions: Match.arrayWith([{ Name: 'service', Value: job }]),
        AlarmActions: [topic],
      });
    }
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: Match.arrayWith([
        Match.objectLike({ MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'CircuitOpen' }) }) }),
      ]),
      AlarmActions: [topic],
    });
  });

  it('counts FailedActions of real runs only (dryRun=false)', () => {
    const failed = Object.values(t.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'FailedActions' } }) as Resources);
    expect(failed).toHaveLength(ALL_JOBS.length);
    for (const a of failed) expect(a.Properties.Dimensions).toContainEqual({ Name: 'dryRun', Value: 'false' });
    // …of this fleet only: the dimension set is service + dryRun + fleet (the stack name), as the runner publishes it.
    for (const a of failed)
      expect((a.Properties.Dimensions as { Name: string }[]).map((d) => d.Name).sort()).toEqual(['dryRun', 'fleet', 'service']);
    for (const a of failed) expect(a.Properties.Dimensions).toContainEqual({ Name: 'fleet', Value: 'registry-fleet' });
  });

  it('has a dashboard and no e-mail subscription unless alarmEmail is set', () => {
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    t.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('outputs every name an operator needs', () => {
    const outputs = Object.keys(t.toJSON().Outputs as object);
    expect(outputs).toEqual(
      expect.arrayContaining([
        'RegistryUrl',
        'BucketName',
        'AutoScalingGroupName',
        'UsersParameterPath',
        'LoadBalancerDnsName',
        'AlarmTopicArn',
        'ReplaceUnhealthyInstancesFunctionName',
        'PurgeStaleUploadsFunctionName',
        'PurgeDiskVolumesFunctionName',
        'RotateCertificatesFunctionName',
        'SyncHtpasswdFunctionName',
      ]),
    );
    t.hasOutput('RegistryUrl', { Value: 'https://registry.corp.internal' });
    t.hasOutput('UsersParameterPath', { Value: '/registry/users/' });
  });
});
