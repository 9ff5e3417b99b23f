import { beforeEach, describe, expect, it, vi } from 'vitest';
import * as z from 'zod/mini';
import { JobFailedError, UnsupportedEventError, ValidationError } from '../../shared/errors.ts';
import { applyEach, REPORT_ACTION_CAP, runJob, type Action, type JobDefinition, type Plan } from '../../shared/job.ts';
import { logger } from '../../shared/observability.ts';
import { countRequests } from '../../shared/requests.ts';
import { loadEvent } from '../support/events.ts';

/**
 * A job defined for this test only: it deletes "widgets" older than a max age from an in-memory world, so
 * every assertion is on the world's resulting state and on the report.
 */
interface Widget {
  id: string;
  ageH: number;
}
interface Config {
  dryRun: boolean;
  region: string;
  s3ForcePathStyle: boolean;
  maxAgeH: number;
}
interface DeleteWidget extends Action {
  type: 'delete-widget';
  ageH: number;
}

let world: Map<string, Widget>;
const failing = new Set<string>();

const options = {
  maxAgeH: z.optional(z.number({ error: 'expected a number of hours' }).check(z.int(), z.gte(1, { error: 'expected at least 1' }))),
};

function planWidgets(widgets: readonly Widget[], maxAgeH: number): Plan<DeleteWidget> {
  const actions: DeleteWidget[] = [];
  const skipped: DeleteWidget[] = [];
  for (const w of widgets) {
    const action = { type: 'delete-widget' as const, target: w.id, ageH: w.ageH };
    if (w.ageH > maxAgeH) actions.push({ ...action, reason: `${w.ageH}h > ${maxAgeH}h` });
    else if (w.id.startsWith('keep')) skipped.push({ ...action, reason: 'tagged keep' });
  }
  return { actions, skipped };
}

type Types = {
  config: Config;
  options: typeof options;
  scope: { maxAgeH: number };
  state: Widget[];
  action: DeleteWidget;
  plan: Plan<DeleteWidget>;
  clients: undefined;
};

const widgetJob: JobDefinition<Types> = {
  name: 'widget-janitor',
  accepts: ['schedule', 'alarm', 'manual'],
  options,
  clients: () => undefined,
  scope: (trigger, c) => ({ maxAgeH: (trigger.kind === 'manual' ? trigger.options.maxAgeH : undefined) ?? c.maxAgeH }),
  observe: async () => [...world.values()],
  plan: (widgets, ctx) => planWidgets(widgets, ctx.scope.maxAgeH),
  apply: ({ actions }, ctx) =>
    applyEach(actions, ctx, async (a) => {
      if (failing.has(a.target)) throw Object.assign(new Error('access denied'), { name: 'AccessDenied' });
      world.delete(a.target);
    }),
  summarize: (widgets, plan) => ({
    observed: { widgets: widgets.length },
    details: { oldest: Math.max(0, ...plan.actions.map((a) => a.ageH)) },
  }),
};

const config: Config = { dryRun: false, region: 'us-east-1', s3ForcePathStyle: false, maxAgeH: 24 };
const clock = () => new Date('2026-11-23T03:00:00.000Z');
const run = (event: unknown, overrides: Partial<Config> = {}, context = {}) =>
  runJob(widgetJob, { ...config, ...overrides }, event, context, { clock });

function seed(widgets: Widget[]): void {
  world = new Map(widgets.map((w) => [w.id, w]));
}

beforeEach(() => {
  failing.clear();
  seed([
    { id: 'w-old-1', ageH: 100 },
    { id: 'w-old-2', ageH: 48 },
    { id: 'w-new', ageH: 2 },
    { id: 'keep-me', ageH: 1 },
  ]);
});

