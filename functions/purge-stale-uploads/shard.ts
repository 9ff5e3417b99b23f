import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import * as z from 'zod/mini';
import type { Context } from 'aws-lambda';
import { configureClients, s3Client } from '../../shared/aws.ts';
import { mapLimit } from '../../shared/concurrency.ts';
import { loadConfig, type CommonConfig } from '../../shared/config.ts';
import { formatDuration } from '../../shared/duration.ts';
import { errorName, JobFailedError, UnsupportedEventError, ValidationError } from '../../shared/errors.ts';
import { logger } from '../../shared/observability.ts';
import {
  REPORT_ACTION_CAP,
  runJob,
  type JobDefinition,
  type Outcomes,
  type Plan,
  type RunContext,
  type Summary,
} from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { repositoriesPrefix } from '../../shared/registry-layout.ts';
import { toTrigger } from '../../shared/triggers.ts';
import { inventoryModeEnvironment, loadPurgeStaleUploadsConfig, type PurgeStaleUploadsConfig } from './config.ts';
import { parseManifest, readInventoryFile, type InventoryManifest, type InventoryReadStats } from './inventory.ts';
import { job, options as purgeOptions, PER_REPOSITORY_CAP, type PurgeState } from './job.ts';
import { collectUploads, type ListedMultipartUpload, type ListedObject } from './model.ts';
import { listMultipartUploads, observeUploadDirs, readCandidateParts, type ObserveOptions, type UploadDirRef } from './observe.ts';
import type { PurgeAction } from './plan.ts';

/**
 * Inventory mode (10⁸ keys and beyond): one pass is one Step Functions execution (infra/constructs/purge-inventory.ts)
 * over the latest S3 Inventory of the registry bucket, in three steps of this Lambda:
 *
 * 1. **plan** (`planPass`): picks the manifest (the delivery event's, or the newest), checks it (bucket, format,
 *    fields, age), lists the open multipart uploads live (they are not in an inventory, and there are few), and
 *    writes the pass: `pass.json`, `multipart-uploads.json` and `items.json` (one item per data file), which the
 *    Distributed Map reads.
 * 2. **shard** (`shardJob`, one per item, run by the job runner): streams its data file, keeps the `_uploads/`
 *    rows, groups them by upload and plans with the job's own plan (inventory rows become the observed state).
 *    Inventory is up to a day old, so every candidate is then re-read live (its prefix listing, `startedat`, the
 *    parts of its multipart uploads) and planned again on that live state, with the job's own plan and apply
 *    (which re-checks each upload right before its abort).
 *    A directory whose rows fall in two data files is acted on by one shard only: the first to claim it (a
 *    conditional PUT of `claims/<repository>/<uuid>` in the pass folder; the others get 412). After the map,
 *    one more shard (index = number of data files) takes the multipart uploads left without a directory: it
 *    lists them live again, so none the data shards just aborted is taken twice.
 * 3. **merge** (`mergePass`): one JSON report for the pass, from the shards' reports; it fails the execution if
 *    any shard failed or is missing.
 *
 * The pass clock is the plan step's: every shard judges ages as of it (never later than its own clock).
 */

const PASS_ID = /^[A-Za-z0-9_-]{1,80}$/;
const PASS_FORM = 'expected a Step Functions execution name (1-80 letters, digits, - or _)';

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

export function loadInventoryModeConfig(source: Readonly<Record<string, string | undefined>>): Readonly<InventoryModeConfig> {
  const purge = loadPurgeStaleUploadsConfig(source);
  const own = loadConfig(inventoryModeEnvironment.shape, source, (v) => ({
    inventoryBucket: v.INVENTORY_BUCKET ?? purge.bucket,
    inventoryPrefix: v.INVENTORY_PREFIX,
    inventoryId: v.INVENTORY_ID,
    passesPrefix: v.PASSES_PREFIX,
    inventoryMaxAgeMs: v.INVENTORY_MAX_AGE,
  }));
  return Object.freeze({ ...purge, ...own });
}

/** What the plan step writes for the shards (`pass.json`). */
export interface PassDescriptor {
  readonly version: 1;
  readonly pass: string;
  readonly manifestKey: string;
  readonly manifest: InventoryManifest;
  /** Epoch ms: the pass clock. */
  readonly now: number;
  readonly maxAgeMs: number;
  readonly dryRun: boolean;
  readonly reason?: string;
  /** Shards: one per data file (the Distributed Map's items), then one for multipart uploads without a directory. */
  readonly shards: number;
}

