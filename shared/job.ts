import type { Context } from 'aws-lambda';
import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type * as z from 'zod/mini';
import { configureClients } from './aws.ts';
import type { CommonConfig } from './config.ts';
import { describeError, JobFailedError, UnsupportedEventError } from './errors.ts';
import { logger, metrics } from './observability.ts';
import { pool } from './concurrency.ts';
import { RequestCounter, withRequestCounter } from './requests.ts';
import { recordRun, type RecordContext } from './run-record.ts';
import { asksForDryRun, correlationIdOf, toTrigger, type ManualOptionsShape, type Trigger, type TriggerKind } from './triggers.ts';
import type { ActionStatus, ReportAction, Report, Refusal } from './report.ts';

/**
 * The runner every job uses (ARCHITECTURE §4–§5): trigger → observe → plan (pure) → apply unless dry-run →
 * one report, logged once and returned; JobFailedError after the report when any action failed.
 */

export { JOB_NAMES, type JobName } from './job-names.ts';

/**
 * The report lists at most this many actions (one log line must stay under CloudWatch Logs' 256 KB event limit);
 * `summary` always counts all of them.
 */
export const REPORT_ACTION_CAP = 200;
/** Stop taking new actions when less than this much Lambda time is left (per job overridable). */
export const DEFAULT_TIME_MARGIN_MS = 15_000;

/** One thing a plan wants done (or decided not to do, in `Plan.skipped`). Jobs extend it with their own fields. */
export interface Action {
  readonly type: string;
  readonly target: string;
  readonly reason: string;
  /**
   * Applied even in a dry run. Only for an action that creates what does not exist yet and that a fleet waits
   * for, changing and removing nothing (sync-htpasswd's first publish: without it no registry ever starts).
   */
  readonly dryRunSafe?: true;
}

export interface Plan<A extends Action> {
  readonly actions: readonly A[];
  /** Candidates the plan chose not to act on, each with its reason (guards, grace periods, limits). */
  readonly skipped: readonly A[];
  /** Verdicts that need a person; they fail the run after the report (see `Refusal`). */
  readonly refusals?: readonly Refusal[];
}

export type Outcome =
  | { readonly status: 'applied'; readonly detail?: Record<string, unknown> }
  | { readonly status: 'skipped'; readonly reason: string }
  | { readonly status: 'failed'; readonly error: string; readonly detail?: Record<string, unknown> };

/**
 * Everything one run knows besides its state, handed to scope's consumers — observe, plan, apply and summarize.
 * `now` is fixed for the run (plan and apply receive it instead of a clock); `requests` counts every AWS request
 * of the run (the clients count into it themselves, see shared/requests.ts).
 */
export interface RunContext<C, O = unknown, Scope = unknown> {
  readonly config: C;
  readonly trigger: Trigger<O>;
  /** What this run acts on, computed once by `JobDefinition.scope` from the trigger (bad input threw there). */
  readonly scope: Scope;
  readonly dryRun: boolean;
  readonly now: Date;
  readonly signal: AbortSignal;
  readonly logger: typeof logger;
  readonly requests: RequestCounter;
  /** False once the Lambda's remaining time is under the job's margin: start no new step then. */
  hasTime(): boolean;
  /** The Lambda's remaining time (undefined outside Lambda): for a step that must leave time to the ones after it. */
  timeLeftMs?(): number | undefined;
}

/** What apply sees: the run's context (kept as its own name for apply helpers such as `applyEach`). */
export type ApplyContext<C, O = unknown, Scope = unknown> = RunContext<C, O, Scope>;

export interface Summary {
  observed: Record<string, unknown>;
  details?: Record<string, unknown>;
  /** Extra metrics (Count) for this run, e.g. `CircuitOpen: 1`. Low-cardinality names only. */
  metrics?: Record<string, number>;
}

/** The types one job is written in; `JobDefinition<T>` is typed on them, so no job casts its plan or state. */
export interface JobTypes {
  config: CommonConfig;
  options: ManualOptionsShape;
  scope: unknown;
  state: unknown;
  action: Action;
  plan: Plan<Action>;
  clients: unknown;
}

export type OptionsOf<T extends JobTypes> = z.output<z.ZodMiniObject<T['options']>>;
export type JobContext<T extends JobTypes> = RunContext<T['config'], OptionsOf<T>, T['scope']>;
export type Outcomes = readonly (Outcome | undefined)[];

