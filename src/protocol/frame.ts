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
  /** 0: waiting for (the rest of) a length prefix. */
  Header: 0,
  /** 1: waiting for (the rest of) a body of known length. */
  Body: 1,
  /** 2: a framing error happened; the stream cannot be resynchronised. */
  Failed: 2,
} as const;
type State = (typeof State)[keyof typeof State];

/**
 * Splits a byte stream into frame bodies. Resumes across chunks of any size;
 * a declared length above `maxFrameBytes` is refused before any of the body
 * is buffered. After an error the decoder stays failed.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  private state: State = State.Header;
  /** Chunks received but not yet returned as a frame. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private bodyBytes = 0;
  /** The framing error, once one happened; frames completed before it were still returned. */
  failure: ProtocolError | undefined;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held while waiting for the rest of a frame. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /**
   * Feed the next chunk; returns every frame body it completes (possibly none).
   * Returned buffers may share memory with `chunk`. A framing error throws,
   * unless frames completed before it in the same chunk: then those are
   * returned and the error is left in `failure` (and thrown by the next push).
   */
  push(chunk: Buffer): Buffer[] {
    if (this.state === State.Failed) {
      throw this.failure ?? new ProtocolError(WireError.MALFORMED, 'frame decoder used after a framing error');
    }
    const frames: Buffer[] = [];
    let buf = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      const need = this.state === State.Header ? FRAME_HEADER_BYTES : this.bodyBytes;
      if (this.pendingBytes < need) return frames;
      buf = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let offset = 0;
    for (;;) {
      if (this.state === State.Header) {
        if (buf.length - offset < FRAME_HEADER_BYTES) break;
        const length = buf.readUInt32BE(offset);
        if (length > this.maxFrameBytes) {
          this.state = State.Failed;
          this.pending = [];
          this.pendingBytes = 0;
          this.failure = new ProtocolError(
            WireError.FRAME_TOO_LARGE,
            `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes} bytes`,
          );
          // Frames completed earlier in this chunk are still delivered; the caller checks `failure`.
          if (frames.length === 0) throw this.failure;
          return frames;
        }
        offset += FRAME_HEADER_BYTES;
        this.bodyBytes = length;
        this.state = State.Body;
      }
      if (buf.length - offset < this.bodyBytes) break;
      frames.push(buf.subarray(offset, offset + this.bodyBytes));
      offset += this.bodyBytes;
      this.state = State.Header;
    }
    if (offset < buf.length) {
      const rest = buf.subarray(offset);
      this.pending.push(rest);
      this.pendingBytes = rest.length;
    }
    return frames;
  }
}
