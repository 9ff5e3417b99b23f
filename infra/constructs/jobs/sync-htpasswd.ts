import { Duration, Stack } from 'aws-cdk-lib';
import type * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { syncHtpasswdEnvironment } from '../../../functions/sync-htpasswd/config.ts';
import { allow, describeGroups, sendCommandStatements, stackArn } from '../job-policies.ts';
import { OpsFunction } from '../ops-function.ts';
import { HTPASSWD_OBJECT_KEY } from '../storage.ts';
import { jobFunctionProps } from './job-props.ts';
import type { JobProps } from './job-props.ts';

export interface SyncHtpasswdProps extends JobProps {
  bucket: { bucketName: string; bucketArn: string };
  autoScalingGroup: autoscaling.AutoScalingGroup;
  fleetTag: { key: string; value: string };
  /** `/registry/users/` */
  usersParameterPath: string;
  /** The SSM document that installs the published htpasswd on an instance. */
  syncDocumentName: string;
}

/** sync-htpasswd: its function, least privilege, and the Parameter Store rule that runs it when a user changes. */
export class SyncHtpasswd extends OpsFunction {
  constructor(scope: Construct, id: string, props: SyncHtpasswdProps) {
    const environment = syncHtpasswdEnvironment({
      HTPASSWD_PARAMETER_PATH: props.usersParameterPath,
      REGISTRY_BUCKET: props.bucket.bucketName,
      HTPASSWD_OBJECT_KEY,
      ASG_NAME: props.autoScalingGroup.autoScalingGroupName,
      SYNC_DOCUMENT_NAME: props.syncDocumentName,
    });
    const statements = syncHtpasswdStatements(Stack.of(scope), props);
    super(scope, id, jobFunctionProps('sync-htpasswd', props, { timeout: Duration.minutes(5), environment, statements }));

    // In the control plane's scope, not this one: the rule's logical id predates this construct.
    new events.Rule(scope, 'UsersChanged', {
      description: 'a registry user parameter changed: invokes sync-htpasswd',
      eventPattern: {
        source: ['aws.ssm'],
        detailType: ['Parameter Store Change'],
        detail: { name: events.Match.prefix(props.usersParameterPath) },
      },
      targets: [new targets.LambdaFunction(this.fn)],
    });
  }
}

function syncHtpasswdStatements(stack: Stack, props: SyncHtpasswdProps): iam.PolicyStatement[] {
  const path = props.usersParameterPath.replace(/^\/|\/$/g, '');
  const bucketArn = props.bucket.bucketArn;
  return [
    allow(
      ['ssm:GetParametersByPath', 'ssm:GetParameter', 'ssm:GetParameters'],
      [stackArn(stack, 'ssm', 'parameter', path), stackArn(stack, 'ssm', 'parameter', `${path}/*`)],
    ),
    // SecureString parameters under the default aws/ssm key: decrypt only through SSM.
    allow(['kms:Decrypt'], ['*'], { StringEquals: { 'kms:ViaService': `ssm.${stack.region}.amazonaws.com` } }),
    allow(['s3:GetObject', 's3:PutObject'], [`${bucketArn}/${HTPASSWD_OBJECT_KEY}`]),
    // Without ListBucket a missing object answers AccessDenied instead of NoSuchKey (the first run publishes it).
    allow(['s3:ListBucket'], [bucketArn], { StringEquals: { 's3:prefix': HTPASSWD_OBJECT_KEY } }),
    describeGroups(),
    // Launch times: an instance SSM does not know is "not registered yet" only while it is new.
    allow(['ec2:DescribeInstances'], ['*']),
    ...sendCommandStatements(stack, props.fleetTag, props.syncDocumentName),
  ];
}
