/**
 * Deterministic fuzzing of the decoding side of the protocol: whatever bytes
 * arrive, the only error that may leave FrameDecoder, decodeBody or
 * checkResult is a ProtocolError. Any other error (TypeError, RangeError, ...)
 * fails with the iteration seed and the input bytes, so it can be replayed:
 *   FUZZ_SEED=<seed> FUZZ_ITERATIONS=1 node --import tsx --test test/unit/protocol-fuzz.test.ts
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { Packr } from 'msgpackr';
import {
  FRAME_HEADER_BYTES, FrameDecoder, MessageType, ProtocolError, WireError,
  DEFAULT_DECODE_LIMITS, checkResult, decodeBody, encodeBody, encodeMessage, frame,
} from '../../src/protocol/index.js';
import type { Message } from '../../src/protocol/index.js';
import {
  mulberry32, int, pick, chance, randomBytes, FIELD_NAMES, randomValue, OPS, randomMessage, mutateMessage, tokenSoup, type Rng,
} from '../support/fuzz.js';

const BASE_SEED = Number(process.env['FUZZ_SEED'] ?? 0x5eed_c0de) >>> 0;
const ITERATIONS = Number(process.env['FUZZ_ITERATIONS'] ?? 25_000);

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
      if (result.status !== WireError.MALFORMED && result.status !== WireError.LIMIT_EXCEEDED) this.fail('decodeBody (status)', result);
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
    // The generators must reach both outcomes, or the fuzzer tests nothing.
    if (ITERATIONS >= 1000) for (const kind of kinds) assert.ok((counts[kind] ?? 0) > ITERATIONS / kinds.length / 2, `${kind} ran ${counts[kind]} times`);
    if (ITERATIONS >= 1000) assert.ok(decodedOk > ITERATIONS / 50, `only ${decodedOk} random inputs decoded: the generators are too weak`);
    // Both ways a framing error surfaces must be exercised.
    if (ITERATIONS >= 1000) assert.ok(framingErrors.thrown > 0 && framingErrors.afterFrames > 0, `framing errors: ${JSON.stringify(framingErrors)}`);
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
    assert.ok(caught instanceof ProtocolError, `${label}: ${inspect(caught)} escaped instead of a ProtocolError`);
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
    expectRefused(bodies[0], 'nested arrays via FrameDecoder', WireError.LIMIT_EXCEEDED);
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

  // A decoder that trusted the header would allocate for four billion elements or loop over them: the test's own
  // timeout, not a measured time, catches that.
  test('headers declaring huge collections in tiny bodies give ProtocolError, before anything is allocated for them', () => {
    for (const text of ['dd ffffffff c0', 'df ffffffff a174 07', 'db ffffffff 61', 'c6 ffffffff 00', 'c9 ffffffff 01 00', 'dc ffff', 'de ffff']) {
      expectMalformed(Buffer.from(text.replace(/\s+/g, ''), 'hex'), text);
    }
  });

  test('a message with its type in a record or extension is not a message', () => {
    // msgpackr-only encodings are never produced by the codec; decoding them must not escape as other errors.
    for (const text of ['d4 72 40', 'd5 72 40 00', 'c7 02 72 40 00', 'd4 65 00', 'd4 78 00', 'd4 70 00', 'd6 69 00000001 80']) {
      assert.throws(() => decodeBody(Buffer.from(text.replace(/\s+/g, ''), 'hex')), (e: unknown) => e instanceof ProtocolError, text);
    }
  });
});
