import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.ts';
import { parseUploadKey } from '../../shared/registry-layout.ts';
import { toTrigger } from '../../shared/triggers.ts';
import { job } from '../../functions/purge-stale-uploads/job.ts';
import {
  collectUploads,
  mustReadStartedAt,
  type ListedMultipartUpload,
  type ListedObject,
  type OpenMultipartUpload,
  type PartsRead,
  type StartedAtRead,
  type UploadsState,
} from '../../functions/purge-stale-uploads/model.ts';
import type { PurgeAction } from '../../functions/purge-stale-uploads/model.ts';
import { dataKeyOf, objectKeysOf, plan as planPurge } from '../../functions/purge-stale-uploads/plan.ts';
import { EVENTS_DIR, loadEvent } from '../support/events.ts';

const NOW = new Date('2026-11-23T03:00:00.000Z');
const H = 3_600_000;
const MAX_AGE = 168 * H;
const policy = { maxAgeMs: MAX_AGE, maxDeletes: 10_000 };
const ago = (ms: number): number => NOW.getTime() - ms;

const id = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const V2 = (root = ''): string => `${root ? `${root}/` : ''}docker/registry/v2/`;

interface UploadSpec {
  repo: string;
  n: number;
  /** Age of startedat (absent: a cancelled-upload leftover). */
  startedAgo?: number;
  /** Age of the hash states (default: the startedat age). */
  writtenAgo?: number;
  offsets?: number[];
  multipart?: boolean;
  root?: string;
  /** What ListParts told about its multipart upload: part ages (default: read, no parts), unread, or gone. */
  parts?: number[] | 'unread' | 'gone';
  /** Age of its multipart upload's Initiated (default: the startedat age). */
  initiatedAgo?: number;
}

/** The keys (and multipart upload) the registry leaves for one upload. */
function upload(u: UploadSpec): { objects: ListedObject[]; multipart: ListedMultipartUpload[] } {
  const dir = `${V2(u.root)}repositories/${u.repo}/_uploads/${id(u.n)}/`;
  const written = ago(u.writtenAgo ?? u.startedAgo ?? 0);
  const objects: ListedObject[] = (u.offsets ?? [0]).map((o) => ({
    key: `${dir}hashstates/sha256/${o}`,
    size: 100,
    lastModified: written,
  }));
  if (u.startedAgo !== undefined) objects.push({ key: `${dir}startedat`, size: 20, lastModified: ago(u.startedAgo) });
  const multipart =
    (u.multipart ?? u.startedAgo !== undefined)
      ? [{ key: `${dir}data`, multipartUploadId: `mpu-${u.n}`, initiated: ago(u.initiatedAgo ?? u.startedAgo ?? 0) }]
      : [];
  return { objects, multipart };
}

/** ListParts' answer for part ages (oldest part first, numbered from 1). */
function partsRead(spec: UploadSpec['parts']): PartsRead | undefined {
  if (spec === 'unread') return undefined;
  if (spec === 'gone') return { kind: 'gone' };
  const ages = spec ?? [];
  const newest = ages.reduce<{ partNumber: number; at: number } | undefined>(
    (best, a, i) => (best && best.at >= ago(a) ? best : { partNumber: i + 1, at: ago(a) }),
    undefined,
  );
  return { kind: 'read', count: ages.length, bytes: ages.length * 5_242_880, ...(newest ? { newest } : {}) };
}

/** Every multipart upload of the state with its ListParts answer attached (as observe does for candidates). */
function withParts<S extends Pick<UploadsState, 'uploads' | 'orphanMultipartUploads'>>(
  s: S,
  parts: (mpu: OpenMultipartUpload) => PartsRead | undefined,
): S {
  const attach = (m: OpenMultipartUpload): OpenMultipartUpload => {
    const read = parts(m);
    return read ? { ...m, parts: read } : m;
  };
  return {
    ...s,
    uploads: s.uploads.map((u) => ({ ...u, multipartUploads: u.multipartUploads.map(attach) })),
    orphanMultipartUploads: s.orphanMultipartUploads.map(attach),
  };
}

