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

  constructor(private readonly intervalMs: number) {}

  start(conn: ClientConnection, silence: string): void {
    this.stop();
    this.awaiting = false;
    this.timer = setInterval(() => {
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
