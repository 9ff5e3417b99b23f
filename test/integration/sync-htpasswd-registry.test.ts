// End to end on loopback: users as SSM parameters in moto → the sync-htpasswd job publishes the file to moto's
// S3 → the on-instance install script (infra/assets/install-htpasswd.sh) fetches it through a presigned URL into
// the auth directory of a running docker-registry → the registry follows without a restart. The last test runs
// the script through SSM Run Command as the job sends it (a stand-in in front of moto runs it here, per instance).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  CreateLaunchConfigurationCommand,
  DescribeAutoScalingGroupsCommand,
  UpdateAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DeleteParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import { sha256Hex } from '../../shared/htpasswd.ts';
import type { Report } from '../../shared/report.ts';
import { startMoto, type Moto } from '../../local/moto.ts';
import { freePort } from '../../local/ports.ts';
import { startRegistry, type Registry } from '../../local/registry.ts';
import { startSsmRunCommand, type SsmRunCommand } from '../support/ssm-run-command.ts';

const exec = promisify(execFile);
const SCRIPT = join(import.meta.dirname, '..', '..', 'infra', 'assets', 'install-htpasswd.sh');
const BUCKET = 'registry-sync-it';
const KEY = 'auth/htpasswd';
const PATH = '/registry/users/';

let moto: Moto;
let registry: Registry;
let authDir: string;
let s3: S3Client;
let ssm: SSMClient;
let run: (event: unknown) => Promise<Report>;
let startTime: string;
let runCommand: SsmRunCommand;
/** Instance id → the auth directory SSM Run Command installs into (the stand-in knows only these). */
const members = new Map<string, string>();
let beforeSend: (parameters: Record<string, string[]>) => Promise<void> = async () => {};
const stopLater: (() => Promise<unknown>)[] = [];

const clientConfig = () => ({
  endpoint: moto.endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});

async function status(user: string, password: string, on: Registry = registry): Promise<number> {
  const res = await fetch(`${on.url}/v2/`, {
    headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
    signal: AbortSignal.timeout(10_000),
  });
  await res.body?.cancel();
  return res.status;
}

/** The registry process's start time (field 22 of /proc/PID/stat): changes if it was ever restarted. */
async function processStart(pid: number): Promise<string> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return fields[19] ?? '';
}

/** What an instance does: the SSM document runs the script with the object's sha256 (here via a presigned URL). */
async function installOnInstance(dir = authDir): Promise<{ stdout: string; sha256: string }> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: KEY }));
  const sha256 = head.Metadata?.sha256 ?? '';
  const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: KEY }), { expiresIn: 300 });
  const { stdout } = await exec('bash', [SCRIPT, url, sha256, dir], { timeout: 30_000 });
  return { stdout, sha256 };
}

/** The SSM document on one member: `report` or `install` (Source s3://… fetched through a presigned URL, as above). */
async function runDocument(instanceId: string, parameters: Record<string, string[]>) {
  const dir = members.get(instanceId) ?? '';
  const [bucket, ...key] = (parameters.Source?.[0] ?? '').replace(/^s3:\/\//, '').split('/');
  const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: key.join('/') }), { expiresIn: 300 });
  const args = parameters.Mode?.[0] === 'report' ? ['--report', '-', dir] : [url, parameters.Sha256?.[0] ?? '-', dir];
  return exec('bash', [SCRIPT, ...args], { timeout: 30_000 }).then(
    ({ stdout, stderr }) => ({ status: 'Success' as const, stdout, stderr }),
    (error: { stdout?: string; stderr?: string }) => ({
      status: 'Failed' as const,
      stdout: error.stdout ?? '',
      stderr: error.stderr ?? '',
    }),
  );
}

async function inService(asg: AutoScalingClient): Promise<string[]> {
  const res = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['registry-asg'] }));
  return (res.AutoScalingGroups?.[0]?.Instances ?? []).filter((i) => i.LifecycleState === 'InService').map((i) => i.InstanceId ?? '');
}

async function startMember(dir: string): Promise<Registry> {
  const member = await startRegistry({
    config: renderRegistryConfig({
      bucket: BUCKET,
      region: 'us-east-1',
      regionEndpoint: moto.endpoint,
      httpAddr: `127.0.0.1:${await freePort()}`,
      httpSecret: 'sync-htpasswd-integration-secret-0123456789',
      htpasswdPath: join(dir, 'htpasswd'),
    }),
  });
  stopLater.push(() => member.stop());
  return member;
}

