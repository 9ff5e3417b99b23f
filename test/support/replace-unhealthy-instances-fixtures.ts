// Fixtures of the replace-unhealthy-instances unit tests: a fixed clock, the default policy, fleets built from members.
import type { Fleet, Member, ReplacementPlan, ReplacePolicy, Request } from '../../functions/replace-unhealthy-instances/model.ts';
import { plan as planReplacements } from '../../functions/replace-unhealthy-instances/plan.ts';

export const NOW = new Date('2026-11-23T03:00:00.000Z');
export const ago = (ms: number): string => new Date(NOW.getTime() - ms).toISOString();
export const MIN = 60_000;
export const HOUR = 60 * MIN;

export const policy: ReplacePolicy & { readonly asgName: string } = {
  asgName: 'registry',
  targetGroupArn: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/registry/6d0ecf831eec9f09',
  maxReplacementsPerRun: 1,
  maxUnhealthyPercent: 50,
  gracePeriodMs: 5 * MIN,
  unhealthyConfirmMs: 2 * MIN,
  replacementTimeoutMs: 30 * MIN,
  replacementBudget: 3,
  replacementBudgetWindowMs: HOUR,
};

export const id = (n: number): string => `i-0${String(n).padStart(16, '0')}`;

/** A healthy, long-running member; override what the case is about. */
export function member(n: number, over: Partial<Member> = {}): Member {
  return {
    id: id(n),
    lifecycle: 'InService',
    asgHealth: 'Healthy',
    launchTime: ago(24 * HOUR),
    instanceStatus: 'ok',
    systemStatus: 'ok',
    target: { state: 'healthy' },
    ...over,
  };
}
export const sick = (n: number, over: Partial<Member> = {}): Member =>
  member(n, {
    target: { state: 'unhealthy', reason: 'Target.ResponseCodeMismatch', description: 'Health checks failed with these codes: [503]' },
    unhealthySince: ago(10 * MIN),
    ...over,
  });

export function fleet(members: Member[], over: Partial<Fleet['group']> = {}, extra: Partial<Fleet> = {}): Fleet {
  return {
    group: {
      name: 'registry',
      min: 2,
      max: 6,
      desired: members.length,
      suspendedProcesses: [],
      maintenancePolicy: { minHealthyPercentage: 100, maxHealthyPercentage: 200 },
      healthCheckType: 'EC2',
      ...over,
    },
    members,
    activitiesInProgress: [],
    instanceRefreshes: [],
    foreignTargets: 0,
    apiCalls: {},
    ...extra,
  };
}

export const schedule: Request = { kind: 'schedule' };
export const plan = (f: Fleet, request: Request = schedule, over: Partial<ReplacePolicy> = {}): ReplacementPlan =>
  planReplacements({ ...f, request }, { ...policy, ...over }, NOW);
export const brief = (p: ReplacementPlan) => ({
  actions: p.actions.map((a) => `${a.type} ${a.target}`),
  skipped: p.skipped.map((a) => `${a.guard} ${a.target}`),
});
