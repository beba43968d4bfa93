/**
 * `vitefa admin --server A,B`: the list parsed, servers tried in order (one
 * closed or silent is passed over, a refused login is not, every one failing
 * is one line naming each), which failed requests are sent again, and a
 * stopping server naming where to go.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { AdminClient } from '../../src/admin/client.js';
import { mayRetry, notRetried } from '../../src/admin/outcome.js';
import { parseServers, ServerList, type ConnectTo } from '../../src/admin/servers.js';
import { LocalErrorCode, MessageType, RemoteError, VitefaError, WireError, type AdminRequest, type ErrorMessage, type Message } from '../../src/protocol/index.js';
import { shuttingDown } from '../../src/server/edge/session.js';
import { promised } from '../../src/promised.js';
import { endpointText, parseEndpoint, type Endpoint } from '../../src/transport/client.js';
import { ADMIN_PASSWORD, freePort, run } from '../support/procs.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';

const texts = (list: readonly Endpoint[]): string[] => list.map(endpointText);

describe('the server list', () => {
  test('--server takes one address or several, in order, each once', () => {
    assert.deepEqual(texts(parseServers('127.0.0.1:7400')), ['127.0.0.1:7400']);
    assert.deepEqual(texts(parseServers('b.example:7400, a.example:7401,b.example:7400')), ['b.example:7400', 'a.example:7401']);
    assert.deepEqual(texts(parseServers('[::1]:7400,127.0.0.1:7400')), ['[::1]:7400', '127.0.0.1:7400']);
    for (const bad of ['', 'a:1,', ',a:1', 'a:1,,b:2']) {
      assert.throws(() => parseServers(bad), (err: VitefaError) => err.code === LocalErrorCode.USAGE && /--server takes HOST:PORT/.test(err.message), bad);
    }
    assert.throws(() => parseServers('a:1,nohost'), (err: VitefaError) => err.code === LocalErrorCode.USAGE && /invalid address "nohost"/.test(err.message));
  });

  /** A connect that fails for the addresses in `failing` (with the error given) and records every address asked. */
  const fake = (failing: Record<string, unknown>, peers: string[] = []): { connectTo: ConnectTo; asked: string[] } => {
    const asked: string[] = [];
    return {
      asked,
      connectTo: (at) => promised(() => {
        const addr = endpointText(at);
        asked.push(addr);
        if (addr in failing) throw failing[addr];
        return { peers, addr } as unknown as AdminClient;
      }),
    };
  };
  const refused = (addr: string) => new VitefaError(LocalErrorCode.CONNECTION_CLOSED, `connection to ${addr} closed before the login completed: connect ECONNREFUSED ${addr}`);

  test('servers are tried in order: the first that takes the session is used, and the peers its hello names join the list', async () => {
    const list = new ServerList(parseServers('h:1,h:2,h:3'));
    const { connectTo, asked } = fake({ 'h:1': refused('h:1') }, ['h:3', 'h:4']);
    const { index } = await list.connect(connectTo);
    assert.equal(index, 1);
    assert.deepEqual(asked, ['h:1', 'h:2']);
    assert.deepEqual(texts(list.endpoints), ['h:1', 'h:2', 'h:3', 'h:4'], 'the new peer after the given ones, the known one once');
  });

  test('from a given server on, round to the ones before it: the one that failed is asked last', async () => {
    const list = new ServerList(parseServers('h:1,h:2,h:3'));
    const { connectTo, asked } = fake({ 'h:3': refused('h:3') });
    const { index } = await list.connect(connectTo, 2);
    assert.equal(index, 0);
    assert.deepEqual(asked, ['h:3', 'h:1']);
  });

  test('a stopping, full or silent server is passed over; a refused login ends the search', async () => {
    const passedOver = {
      'h:1': new RemoteError(WireError.SHUTTING_DOWN, 'server is shutting down; connect to h:3'),
      'h:2': new VitefaError(LocalErrorCode.CONNECT_TIMEOUT, 'no hello from h:2 within 500 ms'),
    };
    const list = new ServerList(parseServers('h:1,h:2,h:3'));
    assert.equal((await list.connect(fake(passedOver).connectTo)).index, 2);
    const { connectTo, asked } = fake({ 'h:1': new RemoteError(WireError.AUTH_FAILED, 'authentication failed') });
    await assert.rejects(new ServerList(parseServers('h:1,h:2')).connect(connectTo), (err: RemoteError) => err.status === WireError.AUTH_FAILED);
    assert.deepEqual(asked, ['h:1'], 'the second server is not asked with the same credentials');
  });

  test('every server failing: one error naming each address tried and why; one server: its own error', async () => {
    const list = new ServerList(parseServers('h:1,h:2'));
    const failing = { 'h:1': refused('h:1'), 'h:2': new RemoteError(WireError.SHUTTING_DOWN, 'server is shutting down; connect to h:1') };
    await assert.rejects(list.connect(fake(failing).connectTo), (err: VitefaError) => {
      assert.equal(err.code, LocalErrorCode.CONNECTION_CLOSED);
      assert.equal(err.message, 'no server took the connection (tried h:1, h:2): connection to h:1 closed before the login completed: connect ECONNREFUSED h:1; h:2: server is shutting down; connect to h:1');
      return true;
    });
    const one = refused('h:1');
    await assert.rejects(new ServerList(parseServers('h:1')).connect(fake({ 'h:1': one }).connectTo), (err) => err === one);
  });

  test('sent again elsewhere: anything a stopping server refused; after a lost connection, reads and writes with a request id only', () => {
    const set: AdminRequest = { op: 'set', env: 'e', key: 'k', value: '1' };
    const userAdd: AdminRequest = { op: 'user.add', name: 'u', role: 'viewer', envs: [], verifier: { salt: '', iterations: 1, storedKey: '', serverKey: '' } };
    const get: AdminRequest = { op: 'get', env: 'e', key: 'k' };
    const stopping = new RemoteError(WireError.SHUTTING_DOWN, 'server is shutting down; send it to h:2');
    const cut = new VitefaError(LocalErrorCode.CONNECTION_CLOSED, 'connection closed before set was answered: socket hang up');
    assert.equal(mayRetry(set, 'rid-1', stopping), true);
    assert.equal(mayRetry(userAdd, undefined, stopping), true, 'refused, so not run: safe to send again');
    assert.equal(mayRetry(set, 'rid-1', cut), true);
    assert.equal(mayRetry(get, undefined, cut), true);
    assert.equal(mayRetry(userAdd, undefined, cut), false, 'may have run, and has no request id');
    assert.equal(mayRetry(set, 'rid-1', new RemoteError(WireError.BAD_REQUEST, 'bad')), false);
    assert.equal(mayRetry(set, 'rid-1', new VitefaError(LocalErrorCode.REQUEST_TIMEOUT, 'no answer')), false);
    const none = notRetried(stopping, new VitefaError(LocalErrorCode.CONNECTION_CLOSED, 'no server took the connection (tried h:2, h:1): …'));
    assert.equal(none.code, LocalErrorCode.CONNECTION_CLOSED);
    assert.equal(none.message, 'server is shutting down; send it to h:2; sent again: no server took the connection (tried h:2, h:1): …');
  });

  test('a stopping server names where to go, or says it knows nowhere', () => {
    assert.equal(shuttingDown(['127.0.0.1:7410'], 'request'), 'server is shutting down; send it to 127.0.0.1:7410');
    assert.equal(shuttingDown(['127.0.0.1:7410', '127.0.0.1:7420'], 'session'), 'server is shutting down; connect to 127.0.0.1:7410 or 127.0.0.1:7420');
    assert.equal(shuttingDown([], 'request'), 'server is shutting down, and it knows no other server to send it to; try again once it is back');
    assert.equal(shuttingDown([], 'session'), 'server is shutting down, and it knows no other server; try again once it is back');
  });
});

