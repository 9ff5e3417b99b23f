import { describe, expect, it } from 'vitest';
import { summarizeReplacements } from '../../functions/replace-unhealthy-instances/job.ts';
import { fleet, member, plan, sick } from '../support/replace-unhealthy-instances-fixtures.ts';

describe('report', () => {
  it('summarizes counts, guards and the CircuitOpen metric', () => {
    const f = fleet(
      [sick(1), sick(2), sick(3, { instanceStatus: 'impaired' })],
      {},
      { apiCalls: { 'autoscaling:DescribeAutoScalingGroups': 1, 'ec2:DescribeInstances': 1 } },
    );
    const p = plan(f);
    const s = summarizeReplacements(
      f,
      p,
      p.actions.map(() => ({ status: 'applied' as const })),
    );
    expect(s.observed).toMatchObject({
      members: 3,
      inService: 3,
      healthy: 0,
      unhealthy: 3,
      byCause: { targetUnhealthy: 3, ec2Impaired: 1 },
      targets: { unhealthy: 3 },
      apiCalls: { total: 2 },
    });
    expect(s.details).toMatchObject({ circuitOpen: true, unhealthyPercent: 100, guards: ['circuit-open'] });
    expect(s.metrics).toEqual({
      CircuitOpen: 1,
      UnhealthyInstances: 3,
      ReplacementsStarted: 0,
      ReplacementsCompleted: 0,
      ReplacementStalled: 0,
      ForcedReplacements: 0,
      ReplacementBudgetExhausted: 0,
    });
  });

  it('counts only applied replacements as started', () => {
    const f = fleet([member(1), sick(2), member(3)]);
    const p = plan(f);
    expect(summarizeReplacements(f, p, [{ status: 'applied' }]).metrics).toMatchObject({ CircuitOpen: 0, ReplacementsStarted: 1 });
    expect(summarizeReplacements(f, p, [{ status: 'failed', error: 'x' }]).metrics).toMatchObject({ ReplacementsStarted: 0 });
    expect(summarizeReplacements(f, p, []).metrics).toMatchObject({ ReplacementsStarted: 0 });
  });
});
