/**
 * rotate-certificates' domain: what observe reports (plain data, no SDK types) and the small pure helpers
 * plan and apply share (does a certificate cover a name, serial numbers in one form).
 */

export { TAG_ROLLED_BACK_AT, TAG_ROTATION_OF } from '../../shared/fleet-tags.ts';

export type CertificateMode = 'acm' | 'acme';

export interface DnsRecord {
  /** Fully qualified, lower case, with the trailing dot. */
  readonly name: string;
  readonly type: string;
  readonly value: string;
}

export interface CertificateView {
  readonly arn: string;
  /** ACM status: ISSUED, PENDING_VALIDATION, FAILED, VALIDATION_TIMED_OUT, EXPIRED, REVOKED, INACTIVE. */
  readonly status: string;
  /** AMAZON_ISSUED, IMPORTED or PRIVATE. */
  readonly type: string;
  readonly domainName: string;
  /** Domain name and subject alternative names, lower case. */
  readonly names: readonly string[];
  /** Normalised serial (see normaliseSerial). */
  readonly serial?: string;
  readonly notBefore?: string;
  readonly notAfter?: string;
  readonly failureReason?: string;
  /** ACM's KeyAlgorithm (RSA_2048, EC_prime256v1, …), when it reports one. */
  readonly keyAlgorithm?: string;
  readonly renewalEligibility?: string;
  readonly renewal?: { readonly status: string; readonly reason?: string; readonly updatedAt?: string };
  /** DNS validation records ACM asks for (the renewal's, when a renewal is in progress). */
  readonly validationRecords: readonly DnsRecord[];
  readonly inUseBy: readonly string[];
  readonly tags: Readonly<Record<string, string>>;
}

export interface ListenerView {
  readonly arn: string;
  readonly protocol: string;
  readonly port?: number;
  readonly loadBalancerArn: string;
  readonly loadBalancerDnsName?: string;
  readonly defaultCertificateArn?: string;
  readonly sniCertificateArns: readonly string[];
}

export type Served =
  | {
      readonly ok: true;
      readonly host: string;
      readonly port: number;
      readonly serial: string;
      readonly notBefore: string;
      readonly notAfter: string;
      readonly subject?: string;
      readonly names: readonly string[];
    }
  | { readonly ok: false; readonly host: string; readonly port: number; readonly error: string };

export interface CertState {
  readonly listener: ListenerView;
  /** Every certificate seen: listener default and SNI list, this job's in-flight ones, the one being replaced. */
  readonly certificates: readonly CertificateView[];
  /** ARNs named by tags (or the listener) that ACM no longer has. */
  readonly missing: readonly string[];
  /** What a TLS handshake with SNI DOMAIN_NAME actually served. */
  readonly served: Served;
  /** Current values in the hosted zone of the validation record names we care about (name → values); empty without HOSTED_ZONE_ID. */
  readonly zoneRecords: Readonly<Record<string, readonly string[]>>;
}

/**
 * One form for serial numbers: lower-case hex without separators or leading zeros. ACM answers colon-separated
 * hex (`0e:8a:…`), Node's TLS answers upper-case hex; moto answers decimal (digits only, no colons).
 */
export function normaliseSerial(serial: string): string {
  const s = serial.trim().toLowerCase();
  let hex: string;
  if (s.includes(':')) hex = s.replaceAll(':', '');
  else if (/^\d+$/.test(s) && s.length > 2) hex = BigInt(s).toString(16);
  else hex = s;
  return hex.replace(/^0+(?=.)/, '');
}

export function normaliseName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n : `${n}.`;
}

/** Whether a certificate name (exact or a one-label wildcard) covers `domain`. */
export function nameCovers(certName: string, domain: string): boolean {
  const name = certName.toLowerCase().replace(/\.$/, '');
  const host = domain.toLowerCase().replace(/\.$/, '');
  if (name === host) return true;
  if (!name.startsWith('*.')) return false;
  const dot = host.indexOf('.');
  return dot > 0 && host.slice(dot + 1) === name.slice(2);
}

export function covers(names: readonly string[], domain: string): boolean {
  return names.some((n) => nameCovers(n, domain));
}

/** Why a certificate must not be put in front of `domain` at `now`, or undefined when it may. */
export function certificateProblem(
  cert: { names: readonly string[]; notBefore?: string; notAfter?: string },
  domain: string,
  now: Date,
): string | undefined {
  if (!covers(cert.names, domain)) return `does not cover ${domain} (it names ${cert.names.join(', ') || 'nothing'})`;
  if (cert.notBefore && Date.parse(cert.notBefore) > now.getTime()) return `is not valid before ${cert.notBefore}`;
  if (cert.notAfter && Date.parse(cert.notAfter) <= now.getTime()) return `expired at ${cert.notAfter}`;
  return undefined;
}

export const DAY_MS = 86_400_000;

export function daysLeft(notAfter: string | undefined, now: Date): number | undefined {
  return notAfter === undefined ? undefined : Math.floor((Date.parse(notAfter) - now.getTime()) / DAY_MS);
}
