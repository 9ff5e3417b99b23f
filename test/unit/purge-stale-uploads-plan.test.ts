import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.ts';
import { parseUploadKey } from '../../shared/registry-layout.ts';
import { toTrigger } from '../../shared/triggers.ts';
import { job } from '../../functions/purge-stale-uploads/job.ts';
import { collectUploads, mustReadStartedAt, type ListedMultipartUpload, type ListedObject, type StartedAtRead, type UploadsState } from '../../functions/purge-stale-uploads/model.ts';
import { dataKeyOf, objectKeysOf, planPurge, type PurgeAction } from '../../functions/purge-stale-uploads/plan.ts';
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
}

/** The keys (and multipart upload) the registry leaves for one upload. */
function upload(u: UploadSpec): { objects: ListedObject[]; multipart: ListedMultipartUpload[] } {
  const dir = `${V2(u.root)}repositories/${u.repo}/_uploads/${id(u.n)}/`;
  const written = ago(u.writtenAgo ?? u.startedAgo ?? 0);
  const objects: ListedObject[] = (u.offsets ?? [0]).map((o) => ({ key: `${dir}hashstates/sha256/${o}`, size: 100, lastModified: written }));
  if (u.startedAgo !== undefined) objects.push({ key: `${dir}startedat`, size: 20, lastModified: ago(u.startedAgo) });
  const multipart = (u.multipart ?? u.startedAgo !== undefined) ? [{ key: `${dir}data`, multipartUploadId: `mpu-${u.n}`, initiated: ago(u.startedAgo ?? 0) }] : [];
  return { objects, multipart };
}

function state(
  uploads: UploadSpec[],
  { extraKeys = [], extraMultipart = [], root = '', reads = {} }: { extraKeys?: string[]; extraMultipart?: ListedMultipartUpload[]; root?: string; reads?: Record<number, StartedAtRead> } = {},
): Pick<UploadsState, 'uploads' | 'orphanMultipartUploads'> {
  const parts = uploads.map((u) => upload({ ...u, root }));
  const objects = [...parts.flatMap((p) => p.objects), ...extraKeys.map((key) => ({ key, size: 1, lastModified: ago(1000 * H) }))];
  const collected = collectUploads(objects, [...parts.flatMap((p) => p.multipart), ...extraMultipart], root);
  return {
    ...collected,
    uploads: collected.uploads.map((u) => {
      const n = parseInt(u.uploadId.slice(-12), 16);
      return reads[n] ? { ...u, startedAt: reads[n] } : u;
    }),
  };
}

const targets = (actions: readonly PurgeAction[]): string[] => actions.map((a) => a.target);

