import { DEFAULT_FLEET_TAG_KEY } from '../../shared/fleet-tags.ts';
import * as z from 'zod/mini';
import { defineEnvironment, env, loadConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import type { CertificateMode, RotationPolicy } from './model.ts';

/** A DNS host name: at least two labels of letters, digits and inner hyphens, at most 253 characters. */
export const HOSTNAME = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$/i;

const shape = {
  LISTENER_ARN: env.text(
    'an ARN of an ELBv2 listener (arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/...)',
    /^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:listener\/(app|net)\/.+/,
  ),
  DOMAIN_NAME: env.text('a DNS host name such as registry.example.com', HOSTNAME),
  /**
   * Route 53 zone for ACM validation records and ACME DNS-01 challenges. Required in acme mode; optional in acm mode,
   * where without it the job reports the validation records for the operator to create by hand.
   */
  HOSTED_ZONE_ID: env.optionalText('a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ', /^(\/hostedzone\/)?[A-Z0-9]{1,32}$/),
  RENEW_BEFORE: env.duration({ default: '30d', min: '1d', max: '365d' }),
  CERTIFICATE_MODE: env.oneOf(['acm', 'acme'] as const, 'acm'),
  ACME_DIRECTORY_URL: env.optionalText('an https:// URL of an ACME directory', /^https:\/\/\S+$/),
  ACME_ACCOUNT_SECRET_ARN: z.optional(env.arn('secretsmanager')),
  ACME_EMAIL: env.optionalText('an email address', /^[^@\s]+@[^@\s]+\.[^@\s]+$/),
  /**
   * acme mode: the secret next to the account secret that holds a rotation's pending stage (the issued certificate
   * until ACM has it, then only the stage and when it was ordered). Infra creates it with `{}`. Each order's private
   * key goes to its own secret `<this secret's name>/order-key-<orderedAt>`, deleted without recovery after the import.
   */
  ACME_PENDING_SECRET_ARN: z.optional(env.arn('secretsmanager')),
  /** acme mode: at most one ACME order per certificate per this long, also across retries and forced runs. */
  ACME_ORDER_COOLDOWN: env.duration({ default: '24h', min: '1h', max: '30d' }),
  /** PEM file of extra CAs the ACME client trusts (Pebble in tests); the system CAs are used without it. */
  ACME_CA_BUNDLE: env.optionalText('a path to a PEM file'),
  /** Where to connect for the handshake check; default: the load balancer's DNS name. SNI is always DOMAIN_NAME. */
  HANDSHAKE_HOST: env.optionalText('a host name or IP address', /^[A-Za-z0-9.:-]+$/),
  HANDSHAKE_PORT: env.int({ min: 1, max: 65_535, default: 443 }),
  HANDSHAKE_TIMEOUT: env.duration({ default: '10s', min: '1s', max: '60s' }),
  /** How long after a change the job keeps trying the handshake before it rolls back (acm) or fails (acme). */
  HANDSHAKE_WAIT: env.duration({ default: '120s', min: '0', max: '10m' }),
  /** Bound on waiting for a Route 53 change to be INSYNC (ACME DNS-01). */
  DNS_CHANGE_TIMEOUT: env.duration({ default: '180s', min: '1s', max: '10m' }),
  /**
   * The fleet tag (infra: the stack name). Every certificate the job requests carries it; the job deletes a replaced
   * certificate only when it carries it (the IAM policy allows acm:DeleteCertificate on fleet-tagged ones only).
   */
  FLEET_TAG_KEY: z._default(env.text(`a tag key such as ${DEFAULT_FLEET_TAG_KEY}`), DEFAULT_FLEET_TAG_KEY),
  FLEET_TAG_VALUE: env.text('the fleet tag value (the stack name)'),
};

export interface AcmeSettings {
  readonly directoryUrl: string;
  readonly accountSecretArn: string;
  readonly email: string;
  readonly caBundlePath?: string;
  /** The pending stage's secret (ACME_PENDING_SECRET_ARN). */
  readonly pendingSecretArn: string;
}

export interface RotateCertificatesConfig {
  readonly listenerArn: string;
  readonly domainName: string;
  /** Unset (acm mode only): the job creates no DNS records; it reports the validation records to create by hand. */
  readonly hostedZoneId?: string;
  readonly renewBeforeMs: number;
  readonly mode: CertificateMode;
  readonly acme?: AcmeSettings;
  readonly handshake: { readonly host?: string; readonly port: number; readonly timeoutMs: number; readonly waitMs: number };
  readonly dnsChangeTimeoutMs: number;
  readonly fleetTag: FleetTag;
  /** What plan decides on; a run's scope adjusts it (`force`, the certificate an expiry event names). */
  readonly policy: RotationPolicy;
}

export interface FleetTag {
  readonly key: string;
  readonly value: string;
}

const ACME_REQUIRED = ['ACME_DIRECTORY_URL', 'ACME_ACCOUNT_SECRET_ARN', 'ACME_EMAIL'] as const;

export function loadRotateCertificatesConfig(source: Readonly<Record<string, string | undefined>>) {
  return loadConfig(shape, source, (v): RotateCertificatesConfig => {
    let acme: AcmeSettings | undefined;
    if (v.CERTIFICATE_MODE === 'acme') {
      const missing = ACME_REQUIRED.filter((name) => v[name] === undefined);
      if (missing.length > 0) {
        throw new ConfigError(
          `invalid configuration: CERTIFICATE_MODE=acme needs ${ACME_REQUIRED.join(', ')}; missing: ${missing.join(', ')}`,
        );
      }
      // DNS-01 challenges go through Route 53: the zone is optional in acm mode only.
      if (v.HOSTED_ZONE_ID === undefined) {
        throw new ConfigError(
          'invalid configuration: CERTIFICATE_MODE=acme needs HOSTED_ZONE_ID (DNS-01 challenges go through Route 53); missing: ' +
            'HOSTED_ZONE_ID',
        );
      }
      // Without it an issued certificate would live only in the run's memory: a failed import or verify re-orders.
      if (v.ACME_PENDING_SECRET_ARN === undefined) {
        throw new ConfigError(
          'invalid configuration: CERTIFICATE_MODE=acme needs ACME_PENDING_SECRET_ARN (a Secrets Manager secret, value {}, that keeps a ' +
            "rotation's pending stage across runs); missing: ACME_PENDING_SECRET_ARN",
        );
      }
      acme = {
        directoryUrl: v.ACME_DIRECTORY_URL as string,
        accountSecretArn: v.ACME_ACCOUNT_SECRET_ARN as string,
        email: v.ACME_EMAIL as string,
        ...(v.ACME_CA_BUNDLE ? { caBundlePath: v.ACME_CA_BUNDLE } : {}),
        pendingSecretArn: v.ACME_PENDING_SECRET_ARN,
      };
    }
    const domainName = v.DOMAIN_NAME.toLowerCase();
    const fleetTag = { key: v.FLEET_TAG_KEY, value: v.FLEET_TAG_VALUE };
    return {
      listenerArn: v.LISTENER_ARN,
      domainName,
      ...(v.HOSTED_ZONE_ID ? { hostedZoneId: v.HOSTED_ZONE_ID.replace(/^\/hostedzone\//, '') } : {}),
      renewBeforeMs: v.RENEW_BEFORE,
      mode: v.CERTIFICATE_MODE,
      ...(acme ? { acme } : {}),
      handshake: {
        ...(v.HANDSHAKE_HOST ? { host: v.HANDSHAKE_HOST } : {}),
        port: v.HANDSHAKE_PORT,
        timeoutMs: v.HANDSHAKE_TIMEOUT,
        waitMs: v.HANDSHAKE_WAIT,
      },
      dnsChangeTimeoutMs: v.DNS_CHANGE_TIMEOUT,
      fleetTag,
      policy: {
        mode: v.CERTIFICATE_MODE,
        domainName,
        renewBeforeMs: v.RENEW_BEFORE,
        force: false,
        fleetTag,
        hostedZone: v.HOSTED_ZONE_ID !== undefined,
        orderCooldownMs: v.ACME_ORDER_COOLDOWN,
      },
    };
  });
}

export type LoadedRotateCertificatesConfig = ReturnType<typeof loadRotateCertificatesConfig>;

/**
 * The stack's side of this environment (infra/constructs/jobs/rotate-certificates.ts): the same `shape`, so names cannot drift;
 * what each variable means is what docs/configuration.md says (npm run docs:config).
 */
export const rotateCertificatesEnvironment = defineEnvironment(shape, {
  LISTENER_ARN: "the ALB's HTTPS listener",
  DOMAIN_NAME: "the registry's host name: the handshake's SNI and the name certificates must cover",
  HOSTED_ZONE_ID:
    'Route 53 zone for validation and DNS-01 records (`Z…` or `/hostedzone/Z…`); required in `acme` mode; ' +
    'unset in `acm` mode: the job reports the validation records for you to create',
  RENEW_BEFORE: 'rotate when the served certificate has less than this left',
  CERTIFICATE_MODE: '`acm` (request + swap) or `acme` (re-issue + re-import)',
  ACME_DIRECTORY_URL: '`acme` mode (required): the ACME directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`',
  ACME_ACCOUNT_SECRET_ARN: '`acme` mode (required): the Secrets Manager secret holding the ACME account key',
  ACME_EMAIL: '`acme` mode (required): the ACME account contact',
  ACME_PENDING_SECRET_ARN: "`acme` mode (required): the Secrets Manager secret holding a rotation's pending stage (`{}` = nothing pending)",
  ACME_ORDER_COOLDOWN: "at most one ACME order per certificate per this long, counted from the stage's `orderedAt`",
  ACME_CA_BUNDLE: 'PEM file of extra CAs the ACME client trusts (Pebble in tests); unset: the system CAs',
  HANDSHAKE_HOST: "where the TLS check connects (SNI is always `DOMAIN_NAME`); unset: the load balancer's DNS name",
  HANDSHAKE_PORT: 'port of the TLS check',
  HANDSHAKE_TIMEOUT: 'bound on one handshake',
  HANDSHAKE_WAIT: 'how long after a change the job retries the handshake before rolling back (`acm`) or failing (`acme`)',
  DNS_CHANGE_TIMEOUT: "bound on waiting for a Route 53 change to be `INSYNC` (also bounded by the Lambda's time)",
  FLEET_TAG_KEY: 'tag key put on every certificate the job requests',
  FLEET_TAG_VALUE: 'tag value (the stack name); a replaced certificate is deleted only if it carries `FLEET_TAG_KEY=FLEET_TAG_VALUE`',
});
