import * as z from 'zod/mini';
import { s3Client } from '../../shared/aws.ts';
import { durationOption } from '../../shared/config.ts';
import { formatDuration } from '../../shared/duration.ts';
import type { JobDefinition, Outcomes, Summary } from '../../shared/job.ts';
import type { Trigger } from '../../shared/triggers.ts';
import { isRepositoryName, REPOSITORY_NAME_MAX_LENGTH } from '../../shared/registry-layout.ts';
import { apply } from './apply.ts';
import type { Config } from './config.ts';
import {
  CHANGED_DURING_RUN,
  checkpointNote,
  listingAttention,
  MAX_AGE_CEILING,
  MAX_AGE_FLOOR,
  planClock,
  type PurgePlan,
  type PurgeScope,
  type PurgeState,
} from './model.ts';
import { observe } from './observe.ts';
import type { PurgeAction } from './model.ts';
import { deletionsOf, plan } from './plan.ts';

export type { PurgeScope, PurgeState } from './model.ts';

const REPOSITORY_FORM =
  'expected a repository name such as library/nginx (lower-case components of letters, digits and . _ __ - joined by /)';

/** The manual payload's keys (besides `dryRun` and `reason`). */
export const options = {
  /** Override UPLOAD_MAX_AGE for this run, within the same bounds (the floor protects pushes in flight). */
  maxAge: z.optional(durationOption('a duration like 24h, 90m or 7d', { min: MAX_AGE_FLOOR, max: MAX_AGE_CEILING })),
  /** Limit the run to one repository's own `_uploads/` (not nested repositories). */
  repository: z.optional(
    z.pipe(
      z.string({ error: REPOSITORY_FORM }),
      z.transform((value: string, ctx) => {
        const problem = value.startsWith('/')
          ? 'expected a repository name without a leading / (it is relative to the registry root)'
          : value.split('/').some((part) => part === '..' || part === '.')
            ? 'expected a repository name inside the registry root (no . or .. components)'
            : value.length > REPOSITORY_NAME_MAX_LENGTH
              ? `expected a repository name of at most ${REPOSITORY_NAME_MAX_LENGTH} characters`
              : isRepositoryName(value)
                ? undefined
                : REPOSITORY_FORM;
        if (problem) {
          ctx.issues.push({ code: 'custom', message: problem, input: value });
          return z.NEVER;
        }
        return value;
      }),
    ),
  ),
};

type Options = z.output<z.ZodMiniObject<typeof options>>;

export function scopeOf(trigger: Trigger<Options>, config: Config): PurgeScope {
  const manual = trigger.kind === 'manual' ? trigger.options : {};
  return {
    policy: { ...config.policy, ...(manual.maxAge !== undefined ? { maxAgeMs: manual.maxAge } : {}) },
    ...(manual.repository !== undefined ? { repository: manual.repository } : {}),
  };
}

const clients = () => ({ s3: s3Client() });

type Types = {
  config: Config;
  options: typeof options;
  scope: PurgeScope;
  state: PurgeState;
  action: PurgeAction;
  plan: PurgePlan;
  clients: ReturnType<typeof clients>;
};

/** Repositories listed in `details.perRepository` (the most stale uploads first); the counts are exact. */
export const PER_REPOSITORY_CAP = 100;

/** The report's `requests`: this run's S3 requests by operation (retries included). */
export type RequestTally = Record<string, number>;

export const job: JobDefinition<Types> = {
  name: 'purge-stale-uploads',
  accepts: ['schedule', 'manual'],
  options,
  clients,
  scope: scopeOf,

  observe,
  // A listing resumed from earlier runs is judged as of the clock it began with (see checkpoint.ts).
  plan: (state, ctx) => plan(state, ctx.scope.policy, planClock(state, ctx.now)),
  apply,

  summarize: (state, plan, outcomes, ctx) =>
    withListing(summarizePurge(state, plan.actions, plan.skipped, outcomes, ctx.requests.of('s3')), state, plan, outcomes, ctx.dryRun),
};

/**
 * `details.perRepository` (the most stale uploads first, then the most uploads, then by name; at most
 * PER_REPOSITORY_CAP) and how many were left out: one rule for a run and for a pass merged from its shards.
 */
export function perRepositoryDetails<C extends { stale?: number; uploads?: number }>(
  counts: ReadonlyMap<string, C>,
): { perRepository: Record<string, C>; perRepositoryTruncated?: number } {
  const ranked = [...counts.entries()].sort(
    ([a, x], [b, y]) => (y.stale ?? 0) - (x.stale ?? 0) || (y.uploads ?? 0) - (x.uploads ?? 0) || (a < b ? -1 : 1),
  );
  return {
    perRepository: Object.fromEntries(ranked.slice(0, PER_REPOSITORY_CAP)),
    ...(ranked.length > PER_REPOSITORY_CAP ? { perRepositoryTruncated: ranked.length - PER_REPOSITORY_CAP } : {}),
  };
}

/**
 * The listing's part of the report (whole-registry runs): what became of the checkpoint, and whether the listing
 * needs a person (`attention`, the ListingStalled metric, a `needs attention` notification).
 */
