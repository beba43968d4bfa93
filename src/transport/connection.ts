import type { Duplex } from 'node:stream';
import {
  decodeBody, encodeMessage, FrameDecoder, MessageType, ProtocolError, WireError,
  type DecodeLimits, type Message,
} from '../protocol/index.js';
import { reportFault } from '../log.js';
import { trace } from '../trace.js';

/** What a connection accepts from its peer: frame size, then values and nesting per message. */
export interface ReceiveLimits extends DecodeLimits {
  maxFrameBytes: number;
  /**
   * Bytes queued towards the peer and not yet taken by the kernel above
   * which reading pauses until they drain: a peer that sends requests (or
   * pings) without reading the answers cannot make this side queue without bound.
   */
  replyBufferBytes: number;
}

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
function onDrain(this: Owned): void {
  this[OWNER].outputDrained();
}

const State = {
  /** 0: frames are read and handled. */
  Open: 0,
  /** 1: the session ended (an error frame may still be flushing); nothing more is read or sent. */
  Ending: 1,
  /** 2: the socket has closed. */
  Closed: 2,
} as const;
type State = (typeof State)[keyof typeof State];

/**
 * Where a socket meets the codec and the session: frames in, typed messages
 * out, and the one error path for both. Whatever goes wrong with what the
 * peer sent — a framing error, a message past the limits, a handler that
 * throws or whose promise rejects — ends this one session the same way:
 * one Error frame, then close; frames that arrived after it are not handled.
 * A failure that is not the peer's fault is also reported with its stack.
 *
 * Frames are taken from the decoder one at a time, so limits raised by one
 * message (the hello) apply to the next, and reading pauses while a handler's
 * promise is pending or while replies wait to be read.
 */
export abstract class FramedConnection {
  readonly socket: Duplex;
  private readonly decoder: FrameDecoder;
  /** Shared by every connection in the same phase (never copied: a server holds 100,000 connections). */
  private limits: ReceiveLimits;
  private state: State = State.Open;
  private busy = 0;
  private outputPaused = false;
  private closeReason: string | undefined;
  private written = 0;

  constructor(socket: Duplex, limits: ReceiveLimits) {
    this.socket = socket;
    this.decoder = new FrameDecoder(limits.maxFrameBytes);
    this.limits = limits;
    // Shared listeners that find the connection on the socket: no closures per
    // connection (a server holds 100,000 of them).
    (socket as Owned)[OWNER] = this;
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  /** True once the session has ended (or is ending): nothing more is sent or handled. */
  get isClosed(): boolean {
    return this.state !== State.Open;
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  /** Bytes handed to the socket so far (sent or still queued). */
  get bytesWritten(): number {
    return this.written;
  }

  /** Applies from the next frame on (a session raises them once its peer has said who it is). */
  setLimits(limits: ReceiveLimits): void {
    this.decoder.maxFrameBytes = limits.maxFrameBytes;
    this.limits = limits;
  }

  /** Handles one decoded message; may return a promise to hold further reads until it settles. */
  protected abstract handle(message: Message): void | Promise<void>;
  /** Called once when the connection has closed, for whatever reason. */
  protected abstract onClosed(reason: string): void;
  /** Where a failure that is not the peer's fault is reported (with its stack). */
  protected fault(err: unknown): void {
    reportFault(`${this.constructor.name}`, err);
  }

  send(message: Message): void {
    this.write(encodeMessage(message));
  }

  write(frame: Buffer): void {
    if (this.state !== State.Open) return;
    this.written += frame.length;
    this.socket.write(frame);
  }

  /** Sends an error frame that ends the session (with `retry` when the peer should try again after that many ms), then closes. */
  fail(status: WireError, message: string, retryMs?: number): void {
    if (this.state !== State.Open) return;
    trace('conn', `closing with ${status}: ${message}`);
    this.send({ t: MessageType.Error, code: status, msg: message, ...(retryMs === undefined ? {} : { retry: retryMs }) });
    this.end(message);
  }

  /** Graceful close: queued frames are flushed first. */
  end(reason = 'closed'): void {
    if (this.state !== State.Open) return;
    this.state = State.Ending;
    this.closeReason = reason;
    this.socket.end();
    // A peer that never reads must not keep the socket open for ever.
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  /** Forced close. */
  destroy(reason = 'destroyed'): void {
    if (this.state === State.Open) this.state = State.Ending;
    this.closeReason ??= reason;
    this.socket.destroy();
  }

  /**
   * Ends the session for `err`: the peer's violation (ProtocolError) is
   * answered with its status; anything else is this side's fault, reported
   * and answered with INTERNAL.
   */
  protected failWith(err: unknown): void {
    if (err instanceof ProtocolError) {
      this.fail(err.status, err.message, err.retryMs);
      return;
    }
    if (this.state === State.Open) this.fault(err);
    this.fail(WireError.INTERNAL, 'internal error');
  }

  /** @internal */
  onData(chunk: Buffer): void {
    if (this.state !== State.Open) return;
    try {
      this.decoder.feed(chunk);
    } catch (err) {
      this.failWith(err);
      return;
    }
    this.drain();
  }

  /** Handles buffered frames until none is complete, the session ends, or reading must pause. */
  private drain(): void {
    while (this.state === State.Open && this.busy === 0 && !this.outputPaused) {
      let pending: void | Promise<void>;
      try {
        const body = this.decoder.next();
        if (body === undefined) return;
        pending = this.handle(decodeBody(body, this.limits));
      } catch (err) {
        this.failWith(err);
        return;
      }
      if (pending !== undefined) this.hold(pending);
      // Only once the socket itself asks for a drain: below its own high-water mark 'drain' would never come.
      if (this.socket.writableLength > this.limits.replyBufferBytes && this.socket.writableNeedDrain && this.state === State.Open) this.pauseForOutput();
    }
  }

  private hold(pending: Promise<void>): void {
    if (this.busy++ === 0) this.socket.pause();
    pending.then(
      () => this.release(),
      (err: unknown) => {
        this.failWith(err);
        this.release();
      },
    );
  }

  private release(): void {
    if (--this.busy > 0 || this.state !== State.Open) return;
    this.resumeReading();
  }

  private pauseForOutput(): void {
    if (this.outputPaused) return;
    this.outputPaused = true;
    this.socket.pause();
    this.socket.once('drain', onDrain);
  }

  /** @internal */
  outputDrained(): void {
    this.outputPaused = false;
    if (this.state === State.Open && this.busy === 0) this.resumeReading();
  }

  private resumeReading(): void {
    this.drain();
    if (this.state === State.Open && this.busy === 0 && !this.outputPaused) this.socket.resume();
  }

  /** @internal */
  onSocketError(err: Error): void {
    this.closeReason ??= err.message;
  }

  /** @internal */
  socketClosed(): void {
    if (this.state === State.Closed) return;
    this.state = State.Closed;
    try {
      this.onClosed(this.closeReason ?? 'connection closed by peer');
    } catch (err) {
      this.fault(err);
    }
  }
}
