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

/**
 * The longest duration any setting may have (100 years), whether it declares its own maximum or not: beyond it a
 * value is a typo, never a period — `99999999999999999999h` is 3.6e26 ms, past what a Date can even hold.
 */
export const DURATION_CEILING = '36500d';
export const DURATION_CEILING_MS = 36_500 * 86_400_000;

/** Milliseconds for a duration string, or undefined when it is not one (or longer than the ceiling). `0` is allowed. */
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
  return Number.isFinite(total) && total <= DURATION_CEILING_MS ? total : undefined;
}

/** The bounds of one duration setting, as written (`1h`, `365d`); `max` defaults to the ceiling. */
export interface DurationBounds {
  readonly min?: string;
  readonly max?: string;
}

export interface DurationRule {
  readonly minMs: number;
  readonly maxMs: number;
  /** `at least 1h and at most 365d`: the bounds for an error message. */
  readonly bounds: string;
  /** Milliseconds of `value` (trimmed) when it is a duration inside the bounds, else undefined. */
  check(value: string): number | undefined;
}

/**
 * The one rule every duration follows, in the environment and in a manual payload alike: a duration, at least
 * `min`, at most `max` (never above the ceiling). A bound that is not itself a duration is a programming error.
 */
export function durationRule({ min, max = DURATION_CEILING }: DurationBounds = {}): DurationRule {
  const minMs = min === undefined ? 0 : parseDuration(min);
  const maxMs = parseDuration(max);
  if (minMs === undefined || maxMs === undefined || minMs > maxMs) throw new Error(`bad duration bounds: min ${min}, max ${max}`);
  const bounds = [min !== undefined && `at least ${min}`, `at most ${max}`].filter(Boolean).join(' and ');
  return {
    minMs,
    maxMs,
    bounds,
    check: (value) => {
      const ms = parseDuration(value.trim());
      return ms !== undefined && ms >= minMs && ms <= maxMs ? ms : undefined;
    },
  };
}

/** A short human form for reports: `190h`, `45m`, `12s`. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs >= 3_600_000) return `${Math.floor(ms / 3_600_000)}h`;
  if (abs >= 60_000) return `${Math.floor(ms / 60_000)}m`;
  return `${Math.floor(ms / 1_000)}s`;
}
