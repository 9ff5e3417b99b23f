// The run history, pages and logs in the stack: the history bucket (encrypted, private, TLS-only, expiring,
// retained) and its least-privilege grants, run notifications to the alarm topic, the new alarms with their
// thresholds and topic, the saved Logs Insights queries, the log level, and the optional Glue table.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Match } from 'aws-cdk-lib/assertions';
import type { Template } from 'aws-cdk-lib/assertions';
import { createApp } from '../../infra/app.ts';
import { ALL_JOBS, JOBS, type JobName } from '../../infra/config.ts';
import { LOG_QUERIES } from '../../infra/constructs/log-queries.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

const fake = fakeFunctionsDir();
let t: Template;
let options: Template;

beforeAll(() => {
  t = synthFleet({ domainName: 'registry.corp.internal' }, fake.dir).template;
  options = synthFleet(
    {
      domainName: 'registry.corp.internal',
      historyRetentionDays: '30',
      historyGlueTable: 'true',
      circuitOpenAlarmMinutes: '60',
      logLevel: 'DEBUG',
      replaceUnhealthyInstancesSchedule: 'rate(10 minutes)',
    },
    fake.dir,
  ).template;
}, 240_000);
afterAll(() => fake.remove());

type Resource = { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string };
type Statement = { Action: string | string[]; Resource: unknown; Effect: string; Condition?: unknown };
const resources = (tpl: Template, type: string): [string, Resource][] =>
  Object.entries(tpl.findResources(type) as Record<string, Resource>);
const historyBucket = (tpl: Template): [string, Resource] => {
  const found = resources(tpl, 'AWS::S3::Bucket').filter(([id]) => id.startsWith('HistoryBucket'));
  expect(found).toHaveLength(1);
  return found[0] as [string, Resource];
};
const fnOf = (tpl: Template, job: JobName): [string, Resource] =>
  resources(tpl, 'AWS::Lambda::Function').find(([, r]) => r.Properties.FunctionName === `registry-fleet-${job}`) as [string, Resource];
