// acme mode end to end: Pebble (Let's Encrypt's ACME test server) issues through DNS-01 records the job writes
// to moto's Route 53, and validates them for real: it resolves them through a loopback DNS server (local/dns.ts)
// that answers from moto's Route 53. The certificate is re-imported into moto's ACM under the SAME ARN, and the job's TLS check
// sees it on the load balancer stand-in.
import { AddTagsToCertificateCommand, DescribeCertificateCommand, ListTagsForCertificateCommand } from '@aws-sdk/client-acm';
import { DescribeListenersCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ListResourceRecordSetsCommand } from '@aws-sdk/client-route-53';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  ListSecretVersionIdsCommand,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { JobFailedError } from '../../shared/errors.ts';
import { runJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { logger } from '../../shared/observability.ts';
import { loadRotateCertificatesConfig } from '../../functions/rotate-certificates/config.ts';
import { createRotateCertificatesJob } from '../../functions/rotate-certificates/job.ts';
import { normaliseSerial } from '../../functions/rotate-certificates/model.ts';
import { startAlbStandIn, type AlbStandIn } from '../../local/alb-stand-in.ts';
import { makeCertificate } from '../../local/certs.ts';
import { startLoopbackDns, type LoopbackDns } from '../../local/dns.ts';
import { awsClients, createLoadBalancer, importCertificate, type AwsClients, type LoadBalancerSetup } from '../../local/elb.ts';
import { loadEvent } from '../support/events.ts';
import { startMoto, type Moto } from '../../local/moto.ts';
import { startPebble, type Pebble } from '../../local/pebble.ts';

const DOMAIN = 'registry.example.com';
let moto: Moto;
let pebble: Pebble;
let dns: LoopbackDns;
let aws: AwsClients;
let lb: LoadBalancerSetup;
let standIn: AlbStandIn;
let certificateArn: string;
let secretArn: string;
let pendingArn: string;

beforeAll(async () => {
  moto = await startMoto();
  Object.assign(process.env, moto.env);
  aws = awsClients(moto.endpoint);
  dns = await startLoopbackDns(aws.route53);
  pebble = await startPebble({ dnsServer: dns.address });
  certificateArn = await importCertificate(aws.acm, makeCertificate({ cn: DOMAIN, days: 10 }));
  await aws.acm.send(
    new AddTagsToCertificateCommand({ CertificateArn: certificateArn, Tags: [{ Key: 'registry-fleet', Value: 'registry-it' }] }),
  );
  lb = await createLoadBalancer(aws, certificateArn, 'example.com');
  standIn = await startAlbStandIn(aws.elbv2, aws.acm, lb.httpsListenerArn);
  // Infra creates the secret with no key in it; the job makes the account key on first use.
  secretArn = (await aws.secrets.send(new CreateSecretCommand({ Name: 'registry-acme-account', SecretString: '{}' }))).ARN as string;
  pendingArn = (await aws.secrets.send(new CreateSecretCommand({ Name: 'registry-acme-pending', SecretString: '{}' }))).ARN as string;
});

afterAll(async () => {
  await standIn?.close();
  await Promise.all([moto?.stop(), pebble?.stop(), dns?.stop()]);
});

describe('acme mode with Pebble and moto', () => {
  const config = () =>
    loadRotateCertificatesConfig({
      ...moto.env,
      LISTENER_ARN: lb.httpsListenerArn,
      DOMAIN_NAME: DOMAIN,
      HOSTED_ZONE_ID: lb.hostedZoneId,
      FLEET_TAG_VALUE: 'registry-it',
      CERTIFICATE_MODE: 'acme',
      ACME_DIRECTORY_URL: pebble.directoryUrl,
      ACME_ACCOUNT_SECRET_ARN: secretArn,
      ACME_PENDING_SECRET_ARN: pendingArn,
      ACME_EMAIL: 'ops@example.com',
      ACME_CA_BUNDLE: pebble.caBundlePath,
      HANDSHAKE_HOST: '127.0.0.1',
      HANDSHAKE_PORT: String(standIn.port),
      HANDSHAKE_WAIT: '5s',
      DNS_CHANGE_TIMEOUT: '10s',
    });
  const run = () => runJob(createRotateCertificatesJob({ pollMs: 250 }), config(), loadEvent('schedule.json'), {});

  it('issues through DNS-01, re-imports into the same ARN, proves it with a handshake, logs no private key', async () => {
    const before = (await aws.acm.send(new DescribeCertificateCommand({ CertificateArn: certificateArn }))).Certificate;
    const lines: string[] = [];
    for (const method of ['log', 'info', 'debug', 'warn', 'error'] as const) {
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(' ')));
    }
    logger.setLogLevel('DEBUG');
    let report;
    try {
      report = await run();
    } finally {
      logger.setLogLevel('SILENT');
      vi.restoreAllMocks();
    }

    expect(report.actions.map((a) => `${a.type}:${a.status}`)).toEqual(['renew-acme-certificate:applied', 'verify-handshake:applied']);
    const after = (await aws.acm.send(new DescribeCertificateCommand({ CertificateArn: certificateArn }))).Certificate;
    expect(after?.CertificateArn).toBe(certificateArn);
    expect(after?.NotAfter?.getTime()).not.toBe(before?.NotAfter?.getTime());
    expect(after?.NotAfter?.getTime()).toBeGreaterThan(Date.now() + 30 * 86_400_000);
    expect(after?.Issuer).toMatch(/pebble/i);
    expect(normaliseSerial(after?.Serial ?? '')).toBe(report.actions[0]?.detail?.serial);
    expect(report.actions[1]?.detail?.serial).toBe(report.actions[0]?.detail?.serial);
    expect(standIn.served().at(-1)).toBe(report.actions[0]?.detail?.serial);

    // moto drops tags on a re-import (ACM keeps them): the job put the fleet tag back.
    expect(report.actions[0]?.detail?.tagsRestored).toEqual(['registry-fleet']);
    const tags = await aws.acm.send(new ListTagsForCertificateCommand({ CertificateArn: certificateArn }));
    expect(tags.Tags).toEqual([{ Key: 'registry-fleet', Value: 'registry-it' }]);

    // The listener did not change: same ARN, new content.
    const listener = await aws.elbv2.send(new DescribeListenersCommand({ ListenerArns: [lb.httpsListenerArn] }));
    expect(listener.Listeners?.[0]?.Certificates?.[0]?.CertificateArn).toBe(certificateArn);

    // The account key was created and stored; the challenge record was written, waited for, and cleaned up.
    const secret = await aws.secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
    expect(JSON.parse(secret.SecretString ?? '{}').accountKeyPem).toContain('PRIVATE KEY');
    expect(lines.some((l) => l.includes('acme challenge record in sync') && l.includes(`_acme-challenge.${DOMAIN}.`))).toBe(true);
    // Pebble validated the challenge by asking DNS, not by skipping it.
    expect(dns.queries).toContain(`_acme-challenge.${DOMAIN}. TXT`);
    const zone = await aws.route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: lb.hostedZoneId }));
    expect(zone.ResourceRecordSets?.filter((r) => r.Type === 'TXT')).toEqual([]);

    // Every log line of the run, acme-client's debug included: no key material.
    expect(lines.length).toBeGreaterThan(3);
    expect(lines.join('\n')).not.toContain('PRIVATE KEY');
  });

  it('the next run finds the renewed certificate healthy and reuses the stored account key', async () => {
    const before = await aws.secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
    const report = await run();
    expect(report.actions).toEqual([]);
    expect(report.details).toMatchObject({ step: 'healthy', servedMatchesListenerDefault: true });
    const after = await aws.secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
    expect(after.SecretString).toBe(before.SecretString);
  });

  it('(a) an ECDSA P-256 certificate with two names renews into ECDSA P-256 with both names, in the same ARN', async () => {
    const names = [DOMAIN, 'mirror.example.com'];
    await importCertificate(aws.acm, makeCertificate({ cn: DOMAIN, sans: names, days: 10 }), certificateArn);
    // A day after the first test's order: ACME_ORDER_COOLDOWN (24h) counts from the stage's orderedAt, the run's `now`.
    const report = await runJob(
      createRotateCertificatesJob({ pollMs: 250 }),
      config(),
      loadEvent('schedule.json'),
      {},
      { clock: () => hoursLater(25) },
    );
    expect(report.actions.map((a) => `${a.type}:${a.status}`)).toEqual(['renew-acme-certificate:applied', 'verify-handshake:applied']);
    const after = (await aws.acm.send(new DescribeCertificateCommand({ CertificateArn: certificateArn }))).Certificate;
    expect(after?.CertificateArn).toBe(certificateArn);
    expect(after?.Issuer).toMatch(/pebble/i);
    expect(after?.KeyAlgorithm).toBe('EC_prime256v1');
    expect([...(after?.SubjectAlternativeNames ?? [])].sort()).toEqual([...names].sort());
    expect(normaliseSerial(after?.Serial ?? '')).toBe(report.actions[0]?.detail?.serial);
    // The stage is finished and holds no key any more.
    const stage = JSON.parse((await aws.secrets.send(new GetSecretValueCommand({ SecretId: pendingArn }))).SecretString ?? '{}');
    expect(stage).toMatchObject({ certificateArn, stage: 'verified', serial: report.actions[0]?.detail?.serial });
    expect(JSON.stringify(stage)).not.toContain('PRIVATE KEY');
  });

  it('(c) after `verified`, no version of any secret (deprecated ones included) holds a private key but the account key', async () => {
    const account = JSON.parse((await aws.secrets.send(new GetSecretValueCommand({ SecretId: secretArn }))).SecretString ?? '{}');
    const stage = JSON.parse((await aws.secrets.send(new GetSecretValueCommand({ SecretId: pendingArn }))).SecretString ?? '{}');
    expect(stage).toMatchObject({ certificateArn, stage: 'verified' });
    const keys = await privateKeysAtRest();
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.filter((k) => k.pem !== bare(account.accountKeyPem))).toEqual([]);
    expect(new Set(keys.map((k) => k.secret))).toEqual(new Set(['registry-acme-account']));
  });

  it('(b) a load balancer slower than HANDSHAKE_WAIT: three runs place ONE order with Pebble; the run after it switches finishes', async () => {
    await importCertificate(aws.acm, makeCertificate({ cn: DOMAIN, days: 10 }), certificateArn);
    // A day after (a)'s order (the cooldown); the three runs come minutes apart, as Lambda's retries do.
    const runAt = () =>
      runJob(createRotateCertificatesJob({ pollMs: 250 }), config(), loadEvent('schedule.json'), {}, { clock: () => hoursLater(50) });
    const orders = () => pebbleOrders(pebble.logs());
    const ordersBefore = orders();
    standIn.freeze(true); // keeps serving the old certificate whatever ACM and the listener say
    try {
      for (let i = 0; i < 3; i++) {
        const error = await runAt().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(JobFailedError);
        expect((error as Error).message).toContain('verify-handshake');
      }
      expect(orders() - ordersBefore).toBe(1);
      const stage = JSON.parse((await aws.secrets.send(new GetSecretValueCommand({ SecretId: pendingArn }))).SecretString ?? '{}');
      expect(stage).toMatchObject({ certificateArn, stage: 'imported' });
    } finally {
      standIn.freeze(false);
    }
    const done = await runAt();
    expect(done.details).toMatchObject({ step: 'finish' });
    expect(done.actions.map((a) => `${a.type}:${a.status}`)).toEqual(['finish-acme-rotation:applied']);
    expect(orders() - ordersBefore).toBe(1);
    const after = (await aws.acm.send(new DescribeCertificateCommand({ CertificateArn: certificateArn }))).Certificate;
    expect(standIn.served().at(-1)).toBe(normaliseSerial(after?.Serial ?? ''));
  }, 120_000);

  it('(d) a certificate for D and *.D renews: both DNS-01 challenges at _acme-challenge.D are served together', async () => {
    // D is a name no earlier test ordered: Pebble reuses a valid authorization, which would leave one challenge only.
    const d = 'cache.example.com';
    const names = [DOMAIN, d, `*.${d}`];
    await importCertificate(aws.acm, makeCertificate({ cn: DOMAIN, sans: names, days: 10 }), certificateArn);
    const report = await runJob(
      createRotateCertificatesJob({ pollMs: 250 }),
      config(),
      loadEvent('schedule.json'),
      {},
      { clock: () => hoursLater(75) },
    ).catch((e: unknown) => (e instanceof JobFailedError ? (e.report as Report) : Promise.reject(e)));
    expect(report.actions.map((a) => `${a.type}:${a.status}${a.error ? ` ${a.error}` : ''}`)).toEqual([
      'renew-acme-certificate:applied',
      'verify-handshake:applied',
    ]);
    const after = (await aws.acm.send(new DescribeCertificateCommand({ CertificateArn: certificateArn }))).Certificate;
    expect(after?.CertificateArn).toBe(certificateArn);
    expect(after?.Issuer).toMatch(/pebble/i);
    expect([...(after?.SubjectAlternativeNames ?? [])].sort()).toEqual([...names].sort());
    expect(standIn.served().at(-1)).toBe(normaliseSerial(after?.Serial ?? ''));
    expect(dns.queries.filter((q) => q === `_acme-challenge.${d}. TXT`).length).toBeGreaterThanOrEqual(2);
    // Both challenges were cleaned up, each removing only its own value: no TXT record is left.
    const zone = await aws.route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: lb.hostedZoneId }));
    expect(zone.ResourceRecordSets?.filter((r) => r.Type === 'TXT')).toEqual([]);
  }, 120_000);
});

