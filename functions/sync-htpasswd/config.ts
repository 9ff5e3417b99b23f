import { defineEnvironment, env, loadConfig } from '../../shared/config.ts';
import type { SyncPolicy } from './model.ts';

/**
 * sync-htpasswd's environment (ARCHITECTURE §6). Beyond the contract's variables:
 * BCRYPT_COST (hashing SecureString passwords), ALLOW_EMPTY_USER_SET, HTPASSWD_OBJECT_SSE, the SSM fan-out
 * bound (DISTRIBUTE_MAX_CONCURRENCY), the command wait (COMMAND_WAIT, COMMAND_POLL_INTERVAL),
 * the drift check's total budget (DRIFT_CHECK_BUDGET) and how long a new instance may be unknown to SSM
 * (SSM_REGISTRATION_GRACE).
 */
const shape = {
  HTPASSWD_PARAMETER_PATH: env.text(
    'an SSM parameter path that starts and ends with / and is not / itself (e.g. /registry/users/)',
    /^(\/[A-Za-z0-9_.-]+)+\/$/,
  ),
  REGISTRY_BUCKET: env.bucket(),
  HTPASSWD_OBJECT_KEY: env.text('an S3 object key without a leading / or whitespace (e.g. auth/htpasswd)', /^[^/\s]\S{0,1023}$/),
  ASG_NAME: env.text('an Auto Scaling group name'),
  SYNC_DOCUMENT_NAME: env.text('an SSM document name or ARN (3–128 of A-Za-z0-9_-.:/)', /^[A-Za-z0-9_.:/-]{3,128}$/),
  /** Cost for hashing SecureString passwords: the registry pays it on every authenticated request. */
  BCRYPT_COST: env.int({ min: 4, max: 12, default: 8 }),
  ALLOW_EMPTY_USER_SET: env.bool(false),
  HTPASSWD_OBJECT_SSE: env.oneOf(['AES256', 'aws:kms'] as const, 'AES256'),
  /** SendCommand MaxConcurrency: instances installing at the same time. */
  DISTRIBUTE_MAX_CONCURRENCY: env.int({ min: 1, max: 50, default: 10 }),
  /** How long to wait for the instances' results of one command (report or install). */
  COMMAND_WAIT: env.duration({ default: '60s', min: '5s', max: '10m' }),
  COMMAND_POLL_INTERVAL: env.duration({ default: '2s', min: '10ms', max: '30s' }),
  /**
   * The whole drift check (every report batch, counted from the start of observe) ends within this: observe cannot see
   * the Lambda's remaining time, so this keeps it well inside the 5-minute timeout and leaves the rest to the
   * installs (bounded by the runner's time margin). Instances not checked in time are installed on.
   */
  DRIFT_CHECK_BUDGET: env.duration({ default: '2m', min: '1s', max: '4m' }),
  /**
   * An instance SSM does not know (InvalidInstanceId, no invocation) is skipped only if launched within this
   * (its boot script installs the file); an older one is a failed install: its agent is down and it keeps
   * serving an old file.
   */
  SSM_REGISTRATION_GRACE: env.duration({ default: '15m', min: '1m', max: '24h' }),
};

export function loadSyncHtpasswdConfig(source: Readonly<Record<string, string | undefined>>) {
  return loadConfig(shape, source, (v) => ({
    parameterPath: v.HTPASSWD_PARAMETER_PATH,
    bucket: v.REGISTRY_BUCKET,
    objectKey: v.HTPASSWD_OBJECT_KEY,
    asgName: v.ASG_NAME,
    documentName: v.SYNC_DOCUMENT_NAME,
    bcryptCost: v.BCRYPT_COST,
    allowEmptyUserSet: v.ALLOW_EMPTY_USER_SET,
    objectSse: v.HTPASSWD_OBJECT_SSE,
    maxConcurrency: v.DISTRIBUTE_MAX_CONCURRENCY,
    commandWaitMs: v.COMMAND_WAIT,
    pollIntervalMs: v.COMMAND_POLL_INTERVAL,
    driftCheckBudgetMs: v.DRIFT_CHECK_BUDGET,
    registrationGraceMs: v.SSM_REGISTRATION_GRACE,
    policy: policyOf(v),
  }));
}

/** What the plan decides by; a manual `forceDistribute` sets the last field in the run's scope. */
function policyOf(v: {
  ASG_NAME: string;
  REGISTRY_BUCKET: string;
  HTPASSWD_OBJECT_KEY: string;
  HTPASSWD_PARAMETER_PATH: string;
  ALLOW_EMPTY_USER_SET: boolean;
  SSM_REGISTRATION_GRACE: number;
}): SyncPolicy {
  return Object.freeze({
    asgName: v.ASG_NAME,
    bucket: v.REGISTRY_BUCKET,
    objectKey: v.HTPASSWD_OBJECT_KEY,
    parameterPath: v.HTPASSWD_PARAMETER_PATH,
    allowEmptyUserSet: v.ALLOW_EMPTY_USER_SET,
    registrationGraceMs: v.SSM_REGISTRATION_GRACE,
    forceDistribute: false,
  });
}

export type SyncHtpasswdConfig = ReturnType<typeof loadSyncHtpasswdConfig>;

/**
 * The stack's side of this environment (infra/constructs/jobs/sync-htpasswd.ts): the same `shape`, so names cannot drift;
 * what each variable means is what docs/configuration.md says (npm run docs:config).
 */
export const syncHtpasswdEnvironment = defineEnvironment(shape, {
  HTPASSWD_PARAMETER_PATH: 'SSM path holding the users',
  REGISTRY_BUCKET: 'where the rendered file is published: the bucket',
  HTPASSWD_OBJECT_KEY: 'where the rendered file is published: the key',
  ASG_NAME: "the fleet's Auto Scaling group (its InService instances get the file)",
  SYNC_DOCUMENT_NAME: 'the SSM Command document (`Source`, `Sha256`, `Mode` = `install`/`report`)',
  BCRYPT_COST: 'cost for hashing `SecureString` passwords (the registry pays it on every authenticated request); changing it rehashes them',
  ALLOW_EMPTY_USER_SET: 'publish an empty file when no user parameters exist',
  HTPASSWD_OBJECT_SSE: '`ServerSideEncryption` of the object',
  DISTRIBUTE_MAX_CONCURRENCY: 'SendCommand `MaxConcurrency` for installs',
  COMMAND_WAIT: "how long to wait for the instances' results of one command",
  COMMAND_POLL_INTERVAL: 'GetCommandInvocation polling interval',
  DRIFT_CHECK_BUDGET: "total time the drift check may wait for the instances' reports; instances not heard from get an install",
  SSM_REGISTRATION_GRACE: 'how long after launch an instance SSM does not know yet is skipped rather than failed',
});
