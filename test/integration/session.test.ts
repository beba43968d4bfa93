/**
 * Server sessions driven in memory (no sockets): every message type in
 * every phase, the handshake's failures, limits that change with the phase,
 * frames after a fatal error, handlers that throw, and a peer that never
 * reads. Whatever a session is sent, only that session ends.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeMessage, frame, MessageType, PROTOCOL_VERSION, WireError,
  type Challenge, type ErrorMessage, type Message, type Pong, type Response, type Welcome,
} from '../../src/protocol/index.js';
import { ConnectionHost } from '../../src/server/edge/host.js';
import type { ServerSession } from '../../src/server/edge/session.js';
import { resolveLimits } from '../../src/server/limits.js';
import { ServerState } from '../../src/server/releases/state.js';
import { RequestError } from '../../src/server/errors.js';
import { CredentialBook } from '../../src/server/access/book.js';
import { LoginThrottle } from '../../src/server/access/throttle.js';
import { makeVerifier } from '../../src/security/scram.js';
import { ScramClient } from '../support/login.js';
import { memoryPair, TestPeer } from '../support/memory.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';
import { ADMIN_PASSWORD, waitFor } from '../support/common.js';

const isError = (m: Message): m is ErrorMessage => m.t === MessageType.Error;
const isChallenge = (m: Message): m is Challenge => m.t === MessageType.Challenge;
const isWelcome = (m: Message): m is Welcome => m.t === MessageType.Welcome;
const isPong = (n: number) => (m: Message): m is Pong => m.t === MessageType.Pong && m.n === n;
const isResponse = (id: number) => (m: Message): m is Response => m.t === MessageType.Response && m.id === id;
const agentHello: Message = { t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'agent', id: 'host-a', user: '000000000000', nonce: 'bm9uY2Utbm9uY2Utbm9uY2U=' };
const adminHello: Message = { t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'admin', id: 'ops', user: 'admin', nonce: 'bm9uY2Utbm9uY2Utbm9uY2U=' };

/** One valid message of every type. */
const SAMPLES: Record<string, Message> = {
  Hello: agentHello,
  Subscribe: { t: MessageType.Subscribe, all: false, envs: [{ env: 'demo', rev: 0 }] },
  Snapshot: { t: MessageType.Snapshot, env: 'demo', rev: 1, entries: [] },
  Release: { t: MessageType.Release, env: 'demo', rev: 2, prev: 1, time: 1, author: 'a', op: 'set', changes: [] },
  Ack: { t: MessageType.Ack, env: 'demo', rev: 1 },
  Error: { t: MessageType.Error, code: WireError.MALFORMED, msg: 'the peer gives up' },
  Ping: { t: MessageType.Ping, n: 1 },
  Pong: { t: MessageType.Pong, n: 1 },
  Request: { t: MessageType.Request, id: 1, req: { op: 'env.list' } },
  Response: { t: MessageType.Response, id: 1, res: {} },
  Challenge: { t: MessageType.Challenge, nonce: 'x'.repeat(40), salt: 'c2FsdA==', iterations: 4096 },
  Proof: { t: MessageType.Proof, proof: 'AAAA' },
  Welcome: { t: MessageType.Welcome, signature: 'AAAA', account: 'me', role: 'admin', envs: ['*'] },
  Gossip: { t: MessageType.Gossip, members: [{ id: 'x', gen: 1, ver: 1, addrs: [], peer: '127.0.0.1:1', state: 'alive', agents: 0, head: 0 }], envs: [] },
  Peers: { t: MessageType.Peers, servers: [] },
  Move: { t: MessageType.Move, within: 0, reason: 'go' },
  StoreCheck: { t: MessageType.StoreCheck, store: '0123456789abcdef', key: 'k' },
  StoreProof: { t: MessageType.StoreProof, mac: 'AAAA' },
  GroupEnd: { t: MessageType.GroupEnd },
};
assert.deepEqual(Object.keys(SAMPLES).sort(), Object.keys(MessageType).sort(), 'a sample of every message type');

