import { setTimeout as sleep } from 'node:timers/promises';
import { pool } from '../../shared/concurrency.ts';

/**
 * The semantics of a Step Functions Distributed Map, small enough to read (test-only): every item runs once
 * (`maxConcurrency` at a time); an error whose name is in `retry.errors` (as a Task's Retry `ErrorEquals` matches
 * a Lambda's errorType: the error's name; `States.ALL` and `States.TaskFailed` match any) is retried after
 * `intervalSeconds × backoffRate^(n-1)` (FULL jitter), at most `maxAttempts` times, each retry a new invocation
 * (`attempt` 1, 2, …: the test gives each its own Lambda request id); any other error, or retries used up, fails
 * the item; the map fails when more than `toleratedFailurePercentage` of the items failed
 * (States.ExceedToleratedFailureThreshold). `timeScale` shrinks the waits for tests.
 */
export interface MapSettings {
  readonly maxConcurrency: number;
  readonly toleratedFailurePercentage: number;
  readonly retry: {
    readonly errors: readonly string[];
    readonly intervalSeconds: number;
    readonly backoffRate: number;
    readonly maxAttempts: number;
  };
}

export interface MapRun<R> {
  readonly results: (R | undefined)[];
  readonly failures: { index: number; error: string }[];
  /** Attempts per item (1 = no retry). */
  readonly attempts: number[];
  /** The most items in flight at once. */
  readonly peakConcurrency: number;
  /** The map's error when the failures exceed the tolerance (what the state machine's Catch receives). */
  readonly error?: { Error: 'States.ExceedToleratedFailureThreshold'; Cause: string };
}

export async function runDistributedMap<T, R>(
  items: readonly T[],
  s: MapSettings,
  invoke: (item: T, index: number, attempt: number) => Promise<R>,
  { timeScale = 1 }: { timeScale?: number } = {},
): Promise<MapRun<R>> {
  const results = new Array<R | undefined>(items.length).fill(undefined);
  const attempts = new Array<number>(items.length).fill(0);
  const failures: { index: number; error: string }[] = [];
  let inFlight = 0;
  let peakConcurrency = 0;
  await pool(items.length, s.maxConcurrency, async (index) => {
    inFlight += 1;
    peakConcurrency = Math.max(peakConcurrency, inFlight);
    try {
      for (let retries = 0; ; retries += 1) {
        attempts[index] = retries + 1;
        try {
          results[index] = await invoke(items[index] as T, index, retries + 1);
          return;
        } catch (error) {
          const name = error instanceof Error ? error.name : 'Error';
          if (!retriable(s.retry.errors, name) || retries >= s.retry.maxAttempts) {
            failures.push({ index, error: `${name}: ${error instanceof Error ? error.message : String(error)}` });
            return;
          }
          const wait = s.retry.intervalSeconds * 1000 * s.retry.backoffRate ** retries;
          await sleep(Math.random() * wait * timeScale);
        }
      }
    } finally {
      inFlight -= 1;
    }
  });
  const failedPct = items.length === 0 ? 0 : (failures.length * 100) / items.length;
  const error =
    failedPct > s.toleratedFailurePercentage
      ? { Error: 'States.ExceedToleratedFailureThreshold' as const, Cause: `${failures.length} of ${items.length} items failed` }
      : undefined;
  return { results, failures, attempts, peakConcurrency, ...(error ? { error } : {}) };
}

function retriable(errors: readonly string[], name: string): boolean {
  return errors.includes(name) || errors.includes('States.ALL') || errors.includes('States.TaskFailed');
}

/** A Task state's Retry (test-only): the errors it names, the waits, an optional cap on each wait (`maxDelaySeconds`). */
export interface TaskRetry {
  readonly errors: readonly string[];
  readonly intervalSeconds: number;
  readonly backoffRate: number;
  readonly maxAttempts: number;
  readonly maxDelaySeconds?: number;
}

export interface TaskRun<R> {
  readonly result?: R;
  /** The error that failed the state (retries used up, or an error the Retry does not name). */
  readonly error?: Error;
  readonly attempts: number;
  /** The waits between attempts, unscaled (no jitter: JitterStrategy NONE). */
  readonly waitedSeconds: number[];
}

/**
 * One Task state with its Retry, as Step Functions runs it: the invocation, and on an error the Retry names a wait
 * of `intervalSeconds × backoffRate^(n-1)` (capped by `maxDelaySeconds`), at most `maxAttempts` retries.
 */
export async function runTask<R>(
  retry: TaskRetry,
  invoke: (attempt: number) => Promise<R>,
  { timeScale = 1 }: { timeScale?: number } = {},
): Promise<TaskRun<R>> {
  const waitedSeconds: number[] = [];
  for (let retries = 0; ; retries += 1) {
    try {
      return { result: await invoke(retries + 1), attempts: retries + 1, waitedSeconds };
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      if (!retriable(retry.errors, e.name) || retries >= retry.maxAttempts) return { error: e, attempts: retries + 1, waitedSeconds };
      const wait = Math.min(retry.intervalSeconds * retry.backoffRate ** retries, retry.maxDelaySeconds ?? Infinity);
      waitedSeconds.push(wait);
      await sleep(wait * 1000 * timeScale);
    }
  }
}
