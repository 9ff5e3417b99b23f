// purge-stale-uploads' inventory mode on moto_server, as one run per pass: a shard that dies after claiming its
// directories (S3 SlowDown past the SDK's retries) is retried by the Distributed Map and still purges what it
// claimed, and the pass's report counts every attempt; every pass leaves exactly one run-history object and one
// notification, like every other run of the job. With STORAGE_LEASE=true a pass and collect-garbage never run at
// once (issue 22 §6): the pass holds the registry-storage lease from its plan step to its merge.
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { INVENTORY_MAP, PASS_LEASE_RETRY } from '../../infra/constructs/purge-inventory.ts';
import { s3Client } from '../../shared/aws.ts';
import { decodeHistory } from '../../shared/history.ts';
import { acquireLease, leaseKey, LEASE_TTL_MS, releaseLease } from '../../shared/lease.ts';
import type { Report } from '../../shared/report.ts';
import { PURGE_PASSES_PREFIX } from '../../shared/purge-keys.ts';
import { repositoriesPrefix, uploadDirPrefix } from '../../shared/registry-layout.ts';
import { startMoto, type Moto, motoClientConfig } from '../../local/moto.ts';
import { runDistributedMap, runTask } from '../support/distributed-map.ts';
import { scanBucket, writeInventory } from '../support/inventory-writer.ts';

const BUCKET = 'purge-inventory-runs';
const HISTORY = 'purge-inventory-history';
const ROOT = 'fleet/b';
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:registry-fleet-alarms';
const H = 3_600_000;

type Step = (event: unknown, context?: object) => Promise<unknown>;

