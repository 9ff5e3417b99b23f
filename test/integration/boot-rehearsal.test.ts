// The instance's boot, rehearsed for real: the launch template's user data FROM THE SYNTHESIZED STACK runs as
// root in private mount and network namespaces (test/fixtures/boot-rehearsal/sandbox.sh), with the real AWS
// CLI v2 against moto, the real registry binary behind a `docker` stand-in, and `dnf`/`systemctl` stand-ins.
// Asserts the states an operator sees: what the registry answers, what lands in S3, the secret it runs with.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AutoScalingClient, CreateAutoScalingGroupCommand, CreateLaunchConfigurationCommand } from '@aws-sdk/client-auto-scaling';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTPASSWD_OBJECT_KEY } from '../../infra/constructs/storage.ts';
import { sha256Hex } from '../../shared/htpasswd.ts';
import type { Report } from '../../shared/report.ts';
import { fakeFunctionsDir, synthFleet } from '../infra/support.ts';
import type { AwsFront, CfnTemplate, Sandbox } from '../support/boot-rehearsal.ts';
import {
  launchTemplateUserData,
  refsIn,
  resolveIntrinsics,
  startAwsFront,
  startSandbox,
  tcpToUnix,
  waitFor,
} from '../support/boot-rehearsal.ts';
import { startMoto, type Moto } from '../../local/moto.ts';
import { pushBlob } from '../../local/registry.ts';

const INSTANCE_ID = 'i-0b007c0ffee000001';
const REGION = 'us-east-1';
const USERS_PATH = '/registry/users/';
const SECRET = 'rehearsalHttpSecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ';
/** How long the test holds the Secrets Manager fault: longer than any bounded retry a boot might give up after. */
const SECRETS_FAULT_MS = 30_000;

let moto: Moto;
let front: AwsFront;
let sandbox: Sandbox;
let registry: { url: string; close: () => Promise<void> };
let dir: string;
let bucket: string;
let logGroup: string;
let s3: S3Client;
let runSync: (event: unknown) => Promise<Report>;
const fake = fakeFunctionsDir();

const clientConfig = () => ({ endpoint: moto.endpoint, region: REGION, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });

/** Gives every resource the user data references a real counterpart in moto; returns the Ref lookup. */
async function provision(template: CfnTemplate, refs: Set<string>): Promise<(ref: string, attribute?: string) => string> {
  const values = new Map<string, string>([
    ['AWS::Region', REGION],
    ['AWS::URLSuffix', 'amazonaws.com'],
    ['AWS::Partition', 'aws'],
    ['AWS::AccountId', '123456789012'],
    ['AWS::StackName', 'rehearsal'],
  ]);
  const secrets = new SecretsManagerClient(clientConfig());
  for (const ref of refs) {
    if (values.has(ref)) continue;
    const type = template.Resources[ref]?.Type;
    if (type === 'AWS::S3::Bucket') {
      const name = `rehearsal-${ref.toLowerCase()}`.slice(0, 63);
      await s3.send(new CreateBucketCommand({ Bucket: name }));
      values.set(ref, name);
    } else if (type === 'AWS::SecretsManager::Secret') {
      const created = await secrets.send(new CreateSecretCommand({ Name: ref, SecretString: SECRET }));
      values.set(ref, created.ARN ?? '');
    } else if (type === 'AWS::Logs::LogGroup') {
      values.set(ref, `/rehearsal/${ref}`);
    } else if (type === 'AWS::CloudFormation::WaitConditionHandle') {
      values.set(ref, front.waitHandleUrl);
    } else {
      throw new Error(`the user data references ${ref} (${type ?? 'unknown'}): give it a stand-in in this test`);
    }
  }
  secrets.destroy();
  return (ref, attribute) => {
    const value = attribute === undefined ? values.get(ref) : undefined;
    if (value === undefined) throw new Error(`no rehearsal value for ${ref}${attribute ? `.${attribute}` : ''}`);
    return value;
  };
}

