/**
 * A failed TLS handshake is logged with its client's address, also when the
 * client hung up before the handshake ended (Node's tlsClientError then has
 * a TLS socket whose address is gone): TlsHandshakes on a bare TLS server,
 * then the client port and the peer port of a real server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { TlsHandshakes } from '../../src/server/edge/tls-handshakes.js';
import { databaseName, dropDatabase, MYSQL_BASE } from '../support/mysql.js';
import { freePort, Procs, startServer, tempDir, waitFor } from '../support/procs.js';

const procs = new Procs();
const dir = tempDir('vitefa-tls-names-');
const f = (name: string): string => path.join(dir, name);

before(() => {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key');
  openssl('req', '-x509', '-new', '-key', 'server.key', '-out', 'server.crt', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1');
});

after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A plain TCP client of `port` that sends `bytes` (if any) and hangs up,
 * without waiting for an answer; resolves to its own address once closed.
 */
function hangUp(port: number, bytes?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let addr: string | undefined;
    const s = net.connect(port, '127.0.0.1', () => {
      addr = `127.0.0.1:${s.localPort}`;
      if (bytes === undefined) s.destroy();
      else s.end(bytes);
    });
    s.on('error', () => undefined);
    s.once('close', () => (addr === undefined ? reject(new Error(`no connection to ${port}`)) : resolve(addr)));
  });
}

/** A plain TCP client that waits until the server closes the connection; resolves to its own address. */
function sendAndWait(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let addr = '';
    const s = net.connect(port, '127.0.0.1', () => {
      addr = `127.0.0.1:${s.localPort}`;
      s.write(bytes);
    });
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.once('close', () => resolve(addr));
  });
}

describe('TlsHandshakes on a TLS server', () => {
  const reported: string[] = [];
  let server: tls.Server;
  let port: number;
  let refuseNext = false;

  before(async () => {
    server = tls.createServer({ cert: fs.readFileSync(f('server.crt')), key: fs.readFileSync(f('server.key')) }, (socket) => {
      socket.end();
    });
    // The server's own admission: a connection it refuses is destroyed here, and logged by the server, not again.
    server.on('connection', (raw: net.Socket) => {
      if (!refuseNext) return;
      refuseNext = false;
      reported.push('refused by the server');
      raw.destroy();
    });
    const handshakes = new TlsHandshakes(server, (addr, reason) => reported.push(`${addr}: ${reason}`));
    server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      handshakes.failed(err, socket);
      socket.destroy();
    });
    port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('a client that hangs up during the handshake is named, once', async () => {
    const addr = await hangUp(port);
    await waitFor('the report', () => reported.some((l) => l.startsWith(`${addr}: `)));
    // A connection after it, reported after it: the first was not reported twice meanwhile.
    const next = await sendAndWait(port, 'GET / HTTP/1.1\r\n\r\n');
    await waitFor('the next report', () => reported.some((l) => l.startsWith(`${next}: `)));
    assert.deepEqual(reported.filter((l) => l.startsWith(`${addr}: `)), [`${addr}: the connection closed before the handshake completed`]);
    assert.deepEqual(reported.filter((l) => l.startsWith(`${next}: `)), [`${next}: ERR_SSL_HTTP_REQUEST`]);
    assert.equal(reported.filter((l) => l.includes('undefined')).length, 0, reported.join('\n'));
  });

  test('a client that sends a partial hello and hangs up is named', async () => {
    const addr = await hangUp(port, '\x16\x03\x01\x00\xc8\x01');
    await waitFor('the report', () => reported.some((l) => l.startsWith(`${addr}: `)));
  });

  test('a completed handshake is not reported, nor a connection the server itself refused', async () => {
    const before = reported.length;
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(f('server.crt')) }, () => s.end());
      s.on('data', () => undefined);
      s.once('close', () => resolve());
      s.once('error', reject);
    });
    refuseNext = true;
    await hangUp(port);
    await waitFor('both connections closed on the server', () => new Promise<boolean>((resolve) => server.getConnections((_, n) => resolve(n === 0))));
    // Reported after both: had either been reported, it would come before this one.
    const last = await hangUp(port);
    await waitFor('the last report', () => reported.some((l) => l.startsWith(`${last}: `)));
    assert.deepEqual(reported.slice(before), ['refused by the server', `${last}: the connection closed before the handshake completed`]);
  });
});

describe('a TLS server of a MySQL store', () => {
  const db = databaseName();
  after(() => dropDatabase(db));

  test('names a client that hangs up during the handshake, on its client port and on its peer port', async () => {
    const peer = `127.0.0.1:${await freePort()}`;
    const { proc, address } = await startServer(`${MYSQL_BASE}/${db}`, ['--tls-cert', f('server.crt'), '--tls-key', f('server.key'), '--peer-listen', peer]);
    procs.track(proc);
    const client = await hangUp(Number(address.split(':')[1]));
    const escape = (s: string): string => s.replace(/\./g, '\\.');
    await proc.waitForOutput(new RegExp(`closed ${escape(client)}: MALFORMED: TLS handshake failed: the connection closed before the handshake completed`));
    const fromPeerPort = await hangUp(Number(peer.split(':')[1]));
    await proc.waitForOutput(new RegExp(`peer port: closed ${escape(fromPeerPort)}: MALFORMED: TLS handshake failed: the connection closed before the handshake completed`));
    assert.doesNotMatch(proc.output, /undefined:undefined/);
  });
});
