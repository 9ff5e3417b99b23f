/**
 * `npm run history`: what the jobs did, from the run history in S3 (every run's whole report, ARCHITECTURE §5).
 *
 *   npm run history -- [job] [--since 7d] [--action delete-upload] [--target library/nginx] [--failed] [--json]
 *
 * Reads HISTORY_BUCKET (or --bucket) and HISTORY_PREFIX (default reports) against whatever AWS the environment
 * points at (real credentials, or moto_server through AWS_ENDPOINT_URL and S3_FORCE_PATH_STYLE=true).
 */
import { parseArgs } from 'node:util';
import { configureClients, s3Client } from '../shared/aws.ts';
import { DURATION_FORM, parseDuration } from '../shared/duration.ts';
import { describeError } from '../shared/errors.ts';
import { JOB_NAMES } from '../shared/job-names.ts';
import { filterRuns, formatRuns, listRunKeys, readRun } from './lib/history-reader.ts';

const usage = [
  'usage: npm run history -- [job] [--since 7d] [--action TYPE] [--target TEXT] [--failed] [--json] [--limit 50] [--bucket NAME] [--prefix reports]',
  `jobs: ${JOB_NAMES.join(', ')} (default: all)`,
].join('\n');

function fail(message: string): never {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}

function parse() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        since: { type: 'string', default: '7d' },
        action: { type: 'string' },
        target: { type: 'string' },
        failed: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        limit: { type: 'string', default: '50' },
        bucket: { type: 'string' },
        prefix: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    return fail(describeError(error).replace(/^TypeError( \[\w+\])?: /, ''));
  }
}

const { values, positionals } = parse();
if (values.help) {
  console.log(usage);
  process.exit(0);
}
if (positionals.length > 1) fail(`expected at most one job, got ${positionals.join(' ')}`);
const job = positionals[0];
if (job !== undefined && !(JOB_NAMES as readonly string[]).includes(job)) fail(`unknown job "${job}"`);
const sinceMs = parseDuration(values.since);
if (sinceMs === undefined) fail(`--since must be ${DURATION_FORM}, got "${values.since}"`);
if (!/^[1-9]\d*$/.test(values.limit)) fail(`--limit must be a whole number of runs (1 or more), got "${values.limit}"`);
const bucket = values.bucket ?? process.env.HISTORY_BUCKET;
if (!bucket) fail('no history bucket: set HISTORY_BUCKET (the stack output HistoryBucketName) or pass --bucket');
const prefix = (values.prefix ?? process.env.HISTORY_PREFIX ?? 'reports').replace(/^\/+|\/+$/g, '');

configureClients({ s3ForcePathStyle: process.env.S3_FORCE_PATH_STYLE === 'true' });
const s3 = s3Client();
const now = new Date();
try {
  const keys = await listRunKeys(s3, { bucket, prefix, jobs: job ? [job] : JOB_NAMES, since: new Date(now.getTime() - sinceMs), now });
  const runs = [];
  // Newest first; read until enough runs match (a filter may skip many).
  for (const key of keys) {
    const [match] = filterRuns([await readRun(s3, bucket, key)], { action: values.action, target: values.target, failed: values.failed });
    if (match) runs.push(match);
    if (runs.length >= Number(values.limit)) break;
  }
  console.log(
    values.json
      ? JSON.stringify(
          runs.map((r) => ({ key: r.key, ...r.report })),
          null,
          2,
        )
      : formatRuns(runs),
  );
} catch (error) {
  console.error(`cannot read the run history in s3://${bucket}/${prefix}/: ${describeError(error)}`);
  process.exit(1);
}
