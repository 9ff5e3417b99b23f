import {
  CreateOrUpdateTagsCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeTagsCommand,
  SetDesiredCapacityCommand,
  SetInstanceHealthCommand,
  TerminateInstanceInAutoScalingGroupCommand,
  type AutoScalingClient,
} from '@aws-sdk/client-auto-scaling';
import { CreateTagsCommand, DeleteTagsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { CreateScheduleCommand, DeleteScheduleCommand, type SchedulerClient } from '@aws-sdk/client-scheduler';
import { describeError, errorName } from '../../shared/errors.ts';
import { applyEach, type Outcome, type Outcomes, type RunContext } from '../../shared/job.ts';
import type { JobName } from '../../shared/job-names.ts';
import { logger } from '../../shared/observability.ts';
import { followUpInput } from '../../shared/triggers.ts';
import type { FollowUpTarget } from './config.ts';
import {
  LEDGER_MAX,
  parseReplacementLog,
  REPLACEMENTS_TAG,
  REPLACING_TAG,
  replacingTagValue,
  toSecond,
  UNHEALTHY_SINCE_TAG,
  type ReplaceAction,
  type ReplacementPlan,
} from './model.ts';

/**
 * The writes, one branch per action kind. Idempotent: an instance that is already gone counts as done, a
 * follow-up already scheduled counts as done, and every step leaves a marker tag a later run reads, so a
 * re-run mid-replacement never acts twice.
 */

export interface ApplyClients {
  readonly autoScaling: AutoScalingClient;
  readonly ec2: EC2Client;
  readonly scheduler: SchedulerClient;
}

/** What apply reads of the config. */
export interface ApplyConfig {
  readonly asgName: string;
  readonly replacementBudgetWindowMs: number;
  readonly followUp?: FollowUpTarget;
}

export type ApplyRun = Pick<RunContext<ApplyConfig>, 'config' | 'signal' | 'now'>;

/** Errors that mean the instance is no longer there (terminated, or left the group). */
function isGone(error: unknown): boolean {
  const name = errorName(error);
  if (name === 'InvalidInstanceID.NotFound' || name === 'InvalidInstanceID.Malformed') return true;
  return name === 'ValidationError' && /not found|not part of|not a member|does not exist/i.test((error as Error).message);
}

/**
 * The plan, one action at a time, stopping at the first failure: each write is a step of a replacement that the
 * next run reads back, and a later step on top of a failed one (a second raise, a terminate) would act on a
 * state the plan did not see. The actions not started are reported `not started: stopped after a failure`.
 */
export function apply(
  { actions }: Pick<ReplacementPlan, 'actions'>,
  ctx: ApplyRun & Pick<RunContext<ApplyConfig>, 'hasTime'>,
  clients: ApplyClients,
): Promise<Outcomes> {
  return applyEach(actions, ctx, (action) => applyAction(action, ctx, clients), { stopOnFailure: true });
}

async function applyAction(action: ReplaceAction, ctx: ApplyRun, clients: ApplyClients): Promise<Outcome> {
  try {
    return await applyOne(action, ctx, clients);
  } catch (error) {
    if (isGone(error)) return { status: 'skipped', reason: `${action.target} is no longer there: nothing to do` };
    throw error;
  }
}

async function applyOne(action: ReplaceAction, ctx: ApplyRun, clients: ApplyClients): Promise<Outcome> {
  const id = action.target;
  const opts = { abortSignal: ctx.signal };
  switch (action.type) {
    case 'mark-unhealthy':
      await clients.ec2.send(
        new CreateTagsCommand({ Resources: [id], Tags: [{ Key: UNHEALTHY_SINCE_TAG, Value: action.markedAt ?? '' }] }),
        opts,
      );
      return { status: 'applied', detail: { tag: UNHEALTHY_SINCE_TAG } };
    case 'unmark': {
      await clients.ec2.send(new DeleteTagsCommand({ Resources: [id], Tags: [{ Key: UNHEALTHY_SINCE_TAG }] }), opts);
      if (!action.followUp) return { status: 'applied', detail: { tag: UNHEALTHY_SINCE_TAG } };
      const cancelled = await cancelFollowUp(action.followUp, ctx, clients);
      return { status: 'applied', detail: { tag: UNHEALTHY_SINCE_TAG, followUpCancelled: cancelled } };
    }
    case 'schedule-follow-up':
      return scheduleFollowUp(action, ctx, clients);
    case 'set-instance-health':
      if (action.forced) logger.warn('FORCED replacement past the open circuit breaker', { instanceId: id, reason: action.reason });
      await countReplacement(ctx, clients);
      // ShouldRespectGracePeriod false: this job already applied its own GRACE_PERIOD; respecting the
      // group's grace would make the call a silent no-op for an instance the plan decided to replace.
      await clients.autoScaling.send(
        new SetInstanceHealthCommand({ InstanceId: id, HealthStatus: 'Unhealthy', ShouldRespectGracePeriod: false }),
        opts,
      );
      return { status: 'applied', detail: { path: 'set-instance-health' } };
    case 'raise-desired':
      return raiseDesired(action, ctx, clients);
    case 'terminate-replaced':
      await clients.autoScaling.send(
        new TerminateInstanceInAutoScalingGroupCommand({ InstanceId: id, ShouldDecrementDesiredCapacity: true }),
        opts,
      );
      return { status: 'applied', detail: { path: 'launch-then-terminate', decremented: true } };
    case 'undo-raise': {
      // The plan saw exactly this job's raise in effect; a scale since then makes its absolute value stale.
      const changed = await desiredChanged(ctx, clients, action.desiredFrom);
      if (changed) return { status: 'skipped', reason: `${changed}: the raise is not undone (the next run decides afresh)` };
      // Tag first: a run that dies between the two leaves one instance too many (the safe side), never a tag over
      // desired = before, which a later unrelated +1 scale-out would make look like this job's raise.
      await clients.ec2.send(new DeleteTagsCommand({ Resources: [id], Tags: [{ Key: REPLACING_TAG }] }), opts);
      await setDesired(ctx, clients, action.desiredTo);
      return { status: 'applied', detail: { desiredTo: action.desiredTo, tag: REPLACING_TAG } };
    }
    case 'expire-replacing':
      await clients.ec2.send(new DeleteTagsCommand({ Resources: [id], Tags: [{ Key: REPLACING_TAG }] }), opts);
      return { status: 'applied', detail: { tag: REPLACING_TAG } };
    case 'replace-instance':
      return { status: 'skipped', reason: action.reason };
  }
}

async function setDesired(ctx: ApplyRun, clients: ApplyClients, desired: number | undefined): Promise<void> {
  if (desired === undefined) throw new Error('SetDesiredCapacity: no desired capacity in the action; refusing');
  await clients.autoScaling.send(
    new SetDesiredCapacityCommand({ AutoScalingGroupName: ctx.config.asgName, DesiredCapacity: desired, HonorCooldown: false }),
    { abortSignal: ctx.signal },
  );
}

/**
 * The replacement budget's ledger, written BEFORE the replacement: a run that dies between the two has counted
 * one replacement too many (the safe side). The tag is re-read here rather than taken from the observation, so
 * an entry written since is never lost.
 */
async function countReplacement(ctx: ApplyRun, clients: ApplyClients): Promise<void> {
  const opts = { abortSignal: ctx.signal };
  const { asgName, replacementBudgetWindowMs } = ctx.config;
  const filters = [
    { Name: 'auto-scaling-group', Values: [asgName] },
    { Name: 'key', Values: [REPLACEMENTS_TAG] },
  ];
  const found = await clients.autoScaling.send(new DescribeTagsCommand({ Filters: filters }), opts);
  const now = ctx.now.getTime();
  const kept = parseReplacementLog(found.Tags?.find((t) => t.Key === REPLACEMENTS_TAG)?.Value).filter(
    (t) => now - Date.parse(t) < replacementBudgetWindowMs,
  );
  const value = [...kept, toSecond(ctx.now)].slice(-LEDGER_MAX).join(' ');
  const tag = { ResourceId: asgName, ResourceType: 'auto-scaling-group', Key: REPLACEMENTS_TAG, Value: value, PropagateAtLaunch: false };
  await clients.autoScaling.send(new CreateOrUpdateTagsCommand({ Tags: [tag] }), opts);
}

/**
 * The group's desired capacity right now, when it is not `expected` (what the plan decided from): a message
 * saying so; undefined when it still is. Read right before a write that sets an absolute value, so a scale-out
 * or scale-in since the observation is never overwritten.
 */
async function desiredChanged(ctx: ApplyRun, clients: ApplyClients, expected: number | undefined): Promise<string | undefined> {
  const { asgName } = ctx.config;
  const res = await clients.autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [asgName] }), {
    abortSignal: ctx.signal,
  });
  const now = res.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === asgName)?.DesiredCapacity;
  return now === expected ? undefined : `desired capacity of ${asgName} is now ${now ?? 'unknown'}, not the ${expected} the plan saw`;
}

