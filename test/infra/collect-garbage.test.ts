// collect-garbage as the stack declares it (issue 22): the versioned bucket and its lifecycle (every GC delete
// undoable for GC_UNDO_DAYS), the function's environment per gcMode, its least privilege (evaluated with
// @cloud-copilot/iam-simulate), its schedule and alarms, and the registry config it relies on.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { FleetConfigError, parseFleetConfig } from '../../infra/config.ts';
import { collectGarbageStatements, gcCheckpointKey } from '../../infra/constructs/collect-garbage.ts';
import { RegistryStorage } from '../../infra/constructs/storage.ts';
import { leaseKey as storageLeaseKey } from '../../shared/lease.ts';
import { sweepCheckpointKey } from '../../functions/collect-garbage/checkpoint.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

interface Resource {
  Properties: Record<string, unknown>;
}
type Resources = Record<string, Resource>;
interface Rule {
  Id: string;
  Status: string;
  Prefix?: string;
  NoncurrentVersionExpiration?: { NoncurrentDays: number };
  ExpiredObjectDeleteMarker?: boolean;
  AbortIncompleteMultipartUpload?: { DaysAfterInitiation: number };
}

const fake = fakeFunctionsDir();
afterAll(() => fake.remove());
const DOMAIN = { domainName: 'registry.corp.internal' };
const synth = (context: Record<string, unknown> = {}) => synthFleet({ ...DOMAIN, ...context }, fake.dir).template;
const t = synth();

const registryBucket = (tpl: Template): Resource => {
  const found = Object.entries(tpl.findResources('AWS::S3::Bucket') as Resources).filter(([id]) => id.startsWith('StorageBucket'));
  expect(found).toHaveLength(1);
  return (found[0] as [string, Resource])[1];
};
const rulesOf = (bucket: Resource): Rule[] => (bucket.Properties.LifecycleConfiguration as { Rules: Rule[] }).Rules;
const gcFunction = (tpl: Template): Resource => {
  const fns = Object.values(
    tpl.findResources('AWS::Lambda::Function', { Properties: { FunctionName: 'registry-fleet-collect-garbage' } }) as Resources,
  );
  expect(fns).toHaveLength(1);
  return fns[0] as Resource;
};
const envOf = (tpl: Template) => (gcFunction(tpl).Properties.Environment as { Variables: Record<string, unknown> }).Variables;
const gcAlarms = (tpl: Template) =>
  Object.entries(tpl.findResources('AWS::CloudWatch::Alarm') as Resources).filter(([id]) => id.startsWith('CollectGarbage'));

