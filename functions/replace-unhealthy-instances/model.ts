/**
 * Domain types of replace-unhealthy-instances: what observe.ts produces from the AWS APIs and plan.ts decides
 * on. No SDK type appears here.
 */

import { FOLLOW_UP_SCHEDULE_PREFIX } from '../../shared/fleet-tags.ts';
import type { Action, Plan } from '../../shared/job.ts';

export { REPLACEMENTS_TAG, REPLACING_TAG, UNHEALTHY_SINCE_TAG } from '../../shared/fleet-tags.ts';

/**
 * What a raise recorded on the instance it replaces: when, and the desired capacity before it. A raise is always
 * by one, so the tag says exactly which desired capacity the job set (`desiredBefore + 1`). `by=operator` marks
 * a replacement a manual `instanceIds` asked for: its instance is replaced whatever its health.
 */
export interface ReplacingTag {
  readonly since: string;
  readonly desiredBefore?: number;
  readonly byOperator?: boolean;
}

export function replacingTagValue(at: string, desiredBefore: number, byOperator = false): string {
  return `${at} desired-before=${desiredBefore}${byOperator ? ' by=operator' : ''}`;
}

/** Parse a REPLACING_TAG value; fields the value does not record (older or hand-written tag) are absent. */
export function parseReplacingTag(value: string): ReplacingTag {
  const [since = '', ...rest] = value.trim().split(/\s+/);
  const fields = new Map(rest.map((kv) => kv.split('=', 2) as [string, string | undefined]));
  const before = fields.get('desired-before');
  return {
    since,
    ...(before !== undefined && /^\d{1,6}$/.test(before) ? { desiredBefore: Number(before) } : {}),
    ...(fields.get('by') === 'operator' ? { byOperator: true } : {}),
  };
}

/** The replacement budget's ledger (REPLACEMENTS_TAG): start times, to the second, space-separated; at most 10 kept. */
export const LEDGER_MAX = 10;
export function parseReplacementLog(value: string | undefined): string[] {
  return (value ?? '').split(/\s+/).filter((t) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(t));
}
export const toSecond = (at: Date): string => `${at.toISOString().slice(0, 19)}Z`;

