import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import {
  checkBcryptHash,
  checkPassword,
  checkUserName,
  looksLikeBcrypt,
  parseHtpasswd,
  renderHtpasswd,
  sha256Hex,
} from '../../shared/htpasswd.ts';

// Real hashes: `htpasswd -nbB -C N` (apache2-utils, $2y$) and bcryptjs ($2b$, $2a$).
const HTPASSWD_5 = '$2y$05$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu';
const HTPASSWD_10 = '$2y$10$k7YoaXOeJN/8rieym6UNX.1sWAh5.TKGQLuSghROTdEPJ8ZdM/PI6';
const HTPASSWD_12 = '$2y$12$jUyOLutEeJn.8CC1Idap.e9mtSORklJE48b8cTuO9aCpz1fAPUhAK';
const BCRYPTJS_2A = '$2a$04$a4IFjZkXMI9ODVp5KtmjuOvLTEiFSjJYUsjSuwd2PkGQ5IoxTWV2i';
const BODY = HTPASSWD_5.slice(7); // 53 characters of salt + checksum

describe('checkBcryptHash', () => {
  it.each([
    ['htpasswd -B cost 5 ($2y$)', HTPASSWD_5, 5],
    ['htpasswd -B cost 10', HTPASSWD_10, 10],
    ['htpasswd -B cost 12', HTPASSWD_12, 12],
    ['bcryptjs $2a$', BCRYPTJS_2A, 4],
    ['bcryptjs $2b$', bcrypt.hashSync('pw', 4), 4],
    ['$2b$ same body', `$2b$05$${BODY}`, 5],
    ['cost 31 (upper bound)', `$2y$31$${BODY}`, 31],
    ['cost 04 (lower bound)', `$2y$04$${BODY}`, 4],
  ])('accepts %s', (_title, hash, cost) => {
    expect(checkBcryptHash(hash)).toEqual({ ok: true, value: { cost } });
  });

  it.each([
    ['a plaintext password', 'hunter2', /not a bcrypt hash/],
    ['an Apache MD5 hash', '$apr1$abcdefgh$0123456789abcdefghijkl', /not a bcrypt hash/],
    ['a SHA1 hash', '{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /not a bcrypt hash/],
    ['an unknown minor version $2x$', `$2x$05$${BODY}`, /not a bcrypt hash/],
    ['no minor version $2$', `$2$05$${BODY}`, /not a bcrypt hash/],
    ['a one-digit cost', `$2y$5$${BODY}`, /two-digit cost/],
    ['a non-numeric cost', `$2y$1a$${BODY}`, /two-digit cost/],
    ['cost 03', `$2y$03$${BODY}`, /cost 03 is outside 04–31/],
    ['cost 32', `$2y$32$${BODY}`, /cost 32 is outside 04–31/],
    ['cost 99', `$2y$99$${BODY}`, /cost 99 is outside/],
    ['52 characters', HTPASSWD_5.slice(0, -1), /53 characters .* got 52/],
    ['54 characters', `${HTPASSWD_5}u`, /got 54/],
    ['a character outside bcrypt base64', `${HTPASSWD_5.slice(0, -1)}!`, /bcrypt base64/],
    ['a trailing newline', `${HTPASSWD_5}\n`, /got 54/],
    ['a leading space', ` ${HTPASSWD_5}`, /not a bcrypt hash/],
    ['a non-canonical salt', `$2y$05$${BODY.slice(0, 21)}A${BODY.slice(22)}`, /not canonical/],
    ['a non-canonical checksum', `$2y$05$${BODY.slice(0, 52)}v`, /not canonical/],
  ])('rejects %s, naming the problem without echoing the value', (_title, value, problem) => {
    const check = checkBcryptHash(value);
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.problem).toMatch(problem);
    if (value.length > 8) expect(check.problem).not.toContain(value.slice(7, 20));
  });

  it('tells a meant-to-be hash from a password', () => {
    expect(looksLikeBcrypt(HTPASSWD_5)).toBe(true);
    expect(looksLikeBcrypt('$2y$5$short')).toBe(true);
    expect(looksLikeBcrypt('$2$05$x')).toBe(true);
    expect(looksLikeBcrypt('correct horse battery staple')).toBe(false);
    expect(looksLikeBcrypt('$apr1$x')).toBe(false);
  });
});

