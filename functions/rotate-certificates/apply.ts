import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AddTagsToCertificateCommand,
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  ImportCertificateCommand,
  ListTagsForCertificateCommand,
  RequestCertificateCommand,
  type ACMClient,
} from '@aws-sdk/client-acm';
import {
  AddListenerCertificatesCommand,
  ModifyListenerCommand,
  RemoveListenerCertificatesCommand,
  type ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { Route53Client } from '@aws-sdk/client-route-53';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { describeError, errorName } from '../../shared/errors.ts';
import { applyEach, type Outcome, type Outcomes, type RunContext } from '../../shared/job.ts';
import type { IssuedCertificate, AcmeOrder, AcmeDeps } from './acme.ts';
import type { RotateCertificatesConfig } from './config.ts';
import type { Handshake } from './handshake.ts';
import {
  certificateProblem,
  normaliseName,
  normaliseSerial,
  sanDnsNames,
  TAG_ROLLED_BACK_AT,
  type CertAction,
  type CertificatePlan,
  type DnsRecord,
  type PendingStage,
  type Served,
  type Tag,
} from './model.ts';
import {
  createOrderKey,
  deleteOrderKey,
  orderKeySecretName,
  readOrderKey,
  readPendingStage,
  withoutKeyMaterial,
  writePendingStage,
} from './pending.ts';
import { describeRecords, NO_ZONE } from './plan.ts';
import { upsertRecords } from './route53.ts';

/** What apply talks to: the SDK clients, and the handshake and ACME issuer (seams for tests; the real ones by default). */
export interface RotationClients {
  readonly elbv2: ElasticLoadBalancingV2Client;
  readonly acm: ACMClient;
  readonly route53: Route53Client;
  readonly secrets: SecretsManagerClient;
  readonly handshake: Handshake;
  readonly issue: (order: AcmeOrder, deps: AcmeDeps) => Promise<IssuedCertificate>;
  /** Wait between handshake attempts while verifying a change. */
  readonly pollMs?: number;
}

type Ctx = Pick<RunContext<RotateCertificatesConfig>, 'config' | 'signal' | 'now' | 'hasTime' | 'logger'>;

const VALIDATION_TTL = 300;
/** A request-certificate action re-reads ACM this many times, 2 s apart, for the validation records it publishes. */
const RECORDS_ATTEMPTS = 10;
const RECORDS_POLL_MS = 2_000;
const DEFAULT_POLL_MS = 5_000;

/**
 * The validation records of every name, one per record name (a name and its wildcard share one); `complete` once ACM
 * has published a record for each name.
 */
async function readValidationRecords(
  acm: ACMClient,
  arn: string,
  signal: AbortSignal,
): Promise<{ records: DnsRecord[]; complete: boolean }> {
  const res = await acm.send(new DescribeCertificateCommand({ CertificateArn: arn }), { abortSignal: signal });
  const options = res.Certificate?.DomainValidationOptions ?? [];
  const records = new Map<string, DnsRecord>();
  for (const r of options.map((o) => o.ResourceRecord)) {
    if (r?.Name && r.Type && r.Value) records.set(normaliseName(r.Name), { name: normaliseName(r.Name), type: r.Type, value: r.Value });
  }
  const complete = options.length > 0 && options.every((o) => o.ResourceRecord?.Name && o.ResourceRecord.Value);
  return { records: [...records.values()], complete };
}

const validation = (zoneId: string, records: readonly DnsRecord[]) => ({
  zoneId,
  records,
  ttl: VALIDATION_TTL,
  comment: 'rotate-certificates ACM DNS validation',
});

/**
 * Handshake until `matches` says yes, HANDSHAKE_WAIT's worth of attempts are used up, or the run's time budget runs
 * low (`outOfTime`: a verify that outlived the Lambda would leave no report; this one leaves a resumable state).
 * Attempts, not a clock: apply never reads the clock.
 */
async function handshakeUntil(
  clients: RotationClients,
  ctx: Ctx,
  host: string,
  matches: (served: Served) => boolean,
): Promise<{ served: Served; outOfTime: boolean }> {
  const { config, signal } = ctx;
  const pollMs = clients.pollMs ?? DEFAULT_POLL_MS;
  const attempts = 1 + Math.floor(config.handshake.waitMs / pollMs);
  const target = { host, port: config.handshake.port, servername: config.domainName, timeoutMs: config.handshake.timeoutMs };
  for (let attempt = 1; ; attempt++) {
    const served = await clients.handshake(target, signal);
    if (matches(served) || attempt >= attempts || signal.aborted) return { served, outOfTime: false };
    if (!ctx.hasTime()) return { served, outOfTime: true };
    await sleep(pollMs, undefined, { signal });
  }
}

const describeServed = (s: Served): string => (s.ok ? `serial ${s.serial} (valid until ${s.notAfter})` : `no handshake (${s.error})`);

/**
 * The dialect's entry: the plan's actions in order, one at a time, stopping at the first failure. Each step needs
 * the one before (records → request, swap → verify, order → import → verify): going on after a failure would act on
 * a state the plan did not see, e.g. verify a swap that did not happen, or delete what a failed rollback still needs.
 */
export function apply(plan: CertificatePlan, ctx: Ctx, clients: RotationClients): Promise<Outcomes> {
  return applyEach(plan.actions, ctx, (action) => applyAction(action, ctx, clients), { stopOnFailure: true });
}

/** One action → one outcome. */
async function applyAction(action: CertAction, ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  switch (action.type) {
    case 'restore-validation-records':
    case 'create-validation-records':
      return writeValidationRecords(action.records, ctx, clients);
    case 'request-certificate':
      return requestCertificate(action, ctx, clients);
    case 'swap-listener-certificate':
      return swap(action, ctx, clients);
    case 'verify-handshake':
      return verifyHandshake(action, ctx, clients);
    case 'rollback-listener-certificate':
      return rollbackLater(action, ctx, clients);
    case 'remove-listener-certificate':
      return removeListenerCertificate(action, ctx, clients);
    case 'delete-certificate':
      return deleteCertificate(action, ctx, clients);
    case 'renew-acme-certificate':
      return renewAcme(action, ctx, clients);
    case 'import-acme-certificate':
      return importAcme(action, ctx, clients);
    case 'drop-order-key':
      return dropOrderKey(action, ctx, clients);
    case 'finish-acme-rotation':
      return finishAcme(action.serial, ctx, clients);
    case 'ignore-event':
    case 'wait':
      return { status: 'skipped', reason: action.reason };
  }
}

async function writeValidationRecords(records: DnsRecord[], ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  const zoneId = ctx.config.hostedZoneId;
  // The plan skips these without a zone; an action reaching here anyway writes nothing.
  if (!zoneId) return { status: 'skipped', reason: `${NO_ZONE}: ${describeRecords(records)}` };
  const changeId = await upsertRecords(clients.route53, validation(zoneId, records), ctx.signal);
  return { status: 'applied', detail: { changeId, records: records.map((r) => r.name) } };
}

type ActionOf<T extends CertAction['type']> = Extract<CertAction, { type: T }>;

async function requestCertificate(action: ActionOf<'request-certificate'>, ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  const { config, signal } = ctx;
  const res = await clients.acm.send(
    new RequestCertificateCommand({
      DomainName: action.domainName,
      SubjectAlternativeNames: action.subjectAlternativeNames,
      ...(action.keyAlgorithm ? { KeyAlgorithm: action.keyAlgorithm } : {}),
      ValidationMethod: 'DNS',
      IdempotencyToken: action.idempotencyToken,
      Tags: action.tags,
    }),
    { abortSignal: signal },
  );
  const arn = res.CertificateArn as string;
  // ACM publishes the validation records (one per name) a few seconds after the request; create those it
  // publishes in time, the next run's create-validation-records creates the rest.
  let { records, complete } = await readValidationRecords(clients.acm, arn, signal);
  for (let attempt = 1; !complete && attempt < RECORDS_ATTEMPTS && ctx.hasTime(); attempt++) {
    await sleep(RECORDS_POLL_MS, undefined, { signal });
    ({ records, complete } = await readValidationRecords(clients.acm, arn, signal));
  }
  if (!config.hostedZoneId) {
    // No zone to write to: report the records; the next runs report them too until ACM validates.
    return {
      status: 'applied',
      detail: {
        certificateArn: arn,
        validationRecords: records.map((r) => r.name),
        note:
          records.length > 0
            ? `${NO_ZONE}: ${describeRecords(records)}` +
              (complete ? '' : " (ACM has not published every name's record yet: the next run reports the rest)")
            : 'validation records not published yet: the next run reports them',
      },
    };
  }
  const changeId = await upsertRecords(clients.route53, validation(config.hostedZoneId, records), signal);
  return {
    status: 'applied',
    detail: {
      certificateArn: arn,
      validationRecords: records.map((r) => r.name),
      ...(changeId ? { changeId } : { note: 'validation records not published yet: the next run creates them' }),
      ...(changeId && !complete ? { note: "ACM has not published every name's record yet: the next run creates the rest" } : {}),
    },
  };
}

async function swap(action: ActionOf<'swap-listener-certificate'>, ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  const { signal } = ctx;
  await clients.elbv2.send(
    new ModifyListenerCommand({ ListenerArn: action.target, Certificates: [{ CertificateArn: action.newCertificateArn }] }),
    { abortSignal: signal },
  );
  // Keep the old certificate on the listener (SNI list) until a handshake proves the new one, unless the load
  // balancer would prefer it over the new one: then a rollback re-swaps the default instead.
  if (action.keepForRollback) {
    await clients.elbv2.send(
      new AddListenerCertificatesCommand({ ListenerArn: action.target, Certificates: [{ CertificateArn: action.oldCertificateArn }] }),
      { abortSignal: signal },
    );
  }
  return {
    status: 'applied',
    detail: { defaultCertificateArn: action.newCertificateArn, keptForRollback: action.keepForRollback ? action.oldCertificateArn : null },
  };
}

async function verifyHandshake(action: ActionOf<'verify-handshake'>, ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  const { config } = ctx;
  const stage = action.expectSerial === null || action.finishesStage ? await readStage(ctx, clients) : undefined;
  const expected = action.expectSerial ?? stage?.serial;
  if (!expected) return { status: 'failed', error: 'no serial to expect: the change before this check did not complete' };
  if (!action.host) return { status: 'failed', error: 'no host to connect to (set HANDSHAKE_HOST)' };
  const { served, outOfTime } = await handshakeUntil(clients, ctx, action.host, (s) => s.ok && s.serial === expected);
  if (served.ok && served.serial === expected) {
    const finished = action.finishesStage && stage ? await finishStage(stage, expected, ctx, clients) : false;
    return { status: 'applied', detail: { serial: served.serial, notAfter: served.notAfter, ...(finished ? { stage: 'verified' } : {}) } };
  }
  if (outOfTime) {
    return {
      status: 'skipped',
      reason:
        `the Lambda time budget ran low before the handshake showed serial ${expected} (it shows ${describeServed(served)}): ` +
        `nothing was rolled back; the next run verifies again`,
    };
  }
  const mismatch = `after ${config.handshake.waitMs / 1000}s the handshake shows ${describeServed(served)}, expected serial ${expected}`;
  if (!action.rollback) {
    const resumable = stage ? ': the stage stays imported, the next run verifies again (it never orders again)' : '';
    return { status: 'failed', error: `${mismatch}${resumable}`, detail: { served } };
  }
  await rollback(clients, action.rollback, ctx);
  return {
    status: 'failed',
    error: `${mismatch}: rolled back to ${action.rollback.restoreCertificateArn}`,
    detail: { rolledBack: true, served },
  };
}

async function rollbackLater(action: ActionOf<'rollback-listener-certificate'>, ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  // The listener is safe again, but the rotation did not happen: fail the run so the alarm fires.
  const { target, restoreCertificateArn, rolledBackCertificateArn } = action;
  await rollback(clients, { listenerArn: target, restoreCertificateArn, rolledBackCertificateArn }, ctx);
  return {
    status: 'failed',
    error:
      `rolled back to ${restoreCertificateArn} because the handshake showed serial ${action.servedSerial}, not ` +
      `${action.expectedSerial} of ${rolledBackCertificateArn}`,
    detail: { defaultCertificateArn: restoreCertificateArn, rolledBack: true },
  };
}

async function removeListenerCertificate(
  action: ActionOf<'remove-listener-certificate'>,
  ctx: Ctx,
  clients: RotationClients,
): Promise<Outcome> {
  try {
    await clients.elbv2.send(
      new RemoveListenerCertificatesCommand({ ListenerArn: action.target, Certificates: [{ CertificateArn: action.certificateArn }] }),
      { abortSignal: ctx.signal },
    );
  } catch (error) {
    if (errorName(error) !== 'CertificateNotFoundException') throw error;
  }
  return { status: 'applied' };
}

async function deleteCertificate(action: ActionOf<'delete-certificate'>, ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  try {
    await clients.acm.send(new DeleteCertificateCommand({ CertificateArn: action.target }), { abortSignal: ctx.signal });
  } catch (error) {
    if (errorName(error) === 'ResourceNotFoundException') return { status: 'applied', detail: { note: 'already deleted' } };
    if (errorName(error) === 'ResourceInUseException')
      return { status: 'skipped', reason: 'ACM still lists a user of it: the next run deletes it' };
    throw error;
  }
  return { status: 'applied' };
}

/** ACM's key algorithm name of a certificate's public key (RSA_2048, EC_prime256v1 …). */
function keyAlgorithmOf(x509: X509Certificate): string {
  const key = x509.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  return key.asymmetricKeyType === 'ec' ? `EC_${details.namedCurve}` : `RSA_${details.modulusLength}`;
}

/** Order (the stage is written first: the cooldown counts from it), store the result, then import it. */
async function renewAcme(action: ActionOf<'renew-acme-certificate'>, ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  const { config, signal, now } = ctx;
  if (!config.acme || !config.hostedZoneId)
    return { status: 'failed', error: 'CERTIFICATE_MODE=acme without ACME settings or HOSTED_ZONE_ID' };
  const orderedAt = now.toISOString();
  // Named before the order: a run that dies after creating it leaves a name in the stage for the next run to drop.
  const keySecretName = orderKeySecretName(config.acme.pendingSecretArn, orderedAt);
  const ordering: PendingStage = { certificateArn: action.target, stage: 'ordering', orderedAt, keySecretName };
  await writePendingStage(clients.secrets, config.acme.pendingSecretArn, ordering, signal);
  const issued = await clients.issue(
    {
      domainName: action.domainName,
      names: action.names,
      keyAlgorithm: action.keyAlgorithm,
      hostedZoneId: config.hostedZoneId,
      settings: config.acme,
      dnsChangeTimeoutMs: config.dnsChangeTimeoutMs,
      signal,
      hasTime: ctx.hasTime,
    },
    { route53: clients.route53, secrets: clients.secrets },
  );
  const x509 = new X509Certificate(issued.certificatePem);
  const names = sanDnsNames(x509.subjectAltName);
  const notAfter = new Date(x509.validTo).toISOString();
  // Not notBefore: a certificate issued during this run may start after the run's `now`.
  const problem =
    certificateProblem({ names, notAfter }, action.domainName, now) ??
    (action.keyAlgorithmKnown && keyAlgorithmOf(x509) !== action.keyAlgorithm
      ? `has a ${keyAlgorithmOf(x509)}, not ${action.keyAlgorithm} key (ACM refuses a re-import that changes it)`
      : undefined) ??
    (action.names.some((n) => !names.includes(n)) ? `lacks ${action.names.filter((n) => !names.includes(n)).join(', ')}` : undefined);
  if (problem) return { status: 'failed', error: `ACME certificate ${problem}: not imported` };
  const stored: PendingStage = {
    ...ordering,
    stage: 'issued',
    serial: normaliseSerial(x509.serialNumber),
    notAfter,
    names,
    certificatePem: issued.certificatePem,
    chainPem: issued.chainPem,
  };
  // Stored before the import: if the import (or anything after it) fails, the next run resumes here, never re-orders.
  // The key goes to its own secret, which can be deleted outright; the pending secret keeps every version it had.
  await createOrderKey(clients.secrets, keySecretName, issued.privateKeyPem, signal);
  await writePendingStage(clients.secrets, config.acme.pendingSecretArn, stored, signal);
  return importStage(stored, issued.privateKeyPem, action.keepTags, ctx, clients);
}

/** Resume at import: the certificate and key of the stage, re-checked right before acting. */
async function importAcme(action: ActionOf<'import-acme-certificate'>, ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  const stage = await readStage(ctx, clients);
  if (!stage || stage.stage !== 'issued' || stage.certificateArn !== action.target || !stage.certificatePem) {
    return { status: 'failed', error: `the pending stage no longer holds an issued certificate for ${action.target}: nothing imported` };
  }
  // A stage written by a release before the key secret still carries its key inline.
  const privateKeyPem =
    stage.privateKeyPem ?? (stage.keySecretName ? await readOrderKey(clients.secrets, stage.keySecretName, ctx.signal) : undefined);
  if (!privateKeyPem) {
    return {
      status: 'failed',
      error:
        `the key of the certificate ordered at ${stage.orderedAt} is gone (${stage.keySecretName ?? 'no key secret'}): nothing ` +
        `imported; abandon the stage (set ACME_PENDING_SECRET_ARN to {}) so the next run orders again`,
    };
  }
  return importStage(stage, privateKeyPem, action.keepTags, ctx, clients);
}

async function importStage(
  stage: PendingStage,
  privateKeyPem: string,
  keepTags: readonly Tag[],
  ctx: Ctx,
  clients: RotationClients,
): Promise<Outcome> {
  const { config, signal } = ctx;
  const enc = new TextEncoder();
  await clients.acm.send(
    new ImportCertificateCommand({
      CertificateArn: stage.certificateArn,
      Certificate: enc.encode(stage.certificatePem),
      PrivateKey: enc.encode(privateKeyPem),
      ...(stage.chainPem ? { CertificateChain: enc.encode(stage.chainPem) } : {}),
    }),
    { abortSignal: signal },
  );
  ctx.logger.info('certificate re-imported', { certificateArn: stage.certificateArn, serial: stage.serial, notAfter: stage.notAfter });
  const secretArn = (config.acme as { pendingSecretArn: string }).pendingSecretArn;
  // ACM holds the key now: delete the order's copy. A failed delete keeps its name in the stage, and the next run's
  // plan drops it first (drop-order-key); it is no reason to skip the handshake check.
  const dropped = stage.keySecretName ? await dropQuietly(stage.keySecretName, ctx, clients) : true;
  const { keySecretName: _name, ...imported } = { ...withoutKeyMaterial(stage), stage: 'imported' as const };
  await writePendingStage(clients.secrets, secretArn, dropped ? imported : { ...imported, keySecretName: stage.keySecretName }, signal);
  // The certificate is in place: a tag that cannot be put back is reported, not a reason to skip the check.
  let tags: Record<string, unknown> = {};
  try {
    const restored = await restoreTags(clients.acm, stage.certificateArn, keepTags, signal);
    if (restored.length > 0) tags = { tagsRestored: restored };
  } catch (error) {
    if (signal.aborted) throw error;
    ctx.logger.warn('could not restore certificate tags after the re-import', {
      certificateArn: stage.certificateArn,
      error: describeError(error),
    });
    tags = { tagRestoreError: describeError(error) };
  }
  return {
    status: 'applied',
    detail: { serial: stage.serial, notAfter: stage.notAfter, ...tags, ...(dropped ? {} : { orderKeyKept: stage.keySecretName }) },
  };
}

async function dropQuietly(name: string, ctx: Ctx, clients: RotationClients): Promise<boolean> {
  try {
    await deleteOrderKey(clients.secrets, name, ctx.signal);
    return true;
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    ctx.logger.warn('could not delete the order key secret after the import: the next run deletes it', {
      keySecretName: name,
      error: describeError(error),
    });
    return false;
  }
}

/** Delete a key secret the stage still names, then forget it there (re-checked: the stage must still be that order's). */
async function dropOrderKey(action: ActionOf<'drop-order-key'>, ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  const stage = await readStage(ctx, clients);
  if (!stage || stage.keySecretName !== action.target || stage.orderedAt !== action.orderedAt) {
    return { status: 'skipped', reason: `the pending stage no longer names ${action.target}: left alone` };
  }
  const result = await deleteOrderKey(clients.secrets, action.target, ctx.signal);
  const { keySecretName: _name, ...rest } = stage;
  await writePendingStage(clients.secrets, (ctx.config.acme as { pendingSecretArn: string }).pendingSecretArn, rest, ctx.signal);
  return { status: 'applied', detail: { keySecret: result } };
}

async function finishAcme(serial: string, ctx: Ctx, clients: RotationClients): Promise<Outcome> {
  const stage = await readStage(ctx, clients);
  if (!stage) return { status: 'skipped', reason: 'no pending stage any more: nothing to finish' };
  const finished = await finishStage(stage, serial, ctx, clients);
  return finished
    ? { status: 'applied', detail: { serial, stage: 'verified' } }
    : { status: 'skipped', reason: `the pending stage is not for serial ${serial}` };
}

/** The served serial is the stage's: mark it verified and drop what is left of its key material. */
async function finishStage(stage: PendingStage, serial: string, ctx: Ctx, clients: RotationClients): Promise<boolean> {
  if (stage.serial !== serial || !ctx.config.acme) return false;
  await writePendingStage(
    clients.secrets,
    ctx.config.acme.pendingSecretArn,
    { ...withoutKeyMaterial(stage), stage: 'verified' },
    ctx.signal,
  );
  return true;
}

function readStage(ctx: Ctx, clients: RotationClients): Promise<PendingStage | undefined> {
  const acme = ctx.config.acme;
  return acme ? readPendingStage(clients.secrets, acme.pendingSecretArn, ctx.signal) : Promise.resolve(undefined);
}

/**
 * ACM keeps a certificate's tags across a re-import; moto drops them. Put back the ones it had (the fleet tag) that
 * are now missing; returns their keys.
 */
async function restoreTags(acm: ACMClient, arn: string, keep: readonly Tag[], signal: AbortSignal): Promise<string[]> {
  if (keep.length === 0) return [];
  const res = await acm.send(new ListTagsForCertificateCommand({ CertificateArn: arn }), { abortSignal: signal });
  const missing = keep.filter((t) => !(res.Tags ?? []).some((have) => have.Key === t.Key && have.Value === t.Value));
  if (missing.length === 0) return [];
  await acm.send(new AddTagsToCertificateCommand({ CertificateArn: arn, Tags: missing }), { abortSignal: signal });
  return missing.map((t) => t.Key);
}

/** Re-swap the default (the old certificate need not be attached) and mark the replacement so nothing retries it. */
async function rollback(
  clients: RotationClients,
  r: { listenerArn: string; restoreCertificateArn: string; rolledBackCertificateArn: string },
  ctx: Ctx,
): Promise<void> {
  const { signal } = ctx;
  await clients.elbv2.send(
    new ModifyListenerCommand({ ListenerArn: r.listenerArn, Certificates: [{ CertificateArn: r.restoreCertificateArn }] }),
    { abortSignal: signal },
  );
  await clients.acm.send(
    new AddTagsToCertificateCommand({
      CertificateArn: r.rolledBackCertificateArn,
      Tags: [{ Key: TAG_ROLLED_BACK_AT, Value: ctx.now.toISOString() }],
    }),
    { abortSignal: signal },
  );
  ctx.logger.warn('listener certificate rolled back', { ...r });
}
