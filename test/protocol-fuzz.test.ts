/**
 * Deterministic fuzzing of the decoding side of the protocol: whatever bytes
 * arrive, the only error that may leave FrameDecoder, decodeBody or
 * checkResult is a ProtocolError. Any other error (TypeError, RangeError, ...)
 * fails with the iteration seed and the input bytes, so it can be replayed:
 *   FUZZ_SEED=<seed> FUZZ_ITERATIONS=1 node --import tsx --test test/protocol-fuzz.test.ts
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import {
  FRAME_HEADER_BYTES, FrameDecoder, MessageType, ProtocolError, WireError,
  DEFAULT_DECODE_LIMITS, checkResult, decodeBody, encodeBody, encodeMessage, frame,
} from '../src/protocol/index.js';
import type { AdminOp, AdminRequest, Message } from '../src/protocol/index.js';

const BASE_SEED = Number(process.env['FUZZ_SEED'] ?? 0x5eed_c0de) >>> 0;
const ITERATIONS = Number(process.env['FUZZ_ITERATIONS'] ?? 25_000);

// ---------------------------------------------------------------------------
// Seeded PRNG and generators
// ---------------------------------------------------------------------------

type Rng = () => number;

/** mulberry32: small, fast, good enough for fuzzing; fully determined by the seed. */
function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!;
const chance = (rng: Rng, p: number): boolean => rng() < p;

function randomBytes(rng: Rng, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = int(rng, 256);
  return out;
}

/** Well-formed strings (no lone surrogates), mixing ASCII, Latin, CJK and astral characters. */
function randomText(rng: Rng, maxLength = 12): string {
  const length = chance(rng, 0.03) ? 200 + int(rng, 200) : int(rng, maxLength + 1);
  let s = '';
  for (let i = 0; i < length; i++) {
    const kind = int(rng, 10);
    if (kind < 6) s += String.fromCharCode(0x20 + int(rng, 0x5f));
    else if (kind < 8) s += String.fromCharCode(0xa0 + int(rng, 0x500));
    else if (kind < 9) s += String.fromCharCode(0x4e00 + int(rng, 0x1000));
    else s += String.fromCodePoint(0x1f300 + int(rng, 0x300));
  }
  return s;
}

/** Any JS string, including lone surrogates and control characters. */
function randomAnyString(rng: Rng): string {
  if (chance(rng, 0.7)) return randomText(rng);
  let s = '';
  const length = int(rng, 10);
  for (let i = 0; i < length; i++) s += String.fromCharCode(int(rng, 0x10000));
  return s;
}

const INTERESTING_NUMBERS = [
  0, -0, 1, -1, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32,
  2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, -(2 ** 31), -(2 ** 53), 0.5, 1.5, -1.5, 1e-300, 1e300,
  Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.MAX_VALUE, Number.MIN_VALUE,
];

function randomNumber(rng: Rng): number {
  switch (int(rng, 4)) {
    case 0: return int(rng, 300);
    case 1: return int(rng, 2 ** 53);
    case 2: return (rng() - 0.5) * 10 ** int(rng, 20);
    default: return pick(rng, INTERESTING_NUMBERS);
  }
}

const FIELD_NAMES = [
  't', 'v', 'role', 'id', 'token', 'peers', 'all', 'envs', 'env', 'rev', 'prev', 'time', 'author', 'op',
  'changes', 'drop', 'entries', 'code', 'msg', 'n', 'req', 'res', 'key', 'value', 'prefix', 'path',
  'replace', 'limit', 'before', 'from', 'to', '__proto__', 'constructor', 'toString', 'length', '',
];

function randomKey(rng: Rng): string {
  return chance(rng, 0.7) ? pick(rng, FIELD_NAMES) : randomAnyString(rng);
}

/**
 * A random JS value. With `exact`, only values that msgpack carries unchanged
 * (no lone surrogates, no -0), so a round trip must give them back.
 */
