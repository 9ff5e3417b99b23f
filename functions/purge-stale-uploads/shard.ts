import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, ListObjectsV2Command, paginateListObjectsV2, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import * as z from 'zod/mini';
import { mapLimit } from '../../shared/concurrency.ts';
import { formatDuration } from '../../shared/duration.ts';
import { describeError, errorName, ValidationError } from '../../shared/errors.ts';
import { assembleReport, type PartReport } from '../../shared/job.ts';
import { acquireLease, LeaseHeldError, leaseKey, releaseOwn } from '../../shared/lease.ts';
import type { Refusal, Report, ReportAction } from '../../shared/report.ts';
import { repositoriesPrefix } from '../../shared/registry-layout.ts';
import { asksForDryRun, toTrigger } from '../../shared/triggers.ts';
import { PASS_TIMEOUT_MS, type InventoryModeConfig } from './inventory-config.ts';
import { parseManifest, type InventoryManifest } from './inventory.ts';
import { job, options as purgeOptions, perRepositoryDetails } from './job.ts';
import { listMultipartUploads, type ObserveOptions, type UploadDirRef } from './observe.ts';

/**
 * Inventory mode (10⁸ keys and beyond): one pass is one Step Functions execution (infra/constructs/purge-inventory.ts)
 * over the latest S3 Inventory of the registry bucket, and one run of the purge job whose observe source is the
 * inventory (inventory-source.ts) instead of a listing. This file holds what only a pass has:
 *
 * 1. **plan** (`planPass`): picks the manifest (the delivery event's, or the newest), checks it (bucket, format,
 *    fields, age), takes the registry-storage lease for the whole pass (STORAGE_LEASE=true), lists the open
 *    multipart uploads live (they are not in an inventory, and there are few), and writes the pass: `pass.json`,
 *    `multipart-uploads.json` and `items.json` (one item per data file), which the Distributed Map reads.
 * 2. **claims** (`claimDirectory`): a directory whose rows fall in two data files is acted on by one shard only,
 *    the first to claim it; a retry of that shard (Step Functions retries an attempt that failed after claiming)
 *    knows its own claims by the pass and shard index written into them.
 * 3. **merge** (`mergeShards`): every attempt's part report (inventory-step.ts keeps them per attempt) becomes one
 *    run's report, finished by the runner's own `finishRun`: one history object, one notification, one
 *    `job report` line per pass. A failed or missing shard is a refusal: the pass fails after its report. The
 *    merge releases the pass's lease, also when the pass failed.
 *
 * The pass clock is the plan step's: every shard judges ages as of it (never later than its own clock).
 */

const PASS_ID = /^[A-Za-z0-9_-]{1,80}$/;
export const PASS_FORM = 'expected a Step Functions execution name (1-80 letters, digits, - or _)';
export const passName = z.string({ error: PASS_FORM }).check(z.regex(PASS_ID, { error: PASS_FORM }));

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
  /** The registry-storage lease the plan took for the whole pass (STORAGE_LEASE=true, not a dry run): merge releases it. */
  readonly lease?: PassLease;
}

export interface PassLease {
  readonly key: string;
  readonly token: string;
  /** ISO time: the lease frees itself then if the merge never runs (a pass that timed out). */
  readonly until: string;
}

/** One Distributed Map item: exactly the shard's payload (a manual payload of the inventory job). */
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
    /** One object per attempt of a shard: its part report, or why the attempt died before it had one. */
    attempt: (index: number, attempt: string) => `${dir}shards/${String(index).padStart(6, '0')}/${attempt}.json`,
    report: `${dir}report.json`,
    claim: (d: UploadDirRef) => `${dir}claims/${d.repository}/_uploads/${d.uploadId}`,
  };
};

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
  checkPass(pass);
  const trigger = toTrigger(input ?? {}, passOptions);
  if (trigger.kind !== 'manual') throw new ValidationError(`a pass starts from a manual payload, not a ${trigger.kind} event`);
  // The runner's rule: DRY_RUN=true wins, and `"dryRun": true` on the input leashes every shard of the pass.
  const dryRun = config.dryRun || asksForDryRun(input);
  const manifestKey = trigger.options.manifestKey ?? (await latestManifest(s3, config, signal));
  const manifest = await readManifest(s3, config, manifestKey, now, signal);
  // Taken before anything of the registry is read, so the pass observes and deletes only while collect-garbage cannot run.
  const lease = dryRun ? undefined : await takePassLease(s3, config, pass, signal);
  try {
    return await writePass(s3, config, { pass, manifestKey, manifest, now, dryRun, trigger, lease }, signal);
  } catch (error) {
    // Nothing of the pass exists for a merge to release it: give it back now (the plan's error is the one to report).
    if (lease) await releaseOwn(s3, leaseSpec(config), lease.token, signal).catch(() => undefined);
    throw error;
  }
}

