import * as z from 'zod/mini';
import { defineEnvironment, env, loadConfig } from '../../shared/config.ts';
import { normalizeRoot } from '../../shared/registry-layout.ts';
import { MAX_AGE_CEILING, MAX_AGE_FLOOR, type PurgePolicy } from './model.ts';

/**
 * Environment of purge-stale-uploads (ARCHITECTURE §6). Beyond the contract's four variables:
 * LIST_CONCURRENCY (parallel listing), STARTEDAT_READ_WINDOW (when `startedat` is read, see plan.ts) and
 * LISTING_RESERVE (the time a whole-registry listing leaves to the rest of the run).
 */
export interface PurgeStaleUploadsConfig {
  readonly bucket: string;
  /** `storage.s3.rootdirectory` without leading/trailing slashes (`''` = keys start `docker/registry/v2/`). */
  readonly root: string;
  /**
   * What plan decides with (a manual `maxAge` may override the age for one run): uploads older than `maxAgeMs`
   * are stale (distribution's `uploadpurging.age`); per run at most `maxDeletes` S3 objects deleted + multipart
   * uploads aborted, the rest waits for the next run.
   */
  readonly policy: PurgePolicy;
  /** Ranges of the repositories tree listed in parallel. */
  readonly listConcurrency: number;
  /**
   * `startedat` is read (one GET) only when its object time is this close to the age boundary; farther away
   * the object time decides (the registry writes the time and the object in one request). Covers clock skew.
   */
  readonly startedAtReadWindowMs: number;
  /**
   * The listing stops taking pages while this much time (beyond the runner's margin) is left: the run that
   * completes a listing still reads its candidates' parts and applies, instead of keeping them all unread.
   */
  readonly listingReserveMs: number;
  /** Take the registry-storage lease (shared/lease.ts) so this job and collect-garbage never run at once. */
  readonly storageLease?: true;
}

const ROOT_FORM = 'expected a key prefix such as /fleet/a (the registry\'s storage.s3.rootdirectory), without ".." or empty segments';

const registryRoot = z.pipe(
  z._default(z.string({ error: ROOT_FORM }), ''),
  z.transform((value: string, ctx) => {
    const root = normalizeRoot(value);
    if (root.split('/').some((part) => part === '..' || part === '.') || (root !== '' && root.split('/').some((part) => part === ''))) {
      ctx.issues.push({ code: 'custom', message: ROOT_FORM, input: value });
      return z.NEVER;
    }
    return root;
  }),
);

const shape = {
  REGISTRY_BUCKET: env.bucket(),
  REGISTRY_ROOT: registryRoot,
  UPLOAD_MAX_AGE: env.duration({ default: '168h', min: MAX_AGE_FLOOR, max: MAX_AGE_CEILING }),
  MAX_DELETES_PER_RUN: env.int({ min: 1, max: 1_000_000, default: 10_000 }),
  LIST_CONCURRENCY: env.int({ min: 1, max: 64, default: 8 }),
  STARTEDAT_READ_WINDOW: env.duration({ default: '5m', max: '876000h' }),
  LISTING_RESERVE: env
    .duration({ default: '3m', max: '14m' })
    .check(
      z.describe(
        'time a whole-registry listing leaves to the rest of the run (parts reads, re-check, deletes): ' +
          'the listing stops once less than this (at most half the time the run starts with) plus the 15 s margin is left',
      ),
    ),
  STORAGE_LEASE: env
    .bool(false)
    .check(z.describe('take the registry-storage lease shared with collect-garbage (true on a fleet that runs it)')),
};

export function loadPurgeStaleUploadsConfig(source: Readonly<Record<string, string | undefined>>) {
  return loadConfig(shape, source, (v): PurgeStaleUploadsConfig => ({
    bucket: v.REGISTRY_BUCKET,
    root: v.REGISTRY_ROOT,
    policy: Object.freeze({ maxAgeMs: v.UPLOAD_MAX_AGE, maxDeletes: v.MAX_DELETES_PER_RUN }),
    listConcurrency: v.LIST_CONCURRENCY,
    startedAtReadWindowMs: v.STARTEDAT_READ_WINDOW,
    listingReserveMs: v.LISTING_RESERVE,
    ...(v.STORAGE_LEASE ? { storageLease: true as const } : {}),
  }));
}

export type LoadedPurgeStaleUploadsConfig = ReturnType<typeof loadPurgeStaleUploadsConfig>;
/** The config every part of the job sees (ctx.config). */
export type Config = LoadedPurgeStaleUploadsConfig;

/**
 * The stack's side of this environment (infra/constructs/jobs/purge-stale-uploads.ts): the same `shape`, so names cannot drift;
 * what each variable means is what docs/configuration.md says (npm run docs:config).
 */
export const purgeStaleUploadsEnvironment = defineEnvironment(shape, {
  REGISTRY_BUCKET: "the registry's bucket",
  REGISTRY_ROOT:
    "the registry's `storage.s3.rootdirectory` (`/fleet/a` → keys start `fleet/a/docker/registry/v2/`; " +
    'leading/trailing slashes ignored); empty: keys start `docker/registry/v2/`',
  UPLOAD_MAX_AGE: "uploads older than this are stale (distribution's `uploadpurging.age`); the same floor as a manual `maxAge`",
  MAX_DELETES_PER_RUN:
    'per run: S3 objects deleted + multipart uploads aborted; ' +
    'oldest uploads go first, the rest is reported as deferred and the next run continues',
  LIST_CONCURRENCY: 'key ranges of the repositories tree listed in parallel (1 = one serial listing)',
  STARTEDAT_READ_WINDOW:
    'read `startedat` only when its object time is this close to the age boundary; the largest value reads every one (one GET per upload)',
});
