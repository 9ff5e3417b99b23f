import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { DURATION_FORM, parseDuration } from '../shared/duration.ts';
import { ECR_PREFIX } from './pull-through.ts';

/**
 * CDK context → typed, frozen `FleetConfig` (STYLE §9). `infra/app.ts` is the only caller that reads context;
 * constructs receive plain props. Every key accepts the string form `-c key=value` gives and the JSON form
 * cdk.json gives; a bad or missing value fails synth with a message naming the context key.
 */

// The job names are the control plane's contract (ARCHITECTURE §1): one list, shared with the functions.
import { JOB_NAMES, type JobName as AnyJobName } from '../shared/job-names.ts';
/** collect-garbage is built by a construct of its own (infra/constructs/collect-garbage.ts), not from ControlPlane's tables. */
export const GC_JOB = 'collect-garbage' as const satisfies AnyJobName;
/** Every job: one Lambda each, in the history, the log queries and the outputs. */
export const ALL_JOBS: readonly AnyJobName[] = JOB_NAMES;
/** The jobs ControlPlane builds from its tables (schedules, environments, policies): every job but collect-garbage. */
export type JobName = Exclude<AnyJobName, typeof GC_JOB>;
export const JOBS: readonly JobName[] = JOB_NAMES.filter((j): j is JobName => j !== GC_JOB);

/** Retention periods CloudWatch Logs accepts. */
const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

// zod/mini loads no locale: English, as shared/config.ts sets it, so an issue without our own message reads as it did
// under classic zod whether or not a function's config module is loaded too.
z.config(en());

const expected = (form: string) => ({ error: `expected ${form}` });

/** A string; context from cdk.json may arrive as a number or boolean, so those are accepted as text. */
const asText = z.transform((v: string | number | boolean) => String(v).trim());
const raw = z.pipe(z.union([z.string(), z.number(), z.boolean()]), asText);
const required = (form: string) => z.pipe(z.union([z.string(), z.number(), z.boolean()], expected(form)), asText);
const matching = (form: string, pattern: RegExp) => z.string().check(z.regex(pattern, expected(form)));

function text(form: string, pattern: RegExp) {
  return z.pipe(required(form), matching(form, pattern));
}

function optionalText(form: string, pattern: RegExp) {
  return z.pipe(
    z.pipe(
      z.optional(raw),
      z.transform((v: string | undefined) => (v === '' ? undefined : v)),
    ),
    z.optional(matching(form, pattern)),
  );
}

function int(min: number, max: number, def: number) {
  const form = `a whole number from ${min} to ${max}`;
  return z.pipe(
    z.pipe(z._default(raw, String(def)), z.pipe(matching(form, /^\d+$/), z.transform(Number))),
    z.number().check(z.gte(min, expected(form)), z.lte(max, expected(form))),
  );
}

function bool(def: boolean) {
  return z.pipe(
    z._default(raw, String(def)),
    z.pipe(
      z.enum(['true', 'false'], expected('true or false')),
      z.transform((v: 'true' | 'false') => v === 'true'),
    ),
  );
}

/** A list: a JSON array in cdk.json or a comma-separated string on the command line. */
function list(form: string, pattern: RegExp) {
  return z.pipe(
    z.pipe(
      z.union([z.string(), z.array(z.string())], expected(`${form} (a list, or comma-separated)`)),
      z.transform((v: string | string[]) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter((s) => s.length > 0)),
    ),
    z.array(matching(form, pattern)),
  );
}

function duration(def: string, min: string) {
  const minMs = parseDuration(min) ?? 0;
  const form = `${DURATION_FORM}, at least ${min}`;
  return z.pipe(z._default(raw, def), z.string().check(z.refine((v) => (parseDuration(v) ?? -1) >= minMs, expected(form))));
}

const RETENTION_FORM =
  'a retention policy {"rules":[{"repository":"team/*","tagPrefix":"pr-","keepLast":10,"expireAfterDays":30}]} ' +
  '(JSON; per rule repository, then tagPrefix or tagPattern, keepLast, expireAfterDays, untaggedAfterDays)';

