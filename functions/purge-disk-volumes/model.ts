import type { Action, Plan } from '../../shared/job.ts';

/**
 * purge-disk-volumes' domain: what observe.ts maps the AWS responses to, the actions plan.ts decides on, and the
 * constants both share. No SDK type appears here. The job's tags live in shared/fleet-tags.ts.
 */

export { KEEP_TAG, MARK_TAG, SOURCE_VOLUME_TAG } from '../../shared/fleet-tags.ts';

/** How far back a disk reading may be to count (the agent publishes every 60 s). */
export const DISK_READING_WINDOW_MS = 15 * 60_000;

const DAY_MS = 86_400_000;
/**
 * A mark is verified against CloudTrail's event history, which keeps 90 days of management events. A mark older
 * than this cannot be verified back to its start (the lookup reaches a minute before it) and is written again.
 */
export const MARK_MAX_AGE_MS = 89 * DAY_MS;
/**
 * An attach or detach this long before the mark counts as use after it: CloudTrail's event times have whole
 * seconds and come from AWS's clocks, the mark from the Lambda's.
 */
export const MARK_EVENT_SLACK_MS = 60_000;
/**
 * VOLUME_GRACE's floor: a grace shorter than CloudTrail's delivery lag (5–15 minutes, CLOUDTRAIL_LAG at most
 * 1h) would decide on a history that cannot hold the attaches since the mark yet.
 */
export const VOLUME_GRACE_FLOOR = '1h';
/**
 * How far before CLOUDTRAIL_LAG an AWS/EBS datapoint still holds a delete: EBS publishes a volume's metrics per 1 or
 * 5 minutes (Nitro or not) and stamps a datapoint with the start of its period.
 */
export const EBS_METRIC_SLACK_MS = 5 * 60_000;
/** The AWS/EBS metric whose datapoints mean "attached then": EBS sends it every period while attached, idle or not. */
export const EBS_ATTACHED_METRIC = 'VolumeIdleTime';
/** The CloudTrail events that mean a volume was in use: the only ways to attach an existing volume, or detach it. */
export const USAGE_EVENTS: readonly string[] = ['AttachVolume', 'DetachVolume'];
/** Where manual instance ids come from; names from a payload must be members (an alarm may outlive its instance). */
export const PAYLOAD_SOURCE = 'the manual payload';

/**
 * Estimated on-demand EBS storage price in USD per GB-month (us-east-1 list prices; provisioned IOPS and
 * throughput are not included). An estimate for the report, not a bill.
 */
export const PRICE_PER_GB_MONTH_USD: Readonly<Record<string, number>> = {
  gp3: 0.08,
  gp2: 0.1,
  io1: 0.125,
  io2: 0.125,
  st1: 0.045,
  sc1: 0.015,
  standard: 0.05,
};

export const estimateMonthlyUsd = (sizeGiB: number, volumeType: string): number =>
  Math.round(sizeGiB * (PRICE_PER_GB_MONTH_USD[volumeType] ?? PRICE_PER_GB_MONTH_USD.gp3!) * 100) / 100;

export interface Volume {
  readonly id: string;
  /** EC2 volume state: creating | available | in-use | deleting | deleted | error. */
  readonly state: string;
  readonly sizeGiB: number;
  readonly volumeType: string;
  /** Instance ids of the volume's attachments (any attachment state). */
  readonly attachedTo: readonly string[];
  readonly tags: Readonly<Record<string, string>>;
}

export interface FleetInstance {
  readonly id: string;
  /** Auto Scaling lifecycle state: InService, Pending, Terminating, Standby, … */
  readonly lifecycleState: string;
}

export interface DiskReading {
  readonly usedPercent: number;
  readonly at: string;
}

/** What this run looks at, from the trigger (and the manual payload). */
export interface Scope {
  readonly volumes: boolean;
  /** Manual `volumeIds`: only these volumes are considered. */
  readonly volumeIds?: readonly string[];
  readonly prune: boolean;
  /** Instances to prune regardless of their reading (manual `instanceIds` or the alarm's InstanceId). */
  readonly named?: { readonly ids: readonly string[]; readonly source: string };
}

/** One AttachVolume / DetachVolume on a volume, as CloudTrail recorded it. */
export interface VolumeEvent {
  readonly name: string;
  readonly at: string;
  readonly instanceId?: string;
}

