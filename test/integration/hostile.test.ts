/**
 * A real cluster server (its default worker count) under attack on its port
 * while a thousand legitimate agents follow an environment and an admin keeps
 * writing: random bytes, truncated frames, a declared length of 4 GB, deep
 * nesting, every message type in the wrong phase, wrong tokens, a thousand
 * connections that never say hello, and the element bomb. No worker may
 * exit, every agent must get every release in order, the admin must be
 * answered throughout (its requests go on completing while the attack
 * runs), and the silent connections must be closed, told they timed out.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AdminClient } from '../../src/admin/client.js';
import { encodeMessage, frame, MessageType, PROTOCOL_VERSION, WireError, type Message } from '../../src/protocol/index.js';
import { makeVerifier } from '../../src/security/scram.js';
import { newToken, TOKEN_ITERATIONS } from '../../src/security/token.js';
import { ScramClient } from '../support/login.js';
import { ADMIN_PASSWORD, Proc, Procs, startServer, tempDir, waitFor } from '../support/procs.js';

async function tokenFor(admin: AdminClient, name: string, envs: string[]): Promise<string> {
  const t = newToken();
  await admin.request({ op: 'token.add', name, envs, id: t.id, verifier: makeVerifier(t.secret, TOKEN_ITERATIONS) });
  return t.text;
}
import { RawClient } from '../support/raw-agents.js';

const procs = new Procs();
const dir = tempDir('vitefa-hostile-');
const AGENTS = 1000;
const SILENT = 1000;
const HELLO_TIMEOUT_MS = 3000;
let server: Proc;
let target: { host: string; port: number };

before(async () => {
  const config = path.join(dir, 'server.json');
  fs.writeFileSync(config, JSON.stringify({ limits: { helloTimeoutMs: HELLO_TIMEOUT_MS } }));
  // No --workers and no --max-agents: the default cluster (workers for 100,000 agents).
  ({ proc: server } = await startServer(path.join(dir, 'store'), ['--config', config, '--max-agents', '100000'], {}, 60_000));
  procs.track(server);
  const [, port] = /listening on 127\.0\.0\.1:(\d+)/.exec(server.stdout)!;
  target = { host: '127.0.0.1', port: Number(port) };
});

after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

const hello = (role: 'agent' | 'admin', extra: Partial<Message> = {}): Message =>
  ({ t: MessageType.Hello, v: PROTOCOL_VERSION, role, id: 'attacker', user: 'admin', nonce: 'bm9uY2Utbm9uY2Utbm9uY2U=', ...extra }) as Message;

/** One attack: what a connection sends once it has the server's hello — after logging in first, for some. */
interface Attack {
  login?: 'admin' | ScramClient;
  bytes: Buffer;
}

/** Every attack (from 127.0.0.3). */
function attacks(agentToken: string): Attack[] {
  const out: Attack[] = [];
  const plain = (bytes: Buffer): void => void out.push({ bytes });
  const random = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7919 + n * 31) & 0xff));
  for (let i = 1; i <= 40; i++) plain(random(i * 13));
  for (let i = 1; i <= 40; i++) plain(frame(random(i * 17)));
  const valid = encodeMessage(hello('agent'));
  for (let i = 1; i < valid.length; i += 2) plain(valid.subarray(0, i));
  for (let i = 0; i < 20; i++) plain(Buffer.from([0xff, 0xff, 0xff, 0xff]));
  const deep = Buffer.concat([Buffer.alloc(200_000, 0x91), Buffer.from([0xc0])]);
  for (let i = 0; i < 10; i++) out.push({ login: 'admin', bytes: frame(deep) });
  for (let i = 0; i < 10; i++) plain(frame(deep.subarray(deep.length - 3000)));
  const samples: Message[] = [
    { t: MessageType.Subscribe, all: true, envs: [] },
    { t: MessageType.Snapshot, env: 'hostile', rev: 1, entries: [] },
    { t: MessageType.Release, env: 'hostile', rev: 99, prev: 98, time: 1, author: 'x', op: 'set', changes: [['k', '1']] },
    { t: MessageType.Ack, env: 'hostile', rev: 1 },
    { t: MessageType.Ping, n: 1 },
    { t: MessageType.Request, id: 1, req: { op: 'env.del', env: 'hostile' } },
    { t: MessageType.Response, id: 1, res: {} },
    { t: MessageType.Proof, proof: 'AAAA' },
  ];
  for (const m of samples) {
    plain(encodeMessage(m)); // before the hello
    // In an agent session (a Subscribe there would be valid: a second hello instead); in an admin session (a Request there would be valid: likewise).
    out.push({ login: ScramClient.agent(agentToken), bytes: encodeMessage(m.t === MessageType.Subscribe ? hello('agent') : m) });
    out.push({ login: 'admin', bytes: encodeMessage(m.t === MessageType.Request ? hello('admin') : m) });
  }
  // Wrong credentials: a wrong password, an unknown account, a token id that does not exist.
  for (let i = 0; i < 10; i++) {
    out.push({ login: new ScramClient('admin', 'admin', `wrong-${i}`), bytes: Buffer.alloc(0) });
    out.push({ login: new ScramClient('admin', `nobody-${i}`, 'x'), bytes: Buffer.alloc(0) });
    out.push({ login: new ScramClient('agent', 'ffffffffffff', 'x'), bytes: Buffer.alloc(0) });
  }
  // The element bomb: 60 million one-byte values in a 60 MB frame, as a trusted admin.
  const count = 60_000_000;
  const bomb = Buffer.alloc(5 + count, 0);
  bomb[0] = 0xdd;
  bomb.writeUInt32BE(count, 1);
  for (let i = 0; i < 3; i++) out.push({ login: 'admin', bytes: frame(bomb) });
  return out;
}