describe('runJob', () => {
  it('applies the plan and reports every action', async () => {
    const report = await run(loadEvent('schedule.json'));
    expect([...world.keys()]).toEqual(['w-new', 'keep-me']);
    expect(report).toMatchObject({
      job: 'widget-janitor',
      trigger: { kind: 'schedule' },
      dryRun: false,
      startedAt: '2026-11-23T03:00:00.000Z',
      finishedAt: '2026-11-23T03:00:00.000Z',
      observed: { widgets: 4 },
      details: { oldest: 100 },
      summary: { planned: 0, applied: 2, skipped: 1, failed: 0 },
      truncated: false,
    });
    expect(report.actions).toEqual([
      { type: 'delete-widget', target: 'w-old-1', reason: '100h > 24h', status: 'applied', detail: { ageH: 100 } },
      { type: 'delete-widget', target: 'w-old-2', reason: '48h > 24h', status: 'applied', detail: { ageH: 48 } },
      { type: 'delete-widget', target: 'keep-me', reason: 'tagged keep', status: 'skipped', detail: { ageH: 1 } },
    ]);
    expect(report.stoppedEarly).toBeUndefined();
  });

  it('is idempotent: a second run plans nothing', async () => {
    await run(loadEvent('schedule.json'));
    const again = await run(loadEvent('schedule.json'));
    expect(again.summary).toEqual({ planned: 0, applied: 0, skipped: 1, failed: 0 });
  });

  describe('dry run', () => {
    it('from the payload: applies nothing and reports every action planned', async () => {
      const report = await run({ dryRun: true });
      expect(world.size).toBe(4);
      expect(report.dryRun).toBe(true);
      expect(report.actions.filter((a) => a.type === 'delete-widget' && a.status !== 'skipped').map((a) => a.status)).toEqual([
        'planned',
        'planned',
      ]);
      expect(report.summary).toEqual({ planned: 2, applied: 0, skipped: 1, failed: 0 });
    });

    it('from DRY_RUN: a payload cannot make the run less safe', async () => {
      const report = await run({ dryRun: false }, { dryRun: true });
      expect(world.size).toBe(4);
      expect(report.dryRun).toBe(true);
      expect(report.summary.planned).toBe(2);
    });

    it('from DRY_RUN: leashes scheduled runs too', async () => {
      const report = await run(loadEvent('schedule.json'), { dryRun: true });
      expect(world.size).toBe(4);
      expect(report.summary).toMatchObject({ planned: 2, applied: 0 });
    });

    it('reports the same plan as the real run', async () => {
      const dry = await run({ dryRun: true });
      const real = await run({});
      expect(dry.actions.map(({ type, target, reason }) => [type, target, reason])).toEqual(
        real.actions.map(({ type, target, reason }) => [type, target, reason]),
      );
    });
  });

  it('passes manual options to the plan', async () => {
    const report = await run({ maxAgeH: 72 });
    expect([...world.keys()]).toEqual(['w-old-2', 'w-new', 'keep-me']);
    expect(report.trigger).toEqual({ kind: 'manual', dryRun: false, options: { maxAgeH: 72 } });
  });

  describe('failures', () => {
    it('reports a failing action, carries on with the others, logs the report, then throws JobFailedError', async () => {
      failing.add('w-old-1');
      const info = vi.spyOn(logger, 'info');
      const error = await run(loadEvent('schedule.json')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(JobFailedError);
      expect((error as Error).message).toBe(
        'widget-janitor: 1 of 2 actions failed (first: delete-widget w-old-1: AccessDenied: access denied)',
      );
      expect([...world.keys()]).toEqual(['w-old-1', 'w-new', 'keep-me']);
      const logged = info.mock.calls.find(([message]) => message === 'job report');
      expect(logged?.[1]).toMatchObject({
        report: {
          summary: { planned: 0, applied: 1, skipped: 1, failed: 1 },
          actions: expect.arrayContaining([
            expect.objectContaining({ target: 'w-old-1', status: 'failed', error: 'AccessDenied: access denied' }),
          ]),
        },
      });
      info.mockRestore();
    });

    it('bad input throws before anything is observed or changed', async () => {
      await expect(run({ maxAgeH: 0 })).rejects.toThrow(ValidationError);
      await expect(run({ maxAgeH: 0 })).rejects.toThrow('maxAgeH: expected at least 1');
      await expect(run({ maxAgeH: 24, force: true })).rejects.toThrow('unknown key "force"');
      expect(world.size).toBe(4);
    });

    it('a trigger kind the job does not act on is an UnsupportedEventError', async () => {
      await expect(run(loadEvent('parameter-change.json'))).rejects.toThrow(UnsupportedEventError);
      await expect(run(loadEvent('parameter-change.json'))).rejects.toThrow('widget-janitor does not act on parameter-change triggers');
      expect(world.size).toBe(4);
    });
  });

  it('an alarm back in OK plans nothing', async () => {
    const report = await run(loadEvent('alarm-state-change-ok.json'));
    expect(world.size).toBe(4);
    expect(report.actions).toEqual([]);
    expect(report.details).toEqual({ nothingToDo: 'alarm registry-unhealthy-hosts is OK' });
  });

  it('an alarm in ALARM runs the job', async () => {
    const report = await run(loadEvent('alarm-action.json'));
    expect(report.summary.applied).toBe(2);
  });

  it('an ASG test notification is recognised and does nothing', async () => {
    const report = await run(loadEvent('autoscaling-test-notification.json'));
    expect(report.trigger).toEqual({ kind: 'ignored', reason: 'autoscaling:TEST_NOTIFICATION' });
    expect(world.size).toBe(4);
  });

  it('stops taking new actions when the time budget runs low, and says so', async () => {
    seed(Array.from({ length: 10 }, (_, i) => ({ id: `w-${i}`, ageH: 100 })));
    let remaining = 60_000;
    const context = { getRemainingTimeInMillis: () => (remaining -= 10_000) }; // 50 s, 40 s, 30 s, 20 s, 10 s …
    const report = await run(loadEvent('schedule.json'), {}, context);
    expect(report.stoppedEarly).toBe('time');
    expect(report.summary).toEqual({ planned: 0, applied: 4, skipped: 6, failed: 0 });
    expect(world.size).toBe(6);
    expect(report.actions[9]).toMatchObject({ target: 'w-9', status: 'skipped', reason: expect.stringMatching(/time budget ran low/) });
  });

  it('caps the listed actions but keeps the counts exact', async () => {
    const n = REPORT_ACTION_CAP + 700;
    seed(Array.from({ length: n }, (_, i) => ({ id: `w-${i}`, ageH: 100 })));
    const report = await run({ dryRun: true });
    expect(report.truncated).toBe(true);
    expect(report.actions).toHaveLength(REPORT_ACTION_CAP);
    expect(report.summary).toEqual({ planned: n, applied: 0, skipped: 0, failed: 0 });
  });

  it('lists failures first when truncating', async () => {
    const n = REPORT_ACTION_CAP + 10;
    seed(Array.from({ length: n }, (_, i) => ({ id: `w-${String(i).padStart(4, '0')}`, ageH: 100 })));
    const last = `w-${String(n - 1).padStart(4, '0')}`; // would be cut without the failures-first order
    failing.add(last);
    const info = vi.spyOn(logger, 'info');
    await expect(run(loadEvent('schedule.json'))).rejects.toThrow(JobFailedError);
    const report = (
      info.mock.calls.find(([m]) => m === 'job report')?.[1] as {
        report: { actions: { target: string; status: string }[]; summary: unknown; truncated: boolean };
      }
    ).report;
    expect(report.truncated).toBe(true);
    expect(report.actions).toHaveLength(REPORT_ACTION_CAP);
    expect(report.actions[0]).toMatchObject({ target: last, status: 'failed' });
    expect(report.summary).toEqual({ planned: 0, applied: n - 1, skipped: 0, failed: 1 });
    info.mockRestore();
  });
});

describe('applyEach', () => {
  const ctx = { config: {}, signal: new AbortController().signal, hasTime: () => true };

  it('stops after a failure when the job asks for it', async () => {
    const done: number[] = [];
    const outcomes = await applyEach(
      [1, 2, 3],
      ctx,
      async (n) => {
        if (n === 2) throw new Error('boom');
        done.push(n);
      },
      { stopOnFailure: true },
    );
    expect(done).toEqual([1]);
    expect(outcomes).toEqual([{ status: 'applied' }, { status: 'failed', error: 'boom' }, undefined]);
  });

  it('runs at most `concurrency` at a time and keeps the order of outcomes', async () => {
    let inFlight = 0;
    let peak = 0;
    const outcomes = await applyEach(
      [30, 10, 20, 5, 15],
      ctx,
      async (ms) => {
        inFlight += 1;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, ms));
        inFlight -= 1;
        return { status: 'applied', detail: { ms } };
      },
      { concurrency: 2 },
    );
    expect(peak).toBe(2);
    expect(outcomes.map((o) => (o?.status === 'applied' ? o.detail?.ms : undefined))).toEqual([30, 10, 20, 5, 15]);
  });
});

