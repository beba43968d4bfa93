import type { Duplex } from 'node:stream';
import {
  decodeBody, encodeMessage, FrameDecoder, MessageType, ProtocolError, WireError,
  type Message,
} from '../protocol/index.js';
import { trace } from '../trace.js';

const OWNER = Symbol('vitefa.connection');
type Owned = Duplex & { [OWNER]: FramedConnection };

function onData(this: Owned, chunk: Buffer): void {
  this[OWNER].onData(chunk);
}
function onError(this: Owned, err: Error): void {
  this[OWNER].onSocketError(err);
}
function onClose(this: Owned): void {
  this[OWNER].socketClosed();
}

/**
 * Where a socket meets the codec: frames in, typed messages out. A protocol
 * error is answered with one error frame, then the connection closes. While
 * `handle` returns a promise, reading pauses (backpressure on busy handlers).
 */
export abstract class FramedConnection {
  readonly socket: Duplex;
  private readonly decoder: FrameDecoder;
  private closed = false;
  private busy = 0;

  constructor(socket: Duplex, maxFrameBytes: number) {
    this.socket = socket;
    this.decoder = new FrameDecoder(maxFrameBytes);
    // Shared listeners that find the connection on the socket: no closures per
    // connection (a server holds 100,000 of them).
    (socket as Owned)[OWNER] = this;
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  /** Handles one decoded message; may return a promise to hold further reads until it settles. */
  protected abstract handle(message: Message): void | Promise<void>;
  /** Called once when the connection has closed, for whatever reason. */
  protected abstract onClosed(reason: string): void;

  send(message: Message): void {
    this.write(encodeMessage(message));
  }

  write(frame: Buffer): void {
    if (!this.closed) this.socket.write(frame);
  }

  /** Sends an error frame that ends the session, then closes. */
  fail(status: WireError, message: string): void {
    if (this.closed) return;
    trace('conn', `closing with ${status}: ${message}`);
    this.send({ t: MessageType.Error, code: status, msg: message });
    this.end(message);
  }

  /** Graceful close: queued frames are flushed first. */
  end(reason = 'closed'): void {
    if (this.closed) return;
    this.closeReason = reason;
    this.socket.end();
    // A peer that never reads must not keep the socket open for ever.
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  /** Forced close. */
  destroy(reason = 'destroyed'): void {
    this.closeReason ??= reason;
    this.socket.destroy();
  }

  private closeReason: string | undefined;

  /** @internal */
  onData(chunk: Buffer): void {
    if (this.closed) return;
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.protocolFailure(err);
      return;
    }
    for (const body of frames) {
      let message: Message;
      try {
        message = decodeBody(body);
      } catch (err) {
        this.protocolFailure(err);
        return;
      }
      const pending = this.handle(message);
      if (pending !== undefined) this.hold(pending);
      if (this.closed) return;
    }
    if (this.decoder.failure !== undefined) this.protocolFailure(this.decoder.failure);
  }

  private hold(pending: Promise<void>): void {
    if (this.busy++ === 0) this.socket.pause();
    pending
      .catch((err: unknown) => this.protocolFailure(err))
      .finally(() => {
        if (--this.busy === 0 && !this.closed) this.socket.resume();
      });
  }

  private protocolFailure(err: unknown): void {
    if (err instanceof ProtocolError) {
      this.fail(err.status, err.message);
    } else {
      trace('conn', `internal error: ${(err as Error)?.stack ?? String(err)}`);
      this.fail(WireError.INTERNAL, 'internal error');
    }
  }

  /** @internal */
  onSocketError(err: Error): void {
    this.closeReason ??= err.message;
  }

  /** @internal */
  socketClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this.closeReason ?? 'connection closed by peer');
  }
}
