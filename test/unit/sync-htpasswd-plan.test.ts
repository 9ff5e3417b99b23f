import { describe, expect, it } from 'vitest';
import { renderHtpasswd, sha256Hex } from '../../shared/htpasswd.ts';
import { testContext } from '../support/run-context.ts';
import { job } from '../../functions/sync-htpasswd/job.ts';
import type { FleetInstance, SyncPolicy, SyncState } from '../../functions/sync-htpasswd/model.ts';
import { InvalidUserSetError, plan } from '../../functions/sync-htpasswd/plan.ts';
import type { ResolvedUser } from '../../functions/sync-htpasswd/users.ts';

const HASH_A = '$2y$05$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu';
const HASH_B = '$2y$10$k7YoaXOeJN/8rieym6UNX.1sWAh5.TKGQLuSghROTdEPJ8ZdM/PI6';
const HASH_12 = '$2y$12$jUyOLutEeJn.8CC1Idap.e9mtSORklJE48b8cTuO9aCpz1fAPUhAK';
const PATH = '/registry/users/';

const user = (name: string, hash: string, cost = 5): ResolvedUser => ({
  user: name,
  parameter: `${PATH}${name}`,
  hash,
  cost,
  source: 'hash',
});
const USERS = [user('alice', HASH_A), user('bob', HASH_B, 10)];
const FILE = renderHtpasswd(USERS);
const SHA = sha256Hex(FILE);
const OLD_SHA = 'a'.repeat(64);
const NOW = new Date('2026-05-01T12:00:00.000Z');
const minutesAgo = (m: number): string => new Date(NOW.getTime() - m * 60_000).toISOString();
const policy = (over: Partial<SyncPolicy> = {}, forceDistribute = false): SyncPolicy => ({
  asgName: 'registry-asg',
  bucket: 'registry-bucket',
  objectKey: 'auth/htpasswd',
  allowEmptyUserSet: false,
  parameterPath: PATH,
  registrationGraceMs: 15 * 60_000,
  ...over,
  forceDistribute,
});

function state(over: Partial<Extract<SyncState, { kind: 'in-scope' }>> = {}): SyncState {
  return {
    kind: 'in-scope',
    parameters: 2,
    resolution: { users: USERS, problems: [] },
    published: { sha256: SHA, metadataSha256: SHA, users: 2 },
    instances: [],
    instancesNotInService: 0,
    driftChecked: true,
    ...over,
  };
}
const reported = (id: string, sha: string | null): FleetInstance => ({ instanceId: id, drift: { state: 'reported', sha256: sha } });
const JOINED = [
  'install-joined-instances',
  'registry-asg',
  `after publishing sha256 ${SHA.slice(0, 12)}: install on instances that joined the group during the run`,
];
const brief = (actions: readonly { type: string; target: string; reason: string }[]) => actions.map((a) => [a.type, a.target, a.reason]);

