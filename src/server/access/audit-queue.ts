import type { AuditRecord, Store } from '../store/types.js';

/** Audit entries waiting to be written at most; beyond, the oldest are dropped (and counted in the log). */
const AUDIT_QUEUE = 100_000;
const AUDIT_FLUSH_MS = 200;
/** After the store refused a batch: when to try again. */
const AUDIT_RETRY_MS = 1000;
const AUDIT_BATCH = 1000;

/**
 * The audit trail's writer: entries are written to the store in batches a
 * moment after they are recorded; while the store is down they wait (the
 * oldest dropped past the bound, and counted in the log) and are tried again.
 */
export class AuditQueue {
  private readonly queue: AuditRecord[] = [];
  private flushing = false;
  private timer?: NodeJS.Timeout;
  /** Closed: what is recorded later (a request finishing during the stop) is written by the last flush or dropped, never retried by a timer that would keep the process alive. */
  private closed = false;
  private dropped = 0;

  constructor(
    private readonly store: Store,
    private readonly log: (line: string) => void,
  ) {}

  /** Records an entry; entries are written in batches, a moment later. */
  push(record: AuditRecord): void {
    this.queue.push(record);
    if (this.queue.length > AUDIT_QUEUE) {
      this.queue.shift();
      if (this.dropped++ % 1000 === 0) this.log(`audit entries are waiting for the store: ${this.dropped} dropped so far`);
    }
    this.later(AUDIT_FLUSH_MS);
  }

  /** Writes a batch of what waits now (one flush at a time). */
  async flush(): Promise<void> {
    if (this.flushing || this.queue.length === 0) return;
    this.flushing = true;
    const batch = this.queue.splice(0, AUDIT_BATCH);
    try {
      await this.store.access.appendAudit(batch);
    } catch {
      // The store is down: keep them (ahead of newer ones) and try again.
      this.queue.unshift(...batch);
    } finally {
      this.flushing = false;
    }
    if (this.queue.length > 0) this.later(AUDIT_RETRY_MS);
  }

  /** No more timers; writes what waits once. */
  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    return this.flush();
  }

  private later(ms: number): void {
    if (this.closed) return;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, ms);
  }
}