function randomValue(rng: Rng, depth = 0, exact = false): unknown {
  const leafOnly = depth >= 6;
  switch (int(rng, leafOnly ? 6 : 9)) {
    case 0: return null;
    case 1: return chance(rng, 0.5);
    case 2:
    case 3: {
      const n = randomNumber(rng);
      return exact && Object.is(n, -0) ? 0 : n;
    }
    case 4: return exact ? randomText(rng) : randomAnyString(rng);
    case 5: return chance(rng, 0.5) ? randomText(rng) : pick(rng, FIELD_NAMES);
    case 6: return Array.from({ length: int(rng, 5) }, () => randomValue(rng, depth + 1, exact));
    case 7: {
      const o: Record<string, unknown> = {};
      const n = int(rng, 6);
      for (let i = 0; i < n; i++) Object.defineProperty(o, exact ? randomText(rng) : randomKey(rng), { value: randomValue(rng, depth + 1, exact), enumerable: true, configurable: true, writable: true });
      return o;
    }
    default: return chance(rng, 0.5) ? randomBytes(rng, int(rng, 8)) : [randomText(rng), chance(rng, 0.5) ? null : randomText(rng)];
  }
}

const uint = (rng: Rng): number => (chance(rng, 0.8) ? int(rng, 1000) : int(rng, 2 ** 53));
const json = (rng: Rng): string => JSON.stringify(randomValue(rng, 4) ?? null) ?? 'null';
const ROLES = ['server', 'agent', 'admin', 'peer'] as const;
const OPS: AdminOp[] = ['env.add', 'env.del', 'env.list', 'set', 'get', 'del', 'list', 'merge', 'clear', 'apply', 'history', 'diff', 'rollback', 'status'];

function randomRequest(rng: Rng): AdminRequest {
  const env = randomText(rng);
  const key = randomText(rng);
  const op = pick(rng, OPS);
  switch (op) {
    case 'env.add':
    case 'env.del': return { op, env };
    case 'env.list': return { op };
    case 'set':
    case 'merge': return { op, env, key, value: json(rng) };
    case 'get':
    case 'del': return { op, env, key };
    case 'list': return chance(rng, 0.5) ? { op, env } : { op, env, prefix: randomText(rng) };
    case 'clear': return { op, env, key, path: Array.from({ length: int(rng, 4) }, () => randomText(rng)) };
    case 'apply': return { op, env, entries: Array.from({ length: int(rng, 4) }, (): [string, string] => [randomText(rng), json(rng)]), replace: chance(rng, 0.5) };
    case 'history': {
      const r: AdminRequest = { op, env };
      if (chance(rng, 0.5)) r.key = key;
      if (chance(rng, 0.5)) r.limit = uint(rng);
      if (chance(rng, 0.5)) r.before = uint(rng);
      return r;
    }
    case 'diff': return chance(rng, 0.5) ? { op, env, from: uint(rng) } : { op, env, from: uint(rng), to: uint(rng) };
    case 'rollback': return { op, env, rev: uint(rng) };
    case 'status': return chance(rng, 0.5) ? { op } : { op, env };
  }
}

/** A valid message of a random type (only well-formed strings, only safe non-negative integers). */
function randomMessage(rng: Rng): Message {
  const envs = () => Array.from({ length: int(rng, 4) }, () => ({ env: randomText(rng), rev: uint(rng) }));
  switch (int(rng, 10) + 1) {
    case 1: {
      const m: Message = { t: 1, v: int(rng, 3), role: pick(rng, ROLES), id: randomText(rng) };
      if (chance(rng, 0.3)) m.token = randomText(rng);
      if (chance(rng, 0.3)) m.peers = Array.from({ length: int(rng, 4) }, () => randomText(rng));
      return m;
    }
    case 2: return { t: 2, all: chance(rng, 0.5), envs: envs() };
    case 3: return { t: 3, env: randomText(rng), rev: uint(rng), entries: Array.from({ length: int(rng, 5) }, (): [string, string] => [randomText(rng), json(rng)]) };
    case 4: {
      const m: Message = {
        t: 4, env: randomText(rng), rev: uint(rng), prev: uint(rng), time: int(rng, 2 ** 42), author: randomText(rng), op: pick(rng, OPS),
        changes: Array.from({ length: int(rng, 5) }, (): [string, string | null] => [randomText(rng), chance(rng, 0.3) ? null : json(rng)]),
      };
      if (chance(rng, 0.2)) m.drop = chance(rng, 0.5);
      return m;
    }
    case 5: return { t: 5, env: randomText(rng), rev: uint(rng) };
    case 6: return chance(rng, 0.5)
      ? { t: 6, code: pick(rng, Object.values(WireError)), msg: randomText(rng) }
      : { t: 6, code: uint(rng), msg: randomText(rng), id: uint(rng) };
    case 7: return { t: 7, n: uint(rng) };
    case 8: return { t: 8, n: uint(rng) };
    case 9: return { t: 9, id: uint(rng), req: randomRequest(rng) };
    default: return { t: 10, id: uint(rng), res: randomValue(rng, 2, true) };
  }
}

