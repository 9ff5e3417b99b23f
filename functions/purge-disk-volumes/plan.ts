import { KEEP_TAG, MARK_TAG } from '../../shared/fleet-tags.ts';
import { formatDuration } from '../../shared/duration.ts';
import { ValidationError } from '../../shared/errors.ts';
import type { Refusal } from '../../shared/report.ts';
import type { Trigger } from '../../shared/triggers.ts';
import {
  DISK_READING_WINDOW_MS,
  EBS_METRIC_SLACK_MS,
  estimateMonthlyUsd,
  MARK_EVENT_SLACK_MS,
  MARK_MAX_AGE_MS,
  PAYLOAD_SOURCE,
  USAGE_EVENTS,
  type DeleteVolume,
  type ManualOptions,
  type DiskReading,
  type FleetInstance,
  type Held,
  type MarkVolume,
  type Policy,
  type PruneInstance,
  type PurgeAction,
  type PurgePlan,
  type Remark,
  type Scope,
  type State,
  type Volume,
  type VolumeUsage,
} from './model.ts';

/**
 * Pure decisions of purge-disk-volumes: (state, policy, now) → Plan. No SDK, no env, no clock.
 *
 * Volumes are cleaned up in two phases (Cloud Custodian / Swabbie style, since EC2 does not record when a volume
 * was detached): the first run that sees a fleet volume `available` tags it with MARK_TAG = the time it was found
 * orphaned. The mark means "unattached since then": a later run deletes the volume only if it is still
 * `available`, still carries the fleet tag and the same mark, the mark is older than the grace period, and the
 * volume's CloudTrail history since the mark holds no AttachVolume or DetachVolume. A volume used since its mark
 * is marked again (the grace starts over); a marked volume that is attached now is unmarked.
 */

/**
 * What a trigger asks for. Schedule: volumes and disks over the threshold. Disk alarm: disks only (the alarm's
 * InstanceId, when it names one, is pruned; otherwise every instance over the threshold). Manual: per payload;
 * a payload that names instances or volumes acts on what it names only (both kinds when it names both).
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
        volumes: o.skipVolumes !== true && (o.instanceIds === undefined || o.volumeIds !== undefined),
        ...(o.volumeIds ? { volumeIds: [...new Set(o.volumeIds)] } : {}),
        prune: o.skipPrune !== true && (o.volumeIds === undefined || o.instanceIds !== undefined),
        ...(o.instanceIds ? { named: { ids: [...new Set(o.instanceIds)], source: PAYLOAD_SOURCE } } : {}),
      };
    }
    default:
      return { volumes: true, prune: true };
  }
}

const STRICT_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * The mark's time, only in the exact form the job writes (`Date#toISOString`: `2026-11-23T03:00:00.000Z`).
 * `Date.parse` reads `"1"` or `"Dec 25"` as a date in 2001, which would make a hand-written tag look ancient.
 */
export function parseMark(value: string | undefined): number | undefined {
  if (value === undefined || !STRICT_ISO.test(value)) return undefined;
  const ms = Date.parse(value);
  // The round trip rejects what the pattern lets through but the calendar does not (Feb 30, 24:00).
  return Number.isFinite(ms) && new Date(ms).toISOString() === value ? ms : undefined;
}

const isKept = (tags: Readonly<Record<string, string>>): boolean => KEEP_TAG in tags && tags[KEEP_TAG]?.trim().toLowerCase() !== 'false';

/** What the mark rules say about one volume, before its history is consulted. */
type Verdict =
  | { readonly kind: 'skip'; readonly held: Held; readonly reason: string }
  | { readonly kind: 'quiet' }
  | { readonly kind: 'unmark'; readonly mark: string }
  | { readonly kind: 'mark'; readonly reason: string; readonly previousMark?: string; readonly remark?: Remark }
  | { readonly kind: 'candidate'; readonly mark: string; readonly markedMs: number };

function judge(v: Volume, policy: Policy, now: Date): Verdict {
  if (v.tags[policy.fleetTag.key] !== policy.fleetTag.value)
    return { kind: 'skip', held: 'untouched', reason: `no fleet tag ${policy.fleetTag.key}=${policy.fleetTag.value}: never touched` };
  if (isKept(v.tags)) return { kind: 'skip', held: 'untouched', reason: `tagged ${KEEP_TAG}=${v.tags[KEEP_TAG]}: never touched` };
  const mark = v.tags[MARK_TAG];
  if (v.state === 'in-use' || v.attachedTo.length > 0) return mark === undefined ? { kind: 'quiet' } : { kind: 'unmark', mark };
  if (v.state !== 'available')
    return { kind: 'skip', held: 'untouched', reason: `state ${v.state}: only available volumes are cleaned up` };
  if (mark === undefined) return { kind: 'mark', reason: 'available (attached to nothing): marked orphaned' };
  const markedMs = parseMark(mark);
  if (markedMs === undefined)
    return { kind: 'mark', reason: `unreadable mark ${JSON.stringify(mark)}: marked again`, previousMark: mark, remark: 'unreadable' };
  const age = now.getTime() - markedMs;
  if (age < policy.volumeGraceMs) {
    const after = new Date(markedMs + policy.volumeGraceMs).toISOString();
    const grace = formatDuration(policy.volumeGraceMs);
    return {
      kind: 'skip',
      held: 'grace',
      reason: `marked orphaned ${formatDuration(Math.max(0, age))} ago, grace ${grace}: deletable after ${after}`,
    };
  }
  if (age > MARK_MAX_AGE_MS) {
    const reason = `mark ${mark} is older than CloudTrail's event history can verify (${formatDuration(MARK_MAX_AGE_MS)}): marked again`;
    return { kind: 'mark', reason, previousMark: mark, remark: 'expired' };
  }
  return { kind: 'candidate', mark, markedMs };
}

