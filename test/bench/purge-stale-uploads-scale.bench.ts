/**
 * purge-stale-uploads at scale (`npm run bench -- purge-stale-uploads-scale`).
 *
 * 1. Resumable listing: a registry of 10⁶ keys in moto (links through moto's in-process seeding channel, the
 *    uploads' `startedat` and multipart uploads over HTTP; test/bench/moto-scale.py adds a sorted key index so a
 *    listing page costs O(page) instead of moto's O(bucket)). One unbounded dry run gives the plan and the request
 *    count; then real runs under a small wall-clock budget each, until the listing completes and the purge is done:
 *    runs needed, total requests against the floor, and the plan against the unbounded one.
 * 2. Inventory shards: a generated S3 Inventory data file of 10⁶ rows (0.1 % under `_uploads/`), Parquet and
 *    gzip CSV, read 10 times each as 10 shards would (10⁷ rows per format) through the shard's reader against moto:
 *    rows/s, MB/s, peak memory; then one whole shard (read + live re-check) through the Lambda entry.
 * 3. The projection for 10⁸ keys: inventory mode (shards, wall time, GB-s, requests, dollars) against listing mode.
 */
import { createHash, randomUUID } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { s3Client } from '../../shared/aws.ts';
import { logger } from '../../shared/observability.ts';
import { createJob } from '../../shared/job.ts';
import type { Report } from '../../shared/report.ts';
import { PURGE_INVENTORY_ID, PURGE_INVENTORY_PREFIX } from '../../shared/purge-keys.ts';
import { loadPurgeStaleUploadsConfig } from '../../functions/purge-stale-uploads/config.ts';
import { readInventoryFile, type InventoryFormat } from '../../functions/purge-stale-uploads/inventory.ts';
import { job } from '../../functions/purge-stale-uploads/job.ts';
import { loadInventoryModeConfig } from '../../functions/purge-stale-uploads/inventory-config.ts';
import { createInventoryStep } from '../../functions/purge-stale-uploads/inventory-step.ts';
import { passKeys } from '../../functions/purge-stale-uploads/shard.ts';
import { INVENTORY_MAP } from '../../infra/constructs/purge-inventory.ts';
import { CSV_SCHEMA, encodeInventoryFile, PARQUET_SCHEMA, type InventoryRow } from '../support/inventory-writer.ts';
import { seedLayout, uuid } from '../support/purge-layout.ts';
import { startSeededMoto, type SeededMoto } from '../support/seeded-moto.ts';

const BUCKET = 'bench-scale';
const ROOT = '';
const H = 3_600_000;
const SPEC = { namespaces: 10, reposPerNamespace: 100, linksPerRepo: 1000, stale: 300, fresh: 100, cancelled: 50, orphans: 20 };
/**
 * The budget of each budgeted run, in listing pages (the time it buys): the run's clock runs out once it has taken
 * this many ListObjectsV2 pages, so the run that completes the listing still has time to purge.
 */
const RUN_BUDGET_PAGES = 150;
const ROWS_PER_FILE = 1_000_000;
const SHARDS = 10;
const UPLOAD_EVERY = 1000; // 0.1 % of the rows are under _uploads/
const progress = (m: string): void => console.error(`  [purge-stale-uploads-scale] ${m}`);
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const n = (x: number): string => x.toLocaleString('en-US');
const usd = (x: number): string => `$${x < 0.01 ? x.toFixed(4) : x.toFixed(2)}`;

// Prices (us-east-1, list): S3 Standard LIST/PUT $0.005 per 1000, GET $0.0004 per 1000; Inventory $0.0025 per
// million objects listed; Step Functions Standard $0.025 per 1000 transitions; Lambda arm64 $0.0000133334 per GB-s.
const PRICE = {
  list: 0.005 / 1000,
  put: 0.005 / 1000,
  get: 0.0004 / 1000,
  inventory: 0.0025 / 1e6,
  transition: 0.025 / 1000,
  gbSecond: 0.0000133334,
};

type Requests = Record<string, number>;
const requestsOf = (r: Report): Requests => (r.details?.requests ?? {}) as Requests;
const planOf = (r: Report) =>
  r.actions.filter((a) => a.status !== 'skipped').map(({ type, target, reason }) => `${type} ${target} ${reason}`);

