/**
 * Seeded fuzz of message *sequences* against one server's sessions, in
 * memory: valid frames of every type in random order with random fields,
 * mutated messages, msgpack token soup, truncated frames and lying headers,
 * cut into random chunks. No exception may escape a session, every session
 * ends cleanly or goes on, the server keeps serving a legitimate agent and an
 * admin, and its connection accounting comes back to exactly the sessions
 * still open. Replay one sequence with:
 *   SESSION_FUZZ_SEED=<seed> SESSION_FUZZ_SESSIONS=1 node --import tsx --test test/integration/session-fuzz.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeBody, encodeMessage, frame, MessageType, PROTOCOL_VERSION,
  type Challenge, type Message, type Release, type Response,
} from '../../src/protocol/index.js';
import { chance, int, mulberry32, mutateMessage, pick, randomBytes, randomMessage, randomRequest, tokenSoup, type Rng } from '../support/fuzz.js';
import { ScramClient } from '../support/login.js';
import type { TestPeer } from '../support/memory.js';
import { memoryServer } from '../support/servers.js';
import { ADMIN_PASSWORD, waitFor } from '../support/common.js';

/** A real login; a session that the server ended meanwhile just stops. */
async function logIn(peer: TestPeer, scram: ScramClient): Promise<void> {
  try {
    await peer.next((m): m is Message => m.t === MessageType.Hello);
    peer.send(scram.hello());
    peer.send(scram.proof(await peer.next((m): m is Challenge => m.t === MessageType.Challenge)));
    await peer.next((m): m is Message => m.t === MessageType.Welcome);
  } catch {
    // closed before the end of the login
  }
}
import { Packr } from 'msgpackr';

const BASE_SEED = Number(process.env['SESSION_FUZZ_SEED'] ?? 0x5e55_10f) >>> 0;
const SESSIONS = Number(process.env['SESSION_FUZZ_SESSIONS'] ?? 600);
const raw = new Packr({ useRecords: false, moreTypes: false });

/** A hello of this protocol version with random login fields. */
function hello(rng: Rng): Buffer {
  return encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: chance(rng, 0.5) ? 'agent' : 'admin', id: `fuzz-${int(rng, 100)}`, user: 'admin', nonce: `nonce-${int(rng, 1e9)}-padding` });
}

/**
 * A sequence of 1 to 25 items. Most sessions first log in for real (as an
 * agent or as admin), so the sequence reaches the deeper phases, and then
 * send mostly messages that do real work; the others start with a hello of
 * random fields (a login that fails, or garbage).
 */
function sequence(rng: Rng): { login: 'agent' | 'admin' | undefined; bytes: Buffer } {
  const login = chance(rng, 0.6) ? (chance(rng, 0.5) ? 'agent' : 'admin') : undefined;
  const items = login === undefined && chance(rng, 0.5) ? [hello(rng)] : [];
  const length = 1 + int(rng, 25);
  while (items.length < length) items.push(item(rng, login !== undefined && chance(rng, 0.6)));
  return { login, bytes: Buffer.concat(items) };
}

/** One item of a sequence: the bytes it puts on the wire. */
function item(rng: Rng, real: boolean): Buffer {
  switch (real ? 5 : int(rng, 10)) {
    case 0:
    case 1:
    case 2:
      return encodeMessage(randomMessage(rng));
    case 3:
      return frame(raw.pack(mutateMessage(rng, randomMessage(rng))));
    case 4:
      return frame(tokenSoup(rng));
    case 5: {
      // Messages that do real work when the phase allows them.
      const real: Message[] = [
        { t: MessageType.Subscribe, all: chance(rng, 0.5), envs: [{ env: 'demo', rev: int(rng, 5) }] },
        { t: MessageType.Ack, env: 'demo', rev: int(rng, 100) },
        { t: MessageType.Request, id: int(rng, 1000), req: randomRequest(rng) },
        { t: MessageType.Request, id: int(rng, 1000), req: { op: 'get', env: 'demo', key: 'k' } },
        { t: MessageType.Ping, n: int(rng, 1000) },
      ];
      return encodeMessage(pick(rng, real));
    }
    case 6: {
      // A truncated frame: what follows it becomes part of its body.
      const whole = encodeMessage(randomMessage(rng));
      return whole.subarray(0, int(rng, whole.length));
    }
    case 7: {
      // A header that lies about the length.
      const body = encodeBody(randomMessage(rng));
      const header = Buffer.alloc(4);
      header.writeUInt32BE(chance(rng, 0.5) ? int(rng, 2 ** 32) : Math.max(0, body.length + int(rng, 9) - 4));
      return Buffer.concat([header, body]);
    }
    case 8:
      return randomBytes(rng, 1 + int(rng, 40));
    default:
      return frame(randomBytes(rng, int(rng, 30)));
  }
}

