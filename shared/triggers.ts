import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { UnsupportedEventError, ValidationError } from './errors.ts';

/**
 * Every way a job can be started (ARCHITECTURE §3), normalised into one union. Handlers call `toTrigger`
 * first; nothing downstream sees a raw AWS event.
 */
export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

export type Trigger<Options = Record<string, unknown>> =
  | { kind: 'schedule'; source: 'eventbridge-rule' | 'scheduler'; schedule: string; time?: string }
  | {
      kind: 'alarm';
      source: 'eventbridge' | 'alarm-action' | 'sns';
      alarmName: string;
      state: AlarmState;
      previousState?: AlarmState;
      /** Metric dimensions of the alarm (`TargetGroup`, `InstanceId`, `AutoScalingGroupName`, …). */
      dimensions: Record<string, string>;
      time?: string;
    }
  | { kind: 'parameter-change'; name: string; operation: string; time?: string }
  | { kind: 'certificate-expiry'; certificateArn: string; daysToExpiry?: number; time?: string }
  /**
   * A follow-up a job arranged for itself (an EventBridge Scheduler one-time schedule whose input is
   * `followUpInput(...)`): look at `target` again, the way `job` asked, at the time it asked for.
   */
  | { kind: 'follow-up'; source: 'scheduler'; job: string; target: string; since?: string; schedule: string; time?: string }
  /** Events that are recognised and deliberately do nothing (ASG `autoscaling:TEST_NOTIFICATION`). */
  | { kind: 'ignored'; reason: string }
  | { kind: 'manual'; dryRun: boolean; reason?: string; options: Options };

export type TriggerKind = Trigger['kind'];

/** A manual payload's job-specific keys, as a zod shape. `dryRun` and `reason` are added for every job. */
export type ManualOptionsShape = z.core.$ZodShape;

// zod/mini loads no locale: English, as zod classic, for the few issues without our own message.
z.config(en());

const ALARM_STATES = new Set<string>(['OK', 'ALARM', 'INSUFFICIENT_DATA']);

/** The `source` and `detail-type` of a follow-up's input: the control plane's own, never an AWS event's. */
export const FOLLOW_UP_SOURCE = 'registry.control-plane';
export const FOLLOW_UP_DETAIL_TYPE = 'Follow-up';

/**
 * The input of a follow-up schedule. `<aws.scheduler.…>` are Scheduler's context attributes: it fills in the
 * schedule's ARN and the time it fired when it invokes the target.
 */