function statementsOf(tpl: Template, job: JobName): Statement[] {
  const roleId = (fnOf(tpl, job)[1].Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
  return resources(tpl, 'AWS::IAM::Policy')
    .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}
const topicRef = (tpl: Template) => ({ Ref: resources(tpl, 'AWS::SNS::Topic')[0]?.[0] });
const alarm = (tpl: Template, idPrefix: string): Resource => {
  const found = resources(tpl, 'AWS::CloudWatch::Alarm').filter(([id]) => id.startsWith(`Monitoring${idPrefix}`));
  expect(found, idPrefix).toHaveLength(1);
  return (found[0] as [string, Resource])[1];
};
const metricsIn = (a: Resource) =>
  a.Properties.Metrics as {
    Expression?: string;
    MetricStat?: { Metric: { MetricName: string; Dimensions: { Name: string; Value: string }[] }; Period: number; Stat: string };
  }[];

describe('history bucket', () => {
  it('is encrypted, private, TLS-only, owner-enforced and retained, and expires reports after 90 days', () => {
    const [id, bucket] = historyBucket(t);
    expect(bucket.DeletionPolicy).toBe('Retain');
    expect(bucket.Properties).toMatchObject({
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
    });
    expect((bucket.Properties.LifecycleConfiguration as { Rules: unknown[] }).Rules).toContainEqual({
      Id: 'expire-reports',
      Prefix: 'reports/',
      ExpirationInDays: 90,
      Status: 'Enabled',
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

  it('keeps reports as long as the historyRetentionDays context says', () => {
    const rules = (historyBucket(options)[1].Properties.LifecycleConfiguration as { Rules: { Id: string; ExpirationInDays?: number }[] })
      .Rules;
    expect(rules.find((r) => r.Id === 'expire-reports')?.ExpirationInDays).toBe(30);
  });

  it('each function may only PutObject under its own reports/job=<job>/ prefix, and nothing else on the bucket', () => {
    const [bucketId] = historyBucket(t);
    for (const job of JOBS) {
      const onHistory = statementsOf(t, job).filter((s) => JSON.stringify(s.Resource).includes(bucketId));
      expect(onHistory, job).toEqual([
        {
          Effect: 'Allow',
          Action: 's3:PutObject',
          Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, `/reports/job=${job}/*`]] },
        },
      ]);
    }
  });

  it('tells every function where to write (HISTORY_BUCKET, HISTORY_PREFIX) and where to notify (NOTIFY_TOPIC_ARN), at log level INFO', () => {
    const [bucketId] = historyBucket(t);
    for (const job of JOBS) {
      const vars = (fnOf(t, job)[1].Properties.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(vars, job).toMatchObject({
        HISTORY_BUCKET: { Ref: bucketId },
        HISTORY_PREFIX: 'reports',
        NOTIFY_TOPIC_ARN: topicRef(t),
        POWERTOOLS_LOG_LEVEL: 'INFO',
      });
      expect(statementsOf(t, job)).toContainEqual({ Effect: 'Allow', Action: 'sns:Publish', Resource: topicRef(t) });
    }
  });

  it('the log level follows the logLevel context', () => {
    for (const job of JOBS)
      expect((fnOf(options, job)[1].Properties.Environment as { Variables: Record<string, unknown> }).Variables.POWERTOOLS_LOG_LEVEL).toBe(
        'DEBUG',
      );
  });

  it('outputs the bucket name for npm run history', () => {
    const outputs = t.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.HistoryBucketName?.Value).toEqual({ Ref: historyBucket(t)[0] });
  });
});

describe('glue table (historyGlueTable)', () => {
  it('is off by default', () => {
    t.resourceCountIs('AWS::Glue::Table', 0);
    t.resourceCountIs('AWS::Glue::Database', 0);
  });

  it('projects the job and date partitions over the reports prefix (no crawler)', () => {
    const [bucketId] = historyBucket(options);
    options.hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: 'registry_fleet_history' } });
    options.hasResourceProperties('AWS::Glue::Table', {
      DatabaseName: 'registry_fleet_history',
      TableInput: Match.objectLike({
        Name: 'runs',
        PartitionKeys: [
          { Name: 'job', Type: 'string' },
          { Name: 'date', Type: 'string' },
        ],
        Parameters: Match.objectLike({
          'projection.enabled': 'true',
          'projection.job.values': ALL_JOBS.join(','),
          'projection.date.range': 'NOW-30DAYS,NOW',
          'storage.location.template': { 'Fn::Join': ['', ['s3://', { Ref: bucketId }, '/reports/job=${job}/date=${date}/']] },
        }),
        StorageDescriptor: Match.objectLike({
          SerdeInfo: Match.objectLike({ SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' }),
        }),
      }),
    });
  });
});

describe('pages for what needs a person', () => {
  // `fleet` is the stack name (FLEET_NAME of every function): another fleet's runs never reach these pages.
  const dims = (job: string, dryRun: string) => [
    { Name: 'service', Value: job },
    { Name: 'dryRun', Value: dryRun },
    { Name: 'fleet', Value: 'registry-fleet' },
  ];
  const expectMetric = (a: Resource, job: string, name: string, period: number, stat: string) => {
    const stats = metricsIn(a)
      .filter((m) => m.MetricStat)
      .map((m) => m.MetricStat);
    const sorted = (d: { Name: string; Value: string }[] | undefined) =>
      [...(d ?? [])].sort((x, y) => (x.Name === 'service' ? -1 : y.Name === 'service' ? 1 : 0));
    expect(stats.map((m) => [m?.Metric.MetricName, sorted(m?.Metric.Dimensions), m?.Period, m?.Stat])).toEqual([
      [name, dims(job, 'false'), period, stat],
      [name, dims(job, 'true'), period, stat],
    ]);
  };

  it('ReplacementStalled ≥ 1 and ReplacementBudgetExhausted ≥ 1 (5 minutes), to the topic', () => {
    for (const name of ['ReplacementStalled', 'ReplacementBudgetExhausted']) {
      const a = alarm(t, name);
      expect(a.Properties).toMatchObject({
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        EvaluationPeriods: 1,
        TreatMissingData: 'notBreaching',
        AlarmActions: [topicRef(t)],
      });
      expectMetric(a, 'replace-unhealthy-instances', name, 300, 'Maximum');
    }
  });

  it("CertificateDaysLeft < 14 (the day's minimum, dry runs included), to the topic", () => {
    const a = alarm(t, 'CertificateDaysLeft');
    expect(a.Properties).toMatchObject({
      Threshold: 14,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 1,
      AlarmActions: [topicRef(t)],
    });
    expectMetric(a, 'rotate-certificates', 'CertificateDaysLeft', 86_400, 'Minimum');
    expect(metricsIn(a).find((m) => m.Expression)?.Expression).toBe('MIN([FILL(live, 100000), FILL(dry, 100000)])');
  });

  it('the circuit breaker open for longer than circuitOpenAlarmMinutes (30 → 6 of 6 five-minute periods; 60 → 12)', () => {
    expect(alarm(t, 'CircuitOpenTooLong').Properties).toMatchObject({
      Threshold: 1,
      EvaluationPeriods: 6,
      DatapointsToAlarm: 6,
      AlarmActions: [topicRef(t)],
    });
    expect(alarm(options, 'CircuitOpenTooLong').Properties).toMatchObject({ EvaluationPeriods: 12, DatapointsToAlarm: 12 });
    expectMetric(alarm(t, 'CircuitOpenTooLong'), 'replace-unhealthy-instances', 'CircuitOpen', 300, 'Maximum');
  });

  it.each<[JobName, number]>([
    ['replace-unhealthy-instances', 300],
    ['purge-stale-uploads', 86_400],
    ['purge-disk-volumes', 86_400],
    ['rotate-certificates', 86_400],
    ['sync-htpasswd', 3_600],
  ])('%s: no RunSucceeded for 2 schedule periods of %i s (missing data breaches), to the topic', (job, period) => {
    const id = job.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
    const a = alarm(t, `${id}NotSucceeding`);
    expect(a.Properties).toMatchObject({
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 2,
      DatapointsToAlarm: 2,
      TreatMissingData: 'breaching',
      AlarmActions: [topicRef(t)],
    });
    expectMetric(a, job, 'RunSucceeded', period, 'Sum');
  });

  it('the schedule period follows the schedule context', () => {
    expectMetric(alarm(options, 'ReplaceUnhealthyInstancesNotSucceeding'), 'replace-unhealthy-instances', 'RunSucceeded', 600, 'Sum');
  });
});

describe('saved Logs Insights queries', () => {
  it("last runs per job, failed actions, deletions by target, replacements per instance: over every job's log group", () => {
    const logGroups = resources(t, 'AWS::Logs::LogGroup')
      .filter(([id]) => id.startsWith('ControlPlane') || id.startsWith('CollectGarbage'))
      .map(([id]) => ({ Ref: id }));
    expect(logGroups).toHaveLength(ALL_JOBS.length);
    const defs = resources(t, 'AWS::Logs::QueryDefinition').map(
      ([, r]) => r.Properties as { Name: string; QueryString: string; LogGroupNames: unknown[] },
    );
    expect(defs.map((d) => d.Name).sort()).toEqual(
      Object.keys(LOG_QUERIES)
        .map((n) => `registry-fleet/${n}`)
        .sort(),
    );
    for (const d of defs)
      expect(new Set(d.LogGroupNames.map((g) => JSON.stringify(g)))).toEqual(new Set(logGroups.map((g) => JSON.stringify(g))));
    const byName = Object.fromEntries(defs.map((d) => [d.Name.split('/')[1], d.QueryString]));
    expect(byName['last-runs-per-job']).toContain('filter message = "job report"');
    expect(byName['last-runs-per-job']).toContain('by job');
    expect(byName['failed-actions']).toContain('filter message = "job action" and status = "failed"');
    expect(byName['deletions-by-target']).toMatch(/type like \/\^delete-\/[\s\S]*by job, type, target/);
    expect(byName['replacements-per-instance']).toContain('job = "replace-unhealthy-instances"');
    expect(byName['replacements-per-instance']).toContain('by target');
  });
});

describe('context', () => {
  it.each([
    ['historyRetentionDays', '0', 'context historyRetentionDays: expected a whole number from 1 to 3650 (got "0")'],
    ['circuitOpenAlarmMinutes', 'soon', 'context circuitOpenAlarmMinutes: expected a whole number from 5 to 1440 (got "soon")'],
    ['logLevel', 'LOUD', 'context logLevel: expected one of TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL (got "LOUD")'],
    ['historyGlueTable', 'yes', 'context historyGlueTable: expected true or false (got "yes")'],
  ])('%s=%s is refused, naming the key', (key, value, message) => {
    expect(() =>
      createApp({ context: { domainName: 'registry.corp.internal', functionsDir: fake.dir, [key]: value }, nag: false }),
    ).toThrow(message);
  });
});
