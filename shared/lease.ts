/**
 * A lease on the registry's storage, so collect-garbage and purge-stale-uploads never run at once (issue 22 §6):
 * the purge deletes upload directories the GC's re-checks would read as pushes in flight, and two writers of
 * the layout at once make every re-check weaker. One S3 object per registry root, taken with conditional writes:
 *
 *   control-plane/leases/[roots/<root>/]registry-storage.json   {"holder":"<job>","token":"<uuid>","expiresAt":<ms>}
 *
 * - acquire: PUT `If-None-Match: *` first (the first run after a deploy creates it); on a 412 GET it: expired or
 *   released → PUT `If-Match: <its ETag>`; live → held. The create goes first because the roles' s3:ListBucket is
 *   scoped by prefix, and S3 then answers a GET of a missing key with 403, not NoSuchKey: only an object that exists
 *   is ever read. A 412 (another writer won the race) or 409 (a conditional write in flight) means held, never an error.
 * - release: PUT `If-Match` with `expiresAt: 0`, so only the holder's own lease is released.
 * - The TTL is longer than any Lambda run (15 min): a holder that crashed frees it by itself. A holder that spans
 *   several Lambda runs (an inventory pass, up to its state machine's timeout) gives its own `ttlMs`.
 *
 * Times are the wall clock's, never a run's injected clock: the two jobs compare them across processes.
 */
import { randomUUID } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { errorName } from './errors.ts';
import type { JobDefinition, JobTypes, Outcomes, Summary } from './job.ts';
import { normalizeRoot } from './registry-layout.ts';

export const LEASE_TTL_MS = 16 * 60_000;
export const LEASE_PREFIX = 'control-plane/leases/';

/** The lease key of the fleet whose registry root is `root` (two fleets sharing a bucket never share a lease). */
export function leaseKey(root: string | undefined): string {
  const r = normalizeRoot(root);
  return `${LEASE_PREFIX}${r ? `roots/${r}/` : ''}registry-storage.json`;
}

export interface LeaseSpec {
  readonly bucket: string;
  readonly root: string;
}

interface LeaseBody {
  readonly holder: string;
  readonly token: string;
  readonly expiresAt: number;
}

export interface HeldLease extends LeaseBody {
  readonly bucket: string;
  readonly key: string;
  readonly etag: string;
}

export type LeaseResult =
  { readonly acquired: true; readonly lease: HeldLease } | { readonly acquired: false; readonly heldBy: string; readonly until: string };

const CONFLICT = new Set(['PreconditionFailed', 'ConditionalRequestConflict']);
const isConflict = (error: unknown) =>
  CONFLICT.has(errorName(error) ?? '') ||
  [409, 412].includes((error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode ?? 0);

async function read(
  s3: S3Client,
  bucket: string,
  key: string,
  signal?: AbortSignal,
): Promise<{ body?: LeaseBody; etag: string } | undefined> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    const text = (await res.Body?.transformToString()) ?? '';
    let body: LeaseBody | undefined;
    try {
      const parsed = JSON.parse(text) as Partial<LeaseBody>;
      if (typeof parsed.holder === 'string' && typeof parsed.expiresAt === 'number') body = parsed as LeaseBody;
    } catch {
      body = undefined; // an unreadable lease is treated as expired: the conditional write still guards the race
    }
    return { ...(body ? { body } : {}), etag: res.ETag ?? '' };
  } catch (error) {
    if (errorName(error) === 'NoSuchKey') return undefined;
    throw error;
  }
}

export interface AcquireOptions {
  /** How long the lease lives unless released (default LEASE_TTL_MS): a holder longer than a Lambda run gives its own. */
  readonly ttlMs?: number;
  /**
   * The holder's own token instead of a random one: a retry of a step that died after taking the lease finds its
   * live lease by it and gets it back, instead of waiting out its own TTL.
   */
  readonly token?: string;
}

export async function acquireLease(
  s3: S3Client,
  spec: LeaseSpec,
  holder: string,
  signal?: AbortSignal,
  { ttlMs = LEASE_TTL_MS, token = randomUUID() }: AcquireOptions = {},
): Promise<LeaseResult> {
  const key = leaseKey(spec.root);
  const now = Date.now();
  const body: LeaseBody = { holder, token, expiresAt: now + ttlMs };
  const created = await write(s3, spec.bucket, key, body, { IfNoneMatch: '*' }, signal);
  if (created !== undefined) return { acquired: true, lease: { ...body, bucket: spec.bucket, key, etag: created } };

  const current = await read(s3, spec.bucket, key, signal);
  if (current?.body && current.body.expiresAt > now) {
    if (current.body.token !== token) return held(current.body);
    return { acquired: true, lease: { ...current.body, bucket: spec.bucket, key, etag: current.etag } };
  }
  // Expired, released or unreadable: take it over, unless another run does so first (then its write wins the If-Match).
  const taken = current ? await write(s3, spec.bucket, key, body, { IfMatch: current.etag }, signal) : undefined;
  if (taken !== undefined) return { acquired: true, lease: { ...body, bucket: spec.bucket, key, etag: taken } };
  const winner = await read(s3, spec.bucket, key, signal);
  return held(winner?.body ?? { holder: 'another run', token: '', expiresAt: now + LEASE_TTL_MS });
}

