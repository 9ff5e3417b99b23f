import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../../local/moto.ts';
import { startS3Proxy, type S3Proxy } from '../../local/s3-proxy.ts';

/** The README's local-invoke commands, as written, against moto_server. */
const ROOT = join(import.meta.dirname, '..', '..');
let moto: Moto;
let aging: S3Proxy;
const BUCKET = 'invoke-check';
const STALE = 'docker/registry/v2/repositories/library/nginx/_uploads/0b8f1c2e-4d3a-4f5b-9c6d-7e8f9a0b1c2d/hashstates/sha256/0';

function npm(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // The environment a person has: none of the test runner's POWERTOOLS_* settings.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('POWERTOOLS_')));
  const child = spawn('npm', args, { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  moto = await startMoto();
  const s3 = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: STALE, Body: 'x' }));
  // The job's smallest max age is 1 h: the leftover is made to look 2 h old on its way to the job.
  aging = await startS3Proxy(moto.endpoint);
  aging.shiftTimes({ byMs: 2 * 3_600_000, parts: true });
});

afterAll(async () => {
  await aging?.stop();
  await moto?.stop();
});

describe('npm run invoke', () => {
  it('runs a job handler against the environment’s AWS and prints its report; --dry-run changes nothing', async () => {
    const env = { ...moto.env, AWS_ENDPOINT_URL: aging.endpoint, REGISTRY_BUCKET: BUCKET, UPLOAD_MAX_AGE: '1h' };
    const dry = await npm(['run', '--silent', 'invoke', '--', 'purge-stale-uploads', 'events/schedule.json', '--dry-run'], env);
    expect(dry.code, dry.stderr).toBe(0);
    const report = JSON.parse(dry.stdout) as {
      job: string;
      dryRun: boolean;
      summary: Record<string, number>;
      actions: { target: string; status: string }[];
    };
    expect(report).toMatchObject({ job: 'purge-stale-uploads', dryRun: true, summary: { planned: 1, applied: 0, failed: 0 } });
    expect(report.actions[0]).toMatchObject({ target: 'library/nginx/_uploads/0b8f1c2e-4d3a-4f5b-9c6d-7e8f9a0b1c2d', status: 'planned' });

    const real = await npm(['run', '--silent', 'invoke', '--', 'purge-stale-uploads', 'events/schedule.json'], env);
    expect(real.code, real.stderr).toBe(0);
    expect(JSON.parse(real.stdout)).toMatchObject({ dryRun: false, summary: { applied: 1, failed: 0 } });
  });

  it('names the problem and exits non-zero on bad input', async () => {
    const unknown = await npm(['run', '--silent', 'invoke', '--', 'purge-everything', 'events/schedule.json'], moto.env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown job "purge-everything"');
    const badConfig = await npm(['run', '--silent', 'invoke', '--', 'purge-stale-uploads', 'events/schedule.json'], {
      ...moto.env,
      REGISTRY_BUCKET: 'Not_A_Bucket',
    });
    expect(badConfig.code).toBe(1);
    expect(badConfig.stderr).toContain('REGISTRY_BUCKET="Not_A_Bucket" is not valid');
  });
});

describe('npm run invoke never hides anything', () => {
  let proxy: S3Proxy;
  let dir: string;
  beforeAll(async () => {
    proxy = await startS3Proxy(moto.endpoint);
    proxy.shiftTimes({ byMs: 2 * 3_600_000, parts: true }); // the 1 h floor: make the leftovers look 2 h old
    dir = await mkdtemp(join(tmpdir(), 'invoke-it-'));
  });
  afterAll(async () => {
    await proxy?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('prints the report of a failed run (stdout) and the one-line failure (stderr), exit 1', async () => {
    const s3 = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true });
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: STALE.replace('0b8f1c2e', '1c9f2d3e'), Body: 'x' }));
    proxy.failNext('DeleteObjects', 50, 403, 'AccessDenied');
    const out = await npm(['run', '--silent', 'invoke', '--', 'purge-stale-uploads', 'events/schedule.json'], {
      ...moto.env,
      AWS_ENDPOINT_URL_S3: proxy.endpoint,
      REGISTRY_BUCKET: BUCKET,
      UPLOAD_MAX_AGE: '1h',
    });
    expect(out.code, out.stderr).toBe(1);
    const report = JSON.parse(out.stdout) as { summary: { failed: number }; actions: { status: string; error?: string }[] };
    expect(report.summary.failed).toBeGreaterThan(0);
    expect(report.actions.find((a) => a.status === 'failed')?.error).toContain('AccessDenied');
    expect(out.stderr.trim()).toMatch(/^JobFailedError: purge-stale-uploads: \d+ of \d+ actions failed/);
  });

  it.each([
    [['purge-stale-uploads', 'events/schedule.json', '--dryrun'], "Unknown option '--dryrun'"],
    [['purge-stale-uploads', 'events/schedule.json', '--timeout', '-3'], "Option '--timeout' argument is ambiguous"],
    [
      ['purge-stale-uploads', 'events/schedule.json', '--timeout', '0.5'],
      '--timeout must be a whole number of seconds (1 or more), got "0.5"',
    ],
    [['purge-stale-uploads'], 'expected a job and an event file'],
    [['purge-stale-uploads', 'events/schedule.json', '--env-file', '/nonexistent/.env'], 'cannot read --env-file /nonexistent/.env'],
  ])('bad arguments %j: one line, the usage, exit 2, no stack trace', async (args, message) => {
    const out = await npm(['run', '--silent', 'invoke', '--', ...args], moto.env);
    expect(out.code).toBe(2);
    const [first, second] = out.stderr.split('\n');
    expect(first).toContain(message);
    expect(second).toMatch(/^usage: npm run invoke -- <job> <event.json>/);
    expect(out.stderr).not.toMatch(/\n\s+at /);
  });

  it('--env-file supplies the configuration (the environment wins); --bundle runs the built bundle', async () => {
    const envFile = join(dir, 'purge.env');
    await writeFile(envFile, `# local purge\nREGISTRY_BUCKET=${BUCKET}\nUPLOAD_MAX_AGE=1h\nDRY_RUN=false\n`);
    const fromFile = await npm(['run', '--silent', 'invoke', '--', 'purge-stale-uploads', 'events/schedule.json', '--env-file', envFile], {
      ...moto.env,
      DRY_RUN: 'true',
    });
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(JSON.parse(fromFile.stdout)).toMatchObject({ job: 'purge-stale-uploads', dryRun: true });

    const bundle = await npm(
      ['run', '--silent', 'invoke', '--', 'purge-stale-uploads', 'events/schedule.json', '--bundle', '--dry-run', '--env-file', envFile],
      moto.env,
    );
    if (bundle.stderr.includes('no bundle at')) {
      expect(bundle.code).toBe(2); // `npm test` builds first; a bare vitest run may have no dist/
      return;
    }
    expect(bundle.code, bundle.stderr).toBe(0);
    expect(JSON.parse(bundle.stdout)).toMatchObject({ job: 'purge-stale-uploads', dryRun: true });
  });
});
