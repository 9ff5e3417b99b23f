import type { Action, Plan } from '../../shared/job.ts';
import { LEGACY_TAG_ROLLED_BACK_AT, LEGACY_TAG_ROTATION_OF, TAG_ROLLED_BACK_AT, TAG_ROTATION_OF } from '../../shared/fleet-tags.ts';

/**
 * rotate-certificates' domain: what observe reports (plain data, no SDK types), the actions a plan makes, and
 * the small pure helpers plan and apply share (does a certificate cover a name, serials in one form, which
 * certificate the load balancer serves).
 */

export { LEGACY_TAG_ROLLED_BACK_AT, LEGACY_TAG_ROTATION_OF, TAG_ROLLED_BACK_AT, TAG_ROTATION_OF };

/** The certificate a replacement replaces (this release's tag, else the first release's). */
export const rotationOf = (c: { readonly tags: Readonly<Record<string, string>> }): string | undefined =>
  c.tags[TAG_ROTATION_OF] ?? c.tags[LEGACY_TAG_ROTATION_OF];
/** When a swap to this certificate was rolled back (this release's tag, else the first release's). */
export const rolledBackAt = (c: { readonly tags: Readonly<Record<string, string>> }): string | undefined =>
  c.tags[TAG_ROLLED_BACK_AT] ?? c.tags[LEGACY_TAG_ROLLED_BACK_AT];

/** How long an ACME order blocks the next one for the same certificate (ACME_ORDER_COOLDOWN's default). */
export const DEFAULT_ORDER_COOLDOWN_MS = 86_400_000;

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
  /** acme mode: the pending stage of a rotation (from ACME_PENDING_SECRET_ARN, without its key material). */
  readonly pending?: PendingStageView;
}

/**
 * acme mode's stages, like Secrets Manager's rotation steps. Each is written to the pending secret before the
 * next step starts, so a run that dies or fails resumes where it stopped instead of ordering again:
 * `ordering` (order placed: the cooldown counts from here) → `issued` (certificate stored, its key in the order's
 * own key secret, not yet in ACM) → `imported` (ACM has it, the key secret is deleted; the load balancer may not
 * serve it yet) → `verified` (served).
 */
export type AcmeStage = 'ordering' | 'issued' | 'imported' | 'verified';
export const ACME_STAGES: readonly AcmeStage[] = ['ordering', 'issued', 'imported', 'verified'];

/** What plan sees of the pending stage: never the certificate's key. */
export interface PendingStageView {
  readonly certificateArn: string;
  readonly stage: AcmeStage;
  /** When the order was placed (ISO): ACME_ORDER_COOLDOWN counts from here. */
  readonly orderedAt: string;
  /** Serial (normalised) and expiry of the issued certificate, once there is one. */
  readonly serial?: string | undefined;
  readonly notAfter?: string | undefined;
  /**
   * The name of the order's own key secret (named when the order is placed, created once the CA issued), until a
   * run has seen it deleted: the private key never goes into the pending secret, whose old versions stay readable.
   */
  readonly keySecretName?: string | undefined;
}

/** The whole pending document as stored (apply reads and writes it; it never reaches a log or a report). */
export interface PendingStage extends PendingStageView {
  readonly names?: readonly string[];
  readonly certificatePem?: string;
  readonly chainPem?: string;
  /** Only in a stage written by a release before the key secret: still imported from, never written. */
  readonly privateKeyPem?: string;
}

/** Only the fields a plan and a report may see. */
export function viewOf(stage: PendingStage): PendingStageView {
  const { certificateArn, stage: s, orderedAt, serial, notAfter, keySecretName } = stage;
  return {
    certificateArn,
    stage: s,
    orderedAt,
    ...(serial ? { serial } : {}),
    ...(notAfter ? { notAfter } : {}),
    ...(keySecretName ? { keySecretName } : {}),
  };
}

