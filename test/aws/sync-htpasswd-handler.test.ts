import { GetParametersByPathCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import bcrypt from 'bcryptjs';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { JobFailedError } from '../../shared/errors.ts';
import { parseHtpasswd, renderHtpasswd, sha256Hex } from '../../shared/htpasswd.ts';
import { createJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { loadSyncHtpasswdConfig } from '../../functions/sync-htpasswd/config.ts';
import { job } from '../../functions/sync-htpasswd/job.ts';
import { logger } from '../../shared/observability.ts';
import { loadEvent } from '../support/events.ts';
import { htpasswdWorld } from '../support/htpasswd-world.ts';

vi.hoisted(() => {
  Object.assign(process.env, {
    HTPASSWD_PARAMETER_PATH: '/registry/users/',
    REGISTRY_BUCKET: 'registry-bucket',
    HTPASSWD_OBJECT_KEY: 'auth/htpasswd',
    ASG_NAME: 'registry-asg',
    SYNC_DOCUMENT_NAME: 'registry-htpasswd-sync',
    BCRYPT_COST: '4',
    COMMAND_WAIT: '5s',
    COMMAND_POLL_INTERVAL: '10ms',
  });
});

const { run } = await import('../../functions/sync-htpasswd/handler.ts');

const HASH_A = '$2y$05$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu';
const HASH_B = '$2y$10$k7YoaXOeJN/8rieym6UNX.1sWAh5.TKGQLuSghROTdEPJ8ZdM/PI6';
const OLD_FILE = `alice:${HASH_A}\n`;
const world = htpasswdWorld();

const publish = (body: string) => {
  world.state.object = { body, metadata: { sha256: sha256Hex(body) } };
};
const installs = () => world.state.commands.filter((c) => c.mode === 'install');
const reports = () => world.state.commands.filter((c) => c.mode === 'report');
const actionsOf = (report: Report, type: string) => report.actions.filter((a) => a.type === type).map((a) => [a.target, a.status]);

async function failedRun(event: unknown): Promise<{ error: Error; report: Report }> {
  const info = vi.spyOn(logger, 'info');
  const error = (await run(event).catch((e: unknown) => e)) as Error;
  const report = (info.mock.calls.find(([m]) => m === 'job report')?.[1] as { report: Report } | undefined)?.report;
  info.mockRestore();
  if (!report) throw new Error(`no report logged; error: ${String(error)}`);
  return { error, report };
}

beforeEach(() => {
  world.reset();
  world.parameter('alice', HASH_A);
  world.parameter('bob', HASH_B, 'SecureString');
  publish(OLD_FILE);
});

describe('sync-htpasswd handler', () => {
  it('a parameter change publishes the new file (SSE, sha256 metadata) and installs it on the drifted instances', async () => {
    world.instance('i-1', { served: OLD_FILE });
    world.instance('i-2', { served: OLD_FILE });
    world.instance('i-9', { served: OLD_FILE, lifecycle: 'Pending' });
    const want = renderHtpasswd([
      { user: 'alice', hash: HASH_A },
      { user: 'bob', hash: HASH_B },
    ]);
    const sha = sha256Hex(want);

    const report = await run(loadEvent('parameter-change.json'));

    expect(world.state.object).toEqual({ body: want, metadata: { sha256: sha } });
    expect(world.s3).toHaveReceivedCommandWith(PutObjectCommand, {
      Bucket: 'registry-bucket',
      Key: 'auth/htpasswd',
      ServerSideEncryption: 'AES256',
      Metadata: { sha256: sha },
    });
    expect(world.s3.commandCalls(PutObjectCommand)[0]?.args[0].input.ACL).toBeUndefined();
    expect(world.state.instances.get('i-1')?.served).toBe(want);
    expect(world.state.instances.get('i-2')?.served).toBe(want);
    expect(world.state.instances.get('i-9')?.served).toBe(OLD_FILE); // not InService: not touched
    expect(installs()).toEqual([
      {
        commandId: 'cmd-2',
        mode: 'install',
        sha256: sha,
        source: 's3://registry-bucket/auth/htpasswd',
        instanceIds: ['i-1', 'i-2'],
        maxConcurrency: '10',
        maxErrors: '100%',
        documentName: 'registry-htpasswd-sync',
      },
    ]);
    expect(world.ssm).toHaveReceivedCommandWith(GetParametersByPathCommand, {
      Path: '/registry/users/',
      Recursive: true,
      WithDecryption: true,
    });
    expect(report).toMatchObject({
      trigger: { kind: 'parameter-change', name: '/registry/users/alice' },
      dryRun: false,
      observed: { parameters: 2, users: 2, instancesInService: 2, instancesNotInService: 1, driftChecked: true },
      details: { sha256: sha, publish: 'changed', instances: { inSync: [], changed: ['i-1', 'i-2'], failed: [] } },
      summary: { planned: 0, applied: 3, skipped: 1, failed: 0 }, // skipped: nobody joined during the run
    });
    expect(actionsOf(report, 'install-htpasswd')).toEqual([
      ['i-1', 'applied'],
      ['i-2', 'applied'],
    ]);
  });

  it('an instance that joins between observe and publish (Pending at observe, old file from its boot) is installed after the publish', async () => {
    world.instance('i-1', { served: OLD_FILE });
    const late = world.instance('i-late', { served: OLD_FILE, lifecycle: 'Pending', launchTime: new Date() });
    world.state.onPublish = () => (late.lifecycle = 'InService');
    const report = await run(loadEvent('parameter-change.json'));
    expect(world.state.instances.get('i-late')?.served).toBe(world.state.object?.body);
    expect(installs().map((c) => c.instanceIds)).toEqual([['i-1'], ['i-late']]);
    expect(report.actions.find((a) => a.type === 'install-joined-instances')).toMatchObject({
      target: 'registry-asg',
      status: 'applied',
      detail: { joined: { changed: ['i-late'], inSync: [], failed: [], notRegistered: [] } },
    });
    expect(report.details).toMatchObject({ instances: { changed: ['i-1', 'i-late'], failed: [] } });
  });

  it('a joined instance whose install fails fails the run, naming it; one SSM does not know yet is skipped as new', async () => {
    world.instance('i-1', { served: OLD_FILE });
    const broken = world.instance('i-broken', {
      served: OLD_FILE,
      lifecycle: 'Pending',
      behaviour: 'fail-install',
      launchTime: new Date(),
    });
    const fresh = world.instance('i-fresh', { lifecycle: 'Pending', behaviour: 'unregistered', launchTime: new Date() });
    world.state.onPublish = () => {
      broken.lifecycle = 'InService';
      fresh.lifecycle = 'InService';
    };
    const { error, report } = await failedRun(loadEvent('parameter-change.json'));
    expect(error.message).toMatch(
      /install-joined-instances registry-asg: install failed on 1 instance that joined during the run: i-broken \(Failed: install-htpasswd: download/,
    );
    expect(report.actions.find((a) => a.type === 'install-joined-instances')).toMatchObject({
      status: 'failed',
      detail: { joined: { changed: [], inSync: [], failed: ['i-broken'], notRegistered: ['i-fresh'] } },
    });
    expect(report.details).toMatchObject({ instances: { changed: ['i-1'], failed: ['i-broken'], notRegistered: ['i-fresh'] } });
  });

  it('when nobody joined, the re-read installs nothing and says so', async () => {
    world.instance('i-1', { served: OLD_FILE });
    const report = await run(loadEvent('parameter-change.json'));
    expect(installs().map((c) => c.instanceIds)).toEqual([['i-1']]);
    expect(report.actions.find((a) => a.type === 'install-joined-instances')).toMatchObject({
      status: 'skipped',
      reason: 'no instance joined registry-asg during the run',
    });
  });

  it('is idempotent: the next run publishes nothing and installs nothing', async () => {
    world.instance('i-1', { served: OLD_FILE });
    await run(loadEvent('parameter-change.json'));
    const calls = world.s3.commandCalls(PutObjectCommand).length;
    const report = await run(loadEvent('schedule.json'));
    expect(world.s3.commandCalls(PutObjectCommand)).toHaveLength(calls);
    expect(installs()).toHaveLength(1);
    expect(report.details).toMatchObject({ publish: 'unchanged', instances: { inSync: ['i-1'], changed: [], failed: [] } });
    expect(report.summary).toEqual({ planned: 0, applied: 0, skipped: 1, failed: 0 });
  });

  it('the hourly drift check re-sends only to the drifted instance', async () => {
    const want = renderHtpasswd([
      { user: 'alice', hash: HASH_A },
      { user: 'bob', hash: HASH_B },
    ]);
    publish(want);
    world.instance('i-1', { served: want });
    world.instance('i-2', { served: OLD_FILE }); // missed the last sync
    world.instance('i-3', { served: null }); // no file at all
    const report = await run(loadEvent('sync-htpasswd/schedule-drift-check.json'));
    expect(world.s3).not.toHaveReceivedCommand(PutObjectCommand);
    expect(reports()[0]).toMatchObject({ instanceIds: ['i-1', 'i-2', 'i-3'], sha256: '-', maxErrors: '100%' });
    expect(installs().map((c) => c.instanceIds)).toEqual([['i-2', 'i-3']]);
    expect([...world.state.instances.values()].map((i) => i.served)).toEqual([want, want, want]);
    expect(report.details).toMatchObject({ instances: { inSync: ['i-1'], changed: ['i-2', 'i-3'], failed: [] } });
  });

  it('a dry run reports drift and the plan but publishes and installs nothing', async () => {
    world.instance('i-1', { served: OLD_FILE });
    const report = await run(loadEvent('sync-htpasswd/manual-dry-run.json'));
    expect(world.s3).not.toHaveReceivedCommand(PutObjectCommand);
    expect(installs()).toEqual([]);
    expect(world.state.object?.body).toBe(OLD_FILE);
    expect(report.dryRun).toBe(true);
    expect(report.actions.map((a) => [a.type, a.target, a.status])).toEqual([
      ['publish-htpasswd', 's3://registry-bucket/auth/htpasswd', 'planned'],
      ['install-htpasswd', 'i-1', 'planned'],
      ['install-joined-instances', 'registry-asg', 'planned'],
    ]);
    expect(report.details).toMatchObject({ publish: 'changed', instances: { drifted: ['i-1'] } });
  });

  it('a dry run still publishes the FIRST file (none exists yet: the fleet waits for it), and nothing else', async () => {
    world.state.object = undefined;
    world.instance('i-1', { served: OLD_FILE });
    const want = renderHtpasswd([
      { user: 'alice', hash: HASH_A },
      { user: 'bob', hash: HASH_B },
    ]);
    const report = await run(loadEvent('sync-htpasswd/manual-dry-run.json'));
    expect(report.dryRun).toBe(true);
    expect(world.state.object).toEqual({ body: want, metadata: { sha256: sha256Hex(want) } });
    expect(installs()).toEqual([]);
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([
      ['publish-htpasswd', 'applied'],
      ['install-htpasswd', 'planned'],
      ['install-joined-instances', 'planned'],
    ]);
  });

  it('forceDistribute installs on every instance without a drift check, and tells in-sync from changed', async () => {
    const want = renderHtpasswd([
      { user: 'alice', hash: HASH_A },
      { user: 'bob', hash: HASH_B },
    ]);
    publish(want);
    world.instance('i-1', { served: want });
    world.instance('i-2', { served: OLD_FILE });
    const report = await run(loadEvent('sync-htpasswd/manual-force-distribute.json'));
    expect(reports()).toEqual([]);
    expect(installs().map((c) => c.instanceIds)).toEqual([['i-1', 'i-2']]);
    expect(report.details).toMatchObject({ instances: { inSync: ['i-1'], changed: ['i-2'], failed: [] } });
    expect(report.actions.find((a) => a.target === 'i-2')?.detail).toMatchObject({
      changed: true,
      previousSha256: sha256Hex(OLD_FILE),
      installedSha256: sha256Hex(want),
    });
  });

  it('one instance failing: the others are installed, the failure is reported, then JobFailedError', async () => {
    world.instance('i-1', { served: OLD_FILE });
    world.instance('i-2', { served: OLD_FILE, behaviour: 'fail-install' });
    world.instance('i-3', { served: OLD_FILE });
    const { error, report } = await failedRun(loadEvent('parameter-change.json'));
    expect(error).toBeInstanceOf(JobFailedError);
    expect(error.message).toMatch(
      /1 of 5 actions failed \(first: install-htpasswd i-2: Failed: install-htpasswd: download of s3:\/\/x failed \(old file kept\)\)/,
    );
    expect(world.state.instances.get('i-2')?.served).toBe(OLD_FILE);
    expect(world.state.instances.get('i-1')?.served).toBe(world.state.object?.body);
    expect(report.details).toMatchObject({ instances: { changed: ['i-1', 'i-3'], failed: ['i-2'] } });
    expect(report.summary).toEqual({ planned: 0, applied: 3, skipped: 1, failed: 1 }); // skipped: nobody joined during the run
  });

  it('an instance not registered with SSM yet (InvalidInstanceId) is isolated and skipped; the rest are installed', async () => {
    world.instance('i-1', { served: OLD_FILE });
    world.instance('i-new', { behaviour: 'unregistered', launchTime: new Date(Date.now() - 5 * 60_000) });
    const report = await run({ forceDistribute: true });
    // The batch was refused as a whole, then sent one by one.
    expect(world.ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input.InstanceIds)).toEqual([
      ['i-1', 'i-new'],
      ['i-1'],
      ['i-new'],
    ]);
    expect(world.state.instances.get('i-1')?.served).toBe(world.state.object?.body);
    expect(report.actions.find((a) => a.target === 'i-new')).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/^not registered with SSM yet \(InvalidInstanceId\)/),
    });
    expect(report.details).toMatchObject({ instances: { changed: ['i-1'], notRegistered: ['i-new'] } });
    expect(report.summary.failed).toBe(0);
  });

  it('an instance whose invocation never appears (InvocationDoesNotExist) is reported as not registered, in the drift check too', async () => {
    world.instance('i-1', { served: OLD_FILE });
    world.instance('i-ghost', { behaviour: 'no-invocation', launchTime: new Date() });
    const report = await run(loadEvent('parameter-change.json'));
    expect(report.actions.find((a) => a.target === 'i-ghost')).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/^not registered with SSM yet/),
    });
    expect(installs().map((c) => c.instanceIds)).toEqual([['i-1']]);
    expect(report.details).toMatchObject({ instances: { changed: ['i-1'], notRegistered: ['i-ghost'] } });
  });

  it('an old instance SSM does not know (dead agent: InvalidInstanceId) is a failed install, not a skip: JobFailedError after the report', async () => {
    world.instance('i-1', { served: OLD_FILE });
    world.instance('i-old', { served: OLD_FILE, behaviour: 'unregistered', launchTime: new Date(Date.now() - 3 * 3_600_000) });
    const { error, report } = await failedRun(loadEvent('sync-htpasswd/schedule-drift-check.json'));
    expect(error).toBeInstanceOf(JobFailedError);
    expect(error.message).toMatch(
      /1 of 4 actions failed \(first: install-htpasswd i-old: unreachable through SSM: not registered with SSM \(InvalidInstanceId\), but launched .*past SSM_REGISTRATION_GRACE/,
    );
    expect(world.ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input.InstanceIds)).toEqual([
      ['i-1', 'i-old'],
      ['i-1'],
      ['i-old'],
      ['i-1', 'i-old'],
      ['i-1'],
      ['i-old'],
    ]);
    const old = report.actions.find((a) => a.target === 'i-old');
    expect(old).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(
        /^unknown to SSM \(not registered with SSM yet \(InvalidInstanceId\)\) but launched 3h ago, past SSM_REGISTRATION_GRACE: trying to install/,
      ),
      detail: { recentlyLaunched: false },
    });
    expect(world.state.instances.get('i-1')?.served).toBe(world.state.object?.body);
    expect(report.details).toMatchObject({ instances: { changed: ['i-1'], failed: ['i-old'] } });
    expect(report.summary).toEqual({ planned: 0, applied: 2, skipped: 1, failed: 1 }); // skipped: nobody joined during the run
  });

  it('an old instance whose invocation never appears fails too, also when forced (no drift check)', async () => {
    world.instance('i-1', { served: OLD_FILE });
    world.instance('i-ghost', { behaviour: 'no-invocation' }); // launched a day ago
    const { error, report } = await failedRun({ forceDistribute: true });
    expect(error).toBeInstanceOf(JobFailedError);
    expect(report.actions.find((a) => a.target === 'i-ghost')).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(
        /^unreachable through SSM: not registered with SSM \(InvocationDoesNotExist\), but launched \d{4}-.*its SSM agent is down/,
      ),
    });
    expect(report.details).toMatchObject({ instances: { changed: ['i-1'], failed: ['i-ghost'] } });
  });

  it('an instance EC2 does not list (launch time unknown) is not given the new-instance grace', async () => {
    world.instance('i-x', { behaviour: 'unregistered' });
    world.ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    const { report } = await failedRun(loadEvent('sync-htpasswd/schedule-drift-check.json'));
    expect(report.actions.find((a) => a.target === 'i-x')).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/but launch time unknown/),
      detail: { launchTime: null },
    });
  });

  it('a drift check that hangs ends within DRIFT_CHECK_BUDGET, not COMMAND_WAIT: the run installs and reports', async () => {
    const budgeted = createJob(
      job,
      loadSyncHtpasswdConfig({ ...process.env, DRIFT_CHECK_BUDGET: '1s', COMMAND_WAIT: '10m', COMMAND_POLL_INTERVAL: '100ms' }),
    ).run;
    world.instance('i-hung', { served: OLD_FILE, behaviour: 'hung-report' });
    const started = Date.now();
    const report = await budgeted(loadEvent('sync-htpasswd/schedule-drift-check.json'));
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(reports()).toHaveLength(1);
    expect(report.actions.find((a) => a.target === 'i-hung')).toMatchObject({
      status: 'applied',
      reason: expect.stringMatching(/^drift check failed \(no result within 1s \(last status InProgress; command cmd-1\)\)/),
    });
    expect(world.state.instances.get('i-hung')?.served).toBe(world.state.object?.body);
  });

  it('the drift-check budget also stops sending further batches: those instances are installed on, unchecked', async () => {
    const budgeted = createJob(
      job,
      loadSyncHtpasswdConfig({ ...process.env, DRIFT_CHECK_BUDGET: '1s', COMMAND_WAIT: '10m', COMMAND_POLL_INTERVAL: '100ms' }),
    ).run;
    for (let i = 0; i < 51; i++) world.instance(`i-${String(i).padStart(3, '0')}`, { served: OLD_FILE, behaviour: 'hung-report' });
    const report = await budgeted(loadEvent('sync-htpasswd/schedule-drift-check.json'));
    expect(reports().map((c) => c.instanceIds.length)).toEqual([50]);
    expect(report.actions.find((a) => a.target === 'i-050')).toMatchObject({
      status: 'applied',
      reason: expect.stringMatching(/^drift check failed \(not checked within DRIFT_CHECK_BUDGET 1s\)/),
    });
    expect(report.summary).toMatchObject({ applied: 52, failed: 0 });
  });

  it('polls a slow instance until it finishes', async () => {
    world.instance('i-slow', { served: OLD_FILE, behaviour: 'slow' });
    const report = await run(loadEvent('parameter-change.json'));
    expect(world.state.instances.get('i-slow')?.served).toBe(world.state.object?.body);
    expect(report.details).toMatchObject({ instances: { changed: ['i-slow'] } });
  });

  it('one broken instance never blocks the rest: installs go to every instance (MaxErrors 100%), then the run fails naming each failed one', async () => {
    for (let i = 0; i < 120; i++)
      world.instance(`i-${String(i).padStart(3, '0')}`, { served: OLD_FILE, behaviour: i === 7 || i === 80 ? 'fail-install' : 'ok' });
    const { error, report } = await failedRun({ forceDistribute: true });
    expect(error).toBeInstanceOf(JobFailedError);
    expect(installs().map((c) => [c.instanceIds.length, c.maxErrors])).toEqual([
      [50, '100%'],
      [50, '100%'],
      [20, '100%'],
    ]);
    const served = [...world.state.instances].filter(([, i]) => i.served === world.state.object?.body).map(([id]) => id);
    expect(served).toHaveLength(118);
    expect(report.details).toMatchObject({ instances: { failed: ['i-007', 'i-080'] } });
    expect(report.actions.filter((a) => a.status === 'failed').map((a) => [a.target, a.error])).toEqual([
      ['i-007', 'Failed: install-htpasswd: download of s3://x failed (old file kept)'],
      ['i-080', 'Failed: install-htpasswd: download of s3://x failed (old file kept)'],
    ]);
    expect(report.summary).toEqual({ planned: 0, applied: 119, skipped: 1, failed: 2 }); // the publish and 118 installs; nobody joined
  });

  it('sends in batches of 50 when all goes well', async () => {
    for (let i = 0; i < 60; i++) world.instance(`i-${String(i).padStart(3, '0')}`, { served: OLD_FILE });
    const report = await run({ forceDistribute: true });
    expect(installs().map((c) => c.instanceIds.length)).toEqual([50, 10]);
    expect(report.summary.applied).toBe(61);
  });

  it('a malformed parameter fails the run before anything is published or sent', async () => {
    world.instance('i-1', { served: OLD_FILE });
    world.parameter('eve', '$2y$03$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu');
    world.parameter('mallory', 'plaintext-in-a-String');
    const error = (await run(loadEvent('parameter-change.json')).catch((e: unknown) => e)) as Error;
    expect(error.name).toBe('InvalidUserSetError');
    expect(error.message).toMatch(
      /2 invalid parameters .*\/registry\/users\/eve: malformed bcrypt hash: cost 03.*\/registry\/users\/mallory: a String parameter must hold a bcrypt hash/,
    );
    expect(error.message).not.toContain('plaintext-in-a-String');
    expect(world.s3).not.toHaveReceivedCommand(PutObjectCommand);
    expect(world.ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(world.state.object?.body).toBe(OLD_FILE);
  });

  it('an empty path is refused, not published as an empty file', async () => {
    world.state.parameters = [];
    await expect(run(loadEvent('sync-htpasswd/manual-sync.json'))).rejects.toThrow(/refusing to publish an empty user set/);
    expect(world.state.object?.body).toBe(OLD_FILE);
  });

  it('hashes a SecureString password once and keeps the file stable on the next run', async () => {
    world.parameter('carol', 'carol-S3cret!', 'SecureString');
    await run(loadEvent('sync-htpasswd/manual-sync.json'));
    const first = world.state.object?.body ?? '';
    const carol = parseHtpasswd(first).get('carol') ?? '';
    expect(bcrypt.compareSync('carol-S3cret!', carol)).toBe(true);
    expect(carol.startsWith('$2b$04$')).toBe(true);
    const report = await run(loadEvent('sync-htpasswd/manual-sync.json'));
    expect(world.state.object?.body).toBe(first);
    expect(world.s3.commandCalls(PutObjectCommand)).toHaveLength(1);
    expect(report.details).toMatchObject({
      publish: 'unchanged',
      users: expect.arrayContaining([{ user: 'carol', parameter: '/registry/users/carol', cost: 4, source: 'password-reused' }]),
    });
  });

  it('ignores a parameter change outside the path without reading anything', async () => {
    const report = await run(loadEvent('sync-htpasswd/parameter-change-outside-path.json'));
    expect(world.ssm).not.toHaveReceivedCommand(GetParametersByPathCommand);
    expect(world.asg).not.toHaveReceivedCommand(DescribeAutoScalingGroupsCommand);
    expect(report.details).toEqual({ nothingToDo: 'parameter /registry/config/log-level is not under the user path' });
    expect(report.actions).toEqual([]);
  });

  it('publishes the first file when none exists yet', async () => {
    world.state.object = undefined;
    const report = await run(loadEvent('parameter-change.json'));
    expect(report.actions[0]).toMatchObject({ type: 'publish-htpasswd', reason: 'no published file yet', status: 'applied' });
    const published = world.state.object as { body: string } | undefined; // assigned by the run
    expect(parseHtpasswd(published?.body ?? '').size).toBe(2);
  });
});

