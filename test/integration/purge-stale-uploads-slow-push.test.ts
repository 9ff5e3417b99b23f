// A 2-hour single-PATCH push, as S3 shows it: the upload's objects and its multipart upload look old, only the
// parts keep arriving. The real docker-registry 2.8 streams one large blob (several S3 parts) to moto in ONE slow
// PATCH; while it streams, the purge bundle runs with the smallest allowed age through an S3 proxy that moves
// every time back by 2 h except the parts' times. The run must keep the upload (kept-active), the push must then
// complete (201) and the blob pull byte-identical.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, ListMultipartUploadsCommand, ListPartsCommand, S3Client } from '@aws-sdk/client-s3';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import type { Report } from '../../shared/report.ts';
import { startMoto, type Moto, motoClientConfig } from '../../local/moto.ts';
import { freePort } from '../../local/ports.ts';
import { completeUpload, pullBlob, sha256Digest, startRegistry, startUpload, type Registry } from '../../local/registry.ts';
import { startS3Proxy, type S3Proxy } from '../../local/s3-proxy.ts';

const ROOT_DIR = join(import.meta.dirname, '..', '..');
const BUNDLE = join(ROOT_DIR, 'dist', 'functions', 'purge-stale-uploads', 'index.mjs');
const BUCKET = 'slow-push';
const REPO = 'org/team/big';
const MIB = 1 << 20;
/** The S3 driver's smallest part (distribution's minChunkSize); with `chunksize` at it, a part is flushed per 5 MiB. */
const CHUNK = 5 * MIB;
/**
 * distribution 2.8's writer keeps two part buffers and uploads the first once both are full (2 × chunksize
 * written), then one part per further chunksize: 21 MiB written = 3 parts on S3 while the request is still open.
 */
const BEFORE_PURGE = 4 * CHUNK + MIB;
const AFTER_PURGE = 2 * CHUNK + 12_345;
const TWO_HOURS = 2 * 3_600_000;

/** One PATCH with no Content-Range and no length (chunked transfer encoding): how docker streams a layer. */
function streamingPatch(location: string) {
  const url = new URL(location);
  let answer: (r: { status: number; location: string | null; body: string }) => void;
  const done = new Promise<{ status: number; location: string | null; body: string }>((resolve) => (answer = resolve));
  const req = http.request(url, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
    let body = '';
    res.on('data', (c: Buffer) => (body += c.toString()));
    res.on('end', () => answer({ status: res.statusCode ?? 0, location: res.headers.location ?? null, body }));
  });
  req.on('error', (error) => answer({ status: 0, location: null, body: String(error) }));
  const write = (bytes: Buffer): Promise<void> =>
    new Promise((resolve, reject) => req.write(bytes, (error) => (error ? reject(error) : resolve())));
  return { write, end: () => req.end(), done };
}

