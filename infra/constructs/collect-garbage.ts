import { Duration, Stack, Validations } from 'aws-cdk-lib';
import type { CfnResource } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { collectGarbageEnvironment } from '../../functions/collect-garbage/config.ts';
import { leaseKey } from '../../shared/lease.ts';
import { normalizeRoot, repositoriesPrefix, v2Prefix } from '../../shared/registry-layout.ts';
import { GC_JOB } from '../config.ts';
import type { GcMode } from '../config.ts';
import { schedulePeriodSeconds } from '../schedule-period.ts';
import type { RunHistory } from './history.ts';
import { OpsFunction } from './ops-function.ts';

/** Where collect-garbage keeps its sweep checkpoint (one per registry root, outside every root). */
export function gcCheckpointKey(root: string | undefined): string {
  const r = normalizeRoot(root);
  return `control-plane/collect-garbage/${r ? `roots/${r}/` : ''}sweep-checkpoint.json.gz`;
}

export interface CollectGarbageProps {
  namePrefix: string;
  functionsDir: string;
  /** The registry bucket; it must be versioned (RegistryStorage is): the job refuses to sweep otherwise. */
  bucket: { bucketName: string; bucketArn: string };
  /** The registry's `storage.s3.rootdirectory` (default empty). */
  registryRoot?: string;
  /** The stack-wide leash: DRY_RUN=true whatever the mode. */
  dryRun: boolean;
  /** `off`: no schedule (manual runs and restores only); `dryRun`: reports only; `on`: sweeps. */
  mode: GcMode;
  schedule: string;
  /** GC_GRACE: a blob's data must be older than this before it may be swept. */
  grace: string;
  maxDeletesPerRun: number;
  /** GC_RETENTION as JSON; undefined = retention off (no tag or manifest is ever deleted). */
  retention?: string;
  metricsNamespace: string;
  logRetention: logs.RetentionDays;
  logLevel?: string;
  /** The `fleet` dimension of its metrics (the stack name). */
  fleetName: string;
}

/**
 * The sixth job (issue 22): online garbage collection of unreferenced blobs, every delete a delete marker the
 * job or an operator can undo within the bucket's undo window. Its function, its least-privilege policy (kept
 * here, beside the keys it names), its weekly schedule and its alarms.
 */
export class CollectGarbage extends Construct {
  readonly ops: OpsFunction;
  readonly alarms: cloudwatch.Alarm[] = [];
  /** The lease key (shared/lease.ts) both collect-garbage and purge-stale-uploads read and write. */
  readonly leaseKey: string;
  private readonly bucketArn: string;
  private readonly props: CollectGarbageProps;

  constructor(scope: Construct, id: string, props: CollectGarbageProps) {
    super(scope, id);
    if (!/^\d+$/.test(String(props.maxDeletesPerRun)) || props.maxDeletesPerRun < 1) {
      throw new Error(`CollectGarbage: maxDeletesPerRun must be a whole number ≥ 1 (got ${props.maxDeletesPerRun})`);
    }
    const root = normalizeRoot(props.registryRoot);
    this.leaseKey = leaseKey(root);
    this.bucketArn = props.bucket.bucketArn;
    this.ops = new OpsFunction(this, 'Job', {
      job: GC_JOB,
      functionsDir: props.functionsDir,
      functionName: `${props.namePrefix}-${GC_JOB}`,
      // The lease outlives a run by a minute (16 min): a longer timeout would let a live run lose it.
      timeout: Duration.minutes(15),
      // The mark holds every referenced digest in memory; a full vCPU parses the manifests.
      memorySize: 1769,
      dryRun: props.dryRun || props.mode === 'dryRun',
      metricsNamespace: props.metricsNamespace,
      environment: collectGarbageEnvironment({
        REGISTRY_BUCKET: props.bucket.bucketName,
        ...(root ? { REGISTRY_ROOT: root } : {}),
        GC_GRACE: props.grace,
        MAX_DELETES_PER_RUN: String(props.maxDeletesPerRun),
        ...(props.retention ? { GC_RETENTION: props.retention } : {}),
      }),
      statements: collectGarbageStatements(props.bucket.bucketArn, root, props.retention !== undefined),
      schedule: props.schedule,
      logRetention: props.logRetention,
      ...(props.logLevel ? { logLevel: props.logLevel } : {}),
      fleetName: props.fleetName,
    });
    // off: the rule stays (disabled) so turning the mode back on is an in-place update; manual runs and restores work.
    if (props.mode === 'off' && this.ops.scheduleRule) (this.ops.scheduleRule.node.defaultChild as events.CfnRule).state = 'DISABLED';
    this.props = props;
    this.acknowledge(props);
  }