describe('dry run asked for on a copied AWS event', () => {
  it.each(['schedule.json', 'alarm-action.json', 'alarm-state-change.json', 'scheduler.json'])(
    '%s with "dryRun": true applies nothing',
    async (file) => {
      const report = await run({ ...loadEvent(file), dryRun: true });
      expect(report.dryRun).toBe(true);
      expect(world.size).toBe(4);
      expect(report.summary).toMatchObject({ planned: 2, applied: 0 });
    },
  );

  it('rejects a dryRun that is not a boolean before anything happens', async () => {
    await expect(run({ ...loadEvent('schedule.json'), dryRun: 'yes' })).rejects.toThrow('dryRun: expected true or false');
    expect(world.size).toBe(4);
  });
});

describe('the run context', () => {
  it('a refusal is reported (dry runs too), applies nothing for it, and fails the run after the report', async () => {
    let logged: unknown;
    const spy = vi.spyOn(logger, 'info').mockImplementation((...args: unknown[]) => {
      logged = (args[1] as { report?: unknown } | undefined)?.report;
    });
    const refusing: JobDefinition<Types> = {
      ...widgetJob,
      plan: (widgets, ctx) => ({
        ...planWidgets(widgets, ctx.scope.maxAgeH),
        refusals: [{ type: 'refuse-widget', target: 'w-old-1', reason: 'not ours' }],
      }),
    };
    for (const dryRun of [true, false]) {
      seed([{ id: 'w-old-1', ageH: 100 }]);
      const error = await runJob(refusing, { ...config, dryRun }, loadEvent('schedule.json'), {}, { clock }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(JobFailedError);
      expect((error as Error).message).toBe('widget-janitor: refused (1): refuse-widget w-old-1: not ours');
      expect(logged).toMatchObject({ dryRun, refusals: [{ type: 'refuse-widget', target: 'w-old-1', reason: 'not ours' }] });
    }
    spy.mockRestore();
  });

  it('computes the scope once, before observe, and hands observe/plan/apply/summarize one context', async () => {
    const seen: { phase: string; ctx: unknown }[] = [];
    let scopes = 0;
    const watching: JobDefinition<Types> = {
      ...widgetJob,
      scope: (trigger, c) => {
        scopes += 1;
        return widgetJob.scope(trigger, c);
      },
      observe: async (clients, scope, ctx) => {
        seen.push({ phase: 'observe', ctx });
        return widgetJob.observe(clients, scope, ctx);
      },
      plan: (state, ctx) => {
        seen.push({ phase: 'plan', ctx });
        return widgetJob.plan(state, ctx);
      },
      apply: (plan, ctx, clients) => {
        seen.push({ phase: 'apply', ctx });
        return widgetJob.apply(plan, ctx, clients);
      },
      summarize: (state, plan, outcomes, ctx) => {
        seen.push({ phase: 'summarize', ctx });
        return widgetJob.summarize(state, plan, outcomes, ctx);
      },
    };
    await runJob(watching, config, { maxAgeH: 50 }, {}, { clock });
    expect(scopes).toBe(1);
    expect(seen.map((s) => s.phase)).toEqual(['observe', 'plan', 'apply', 'summarize']);
    expect(new Set(seen.map((s) => s.ctx)).size).toBe(1);
    expect(seen[0]?.ctx).toMatchObject({ scope: { maxAgeH: 50 }, dryRun: false, now: clock() });
    expect([...world.keys()]).toEqual(['w-old-2', 'w-new', 'keep-me']);
  });

  it('bad input in the scope throws before observe', async () => {
    let observed = false;
    const strict: JobDefinition<Types> = {
      ...widgetJob,
      scope: () => {
        throw new ValidationError('invalid manual payload: maxAgeH: expected at least 1');
      },
      observe: async () => {
        observed = true;
        return [];
      },
    };
    await expect(runJob(strict, config, {}, {}, { clock })).rejects.toThrow(ValidationError);
    expect(observed).toBe(false);
  });

  it('counts the requests of one run on the clients themselves, retries included, and not those of another run', async () => {
    class FakeClient {
      async send(command: { schema: unknown[] }): Promise<unknown> {
        if (command.schema[2] === 'Flaky') throw Object.assign(new Error('slow down'), { $metadata: { attempts: 3 } });
        return { $metadata: { attempts: 1 } };
      }
    }
    const client = countRequests(new FakeClient(), 'widgets');
    const op = (name: string) => ({ schema: [9, 'ns', name] });
    const counting: JobDefinition<Types> = {
      ...widgetJob,
      observe: async (_clients, _scope, ctx) => {
        await client.send(op('ListWidgets'));
        await client.send(op('ListWidgets'));
        await client.send(op('Flaky')).catch(() => undefined);
        expect(ctx.requests.toJSON()).toEqual({ total: 5, 'widgets:Flaky': 3, 'widgets:ListWidgets': 2 });
        return [];
      },
      summarize: (_state, _plan, _outcomes, ctx) => ({ observed: {}, details: { requests: ctx.requests.of('widgets') } }),
    };
    const [a, b] = await Promise.all([runJob(counting, config, {}, {}, { clock }), runJob(counting, config, {}, {}, { clock })]);
    expect(a.details?.requests).toEqual({ total: 5, Flaky: 3, ListWidgets: 2 });
    expect(b.details?.requests).toEqual({ total: 5, Flaky: 3, ListWidgets: 2 });
    await client.send(op('ListWidgets')); // outside any run: counted nowhere, and no error
  });
});

describe('dryRunSafe actions', () => {
  it('a dry run applies only the actions marked dryRunSafe and reports the rest as planned', async () => {
    const creating: JobDefinition<Types> = {
      ...widgetJob,
      plan: (widgets, ctx) => {
        const p = planWidgets(widgets, ctx.scope.maxAgeH);
        return { ...p, actions: p.actions.map((a) => (a.target === 'w-old-2' ? { ...a, dryRunSafe: true as const } : a)) };
      },
    };
    const report = await runJob(creating, { ...config, dryRun: true }, loadEvent('schedule.json'), {}, { clock });
    expect([...world.keys()]).toEqual(['w-old-1', 'w-new', 'keep-me']);
    expect(report.actions.map((a) => [a.target, a.status])).toEqual([
      ['w-old-1', 'planned'],
      ['w-old-2', 'applied'],
      ['keep-me', 'skipped'],
    ]);
  });
});
