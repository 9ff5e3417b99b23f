import {
  ChangeResourceRecordSetsCommand,
  ListResourceRecordSetsCommand,
  waitUntilResourceRecordSetsChanged,
  type Route53Client,
} from '@aws-sdk/client-route-53';
import { errorName } from '../../shared/errors.ts';
import { normaliseName, type DnsRecord } from './model.ts';

/**
 * The job's Route 53 changes, in one place: ACM's DNS validation records (apply.ts) go through one UPSERT; ACME's
 * DNS-01 challenge values (acme.ts) are added to and removed from their TXT record set one value at a time; a
 * DNS-01 record is waited for with the SDK's waiter.
 */

export interface RecordChange {
  readonly zoneId: string;
  readonly records: readonly DnsRecord[];
  readonly ttl: number;
  /** Shown in Route 53's change history. */
  readonly comment: string;
}

/** One ChangeResourceRecordSets call for all `records`; returns the change id (undefined when there was nothing to write). */
export async function changeRecords(
  route53: Route53Client,
  action: 'UPSERT' | 'DELETE',
  change: RecordChange,
  signal: AbortSignal,
): Promise<string | undefined> {
  if (change.records.length === 0) return undefined;
  const res = await route53.send(
    new ChangeResourceRecordSetsCommand({
      HostedZoneId: change.zoneId,
      ChangeBatch: {
        Comment: change.comment,
        Changes: change.records.map((r) => ({
          Action: action,
          ResourceRecordSet: { Name: r.name, Type: r.type as 'CNAME', TTL: change.ttl, ResourceRecords: [{ Value: r.value }] },
        })),
      },
    }),
    { abortSignal: signal },
  );
  return res.ChangeInfo?.Id;
}

export const upsertRecords = (route53: Route53Client, change: RecordChange, signal: AbortSignal): Promise<string | undefined> =>
  changeRecords(route53, 'UPSERT', change, signal);

/** A TXT record set as Route 53 keeps it: each value quoted. */
interface TxtSet {
  readonly values: readonly string[];
  readonly ttl: number;
}

const quoted = (value: string): string => `"${value}"`;

async function readTxt(route53: Route53Client, zoneId: string, name: string, signal: AbortSignal): Promise<TxtSet | undefined> {
  const res = await route53.send(
    new ListResourceRecordSetsCommand({ HostedZoneId: zoneId, StartRecordName: name, StartRecordType: 'TXT', MaxItems: 1 }),
    { abortSignal: signal },
  );
  const set = res.ResourceRecordSets?.[0];
  if (!set?.Name || normaliseName(set.Name) !== name || set.Type !== 'TXT') return undefined;
  return { values: (set.ResourceRecords ?? []).map((r) => r.Value ?? '').filter(Boolean), ttl: set.TTL ?? 0 };
}

async function writeTxt(
  route53: Route53Client,
  zoneId: string,
  action: 'UPSERT' | 'DELETE',
  name: string,
  set: TxtSet,
  comment: string,
  signal: AbortSignal,
): Promise<string | undefined> {
  const res = await route53.send(
    new ChangeResourceRecordSetsCommand({
      HostedZoneId: zoneId,
      ChangeBatch: {
        Comment: comment,
        Changes: [
          {
            Action: action,
            ResourceRecordSet: { Name: name, Type: 'TXT', TTL: set.ttl, ResourceRecords: set.values.map((Value) => ({ Value })) },
          },
        ],
      },
    }),
    { abortSignal: signal },
  );
  return res.ChangeInfo?.Id;
}

/** One run's DNS-01 challenge values in one zone (make one per order: it holds the per-name queue). */
export interface ChallengeRecords {
  /** Adds `value` to the TXT record set at `name`, keeping the values already there; the change id, if it wrote. */
  add(name: string, value: string, signal: AbortSignal): Promise<string | undefined>;
  /** Removes only `value`; the record set is deleted when it was the last value. */
  remove(name: string, value: string, signal: AbortSignal): Promise<void>;
}

