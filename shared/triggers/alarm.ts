import type { CloudWatchAlarmData, CloudWatchAlarmEvent, CloudWatchAlarmState, EventBridgeEvent, SNSEvent, SNSMessage } from 'aws-lambda';
import { UnsupportedEventError } from '../errors.ts';
import { isObject, isShaped, str, time, type Json, type Untrusted } from './fields.ts';
import type { AlarmState, Trigger } from './trigger.ts';

/**
 * A CloudWatch alarm arrives three ways (ARCHITECTURE §3), all normalised into one `alarm` trigger: an EventBridge
 * `CloudWatch Alarm State Change`, an alarm action invoking the Lambda directly (`alarmData`), or an alarm
 * notification delivered through SNS.
 */

const ALARM_STATES = new Set<string>(['OK', 'ALARM', 'INSUFFICIENT_DATA']);

export type AlarmStateChangeEvent = EventBridgeEvent<'CloudWatch Alarm State Change', CloudWatchAlarmData>;

/**
 * The JSON an alarm publishes to SNS (`Records[0].Sns.Message`; @types/aws-lambda has no type for it): a single
 * metric alarm names its dimensions in `Trigger.Dimensions`, a metric-math alarm in `Trigger.Metrics[].MetricStat`.
 */
export interface AlarmSnsMessage {
  AlarmName: string;
  NewStateValue: string;
  OldStateValue: string;
  StateChangeTime: string;
  Trigger: { Dimensions?: SnsDimension[]; Metrics?: { MetricStat?: { Metric?: { Dimensions?: SnsDimension[] } } }[] };
}
/** SNS alarm messages spell dimensions `{ name, value }`; some senders `{ Name, Value }`. */
type SnsDimension = { name?: string; value?: string; Name?: string; Value?: string };

export function fromAlarmStateChange(event: Untrusted<AlarmStateChangeEvent>): Trigger<never> {
  return alarm('eventbridge', isObject(event.detail) ? event.detail : {}, event.time);
}

/** A CloudWatch alarm action that invokes the Lambda directly: `{ source: 'aws.cloudwatch', alarmData }`. */
export function fromAlarmAction(event: Untrusted<CloudWatchAlarmEvent>): Trigger<never> | undefined {
  if (!isObject(event.alarmData)) return undefined;
  return alarm('alarm-action', event.alarmData, event.time);
}

/** Shared by EventBridge `detail` and direct `alarmData`: same field names. */
function alarm(source: 'eventbridge' | 'alarm-action', data: Untrusted<CloudWatchAlarmData>, at: unknown): Trigger<never> {
  const alarmName = str(data.alarmName);
  const state = isShaped<CloudWatchAlarmState>(data.state) ? data.state.value : undefined;
  if (!alarmName || typeof state !== 'string' || !ALARM_STATES.has(state)) {
    throw new UnsupportedEventError(`alarm event without alarmName/state.value (source ${source})`);
  }
  const previous = isShaped<CloudWatchAlarmState>(data.previousState) ? data.previousState.value : undefined;
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
export function fromSns(event: Untrusted<SNSEvent>): Trigger<never> | undefined {
  if (!Array.isArray(event.Records)) return undefined;
  const record: unknown = event.Records[0];
  if (event.Records.length !== 1 || !isObject(record) || !isShaped<SNSMessage>(record.Sns) || typeof record.Sns.Message !== 'string') {
    throw new UnsupportedEventError(`Records event that is not one SNS message (${event.Records.length} records)`);
  }
  let message: unknown;
  try {
    message = JSON.parse(record.Sns.Message);
  } catch {
    throw new UnsupportedEventError('SNS message that is not JSON');
  }
  if (!isShaped<AlarmSnsMessage>(message) || !str(message.AlarmName) || !ALARM_STATES.has(String(message.NewStateValue))) {
    throw new UnsupportedEventError('SNS message that is not a CloudWatch alarm (no AlarmName/NewStateValue)');
  }
  const previous = String(message.OldStateValue);
  return {
    kind: 'alarm',
    source: 'sns',
    alarmName: message.AlarmName as string,
    state: message.NewStateValue as AlarmState,
    ...(ALARM_STATES.has(previous) ? { previousState: previous as AlarmState } : {}),
    dimensions: snsDimensions(isObject(message.Trigger) ? message.Trigger : {}),
    ...time(message.StateChangeTime ?? record.Sns.Timestamp),
  };
}

function snsDimensions(trigger: Json): Record<string, string> {
  const dimensions: Record<string, string> = {};
  const dimensionLists = [
    trigger.Dimensions,
    ...(Array.isArray(trigger.Metrics)
      ? trigger.Metrics.map((m) =>
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
  return dimensions;
}
