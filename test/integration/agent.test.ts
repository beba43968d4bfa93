/**
 * The agent against fake servers in this process: a protocol version
 * mismatch found by either side stops it for good, and a stopped agent
 * applies nothing more (its store may be closed at once).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { Agent, AGENT_DEFAULTS } from '../../src/agent/agent.js';
import { LocalStore } from '../../src/agent/local-store.js';
import {
  decodeBody, encodeMessage, FrameDecoder, LocalErrorCode, MessageType, PROTOCOL_VERSION, VitefaError, WireError,
  type Message,
} from '../../src/protocol/index.js';
import { checkProof, makeVerifier, type AuthContext } from '../../src/security/scram.js';
import { newToken, TOKEN_ITERATIONS } from '../../src/security/token.js';
import { freePort, tempDir, waitFor } from '../support/procs.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** The token the fake servers know; they check the agent's login against it as a real server would. */
const TOKEN = newToken();
const VERIFIER = makeVerifier(TOKEN.secret, TOKEN_ITERATIONS);

/**
 * A server that speaks as `script` says: it gets each connection and every
 * message the agent sends once it has logged in (the login itself is done
 * here, unless the script answers the Hello first).
 */
async function fakeServer(script: (socket: net.Socket, message: Message | 'connected') => void, at?: number): Promise<{ port: number; accepted: () => number; close(): Promise<void> }> {
  const port = at ?? (await freePort());
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const decoder = new FrameDecoder();
    let auth: AuthContext | undefined;
    socket.on('data', (chunk: Buffer) => {
      for (const body of decoder.push(chunk)) {
        const m = decodeBody(body);
        if (m.t === MessageType.Hello && m.user !== undefined && m.nonce !== undefined && !socket.writableEnded) {
          script(socket, m);
          if (socket.writableEnded) continue;
          auth = { role: 'agent', user: m.user, clientNonce: m.nonce, nonce: `${m.nonce}server`, salt: VERIFIER.salt, iterations: VERIFIER.iterations, channelBinding: '' };
          socket.write(encodeMessage({ t: MessageType.Challenge, nonce: auth.nonce, salt: auth.salt, iterations: auth.iterations }));
        } else if (m.t === MessageType.Proof && auth !== undefined) {
          const signature = checkProof(VERIFIER, auth, m.proof);
          assert.ok(signature !== undefined, 'the agent proved it holds the token');
          socket.write(encodeMessage({ t: MessageType.Welcome, signature, account: 'test-token', role: 'agent', envs: ['*'] }));
        } else {
          script(socket, m);
        }
      }
    });
    script(socket, 'connected');
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return {
    port,
    accepted: () => accepted,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

function newAgent(port: number, events: ConstructorParameters<typeof Agent>[2]): { agent: Agent; store: LocalStore; dir: string } {
  const dir = tempDir('vitefa-agent-');
  dirs.push(dir);
  const store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
  const agent = new Agent({ ...AGENT_DEFAULTS, servers: [{ host: '127.0.0.1', port }], envs: ['demo'], token: TOKEN, backoffMinMs: 20, backoffMaxMs: 50 }, store, events);
  return { agent, store, dir };
}

const serverHello = (v = PROTOCOL_VERSION): Buffer => encodeMessage({ t: MessageType.Hello, v, role: 'server', id: 'fake' });

/**
 * An event that comes after any retry the agents of these tests would make (every 20-50 ms): another agent, started
 * now and refused by a full server, has tried `attempts` times, waiting 100 ms between tries.
 */
async function laterRetries(attempts = 3): Promise<void> {
  const full = await fakeServer((socket, m) => {
    if (m === 'connected') socket.end(Buffer.concat([serverHello(), encodeMessage({ t: MessageType.Error, code: WireError.SERVER_FULL, msg: 'full' })]));
  });
  const dir = tempDir('vitefa-agent-');
  dirs.push(dir);
  const store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
  const witness = new Agent({ ...AGENT_DEFAULTS, servers: [{ host: '127.0.0.1', port: full.port }], envs: ['demo'], token: TOKEN, backoffMinMs: 100, backoffMaxMs: 100 }, store);
  try {
    witness.start();
    await waitFor(`${attempts} tries of another agent`, () => full.accepted() >= attempts, 60_000);
  } finally {
    await witness.stop();
    await store.close();
    await full.close();
  }
}

test('a server speaking another protocol version stops the agent for good', async () => {
  const server = await fakeServer((socket, m) => {
    if (m === 'connected') socket.write(serverHello(PROTOCOL_VERSION + 1));
  });
  let fatal: Error | undefined;
  const { agent, store } = newAgent(server.port, { fatal: (err) => (fatal = err) });
  agent.start();
  await waitFor('the agent gives up', () => fatal !== undefined);
  assert.ok(fatal instanceof VitefaError && fatal.code === LocalErrorCode.VERSION_MISMATCH, String(fatal));
  assert.match(fatal.message, /protocol/);
  await laterRetries();
  assert.equal(server.accepted(), 1, 'no retry');
  await agent.stop();
  await store.close();
  await server.close();
});

test("a server refusing the agent's protocol version stops the agent for good", async () => {
  const server = await fakeServer((socket, m) => {
    if (m === 'connected') socket.write(serverHello());
    else if (m.t === MessageType.Hello) socket.end(encodeMessage({ t: MessageType.Error, code: WireError.VERSION_MISMATCH, msg: 'protocol version 2 is not supported (server speaks 3)' }));
  });
  let fatal: Error | undefined;
  const { agent, store } = newAgent(server.port, { fatal: (err) => (fatal = err) });
  agent.start();
  await waitFor('the agent gives up', () => fatal !== undefined);
  assert.ok(fatal instanceof VitefaError && fatal.code === LocalErrorCode.VERSION_MISMATCH, String(fatal));
  await laterRetries();
  assert.equal(server.accepted(), 1, 'no retry');
  await agent.stop();
  await store.close();
  await server.close();
});

test('a release arriving after stop() is not applied, so the store can be closed at once, and nothing is fatal', async () => {
  let agentSocket: net.Socket | undefined;
  const server = await fakeServer((socket, m) => {
    if (m === 'connected') {
      socket.write(serverHello());
    } else if (m.t === MessageType.Subscribe) {
      agentSocket = socket;
      socket.write(encodeMessage({ t: MessageType.Snapshot, env: 'demo', rev: 5, entries: [['k', '"first"']] }));
    }
  });
  let fatal: Error | undefined;
  const { agent, store, dir } = newAgent(server.port, { fatal: (err) => (fatal = err) });
  agent.start();
  await waitFor('the snapshot applied', () => store.revision('demo') === 5);
  // Stop, close the store at once (as `vitefa agent` does on SIGTERM), and only then does a release arrive.
  await agent.stop();
  await store.close();
  agentSocket!.write(encodeMessage({ t: MessageType.Release, env: 'demo', rev: 6, prev: 5, time: 1, author: 'a', op: 'set', changes: [['k', '"late"']] }));
  // Once the session has closed on the server's side too, nothing more reaches the agent.
  await waitFor("the agent's session closed", () => agentSocket!.destroyed, 30_000);
  assert.equal(fatal, undefined, `stopping is not a failure: ${String(fatal)}`);
  const reopened = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
  assert.equal(reopened.revision('demo'), 5, 'the late release was not applied');
  await reopened.close();
  await server.close();
});

test('a server that sends garbage ends only that session: the agent says why once, and tries again', async () => {
  const server = await fakeServer((socket, m) => {
    if (m === 'connected') socket.write(serverHello());
    else if (m.t === MessageType.Subscribe) socket.write(Buffer.concat([Buffer.from([0, 0, 0, 1, 0xc1]), encodeMessage({ t: MessageType.Snapshot, env: 'demo', rev: 9, entries: [] })]));
  });
  const reasons: string[] = [];
  const { agent, store } = newAgent(server.port, { disconnected: (reason) => reasons.push(reason) });
  agent.start();
  await waitFor('a second connection', () => server.accepted() >= 2);
  assert.match(reasons[0] ?? '', /not valid msgpack: reserved byte 0xc1/);
  assert.equal(store.revision('demo'), 0, 'the snapshot after the garbage in the same chunk was not applied');
  await agent.stop();
  await store.close();
  await server.close();
});

test('a refused connection is retried by one loop only: the failed connect is not also reported as a lost session', async () => {
  const server = await fakeServer((socket, m) => {
    if (m === 'connected') socket.end(Buffer.concat([serverHello(), encodeMessage({ t: MessageType.Error, code: WireError.SERVER_FULL, msg: 'full' })]));
  });
  const dir = tempDir('vitefa-agent-');
  dirs.push(dir);
  const store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
  const reasons: string[] = [];
  const agent = new Agent({ ...AGENT_DEFAULTS, servers: [{ host: '127.0.0.1', port: server.port }], envs: ['demo'], token: TOKEN, backoffMinMs: 100, backoffMaxMs: 100 }, store, {
    disconnected: (reason) => reasons.push(reason),
  });
  agent.start();
  await waitFor('ten attempts', () => server.accepted() >= 10, 60_000);
  await agent.stop();
  // A session lost would be said each time (and each would start a second retry loop, doubling the attempts); the
  // refusal alone is said, once.
  assert.deepEqual(reasons, [`127.0.0.1:${server.port} refused the agent: full`]);
  await store.close();
  await server.close();
});

test('a configured server the cluster no longer lists is tried only after the listed ones', async () => {
  // Agents are configured with A and B. B is down at first, so all end on A, which lists itself and C:
  // B is not listed (dead, or stopped). B comes back; when A goes, the agents go to C.
  const c = await fakeServer((socket, m) => {
    if (m === 'connected') socket.write(serverHello());
  });
  const bPort = await freePort();
  let aAddr = '';
  const aSockets: net.Socket[] = [];
  const a = await fakeServer((socket, m) => {
    if (m === 'connected') socket.write(serverHello());
    else if (m.t === MessageType.Subscribe) {
      aSockets.push(socket);
      socket.write(encodeMessage({ t: MessageType.Peers, servers: [{ addr: aAddr, agents: 8, state: 'alive' }, { addr: `127.0.0.1:${c.port}`, agents: 0, state: 'alive' }] }));
    }
  });
  aAddr = `127.0.0.1:${a.port}`;
  const agents: { agent: Agent; store: LocalStore }[] = [];
  for (let i = 0; i < 8; i++) {
    const dir = tempDir('vitefa-agent-');
    dirs.push(dir);
    const store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
    const servers = [{ host: '127.0.0.1', port: a.port }, { host: '127.0.0.1', port: bPort }];
    const agent = new Agent({ ...AGENT_DEFAULTS, servers, envs: ['demo'], token: TOKEN, backoffMinMs: 20, backoffMaxMs: 50 }, store);
    agents.push({ agent, store });
    agent.start();
  }
  let b: Awaited<ReturnType<typeof fakeServer>> | undefined;
  try {
    await waitFor('every agent on A has the list', () => aSockets.length === 8);
    // Each agent keeps the servers of a list it has taken: then it knows C.
    await waitFor('every agent took the list', () => agents.every(({ store }) => store.rememberedServers().includes(`127.0.0.1:${c.port}`)));
    // B comes back (it was not listening while the agents chose A), then A goes.
    b = await fakeServer((socket, m) => {
      if (m === 'connected') socket.write(serverHello());
    }, bPort);
    await a.close();
    // Every agent in a session again: each stays where it is (both servers keep their sessions).
    await waitFor('every agent reconnected', () => c.accepted() + b!.accepted() >= 8 && agents.every(({ agent }) => agent.connected), 30_000);
    assert.equal(b.accepted(), 0, `${b.accepted()} agents went to the unlisted server`);
    assert.equal(c.accepted(), 8);
  } finally {
    for (const { agent, store } of agents) {
      await agent.stop();
      await store.close();
    }
    await a.close();
    await b?.close();
    await c.close();
  }
});

test('a server that stops answering pings is left for another: the agent does not wait for a socket that never closes', async () => {
  // A logs the agent in, then never answers again (a paused process, a host gone without a reset); B answers.
  const pings: number[] = [];
  let answered = 0;
  const answering = await fakeServer((socket, m) => {
    if (m === 'connected') socket.write(serverHello());
    else if (m.t === MessageType.Ping) {
      answered++;
      socket.write(encodeMessage({ t: MessageType.Pong, n: m.n }));
    }
  });
  const silent = await fakeServer((socket, m) => {
    // Its hello names the answering server, as a server names its peers.
    if (m === 'connected') socket.write(encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'server', id: 'silent', peers: [`127.0.0.1:${answering.port}`] }));
    else if (m.t === MessageType.Ping) pings.push(m.n);
  });
  const dir = tempDir('vitefa-agent-');
  dirs.push(dir);
  const store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
  const reasons: string[] = [];
  const connected: string[] = [];
  const agent = new Agent({ ...AGENT_DEFAULTS, servers: [{ host: '127.0.0.1', port: silent.port }], envs: ['demo'], token: TOKEN, pingIntervalMs: 100, backoffMinMs: 20, backoffMaxMs: 50 }, store, {
    disconnected: (reason) => reasons.push(reason),
    connected: (label) => connected.push(label),
  });
  try {
    agent.start();
    await waitFor('the agent left the silent server', () => reasons.length > 0);
    assert.match(reasons[0], /no pong from server/);
    assert.equal(pings.length, 1, 'one unanswered ping is enough');
    await waitFor('the agent is on the answering server', () => connected.includes(`127.0.0.1:${answering.port}`));
    // Pings answered: it stays. A ping goes only when the one before was answered, so after three the agent has
    // checked for an answer twice.
    const before = answered;
    await waitFor('three more pings answered', () => answered >= before + 3, 30_000);
    assert.equal(reasons.length, 1, reasons.join('; '));
    assert.equal(connected.at(-1), `127.0.0.1:${answering.port}`);
  } finally {
    await agent.stop();
    await store.close();
    await silent.close();
    await answering.close();
  }
});

