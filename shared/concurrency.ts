/**
 * The one worker pool (STYLE: one engine, one set of rules): `fn(index)` for indexes 0…count-1, at most `limit`
 * in flight, in order of start. No new index starts once `keepGoing()` is false; a rejection rejects the pool
 * (callers that want per-item outcomes catch inside `fn`, as `applyEach` does).
 */
export async function pool(
  count: number,
  limit: number,
  fn: (index: number) => Promise<void>,
  keepGoing: () => boolean = () => true,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && keepGoing()) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, count)) }, worker));
}

/** Run `fn` over `items` with at most `limit` in flight; results keep the input order. Rejects on the first error. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  await pool(items.length, limit, async (index) => {
    results[index] = await fn(items[index] as T, index);
  });
  return results;
}