async function putUser(name: string, value: string, type: 'String' | 'SecureString'): Promise<void> {
  await ssm.send(new PutParameterCommand({ Name: `${PATH}${name}`, Value: value, Type: type, Overwrite: true }));
}

beforeAll(async () => {
  moto = await startMoto();
  s3 = new S3Client({ ...clientConfig(), forcePathStyle: true });
  ssm = new SSMClient(clientConfig());
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const asg = new AutoScalingClient(clientConfig());
  await asg.send(
    new CreateLaunchConfigurationCommand({ LaunchConfigurationName: 'registry-lc', ImageId: 'ami-12c6146b', InstanceType: 't3.micro' }),
  );
  // No instances: moto runs no SSM commands; the script is run here instead, as an instance would.
  await asg.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: 'registry-asg',
      LaunchConfigurationName: 'registry-lc',
      MinSize: 0,
      MaxSize: 0,
      DesiredCapacity: 0,
      AvailabilityZones: ['us-east-1a'],
    }),
  );
  asg.destroy();

  runCommand = await startSsmRunCommand({
    target: moto.endpoint,
    knows: (id) => members.has(id),
    run: ({ instanceId, parameters }) => runDocument(instanceId, parameters),
    beforeSend: (parameters) => beforeSend(parameters),
  });
  Object.assign(process.env, moto.env, {
    AWS_ENDPOINT_URL_SSM: runCommand.endpoint, // SendCommand / GetCommandInvocation run the script here; the rest is moto's
    COMMAND_POLL_INTERVAL: '100ms',
    HTPASSWD_PARAMETER_PATH: PATH,
    REGISTRY_BUCKET: BUCKET,
    HTPASSWD_OBJECT_KEY: KEY,
    ASG_NAME: 'registry-asg',
    SYNC_DOCUMENT_NAME: 'registry-htpasswd-sync',
    BCRYPT_COST: '5',
  });
  ({ run } = await import('../../functions/sync-htpasswd/handler.ts'));

  // The registry starts with a file of its own (else it would create a `docker` user): carol only.
  authDir = await mkdtemp(join(tmpdir(), 'registry-auth-'));
  await writeFile(join(authDir, 'htpasswd'), `carol:${bcrypt.hashSync('carol-pw', 5)}\n`, { mode: 0o644 });
  const port = await freePort();
  registry = await startRegistry({
    config: renderRegistryConfig({
      bucket: BUCKET,
      region: 'us-east-1',
      regionEndpoint: moto.endpoint,
      httpAddr: `127.0.0.1:${port}`,
      httpSecret: 'sync-htpasswd-integration-secret-0123456789',
      htpasswdPath: join(authDir, 'htpasswd'),
    }),
  });
  startTime = await processStart(registry.pid);
});

afterAll(async () => {
  for (const stop of stopLater) await stop();
  await runCommand?.stop();
  await registry?.stop();
  await moto?.stop();
  s3?.destroy();
  ssm?.destroy();
  if (authDir) await rm(authDir, { recursive: true, force: true });
});

