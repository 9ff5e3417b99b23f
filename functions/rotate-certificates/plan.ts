import { createHash } from 'node:crypto';
import type { Refusal } from '../../shared/report.ts';
import {
  certificateProblem,
  covers,
  DEFAULT_ORDER_COOLDOWN_MS,
  daysLeft,
  keyStillNeeded,
  REQUESTABLE_KEY_ALGORITHMS,
  rolledBackAt,
  rotationOf,
  sniSelection,
  TAG_ROTATION_OF,
  type CertAction,
  type CertificatePlan,
  type CertificateView,
  type CertState,
  type DnsRecord,
  type PendingStageView,
  type RequestableKeyAlgorithm,
  type RotationPolicy,
  type Tag,
} from './model.ts';

/**
 * The rotation as a state machine across runs, decided here (pure: state, policy, now → plan).
 *
 * Any mode: an ACM expiry event for a certificate that is not one of the listener's plans nothing (`ignored`).
 * acm mode, once the served certificate is inside RENEW_BEFORE (or `force`):
 *   1. managed renewal pending validation / failed → restore its DNS validation records;
 *   2. no replacement in flight → request one (DNS validation, idempotency token from domain + old serial,
 *      tagged `registry-fleet:rotation-of` = old ARN and with the fleet tag) for DOMAIN_NAME and every other name the
 *      old one covers, with its key algorithm when ACM can issue that one, and create the validation records of every name;
 *   3. replacement PENDING_VALIDATION → make sure its validation records exist, wait;
 *   4. replacement ISSUED → make it the listener default, keep the old one in the SNI list only if it cannot win the
 *      load balancer's certificate selection (ECDSA over RSA, larger keys: else the ALB would go on serving it), verify
 *      the handshake (roll back by re-swapping the default on mismatch: the run fails; so does a later run that finds
 *      the swap not served and rolls it back);
 *   5. later run: default carries `rotation-of` and the handshake shows its serial → remove the old one
 *      from the listener and delete it once nothing else uses it, but only if it carries the fleet tag (the IAM
 *      policy allows no other delete: a certificate the operator imported is left in ACM, reported as skipped).
 *   Steps 3–5 continue whatever the window says: a rotation in flight is always finished.
 *   A rolled-back replacement is retried only by `{"force": true}`; until then every run inside the window is refused
 *   (`rotation-blocked`) so the alarm fires before the certificate runs out.
 *   Without a hosted zone (HOSTED_ZONE_ID unset) steps 1–3 create no records: their record actions are skipped, the
 *   reason naming the records to create by hand; once they exist ACM validates and the next runs carry on.
 * acme mode: re-issue through ACME and re-import into the same ARN, then verify the handshake, through the pending
 *   stages of model.ts's AcmeStage: a stage in flight is resumed (import / verify / finish) before anything is ordered;
 *   when ACM's copy is fresh and only the served one is old, the plan verifies (or waits), never orders; and at most
 *   one order per certificate per ACME_ORDER_COOLDOWN, counted from the stage's `orderedAt`.
 * Verdicts that need a person (a certificate the job must not use, a blocked rotation) are refusals, not actions.
 */

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

/** What one planning pass collects; `done` closes it into a plan. */
interface Draft {
  readonly state: CertState;
  readonly policy: RotationPolicy;
  readonly now: Date;
  readonly byArn: ReadonlyMap<string, CertificateView>;
  readonly actions: CertAction[];
  readonly skipped: CertAction[];
  readonly refusals: Refusal[];
  readonly inWindow: boolean;
  readonly why: string;
  readonly windowText: string;
  readonly host: string | undefined;
  done(step: string): CertificatePlan;
}

