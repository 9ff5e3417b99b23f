import { Validations } from 'aws-cdk-lib';
import type { CfnResource, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * cdk-nag AwsSolutions findings accepted on purpose, each on the narrowest construct and with its reason.
 * Anything not listed here fails `cdk synth` (and test/infra/nag.test.ts).
 */

function at(stack: Stack, path: string): IConstruct {
  let node: IConstruct = stack;
  for (const id of path.split('/')) {
    const child = node.node.tryFindChild(id);
    if (!child) throw new Error(`nag suppressions: no construct at ${stack.node.id}/${path} (was it renamed?)`);
    node = child;
  }
  return node;
}

const ack = (scope: IConstruct, id: string, reason: string): void => Validations.of(scope).acknowledge({ id, reason });

const LAMBDA_BASIC = 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]';
const ANY = 'AwsSolutions-IAM5[Resource::*]';
const INSTANCES = 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]';
const DESCRIBE_REASON =
  'Resource::* only on Describe/List/Get calls that IAM cannot scope to a resource (and kms:Decrypt conditioned on ' +
  'kms:ViaService=ssm); every write is scoped';

export function applyNagSuppressions(stack: Stack, o: { usersParameterPath: string }): void {
  const usersPath = o.usersParameterPath.replace(/^\/|\/$/g, '');
  const bucketArn = `<${stack.getLogicalId(at(stack, 'Storage/Bucket/Resource') as CfnResource)}.Arn>/docker/*`;
  const asgName = `<${stack.getLogicalId(at(stack, 'Fleet/Group/ASG') as CfnResource)}>`;

  ack(
    at(stack, 'Storage/Bucket'),
    'AwsSolutions-S1',
    'S3 server access logs would need a second bucket per fleet; the registry logs every request and CloudTrail data events can ' +
      'be enabled account-wide',
  );
  ack(
    at(stack, 'Storage/HttpSecret'),
    'AwsSolutions-SMG4',
    'http.secret signs in-flight upload state and is read by instances at boot; rotating it would break uploads in progress and ' +
      'desynchronise the fleet until every instance is replaced',
  );
  ack(
    at(stack, 'Fleet/InstanceRole'),
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
    'the documented minimum for SSM managed instances (Run Command, Session Manager instead of SSH)',
  );
  ack(
    at(stack, 'Fleet/InstanceRole'),
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/CloudWatchAgentServerPolicy]',
    'the documented policy for the CloudWatch agent (disk_used_percent)',
  );
  ack(
    at(stack, 'Fleet/InstanceRole'),
    `AwsSolutions-IAM5[Resource::${bucketArn}]`,
    "the registry writes any key under docker/ (distribution S3 driver, empty rootdirectory); the actions are exactly the driver's",
  );
  ack(
    at(stack, 'Fleet/DrainPolicy'),
    `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:<AWS::Region>:<AWS::AccountId>:` +
      `autoScalingGroup:*:autoScalingGroupName/${asgName}]`,
    "autoscaling:CompleteLifecycleAction on the fleet's own group, named exactly; the * is the group id IAM puts in Auto Scaling ARNs",
  );
  ack(
    at(stack, 'Fleet/Group'),
    'AwsSolutions-AS3',
    'scaling events are watched by replace-unhealthy-instances and its alarms; per-event e-mails would be noise',
  );
  ack(
    at(stack, 'Fleet/Group'),
    'annotation::@aws-cdk/aws-autoscaling:desiredCapacitySet',
    'the fleet size is fixed by context (min/desired/max); no scaling policy changes it between deploys',
  );
  ack(
    at(stack, 'LoadBalancer/SecurityGroup'),
    'AwsSolutions-EC23',
    'a registry is a public HTTPS endpoint by default; restrict it with the ingressCidrs context',
  );
  ack(
    at(stack, 'LoadBalancer/LoadBalancer'),
    'AwsSolutions-ELB2',
    'ALB access logs need a log bucket with a region-specific ELB principal, which an env-agnostic stack cannot name; the ' +
      'registry logs every request',
  );

  for (const job of ['ReplaceUnhealthyInstances', 'PurgeStaleUploads', 'PurgeDiskVolumes', 'RotateCertificates', 'SyncHtpasswd']) {
    ack(
      at(stack, `ControlPlane/${job}/Function/ServiceRole`),
      LAMBDA_BASIC,
      "CloudWatch Logs write access for the function's own log group (AWS managed basic execution role)",
    );
  }
  const policy = (job: string) => at(stack, `ControlPlane/${job}/Function/ServiceRole/DefaultPolicy`);
  const uploadDirs = bucketArn.replace(/\/docker\/\*$/, '/docker/registry/v2/repositories/*/_uploads/*');
  ack(
    policy('PurgeStaleUploads'),
    `AwsSolutions-IAM5[Resource::${uploadDirs}]`,
    'object access only inside upload directories (repositories/<name>/_uploads/<uuid>/) of this one bucket; names and uuids are ' +
      'not known in advance',
  );
  ack(policy('ReplaceUnhealthyInstances'), ANY, DESCRIBE_REASON);
  ack(
    policy('ReplaceUnhealthyInstances'),
    `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:<AWS::Region>:<AWS::AccountId>:` +
      `autoScalingGroup:*:autoScalingGroupName/${asgName}]`,
    'the group is named exactly; the * is the group id IAM puts in Auto Scaling ARNs',
  );
  ack(
    policy('ReplaceUnhealthyInstances'),
    INSTANCES,
    "ec2:CreateTags/DeleteTags only on instances tagged with the fleet tag, and only the job's two marker tag keys (aws:TagKeys)",
  );
  ack(
    policy('ReplaceUnhealthyInstances'),
    `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:` +
      `schedule/${stack.stackName}-replace-follow-ups/replace-follow-up-*]`,
    'its follow-up schedules are named per instance and mark when it marks one; only that name prefix, only in its own schedule group',
  );
  ack(policy('PurgeDiskVolumes'), ANY, DESCRIBE_REASON);
  ack(
    policy('PurgeDiskVolumes'),
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*]',
    'volume writes are conditioned on aws:ResourceTag = the fleet tag',
  );
  ack(
    policy('PurgeDiskVolumes'),
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*]',
    'a snapshot before delete (SNAPSHOT_BEFORE_DELETE) has no id until created; tagging only during CreateSnapshot',
  );
  ack(
    policy('PurgeDiskVolumes'),
    INSTANCES,
    'ssm:SendCommand only to instances tagged with the fleet tag (ssm:resourceTag condition) and only the prune document',
  );
  ack(
    policy('RotateCertificates'),
    ANY,
    `${DESCRIBE_REASON}; acm:RequestCertificate/ImportCertificate create new certificates (no ARN yet)`,
  );
  ack(
    policy('RotateCertificates'),
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:acm:<AWS::Region>:<AWS::AccountId>:certificate/*]',
    "acm:DeleteCertificate, AddTagsToCertificate (the job's own keys) and ImportCertificate only on certificates tagged with the fleet tag",
  );
  const acmeSecret = at(stack, 'ControlPlane').node.tryFindChild('AcmeAccountSecret');
  if (acmeSecret)
    ack(
      acmeSecret,
      'AwsSolutions-SMG4',
      'the ACME account key is rotated by the ACME account itself (key rollover), not by Secrets Manager; rotate-certificates owns it',
    );
  const pendingSecret = at(stack, 'ControlPlane').node.tryFindChild('AcmePendingSecretNoKeys');
  if (pendingSecret)
    ack(
      pendingSecret,
      'AwsSolutions-SMG4',
      'the pending stage of an ACME rotation is written by rotate-certificates at each stage; there is nothing to rotate',
    );
  if (pendingSecret)
    ack(
      policy('RotateCertificates'),
      `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(pendingSecret.node.defaultChild as CfnResource)}>/order-key-*]`,
      "each ACME order's private key in its own secret, named after the pending secret, deleted once ACM holds the certificate",
    );
  ack(
    policy('RotateCertificates'),
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:route53:::change/*]',
    'route53:GetChange takes a change id that exists only after ChangeResourceRecordSets (hosted zone given)',
  );
  ack(policy('SyncHtpasswd'), ANY, DESCRIBE_REASON);
  ack(
    policy('SyncHtpasswd'),
    INSTANCES,
    'ssm:SendCommand only to instances tagged with the fleet tag (ssm:resourceTag condition) and only the htpasswd document',
  );
  ack(
    policy('SyncHtpasswd'),
    `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/${usersPath}/*]`,
    'users are the parameters under the users path',
  );
}

/** The run history's bucket and the functions' report-writing grants (infra/constructs/history.ts). */
export function applyHistoryNagSuppressions(stack: Stack): void {
  const bucket = at(stack, 'History/Bucket');
  ack(
    bucket,
    'AwsSolutions-S1',
    "the history bucket holds the jobs' own reports, written by them only; access logs would need a second bucket per fleet",
  );
  const arn = `<${stack.getLogicalId(at(stack, 'History/Bucket/Resource') as CfnResource)}.Arn>`;
  for (const [id, job] of [
    ['ReplaceUnhealthyInstances', 'replace-unhealthy-instances'],
    ['PurgeStaleUploads', 'purge-stale-uploads'],
    ['PurgeDiskVolumes', 'purge-disk-volumes'],
    ['RotateCertificates', 'rotate-certificates'],
    ['SyncHtpasswd', 'sync-htpasswd'],
  ] as const) {
    ack(
      at(stack, `ControlPlane/${id}/Function/ServiceRole/DefaultPolicy`),
      `AwsSolutions-IAM5[Resource::${arn}/reports/job=${job}/*]`,
      "PutObject only, only under the job's own history prefix; each run is a new object named by its start time and request id",
    );
  }
}

/** The instance role's pulls through the ECR pull-through cache (context ecrPullThroughCache). */
export function applyPullThroughNagSuppressions(stack: Stack, prefix: string): void {
  const policy = at(stack, 'Fleet/InstanceRole/DefaultPolicy');
  ack(policy, ANY, 'ecr:GetAuthorizationToken only: IAM has no resource for it (the token is scoped by the repository grants)');
  ack(
    policy,
    `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/${prefix}/*]`,
    "pull, import from upstream and create-on-first-pull only in the pull-through cache's own repositories (their names follow " +
      "Docker Hub's)",
  );
}