/**
 * A delete candidate's attach history (CloudTrail LookupEvents by the volume id) from `since` to `until`, or why
 * it could not be read.
 */
export type VolumeUsage =
  | { readonly kind: 'history'; readonly since: string; readonly until: string; readonly events: readonly VolumeEvent[] }
  | { readonly kind: 'unreadable'; readonly error: string };

export interface State {
  readonly scope: Scope;
  /** Undefined when the run does not look at volumes. */
  readonly volumes?: readonly Volume[];
  /** The attach history of this run's delete candidates (see `deleteCandidates`), by volume id. */
  readonly usage?: Readonly<Record<string, VolumeUsage>>;
  /**
   * The newest AWS/EBS datapoint (EBS_ATTACHED_METRIC) of each delete candidate whose history was read, from
   * CLOUDTRAIL_LAG + EBS_METRIC_SLACK_MS before now; a volume without one has no entry. Undefined when not read.
   */
  readonly attachedMetrics?: Readonly<Record<string, string>>;
  /** The Auto Scaling group's instances; undefined when the run does not prune. */
  readonly instances?: readonly FleetInstance[];
  /** Latest `disk_used_percent` per instance id (only instances with a datapoint in the window). */
  readonly readings: Readonly<Record<string, DiskReading>>;
  /** DISK_USED_PERCENT_THRESHOLD at the time of the run (for the report). */
  readonly thresholdPercent?: number;
}

export interface Policy {
  readonly fleetTag: { readonly key: string; readonly value: string };
  readonly volumeGraceMs: number;
  /**
   * CLOUDTRAIL_LAG: how late CloudTrail may deliver an event. The last this-long of a history is not trusted: a
   * candidate with an AWS/EBS datapoint (EBS publishes them only while attached) in it is held for the next run.
   */
  readonly cloudTrailLagMs: number;
  readonly snapshotBeforeDelete: boolean;
  readonly maxVolumeDeletesPerRun: number;
  readonly asgName: string;
  readonly diskUsedPercentThreshold: number;
  readonly pruneMaxLogMb: number;
  readonly maxPruneInstancesPerRun: number;
}

interface VolumeFacts {
  readonly sizeGiB: number;
  readonly volumeType: string;
}
/** Why a mark is written again: its value is unreadable, too old to verify, or the volume was used since. */
export type Remark = 'unreadable' | 'expired' | 'used';
export interface MarkVolume extends Action, VolumeFacts {
  readonly type: 'mark-volume';
  readonly orphanedAt: string;
  /** The mark this one replaces, and why (structured for the summary; the reason says it in words). */
  readonly previousMark?: string;
  readonly remark?: Remark;
}
/**
 * Why a volume is not deleted this run (skipped entries only; the summary counts these, never the reason text):
 * `grace` marked but not for VOLUME_GRACE yet; `limit` over the per-run limit; `unread` its history or its AWS/EBS
 * metrics were not read this run; `partial` the history does not reach back to the mark; `lag` attached within
 * CLOUDTRAIL_LAG (an AWS/EBS datapoint), where CloudTrail may not have delivered the events yet; `untouched` never
 * touched (not the fleet's, kept, not available, not found).
 */
export type Held = 'grace' | 'limit' | 'unread' | 'partial' | 'lag' | 'untouched';
export interface UnmarkVolume extends Action, VolumeFacts {
  readonly type: 'unmark-volume';
  readonly markedAt: string;
}
export interface DeleteVolume extends Action, VolumeFacts {
  readonly type: 'delete-volume';
  /** The mark the plan saw: apply deletes only if the volume still carries exactly this mark. */
  readonly markedAt: string;
  readonly snapshot: boolean;
  readonly estMonthlyUsd: number;
  readonly held?: Held;
}
export interface PruneInstance extends Action {
  readonly type: 'prune-instance';
  readonly usedPercent?: number;
  readonly maxLogMb: number;
}
export type PurgeAction = MarkVolume | UnmarkVolume | DeleteVolume | PruneInstance;
export type PurgePlan = Plan<PurgeAction>;

export interface ManualOptions {
  volumeIds?: string[] | undefined;
  instanceIds?: string[] | undefined;
  skipVolumes?: boolean | undefined;
  skipPrune?: boolean | undefined;
}
