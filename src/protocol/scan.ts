import { WireError } from './codes.js';
import { ProtocolError } from './errors.js';

/**
 * Bounds on what one message may cost to decode, checked by `scanBody`
 * before msgpackr builds anything. A receiver picks them per peer: a
 * connection that has not said hello gets small ones.
 */
export interface DecodeLimits {
  /** Values in the message, counting every map key, map value and array element. */
  maxElements: number;
  /** Containers nested inside each other (the top-level map is depth 1). */
  maxDepth: number;
}

/** Generous bounds for a peer that proved who it is (every message of this protocol fits well within them). */
export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxElements: 4_000_000, maxDepth: 16 };

/** The deepest nesting any limit may allow: the scanner's stack is this long. */
export const MAX_DEPTH_LIMIT = 64;

function malformed(offset: number, why: string): never {
  throw new ProtocolError(WireError.MALFORMED, `frame body is not valid msgpack: ${why} at byte ${offset}`);
}

function tooMany(limits: DecodeLimits): never {
  throw new ProtocolError(WireError.LIMIT_EXCEEDED, `message holds more than ${limits.maxElements} values`);
}

function tooDeep(maxDepth: number): never {
  throw new ProtocolError(WireError.LIMIT_EXCEEDED, `message nests deeper than ${maxDepth} levels`);
}

/**
 * Scratch stack of the scan: values still to read in each open container.
 * scanBody runs to completion synchronously and never re-enters, so one
 * stack serves every call (no allocation per message).
 */
const remaining = new Float64Array(MAX_DEPTH_LIMIT + 1);

/**
 * Walks one msgpack value without building it: no allocation, constant work
 * per value (strings and binaries are skipped by their length), an explicit
 * stack instead of recursion. Throws before any cost is paid for a body
 * that holds more values or deeper nesting than `limits` allow, declares a
 * container or string longer than the bytes that follow, uses an extension
 * type (this protocol sends none), or is not exactly one value. A body it
 * accepts decodes in time and memory proportional to its element count.
 * Returns the number of values inside containers.
 */
export function scanBody(body: Uint8Array, limits: DecodeLimits): number {
  const end = body.length;
  const maxDepth = Math.min(limits.maxDepth, MAX_DEPTH_LIMIT);
  const maxElements = limits.maxElements;
  let depth = 0;
  remaining[0] = 1;
  let elements = 0;
  let pos = 0;
  while (depth >= 0) {
    if (remaining[depth] === 0) {
      depth--;
      continue;
    }
    remaining[depth]--;
    if (pos >= end) malformed(pos, 'truncated value');
    const b = body[pos++];
    let count = 0; // values of a container opened by this byte
    let skip = 0; // bytes of payload to step over
    if (b <= 0x7f || b >= 0xe0) continue; // fixint
    if (b <= 0x8f) count = (b & 0x0f) * 2; // fixmap
    else if (b <= 0x9f) count = b & 0x0f; // fixarray
    else if (b <= 0xbf) skip = b & 0x1f; // fixstr
    else {
      let size = 0; // bytes of a length field that follows
      switch (b) {
        case 0xc0: case 0xc2: case 0xc3: continue; // nil, false, true
        case 0xc4: case 0xd9: size = 1; break; // bin8, str8
        case 0xc5: case 0xda: size = 2; break; // bin16, str16
        case 0xc6: case 0xdb: size = 4; break; // bin32, str32
        case 0xca: skip = 4; break; // float32
        case 0xcb: skip = 8; break; // float64
        case 0xcc: case 0xd0: skip = 1; break; // uint8, int8
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xdc: case 0xde: size = 2; break; // array16, map16
        case 0xdd: case 0xdf: size = 4; break; // array32, map32
        case 0xc1: return malformed(pos - 1, 'reserved byte 0xc1');
        default: return malformed(pos - 1, `extension type 0x${b.toString(16)}`); // 0xc7-0xc9, 0xd4-0xd8
      }
      if (size > 0) {
        if (end - pos < size) malformed(pos, 'truncated length');
        let n = 0;
        for (let i = 0; i < size; i++) n = n * 256 + body[pos++];
        if (b === 0xdc || b === 0xdd) count = n;
        else if (b === 0xde || b === 0xdf) count = n * 2;
        else skip = n;
      }
    }
    if (skip > 0) {
      if (end - pos < skip) malformed(pos, `value of ${skip} bytes in ${end - pos}`);
      pos += skip;
    } else if (count > 0) {
      // Every value takes at least one byte: a count beyond the bytes left is a lie.
      if (count > end - pos) malformed(pos, `container of ${count} values in ${end - pos} bytes`);
      elements += count;
      if (elements > maxElements) tooMany(limits);
      if (depth >= maxDepth) tooDeep(maxDepth);
      remaining[++depth] = count;
    }
  }
  if (pos !== end) malformed(pos, 'bytes after the value');
  return elements;
}
