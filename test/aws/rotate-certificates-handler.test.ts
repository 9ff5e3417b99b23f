import { X509Certificate } from 'node:crypto';
import {
  ACMClient,
  AddTagsToCertificateCommand,
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  ImportCertificateCommand,
  ListCertificatesCommand,
  ListTagsForCertificateCommand,
  RequestCertificateCommand,
  type CertificateDetail,
} from '@aws-sdk/client-acm';
import {
  AddListenerCertificatesCommand,
  DescribeListenerCertificatesCommand,
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  ElasticLoadBalancingV2Client,
  ModifyListenerCommand,
  RemoveListenerCertificatesCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { ChangeResourceRecordSetsCommand, ListResourceRecordSetsCommand, Route53Client } from '@aws-sdk/client-route-53';
import { DeleteSecretCommand, GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { JobFailedError, ValidationError } from '../../shared/errors.ts';
import { runJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { logger } from '../../shared/observability.ts';
import { loadAccountKey } from '../../functions/rotate-certificates/acme.ts';
import { loadRotateCertificatesConfig } from '../../functions/rotate-certificates/config.ts';
import type { Handshake } from '../../functions/rotate-certificates/handshake.ts';
import { createRotateCertificatesJob, type JobDeps } from '../../functions/rotate-certificates/job.ts';
import { normaliseSerial, TAG_ROLLED_BACK_AT, TAG_ROTATION_OF, type Served } from '../../functions/rotate-certificates/model.ts';
import { makeCertificate } from '../../local/certs.ts';
import { loadEvent } from '../support/events.ts';

const elbv2 = mockClient(ElasticLoadBalancingV2Client);
const acm = mockClient(ACMClient);
const route53 = mockClient(Route53Client);
const secrets = mockClient(SecretsManagerClient);

const DOMAIN = 'registry.example.com';
const LISTENER = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/reg/50dc6c495c0c9188/f2f7dc8efc522ab2';
const LB = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/reg/50dc6c495c0c9188';
const OLD = 'arn:aws:acm:us-east-1:123456789012:certificate/11111111-1111-1111-1111-111111111111';
const NEW = 'arn:aws:acm:us-east-1:123456789012:certificate/22222222-2222-2222-2222-222222222222';
const SECRET = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:registry-acme-AbCdEf';
const PENDING = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:registry-acme-pending-XyZ123';
/** The ACM expiry event for one certificate. */
const expiring = (arn: string) => ({ ...(loadEvent('certificate-expiring.json') as Record<string, unknown>), resources: [arn] });

/** The pending-stage secret as an in-memory store; `log` records each stage written and each import, in order. */
function pendingStore(initial: Record<string, unknown> = {}) {
  const store = { value: JSON.stringify(initial), log: [] as string[] };
  secrets.on(GetSecretValueCommand, { SecretId: PENDING }).callsFake(() => ({ SecretString: store.value }));
  secrets.on(PutSecretValueCommand, { SecretId: PENDING }).callsFake((input: { SecretString: string }) => {
    store.value = input.SecretString;
    store.log.push(`stage:${(JSON.parse(input.SecretString) as { stage?: string }).stage ?? '(none)'}`);
    return {};
  });
  return store;
}
const now = new Date('2026-11-23T03:00:00.000Z');
const day = 86_400_000;
const at = (days: number) => new Date(now.getTime() + days * day);
const env = {
  AWS_REGION: 'us-east-1',
  LISTENER_ARN: LISTENER,
  DOMAIN_NAME: DOMAIN,
  HOSTED_ZONE_ID: 'Z0123456789ABCDEFGHIJ',
  HANDSHAKE_WAIT: '1s',
  FLEET_TAG_VALUE: 'registry-prod',
};
const FLEET_TAGS = { 'registry-fleet': 'registry-prod' };
const RECORD = { Name: `_abc.${DOMAIN}.`, Type: 'CNAME' as const, Value: '_def.acm-validations.aws.' };

function detail(arn: string, over: Partial<CertificateDetail> = {}): CertificateDetail {
  return {
    CertificateArn: arn,
    DomainName: DOMAIN,
    SubjectAlternativeNames: [DOMAIN],
    Status: 'ISSUED',
    Type: 'AMAZON_ISSUED',
    Serial: arn === OLD ? '0a:01' : '0b:02',
    NotBefore: at(-300),
    NotAfter: arn === OLD ? at(20) : at(395),
    InUseBy: [LB],
    RenewalEligibility: 'ELIGIBLE',
    DomainValidationOptions: [{ DomainName: DOMAIN, ValidationMethod: 'DNS', ResourceRecord: RECORD }],
    ...over,
  };
}

function listener(defaultArn: string, sni: string[] = [], protocol: 'HTTPS' | 'HTTP' = 'HTTPS'): void {
  elbv2.on(DescribeListenersCommand).resolves({
    Listeners: [
      {
        ListenerArn: LISTENER,
        LoadBalancerArn: LB,
        Protocol: protocol,
        Port: protocol === 'HTTPS' ? 443 : 80,
        Certificates: protocol === 'HTTPS' ? [{ CertificateArn: defaultArn }] : [],
      },
    ],
  });
  elbv2.on(DescribeListenerCertificatesCommand).resolves({
    Certificates: [{ CertificateArn: defaultArn, IsDefault: true }, ...sni.map((a) => ({ CertificateArn: a, IsDefault: false }))],
  });
  elbv2
    .on(DescribeLoadBalancersCommand)
    .resolves({ LoadBalancers: [{ LoadBalancerArn: LB, DNSName: 'reg-123.us-east-1.elb.amazonaws.com' }] });
}

function certificates(list: { detail: CertificateDetail; tags?: Record<string, string> }[]): void {
  acm
    .on(ListCertificatesCommand)
    .resolves({ CertificateSummaryList: list.map((c) => ({ CertificateArn: c.detail.CertificateArn, DomainName: c.detail.DomainName })) });
  for (const c of list) {
    acm.on(DescribeCertificateCommand, { CertificateArn: c.detail.CertificateArn }).resolves({ Certificate: c.detail });
    acm
      .on(ListTagsForCertificateCommand, { CertificateArn: c.detail.CertificateArn })
      .resolves({ Tags: Object.entries(c.tags ?? {}).map(([Key, Value]) => ({ Key, Value })) });
  }
}

const serving = (serial: string, notAfter = at(20)): Served => ({
  ok: true,
  host: 'h',
  port: 443,
  serial,
  notBefore: at(-300).toISOString(),
  notAfter: notAfter.toISOString(),
  names: [DOMAIN],
});

function run(event: unknown, deps: JobDeps, extraEnv: Record<string, string> = {}) {
  const config = loadRotateCertificatesConfig({ ...env, ...extraEnv });
  return runJob(createRotateCertificatesJob({ pollMs: 10, ...deps }), config, event, {}, { clock: () => now });
}

/** A run expected to fail: the error it throws and the report it logged first. */
async function failingRun(
  event: unknown,
  deps: JobDeps,
  extraEnv: Record<string, string> = {},
): Promise<{ error: unknown; report: Report }> {
  const info = vi.spyOn(logger, 'info');
  const error = await run(event, deps, extraEnv).catch((e: unknown) => e);
  const report = (info.mock.calls.find(([m]) => m === 'job report')?.[1] as { report: Report }).report;
  info.mockRestore();
  return { error, report };
}

const WRITES = [
  ModifyListenerCommand,
  AddListenerCertificatesCommand,
  RemoveListenerCertificatesCommand,
  RequestCertificateCommand,
  DeleteCertificateCommand,
  ImportCertificateCommand,
  AddTagsToCertificateCommand,
  ChangeResourceRecordSetsCommand,
] as const;
function expectNoWrites(): void {
  for (const command of WRITES) {
    expect(
      elbv2.commandCalls(command as never).length +
        acm.commandCalls(command as never).length +
        route53.commandCalls(command as never).length,
    ).toBe(0);
  }
}

beforeEach(() => {
  elbv2.reset();
  acm.reset();
  route53.reset();
  secrets.reset();
  route53.on(ListResourceRecordSetsCommand).resolves({ ResourceRecordSets: [] });
  route53.on(ChangeResourceRecordSetsCommand).resolves({ ChangeInfo: { Id: '/change/C1', Status: 'PENDING', SubmittedAt: now } });
});

afterEach(() => {
  logger.setLogLevel('SILENT');
  vi.restoreAllMocks();
});

describe('rotate-certificates (acm) with mocked AWS', () => {
  it('healthy: reads, changes nothing, reports days left', async () => {
    listener(OLD);
    certificates([{ detail: detail(OLD, { NotAfter: at(90) }) }]);
    const handshake = vi.fn<Handshake>(async () => serving('a01', at(90)));
    const report = await run(loadEvent('schedule.json'), { handshake });
    expect(handshake).toHaveBeenCalledWith(
      { host: 'reg-123.us-east-1.elb.amazonaws.com', port: 443, servername: DOMAIN, timeoutMs: 10_000 },
      expect.anything(),
    );
    expect(report.actions).toEqual([]);
    expect(report.details).toMatchObject({ step: 'healthy', daysLeft: 90, servedMatchesListenerDefault: true });
    expect(report.observed).toMatchObject({
      certificates: [{ arn: OLD, role: 'default', daysLeft: 90, serial: 'a01' }],
      served: { ok: true, serial: 'a01' },
    });
    expectNoWrites();
  });

  it('inside the window, renewal pending validation: restores the records and requests a replacement tagged rotation-of + fleet, with an idempotency token', async () => {
    listener(OLD);
    certificates([
      {
        detail: detail(OLD, {
          RenewalSummary: {
            RenewalStatus: 'PENDING_VALIDATION',
            UpdatedAt: now,
            DomainValidationOptions: [{ DomainName: DOMAIN, ResourceRecord: RECORD }],
          },
        }),
      },
    ]);
    acm.on(RequestCertificateCommand).resolves({ CertificateArn: NEW });
    acm.on(DescribeCertificateCommand, { CertificateArn: NEW }).resolves({ Certificate: detail(NEW, { Status: 'PENDING_VALIDATION' }) });
    const report = await run(expiring(OLD), { handshake: async () => serving('a01') });

    expect(acm).toHaveReceivedCommandWith(RequestCertificateCommand, {
      DomainName: DOMAIN,
      SubjectAlternativeNames: [DOMAIN],
      ValidationMethod: 'DNS',
      IdempotencyToken: expect.stringMatching(/^\w{32}$/),
      Tags: [
        { Key: TAG_ROTATION_OF, Value: OLD },
        { Key: 'registry-fleet', Value: 'registry-prod' },
      ],
    });
    expect(route53).toHaveReceivedCommandTimes(ChangeResourceRecordSetsCommand, 2);
    expect(route53).toHaveReceivedCommandWith(ChangeResourceRecordSetsCommand, {
      HostedZoneId: 'Z0123456789ABCDEFGHIJ',
      ChangeBatch: expect.objectContaining({
        Changes: [
          {
            Action: 'UPSERT',
            ResourceRecordSet: { Name: RECORD.Name, Type: 'CNAME', TTL: 300, ResourceRecords: [{ Value: RECORD.Value }] },
          },
        ],
      }),
    });
    expect(report.trigger).toMatchObject({ kind: 'certificate-expiry' });
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['restore-validation-records', 'applied'],
      ['request-certificate', 'applied'],
    ]);
    expect(report.actions[1]?.detail).toMatchObject({ certificateArn: NEW, validationRecords: [RECORD.Name] });
    expect(elbv2).not.toHaveReceivedCommand(ModifyListenerCommand);
  });

  it('without HOSTED_ZONE_ID: no Route 53 call; the records to create by hand are reported; the replacement is still requested', async () => {
    const { HOSTED_ZONE_ID: _zone, ...noZoneEnv } = env;
    const runNoZone = (deps: JobDeps) =>
      runJob(
        createRotateCertificatesJob({ pollMs: 10, ...deps }),
        loadRotateCertificatesConfig(noZoneEnv),
        loadEvent('schedule.json'),
        {},
        { clock: () => now },
      );
    const byHand = `no HOSTED_ZONE_ID: create these DNS records by hand: ${RECORD.Name} CNAME ${RECORD.Value}`;

    listener(OLD);
    certificates([
      {
        detail: detail(OLD, {
          RenewalSummary: {
            RenewalStatus: 'PENDING_VALIDATION',
            UpdatedAt: now,
            DomainValidationOptions: [{ DomainName: DOMAIN, ResourceRecord: RECORD }],
          },
        }),
      },
    ]);
    acm.on(RequestCertificateCommand).resolves({ CertificateArn: NEW });
    acm.on(DescribeCertificateCommand, { CertificateArn: NEW }).resolves({ Certificate: detail(NEW, { Status: 'PENDING_VALIDATION' }) });
    const first = await runNoZone({ handshake: async () => serving('a01') });
    expect(first.actions.map((a) => [a.type, a.status]).sort()).toEqual([
      ['request-certificate', 'applied'],
      ['restore-validation-records', 'skipped'],
    ]);
    expect(first.actions.find((a) => a.type === 'restore-validation-records')?.reason).toContain(byHand);
    expect(first.actions.find((a) => a.type === 'request-certificate')?.detail).toMatchObject({
      certificateArn: NEW,
      validationRecords: [RECORD.Name],
      note: byHand,
    });
    expect(acm).toHaveReceivedCommandWith(RequestCertificateCommand, { DomainName: DOMAIN, ValidationMethod: 'DNS' });

    // Next run: the replacement is pending validation; its records are reported again, still nothing sent to Route 53.
    certificates([
      { detail: detail(OLD) },
      {
        detail: detail(NEW, { Status: 'PENDING_VALIDATION', NotBefore: undefined, NotAfter: undefined }),
        tags: { [TAG_ROTATION_OF]: OLD, ...FLEET_TAGS },
      },
    ]);
    const second = await runNoZone({ handshake: async () => serving('a01') });
    expect(second.details).toMatchObject({ step: 'waiting' });
    expect(second.actions).toEqual([
      expect.objectContaining({
        type: 'create-validation-records',
        target: NEW,
        status: 'skipped',
        reason: `${byHand} (replacement is pending validation)`,
      }),
    ]);

    expect(route53.calls()).toHaveLength(0);
  });

  it.each([
    ['with HOSTED_ZONE_ID: every record upserted once', true],
    ['without HOSTED_ZONE_ID: every record listed', false],
  ])(
    'a certificate with other names: the replacement asks for all of them and the key algorithm, and waits for every validation record (%s)',
    async (_, zone) => {
      const names = ['mirror.example.com', DOMAIN, 'example.com', '*.example.com'];
      const rec = (name: string) => ({ Name: `_v.${name}.`, Type: 'CNAME' as const, Value: `_w.${name}.acm-validations.aws.` });
      const options = names.map((n) => ({ DomainName: n, ValidationMethod: 'DNS' as const, ResourceRecord: rec(n.replace(/^\*\./, '')) }));
      listener(OLD);
      certificates([{ detail: detail(OLD, { SubjectAlternativeNames: names, KeyAlgorithm: 'EC_prime256v1' }) }]);
      acm.on(RequestCertificateCommand).resolves({ CertificateArn: NEW });
      acm
        .on(DescribeCertificateCommand, { CertificateArn: NEW })
        // ACM publishes the records one by one: the first answer lacks the mirror's.
        .resolvesOnce({
          Certificate: detail(NEW, {
            Status: 'PENDING_VALIDATION',
            DomainValidationOptions: options.map((o, i) => (i === 0 ? { ...o, ResourceRecord: undefined } : o)),
          }),
        })
        .resolves({ Certificate: detail(NEW, { Status: 'PENDING_VALIDATION', DomainValidationOptions: options }) });
      const { HOSTED_ZONE_ID: _zone, ...noZoneEnv } = env;
      const config = loadRotateCertificatesConfig(zone ? env : noZoneEnv);
      const report = await runJob(
        createRotateCertificatesJob({ pollMs: 10, handshake: async () => serving('a01') }),
        config,
        loadEvent('schedule.json'),
        {},
        { clock: () => now },
      );

      expect(acm).toHaveReceivedCommandWith(RequestCertificateCommand, {
        DomainName: DOMAIN,
        SubjectAlternativeNames: [DOMAIN, 'mirror.example.com', 'example.com', '*.example.com'],
        KeyAlgorithm: 'EC_prime256v1',
        ValidationMethod: 'DNS',
      });
      const expected = [rec('mirror.example.com'), rec(DOMAIN), rec('example.com')]; // example.com and its wildcard share one
      expect(report.actions.map((a) => [a.type, a.status])).toEqual([['request-certificate', 'applied']]);
      expect(report.actions[0]?.detail).toMatchObject({ certificateArn: NEW, validationRecords: expected.map((r) => r.Name) });
      if (zone) {
        expect(route53).toHaveReceivedCommandTimes(ChangeResourceRecordSetsCommand, 1);
        expect(route53).toHaveReceivedCommandWith(ChangeResourceRecordSetsCommand, {
          ChangeBatch: expect.objectContaining({
            Changes: expected.map((r) => ({
              Action: 'UPSERT',
              ResourceRecordSet: { Name: r.Name, Type: 'CNAME', TTL: 300, ResourceRecords: [{ Value: r.Value }] },
            })),
          }),
        });
      } else {
        expect(route53.calls()).toHaveLength(0);
        expect(report.actions[0]?.detail?.note).toBe(
          `no HOSTED_ZONE_ID: create these DNS records by hand: ${expected.map((r) => `${r.Name} CNAME ${r.Value}`).join(', ')}`,
        );
      }
    },
    10_000,
  );

  it('dry run: plans the same, writes nothing', async () => {
    listener(OLD);
    certificates([{ detail: detail(OLD) }, { detail: detail(NEW), tags: { [TAG_ROTATION_OF]: OLD } }]);
    const report = await run({ dryRun: true }, { handshake: async () => serving('a01') });
    expect(report.dryRun).toBe(true);
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['swap-listener-certificate', 'planned'],
      ['verify-handshake', 'planned'],
    ]);
    expectNoWrites();
  });

  it('issued replacement: swaps, keeps the old one for rollback, verifies the new serial', async () => {
    listener(OLD);
    certificates([{ detail: detail(OLD) }, { detail: detail(NEW), tags: { [TAG_ROTATION_OF]: OLD } }]);
    let swapped = false;
    elbv2.on(ModifyListenerCommand).callsFake(() => {
      swapped = true;
      return {};
    });
    elbv2.on(AddListenerCertificatesCommand).resolves({});
    const report = await run(loadEvent('schedule.json'), { handshake: async () => (swapped ? serving('b02', at(395)) : serving('a01')) });

    expect(elbv2).toHaveReceivedNthCommandWith(ModifyListenerCommand, 1, {
      ListenerArn: LISTENER,
      Certificates: [{ CertificateArn: NEW }],
    });
    expect(elbv2).toHaveReceivedCommandWith(AddListenerCertificatesCommand, {
      ListenerArn: LISTENER,
      Certificates: [{ CertificateArn: OLD }],
    });
    expect(elbv2).toHaveReceivedCommandTimes(ModifyListenerCommand, 1);
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['swap-listener-certificate', 'applied'],
      ['verify-handshake', 'applied'],
    ]);
    expect(report.actions[1]?.detail).toMatchObject({ serial: 'b02' });
    expect(acm).not.toHaveReceivedCommand(DeleteCertificateCommand);
  });

  it('handshake still shows the old serial after the swap: rolls back, tags the replacement, fails the run', async () => {
    listener(OLD);
    certificates([{ detail: detail(OLD) }, { detail: detail(NEW), tags: { [TAG_ROTATION_OF]: OLD } }]);
    elbv2.on(ModifyListenerCommand).resolves({});
    elbv2.on(AddListenerCertificatesCommand).resolves({});
    acm.on(AddTagsToCertificateCommand).resolves({});
    const error = await run(loadEvent('schedule.json'), { handshake: async () => serving('a01') }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as Error).message).toContain(`rolled back to ${OLD}`);
    expect(elbv2).toHaveReceivedNthCommandWith(ModifyListenerCommand, 1, {
      ListenerArn: LISTENER,
      Certificates: [{ CertificateArn: NEW }],
    });
    expect(elbv2).toHaveReceivedNthCommandWith(ModifyListenerCommand, 2, {
      ListenerArn: LISTENER,
      Certificates: [{ CertificateArn: OLD }],
    });
    expect(acm).toHaveReceivedCommandWith(AddTagsToCertificateCommand, {
      CertificateArn: NEW,
      Tags: [{ Key: TAG_ROLLED_BACK_AT, Value: expect.any(String) }],
    });
  });

  it('a later run sees the rollback tag and neither swaps nor requests again, but fails while the certificate is inside RENEW_BEFORE', async () => {
    listener(OLD, [OLD]);
    certificates([
      { detail: detail(OLD) },
      { detail: detail(NEW), tags: { [TAG_ROTATION_OF]: OLD, [TAG_ROLLED_BACK_AT]: at(-1).toISOString() } },
    ]);
    const { error, report } = await failingRun(loadEvent('schedule.json'), { handshake: async () => serving('a01') });
    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as Error).message).toContain(`rotation-blocked ${NEW}`);
    expect(report.details).toMatchObject({ step: 'rolled-back', daysLeft: 20 });
    expect(report.refusals).toEqual([
      expect.objectContaining({
        type: 'rotation-blocked',
        target: NEW,
        reason: expect.stringMatching(
          /\(20 days left\), but the swap to .* was rolled back at .*invoke with \{"force": true\} to retry the swap/,
        ),
      }),
    ]);
    expect(report.actions).toEqual([expect.objectContaining({ type: 'wait', target: NEW, status: 'skipped' })]);
    expectNoWrites();

    // Outside the window: the same state is reported, and the run succeeds.
    certificates([
      { detail: detail(OLD, { NotAfter: at(90) }) },
      { detail: detail(NEW), tags: { [TAG_ROTATION_OF]: OLD, [TAG_ROLLED_BACK_AT]: at(-1).toISOString() } },
    ]);
    const later = await run(loadEvent('schedule.json'), { handshake: async () => serving('a01', at(90)) });
    expect(later.details).toMatchObject({ step: 'healthy' });
    expect(later.actions).toEqual([expect.objectContaining({ type: 'wait', target: NEW, status: 'skipped' })]);
    expectNoWrites();
  });

  it('after a good swap: removes the old (fleet-tagged) certificate from the listener and deletes it', async () => {
    listener(NEW, [OLD]);
    certificates([
      { detail: detail(NEW), tags: { [TAG_ROTATION_OF]: OLD, ...FLEET_TAGS } },
      { detail: detail(OLD), tags: FLEET_TAGS },
    ]);
    elbv2.on(RemoveListenerCertificatesCommand).resolves({});
    acm.on(DeleteCertificateCommand).resolves({});
    const report = await run(loadEvent('schedule.json'), { handshake: async () => serving('b02', at(395)) });
    expect(elbv2).toHaveReceivedCommandWith(RemoveListenerCertificatesCommand, {
      ListenerArn: LISTENER,
      Certificates: [{ CertificateArn: OLD }],
    });
    expect(acm).toHaveReceivedCommandWith(DeleteCertificateCommand, { CertificateArn: OLD });
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['remove-listener-certificate', 'applied'],
      ['delete-certificate', 'applied'],
    ]);
  });

  it('after a good swap from a certificate the fleet did not create: off the listener, never deleted, the run succeeds', async () => {
    listener(NEW, [OLD]);
    certificates([{ detail: detail(NEW), tags: { [TAG_ROTATION_OF]: OLD, ...FLEET_TAGS } }, { detail: detail(OLD, { Type: 'IMPORTED' }) }]);
    elbv2.on(RemoveListenerCertificatesCommand).resolves({});
    const report = await run(loadEvent('schedule.json'), { handshake: async () => serving('b02', at(395)) });
    expect(elbv2).toHaveReceivedCommandWith(RemoveListenerCertificatesCommand, {
      ListenerArn: LISTENER,
      Certificates: [{ CertificateArn: OLD }],
    });
    expect(acm).not.toHaveReceivedCommand(DeleteCertificateCommand);
    expect(report.actions).toEqual([
      expect.objectContaining({ type: 'remove-listener-certificate', status: 'applied' }),
      expect.objectContaining({
        type: 'delete-certificate',
        target: OLD,
        status: 'skipped',
        reason: 'not created by this fleet (no registry-fleet=registry-prod tag): left in ACM; delete it by hand once nothing uses it',
      }),
    ]);
  });

  it('delete refused by ACM as in use: skipped, the next run retries (the old one is found through the tag)', async () => {
    listener(NEW, [OLD]);
    certificates([
      { detail: detail(NEW), tags: { [TAG_ROTATION_OF]: OLD } },
      { detail: detail(OLD), tags: FLEET_TAGS },
    ]);
    elbv2.on(RemoveListenerCertificatesCommand).resolves({});
    acm.on(DeleteCertificateCommand).rejects(Object.assign(new Error('in use'), { name: 'ResourceInUseException' }));
    const first = await run(loadEvent('schedule.json'), { handshake: async () => serving('b02', at(395)) });
    expect(first.actions.map((a) => [a.type, a.status])).toEqual([
      ['remove-listener-certificate', 'applied'],
      ['delete-certificate', 'skipped'],
    ]);

    listener(NEW);
    acm.on(DeleteCertificateCommand).resolves({});
    const second = await run(loadEvent('schedule.json'), { handshake: async () => serving('b02', at(395)) });
    expect(second.actions.map((a) => [a.type, a.status])).toEqual([['delete-certificate', 'applied']]);
  });

  it('a later run that finds the swapped-in default not served rolls back to the old certificate', async () => {
    listener(NEW, [OLD]);
    certificates([{ detail: detail(NEW), tags: { [TAG_ROTATION_OF]: OLD } }, { detail: detail(OLD) }]);
    elbv2.on(ModifyListenerCommand).resolves({});
    acm.on(AddTagsToCertificateCommand).resolves({});
    const { error, report } = await failingRun(loadEvent('schedule.json'), { handshake: async () => serving('a01') });
    expect(error).toBeInstanceOf(JobFailedError);
    expect(report.details).toMatchObject({ step: 'rollback', servedMatchesListenerDefault: false });
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([['rollback-listener-certificate', 'failed']]);
    expect(report.actions[0]?.error).toBe(`rolled back to ${OLD} because the handshake showed serial a01, not b02 of ${NEW}`);
    expect(elbv2).toHaveReceivedCommandWith(ModifyListenerCommand, { ListenerArn: LISTENER, Certificates: [{ CertificateArn: OLD }] });
    expect(acm).toHaveReceivedCommandWith(AddTagsToCertificateCommand, {
      CertificateArn: NEW,
      Tags: [{ Key: TAG_ROLLED_BACK_AT, Value: expect.any(String) }],
    });
    expect(elbv2).not.toHaveReceivedCommand(RemoveListenerCertificatesCommand);
    expect(acm).not.toHaveReceivedCommand(DeleteCertificateCommand);
  });

  it('an HTTP listener is a clear error before any change', async () => {
    listener(OLD, [], 'HTTP');
    const handshake = vi.fn<Handshake>();
    const error = await run({ force: true }, { handshake }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toBe(
      `LISTENER_ARN ${LISTENER} is a HTTP listener on port 80: rotate-certificates manages the certificate of an HTTPS listener`,
    );
    expect(handshake).not.toHaveBeenCalled();
    expectNoWrites();
  });

  it('an unknown payload key is a validation error before anything is read', async () => {
    await expect(run({ force: true, certificateArn: OLD }, { handshake: vi.fn() })).rejects.toThrow('unknown key "certificateArn"');
    expect(elbv2.calls()).toHaveLength(0);
  });
});

