/**
 * How the inventory pass's Distributed Map runs its shards. The state machine is built from these and the
 * integration test's local executor (test/support/distributed-map.ts) runs the shards by the same numbers.
 */
export const INVENTORY_MAP = {
  /** Shards at once: each streams one data file and re-reads its candidates; S3 takes far more, Lambda reserves this many. */
  maxConcurrency: 10,
  /** A pass with more failed shards than this fails (the merge step still reports every shard). */
  toleratedFailurePercentage: 5,
  /** Throttling (Lambda's or S3's past the SDK's own retries) is retried with exponential backoff and jitter. */
  retry: {
    errors: ['Lambda.TooManyRequestsException', 'Lambda.ServiceException', 'Lambda.SdkClientException', 'SlowDown', 'ThrottlingException'],
    intervalSeconds: 2,
    backoffRate: 2,
    maxAttempts: 6,
  },
} as const;
