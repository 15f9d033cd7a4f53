/**
 * Runs `work` over `items` with at most `limit` calls in flight (at least one), in item order as
 * places free up, and returns the results in item order. A rejection of `work` rejects the whole
 * call once the calls in flight have settled their turn; callers that must not stop record their
 * own errors inside `work`.
 *
 * @example await mapLimited(paths, 8, (p) => source.readHeadFile(change, p))
 */
export async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  return results;
}
