/**
 * Failed logins slow further attempts down, per name (account or token id)
 * and per source address: after three failures, each new attempt waits
 * 250 ms, doubling up to 10 s, before it is even challenged. A success
 * clears its name and address; failures are forgotten 15 minutes after the
 * last one. The table is bounded (the oldest entries go first).
 */
const FREE_FAILURES = 3;
const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 10_000;
const FORGET_MS = 15 * 60_000;
const MAX_ENTRIES = 100_000;

interface Failures {
  count: number;
  last: number;
}

export class LoginThrottle {
  private readonly failures = new Map<string, Failures>();

  /** How long the next attempt of `name` from `address` must wait. */
  delay(name: string, address: string, now = Date.now()): number {
    return Math.max(this.delayOf(`n:${name}`, now), this.delayOf(`a:${address}`, now));
  }

  failed(name: string, address: string, now = Date.now()): void {
    for (const key of [`n:${name}`, `a:${address}`]) {
      const f = this.failures.get(key);
      const count = f !== undefined && now - f.last < FORGET_MS ? f.count + 1 : 1;
      this.failures.delete(key); // re-inserted last: the map stays in order of last failure
      this.failures.set(key, { count, last: now });
    }
    while (this.failures.size > MAX_ENTRIES) this.failures.delete(this.failures.keys().next().value!);
  }

  succeeded(name: string, address: string): void {
    this.failures.delete(`n:${name}`);
    this.failures.delete(`a:${address}`);
  }

  private delayOf(key: string, now: number): number {
    const f = this.failures.get(key);
    if (f === undefined || now - f.last >= FORGET_MS || f.count < FREE_FAILURES) return 0;
    return Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (f.count - FREE_FAILURES));
  }
}
