/**
 * How often an EventBridge schedule expression fires, in seconds: what the "has not succeeded for 2 of its
 * schedule periods" alarm uses as its period. Capped so that two periods fit CloudWatch's 7-day evaluation
 * limit (a weekly or monthly cron then alarms after 7 days, not 14 or 60).
 */
export const MAX_ALARM_PERIOD_S = 302_400; // 3.5 days: 2 periods = 7 days, a multiple of 60

const UNIT_S: Record<string, number> = { minute: 60, minutes: 60, hour: 3_600, hours: 3_600, day: 86_400, days: 86_400 };

export function schedulePeriodSeconds(expression: string): number {
  const rate = /^rate\((\d+) (minutes?|hours?|days?)\)$/.exec(expression);
  if (rate) return cap(Number(rate[1]) * (UNIT_S[rate[2] as string] as number));
  const cron = /^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$/.exec(expression);
  if (!cron) throw new Error(`schedulePeriodSeconds: not an EventBridge schedule: ${expression}`);
  const [, minute, hour, dayOfMonth, , dayOfWeek] = cron as unknown as string[];
  const step = (field: string): number | undefined => {
    const m = /^(\*|\d+)\/(\d+)$/.exec(field);
    return m ? Number(m[2]) : undefined;
  };
  // Several times an hour: the step, or the spacing of a list of minutes.
  if (hour === '*')
    return cap(step(minute as string) !== undefined ? (step(minute as string) as number) * 60 : listSpacing(minute as string, 60) * 60);
  if (step(hour as string) !== undefined) return cap((step(hour as string) as number) * 3_600);
  if ((hour as string).includes(',')) return cap(listSpacing(hour as string, 24) * 3_600);
  const everyDay = ['*', '?'].includes(dayOfMonth as string) && ['*', '?'].includes(dayOfWeek as string);
  return cap(everyDay ? 86_400 : 7 * 86_400);
}

/** The longest gap between the values of a comma list on a cycle of `cycle` (`0,30` of 60 → 30); 1 × cycle for one value. */
function listSpacing(field: string, cycle: number): number {
  const values = field
    .split(',')
    .map(Number)
    .filter((n) => Number.isInteger(n))
    .sort((a, b) => a - b);
  if (values.length < 2) return cycle;
  const gaps = values.map((v, i) => ((values[(i + 1) % values.length] as number) - v + cycle) % cycle || cycle);
  return Math.max(...gaps);
}

const cap = (seconds: number): number => Math.min(Math.max(60, Math.ceil(seconds / 60) * 60), MAX_ALARM_PERIOD_S);
