/**
 * The restore drill, as an operator runs it from docs/operations.md, on real
 * MariaDB and real processes: production is two peer servers with agents;
 * its database is dumped (mariadb-dump --single-transaction --hex-blob) and loaded into
 * a second database, and a server is started on the copy knowing
 * production's addresses and peer key (both are in the dump). The copy must
 * never become a peer nor be offered to an agent, and its writes must reach
 * no production agent. Then the documented path to make a copy the new
 * production (--adopt-store): agents pointed at it find that their history
 * differs and take its snapshot; no store ends with a mix.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Cluster, readAgent, type Server } from '../support/cluster.js';
import type { Fleet } from '../support/fleet.js';
import { databaseName, dropDatabase, MYSQL_BASE, query } from '../support/mysql.js';
import { agentToken, Proc, run, waitFor } from '../support/procs.js';

const exec = promisify(execFile);

/** mariadb-dump of `from` loaded into a new database `to`, as the backup section of docs/operations.md does it. */
async function dumpAndRestore(from: string, to: string): Promise<void> {
  const url = new URL(MYSQL_BASE);
  const conn = ['-h', url.hostname, '-P', url.port || '3306', '-u', decodeURIComponent(url.username || 'root'), ...(url.password === '' ? [] : [`-p${decodeURIComponent(url.password)}`])];
  const { stdout } = await exec('mariadb-dump', [...conn, '--single-transaction', '--hex-blob', from], { maxBuffer: 256 << 20 });
  await exec('mariadb', [...conn, '-e', `CREATE DATABASE \`${to}\``]);
  await new Promise<void>((resolve, reject) => {
    const child = execFile('mariadb', [...conn, to], (err: Error | null) => (err ? reject(err) : resolve()));
    child.stdin!.end(stdout);
  });
}

const logOf = (s: Server): string => s.proc.output;

describe('a restored copy of the database beside production', () => {
  const c = new Cluster();
  const copyDb = databaseName('vitefa_copy_');
  let fleet: Fleet;
  let copy: Server;

  before(async () => {
    await c.start(2);
    fleet = await c.startFleet(3);
    const a = await c.admin(c.servers[0]);
    for (let i = 0; i < 3; i++) await a.request({ op: 'set', env: 'live', key: `before-${i}`, value: String(i) });
    await dumpAndRestore(c.db, copyDb);
    // The copy knows production's peer ports from the registry it carries, and from --peers too.
    copy = await c.add(['--peers', c.servers.map((s) => s.peer).join(',')], undefined, `${MYSQL_BASE}/${copyDb}`);
  });
  after(async () => {
    await fleet?.stop();
    await c.close();
    await dropDatabase(copyDb);
  });

  test('the copy and production refuse each other, each saying so in one line', async () => {
    const [a, b] = c.servers as [Server, Server];
    await waitFor(`the copy refuses production (its log: ${logOf(copy).slice(-1500)})`, () => /peers: refused .*(one is a copy of the other|could not prove that it reads this store)/.test(logOf(copy)), 30_000, 100);
    await waitFor('production refuses the copy', () => [a, b].some((s) => /peers: refused .*(one is a copy of the other|could not prove that it reads this store)/.test(logOf(s))), 30_000, 100);
    assert.match(logOf(copy), /0 of 2 registered servers answered/);
    for (const s of [a, b, copy]) {
      const lines = logOf(s).split('\n').filter((l) => /peers: refused/.test(l));
      assert.ok(lines.length <= 2, `one line per other server, not a line per attempt (${s.id} ${s.peer}; servers ${c.servers.map((x) => `${x.id} ${x.peer}`).join(', ')}):\n${lines.join('\n')}`);
    }
  });

  test('production lists only its own servers, to status and to agents; the copy lists only itself', async () => {
    const ids = c.servers.slice(0, 2).map((s) => s.id).sort();
    for (const s of c.servers.slice(0, 2)) {
      const status = await c.status(s);
      assert.deepEqual(status.cluster.servers.map((r) => r.id).sort(), ids);
    }
    const status = await c.status(copy);
    assert.deepEqual(status.cluster.servers.map((r) => r.id), [copy.id]);
    assert.equal(status.agentsTotal, 0, 'no production agent was offered the copy');
    for (const agent of fleet.agents) assert.ok(agent.connects.every((addr) => addr !== copy.address), `${agent.name} connected to the copy`);
  });

  test("the copy's writes reach no production agent; production's reach every one", async () => {
    const onCopy = await c.admin(copy);
    const copyWrite = await onCopy.request({ op: 'set', env: 'live', key: 'from-copy', value: '"copy"' });
    const a = await c.admin(c.servers[0]);
    // Production's next revision is the copy's too: the very case in which agents were fooled.
    const real = await a.request({ op: 'set', env: 'live', key: 'from-production', value: '"real"' });
    assert.equal(real.rev, copyWrite.rev, 'both stores committed the same revision number');
    const after = await a.request({ op: 'set', env: 'live', key: 'after', value: '1' });
    await waitFor('every agent holds production\'s writes', () => fleet.agents.every((x) => x.store.envs.get('live')?.values.get('after') === '1'), 20_000, 50);
    for (const agent of fleet.agents) {
      const live = agent.store.envs.get('live')!;
      assert.equal(live.values.get('from-production'), '"real"');
      assert.equal(live.values.has('from-copy'), false, `${agent.name} got the copy's write`);
      assert.equal(live.rev, after.rev);
    }
    // Both production servers agree with their database.
    for (const s of c.servers.slice(0, 2)) {
      const got = await (await c.admin(s)).request({ op: 'get', env: 'live', key: 'from-production' });
      assert.equal(got.value, '"real"');
    }
    const rows = await query<{ rev: number }>(c.db, "SELECT rev FROM vitefa_releases WHERE env = 'live' ORDER BY rev");
    assert.equal(fleet.missed('live', rows.map((r) => Number(r.rev))), undefined);
  });
});

