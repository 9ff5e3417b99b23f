import {
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
  DescribeScalingActivitiesCommand,
  type AutoScalingClient,
} from '@aws-sdk/client-auto-scaling';
import { DescribeInstanceStatusCommand, paginateDescribeInstances, type EC2Client, type InstanceStatus } from '@aws-sdk/client-ec2';
import { DescribeTargetHealthCommand, type ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { errorName } from '../../shared/errors.ts';
import { logger } from '../../shared/observability.ts';
import type { RequestCounter } from '../../shared/requests.ts';
import {
  parseReplacementLog,
  parseReplacingTag,
  REPLACEMENTS_TAG,
  REPLACING_TAG,
  UNHEALTHY_SINCE_TAG,
  type Fleet,
  type FleetState,
  type Member,
  type Request,
  type TargetHealth,
} from './model.ts';

/**
 * Read the fleet in a fixed number of calls (bar the 100-id batches of the two EC2 calls):
 * DescribeAutoScalingGroups (the one group), DescribeScalingActivities (one page: in-progress activities are
 * the newest), DescribeInstanceRefreshes (one page), DescribeTargetHealth (the whole target group in one call),
 * DescribeInstances (launch time, marker tags) and DescribeInstanceStatus (status checks) per 100 members.
 * SDK types never leave this file.
 */

export interface ObserveClients {
  readonly autoScaling: AutoScalingClient;
  readonly elbv2: ElasticLoadBalancingV2Client;
  readonly ec2: EC2Client;
}

/** EC2 takes at most 100 instance ids per DescribeInstanceStatus call (and we batch DescribeInstances alike). */
export const EC2_BATCH = 100;
const DONE_ACTIVITY = new Set(['Successful', 'Failed', 'Cancelled']);
const ACTIVE_REFRESH = new Set(['Pending', 'InProgress', 'Cancelling', 'RollbackInProgress', 'Baking']);

export class GroupNotFoundError extends Error {
  override readonly name = 'GroupNotFoundError';
}

/** The dialect's observe: the fleet, with the request (the run's scope) it was observed for. */
export async function observe(
  clients: ObserveClients,
  scope: Request,
  ctx: { readonly config: { asgName: string; targetGroupArn: string }; readonly signal: AbortSignal; readonly requests: RequestCounter },
): Promise<FleetState> {
  return { ...(await observeFleet(clients, ctx.config, ctx)), request: scope };
}

/**
 * `ctx.requests` is the run's request counter (the clients count into it); the fleet's `apiCalls` are the
 * requests observe made, so the report shows what reading the fleet cost.
 */
export async function observeFleet(
  clients: ObserveClients,
  names: { asgName: string; targetGroupArn: string },
  ctx: { readonly signal: AbortSignal; readonly requests: RequestCounter },
): Promise<Fleet> {
  const before = ctx.requests.snapshot();
  const { signal } = ctx;
  const opts = { abortSignal: signal };
  const { asgName, targetGroupArn } = names;

  const [groups, activities, refreshes, targets] = await Promise.all([
    clients.autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [asgName] }), opts),
    clients.autoScaling.send(new DescribeScalingActivitiesCommand({ AutoScalingGroupName: asgName, MaxRecords: 100 }), opts),
    clients.autoScaling.send(new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: asgName, MaxRecords: 10 }), opts),
    clients.elbv2.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn }), opts),
  ]);
  const g = groups.AutoScalingGroups?.find((x) => x.AutoScalingGroupName === asgName);
  if (!g) throw new GroupNotFoundError(`Auto Scaling group ${asgName} not found (ASG_NAME)`);

  const targetById = new Map<string, TargetHealth>();
  for (const d of targets.TargetHealthDescriptions ?? []) {
    const id = d.Target?.Id;
    if (!id) continue;
    targetById.set(id, {
      state: d.TargetHealth?.State ?? 'unknown',
      ...(d.TargetHealth?.Reason ? { reason: d.TargetHealth.Reason } : {}),
      ...(d.TargetHealth?.Description ? { description: d.TargetHealth.Description } : {}),
    });
  }

  const ids = (g.Instances ?? []).map((i) => i.InstanceId).filter((id): id is string => Boolean(id));
  const ec2Info = new Map<string, { launchTime?: string; tags: Record<string, string> }>();
  const status = new Map<string, InstanceStatus>();
  for (let i = 0; i < ids.length; i += EC2_BATCH) {
    const batch = ids.slice(i, i + EC2_BATCH);
    // A filter (not InstanceIds) so an id EC2 does not know yet (eventual consistency after launch) is simply absent.
    for await (const page of paginateDescribeInstances(
      { client: clients.ec2 },
      { Filters: [{ Name: 'instance-id', Values: batch }] },
      opts,
    )) {
      for (const r of page.Reservations ?? []) {
        for (const inst of r.Instances ?? []) {
          if (!inst.InstanceId) continue;
          const tags: Record<string, string> = {};
          for (const t of inst.Tags ?? []) if (t.Key && t.Value !== undefined) tags[t.Key] = t.Value;
          ec2Info.set(inst.InstanceId, { ...(inst.LaunchTime ? { launchTime: inst.LaunchTime.toISOString() } : {}), tags });
        }
      }
    }
    for (const s of await describeStatus(clients.ec2, batch, signal)) if (s.InstanceId) status.set(s.InstanceId, s);
  }

  const members: Member[] = (g.Instances ?? []).flatMap((i) => {
    if (!i.InstanceId) return [];
    const info = ec2Info.get(i.InstanceId);
    const s = status.get(i.InstanceId);
    const target = targetById.get(i.InstanceId);
    const replacing = info?.tags[REPLACING_TAG] ? parseReplacingTag(info.tags[REPLACING_TAG]) : undefined;
    const member: Member = {
      id: i.InstanceId,
      lifecycle: i.LifecycleState ?? 'unknown',
      asgHealth: i.HealthStatus ?? 'unknown',
      ...(info?.launchTime ? { launchTime: info.launchTime } : {}),
      ...(s?.InstanceStatus?.Status ? { instanceStatus: s.InstanceStatus.Status } : {}),
      ...(s?.SystemStatus?.Status ? { systemStatus: s.SystemStatus.Status } : {}),
      ...(target ? { target } : {}),
      ...(info?.tags[UNHEALTHY_SINCE_TAG] ? { unhealthySince: info.tags[UNHEALTHY_SINCE_TAG] } : {}),
      ...(replacing ? { replacingSince: replacing.since } : {}),
      ...(replacing?.desiredBefore !== undefined ? { desiredBeforeRaise: replacing.desiredBefore } : {}),
      ...(replacing?.byOperator ? { replacementByOperator: true } : {}),
    };
    return [member];
  });

  const policy = g.InstanceMaintenancePolicy;
  const ledger = g.Tags?.find((t) => t.Key === REPLACEMENTS_TAG)?.Value;
  const fleet: Fleet = {
    group: {
      name: asgName,
      min: g.MinSize ?? 0,
      max: g.MaxSize ?? 0,
      desired: g.DesiredCapacity ?? 0,
      suspendedProcesses: (g.SuspendedProcesses ?? []).map((p) => p.ProcessName ?? '').filter(Boolean),
      ...(policy
        ? {
            maintenancePolicy: {
              ...(policy.MinHealthyPercentage !== undefined ? { minHealthyPercentage: policy.MinHealthyPercentage } : {}),
              ...(policy.MaxHealthyPercentage !== undefined ? { maxHealthyPercentage: policy.MaxHealthyPercentage } : {}),
            },
          }
        : {}),
      ...(g.HealthCheckType ? { healthCheckType: g.HealthCheckType } : {}),
      replacementLog: parseReplacementLog(ledger),
    },
    members,
    activitiesInProgress: (activities.Activities ?? [])
      .filter((a) => a.StatusCode && !DONE_ACTIVITY.has(a.StatusCode))
      .map((a) => ({ id: a.ActivityId ?? '', status: a.StatusCode ?? '', description: a.Description ?? '' })),
    instanceRefreshes: (refreshes.InstanceRefreshes ?? [])
      .filter((r) => r.Status && ACTIVE_REFRESH.has(r.Status))
      .map((r) => ({ id: r.InstanceRefreshId ?? '', status: r.Status ?? '' })),
    foreignTargets: [...targetById.keys()].filter((id) => !ids.includes(id)).length,
    apiCalls: ctx.requests.since(before),
  };
  logger.debug('observed fleet', { fleet });
  return fleet;
}

/**
 * DescribeInstanceStatus for ≤ 100 ids (IncludeAllInstances: stopped/pending ones too). EC2 answers
 * InvalidInstanceID.NotFound for the whole call when it does not know one id yet (eventual consistency right
 * after a launch): retry once without the ids the message names.
 */
async function describeStatus(ec2: EC2Client, ids: readonly string[], signal: AbortSignal): Promise<InstanceStatus[]> {
  let wanted = [...ids];
  for (let attempt = 0; attempt < 2 && wanted.length > 0; attempt += 1) {
    try {
      const res = await ec2.send(new DescribeInstanceStatusCommand({ InstanceIds: wanted, IncludeAllInstances: true }), {
        abortSignal: signal,
      });
      return res.InstanceStatuses ?? [];
    } catch (error) {
      if (errorName(error) !== 'InvalidInstanceID.NotFound' || attempt > 0) throw error;
      const missing = new Set((error as Error).message.match(/i-[0-9a-f]+/g) ?? []);
      if (missing.size === 0) throw error;
      wanted = wanted.filter((id) => !missing.has(id));
    }
  }
  return [];
}
