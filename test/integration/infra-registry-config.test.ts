// The fleet's registry config (infra/user-data.ts → renderRegistryConfig) on the real docker-registry 2.8 with
// moto_server as S3: the same options every instance gets, except the S3 endpoint, the htpasswd path and the
// ports. As on the instances, http.secret arrives as REGISTRY_HTTP_SECRET, never in the file.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteObjectCommand, PutBucketVersioningCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import { fleetRegistryConfigOptions } from '../../infra/user-data.ts';
import { startMoto, motoClientConfig } from '../../local/moto.ts';
import type { Moto } from '../../local/moto.ts';
import { freePort } from '../../local/ports.ts';
import { answers, spawnManaged, waitUntilReady } from '../../local/process.ts';
import type { ManagedProcess } from '../../local/process.ts';
import { patchUpload, completeUpload, pullBlob, pushBlob, sha256Digest, startUpload } from '../../local/registry.ts';

const BUCKET = 'fleet-config-check';
const HTTP_SECRET = 'fleet-shared-http-secret-0123456789abcdefXYZ';
const alice = { username: 'alice', password: 'correct horse battery staple' };

interface Instance {
  url: string;
  debugUrl: string;
  proc: ManagedProcess;
}

let moto: Moto;
let dir: string;
let s3: S3Client;
const instances: Instance[] = [];

async function startInstance(
  name: string,
  o: { deleteEnabled?: boolean; edit?: (config: Record<string, Record<string, unknown>>) => void } = {},
): Promise<Instance> {
  const [port, debugPort] = [await freePort(), await freePort()];
  let text = renderRegistryConfig({
    ...fleetRegistryConfigOptions({ bucket: BUCKET, region: 'us-east-1', ...(o.deleteEnabled ? { deleteEnabled: true } : {}) }),
    regionEndpoint: moto.endpoint,
    htpasswdPath: join(dir, 'auth', 'htpasswd'),
    httpAddr: `127.0.0.1:${port}`,
    debugAddr: `127.0.0.1:${debugPort}`,
  });
  if (o.edit) {
    const config = parse(text) as Record<string, Record<string, unknown>>;
    o.edit(config);
    text = stringify(config);
  }
  const configPath = join(dir, `${name}.yml`);
  await writeFile(configPath, text);
  const env: NodeJS.ProcessEnv = { ...process.env, REGISTRY_HTTP_SECRET: HTTP_SECRET };
  delete env.AWS_CA_BUNDLE; // distribution 2.8 panics at start when it is set
  const proc = spawnManaged(`registry-${name}`, 'docker-registry', ['serve', configPath], { env });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(proc, () => answers(`${url}/`), { timeoutMs: 30_000, what: 'answering GET /' });
  return { url, debugUrl: `http://127.0.0.1:${debugPort}`, proc };
}

