import type { Resolution } from './users.ts';

/**
 * sync-htpasswd's domain: what observe.ts reads (plain data, no SDK types) and plan.ts decides on.
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

/** What one run acts on (computed once by the runner from the trigger). */
export interface SyncScope {
  /** A parameter change outside HTPASSWD_PARAMETER_PATH: nothing to do. */
  readonly outOfScope?: string;
  /** A manual `forceDistribute`: install on every instance, skip the drift check. */
  readonly forced: boolean;
}
