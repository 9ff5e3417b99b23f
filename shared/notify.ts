import { PublishCommand, type MessageAttributeValue, type SNSClient } from '@aws-sdk/client-sns';
import type { HistoryRecord } from './history.ts';
import { redactSecrets } from './redact.ts';

/**
 * The notification of a run that needs a person's eyes (c7n-mailer's "the policy acted"): it failed, or it
 * applied destructive actions. The gist only — job, trigger, counts, the first few failed/applied actions with
 * their reasons — and where the whole report is (history key, Logs Insights). Never a secret: the message is
 * redacted (shared/redact.ts) and renders no action `detail`, only type, target, reason and error.
 */

/** Actions that remove or replace something; an applied one is worth telling a person about. */
export const DESTRUCTIVE_ACTION = /^(delete|abort|terminate|remove|replace|prune|rollback|swap)-|^set-instance-health$/;
/**
 * Run metrics that mean a person must look even though nothing failed (the names are the jobs' contract). The
 * skipped actions whose reason starts with the metric's kebab-case name (`replacement-stalled: …`) are listed.
 */
export const ATTENTION_METRICS = ['ReplacementStalled', 'ReplacementBudgetExhausted', 'CircuitOpen', 'ListingStalled'] as const;
/** At most this many actions of each kind are listed (the rest are counted). */
export const NOTIFY_ACTION_LIMIT = 5;
/** SNS: a subject must be under 100 characters, ASCII, on one line. */
export const SUBJECT_MAX = 99;

export interface NotifyAction {
  readonly type: string;
  readonly target: string;
  readonly reason: string;
  readonly status: string;
  readonly error?: string;
}

export interface NotifyReport {
  readonly job: string;
  readonly trigger: { readonly kind: string } & Record<string, unknown>;
  readonly dryRun: boolean;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly correlationId?: string;
  readonly summary: { readonly planned: number; readonly applied: number; readonly skipped: number; readonly failed: number };
  readonly stoppedEarly?: string;
  /** Every action of the run (not the log line's cut). */
  readonly actions: readonly NotifyAction[];
  /** The run's job-specific metrics (`ReplacementStalled: 1`); see ATTENTION_METRICS. */
  readonly metrics?: Readonly<Record<string, number>>;
}

export interface NotifyWhere {
  readonly region: string;
  /** `s3://` of the history bucket: the key is appended. */
  readonly historyBucket?: string;
  readonly history?: HistoryRecord;
  /** The function's log group, for the Logs Insights link. */
  readonly logGroupName?: string;
  /** Names the fleet in the subject (`<stack>-<job>`); the job name when absent. */
  readonly functionName?: string;
}

export type NotifyStatus = 'failed' | 'attention' | 'applied';

export interface Notification {
  readonly subject: string;
  readonly message: string;
  readonly attributes: Record<string, MessageAttributeValue>;
  readonly status: NotifyStatus;
}

const isDestructiveApplied = (a: NotifyAction): boolean => a.status === 'applied' && DESTRUCTIVE_ACTION.test(a.type);

const kebab = (metric: string): string => metric.replace(/[A-Z]/g, (c, i: number) => `${i > 0 ? '-' : ''}${c.toLowerCase()}`);

/** The attention metrics this run raised (`ReplacementStalled`), in ATTENTION_METRICS order. */
export function attentionSignals(report: NotifyReport): string[] {
  return ATTENTION_METRICS.filter((m) => (report.metrics?.[m] ?? 0) > 0);
}

/** Whether this run is worth a notification, and as what: failed, then needs attention, then applied destructive actions. */
export function notifyStatus(report: NotifyReport): NotifyStatus | undefined {
  if (report.summary.failed > 0) return 'failed';
  if (attentionSignals(report).length > 0) return 'attention';
  return report.actions.some(isDestructiveApplied) ? 'applied' : undefined;
}

function headlineOf(status: NotifyStatus, report: NotifyReport, applied: number, signals: readonly string[]): string {
  const s = report.summary;
  if (status === 'failed') return `${s.failed} of ${s.planned + s.applied + s.skipped + s.failed} actions failed`;
  if (status === 'attention') return `needs attention: ${signals.map((m) => kebab(m).replace(/-/g, ' ')).join(', ')}`;
  return `applied ${applied} destructive action${applied === 1 ? '' : 's'}`;
}