  get fn(): lambda.Function {
    return this.ops.fn;
  }

  /** purge-stale-uploads takes the same lease (STORAGE_LEASE=true): read and write of that one key. */
  shareLease(fn: lambda.Function): void {
    fn.addEnvironment('STORAGE_LEASE', 'true');
    fn.addToRolePolicy(leaseStatement(this.bucketArn, this.leaseKey));
  }

  /**
   * Failure, restore and refusal alarms and the run notifications → `topic` (the job-failure topic, created after
   * the functions).
   */
  alarmTo(topic: sns.ITopic): void {
    const props = this.props;
    this.ops.fn.addEnvironment('NOTIFY_TOPIC_ARN', topic.topicArn);
    topic.grantPublish(this.ops.fn);
    const notify = new cwActions.SnsAction(topic);
    const metric = (name: string, dryRun: 'true' | 'false', period = Duration.minutes(5)) =>
      new cloudwatch.Metric({
        namespace: props.metricsNamespace,
        metricName: name,
        dimensionsMap: { service: GC_JOB, dryRun, fleet: props.fleetName },
        statistic: 'Sum',
        period,
      });
    const either = (name: string, period: Duration) =>
      new cloudwatch.MathExpression({
        expression: 'FILL(live, 0) + FILL(dry, 0)',
        usingMetrics: { live: metric(name, 'false', period), dry: metric(name, 'true', period) },
        label: name,
        period,
      });
    const alarm = (id: string, description: string, m: cloudwatch.IMetric, more: Partial<cloudwatch.AlarmProps> = {}) => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmDescription: description,
        metric: m,
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        ...more,
      });
      a.addAlarmAction(notify);
      this.alarms.push(a);
    };
    alarm(
      'Errors',
      `${GC_JOB}: the function failed (error, timeout or JobFailedError)`,
      this.ops.fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
    );
    alarm('FailedActions', `${GC_JOB}: at least one delete or restore failed`, metric('FailedActions', 'false'));
    // A restore means a push re-used a blob the sweep had just deleted: the undo worked, but a person should look.
    alarm(
      'BlobsRestored',
      `${GC_JOB}: a blob deleted by the sweep was referenced again and restored at once (a push raced the sweep): ` +
        'check the report (runbook)',
      metric('BlobsRestored', 'false'),
    );
    // Dry runs refuse too (an unversioned bucket): the first real run would sweep nothing, so say it early.
    alarm(
      'Refusals',
      `${GC_JOB}: the job refused to sweep (e.g. the bucket is not versioned, so a delete could not be undone) (runbook)`,
      either('Refusals', Duration.minutes(5)),
    );
    if (props.mode !== 'off') {
      const period = Duration.seconds(schedulePeriodSeconds(props.schedule));
      alarm(
        'NotSucceeding',
        `${GC_JOB}: no successful run for 2 schedule periods (${props.schedule}): it fails every time or does not run (runbook)`,
        new cloudwatch.MathExpression({
          expression: 'SUM([FILL(live, 0), FILL(dry, 0)])',
          usingMetrics: { live: metric('RunSucceeded', 'false', period), dry: metric('RunSucceeded', 'true', period) },
          label: 'RunSucceeded',
          period,
        }),
        {
          comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
          evaluationPeriods: 2,
          datapointsToAlarm: 2,
          treatMissingData: cloudwatch.TreatMissingData.BREACHING,
        },
      );
    }
  }

  /** cdk-nag findings of this construct, each on its role's policy and with its reason. */
  private acknowledge(props: CollectGarbageProps): void {
    const stack = Stack.of(this);
    const role = this.ops.fn.role as unknown as Construct;
    const policy = role.node.tryFindChild('DefaultPolicy') as Construct;
    const ack = (scope: Construct, rule: string, reason: string) => Validations.of(scope).acknowledge({ id: rule, reason });
    ack(
      role,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      "CloudWatch Logs write access for the function's own log group (AWS managed basic execution role)",
    );
    const bucket = stack.node.tryFindChild('Storage')?.node.tryFindChild('Bucket')?.node.defaultChild as CfnResource | undefined;
    const arn = bucket ? `<${stack.getLogicalId(bucket)}.Arn>` : props.bucket.bucketArn;
    for (const resource of collectGarbageWildcards(normalizeRoot(props.registryRoot), props.retention !== undefined)) {
      ack(policy, `AwsSolutions-IAM5[Resource::${arn}/${resource.key}]`, resource.reason);
    }
  }

  /** Its reports go to the run history like every job's (PutObject under its own prefix only). */
  recordTo(history: RunHistory): void {
    history.grantJob(GC_JOB, this.ops.fn);
    const stack = Stack.of(this);
    const bucket = history.bucket.node.defaultChild as CfnResource;
    Validations.of(this.ops.fn.role?.node.tryFindChild('DefaultPolicy') as Construct).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(bucket)}.Arn>/reports/job=${GC_JOB}/*]`,
      reason: "PutObject only, only under the job's own history prefix; each run is a new object named by its start time and request id",
    });
  }
}

function leaseStatement(bucketArn: string, key: string): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'StorageLease',
    actions: ['s3:GetObject', 's3:PutObject'],
    resources: [`${bucketArn}/${key}`],
  });
}

/** The object patterns with a wildcard, and why each is as narrow as it can be (cdk-nag acknowledgements). */
function collectGarbageWildcards(root: string, retention: boolean): { key: string; reason: string }[] {
  const v2 = v2Prefix(root);
  const repos = repositoriesPrefix(root);
  return [
    { key: `${repos}*`, reason: 'read of the links and tags of every repository (the mark); repository names are not known in advance' },
    { key: `${v2}blobs/*`, reason: 'read of manifest contents (blob data) for the mark; digests are not known in advance' },
    {
      key: `${v2}blobs/sha256/*/*/data`,
      reason:
        'delete (a delete marker: the bucket is versioned) and restore of unreferenced blob data only; digests are not known in advance',
    },
    {
      key: `${repos}*/_layers/sha256/*/link`,
      reason:
        "delete and restore of a repository's layer links that no manifest references (distribution #4406); names are not known in advance",
    },
    ...(retention
      ? [
          {
            key: `${repos}*/_manifests/tags/*`,
            reason: 'retention rules (opt-in) delete tags as distribution does (current and index links); tags are not known in advance',
          },
          {
            key: `${repos}*/_manifests/revisions/sha256/*/link`,
            reason: 'retention rules (opt-in) delete expired manifest revisions as distribution does; digests are not known in advance',
          },
        ]
      : []),
  ];
}

