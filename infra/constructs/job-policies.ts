import type { Stack } from 'aws-cdk-lib';
import { ArnFormat } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/*
 * What the jobs' least-privilege statements (ARCHITECTURE §6) share; each job's own statements live in its construct
 * (infra/constructs/jobs/<job>.ts). Describe/List calls that IAM cannot scope take `*`; every write is scoped to the
 * group, bucket, listener, document, parameter path or the fleet tag. A job that needs more adds a statement there
 * (and a test in test/infra).
 */

/** The purge job's checkpoint statement (the inventory shards, which share the `_uploads` statements, leave it out). */
export const LISTING_CHECKPOINT_SID = 'ListingCheckpoint';

export const allow = (actions: string[], resources: string[], conditions?: Record<string, unknown>): iam.PolicyStatement =>
  new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) });

/** `arn:<partition>:<service>:<region>:<account>:<resource>/<name>` of this stack (account '' for snapshots). */
export function stackArn(stack: Stack, service: string, resource: string, resourceName: string, account?: string): string {
  return stack.formatArn({
    service,
    resource,
    resourceName,
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    ...(account === undefined ? {} : { account }),
  });
}

/** A condition that the resource (or request) carries the fleet tag: `prefix` is e.g. `aws:ResourceTag`. */
export const fleetTagged = (fleetTag: { key: string; value: string }, prefix: string) => ({
  StringEquals: { [`${prefix}/${fleetTag.key}`]: fleetTag.value },
});

/** Running one SSM document on the fleet's instances, and reading its results. */
export function sendCommandStatements(stack: Stack, fleetTag: { key: string; value: string }, documentName: string): iam.PolicyStatement[] {
  return [
    allow(['ssm:SendCommand'], [stackArn(stack, 'ssm', 'document', documentName)]),
    allow(['ssm:SendCommand'], [stackArn(stack, 'ec2', 'instance', '*')], fleetTagged(fleetTag, 'ssm:resourceTag')),
    allow(['ssm:GetCommandInvocation', 'ssm:ListCommandInvocations', 'ssm:ListCommands'], ['*']),
  ];
}

export const describeGroups = (): iam.PolicyStatement => allow(['autoscaling:DescribeAutoScalingGroups'], ['*']);

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