/** A valid message with one field (top level or inside `req`) replaced, removed or added. */
function mutateMessage(rng: Rng, message: Message): Record<string, unknown> {
  const m = structuredClone(message) as unknown as Record<string, unknown>;
  const target = m['req'] !== undefined && chance(rng, 0.5) ? (m['req'] as Record<string, unknown>) : m;
  const keys = Object.keys(target);
  switch (int(rng, 3)) {
    case 0: target[pick(rng, keys)] = randomValue(rng, 3); break;
    case 1: delete target[pick(rng, keys)]; break;
    default: target[randomKey(rng)] = randomValue(rng, 3);
  }
  return m;
}

/** Bytes built from msgpack tokens that tend to reach unusual decoder paths. */
const TOKENS = [
  '90', '91', '92', '9f', '80', '81', '8f', 'a0', 'a1 74', 'a3 656e76', 'c0', 'c1', 'c2', 'c3',
  'c4 00', 'c4 03 010203', 'c5 0001 00', 'c6 ffffffff', 'c7 01 00 00', 'c7 ff 69', 'c8 0001 65 00', 'c9 ffffffff 74',
  'ca 7fc00000', 'cb 7ff0000000000000', 'cb 8000000000000000', 'cc ff', 'cd ffff', 'ce ffffffff', 'cf ffffffffffffffff',
  'd0 80', 'd1 8000', 'd2 80000000', 'd3 8000000000000000', 'd4 00 00', 'd4 72 40', 'd4 62 00', 'd4 65 00', 'd4 69 00', 'd4 70 00',
  'd4 73 00', 'd4 74 00', 'd4 78 00', 'd4 ff 00', 'd5 72 40 00', 'd5 42 ffff', 'd6 ff 00000000', 'd6 69 00000001', 'd6 70 00000001',
  'd7 ff 0000000000000000', 'd8 42 00000000000000000000000000000001', 'd9 00', 'd9 ff', 'da ffff', 'db ffffffff',
  'dc ffff', 'dd ffffffff', 'de ffff', 'df ffffffff', 'ff', 'e0', '7f', '40', '5f', '60',
];