/** A PEM without the whitespace around it. */
const bare = (pem: string): string => pem.trim();

/** Every private key PEM in any version of any secret (deprecated versions included), read by VersionId. */
async function privateKeysAtRest(): Promise<{ secret: string; pem: string }[]> {
  const found: { secret: string; pem: string }[] = [];
  const secrets = (await aws.secrets.send(new ListSecretsCommand({ IncludePlannedDeletion: true }))).SecretList ?? [];
  for (const s of secrets) {
    const versions = await aws.secrets.send(new ListSecretVersionIdsCommand({ SecretId: s.ARN, IncludeDeprecated: true }));
    for (const v of versions.Versions ?? []) {
      const value = await aws.secrets.send(new GetSecretValueCommand({ SecretId: s.ARN, VersionId: v.VersionId }));
      for (const pem of (value.SecretString ?? '')
        .replaceAll('\\n', '\n')
        .match(/-----BEGIN [A-Z ]*PRIVATE KEY-----[^-]+-----END [A-Z ]*PRIVATE KEY-----/g) ?? []) {
        found.push({ secret: s.Name ?? '', pem: bare(pem) });
      }
    }
  }
  return found;
}

/** New orders Pebble accepted, counted in its log (one `Added order "…" to the db` line each). */
function pebbleOrders(logs: string): number {
  return logs.split('\n').filter((l) => /Added order "[^"]+" to the db/.test(l)).length;
}

const hoursLater = (hours: number): Date => new Date(Date.now() + hours * 3_600_000);
