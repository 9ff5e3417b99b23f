import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { parseHtpasswd, renderHtpasswd, sha256Hex } from '../../shared/htpasswd.ts';
import { resolveUsers, userNameOf, type UserParameter } from '../../functions/sync-htpasswd/users.ts';

const HASH_A = '$2y$05$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu';
const HASH_B = '$2y$10$k7YoaXOeJN/8rieym6UNX.1sWAh5.TKGQLuSghROTdEPJ8ZdM/PI6';
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
    expect(r.problems).toEqual([
      { parameter: '/registry/users/alice', problem: expect.stringMatching(/String parameter must hold a bcrypt hash.*SecureString/) },
    ]);
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
    expect(r.problems.map((p) => p.problem)).toEqual([
      expect.stringMatching(/StringList is not supported/),
      expect.stringMatching(/72 bytes/),
    ]);
  });

  it('takes the last path component as the user name; duplicates across nested paths are errors on both', async () => {
    expect(userNameOf('/registry/users/team/alice')).toBe('alice');
    const r = await resolve([param('alice', HASH_A), param('team/alice', HASH_B), param('team/bob', HASH_B)]);
    expect(r.users.map((u) => [u.user, u.parameter])).toEqual([['bob', '/registry/users/team/bob']]);
    expect(r.problems).toEqual([
      {
        parameter: '/registry/users/alice',
        problem: expect.stringMatching(/duplicate user name "alice" \(also \/registry\/users\/team\/alice\)/),
      },
      {
        parameter: '/registry/users/team/alice',
        problem: expect.stringMatching(/duplicate user name "alice" \(also \/registry\/users\/alice\)/),
      },
    ]);
  });

  it('never puts a value in a problem', async () => {
    const secret = 'Sup3r-Secret-Pa55word';
    const r = await resolve([
      param('alice', secret),
      param('bob', `$2y$05$${secret}`, 'SecureString'),
      param('ca rol', secret, 'SecureString'),
    ]);
    expect(r.problems).toHaveLength(3);
    expect(JSON.stringify(r.problems)).not.toContain(secret);
  });
});