// The deployed role may list only Prefix = the object key (htpasswd-world): S3 then answers a GetObject of the
// missing object with 403 AccessDenied, not NoSuchKey. The first publish (run by the deploy) must still happen.
describe('sync-htpasswd first publish under the deployed role', () => {
  it('a GetObject of the missing object answers AccessDenied: the listing of its key shows it missing and the first file is published', async () => {
    world.state.object = undefined;
    world.instance('i-1', { served: null, launchTime: new Date() });
    const report = await run(loadEvent('sync-htpasswd/manual-sync.json'));
    expect(report.actions[0]).toMatchObject({ type: 'publish-htpasswd', reason: 'no published file yet', status: 'applied' });
    const published = world.state.object as { body: string } | undefined; // assigned by the run
    expect(parseHtpasswd(published?.body ?? '').size).toBe(2);
    expect(world.state.instances.get('i-1')?.served).toBe(published?.body);
    expect(world.s3).toHaveReceivedCommandWith(ListObjectsV2Command, { Bucket: 'registry-bucket', Prefix: 'auth/htpasswd' });
  });

  it('with plain ListBucket (NoSuchKey) the first file is published without a listing', async () => {
    world.state.object = undefined;
    world.state.listBucket = 'bucket';
    const report = await run(loadEvent('parameter-change.json'));
    expect(report.actions[0]).toMatchObject({ type: 'publish-htpasswd', reason: 'no published file yet', status: 'applied' });
    expect(world.s3).not.toHaveReceivedCommand(ListObjectsV2Command);
  });

  it('an object that exists but cannot be read (AccessDenied, yet listed) fails the run and is never overwritten', async () => {
    world.state.denyGet = true;
    world.instance('i-1', { served: OLD_FILE });
    await expect(run(loadEvent('sync-htpasswd/manual-sync.json'))).rejects.toThrow(
      /s3:\/\/registry-bucket\/auth\/htpasswd exists but GetObject is denied: AccessDenied/,
    );
    expect(world.state.object?.body).toBe(OLD_FILE);
    expect(world.s3).not.toHaveReceivedCommand(PutObjectCommand);
    expect(installs()).toEqual([]);
  });

  it('a denied listing too fails the run: nothing is published from a guess', async () => {
    world.state.object = undefined;
    world.s3.on(ListObjectsV2Command).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }));
    await expect(run(loadEvent('sync-htpasswd/manual-sync.json'))).rejects.toThrow(
      /cannot tell whether s3:\/\/registry-bucket\/auth\/htpasswd exists: .*ListObjectsV2 \(Prefix auth\/htpasswd\) failed: AccessDenied/,
    );
    expect(world.state.object).toBeUndefined();
    expect(world.s3).not.toHaveReceivedCommand(PutObjectCommand);
  });
});
