/**
 * Message codec: round trip of every message type and admin operation,
 * result checking, and rejection of anything that is not a valid message.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import {
  FrameDecoder, LocalErrorCode, MessageType, PROTOCOL_VERSION, ProtocolError, RemoteError, Role,
  VitefaError, WireError, checkResult, decodeBody, decodeOwn, encodeBody, FRAME_HEADER_BYTES, encodeMessage, wireErrorName,
} from '../../src/protocol/index.js';
import type { AdminOp, AdminRequest, Message, ResultOf } from '../../src/protocol/index.js';

/** A second encoder, independent of the codec, to build bodies the codec would never write. */
const raw = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
const pack = (value: unknown): Buffer => raw.pack(value);

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
}

/** encodeMessage -> FrameDecoder -> decodeBody */
function throughWire(message: Message): Message {
  const decoder = new FrameDecoder();
  const frames = decoder.push(encodeMessage(message));
  assert.equal(frames.length, 1);
  assert.equal(decoder.buffered, 0);
  return decodeBody(frames[0]);
}

/** assert.throws validator: ProtocolError MALFORMED whose message starts with `path:`. */
function malformedAt(path: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
    assert.equal(err.status, WireError.MALFORMED);
    assert.equal(err.code, 'E_PROTOCOL_MALFORMED');
    assert.ok(err.message.startsWith(`${path}: `), `message "${err.message}" should name ${path}`);
    return true;
  };
}

