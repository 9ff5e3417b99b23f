import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { DURATION_FORM, durationRule, type DurationBounds } from './duration.ts';
import { ConfigError } from './errors.ts';

/**
 * Environment → typed, frozen config, validated once at cold start (STYLE §5). Each job declares its own
 * variables with the builders below (functions/<job>/config.ts); the common ones are added here.
 * A bad or missing variable fails with its name, the value received and the expected form.
 */

// zod/mini loads no locale: English, as zod classic, for the few issues without our own message.
z.config(en());

const expect = (form: string) => ({ error: `expected ${form}` });

/**
 * What a variable's docs read besides its `.check(z.describe('…'))`: the expected form the builders below put in
 * their error message, registered on the schema (zod's global registry) so the docs say what the error says.
 */
export interface VariableMeta {
  readonly form?: string;
  readonly description?: string;
}

function withForm<S extends z.core.$ZodType>(schema: S, form: string): S {
  z.globalRegistry.add(schema, { ...z.globalRegistry.get(schema), form } as z.core.GlobalMeta);
  return schema;
}

/** A required non-empty string matching `pattern` (when given). */
function text(form: string, pattern?: RegExp) {
  const checks = [z.trim(), z.minLength(1, expect(form)), ...(pattern ? [z.regex(pattern, expect(form))] : [])];
  return withForm(z.string(expect(form)).check(...checks), form);
}

function int(opts: { min: number; max: number; default?: number }) {
  const form = `a whole number from ${opts.min} to ${opts.max}`;
  const schema = z.pipe(
    z.pipe(z.string(expect(form)).check(z.trim(), z.regex(/^-?\d+$/, expect(form))), z.transform(Number)),
    z.number().check(z.gte(opts.min, expect(form)), z.lte(opts.max, expect(form))),
  );
  return withForm(opts.default === undefined ? schema : z._default(schema, opts.default), form);
}

/** A duration variable; every one has a maximum (`max`, else the 100-year ceiling of shared/duration.ts). */
function duration(opts: DurationBounds & { default?: string } = {}) {
  const rule = durationRule(opts);
  const form = `${DURATION_FORM}, ${rule.bounds}`;
  const schema = z.pipe(
    z.string(expect(form)),
    z.transform((value: string, ctx) => {
      const ms = rule.check(value);
      if (ms === undefined) {
        ctx.issues.push({ code: 'custom', message: `expected ${form}`, input: value });
        return z.NEVER;
      }
      return ms;
    }),
  );
  return withForm(opts.default === undefined ? schema : z.pipe(z._default(z.string(), opts.default), schema), form);
}

/**
 * A duration in a manual payload (`{"maxAge": "24h"}`): the same rule as `env.duration`, in the job's own words
 * (`form`). The message echoes the value, which payload errors do not do by themselves.
 */
export function durationOption(form: string, bounds: DurationBounds) {
  const rule = durationRule(bounds);
  const message = (input: unknown) => `expected ${form}, ${rule.bounds} (got ${JSON.stringify(input)})`;
  return z.pipe(
    z.string({ error: (issue) => message(issue.input) }),
    z.transform((value: string, ctx) => {
      const ms = rule.check(value);
      if (ms === undefined) {
        ctx.issues.push({ code: 'custom', message: message(value), input: value });
        return z.NEVER;
      }
      return ms;
    }),
  );
}

function bool(defaultValue: boolean) {
  const schema = z.pipe(
    z._default(z.enum(['true', 'false'], expect('true or false')), defaultValue ? 'true' : 'false'),
    z.transform((v: 'true' | 'false') => v === 'true'),
  );
  return withForm(schema, 'true or false');
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T, defaultValue?: T[number]) {
  const form = `one of ${values.join(', ')}`;
  const schema = z.enum(values, expect(form));
  return withForm(defaultValue === undefined ? schema : z._default(schema, defaultValue as never), form);
}

/** Builders for environment variables; every one carries its expected form into the error message. */
export const env = {
  text,
  optionalText: (form: string, pattern?: RegExp) => z.optional(text(form, pattern)),
  int,
  duration,
  bool,
  oneOf,
  bucket: () => text('an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)', /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/),
  arn: (service: string) => text(`an ARN of ${service} (arn:aws:${service}:...)`, new RegExp(`^arn:aws[a-z-]*:${service}:`)),
};

const common = {
  AWS_REGION: text('an AWS region such as us-east-1', /^[a-z]{2}(-[a-z]+)+-\d+$/).check(z.describe('region of the fleet (set by Lambda)')),
  DRY_RUN: bool(false).check(z.describe('`true` leashes every run of this function (context `dryRun` sets it on every function)')),
  S3_FORCE_PATH_STYLE: bool(false).check(z.describe('`true` for local S3 emulators')),
  // Run history and notifications (shared/history.ts, shared/notify.ts): optional, each off when unset.
  HISTORY_BUCKET: z.optional(env.bucket()).check(z.describe('the run history bucket (set by the stack); unset: no history is written')),
  HISTORY_PREFIX: z
    ._default(
      text(
        'a key prefix such as reports (letters, digits, - _ . and /, no leading or trailing /)',
        /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/,
      ),
      'reports',
    )
    .check(z.describe('key prefix of the history objects')),
  NOTIFY_TOPIC_ARN: z
    .optional(env.arn('sns'))
    .check(z.describe('where run notifications go (set by the stack: the alarm topic); unset: none')),
  // The fleet (its stack name): a dimension of every job metric, so several fleets in one account never share an alarm.
  FLEET_NAME: z
    .optional(
      text('a fleet name such as registry-fleet (a letter, then up to 127 letters, digits or hyphens)', /^[A-Za-z][A-Za-z0-9-]{0,127}$/),
    )
    .check(z.describe('the `fleet` dimension of every job metric (set by the stack: the stack name); unset: no `fleet` dimension')),
};

