import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../shared/duration.ts';

describe('parseDuration', () => {
  it.each([
    ['168h', 168 * 3_600_000],
    ['90m', 90 * 60_000],
    ['30s', 30_000],
    ['30d', 30 * 86_400_000],
    ['1h30m', 90 * 60_000],
    ['1.5h', 90 * 60_000],
    ['500ms', 500],
    ['0', 0],
    ['2h45m30s', (2 * 3600 + 45 * 60 + 30) * 1000],
    ['36500d', 36_500 * 86_400_000],
  ])('%s → %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '7', '7 days', '-5m', '+5m', 'h', '5x', '5m ', '1h-30m', 'ten minutes', '99999999999999999999h', '36501d', '1e3h'])(
    'rejects %j',
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );
});

describe('formatDuration', () => {
  it.each([
    [190 * 3_600_000, '190h'],
    [45 * 60_000, '45m'],
    [12_000, '12s'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