function rejects(body: Uint8Array, path: string): void {
  assert.throws(() => decodeBody(body), malformedAt(path));
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

/** Every admin operation (the `satisfies` makes the compiler flag a missing or new op). */
const ADMIN_OPS = {
  'env.add': true, 'env.del': true, 'env.list': true, 'env.layers': true, 'env.show': true, set: true, get: true, del: true, list: true,
  merge: true, clear: true, unset: true, apply: true, plan: true, history: true, diff: true, rollback: true, status: true, 'status.local': true,
  'user.add': true, 'user.del': true, 'user.list': true, 'user.passwd': true, 'token.add': true, 'token.del': true,
  'token.list': true, audit: true, watch: true, unwatch: true,
  'schema.set': true, 'schema.get': true, 'schema.del': true, 'schema.list': true, 'schema.history': true, 'schema.rollback': true,
} as const satisfies Record<AdminOp, true>;

const V = { salt: 'c2FsdHNhbHQ=', iterations: 4096, storedKey: 'a2V5', serverKey: 'a2V5Mg==' };

const ADMIN_REQUESTS: AdminRequest[] = [
  { op: 'env.add', env: 'prod' },
  { op: 'env.del', env: 'prod' },
  { op: 'env.list' },
  { op: 'env.layers', env: 'prod/eu', parents: ['prod', 'eu'] },
  { op: 'env.layers', env: 'prod/eu', parents: [] },
  { op: 'env.show', env: 'prod/eu' },
  { op: 'set', env: 'prod', key: 'db.url', value: '"mysql://db"' },
  { op: 'get', env: 'prod', key: 'db.url' },
  { op: 'get', env: 'prod', key: 'db.url', own: true, explain: false },
  { op: 'unset', env: 'prod', key: 'db', path: ['port'] },
  { op: 'plan', env: 'prod', entries: [['a', '1']], replace: true },
  { op: 'history', env: 'prod', own: true },
  { op: 'list', env: 'prod', own: true },
  { op: 'del', env: 'prod', key: 'db.url' },
  { op: 'list', env: 'prod' },
  { op: 'list', env: 'prod', prefix: 'db.' },
  { op: 'merge', env: 'prod', key: 'flags', value: '{"beta":true}' },
  { op: 'clear', env: 'prod', key: 'flags', path: ['beta', '0'] },
  { op: 'clear', env: 'prod', key: 'flags', path: [] },
  { op: 'apply', env: 'prod', entries: [['a', '1'], ['b', '"two"']], replace: false },
  { op: 'apply', env: 'prod', entries: [], replace: true },
  { op: 'history', env: 'prod' },
  { op: 'history', env: 'prod', key: 'a', limit: 10, before: 99 },
  { op: 'diff', env: 'prod', from: 3 },
  { op: 'diff', env: 'prod', from: 3, to: 9 },
  { op: 'rollback', env: 'prod', rev: 5 },
  { op: 'rollback', env: 'prod', rev: 5, allowGrowth: true },
  { op: 'set', env: 'prod', key: 'blob', value: '"x"', allowGrowth: true },
  { op: 'schema.set', envPattern: 'prod/*', keyPattern: 'db.*', schema: '{"type":"object"}', mode: 'warn', whole: false },
  { op: 'schema.set', envPattern: '*', keyPattern: '*', schema: 'true' },
  { op: 'schema.get', envPattern: 'prod/*', keyPattern: 'db.*', whole: true, version: 3 },
  { op: 'schema.del', envPattern: 'prod/*', keyPattern: 'db.*' },
  { op: 'schema.list' },
  { op: 'schema.list', env: 'prod/eu' },
  { op: 'schema.history', envPattern: 'prod/*', keyPattern: 'db.*', whole: true },
  { op: 'schema.rollback', envPattern: 'prod/*', keyPattern: 'db.*', version: 2 },
  { op: 'status' },
  { op: 'status', env: 'prod' },
  { op: 'status.local' },
  { op: 'status.local', env: 'prod' },
  { op: 'user.add', name: 'alice', role: 'editor', envs: ['shop', 'prod/*'], verifier: V },
  { op: 'user.add', name: 'vic', role: 'viewer', envs: ['shop'], reads: ['prod/*'], verifier: V },
  { op: 'user.del', name: 'alice' },
  { op: 'user.list' },
  { op: 'user.passwd', verifier: V },
  { op: 'user.passwd', name: 'alice', verifier: V },
  { op: 'token.add', name: 'web', envs: ['*'], id: '0123456789ab', verifier: { ...V, iterations: 1 } },
  { op: 'token.del', name: 'web' },
  { op: 'token.list' },
  { op: 'audit' },
  { op: 'audit', env: 'prod', user: 'alice', since: 1_700_000_000_000, limit: 20 },
  { op: 'watch', env: 'prod' },
  { op: 'unwatch', env: 'prod' },
];

const SAMPLES: { [K in MessageType]: Extract<Message, { t: K }>[] } = {
  [MessageType.Hello]: [
    { t: 1, v: PROTOCOL_VERSION, role: Role.server, id: 'srv-1', peers: ['10.0.0.2:7070', '10.0.0.3:7070'] },
    { t: 1, v: PROTOCOL_VERSION, role: Role.agent, id: 'host-a' },
    { t: 1, v: PROTOCOL_VERSION, role: Role.admin, id: 'laptop', user: 'alice', nonce: 'bm9uY2Utbm9uY2Utbm9uY2U=' },
    { t: 1, v: 2, role: Role.peer, id: 'srv-2', peers: [] },
  ],
  [MessageType.Challenge]: [{ t: 11, nonce: 'client-nonce+server-part', salt: 'c2FsdA==', iterations: 600_000 }],
  [MessageType.Proof]: [{ t: 12, proof: 'cHJvb2Y=' }],
  [MessageType.Welcome]: [
    { t: 13, signature: 'c2ln', account: 'alice', role: 'editor', envs: ['shop'], iterations: 600_000 },
    { t: 13, signature: 'c2ln', account: 'web', role: 'agent', envs: ['*'] },
  ],
  [MessageType.Subscribe]: [
    { t: 2, all: true, envs: [] },
    { t: 2, all: false, envs: [{ env: 'prod', rev: 0 }, { env: 'dev', rev: 2 ** 40 }] },
  ],
  [MessageType.Snapshot]: [
    { t: 3, env: 'prod', rev: 12, entries: [['a', '1'], ['b', '{"x":[1,2]}'], ['ünï', '"çødé"']] },
    { t: 3, env: 'empty', rev: 0, entries: [] },
    { t: 3, env: 'prod', rev: 14, chain: '0f1e2d3c4b5a6978', entries: [['a', '1']] },
  ],
  [MessageType.Release]: [
    {
      t: 4, env: 'prod', rev: 13, prev: 12, time: Date.UTC(2024, 0, 1), author: 'ann', op: 'apply',
      changes: [['a', '2'], ['b', null]],
    },
    { t: 4, env: 'gone', rev: 9, prev: 8, time: 1, author: 'bob', op: 'env.del', changes: [], drop: true },
    { t: 4, env: 'prod', rev: 2 ** 53 - 1, prev: 2 ** 53 - 2, time: 0, author: '', op: 'set', changes: [['k', 'null']], drop: false },
    { t: 4, env: 'prod', rev: 14, prev: 13, time: 5, author: 'ann', op: 'set', changes: [['a', '3']], chain: '0f1e2d3c4b5a6978', pchain: '8796a5b4c3d2e1f0' },
    { t: 4, env: 'new', rev: 15, prev: 0, time: 6, author: 'ann', op: 'env.add', changes: [], chain: '0f1e2d3c4b5a6979', pchain: '' },
    {
      t: 4, env: 'prod', rev: 16, prev: 14, time: 7, author: 'ann', op: 'set', changes: [['a', '4']],
      chain: '0f1e2d3c4b5a697a', pchain: '0f1e2d3c4b5a6978', via: 'base', grp: true,
    },
    { t: 4, env: 'base', rev: 16, prev: 3, time: 7, author: 'ann', op: 'set', changes: [['a', '4']], grp: false },
  ],
  [MessageType.Ack]: [{ t: 5, env: 'prod', rev: 13 }, { t: 5, env: 'prod', rev: 14, chain: '0f1e2d3c4b5a6978' }],
  [MessageType.Error]: [
    { t: 6, code: WireError.ENV_NOT_FOUND, msg: 'environment x does not exist', id: 4 },
    { t: 6, code: WireError.SHUTTING_DOWN, msg: 'bye' },
    { t: 6, code: 999, msg: 'a code this build does not know' },
  ],
  [MessageType.Ping]: [{ t: 7, n: 0 }, { t: 7, n: 4_294_967_295 }],
  [MessageType.Pong]: [{ t: 8, n: 17 }],
  [MessageType.Request]: ADMIN_REQUESTS.map((req, i) => ({ t: 9, id: i + 1, req })),
  [MessageType.Response]: [
    { t: 10, id: 1, res: { env: 'prod', rev: 3, changed: 1 } },
    { t: 10, id: 2, res: { envs: [{ env: 'a', rev: 1, keys: 2 }] } },
    { t: 10, id: 3, res: null },
  ],
  [MessageType.Gossip]: [
    {
      t: 14,
      members: [
        { id: 'host-a/10.0.0.1:7400', gen: 3, ver: 120, addrs: ['10.0.0.1:7400'], peer: '10.0.0.1:7401', state: 'alive', agents: 33_000, head: 2 ** 40 },
        { id: 'host-b/10.0.0.2:7400', gen: 1, ver: 1, addrs: [], peer: '10.0.0.2:7401', state: 'draining', agents: 0, head: 0 },
      ],
      envs: [['prod', 12], ['dev', 0]],
    },
    { t: 14, members: [], envs: [], gone: ['old'] },
  ],
  [MessageType.Peers]: [
    { t: 15, servers: [{ addr: '10.0.0.1:7400', agents: 5, state: 'alive' }, { addr: '[::1]:7400', agents: 0, state: 'suspect' }] },
    { t: 15, servers: [] },
  ],
  [MessageType.Move]: [
    { t: 16, to: '10.0.0.2:7400', within: 2000, reason: 'rebalancing' },
    { t: 16, within: 0, reason: 'server draining' },
  ],
  [MessageType.StoreCheck]: [{ t: 17, store: '6f1c0a4e9b2d7c35', key: 'k-0123456789abcdef' }],
  [MessageType.StoreProof]: [{ t: 18, mac: 'bWFjLW1hYy1tYWMtbWFjLW1hYy1tYWMtbWFjLW1hYy0=' }, { t: 18, mac: '' }],
  [MessageType.GroupEnd]: [{ t: 19 }],
};

describe('round trip through encodeMessage, FrameDecoder and decodeBody', () => {
  test('every message type has samples', () => {
    assert.deepEqual(
      Object.keys(SAMPLES).map(Number).sort((a, b) => a - b),
      Object.values(MessageType).sort((a, b) => a - b),
    );
  });

  for (const [t, samples] of Object.entries(SAMPLES)) {
    test(`message type ${t}`, () => {
      for (const message of samples as Message[]) {
        assert.deepEqual(throughWire(message), message);
      }
    });
  }

  test('every admin operation is covered', () => {
    assert.deepEqual(
      [...new Set(ADMIN_REQUESTS.map((r) => r.op))].sort(),
      Object.keys(ADMIN_OPS).sort(),
    );
  });

  for (const req of ADMIN_REQUESTS) {
    test(`request op ${req.op} ${JSON.stringify(req)}`, () => {
      const message: Message = { t: MessageType.Request, id: 77, req };
      assert.deepEqual(throughWire(message), message);
    });
  }

  test('several messages in one stream come out in order', () => {
    const all = Object.values(SAMPLES).flat() as Message[];
    const stream = Buffer.concat(all.map((m) => encodeMessage(m)));
    const decoder = new FrameDecoder();
    const out: Message[] = [];
    for (let i = 0; i < stream.length; i += 7) {
      for (const body of decoder.push(stream.subarray(i, i + 7))) out.push(decodeBody(body));
    }
    assert.deepEqual(out, all);
  });

  test('optional fields that are absent stay absent', () => {
    const hello = decodeBody(encodeBody({ t: 1, v: 1, role: 'agent', id: 'a' }));
    assert.deepEqual(Object.keys(hello).sort(), ['id', 'role', 't', 'v']);
    const err = decodeBody(encodeBody({ t: 6, code: 100, msg: 'm' }));
    assert.equal(Object.hasOwn(err, 'id'), false);
  });

  test('an optional field set to undefined is omitted: exactly the bytes of the message without it', () => {
    const pairs: [withUndefined: Message, without: Message][] = [
      [{ t: 1, v: 1, role: 'admin', id: 'laptop', user: undefined }, { t: 1, v: 1, role: 'admin', id: 'laptop' }],
      [{ t: 1, v: 1, role: 'server', id: 's', user: undefined, peers: undefined }, { t: 1, v: 1, role: 'server', id: 's' }],
      [{ t: 10, id: 1, res: undefined }, { t: 10, id: 1 } as Message],
      [{ t: 6, code: 100, msg: 'm', id: undefined }, { t: 6, code: 100, msg: 'm' }],
      [
        { t: 4, env: 'p', rev: 2, prev: 1, time: 0, author: 'a', op: 'set', changes: [], drop: undefined },
        { t: 4, env: 'p', rev: 2, prev: 1, time: 0, author: 'a', op: 'set', changes: [] },
      ],
      [{ t: 9, id: 1, req: { op: 'list', env: 'p', prefix: undefined } }, { t: 9, id: 1, req: { op: 'list', env: 'p' } }],
      [
        { t: 9, id: 1, req: { op: 'history', env: 'p', key: undefined, limit: undefined, before: 5 } },
        { t: 9, id: 1, req: { op: 'history', env: 'p', before: 5 } },
      ],
      [{ t: 9, id: 1, req: { op: 'status', env: undefined } }, { t: 9, id: 1, req: { op: 'status' } }],
    ];
    for (const [withUndefined, without] of pairs) {
      const label = JSON.stringify(without);
      const bytes = encodeBody(withUndefined).toString('hex');
      assert.equal(bytes, encodeBody(without).toString('hex'), label);
      assert.equal(encodeMessage(withUndefined).toString('hex'), encodeMessage(without).toString('hex'), label);
      assert.ok(!bytes.includes('d40000'), `${label}: msgpackr's undefined extension must not be written`);
    }
    // Hand-checked: Hello {t: 1, v: 1, role: "admin", id: "laptop"}, user left out.
    assert.equal(
      encodeBody({ t: 1, v: 1, role: 'admin', id: 'laptop', user: undefined }).toString('hex'),
      hex(`84                          # fixmap, 4 entries (not 5)
           a174 01                     # "t": 1
           a176 01                     # "v": 1
           a4726f6c65 a561646d696e     # "role": "admin"
           a26964 a66c6170746f70       # "id": "laptop"
      `).toString('hex'),
    );
    // Hand-checked: Response {t: 10, id: 1}, res left out.
    assert.equal(
      encodeBody({ t: 10, id: 1, res: undefined }).toString('hex'),
      hex(`82                          # fixmap, 2 entries (not 3)
           a174 0a                     # "t": 10
           a26964 01                   # "id": 1
      `).toString('hex'),
    );
    // The receiver sees the field as absent.
    assert.equal(Object.hasOwn(decodeBody(encodeBody({ t: 1, v: 1, role: 'admin', id: 'x', user: undefined })), 'user'), false);
  });

  test('the encoder picks the map width from the number of fields actually written', () => {
    const res = (n: number, skip = -1): Record<string, unknown> =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i === skip ? undefined : i]));
    // {t: 10, id: 1, res: <map>} is 83 a1740a a2696401 a3726573 (12 bytes), then the header of `res`.
    const prefix = '83a1740aa2696401a3726573';
    const resHeader = (r: Record<string, unknown>, bytes: number): string => {
      const body = encodeBody({ t: 10, id: 1, res: r }).toString('hex');
      assert.equal(body.slice(0, prefix.length), prefix);
      return body.slice(prefix.length, prefix.length + 2 * bytes);
    };
    assert.equal(resHeader({}, 1), '80');
    assert.equal(resHeader(res(1), 1), '81');
    assert.equal(resHeader(res(15), 1), '8f'); // fixmap up to 15 entries
    assert.equal(resHeader(res(16), 3), 'de0010'); // then map16
    assert.equal(resHeader(res(65535), 3), 'deffff');
    assert.equal(resHeader(res(65536), 5), 'df00010000'); // then map32
    // Skipped (undefined) fields are not counted.
    assert.equal(resHeader(res(16, 3), 1), '8f');
    assert.equal(resHeader(res(17, 3), 3), 'de0010');
    assert.equal(resHeader(res(65537, 9), 5), 'df00010000');
    for (const [n, skip] of [[16, 3], [17, 3], [65537, 9]] as const) {
      const back = decodeBody(encodeBody({ t: 10, id: 1, res: res(n, skip) })) as Extract<Message, { t: 10 }>;
      const want = res(n, skip);
      delete want[`k${skip}`];
      assert.deepEqual(back.res, want, `${n} fields, one undefined`);
    }
  });

  test('integers of every msgpack width and integral floats are accepted', () => {
    const ack = (rev: string) => hex(`83 a174 05 a3656e76 a170 a3726576 ${rev}`);
    assert.deepEqual(decodeBody(ack('07')), { t: 5, env: 'p', rev: 7 });
    assert.deepEqual(decodeBody(ack('cc ff')), { t: 5, env: 'p', rev: 255 });
    assert.deepEqual(decodeBody(ack('cd ffff')), { t: 5, env: 'p', rev: 65535 });
    assert.deepEqual(decodeBody(ack('ce ffffffff')), { t: 5, env: 'p', rev: 2 ** 32 - 1 });
    assert.deepEqual(decodeBody(ack('cf 001fffffffffffff')), { t: 5, env: 'p', rev: 2 ** 53 - 1 });
    assert.deepEqual(decodeBody(ack('d3 0000000000000005')), { t: 5, env: 'p', rev: 5 });
    assert.deepEqual(decodeBody(ack('cb 4014000000000000')), { t: 5, env: 'p', rev: 5 });
    assert.deepEqual(decodeBody(ack('ca 40a00000')), { t: 5, env: 'p', rev: 5 });
  });

  test('maps of every msgpack width are accepted (fixmap, map16, map32)', () => {
    const fields = 'a174 07 a16e 01';
    const want = { t: 7, n: 1 };
    assert.deepEqual(decodeBody(hex(`82 ${fields}`)), want);
    assert.deepEqual(decodeBody(hex(`de 0002 ${fields}`)), want);
    assert.deepEqual(decodeBody(hex(`df 00000002 ${fields}`)), want);
  });
});

