import * as z from 'zod/mini';
import { s3Client } from '../../shared/aws.ts';
import { formatDuration } from '../../shared/duration.ts';
import { JOB_NAMES } from '../../shared/job-names.ts';
import type { JobDefinition, Outcomes, Summary } from '../../shared/job.ts';
import type { Trigger } from '../../shared/triggers.ts';
import { apply } from './apply.ts';
import type { Config } from './config.ts';
import { DIGEST, type Digest, type GcAction, type GcPlan, type GcScope, type State } from './model.ts';
import { observe } from './observe.ts';
import { plan } from './plan.ts';

/** Digests a restore names at most: one run's worth of ListObjectVersions + DeleteObject pairs. */
export const RESTORE_MAX = 1000;
const RESTORE_FORM = `expected a list of 1 to ${RESTORE_MAX} blob digests like ["sha256:<64 lower-case hex>"]`;

/** The manual payload's keys (besides `dryRun` and `reason`). */
export const options = {
  /** Restore these blobs (remove their delete markers); such a run sweeps nothing. */
  restore: z.optional(
    z.pipe(
      z.unknown(),
      z.transform((value: unknown, ctx): Digest[] => {
        const list = Array.isArray(value) ? value : undefined;
        const bad = list?.find((d) => typeof d !== 'string' || !DIGEST.test(d));
        if (!list || list.length === 0 || list.length > RESTORE_MAX || bad !== undefined) {
          const got = bad !== undefined ? ` (got ${JSON.stringify(bad)})` : ` (got ${JSON.stringify(value)})`;
          ctx.issues.push({ code: 'custom', message: `${RESTORE_FORM}${got}`, input: value });
          return z.NEVER;
        }
        return [...new Set(list as Digest[])];
      }),
    ),
  ),
};

type Options = z.output<z.ZodMiniObject<typeof options>>;

export function scopeOf(trigger: Trigger<Options>, config: Config): GcScope {
  const restore = trigger.kind === 'manual' ? trigger.options.restore : undefined;
  return { policy: config.policy, ...(restore ? { restore } : {}) };
}

const clients = () => ({ s3: s3Client() });

type Types = {
  config: Config;
  options: typeof options;
  scope: GcScope;
  state: State;
  action: GcAction;
  plan: GcPlan;
  clients: ReturnType<typeof clients>;
};

export const job: JobDefinition<Types> = {
  name: JOB_NAMES[5],
  accepts: ['schedule', 'manual'],
  options,
  clients,
  scope: scopeOf,
  // A GC run re-lists, re-checks and waits GC_SETTLE after deleting: leave room for all of it.
  timeMarginMs: 60_000,
  observe,
  plan: (state, ctx) => plan(state, ctx.scope.policy, ctx.now),
  apply,
  summarize: (state, plan, outcomes, ctx) => summarizeGc(state, plan, outcomes, ctx.requests.of('s3'), ctx.config),
};

/** The applied outcomes' details of actions of `type`. */
function appliedOf(plan: GcPlan, outcomes: Outcomes, type: GcAction['type']) {
  return plan.actions.flatMap((a, i) => {
    const o = outcomes[i];
    return a.type === type && o?.status === 'applied' ? [{ action: a, detail: o.detail ?? {} }] : [];
  });
}

export function summarizeGc(state: State, plan: GcPlan, outcomes: Outcomes, requests: Record<string, number>, config: Config): Summary {
  const held = (why: string) => plan.skipped.filter((a) => a.held === why).length;
  const changed = outcomes.filter((o) => o?.status === 'skipped' && o.reason.startsWith('changed-during-run')).length;
  const blobs = appliedOf(plan, outcomes, 'delete-blob');
  const restored = [...blobs, ...appliedOf(plan, outcomes, 'delete-layer-link')].filter((b) => b.detail.restored === true);
  const restoredByAsk = appliedOf(plan, outcomes, 'restore-blob');
  const deletedBlobs = blobs.filter((b) => b.detail.restored !== true);
  const reclaimedBytes = deletedBlobs.reduce((n, b) => n + (b.action.type === 'delete-blob' ? b.action.size : 0), 0);
  const links = appliedOf(plan, outcomes, 'delete-layer-link').filter((b) => b.detail.restored !== true).length;
  const expired = appliedOf(plan, outcomes, 'expire-manifest');
  const observed =
    state.kind === 'restore'
      ? { restoreAsked: state.blobs.length, deleteMarkersFound: state.blobs.filter((b) => b.marker).length }
      : {
          repositories: state.repositories.length,
          manifests: Object.keys(state.manifests).length,
          blobs: state.blobs.length,
          layerLinks: state.repositories.reduce((n, r) => n + r.layers.length, 0),
          keysListed: state.keysListed,
          manifestReads: state.manifestReads,
          versioning: state.versioning,
        };
  return {
    observed,
    details: {
      grace: formatDuration(config.policy.graceMs),
      retention: config.policy.retention ? 'on' : 'off',
      held: { grace: held('grace'), limit: held('limit'), unversioned: held('unversioned'), unknownReferences: held('unknown-references') },
      changedDuringRun: changed,
      reclaimedBytes,
      restored: [...restored.map((r) => r.action.target), ...restoredByAsk.map((r) => r.action.target)],
      deferred: held('limit') > 0,
      ...(state.kind === 'sweep'
        ? {
            checkpoint: {
              ...state.checkpoint,
              ...(state.resumed ? { resumedMark: new Date(state.resumed.markStartedAt).toISOString(), runs: state.resumed.runs + 1 } : {}),
            },
          }
        : {}),
      requests,
    },
    metrics: {
      BlobsDeleted: deletedBlobs.length,
      BytesReclaimed: reclaimedBytes,
      DanglingLinksDeleted: links,
      ManifestsExpired: expired.length,
      TagsExpired: expired.reduce((n, e) => n + (e.action.type === 'expire-manifest' ? e.action.tags.length : 0), 0),
      BlobsRestored: restored.length + restoredByAsk.length,
      CandidatesDropped: changed,
      S3Requests: requests.total ?? 0,
    },
  };
}