export interface JobDefinition<T extends JobTypes> {
  /** The job's name: one of JOB_NAMES for a deployed job (the Lambda name suffix and the report's `job`). */
  readonly name: string;
  /** Trigger kinds this job acts on; any other kind is an UnsupportedEventError. */
  readonly accepts: readonly TriggerKind[];
  /** The job's manual payload keys (strict: any other key is rejected). */
  readonly options: T['options'];
  readonly timeMarginMs?: number;
  /** The SDK clients of this job (lazy singletons from shared/aws.ts), taken once per run. */
  clients(): T['clients'];
  /** What the run acts on, from the trigger and config. Runs before any AWS call: bad input throws here. */
  scope(trigger: Trigger<OptionsOf<T>>, config: T['config']): T['scope'];
  observe(clients: T['clients'], scope: T['scope'], ctx: JobContext<T>): Promise<T['state']>;
  /** Must be pure: everything it needs is in `state` and `ctx` (config, scope, now). */
  plan(state: T['state'], ctx: JobContext<T>): T['plan'];
  /**
   * Apply the plan's actions; one outcome per action, in order. `undefined` = not started (time budget or a
   * stop after a failure). Use `applyEach` unless the job batches (S3 DeleteObjects). The plan is passed whole:
   * what apply needs beyond the actions (e.g. the host a handshake checks) travels in it, not in a closure.
   */
  apply(plan: T['plan'], ctx: JobContext<T>, clients: T['clients']): Promise<Outcomes>;
  summarize(state: T['state'], plan: T['plan'], outcomes: Outcomes, ctx: JobContext<T>): Summary;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** The clock, for tests; defaults to the real one. */
  clock?: () => Date;
  /**
   * Run as one part of a larger run (an inventory pass's shard): the part's whole report goes to `keepPart` instead
   * of the run history, the notification and the run's metrics, which the larger run records once (`finishRun`).
   */
  keepPart?: (part: PartReport) => Promise<void>;
}

/** A part's whole report (every action, `truncated: false`) and what its run's merge needs besides. */
export interface PartReport extends Report {
  /** Actions the part's plan wanted done (the `PlannedActions` metric). */
  readonly plannedActions: number;
  /** The part's job-specific metrics (Summary.metrics), summed by the merge. */
  readonly metrics: Record<string, number>;
}

/**
 * Apply actions one by one (or `concurrency` at a time) on the shared pool. A thrown error is that action's
 * failed outcome; the others still run unless `stopOnFailure`. No new action starts once `ctx.hasTime()` is false.
 */
export async function applyEach<A>(
  actions: readonly A[],
  ctx: Pick<RunContext<unknown>, 'signal' | 'hasTime'>,
  fn: (action: A) => Promise<Outcome | void>,
  { concurrency = 1, stopOnFailure = false }: { concurrency?: number; stopOnFailure?: boolean } = {},
): Promise<(Outcome | undefined)[]> {
  const outcomes = new Array<Outcome | undefined>(actions.length).fill(undefined);
  let stopped = false;
  const keepGoing = (): boolean => !stopped && !ctx.signal.aborted && ctx.hasTime();
  await pool(
    actions.length,
    concurrency,
    async (index) => {
      let outcome: Outcome;
      try {
        outcome = (await fn(actions[index] as A)) ?? { status: 'applied' };
      } catch (error) {
        outcome = { status: 'failed', error: describeError(error) };
      }
      outcomes[index] = outcome;
      if (outcome.status === 'failed' && stopOnFailure) stopped = true;
    },
    keepGoing,
  );
  return outcomes;
}