describe('purge-stale-uploads inventory passes are runs (moto)', () => {
  let moto: Moto;
  let s3: S3Client;
  let step: Step;
  /** The inventory Lambda of a fleet that runs collect-garbage (STORAGE_LEASE=true). */
  let leasedStep: Step;
  let collectGarbage: (event: unknown) => Promise<Report>;
  const sns = mockClient(SNSClient);
  /** ListParts calls left to fail with SlowDown (past the SDK's retries: thrown before its retry step). */
  let slowDowns = 0;
  // The pass clock: every object written now is 2 h old then (UPLOAD_MAX_AGE 1h, past the 1 h activity guard).
  const clock = () => new Date(Date.now() + 2 * H);

  async function seedStale(tag: number, count: number): Promise<string[]> {
    const dirs: string[] = [];
    for (let i = 0; i < count; i += 1) {
      const uuid = `${tag.toString(16).padStart(8, '0')}-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
      const repo = `team-${i % 3}/app`;
      const dir = uploadDirPrefix(ROOT, repo, uuid);
      await s3.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: `${dir}startedat`, Body: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }),
      );
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${dir}hashstates/sha256/0`, Body: randomBytes(64) }));
      await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `${dir}data` }));
      dirs.push(dir);
    }
    return dirs;
  }

  async function keysUnder(prefix: string, bucket = BUCKET): Promise<string[]> {
    const keys: string[] = [];
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix }))
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    return keys;
  }

  type Planned = { itemsKey: string; orphans: unknown };
  /** One pass as the state machine runs it; each Lambda invocation (a retry too) has its own request id. */
  async function pass(name: string, input: Record<string, unknown>, run = step): Promise<{ report: Report; attempts: number[] }> {
    const planned = (await run({ step: 'plan', pass: name, input }, { awsRequestId: `${name}-plan` })) as Planned;
    return shardsAndMerge(name, planned, run);
  }

  /** The Distributed Map, the orphan shard and the merge of a planned pass. */
  async function shardsAndMerge(name: string, planned: Planned, run = step): Promise<{ report: Report; attempts: number[] }> {
    const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: planned.itemsKey }));
    const items = JSON.parse((await res.Body?.transformToString()) ?? '[]') as unknown[];
    const map = await runDistributedMap(
      items,
      INVENTORY_MAP,
      (item, index, attempt) => run(item, { awsRequestId: `${name}-shard-${index}-${attempt}` }),
      { timeScale: 0.001 },
    );
    expect(map.failures).toEqual([]);
    await run(planned.orphans, { awsRequestId: `${name}-orphans` });
    await run(
      { step: 'merge', pass: name },
      { awsRequestId: `${name}-merge`, functionName: 'registry-fleet-purge-stale-uploads-inventory' },
    );
    const kept = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${PURGE_PASSES_PREFIX}${name}/report.json` }));
    return { report: JSON.parse((await kept.Body?.transformToString()) ?? '{}') as Report, attempts: map.attempts };
  }

  async function delivery(minutesAgo: number): Promise<string> {
    const rows = await scanBucket(s3, BUCKET, repositoriesPrefix(ROOT));
    // Two rows a data file: every upload directory (startedat + hash state) may straddle two shards.
    const written = await writeInventory(s3, BUCKET, BUCKET, rows, {
      format: 'CSV',
      rowsPerFile: 2,
      createdAt: new Date(clock().getTime() - minutesAgo * 60_000),
    });
    return written.manifestKey;
  }

  beforeAll(async () => {
    moto = await startMoto();
    s3 = new S3Client(motoClientConfig(moto));
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    await s3.send(new CreateBucketCommand({ Bucket: HISTORY }));
    Object.assign(process.env, moto.env);
    const { loadInventoryModeConfig } = await import('../../functions/purge-stale-uploads/inventory-config.ts');
    const { createInventoryStep } = await import('../../functions/purge-stale-uploads/inventory-step.ts');
    const config = loadInventoryModeConfig({
      ...moto.env,
      REGISTRY_BUCKET: BUCKET,
      REGISTRY_ROOT: ROOT,
      UPLOAD_MAX_AGE: '1h',
      HISTORY_BUCKET: HISTORY,
      NOTIFY_TOPIC_ARN: TOPIC,
    });
    step = createInventoryStep(config, { clock }) as Step;
    leasedStep = createInventoryStep({ ...config, storageLease: true }, { clock }) as Step;
    // collect-garbage as deployed (its handler's lease wiring), on the same bucket and root.
    Object.assign(process.env, { REGISTRY_BUCKET: BUCKET, REGISTRY_ROOT: ROOT });
    collectGarbage = (await import('../../functions/collect-garbage/handler.ts')).run as (event: unknown) => Promise<Report>;
    s3Client().middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'ListPartsCommand' && slowDowns > 0) {
          slowDowns -= 1;
          throw Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
        }
        return next(args);
      },
      { step: 'initialize', name: 'injectSlowDown' },
    );
  }, 60_000);

  beforeEach(() => {
    sns.reset();
    sns.on(PublishCommand).resolves({ MessageId: 'message-1' });
  });

  afterAll(async () => {
    sns.restore();
    s3?.destroy();
    await moto?.stop();
  });

  it('a shard retried after one SlowDown on its first ListParts still purges what it claimed; the pass report shows the retry', async () => {
    const stale = await seedStale(1, 6);
    const manifestKey = await delivery(20);
    slowDowns = 1;
    const { report, attempts } = await pass('retry-1', { manifestKey });
    expect(slowDowns).toBe(0);
    expect(Math.max(...attempts)).toBe(2);
    const retriedIndex = attempts.indexOf(2);

    // Every stale upload is gone: its directory and its multipart upload.
    for (const dir of stale) expect(await keysUnder(dir)).toEqual([]);
    const open = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: repositoriesPrefix(ROOT) }));
    expect(open.Uploads ?? []).toEqual([]);

    expect(report.summary).toEqual({ planned: 0, applied: stale.length, skipped: 0, failed: 0 });
    expect(report.details?.shards).toMatchObject({
      failed: [],
      missing: [],
      retried: [{ index: retriedIndex, attempts: 2, errors: [expect.stringMatching(/SlowDown/)] }],
    });
  });

  it('every pass leaves one history object (the whole merged report) and one notification, like every other run', async () => {
    const stale = await seedStale(2, 4);
    const manifestKey = await delivery(10);
    const { report } = await pass('history-1', { manifestKey, reason: 'nightly' });
    expect(report.summary).toMatchObject({ applied: stale.length, failed: 0 });

    const mine: Report[] = [];
    for (const key of await keysUnder('reports/job=purge-stale-uploads/', HISTORY)) {
      const object = await s3.send(new GetObjectCommand({ Bucket: HISTORY, Key: key }));
      const stored = decodeHistory<Report>(
        key,
        await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
      );
      if ((stored.details as { pass?: string } | undefined)?.pass === 'history-1') mine.push(stored);
    }
    expect(mine).toHaveLength(1);
    const [stored] = mine as [Report];
    expect(stored).toMatchObject({
      job: 'purge-stale-uploads',
      summary: report.summary,
      details: { mode: 'inventory', pass: 'history-1' },
    });
    expect(stored.actions.map((a) => a.target).sort()).toEqual(stale.map((d) => d.slice(repositoriesPrefix(ROOT).length, -1)).sort());

    const published = sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ TopicArn: TOPIC, Subject: expect.stringMatching(/APPLIED: applied 4 destructive actions/) });
    expect(published[0]?.Message).toContain(`s3://${HISTORY}/${stored.history && 'key' in stored.history ? stored.history.key : '?'}`);
  });

  describe('single-flight with collect-garbage (STORAGE_LEASE=true, issue 22 §6)', () => {
    const spec = { bucket: BUCKET, root: ROOT };
    const lease = async () => {
      const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: leaseKey(ROOT) }));
      return JSON.parse((await res.Body?.transformToString()) ?? '{}') as { holder: string; token: string; expiresAt: number };
    };
    const passFolder = (name: string) => keysUnder(`${PURGE_PASSES_PREFIX}${name}/`);

    it('while collect-garbage holds the lease a pass deletes nothing and its plan step is retried for longer than a GC run; after the release it purges', async () => {
      const stale = await seedStale(3, 4);
      const manifestKey = await delivery(10);
      const gc = await acquireLease(s3, spec, 'collect-garbage');
      expect(gc.acquired).toBe(true);

      const plan = (attempt: number) =>
        leasedStep({ step: 'plan', pass: 'held-1', input: { manifestKey } }, { awsRequestId: `plan-${attempt}` });
      const first = await plan(0).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(first).toMatchObject({ name: 'LeaseHeldError', message: expect.stringMatching(/held by collect-garbage until \d{4}-/) });
      const run = await runTask(PASS_LEASE_RETRY, plan, { timeScale: 0.0001 });
      expect(run.error?.name).toBe('LeaseHeldError');
      expect(run.attempts).toBe(PASS_LEASE_RETRY.maxAttempts + 1);
      // The pass waits out a GC run (15 min Lambda timeout) and the TTL of one that crashed, then fails visibly.
      expect(run.waitedSeconds.reduce((a, b) => a + b, 0) * 1000).toBeGreaterThan(Math.max(20 * 60_000, LEASE_TTL_MS + 15 * 60_000));
      expect(await passFolder('held-1')).toEqual([]);
      for (const dir of stale) expect((await keysUnder(dir)).length).toBe(2);
      expect((await lease()).holder).toBe('collect-garbage');

      // The GC run ends during the plan step's retries: the next try takes the lease and the pass purges.
      const retried = await runTask(
        PASS_LEASE_RETRY,
        async (attempt) => {
          if (attempt === 3 && gc.acquired) await releaseLease(s3, gc.lease);
          return (await plan(attempt)) as Planned;
        },
        { timeScale: 0.0001 },
      );
      expect(retried.attempts).toBe(3);
      const { report } = await shardsAndMerge('held-1', retried.result as Planned, leasedStep);
      expect(report.summary).toMatchObject({ applied: stale.length, failed: 0 });
      for (const dir of stale) expect(await keysUnder(dir)).toEqual([]);
      expect(await lease()).toMatchObject({ holder: 'purge-stale-uploads inventory pass held-1', expiresAt: 0 });
    });

    it('while a pass holds the lease (plan to merge) collect-garbage plans nothing; after the merge released it, it runs', async () => {
      const stale = await seedStale(4, 2);
      const manifestKey = await delivery(10);
      const planned = (await leasedStep({ step: 'plan', pass: 'gc-waits-1', input: { manifestKey } })) as Planned;
      const held = await lease();
      expect(held.holder).toBe('purge-stale-uploads inventory pass gc-waits-1');
      // As long as the pass may run (its state machine's timeout), not a Lambda run's TTL.
      expect(held.expiresAt).toBeGreaterThan(Date.now() + 7 * H);
      const descriptor = JSON.parse(
        (await (
          await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${PURGE_PASSES_PREFIX}gc-waits-1/pass.json` }))
        ).Body?.transformToString()) ?? '{}',
      ) as { lease?: { token: string; key: string } };
      expect(descriptor.lease).toMatchObject({ token: held.token, key: leaseKey(ROOT) });
      // A plan step retried after it died holding the lease gets its own lease back.
      await expect(leasedStep({ step: 'plan', pass: 'gc-waits-1', input: { manifestKey } })).resolves.toMatchObject({ pass: 'gc-waits-1' });

      const during = await collectGarbage({ reason: 'during the pass' });
      expect(during.details?.lease).toMatchObject({ heldBy: 'purge-stale-uploads inventory pass gc-waits-1' });
      expect(during.actions).toEqual([]);
      expect(during.summary).toMatchObject({ planned: 0, applied: 0 });

      const { report } = await shardsAndMerge('gc-waits-1', planned, leasedStep);
      expect(report.summary).toMatchObject({ applied: stale.length, failed: 0 });
      expect((await lease()).expiresAt).toBe(0);
      // Its own precondition (a delete it makes can be undone), which the run's refusal above never reached.
      await s3.send(new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
      const after = await collectGarbage({ reason: 'after the pass' });
      expect(after.details?.lease).toBeUndefined();
      expect((await lease()).holder).toBe('collect-garbage'); // it took the lease, and gave it back
      expect((await lease()).expiresAt).toBe(0);
    });

    it('a failed pass releases its lease in the merge too', async () => {
      await seedStale(5, 1);
      const manifestKey = await delivery(10);
      await leasedStep({ step: 'plan', pass: 'failed-1', input: { manifestKey } });
      expect((await lease()).expiresAt).toBeGreaterThan(Date.now());
      const mapError = { Error: 'States.ExceedToleratedFailureThreshold', Cause: 'every shard failed' };
      await expect(leasedStep({ step: 'merge', pass: 'failed-1', mapError })).rejects.toMatchObject({ name: 'JobFailedError' });
      expect(await lease()).toMatchObject({ holder: 'purge-stale-uploads inventory pass failed-1', expiresAt: 0 });
    });
  });
});