/** Runs the built bundle the way Lambda would (scripts/lib/run-bundle.mjs) and returns its report. */
async function runBundle(
  env: Record<string, string>,
  event: unknown,
): Promise<{ ok: boolean; report?: Report; error?: { message: string } }> {
  const dir = await mkdtemp(join(tmpdir(), 'slow-push-'));
  try {
    await writeFile(join(dir, 'event.json'), JSON.stringify(event));
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_') && !k.startsWith('REGISTRY_')));
    const child = spawn(
      process.execPath,
      [join(ROOT_DIR, 'scripts/lib/run-bundle.mjs'), BUNDLE, join(dir, 'event.json'), join(dir, 'out.json'), '120'],
      {
        env: { ...base, ...env, POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    await new Promise((resolve) => child.on('exit', resolve));
    const out = await readFile(join(dir, 'out.json'), 'utf8').catch(
      () => `{"ok":false,"error":{"message":"no output: ${JSON.stringify(stderr)}"}}`,
    );
    return JSON.parse(out) as { ok: boolean; report?: Report; error?: { message: string } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('purge-stale-uploads keeps a slow single-PATCH push that looks 2 h old', () => {
  let moto: Moto;
  let proxy: S3Proxy;
  let registry: Registry;
  let s3: S3Client;

  beforeAll(async () => {
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build first`);
    moto = await startMoto();
    s3 = new S3Client(motoClientConfig(moto));
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const config = parse(
      renderRegistryConfig({
        bucket: BUCKET,
        region: 'us-east-1',
        regionEndpoint: moto.endpoint,
        httpAddr: `127.0.0.1:${await freePort()}`,
        httpSecret: 'slow-push-test-secret-0123456789abcdef',
        redirectDisable: true,
      }),
    ) as { storage: { s3: Record<string, unknown> } };
    config.storage.s3.chunksize = CHUNK;
    registry = await startRegistry({ config: stringify(config) }); // the registry talks to moto directly
    proxy = await startS3Proxy(moto.endpoint); // only the purge sees the shifted times
  });

  afterAll(async () => {
    await registry?.stop();
    await proxy?.stop();
    s3?.destroy();
    await moto?.stop();
  });

  it('reports kept-active with the part time, and the push completes and pulls byte-identical', async () => {
    const blob = randomBytes(BEFORE_PURGE + AFTER_PURGE);
    const upload = await startUpload(registry.url, REPO);
    const patch = streamingPatch(upload.location);
    for (let at = 0; at < BEFORE_PURGE; at += MIB) await patch.write(blob.subarray(at, Math.min(at + MIB, BEFORE_PURGE)));

    // Wait until the driver has flushed its parts to S3 (read on moto directly).
    const dataKey = `docker/registry/v2/repositories/${REPO}/_uploads/${upload.uuid}/data`;
    let parts = 0;
    for (let i = 0; i < 200 && parts < 3; i += 1) {
      const mpu = (await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: dataKey }))).Uploads?.[0];
      if (mpu?.UploadId)
        parts = (await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: dataKey, UploadId: mpu.UploadId }))).Parts?.length ?? 0;
      if (parts < 3) await sleep(50);
    }
    expect(parts, 'S3 parts written while the PATCH is still open').toBeGreaterThanOrEqual(3);

    proxy.shiftTimes({ byMs: TWO_HOURS, parts: false });
    const result = await runBundle({ ...moto.env, AWS_ENDPOINT_URL: proxy.endpoint, REGISTRY_BUCKET: BUCKET }, { maxAge: '1h' });
    proxy.shiftTimes(undefined);
    expect(result.error?.message).toBeUndefined();
    const report = result.report as Report;
    expect(report.details).toMatchObject({ maxAge: '1h' });
    expect(report.observed).toMatchObject({ uploads: 1, keptActive: 1 });
    expect(report.summary).toMatchObject({ applied: 0, failed: 0 });
    const kept = report.actions.find((a) => a.target === `${REPO}/_uploads/${upload.uuid}`);
    expect(kept).toMatchObject({ status: 'skipped', detail: { held: 'active' } });
    expect(kept?.reason).toMatch(
      /^started 2h ago but part \d+ of its multipart upload was uploaded \d+s ago \(\d{4}-\d\d-\d\dT[\d:.]+Z\): a push in flight is kept$/,
    );
    expect((report.details?.requests as Record<string, number>).ListParts).toBeGreaterThanOrEqual(1);

    // The push goes on where it was, then completes.
    for (let at = BEFORE_PURGE; at < blob.length; at += MIB) await patch.write(blob.subarray(at, Math.min(at + MIB, blob.length)));
    patch.end();
    const patched = await patch.done;
    expect(patched.status, patched.body).toBe(202);
    await completeUpload(new URL(patched.location as string, registry.url).toString(), new Uint8Array(0), sha256Digest(blob));
    expect((await pullBlob(registry.url, REPO, sha256Digest(blob))).equals(blob)).toBe(true);
  });
});
