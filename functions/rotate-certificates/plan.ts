import { createHash } from 'node:crypto';
import type { Action, Plan } from '../../shared/job.ts';
import {
  certificateProblem,
  covers,
  daysLeft,
  TAG_ROLLED_BACK_AT,
  TAG_ROTATION_OF,
  type CertificateMode,
  type CertificateView,
  type CertState,
  type DnsRecord,
} from './model.ts';

/**
 * The rotation as a state machine across runs, decided here (pure: state, policy, now → plan).
 *
 * acm mode, once the served certificate is inside RENEW_BEFORE (or `force`):
 *   1. managed renewal pending validation / failed → restore its DNS validation records;
 *   2. no replacement in flight → request one (DNS validation, idempotency token from domain + old serial,
 *      tagged `registry:rotation-of` = old ARN and with the fleet tag) for DOMAIN_NAME and every other name the old
 *      one covers, with its key algorithm when ACM can issue that one, and create the validation records of every name;
 *   3. replacement PENDING_VALIDATION → make sure its validation records exist, wait;
 *   4. replacement ISSUED → make it the listener default, keep the old one in the SNI list, verify the handshake
 *      (roll back on mismatch: the run fails; so does a later run that finds the swap not served and rolls it back);
 *   5. later run: default carries `registry:rotation-of` and the handshake shows its serial → remove the old one
 *      from the listener and delete it once nothing else uses it, but only if it carries the fleet tag (the IAM
 *      policy allows no other delete: a certificate the operator imported is left in ACM, reported as skipped).
 *   Steps 3–5 continue whatever the window says: a rotation in flight is always finished.
 *   A rolled-back replacement is retried only by `{"force": true}`; until then every run inside the window fails
 *   (`rotation-blocked`) so the alarm fires before the certificate runs out.
 *   Without a hosted zone (HOSTED_ZONE_ID unset) steps 1–3 create no records: their record actions are skipped, the
 *   reason naming the records to create by hand; once they exist ACM validates and the next runs carry on.
 * acme mode: re-issue through ACME and re-import into the same ARN, then verify the handshake.
 */

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
  | (Base & { type: 'swap-listener-certificate'; newCertificateArn: string; oldCertificateArn: string })
  | (Base & {
      type: 'verify-handshake';
      /** The serial to expect; null = the serial the preceding renew-acme-certificate imported. */
      expectSerial: string | null;
      rollback?: { listenerArn: string; restoreCertificateArn: string; rolledBackCertificateArn: string };
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
      /** Tags the certificate carries now that must survive the re-import (the fleet tag, when it has it). */
      keepTags: Tag[];
    })
  | (Base & { type: 'refuse-certificate' })
  /** Inside RENEW_BEFORE with the replacement rolled back: fails the run (apply does nothing) until force or deletion. */
  | (Base & { type: 'rotation-blocked' })
  | (Base & { type: 'wait' });

export type CertificatePlan = Plan<CertAction> & {
  /** What the run decided, for the report: healthy, renew, request, waiting, swap, cleanup, rollback, refused … */
  readonly step: string;
  readonly daysLeft?: number;
};

/** Key algorithms RequestCertificate accepts. */
export const REQUESTABLE_KEY_ALGORITHMS = ['RSA_2048', 'EC_prime256v1', 'EC_secp384r1'] as const;
export type RequestableKeyAlgorithm = (typeof REQUESTABLE_KEY_ALGORITHMS)[number];
const isRequestable = (k: string | undefined): k is RequestableKeyAlgorithm =>
  (REQUESTABLE_KEY_ALGORITHMS as readonly string[]).includes(k ?? '');

const FAILED_STATUSES = new Set(['FAILED', 'VALIDATION_TIMED_OUT', 'REVOKED', 'EXPIRED', 'INACTIVE']);

