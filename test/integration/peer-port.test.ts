/**
 * The peer port of a real server (MySQL): whatever arrives there before a
 * peer has proven it holds the cluster's secret is refused with one error
 * and costs nothing; a wrong secret is audited; the right one is served;
 * and the embedded store refuses --peers in one line.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMessage, MessageType, WireError, type Message, type StoreCheck } from '../../src/protocol/index.js';
import { proofMac } from '../../src/server/store/identity.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { ScramClient } from '../support/login.js';
import { databaseName, dropDatabase, MYSQL_BASE, query } from '../support/mysql.js';
import { RawClient } from '../support/raw-agents.js';
import { freePort, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';

describe('the peer port', () => {
  const procs = new Procs();
  const db = databaseName();
  let peer: { host: string; port: number };
  let address: string;

  before(async () => {
    const peerAddr = `127.0.0.1:${await freePort()}`;
    const started = await startServer(`${MYSQL_BASE}/${db}`, ['--workers', '0', '--peer-listen', peerAddr, '--poll-ms', '60000']);
    procs.track(started.proc);
    address = started.address;
    peer = parseEndpoint(peerAddr);
  });
  after(async () => {
    await procs.killAll();
    await dropDatabase(db);
  });

  async function serverStillServes(): Promise<void> {
    const listed = await run(['admin', '--server', address, 'env', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
  }

  const lastError = async (client: RawClient): Promise<number> => {
    await client.closedAt;
    const errors = client.errors;
    return errors.length === 1 ? errors[0].code : -1;
  };

  test('garbage, lying frame headers and messages before the login: one error each, then close', async () => {
    const cases: Buffer[] = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0]),
      encodeMessage({ t: MessageType.Gossip, members: [], envs: [] }),
      encodeMessage({ t: MessageType.Release, env: 'e', rev: 1, prev: 0, time: 0, author: 'x', op: 'set', changes: [] }),
      encodeMessage({ t: MessageType.Request, id: 1, req: { op: 'status.local' } }),
    ];
    for (const bytes of cases) {
      const client = new RawClient(peer);
      assert.equal(await client.greeted(), true);
      client.write(bytes);
      const code = await lastError(client);
      assert.ok([WireError.MALFORMED, WireError.FRAME_TOO_LARGE, WireError.UNEXPECTED_MESSAGE].includes(code as never), `got ${code} for ${bytes.subarray(0, 8).toString('hex')}`);
    }
    await serverStillServes();
  });

  test('an agent or an admin is not served on the peer port', async () => {
    for (const role of ['agent', 'admin'] as const) {
      const client = new RawClient(peer);
      await client.greeted();
      client.login(new ScramClient(role, 'admin', 'x'));
      assert.equal(await lastError(client), WireError.UNEXPECTED_MESSAGE);
    }
  });

  test('a peer without the cluster secret is refused with AUTH_FAILED, and audited', async () => {
    const client = new RawClient(peer);
    await client.greeted();
    client.login(new ScramClient('peer', 'cluster', 'not-the-secret'), 'impostor');
    assert.equal(await lastError(client), WireError.AUTH_FAILED);
    await waitFor('the failed peer login in the audit', async () => {
      const rows = await query<{ result: Buffer; actor: Buffer }>(db, "SELECT result, actor FROM vitefa_audit WHERE action = 'peer-login'");
      return rows.some((r) => String(r.result) === 'failed' && String(r.actor) === 'cluster');
    }, 5_000, 100);
    await serverStillServes();
  });

  test('with the secret from the store, a peer is welcomed, gossips, and its status query is answered', async () => {
    const [secret] = await query<{ value: Buffer }>(db, "SELECT value FROM vitefa_secrets WHERE name = 'peer-key'");
    const client = new RawClient(peer);
    await client.greeted();
    client.login(new ScramClient('peer', 'cluster', Buffer.from(secret.value).toString('base64')), 'test-peer');
    // Before the Welcome: prove this side reads the same database, by the row the server has just written there.
    const check = await storeCheck(client);
    assert.equal(client.loggedIn, false, 'no Welcome before the store proof');
    const [row] = await query<{ secret: Buffer }>(db, 'SELECT secret FROM vitefa_proofs WHERE k = ?', [check.key]);
    client.send({ t: MessageType.StoreProof, mac: proofMac(Buffer.from(row.secret), check.key) });
    await waitFor('welcomed', () => client.loggedIn);
    const gossip: Message = {
      t: MessageType.Gossip,
      members: [{ id: 'test-peer', gen: 1, ver: 1, addrs: ['127.0.0.1:1'], peer: '127.0.0.1:2', state: 'alive', agents: 0, head: 0 }],
      envs: [],
    };
    client.send(gossip, { t: MessageType.Request, id: 7, req: { op: 'status.local' } });
    await waitFor('the status answer', () => client.received.some((m) => m.t === MessageType.Response && m.id === 7));
    // Only status.local is asked on the peer port.
    client.send({ t: MessageType.Request, id: 8, req: { op: 'env.add', env: 'sneaky' } });
    assert.equal(await lastError(client), WireError.UNEXPECTED_MESSAGE);
    const listed = await run(['admin', '--server', address, 'env', 'list']);
    assert.doesNotMatch(listed.stdout, /sneaky/);
  });

  test('a peer with the key but without the store (a copy of the database) is refused with STORE_MISMATCH, and never welcomed', async () => {
    const [secret] = await query<{ value: Buffer }>(db, "SELECT value FROM vitefa_secrets WHERE name = 'peer-key'");
    for (const mac of ['', proofMac(Buffer.alloc(32), 'guess'), 'x'.repeat(300)]) {
      const client = new RawClient(peer);
      await client.greeted();
      client.login(new ScramClient('peer', 'cluster', Buffer.from(secret.value).toString('base64')), 'copy-peer');
      await storeCheck(client);
      client.send({ t: MessageType.StoreProof, mac });
      assert.equal(await lastError(client), WireError.STORE_MISMATCH);
      assert.equal(client.loggedIn, false);
    }
    // A gossip instead of the proof is not taken either.
    const client = new RawClient(peer);
    await client.greeted();
    client.login(new ScramClient('peer', 'cluster', Buffer.from(secret.value).toString('base64')), 'copy-peer');
    await storeCheck(client);
    client.send({ t: MessageType.Gossip, members: [], envs: [] });
    assert.equal(await lastError(client), WireError.UNEXPECTED_MESSAGE);
    await serverStillServes();
  });

  test('many connections that never log in are bounded and closed', async () => {
    const silent = Array.from({ length: 300 }, () => new RawClient(peer));
    await waitFor('the ones beyond 256 refused', () => silent.filter((c) => c.closed).length >= 44, 10_000);
    for (const c of silent) c.close();
    await serverStillServes();
  });

  test('a peer with the key logs in while one address holds 300 idle sockets', async () => {
    const [secret] = await query<{ value: Buffer }>(db, "SELECT value FROM vitefa_secrets WHERE name = 'peer-key'");
    const idle = Array.from({ length: 300 }, () => new RawClient(peer, '127.0.0.2'));
    try {
      await waitFor('each idle socket taken or refused', () => idle.every((c) => c.closed || c.received.some((m) => m.t === MessageType.Hello)), 10_000);
      const client = new RawClient(peer);
      assert.equal(await client.greeted(), true, 'the peer gets the hello');
      client.login(new ScramClient('peer', 'cluster', Buffer.from(secret.value).toString('base64')), 'test-peer-2');
      const check = await storeCheck(client);
      const [row] = await query<{ secret: Buffer }>(db, 'SELECT secret FROM vitefa_proofs WHERE k = ?', [check.key]);
      client.send({ t: MessageType.StoreProof, mac: proofMac(Buffer.from(row.secret), check.key) });
      await waitFor('welcomed', () => client.loggedIn);
      client.close();
      const held = idle.filter((c) => !c.closed).length;
      assert.ok(held <= 16, `${held} idle sockets from one address held (peerPendingPerAddress)`);
    } finally {
      for (const c of idle) c.close();
    }
  });
});

test('the embedded store refuses --peers in one line', async () => {
  const dir = tempDir('vitefa-peers-lmdb-');
  const refused = await run(['server', '--store', dir, '--peers', '127.0.0.1:7401']);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /^vitefa: --peers needs a store the servers share: the embedded store .* serves one server; give --store mysql:\/\/…\n$/);
});

/** The server's StoreCheck, which comes after a valid login proof. */
async function storeCheck(client: RawClient): Promise<StoreCheck> {
  await waitFor('the store check', () => client.received.some((m) => m.t === MessageType.StoreCheck));
  return client.received.find((m): m is StoreCheck => m.t === MessageType.StoreCheck)!;
}
