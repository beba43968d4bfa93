/**
 * Byte-exact fixtures of the wire format and the stream behaviour of
 * FrameDecoder (chunk boundaries anywhere, frame size limit, empty frames).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, FrameDecoder, ProtocolError, WireError,
  decodeBody, encodeBody, encodeMessage, frame,
} from '../../src/protocol/index.js';
import type { Message } from '../../src/protocol/index.js';

/** Hex text (whitespace allowed) to bytes. */
function hex(text: string): Buffer {
  const clean = text.replace(/#[^\n]*/g, '').replace(/\s+/g, '');
  assert.match(clean, /^([0-9a-f]{2})*$/, 'fixture must be lower-case hex pairs');
  return Buffer.from(clean, 'hex');
}

interface Fixture {
  name: string;
  message: Message;
  /** The complete frame: 4-byte length prefix, then the msgpack body. */
  bytes: Buffer;
}

/*
 * Hand-written frames. msgpack notes for reading them:
 *   8X        fixmap with X entries (the encoder writes fixmap for maps of up to 15
 *             entries, map16 `de NNNN` above that, map32 `df NNNNNNNN` above 65535)
 *   aX        fixstr of X bytes; d9 LL = str8
 *   00..7f    positive fixint; cc = uint8; cb = float64
 *   92 / 9X   fixarray of X elements;  c0 = nil
 */
const FIXTURES: Fixture[] = [
  {
    name: 'Hello (agent)',
    message: { t: 1, v: 1, role: 'agent', id: 'host-a' },
    bytes: hex(`
      0000001c                          # length 28
      84                                # fixmap, 4 entries
      a1 74   01                        # "t": 1 (Hello)
      a1 76   01                        # "v": 1
      a4 726f6c65  a5 6167656e74        # "role": "agent"
      a2 6964      a6 686f73742d61      # "id": "host-a"
    `),
  },
  {
    name: 'Ack',
    message: { t: 5, env: 'prod', rev: 7 },
    bytes: hex(`
      00000012                          # length 18
      83                                # fixmap, 3 entries
      a1 74   05                        # "t": 5 (Ack)
      a3 656e76  a4 70726f64            # "env": "prod"
      a3 726576  07                     # "rev": 7
    `),
  },
  {
    name: 'Release with one set and one delete',
    message: {
      t: 4, env: 'prod', rev: 8, prev: 7, time: 1_700_000_000_000, author: 'ann', op: 'apply',
      changes: [['a', '1'], ['b', null]],
    },
    bytes: hex(`
      0000004c                          # length 76
      88                                # fixmap, 8 entries
      a1 74   04                        # "t": 4 (Release)
      a3 656e76  a4 70726f64            # "env": "prod"
      a3 726576  08                     # "rev": 8
      a4 70726576  07                   # "prev": 7
      a4 74696d65  cb 4278bcfe56800000  # "time": 1700000000000 (float64: above 2^32)
      a6 617574686f72  a3 616e6e        # "author": "ann"
      a2 6f70  a5 6170706c79            # "op": "apply"
      a7 6368616e676573  92             # "changes": array of 2
      92 a1 61  a1 31                   # ["a", "1"]   set a = 1
      92 a1 62  c0                      # ["b", nil]   delete b
    `),
  },
  {
    name: 'Error answering request 3',
    message: { t: 6, code: WireError.KEY_NOT_FOUND, msg: 'no key', id: 3 },
    bytes: hex(`
      0000001a                          # length 26
      84                                # fixmap, 4 entries
      a1 74   06                        # "t": 6 (Error)
      a4 636f6465  cc cb                # "code": 203 (uint8)
      a3 6d7367  a6 6e6f206b6579        # "msg": "no key"
      a2 6964  03                       # "id": 3
    `),
  },
  {
    name: 'Error ending the session (no id)',
    message: { t: 6, code: WireError.SLOW_CONSUMER, msg: 'slow' },
    bytes: hex(`
      00000013                          # length 19
      83                                # fixmap, 3 entries
      a1 74   06                        # "t": 6 (Error)
      a4 636f6465  6a                   # "code": 106
      a3 6d7367  a4 736c6f77            # "msg": "slow"
    `),
  },
  {
    name: 'Subscribe',
    message: { t: 2, all: false, envs: [{ env: 'prod', rev: 300 }] },
    bytes: hex(`
      00000020                          # length 32
      83                                # fixmap, 3 entries
      a1 74   02                        # "t": 2 (Subscribe)
      a3 616c6c  c2                     # "all": false
      a4 656e7673  91                   # "envs": array of 1
      82                                # fixmap, 2 entries
      a3 656e76  a4 70726f64            # "env": "prod"
      a3 726576  cd 012c                # "rev": 300 (uint16)
    `),
  },
  {
    name: 'Ping',
    message: { t: 7, n: 42 },
    bytes: hex(`
      00000007                          # length 7
      82                                # fixmap, 2 entries
      a1 74   07                        # "t": 7 (Ping)
      a1 6e   2a                        # "n": 42
    `),
  },
  {
    name: 'Hello (admin, with the user it logs in as)',
    message: { t: 1, v: 1, role: 'admin', id: 'laptop', user: 'alice1' },
    bytes: hex(`
      00000028                          # length 40
      85                                # fixmap, 5 entries
      a1 74   01                        # "t": 1 (Hello)
      a1 76   01                        # "v": 1
      a4 726f6c65  a5 61646d696e        # "role": "admin"
      a2 6964      a6 6c6170746f70      # "id": "laptop"
      a4 75736572  a6 616c69636531      # "user": "alice1"
    `),
  },
];

/** Feed chunks to a fresh decoder; return the frame bodies as hex. */
function feed(chunks: Buffer[], max?: number): string[] {
  const decoder = new FrameDecoder(max);
  const out: string[] = [];
  for (const chunk of chunks) for (const body of decoder.push(chunk)) out.push(body.toString('hex'));
  assert.equal(decoder.buffered, 0, 'nothing may stay buffered after complete frames');
  return out;
}

function bytewise(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(bytes.subarray(i, i + 1));
  return out;
}

function bodyOf(bytes: Buffer): Buffer {
  return bytes.subarray(FRAME_HEADER_BYTES);
}

function isProtocolError(status: WireError) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
    assert.equal(err.status, status, `status ${err.status}: ${err.message}`);
    return true;
  };
}

