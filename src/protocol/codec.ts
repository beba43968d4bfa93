import { Packr, Unpackr } from 'msgpackr';
import { MessageType, WireError } from './codes.js';
import { ProtocolError } from './errors.js';
import { frame } from './frame.js';
import { DEFAULT_DECODE_LIMITS, scanBody, type DecodeLimits } from './scan.js';
import { fail, type Check } from './check.js';
import { MESSAGE_CHECKERS, RESULT_CHECKERS } from './checkers.js';
import type { LayerRev, Message, Snapshot } from './messages.js';
import type { AdminOp } from './requests.js';
import type { ResultOf } from './results.js';
import type { Entry } from './shapes.js';

/**
 * msgpackr options, pinned here and nowhere else:
 * - useRecords false: plain msgpack maps that every language can decode;
 * - mapsAsObjects true: maps become plain objects (keys are always strings here);
 * - int64AsType 'number': revisions and times stay below 2^53 and are checked as safe integers;
 * - moreTypes false: no msgpackr-only extensions on the wire;
 * - skipValues [undefined]: an optional field left undefined is omitted, never
 *   written as msgpackr's "undefined" extension (maps then use fixmap when small).
 */
const MSGPACK_OPTIONS = {
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  moreTypes: false,
  bundleStrings: false,
  skipValues: [undefined],
} as const;

const packr = new Packr(MSGPACK_OPTIONS);
const unpackr = new Unpackr(MSGPACK_OPTIONS);

/** Encode a message body (msgpack, without the length prefix). */
export function encodeBody(message: Message): Buffer {
  return packr.pack(message);
}

/** Encode a message as one complete frame, ready to write to a socket. */
export function encodeMessage(message: Message): Buffer {
  return frame(encodeBody(message));
}

/**
 * A Snapshot message, its fields in the order every encoder of it uses (entries last). `layers`
 * only for an environment built on others: a plain one's snapshot is the same bytes as before.
 */
export function snapshotMessage(env: string, rev: number, entries: Entry[], chain?: string, layers?: LayerRev[]): Snapshot {
  return {
    t: MessageType.Snapshot, env, rev, ...(chain === undefined || chain === '' ? {} : { chain }), ...(layers === undefined ? {} : { layers }), entries,
  };
}

/**
 * A Snapshot frame built a part at a time, the same bytes encodeMessage
 * gives: `entries` packed in slices (each on its own, so a caller may yield
 * between them), then joined behind the message's other fields.
 */
export class SnapshotEncoder {
  private readonly parts: Buffer[] = [];
  private count = 0;
  /** `chain` and `layers` as in Snapshot; the same field order as `snapshotMessage` gives, so the bytes are the same. */
  constructor(private readonly env: string, private readonly rev: number, private readonly chain?: string, private readonly layers?: LayerRev[]) {}

  add(entries: [string, string][]): void {
    if (entries.length === 0) return;
    const packed = packr.pack(entries);
    // Drop the slice's own array header: the whole array gets one at the end.
    const first = packed[0];
    const header = first >= 0x90 && first <= 0x9f ? 1 : first === 0xdc ? 3 : 5;
    this.parts.push(packed.subarray(header));
    this.count += entries.length;
  }

  frame(): Buffer {
    // Every field but the entries, which come last and empty (one byte, 0x90), then the real array.
    const head = packr.pack(snapshotMessage(this.env, this.rev, [], this.chain, this.layers));
    const n = this.count;
    const arrayHeader = n <= 15 ? Buffer.from([0x90 | n]) : n <= 0xffff ? Buffer.from([0xdc, n >> 8, n & 0xff]) : Buffer.from([0xdd, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
    return frame(Buffer.concat([head.subarray(0, head.length - 1), arrayHeader, ...this.parts]));
  }
}

/**
 * Decode one frame body into a typed message. The body is scanned against
 * `limits` first, so that msgpackr only ever builds a message whose cost is
 * bounded (LIMIT_EXCEEDED otherwise). Anything that is not a valid message of
 * this protocol version raises ProtocolError(MALFORMED).
 */
export function decodeBody(body: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): Message {
  scanBody(body, limits);
  let raw: unknown;
  try {
    raw = unpackr.unpack(body);
  } catch (cause) {
    throw new ProtocolError(WireError.MALFORMED, 'frame body is not valid msgpack', { cause });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('message', 'a map');
  const t = (raw as { t?: unknown }).t;
  const check = typeof t === 'number' ? (MESSAGE_CHECKERS as Record<number, Check<Message>>)[t] : undefined;
  if (check === undefined) return fail('message.t', 'a known message type');
  return check(raw, 'message');
}

/**
 * A message this very program encoded and handed over between its own
 * processes (a cluster's primary to its workers), decoded without the checks
 * a message from a peer gets: its type alone is checked. Never for bytes
 * that came over a socket.
 */
export function decodeOwn(body: Uint8Array): Message {
  const raw = unpackr.unpack(body) as { t?: unknown } | null;
  if (typeof raw !== 'object' || raw === null || typeof raw.t !== 'number' || !Object.hasOwn(MESSAGE_CHECKERS, raw.t)) {
    return fail('message.t', 'a known message type');
  }
  return raw as Message;
}

/** Check the `res` of a Response against the operation of the request it answers. */
export function checkResult<K extends AdminOp>(op: K, res: unknown): ResultOf[K] {
  if (!Object.prototype.hasOwnProperty.call(RESULT_CHECKERS, op)) return fail('result', `the result of a known operation, not ${String(op)}`);
  return RESULT_CHECKERS[op](res, `result(${op})`);
}