// ---------------------------------------------------------------------------
// checkResult
// ---------------------------------------------------------------------------

const write = { env: 'prod', rev: 4, changed: 2 };
const violation = { env: 'prod', key: 'db.pool', path: '/max', keyword: 'maximum', message: 'must be <= 500', schema: 'prod/* db.*', version: 3 };
const schemaInfo = { envPattern: 'p', keyPattern: 'k', whole: false, mode: 'enforce' as const, version: 1, time: 1, author: 'a', bytes: 2 };
const RESULTS: { [K in AdminOp]: { valid: ResultOf[K]; invalid: unknown; path: string } } = {
  'env.add': { valid: { env: 'prod', rev: 1, changed: 0 }, invalid: { env: 'prod', rev: 1 }, path: 'result(env.add).changed' },
  'env.del': { valid: write, invalid: { env: 7, rev: 1, changed: 0 }, path: 'result(env.del).env' },
  'env.list': {
    valid: { envs: [{ env: 'a', rev: 1, keys: 2 }, { env: 'b', rev: 0, keys: 0 }] },
    invalid: { envs: [{ env: 'a', rev: 1, keys: 2 }, { env: 'b', rev: 0, keys: '0' }] },
    path: 'result(env.list).envs[1].keys',
  },
  'env.layers': { valid: { ...write, differs: [{ key: 'k', layer: 'base' }] }, invalid: { ...write, differs: [{ key: 'k' }] }, path: 'result(env.layers).differs[0].layer' },
  'env.show': {
    valid: { env: 'p', rev: 3, parents: ['b'], order: ['b', 'p'], dependents: [] },
    invalid: { env: 'p', rev: 3, parents: ['b'], order: 'b', dependents: [] },
    path: 'result(env.show).order',
  },
  unset: { valid: write, invalid: { env: 'prod', rev: 1, changed: -1 }, path: 'result(unset).changed' },
  plan: {
    valid: { env: 'p', rev: 3, added: ['a'], changed: [], removed: [], views: [{ env: 'p', changed: 1 }, { env: '(no access)', changed: 2 }] },
    invalid: { env: 'p', rev: 3, added: ['a'], changed: [], removed: [], views: [{ env: 'p' }] },
    path: 'result(plan).views[0].changed',
  },
  set: { valid: write, invalid: { env: 'prod', rev: -1, changed: 1 }, path: 'result(set).rev' },
  get: {
    valid: { env: 'prod', rev: 4, key: 'a', value: '{"x":1}' },
    invalid: { env: 'prod', rev: 4, key: 'a', value: null },
    path: 'result(get).value',
  },
  del: { valid: write, invalid: { env: 'prod', rev: 4, changed: 1.5 }, path: 'result(del).changed' },
  list: {
    valid: { env: 'prod', rev: 4, entries: [['a', '1'], ['b', '2']] },
    invalid: { env: 'prod', rev: 4, entries: [['a', '1'], ['b', null]] },
    path: 'result(list).entries[1][1]',
  },
  merge: { valid: write, invalid: [write], path: 'result(merge)' },
  clear: { valid: write, invalid: { env: 'prod', rev: 2 ** 53, changed: 1 }, path: 'result(clear).rev' },
  apply: { valid: write, invalid: null, path: 'result(apply)' },
  history: {
    valid: {
      env: 'prod',
      releases: [{ rev: 4, prev: 3, time: 1_700_000_000_000, author: 'ann', op: 'set', changes: [['a', null, '1'], ['b', '2', null]] }],
    },
    invalid: {
      env: 'prod',
      releases: [{ rev: 4, prev: 3, time: 1, author: 'ann', op: 'set', changes: [['a', '1']] }],
    },
    path: 'result(history).releases[0].changes[0]',
  },
  diff: {
    valid: { env: 'prod', from: 1, to: 4, changes: [['a', '1', '2']] },
    invalid: { env: 'prod', from: 1, changes: [] },
    path: 'result(diff).to',
  },
  rollback: { valid: write, invalid: 'ok', path: 'result(rollback)' },
  'schema.set': {
    valid: { envPattern: 'p', keyPattern: 'k', whole: false, version: 2, rev: 9, changed: 1, mode: 'warn', failing: 1, warnings: [violation] },
    invalid: { envPattern: 'p', keyPattern: 'k', whole: false, version: 2, rev: 9, changed: 1, mode: 'loud' },
    path: 'result(schema.set).mode',
  },
  'schema.get': {
    valid: { ...schemaInfo, schema: '{}' },
    invalid: { ...schemaInfo },
    path: 'result(schema.get).schema',
  },
  'schema.del': {
    valid: { envPattern: 'p', keyPattern: 'k', whole: true, version: 3, rev: 9, changed: 1, deleted: true },
    invalid: { envPattern: 'p', keyPattern: 'k', whole: 'yes', version: 3, rev: 9, changed: 1 },
    path: 'result(schema.del).whole',
  },
  'schema.list': { valid: { schemas: [schemaInfo] }, invalid: { schemas: [{ ...schemaInfo, version: -1 }] }, path: 'result(schema.list).schemas[0].version' },
  'schema.history': {
    valid: { versions: [{ version: 2, rev: 5, time: 1, author: 'a', bytes: 0, deleted: true }, { version: 1, rev: 4, time: 1, author: 'a', mode: 'enforce', bytes: 2 }] },
    invalid: { versions: [{ version: 2, rev: 5, time: 1, author: 'a' }] },
    path: 'result(schema.history).versions[0].bytes',
  },
  'schema.rollback': {
    valid: { envPattern: 'p', keyPattern: 'k', whole: false, version: 4, rev: 10, changed: 1, mode: 'enforce' },
    invalid: { envPattern: 'p', keyPattern: 'k', whole: false, version: 4, rev: 10 },
    path: 'result(schema.rollback).changed',
  },
  status: {
    valid: {
      server: { id: 'srv-1', version: '0.1.0', listen: '0.0.0.0:7070', store: 'mysql', uptimeMs: 1234, workers: 4, counters: { SERVER_FULL: 2, workerRestarts: 0 } },
      envs: [{ env: 'prod', rev: 4, keys: 10 }],
      agentsTotal: 1,
      agents: [{ id: 'host-a', addr: '10.0.0.9:50000', since: 1_700_000_000_000, envs: [{ env: 'prod', rev: 4 }] }],
      cluster: {
        head: 4,
        servers: [{ id: 'srv-1', gen: 2, state: 'alive', addrs: ['0.0.0.0:7070'], head: 4, lag: 0, agents: 1, heardMs: 0, answered: true }],
        envs: [{ env: 'prod', rev: 4, holders: [[4, 1, '0f1e2d3c4b5a6978']], lagging: [], laggingTotal: 0, chain: '0f1e2d3c4b5a6978', releasedMs: 1200 }],
        found: [{ id: 'host-a', addr: '10.0.0.9:50000', since: 1, envs: [{ env: 'prod', rev: 4, chain: '0f1e2d3c4b5a6978' }], ackedMs: 800, server: 'srv-1' }],
      },
    },
    invalid: {
      server: { id: 'srv-1', version: '0.1.0', listen: '0.0.0.0:7070', store: 'mysql', uptimeMs: 1234, workers: 4, counters: { SERVER_FULL: 2, workerRestarts: 0 } },
      envs: [],
      agentsTotal: 1,
      agents: [{ id: 'host-a', addr: '10.0.0.9:50000', since: 1, envs: [{ env: 'prod', rev: 'x' }] }],
    },
    path: 'result(status).agents[0].envs[0].rev',
  },
  'status.local': {
    valid: {
      server: { id: 'srv-1', version: '0.1.0', listen: '0.0.0.0:7070', store: 'mysql', uptimeMs: 1234, workers: 4, counters: {} },
      gen: 1, head: 4, agentsTotal: 2,
      envs: [{ env: 'prod', rev: 4, holders: [[4, 1, ''], [3, 1, '']], lagging: [{ id: 'h', addr: '10.0.0.9:1', server: 'srv-1', rev: 3 }], laggingTotal: 1 }],
    },
    invalid: {
      server: { id: 'srv-1', version: '0.1.0', listen: '0.0.0.0:7070', store: 'mysql', uptimeMs: 1234, workers: 4, counters: {} },
      gen: 1, head: 4, agentsTotal: 2, envs: [{ env: 'prod', rev: 4, holders: [[4]], lagging: [], laggingTotal: 0 }],
    },
    path: 'result(status.local).envs[0].holders[0]',
  },
  'user.add': { valid: { done: 'account alice added (editor)' }, invalid: { done: 1 }, path: 'result(user.add).done' },
  'user.del': { valid: { done: 'x' }, invalid: {}, path: 'result(user.del).done' },
  'user.list': {
    valid: { users: [{ name: 'alice', role: 'editor', envs: ['shop'], reads: ['prod'], created: 1 }] },
    invalid: { users: [{ name: 'alice', role: 'editor', envs: 'shop', created: 1 }] },
    path: 'result(user.list).users[0].envs',
  },
  'user.passwd': { valid: { done: 'x' }, invalid: null, path: 'result(user.passwd)' },
  'token.add': { valid: { done: 'token web added' }, invalid: { done: null }, path: 'result(token.add).done' },
  'token.del': { valid: { done: 'x' }, invalid: [], path: 'result(token.del)' },
  'token.list': {
    valid: { tokens: [{ name: 'web', id: '0123456789ab', envs: ['*'], created: 2 }] },
    invalid: { tokens: [{ name: 'web', envs: ['*'], created: 2 }] },
    path: 'result(token.list).tokens[0].id',
  },
  audit: {
    valid: { entries: [{ seq: 1, time: 2, actor: 'a', addr: '1.2.3.4:5', action: 'set', env: 'e', result: 'ok', code: '', detail: 'key k' }] },
    invalid: { entries: [{ seq: 1, time: 2, actor: 'a', addr: '1.2.3.4:5', action: 'set', env: 'e', result: 'ok', code: '' }] },
    path: 'result(audit).entries[0].detail',
  },
  watch: { valid: { env: 'prod', rev: 4 }, invalid: { env: 'prod' }, path: 'result(watch).rev' },
  unwatch: { valid: { done: 'stopped' }, invalid: { done: 3 }, path: 'result(unwatch).done' },
};

