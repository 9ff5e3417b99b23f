/**
 * Run one job's handler locally, the way Lambda would, against whatever AWS the environment points at
 * (real credentials, or moto_server through AWS_ENDPOINT_URL), and print its report — a failed run's too.
 *
 *   npm run invoke -- <job> <event.json> [--dry-run] [--timeout 900] [--env-file FILE] [--bundle]
 *
 * --dry-run sets DRY_RUN=true (the stack-wide leash) before the handler loads: nothing is changed.
 * --env-file loads variables (dotenv format) that the environment does not already set.
 * --bundle runs the built dist/functions/<job>/index.mjs (what Lambda runs) instead of the TypeScript source.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs, parseEnv } from 'node:util';
import type { Context } from 'aws-lambda';
import { JOB_NAMES } from '../shared/job-names.ts';

const ROOT = join(import.meta.dirname, '..');
const usage = [
  'usage: npm run invoke -- <job> <event.json> [--dry-run] [--timeout SECONDS] [--env-file FILE] [--bundle]',
  `jobs: ${JOB_NAMES.join(', ')}`,
].join('\n');

/** Bad arguments: one line naming the problem, then the usage; exit 2 (never a stack trace). */
function usageError(message: string): never {
  console.error(`${message.split('\n').join(' ')}\n${usage}`);
  process.exit(2);
}

// Node itself reads `--env-file` anywhere on its command line, even after the script (and exits 9 on a missing
// file): the npm script passes `--` first so Node leaves the arguments alone; it is dropped here.
const argv = process.argv.slice(2);
const args = argv[0] === '--' ? argv.slice(1) : argv;

function parse() {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      options: {
        'dry-run': { type: 'boolean', default: false },
        timeout: { type: 'string', default: '900' },
        'env-file': { type: 'string' },
        bundle: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    return usageError((error as Error).message);
  }
}

const { values, positionals } = parse();
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const [job, eventFile, ...extra] = positionals;
if (!job || !eventFile) usageError('expected a job and an event file');
if (extra.length > 0) usageError(`unexpected argument "${extra[0]}"`);
if (!(JOB_NAMES as readonly string[]).includes(job)) usageError(`unknown job "${job}"`);
if (!/^[1-9]\d*$/.test(values.timeout)) usageError(`--timeout must be a whole number of seconds (1 or more), got "${values.timeout}"`);
const timeoutSeconds = Number(values.timeout);

let event: unknown;
try {
  event = JSON.parse(readFileSync(eventFile, 'utf8'));
} catch (error) {
  usageError(`cannot read ${eventFile} as JSON: ${(error as Error).message}`);
}

if (values['env-file']) {
  let vars: Record<string, string>;
  try {
    vars = parseEnv(readFileSync(values['env-file'], 'utf8')) as Record<string, string>;
  } catch (error) {
    usageError(`cannot read --env-file ${values['env-file']}: ${(error as Error).message}`);
  }
  // As `node --env-file`: what the environment already sets wins over the file.
  for (const [name, value] of Object.entries(vars)) process.env[name] ??= value;
}

const entry = values.bundle ? join(ROOT, 'dist/functions', job, 'index.mjs') : join(ROOT, 'functions', job, 'handler.ts');
if (values.bundle && !existsSync(entry)) usageError(`no bundle at ${entry}: run npm run build first`);

if (values['dry-run']) process.env.DRY_RUN = 'true';
process.env.POWERTOOLS_SERVICE_NAME ??= job;
process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN'; // the report is printed below (also a failed run's); the logger's copy would repeat it
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true'; // no CloudWatch to read EMF lines locally
process.env.POWERTOOLS_METRICS_NAMESPACE ??= 'RegistryControlPlane';

const deadline = Date.now() + timeoutSeconds * 1000;
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

/** One line for an error; middy's early timeout ("[AbortError] …") is said as what it is. */
function describeFailure(error: unknown): string {
  const e = error as { name?: string; message?: string };
  if (e.name === 'TimeoutError' && /AbortError/.test(e.message ?? '')) {
    return `TimeoutError: the Lambda time budget ran out (--timeout ${timeoutSeconds}s); the next run continues where this one stopped`;
  }
  return `${e.name ?? 'Error'}: ${e.message ?? String(error)}`;
}

try {
  const { handler } = (await import(pathToFileURL(entry).href)) as { handler: (e: unknown, c: Context) => Promise<unknown> };
  const report = await handler(event, context);
  console.log(JSON.stringify(report, null, 2));
} catch (error) {
  // A failed run logs its report and then throws JobFailedError carrying it: print it, as for a good run.
  const report = (error as { report?: unknown }).report;
  if (report !== undefined) console.log(JSON.stringify(report, null, 2));
  console.error(describeFailure(error));
  process.exitCode = 1;
}