export function followUpInput(follow: { job: string; target: string; since?: string }): Record<string, unknown> {
  return {
    source: FOLLOW_UP_SOURCE,
    'detail-type': FOLLOW_UP_DETAIL_TYPE,
    scheduleArn: '<aws.scheduler.schedule-arn>',
    scheduledTime: '<aws.scheduler.scheduled-time>',
    detail: { job: follow.job, target: follow.target, ...(follow.since ? { since: follow.since } : {}) },
  };
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

/**
 * Normalise `event`. `manualOptions` is the job's strict schema for manual payload keys: an unknown key, or a
 * key of the wrong form, throws ValidationError naming it. Anything unrecognisable throws UnsupportedEventError.
 */
export function toTrigger<Shape extends ManualOptionsShape>(
  event: unknown,
  manualOptions: Shape = {} as Shape,
): Trigger<z.output<z.ZodMiniObject<Shape>>> {
  if (!isObject(event)) throw new UnsupportedEventError(describe(event));
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

function fromEventBridge(event: Json): Trigger<never> | undefined {
  const detailType = event['detail-type'];
  if (typeof detailType !== 'string' && event.source === 'aws.scheduler') {
    return { kind: 'schedule', source: 'scheduler', schedule: str(event.scheduleArn) ?? 'unknown', ...time(event.scheduledTime) };
  }
  if (typeof detailType !== 'string') return undefined;
  const detail = isObject(event.detail) ? event.detail : {};
  const resources = Array.isArray(event.resources) ? event.resources.filter((r): r is string => typeof r === 'string') : [];
  switch (`${String(event.source)}|${detailType}`) {
    case 'aws.events|Scheduled Event':
      return { kind: 'schedule', source: 'eventbridge-rule', schedule: resources[0] ?? 'unknown', ...time(event.time) };
    case 'aws.cloudwatch|CloudWatch Alarm State Change':
      return alarm('eventbridge', detail, event.time);
    case 'aws.ssm|Parameter Store Change': {
      const name = str(detail.name);
      const operation = str(detail.operation);
      if (!name || !operation) throw new UnsupportedEventError('Parameter Store Change without detail.name/detail.operation');
      return { kind: 'parameter-change', name, operation, ...time(event.time) };
    }
    case 'aws.acm|ACM Certificate Approaching Expiration': {
      const certificateArn = resources[0];
      if (!certificateArn) throw new UnsupportedEventError('ACM Certificate Approaching Expiration without resources[0]');
      const days = detail.DaysToExpiry;
      return {
        kind: 'certificate-expiry',
        certificateArn,
        ...(typeof days === 'number' ? { daysToExpiry: days } : {}),
        ...time(event.time),
      };
    }
    case `${FOLLOW_UP_SOURCE}|${FOLLOW_UP_DETAIL_TYPE}`:
      return followUp(detail, event);
    default:
      throw new UnsupportedEventError(`EventBridge event source=${String(event.source)} detail-type=${detailType}`);
  }
}

function followUp(detail: Json, event: Json): Trigger<never> {
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

/** A CloudWatch alarm action that invokes the Lambda directly: `{ source: 'aws.cloudwatch', alarmData }`. */
function fromAlarmAction(event: Json): Trigger<never> | undefined {
  if (!isObject(event.alarmData)) return undefined;
  return alarm('alarm-action', event.alarmData, event.time);
}

/** Shared by EventBridge `detail` and direct `alarmData`: same field names. */
function alarm(source: 'eventbridge' | 'alarm-action', data: Json, at: unknown): Trigger<never> {
  const alarmName = str(data.alarmName);
  const state = isObject(data.state) ? data.state.value : undefined;
  if (!alarmName || typeof state !== 'string' || !ALARM_STATES.has(state)) {
    throw new UnsupportedEventError(`alarm event without alarmName/state.value (source ${source})`);
  }
  const previous = isObject(data.previousState) ? data.previousState.value : undefined;
  const dimensions: Record<string, string> = {};
  const configuration = isObject(data.configuration) ? data.configuration : {};
  for (const m of Array.isArray(configuration.metrics) ? configuration.metrics : []) {
    const metric = isObject(m) && isObject(m.metricStat) && isObject(m.metricStat.metric) ? m.metricStat.metric : undefined;
    if (metric && isObject(metric.dimensions)) {
      for (const [k, v] of Object.entries(metric.dimensions)) if (typeof v === 'string') dimensions[k] = v;
    }
  }
  return {
    kind: 'alarm',
    source,
    alarmName,
    state: state as AlarmState,
    ...(typeof previous === 'string' && ALARM_STATES.has(previous) ? { previousState: previous as AlarmState } : {}),
    dimensions,
    ...time(at),
  };
}

/** An alarm notification delivered through SNS: `Records[0].Sns.Message` is the alarm as JSON. */
function fromSns(event: Json): Trigger<never> | undefined {
  if (!Array.isArray(event.Records)) return undefined;
  const record = event.Records[0];
  if (event.Records.length !== 1 || !isObject(record) || !isObject(record.Sns) || typeof record.Sns.Message !== 'string') {
    throw new UnsupportedEventError(`Records event that is not one SNS message (${event.Records.length} records)`);
  }
  let message: unknown;
  try {
    message = JSON.parse(record.Sns.Message);
  } catch {
    throw new UnsupportedEventError('SNS message that is not JSON');
  }
  if (!isObject(message) || !str(message.AlarmName) || !ALARM_STATES.has(String(message.NewStateValue))) {
    throw new UnsupportedEventError('SNS message that is not a CloudWatch alarm (no AlarmName/NewStateValue)');
  }
  const dimensions: Record<string, string> = {};
  const trig = isObject(message.Trigger) ? message.Trigger : {};
  const dimensionLists = [
    trig.Dimensions,
    ...(Array.isArray(trig.Metrics)
      ? trig.Metrics.map((m) =>
          isObject(m) && isObject(m.MetricStat) && isObject(m.MetricStat.Metric) ? m.MetricStat.Metric.Dimensions : undefined,
        )
      : []),
  ];
  for (const list of dimensionLists) {
    for (const d of Array.isArray(list) ? list : []) {
      const name = isObject(d) ? (str(d.name) ?? str(d.Name)) : undefined;
      const value = isObject(d) ? (str(d.value) ?? str(d.Value)) : undefined;
      if (name && value) dimensions[name] = value;
    }
  }
  const previous = String(message.OldStateValue);
  return {
    kind: 'alarm',
    source: 'sns',
    alarmName: message.AlarmName as string,
    state: message.NewStateValue as AlarmState,
    ...(ALARM_STATES.has(previous) ? { previousState: previous as AlarmState } : {}),
    dimensions,
    ...time(message.StateChangeTime ?? record.Sns.Timestamp),
  };
}

function fromAutoScaling(event: Json): Trigger<never> | undefined {
  if (event.Event === 'autoscaling:TEST_NOTIFICATION') return { kind: 'ignored', reason: 'autoscaling:TEST_NOTIFICATION' };
  return undefined;
}

function toManual<Shape extends ManualOptionsShape>(event: Json, shape: Shape): Trigger<z.output<z.ZodMiniObject<Shape>>> {
  if (typeof event.source === 'string' && /^aws\./.test(event.source)) {
    throw new UnsupportedEventError(`AWS event source=${event.source} without a detail-type`);
  }
  const schema = z.strictObject({
    dryRun: z.optional(z.boolean({ error: 'expected true or false' })),
    reason: z.optional(z.string({ error: 'expected a short text' }).check(z.maxLength(500, { error: 'expected at most 500 characters' }))),
    ...shape,
  });
  const result = schema.safeParse(event);
  if (!result.success) throw new ValidationError(`invalid manual payload: ${describeIssues(result.error, schema)}`);
  const { dryRun, reason, ...options } = result.data as { dryRun?: boolean; reason?: string } & Record<string, unknown>;
  return { kind: 'manual', dryRun: dryRun === true, ...(reason ? { reason } : {}), options: options as z.output<z.ZodMiniObject<Shape>> };
}

function describeIssues(error: z.core.$ZodError, schema: z.ZodMiniObject): string {
  const allowed = Object.keys(schema.shape).join(', ');
  return error.issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `unknown key "${k}" (allowed keys: ${allowed})`).join('; ');
      }
      const path = issue.path.map(String).join('.') || '(payload)';
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}

function time(value: unknown): { time?: string } {
  return typeof value === 'string' && value.length > 0 ? { time: value } : {};
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

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
