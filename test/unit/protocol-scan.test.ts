/**
 * The bounded pre-scan of a frame body (src/protocol/scan.ts): it must
 * accept every msgpack encoding the protocol can carry, count values exactly
 * as msgpackr would build them, and refuse — before anything is built — a
 * body whose values or nesting exceed the limits, or whose headers claim
 * more than the bytes that follow.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { ProtocolError, WireError, decodeBody, scanBody, type DecodeLimits } from '../../src/protocol/index.js';

const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });
const LOOSE: DecodeLimits = { maxElements: 100_000_000, maxDepth: 64 };
const hex = (text: string): Buffer => Buffer.from(text.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

function refused(body: Uint8Array, limits: DecodeLimits, status: WireError, pattern?: RegExp): void {
  assert.throws(() => scanBody(body, limits), (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
    assert.equal(err.status, status, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

/** Values inside containers, counted the way msgpackr builds them. */
function countValues(value: unknown): number {
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + 1 + countValues(v), 0);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    return Object.values(value).reduce((n: number, v) => n + 2 + countValues(v), 0);
  }
  return 0;
}

describe('scanBody accepts every encoding the protocol can carry', () => {
  const values: unknown[] = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER,
    -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, Number.MIN_SAFE_INTEGER,
    1.5, -0.25, 1e300, null, true, false,
    '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(65536),
    Buffer.alloc(0), Buffer.alloc(255, 1), Buffer.alloc(256, 2), Buffer.alloc(65536, 3),
    [], [1], Array.from({ length: 15 }, (_, i) => i), Array.from({ length: 16 }, (_, i) => i), Array.from({ length: 70_000 }, (_, i) => i),
    {}, { a: 1 }, Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])),
    Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, [i, `v${i}`]])),
    { t: 4, env: 'prod', rev: 9, prev: 8, time: Date.now(), author: 'a', op: 'set', changes: [['k', '1'], ['d', null]] },
  ];
  for (const value of values) {
    const label = JSON.stringify(value)?.slice(0, 40) ?? String(value);
    test(`${label} (${Array.isArray(value) ? `array of ${value.length}` : typeof value})`, () => {
      const body = packr.pack(value);
      assert.equal(scanBody(body, LOOSE), countValues(value));
    });
  }

  test('float32 and the fixed-width integer forms msgpackr does not choose by itself', () => {
    for (const text of ['ca 3fc00000', 'cc 01', 'cd 0001', 'ce 00000001', 'cf 0000000000000001', 'd0 ff', 'd1 ffff', 'd2 ffffffff', 'd3 ffffffffffffffff', 'd9 01 61', 'da 0001 61', 'db 00000001 61', 'c4 01 00', 'c5 0001 00', 'c6 00000001 00', 'dc 0001 c0', 'dd 00000001 c0', 'de 0001 a161 c0', 'df 00000001 a161 c0']) {
      assert.doesNotThrow(() => scanBody(hex(text), LOOSE), text);
    }
  });
});

describe('scanBody refuses', () => {
  test('a body cut short at every offset', () => {
    const body = packr.pack({ t: 9, id: 1, req: { op: 'apply', env: 'e', entries: [['k', '"v"'], ['k2', '[1,2]']], replace: false } });
    for (let i = 0; i < body.length; i++) refused(body.subarray(0, i), LOOSE, WireError.MALFORMED);
  });

  test('bytes after the value, and the reserved byte 0xc1', () => {
    refused(hex('80 00'), LOOSE, WireError.MALFORMED, /bytes after the value at byte 1/);
    refused(hex('c1'), LOOSE, WireError.MALFORMED, /reserved byte 0xc1/);
  });

  test('every extension type: this protocol sends none', () => {
    for (const text of ['d4 00 00', 'd5 01 0000', 'd6 ff 00000000', 'd7 ff 0000000000000000', 'd8 01 00000000000000000000000000000000', 'c7 01 01 00', 'c8 0001 01 00', 'c9 00000001 01 00']) {
      refused(hex(text), LOOSE, WireError.MALFORMED, /extension type/);
    }
  });

  test('headers that claim more values or bytes than follow, at no cost', () => {
    for (const text of ['dd ffffffff c0', 'df ffffffff a174 07', 'db ffffffff 61', 'c6 ffffffff 00', 'dc ffff', 'de ffff', '9f 00', '8f a161 00']) {
      refused(hex(text), LOOSE, WireError.MALFORMED);
    }
  });

  test('exactly maxElements values pass; one more is LIMIT_EXCEEDED', () => {
    const limits: DecodeLimits = { maxElements: 10, maxDepth: 4 };
    assert.equal(scanBody(packr.pack({ a: [1, 2, 3, 4], b: [5, 6] }), limits), 10);
    refused(packr.pack({ a: [1, 2, 3, 4], b: [5, 6, 7] }), limits, WireError.LIMIT_EXCEEDED, /more than 10 values/);
  });

  test('exactly maxDepth levels pass; one more is LIMIT_EXCEEDED; empty containers do not nest', () => {
    const limits: DecodeLimits = { maxElements: 100, maxDepth: 3 };
    assert.doesNotThrow(() => scanBody(packr.pack({ a: [[1]] }), limits));
    refused(packr.pack({ a: [[[1]]] }), limits, WireError.LIMIT_EXCEEDED, /deeper than 3 levels/);
    assert.doesNotThrow(() => scanBody(packr.pack({ a: [[[]]] }), limits));
  });

  test('the element bomb: a 60 MB frame of 60 million values is refused at its header, building nothing', () => {
    const count = 60_000_000;
    const body = Buffer.alloc(5 + count, 0x00);
    body[0] = 0xdd;
    body.writeUInt32BE(count, 1);
    const heapBefore = process.memoryUsage().heapUsed;
    refused(body, { maxElements: 4_000_000, maxDepth: 16 }, WireError.LIMIT_EXCEEDED);
    assert.throws(() => decodeBody(body), (e: unknown) => e instanceof ProtocolError && e.status === WireError.LIMIT_EXCEEDED);
    const grown = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grown < 16 * 1024 * 1024, `heap grew by ${grown} bytes while refusing the bomb`);
  });
});
