/** Prints a job report as a short table a person can read in a terminal. */
interface ReportLike {
  job: string;
  trigger: { kind: string };
  dryRun: boolean;
  observed: Record<string, unknown>;
  actions: { type: string; target: string; reason: string; status: string; error?: string }[];
  summary: { planned: number; applied: number; skipped: number; failed: number };
  truncated: boolean;
  stoppedEarly?: string;
}

const MAX_ROWS = 12;

function flat(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `[${value.length}]`;
  return Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => `${k}=${flat(v)}`)
    .join(' ');
}

const clip = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

export function formatReport(report: ReportLike): string {
  const s = report.summary;
  const lines = [
    `  ${report.job} · trigger ${report.trigger.kind}${report.dryRun ? ' · DRY RUN' : ''}`,
    `  observed: ${clip(flat(report.observed), 160)}`,
    `  summary:  planned ${s.planned} · applied ${s.applied} · skipped ${s.skipped} · failed ${s.failed}${report.truncated ? ' (list truncated)' : ''}${report.stoppedEarly ? ` · stopped early (${report.stoppedEarly})` : ''}`,
  ];
  if (report.actions.length > 0) {
    const rows = report.actions.slice(0, MAX_ROWS);
    const w = {
      status: Math.max(6, ...rows.map((a) => a.status.length)),
      type: Math.max(4, ...rows.map((a) => a.type.length)),
      target: Math.min(60, Math.max(6, ...rows.map((a) => a.target.length))),
    };
    lines.push(`  ${'status'.padEnd(w.status)}  ${'type'.padEnd(w.type)}  ${'target'.padEnd(w.target)}  reason`);
    for (const a of rows) {
      const target = a.target.length > w.target ? `…${a.target.slice(-(w.target - 1))}` : a.target;
      lines.push(
        `  ${a.status.padEnd(w.status)}  ${a.type.padEnd(w.type)}  ${target.padEnd(w.target)}  ${a.error ? `${a.reason} — ${a.error}` : a.reason}`,
      );
    }
    if (report.actions.length > MAX_ROWS) lines.push(`  … ${report.actions.length - MAX_ROWS} more actions`);
  }
  return lines.join('\n');
}
