// purge-stale-uploads' inventory mode on moto_server, as one run per pass: a shard that dies after claiming its
// directories (S3 SlowDown past the SDK's retries) is retried by the Distributed Map and still purges what it
// claimed, and the pass's report counts every attempt; every pass leaves exactly one run-history object and one
// notification, like every other run of the job.
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { INVENTORY_MAP } from '../../infra/constructs/purge-inventory.ts';
import { s3Client } from '../../shared/aws.ts';
import { decodeHistory } from '../../shared/history.ts';
import type { Report } from '../../shared/report.ts';
import { PURGE_PASSES_PREFIX } from '../../shared/purge-keys.ts';
import { repositoriesPrefix, uploadDirPrefix } from '../../shared/registry-layout.ts';
import { startMoto, type Moto } from '../../local/moto.ts';
import { runDistributedMap } from '../support/distributed-map.ts';
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

  /** One pass as the state machine runs it; each Lambda invocation (a retry too) has its own request id. */
  async function pass(name: string, input: Record<string, unknown>): Promise<{ report: Report; attempts: number[] }> {
    const planned = (await step({ step: 'plan', pass: name, input }, { awsRequestId: `${name}-plan` })) as {
      itemsKey: string;
      orphans: unknown;
    };
    const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: planned.itemsKey }));
    const items = JSON.parse((await res.Body?.transformToString()) ?? '[]') as unknown[];
    const map = await runDistributedMap(
      items,
      INVENTORY_MAP,
      (item, index, attempt) => step(item, { awsRequestId: `${name}-shard-${index}-${attempt}` }),
      { timeScale: 0.001 },
    );
    expect(map.failures).toEqual([]);
    await step(planned.orphans, { awsRequestId: `${name}-orphans` });
    await step(
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
    s3 = new S3Client({
      endpoint: moto.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
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
});
