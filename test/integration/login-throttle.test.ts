/**
 * Failed logins cannot lock anyone out: against a server in this process,
 * attackers on in-memory connections (from addresses of their choosing)
 * fail without end while the owner of the account, or an agent of the
 * token, logs in from loopback with the real clients and their real
 * deadlines. A throttled attempt is told at once how long to wait; the
 * admin tool and the agent wait that long within their deadline, say so,
 * and get in.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  MessageType, WireError, type Challenge, type ErrorMessage, type Message, type Welcome,
} from '../../src/protocol/index.js';
import { AdminClient } from '../../src/admin/client.js';
import { Agent, AGENT_DEFAULTS } from '../../src/agent/agent.js';
import { LocalStore } from '../../src/agent/local-store.js';
import { parseToken } from '../../src/security/token.js';
import { connect } from '../../src/transport/client.js';
import { LIMIT_DEFAULTS } from '../../src/server/limits.js';
import { ScramClient } from '../support/login.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';
import { run, tempDir, waitFor } from '../support/procs.js';

const isChallengeOrError = (m: Message): m is Challenge | ErrorMessage => m.t === MessageType.Challenge || m.t === MessageType.Error;
const isAnswer = (m: Message): m is Welcome | ErrorMessage => m.t === MessageType.Welcome || m.t === MessageType.Error;

type Outcome = { code: 'welcome' } | { code: number; retry?: number; msg: string };

/** One login over an in-memory connection from `addr`: the Welcome, or the Error that ended it. */
async function tryLogin(mem: MemoryServer, scram: ScramClient, addr: string): Promise<Outcome> {
  const peer = mem.connect(addr);
  try {
    await peer.next((m): m is Message => m.t === MessageType.Hello, 0, 30_000);
    peer.send(scram.hello());
    const first = await peer.next(isChallengeOrError, 0, 30_000);
    if (first.t === MessageType.Error) return { code: first.code, msg: first.msg, ...(first.retry === undefined ? {} : { retry: first.retry }) };
    peer.send(scram.proof(first));
    const answer = await peer.next(isAnswer, 0, 30_000);
    if (answer.t === MessageType.Welcome) return { code: 'welcome' };
    return { code: answer.code, msg: answer.msg, ...(answer.retry === undefined ? {} : { retry: answer.retry }) };
  } finally {
    peer.socket.destroy();
  }
}

/**
 * Attackers failing without end until stopped: `patient` ones each take a
 * fresh address per guess and, told to wait for the name, come back from it
 * after the wait; one more guesses from a single address, ignoring every
 * answer.
 */