const days = z.number().check(z.int(), z.gte(1), z.lte(3650));
const RetentionRule = z
  .strictObject({
    repository: z.string().check(z.minLength(1)),
    tagPrefix: z.optional(z.string().check(z.minLength(1))),
    tagPattern: z.optional(
      z.string().check(
        z.minLength(1),
        z.refine((p) => {
          try {
            new RegExp(p);
            return true;
          } catch {
            return false;
          }
        }),
      ),
    ),
    keepLast: z.optional(z.number().check(z.int(), z.gte(1), z.lte(100_000))),
    expireAfterDays: z.optional(days),
    untaggedAfterDays: z.optional(days),
  })
  .check(
    z.refine((r) => !(r.tagPrefix !== undefined && r.tagPattern !== undefined)),
    z.refine((r) => r.keepLast !== undefined || r.expireAfterDays !== undefined || r.untaggedAfterDays !== undefined),
  );
const RetentionPolicy = z.strictObject({ rules: z.array(RetentionRule).check(z.minLength(1)) });

/** collect-garbage's GC_RETENTION: JSON text from -c, an object from cdk.json; out as compact JSON, or undefined (off). */
function gcRetention() {
  return z.pipe(
    z.optional(z.union([z.string(), z.record(z.string(), z.unknown())], expected(RETENTION_FORM))),
    z.transform((v: string | Record<string, unknown> | undefined, ctx) => {
      if (v === undefined || (typeof v === 'string' && v.trim() === '')) return undefined;
      let value: unknown = v;
      if (typeof v === 'string') {
        try {
          value = JSON.parse(v);
        } catch {
          ctx.issues.push({ code: 'custom', message: `expected ${RETENTION_FORM}, not valid JSON`, input: v });
          return z.NEVER;
        }
      }
      const r = RetentionPolicy.safeParse(value);
      if (!r.success) {
        const where = r.error.issues.map((i) => i.path.join('.') || '(policy)').join(', ');
        ctx.issues.push({ code: 'custom', message: `expected ${RETENTION_FORM} (bad: ${where})`, input: v });
        return z.NEVER;
      }
      return JSON.stringify(r.data);
    }),
  );
}

/** collect-garbage: `off` (no schedule), `dryRun` (reports only: DRY_RUN=true), `on`. */
export const GC_MODES = ['off', 'dryRun', 'on'] as const;
export type GcMode = (typeof GC_MODES)[number];

const SCHEDULE = /^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(\S+( \S+){5}\))$/;
const schedule = (def: string) =>
  z.pipe(z._default(raw, def), matching('an EventBridge schedule: rate(5 minutes) or cron(0 3 * * ? *)', SCHEDULE));

/** A key that names one of `values` (`form` says which), `def` when unset. */
const oneOf = <const T extends readonly [string, ...string[]]>(def: T[number], values: T, form: string) =>
  z.pipe(z._default(raw, def), z.enum(values, expected(form)));

const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
const IMAGE =
  /^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64}|:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}@sha256:[0-9a-f]{64})$/;

/**
 * registry:2.8.3 pinned by digest (the multi-architecture index on Docker Hub): a re-pushed tag can never change
 * what boots. Check it with `skopeo inspect --raw docker://docker.io/library/registry:2.8.3 | sha256sum`.
 */
export const DEFAULT_REGISTRY_IMAGE = 'registry:2.8.3@sha256:a3d8aaa63ed8681a604f1dea0aa03f100d5895b6a58ace528858a7b332415373';

/** RFC 2606 names: a deploy left at the sample domain can never get a certificate, so no registry would ever serve. */
const EXAMPLE_DOMAIN = /(^|\.)example(\.[a-z0-9-]+)?$/;
const CIDR = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/;

