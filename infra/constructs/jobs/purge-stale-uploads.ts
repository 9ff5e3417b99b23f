import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { purgeStaleUploadsEnvironment } from '../../../functions/purge-stale-uploads/config.ts';
import { listingCheckpointKey } from '../../../shared/purge-keys.ts';
import { allow, LISTING_CHECKPOINT_SID } from '../job-policies.ts';
import { OpsFunction } from '../ops-function.ts';
import { REGISTRY_KEY_PREFIX } from '../storage.ts';
import { jobFunctionProps } from './job-props.ts';
import type { JobProps } from './job-props.ts';

export interface PurgeStaleUploadsProps extends JobProps {
  bucket: { bucketName: string; bucketArn: string };
  uploadMaxAge: string;
}

/** What the purge job (and the inventory shards) may do to the objects of an upload directory. */
const UPLOAD_ACTIONS = ['s3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'];

/** purge-stale-uploads: its function, environment and least privilege; it runs on its schedule only. */
export class PurgeStaleUploads extends OpsFunction {
  /** Its environment (inventory mode's shards plan with it). */
  readonly environment: Record<string, string>;
  /** Its statements (inventory mode gives its shards the `_uploads` ones). */
  readonly statements: iam.PolicyStatement[];

  constructor(scope: Construct, id: string, props: PurgeStaleUploadsProps) {
    const environment = purgeStaleUploadsEnvironment({ REGISTRY_BUCKET: props.bucket.bucketName, UPLOAD_MAX_AGE: props.uploadMaxAge });
    const statements = purgeStaleUploadsStatements(props.bucket.bucketArn);
    super(scope, id, jobFunctionProps('purge-stale-uploads', props, { timeout: Duration.minutes(15), environment, statements }));
    this.environment = environment;
    this.statements = statements;
  }
}

function purgeStaleUploadsStatements(bucketArn: string): iam.PolicyStatement[] {
  const repositories = `${bucketArn}/${REGISTRY_KEY_PREFIX}registry/v2/repositories`;
  return [
    allow(['s3:ListBucket', 's3:ListBucketMultipartUploads'], [bucketArn]),
    // Only upload directories: blobs, layer links and manifests stay out of reach even if a plan were wrong.
    // ListMultipartUploadParts: the parts of a candidate are the only sign of life of a push streamed in one PATCH.
    allow(UPLOAD_ACTIONS, [`${repositories}/*/_uploads/*`]),
    // IAM's * crosses slashes, so the pattern above also matches the link of a tag named `_uploads` (a valid tag):
    // the registry's manifest and layer trees are denied outright. No upload key has them (repository name
    // components cannot start with `_`).
    new iam.PolicyStatement({
      sid: 'NoManifestsOrLayers',
      effect: iam.Effect.DENY,
      actions: UPLOAD_ACTIONS,
      resources: ['_manifests', '_layers'].map((d) => `${repositories}/*/${d}/*`),
    }),
    // The resumable listing's checkpoint: this one key, outside the registry's tree.
    new iam.PolicyStatement({
      sid: LISTING_CHECKPOINT_SID,
      actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
      resources: [`${bucketArn}/${listingCheckpointKey('')}`],
    }),
  ];
}