function state(
  uploads: UploadSpec[],
  {
    extraKeys = [],
    extraMultipart = [],
    root = '',
    reads = {},
  }: { extraKeys?: string[]; extraMultipart?: ListedMultipartUpload[]; root?: string; reads?: Record<number, StartedAtRead> } = {},
): Pick<UploadsState, 'uploads' | 'orphanMultipartUploads'> {
  const parts = uploads.map((u) => upload({ ...u, root }));
  const objects = [...parts.flatMap((p) => p.objects), ...extraKeys.map((key) => ({ key, size: 1, lastModified: ago(1000 * H) }))];
  const collected = collectUploads(objects, [...parts.flatMap((p) => p.multipart), ...extraMultipart], root);
  const specOf = new Map(uploads.map((u) => [`mpu-${u.n}`, u]));
  return withParts(
    {
      ...collected,
      uploads: collected.uploads.map((u) => {
        const n = parseInt(u.uploadId.slice(-12), 16);
        return reads[n] ? { ...u, startedAt: reads[n] } : u;
      }),
    },
    (m) => partsRead(specOf.get(m.multipartUploadId)?.parts),
  );
}

const targets = (actions: readonly PurgeAction[]): string[] => actions.map((a) => a.target);

describe('planPurge', () => {
  it('plans stale uploads (abort + delete every object), leaves fresh ones', () => {
    const plan = planPurge(
      state([
        { repo: 'library/nginx', n: 1, startedAgo: 200 * H, offsets: [0, 5_000] },
        { repo: 'library/nginx', n: 2, startedAgo: 10 * H },
      ]),
      policy,
      NOW,
    );
    expect(plan.skipped).toEqual([]);
    expect(plan.actions).toEqual([
      {
        type: 'delete-upload',
        target: `library/nginx/_uploads/${id(1)}`,
        reason: 'started 200h ago > 168h (startedat object time)',
        repository: 'library/nginx',
        uploadId: id(1),
        objects: ['hashstates/sha256/0', 'hashstates/sha256/5000', 'startedat'],
        multipartUploadIds: ['mpu-1'],
        bytes: 220,
        uploadedBytes: 5_000,
        ageMs: 200 * H,
        lastActivityAt: new Date(ago(200 * H)).toISOString(),
      },
    ]);
    expect(objectKeysOf(plan.actions[0] as PurgeAction, '')).toEqual([
      `docker/registry/v2/repositories/library/nginx/_uploads/${id(1)}/hashstates/sha256/0`,
      `docker/registry/v2/repositories/library/nginx/_uploads/${id(1)}/hashstates/sha256/5000`,
      `docker/registry/v2/repositories/library/nginx/_uploads/${id(1)}/startedat`,
    ]);
  });

  it.each([
    ['nested names', 'org/team/app'],
    ['a name with _uploads inside a component', 'my_uploads'],
    ['a nested name ending in x_uploads', 'team/x_uploads'],
    ['a registry-host name', 'localhost:5000/app'],
  ])('handles %s', (_title, repo) => {
    const plan = planPurge(
      state([
        { repo, n: 1, startedAgo: 200 * H },
        { repo, n: 2, startedAgo: H },
      ]),
      policy,
      NOW,
    );
    expect(targets(plan.actions)).toEqual([`${repo}/_uploads/${id(1)}`]);
  });

  describe('the age boundary (strict, as distribution: exactly max age is fresh)', () => {
    it.each([
      ['exactly at the boundary', MAX_AGE, false],
      ['1 ms past it', MAX_AGE + 1, true],
      ['1 ms before it', MAX_AGE - 1, false],
    ])('startedat content %s', (_title, age, stale) => {
      const plan = planPurge(
        state([{ repo: 'app', n: 1, startedAgo: MAX_AGE + 2 * H }], { reads: { 1: { kind: 'time', at: ago(age) } } }),
        policy,
        NOW,
      );
      expect(plan.actions.length).toBe(stale ? 1 : 0);
      if (stale) expect(plan.actions[0]?.reason).toBe('started 168h ago > 168h (startedat)');
    });

    it.each([
      [MAX_AGE, false],
      [MAX_AGE + 1, true],
    ])('without startedat, the newest object time decides (%d ms)', (age, stale) => {
      const plan = planPurge(state([{ repo: 'app', n: 1, writtenAgo: age }]), policy, NOW);
      expect(plan.actions.length).toBe(stale ? 1 : 0);
    });
  });

  it('dates a cancelled-upload leftover (no startedat, no multipart upload) by its newest object', () => {
    const plan = planPurge(state([{ repo: 'app', n: 1, writtenAgo: 300 * H }]), policy, NOW);
    expect(plan.actions).toEqual([
      expect.objectContaining({
        objects: ['hashstates/sha256/0'],
        multipartUploadIds: [],
        reason: 'last written 300h ago > 168h (no startedat: a cancelled-upload leftover)',
      }),
    ]);
  });

  it('trusts the startedat content over the object time when it was read', () => {
    const plan = planPurge(
      state([{ repo: 'app', n: 1, startedAgo: 10 * H, writtenAgo: 5 * H }], { reads: { 1: { kind: 'time', at: ago(400 * H) } } }),
      policy,
      NOW,
    );
    expect(plan.actions[0]?.reason).toBe('started 400h ago > 168h (startedat)');
  });

  it('falls back to the startedat object time when the content is unreadable', () => {
    const plan = planPurge(
      state([{ repo: 'app', n: 1, startedAgo: 200 * H }], { reads: { 1: { kind: 'unparseable', text: 'garbage' } } }),
      policy,
      NOW,
    );
    expect(plan.actions[0]?.reason).toBe('started 200h ago > 168h (startedat object time, its content unreadable)');
  });

  it('leaves an upload whose startedat vanished during the run for the next run', () => {
    const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 200 * H }], { reads: { 1: { kind: 'vanished' } } }), policy, NOW);
    expect(plan.actions).toEqual([]);
    expect(plan.skipped).toEqual([expect.objectContaining({ held: 'changed', target: `app/_uploads/${id(1)}` })]);
  });

  it('keeps a stale-by-startedat upload that was written to within the activity guard (a slow push in flight)', () => {
    const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 200 * H, writtenAgo: 10 * 60_000 }]), policy, NOW);
    expect(plan.actions).toEqual([]);
    expect(plan.skipped).toEqual([
      expect.objectContaining({ held: 'active', reason: 'started 200h ago but written 10m ago: a push in flight is kept' }),
    ]);
  });

  describe('activity: the newest of its objects, its multipart upload and the parts (ListParts)', () => {
    const iso = (agoMs: number): string => new Date(ago(agoMs)).toISOString();

    it('keeps an upload whose multipart upload received a part inside the guard, with the part time in the reason', () => {
      const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 200 * H, parts: [3 * H, 10 * 60_000, 2 * H] }]), policy, NOW);
      expect(plan.actions).toEqual([]);
      expect(plan.skipped).toEqual([
        expect.objectContaining({
          held: 'active',
          reason: `started 200h ago but part 2 of its multipart upload was uploaded 10m ago (${iso(10 * 60_000)}): a push in flight is kept`,
        }),
      ]);
    });

    it('keeps an upload whose multipart upload was initiated inside the guard (a new one per small PATCH)', () => {
      const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 200 * H, initiatedAgo: 20 * 60_000 }]), policy, NOW);
      expect(plan.skipped).toEqual([
        expect.objectContaining({
          held: 'active',
          reason: `started 200h ago but its multipart upload was initiated 20m ago (${iso(20 * 60_000)}): a push in flight is kept`,
        }),
      ]);
    });

    it('plans it once every part is older than the guard, and records the newest activity for the re-check', () => {
      const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 200 * H, parts: [150 * H, 61 * 60_000] }]), policy, NOW);
      expect(plan.actions).toEqual([
        expect.objectContaining({
          target: `app/_uploads/${id(1)}`,
          reason: 'started 200h ago > 168h (startedat object time)',
          lastActivityAt: iso(61 * 60_000),
        }),
      ]);
    });

    it('never plans an upload whose parts were not read', () => {
      const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 200 * H, parts: 'unread' }]), policy, NOW);
      expect(plan.actions).toEqual([]);
      expect(plan.skipped).toEqual([
        expect.objectContaining({
          held: 'unchecked',
          reason: "its multipart upload's parts were not read (ListParts): kept until a run reads them",
        }),
      ]);
    });

    it('a multipart upload gone since the listing (completed or aborted) adds no activity', () => {
      const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 200 * H, parts: 'gone' }]), policy, NOW);
      expect(targets(plan.actions)).toEqual([`app/_uploads/${id(1)}`]);
    });

    it('keeps an orphan multipart upload that is still receiving parts', () => {
      const orphan = {
        key: `docker/registry/v2/repositories/app/_uploads/${id(5)}/data`,
        multipartUploadId: 'orphan',
        initiated: ago(200 * H),
      };
      const s = withParts(state([], { extraMultipart: [orphan] }), () => ({
        kind: 'read',
        count: 4,
        bytes: 4,
        newest: { partNumber: 4, at: ago(5 * 60_000) },
      }));
      const plan = planPurge(s, policy, NOW);
      expect(plan.actions).toEqual([]);
      expect(plan.skipped).toEqual([
        expect.objectContaining({
          type: 'abort-multipart-upload',
          held: 'active',
          reason: expect.stringContaining('part 4 of its multipart upload was uploaded 5m ago'),
        }),
      ]);
    });

    it('keeps an old orphan multipart upload while another one on the same data key is fresh (found by the property test)', () => {
      const key = `docker/registry/v2/repositories/localhost:5000/app/_uploads/${id(4)}/data`;
      const old = { key, multipartUploadId: 'old', initiated: ago(2 * H) };
      const fresh = { key, multipartUploadId: 'fresh', initiated: ago(-60_000) };
      const s = withParts(state([], { extraMultipart: [fresh, old] }), () => ({ kind: 'read', count: 0, bytes: 0 }));
      const plan = planPurge(s, { ...policy, maxAgeMs: H, maxDeletes: 1 }, NOW);
      expect(plan.actions).toEqual([]);
      expect(plan.skipped).toEqual([expect.objectContaining({ type: 'abort-multipart-upload', held: 'active' })]);
    });

    it('the activity guard is never shorter than 1 h, whatever age the plan is given', () => {
      const plan = planPurge(
        state([{ repo: 'app', n: 1, startedAgo: 2 * H, writtenAgo: 45 * 60_000 }]),
        { ...policy, maxAgeMs: 30 * 60_000 },
        NOW,
      );
      expect(plan.actions).toEqual([]);
      expect(plan.skipped).toEqual([
        expect.objectContaining({ held: 'active', reason: 'started 2h ago but written 45m ago: a push in flight is kept' }),
      ]);
    });

    it('a time in the future (clock skew) counts as activity now', () => {
      const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 200 * H, parts: [-10 * 60_000] }]), policy, NOW);
      expect(plan.skipped).toEqual([expect.objectContaining({ held: 'active' })]);
    });
  });

  it('never plans keys outside an upload directory: blobs, _layers, _manifests, look-alikes, stray _uploads keys, other roots', () => {
    const old = [
      `docker/registry/v2/blobs/sha256/ab/${'ab'.repeat(32)}/data`,
      `docker/registry/v2/repositories/app/_layers/sha256/${'cd'.repeat(32)}/link`,
      `docker/registry/v2/repositories/app/_layers/_uploads/${id(7)}/data`,
      `docker/registry/v2/repositories/app/_manifests/revisions/_uploads/${id(8)}/startedat`,
      'docker/registry/v2/repositories/app/_uploads/',
      'docker/registry/v2/repositories/app/_uploads/not-a-uuid/startedat',
      `docker/registry/v2/repositories/App/_uploads/${id(9)}/startedat`,
      `docker/registry/v2/repositories/_uploads/${id(10)}/startedat`,
      `elsewhere/docker/registry/v2/repositories/app/_uploads/${id(11)}/startedat`,
    ];
    const extraMultipart = [
      {
        key: `docker/registry/v2/repositories/app/_layers/_uploads/${id(7)}/data`,
        multipartUploadId: 'look-alike',
        initiated: ago(1000 * H),
      },
      { key: `docker/registry/v2/blobs/sha256/ab/${'ab'.repeat(32)}/data`, multipartUploadId: 'blob', initiated: ago(1000 * H) },
    ];
    const s = state([], { extraKeys: old, extraMultipart });
    expect(s.uploads).toEqual([]);
    expect(planPurge(s, policy, NOW)).toEqual({ actions: [], skipped: [] });
    const counts = collectUploads(
      old.map((key) => ({ key, size: 0, lastModified: 0 })),
      extraMultipart,
      '',
    );
    expect(counts).toMatchObject({ strayUploadKeys: 2, folderKeys: 1, foreignKeys: 4, foreignMultipartUploads: 2 });
  });

  it('plans only under the registry root', () => {
    const s = state([{ repo: 'app', n: 1, startedAgo: 200 * H }], {
      root: 'fleet/a',
      extraKeys: [
        `docker/registry/v2/repositories/app/_uploads/${id(2)}/startedat`,
        `fleet/b/docker/registry/v2/repositories/app/_uploads/${id(3)}/startedat`,
      ],
    });
    const plan = planPurge(s, policy, NOW);
    expect(targets(plan.actions)).toEqual([`app/_uploads/${id(1)}`]);
    expect(objectKeysOf(plan.actions[0] as PurgeAction, 'fleet/a')[0]).toMatch(
      /^fleet\/a\/docker\/registry\/v2\/repositories\/app\/_uploads\//,
    );
    expect(dataKeyOf(plan.actions[0] as PurgeAction, 'fleet/a')).toBe(`fleet/a/docker/registry/v2/repositories/app/_uploads/${id(1)}/data`);
  });

  it('aborts a multipart upload with no directory once its Initiated time is past the max age', () => {
    const extraMultipart = [
      { key: `docker/registry/v2/repositories/app/_uploads/${id(5)}/data`, multipartUploadId: 'old', initiated: ago(200 * H) },
      { key: `docker/registry/v2/repositories/app/_uploads/${id(6)}/data`, multipartUploadId: 'new', initiated: ago(H) },
    ];
    const plan = planPurge(state([], { extraMultipart }), policy, NOW);
    expect(plan.actions).toEqual([
      {
        type: 'abort-multipart-upload',
        target: `app/_uploads/${id(5)}/data`,
        reason: 'multipart upload initiated 200h ago > 168h, no upload directory left',
        repository: 'app',
        uploadId: id(5),
        multipartUploadId: 'old',
        ageMs: 200 * H,
        lastActivityAt: new Date(ago(200 * H)).toISOString(),
      },
    ]);
  });

  describe('MAX_DELETES_PER_RUN (objects deleted + multipart uploads aborted)', () => {
    const uploads = [
      { repo: 'app', n: 1, startedAgo: 300 * H }, // 3 deletions: 2 objects + 1 abort
      { repo: 'app', n: 2, startedAgo: 500 * H }, // 3
      { repo: 'app', n: 3, writtenAgo: 400 * H }, // 1: a cancelled leftover
    ];
    it('takes the oldest first and defers the rest to the next run', () => {
      const plan = planPurge(state(uploads), { ...policy, maxDeletes: 4 }, NOW);
      expect(targets(plan.actions)).toEqual([`app/_uploads/${id(2)}`, `app/_uploads/${id(3)}`]);
      expect(plan.skipped).toEqual([
        expect.objectContaining({
          target: `app/_uploads/${id(1)}`,
          held: 'limit',
          reason: 'deferred: MAX_DELETES_PER_RUN=4 reached (the next run continues)',
        }),
      ]);
    });
    it('says when one upload alone needs more than the limit', () => {
      const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 300 * H, offsets: [0, 1, 2, 3] }]), { ...policy, maxDeletes: 3 }, NOW);
      expect(plan.actions).toEqual([]);
      expect(plan.skipped[0]).toMatchObject({
        held: 'too-large',
        reason: 'needs 6 deletions, more than MAX_DELETES_PER_RUN=3: raise it to purge this upload',
      });
    });
    it('plans everything when the limit allows', () => {
      expect(planPurge(state(uploads), { ...policy, maxDeletes: 7 }, NOW).actions).toHaveLength(3);
    });
  });

  it('is deterministic and does not depend on the input order', () => {
    const specs = [
      { repo: 'a', n: 1, startedAgo: 300 * H },
      { repo: 'b', n: 2, startedAgo: 300 * H },
      { repo: 'c', n: 3, startedAgo: 400 * H },
    ];
    expect(targets(planPurge(state(specs), policy, NOW).actions)).toEqual(
      targets(planPurge(state([...specs].reverse()), policy, NOW).actions),
    );
  });
});

