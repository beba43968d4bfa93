import { WireError } from './codes.js';
import { ProtocolError } from './errors.js';

/** Bytes of the length prefix that starts every frame (unsigned 32-bit, big-endian). */
export const FRAME_HEADER_BYTES = 4;
/** Default largest frame body a receiver accepts: 64 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Prefix `body` with its length. */
export function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

const State = {
  /** 0: reading frames. */
  Open: 0,
  /** 1: a framing error happened; the stream cannot be resynchronised. */
  Failed: 1,
} as const;
type State = (typeof State)[keyof typeof State];

/**
 * Splits a byte stream into frame bodies. Chunks of any size are fed in;
 * frames are taken out one at a time with `next`, each checked against
 * `maxFrameBytes` as it is reached, so a receiver can raise the limit after
 * one frame (a hello) and have it apply to the very next one in the same
 * chunk, or stop taking frames after an error. A declared length above the
 * limit is refused as soon as its four header bytes are here, before any of
 * the body is buffered. After an error the decoder stays failed.
 */
export class FrameDecoder {
  /** Largest body accepted; may be changed between frames. */
  maxFrameBytes: number;
  private state: State = State.Open;
  /** Chunks received and not yet taken; the first is read from `offset`. */
  private chunks: Buffer[] = [];
  private offset = 0;
  private bytes = 0;
  /** The framing error, once one happened. */
  failure: ProtocolError | undefined;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held and not yet returned as a frame. */
  get buffered(): number {
    return this.bytes;
  }

  /** Adds the next chunk of the stream. */
  feed(chunk: Buffer): void {
    if (this.state === State.Failed) throw this.failure!;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /**
   * The next complete frame body, or undefined until more bytes arrive.
   * Throws (and stays failed) when a header declares more than the limit.
   * The returned buffer may share memory with a fed chunk.
   */
  next(): Buffer | undefined {
    if (this.state === State.Failed) throw this.failure!;
    if (this.bytes < FRAME_HEADER_BYTES) return undefined;
    const length = this.peekLength();
    if (length > this.maxFrameBytes) {
      this.state = State.Failed;
      this.chunks = [];
      this.bytes = 0;
      this.offset = 0;
      this.failure = new ProtocolError(
        WireError.FRAME_TOO_LARGE,
        `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes} bytes`,
      );
      throw this.failure;
    }
    if (this.bytes < FRAME_HEADER_BYTES + length) return undefined;
    this.take(FRAME_HEADER_BYTES);
    return this.take(length);
  }

  /**
   * Feeds `chunk` and returns every frame it completes. When a framing error
   * follows frames completed in the same chunk, those frames are returned and
   * the error is left in `failure` (and thrown by the next call); otherwise
   * it is thrown.
   */
  push(chunk: Buffer): Buffer[] {
    this.feed(chunk);
    const frames: Buffer[] = [];
    try {
      for (let body = this.next(); body !== undefined; body = this.next()) frames.push(body);
    } catch (err) {
      if (frames.length === 0) throw err;
    }
    return frames;
  }

  private peekLength(): number {
    const first = this.chunks[0];
    if (first.length - this.offset >= FRAME_HEADER_BYTES) return first.readUInt32BE(this.offset);
    let length = 0;
    let chunk = 0;
    let at = this.offset;
    for (let i = 0; i < FRAME_HEADER_BYTES; i++) {
      while (at >= this.chunks[chunk].length) {
        chunk++;
        at = 0;
      }
      length = length * 256 + this.chunks[chunk][at++];
    }
    return length;
  }

  /**
   * Removes the next `n` buffered bytes (n <= buffered): a view when they lie
   * in one chunk, else a copy. Once nothing is buffered the chunk list is
   * replaced by a fresh empty one: an array that has grown keeps a backing
   * store of 17 slots, and a server holds 100,000 decoders.
   */
  private take(n: number): Buffer {
    const out = this.cut(n);
    if (this.bytes === 0 && this.chunks.length === 0) this.chunks = [];
    return out;
  }

  private cut(n: number): Buffer {
    this.bytes -= n;
    const first = this.chunks[0];
    if (first === undefined) return Buffer.alloc(0);
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0];
      const count = Math.min(n - filled, chunk.length - this.offset);
      chunk.copy(out, filled, this.offset, this.offset + count);
      filled += count;
      this.offset += count;
      if (this.offset === chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    return out;
  }
}