/** ACM's IdempotencyToken (≤ 32 word characters), stable for one domain + the certificate being replaced. */
export function idempotencyToken(domainName: string, oldSerialOrArn: string): string {
  return createHash('sha256').update(`${domainName}\n${oldSerialOrArn}`).digest('hex').slice(0, 32);
}

export function missingRecords(records: readonly DnsRecord[], zone: CertState['zoneRecords']): DnsRecord[] {
  return records.filter((r) => !(zone[r.name] ?? []).some((v) => v.toLowerCase() === r.value.toLowerCase()));
}

/** `name TYPE value` for each record, for an operator to create by hand. */
export function describeRecords(records: readonly DnsRecord[]): string {
  return records.map((r) => `${r.name} ${r.type} ${r.value}`).join(', ');
}

export const NO_ZONE = 'no HOSTED_ZONE_ID: create these DNS records by hand';

export function planRotation(state: CertState, policy: RotationPolicy, now: Date): CertificatePlan {
  const { listener, served } = state;
  const byArn = new Map(state.certificates.map((c) => [c.arn, c]));
  const actions: CertAction[] = [];
  const skipped: CertAction[] = [];

  const current = listener.defaultCertificateArn ? byArn.get(listener.defaultCertificateArn) : undefined;
  if (!current) {
    const target = listener.defaultCertificateArn ?? listener.arn;
    actions.push({
      type: 'refuse-certificate',
      target,
      reason: `the listener's default certificate ${target} is not an ACM certificate this job can read`,
    });
    return { actions, skipped, step: 'refused' };
  }

  const servedMatches = served.ok && served.serial === current.serial;
  const expiry = [current.notAfter, served.ok ? served.notAfter : undefined].filter((t): t is string => t !== undefined).sort()[0];
  const left = daysLeft(expiry, now);
  const inWindow = expiry === undefined || Date.parse(expiry) - now.getTime() < policy.renewBeforeMs;
  const windowText = expiry === undefined ? 'expiry unknown' : `expires ${expiry} (${left} days left)`;
  const why = policy.force && !inWindow ? `forced (${windowText})` : windowText;
  const done = (step: string): CertificatePlan => ({ actions, skipped, step, ...(left === undefined ? {} : { daysLeft: left }) });

  // A listener default that does not cover the domain is a configuration error: never rotate around it.
  if (!covers(current.names, policy.domainName)) {
    actions.push({
      type: 'refuse-certificate',
      target: current.arn,
      reason: `listener default certificate ${certificateProblem(current, policy.domainName, now)}`,
    });
    return done('refused');
  }

  if (policy.mode === 'acme') return planAcme(current, policy, { inWindow, why, done, actions });

  // Step 5, or a rollback: the listener default is a certificate this job swapped in.
  const previousArn = current.tags[TAG_ROTATION_OF];
  if (previousArn) {
    const previous = byArn.get(previousArn);
    const attached = listener.sniCertificateArns.includes(previousArn);
    if (served.ok && !servedMatches && attached && previous) {
      actions.push({
        type: 'rollback-listener-certificate',
        target: listener.arn,
        reason: `handshake shows serial ${served.serial}, not ${current.serial} of ${current.arn}: restoring ${previousArn}`,
        restoreCertificateArn: previousArn,
        rolledBackCertificateArn: current.arn,
        servedSerial: served.serial,
        expectedSerial: current.serial ?? '(unknown)',
      });
      return done('rollback');
    }
    if (!served.ok && (attached || previous)) {
      skipped.push({ type: 'wait', target: previousArn, reason: `cleanup waits for a successful handshake (${served.error})` });
    } else if (servedMatches) {
      if (attached) {
        actions.push({
          type: 'remove-listener-certificate',
          target: listener.arn,
          reason: `handshake shows the new certificate (serial ${current.serial}): old one no longer needed for rollback`,
          certificateArn: previousArn,
        });
      }
      const fleetTagged = previous?.tags[policy.fleetTag.key] === policy.fleetTag.value;
      if (previous && !fleetTagged) {
        // Not the fleet's (e.g. imported by the operator): the policy forbids deleting it. Said once, in the run that
        // takes it off the listener; later runs leave it alone.
        if (attached) {
          skipped.push({
            type: 'delete-certificate',
            target: previousArn,
            reason:
              `not created by this fleet (no ${policy.fleetTag.key}=${policy.fleetTag.value} tag): left in ACM; delete it by hand ` +
              `once nothing uses it`,
          });
        }
      } else if (previous) {
        // ACM lists the load balancer (moto: the listener) as a user; anything else keeps the certificate. If another
        // listener of the same load balancer still uses it, DeleteCertificate answers ResourceInUseException → skipped.
        const users = previous.inUseBy.filter((u) => u !== listener.loadBalancerArn && u !== listener.arn);
        if (users.length === 0) {
          actions.push({ type: 'delete-certificate', target: previousArn, reason: `replaced by ${current.arn}; ACM lists no other user` });
        } else {
          skipped.push({
            type: 'delete-certificate',
            target: previousArn,
            reason: `replaced by ${current.arn} but still in use by ${users.join(', ')}`,
          });
        }
      }
    }
    if (actions.length > 0) return done('cleanup');
  }

  const candidates = state.certificates
    .filter((c) => c.tags[TAG_ROTATION_OF] === current.arn && c.arn !== current.arn)
    .sort((a, b) => (a.notBefore ?? '').localeCompare(b.notBefore ?? ''));
  const active = candidates.filter((c) => !c.tags[TAG_ROLLED_BACK_AT] || policy.force);
  for (const c of candidates.filter((x) => !active.includes(x))) {
    skipped.push({
      type: 'wait',
      target: c.arn,
      reason:
        `swap to ${c.arn} was rolled back at ${c.tags[TAG_ROLLED_BACK_AT]}: investigate, then delete it or invoke with {"force": ` +
        `true} to retry`,
    });
  }
  const next = active.at(-1);

  if (!next && !inWindow && !policy.force) return done('healthy');

  // Step 1: Amazon's own renewal is stuck on DNS validation: put the records back.
  if (current.type === 'AMAZON_ISSUED' && current.renewal && ['PENDING_VALIDATION', 'FAILED'].includes(current.renewal.status)) {
    const records = missingRecords(current.validationRecords, state.zoneRecords);
    if (records.length > 0) {
      const reason =
        `managed renewal is ${current.renewal.status}${current.renewal.reason ? ` (${current.renewal.reason})` : ''} and ` +
        `${records.length} validation record(s) are missing; ${why}`;
      const action = { type: 'restore-validation-records' as const, target: current.arn, reason, records };
      if (policy.hostedZone) actions.push(action);
      else skipped.push({ ...action, reason: `${NO_ZONE}: ${describeRecords(records)} (managed renewal is ${current.renewal.status})` });
    }
  }

  if (!next) {
    if (candidates.length > 0) {
      // Every replacement was rolled back (else `next`). Outside the window that can wait; inside it, fail every run.
      if (inWindow) {
        const rolled = candidates.at(-1) as CertificateView;
        actions.push({
          type: 'rotation-blocked',
          target: rolled.arn,
          reason:
            `${windowText}, but the swap to ${rolled.arn} was rolled back at ${rolled.tags[TAG_ROLLED_BACK_AT]}: nothing rotates it ` +
            `automatically. ` +
            `Find why the load balancer did not serve it, then invoke with {"force": true} to retry the swap, or delete it so the next ` +
            `run requests another`,
        });
      }
      return done('rolled-back');
    }
    const names = [...new Set([policy.domainName, ...current.names])];
    actions.push({
      type: 'request-certificate',
      target: policy.domainName,
      reason: `${why}: requesting a DNS-validated replacement for ${current.arn} (${names.join(', ')})`,
      domainName: policy.domainName,
      subjectAlternativeNames: names,
      ...(isRequestable(current.keyAlgorithm) ? { keyAlgorithm: current.keyAlgorithm } : {}),
      replaces: current.arn,
      idempotencyToken: idempotencyToken(policy.domainName, current.serial ?? current.arn),
      tags: [
        { Key: TAG_ROTATION_OF, Value: current.arn },
        { Key: policy.fleetTag.key, Value: policy.fleetTag.value },
      ],
    });
    return done('request');
  }

  if (next.status === 'PENDING_VALIDATION') {
    const records = missingRecords(next.validationRecords, state.zoneRecords);
    if (records.length > 0 && !policy.hostedZone) {
      skipped.push({
        type: 'create-validation-records',
        target: next.arn,
        reason: `${NO_ZONE}: ${describeRecords(records)} (replacement is pending validation)`,
        records,
      });
    } else if (records.length > 0) {
      actions.push({
        type: 'create-validation-records',
        target: next.arn,
        reason: `replacement is pending validation; ${records.length} record(s) missing`,
        records,
      });
    } else {
      skipped.push({
        type: 'wait',
        target: next.arn,
        reason:
          `replacement is pending validation (records in ` + `place${next.validationRecords.length ? '' : ' or not yet published by ACM'})`,
      });
    }
    return done(actions.some((a) => a.type === 'create-validation-records') ? 'validate' : 'waiting');
  }

  if (FAILED_STATUSES.has(next.status) || next.status !== 'ISSUED') {
    actions.push({
      type: 'refuse-certificate',
      target: next.arn,
      reason:
        `replacement is ${next.status}${next.failureReason ? ` (${next.failureReason})` : ''}: delete it so the next run requests ` +
        `another`,
    });
    return done('refused');
  }

  const problem = certificateProblem(next, policy.domainName, now);
  if (problem) {
    actions.push({ type: 'refuse-certificate', target: next.arn, reason: `replacement ${problem}` });
    return done('refused');
  }
  actions.push({
    type: 'swap-listener-certificate',
    target: listener.arn,
    reason: `replacement ${next.arn} is ISSUED (valid until ${next.notAfter}); ${why}`,
    newCertificateArn: next.arn,
    oldCertificateArn: current.arn,
  });
  actions.push({
    type: 'verify-handshake',
    target: policy.domainName,
    reason: `the load balancer must serve serial ${next.serial}; otherwise roll back to ${current.arn}`,
    expectSerial: next.serial ?? null,
    rollback: { listenerArn: listener.arn, restoreCertificateArn: current.arn, rolledBackCertificateArn: next.arn },
  });
  return done('swap');
}

