/**
 * Durations in the registry's own syntax (Go's time.ParseDuration: `168h`, `1h30m`, `90m`, `1.5s`, `500ms`)
 * plus `d` for days (`30d`). Negative and sign-prefixed values are rejected: every duration here is an age or a period.
 */
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)/y;

export const DURATION_FORM = 'a duration like 168h, 90m, 30s, 1h30m or 30d';

/** Milliseconds for a duration string, or undefined when it is not one. `0` is allowed. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  if (text.length === 0) return undefined;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const at = PART.lastIndex;
    const match = PART.exec(text);
    if (!match || match.index !== at) return undefined;
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  }
  return Number.isFinite(total) ? total : undefined;
}

/** A short human form for reports: `190h`, `45m`, `12s`. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs >= 3_600_000) return `${Math.floor(ms / 3_600_000)}h`;
  if (abs >= 60_000) return `${Math.floor(ms / 60_000)}m`;
  return `${Math.floor(ms / 1_000)}s`;
}
