import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { WireError } from '../../protocol/index.js';
import { RequestError } from '../errors.js';
import type { ServerLimits } from '../limits.js';
import { planEntries, type PlanResult } from './validate.js';
import type { CheckTask } from './validate-worker.js';
import type { Found } from '../model/schemas/index.js';

/** A check on the thread that ran out of its time (limits.schemaCheckMs): the thread was ended. */
export class CheckTimedOut extends Error {}

/**
 * Where the keys and values of an apply are checked, and values against schemas that may take long: small ones at once,
 * those of bulkInPoolFrom keys or more on a thread of a small pool (started
 * on first use, its thread ended when idle), so that a 100,000-key apply —
 * a tenth of a second of JSON parsing — does not hold up the small writes
 * committed meanwhile.
 */
export class BulkPool {
  private pool: Piscina | undefined;
  private checks: Piscina | undefined;
  /** Each account's last check on the threads: the next one waits for it. */
  private readonly turns = new Map<string, Promise<void>>();
  /** Applies checked on the pool so far. */
  pooled = 0;
  private closed = false;
  constructor(private readonly limits: ServerLimits) {}

  async plan(entries: [string, string][]): Promise<[string, string][]> {
    const result: PlanResult = entries.length < this.limits.bulkInPoolFrom
      ? planEntries(entries, this.limits)
      : await (this.threads().run({ entries, limits: this.limits }) as Promise<PlanResult>).finally(() => this.pooled++);
    if ('status' in result) throw new RequestError(result.status, result.message);
    return result.planned;
  }

  /**
   * Checks values against schemas on a thread, for at most `timeoutMs` from when the check starts
   * there (a wait for a free thread does not count; the write's own deadline bounds that): a check
   * still running then is stopped (its thread ended; the next task starts another) and
   * CheckTimedOut is thrown. One account's checks go one at a time, so that one account's
   * pathological values cannot hold every thread.
   */
  async check(task: CheckTask, timeoutMs: number, who = ''): Promise<[number, Found[]][]> {
    const before = this.turns.get(who) ?? Promise.resolve();
    const mine = before.then(() => this.checkNow(task, timeoutMs));
    const turn = mine.then(() => undefined, () => undefined);
    this.turns.set(who, turn);
    void turn.then(() => {
      if (this.turns.get(who) === turn) this.turns.delete(who);
    });
    return mine;
  }

  private async checkNow(task: CheckTask, timeoutMs: number): Promise<[number, Found[]][]> {
    const controller = new AbortController();
    const { port1, port2 } = new MessageChannel();
    let timer: NodeJS.Timeout | undefined;
    port1.once('message', () => {
      timer = setTimeout(() => controller.abort(), timeoutMs);
    });
    try {
      return await (this.checkThreads().run({ ...task, started: port2 }, { name: 'check', signal: controller.signal, transferList: [port2] }) as Promise<[number, Found[]][]>);
    } catch (err) {
      if (controller.signal.aborted) throw new CheckTimedOut(`validation timed out after ${timeoutMs} ms`);
      throw err;
    } finally {
      clearTimeout(timer);
      port1.close();
    }
  }

  async close(): Promise<void> {
    // An apply still on its way must not start a new pool (its thread would outlive the server).
    this.closed = true;
    await Promise.all([this.pool?.destroy(), this.checks?.destroy()]);
    this.pool = undefined;
    this.checks = undefined;
  }

  /**
   * The schema checks' own threads (two, ended when idle): a check never waits behind an apply's
   * parsing, and one check that runs to its time limit leaves the other thread to the rest.
   */
  private checkThreads(): Piscina {
    if (this.closed) throw new RequestError(WireError.SHUTTING_DOWN, 'server is shutting down');
    const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
    this.checks ??= new Piscina({ filename: new URL(`./validate-worker.${ext}`, import.meta.url).href, minThreads: 0, maxThreads: 2, idleTimeout: 30_000 });
    return this.checks;
  }

  private threads(): Piscina {
    if (this.closed) throw new RequestError(WireError.SHUTTING_DOWN, 'server is shutting down');
    // The worker is this directory's validate-worker (.js when built, .ts when run from the sources).
    const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
    this.pool ??= new Piscina({ filename: new URL(`./validate-worker.${ext}`, import.meta.url).href, minThreads: 0, maxThreads: 1, idleTimeout: 30_000 });
    return this.pool;
  }
}
