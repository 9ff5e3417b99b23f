import { KEEP_TAG, MARK_TAG } from '../../shared/fleet-tags.ts';
import { formatDuration } from '../../shared/duration.ts';
import { ValidationError } from '../../shared/errors.ts';
import type { Trigger } from '../../shared/triggers.ts';
import {
  DISK_READING_WINDOW_MS,
  estimateMonthlyUsd,
  type DeleteVolume,
  type ManualOptions,
  type DiskReading,
  type FleetInstance,
  type Policy,
  type PruneInstance,
  type PurgeAction,
  type PurgePlan,
  type Scope,
  type State,
  type Volume,
} from './model.ts';

/** The domain types moved to model.ts; re-exported for the callers that import them from here. */
export * from './model.ts';

/**
 * Pure decisions of purge-disk-volumes: (state, policy, now) → Plan. No SDK, no env, no clock.
 *
 * Volumes are cleaned up in two phases (Cloud Custodian / Swabbie style, since EC2 does not record when a volume
 * was detached): the first run that sees a fleet volume `available` tags it with MARK_TAG = the time it was found
 * orphaned; a later run deletes it only if it is still `available`, still carries the fleet tag and the same mark,
 * and the mark is older than the grace period. A marked volume that is attached again is unmarked.
 */

/**
 * What a trigger asks for. Schedule: volumes and disks over the threshold. Disk alarm: disks only (the alarm's
 * InstanceId, when it names one, is pruned; otherwise every instance over the threshold). Manual: per payload.
 */
export function scopeOf(trigger: Trigger<ManualOptions>): Scope {
  switch (trigger.kind) {
    case 'alarm': {
      const instanceId = trigger.dimensions.InstanceId;
      return { volumes: false, prune: true, ...(instanceId ? { named: { ids: [instanceId], source: `alarm ${trigger.alarmName}` } } : {}) };
    }
    case 'manual': {
      const o = trigger.options;
      if (o.skipVolumes && o.volumeIds)
        throw new ValidationError('invalid manual payload: volumeIds: expected no volumeIds together with skipVolumes=true');
      if (o.skipPrune && o.instanceIds)
        throw new ValidationError('invalid manual payload: instanceIds: expected no instanceIds together with skipPrune=true');
      return {
        volumes: o.skipVolumes !== true,
        ...(o.volumeIds ? { volumeIds: [...new Set(o.volumeIds)] } : {}),
        prune: o.skipPrune !== true,
        ...(o.instanceIds ? { named: { ids: [...new Set(o.instanceIds)], source: 'the manual payload' } } : {}),
      };
    }
    default:
      return { volumes: true, prune: true };
  }
}

// ---------- plan ----------

const isKept = (tags: Readonly<Record<string, string>>): boolean => KEEP_TAG in tags && tags[KEEP_TAG]?.trim().toLowerCase() !== 'false';

export function planPurge(state: State, policy: Policy, now: Date): PurgePlan {
  const volumes = state.volumes ? planVolumes(state.volumes, state.scope, policy, now) : { actions: [], skipped: [] };
  const disks = state.instances ? planPrunes(state.instances, state.readings, state.scope, policy) : { actions: [], skipped: [] };
  return { actions: [...volumes.actions, ...disks.actions], skipped: [...volumes.skipped, ...disks.skipped] };
}