describe('mustReadStartedAt', () => {
  it('reads only near the boundary', () => {
    const now = NOW.getTime();
    expect(mustReadStartedAt(now - MAX_AGE, MAX_AGE, 5 * 60_000, now)).toBe(true);
    expect(mustReadStartedAt(now - MAX_AGE - 5 * 60_000, MAX_AGE, 5 * 60_000, now)).toBe(true);
    expect(mustReadStartedAt(now - MAX_AGE - 5 * 60_000 - 1, MAX_AGE, 5 * 60_000, now)).toBe(false);
    expect(mustReadStartedAt(now - H, MAX_AGE, 5 * 60_000, now)).toBe(false);
  });
});

// ------------------------------------------------------------------------------------------------
// Property: whatever the layout, every key a plan names is inside a stale upload directory, no committed key
// (blob, layer link, manifest) is ever planned, and nothing with activity inside the guard is.

const UPLOAD_DIR =
  /^(.*)docker\/registry\/v2\/repositories\/(.+)\/_uploads\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/(.*)$/;
const GUARD = H;

const arbRoot = fc.constantFrom('', 'fleet/a', 'r');
const arbName = fc.constantFrom(
  'app',
  'library/nginx',
  'org/team/app',
  'my_uploads',
  'team/x_uploads',
  'x_uploads',
  'a.b-c__d/e',
  'App',
  'a//b',
  '_uploads',
  'ü/app',
  'with space',
  'a%2Fb',
  'localhost:5000/app',
);
const arbSection = fc.constantFrom(
  '_uploads',
  '_uploads',
  '_uploads',
  '_layers',
  '_manifests',
  '_layers/_uploads',
  'x_uploads',
  '_uploadsx',
);
const arbId = fc.oneof(fc.integer({ min: 0, max: 4 }).map(id), fc.constantFrom('not-a-uuid', id(1).toUpperCase(), ''));
const arbRest = fc.constantFrom('startedat', 'hashstates/sha256/0', 'hashstates/sha256/5242880', 'data', '', 'link', 'a/');
const arbPrefix = fc.constantFrom(...Array<string>(6).fill('docker/registry/v2/repositories/'), 'other/docker/registry/v2/repositories/');
/** Keys mostly under the run's root, some under another root. */
const arbKeyUnder = (root: string) =>
  fc
    .tuple(fc.constantFrom(root, root, root, root, 'fleet/a', ''), arbPrefix, arbName, arbSection, arbId, arbRest)
    .map(([r, prefix, name, section, uid, rest]) => `${r ? `${r}/` : ''}${prefix}${name}/${section}/${uid}/${rest}`);
