import type { Duplex } from 'node:stream';
import { encodeMessage, MessageType, wireErrorName, type WireError } from '../../protocol/index.js';
import { RateLimitedLog } from '../../log.js';

/** Refused connections allowed to linger for their error frame at once; beyond, they are dropped. */
const REFUSING_AT_ONCE = 1000;
/** How long a refused connection may take its error frame. */
const LINGER_MS = 100;

export interface RefusalOptions {
  log: (line: string) => void;
  /** Lines a second at most (twice as many in a burst); more are counted, not written. */
  linesPerSecond: number;
  /** Put before each line ("peer port: "), and before each counter's name ("peer:"); none on the client port. */
  prefix?: { line: string; counter: string };
}

/**
 * The refusals of one port: every session the server ended or refused is
 * counted by wire status name (for `status`) and logged, a few lines a
 * second at most; a connection refused before it is taken gets one Error
 * frame and a moment to read it, and a flood of them holds no descriptors.
 */
export class Refusals {
  private readonly lines: RateLimitedLog;
  private readonly prefix: { line: string; counter: string };
  private readonly counts = new Map<string, number>();
  /** Refused connections still open (taking their error frame). */
  private refusing = 0;

  constructor(options: RefusalOptions) {
    this.lines = new RateLimitedLog(options.log, options.linesPerSecond, options.linesPerSecond * 2);
    this.prefix = options.prefix ?? { line: '', counter: '' };
  }

  /** Counts (and logs, a few lines a second at most) a session this server ended or refused. */
  count(addr: string, status: WireError, message: string): void {
    const name = wireErrorName(status) ?? String(status);
    const key = `${this.prefix.counter}${name}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.lines.log(() => `${this.prefix.line}closed ${addr}: ${name}: ${message.length > 300 ? `${message.slice(0, 300)}…` : message}`);
  }

  /** Logs a line about the port itself (an accept that failed), within the same rate. */
  note(line: string): void {
    this.lines.log(`${this.prefix.line}${line}`);
  }

  /** Counts a connection refused before it was taken, sends it its error and closes it. */
  refuse(socket: Duplex, addr: string, status: WireError, message: string): void {
    this.count(addr, status, message);
    socket.on('error', () => undefined);
    if (this.refusing >= REFUSING_AT_ONCE) {
      socket.destroy();
      return;
    }
    this.refusing++;
    socket.once('close', () => void this.refusing--);
    socket.end(encodeMessage({ t: MessageType.Error, code: status, msg: message }));
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  }

  /** By wire status name (with the port's prefix). */
  get counters(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
