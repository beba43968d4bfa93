/**
 * TLS on every link, real processes, certificates made by openssl in the
 * set-up: agent and admin over TLS, a plaintext client against a TLS port
 * and the other way round, a certificate from another authority, client
 * certificates (mutual TLS), and a reload on SIGHUP that keeps the
 * connected agents and the session-ticket keys.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { ConfigReader } from '../../src/reader/index.js';
import { databaseName, dropDatabase, MYSQL_BASE } from '../support/mysql.js';
import { Proc, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';

const procs = new Procs();
const dir = tempDir('vitefa-tls-');
const f = (name: string): string => path.join(dir, name);
const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A P-256 key and a certificate for `cn` signed by `ca` (or self-signed), with 127.0.0.1 as its address. */
function certificate(name: string, cn: string, ca?: string, clientAuth = false): void {
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
  if (ca === undefined) {
    openssl('req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
    return;
  }
  openssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  fs.writeFileSync(f(`${name}.ext`), clientAuth ? 'extendedKeyUsage=clientAuth\n' : 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
}

before(() => {
  certificate('ca', 'vitefa test CA');
  certificate('server', '127.0.0.1', 'ca');
  certificate('server2', '127.0.0.1', 'ca');
  certificate('client', 'test agent', 'ca', true);
  certificate('rogue', 'another CA');
});

after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

const withCa = { VITEFA_TLS_CA: f('ca.crt') };

/** A TLS session from the server on `port`, to resume later. */
function tlsSession(port: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(f('ca.crt')) });
    s.once('session', (sess: Buffer) => {
      resolve(sess);
      s.destroy();
    });
    s.on('error', reject);
  });
}

function resumes(port: number, session: Buffer): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(f('ca.crt')), session }, () => {
      resolve(s.isSessionReused());
      s.destroy();
    });
    s.on('error', reject);
  });
}

let closings = 0;

/** Once the server has closed a raw TCP connection that sent `bytes` (or nothing): its local port, and how many such connections closed before it. */
function closedBy(port: number, bytes?: Buffer): Promise<{ local: number; before: number }> {
  return new Promise((resolve, reject) => {
    let local = 0;
    const s = net.connect(port, '127.0.0.1', () => {
      local = s.localPort ?? 0;
      if (bytes !== undefined) s.write(bytes);
    });
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => resolve({ local, before: closings++ }));
    setTimeout(() => {
      s.destroy();
      reject(new Error('the server kept a connection that never finished its handshake'));
    }, 60_000).unref();
  });
}

function peerSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(f('ca.crt')) }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.on('error', reject);
  });
}