describe('rotate-certificates (acme) with mocked AWS', () => {
  const acmeEnv = {
    CERTIFICATE_MODE: 'acme',
    ACME_DIRECTORY_URL: 'https://acme.example/dir',
    ACME_ACCOUNT_SECRET_ARN: SECRET,
    ACME_EMAIL: 'ops@example.com',
    ACME_PENDING_SECRET_ARN: PENDING,
  };
  beforeEach(() => {
    pendingStore();
  });

  it('re-imports the new certificate into the same ARN, verifies it, and never logs a private key', async () => {
    const issued = makeCertificate({ cn: DOMAIN, days: 90 });
    const serial = normaliseSerial(new X509Certificate(issued.certPem).serialNumber);
    listener(OLD);
    certificates([{ detail: detail(OLD, { Type: 'IMPORTED', RenewalEligibility: 'INELIGIBLE', DomainValidationOptions: undefined }) }]);
    acm.on(ImportCertificateCommand).resolves({ CertificateArn: OLD });
    let imported = false;
    acm.on(ImportCertificateCommand).callsFake(() => {
      imported = true;
      return { CertificateArn: OLD };
    });
    const lines: string[] = [];
    for (const method of ['log', 'info', 'debug', 'warn', 'error'] as const) {
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(' ')));
    }
    logger.setLogLevel('DEBUG');

    const report = await run(
      loadEvent('schedule.json'),
      {
        handshake: async () => (imported ? serving(serial, at(90)) : serving('a01')),
        issue: async (order) => {
          expect(order).toMatchObject({
            domainName: DOMAIN,
            hostedZoneId: 'Z0123456789ABCDEFGHIJ',
            settings: { accountSecretArn: SECRET },
          });
          return { certificatePem: issued.certPem, chainPem: '', privateKeyPem: issued.keyPem };
        },
      },
      acmeEnv,
    );

    const call = acm.commandCalls(ImportCertificateCommand)[0]?.args[0].input;
    expect(call?.CertificateArn).toBe(OLD);
    expect(new TextDecoder().decode(call?.Certificate)).toBe(issued.certPem);
    expect(new TextDecoder().decode(call?.PrivateKey)).toBe(issued.keyPem);
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['renew-acme-certificate', 'applied'],
      ['verify-handshake', 'applied'],
    ]);
    expect(report.actions[0]?.detail).toMatchObject({ serial });
    expect(elbv2).not.toHaveReceivedCommand(ModifyListenerCommand);
    expect(acm).not.toHaveReceivedCommand(AddTagsToCertificateCommand); // it had no fleet tag: none is added
    expect(lines.some((l) => l.includes('job report'))).toBe(true);
    expect(lines.join('\n')).not.toContain('PRIVATE KEY');
  });

  it.each([
    ['drops the tags (as moto does): the fleet tag is put back', [], ['registry-fleet']],
    ['keeps the tags (as ACM does): nothing added', [{ Key: 'registry-fleet', Value: 'registry-prod' }], undefined],
  ])('a fleet-tagged certificate whose re-import %s', async (_, tagsAfterImport, restored) => {
    const issued = makeCertificate({ cn: DOMAIN, days: 90 });
    const serial = normaliseSerial(new X509Certificate(issued.certPem).serialNumber);
    listener(OLD);
    certificates([
      { detail: detail(OLD, { Type: 'IMPORTED', DomainValidationOptions: undefined }), tags: { ...FLEET_TAGS, owner: 'ops' } },
    ]);
    let imported = false;
    acm.on(ImportCertificateCommand).callsFake(() => {
      imported = true;
      return { CertificateArn: OLD };
    });
    acm.on(ListTagsForCertificateCommand, { CertificateArn: OLD }).callsFake(() => ({
      Tags: imported
        ? tagsAfterImport
        : [
            { Key: 'registry-fleet', Value: 'registry-prod' },
            { Key: 'owner', Value: 'ops' },
          ],
    }));
    acm.on(AddTagsToCertificateCommand).resolves({});
    const report = await run(
      { force: true },
      {
        handshake: async () => (imported ? serving(serial, at(90)) : serving('a01')),
        issue: async () => ({ certificatePem: issued.certPem, chainPem: '', privateKeyPem: issued.keyPem }),
      },
      acmeEnv,
    );

    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['renew-acme-certificate', 'applied'],
      ['verify-handshake', 'applied'],
    ]);
    expect(report.actions[0]?.detail?.tagsRestored).toEqual(restored);
    if (restored) {
      expect(acm).toHaveReceivedCommandTimes(AddTagsToCertificateCommand, 1);
      expect(acm).toHaveReceivedCommandWith(AddTagsToCertificateCommand, {
        CertificateArn: OLD,
        Tags: [{ Key: 'registry-fleet', Value: 'registry-prod' }],
      });
    } else {
      expect(acm).not.toHaveReceivedCommand(AddTagsToCertificateCommand);
    }
  });

  it('a tag that cannot be put back after the re-import is reported; the handshake check still runs', async () => {
    const issued = makeCertificate({ cn: DOMAIN, days: 90 });
    const serial = normaliseSerial(new X509Certificate(issued.certPem).serialNumber);
    listener(OLD);
    certificates([{ detail: detail(OLD, { Type: 'IMPORTED', DomainValidationOptions: undefined }), tags: FLEET_TAGS }]);
    let imported = false;
    acm.on(ImportCertificateCommand).callsFake(() => {
      imported = true;
      return { CertificateArn: OLD };
    });
    acm
      .on(ListTagsForCertificateCommand, { CertificateArn: OLD })
      .callsFake(() => ({ Tags: imported ? [] : [{ Key: 'registry-fleet', Value: 'registry-prod' }] }));
    acm.on(AddTagsToCertificateCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    const report = await run(
      { force: true },
      {
        handshake: async () => (imported ? serving(serial, at(90)) : serving('a01')),
        issue: async () => ({ certificatePem: issued.certPem, chainPem: '', privateKeyPem: issued.keyPem }),
      },
      acmeEnv,
    );
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['renew-acme-certificate', 'applied'],
      ['verify-handshake', 'applied'],
    ]);
    expect(report.actions[0]?.detail).toMatchObject({ serial, tagRestoreError: 'AccessDeniedException: not authorized' });
  });

  it('an ACME certificate for another name is not imported', async () => {
    const wrong = makeCertificate({ cn: 'other.example.com', days: 90 });
    listener(OLD);
    certificates([{ detail: detail(OLD, { Type: 'IMPORTED', DomainValidationOptions: undefined }) }]);
    const error = await run(
      { force: true },
      {
        handshake: async () => serving('a01'),
        issue: async () => ({ certificatePem: wrong.certPem, chainPem: '', privateKeyPem: wrong.keyPem }),
      },
      acmeEnv,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as Error).message).toContain(`does not cover ${DOMAIN}`);
    expect(acm).not.toHaveReceivedCommand(ImportCertificateCommand);
  });

  describe('account key in Secrets Manager', () => {
    const signal = new AbortController().signal;

    it('creates and stores a key on first use (secret without a value)', async () => {
      secrets
        .on(GetSecretValueCommand)
        .rejects(Object.assign(new Error("can't find the specified secret value"), { name: 'ResourceNotFoundException' }));
      secrets.on(PutSecretValueCommand).resolves({});
      const key = await loadAccountKey(new SecretsManagerClient({}), SECRET, signal);
      expect(key).toContain('PRIVATE KEY');
      const stored = secrets.commandCalls(PutSecretValueCommand)[0]?.args[0].input;
      expect(stored?.SecretId).toBe(SECRET);
      expect(JSON.parse(stored?.SecretString ?? '{}')).toEqual({ accountKeyPem: key });
    });

    it('creates a key when the value is {}', async () => {
      secrets.on(GetSecretValueCommand).resolves({ SecretString: '{}' });
      secrets.on(PutSecretValueCommand).resolves({});
      await loadAccountKey(new SecretsManagerClient({}), SECRET, signal);
      expect(secrets).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);
    });

    it('reuses a stored key', async () => {
      secrets
        .on(GetSecretValueCommand)
        .resolves({ SecretString: JSON.stringify({ accountKeyPem: '-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----' }) });
      expect(await loadAccountKey(new SecretsManagerClient({}), SECRET, signal)).toContain('abc');
      expect(secrets).not.toHaveReceivedCommand(PutSecretValueCommand);
    });

    it('never overwrites a value it does not recognise', async () => {
      secrets.on(GetSecretValueCommand).resolves({ SecretString: 'generated-password-xyz' });
      await expect(loadAccountKey(new SecretsManagerClient({}), SECRET, signal)).rejects.toThrow('holds no {"accountKeyPem": ...}');
      expect(secrets).not.toHaveReceivedCommand(PutSecretValueCommand);
    });
  });
});

