import { describe, expect, it } from 'vitest';
import { CONTEXT_KEYS, DEFAULT_REGISTRY_IMAGE, FleetConfigError, parseFleetConfig } from '../../infra/config.ts';

const base = { domainName: 'registry.corp.internal' };

describe('parseFleetConfig', () => {
  it('fills every default from a minimal context', () => {
    expect(parseFleetConfig(base)).toMatchObject({
      stackName: 'registry-fleet',
      domainName: 'registry.corp.internal',
      instanceType: 't4g.small',
      minCapacity: 2,
      desiredCapacity: 2,
      maxCapacity: 4,
      registryImage: DEFAULT_REGISTRY_IMAGE,
      bootTimeoutMinutes: 30,
      natGatewayPerAz: false,
      albAccessLogs: false,
      bucketAccessLogs: false,
      usersParameterPath: '/registry/users/',
      uploadMaxAge: '168h',
      diskUsedPercentThreshold: 85,
      dryRun: false,
      certificateMode: 'acm',
      ingressCidrs: ['0.0.0.0/0'],
      functionsDir: 'dist/functions',
      fleetTagKey: 'registry-fleet',
      replaceUnhealthyInstancesSchedule: 'rate(5 minutes)',
      purgeStaleUploadsSchedule: 'cron(0 3 * * ? *)',
      syncHtpasswdSchedule: 'rate(1 hour)',
      logRetentionDays: 30,
    });
  });

  it('accepts the string forms -c gives and the JSON forms cdk.json gives', () => {
    const fromCli = parseFleetConfig({
      ...base,
      minCapacity: '1',
      desiredCapacity: '3',
      maxCapacity: '5',
      dryRun: 'true',
      ingressCidrs: '10.0.0.0/8, 192.168.0.0/16',
    });
    const fromJson = parseFleetConfig({
      ...base,
      minCapacity: 1,
      desiredCapacity: 3,
      maxCapacity: 5,
      dryRun: true,
      ingressCidrs: ['10.0.0.0/8', '192.168.0.0/16'],
    });
    expect(fromCli).toEqual(fromJson);
    expect(fromCli).toMatchObject({ minCapacity: 1, desiredCapacity: 3, maxCapacity: 5, dryRun: true });
  });

  it('accepts an existing VPC given by ids, one per AZ', () => {
    const config = parseFleetConfig({
      ...base,
      vpcId: 'vpc-0123abcd',
      availabilityZones: 'us-east-1a,us-east-1b',
      publicSubnetIds: 'subnet-0000000a,subnet-0000000b',
      privateSubnetIds: 'subnet-0000000c,subnet-0000000d',
      privateRouteTableIds: 'rtb-0000000c,rtb-0000000d',
    });
    expect(config.privateSubnetIds).toEqual(['subnet-0000000c', 'subnet-0000000d']);
  });

  it('pins the registry image by digest by default; a tag with a digest is accepted', () => {
    expect(DEFAULT_REGISTRY_IMAGE).toMatch(/^registry:2\.8\.3@sha256:[0-9a-f]{64}$/);
    expect(parseFleetConfig({ ...base, registryImage: 'registry:2.8.3' }).registryImage).toBe('registry:2.8.3');
  });

  it.each(['registry.example.com', 'example.org', 'hub.example.net', 'registry.example'])(
    'refuses the sample domain %s, naming domainName',
    (domainName) => {
      expect(() => parseFleetConfig({ domainName })).toThrow(
        /context domainName: expected your registry's own host name, not an example\.\* sample name/,
      );
    },
  );

  it('rejects a context key it does not know, naming it and the known keys', () => {
    let error: unknown;
    try {
      parseFleetConfig({ ...base, minCapcity: 3 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FleetConfigError);
    expect((error as Error).message).toMatch(/context minCapcity: not a setting of this app/);
    expect((error as Error).message).toMatch(/known keys: .*\bminCapacity\b/);
    expect(() => parseFleetConfig({ ...base, nag: 'false' })).not.toThrow();
  });

  it('ignores context keys it does not know (cdk feature flags)', () => {
    expect(() => parseFleetConfig({ ...base, '@aws-cdk/core:newStyleStackSynthesis': true })).not.toThrow();
    expect(CONTEXT_KEYS).toContain('domainName');
  });

  it.each<{ key: string; context: Record<string, unknown> }>([
    { key: 'domainName', context: {} },
    { key: 'domainName', context: { domainName: 'not a host' } },
    { key: 'stackName', context: { ...base, stackName: '1fleet' } },
    { key: 'stackName', context: { ...base, stackName: 'aws-registry' } },
    { key: 'instanceType', context: { ...base, instanceType: 'small' } },
    { key: 'minCapacity', context: { ...base, minCapacity: 0 } },
    { key: 'maxCapacity', context: { ...base, maxCapacity: 'four' } },
    { key: 'desiredCapacity', context: { ...base, desiredCapacity: 5 } },
    { key: 'registryImage', context: { ...base, registryImage: 'registry' } },
    { key: 'registryImage', context: { ...base, registryImage: 'registry:latest' } },
    { key: 'uploadMaxAge', context: { ...base, uploadMaxAge: '30m' } },
    { key: 'uploadMaxAge', context: { ...base, uploadMaxAge: 'a week' } },
    { key: 'dryRun', context: { ...base, dryRun: 'yes' } },
    { key: 'alarmEmail', context: { ...base, alarmEmail: 'ops' } },
    { key: 'certificateArn', context: { ...base, certificateArn: 'arn:aws:iam::123456789012:role/x' } },
    { key: 'hostedZoneName', context: { ...base, hostedZoneId: 'Z0123456789ABC' } },
    { key: 'hostedZoneName', context: { ...base, hostedZoneId: 'Z0123456789ABC', hostedZoneName: 'other.org' } },
    { key: 'usersParameterPath', context: { ...base, usersParameterPath: 'registry/users' } },
    { key: 'purgeStaleUploadsSchedule', context: { ...base, purgeStaleUploadsSchedule: 'daily' } },
    { key: 'replaceUnhealthyInstancesSchedule', context: { ...base, replaceUnhealthyInstancesSchedule: 'rate(5 fortnights)' } },
    { key: 'logRetentionDays', context: { ...base, logRetentionDays: 31 } },
    { key: 'diskUsedPercentThreshold', context: { ...base, diskUsedPercentThreshold: 100 } },
    { key: 'ingressCidrs', context: { ...base, ingressCidrs: 'everyone' } },
    {
      key: 'privateSubnetIds',
      context: {
        ...base,
        vpcId: 'vpc-0123abcd',
        availabilityZones: 'us-east-1a,us-east-1b',
        publicSubnetIds: 'subnet-0000000a,subnet-0000000b',
        privateRouteTableIds: 'rtb-0000000c,rtb-0000000d',
      },
    },
    {
      key: 'acmeDirectoryUrl',
      context: {
        ...base,
        certificateMode: 'acme',
        acmeEmail: 'ops@example.com',
        hostedZoneId: 'Z0123456789ABC',
        hostedZoneName: 'corp.internal',
      },
    },
    { key: 'certificateMode', context: { ...base, certificateMode: 'letsencrypt' } },
  ])('a bad $key fails naming the context key', ({ key, context }) => {
    let error: unknown;
    try {
      parseFleetConfig(context);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FleetConfigError);
    expect((error as Error).message).toMatch(new RegExp(`context ${key}: expected`));
  });

  it('reports every bad key at once, with the value received', () => {
    expect(() => parseFleetConfig({ ...base, minCapacity: -1, dryRun: 'maybe' })).toThrow(
      /context minCapacity: expected a whole number from 1 to 100 \(got -1\)[\s\S]*context dryRun: expected true or false \(got "maybe"\)/,
    );
  });
});

describe('ecrPullThroughCache', () => {
  const CREDENTIAL = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf';

  it('is off by default, with the docker-hub prefix', () => {
    expect(parseFleetConfig(base)).toMatchObject({ ecrPullThroughCache: false, ecrPullThroughPrefix: 'docker-hub' });
    expect(parseFleetConfig(base).ecrPullThroughCredentialArn).toBeUndefined();
  });

  it('on: takes the Docker Hub credential secret and a prefix', () => {
    const c = parseFleetConfig({
      ...base,
      ecrPullThroughCache: 'true',
      ecrPullThroughCredentialArn: CREDENTIAL,
      ecrPullThroughPrefix: 'hub-b',
    });
    expect(c).toMatchObject({ ecrPullThroughCache: true, ecrPullThroughCredentialArn: CREDENTIAL, ecrPullThroughPrefix: 'hub-b' });
  });

  it('on without a credential fails synth, naming ecrPullThroughCredentialArn and what it must hold', () => {
    expect(() => parseFleetConfig({ ...base, ecrPullThroughCache: true })).toThrow(
      /context ecrPullThroughCredentialArn: expected the ARN of a Secrets Manager secret named ecr-pullthroughcache\/<name> .*Docker Hub account when ecrPullThroughCache is true/,
    );
  });

  it.each([
    [
      'ecrPullThroughCredentialArn',
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:dockerhub-AbCdEf',
      /context ecrPullThroughCredentialArn: expected a Secrets Manager secret ARN named ecr-pullthroughcache\/.*\(got "arn:aws:secretsmanager/,
    ],
    ['ecrPullThroughPrefix', 'Docker_Hub', /context ecrPullThroughPrefix: expected an ECR repository prefix .*\(got "Docker_Hub"\)/],
  ])('refuses a bad %s, echoing it', (key, value, message) => {
    expect(() => parseFleetConfig({ ...base, ecrPullThroughCache: true, ecrPullThroughCredentialArn: CREDENTIAL, [key]: value })).toThrow(
      message,
    );
  });
});
