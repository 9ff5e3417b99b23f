/**
 * What must never leave a run in a notification: password hashes (bcrypt, htpasswd's apr1/SHA/crypt forms),
 * private keys (PEM), and `password=…`-style values. Used to redact outgoing messages and, in the tests, to scan
 * every message and report the suite produces.
 */
const SECRET_PATTERNS: readonly { name: string; pattern: RegExp }[] = [
  { name: 'private key', pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g },
  { name: 'bcrypt hash', pattern: /\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}/g },
  { name: 'apr1/md5-crypt hash', pattern: /\$(apr1|1)\$[./A-Za-z0-9]{1,8}\$[./A-Za-z0-9]{22}/g },
  { name: 'sha-crypt hash', pattern: /\$[56]\$(rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{43,86}/g },
  { name: 'htpasswd SHA hash', pattern: /\{SHA\}[A-Za-z0-9+/]{27}=/g },
  {
    name: 'password value',
    pattern: /\b(password|passwd|secretAccessKey|aws_secret_access_key|privateKey)(["']?\s*[:=]\s*["']?)(?!\[redacted)[^\s"',;}]+/gi,
  },
];

/** The kinds of secret found in `text` (empty when clean). */
export function findSecrets(text: string): string[] {
  return SECRET_PATTERNS.filter(({ pattern }) => new RegExp(pattern.source, pattern.flags).test(text)).map(({ name }) => name);
}

/** `text` with every secret replaced by `[redacted <kind>]`. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const { name, pattern } of SECRET_PATTERNS) {
    out =
      name === 'password value'
        ? out.replace(pattern, (_m, key: string, sep: string) => `${key}${sep}[redacted]`)
        : out.replace(pattern, `[redacted ${name}]`);
  }
  return out;
}
