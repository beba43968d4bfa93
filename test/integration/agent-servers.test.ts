/**
 * Agents remember where the cluster lives: the servers a cluster announced
 * are kept in the agent store's `meta` database (key `servers`), read back
 * as untrusted input, and a restarted agent whose --servers are all gone
 * finds the cluster through them (real processes, real MariaDB).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { open } from 'lmdb';
import { LocalStore, MAX_REMEMBERED_SERVERS, META_SERVERS, parseServerList } from '../../src/agent/local-store.js';
import { DB_META, DB_OPTIONS } from '../../src/reader/layout.js';
import { Cluster, readAgent } from '../support/cluster.js';
import { agentToken, freePort, Proc, ROOT, run, tempDir, waitFor } from '../support/procs.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const MAP = 16 * 1024 * 1024;

/** Writes `value` under meta/servers as any process could, bypassing the agent's checks. */
async function putRaw(dir: string, value: Buffer): Promise<void> {
  const root = open({ path: dir, maxDbs: 4, mapSize: MAP, ...DB_OPTIONS });
  await root.openDB({ name: DB_META, ...DB_OPTIONS }).put(META_SERVERS, value);
  await root.close();
}

describe('the servers kept in the agent store', () => {
  test('written as a JSON array of HOST:PORT (newest first) only when the set changes, and read back', async () => {
    const dir = tempDir('vitefa-remember-');
    dirs.push(dir);
    let store = LocalStore.open(dir, { mapSize: MAP });
    assert.deepEqual(store.rememberedServers(), []);
    assert.equal(store.rememberServers(['10.0.0.2:7400', '10.0.0.1:7400', 'not an address']), true);
    assert.equal(store.rememberServers(['10.0.0.1:7400', '10.0.0.2:7400', '10.0.0.1:7400']), false, 'the same set, in another order: not written');
    assert.equal(store.rememberServers(['10.0.0.1:7400', '[::1]:7400']), true);
    await store.close();
    store = LocalStore.open(dir, { mapSize: MAP });
    assert.deepEqual(store.rememberedServers(), ['10.0.0.1:7400', '[::1]:7400']);
    await store.close();
    // The bytes, as another reader of the layout sees them.
    const root = open({ path: dir, maxDbs: 4, mapSize: MAP, ...DB_OPTIONS });
    const raw = root.openDB({ name: DB_META, ...DB_OPTIONS }).get(META_SERVERS) as Buffer;
    assert.equal(Buffer.from(raw).toString('utf8'), '["10.0.0.1:7400","[::1]:7400"]');
    assert.equal(Buffer.from(root.openDB({ name: DB_META, ...DB_OPTIONS }).get('format') as Buffer).toString(), '1', 'the layout format is unchanged');
    await root.close();
  });

  test('read back as untrusted input: bounded, bad entries left out, garbage read as nothing', async () => {
    const many = Array.from({ length: 1000 }, (_, i) => `10.0.${Math.floor(i / 250)}.${i % 250}:7400`);
    assert.equal(parseServerList(Buffer.from(JSON.stringify(many))).length, MAX_REMEMBERED_SERVERS);
    assert.deepEqual(
      parseServerList(Buffer.from(JSON.stringify(['a:1', 7, null, { host: 'x' }, 'b', 'c:0', 'd:70000', 'e:2', `${'h'.repeat(400)}:1`, ' f:3 ']))),
      ['a:1', 'e:2', 'f:3'],
    );
    for (const garbage of ['', 'nope', '{"a":1}', '"a:1"', '[', '\u0000\u00ff']) assert.deepEqual(parseServerList(Buffer.from(garbage)), [], garbage);
    assert.deepEqual(parseServerList(Buffer.from(`["a:1",${'"b:2",'.repeat(20_000)}"c:3"]`)), [], 'too large to parse');

    const dir = tempDir('vitefa-remember-');
    dirs.push(dir);
    await putRaw(dir, Buffer.from('["127.0.0.1:7400", "bad", 42]'));
    const store = LocalStore.open(dir, { mapSize: MAP });
    assert.deepEqual(store.rememberedServers(), ['127.0.0.1:7400']);
    await store.close();
  });
});

test('`vitefa agent --help` and docs/operations.md say the same of how a server is chosen', async () => {
  const help = await run(['agent', '--help']);
  assert.equal(help.code, 0, help.stderr);
  const flat = help.stdout.replace(/\s+/g, ' ');
  const said = /--servers <host:port,\.\.\.> (.*?) --env/.exec(flat)?.[1]?.replace(' (default 127.0.0.1:7400)', '');
  const row = /^\| `--servers` \| `VITEFA_SERVERS` \| `127\.0\.0\.1:7400` \| (.*) \|$/m.exec(fs.readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8'))?.[1];
  assert.ok(said !== undefined && row !== undefined, `${flat}\n${row}`);
  assert.equal(said, row.replace(' (see below)', ''));
  assert.match(said, /chosen at random among the alive ones, weighted toward those holding fewer agents/);
  assert.doesNotMatch(said, /in order/);
});

describe('a restarted agent whose --servers is dead', () => {
  const cluster = new Cluster();
  after(() => cluster.close());

  test('finds the cluster through the servers it remembered', async () => {
    await cluster.start(1);
    const server = cluster.servers[0];
    const admin = await cluster.admin(server);
    await admin.request({ op: 'env.add', env: 'live' });
    await admin.request({ op: 'set', env: 'live', key: 'k', value: '"first"' });
    const token = await agentToken(server.address, 'remembering', ['live']);
    const store = path.join(cluster.dir, 'agent');
    const agent = (servers: string) => cluster.procs.track(new Proc(['agent', '--servers', servers, '--store', store, '--env', 'live'], { env: { VITEFA_TRACE: 'agent', VITEFA_AGENT_TOKEN: token } }));

    const before = agent(server.address);
    await waitFor('the agent applied the first write', () => readAgent(store, 'live', 'k') === 'first', 30_000, 50);
    // A server of a database lists itself (and its peers) to its agents.
    await before.waitForOutput(new RegExp(`remembering servers .*${server.address.replace(/\./g, '\\.')}`));
    assert.equal(await before.stop(), 0);

    const dead = `127.0.0.1:${await freePort()}`;
    const after = agent(dead);
    await after.waitForOutput(/from 127\.0\.0\.1:\d+ and 1 server the cluster announced before\n/);
    await after.waitForOutput(new RegExp(`agent connected to ${server.address.replace(/\./g, '\\.')}`));
    await admin.request({ op: 'set', env: 'live', key: 'k', value: '"second"' });
    await waitFor('the restarted agent applied a new write', () => readAgent(store, 'live', 'k') === 'second', 30_000, 50);
    assert.match(after.stderr, new RegExp(`connect to ${dead.replace(/\./g, '\\.')} failed`), 'the configured server was tried');
  });
});
