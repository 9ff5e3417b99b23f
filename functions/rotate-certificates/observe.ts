import {
  DescribeCertificateCommand,
  ListTagsForCertificateCommand,
  paginateListCertificates,
  type ACMClient,
  type CertificateDetail,
  type DomainValidation,
  type KeyAlgorithm,
} from '@aws-sdk/client-acm';
import {
  paginateDescribeListenerCertificates,
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  type ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { ListResourceRecordSetsCommand, type Route53Client } from '@aws-sdk/client-route-53';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { errorName, ValidationError } from '../../shared/errors.ts';
import type { RunContext } from '../../shared/job.ts';
import type { RotateCertificatesConfig } from './config.ts';
import type { Handshake } from './handshake.ts';
import {
  normaliseName,
  normaliseSerial,
  rotationOf,
  viewOf,
  type CertificateView,
  type CertState,
  type DnsRecord,
  type ListenerView,
  type RotationScope,
  type RotationState,
} from './model.ts';
import { readPendingStage } from './pending.ts';

export interface ObserveDeps {
  readonly elbv2: ElasticLoadBalancingV2Client;
  readonly acm: ACMClient;
  readonly route53: Route53Client;
  readonly handshake: Handshake;
  /** acme mode: where the pending stage lives. */
  readonly secrets?: SecretsManagerClient;
}

/** The dialect's entry: AWS reads (listener, certificates, zone, pending stage) and one TLS handshake → RotationState. */
export async function observe(
  clients: ObserveDeps,
  _scope: RotationScope,
  ctx: Pick<RunContext<RotateCertificatesConfig>, 'config' | 'signal'>,
): Promise<RotationState> {
  const { config, signal } = ctx;
  const state = await observeCertificates(config, clients, signal);
  const pending =
    config.acme && clients.secrets ? await readPendingStage(clients.secrets, config.acme.pendingSecretArn, signal) : undefined;
  return {
    ...state,
    ...(pending ? { pending: viewOf(pending) } : {}),
    handshakeHost: config.handshake.host ?? state.listener.loadBalancerDnsName,
  };
}

/** ListCertificates returns only RSA_2048 unless asked: ask for every key type ACM and ALB use. */
const KEY_TYPES: KeyAlgorithm[] = ['RSA_1024', 'RSA_2048', 'RSA_3072', 'RSA_4096', 'EC_prime256v1', 'EC_secp384r1', 'EC_secp521r1'];

export async function observeListener(
  elbv2: ElasticLoadBalancingV2Client,
  listenerArn: string,
  signal: AbortSignal,
): Promise<ListenerView> {
  const res = await elbv2.send(new DescribeListenersCommand({ ListenerArns: [listenerArn] }), { abortSignal: signal });
  const listener = res.Listeners?.[0];
  if (!listener?.LoadBalancerArn) throw new ValidationError(`LISTENER_ARN ${listenerArn}: no such listener`);
  if (listener.Protocol !== 'HTTPS') {
    throw new ValidationError(
      `LISTENER_ARN ${listenerArn} is a ${listener.Protocol ?? 'unknown'} listener on port ${listener.Port ?? '?'}: rotate-certificates ` +
        `manages the certificate of an HTTPS listener`,
    );
  }
  const all: { arn: string; isDefault: boolean }[] = [];
  for await (const page of paginateDescribeListenerCertificates({ client: elbv2 }, { ListenerArn: listenerArn }, { abortSignal: signal })) {
    for (const c of page.Certificates ?? []) if (c.CertificateArn) all.push({ arn: c.CertificateArn, isDefault: c.IsDefault === true });
  }
  const defaultArn = listener.Certificates?.[0]?.CertificateArn ?? all.find((c) => c.isDefault)?.arn;
  const lbs = await elbv2.send(new DescribeLoadBalancersCommand({ LoadBalancerArns: [listener.LoadBalancerArn] }), { abortSignal: signal });
  const dnsName = lbs.LoadBalancers?.[0]?.DNSName;
  return {
    arn: listenerArn,
    protocol: listener.Protocol,
    ...(listener.Port === undefined ? {} : { port: listener.Port }),
    loadBalancerArn: listener.LoadBalancerArn,
    ...(dnsName ? { loadBalancerDnsName: dnsName } : {}),
    ...(defaultArn ? { defaultCertificateArn: defaultArn } : {}),
    sniCertificateArns: [...new Set(all.filter((c) => !c.isDefault && c.arn !== defaultArn).map((c) => c.arn))],
  };
}

function toRecords(options: readonly DomainValidation[] | undefined): DnsRecord[] {
  const records = new Map<string, DnsRecord>();
  for (const o of options ?? []) {
    const r = o.ResourceRecord;
    if (r?.Name && r.Type && r.Value) records.set(normaliseName(r.Name), { name: normaliseName(r.Name), type: r.Type, value: r.Value });
  }
  return [...records.values()];
}

export function toCertificateView(detail: CertificateDetail, tags: Record<string, string>): CertificateView {
  const renewal = detail.RenewalSummary;
  const names = [
    ...new Set([detail.DomainName, ...(detail.SubjectAlternativeNames ?? [])].filter((n): n is string => !!n).map((n) => n.toLowerCase())),
  ];
  const iso = (d: Date | undefined) => (d ? { value: d.toISOString() } : undefined);
  const renewalRecords = toRecords(renewal?.DomainValidationOptions);
  return {
    arn: detail.CertificateArn as string,
    status: detail.Status ?? 'UNKNOWN',
    type: detail.Type ?? 'UNKNOWN',
    domainName: (detail.DomainName ?? '').toLowerCase(),
    names,
    ...(detail.Serial ? { serial: normaliseSerial(detail.Serial) } : {}),
    ...(iso(detail.NotBefore) ? { notBefore: iso(detail.NotBefore)?.value } : {}),
    ...(iso(detail.NotAfter) ? { notAfter: iso(detail.NotAfter)?.value } : {}),
    ...(detail.FailureReason ? { failureReason: detail.FailureReason } : {}),
    ...(detail.KeyAlgorithm ? { keyAlgorithm: detail.KeyAlgorithm } : {}),
    ...(detail.RenewalEligibility ? { renewalEligibility: detail.RenewalEligibility } : {}),
    ...(renewal?.RenewalStatus
      ? {
          renewal: {
            status: renewal.RenewalStatus,
            ...(renewal.RenewalStatusReason ? { reason: renewal.RenewalStatusReason } : {}),
            ...(renewal.UpdatedAt ? { updatedAt: renewal.UpdatedAt.toISOString() } : {}),
          },
        }
      : {}),
    validationRecords: renewalRecords.length > 0 ? renewalRecords : toRecords(detail.DomainValidationOptions),
    inUseBy: detail.InUseBy ?? [],
    tags,
  };
}

/** Describe + tags; undefined when ACM no longer has it. */
async function readCertificate(acm: ACMClient, arn: string, signal: AbortSignal): Promise<CertificateView | undefined> {
  try {
    const [described, tagged] = await Promise.all([
      acm.send(new DescribeCertificateCommand({ CertificateArn: arn }), { abortSignal: signal }),
      acm.send(new ListTagsForCertificateCommand({ CertificateArn: arn }), { abortSignal: signal }),
    ]);
    if (!described.Certificate) return undefined;
    const tags = Object.fromEntries((tagged.Tags ?? []).filter((t) => t.Key).map((t) => [t.Key as string, t.Value ?? '']));
    return toCertificateView(described.Certificate, tags);
  } catch (error) {
    if (errorName(error) === 'ResourceNotFoundException') return undefined;
    throw error;
  }
}

async function readZoneValues(route53: Route53Client, zoneId: string, record: DnsRecord, signal: AbortSignal): Promise<string[]> {
  const res = await route53.send(
    new ListResourceRecordSetsCommand({
      HostedZoneId: zoneId,
      StartRecordName: record.name,
      StartRecordType: record.type as 'CNAME',
      MaxItems: 1,
    }),
    { abortSignal: signal },
  );
  const set = res.ResourceRecordSets?.[0];
  if (!set?.Name || normaliseName(set.Name) !== record.name || set.Type !== record.type) return [];
  return (set.ResourceRecords ?? []).map((r) => r.Value ?? '').filter(Boolean);
}

export async function observeCertificates(config: RotateCertificatesConfig, deps: ObserveDeps, signal: AbortSignal): Promise<CertState> {
  const listener = await observeListener(deps.elbv2, config.listenerArn, signal);
  const attached = [listener.defaultCertificateArn, ...listener.sniCertificateArns].filter((a): a is string => !!a);

  // Replacements this job requested earlier carry the domain name; their tags say what they replace.
  const candidates: string[] = [];
  for await (const page of paginateListCertificates({ client: deps.acm }, { Includes: { keyTypes: KEY_TYPES } }, { abortSignal: signal })) {
    for (const s of page.CertificateSummaryList ?? []) {
      if (s.CertificateArn && s.DomainName?.toLowerCase() === config.domainName && !attached.includes(s.CertificateArn))
        candidates.push(s.CertificateArn);
    }
  }

  const certificates: CertificateView[] = [];
  const missing: string[] = [];
  const seen = new Set<string>();
  const read = async (arn: string, keepIf: (c: CertificateView) => boolean = () => true): Promise<void> => {
    if (seen.has(arn)) return;
    seen.add(arn);
    const cert = await readCertificate(deps.acm, arn, signal);
    if (!cert) missing.push(arn);
    else if (keepIf(cert)) certificates.push(cert);
  };
  for (const arn of attached) await read(arn);
  const current = certificates.find((c) => c.arn === listener.defaultCertificateArn);
  const previousArn = current ? rotationOf(current) : undefined;
  if (previousArn) await read(previousArn);
  for (const arn of candidates) await read(arn, (c) => rotationOf(c) !== undefined && rotationOf(c) === current?.arn);

  // Without HOSTED_ZONE_ID (acm mode) there is no zone to read: the plan reports the records to create by hand.
  const zoneRecords: Record<string, string[]> = {};
  const zoneId = config.hostedZoneId;
  if (zoneId) {
    const wanted = [current, ...certificates.filter((c) => rotationOf(c) === current?.arn)].flatMap((c) => c?.validationRecords ?? []);
    for (const record of wanted) {
      if (zoneRecords[record.name]) continue;
      zoneRecords[record.name] = await readZoneValues(deps.route53, zoneId, record, signal);
    }
  }

  const host = config.handshake.host ?? listener.loadBalancerDnsName;
  const served = host
    ? await deps.handshake(
        { host, port: config.handshake.port, servername: config.domainName, timeoutMs: config.handshake.timeoutMs },
        signal,
      )
    : {
        ok: false as const,
        host: '(none)',
        port: config.handshake.port,
        error: 'the load balancer has no DNS name and HANDSHAKE_HOST is not set',
      };

  return { listener, certificates, missing, served, zoneRecords };
}
