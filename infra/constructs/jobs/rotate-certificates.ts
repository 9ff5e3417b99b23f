import { Duration, Stack } from 'aws-cdk-lib';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { rotateCertificatesEnvironment } from '../../../functions/rotate-certificates/config.ts';
import { TAG_ROLLED_BACK_AT, TAG_ROTATION_OF } from '../../../shared/fleet-tags.ts';
import { allow, fleetTagged, stackArn } from '../job-policies.ts';
import { OpsFunction } from '../ops-function.ts';
import { jobFunctionProps } from './job-props.ts';
import type { JobProps } from './job-props.ts';

export interface RotateCertificatesProps extends JobProps {
  httpsListener: elbv2.ApplicationListener;
  domainName: string;
  certificate: { mode: 'acm' | 'acme'; acmeDirectoryUrl?: string; acmeEmail?: string };
  fleetTag: { key: string; value: string };
  hostedZoneId?: string;
  /** acme mode: the account key's secret, and a rotation's pending stage (the control plane's). */
  acmeSecrets?: { account: secretsmanager.ISecret; pending: secretsmanager.ISecret };
  /**
   * The listener's certificate. The ACM expiry rule names it (events for other certificates in the account start
   * no run), and it is the one certificate the job may re-import over without the fleet tag.
   */
  listenerCertificateArn?: string;
}

/** rotate-certificates: its function, least privilege, and the rule that runs it on ACM's expiry event. */
export class RotateCertificates extends OpsFunction {
  constructor(scope: Construct, id: string, props: RotateCertificatesProps) {
    const acme = props.acmeSecrets;
    const environment = rotateCertificatesEnvironment({
      LISTENER_ARN: props.httpsListener.listenerArn,
      DOMAIN_NAME: props.domainName,
      CERTIFICATE_MODE: props.certificate.mode,
      FLEET_TAG_KEY: props.fleetTag.key,
      FLEET_TAG_VALUE: props.fleetTag.value,
      ...(props.hostedZoneId ? { HOSTED_ZONE_ID: props.hostedZoneId } : {}),
      ...(acme
        ? {
            ACME_DIRECTORY_URL: props.certificate.acmeDirectoryUrl ?? '',
            ACME_EMAIL: props.certificate.acmeEmail ?? '',
            ACME_ACCOUNT_SECRET_ARN: acme.account.secretArn,
            ACME_PENDING_SECRET_ARN: acme.pending.secretArn,
          }
        : {}),
    });
    const statements = rotateCertificatesStatements(Stack.of(scope), props);
    super(scope, id, jobFunctionProps('rotate-certificates', props, { timeout: Duration.minutes(15), environment, statements }));

    // In the control plane's scope, not this one: the rule's logical id predates this construct.
    new events.Rule(scope, 'CertificateExpiring', {
      description: 'an ACM certificate approaches expiry: invokes rotate-certificates',
      // Only the listener's certificate: ACM sends this event daily for every expiring certificate in the account.
      // After an acm-mode rotation the listener holds a new ARN; the daily schedule covers it (and the plan ignores
      // an event for a certificate that is not the listener's).
      eventPattern: {
        source: ['aws.acm'],
        detailType: ['ACM Certificate Approaching Expiration'],
        ...(props.listenerCertificateArn ? { resources: [props.listenerCertificateArn] } : {}),
      },
      targets: [new targets.LambdaFunction(this.fn)],
    });
  }
}

function rotateCertificatesStatements(stack: Stack, props: RotateCertificatesProps): iam.PolicyStatement[] {
  const certificates = stackArn(stack, 'acm', 'certificate', '*');
  const fleetTag = props.fleetTag;
  const acme = props.acmeSecrets;
  return [
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
      ...fleetTagged(fleetTag, 'aws:RequestTag'),
      'ForAllValues:StringEquals': { 'aws:TagKeys': [fleetTag.key, TAG_ROTATION_OF] },
    }),
    // Tags only on the fleet's certificates, only the job's keys: adding the fleet tag to a foreign certificate
    // (which would open DeleteCertificate to it) is impossible.
    allow(['acm:AddTagsToCertificate'], [certificates], {
      ...fleetTagged(fleetTag, 'aws:ResourceTag'),
      'ForAllValues:StringEquals': { 'aws:TagKeys': [fleetTag.key, TAG_ROTATION_OF, TAG_ROLLED_BACK_AT] },
    }),
    // A re-import (acme mode) overwrites a certificate: only the listener's own, or one of the fleet's.
    ...(props.listenerCertificateArn ? [allow(['acm:ImportCertificate'], [props.listenerCertificateArn])] : []),
    allow(['acm:ImportCertificate'], [certificates], fleetTagged(fleetTag, 'aws:ResourceTag')),
    allow(
      [
        'elasticloadbalancing:ModifyListener',
        'elasticloadbalancing:AddListenerCertificates',
        'elasticloadbalancing:RemoveListenerCertificates',
      ],
      [props.httpsListener.listenerArn],
    ),
    // Only certificates the job tagged as this fleet's can be deleted.
    allow(['acm:DeleteCertificate'], [certificates], fleetTagged(fleetTag, 'aws:ResourceTag')),
    ...(props.hostedZoneId
      ? [
          allow(
            ['route53:ChangeResourceRecordSets', 'route53:ListResourceRecordSets'],
            [`arn:${stack.partition}:route53:::hostedzone/${props.hostedZoneId}`],
          ),
          allow(['route53:GetChange'], [`arn:${stack.partition}:route53:::change/*`]),
        ]
      : []),
    ...(acme
      ? [
          allow(['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'], [acme.account.secretArn]),
          allow(['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'], [acme.pending.secretArn]),
          // Each ACME order's private key in its own secret (named after the pending one) until ACM has it, then
          // deleted without recovery: the pending secret's old versions stay readable, so the key never goes there.
          allow(
            ['secretsmanager:CreateSecret', 'secretsmanager:GetSecretValue', 'secretsmanager:DeleteSecret'],
            [`${acme.pending.secretArn}/order-key-*`],
          ),
        ]
      : []),
  ];
}
