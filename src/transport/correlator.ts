/**
 * Matches answers to requests by id: every request has a deadline, the
 * number in flight is bounded, and all of them fail at once when the link
 * goes away. Used by the admin client (over TCP) and by both ends of the
 * cluster's internal channel.
 */
export interface CorrelatorOptions<M> {
  /** Requests in flight at most; one more is refused at once with `overflow`. */
  maxPending: number;
  /** The error a request gets when its deadline passes. */
  timeout: (meta: M, timeoutMs: number) => Error;
  overflow: (meta: M, maxPending: number) => Error;
}

interface Waiting<M> {
  meta: M;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class Correlator<M> {
  /** Requests in flight at most (may be changed; applies to the next request). */
  maxPending: number;
  private readonly options: CorrelatorOptions<M>;
  private readonly waiting = new Map<number, Waiting<M>>();
  private nextId = 1;

  constructor(options: CorrelatorOptions<M>) {
    this.options = options;
    this.maxPending = options.maxPending;
  }

  get size(): number {
    return this.waiting.size;
  }

  /**
   * Registers a request; `send` is called with its id (a throw from it fails
   * the request). The promise settles with what `settle` computes, or with
   * the timeout, overflow or `failAll` error.
   */
  start<T>(meta: M, timeoutMs: number, send: (id: number) => void): Promise<T> {
    if (this.waiting.size >= this.maxPending) {
      return Promise.reject(this.options.overflow(meta, this.maxPending));
    }
    const id = this.nextId++;
    if (this.nextId > Number.MAX_SAFE_INTEGER) this.nextId = 1;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiting.delete(id)) reject(this.options.timeout(meta, timeoutMs));
      }, timeoutMs);
      this.waiting.set(id, { meta, resolve: resolve, reject, timer });
      try {
        send(id);
      } catch (err) {
        this.waiting.delete(id);
        clearTimeout(timer);
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what `send` threw is passed on unchanged
        reject(err);
      }
    });
  }

  /**
   * Settles request `id` with what `outcome` returns, or rejects it with what
   * `outcome` throws. False when no such request is waiting (it timed out,
   * or the id is not one of ours).
   */
  settle(id: number, outcome: (meta: M) => unknown): boolean {
    const waiting = this.waiting.get(id);
    if (waiting === undefined) return false;
    this.waiting.delete(id);
    clearTimeout(waiting.timer);
    try {
      waiting.resolve(outcome(waiting.meta));
    } catch (err) {
      waiting.reject(err as Error);
    }
    return true;
  }

  /** Fails every waiting request (the link closed). */
  failAll(error: (meta: M) => Error): void {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) {
      clearTimeout(w.timer);
      w.reject(error(w.meta));
    }
  }
}
