import { ACMClient } from '@aws-sdk/client-acm';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { EC2Client } from '@aws-sdk/client-ec2';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { Route53Client } from '@aws-sdk/client-route-53';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SNSClient } from '@aws-sdk/client-sns';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SSMClient } from '@aws-sdk/client-ssm';
import { countRequests } from './requests.ts';
import { withSdkErrorMapping } from './sdk-errors.ts';

/**
 * The only file that constructs SDK clients (STYLE §4). Each client is a lazy singleton, reused across warm
 * invocations. Each getter is its own function so a bundle only contains the clients its job calls.
 *
 * Region and endpoints come from the SDK's own environment handling: AWS_REGION, AWS_ENDPOINT_URL and
 * AWS_ENDPOINT_URL_<SERVICE> (e.g. AWS_ENDPOINT_URL_S3) point the clients at local emulators. Retries use the
 * SDK's standard mode (exponential backoff with jitter, throttling and 5xx included) with MAX_ATTEMPTS tries.
 * Every client counts its requests into the current run's counter (shared/requests.ts), under IAM's service prefix.
 * Every client maps an answer no AWS API gives (an emulator's HTML page) to an error naming the operation and
 * endpoint (shared/sdk-errors.ts).
 */
export const MAX_ATTEMPTS = 5;

const settings = { s3ForcePathStyle: false };

/** Called once at cold start with the validated config, before any client is made. */
export function configureClients(options: { s3ForcePathStyle: boolean }): void {
  settings.s3ForcePathStyle = options.s3ForcePathStyle;
}

const base = { maxAttempts: MAX_ATTEMPTS, retryMode: 'standard' } as const;

let s3: S3Client | undefined;
export function s3Client(): S3Client {
  return (s3 ??= countRequests(withSdkErrorMapping(new S3Client({ ...base, forcePathStyle: settings.s3ForcePathStyle })), 's3'));
}

let ec2: EC2Client | undefined;
export function ec2Client(): EC2Client {
  return (ec2 ??= countRequests(withSdkErrorMapping(new EC2Client(base)), 'ec2'));
}

let autoScaling: AutoScalingClient | undefined;
export function autoScalingClient(): AutoScalingClient {
  return (autoScaling ??= countRequests(withSdkErrorMapping(new AutoScalingClient(base)), 'autoscaling'));
}

let elbv2: ElasticLoadBalancingV2Client | undefined;
export function elbv2Client(): ElasticLoadBalancingV2Client {
  return (elbv2 ??= countRequests(withSdkErrorMapping(new ElasticLoadBalancingV2Client(base)), 'elasticloadbalancing'));
}

let acm: ACMClient | undefined;
export function acmClient(): ACMClient {
  return (acm ??= countRequests(withSdkErrorMapping(new ACMClient(base)), 'acm'));
}

let route53: Route53Client | undefined;
export function route53Client(): Route53Client {
  return (route53 ??= countRequests(withSdkErrorMapping(new Route53Client(base)), 'route53'));
}

let ssm: SSMClient | undefined;
export function ssmClient(): SSMClient {
  return (ssm ??= countRequests(withSdkErrorMapping(new SSMClient(base)), 'ssm'));
}

let cloudWatch: CloudWatchClient | undefined;
export function cloudWatchClient(): CloudWatchClient {
  return (cloudWatch ??= countRequests(withSdkErrorMapping(new CloudWatchClient(base)), 'cloudwatch'));
}

let secretsManager: SecretsManagerClient | undefined;
export function secretsManagerClient(): SecretsManagerClient {
  return (secretsManager ??= countRequests(withSdkErrorMapping(new SecretsManagerClient(base)), 'secretsmanager'));
}

let sns: SNSClient | undefined;
/** Run notifications (shared/notify.ts). */
export function snsClient(): SNSClient {
  return (sns ??= countRequests(withSdkErrorMapping(new SNSClient(base)), 'sns'));
}

let cloudTrail: CloudTrailClient | undefined;
export function cloudTrailClient(): CloudTrailClient {
  return (cloudTrail ??= countRequests(new CloudTrailClient(base), 'cloudtrail'));
}

let scheduler: SchedulerClient | undefined;
export function schedulerClient(): SchedulerClient {
  return (scheduler ??= countRequests(new SchedulerClient(base), 'scheduler'));
}