describe('against real sockets', () => {
  let server: MemoryServer;
  let live = '';
  let closed = '';
  let closedToo = '';
  let silent: net.Server;
  let quiet = '';
  const silentSockets = new Set<net.Socket>();

  before(async () => {
    server = await memoryServer();
    live = server.server.address;
    // Ports taken for this test and left closed: connecting to them is refused.
    closed = `127.0.0.1:${await freePort()}`;
    closedToo = `127.0.0.1:${await freePort()}`;
    // A server that accepts and never says hello (an overflowing accept queue looks the same).
    silent = net.createServer((socket) => {
      silentSockets.add(socket);
      socket.on('close', () => silentSockets.delete(socket));
    });
    const port = await freePort();
    await new Promise<void>((resolve) => silent.listen(port, '127.0.0.1', resolve));
    quiet = `127.0.0.1:${port}`;
  });
  after(async () => {
    for (const socket of silentSockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
    await server.close();
  });

  const connectTo = (connectTimeoutMs: number): ConnectTo => (at) =>
    AdminClient.connect({ ...at, login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs, requestTimeoutMs: 10_000 });

  test('a closed address, then one that never says hello, then a server: the server is used', async () => {
    const list = new ServerList([closed, quiet, live].map(parseEndpoint));
    const { client, index } = await list.connect(connectTo(1_000));
    try {
      assert.equal(index, 2);
      assert.ok(Array.isArray((await client.request({ op: 'env.list' })).envs));
    } finally {
      client.close();
    }
  });

  test('vitefa admin with the first server closed uses the second (--server and VITEFA_SERVER); with all closed, exit 1 and one line naming each', async () => {
    const flag = await run(['admin', '--server', `${closed},${live}`, 'env', 'list']);
    assert.equal(flag.code, 0, flag.stderr);
    const variable = await run(['admin', 'env', 'list'], { env: { VITEFA_SERVER: `${closed},${live}` } });
    assert.equal(variable.code, 0, variable.stderr);
    const none = await run(['admin', '--server', `${closed},${closedToo}`, 'set', 'nowhere', 'k', '1']);
    assert.equal(none.code, 1, none.stderr);
    assert.equal(none.stderr.trim().split('\n').length, 1, none.stderr);
    assert.match(none.stderr, new RegExp(`^vitefa: no server took the connection \\(tried ${closed}, ${closedToo}\\): .*${closed}.*ECONNREFUSED.*; .*${closedToo}.*ECONNREFUSED`));
    const bad = await run(['admin', '--server', `${live},`, 'env', 'list']);
    assert.equal(bad.code, 2, bad.stderr);
  });

  test('a stopping server with no peer says it knows no other server', async () => {
    const own = await memoryServer();
    const client = await AdminClient.connect({ ...parseEndpoint(own.server.address), login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 10_000 });
    try {
      await own.server.stop('graceful');
      assert.equal(await client.closed, 'server ended the session: server is shutting down, and it knows no other server; try again once it is back');
    } finally {
      client.close();
      await own.close();
    }
  });

  test('a stopping server names the servers of its cluster that are not draining, and not itself', async () => {
    const own = await memoryServer();
    const self = own.server.address;
    own.server.host.setPeers([
      { addr: self, agents: 0, state: 'alive' },
      { addr: '127.0.0.1:7410', agents: 3, state: 'alive' },
      { addr: '127.0.0.1:7420', agents: 0, state: 'draining' },
      { addr: '127.0.0.1:7430', agents: 1, state: 'suspect' },
    ]);
    const client = await AdminClient.connect({ ...parseEndpoint(self), login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 10_000 });
    try {
      assert.deepEqual(client.peers, [self, '127.0.0.1:7410', '127.0.0.1:7420', '127.0.0.1:7430'], 'the hello lists them all');
      const stopping = own.server.stop('graceful');
      // A connection arriving while it stops is turned away with the same names.
      const late = own.connect();
      const refusal = await late.next((m: Message): m is ErrorMessage => m.t === MessageType.Error);
      assert.equal(refusal.msg, 'server is shutting down; connect to 127.0.0.1:7410 or 127.0.0.1:7430');
      assert.equal(await client.closed, 'server ended the session: server is shutting down; connect to 127.0.0.1:7410 or 127.0.0.1:7430');
      await stopping;
    } finally {
      client.close();
      await own.close();
    }
  });
});
