// Drain before terminate (issue 18, item 2) for real: the watcher infra/assets/drain-registry.sh itself (not a copy)
// with the settings the unit gives it, the real docker-registry 2.8 (its Prometheus gauge on a loopback debug port,
// moto_server as S3), the real AWS CLI v2 (/usr/bin/aws) against moto's Auto Scaling group and EC2 tags, and an
// IMDSv2 stand-in whose target-lifecycle-state the test flips to Terminated, as the group does on termination.
// moto has no CompleteLifecycleAction (it answers 500), so that one call goes to a recording stand-in that checks
// the hook and the instance against moto and answers as Auto Scaling does; every other call passes through to moto.
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AutoScalingClient,
  CompleteLifecycleActionCommand,
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeLifecycleHooksCommand,
  PutLifecycleHookCommand,
} from '@aws-sdk/client-auto-scaling';
import { CreateLaunchTemplateCommand, DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import {
  ASSETS_DIR,
  ASSET_FILES,
  DRAIN_HOOK_NAME,
  drainEnv,
  drainHeartbeatSeconds,
  fleetRegistryConfigOptions,
} from '../../infra/user-data.ts';
import { startMoto } from '../../local/moto.ts';
import type { Moto } from '../../local/moto.ts';
import { freePort } from '../../local/ports.ts';
import { spawnManaged } from '../../local/process.ts';
import type { ManagedProcess } from '../../local/process.ts';
import { sha256Digest, startRegistry } from '../../local/registry.ts';
import type { Registry } from '../../local/registry.ts';

const REGION = 'us-east-1';
const BUCKET = 'drain-registry';
const GROUP = 'registry-drain-group';
const REPO = 'team/drain';
const HTTP_SECRET = 'drain-test-shared-http-secret-0123456789abcdef';
const WATCHER = join(ASSETS_DIR, ASSET_FILES.drain);
/** The watcher polls every second here (5 s on the fleet); two quiet polls in a row end a drain. */
const POLL_SECONDS = 1;

const clientConfig = () => ({ endpoint: moto.endpoint, region: REGION, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });

let moto: Moto;
let registry: Registry;
let metricsUrl: string;
let dir: string;
let instanceId: string;
let imds: Imds;
let standIn: LifecycleStandIn;
const servers: http.Server[] = [];

// ---------------------------------------------------------------------------------------------------
// Stand-ins

/** IMDSv2 as the watcher uses it: a token PUT, then metadata GETs that need the token. */
interface Imds {
  url: string;
  lifecycleState: string;
}

async function listen(server: http.Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function startImds(id: string): Promise<Imds> {
  const token = randomUUID();
  const state: Imds = { url: '', lifecycleState: 'InService' };
  const metadata = (path: string): string | undefined =>
    ({
      '/latest/meta-data/instance-id': id,
      '/latest/meta-data/placement/region': REGION,
      '/latest/meta-data/autoscaling/target-lifecycle-state': state.lifecycleState,
    })[path];
  state.url = await listen(
    http.createServer((req, res) => {
      if (req.method === 'PUT' && req.url === '/latest/api/token') return void res.writeHead(200).end(token);
      if (req.headers['x-aws-ec2-metadata-token'] !== token) return void res.writeHead(401).end();
      const value = metadata(req.url ?? '');
      if (value === undefined) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': 'text/plain' }).end(value);
    }),
  );
  return state;
}

interface LifecycleCall {
  at: number;
  params: Record<string, string>;
  accepted: boolean;
  error?: string;
}

/** The AWS endpoint the CLI is pointed at: CompleteLifecycleAction answered here, everything else sent to moto. */
interface LifecycleStandIn {
  url: string;
  calls: LifecycleCall[];
  /** Instances in Terminating:Wait for the drain hook (what Auto Scaling would hold after deregistering them). */
  waiting: Set<string>;
}

const xmlError = (code: string, message: string) =>
  `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`;

/** Auto Scaling's checks, against moto's group and hooks and the test's Terminating:Wait set. */
async function checkCompletion(p: Record<string, string>, waiting: Set<string>): Promise<string | undefined> {
  const asg = new AutoScalingClient(clientConfig());
  try {
    const hooks = await asg.send(new DescribeLifecycleHooksCommand({ AutoScalingGroupName: p.AutoScalingGroupName }));
    const hook = hooks.LifecycleHooks?.find((h) => h.LifecycleHookName === p.LifecycleHookName);
    if (hook?.LifecycleTransition !== 'autoscaling:EC2_INSTANCE_TERMINATING')
      return `No Lifecycle Hook found with name ${p.LifecycleHookName}`;
    const group = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [p.AutoScalingGroupName ?? ''] }));
    const member = group.AutoScalingGroups?.[0]?.Instances?.some((i) => i.InstanceId === p.InstanceId);
    if (!member || !waiting.has(p.InstanceId ?? '')) return `No active Lifecycle Action found with instance ID ${p.InstanceId}`;
    if (!['CONTINUE', 'ABANDON'].includes(p.LifecycleActionResult ?? '')) return `invalid LifecycleActionResult ${p.LifecycleActionResult}`;
    return undefined;
  } finally {
    asg.destroy();
  }
}

