// The stack's part of replace-unhealthy-instances' follow-ups (issue 18 item 1) and replacement budget (issue 12
// item 12): its own schedule group, a Scheduler role that can invoke this one function only, a job policy that
// creates and deletes only its own schedules, and the faster alarm setting. Synthesised with cdk-nag on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Template } from 'aws-cdk-lib/assertions';
import { FOLLOW_UP_SCHEDULE_PREFIX, REPLACEMENTS_TAG } from '../../shared/fleet-tags.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

const fake = fakeFunctionsDir();
let t: Template;
let fast: Template;
beforeAll(() => {
  t = synthFleet({ domainName: 'registry.corp.internal' }, fake.dir).template;
  fast = synthFleet({ domainName: 'registry.corp.internal', unhealthyAlarmDatapoints: '1' }, fake.dir).template;
}, 180_000);
afterAll(() => fake.remove());

type Resource = { Type: string; Properties: Record<string, unknown> };
type Statement = { Action: string | string[]; Resource: unknown; Condition?: Record<string, unknown>; Effect: string };
const resources = (tpl: Template): Record<string, Resource> => tpl.toJSON().Resources as Record<string, Resource>;
const ofType = (tpl: Template, type: string) => Object.entries(resources(tpl)).filter(([, r]) => r.Type === type);
const fnId = (): string =>
  ofType(t, 'AWS::Lambda::Function').find(([, r]) => r.Properties.FunctionName === 'registry-fleet-replace-unhealthy-instances')![0];
const roleOf = (logicalId: string): string =>
  ((resources(t)[logicalId]?.Properties.Role as { 'Fn::GetAtt': [string] }) ?? { 'Fn::GetAtt': [''] })['Fn::GetAtt'][0];
const statementsOfRole = (roleId: string): Statement[] =>
  ofType(t, 'AWS::IAM::Policy')
    .filter(([, p]) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
const actions = (s: Statement): string[] => [s.Action].flat();
const text = (v: unknown): string => JSON.stringify(v);

describe('replace-unhealthy-instances follow-ups in the stack', () => {
  it('has a dedicated schedule group, named after the stack', () => {
    const groups = ofType(t, 'AWS::Scheduler::ScheduleGroup');
    expect(groups.map(([, g]) => g.Properties.Name)).toEqual(['registry-fleet-replace-follow-ups']);
  });

  it('the Scheduler role is assumed by scheduler.amazonaws.com of this account only and may invoke only this function', () => {
    const roles = ofType(t, 'AWS::IAM::Role').filter(([, r]) =>
      text(r.Properties.AssumeRolePolicyDocument).includes('scheduler.amazonaws.com'),
    );
    expect(roles).toHaveLength(1);
    const [roleId, role] = roles[0]!;
    const trust = (role.Properties.AssumeRolePolicyDocument as { Statement: { Principal: unknown; Condition?: unknown }[] }).Statement;
    expect(trust).toHaveLength(1);
    expect(trust[0]?.Principal).toEqual({ Service: 'scheduler.amazonaws.com' });
    expect(trust[0]?.Condition).toEqual({ StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } });
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    const statements = statementsOfRole(roleId);
    expect(statements).toHaveLength(1);
    expect(actions(statements[0]!)).toEqual(['lambda:InvokeFunction']);
    expect(text(statements[0]!.Resource)).toMatch(/:function:registry-fleet-replace-unhealthy-instances"\]\]\}$/);
  });

  it('the job may create and delete only its own schedules, and pass only that role, only to Scheduler', () => {
    const statements = statementsOfRole(roleOf(fnId()));
    const scheduling = statements.filter((s) => actions(s).some((a) => a.startsWith('scheduler:')));
    expect(scheduling).toHaveLength(1);
    expect(actions(scheduling[0]!).sort()).toEqual(['scheduler:CreateSchedule', 'scheduler:DeleteSchedule']);
    expect(text(scheduling[0]!.Resource)).toContain(`:schedule/registry-fleet-replace-follow-ups/${FOLLOW_UP_SCHEDULE_PREFIX}*`);
    const pass = statements.filter((s) => actions(s).includes('iam:PassRole'));
    expect(pass).toHaveLength(1);
    expect(pass[0]?.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } });
    const schedulerRole = ofType(t, 'AWS::IAM::Role').find(([, r]) =>
      text(r.Properties.AssumeRolePolicyDocument).includes('scheduler.amazonaws.com'),
    )![0];
    expect(pass[0]?.Resource).toEqual({ 'Fn::GetAtt': [schedulerRole, 'Arn'] });
  });

  it('the budget ledger: CreateOrUpdateTags only on the group and only its one key', () => {
    const statements = statementsOfRole(roleOf(fnId()));
    const tagging = statements.filter((s) => actions(s).includes('autoscaling:CreateOrUpdateTags'));
    expect(tagging).toHaveLength(1);
    expect(actions(tagging[0]!)).toEqual(['autoscaling:CreateOrUpdateTags']);
    expect(text(tagging[0]!.Resource)).toContain('autoScalingGroupName/');
    expect(tagging[0]?.Condition).toEqual({ 'ForAllValues:StringEquals': { 'aws:TagKeys': [REPLACEMENTS_TAG] } });
  });

  it('the function knows its group, the role and its own ARN', () => {
    const env = (resources(t)[fnId()]?.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.FOLLOW_UP_GROUP).toBe('registry-fleet-replace-follow-ups');
    expect(text(env.FOLLOW_UP_ROLE_ARN)).toContain('Arn');
    expect(text(env.FOLLOW_UP_TARGET_ARN)).toMatch(/:function:registry-fleet-replace-unhealthy-instances/);
  });

  it('the UnHealthyHostCount alarm needs 2 one-minute datapoints by default, 1 with unhealthyAlarmDatapoints=1', () => {
    const alarmOf = (tpl: Template) =>
      ofType(tpl, 'AWS::CloudWatch::Alarm').find(([, a]) => a.Properties.MetricName === 'UnHealthyHostCount')![1].Properties;
    expect(alarmOf(t)).toMatchObject({ Period: 60, EvaluationPeriods: 2, DatapointsToAlarm: 2 });
    expect(alarmOf(fast)).toMatchObject({ Period: 60, EvaluationPeriods: 1, DatapointsToAlarm: 1 });
  });
});