function tokenSoup(rng: Rng): Buffer {
  const parts: Buffer[] = [];
  const n = 1 + int(rng, 12);
  for (let i = 0; i < n; i++) {
    parts.push(chance(rng, 0.85) ? Buffer.from(pick(rng, TOKENS).replace(/\s+/g, ''), 'hex') : randomBytes(rng, 1 + int(rng, 4)));
  }
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------
// The property: only ProtocolError escapes
// ---------------------------------------------------------------------------

const KNOWN_STATUSES = new Set<number>(Object.values(WireError));
/** How framing errors surfaced: thrown by push(), or left in `failure` after returning frames. */
const framingErrors = { thrown: 0, afterFrames: 0 };
const raw = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

class Case {
  constructor(readonly seed: number, readonly kind: string, readonly input: Buffer) {}

  fail(what: string, err: unknown): never {
    const detail = err instanceof Error ? `${err.constructor.name}: ${err.message}\n${err.stack ?? ''}` : String(err);
    assert.fail(`fuzz ${this.kind} seed=0x${this.seed.toString(16)} (FUZZ_SEED=${this.seed} FUZZ_ITERATIONS=1): ${what} threw ${detail}\ninput=${this.input.toString('hex')}`);
  }

  /** Run fn; a ProtocolError with a known status is fine, anything else fails the test. */
  guard<T>(what: string, fn: () => T): T | ProtocolError {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ProtocolError && KNOWN_STATUSES.has(err.status)) return err;
      return this.fail(what, err);
    }
  }

  /** decodeBody; on success the result must be a message that survives re-encoding. */
  decode(body: Uint8Array): Message | ProtocolError {
    const result = this.guard('decodeBody', () => decodeBody(body));
    if (result instanceof ProtocolError) {
      if (result.status !== WireError.MALFORMED) this.fail('decodeBody (status)', result);
      return result;
    }
    if (!Object.values(MessageType).includes(result.t)) this.fail('decodeBody (type)', new Error(`t=${String(result.t)}`));
    if (result.t === MessageType.Response) {
      for (const op of OPS) this.guard(`checkResult(${op})`, () => checkResult(op, result.res));
    } else {
      const again = this.guard('decodeBody(encodeBody(decoded))', () => decodeBody(encodeBody(result)));
      if (again instanceof ProtocolError) this.fail('re-decoding a decoded message', again);
      if (JSON.stringify(again) !== JSON.stringify(result)) {
        this.fail('re-decoding a decoded message', new Error(`${JSON.stringify(result)} became ${JSON.stringify(again)}`));
      }
    }
    return result;
  }

  /**
   * Push bytes through a fresh FrameDecoder in random chunks and decode every frame.
   * A framing error either throws from push(), or (when frames completed before it in
   * the same chunk) comes with those frames and is left in `decoder.failure`; either
   * way it must be a ProtocolError FRAME_TOO_LARGE and every later push must throw.
   */
  stream(rng: Rng, bytes: Buffer, max: number): { frames: number; failed: boolean } {
    const decoder = new FrameDecoder(max);
    let frames = 0;
    const failed = (error: unknown): { frames: number; failed: boolean } => {
      if (!(error instanceof ProtocolError)) this.fail('FrameDecoder.failure', error);
      if (error.status !== WireError.FRAME_TOO_LARGE) this.fail('FrameDecoder.push (status)', error);
      if (decoder.failure !== error) this.fail('FrameDecoder.failure', new Error('the framing error is not recorded in failure'));
      if (decoder.buffered !== 0) this.fail('FrameDecoder.buffered', new Error(`${decoder.buffered} bytes kept after a framing error`));
      const after = this.guard('FrameDecoder.push after failure', () => decoder.push(Buffer.from('00000000', 'hex')));
      if (!(after instanceof ProtocolError)) this.fail('FrameDecoder.push after failure', new Error('accepted input after a framing error'));
      if (after !== error) this.fail('FrameDecoder.push after failure', new Error(`threw another error: ${after.message}`));
      return { frames, failed: true };
    };
    for (let offset = 0; offset < bytes.length;) {
      const size = chance(rng, 0.2) ? 1 : 1 + int(rng, 40);
      const chunk = bytes.subarray(offset, offset + size);
      offset += size;
      const out = this.guard('FrameDecoder.push', () => decoder.push(chunk));
      if (out instanceof ProtocolError) {
        framingErrors.thrown++;
        return failed(out);
      }
      if (decoder.failure !== undefined && out.length === 0) {
        this.fail('FrameDecoder.push', new Error('returned no frame yet left a failure instead of throwing'));
      }
      for (const body of out) {
        if (body.length > max) this.fail('FrameDecoder.push', new Error(`returned ${body.length} bytes above max ${max}`));
        frames++;
        this.decode(body);
      }
      if (decoder.failure !== undefined) {
        framingErrors.afterFrames++;
        return failed(decoder.failure);
      }
    }
    return { frames, failed: false };
  }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe('fuzz', () => {
  test(`${ITERATIONS} seeded iterations: only ProtocolError escapes (base seed 0x${BASE_SEED.toString(16)})`, () => {
    const kinds = ['random bytes', 'token soup', 'truncated frame', 'flipped frames', 'random msgpack'] as const;
    const counts: Record<string, number> = {};
    let decodedOk = 0;
    const started = Date.now();
    for (let i = 0; i < ITERATIONS; i++) {
      const seed = ITERATIONS === 1 ? BASE_SEED : (BASE_SEED + Math.imul(i, 0x9e3779b9)) >>> 0;
      const rng = mulberry32(seed);
      const kind = pick(rng, kinds);
      counts[kind] = (counts[kind] ?? 0) + 1;
      switch (kind) {
        case 'random bytes': {
          const bytes = randomBytes(rng, chance(rng, 0.1) ? 100 + int(rng, 200) : int(rng, 40));
          const c = new Case(seed, kind, bytes);
          if (!(c.decode(bytes) instanceof ProtocolError)) decodedOk++;
          // As a stream, with a header that usually declares a small length.
          const stream = chance(rng, 0.5) ? Buffer.concat([Buffer.from([0, 0, 0, int(rng, 64)]), bytes]) : bytes;
          c.stream(rng, stream, 64);
          break;
        }
        case 'token soup': {
          const body = tokenSoup(rng);
          const c = new Case(seed, kind, body);
          if (!(c.decode(body) instanceof ProtocolError)) decodedOk++;
          c.stream(rng, frame(body), 4096);
          break;
        }
        case 'truncated frame': {
          const message = randomMessage(rng);
          const whole = encodeMessage(message);
          const cut = int(rng, whole.length); // strictly shorter than the frame
          const bytes = whole.subarray(0, cut);
          const c = new Case(seed, kind, bytes);
          const full = c.decode(whole.subarray(FRAME_HEADER_BYTES));
          assert.deepEqual(full, message, `seed=0x${seed.toString(16)}: a valid message must decode to itself`);
          const { frames, failed } = c.stream(rng, bytes, 1 << 20);
          assert.equal(failed, false);
          assert.equal(frames, 0, `seed=0x${seed.toString(16)}: a truncated frame must not produce a frame`);
          // msgpack is prefix-free: a strict prefix of a body is never a valid body.
          const prefix = bytes.subarray(Math.min(cut, FRAME_HEADER_BYTES));
          const decoded = c.decode(prefix);
          if (!(decoded instanceof ProtocolError)) c.fail('decodeBody(prefix)', new Error(`accepted a truncated body: ${JSON.stringify(decoded)}`));
          break;
        }
        case 'flipped frames': {
          const parts = Array.from({ length: 1 + int(rng, 3) }, () => encodeMessage(randomMessage(rng)));
          const bytes = Buffer.concat(parts);
          const flips = 1 + int(rng, 4);
          for (let f = 0; f < flips; f++) bytes[int(rng, bytes.length)] ^= 1 + int(rng, 255);
          const c = new Case(seed, kind, bytes);
          c.stream(rng, bytes, 4096);
          for (const part of parts) {
            const body = part.subarray(FRAME_HEADER_BYTES);
            const flipped = Buffer.from(body);
            flipped[int(rng, flipped.length)] ^= 1 + int(rng, 255);
            if (!(new Case(seed, kind, flipped).decode(flipped) instanceof ProtocolError)) decodedOk++;
          }
          break;
        }
        case 'random msgpack': {
          let value: unknown;
          const shape = int(rng, 4);
          if (shape === 0) value = randomValue(rng);
          else if (shape === 1) value = mutateMessage(rng, randomMessage(rng));
          else {
            const o: Record<string, unknown> = { t: chance(rng, 0.9) ? 1 + int(rng, 10) : randomValue(rng, 5) };
            const n = int(rng, 8);
            for (let k = 0; k < n; k++) o[pick(rng, FIELD_NAMES.slice(1, -5))] = randomValue(rng, 2);
            value = o;
          }
          let body: Buffer;
          try {
            body = raw.pack(value);
          } catch {
            break; // not encodable by msgpackr: nothing to decode
          }
          const c = new Case(seed, kind, body);
          if (!(c.decode(body) instanceof ProtocolError)) decodedOk++;
          for (const op of OPS) c.guard(`checkResult(${op})`, () => checkResult(op, value));
          c.stream(rng, frame(body), 1 << 20);
          break;
        }
      }
    }
    const elapsed = Date.now() - started;
    // The generators must reach both outcomes, or the fuzzer tests nothing.
    if (ITERATIONS >= 1000) for (const kind of kinds) assert.ok((counts[kind] ?? 0) > ITERATIONS / kinds.length / 2, `${kind} ran ${counts[kind]} times`);
    if (ITERATIONS >= 1000) assert.ok(decodedOk > ITERATIONS / 50, `only ${decodedOk} random inputs decoded: the generators are too weak`);
    // Both ways a framing error surfaces must be exercised.
    if (ITERATIONS >= 1000) assert.ok(framingErrors.thrown > 0 && framingErrors.afterFrames > 0, `framing errors: ${JSON.stringify(framingErrors)}`);
    assert.ok(elapsed < 20_000, `fuzzing took ${elapsed} ms`);
  });
});