describe('byte fixtures', () => {
  test('fixtures declare their own length correctly', () => {
    for (const f of FIXTURES) {
      assert.equal(f.bytes.readUInt32BE(0), f.bytes.length - FRAME_HEADER_BYTES, f.name);
    }
  });

  for (const f of FIXTURES) {
    describe(f.name, () => {
      test('decoding the fixture gives the message', () => {
        const frames = new FrameDecoder().push(f.bytes);
        assert.equal(frames.length, 1);
        assert.deepEqual(decodeBody(frames[0]), f.message);
      });

      test('encoding the message gives exactly the fixture bytes', () => {
        assert.equal(encodeMessage(f.message).toString('hex'), f.bytes.toString('hex'));
        assert.equal(encodeBody(f.message).toString('hex'), bodyOf(f.bytes).toString('hex'));
        assert.equal(frame(encodeBody(f.message)).toString('hex'), f.bytes.toString('hex'));
      });

      test('round trip both ways', () => {
        assert.deepEqual(decodeBody(encodeBody(f.message)), f.message);
        const again = encodeMessage(decodeBody(bodyOf(f.bytes)));
        assert.equal(again.toString('hex'), f.bytes.toString('hex'));
      });

      test('split at every offset into two chunks, and byte by byte', () => {
        const want = [bodyOf(f.bytes).toString('hex')];
        for (let i = 0; i <= f.bytes.length; i++) {
          assert.deepEqual(feed([f.bytes.subarray(0, i), f.bytes.subarray(i)]), want, `split at ${i}`);
        }
        assert.deepEqual(feed(bytewise(f.bytes)), want, 'byte by byte');
      });
    });
  }
});

