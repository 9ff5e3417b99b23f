import * as z from 'zod/mini';
import { defineEnvironment, env, loadConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import type { ReplacePolicy } from './model.ts';

/**
 * Environment of replace-unhealthy-instances (ARCHITECTURE §6). Added beyond the contract (documented in the
 * README runbook): UNHEALTHY_CONFIRM, REPLACEMENT_TIMEOUT, the replacement budget and the follow-up schedules.
 */
const shape = {
  ASG_NAME: env.text('an Auto Scaling group name (1-255 characters)', /^[^:]{1,255}$/),
  TARGET_GROUP_ARN: env.arn('elasticloadbalancing'),
  MAX_REPLACEMENTS_PER_RUN: env.int({ min: 1, max: 10, default: 1 }),
  MAX_UNHEALTHY_PERCENT: env.int({ min: 0, max: 100, default: 50 }),
  GRACE_PERIOD: env.duration({ default: '300s', max: '24h' }),
  UNHEALTHY_CONFIRM: env.duration({ default: '2m', max: '1h' }),
  REPLACEMENT_TIMEOUT: env.duration({ default: '30m', min: '1m', max: '24h' }),
  REPLACEMENT_BUDGET: env.int({ min: 1, max: 10, default: 3 }),
  REPLACEMENT_BUDGET_WINDOW: env.duration({ default: '1h', min: '10m', max: '24h' }),
  FOLLOW_UP_GROUP: env.optionalText('an EventBridge Scheduler group name (1-64 letters, digits, - _ .)', /^[0-9A-Za-z_.-]{1,64}$/),
  FOLLOW_UP_ROLE_ARN: z.optional(env.arn('iam')),
  FOLLOW_UP_TARGET_ARN: z.optional(env.arn('lambda')),
};

export interface FollowUpTarget {
  /** The dedicated schedule group; every follow-up schedule is created in it. */
  readonly group: string;
  /** The role EventBridge Scheduler assumes to invoke the target. */
  readonly roleArn: string;
  /** This function's ARN. */
  readonly targetArn: string;
}

export interface ReplaceConfig extends ReplacePolicy {
  readonly asgName: string;
  readonly targetGroupArn: string;
  /** Set when the three FOLLOW_UP_* variables are: marks then schedule their follow-up. */
  readonly followUp?: FollowUpTarget;
  readonly policy: ReplacePolicy;
}

export function loadReplaceUnhealthyInstancesConfig(source: Readonly<Record<string, string | undefined>>) {
  return loadConfig(shape, source, (v): ReplaceConfig => {
    const followUp = followUpOf(v.FOLLOW_UP_GROUP, v.FOLLOW_UP_ROLE_ARN, v.FOLLOW_UP_TARGET_ARN);
    const policy: ReplacePolicy = Object.freeze({
      targetGroupArn: v.TARGET_GROUP_ARN,
      maxReplacementsPerRun: v.MAX_REPLACEMENTS_PER_RUN,
      maxUnhealthyPercent: v.MAX_UNHEALTHY_PERCENT,
      gracePeriodMs: v.GRACE_PERIOD,
      unhealthyConfirmMs: v.UNHEALTHY_CONFIRM,
      replacementTimeoutMs: v.REPLACEMENT_TIMEOUT,
      replacementBudget: v.REPLACEMENT_BUDGET,
      replacementBudgetWindowMs: v.REPLACEMENT_BUDGET_WINDOW,
      ...(followUp ? { followUps: true } : {}),
    });
    return { ...policy, asgName: v.ASG_NAME, ...(followUp ? { followUp } : {}), policy };
  });
}

/** All three or none: a follow-up needs its group, the role Scheduler assumes and the function to invoke. */
function followUpOf(group?: string, roleArn?: string, targetArn?: string): FollowUpTarget | undefined {
  const given = { FOLLOW_UP_GROUP: group, FOLLOW_UP_ROLE_ARN: roleArn, FOLLOW_UP_TARGET_ARN: targetArn };
  const missing = Object.entries(given)
    .filter(([, v]) => v === undefined)
    .map(([k]) => k);
  if (missing.length === 3) return undefined;
  if (missing.length > 0 || !group || !roleArn || !targetArn) {
    const expected = 'expected FOLLOW_UP_GROUP, FOLLOW_UP_ROLE_ARN and FOLLOW_UP_TARGET_ARN together, or none';
    throw new ConfigError(`invalid configuration: ${missing.join(', ')} missing: ${expected}`);
  }
  return { group, roleArn, targetArn };
}

export type ReplaceUnhealthyInstancesConfig = ReturnType<typeof loadReplaceUnhealthyInstancesConfig>;

/**
 * The stack's side of this environment (infra/constructs/jobs/replace-unhealthy-instances.ts): the same `shape`, so names cannot drift;
 * what each variable means is what docs/configuration.md says (npm run docs:config).
 */
export const replaceUnhealthyInstancesEnvironment = defineEnvironment(shape, {
  ASG_NAME: 'the registry Auto Scaling group',
  TARGET_GROUP_ARN: 'the registry target group (its health is the main signal)',
  MAX_REPLACEMENTS_PER_RUN: 'replacements started per run',
  MAX_UNHEALTHY_PERCENT: 'circuit breaker: replace nothing when more than this % of InService members is unhealthy',
  GRACE_PERIOD: 'never replace an instance younger than this (since EC2 launch)',
  UNHEALTHY_CONFIRM: 'seen unhealthy this long (marked by an earlier run) before replacing; `0` replaces at first sighting',
  REPLACEMENT_TIMEOUT:
    'capacity-preserving path: after this long a `replacing` tag is reported `replacement-stalled` and removed, never acted on',
  REPLACEMENT_BUDGET: 'at most this many replacements start per window; past it `replacement-budget-exhausted`',
  REPLACEMENT_BUDGET_WINDOW: "the replacement budget's window",
  FOLLOW_UP_GROUP: 'follow-ups (set by the stack; all three FOLLOW_UP_* or none): the schedule group; unset: no follow-ups',
  FOLLOW_UP_ROLE_ARN: 'follow-ups: the role EventBridge Scheduler assumes to invoke this function',
  FOLLOW_UP_TARGET_ARN: "follow-ups: this function's ARN",
});