/**
 * Capacity-preserving path, phase 1: raise desired capacity by one, then tag the instance (the memory of later
 * runs: the time and the desired capacity before the raise). Raise first: a tag then always means a raise that
 * happened, so a run that dies between the two leaves one instance too many (the safe side, visible as desired
 * above the healthy members) rather than a tag that a later unrelated scale-out would make look like the job's
 * raise, which the job would then take back by shrinking the group.
 */
async function raiseDesired(action: ReplaceAction, ctx: ApplyRun, clients: ApplyClients): Promise<Outcome> {
  const opts = { abortSignal: ctx.signal };
  const id = action.target;
  const { desiredFrom, desiredTo } = action;
  if (desiredFrom === undefined || desiredTo !== desiredFrom + 1) {
    const error = `raise-desired: expected desired capacity n → n + 1, got ${desiredFrom} → ${desiredTo}; refusing`;
    return { status: 'failed', error };
  }
  if (action.forced) logger.warn('FORCED replacement past the open circuit breaker', { instanceId: id, reason: action.reason });
  await countReplacement(ctx, clients);
  const changed = await desiredChanged(ctx, clients, desiredFrom);
  if (changed) return { status: 'skipped', reason: `${changed}: not raised (the next run decides on the new value)` };
  try {
    await setDesired(ctx, clients, desiredTo);
  } catch (error) {
    return { status: 'failed', error: `SetDesiredCapacity: ${describeError(error)}; no tag written` };
  }
  const tag = replacingTagValue(action.markedAt ?? '', desiredFrom, action.causes?.includes('named'));
  try {
    await clients.ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: REPLACING_TAG, Value: tag }] }), opts);
  } catch (error) {
    return {
      status: 'failed',
      error: `CreateTags ${REPLACING_TAG}: ${describeError(error)}; ${await takeBackRaise(ctx, clients, desiredFrom, desiredTo)}`,
    };
  }
  return { status: 'applied', detail: { path: 'launch-then-terminate', desiredTo, tag: REPLACING_TAG } };
}