/** One Distributed Map item: exactly the shard's payload. */
export interface ShardItem {
  readonly step: 'shard';
  readonly pass: string;
  readonly index: number;
  readonly dryRun?: true;
}

export const passKeys = (config: Pick<InventoryModeConfig, 'passesPrefix'>, pass: string) => {
  const dir = `${config.passesPrefix}${pass}/`;
  return {
    dir,
    pass: `${dir}pass.json`,
    items: `${dir}items.json`,
    multipartUploads: `${dir}multipart-uploads.json`,
    shards: `${dir}shards/`,
    shard: (index: number) => `${dir}shards/${String(index).padStart(6, '0')}.json`,
    report: `${dir}report.json`,
    claim: (d: UploadDirRef) => `${dir}claims/${d.repository}/_uploads/${d.uploadId}`,
  };
};

// ------------------------------------------------------------------------------------------------ step 1: plan

/** The execution's input: a manual payload (`aws stepfunctions start-execution`) or the delivery rule's. */
const passOptions = {
  maxAge: purgeOptions.maxAge,
  manifestKey: z.optional(z.string({ error: 'expected the key of a manifest.json in the inventory bucket' })),
};

export interface PlannedPass {
  readonly pass: string;
  readonly itemsKey: string;
  readonly shards: number;
  /** The shard that runs after the map: multipart uploads without a directory. */
  readonly orphans: ShardItem;
  readonly dryRun: boolean;
  readonly manifestKey: string;
}

export async function planPass(
  s3: S3Client,
  config: InventoryModeConfig,
  pass: string,
  input: unknown,
  now: Date,
  signal: AbortSignal,
): Promise<PlannedPass> {
  if (!PASS_ID.test(pass)) throw new ValidationError(`invalid pass ${JSON.stringify(pass)}: ${PASS_FORM}`);
  const trigger = toTrigger(input ?? {}, passOptions);
  if (trigger.kind !== 'manual') throw new ValidationError(`a pass starts from a manual payload, not a ${trigger.kind} event`);
  const dryRun = config.dryRun || trigger.dryRun;
  const manifestKey = trigger.options.manifestKey ?? (await latestManifest(s3, config, signal));
  const manifest = await readManifest(s3, config, manifestKey, now, signal);
  const multipartUploads = await listMultipartUploads(
    s3,
    observeOptions(config, config.policy.maxAgeMs, now, signal),
    repositoriesPrefix(config.root),
  );
  const keys = passKeys(config, pass);
  const descriptor: PassDescriptor = {
    version: 1,
    pass,
    manifestKey,
    manifest,
    now: now.getTime(),
    maxAgeMs: trigger.options.maxAge ?? config.policy.maxAgeMs,
    dryRun,
    ...(trigger.reason ? { reason: trigger.reason } : {}),
    shards: manifest.files.length + 1,
  };
  const item = (index: number): ShardItem => ({ step: 'shard', pass, index, ...(dryRun ? { dryRun: true as const } : {}) });
  const items = manifest.files.map((_, index) => item(index));
  await putJson(s3, config, keys.multipartUploads, multipartUploads, signal);
  await putJson(s3, config, keys.pass, descriptor, signal);
  await putJson(s3, config, keys.items, items, signal);
  return { pass, itemsKey: keys.items, shards: descriptor.shards, orphans: item(manifest.files.length), dryRun, manifestKey };
}

/** The newest delivery under `<prefix><bucket>/<id>/`: its folders are named by the scan's start (`2026-11-23T01-00Z/`). */
async function latestManifest(s3: S3Client, config: InventoryModeConfig, signal: AbortSignal): Promise<string> {
  const base = `${config.inventoryPrefix}${config.bucket}/${config.inventoryId}/`;
  const folders: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: config.inventoryBucket, Prefix: base, Delimiter: '/', ContinuationToken: token }),
      { abortSignal: signal },
    );
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix && /\/\d{4}-\d\d-\d\dT\d\d-\d\dZ\/$/.test(p.Prefix)) folders.push(p.Prefix);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const newest = folders.sort().at(-1);
  if (!newest) {
    throw new ValidationError(
      `no inventory delivered under s3://${config.inventoryBucket}/${base} yet: S3 delivers the first within 48 hours of turning it on`,
    );
  }
  return `${newest}manifest.json`;
}