/**
 * Whether the order's key secret is still needed: only while the stage holds an issued certificate ACM does not
 * have yet (`resume-import` reads the key from it). Any other stage naming one gets a `drop-order-key`.
 */
export const keyStillNeeded = (stage: PendingStageView, acmSerial: string | undefined): boolean =>
  stage.stage === 'issued' && stage.serial !== undefined && stage.serial !== acmSerial;

export interface RotationPolicy {
  readonly mode: CertificateMode;
  readonly domainName: string;
  readonly renewBeforeMs: number;
  /** Manual `force`: rotate now, and retry a swap that was rolled back. */
  readonly force: boolean;
  /** FLEET_TAG_KEY = FLEET_TAG_VALUE: put on every certificate the job requests; required on one it deletes. */
  readonly fleetTag: { readonly key: string; readonly value: string };
  /** Whether HOSTED_ZONE_ID is set: the job writes ACM's validation records itself; without it the operator does. */
  readonly hostedZone: boolean;
  /** acme mode: at most one order per certificate per this long (ACME_ORDER_COOLDOWN; default 24 h). */
  readonly orderCooldownMs?: number;
  /** The certificate an ACM expiry event is about (scope): an event for another certificate plans nothing. */
  readonly eventCertificateArn?: string | undefined;
}

/**
 * What one run acts on: a manual `force` rotates now, even outside RENEW_BEFORE; an ACM expiry event names the
 * certificate it is about (the plan ignores an event for a certificate that is not the listener's). `policy` is the
 * config's, adjusted by both: what plan decides on.
 */
export interface RotationScope {
  readonly force: boolean;
  readonly eventCertificateArn?: string;
  readonly policy: RotationPolicy;
}

/** The observed certificates plus the host the handshake checks (the configured one or the load balancer's name). */
export interface RotationState extends CertState {
  readonly handshakeHost: string | undefined;
}

export interface Tag {
  readonly Key: string;
  readonly Value: string;
}

interface Base extends Action {
  readonly type: string;
}
export type CertAction =
  | (Base & { type: 'restore-validation-records'; records: DnsRecord[] })
  | (Base & {
      type: 'request-certificate';
      domainName: string;
      /** DOMAIN_NAME first, then the other names of the certificate being replaced (deduplicated). */
      subjectAlternativeNames: string[];
      /** The replaced certificate's key algorithm, when ACM can request it; absent = ACM's default (RSA_2048). */
      keyAlgorithm?: RequestableKeyAlgorithm;
      replaces: string;
      idempotencyToken: string;
      tags: Tag[];
    })
  | (Base & { type: 'create-validation-records'; records: DnsRecord[] })
  | (Base & {
      type: 'swap-listener-certificate';
      newCertificateArn: string;
      oldCertificateArn: string;
      /** Keep the old one in the SNI list for rollback: only when it cannot win the load balancer's selection. */
      keepForRollback: boolean;
    })
  | (Base & {
      type: 'verify-handshake';
      /** Where the handshake connects (HANDSHAKE_HOST or the load balancer's name); SNI is DOMAIN_NAME. */
      host: string | undefined;
      /** The serial to expect; null = the serial of the pending stage (acme: known only after the order). */
      expectSerial: string | null;
      rollback?: { listenerArn: string; restoreCertificateArn: string; rolledBackCertificateArn: string };
      /** acme: a verified handshake finishes the pending stage. */
      finishesStage?: boolean;
    })
  | (Base & {
      type: 'rollback-listener-certificate';
      restoreCertificateArn: string;
      rolledBackCertificateArn: string;
      /** What the handshake showed, and the serial of the swapped-in default it should have shown. */
      servedSerial: string;
      expectedSerial: string;
    })
  | (Base & { type: 'remove-listener-certificate'; certificateArn: string })
  | (Base & { type: 'delete-certificate' })
  | (Base & {
      type: 'renew-acme-certificate';
      domainName: string;
      /** Every name of the certificate it renews, DOMAIN_NAME first: the CSR asks for all of them. */
      names: string[];
      /** The renewed certificate's key algorithm (ACM's name): ACM refuses a re-import that changes it. */
      keyAlgorithm: string;
      /** Whether ACM reported the key algorithm (else RSA_2048 is assumed and not checked). */
      keyAlgorithmKnown: boolean;
      /** Tags the certificate carries now that must survive the re-import (the fleet tag, when it has it). */
      keepTags: Tag[];
    })
  | (Base & { type: 'import-acme-certificate'; domainName: string; keepTags: Tag[] })
  /** Delete the order's key secret (target: its name) without recovery, then forget it in the stage. */
  | (Base & { type: 'drop-order-key'; orderedAt: string })
  | (Base & { type: 'finish-acme-rotation'; serial: string })
  | (Base & { type: 'ignore-event' })
  | (Base & { type: 'wait' });

