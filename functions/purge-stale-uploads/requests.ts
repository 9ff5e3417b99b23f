/**
 * Counts the S3 requests of one run (the report's `requests`), by operation. Retries count: the SDK reports
 * the attempts a call took in `$metadata.attempts`, on results and on errors alike.
 *
 * observe, apply and summarize of one run share one counter, found by the run's abort signal (the runner
 * hands the same signal to observe and apply; summarize reads it from the observed state).
 */
export class RequestCounter {
  private readonly counts = new Map<string, number>();

  add(operation: string, attempts = 1): void {
    this.counts.set(operation, (this.counts.get(operation) ?? 0) + attempts);
  }

  get total(): number {
    let sum = 0;
    for (const n of this.counts.values()) sum += n;
    return sum;
  }

  /** `{ total, ListObjectsV2: 52, … }`, operations sorted by name. */
  toJSON(): Record<string, number> {
    return { total: this.total, ...Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b))) };
  }

  /** Await `call`, counting its attempts under `operation` whether it succeeds or fails. */
  async track<T>(operation: string, call: () => Promise<T>): Promise<T> {
    try {
      const result = await call();
      this.add(operation, attemptsOf(result));
      return result;
    } catch (error) {
      this.add(operation, attemptsOf(error));
      throw error;
    }
  }
}

function attemptsOf(value: unknown): number {
  const attempts = (value as { $metadata?: { attempts?: unknown } } | undefined)?.$metadata?.attempts;
  return typeof attempts === 'number' && attempts > 0 ? attempts : 1;
}

const bySignal = new WeakMap<AbortSignal, RequestCounter>();

/** The counter of the run that owns `signal` (created on first use). */
export function requestCounter(signal: AbortSignal): RequestCounter {
  let counter = bySignal.get(signal);
  if (!counter) {
    counter = new RequestCounter();
    bySignal.set(signal, counter);
  }
  return counter;
}
