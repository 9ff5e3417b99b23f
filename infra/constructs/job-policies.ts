import type { Stack } from 'aws-cdk-lib';
import { ArnFormat } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { REPLACING_TAG, UNHEALTHY_SINCE_TAG } from '../../shared/fleet-tags.ts';
import type { JobName } from '../config.ts';

/** What the jobs act on; every statement below is scoped to one of these. */
export interface JobResources {
  bucketArn: string;
  /** Where the registry's keys start (`docker/`). */
  registryKeyPrefix: string;
  htpasswdObjectKey: string;
  autoScalingGroupArn: string;
  listenerArn: string;
  syncDocumentName: string;
  pruneDocumentName: string;
  /** `/registry/users/` */
  usersParameterPath: string;
  fleetTag: { key: string; value: string };
  hostedZoneId?: string;
  acmeAccountSecretArn?: string;
}

const allow = (actions: string[], resources: string[], conditions?: Record<string, unknown>): iam.PolicyStatement =>
  new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) });

/**
 * Least-privilege statements per job (ARCHITECTURE §6). Describe/List calls that IAM cannot scope take `*`;
 * every write is scoped to the group, bucket, listener, document, parameter path or the fleet tag.
 * A job that needs more adds a statement here (and a test in test/infra).
 */
export function jobStatements(stack: Stack, r: JobResources): Record<JobName, iam.PolicyStatement[]> {
  const arn = (service: string, resource: string, resourceName: string, account?: string): string =>
    stack.formatArn({ service, resource, resourceName, arnFormat: ArnFormat.SLASH_RESOURCE_NAME, ...(account === undefined ? {} : { account }) });
  const fleetTagged = (prefix: string) => ({ StringEquals: { [`${prefix}/${r.fleetTag.key}`]: r.fleetTag.value } });
  const fleetInstances = arn('ec2', 'instance', '*');
  const sendCommand = (documentName: string): iam.PolicyStatement[] => [
    allow(['ssm:SendCommand'], [arn('ssm', 'document', documentName)]),
    allow(['ssm:SendCommand'], [fleetInstances], fleetTagged('ssm:resourceTag')),
    allow(['ssm:GetCommandInvocation', 'ssm:ListCommandInvocations', 'ssm:ListCommands'], ['*']),
  ];
  const describeGroups = allow(['autoscaling:DescribeAutoScalingGroups'], ['*']);
  const path = r.usersParameterPath.replace(/^\/|\/$/g, '');

  return {
    'purge-stale-uploads': [
      allow(['s3:ListBucket', 's3:ListBucketMultipartUploads'], [r.bucketArn]),
      // Only upload directories: blobs, layer links and manifests stay out of reach even if a plan were wrong.
      // ListMultipartUploadParts: the parts of a candidate are the only sign of life of a push streamed in one PATCH.
      allow(['s3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], [`${r.bucketArn}/${r.registryKeyPrefix}registry/v2/repositories/*/_uploads/*`]),
    ],
    'replace-unhealthy-instances': [
      allow(
        [
          'autoscaling:DescribeAutoScalingGroups',
          'autoscaling:DescribeScalingActivities',
          'autoscaling:DescribeInstanceRefreshes',
          'autoscaling:DescribeAutoScalingInstances',
          'elasticloadbalancing:DescribeTargetHealth',
          'ec2:DescribeInstanceStatus',
          'ec2:DescribeInstances',
        ],
        ['*'],
      ),
      allow(
        [
          'autoscaling:SetInstanceHealth',
          'autoscaling:SetDesiredCapacity',
          'autoscaling:TerminateInstanceInAutoScalingGroup',
        ],
        [r.autoScalingGroupArn],
      ),
      // The job's two marker tags on the fleet's instances (first seen unhealthy; replacement in progress).
      allow(['ec2:CreateTags', 'ec2:DeleteTags'], [fleetInstances], {
        ...fleetTagged('aws:ResourceTag'),
        'ForAllValues:StringEquals': { 'aws:TagKeys': [UNHEALTHY_SINCE_TAG, REPLACING_TAG] },
      }),
    ],
    'purge-disk-volumes': [
      allow(['ec2:DescribeVolumes', 'ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'cloudwatch:GetMetricData'], ['*']),
      describeGroups,
      allow(['ec2:CreateTags', 'ec2:DeleteTags', 'ec2:DeleteVolume', 'ec2:CreateSnapshot'], [arn('ec2', 'volume', '*')], fleetTagged('aws:ResourceTag')),
      allow(['ec2:CreateSnapshot'], [arn('ec2', 'snapshot', '*', '')]),
      allow(['ec2:CreateTags'], [arn('ec2', 'snapshot', '*', '')], { StringEquals: { 'ec2:CreateAction': 'CreateSnapshot' } }),
      ...sendCommand(r.pruneDocumentName),
    ],
    'rotate-certificates': [
      allow(
        [
          'elasticloadbalancing:DescribeListeners',
          'elasticloadbalancing:DescribeListenerCertificates',
          'elasticloadbalancing:DescribeLoadBalancers',
          'acm:DescribeCertificate',
          'acm:ListCertificates',
          'acm:ListTagsForCertificate',
          'acm:RequestCertificate',
          'acm:ImportCertificate',
          'acm:AddTagsToCertificate',
        ],
        ['*'],
      ),
      allow(
        ['elasticloadbalancing:ModifyListener', 'elasticloadbalancing:AddListenerCertificates', 'elasticloadbalancing:RemoveListenerCertificates'],
        [r.listenerArn],
      ),
      // Only certificates the job tagged as this fleet's can be deleted.
      allow(['acm:DeleteCertificate'], [arn('acm', 'certificate', '*')], fleetTagged('aws:ResourceTag')),
      ...(r.hostedZoneId
        ? [
            allow(['route53:ChangeResourceRecordSets', 'route53:ListResourceRecordSets'], [`arn:${stack.partition}:route53:::hostedzone/${r.hostedZoneId}`]),
            allow(['route53:GetChange'], [`arn:${stack.partition}:route53:::change/*`]),
          ]
        : []),
      ...(r.acmeAccountSecretArn ? [allow(['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'], [r.acmeAccountSecretArn])] : []),
    ],
    'sync-htpasswd': [
      allow(['ssm:GetParametersByPath', 'ssm:GetParameter', 'ssm:GetParameters'], [arn('ssm', 'parameter', path), arn('ssm', 'parameter', `${path}/*`)]),
      // SecureString parameters under the default aws/ssm key: decrypt only through SSM.
      allow(['kms:Decrypt'], ['*'], { StringEquals: { 'kms:ViaService': `ssm.${stack.region}.amazonaws.com` } }),
      allow(['s3:GetObject', 's3:PutObject'], [`${r.bucketArn}/${r.htpasswdObjectKey}`]),
      // Without ListBucket a missing object answers AccessDenied instead of NoSuchKey (the first run publishes it).
      allow(['s3:ListBucket'], [r.bucketArn], { StringEquals: { 's3:prefix': r.htpasswdObjectKey } }),
      describeGroups,
      // Launch times: an instance SSM does not know is "not registered yet" only while it is new.
      allow(['ec2:DescribeInstances'], ['*']),
      ...sendCommand(r.syncDocumentName),
    ],
  };
}
