/**
 * Group commit for requests to one DynamoDB item. The first request for an item goes at once;
 * requests for it that arrive while one is in flight wait, and go together as one request when it
 * answers (at most {@link ItemRequestCombiner.maxParts} at a time). With no contention nothing
 * waits; under load (40 agents reserving, charging and settling on one run's item in one process)
 * the requests per item fall as the load rises. Each caller's promise settles when the request
 * carrying its part lands, with that request's result, so a caller that awaits its write knows it
 * landed, and a combined read is sent after every caller in it asked, as with a request of its own.
 *
 * For writes whose combined request applies only when applying the parts alone, one after another,
 * would: `ADD` of numbers, `DELETE` from a set, conditions on a part's own attributes (ANDed), or
 * a limit checked against the parts' sum. A combined request refused for a reason that may be one
 * part's (`split`, e.g. a failed condition) is sent again part by part, each caller getting its
 * own part's outcome, as if never combined; any other error reaches every caller in it, as their
 * own requests' would (a timeout is not re-sent here: the request may have landed). A request that
 * does not answer within `patienceMs` stops holding the item's next requests back.
 *
 * @example
 * const adds = new ItemRequestCombiner<number>((key, parts) => addToItem(key, parts.reduce((a, b) => a + b, 0)));
 * await Promise.all([adds.submit('BUDGET#global', 5), adds.submit('BUDGET#global', 7)]); // one or two UpdateItems
 */
export class ItemRequestCombiner<P, R = void> {
  private readonly waiting = new Map<string, Array<Waiting<P, R>>>();
  /** The request in flight per item (a token: a late one is let go of, see `patienceMs`). */
  private readonly flying = new Map<string, object>();

  /**
   * @param write sends `parts` (one or more, in arrival order) to the item `key` as one request;
   *   its result goes to every part's caller
   * @param split whether a failed combined request is sent again part by part (a refusal that may
   *   be one part's); @default never (for writes whose parts cannot be refused one by one)
   * @param maxParts parts per request at most (DynamoDB's expressions are limited to 4 KB). @default 20
   * @param patienceMs how long a request in flight holds the next ones back (ms): past it they go on
   *   their own, so one that never answers (a socket lost while a Lambda was frozen) cannot stall
   *   the item's writes. @default 2000
   */
  constructor(
    private readonly write: (key: string, parts: readonly P[]) => Promise<R>,
    private readonly split: (e: unknown) => boolean = () => false,
    readonly maxParts = 20,
    private readonly patienceMs = 2000,
  ) {}

  /** Writes `part` to the item `key`; resolves with its request's result when it landed, rejects with its error. */
  submit(key: string, part: P): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const queue = this.waiting.get(key);
      if (queue) queue.push({ part, resolve, reject });
      else this.waiting.set(key, [{ part, resolve, reject }]);
      if (!this.flying.has(key)) this.next(key);
    });
  }

  /** Sends what waits for `key`, if anything. */
  private next(key: string): void {
    const queue = this.waiting.get(key);
    if (!queue || queue.length === 0) {
      this.waiting.delete(key);
      this.flying.delete(key);
      return;
    }
    const batch = queue.splice(0, this.maxParts);
    const flight = {};
    this.flying.set(key, flight);
    // A request that does not answer in time stops holding the item's next ones back.
    const late = setTimeout(() => {
      if (this.flying.get(key) === flight) this.next(key);
    }, this.patienceMs);
    late.unref?.();
    void this.send(key, batch).finally(() => {
      clearTimeout(late);
      if (this.flying.get(key) === flight) this.next(key);
    });
  }

  /** Sends `batch` as one request and settles each part's caller; never rejects. */
  private async send(key: string, batch: Array<Waiting<P, R>>): Promise<void> {
    let result: R;
    try {
      result = await this.write(
        key,
        batch.map((b) => b.part),
      );
    } catch (e) {
      let split = false;
      try {
        split = batch.length > 1 && this.split(e);
      } catch {
        // A predicate that fails does not split.
      }
      if (!split) {
        for (const b of batch) b.reject(e);
        return;
      }
      // Each part alone, as if never combined.
      await Promise.all(
        batch.map((b) =>
          Promise.resolve()
            .then(() => this.write(key, [b.part]))
            .then(b.resolve, b.reject),
        ),
      );
      return;
    }
    for (const b of batch) b.resolve(result);
  }
}

/** A part waiting for its request, and its caller's promise. */
interface Waiting<P, R> {
  readonly part: P;
  readonly resolve: (r: R) => void;
  readonly reject: (e: unknown) => void;
}