test('the agent pings as often as its server asks in each Pong', async () => {
  const pings: number[] = [];
  const server = await fakeServer((socket, m) => {
    if (m === 'connected') socket.write(serverHello());
    else if (m.t === MessageType.Ping) {
      pings.push(Date.now());
      socket.write(encodeMessage({ t: MessageType.Pong, n: m.n, next: 1_000 }));
    }
  });
  const dir = tempDir('vitefa-agent-');
  dirs.push(dir);
  const store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
  const agent = new Agent({ ...AGENT_DEFAULTS, servers: [{ host: '127.0.0.1', port: server.port }], envs: ['demo'], token: TOKEN, pingIntervalMs: 100, backoffMinMs: 20, backoffMaxMs: 50 }, store);
  try {
    agent.start();
    await waitFor('a first ping', () => pings.length > 0);
    await waitFor('a second ping', () => pings.length >= 2, 30_000);
    // Configured for 100 ms, the next ping would be due 100 ms after the first; told 1 s, the agent's timer waits that
    // long (a lower bound set by its own timer: a slow machine only makes it longer).
    assert.ok(pings[1] - pings[0] >= 900, `the second ping came ${pings[1] - pings[0]} ms after the first`);
  } finally {
    await agent.stop();
    await store.close();
    await server.close();
  }
});