interface PassStart {
  readonly pass: string;
  readonly manifestKey: string;
  readonly manifest: InventoryManifest;
  readonly now: Date;
  readonly dryRun: boolean;
  readonly trigger: { readonly reason?: string; readonly options: { readonly maxAge?: number } };
  readonly lease: PassLease | undefined;
}

async function writePass(s3: S3Client, config: InventoryModeConfig, start: PassStart, signal: AbortSignal): Promise<PlannedPass> {
  const { pass, manifestKey, manifest, now, dryRun, trigger, lease } = start;
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
    ...(lease ? { lease } : {}),
  };
  const item = (index: number): ShardItem => ({ step: 'shard', pass, index, ...(dryRun ? { dryRun: true as const } : {}) });
  const items = manifest.files.map((_, index) => item(index));
  await putJson(s3, config, keys.multipartUploads, multipartUploads, signal);
  await putJson(s3, config, keys.pass, descriptor, signal);
  await putJson(s3, config, keys.items, items, signal);
  return { pass, itemsKey: keys.items, shards: descriptor.shards, orphans: item(manifest.files.length), dryRun, manifestKey };
}

const leaseSpec = (config: InventoryModeConfig) => ({ bucket: config.bucket, root: config.root });

/**
 * The registry-storage lease for the whole pass (issue 22 §6: never a pass and collect-garbage at once), living as
 * long as the pass may (PASS_TIMEOUT): the merge releases it, a pass that never reaches it frees it by time. Its
 * token is the pass's own, so a retried plan step that died after taking it gets it back. Held by collect-garbage:
 * LeaseHeldError, which the state machine retries for longer than a GC run before the pass fails.
 */
async function takePassLease(s3: S3Client, config: InventoryModeConfig, pass: string, signal: AbortSignal): Promise<PassLease | undefined> {
  if (!config.storageLease) return undefined;
  const got = await acquireLease(s3, leaseSpec(config), `${job.name} inventory pass ${pass}`, signal, {
    ttlMs: PASS_TIMEOUT_MS,
    token: `inventory-pass-${pass}`,
  });
  if (!got.acquired) throw new LeaseHeldError(leaseKey(config.root), got.heldBy, got.until);
  return { key: got.lease.key, token: got.lease.token, until: new Date(got.lease.expiresAt).toISOString() };
}

/** The merge's release of the pass's lease (also after a failed pass); one taken over since (expired) is left alone. */
export async function releasePassLease(s3: S3Client, config: InventoryModeConfig, d: PassDescriptor, signal: AbortSignal): Promise<void> {
  if (d.lease) await releaseOwn(s3, leaseSpec(config), d.lease.token, signal);
}

/** The newest delivery under `<prefix><bucket>/<id>/`: its folders are named by the scan's start (`2026-11-23T01-00Z/`). */
async function latestManifest(s3: S3Client, config: InventoryModeConfig, signal: AbortSignal): Promise<string> {
  const base = `${config.inventoryPrefix}${config.bucket}/${config.inventoryId}/`;
  const folders: string[] = [];
  const pages = paginateListObjectsV2(
    { client: s3 },
    { Bucket: config.inventoryBucket, Prefix: base, Delimiter: '/' },
    { abortSignal: signal },
  );
  for await (const page of pages) {
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix && /\/\d{4}-\d\d-\d\dT\d\d-\d\dZ\/$/.test(p.Prefix)) folders.push(p.Prefix);
  }
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
  const manifest = parseManifest(await getTextOfNamed(s3, config.inventoryBucket, key, signal), config.bucket, where);
  const age = now.getTime() - manifest.createdAt;
  if (age > config.inventoryMaxAgeMs) {
    throw new ValidationError(
      `inventory manifest ${where} was created ${formatDuration(age)} ago, ` +
        `more than INVENTORY_MAX_AGE=${formatDuration(config.inventoryMaxAgeMs)}: is the inventory configuration still delivering?`,
    );
  }
  return manifest;
}