describe('checkResult', () => {
  test('every admin operation has a case', () => {
    assert.deepEqual(Object.keys(RESULTS).sort(), Object.keys(ADMIN_OPS).sort());
  });

  for (const op of Object.keys(RESULTS) as AdminOp[]) {
    const c = RESULTS[op];
    test(`${op}: a valid result passes, also after travelling in a Response`, () => {
      assert.deepEqual(checkResult(op, structuredClone(c.valid)), c.valid);
      const response = throughWire({ t: MessageType.Response, id: 5, res: c.valid });
      assert.equal(response.t, MessageType.Response);
      assert.deepEqual(checkResult(op, (response).res), c.valid);
    });

    test(`${op}: an invalid result throws MALFORMED naming ${c.path}`, () => {
      assert.throws(() => checkResult(op, c.invalid), malformedAt(c.path));
    });
  }

  test('an unknown operation, or a name inherited from Object.prototype, throws MALFORMED', () => {
    for (const op of ['nope', 'toString', 'constructor', 'hasOwnProperty', '__proto__', 'valueOf', '']) {
      assert.throws(() => checkResult(op as AdminOp, {}), malformedAt('result'), op);
      assert.throws(() => checkResult(op as AdminOp, write), malformedAt('result'), op);
    }
  });

  test('unknown fields of a result are dropped', () => {
    assert.deepEqual(checkResult('set', { ...write, extra: [1, 2, 3] }), write);
    assert.deepEqual(
      checkResult('env.list', { envs: [{ env: 'a', rev: 1, keys: 2, size: 99 }], more: true }),
      { envs: [{ env: 'a', rev: 1, keys: 2 }] },
    );
  });
});

