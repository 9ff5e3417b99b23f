import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.ts';
import { parseHtpasswd, renderHtpasswd, sha256Hex } from '../../shared/htpasswd.ts';
import { toTrigger } from '../../shared/triggers.ts';
import { testContext } from '../support/run-context.ts';
import { installOutcome } from '../../functions/sync-htpasswd/apply.ts';
import { parseScriptOutput } from '../../functions/sync-htpasswd/script.ts';
import { loadSyncHtpasswdConfig } from '../../functions/sync-htpasswd/config.ts';
import { job } from '../../functions/sync-htpasswd/job.ts';
import type { FleetInstance, SyncState } from '../../functions/sync-htpasswd/observe.ts';
import { InvalidUserSetError, planSync, type SyncPolicy } from '../../functions/sync-htpasswd/plan.ts';
import { resolveUsers, userNameOf, type ResolvedUser, type UserParameter } from '../../functions/sync-htpasswd/users.ts';
import { EVENTS_DIR, loadEvent } from '../support/events.ts';

const HASH_A = '$2y$05$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu';
const HASH_B = '$2y$10$k7YoaXOeJN/8rieym6UNX.1sWAh5.TKGQLuSghROTdEPJ8ZdM/PI6';
const HASH_12 = '$2y$12$jUyOLutEeJn.8CC1Idap.e9mtSORklJE48b8cTuO9aCpz1fAPUhAK';
const PATH = '/registry/users/';
const param = (user: string, value: string, type = 'String'): UserParameter => ({ name: `${PATH}${user}`, type, value });
const COST = 4;

describe('resolveUsers (parameters → users)', () => {
  const resolve = (params: UserParameter[], published = new Map<string, string>()) => resolveUsers(params, { cost: COST, published });

  it('takes bcrypt hashes from String and SecureString parameters as they are', async () => {
    const r = await resolve([param('alice', HASH_A), param('bob', HASH_B, 'SecureString')]);
    expect(r.problems).toEqual([]);
    expect(r.users).toEqual([
      { user: 'alice', parameter: '/registry/users/alice', hash: HASH_A, cost: 5, source: 'hash' },
      { user: 'bob', parameter: '/registry/users/bob', hash: HASH_B, cost: 10, source: 'hash' },
    ]);
  });

  it('hashes a plaintext SecureString once; the next run reuses the published hash, so the file is stable', async () => {
    const params = [param('alice', 'correct horse battery', 'SecureString'), param('bob', HASH_A)];
    const first = await resolve(params);
    expect(first.users[0]).toMatchObject({ user: 'alice', cost: COST, source: 'password-hashed' });
    const hash = first.users[0]?.hash ?? '';
    expect(bcrypt.compareSync('correct horse battery', hash)).toBe(true);
    const file = renderHtpasswd(first.users);

    const second = await resolve(params, parseHtpasswd(file));
    expect(second.users[0]).toMatchObject({ source: 'password-reused', hash });
    expect(sha256Hex(renderHtpasswd(second.users))).toBe(sha256Hex(file));
  });

  it('rehashes when the password was rotated, or when BCRYPT_COST changed', async () => {
    const published = new Map([['alice', bcrypt.hashSync('old password', COST)]]);
    const rotated = await resolve([param('alice', 'new password', 'SecureString')], published);
    expect(rotated.users[0]).toMatchObject({ source: 'password-hashed' });
    expect(bcrypt.compareSync('new password', rotated.users[0]?.hash ?? '')).toBe(true);

    const atCost5 = await resolveUsers([param('alice', 'old password', 'SecureString')], { cost: 5, published });
    expect(atCost5.users[0]).toMatchObject({ source: 'password-hashed', cost: 5 });
  });

  it('rejects a plaintext password in a String parameter (stored unencrypted)', async () => {
    const r = await resolve([param('alice', 'hunter2')]);
    expect(r.users).toEqual([]);
    expect(r.problems).toEqual([{ parameter: '/registry/users/alice', problem: expect.stringMatching(/String parameter must hold a bcrypt hash.*SecureString/) }]);
  });

  it.each([
    ['cost 03', '$2y$03$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu', /cost 03/],
    ['truncated', HASH_A.slice(0, -5), /53 characters/],
    ['$2x$', `$2x$05$${HASH_A.slice(7)}`, /not a bcrypt hash/],
  ])('rejects a malformed hash (%s) in a SecureString instead of hashing it as a password', async (_t, value, problem) => {
    const r = await resolve([param('alice', value, 'SecureString')]);
    expect(r.users).toEqual([]);
    expect(r.problems[0]?.problem).toMatch(problem);
  });

  it('rejects a StringList parameter and an over-long password', async () => {
    const r = await resolve([param('alice', 'a,b', 'StringList'), param('bob', 'x'.repeat(73), 'SecureString')]);
    expect(r.problems.map((p) => p.problem)).toEqual([expect.stringMatching(/StringList is not supported/), expect.stringMatching(/72 bytes/)]);
  });

  it('takes the last path component as the user name; duplicates across nested paths are errors on both', async () => {
    expect(userNameOf('/registry/users/team/alice')).toBe('alice');
    const r = await resolve([param('alice', HASH_A), param('team/alice', HASH_B), param('team/bob', HASH_B)]);
    expect(r.users.map((u) => [u.user, u.parameter])).toEqual([['bob', '/registry/users/team/bob']]);
    expect(r.problems).toEqual([
      { parameter: '/registry/users/alice', problem: expect.stringMatching(/duplicate user name "alice" \(also \/registry\/users\/team\/alice\)/) },
      { parameter: '/registry/users/team/alice', problem: expect.stringMatching(/duplicate user name "alice" \(also \/registry\/users\/alice\)/) },
    ]);
  });

  it('never puts a value in a problem', async () => {
    const secret = 'Sup3r-Secret-Pa55word';
    const r = await resolve([param('alice', secret), param('bob', `$2y$05$${secret}`, 'SecureString'), param('ca rol', secret, 'SecureString')]);
    expect(r.problems).toHaveLength(3);
    expect(JSON.stringify(r.problems)).not.toContain(secret);
  });
});

