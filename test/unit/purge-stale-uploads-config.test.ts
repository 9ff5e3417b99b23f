import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.ts';
import { loadPurgeStaleUploadsConfig } from '../../functions/purge-stale-uploads/config.ts';

const load = (vars: Record<string, string>) => loadPurgeStaleUploadsConfig({ AWS_REGION: 'us-east-1', REGISTRY_BUCKET: 'registry-bucket', ...vars });

describe('loadPurgeStaleUploadsConfig', () => {
  it('applies the documented defaults', () => {
    expect(load({})).toEqual({
      bucket: 'registry-bucket',
      root: '',
      maxAgeMs: 168 * 3_600_000,
      maxDeletes: 10_000,
      listConcurrency: 8,
      startedAtReadWindowMs: 300_000,
      region: 'us-east-1',
      dryRun: false,
      s3ForcePathStyle: false,
    });
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
    [{ UPLOAD_MAX_AGE: '0' }, 'UPLOAD_MAX_AGE="0" is not valid: expected a duration like 168h, 90m, 30s, 1h30m or 30d, at least 1s'],
    [{ UPLOAD_MAX_AGE: 'a week' }, 'UPLOAD_MAX_AGE'],
    [{ MAX_DELETES_PER_RUN: '0' }, 'MAX_DELETES_PER_RUN'],
    [{ LIST_CONCURRENCY: '100' }, 'LIST_CONCURRENCY'],
    [{ STARTEDAT_READ_WINDOW: 'soon' }, 'STARTEDAT_READ_WINDOW'],
  ])('rejects %j naming the variable', (vars, message) => {
    expect(() => load(vars)).toThrow(ConfigError);
    expect(() => load(vars)).toThrow(message);
  });
});
