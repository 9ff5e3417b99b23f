// rotate-certificates against moto_server (ACM, ELBv2, Route 53) with the job's real TLS handshake: a local
// TLS server stands in for the load balancer and serves whatever certificate moto's listener says is default.
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import {
  AddTagsToCertificateCommand,
  DescribeCertificateCommand,
  ListCertificatesCommand,
  ListTagsForCertificateCommand,
} from '@aws-sdk/client-acm';
import { DescribeListenerCertificatesCommand, DescribeListenersCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ListResourceRecordSetsCommand } from '@aws-sdk/client-route-53';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { JobFailedError, ValidationError } from '../../shared/errors.ts';
import { runJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { logger } from '../../shared/observability.ts';
import { loadRotateCertificatesConfig } from '../../functions/rotate-certificates/config.ts';
import { tlsHandshake } from '../../functions/rotate-certificates/handshake.ts';
import { createRotateCertificatesJob } from '../../functions/rotate-certificates/job.ts';
import { normaliseSerial, TAG_ROLLED_BACK_AT, TAG_ROTATION_OF } from '../../functions/rotate-certificates/model.ts';
import { startAlbStandIn, type AlbStandIn } from '../../local/alb-stand-in.ts';
import { makeCertificate } from '../../local/certs.ts';
import { awsClients, createLoadBalancer, importCertificate, type AwsClients, type LoadBalancerSetup } from '../../local/elb.ts';
import { loadEvent } from '../support/events.ts';
import { startMoto, type Moto } from '../../local/moto.ts';

const DOMAIN = 'registry.example.com';
const FLEET_TAG = { Key: 'registry-fleet', Value: 'registry-it' };
let moto: Moto;
let aws: AwsClients;

beforeAll(async () => {
  process.env.MOTO_ACM_VALIDATION_WAIT = '1'; // requested certificates turn ISSUED after 1 s
  moto = await startMoto();
  Object.assign(process.env, moto.env); // the job's clients are created lazily, after this
  aws = awsClients(moto.endpoint);
});

afterAll(async () => {
  await moto?.stop();
});

describe('tlsHandshake against a local TLS server', () => {
  let tls: TlsServer;
  let silent: TcpServer;
  const cert = makeCertificate({ cn: DOMAIN, days: 42, serialHex: '0a1b2c3d4e5f' });
  let servername: string | undefined;

  const sockets = new Set<{ destroy(): void }>();
  beforeAll(async () => {
    tls = createTlsServer({ cert: cert.certPem, key: cert.keyPem, SNICallback: (name, cb) => ((servername = name), cb(null, undefined)) });
    silent = createTcpServer(() => undefined); // accepts, never speaks TLS
    for (const server of [tls, silent]) server.on('connection', (s) => sockets.add(s));
    await Promise.all([
      new Promise<void>((r) => tls.listen(0, '127.0.0.1', r)),
      new Promise<void>((r) => silent.listen(0, '127.0.0.1', r)),
    ]);
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all([new Promise((r) => tls.close(r)), new Promise((r) => silent.close(r))]);
  });
  const portOf = (s: TlsServer | TcpServer) => (s.address() as { port: number }).port;

  it('reads the served serial and expiry, sending DOMAIN_NAME as SNI', async () => {
    const served = await tlsHandshake({ host: '127.0.0.1', port: portOf(tls), servername: DOMAIN, timeoutMs: 5_000 });
    const x509 = new X509Certificate(cert.certPem);
    expect(served).toEqual({
      ok: true,
      host: '127.0.0.1',
      port: portOf(tls),
      serial: 'a1b2c3d4e5f',
      notBefore: new Date(x509.validFrom).toISOString(),
      notAfter: new Date(x509.validTo).toISOString(),
      subject: `CN=${DOMAIN}`,
      names: [DOMAIN],
    });
    expect(servername).toBe(DOMAIN);
  });

  it('a server that never completes the handshake times out, bounded', async () => {
    const started = Date.now();
    const served = await tlsHandshake({ host: '127.0.0.1', port: portOf(silent), servername: DOMAIN, timeoutMs: 500 });
    expect(served).toMatchObject({ ok: false, error: expect.stringContaining('within 500 ms') });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('a refused connection is a failed handshake, not an exception', async () => {
    const port = portOf(silent);
    const closed = await new Promise<number>((resolve) => {
      const s = createTcpServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    expect(closed).not.toBe(port);
    expect(await tlsHandshake({ host: '127.0.0.1', port: closed, servername: DOMAIN, timeoutMs: 2_000 })).toMatchObject({
      ok: false,
      error: expect.stringContaining('ECONNREFUSED'),
    });
  });
});

describe('acm mode end to end on moto', () => {
  let lb: LoadBalancerSetup;
  let standIn: AlbStandIn;
  let oldArn: string;

  beforeEach(async () => {
    await standIn?.close();
    await moto.reset();
    // RSA-2048, the key moto issues every requested certificate with (ACM would honour the requested algorithm):
    // the replacement then outranks the old one in the load balancer's selection, so the old one is kept for rollback.
    oldArn = await importCertificate(aws.acm, makeCertificate({ cn: DOMAIN, days: 10, key: 'rsa:2048' })); // inside RENEW_BEFORE (30d)
    lb = await createLoadBalancer(aws, oldArn, 'example.com');
    standIn = await startAlbStandIn(aws.elbv2, aws.acm, lb.httpsListenerArn);
  });
  afterAll(async () => {
    await standIn?.close();
  });

  const config = (over: Record<string, string> = {}) =>
    loadRotateCertificatesConfig({
      ...moto.env,
      LISTENER_ARN: lb.httpsListenerArn,
      DOMAIN_NAME: DOMAIN,
      HOSTED_ZONE_ID: lb.hostedZoneId,
      FLEET_TAG_VALUE: 'registry-it',
      HANDSHAKE_HOST: '127.0.0.1',
      HANDSHAKE_PORT: String(standIn.port),
      HANDSHAKE_WAIT: '2s',
      ...over,
    });
  const run = (event: unknown = loadEvent('schedule.json'), over: Record<string, string> = {}) =>
    runJob(createRotateCertificatesJob({ pollMs: 250 }), config(over), event, {});
  const steps = (r: { actions: { type: string; status: string }[] }) => r.actions.map((a) => `${a.type}:${a.status}`);

  async function listenerCertificates(): Promise<{ default: string | undefined; all: string[] }> {
    const l = await aws.elbv2.send(new DescribeListenersCommand({ ListenerArns: [lb.httpsListenerArn] }));
    const all = await aws.elbv2.send(new DescribeListenerCertificatesCommand({ ListenerArn: lb.httpsListenerArn }));
    return {
      default: l.Listeners?.[0]?.Certificates?.[0]?.CertificateArn,
      all: (all.Certificates ?? []).map((c) => c.CertificateArn as string),
    };
  }
  async function domainCertificates(): Promise<string[]> {
    const res = await aws.acm.send(new ListCertificatesCommand({}));
    return (res.CertificateSummaryList ?? []).filter((c) => c.DomainName === DOMAIN).map((c) => c.CertificateArn as string);
  }
  async function waitIssued(arn: string): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const d = await aws.acm.send(new DescribeCertificateCommand({ CertificateArn: arn }));
      if (d.Certificate?.Status === 'ISSUED') return;
      await sleep(200);
    }
    throw new Error(`${arn} not ISSUED within 10 s`);
  }

  it('dry run first: reports the request it would make, changes nothing', async () => {
    const report = await run(loadEvent('rotate-certificates/manual-dry-run.json'));
    expect(steps(report)).toEqual(['request-certificate:planned']);
    expect(report.observed).toMatchObject({ served: { ok: true, daysLeft: expect.any(Number) } });
    expect(await domainCertificates()).toEqual([oldArn]);
  });

  it.each([
    ['imported by the operator (no fleet tag): taken off the listener, left in ACM', false],
    ['carrying the fleet tag: taken off the listener and deleted', true],
  ])('request → validation records → swap with handshake proof → cleanup → healthy; old certificate %s', async (_, fleetTagged) => {
    if (fleetTagged) await aws.acm.send(new AddTagsToCertificateCommand({ CertificateArn: oldArn, Tags: [FLEET_TAG] }));

    // Run 1: inside the window → a DNS-validated replacement, tagged, with its records in the zone.
    const first = await run();
    expect(steps(first)).toEqual(['request-certificate:applied']);
    const newArn = first.actions[0]?.detail?.certificateArn as string;
    const tags = await aws.acm.send(new ListTagsForCertificateCommand({ CertificateArn: newArn }));
    expect(tags.Tags).toContainEqual({ Key: TAG_ROTATION_OF, Value: oldArn });
    expect(tags.Tags).toContainEqual(FLEET_TAG);
    const detail = (await aws.acm.send(new DescribeCertificateCommand({ CertificateArn: newArn }))).Certificate;
    const record = detail?.DomainValidationOptions?.[0]?.ResourceRecord;
    const zone = await aws.route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: lb.hostedZoneId }));
    expect(zone.ResourceRecordSets).toContainEqual(
      expect.objectContaining({ Name: record?.Name, Type: 'CNAME', ResourceRecords: [{ Value: record?.Value }] }),
    );

    // Run 2 (retry before validation): no duplicate request.
    const second = await run();
    expect(steps(second).filter((s) => s.startsWith('request-certificate'))).toEqual([]);
    expect((await domainCertificates()).sort()).toEqual([oldArn, newArn].sort());

    // Run 3: ISSUED → default swapped, old one kept for rollback, handshake shows the new serial.
    await waitIssued(newArn);
    const third = await run();
    expect(steps(third)).toEqual(['swap-listener-certificate:applied', 'verify-handshake:applied']);
    expect(await listenerCertificates()).toEqual({ default: newArn, all: [newArn, oldArn] });
    expect(third.actions[1]?.detail?.serial).toBe(normaliseSerial(detail?.Serial ?? ''));
    expect(standIn.served().at(-1)).toBe(normaliseSerial(detail?.Serial ?? ''));

    // Run 4: handshake proves the swap → old one removed from the listener and, only if it is the fleet's, deleted
    // (moto's InUseBy is empty). A certificate the fleet did not create is left in ACM: the run still succeeds.
    const fourth = await run();
    expect(await listenerCertificates()).toEqual({ default: newArn, all: [newArn] });
    if (fleetTagged) {
      expect(steps(fourth)).toEqual(['remove-listener-certificate:applied', 'delete-certificate:applied']);
      expect(await domainCertificates()).toEqual([newArn]);
    } else {
      expect(steps(fourth)).toEqual(['remove-listener-certificate:applied', 'delete-certificate:skipped']);
      expect(fourth.actions[1]?.reason).toBe(
        'not created by this fleet (no registry-fleet=registry-it tag): left in ACM; delete it by hand once nothing uses it',
      );
      expect((await domainCertificates()).sort()).toEqual([oldArn, newArn].sort());
    }

    // Run 5: nothing left to do.
    const fifth = await run();
    expect(fifth.actions).toEqual([]);
    expect(fifth.details).toMatchObject({ step: 'healthy', servedMatchesListenerDefault: true });
  });

  it('a load balancer that keeps serving the old certificate: the swap is rolled back, and not retried', async () => {
    const first = await run(); // its handshake saw the old certificate
    standIn.freeze(true);
    const newArn = first.actions[0]?.detail?.certificateArn as string;
    await waitIssued(newArn);

    const error = await run().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as Error).message).toContain(`rolled back to ${oldArn}`);
    expect((await listenerCertificates()).default).toBe(oldArn);
    const tags = await aws.acm.send(new ListTagsForCertificateCommand({ CertificateArn: newArn }));
    expect(tags.Tags?.map((t) => t.Key)).toContain(TAG_ROLLED_BACK_AT);

    // Later runs neither swap nor request again, but fail loudly while the old certificate runs out.
    const info = vi.spyOn(logger, 'info');
    const blocked = await run().catch((e: unknown) => e);
    const after = (info.mock.calls.find(([m]) => m === 'job report')?.[1] as { report: Report }).report;
    info.mockRestore();
    expect(blocked).toBeInstanceOf(JobFailedError);
    expect((blocked as Error).message).toContain(`rotation-blocked ${newArn}`);
    expect(after.details).toMatchObject({ step: 'rolled-back' });
    expect(steps(after)).toEqual(['wait:skipped']);
    expect(after.refusals?.map((r) => r.type)).toEqual(['rotation-blocked']);
    expect(after.refusals?.[0]?.reason).toContain(`the swap to ${newArn} was rolled back`);
    expect(after.refusals?.[0]?.reason).toContain('{"force": true}');
    expect((await listenerCertificates()).default).toBe(oldArn);
    expect((await domainCertificates()).sort()).toEqual([oldArn, newArn].sort());
  });

  it('an old ECDSA certificate outranks the RSA replacement: it is not kept on the listener, and a slow swap rolls back by re-swapping', async () => {
    await importCertificate(aws.acm, makeCertificate({ cn: DOMAIN, days: 10 }), oldArn); // EC P-256, same ARN
    const first = await run();
    const newArn = first.actions[0]?.detail?.certificateArn as string;
    await waitIssued(newArn);
    standIn.freeze(true);
    const error = await run().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as Error).message).toContain(`rolled back to ${oldArn}`);
    expect(await listenerCertificates()).toEqual({ default: oldArn, all: [oldArn] }); // never both: the ALB would serve the old one
    standIn.freeze(false);

    // Forced retry once the load balancer behaves: the swap is served and cleaned up without the old one ever attached.
    const retried = await run({ force: true });
    expect(steps(retried)).toEqual(['swap-listener-certificate:applied', 'verify-handshake:applied']);
    expect(retried.actions[0]?.detail).toMatchObject({ keptForRollback: null });
    expect(await listenerCertificates()).toEqual({ default: newArn, all: [newArn] });
  });

  it('foreign certificates in the account are never tagged, imported over or deleted (a full rotation and an event for one of them)', async () => {
    const foreignSameName = await importCertificate(aws.acm, makeCertificate({ cn: DOMAIN, days: 5, key: 'rsa:2048' }));
    const otherFleet = await importCertificate(aws.acm, makeCertificate({ cn: DOMAIN, days: 5, key: 'rsa:2048' }));
    await aws.acm.send(
      new AddTagsToCertificateCommand({ CertificateArn: otherFleet, Tags: [{ Key: 'registry-fleet', Value: 'registry-other' }] }),
    );
    const otherName = await importCertificate(aws.acm, makeCertificate({ cn: 'other.example.com', days: 5 }));
    const foreign = [foreignSameName, otherFleet, otherName];
    const snapshot = async () =>
      Promise.all(
        foreign.map(async (arn) => {
          const d = (await aws.acm.send(new DescribeCertificateCommand({ CertificateArn: arn }))).Certificate;
          const t = await aws.acm.send(new ListTagsForCertificateCommand({ CertificateArn: arn }));
          return { arn, serial: d?.Serial, tags: t.Tags ?? [] };
        }),
      );
    const before = await snapshot();

    const expiring = { ...(loadEvent('certificate-expiring.json') as Record<string, unknown>), resources: [foreignSameName] };
    const ignored = await run(expiring);
    expect(ignored.details).toMatchObject({ step: 'ignored' });
    expect(steps(ignored)).toEqual(['ignore-event:skipped']);

    const first = await run();
    const newArn = first.actions[0]?.detail?.certificateArn as string;
    await waitIssued(newArn);
    await run(); // swap + verify
    await run(); // cleanup
    expect(await listenerCertificates()).toEqual({ default: newArn, all: [newArn] });
    expect(await snapshot()).toEqual(before);
  });

  it('the replacement keeps the other names of the certificate it replaces, with a validation record for each in the zone', async () => {
    await importCertificate(aws.acm, makeCertificate({ cn: DOMAIN, sans: [DOMAIN, 'mirror.example.com'], days: 10 }), oldArn);
    const first = await run();
    expect(steps(first)).toEqual(['request-certificate:applied']);
    const newArn = first.actions[0]?.detail?.certificateArn as string;
    const detail = (await aws.acm.send(new DescribeCertificateCommand({ CertificateArn: newArn }))).Certificate;
    expect(detail?.DomainName).toBe(DOMAIN);
    expect([...(detail?.SubjectAlternativeNames ?? [])].sort()).toEqual([DOMAIN, 'mirror.example.com'].sort());
    const records = (detail?.DomainValidationOptions ?? []).map((o) => o.ResourceRecord);
    expect(records).toHaveLength(2);
    const zone = await aws.route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: lb.hostedZoneId }));
    for (const r of records)
      expect(zone.ResourceRecordSets).toContainEqual(
        expect.objectContaining({ Name: r?.Name, Type: 'CNAME', ResourceRecords: [{ Value: r?.Value }] }),
      );
  });

  it('an HTTP listener: clear error, nothing changed', async () => {
    const error = await run({ force: true }, { LISTENER_ARN: lb.httpListenerArn }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toMatch(
      /is a HTTP listener on port 80: rotate-certificates manages the certificate of an HTTPS listener/,
    );
    expect(await domainCertificates()).toEqual([oldArn]);
    expect(await listenerCertificates()).toEqual({ default: oldArn, all: [oldArn] });
  });
});
