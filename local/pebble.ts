import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCertificate } from './certs.ts';
import { freePort } from './ports.ts';
import { spawnManaged, waitUntilReady } from './process.ts';

export interface Pebble {
  /** `https://127.0.0.1:PORT/dir` */
  readonly directoryUrl: string;
  /** PEM of the certificate Pebble's API serves: what an ACME client must trust. */
  readonly caBundlePath: string;
  readonly pid: number;
  stop(): Promise<void>;
  logs(): string;
}

function answersOverTls(url: string, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(url, { ca, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

/**
 * Starts Let's Encrypt's ACME test server (Debian package `pebble`) on free loopback ports, with a loopback
 * certificate made here. With `dnsServer` (`127.0.0.1:PORT`, e.g. local/dns.ts answering from moto's Route 53)
 * Pebble validates every DNS-01 challenge for real against it; without it `PEBBLE_VA_ALWAYS_VALID=1` lets every
 * challenge pass (the records still go to Route 53 through the job; nobody resolves them). No sleeps, no random
 * nonce rejection.
 */
export async function startPebble({ timeoutMs = 30_000, dnsServer }: { timeoutMs?: number; dnsServer?: string } = {}): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'pebble-'));
  const tls = makeCertificate({ cn: 'localhost', sans: ['localhost'], ip: '127.0.0.1', days: 30 });
  const caBundlePath = join(dir, 'cert.pem');
  writeFileSync(caBundlePath, tls.certPem);
  writeFileSync(join(dir, 'key.pem'), tls.keyPem);
  const [port, management, httpPort, tlsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const configPath = join(dir, 'pebble-config.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${management}`,
        certificate: caBundlePath,
        privateKey: join(dir, 'key.pem'),
        httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const { PEBBLE_VA_ALWAYS_VALID: _inherited, ...env } = process.env;
  const proc = spawnManaged('pebble', 'pebble', ['-config', configPath, '-strict=false', ...(dnsServer ? ['-dnsserver', dnsServer] : [])], {
    env: { ...env, ...(dnsServer ? {} : { PEBBLE_VA_ALWAYS_VALID: '1' }), PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' },
  });
  const directoryUrl = `https://127.0.0.1:${port}/dir`;
  await waitUntilReady(proc, () => answersOverTls(directoryUrl, tls.certPem), { timeoutMs, what: 'serving its directory' });
  return {
    directoryUrl,
    caBundlePath,
    pid: proc.pid,
    logs: proc.logs,
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
