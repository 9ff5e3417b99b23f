import {
  SetDesiredCapacityCommand,
  SetInstanceHealthCommand,
  TerminateInstanceInAutoScalingGroupCommand,
  type AutoScalingClient,
} from '@aws-sdk/client-auto-scaling';
import { CreateTagsCommand, DeleteTagsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { describeError, errorName } from '../../shared/errors.ts';
import { applyEach, type ApplyContext, type Outcome } from '../../shared/job.ts';
import { logger } from '../../shared/observability.ts';
import { REPLACING_TAG, replacingTagValue, UNHEALTHY_SINCE_TAG } from './model.ts';
import type { ReplaceAction } from './plan.ts';

/**
 * The writes, one branch per action kind. Idempotent: an instance that is already gone counts as done, and
 * every step leaves a marker tag a later run reads, so a re-run mid-replacement never acts twice.
 */

export interface ApplyClients {
  readonly autoScaling: AutoScalingClient;
  readonly ec2: EC2Client;
}

/** Errors that mean the instance is no longer there (terminated, or left the group). */
function isGone(error: unknown): boolean {
  const name = errorName(error);
  if (name === 'InvalidInstanceID.NotFound' || name === 'InvalidInstanceID.Malformed') return true;
  return name === 'ValidationError' && /not found|not part of|not a member|does not exist/i.test((error as Error).message);
}

export async function applyReplacements<C extends { readonly asgName: string }>(
  actions: readonly ReplaceAction[],
  ctx: ApplyContext<C>,
  clients: ApplyClients,
): Promise<(Outcome | undefined)[]> {
  const opts = { abortSignal: ctx.signal };
  const gone = (id: string): Outcome => ({ status: 'skipped', reason: `${id} is no longer there: nothing to do` });

  return applyEach(
    actions,
    ctx,
    async (action): Promise<Outcome> => {
      const id = action.target;
      try {
        switch (action.type) {
          case 'mark-unhealthy':
            await clients.ec2.send(
              new CreateTagsCommand({ Resources: [id], Tags: [{ Key: UNHEALTHY_SINCE_TAG, Value: action.markedAt ?? '' }] }),
              opts,
            );
            return { status: 'applied', detail: { tag: UNHEALTHY_SINCE_TAG } };
          case 'unmark':
            await clients.ec2.send(new DeleteTagsCommand({ Resources: [id], Tags: [{ Key: UNHEALTHY_SINCE_TAG }] }), opts);
            return { status: 'applied', detail: { tag: UNHEALTHY_SINCE_TAG } };
          case 'set-instance-health':
            if (action.forced) logger.warn('FORCED replacement past the open circuit breaker', { instanceId: id, reason: action.reason });
            // ShouldRespectGracePeriod false: this job already applied its own GRACE_PERIOD; respecting the
            // group's grace would make the call a silent no-op for an instance the plan decided to replace.
            await clients.autoScaling.send(
              new SetInstanceHealthCommand({ InstanceId: id, HealthStatus: 'Unhealthy', ShouldRespectGracePeriod: false }),
              opts,
            );
            return { status: 'applied', detail: { path: 'set-instance-health' } };
          case 'raise-desired':
            return await raiseDesired(action, ctx.config.asgName, clients, opts);
          case 'terminate-replaced':
            await clients.autoScaling.send(
              new TerminateInstanceInAutoScalingGroupCommand({ InstanceId: id, ShouldDecrementDesiredCapacity: true }),
              opts,
            );
            return { status: 'applied', detail: { path: 'launch-then-terminate', decremented: true } };
          case 'replace-instance':
            return { status: 'skipped', reason: action.reason };
        }
      } catch (error) {
        if (isGone(error)) return gone(id);
        throw error;
      }
    },
    { stopOnFailure: true },
  );
}

/**
 * Capacity-preserving path, phase 1: tag the instance (the memory of later runs: the time and the desired
 * capacity before the raise), then raise desired capacity by one. If raising fails, remove the tag again so the
 * next run starts clean (a tag left behind is harmless: the plan terminates only while the raise is in effect).
 */
async function raiseDesired(
  action: ReplaceAction,
  asgName: string,
  clients: ApplyClients,
  opts: { abortSignal: AbortSignal },
): Promise<Outcome> {
  const id = action.target;
  const { desiredFrom, desiredTo } = action;
  if (desiredFrom === undefined || desiredTo !== desiredFrom + 1) {
    const error = `raise-desired: expected desired capacity n → n + 1, got ${desiredFrom} → ${desiredTo}; refusing`;
    return { status: 'failed', error };
  }
  if (action.forced) logger.warn('FORCED replacement past the open circuit breaker', { instanceId: id, reason: action.reason });
  const tag = replacingTagValue(action.markedAt ?? '', desiredFrom);
  await clients.ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: REPLACING_TAG, Value: tag }] }), opts);
  try {
    await clients.autoScaling.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: asgName, DesiredCapacity: desiredTo, HonorCooldown: false }),
      opts,
    );
  } catch (error) {
    let rollback = 'tag removed';
    try {
      await clients.ec2.send(new DeleteTagsCommand({ Resources: [id], Tags: [{ Key: REPLACING_TAG }] }), opts);
    } catch (undo) {
      rollback = `tag NOT removed (${describeError(undo)}): remove ${REPLACING_TAG} from ${id} by hand`;
    }
    return { status: 'failed', error: `SetDesiredCapacity: ${describeError(error)}; ${rollback}` };
  }
  return { status: 'applied', detail: { path: 'launch-then-terminate', desiredTo, tag: REPLACING_TAG } };
}
