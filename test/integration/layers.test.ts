/**
 * Layered environments through the server, on both stores (the MySQL one against the real
 * MariaDB): the merge rules across layers, unset and del, diamonds, every refusal, one write to a
 * base with 100 dependents at one revision, peers and restarts converging, plans that write
 * nothing, and what a caller without rights on a layer is shown.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AdminRequest, EnvInfo, ResultOf } from '../../src/protocol/index.js';
import { MysqlStore } from '../../src/server/store/mysql/store.js';
import type { Store } from '../../src/server/store/types.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';
import { databaseName, dropDatabase, MYSQL_BASE } from '../support/mysql.js';
import { waitFor } from '../support/common.js';

const databases: string[] = [];
after(async () => {
  for (const db of databases) await dropDatabase(db);
});

function mysqlStore(db: string): Store {
  return new MysqlStore(`${MYSQL_BASE}/${db}`, { retainReleases: 1000 });
}

type Run = <R extends AdminRequest>(req: R, as?: string) => Promise<ResultOf[R['op']]>;

function runner(mem: MemoryServer): Run {
  return (req, as) => (as === undefined
    ? mem.server.hub.execute(req, 'alice')
    : mem.server.access.execute(req, { account: as, addr: 'test:0' })) as never;
}

async function withServer(kind: 'lmdb' | 'mysql', body: (x: Run, mem: MemoryServer) => Promise<void>, limits = {}): Promise<void> {
  let store: Store | undefined;
  if (kind === 'mysql') {
    const db = databaseName();
    databases.push(db);
    store = mysqlStore(db);
  }
  const mem = await memoryServer({ limits, ...(store === undefined ? {} : { store }) });
  try {
    await body(runner(mem), mem);
  } finally {
    await mem.close();
  }
}

async function envs(x: Run, ...names: string[]): Promise<void> {
  for (const env of names) await x({ op: 'env.add', env });
}

const revs = async (x: Run): Promise<Map<string, EnvInfo>> => new Map((await x({ op: 'env.list' })).envs.map((e) => [e.env, e]));

for (const kind of ['lmdb', 'mysql'] as const) {
  describe(`layered environments (${kind} store)`, () => {
    test('the merge and clear examples, each operand in its own layer, merge as one after another', async () => {
      await withServer(kind, async (x) => {
        await envs(x, 'l0', 'l1', 'l2');
        await x({ op: 'env.layers', env: 'l1', parents: ['l0'] });
        await x({ op: 'env.layers', env: 'l2', parents: ['l1'] });
        const get = async (env: string): Promise<string> => (await x({ op: 'get', env, key: 'k' })).value;
        await x({ op: 'set', env: 'l0', key: 'k', value: '{"db":{"hosts":["a","b"],"port":1},"mode":"x"}' });
        await x({ op: 'set', env: 'l1', key: 'k', value: '{"db":{"hosts":["b","c"],"port":2},"mode":{"on":true}}' });
        assert.equal(await get('l1'), '{"db":{"hosts":["a","b","c"],"port":2},"mode":{"on":true}}');
        await x({ op: 'set', env: 'l2', key: 'k', value: '{"db":{"hosts":{"replace":["z"]}}}' });
        assert.equal(await get('l2'), '{"db":{"hosts":["z"],"port":2},"mode":{"on":true}}');
        await x({ op: 'unset', env: 'l2', key: 'k', path: ['db', 'port'] });
        assert.equal(await get('l2'), '{"db":{"hosts":["z"]},"mode":{"on":true}}');
        await x({ op: 'set', env: 'l0', key: 'a', value: '{"xs":["p","q","r"],"keep":1}' });
        await x({ op: 'unset', env: 'l1', key: 'a', path: ['xs', 'q'] });
        assert.equal((await x({ op: 'get', env: 'l1', key: 'a' })).value, '{"xs":["p","r"],"keep":1}');
        await x({ op: 'unset', env: 'l2', key: 'a', path: ['xs', '["p","r"]'] });
        assert.equal((await x({ op: 'get', env: 'l2', key: 'a' })).value, '{"keep":1}');
        await x({ op: 'set', env: 'l0', key: 'u', value: '[{"id":1},{"id":2}]' });
        await x({ op: 'set', env: 'l1', key: 'u', value: '[{"id":1},{"id":3}]' });
        assert.equal((await x({ op: 'get', env: 'l1', key: 'u' })).value, '[{"id":1},{"id":2},{"id":3}]');
        await x({ op: 'set', env: 'l0', key: 's', value: '[1,2]' });
        await x({ op: 'set', env: 'l1', key: 's', value: '["2",3]' });
        assert.equal((await x({ op: 'get', env: 'l1', key: 's' })).value, '[1,2,"2",3]');
        await x({ op: 'set', env: 'l2', key: 's', value: 'null' });
        assert.equal((await x({ op: 'get', env: 'l2', key: 's' })).value, 'null', 'null in a higher layer stores null');
      });
    });

    test('unset hides an inherited key, even before a parent gives it; del brings the inherited value back', async () => {
      await withServer(kind, async (x) => {
        await envs(x, 'base', 'prod');
        await x({ op: 'env.layers', env: 'prod', parents: ['base'] });
        await x({ op: 'unset', env: 'prod', key: 'later', path: [] });
        await x({ op: 'set', env: 'base', key: 'later', value: '1' });
        await assert.rejects(x({ op: 'get', env: 'prod', key: 'later' }), /not found|no key|does not exist/i);
        assert.equal((await x({ op: 'get', env: 'prod', key: 'later', own: true })).value, '{"unset":[[]]}');
        await x({ op: 'set', env: 'base', key: 'k', value: '"base"' });
        await x({ op: 'set', env: 'prod', key: 'k', value: '"prod"' });
        assert.equal((await x({ op: 'get', env: 'prod', key: 'k' })).value, '"prod"');
        await x({ op: 'del', env: 'prod', key: 'k' });
        assert.equal((await x({ op: 'get', env: 'prod', key: 'k' })).value, '"base"', 'del removes the own entry: the inherited value shows');
        await assert.rejects(x({ op: 'del', env: 'prod', key: 'k' }), /no entry of its own.*unset/);
        await x({ op: 'del', env: 'prod', key: 'later' });
        assert.equal((await x({ op: 'get', env: 'prod', key: 'later' })).value, '1', 'del removes unset marks too');
      });
    });

    test('a diamond: the shared parent counts once, at its first position; env show prints the order', async () => {
      await withServer(kind, async (x) => {
        await envs(x, 'base', 'prod', 'eu', 'prod/eu');
        await x({ op: 'env.layers', env: 'prod', parents: ['base'] });
        await x({ op: 'env.layers', env: 'eu', parents: ['base'] });
        await x({ op: 'env.layers', env: 'prod/eu', parents: ['prod', 'eu'] });
        const shown = await x({ op: 'env.show', env: 'prod/eu' });
        assert.deepEqual(shown.order, ['base', 'prod', 'eu', 'prod/eu']);
        assert.deepEqual(shown.parents, ['prod', 'eu']);
        assert.deepEqual((await x({ op: 'env.show', env: 'base' })).dependents, ['eu', 'prod', 'prod/eu']);
        await x({ op: 'set', env: 'base', key: 'k', value: '{"a":"base","b":"base"}' });
        await x({ op: 'set', env: 'prod', key: 'k', value: '{"a":"prod"}' });
        await x({ op: 'set', env: 'eu', key: 'k', value: '{"a":"eu","c":"eu"}' });
        assert.equal((await x({ op: 'get', env: 'prod/eu', key: 'k' })).value, '{"a":"eu","b":"base","c":"eu"}');
        assert.deepEqual((await revs(x)).get('prod/eu')?.parents, ['prod', 'eu']);
      });
    });

    test('every refusal, with its one line, writes nothing', async () => {
      await withServer(kind, async (x) => {
        const names = Array.from({ length: 18 }, (_, i) => `p${i}`);
        await envs(x, 'base', 'prod', 'prod/eu', ...names);
        await x({ op: 'env.layers', env: 'prod', parents: ['base'] });
        await x({ op: 'env.layers', env: 'prod/eu', parents: ['prod'] });
        const before = await revs(x);
        await assert.rejects(x({ op: 'env.layers', env: 'base', parents: ['prod/eu'] }), /cycle: base → prod\/eu → prod → base|cycle: .*base.*→.*base/);
        await assert.rejects(x({ op: 'env.layers', env: 'base', parents: names.slice(0, 17) }), /too many parents.*17.*at most 16/);
        await assert.rejects(x({ op: 'env.layers', env: 'base', parents: ['nowhere'] }), /nowhere/);
        for (let i = 1; i < 10; i++) await x({ op: 'env.layers', env: `p${i}`, parents: [`p${i - 1}`] }).catch((err: Error) => assert.match(err.message, /deep/));
        await assert.rejects(x({ op: 'env.layers', env: 'p0', parents: ['p12'] }), /deep/);
        await assert.rejects(x({ op: 'env.del', env: 'base' }), /cannot delete base: prod is built on it/);
        assert.equal((await revs(x)).get('base')?.rev, before.get('base')?.rev);
        assert.equal((await revs(x)).get('prod')?.rev, before.get('prod')?.rev);
      });
    });

    test('a merged view may not pass keysPerEnv', async () => {
      await withServer(kind, async (x) => {
        await envs(x, 'base', 'prod');
        await x({ op: 'apply', env: 'base', entries: [['a', '1'], ['b', '2'], ['c', '3']], replace: false });
        await x({ op: 'apply', env: 'prod', entries: [['d', '1'], ['e', '2']], replace: false });
        await assert.rejects(x({ op: 'env.layers', env: 'prod', parents: ['base'] }), /prod would hold 5 keys, more than the limit of 4/);
        await x({ op: 'set', env: 'base', key: 'z', value: '1' });
      }, { keysPerEnv: 4 });
    });

    test('one write to base with 100 dependents: every dependent at its revision, history marked via base', async () => {
      await withServer(kind, async (x) => {
        const deps = Array.from({ length: 100 }, (_, i) => `app${String(i).padStart(3, '0')}`);
        await envs(x, 'base', ...deps);
        for (const env of deps) await x({ op: 'env.layers', env, parents: ['base'] });
        await x({ op: 'set', env: deps[7], key: 'color', value: '"own"' });
        const plan = await x({ op: 'plan', env: 'base', entries: [['color', '"blue"']], replace: false });
        assert.equal(plan.views.length, 100, 'the base and 99 dependents (one overrides the key)');
        assert.deepEqual(plan.added, ['color']);
        const unchanged = await revs(x);
        assert.equal(unchanged.get('base')?.rev, (await revs(x)).get('base')?.rev, 'a plan writes nothing');
        const w = await x({ op: 'set', env: 'base', key: 'color', value: '"blue"' });
        const after = await revs(x);
        for (const env of deps) {
          if (env === deps[7]) continue;
          assert.equal(after.get(env)?.rev, w.rev, env);
          assert.equal((await x({ op: 'get', env, key: 'color' })).value, '"blue"');
        }
        assert.notEqual(after.get(deps[7])?.rev, w.rev, 'a dependent whose view did not change gets no release');
        const history = await x({ op: 'history', env: deps[3] });
        assert.equal(history.releases[0].via, 'base');
        assert.equal(history.releases[0].rev, w.rev);
        assert.ok((await x({ op: 'history', env: deps[3], own: true })).releases.every((r) => r.via === undefined));
      });
    });

    test('get --explain: the right layer, revision and author for every leaf; "(no access)" reveals nothing', async () => {
      await withServer(kind, async (x, mem) => {
        await envs(x, 'secret', 'team', 'app');
        await x({ op: 'env.layers', env: 'team', parents: ['secret'] });
        await x({ op: 'env.layers', env: 'app', parents: ['team'] });
        const s = await x({ op: 'set', env: 'secret', key: 'k', value: '{"xs":[1],"pw":"hunter2"}' });
        const t = await x({ op: 'set', env: 'team', key: 'k', value: '{"xs":[2],"name":"t"}' }, 'admin');
        await x({ op: 'unset', env: 'app', key: 'k', path: ['pw'] });
        const a = await x({ op: 'set', env: 'app', key: 'k', value: '{"xs":[3]}' });
        const explained = await x({ op: 'get', env: 'app', key: 'k', explain: true });
        assert.equal(explained.value, '{"xs":[1,2,3],"name":"t"}');
        const byPath = new Map(explained.explain!.map((l) => [JSON.stringify(l.path), l]));
        assert.deepEqual(byPath.get('["xs",0]'), { path: ['xs', 0], layer: 'secret', rev: s.rev, author: 'alice' });
        assert.deepEqual(byPath.get('["xs",1]'), { path: ['xs', 1], layer: 'team', rev: t.rev, author: 'admin' });
        assert.equal(byPath.get('["xs",2]')?.rev, a.rev);
        assert.equal(byPath.get('["name"]')?.layer, 'team');
        assert.deepEqual(byPath.get('["pw"]'), { path: ['pw'], layer: '(unset)', hidden: ['app'] }, 'where an unset hid all there was');
        await mem.account('vic', 'viewer', ['app', 'team']);
        const limited = await x({ op: 'get', env: 'app', key: 'k', explain: true }, 'vic');
        const text = JSON.stringify(limited);
        assert.ok(!text.includes('secret') && !text.includes('hunter2'), text);
        assert.equal(limited.explain!.find((l) => JSON.stringify(l.path) === '["xs",0]')?.layer, '(no access)');
        assert.equal(limited.explain!.find((l) => JSON.stringify(l.path) === '["xs",0]')?.rev, undefined);
        assert.ok((await x({ op: 'env.show', env: 'app' }, 'vic')).order.includes('(no access)'));
        await mem.account('ed', 'editor', ['app']);
        await assert.rejects(x({ op: 'env.layers', env: 'app', parents: ['secret'] }, 'ed'), /may not read secret/);
        await assert.rejects(x({ op: 'get', env: 'secret', key: 'k', own: true }, 'vic'), /may not read/);
      });
    });

    test('rollback restores own entries and parents, and names what still differs and why', async () => {
      await withServer(kind, async (x) => {
        await envs(x, 'base', 'prod');
        await x({ op: 'set', env: 'base', key: 'k', value: '1' });
        const at = await x({ op: 'env.layers', env: 'prod', parents: ['base'] });
        await x({ op: 'set', env: 'prod', key: 'own', value: '"x"' });
        await x({ op: 'set', env: 'base', key: 'k', value: '2' });
        await x({ op: 'env.layers', env: 'prod', parents: [] });
        const rolled = await x({ op: 'rollback', env: 'prod', rev: at.rev });
        assert.deepEqual((await revs(x)).get('prod')?.parents, ['base']);
        assert.deepEqual(rolled.differs, [{ key: 'k', layer: 'base' }]);
        await assert.rejects(x({ op: 'get', env: 'prod', key: 'own' }));
        const diff = await x({ op: 'diff', env: 'prod', from: at.rev });
        assert.deepEqual(diff.changes, [['k', '1', '2']], 'diff compares merged views');
      });
    });
  });
}

describe('layered environments across servers (mysql store)', () => {
  test('a peer server and a restarted server converge to the same merged views and revisions', async () => {
    const db = databaseName();
    databases.push(db);
    const one = await memoryServer({ store: mysqlStore(db) });
    const two = await memoryServer({ store: mysqlStore(db) });
    const x1 = runner(one);
    const x2 = runner(two);
    try {
      await envs(x1, 'base', 'prod', 'eu', 'prod/eu');
      await x1({ op: 'env.layers', env: 'prod', parents: ['base'] });
      await x2({ op: 'env.layers', env: 'eu', parents: ['base'] });
      await x1({ op: 'env.layers', env: 'prod/eu', parents: ['prod', 'eu'] });
      await x2({ op: 'set', env: 'base', key: 'k', value: '{"a":[1]}' });
      await x1({ op: 'unset', env: 'eu', key: 'k', path: ['a', '1'] });
      await x2({ op: 'set', env: 'prod', key: 'k', value: '{"a":[2]}' });
      const w = await x1({ op: 'set', env: 'base', key: 'k', value: '{"a":[1],"b":true}' });
      const view = async (x: Run) => {
        const out: Record<string, unknown> = {};
        for (const e of (await x({ op: 'env.list' })).envs) out[e.env] = [e.rev, (await x({ op: 'list', env: e.env })).entries];
        return out;
      };
      await waitFor('the peer applied the last write', async () => (await x2({ op: 'env.list' })).envs.every((e) => e.env === 'base' || e.rev >= w.rev - 2) && (await x2({ op: 'env.list' })).envs.find((e) => e.env === 'base')!.rev === w.rev, 20_000);
      const seen = await view(x1);
      assert.deepEqual(await view(x2), seen);
      await two.close();
      const three = await memoryServer({ store: mysqlStore(db) });
      try {
        assert.deepEqual(await view(runner(three)), seen, 'a restarted server loads the same views');
      } finally {
        await three.close();
      }
    } finally {
      await one.close();
    }
  });
});

describe('layered environments against a caller with the lowest rights', () => {
  test('a viewer and an editor of a layer on top learn nothing of the layers under it, and cannot make the server spend without bound', async () => {
    const mem = await memoryServer();
    const x = runner(mem);
    try {
      for (const env of ['secret', 'team', 'app', 'other']) await x({ op: 'env.add', env });
      await x({ op: 'env.layers', env: 'team', parents: ['secret'] });
      const withOther = await x({ op: 'env.layers', env: 'app', parents: ['team', 'other'] });
      await x({ op: 'env.layers', env: 'app', parents: ['team'] });
      await x({ op: 'set', env: 'secret', key: 'db', value: '{"password":"S3CRET","host":"h"}' });
      await x({ op: 'set', env: 'app', key: 'db', value: '{"password":"app"}' });
      await x({ op: 'set', env: 'secret', key: 'db', value: '{"password":"S3CRET2","host":"h2"}' });
      await x({ op: 'set', env: 'secret', key: 'ghost', value: '1' });
      await x({ op: 'unset', env: 'team', key: 'ghost', path: [] });
      await mem.account('vic', 'viewer', ['app']);
      await mem.account('ed', 'editor', ['app']);
      const h = JSON.stringify(await x({ op: 'history', env: 'app' }, 'vic'));
      assert.ok(!h.includes('S3CRET') && !h.includes('secret') && !h.includes('"team"'), h);
      assert.equal((await x({ op: 'history', env: 'app', key: 'db' }, 'vic')).releases.filter((r: { via?: string }) => r.via !== undefined).length, 0);
      await assert.rejects(x({ op: 'rollback', env: 'app', rev: withOther.rev }, 'ed'), /may not read/);
      await assert.rejects(x({ op: 'get', env: 'app', key: 'ghost', explain: true }, 'vic'), /does not exist|not found/i);
      const list = JSON.stringify(await x({ op: 'env.list' }, 'vic'));
      assert.ok(!list.includes('team'), list);
      await assert.rejects(x({ op: 'unset', env: 'app', key: 'big', path: ['x'.repeat(20000)] }, 'ed'), /at most 16384 bytes/);
      await x({ op: 'set', env: 'app', key: 'arr', value: JSON.stringify(Array.from({ length: 40000 }, () => 0)) }, 'ed');
      await assert.rejects(x({ op: 'get', env: 'app', key: 'arr', explain: true }, 'vic'), /too large to explain/);
    } finally { await mem.close(); }
  });
});
