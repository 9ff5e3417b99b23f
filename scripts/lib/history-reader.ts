/**
 * Reads the run history back (shared/history.ts writes it): lists `<prefix>/job=<job>/date=<day>/` for each job
 * and day in the window (paginated), reads each report, filters runs and actions, and renders them as a table in
 * the demo's style (scripts/lib/report-table.ts) or as JSON.
 */
import { GetObjectCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import { decodeHistory, historyDayPrefix } from '../../shared/history.ts';

export interface StoredAction {
  type: string;
  target: string;
  reason: string;
  status: string;
  error?: string;
}

export interface StoredReport {
  job: string;
  trigger: { kind: string };
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  correlationId?: string;
  actions: StoredAction[];
  summary: { planned: number; applied: number; skipped: number; failed: number };
  stoppedEarly?: string;
}

export interface StoredRun {
  key: string;
  report: StoredReport;
}

export interface RunFilter {
  /** Only actions of this type (and runs that have one). */
  action?: string;
  /** Only actions whose target contains this text. */
  target?: string;
  /** Only runs with a failed action, and only their failed actions. */
  failed?: boolean;
}

const DAY_MS = 86_400_000;

/** Every UTC date (YYYY-MM-DD) from `since` to `now`, newest first. */
export function daysBetween(since: Date, now: Date): string[] {
  const days: string[] = [];
  for (let t = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()); t >= since.getTime() - DAY_MS + 1; t -= DAY_MS) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

/** The history keys of `jobs` that started at or after `since`, newest first (ListObjectsV2, every page). */
export async function listRunKeys(
  s3: S3Client,
  o: { bucket: string; prefix: string; jobs: readonly string[]; since: Date; now: Date },
): Promise<string[]> {
  const keys: string[] = [];
  const sinceIso = o.since.toISOString();
  for (const job of o.jobs) {
    for (const day of daysBetween(o.since, o.now)) {
      const prefix = historyDayPrefix(o, job, day);
      for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: o.bucket, Prefix: prefix })) {
        for (const object of page.Contents ?? []) {
          // The file name starts with the run's ISO start time, so the window needs no GetObject.
          if (object.Key && object.Key.slice(prefix.length) >= sinceIso) keys.push(object.Key);
        }
      }
    }
  }
  return keys.sort((a, b) => fileName(b).localeCompare(fileName(a)));
}

const fileName = (key: string): string => key.slice(key.lastIndexOf('/') + 1);

export async function readRun(s3: S3Client, bucket: string, key: string): Promise<StoredRun> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const bytes = await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
  return { key, report: decodeHistory<StoredReport>(key, bytes) };
}

/** The runs that match, each with only its matching actions (all of them when no action filter is given). */
export function filterRuns(runs: readonly StoredRun[], f: RunFilter): StoredRun[] {
  const actionFilter = f.action !== undefined || f.target !== undefined || f.failed === true;
  const matches = (a: StoredAction): boolean =>
    (f.action === undefined || a.type === f.action) &&
    (f.target === undefined || a.target.includes(f.target)) &&
    (!f.failed || a.status === 'failed');
  return runs
    .filter((r) => !f.failed || r.report.summary.failed > 0)
    .map((r) => ({ key: r.key, report: { ...r.report, actions: r.report.actions.filter(matches) } }))
    .filter((r) => !actionFilter || r.report.actions.length > 0);
}

const MAX_ACTION_ROWS = 12;

const clip = (text: string, max: number): string => (text.length > max ? `…${text.slice(-(max - 1))}` : text);

/** A table a person reads in a terminal: one line per run, its (matching) actions under it. */
export function formatRuns(runs: readonly StoredRun[], { actionRows = MAX_ACTION_ROWS } = {}): string {
  if (runs.length === 0) return '  no runs match';
  const w = {
    job: Math.max(3, ...runs.map((r) => r.report.job.length)),
    trigger: Math.max(7, ...runs.map((r) => r.report.trigger.kind.length)),
  };
  const lines = [`  ${'started'.padEnd(24)}  ${'job'.padEnd(w.job)}  ${'trigger'.padEnd(w.trigger)}  summary`];
  for (const { key, report: r } of runs) {
    const s = r.summary;
    const flags = `${r.dryRun ? ' · DRY RUN' : ''}${r.stoppedEarly ? ` · stopped early (${r.stoppedEarly})` : ''}`;
    lines.push(
      `  ${r.startedAt.padEnd(24)}  ${r.job.padEnd(w.job)}  ${r.trigger.kind.padEnd(w.trigger)}  planned ${s.planned} · applied ${s.applied} · skipped ${s.skipped} · failed ${s.failed}${flags}`,
    );
    lines.push(`      ${key}${r.correlationId ? `  (correlation id ${r.correlationId})` : ''}`);
    const rows = r.actions.slice(0, actionRows);
    const aw = {
      status: Math.max(6, ...rows.map((a) => a.status.length)),
      type: Math.max(4, ...rows.map((a) => a.type.length)),
      target: Math.min(60, Math.max(6, ...rows.map((a) => a.target.length))),
    };
    for (const a of rows) {
      lines.push(
        `      ${a.status.padEnd(aw.status)}  ${a.type.padEnd(aw.type)}  ${clip(a.target, aw.target).padEnd(aw.target)}  ${a.error ? `${a.reason} — ${a.error}` : a.reason}`,
      );
    }
    if (r.actions.length > actionRows) lines.push(`      … ${r.actions.length - actionRows} more actions (--json shows every one)`);
  }
  return lines.join('\n');
}
