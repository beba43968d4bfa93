/**
 * Reads follow grants: every read path (get, list, history, diff, watch,
 * status and its per-environment rows, status --agent, status.local, env
 * list) for an environment granted and one not, by a viewer and by an
 * editor with a read-only grant, on a server in this process over each
 * store (the embedded one, and MariaDB), with real logins.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MessageType, WireError,
  type AdminRequest, type Challenge, type ErrorMessage, type Message, type Release, type Response, type ResultOf, type Welcome,
} from '../../src/protocol/index.js';
import { prepareCommand } from '../../src/admin/commands.js';
import { formatResult } from '../../src/admin/format.js';
import { createStore } from '../../src/server/store/create.js';
import type { Store } from '../../src/server/store/types.js';
import { ScramClient } from '../support/login.js';
import type { TestPeer } from '../support/memory.js';
import { databaseName, dropDatabase, MYSQL_BASE } from '../support/mysql.js';
import { ADMIN_PASSWORD, waitFor } from '../support/common.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';

type Answer = { ok: true; res: unknown } | { ok: false; code: number; msg: string };

const isChallenge = (m: Message): m is Challenge => m.t === MessageType.Challenge;
const isWelcome = (m: Message): m is Welcome => m.t === MessageType.Welcome;

const stores: Record<string, () => { store?: Store; cleanup: () => Promise<void> }> = {
  LmdbStore: () => ({ cleanup: () => Promise.resolve() }),
  MysqlStore: () => {
    const db = databaseName();
    return { store: createStore(`${MYSQL_BASE}/${db}`, { retainReleases: 1000 }), cleanup: () => dropDatabase(db) };
  },
};

for (const [storeName, make] of Object.entries(stores)) {
  describe(`reads follow grants: ${storeName}`, () => {
    let mem: MemoryServer;
    let cleanup: () => Promise<void>;
    const peers: TestPeer[] = [];
    let next = 1;

    async function logIn(scram: ScramClient, id?: string): Promise<TestPeer> {
      const peer = mem.connect();
      peers.push(peer);
      await peer.next((m): m is Message => m.t === MessageType.Hello);
      peer.send(scram.hello(id));
      peer.send(scram.proof(await peer.next(isChallenge)));
      await peer.next(isWelcome);
      return peer;
    }

    async function ask(peer: TestPeer, req: AdminRequest): Promise<Answer> {
      const id = next++;
      const from = peer.received.length;
      peer.send({ t: MessageType.Request, id, req });
      const answer = await peer.next((m): m is Response | ErrorMessage => (m.t === MessageType.Response || m.t === MessageType.Error) && m.id === id, from);
      return answer.t === MessageType.Response ? { ok: true, res: answer.res } : { ok: false, code: answer.code, msg: answer.msg };
    }

    async function result<O extends AdminRequest['op']>(peer: TestPeer, req: AdminRequest & { op: O }): Promise<ResultOf[O]> {
      const answer = await ask(peer, req);
      assert.ok(answer.ok, `${req.op}: ${JSON.stringify(answer)}`);
      return answer.res as ResultOf[O];
    }

    /** The readers: a viewer granted shop; an editor that changes team/* and reads shop besides. */
    const readers = {
      viewer: { name: 'vic', granted: ['shop'], denied: ['prod', 'team/a'] },
      editor: { name: 'ed', granted: ['shop', 'team/a'], denied: ['prod'] },
    };

    before(async () => {
      const made = make();
      cleanup = made.cleanup;
      mem = await memoryServer(made.store === undefined ? {} : { store: made.store });
      const { hub } = mem.server;
      for (const env of ['shop', 'prod', 'team/a']) {
        await hub.execute({ op: 'env.add', env }, 'test');
        await hub.execute({ op: 'set', env, key: 'password', value: `"secret-of-${env}"` }, 'test');
        await hub.execute({ op: 'set', env, key: 'password', value: `"newer-secret-of-${env}"` }, 'test');
      }
      await mem.account('vic', 'viewer', ['shop']);
      await mem.account('ed', 'editor', ['team/*'], 'ed-password', ['shop']);
      // One agent in shop and one in prod, for the agents' rows of status.
      for (const env of ['shop', 'prod']) {
        const agent = await logIn(ScramClient.agent(await mem.token(`${env}-token`, [env])), `host-${env}`);
        agent.send({ t: MessageType.Subscribe, all: false, envs: [{ env, rev: 0 }] });
        await agent.next((m): m is Message => (m.t === MessageType.Snapshot || m.t === MessageType.Release) && m.env === env);
      }
    });
    after(async () => {
      for (const peer of peers) peer.socket.destroy();
      await mem.close();
      await cleanup();
    });

    for (const [role, { name, granted, denied }] of Object.entries(readers)) {
      const password = `${name}-password`;

      for (const env of granted) {
        test(`the ${role} reads ${env}, granted to it, on every path`, async () => {
          const peer = await logIn(new ScramClient('admin', name, password));
          const rev = (await result(peer, { op: 'get', env, key: 'password' })).rev;
          assert.equal((await result(peer, { op: 'get', env, key: 'password' })).value, `"newer-secret-of-${env}"`);
          assert.deepEqual((await result(peer, { op: 'list', env, prefix: 'pass' })).entries, [['password', `"newer-secret-of-${env}"`]]);
          assert.ok((await result(peer, { op: 'history', env })).releases.some((r) => r.changes.some(([k, , after]) => k === 'password' && after === `"secret-of-${env}"`)));
          assert.equal((await result(peer, { op: 'diff', env, from: rev - 1 })).changes.length, 1);
          assert.equal((await result(peer, { op: 'status', env })).envs[0].env, env);
          assert.ok((await result(peer, { op: 'status.local', env })).envs.every((e) => e.env === env));
          assert.equal((await result(peer, { op: 'watch', env })).env, env);
          await mem.server.hub.execute({ op: 'set', env, key: 'watched', value: `"by ${role}"` }, 'test');
          await peer.next((m): m is Release => m.t === MessageType.Release && m.env === env);
        });
      }

      for (const env of denied) {
        test(`the ${role} is refused ${env}, not granted to it, on every path, as for an environment that does not exist`, async () => {
          const peer = await logIn(new ScramClient('admin', name, password));
          const paths = (e: string): AdminRequest[] => [
            { op: 'get', env: e, key: 'password' },
            { op: 'list', env: e },
            { op: 'history', env: e },
            { op: 'diff', env: e, from: 0 },
            { op: 'watch', env: e },
            { op: 'status', env: e },
            { op: 'status.local', env: e },
            { op: 'status', env: e, agent: `host-${e}` },
          ];
          for (const req of paths(env)) {
            const answer = await ask(peer, req);
            assert.deepEqual(answer.ok ? 'answered' : answer.code, WireError.FORBIDDEN, `${req.op} ${env}: ${JSON.stringify(answer)}`);
            assert.ok(!JSON.stringify(answer).includes('secret-of'), 'no value in the refusal');
            // The same words for a name that exists and for one that does not: the refusal says nothing of the store.
            const none = await ask(peer, { ...req, env: 'nothing-here' } as AdminRequest);
            assert.ok(!answer.ok && !none.ok);
            assert.deepEqual([none.code, none.msg.replaceAll('nothing-here', env)], [answer.code, answer.msg], req.op);
          }
          await mem.server.hub.execute({ op: 'set', env, key: 'unseen', value: '1' }, 'test');
          // Nothing of it reached this session: its watch was refused.
          const mark = await ask(peer, { op: 'env.list' });
          assert.ok(mark.ok);
          assert.ok(!peer.received.some((m) => m.t === MessageType.Release && m.env === env), 'no release of a refused watch');
        });
      }

      test(`the ${role}'s env list and status show only what it reads`, async () => {
        const peer = await logIn(new ScramClient('admin', name, password));
        const envs = (await result(peer, { op: 'env.list' })).envs.map((e) => e.env).sort();
        assert.deepEqual(envs, [...granted].sort());
        const status = await result(peer, { op: 'status' });
        assert.deepEqual(status.envs.map((e) => e.env).sort(), [...granted].sort(), 'status envs');
        // Rows of agents' revisions: the environments agents follow (shop and prod here), those it reads.
        assert.deepEqual(status.cluster.envs.map((e) => e.env), ['shop'], 'status cluster.envs');
        const agentEnvs = status.agents.flatMap((a) => a.envs.map((e) => e.env));
        assert.deepEqual(agentEnvs, ['shop'], 'agents: only the shop agent, with shop');
        assert.deepEqual(status.agents.map((a) => a.id), ['host-shop']);
        const local = await result(peer, { op: 'status.local' });
        assert.deepEqual(local.envs.map((e) => e.env), ['shop'], 'status.local envs');
        // status --agent finds an agent by id: one that follows only environments it may not read is not shown.
        const shop = await result(peer, { op: 'status', agent: 'host-shop' });
        assert.deepEqual(shop.cluster.found?.map((a) => [a.id, a.envs.map((e) => e.env)]), [['host-shop', ['shop']]]);
        const prod = await result(peer, { op: 'status', agent: 'host-prod' });
        assert.deepEqual(prod.cluster.found, []);
        const localFound = await result(peer, { op: 'status.local', agent: 'host-prod' });
        assert.deepEqual(localFound.found, []);
        assert.ok(!JSON.stringify([envs, status, local, shop, prod, localFound]).includes('prod'), 'prod is not named anywhere');
      });
    }

    test('an admin reads every environment, and sees every agent', async () => {
      const peer = await logIn(new ScramClient('admin', 'admin', ADMIN_PASSWORD));
      assert.deepEqual((await result(peer, { op: 'env.list' })).envs.map((e) => e.env).sort(), ['prod', 'shop', 'team/a']);
      const status = await result(peer, { op: 'status' });
      assert.deepEqual(status.agents.map((a) => a.id).sort(), ['host-prod', 'host-shop']);
      assert.deepEqual((await result(peer, { op: 'status', agent: 'host-prod' })).cluster.found?.map((a) => a.id), ['host-prod']);
    });

    test('a read-only grant changes nothing: the editor reading shop may not write it', async () => {
      const peer = await logIn(new ScramClient('admin', 'ed', 'ed-password'));
      const set = await ask(peer, { op: 'set', env: 'shop', key: 'k', value: '1' });
      assert.deepEqual(set.ok ? 'answered' : set.code, WireError.FORBIDDEN);
      assert.ok((await ask(peer, { op: 'set', env: 'team/a', key: 'k', value: '1' })).ok);
    });

    test('user list shows each account\'s read grants; a viewer made without grants reads nothing', async () => {
      await mem.account('blind', 'viewer');
      const admin = await logIn(new ScramClient('admin', 'admin', ADMIN_PASSWORD));
      const users = (await result(admin, { op: 'user.list' })).users;
      assert.deepEqual(users.filter((u) => u.name !== 'admin').map((u) => [u.name, u.role, u.envs, u.reads]).sort(), [
        ['blind', 'viewer', [], []],
        ['ed', 'editor', ['team/*'], ['shop']],
        ['vic', 'viewer', ['shop'], []],
      ]);
      const blind = await logIn(new ScramClient('admin', 'blind', 'blind-password'));
      assert.deepEqual((await result(blind, { op: 'env.list' })).envs, []);
      await waitFor('audited', async () => {
        const entries = (await result(admin, { op: 'audit', user: 'vic', limit: 100 })).entries;
        return entries.some((e) => e.action === 'get' && e.env === 'prod' && e.result === 'refused' && e.code === 'FORBIDDEN');
      });
    });
  });
}