async function status(url: string, auth?: typeof alice, method = 'GET'): Promise<number> {
  const headers: Record<string, string> = auth
    ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` }
    : {};
  // The registry's own answer: a blob HEAD/GET is a 307 to a presigned S3 URL, which fetch would otherwise follow.
  const res = await fetch(url, { method, headers, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  await res.body?.cancel();
  return res.status;
}

beforeAll(async () => {
  moto = await startMoto();
  dir = await mkdtemp(join(tmpdir(), 'fleet-config-'));
  s3 = new S3Client(motoClientConfig(moto));
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  // As the stack's bucket: versioned, so a delete is a delete marker (collect-garbage's undo).
  await s3.send(new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
  await mkdir(join(dir, 'auth'));
  const made = spawnSync('htpasswd', ['-B', '-b', '-c', join(dir, 'auth', 'htpasswd'), alice.username, alice.password], {
    encoding: 'utf8',
  });
  if (made.status !== 0) throw new Error(`htpasswd failed: ${made.stderr}`);
  instances.push(await startInstance('a'), await startInstance('b'));
});

afterAll(async () => {
  for (const i of instances) await i.proc.stop();
  s3?.destroy();
  await moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the fleet registry config on the real registry', () => {
  it('keeps the secret out of the file', async () => {
    const config = parse(await readFile(join(dir, 'a.yml'), 'utf8')) as { http: Record<string, unknown> };
    expect(config.http).not.toHaveProperty('secret');
  });

  it('GET / is 200 without credentials (the target group health check)', async () => {
    for (const i of instances) expect(await status(`${i.url}/`)).toBe(200);
  });

  it('/v2/ is 401 without credentials, 401 with a wrong password, 200 with the htpasswd user', async () => {
    const [a] = instances as [Instance];
    expect(await status(`${a.url}/v2/`)).toBe(401);
    expect(await status(`${a.url}/v2/`, { ...alice, password: 'wrong' })).toBe(401);
    expect(await status(`${a.url}/v2/`, alice)).toBe(200);
  });

  it('serves debug and metrics on loopback only', async () => {
    const [a] = instances as [Instance];
    expect(a.debugUrl.startsWith('http://127.0.0.1:')).toBe(true);
    expect(await status(`${a.debugUrl}/debug/health`)).toBe(200);
    expect(await status(`${a.debugUrl}/metrics`)).toBe(200);
  });

  it('pushes a blob to S3 and pulls it back from every instance', async () => {
    const [a, b] = instances as [Instance, Instance];
    const bytes = randomBytes(70_000);
    const pushed = await pushBlob(a.url, 'team/app', bytes, { auth: alice });
    expect(pushed.digest).toBe(sha256Digest(bytes));
    expect((await pullBlob(a.url, 'team/app', pushed.digest, { auth: alice })).equals(bytes)).toBe(true);
    expect((await pullBlob(b.url, 'team/app', pushed.digest, { auth: alice })).equals(bytes)).toBe(true);
  });

  it('an upload started on one instance completes on another (the shared REGISTRY_HTTP_SECRET is in effect)', async () => {
    const [a, b] = instances as [Instance, Instance];
    const bytes = randomBytes(200_000);
    const digest = sha256Digest(bytes);
    const started = await startUpload(a.url, 'team/app', { auth: alice, bytes: bytes.subarray(0, 100_000) });
    const onB = { ...started, location: started.location.replace(a.url, b.url) };
    const patched = await patchUpload(onB, bytes.subarray(100_000), { auth: alice });
    await completeUpload(patched.location.replace(b.url, a.url), new Uint8Array(0), digest, { auth: alice });
    expect((await pullBlob(b.url, 'team/app', digest, { auth: alice })).equals(bytes)).toBe(true);
  });
});

/** What collect-garbage's sweep does to a blob: its data object gets a delete marker (the `_layers` link may stay). */
async function collect(digest: string): Promise<void> {
  const hex = digest.replace(/^sha256:/, '');
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data` }));
}

describe('the fleet config after a garbage collection (issue 22 items 1 and 5)', () => {
  it('a blob deleted under the registry is gone at once: no blob descriptor cache answers for it (distribution #4569)', async () => {
    const [a] = instances as [Instance];
    const bytes = randomBytes(30_000);
    const { digest } = await pushBlob(a.url, 'team/gc', bytes, { auth: alice });
    expect(await status(`${a.url}/v2/team/gc/blobs/${digest}`, alice, 'HEAD')).toBe(307);
    await collect(digest);
    // A 307 (or 200) here would tell a client to skip re-uploading a layer that no longer exists.
    expect(await status(`${a.url}/v2/team/gc/blobs/${digest}`, alice, 'HEAD')).toBe(404);
  });

  it('the control: with cache.blobdescriptor inmemory the same registry keeps answering that the deleted blob exists', async () => {
    const cached = await startInstance('cached', {
      edit: (config) => {
        config.storage = { ...config.storage, cache: { blobdescriptor: 'inmemory' } };
      },
    });
    instances.push(cached);
    const bytes = randomBytes(30_000);
    const { digest } = await pushBlob(cached.url, 'team/gc-cached', bytes, { auth: alice });
    expect(await status(`${cached.url}/v2/team/gc-cached/blobs/${digest}`, alice, 'HEAD')).toBe(307);
    await collect(digest);
    expect(await status(`${cached.url}/v2/team/gc-cached/blobs/${digest}`, alice, 'HEAD')).toBe(307);
  });

  it('storage.delete stays off without retention (405) and is on with it (202)', async () => {
    const [a] = instances as [Instance];
    const { digest } = await pushBlob(a.url, 'team/del', randomBytes(10_000), { auth: alice });
    expect(await status(`${a.url}/v2/team/del/blobs/${digest}`, alice, 'DELETE')).toBe(405);
    const withRetention = await startInstance('retention', { deleteEnabled: true });
    instances.push(withRetention);
    expect(await status(`${withRetention.url}/v2/team/del/blobs/${digest}`, alice, 'DELETE')).toBe(202);
  });
});
