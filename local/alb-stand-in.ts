import { createSecureContext, createServer, type SecureContext, type Server } from 'node:tls';
import { DescribeCertificateCommand, type ACMClient } from '@aws-sdk/client-acm';
import { DescribeListenersCommand, type ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { makeCertificate } from './certs.ts';

export interface AlbStandIn {
  readonly port: number;
  /** Keep serving the certificate served so far, whatever the listener says (a load balancer that never picks up a change). */
  freeze(frozen: boolean): void;
  /** Serials served so far, in order of first use (lower-case hex). */
  served(): string[];
  close(): Promise<void>;
}

/**
 * A TLS server on 127.0.0.1 that plays the load balancer moto cannot run: on every handshake it reads the
 * listener's default certificate from moto's ELBv2 + ACM and serves a certificate with the SAME serial (and
 * about the same expiry), made with openssl. moto never hands out private keys of Amazon-issued certificates,
 * so this mimicry is what lets the job's real TLS check run against moto's state.
 */
export async function startAlbStandIn(elbv2: ElasticLoadBalancingV2Client, acm: ACMClient, listenerArn: string): Promise<AlbStandIn> {
  const contexts = new Map<string, SecureContext>();
  const order: string[] = [];
  let frozen = false;
  let last: SecureContext | undefined;

  async function currentContext(servername: string): Promise<SecureContext> {
    if (frozen && last) return last;
    const listeners = await elbv2.send(new DescribeListenersCommand({ ListenerArns: [listenerArn] }));
    const arn = listeners.Listeners?.[0]?.Certificates?.[0]?.CertificateArn;
    const detail = (await acm.send(new DescribeCertificateCommand({ CertificateArn: arn }))).Certificate;
    const raw = detail?.Serial ?? '1';
    const serialHex = raw.includes(':') ? raw.replaceAll(':', '') : BigInt(raw).toString(16);
    const days = Math.max(1, Math.round(((detail?.NotAfter?.getTime() ?? Date.now()) - Date.now()) / 86_400_000));
    let context = contexts.get(serialHex);
    if (!context) {
      const cert = makeCertificate({ cn: servername, sans: detail?.SubjectAlternativeNames ?? [servername], days, serialHex });
      context = createSecureContext({ cert: cert.certPem, key: cert.keyPem });
      contexts.set(serialHex, context);
      order.push(serialHex.replace(/^0+/, ''));
    }
    last = context;
    return context;
  }

  const fallback = makeCertificate({ cn: 'fallback.invalid' });
  const server: Server = createServer({
    cert: fallback.certPem,
    key: fallback.keyPem,
    SNICallback: (servername, cb) => {
      currentContext(servername).then(
        (ctx) => cb(null, ctx),
        (error: Error) => cb(error),
      );
    },
  });
  const sockets = new Set<{ destroy(): void }>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('stand-in has no port');
  return {
    port: address.port,
    freeze: (f) => {
      frozen = f;
    },
    served: () => [...order],
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
