import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { repositoriesPrefix, v2Prefix } from '../../shared/registry-layout.ts';

/** What every bucket of the stack is: S3-encrypted, private, owner-enforced, TLS only (cdk-nag's S1–S10 ask for it). */
export const PRIVATE_BUCKET = {
  encryption: s3.BucketEncryption.S3_MANAGED,
  blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
  objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
  enforceSSL: true,
} as const satisfies s3.BucketProps;

/** Where sync-htpasswd publishes the rendered file (outside the registry's `docker/registry/v2/` tree). */
export const CONTROL_PLANE_PREFIX = 'control-plane/';
export const HTPASSWD_OBJECT_KEY = `${CONTROL_PLANE_PREFIX}htpasswd`;

/**
 * Every key the registry writes starts with this (`storage.s3.rootdirectory` is empty: `docker/registry/v2/...`).
 * Instances get object access only here, so they cannot rewrite the published htpasswd.
 */
export const REGISTRY_KEY_PREFIX = 'docker/';

/** distribution 2.8's S3 driver: the bucket-level and object-level actions it calls, nothing more. */
export const REGISTRY_BUCKET_ACTIONS = ['s3:ListBucket', 's3:GetBucketLocation', 's3:ListBucketMultipartUploads'];
export const REGISTRY_OBJECT_ACTIONS = [
  's3:GetObject',
  's3:PutObject',
  's3:DeleteObject',
  's3:ListMultipartUploadParts',
  's3:AbortMultipartUpload',
];

export interface RegistryStorageProps {
  /** The purge job's upload age (ms): the abort-incomplete-multipart lifecycle never undercuts it. */
  uploadMaxAgeMs: number;
  /** S3 server access logs of the image bucket into `logsBucket` (off by default: one log object per few requests costs). */
  serverAccessLogs?: boolean;
  /** The registry's `storage.s3.rootdirectory` (default empty: keys start `docker/registry/v2/`). */
  registryRoot?: string;
  /** GC_UNDO_DAYS: how long a deleted blob stays restorable (a noncurrent version under `blobs/`), default 7. */
  undoDays?: number;
}

/** Noncurrent versions under `repositories/` (links, upload data the registry moved at commit) expire after this. */
export const REPOSITORIES_NONCURRENT_DAYS = 1;
export const DEFAULT_UNDO_DAYS = 7;

/**
 * Noncurrent versions expire per prefix; the prefixes never overlap, because where two expirations apply S3
 * takes the sooner one and the blobs' undo window would shrink to a day. Each rule also removes the delete
 * marker left alone once its versions are gone, so a deleted key costs nothing after its undo window.
 */
function noncurrentRules(root: string | undefined, undoDays: number): s3.LifecycleRule[] {
  const rule = (id: string, prefix: string, days: number): s3.LifecycleRule => ({
    id,
    prefix,
    noncurrentVersionExpiration: Duration.days(days),
    expiredObjectDeleteMarker: true,
  });
  return [
    // Links, tags and the upload data the registry copies to blobs/ at commit: nothing to undo after a day.
    rule('expire-noncurrent-repositories', repositoriesPrefix(root), REPOSITORIES_NONCURRENT_DAYS),
    // A GC delete is undoable (remove the delete marker) for undoDays.
    rule('expire-noncurrent-blobs', `${v2Prefix(root)}blobs/`, undoDays),
    // The control plane's own keys (htpasswd, the purge's checkpoint): older copies are of no use.
    rule('expire-noncurrent-control-plane', CONTROL_PLANE_PREFIX, REPOSITORIES_NONCURRENT_DAYS),
  ];
}

/** The image bucket (encrypted, private, TLS-only, RETAIN) and the fleet's shared `http.secret`. */
export class RegistryStorage extends Construct {
  readonly bucket: s3.Bucket;
  readonly httpSecret: secretsmanager.Secret;
  /** Days after which S3 aborts an incomplete multipart upload (a backstop behind purge-stale-uploads). */
  readonly abortIncompleteUploadDays: number;
  /** Days a deleted or overwritten blob stays restorable (its noncurrent version under `blobs/`). */
  readonly undoDays: number;
  private logs?: s3.Bucket;

  constructor(scope: Construct, id: string, props: RegistryStorageProps) {
    super(scope, id);
    if (!(props.uploadMaxAgeMs > 0)) throw new Error('RegistryStorage: uploadMaxAgeMs must be positive');
    // One day beyond the purge age (rounded up), so the purge job always sees a stale upload first.
    this.abortIncompleteUploadDays = Math.ceil(props.uploadMaxAgeMs / 86_400_000) + 1;
    this.undoDays = props.undoDays ?? DEFAULT_UNDO_DAYS;
    if (!(Number.isInteger(this.undoDays) && this.undoDays >= 1)) {
      throw new Error(`RegistryStorage: undoDays must be a whole number of days ≥ 1 (got ${this.undoDays})`);
    }

    this.bucket = new s3.Bucket(this, 'Bucket', {
      ...PRIVATE_BUCKET,
      removalPolicy: RemovalPolicy.RETAIN,
      // Every delete becomes a delete marker: a blob collect-garbage removed can be restored until its
      // noncurrent version expires (issue 22 item 4).
      versioned: true,
      lifecycleRules: [
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(this.abortIncompleteUploadDays) },
        ...noncurrentRules(props.registryRoot, this.undoDays),
      ],
    });
    if (props.serverAccessLogs) this.logAccessTo(this.logsBucket);

    this.httpSecret = new secretsmanager.Secret(this, 'HttpSecret', {
      description: 'registry http.secret: HMAC key for upload state, shared by every instance of the fleet',
      generateSecretString: { passwordLength: 64, excludePunctuation: true, includeSpace: false },
    });
  }

  /** S3 server access logs through a bucket policy (not the log-delivery ACL: the log bucket enforces bucket ownership). */
  private logAccessTo(logs: s3.Bucket): void {
    (this.bucket.node.defaultChild as s3.CfnBucket).loggingConfiguration = {
      destinationBucketName: logs.bucketName,
      logFilePrefix: 's3-access/',
    };
    logs.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('logging.s3.amazonaws.com')],
        actions: ['s3:PutObject'],
        resources: [logs.arnForObjects('s3-access/*')],
        conditions: { ArnLike: { 'aws:SourceArn': this.bucket.bucketArn }, StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    );
  }

  /**
   * The bucket for access logs (S3 server access logs, ALB access logs), created on first use: SSE-S3 (the only
   * encryption ALB log delivery accepts), private, TLS-only, logs expire after 90 days.
   */
  get logsBucket(): s3.Bucket {
    this.logs ??= new s3.Bucket(this, 'AccessLogs', {
      ...PRIVATE_BUCKET,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(90) }],
    });
    return this.logs;
  }

  /**
   * The registry's S3 actions for `role` (objects under `docker/` only) and read of the published htpasswd,
   * in its identity policy and in the bucket policy.
   */
  grantRegistry(role: iam.IRole): void {
    const statements = [
      { actions: REGISTRY_BUCKET_ACTIONS, resources: [this.bucket.bucketArn] },
      { actions: REGISTRY_OBJECT_ACTIONS, resources: [this.bucket.arnForObjects(`${REGISTRY_KEY_PREFIX}*`)] },
      { actions: ['s3:GetObject'], resources: [this.bucket.arnForObjects(HTPASSWD_OBJECT_KEY)] },
    ];
    for (const s of statements) {
      role.addToPrincipalPolicy(new iam.PolicyStatement(s));
      this.bucket.addToResourcePolicy(new iam.PolicyStatement({ ...s, principals: [role] }));
    }
  }
}
