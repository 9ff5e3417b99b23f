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
import { ChangeResourceRecordSetsCommand, type Route53Client } from '@aws-sdk/client-route-53';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { describeError, errorName } from '../../shared/errors.ts';
import { applyEach, type ApplyContext, type Outcome } from '../../shared/job.ts';
import { logger } from '../../shared/observability.ts';
import type { IssuedCertificate, AcmeOrder, AcmeDeps } from './acme.ts';
import type { RotateCertificatesConfig } from './config.ts';
import type { Handshake } from './handshake.ts';
import { certificateProblem, normaliseName, normaliseSerial, TAG_ROLLED_BACK_AT, type DnsRecord, type Served } from './model.ts';
import { describeRecords, NO_ZONE, type CertAction, type Tag } from './plan.ts';

export interface ApplyDeps {
  readonly elbv2: ElasticLoadBalancingV2Client;
  readonly acm: ACMClient;
  readonly route53: Route53Client;
  readonly secrets: SecretsManagerClient;
  readonly handshake: Handshake;
  readonly issue: (order: AcmeOrder, deps: AcmeDeps) => Promise<IssuedCertificate>;
  /** Wait between handshake attempts while verifying a change. */
  readonly pollMs?: number;
}

const VALIDATION_TTL = 300;
/** How long a request-certificate action waits for ACM to publish the validation records. */
const RECORDS_WAIT_MS = 20_000;

async function upsertRecords(
  route53: Route53Client,
  zoneId: string,
  records: readonly DnsRecord[],
  signal: AbortSignal,
): Promise<string | undefined> {
  if (records.length === 0) return undefined;
  const res = await route53.send(
    new ChangeResourceRecordSetsCommand({
      HostedZoneId: zoneId,
      ChangeBatch: {
        Comment: 'rotate-certificates ACM DNS validation',
        Changes: records.map((r) => ({
          Action: 'UPSERT' as const,
          ResourceRecordSet: { Name: r.name, Type: r.type as 'CNAME', TTL: VALIDATION_TTL, ResourceRecords: [{ Value: r.value }] },
        })),
      },
    }),
    { abortSignal: signal },
  );
  return res.ChangeInfo?.Id;
}

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

/** Handshake until `matches` says yes or `waitMs` passes; returns the last result. */
async function handshakeUntil(
  deps: ApplyDeps,
  config: RotateCertificatesConfig,
  host: string,
  matches: (served: Served) => boolean,
  signal: AbortSignal,
): Promise<Served> {
  const deadline = Date.now() + config.handshake.waitMs;
  const target = { host, port: config.handshake.port, servername: config.domainName, timeoutMs: config.handshake.timeoutMs };
  for (;;) {
    const served = await deps.handshake(target, signal);
    if (matches(served) || Date.now() + (deps.pollMs ?? 5_000) > deadline || signal.aborted) return served;
    await sleep(deps.pollMs ?? 5_000, undefined, { signal });
  }
}

const describeServed = (s: Served): string => (s.ok ? `serial ${s.serial} (valid until ${s.notAfter})` : `no handshake (${s.error})`);