describe('plan', () => {
  it('does nothing when the file is published and every instance serves it', () => {
    const planned = plan(state({ instances: [reported('i-1', SHA), reported('i-2', SHA)] }), policy(), NOW);
    expect(planned.actions).toEqual([]);
    expect(brief(planned.skipped)).toEqual([
      ['install-htpasswd', 'i-1', `in sync (sha256 ${SHA.slice(0, 12)})`],
      ['install-htpasswd', 'i-2', `in sync (sha256 ${SHA.slice(0, 12)})`],
    ]);
  });

  it.each([
    ['no published file', undefined, 'no published file yet'],
    [
      'different content',
      { sha256: OLD_SHA, metadataSha256: OLD_SHA, users: 1 },
      `users changed (published sha256 aaaaaaaaaaaa, rendered ${SHA.slice(0, 12)})`,
    ],
    ['missing metadata', { sha256: SHA, metadataSha256: undefined, users: 2 }, 'the object lacks the right sha256 metadata'],
  ])('publishes when there is %s, carrying the content out of sight of the report', (_t, published, reason) => {
    const planned = plan(state({ published }), policy(), NOW);
    expect(brief(planned.actions)).toEqual([['publish-htpasswd', 's3://registry-bucket/auth/htpasswd', reason], JOINED]);
    const publish = planned.actions[0];
    expect(publish).toMatchObject({ sha256: SHA, users: 2, bytes: Buffer.byteLength(FILE) });
    expect(publish && 'content' in publish && publish.content).toBe(FILE);
    expect(Object.keys(publish ?? {})).not.toContain('content');
    expect(JSON.stringify(publish)).not.toContain(HASH_A);
  });

  it('installs only on drifted instances; skips instances SSM does not know yet only while they are new', () => {
    const planned = plan(
      state({
        published: { sha256: OLD_SHA, metadataSha256: OLD_SHA, users: 1 },
        instances: [
          reported('i-1', OLD_SHA),
          reported('i-2', SHA),
          reported('i-3', null),
          { instanceId: 'i-4', launchTime: minutesAgo(14), drift: { state: 'not-registered', reason: 'InvalidInstanceId' } },
          { instanceId: 'i-5', drift: { state: 'unknown', reason: 'Failed' } },
          { instanceId: 'i-6', launchTime: minutesAgo(15), drift: { state: 'not-registered', reason: 'InvalidInstanceId' } },
          { instanceId: 'i-7', drift: { state: 'not-registered', reason: 'InvocationDoesNotExist' } },
        ],
      }),
      policy(),
      NOW,
    );
    expect(brief(planned.actions)).toEqual([
      ['publish-htpasswd', 's3://registry-bucket/auth/htpasswd', expect.stringMatching(/users changed/)],
      ['install-htpasswd', 'i-1', `serves sha256 aaaaaaaaaaaa, want ${SHA.slice(0, 12)}`],
      ['install-htpasswd', 'i-3', `serves sha256 none, want ${SHA.slice(0, 12)}`],
      ['install-htpasswd', 'i-5', `drift check failed (Failed): installing sha256 ${SHA.slice(0, 12)}`],
      [
        'install-htpasswd',
        'i-6',
        `unknown to SSM (InvalidInstanceId) but launched 15m ago, past SSM_REGISTRATION_GRACE: trying to install sha256 ${SHA.slice(0, 12)}`,
      ],
      [
        'install-htpasswd',
        'i-7',
        `unknown to SSM (InvocationDoesNotExist) but launch time unknown, past SSM_REGISTRATION_GRACE: trying to install sha256 ${SHA.slice(0, 12)}`,
      ],
      JOINED,
    ]);
    expect(
      planned.actions.filter((a) => a.type === 'install-htpasswd').map((a) => [a.target, 'recentlyLaunched' in a && a.recentlyLaunched]),
    ).toEqual([
      ['i-1', false],
      ['i-3', false],
      ['i-5', false],
      ['i-6', false],
      ['i-7', false],
    ]);
    expect(planned.skipped.find((a) => a.target === 'i-4')).toMatchObject({ recentlyLaunched: true, launchTime: minutesAgo(14) });
    expect(brief(planned.skipped)).toEqual([
      ['install-htpasswd', 'i-2', expect.stringMatching(/^in sync/)],
      ['install-htpasswd', 'i-4', expect.stringMatching(/^not registered with SSM yet/)],
    ]);
    expect(planned.actions.every((a) => a.type !== 'install-htpasswd' || a.sha256 === SHA)).toBe(true);
  });

  it('a publish is followed by an install on instances that join meanwhile; without a publish there is nothing to re-read for', () => {
    const published = plan(state({ published: undefined, instances: [reported('i-1', null)] }), policy(), NOW);
    expect(published.actions.at(-1)).toEqual({ type: JOINED[0], target: JOINED[1], reason: JOINED[2], sha256: SHA });
    expect(plan(state({ instances: [reported('i-1', OLD_SHA)] }), policy(), NOW).actions.map((a) => a.type)).toEqual(['install-htpasswd']);
  });

  it('forceDistribute installs on every InService instance, in sync or not', () => {
    const planned = plan(state({ instances: [{ instanceId: 'i-1' }, { instanceId: 'i-2' }], driftChecked: false }), policy({}, true), NOW);
    expect(brief(planned.actions)).toEqual([
      ['install-htpasswd', 'i-1', 'forceDistribute'],
      ['install-htpasswd', 'i-2', 'forceDistribute'],
    ]);
  });

  it('refuses (throws, plans nothing) when any parameter is invalid, naming each one but no value', () => {
    const problems = [
      { parameter: '/registry/users/eve', problem: 'malformed bcrypt hash: cost 03 is outside 04–31' },
      { parameter: '/registry/users/a b', problem: 'user name contains whitespace' },
    ];
    const run = () => plan(state({ resolution: { users: USERS, problems } }), policy(), NOW);
    expect(run).toThrow(InvalidUserSetError);
    expect(run).toThrow(
      'refusing to publish: 2 invalid parameters under /registry/users/ (nothing was changed): /registry/users/eve: malformed bcrypt hash: cost 03 is outside 04–31; /registry/users/a b: user name contains whitespace',
    );
  });

  it('refuses an empty user set (a missing path) unless ALLOW_EMPTY_USER_SET', () => {
    const empty = state({ parameters: 0, resolution: { users: [], problems: [] } });
    expect(() => plan(empty, policy(), NOW)).toThrow(
      /refusing to publish an empty user set: no parameters under \/registry\/users\/ .*ALLOW_EMPTY_USER_SET=true/,
    );
    const planned = plan(empty, policy({ allowEmptyUserSet: true }), NOW);
    expect(planned.actions[0]).toMatchObject({ type: 'publish-htpasswd', sha256: sha256Hex(''), users: 0, bytes: 0 });
  });

  it('plans nothing for a parameter outside the path', () => {
    expect(plan({ kind: 'out-of-scope', parameter: '/registry/config/x' }, policy(), NOW)).toEqual({ actions: [], skipped: [] });
  });

  it('the summary sorts skipped installs by their held field, not by the wording of their reason', () => {
    const s = state({
      instances: [reported('i-1', SHA), { instanceId: 'i-2', launchTime: minutesAgo(1), drift: { state: 'not-registered', reason: 'x' } }],
    });
    const planned = plan(s, policy(), NOW);
    expect(planned.skipped.map((a) => [a.target, a.type === 'install-htpasswd' && a.held])).toEqual([
      ['i-1', 'in-sync'],
      ['i-2', 'not-registered'],
    ]);
    const reworded = { ...planned, skipped: planned.skipped.map((a) => ({ ...a, reason: 'reworded' })) };
    const applied = { ...reworded, actions: [reworded.skipped[1]!], skipped: [reworded.skipped[0]!] };
    const notRegistered = { status: 'skipped', reason: 'reworded too', held: 'not-registered' } as const;
    const cancelled = { status: 'skipped', reason: 'not registered, it says, but cancelled' } as const;
    expect(job.summarize(s, reworded, [], testContext()).details?.instances).toMatchObject({ inSync: ['i-1'], notRegistered: ['i-2'] });
    expect(job.summarize(s, applied, [notRegistered], testContext()).details?.instances).toMatchObject({ notRegistered: ['i-2'] });
    expect(job.summarize(s, applied, [cancelled], testContext()).details?.instances).toMatchObject({ notRun: ['i-2'] });
  });

  it('warns about costly hashes in the report', () => {
    const s = state({ resolution: { users: [...USERS, user('carol', HASH_12, 12)], problems: [] } });
    const summary = job.summarize(s, plan(s, policy(), NOW), [], testContext({ dryRun: true }));
    expect(summary.details?.warnings).toEqual([expect.stringMatching(/^carol: bcrypt cost 12 > 10: .*≈ 279 ms at 12/)]);
    expect(summary.details?.users).toEqual([
      { user: 'alice', parameter: '/registry/users/alice', cost: 5, source: 'hash' },
      { user: 'bob', parameter: '/registry/users/bob', cost: 10, source: 'hash' },
      { user: 'carol', parameter: '/registry/users/carol', cost: 12, source: 'hash' },
    ]);
  });
});