describe('a TLS server', () => {
  let server: Proc;
  let address: string;
  let port: number;
  let agent: Proc;
  const store = f('agent-store');

  before(async () => {
    fs.copyFileSync(f('server.crt'), f('live.crt'));
    fs.copyFileSync(f('server.key'), f('live.key'));
    ({ proc: server, address } = await startServer(f('server-data'), ['--tls-cert', f('live.crt'), '--tls-key', f('live.key')]));
    procs.track(server);
    port = Number(address.split(':')[1]);
    assert.match(server.stdout, /listening on 127\.0\.0\.1:\d+ \(TLS\)/);
  });

  test('serves admins and agents that verify its certificate', async () => {
    const made = await run(['admin', '--server', address, 'env', 'add', 'secure'], { env: withCa });
    assert.equal(made.code, 0, made.stderr);
    const token = (await run(['admin', '--server', address, 'token', 'add', 'tls-agent', 'secure'], { env: withCa })).stdout.split('\n').find((l) => l.startsWith('vta_'))!;
    agent = procs.track(new Proc(['agent', '--servers', address, '--store', store, '--tls-ca', f('ca.crt')], { env: { VITEFA_AGENT_TOKEN: token } }));
    await agent.waitForOutput(/agent connected/);
    assert.equal((await run(['admin', '--server', address, 'set', 'secure', 'k', '"over tls"'], { env: withCa })).code, 0);
    await waitFor('the release in the agent store', async () => {
      if (!fs.existsSync(path.join(store, 'data.mdb'))) return false;
      const reader = ConfigReader.open(store);
      try {
        return reader.get('secure', 'k') === 'over tls';
      } finally {
        await reader.close();
      }
    });
  });

  test('a plaintext client gets one clear line, with the hint', async () => {
    const plain = await run(['admin', '--server', address, 'env', 'list'], { env: { VITEFA_CONNECT_TIMEOUT_MS: '1500' } });
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /^vitefa: no hello from 127\.0\.0\.1:\d+ within 1500 ms \(if the server speaks TLS, give its certificate authority: --tls-ca\)\n$/);
  });

  test('a certificate from another authority is refused', async () => {
    const rogue = await run(['admin', '--server', address, 'env', 'list'], { env: { VITEFA_TLS_CA: f('rogue.crt') } });
    assert.equal(rogue.code, 1);
    assert.match(rogue.stderr, /^vitefa: connection to 127\.0\.0\.1:\d+ closed before the login completed: .*(certificate|issuer)/);
    assert.equal(rogue.stderr.trim().split('\n').length, 1);
  });

  test('SIGHUP reloads the certificate: connected agents stay, new connections get the new one, sessions resume', async () => {
    const session = await tlsSession(port);
    const before = await peerSerial(port);
    fs.copyFileSync(f('server2.crt'), f('live.crt'));
    fs.copyFileSync(f('server2.key'), f('live.key'));
    const disconnects = agent.stdout.split('agent disconnected').length;
    server.child.kill('SIGHUP');
    await server.waitForOutput(/SIGHUP: certificate .* reloaded/);
    await waitFor('the new certificate served', async () => (await peerSerial(port)) !== before);
    assert.equal(await resumes(port, session), true, 'the ticket keys survived the reload');
    assert.equal((await run(['admin', '--server', address, 'set', 'secure', 'k', '"after reload"'], { env: withCa })).code, 0);
    await waitFor('the agent got the release on its old connection', async () => {
      const reader = ConfigReader.open(store);
      try {
        return reader.get('secure', 'k') === 'after reload';
      } finally {
        await reader.close();
      }
    });
    assert.equal(agent.stdout.split('agent disconnected').length, disconnects, 'the agent was not disconnected');
  });
});

describe('hostile bytes on a TLS port', () => {
  test('garbage is closed at once, silence by the handshake limit, and the server serves on', async () => {
    const { proc, address } = await startServer(f('hostile-data'), ['--tls-cert', f('server.crt'), '--tls-key', f('server.key')]);
    procs.track(proc);
    const port = Number(address.split(':')[1]);
    const [garbage, silent] = await Promise.all([closedBy(port, Buffer.from('GET / HTTP/1.1\r\n\r\n')), closedBy(port)]);
    // The garbage is refused as it arrives, before the silent connection's handshake limit ends that one: each for its reason.
    assert.ok(garbage.before < silent.before, 'the garbage was closed first');
    const reason = async (local: number): Promise<string> => (await proc.waitForOutput(new RegExp(`closed 127\\.0\\.0\\.1:${local}: MALFORMED: TLS handshake failed: (\\S+)`)))[1];
    assert.notEqual(await reason(garbage.local), 'ERR_TLS_HANDSHAKE_TIMEOUT');
    assert.equal(await reason(silent.local), 'ERR_TLS_HANDSHAKE_TIMEOUT');
    const listed = await run(['admin', '--server', address, 'env', 'list'], { env: withCa });
    assert.equal(listed.code, 0, listed.stderr);
  });
});

describe('two TLS servers of one MySQL store', () => {
  const db = databaseName();
  after(() => dropDatabase(db));

  test('share their ticket keys: a session from one resumes on the other', async () => {
    const url = `${MYSQL_BASE}/${db}`;
    const tlsArgs = ['--tls-cert', f('server.crt'), '--tls-key', f('server.key')];
    const a = await startServer(url, tlsArgs);
    procs.track(a.proc);
    const b = await startServer(url, tlsArgs);
    procs.track(b.proc);
    const session = await tlsSession(Number(a.address.split(':')[1]));
    assert.equal(await resumes(Number(b.address.split(':')[1]), session), true);
    // A server of another store has its own keys: no resumption there.
    const other = await startServer(f('other-data'), tlsArgs);
    procs.track(other.proc);
    assert.equal(await resumes(Number(other.address.split(':')[1]), session), false);
  });
});