test('under attack on its port, no worker exits, every agent gets every release and the admin is answered throughout', async () => {
  const started = Date.now();
  const admin = await AdminClient.connect({ ...target, login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 5000, requestTimeoutMs: 10_000 });
  await admin.request({ op: 'env.add', env: 'hostile' });
  const agentToken = await tokenFor(admin, 'hostile-agents', ['hostile']);

  // In batches that each log in before the next starts: they all come from one address,
  // which may have only pendingHellosPerAddress (100) connections waiting for their login.
  const agents: RawClient[] = [];
  for (let i = 0; i < AGENTS; i += 50) {
    const batch = Array.from({ length: 50 }, (_, j) => {
      const agent = new RawClient(target, '127.0.0.2');
      void agent.greeted().then((ok) => ok && agent.follow('hostile', agentToken, `agent-${i + j}`));
      return agent;
    });
    agents.push(...batch);
    await waitFor('a batch of agents following', () => batch.every((a) => a.held > 0), 30_000);
  }

  // The attack begins: the silent ones, connected, never a hello.
  let attacking = true;
  const silent: RawClient[] = [];
  // Spread over ten addresses: one address may have only so many connections waiting for their hello.
  for (let i = 0; i < SILENT; i++) silent.push(new RawClient(target, `127.0.0.${4 + (i % 10)}`));

  // The admin writes and asks throughout (a request that got no answer within its deadline fails the test); the
  // round trips completed while the attack runs are counted.
  let writing = true;
  let underAttack = 0;
  let last = 0;
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      const res = await admin.request({ op: 'set', env: 'hostile', key: 'counter', value: String(i) });
      last = res.rev;
      await admin.request({ op: 'get', env: 'hostile', key: 'counter' });
      if (attacking) underAttack++;
      await new Promise((r) => setTimeout(r, 100)); // paces the writes
    }
  })();

  // The attack: every kind, several rounds, from another address.
  for (let round = 0; round < 2; round++) {
    const attackers: RawClient[] = [];
    for (const attack of attacks(agentToken)) {
      const attacker = new RawClient(target, '127.0.0.3');
      attackers.push(attacker);
      const login = attack.login === 'admin' ? new ScramClient('admin', 'admin', ADMIN_PASSWORD) : attack.login;
      void attacker.greeted().then(() => {
        if (login === undefined) attacker.write(attack.bytes);
        else attacker.login(login, 'attacker', () => attacker.write(attack.bytes));
      });
      if (attackers.length % 50 === 0) await new Promise((r) => setTimeout(r, 20)); // paces the attack
    }
    // Most attacks end their session at once; a truncated frame waits for the hello time; a few (a ping) are valid.
    await waitFor('the attacked sessions ended', () => attackers.filter((a) => !a.closed && a.errors.length === 0).length <= 20, HELLO_TIMEOUT_MS + 60_000);
    for (const a of attackers) a.close();
  }
  // The admin was answered while the attack went on (each round lasts at least the hello time: a truncated frame
  // waits for it).
  attacking = false;
  assert.ok(underAttack >= 3, `${underAttack} admin round trips completed under attack`);

  // Silent connections are closed by the server once the hello time is over (the sweep runs every second), and say so.
  await waitFor('every silent connection closed', () => silent.every((s) => s.closed), HELLO_TIMEOUT_MS + 60_000);
  assert.ok(silent.every((s) => s.errors.some((e) => e.code === WireError.TIMEOUT)), 'each was told TIMEOUT');

  writing = false;
  await writer;
  await waitFor(`every agent at revision ${last}`, () => agents.every((a) => a.held >= last), 30_000);
  assert.equal(agents.reduce((n, a) => n + a.gaps, 0), 0, 'no agent saw a gap');
  assert.ok(agents.every((a) => !a.closed && a.errors.length === 0), 'no legitimate agent was cut off');

  const status = await admin.request({ op: 'status' });
  const counters = status.server.counters;
  assert.equal(counters.workerRestarts, 0, 'no worker was replaced');
  assert.doesNotMatch(server.stderr, /exited/, 'no worker exited');
  for (const name of ['MALFORMED', 'FRAME_TOO_LARGE', 'LIMIT_EXCEEDED', 'UNEXPECTED_MESSAGE', 'AUTH_FAILED', 'TIMEOUT']) {
    assert.ok((counters[name] ?? 0) > 0, `refusals counted as ${name}: ${JSON.stringify(counters)}`);
  }
  assert.equal(status.agentsTotal, AGENTS);
  // Refusals are logged, a few lines a second at most in each process (5 a second, bursts of 10).
  const refusalLines = server.stderr.split('\n').filter((l) => l.includes('closed 127.0.0.')).length;
  const seconds = (Date.now() - started) / 1000;
  assert.ok(refusalLines > 0, 'refusals are logged');
  assert.ok(refusalLines <= status.server.workers * (10 + 5 * seconds), `${refusalLines} refusal lines in ${seconds} s from ${status.server.workers} workers`);
  admin.close();
  for (const a of agents) a.close();
});
