/** Domain types of collect-garbage: what observe sees, what plan decides over, what apply is handed. No SDK types. */
import type { Action, Plan } from '../../shared/job.ts';

/** The shortest grace: a blob or link younger than an hour is never swept, whatever GC_GRACE says (pushes in flight). */
export const GRACE_FLOOR = '1h';
export const GRACE_CEILING = '365d';
/**
 * How far before the mark's wall-clock start a key still counts as "written since the mark": S3 stamps
 * LastModified with its own clock, so the re-checks look back this much further to cover skew between the two.
 */
export const CLOCK_SKEW_MS = 5 * 60_000;

/** `sha256:<64 hex>`: the only digest algorithm distribution 2.8 writes into the layout. */
export type Digest = `sha256:${string}`;
export const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** A blob's data object, `blobs/sha256/<2>/<hex>/data`. */
export interface Blob {
  readonly digest: Digest;
  readonly size: number;
  /** Epoch ms (S3 LastModified of its data object). */
  readonly lastModified: number;
}

/** What a manifest blob references, as read from its content. */
export type ManifestContent =
  | {
      readonly kind: 'manifest';
      /** config + layers (schema 2 / OCI), or fsLayers (schema 1). */
      readonly blobs: readonly Digest[];
      /** Child manifests (an image index / manifest list). */
      readonly children: readonly Digest[];
    }
  /** Its data object is gone: nothing can be pulled through it, and nothing it referenced is known. */
  | { readonly kind: 'missing' }
  /** Present but not a manifest this job understands: its references are unknown, so no sweep is safe. */
  | { readonly kind: 'unreadable'; readonly why: string };

/** A link file: `_manifests/revisions/…/link`, `_layers/…/link`, `_manifests/tags/<tag>/index/…/link`. */
export interface Link {
  readonly digest: Digest;
  /** Epoch ms. */
  readonly lastModified: number;
}

export interface Tag {
  readonly name: string;
  /** The digest `current/link` names (read only when retention is on; undefined otherwise or when unreadable). */
  readonly current?: Digest;
  /** Epoch ms of `current/link`: when the tag was last pushed. */
  readonly pushedAt: number;
  /** Every key under `_manifests/tags/<tag>/` (current and index links): distribution's Untag removes them all. */
  readonly keys: readonly string[];
}

export interface Repository {
  readonly name: string;
  readonly revisions: readonly Link[];
  readonly layers: readonly Link[];
  readonly tags: readonly Tag[];
}

export type Versioning = 'Enabled' | 'Suspended' | 'Unversioned';

export interface GcState {
  readonly kind: 'sweep';
  /** The registry root the keys are under (REGISTRY_ROOT). */
  readonly root: string;
  /** Wall-clock epoch ms when the mark's listing began, less CLOCK_SKEW_MS: the re-checks read keys written since. */
  readonly markStartedAt: number;
  readonly versioning: Versioning;
  readonly repositories: readonly Repository[];
  readonly blobs: readonly Blob[];
  /** Every manifest a revision link names, by digest. */
  readonly manifests: Readonly<Record<string, ManifestContent>>;
  readonly keysListed: number;
  readonly manifestReads: number;
  /** Resumed from the sweep checkpoint (checkpoint.ts): no mark this run, the candidates left by the last one. */
  readonly resumed?: Resumed;
  /** Whether a checkpoint was there, and why it was not used when it was not. */
  readonly checkpoint: { readonly found: boolean; readonly discarded?: string };
}

export interface Resumed {
  /** When the mark these candidates came from began (the re-check reads everything written since). */
  readonly markStartedAt: number;
  /** Runs this mark has taken before this one. */
  readonly runs: number;
  readonly candidates: readonly GcAction[];
}

/** A run asked to restore blobs (`{"restore": [...]}`): the delete markers found for each. */
export interface RestoreState {
  readonly kind: 'restore';
  readonly versioning: Versioning;
  readonly blobs: readonly { readonly digest: Digest; readonly key: string; readonly marker?: string; readonly live: boolean }[];
}

export type State = GcState | RestoreState;

/** A retention rule (GC_RETENTION), ECR-lifecycle style. */
export interface RetentionRule {
  /** Repository glob: `*` matches within one path component, `**` across components. */
  readonly repository: string;
  readonly tagPrefix?: string;
  readonly tagPattern?: string;
  /** Keep the newest N images among those with a selected tag. */
  readonly keepLast?: number;
  /** Expire images with a selected tag pushed more than D days ago. */
  readonly expireAfterDays?: number;
  /** Delete manifests with no tag whose revision link is older than D days. */
  readonly untaggedAfterDays?: number;
}

export interface GcPolicy {
  readonly graceMs: number;
  readonly maxDeletes: number;
  /** Off (undefined) by default: no tag or manifest is ever deleted then. */
  readonly retention?: readonly RetentionRule[];
}

export interface GcScope {
  readonly policy: GcPolicy;
  /** Blobs to restore (manual payload); a restore run sweeps nothing. */
  readonly restore?: readonly Digest[];
}

/** Why a candidate was not acted on (the structured `held` summaries count, never the reason text). */
export type Held = 'grace' | 'limit' | 'unversioned' | 'unknown-references' | 'live';

interface Base extends Action {
  readonly repository?: string;
  readonly held?: Held;
}

export type GcAction =
  /** Retention: distribution's DELETE by digest — the revision link and every tag whose current names it. */
  | (Base & {
      readonly type: 'expire-manifest';
      readonly repository: string;
      readonly digest: Digest;
      readonly keys: readonly string[];
      readonly tags: readonly string[];
      readonly revisionModified: number;
      /** Its children when it is an index: they expire after it, never before. */
      readonly children: readonly Digest[];
    })
  /** A `_layers` link that no manifest of its repository references (distribution #4406). */
  | (Base & {
      readonly type: 'delete-layer-link';
      readonly repository: string;
      readonly digest: Digest;
      readonly key: string;
      readonly linkModified: number;
    })
  | (Base & { readonly type: 'delete-blob'; readonly digest: Digest; readonly key: string; readonly size: number })
  | (Base & { readonly type: 'restore-blob'; readonly digest: Digest; readonly key: string; readonly versionId: string });

export interface GcPlan extends Plan<GcAction> {
  /** Carried to apply: the re-checks read what was written since. */
  readonly markStartedAt?: number;
  /** Carried to apply, which saves what is left (sweep runs only): runs of this mark so far, and whether one is stored. */
  readonly checkpoint?: { readonly runs: number; readonly found: boolean };
}

/** The number of S3 deletes an action makes (the MAX_DELETES_PER_RUN unit). */
export function deletesOf(a: GcAction): number {
  return a.type === 'expire-manifest' ? a.keys.length : 1;
}
