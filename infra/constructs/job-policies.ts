import type { Stack } from 'aws-cdk-lib';
import { ArnFormat } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import {
  FOLLOW_UP_SCHEDULE_PREFIX,
  MARK_TAG,
  REPLACEMENTS_TAG,
  REPLACING_TAG,
  TAG_ROLLED_BACK_AT,
  TAG_ROTATION_OF,
  UNHEALTHY_SINCE_TAG,
} from '../../shared/fleet-tags.ts';
import { listingCheckpointKey } from '../../shared/purge-keys.ts';
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
  /** replace-unhealthy-instances' follow-ups: its schedule group and the role Scheduler assumes to invoke it. */
  followUp?: { scheduleGroupName: string; invokeRoleArn: string };
  /** rotate-certificates: the listener's certificate at deploy time (the only one it may import over untagged). */
  listenerCertificateArn?: string;
  /** rotate-certificates (acme): the secret that keeps a rotation's pending stage. */
  acmePendingSecretArn?: string;
}

/** What the purge job (and the inventory shards) may do to the objects of an upload directory. */
const UPLOAD_ACTIONS = ['s3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'];

/** The purge job's checkpoint statement (the inventory shards, which share the `_uploads` statements, leave it out). */
export const LISTING_CHECKPOINT_SID = 'ListingCheckpoint';

const allow = (actions: string[], resources: string[], conditions?: Record<string, unknown>): iam.PolicyStatement =>
  new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) });

/**
 * Least-privilege statements per job (ARCHITECTURE §6). Describe/List calls that IAM cannot scope take `*`;
 * every write is scoped to the group, bucket, listener, document, parameter path or the fleet tag.
 * A job that needs more adds a statement here (and a test in test/infra).
 */
