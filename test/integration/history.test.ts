// The run history on moto_server: a run of each job, through the runner (runJob), leaves exactly one history
// object whose content is the returned report (uncut: more actions than the log line's cap); `npm run history`
// lists the runs and filters them by job, action, target and --failed; a run whose history write fails still does
// its work and says so in its report. No history object, and no notification, carries a password hash.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { AutoScalingClient, CreateAutoScalingGroupCommand, CreateLaunchConfigurationCommand } from '@aws-sdk/client-auto-scaling';
import { CreateVolumeCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, GetObjectCommand, paginateListObjectsV2, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadPurgeDiskVolumesConfig } from '../../functions/purge-disk-volumes/config.ts';
import { job as purgeDiskVolumes } from '../../functions/purge-disk-volumes/job.ts';
import { loadPurgeStaleUploadsConfig } from '../../functions/purge-stale-uploads/config.ts';
import { job as purgeStaleUploads } from '../../functions/purge-stale-uploads/job.ts';
import { loadReplaceUnhealthyInstancesConfig } from '../../functions/replace-unhealthy-instances/config.ts';
import { job as replaceUnhealthyInstances } from '../../functions/replace-unhealthy-instances/job.ts';
import { loadRotateCertificatesConfig } from '../../functions/rotate-certificates/config.ts';
import { createRotateCertificatesJob } from '../../functions/rotate-certificates/job.ts';
import { loadSyncHtpasswdConfig } from '../../functions/sync-htpasswd/config.ts';
import { job as syncHtpasswd } from '../../functions/sync-htpasswd/job.ts';
import { decodeHistory, writeHistory } from '../../shared/history.ts';
import { REPORT_ACTION_CAP, runJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { metrics } from '../../shared/observability.ts';
import { findSecrets } from '../../shared/redact.ts';
import { startMotoGaps, type MotoGaps } from '../../scripts/lib/moto-gaps.ts';
import { makeCertificate } from '../../local/certs.ts';
import { awsClients, createLoadBalancer, importCertificate } from '../../local/elb.ts';
import { startMoto, type Moto } from '../../local/moto.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const HISTORY = 'registry-history';
const REGISTRY = 'registry-images';
const STALE_UPLOADS = REPORT_ACTION_CAP + 40; // more than the report lists: the history keeps every one
const ALICE_PASSWORD = 'alice-correct-horse-battery';

let moto: Moto;
let gaps: MotoGaps;
let s3: S3Client;
let env: Record<string, string>;
const reports = new Map<string, Report>();
const aliceHash = bcrypt.hashSync(ALICE_PASSWORD, 5);

const context = () => ({ awsRequestId: randomUUID(), logGroupName: '/aws/lambda/it', functionName: 'it' });
const later = () => new Date(Date.now() + 2 * 3_600_000);

async function historyKeys(job?: string): Promise<string[]> {
  const keys: string[] = [];
  const Prefix = job ? `reports/job=${job}/` : 'reports/';
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: HISTORY, Prefix }))
    for (const o of page.Contents ?? []) keys.push(o.Key as string);
  return keys;
}

async function readHistory(key: string): Promise<Report> {
  const object = await s3.send(new GetObjectCommand({ Bucket: HISTORY, Key: key }));
  return decodeHistory<Report>(key, await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

function npmHistory(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('POWERTOOLS_')));
  const child = spawn('npm', ['run', '--silent', 'history', '--', ...args], {
    cwd: ROOT,
    env: { ...base, ...env, HISTORY_BUCKET: HISTORY },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  moto = await startMoto();
  gaps = await startMotoGaps(moto.endpoint); // moto lacks DescribeInstanceRefreshes
  env = { ...moto.env, AWS_ENDPOINT_URL: gaps.endpoint, HISTORY_BUCKET: HISTORY };
  // The jobs' clients are made lazily on first use, from the SDK's own environment variables.
  Object.assign(process.env, env);
  const cfg = { endpoint: moto.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
  s3 = new S3Client({ ...cfg, forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: HISTORY }));
  await s3.send(new CreateBucketCommand({ Bucket: REGISTRY }));
  for (let i = 0; i < STALE_UPLOADS; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, STALE_UPLOADS - i) }, () =>
        s3.send(
          new PutObjectCommand({
            Bucket: REGISTRY,
            Key: `docker/registry/v2/repositories/library/nginx/_uploads/${randomUUID()}/startedat`,
            Body: new Date().toISOString(),
          }),
        ),
      ),
    );
  }
  const ssm = new SSMClient(cfg);
  await ssm.send(new PutParameterCommand({ Name: '/registry/users/alice', Type: 'String', Value: aliceHash }));
  await ssm.send(new PutParameterCommand({ Name: '/registry/users/bob', Type: 'SecureString', Value: 'bob-plaintext-password-1' }));
  const asg = new AutoScalingClient(cfg);
  await asg.send(
    new CreateLaunchConfigurationCommand({ LaunchConfigurationName: 'lc', ImageId: 'ami-12c6146b', InstanceType: 't3.micro' }),
  );
  await asg.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: 'fleet',
      LaunchConfigurationName: 'lc',
      MinSize: 0,
      MaxSize: 0,
      DesiredCapacity: 0,
      AvailabilityZones: ['us-east-1a'],
    }),
  );
  const ec2 = new EC2Client(cfg);
  await ec2.send(
    new CreateVolumeCommand({
      AvailabilityZone: 'us-east-1a',
      Size: 10,
      TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: 'registry-fleet', Value: 'it' }] }],
    }),
  );
});