async function status(path: string, auth?: { username: string; password: string }): Promise<number | undefined> {
  const headers: Record<string, string> = auth
    ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` }
    : {};
  try {
    const res = await fetch(`${registry.url}${path}`, { headers, signal: AbortSignal.timeout(3_000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return undefined; // nothing listening on the instance's :5000
  }
}

const stateFile = (p: string) => join(dir, 'state', p);
const read = async (p: string) => readFile(p, 'utf8').catch(() => '');
const bootLog = () => read(sandbox.path('/var/log/registry-bootstrap.log'));
const registryPid = async () => Number((await read(stateFile('docker/registry/pid'))).trim()) || undefined;
const registryRunning = async () => {
  const pid = await registryPid();
  return pid !== undefined && existsSync(`/proc/${pid}`);
};
const diagnostics = async () =>
  `--- bootstrap log ---\n${(await bootLog()).slice(-3_000)}\n--- cloud-init ---\n${(await read(join(dir, 'cloud-init-output.log'))).slice(-2_000)}\n` +
  `--- calls ---\n${(await read(stateFile('calls.log'))).slice(-2_000)}\n--- registry ---\n${(await read(stateFile('docker/registry/log'))).slice(-2_000)}\n` +
  `--- sandbox ---\n${sandbox.output().slice(-1_000)}`;

beforeAll(async () => {
  const { template } = synthFleet({ domainName: 'registry.rehearsal.internal', stackName: 'rehearsal' }, fake.dir);
  const cfn = template.toJSON() as CfnTemplate;
  const userData = launchTemplateUserData(cfn);

  dir = await mkdtemp(join(tmpdir(), 'boot-rehearsal-'));
  await mkdir(join(dir, 'state'));
  moto = await startMoto();
  s3 = new S3Client({ ...clientConfig(), forcePathStyle: true });
  front = await startAwsFront(join(dir, 'aws.sock'), moto.port, 'http://127.0.0.1:4566');
  front.failSecrets = true; // from the first call: the boot must wait it out
  const lookup = await provision(cfn, refsIn(userData));
  const script = resolveIntrinsics(userData, lookup);
  await writeFile(join(dir, 'user-data.sh'), script, { mode: 0o755 });
  bucket = /^HTPASSWD_SOURCE='s3:\/\/([^/]+)\//m.exec(script)?.[1] ?? '';
  logGroup = /^LOG_GROUP='([^']+)'/m.exec(script)?.[1] ?? '';

  // sync-htpasswd publishes the users to the same bucket (no instances in its group: the boot is the install).
  const asg = new AutoScalingClient(clientConfig());
  await asg.send(
    new CreateLaunchConfigurationCommand({ LaunchConfigurationName: 'rehearsal-lc', ImageId: 'ami-12c6146b', InstanceType: 't4g.small' }),
  );
  await asg.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: 'rehearsal-asg',
      LaunchConfigurationName: 'rehearsal-lc',
      MinSize: 0,
      MaxSize: 0,
      DesiredCapacity: 0,
      AvailabilityZones: ['us-east-1a'],
    }),
  );
  asg.destroy();
  Object.assign(process.env, moto.env, {
    HTPASSWD_PARAMETER_PATH: USERS_PATH,
    REGISTRY_BUCKET: bucket,
    HTPASSWD_OBJECT_KEY,
    ASG_NAME: 'rehearsal-asg',
    SYNC_DOCUMENT_NAME: 'rehearsal-htpasswd-sync',
    BCRYPT_COST: '5',
  });
  ({ run: runSync } = await import('../../functions/sync-htpasswd/handler.ts'));

  registry = await tcpToUnix(join(dir, 'registry.sock'));
  sandbox = startSandbox(dir, {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: join(dir, 'home'),
    LANG: 'C.UTF-8',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_CONFIG_FILE: join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
    REHEARSAL_STATE: join(dir, 'state'),
    REHEARSAL_NODE: process.execPath,
    REHEARSAL_INSTANCE_ID: INSTANCE_ID,
    AWS_REGION: REGION,
  });
});

afterAll(async () => {
  await sandbox?.stop();
  await registry?.close();
  await front?.close();
  await moto?.stop();
  s3?.destroy();
  fake.remove();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('boot rehearsal: the synthesized user data on this machine', () => {
  it('without a published htpasswd the registry does not start (no invented `docker` user)', async () => {
    await waitFor(
      'the boot to look for the htpasswd',
      async () => ((await bootLog()).includes('download of s3://') ? true : undefined),
      20_000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await diagnostics()}`);
    });
    await sleep(3_000);
    expect(await registryRunning()).toBe(false);
    expect(await status('/')).toBeUndefined();
    expect(existsSync(sandbox.path('/etc/docker/registry/auth/htpasswd'))).toBe(false);
  });

  it('a user published by sync-htpasswd reaches the instance within one poll', async () => {
    await new SSMClient(clientConfig()).send(
      new PutParameterCommand({ Name: `${USERS_PATH}alice`, Type: 'SecureString', Value: 'alice-rehearsal-pw' }),
    );
    const report = await runSync({ reason: 'boot rehearsal' });
    expect(report.details).toMatchObject({ publish: 'changed' });
    const published = (report.details as { sha256: string }).sha256;
    const installed = await waitFor(
      'the instance to install the published htpasswd',
      async () => {
        const file = await readFile(sandbox.path('/etc/docker/registry/auth/htpasswd'));
        return sha256Hex(file) === published ? true : undefined;
      },
      20_000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await diagnostics()}`);
    });
    expect(installed).toBe(true);
    // Root-only: the users' hashes, and the wait-condition URL that can signal the stack (the registry runs as root).
    expect((await stat(sandbox.path('/etc/docker/registry/auth/htpasswd'))).mode & 0o777).toBe(0o600);
    expect((await stat(sandbox.path('/etc/registry-fleet/fleet.env'))).mode & 0o777).toBe(0o600);
  });

  it('while Secrets Manager fails the boot waits (registry not started), and serves once it recovers', async () => {
    await waitFor('a failed http.secret read', () => (front.secretCalls.failed > 0 ? true : undefined), 15_000);
    const faultEnds = Date.now() + SECRETS_FAULT_MS;
    while (Date.now() < faultEnds) {
      expect(await registryRunning()).toBe(false);
      await sleep(2_000);
    }
    front.failSecrets = false;
    await waitFor('the registry to answer GET / with 200', async () => ((await status('/')) === 200 ? true : undefined), 30_000).catch(
      async (e: Error) => {
        throw new Error(`${e.message}\n${await diagnostics()}`);
      },
    );
    expect(front.secretCalls.failed).toBeGreaterThan(1);
  });

  it('serves: / is 200, /v2/ is 401 without credentials, the published user logs in, a push lands in S3', async () => {
    expect(await status('/')).toBe(200);
    expect(await status('/v2/')).toBe(401);
    const alice = { username: 'alice', password: 'alice-rehearsal-pw' };
    expect(await status('/v2/', alice)).toBe(200);
    expect(await status('/v2/', { username: 'alice', password: 'wrong' })).toBe(401);

    const blob = await pushBlob(registry.url, 'team/rehearsal', Buffer.from('a layer pushed during the boot rehearsal\n'), { auth: alice });
    const hex = blob.digest.replace('sha256:', '');
    const head = await s3.send(
      new HeadObjectCommand({ Bucket: bucket, Key: `docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data` }),
    );
    expect(head.ContentLength).toBe(blob.size);
    await s3.send(
      new HeadObjectCommand({ Bucket: bucket, Key: `docker/registry/v2/repositories/team/rehearsal/_layers/sha256/${hex}/link` }),
    );
  });

  it('runs as the systemd unit, tells the stack it serves, and logs every request with its user to the log group', async () => {
    const calls = await read(stateFile('calls.log'));
    expect(calls).toContain('systemctl start --no-block registry-bootstrap.service');
    const runs = await waitFor(
      'the bootstrap unit to finish',
      async () => (await read(stateFile('systemd/registry-bootstrap.service/runs'))) || undefined,
      15_000,
    );
    expect(runs).toBe('exited 0\n');
    expect(front.signals).toEqual([{ Status: 'SUCCESS', Reason: 'registry answers on :5000', UniqueId: INSTANCE_ID, Data: 'SUCCESS' }]);

    const logOpts = (await read(stateFile('docker/registry/log-opts'))).trim().split('\n');
    expect(logOpts).toEqual(
      expect.arrayContaining(['awslogs', `awslogs-group=${logGroup}`, `awslogs-stream=${INSTANCE_ID}/registry`, 'mode=non-blocking']),
    );
    const agent = JSON.parse(await readFile(sandbox.path('/opt/aws/amazon-cloudwatch-agent/etc/registry-fleet.json'), 'utf8')) as {
      logs: { logs_collected: { files: { collect_list: { file_path: string; log_group_name: string }[] } } };
    };
    expect(agent.logs.logs_collected.files.collect_list).toContainEqual(
      expect.objectContaining({ file_path: '/var/log/registry-bootstrap.log', log_group_name: logGroup }),
    );

    // The fields the README's "who pushed repository X" Logs Insights query reads (distribution 2.8 logs no user
    // name with htpasswd auth: the query finds the pushes, their time, client and request id).
    const entries = (await read(stateFile('docker/registry/log')))
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(entries).toContainEqual(
      expect.objectContaining({
        msg: 'response completed',
        'http.request.method': 'PUT',
        'http.request.uri': expect.stringMatching(/^\/v2\/team\/rehearsal\/blobs\/uploads\//),
        'http.response.status': 201,
        'http.request.useragent': 'node',
      }),
    );
  });

  it('the registry runs with the fleet http.secret from Secrets Manager', async () => {
    const pid = await registryPid();
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
    expect(environ).toContain(`REGISTRY_HTTP_SECRET=${SECRET}`);
  });

  it('a killed registry process comes back', async () => {
    const before = await registryPid();
    process.kill(before as number, 'SIGKILL');
    await waitFor(
      'the registry to come back',
      async () => {
        const now = await registryPid();
        return now !== undefined && now !== before && (await status('/')) === 200 ? true : undefined;
      },
      20_000,
    );
    expect(await status('/v2/')).toBe(401);
  });
});