describe('sync-htpasswd on moto + the real docker-registry', () => {
  it('starts with the initial file: carol in, nobody else', async () => {
    expect(await status('carol', 'carol-pw')).toBe(200);
    expect(await status('alice', 'alice-pw-1')).toBe(401);
  });

  it('publishes the users from SSM; the installed file lets them in and drops carol, without a restart', async () => {
    await putUser('alice', 'alice-pw-1', 'SecureString');
    await putUser('team/bob', bcrypt.hashSync('bob-pw', 5).replace(/^\$2b\$/, '$2y$'), 'String');
    const report = await run({ reason: 'integration' });
    expect(report).toMatchObject({
      details: { publish: 'changed', instances: { inSync: [], changed: [], failed: [] } },
      observed: { users: 2, instancesInService: 0 },
    });

    const { stdout, sha256 } = await installOnInstance();
    expect(sha256).toBe((report.details as { sha256: string }).sha256);
    expect(stdout).toMatch(new RegExp(`^previous sha256=[0-9a-f]{64}\ninstalled sha256=${sha256}\n$`));
    expect(sha256Hex(await readFile(join(authDir, 'htpasswd')))).toBe(sha256);
    expect((await stat(join(authDir, 'htpasswd'))).mode & 0o777).toBe(0o600);

    expect(await status('alice', 'alice-pw-1')).toBe(200);
    expect(await status('bob', 'bob-pw')).toBe(200);
    expect(await status('carol', 'carol-pw')).toBe(401);
    expect(await status('alice', 'wrong')).toBe(401);
    expect(await processStart(registry.pid)).toBe(startTime);
  });

  it('rotating a password and removing a user take effect at once (two installs within the same second)', async () => {
    await putUser('alice', 'alice-pw-2', 'SecureString');
    await run({});
    await installOnInstance();
    expect(await status('alice', 'alice-pw-2')).toBe(200);
    expect(await status('alice', 'alice-pw-1')).toBe(401);

    await ssm.send(new DeleteParameterCommand({ Name: `${PATH}team/bob` }));
    const before = (await stat(join(authDir, 'htpasswd'))).mtimeMs;
    await run({});
    await installOnInstance();
    expect((await stat(join(authDir, 'htpasswd'))).mtimeMs).toBeGreaterThan(before);
    expect(await status('bob', 'bob-pw')).toBe(401);
    expect(await status('alice', 'alice-pw-2')).toBe(200);
    expect(await processStart(registry.pid)).toBe(startTime);
  });

  it('a run with one malformed parameter changes nothing: not the object, not the file, and users keep working', async () => {
    const object = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: KEY }));
    const file = await stat(join(authDir, 'htpasswd'));
    const content = await readFile(join(authDir, 'htpasswd'), 'utf8');
    await putUser('eve', '$2y$05$tooShort', 'SecureString');

    await expect(run({})).rejects.toThrow(/refusing to publish: 1 invalid parameter .*\/registry\/users\/eve: malformed bcrypt hash/);
    const after = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: KEY }));
    expect(after.ETag).toBe(object.ETag);
    expect(after.Metadata?.sha256).toBe(object.Metadata?.sha256);

    // The instance re-runs its install (e.g. the boot script) and gets the same, still valid file.
    await installOnInstance();
    expect(await readFile(join(authDir, 'htpasswd'), 'utf8')).toBe(content);
    expect((await stat(join(authDir, 'htpasswd'))).ino).not.toBe(file.ino); // replaced by rename, never edited in place
    expect(await status('alice', 'alice-pw-2')).toBe(200);
    await ssm.send(new DeleteParameterCommand({ Name: `${PATH}eve` }));
  });

  it('a member that joins between observe and publish (booted on the old file) is installed too: a revoked user gets 401 there', async () => {
    const asg = new AutoScalingClient(clientConfig());
    stopLater.push(async () => asg.destroy());
    // Member A, the registry above, is in the group when the run lists it.
    await asg.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: 'registry-asg', MaxSize: 2, DesiredCapacity: 1 }));
    const [a = ''] = await inService(asg);
    members.set(a, authDir);
    // Member B boots now: its boot script installs the file published so far (alice still in it) and starts its registry.
    const authDirB = await mkdtemp(join(tmpdir(), 'registry-auth-b-'));
    stopLater.push(() => rm(authDirB, { recursive: true, force: true }));
    await installOnInstance(authDirB);
    const b = await startMember(authDirB);
    expect(await status('alice', 'alice-pw-2', b)).toBe(200);
    // … and joins the group while the run checks drift, after it listed the members and before it publishes.
    let joined = '';
    beforeSend = async (parameters) => {
      if (parameters.Mode?.[0] !== 'report' || joined) return;
      await asg.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: 'registry-asg', DesiredCapacity: 2 }));
      joined = (await inService(asg)).find((id) => id !== a) ?? '';
      members.set(joined, authDirB);
    };

    await ssm.send(new DeleteParameterCommand({ Name: `${PATH}alice` })); // revoke alice
    await putUser('erin', 'erin-pw', 'SecureString');
    const report = await run({ reason: 'revoke alice' });

    expect(joined).toMatch(/^i-/);
    expect(runCommand.sent.map((c) => [c.parameters.Mode?.[0], c.instanceIds])).toEqual([
      ['report', [a]],
      ['install', [a]],
      ['install', [joined]],
    ]);
    expect(report.observed).toMatchObject({ instancesInService: 1, driftChecked: true });
    expect(report.actions.find((x) => x.type === 'install-joined-instances')).toMatchObject({
      status: 'applied',
      detail: { joined: { changed: [joined], inSync: [], failed: [], notRegistered: [] } },
    });
    expect(report.details).toMatchObject({ publish: 'changed', instances: { changed: [a, joined], failed: [] } });
    expect(await status('alice', 'alice-pw-2', b)).toBe(401);
    expect(await status('erin', 'erin-pw', b)).toBe(200);
    expect(await status('alice', 'alice-pw-2')).toBe(401);
    expect(await status('erin', 'erin-pw')).toBe(200);
  });
});