export function plan(
  state: CertState & { readonly handshakeHost?: string | undefined },
  policy: RotationPolicy,
  now: Date,
): CertificatePlan {
  const { listener, served } = state;
  const byArn = new Map(state.certificates.map((c) => [c.arn, c]));
  const actions: CertAction[] = [];
  const skipped: CertAction[] = [];
  const refusals: Refusal[] = [];
  const close = (step: string, left?: number): CertificatePlan => ({
    actions,
    skipped,
    ...(refusals.length > 0 ? { refusals } : {}),
    step,
    ...(left === undefined ? {} : { daysLeft: left }),
  });

  const current = listener.defaultCertificateArn ? byArn.get(listener.defaultCertificateArn) : undefined;
  if (!current) {
    const target = listener.defaultCertificateArn ?? listener.arn;
    refusals.push({
      type: 'refuse-certificate',
      target,
      reason: `the listener's default certificate ${target} is not an ACM certificate this job can read`,
    });
    return close('refused');
  }

  const expiry = [current.notAfter, served.ok ? served.notAfter : undefined].filter((t): t is string => t !== undefined).sort()[0];
  const left = daysLeft(expiry, now);
  const inWindow = expiry === undefined || Date.parse(expiry) - now.getTime() < policy.renewBeforeMs;
  const windowText = expiry === undefined ? 'expiry unknown' : `expires ${expiry} (${left} days left)`;
  const draft: Draft = {
    state,
    policy,
    now,
    byArn,
    actions,
    skipped,
    refusals,
    inWindow,
    why: policy.force && !inWindow ? `forced (${windowText})` : windowText,
    windowText,
    host: state.handshakeHost,
    done: (step) => close(step, left),
  };

  if (isForeignEvent(draft, current)) return draft.done('ignored');

  // A listener default that does not cover the domain is a configuration error: never rotate around it.
  if (!covers(current.names, policy.domainName)) {
    refusals.push({
      type: 'refuse-certificate',
      target: current.arn,
      reason: `listener default certificate ${certificateProblem(current, policy.domainName, now)}`,
    });
    return draft.done('refused');
  }

  return policy.mode === 'acme' ? planAcme(draft, current) : planAcm(draft, current);
}

/** An expiry event about a certificate that is none of the listener's: say so, plan nothing. */
function isForeignEvent(d: Draft, current: CertificateView): boolean {
  const eventArn = d.policy.eventCertificateArn;
  if (eventArn === undefined) return false;
  const { listener } = d.state;
  const ours = new Set([current.arn, ...listener.sniCertificateArns, ...d.state.certificates.map((c) => c.arn), ...d.state.missing]);
  if (ours.has(eventArn)) return false;
  d.skipped.push({
    type: 'ignore-event',
    target: eventArn,
    reason: `the ACM expiry event is for ${eventArn}, not one of the listener's certificates (${[...ours].join(', ')}): nothing to do`,
  });
  return true;
}

function planAcm(d: Draft, current: CertificateView): CertificatePlan {
  const cleanup = planAfterSwap(d, current);
  if (cleanup) return cleanup;

  const candidates = d.state.certificates
    .filter((c) => rotationOf(c) === current.arn && c.arn !== current.arn)
    .sort((a, b) => (a.notBefore ?? '').localeCompare(b.notBefore ?? ''));
  const active = candidates.filter((c) => !rolledBackAt(c) || d.policy.force);
  for (const c of candidates.filter((x) => !active.includes(x))) {
    d.skipped.push({
      type: 'wait',
      target: c.arn,
      reason: `swap to ${c.arn} was rolled back at ${rolledBackAt(c)}: investigate, then delete it or invoke with {"force": true} to retry`,
    });
  }
  const next = active.at(-1);

  if (!next && !d.inWindow && !d.policy.force) return d.done('healthy');
  restoreManagedRenewal(d, current);
  if (!next) return candidates.length > 0 ? blocked(d, candidates) : requestReplacement(d, current);
  if (next.status === 'PENDING_VALIDATION') return validateReplacement(d, next);
  return swapIn(d, current, next);
}

/** Step 5, or a rollback: the listener default is a certificate this job swapped in. Undefined = nothing to do here. */
function planAfterSwap(d: Draft, current: CertificateView): CertificatePlan | undefined {
  const { listener, served } = d.state;
  const previousArn = rotationOf(current);
  if (!previousArn) return undefined;
  const previous = d.byArn.get(previousArn);
  const attached = listener.sniCertificateArns.includes(previousArn);
  const servedMatches = served.ok && served.serial === current.serial;
  // Unconfirmed swap: the old certificate is still attached (kept for rollback), or it was not kept (it would have
  // outranked the new one) and the handshake still shows it. After a confirmed swap neither holds.
  const unconfirmed = attached || (served.ok && previous?.serial !== undefined && served.serial === previous.serial);
  if (served.ok && !servedMatches && unconfirmed && previous) {
    d.actions.push({
      type: 'rollback-listener-certificate',
      target: listener.arn,
      reason: `handshake shows serial ${served.serial}, not ${current.serial} of ${current.arn}: restoring ${previousArn}`,
      restoreCertificateArn: previousArn,
      rolledBackCertificateArn: current.arn,
      servedSerial: served.serial,
      expectedSerial: current.serial ?? '(unknown)',
    });
    return d.done('rollback');
  }
  if (!served.ok && (attached || previous)) {
    d.skipped.push({ type: 'wait', target: previousArn, reason: `cleanup waits for a successful handshake (${served.error})` });
  } else if (servedMatches) {
    cleanUp(d, current, previousArn, previous, attached);
  }
  return d.actions.length > 0 ? d.done('cleanup') : undefined;
}