describe('stream of several frames', () => {
  // A larger frame (str8/array16 encodings, body above 255 bytes) and an empty frame in the middle.
  const snapshot: Message = {
    t: 3, env: 'staging', rev: 12,
    entries: Array.from({ length: 20 }, (_, i): [string, string] => [`key.${i}`, JSON.stringify({ i, s: 'x'.repeat(i) })]),
  };
  const empty = hex('00000000');
  const parts: Buffer[] = [
    ...FIXTURES.map((f) => f.bytes),
    empty,
    encodeMessage(snapshot),
    FIXTURES[0].bytes,
  ];
  const stream = Buffer.concat(parts);
  const want = parts.map((p) => bodyOf(p).toString('hex'));

  test('one chunk', () => {
    assert.deepEqual(feed([stream]), want);
  });

  test('split at every offset into two chunks', () => {
    for (let i = 0; i <= stream.length; i++) {
      assert.deepEqual(feed([stream.subarray(0, i), stream.subarray(i)]), want, `split at ${i}`);
    }
  });

  test('byte by byte', () => {
    assert.deepEqual(feed(bytewise(stream)), want);
  });

  test('split at every pair of offsets into three chunks (small frames)', () => {
    const small = Buffer.concat([FIXTURES[1].bytes, empty, FIXTURES[3].bytes, FIXTURES[6].bytes]);
    const smallWant = [FIXTURES[1].bytes, empty, FIXTURES[3].bytes, FIXTURES[6].bytes].map((p) => bodyOf(p).toString('hex'));
    for (let i = 0; i <= small.length; i++) {
      for (let j = i; j <= small.length; j++) {
        const chunks = [small.subarray(0, i), small.subarray(i, j), small.subarray(j)];
        assert.deepEqual(feed(chunks), smallWant, `split at ${i}, ${j}`);
      }
    }
  });

  test('every frame body of the stream decodes to its message', () => {
    const bodies = new FrameDecoder().push(stream);
    const messages = bodies.filter((b) => b.length > 0).map((b) => decodeBody(b));
    assert.deepEqual(messages, [...FIXTURES.map((f) => f.message), snapshot, FIXTURES[0].message]);
  });

  test('buffered counts the bytes held for an incomplete frame', () => {
    const decoder = new FrameDecoder();
    const bytes = FIXTURES[1].bytes;
    assert.deepEqual(decoder.push(bytes.subarray(0, 2)), []);
    assert.equal(decoder.buffered, 2);
    assert.deepEqual(decoder.push(bytes.subarray(2, 10)), []);
    assert.ok(decoder.buffered > 0);
    const frames = decoder.push(bytes.subarray(10));
    assert.equal(frames.length, 1);
    assert.equal(decoder.buffered, 0);
  });
});

