import * as z from 'zod/mini';
import { defineEnvironment, env, loadConfig, type CommonConfig } from '../../shared/config.ts';
import { PURGE_INVENTORY_ID, PURGE_INVENTORY_PREFIX, PURGE_PASSES_PREFIX } from '../../shared/purge-keys.ts';
import { loadPurgeStaleUploadsConfig, type PurgeStaleUploadsConfig } from './config.ts';

/**
 * Environment of the inventory mode's Lambda (`<stack>-purge-stale-uploads-inventory`): the purge job's own
 * variables (the shards plan by the same rules) plus where the inventory and the passes are.
 */
export interface InventoryModeConfig extends PurgeStaleUploadsConfig, CommonConfig {
  /** Where S3 Inventory delivers and the passes live (the registry bucket unless INVENTORY_BUCKET says otherwise). */
  readonly inventoryBucket: string;
  /** The inventory configuration's destination prefix: deliveries land under `<prefix><bucket>/<id>/`. */
  readonly inventoryPrefix: string;
  readonly inventoryId: string;
  readonly passesPrefix: string;
  /** A manifest older than this is refused (the inventory configuration stopped delivering). */
  readonly inventoryMaxAgeMs: number;
}

/**
 * The longest a pass may run (the state machine's timeout, infra/constructs/purge-inventory.ts): also the TTL of the
 * registry-storage lease a pass holds, so a pass that never reaches its merge frees the lease by itself.
 */
export const PASS_TIMEOUT_MS = 8 * 3_600_000;

const prefixVar = (def: string) =>
  z._default(env.text('a key prefix ending in / such as control-plane/purge-stale-uploads/inventory/', /^[A-Za-z0-9!_.*'()/-]+\/$/), def);

/** The inventory variables (each with its description: the configuration docs are generated from it). */
export const inventoryModeShape = {
  INVENTORY_BUCKET: z
    .optional(env.bucket())
    .check(
      z.describe(
        'inventory mode: the bucket S3 Inventory delivers to and the passes are kept in ' +
          '(the stack sets its PurgeInventory bucket); default REGISTRY_BUCKET',
      ),
    ),
  INVENTORY_PREFIX: prefixVar(PURGE_INVENTORY_PREFIX).check(
    z.describe(
      "inventory mode: the inventory configuration's destination prefix; deliveries land under <prefix><REGISTRY_BUCKET>/<INVENTORY_ID>/",
    ),
  ),
  INVENTORY_ID: z
    ._default(env.text('an inventory configuration id (letters, digits, - _ .)', /^[A-Za-z0-9._-]{1,64}$/), PURGE_INVENTORY_ID)
    .check(z.describe("inventory mode: the S3 Inventory configuration's id (the <config-id> segment of every delivery key)")),
  PASSES_PREFIX: prefixVar(PURGE_PASSES_PREFIX).check(
    z.describe(
      'inventory mode: where each pass keeps its folder (pass.json, items, claims, shard reports, report.json) in INVENTORY_BUCKET',
    ),
  ),
  INVENTORY_MAX_AGE: env
    .duration({ default: '72h', min: '1h', max: '720h' })
    .check(z.describe('inventory mode: a manifest older than this is refused (the inventory configuration stopped delivering)')),
};

export function loadInventoryModeConfig(source: Readonly<Record<string, string | undefined>>): Readonly<InventoryModeConfig> {
  const purge = loadPurgeStaleUploadsConfig(source);
  const own = loadConfig(inventoryModeShape, source, (v) => ({
    inventoryBucket: v.INVENTORY_BUCKET ?? purge.bucket,
    inventoryPrefix: v.INVENTORY_PREFIX,
    inventoryId: v.INVENTORY_ID,
    passesPrefix: v.PASSES_PREFIX,
    inventoryMaxAgeMs: v.INVENTORY_MAX_AGE,
  }));
  return Object.freeze({ ...purge, ...own });
}

/** The stack's side of these variables, and their table in docs/configuration.md (npm run docs:config). */
export const inventoryModeEnvironment = defineEnvironment(inventoryModeShape);
