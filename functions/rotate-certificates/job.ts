import * as z from 'zod/mini';
import { acmClient, elbv2Client, route53Client, secretsManagerClient } from '../../shared/aws.ts';
import type { JobDefinition } from '../../shared/job.ts';
import type { JobName } from '../../shared/job-names.ts';
import type { Trigger } from '../../shared/triggers.ts';
import type { AcmeDeps, AcmeOrder, IssuedCertificate } from './acme.ts';
import { apply, type RotationClients } from './apply.ts';
import type { LoadedRotateCertificatesConfig } from './config.ts';
import { tlsHandshake, type Handshake } from './handshake.ts';
import { daysLeft, rotationOf, type CertAction, type CertificatePlan, type RotationScope, type RotationState } from './model.ts';
import { observe } from './observe.ts';
import { plan } from './plan.ts';

export const options = {
  force: z.optional(z.boolean({ error: 'expected true or false (true = rotate now, even outside RENEW_BEFORE)' })),
};

/** The run's scope, and the config's policy adjusted by it (see RotationScope). */
export function scopeOf(trigger: Trigger<{ force?: boolean | undefined }>, config: LoadedRotateCertificatesConfig): RotationScope {
  const force = trigger.kind === 'manual' && trigger.options.force === true;
  const eventCertificateArn = trigger.kind === 'certificate-expiry' ? trigger.certificateArn : undefined;
  return {
    force,
    ...(eventCertificateArn ? { eventCertificateArn } : {}),
    policy: { ...config.policy, force, ...(eventCertificateArn ? { eventCertificateArn } : {}) },
  };
}

/**
 * The real ACME issuer, loaded on first use: acme-client (node-forge, axios, mime-db, …) is most of the bundle and
 * only CERTIFICATE_MODE=acme needs it, so the acm mode's cold start never evaluates it (the bundle keeps it, deferred).
 */
async function issueWithAcme(order: AcmeOrder, deps: AcmeDeps): Promise<IssuedCertificate> {
  const { issueWithAcme: issue } = await import('./acme.ts');
  return issue(order, deps);
}

/** Seams for tests: the handshake, the ACME issuer and the poll interval. Defaults are the real ones. */
export interface JobDeps {
  readonly handshake?: Handshake;
  readonly issue?: RotationClients['issue'];
  readonly pollMs?: number;
}

type Types = {
  config: LoadedRotateCertificatesConfig;
  options: typeof options;
  scope: RotationScope;
  state: RotationState;
  action: CertAction;
  plan: CertificatePlan;
  clients: RotationClients;
};

export type RotateCertificatesJob = JobDefinition<Types>;

export function createRotateCertificatesJob(deps: JobDeps = {}): RotateCertificatesJob {
  const clients = (): RotationClients => ({
    elbv2: elbv2Client(),
    acm: acmClient(),
    route53: route53Client(),
    secrets: secretsManagerClient(),
    handshake: deps.handshake ?? tlsHandshake,
    issue: deps.issue ?? issueWithAcme,
    ...(deps.pollMs === undefined ? {} : { pollMs: deps.pollMs }),
  });
  return {
    name: 'rotate-certificates' satisfies JobName,
    accepts: ['schedule', 'certificate-expiry', 'manual'],
    options,
    // An ACME order plus a handshake wait needs a few minutes; stop starting new steps with 4 minutes left.
    timeMarginMs: 240_000,
    clients,
    scope: scopeOf,
    observe,
    plan: (state, { scope, now }) => plan(state, scope.policy, now),
    apply,

    summarize(state, plan, _outcomes, { now }) {
      const { listener, served } = state;
      const role = (arn: string): string => {
        if (arn === listener.defaultCertificateArn) return 'default';
        if (listener.sniCertificateArns.includes(arn)) return 'sni';
        const current = state.certificates.find((c) => c.arn === listener.defaultCertificateArn);
        if (current && rotationOf(current) === arn) return 'replaced';
        return 'replacement';
      };
      const { step } = plan;
      return {
        observed: {
          listener: {
            arn: listener.arn,
            protocol: listener.protocol,
            port: listener.port,
            loadBalancerDnsName: listener.loadBalancerDnsName,
          },
          certificates: state.certificates.map((c) => ({
            arn: c.arn,
            role: role(c.arn),
            status: c.status,
            type: c.type,
            domainName: c.domainName,
            serial: c.serial,
            notAfter: c.notAfter,
            daysLeft: daysLeft(c.notAfter, now),
            renewalEligibility: c.renewalEligibility,
            renewal: c.renewal,
          })),
          missingCertificates: state.missing,
          served: served.ok
            ? {
                ok: true,
                host: served.host,
                port: served.port,
                serial: served.serial,
                notAfter: served.notAfter,
                daysLeft: daysLeft(served.notAfter, now),
              }
            : { ok: false, host: served.host, port: served.port, error: served.error },
        },
        details: {
          step,
          ...(state.pending ? { acmeStage: state.pending } : {}),
          daysLeft: plan.daysLeft,
          servedMatchesListenerDefault:
            served.ok && state.certificates.find((c) => c.arn === listener.defaultCertificateArn)?.serial === served.serial,
        },
        // No certificate of its own seen (another certificate's event, a refusal): no reading, not a false 0 for the alarm.
        metrics: plan.daysLeft === undefined ? ({} as Record<string, number>) : { CertificateDaysLeft: Math.max(0, plan.daysLeft) },
      };
    },
  };
}

export const job = createRotateCertificatesJob();
