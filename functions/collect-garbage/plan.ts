/**
 * The pure plan of collect-garbage: retention → mark → candidates, bounded and held with reasons.
 *
 * Order of what a run deletes, within MAX_DELETES_PER_RUN: expired manifests (retention) first, then dangling
 * `_layers` links, then blob data. Links go before blobs so that a client asking a repository for a blob it no
 * longer links gets a 404 and uploads it, instead of a HEAD that says "exists" right before the blob goes.
 *
 * Protections, each at its rule:
 * - every revision is a root unless retention expires it, so untagged pushes (`docker push @digest`) are kept;
 * - a blob is a candidate only if no remaining manifest of any repository references it (cross-repo mounts share
 *   blobs), no `_layers` link younger than the grace links it (an upload or mount whose manifest is not yet
 *   pushed), and its data object is older than the grace (a blob just uploaded);
 * - an unreadable manifest (references unknown) refuses the whole sweep; an unversioned bucket refuses every
 *   delete (a delete there cannot be undone).
 */
import { formatDuration } from '../../shared/duration.ts';
import type { Refusal } from '../../shared/report.ts';
import { blobDataKey, layerLinkKey, revisionLinkKey } from './layout.ts';
import { referencedFrom } from './mark.ts';
import {
  deletesOf,
  type Digest,
  type GcAction,
  type GcPlan,
  type GcPolicy,
  type GcState,
  type Held,
  type RestoreState,
  type State,
} from './model.ts';
import { expiredImages } from './retention.ts';

export function plan(state: State, policy: GcPolicy, now: Date): GcPlan {
  return state.kind === 'restore' ? planRestore(state) : planSweep(state, policy, now.getTime());
}

function planRestore(state: RestoreState): GcPlan {
  const actions: GcAction[] = [];
  const skipped: GcAction[] = [];
  for (const b of state.blobs) {
    if (b.marker) {
      actions.push({
        type: 'restore-blob',
        target: b.key,
        digest: b.digest,
        key: b.key,
        versionId: b.marker,
        reason: 'asked to restore: removes the delete marker',
      });
    } else {
      const reason = b.live ? 'not deleted: its data is the current version' : 'no delete marker and no live version: nothing to restore';
      skipped.push({ type: 'restore-blob', target: b.key, digest: b.digest, key: b.key, versionId: '', reason, held: 'live' });
    }
  }
  return { actions, skipped };
}

/** Everything the mark decided, before bounds and refusals. */
interface Marked {
  readonly expire: GcAction[];
  readonly links: GcAction[];
  readonly blobs: GcAction[];
  readonly held: GcAction[];
}

function mark(state: GcState, policy: GcPolicy, now: number): Marked {
  const grace = formatDuration(policy.graceMs);
  const childrenOf = (d: Digest) => {
    const m = state.manifests[d];
    return m?.kind === 'manifest' ? m.children : [];
  };
  const expire: GcAction[] = [];
  const links: GcAction[] = [];
  const held: GcAction[] = [];
  const referenced = new Set<Digest>();
  /** Blobs a `_layers` link younger than the grace links: an upload or mount whose manifest may be on its way. */
  const freshlyLinked = new Set<Digest>();
  for (const repo of state.repositories) {
    const expired = new Map(
      policy.retention ? expiredImages(repo, policy.retention, now, childrenOf).map((e) => [e.digest, e.reason]) : [],
    );
    for (const r of repo.revisions) {
      const why = expired.get(r.digest);
      if (why === undefined) continue;
      const tags = repo.tags.filter((t) => t.current === r.digest);
      const keys = [revisionLinkKey(state.root, repo.name, r.digest), ...tags.flatMap((t) => t.keys)];
      expire.push({
        type: 'expire-manifest',
        target: `${repo.name}@${r.digest}`,
        repository: repo.name,
        digest: r.digest,
        keys,
        tags: tags.map((t) => t.name),
        revisionModified: r.lastModified,
        children: childrenOf(r.digest),
        reason: why,
      });
    }
    const mine = referencedFrom(
      repo.revisions.filter((r) => !expired.has(r.digest)).map((r) => r.digest),
      state.manifests,
    );
    mine.forEach((d) => referenced.add(d));
    for (const l of repo.layers) {
      if (mine.has(l.digest)) continue;
      const action: GcAction = {
        type: 'delete-layer-link',
        target: `${repo.name}/_layers/${l.digest}`,
        repository: repo.name,
        digest: l.digest,
        key: layerLinkKey(state.root, repo.name, l.digest),
        linkModified: l.lastModified,
        reason: 'dangling: no manifest of its repository references it',
      };
      if (now - l.lastModified < policy.graceMs) {
        freshlyLinked.add(l.digest);
        held.push({
          ...action,
          held: 'grace',
          reason: `linked ${formatDuration(Math.max(0, now - l.lastModified))} ago, within the grace ${grace}`,
        });
      } else links.push(action);
    }
  }
  const blobs: GcAction[] = [];
  for (const b of state.blobs) {
    if (referenced.has(b.digest)) continue;
    const action: GcAction = {
      type: 'delete-blob',
      target: b.digest,
      digest: b.digest,
      key: blobDataKey(state.root, b.digest),
      size: b.size,
      reason: 'no remaining manifest references it',
    };
    if (freshlyLinked.has(b.digest))
      held.push({ ...action, held: 'grace', reason: `a _layers link written within the grace ${grace} links it` });
    else if (now - b.lastModified < policy.graceMs)
      held.push({
        ...action,
        held: 'grace',
        reason: `written ${formatDuration(Math.max(0, now - b.lastModified))} ago, within the grace ${grace}`,
      });
    else blobs.push(action);
  }
  return { expire, links, blobs, held };
}

