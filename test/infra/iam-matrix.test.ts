// The allow/deny matrix of every role the stack synthesizes, evaluated by @cloud-copilot/iam-simulate against the
// synthesized template (test/support/iam-matrix.ts): for each role, what its code calls (with the ARNs and
// condition keys the calls really carry) must be Allowed, and the dangerous neighbours must not be. One data
// table: a new role gets a row (the completeness test fails until it has one), a new call a case.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HISTORY_PREFIX } from '../../infra/constructs/history.ts';
import { INVENTORY_BUNDLE } from '../../infra/constructs/purge-inventory.ts';
import { HTPASSWD_OBJECT_KEY } from '../../infra/constructs/storage.ts';
import {
  FOLLOW_UP_SCHEDULE_PREFIX,
  KEEP_TAG,
  MARK_TAG,
  REPLACEMENTS_TAG,
  REPLACING_TAG,
  TAG_ROLLED_BACK_AT,
  TAG_ROTATION_OF,
  UNHEALTHY_SINCE_TAG,
} from '../../shared/fleet-tags.ts';
import { listingCheckpointKey, PURGE_INVENTORY_ID, PURGE_INVENTORY_PREFIX, PURGE_PASSES_PREFIX } from '../../shared/purge-keys.ts';
import { ACCOUNT, REGION, StackIam, type CfnTemplate, type Decision, type Role } from '../support/iam-matrix.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

const STACK = 'registry-fleet';
const FLEET_TAG = 'registry-fleet'; // fleetTagKey's default; its value is the stack name
const HOSTED_ZONE = 'Z0123456789ABCDEF';
const at = `${REGION}:${ACCOUNT}`;
const V2 = 'docker/registry/v2/';
const UPLOAD = `${V2}repositories/team/app/_uploads/6f1c0c4e-0d6b-4d3e-9f1a-2b3c4d5e6f70`;
const BLOB = `${V2}blobs/sha256/ab/${'ab'.repeat(32)}/data`;
const instance = `arn:aws:ec2:${at}:instance/i-0f1ee7000000000001`;
const volume = `arn:aws:ec2:${at}:volume/vol-0f1ee7000000000001`;
const snapshot = `arn:aws:ec2:${REGION}::snapshot/snap-0f1ee7000000000001`;
const certificate = `arn:aws:acm:${at}:certificate/0f1ee700-0000-4000-8000-000000000001`;
const kmsKey = `arn:aws:kms:${at}:key/0f1ee700-0000-4000-8000-000000000002`;
const parameter = (name: string) => `arn:aws:ssm:${at}:parameter/${name}`;
const document = (name: string) => `arn:aws:ssm:${at}:document/${name}`;
const groupArn = (name: string) =>
  `arn:aws:autoscaling:${at}:autoScalingGroup:0f1ee700-0000-4000-8000-000000000003:autoScalingGroupName/${name}`;
const lambdaArn = (name: string) => `arn:aws:lambda:${at}:function:${name}`;
const fleetTagged = { [`aws:ResourceTag/${FLEET_TAG}`]: STACK };
const foreignTagged = { [`aws:ResourceTag/${FLEET_TAG}`]: 'another-fleet' };
const tagKeys = (...keys: string[]) => ({ 'aws:TagKeys': keys });

/** The stand-in names of this template's resources (see StackIam), looked up when a case reads one. */
const names = (iam: StackIam) => ({
  get bucket(): string {
    return iam.arn('StorageBucket', 'AWS::S3::Bucket');
  },
  get history(): string {
    return iam.arn('HistoryBucket', 'AWS::S3::Bucket');
  },
  get inventory(): string {
    return iam.arn('PurgeInventoryBucket', 'AWS::S3::Bucket');
  },
  get group(): string {
    return groupArn(iam.ref('FleetGroupASG', 'AWS::AutoScaling::AutoScalingGroup'));
  },
  get syncDocument(): string {
    return document(iam.ref('DocumentsSyncHtpasswd', 'AWS::SSM::Document'));
  },
  get pruneDocument(): string {
    return document(iam.ref('DocumentsPruneDocker', 'AWS::SSM::Document'));
  },
  get listener(): string {
    return iam.ref('LoadBalancerHttps', 'AWS::ElasticLoadBalancingV2::Listener');
  },
  get listenerCertificate(): string {
    return iam.ref('LoadBalancerCertificate', 'AWS::CertificateManager::Certificate');
  },
  get topic(): string {
    return iam.ref('MonitoringTopic', 'AWS::SNS::Topic');
  },
  get httpSecret(): string {
    return iam.ref('StorageHttpSecret', 'AWS::SecretsManager::Secret');
  },
  get acmeAccountSecret(): string {
    return iam.ref('ControlPlaneAcmeAccountSecret', 'AWS::SecretsManager::Secret');
  },
  get acmePendingSecret(): string {
    return iam.ref('ControlPlaneAcmePendingSecret', 'AWS::SecretsManager::Secret');
  },
  get followUpRole(): string {
    return iam.arn('ControlPlaneReplaceFollowUpInvoke', 'AWS::IAM::Role');
  },
  get stateMachine(): string {
    return iam.ref('PurgeInventoryPass', 'AWS::StepFunctions::StateMachine');
  },
  get flowLogs(): string {
    return iam.arn('NetworkFlowLogs', 'AWS::Logs::LogGroup');
  },
});
type Names = ReturnType<typeof names>;

