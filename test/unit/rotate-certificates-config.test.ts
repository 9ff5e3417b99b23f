import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, ValidationError } from '../../shared/errors.ts';
import { toTrigger } from '../../shared/triggers.ts';
import { loadRotateCertificatesConfig } from '../../functions/rotate-certificates/config.ts';
import { job } from '../../functions/rotate-certificates/job.ts';
import { EVENTS_DIR, loadEvent } from '../support/events.ts';

const base = {
  AWS_REGION: 'us-east-1',
  LISTENER_ARN: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/reg/50dc6c495c0c9188/f2f7dc8efc522ab2',
  DOMAIN_NAME: 'Registry.Example.com',
  HOSTED_ZONE_ID: '/hostedzone/Z0123456789ABCDEFGHIJ',
  FLEET_TAG_VALUE: 'registry-prod',
};
const acmeVars = {
  CERTIFICATE_MODE: 'acme',
  ACME_DIRECTORY_URL: 'https://acme-staging-v02.api.letsencrypt.org/directory',
  ACME_ACCOUNT_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:registry-acme-AbCdEf',
  ACME_EMAIL: 'ops@example.com',
  ACME_PENDING_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:registry-acme-pending-XyZ123',
};

describe('loadRotateCertificatesConfig', () => {
  it('defaults: acm mode, 30d window, port 443', () => {
    expect(loadRotateCertificatesConfig(base)).toMatchObject({
      listenerArn: base.LISTENER_ARN,
      domainName: 'registry.example.com',
      hostedZoneId: 'Z0123456789ABCDEFGHIJ',
      renewBeforeMs: 30 * 86_400_000,
      mode: 'acm',
      handshake: { port: 443, timeoutMs: 10_000, waitMs: 120_000 },
      fleetTag: { key: 'registry-fleet', value: 'registry-prod' },
      dryRun: false,
    });
    expect(loadRotateCertificatesConfig(base).acme).toBeUndefined();
  });

  it('FLEET_TAG_KEY overrides the fleet tag key', () => {
    expect(loadRotateCertificatesConfig({ ...base, FLEET_TAG_KEY: 'fleet' }).fleetTag).toEqual({ key: 'fleet', value: 'registry-prod' });
  });

  it('acme mode with its settings', () => {
    const config = loadRotateCertificatesConfig({
      ...base,
      ...acmeVars,
      ACME_CA_BUNDLE: '/tmp/ca.pem',
      HANDSHAKE_HOST: '127.0.0.1',
      HANDSHAKE_PORT: '8443',
    });
    expect(config.acme).toEqual({
      directoryUrl: acmeVars.ACME_DIRECTORY_URL,
      accountSecretArn: acmeVars.ACME_ACCOUNT_SECRET_ARN,
      email: 'ops@example.com',
      caBundlePath: '/tmp/ca.pem',
      pendingSecretArn: acmeVars.ACME_PENDING_SECRET_ARN,
    });
    expect(config.handshake).toMatchObject({ host: '127.0.0.1', port: 8443 });
  });

  it('acme mode without its settings names what is missing', () => {
    expect(() => loadRotateCertificatesConfig({ ...base, CERTIFICATE_MODE: 'acme', ACME_EMAIL: 'ops@example.com' })).toThrow(
      new ConfigError(
        'invalid configuration: CERTIFICATE_MODE=acme needs ACME_DIRECTORY_URL, ACME_ACCOUNT_SECRET_ARN, ACME_EMAIL; missing: ACME_DIRECTORY_URL, ACME_ACCOUNT_SECRET_ARN',
      ),
    );
  });

  it('acm mode without HOSTED_ZONE_ID loads (the job reports validation records to create by hand)', () => {
    const config = loadRotateCertificatesConfig({ ...base, HOSTED_ZONE_ID: undefined });
    expect(config).toMatchObject({ mode: 'acm', domainName: 'registry.example.com' });
    expect(config).not.toHaveProperty('hostedZoneId');
  });

  it('acme mode without HOSTED_ZONE_ID fails naming it (DNS-01 needs Route 53)', () => {
    expect(() => loadRotateCertificatesConfig({ ...base, ...acmeVars, HOSTED_ZONE_ID: undefined })).toThrow(
      new ConfigError(
        'invalid configuration: CERTIFICATE_MODE=acme needs HOSTED_ZONE_ID (DNS-01 challenges go through Route 53); missing: HOSTED_ZONE_ID',
      ),
    );
  });

  it.each([
    [{ DOMAIN_NAME: 'registry' }, 'DOMAIN_NAME="registry" is not valid: expected a DNS host name'],
    [{ DOMAIN_NAME: 'bad_name.example.com' }, 'DOMAIN_NAME="bad_name.example.com" is not valid'],
    [{ DOMAIN_NAME: '-x.example.com' }, 'DOMAIN_NAME="-x.example.com" is not valid'],
    [{ DOMAIN_NAME: `${'a'.repeat(64)}.example.com` }, 'is not valid: expected a DNS host name'],
    [{ DOMAIN_NAME: 'https://registry.example.com' }, 'DOMAIN_NAME="https://registry.example.com" is not valid'],
    [{ DOMAIN_NAME: undefined }, 'DOMAIN_NAME is missing'],
    [{ FLEET_TAG_VALUE: undefined }, 'FLEET_TAG_VALUE is missing'],
    [{ LISTENER_ARN: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/y' }, 'LISTENER_ARN='],
    [{ HOSTED_ZONE_ID: 'zone-1' }, 'HOSTED_ZONE_ID="zone-1" is not valid'],
    [{ RENEW_BEFORE: '2w' }, 'RENEW_BEFORE="2w" is not valid'],
    [{ CERTIFICATE_MODE: 'letsencrypt' }, 'CERTIFICATE_MODE="letsencrypt" is not valid: expected one of acm, acme'],
    [{ HANDSHAKE_PORT: '0' }, 'HANDSHAKE_PORT="0" is not valid'],
    [{ ...acmeVars, ACME_DIRECTORY_URL: 'http://acme.example.com/dir' }, 'ACME_DIRECTORY_URL='],
    [{ ...acmeVars, ACME_EMAIL: 'ops' }, 'ACME_EMAIL="ops" is not valid: expected an email address'],
  ])('rejects %o', (vars, message) => {
    expect(() => loadRotateCertificatesConfig({ ...base, ...vars })).toThrow(ConfigError);
    expect(() => loadRotateCertificatesConfig({ ...base, ...vars })).toThrow(message);
  });
});

describe('rotate-certificates triggers', () => {
  it('parses every sample in events/rotate-certificates/', () => {
    const dir = join(EVENTS_DIR, 'rotate-certificates');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.sort()).toEqual(['manual-dry-run.json', 'manual-force.json']);
    for (const file of files) expect(toTrigger(loadEvent(`rotate-certificates/${file}`), job.options).kind).toBe('manual');
    expect(toTrigger(loadEvent('rotate-certificates/manual-force.json'), job.options)).toMatchObject({
      kind: 'manual',
      dryRun: false,
      options: { force: true },
    });
    expect(toTrigger(loadEvent('rotate-certificates/manual-dry-run.json'), job.options)).toMatchObject({
      kind: 'manual',
      dryRun: true,
      options: {},
    });
  });

  it('accepts the schedule and the ACM expiry event', () => {
    expect(job.accepts).toEqual(['schedule', 'certificate-expiry', 'manual']);
    expect(toTrigger(loadEvent('certificate-expiring.json'), job.options)).toMatchObject({ kind: 'certificate-expiry', daysToExpiry: 31 });
  });

  it('unknown payload keys and bad values are validation errors', () => {
    expect(() => toTrigger({ force: true, domain: 'x' }, job.options)).toThrow(ValidationError);
    expect(() => toTrigger({ force: true, domain: 'x' }, job.options)).toThrow(
      'unknown key "domain" (allowed keys: dryRun, reason, force)',
    );
    expect(() => toTrigger({ force: 'yes' }, job.options)).toThrow('force: expected true or false');
  });
});

describe('loadRotateCertificatesConfig: the ACME pending stage and the order cooldown', () => {
  it('acme mode needs the pending-stage secret, and names it', () => {
    const { ACME_PENDING_SECRET_ARN: _, ...withoutPending } = acmeVars;
    expect(() => loadRotateCertificatesConfig({ ...base, ...withoutPending })).toThrow(
      'CERTIFICATE_MODE=acme needs ACME_PENDING_SECRET_ARN',
    );
  });

  it('ACME_ORDER_COOLDOWN: 24h by default, validated, in the policy', () => {
    expect(loadRotateCertificatesConfig({ ...base, ...acmeVars }).policy).toMatchObject({
      mode: 'acme',
      orderCooldownMs: 86_400_000,
      force: false,
    });
    expect(loadRotateCertificatesConfig({ ...base, ...acmeVars, ACME_ORDER_COOLDOWN: '48h' }).policy.orderCooldownMs).toBe(172_800_000);
    expect(() => loadRotateCertificatesConfig({ ...base, ...acmeVars, ACME_ORDER_COOLDOWN: '5m' })).toThrow(
      'ACME_ORDER_COOLDOWN="5m" is not valid',
    );
  });

  it('an expiry event puts its certificate into the scope; a manual force does not', () => {
    const eventArn = 'arn:aws:acm:us-east-1:123456789012:certificate/61f50cd4-45b9-4259-b049-d0a53682fa4b';
    const expiry = job.scope(toTrigger(loadEvent('certificate-expiring.json'), job.options), loadRotateCertificatesConfig(base));
    expect(expiry).toMatchObject({ force: false, eventCertificateArn: eventArn, policy: { force: false, eventCertificateArn: eventArn } });
    const forced = job.scope(toTrigger({ force: true }, job.options), loadRotateCertificatesConfig(base));
    expect(forced).toMatchObject({ force: true, policy: { force: true } });
    expect(forced).not.toHaveProperty('eventCertificateArn');
    expect(forced.policy).not.toHaveProperty('eventCertificateArn');
  });
});