// ---- issue 13 (Safe at 3 a.m. II): a pending stage for ACME, budget-bound verify, foreign certificates, SNI ----

describe('rotate-certificates (acme): the pending stage survives retries', () => {
  const acmeEnv = {
    CERTIFICATE_MODE: 'acme',
    ACME_DIRECTORY_URL: 'https://acme.example/dir',
    ACME_ACCOUNT_SECRET_ARN: SECRET,
    ACME_EMAIL: 'ops@example.com',
    ACME_PENDING_SECRET_ARN: PENDING,
  };
  const importedOld = (over: Partial<CertificateDetail> = {}) =>
    detail(OLD, {
      Type: 'IMPORTED',
      RenewalEligibility: 'INELIGIBLE',
      DomainValidationOptions: undefined,
      KeyAlgorithm: 'EC_prime256v1',
      ...over,
    });
  const issuedCert = makeCertificate({ cn: DOMAIN, sans: [DOMAIN], days: 90 });
  const issuedSerial = normaliseSerial(new X509Certificate(issuedCert.certPem).serialNumber);
  /** ACM as a store of one imported certificate: an import changes what DescribeCertificate answers. */
  function acmWithImports(log: string[]) {
    let current = importedOld();
    acm.on(DescribeCertificateCommand, { CertificateArn: OLD }).callsFake(() => ({ Certificate: current }));
    acm.on(ImportCertificateCommand).callsFake((input: { Certificate: Uint8Array }) => {
      const x509 = new X509Certificate(new TextDecoder().decode(input.Certificate));
      current = importedOld({ Serial: x509.serialNumber, NotBefore: new Date(x509.validFrom), NotAfter: new Date(x509.validTo) });
      log.push('import');
      return { CertificateArn: OLD };
    });
  }

  it('stores the issued certificate and key (stage "issued") BEFORE the import, then "imported", then "verified" once served', async () => {
    const store = pendingStore();
    listener(OLD);
    certificates([{ detail: importedOld() }]);
    acmWithImports(store.log);
    let issued = 0;
    const report = await run(
      loadEvent('schedule.json'),
      {
        handshake: async () => (store.log.includes('import') ? serving(issuedSerial, at(90)) : serving('a01')),
        issue: async () => {
          issued += 1;
          store.log.push('ordered');
          return { certificatePem: issuedCert.certPem, chainPem: '', privateKeyPem: issuedCert.keyPem };
        },
      },
      acmeEnv,
    );
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['renew-acme-certificate', 'applied'],
      ['verify-handshake', 'applied'],
    ]);
    expect(issued).toBe(1);
    expect(store.log).toEqual(['stage:ordering', 'ordered', 'stage:issued', 'import', 'stage:imported', 'stage:verified']);
    const final = JSON.parse(store.value) as Record<string, unknown>;
    expect(final).toMatchObject({ certificateArn: OLD, stage: 'verified', serial: issuedSerial, orderedAt: now.toISOString() });
    expect(JSON.stringify(final)).not.toContain('PRIVATE KEY'); // the key material is dropped once ACM has it
  });

  it('an import that failed after the order: the next run resumes at import with the stored certificate, never orders again', async () => {
    const store = pendingStore({
      certificateArn: OLD,
      stage: 'issued',
      orderedAt: at(-1 / 24).toISOString(),
      serial: issuedSerial,
      notAfter: at(90).toISOString(),
      certificatePem: issuedCert.certPem,
      chainPem: '',
      privateKeyPem: issuedCert.keyPem,
    });
    listener(OLD);
    certificates([{ detail: importedOld() }]);
    acmWithImports(store.log);
    const issue = vi.fn(async () => {
      throw new Error('must not order');
    });
    const report = await run(
      loadEvent('schedule.json'),
      { handshake: async () => (store.log.includes('import') ? serving(issuedSerial, at(90)) : serving('a01')), issue },
      acmeEnv,
    );
    expect(issue).not.toHaveBeenCalled();
    expect(report.details).toMatchObject({ step: 'resume-import' });
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['import-acme-certificate', 'applied'],
      ['verify-handshake', 'applied'],
    ]);
    const call = acm.commandCalls(ImportCertificateCommand)[0]?.args[0].input;
    expect(call?.CertificateArn).toBe(OLD);
    expect(new TextDecoder().decode(call?.PrivateKey)).toBe(issuedCert.keyPem);
    expect(store.log).toEqual(['import', 'stage:imported', 'stage:verified']);
  });

  it("a run that died between the import and deleting the order's key secret: the next run deletes it at once, then forgets it", async () => {
    const keySecretName = 'registry-acme-pending-XyZ123/order-key-20261123T020000Z';
    const keySecrets = new Map([[keySecretName, JSON.stringify({ privateKeyPem: issuedCert.keyPem })]]);
    secrets.on(DeleteSecretCommand).callsFake((input: { SecretId: string; ForceDeleteWithoutRecovery?: boolean }) => {
      // Without ForceDeleteWithoutRecovery the secret (and the key) would stay readable for the recovery window.
      if (input.ForceDeleteWithoutRecovery === true) keySecrets.delete(input.SecretId);
      return {};
    });
    const x509 = new X509Certificate(issuedCert.certPem);
    const store = pendingStore({
      certificateArn: OLD,
      stage: 'issued',
      orderedAt: at(-1 / 24).toISOString(),
      serial: issuedSerial,
      notAfter: at(90).toISOString(),
      certificatePem: issuedCert.certPem,
      chainPem: '',
      keySecretName,
    });
    listener(OLD);
    certificates([
      { detail: importedOld({ Serial: x509.serialNumber, NotBefore: new Date(x509.validFrom), NotAfter: new Date(x509.validTo) }) },
    ]);
    const report = await run(loadEvent('schedule.json'), { handshake: async () => serving(issuedSerial, at(90)) }, acmeEnv);
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['drop-order-key', 'applied'],
      ['finish-acme-rotation', 'applied'],
    ]);
    expect(keySecrets.has(keySecretName)).toBe(false);
    const final = JSON.parse(store.value) as Record<string, unknown>;
    expect(final).toMatchObject({ certificateArn: OLD, stage: 'verified', serial: issuedSerial });
    expect(final.keySecretName).toBeUndefined();
  });

  it('a load balancer slower than HANDSHAKE_WAIT: three runs (as the retries) order once; the run after it switches finishes', async () => {
    const store = pendingStore();
    listener(OLD);
    certificates([{ detail: importedOld() }]);
    acmWithImports(store.log);
    let switched = false;
    const handshake = async () => (switched ? serving(issuedSerial, at(90)) : serving('a01'));
    const issue = vi.fn(async () => ({ certificatePem: issuedCert.certPem, chainPem: '', privateKeyPem: issuedCert.keyPem }));
    for (let i = 0; i < 3; i++) {
      const { error, report } = await failingRun(loadEvent('schedule.json'), { handshake, issue }, acmeEnv);
      expect(error).toBeInstanceOf(JobFailedError);
      expect(report.actions.find((a) => a.type === 'verify-handshake')?.status).toBe('failed');
    }
    expect(issue).toHaveBeenCalledTimes(1);
    expect(acm).toHaveReceivedCommandTimes(ImportCertificateCommand, 1);
    switched = true;
    const done = await run(loadEvent('schedule.json'), { handshake, issue }, acmeEnv);
    expect(done.details).toMatchObject({ step: 'finish' });
    expect(done.actions.map((a) => [a.type, a.status])).toEqual([['finish-acme-rotation', 'applied']]);
    expect(JSON.parse(store.value)).toMatchObject({ stage: 'verified', serial: issuedSerial });
    expect(issue).toHaveBeenCalledTimes(1);
  });

  it('the order asks for the current key algorithm and every name; an issued certificate with another key type is not imported', async () => {
    pendingStore();
    const names = [DOMAIN, 'mirror.example.com'];
    listener(OLD);
    certificates([{ detail: importedOld({ SubjectAlternativeNames: names, KeyAlgorithm: 'RSA_4096' }) }]);
    const orders: unknown[] = [];
    const { error, report } = await failingRun(
      { force: true },
      {
        handshake: async () => serving('a01'),
        issue: async (order) => {
          orders.push(order);
          return { certificatePem: issuedCert.certPem, chainPem: '', privateKeyPem: issuedCert.keyPem }; // EC P-256: wrong
        },
      },
      acmeEnv,
    );
    expect(orders).toEqual([expect.objectContaining({ domainName: DOMAIN, names, keyAlgorithm: 'RSA_4096' })]);
    expect(error).toBeInstanceOf(JobFailedError);
    expect(report.actions[0]?.error).toContain('EC_prime256v1, not RSA_4096');
    expect(acm).not.toHaveReceivedCommand(ImportCertificateCommand);
  });

  it('verify stops when the Lambda time runs low and leaves the stage resumable (no failure, no second order)', async () => {
    const store = pendingStore();
    listener(OLD);
    certificates([{ detail: importedOld() }]);
    acmWithImports(store.log);
    let left = 900_000;
    let afterImport = 0;
    const handshake = async () => {
      if (store.log.includes('import') && ++afterImport >= 3) left = 60_000; // under the job's 4-minute margin
      return serving('a01');
    };
    const config = loadRotateCertificatesConfig({ ...env, ...acmeEnv, HANDSHAKE_WAIT: '10m' });
    const job = createRotateCertificatesJob({
      pollMs: 10,
      handshake,
      issue: async () => ({ certificatePem: issuedCert.certPem, chainPem: '', privateKeyPem: issuedCert.keyPem }),
    });
    const report = await runJob(job, config, loadEvent('schedule.json'), { getRemainingTimeInMillis: () => left }, { clock: () => now });
    expect(afterImport).toBeLessThanOrEqual(4);
    expect(report.stoppedEarly).toBe('time');
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['renew-acme-certificate', 'applied'],
      ['verify-handshake', 'skipped'],
    ]);
    expect(report.actions[1]?.reason).toContain('the next run verifies again');
    expect(JSON.parse(store.value)).toMatchObject({ stage: 'imported', serial: issuedSerial });
  });
});