describe('a copy adopted as the new production', () => {
  const c = new Cluster();
  const copyDb = databaseName('vitefa_copy_');
  const agentStore = path.join(c.dir, 'agent');
  let agent: Proc;
  let token: string;

  before(async () => {
    await c.start(1);
    const a = await c.admin(c.servers[0]);
    await a.request({ op: 'env.add', env: 'live' });
    token = await agentToken(c.servers[0].address, 'hosts', ['live']);
    agent = c.procs.track(new Proc(['agent', '--servers', c.servers[0].address, '--store', agentStore, '--env', 'live'], { env: { VITEFA_AGENT_TOKEN: token } }));
    await agent.waitForOutput(/agent connected to/);
  });
  after(async () => {
    await c.close();
    await dropDatabase(copyDb);
  });

  test('agents whose history differs detect the fork and take the snapshot; nothing is mixed', async () => {
    const a = await c.admin(c.servers[0]);
    await a.request({ op: 'set', env: 'live', key: 'common', value: '"both"' });
    await dumpAndRestore(c.db, copyDb);
    // Production goes on after the backup: the agent holds releases the copy never had.
    await a.request({ op: 'set', env: 'live', key: 'only-production', value: '"lost with the old database"' });
    const last = await a.request({ op: 'set', env: 'live', key: 'common', value: '"production"' });
    await waitFor('the agent holds production', () => readAgent(agentStore, 'live', 'common') === 'production', 20_000, 50);
    const meta = await run(['read', '--store', agentStore, '--meta', 'live']);
    assert.equal(meta.code, 0, meta.stderr);
    const heldChain = /chain ([0-9a-f]{16})/.exec(meta.stdout)?.[1];
    assert.ok(heldChain !== undefined, `read --meta shows the chain: ${meta.stdout}`);
    await agent.stop();
    await c.servers[0].proc.stop();

    // The documented procedure: start a server on the copy with --adopt-store.
    const adopted = await c.add(['--adopt-store'], undefined, `${MYSQL_BASE}/${copyDb}`);
    assert.match(adopted.proc.output, /adopted .* as a store of its own: store id [0-9a-f]{16} -> [0-9a-f]{16}/);
    const audit = await query<{ action: Buffer }>(copyDb, "SELECT action FROM vitefa_audit WHERE action = 'store.adopt'");
    assert.equal(audit.length, 1, 'the adoption is audited');
    const b = await c.admin(adopted);
    // The copy writes one release: a revision below what the agent holds, of another history.
    await b.request({ op: 'set', env: 'live', key: 'only-copy', value: '"new production"' });
    const copyRev = (await b.request({ op: 'get', env: 'live', key: 'common' })).rev;
    assert.ok(copyRev < last.rev);

    agent = c.procs.track(new Proc(['agent', '--servers', adopted.address, '--store', agentStore, '--env', 'live'], { env: { VITEFA_AGENT_TOKEN: token } }));
    await agent.waitForOutput(/fork in live: .*taking the server's/);
    await waitFor('the agent holds the new production', () => readAgent(agentStore, 'live', 'only-copy') === 'new production', 20_000, 50);
    assert.equal(readAgent(agentStore, 'live', 'only-production'), undefined, 'nothing of the old history stays');
    assert.equal(readAgent(agentStore, 'live', 'common'), 'both');
    // And from there it follows the new production release by release.
    const next = await b.request({ op: 'set', env: 'live', key: 'common', value: '"next"' });
    await waitFor('the next release', () => readAgent(agentStore, 'live', 'common') === 'next', 20_000, 50);
    const after = await run(['read', '--store', agentStore, '--meta', 'live']);
    assert.match(after.stdout, new RegExp(`revision ${next.rev}\\b`));
    assert.doesNotMatch(after.stdout, new RegExp(heldChain));
  });
});

describe('a release in the database that does not follow what a server holds', () => {
  const c = new Cluster();
  after(() => c.close());

  test('stops the server (exit 4, one line), and started again it serves the store as it is', async () => {
    const server = await c.add(['--poll-ms', '200']);
    const a = await c.admin(server);
    await a.request({ op: 'env.add', env: 'live' });
    const { rev } = await a.request({ op: 'set', env: 'live', key: 'k', value: '1' });
    // Written under the running server, as a restore from another history would: the next revision, another chain.
    await query(c.db, 'UPDATE vitefa_head SET rev = ? WHERE id = 1', [rev + 1]);
    await query(c.db, "INSERT INTO vitefa_releases (rev, env, prev, time, author, op, dropped, chain) VALUES (?, 'live', ?, 1, 'x', 'set', 0, '0123456789abcdef')", [rev + 1, rev]);
    await query(c.db, "INSERT INTO vitefa_changes (rev, seq, k, before_v, after_v) VALUES (?, 0, 'k', '1', '666')", [rev + 1]);
    assert.equal(await server.proc.exited, 4);
    assert.match(server.proc.output, /stopping: the release live@\d+ does not follow this server's history: its chain value is 0123456789abcdef/);
    await c.restart(server);
    const got = await (await c.admin(server)).request({ op: 'get', env: 'live', key: 'k' });
    assert.equal(got.rev, rev, 'the values table was not touched: the store as it is');
  });
});