/**
 * The lease is held by another job: a step that must not start without it (an inventory pass's plan) throws this,
 * and its state machine retries the step by this name (a Lambda's errorType is the error's name).
 */
export class LeaseHeldError extends Error {
  override readonly name = 'LeaseHeldError';
  constructor(
    readonly key: string,
    readonly heldBy: string,
    readonly until: string,
  ) {
    super(`the registry-storage lease ${key} is held by ${heldBy} until ${until}: retried until it is free`);
  }
}

const held = (body: LeaseBody): LeaseResult => ({ acquired: false, heldBy: body.holder, until: new Date(body.expiresAt).toISOString() });

/** A conditional PUT of the lease: its ETag when written, undefined when the condition failed (someone else won). */
async function write(
  s3: S3Client,
  bucket: string,
  key: string,
  body: LeaseBody,
  condition: { IfNoneMatch: '*' } | { IfMatch: string },
  signal?: AbortSignal,
): Promise<string | undefined> {
  try {
    const res = await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(body), ContentType: 'application/json', ...condition }),
      { abortSignal: signal },
    );
    return res.ETag ?? '';
  } catch (error) {
    if (isConflict(error)) return undefined;
    throw error;
  }
}

/** Give the lease back; a lease someone else took meanwhile (ours had expired) is left alone. */
export async function releaseLease(s3: S3Client, lease: HeldLease, signal?: AbortSignal): Promise<'released' | 'lost'> {
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: lease.bucket,
        Key: lease.key,
        Body: JSON.stringify({ holder: lease.holder, token: lease.token, expiresAt: 0 }),
        ContentType: 'application/json',
        IfMatch: lease.etag,
      }),
      { abortSignal: signal },
    );
    return 'released';
  } catch (error) {
    if (isConflict(error)) return 'lost';
    throw error;
  }
}

/** A run's state under the lease: the job's own, or that another job holds it (then nothing is planned). */
export type Leased<S> =
  | { readonly leased: 'held'; readonly heldBy: string; readonly until: string }
  | { readonly leased: 'ours' | 'dry-run'; readonly lease?: HeldLease; readonly state: S };

type LeasedTypes<T extends JobTypes> = Omit<T, 'state' | 'plan'> & {
  state: Leased<T['state']>;
  plan: T['plan'] & { readonly leaseToken?: string };
};

/**
 * `job` taking the lease for its non-dry runs: observe takes it first, apply gives it back when done (also on
 * failure). A dry run changes nothing, so it takes none. A run that finds it held plans nothing, says who
 * holds it until when (`details.lease`), and counts `LeaseHeld`: not a failure, the next schedule runs.
 * `specOf` returning undefined turns the lease off (a fleet without collect-garbage).
 */
export function withLease<T extends JobTypes>(
  job: JobDefinition<T>,
  specOf: (config: T['config']) => LeaseSpec | undefined,
  s3Of: (clients: T['clients']) => S3Client,
): JobDefinition<LeasedTypes<T>> {
  return {
    ...job,
    async observe(clients, scope, ctx) {
      const spec = specOf(ctx.config);
      if (ctx.dryRun || !spec) return { leased: 'dry-run', state: await job.observe(clients, scope, ctx) };
      const got = await acquireLease(s3Of(clients), spec, job.name, ctx.signal);
      if (!got.acquired) return { leased: 'held', heldBy: got.heldBy, until: got.until };
      try {
        return { leased: 'ours', lease: got.lease, state: await job.observe(clients, scope, ctx) };
      } catch (error) {
        await releaseLease(s3Of(clients), got.lease, ctx.signal).catch(() => undefined); // the observe error is the one to report
        throw error;
      }
    },
    plan(state, ctx) {
      // An empty plan is a valid plan of every job: its extra fields are all optional.
      if (state.leased === 'held') return { actions: [], skipped: [] } as unknown as T['plan'];
      const planned = job.plan(state.state, ctx);
      // The token travels in the plan to apply, which releases only the lease this run took.
      return state.lease ? { ...planned, leaseToken: state.lease.token } : planned;
    },
    async apply(plan, ctx, clients): Promise<Outcomes> {
      try {
        return await job.apply(plan, ctx, clients);
      } finally {
        if (plan.leaseToken) await releaseOwn(s3Of(clients), specOf(ctx.config), plan.leaseToken, ctx.signal);
      }
    },
    summarize(state, plan, outcomes, ctx): Summary {
      if (state.leased === 'held') {
        return { observed: {}, details: { lease: { heldBy: state.heldBy, until: state.until } }, metrics: { LeaseHeld: 1 } };
      }
      return job.summarize(state.state, plan, outcomes, ctx);
    },
  };
}

/**
 * Release the lease if it is still the one this run took (`token`); read first for the ETag the release needs.
 * For a holder whose release runs in another process than its acquire (an inventory pass's merge step).
 */
export async function releaseOwn(s3: S3Client, spec: LeaseSpec | undefined, token: string, signal: AbortSignal): Promise<void> {
  if (!spec) return;
  const key = leaseKey(spec.root);
  const current = await read(s3, spec.bucket, key, signal);
  if (!current?.body || current.body.token !== token) return;
  await releaseLease(s3, { ...current.body, bucket: spec.bucket, key, etag: current.etag }, signal);
}
