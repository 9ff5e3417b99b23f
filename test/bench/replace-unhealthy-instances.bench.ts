/**
 * AWS API calls per run of replace-unhealthy-instances for fleets of 2, 20 and 200 instances (and 1,000 to show
 * where the 100-id EC2 batches start to count). The clients are mocked by the fleet model
 * (test/support/fleet-sim.ts), which counts every call; the job code is the real one.
 */
const SIZES = [2, 20, 200, 1000];

export default async function bench(): Promise<string> {
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  process.env.AWS_REGION ??= 'us-east-1';
  const { FleetSim, ASG_NAME, TARGET_GROUP_ARN } = await import('../support/fleet-sim.ts');
  const { job } = await import('../../functions/replace-unhealthy-instances/job.ts');
  const { loadReplaceUnhealthyInstancesConfig } = await import('../../functions/replace-unhealthy-instances/config.ts');
  const { runJob } = await import('../../shared/job.ts');
  const { UNHEALTHY_SINCE_TAG } = await import('../../functions/replace-unhealthy-instances/model.ts');
  const config = loadReplaceUnhealthyInstancesConfig({ AWS_REGION: 'us-east-1', ASG_NAME, TARGET_GROUP_ARN });
  const schedule = { 'detail-type': 'Scheduled Event', source: 'aws.events', resources: ['rule/bench'], detail: {} };

  type Row = { size: number; scenario: string; reads: number; writes: number; calls: Record<string, number>; ms: number };
  const rows: Row[] = [];
  const scenarios: [string, (sim: InstanceType<typeof FleetSim>) => void][] = [
    ['healthy fleet (no-op)', () => {}],
    ['one unhealthy, confirmed (SetInstanceHealth)', (sim) => {
      const i = sim.instances[0]!;
      i.targetFault = () => true;
      i.tags.set(UNHEALTHY_SINCE_TAG, new Date(sim.now - 600_000).toISOString());
    }],
    ['shared outage (circuit open)', (sim) => {
      sim.outage = () => true;
    }],
  ];
  const WRITES = new Set(['SetInstanceHealth', 'SetDesiredCapacity', 'TerminateInstanceInAutoScalingGroup', 'CreateTags', 'DeleteTags']);
  for (const size of SIZES) {
    for (const [scenario, arrange] of scenarios) {
      const times: number[] = [];
      let last: Record<string, number> = {};
      for (let rep = 0; rep < 5; rep += 1) {
        const sim = new FleetSim({ size, maintenancePolicy: { MinHealthyPercentage: 100, MaxHealthyPercentage: 200 } });
        const { restore } = sim.mock();
        arrange(sim);
        const started = performance.now();
        await runJob(job, config, schedule, {}, { clock: () => new Date(sim.now) });
        times.push(performance.now() - started);
        last = { ...sim.calls };
        restore();
      }
      const writes = Object.entries(last).filter(([k]) => WRITES.has(k)).reduce((s, [, n]) => s + n, 0);
      const reads = Object.values(last).reduce((s, n) => s + n, 0) - writes;
      times.sort((a, b) => a - b);
      rows.push({ size, scenario, reads, writes, calls: last, ms: times[Math.floor(times.length / 2)] ?? 0 });
    }
  }

  const base = (scenario: string) => rows.find((r) => r.size === 2 && r.scenario === scenario)!;
  const lines = [
    '## replace-unhealthy-instances: AWS API calls per run',
    '',
    'One scheduled run against the fleet model (mocked SDK clients counting every call; the job code is real).',
    'Reads: DescribeAutoScalingGroups, DescribeScalingActivities, DescribeInstanceRefreshes and DescribeTargetHealth',
    'once each, DescribeInstances and DescribeInstanceStatus once per 100 members. Time is the median of 5 runs',
    'of the whole job in-process (no network), i.e. the cost of the code, not of AWS.',
    '',
    '| fleet | scenario | reads | writes | total | vs 2 instances | by operation | median ms |',
    '|---:|---|---:|---:|---:|---:|---|---:|',
    ...rows.map((r) => {
      const b = base(r.scenario);
      const ratio = ((r.reads + r.writes) / (b.reads + b.writes)).toFixed(2);
      const ops = Object.entries(r.calls).map(([k, n]) => `${k.replace(/^Describe/, 'D.')} ${n}`).join(', ');
      return `| ${r.size} | ${r.scenario} | ${r.reads} | ${r.writes} | ${r.reads + r.writes} | ${ratio}× | ${ops} | ${r.ms.toFixed(1)} |`;
    }),
    '',
    `Target (the same count bar pagination) met: 2, 20 and 200 instances cost ${rows.filter((r) => r.size <= 200 && r.scenario === scenarios[0]![0]).map((r) => r.reads).join(', ')} reads;`,
    'the only growth is one more DescribeInstances + DescribeInstanceStatus pair per 100 members (EC2 takes at most',
    '100 ids per DescribeInstanceStatus call). Writes depend on what the plan does, never on fleet size.',
  ];
  return lines.join('\n');
}