test('a fork is detected: a release that does not follow the chain held is not applied, a snapshot of another history replaces the store and is said; nothing is mixed', async () => {
  const hello = encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'server', id: 'forking' });
  const subscribes: Message[] = [];
  const acks: Message[] = [];
  const release = (rev: number, prev: number, key: string, chain: string, pchain: string): Buffer => encodeMessage({
    t: MessageType.Release, env: 'demo', rev, prev, time: 1, author: 'a', op: 'set', changes: [[key, `"${chain}"`]], chain, pchain,
  });
  let step = 0;
  const server = await fakeServer((socket, m) => {
    if (m === 'connected') {
      socket.write(hello);
      return;
    }
    if (m.t === MessageType.Ack) acks.push(m);
    if (m.t !== MessageType.Subscribe) return;
    subscribes.push(m);
    step++;
    if (step === 1) {
      // The agent's own history: a snapshot, then a release that follows it.
      socket.write(encodeMessage({ t: MessageType.Snapshot, env: 'demo', rev: 5, chain: 'aaaaaaaaaaaaaaaa', entries: [['base', '1']] }));
      socket.write(release(6, 5, 'ours', 'bbbbbbbbbbbbbbbb', 'aaaaaaaaaaaaaaaa'));
      // Then one of another history at the next revision: it follows cccc…, not bbbb….
      socket.write(release(7, 6, 'theirs', 'dddddddddddddddd', 'cccccccccccccccc'));
    } else if (step === 2) {
      // Asked again with the chain held: a snapshot of the other history at the same revision the agent holds.
      socket.write(encodeMessage({ t: MessageType.Snapshot, env: 'demo', rev: 6, chain: 'cccccccccccccccc', entries: [['theirs-base', '2']] }));
    }
  });
  const forks: string[] = [];
  const { agent, store } = newAgent(server.port, { forked: (env, detail) => forks.push(`${env}: ${detail}`) });
  try {
    agent.start();
    await waitFor('the fork reported', () => forks.length >= 1, 10_000);
    assert.match(forks[0], /^demo: release demo@7 follows chain cccccccccccccccc at revision 6, but this store holds chain bbbbbbbbbbbbbbbb/);
    await waitFor('asked again with the chain held', () => subscribes.length >= 2, 10_000);
    const again = subscribes[1] as Extract<Message, { t: typeof MessageType.Subscribe }>;
    assert.deepEqual(again.envs, [{ env: 'demo', rev: 6, chain: 'bbbbbbbbbbbbbbbb' }]);
    await waitFor('the snapshot of the other history taken', () => store.chain('demo') === 'cccccccccccccccc', 10_000);
    assert.match(forks[1], /^demo: snapshot demo@6 \(chain cccccccccccccccc\) replaces revision 6 \(chain bbbbbbbbbbbbbbbb\)/);
    // The store holds the snapshot alone: nothing of either release of the old history, nothing of the forked one.
    assert.equal(store.revision('demo'), 6);
    assert.deepEqual(store.held(), [{ env: 'demo', rev: 6, chain: 'cccccccccccccccc' }]);
    // Its ack names the chain it now holds.
    await waitFor('the ack of the snapshot', () => acks.some((a) => a.t === MessageType.Ack && a.rev === 6 && a.chain === 'cccccccccccccccc'), 10_000);
  } finally {
    await agent.stop();
    await store.close();
    await server.close();
  }
  // What a reading process sees (LMDB opens an environment once per process: the agent's store is closed first).
  const { ConfigReader } = await import('../../src/reader/index.js');
  const reader = ConfigReader.open(store.dir);
  try {
    assert.deepEqual(reader.list('demo'), { 'theirs-base': 2 });
    assert.equal(reader.chain('demo'), 'cccccccccccccccc');
  } finally {
    await reader.close();
  }
});