describe('planPurge', () => {
  it('plans stale uploads (abort + delete every object), leaves fresh ones', () => {
    const plan = planPurge(state([
      { repo: 'library/nginx', n: 1, startedAgo: 200 * H, offsets: [0, 5_000] },
      { repo: 'library/nginx', n: 2, startedAgo: 10 * H },
    ]), policy, NOW);
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
    const plan = planPurge(state([{ repo, n: 1, startedAgo: 200 * H }, { repo, n: 2, startedAgo: H }]), policy, NOW);
    expect(targets(plan.actions)).toEqual([`${repo}/_uploads/${id(1)}`]);
  });

  describe('the age boundary (strict, as distribution: exactly max age is fresh)', () => {
    it.each([
      ['exactly at the boundary', MAX_AGE, false],
      ['1 ms past it', MAX_AGE + 1, true],
      ['1 ms before it', MAX_AGE - 1, false],
    ])('startedat content %s', (_title, age, stale) => {
      const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: MAX_AGE + 2 * H }], { reads: { 1: { kind: 'time', at: ago(age) } } }), policy, NOW);
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
    expect(plan.actions).toEqual([expect.objectContaining({ objects: ['hashstates/sha256/0'], multipartUploadIds: [], reason: 'last written 300h ago > 168h (no startedat: a cancelled-upload leftover)' })]);
  });

  it('trusts the startedat content over the object time when it was read', () => {
    const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 10 * H, writtenAgo: 5 * H }], { reads: { 1: { kind: 'time', at: ago(400 * H) } } }), policy, NOW);
    expect(plan.actions[0]?.reason).toBe('started 400h ago > 168h (startedat)');
  });

  it('falls back to the startedat object time when the content is unreadable', () => {
    const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 200 * H }], { reads: { 1: { kind: 'unparseable', text: 'garbage' } } }), policy, NOW);
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
    expect(plan.skipped).toEqual([expect.objectContaining({ held: 'active', reason: 'started 200h ago but written 10m ago: a push in flight is kept' })]);
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
      { key: `docker/registry/v2/repositories/app/_layers/_uploads/${id(7)}/data`, multipartUploadId: 'look-alike', initiated: ago(1000 * H) },
      { key: `docker/registry/v2/blobs/sha256/ab/${'ab'.repeat(32)}/data`, multipartUploadId: 'blob', initiated: ago(1000 * H) },
    ];
    const s = state([], { extraKeys: old, extraMultipart });
    expect(s.uploads).toEqual([]);
    expect(planPurge(s, policy, NOW)).toEqual({ actions: [], skipped: [] });
    const counts = collectUploads(old.map((key) => ({ key, size: 0, lastModified: 0 })), extraMultipart, '');
    expect(counts).toMatchObject({ strayUploadKeys: 2, folderKeys: 1, foreignKeys: 4, foreignMultipartUploads: 2 });
  });

  it('plans only under the registry root', () => {
    const s = state([{ repo: 'app', n: 1, startedAgo: 200 * H }], {
      root: 'fleet/a',
      extraKeys: [`docker/registry/v2/repositories/app/_uploads/${id(2)}/startedat`, `fleet/b/docker/registry/v2/repositories/app/_uploads/${id(3)}/startedat`],
    });
    const plan = planPurge(s, policy, NOW);
    expect(targets(plan.actions)).toEqual([`app/_uploads/${id(1)}`]);
    expect(objectKeysOf(plan.actions[0] as PurgeAction, 'fleet/a')[0]).toMatch(/^fleet\/a\/docker\/registry\/v2\/repositories\/app\/_uploads\//);
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
      expect(plan.skipped).toEqual([expect.objectContaining({ target: `app/_uploads/${id(1)}`, held: 'limit', reason: 'deferred: MAX_DELETES_PER_RUN=4 reached (the next run continues)' })]);
    });
    it('says when one upload alone needs more than the limit', () => {
      const plan = planPurge(state([{ repo: 'app', n: 1, startedAgo: 300 * H, offsets: [0, 1, 2, 3] }]), { ...policy, maxDeletes: 3 }, NOW);
      expect(plan.actions).toEqual([]);
      expect(plan.skipped[0]).toMatchObject({ held: 'too-large', reason: 'needs 6 deletions, more than MAX_DELETES_PER_RUN=3: raise it to purge this upload' });
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
    expect(targets(planPurge(state(specs), policy, NOW).actions)).toEqual(targets(planPurge(state([...specs].reverse()), policy, NOW).actions));
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
// Property: whatever the layout, every key a plan names is inside a stale upload directory.

const UPLOAD_DIR = /^(.*)docker\/registry\/v2\/repositories\/(.+)\/_uploads\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/(.*)$/;

const arbRoot = fc.constantFrom('', 'fleet/a', 'r');
const arbName = fc.constantFrom('app', 'library/nginx', 'org/team/app', 'my_uploads', 'team/x_uploads', 'App', 'a//b', '_uploads', 'localhost:5000/app');
const arbSection = fc.constantFrom('_uploads', '_uploads', '_uploads', '_layers', '_manifests', '_layers/_uploads', 'x_uploads', '_uploadsx');
const arbId = fc.oneof(fc.integer({ min: 0, max: 5 }).map(id), fc.constantFrom('not-a-uuid', id(1).toUpperCase(), ''));
const arbRest = fc.constantFrom('startedat', 'hashstates/sha256/0', 'hashstates/sha256/4096', 'data', '', 'link');
const arbPrefix = fc.constantFrom(...Array<string>(6).fill('docker/registry/v2/repositories/'), 'docker/registry/v2/blobs/', 'other/docker/registry/v2/repositories/');
/** Keys mostly under the run's root, some under another root. */
const arbKeyUnder = (root: string) =>
  fc
    .tuple(fc.constantFrom(root, root, root, root, 'fleet/a', ''), arbPrefix, arbName, arbSection, arbId, arbRest)
    .map(([r, prefix, name, section, uid, rest]) => `${r ? `${r}/` : ''}${prefix}${name}/${section}/${uid}/${rest}`);
const arbAge = fc.integer({ min: 0, max: 400 }).map((h) => h * H);

describe('property: nothing outside a stale upload directory is ever planned', () => {
  it('holds for generated layouts', () => {
    let plannedDeletes = 0;
    let plannedAborts = 0;
    fc.assert(
      fc.property(
        arbRoot.chain((root) =>
          fc.tuple(
            fc.constant(root),
            fc.uniqueArray(fc.tuple(arbKeyUnder(root), arbAge), { selector: ([k]) => k, maxLength: 60 }),
            fc.array(fc.tuple(arbKeyUnder(root), arbAge), { maxLength: 10 }),
          ),
        ),
        fc.integer({ min: 1, max: 300 }).map((h) => h * H),
        fc.integer({ min: 1, max: 50 }),
        ([root, keys, mpus], maxAgeMs, maxDeletes) => {
          const objects = keys.map(([key, age]) => ({ key, size: 1, lastModified: ago(age) }));
          const multipart = mpus.map(([key, age], i) => ({ key, multipartUploadId: `m${i}`, initiated: ago(age) }));
          const s = collectUploads(objects, multipart, root);
          const plan = planPurge(s, { maxAgeMs, maxDeletes }, NOW);
          const listed = new Map(objects.map((o) => [o.key, o]));
          const rootPrefix = root ? `${root}/` : '';
          let deletions = 0;
          for (const action of plan.actions) {
            if (action.type === 'delete-upload') plannedDeletes += 1;
            else plannedAborts += 1;
            const keysOf = objectKeysOf(action, root);
            deletions += keysOf.length + (action.type === 'delete-upload' ? action.multipartUploadIds.length : 1);
            for (const key of [...keysOf, dataKeyOf(action, root)]) {
              const m = UPLOAD_DIR.exec(key);
              expect(m, key).not.toBeNull();
              expect(m?.[1]).toBe(rootPrefix);
              expect((m?.[2] ?? '').split('/').some((c) => c.startsWith('_') || c === '')).toBe(false);
            }
            for (const key of keysOf) expect(listed.has(key), key).toBe(true);
            // Independent age oracle: startedat's time, else the newest object of the directory.
            const dir = objects.filter((o) => parseUploadKey(o.key, root) && o.key.startsWith(`${rootPrefix}docker/registry/v2/repositories/${action.repository}/_uploads/${action.uploadId}/`));
            if (action.type === 'delete-upload') {
              expect(dir.map((o) => o.key).sort()).toEqual([...keysOf].sort());
              const started = dir.find((o) => o.key.endsWith(`/${action.uploadId}/startedat`));
              const since = started ? started.lastModified : Math.max(...dir.map((o) => o.lastModified));
              expect(NOW.getTime() - since).toBeGreaterThan(maxAgeMs);
              for (const mpuId of action.multipartUploadIds) expect(multipart.find((m) => m.multipartUploadId === mpuId)?.key).toBe(dataKeyOf(action, root));
            } else {
              expect(dir).toEqual([]);
              const m = multipart.find((x) => x.multipartUploadId === action.multipartUploadId);
              expect(m?.key).toBe(dataKeyOf(action, root));
              expect(NOW.getTime() - (m?.initiated ?? 0)).toBeGreaterThan(maxAgeMs);
            }
          }
          expect(deletions).toBeLessThanOrEqual(maxDeletes);
        },
      ),
      { numRuns: 500 },
    );
    // The property is not vacuous: the generator produces stale directories and orphans that get planned.
    expect(plannedDeletes).toBeGreaterThan(100);
    expect(plannedAborts).toBeGreaterThan(10);
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
    expect(toTrigger(loadEvent('purge-stale-uploads/manual-repository.json'), job.options)).toMatchObject({ options: { repository: 'library/nginx' } });
    expect(toTrigger(loadEvent('purge-stale-uploads/manual-dry-run.json'), job.options)).toMatchObject({ dryRun: true });
  });

  it.each([
    [{ force: true }, 'unknown key "force"'],
    [{ maxAge: '-1h' }, 'maxAge: expected a duration like 24h, 90m or 7d, at least 1h'],
    [{ maxAge: '59m' }, 'maxAge: expected a duration like 24h, 90m or 7d, at least 1h'],
    [{ maxAge: 3600 }, 'maxAge: expected a duration like 24h, 90m or 7d, at least 1h'],
    [{ maxAge: 'soon' }, 'maxAge: expected a duration'],
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
    expect(toTrigger({ maxAge: '30d', repository: 'org/team/app' }, job.options)).toMatchObject({ options: { maxAge: 720 * H, repository: 'org/team/app' } });
  });
});
