import { Duplex } from 'node:stream';
import {
  decodeBody, encodeMessage, FrameDecoder, type Message,
} from '../../src/protocol/index.js';

/**
 * One end of an in-memory connection. What one end writes the other reads,
 * with real backpressure: once the reader's buffer is full, the writer's
 * callbacks wait until it reads, so the writer's `writableLength` grows as a
 * socket's does when its peer stops reading.
 */
class MemoryEnd extends Duplex {
  peer!: MemoryEnd;
  /** The peer's write callback waiting for this end to read. */
  private waiting: (() => void) | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.peer.destroyed || this.peer.readableEnded) {
      callback();
      return;
    }
    if (this.peer.push(chunk)) callback();
    else this.peer.waiting = callback;
  }

  override _read(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
    if (!this.peer.destroyed) this.peer.destroy();
    callback(err);
  }
}

/** Two connected in-memory ends: [client, server]. */
export function memoryPair(highWaterMark = 16 * 1024): [Duplex, Duplex] {
  const a = new MemoryEnd({ allowHalfOpen: false, readableHighWaterMark: highWaterMark, writableHighWaterMark: highWaterMark });
  const b = new MemoryEnd({ allowHalfOpen: false, readableHighWaterMark: highWaterMark, writableHighWaterMark: highWaterMark });
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/**
 * The far end of a session, driven by a test: sends frames, decodes what
 * comes back (with generous limits), and knows when the server closed.
 */
export class TestPeer {
  readonly socket: Duplex;
  readonly received: Message[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder(512 * 1024 * 1024);
  private readonly waiters = new Set<() => void>();

  constructor(socket: Duplex, read = true) {
    this.socket = socket;
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('end', () => socket.end());
    if (read) this.read();
  }

  /** Starts (or resumes) taking what the server sends. */
  read(): void {
    if (this.socket.listenerCount('data') === 0) {
      this.socket.on('data', (chunk: Buffer) => {
        for (const body of this.decoder.push(chunk)) this.received.push(decodeBody(body, { maxElements: 1e8, maxDepth: 64 }));
        this.wake();
      });
    }
    this.socket.resume();
  }

  send(...messages: Message[]): void {
    this.raw(Buffer.concat(messages.map((m) => encodeMessage(m))));
  }

  raw(bytes: Buffer): void {
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.write(bytes);
  }

  /** The first message received (from `from` on) that matches, waiting up to `timeoutMs`. */
  async next<T extends Message>(match: (m: Message) => m is T, from = 0, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.slice(from).find(match);
      if (found !== undefined) return found;
      if (this.closed) throw new Error(`closed before the expected message; got ${JSON.stringify(this.received)}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting; got ${JSON.stringify(this.received)}`);
      await this.change(deadline - Date.now());
    }
  }

  /** Resolves once the server has closed the connection. */
  async whenClosed(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`still open after ${timeoutMs} ms; got ${JSON.stringify(this.received)}`);
      await this.change(deadline - Date.now());
    }
  }

  private change(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      this.waiters.add(done);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
