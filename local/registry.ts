import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { answers, spawnManaged, waitUntilReady } from './process.ts';

// ---------------------------------------------------------------------------------------------------
// Process

export interface Registry {
  /** `http://HOST:PORT` of the main listener (from the config's `http.addr`). */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Path of the config file the registry was started with. */
  readonly configPath: string;
  /** The registry's combined stdout/stderr (last 64 kB). */
  logs(): string;
  /** Kills the registry by PID, waits for it to exit, and removes the temp dir it created. */
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  /** distribution's config.yml, as an object or YAML text. `http.addr` must name a port. */
  config: object | string;
  /** Where to write `config.yml` (default: a fresh temp dir, removed by stop()). */
  dir?: string;
  timeoutMs?: number;
}

/** Splits `http.addr` (`:5000`, `127.0.0.1:5000`, `[::1]:5000`) into a URL the test can reach. */
export function addrToUrl(addr: string): { url: string; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(addr);
  if (!m || m[2] === undefined) throw new Error(`http.addr "${addr}" does not end in :PORT`);
  const port = Number(m[2]);
  const host = m[1] === '' || m[1] === '0.0.0.0' || m[1] === '[::]' ? '127.0.0.1' : (m[1] ?? '127.0.0.1');
  return { url: `http://${host}:${port}`, port };
}

function httpAddrOf(config: unknown): string {
  const addr = (config as { http?: { addr?: unknown } } | null)?.http?.addr;
  if (typeof addr !== 'string') throw new Error('registry config has no http.addr');
  return addr;
}

/** The test process's environment minus what the registry must not see. */
function registryEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE; // distribution 2.8 panics at start when it is set
  for (const key of Object.keys(env)) if (key.startsWith('REGISTRY_')) delete env[key]; // would override the file
  return env;
}