async function listingPart(moto: SeededMoto, s3: S3Client) {
  const clock0 = new Date(Date.now() + 2 * H);
  const started = Date.now();
  const layout = await seedLayout(moto, s3, BUCKET, ROOT, SPEC, clock0);
  const seedMs = Date.now() - started;
  progress(`seeded ${n(layout.keys)} keys in ${secs(seedMs)}`);
  const env = {
    ...moto.env,
    REGISTRY_BUCKET: BUCKET,
    UPLOAD_MAX_AGE: '1h',
    STARTEDAT_READ_WINDOW: '876000h',
    LIST_CONCURRENCY: '8',
    MAX_DELETES_PER_RUN: '1000000',
  };
  const runner = (clock: Date) => createJob(job, loadPurgeStaleUploadsConfig(env), { clock: () => clock }).run;

  let t = Date.now();
  const unbounded = await runner(clock0)({ dryRun: true }, {});
  const unboundedMs = Date.now() - t;
  progress(`unbounded dry run: ${secs(unboundedMs)}, ${requestsOf(unbounded).total} requests`);

  // The budget is counted in pages of the tree listing only: the one-upload prefix listings of apply's re-check
  // (counted apart) come after the listing and must not eat the time the listing leaves to the run.
  let pages = 0;
  let recheckLists = 0;
  s3Client().middlewareStack.add(
    (next, context) => async (args) => {
      const prefix = (args.input as { Prefix?: string }).Prefix ?? '';
      if (context.commandName === 'ListObjectsV2Command') {
        if (prefix.includes('/_uploads/')) recheckLists += 1;
        else pages += 1;
      }
      return next(args);
    },
    { step: 'initialize', name: 'countListPages' },
  );
  const runs: { report: Report; ms: number }[] = [];
  for (let i = 0; i < 60; i += 1) {
    t = Date.now();
    const start = pages;
    const budget = { getRemainingTimeInMillis: () => (pages - start >= RUN_BUDGET_PAGES ? 1_000 : 600_000) };
    const report = await runner(new Date(clock0.getTime() + i * 20 * 60_000))({}, budget);
    runs.push({ report, ms: Date.now() - t });
    const listing = report.details?.listing as { status: string; keysListed: number };
    progress(
      `budgeted run ${i + 1}: ${listing.status}, ${n(listing.keysListed)} keys so far, ${requestsOf(report).total} requests, ${secs(Date.now() - t)}`,
    );
    if (listing.status === 'complete') break;
  }
  const last = runs.at(-1)?.report as Report;
  const total = runs.reduce((s, r) => s + (requestsOf(r.report).total ?? 0), 0);
  const byOp: Requests = {};
  for (const r of runs) for (const [op, c] of Object.entries(requestsOf(r.report))) if (op !== 'total') byOp[op] = (byOp[op] ?? 0) + c;
  const done = last.details?.done as { objectsDeleted: number; multipartUploadsAborted: number };
  // What any purge of this bucket must request: every list page, each startedat this layout makes it read (the
  // object times are all "now": only the content decides), one DeleteObjects per 1000 keys, one abort per upload.
  const startedAtReads = Number(last.observed.startedAtReads);
  const pagesFloor = Math.ceil(layout.keys / 1000);
  const floor = pagesFloor + startedAtReads + Math.ceil(done.objectsDeleted / 1000) + done.multipartUploadsAborted + 1;
  const listPages = (byOp.ListObjectsV2 ?? 0) - recheckLists;
  // The activity reads (ListParts in observe, the re-check's prefix listing and ListParts): one request each is
  // what any purge that keeps a push in flight alive must pay; the floor with them is the comparable one.
  const activityReads = (byOp.ListParts ?? 0) + recheckLists;
  const floorWithReads = floor + activityReads;
  // The report lists at most 200 actions: compare those, and that every planned action was applied.
  const samePlan = JSON.stringify(planOf(last)) === JSON.stringify(planOf(unbounded)) && last.summary.applied === unbounded.summary.planned;
  const notStarted = last.actions.filter((a) => a.status === 'skipped' && a.reason.startsWith('not started')).length;
  return {
    layout,
    seedMs,
    unbounded,
    unboundedMs,
    runs,
    total,
    byOp,
    floor,
    floorWithReads,
    activityReads,
    recheckLists,
    samePlan,
    notStarted,
    last,
    startedAtReads,
    pagesFloor,
    listPages,
  };
}