export async function applyCertificatePlan(
  actions: readonly CertAction[],
  ctx: ApplyContext<RotateCertificatesConfig>,
  deps: ApplyDeps,
  handshakeHost: string | undefined,
): Promise<(Outcome | undefined)[]> {
  const { config, signal } = ctx;
  let importedSerial: string | undefined;

  return applyEach(
    actions,
    ctx,
    async (action): Promise<Outcome> => {
      switch (action.type) {
        case 'restore-validation-records':
        case 'create-validation-records': {
          // The plan skips these without a zone; an action reaching here anyway writes nothing.
          if (!config.hostedZoneId) return { status: 'skipped', reason: `${NO_ZONE}: ${describeRecords(action.records)}` };
          const changeId = await upsertRecords(deps.route53, config.hostedZoneId, action.records, signal);
          return { status: 'applied', detail: { changeId, records: action.records.map((r) => r.name) } };
        }

        case 'request-certificate': {
          const res = await deps.acm.send(
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
          const deadline = Date.now() + RECORDS_WAIT_MS;
          let { records, complete } = await readValidationRecords(deps.acm, arn, signal);
          while (!complete && Date.now() < deadline) {
            await sleep(2_000, undefined, { signal });
            ({ records, complete } = await readValidationRecords(deps.acm, arn, signal));
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
          const changeId = await upsertRecords(deps.route53, config.hostedZoneId, records, signal);
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

        case 'swap-listener-certificate': {
          await deps.elbv2.send(
            new ModifyListenerCommand({ ListenerArn: action.target, Certificates: [{ CertificateArn: action.newCertificateArn }] }),
            { abortSignal: signal },
          );
          // Keep the old certificate on the listener (SNI list) until a handshake proves the new one.
          await deps.elbv2.send(
            new AddListenerCertificatesCommand({
              ListenerArn: action.target,
              Certificates: [{ CertificateArn: action.oldCertificateArn }],
            }),
            { abortSignal: signal },
          );
          return {
            status: 'applied',
            detail: { defaultCertificateArn: action.newCertificateArn, keptForRollback: action.oldCertificateArn },
          };
        }

        case 'verify-handshake': {
          const expected = action.expectSerial ?? importedSerial;
          if (!expected) return { status: 'failed', error: 'no serial to expect: the change before this check did not complete' };
          if (!handshakeHost) return { status: 'failed', error: 'no host to connect to (set HANDSHAKE_HOST)' };
          const served = await handshakeUntil(deps, config, handshakeHost, (s) => s.ok && s.serial === expected, signal);
          if (served.ok && served.serial === expected)
            return { status: 'applied', detail: { serial: served.serial, notAfter: served.notAfter } };
          const mismatch =
            `after ${config.handshake.waitMs / 1000}s the handshake shows ${describeServed(served)}, expected serial ` + `${expected}`;
          if (!action.rollback) return { status: 'failed', error: mismatch, detail: { served } };
          await rollback(deps, action.rollback, signal);
          return {
            status: 'failed',
            error: `${mismatch}: rolled back to ${action.rollback.restoreCertificateArn}`,
            detail: { rolledBack: true, served },
          };
        }

        case 'rollback-listener-certificate':
          // The listener is safe again, but the rotation did not happen: fail the run so the alarm fires.
          await rollback(
            deps,
            {
              listenerArn: action.target,
              restoreCertificateArn: action.restoreCertificateArn,
              rolledBackCertificateArn: action.rolledBackCertificateArn,
            },
            signal,
          );
          return {
            status: 'failed',
            error:
              `rolled back to ${action.restoreCertificateArn} because the handshake showed serial ${action.servedSerial}, not ` +
              `${action.expectedSerial} of ${action.rolledBackCertificateArn}`,
            detail: { defaultCertificateArn: action.restoreCertificateArn, rolledBack: true },
          };

        case 'remove-listener-certificate':
          try {
            await deps.elbv2.send(
              new RemoveListenerCertificatesCommand({
                ListenerArn: action.target,
                Certificates: [{ CertificateArn: action.certificateArn }],
              }),
              { abortSignal: signal },
            );
          } catch (error) {
            if (errorName(error) !== 'CertificateNotFoundException') throw error;
          }
          return { status: 'applied' };

        case 'delete-certificate':
          try {
            await deps.acm.send(new DeleteCertificateCommand({ CertificateArn: action.target }), { abortSignal: signal });
          } catch (error) {
            if (errorName(error) === 'ResourceNotFoundException') return { status: 'applied', detail: { note: 'already deleted' } };
            if (errorName(error) === 'ResourceInUseException')
              return { status: 'skipped', reason: 'ACM still lists a user of it: the next run deletes it' };
            throw error;
          }
          return { status: 'applied' };

        case 'renew-acme-certificate': {
          if (!config.acme || !config.hostedZoneId)
            return { status: 'failed', error: 'CERTIFICATE_MODE=acme without ACME settings or HOSTED_ZONE_ID' };
          const issued = await deps.issue(
            {
              domainName: action.domainName,
              hostedZoneId: config.hostedZoneId,
              settings: config.acme,
              dnsChangeTimeoutMs: config.dnsChangeTimeoutMs,
              signal,
            },
            { route53: deps.route53, secrets: deps.secrets },
          );
          const x509 = new X509Certificate(issued.certificatePem);
          const names = (x509.subjectAltName ?? '')
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s.startsWith('DNS:'))
            .map((s) => s.slice(4));
          const notBefore = new Date(x509.validFrom).toISOString();
          const notAfter = new Date(x509.validTo).toISOString();
          const problem = certificateProblem({ names, notBefore, notAfter }, action.domainName, new Date());
          if (problem) return { status: 'failed', error: `ACME certificate ${problem}: not imported` };
          const enc = new TextEncoder();
          await deps.acm.send(
            new ImportCertificateCommand({
              CertificateArn: action.target,
              Certificate: enc.encode(issued.certificatePem),
              PrivateKey: enc.encode(issued.privateKeyPem),
              ...(issued.chainPem ? { CertificateChain: enc.encode(issued.chainPem) } : {}),
            }),
            { abortSignal: signal },
          );
          importedSerial = normaliseSerial(x509.serialNumber);
          logger.info('certificate re-imported', { certificateArn: action.target, serial: importedSerial, notAfter });
          // The certificate is in place: a tag that cannot be put back is reported, not a reason to skip the check.
          let tags: Record<string, unknown> = {};
          try {
            const restored = await restoreTags(deps.acm, action.target, action.keepTags, signal);
            if (restored.length > 0) tags = { tagsRestored: restored };
          } catch (error) {
            if (signal.aborted) throw error;
            logger.warn('could not restore certificate tags after the re-import', {
              certificateArn: action.target,
              error: describeError(error),
            });
            tags = { tagRestoreError: describeError(error) };
          }
          return { status: 'applied', detail: { serial: importedSerial, notAfter, ...tags } };
        }

        case 'refuse-certificate':
        case 'rotation-blocked':
          return { status: 'failed', error: action.reason };

        case 'wait':
          return { status: 'skipped', reason: action.reason };
      }
    },
    { stopOnFailure: true },
  );
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

async function rollback(
  deps: ApplyDeps,
  r: { listenerArn: string; restoreCertificateArn: string; rolledBackCertificateArn: string },
  signal: AbortSignal,
): Promise<void> {
  await deps.elbv2.send(
    new ModifyListenerCommand({ ListenerArn: r.listenerArn, Certificates: [{ CertificateArn: r.restoreCertificateArn }] }),
    {
      abortSignal: signal,
    },
  );
  await deps.acm.send(
    new AddTagsToCertificateCommand({
      CertificateArn: r.rolledBackCertificateArn,
      Tags: [{ Key: TAG_ROLLED_BACK_AT, Value: new Date().toISOString() }],
    }),
    { abortSignal: signal },
  );
  logger.warn('listener certificate rolled back', { ...r });
}