function withListing(summary: Summary, state: PurgeState, plan: PurgePlan, outcomes: Outcomes, dryRun: boolean): Summary {
  const run = plan.listing;
  if (!run || !state.listing) return summary;
  const attention = listingAttention(run);
  const listing = { ...state.listing, checkpoint: checkpointNote(run, plan, outcomes, dryRun), ...(attention ? { attention } : {}) };
  return {
    ...summary,
    details: { ...summary.details, listing },
    metrics: { ...summary.metrics, ListingStalled: attention ? 1 : 0 },
  };
}

interface RepositoryCounts {
  uploads: number;
  stale: number;
  objectsDeleted: number;
  multipartUploadsAborted: number;
}

export function summarizePurge(
  state: PurgeState,
  actions: readonly PurgeAction[],
  skipped: readonly PurgeAction[],
  outcomes: Outcomes,
  requests: RequestTally,
): Summary {
  const held = (why: string) => skipped.filter((a) => a.held === why);
  const staleUploads = [...actions, ...held('limit'), ...held('too-large'), ...held('unchecked')].filter((a) => a.type === 'delete-upload');
  const activeUploads = held('active').filter((a) => a.type === 'delete-upload').length;
  const changed = held('changed').length;
  // Acted on by no one: the re-check right before the abort found the upload moved (apply.ts).
  const changedInApply = outcomes.filter((o) => o?.status === 'skipped' && o.reason.startsWith(CHANGED_DURING_RUN)).length;
  const openMultipart = state.uploads.reduce((n, u) => n + u.multipartUploads.length, 0) + state.orphanMultipartUploads.length;
  const staleOrphans = [...actions, ...skipped].filter((a) => a.type === 'abort-multipart-upload' && a.held !== 'active').length;

  const perRepository = new Map<string, RepositoryCounts>();
  const counts = (repository: string): RepositoryCounts => {
    let c = perRepository.get(repository);
    if (!c) perRepository.set(repository, (c = { uploads: 0, stale: 0, objectsDeleted: 0, multipartUploadsAborted: 0 }));
    return c;
  };
  for (const u of state.uploads) counts(u.repository).uploads += 1;
  for (const a of staleUploads) counts(a.repository).stale += 1;

  const planned = { uploads: 0, objects: 0, bytes: 0, multipartUploads: 0, uploadedBytes: 0 };
  const done = { objectsDeleted: 0, bytesDeleted: 0, multipartUploadsAborted: 0, uploadedBytesAborted: 0 };
  actions.forEach((a, i) => {
    const mpus = a.type === 'delete-upload' ? a.multipartUploadIds.length : 1;
    planned.multipartUploads += mpus;
    if (a.type === 'delete-upload') {
      planned.uploads += 1;
      planned.objects += a.objects.length;
      planned.bytes += a.bytes;
      planned.uploadedBytes += mpus > 0 ? (a.uploadedBytes ?? 0) : 0;
    }
    const detail =
      outcomes[i]?.status === 'applied' || outcomes[i]?.status === 'failed'
        ? (outcomes[i] as { detail?: Record<string, unknown> }).detail
        : undefined;
    if (!detail) return;
    const objectsDeleted = Number(detail.objectsDeleted ?? 0);
    const aborted = Number(detail.multipartUploadsAborted ?? 0);
    done.objectsDeleted += objectsDeleted;
    done.bytesDeleted += Number(detail.bytesDeleted ?? 0);
    done.multipartUploadsAborted += aborted;
    if (a.type === 'delete-upload' && aborted === a.multipartUploadIds.length && aborted > 0)
      done.uploadedBytesAborted += a.uploadedBytes ?? 0;
    const c = counts(a.repository);
    c.objectsDeleted += objectsDeleted;
    c.multipartUploadsAborted += aborted;
  });

  const deferred = held('limit');
  return {
    observed: {
      uploads: state.uploads.length,
      stale: staleUploads.length,
      fresh: state.uploads.length - staleUploads.length - activeUploads - changed,
      keptActive: held('active').length,
      changedDuringRun: changed + changedInApply,
      partsUnread: held('unchecked').length,
      multipartUploads: openMultipart,
      orphanMultipartUploads: state.orphanMultipartUploads.length,
      staleOrphanMultipartUploads: staleOrphans,
      keysListed: state.keysListed,
      startedAtReads: state.startedAtReads,
      partsReads: state.partsReads,
      folderKeys: state.folderKeys,
      strayUploadKeys: state.strayUploadKeys,
      foreignKeys: state.foreignKeys,
      foreignMultipartUploads: state.foreignMultipartUploads,
    },
    details: {
      maxAge: formatDuration(state.maxAgeMs),
      ...(state.repository !== undefined ? { repository: state.repository } : {}),
      planned: { ...planned, deletions: actions.reduce((n, a) => n + deletionsOf(a), 0) },
      done,
      truncated: deferred.length > 0,
      deferred: { actions: deferred.length, deletions: deferred.reduce((n, a) => n + deletionsOf(a), 0) },
      ...perRepositoryDetails(perRepository),
      requests,
      ...(state.listing ? { listing: state.listing } : {}),
    },
    metrics: {
      StaleUploads: staleUploads.length,
      ObjectsDeleted: done.objectsDeleted,
      MultipartUploadsAborted: done.multipartUploadsAborted,
      S3Requests: requests.total ?? 0,
    },
  };
}