function cleanUp(d: Draft, current: CertificateView, previousArn: string, previous: CertificateView | undefined, attached: boolean): void {
  const { listener } = d.state;
  const { fleetTag } = d.policy;
  if (attached) {
    d.actions.push({
      type: 'remove-listener-certificate',
      target: listener.arn,
      reason: `handshake shows the new certificate (serial ${current.serial}): old one no longer needed for rollback`,
      certificateArn: previousArn,
    });
  }
  if (!previous) return;
  if (previous.tags[fleetTag.key] !== fleetTag.value) {
    // Not the fleet's (e.g. imported by the operator): the policy forbids deleting it. Said once, in the run that
    // takes it off the listener; later runs leave it alone.
    if (attached) {
      d.skipped.push({
        type: 'delete-certificate',
        target: previousArn,
        reason:
          `not created by this fleet (no ${fleetTag.key}=${fleetTag.value} tag): left in ACM; delete it by hand ` + `once nothing uses it`,
      });
    }
    return;
  }
  // ACM lists the load balancer (moto: the listener) as a user; anything else keeps the certificate. If another
  // listener of the same load balancer still uses it, DeleteCertificate answers ResourceInUseException → skipped.
  const users = previous.inUseBy.filter((u) => u !== listener.loadBalancerArn && u !== listener.arn);
  if (users.length === 0) {
    d.actions.push({ type: 'delete-certificate', target: previousArn, reason: `replaced by ${current.arn}; ACM lists no other user` });
  } else {
    d.skipped.push({
      type: 'delete-certificate',
      target: previousArn,
      reason: `replaced by ${current.arn} but still in use by ${users.join(', ')}`,
    });
  }
}

/** Step 1: Amazon's own renewal is stuck on DNS validation: put the records back. */
function restoreManagedRenewal(d: Draft, current: CertificateView): void {
  const renewal = current.renewal;
  if (current.type !== 'AMAZON_ISSUED' || !renewal || !['PENDING_VALIDATION', 'FAILED'].includes(renewal.status)) return;
  const records = missingRecords(current.validationRecords, d.state.zoneRecords);
  if (records.length === 0) return;
  const reason =
    `managed renewal is ${renewal.status}${renewal.reason ? ` (${renewal.reason})` : ''} and ` +
    `${records.length} validation record(s) are missing; ${d.why}`;
  const action = { type: 'restore-validation-records' as const, target: current.arn, reason, records };
  if (d.policy.hostedZone) d.actions.push(action);
  else d.skipped.push({ ...action, reason: `${NO_ZONE}: ${describeRecords(records)} (managed renewal is ${renewal.status})` });
}

/** Every replacement was rolled back. Outside the window that can wait; inside it, every run is refused. */
function blocked(d: Draft, candidates: readonly CertificateView[]): CertificatePlan {
  if (d.inWindow) {
    const rolled = candidates.at(-1) as CertificateView;
    d.refusals.push({
      type: 'rotation-blocked',
      target: rolled.arn,
      reason:
        `${d.windowText}, but the swap to ${rolled.arn} was rolled back at ${rolledBackAt(rolled)}: nothing rotates it ` +
        `automatically. ` +
        `Find why the load balancer did not serve it, then invoke with {"force": true} to retry the swap, or delete it so the next ` +
        `run requests another`,
    });
  }
  return d.done('rolled-back');
}

