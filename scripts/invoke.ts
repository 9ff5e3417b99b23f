/**
 * Run one job's handler locally, the way Lambda would, against whatever AWS the environment points at
 * (real credentials, or moto_server through AWS_ENDPOINT_URL), and print its report.
 *
 *   npm run invoke -- <job> <event.json> [--dry-run] [--timeout 900]
 *
 * --dry-run sets DRY_RUN=true (the stack-wide leash) before the handler loads: nothing is changed.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Context } from 'aws-lambda';
import { JOB_NAMES, type JobName } from '../shared/job-names.ts';

const usage = `usage: npm run invoke -- <job> <event.json> [--dry-run] [--timeout SECONDS]\njobs: ${JOB_NAMES.join(', ')}`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'dry-run': { type: 'boolean', default: false }, timeout: { type: 'string', default: '900' }, help: { type: 'boolean' } },
});
const [job, eventFile] = positionals;
if (values.help || !job || !eventFile) {
  console.error(usage);
  process.exit(values.help ? 0 : 2);
}
if (!(JOB_NAMES as readonly string[]).includes(job)) {
  console.error(`unknown job "${job}"\n${usage}`);
  process.exit(2);
}
const timeoutMs = Number(values.timeout) * 1000;
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
  console.error(`--timeout must be a whole number of seconds, got "${values.timeout}"`);
  process.exit(2);
}

let event: unknown;
try {
  event = JSON.parse(readFileSync(eventFile, 'utf8'));
} catch (error) {
  console.error(`cannot read ${eventFile} as JSON: ${(error as Error).message}`);
  process.exit(2);
}

if (values['dry-run']) process.env.DRY_RUN = 'true';
process.env.POWERTOOLS_SERVICE_NAME ??= job;
process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN'; // the report is printed below; the logger's copy would repeat it
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true'; // no CloudWatch to read EMF lines locally
process.env.POWERTOOLS_METRICS_NAMESPACE ??= 'RegistryControlPlane';

const deadline = Date.now() + timeoutMs;
const context = {
  functionName: `local-${job}`,
  functionVersion: '$LATEST',
  invokedFunctionArn: `arn:aws:lambda:${process.env.AWS_REGION ?? 'us-east-1'}:000000000000:function:local-${job}`,
  memoryLimitInMB: '512',
  awsRequestId: randomUUID(),
  logGroupName: `/aws/lambda/local-${job}`,
  logStreamName: 'local',
  callbackWaitsForEmptyEventLoop: false,
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
} satisfies Context;

try {
  const { handler } = (await import(`../functions/${job as JobName}/handler.ts`)) as { handler: (e: unknown, c: Context) => Promise<unknown> };
  const report = await handler(event, context);
  console.log(JSON.stringify(report, null, 2));
} catch (error) {
  const e = error as Error;
  console.error(`${e.name}: ${e.message}`);
  process.exit(1);
}