describe('frame size limit', () => {
  const MAX = 64;

  function header(length: number): Buffer {
    const h = Buffer.alloc(FRAME_HEADER_BYTES);
    h.writeUInt32BE(length, 0);
    return h;
  }

  test('default limit is 64 MiB', () => {
    assert.equal(DEFAULT_MAX_FRAME_BYTES, 64 * 1024 * 1024);
    assert.equal(new FrameDecoder().maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
  });

  test('a header declaring max+1 is refused as soon as its 4 bytes arrive, byte by byte', () => {
    const decoder = new FrameDecoder(MAX);
    const h = header(MAX + 1);
    for (let i = 0; i < FRAME_HEADER_BYTES - 1; i++) {
      assert.deepEqual(decoder.push(h.subarray(i, i + 1)), [], `header byte ${i} alone is not enough to judge`);
    }
    assert.throws(() => decoder.push(h.subarray(FRAME_HEADER_BYTES - 1)), isProtocolError(WireError.FRAME_TOO_LARGE));
    assert.equal(decoder.buffered, 0, 'nothing is kept after the refusal');
  });

  test('a header declaring max+1 is refused in one chunk without any body byte', () => {
    const decoder = new FrameDecoder(MAX);
    assert.throws(() => decoder.push(header(MAX + 1)), isProtocolError(WireError.FRAME_TOO_LARGE));
  });

  test('the default limit refuses 64 MiB + 1 from the header alone', () => {
    const decoder = new FrameDecoder();
    assert.throws(() => decoder.push(header(DEFAULT_MAX_FRAME_BYTES + 1)), isProtocolError(WireError.FRAME_TOO_LARGE));
  });

  test('the largest possible declared length (2^32-1) is refused', () => {
    assert.throws(() => new FrameDecoder().push(hex('ffffffff')), isProtocolError(WireError.FRAME_TOO_LARGE));
  });

  test('an oversize header after complete frames is refused', () => {
    const decoder = new FrameDecoder(MAX);
    assert.equal(decoder.push(FIXTURES[1].bytes).length, 1);
    assert.equal(decoder.failure, undefined);
    assert.throws(() => decoder.push(header(MAX + 1)), isProtocolError(WireError.FRAME_TOO_LARGE));
  });

  describe('complete frames before an oversize header in the same chunk', () => {
    // A Ping frame (7-byte body), then a header declaring 17 bytes against a limit of 16.
    const ping = encodeMessage({ t: 7, n: 1 });
    const stream = Buffer.concat([ping, hex('00000011')]);
    const pingBody = hex('82 a174 07 a16e 01'); // {"t": 7, "n": 1}

    test('the stream is what it should be', () => {
      assert.equal(ping.toString('hex'), '00000007' + pingBody.toString('hex'));
      assert.equal(stream.length, 15);
    });

    test('push returns the frames and records FRAME_TOO_LARGE in failure', () => {
      assert.equal(new FrameDecoder(16).failure, undefined, 'no failure before any error');
      const decoder = new FrameDecoder(16);
      const frames = decoder.push(stream);
      assert.deepEqual(frames.map((b) => b.toString('hex')), [pingBody.toString('hex')]);
      assert.deepEqual(decodeBody(frames[0]), { t: 7, n: 1 });
      assert.ok(decoder.failure instanceof ProtocolError, 'failure must be a ProtocolError');
      assert.equal(decoder.failure.status, WireError.FRAME_TOO_LARGE);
      assert.equal(decoder.failure.code, 'E_PROTOCOL_FRAME_TOO_LARGE');
      assert.equal(decoder.buffered, 0, 'nothing is kept after the refusal');
    });

    test('the next push throws that same error, whatever it carries', () => {
      for (const next of [Buffer.alloc(0), hex('00000000'), ping]) {
        const decoder = new FrameDecoder(16);
        decoder.push(stream);
        const failure = decoder.failure;
        assert.ok(failure !== undefined);
        assert.throws(() => decoder.push(next), (err: unknown) => err === failure);
        assert.throws(() => decoder.push(next), isProtocolError(WireError.FRAME_TOO_LARGE), 'and keeps throwing');
        assert.equal(decoder.buffered, 0);
      }
    });

    test('without a frame before it, the oversize header still throws at once', () => {
      const decoder = new FrameDecoder(16);
      assert.throws(() => decoder.push(hex('00000011')), isProtocolError(WireError.FRAME_TOO_LARGE));
      assert.ok(decoder.failure instanceof ProtocolError);
      assert.equal(decoder.failure.status, WireError.FRAME_TOO_LARGE);
    });

    /** Push chunks; collect the frames and the framing error, thrown or left in `failure`. */
    function run(chunks: Buffer[]): { frames: string[]; error: unknown; how: string } {
      const decoder = new FrameDecoder(16);
      const frames: string[] = [];
      for (const chunk of chunks) {
        let out: Buffer[];
        try {
          out = decoder.push(chunk);
        } catch (err) {
          assert.equal(decoder.failure, err, 'a thrown framing error is also the failure');
          return { frames, error: err, how: 'thrown' };
        }
        frames.push(...out.map((b) => b.toString('hex')));
      }
      return { frames, error: decoder.failure, how: 'failure' };
    }

    test('split at every offset: the Ping exactly once, then FRAME_TOO_LARGE', () => {
      const want = [pingBody.toString('hex')];
      const hows = new Set<string>();
      for (let i = 0; i <= stream.length; i++) {
        const { frames, error, how } = run([stream.subarray(0, i), stream.subarray(i)]);
        assert.deepEqual(frames, want, `split at ${i}`);
        assert.ok(isProtocolError(WireError.FRAME_TOO_LARGE)(error), `split at ${i}`);
        hows.add(how);
      }
      // Both paths are reached: e.g. split at 11 throws, split at 15 leaves it in failure.
      assert.deepEqual([...hows].sort(), ['failure', 'thrown']);
    });

    test('split at every pair of offsets and byte by byte: the Ping exactly once, then FRAME_TOO_LARGE', () => {
      const want = [pingBody.toString('hex')];
      for (let i = 0; i <= stream.length; i++) {
        for (let j = i; j <= stream.length; j++) {
          const { frames, error } = run([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
          assert.deepEqual(frames, want, `split at ${i}, ${j}`);
          assert.ok(isProtocolError(WireError.FRAME_TOO_LARGE)(error), `split at ${i}, ${j}`);
        }
      }
      const { frames, error, how } = run(bytewise(stream));
      assert.deepEqual(frames, want, 'byte by byte');
      assert.ok(isProtocolError(WireError.FRAME_TOO_LARGE)(error), 'byte by byte');
      assert.equal(how, 'thrown', 'byte by byte, the last header byte arrives alone');
    });
  });

  test('the decoder stays failed afterwards', () => {
    const decoder = new FrameDecoder(MAX);
    assert.throws(() => decoder.push(Buffer.concat([header(MAX + 1), Buffer.alloc(MAX + 1)])), isProtocolError(WireError.FRAME_TOO_LARGE));
    for (const chunk of [FIXTURES[1].bytes, Buffer.alloc(0), hex('00000000')]) {
      assert.throws(() => decoder.push(chunk), (err: unknown) => err instanceof ProtocolError);
    }
    assert.equal(decoder.buffered, 0);
  });

  test('a frame of exactly max bytes is accepted, whole, split, and byte by byte', () => {
    const body = Buffer.alloc(MAX, 0xab);
    const bytes = Buffer.concat([header(MAX), body]);
    const want = [body.toString('hex')];
    assert.deepEqual(feed([bytes], MAX), want);
    for (let i = 0; i <= bytes.length; i++) {
      assert.deepEqual(feed([bytes.subarray(0, i), bytes.subarray(i)], MAX), want, `split at ${i}`);
    }
    assert.deepEqual(feed(bytewise(bytes), MAX), want);
  });

  test('a header declaring exactly the default limit is accepted and waits for the body', () => {
    const decoder = new FrameDecoder();
    assert.deepEqual(decoder.push(header(DEFAULT_MAX_FRAME_BYTES)), []);
    assert.deepEqual(decoder.push(Buffer.alloc(10)), []);
    assert.equal(decoder.buffered, 4 + 10, 'the header and the body bytes so far are held');
  });

  test('a real message as large as the limit passes and one byte over fails', () => {
    const message: Message = { t: 6, code: 1, msg: '' };
    const base = encodeBody(message).length;
    const exact: Message = { t: 6, code: 1, msg: 'x'.repeat(200 - base - 1) }; // str8 adds one header byte
    const bytes = encodeMessage(exact);
    const limit = bytes.length - FRAME_HEADER_BYTES;
    assert.deepEqual(new FrameDecoder(limit).push(bytes).map((b) => decodeBody(b)), [exact]);
    assert.throws(() => new FrameDecoder(limit - 1).push(bytes), isProtocolError(WireError.FRAME_TOO_LARGE));
  });
});

describe('zero-length frames', () => {
  test('the decoder returns an empty body', () => {
    const frames = new FrameDecoder().push(hex('00000000'));
    assert.equal(frames.length, 1);
    assert.equal(frames[0].length, 0);
  });

  test('several empty frames in a row, split anywhere', () => {
    const bytes = hex('00000000 00000000 00000000');
    for (let i = 0; i <= bytes.length; i++) {
      assert.deepEqual(feed([bytes.subarray(0, i), bytes.subarray(i)]), ['', '', ''], `split at ${i}`);
    }
  });

  test('a zero-length frame is accepted even with a limit of 0', () => {
    assert.deepEqual(feed([hex('00000000')], 0), ['']);
    assert.throws(() => new FrameDecoder(0).push(hex('00000001')), isProtocolError(WireError.FRAME_TOO_LARGE));
  });

  test('decodeBody of an empty body raises ProtocolError MALFORMED', () => {
    assert.throws(() => decodeBody(Buffer.alloc(0)), isProtocolError(WireError.MALFORMED));
    assert.throws(() => decodeBody(new Uint8Array(0)), isProtocolError(WireError.MALFORMED));
  });
});