async function readManifest(s3: S3Client, config: InventoryModeConfig, key: string, now: Date, signal: AbortSignal) {
  if (!key.startsWith(config.inventoryPrefix) || !key.endsWith('/manifest.json')) {
    throw new ValidationError(
      `manifestKey ${JSON.stringify(key)}: expected a key under ${config.inventoryPrefix} ending in /manifest.json`,
    );
  }
  const where = `s3://${config.inventoryBucket}/${key}`;
  const manifest = parseManifest(await getText(s3, config.inventoryBucket, key, signal), config.bucket, where);
  const age = now.getTime() - manifest.createdAt;
  if (age > config.inventoryMaxAgeMs) {
    throw new ValidationError(
      `inventory manifest ${where} was created ${formatDuration(age)} ago, ` +
        `more than INVENTORY_MAX_AGE=${formatDuration(config.inventoryMaxAgeMs)}: is the inventory configuration still delivering?`,
    );
  }
  return manifest;
}

// ------------------------------------------------------------------------------------------------ step 2: shard

const shardOptions = {
  step: z.literal('shard', { error: 'expected "shard"' }),
  pass: z.string({ error: PASS_FORM }).check(z.regex(PASS_ID, { error: PASS_FORM })),
  index: z.number({ error: 'expected a whole number' }).check(z.int({ error: 'expected a whole number' }), z.nonnegative()),
};
type ShardOptions = z.output<z.ZodMiniObject<typeof shardOptions>>;

export interface ShardScope {
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
  readonly inventory: ShardInventory;
}

type PurgeContext = Parameters<typeof job.plan>[1];
type ShardConfig = InventoryModeConfig;
type ShardTypes = {
  config: ShardConfig;
  options: typeof shardOptions;
  scope: ShardScope;
  state: ShardState;
  action: PurgeAction;
  plan: ShardPlan;
  clients: { s3: S3Client };
};
type ShardPlan = Plan<PurgeAction> & { readonly descriptor: PassDescriptor };

/**
 * The context the purge job's own plan/apply/summarize get: the pass's policy, and the pass clock (never later
 * than the shard's own, so a wrong clock can only make uploads look younger).
 */
function purgeContext(ctx: RunContext<ShardConfig, ShardOptions, ShardScope>, d: PassDescriptor): PurgeContext {
  return {
    ...ctx,
    scope: { policy: { ...ctx.config.policy, maxAgeMs: d.maxAgeMs } },
    now: new Date(Math.min(d.now, ctx.now.getTime())),
    trigger: ctx.trigger.kind === 'manual' ? { ...ctx.trigger, options: {} } : ctx.trigger,
  } as PurgeContext;
}

export const shardJob: JobDefinition<ShardTypes> = {
  name: job.name,
  accepts: ['manual'],
  options: shardOptions,
  clients: () => ({ s3: s3Client() }),
  scope: (trigger) => {
    const o = trigger.kind === 'manual' ? trigger.options : undefined;
    if (!o) throw new ValidationError('a shard runs from its Distributed Map item');
    return { pass: o.pass, index: o.index };
  },
  observe: ({ s3 }, scope, ctx) => observeShard(s3, scope, ctx),
  // apply gets the plan only: the pass travels in it.
  plan: (state, ctx) => ({ ...job.plan(state, purgeContext(ctx, state.descriptor)), descriptor: state.descriptor }),
  apply: (plan, ctx, clients) => job.apply(plan, purgeContext(ctx, plan.descriptor), clients),
  summarize: (state, plan, outcomes, ctx) => summarizeShard(state, plan, outcomes, ctx),
};

