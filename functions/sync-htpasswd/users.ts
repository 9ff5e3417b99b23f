import bcrypt from 'bcryptjs';
import { checkBcryptHash, checkPassword, checkUserName, looksLikeBcrypt } from '../../shared/htpasswd.ts';

/**
 * SSM parameters → registry users. Each parameter under the path is one user: the user name is the LAST
 * component of the parameter name (`/registry/users/team/alice` → `alice`); two parameters that give the same
 * name are an error. The value is a bcrypt hash (String or SecureString), or a password (SecureString only),
 * which is hashed here at the configured cost — reusing the published hash when it still matches, so the
 * file does not change on every run. Plaintext never leaves this module: callers get hashes only.
 */

export interface UserParameter {
  readonly name: string;
  /** `String`, `SecureString` or `StringList`. */
  readonly type: string;
  readonly value: string;
}

export type UserSource = 'hash' | 'password-reused' | 'password-hashed';

export interface ResolvedUser {
  readonly user: string;
  readonly parameter: string;
  readonly hash: string;
  readonly cost: number;
  readonly source: UserSource;
}

export interface UserProblem {
  readonly parameter: string;
  readonly problem: string;
}

export interface Resolution {
  readonly users: readonly ResolvedUser[];
  readonly problems: readonly UserProblem[];
}

export interface Hasher {
  hash(password: string, cost: number): Promise<string>;
  compare(password: string, hash: string): Promise<boolean>;
}

export const bcryptHasher: Hasher = {
  hash: (password, cost) => bcrypt.hash(password, cost),
  compare: (password, hash) => bcrypt.compare(password, hash),
};

export function userNameOf(parameterName: string): string {
  return parameterName.slice(parameterName.lastIndexOf('/') + 1);
}

export interface ResolveOptions {
  /** Cost for new hashes; a published hash is reused only when it has this cost. */
  readonly cost: number;
  /** user → hash of the currently published file. */
  readonly published: ReadonlyMap<string, string>;
  readonly hasher?: Hasher;
}

export async function resolveUsers(parameters: readonly UserParameter[], options: ResolveOptions): Promise<Resolution> {
  const { cost, published, hasher = bcryptHasher } = options;
  const users: ResolvedUser[] = [];
  const problems: UserProblem[] = [];
  const byUser = new Map<string, string[]>();
  for (const p of parameters) {
    const user = userNameOf(p.name);
    byUser.set(user, [...(byUser.get(user) ?? []), p.name]);
  }

  for (const p of [...parameters].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const user = userNameOf(p.name);
    const fail = (problem: string) => problems.push({ parameter: p.name, problem });
    const nameProblem = checkUserName(user);
    if (nameProblem) {
      fail(nameProblem);
      continue;
    }
    const sameName = byUser.get(user) ?? [];
    if (sameName.length > 1) {
      fail(
        `duplicate user name "${user}" (also ${sameName.filter((n) => n !== p.name).join(', ')}): the user name is the last path component`,
      );
      continue;
    }
    if (p.type !== 'String' && p.type !== 'SecureString') {
      fail(`parameter type ${p.type} is not supported (use String for a bcrypt hash, SecureString for a hash or a password)`);
      continue;
    }
    if (looksLikeBcrypt(p.value)) {
      const check = checkBcryptHash(p.value);
      if (!check.ok) fail(check.problem);
      else users.push({ user, parameter: p.name, hash: p.value, cost: check.value.cost, source: 'hash' });
      continue;
    }
    if (p.type === 'String') {
      fail('a String parameter must hold a bcrypt hash; store a password as a SecureString (a String is stored unencrypted)');
      continue;
    }
    const passwordProblem = checkPassword(p.value);
    if (passwordProblem) {
      fail(passwordProblem);
      continue;
    }
    const previous = published.get(user);
    if (previous !== undefined && checkBcryptHash(previous).ok && previous.slice(4, 6) === String(cost).padStart(2, '0')) {
      if (await hasher.compare(p.value, previous)) {
        users.push({ user, parameter: p.name, hash: previous, cost, source: 'password-reused' });
        continue;
      }
    }
    users.push({ user, parameter: p.name, hash: await hasher.hash(p.value, cost), cost, source: 'password-hashed' });
  }
  return { users, problems };
}