// ---------------------------------------------------------------------------
// Rejection
// ---------------------------------------------------------------------------

describe('rejection', () => {
  test('an agent id in status longer than 256 characters (it is forwarded to every peer)', () => {
    rejects(pack({ t: 9, id: 1, req: { op: 'status', agent: 'a'.repeat(257) } }), 'message.req.agent');
    rejects(pack({ t: 9, id: 1, req: { op: 'status.local', agent: 'a'.repeat(70_000) } }), 'message.req.agent');
  });

  test("the servers' own environments (RESERVED_ENV_PREFIX) in a subscription: no agent follows them", () => {
    rejects(pack({ t: 2, all: false, envs: [{ env: '@schemas', rev: 0 }] }), 'message.envs[0].env');
  });

  test('a chain value that is not 16 hex digits', () => {
    rejects(pack({ t: 5, env: 'e', rev: 1, chain: 'x'.repeat(100_000) }), 'message.chain');
    rejects(pack({ t: 5, env: 'e', rev: 1, chain: '0F1E2D3C4B5A6978' }), 'message.chain');
    rejects(pack({ t: 2, all: false, envs: [{ env: 'e', rev: 1, chain: '\u001b[2J0000000000' }] }), 'message.envs[0].chain');
    rejects(pack({ t: 4, env: 'e', rev: 2, prev: 1, time: 1, author: 'a', op: 'set', changes: [], pchain: 12 }), 'message.pchain');
  });

  test('unknown message type', () => {
    rejects(pack({ t: 0 }), 'message.t');
    rejects(pack({ t: 20, n: 1 }), 'message.t');
    rejects(pack({ t: 99 }), 'message.t');
    rejects(pack({ t: -1 }), 'message.t');
    rejects(pack({ t: 1.5 }), 'message.t');
    rejects(pack({ t: '1', v: 1, role: 'agent', id: 'a' }), 'message.t');
    rejects(pack({ v: 1, role: 'agent', id: 'a' }), 'message.t');
    rejects(pack({ t: null }), 'message.t');
  });

  test('missing field', () => {
    rejects(pack({ t: 5, env: 'prod' }), 'message.rev');
    rejects(pack({ t: 1, v: 1, role: 'agent' }), 'message.id');
    rejects(pack({ t: 4, env: 'p', rev: 2, prev: 1, time: 0, author: 'a', changes: [] }), 'message.op');
    rejects(pack({ t: 9, id: 1 }), 'message.req');
    rejects(pack({ t: 9, id: 1, req: { env: 'p' } }), 'message.req.op');
    rejects(pack({ t: 9, id: 1, req: { op: 'set', env: 'p', key: 'k' } }), 'message.req.value');
    rejects(pack({ t: 9, id: 1, req: { op: 'apply', env: 'p', entries: [] } }), 'message.req.replace');
    rejects(pack({ t: 10, res: {} }), 'message.id');
    rejects(pack({ t: 2, all: true }), 'message.envs');
    rejects(pack({ t: 2, all: true, envs: [{ env: 'p' }] }), 'message.envs[0].rev');
  });

  test('a uint field given a string', () => {
    rejects(pack({ t: 5, env: 'prod', rev: '7' }), 'message.rev');
    rejects(pack({ t: 7, n: '1' }), 'message.n');
    rejects(pack({ t: 9, id: '1', req: { op: 'env.list' } }), 'message.id');
  });

  test('a uint field given a negative number', () => {
    rejects(pack({ t: 5, env: 'prod', rev: -1 }), 'message.rev');
    rejects(hex('83 a174 05 a3656e76 a170 a3726576 d0 ff'), 'message.rev'); // int8 -1
    rejects(hex('83 a174 05 a3656e76 a170 a3726576 d3 ffffffffffffffff'), 'message.rev'); // int64 -1
    rejects(pack({ t: 9, id: 1, req: { op: 'rollback', env: 'p', rev: -5 } }), 'message.req.rev');
  });

  test('a uint field given a non-integer', () => {
    rejects(pack({ t: 5, env: 'prod', rev: 1.5 }), 'message.rev');
    rejects(pack({ t: 6, code: 100.25, msg: 'x' }), 'message.code');
    rejects(pack({ t: 5, env: 'prod', rev: Number.NaN }), 'message.rev');
    rejects(pack({ t: 5, env: 'prod', rev: Number.POSITIVE_INFINITY }), 'message.rev');
    rejects(pack({ t: 5, env: 'prod', rev: true }), 'message.rev');
    rejects(pack({ t: 5, env: 'prod', rev: null }), 'message.rev');
  });

  test('a uint field given -0 (float64 or float32) is MALFORMED', () => {
    // msgpackr packs a JS -0 as fixint 00, so the float encodings are written by hand.
    rejects(hex('82 a174 07 a16e cb 8000000000000000'), 'message.n'); // {t: 7, n: -0.0 as float64}
    rejects(hex('83 a174 05 a3656e76 a170 a3726576 cb 8000000000000000'), 'message.rev'); // Ack rev -0.0
    rejects(hex('83 a174 05 a3656e76 a170 a3726576 ca 80000000'), 'message.rev'); // Ack rev -0.0 as float32
    // +0.0 as a float is still an integer 0.
    assert.deepEqual(decodeBody(hex('82 a174 07 a16e cb 0000000000000000')), { t: 7, n: 0 });
    assert.throws(() => checkResult('set', { env: 'p', rev: -0, changed: 0 }), malformedAt('result(set).rev'));
  });

  test('a uint field given an unsafe integer', () => {
    rejects(pack({ t: 5, env: 'prod', rev: 2 ** 53 }), 'message.rev'); // float64
    rejects(hex('83 a174 05 a3656e76 a170 a3726576 cf 0020000000000000'), 'message.rev'); // uint64 2^53
    rejects(hex('83 a174 05 a3656e76 a170 a3726576 cf ffffffffffffffff'), 'message.rev'); // uint64 max
    rejects(pack({ t: 4, env: 'p', rev: 2, prev: 1, time: 2 ** 64, author: 'a', op: 'set', changes: [] }), 'message.time');
  });

  test('other wrong types', () => {
    rejects(pack({ t: 1, v: 1, role: 'root', id: 'a' }), 'message.role');
    rejects(pack({ t: 1, v: 1, role: 'agent', id: 5 }), 'message.id');
    rejects(pack({ t: 1, v: 1, role: 'agent', id: 'a', user: 5 }), 'message.user');
    rejects(pack({ t: 1, v: 1, role: 'agent', id: 'a', nonce: null }), 'message.nonce');
    rejects(pack({ t: 1, v: 1, role: 'agent', id: 'a', peers: 'x' }), 'message.peers');
    rejects(pack({ t: 1, v: 1, role: 'agent', id: 'a', peers: ['x', 2] }), 'message.peers[1]');
    rejects(pack({ t: 2, all: 'yes', envs: [] }), 'message.all');
    rejects(pack({ t: 2, all: 1, envs: [] }), 'message.all');
    rejects(pack({ t: 3, env: 'p', rev: 1, entries: [['a', null]] }), 'message.entries[0][1]');
    rejects(pack({ t: 3, env: 'p', rev: 1, entries: [['a']] }), 'message.entries[0]');
    rejects(pack({ t: 3, env: 'p', rev: 1, entries: [['a', '1', '2']] }), 'message.entries[0]');
    rejects(pack({ t: 3, env: 'p', rev: 1, entries: { a: '1' } }), 'message.entries');
    rejects(pack({ t: 4, env: 'p', rev: 2, prev: 1, time: 0, author: 'a', op: 'set', changes: [[1, '1']] }), 'message.changes[0][0]');
    rejects(pack({ t: 4, env: 'p', rev: 2, prev: 1, time: 0, author: 'a', op: 'set', changes: [], drop: 1 }), 'message.drop');
    rejects(pack({ t: 4, env: 'p', rev: 2, prev: 1, time: 0, author: 'a', op: 'set', changes: [], via: 3 }), 'message.via');
    rejects(pack({ t: 4, env: 'p', rev: 2, prev: 1, time: 0, author: 'a', op: 'set', changes: [], grp: 'yes' }), 'message.grp');
    rejects(pack({ t: 6, code: 100, msg: 'x', id: -1 }), 'message.id');
    rejects(pack({ t: 9, id: 1, req: 'set' }), 'message.req');
    rejects(pack({ t: 9, id: 1, req: { op: 'drop.database' } }), 'message.req.op');
    rejects(pack({ t: 9, id: 1, req: { op: 5 } }), 'message.req.op');
    rejects(pack({ t: 9, id: 1, req: { op: 'list', env: 'p', prefix: 3 } }), 'message.req.prefix');
    rejects(pack({ t: 9, id: 1, req: { op: 'history', env: 'p', limit: -1 } }), 'message.req.limit');
    rejects(pack({ t: 9, id: 1, req: { op: 'apply', env: 'p', entries: [['a', 1]], replace: false } }), 'message.req.entries[0][1]');
    rejects(pack({ t: 9, id: 1, req: { op: 'clear', env: 'p', key: 'k', path: [0] } }), 'message.req.path[0]');
    rejects(pack({ t: 9, id: 1, req: { op: 'status', env: null } }), 'message.req.env');
  });

  test('an array longer than its bound', () => {
    const peers = Array.from({ length: 1024 }, (_, i) => `10.0.${i >> 8}.${i & 255}:7070`);
    assert.equal(
      (decodeBody(pack({ t: 1, v: 1, role: 'server', id: 's', peers })) as { peers?: string[] }).peers?.length,
      1024,
    );
    rejects(pack({ t: 1, v: 1, role: 'server', id: 's', peers: [...peers, 'one.more:7070'] }), 'message.peers');
    const path = Array.from({ length: 1024 }, (_, i) => `p${i}`);
    assert.deepEqual(
      decodeBody(pack({ t: 9, id: 1, req: { op: 'clear', env: 'e', key: 'k', path } })),
      { t: 9, id: 1, req: { op: 'clear', env: 'e', key: 'k', path } },
    );
    rejects(pack({ t: 9, id: 1, req: { op: 'clear', env: 'e', key: 'k', path: [...path, 'x'] } }), 'message.req.path');
  });

  test('a message above the element bound (4,000,000 values) is refused before msgpackr builds it', () => {
    // array32 header with 4,000,001 nil elements: 5 + 4,000,001 bytes, well inside a frame.
    const count = 4_000_001;
    const body = Buffer.alloc(40 + count, 0xc0);
    let off = 0;
    off = body.write('\x84\xa1t\x03\xa3env\xa1p\xa3rev\x01\xa7entries', off, 'latin1');
    body[off++] = 0xdd;
    body.writeUInt32BE(count, off);
    off += 4;
    assert.throws(
      () => decodeBody(body.subarray(0, off + count)),
      (e: unknown) => e instanceof ProtocolError && e.status === WireError.LIMIT_EXCEEDED && /more than 4000000 values/.test(e.message),
    );
  });

  test('a top level that is not a map', () => {
    for (const value of [[1, 2], [{ t: 7, n: 1 }], 'hello', 7, null, true, 1.5]) {
      rejects(pack(value), 'message');
    }
    // bin and ext values are not maps either
    assert.throws(() => decodeBody(pack(Buffer.from('0700', 'hex'))), malformedAt('message.t'));
    assert.throws(() => decodeBody(hex('d4 00 00')), /extension type 0xd4/); // msgpackr "undefined"
  });

  test('bytes that are not msgpack, or trail after the message', () => {
    const ping = encodeBody({ t: 7, n: 1 });
    // 0xc1 is "never used" in msgpack (msgpackr yields a marker object, which is not a map with a type)
    assert.throws(() => decodeBody(hex('c1')), (e: unknown) => e instanceof ProtocolError && e.status === WireError.MALFORMED);
    for (const body of [hex('c4'), hex('dd ffffffff'), ping.subarray(0, ping.length - 1), Buffer.concat([ping, hex('00')]), Buffer.concat([ping, ping])]) {
      assert.throws(() => decodeBody(body), (e: unknown) => e instanceof ProtocolError && e.status === WireError.MALFORMED && /not valid msgpack/.test(e.message));
    }
  });
});