/**
 * The volumes a delete is considered for in this run, oldest marks first (so a backlog drains in order), at
 * most MAX_VOLUME_DELETES_PER_RUN of them: observe reads exactly these volumes' CloudTrail history, and plan
 * decides on exactly these, so the per-run limit also bounds the history lookups.
 */
export function deleteCandidates(
  volumes: readonly Volume[],
  policy: Policy,
  now: Date,
): { volume: Volume; mark: string; markedMs: number }[] {
  return allCandidates(volumes, policy, now).slice(0, policy.maxVolumeDeletesPerRun);
}

function allCandidates(volumes: readonly Volume[], policy: Policy, now: Date) {
  return volumes
    .flatMap((volume) => {
      const verdict = judge(volume, policy, now);
      return verdict.kind === 'candidate' ? [{ volume, mark: verdict.mark, markedMs: verdict.markedMs }] : [];
    })
    .sort((a, b) => a.markedMs - b.markedMs || a.volume.id.localeCompare(b.volume.id));
}

export function plan(state: State, policy: Policy, now: Date): PurgePlan {
  const volumes = state.volumes
    ? planVolumes(state.volumes, state.scope, policy, now, state.usage ?? {}, state.attachedMetrics)
    : { actions: [], skipped: [] };
  const disks = state.instances ? planPrunes(state.instances, state.readings, state.scope, policy) : { actions: [], skipped: [] };
  const refusals = volumes.refusals ?? [];
  return {
    actions: [...volumes.actions, ...disks.actions],
    skipped: [...volumes.skipped, ...disks.skipped],
    ...(refusals.length > 0 ? { refusals } : {}),
  };
}

export function planVolumes(
  volumes: readonly Volume[],
  scope: Pick<Scope, 'volumeIds'>,
  policy: Policy,
  now: Date,
  usage: Readonly<Record<string, VolumeUsage>>,
  attachedMetrics: State['attachedMetrics'],
): PurgePlan {
  const actions: PurgeAction[] = [];
  const skipped: PurgeAction[] = [];
  const refusals: Refusal[] = [];
  const skip = (v: Pick<Volume, 'id' | 'sizeGiB' | 'volumeType'>, held: Held, reason: string): void => {
    skipped.push({ ...deleteAction(v, '', false, reason), held });
  };

  for (const v of volumes) {
    const verdict = judge(v, policy, now);
    if (verdict.kind === 'skip') skip(v, verdict.held, verdict.reason);
    else if (verdict.kind === 'mark') actions.push(markAction(v, verdict.reason, now, verdict.previousMark, verdict.remark));
    else if (verdict.kind === 'unmark') {
      actions.push({
        type: 'unmark-volume',
        target: v.id,
        reason: `attached again (to ${v.attachedTo.join(', ') || 'an instance'}) since marked orphaned at ${verdict.mark}`,
        markedAt: verdict.mark,
        sizeGiB: v.sizeGiB,
        volumeType: v.volumeType,
      });
    }
    // 'quiet' (an attached fleet volume without a mark) is the normal case: nothing to say. Candidates follow.
  }

  const grace = formatDuration(policy.volumeGraceMs);
  const deletes: DeleteVolume[] = [];
  allCandidates(volumes, policy, now).forEach(({ volume, mark, markedMs }, i) => {
    if (i >= policy.maxVolumeDeletesPerRun) {
      const reason = `over the limit of ${policy.maxVolumeDeletesPerRun} deletes per run: next run`;
      skipped.push({ ...deleteAction(volume, mark, policy.snapshotBeforeDelete, reason), held: 'limit' });
      return;
    }
    const history = usage[volume.id];
    const held = holdBack(mark, markedMs, history) ?? lagHold(attachedMetrics, volume.id, policy.cloudTrailLagMs, now);
    if (held?.kind === 'skip') skip(volume, held.held, held.reason);
    else if (held?.kind === 'refuse') refusals.push({ type: 'delete-volume', target: volume.id, reason: held.reason });
    else if (held?.kind === 'used') actions.push(markAction(volume, held.reason, now, mark, 'used'));
    else {
      const reason = `available and marked orphaned ${formatDuration(now.getTime() - markedMs)} ago (grace ${grace})`;
      deletes.push(deleteAction(volume, mark, policy.snapshotBeforeDelete, reason));
    }
  });
  actions.push(...deletes);

  for (const id of scope.volumeIds ?? []) {
    if (!volumes.some((v) => v.id === id))
      skip({ id, sizeGiB: 0, volumeType: 'unknown' }, 'untouched', 'named in the payload but not found');
  }
  return { actions, skipped, ...(refusals.length > 0 ? { refusals } : {}) };
}

