// collect-garbage against the real docker-registry 2.8 writing to moto_server (versioned bucket), with skopeo
// as the client. An image is deleted through the registry's own DELETE; the GC reclaims its unique layers and
// keeps the layer another repository shares. While the run sweeps (between its re-check and its deletes), one
// client pushes an image re-using the deleted image's layers (skopeo HEADs them as existing and does not
// re-upload them) and another cross-repo mounts a candidate blob and pushes over it: the run restores what they
// need and reports `restored`, and every image pulls byte-identical. Also: unversioned bucket → refusal and
// nothing deleted; a lease held by purge-stale-uploads → nothing done; a dry run changes nothing; a manual
// restore by digest brings a reclaimed blob back.
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCollectGarbageConfig } from '../../functions/collect-garbage/config.ts';
import { job } from '../../functions/collect-garbage/job.ts';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import { startMoto, type Moto, motoClientConfig } from '../../local/moto.ts';
import { freePort } from '../../local/ports.ts';
import { startS3Proxy, type S3Proxy } from '../../local/s3-proxy.ts';
import { startRegistry, type Registry } from '../../local/registry.ts';
import { s3Client } from '../../shared/aws.ts';
import { JobFailedError } from '../../shared/errors.ts';
import { createJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { leaseKey, withLease } from '../../shared/lease.ts';
import { blobsOf, layerOf, skopeoPull, skopeoPush, writeOci, type OciImage } from '../support/gc-oci.ts';

const BUCKET = 'gc-it';
const V2 = 'docker/registry/v2';
const H = 3_600_000;
const blobKey = (d: string) => `${V2}/blobs/sha256/${d.slice(7, 9)}/${d.slice(7)}/data`;
const linkKey = (repo: string, d: string) => `${V2}/repositories/${repo}/_layers/sha256/${d.slice(7)}/link`;

describe('collect-garbage on docker-registry 2.8 + moto (versioned) + skopeo', () => {
  let moto: Moto;
  let proxy: S3Proxy;
  let s3: S3Client;
  let registry: Registry;
  let run: (event: unknown) => Promise<Report>;
  const shared = layerOf('shared');
  const unique1 = layerOf('unique-1');
  const unique2 = layerOf('unique-2');
  let old: OciImage;
  let base: OciImage;
  let keep: OciImage;

  const exists = (key: string) =>
    s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })).then(
      async (r) => (await r.Body?.transformToByteArray(), true),
      () => false,
    );
  /** The registry's keys (the lease the job writes lives outside, under control-plane/). */
  async function keys(): Promise<string[]> {
    const out: string[] = [];
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: BUCKET, Prefix: `${V2}/` }))
      for (const o of page.Contents ?? []) out.push(o.Key ?? '');
    return out.sort();
  }
  const runGc = async (event: unknown): Promise<Report> => {
    try {
      return await run(event);
    } catch (error) {
      if (error instanceof JobFailedError) return error.report as Report;
      throw error;
    }
  };

  beforeAll(async () => {
    moto = await startMoto();
    proxy = await startS3Proxy(moto.endpoint);
    // The job's shared client (made on first use from the SDK's environment) goes through the proxy; the registry does not.
    Object.assign(process.env, { ...moto.env, AWS_ENDPOINT_URL: proxy.endpoint });
    s3 = new S3Client(motoClientConfig(moto));
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const port = await freePort();
    registry = await startRegistry({
      config: renderRegistryConfig({
        bucket: BUCKET,
        region: 'us-east-1',
        regionEndpoint: moto.endpoint,
        httpAddr: `127.0.0.1:${port}`,
        httpSecret: 'collect-garbage-it-secret-0123456789abcdef',
        deleteEnabled: true,
        redirectDisable: true,
      }),
    });
    old = writeOci([unique1, unique2, shared], 'old');
    base = writeOci([shared], 'base');
    keep = writeOci([layerOf('keep')], 'keep');
    await skopeoPush(old, registry.url, 'team/app:old');
    await skopeoPush(keep, registry.url, 'team/app:keep');
    await skopeoPush(base, registry.url, 'library/base:v1');
    // The registry's own DELETE by digest: revision link and tag gone, the blobs and _layers links left behind.
    const res = await fetch(`${registry.url}/v2/team/app/manifests/${old.manifest}`, { method: 'DELETE' });
    expect(res.status).toBe(202);
    // Everything written so far looks 3 h old to the job (past the 1 h grace, long before any mark); what the racing
    // clients write later keeps its real time, as it would on S3.
    await sleep(1_100);
    proxy.shiftTimes({ byMs: 3 * H, before: new Date() });
    await sleep(1_100);
    const config = loadCollectGarbageConfig({
      ...moto.env,
      AWS_ENDPOINT_URL: proxy.endpoint,
      REGISTRY_BUCKET: BUCKET,
      GC_GRACE: '1h',
      GC_SETTLE: '1s',
      LIST_CONCURRENCY: '4',
    });
    run = createJob(
      withLease(
        job,
        (c) => ({ bucket: c.bucket, root: c.root }),
        (c) => c.s3,
      ),
      config,
    ).run;
  });

  afterAll(async () => {
    await registry?.stop();
    s3?.destroy();
    await proxy?.stop();
    await moto?.stop();
  });

  it('refuses to sweep an unversioned bucket and deletes nothing', async () => {
    const before = await keys();
    try {
      const report = await runGc({});
      expect(report.refusals?.[0]?.reason).toMatch(/versioning is Unversioned/);
      expect(report.summary.applied).toBe(0);
      expect(await keys()).toEqual(before);
    } finally {
      await s3.send(new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
    }
  });

  it('does nothing while purge-stale-uploads holds the lease', async () => {
    const key = leaseKey('');
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: key,
        Body: JSON.stringify({ holder: 'purge-stale-uploads', token: 't', expiresAt: Date.now() + 600_000 }),
      }),
    );
    const before = await keys();
    const report = await runGc({});
    expect(report.details?.lease).toMatchObject({ heldBy: 'purge-stale-uploads' });
    expect(report.actions).toEqual([]);
    expect(await keys()).toEqual(before);
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
  });

  it("dry run: plans the deleted image's unique blobs and dangling links, keeps the shared layer, changes nothing", async () => {
    const before = await keys();
    const report = await runGc({ dryRun: true });
    const planned = (type: string) =>
      report.actions
        .filter((a) => a.type === type && a.status === 'planned')
        .map((a) => a.target)
        .sort();
    expect(planned('delete-blob')).toEqual([old.config, old.layers[0], old.layers[1], old.manifest].sort());
    expect(planned('delete-layer-link')).toEqual([old.config, ...old.layers].map((d) => `team/app/_layers/${d}`).sort());
    expect(await keys()).toEqual(before);
  });

  it('sweeps while a push re-uses the layers and a mount takes a candidate: restores both, and every image pulls byte-identical', async () => {
    const again = writeOci([unique1, shared], 'again');
    const mounted = writeOci([unique2], 'mounted');
    let raced = '';
    let done = false;
    const logAt = registry.logs().length;
    // Between the run's re-check and its first delete: the two clients act, the run does not know.
    s3Client().middlewareStack.add(
      (next, context) => async (args) => {
        if (!done && context.commandName === 'DeleteObjectsCommand') {
          done = true;
          raced = await skopeoPush(again, registry.url, 'team/app:again');
          const m = await fetch(`${registry.url}/v2/other/blobs/uploads/?mount=${old.layers[1]}&from=team/app`, { method: 'POST' });
          expect(m.status).toBe(201);
          await skopeoPush(mounted, registry.url, 'other/mounted:v1');
        }
        return next(args);
      },
      { step: 'initialize', name: 'gc-race' },
    );
    const report = await runGc({});
    s3Client().middlewareStack.remove('gc-race');
    expect(done).toBe(true);
    // skopeo found the re-used layers in place (HEAD 200) and uploaded only the new config, not them.
    const log = registry.logs().slice(logAt);
    expect(log).toMatch(new RegExp(`HEAD /v2/team/app/blobs/${old.layers[0]} HTTP/1.1" 200`));
    expect(log).not.toContain(`digest=${old.layers[0]}`);
    expect(raced).toContain('Writing manifest');
    const restored = report.details?.restored as string[];
    expect(restored).toEqual(expect.arrayContaining([old.layers[0], old.layers[1], `team/app/_layers/${old.layers[0]}`]));
    expect(report.summary.failed).toBe(0);
    // Reclaimed: the deleted image's own config and manifest; kept: the shared layer, the re-used and mounted ones.
    expect(await exists(blobKey(old.config))).toBe(false);
    expect(await exists(blobKey(old.manifest))).toBe(false);
    for (const d of [base.layers[0], old.layers[0], old.layers[1]]) expect(await exists(blobKey(d as string))).toBe(true);
    expect(await exists(linkKey('team/app', old.layers[0] as string))).toBe(true);
    for (const [image, ref] of [
      [again, 'team/app:again'],
      [mounted, 'other/mounted:v1'],
      [base, 'library/base:v1'],
      [keep, 'team/app:keep'],
    ] as const) {
      const pulled = await skopeoPull(registry.url, ref);
      const local = blobsOf(image);
      for (const d of [...image.layers, image.config]) expect(pulled.get(d)?.equals(local.get(d) as Buffer), `${ref} ${d}`).toBe(true);
    }
  });

  it('a second run finds nothing more to do', async () => {
    const report = await runGc({});
    expect(report.actions.filter((a) => a.status === 'applied')).toEqual([]);
  });

  it('restores a reclaimed blob by digest ({"restore": [...]}), and rejects a bad digest before any change', async () => {
    await expect(run({ restore: ['sha256:nope'] })).rejects.toThrow(
      /restore: expected a list of 1 to 1000 blob digests.*got "sha256:nope"/,
    );
    const report = await runGc({ restore: [old.config] });
    expect(report.actions.map((a) => [a.type, a.status])).toEqual([['restore-blob', 'applied']]);
    expect(await exists(blobKey(old.config))).toBe(true);
  });
});
