import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Aws, CfnOutput, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { inventoryModeEnvironment, PASS_TIMEOUT_MS } from '../../functions/purge-stale-uploads/inventory-config.ts';
import { PURGE_INVENTORY_ID, PURGE_INVENTORY_PREFIX, PURGE_PASSES_PREFIX } from '../../shared/purge-keys.ts';
import { HISTORY_PREFIX, type RunHistory } from './history.ts';
import { OpsFunction } from './ops-function.ts';
import { PRIVATE_BUCKET } from './storage.ts';

/**
 * How the inventory pass's Distributed Map runs its shards. The state machine is built from these and the
 * integration test's local executor (test/support/distributed-map.ts) runs the shards by the same numbers.
 */
export const INVENTORY_MAP = {
  /** Shards at once: each streams one data file and re-reads its candidates; S3 takes far more, Lambda reserves this many. */
  maxConcurrency: 10,
  /** A pass with more failed shards than this fails (the merge step still reports every shard). */
  toleratedFailurePercentage: 5,
  /** Throttling (Lambda's or S3's past the SDK's own retries) is retried with exponential backoff and jitter. */
  retry: {
    errors: ['Lambda.TooManyRequestsException', 'Lambda.ServiceException', 'Lambda.SdkClientException', 'SlowDown', 'ThrottlingException'],
    intervalSeconds: 2,
    backoffRate: 2,
    maxAttempts: 6,
  },
} as const;

/**
 * How the plan step waits for the registry-storage lease (LeaseHeldError: collect-garbage runs, shared/lease.ts):
 * no jitter, so the waits add up to 2+3+4.5+6.75+10+10 ≈ 36 min, longer than a GC run (15 min) plus the TTL of the
 * lease of one that crashed (16 min); then the pass fails visibly (PassFailed) and the next delivery starts another.
 */
export const PASS_LEASE_RETRY = {
  errors: ['LeaseHeldError'],
  intervalSeconds: 120,
  backoffRate: 1.5,
  maxDelaySeconds: 600,
  maxAttempts: 6,
} as const;

/** The bundle of the inventory Lambda (functions/purge-stale-uploads/inventory-handler.ts). */
export const INVENTORY_BUNDLE = 'purge-stale-uploads-inventory';
/** Inventory deliveries and passes are kept this long, then expire (a pass reads the newest delivery). */
export const INVENTORY_RETENTION_DAYS = 14;

export interface PurgeInventoryProps {
  namePrefix: string;
  functionsDir: string;
  bucket: s3.Bucket;
  /** Where the registry's keys start (`docker/`): the inventory lists `<prefix>registry/v2/repositories/`. */
  registryKeyPrefix: string;
  format: 'Parquet' | 'CSV';
  dryRun: boolean;
  metricsNamespace: string;
  logRetention: logs.RetentionDays;
  /** The environment of the listing job (REGISTRY_BUCKET, UPLOAD_MAX_AGE, …): the shards plan by the same rules. */
  environment: Record<string, string>;
  /** The listing job's `_uploads` statements: a shard touches exactly what a listing run touches. */
  uploadStatements: readonly iam.PolicyStatement[];
  /** The listing job's schedule rule: turned off (a pass replaces the nightly listing; manual runs stay). */
  listingSchedule: events.Rule | undefined;
  /** The run history: every pass leaves its one report there, as every run of the job does. */
  history: RunHistory;
  /** POWERTOOLS_LOG_LEVEL (default INFO), as the job functions'. */
  logLevel?: string;
  /**
   * collect-garbage's lease (a fleet that runs it): the pass takes it from plan to merge (STORAGE_LEASE=true and
   * access to its one key), so a pass and a GC run never touch the storage at once.
   */
  storageLease?: { shareLease(fn: lambda.Function): void };
}

/**
 * Inventory mode of purge-stale-uploads (10⁸ keys): S3 Inventory of the registry's repositories tree, daily, into
 * a bucket of its own (S3 may write only its inventory prefix, only for the registry bucket and this account; a
 * bucket cannot be its own inventory destination in one template, and the registry bucket's events stay out of
 * EventBridge); the delivery event starts a Step Functions pass: plan → Distributed Map of shards over the plan's
 * items (one per data file) → the orphan shard → merge (one report). See functions/purge-stale-uploads/shard.ts.
 */