export async function runJob<T extends JobTypes>(
  job: JobDefinition<T>,
  config: T['config'],
  event: unknown,
  context: Partial<Pick<Context, 'getRemainingTimeInMillis'>> & RecordContext,
  { signal = new AbortController().signal, clock = () => new Date(), keepPart }: RunOptions = {},
): Promise<Report> {
  const startedAt = clock();
  const trigger = toTrigger(event, job.options);
  if (trigger.kind !== 'ignored' && !job.accepts.includes(trigger.kind)) {
    throw new UnsupportedEventError(`${job.name} does not act on ${trigger.kind} triggers (it acts on ${job.accepts.join(', ')})`);
  }
  // A payload can make a run safer, never less safe: DRY_RUN=true wins over anything the event says, and
  // `"dryRun": true` counts on any event, also on a copied schedule or alarm sample.
  const dryRun = config.dryRun || asksForDryRun(event);
  const correlationId = correlationIdOf(event, trigger, context.awsRequestId);
  logger.appendKeys({ job: job.name, trigger: trigger.kind, dryRun, correlationId });

  const base = { job: job.name, trigger, dryRun, correlationId, startedAt: startedAt.toISOString() };
  const record: RunRecord = { config, context, signal, ...(keepPart ? { keepPart } : {}) };
  if (trigger.kind === 'ignored' || (trigger.kind === 'alarm' && trigger.state !== 'ALARM')) {
    const reason = trigger.kind === 'ignored' ? trigger.reason : `alarm ${trigger.alarmName} is ${trigger.state}`;
    return finish(job.name, { ...base, observed: {}, details: { nothingToDo: reason } }, [], 0, [], clock, {}, record);
  }

  const scope = job.scope(trigger, config); // bad input throws before any AWS call
  let stoppedEarly: 'time' | undefined;
  const margin = job.timeMarginMs ?? DEFAULT_TIME_MARGIN_MS;
  const hasTime = (): boolean => {
    if (stoppedEarly) return false;
    const left = context.getRemainingTimeInMillis?.();
    if (left !== undefined && left < margin) stoppedEarly = 'time';
    return !stoppedEarly;
  };
  const requests = new RequestCounter();
  const timeLeftMs = (): number | undefined => context.getRemainingTimeInMillis?.();
  const ctx: JobContext<T> = { config, trigger, scope, dryRun, now: startedAt, signal, logger, requests, hasTime, timeLeftMs };

  return withRequestCounter(requests, async () => {
    const clients = job.clients();
    const state = await job.observe(clients, scope, ctx);
    const plan = job.plan(state, ctx);
    const outcomes = dryRun ? await applyDryRunSafe(job, plan, ctx, clients) : await job.apply(plan, ctx, clients);
    const summary = job.summarize(state, plan, outcomes, ctx);

    const notStarted = stoppedEarly
      ? 'not started: the Lambda time budget ran low (the next run continues)'
      : 'not started: stopped after a failure';
    const actions: ReportAction[] = [
      ...plan.actions.map((action, i) =>
        toReportAction(action, dryRun && !action.dryRunSafe ? undefined : (outcomes[i] ?? { status: 'skipped', reason: notStarted })),
      ),
      ...plan.skipped.map((action) => toReportAction(action, { status: 'skipped', reason: action.reason })),
    ];
    const refusals = (plan.refusals ?? []).map(({ type, target, reason }) => ({ type, target, reason }));
    const report = {
      ...base,
      observed: summary.observed,
      ...(summary.details ? { details: summary.details } : {}),
      ...(stoppedEarly ? { stoppedEarly } : {}),
    };
    return finish(job.name, report, actions, plan.actions.length, refusals, clock, summary.metrics ?? {}, record);
  });
}

/** A dry run applies only the plan's `dryRunSafe` actions (usually none); outcomes keep the plan's positions. */
async function applyDryRunSafe<T extends JobTypes>(
  job: JobDefinition<T>,
  plan: T['plan'],
  ctx: JobContext<T>,
  clients: T['clients'],
): Promise<Outcomes> {
  const safe = plan.actions.flatMap((a, i) => (a.dryRunSafe ? [i] : []));
  if (safe.length === 0) return [];
  const done = await job.apply({ ...plan, actions: safe.map((i) => plan.actions[i]) }, ctx, clients);
  const outcomes = new Array<Outcome | undefined>(plan.actions.length).fill(undefined);
  safe.forEach((at, k) => (outcomes[at] = done[k]));
  return outcomes;
}

function toReportAction(action: Action, outcome: Outcome | undefined): ReportAction {
  const { type, target, reason, dryRunSafe: _safe, ...rest } = action;
  const extra = Object.keys(rest).length > 0 ? { detail: rest as Record<string, unknown> } : {};
  if (!outcome) return { type, target, reason, status: 'planned', ...extra };
  switch (outcome.status) {
    case 'applied':
      return { type, target, reason, status: 'applied', ...mergeDetail(extra, outcome.detail) };
    case 'skipped':
      return { type, target, reason: outcome.reason, status: 'skipped', ...extra };
    case 'failed':
      return { type, target, reason, status: 'failed', error: outcome.error, ...mergeDetail(extra, outcome.detail) };
  }
}

function mergeDetail(extra: { detail?: Record<string, unknown> }, detail: Record<string, unknown> | undefined) {
  return detail || extra.detail ? { detail: { ...extra.detail, ...detail } } : {};
}

const STATUS_ORDER: Record<ActionStatus, number> = { failed: 0, applied: 1, planned: 2, skipped: 3 };

/** Where a finished report goes: the run history and notification (`config`), or, for a part, its run's merge. */
interface RunRecord {
  readonly config: CommonConfig;
  readonly context: RecordContext;
  readonly signal: AbortSignal;
  readonly keepPart?: (part: PartReport) => Promise<void>;
}

/** The report from its parts (pure): `summary` counted from `actions`, the list capped with failures first. */
export function assembleReport(
  partial: Omit<Report, 'finishedAt' | 'actions' | 'summary' | 'truncated'>,
  actions: readonly ReportAction[],
  refusals: readonly Refusal[],
  finishedAt: Date,
): Report {
  const summary = { planned: 0, applied: 0, skipped: 0, failed: 0 };
  for (const a of actions) summary[a.status] += 1;
  const truncated = actions.length > REPORT_ACTION_CAP;
  // When the list must be cut, keep failures first: they are what an operator reads the report for.
  const listed = truncated
    ? actions
        .map((a, i) => [a, i] as const)
        .sort(([a, i], [b, j]) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status] || i - j)
        .slice(0, REPORT_ACTION_CAP)
        .map(([a]) => a)
    : [...actions];
  return {
    ...partial,
    finishedAt: finishedAt.toISOString(),
    actions: listed,
    summary,
    truncated,
    ...(refusals.length > 0 ? { refusals: [...refusals] } : {}),
  };
}

