import { describe, expect, it } from 'vitest';
import { loadCollectGarbageConfig } from '../../functions/collect-garbage/config.ts';
import { parseBlobKey, parseRepositoryKey } from '../../functions/collect-garbage/layout.ts';
import { parseManifest } from '../../functions/collect-garbage/mark.ts';
import type { GcPolicy, GcState, ManifestContent, Repository } from '../../functions/collect-garbage/model.ts';
import { plan } from '../../functions/collect-garbage/plan.ts';
import { repositoryMatches } from '../../functions/collect-garbage/retention.ts';
import { digestOf, HOUR, NOW } from '../support/gc-layouts.ts';

const now = new Date(NOW);
const policy: GcPolicy = { graceMs: 48 * HOUR, maxDeletes: 100 };
const old = NOW - 100 * HOUR;
const L = (n: number) => digestOf(n);
const M = (n: number) => digestOf(1000 + n);

function state(
  repositories: Repository[],
  manifests: Record<string, ManifestContent>,
  blobs: [number, number][],
  extra: Partial<GcState> = {},
): GcState {
  return {
    kind: 'sweep',
    root: '',
    markStartedAt: NOW,
    versioning: 'Enabled',
    repositories,
    manifests,
    blobs: blobs.map(([d, at]) => ({ digest: digestOf(d), size: 10, lastModified: at })),
    keysListed: 0,
    manifestReads: 0,
    checkpoint: { found: false },
    ...extra,
  };
}
const repo = (name: string, revisions: number[], layers: [number, number][], tags: Repository['tags'] = []): Repository => ({
  name,
  revisions: revisions.map((m) => ({ digest: M(m), lastModified: old })),
  layers: layers.map(([d, at]) => ({ digest: digestOf(d), lastModified: at })),
  tags,
});
const image = (...layers: number[]): ManifestContent => ({ kind: 'manifest', blobs: layers.map(L), children: [] });
const targets = (p: ReturnType<typeof plan>, type: string) => p.actions.filter((a) => a.type === type).map((a) => a.target);

describe('collect-garbage plan', () => {
  it('keeps a layer another repository still uses (cross-repo mount), sweeps the dangling link and the unique layer', () => {
    const s = state(
      [
        repo(
          'a',
          [],
          [
            [1, old],
            [2, old],
          ],
        ),
        repo('b', [1], [[1, old]]),
      ],
      { [M(1)]: image(1) },
      [
        [1, old],
        [2, old],
        [1001, old],
      ],
    );
    const p = plan(s, policy, now);
    expect(targets(p, 'delete-blob')).toEqual([L(2)]);
    expect(targets(p, 'delete-layer-link').sort()).toEqual([`a/_layers/${L(1)}`, `a/_layers/${L(2)}`]);
  });

  it('holds a blob inside the grace, and a blob a fresh _layers link links (a push whose manifest is on its way)', () => {
    const s = state([repo('a', [], [[3, NOW - HOUR]])], {}, [
      [2, NOW - HOUR],
      [3, old],
    ]);
    const p = plan(s, policy, now);
    expect(p.actions).toEqual([]);
    expect(p.skipped.map((a) => [a.type, a.target, a.held])).toEqual([
      ['delete-layer-link', `a/_layers/${L(3)}`, 'grace'],
      ['delete-blob', L(2), 'grace'],
      ['delete-blob', L(3), 'grace'],
    ]);
  });

  it('keeps an untagged manifest and the layers of an index child whose revision is gone', () => {
    const index: ManifestContent = { kind: 'manifest', blobs: [], children: [M(2)] };
    const s = state([repo('a', [1], [])], { [M(1)]: index, [M(2)]: image(5) }, [
      [5, old],
      [1001, old],
      [1002, old],
    ]);
    expect(plan(s, policy, now).actions).toEqual([]);
  });

  it('refuses to delete anything on an unversioned bucket (no undo), and when a manifest is unreadable', () => {
    const s = state([repo('a', [], [[1, old]])], {}, [[1, old]], { versioning: 'Unversioned' });
    const p = plan(s, policy, now);
    expect(p.actions).toEqual([]);
    expect(p.refusals?.[0]?.reason).toMatch(/versioning is Unversioned/);
    expect(p.skipped.every((a) => a.held === 'unversioned')).toBe(true);
    const u = plan(state([repo('a', [1], [])], { [M(1)]: { kind: 'unreadable', why: 'not JSON' } }, [[7, old]]), policy, now);
    expect(u.actions).toEqual([]);
    expect(u.refusals?.[0]?.reason).toMatch(/unreadable/);
  });

  it('bounds deletes by MAX_DELETES_PER_RUN and holds the rest as limit', () => {
    const s = state([], {}, [
      [1, old],
      [2, old],
      [3, old],
    ]);
    const p = plan(s, { ...policy, maxDeletes: 2 }, now);
    expect(p.actions).toHaveLength(2);
    expect(p.skipped.map((a) => a.held)).toEqual(['limit']);
  });

  it('retention: keepLast expires the older tagged image with its tags, as DELETE by digest does; its layers go in the same run', () => {
    const tag = (name: string, m: number, at: number) => ({
      name,
      current: M(m),
      pushedAt: at,
      keys: [`t/${name}/current/link`, `t/${name}/index/x/link`],
    });
    const s = state(
      [
        {
          ...repo(
            'team/app',
            [1, 2],
            [
              [1, old],
              [2, old],
            ],
          ),
          tags: [tag('v1', 1, old), tag('v2', 2, old + HOUR)],
        },
      ],
      { [M(1)]: image(1), [M(2)]: image(2) },
      [
        [1, old],
        [2, old],
        [1001, old],
        [1002, old],
      ],
    );
    const p = plan(s, { ...policy, retention: [{ repository: 'team/*', keepLast: 1 }] }, now);
    const expire = p.actions.filter((a) => a.type === 'expire-manifest');
    expect(expire.map((a) => a.target)).toEqual([`team/app@${M(1)}`]);
    expect(expire[0]?.type === 'expire-manifest' && expire[0].keys).toEqual([
      `docker/registry/v2/repositories/team/app/_manifests/revisions/sha256/${M(1).slice(7)}/link`,
      't/v1/current/link',
      't/v1/index/x/link',
    ]);
    expect(targets(p, 'delete-blob').sort()).toEqual([L(1), M(1)].sort());
    expect(plan(s, policy, now).actions).toEqual([]); // retention off: nothing
  });

  it('restore: a delete marker becomes an action, a live blob is held', () => {
    const p = plan(
      {
        kind: 'restore',
        versioning: 'Enabled',
        blobs: [
          { digest: L(1), key: 'k1', marker: 'v1', live: false },
          { digest: L(2), key: 'k2', live: true },
        ],
      },
      policy,
      now,
    );
    expect(p.actions.map((a) => [a.type, a.target])).toEqual([['restore-blob', 'k1']]);
    expect(p.skipped.map((a) => a.held)).toEqual(['live']);
  });
});

