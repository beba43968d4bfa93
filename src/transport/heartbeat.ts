import { MessageType } from '../protocol/index.js';
import type { ClientConnection } from './client.js';

/**
 * The dialling side's liveness check of one connection: a Ping every
 * interval, and a connection whose Pong has not come by the next Ping is
 * destroyed (a paused or vanished peer closes no socket by itself). The
 * first Ping comes after a random half to whole interval, so connections
 * opened together do not ping together; the interval may change (a server
 * says how often it wants agents to ping).
 */
export class Heartbeat {
  private timer?: NodeJS.Timeout;
  private awaiting = false;
  private seq = 0;
  private conn: ClientConnection | undefined;
  private silence = '';

  /** `skip`: a beat is skipped (and nothing awaited) while it says so — e.g. while requests are in flight and the peer reads nothing more until it answers them. */
  constructor(private intervalMs: number, private readonly skip?: () => boolean) {}

  get interval(): number {
    return this.intervalMs;
  }

  start(conn: ClientConnection, silence: string): void {
    this.stop();
    this.conn = conn;
    this.silence = silence;
    this.awaiting = false;
    this.schedule(this.intervalMs * (0.5 + Math.random() / 2));
  }

  /** From now on, beat every `ms`: the next beat comes `ms` from now (or, before start, a random part of it after). */
  every(ms: number): void {
    this.intervalMs = ms;
    if (this.conn !== undefined && this.timer !== undefined) this.schedule(this.intervalMs);
  }

  /** A Pong arrived. */
  answered(): void {
    this.awaiting = false;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.conn = undefined;
  }

  private schedule(delay: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.beat(), delay);
    this.timer.unref();
  }

  private beat(): void {
    const conn = this.conn;
    if (conn === undefined) return;
    if (this.skip?.() === true) {
      this.awaiting = false;
    } else if (this.awaiting) {
      conn.destroy(this.silence);
      return;
    } else {
      this.awaiting = true;
      conn.send({ t: MessageType.Ping, n: ++this.seq });
    }
    this.schedule(this.intervalMs);
  }
}
