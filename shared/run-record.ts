import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { s3Client, snsClient } from './aws.ts';
import type { CommonConfig } from './config.ts';
import { describeError } from './errors.ts';
import { writeHistory, type HistoryRecord } from './history.ts';
import type { Report, ReportAction } from './report.ts';
import { publishNotification, renderNotification } from './notify.ts';
import { logger, metrics } from './observability.ts';

/**
 * What the runner does with a finished report before it logs it (ARCHITECTURE §5): one log line per action, the
 * whole report to the run history, the `RunSucceeded`/`HistoryWriteFailed` metrics, and a notification when the
 * run failed or applied destructive actions. None of it can fail the run: each failure is logged, counted and,
 * for the history, said in the report.
 */

/** The Lambda context fields the record uses (a local invoke or a test may have none of them). */
export interface RecordContext {
  readonly awsRequestId?: string;
  readonly logGroupName?: string;
  readonly functionName?: string;
}

export interface RecordOptions {
  readonly signal?: AbortSignal;
  /** The run's job-specific metrics (Summary.metrics): some of them ask for a person (shared/notify.ts ATTENTION_METRICS). */
  readonly metrics?: Readonly<Record<string, number>>;
  /** The Lambda's own log group when the context does not say (AWS_LAMBDA_LOG_GROUP_NAME). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Record `report`, whose `actions` may be the log line's cut; `allActions` is every action of the run.
 * Returns the report with `history` set (`{ key }`, or `{ key, error }` when the write failed).
 */
export async function recordRun(
  report: Report,
  allActions: readonly ReportAction[],
  config: RecordConfig,
  context: RecordContext = {},
  { signal, metrics: runMetrics = {}, env = process.env }: RecordOptions = {},
): Promise<Report> {
  logActions(allActions);
  const requestId = context.awsRequestId ?? `local-${Date.parse(report.startedAt).toString(36)}`;
  const whole: Report = { ...report, actions: [...allActions], truncated: false };
  const history = config.history ? await writeHistory(s3Client(), config.history, whole, requestId, signal) : undefined;
  if (history && 'error' in history) {
    logger.error('history write failed', { history });
    metrics.addMetric('HistoryWriteFailed', MetricUnit.Count, 1);
  }
  // The schedule-health alarm: a period without a RunSucceeded of 1 means the job did not succeed (or run).
  metrics.addMetric('RunSucceeded', MetricUnit.Count, report.summary.failed === 0 ? 1 : 0);
  if (config.notifyTopicArn) await notify({ ...whole, metrics: runMetrics }, history, config.notifyTopicArn, config, context, env, signal);
  return history ? { ...report, history } : report;
}

export type RecordConfig = Pick<CommonConfig, 'region' | 'history' | 'notifyTopicArn'>;

/** One line per action, so Logs Insights can `stats count() by type, status` (the job and correlation id are appended keys). */
export function logActions(actions: readonly ReportAction[]): void {
  for (const a of actions) {
    logger.info('job action', {
      type: a.type,
      target: a.target,
      status: a.status,
      reason: a.reason,
      ...(a.error ? { error: a.error } : {}),
    });
  }
}

async function notify(
  whole: Report & { metrics: Readonly<Record<string, number>> },
  history: HistoryRecord | undefined,
  topicArn: string,
  config: RecordConfig,
  context: RecordContext,
  env: Readonly<Record<string, string | undefined>>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const logGroupName = context.logGroupName ?? env.AWS_LAMBDA_LOG_GROUP_NAME;
  const functionName = context.functionName ?? env.AWS_LAMBDA_FUNCTION_NAME;
  const notification = renderNotification(whole, {
    region: config.region,
    ...(config.history ? { historyBucket: config.history.bucket } : {}),
    ...(history ? { history } : {}),
    ...(logGroupName ? { logGroupName } : {}),
    ...(functionName ? { functionName } : {}),
  });
  if (!notification) return;
  try {
    const messageId = await publishNotification(snsClient(), topicArn, notification, signal);
    logger.info('notification sent', { notification: { status: notification.status, subject: notification.subject, messageId } });
  } catch (error) {
    logger.error('notification failed', { notification: { status: notification.status, error: describeError(error) } });
    metrics.addMetric('NotifyFailed', MetricUnit.Count, 1);
  }
}