/**
 * collect-garbage's least privilege (the contract in /work/wt/gc-contract.md, "S3 access"): it lists and reads
 * the registry's tree, deletes only blob data and layer links (and, with retention on, tags and revision links),
 * restores only those by removing their delete marker, and writes nothing under `docker/registry/v2/` — a wrong
 * plan can hide a blob for the undo window, never rewrite one.
 */
export function collectGarbageStatements(bucketArn: string, registryRoot: string | undefined, retention: boolean): iam.PolicyStatement[] {
  const root = normalizeRoot(registryRoot);
  const v2 = v2Prefix(root);
  const repos = repositoriesPrefix(root);
  const obj = (key: string) => `${bucketArn}/${key}`;
  const allow = (actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
    new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) });
  const deletable = [obj(`${v2}blobs/sha256/*/*/data`), obj(`${repos}*/_layers/sha256/*/link`)];
  return [
    // Unconditioned: S3 answers a GetObject of a missing key (the first lease, no checkpoint yet) with NoSuchKey only
    // to a role that may list the bucket, and a GetObject request carries no s3:prefix for a condition to match.
    allow(['s3:ListBucket'], [bucketArn]),
    // A restore finds the delete marker among a key's versions.
    allow(['s3:ListBucketVersions'], [bucketArn], { StringLike: { 's3:prefix': [`${repos}*`, `${v2}blobs/*`] } }),
    // The job refuses to sweep an unversioned bucket: its deletes would be final.
    allow(['s3:GetBucketVersioning'], [bucketArn]),
    allow(['s3:GetObject'], [obj(`${repos}*`), obj(`${v2}blobs/*`)]),
    allow(['s3:DeleteObject'], [...deletable, ...(retention ? retentionDeletable(repos).map(obj) : [])]),
    // Restore = delete the delete marker's version. IAM cannot tell a marker from data, so only the keys it may delete.
    allow(['s3:DeleteObjectVersion'], deletable),
    allow(['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], [obj(gcCheckpointKey(root))]),
    leaseStatement(bucketArn, leaseKey(root)),
  ];
}

function retentionDeletable(repos: string): string[] {
  return [`${repos}*/_manifests/tags/*`, `${repos}*/_manifests/revisions/sha256/*/link`];
}
