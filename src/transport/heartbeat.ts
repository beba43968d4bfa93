import { MessageType } from '../protocol/index.js';
import type { ClientConnection } from './client.js';

/**
 * The dialling side's liveness check of one connection: a Ping every
 * `intervalMs`, and a connection whose Pong has not come by the next Ping is
 * destroyed (a paused or vanished peer closes no socket by itself).
 */
export class Heartbeat {
  private timer?: NodeJS.Timeout;
  private awaiting = false;
  private seq = 0;

  /** `skip`: a beat is skipped (and nothing awaited) while it says so — e.g. while requests are in flight and the peer reads nothing more until it answers them. */
  constructor(private readonly intervalMs: number, private readonly skip?: () => boolean) {}

  start(conn: ClientConnection, silence: string): void {
    this.stop();
    this.awaiting = false;
    this.timer = setInterval(() => {
      if (this.skip?.() === true) {
        this.awaiting = false;
        return;
      }
      if (this.awaiting) {
        conn.destroy(silence);
        return;
      }
      this.awaiting = true;
      conn.send({ t: MessageType.Ping, n: ++this.seq });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** A Pong arrived. */
  answered(): void {
    this.awaiting = false;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