type Outcome = 'ok' | 'ends' | 'challenged' | WireError;
const U = WireError.UNEXPECTED_MESSAGE;
/** What each message does in each phase: handled (the session goes on), answered with a login challenge, the peer's Error ends it, or this error. */
const EXPECTED: Record<'hello' | 'agent' | 'admin', Record<string, Outcome>> = {
  hello: { Hello: 'challenged', Subscribe: U, Snapshot: U, Release: U, Ack: U, Error: 'ends', Ping: U, Pong: U, Request: U, Response: U, Challenge: U, Proof: U, Welcome: U, Gossip: U, Peers: U, Move: U, StoreCheck: U, StoreProof: U, GroupEnd: U },
  agent: { Hello: U, Subscribe: 'ok', Snapshot: U, Release: U, Ack: 'ok', Error: 'ends', Ping: 'ok', Pong: 'ok', Request: U, Response: U, Challenge: U, Proof: U, Welcome: U, Gossip: U, Peers: U, Move: U, StoreCheck: U, StoreProof: U, GroupEnd: U },
  admin: { Hello: U, Subscribe: U, Snapshot: U, Release: U, Ack: U, Error: 'ends', Ping: 'ok', Pong: 'ok', Request: 'ok', Response: U, Challenge: U, Proof: U, Welcome: U, Gossip: U, Peers: U, Move: U, StoreCheck: U, StoreProof: U, GroupEnd: U },
};

let mem: MemoryServer;
let token: string;
before(async () => {
  mem = await memoryServer({ limits: { subscribeBurst: 3 } });
  await mem.server.hub.execute({ op: 'env.add', env: 'demo' }, 'test');
  token = await mem.token('test-agents');
});
after(() => mem.close());

/** Logs `peer` in (its server's hello received first); resolves with the Welcome. */
async function logIn(peer: TestPeer, scram: ScramClient): Promise<Welcome> {
  await peer.next((m): m is Message => m.t === MessageType.Hello);
  peer.send(scram.hello());
  peer.send(scram.proof(await peer.next(isChallenge)));
  const welcome = await peer.next(isWelcome);
  assert.ok(scram.verify(welcome), 'the server proved it holds the verifier');
  return welcome;
}

const admin = (): ScramClient => new ScramClient('admin', 'admin', ADMIN_PASSWORD);

/** A peer that has reached `phase`: the server's own hello received, or logged in as an agent or as admin. */
async function inPhase(phase: 'hello' | 'agent' | 'admin'): Promise<TestPeer> {
  const peer = mem.connect();
  if (phase === 'hello') await peer.next((m): m is Message => m.t === MessageType.Hello);
  if (phase === 'agent') await logIn(peer, ScramClient.agent(token));
  if (phase === 'admin') await logIn(peer, admin());
  return peer;
}

/** The session answers a ping: it is alive and past the hello. */
async function alive(peer: TestPeer, n: number): Promise<void> {
  const from = peer.received.length;
  peer.send({ t: MessageType.Ping, n });
  await peer.next(isPong(n), from);
  assert.equal(peer.closed, false);
}

describe('every message type in every phase', () => {
  for (const [phase, table] of Object.entries(EXPECTED) as [keyof typeof EXPECTED, Record<string, Outcome>][]) {
    for (const [name, outcome] of Object.entries(table)) {
      test(`${name} ${phase === 'hello' ? 'before the hello' : `in an ${phase} session`}: ${typeof outcome === 'number' ? `error ${outcome}` : outcome}`, async () => {
        const peer = await inPhase(phase);
        const from = peer.received.length;
        peer.send(SAMPLES[name]);
        if (outcome === 'ok') {
          await alive(peer, 4242);
        } else if (outcome === 'challenged') {
          await peer.next(isChallenge, from);
          assert.equal(peer.closed, false);
        } else if (outcome === 'ends') {
          await peer.whenClosed();
          assert.equal(peer.received.slice(from).filter(isError).length, 0, 'the server does not answer an Error with one');
        } else {
          const error = await peer.next(isError, from);
          assert.equal(error.code, outcome, error.msg);
          assert.equal(error.id, undefined, 'a session-ending error carries no id');
          await peer.whenClosed();
          assert.equal(peer.received.slice(from).length, 1, 'exactly one error frame, then close');
        }
      });
    }
  }
});

