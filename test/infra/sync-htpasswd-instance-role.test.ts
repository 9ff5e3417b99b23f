// Only sync-htpasswd may read the registry users: the instance role (AmazonSSMManagedInstanceCore allows
// ssm:GetParameter(s) on *) carries an explicit deny for the users path, and for reading any path at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Template } from 'aws-cdk-lib/assertions';
import { fakeFunctionsDir, synthFleet } from './support.ts';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}

const fake = fakeFunctionsDir();
let t: Template;
let custom: Template;

beforeAll(() => {
  t = synthFleet({ domainName: 'registry.corp.internal' }, fake.dir).template;
  custom = synthFleet({ domainName: 'registry.corp.internal', usersParameterPath: '/teams/registry-users/' }, fake.dir).template;
}, 240_000);
afterAll(() => fake.remove());

/** Every statement of the inline and customer managed policies attached to the role EC2 assumes (the instance role). */
function instanceRoleStatements(template: Template): { roleId: string; statements: Statement[] } {
  const roles = Object.entries(template.findResources('AWS::IAM::Role') as Resources).filter(([, r]) =>
    JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('ec2.amazonaws.com'),
  );
  expect(roles).toHaveLength(1);
  const roleId = roles[0]?.[0] as string;
  const policies = ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']
    .flatMap((type) => Object.values(template.findResources(type) as Resources))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`));
  return { roleId, statements: policies.flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement) };
}

const denies = (statements: Statement[], action: string) =>
  statements.filter((s) => s.Effect === 'Deny' && [s.Action].flat().includes(action));
/** The ARN a statement's Resource renders to, with the partition/region/account tokens shown as placeholders. */
const arns = (s: Statement | undefined): string[] =>
  [s?.Resource ?? []]
    .flat()
    .map((r) =>
      typeof r === 'string'
        ? r
        : (r as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : '<token>')).join(''),
    );

describe('instance role: no reading of the registry users', () => {
  it('denies ssm:GetParameter, GetParameters and GetParameterHistory on the users path and everything under it', () => {
    const { statements } = instanceRoleStatements(t);
    for (const action of ['ssm:GetParameter', 'ssm:GetParameters', 'ssm:GetParameterHistory']) {
      const [deny] = denies(statements, action);
      expect(arns(deny), action).toEqual([
        'arn:<token>:ssm:<token>:<token>:parameter/registry/users',
        'arn:<token>:ssm:<token>:<token>:parameter/registry/users/*',
      ]);
    }
  });

  it('denies ssm:GetParametersByPath on every path (a recursive read of a parent path would return the users despite a deny on them)', () => {
    const [deny] = denies(instanceRoleStatements(t).statements, 'ssm:GetParametersByPath');
    expect(deny?.Resource).toBe('*');
  });

  it('follows usersParameterPath from the context', () => {
    const [deny] = denies(instanceRoleStatements(custom).statements, 'ssm:GetParameter');
    expect(arns(deny)).toEqual([
      'arn:<token>:ssm:<token>:<token>:parameter/teams/registry-users',
      'arn:<token>:ssm:<token>:<token>:parameter/teams/registry-users/*',
    ]);
  });

  it('keeps the managed instance core policy (the SSM agent) and denies nothing to the sync-htpasswd function', () => {
    const { roleId } = instanceRoleStatements(t);
    const role = (t.findResources('AWS::IAM::Role') as Resources)[roleId];
    expect(JSON.stringify(role?.Properties.ManagedPolicyArns)).toContain('AmazonSSMManagedInstanceCore');
    const fn = Object.values(
      t.findResources('AWS::Lambda::Function', { Properties: { FunctionName: 'registry-fleet-sync-htpasswd' } }) as Resources,
    )[0];
    const fnRoleId = (fn?.Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const fnStatements = Object.values(t.findResources('AWS::IAM::Policy') as Resources)
      .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${fnRoleId}"`))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
    expect(fnStatements.filter((s) => s.Effect === 'Deny')).toEqual([]);
    expect(fnStatements.some((s) => [s.Action].flat().includes('ssm:GetParametersByPath'))).toBe(true);
  });
});
