import { ChangeResourceRecordSetsCommand, waitUntilResourceRecordSetsChanged, type Route53Client } from '@aws-sdk/client-route-53';
import type { DnsRecord } from './model.ts';

/**
 * The job's Route 53 changes, in one place: ACM's DNS validation records (apply.ts) and ACME's DNS-01 challenge
 * records (acme.ts) go through the same UPSERT, and a DNS-01 record is waited for with the SDK's waiter.
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