describe('peer links over TLS', () => {
  const db = databaseName();
  after(() => dropDatabase(db));

  test('two TLS servers of one store gossip over TLS: a write through A reaches the agent of B by gossip (the poll is an hour)', async () => {
    const url = `${MYSQL_BASE}/${db}`;
    const tlsArgs = ['--tls-cert', f('server.crt'), '--tls-key', f('server.key'), '--workers', '0', '--poll-ms', '3600000'];
    const a = await startServer(url, tlsArgs);
    procs.track(a.proc);
    const b = await startServer(url, tlsArgs);
    procs.track(b.proc);
    assert.match(b.proc.output, /1 of 1 registered servers answered/);
    assert.equal((await run(['admin', '--server', a.address, 'env', 'add', 'peered'], { env: withCa })).code, 0);
    const token = (await run(['admin', '--server', a.address, 'token', 'add', 'peered-agent', 'peered'], { env: withCa })).stdout.split('\n').find((l) => l.startsWith('vta_'))!;
    // The token reaches B with the credentials' stamp (within about a second): until then B refuses it, and the agent tries again.
    const store = f('peered-agent');
    const agent = procs.track(new Proc(['agent', '--servers', b.address, '--store', store, '--tls-ca', f('ca.crt'), '--env', 'peered'], { env: { VITEFA_AGENT_TOKEN: token } }));
    await agent.waitForOutput(/agent connected/, 60_000);
    assert.equal((await run(['admin', '--server', a.address, 'set', 'peered', 'k', '"across"'], { env: withCa })).code, 0);
    await waitFor('the release through A on the agent of B', () => {
      if (!fs.existsSync(path.join(store, 'data.mdb'))) return false;
      const reader = ConfigReader.open(store);
      try {
        return reader.get('peered', 'k') === 'across';
      } finally {
        void reader.close();
      }
    }, 5_000);
    // The peer port speaks TLS only: a plaintext connection gets no hello.
    const peerPort = Number(/--peer-listen 127\.0\.0\.1:(\d+)/.exec(a.proc.child.spawnargs.join(' '))![1]);
    const raw = net.connect(peerPort, '127.0.0.1');
    raw.write('plaintext hello\n');
    await new Promise((r) => raw.once('close', r));
  });
});

describe('a plaintext server and mutual TLS', () => {
  test('a TLS client against a plaintext port is told so in one line', async () => {
    const { proc, address } = await startServer(f('plain-data'));
    procs.track(proc);
    const wrong = await run(['admin', '--server', address, 'env', 'list'], { env: withCa });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^vitefa: 127\.0\.0\.1:\d+ does not speak TLS \(connect without --tls-ca\)/);
    assert.equal(wrong.stderr.trim().split('\n').length, 1);
  });

  test('with --tls-client-ca, only clients with a certificate of that authority get in', async () => {
    const { proc, address } = await startServer(f('mtls-data'), ['--tls-cert', f('server.crt'), '--tls-key', f('server.key'), '--tls-client-ca', f('ca.crt')]);
    procs.track(proc);
    const without = await run(['admin', '--server', address, 'env', 'list'], { env: withCa });
    assert.equal(without.code, 1, without.stdout);
    assert.equal(without.stderr.trim().split('\n').length, 1);
    const withCert = await run(['admin', '--server', address, '--tls-cert', f('client.crt'), '--tls-key', f('client.key'), 'env', 'list'], { env: withCa });
    assert.equal(withCert.code, 0, withCert.stderr);
    const token = await agentTokenOver(address);
    const agent = procs.track(new Proc(['agent', '--servers', address, '--store', f('mtls-agent'), '--tls-ca', f('ca.crt'), '--tls-cert', f('client.crt'), '--tls-key', f('client.key')], { env: { VITEFA_AGENT_TOKEN: token } }));
    await agent.waitForOutput(/agent connected/);
  });

  test('a server refuses TLS files that do not belong together, in one line', async () => {
    const bad = await run(['server', '--listen', '127.0.0.1:1', '--store', f('bad-data'), '--workers', '0', '--tls-cert', f('server.crt'), '--tls-key', f('client.key')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^vitefa: TLS files .* cannot be used: .*key/i);
    const half = await run(['server', '--store', f('bad-data'), '--tls-cert', f('server.crt')]);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /TLS needs both a certificate and its key/);
  });
});

async function agentTokenOver(address: string): Promise<string> {
  const made = await run(['admin', '--server', address, '--tls-cert', f('client.crt'), '--tls-key', f('client.key'), 'token', 'add', 'mtls-agent', '*'], { env: withCa });
  assert.equal(made.code, 0, made.stderr);
  return made.stdout.split('\n').find((l) => l.startsWith('vta_'))!;
}
