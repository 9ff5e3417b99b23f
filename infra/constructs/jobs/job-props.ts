import type { Duration } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { JobName } from '../../config.ts';
import type { OpsFunctionProps } from '../ops-function.ts';

/** What every one of the five jobs' constructs takes from the control plane (the stack-wide settings). */
export interface JobProps {
  /** `<namePrefix>-<job>` names the function. */
  namePrefix: string;
  functionsDir: string;
  dryRun: boolean;
  metricsNamespace: string;
  logRetention: logs.RetentionDays;
  /** POWERTOOLS_LOG_LEVEL (default INFO). */
  logLevel?: string;
  /** The `fleet` dimension of its metrics (the stack name). */
  fleetName: string;
  schedule: string;
}

/** The OpsFunction a job's construct is: the stack-wide settings plus what the job itself decides. */
export function jobFunctionProps(
  job: JobName,
  props: JobProps,
  own: { timeout: Duration; environment: Record<string, string>; statements: iam.PolicyStatement[] },
): OpsFunctionProps {
  return {
    job,
    functionsDir: props.functionsDir,
    functionName: `${props.namePrefix}-${job}`,
    timeout: own.timeout,
    dryRun: props.dryRun,
    metricsNamespace: props.metricsNamespace,
    environment: own.environment,
    statements: own.statements,
    schedule: props.schedule,
    logRetention: props.logRetention,
    ...(props.logLevel ? { logLevel: props.logLevel } : {}),
    fleetName: props.fleetName,
  };
}
