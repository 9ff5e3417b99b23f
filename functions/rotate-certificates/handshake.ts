import { connect } from 'node:tls';
import { describeError } from '../../shared/errors.ts';
import { normaliseSerial, sanDnsNames, type Served } from './model.ts';

export interface HandshakeTarget {
  readonly host: string;
  readonly port: number;
  /** SNI: always DOMAIN_NAME, so the load balancer picks the certificate clients get. */
  readonly servername: string;
  readonly timeoutMs: number;
}

/** What a TLS client is served. Never throws: a failed handshake is `{ ok: false, error }`. */
export type Handshake = (target: HandshakeTarget, signal?: AbortSignal) => Promise<Served>;

/**
 * One TLS handshake with Node's `tls`; reads the peer certificate's serial and validity. The chain is not
 * verified (`rejectUnauthorized: false`): the point is to see WHICH certificate is served, including an expired
 * or wrong one, not to trust it.
 */
export const tlsHandshake: Handshake = (target, signal) =>
  new Promise<Served>((resolve) => {
    const { host, port } = target;
    let settled = false;
    const finish = (result: Served): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const fail = (error: string): void => finish({ ok: false, host, port, error });
    const onAbort = (): void => fail('aborted');
    const socket = connect({ host, port, servername: target.servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    const timer = setTimeout(() => fail(`no TLS handshake with ${host}:${port} within ${target.timeoutMs} ms`), target.timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (error) => fail(describeError(error)));
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      if (!cert) {
        fail(`${host}:${port} presented no certificate`);
        return;
      }
      const names = sanDnsNames(cert.subjectAltName);
      const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
      finish({
        ok: true,
        host,
        port,
        serial: normaliseSerial(cert.serialNumber),
        notBefore: new Date(cert.validFrom).toISOString(),
        notAfter: new Date(cert.validTo).toISOString(),
        ...(cn ? { subject: `CN=${cn}` } : {}),
        names: names.length > 0 ? names : cn ? [cn.toLowerCase()] : [],
      });
    });
  });