describe('forward compatibility', () => {
  test('unknown extra fields are ignored and not returned', () => {
    assert.deepEqual(decodeBody(pack({ t: 5, env: 'prod', rev: 7, future: { nested: [1, 2] } })), { t: 5, env: 'prod', rev: 7 });
    assert.deepEqual(
      decodeBody(pack({ t: 1, v: 1, role: 'agent', id: 'a', caps: ['zstd'], zone: 'eu' })),
      { t: 1, v: 1, role: 'agent', id: 'a' },
    );
    assert.deepEqual(
      decodeBody(pack({ t: 2, all: false, envs: [{ env: 'p', rev: 1, hash: 'abc' }], mode: 'fast' })),
      { t: 2, all: false, envs: [{ env: 'p', rev: 1 }] },
    );
    assert.deepEqual(
      decodeBody(pack({ t: 9, id: 3, req: { op: 'get', env: 'p', key: 'k', consistent: true }, trace: 'x' })),
      { t: 9, id: 3, req: { op: 'get', env: 'p', key: 'k' } },
    );
    assert.deepEqual(
      decodeBody(pack({ t: 4, env: 'p', rev: 2, prev: 1, time: 0, author: 'a', op: 'set', changes: [['k', '1']], sig: 'zz' })),
      { t: 4, env: 'p', rev: 2, prev: 1, time: 0, author: 'a', op: 'set', changes: [['k', '1']] },
    );
    assert.deepEqual(decodeBody(pack({ t: 19, releases: 2 })), { t: 19 });
  });

  test('a message with a newer protocol version still decodes (the session decides)', () => {
    assert.deepEqual(decodeBody(pack({ t: 1, v: 2, role: 'server', id: 's' })), { t: 1, v: 2, role: 'server', id: 's' });
  });

  test("msgpackr's undefined extension (d4 00 00) is refused: the protocol has no extension types", () => {
    // The codec never writes it (optional fields are omitted); a value of an extension type is not a message.
    const hello = hex('85 a174 01 a176 01 a4726f6c65 a561646d696e a26964 a161 a5746f6b656e d40000');
    assert.throws(() => decodeBody(hello), (e: unknown) => e instanceof ProtocolError && e.status === WireError.MALFORMED && /extension type 0xd4 at byte 29/.test(e.message));
  });

  test('an unknown error code decodes', () => {
    assert.deepEqual(decodeBody(pack({ t: 6, code: 4242, msg: 'new' })), { t: 6, code: 4242, msg: 'new' });
  });

  test('a "__proto__" key is neither a field nor a prototype', () => {
    const body = hex('84 a174 05 a3656e76 a170 a3726576 01 a95f5f70726f746f5f5f 81 a3656e76 a178');
    const m = decodeBody(body);
    assert.deepEqual(m, { t: 5, env: 'p', rev: 1 });
    assert.equal(Object.getPrototypeOf(m), Object.prototype);
  });
});