export async function readDescriptor(
  s3: S3Client,
  config: InventoryModeConfig,
  pass: string,
  signal: AbortSignal,
): Promise<PassDescriptor> {
  const key = passKeys(config, pass).pass;
  const d = JSON.parse(await getTextOfNamed(s3, config.inventoryBucket, key, signal)) as PassDescriptor;
  if (d.version !== 1 || d.pass !== pass) throw new ValidationError(`${key}: not the descriptor of pass ${pass}`);
  return d;
}

/** Which shard of which pass holds a claim (the claim object's body). */
export interface ShardRef {
  readonly pass: string;
  readonly index: number;
}

/** Tries of a claim that S3 answers 409 (a write of the key in flight), and the wait before each retry. */
const CLAIM_CONFLICT_TRIES = 4;
const CLAIM_CONFLICT_DELAY_MS = 250;

/**
 * True if `shard` may act on `dir`: it is the first to claim it (S3 conditional write: If-None-Match: *), or the
 * claim is its own from an earlier attempt (re-read on 412). Any other holder keeps it out.
 */
export async function claimDirectory(
  s3: S3Client,
  config: InventoryModeConfig,
  shard: ShardRef,
  dir: UploadDirRef,
  signal: AbortSignal,
): Promise<boolean> {
  const key = passKeys(config, shard.pass).claim(dir);
  for (let tryNo = 1; ; tryNo += 1) {
    const answer = await putClaim(s3, config, key, shard, signal);
    if (answer === 'written') return true;
    if (answer === 'exists') break;
    // 409: a write of the key is in flight, possibly this attempt's own first try that the SDK retried over. S3 says
    // retry: once that write lands, the retry gets 412 and the holder decides (returning false here would leave the
    // directory to nobody: every later claimant finds this shard as holder). Still 409 after the last try: the shard
    // fails and Step Functions retries it, which finds its claim then.
    if (tryNo >= CLAIM_CONFLICT_TRIES) {
      throw new Error(`claim s3://${config.inventoryBucket}/${key}: ConditionalRequestConflict (409) on ${tryNo} tries`);
    }
    await sleep(CLAIM_CONFLICT_DELAY_MS * tryNo, undefined, { signal });
  }
  // Read only after a 412, which proves the key exists: a missing key would be 403 here (no ListBucket on claims/).
  let holder: Partial<ShardRef> | undefined;
  try {
    holder = JSON.parse(await getText(s3, config.inventoryBucket, key, signal)) as Partial<ShardRef>;
  } catch (error) {
    if (error instanceof SyntaxError) return false; // not a claim this code wrote: someone else's
    throw error;
  }
  return holder?.pass === shard.pass && holder.index === shard.index;
}

async function putClaim(
  s3: S3Client,
  config: InventoryModeConfig,
  key: string,
  shard: ShardRef,
  signal: AbortSignal,
): Promise<'written' | 'exists' | 'conflict'> {
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: config.inventoryBucket,
        Key: key,
        Body: JSON.stringify({ pass: shard.pass, index: shard.index }),
        ContentType: 'application/json',
        IfNoneMatch: '*',
      }),
      { abortSignal: signal },
    );
    return 'written';
  } catch (error) {
    if (errorName(error) === 'ConditionalRequestConflict') return 'conflict';
    if (errorName(error) === 'PreconditionFailed') return 'exists';
    throw error;
  }
}

/** An attempt of a shard that died before its report (SlowDown past the SDK's retries, a timeout…). */
export interface AttemptError {
  readonly index: number;
  readonly attempt: string;
  readonly failedAt: string;
  readonly error: string;
}

/** What one attempt of a shard left: its part report, or why it has none. */
export type ShardAttempt = PartReport | Report | AttemptError;

const isReport = (a: ShardAttempt): a is PartReport | Report => 'job' in a;