/** Splits `bytes` into random chunks (sometimes byte by byte). */
function chunks(rng: Rng, bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const size = chance(rng, 0.1) ? 1 : 1 + int(rng, 200);
    out.push(bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

test(`${SESSIONS} seeded sequences: nothing escapes a session and the server keeps serving the others`, async () => {
  const escaped: unknown[] = [];
  const onUncaught = (err: unknown): void => void escaped.push(err);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const mem = await memoryServer({ maxAgents: 5000, limits: { pendingHellosPerAddress: 5000, pendingHellos: 5000 } });
  try {
    await mem.server.hub.execute({ op: 'env.add', env: 'demo' }, 'fuzz');
    await mem.server.hub.execute({ op: 'set', env: 'demo', key: 'k', value: '1' }, 'fuzz');
    const token = await mem.token('fuzz-agents');
    const peers = [];
    for (let batch = 0; batch < SESSIONS; batch += 50) {
      const running: Promise<void>[] = [];
      for (let i = batch; i < Math.min(SESSIONS, batch + 50); i++) {
        const seed = (BASE_SEED + i) >>> 0;
        const rng = mulberry32(seed);
        const addr = chance(rng, 0.8) ? `127.0.0.1:${20000 + i}` : `10.9.${int(rng, 4)}.${int(rng, 250)}:${i}`;
        const peer = mem.connect(addr);
        peers.push(peer);
        const { login, bytes } = sequence(rng);
        running.push((async () => {
          if (login !== undefined) await logIn(peer, login === 'agent' ? ScramClient.agent(token) : new ScramClient('admin', 'admin', ADMIN_PASSWORD));
          for (const chunk of chunks(rng, bytes)) {
            peer.raw(chunk);
            if (chance(rng, 0.3)) await new Promise((r) => setImmediate(r));
          }
        })());
      }
      await Promise.all(running);
      await new Promise((r) => setTimeout(r, 20)); // paces the batches: the server's own timers run between them
    }
    assert.deepEqual(escaped, [], 'no exception escaped a session');

    // The server still serves: a new agent gets a new release, an admin gets an answer.
    const agent = mem.connect('127.0.0.2:1');
    await logIn(agent, ScramClient.agent(token));
    agent.send({ t: MessageType.Subscribe, all: false, envs: [{ env: 'demo', rev: mem.server.state.rev('demo')! }] });
    const admin = mem.connect('127.0.0.2:2');
    await logIn(admin, new ScramClient('admin', 'admin', ADMIN_PASSWORD));
    admin.send({ t: MessageType.Request, id: 1, req: { op: 'set', env: 'demo', key: 'after', value: '"fuzz"' } });
    const response = await admin.next((m): m is Response => m.t === MessageType.Response && m.id === 1);
    const rev = (response.res as { rev: number }).rev;
    const release = await agent.next((m): m is Release => m.t === MessageType.Release && m.rev === rev);
    assert.deepEqual(release.changes, [['after', '"fuzz"']]);

    // Accounting: once every fuzz session is gone, exactly the two legitimate ones remain.
    for (const peer of peers) peer.socket.destroy();
    await waitFor('every fuzz session closed', () => mem.server.host.connections === 2);
    assert.deepEqual(mem.server.host.counts, { pending: 0, agents: 1, admins: 1 });
    assert.deepEqual(escaped, []);
  } finally {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
    await mem.close();
  }
});
