import { ValidationError } from '../errors.ts';
import { isShaped, str, time, type Untrusted } from './fields.ts';
import type { SchedulerInput } from './schedule.ts';
import type { Trigger } from './trigger.ts';

/** The `source` and `detail-type` of a follow-up's input: the control plane's own, never an AWS event's. */
export const FOLLOW_UP_SOURCE = 'registry.control-plane';
export const FOLLOW_UP_DETAIL_TYPE = 'Follow-up';

export interface FollowUpDetail {
  job: string;
  target: string;
  since?: string;
}

/** What a follow-up schedule sends: Scheduler's context attributes plus the job's own detail. */
export interface FollowUpInput extends Omit<SchedulerInput, 'source'> {
  source: typeof FOLLOW_UP_SOURCE;
  'detail-type': typeof FOLLOW_UP_DETAIL_TYPE;
  detail: FollowUpDetail;
}

/**
 * The input of a follow-up schedule. `<aws.scheduler.…>` are Scheduler's context attributes: it fills in the
 * schedule's ARN and the time it fired when it invokes the target.
 */
export function followUpInput(follow: FollowUpDetail): Record<string, unknown> {
  const input: FollowUpInput = {
    source: FOLLOW_UP_SOURCE,
    'detail-type': FOLLOW_UP_DETAIL_TYPE,
    scheduleArn: '<aws.scheduler.schedule-arn>',
    scheduledTime: '<aws.scheduler.scheduled-time>',
    detail: { job: follow.job, target: follow.target, ...(follow.since ? { since: follow.since } : {}) },
  };
  return { ...input };
}

export function fromFollowUp(event: Untrusted<FollowUpInput>): Trigger<never> {
  const detail = isShaped<FollowUpDetail>(event.detail) ? event.detail : {};
  const job = str(detail.job);
  const target = str(detail.target);
  if (!job || !target)
    throw new ValidationError(
      `invalid follow-up: detail.job and detail.target: expected two non-empty strings, got ${JSON.stringify(detail)}`,
    );
  const since = str(detail.since);
  return {
    kind: 'follow-up',
    source: 'scheduler',
    job,
    target,
    ...(since ? { since } : {}),
    schedule: str(event.scheduleArn) ?? 'unknown',
    ...time(event.scheduledTime),
  };
}
