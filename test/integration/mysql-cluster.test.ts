import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigReader } from '../../src/reader/index.js';
import { CuttableProxy, databaseName, dropDatabase, MYSQL_BASE, query } from '../support/mysql.js';
import { agentToken, freePort, Proc, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';

/** Servers on real MariaDB: the system of record shared by several server processes. */
describe('two servers on one MySQL database', () => {
  const procs = new Procs();
  const dir = tempDir();
  const db = databaseName();
  const url = `${MYSQL_BASE}/${db}`;
  const addresses: string[] = [];
  const agentStore = path.join(dir, 'agent');
  let agent: Proc;
  const admin = (server: string, ...args: string[]) => run(['admin', '--server', server, ...args]);

  before(async () => {
    for (let i = 0; i < 2; i++) {
      const { proc, address } = await startServer(url);
      procs.track(proc);
      addresses.push(address);
    }
    for (const env of ['alpha', 'beta']) assert.equal((await admin(addresses[0], 'env', 'add', env)).code, 0);
    const token = await agentToken(addresses[0], 'cluster-agent');
    agent = procs.track(new Proc(['agent', '--servers', addresses[0], '--store', agentStore], { env: { VITEFA_TRACE: 'agent', VITEFA_AGENT_TOKEN: token } }));
    await agent.waitForOutput(/agent connected/);
    await waitFor('agent holds both environments', () => /applied release beta@/.test(agent.stderr) || /snapshot beta@/.test(agent.stderr));
  });

  after(async () => {
    await procs.killAll();
    await dropDatabase(db);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('concurrent writers through both servers: the agent sees every release once, in order, and matches the database', async () => {
    const WRITERS = 4;
    const WRITES = 12;
    await Promise.all(
      Array.from({ length: WRITERS }, async (_, w) => {
        for (let i = 0; i < WRITES; i++) {
          const server = addresses[(w + i) % 2];
          const env = i % 2 === 0 ? 'alpha' : 'beta';
          const result = await admin(server, 'set', env, `w${w}`, String(i));
          assert.equal(result.code, 0, result.stderr);
        }
      }),
    );
    const revs = await query<{ name: string; rev: number }>(db, 'SELECT name, rev FROM vitefa_envs');
    const want = new Map(revs.map((r) => [String(r.name), Number(r.rev)]));
    const reader = ConfigReader.open(agentStore);
    try {
      await waitFor('agent current with the database', () => [...want].every(([env, rev]) => reader.revision(env) === rev), 15_000);
      // Trace lines follow each commit through a pipe: wait for the last ones too.
      await waitFor('trace of the last releases', () => [...want].every(([env, rev]) => agent.stderr.includes(`${env}@${rev} `)));
      const applied = [...agent.stderr.matchAll(/applied (release|snapshot) (\w+)@(\d+)(?: after (\d+))?/g)].map((m) => ({ kind: m[1], env: m[2], rev: Number(m[3]), prev: Number(m[4] ?? -1) }));
      const releases = await query<{ env: string; rev: number }>(db, 'SELECT env, rev FROM vitefa_releases ORDER BY rev');
      for (const env of ['alpha', 'beta']) {
        const seen = applied.filter((a) => a.env === env);
        assert.ok(seen.every((a) => a.kind === 'release'), `${env}: only releases, no snapshot`);
        const expected = releases.filter((r) => String(r.env) === env).map((r) => Number(r.rev));
        // Releases committed while the server still wrote an earlier one arrive joined (a batch, from its prev to its rev).
        const covered = seen.flatMap((a) => expected.filter((r) => r > a.prev && r <= a.rev));
        assert.deepEqual(covered, expected, `${env}: every release exactly once, in revision order`);
      }
      const all = releases.map((r) => Number(r.rev));
      assert.deepEqual(all, Array.from({ length: all.length }, (_, i) => i + 1), 'revisions 1..N without gaps');
      const values = await query<{ env: string; k: string; v: string }>(db, 'SELECT env, k, v FROM vitefa_values');
      for (const env of ['alpha', 'beta']) {
        const fromDb = Object.fromEntries(values.filter((v) => String(v.env) === env).map((v) => [String(v.k), JSON.parse(String(v.v))]));
        assert.deepEqual(reader.list(env), fromDb, `${env}: agent store equals the database`);
      }
    } finally {
      await reader.close();
    }
  });

  test('a token revoked through one server disconnects its agents on the other, which says why', async () => {
    const token = await agentToken(addresses[0], 'short-lived', ['alpha']);
    const other = procs.track(new Proc(['agent', '--servers', addresses[1], '--store', path.join(dir, 'short-lived')], { env: { VITEFA_AGENT_TOKEN: token } }));
    await other.waitForOutput(/agent connected/);
    assert.equal((await admin(addresses[0], 'token', 'del', 'short-lived')).code, 0);
    // Ended by the revocation (the other server's words), not by a lost connection.
    await other.waitForOutput(/the token short-lived was revoked/, 30_000);
    // It cannot come back with that token.
    await other.waitForOutput(/refused the agent's token/, 10_000);
  });

  test('merge, clear, apply, history, diff and rollback on a MySQL-backed server, each step visible on the agent', async () => {
    const s = addresses[1];
    const reader = ConfigReader.open(agentStore);
    const seen = (key: string, value: unknown) => waitFor(`${key} = ${JSON.stringify(value)}`, () => {
      return JSON.stringify(reader.get('alpha', key)) === JSON.stringify(value);
    });
    try {
      assert.equal((await admin(s, 'set', 'alpha', 'db', '{"hosts":["a","b"],"port":1}')).code, 0);
      await seen('db', { hosts: ['a', 'b'], port: 1 });
      const start = reader.revision('alpha');
      assert.equal((await admin(s, 'merge', 'alpha', 'db', '{"hosts":["b","c"],"port":2}')).code, 0);
      await seen('db', { hosts: ['a', 'b', 'c'], port: 2 });
      assert.equal((await admin(s, 'clear', 'alpha', 'db', 'hosts', 'a')).code, 0);
      await seen('db', { hosts: ['b', 'c'], port: 2 });
      const file = path.join(dir, 'apply.json');
      fs.writeFileSync(file, JSON.stringify({ db: { port: 3 }, extra: true }));
      assert.equal((await admin(s, 'apply', 'alpha', file)).code, 0);
      await seen('extra', true);
      const history = JSON.parse((await admin(s, 'history', 'alpha', 'db', '--json')).stdout) as { releases: { op: string }[] };
      assert.deepEqual(history.releases.slice(0, 4).map((r: { op: string }) => r.op), ['apply', 'clear', 'merge', 'set']);
      const diff = JSON.parse((await admin(s, 'diff', 'alpha', String(start), '--json')).stdout) as { changes: unknown };
      assert.deepEqual(diff.changes, [
        ['db', '{"hosts":["a","b"],"port":1}', '{"port":3}'],
        ['extra', null, 'true'],
      ]);
      const rollback = await admin(s, 'rollback', 'alpha', String(start));
      assert.equal(rollback.code, 0, rollback.stderr);
      await seen('db', { hosts: ['a', 'b'], port: 1 });
      await seen('extra', undefined);
      const noop = await admin(s, 'rollback', 'alpha', String(start));
      assert.match(noop.stdout, /nothing changed/);
    } finally {
      await reader.close();
    }
  });
});

describe('a server whose database goes away', () => {
  const procs = new Procs();
  const dir = tempDir();
  const db = databaseName();
  const proxy = new CuttableProxy();

  after(async () => {
    await procs.killAll();
    await proxy.cut();
    await dropDatabase(db);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('refuses writes with one clear error, keeps serving reads and agents from memory, and recovers by itself', async () => {
    await proxy.start(await freePort());
    // One process (--workers 0): the server without the cluster.
    const { proc, address } = await startServer(proxy.url(db), ['--workers', '0']);
    procs.track(proc);
    const admin = (...args: string[]) => run(['admin', '--server', address, ...args]);
    assert.equal((await admin('env', 'add', 'prod')).code, 0);
    assert.equal((await admin('set', 'prod', 'k', '1')).code, 0);
    const token = await agentToken(address, 'outage-agent');

    await proxy.cut();
    const refused = await admin('set', 'prod', 'k', '2');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`^vitefa: database mysql://root@127\\.0\\.0\\.1:${proxy.port}/${db} is unreachable`));
    assert.equal(refused.stderr.trim().split('\n').length, 1);
    assert.doesNotMatch(refused.stderr, /password/);
    const read = await admin('get', 'prod', 'k');
    assert.equal(read.stdout, '1\n');
    // A new agent is served from the server's memory while the database is down.
    const agentStore = path.join(dir, 'agent');
    procs.track(new Proc(['agent', '--servers', address, '--store', agentStore], { env: { VITEFA_AGENT_TOKEN: token } }));
    await waitFor('agent got prod from memory', () => {
      if (!fs.existsSync(path.join(agentStore, 'data.mdb'))) return false;
      const reader = ConfigReader.open(agentStore);
      try {
        return reader.get('prod', 'k') === 1;
      } finally {
        void reader.close();
      }
    });

    await proxy.restore();
    await waitFor('writes accepted again', async () => (await admin('set', 'prod', 'k', '3')).code === 0, 20_000, 250);
    assert.equal((await admin('get', 'prod', 'k')).stdout, '3\n');
  });
});
