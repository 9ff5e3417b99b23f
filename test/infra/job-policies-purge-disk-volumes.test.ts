import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Template } from 'aws-cdk-lib/assertions';
import { MARK_TAG } from '../../shared/fleet-tags.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

/**
 * purge-disk-volumes' IAM as a second line of defence behind its plan (issue 12, item 8): tag writes on the
 * fleet's volumes only for the job's own mark key, so even a faulty plan cannot strip the keep or the fleet tag.
 */

const fake = fakeFunctionsDir();
let t: Template;
beforeAll(() => {
  t = synthFleet({ domainName: 'registry.corp.internal' }, fake.dir).template;
}, 120_000);
afterAll(() => fake.remove());

type Statement = { Action: string | string[]; Resource: unknown; Condition?: Record<string, unknown>; Effect: string };
type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

function statements(): Statement[] {
  const fns = Object.entries(
    t.findResources('AWS::Lambda::Function', { Properties: { FunctionName: 'registry-fleet-purge-disk-volumes' } }) as Resources,
  );
  expect(fns).toHaveLength(1);
  const roleId = (fns[0]![1].Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
  const policies = Object.values(t.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } }) as Resources);
  return policies.flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}
const actions = (s: Statement): string[] => [s.Action].flat();
const onVolumes = (s: Statement): boolean => JSON.stringify(s.Resource).includes(':volume/*');

describe('purge-disk-volumes: tag writes', () => {
  it('CreateTags/DeleteTags on volumes: fleet-tagged volumes only, only the mark key, and a tag key must be named', () => {
    const tagging = statements().filter((s) => onVolumes(s) && actions(s).some((a) => a === 'ec2:CreateTags' || a === 'ec2:DeleteTags'));
    expect(tagging).toHaveLength(1);
    const [s] = tagging;
    expect(actions(s!).sort()).toEqual(['ec2:CreateTags', 'ec2:DeleteTags']);
    // ForAllValues is true for a request with no tag keys at all (DeleteTags without Tags removes every tag):
    // the Null condition makes a key list mandatory.
    expect(s!.Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/registry-fleet': 'registry-fleet' },
      'ForAllValues:StringEquals': { 'aws:TagKeys': [MARK_TAG] },
      Null: { 'aws:TagKeys': 'false' },
    });
  });

  it('no other statement lets the job tag or untag a volume, or tag anything on any resource', () => {
    const others = statements().filter((s) => actions(s).some((a) => ['ec2:CreateTags', 'ec2:DeleteTags', 'ec2:*', '*'].includes(a)));
    const unconditioned = others.filter((s) => !s.Condition);
    expect(unconditioned).toEqual([]);
    // Tags on snapshots only while CreateSnapshot creates them (the snapshot's own tags).
    const snapshotTags = others.filter((s) => !onVolumes(s));
    expect(snapshotTags.map((s) => [actions(s), s.Condition])).toEqual([
      [['ec2:CreateTags'], { StringEquals: { 'ec2:CreateAction': 'CreateSnapshot' } }],
    ]);
  });

  it('DeleteVolume and CreateSnapshot stay on fleet-tagged volumes; the history lookup is allowed', () => {
    const del = statements().find((s) => actions(s).includes('ec2:DeleteVolume'));
    expect(actions(del!).sort()).toEqual(['ec2:CreateSnapshot', 'ec2:DeleteVolume']);
    expect(del!.Condition).toEqual({ StringEquals: { 'aws:ResourceTag/registry-fleet': 'registry-fleet' } });
    expect(statements().flatMap(actions)).toContain('cloudtrail:LookupEvents');
  });
});