async function observeShard(s3: S3Client, scope: ShardScope, ctx: RunContext<ShardConfig, ShardOptions, ShardScope>): Promise<ShardState> {
  const { config } = ctx;
  const keys = passKeys(config, scope.pass);
  const descriptor = JSON.parse(await getText(s3, config.inventoryBucket, keys.pass, ctx.signal)) as PassDescriptor;
  if (descriptor.version !== 1 || descriptor.pass !== scope.pass)
    throw new ValidationError(`${keys.pass}: not the descriptor of pass ${scope.pass}`);
  if (scope.index >= descriptor.shards) {
    throw new ValidationError(`index ${scope.index}: pass ${scope.pass} has ${descriptor.shards} items (0-${descriptor.shards - 1})`);
  }
  const purgeCtx = purgeContext(ctx, descriptor);
  const now = purgeCtx.now;
  const o = observeOptions(config, descriptor.maxAgeMs, now, ctx.signal);
  const file = descriptor.manifest.files[scope.index];
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
          now: now.getTime(),
          signal: ctx.signal,
        },
        stats,
      )
    : [];

  // Inventory rows → the observed state → the job's own plan: its candidates are what gets re-read live.
  const fromInventory = collectUploads(rows, multipartUploads, config.root);
  const preState = file ? { ...fromInventory, orphanMultipartUploads: [] } : { ...fromInventory, uploads: [] };
  const prePlan = job.plan({ ...preState, startedAtReads: 0, maxAgeMs: descriptor.maxAgeMs, partsReads: 0 }, purgeCtx);
  const candidates = uniqueDirs(
    [...prePlan.actions, ...prePlan.skipped.filter((a) => a.held === 'limit' || a.held === 'too-large' || a.held === 'unchecked')].filter(
      (a) => (file ? a.type === 'delete-upload' : a.type === 'abort-multipart-upload'),
    ),
  );
  // Data shards claim each directory they act on (two shards may see one directory); the last shard runs alone.
  const owns = file
    ? (dir: UploadDirRef, live: readonly string[]) =>
        live.length > 0 ? claim(s3, config, keys.claim(dir), ctx.signal) : Promise.resolve(false)
    : (_: UploadDirRef, live: readonly string[]) => Promise.resolve(live.length === 0);
  const live = await observeUploadDirs(s3, o, candidates, multipartUploads, owns, ctx.hasTime);
  // The parts of the live candidates' multipart uploads, as the job's own observe reads them (ListParts).
  const { state: read, partsReads } = await readCandidateParts(s3, live.state, purgeCtx.scope.policy, purgeCtx);
  return {
    ...read,
    maxAgeMs: descriptor.maxAgeMs,
    partsReads,
    descriptor,
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

/** True if this shard is the first to claim the key (S3 conditional write: If-None-Match: *). */
async function claim(s3: S3Client, config: InventoryModeConfig, key: string, signal: AbortSignal): Promise<boolean> {
  try {
    await s3.send(new PutObjectCommand({ Bucket: config.inventoryBucket, Key: key, Body: '', IfNoneMatch: '*' }), { abortSignal: signal });
    return true;
  } catch (error) {
    if (errorName(error) === 'PreconditionFailed' || errorName(error) === 'ConditionalRequestConflict') return false;
    throw error;
  }
}

function uniqueDirs(actions: readonly PurgeAction[]): UploadDirRef[] {
  const seen = new Map<string, UploadDirRef>();
  for (const a of actions) seen.set(`${a.repository}/${a.uploadId}`, { repository: a.repository, uploadId: a.uploadId });
  return [...seen.values()];
}

function summarizeShard(
  state: ShardState,
  plan: Plan<PurgeAction>,
  outcomes: Outcomes,
  ctx: RunContext<ShardConfig, ShardOptions, ShardScope>,
): Summary {
  const base = job.summarize(state, plan, outcomes, purgeContext(ctx, state.descriptor));
  return {
    ...base,
    details: {
      ...base.details,
      pass: state.descriptor.pass,
      inventory: { ...state.inventory, index: ctx.scope.index, items: state.descriptor.shards },
    },
  };
}

// ------------------------------------------------------------------------------------------------ step 3: merge

/** The report's action list is capped like the runner's (failures first); counts are always exact. */
const MERGED_ACTION_CAP = REPORT_ACTION_CAP;
/** Numeric `details` of the shards' reports that add up across the pass. */
const SUMMED_DETAILS = ['planned', 'done', 'deferred', 'requests', 'inventory'] as const;

export async function mergePass(
  s3: S3Client,
  config: InventoryModeConfig,
  pass: string,
  mapError: unknown,
  now: Date,
  signal: AbortSignal,
): Promise<Report> {
  if (!PASS_ID.test(pass)) throw new ValidationError(`invalid pass ${JSON.stringify(pass)}: ${PASS_FORM}`);
  const keys = passKeys(config, pass);
  const descriptor = JSON.parse(await getText(s3, config.inventoryBucket, keys.pass, signal)) as PassDescriptor;
  const reports = new Map<number, Report>();
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: config.inventoryBucket, Prefix: keys.shards, ContinuationToken: token }),
      { abortSignal: signal },
    );
    await mapLimit(page.Contents ?? [], 16, async (c) => {
      const index = Number(/(\d+)\.json$/.exec(c.Key ?? '')?.[1]);
      if (c.Key && Number.isInteger(index))
        reports.set(index, JSON.parse(await getText(s3, config.inventoryBucket, c.Key, signal)) as Report);
    });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);

  const report = mergeReports(descriptor, reports, mapError, now);
  await putJson(s3, config, keys.report, report, signal);
  logger.info('job report', { report });
  const shards = report.details?.shards as { failed: number[]; missing: number[] };
  if (report.summary.failed > 0 || shards.failed.length > 0 || shards.missing.length > 0 || mapError !== undefined) {
    const why = [
      report.summary.failed > 0 ? `${report.summary.failed} actions failed` : '',
      shards.failed.length > 0 ? `shards ${shards.failed.join(', ')} failed` : '',
      shards.missing.length > 0 ? `shards ${shards.missing.slice(0, 10).join(', ')} reported nothing` : '',
      mapError !== undefined ? `the Distributed Map failed (${JSON.stringify(mapError).slice(0, 200)})` : '',
    ].filter(Boolean);
    throw new JobFailedError(`${job.name} inventory pass ${pass}: ${why.join('; ')}`, report);
  }
  return report;
}