async function startLifecycleStandIn(): Promise<LifecycleStandIn> {
  const standIn: LifecycleStandIn = { url: '', calls: [], waiting: new Set() };
  const answer = async (body: Buffer, res: http.ServerResponse): Promise<void> => {
    const params = Object.fromEntries(new URLSearchParams(body.toString('utf8')));
    const error = await checkCompletion(params, standIn.waiting);
    standIn.calls.push({ at: Date.now(), params, accepted: error === undefined, ...(error ? { error } : {}) });
    if (error) return void res.writeHead(400, { 'content-type': 'text/xml' }).end(xmlError('ValidationError', error));
    standIn.waiting.delete(params.InstanceId ?? '');
    res.writeHead(200, { 'content-type': 'text/xml' });
    res.end(
      `<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><CompleteLifecycleActionResult/>` +
        `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></CompleteLifecycleActionResponse>`,
    );
  };
  const forward = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void => {
    const upstream = http.request({ host: '127.0.0.1', port: moto.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    upstream.end(body);
  };
  standIn.url = await listen(
    http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (new URLSearchParams(body.toString('utf8')).get('Action') === 'CompleteLifecycleAction') void answer(body, res);
        else forward(req, body, res);
      });
    }),
  );
  return standIn;
}

// ---------------------------------------------------------------------------------------------------
// The watcher and the registry

