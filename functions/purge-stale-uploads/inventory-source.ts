import type { S3Client } from '@aws-sdk/client-s3';
import * as z from 'zod/mini';
import { ValidationError } from '../../shared/errors.ts';
import type { JobContext, JobDefinition, Plan, Summary } from '../../shared/job.ts';
import { repositoriesPrefix } from '../../shared/registry-layout.ts';
import type { Trigger } from '../../shared/triggers.ts';
import type { InventoryModeConfig } from './inventory-config.ts';
import { readInventoryFile, type InventoryReadStats } from './inventory.ts';
import { apply } from './apply.ts';
import { job, summarizePurge } from './job.ts';
import {
  collectUploads,
  type ListedMultipartUpload,
  type ListedObject,
  type PurgePolicy,
  type PurgeScope,
  type PurgeState,
} from './model.ts';
import { listMultipartUploads, observeUploadDirs, readCandidateParts, type UploadDirRef } from './observe.ts';
import type { PurgeAction } from './model.ts';
import { plan } from './plan.ts';
import { claimDirectory, getText, observeOptions, passKeys, passName, readDescriptor, type PassDescriptor } from './shard.ts';

/**
 * The inventory as the purge job's observe source (as Cloud Custodian's config source feeds the same policies as
 * its describe source): one shard of a pass is one run of the purge job through `runJob` — the same plan, apply
 * (with its re-check right before each abort), summary, dry-run leash, time budget and report — whose state comes
 * from one inventory data file instead of a listing. Inventory is up to a day old, so its rows only pick the
 * candidates (the job's own plan on them); each candidate is then re-read live (its prefix listing, `startedat`,
 * the parts of its multipart uploads) and the run plans on that live state.
 */

/** A shard's payload: its pass and index (a Distributed Map item, or the orphan item after the map). */
export const shardOptions = {
  step: z.literal('shard', { error: 'expected "shard"' }),
  pass: passName,
  index: z.number({ error: 'expected a whole number' }).check(z.int({ error: 'expected a whole number' }), z.nonnegative()),
};
type ShardOptions = z.output<z.ZodMiniObject<typeof shardOptions>>;

export interface ShardScope extends PurgeScope {
  readonly pass: string;
  readonly index: number;
}

/** What a shard saw of the inventory, and what the live re-check found (its report's `details.inventory`). */
export interface ShardInventory extends InventoryReadStats {
  readonly item: 'data-file' | 'multipart-uploads';
  readonly file?: string;
  /** Upload directories (or orphan multipart uploads) the inventory rows make. */
  readonly inventoryUploads: number;
  /** Those the plan picked on inventory data, then re-read live. */
  readonly candidates: number;
  readonly rechecked: number;
  readonly vanished: number;
  readonly notOwned: number;
}

export interface ShardState extends PurgeState {
  readonly descriptor: PassDescriptor;
  /** The pass clock this shard judges ages as of: the plan step's, never later than the shard's own. */
  readonly judgedAt: number;
  readonly inventory: ShardInventory;
}

type ShardTypes = {
  config: InventoryModeConfig;
  options: typeof shardOptions;
  scope: ShardScope;
  state: ShardState;
  action: PurgeAction;
  plan: Plan<PurgeAction>;
  clients: ReturnType<typeof job.clients>;
};
type ShardContext = JobContext<ShardTypes>;

/** The policy the pass decided with: the job's limits, the pass's max age (a manual `maxAge` of the execution). */
const passPolicy = (scope: ShardScope, state: Pick<PurgeState, 'maxAgeMs'>): PurgePolicy => ({ ...scope.policy, maxAgeMs: state.maxAgeMs });

/** The purge job, observing one inventory shard: its name, clients, plan, apply and summary are the job's own. */
export const inventoryJob: JobDefinition<ShardTypes> = {
  name: job.name,
  accepts: ['manual'],
  options: shardOptions,
  clients: job.clients,
  scope: (trigger: Trigger<ShardOptions>, config) => {
    if (trigger.kind !== 'manual') throw new ValidationError(`a shard runs from its item, not from a ${trigger.kind} event`);
    return { policy: config.policy, pass: trigger.options.pass, index: trigger.options.index };
  },
  observe: observeShard,
  // Every shard of a pass judges as the pass does: its max age, as of its clock.
  plan: (state, ctx) => plan(state, passPolicy(ctx.scope, state), new Date(state.judgedAt)),
  apply,
  summarize: (state, p, outcomes, ctx) =>
    summarizeShard(state, summarizePurge(state, p.actions, p.skipped, outcomes, ctx.requests.of('s3')), ctx),
};