interface ReadResult {
  format: InventoryFormat;
  fileBytes: number;
  encodeMs: number;
  rows: number;
  uploadRows: number;
  bytes: number;
  ms: number;
  perShardMs: number[];
  gets: number;
  peakRssMb: number;
  peakHeapMb: number;
}

function generatedRows(): InventoryRow[] {
  const rows: InventoryRow[] = [];
  const base = Date.parse('2026-11-20T03:00:00Z');
  for (let i = 0; i < ROWS_PER_FILE; i += 1) {
    const repo = `ns-${i % 37}/repo-${(i * 7919) % 5003}`;
    const key =
      i % UPLOAD_EVERY === 0
        ? `docker/registry/v2/repositories/${repo}/_uploads/${uuid(i, 9)}/startedat`
        : `docker/registry/v2/repositories/${repo}/_layers/sha256/${createHash('sha256').update(String(i)).digest('hex')}/link`;
    rows.push({ key, size: 71, lastModified: base - (i % 86_400) * 1000 });
  }
  return rows;
}

async function readPart(s3: S3Client, rows: InventoryRow[], format: InventoryFormat): Promise<ReadResult & { key: string }> {
  let t = Date.now();
  const body = encodeInventoryFile(BUCKET, rows, format, 100_000);
  const encodeMs = Date.now() - t;
  const key = `${PURGE_INVENTORY_PREFIX}${BUCKET}/${PURGE_INVENTORY_ID}/data/${randomUUID()}.${format === 'CSV' ? 'csv.gz' : 'parquet'}`;
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
  let gets = 0;
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'GetObjectCommand') gets += 1;
      return next(args);
    },
    { step: 'initialize', name: `countGets${format}` },
  );
  global.gc?.();
  const baseRss = process.memoryUsage().rss;
  let peakRss = baseRss;
  let peakHeap = 0;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 20);
  const stats = { rows: 0, uploadRows: 0, bytesRead: 0 };
  const perShardMs: number[] = [];
  const columns = format === 'CSV' ? CSV_SCHEMA.split(', ') : ['bucket', 'key', 'size', 'last_modified_date'];
  t = Date.now();
  for (let shard = 0; shard < SHARDS; shard += 1) {
    const s = Date.now();
    await readInventoryFile(
      s3,
      { bucket: BUCKET, file: { key, size: body.byteLength }, format, columns, now: Date.now(), signal: new AbortController().signal },
      stats,
    );
    perShardMs.push(Date.now() - s);
  }
  const ms = Date.now() - t;
  clearInterval(sampler);
  s3.middlewareStack.remove(`countGets${format}`);
  progress(`${format}: ${n(stats.rows)} rows in ${secs(ms)} (${n(Math.round((stats.rows * 1000) / ms))} rows/s)`);
  return {
    format,
    key,
    fileBytes: body.byteLength,
    encodeMs,
    rows: stats.rows,
    uploadRows: stats.uploadRows,
    bytes: stats.bytesRead,
    ms,
    perShardMs,
    gets,
    peakRssMb: (peakRss - baseRss) / 2 ** 20,
    peakHeapMb: peakHeap / 2 ** 20,
  };
}

/** One whole shard through the Lambda entry (dry): read + pre-plan + live re-check of its candidates. */
async function wholeShard(moto: SeededMoto, parquet: { key: string; fileBytes: number }) {
  const manifestKey = `${PURGE_INVENTORY_PREFIX}${BUCKET}/${PURGE_INVENTORY_ID}/2026-11-20T01-00Z/manifest.json`;
  const now = Date.parse('2026-11-27T03:00:00Z');
  const manifest = {
    sourceBucket: BUCKET,
    destinationBucket: `arn:aws:s3:::${BUCKET}`,
    version: '2016-11-30',
    creationTimestamp: String(now - 2 * H),
    fileFormat: 'Parquet',
    fileSchema: PARQUET_SCHEMA,
    files: [{ key: parquet.key, size: parquet.fileBytes, MD5checksum: '0' }],
  };
  await s3Client().send(new PutObjectCommand({ Bucket: BUCKET, Key: manifestKey, Body: JSON.stringify(manifest) }));
  const step = createInventoryStep(loadInventoryModeConfig({ ...moto.env, REGISTRY_BUCKET: BUCKET, UPLOAD_MAX_AGE: '168h' }), {
    clock: () => new Date(now),
  });
  const planned = (await step({ step: 'plan', pass: 'bench-1', input: { dryRun: true, manifestKey } })) as { shards: number };
  const t = Date.now();
  await step({ step: 'shard', pass: 'bench-1', index: 0, dryRun: true }, { awsRequestId: 'bench-shard-0' });
  const ms = Date.now() - t;
  await step({ step: 'shard', pass: 'bench-1', index: 1, dryRun: true }); // the orphan shard, as after the map
  await step({ step: 'merge', pass: 'bench-1' });
  const res = await s3Client().send(
    new GetObjectCommand({
      Bucket: BUCKET,
      Key: passKeys(loadInventoryModeConfig({ ...moto.env, REGISTRY_BUCKET: BUCKET }), 'bench-1').attempt(0, 'bench-shard-0'),
    }),
  );
  const report = JSON.parse((await res.Body?.transformToString()) ?? '{}') as Report;
  return { ms, report, shards: planned.shards };
}