test('servers remembered from an earlier run are tried after a live configured one, and the store adds what the cluster announces', async () => {
  // B was announced by the cluster before; A is configured and answers, then lists itself and C.
  const b = await fakeServer((socket, m) => {
    if (m === 'connected') socket.write(serverHello());
  });
  const c = await fakeServer(() => undefined);
  let aAddr = '';
  const a = await fakeServer((socket, m) => {
    if (m === 'connected') socket.write(serverHello());
    else if (m.t === MessageType.Subscribe) socket.write(encodeMessage({ t: MessageType.Peers, servers: [{ addr: aAddr, agents: 1, state: 'alive' }, { addr: `127.0.0.1:${c.port}`, agents: 0, state: 'alive' }] }));
  });
  aAddr = `127.0.0.1:${a.port}`;
  const connected: string[] = [];
  const dir = tempDir('vitefa-agent-');
  dirs.push(dir);
  const store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
  store.rememberServers([`127.0.0.1:${b.port}`]);
  const agent = new Agent({ ...AGENT_DEFAULTS, servers: [{ host: '127.0.0.1', port: a.port }], envs: ['demo'], token: TOKEN, backoffMinMs: 20, backoffMaxMs: 50 }, store, {
    connected: (label) => connected.push(label),
  });
  try {
    agent.start();
    await waitFor('the agent on A', () => connected.length > 0);
    assert.deepEqual(connected, [aAddr]);
    assert.equal(b.accepted(), 0, 'the remembered server was not tried before the live configured one');
    // Added to what was remembered (newest first), not replacing it: a cluster that names fewer servers for a while
    // (while some drain) does not make the agent forget the others.
    await waitFor('the servers A announced are kept', () => store.rememberedServers().join() === [aAddr, `127.0.0.1:${c.port}`, `127.0.0.1:${b.port}`].join());
  } finally {
    await agent.stop();
    await store.close();
    await a.close();
    await b.close();
    await c.close();
  }
});

