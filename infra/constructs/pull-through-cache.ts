import { Stack } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

export interface DockerHubPullThroughCacheProps {
  /** The ECR repository prefix of the cached images (`docker-hub` → `<registry>/docker-hub/library/registry`). */
  prefix: string;
  /** Secrets Manager secret (`ecr-pullthroughcache/...`) with a Docker Hub `username` and `accessToken`: ECR requires one. */
  credentialArn: string;
}

/**
 * An ECR pull-through cache rule for Docker Hub: boots pull the registry image from this account's ECR, which
 * fetches from Docker Hub only on a cache miss, so a fleet's boots do not share Docker Hub's anonymous rate limit
 * through one NAT address.
 */
export class DockerHubPullThroughCache extends Construct {
  readonly rule: ecr.CfnPullThroughCacheRule;
  /** `<account>.dkr.ecr.<region>.<suffix>`: what the instances `docker login` to. */
  readonly registryHost: string;
  readonly prefix: string;

  constructor(scope: Construct, id: string, props: DockerHubPullThroughCacheProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.prefix = props.prefix;
    this.registryHost = `${stack.account}.dkr.ecr.${stack.region}.${stack.urlSuffix}`;
    this.rule = new ecr.CfnPullThroughCacheRule(this, 'Rule', {
      ecrRepositoryPrefix: props.prefix,
      upstreamRegistry: 'docker-hub',
      upstreamRegistryUrl: 'registry-1.docker.io',
      credentialArn: props.credentialArn,
    });
  }

  /**
   * Pull through the cache: a token (account-wide, IAM has no resource for it), and pull, import-from-upstream and
   * create-on-first-pull on the cached repositories only.
   */
  grantPull(role: iam.IRole): void {
    const stack = Stack.of(this);
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }));
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchImportUpstreamImage', 'ecr:CreateRepository'],
        resources: [stack.formatArn({ service: 'ecr', resource: 'repository', resourceName: `${this.prefix}/*` })],
      }),
    );
  }
}