/**
 * A certificate for `D` and `*.D` needs two challenge values at the same `_acme-challenge.D`, created concurrently
 * by acme-client: a single-value UPSERT per challenge would overwrite the other one and fail the order. So every
 * change is a read-modify-write of the whole record set, serialised per name (the read sees the write before it:
 * Route 53's API answers with submitted changes, only DNS propagation lags, which waitInSync covers).
 */
export function challengeRecords(route53: Route53Client, zoneId: string, ttl: number, comment: string): ChallengeRecords {
  const queues = new Map<string, Promise<unknown>>();
  const serialised = <T>(name: string, step: () => Promise<T>): Promise<T> => {
    const next = (queues.get(name) ?? Promise.resolve()).then(step, step);
    queues.set(
      name,
      next.catch(() => undefined),
    );
    return next;
  };
  return {
    add: (name, value, signal) =>
      serialised(name, async () => {
        const current = await readTxt(route53, zoneId, name, signal);
        if (current?.values.includes(quoted(value))) return undefined;
        return writeTxt(route53, zoneId, 'UPSERT', name, { values: [...(current?.values ?? []), quoted(value)], ttl }, comment, signal);
      }),
    remove: (name, value, signal) =>
      serialised(name, async () => {
        const current = await readTxt(route53, zoneId, name, signal);
        if (!current?.values.includes(quoted(value))) return;
        const rest = current.values.filter((v) => v !== quoted(value));
        try {
          // A DELETE must name the record set exactly as it is (values and TTL).
          if (rest.length === 0) await writeTxt(route53, zoneId, 'DELETE', name, current, comment, signal);
          else await writeTxt(route53, zoneId, 'UPSERT', name, { values: rest, ttl: current.ttl }, comment, signal);
        } catch (error) {
          // Changed by someone else since the read: what is there now is not ours to remove.
          if (errorName(error) !== 'InvalidChangeBatch') throw error;
        }
      }),
  };
}

/** How often `hasTime` is asked while the waiter polls. */
const BUDGET_CHECK_MS = 1_000;

/**
 * Waits until Route 53 reports the change INSYNC, with the SDK's `waitUntilResourceRecordSetsChanged` (GetChange with
 * backoff), bounded by `timeoutMs` and by the run's time budget: once `hasTime()` says no, the wait is aborted.
 */
export async function waitInSync(
  route53: Route53Client,
  changeId: string | undefined,
  bounds: { timeoutMs: number; hasTime: () => boolean; signal: AbortSignal },
): Promise<void> {
  if (!changeId) return;
  const abort = new AbortController();
  const onAbort = (): void => abort.abort();
  bounds.signal.addEventListener('abort', onAbort, { once: true });
  let outOfTime = false;
  const timer = setInterval(() => {
    if (!bounds.hasTime()) {
      outOfTime = true;
      abort.abort();
    }
  }, BUDGET_CHECK_MS);
  try {
    if (!bounds.hasTime()) throw new Error(`Route 53 change ${changeId}: the Lambda time budget ran low before waiting for INSYNC`);
    await waitUntilResourceRecordSetsChanged(
      {
        client: route53,
        maxWaitTime: Math.max(2, Math.ceil(bounds.timeoutMs / 1000)),
        minDelay: 1,
        maxDelay: 10,
        abortSignal: abort.signal,
      },
      { Id: changeId },
    );
  } catch (error) {
    if (outOfTime) throw new Error(`Route 53 change ${changeId} not INSYNC before the Lambda time budget ran low`, { cause: error });
    if ((error as Error).name === 'TimeoutError')
      throw new Error(`Route 53 change ${changeId} not INSYNC after ${bounds.timeoutMs} ms`, { cause: error });
    throw error;
  } finally {
    clearInterval(timer);
    bounds.signal.removeEventListener('abort', onAbort);
  }
}
