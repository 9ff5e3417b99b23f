import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Duration } from 'aws-cdk-lib';
import { RemovalPolicy } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { commonEnvironment } from '../../shared/config.ts';

export interface OpsFunctionProps {
  /** The job name (folder under functionsDir, `POWERTOOLS_SERVICE_NAME`, function name suffix). */
  job: string;
  /** Directory holding `<job>/index.mjs` bundles (`dist/functions`). */
  functionsDir: string;
  functionName: string;
  timeout: Duration;
  memorySize?: number;
  dryRun: boolean;
  metricsNamespace: string;
  environment: Record<string, string>;
  /** Least-privilege statements for this job. */
  statements: readonly iam.PolicyStatement[];
  /** EventBridge schedule expression (`rate(...)` / `cron(...)`); none for a function another service invokes. */
  schedule?: string;
  /** The bundle under functionsDir when it is not the job's own (a job's second Lambda: `<job>-<name>`). */
  bundle?: string;
  /** The function's description (default: the job's). */
  description?: string;
  /** Reserved concurrency (default 1: a janitor runs one at a time). */
  reservedConcurrency?: number;
  logRetention: logs.RetentionDays;
  /** POWERTOOLS_LOG_LEVEL (default INFO: one report line and one line per action). */
  logLevel?: string;
  /** FLEET_NAME: the `fleet` dimension of every metric the job publishes (the stack name); none when unset. */
  fleetName?: string;
}

/** One control-plane job: the bundled Lambda (nodejs24.x, arm64, one at a time), its log group and schedule. */
export class OpsFunction extends Construct {
  readonly fn: lambda.Function;
  readonly logGroup: logs.LogGroup;
  readonly scheduleRule?: events.Rule;

  constructor(scope: Construct, id: string, props: OpsFunctionProps) {
    super(scope, id);
    const codeDir = resolve(join(props.functionsDir, props.bundle ?? props.job));
    if (!existsSync(join(codeDir, 'index.mjs'))) {
      throw new Error(
        `OpsFunction ${props.bundle ?? props.job}: no bundle at ${join(codeDir, 'index.mjs')} ` +
          '(run npm run build, or set the functionsDir context)',
      );
    }
    this.logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
    this.fn = new lambda.Function(this, 'Function', {
      functionName: props.functionName,
      description: props.description ?? `registry control plane: ${props.job}`,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(codeDir, { exclude: ['meta.json'] }), // esbuild's metafile is not needed at run time
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout,
      // Janitors run one at a time: two runs never race on the same resources (STYLE §7).
      reservedConcurrentExecutions: props.reservedConcurrency ?? 1,
      logGroup: this.logGroup,
      // The common variables through shared/config.ts' builder (the names every function's loader reads); the
      // POWERTOOLS_* and NODE_OPTIONS ones are read by Powertools and Node themselves.
      environment: {
        ...props.environment,
        POWERTOOLS_SERVICE_NAME: props.job,
        POWERTOOLS_METRICS_NAMESPACE: props.metricsNamespace,
        ...commonEnvironment({ DRY_RUN: props.dryRun ? 'true' : 'false' }),
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_LOG_LEVEL: props.logLevel ?? 'INFO',
        ...commonEnvironment({ FLEET_NAME: props.fleetName }),
      },
    });
    for (const statement of props.statements) this.fn.addToRolePolicy(statement);
    if (props.schedule) {
      this.scheduleRule = new events.Rule(this, 'Schedule', {
        description: `runs ${props.job} on its schedule`,
        schedule: events.Schedule.expression(props.schedule),
        targets: [new targets.LambdaFunction(this.fn)],
      });
    }
  }
}
