import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { commonEnvironment } from '../../shared/config.ts';
import { PRIVATE_BUCKET } from './storage.ts';

/** Where the reports go in the history bucket (the functions' HISTORY_PREFIX). */
export const HISTORY_PREFIX = 'reports';

export interface RunHistoryProps {
  /** Days a report is kept (S3 lifecycle expiration). */
  retentionDays: number;
  /** The jobs whose reports the Glue table's partition projection enumerates. */
  jobs: readonly string[];
  /** Also define a Glue database and table over the reports, for Athena. */
  glueTable: boolean;
  /** Names the Glue database (`<name>_history`, lower case, underscores). */
  namePrefix: string;
}

/**
 * The run history (ARCHITECTURE §5): a private, encrypted, TLS-only bucket whose reports expire after
 * `retentionDays`. Each function may only add reports under its own `reports/job=<job>/` prefix
 * (`grantJob`), so a job can neither read nor overwrite another job's history. Optionally a Glue table with
 * partition projection (no crawler, no MSCK REPAIR) over the same prefix, for Athena.
 */
export class RunHistory extends Construct {
  readonly bucket: s3.Bucket;
  readonly prefix = HISTORY_PREFIX;
  readonly database?: glue.CfnDatabase;
  readonly table?: glue.CfnTable;

  constructor(scope: Construct, id: string, props: RunHistoryProps) {
    super(scope, id);
    if (!Number.isInteger(props.retentionDays) || props.retentionDays < 1) {
      throw new Error(`RunHistory: retentionDays must be a whole number of days ≥ 1, got ${props.retentionDays}`);
    }
    this.bucket = new s3.Bucket(this, 'Bucket', {
      ...PRIVATE_BUCKET,
      // The history is the record of what the jobs deleted: it outlives the stack.
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        { id: 'expire-reports', prefix: `${HISTORY_PREFIX}/`, expiration: Duration.days(props.retentionDays) },
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
    if (props.glueTable) {
      const { database, table } = this.defineGlueTable(props);
      this.database = database;
      this.table = table;
    }
  }

  /** `job`'s function writes its reports here and nowhere else (PutObject only: no read, list or delete). */
  grantJob(job: string, fn: lambda.Function): void {
    const vars = commonEnvironment({ HISTORY_BUCKET: this.bucket.bucketName, HISTORY_PREFIX }); // the names shared/config.ts reads
    for (const [name, value] of Object.entries(vars)) fn.addEnvironment(name, value);
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [this.bucket.arnForObjects(`${HISTORY_PREFIX}/job=${job}/*`)] }),
    );
  }

  private defineGlueTable(props: RunHistoryProps): { database: glue.CfnDatabase; table: glue.CfnTable } {
    const stack = Stack.of(this);
    const databaseName = `${props.namePrefix.toLowerCase().replace(/[^a-z0-9]/g, '_')}_history`;
    const database = new glue.CfnDatabase(this, 'Database', {
      catalogId: stack.account,
      databaseInput: { name: databaseName, description: 'registry control plane: run history (one row per run)' },
    });
    const location = `s3://${this.bucket.bucketName}/${HISTORY_PREFIX}/`;
    const action = 'struct<type:string,target:string,reason:string,status:string,error:string>';
    const table = new glue.CfnTable(this, 'Table', {
      catalogId: stack.account,
      databaseName,
      tableInput: {
        name: 'runs',
        description: 'every run of every job: the whole report (reports/job=<job>/date=YYYY-MM-DD/...)',
        tableType: 'EXTERNAL_TABLE',
        partitionKeys: [
          { name: 'job', type: 'string' },
          { name: 'date', type: 'string' },
        ],
        parameters: {
          classification: 'json',
          // Partition projection: Athena computes the partitions from these rules instead of a crawler.
          'projection.enabled': 'true',
          'projection.job.type': 'enum',
          'projection.job.values': props.jobs.join(','),
          'projection.date.type': 'date',
          'projection.date.format': 'yyyy-MM-dd',
          'projection.date.range': `NOW-${props.retentionDays}DAYS,NOW`,
          'projection.date.interval': '1',
          'projection.date.interval.unit': 'DAYS',
          'storage.location.template': `${location}job=\${job}/date=\${date}/`,
        },
        storageDescriptor: {
          location,
          inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
          serdeInfo: { serializationLibrary: 'org.openx.data.jsonserde.JsonSerDe', parameters: { 'ignore.malformed.json': 'true' } },
          columns: [
            {
              name: 'trigger',
              type: 'struct<kind:string,source:string,schedule:string,alarmname:string,state:string,name:string,reason:string>',
            },
            { name: 'dryrun', type: 'boolean' },
            { name: 'correlationid', type: 'string' },
            { name: 'startedat', type: 'string' },
            { name: 'finishedat', type: 'string' },
            { name: 'summary', type: 'struct<planned:int,applied:int,skipped:int,failed:int>' },
            { name: 'actions', type: `array<${action}>` },
            { name: 'stoppedearly', type: 'string' },
          ],
        },
      },
    });
    table.node.addDependency(database);
    return { database, table };
  }
}
