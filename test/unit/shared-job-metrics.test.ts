import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { applyEach, runJob, type Action, type JobDefinition, type Plan } from '../../shared/job.ts';
import { metrics } from '../../shared/observability.ts';

/**
 * The runner's EMF document per run: its dimension set is what every alarm of the stack names (infra/constructs/
 * monitoring.ts), so a fleet's alarms see only that fleet's runs when FLEET_NAME is set.
 */
interface Config {
  dryRun: boolean;
  region: string;
  s3ForcePathStyle: boolean;
  fleet?: string;
}
interface Touch extends Action {
  type: 'touch';
}
const options = {};
type Types = {
  config: Config;
  options: typeof options;
  scope: undefined;
  state: string[];
  action: Touch;
  plan: Plan<Touch>;
  clients: undefined;
};

const touchJob: JobDefinition<Types> = {
  name: 'touch-janitor',
  accepts: ['schedule', 'manual'],
  options,
  clients: () => undefined,
  scope: () => undefined,
  observe: async () => ['a', 'b'],
  plan: (targets) => ({ actions: targets.map((target) => ({ type: 'touch' as const, target, reason: 'old' })), skipped: [] }),
  apply: ({ actions }, ctx) => applyEach(actions, ctx, async () => {}),
  summarize: () => ({ observed: {} }),
};

interface Emf {
  _aws: { CloudWatchMetrics: { Dimensions: string[][]; Metrics: { Name: string }[] }[] };
  [key: string]: unknown;
}
let documents: Emf[];

beforeEach(() => {
  documents = [];
  const publish = metrics.publishStoredMetrics.bind(metrics);
  // Metrics are disabled under test (vitest.config.ts): keep the document the runner would print, then clear as usual.
  vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => {
    documents.push(metrics.serializeMetrics() as unknown as Emf);
    return publish();
  });
});
afterEach(() => vi.restoreAllMocks());

const clock = () => new Date('2026-11-23T03:00:00.000Z');
const run = (config: Partial<Config>, event: unknown = {}) =>
  runJob(touchJob, { dryRun: false, region: 'us-east-1', s3ForcePathStyle: false, ...config }, event, {}, { clock });

describe('the run metrics', () => {
  it('carry the fleet dimension next to dryRun when FLEET_NAME is configured', async () => {
    await run({ fleet: 'fleet-a' });
    expect(documents).toHaveLength(1);
    const [doc] = documents;
    expect(doc?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([expect.arrayContaining(['service', 'dryRun', 'fleet'])]);
    expect(doc?._aws.CloudWatchMetrics[0]?.Dimensions[0]).toHaveLength(3);
    expect(doc).toMatchObject({ fleet: 'fleet-a', dryRun: 'false', FailedActions: 0, AppliedActions: 2, RunSucceeded: 1 });
  });

  it('keep service + dryRun only when no fleet is configured (a stack of one fleet before FLEET_NAME existed)', async () => {
    await run({});
    const [doc] = documents;
    expect(doc?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([expect.arrayContaining(['service', 'dryRun'])]);
    expect(doc?._aws.CloudWatchMetrics[0]?.Dimensions[0]).toHaveLength(2);
    expect(doc).not.toHaveProperty('fleet');
  });

  it("never carry one run's fleet into the next run of the same environment", async () => {
    await run({ fleet: 'fleet-a' });
    await run({ fleet: 'fleet-b', dryRun: true });
    expect(documents.map((d) => [d['fleet'], d['dryRun']])).toEqual([
      ['fleet-a', 'false'],
      ['fleet-b', 'true'],
    ]);
  });
});
