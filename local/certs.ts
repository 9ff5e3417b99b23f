import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * A self-signed certificate made with `openssl req -x509` (EC P-256 unless `key` says otherwise: fast). `serialHex`
 * sets the serial (the ALB stand-in mimics ACM certificates by serial); `ip` adds an IP SAN (Pebble's loopback
 * listener); `key: 'rsa:2048'` (or another size) makes an RSA key, as moto issues for every requested certificate.
 */
export function makeCertificate(opts: {
  cn: string;
  sans?: string[];
  ip?: string;
  days?: number;
  serialHex?: string;
  key?: `rsa:${number}` | 'ec:prime256v1' | 'ec:secp384r1';
}): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'cert-'));
  try {
    const san = [...(opts.sans ?? [opts.cn]).map((n) => `DNS:${n}`), ...(opts.ip ? [`IP:${opts.ip}`] : [])].join(',');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        ...newKey(opts.key ?? 'ec:prime256v1'),
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        String(opts.days ?? 30),
        '-subj',
        `/CN=${opts.cn}`,
        '-addext',
        `subjectAltName=${san}`,
        ...(opts.serialHex ? ['-set_serial', `0x${opts.serialHex}`] : []),
      ],
      { stdio: 'pipe' },
    );
    return { certPem: readFileSync(join(dir, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function newKey(key: string): string[] {
  const [type, param] = key.split(':');
  return type === 'rsa' ? ['-newkey', `rsa:${param}`] : ['-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${param}`];
}