describe('the handshake', () => {
  test('a second hello ends the session with UNEXPECTED_MESSAGE', async () => {
    const peer = await inPhase('agent');
    peer.send(agentHello);
    assert.match((await peer.next(isError)).msg, /hello sent twice/);
    await peer.whenClosed();
  });

  test('another protocol version is refused with VERSION_MISMATCH', async () => {
    const peer = await inPhase('hello');
    peer.send({ ...agentHello, v: PROTOCOL_VERSION + 1 });
    assert.equal((await peer.next(isError)).code, WireError.VERSION_MISMATCH);
    await peer.whenClosed();
  });

  test('roles this port does not serve are refused', async () => {
    for (const role of ['server', 'peer'] as const) {
      const peer = await inPhase('hello');
      peer.send({ ...agentHello, role });
      assert.equal((await peer.next(isError)).code, WireError.UNEXPECTED_MESSAGE);
      await peer.whenClosed();
    }
  });

  test('a login without a user or a nonce, or with a nonce of a length outside 16 to 128, is AUTH_FAILED saying which', async () => {
    const cases: [Message, RegExp][] = [
      [{ t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'admin', id: 'x' }, /^a login needs a user \(account name or token id\) in the hello$/],
      [{ t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'admin', id: 'x', user: 'admin' }, /^a login needs a nonce in the hello$/],
      [{ ...adminHello, user: 'u'.repeat(129) }, /^the hello's user is 129 characters long: at most 128$/],
      [{ ...adminHello, nonce: 'ab' }, /^the hello's nonce is 2 characters long: a nonce is 16 to 128 characters$/],
      [{ ...adminHello, nonce: 'n'.repeat(15) }, /^the hello's nonce is 15 characters long/],
      [{ ...agentHello, nonce: 'n'.repeat(129) }, /^the hello's nonce is 129 characters long/],
    ];
    for (const [hello, message] of cases) {
      const peer = await inPhase('hello');
      peer.send(hello);
      const error = await peer.next(isError);
      assert.equal(error.code, WireError.AUTH_FAILED);
      assert.match(error.msg, message);
      await peer.whenClosed();
    }
    // The bounds themselves start a login.
    for (const nonce of ['n'.repeat(16), 'n'.repeat(128)]) {
      const peer = await inPhase('hello');
      peer.send({ ...adminHello, nonce });
      await peer.next(isChallenge);
      peer.socket.destroy();
    }
  });
});

describe('frames after a fatal error, and limits that follow the phase', () => {
  const fatal: Record<string, Buffer> = {
    'a body that is not msgpack': frame(Buffer.from([0xc1])),
    'a message not valid in the phase': encodeMessage(SAMPLES.Subscribe),
    "the peer's own Error": encodeMessage(SAMPLES.Error),
  };
  for (const [what, first] of Object.entries(fatal)) {
    test(`frames that arrive after ${what} in the same chunk are not handled`, async () => {
      const peer = await inPhase('admin');
      const key = `after-${what.replace(/\W+/g, '-')}`;
      peer.raw(Buffer.concat([first, encodeMessage({ t: MessageType.Request, id: 7, req: { op: 'set', env: 'demo', key, value: '"lost"' } })]));
      await peer.whenClosed();
      assert.ok(peer.received.filter(isError).length <= 1, 'at most one error frame');
      // Writes are serialised: once a later write is answered, the earlier one would have been applied.
      const later = await inPhase('admin');
      later.send({ t: MessageType.Request, id: 8, req: { op: 'set', env: 'demo', key: 'later', value: '1' } });
      await later.next(isResponse(8));
      assert.equal(mem.server.state.values('demo')!.get(key), undefined, 'the write after the error was not applied');
      assert.equal(peer.received.filter(isResponse(7)).length, 0);
    });
  }

  test('before the hello only small frames are taken, refused from the header alone', async () => {
    const peer = await inPhase('hello');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(4097);
    peer.raw(header);
    const error = await peer.next(isError);
    assert.equal(error.code, WireError.FRAME_TOO_LARGE);
    assert.match(error.msg, /limit of 4096 bytes/);
    await peer.whenClosed();
  });

  test('a declared length of 4 GB is refused at once in every phase', async () => {
    for (const phase of ['hello', 'agent', 'admin'] as const) {
      const peer = await inPhase(phase);
      peer.raw(Buffer.from([0xff, 0xff, 0xff, 0xff]));
      assert.equal((await peer.next(isError)).code, WireError.FRAME_TOO_LARGE, phase);
      await peer.whenClosed();
    }
  });

  test('a hello holding more values than allowed before the hello is LIMIT_EXCEEDED', async () => {
    const peer = await inPhase('hello');
    peer.send({ ...agentHello, peers: Array.from({ length: 100 }, (_, i) => `h${i}:1`) });
    assert.equal((await peer.next(isError)).code, WireError.LIMIT_EXCEEDED);
    await peer.whenClosed();
  });

  test("an admin's large request in the same chunk as its login proof is taken under the admin's limits", async () => {
    const peer = await inPhase('hello');
    const scram = admin();
    peer.send(scram.hello());
    const challenge = await peer.next(isChallenge);
    const entries: [string, string][] = Array.from({ length: 20_000 }, (_, i) => [`bulk/${i}`, String(i)]);
    peer.raw(Buffer.concat([
      encodeMessage(scram.proof(challenge)),
      encodeMessage({ t: MessageType.Request, id: 3, req: { op: 'apply', env: 'demo', entries, replace: false } }),
    ]));
    const res = await peer.next(isResponse(3));
    assert.deepEqual((res.res as { changed: number }).changed, 20_000);
  });

  test('an agent may not send a frame above its limit (1 MiB by default)', async () => {
    const peer = await inPhase('agent');
    const envs = Array.from({ length: 40_000 }, (_, i) => ({ env: `e${i}`.padEnd(30, 'x'), rev: 0 }));
    peer.send({ t: MessageType.Subscribe, all: false, envs });
    assert.equal((await peer.next(isError)).code, WireError.FRAME_TOO_LARGE);
  });

  test('the element bomb sent by an admin is refused from its header, before anything is built', async () => {
    const peer = await inPhase('admin');
    const count = 60_000_000;
    const body = Buffer.alloc(5 + count, 0);
    body[0] = 0xdd;
    body.writeUInt32BE(count, 1);
    const heap = process.memoryUsage().heapUsed;
    peer.raw(frame(body));
    const error = await peer.next(isError, 0, 20_000);
    assert.equal(error.code, WireError.LIMIT_EXCEEDED);
    assert.ok(process.memoryUsage().heapUsed - heap < 128 * 1024 * 1024, 'no array of 60 million values was built');
  });
});

describe('what an agent may ask', () => {
  test('a subscription naming an invalid environment is BAD_REQUEST; naming too many is LIMIT_EXCEEDED', async () => {
    const bad = await inPhase('agent');
    bad.send({ t: MessageType.Subscribe, all: false, envs: [{ env: '../etc', rev: 0 }] });
    assert.equal((await bad.next(isError)).code, WireError.BAD_REQUEST);
    const many = await memoryServer({ limits: { subscribedEnvs: 5 } });
    try {
      const peer = many.connect();
      await logIn(peer, ScramClient.agent(await many.token('t')));
      peer.send({ t: MessageType.Subscribe, all: false, envs: Array.from({ length: 6 }, (_, i) => ({ env: `e${i}`, rev: 0 })) });
      assert.equal((await peer.next(isError)).code, WireError.LIMIT_EXCEEDED);
    } finally {
      await many.close();
    }
  });

  test('subscribes beyond the burst are LIMIT_EXCEEDED: each one makes the server send a catch-up', async () => {
    const peer = await inPhase('agent');
    const subscribe: Message = { t: MessageType.Subscribe, all: false, envs: [{ env: 'demo', rev: 0 }] };
    peer.send(subscribe, subscribe, subscribe);
    await alive(peer, 7);
    peer.send(subscribe);
    const error = await peer.next(isError);
    assert.equal(error.code, WireError.LIMIT_EXCEEDED);
    assert.match(error.msg, /subscribes a minute/);
  });
});

describe('what an agent may hold', () => {
  test('a name of 100 KB in an error is cut short, on the wire and in the log', async () => {
    const peer = await inPhase('agent');
    peer.send({ t: MessageType.Subscribe, all: false, envs: [{ env: `x${'y'.repeat(100_000)}!`, rev: 0 }] });
    const error = await peer.next(isError);
    assert.equal(error.code, WireError.BAD_REQUEST);
    assert.ok(error.msg.length < 400, `${error.msg.length} characters`);
  });

  test('an agent may follow at most absentEnvsPerAgent environments that do not exist', async () => {
    const names = (n: number) => Array.from({ length: n }, (_, i) => ({ env: `not-yet-${i}`, rev: 0 }));
    const ok = await inPhase('agent');
    ok.send({ t: MessageType.Subscribe, all: false, envs: [...names(16), { env: 'demo', rev: 0 }] });
    await alive(ok, 1);
    const tooMany = await inPhase('agent');
    tooMany.send({ t: MessageType.Subscribe, all: false, envs: names(17) });
    const error = await tooMany.next(isError);
    assert.equal(error.code, WireError.LIMIT_EXCEEDED);
    assert.match(error.msg, /at most 16 environments that do not exist/);
  });

  test('an agent that takes nothing of what waits for it for stallTimeoutMs is a slow consumer', async () => {
    const stalling = await memoryServer({ limits: { stallTimeoutMs: 1500 } });
    try {
      await stalling.server.hub.execute({ op: 'env.add', env: 'big' }, 'test');
      const entries: [string, string][] = Array.from({ length: 5000 }, (_, i) => [`k${i}`, JSON.stringify('v'.repeat(40))]);
      await stalling.server.hub.execute({ op: 'apply', env: 'big', entries, replace: false }, 'test');
      const peer = stalling.connect('127.0.0.1:3000');
      await logIn(peer, ScramClient.agent(await stalling.token('t')));
      peer.socket.pause(); // from here on it reads nothing
      peer.socket.removeAllListeners('data');
      peer.send({ t: MessageType.Subscribe, all: false, envs: [{ env: 'big', rev: 0 }] });
      await waitFor('closed by the server', () => peer.closed, 8000);
      assert.equal(stalling.server.host.status(undefined, 0).counters.SLOW_CONSUMER, 1);
    } finally {
      await stalling.close();
    }
  });
});

describe('handlers that throw', () => {
  /** A host whose admin executor fails on purpose. */
  function hostWith(execute: () => Promise<unknown>): { host: ConnectionHost; connect: () => TestPeer } {
    const state = new ServerState(resolveLimits());
    state.load(0, []);
    const book = new CredentialBook({
      accounts: [{ name: 'admin', role: 'admin', envs: ['*'], reads: ['*'], uid: 'admin-1', verifier: makeVerifier(ADMIN_PASSWORD, 4096), created: 0 }], tokens: [], stamp: 1,
    });
    const login = { book: () => book, decoySecret: Buffer.alloc(32, 7), passwordIterations: 4096, throttle: new LoginThrottle(), audit: () => undefined };
    const host = new ConnectionHost(
      { serverId: 'srv-test', listen: [], limits: resolveLimits(), maxAgents: 10, login, log: () => undefined },
      state,
      { execute },
    );
    return {
      host,
      connect: () => {
        const [client, end] = memoryPair();
        const peer = new TestPeer(client);
        host.attach(end, '127.0.0.1:1000');
        return peer;
      },
    };
  }

  /** Runs `body` with stderr captured. */
  async function captureStderr(body: () => Promise<void>): Promise<string> {
    const write = process.stderr.write.bind(process.stderr);
    let text = '';
    process.stderr.write = ((chunk: string | Uint8Array) => {
      text += chunk.toString();
      return true;
    });
    try {
      await body();
    } finally {
      process.stderr.write = write;
    }
    return text;
  }

  test('a synchronous throw ends only that session, with INTERNAL, and is logged with its stack', async () => {
    const { host, connect } = hostWith(() => {
      throw new TypeError('a bug in the executor');
    });
    const logged = await captureStderr(async () => {
      const peer = connect();
      await logIn(peer, admin());
      peer.send(SAMPLES.Request);
      const error = await peer.next(isError);
      assert.equal(error.code, WireError.INTERNAL);
      assert.equal(error.id, undefined);
      assert.doesNotMatch(error.msg, /executor|TypeError/, 'no detail of the fault goes on the wire');
      await peer.whenClosed();
    });
    assert.match(logged, /internal error in ServerSession: TypeError: a bug in the executor\n\s+at /);
    const other = connect();
    await logIn(other, admin());
    await alive(other, 2);
    await host.stop('forced');
  });

  test('a result that cannot be encoded is answered with INTERNAL for that request; the session goes on', async () => {
    const { host, connect } = hostWith(() => Promise.resolve({ huge: 10n ** 30n }));
    const logged = await captureStderr(async () => {
      const peer = connect();
      await logIn(peer, admin());
      peer.send(SAMPLES.Request);
      const error = await peer.next(isError);
      assert.deepEqual([error.code, error.id], [WireError.INTERNAL, 1]);
      assert.match(error.msg, /could not be encoded/);
      await alive(peer, 5);
    });
    assert.match(logged, /internal error in ServerSession/);
    await host.stop('forced');
  });

  test('a rejected promise answers that request with INTERNAL and the session goes on; a RequestError keeps its status', async () => {
    let calls = 0;
    const { host, connect } = hostWith(() => {
      calls++;
      if (calls === 1) return Promise.reject(new RangeError('an async bug'));
      return Promise.reject(new RequestError(WireError.ENV_NOT_FOUND, 'no such environment'));
    });
    const logged = await captureStderr(async () => {
      const peer = connect();
      await logIn(peer, admin());
      peer.send(SAMPLES.Request);
      const first = await peer.next(isError);
      assert.deepEqual([first.code, first.id], [WireError.INTERNAL, 1]);
      peer.send({ ...SAMPLES.Request, id: 2 } as Message);
      const second = await peer.next((m): m is ErrorMessage => isError(m) && m.id === 2);
      assert.equal(second.code, WireError.ENV_NOT_FOUND);
      await alive(peer, 3);
    });
    assert.match(logged, /RangeError: an async bug/);
    await host.stop('forced');
  });
});

describe('a peer that does not read', () => {
  test('pings sent without reading the pongs stop being read once the replies pile up: memory stays bounded', async () => {
    const [client, end] = memoryPair();
    const peer = new TestPeer(client);
    const session = mem.server.attach(end, '127.0.0.1:4999')!;
    await logIn(peer, ScramClient.agent(token));
    // From here on it reads nothing.
    client.removeAllListeners('data');
    client.pause();
    const ping = encodeMessage({ t: MessageType.Ping, n: 1 });
    const burst = Buffer.concat(Array.from({ length: 20_000 }, () => ping));
    let sent = 0;
    // Write as long as the server keeps reading; it stops once its replies are not read.
    for (let i = 0; i < 200 && client.write(burst); i++) {
      sent += burst.length;
      await new Promise((r) => setImmediate(r));
    }
    // The client stopped because its writes are not taken: the server has stopped reading.
    await waitFor('the server stopped reading', () => end.isPaused(), 30_000);
    assert.ok(session.writableLength < 4 * 1024 * 1024, `the server holds ${session.writableLength} bytes of replies`);
    assert.ok(sent < 200 * burst.length, 'the server stopped reading');
    // Reading again lets everything through.
    peer.read();
    await waitFor('the pongs of every ping sent', () => peer.received.filter((m) => m.t === MessageType.Pong).length >= sent / ping.length);
    assert.equal(peer.closed, false);
  });
});

describe('request ids', () => {
  test('a request id that is not 1 to 128 of A-Z a-z 0-9 . _ : - is BAD_REQUEST for that request, and the session goes on', async () => {
    const peer = await inPhase('admin');
    for (const [n, rid] of [['', 1], ['x'.repeat(129), 2], ['a b', 3], ['é', 4], ['a/b', 5]] as const) {
      const from = peer.received.length;
      peer.send({ t: MessageType.Request, id: rid, req: { op: 'env.list' }, rid: n });
      const error = await peer.next(isError, from);
      assert.equal(error.code, WireError.BAD_REQUEST, error.msg);
      assert.equal(error.id, rid);
    }
    await alive(peer, 77);
  });

  test('an id kept for a write to one environment is refused for a write to another', async () => {
    const { hub } = mem.server;
    await hub.execute({ op: 'env.add', env: 'rid-a' }, 'test');
    await hub.execute({ op: 'env.add', env: 'rid-b' }, 'test');
    const first = await hub.execute({ op: 'set', env: 'rid-a', key: 'k', value: '1' }, 'test', 'same-id');
    assert.deepEqual(await hub.execute({ op: 'set', env: 'rid-a', key: 'k', value: '1' }, 'test', 'same-id'), { ...first, replayed: true });
    await assert.rejects(hub.execute({ op: 'set', env: 'rid-b', key: 'k', value: '1' }, 'test', 'same-id'), (err: Error & { status?: number }) => err.status === WireError.BAD_REQUEST && /request id same-id was used for rid-a@\d+/.test(err.message));
  });
});

describe('the ping interval agents are told', () => {
  test('grows with the agents connected, within its bounds; admins are not told; a told agent may be silent for three intervals', async () => {
    // 400 ms per agent: 1 agent → the 1 s floor; 3 agents → 1.2 s; 10 → the 3 s ceiling.
    const srv = await memoryServer({ limits: { agentPingMs: 1000, agentPingMaxMs: 3000, agentPingUsPerAgent: 400_000, idleTimeoutMs: 1500 } });
    const peers: TestPeer[] = [];
    try {
      const agentToken = await srv.token('pinging');
      const logInAgent = async (): Promise<[TestPeer, Welcome]> => {
        const p = srv.connect();
        peers.push(p);
        return [p, await logIn(p, ScramClient.agent(agentToken))];
      };
      const [first, welcome] = await logInAgent();
      assert.equal(welcome.ping, 1000);
      for (let i = 0; i < 2; i++) await logInAgent();
      first.send({ t: MessageType.Ping, n: 7 });
      assert.equal((await first.next(isPong(7))).next, 1200, 'three agents: 1.2 s');
      for (let i = 0; i < 7; i++) await logInAgent();
      first.send({ t: MessageType.Ping, n: 8 });
      assert.equal((await first.next(isPong(8))).next, 3000, 'ten agents: the ceiling');
      const ops = srv.connect();
      peers.push(ops);
      assert.equal((await logIn(ops, admin())).ping, undefined);
      ops.send({ t: MessageType.Ping, n: 9 });
      assert.equal((await ops.next(isPong(9))).next, undefined);
      // Past idleTimeoutMs (1.5 s) but within three times its last interval (9 s): the agent stays; the silent admin does
      // not. The agent has been silent longer than the admin: once the admin is closed, the agent was kept past it.
      await ops.whenClosed(30_000);
      assert.equal(first.closed, false, 'the agent told 3 s is kept');
      assert.deepEqual(ops.received.filter(isError).map((e) => e.code), [WireError.TIMEOUT], 'the silent admin is closed for its silence');
    } finally {
      await srv.close();
    }
  });
});

test('list, history and diff answers go one at a time per session: one that pipelines them without reading holds about two pages on the server', async () => {
  const pageBytes = 64 * 1024;
  const big = await memoryServer({ limits: { answerBytes: pageBytes } });
  try {
    await big.server.hub.execute({ op: 'env.add', env: 'wide' }, 'test');
    const entries: [string, string][] = Array.from({ length: 100 }, (_, i) => [`k${String(i).padStart(3, '0')}`, JSON.stringify('v'.repeat(4000))]);
    await big.server.hub.execute({ op: 'apply', env: 'wide', entries, replace: false }, 'test');
    const peer = big.connect(undefined, false);
    peer.read();
    await logIn(peer, admin());
    // From here on the client takes nothing.
    peer.socket.pause();
    const from = peer.received.length;
    for (let id = 1; id <= 8; id++) peer.send({ t: MessageType.Request, id, req: { op: 'list', env: 'wide' } });
    peer.send({ t: MessageType.Request, id: 9, req: { op: 'get', env: 'wide', key: 'k000' } });
    const sessions = (big.server.host as unknown as { sessions: Set<ServerSession> }).sessions;
    const session = await waitFor('the admin session', () => [...sessions].find((s) => s.role === 'admin'));
    // Three answered (the get is never held behind the lists): what waits in the server's own buffer for a client that
    // reads nothing is then at most two pages, and the other lists wait their turn; without the rule, all eight pile up.
    await waitFor('three requests answered', () => session.requestsInFlight <= 6);
    assert.ok(session.requestsInFlight >= 4, `${9 - session.requestsInFlight} answered to a client that reads nothing`);
    assert.ok(session.writableLength <= 2 * pageBytes + 16 * 1024, `${session.writableLength} bytes wait in the server for a client that reads nothing`);
    peer.read();
    await waitFor('every answer', () => peer.received.slice(from).filter((m) => m.t === MessageType.Response).length === 9, 10_000);
    const lists = peer.received.slice(from).filter((m): m is Extract<Message, { t: typeof MessageType.Response }> => m.t === MessageType.Response && m.id <= 8);
    assert.equal(lists.length, 8);
    for (const m of lists) {
      const res = m.res as { entries: unknown[]; next?: string };
      assert.ok(res.entries.length < 100 && res.next !== undefined, 'each answer is one page');
    }
  } finally {
    await big.close();
  }
});

test('a request after the hello and before the proof is UNEXPECTED_MESSAGE, named as before the login', async () => {
  const peer = mem.connect();
  await peer.next((m): m is Message => m.t === MessageType.Hello);
  const scram = admin();
  peer.send(scram.hello());
  await peer.next(isChallenge);
  const from = peer.received.length;
  peer.send({ t: MessageType.Request, id: 1, req: { op: 'env.list' } });
  const error = await peer.next(isError, from);
  assert.equal(error.code, WireError.UNEXPECTED_MESSAGE);
  assert.equal(error.id, undefined);
  assert.equal(error.msg, `message type ${MessageType.Request} is not valid before the login`);
  await peer.whenClosed();
});
