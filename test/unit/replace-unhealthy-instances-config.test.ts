import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.ts';
import { loadReplaceUnhealthyInstancesConfig } from '../../functions/replace-unhealthy-instances/config.ts';
import { HOUR, MIN, policy } from '../support/replace-unhealthy-instances-fixtures.ts';

describe('config', () => {
  const base = { AWS_REGION: 'us-east-1', ASG_NAME: 'registry', TARGET_GROUP_ARN: policy.targetGroupArn };
  it('applies the documented defaults', () => {
    expect(loadReplaceUnhealthyInstancesConfig(base)).toMatchObject({ ...policy, dryRun: false });
  });
  it.each([
    [{ TARGET_GROUP_ARN: 'targetgroup/x' }, 'TARGET_GROUP_ARN="targetgroup/x" is not valid'],
    [{ ASG_NAME: undefined }, 'ASG_NAME is missing'],
    [{ MAX_UNHEALTHY_PERCENT: '101' }, 'MAX_UNHEALTHY_PERCENT="101" is not valid: expected a whole number from 0 to 100'],
    [{ MAX_REPLACEMENTS_PER_RUN: '0' }, 'MAX_REPLACEMENTS_PER_RUN="0" is not valid'],
    [{ GRACE_PERIOD: '5 minutes' }, 'GRACE_PERIOD="5 minutes" is not valid'],
  ])('rejects %j', (vars, message) => {
    expect(() => loadReplaceUnhealthyInstancesConfig({ ...base, ...vars })).toThrow(ConfigError);
    expect(() => loadReplaceUnhealthyInstancesConfig({ ...base, ...vars })).toThrow(message);
  });
  it('parses durations', () => {
    expect(
      loadReplaceUnhealthyInstancesConfig({ ...base, GRACE_PERIOD: '10m', UNHEALTHY_CONFIRM: '0', REPLACEMENT_TIMEOUT: '1h' }),
    ).toMatchObject({ gracePeriodMs: 10 * MIN, unhealthyConfirmMs: 0, replacementTimeoutMs: HOUR });
  });
});
