// The optional ECR pull-through cache of Docker Hub: the rule, the instances pulling the pinned image through it,
// and the instance role's grants (least privilege, cdk-nag clean: synthFleet runs cdk-nag).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Template } from 'aws-cdk-lib/assertions';
import { DEFAULT_REGISTRY_IMAGE } from '../../infra/config.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

const fake = fakeFunctionsDir();
const CREDENTIAL = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf';
const DIGEST = DEFAULT_REGISTRY_IMAGE.split('@')[1] as string;
let t: Template;
let plain: Template;

beforeAll(() => {
  t = synthFleet(
    { domainName: 'registry.corp.internal', ecrPullThroughCache: 'true', ecrPullThroughCredentialArn: CREDENTIAL },
    fake.dir,
  ).template;
  plain = synthFleet({ domainName: 'registry.corp.internal' }, fake.dir).template;
}, 240_000);
afterAll(() => fake.remove());

type Resource = { Type: string; Properties: Record<string, unknown> };
type Statement = { Action: string | string[]; Resource: unknown; Effect: string };
const ofType = (tpl: Template, type: string) => Object.entries(tpl.findResources(type) as Record<string, Resource>);
const userDataText = (tpl: Template) => JSON.stringify(ofType(tpl, 'AWS::EC2::LaunchTemplate')[0]?.[1].Properties.LaunchTemplateData);
/** The instance role's inline statements. */
function instanceStatements(tpl: Template): Statement[] {
  const profile = ofType(tpl, 'AWS::IAM::InstanceProfile')[0]?.[1].Properties.Roles as { Ref: string }[];
  return ofType(tpl, 'AWS::IAM::Policy')
    .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify(profile))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}
// The registry host as the template spells it: account, region and URL suffix of the deploying stack.
const HOST = '",{"Ref":"AWS::AccountId"},".dkr.ecr.",{"Ref":"AWS::Region"},".",{"Ref":"AWS::URLSuffix"},"';

describe('ecrPullThroughCache=true', () => {
  it('creates a pull-through cache rule for Docker Hub with the given credential', () => {
    const rules = ofType(t, 'AWS::ECR::PullThroughCacheRule');
    expect(rules).toHaveLength(1);
    expect(rules[0]?.[1].Properties).toEqual({
      EcrRepositoryPrefix: 'docker-hub',
      UpstreamRegistry: 'docker-hub',
      UpstreamRegistryUrl: 'registry-1.docker.io',
      CredentialArn: CREDENTIAL,
    });
  });

  it('the instances pull the pinned digest through the cache (and its tag to fill it), after logging in to ECR', () => {
    const text = userDataText(t);
    expect(text).toContain(`REGISTRY_IMAGE='${HOST}/docker-hub/library/registry@${DIGEST}'`);
    expect(text).toMatch(new RegExp(`REGISTRY_IMAGE='[^']*AWS::AccountId[^']*\\.dkr\\.ecr\\.[^']*/docker-hub/library/registry@${DIGEST}'`));
    expect(text).toMatch(/REGISTRY_IMAGE_WARM='[^']*\/docker-hub\/library\/registry:2\.8\.3'/);
    expect(text).toMatch(/ECR_REGISTRY='[^']*AWS::AccountId[^']*\.dkr\.ecr\.[^']*AWS::URLSuffix[^']*'/);
    expect(text).not.toContain(`REGISTRY_IMAGE='${DEFAULT_REGISTRY_IMAGE}'`);
  });

  it("grants the instance role a token and pulls on the cache's repositories only", () => {
    const st = instanceStatements(t);
    const token = st.filter((s) => [s.Action].flat().includes('ecr:GetAuthorizationToken'));
    expect(token).toEqual([expect.objectContaining({ Action: 'ecr:GetAuthorizationToken', Resource: '*', Effect: 'Allow' })]);
    const pulls = st.filter((s) => [s.Action].flat().includes('ecr:BatchGetImage'));
    expect(pulls).toHaveLength(1);
    expect([pulls[0]?.Action].flat().sort()).toEqual([
      'ecr:BatchGetImage',
      'ecr:BatchImportUpstreamImage',
      'ecr:CreateRepository',
      'ecr:GetDownloadUrlForLayer',
    ]);
    expect(JSON.stringify(pulls[0]?.Resource)).toMatch(/:ecr:.*:repository\/docker-hub\/\*"/);
    // The cdk-nag acknowledgement of Resource::* on this policy covers the token only.
    expect(st.filter((s) => JSON.stringify(s.Resource) === '"*"').map((s) => s.Action)).toEqual(['ecr:GetAuthorizationToken']);
    // No other statement of the role touches ECR.
    expect(st.filter((s) => [s.Action].flat().some((a) => a.startsWith('ecr:')))).toHaveLength(2);
  });
});

describe('ecrPullThroughCache off (the default)', () => {
  it('no rule, no ECR grant: the instances pull the pinned image from Docker Hub', () => {
    expect(ofType(plain, 'AWS::ECR::PullThroughCacheRule')).toHaveLength(0);
    expect(instanceStatements(plain).filter((s) => [s.Action].flat().some((a) => a.startsWith('ecr:')))).toHaveLength(0);
    expect(userDataText(plain)).toContain(`REGISTRY_IMAGE='${DEFAULT_REGISTRY_IMAGE}'`);
    expect(userDataText(plain)).not.toContain('ECR_REGISTRY=');
  });

  it('refuses at synth when the option is on without a credential, naming the key', () => {
    expect(() => synthFleet({ domainName: 'registry.corp.internal', ecrPullThroughCache: 'true' }, fake.dir)).toThrow(
      /context ecrPullThroughCredentialArn: expected the ARN of a Secrets Manager secret/,
    );
  });
});