test('a server may not make the agent mix histories, store keys it cannot hold, or flood its log', async () => {
  const hello = encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'server', id: 'hostile' });
  const subscribes: Message[] = [];
  let step = 0;
  const server = await fakeServer((socket, m) => {
    if (m === 'connected') {
      socket.write(hello);
      return;
    }
    if (m.t !== MessageType.Subscribe) return;
    subscribes.push(m);
    step++;
    if (step === 1) {
      socket.write(encodeMessage({ t: MessageType.Snapshot, env: 'demo', rev: 4, chain: 'aaaaaaaaaaaaaaaa', entries: [['a', '1']] }));
      // A release that says nothing of what it follows, on a store holding a chain: not applied.
      socket.write(encodeMessage({ t: MessageType.Release, env: 'demo', rev: 5, prev: 4, time: 1, author: 'x', op: 'set', changes: [['evil', '1']] }));
    } else if (step === 2) {
      // A key no reader of the store could read back: the session ends, nothing of it is kept.
      socket.write(encodeMessage({ t: MessageType.Snapshot, env: 'demo', rev: 6, entries: [['k'.repeat(600), '1']] }));
    }
  });
  const forks: string[] = [];
  const reasons: string[] = [];
  const { agent, store } = newAgent(server.port, { forked: (_env, detail) => forks.push(detail), disconnected: (reason) => reasons.push(reason) });
  try {
    agent.start();
    await waitFor('the release without its chain refused as a fork', () => forks.length >= 1, 10_000);
    assert.match(forks[0], /follows chain \(none\) at revision 4, but this store holds chain aaaaaaaaaaaaaaaa/);
    await waitFor('the session with the unstorable key ended', () => reasons.some((r) => /a name or key the store cannot hold/.test(r)), 10_000);
    assert.equal(store.revision('demo'), 4);
    assert.equal(store.chain('demo'), 'aaaaaaaaaaaaaaaa');
  } finally {
    await agent.stop();
    await store.close();
    await server.close();
  }
  // What the agent prints of a server's words is one line, bounded, escapes shown, not acted on.
  const { oneLine } = await import('../../src/agent/main.js');
  const line = oneLine(`refused\u001b[2K\u001b[1A\r\nFORGED login ok ${'x'.repeat(100_000)}`);
  // eslint-disable-next-line no-control-regex -- what is checked is that no control character is left
  assert.ok(!/[\u0000-\u001f]/.test(line) && line.length < 2100, line.slice(0, 80));
  assert.match(line, /^refused\\u001b\[2K\\u001b\[1A\\r\\nFORGED/);
});