/** Follow-up schedules: a name prefix and the schedule's name for one mark (unique per instance and mark). */
export const FOLLOW_UP_PREFIX = FOLLOW_UP_SCHEDULE_PREFIX;
export function followUpName(instanceId: string, markedAt: string): string {
  return `${FOLLOW_UP_PREFIX}${instanceId}-${markedAt.replace(/[-:]|\.\d+/g, '')}`;
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
  /** … the desired capacity before the raise (undefined when the tag does not record it; the raise set it + 1) … */
  readonly desiredBeforeRaise?: number;
  /** … and whether an operator asked for it (manual instanceIds): then it is replaced whatever its health. */
  readonly replacementByOperator?: boolean;
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
  /** The replacement budget's ledger (REPLACEMENTS_TAG on the group): when replacements started, newest last. */
  readonly replacementLog?: readonly string[];
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

/** What started the run, as the plan needs it (the job's scope). */
export type Request =
  | { readonly kind: 'schedule' }
  /** The follow-up this job scheduled when it marked `instanceId` at `markedAt`. */
  | { readonly kind: 'follow-up'; readonly instanceId: string; readonly markedAt?: string }
  | { readonly kind: 'alarm'; readonly state: string; readonly instanceId?: string; readonly targetGroup?: string }
  | { readonly kind: 'manual'; readonly instanceIds?: readonly string[]; readonly force?: boolean };

/** What plan sees: the fleet and the request it was observed for (the scope travels in the state). */
export interface FleetState extends Fleet {
  readonly request: Request;
}

/** What the pure plan decides with (`config.policy`). */
export interface ReplacePolicy {
  /** Only the alarm's target group dimension is compared with it. */
  readonly targetGroupArn: string;
  /** Replacements started per run (either path). */
  readonly maxReplacementsPerRun: number;
  /** Circuit breaker: replace nothing when MORE than this percentage of InService members is unhealthy (and ≥ 2 are). */
  readonly maxUnhealthyPercent: number;
  /** An instance younger than this (since EC2 launch) is never a candidate. */
  readonly gracePeriodMs: number;
  /** A candidate must have been seen unhealthy (and marked) at least this long before it is replaced. 0 = at once. */
  readonly unhealthyConfirmMs: number;
  /** Capacity-preserving path: a replacement still not done after this long is reported stalled and its tag removed. */
  readonly replacementTimeoutMs: number;
  /** At most this many replacements start per budget window (automatic ones; a manual instanceIds run is counted, not stopped). */
  readonly replacementBudget: number;
  readonly replacementBudgetWindowMs: number;
  /** Whether a mark arranges its own follow-up run (FOLLOW_UP_* set). */
  readonly followUps?: boolean;
}

export type Guard =
  | 'circuit-open'
  | 'in-flight'
  | 'process-suspended'
  | 'max-replacements-per-run'
  | 'replacement-budget-exhausted'
  | 'grace-period'
  | 'confirming'
  | 'not-in-service'
  | 'not-a-member'
  | 'not-named'
  | 'replacement-in-progress'
  | 'replacement-stalled'
  | 'no-headroom';

export type Cause = 'target-unhealthy' | 'ec2-impaired' | 'named';

export type ReplacePath = 'set-instance-health' | 'launch-then-terminate';

export type ReplaceAction = Action & {
  readonly type:
    | 'mark-unhealthy'
    | 'unmark'
    | 'schedule-follow-up'
    | 'set-instance-health'
    | 'raise-desired'
    | 'terminate-replaced'
    | 'undo-raise'
    | 'expire-replacing'
    | 'replace-instance';
  readonly causes?: readonly Cause[];
  /** The guard that skipped this candidate (skipped entries only). */
  readonly guard?: Guard;
  /** mark-unhealthy and raise-desired: the tag value written; schedule-follow-up: the mark it follows up. */
  readonly markedAt?: string;
  /** raise-desired and undo-raise: desired capacity before → after. */
  readonly desiredFrom?: number;
  readonly desiredTo?: number;
  /** The circuit breaker was bypassed by a manual `force` for this instance. */
  readonly forced?: boolean;
  /** schedule-follow-up: the schedule's name and when it fires; unmark: the pending follow-up it cancels. */
  readonly followUp?: string;
  readonly at?: string;
};

export interface Assessment {
  readonly nothingToDo?: string;
  readonly path: ReplacePath;
  readonly maintenancePolicy: string;
  readonly inService: number;
  readonly healthy: number;
  readonly unhealthy: number;
  readonly byCause: { readonly targetUnhealthy: number; readonly ec2Impaired: number };
  readonly unhealthyPercent: number;
  readonly maxUnhealthyPercent: number;
  readonly circuitOpen: boolean;
  readonly inFlight: readonly string[];
  readonly suspended: readonly string[];
  readonly candidates: readonly { readonly instanceId: string; readonly causes: readonly Cause[]; readonly ageSeconds: number | null }[];
  readonly guards: readonly Guard[];
  readonly forced: readonly string[];
  readonly stalled: readonly string[];
  /** The replacement budget: started in the window, the limit, whether it stopped a replacement this run. */
  readonly budget: {
    readonly spent: number;
    readonly limit: number;
    readonly window: string;
    readonly exhausted: boolean;
    readonly nextAt?: string;
  };
  readonly alarm?: { readonly instanceId?: string; readonly targetGroup?: string; readonly targetGroupMatches?: boolean };
  readonly followUp?: { readonly instanceId: string; readonly markedAt?: string };
}

export interface ReplacementPlan extends Plan<ReplaceAction> {
  readonly assessment: Assessment;
}