describe('collect-garbage layout, manifests, globs', () => {
  it('parses the layout strictly', () => {
    const hex = L(9).slice(7);
    expect(parseBlobKey(`docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`, '')).toBe(L(9));
    expect(parseBlobKey(`docker/registry/v2/blobs/sha256/ff/${hex}/data`, '')).toBeUndefined();
    expect(parseRepositoryKey(`r/docker/registry/v2/repositories/org/app/_layers/sha256/${hex}/link`, 'r')).toEqual({
      kind: 'layer',
      repository: 'org/app',
      digest: L(9),
    });
    expect(parseRepositoryKey(`docker/registry/v2/repositories/a/_manifests/tags/v1/current/link`, '')).toEqual({
      kind: 'tag-current',
      repository: 'a',
      tag: 'v1',
    });
    expect(parseRepositoryKey(`docker/registry/v2/repositories/a/_uploads/x/data`, '').kind).toBe('other');
  });

  it('reads schema 2, OCI index and schema 1 references; anything else is unreadable', () => {
    expect(parseManifest(JSON.stringify({ schemaVersion: 2, config: { digest: L(1) }, layers: [{ digest: L(2) }] }))).toEqual({
      kind: 'manifest',
      blobs: [L(1), L(2)],
      children: [],
    });
    expect(parseManifest(JSON.stringify({ schemaVersion: 2, manifests: [{ digest: M(1) }] }))).toEqual({
      kind: 'manifest',
      blobs: [],
      children: [M(1)],
    });
    expect(parseManifest(JSON.stringify({ schemaVersion: 1, fsLayers: [{ blobSum: L(3) }] }))).toEqual({
      kind: 'manifest',
      blobs: [L(3)],
      children: [],
    });
    expect(parseManifest('{').kind).toBe('unreadable');
    expect(parseManifest(JSON.stringify({ schemaVersion: 2, layers: [{ digest: 'md5:x' }] })).kind).toBe('unreadable');
  });

  it('matches repository globs: * within a component, ** across', () => {
    expect(repositoryMatches('team/*', 'team/app')).toBe(true);
    expect(repositoryMatches('team/*', 'team/a/b')).toBe(false);
    expect(repositoryMatches('team/**', 'team/a/b')).toBe(true);
    expect(repositoryMatches('**', 'x')).toBe(true);
  });
});

describe('collect-garbage config', () => {
  const base = { AWS_REGION: 'us-east-1', REGISTRY_BUCKET: 'registry-bucket' };
  it('defaults: grace 48h, retention off', () => {
    const c = loadCollectGarbageConfig(base);
    expect(c.policy).toEqual({ graceMs: 48 * HOUR, maxDeletes: 10_000 });
  });
  it.each([
    [{ GC_GRACE: '30m' }, /GC_GRACE="30m" is not valid: .*at least 1h/],
    [{ GC_RETENTION: 'keep 3' }, /GC_RETENTION="keep 3" is not valid: not JSON; expected JSON like/],
    [{ GC_RETENTION: '{"rules":[{"repository":"*","keepLast":-1}]}' }, /rules\[0\]: keepLast: expected a whole number/],
    [{ GC_RETENTION: '{"rules":[{"repository":"*","keep":3}]}' }, /rules\[0\]: unknown rule key\(s\) keep/],
    [{ GC_RETENTION: '{"rules":[{"repository":"*","tagPattern":"(","keepLast":1}]}' }, /tagPattern "\(" is not a regular expression/],
  ])('refuses %j, naming the field, echoing the value, giving the form', (vars, message) => {
    expect(() => loadCollectGarbageConfig({ ...base, ...vars })).toThrow(message);
  });
});
