import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface LogQueriesProps {
  /** Folder the queries are saved under in the Logs Insights console. */
  folder: string;
  /** Every job's log group. */
  logGroups: readonly logs.ILogGroup[];
}

/**
 * Saved CloudWatch Logs Insights queries over the jobs' log lines: the one `job report` line per run and the
 * `job action` line per action (job, type, target, status, reason; every line carries the correlation id).
 */
export const LOG_QUERIES = {
  'last-runs-per-job': [
    'filter message = "job report"',
    'stats count(*) as runs, max(@timestamp) as lastRun, sum(report.summary.applied) as applied, sum(report.summary.failed) as ' +
      'failed by job',
    'sort job asc',
  ],
  'failed-actions': [
    'filter message = "job action" and status = "failed"',
    'fields @timestamp, job, type, target, reason, error, correlationId',
    'sort @timestamp desc',
    'limit 200',
  ],
  'deletions-by-target': [
    'filter message = "job action" and status = "applied" and type like /^delete-/',
    'stats count(*) as deletions, max(@timestamp) as last by job, type, target',
    'sort deletions desc',
    'limit 500',
  ],
  'replacements-per-instance': [
    'filter message = "job action" and job = "replace-unhealthy-instances" and status in ["applied", "failed"]',
    'stats count(*) as actions, max(@timestamp) as last, latest(type) as lastAction by target',
    'sort actions desc',
  ],
} as const satisfies Record<string, readonly string[]>;

export class LogQueries extends Construct {
  readonly definitions: logs.QueryDefinition[] = [];

  constructor(scope: Construct, id: string, props: LogQueriesProps) {
    super(scope, id);
    for (const [name, lines] of Object.entries(LOG_QUERIES)) {
      this.definitions.push(
        new logs.QueryDefinition(
          this,
          name.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase()),
          {
            queryDefinitionName: `${props.folder}/${name}`,
            queryString: new logs.QueryString(toQueryString(lines)),
            logGroups: [...props.logGroups],
          },
        ),
      );
    }
  }
}

/** logs.QueryString wants its clauses by kind; our queries are written as lines, so each line goes where it belongs. */
function toQueryString(lines: readonly string[]): logs.QueryStringProps {
  const of = (verb: string) => lines.filter((l) => l.startsWith(`${verb} `)).map((l) => l.slice(verb.length + 1));
  const one = (verb: string) => of(verb)[0];
  const filter = one('filter');
  const fields = one('fields');
  const stats = one('stats');
  const sort = one('sort');
  const limit = one('limit');
  return {
    ...(filter ? { filterStatements: [filter] } : {}),
    ...(fields ? { fields: fields.split(', ') } : {}),
    ...(stats ? { statsStatements: [stats] } : {}),
    ...(sort ? { sort } : {}),
    ...(limit ? { limit: Number(limit) } : {}),
  };
}