function planAcme(
  current: CertificateView,
  policy: RotationPolicy,
  ctx: { inWindow: boolean; why: string; done: (step: string) => CertificatePlan; actions: CertAction[] },
): CertificatePlan {
  const { actions, done } = ctx;
  if (!ctx.inWindow && !policy.force) return done('healthy');
  if (current.type !== 'IMPORTED') {
    actions.push({
      type: 'refuse-certificate',
      target: current.arn,
      reason:
        `CERTIFICATE_MODE=acme re-imports into the listener's certificate, but it is ${current.type}: use CERTIFICATE_MODE=acm or ` +
        `import a certificate first`,
    });
    return done('refused');
  }
  actions.push({
    type: 'renew-acme-certificate',
    target: current.arn,
    reason: `${ctx.why}: ACME order with DNS-01, re-imported into the same ARN (old serial ${current.serial})`,
    domainName: policy.domainName,
    keepTags:
      current.tags[policy.fleetTag.key] === policy.fleetTag.value ? [{ Key: policy.fleetTag.key, Value: policy.fleetTag.value }] : [],
  });
  actions.push({
    type: 'verify-handshake',
    target: policy.domainName,
    reason: 'the load balancer must serve the re-imported certificate',
    expectSerial: null,
  });
  return done('renew');
}