/** One report for the pass, in the runner's shape: counts summed, actions capped (failures first), per shard what went wrong. */
export function mergeReports(d: PassDescriptor, reports: ReadonlyMap<number, Report>, mapError: unknown, now: Date): Report {
  const all = [...reports.entries()].sort(([a], [b]) => a - b).map(([, r]) => r);
  const summary = { planned: 0, applied: 0, skipped: 0, failed: 0 };
  const observed: Record<string, unknown> = {};
  const details: Record<string, unknown> = {};
  const perRepository: Record<string, unknown> = {};
  for (const r of all) {
    for (const k of Object.keys(summary) as (keyof typeof summary)[]) summary[k] += r.summary[k];
    addNumbers(observed, r.observed);
    for (const key of SUMMED_DETAILS) addNumbers((details[key] ??= {}) as Record<string, unknown>, r.details?.[key]);
    addNumbers(perRepository, r.details?.perRepository);
  }
  const statusOrder: Record<string, number> = { failed: 0, applied: 1, planned: 2, skipped: 3 };
  const actions = all.flatMap((r) => r.actions).sort((a, b) => (statusOrder[a.status] ?? 4) - (statusOrder[b.status] ?? 4));
  const failedShards = [...reports.entries()].filter(([, r]) => r.summary.failed > 0 || (r.refusals?.length ?? 0) > 0).map(([i]) => i);
  const missing = Array.from({ length: d.shards }, (_, i) => i).filter((i) => !reports.has(i));
  const repositories = Object.entries(perRepository as Record<string, { stale?: number; uploads?: number }>).sort(
    ([a, x], [b, y]) => (y.stale ?? 0) - (x.stale ?? 0) || (y.uploads ?? 0) - (x.uploads ?? 0) || (a < b ? -1 : 1),
  );
  const stoppedEarly = all.some((r) => r.stoppedEarly === 'time');
  const refusals = all.flatMap((r) => r.refusals ?? []);
  return {
    job: job.name,
    trigger: { kind: 'manual', dryRun: d.dryRun, ...(d.reason ? { reason: d.reason } : {}), options: { manifestKey: d.manifestKey } },
    dryRun: d.dryRun,
    startedAt: new Date(d.now).toISOString(),
    finishedAt: now.toISOString(),
    observed,
    actions: actions.slice(0, MERGED_ACTION_CAP),
    summary,
    truncated: actions.length > MERGED_ACTION_CAP,
    ...(stoppedEarly ? { stoppedEarly: 'time' as const } : {}),
    ...(refusals.length > 0 ? { refusals } : {}),
    details: {
      mode: 'inventory',
      pass: d.pass,
      maxAge: formatDuration(d.maxAgeMs),
      manifest: {
        key: d.manifestKey,
        createdAt: new Date(d.manifest.createdAt).toISOString(),
        format: d.manifest.format,
        files: d.manifest.files.length,
      },
      shards: { items: d.shards, reported: reports.size, failed: failedShards, missing, ...(mapError !== undefined ? { mapError } : {}) },
      ...details,
      perRepository: Object.fromEntries(repositories.slice(0, PER_REPOSITORY_CAP)),
      ...(repositories.length > PER_REPOSITORY_CAP ? { perRepositoryTruncated: repositories.length - PER_REPOSITORY_CAP } : {}),
    },
  };
}

