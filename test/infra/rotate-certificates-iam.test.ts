import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { LEGACY_TAG_ROTATION_OF, TAG_ROLLED_BACK_AT, TAG_ROTATION_OF } from '../../shared/fleet-tags.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

// rotate-certificates' IAM and triggers (issue 13, items 3 and 4): the role can tag, import over and delete only
// certificates that are the listener's or the fleet's; the expiry rule starts a run only for the listener's certificate.
const fake = fakeFunctionsDir();
/** The pending secret's logical id in the releases whose stages could hold privateKeyPem. */
const PENDING_SECRET_BEFORE_NO_KEYS = 'ControlPlaneAcmePendingSecret5BA8900E';
const CERT = 'arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555';
let acme: Template;
let acm: Template;

beforeAll(() => {
  acme = synthFleet(
    {
      stackName: 'edge-registry',
      domainName: 'registry.corp.internal',
      hostedZoneId: 'Z0123456789ABCDEFGHIJ',
      hostedZoneName: 'corp.internal',
      certificateArn: CERT,
      certificateMode: 'acme',
      acmeDirectoryUrl: 'https://acme-v02.api.letsencrypt.org/directory',
      acmeEmail: 'ops@example.com',
    },
    fake.dir,
  ).template;
  acm = synthFleet({ domainName: 'registry.corp.internal' }, fake.dir).template;
}, 240_000);
afterAll(() => fake.remove());

type Statement = { Action: string | string[]; Resource: unknown; Condition?: Record<string, Record<string, unknown>>; Effect: string };
type Resources = Record<string, { Properties: Record<string, unknown> }>;
function statements(t: Template, fleet: string): Statement[] {
  const fns = t.findResources('AWS::Lambda::Function', { Properties: { FunctionName: `${fleet}-rotate-certificates` } }) as Resources;
  const role = (Object.values(fns)[0]?.Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
  const policies = Object.values(t.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: role }] } }) as Resources);
  return policies.flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}
const withAction = (st: Statement[], action: string) => st.filter((s) => [s.Action].flat().includes(action));

