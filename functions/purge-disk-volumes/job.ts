import * as z from 'zod/mini';
import { autoScalingClient, cloudTrailClient, cloudWatchClient, ec2Client, ssmClient } from '../../shared/aws.ts';
import type { JobContext, JobDefinition, Outcome, Outcomes, Summary } from '../../shared/job.ts';
import type { JobName } from '../../shared/job-names.ts';
import { apply } from './apply.ts';
import type { LoadedConfig } from './config.ts';
import {
  estimateMonthlyUsd,
  MARK_TAG,
  type DeleteVolume,
  type Held,
  type PurgeAction,
  type PurgePlan,
  type Scope,
  type State,
} from './model.ts';
import { observe } from './observe.ts';
import { plan, scopeOf } from './plan.ts';

/**
 * purge-disk-volumes: orphaned EBS volumes of the fleet (mark → re-check → delete, optional snapshot) and full
 * instance disks (prune SSM document on instances over DISK_USED_PERCENT_THRESHOLD).
 */

const volumeId = z
  .string({ error: 'expected a volume id like vol-0123456789abcdef0' })
  .check(z.regex(/^vol-[0-9a-f]{8}([0-9a-f]{9})?$/, { error: 'expected a volume id like vol-0123456789abcdef0' }));
const instanceId = z
  .string({ error: 'expected an instance id like i-0123456789abcdef0' })
  .check(z.regex(/^i-[0-9a-f]{8}([0-9a-f]{9})?$/, { error: 'expected an instance id like i-0123456789abcdef0' }));

export const options = {
  volumeIds: z.optional(
    z
      .array(volumeId, { error: 'expected a list of volume ids' })
      .check(z.minLength(1, { error: 'expected at least one volume id' }), z.maxLength(200, { error: 'expected at most 200 volume ids' })),
  ),
  instanceIds: z.optional(
    z
      .array(instanceId, { error: 'expected a list of instance ids' })
      .check(
        z.minLength(1, { error: 'expected at least one instance id' }),
        z.maxLength(50, { error: 'expected at most 50 instance ids' }),
      ),
  ),
  skipVolumes: z.optional(z.boolean({ error: 'expected true or false' })),
  skipPrune: z.optional(z.boolean({ error: 'expected true or false' })),
};

const clients = () => ({
  ec2: ec2Client(),
  autoScaling: autoScalingClient(),
  cloudWatch: cloudWatchClient(),
  cloudTrail: cloudTrailClient(),
  ssm: ssmClient(),
});

type Types = {
  config: LoadedConfig;
  options: typeof options;
  scope: Scope;
  state: State;
  action: PurgeAction;
  plan: PurgePlan;
  clients: ReturnType<typeof clients>;
};

export const job: JobDefinition<Types> = {
  name: 'purge-disk-volumes' satisfies JobName,
  accepts: ['schedule', 'alarm', 'manual'],
  options,
  clients,
  scope: (trigger) => scopeOf(trigger),
  observe,
  plan: (state, ctx) => plan(state, ctx.config.policy, ctx.now),
  apply,
  summarize,
};

const sum = (ns: readonly number[]): number => ns.reduce((a, b) => a + b, 0);
const money = (n: number): number => Math.round(n * 100) / 100;

