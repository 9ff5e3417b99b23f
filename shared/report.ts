import type { HistoryRecord } from './history.ts';
import type { Trigger } from './triggers.ts';

/**
 * The report of one run (ARCHITECTURE §5): what the runner (shared/job.ts) returns and logs, the run record
 * (shared/run-record.ts) writes to the history and notifies about. Types only, so both import it without a cycle.
 */

export type ActionStatus = 'planned' | 'applied' | 'skipped' | 'failed';

export interface ReportAction {
  type: string;
  target: string;
  reason: string;
  status: ActionStatus;
  error?: string;
  detail?: Record<string, unknown>;
}

export interface Report {
  job: string;
  trigger: Trigger<unknown>;
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  observed: Record<string, unknown>;
  actions: ReportAction[];
  summary: { planned: number; applied: number; skipped: number; failed: number };
  truncated: boolean;
  stoppedEarly?: 'time';
  /** The plan's refusals, when there are any: the run fails after the report because of them. */
  refusals?: Refusal[];
  /** Job-specific results (bytes freed, certificates seen, guards that fired …). */
  details?: Record<string, unknown>;
  /** Ties the run's log lines, history object and notification to its event (shared/triggers.ts correlationIdOf). */
  correlationId?: string;
  /** Where the whole report is in the run history, or why it could not be written (shared/history.ts). */
  history?: HistoryRecord;
}

/**
 * A verdict that needs a person (a certificate the job must not touch, a rotation blocked after a rollback):
 * not an action — nothing is applied for it — but reported (dry runs too) and it fails the run after the report.
 */
export interface Refusal {
  readonly type: string;
  readonly target: string;
  readonly reason: string;
}