describe('rotate-certificates (acm): verify under the time budget, events for other certificates, SNI', () => {
  it('verify after a swap stops when the Lambda time runs low: no rollback, the next run decides', async () => {
    listener(OLD);
    certificates([{ detail: detail(OLD) }, { detail: detail(NEW), tags: { [TAG_ROTATION_OF]: OLD } }]);
    elbv2.on(ModifyListenerCommand).resolves({});
    elbv2.on(AddListenerCertificatesCommand).resolves({});
    let left = 900_000;
    let calls = 0;
    const handshake = async () => {
      if (++calls >= 3) left = 60_000;
      return serving('a01');
    };
    const config = loadRotateCertificatesConfig({ ...env, HANDSHAKE_WAIT: '10m' });
    const report = await runJob(
      createRotateCertificatesJob({ pollMs: 10, handshake }),
      config,
      loadEvent('schedule.json'),
      { getRemainingTimeInMillis: () => left },
      { clock: () => now },
    );
    expect(calls).toBeLessThanOrEqual(4);
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['swap-listener-certificate', 'applied'],
      ['verify-handshake', 'skipped'],
    ]);
    expect(elbv2).toHaveReceivedCommandTimes(ModifyListenerCommand, 1); // not rolled back
    expect(acm).not.toHaveReceivedCommand(AddTagsToCertificateCommand);
  });

  it("an ACM expiry event for a certificate that is not the listener's: nothing is planned or written, and the report says so", async () => {
    const FOREIGN = 'arn:aws:acm:us-east-1:123456789012:certificate/99999999-9999-9999-9999-999999999999';
    listener(OLD);
    certificates([{ detail: detail(OLD) }]);
    const report = await run(expiring(FOREIGN), { handshake: async () => serving('a01') });
    expect(report.details).toMatchObject({ step: 'ignored' });
    expect(report.actions).toEqual([expect.objectContaining({ type: 'ignore-event', target: FOREIGN, status: 'skipped' })]);
    expectNoWrites();
    expect(acm.commandCalls(DescribeCertificateCommand).map((c) => c.args[0].input.CertificateArn)).not.toContain(FOREIGN);
  });

  it('an old ECDSA certificate would outrank the RSA replacement: swapped without keeping it, rollback re-swaps the default', async () => {
    listener(OLD);
    certificates([
      { detail: detail(OLD, { KeyAlgorithm: 'EC_prime256v1' }) },
      { detail: detail(NEW, { KeyAlgorithm: 'RSA_2048' }), tags: { [TAG_ROTATION_OF]: OLD } },
    ]);
    elbv2.on(ModifyListenerCommand).resolves({});
    acm.on(AddTagsToCertificateCommand).resolves({});
    const { error } = await failingRun(loadEvent('schedule.json'), { handshake: async () => serving('a01') });
    expect(error).toBeInstanceOf(JobFailedError);
    expect(elbv2).not.toHaveReceivedCommand(AddListenerCertificatesCommand);
    expect(elbv2).toHaveReceivedNthCommandWith(ModifyListenerCommand, 2, {
      ListenerArn: LISTENER,
      Certificates: [{ CertificateArn: OLD }],
    });
  });
});
