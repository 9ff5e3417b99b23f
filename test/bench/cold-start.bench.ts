/**
 * Cold-start cost of every job bundle: its size, and the time a fresh Node process takes to load it
 * (module init: the SDK clients' modules, Powertools, zod, the config check), against a bare `node -e 0`.
 * Target: init ≤ 150 ms per bundle on this machine.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const RUNS = 9;
const TARGET_MS = 150;
const dist = join(import.meta.dirname, '..', '..', 'dist', 'functions');

/** Valid-looking configuration for every job, so the bundle's cold-start config check passes. */
const ENV: Record<string, string> = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  POWERTOOLS_LOG_LEVEL: 'SILENT',
  POWERTOOLS_METRICS_NAMESPACE: 'RegistryControlPlane',
  REGISTRY_BUCKET: 'registry-bench',
  ASG_NAME: 'registry-fleet',
  TARGET_GROUP_ARN: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/registry/6d0ecf831eec9f09',
  FLEET_TAG_KEY: 'registry-fleet',
  FLEET_TAG_VALUE: 'registry',
  PRUNE_DOCUMENT_NAME: 'registry-prune',
  LISTENER_ARN: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/registry/50dc6c495c0c9188/f2f7dc8efc522ab2',
  DOMAIN_NAME: 'registry.example.com',
  HOSTED_ZONE_ID: 'Z0123456789ABCDEFGHIJ',
  CERTIFICATE_MODE: 'acm',
  HTPASSWD_PARAMETER_PATH: '/registry/users/',
  HTPASSWD_OBJECT_KEY: 'auth/htpasswd',
  SYNC_DOCUMENT_NAME: 'registry-sync-htpasswd',
};

function timeProcess(args: string[]): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { env: { ...ENV, PATH: process.env.PATH ?? '' }, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${result.stderr.slice(-2000)}`);
  return ms;
}

/** Time inside the process: from just before `import()` to its resolution. */
function timeImport(file: string): number {
  const code = `const t=performance.now();await import(${JSON.stringify(pathToFileURL(file).href)});process.stdout.write(String(performance.now()-t))`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', code], { env: { ...ENV, PATH: process.env.PATH ?? '' }, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`import of ${file} failed: ${result.stderr.slice(-2000)}`);
  return Number(result.stdout);
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

export default async function coldStart(): Promise<string> {
  if (!existsSync(dist)) throw new Error('dist/functions is missing: run `npm run build` first');
  const jobs = readdirSync(dist).filter((d) => existsSync(join(dist, d, 'index.mjs'))).sort();
  const bare = median(Array.from({ length: RUNS }, () => timeProcess(['-e', '0'])));
  const rows = jobs.map((job) => {
    const file = join(dist, job, 'index.mjs');
    const whole = median(Array.from({ length: RUNS }, () => timeProcess(['--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(file).href)})`])));
    const init = median(Array.from({ length: RUNS }, () => timeImport(file)));
    return { job, kib: statSync(file).size / 1024, whole, init };
  });
  const lines = [
    '## Cold start per job bundle',
    '',
    `Median of ${RUNS} fresh Node ${process.version} processes each. "init" is the bundle's module evaluation measured inside the process (import() start to end); "process" is the whole process wall time, compared with a bare \`node -e 0\` (${bare.toFixed(0)} ms). Target: init ≤ ${TARGET_MS} ms.`,
    '',
    '| bundle | size (KiB) | init (ms) | process (ms) | process ÷ bare node | within target |',
    '|---|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.job} | ${r.kib.toFixed(0)} | ${r.init.toFixed(0)} | ${r.whole.toFixed(0)} | ${(r.whole / bare).toFixed(2)}× | ${r.init <= TARGET_MS ? 'yes' : 'NO'} |`),
  ];
  return lines.join('\n');
}
