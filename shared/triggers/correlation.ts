import { isObject, str } from './fields.ts';
import type { Trigger } from './trigger.ts';

/** Correlation ids longer than this are cut (a manual `reason` may be up to 500 characters). */
const CORRELATION_ID_MAX = 200;

/**
 * The id that ties a run's log lines, report, history object and notification to what started it: the
 * EventBridge event's `id` (schedules, alarm state changes, parameter changes, ACM events), the alarm's name
 * (an alarm action or an SNS-wrapped alarm, with its state-change time), the manual payload's `reason`, or
 * else the Lambda request id.
 */
export function correlationIdOf(event: unknown, trigger: Trigger<unknown>, requestId?: string): string {
  const fallback = requestId ?? 'local';
  const id = isObject(event) ? str(event.id) : undefined;
  const chosen = (() => {
    if (id && trigger.kind !== 'manual') return id;
    if (trigger.kind === 'alarm') return trigger.time ? `${trigger.alarmName}@${trigger.time}` : trigger.alarmName;
    if (trigger.kind === 'manual') return trigger.reason ?? `manual-${fallback}`;
    return id ?? fallback;
  })();
  return chosen.length > CORRELATION_ID_MAX ? chosen.slice(0, CORRELATION_ID_MAX) : chosen;
}
