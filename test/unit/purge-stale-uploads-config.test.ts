import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.ts';
import { loadPurgeStaleUploadsConfig } from '../../functions/purge-stale-uploads/config.ts';

const load = (vars: Record<string, string>) =>
  loadPurgeStaleUploadsConfig({ AWS_REGION: 'us-east-1', REGISTRY_BUCKET: 'registry-bucket', ...vars });

describe('loadPurgeStaleUploadsConfig', () => {
  it('applies the documented defaults', () => {
    expect(load({})).toEqual({
      bucket: 'registry-bucket',
      root: '',
      policy: { maxAgeMs: 168 * 3_600_000, maxDeletes: 10_000 },
      listConcurrency: 8,
      startedAtReadWindowMs: 300_000,
      listingReserveMs: 180_000,
      region: 'us-east-1',
      dryRun: false,
      s3ForcePathStyle: false,
    });
  });

  it('accepts the floor and the ceiling of UPLOAD_MAX_AGE', () => {
    expect(load({ UPLOAD_MAX_AGE: '1h' }).policy.maxAgeMs).toBe(3_600_000);
    expect(load({ UPLOAD_MAX_AGE: '365d' }).policy.maxAgeMs).toBe(365 * 86_400_000);
  });

  it.each([
    ['/fleet/a', 'fleet/a'],
    ['fleet/a/', 'fleet/a'],
    ['/', ''],
    ['', ''],
  ])('normalises REGISTRY_ROOT %j to %j', (value, root) => {
    expect(load({ REGISTRY_ROOT: value }).root).toBe(root);
  });

  it.each([
    [{ REGISTRY_BUCKET: '' }, 'REGISTRY_BUCKET'],
    [{ REGISTRY_BUCKET: 'Bad_Bucket' }, 'REGISTRY_BUCKET="Bad_Bucket" is not valid'],
    [{ REGISTRY_ROOT: '/fleet/../other' }, 'REGISTRY_ROOT="/fleet/../other" is not valid'],
    [{ REGISTRY_ROOT: 'fleet//a' }, 'REGISTRY_ROOT'],
    [
      { UPLOAD_MAX_AGE: '0' },
      'UPLOAD_MAX_AGE="0" is not valid: expected a duration like 168h, 90m, 30s, 1h30m or 30d, at least 1h and at most 365d',
    ],
    // One floor for the environment and the payload: pushes in flight are safe for at least 1 h.
    [{ UPLOAD_MAX_AGE: '1s' }, 'UPLOAD_MAX_AGE="1s" is not valid: expected a duration like 168h, 90m, 30s, 1h30m or 30d, at least 1h'],
    [{ UPLOAD_MAX_AGE: '59m' }, 'UPLOAD_MAX_AGE="59m" is not valid: expected a duration like 168h, 90m, 30s, 1h30m or 30d, at least 1h'],
    [
      { UPLOAD_MAX_AGE: '99999999999999999999h' },
      'UPLOAD_MAX_AGE="99999999999999999999h" is not valid: expected a duration like 168h, 90m, 30s, 1h30m or 30d, at least 1h and at most 365d',
    ],
    [
      { UPLOAD_MAX_AGE: '366d' },
      'UPLOAD_MAX_AGE="366d" is not valid: expected a duration like 168h, 90m, 30s, 1h30m or 30d, at least 1h and at most 365d',
    ],
    [
      { STARTEDAT_READ_WINDOW: '99999999999999999999h' },
      'STARTEDAT_READ_WINDOW="99999999999999999999h" is not valid: expected a duration like 168h, 90m, 30s, 1h30m or 30d, at most 876000h',
    ],
    [{ UPLOAD_MAX_AGE: 'a week' }, 'UPLOAD_MAX_AGE'],
    [{ LISTING_RESERVE: '20m' }, 'LISTING_RESERVE="20m" is not valid: expected a duration like 168h, 90m, 30s, 1h30m or 30d, at most 14m'],
    [{ MAX_DELETES_PER_RUN: '0' }, 'MAX_DELETES_PER_RUN'],
    [{ LIST_CONCURRENCY: '100' }, 'LIST_CONCURRENCY'],
    [{ STARTEDAT_READ_WINDOW: 'soon' }, 'STARTEDAT_READ_WINDOW'],
  ])('rejects %j naming the variable', (vars, message) => {
    expect(() => load(vars)).toThrow(ConfigError);
    expect(() => load(vars)).toThrow(message);
  });
});