function refusalsOf(state: GcState): Refusal[] {
  const refusals: Refusal[] = [];
  if (state.versioning !== 'Enabled')
    refusals.push({
      type: 'sweep',
      target: 'bucket',
      reason: `bucket versioning is ${state.versioning}: a delete could not be undone, so nothing is deleted (enable versioning)`,
    });
  const unreadable = Object.entries(state.manifests).filter(([, m]) => m.kind === 'unreadable');
  if (unreadable.length > 0) {
    const [d, m] = unreadable[0] as [string, { why: string }];
    refusals.push({
      type: 'sweep',
      target: d,
      reason: `${unreadable.length} manifest(s) unreadable (first: ${m.why}): their references are unknown, so nothing is deleted`,
    });
  }
  return refusals;
}

/** A resumed run: the candidates the last run left, as they were marked (the re-check in apply is what keeps them safe). */
function resumedMark(state: GcState): Marked {
  const at = new Date(state.resumed?.markStartedAt ?? 0).toISOString();
  const candidates = (state.resumed?.candidates ?? []).map((a) => ({ ...a, reason: `unreferenced at the mark of ${at} (resumed)` }));
  return {
    expire: [],
    links: candidates.filter((a) => a.type === 'delete-layer-link'),
    blobs: candidates.filter((a) => a.type === 'delete-blob'),
    held: [],
  };
}

function planSweep(state: GcState, policy: GcPolicy, now: number): GcPlan {
  const marked = state.resumed ? resumedMark(state) : mark(state, policy, now);
  const checkpoint = { runs: (state.resumed?.runs ?? 0) + 1, found: state.checkpoint.found };
  const refusals = refusalsOf(state);
  // Indexes expire before their children, and once an expiry waits every later one waits too: an index that
  // stays never loses a child, whichever expiry the limit cuts.
  const expire = [...marked.expire].sort((a, b) => Number(isIndex(b)) - Number(isIndex(a)));
  const wanted = [...expire, ...marked.links, ...marked.blobs];
  const hold = (a: GcAction, held: Held, reason: string): GcAction => ({ ...a, held, reason: `${a.reason}; ${reason}` });
  if (refusals.length > 0) {
    const why: Held = state.versioning !== 'Enabled' ? 'unversioned' : 'unknown-references';
    return {
      actions: [],
      skipped: [...wanted.map((a) => hold(a, why, 'held: the sweep is refused')), ...marked.held],
      refusals,
      markStartedAt: state.markStartedAt,
    };
  }
  const actions: GcAction[] = [];
  const skipped: GcAction[] = [];
  let budget = policy.maxDeletes;
  let expiryHeld = false;
  for (const a of wanted) {
    const n = deletesOf(a);
    // Blobs of an expiry that waits are still referenced by its manifest: no link or blob goes before it does.
    if (expiryHeld) {
      skipped.push(hold(a, 'limit', 'an expiry before it waits for the next run (MAX_DELETES_PER_RUN)'));
    } else if (n <= budget) {
      actions.push(a);
      budget -= n;
    } else {
      if (a.type === 'expire-manifest') expiryHeld = true;
      skipped.push(hold(a, 'limit', `over MAX_DELETES_PER_RUN (${policy.maxDeletes}): the next run continues`));
    }
  }
  return { actions, skipped: [...skipped, ...marked.held], markStartedAt: state.markStartedAt, checkpoint };
}

const isIndex = (a: GcAction): boolean => a.type === 'expire-manifest' && a.children.length > 0;
