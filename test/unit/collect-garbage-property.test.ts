import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { GcPolicy, GcState } from '../../functions/collect-garbage/model.ts';
import { plan } from '../../functions/collect-garbage/plan.ts';
import { applyInMemory, GRACE_MS, layoutArb, NOW, referencedIn, stateOf } from '../support/gc-layouts.ts';

/**
 * The plan's two promises over ≥ 10 000 generated layouts (test/support/gc-layouts.ts): no blob that any remaining
 * manifest references is ever deleted (nor the link its repository pulls it through), and every unreferenced blob
 * past the grace is gone within two runs.
 */
const now = new Date(NOW);

function checkSafe(before: GcState, policy: GcPolicy): GcState {
  const p = plan(before, policy, now);
  const after = applyInMemory(before, p.actions);
  const referenced = new Set(after.repositories.flatMap((r) => [...referencedIn(before, r)]));
  for (const a of p.actions) {
    if (a.type === 'delete-blob') expect(referenced.has(a.digest), `deleted ${a.digest}, still referenced`).toBe(false);
    if (a.type === 'delete-layer-link') {
      const repo = after.repositories.find((r) => r.name === a.repository);
      expect(repo && referencedIn(before, repo).has(a.digest), `unlinked ${a.repository}@${a.digest}, still used there`).toBe(false);
    }
  }
  // Retention never expires the child of an index that stays.
  for (const a of p.actions) {
    if (a.type !== 'expire-manifest') continue;
    const repo = after.repositories.find((r) => r.name === a.repository);
    const children = (repo?.revisions ?? []).flatMap((v) => {
      const m = before.manifests[v.digest];
      return m?.kind === 'manifest' ? m.children : [];
    });
    expect(children, `expired ${a.target}, a child of an index that stays`).not.toContain(a.digest);
  }
  return after;
}

describe('collect-garbage plan, property', () => {
  it('never deletes a referenced blob, and reclaims every unreferenced one past the grace within two runs (10 000 layouts)', () => {
    fc.assert(
      fc.property(layoutArb, (layout) => {
        const policy: GcPolicy = { graceMs: GRACE_MS, maxDeletes: 1_000_000, ...(layout.retention ? { retention: layout.retention } : {}) };
        const first = stateOf(layout);
        const second = checkSafe(first, policy);
        const third = checkSafe(second, policy);
        const referenced = new Set(third.repositories.flatMap((r) => [...referencedIn(first, r)]));
        const freshlyLinked = new Set(
          third.repositories.flatMap((r) => r.layers.filter((l) => NOW - l.lastModified < GRACE_MS).map((l) => l.digest)),
        );
        const leftOver = third.blobs.filter(
          (b) => !referenced.has(b.digest) && !freshlyLinked.has(b.digest) && NOW - b.lastModified >= GRACE_MS,
        );
        expect(leftOver.map((b) => b.digest)).toEqual([]);
        // Dangling links past the grace are gone too.
        for (const r of third.repositories) {
          const used = referencedIn(first, r);
          expect(r.layers.filter((l) => !used.has(l.digest) && NOW - l.lastModified >= GRACE_MS)).toEqual([]);
        }
      }),
      { numRuns: 10_000, seed: 22 },
    );
  }, 20_000);

  it('stays safe when MAX_DELETES_PER_RUN cuts every run short', () => {
    fc.assert(
      fc.property(layoutArb, fc.integer({ min: 1, max: 5 }), (layout, maxDeletes) => {
        const policy: GcPolicy = { graceMs: GRACE_MS, maxDeletes, ...(layout.retention ? { retention: layout.retention } : {}) };
        let state = stateOf(layout);
        for (let run = 0; run < 4; run++) state = checkSafe(state, policy);
      }),
      { numRuns: 2_000, seed: 4406 },
    );
  }, 20_000);
});
