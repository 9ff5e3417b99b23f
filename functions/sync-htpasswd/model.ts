import type { Action } from '../../shared/job.ts';
import type { Resolution } from './users.ts';

/**
 * sync-htpasswd's domain: what observe.ts reads (plain data, no SDK types), the policy and actions plan.ts
 * decides on, and the run's scope.
 */

export interface PublishedFile {
  /** sha256 of the object's body. */
  readonly sha256: string;
  /** The object's `sha256` metadata (what the boot script verifies against), if any. */
  readonly metadataSha256: string | undefined;
  readonly users: number;
}

export type InstanceDrift =
  | { readonly state: 'reported'; readonly sha256: string | null }
  | { readonly state: 'not-registered'; readonly reason: string }
  | { readonly state: 'unknown'; readonly reason: string };

export interface FleetInstance {
  readonly instanceId: string;
  /** ISO launch time; undefined when EC2 did not list the instance (treated as not recently launched). */
  readonly launchTime?: string | undefined;
  /** Undefined when the run did not check (forceDistribute, or the user set is invalid). */
  readonly drift?: InstanceDrift;
}

export type SyncState =
  | { readonly kind: 'out-of-scope'; readonly parameter: string }
  | {
      readonly kind: 'in-scope';
      readonly parameters: number;
      readonly resolution: Resolution;
      readonly published: PublishedFile | undefined;
      readonly instances: readonly FleetInstance[];
      readonly instancesNotInService: number;
      readonly driftChecked: boolean;
    };

/** What the plan decides by: config.policy, with `forceDistribute` set by a manual payload in scope. */
export interface SyncPolicy {
  /** The fleet's group: after a publish it is read again for instances that joined during the run. */
  readonly asgName: string;
  readonly bucket: string;
  readonly objectKey: string;
  readonly parameterPath: string;
  readonly allowEmptyUserSet: boolean;
  /** How long after launch an instance SSM does not know is skipped rather than failed. */
  readonly registrationGraceMs: number;
  /** Install on every InService instance, in sync or not. */
  readonly forceDistribute: boolean;
}

/** What one run acts on (computed once by the runner from the trigger). */
export interface SyncScope {
  /** A parameter change outside HTPASSWD_PARAMETER_PATH: nothing to do. */
  readonly outOfScope?: string;
  /** A manual `forceDistribute`: install on every instance, skip the drift check. */
  readonly forced: boolean;
  readonly policy: SyncPolicy;
}

export interface PublishAction extends Action {
  readonly type: 'publish-htpasswd';
  readonly sha256: string;
  readonly users: number;
  readonly bytes: number;
  /** The file itself: a NON-enumerable property, so it never reaches the report or a log line. */
  readonly content: string;
}

/** Why an install was held back: set on the plan's skipped installs and on apply's skipped outcomes. */
export type InstallHeld = 'in-sync' | 'not-registered';

export interface InstallAction extends Action {
  readonly type: 'install-htpasswd';
  readonly sha256: string;
  /** Launched within SSM_REGISTRATION_GRACE: if SSM does not know it yet that is a skip, not a failure. */
  readonly recentlyLaunched: boolean;
  readonly launchTime: string | null;
  /** Why skipped, when in `plan.skipped` (the summary reads this, never the reason text). */
  readonly held?: InstallHeld;
}

/** A skipped install outcome that says why in a field (an Outcome: the runner reports its reason). */
export interface HeldOutcome {
  readonly status: 'skipped';
  readonly reason: string;
  readonly held: InstallHeld;
}

/**
 * After a publish: read the group again and install on InService members the plan did not cover. An instance
 * that was Pending at observe time fetched the previous file in its boot script and would keep a revoked user.
 */
export interface InstallJoinedAction extends Action {
  readonly type: 'install-joined-instances';
  readonly sha256: string;
}

export type SyncAction = PublishAction | InstallAction | InstallJoinedAction;

/** What the install on joined instances found, by result (the outcome's `detail.joined`). */
export interface JoinedInstances {
  readonly changed: readonly string[];
  readonly inSync: readonly string[];
  readonly failed: readonly string[];
  readonly notRegistered: readonly string[];
}

export const NOT_REGISTERED_REASON =
  'not registered with SSM yet (its boot script installs the published file; the hourly drift check catches up)';