/** The `config.yml` the user data writes (a plain heredoc; tokens are joined in as placeholders). */
function registryConfigOf(tpl: Template): Record<string, unknown> {
  const lt = Object.values(tpl.findResources('AWS::EC2::LaunchTemplate') as Resources)[0] as Resource;
  const ud = (lt.Properties.LaunchTemplateData as { UserData: { 'Fn::Base64': { 'Fn::Join': [string, unknown[]] } } }).UserData;
  const text = ud['Fn::Base64']['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('');
  const body = /cat >\/etc\/docker\/registry\/config\.yml <<'(\w+)'\n([\s\S]*?)\n\1\n/.exec(text);
  expect(body, 'the user data writes config.yml').not.toBeNull();
  return parse(body?.[2] ?? '') as Record<string, unknown>;
}

describe('the registry bucket: versioned, every GC delete undoable', () => {
  it('turns on versioning', () => {
    expect(registryBucket(t).Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
  });

  it('expires noncurrent versions: 1 day under repositories/, GC_UNDO_DAYS (7) under blobs/, then the lone delete markers', () => {
    const rules = rulesOf(registryBucket(t));
    const noncurrent = Object.fromEntries(rules.filter((r) => r.Prefix !== undefined).map((r) => [r.Prefix, r]));
    expect(noncurrent['docker/registry/v2/repositories/']).toMatchObject({
      Status: 'Enabled',
      NoncurrentVersionExpiration: { NoncurrentDays: 1 },
      ExpiredObjectDeleteMarker: true,
    });
    expect(noncurrent['docker/registry/v2/blobs/']).toMatchObject({
      Status: 'Enabled',
      NoncurrentVersionExpiration: { NoncurrentDays: 7 },
      ExpiredObjectDeleteMarker: true,
    });
    expect(noncurrent['control-plane/']).toMatchObject({ NoncurrentVersionExpiration: { NoncurrentDays: 1 } });
    // The abort rule stays, for the whole bucket.
    expect(rules.filter((r) => r.AbortIncompleteMultipartUpload)).toEqual([
      expect.objectContaining({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 8 } }),
    ]);
    expect(rules.find((r) => r.AbortIncompleteMultipartUpload)?.Prefix).toBeUndefined();
  });

  it('no two noncurrent rules overlap (S3 would apply the sooner expiry and shrink the undo window)', () => {
    const prefixes = rulesOf(registryBucket(t)).flatMap((r) => (r.NoncurrentVersionExpiration ? [r.Prefix ?? ''] : []));
    expect(prefixes).not.toContain('');
    for (const a of prefixes) for (const b of prefixes) if (a !== b) expect(b.startsWith(a), `${a} covers ${b}`).toBe(false);
  });

  it('the undo window follows gcUndoDays', () => {
    const rules = rulesOf(registryBucket(synth({ gcUndoDays: '14' })));
    expect(rules.find((r) => r.Prefix === 'docker/registry/v2/blobs/')?.NoncurrentVersionExpiration).toEqual({ NoncurrentDays: 14 });
    expect(rules.find((r) => r.Prefix === 'docker/registry/v2/repositories/')?.NoncurrentVersionExpiration).toEqual({
      NoncurrentDays: 1,
    });
  });

  it('respects a registry root directory', () => {
    const stack = new Stack(new App(), 'Rooted');
    new RegistryStorage(stack, 'Storage', { uploadMaxAgeMs: 3_600_000, registryRoot: '/fleet/a/', undoDays: 3 });
    const rules = rulesOf(registryBucket(Template.fromStack(stack)));
    expect(rules.flatMap((r) => (r.Prefix ? [[r.Prefix, r.NoncurrentVersionExpiration?.NoncurrentDays]] : []))).toEqual([
      ['fleet/a/docker/registry/v2/repositories/', 1],
      ['fleet/a/docker/registry/v2/blobs/', 3],
      ['control-plane/', 1],
    ]);
  });

  it('refuses an undo window under a day', () => {
    const stack = new Stack(new App(), 'Bad');
    expect(() => new RegistryStorage(stack, 'Storage', { uploadMaxAgeMs: 3_600_000, undoDays: 0 })).toThrow(
      /undoDays must be a whole number/,
    );
  });
});

describe('the function', () => {
  it('dryRun by default: DRY_RUN=true, weekly, with the job settings and no retention', () => {
    const fn = gcFunction(t);
    expect(fn.Properties).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], Timeout: 900, ReservedConcurrentExecutions: 1 });
    const env = envOf(t);
    expect(env).toMatchObject({
      REGISTRY_BUCKET: { Ref: expect.stringMatching(/^StorageBucket/) },
      GC_GRACE: '48h',
      MAX_DELETES_PER_RUN: '10000',
      DRY_RUN: 'true',
      POWERTOOLS_SERVICE_NAME: 'collect-garbage',
      FLEET_NAME: 'registry-fleet',
      HISTORY_PREFIX: 'reports',
    });
    expect(Object.keys(env)).toEqual(expect.arrayContaining(['HISTORY_BUCKET', 'NOTIFY_TOPIC_ARN']));
    expect(env).not.toHaveProperty('GC_RETENTION');
    expect(env).not.toHaveProperty('REGISTRY_ROOT'); // the stack's registry has no rootdirectory
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(0 5 ? * SUN *)', State: 'ENABLED' });
  });

  it('gcMode=on sweeps (DRY_RUN=false) unless the stack-wide dryRun leashes it', () => {
    expect(envOf(synth({ gcMode: 'on' })).DRY_RUN).toBe('false');
    expect(envOf(synth({ gcMode: 'on', dryRun: 'true' })).DRY_RUN).toBe('true');
  });

  it('gcMode=off: no scheduled run (the rule is disabled) and no not-succeeding page; manual runs and restores still work', () => {
    const off = synth({ gcMode: 'off', gcSchedule: 'cron(0 6 ? * SAT *)' });
    off.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(0 6 ? * SAT *)', State: 'DISABLED' });
    expect(
      gcAlarms(off)
        .map(([id]) => id)
        .filter((id) => id.includes('NotSucceeding')),
    ).toEqual([]);
    gcFunction(off);
  });

  it('grace, budget and schedule follow the context', () => {
    const tpl = synth({ gcGrace: '72h', gcMaxDeletesPerRun: '500', gcSchedule: 'rate(3 days)' });
    expect(envOf(tpl)).toMatchObject({ GC_GRACE: '72h', MAX_DELETES_PER_RUN: '500' });
    tpl.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(3 days)' });
  });
});