export type CertificatePlan = Plan<CertAction> & {
  /** What the run decided, for the report: healthy, renew, request, waiting, swap, cleanup, rollback, refused … */
  readonly step: string;
  readonly daysLeft?: number;
};

/** Key algorithms RequestCertificate accepts. */
export const REQUESTABLE_KEY_ALGORITHMS = ['RSA_2048', 'EC_prime256v1', 'EC_secp384r1'] as const;
export type RequestableKeyAlgorithm = (typeof REQUESTABLE_KEY_ALGORITHMS)[number];

/** ACM's key algorithm names as key types: what an ACME CSR must ask for to keep a re-import acceptable. */
export type KeySpec =
  { readonly type: 'rsa'; readonly bits: number } | { readonly type: 'ec'; readonly curve: string; readonly bits: number };
const CURVES: Record<string, { curve: string; bits: number }> = {
  EC_prime256v1: { curve: 'P-256', bits: 256 },
  EC_secp384r1: { curve: 'P-384', bits: 384 },
  EC_secp521r1: { curve: 'P-521', bits: 521 },
};
export function keySpecOf(keyAlgorithm: string | undefined): KeySpec | undefined {
  const rsa = /^RSA_(\d+)$/.exec(keyAlgorithm ?? '');
  if (rsa) return { type: 'rsa', bits: Number(rsa[1]) };
  const ec = CURVES[keyAlgorithm ?? ''];
  return ec ? { type: 'ec', ...ec } : undefined;
}

/**
 * The certificate an ALB serves for `domain` among those on the listener (default + SNI list). Its documented
 * order: only certificates whose names match; ECDSA over RSA; the larger key; then the validity period (here:
 * the one valid longer). Undefined when none matches (the ALB then serves the default) or when a matching one's
 * key algorithm is unknown (nothing can be said then).
 */
export function sniSelection<C extends { arn: string; names: readonly string[]; keyAlgorithm?: string; notAfter?: string }>(
  certs: readonly C[],
  domain: string,
): C | undefined {
  const matching = certs.filter((c) => covers(c.names, domain));
  if (matching.some((c) => !keySpecOf(c.keyAlgorithm))) return undefined;
  const rank = (c: C): [number, number, number] => {
    const spec = keySpecOf(c.keyAlgorithm) as KeySpec;
    return [spec.type === 'ec' ? 1 : 0, spec.bits, Date.parse(c.notAfter ?? '') || 0];
  };
  const better = (a: C, b: C): boolean => {
    const [x, y] = [rank(a), rank(b)];
    return x[0] !== y[0] ? x[0] > y[0] : x[1] !== y[1] ? x[1] > y[1] : x[2] > y[2];
  };
  return matching.reduce<C | undefined>((best, c) => (best === undefined || better(c, best) ? c : best), undefined);
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

/** The DNS names of an X.509 subjectAltName (`DNS:a, DNS:b, IP Address:…`), lower case: the one SAN parser. */
export function sanDnsNames(subjectAltName: string | undefined): string[] {
  return (subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
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
