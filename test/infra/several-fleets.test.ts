// Two fleets (two stacks) in one app, one account and region: every job metric an alarm reads carries the stack's
// own `fleet` dimension, and each disk alarm reads its own Auto Scaling group's instances only, so fleet A's full
// disk never sets off fleet B's alarm (nor prunes through it).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { ALL_JOBS, JOBS } from '../../infra/config.ts';
import { parseFleetConfig } from '../../infra/config.ts';
import { RegistryFleetStack } from '../../infra/stack.ts';
import { fakeFunctionsDir } from './support.ts';

const fake = fakeFunctionsDir();
const templates: Record<string, Template> = {};

beforeAll(() => {
  const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'cdk-out-')) });
  const stacks = ['fleet-a', 'fleet-b'].map((stackName) => {
    const config = parseFleetConfig({ stackName, domainName: `${stackName}.corp.internal`, functionsDir: fake.dir });
    return new RegistryFleetStack(app, stackName, { config });
  });
  for (const stack of stacks) templates[stack.stackName] = Template.fromStack(stack);
}, 240_000);
afterAll(() => fake.remove());

type Resource = { Type: string; Properties: Record<string, unknown> };
type Dimension = { Name: string; Value: unknown };
type MetricQuery = { Expression?: unknown; MetricStat?: { Metric: { Namespace: string; Dimensions?: Dimension[] } } };
const resources = (t: Template, type: string) => Object.entries(t.findResources(type) as Record<string, Resource>);

/** Every dimension set of a job metric (namespace RegistryControlPlane) that an alarm reads. */
function jobMetricDimensions(t: Template): Dimension[][] {
  return resources(t, 'AWS::CloudWatch::Alarm').flatMap(([, a]) => {
    const p = a.Properties as { Namespace?: string; Dimensions?: Dimension[]; Metrics?: MetricQuery[] };
    const direct = p.Namespace === 'RegistryControlPlane' ? [p.Dimensions ?? []] : [];
    const inMath = (p.Metrics ?? []).flatMap((m) =>
      m.MetricStat?.Metric.Namespace === 'RegistryControlPlane' ? [m.MetricStat.Metric.Dimensions ?? []] : [],
    );
    return [...direct, ...inMath];
  });
}

function diskAlarmQuery(t: Template): unknown {
  const disk = resources(t, 'AWS::CloudWatch::Alarm').filter(([id]) => id.startsWith('ControlPlaneDiskAlarm'));
  expect(disk).toHaveLength(1);
  return ((disk[0]?.[1].Properties.Metrics as MetricQuery[])[0] as MetricQuery).Expression;
}

describe('several fleets in one account and region', () => {
  it.each(['fleet-a', 'fleet-b'])('%s: every job metric an alarm reads is of its own fleet', (fleet) => {
    const sets = jobMetricDimensions(templates[fleet] as Template);
    // FailedActions per job, the circuit breaker, the stalled/budget/certificate pages and NotSucceeding per job.
    expect(sets.length).toBeGreaterThanOrEqual(JOBS.length * 3);
    for (const dims of sets) {
      expect(dims.map((d) => d.Name).sort()).toEqual(['dryRun', 'fleet', 'service']);
      expect(dims).toContainEqual({ Name: 'fleet', Value: fleet });
    }
  });

  it.each(['fleet-a', 'fleet-b'])('%s: every job function publishes under its own fleet (FLEET_NAME)', (fleet) => {
    const fns = resources(templates[fleet] as Template, 'AWS::Lambda::Function').filter(([, f]) => f.Properties.FunctionName !== undefined);
    expect(fns).toHaveLength(ALL_JOBS.length);
    for (const [, f] of fns) expect((f.Properties.Environment as { Variables: Record<string, unknown> }).Variables.FLEET_NAME).toBe(fleet);
  });

  it.each(['fleet-a', 'fleet-b'])("%s: the disk alarm reads its own group's instances, the group purge-disk-volumes prunes", (fleet) => {
    const t = templates[fleet] as Template;
    const [group] = resources(t, 'AWS::AutoScaling::AutoScalingGroup');
    const groupRef = { Ref: group?.[0] };
    expect(diskAlarmQuery(t)).toEqual({
      'Fn::Join': [
        '',
        [
          "SELECT MAX(disk_used_percent) FROM SCHEMA(CWAgent, AutoScalingGroupName, InstanceId, fstype, path) WHERE AutoScalingGroupName = '",
          groupRef,
          "' AND path = '/'",
        ],
      ],
    });
    const purge = resources(t, 'AWS::Lambda::Function').find(([, f]) => f.Properties.FunctionName === `${fleet}-purge-disk-volumes`);
    expect((purge?.[1].Properties.Environment as { Variables: Record<string, unknown> }).Variables.ASG_NAME).toEqual(groupRef);
  });

  it("the two fleets' alarms differ only where they must: the fleet dimension and the dashboard", () => {
    const [a, b] = [templates['fleet-a'], templates['fleet-b']] as Template[];
    expect(JSON.stringify(jobMetricDimensions(a as Template)).replaceAll('fleet-a', 'X')).toBe(
      JSON.stringify(jobMetricDimensions(b as Template)).replaceAll('fleet-b', 'X'),
    );
    const dashboards = [a, b].map((t) => resources(t as Template, 'AWS::CloudWatch::Dashboard')[0]?.[1].Properties.DashboardName);
    expect(dashboards[0]).not.toEqual(dashboards[1]);
  });
});