interface Case {
  /** What the call is, or why it must stay out of reach. */
  readonly why: string;
  readonly action: string;
  readonly resource: (n: Names) => string;
  readonly context?: Record<string, string | string[]>;
  /** Only in these templates (the resource exists only there). */
  readonly only?: readonly TemplateName[];
}

interface Row {
  readonly role: string;
  readonly find: (iam: StackIam) => Role[];
  /** The templates whose stack has this role (default: every one). */
  readonly in?: readonly TemplateName[];
  /** A role this branch's stack may not have yet (another branch adds it): its cases are skipped until it exists. */
  readonly optional?: true;
  readonly allow: readonly Case[];
  readonly deny: readonly Case[];
}

type TemplateName = 'listing, acm' | 'inventory, acme';

const fn = (job: string) => (iam: StackIam) => [iam.roleOfFunction(`${STACK}-${job}`)].filter((r) => r !== undefined);
const service =
  (principal: string, idPrefix = '') =>
  (iam: StackIam) =>
    iam.rolesAssumedBy(principal).filter((r) => r.id.startsWith(idPrefix));
const history = (job: string): Case => ({
  why: 'its run report into its own history prefix',
  action: 's3:PutObject',
  resource: (n) => `${n.history}/${HISTORY_PREFIX}/job=${job}/date=2026-12-08/run.json.gz`,
});
const otherHistory: Case = {
  why: "another job's history (a job can neither read nor overwrite another's)",
  action: 's3:PutObject',
  resource: (n) => `${n.history}/${HISTORY_PREFIX}/job=other/date=2026-12-08/run.json.gz`,
};
const notify: Case = { why: 'the failure notification', action: 'sns:Publish', resource: (n) => n.topic };
const logs = (job: string): Case => ({
  why: 'its log lines',
  action: 'logs:PutLogEvents',
  resource: () => `arn:aws:logs:${at}:log-group:/aws/lambda/${STACK}-${job}:log-stream:x`,
});
const runOn = (doc: (n: Names) => string): Case[] => [
  { why: 'SendCommand: its document', action: 'ssm:SendCommand', resource: doc },
  {
    why: "SendCommand: the fleet's instances (SSM reads the instance's tags)",
    action: 'ssm:SendCommand',
    resource: () => instance,
    context: { [`ssm:resourceTag/${FLEET_TAG}`]: STACK },
  },
  { why: 'the command results', action: 'ssm:GetCommandInvocation', resource: () => '*' },
];
const runNothingElse: Case[] = [
  {
    why: "SendCommand to another fleet's instance",
    action: 'ssm:SendCommand',
    resource: () => instance,
    context: { [`ssm:resourceTag/${FLEET_TAG}`]: 'another-fleet' },
  },
  {
    why: 'SendCommand with AWS-RunShellScript (any command as root)',
    action: 'ssm:SendCommand',
    resource: () => document('AWS-RunShellScript'),
  },
];
const noSecrets: Case = { why: "the fleet's http.secret", action: 'secretsmanager:GetSecretValue', resource: (n) => n.httpSecret };
const noUsers: Case = { why: 'the registry users', action: 'ssm:GetParameter', resource: () => parameter('registry/users/alice') };