export function planVolumes(volumes: readonly Volume[], scope: Pick<Scope, 'volumeIds'>, policy: Policy, now: Date): PurgePlan {
  const actions: PurgeAction[] = [];
  const skipped: PurgeAction[] = [];
  const deletable: { volume: Volume; markedAt: string; markedMs: number }[] = [];
  const grace = formatDuration(policy.volumeGraceMs);

  const skip = (v: Pick<Volume, 'id' | 'sizeGiB' | 'volumeType'>, reason: string): void => {
    skipped.push(deleteAction(v, '', false, reason));
  };

  for (const v of volumes) {
    if (v.tags[policy.fleetTag.key] !== policy.fleetTag.value) {
      skip(v, `no fleet tag ${policy.fleetTag.key}=${policy.fleetTag.value}: never touched`);
      continue;
    }
    if (isKept(v.tags)) {
      skip(v, `tagged ${KEEP_TAG}=${v.tags[KEEP_TAG]}: never touched`);
      continue;
    }
    const mark = v.tags[MARK_TAG];
    const attached = v.state === 'in-use' || v.attachedTo.length > 0;
    if (attached) {
      if (mark !== undefined) {
        actions.push({
          type: 'unmark-volume',
          target: v.id,
          reason: `attached again (to ${v.attachedTo.join(', ') || 'an instance'}) since marked orphaned at ${mark}`,
          markedAt: mark,
          sizeGiB: v.sizeGiB,
          volumeType: v.volumeType,
        });
      }
      continue; // an attached fleet volume without a mark is the normal case: nothing to say
    }
    if (v.state !== 'available') {
      skip(v, `state ${v.state}: only available volumes are cleaned up`);
      continue;
    }
    const markedMs = mark === undefined ? Number.NaN : Date.parse(mark);
    if (mark === undefined || Number.isNaN(markedMs)) {
      actions.push({
        type: 'mark-volume',
        target: v.id,
        reason:
          mark === undefined ? 'available (attached to nothing): marked orphaned' : `unreadable mark ${JSON.stringify(mark)}: marked again`,
        orphanedAt: now.toISOString(),
        sizeGiB: v.sizeGiB,
        volumeType: v.volumeType,
      });
      continue;
    }
    const age = now.getTime() - markedMs;
    if (age < policy.volumeGraceMs) {
      const after = new Date(markedMs + policy.volumeGraceMs).toISOString();
      skip(v, `marked orphaned ${formatDuration(Math.max(0, age))} ago, grace ${grace}: deletable after ${after}`);
      continue;
    }
    deletable.push({ volume: v, markedAt: mark, markedMs });
  }

  // Oldest marks first, so a backlog drains in order across runs.
  deletable.sort((a, b) => a.markedMs - b.markedMs || a.volume.id.localeCompare(b.volume.id));
  deletable.forEach(({ volume, markedAt, markedMs }, i) => {
    const reason = `available and marked orphaned ${formatDuration(now.getTime() - markedMs)} ago (grace ${grace})`;
    if (i < policy.maxVolumeDeletesPerRun) actions.push(deleteAction(volume, markedAt, policy.snapshotBeforeDelete, reason));
    else
      skipped.push(
        deleteAction(
          volume,
          markedAt,
          policy.snapshotBeforeDelete,
          `over the limit of ${policy.maxVolumeDeletesPerRun} deletes per run: next run`,
        ),
      );
  });

  for (const id of scope.volumeIds ?? []) {
    if (!volumes.some((v) => v.id === id)) skip({ id, sizeGiB: 0, volumeType: 'unknown' }, 'named in the payload but not found');
  }
  return { actions, skipped };
}

function deleteAction(v: Pick<Volume, 'id' | 'sizeGiB' | 'volumeType'>, markedAt: string, snapshot: boolean, reason: string): DeleteVolume {
  return {
    type: 'delete-volume',
    target: v.id,
    reason,
    markedAt,
    snapshot,
    sizeGiB: v.sizeGiB,
    volumeType: v.volumeType,
    estMonthlyUsd: estimateMonthlyUsd(v.sizeGiB, v.volumeType),
  };
}

export function planPrunes(
  instances: readonly FleetInstance[],
  readings: Readonly<Record<string, DiskReading>>,
  scope: Pick<Scope, 'named'>,
  policy: Policy,
): PurgePlan {
  const skipped: PruneInstance[] = [];
  const candidates: PruneInstance[] = [];
  const prune = (id: string, reason: string): PruneInstance => {
    const reading = readings[id];
    return {
      type: 'prune-instance',
      target: id,
      reason,
      ...(reading ? { usedPercent: reading.usedPercent } : {}),
      maxLogMb: policy.pruneMaxLogMb,
    };
  };
  const byId = new Map(instances.map((i) => [i.id, i]));

  if (scope.named) {
    for (const id of scope.named.ids) {
      const instance = byId.get(id);
      if (!instance) skipped.push(prune(id, `named by ${scope.named.source} but not an instance of ${policy.asgName}: never pruned`));
      else if (instance.lifecycleState !== 'InService')
        skipped.push(prune(id, `named by ${scope.named.source} but ${instance.lifecycleState}, not InService`));
      else candidates.push(prune(id, `named by ${scope.named.source}${describeReading(readings[id])}`));
    }
  } else {
    const over: PruneInstance[] = [];
    for (const instance of instances) {
      if (instance.lifecycleState !== 'InService') continue;
      const reading = readings[instance.id];
      if (!reading) {
        skipped.push(prune(instance.id, `no disk_used_percent datapoint in the last ${formatDuration(DISK_READING_WINDOW_MS)}`));
      } else if (reading.usedPercent >= policy.diskUsedPercentThreshold) {
        over.push(prune(instance.id, `disk ${round1(reading.usedPercent)}% used ≥ threshold ${policy.diskUsedPercentThreshold}%`));
      }
    }
    // Fullest first, so the per-run limit spends its commands where they matter most.
    over.sort((a, b) => (b.usedPercent ?? 0) - (a.usedPercent ?? 0) || a.target.localeCompare(b.target));
    candidates.push(...over);
  }

  const actions = candidates.slice(0, policy.maxPruneInstancesPerRun);
  for (const extra of candidates.slice(policy.maxPruneInstancesPerRun)) {
    skipped.push({ ...extra, reason: `over the limit of ${policy.maxPruneInstancesPerRun} prune commands per run: next run` });
  }
  return { actions, skipped };
}

const round1 = (n: number): number => Math.round(n * 10) / 10;
const describeReading = (r: DiskReading | undefined): string => (r ? ` (disk ${round1(r.usedPercent)}% used)` : '');
