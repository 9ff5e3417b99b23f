import type { ScheduledEvent } from 'aws-lambda';
import { str, time, type Untrusted } from './fields.ts';
import type { Trigger } from './trigger.ts';

/**
 * The input an EventBridge Scheduler schedule sends (the stack sets it; Scheduler has no event of its own):
 * `<aws.scheduler.schedule-arn>` and `<aws.scheduler.scheduled-time>` filled in when it fires.
 */
export interface SchedulerInput {
  source: 'aws.scheduler';
  scheduleArn: string;
  scheduledTime: string;
}

/** An EventBridge rule's `Scheduled Event` (rate or cron): the rule is `resources[0]`. */
export function fromScheduledEvent(event: Untrusted<ScheduledEvent>): Trigger<never> {
  const resources = Array.isArray(event.resources) ? event.resources.filter((r): r is string => typeof r === 'string') : [];
  return { kind: 'schedule', source: 'eventbridge-rule', schedule: resources[0] ?? 'unknown', ...time(event.time) };
}

export function fromScheduler(event: Untrusted<SchedulerInput>): Trigger<never> {
  return { kind: 'schedule', source: 'scheduler', schedule: str(event.scheduleArn) ?? 'unknown', ...time(event.scheduledTime) };
}
