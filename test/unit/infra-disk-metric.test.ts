import { CloudWatchClient, type GetMetricDataCommandInput } from '@aws-sdk/client-cloudwatch';
import { describe, expect, it } from 'vitest';
import { observeMetrics } from '../../functions/purge-disk-volumes/observe.ts';
import { diskQuery } from '../../infra/constructs/jobs/purge-disk-volumes.ts';
import { renderCloudWatchAgentConfig } from '../../infra/user-data.ts';

/**
 * The disk metric is a contract between three parts: the CloudWatch agent config (what is published), the disk
 * alarm's Metrics Insights query (which series it reads: SCHEMA matches an exact dimension set) and purge-disk-volumes'
 * GetMetricData reading (an exact dimension set too). A drift between them is silent in AWS: no data, no alarm.
 */
interface AgentMetrics {
  append_dimensions: Record<string, string>;
  aggregation_dimensions: string[][];
  metrics_collected: { disk: { drop_device?: boolean } };
}

/**
 * The dimension sets the agent publishes `disk_used_percent` under: the disk plugin's tags (device unless dropped,
 * fstype, path), `host` (which the agent's ec2tagger removes once it appends EC2 dimensions), the appended
 * dimensions; and one set per aggregation_dimensions entry.
 */
function publishedSets(): string[][] {
  const m = (JSON.parse(renderCloudWatchAgentConfig()) as { metrics: AgentMetrics }).metrics;
  const appended = Object.keys(m.append_dimensions);
  const plugin = [...(m.metrics_collected.disk.drop_device ? [] : ['device']), 'fstype', 'path', ...(appended.length > 0 ? [] : ['host'])];
  return [[...plugin, ...appended], ...m.aggregation_dimensions].map((set) => [...set].sort());
}

describe('the disk metric contract', () => {
  it('the agent publishes the per-group series and the per-instance aggregation', () => {
    expect(publishedSets()).toEqual([
      ['AutoScalingGroupName', 'InstanceId', 'fstype', 'path'],
      ['InstanceId', 'fstype', 'path'],
    ]);
  });

  it('the disk alarm reads the series with the group name, of the one group it is given', () => {
    const query = diskQuery('fleet-a-FleetGroup-ABC');
    const schema = /SCHEMA\(CWAgent, ([^)]*)\)/.exec(query)?.[1]?.split(', ') ?? [];
    expect(publishedSets()).toContainEqual([...schema].sort());
    expect(query).toBe(
      "SELECT MAX(disk_used_percent) FROM SCHEMA(CWAgent, AutoScalingGroupName, InstanceId, fstype, path) WHERE AutoScalingGroupName = 'fleet-a-FleetGroup-ABC' AND path = '/'",
    );
  });

  it('purge-disk-volumes reads a series the agent publishes (the per-instance aggregation), of / on xfs', async () => {
    const inputs: GetMetricDataCommandInput[] = [];
    const cloudWatch = new CloudWatchClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
    // Answer locally: this test is about the request the job sends, not about CloudWatch.
    cloudWatch.middlewareStack.add(
      () => async (args) => {
        inputs.push(args.input as GetMetricDataCommandInput);
        return { output: { MetricDataResults: [], $metadata: {} }, response: {} };
      },
      { step: 'initialize' },
    );
    await observeMetrics(cloudWatch, { instanceIds: ['i-0000000000000000a', 'i-0000000000000000b'], volumeIds: [] }, 20 * 60_000, {
      now: new Date('2026-11-23T03:00:00Z'),
      signal: new AbortController().signal,
    });
    const queried = inputs.flatMap((i) => i.MetricDataQueries ?? []).map((q) => q.MetricStat?.Metric);
    expect(queried).toHaveLength(2);
    for (const metric of queried) {
      expect(metric).toMatchObject({ Namespace: 'CWAgent', MetricName: 'disk_used_percent' });
      expect(publishedSets()).toContainEqual((metric?.Dimensions ?? []).map((d) => d.Name ?? '').sort());
      expect(metric?.Dimensions).toEqual(
        expect.arrayContaining([
          { Name: 'path', Value: '/' },
          { Name: 'fstype', Value: 'xfs' },
        ]),
      );
    }
  });
});
