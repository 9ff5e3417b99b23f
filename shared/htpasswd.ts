import { createHash } from 'node:crypto';

/**
 * The registry's htpasswd file (distribution 2.8 `auth.htpasswd`): pure validators, the renderer and a lenient
 * parser of a published file. Messages name the problem, never the value (a value is a hash or a password).
 */

export const MIN_BCRYPT_COST = 4;
export const MAX_BCRYPT_COST = 31;
/** Above this cost every authenticated request pays noticeably (REGISTRY-FACTS: 10 ≈ 71 ms, 12 ≈ 279 ms). */
export const WARN_BCRYPT_COST_ABOVE = 10;
export const MAX_USER_NAME_LENGTH = 64;
/** bcrypt ignores everything after the first 72 bytes of a password. */
export const MAX_PASSWORD_BYTES = 72;

const BCRYPT_BASE64 = /^[./A-Za-z0-9]*$/;
/** The 22-character salt encodes 128 bits: its last character carries 2 bits, the 4 low bits are zero. */
const SALT_LAST = new Set(['.', 'O', 'e', 'u']);
/** The 31-character checksum encodes 184 bits: its last character carries 4 bits, the 2 low bits are zero. */
const CHECKSUM_LAST = new Set([...'.CGKOSWaeimquy26']);

export type Check<T> = { ok: true; value: T } | { ok: false; problem: string };

/**
 * A bcrypt hash as the registry accepts it: `$2a$`, `$2b$` or `$2y$`, a two-digit cost 04–31, `$`, then 53
 * characters of bcrypt base64 (22 of salt, 31 of checksum) in their canonical form.
 */
export function checkBcryptHash(value: string): Check<{ cost: number }> {
  const prefix = /^\$2([aby])\$/.exec(value);
  if (!prefix) return { ok: false, problem: 'not a bcrypt hash: expected $2a$, $2b$ or $2y$, a two-digit cost and 53 characters' };
  const cost = /^\$2[aby]\$(\d\d)\$/.exec(value)?.[1];
  if (cost === undefined)
    return { ok: false, problem: 'malformed bcrypt hash: expected a two-digit cost (04–31) after the version, then $' };
  const n = Number(cost);
  if (n < MIN_BCRYPT_COST || n > MAX_BCRYPT_COST) return { ok: false, problem: `malformed bcrypt hash: cost ${cost} is outside 04–31` };
  const rest = value.slice(7);
  if (rest.length !== 53 || !BCRYPT_BASE64.test(rest)) {
    return {
      ok: false,
      problem: `malformed bcrypt hash: expected 53 characters of bcrypt base64 (./A-Za-z0-9) after the cost, got ${rest.length}`,
    };
  }
  if (!SALT_LAST.has(rest.charAt(21)) || !CHECKSUM_LAST.has(rest.charAt(52))) {
    return { ok: false, problem: 'malformed bcrypt hash: the salt or checksum is not canonical bcrypt base64 (damaged or hand-edited?)' };
  }
  return { ok: true, value: { cost: n } };
}

/** True when a value is meant as a bcrypt hash (it starts like one), well-formed or not. */
export function looksLikeBcrypt(value: string): boolean {
  return /^\$2[a-z]?\$/.test(value);
}

/** The cost of a well-formed hash, or undefined. */
export function bcryptCost(hash: string): number | undefined {
  const check = checkBcryptHash(hash);
  return check.ok ? check.value.cost : undefined;
}

/**
 * A user name the registry (and HTTP basic auth) can carry: non-empty, at most 64 characters, no `:` (the
 * htpasswd separator and basic auth's), no whitespace, control or invisible characters, not starting with `#`
 * (the registry skips such a line as a comment). Returns the problem, or undefined when the name is fine.
 */
export function checkUserName(name: string): string | undefined {
  if (name.length === 0) return 'user name is empty';
  if ([...name].length > MAX_USER_NAME_LENGTH) return `user name is longer than ${MAX_USER_NAME_LENGTH} characters`;
  if (/\p{Cc}/u.test(name)) return 'user name contains a control character (newline, tab, …)';
  if (/\s/u.test(name)) return 'user name contains whitespace';
  if (/[\p{Cf}\p{Co}\p{Cn}]/u.test(name)) return 'user name contains an invisible or unassigned character';
  if (name.includes(':')) return 'user name contains ":" (the htpasswd and basic-auth separator)';
  if (name.startsWith('#')) return 'user name starts with "#" (the registry reads that line as a comment)';
  return undefined;
}

/** A password held in a SecureString: hashed by the job. Returns the problem, or undefined. */
export function checkPassword(password: string): string | undefined {
  if (password.length === 0) return 'password is empty';
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
    return `password is longer than ${MAX_PASSWORD_BYTES} bytes (bcrypt would ignore the rest)`;
  }
  return undefined;
}

export interface HtpasswdEntry {
  readonly user: string;
  readonly hash: string;
}

/**
 * The file: one `user:hash` line per entry, sorted by user name (code-point order, stable across locales), with
 * a trailing newline; empty string for no entries. Throws (naming the user, never the hash) on an invalid or
 * duplicate entry: callers validate first, this is the last line of defence.
 */
export function renderHtpasswd(entries: readonly HtpasswdEntry[]): string {
  const seen = new Set<string>();
  for (const { user, hash } of entries) {
    const nameProblem = checkUserName(user);
    if (nameProblem) throw new Error(`cannot render htpasswd: ${nameProblem} (${JSON.stringify(user)})`);
    const hashCheck = checkBcryptHash(hash);
    if (!hashCheck.ok) throw new Error(`cannot render htpasswd: user ${user}: ${hashCheck.problem}`);
    if (seen.has(user)) throw new Error(`cannot render htpasswd: duplicate user ${user}`);
    seen.add(user);
  }
  const sorted = [...entries].sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  return sorted.map(({ user, hash }) => `${user}:${hash}\n`).join('');
}

/**
 * The user → hash pairs of a published file, read the way the registry reads it (lines trimmed, blank and `#`
 * lines skipped, split at the first `:`, a later line for the same user wins). Lenient: lines that are not a
 * valid user and bcrypt hash are ignored (this only feeds hash reuse, never the rendered file).
 */
export function parseHtpasswd(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (checkUserName(user) === undefined && checkBcryptHash(hash).ok) entries.set(user, hash);
  }
  return entries;
}

export function sha256Hex(content: string | Uint8Array): string {
  return createHash('sha256').update(content).digest('hex');
}

/** The first 12 hex digits, for reasons and logs. */
export function shortSha(sha: string | null | undefined): string {
  return sha ? sha.slice(0, 12) : 'none';
}
