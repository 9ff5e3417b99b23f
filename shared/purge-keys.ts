/**
 * Keys purge-stale-uploads keeps for itself in the registry bucket, outside every registry root (the registry
 * writes only `<root>/docker/…`), next to the published htpasswd (`control-plane/htpasswd`). The job and the
 * stack's IAM both take them from here, so the policy names exactly the keys the job writes.
 */
import { normalizeRoot } from './registry-layout.ts';

export const PURGE_CONTROL_PREFIX = 'control-plane/purge-stale-uploads/';

/**
 * The resumable listing's checkpoint of the fleet whose registry root is `root` (one per root: two fleets may
 * share a bucket under different roots, and a checkpoint must never cross from one to the other).
 */
export function listingCheckpointKey(root: string | undefined): string {
  const r = normalizeRoot(root);
  return `${PURGE_CONTROL_PREFIX}${r ? `roots/${r}/` : ''}listing-checkpoint.json.gz`;
}

/** Inventory mode: where S3 Inventory delivers (`<prefix><source-bucket>/<config-id>/…`). */
export const PURGE_INVENTORY_PREFIX = `${PURGE_CONTROL_PREFIX}inventory/`;
/** Inventory mode: one folder per pass (state-machine execution): its items, multipart uploads, shard reports, report. */
export const PURGE_PASSES_PREFIX = `${PURGE_CONTROL_PREFIX}passes/`;
/** The inventory configuration's id (the `<config-id>` path segment). */
export const PURGE_INVENTORY_ID = 'purge-stale-uploads';