async function observeShard({ s3 }: { s3: S3Client }, scope: ShardScope, ctx: ShardContext): Promise<ShardState> {
  const { config } = ctx;
  const descriptor = await readDescriptor(s3, config, scope.pass, ctx.signal);
  if (scope.index >= descriptor.shards) {
    throw new ValidationError(`index ${scope.index}: pass ${scope.pass} has ${descriptor.shards} items (0-${descriptor.shards - 1})`);
  }
  // The plan step wrote `dryRun` into every item of a dry pass; an item without it is not the plan step's.
  if (descriptor.dryRun && !ctx.dryRun) {
    throw new ValidationError(
      `shard ${scope.index} of pass ${scope.pass}: the pass is a dry run, this item is not (expected "dryRun": true)`,
    );
  }
  const judgedAt = Math.min(descriptor.now, ctx.now.getTime());
  const now = new Date(judgedAt);
  const policy = passPolicy(scope, descriptor);
  const o = observeOptions(config, descriptor.maxAgeMs, now, ctx.signal);
  const file = descriptor.manifest.files[scope.index];
  const keys = passKeys(config, scope.pass);
  // The data shards join the plan step's list; the last shard runs after them and lists live what they left.
  const multipartUploads = file
    ? (JSON.parse(await getText(s3, config.inventoryBucket, keys.multipartUploads, ctx.signal)) as ListedMultipartUpload[])
    : await listMultipartUploads(s3, o, repositoriesPrefix(config.root));
  const stats: InventoryReadStats = { rows: 0, uploadRows: 0, bytesRead: 0 };
  const rows: ListedObject[] = file
    ? await readInventoryFile(
        s3,
        {
          bucket: config.inventoryBucket,
          file,
          format: descriptor.manifest.format,
          columns: descriptor.manifest.columns,
          now: judgedAt,
          signal: ctx.signal,
        },
        stats,
      )
    : [];

  // Inventory rows → the observed state → the job's own plan: its candidates are what gets re-read live.
  const fromInventory = collectUploads(rows, multipartUploads, config.root);
  const preState = file ? { ...fromInventory, orphanMultipartUploads: [] } : { ...fromInventory, uploads: [] };
  const prePlan = plan(preState, policy, now);
  const candidates = uniqueDirs(
    [...prePlan.actions, ...prePlan.skipped.filter((a) => a.held === 'limit' || a.held === 'too-large' || a.held === 'unchecked')].filter(
      (a) => (file ? a.type === 'delete-upload' : a.type === 'abort-multipart-upload'),
    ),
  );
  // Data shards claim each directory they act on (two shards may see one directory); the last shard runs alone.
  const owns = file
    ? (dir: UploadDirRef, live: readonly string[]) =>
        live.length > 0 ? claimDirectory(s3, config, scope, dir, ctx.signal) : Promise.resolve(false)
    : (_: UploadDirRef, live: readonly string[]) => Promise.resolve(live.length === 0);
  const live = await observeUploadDirs(s3, o, candidates, multipartUploads, owns, ctx.hasTime);
  // The parts of the live candidates' multipart uploads, as the job's own observe reads them (ListParts).
  const { state: read, partsReads } = await readCandidateParts(s3, live.state, policy, {
    config,
    signal: ctx.signal,
    hasTime: ctx.hasTime,
    now,
  });
  return {
    ...read,
    maxAgeMs: descriptor.maxAgeMs,
    partsReads,
    descriptor,
    judgedAt,
    inventory: {
      item: file ? 'data-file' : 'multipart-uploads',
      ...(file ? { file: file.key } : {}),
      ...stats,
      inventoryUploads: file ? preState.uploads.length : preState.orphanMultipartUploads.length,
      candidates: candidates.length,
      rechecked: live.rechecked,
      vanished: live.vanished,
      notOwned: live.notOwned,
    },
  };
}

function uniqueDirs(actions: readonly PurgeAction[]): UploadDirRef[] {
  const seen = new Map<string, UploadDirRef>();
  for (const a of actions) seen.set(`${a.repository}/${a.uploadId}`, { repository: a.repository, uploadId: a.uploadId });
  return [...seen.values()];
}

function summarizeShard(state: ShardState, base: Summary, ctx: ShardContext): Summary {
  return {
    ...base,
    details: {
      ...base.details,
      pass: state.descriptor.pass,
      inventory: { ...state.inventory, index: ctx.scope.index, items: state.descriptor.shards },
    },
  };
}
