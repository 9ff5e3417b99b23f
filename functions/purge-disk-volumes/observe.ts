import { DescribeAutoScalingGroupsCommand, type AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { paginateGetMetricData, type CloudWatchClient, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import { paginateDescribeVolumes, type EC2Client, type Filter } from '@aws-sdk/client-ec2';
import { DISK_READING_WINDOW_MS, type DiskReading, type FleetInstance, type Scope, type State, type Volume } from './plan.ts';

/** Read-only AWS calls → plain domain types (SDK types never leave this file). */

export interface ObserveClients {
  readonly ec2: EC2Client;
  readonly autoScaling: AutoScalingClient;
  readonly cloudWatch: CloudWatchClient;
}

export interface ObserveInput {
  readonly scope: Scope;
  readonly fleetTag: { readonly key: string; readonly value: string };
  readonly asgName: string;
  readonly thresholdPercent: number;
  readonly now: Date;
  readonly signal: AbortSignal;
}

export async function observeState(clients: ObserveClients, input: ObserveInput): Promise<State> {
  const { scope, signal } = input;
  const volumes = scope.volumes ? await observeVolumes(clients.ec2, input.fleetTag, scope.volumeIds, signal) : undefined;
  const instances = scope.prune ? await observeInstances(clients.autoScaling, input.asgName, signal) : undefined;
  const inService = (instances ?? []).filter((i) => i.lifecycleState === 'InService').map((i) => i.id);
  const readings = inService.length > 0 ? await observeDiskReadings(clients.cloudWatch, inService, input.now, signal) : {};
  return {
    scope,
    ...(volumes ? { volumes } : {}),
    ...(instances ? { instances } : {}),
    readings,
    thresholdPercent: input.thresholdPercent,
  };
}

/**
 * Fleet volumes in any state (in-use ones too: a marked volume that was attached again must be unmarked). With
 * `volumeIds` the filter is the ids only, so the plan can say why a named volume without the fleet tag is left
 * alone; a `volume-id` filter (unlike `VolumeIds`) does not fail the whole call when one id does not exist.
 */
export async function observeVolumes(
  ec2: EC2Client,
  fleetTag: { key: string; value: string },
  volumeIds: readonly string[] | undefined,
  signal: AbortSignal,
): Promise<Volume[]> {
  const Filters: Filter[] = volumeIds
    ? [{ Name: 'volume-id', Values: [...volumeIds] }]
    : [{ Name: `tag:${fleetTag.key}`, Values: [fleetTag.value] }];
  const volumes: Volume[] = [];
  for await (const page of paginateDescribeVolumes({ client: ec2, pageSize: 500 }, { Filters }, { abortSignal: signal })) {
    for (const v of page.Volumes ?? []) {
      if (!v.VolumeId) continue;
      volumes.push({
        id: v.VolumeId,
        state: v.State ?? 'unknown',
        sizeGiB: v.Size ?? 0,
        volumeType: v.VolumeType ?? 'unknown',
        attachedTo: (v.Attachments ?? []).map((a) => a.InstanceId ?? 'unknown'),
        tags: Object.fromEntries((v.Tags ?? []).filter((t) => t.Key !== undefined).map((t) => [t.Key as string, t.Value ?? ''])),
      });
    }
  }
  return volumes;
}

export async function observeInstances(autoScaling: AutoScalingClient, asgName: string, signal: AbortSignal): Promise<FleetInstance[]> {
  const res = await autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [asgName] }), { abortSignal: signal });
  const group = res.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === asgName);
  // A wrong ASG_NAME must be visible, not a run that silently finds no instance to prune.
  if (!group) throw new Error(`Auto Scaling group ${asgName} not found (check ASG_NAME)`);
  return (group.Instances ?? [])
    .filter((i) => i.InstanceId)
    .map((i) => ({ id: i.InstanceId as string, lifecycleState: i.LifecycleState ?? 'unknown' }));
}

/** GetMetricData accepts at most 500 queries per call: one call for any fleet up to that size. */
const MAX_QUERIES = 500;

/**
 * The latest `disk_used_percent` (CloudWatch agent, namespace CWAgent, dimensions InstanceId, path=/, fstype=xfs)
 * of each instance in the last DISK_READING_WINDOW_MS, with ONE GetMetricData call holding one query per instance.
 */
export async function observeDiskReadings(
  cloudWatch: CloudWatchClient,
  instanceIds: readonly string[],
  now: Date,
  signal: AbortSignal,
): Promise<Record<string, DiskReading>> {
  const readings: Record<string, DiskReading> = {};
  for (let start = 0; start < instanceIds.length; start += MAX_QUERIES) {
    const chunk = instanceIds.slice(start, start + MAX_QUERIES);
    const queries: MetricDataQuery[] = chunk.map((id, i) => ({
      Id: `m${i}`,
      ReturnData: true,
      MetricStat: {
        Metric: {
          Namespace: 'CWAgent',
          MetricName: 'disk_used_percent',
          Dimensions: [
            { Name: 'InstanceId', Value: id },
            { Name: 'path', Value: '/' },
            { Name: 'fstype', Value: 'xfs' },
          ],
        },
        Period: 60,
        Stat: 'Maximum',
      },
    }));
    const input = {
      MetricDataQueries: queries,
      StartTime: new Date(now.getTime() - DISK_READING_WINDOW_MS),
      EndTime: now,
      ScanBy: 'TimestampDescending' as const,
    };
    for await (const page of paginateGetMetricData({ client: cloudWatch }, input, { abortSignal: signal })) {
      for (const result of page.MetricDataResults ?? []) {
        const id = chunk[Number(result.Id?.slice(1))];
        if (id === undefined) continue;
        // Newest first (ScanBy TimestampDescending); keep the newest datapoint across pages.
        (result.Timestamps ?? []).forEach((at, k) => {
          const value = result.Values?.[k];
          if (value === undefined || !Number.isFinite(value)) return;
          const previous = readings[id];
          if (!previous || Date.parse(previous.at) < at.getTime()) readings[id] = { usedPercent: value, at: at.toISOString() };
        });
      }
    }
  }
  return readings;
}