describe('checkUserName', () => {
  it.each(['alice', 'ci-bot', 'team.alice_2', 'Zoë', 'a'.repeat(64)])('accepts %j', (name) => {
    expect(checkUserName(name)).toBeUndefined();
  });

  it.each([
    ['', /empty/],
    ['a'.repeat(65), /longer than 64/],
    ['ali:ce', /":"/],
    ['ali ce', /whitespace/],
    ['alice ', /whitespace/],
    ['ali\u00a0ce', /whitespace/],
    ['ali\nce', /control character/],
    ['ali\tce', /control character/],
    ['ali\u0000ce', /control character/],
    ['ali\u200bce', /invisible/],
    ['#alice', /comment/],
  ])('rejects %j', (name, problem) => {
    expect(checkUserName(name)).toMatch(problem);
  });
});

describe('checkPassword', () => {
  it('accepts up to 72 bytes and rejects more (bcrypt would ignore the rest)', () => {
    expect(checkPassword('x'.repeat(72))).toBeUndefined();
    expect(checkPassword('x'.repeat(73))).toMatch(/72 bytes/);
    expect(checkPassword('é'.repeat(37))).toMatch(/72 bytes/); // 74 bytes in UTF-8
    expect(checkPassword('')).toMatch(/empty/);
  });
});

describe('renderHtpasswd', () => {
  it('writes one user:hash line per entry, sorted by code point, with a trailing newline', () => {
    const text = renderHtpasswd([
      { user: 'carol', hash: HTPASSWD_10 },
      { user: 'Bob', hash: HTPASSWD_5 },
      { user: 'alice', hash: BCRYPTJS_2A },
    ]);
    expect(text).toBe(`Bob:${HTPASSWD_5}\nalice:${BCRYPTJS_2A}\ncarol:${HTPASSWD_10}\n`);
  });

  it('renders an empty set as an empty file', () => {
    expect(renderHtpasswd([])).toBe('');
  });

  it('is independent of input order (same bytes, same sha256)', () => {
    const a = renderHtpasswd([
      { user: 'a', hash: HTPASSWD_5 },
      { user: 'b', hash: HTPASSWD_10 },
    ]);
    const b = renderHtpasswd([
      { user: 'b', hash: HTPASSWD_10 },
      { user: 'a', hash: HTPASSWD_5 },
    ]);
    expect(sha256Hex(a)).toBe(sha256Hex(b));
  });

  it.each([
    [[{ user: 'a:b', hash: HTPASSWD_5 }], /":"/],
    [[{ user: 'a', hash: 'plain' }], /user a: not a bcrypt hash/],
    [
      [
        { user: 'a', hash: HTPASSWD_5 },
        { user: 'a', hash: HTPASSWD_10 },
      ],
      /duplicate user a/,
    ],
  ])('refuses an invalid entry without echoing a hash (%#)', (entries, message) => {
    let error: unknown;
    try {
      renderHtpasswd(entries);
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain(HTPASSWD_10.slice(7));
  });
});

describe('parseHtpasswd', () => {
  it('reads back what renderHtpasswd wrote', () => {
    const text = renderHtpasswd([
      { user: 'alice', hash: HTPASSWD_5 },
      { user: 'bob', hash: HTPASSWD_10 },
    ]);
    expect(parseHtpasswd(text)).toEqual(
      new Map([
        ['alice', HTPASSWD_5],
        ['bob', HTPASSWD_10],
      ]),
    );
  });

  it('reads like the registry: trims, skips blank and # lines, splits at the first colon, last line wins; ignores junk', () => {
    const text = ['# comment', '', `  alice:${HTPASSWD_5}  `, 'garbage', `bob:md5hash`, `alice:${HTPASSWD_10}`, ':nouser', 'carol:'].join(
      '\n',
    );
    expect(parseHtpasswd(text)).toEqual(new Map([['alice', HTPASSWD_10]]));
  });
});

describe('sha256Hex', () => {
  it('is the hex sha256 of the UTF-8 bytes', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abc')).toBe(sha256Hex(Buffer.from('abc')));
  });
});