/** Starts `docker-registry serve CONFIG`; resolves once `GET /` on its main port answers 200 (≤ 30 s). */
export async function startRegistry({ config, dir, timeoutMs = 30_000 }: StartRegistryOptions): Promise<Registry> {
  const text = typeof config === 'string' ? config : stringify(config);
  const { url, port } = addrToUrl(httpAddrOf(typeof config === 'string' ? parse(config) : config));
  const workDir = dir ?? (await mkdtemp(join(tmpdir(), 'registry-')));
  const configPath = join(workDir, 'config.yml');
  await writeFile(configPath, text);

  const proc = spawnManaged('docker-registry', 'docker-registry', ['serve', configPath], { env: registryEnv() });
  const cleanup = async (): Promise<void> => {
    await proc.stop();
    if (dir === undefined) await rm(workDir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(proc, () => answers(`${url}/`), { timeoutMs, what: 'answering GET /' });
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { url, port, pid: proc.pid, configPath, logs: proc.logs, stop: cleanup };
}

// ---------------------------------------------------------------------------------------------------
// Registry HTTP API v2

export interface BasicAuth {
  username: string;
  password: string;
}
export interface AuthOption {
  auth?: BasicAuth;
}
export interface PushedBlob {
  digest: string;
  size: number;
}
export interface OpenUpload {
  uuid: string;
  /** Absolute URL of the upload (with distribution's signed `_state`), as the last response gave it. */
  location: string;
  /** Bytes received so far. */
  offset: number;
}

export const MEDIA_TYPES = {
  manifest: 'application/vnd.docker.distribution.manifest.v2+json',
  config: 'application/vnd.docker.container.image.v1+json',
  layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function authHeader(auth?: BasicAuth): Record<string, string> {
  if (!auth) return {};
  return { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` };
}

async function call(
  method: string,
  url: string,
  expected: readonly number[],
  { auth, headers = {}, body }: AuthOption & { headers?: Record<string, string>; body?: Uint8Array } = {},
): Promise<Response> {
  const res = await fetch(url, {
    method,
    headers: { ...authHeader(auth), ...headers },
    body: body === undefined ? undefined : new Uint8Array(body),
    signal: AbortSignal.timeout(30_000),
  });
  if (!expected.includes(res.status)) {
    const text = await res.text().catch(() => '');
    throw new Error(`${method} ${url} answered ${res.status} (expected ${expected.join('/')}): ${text.slice(0, 500)}`);
  }
  return res;
}

/** The absolute URL of a (possibly relative) `Location` header. */
function locationOf(res: Response, requestUrl: string): string {
  const location = res.headers.get('location');
  if (!location) throw new Error(`${requestUrl}: response ${res.status} has no Location header`);
  return new URL(location, requestUrl).toString();
}

function withDigest(location: string, digest: string): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.toString();
}

/** POST /v2/<repo>/blobs/uploads/, optionally followed by one PATCH of `bytes`; the upload stays open. */
export async function startUpload(
  url: string,
  repo: string,
  { bytes, auth }: AuthOption & { bytes?: Uint8Array } = {},
): Promise<OpenUpload> {
  const postUrl = `${url}/v2/${repo}/blobs/uploads/`;
  const res = await call('POST', postUrl, [202], { auth });
  await res.body?.cancel();
  const uuid = res.headers.get('docker-upload-uuid');
  if (!uuid) throw new Error(`POST ${postUrl}: no Docker-Upload-UUID header`);
  const upload = { uuid, location: locationOf(res, postUrl), offset: 0 };
  return bytes === undefined ? upload : patchUpload(upload, bytes, { auth });
}

/** PATCH one chunk onto an open upload; returns the upload with its new location and offset. */
export async function patchUpload(upload: OpenUpload, chunk: Uint8Array, { auth }: AuthOption = {}): Promise<OpenUpload> {
  const end = upload.offset + chunk.length - 1;
  const res = await call('PATCH', upload.location, [202], {
    auth,
    body: chunk,
    headers: { 'content-type': 'application/octet-stream', 'content-range': `${upload.offset}-${end}` },
  });
  await res.body?.cancel();
  return { uuid: upload.uuid, location: locationOf(res, upload.location), offset: end + 1 };
}

/** PUT <location>?digest=… with the remaining bytes (possibly none): the blob is committed. */
export async function completeUpload(location: string, rest: Uint8Array, digest: string, { auth }: AuthOption = {}): Promise<void> {
  const res = await call('PUT', withDigest(location, digest), [201], {
    auth,
    body: rest,
    headers: { 'content-type': 'application/octet-stream' },
  });
  await res.body?.cancel();
}

/** DELETE <location>: the client cancels the upload. */
export async function cancelUpload(location: string, { auth }: AuthOption = {}): Promise<void> {
  const res = await call('DELETE', location, [204], { auth });
  await res.body?.cancel();
}

/** Uploads one blob: monolithic (POST → PUT ?digest=) or chunked (POST → PATCH × n → PUT ?digest=). */
export async function pushBlob(
  url: string,
  repo: string,
  bytes: Uint8Array,
  { chunked = false, chunkSize = 1 << 20, auth }: AuthOption & { chunked?: boolean; chunkSize?: number } = {},
): Promise<PushedBlob> {
  const digest = sha256Digest(bytes);
  let upload = await startUpload(url, repo, { auth });
  if (!chunked) {
    await completeUpload(upload.location, bytes, digest, { auth });
    return { digest, size: bytes.length };
  }
  if (chunkSize < 1) throw new Error('chunkSize must be at least 1');
  for (let start = 0; start < bytes.length; start += chunkSize) {
    upload = await patchUpload(upload, bytes.subarray(start, start + chunkSize), { auth });
  }
  await completeUpload(upload.location, new Uint8Array(0), digest, { auth });
  return { digest, size: bytes.length };
}

export interface PushedImage {
  config: PushedBlob;
  layers: PushedBlob[];
  manifestDigest: string;
  manifest: Buffer;
}

/** Pushes a schema2 image: a config blob, the layers (monolithic), then the manifest under `tag`. */
export async function pushImage(
  url: string,
  repo: string,
  tag: string,
  { layers, auth }: AuthOption & { layers: readonly Uint8Array[] },
): Promise<PushedImage> {
  const pushedLayers: PushedBlob[] = [];
  for (const layer of layers) pushedLayers.push(await pushBlob(url, repo, layer, { auth }));
  const configJson = {
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: pushedLayers.map((l) => l.digest) },
  };
  const config = await pushBlob(url, repo, Buffer.from(JSON.stringify(configJson)), { auth });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.manifest,
      config: { mediaType: MEDIA_TYPES.config, size: config.size, digest: config.digest },
      layers: pushedLayers.map((l) => ({ mediaType: MEDIA_TYPES.layer, size: l.size, digest: l.digest })),
    }),
  );
  const res = await call('PUT', `${url}/v2/${repo}/manifests/${tag}`, [201], {
    auth,
    body: manifest,
    headers: { 'content-type': MEDIA_TYPES.manifest },
  });
  await res.body?.cancel();
  const manifestDigest = sha256Digest(manifest);
  const answered = res.headers.get('docker-content-digest');
  if (answered !== manifestDigest) throw new Error(`manifest digest ${answered} != ${manifestDigest}`);
  return { config, layers: pushedLayers, manifestDigest, manifest };
}

/** GET /v2/<repo>/blobs/<digest>, following the registry's redirect to storage if it sends one. */
export async function pullBlob(url: string, repo: string, digest: string, { auth }: AuthOption = {}): Promise<Buffer> {
  const res = await call('GET', `${url}/v2/${repo}/blobs/${digest}`, [200], { auth });
  return Buffer.from(await res.arrayBuffer());
}

export interface FetchedManifest {
  digest: string | null;
  mediaType: string | null;
  body: Buffer;
}

/** GET /v2/<repo>/manifests/<tag or digest> as a schema2 manifest. */
export async function getManifest(url: string, repo: string, reference: string, { auth }: AuthOption = {}): Promise<FetchedManifest> {
  const res = await call('GET', `${url}/v2/${repo}/manifests/${reference}`, [200], {
    auth,
    headers: { accept: MEDIA_TYPES.manifest },
  });
  return {
    digest: res.headers.get('docker-content-digest'),
    mediaType: res.headers.get('content-type'),
    body: Buffer.from(await res.arrayBuffer()),
  };
}