export class PurgeInventory extends Construct {
  readonly fn: lambda.Function;
  readonly stateMachine: sfn.StateMachine;
  readonly deliveryRule: events.Rule;
  /** Inventory deliveries and the passes' folders. */
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: PurgeInventoryProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const repositories = `${props.registryKeyPrefix}registry/v2/repositories/`;
    this.bucket = new s3.Bucket(this, 'Bucket', {
      ...PRIVATE_BUCKET,
      eventBridgeEnabled: true,
      // Nothing in it that the next delivery does not rebuild; expired objects keep a deleted stack's bucket small.
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ id: 'expire-deliveries-and-passes', expiration: Duration.days(INVENTORY_RETENTION_DAYS) }],
    });
    const bucket = this.bucket;
    this.addInventory(props.bucket, repositories, props.format);

    this.fn = this.inventoryFunction(props);
    props.storageLease?.shareLease(this.fn);
    props.history.grantJob('purge-stale-uploads', this.fn);
    this.stateMachine = this.passStateMachine(props, bucket);

    // S3 writes manifest.json last: its creation means the delivery is whole.
    this.deliveryRule = new events.Rule(this, 'Delivered', {
      description: 'an S3 Inventory of the registry was delivered: starts a purge-stale-uploads pass',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [bucket.bucketName] },
          object: { key: [{ wildcard: `${PURGE_INVENTORY_PREFIX}*/${PURGE_INVENTORY_ID}/*/manifest.json` }] },
        },
      },
      targets: [
        new targets.SfnStateMachine(this.stateMachine, {
          input: events.RuleTargetInput.fromObject({
            manifestKey: events.EventField.fromPath('$.detail.object.key'),
            reason: 'S3 Inventory delivered',
          }),
        }),
      ],
    });
    if (!props.listingSchedule) throw new Error('PurgeInventory: the listing job has no schedule rule to turn off');
    (props.listingSchedule.node.defaultChild as events.CfnRule).state = 'DISABLED';

    new CfnOutput(stack, 'PurgeInventoryStateMachineArn', {
      value: this.stateMachine.stateMachineArn,
      description: 'purge-stale-uploads inventory pass: aws stepfunctions start-execution --input \'{"dryRun":true}\'',
    });
    new CfnOutput(stack, 'PurgeInventoryFunctionName', {
      value: this.fn.functionName,
      description: 'purge-stale-uploads inventory shards',
    });
    this.acknowledge(stack, props.bucket, props.history);
  }

  /**
   * Failed passes page like failed jobs, and every pass notifies on this topic as every run does (NOTIFY_TOPIC_ARN:
   * a failed pass, or one that applied deletes; shared/notify.ts).
   */
  alarmTo(topic: sns.ITopic): cloudwatch.Alarm {
    this.fn.addEnvironment('NOTIFY_TOPIC_ARN', topic.topicArn);
    topic.grantPublish(this.fn);
    const alarm = new cloudwatch.Alarm(this, 'PassFailed', {
      alarmDescription: 'a purge-stale-uploads inventory pass failed (its merged report names the shards)',
      metric: this.stateMachine.metricFailed({ period: Duration.hours(1), statistic: 'Sum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new cwActions.SnsAction(topic));
    return alarm;
  }

  private addInventory(registry: s3.Bucket, repositories: string, format: 'Parquet' | 'CSV'): void {
    // Given as an imported bucket, CDK adds no delivery policy of its own; the one below also pins the account.
    const destination = s3.Bucket.fromBucketArn(this, 'Destination', this.bucket.bucketArn);
    registry.addInventory({
      inventoryId: PURGE_INVENTORY_ID,
      destination: { bucket: destination, prefix: PURGE_INVENTORY_PREFIX.replace(/\/$/, '') },
      objectsPrefix: repositories,
      format: format === 'Parquet' ? s3.InventoryFormat.PARQUET : s3.InventoryFormat.CSV,
      frequency: s3.InventoryFrequency.DAILY,
      includeObjectVersions: s3.InventoryObjectVersion.CURRENT,
      optionalFields: ['Size', 'LastModifiedDate'],
      enabled: true,
    });
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'S3InventoryDelivery',
        principals: [new iam.ServicePrincipal('s3.amazonaws.com')],
        actions: ['s3:PutObject'],
        resources: [this.bucket.arnForObjects(`${PURGE_INVENTORY_PREFIX}*`)],
        conditions: { ArnLike: { 'aws:SourceArn': registry.bucketArn }, StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    );
  }

  private inventoryFunction(props: PurgeInventoryProps): lambda.Function {
    const codeDir = resolve(join(props.functionsDir, INVENTORY_BUNDLE));
    if (!existsSync(join(codeDir, 'index.mjs'))) {
      throw new Error(`PurgeInventory: no bundle at ${join(codeDir, 'index.mjs')} (run npm run build, or set the functionsDir context)`);
    }
    // Id `Default` keeps the function's, role's and log group's logical ids as they were before OpsFunction (CDK
    // leaves `Default` out of the path): a replacement of a function with a fixed name would fail the update.
    const ops = new OpsFunction(this, 'Default', {
      job: 'purge-stale-uploads',
      bundle: INVENTORY_BUNDLE,
      functionsDir: props.functionsDir,
      functionName: `${props.namePrefix}-${INVENTORY_BUNDLE}`,
      description: 'registry control plane: purge-stale-uploads inventory pass (plan, shards, merge)',
      // One full vCPU: a shard decodes Parquet/CSV, CPU-bound (test/bench/results.md).
      memorySize: 1769,
      timeout: Duration.minutes(15),
      // The map's shards, plus the plan/orphan/merge steps: never more, so a pass cannot starve the account.
      reservedConcurrency: INVENTORY_MAP.maxConcurrency + 2,
      dryRun: props.dryRun,
      metricsNamespace: props.metricsNamespace,
      environment: { ...props.environment, ...inventoryModeEnvironment({ INVENTORY_BUCKET: this.bucket.bucketName }) },
      statements: props.uploadStatements,
      logRetention: props.logRetention,
      ...(props.logLevel ? { logLevel: props.logLevel } : {}),
      // The `fleet` dimension of its metrics, as every job function's (ControlPlane.fleetName: the stack name).
      fleetName: props.namePrefix,
    });
    const fn = ops.fn;
    const b = this.bucket;
    const allow = (actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      fn.addToRolePolicy(new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) }));
    // Reads the inventory; writes only its own pass folders (items, reports, claims).
    allow(['s3:GetObject'], [b.arnForObjects(`${PURGE_INVENTORY_PREFIX}*`), b.arnForObjects(`${PURGE_PASSES_PREFIX}*`)]);
    allow(['s3:PutObject'], [b.arnForObjects(`${PURGE_PASSES_PREFIX}*`)]);
    // Lists exactly what shard.ts lists: the deliveries (the newest manifest; whether a named one exists), a pass's
    // shard attempts (the merge) and its pass.json (whether the pass exists). With only these prefixes S3 answers a
    // GetObject of a missing key 403, never NoSuchKey: shard.ts decides "missing" by these listings.
    allow(['s3:ListBucket'], [b.bucketArn], {
      StringLike: { 's3:prefix': [`${PURGE_INVENTORY_PREFIX}*`, `${PURGE_PASSES_PREFIX}*/shards/`, `${PURGE_PASSES_PREFIX}*/pass.json`] },
    });
    return fn;
  }

  private passStateMachine(props: PurgeInventoryProps, bucket: s3.Bucket): sfn.StateMachine {
    const throttled = {
      errors: [...INVENTORY_MAP.retry.errors],
      interval: Duration.seconds(INVENTORY_MAP.retry.intervalSeconds),
      backoffRate: INVENTORY_MAP.retry.backoffRate,
      maxAttempts: INVENTORY_MAP.retry.maxAttempts,
      jitterStrategy: sfn.JitterType.FULL,
    };
    // Every step is this Lambda; without a payload the state's input (or `inputPath`) is the event.
    const invoke = (id: string, payload: sfn.TaskInput | undefined, more: Partial<tasks.LambdaInvokeProps> = {}) => {
      const task = new tasks.LambdaInvoke(this, id, {
        lambdaFunction: this.fn,
        ...(payload ? { payload } : {}),
        payloadResponseOnly: true,
        retryOnServiceExceptions: false,
        ...more,
      });
      return task.addRetry(throttled);
    };

    const plan = invoke(
      'Plan',
      sfn.TaskInput.fromObject({ step: 'plan', pass: sfn.JsonPath.executionName, input: sfn.JsonPath.executionInput }),
      {
        resultPath: '$.plan',
      },
    );
    plan.addRetry({
      errors: [...PASS_LEASE_RETRY.errors],
      interval: Duration.seconds(PASS_LEASE_RETRY.intervalSeconds),
      backoffRate: PASS_LEASE_RETRY.backoffRate,
      maxDelay: Duration.seconds(PASS_LEASE_RETRY.maxDelaySeconds),
      maxAttempts: PASS_LEASE_RETRY.maxAttempts,
      jitterStrategy: sfn.JitterType.NONE,
    });

    const shard = invoke('Shard', undefined); // the item is the shard's event
    const shards = new sfn.DistributedMap(this, 'Shards', {
      comment: 'one shard per inventory data file',
      itemReader: new PassItemsReader({ bucket, key: sfn.JsonPath.stringAt('$.plan.itemsKey') }),
      maxConcurrency: INVENTORY_MAP.maxConcurrency,
      toleratedFailurePercentage: INVENTORY_MAP.toleratedFailurePercentage,
      resultPath: sfn.JsonPath.DISCARD,
      // Without a ResultWriter the children's results accumulate in the execution's state (256 KiB): a pass of
      // a few thousand data files would fail with States.DataLimitExceeded. S3 gets them; the merge reads the
      // shards' own reports, never these.
      // Both forms: aws-cdk-lib renders the V2 writer only under its feature flag (not set in cdk.json), the V1 otherwise.
      resultWriter: new PassResultWriter({ bucket, prefix: MAP_RESULTS_PREFIX }),
      resultWriterV2: new PassResultWriterV2({ bucket, prefix: MAP_RESULTS_PREFIX }),
      mapExecutionType: sfn.StateMachineType.STANDARD,
    });
    shards.itemProcessor(shard);

    const orphans = invoke('Orphans', undefined, { inputPath: '$.plan.orphans' });
    const merge = invoke('Merge', sfn.TaskInput.fromObject({ step: 'merge', pass: sfn.JsonPath.executionName }));
    const mergeAfterFailure = invoke(
      'MergeAfterMapFailure',
      sfn.TaskInput.fromObject({ step: 'merge', pass: sfn.JsonPath.executionName, mapError: sfn.JsonPath.objectAt('$.mapError') }),
    );
    shards.addCatch(mergeAfterFailure, { resultPath: '$.mapError' });
    // A failed orphan shard still gets the pass its report and frees the lease at once, not after the 8 h TTL: the
    // merge finds that shard failed or missing in its attempts (a refusal) and fails the execution after.
    const mergeAfterOrphans = invoke(
      'MergeAfterOrphansFailure',
      sfn.TaskInput.fromObject({ step: 'merge', pass: sfn.JsonPath.executionName }),
    );
    orphans.addCatch(mergeAfterOrphans, { resultPath: '$.orphansError' });

    const logGroup = new logs.LogGroup(this, 'PassLogs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
    /*
     * Logging to CloudWatch Logs makes CDK grant the role the vended-log actions on `*` (logs:CreateLogDelivery,
     * GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy,
     * DescribeResourcePolicies, DescribeLogGroups). They cannot be scoped: the Service Authorization Reference lists
     * no resource type and no condition key for any of them (test/infra/purge-inventory.test.ts reads that from
     * IAM's own data and fails the day one appears), and Step Functions refuses a logging configuration whose role
     * lacks them. What keeps `logs:PutResourcePolicy` harmless here: only states.amazonaws.com can assume the role,
     * and the definition calls no CloudWatch Logs API (only this Lambda and the S3 item reader/result writer).
     */
    return new sfn.StateMachine(this, 'Pass', {
      stateMachineName: `${props.namePrefix}-purge-stale-uploads`,
      comment: 'purge-stale-uploads inventory pass: plan → shards (Distributed Map) → orphan multipart uploads → merged report',
      definitionBody: sfn.DefinitionBody.fromChainable(plan.next(shards).next(orphans).next(merge)),
      timeout: Duration.millis(PASS_TIMEOUT_MS), // also the TTL of the pass's lease
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
  }

  /** cdk-nag findings of this construct, each on the narrowest construct and with its reason. */
  private acknowledge(stack: Stack, registry: s3.Bucket, history: RunHistory): void {
    const ack = (scope: Construct, rule: string, reason: string) => Validations.of(scope).acknowledge({ id: rule, reason });
    const arnOf = (b: s3.Bucket) => `<${stack.getLogicalId(b.node.defaultChild as s3.CfnBucket)}.Arn>`;
    const basic = 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]';
    ack(
      this.bucket,
      'AwsSolutions-S1',
      'holds only inventory deliveries and pass bookkeeping that expire after 14 days; server access logs would need another bucket',
    );
    ack(
      this.fn.role as unknown as Construct,
      basic,
      "CloudWatch Logs write access for the function's own log group (AWS managed basic execution role)",
    );
    const policy = this.fn.role?.node.tryFindChild('DefaultPolicy') as Construct;
    ack(
      policy,
      `AwsSolutions-IAM5[Resource::${arnOf(this.bucket)}/${PURGE_INVENTORY_PREFIX}*]`,
      'read of the inventory deliveries: S3 names their data files at delivery',
    );
    ack(
      policy,
      `AwsSolutions-IAM5[Resource::${arnOf(this.bucket)}/${PURGE_PASSES_PREFIX}*]`,
      'the pass folders (one per execution: items, shard reports, claims); execution names are not known in advance',
    );
    ack(
      policy,
      `AwsSolutions-IAM5[Resource::${arnOf(registry)}/docker/registry/v2/repositories/*/_uploads/*]`,
      'object access only inside upload directories, exactly as the listing job (names and uuids are not known in advance)',
    );
    ack(
      policy,
      `AwsSolutions-IAM5[Resource::${arnOf(history.bucket)}/${HISTORY_PREFIX}/job=purge-stale-uploads/*]`,
      "PutObject of the pass's report in the run history: keys are named by date and request id (shared/history.ts)",
    );
    const sm = this.stateMachine.role.node.tryFindChild('DefaultPolicy') as Construct;
    ack(
      sm,
      `AwsSolutions-IAM5[Resource::${arnOf(this.bucket)}/${PURGE_PASSES_PREFIX}*]`,
      'the Distributed Map reads the items file of its own pass folder; execution names are not known in advance',
    );
    ack(
      sm,
      `AwsSolutions-IAM5[Resource::${arnOf(this.bucket)}/${MAP_RESULTS_PREFIX}/*]`,
      'the Distributed Map writes its results under its own prefix; Step Functions names the objects by map run',
    );
    ack(
      sm,
      `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(this.fn.node.defaultChild as lambda.CfnFunction)}.Arn>:*]`,
      "invoke of the inventory function's versions (the Step Functions Lambda integration grants Function and Function:*)",
    );
    ack(
      sm,
      'AwsSolutions-IAM5[Resource::*]',
      'X-Ray trace segments and CloudWatch Logs delivery for the state machine take no resource (AWS documented policy)',
    );
    const mapPolicy = this.stateMachine.node.tryFindChild('DistributedMapPolicy') as Construct;
    for (const suffix of [':*', '/*:*']) {
      const machine = stack.getLogicalId(this.stateMachine.node.defaultChild as sfn.CfnStateMachine);
      const arn =
        `arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:` +
        `{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${machine}"}]}]}${suffix}`;
      ack(
        mapPolicy,
        `AwsSolutions-IAM5[Resource::${arn}]`,
        'the Distributed Map starts, describes and stops its own child executions (named by Step Functions)',
      );
    }
    const handler = stack.node.tryFindChild('BucketNotificationsHandler050a0587b7544547bf325f094a3db834');
    const role = handler?.node.tryFindChild('Role');
    if (role) ack(role, basic, "CDK's bucket-notification custom resource (EventBridge on the inventory bucket): logs only");
  }
}

/** Where the Distributed Map writes its children's results (`<prefix>/<map run id>/…`): in the pass folders, expiring with them. */
export const MAP_RESULTS_PREFIX = `${PURGE_PASSES_PREFIX}map-results`;

/**
 * What the result writer needs, on its prefix only (CDK's own writers grant object writes on the whole bucket).
 * Its s3:GetObject is the item reader's, on the pass folders (`passes/*` holds `passes/map-results/*`).
 */
const resultWrites = (bucket: s3.IBucket) => [
  new iam.PolicyStatement({
    actions: ['s3:PutObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
    resources: [bucket.arnForObjects(`${MAP_RESULTS_PREFIX}/*`)],
  }),
];

/** The form aws-cdk-lib renders without its V2 feature flag (deprecated there, the one in effect here). */
class PassResultWriter extends sfn.ResultWriter {
  override providePolicyStatements(): iam.PolicyStatement[] {
    return resultWrites(this.bucket);
  }
}

class PassResultWriterV2 extends sfn.ResultWriterV2 {
  override providePolicyStatements(): iam.PolicyStatement[] {
    return resultWrites(this.bucket as s3.IBucket);
  }
}

/** The Distributed Map's item reader, scoped to the pass folders (CDK's own grants s3:GetObject on the whole bucket). */
class PassItemsReader extends sfn.S3JsonItemReader {
  override providePolicyStatements(): iam.PolicyStatement[] {
    return [new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [this.bucket.arnForObjects(`${PURGE_PASSES_PREFIX}*`)] })];
  }
}