/** Starts infra/assets/drain-registry.sh as the unit would, with its settings; AWS through the CLI wrapper. */
async function startWatcher(drainTimeoutSeconds: number): Promise<ManagedProcess> {
  const env = {
    ...drainEnv({ drainTimeoutSeconds, pollSeconds: POLL_SECONDS }),
    REGISTRY_URL: `${registry.url}/`,
    REGISTRY_METRICS_URL: metricsUrl,
    AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
    DRAIN_TEST_AWS_ENDPOINT: standIn.url,
    PATH: `${join(dir, 'bin')}:/usr/bin:/bin`,
    HOME: join(dir, 'home'),
    LANG: 'C.UTF-8',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_CONFIG_FILE: join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
    AWS_PAGER: '',
  };
  const watcher = spawnManaged('drain-registry.sh', 'bash', [WATCHER], { env });
  await until('the watcher to poll IMDS', () => watcher.logs().includes('watching for termination'), 10_000, watcher);
  return watcher;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, watcher?: ManagedProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${watcher ? `; watcher output:\n${watcher.logs()}` : ''}`);
    await sleep(100);
  }
}

async function exitOf(watcher: ManagedProcess, timeoutMs: number): Promise<number | null> {
  await until('the watcher to exit', () => watcher.exited(), timeoutMs, watcher);
  return watcher.child.exitCode;
}

/** The registry's own count: registry_http_in_flight_requests summed over its handlers (the name the watcher reads). */
async function inFlight(): Promise<number> {
  const page = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) })).text();
  const series = page.split('\n').filter((l) => l.startsWith('registry_http_in_flight_requests{'));
  if (series.length === 0) throw new Error(`no registry_http_in_flight_requests on ${metricsUrl}`);
  return series.reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

/** POST /v2/<repo>/blobs/uploads/: the upload's absolute Location. */
async function startUpload(): Promise<string> {
  const res = await fetch(`${registry.url}/v2/${REPO}/blobs/uploads/`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  await res.body?.cancel();
  expect(res.status).toBe(202);
  return new URL(res.headers.get('location') ?? '', registry.url).toString();
}

/** One PATCH as `docker push` sends a layer: chunked, no Content-Range; `write` feeds it, `end` finishes it. */
function streamingPatch(location: string): {
  write: (b: Buffer) => void;
  end: () => Promise<{ status: number; location: string }>;
  abort: () => void;
} {
  let settle: (r: { status: number; location: string }) => void = () => undefined;
  const answered = new Promise<{ status: number; location: string }>((resolve) => (settle = resolve));
  const req = http.request(location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
    res.resume();
    res.on('end', () => settle({ status: res.statusCode ?? 0, location: new URL(res.headers.location ?? '', registry.url).toString() }));
  });
  req.on('error', () => settle({ status: 0, location: '' }));
  req.flushHeaders();
  return {
    write: (b) => void req.write(b),
    end: () => {
      req.end();
      return answered;
    },
    abort: () => req.destroy(),
  };
}

/** Auto Scaling starts terminating the instance: IMDS says so and its lifecycle action waits (after `actionAfterMs`). */
function startTermination(actionAfterMs = 0): number {
  imds.lifecycleState = 'Terminated';
  const at = Date.now();
  if (actionAfterMs === 0) standIn.waiting.add(instanceId);
  else setTimeout(() => standIn.waiting.add(instanceId), actionAfterMs);
  return at;
}

const accepted = () => standIn.calls.filter((c) => c.accepted);

beforeAll(async () => {
  moto = await startMoto();
  dir = await mkdtemp(join(tmpdir(), 'drain-'));
  await mkdir(join(dir, 'bin'));
  await mkdir(join(dir, 'home'));
  // The real AWS CLI v2 (Debian's 2.9 predates AWS_ENDPOINT_URL): pointed at the stand-in by a wrapper first on PATH.
  await writeFile(join(dir, 'bin', 'aws'), '#!/usr/bin/env bash\nexec /usr/bin/aws --endpoint-url "${DRAIN_TEST_AWS_ENDPOINT:?}" "$@"\n');
  await chmod(join(dir, 'bin', 'aws'), 0o755);

  const s3 = new S3Client({ ...clientConfig(), forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  s3.destroy();
  const [port, debugPort] = [await freePort(), await freePort()];
  registry = await startRegistry({
    config: renderRegistryConfig({
      ...fleetRegistryConfigOptions({ bucket: BUCKET, region: REGION }),
      regionEndpoint: moto.endpoint,
      httpAddr: `127.0.0.1:${port}`,
      debugAddr: `127.0.0.1:${debugPort}`,
      httpSecret: HTTP_SECRET,
      htpasswdPath: undefined, // no auth: this test is about requests in flight, not who sends them
    }),
  });
  metricsUrl = `http://127.0.0.1:${debugPort}/metrics`;

  // The fleet's group in moto, with the drain hook as the stack declares it (test/infra/drain.test.ts).
  const ec2 = new EC2Client(clientConfig());
  const ami = (await ec2.send(new DescribeImagesCommand({}))).Images?.[0]?.ImageId as string;
  await ec2.send(
    new CreateLaunchTemplateCommand({ LaunchTemplateName: 'registry', LaunchTemplateData: { ImageId: ami, InstanceType: 't4g.small' } }),
  );
  ec2.destroy();
  const asg = new AutoScalingClient(clientConfig());
  await asg.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: GROUP,
      MinSize: 1,
      MaxSize: 2,
      DesiredCapacity: 1,
      AvailabilityZones: [`${REGION}a`],
      LaunchTemplate: { LaunchTemplateName: 'registry', Version: '$Latest' },
    }),
  );
  await asg.send(
    new PutLifecycleHookCommand({
      AutoScalingGroupName: GROUP,
      LifecycleHookName: DRAIN_HOOK_NAME,
      LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
      HeartbeatTimeout: drainHeartbeatSeconds(900),
      DefaultResult: 'CONTINUE',
    }),
  );
  instanceId = (await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [GROUP] }))).AutoScalingGroups?.[0]
    ?.Instances?.[0]?.InstanceId as string;
  asg.destroy();
  expect(instanceId).toMatch(/^i-/);

  imds = await startImds(instanceId);
  standIn = await startLifecycleStandIn();
});

beforeEach(() => {
  imds.lifecycleState = 'InService';
  standIn.calls.length = 0;
  standIn.waiting.clear();
});