/** Every attempt of every shard of the pass, by shard index, oldest first. */
export async function readAttempts(
  s3: S3Client,
  config: InventoryModeConfig,
  pass: string,
  signal: AbortSignal,
): Promise<Map<number, ShardAttempt[]>> {
  const found: { index: number; key: string }[] = [];
  const pages = paginateListObjectsV2(
    { client: s3 },
    { Bucket: config.inventoryBucket, Prefix: passKeys(config, pass).shards },
    { abortSignal: signal },
  );
  for await (const page of pages) {
    for (const c of page.Contents ?? []) {
      const index = Number(/\/shards\/(\d+)\/[^/]+\.json$/.exec(c.Key ?? '')?.[1]);
      if (c.Key && Number.isInteger(index)) found.push({ index, key: c.Key });
    }
  }
  const read = await mapLimit(found, 16, async ({ index, key }) => ({
    index,
    attempt: JSON.parse(await getText(s3, config.inventoryBucket, key, signal)) as ShardAttempt,
  }));
  const byIndex = new Map<number, ShardAttempt[]>();
  for (const { index, attempt } of read) byIndex.set(index, [...(byIndex.get(index) ?? []), attempt]);
  const when = (a: ShardAttempt) => (isReport(a) ? a.startedAt : a.failedAt);
  for (const attempts of byIndex.values()) attempts.sort((a, b) => (when(a) < when(b) ? -1 : when(a) > when(b) ? 1 : 0));
  return byIndex;
}

/** Numeric `details` of the shards' reports that add up across the pass. */
const SUMMED_DETAILS = ['planned', 'done', 'deferred', 'requests', 'inventory'] as const;
/** Retried shards listed in `details.shards.retried` (the count is exact). */
const RETRIED_CAP = 100;

/** One run's report parts, from every attempt of every shard: what `finishRun` (or `assembleReport`) takes. */
export interface MergedPass {
  readonly partial: Omit<Report, 'finishedAt' | 'actions' | 'summary' | 'truncated'>;
  readonly actions: ReportAction[];
  readonly planned: number;
  readonly refusals: Refusal[];
  readonly metrics: Record<string, number>;
}

/**
 * The pass as one run: counts and actions of every attempt that reported, the failed and missing shards (a refusal:
 * the pass fails after its report), the retries with each died attempt's error. An attempt dies before its report
 * in observe (SlowDown on a read: it has only claimed) or, rarely, while keeping its report; what such an attempt
 * deleted shows in the retry as vanished directories, never as a second deletion.
 */
export function mergeShards(d: PassDescriptor, shards: ReadonlyMap<number, readonly ShardAttempt[]>, mapError: unknown): MergedPass {
  const indexes = [...shards.keys()].sort((a, b) => a - b);
  const reports = indexes.flatMap((i) => (shards.get(i) ?? []).filter(isReport));
  const observed: Record<string, unknown> = {};
  const details: Record<string, unknown> = {};
  const perRepository: Record<string, unknown> = {};
  const metrics: Record<string, number> = {};
  let planned = 0;
  for (const r of reports) {
    addNumbers(observed, r.observed);
    for (const key of SUMMED_DETAILS) addNumbers((details[key] ??= {}) as Record<string, unknown>, r.details?.[key]);
    addNumbers(perRepository, r.details?.perRepository);
    addNumbers(metrics, 'metrics' in r ? r.metrics : undefined);
    planned += 'plannedActions' in r ? r.plannedActions : r.summary.planned + r.summary.applied + r.summary.failed;
  }
  const last = (i: number) => (shards.get(i) ?? []).filter(isReport).at(-1);
  const failed = indexes.filter((i) => {
    const r = last(i);
    return r !== undefined && (r.summary.failed > 0 || (r.refusals?.length ?? 0) > 0);
  });
  const missing = Array.from({ length: d.shards }, (_, i) => i).filter((i) => last(i) === undefined);
  const retried = indexes
    .filter((i) => (shards.get(i)?.length ?? 0) > 1)
    .map((i) => {
      const attempts = shards.get(i) ?? [];
      return { index: i, attempts: attempts.length, errors: attempts.filter((a) => !isReport(a)).map((a) => (a as AttemptError).error) };
    });
  const refusals = reports.flatMap((r) => r.refusals ?? []);
  const actions = reports.flatMap((r) => r.actions);
  const why = [
    failed.length > 0 ? `shards ${failed.join(', ')} failed` : '',
    missing.length > 0 ? `shards ${missing.slice(0, 10).join(', ')} reported nothing` : '',
    mapError !== undefined ? `the Distributed Map failed (${JSON.stringify(mapError).slice(0, 200)})` : '',
  ].filter(Boolean);
  if (why.length > 0) refusals.push({ type: 'incomplete-pass', target: `inventory pass ${d.pass}`, reason: why.join('; ') });
  return {
    partial: {
      job: job.name,
      trigger: { kind: 'manual', dryRun: d.dryRun, ...(d.reason ? { reason: d.reason } : {}), options: { manifestKey: d.manifestKey } },
      dryRun: d.dryRun,
      correlationId: d.pass,
      startedAt: new Date(d.now).toISOString(),
      observed,
      ...(reports.some((r) => r.stoppedEarly === 'time') ? { stoppedEarly: 'time' as const } : {}),
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
        shards: {
          items: d.shards,
          reported: d.shards - missing.length,
          failed,
          missing,
          ...(retried.length > 0 ? { retried: retried.slice(0, RETRIED_CAP), retriedShards: retried.length } : {}),
          ...(mapError !== undefined ? { mapError } : {}),
        },
        ...details,
        ...perRepositoryDetails(new Map(Object.entries(perRepository as Record<string, { stale?: number; uploads?: number }>))),
      },
    },
    // Shards finish in any order: failures first, as the pass's reader looks for them (the runner caps the rest).
    actions: [...actions.filter((a) => a.status === 'failed'), ...actions.filter((a) => a.status !== 'failed')],
    planned,
    refusals,
    metrics,
  };
}

