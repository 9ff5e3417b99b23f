import { env, loadConfig } from '../../shared/config.ts';

/**
 * Environment of replace-unhealthy-instances (ARCHITECTURE §6). Added beyond the contract (documented in the
 * README runbook): UNHEALTHY_CONFIRM and REPLACEMENT_TIMEOUT.
 */
const shape = {
  ASG_NAME: env.text('an Auto Scaling group name (1-255 characters)', /^[^:]{1,255}$/),
  TARGET_GROUP_ARN: env.arn('elasticloadbalancing'),
  MAX_REPLACEMENTS_PER_RUN: env.int({ min: 1, max: 10, default: 1 }),
  MAX_UNHEALTHY_PERCENT: env.int({ min: 0, max: 100, default: 50 }),
  GRACE_PERIOD: env.duration({ default: '300s', max: '24h' }),
  UNHEALTHY_CONFIRM: env.duration({ default: '2m', max: '1h' }),
  REPLACEMENT_TIMEOUT: env.duration({ default: '30m', min: '1m', max: '24h' }),
};

export interface ReplaceConfig {
  readonly asgName: string;
  readonly targetGroupArn: string;
  /** Replacements started per run (either path). */
  readonly maxReplacementsPerRun: number;
  /** Circuit breaker: replace nothing when MORE than this percentage of InService members is unhealthy. */
  readonly maxUnhealthyPercent: number;
  /** An instance younger than this (since EC2 launch) is never a candidate. */
  readonly gracePeriodMs: number;
  /** A candidate must have been seen unhealthy (and marked) at least this long before it is replaced. 0 = at once. */
  readonly unhealthyConfirmMs: number;
  /** Capacity-preserving path: a replacement still not healthy after this long is reported stalled. */
  readonly replacementTimeoutMs: number;
}

export function loadReplaceUnhealthyInstancesConfig(source: Readonly<Record<string, string | undefined>>) {
  return loadConfig(shape, source, (v): ReplaceConfig => ({
    asgName: v.ASG_NAME,
    targetGroupArn: v.TARGET_GROUP_ARN,
    maxReplacementsPerRun: v.MAX_REPLACEMENTS_PER_RUN,
    maxUnhealthyPercent: v.MAX_UNHEALTHY_PERCENT,
    gracePeriodMs: v.GRACE_PERIOD,
    unhealthyConfirmMs: v.UNHEALTHY_CONFIRM,
    replacementTimeoutMs: v.REPLACEMENT_TIMEOUT,
  }));
}

export type ReplaceUnhealthyInstancesConfig = ReturnType<typeof loadReplaceUnhealthyInstancesConfig>;