afterAll(async () => {
  await registry?.stop();
  await moto?.stop();
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('drain before terminate: the watcher on the real registry', () => {
  it('moto has no CompleteLifecycleAction (so that call goes to the recording stand-in)', async () => {
    const asg = new AutoScalingClient({ ...clientConfig(), maxAttempts: 1 });
    const call = asg.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: GROUP,
        LifecycleHookName: DRAIN_HOOK_NAME,
        InstanceId: instanceId,
        LifecycleActionResult: 'CONTINUE',
      }),
    );
    await expect(call).rejects.toThrow();
    asg.destroy();
  });

  it('a slow single-PATCH push through a draining instance completes (201) before the hook is completed', async () => {
    const watcher = await startWatcher(60);
    const layer = randomBytes(8 * 64 * 1024);
    const patch = streamingPatch(await startUpload());
    patch.write(layer.subarray(0, 64 * 1024));
    await until('the registry to count the PATCH in flight', async () => (await inFlight()) === 1, 10_000);

    startTermination();
    await until('the watcher to see the termination', () => watcher.logs().includes('termination started'), 10_000, watcher);
    for (let i = 1; i < 8; i++) {
      await sleep(500); // ~4 s of upload while the instance drains
      patch.write(layer.subarray(i * 64 * 1024, (i + 1) * 64 * 1024));
    }
    expect(standIn.calls).toEqual([]); // nothing completed while the PATCH ran
    const patched = await patch.end();
    expect(patched.status).toBe(202);
    const digest = sha256Digest(layer);
    const put = new URL(patched.location);
    put.searchParams.set('digest', digest);
    const committed = await fetch(put, { method: 'PUT', signal: AbortSignal.timeout(10_000) });
    await committed.body?.cancel();
    const pushedAt = Date.now();
    expect(committed.status).toBe(201);

    expect(await exitOf(watcher, 30_000)).toBe(0);
    expect(accepted()).toHaveLength(1);
    const [completion] = accepted();
    expect(completion?.params).toMatchObject({
      Action: 'CompleteLifecycleAction',
      AutoScalingGroupName: GROUP,
      LifecycleHookName: DRAIN_HOOK_NAME,
      InstanceId: instanceId,
      LifecycleActionResult: 'CONTINUE',
    });
    expect(completion?.at).toBeGreaterThan(pushedAt);
    expect(watcher.logs()).toMatch(/requests in flight: 1\n[\s\S]*requests in flight: 0\n/);
    expect(watcher.logs()).not.toContain('drain timeout');

    // The layer is whole in the registry and in S3.
    const head = await fetch(`${registry.url}/v2/${REPO}/blobs/${digest}`, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(layer.length));
    const s3 = new S3Client({ ...clientConfig(), forcePathStyle: true });
    const hex = digest.slice('sha256:'.length);
    const object = await s3.send(
      new HeadObjectCommand({ Bucket: BUCKET, Key: `docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data` }),
    );
    s3.destroy();
    expect(object.ContentLength).toBe(layer.length);
  });

  it('a drain whose request never ends is completed at the drain timeout, with the request still in flight', async () => {
    const timeoutSeconds = 3;
    const watcher = await startWatcher(timeoutSeconds);
    const patch = streamingPatch(await startUpload());
    try {
      patch.write(randomBytes(64 * 1024)); // and nothing more: a client that stalls forever
      await until('the registry to count the PATCH in flight', async () => (await inFlight()) === 1, 10_000);
      const terminationAt = startTermination();

      expect(await exitOf(watcher, 30_000)).toBe(0);
      const [completion] = accepted();
      expect(completion?.params).toMatchObject({ InstanceId: instanceId, AutoScalingGroupName: GROUP, LifecycleActionResult: 'CONTINUE' });
      const waited = (completion?.at ?? 0) - terminationAt;
      expect(waited).toBeGreaterThanOrEqual(timeoutSeconds * 1000);
      expect(waited).toBeLessThan((timeoutSeconds + 15) * 1000); // notice (≤ 1 poll) + timeout + two CLI calls
      expect(await inFlight()).toBe(1);
      expect(watcher.logs()).toContain('drain timeout');
    } finally {
      patch.abort();
    }
  });

  it('an idle instance is released as soon as its lifecycle action exists (the group deregisters the target first)', async () => {
    await until('the aborted upload to leave the registry', async () => (await inFlight()) === 0, 10_000);
    const watcher = await startWatcher(60);
    const terminationAt = startTermination(8_000);
    expect(await exitOf(watcher, 30_000)).toBe(0);
    const rejected = standIn.calls.filter((c) => !c.accepted);
    expect(rejected.length).toBeGreaterThan(0);
    expect(rejected[0]?.error).toBe(`No active Lifecycle Action found with instance ID ${instanceId}`);
    expect(accepted()).toHaveLength(1);
    expect((accepted()[0]?.at ?? 0) - terminationAt).toBeGreaterThanOrEqual(8_000);
    expect(watcher.logs()).toContain('cannot complete the hook yet');
    expect(watcher.logs()).not.toContain('drain timeout');
  });
});