/** The pass's report as the runner assembles one (pure): for reading a pass without recording it. */
export function mergeReports(
  d: PassDescriptor,
  shards: ReadonlyMap<number, readonly ShardAttempt[]>,
  mapError: unknown,
  now: Date,
): Report {
  const merged = mergeShards(d, shards, mapError);
  return assembleReport(merged.partial, merged.actions, merged.refusals, now);
}

/** Adds every number of `source` into `target` (recursively through plain objects); other values are left out. */
function addNumbers(target: Record<string, unknown>, source: unknown): void {
  if (typeof source !== 'object' || source === null || Array.isArray(source)) return;
  for (const [k, v] of Object.entries(source as Record<string, unknown>)) {
    if (typeof v === 'number') target[k] = (typeof target[k] === 'number' ? (target[k] as number) : 0) + v;
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) addNumbers((target[k] ??= {}) as Record<string, unknown>, v);
  }
}

export function checkPass(pass: string): void {
  if (!PASS_ID.test(pass)) throw new ValidationError(`invalid pass ${JSON.stringify(pass)}: ${PASS_FORM}`);
}

export function observeOptions(config: InventoryModeConfig, maxAgeMs: number, now: Date, signal: AbortSignal): ObserveOptions {
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

/** The object's text, for a key that exists by construction (listed, written by an earlier step, or answered 412). */
export async function getText(s3: S3Client, bucket: string, key: string, signal: AbortSignal): Promise<string> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
  return (await res.Body?.transformToString()) ?? '';
}

/**
 * The object's text, for a key that may be missing (named in the input: a manifestKey, a pass). The role may list
 * only a few prefixes (s3:prefix), so S3 answers a missing key 403, not NoSuchKey: only a listing of exactly the key
 * makes it "missing" (a ValidationError naming it); a denial of an existing object stays an error.
 */
async function getTextOfNamed(s3: S3Client, bucket: string, key: string, signal: AbortSignal): Promise<string> {
  try {
    return await getText(s3, bucket, key, signal);
  } catch (error) {
    if (errorName(error) === 'NoSuchKey') throw new ValidationError(`s3://${bucket}/${key} does not exist`);
    if (errorName(error) !== 'AccessDenied') throw error;
    if (!(await objectListed(s3, bucket, key, signal))) throw new ValidationError(`s3://${bucket}/${key} does not exist`);
    throw new Error(`s3://${bucket}/${key} exists but GetObject is denied: ${describeError(error)}`, { cause: error });
  }
}

/** Whether the key exists, by a listing of exactly its prefix (the key sorts first among the keys it prefixes). */
async function objectListed(s3: S3Client, bucket: string, key: string, signal: AbortSignal): Promise<boolean> {
  try {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key, MaxKeys: 1 }), { abortSignal: signal });
    return (res.Contents ?? []).some((o) => o.Key === key);
  } catch (error) {
    throw new Error(
      `cannot tell whether s3://${bucket}/${key} exists: GetObject is denied ` +
        `and ListObjectsV2 (Prefix ${key}) failed: ${describeError(error)}`,
      { cause: error },
    );
  }
}

export async function putJson(s3: S3Client, config: InventoryModeConfig, key: string, value: unknown, signal: AbortSignal): Promise<void> {
  await s3.send(
    new PutObjectCommand({ Bucket: config.inventoryBucket, Key: key, Body: JSON.stringify(value), ContentType: 'application/json' }),
    { abortSignal: signal },
  );
}
