import { DescribeAutoScalingGroupsCommand, type AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { paginateLookupEvents, type CloudTrailClient, type Event as TrailEvent } from '@aws-sdk/client-cloudtrail';
import { paginateGetMetricData, type CloudWatchClient, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import { paginateDescribeVolumes, type EC2Client, type Filter } from '@aws-sdk/client-ec2';
import { describeError } from '../../shared/errors.ts';
import type { RunContext } from '../../shared/job.ts';
import type { LoadedConfig } from './config.ts';
import { deleteCandidates } from './plan.ts';
import {
  DISK_READING_WINDOW_MS,
  EBS_ATTACHED_METRIC,
  EBS_METRIC_SLACK_MS,
  MARK_EVENT_SLACK_MS,
  USAGE_EVENTS,
  type DiskReading,
  type FleetInstance,
  type Scope,
  type State,
  type Volume,
  type VolumeEvent,
  type VolumeUsage,
} from './model.ts';

/** Read-only AWS calls → plain domain types (SDK types never leave this file). */

export interface ObserveClients {
  readonly ec2: EC2Client;
  readonly autoScaling: AutoScalingClient;
  readonly cloudWatch: CloudWatchClient;
  readonly cloudTrail: CloudTrailClient;
}

type ObserveContext = Pick<RunContext<LoadedConfig>, 'config' | 'now' | 'signal' | 'hasTime'>;

/**
 * The volumes and disks the scope asks for, then the CloudTrail history of exactly the volumes plan will consider
 * deleting (`deleteCandidates`: the oldest marks past the grace, at most the per-run limit), then one
 * GetMetricData for the disks and those candidates' AWS/EBS attachment metrics.
 */
export async function observe(clients: ObserveClients, scope: Scope, ctx: ObserveContext): Promise<State> {
  const { config, signal } = ctx;
  const volumes = scope.volumes ? await observeVolumes(clients.ec2, config.fleetTag, scope.volumeIds, signal) : undefined;
  const usage = volumes ? await observeUsage(clients.cloudTrail, deleteCandidates(volumes, config.policy, ctx.now), ctx) : undefined;
  const instances = scope.prune ? await observeInstances(clients.autoScaling, config.asgName, signal) : undefined;
  const inService = (instances ?? []).filter((i) => i.lifecycleState === 'InService').map((i) => i.id);
  // Only candidates with a history can be deleted: only they need the attachment evidence CloudTrail may lack yet.
  const read = Object.entries(usage ?? {}).flatMap(([id, u]) => (u.kind === 'history' ? [id] : []));
  const metrics =
    inService.length > 0 || read.length > 0
      ? await observeMetrics(clients.cloudWatch, { instanceIds: inService, volumeIds: read }, config.policy.cloudTrailLagMs, ctx)
      : { readings: {}, attached: {} };
  return {
    scope,
    ...(volumes ? { volumes } : {}),
    ...(usage ? { usage, attachedMetrics: metrics.attached } : {}),
    ...(instances ? { instances } : {}),
    readings: metrics.readings,
    thresholdPercent: config.diskUsedPercentThreshold,
  };
}

/** LookupEvents pages (50 events each) read per volume; a volume with more events since its mark is not verified. */
const MAX_HISTORY_PAGES = 20;

/**
 * Each candidate's AttachVolume/DetachVolume events from a minute before its mark up to now, by the volume id
 * (LookupEvents takes one attribute; `ResourceName` matches the volume, the event names are filtered here). One
 * volume at a time: CloudTrail allows 2 LookupEvents per second per account and region, and the SDK's retries
 * absorb throttling. A volume whose history cannot be read is reported as such; plan never deletes it.
 */
export async function observeUsage(
  cloudTrail: CloudTrailClient,
  candidates: readonly { volume: Volume; markedMs: number }[],
  ctx: Pick<ObserveContext, 'now' | 'signal' | 'hasTime'>,
): Promise<Record<string, VolumeUsage>> {
  const usage: Record<string, VolumeUsage> = {};
  for (const { volume, markedMs } of candidates) {
    if (ctx.signal.aborted || !ctx.hasTime()) break; // not read = not deleted this run
    const since = new Date(markedMs - MARK_EVENT_SLACK_MS);
    try {
      usage[volume.id] = {
        kind: 'history',
        since: since.toISOString(),
        until: ctx.now.toISOString(),
        events: await volumeEvents(cloudTrail, volume.id, since, ctx),
      };
    } catch (error) {
      usage[volume.id] = { kind: 'unreadable', error: describeError(error) };
    }
  }
  return usage;
}

async function volumeEvents(
  cloudTrail: CloudTrailClient,
  volumeId: string,
  since: Date,
  ctx: Pick<ObserveContext, 'now' | 'signal'>,
): Promise<VolumeEvent[]> {
  const input = {
    LookupAttributes: [{ AttributeKey: 'ResourceName' as const, AttributeValue: volumeId }],
    StartTime: since,
    EndTime: ctx.now,
    MaxResults: 50,
  };
  const events: VolumeEvent[] = [];
  let pages = 0;
  for await (const page of paginateLookupEvents({ client: cloudTrail }, input, { abortSignal: ctx.signal })) {
    pages += 1;
    if (pages > MAX_HISTORY_PAGES)
      throw new Error(`more than ${MAX_HISTORY_PAGES * 50} events on ${volumeId} since its mark: not verified`);
    for (const e of page.Events ?? []) {
      const event = toVolumeEvent(e);
      if (event) events.push(event);
    }
  }
  return events;
}

/**
 * Every AttachVolume/DetachVolume the lookup by the volume's id returns counts, failed calls included: whoever
 * tried to attach the volume wants it, so it is safer to start the grace over than to delete it.
 */
function toVolumeEvent(e: TrailEvent): VolumeEvent | undefined {
  if (!e.EventName || !USAGE_EVENTS.includes(e.EventName) || !e.EventTime) return undefined;
  const instanceId = e.Resources?.find((r) => r.ResourceType === 'AWS::EC2::Instance')?.ResourceName;
  return { name: e.EventName, at: e.EventTime.toISOString(), ...(instanceId ? { instanceId } : {}) };
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

type MetricTarget = { readonly kind: 'disk' | 'volume'; readonly id: string };

function metricQuery(target: MetricTarget, i: number): MetricDataQuery {
  if (target.kind === 'volume') {
    return {
      Id: `v${i}`,
      ReturnData: true,
      MetricStat: {
        Metric: { Namespace: 'AWS/EBS', MetricName: EBS_ATTACHED_METRIC, Dimensions: [{ Name: 'VolumeId', Value: target.id }] },
        Period: 60,
        Stat: 'SampleCount',
      },
    };
  }
  return {
    Id: `m${i}`,
    ReturnData: true,
    MetricStat: {
      Metric: {
        Namespace: 'CWAgent',
        MetricName: 'disk_used_percent',
        Dimensions: [
          { Name: 'InstanceId', Value: target.id },
          { Name: 'path', Value: '/' },
          { Name: 'fstype', Value: 'xfs' },
        ],
      },
      Period: 60,
      Stat: 'Maximum',
    },
  };
}

/**
 * In ONE GetMetricData call (per 500 queries): the latest `disk_used_percent` (CloudWatch agent, namespace CWAgent,
 * dimensions InstanceId, path=/, fstype=xfs) of each instance in the last DISK_READING_WINDOW_MS, and the newest
 * AWS/EBS datapoint of each volume since CLOUDTRAIL_LAG + EBS_METRIC_SLACK_MS before now. EBS publishes a
 * volume's metrics only while it is attached, and at once, so they show an attach CloudTrail has not delivered.
 */
export async function observeMetrics(
  cloudWatch: CloudWatchClient,
  { instanceIds, volumeIds }: { readonly instanceIds: readonly string[]; readonly volumeIds: readonly string[] },
  lagMs: number,
  ctx: Pick<ObserveContext, 'now' | 'signal'>,
): Promise<{ readings: Record<string, DiskReading>; attached: Record<string, string> }> {
  const readings: Record<string, DiskReading> = {};
  const attached: Record<string, string> = {};
  const now = ctx.now.getTime();
  const diskFrom = now - DISK_READING_WINDOW_MS;
  const volumeFrom = now - lagMs - EBS_METRIC_SLACK_MS;
  const targets: MetricTarget[] = [
    ...instanceIds.map((id) => ({ kind: 'disk' as const, id })),
    ...volumeIds.map((id) => ({ kind: 'volume' as const, id })),
  ];
  for (let start = 0; start < targets.length; start += MAX_QUERIES) {
    const queries = targets.slice(start, start + MAX_QUERIES).map((target, i) => ({ target, query: metricQuery(target, i) }));
    const byId = new Map(queries.map(({ target, query }) => [query.Id, target]));
    const input = {
      MetricDataQueries: queries.map(({ query }) => query),
      // One window for both kinds (a call has one); each kind keeps only the datapoints in its own window below.
      StartTime: new Date(Math.min(diskFrom, volumeFrom)),
      EndTime: ctx.now,
      ScanBy: 'TimestampDescending' as const,
    };
    for await (const page of paginateGetMetricData({ client: cloudWatch }, input, { abortSignal: ctx.signal })) {
      for (const result of page.MetricDataResults ?? []) {
        const target = byId.get(result.Id);
        if (target === undefined) continue;
        // Newest first (ScanBy TimestampDescending); keep the newest datapoint across pages.
        (result.Timestamps ?? []).forEach((at, k) => {
          const value = result.Values?.[k];
          if (value === undefined || !Number.isFinite(value)) return;
          if (target.kind === 'volume') {
            const previous = attached[target.id];
            if (at.getTime() >= volumeFrom && (!previous || Date.parse(previous) < at.getTime())) attached[target.id] = at.toISOString();
            return;
          }
          const previous = readings[target.id];
          if (at.getTime() >= diskFrom && (!previous || Date.parse(previous.at) < at.getTime()))
            readings[target.id] = { usedPercent: value, at: at.toISOString() };
        });
      }
    }
  }
  return { readings, attached };
}