export function summarize(state: State, plan: PurgePlan, outcomes: Outcomes, ctx: Pick<JobContext<Types>, 'dryRun' | 'requests'>): Summary {
  const dry = ctx.dryRun;
  const outcomeOf = (a: PurgeAction): Outcome | undefined => outcomes[plan.actions.indexOf(a)];
  const applied = (a: PurgeAction): boolean => outcomeOf(a)?.status === 'applied';
  const detailOf = (a: PurgeAction): Record<string, unknown> => {
    const o = outcomeOf(a);
    return o && o.status !== 'skipped' ? (o.detail ?? {}) : {};
  };

  const vols = state.volumes ?? [];
  const held = (why: Held): DeleteVolume[] => plan.skipped.filter((a): a is DeleteVolume => a.type === 'delete-volume' && a.held === why);
  const marks = plan.actions.filter((a) => a.type === 'mark-volume');
  const unmarks = plan.actions.filter((a) => a.type === 'unmark-volume');
  const deletes = plan.actions.filter((a) => a.type === 'delete-volume');
  const prunes = plan.actions.filter((a) => a.type === 'prune-instance');
  const doneDeletes = deletes.filter(applied);
  const gib = (as: readonly { sizeGiB: number }[]): number => sum(as.map((a) => a.sizeGiB));
  const usd = (as: readonly { sizeGiB: number; volumeType: string }[]): number =>
    money(sum(as.map((a) => estimateMonthlyUsd(a.sizeGiB, a.volumeType))));

  const instances = state.instances ?? [];
  const inService = instances.filter((i) => i.lifecycleState === 'InService');
  const commands = prunes.map((a) => {
    const o = outcomeOf(a);
    return {
      instanceId: a.target,
      status: o?.status ?? (dry ? 'planned' : 'not started'),
      ...detailOf(a),
      ...(o?.status === 'failed' ? { error: o.error } : {}),
      ...(o?.status === 'skipped' ? { reason: o.reason } : {}),
    };
  });
  const freedBytes = sum(
    prunes.map((a) => {
      const n = detailOf(a).freedBytes;
      return typeof n === 'number' ? n : 0;
    }),
  );

  const observed: Record<string, unknown> = {};
  if (state.volumes) {
    Object.assign(observed, {
      volumes: vols.length,
      volumesAvailable: vols.filter((v) => v.state === 'available').length,
      volumesInUse: vols.filter((v) => v.state === 'in-use').length,
      volumesAlreadyMarked: vols.filter((v) => MARK_TAG in v.tags).length,
    });
  }
  if (state.instances)
    Object.assign(observed, {
      instances: instances.length,
      instancesInService: inService.length,
      diskReadings: Object.keys(state.readings).length,
    });

  const details: Record<string, unknown> = {};
  if (state.volumes) {
    details.volumes = {
      marked: { count: (dry ? marks : marks.filter(applied)).length, sizeGiB: gib(dry ? marks : marks.filter(applied)) },
      unmarked: (dry ? unmarks : unmarks.filter(applied)).length,
      waiting: held('grace').length,
      // Held for CloudTrail's delivery lag (CLOUDTRAIL_LAG): re-checked by the next run.
      heldForLag: held('lag').length,
      ...(dry
        ? { deletePlanned: { count: deletes.length, sizeGiB: gib(deletes), estMonthlySavingsUsd: usd(deletes) } }
        : { deleted: { count: doneDeletes.length, sizeGiB: gib(doneDeletes), estMonthlySavingsUsd: usd(doneDeletes) } }),
      // The CloudTrail lookups behind the deletes: how many candidates, how many were used since their mark.
      history: {
        volumes: Object.keys(state.usage ?? {}).length,
        usedSinceMark: marks.filter((a) => a.type === 'mark-volume' && a.remark === 'used').length,
        requests: ctx.requests.of('cloudtrail').total,
      },
      snapshots: deletes.flatMap((a) => {
        const snapshotId = detailOf(a).snapshotId;
        return typeof snapshotId === 'string' ? [{ volumeId: a.target, snapshotId }] : [];
      }),
      costNote:
        'estimated from list storage prices per GB-month (gp3 $0.08, gp2 $0.10, io1/io2 $0.125, st1 $0.045, sc1 $0.015); ' +
        'IOPS/throughput not included',
    };
  }
  if (state.instances) {
    details.disks = {
      thresholdPercent: state.thresholdPercent,
      overThreshold: Object.entries(state.readings)
        .filter(([, r]) => state.thresholdPercent !== undefined && r.usedPercent >= state.thresholdPercent)
        .map(([id]) => id),
      readings: Object.fromEntries(Object.entries(state.readings).map(([id, r]) => [id, Math.round(r.usedPercent * 10) / 10])),
      pruneTargets: prunes.map((a) => a.target),
      commands,
      freedBytes,
    };
  }
  return {
    observed,
    ...(Object.keys(details).length > 0 ? { details } : {}),
    metrics: {
      VolumesMarked: dry ? 0 : marks.filter(applied).length,
      VolumesDeleted: dry ? 0 : doneDeletes.length,
      InstancesPruned: dry ? 0 : prunes.filter(applied).length,
    },
  };
}