test('before the login, a server may send little: a huge hello is refused, and nothing more is read', async () => {
  const huge = encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'server', id: 'big', peers: Array.from({ length: 1000 }, (_, i) => `${'h'.repeat(900)}${i}:1`) });
  const server = await fakeServer((socket, m) => {
    if (m === 'connected') socket.write(huge);
  });
  const reasons: string[] = [];
  const { agent, store } = newAgent(server.port, { disconnected: (reason) => reasons.push(reason) });
  try {
    agent.start();
    await waitFor('the connection refused', () => server.accepted() >= 2, 10_000);
    assert.equal(agent.connected, false);
  } finally {
    await agent.stop();
    await store.close();
    await server.close();
  }
});

test('an admin never answers a login challenge of fewer iterations than any server stores', async () => {
  const port = await freePort();
  let proofs = 0;
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.write(encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'server', id: 'harvester' }));
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const body of decoder.push(chunk)) {
        const m = decodeBody(body);
        if (m.t === MessageType.Hello) socket.write(encodeMessage({ t: MessageType.Challenge, nonce: `${m.nonce}srv`, salt: 'c2FsdHNhbHQ=', iterations: 1 }));
        if (m.t === MessageType.Proof) proofs++;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  try {
    const { connect } = await import('../../src/transport/client.js');
    await assert.rejects(connect({ host: '127.0.0.1', port, role: 'admin', login: { user: 'admin', secret: 'the password' }, timeoutMs: 5000, onMessage: () => undefined, onClose: () => undefined }), /not acceptable \(iterations 1\)/);
    assert.equal(proofs, 0, 'no proof was sent');
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