describe('hostile nesting and sizes', () => {
  function expectRefused(body: Uint8Array, label: string, status: WireError = WireError.MALFORMED): void {
    let caught: unknown;
    try {
      decodeBody(body);
    } catch (err) {
      caught = err;
    }
    assert.ok(caught !== undefined, `${label}: was accepted`);
    assert.ok(caught instanceof ProtocolError, `${label}: ${String(caught)} escaped instead of a ProtocolError`);
    assert.equal(caught.status, status, `${label}: ${caught.message}`);
    // The decoder must still work afterwards (msgpackr keeps module-level state).
    assert.deepEqual(decodeBody(encodeBody({ t: 7, n: 1 })), { t: 7, n: 1 });
  }
  const expectMalformed = (body: Uint8Array, label: string): void => expectRefused(body, label);

  test('100,000 nested one-element arrays are refused at the depth limit, not by a RangeError', () => {
    const body = Buffer.concat([Buffer.alloc(100_000, 0x91), Buffer.from([0xc0])]);
    expectRefused(body, 'nested arrays', WireError.LIMIT_EXCEEDED);
    // The same bytes arriving as a frame, in chunks.
    const bytes = frame(body);
    const decoder = new FrameDecoder();
    const bodies: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 4096) bodies.push(...decoder.push(bytes.subarray(i, i + 4096)));
    assert.equal(bodies.length, 1);
    expectRefused(bodies[0]!, 'nested arrays via FrameDecoder', WireError.LIMIT_EXCEEDED);
  });

  test('100,000 nested maps are refused at the depth limit', () => {
    const level = Buffer.from('81a161', 'hex'); // {"a": ...}
    const body = Buffer.concat([...Array.from({ length: 100_000 }, () => level), Buffer.from([0xc0])]);
    expectRefused(body, 'nested maps', WireError.LIMIT_EXCEEDED);
  });

  test('deep nesting inside an otherwise valid Response is refused', () => {
    const head = Buffer.from('83a1740aa26964 01 a3726573'.replace(/\s+/g, ''), 'hex'); // {t:10, id:1, res: ...}
    const body = Buffer.concat([head, Buffer.alloc(100_000, 0x91), Buffer.from([0xc0])]);
    expectRefused(body, 'nested res', WireError.LIMIT_EXCEEDED);
  });

  test('nesting up to the depth limit is accepted, one level more is refused', () => {
    const nested = (levels: number): unknown => {
      let res: unknown = null;
      for (let i = 0; i < levels; i++) res = [res];
      return res;
    };
    // The message map is level 1: res may nest 15 more.
    const fits = nested(DEFAULT_DECODE_LIMITS.maxDepth - 1);
    assert.deepEqual(decodeBody(encodeBody({ t: 10, id: 1, res: fits })), { t: 10, id: 1, res: fits });
    expectRefused(encodeBody({ t: 10, id: 1, res: nested(DEFAULT_DECODE_LIMITS.maxDepth) }), 'one level too deep', WireError.LIMIT_EXCEEDED);
  });

  test('headers declaring huge collections in tiny bodies give ProtocolError quickly', () => {
    const started = Date.now();
    for (const text of ['dd ffffffff c0', 'df ffffffff a174 07', 'db ffffffff 61', 'c6 ffffffff 00', 'c9 ffffffff 01 00', 'dc ffff', 'de ffff']) {
      expectMalformed(Buffer.from(text.replace(/\s+/g, ''), 'hex'), text);
    }
    assert.ok(Date.now() - started < 2000);
  });

  test('a message with its type in a record or extension is not a message', () => {
    // msgpackr-only encodings are never produced by the codec; decoding them must not escape as other errors.
    for (const text of ['d4 72 40', 'd5 72 40 00', 'c7 02 72 40 00', 'd4 65 00', 'd4 78 00', 'd4 70 00', 'd6 69 00000001 80']) {
      assert.throws(() => decodeBody(Buffer.from(text.replace(/\s+/g, ''), 'hex')), (e: unknown) => e instanceof ProtocolError, text);
    }
  });
});