function attack(mem: MemoryServer, guess: () => ScramClient, net: string, patient: number): { failures: () => number; stop: () => Promise<void> } {
  let failures = 0;
  let stopped = false;
  const loops: Promise<void>[] = [];
  for (let loop = 0; loop < patient; loop++) {
    loops.push((async () => {
      for (let n = 0; !stopped; n++) {
        const addr = `${net}.${loop}.${n % 250}:${1000 + n}`;
        let outcome = await tryLogin(mem, guess(), addr);
        const wait = outcome.code === WireError.THROTTLED ? outcome.retry : undefined;
        if (wait !== undefined && wait <= 5000 && !stopped) {
          await new Promise((r) => setTimeout(r, wait));
          outcome = await tryLogin(mem, guess(), addr);
        }
        if (outcome.code === WireError.AUTH_FAILED) failures++;
        // In-memory connections never wait on I/O: without a timer between guesses, the server's own timers would starve.
        await new Promise((r) => setTimeout(r, 10));
      }
    })());
  }
  loops.push((async () => {
    while (!stopped) {
      if ((await tryLogin(mem, guess(), `${net}.99.1:7`)).code === WireError.AUTH_FAILED) failures++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })());
  return {
    failures: () => failures,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

function port(mem: MemoryServer): number {
  return Number(mem.server.address.split(':').pop());
}

describe('failed logins lock nobody out', () => {
  let mem: MemoryServer;
  const dirs: string[] = [];
  before(async () => {
    mem = await memoryServer();
  });
  after(async () => {
    await mem.close();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('once a name has failed from one address, the next attempt is told at once how long to wait, its proof unchecked and unaudited', async () => {
    await mem.account('told', 'viewer');
    const outcomes: Outcome[] = [];
    for (let i = 0; i <= LIMIT_DEFAULTS.loginPairBurst; i++) outcomes.push(await tryLogin(mem, new ScramClient('admin', 'told', 'not-it'), '10.0.7.1:1'));
    assert.deepEqual(outcomes.slice(0, -1).map((o) => o.code), Array(LIMIT_DEFAULTS.loginPairBurst).fill(WireError.AUTH_FAILED));
    const last = outcomes.at(-1)!;
    assert.ok(last.code === WireError.THROTTLED, JSON.stringify(last));
    assert.ok(last.retry !== undefined && last.retry > 0 && last.retry <= LIMIT_DEFAULTS.loginPairIntervalMs, JSON.stringify(last));
    assert.match(last.msg, /too many failed logins of this name from this address: try again in \d+ s/);
    // Even the right password is not checked from there now; from any other address it is.
    assert.equal((await tryLogin(mem, new ScramClient('admin', 'told', 'told-password'), '10.0.7.1:2')).code, WireError.THROTTLED);
    assert.equal((await tryLogin(mem, new ScramClient('admin', 'told', 'told-password'), '10.0.7.2:1')).code, 'welcome');
    const audited = async (): Promise<number> => {
      const { entries } = await mem.server.access.execute({ op: 'audit', user: 'told', limit: 100 }, { account: 'admin', addr: 'test' }) as { entries: { result: string }[] };
      return entries.filter((e) => e.result === 'failed').length;
    };
    await waitFor('the failures audited', async () => (await audited()) === LIMIT_DEFAULTS.loginPairBurst);
    assert.equal(await audited(), LIMIT_DEFAULTS.loginPairBurst, 'the throttled attempts were not checked, so not audited');
  });

  test('the owner logs in from another address while attackers fail continuously, from one address and from many', async () => {
    await mem.account('owner', 'editor', ['*']);
    const attackers = attack(mem, () => new ScramClient('admin', 'owner', 'guess'), '10.66', 8);
    try {
      // More failures than the name's bucket holds (20; the throttle before it waited 10 s from the ninth).
      await waitFor('the attack under way', () => attackers.failures() > 20, 120_000, 50);
      for (let round = 0; round < 3; round++) {
        const told: number[] = [];
        const client = await AdminClient.connect({
          host: '127.0.0.1', port: port(mem), login: { user: 'owner', secret: 'owner-password' },
          connectTimeoutMs: 10_000, requestTimeoutMs: 10_000, onThrottled: (ms) => told.push(ms),
        });
        assert.equal(client.account.account, 'owner');
        assert.ok(told.every((ms) => ms <= LIMIT_DEFAULTS.loginNameWaitMs), `told to wait ${told.join(', ')} ms`);
        const env = await client.request({ op: 'env.list' });
        assert.ok(Array.isArray(env.envs));
        client.close();
      }
    } finally {
      await attackers.stop();
    }
  });

  test('an agent keeps reconnecting while others fail with its token id, from one address and from many', async () => {
    const token = await mem.token('fleet', ['*']);
    const { id } = parseToken(token)!;
    const wrong = parseToken(await mem.token('other', ['*']))!.secret;
    const attackers = attack(mem, () => new ScramClient('agent', id, wrong), '10.67', 4);
    try {
      await waitFor('the attack under way', () => attackers.failures() > 20, 120_000, 50);
      const dir = tempDir('vitefa-throttle-agent-');
      dirs.push(dir);
      for (let round = 0; round < 4; round++) {
        const store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
        const disconnects: string[] = [];
        let connected = 0;
        // The agent as `vitefa agent` runs it: its 5 s login deadline, its backoff.
        const agent = new Agent({ ...AGENT_DEFAULTS, servers: [{ host: '127.0.0.1', port: port(mem) }], envs: [], token: parseToken(token)! }, store, {
          connected: () => void connected++,
          disconnected: (reason) => void disconnects.push(reason),
        });
        agent.start();
        try {
          await waitFor(`agent ${round} connected (disconnects: ${disconnects.join('; ')})`, () => connected > 0, 20_000);
        } finally {
          await agent.stop();
          await store.close();
        }
        assert.deepEqual(disconnects.filter((d) => /no challenge/.test(d)), []);
      }
    } finally {
      await attackers.stop();
    }
  });
});

describe('a throttled client is told, waits within its deadline and says so', () => {
  test('vitefa admin waits out a short wait and gets in, saying so; a wait beyond its connect timeout fails at once with the server\'s words', async () => {
    const mem = await memoryServer({ limits: { loginPairBurst: 1, loginPairIntervalMs: 3000 } });
    try {
      await mem.account('pat', 'viewer', ['*']);
      const as = (password: string, extra: NodeJS.ProcessEnv = {}) => run(['admin', '--server', mem.server.address, 'env', 'list'], { env: { VITEFA_USER: 'pat', VITEFA_PASSWORD: password, ...extra } });
      const wrong = await as('not-the-password');
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /login failed/);
      const waited = await as('pat-password');
      assert.equal(waited.code, 0, waited.stderr);
      assert.match(waited.stderr, /throttles this login \(too many failed logins of this name from this address: try again in [\d.]+ s\); waiting/);
      assert.equal((await as('not-the-password')).code, 1);
      const tooLong = await as('pat-password', { VITEFA_CONNECT_TIMEOUT_MS: '2000' });
      assert.equal(tooLong.code, 1);
      assert.match(tooLong.stderr, /too many failed logins of this name from this address: try again in [\d.]+ s/);
      assert.doesNotMatch(tooLong.stderr, /waiting/);
    } finally {
      await mem.close();
    }
  });

  test('an agent waits out a short wait on its address and connects, saying so', async () => {
    const mem = await memoryServer({ limits: { loginTokenBurst: 1, loginTokenIntervalMs: 3000 } });
    const dir = tempDir('vitefa-throttle-agent-');
    try {
      const token = parseToken(await mem.token('slow', ['*']))!;
      // One failure from loopback fills loopback's bucket for token logins.
      await assert.rejects(connect({
        host: '127.0.0.1', port: port(mem), role: 'agent', login: { user: token.id, secret: 'x'.repeat(43) }, timeoutMs: 5000,
        onMessage: () => undefined, onClose: () => undefined,
      }), /login failed/);
      const store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
      const throttled: number[] = [];
      let connected = 0;
      const agent = new Agent({ ...AGENT_DEFAULTS, servers: [{ host: '127.0.0.1', port: port(mem) }], envs: [], token }, store, {
        connected: () => void connected++,
        throttled: (_server, ms) => void throttled.push(ms),
      });
      agent.start();
      try {
        await waitFor('the agent connected', () => connected > 0, 20_000);
      } finally {
        await agent.stop();
        await store.close();
      }
      assert.ok(throttled.length >= 1 && throttled.every((ms) => ms <= 3000), `told ${throttled.join(', ')}`);
    } finally {
      await mem.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
