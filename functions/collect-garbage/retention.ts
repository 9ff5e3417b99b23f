/**
 * Retention (GC_RETENTION, off by default): which images the rules expire, ECR-lifecycle style. Pure.
 *
 * An image is a manifest revision of one repository. A rule applies to the repositories its glob matches and,
 * for `keepLast`/`expireAfterDays`, to the images carrying a tag it selects (`tagPrefix`, `tagPattern`, or every
 * tag); an image is expired when any rule expires it and no rule's `keepLast` keeps it (keeping wins, as in ECR).
 * `untaggedAfterDays` expires images no tag names whose revision link is older than D days. An image that a kept
 * image index names as a child is never expired: deleting it would break the index.
 */
import type { Digest, Repository, RetentionRule } from './model.ts';

const DAY_MS = 86_400_000;

/** `team/*` matches `team/app` not `team/a/b`; `team/**` matches both; no other metacharacters. */
export function repositoryMatches(glob: string, name: string): boolean {
  const re = glob
    .split('**')
    .map((part) =>
      part
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('[^/]*'),
    )
    .join('.*');
  return new RegExp(`^${re}$`).test(name);
}

function selects(rule: RetentionRule, tag: string): boolean {
  if (rule.tagPrefix !== undefined) return tag.startsWith(rule.tagPrefix);
  if (rule.tagPattern !== undefined) return new RegExp(rule.tagPattern).test(tag);
  return true;
}

export interface Expiry {
  readonly digest: Digest;
  readonly reason: string;
}

/**
 * The images of `repo` the rules expire. `childrenOf` gives an index's children: a child of an image that stays
 * is kept. Tags whose current link is unreadable (`current` undefined) protect nothing and are never expired alone.
 */
export function expiredImages(
  repo: Repository,
  rules: readonly RetentionRule[],
  now: number,
  childrenOf: (digest: Digest) => readonly Digest[],
): Expiry[] {
  const applicable = rules.filter((r) => repositoryMatches(r.repository, repo.name));
  if (applicable.length === 0) return [];
  const pushedAt = new Map<Digest, number>();
  const tagsOf = new Map<Digest, string[]>();
  for (const t of repo.tags) {
    if (!t.current) continue;
    pushedAt.set(t.current, Math.max(pushedAt.get(t.current) ?? 0, t.pushedAt));
    tagsOf.set(t.current, [...(tagsOf.get(t.current) ?? []), t.name]);
  }
  const revisions = new Set(repo.revisions.map((r) => r.digest));
  const kept = new Set<Digest>();
  const expired = new Map<Digest, string>();
  for (const rule of applicable) {
    const selected = [...tagsOf.entries()]
      .filter(([d, tags]) => revisions.has(d) && tags.some((t) => selects(rule, t)))
      .map(([d]) => d)
      .sort((a, b) => (pushedAt.get(b) ?? 0) - (pushedAt.get(a) ?? 0) || (a < b ? -1 : 1));
    if (rule.keepLast !== undefined) {
      selected.slice(0, rule.keepLast).forEach((d) => kept.add(d));
      for (const d of selected.slice(rule.keepLast))
        if (!expired.has(d)) expired.set(d, `rule ${rule.repository}: beyond the newest ${rule.keepLast} selected images`);
    }
    if (rule.expireAfterDays !== undefined) {
      for (const d of selected)
        if (now - (pushedAt.get(d) ?? 0) > rule.expireAfterDays * DAY_MS && !expired.has(d))
          expired.set(d, `rule ${rule.repository}: pushed more than ${rule.expireAfterDays}d ago`);
    }
    if (rule.untaggedAfterDays !== undefined) {
      for (const r of repo.revisions)
        if (!tagsOf.has(r.digest) && now - r.lastModified > rule.untaggedAfterDays * DAY_MS && !expired.has(r.digest))
          expired.set(r.digest, `rule ${rule.repository}: untagged for more than ${rule.untaggedAfterDays}d`);
    }
  }
  for (const d of kept) expired.delete(d);
  // Children of what stays stay too; repeat, since a kept index may name another index.
  let changed = true;
  while (changed) {
    changed = false;
    for (const r of repo.revisions) {
      if (expired.has(r.digest)) continue;
      for (const child of childrenOf(r.digest)) if (expired.delete(child)) changed = true;
    }
  }
  return [...expired.entries()].map(([digest, reason]) => ({ digest, reason }));
}