/** Step 2. */
function requestReplacement(d: Draft, current: CertificateView): CertificatePlan {
  const { policy } = d;
  const names = [...new Set([policy.domainName, ...current.names])];
  d.actions.push({
    type: 'request-certificate',
    target: policy.domainName,
    reason: `${d.why}: requesting a DNS-validated replacement for ${current.arn} (${names.join(', ')})`,
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
  return d.done('request');
}

/** Step 3. */
function validateReplacement(d: Draft, next: CertificateView): CertificatePlan {
  const records = missingRecords(next.validationRecords, d.state.zoneRecords);
  if (records.length > 0 && !d.policy.hostedZone) {
    d.skipped.push({
      type: 'create-validation-records',
      target: next.arn,
      reason: `${NO_ZONE}: ${describeRecords(records)} (replacement is pending validation)`,
      records,
    });
  } else if (records.length > 0) {
    d.actions.push({
      type: 'create-validation-records',
      target: next.arn,
      reason: `replacement is pending validation; ${records.length} record(s) missing`,
      records,
    });
  } else {
    d.skipped.push({
      type: 'wait',
      target: next.arn,
      reason: `replacement is pending validation (records in place${next.validationRecords.length ? '' : ' or not yet published by ACM'})`,
    });
  }
  return d.done(d.actions.some((a) => a.type === 'create-validation-records') ? 'validate' : 'waiting');
}

/** Step 4: an issued replacement goes in as the default; the old one stays attached only if the ALB would not serve it. */
function swapIn(d: Draft, current: CertificateView, next: CertificateView): CertificatePlan {
  const { listener } = d.state;
  const { domainName } = d.policy;
  if (FAILED_STATUSES.has(next.status) || next.status !== 'ISSUED') {
    d.refusals.push({
      type: 'refuse-certificate',
      target: next.arn,
      reason:
        `replacement is ${next.status}${next.failureReason ? ` (${next.failureReason})` : ''}: delete it so the next run requests ` +
        `another`,
    });
    return d.done('refused');
  }
  const problem = certificateProblem(next, domainName, d.now);
  if (problem) {
    d.refusals.push({ type: 'refuse-certificate', target: next.arn, reason: `replacement ${problem}` });
    return d.done('refused');
  }
  // Another certificate on the listener that the ALB prefers for DOMAIN_NAME would be served whatever the default.
  const others = listener.sniCertificateArns.filter((a) => a !== current.arn).flatMap((a) => d.byArn.get(a) ?? []);
  const rival = sniSelection([next, ...others], domainName);
  if (rival && rival.arn !== next.arn) {
    d.refusals.push({
      type: 'refuse-certificate',
      target: rival.arn,
      reason:
        `${rival.arn} (${rival.keyAlgorithm}) on the listener would be served instead of ${next.arn} (${next.keyAlgorithm}) for ` +
        `${domainName} (the load balancer prefers ECDSA and larger keys): remove it from the listener, then run again`,
    });
    return d.done('refused');
  }
  const winner = sniSelection([next, current, ...others], domainName);
  const keepForRollback = winner === undefined || winner.arn === next.arn;
  d.actions.push({
    type: 'swap-listener-certificate',
    target: listener.arn,
    reason:
      `replacement ${next.arn} is ISSUED (valid until ${next.notAfter}); ${d.why}` +
      (keepForRollback ? '' : `; ${current.arn} is not kept on the listener: the load balancer would keep serving it`),
    newCertificateArn: next.arn,
    oldCertificateArn: current.arn,
    keepForRollback,
  });
  d.actions.push({
    type: 'verify-handshake',
    target: domainName,
    reason: `the load balancer must serve serial ${next.serial}; otherwise roll back to ${current.arn}`,
    host: d.host,
    expectSerial: next.serial ?? null,
    rollback: { listenerArn: listener.arn, restoreCertificateArn: current.arn, rolledBackCertificateArn: next.arn },
  });
  return d.done('swap');
}

function planAcme(d: Draft, current: CertificateView): CertificatePlan {
  const pending = stageFor(d, current);
  // A key secret a crash or a failed delete left behind: once ACM has the certificate (or there is none to import),
  // no readable copy of its key may stay. First, so it goes whatever the rest of the plan decides.
  if (pending?.keySecretName && !keyStillNeeded(pending, current.serial)) {
    d.actions.push({
      type: 'drop-order-key',
      target: pending.keySecretName,
      reason: `the key secret of the order placed at ${pending.orderedAt} (stage ${pending.stage}) is no longer needed: deleting it`,
      orderedAt: pending.orderedAt,
    });
  }
  // A stage in flight is finished whatever the window says: it is a certificate already paid for with an order.
  if (pending && current.type === 'IMPORTED') {
    const resumed = resumeStage(d, current, pending);
    if (resumed) return resumed;
  }
  if (!d.inWindow && !d.policy.force) return d.done('healthy');
  if (current.type !== 'IMPORTED') {
    d.refusals.push({
      type: 'refuse-certificate',
      target: current.arn,
      reason:
        `CERTIFICATE_MODE=acme re-imports into the listener's certificate, but it is ${current.type}: use CERTIFICATE_MODE=acm or ` +
        `import a certificate first`,
    });
    return d.done('refused');
  }
  // ACM's copy is fresh and only the served one is old: the load balancer has not picked it up yet. Ordering would
  // burn the CA's rate limit for a certificate ACM already holds.
  const { served } = d.state;
  const acmFresh = current.notAfter !== undefined && Date.parse(current.notAfter) - d.now.getTime() >= d.policy.renewBeforeMs;
  if (acmFresh && served.ok && served.serial !== current.serial) {
    verify(
      d,
      current.serial ?? null,
      `ACM holds serial ${current.serial} (valid until ${current.notAfter}) but the handshake shows ${served.serial}`,
    );
    return d.done('verify');
  }
  const cooldown = d.policy.orderCooldownMs ?? DEFAULT_ORDER_COOLDOWN_MS;
  if (pending && d.now.getTime() - Date.parse(pending.orderedAt) < cooldown) {
    const nextOrder = new Date(Date.parse(pending.orderedAt) + cooldown).toISOString();
    d.skipped.push({
      type: 'wait',
      target: current.arn,
      reason:
        `${d.why}, but an ACME order for it was placed at ${pending.orderedAt} (stage ${pending.stage}): ACME_ORDER_COOLDOWN allows the ` +
        `next one after ${nextOrder} (the CA's duplicate-certificate limit); see the runbook to resume or abandon the stage`,
    });
    return d.done('cooldown');
  }
  const keyAlgorithm = current.keyAlgorithm ?? 'RSA_2048';
  d.actions.push({
    type: 'renew-acme-certificate',
    target: current.arn,
    reason: `${d.why}: ACME order with DNS-01, re-imported into the same ARN (old serial ${current.serial})`,
    domainName: d.policy.domainName,
    names: [...new Set([d.policy.domainName, ...current.names])],
    keyAlgorithm,
    keyAlgorithmKnown: current.keyAlgorithm !== undefined,
    keepTags: keepTags(d, current),
  });
  verify(d, null, 'the load balancer must serve the re-imported certificate');
  return d.done('renew');
}

/** The pending stage of this certificate; a stage for another one is reported and left alone. */
function stageFor(d: Draft, current: CertificateView): PendingStageView | undefined {
  const pending = d.state.pending;
  if (!pending) return undefined;
  if (pending.certificateArn === current.arn) return pending;
  d.skipped.push({
    type: 'wait',
    target: pending.certificateArn,
    reason:
      `the pending ACME stage (${pending.stage}) is for ${pending.certificateArn}, not the listener's default ` +
      `${current.arn}: left alone`,
  });
  return undefined;
}

/** Resume at import / verify / finish. Undefined when nothing is in flight (no certificate yet, or already verified). */
function resumeStage(d: Draft, current: CertificateView, pending: PendingStageView): CertificatePlan | undefined {
  if (pending.stage === 'ordering' || pending.stage === 'verified' || !pending.serial) return undefined;
  const inAcm = current.serial === pending.serial;
  if (pending.stage === 'issued' && !inAcm) {
    d.actions.push({
      type: 'import-acme-certificate',
      target: current.arn,
      reason: `the certificate ordered at ${pending.orderedAt} (serial ${pending.serial}) is stored but not in ACM yet: importing it`,
      domainName: d.policy.domainName,
      keepTags: keepTags(d, current),
    });
    verify(d, pending.serial, 'the load balancer must serve the re-imported certificate');
    return d.done('resume-import');
  }
  // `issued` with ACM already holding it: the run died between the import and noting it.
  if (!inAcm) {
    d.skipped.push({
      type: 'wait',
      target: current.arn,
      reason: `the pending stage names serial ${pending.serial}, but ACM holds ${current.serial}: the stage is stale and left alone`,
    });
    return undefined;
  }
  const { served } = d.state;
  if (served.ok && served.serial === pending.serial) {
    d.actions.push({
      type: 'finish-acme-rotation',
      target: current.arn,
      reason: `the handshake shows serial ${pending.serial}: the rotation is done`,
      serial: pending.serial,
    });
    return d.done('finish');
  }
  verify(d, pending.serial, `ACM holds serial ${pending.serial}; the load balancer must serve it (it is never ordered again)`);
  return d.done('verify');
}

function verify(d: Draft, expectSerial: string | null, reason: string): void {
  d.actions.push({ type: 'verify-handshake', target: d.policy.domainName, reason, host: d.host, expectSerial, finishesStage: true });
}

function keepTags(d: Draft, current: CertificateView): Tag[] {
  const { key, value } = d.policy.fleetTag;
  return current.tags[key] === value ? [{ Key: key, Value: value }] : [];
}