describe('context keys', () => {
  const bad = (context: Record<string, unknown>, message: RegExp) => {
    expect(() => parseFleetConfig({ ...DOMAIN, ...context })).toThrow(FleetConfigError);
    expect(() => parseFleetConfig({ ...DOMAIN, ...context })).toThrow(message);
  };

  it('defaults: dryRun, weekly, 48h grace, 10000 deletes, 7 undo days, no retention', () => {
    expect(parseFleetConfig(DOMAIN)).toMatchObject({
      gcMode: 'dryRun',
      gcSchedule: 'cron(0 5 ? * SUN *)',
      gcGrace: '48h',
      gcMaxDeletesPerRun: 10_000,
      gcUndoDays: 7,
    });
    expect(parseFleetConfig(DOMAIN).gcRetention).toBeUndefined();
  });

  it.each<[Record<string, unknown>, RegExp]>([
    [{ gcMode: 'yes' }, /context gcMode: expected off, dryRun or on \(got "yes"\)/],
    [{ gcSchedule: 'weekly' }, /context gcSchedule: expected an EventBridge schedule/],
    [{ gcGrace: '30m' }, /context gcGrace: expected .*at least 1h \(got "30m"\)/],
    [{ gcMaxDeletesPerRun: '0' }, /context gcMaxDeletesPerRun: expected a whole number from 1 to 100000/],
    [{ gcUndoDays: '0' }, /context gcUndoDays: expected a whole number from 1 to 365/],
    [{ gcRetention: '{rules:' }, /context gcRetention: expected a retention policy .* not valid JSON/],
    [
      { gcRetention: '{"rules":[{"repository":"*","keepLast":0}]}' },
      /context gcRetention: expected a retention policy .*bad: rules\.0\.keepLast/,
    ],
    [
      { gcRetention: { rules: [{ repository: 'team/*', tagPrefix: 'pr-', tagPattern: '^v', keepLast: 1 }] } },
      /context gcRetention: .*bad: rules\.0/,
    ],
    [{ gcRetention: { rules: [{ repository: 'team/*', keepLast: 1, keepFirst: 2 }] } }, /context gcRetention: .*bad: rules\.0/],
  ])('rejects %j naming the key', (context, message) => bad(context, message));

  it('retention as JSON text (-c) or an object (cdk.json), passed on compact', () => {
    const policy = {
      rules: [
        { repository: 'team/*', tagPrefix: 'pr-', keepLast: 10, expireAfterDays: 30 },
        { repository: '*', untaggedAfterDays: 7 },
      ],
    };
    const fromCli = parseFleetConfig({ ...DOMAIN, gcRetention: JSON.stringify(policy, null, 2) });
    const fromJson = parseFleetConfig({ ...DOMAIN, gcRetention: policy });
    expect(fromCli.gcRetention).toBe(JSON.stringify(policy));
    expect(fromJson.gcRetention).toBe(JSON.stringify(policy));
  });
});

describe('the registry config the fleet runs', () => {
  it('has no blob descriptor cache (distribution #4569) and keeps delete off while retention is off', () => {
    const config = registryConfigOf(t) as { storage: Record<string, unknown> };
    expect(config.storage).not.toHaveProperty('cache');
    expect(JSON.stringify(config)).not.toMatch(/inmemory|blobdescriptor/);
    expect(config.storage).not.toHaveProperty('delete');
  });

  it('retention on: storage.delete.enabled, GC_RETENTION, and the retention-only delete statements', () => {
    const policy = { rules: [{ repository: '**', untaggedAfterDays: 14 }] };
    const tpl = synth({ gcRetention: policy });
    const config = registryConfigOf(tpl) as { storage: Record<string, unknown> };
    expect(config.storage.delete).toEqual({ enabled: true });
    expect(config.storage).not.toHaveProperty('cache');
    expect(envOf(tpl).GC_RETENTION).toBe(JSON.stringify(policy));
    expect(JSON.stringify(tpl.findResources('AWS::IAM::Policy'))).toContain('/_manifests/tags/*');
    expect(JSON.stringify(t.findResources('AWS::IAM::Policy'))).not.toContain('/_manifests/tags/*');
  });
});