const Context = z
  .object({
    stackName: z.pipe(
      z._default(raw, 'registry-fleet'),
      z.string().check(
        z.regex(/^[A-Za-z][A-Za-z0-9-]{0,29}$/, expected('a stack name: a letter, then up to 29 letters, digits or hyphens')),
        z.refine(
          (v) => !/^(aws|amazon|amzn)/i.test(v),
          expected('a stack name that does not start with aws, amazon or amzn (SSM document names)'),
        ),
      ),
    ),
    account: optionalText('a 12-digit AWS account id', /^\d{12}$/),
    region: optionalText('an AWS region such as us-east-1', /^[a-z]{2}(-[a-z]+)+-\d+$/),
    domainName: text('a DNS name such as registry.example.com', DNS_NAME),
    hostedZoneId: optionalText('a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ', /^Z[A-Z0-9]{4,32}$/),
    hostedZoneName: optionalText('a DNS zone name such as example.com', DNS_NAME),
    certificateArn: optionalText(
      'an ACM certificate ARN (arn:aws:acm:...)',
      /^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[A-Za-z0-9-]+$/,
    ),
    certificateMode: oneOf('acm', ['acm', 'acme'], 'acm or acme'),
    acmeDirectoryUrl: optionalText('an https:// URL', /^https:\/\/\S+$/),
    acmeEmail: optionalText('an e-mail address', /^[^@\s]+@[^@\s]+\.[^@\s]+$/),
    vpcId: optionalText('a VPC id such as vpc-0123abcd', /^vpc-[0-9a-f]{8,17}$/),
    availabilityZones: z.optional(list('availability zone names such as us-east-1a', /^[a-z]{2}(-[a-z]+)+-\d+[a-z]$/)),
    publicSubnetIds: z.optional(list('subnet ids such as subnet-0123abcd', /^subnet-[0-9a-f]{8,17}$/)),
    privateSubnetIds: z.optional(list('subnet ids such as subnet-0123abcd', /^subnet-[0-9a-f]{8,17}$/)),
    privateRouteTableIds: z.optional(list('route table ids such as rtb-0123abcd', /^rtb-[0-9a-f]{8,17}$/)),
    instanceType: z._default(text('an EC2 instance type such as t4g.small', /^[a-z][a-z0-9-]*\.[a-z0-9]+$/), 't4g.small'),
    minCapacity: int(1, 100, 2),
    desiredCapacity: int(1, 100, 2),
    maxCapacity: int(1, 100, 4),
    rootVolumeGiB: int(20, 1000, 30),
    registryImage: z._default(
      text('a pinned image reference such as registry:2.8.3 (a tag other than latest, or @sha256:...)', IMAGE).check(
        z.refine((v) => !/:latest$/.test(v), expected('a pinned image reference, not :latest')),
      ),
      DEFAULT_REGISTRY_IMAGE,
    ),
    ingressCidrs: z._default(list('IPv4 CIDR blocks such as 0.0.0.0/0', CIDR), ['0.0.0.0/0']),
    usersParameterPath: z.pipe(
      z._default(raw, '/registry/users/'),
      matching('an SSM parameter path that starts and ends with /, such as /registry/users/', /^\/([A-Za-z0-9_.-]+\/)+$/),
    ),
    uploadMaxAge: duration('168h', '1h'),
    purgeMode: oneOf('listing', ['listing', 'inventory'], 'listing or inventory'),
    purgeInventoryFormat: oneOf('Parquet', ['Parquet', 'CSV'], 'Parquet or CSV'),
    diskUsedPercentThreshold: int(50, 99, 85),
    dryRun: bool(false),
    bootTimeoutMinutes: int(10, 720, 30),
    // Drain before terminate (infra/assets/drain-registry.sh): the ALB idle timeout (900 s) by default; the target
    // group's deregistration delay is the same and cannot exceed 3600 s.
    drainTimeoutSeconds: int(30, 3600, 900),
    natGatewayPerAz: bool(false),
    albAccessLogs: bool(false),
    bucketAccessLogs: bool(false),
    // Boots pull the registry image through an ECR pull-through cache of Docker Hub (infra/constructs/pull-through-cache.ts).
    ecrPullThroughCache: bool(false),
    ecrPullThroughCredentialArn: optionalText(
      'a Secrets Manager secret ARN named ecr-pullthroughcache/... ' +
        '(arn:aws:secretsmanager:<region>:<account>:secret:ecr-pullthroughcache/<name>)',
      /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:ecr-pullthroughcache\/[A-Za-z0-9/_+=.@-]+$/,
    ),
    ecrPullThroughPrefix: z.pipe(
      z._default(raw, 'docker-hub'),
      matching('an ECR repository prefix such as docker-hub (2-30 lower-case letters, digits, . _ - and /)', ECR_PREFIX),
    ),
    alarmEmail: optionalText('an e-mail address', /^[^@\s]+@[^@\s]+\.[^@\s]+$/),
    logRetentionDays: int(1, 3653, 30).check(
      z.refine((d) => LOG_RETENTION_DAYS.includes(d), expected(`one of ${LOG_RETENTION_DAYS.join(', ')}`)),
    ),
    metricsNamespace: z._default(
      text('a CloudWatch namespace such as RegistryControlPlane', /^[A-Za-z0-9._/#:-]{1,255}$/),
      'RegistryControlPlane',
    ),
    fleetTagKey: z._default(text('a tag key such as registry-fleet', /^[A-Za-z0-9_.:/=+@-]{1,128}$/), 'registry-fleet'),
    functionsDir: z.pipe(
      z._default(raw, 'dist/functions'),
      z.string().check(z.minLength(1, expected('a directory such as dist/functions'))),
    ),
    replaceUnhealthyInstancesSchedule: schedule('rate(5 minutes)'),
    unhealthyAlarmDatapoints: int(1, 5, 2),
    purgeStaleUploadsSchedule: schedule('cron(0 3 * * ? *)'),
    purgeDiskVolumesSchedule: schedule('cron(30 3 * * ? *)'),
    rotateCertificatesSchedule: schedule('cron(0 4 * * ? *)'),
    syncHtpasswdSchedule: schedule('rate(1 hour)'),
    // collect-garbage (infra/constructs/collect-garbage.ts): dryRun until an operator has read a few reports.
    gcMode: oneOf('dryRun', GC_MODES, 'off, dryRun or on'),
    // Weekly, Sunday 05:00 UTC: away from the nightly purge (03:00) and the disk job (03:30).
    gcSchedule: schedule('cron(0 5 ? * SUN *)'),
    gcGrace: duration('48h', '1h'),
    gcMaxDeletesPerRun: int(1, 100_000, 10_000),
    // GC_UNDO_DAYS: a collected blob stays restorable this long (the bucket's noncurrent-version expiry under blobs/).
    gcUndoDays: int(1, 365, 7),
    // Retention (opt-in): ECR-lifecycle-style rules; set, it also turns on the fleet's storage.delete.enabled.
    gcRetention: gcRetention(),
    // Run history, pages and logs (infra/constructs/history.ts, monitoring.ts, log-queries.ts).
    historyRetentionDays: int(1, 3650, 90),
    historyGlueTable: bool(false),
    circuitOpenAlarmMinutes: int(5, 1440, 30),
    logLevel: oneOf('INFO', ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'CRITICAL'], 'one of TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL'),
  })
  .check(
    z.superRefine((c, ctx) => {
      const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
      if (EXAMPLE_DOMAIN.test(c.domainName)) {
        issue(
          'domainName',
          "expected your registry's own host name, not an example.* sample name (cdk.json ships one): set -c " +
            'domainName=registry.<your domain>',
        );
      }
      if (!(c.minCapacity <= c.desiredCapacity && c.desiredCapacity <= c.maxCapacity)) {
        issue(
          'desiredCapacity',
          `expected minCapacity ≤ desiredCapacity ≤ maxCapacity (got ${c.minCapacity} / ${c.desiredCapacity} / ${c.maxCapacity})`,
        );
      }
      if ((c.hostedZoneId === undefined) !== (c.hostedZoneName === undefined)) {
        issue(c.hostedZoneId === undefined ? 'hostedZoneId' : 'hostedZoneName', 'expected hostedZoneId and hostedZoneName together');
      }
      if (c.hostedZoneName !== undefined && !(c.domainName === c.hostedZoneName || c.domainName.endsWith(`.${c.hostedZoneName}`))) {
        issue('hostedZoneName', `expected a zone that contains domainName ${c.domainName}`);
      }
      if (c.vpcId !== undefined) {
        for (const key of ['availabilityZones', 'publicSubnetIds', 'privateSubnetIds', 'privateRouteTableIds'] as const) {
          if ((c[key]?.length ?? 0) < 2) issue(key, 'expected at least 2 entries (one per availability zone) when vpcId is set');
          else if (c[key]?.length !== c.availabilityZones?.length) issue(key, 'expected one entry per availability zone');
        }
      }
      if (c.albAccessLogs && c.region === undefined) {
        issue(
          'albAccessLogs',
          "expected the region context too: the log bucket policy names the region's load balancer log delivery account",
        );
      }
      if (c.ecrPullThroughCache && c.ecrPullThroughCredentialArn === undefined) {
        issue(
          'ecrPullThroughCredentialArn',
          'expected the ARN of a Secrets Manager secret named ecr-pullthroughcache/<name> holding {"username": ..., "accessToken": ' +
            '...} of a Docker Hub account when ecrPullThroughCache is true (ECR needs one for Docker Hub)',
        );
      }
      if (c.certificateMode === 'acme') {
        if (c.acmeDirectoryUrl === undefined) issue('acmeDirectoryUrl', 'expected an https:// URL when certificateMode is acme');
        if (c.acmeEmail === undefined) issue('acmeEmail', 'expected an e-mail address when certificateMode is acme');
        if (c.hostedZoneId === undefined) issue('hostedZoneId', 'expected a hosted zone (DNS-01 challenges) when certificateMode is acme');
      }
    }),
  );

export type FleetConfig = Readonly<z.output<typeof Context>>;

/** The context keys this app reads. */
export const CONTEXT_KEYS = Object.keys(Context.shape) as readonly (keyof FleetConfig)[];

/** Context keys the app reads that are not fleet settings (`-c nag=false` turns cdk-nag off). */
export const APP_CONTEXT_KEYS = ['nag'] as const;

/** The CDK's own context (feature flags `@aws-cdk/...`, `aws:cdk:...`, lookups `key:account=...`) and CLI settings. */
function isFrameworkKey(key: string): boolean {
  return (
    key.includes(':') || key.startsWith('@') || key.startsWith('aws-cdk') || key.startsWith('cdk') || key === 'acknowledged-issue-numbers'
  );
}

/** Context keys that are neither fleet settings nor the CDK's own: a typo such as `minCapcity` is never ignored. */
export function unknownContextKeys(context: Readonly<Record<string, unknown>>): string[] {
  const known = new Set<string>([...CONTEXT_KEYS, ...APP_CONTEXT_KEYS]);
  return Object.keys(context)
    .filter((k) => !known.has(k) && !isFrameworkKey(k))
    .sort();
}

/** Raised for a bad context value; the message names every bad key. */
export class FleetConfigError extends Error {
  override readonly name = 'FleetConfigError';
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const s = JSON.stringify(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Parses the CDK context (`key → value` as the app reads it). Throws `FleetConfigError` naming each bad key. */
export function parseFleetConfig(context: Readonly<Record<string, unknown>>): FleetConfig {
  const unknown = unknownContextKeys(context);
  if (unknown.length > 0) {
    throw new FleetConfigError(
      `invalid CDK context (set it with -c key=value or in cdk.json):\n` +
        `${unknown.map((k) => `  context ${k}: not a setting of this app`).join('\n')}\n` +
        `  known keys: ${[...CONTEXT_KEYS].sort().join(', ')}`,
    );
  }
  const picked = Object.fromEntries(CONTEXT_KEYS.map((k) => [k, context[k]]).filter(([, v]) => v !== undefined && v !== null));
  const result = Context.safeParse(picked);
  if (!result.success) {
    const lines = result.error.issues.map((i) => {
      const key = String(i.path[0] ?? '(context)');
      return `  context ${key}: ${i.message} (got ${show(picked[key])})`;
    });
    throw new FleetConfigError(`invalid CDK context (set it with -c key=value or in cdk.json):\n${lines.join('\n')}`);
  }
  return Object.freeze(result.data);
}