describe('rotate-certificates IAM: no certificate outside the listener and the fleet is tagged, imported over or deleted', () => {
  it.each([
    ['acme mode, given certificate', () => acme, 'edge-registry'],
    ["acm mode, the stack's certificate", () => acm, 'registry-fleet'],
  ])('%s', (_, template, fleet) => {
    const st = statements(template(), fleet);
    const fleetTag = { [`aws:ResourceTag/registry-fleet`]: fleet };
    // Nothing writes certificates on `*`.
    for (const action of ['acm:AddTagsToCertificate', 'acm:ImportCertificate', 'acm:DeleteCertificate', 'acm:RequestCertificate']) {
      for (const s of withAction(st, action)) expect(s.Condition ?? s.Resource, `${action} on ${JSON.stringify(s.Resource)}`).not.toBe('*');
    }
    const [tagging, ...moreTagging] = withAction(st, 'acm:AddTagsToCertificate');
    expect(moreTagging).toEqual([]);
    expect(tagging?.Condition).toEqual({
      StringEquals: fleetTag,
      'ForAllValues:StringEquals': { 'aws:TagKeys': ['registry-fleet', TAG_ROTATION_OF, TAG_ROLLED_BACK_AT] },
    });
    const [request] = withAction(st, 'acm:RequestCertificate');
    expect(request?.Condition).toEqual({
      StringEquals: { 'aws:RequestTag/registry-fleet': fleet },
      'ForAllValues:StringEquals': { 'aws:TagKeys': ['registry-fleet', TAG_ROTATION_OF] },
    });
    expect(withAction(st, 'acm:RequestCertificate')).toHaveLength(1);
    const imports = withAction(st, 'acm:ImportCertificate');
    expect(imports).toHaveLength(2);
    expect(imports.find((s) => s.Condition)?.Condition).toEqual({ StringEquals: fleetTag });
    expect(JSON.stringify(imports.find((s) => !s.Condition)?.Resource)).not.toContain('*');
    expect(withAction(st, 'acm:DeleteCertificate').map((s) => s.Condition)).toEqual([{ StringEquals: fleetTag }]);
    expect(st.some((s) => JSON.stringify(s).includes(LEGACY_TAG_ROTATION_OF))).toBe(false); // old keys are read, never written
  });

  it('the given certificate is the one import needs no fleet tag for', () => {
    const imports = withAction(statements(acme, 'edge-registry'), 'acm:ImportCertificate');
    expect(imports.find((s) => !s.Condition)?.Resource).toBe(CERT);
  });

  it('acme mode: a pending-stage secret next to the account secret, read and written only by rotate-certificates', () => {
    const secrets = Object.keys(
      acme.findResources('AWS::SecretsManager::Secret', { Properties: { Description: Match.stringLikeRegexp('pending stage') } }),
    );
    expect(secrets).toHaveLength(1);
    acme.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'edge-registry-rotate-certificates',
      Environment: { Variables: Match.objectLike({ ACME_PENDING_SECRET_ARN: { Ref: secrets[0] } }) },
    });
    const st = statements(acme, 'edge-registry');
    expect(st.find((s) => JSON.stringify(s.Resource) === JSON.stringify({ Ref: secrets[0] }))?.Action).toEqual([
      'secretsmanager:GetSecretValue',
      'secretsmanager:PutSecretValue',
    ]);
  });

  // Stacks from the release that wrote privateKeyPem into the pending stage (issue 21 item 7) keep those keys in the
  // secret's old versions: a new logical id makes CloudFormation create a fresh secret and delete the old one with
  // all its versions (its DeletionPolicy is Delete, and CloudFormation deletes a secret without a recovery window).
  it('acme mode: the pending secret is a new resource on upgrade (the old one, with its version history, is deleted)', () => {
    const secrets = acme.findResources('AWS::SecretsManager::Secret', {
      Properties: { Description: Match.stringLikeRegexp('pending stage') },
    });
    expect(Object.keys(secrets)).toEqual([expect.stringMatching(/^ControlPlaneAcmePendingSecretNoKeys[0-9A-F]{8}$/)]);
    expect(Object.keys(secrets)).not.toContain(PENDING_SECRET_BEFORE_NO_KEYS);
    expect(Object.values(secrets)[0]).toMatchObject({ DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  });

  it("acme mode: an order's key secret is created, read and deleted only under <pending secret ARN>/order-key-*", () => {
    const [pending] = Object.keys(
      acme.findResources('AWS::SecretsManager::Secret', { Properties: { Description: Match.stringLikeRegexp('pending stage') } }),
    );
    const st = statements(acme, 'edge-registry');
    const orderKeys = { 'Fn::Join': ['', [{ Ref: pending }, '/order-key-*']] };
    for (const action of ['secretsmanager:CreateSecret', 'secretsmanager:DeleteSecret']) {
      expect(withAction(st, action).map((s) => s.Resource)).toEqual([orderKeys]);
    }
    expect(withAction(st, 'secretsmanager:GetSecretValue').map((s) => s.Resource)).toContainEqual(orderKeys);
    expect(withAction(statements(acm, 'registry-fleet'), 'secretsmanager:CreateSecret')).toEqual([]);
  });
});

describe("rotate-certificates trigger: the ACM expiry rule names the listener's certificate", () => {
  it('acme mode: the given certificate', () => {
    acme.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['aws.acm'], 'detail-type': ['ACM Certificate Approaching Expiration'], resources: [CERT] },
    });
  });

  it("acm mode: the stack's certificate", () => {
    const cert = Object.keys(acm.findResources('AWS::CertificateManager::Certificate'));
    acm.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['aws.acm'], 'detail-type': ['ACM Certificate Approaching Expiration'], resources: [{ Ref: cert[0] }] },
    });
  });
});