afterAll(async () => {
  await gaps?.close();
  await moto?.stop();
});

describe('a run of each job leaves exactly one history object: the returned report, uncut', () => {
  it('purge-stale-uploads (more actions than the report lists)', async () => {
    const config = loadPurgeStaleUploadsConfig({ ...env, REGISTRY_BUCKET: REGISTRY, UPLOAD_MAX_AGE: '1h' });
    const report = await runJob(purgeStaleUploads, config, { reason: 'history-it purge' }, context(), { clock: later });
    reports.set('purge-stale-uploads', report);
    expect(report.summary.applied).toBe(STALE_UPLOADS);
    expect(report.truncated).toBe(true);
    expect(report.actions).toHaveLength(REPORT_ACTION_CAP);
    const keys = await historyKeys('purge-stale-uploads');
    expect(keys).toEqual([report.history && 'key' in report.history ? report.history.key : 'missing']);
    const stored = await readHistory(keys[0] as string);
    expect(stored.actions).toHaveLength(STALE_UPLOADS);
    expect(stored).toEqual({ ...report, actions: stored.actions, truncated: false });
    expect(new Set(stored.actions.map((a) => a.target)).size).toBe(STALE_UPLOADS);
    expect(stored.correlationId).toBe('history-it purge');
  });

  it('sync-htpasswd (publishes the users; no hash and no password in the history)', async () => {
    const config = loadSyncHtpasswdConfig({
      ...env,
      HTPASSWD_PARAMETER_PATH: '/registry/users/',
      REGISTRY_BUCKET: REGISTRY,
      HTPASSWD_OBJECT_KEY: 'auth/htpasswd',
      ASG_NAME: 'fleet',
      SYNC_DOCUMENT_NAME: 'sync',
      BCRYPT_COST: '5',
    });
    const report = await runJob(syncHtpasswd, config, { reason: 'history-it sync' }, context());
    reports.set('sync-htpasswd', report);
    expect(report.actions.find((a) => a.type === 'publish-htpasswd')?.status).toBe('applied');
  });

  it('purge-disk-volumes (marks an orphaned volume)', async () => {
    const config = loadPurgeDiskVolumesConfig({ ...env, FLEET_TAG_VALUE: 'it', ASG_NAME: 'fleet', PRUNE_DOCUMENT_NAME: 'prune' });
    const report = await runJob(purgeDiskVolumes, config, { reason: 'history-it volumes' }, context());
    reports.set('purge-disk-volumes', report);
    expect(report.actions.map((a) => `${a.type}:${a.status}`)).toEqual(['mark-volume:applied']);
  });

  it('replace-unhealthy-instances (a dry run: nothing unhealthy)', async () => {
    const aws = awsClients(moto.endpoint);
    const lb = await createLoadBalancer(
      aws,
      await importCertificate(aws.acm, makeCertificate({ cn: 'registry.example.com', days: 200 })),
      'example.com',
    );
    const tg = (
      await aws.elbv2.send(
        new (await import('@aws-sdk/client-elastic-load-balancing-v2')).DescribeTargetGroupsCommand({ Names: ['registry'] }),
      )
    ).TargetGroups?.[0];
    const config = loadReplaceUnhealthyInstancesConfig({ ...env, ASG_NAME: 'fleet', TARGET_GROUP_ARN: tg?.TargetGroupArn as string });
    const report = await runJob(replaceUnhealthyInstances, config, { dryRun: true }, context());
    reports.set('replace-unhealthy-instances', report);
    expect(report.dryRun).toBe(true);

    const rotate = loadRotateCertificatesConfig({
      ...env,
      LISTENER_ARN: lb.httpsListenerArn,
      DOMAIN_NAME: 'registry.example.com',
      FLEET_TAG_VALUE: 'it',
      HANDSHAKE_HOST: '127.0.0.1',
      HANDSHAKE_PORT: '1',
      HANDSHAKE_WAIT: '1s',
    });
    const rotated = await runJob(
      createRotateCertificatesJob({ pollMs: 100 }),
      rotate,
      { dryRun: true, reason: 'history-it rotate' },
      context(),
    );
    reports.set('rotate-certificates', rotated);
    expect(rotated.summary.failed).toBe(0);
  });

  it('each job has exactly one history object, equal to its report', async () => {
    expect([...reports.keys()].sort()).toEqual([
      'purge-disk-volumes',
      'purge-stale-uploads',
      'replace-unhealthy-instances',
      'rotate-certificates',
      'sync-htpasswd',
    ]);
    for (const [job, report] of reports) {
      const keys = await historyKeys(job);
      expect(keys, job).toHaveLength(1);
      expect(report.history, job).toEqual({ key: keys[0] });
      expect(keys[0]).toMatch(
        new RegExp(`^reports/job=${job}/date=\\d{4}-\\d{2}-\\d{2}/\\d{4}-\\d{2}-\\d{2}T[\\d:.]+Z-[0-9a-f-]{36}\\.json(\\.gz)?$`),
      );
      const stored = await readHistory(keys[0] as string);
      if (!report.truncated) expect(stored, job).toEqual(report);
      const text = JSON.stringify(stored);
      expect(findSecrets(text), job).toEqual([]);
      expect(text).not.toContain(ALICE_PASSWORD);
      expect(text).not.toContain('bob-plaintext-password-1');
      expect(text).not.toContain(aliceHash);
    }
  });
});