const ROWS: readonly Row[] = [
  {
    role: 'sync-htpasswd',
    find: fn('sync-htpasswd'),
    allow: [
      { why: 'read the users by path', action: 'ssm:GetParametersByPath', resource: () => parameter('registry/users/') },
      { why: 'read one user', action: 'ssm:GetParameter', resource: () => parameter('registry/users/team/alice') },
      {
        why: 'decrypt a SecureString through SSM',
        action: 'kms:Decrypt',
        resource: () => kmsKey,
        context: { 'kms:ViaService': `ssm.${REGION}.amazonaws.com` },
      },
      { why: 'read the published file', action: 's3:GetObject', resource: (n) => `${n.bucket}/${HTPASSWD_OBJECT_KEY}` },
      {
        why: 'publish it (SSE)',
        action: 's3:PutObject',
        resource: (n) => `${n.bucket}/${HTPASSWD_OBJECT_KEY}`,
        context: { 's3:x-amz-server-side-encryption': 'AES256' },
      },
      {
        why: 'the first publish: ListObjectsV2 of exactly the key tells "missing" from denied',
        action: 's3:ListBucket',
        resource: (n) => n.bucket,
        context: { 's3:prefix': HTPASSWD_OBJECT_KEY, 's3:max-keys': '1' },
      },
      { why: 'the group members', action: 'autoscaling:DescribeAutoScalingGroups', resource: () => '*' },
      { why: 'launch times', action: 'ec2:DescribeInstances', resource: () => '*' },
      ...runOn((n) => n.syncDocument),
      history('sync-htpasswd'),
      notify,
      logs('sync-htpasswd'),
    ],
    deny: [
      {
        // What S3 checks to tell NoSuchKey from AccessDenied on a GetObject (no prefix in that request): denied, so
        // the missing first object answers 403 and observe must list the key's prefix (functions/sync-htpasswd/observe.ts).
        why: 'ListBucket without a prefix (the NoSuchKey check of a GetObject): a missing object is AccessDenied',
        action: 's3:ListBucket',
        resource: (n) => n.bucket,
      },
      { why: "list the registry's keys", action: 's3:ListBucket', resource: (n) => n.bucket, context: { 's3:prefix': V2 } },
      { why: "read the registry's blobs", action: 's3:GetObject', resource: (n) => `${n.bucket}/${BLOB}` },
      { why: 'write any other key', action: 's3:PutObject', resource: (n) => `${n.bucket}/${BLOB}` },
      { why: "write purge's checkpoint", action: 's3:PutObject', resource: (n) => `${n.bucket}/${listingCheckpointKey('')}` },
      { why: 'delete the published file', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${HTPASSWD_OBJECT_KEY}` },
      { why: 'read parameters outside the users path', action: 'ssm:GetParameter', resource: () => parameter('registry/config/x') },
      { why: 'change a user', action: 'ssm:PutParameter', resource: () => parameter('registry/users/alice') },
      { why: 'decrypt directly (not through SSM)', action: 'kms:Decrypt', resource: () => kmsKey },
      ...runNothingElse,
      { why: 'the prune document', action: 'ssm:SendCommand', resource: (n) => n.pruneDocument },
      { why: 'terminate an instance', action: 'ec2:TerminateInstances', resource: () => instance, context: fleetTagged },
      otherHistory,
      noSecrets,
    ],
  },
  {
    role: 'purge-stale-uploads',
    find: fn('purge-stale-uploads'),
    allow: [
      {
        why: 'list the repositories tree',
        action: 's3:ListBucket',
        resource: (n) => n.bucket,
        context: { 's3:prefix': `${V2}repositories/` },
      },
      { why: 'list multipart uploads', action: 's3:ListBucketMultipartUploads', resource: (n) => n.bucket },
      { why: "read an upload's startedat", action: 's3:GetObject', resource: (n) => `${n.bucket}/${UPLOAD}/startedat` },
      { why: 'delete a stale upload', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${UPLOAD}/data` },
      { why: 'its hash states', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${UPLOAD}/hashstates/sha256/0` },
      { why: 'abort its multipart upload', action: 's3:AbortMultipartUpload', resource: (n) => `${n.bucket}/${UPLOAD}/data` },
      { why: 'read its parts (sign of life)', action: 's3:ListMultipartUploadParts', resource: (n) => `${n.bucket}/${UPLOAD}/data` },
      { why: 'read the checkpoint', action: 's3:GetObject', resource: (n) => `${n.bucket}/${listingCheckpointKey('')}` },
      { why: 'write the checkpoint', action: 's3:PutObject', resource: (n) => `${n.bucket}/${listingCheckpointKey('')}` },
      { why: 'clear the checkpoint', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${listingCheckpointKey('')}` },
      history('purge-stale-uploads'),
      notify,
      logs('purge-stale-uploads'),
    ],
    deny: [
      { why: 'delete a blob', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${BLOB}` },
      {
        why: 'delete a layer link',
        action: 's3:DeleteObject',
        resource: (n) => `${n.bucket}/${V2}repositories/team/app/_layers/sha256/${'ab'.repeat(32)}/link`,
      },
      {
        why: 'delete a tag link',
        action: 's3:DeleteObject',
        resource: (n) => `${n.bucket}/${V2}repositories/team/app/_manifests/tags/latest/current/link`,
      },
      {
        // A tag may be named `_uploads` (distribution's tag grammar starts with \w): `repositories/*/_uploads/*`
        // matches its link too, since IAM's * crosses slashes.
        why: 'delete the link of a tag named _uploads',
        action: 's3:DeleteObject',
        resource: (n) => `${n.bucket}/${V2}repositories/team/app/_manifests/tags/_uploads/current/link`,
      },
      {
        why: 'delete a layer link under a directory named _uploads',
        action: 's3:DeleteObject',
        resource: (n) => `${n.bucket}/${V2}repositories/team/app/_layers/_uploads/link`,
      },
      { why: 'write into an upload', action: 's3:PutObject', resource: (n) => `${n.bucket}/${UPLOAD}/data` },
      { why: 'abort a blob upload outside _uploads', action: 's3:AbortMultipartUpload', resource: (n) => `${n.bucket}/${BLOB}` },
      { why: 'delete the published htpasswd', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${HTPASSWD_OBJECT_KEY}` },
      { why: 'delete the bucket', action: 's3:DeleteBucket', resource: (n) => n.bucket },
      otherHistory,
      noUsers,
    ],
  },
  {
    role: 'replace-unhealthy-instances',
    find: fn('replace-unhealthy-instances'),
    allow: [
      { why: 'the group', action: 'autoscaling:DescribeAutoScalingGroups', resource: () => '*' },
      { why: 'target health', action: 'elasticloadbalancing:DescribeTargetHealth', resource: () => '*' },
      { why: 'instance status', action: 'ec2:DescribeInstanceStatus', resource: () => '*' },
      { why: 'scaling activities', action: 'autoscaling:DescribeScalingActivities', resource: () => '*' },
      { why: 'mark unhealthy in the group', action: 'autoscaling:SetInstanceHealth', resource: (n) => n.group },
      { why: 'raise desired capacity', action: 'autoscaling:SetDesiredCapacity', resource: (n) => n.group },
      { why: 'terminate a member', action: 'autoscaling:TerminateInstanceInAutoScalingGroup', resource: (n) => n.group },
      {
        why: 'its first-seen mark on a fleet instance',
        action: 'ec2:CreateTags',
        resource: () => instance,
        context: { ...fleetTagged, ...tagKeys(UNHEALTHY_SINCE_TAG) },
      },
      {
        why: 'its replacing mark removed',
        action: 'ec2:DeleteTags',
        resource: () => instance,
        context: { ...fleetTagged, ...tagKeys(REPLACING_TAG) },
      },
      {
        why: 'the replacement ledger on the group',
        action: 'autoscaling:CreateOrUpdateTags',
        resource: (n) => n.group,
        context: tagKeys(REPLACEMENTS_TAG),
      },
      {
        why: 'a follow-up schedule in its group',
        action: 'scheduler:CreateSchedule',
        resource: () => `arn:aws:scheduler:${at}:schedule/${STACK}-replace-follow-ups/${FOLLOW_UP_SCHEDULE_PREFIX}i-0f1ee7`,
      },
      {
        why: 'hand Scheduler the invoke role',
        action: 'iam:PassRole',
        resource: (n) => n.followUpRole,
        context: { 'iam:PassedToService': 'scheduler.amazonaws.com' },
      },
      history('replace-unhealthy-instances'),
      notify,
    ],
    deny: [
      {
        why: "terminate another group's instance",
        action: 'autoscaling:TerminateInstanceInAutoScalingGroup',
        resource: () => groupArn('another-team'),
      },
      {
        why: 'terminate any instance directly (even a fleet one)',
        action: 'ec2:TerminateInstances',
        resource: () => instance,
        context: fleetTagged,
      },
      { why: 'resize another group', action: 'autoscaling:SetDesiredCapacity', resource: () => groupArn('another-team') },
      { why: 'change the group itself', action: 'autoscaling:UpdateAutoScalingGroup', resource: (n) => n.group },
      { why: 'delete the group', action: 'autoscaling:DeleteAutoScalingGroup', resource: (n) => n.group },
      {
        why: "mark another fleet's instance",
        action: 'ec2:CreateTags',
        resource: () => instance,
        context: { ...foreignTagged, ...tagKeys(UNHEALTHY_SINCE_TAG) },
      },
      {
        why: 'rewrite the fleet tag on an instance',
        action: 'ec2:CreateTags',
        resource: () => instance,
        context: { ...fleetTagged, ...tagKeys(FLEET_TAG) },
      },
      {
        // DeleteTags without Tags removes every tag (the fleet tag too); ForAllValues alone holds for no keys.
        why: 'DeleteTags naming no key (strips every tag)',
        action: 'ec2:DeleteTags',
        resource: () => instance,
        context: fleetTagged,
      },
      {
        why: 'a schedule in another group',
        action: 'scheduler:CreateSchedule',
        resource: () => `arn:aws:scheduler:${at}:schedule/default/${FOLLOW_UP_SCHEDULE_PREFIX}x`,
      },
      {
        why: 'pass the invoke role to another service',
        action: 'iam:PassRole',
        resource: (n) => n.followUpRole,
        context: { 'iam:PassedToService': 'lambda.amazonaws.com' },
      },
      {
        why: 'pass another role',
        action: 'iam:PassRole',
        resource: () => `arn:aws:iam::${ACCOUNT}:role/Admin`,
        context: { 'iam:PassedToService': 'scheduler.amazonaws.com' },
      },
      otherHistory,
      noUsers,
    ],
  },
  {
    role: 'purge-disk-volumes',
    find: fn('purge-disk-volumes'),
    allow: [
      { why: 'the volumes', action: 'ec2:DescribeVolumes', resource: () => '*' },
      { why: 'the disk metric', action: 'cloudwatch:GetMetricData', resource: () => '*' },
      { why: 'the attach history', action: 'cloudtrail:LookupEvents', resource: () => '*' },
      { why: 'delete a fleet volume', action: 'ec2:DeleteVolume', resource: () => volume, context: fleetTagged },
      { why: 'snapshot a fleet volume (its volume)', action: 'ec2:CreateSnapshot', resource: () => volume, context: fleetTagged },
      { why: 'snapshot a fleet volume (the snapshot)', action: 'ec2:CreateSnapshot', resource: () => snapshot },
      {
        why: "the snapshot's own tags",
        action: 'ec2:CreateTags',
        resource: () => snapshot,
        context: { 'ec2:CreateAction': 'CreateSnapshot' },
      },
      { why: 'its mark', action: 'ec2:CreateTags', resource: () => volume, context: { ...fleetTagged, ...tagKeys(MARK_TAG) } },
      { why: 'its mark removed', action: 'ec2:DeleteTags', resource: () => volume, context: { ...fleetTagged, ...tagKeys(MARK_TAG) } },
      ...runOn((n) => n.pruneDocument),
      history('purge-disk-volumes'),
      notify,
    ],
    deny: [
      { why: "delete another fleet's volume", action: 'ec2:DeleteVolume', resource: () => volume, context: foreignTagged },
      { why: 'delete an untagged volume', action: 'ec2:DeleteVolume', resource: () => volume },
      { why: 'strip every tag (no key named)', action: 'ec2:DeleteTags', resource: () => volume, context: fleetTagged },
      { why: 'remove the keep tag', action: 'ec2:DeleteTags', resource: () => volume, context: { ...fleetTagged, ...tagKeys(KEEP_TAG) } },
      { why: 'tag a snapshot after the fact', action: 'ec2:CreateTags', resource: () => snapshot },
      { why: 'delete a snapshot', action: 'ec2:DeleteSnapshot', resource: () => snapshot },
      { why: 'detach a volume', action: 'ec2:DetachVolume', resource: () => volume, context: fleetTagged },
      { why: 'terminate an instance', action: 'ec2:TerminateInstances', resource: () => instance, context: fleetTagged },
      ...runNothingElse,
      { why: 'the htpasswd document', action: 'ssm:SendCommand', resource: (n) => n.syncDocument },
      otherHistory,
    ],
  },
  {
    role: 'rotate-certificates',
    find: fn('rotate-certificates'),
    allow: [
      { why: 'the listener', action: 'elasticloadbalancing:DescribeListeners', resource: () => '*' },
      { why: 'certificates', action: 'acm:DescribeCertificate', resource: () => '*' },
      {
        why: "request a certificate tagged as the fleet's",
        action: 'acm:RequestCertificate',
        resource: () => '*',
        context: { [`aws:RequestTag/${FLEET_TAG}`]: STACK, ...tagKeys(FLEET_TAG, TAG_ROTATION_OF) },
      },
      {
        why: "tag the fleet's certificate",
        action: 'acm:AddTagsToCertificate',
        resource: () => certificate,
        context: { ...fleetTagged, ...tagKeys(TAG_ROLLED_BACK_AT) },
      },
      { why: "delete the fleet's old certificate", action: 'acm:DeleteCertificate', resource: () => certificate, context: fleetTagged },
      { why: 'swap the listener certificate', action: 'elasticloadbalancing:ModifyListener', resource: (n) => n.listener },
      { why: 'add a listener certificate', action: 'elasticloadbalancing:AddListenerCertificates', resource: (n) => n.listener },
      { why: "re-import the fleet's certificate", action: 'acm:ImportCertificate', resource: () => certificate, context: fleetTagged },
      {
        why: 'the DNS-01 record',
        action: 'route53:ChangeResourceRecordSets',
        resource: () => `arn:aws:route53:::hostedzone/${HOSTED_ZONE}`,
        only: ['inventory, acme'],
      },
      {
        why: 'the ACME account key',
        action: 'secretsmanager:GetSecretValue',
        resource: (n) => n.acmeAccountSecret,
        only: ['inventory, acme'],
      },
      {
        why: 'the pending stage',
        action: 'secretsmanager:PutSecretValue',
        resource: (n) => n.acmePendingSecret,
        only: ['inventory, acme'],
      },
      {
        why: "the order's key secret (create)",
        action: 'secretsmanager:CreateSecret',
        resource: (n) => `${n.acmePendingSecret}/order-key-20261208T030000Z-AbCdEf`,
        only: ['inventory, acme'],
      },
      {
        why: "the order's key secret (read it back to import)",
        action: 'secretsmanager:GetSecretValue',
        resource: (n) => `${n.acmePendingSecret}/order-key-20261208T030000Z-AbCdEf`,
        only: ['inventory, acme'],
      },
      {
        why: "the order's key secret (delete without recovery)",
        action: 'secretsmanager:DeleteSecret',
        resource: (n) => `${n.acmePendingSecret}/order-key-20261208T030000Z-AbCdEf`,
        only: ['inventory, acme'],
      },
      history('rotate-certificates'),
      notify,
    ],
    deny: [
      { why: 'delete a foreign certificate', action: 'acm:DeleteCertificate', resource: () => certificate },
      {
        why: "delete another fleet's certificate",
        action: 'acm:DeleteCertificate',
        resource: () => certificate,
        context: foreignTagged,
      },
      {
        why: 'request a certificate without the fleet tag',
        action: 'acm:RequestCertificate',
        resource: () => '*',
        context: tagKeys(TAG_ROTATION_OF),
      },
      {
        why: 'adopt a foreign certificate by tagging it',
        action: 'acm:AddTagsToCertificate',
        resource: () => certificate,
        context: tagKeys(FLEET_TAG),
      },
      { why: 'import over a foreign certificate', action: 'acm:ImportCertificate', resource: () => certificate },
      {
        why: 'modify another listener',
        action: 'elasticloadbalancing:ModifyListener',
        resource: () => `arn:aws:elasticloadbalancing:${at}:listener/app/other/0123456789abcdef/0123456789abcdef`,
      },
      { why: 'delete the listener', action: 'elasticloadbalancing:DeleteListener', resource: (n) => n.listener },
      {
        why: 'records in another zone',
        action: 'route53:ChangeResourceRecordSets',
        resource: () => 'arn:aws:route53:::hostedzone/ZOTHERZONE000000',
      },
      {
        why: 'delete the ACME account key',
        action: 'secretsmanager:DeleteSecret',
        resource: (n) => n.acmeAccountSecret,
        only: ['inventory, acme'],
      },
      {
        why: 'delete the pending secret itself',
        action: 'secretsmanager:DeleteSecret',
        resource: (n) => n.acmePendingSecret,
        only: ['inventory, acme'],
      },
      {
        why: 'create a secret outside the order-key names',
        action: 'secretsmanager:CreateSecret',
        resource: () => `arn:aws:secretsmanager:${at}:secret:other-AbCdEf`,
        only: ['inventory, acme'],
      },
      noSecrets,
      otherHistory,
    ],
  },
  {
    // collect-garbage (its own construct, /work/wt/gc-contract.md "S3 access"): rows ready for when it is merged.
    role: 'collect-garbage',
    find: fn('collect-garbage'),
    optional: true,
    allow: [
      { why: 'list the repositories', action: 's3:ListBucket', resource: (n) => n.bucket, context: { 's3:prefix': `${V2}repositories/` } },
      { why: 'list the blobs', action: 's3:ListBucket', resource: (n) => n.bucket, context: { 's3:prefix': `${V2}blobs/` } },
      {
        // Unconditioned on purpose: the job reads the whole layout anyway, and only a caller allowed ListBucket with
        // no prefix gets NoSuchKey for a missing key (its first checkpoint, a revision whose blob is gone), not 403.
        why: 'ListBucket without a prefix (the NoSuchKey answer of a GetObject of a missing key)',
        action: 's3:ListBucket',
        resource: (n) => n.bucket,
      },
      { why: 'refuse an unversioned bucket', action: 's3:GetBucketVersioning', resource: (n) => n.bucket },
      { why: 'read a manifest', action: 's3:GetObject', resource: (n) => `${n.bucket}/${BLOB}` },
      { why: 'sweep blob data (a delete marker)', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${BLOB}` },
      {
        why: 'a dangling layer link',
        action: 's3:DeleteObject',
        resource: (n) => `${n.bucket}/${V2}repositories/team/app/_layers/sha256/${'ab'.repeat(32)}/link`,
      },
      { why: 'restore (delete the marker version)', action: 's3:DeleteObjectVersion', resource: (n) => `${n.bucket}/${BLOB}` },
      {
        why: 'its sweep checkpoint',
        action: 's3:PutObject',
        resource: (n) => `${n.bucket}/control-plane/collect-garbage/sweep-checkpoint.json.gz`,
      },
      { why: 'the storage lease', action: 's3:PutObject', resource: (n) => `${n.bucket}/control-plane/leases/registry-storage.json` },
      history('collect-garbage'),
    ],
    deny: [
      { why: 'write under docker/registry/v2/', action: 's3:PutObject', resource: (n) => `${n.bucket}/${BLOB}` },
      { why: 'suspend versioning (its deletes would be final)', action: 's3:PutBucketVersioning', resource: (n) => n.bucket },
      { why: 'the lifecycle rules (the undo window)', action: 's3:PutLifecycleConfiguration', resource: (n) => n.bucket },
      { why: 'delete the published htpasswd', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${HTPASSWD_OBJECT_KEY}` },
      { why: "purge's checkpoint", action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${listingCheckpointKey('')}` },
      { why: 'read the published htpasswd (the users)', action: 's3:GetObject', resource: (n) => `${n.bucket}/${HTPASSWD_OBJECT_KEY}` },
      { why: 'delete the bucket', action: 's3:DeleteBucket', resource: (n) => n.bucket },
      otherHistory,
      noUsers,
    ],
  },
  {
    role: 'registry instances',
    find: service('ec2.amazonaws.com'),
    allow: [
      { why: 'the published htpasswd (boot, --recheck)', action: 's3:GetObject', resource: (n) => `${n.bucket}/${HTPASSWD_OBJECT_KEY}` },
      {
        // A GetObject/HeadObject of the not-yet-published file is then a 404, not a 403 (the boot polls for it).
        why: 'ListBucket on the bucket, unconditioned (the registry lists; a missing htpasswd is NoSuchKey)',
        action: 's3:ListBucket',
        resource: (n) => n.bucket,
      },
      { why: 'registry blobs: read', action: 's3:GetObject', resource: (n) => `${n.bucket}/${BLOB}` },
      { why: 'registry blobs: write', action: 's3:PutObject', resource: (n) => `${n.bucket}/${BLOB}` },
      { why: 'registry uploads: delete', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${UPLOAD}/data` },
      { why: 'registry multipart', action: 's3:AbortMultipartUpload', resource: (n) => `${n.bucket}/${UPLOAD}/data` },
      { why: 'the shared http.secret', action: 'secretsmanager:GetSecretValue', resource: (n) => n.httpSecret },
      { why: 'complete its drain hook', action: 'autoscaling:CompleteLifecycleAction', resource: (n) => n.group },
      { why: 'the SSM agent', action: 'ssm:UpdateInstanceInformation', resource: () => instance },
      { why: 'the SSM agent channel', action: 'ssmmessages:CreateControlChannel', resource: () => '*' },
      { why: 'the disk metric', action: 'cloudwatch:PutMetricData', resource: () => '*' },
    ],
    deny: [
      { why: 'rewrite the published htpasswd', action: 's3:PutObject', resource: (n) => `${n.bucket}/${HTPASSWD_OBJECT_KEY}` },
      { why: 'delete the published htpasswd', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${HTPASSWD_OBJECT_KEY}` },
      { why: "purge's checkpoint", action: 's3:PutObject', resource: (n) => `${n.bucket}/${listingCheckpointKey('')}` },
      noUsers,
      { why: 'the users path by path', action: 'ssm:GetParametersByPath', resource: () => parameter('registry') },
      { why: "another group's lifecycle hook", action: 'autoscaling:CompleteLifecycleAction', resource: () => groupArn('another-team') },
      { why: 'the run history', action: 's3:GetObject', resource: (n) => `${n.history}/${HISTORY_PREFIX}/job=sync-htpasswd/x.json` },
      {
        why: 'the ACME account key',
        action: 'secretsmanager:GetSecretValue',
        resource: (n) => n.acmeAccountSecret,
        only: ['inventory, acme'],
      },
      { why: 'terminate an instance', action: 'ec2:TerminateInstances', resource: () => instance, context: fleetTagged },
    ],
  },
  {
    role: 'replace follow-up invoker (Scheduler)',
    find: service('scheduler.amazonaws.com'),
    allow: [
      {
        why: 'invoke replace-unhealthy-instances',
        action: 'lambda:InvokeFunction',
        resource: () => lambdaArn(`${STACK}-replace-unhealthy-instances`),
      },
    ],
    deny: [{ why: 'invoke another job', action: 'lambda:InvokeFunction', resource: () => lambdaArn(`${STACK}-purge-disk-volumes`) }],
  },
  {
    role: 'purge-stale-uploads inventory shards',
    find: fn(INVENTORY_BUNDLE),
    in: ['inventory, acme'],
    allow: [
      {
        why: 'read an inventory data file',
        action: 's3:GetObject',
        resource: (n) => `${n.inventory}/${PURGE_INVENTORY_PREFIX}x/data/a.parquet`,
      },
      { why: "read the pass's items", action: 's3:GetObject', resource: (n) => `${n.inventory}/${PURGE_PASSES_PREFIX}p1/items.json` },
      { why: 'write a shard report', action: 's3:PutObject', resource: (n) => `${n.inventory}/${PURGE_PASSES_PREFIX}p1/shards/0.json` },
      // The listings shard.ts makes (ListObjectsV2 on the inventory bucket), each with the s3:prefix it sends.
      {
        why: 'find the newest delivery (a pass started without manifestKey)',
        action: 's3:ListBucket',
        resource: (n) => n.inventory,
        context: { 's3:prefix': `${PURGE_INVENTORY_PREFIX}registry/${PURGE_INVENTORY_ID}/` },
      },
      {
        why: 'tell a missing manifestKey from a denied one (GetObject of a missing key is 403)',
        action: 's3:ListBucket',
        resource: (n) => n.inventory,
        context: { 's3:prefix': `${PURGE_INVENTORY_PREFIX}registry/${PURGE_INVENTORY_ID}/2026-12-07T01-00Z/manifest.json` },
      },
      {
        why: "the merge reads every attempt of the pass's shards",
        action: 's3:ListBucket',
        resource: (n) => n.inventory,
        context: { 's3:prefix': `${PURGE_PASSES_PREFIX}p1/shards/` },
      },
      {
        why: 'tell a pass never planned from a denied pass.json',
        action: 's3:ListBucket',
        resource: (n) => n.inventory,
        context: { 's3:prefix': `${PURGE_PASSES_PREFIX}p1/pass.json` },
      },
      { why: 'delete a stale upload', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${UPLOAD}/data` },
      { why: 'read its parts', action: 's3:ListMultipartUploadParts', resource: (n) => `${n.bucket}/${UPLOAD}/data` },
      { why: 'read the storage lease', action: 's3:GetObject', resource: (n) => `${n.bucket}/control-plane/leases/registry-storage.json` },
      { why: 'take the storage lease', action: 's3:PutObject', resource: (n) => `${n.bucket}/control-plane/leases/registry-storage.json` },
    ],
    deny: [
      {
        why: 'list the inventory bucket without a prefix',
        action: 's3:ListBucket',
        resource: (n) => n.inventory,
      },
      {
        why: "list a pass's claims (nothing lists them)",
        action: 's3:ListBucket',
        resource: (n) => n.inventory,
        context: { 's3:prefix': `${PURGE_PASSES_PREFIX}p1/claims/` },
      },
      {
        why: 'list the inventory bucket outside its deliveries and passes',
        action: 's3:ListBucket',
        resource: (n) => n.inventory,
        context: { 's3:prefix': 'control-plane/' },
      },
      {
        why: 'forge an inventory delivery',
        action: 's3:PutObject',
        resource: (n) => `${n.inventory}/${PURGE_INVENTORY_PREFIX}x/manifest.json`,
      },
      { why: 'delete a blob', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${BLOB}` },
      {
        why: 'delete the link of a tag named _uploads',
        action: 's3:DeleteObject',
        resource: (n) => `${n.bucket}/${V2}repositories/team/app/_manifests/tags/_uploads/current/link`,
      },
      {
        why: 'another key beside the lease',
        action: 's3:PutObject',
        resource: (n) => `${n.bucket}/control-plane/leases/other.json`,
      },
      {
        why: "the listing's checkpoint (shards leave it out)",
        action: 's3:PutObject',
        resource: (n) => `${n.bucket}/${listingCheckpointKey('')}`,
      },
      noUsers,
    ],
  },
  {
    role: 'purge-stale-uploads inventory pass (Step Functions)',
    find: service('states.amazonaws.com'),
    in: ['inventory, acme'],
    allow: [
      { why: 'invoke the shards', action: 'lambda:InvokeFunction', resource: () => lambdaArn(`${STACK}-${INVENTORY_BUNDLE}`) },
      {
        why: "read the pass's items (ItemReader)",
        action: 's3:GetObject',
        resource: (n) => `${n.inventory}/${PURGE_PASSES_PREFIX}p1/items.json`,
      },
      { why: 'its Distributed Map children', action: 'states:StartExecution', resource: (n) => n.stateMachine },
    ],
    deny: [
      { why: 'invoke another function', action: 'lambda:InvokeFunction', resource: () => lambdaArn(`${STACK}-sync-htpasswd`) },
      { why: 'read the registry', action: 's3:GetObject', resource: (n) => `${n.bucket}/${BLOB}` },
      { why: 'delete from the registry', action: 's3:DeleteObject', resource: (n) => `${n.bucket}/${UPLOAD}/data` },
    ],
  },
  {
    role: 'inventory delivery rule (EventBridge)',
    find: service('events.amazonaws.com'),
    in: ['inventory, acme'],
    allow: [{ why: 'start a pass', action: 'states:StartExecution', resource: (n) => n.stateMachine }],
    deny: [{ why: 'invoke a function', action: 'lambda:InvokeFunction', resource: () => lambdaArn(`${STACK}-sync-htpasswd`) }],
  },
  {
    role: 'VPC flow logs',
    find: service('vpc-flow-logs.amazonaws.com'),
    allow: [{ why: 'its log group', action: 'logs:PutLogEvents', resource: (n) => n.flowLogs.replace(/:\*$/, ':log-stream:eni-1') }],
    deny: [{ why: 'another log group', action: 'logs:PutLogEvents', resource: () => `arn:aws:logs:${at}:log-group:other:log-stream:x` }],
  },
  {
    role: "the deploy's first sync (CDK trigger provider)",
    find: service('lambda.amazonaws.com', 'AWSCDKTriggerCustomResourceProvider'),
    allow: [{ why: 'invoke sync-htpasswd', action: 'lambda:InvokeFunction', resource: () => `${lambdaArn(`${STACK}-sync-htpasswd`)}:1` }],
    deny: [{ why: 'invoke another job', action: 'lambda:InvokeFunction', resource: () => `${lambdaArn(`${STACK}-purge-disk-volumes`)}:1` }],
  },
  {
    role: 'inventory bucket notifications (CDK handler)',
    find: service('lambda.amazonaws.com', 'BucketNotificationsHandler'),
    in: ['inventory, acme'],
    allow: [{ why: "the inventory bucket's notifications", action: 's3:PutBucketNotification', resource: (n) => n.inventory }],
    deny: [{ why: "the registry bucket's notifications", action: 's3:PutBucketNotification', resource: (n) => n.bucket }],
  },
];

const fake = fakeFunctionsDir();
mkdirSync(join(fake.dir, INVENTORY_BUNDLE));
writeFileSync(join(fake.dir, INVENTORY_BUNDLE, 'index.mjs'), 'export const handler = async () => ({});\n');
const templates = new Map<TemplateName, StackIam>();
beforeAll(() => {
  const synth = (context: Record<string, unknown>) =>
    new StackIam(synthFleet({ domainName: 'registry.corp.internal', ...context }, fake.dir).template.toJSON() as CfnTemplate);
  templates.set('listing, acm', synth({}));
  templates.set(
    'inventory, acme',
    synth({
      purgeMode: 'inventory',
      certificateMode: 'acme',
      acmeDirectoryUrl: 'https://acme.test/directory',
      acmeEmail: 'ops@corp.internal',
      hostedZoneId: HOSTED_ZONE,
      hostedZoneName: 'corp.internal',
    }),
  );
}, 240_000);
afterAll(() => fake.remove());

const TEMPLATES: readonly TemplateName[] = ['listing, acm', 'inventory, acme'];
const iamOf = (name: TemplateName): StackIam => templates.get(name) as StackIam;

/** Each case's decision, as `why: decision` lines (a failure shows every case that differs). */
async function decisions(iam: StackIam, role: Role, cases: readonly Case[], template: TemplateName): Promise<string[]> {
  const n = names(iam);
  const lines: string[] = [];
  for (const c of cases.filter((c) => !c.only || c.only.includes(template))) {
    const decision: Decision = await iam.decide(role, {
      action: c.action,
      resource: c.resource(n),
      ...(c.context ? { context: c.context } : {}),
    });
    lines.push(`${c.why} (${c.action}): ${decision === 'Allowed' ? 'allowed' : 'denied'}`);
  }
  return lines;
}
const expected = (cases: readonly Case[], template: TemplateName, verdict: 'allowed' | 'denied') =>
  cases.filter((c) => !c.only || c.only.includes(template)).map((c) => `${c.why} (${c.action}): ${verdict}`);

describe.each(TEMPLATES)('IAM matrix (%s)', (template) => {
  it('every role of the template has exactly one row (a new role or job gets one in this table)', () => {
    const iam = iamOf(template);
    const claimed = ROWS.filter((r) => !r.in || r.in.includes(template)).flatMap((r) => r.find(iam).map((role) => [role.id, r.role]));
    const unclaimed = iam.roles
      .filter((role) => !claimed.some(([id]) => id === role.id))
      .map((r) => `${r.id} (${r.functionName ?? r.assumedBy.join(',')})`);
    expect(unclaimed, 'roles without a row in test/infra/iam-matrix.test.ts').toEqual([]);
    expect(new Set(claimed.map(([id]) => id)).size).toBe(claimed.length);
    for (const row of ROWS.filter((r) => !r.in || r.in.includes(template))) {
      expect(row.find(iam).length, row.role).toBe(row.optional && row.find(iam).length === 0 ? 0 : 1);
    }
  });

  describe.each(ROWS.filter((r) => !r.in || r.in.includes(template)).map((r) => [r.role, r] as const))('%s', (_, row) => {
    it('is allowed what its code calls', async ({ skip }) => {
      const iam = iamOf(template);
      const [role] = row.find(iam);
      if (!role && row.optional) return skip(`${row.role} is not in this stack yet`);
      expect(await decisions(iam, role as Role, row.allow, template)).toEqual(expected(row.allow, template, 'allowed'));
    });

    it('is denied the dangerous neighbours', async ({ skip }) => {
      const iam = iamOf(template);
      const [role] = row.find(iam);
      if (!role && row.optional) return skip(`${row.role} is not in this stack yet`);
      expect(await decisions(iam, role as Role, row.deny, template)).toEqual(expected(row.deny, template, 'denied'));
    });
  });
});
