import type * as z from 'zod/mini';
import { UnsupportedEventError, ValidationError } from './errors.ts';
import { fromAlarmAction, fromAlarmStateChange, fromSns } from './triggers/alarm.ts';
import { fromAutoScaling } from './triggers/auto-scaling.ts';
import { fromCertificateApproachingExpiration } from './triggers/certificate-expiry.ts';
import { describeValue, isObject, type Json } from './triggers/fields.ts';
import { FOLLOW_UP_DETAIL_TYPE, FOLLOW_UP_SOURCE, fromFollowUp } from './triggers/follow-up.ts';
import { toManual } from './triggers/manual.ts';
import { fromParameterStoreChange } from './triggers/parameter-change.ts';
import { fromScheduledEvent, fromScheduler } from './triggers/schedule.ts';
import type { ManualOptionsShape, Trigger } from './triggers/trigger.ts';

/**
 * Every way a job can be started (ARCHITECTURE §3), normalised into one `Trigger`: one module per event source in
 * shared/triggers/, composed here. Handlers call `toTrigger` first; nothing downstream sees a raw AWS event.
 */

export type { AlarmState, ManualOptionsShape, Trigger, TriggerKind } from './triggers/trigger.ts';
export { correlationIdOf } from './triggers/correlation.ts';
export { FOLLOW_UP_DETAIL_TYPE, FOLLOW_UP_SOURCE, followUpInput } from './triggers/follow-up.ts';

/**
 * Normalise `event`. `manualOptions` is the job's strict schema for manual payload keys: an unknown key, or a
 * key of the wrong form, throws ValidationError naming it. Anything unrecognisable throws UnsupportedEventError.
 */
export function toTrigger<Shape extends ManualOptionsShape>(
  event: unknown,
  manualOptions: Shape = {} as Shape,
): Trigger<z.output<z.ZodMiniObject<Shape>>> {
  if (!isObject(event)) throw new UnsupportedEventError(describeValue(event));
  const aws = fromEventBridge(event) ?? fromAlarmAction(event) ?? fromSns(event) ?? fromAutoScaling(event);
  if (!aws) return toManual(event, manualOptions);
  if (event.dryRun !== undefined && typeof event.dryRun !== 'boolean')
    throw new ValidationError('invalid payload: dryRun: expected true or false');
  return aws;
}

/**
 * Whether the event itself asks for a dry run: `"dryRun": true` at its top level, on a manual payload or on a
 * copied AWS event (an operator previewing a sample schedule or alarm). It can only make a run safer.
 */
export function asksForDryRun(event: unknown): boolean {
  return isObject(event) && event.dryRun === true;
}

/** EventBridge events by `source` and `detail-type`, and Scheduler's input (no detail-type); else undefined. */
function fromEventBridge(event: Json): Trigger<never> | undefined {
  const detailType = event['detail-type'];
  if (typeof detailType !== 'string' && event.source === 'aws.scheduler') return fromScheduler(event);
  if (typeof detailType !== 'string') return undefined;
  switch (`${String(event.source)}|${detailType}`) {
    case 'aws.events|Scheduled Event':
      return fromScheduledEvent(event);
    case 'aws.cloudwatch|CloudWatch Alarm State Change':
      return fromAlarmStateChange(event);
    case 'aws.ssm|Parameter Store Change':
      return fromParameterStoreChange(event);
    case 'aws.acm|ACM Certificate Approaching Expiration':
      return fromCertificateApproachingExpiration(event);
    case `${FOLLOW_UP_SOURCE}|${FOLLOW_UP_DETAIL_TYPE}`:
      return fromFollowUp(event);
    default:
      throw new UnsupportedEventError(`EventBridge event source=${String(event.source)} detail-type=${detailType}`);
  }
}
