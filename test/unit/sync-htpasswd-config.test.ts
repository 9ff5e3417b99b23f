import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.ts';
import { loadSyncHtpasswdConfig } from '../../functions/sync-htpasswd/config.ts';

const ENV = {
  AWS_REGION: 'us-east-1',
  HTPASSWD_PARAMETER_PATH: '/registry/users/',
  REGISTRY_BUCKET: 'registry-bucket',
  HTPASSWD_OBJECT_KEY: 'auth/htpasswd',
  ASG_NAME: 'registry-asg',
  SYNC_DOCUMENT_NAME: 'registry-htpasswd-sync',
};

describe('loadSyncHtpasswdConfig', () => {
  it('applies the documented defaults', () => {
    const { policy, ...config } = loadSyncHtpasswdConfig(ENV);
    expect(policy).toEqual({
      asgName: 'registry-asg',
      bucket: 'registry-bucket',
      objectKey: 'auth/htpasswd',
      parameterPath: '/registry/users/',
      allowEmptyUserSet: false,
      registrationGraceMs: 900_000,
      forceDistribute: false,
    });
    expect(config).toEqual({
      parameterPath: '/registry/users/',
      bucket: 'registry-bucket',
      objectKey: 'auth/htpasswd',
      asgName: 'registry-asg',
      documentName: 'registry-htpasswd-sync',
      bcryptCost: 8,
      allowEmptyUserSet: false,
      objectSse: 'AES256',
      maxConcurrency: 10,
      commandWaitMs: 60_000,
      pollIntervalMs: 2_000,
      driftCheckBudgetMs: 120_000,
      registrationGraceMs: 900_000,
      region: 'us-east-1',
      dryRun: false,
      s3ForcePathStyle: false,
    });
  });

  it.each([
    [
      { HTPASSWD_PARAMETER_PATH: 'registry/users/' },
      /HTPASSWD_PARAMETER_PATH="registry\/users\/" is not valid: expected an SSM parameter path that starts and ends with \//,
    ],
    [{ HTPASSWD_PARAMETER_PATH: '/registry/users' }, /HTPASSWD_PARAMETER_PATH.*starts and ends with \//],
    [{ HTPASSWD_PARAMETER_PATH: '/' }, /HTPASSWD_PARAMETER_PATH.*not \/ itself/],
    [{ HTPASSWD_OBJECT_KEY: '/auth/htpasswd' }, /HTPASSWD_OBJECT_KEY.*without a leading \//],
    [{ BCRYPT_COST: '13' }, /BCRYPT_COST="13" is not valid: expected a whole number from 4 to 12/],
    [{ ALLOW_EMPTY_USER_SET: 'yes' }, /ALLOW_EMPTY_USER_SET.*true or false/],
    [{ ASG_NAME: undefined }, /ASG_NAME is missing/],
    [{ SYNC_DOCUMENT_NAME: 'a b' }, /SYNC_DOCUMENT_NAME/],
    [{ DRIFT_CHECK_BUDGET: '5m' }, /DRIFT_CHECK_BUDGET="5m" is not valid: .*at most 4m/],
    [{ SSM_REGISTRATION_GRACE: '30s' }, /SSM_REGISTRATION_GRACE="30s" is not valid: .*at least 1m/],
  ])('names the bad variable (%j)', (over, message) => {
    expect(() => loadSyncHtpasswdConfig({ ...ENV, ...over })).toThrow(ConfigError);
    expect(() => loadSyncHtpasswdConfig({ ...ENV, ...over })).toThrow(message);
  });
});