/** Renders the notification, or undefined when the run needs nobody (nothing failed, nothing destructive applied). */
export function renderNotification(report: NotifyReport, where: NotifyWhere): Notification | undefined {
  const status = notifyStatus(report);
  if (!status) return undefined;
  const failed = report.actions.filter((a) => a.status === 'failed');
  const applied = report.actions.filter(isDestructiveApplied);
  const signals = attentionSignals(report);
  const attention = report.actions.filter((a) => a.status === 'skipped' && signals.some((m) => a.reason.startsWith(kebab(m))));
  const s = report.summary;
  const headline = headlineOf(status, report, applied.length, signals);
  const lines = [
    `${report.job}: ${headline}${report.dryRun ? ' (dry run)' : ''}`,
    '',
    `trigger:        ${describeTrigger(report.trigger)}`,
    `correlation id: ${report.correlationId ?? 'none'}`,
    `run:            ${report.startedAt} → ${report.finishedAt}${report.stoppedEarly ? ` (stopped early: ${report.stoppedEarly})` : ''}`,
    `summary:        planned ${s.planned} · applied ${s.applied} · skipped ${s.skipped} · failed ${s.failed}`,
    ...section('failed', failed),
    ...section('needs a person', attention),
    ...section('applied (destructive)', applied),
    '',
    `full report:    ${describeHistory(where)}`,
    ...(where.logGroupName ? [`logs:           ${logsInsightsUrl(where.region, where.logGroupName, report)}`] : []),
  ];
  return {
    subject: subject(where.functionName ?? report.job, status, headline, report.dryRun),
    message: redactSecrets(lines.join('\n')),
    status,
    attributes: {
      job: { DataType: 'String', StringValue: report.job },
      status: { DataType: 'String', StringValue: status },
      dryRun: { DataType: 'String', StringValue: String(report.dryRun) },
      trigger: { DataType: 'String', StringValue: report.trigger.kind },
    },
  };
}

/** Publish a rendered notification; resolves to the message id. Errors propagate (the caller counts them). */
export async function publishNotification(
  sns: SNSClient,
  topicArn: string,
  n: Notification,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const out = await sns.send(
    new PublishCommand({ TopicArn: topicArn, Subject: n.subject, Message: n.message, MessageAttributes: n.attributes }),
    signal ? { abortSignal: signal } : {},
  );
  return out.MessageId;
}

function section(title: string, actions: readonly NotifyAction[]): string[] {
  if (actions.length === 0) return [];
  const shown = actions.slice(0, NOTIFY_ACTION_LIMIT).map((a) => `  ${a.type} ${a.target}: ${a.reason}${a.error ? ` — ${a.error}` : ''}`);
  const more = actions.length > NOTIFY_ACTION_LIMIT ? [`  … and ${actions.length - NOTIFY_ACTION_LIMIT} more (see the full report)`] : [];
  return ['', `${title} (${actions.length}):`, ...shown, ...more];
}

function describeTrigger(trigger: NotifyReport['trigger']): string {
  const detail = ['schedule', 'alarmName', 'state', 'name', 'certificateArn', 'reason', 'time']
    .filter((k) => typeof trigger[k] === 'string')
    .map((k) => `${k} ${String(trigger[k])}`);
  return [trigger.kind, ...detail].join(' · ');
}

function describeHistory(where: NotifyWhere): string {
  if (!where.history) return 'no run history configured (HISTORY_BUCKET); see the log line "job report"';
  const at = `s3://${where.historyBucket ?? '<history bucket>'}/${where.history.key}`;
  return 'error' in where.history ? `NOT written to ${at} (${where.history.error}); see the log line "job report"` : at;
}

function subject(name: string, status: NotifyStatus, headline: string, dryRun: boolean): string {
  const text =
    `${name} ${{ failed: 'FAILED', attention: 'ATTENTION', applied: 'APPLIED' }[status]}: ` + `${headline}${dryRun ? ' (dry run)' : ''}`;
  // SNS rejects control characters and line breaks; keep it ASCII so every mail client shows it as written.
  const ascii = text.replace(/[^\x20-\x7e]/g, '?');
  return ascii.length > SUBJECT_MAX ? `${ascii.slice(0, SUBJECT_MAX - 3)}...` : ascii;
}

/**
 * A CloudWatch Logs Insights link to the run's log lines (its correlation id, a minute either side of the run).
 * The console's fragment is URL-encoded with `$` for `%`, and its values escaped with `*` for `%`.
 */
export function logsInsightsUrl(
  region: string,
  logGroupName: string,
  report: Pick<NotifyReport, 'startedAt' | 'finishedAt' | 'correlationId'>,
): string {
  const value = (s: string): string =>
    `'${encodeURIComponent(s)
      .replace(/[!'()~*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
      .replace(/%/g, '*')}`;
  const filter = report.correlationId ? `| filter correlationId = ${JSON.stringify(report.correlationId)} ` : '';
  const query = `fields @timestamp, message, type, target, status, reason, error ${filter}| sort @timestamp asc`;
  const start = new Date(Date.parse(report.startedAt) - 60_000).toISOString();
  const end = new Date(Date.parse(report.finishedAt) + 60_000).toISOString();
  const detail =
    `~(end~${value(end)}~start~${value(start)}~timeType~'ABSOLUTE~tz~'UTC` +
    `~editorString~${value(query)}~source~(~${value(logGroupName)}))`;
  const fragment = encodeURIComponent(`?queryDetail=${detail}`).replace(/%/g, '$');
  return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#logsV2:logs-insights${fragment}`;
}