/** Adds every number of `source` into `target` (recursively through plain objects); other values are left out. */
function addNumbers(target: Record<string, unknown>, source: unknown): void {
  if (typeof source !== 'object' || source === null || Array.isArray(source)) return;
  for (const [k, v] of Object.entries(source as Record<string, unknown>)) {
    if (typeof v === 'number') target[k] = (typeof target[k] === 'number' ? (target[k] as number) : 0) + v;
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) addNumbers((target[k] ??= {}) as Record<string, unknown>, v);
  }
}

// ------------------------------------------------------------------------------------------------ the Lambda

const stepEvent = z.discriminatedUnion('step', [
  z.strictObject({ step: z.literal('plan'), pass: z.string(), input: z.optional(z.unknown()) }),
  z.strictObject({ step: z.literal('merge'), pass: z.string(), mapError: z.optional(z.unknown()) }),
]);

/** What a shard returns to the Distributed Map (its report is in S3): small, whatever the shard did. */
export interface ShardResult {
  readonly index: number;
  readonly summary: Report['summary'];
  readonly stoppedEarly?: 'time';
}

/**
 * The inventory Lambda: `{"step": "plan" | "shard" | "merge", …}` from the state machine. A shard runs through the
 * job runner (dry-run leash, time budget, request counts, one report) and its report is kept whole in the pass
 * folder — also when it fails, before the failure reaches the Distributed Map.
 */
export function createInventoryStep(config: InventoryModeConfig, { clock = () => new Date() }: { clock?: () => Date } = {}) {
  configureClients(config);
  return async (event: unknown, context: Partial<Context> = {}, { signal = new AbortController().signal } = {}) => {
    const s3 = s3Client();
    if (typeof event === 'object' && event !== null && (event as { step?: unknown }).step === 'shard') {
      return runShard(s3, config, event, context, signal, clock);
    }
    const parsed = stepEvent.safeParse(event);
    if (!parsed.success)
      throw new UnsupportedEventError(`inventory step ${JSON.stringify(event).slice(0, 200)} (expected step plan, shard or merge)`);
    const e = parsed.data;
    return e.step === 'plan'
      ? planPass(s3, config, e.pass, e.input, clock(), signal)
      : mergePass(s3, config, e.pass, e.mapError, clock(), signal);
  };
}

async function runShard(
  s3: S3Client,
  config: InventoryModeConfig,
  event: object,
  context: Partial<Context>,
  signal: AbortSignal,
  clock: () => Date,
): Promise<ShardResult> {
  let report: Report;
  try {
    report = await runJob(shardJob, config, event, context, { signal, clock });
  } catch (error) {
    const failed = error instanceof JobFailedError ? (error.report as Report | undefined) : undefined;
    if (failed) await keepShardReport(s3, config, failed, signal);
    throw error;
  }
  await keepShardReport(s3, config, report, signal);
  return {
    index: (report.details?.inventory as { index: number }).index,
    summary: report.summary,
    ...(report.stoppedEarly ? { stoppedEarly: 'time' } : {}),
  };
}

async function keepShardReport(s3: S3Client, config: InventoryModeConfig, report: Report, signal: AbortSignal): Promise<void> {
  const pass = report.details?.pass;
  const index = (report.details?.inventory as { index?: number } | undefined)?.index;
  if (typeof pass !== 'string' || typeof index !== 'number') return;
  await putJson(s3, config, passKeys(config, pass).shard(index), report, signal);
}

// ------------------------------------------------------------------------------------------------ shared

function observeOptions(config: InventoryModeConfig, maxAgeMs: number, now: Date, signal: AbortSignal): ObserveOptions {
  return {
    bucket: config.bucket,
    root: config.root,
    maxAgeMs,
    startedAtReadWindowMs: config.startedAtReadWindowMs,
    listConcurrency: config.listConcurrency,
    now,
    signal,
  };
}

export async function getText(s3: S3Client, bucket: string, key: string, signal: AbortSignal): Promise<string> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    return (await res.Body?.transformToString()) ?? '';
  } catch (error) {
    if (errorName(error) === 'NoSuchKey') throw new ValidationError(`s3://${bucket}/${key} does not exist`);
    throw error;
  }
}

export async function putJson(s3: S3Client, config: InventoryModeConfig, key: string, value: unknown, signal: AbortSignal): Promise<void> {
  await s3.send(
    new PutObjectCommand({ Bucket: config.inventoryBucket, Key: key, Body: JSON.stringify(value), ContentType: 'application/json' }),
    { abortSignal: signal },
  );
}