export function jobStatements(stack: Stack, r: JobResources): Record<JobName, iam.PolicyStatement[]> {
  const arn = (service: string, resource: string, resourceName: string, account?: string): string =>
    stack.formatArn({
      service,
      resource,
      resourceName,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      ...(account === undefined ? {} : { account }),
    });
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
      allow(UPLOAD_ACTIONS, [`${r.bucketArn}/${r.registryKeyPrefix}registry/v2/repositories/*/_uploads/*`]),
      // IAM's * crosses slashes, so the pattern above also matches the link of a tag named `_uploads` (a valid tag):
      // the registry's manifest and layer trees are denied outright. No upload key has them (repository name
      // components cannot start with `_`).
      new iam.PolicyStatement({
        sid: 'NoManifestsOrLayers',
        effect: iam.Effect.DENY,
        actions: UPLOAD_ACTIONS,
        resources: ['_manifests', '_layers'].map((d) => `${r.bucketArn}/${r.registryKeyPrefix}registry/v2/repositories/*/${d}/*`),
      }),
      // The resumable listing's checkpoint: this one key, outside the registry's tree.
      new iam.PolicyStatement({
        sid: LISTING_CHECKPOINT_SID,
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
        resources: [`${r.bucketArn}/${listingCheckpointKey('')}`],
      }),
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
        ['autoscaling:SetInstanceHealth', 'autoscaling:SetDesiredCapacity', 'autoscaling:TerminateInstanceInAutoScalingGroup'],
        [r.autoScalingGroupArn],
      ),
      // The job's two marker tags on the fleet's instances (first seen unhealthy; replacement in progress).
      // ForAllValues holds for a request naming no key (DeleteTags without Tags removes them all): Null forbids that.
      allow(['ec2:CreateTags', 'ec2:DeleteTags'], [fleetInstances], {
        ...fleetTagged('aws:ResourceTag'),
        'ForAllValues:StringEquals': { 'aws:TagKeys': [UNHEALTHY_SINCE_TAG, REPLACING_TAG] },
        Null: { 'aws:TagKeys': 'false' },
      }),
      // The replacement budget's ledger: one tag key, on the group only.
      allow(['autoscaling:DescribeTags'], ['*']),
      allow(['autoscaling:CreateOrUpdateTags'], [r.autoScalingGroupArn], {
        'ForAllValues:StringEquals': { 'aws:TagKeys': [REPLACEMENTS_TAG] },
      }),
      ...(r.followUp ? followUpStatements(stack, r.followUp) : []),
    ],
    'purge-disk-volumes': [
      allow(['ec2:DescribeVolumes', 'ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'cloudwatch:GetMetricData'], ['*']),
      describeGroups,
      allow(['ec2:DeleteVolume', 'ec2:CreateSnapshot'], [arn('ec2', 'volume', '*')], fleetTagged('aws:ResourceTag')),
      // Its mark on the fleet's volumes, and no other key: a faulty plan cannot strip the keep or the fleet tag.
      // ForAllValues holds for a request naming no key (DeleteTags without Tags removes them all): Null forbids that.
      allow(['ec2:CreateTags', 'ec2:DeleteTags'], [arn('ec2', 'volume', '*')], {
        ...fleetTagged('aws:ResourceTag'),
        'ForAllValues:StringEquals': { 'aws:TagKeys': [MARK_TAG] },
        Null: { 'aws:TagKeys': 'false' },
      }),
      // A mark counts only if the volume's CloudTrail history shows no attach since; LookupEvents has no resource scope.
      allow(['cloudtrail:LookupEvents'], ['*']),
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
        ],
        ['*'],
      ),
      // A request must carry the fleet tag and may carry only the job's own keys: what it requests is the fleet's.
      allow(['acm:RequestCertificate'], ['*'], {
        StringEquals: { [`aws:RequestTag/${r.fleetTag.key}`]: r.fleetTag.value },
        'ForAllValues:StringEquals': { 'aws:TagKeys': [r.fleetTag.key, TAG_ROTATION_OF] },
      }),
      // Tags only on the fleet's certificates, only the job's keys: adding the fleet tag to a foreign certificate
      // (which would open DeleteCertificate to it) is impossible.
      allow(['acm:AddTagsToCertificate'], [arn('acm', 'certificate', '*')], {
        ...fleetTagged('aws:ResourceTag'),
        'ForAllValues:StringEquals': { 'aws:TagKeys': [r.fleetTag.key, TAG_ROTATION_OF, TAG_ROLLED_BACK_AT] },
      }),
      // A re-import (acme mode) overwrites a certificate: only the listener's own, or one of the fleet's.
      ...(r.listenerCertificateArn ? [allow(['acm:ImportCertificate'], [r.listenerCertificateArn])] : []),
      allow(['acm:ImportCertificate'], [arn('acm', 'certificate', '*')], fleetTagged('aws:ResourceTag')),
      allow(
        [
          'elasticloadbalancing:ModifyListener',
          'elasticloadbalancing:AddListenerCertificates',
          'elasticloadbalancing:RemoveListenerCertificates',
        ],
        [r.listenerArn],
      ),
      // Only certificates the job tagged as this fleet's can be deleted.
      allow(['acm:DeleteCertificate'], [arn('acm', 'certificate', '*')], fleetTagged('aws:ResourceTag')),
      ...(r.hostedZoneId
        ? [
            allow(
              ['route53:ChangeResourceRecordSets', 'route53:ListResourceRecordSets'],
              [`arn:${stack.partition}:route53:::hostedzone/${r.hostedZoneId}`],
            ),
            allow(['route53:GetChange'], [`arn:${stack.partition}:route53:::change/*`]),
          ]
        : []),
      ...(r.acmeAccountSecretArn
        ? [allow(['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'], [r.acmeAccountSecretArn])]
        : []),
      ...(r.acmePendingSecretArn
        ? [allow(['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'], [r.acmePendingSecretArn])]
        : []),
      // Each ACME order's private key in its own secret (named after the pending one) until ACM has it, then deleted
      // without recovery: the pending secret's old versions stay readable, so the key never goes there.
      ...(r.acmePendingSecretArn
        ? [
            allow(
              ['secretsmanager:CreateSecret', 'secretsmanager:GetSecretValue', 'secretsmanager:DeleteSecret'],
              [`${r.acmePendingSecretArn}/order-key-*`],
            ),
          ]
        : []),
    ],
    'sync-htpasswd': [
      allow(
        ['ssm:GetParametersByPath', 'ssm:GetParameter', 'ssm:GetParameters'],
        [arn('ssm', 'parameter', path), arn('ssm', 'parameter', `${path}/*`)],
      ),
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

/**
 * The instance role's explicit deny on the registry users (only sync-htpasswd may read them): its
 * AmazonSSMManagedInstanceCore allows ssm:GetParameter(s) on `*`, so without this any process on an instance could
 * read every user's SecureString. GetParametersByPath is denied on every path: a recursive read of a parent path
 * returns the children even where a deny names them, and instances read no parameters by path. A policy of its
 * own (a customer managed one on the instance role), so the deny stays visible apart from what the role may do.
 */
export function denyUserParameters(stack: Stack, usersParameterPath: string): iam.PolicyStatement[] {
  const path = usersParameterPath.replace(/^\/|\/$/g, '');
  const parameter = (name: string): string =>
    stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
  return [
    new iam.PolicyStatement({
      effect: iam.Effect.DENY,
      actions: ['ssm:GetParameter', 'ssm:GetParameters', 'ssm:GetParameterHistory'],
      resources: [parameter(path), parameter(`${path}/*`)],
    }),
    new iam.PolicyStatement({ effect: iam.Effect.DENY, actions: ['ssm:GetParametersByPath'], resources: ['*'] }),
  ];
}

/**
 * replace-unhealthy-instances' follow-ups: create and delete only its own schedules (the name prefix, in its own
 * group), and hand Scheduler only the role that can invoke nothing but this function.
 */
function followUpStatements(stack: Stack, f: NonNullable<JobResources['followUp']>): iam.PolicyStatement[] {
  const schedules = stack.formatArn({
    service: 'scheduler',
    resource: 'schedule',
    resourceName: `${f.scheduleGroupName}/${FOLLOW_UP_SCHEDULE_PREFIX}*`,
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
  });
  return [
    allow(['scheduler:CreateSchedule', 'scheduler:DeleteSchedule'], [schedules]),
    allow(['iam:PassRole'], [f.invokeRoleArn], { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } }),
  ];
}