/** Stale uploads a nightly pass meets at 10⁸ keys (steady state: the day's abandoned pushes; a first pass meets the backlog). */
const STALE_PER_PASS = 10_000;

function projection(readParquet: ReadResult, shardReport: Report, shardMs: number, listing: Awaited<ReturnType<typeof listingPart>>) {
  const keys = 1e8;
  const rowsPerSecond = readParquet.rows / (readParquet.ms / 1000);
  // S3 splits a large inventory over many data files; assume 10⁶ rows a file (what the bench read).
  const files = Math.ceil(keys / ROWS_PER_FILE);
  const readSeconds = keys / rowsPerSecond;
  const inv = shardReport.details?.inventory as { candidates: number; rows: number };
  // The live re-check's cost per candidate, from the whole shard (its time beyond reading, over its candidates).
  const recheckSecondsPerCandidate = Math.max(0, shardMs / 1000 - readParquet.perShardMs[0]! / 1000) / Math.max(1, inv.candidates);
  const shardSeconds = readSeconds + recheckSecondsPerCandidate * STALE_PER_PASS;
  const wall = shardSeconds / INVENTORY_MAP.maxConcurrency;
  const gbSeconds = shardSeconds * 1.769;
  const getsPerFile = readParquet.gets / SHARDS;
  // Per data file: its ranged GETs + pass.json + the multipart-upload list; per candidate one LIST and one claim PUT.
  const s3 = { gets: files * (getsPerFile + 2), lists: STALE_PER_PASS, puts: STALE_PER_PASS + files + 4 };
  const transitions = files * 3 + 12;
  const cost = {
    inventory: keys * PRICE.inventory,
    lambda: gbSeconds * PRICE.gbSecond,
    s3: s3.gets * PRICE.get + s3.lists * PRICE.list + s3.puts * PRICE.put,
    sfn: transitions * PRICE.transition,
  };
  const total = cost.inventory + cost.lambda + cost.s3 + cost.sfn;
  // Listing mode at 10⁸: every key through LIST pages; ~100 ms a page on S3, 8 ranges in parallel.
  const pages = keys / 1000;
  const listingWall = (pages / 8) * 0.1;
  const listingCost = pages * PRICE.list + listingWall * 0.5 * PRICE.gbSecond;
  const benchRate = listing.layout.keys / (listing.unboundedMs / 1000);
  return {
    keys,
    files,
    rowsPerSecond,
    readSeconds,
    shardSeconds,
    wall,
    gbSeconds,
    s3,
    transitions,
    cost,
    total,
    pages,
    listingWall,
    listingCost,
    benchRate,
    recheckSecondsPerCandidate,
    candidates: inv.candidates,
  };
}