/** The variables every function reads (validated with each job's own by `loadConfig`). */
export const COMMON_VARIABLES: Readonly<typeof common> = common;

/**
 * What the stack writes for a job's variables: the schema's input, so names and literal forms (`acm | acme`,
 * `true | false`) are checked where the stack is typechecked; a variable with a default or `z.optional` may be left out.
 * The values are mostly CloudFormation tokens, so they are checked by the job's cold start, not here.
 */
export type EnvironmentInput<Shape extends z.core.$ZodShape> = {
  [K in keyof Shape as undefined extends z.input<Shape[K]> ? never : K]: z.input<Shape[K]>;
} & { [K in keyof Shape as undefined extends z.input<Shape[K]> ? K : never]?: Exclude<z.input<Shape[K]>, undefined> };

/** A job's environment builder (`defineEnvironment`): call it with the variables, read `shape` for the docs. */
export interface Environment<Shape extends z.core.$ZodShape> {
  (vars: EnvironmentInput<Shape>): Record<string, string>;
  readonly shape: Shape;
}

/**
 * The one source of a job's variable names: the loader validates `shape` at cold start, and the builder made here
 * from the same shape is what the job's construct calls (infra/constructs/jobs/<job>.ts) and what the
 * configuration docs are generated from (scripts/config-docs.ts). Left-out variables stay unset; order is kept.
 */
export function defineEnvironment<Shape extends z.core.$ZodShape>(
  shape: Shape,
  descriptions: { readonly [K in keyof Shape]?: string } = {},
): Environment<Shape> {
  // What a variable means, for the docs: a `.check(z.describe('…'))` on the schema itself wins over this table.
  for (const [name, description] of Object.entries(descriptions) as [keyof Shape & string, string][]) {
    const schema = shape[name];
    const meta = schema && z.globalRegistry.get(schema);
    if (schema && !meta?.description) z.globalRegistry.add(schema, { ...meta, description });
  }
  const build = (vars: EnvironmentInput<Shape>): Record<string, string> =>
    Object.fromEntries(Object.entries(vars as Record<string, string | undefined>).filter((e): e is [string, string] => e[1] !== undefined));
  return Object.assign(build, { shape });
}

const { AWS_REGION: _setByLambda, ...stackCommon } = common;
/** The common variables the stack sets on every function (DRY_RUN, FLEET_NAME, HISTORY_*, …; Lambda sets AWS_REGION). */
export const commonEnvironment = defineEnvironment(stackCommon);

export interface CommonConfig {
  readonly region: string;
  /** Stack-wide leash: when true every run of every trigger is a dry run. */
  readonly dryRun: boolean;
  readonly s3ForcePathStyle: boolean;
  /** Where every run's whole report is written (HISTORY_BUCKET, HISTORY_PREFIX); no history when unset. */
  readonly history?: { readonly bucket: string; readonly prefix: string };
  /** The SNS topic run notifications go to (NOTIFY_TOPIC_ARN); none when unset. */
  readonly notifyTopicArn?: string;
  /** The fleet this function belongs to (FLEET_NAME, the stack name): the `fleet` dimension of its metrics; none when unset. */
  readonly fleet?: string;
}

/**
 * Validate `source` against the common variables plus `shape`, then map to the job's domain config.
 * Throws ConfigError naming every bad variable; the result is frozen.
 */
export function loadConfig<Shape extends z.core.$ZodShape, C>(
  shape: Shape,
  source: Readonly<Record<string, string | undefined>>,
  toConfig: (vars: z.output<z.ZodMiniObject<Shape>>) => C,
): Readonly<C & CommonConfig> {
  const schema = z.object({ ...common, ...shape });
  const result = schema.safeParse(source);
  if (!result.success) throw new ConfigError(`invalid configuration: ${describeIssues(result.error, source)}`);
  const vars = result.data as unknown as z.output<z.ZodMiniObject<Shape>> & z.output<z.ZodMiniObject<typeof common>>;
  const config = {
    ...toConfig(vars),
    region: vars.AWS_REGION,
    dryRun: vars.DRY_RUN,
    s3ForcePathStyle: vars.S3_FORCE_PATH_STYLE,
    ...(vars.HISTORY_BUCKET ? { history: { bucket: vars.HISTORY_BUCKET, prefix: vars.HISTORY_PREFIX } } : {}),
    ...(vars.NOTIFY_TOPIC_ARN ? { notifyTopicArn: vars.NOTIFY_TOPIC_ARN } : {}),
    ...(vars.FLEET_NAME ? { fleet: vars.FLEET_NAME } : {}),
  };
  return Object.freeze(config);
}

function describeIssues(error: z.core.$ZodError, source: Readonly<Record<string, unknown>>): string {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const issue of error.issues) {
    const name = String(issue.path[0] ?? '(environment)');
    if (seen.has(name)) continue;
    seen.add(name);
    const value = source[name];
    const what = value === undefined ? `${name} is missing` : `${name}=${JSON.stringify(value)} is not valid`;
    lines.push(`${what}: ${issue.message}`);
  }
  return lines.join('; ');
}
