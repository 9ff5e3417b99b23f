import { describe, expect, it } from 'vitest';
import { z } from 'zod/mini';
import { env, loadConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';

const shape = {
  REGISTRY_BUCKET: env.bucket(),
  UPLOAD_MAX_AGE: env.duration({ default: '168h', min: '1h' }),
  MAX_DELETES_PER_RUN: env.int({ min: 1, max: 100_000, default: 10_000 }),
  MODE: env.oneOf(['acm', 'acme'] as const, 'acm'),
  LISTENER_ARN: z.optional(env.arn('elasticloadbalancing')),
};
const toConfig = (v: { REGISTRY_BUCKET: string; UPLOAD_MAX_AGE: number; MAX_DELETES_PER_RUN: number; MODE: 'acm' | 'acme' }) => ({
  bucket: v.REGISTRY_BUCKET,
  maxAgeMs: v.UPLOAD_MAX_AGE,
  maxDeletes: v.MAX_DELETES_PER_RUN,
  mode: v.MODE,
});
const load = (vars: Record<string, string | undefined>) => loadConfig(shape, { AWS_REGION: 'eu-west-1', ...vars }, toConfig);

describe('loadConfig', () => {
  it('applies defaults and the common variables', () => {
    expect(load({ REGISTRY_BUCKET: 'my-registry' })).toEqual({
      bucket: 'my-registry',
      maxAgeMs: 168 * 3_600_000,
      maxDeletes: 10_000,
      mode: 'acm',
      region: 'eu-west-1',
      dryRun: false,
      s3ForcePathStyle: false,
    });
  });

  it('parses every form it documents', () => {
    const config = load({
      REGISTRY_BUCKET: 'b-1.x',
      UPLOAD_MAX_AGE: '7d',
      MAX_DELETES_PER_RUN: '50',
      MODE: 'acme',
      DRY_RUN: 'true',
      S3_FORCE_PATH_STYLE: 'true',
    });
    expect(config).toMatchObject({ maxAgeMs: 7 * 86_400_000, maxDeletes: 50, mode: 'acme', dryRun: true, s3ForcePathStyle: true });
  });

  it('returns a frozen object', () => {
    expect(Object.isFrozen(load({ REGISTRY_BUCKET: 'my-registry' }))).toBe(true);
  });

  it.each([
    [{}, /REGISTRY_BUCKET is missing: expected an S3 bucket name/],
    [{ REGISTRY_BUCKET: 'My_Bucket' }, /REGISTRY_BUCKET="My_Bucket" is not valid: expected an S3 bucket name/],
    [
      { REGISTRY_BUCKET: 'b-1', UPLOAD_MAX_AGE: '7 days' },
      /UPLOAD_MAX_AGE="7 days" is not valid: expected a duration like 168h.*at least 1h/,
    ],
    [{ REGISTRY_BUCKET: 'b-1', UPLOAD_MAX_AGE: '30m' }, /UPLOAD_MAX_AGE="30m" is not valid: .*at least 1h/],
    // A duration declared without a maximum still has one: 36500d (100 years), beyond it a typo, never a period.
    [
      { REGISTRY_BUCKET: 'b-1', UPLOAD_MAX_AGE: '99999999999999999999h' },
      /UPLOAD_MAX_AGE="99999999999999999999h" is not valid: expected a duration like 168h.*at least 1h and at most 36500d/,
    ],
    [
      { REGISTRY_BUCKET: 'b-1', MAX_DELETES_PER_RUN: '0' },
      /MAX_DELETES_PER_RUN="0" is not valid: expected a whole number from 1 to 100000/,
    ],
    [{ REGISTRY_BUCKET: 'b-1', MAX_DELETES_PER_RUN: '2.5' }, /MAX_DELETES_PER_RUN="2.5" is not valid: expected a whole number/],
    [{ REGISTRY_BUCKET: 'b-1', MODE: 'letsencrypt' }, /MODE="letsencrypt" is not valid: expected one of acm, acme/],
    [{ REGISTRY_BUCKET: 'b-1', DRY_RUN: 'yes' }, /DRY_RUN="yes" is not valid: expected true or false/],
    [
      { REGISTRY_BUCKET: 'b-1', LISTENER_ARN: 'listener/app/x' },
      /LISTENER_ARN="listener\/app\/x" is not valid: expected an ARN of elasticloadbalancing/,
    ],
    [{ REGISTRY_BUCKET: 'b-1', AWS_REGION: 'Europe' }, /AWS_REGION="Europe" is not valid: expected an AWS region/],
    [{ REGISTRY_BUCKET: 'b-1', FLEET_NAME: 'fleet a' }, /FLEET_NAME="fleet a" is not valid: expected a fleet name such as registry-fleet/],
  ])('rejects %j with a message naming the variable, value and form', (vars, message) => {
    expect(() => load(vars)).toThrow(ConfigError);
    expect(() => load(vars)).toThrow(message);
  });

  it('names every bad variable at once', () => {
    expect(() => load({ MAX_DELETES_PER_RUN: 'many', DRY_RUN: 'maybe' })).toThrow(
      /REGISTRY_BUCKET is missing.*MAX_DELETES_PER_RUN="many".*DRY_RUN="maybe"|DRY_RUN="maybe".*REGISTRY_BUCKET is missing/,
    );
  });

  it("reads FLEET_NAME as the fleet (the metrics' fleet dimension); none when unset", () => {
    expect(load({ REGISTRY_BUCKET: 'b-1', FLEET_NAME: 'registry-eu' })).toMatchObject({ fleet: 'registry-eu' });
    expect(load({ REGISTRY_BUCKET: 'b-1' })).not.toHaveProperty('fleet');
  });
});