describe('alarms', () => {
  const topicRef = (tpl: Template) => ({ Ref: Object.keys(tpl.findResources('AWS::SNS::Topic'))[0] });
  const metricNames = (a: Resource): string[] =>
    a.Properties.MetricName !== undefined
      ? [a.Properties.MetricName as string]
      : (a.Properties.Metrics as { MetricStat?: { Metric: { MetricName: string } } }[]).flatMap((m) =>
          m.MetricStat ? [m.MetricStat.Metric.MetricName] : [],
        );

  it('on failures, on a restored blob (a race happened), on refusals, and when no run succeeds for 2 periods, all to the topic', () => {
    const alarms = gcAlarms(t);
    expect(alarms.map(([, a]) => [...new Set(metricNames(a))].join()).sort()).toEqual(
      ['BlobsRestored', 'Errors', 'FailedActions', 'Refusals', 'RunSucceeded'].sort(),
    );
    for (const [, a] of alarms) expect(a.Properties.AlarmActions).toEqual([topicRef(t)]);
    const restored = alarms.find(([, a]) => metricNames(a).includes('BlobsRestored'))?.[1] as Resource;
    expect(restored.Properties).toMatchObject({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' });
    expect(restored.Properties.Dimensions).toEqual(
      expect.arrayContaining([
        { Name: 'service', Value: 'collect-garbage' },
        { Name: 'dryRun', Value: 'false' },
        { Name: 'fleet', Value: 'registry-fleet' },
      ]),
    );
  });
});

describe('least privilege (evaluated with @cloud-copilot/iam-simulate)', () => {
  const BUCKET = 'arn:aws:s3:::fleet-registry';
  const ACCOUNT = '123456789012';
  const HEX = 'ab'.repeat(32);
  const v2 = 'docker/registry/v2';

  async function decide(
    statements: ReturnType<typeof collectGarbageStatements>,
    action: string,
    key: string | undefined,
    context: Record<string, string> = {},
  ): Promise<string> {
    const r = await runSimulation(
      {
        identityPolicies: [{ name: 'gc', policy: { Version: '2012-10-17', Statement: statements.map((s) => s.toStatementJson()) } }],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        request: {
          principal: `arn:aws:iam::${ACCOUNT}:role/gc`,
          action,
          resource: { resource: key === undefined ? BUCKET : `${BUCKET}/${key}`, accountId: ACCOUNT },
          contextVariables: context,
        },
      } as never,
      {},
    );
    return (r as { overallResult: string }).overallResult;
  }

  const off = collectGarbageStatements(BUCKET, '', false);
  const on = collectGarbageStatements(BUCKET, '', true);
  const cases: [string, string | undefined, Record<string, string>, 'Allowed' | 'ImplicitlyDenied', 'Allowed' | 'ImplicitlyDenied'][] = [
    // action, key, context, retention off, retention on
    ['s3:ListBucket', undefined, { 's3:prefix': `${v2}/repositories/` }, 'Allowed', 'Allowed'],
    ['s3:ListBucket', undefined, { 's3:prefix': `${v2}/blobs/sha256/ab/` }, 'Allowed', 'Allowed'],
    // Listing names only, unconditioned: a GetObject of a missing lease must answer NoSuchKey, not AccessDenied.
    ['s3:ListBucket', undefined, {}, 'Allowed', 'Allowed'],
    ['s3:ListBucketVersions', undefined, { 's3:prefix': `${v2}/blobs/sha256/ab/${HEX}/data` }, 'Allowed', 'Allowed'],
    ['s3:GetBucketVersioning', undefined, {}, 'Allowed', 'Allowed'],
    ['s3:GetObject', `${v2}/repositories/team/app/_manifests/tags/latest/current/link`, {}, 'Allowed', 'Allowed'],
    ['s3:GetObject', `${v2}/blobs/sha256/ab/${HEX}/data`, {}, 'Allowed', 'Allowed'],
    ['s3:GetObject', 'control-plane/htpasswd', {}, 'ImplicitlyDenied', 'ImplicitlyDenied'],
    ['s3:DeleteObject', `${v2}/blobs/sha256/ab/${HEX}/data`, {}, 'Allowed', 'Allowed'],
    ['s3:DeleteObject', `${v2}/repositories/org/team/app/_layers/sha256/${HEX}/link`, {}, 'Allowed', 'Allowed'],
    ['s3:DeleteObject', `${v2}/repositories/team/app/_manifests/tags/latest/current/link`, {}, 'ImplicitlyDenied', 'Allowed'],
    ['s3:DeleteObject', `${v2}/repositories/team/app/_manifests/revisions/sha256/${HEX}/link`, {}, 'ImplicitlyDenied', 'Allowed'],
    ['s3:DeleteObject', `${v2}/repositories/team/app/_uploads/u/data`, {}, 'ImplicitlyDenied', 'ImplicitlyDenied'],
    ['s3:DeleteObject', 'control-plane/htpasswd', {}, 'ImplicitlyDenied', 'ImplicitlyDenied'],
    ['s3:DeleteObjectVersion', `${v2}/blobs/sha256/ab/${HEX}/data`, {}, 'Allowed', 'Allowed'],
    [
      's3:DeleteObjectVersion',
      `${v2}/repositories/team/app/_manifests/revisions/sha256/${HEX}/link`,
      {},
      'ImplicitlyDenied',
      'ImplicitlyDenied',
    ],
    ['s3:PutObject', `${v2}/blobs/sha256/ab/${HEX}/data`, {}, 'ImplicitlyDenied', 'ImplicitlyDenied'],
    ['s3:PutObject', `${v2}/repositories/team/app/_manifests/tags/latest/current/link`, {}, 'ImplicitlyDenied', 'ImplicitlyDenied'],
    ['s3:PutObject', gcCheckpointKey(''), {}, 'Allowed', 'Allowed'],
    ['s3:PutObject', storageLeaseKey(''), {}, 'Allowed', 'Allowed'],
    ['s3:PutObject', 'control-plane/htpasswd', {}, 'ImplicitlyDenied', 'ImplicitlyDenied'],
    ['s3:DeleteObject', storageLeaseKey(''), {}, 'ImplicitlyDenied', 'ImplicitlyDenied'],
  ];

  it.each(cases)('%s %s %j: retention off → %s, on → %s', async (action, key, context, whenOff, whenOn) => {
    expect(await decide(off, action, key, context)).toBe(whenOff);
    expect(await decide(on, action, key, context)).toBe(whenOn);
  });

  it('a root directory moves every object grant under it', async () => {
    const rooted = collectGarbageStatements(BUCKET, '/fleet/a', false);
    expect(await decide(rooted, 's3:DeleteObject', `fleet/a/${v2}/blobs/sha256/ab/${HEX}/data`)).toBe('Allowed');
    expect(await decide(rooted, 's3:DeleteObject', `${v2}/blobs/sha256/ab/${HEX}/data`)).toBe('ImplicitlyDenied');
    expect(await decide(rooted, 's3:PutObject', 'control-plane/leases/roots/fleet/a/registry-storage.json')).toBe('Allowed');
  });

  it("names the job's own checkpoint key (infra cannot import functions/: the two must agree)", () => {
    for (const root of ['', '/fleet/a', 'fleet/b/']) expect(gcCheckpointKey(root)).toBe(sweepCheckpointKey(root));
  });

  it('purge-stale-uploads takes the same lease: STORAGE_LEASE=true on its function', () => {
    const purge = Object.values(
      t.findResources('AWS::Lambda::Function', { Properties: { FunctionName: 'registry-fleet-purge-stale-uploads' } }) as Resources,
    )[0] as Resource;
    expect((purge.Properties.Environment as { Variables: Record<string, unknown> }).Variables.STORAGE_LEASE).toBe('true');
  });

  it('the stack gives these statements to the function, and the lease key to purge-stale-uploads too', () => {
    const policies = Object.values(t.findResources('AWS::IAM::Policy') as Resources).map((p) => JSON.stringify(p.Properties));
    const withLease = policies.filter((p) => p.includes(`/${storageLeaseKey('')}`));
    expect(withLease).toHaveLength(2);
    expect(policies.some((p) => p.includes('s3:DeleteObjectVersion') && p.includes('/docker/registry/v2/blobs/sha256/*/*/data'))).toBe(
      true,
    );
  });
});