describe('the admin tool', () => {
  const io = { newPassword: () => Promise.resolve('a-password'), passwordIterations: 4096, account: 'admin' };

  test('user add takes grants and read-only grants (--read, repeated or separated by commas)', async () => {
    const { request } = await prepareCommand(['user', 'add', 'ed', 'editor', 'shop', 'team/*', '--read', 'prod,stage/*', '--read', 'qa'], io);
    assert.deepEqual({ ...request, verifier: undefined }, { op: 'user.add', name: 'ed', role: 'editor', envs: ['shop', 'team/*'], reads: ['prod', 'stage/*', 'qa'], verifier: undefined });
    const viewer = (await prepareCommand(['user', 'add', 'vic', 'viewer', 'shop'], io)).request;
    assert.deepEqual([viewer.op === 'user.add' && viewer.envs, 'reads' in viewer], [['shop'], false]);
  });

  test('user list shows what each account changes and reads', () => {
    const users: ResultOf['user.list']['users'] = [
      { name: 'admin', role: 'admin', envs: ['*'], reads: ['*'], created: 0 },
      { name: 'ed', role: 'editor', envs: ['shop'], reads: ['prod'], created: 0 },
      { name: 'vic', role: 'viewer', envs: ['shop'], reads: [], created: 0 },
      { name: 'blind', role: 'viewer', envs: [], reads: [], created: 0 },
      { name: 'old', role: 'viewer', envs: [], created: 0 },
    ];
    const rows = formatResult({ op: 'user.list' }, { users }, 'text').split('\n').slice(1).map((l) => l.trim().split(/\s{2,}/).slice(0, 4));
    assert.deepEqual(rows, [
      ['admin', 'admin', '(all)', '(all)'],
      ['ed', 'editor', 'shop', 'shop, prod'],
      ['vic', 'viewer', '-', 'shop'],
      ['blind', 'viewer', '-', '(none)'],
      ['old', 'viewer', '-', '(all)'],
    ]);
  });
});