/** An untagged raise is forgotten by the next run: set desired back, only while exactly this raise is in effect. */
async function takeBackRaise(ctx: ApplyRun, clients: ApplyClients, from: number, to: number): Promise<string> {
  try {
    const changed = await desiredChanged(ctx, clients, to);
    if (changed) return `${changed}: raise left in place (one instance too many at most; check the group)`;
    await setDesired(ctx, clients, from);
    return `raise undone, desired ${to} → ${from}`;
  } catch (undo) {
    return `raise NOT undone (${describeError(undo)}): desired stays ${to}; set it back to ${from} if nothing else scaled the group`;
  }
}

/**
 * A one-time EventBridge Scheduler schedule that invokes this function at `action.at` with a follow-up trigger,
 * and deletes itself after it ran. The name is unique per instance and mark, so a second attempt for the same
 * mark is a ConflictException: already scheduled, counted as done.
 */
async function scheduleFollowUp(action: ReplaceAction, ctx: ApplyRun, clients: ApplyClients): Promise<Outcome> {
  const target = ctx.config.followUp;
  if (!target || !action.followUp || !action.at) return { status: 'failed', error: 'schedule-follow-up: FOLLOW_UP_* not configured' };
  // The follow-up invokes this job again: its name, checked against shared/job-names.ts.
  const job = 'replace-unhealthy-instances' satisfies JobName;
  const input = followUpInput({ job, target: action.target, ...(action.markedAt ? { since: action.markedAt } : {}) });
  try {
    await clients.scheduler.send(
      new CreateScheduleCommand({
        Name: action.followUp,
        GroupName: target.group,
        ScheduleExpression: `at(${action.at.slice(0, 19)})`,
        ScheduleExpressionTimezone: 'UTC',
        FlexibleTimeWindow: { Mode: 'OFF' },
        ActionAfterCompletion: 'DELETE',
        Description: `replace-unhealthy-instances: confirm ${action.target} (marked ${action.markedAt})`,
        Target: {
          Arn: target.targetArn,
          RoleArn: target.roleArn,
          Input: JSON.stringify(input),
          // A late follow-up is useless: the 5-minute sweep confirms by then.
          RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 300 },
        },
      }),
      { abortSignal: ctx.signal },
    );
  } catch (error) {
    if (errorName(error) === 'ConflictException')
      return { status: 'skipped', reason: `${action.followUp} is already scheduled: nothing to do` };
    throw error;
  }
  return { status: 'applied', detail: { schedule: action.followUp, group: target.group, at: action.at } };
}

/** Delete a follow-up that has not fired yet; one that already ran deleted itself (ResourceNotFound: done). */
async function cancelFollowUp(name: string, ctx: ApplyRun, clients: ApplyClients): Promise<boolean> {
  const group = ctx.config.followUp?.group;
  if (!group) return false;
  try {
    await clients.scheduler.send(new DeleteScheduleCommand({ Name: name, GroupName: group }), { abortSignal: ctx.signal });
    return true;
  } catch (error) {
    if (errorName(error) === 'ResourceNotFoundException') return false;
    throw error;
  }
}
