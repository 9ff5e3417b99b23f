import { z } from 'zod';
import { DURATION_FORM, parseDuration } from './duration.ts';
import { ConfigError } from './errors.ts';

/**
 * Environment → typed, frozen config, validated once at cold start (STYLE §5). Each job declares its own
 * variables with the builders below (functions/<job>/config.ts); the common ones are added here.
 * A bad or missing variable fails with its name, the value received and the expected form.
 */

const expect = (form: string) => ({ error: `expected ${form}` });

/** A required non-empty string matching `pattern` (when given). */
function text(form: string, pattern?: RegExp) {
  const base = z.string(expect(form)).trim().min(1, expect(form));
  return pattern ? base.regex(pattern, expect(form)) : base;
}

function int(opts: { min: number; max: number; default?: number }) {
  const form = `a whole number from ${opts.min} to ${opts.max}`;
  const schema = z
    .string(expect(form))
    .trim()
    .regex(/^-?\d+$/, expect(form))
    .transform(Number)
    .pipe(z.number().min(opts.min, expect(form)).max(opts.max, expect(form)));
  return opts.default === undefined ? schema : schema.default(opts.default);
}

function duration(opts: { default?: string; min?: string; max?: string } = {}) {
  const min = opts.min === undefined ? 0 : (parseDuration(opts.min) ?? 0);
  const max = opts.max === undefined ? Number.POSITIVE_INFINITY : (parseDuration(opts.max) ?? Number.POSITIVE_INFINITY);
  const bounds = [opts.min && `at least ${opts.min}`, opts.max && `at most ${opts.max}`].filter(Boolean).join(' and ');
  const form = bounds ? `${DURATION_FORM}, ${bounds}` : DURATION_FORM;
  const schema = z.string(expect(form)).transform((value, ctx) => {
    const ms = parseDuration(value.trim());
    if (ms === undefined || ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `expected ${form}` });
      return z.NEVER;
    }
    return ms;
  });
  return opts.default === undefined ? schema : z.string().default(opts.default).pipe(schema);
}

function bool(defaultValue: boolean) {
  return z
    .enum(['true', 'false'], expect('true or false'))
    .default(defaultValue ? 'true' : 'false')
    .transform((v) => v === 'true');
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T, defaultValue?: T[number]) {
  const schema = z.enum(values, expect(`one of ${values.join(', ')}`));
  return defaultValue === undefined ? schema : schema.default(defaultValue as never);
}

/** Builders for environment variables; every one carries its expected form into the error message. */
export const env = {
  text,
  optionalText: (form: string, pattern?: RegExp) => text(form, pattern).optional(),
  int,
  duration,
  bool,
  oneOf,
  bucket: () => text('an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)', /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/),
  arn: (service: string) => text(`an ARN of ${service} (arn:aws:${service}:...)`, new RegExp(`^arn:aws[a-z-]*:${service}:`)),
};

const common = {
  AWS_REGION: text('an AWS region such as us-east-1', /^[a-z]{2}(-[a-z]+)+-\d+$/),
  DRY_RUN: bool(false),
  S3_FORCE_PATH_STYLE: bool(false),
};

export interface CommonConfig {
  readonly region: string;
  /** Stack-wide leash: when true every run of every trigger is a dry run. */
  readonly dryRun: boolean;
  readonly s3ForcePathStyle: boolean;
}

/**
 * Validate `source` against the common variables plus `shape`, then map to the job's domain config.
 * Throws ConfigError naming every bad variable; the result is frozen.
 */
export function loadConfig<Shape extends z.ZodRawShape, C>(
  shape: Shape,
  source: Readonly<Record<string, string | undefined>>,
  toConfig: (vars: z.output<z.ZodObject<Shape>>) => C,
): Readonly<C & CommonConfig> {
  const schema = z.object({ ...common, ...shape });
  const result = schema.safeParse(source);
  if (!result.success) throw new ConfigError(`invalid configuration: ${describeIssues(result.error, source)}`);
  const vars = result.data as unknown as z.output<z.ZodObject<Shape>> & { AWS_REGION: string; DRY_RUN: boolean; S3_FORCE_PATH_STYLE: boolean };
  const config = {
    ...toConfig(vars),
    region: vars.AWS_REGION,
    dryRun: vars.DRY_RUN,
    s3ForcePathStyle: vars.S3_FORCE_PATH_STYLE,
  };
  return Object.freeze(config);
}

function describeIssues(error: z.ZodError, source: Readonly<Record<string, unknown>>): string {
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
