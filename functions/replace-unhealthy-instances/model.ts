/**
 * Domain types of replace-unhealthy-instances: what observe.ts produces from the AWS APIs and plan.ts decides
 * on. No SDK type appears here.
 */

export { REPLACING_TAG, UNHEALTHY_SINCE_TAG } from '../../shared/fleet-tags.ts';

export function replacingTagValue(at: string, desiredBefore: number): string {
  return `${at} desired-before=${desiredBefore}`;
}

/** Parse a REPLACING_TAG value; `desiredBefore` is absent when the value does not record it (older or hand-written tag). */
export function parseReplacingTag(value: string): { since: string; desiredBefore?: number } {
  const [since = '', ...rest] = value.trim().split(/\s+/);
  const recorded = /^desired-before=(\d{1,6})$/.exec(rest.join(' '));
  return { since, ...(recorded ? { desiredBefore: Number(recorded[1]) } : {}) };
}

/** An EC2 instance id: `i-` and 8 or 17 lower-case hex digits. */
export const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

export interface TargetHealth {
  /** initial | healthy | unhealthy | unhealthy.draining | unused | draining | unavailable */
  readonly state: string;
  readonly reason?: string;
  readonly description?: string;
}

export interface Member {
  readonly id: string;
  /** The group's lifecycle state: InService, Pending, Pending:Wait, Terminating, Standby, Detaching, … */
  readonly lifecycle: string;
  /** The group's own health view (EC2 checks only in this stack): Healthy | Unhealthy. */
  readonly asgHealth: string;
  /** EC2 launch time (ISO); undefined when EC2 did not return the instance (treated as brand new). */
  readonly launchTime?: string;
  /** EC2 status checks: ok | impaired | insufficient-data | initializing | not-applicable. */
  readonly instanceStatus?: string;
  readonly systemStatus?: string;
  /** The instance's target in TARGET_GROUP_ARN; undefined when it is not registered. */
  readonly target?: TargetHealth;
  /** Value of UNHEALTHY_SINCE_TAG, if set. */
  readonly unhealthySince?: string;
  /** REPLACING_TAG, if set: its time (ISO) … */
  readonly replacingSince?: string;
  /** … and the desired capacity before the raise (undefined when the tag does not record it). */
  readonly desiredBeforeRaise?: number;
}

export interface Group {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly desired: number;
  readonly suspendedProcesses: readonly string[];
  /** InstanceMaintenancePolicy; `minHealthyPercentage >= 100` means launch before terminate. */
  readonly maintenancePolicy?: { readonly minHealthyPercentage?: number; readonly maxHealthyPercentage?: number };
  readonly healthCheckType?: string;
}

export interface Fleet {
  readonly group: Group;
  readonly members: readonly Member[];
  /** Scaling activities not yet finished (status other than Successful, Failed, Cancelled). */
  readonly activitiesInProgress: readonly { readonly id: string; readonly status: string; readonly description: string }[];
  /** Instance refreshes still active (Pending, InProgress, Cancelling, RollbackInProgress, Baking). */
  readonly instanceRefreshes: readonly { readonly id: string; readonly status: string }[];
  /** Targets registered in the target group that are not members of the group (ignored, counted). */
  readonly foreignTargets: number;
  /** AWS API calls this observation made, by operation. */
  readonly apiCalls: Readonly<Record<string, number>>;
}

/** What started the run, as the plan needs it. */
export type Request =
  | { readonly kind: 'schedule' }
  | { readonly kind: 'alarm'; readonly state: string; readonly instanceId?: string; readonly targetGroup?: string }
  | { readonly kind: 'manual'; readonly instanceIds?: readonly string[]; readonly force?: boolean };
