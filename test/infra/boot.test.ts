import { afterAll, describe, expect, it } from 'vitest';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { createApp } from '../../infra/app.ts';
import { DEFAULT_REGISTRY_IMAGE } from '../../infra/config.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

const fake = fakeFunctionsDir();
afterAll(() => fake.remove());
const domainName = 'registry.corp.internal';
type Resources = Record<string, { Type: string; Properties: Record<string, unknown>; DependsOn?: string[] }>;

describe('the boot, as the default stack declares it', () => {
  const { template: t } = synthFleet({ domainName, logRetentionDays: 90 }, fake.dir);
  const resources = t.toJSON().Resources as Resources;
  const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
  const userDataText = () => JSON.stringify(ofType('AWS::EC2::LaunchTemplate')[0]?.[1].Properties.LaunchTemplateData);

  it('waits for minCapacity instances to serve, after the group and the first sync-htpasswd run', () => {
    const [[id, wait]] = ofType('AWS::CloudFormation::WaitCondition') as [[string, Resources[string]]];
    expect(wait.Properties).toMatchObject({
      Count: 2,
      Timeout: '1800',
      Handle: { Ref: ofType('AWS::CloudFormation::WaitConditionHandle')[0]?.[0] },
    });
    const asg = ofType('AWS::AutoScaling::AutoScalingGroup')[0]?.[0] as string;
    const trigger = ofType('Custom::Trigger')[0]?.[0] as string;
    expect(resources[id]?.DependsOn).toEqual(expect.arrayContaining([asg, trigger]));
    t.hasResourceProperties('Custom::Trigger', { HandlerArn: Match.anyValue(), InvocationType: 'Event' });
    expect(userDataText()).toContain(`WAIT_HANDLE_URL='`);
  });

  it('creates the registry log group with the context retention and passes it to the instances', () => {
    const groups = ofType('AWS::Logs::LogGroup').filter(([gid]) => userDataText().includes(`"Ref":"${gid}"`));
    expect(groups).toHaveLength(1);
    expect(groups[0]?.[1].Properties.RetentionInDays).toBe(90);
    t.hasOutput('RegistryLogGroup', { Value: { Ref: groups[0]?.[0] } });
  });

  it('pins the registry image by digest by default', () => {
    expect(userDataText()).toContain(`REGISTRY_IMAGE='${DEFAULT_REGISTRY_IMAGE}'`);
  });

  it('names the dashboard after the stack and the region (dashboards are global)', () => {
    t.hasResourceProperties('AWS::CloudWatch::Dashboard', {
      DashboardName: { 'Fn::Join': ['', ['registry-fleet-', { Ref: 'AWS::Region' }]] },
    });
  });

  it('keeps the cheap defaults: one NAT gateway, no access-log bucket', () => {
    t.resourceCountIs('AWS::EC2::NatGateway', 1);
    // The image bucket and the run history's bucket; no access-log bucket.
    t.resourceCountIs('AWS::S3::Bucket', 2);
  });
});

describe('the hardening options', () => {
  // cdk-nag runs here too: the env-agnostic options must not add unacknowledged findings.
  synthFleet({ domainName, natGatewayPerAz: true, bucketAccessLogs: true }, fake.dir);
  // ALB access logs need a region, and the stack's nag acknowledgements name <AWS::Region>: synth this one without nag.
  const created = createApp({
    context: {
      domainName,
      functionsDir: fake.dir,
      region: 'eu-west-1',
      natGatewayPerAz: true,
      albAccessLogs: true,
      bucketAccessLogs: true,
      bootTimeoutMinutes: 20,
    },
    nag: false,
  });
  const t = Template.fromStack(created.stack);

  it('one NAT gateway per AZ', () => {
    t.resourceCountIs('AWS::EC2::NatGateway', 2);
  });

  it('ALB access logs and the image bucket server access logs go to one private log bucket', () => {
    const buckets = Object.entries(t.findResources('AWS::S3::Bucket') as Resources).filter(([id]) => !id.startsWith('HistoryBucket'));
    expect(buckets).toHaveLength(2);
    const [logsId] = buckets.find(([, b]) => JSON.stringify(b.Properties).includes('expire-access-logs')) ?? [];
    t.hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: { DestinationBucketName: { Ref: logsId }, LogFilePrefix: 's3-access/' },
    });
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'access_logs.s3.enabled', Value: 'true' },
        { Key: 'access_logs.s3.bucket', Value: { Ref: logsId } },
      ]),
    });
  });

  it('the wait condition follows bootTimeoutMinutes', () => {
    t.hasResourceProperties('AWS::CloudFormation::WaitCondition', { Timeout: '1200' });
  });
});

describe('context checks', () => {
  it('refuses the sample domain of cdk.json with a message naming domainName', () => {
    expect(() => createApp({ context: { domainName: 'registry.example.com', functionsDir: fake.dir } })).toThrow(
      /context domainName: expected your registry's own host name/,
    );
  });

  it('ALB access logs need the region', () => {
    expect(() => createApp({ context: { domainName, albAccessLogs: true, functionsDir: fake.dir } })).toThrow(
      /context albAccessLogs: expected the region context too/,
    );
  });

  it('rejects a mistyped key, naming it', () => {
    expect(() => createApp({ context: { domainName, minCapcity: 3, functionsDir: fake.dir } })).toThrow(
      /context minCapcity: not a setting of this app[\s\S]*known keys: .*minCapacity/,
    );
  });
});
