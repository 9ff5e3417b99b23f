import type { RunContext } from '../../shared/job.ts';
import { logger } from '../../shared/observability.ts';
import { RequestCounter } from '../../shared/requests.ts';

/** A RunContext for calling a job's parts directly (summarize, plan); the fields a test gives win. */
export function testContext<C = unknown, O = unknown, S = unknown>(partial: Partial<RunContext<C, O, S>> = {}): RunContext<C, O, S> {
  return {
    config: {} as C,
    trigger: { kind: 'schedule', source: 'eventbridge-rule', schedule: 'test' } as RunContext<C, O, S>['trigger'],
    scope: {} as S,
    dryRun: false,
    now: new Date('2026-11-23T03:00:00.000Z'),
    signal: new AbortController().signal,
    logger,
    requests: new RequestCounter(),
    hasTime: () => true,
    ...partial,
  };
}