async function finish(
  name: string,
  partial: Omit<Report, 'finishedAt' | 'actions' | 'summary' | 'truncated'>,
  actions: ReportAction[],
  planned: number,
  refusals: Refusal[],
  clock: () => Date,
  extraMetrics: Record<string, number>,
  record: RunRecord,
): Promise<Report> {
  const built = assembleReport(partial, actions, refusals, clock());
  const { summary } = built;
  let report: Report = built;
  if (record.keepPart) {
    // A part is recorded by the run it belongs to (finishRun): no history, notification or metrics of its own.
    await record.keepPart({ ...built, actions, truncated: false, plannedActions: planned, metrics: extraMetrics });
  } else {
    metrics.addDimension('dryRun', String(built.dryRun));
    if (record.config.fleet) metrics.addDimension('fleet', record.config.fleet); // several fleets per account: alarms name theirs
    metrics.addMetric('PlannedActions', MetricUnit.Count, planned);
    metrics.addMetric('AppliedActions', MetricUnit.Count, summary.applied);
    metrics.addMetric('SkippedActions', MetricUnit.Count, summary.skipped);
    metrics.addMetric('FailedActions', MetricUnit.Count, summary.failed);
    metrics.addMetric('Refusals', MetricUnit.Count, refusals.length);
    for (const [metric, value] of Object.entries(extraMetrics)) metrics.addMetric(metric, MetricUnit.Count, value);
    // Action log lines, the whole report to the run history, RunSucceeded, a notification: never fails the run.
    report = await recordRun(built, actions, record.config, record.context, { signal: record.signal, metrics: extraMetrics });
    metrics.publishStoredMetrics(); // one EMF line per run, whether run through the handler or called directly
  }

  logger.info(record.keepPart ? 'job part report' : 'job report', { report });
  if (refusals.length > 0) {
    const [first] = refusals;
    throw new JobFailedError(`${name}: refused (${refusals.length}): ${first?.type} ${first?.target}: ${first?.reason}`, report);
  }
  if (summary.failed > 0) {
    const first = actions.find((a) => a.status === 'failed');
    throw new JobFailedError(
      `${name}: ${summary.failed} of ${planned} actions failed (first: ${first?.type} ${first?.target}: ${first?.error})`,
      report,
    );
  }
  return report;
}

/** What `finishRun` needs besides the report: the planned count, the job's metrics, where to record. */
export interface FinishOptions {
  readonly planned: number;
  readonly refusals: readonly Refusal[];
  readonly metrics: Record<string, number>;
  readonly config: CommonConfig;
  readonly context: RecordContext;
  readonly signal: AbortSignal;
  readonly clock?: () => Date;
}

/**
 * The runner's last step for a run assembled from parts (an inventory pass from its shards' PartReports): the
 * summary and capped list, the metrics, the run history and notification, the `job report` line, and
 * JobFailedError after it all when an action failed or a refusal stands — exactly as for a run of `runJob`.
 */
export function finishRun(
  name: string,
  partial: Omit<Report, 'finishedAt' | 'actions' | 'summary' | 'truncated'>,
  actions: ReportAction[],
  o: FinishOptions,
): Promise<Report> {
  const record: RunRecord = { config: o.config, context: o.context, signal: o.signal };
  return finish(name, partial, actions, o.planned, [...o.refusals], o.clock ?? (() => new Date()), o.metrics, record);
}

export type JobHandler = (event: unknown, context: Context) => Promise<Report>;

/**
 * Wire a job for Lambda: `run` is the plain function (tests and local invoke call it), `handler` the
 * middy-wrapped entry (Powertools context injection, cold-start metric, middy's abort signal). The runner
 * publishes its metrics itself at the end of each run.
 */
export function createJob<T extends JobTypes>(job: JobDefinition<T>, config: T['config'], options: Pick<RunOptions, 'clock'> = {}) {
  configureClients(config);
  const run = (event: unknown, context: Partial<Context> = {}, middyOptions?: { signal?: AbortSignal }): Promise<Report> =>
    runJob(job, config, event, context, { ...options, ...(middyOptions?.signal ? { signal: middyOptions.signal } : {}) });
  const handler = middy(run)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .before(() => {
      metrics.captureColdStartMetric(); // emits once per execution environment
    });
  return { run, handler };
}