export default async function bench(): Promise<string> {
  logger.setLogLevel('SILENT'); // dozens of 100 kB job reports
  const moto = await startSeededMoto({ script: 'moto-scale.py' });
  Object.assign(process.env, moto.env);
  const s3 = new S3Client({
    endpoint: moto.endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    createJob(job, loadPurgeStaleUploadsConfig({ ...moto.env, REGISTRY_BUCKET: BUCKET })); // path-style clients before the first is made
    const listing = await listingPart(moto, s3);
    const rows = generatedRows();
    const parquet = await readPart(s3, rows, 'Parquet');
    const csv = await readPart(s3, rows, 'CSV');
    const shard = await wholeShard(moto, parquet);
    const p = projection(parquet, shard.report, shard.ms, listing);
    return render(listing, parquet, csv, shard, p);
  } finally {
    s3.destroy();
    await moto.stop();
  }
}

function render(
  l: Awaited<ReturnType<typeof listingPart>>,
  parquet: ReadResult,
  csv: ReadResult,
  shard: Awaited<ReturnType<typeof wholeShard>>,
  p: ReturnType<typeof projection>,
): string {
  const ratio = l.total / l.floorWithReads;
  const inv = shard.report.details?.inventory as Record<string, number>;
  const row = (r: ReadResult) =>
    `| ${r.format} | ${(r.fileBytes / 2 ** 20).toFixed(1)} MiB | ${secs(r.encodeMs)} | ${n(r.rows)} | ${n(r.uploadRows)} | ${secs(r.ms)} | ${n(Math.round((r.rows * 1000) / r.ms))} | ${(r.bytes / 2 ** 20 / (r.ms / 1000)).toFixed(1)} | ${(r.gets / SHARDS).toFixed(0)} | ${r.peakRssMb.toFixed(0)} MiB / ${r.peakHeapMb.toFixed(0)} MiB |`;
  return [
    '## purge-stale-uploads at scale',
    '',
    `### Resumable listing: ${n(l.layout.keys)} keys in moto`,
    '',
    `Generated in ${secs(l.seedMs)}: ${SPEC.namespaces * SPEC.reposPerNamespace} repositories × ${SPEC.linksPerRepo} link keys through moto's in-process seeding channel (test/bench/moto-scale.py, which also indexes keys so a listing page costs O(page), not moto's O(bucket)), plus ${SPEC.stale} stale, ${SPEC.fresh} fresh, ${SPEC.cancelled} cancelled uploads and ${SPEC.orphans} orphan multipart uploads over HTTP. LIST_CONCURRENCY=8, UPLOAD_MAX_AGE=1h with a job clock 2h ahead.`,
    '',
    '| run | listing | keys listed (total) | requests | wall time |',
    '|---|---|---:|---:|---:|',
    `| unbounded (dry) | complete | ${n((l.unbounded.details?.listing as { keysListed: number }).keysListed)} | ${requestsOf(l.unbounded).total} | ${secs(l.unboundedMs)} |`,
    ...l.runs.map(({ report, ms }, i) => {
      const s = report.details?.listing as { status: string; keysListed: number; resumed: boolean; checkpoint: string };
      return `| budgeted ${i + 1} (${RUN_BUDGET_PAGES} pages) | ${s.status}${s.resumed ? ', resumed' : ''} (checkpoint ${s.checkpoint}) | ${n(s.keysListed)} | ${requestsOf(report).total} | ${secs(ms)} |`;
    }),
    '',
    `Runs needed: **${l.runs.length}**. Requests over all budgeted runs: **${n(l.total)}** (${Object.entries(l.byOp)
      .map(([op, c]) => `${op} ${c}`)
      .join(
        ', ',
      )}) against the floor ⌈${n(l.layout.keys)}/1000⌉ list pages + ${l.startedAtReads} \`startedat\` reads (this layout's object times cannot decide, so every one is read, as in the unbounded run) + ⌈${n((l.last.details?.done as { objectsDeleted: number }).objectsDeleted)}/1000⌉ DeleteObjects + ${(l.last.details?.done as { multipartUploadsAborted: number }).multipartUploadsAborted} aborts + 1 ListMultipartUploads = ${n(l.floor)}, plus one request per activity read (${l.byOp.ListParts ?? 0} ListParts in observe and the re-check, ${l.recheckLists} re-check prefix listings) = ${n(l.floorWithReads)}: **${ratio.toFixed(3)}×** (goal ≤ 1.1×: ${ratio <= 1.1 ? 'met' : '**not met**'}; against the floor without the activity reads: ${(l.total / l.floor).toFixed(3)}×). Listing alone: ${n(l.listPages)} ListObjectsV2 over ${l.runs.length} runs against ${n(l.pagesFloor)} pages, ${(l.listPages / l.pagesFloor).toFixed(3)}× (the unbounded run: ${requestsOf(l.unbounded).ListObjectsV2}). Same plan as the unbounded run: **${l.samePlan ? 'yes' : 'NO'}** (${l.last.summary.applied} of the ${l.unbounded.summary.planned} planned actions applied, ${l.notStarted} not started; the ${planOf(l.last).length} the report lists identical in type, target and reason). Extra over the floor: the delimiter listings that split the ranges (once), one checkpoint GET per run, one PUT per cut run and one for the completed listing before apply (kept until apply is done), its DELETE, and at most one page per range per resume.`,
    '',
    `### Inventory shards: ${n(ROWS_PER_FILE)}-row data file × ${SHARDS} shards per format (${n(ROWS_PER_FILE * SHARDS)} rows each)`,
    '',
    `One generated data file (1 row in ${UPLOAD_EVERY} under \`_uploads/\`; Parquet: snappy, row groups of 100 000, written with hyparquet-writer; CSV: gzip, every value quoted, keys URL-encoded), read ${SHARDS} times from moto with the shard's reader (\`readInventoryFile\`: Parquet with hyparquet + hyparquet-compressors, ranged GETs of the three needed columns one row group at a time; CSV streamed through gunzip and csv-parse). Memory: peak RSS above the process's baseline / peak JS heap (which includes the 10⁶ generated rows the bench itself holds), sampled every 20 ms.`,
    '',
    '| format | file | generate | rows | `_uploads` rows | read time | rows/s | MB/s (file bytes) | GETs per shard | peak memory |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    row(parquet),
    row(csv),
    '',
    `Pick: **Parquet** — ${((parquet.rows * 1000) / parquet.ms / ((csv.rows * 1000) / csv.ms)).toFixed(1)}× the rows/s of gzip CSV (csv-parse is the CSV bottleneck), and only the three needed columns are fetched; the stack's default (\`purgeInventoryFormat=Parquet\`). One whole shard through the Lambda entry (Parquet, dry): ${secs(shard.ms)} for ${n(inv.rows ?? 0)} rows, ${inv.candidates} candidates re-read live (${inv.vanished} vanished: the generated rows have no objects behind them), ${requestsOf(shard.report).total} S3 requests.`,
    '',
    '### Projection for 10⁸ keys (one pass)',
    '',
    `Assumptions: ${n(p.files)} data files of 10⁶ rows; the shard reads at this machine's Parquet rate (${n(Math.round(p.rowsPerSecond))} rows/s on one core; a 1769 MB Lambda has one vCPU); ${n(STALE_PER_PASS)} stale uploads a pass (a night's abandoned pushes), each re-read live (+1 LIST, +1 claim PUT; ${(p.recheckSecondsPerCandidate * 1000).toFixed(1)} ms each as measured on ${p.candidates} candidates in the whole-shard run) — a first pass over a backlog adds $0.01 per 1000 more; MaxConcurrency ${INVENTORY_MAP.maxConcurrency}; the aborts and deletes of the stale uploads are the same in both modes and left out. Listing mode: ${n(p.pages)} LIST pages, ~100 ms a page on S3, 8 ranges in parallel (moto here: ${n(Math.round(p.benchRate))} keys/s).`,
    '',
    '| | inventory mode | listing mode |',
    '|---|---|---|',
    `| time | ${secs(p.wall * 1000)} of shards at concurrency ${INVENTORY_MAP.maxConcurrency} (${secs(p.shardSeconds * 1000)} of shard time), after the daily delivery | ~${secs(p.listingWall * 1000)} of listing: ${Math.ceil(p.listingWall / 840)} runs of a 15-minute Lambda, resumed |`,
    `| Lambda | ${n(Math.round(p.gbSeconds))} GB-s: ${usd(p.cost.lambda)} | ${n(Math.round(p.listingWall * 0.5))} GB-s (512 MB): ${usd(p.listingWall * 0.5 * PRICE.gbSecond)} |`,
    `| S3 requests | ${n(Math.round(p.s3.gets))} GET, ${n(p.s3.lists)} LIST, ${n(p.s3.puts)} PUT: ${usd(p.cost.s3)} | ${n(p.pages)} LIST: ${usd(p.pages * PRICE.list)} |`,
    `| S3 Inventory | 10⁸ objects listed: ${usd(p.cost.inventory)} | — |`,
    `| Step Functions | ~${n(p.transitions)} transitions: ${usd(p.cost.sfn)} | — |`,
    `| **per pass** | **${usd(p.total)}** (goal ≤ $1: ${p.total <= 1 ? 'met' : 'not met'}; one night: ${p.wall < 6 * 3600 ? 'met' : 'not met'}) | **${usd(p.listingCost)}**, in ${Math.ceil(p.listingWall / 840)} runs (schedule several a night); every further 10⁸ keys adds the same again, where inventory adds $0.25 + ~${usd(p.cost.lambda)} |`,
  ].join('\n');
}
