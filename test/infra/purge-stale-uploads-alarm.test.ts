// The PurgeListingStalled page: purge-stale-uploads' ListingStalled metric (live and dry runs, the day's maximum,
// this fleet only) ≥ 1 notifies the alarm topic. Every run of a stalled listing succeeds, so nothing else pages.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Template } from 'aws-cdk-lib/assertions';
import { fakeFunctionsDir, synthFleet } from './support.ts';

type Resource = { Type: string; Properties: Record<string, unknown> };
type MetricStat = { Metric: { MetricName: string; Dimensions: { Name: string; Value: string }[] }; Period: number; Stat: string };

const fake = fakeFunctionsDir();
let t: Template;
beforeAll(() => {
  t = synthFleet({ domainName: 'registry.corp.internal' }, fake.dir).template;
}, 240_000);
afterAll(() => fake.remove());

describe('PurgeListingStalled', () => {
  it('pages on ListingStalled ≥ 1 (the day, live or dry, this fleet) to the topic', () => {
    const alarms = Object.entries(t.findResources('AWS::CloudWatch::Alarm') as Record<string, Resource>).filter(([id]) =>
      id.startsWith('MonitoringPurgeListingStalled'),
    );
    expect(alarms).toHaveLength(1);
    const a = (alarms[0] as [string, Resource])[1];
    const topic = Object.keys(t.findResources('AWS::SNS::Topic'))[0];
    expect(a.Properties).toMatchObject({
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: topic }],
    });
    const stats = (a.Properties.Metrics as { MetricStat?: MetricStat }[]).flatMap((m) => (m.MetricStat ? [m.MetricStat] : []));
    const dims = (s: MetricStat) => Object.fromEntries(s.Metric.Dimensions.map((d) => [d.Name, d.Value]));
    expect(stats.map((s) => [s.Metric.MetricName, dims(s), s.Period, s.Stat])).toEqual([
      ['ListingStalled', { service: 'purge-stale-uploads', dryRun: 'false', fleet: 'registry-fleet' }, 86_400, 'Maximum'],
      ['ListingStalled', { service: 'purge-stale-uploads', dryRun: 'true', fleet: 'registry-fleet' }, 86_400, 'Maximum'],
    ]);
  });
});
