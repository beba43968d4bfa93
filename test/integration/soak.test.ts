/**
 * A soak, bounded in time: three peer servers on one MariaDB database (behind
 * a proxy standing in for the database's own restart), a few hundred agents
 * spread over them, writers at a steady rate through every server; meanwhile
 * agents are stopped and started again at random, two agent processes are
 * SIGKILLed and restarted, one server is SIGKILLed and restarted, and the
 * database goes away and comes back. At the end every agent's store equals
 * the database: each environment's revision, and every key with its value.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AdminClient } from '../../src/admin/client.js';
import { ConfigReader } from '../../src/reader/index.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { Cluster } from '../support/cluster.js';
import { Fleet } from '../support/fleet.js';
import { CuttableProxy, query } from '../support/mysql.js';
import { ADMIN_PASSWORD, agentToken, freePort, Proc, waitFor } from '../support/procs.js';

const ENVS = ['soak-a', 'soak-b', 'soak-c'];
const AGENTS = 240;
/** How long the writers write; the faults come at fixed points within it. */
const WRITE_MS = 70_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The database's view: each environment's revision and values. */
async function truth(db: string): Promise<Map<string, { rev: number; values: Map<string, string> }>> {
  const out = new Map<string, { rev: number; values: Map<string, string> }>();
  for (const row of await query<{ name: Buffer; rev: number }>(db, 'SELECT name, rev FROM vitefa_envs')) {
    out.set(String(row.name), { rev: Number(row.rev), values: new Map() });
  }
  for (const row of await query<{ env: Buffer; k: Buffer; v: string }>(db, 'SELECT env, k, v FROM vitefa_values')) {
    out.get(String(row.env))?.values.set(String(row.k), String(row.v));
  }
  return out;
}

describe('a soak with faults: agents, a server and the database killed and restarted', () => {
  const c = new Cluster();
  const proxy = new CuttableProxy();
  let fleet: Fleet;
  const agentProcs: { proc: Proc; store: string }[] = [];
  let token = '';

  before(async () => {
    await proxy.start(await freePort());
    for (let i = 0; i < 3; i++) await c.add(['--workers', '1', '--poll-ms', '2000'], undefined, proxy.url(c.db));
    const admin = await c.admin(c.servers[0]);
    for (const env of ENVS) await admin.request({ op: 'env.add', env });
    token = await agentToken(c.servers[0].address, 'soak', ENVS);
    await c.untilTokenKnown(token);
    fleet = new Fleet(AGENTS, c.servers.map((s) => s.address), token, ENVS, 'soak');
    fleet.start();
    for (let i = 0; i < 2; i++) {
      const store = path.join(c.dir, `agent-${i}`);
      agentProcs.push({ proc: startAgent(store), store });
    }
    await waitFor('every agent connected', () => fleet.connected === AGENTS, 60_000, 50);
  });
  after(async () => {
    await fleet.stop();
    await proxy.cut();
    await c.close();
  });

  const startAgent = (store: string) => c.procs.track(new Proc(['agent', '--servers', c.servers.map((s) => s.address).join(','), '--store', store], { env: { VITEFA_AGENT_TOKEN: token } }));

  test('at the end every agent holds what the database holds, key by key and revision by revision', async (t) => {
    const started = Date.now();
    const counts = { ok: 0, failed: 0 };
    // One writer per server, each about a dozen writes a second; a writer whose server or database is gone tries again, through any server.
    const writer = async (first: number): Promise<void> => {
      let client: AdminClient | undefined;
      for (let n = 0; Date.now() - started < WRITE_MS; n++) {
        try {
          client ??= await AdminClient.connect({
            ...parseEndpoint(c.servers[(first + n) % 3].address),
            login: { user: 'admin', secret: ADMIN_PASSWORD },
            connectTimeoutMs: 2_000,
            requestTimeoutMs: 10_000,
          });
          const env = ENVS[Math.floor(Math.random() * ENVS.length)];
          const key = `k${Math.floor(Math.random() * 40)}`;
          const pick = Math.random();
          if (pick < 0.1) await client.request({ op: 'del', env, key }).catch((err: Error) => {
            if (!/not found|no key/i.test(err.message)) throw err;
          });
          else if (pick < 0.2) await client.request({ op: 'merge', env, key: 'merged', value: JSON.stringify({ [key]: n }) });
          else await client.request({ op: 'set', env, key, value: JSON.stringify({ by: first, n }) });
          counts.ok++;
        } catch {
          counts.failed++;
          client?.close();
          client = undefined;
          await sleep(200);
        }
        await sleep(60);
      }
      client?.close();
    };
    const writers = [0, 1, 2].map((i) => writer(i));

    const at = (ms: number) => sleep(Math.max(0, started + ms - Date.now()));
    // Agents stopped and started again, ten at a time, every few seconds.
    const churn = (async () => {
      while (Date.now() - started < WRITE_MS - 5_000) {
        await sleep(3_000);
        const picked = Array.from({ length: 10 }, () => Math.floor(Math.random() * AGENTS));
        await Promise.all([...new Set(picked)].map((i) => fleet.restart(i, Math.random() * 1_000)));
      }
    })();
    const faults = (async () => {
      await at(12_000);
      agentProcs[0].proc.child.kill('SIGKILL');
      await agentProcs[0].proc.exited;
      agentProcs[0].proc = startAgent(agentProcs[0].store);
      await at(20_000);
      const victim = c.servers[1];
      victim.proc.child.kill('SIGKILL');
      await victim.proc.exited;
      await at(28_000);
      await c.restart(victim, proxy.url(c.db));
      await at(38_000);
      await proxy.cut();
      await at(42_000);
      await proxy.restore();
      await at(50_000);
      agentProcs[1].proc.child.kill('SIGKILL');
      await agentProcs[1].proc.exited;
      agentProcs[1].proc = startAgent(agentProcs[1].store);
    })();
    await Promise.all([...writers, churn, faults]);
    t.diagnostic(`${counts.ok} writes committed, ${counts.failed} refused or cut off; ${fleet.agents.reduce((n, a) => n + a.connects.length, 0)} agent connections`);
    assert.ok(counts.ok > 1_000, `${counts.ok} writes committed (${counts.failed} refused or cut off)`);

    const db = await truth(c.db);
    await waitFor('every agent at the database\'s revisions', () => fleet.agents.every((a) => ENVS.every((env) => a.store.revision(env) === db.get(env)!.rev)), 60_000, 100);
    for (const env of ENVS) assert.equal(fleet.violation(env), undefined);
    for (const a of fleet.agents) {
      for (const env of ENVS) {
        assert.deepEqual(new Map([...a.store.envs.get(env)!.values].sort()), new Map([...db.get(env)!.values].sort()), `${a.name}: ${env} as in the database`);
      }
    }
    for (const { store } of agentProcs) {
      await waitFor(`the agent process of ${store} at the database's revisions`, () => {
        if (!fs.existsSync(path.join(store, 'data.mdb'))) return false;
        const reader = ConfigReader.open(store);
        try {
          return ENVS.every((env) => reader.revision(env) === db.get(env)!.rev);
        } finally {
          void reader.close();
        }
      }, 60_000, 200);
      const reader = ConfigReader.open(store);
      try {
        for (const env of ENVS) {
          const expected = Object.fromEntries([...db.get(env)!.values].map(([k, v]) => [k, JSON.parse(v) as unknown]));
          assert.deepEqual(reader.list(env), expected, `${store}: ${env} as in the database`);
        }
      } finally {
        await reader.close();
      }
    }
  });
});
