import { describe, expect, it } from 'vitest';
import { MAX_ALARM_PERIOD_S, schedulePeriodSeconds } from '../../infra/schedule-period.ts';

describe('schedule period (the run-succeeded alarm period)', () => {
  it.each([
    ['rate(5 minutes)', 300],
    ['rate(1 minute)', 60],
    ['rate(1 hour)', 3_600],
    ['rate(2 days)', 172_800],
    ['rate(7 days)', MAX_ALARM_PERIOD_S],
    ['cron(0 3 * * ? *)', 86_400],
    ['cron(30 3 ? * * *)', 86_400],
    ['cron(0/15 * * * ? *)', 900],
    ['cron(0,30 * * * ? *)', 1_800],
    ['cron(0 */6 * * ? *)', 21_600],
    ['cron(0 3,15 * * ? *)', 43_200],
    ['cron(0 3 ? * MON *)', MAX_ALARM_PERIOD_S],
    ['cron(0 3 1 * ? *)', MAX_ALARM_PERIOD_S],
  ])('%s → %i s', (expression, seconds) => {
    expect(schedulePeriodSeconds(expression)).toBe(seconds);
  });

  it('two periods always fit CloudWatch’s 7-day evaluation limit', () => {
    expect(2 * MAX_ALARM_PERIOD_S).toBe(7 * 86_400);
  });

  it('rejects what is not a schedule', () => {
    expect(() => schedulePeriodSeconds('every day')).toThrow('not an EventBridge schedule: every day');
  });
});
