import * as z from 'zod/mini';
import { acmClient, elbv2Client, route53Client, secretsManagerClient } from '../../shared/aws.ts';
import type { JobDefinition } from '../../shared/job.ts';
import type { Trigger } from '../../shared/triggers.ts';
import type { AcmeDeps, AcmeOrder, IssuedCertificate } from './acme.ts';
import { applyCertificatePlan, type ApplyDeps } from './apply.ts';
import type { LoadedRotateCertificatesConfig } from './config.ts';
import { tlsHandshake, type Handshake } from './handshake.ts';
import { daysLeft, TAG_ROTATION_OF, type CertState } from './model.ts';
import { observeCertificates } from './observe.ts';
import { planRotation, type CertAction, type CertificatePlan } from './plan.ts';

export const options = {
  force: z.optional(z.boolean({ error: 'expected true or false (true = rotate now, even outside RENEW_BEFORE)' })),
};

/** What one run acts on: a manual `force` rotates now, even outside RENEW_BEFORE. */
export interface RotationScope {
  readonly force: boolean;
}

/** The observed certificates plus the host the handshake checks (the configured one or the load balancer's name). */
export interface RotationState extends CertState {
  readonly handshakeHost: string | undefined;
}

export function scopeOf(trigger: Trigger<{ force?: boolean | undefined }>): RotationScope {
  return { force: trigger.kind === 'manual' && trigger.options.force === true };
}

const clients = () => ({ elbv2: elbv2Client(), acm: acmClient(), route53: route53Client(), secrets: secretsManagerClient() });

type Types = {
  config: LoadedRotateCertificatesConfig;
  options: typeof options;
  scope: RotationScope;
  state: RotationState;
  action: CertAction;
  plan: CertificatePlan & { readonly handshakeHost: string | undefined };
  clients: ReturnType<typeof clients>;
};

export type RotateCertificatesJob = JobDefinition<Types>;

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
  readonly issue?: ApplyDeps['issue'];
  readonly pollMs?: number;
}

export function createRotateCertificatesJob(deps: JobDeps = {}): RotateCertificatesJob {
  const handshake = deps.handshake ?? tlsHandshake;
  return {
    name: 'rotate-certificates',
    accepts: ['schedule', 'certificate-expiry', 'manual'],
    options,
    // An ACME order plus a handshake wait needs a few minutes; stop starting new steps with 4 minutes left.
    timeMarginMs: 240_000,
    clients,
    scope: scopeOf,

    async observe({ elbv2, acm, route53 }, _scope, { config, signal }) {
      const state = await observeCertificates(config, { elbv2, acm, route53, handshake }, signal);
      return { ...state, handshakeHost: config.handshake.host ?? state.listener.loadBalancerDnsName };
    },

    plan(state, { config, scope, now }) {
      const plan = planRotation(
        state,
        {
          mode: config.mode,
          domainName: config.domainName,
          renewBeforeMs: config.renewBeforeMs,
          force: scope.force,
          fleetTag: config.fleetTag,
          hostedZone: config.hostedZoneId !== undefined,
        },
        now,
      );
      return { ...plan, handshakeHost: state.handshakeHost };
    },

    apply(plan, ctx, clients) {
      const issue = deps.issue ?? issueWithAcme;
      const seams = { handshake, issue, ...(deps.pollMs === undefined ? {} : { pollMs: deps.pollMs }) };
      return applyCertificatePlan(plan.actions, ctx, { ...clients, ...seams }, plan.handshakeHost);
    },

    summarize(state, plan, _outcomes, { now }) {
      const { listener, served } = state;
      const role = (arn: string): string => {
        if (arn === listener.defaultCertificateArn) return 'default';
        if (listener.sniCertificateArns.includes(arn)) return 'sni';
        const current = state.certificates.find((c) => c.arn === listener.defaultCertificateArn);
        if (current?.tags[TAG_ROTATION_OF] === arn) return 'replaced';
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
          daysLeft: plan.daysLeft,
          servedMatchesListenerDefault:
            served.ok && state.certificates.find((c) => c.arn === listener.defaultCertificateArn)?.serial === served.serial,
        },
        metrics: { CertificateDaysLeft: Math.max(0, plan.daysLeft ?? 0) },
      };
    },
  };
}

export const job = createRotateCertificatesJob();