describe('npm run history', () => {
  beforeAll(async () => {
    // A failed run, as the runner writes it (moto enforces no IAM, so a real failure cannot be staged here).
    const failed = JSON.parse(
      await (await import('node:fs/promises')).readFile(join(ROOT, 'test/fixtures/reports/failed-purge.json'), 'utf8'),
    ) as Report;
    const now = new Date().toISOString();
    const result = await writeHistory(
      s3,
      { bucket: HISTORY, prefix: 'reports' },
      { ...failed, startedAt: now, finishedAt: now },
      randomUUID(),
    );
    expect(result).not.toHaveProperty('error');
  });

  it('lists every run, newest first, in a table', async () => {
    const out = await npmHistory([]);
    expect(out.code, out.stderr).toBe(0);
    for (const job of reports.keys()) expect(out.stdout).toContain(job);
    expect(out.stdout).toMatch(/^ {2}started +job +trigger +summary/);
    expect(out.stdout).toContain(`planned 0 · applied ${STALE_UPLOADS} · skipped 0 · failed 0`);
    expect(out.stdout).toContain(`… ${STALE_UPLOADS - 12} more actions`);
  });

  it('filters by job, action, target and --failed; --json for scripts', async () => {
    const byJob = JSON.parse((await npmHistory(['purge-disk-volumes', '--json'])).stdout) as Report[];
    expect(byJob.map((r) => r.job)).toEqual(['purge-disk-volumes']);
    const marks = JSON.parse((await npmHistory(['--action', 'mark-volume', '--json'])).stdout) as Report[];
    expect(marks.map((r) => [r.job, r.actions.map((a) => a.type)])).toEqual([['purge-disk-volumes', ['mark-volume']]]);
    const deletes = JSON.parse((await npmHistory(['purge-stale-uploads', '--action', 'delete-upload', '--json'])).stdout) as Report[];
    expect(deletes.map((r) => r.actions.length).sort((a, b) => a - b)).toEqual([4, STALE_UPLOADS]); // the failed fixture has 4 delete-upload actions
    const target = JSON.parse((await npmHistory(['--target', 'library/alpine/_uploads/0b8f1c2e', '--json'])).stdout) as Report[];
    expect(target.flatMap((r) => r.actions.map((a) => a.target))).toEqual(['library/alpine/_uploads/0b8f1c2e-4d3a-4f5b-9c6d-7e8f9a0b1c2d']);
    const failed = await npmHistory(['--failed']);
    expect(failed.stdout).toContain('planned 0 · applied 2 · skipped 1 · failed 2');
    expect(failed.stdout).toContain('failed  delete-upload');
    expect(failed.stdout).not.toContain('applied  delete-upload');
    expect(failed.stdout).not.toContain('sync-htpasswd');
  });

  it('bad arguments: one line, the usage, exit 2', async () => {
    for (const args of [['purge-everything'], ['--since', 'yesterday'], ['--faild']]) {
      const out = await npmHistory(args);
      expect(out.code, args.join(' ')).toBe(2);
      expect(out.stderr).toContain('usage: npm run history');
      expect(out.stderr).not.toMatch(/\n\s+at /);
    }
  });
});

describe('a run whose history write fails', () => {
  it('does its work, says why in the report, counts HistoryWriteFailed and never fails the run', async () => {
    const bucket = 'registry-history-failure';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'docker/registry/v2/repositories/team/app/_uploads/0f0f0f0f-1111-4222-8333-444455556666/startedat',
        Body: 'x',
      }),
    );
    const addMetric = vi.spyOn(metrics, 'addMetric');
    const config = loadPurgeStaleUploadsConfig({
      ...env,
      REGISTRY_BUCKET: bucket,
      UPLOAD_MAX_AGE: '1h',
      HISTORY_BUCKET: 'no-such-history-bucket',
    });
    const report = await runJob(purgeStaleUploads, config, {}, context(), { clock: later });
    expect(report.summary).toMatchObject({ applied: 1, failed: 0 });
    const left: string[] = [];
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket }))
      for (const o of page.Contents ?? []) left.push(o.Key as string);
    expect(left).toEqual([]);
    expect(report.history).toMatchObject({
      key: expect.stringMatching(/^reports\/job=purge-stale-uploads\//),
      error: expect.stringContaining('NoSuchBucket'),
    });
    expect(addMetric).toHaveBeenCalledWith('HistoryWriteFailed', 'Count', 1);
    addMetric.mockRestore();
  });
});