/** Keys the registry has committed: blobs, layer links, manifest revisions and tags. They must never be planned. */
const arbCommittedKey = (root: string) =>
  fc.tuple(arbName, fc.integer({ min: 0, max: 3 }), fc.constantFrom('blob', 'layer', 'revision', 'tag')).map(([name, n, kind]) => {
    const v2 = `${root ? `${root}/` : ''}docker/registry/v2/`;
    const hex = n.toString(16).padStart(64, 'a');
    if (kind === 'blob') return `${v2}blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
    if (kind === 'layer') return `${v2}repositories/${name}/_layers/sha256/${hex}/link`;
    if (kind === 'revision') return `${v2}repositories/${name}/_manifests/revisions/sha256/${hex}/link`;
    return `${v2}repositories/${name}/_manifests/tags/t${n}/current/link`;
  });
/** Ages in ms: hours up to 400, clustered around the 1 h guard, and a few in the future (clock skew). */
const arbAge = fc.oneof(
  fc.integer({ min: 0, max: 400 }).map((h) => h * H),
  fc.integer({ min: 40, max: 80 }).map((m) => m * 60_000),
  fc.integer({ min: -120, max: -1 }).map((m) => m * 60_000),
);
/** ListParts' answer: not read, gone, or 0-3 parts at generated ages. */
const arbParts: fc.Arbitrary<'unread' | 'gone' | number[]> = fc.oneof(
  { weight: 1, arbitrary: fc.constant('unread' as const) },
  { weight: 1, arbitrary: fc.constant('gone' as const) },
  { weight: 6, arbitrary: fc.array(arbAge, { maxLength: 3 }) },
);

/**
 * One upload as the registry leaves it (startedat unless cancelled, hash states, an open multipart upload on its
 * data key with parts), so most layouts hold real candidates, not only noise. Ages are independent: skew included.
 */
const arbUpload = (root: string) =>
  fc
    .record({
      name: fc.constantFrom('app', 'library/nginx', 'org/team/app', 'team/x_uploads', 'a.b-c__d/e', 'ü/app', 'localhost:5000/app'),
      n: fc.integer({ min: 0, max: 4 }),
      startedAgo: fc.option(arbAge, { nil: undefined }),
      // None and no startedat: only the multipart upload is left (an orphan).
      written: fc.array(arbAge, { maxLength: 2 }),
      folderKey: fc.boolean(),
      mpu: fc.option(fc.tuple(arbAge, arbParts), { nil: undefined }),
    })
    .map(({ name, n, startedAgo, written, folderKey, mpu }) => {
      const dir = `${root ? `${root}/` : ''}docker/registry/v2/repositories/${name}/_uploads/${id(n)}/`;
      const keys: [string, number][] = written.map((age, i) => [`${dir}hashstates/sha256/${i * 5_242_880}`, age]);
      if (startedAgo !== undefined) keys.push([`${dir}startedat`, startedAgo]);
      if (folderKey && keys.length > 0) keys.push([dir, startedAgo ?? 0]);
      const mpus: [string, number, 'unread' | 'gone' | number[]][] = mpu ? [[`${dir}data`, mpu[0], mpu[1]]] : [];
      return { keys, mpus };
    });

interface Oracle {
  plannedDeletes: number;
  plannedAborts: number;
  keptByParts: number;
}

/** Checks one generated layout's plan against independent oracles; counts what it saw (non-vacuity). */
function checkLayout(
  root: string,
  keys: readonly (readonly [string, number])[],
  committed: readonly string[],
  mpus: readonly (readonly [string, number, 'unread' | 'gone' | number[]])[],
  maxAgeMs: number,
  maxDeletes: number,
  seen: Oracle,
): void {
  const objects = [
    ...keys.map(([key, age]) => ({ key, size: 1, lastModified: ago(age) })),
    ...committed.map((key) => ({ key, size: 1, lastModified: ago(1000 * H) })),
  ];
  const multipart = mpus.map(([key, age], i) => ({ key, multipartUploadId: `m${i}`, initiated: ago(age) }));
  const partsOf = new Map(mpus.map(([, , parts], i) => [`m${i}`, parts]));
  const s = withParts(collectUploads(objects, multipart, root), (m) => partsRead(partsOf.get(m.multipartUploadId)));
  const plan = planPurge(s, { maxAgeMs, maxDeletes }, NOW);
  const listed = new Map(objects.map((o) => [o.key, o]));
  const committedKeys = new Set(committed);
  const rootPrefix = root ? `${root}/` : '';
  let deletions = 0;
  for (const a of plan.skipped) if (a.held === 'active' && a.reason.includes(' part ')) seen.keptByParts += 1;
  for (const action of plan.actions) {
    if (action.type === 'delete-upload') seen.plannedDeletes += 1;
    else seen.plannedAborts += 1;
    const keysOf = objectKeysOf(action, root);
    const dataKey = dataKeyOf(action, root);
    deletions += keysOf.length + (action.type === 'delete-upload' ? action.multipartUploadIds.length : 1);
    for (const key of [...keysOf, dataKey]) {
      expect(committedKeys.has(key), key).toBe(false);
      const m = UPLOAD_DIR.exec(key);
      expect(m, key).not.toBeNull();
      expect(m?.[1]).toBe(rootPrefix);
      expect((m?.[2] ?? '').split('/').some((c) => c.startsWith('_') || c === '')).toBe(false);
    }
    for (const key of keysOf) expect(listed.has(key), key).toBe(true);
    // Independent age oracle: startedat's time, else the newest object of the directory.
    const dirPrefix = `${rootPrefix}docker/registry/v2/repositories/${action.repository}/_uploads/${action.uploadId}/`;
    const dir = objects.filter((o) => parseUploadKey(o.key, root) && o.key.startsWith(dirPrefix));
    const onData = multipart.filter((m) => m.key === dataKey);
    // Independent activity oracle: every part was read, and nothing (object, multipart upload, part) moved inside the guard.
    const partTimes = onData.flatMap((m) => {
      const p = partsOf.get(m.multipartUploadId);
      expect(p, `parts of ${m.multipartUploadId} were read`).not.toBe('unread');
      return Array.isArray(p) ? p.map(ago) : [];
    });
    const newest = Math.max(...dir.map((o) => o.lastModified), ...onData.map((m) => m.initiated), ...partTimes);
    expect(NOW.getTime() - newest, `${action.target} is idle past the guard`).toBeGreaterThan(GUARD);
    expect(action.lastActivityAt).toBe(new Date(newest).toISOString());
    if (action.type === 'delete-upload') {
      expect(dir.map((o) => o.key).sort()).toEqual([...keysOf].sort());
      const started = dir.find((o) => o.key.endsWith(`/${action.uploadId}/startedat`));
      const since = started ? started.lastModified : Math.max(...dir.map((o) => o.lastModified));
      expect(NOW.getTime() - since).toBeGreaterThan(maxAgeMs);
      expect([...action.multipartUploadIds].sort()).toEqual(onData.map((m) => m.multipartUploadId).sort());
    } else {
      expect(dir).toEqual([]);
      const m = multipart.find((x) => x.multipartUploadId === action.multipartUploadId);
      expect(m?.key).toBe(dataKey);
      expect(NOW.getTime() - (m?.initiated ?? 0)).toBeGreaterThan(maxAgeMs);
    }
  }
  expect(deletions).toBeLessThanOrEqual(maxDeletes);
}

describe('property: nothing committed, outside a stale upload directory, or active is ever planned', () => {
  it('holds for 10 000 generated layouts', () => {
    const seen: Oracle = { plannedDeletes: 0, plannedAborts: 0, keptByParts: 0 };
    fc.assert(
      fc.property(
        arbRoot.chain((root) =>
          fc.tuple(
            fc.constant(root),
            fc.array(arbUpload(root), { maxLength: 4 }),
            fc.array(fc.tuple(arbKeyUnder(root), arbAge), { maxLength: 10 }),
            fc.uniqueArray(arbCommittedKey(root), { maxLength: 4 }),
            fc.array(fc.tuple(arbKeyUnder(root), arbAge, arbParts), { maxLength: 3 }),
          ),
        ),
        fc.integer({ min: 1, max: 300 }).map((h) => h * H),
        fc.integer({ min: 1, max: 50 }),
        ([root, uploads, noise, committed, noiseMpus], maxAgeMs, maxDeletes) => {
          // One time per key (the first), as S3 lists it.
          const keys = [...new Map([...uploads.flatMap((u) => u.keys), ...noise].reverse()).entries()].reverse();
          const mpus = [...uploads.flatMap((u) => u.mpus), ...noiseMpus];
          checkLayout(root, keys, committed, mpus, maxAgeMs, maxDeletes, seen);
        },
      ),
      { numRuns: 10_000 },
    );
    // The property is not vacuous: the generator produces stale directories, orphans and parts that keep uploads.
    expect(seen.plannedDeletes).toBeGreaterThan(1_000);
    expect(seen.plannedAborts).toBeGreaterThan(50);
    expect(seen.keptByParts).toBeGreaterThan(300);
  });
});

// ------------------------------------------------------------------------------------------------
// The manual payload.

describe('manual payload', () => {
  it('parses every sample in events/purge-stale-uploads/', () => {
    const files = readdirSync(join(EVENTS_DIR, 'purge-stale-uploads'));
    expect(files.sort()).toEqual(['manual-dry-run.json', 'manual-max-age.json', 'manual-repository.json']);
    for (const file of files) expect(toTrigger(loadEvent(join('purge-stale-uploads', file)), job.options).kind).toBe('manual');
    expect(toTrigger(loadEvent('purge-stale-uploads/manual-max-age.json'), job.options)).toMatchObject({ options: { maxAge: 24 * H } });
    expect(toTrigger(loadEvent('purge-stale-uploads/manual-repository.json'), job.options)).toMatchObject({
      options: { repository: 'library/nginx' },
    });
    expect(toTrigger(loadEvent('purge-stale-uploads/manual-dry-run.json'), job.options)).toMatchObject({ dryRun: true });
  });

  it.each([
    [{ force: true }, 'unknown key "force"'],
    [{ maxAge: '-1h' }, 'maxAge: expected a duration like 24h, 90m or 7d, at least 1h'],
    [{ maxAge: '59m' }, 'maxAge: expected a duration like 24h, 90m or 7d, at least 1h'],
    [{ maxAge: 3600 }, 'maxAge: expected a duration like 24h, 90m or 7d, at least 1h'],
    [{ maxAge: 'soon' }, 'maxAge: expected a duration'],
    [
      { maxAge: '99999999999999999999h' },
      'maxAge: expected a duration like 24h, 90m or 7d, at least 1h and at most 365d (got "99999999999999999999h")',
    ],
    [{ maxAge: '366d' }, 'maxAge: expected a duration like 24h, 90m or 7d, at least 1h and at most 365d (got "366d")'],
    [{ maxAge: '59m' }, '(got "59m")'],
    [{ repository: '../other' }, 'repository: expected a repository name inside the registry root (no . or .. components)'],
    [{ repository: 'a/../../b' }, 'repository: expected a repository name inside the registry root'],
    [{ repository: '/library/nginx' }, 'repository: expected a repository name without a leading /'],
    [{ repository: 'Library/Nginx!' }, 'repository: expected a repository name such as library/nginx'],
    [{ repository: 'app/_uploads' }, 'repository: expected a repository name such as library/nginx'],
    [{ repository: 'x'.repeat(300) }, 'repository: expected a repository name of at most 255 characters'],
  ])('rejects %j', (payload, message) => {
    expect(() => toTrigger(payload, job.options)).toThrow(ValidationError);
    expect(() => toTrigger(payload, job.options)).toThrow(message);
  });

  it('accepts the floor itself and longer durations', () => {
    expect(toTrigger({ maxAge: '1h' }, job.options)).toMatchObject({ options: { maxAge: H } });
    expect(toTrigger({ maxAge: '30d', repository: 'org/team/app' }, job.options)).toMatchObject({
      options: { maxAge: 720 * H, repository: 'org/team/app' },
    });
  });
});
