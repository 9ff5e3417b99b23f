import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The per-run request counter (RunContext.requests): every AWS request a run makes, by `service:Operation`,
 * retries included (the SDK reports the attempts of a call in `$metadata.attempts`, on results and errors alike).
 *
 * Counting happens on the clients themselves (`countRequests`, installed once by shared/aws.ts on every client it
 * makes), so no job counts by hand. The hook wraps the client's `send` rather than sitting in the middleware
 * stack: aws-sdk-client-mock replaces `send` on the client class, so middleware never runs under it and the
 * counts the tests assert would be zero. The run a request belongs to is found through AsyncLocalStorage, which
 * the runner enters once per run: no per-run fact lives in a module variable.
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

  /** A copy of the counts so far (`since` takes the difference to a later point). */
  snapshot(): ReadonlyMap<string, number> {
    return new Map(this.counts);
  }

  /** `{ 'ec2:DescribeInstances': 2, … }`: the requests made after `before` (a snapshot), sorted by operation. */
  since(before: ReadonlyMap<string, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [op, n] of [...this.counts].sort(([a], [b]) => a.localeCompare(b))) {
      const d = n - (before.get(op) ?? 0);
      if (d > 0) out[op] = d;
    }
    return out;
  }

  /** `{ total, ListObjectsV2: 52, … }` of one service, without its prefix (the purge report's `requests`). */
  of(service: string): Record<string, number> {
    const out: Record<string, number> = {};
    let total = 0;
    for (const [op, n] of [...this.counts].sort(([a], [b]) => a.localeCompare(b))) {
      if (!op.startsWith(`${service}:`)) continue;
      out[op.slice(service.length + 1)] = n;
      total += n;
    }
    return { total, ...out };
  }

  /** `{ total, 's3:ListObjectsV2': 52, … }`, operations sorted by name. */
  toJSON(): Record<string, number> {
    return { total: this.total, ...this.since(new Map()) };
  }
}

const currentRun = new AsyncLocalStorage<RequestCounter>();

/** Run `fn` with `counter` as the counter of every request made inside it (the runner does this once per run). */
export function withRequestCounter<T>(counter: RequestCounter, fn: () => Promise<T>): Promise<T> {
  return currentRun.run(counter, fn);
}

function attemptsOf(value: unknown): number {
  const attempts = (value as { $metadata?: { attempts?: unknown } } | undefined)?.$metadata?.attempts;
  return typeof attempts === 'number' && attempts > 0 ? attempts : 1;
}

/** The SDK's own operation name: the command's schema carries it as a string (class names do not survive minification). */
function operationOf(command: unknown): string {
  const schema = (command as { schema?: unknown }).schema;
  if (Array.isArray(schema) && typeof schema[2] === 'string') return schema[2];
  return ((command as object).constructor?.name ?? 'Unknown').replace(/Command$/, '');
}

interface Sender {
  send(command: unknown, ...rest: unknown[]): Promise<unknown>;
}

const counted = new WeakSet<object>();

/** Count every request `client` sends into the current run's counter, under `service:Operation` (IAM's prefixes). */
export function countRequests<T extends object>(client: T, service: string): T {
  if (counted.has(client)) return client;
  counted.add(client);
  const target = client as unknown as Sender;
  // Look the prototype's send up on every call: a test's mock may replace it after the client was made.
  target.send = async (command: unknown, ...rest: unknown[]): Promise<unknown> => {
    const send = (Object.getPrototypeOf(client) as Sender).send;
    const counter = currentRun.getStore();
    const operation = `${service}:${operationOf(command)}`;
    try {
      const result = await send.call(client, command, ...rest);
      counter?.add(operation, attemptsOf(result));
      return result;
    } catch (error) {
      counter?.add(operation, attemptsOf(error));
      throw error;
    }
  };
  return client;
}