// ---------------------------------------------------------------------------------------------------
// plan

const user = (name: string, hash: string, cost = 5): ResolvedUser => ({ user: name, parameter: `${PATH}${name}`, hash, cost, source: 'hash' });
const USERS = [user('alice', HASH_A), user('bob', HASH_B, 10)];
const FILE = renderHtpasswd(USERS);
const SHA = sha256Hex(FILE);
const OLD_SHA = 'a'.repeat(64);
const NOW = new Date('2026-05-01T12:00:00.000Z');
const minutesAgo = (m: number): string => new Date(NOW.getTime() - m * 60_000).toISOString();
const policy = (over: Partial<SyncPolicy['config']> = {}, forceDistribute = false): SyncPolicy => ({
  config: { bucket: 'registry-bucket', objectKey: 'auth/htpasswd', allowEmptyUserSet: false, parameterPath: PATH, registrationGraceMs: 15 * 60_000, ...over },
  forceDistribute,
  now: NOW,
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
const brief = (actions: readonly { type: string; target: string; reason: string }[]) => actions.map((a) => [a.type, a.target, a.reason]);

describe('planSync', () => {
  it('does nothing when the file is published and every instance serves it', () => {
    const plan = planSync(state({ instances: [reported('i-1', SHA), reported('i-2', SHA)] }), policy());
    expect(plan.actions).toEqual([]);
    expect(brief(plan.skipped)).toEqual([
      ['install-htpasswd', 'i-1', `in sync (sha256 ${SHA.slice(0, 12)})`],
      ['install-htpasswd', 'i-2', `in sync (sha256 ${SHA.slice(0, 12)})`],
    ]);
  });

  it.each([
    ['no published file', undefined, 'no published file yet'],
    ['different content', { sha256: OLD_SHA, metadataSha256: OLD_SHA, users: 1 }, `users changed (published sha256 aaaaaaaaaaaa, rendered ${SHA.slice(0, 12)})`],
    ['missing metadata', { sha256: SHA, metadataSha256: undefined, users: 2 }, 'the object lacks the right sha256 metadata'],
  ])('publishes when there is %s, carrying the content out of sight of the report', (_t, published, reason) => {
    const plan = planSync(state({ published }), policy());
    expect(brief(plan.actions)).toEqual([['publish-htpasswd', 's3://registry-bucket/auth/htpasswd', reason]]);
    const publish = plan.actions[0];
    expect(publish).toMatchObject({ sha256: SHA, users: 2, bytes: Buffer.byteLength(FILE) });
    expect(publish && 'content' in publish && publish.content).toBe(FILE);
    expect(Object.keys(publish ?? {})).not.toContain('content');
    expect(JSON.stringify(publish)).not.toContain(HASH_A);
  });

  it('installs only on drifted instances; skips instances SSM does not know yet only while they are new', () => {
    const plan = planSync(
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
    );
    expect(brief(plan.actions)).toEqual([
      ['publish-htpasswd', 's3://registry-bucket/auth/htpasswd', expect.stringMatching(/users changed/)],
      ['install-htpasswd', 'i-1', `serves sha256 aaaaaaaaaaaa, want ${SHA.slice(0, 12)}`],
      ['install-htpasswd', 'i-3', `serves sha256 none, want ${SHA.slice(0, 12)}`],
      ['install-htpasswd', 'i-5', `drift check failed (Failed): installing sha256 ${SHA.slice(0, 12)}`],
      ['install-htpasswd', 'i-6', `unknown to SSM (InvalidInstanceId) but launched 15m ago, past SSM_REGISTRATION_GRACE: trying to install sha256 ${SHA.slice(0, 12)}`],
      ['install-htpasswd', 'i-7', `unknown to SSM (InvocationDoesNotExist) but launch time unknown, past SSM_REGISTRATION_GRACE: trying to install sha256 ${SHA.slice(0, 12)}`],
    ]);
    expect(plan.actions.filter((a) => a.type === 'install-htpasswd').map((a) => [a.target, 'recentlyLaunched' in a && a.recentlyLaunched])).toEqual([
      ['i-1', false],
      ['i-3', false],
      ['i-5', false],
      ['i-6', false],
      ['i-7', false],
    ]);
    expect(plan.skipped.find((a) => a.target === 'i-4')).toMatchObject({ recentlyLaunched: true, launchTime: minutesAgo(14) });
    expect(brief(plan.skipped)).toEqual([
      ['install-htpasswd', 'i-2', expect.stringMatching(/^in sync/)],
      ['install-htpasswd', 'i-4', expect.stringMatching(/^not registered with SSM yet/)],
    ]);
    expect(plan.actions.every((a) => a.type !== 'install-htpasswd' || a.sha256 === SHA)).toBe(true);
  });

  it('forceDistribute installs on every InService instance, in sync or not', () => {
    const plan = planSync(state({ instances: [{ instanceId: 'i-1' }, { instanceId: 'i-2' }], driftChecked: false }), policy({}, true));
    expect(brief(plan.actions)).toEqual([
      ['install-htpasswd', 'i-1', 'forceDistribute'],
      ['install-htpasswd', 'i-2', 'forceDistribute'],
    ]);
  });

  it('refuses (throws, plans nothing) when any parameter is invalid, naming each one but no value', () => {
    const problems = [
      { parameter: '/registry/users/eve', problem: 'malformed bcrypt hash: cost 03 is outside 04–31' },
      { parameter: '/registry/users/a b', problem: 'user name contains whitespace' },
    ];
    const run = () => planSync(state({ resolution: { users: USERS, problems } }), policy());
    expect(run).toThrow(InvalidUserSetError);
    expect(run).toThrow(
      'refusing to publish: 2 invalid parameters under /registry/users/ (nothing was changed): /registry/users/eve: malformed bcrypt hash: cost 03 is outside 04–31; /registry/users/a b: user name contains whitespace',
    );
  });

  it('refuses an empty user set (a missing path) unless ALLOW_EMPTY_USER_SET', () => {
    const empty = state({ parameters: 0, resolution: { users: [], problems: [] } });
    expect(() => planSync(empty, policy())).toThrow(/refusing to publish an empty user set: no parameters under \/registry\/users\/ .*ALLOW_EMPTY_USER_SET=true/);
    const plan = planSync(empty, policy({ allowEmptyUserSet: true }));
    expect(plan.actions[0]).toMatchObject({ type: 'publish-htpasswd', sha256: sha256Hex(''), users: 0, bytes: 0 });
  });

  it('plans nothing for a parameter outside the path', () => {
    expect(planSync({ kind: 'out-of-scope', parameter: '/registry/config/x' }, policy())).toEqual({ actions: [], skipped: [] });
  });

  it('warns about costly hashes in the report', () => {
    const s = state({ resolution: { users: [...USERS, user('carol', HASH_12, 12)], problems: [] } });
    const summary = job.summarize(s, planSync(s, policy()), [], testContext({ dryRun: true }));
    expect(summary.details?.warnings).toEqual([expect.stringMatching(/^carol: bcrypt cost 12 > 10: .*≈ 279 ms at 12/)]);
    expect(summary.details?.users).toEqual([
      { user: 'alice', parameter: '/registry/users/alice', cost: 5, source: 'hash' },
      { user: 'bob', parameter: '/registry/users/bob', cost: 10, source: 'hash' },
      { user: 'carol', parameter: '/registry/users/carol', cost: 12, source: 'hash' },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------
// config and events

const ENV = {
  AWS_REGION: 'us-east-1',
  HTPASSWD_PARAMETER_PATH: '/registry/users/',
  REGISTRY_BUCKET: 'registry-bucket',
  HTPASSWD_OBJECT_KEY: 'auth/htpasswd',
  ASG_NAME: 'registry-asg',
  SYNC_DOCUMENT_NAME: 'registry-htpasswd-sync',
};

describe('loadSyncHtpasswdConfig', () => {
  it('applies the documented defaults', () => {
    expect(loadSyncHtpasswdConfig(ENV)).toEqual({
      parameterPath: '/registry/users/',
      bucket: 'registry-bucket',
      objectKey: 'auth/htpasswd',
      asgName: 'registry-asg',
      documentName: 'registry-htpasswd-sync',
      bcryptCost: 8,
      allowEmptyUserSet: false,
      objectSse: 'AES256',
      maxConcurrency: 10,
      maxErrors: 0,
      commandWaitMs: 60_000,
      pollIntervalMs: 2_000,
      driftCheckBudgetMs: 120_000,
      registrationGraceMs: 900_000,
      region: 'us-east-1',
      dryRun: false,
      s3ForcePathStyle: false,
    });
  });

  it.each([
    [{ HTPASSWD_PARAMETER_PATH: 'registry/users/' }, /HTPASSWD_PARAMETER_PATH="registry\/users\/" is not valid: expected an SSM parameter path that starts and ends with \//],
    [{ HTPASSWD_PARAMETER_PATH: '/registry/users' }, /HTPASSWD_PARAMETER_PATH.*starts and ends with \//],
    [{ HTPASSWD_PARAMETER_PATH: '/' }, /HTPASSWD_PARAMETER_PATH.*not \/ itself/],
    [{ HTPASSWD_OBJECT_KEY: '/auth/htpasswd' }, /HTPASSWD_OBJECT_KEY.*without a leading \//],
    [{ BCRYPT_COST: '13' }, /BCRYPT_COST="13" is not valid: expected a whole number from 4 to 12/],
    [{ ALLOW_EMPTY_USER_SET: 'yes' }, /ALLOW_EMPTY_USER_SET.*true or false/],
    [{ ASG_NAME: undefined }, /ASG_NAME is missing/],
    [{ SYNC_DOCUMENT_NAME: 'a b' }, /SYNC_DOCUMENT_NAME/],
    [{ DRIFT_CHECK_BUDGET: '5m' }, /DRIFT_CHECK_BUDGET="5m" is not valid: .*at most 4m/],
    [{ SSM_REGISTRATION_GRACE: '30s' }, /SSM_REGISTRATION_GRACE="30s" is not valid: .*at least 1m/],
  ])('names the bad variable (%j)', (over, message) => {
    expect(() => loadSyncHtpasswdConfig({ ...ENV, ...over })).toThrow(ConfigError);
    expect(() => loadSyncHtpasswdConfig({ ...ENV, ...over })).toThrow(message);
  });
});

describe('events/sync-htpasswd', () => {
  const files = readdirSync(join(EVENTS_DIR, 'sync-htpasswd')).filter((f) => f.endsWith('.json'));

  it.each(files)('%s is a trigger the job accepts', (file) => {
    const trigger = toTrigger(loadEvent(`sync-htpasswd/${file}`), job.options);
    expect(job.accepts).toContain(trigger.kind);
  });

  it('has the manual samples the README uses', () => {
    expect(files).toEqual(expect.arrayContaining(['manual-dry-run.json', 'manual-sync.json', 'manual-force-distribute.json']));
    expect(toTrigger(loadEvent('sync-htpasswd/manual-dry-run.json'), job.options)).toMatchObject({ kind: 'manual', dryRun: true });
    expect(toTrigger(loadEvent('sync-htpasswd/manual-force-distribute.json'), job.options)).toMatchObject({ options: { forceDistribute: true } });
  });

  it('the top-level parameter-change sample names a user under the default path', () => {
    expect(toTrigger(loadEvent('parameter-change.json'))).toMatchObject({ kind: 'parameter-change', name: '/registry/users/alice' });
  });

  it('rejects a bad manual payload by name', () => {
    expect(() => toTrigger({ forceDistribute: 'yes' }, job.options)).toThrow('forceDistribute: expected true or false');
    expect(() => toTrigger({ users: [] }, job.options)).toThrow('unknown key "users"');
  });
});

describe('parseScriptOutput / installOutcome (what an instance printed)', () => {
  const A = 'a'.repeat(64);
  const B = 'b'.repeat(64);

  it('reads the contract lines, the last of each winning, none as null, and ignores anything else', () => {
    expect(parseScriptOutput(`noise\nprevious sha256=none\ninstalled sha256=${A}\n`)).toEqual({ previous: null, installed: A });
    expect(parseScriptOutput(`current sha256=${A}\ncurrent sha256=${B}\n`)).toEqual({ current: B });
    expect(parseScriptOutput('current sha256=ABC\ninstalled sha256=\n')).toEqual({});
  });

  it.each([
    [{ state: 'success', output: `previous sha256=${B}\ninstalled sha256=${A}\n` }, { status: 'applied', detail: { changed: true, previousSha256: B, installedSha256: A } }],
    [{ state: 'success', output: `previous sha256=${A}\ninstalled sha256=${A}\n` }, { status: 'applied', detail: { changed: false, previousSha256: A, installedSha256: A } }],
    [{ state: 'success', output: '' }, { status: 'failed', error: 'the command succeeded but printed no "installed sha256=" line' }],
    [{ state: 'success', output: `installed sha256=${B}\n` }, { status: 'failed', error: 'installed sha256 bbbbbbbbbbbb, expected aaaaaaaaaaaa' }],
    [{ state: 'failed', error: 'Failed: boom' }, { status: 'failed', error: 'Failed: boom' }],
    [{ state: 'cancelled', error: 'Cancelled: not run' }, { status: 'skipped', reason: 'Cancelled: not run' }],
  ] as const)('%j → %j', (result, outcome) => {
    expect(installOutcome(result, { sha256: A, recentlyLaunched: false, launchTime: null })).toEqual(outcome);
  });

  it('not registered with SSM: skipped for a recently launched instance, failed for an older one (dead agent)', () => {
    const result = { state: 'not-registered', error: 'not registered with SSM yet (InvalidInstanceId)' } as const;
    expect(installOutcome(result, { sha256: A, recentlyLaunched: true, launchTime: '2026-05-01T11:55:00.000Z' })).toEqual({
      status: 'skipped',
      reason: 'not registered with SSM yet (InvalidInstanceId): its boot script installs the published file; the hourly drift check catches up',
    });
    expect(installOutcome(result, { sha256: A, recentlyLaunched: false, launchTime: '2026-04-01T00:00:00.000Z' })).toEqual({
      status: 'failed',
      error:
        'unreachable through SSM: not registered with SSM (InvalidInstanceId), but launched 2026-04-01T00:00:00.000Z, past SSM_REGISTRATION_GRACE: its SSM agent is down or it lost SSM access, and it keeps serving its old htpasswd; check the agent or replace the instance',
    });
  });
});