type HoldBack =
  { readonly kind: 'skip'; readonly held: Held; readonly reason: string } | { readonly kind: 'refuse' | 'used'; readonly reason: string };

/**
 * Why a delete candidate must not be deleted now, from its CloudTrail history; undefined = it may go. The history
 * must reach back to a minute before the mark, and any attach or detach in it means the volume was used.
 */
function holdBack(mark: string, markedMs: number, history: VolumeUsage | undefined): HoldBack | undefined {
  if (!history)
    return { kind: 'skip', held: 'unread', reason: 'attach history since the mark not read in this run: not deleted (next run)' };
  if (history.kind === 'unreadable') {
    return { kind: 'refuse', reason: `attach history unreadable (CloudTrail LookupEvents: ${history.error}): not deleted` };
  }
  const from = markedMs - MARK_EVENT_SLACK_MS;
  if (!(Date.parse(history.since) <= from)) {
    const reason = `attach history read from ${history.since} only, not from the mark ${mark}: not deleted (next run)`;
    return { kind: 'skip', held: 'partial', reason };
  }
  const uses = history.events.filter((e) => USAGE_EVENTS.includes(e.name) && !(Date.parse(e.at) < from));
  if (uses.length > 0) {
    const listed = [...uses]
      .sort((a, b) => a.at.localeCompare(b.at))
      .map((e) => `${e.name} ${e.at}${e.instanceId ? ` (${e.instanceId})` : ''}`)
      .join(', ');
    return { kind: 'used', reason: `used since its mark ${mark}: ${listed}: marked again` };
  }
  return undefined;
}

/**
 * CloudTrail delivers events 5–15 minutes late, so a quiet lookup proves nothing about its last CLOUDTRAIL_LAG
 * (the mark is far older: the grace's floor is above the lag's ceiling). EBS publishes a volume's AWS/EBS
 * metrics only while it is attached, at once: a datapoint in the lag (plus one metric period) is an attach the
 * history may not show yet. Held, not re-marked: the next run reads the history again, delivered by then.
 */
function lagHold(
  attachedMetrics: Readonly<Record<string, string>> | undefined,
  volumeId: string,
  lagMs: number,
  now: Date,
): HoldBack | undefined {
  if (!attachedMetrics)
    return { kind: 'skip', held: 'unread', reason: 'AWS/EBS attachment metrics not read in this run: not deleted (next run)' };
  const seen = attachedMetrics[volumeId];
  if (seen === undefined || Date.parse(seen) < now.getTime() - lagMs - EBS_METRIC_SLACK_MS) return undefined;
  const reason =
    `AWS/EBS datapoint at ${seen}: attached within CLOUDTRAIL_LAG ${formatDuration(lagMs)}, CloudTrail may not have ` +
    'delivered the attach yet: not deleted (next run)';
  return { kind: 'skip', held: 'lag', reason };
}

function markAction(v: Volume, reason: string, now: Date, previousMark: string | undefined, remark?: Remark): MarkVolume {
  return {
    type: 'mark-volume',
    target: v.id,
    reason,
    orphanedAt: now.toISOString(),
    sizeGiB: v.sizeGiB,
    volumeType: v.volumeType,
    ...(previousMark !== undefined ? { previousMark } : {}),
    ...(remark !== undefined ? { remark } : {}),
  };
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
  if (scope.named?.source === PAYLOAD_SOURCE) checkMembers(scope.named.ids, instances, policy.asgName);

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

/**
 * Instance ids a person typed must all be members of the group: a typo or a stale id is bad input, an error that
 * names it, before anything (volumes included) is changed. An alarm's InstanceId may outlive its instance: skipped.
 */
function checkMembers(ids: readonly string[], instances: readonly FleetInstance[], asgName: string): void {
  const members = new Set(instances.map((i) => i.id));
  const strangers = ids.filter((id) => !members.has(id));
  if (strangers.length === 0) return;
  const verb = strangers.length === 1 ? 'is not a member' : 'are not members';
  throw new ValidationError(
    `invalid manual payload: instanceIds: ${strangers.join(', ')} ${verb} of Auto Scaling group ${asgName} ` +
      `(members: ${[...members].join(', ') || 'none'})`,
  );
}

const round1 = (n: number): number => Math.round(n * 10) / 10;
const describeReading = (r: DiskReading | undefined): string => (r ? ` (disk ${round1(r.usedPercent)}% used)` : '');