describe('error classes', () => {
  test('ProtocolError carries the wire status and E_PROTOCOL_<NAME>', () => {
    const e = new ProtocolError(WireError.FRAME_TOO_LARGE, 'big');
    assert.ok(e instanceof VitefaError && e instanceof Error);
    assert.equal(e.name, 'ProtocolError');
    assert.equal(e.code, 'E_PROTOCOL_FRAME_TOO_LARGE');
    assert.equal(e.status, 101);
  });

  test('RemoteError carries E_REMOTE_<NAME>, or the number for an unknown code', () => {
    const e = new RemoteError(WireError.AUTH_FAILED, 'bad token');
    assert.ok(e instanceof VitefaError);
    assert.equal(e.name, 'RemoteError');
    assert.equal(e.code, 'E_REMOTE_AUTH_FAILED');
    assert.equal(e.status, 104);
    assert.equal(new RemoteError(4242, 'x').code, 'E_REMOTE_4242');
  });

  test('wire codes and local codes are distinct and well formed', () => {
    for (const [name, code] of Object.entries(WireError)) {
      assert.equal(wireErrorName(code), name);
      assert.match(name, /^[A-Z][A-Z_]*$/);
    }
    assert.equal(new Set(Object.values(WireError)).size, Object.keys(WireError).length);
    assert.equal(wireErrorName(4242), undefined);
    for (const code of Object.values(LocalErrorCode)) assert.match(code, /^E_[A-Z_]+$/);
    assert.equal(new Set(Object.values(LocalErrorCode)).size, Object.keys(LocalErrorCode).length);
  });
});

describe('decodeOwn (a primary to its workers)', () => {
  test('gives back what this program encoded, and refuses what is not a known message', () => {
    const release: Message = { t: MessageType.Release, env: 'p', rev: 2, prev: 1, time: 1, author: 'a', op: 'set', changes: [['k', '1']] };
    assert.deepEqual(decodeOwn(encodeMessage(release).subarray(FRAME_HEADER_BYTES)), release);
    assert.throws(() => decodeOwn(encodeBody({ t: 999 } as never)), ProtocolError);
    assert.throws(() => decodeOwn(encodeBody([1, 2] as never)), ProtocolError);
  });
});
