/**
 * Schemas through the server, on both stores (the MySQL one against the real MariaDB): every write
 * path checked (set, merge, clear, del, apply, rollback, env layers, a layer that breaks a dependent),
 * the introduction flow (refused over existing data, warn, enforce), versions and rollback, the
 * 2020-12 keywords and formats, hostile schemas cut off while small writes commit, the size policy,
 * and who may do what.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RESERVED_ENV_PREFIX, WireError, type AdminRequest, type ResultOf } from '../../src/protocol/index.js';
import { RequestError } from '../../src/server/errors.js';
import { MysqlStore } from '../../src/server/store/mysql/store.js';
import type { Store } from '../../src/server/store/types.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';
import { databaseName, dropDatabase, MYSQL_BASE } from '../support/mysql.js';

const databases: string[] = [];
after(async () => {
  for (const db of databases) await dropDatabase(db);
});

type Run = <R extends AdminRequest>(req: R, as?: string) => Promise<ResultOf[R['op']]>;

function runner(mem: MemoryServer): Run {
  return (req, as) => (as === undefined
    ? mem.server.access.execute(req, { account: 'admin', addr: 'test:0' })
    : mem.server.access.execute(req, { account: as, addr: 'test:0' })) as never;
}

async function withServer(kind: 'lmdb' | 'mysql', body: (x: Run, mem: MemoryServer) => Promise<void>, limits = {}): Promise<void> {
  let store: Store | undefined;
  if (kind === 'mysql') {
    const db = databaseName();
    databases.push(db);
    store = new MysqlStore(`${MYSQL_BASE}/${db}`, { retainReleases: 1000 });
  }
  const mem = await memoryServer({ limits, ...(store === undefined ? {} : { store }) });
  try {
    await body(runner(mem), mem);
  } finally {
    await mem.close();
  }
}

const POOL = JSON.stringify({ type: 'object', properties: { max: { type: 'integer', maximum: 500 }, host: { type: 'string' } }, required: ['max'] });

/** The refusal a request gets: SCHEMA_VIOLATION with its violations, or another status. */
async function refusal(p: Promise<unknown>): Promise<RequestError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RequestError, `not a RequestError: ${String(err)}`);
    return err;
  }
  assert.fail('the request was not refused');
}

async function violated(p: Promise<unknown>, env: string, key: string, keyword: string): Promise<RequestError> {
  const err = await refusal(p);
  assert.equal(err.status, WireError.SCHEMA_VIOLATION, err.message);
  assert.ok(err.details !== undefined && err.details.v.some((v) => v.env === env && v.key === key && v.keyword === keyword), `no ${env} ${key} /${keyword} in ${err.message}`);
  return err;
}

for (const kind of ['lmdb', 'mysql'] as const) {
  describe(`schemas (${kind} store)`, () => {
    test('every write path is checked: set, merge, clear, del of a required key, apply, rollback', async () => {
      await withServer(kind, async (x) => {
        await x({ op: 'env.add', env: 'prod' });
        await x({ op: 'set', env: 'prod', key: 'db.pool', value: '{"max":100}' });
        const set = await x({ op: 'schema.set', envPattern: 'prod*', keyPattern: 'db.*', schema: POOL });
        assert.equal(set.version, 1);
        assert.equal(set.mode, 'enforce');

        const err = await violated(x({ op: 'set', env: 'prod', key: 'db.pool', value: '{"max":501}' }), 'prod', 'db.pool', 'maximum');
        assert.match(err.message, /refused: prod db\.pool\.max must be <= 500 \(schema prod\* db\.\* v1, \/maximum\)/);
        assert.equal(err.details!.v[0].path, '/max');
        assert.equal(err.details!.v[0].schema, 'prod* db.*');
        await violated(x({ op: 'merge', env: 'prod', key: 'db.pool', value: '{"max":"many"}' }), 'prod', 'db.pool', 'type');
        await violated(x({ op: 'clear', env: 'prod', key: 'db.pool', path: ['max'] }), 'prod', 'db.pool', 'required');
        await violated(x({ op: 'apply', env: 'prod', entries: [['db.other', '{"host":"x"}']], replace: false }), 'prod', 'db.other', 'required');
        // A key the schema does not cover, and a valid value, are written.
        await x({ op: 'set', env: 'prod', key: 'app.name', value: '"shop"' });
        const good = await x({ op: 'merge', env: 'prod', key: 'db.pool', value: '{"max":200}' });
        assert.equal(good.changed, 1);
        assert.equal((await x({ op: 'get', env: 'prod', key: 'db.pool' })).value, '{"max":200}');

        // Rollback to values the current schema refuses is refused: a value written before the schema was tightened.
        await x({ op: 'schema.set', envPattern: 'prod*', keyPattern: 'db.*', schema: JSON.stringify({ type: 'object', properties: { max: { type: 'integer', maximum: 500 } } }) });
        const before = await x({ op: 'set', env: 'prod', key: 'db.pool', value: '{"max":300}' });
        await x({ op: 'set', env: 'prod', key: 'db.pool', value: '{"max":250}' });
        await x({ op: 'schema.set', envPattern: 'prod*', keyPattern: 'db.*', schema: JSON.stringify({ type: 'object', properties: { max: { type: 'integer', maximum: 250 } } }) });
        await violated(x({ op: 'rollback', env: 'prod', rev: before.rev }), 'prod', 'db.pool', 'maximum');
        assert.equal((await x({ op: 'get', env: 'prod', key: 'db.pool' })).value, '{"max":250}');
      });
    });

    test('layers: env layers and a change to a parent that breaks a dependent are refused, naming the dependent', async () => {
      await withServer(kind, async (x) => {
        for (const env of ['base', 'prod/eu', 'dev']) await x({ op: 'env.add', env });
        await x({ op: 'set', env: 'base', key: 'db.pool', value: '{"max":100}' });
        await x({ op: 'env.layers', env: 'prod/eu', parents: ['base'] });
        await x({ op: 'set', env: 'dev', key: 'db.pool', value: '{"max":900}' });
        await x({ op: 'schema.set', envPattern: 'prod/*', keyPattern: 'db.*', schema: POOL });
        // base itself is not covered, but its change reaches prod/eu's merged view.
        const err = await violated(x({ op: 'set', env: 'base', key: 'db.pool', value: '{"max":900}' }), 'prod/eu', 'db.pool', 'maximum');
        assert.match(err.message, /prod\/eu db\.pool\.max must be <= 500/);
        assert.equal((await x({ op: 'get', env: 'base', key: 'db.pool' })).value, '{"max":100}');
        // Building prod/eu on dev would give it dev's 900.
        await x({ op: 'env.layers', env: 'prod/eu', parents: [] });
        await violated(x({ op: 'env.layers', env: 'prod/eu', parents: ['dev'] }), 'prod/eu', 'db.pool', 'maximum');
        assert.deepEqual((await x({ op: 'env.show', env: 'prod/eu' })).parents, []);
      });
    });

    test('a whole-environment schema: required keys and relations between keys', async () => {
      await withServer(kind, async (x) => {
        await x({ op: 'env.add', env: 'prod' });
        await x({ op: 'apply', env: 'prod', entries: [['db.min', '1'], ['db.max', '5']], replace: false });
        const whole = JSON.stringify({
          type: 'object', required: ['db.min', 'db.max'],
          properties: { 'db.min': { type: 'integer' }, 'db.max': { type: 'integer' } },
          dependentRequired: { 'db.min': ['db.max'] },
        });
        await x({ op: 'schema.set', envPattern: 'prod', keyPattern: 'db.*', schema: whole, whole: true });
        const err = await violated(x({ op: 'del', env: 'prod', key: 'db.max' }), 'prod', 'db.max', 'required');
        assert.match(err.message, /schema prod db\.\* \(whole\) v1/);
        await violated(x({ op: 'set', env: 'prod', key: 'db.min', value: '"one"' }), 'prod', 'db.min', 'type');
        await x({ op: 'set', env: 'prod', key: 'db.max', value: '9' });
        assert.equal((await x({ op: 'schema.get', envPattern: 'prod', keyPattern: 'db.*', whole: true })).whole, true);
      });
    });

    test('introduction: refused over existing data, then warn (writes succeed with warnings, status counts), then enforced once fixed; history and rollback', async () => {
      await withServer(kind, async (x) => {
        await x({ op: 'env.add', env: 'prod' });
        await x({ op: 'apply', env: 'prod', entries: [['db.a', '{"max":900}'], ['db.b', '{"max":1000}'], ['db.c', '{"max":1}']], replace: false });
        const refused = await refusal(x({ op: 'schema.set', envPattern: 'prod', keyPattern: 'db.*', schema: POOL }));
        assert.equal(refused.status, WireError.SCHEMA_VIOLATION);
        assert.deepEqual(refused.details!.v.map((v) => v.key).sort(), ['db.a', 'db.b']);
        assert.match(refused.message, /fails: prod db\.a\.max must be <= 500/);
        assert.deepEqual((await x({ op: 'schema.list' })).schemas, []);

        const warned = await x({ op: 'schema.set', envPattern: 'prod', keyPattern: 'db.*', schema: POOL, mode: 'warn' });
        assert.equal(warned.mode, 'warn');
        assert.equal(warned.failing, 2);
        const write = await x({ op: 'set', env: 'prod', key: 'db.d', value: '{"max":700}' });
        assert.equal(write.changed, 1);
        assert.equal(write.warnings?.[0]?.key, 'db.d');
        assert.equal(write.warnings?.[0]?.keyword, 'maximum');
        let status = await x({ op: 'status' });
        assert.deepEqual(status.schemaWarnings, [{ schema: 'prod db.*', version: 1, failing: 3 }]);
        assert.equal((await x({ op: 'schema.list' })).schemas[0].failing, 3);

        const enforce = await refusal(x({ op: 'schema.set', envPattern: 'prod', keyPattern: 'db.*', schema: POOL, mode: 'enforce' }));
        assert.equal(enforce.status, WireError.SCHEMA_VIOLATION);
        for (const key of ['db.a', 'db.b', 'db.d']) await x({ op: 'set', env: 'prod', key, value: '{"max":10}' });
        status = await x({ op: 'status' });
        assert.equal(status.schemaWarnings, undefined);
        const enforced = await x({ op: 'schema.set', envPattern: 'prod', keyPattern: 'db.*', schema: POOL, mode: 'enforce' });
        assert.equal(enforced.version, 2);
        await violated(x({ op: 'set', env: 'prod', key: 'db.a', value: '{"max":501}' }), 'prod', 'db.a', 'maximum');

        const history = await x({ op: 'schema.history', envPattern: 'prod', keyPattern: 'db.*' });
        assert.deepEqual(history.versions.map((v) => [v.version, v.mode]), [[2, 'enforce'], [1, 'warn']]);
        const rolled = await x({ op: 'schema.rollback', envPattern: 'prod', keyPattern: 'db.*', version: 1 });
        assert.equal(rolled.version, 3);
        assert.equal(rolled.mode, 'warn');
        assert.equal((await x({ op: 'set', env: 'prod', key: 'db.a', value: '{"max":501}' })).warnings?.length, 1);
        assert.equal((await x({ op: 'schema.get', envPattern: 'prod', keyPattern: 'db.*', version: 2 })).mode, 'enforce');
        const del = await x({ op: 'schema.del', envPattern: 'prod', keyPattern: 'db.*' });
        assert.equal(del.version, 4);
        assert.equal((await x({ op: 'set', env: 'prod', key: 'db.a', value: '{"max":9999}' })).warnings, undefined);
        assert.equal((await refusal(x({ op: 'schema.get', envPattern: 'prod', keyPattern: 'db.*' }))).status, WireError.NO_SUCH_NAME);
      });
    });

    test('apply --dry-run (plan) says what the schemas would say, and writes nothing', async () => {
      await withServer(kind, async (x) => {
        await x({ op: 'env.add', env: 'prod' });
        await x({ op: 'schema.set', envPattern: 'prod', keyPattern: 'db.*', schema: POOL });
        await x({ op: 'schema.set', envPattern: 'prod', keyPattern: 'app.*', schema: '{"type":"string"}', mode: 'warn' });
        const plan = await x({ op: 'plan', env: 'prod', entries: [['db.pool', '{"max":900}'], ['app.name', '7']], replace: false });
        assert.deepEqual(plan.violations?.map((v) => [v.key, v.keyword]), [['db.pool', 'maximum']]);
        const fine = await x({ op: 'plan', env: 'prod', entries: [['db.pool', '{"max":9}'], ['app.name', '7']], replace: false });
        assert.equal(fine.violations, undefined);
        assert.deepEqual(fine.warnings?.map((v) => [v.key, v.keyword]), [['app.name', 'type']]);
        assert.equal((await x({ op: 'env.list' })).envs.find((e) => e.env === 'prod')!.keys, 0);
      });
    });

    test('an apply of 100,000 keys with one bad value is refused and names it', async () => {
      await withServer(kind, async (x) => {
        await x({ op: 'env.add', env: 'prod' });
        await x({ op: 'schema.set', envPattern: 'prod', keyPattern: 'k/*', schema: JSON.stringify({ type: 'object', properties: { n: { type: 'integer', minimum: 0 } } }) });
        const entries: [string, string][] = Array.from({ length: 100_000 }, (_, i) => [`k/${i}`, JSON.stringify({ n: i })]);
        entries[73_123] = ['k/73123', '{"n":-1}'];
        const err = await violated(x({ op: 'apply', env: 'prod', entries, replace: false }), 'prod', 'k/73123', 'minimum');
        assert.equal(err.details!.v.length, 1);
        assert.equal((await x({ op: 'env.list' })).envs.find((e) => e.env === 'prod')!.keys, 0);
        entries[73_123] = ['k/73123', '{"n":1}'];
        assert.equal((await x({ op: 'apply', env: 'prod', entries, replace: false })).changed, 100_000);
      });
    });
  });
}

describe('schemas (embedded store): what each caller is told', () => {
  test("a request id kept for another account's schema write is refused, not answered as a replay", async () => {
    await withServer('lmdb', async (_x, mem) => {
      await mem.account('root2', 'admin');
      const req = { op: 'schema.set', envPattern: 'app', keyPattern: 'a', schema: '{"type":"integer"}' } as const;
      const first = await mem.server.access.execute(req, { account: 'admin', addr: 'test:0', requestId: 'rid-1' }) as ResultOf['schema.set'];
      assert.equal(first.version, 1);
      const again = await mem.server.access.execute(req, { account: 'admin', addr: 'test:0', requestId: 'rid-1' }) as ResultOf['schema.set'];
      assert.equal(again.replayed, true);
      const other = await refusal(mem.server.access.execute({ ...req, schema: '{"type":"string"}' }, { account: 'root2', addr: 'test:0', requestId: 'rid-1' }));
      assert.equal(other.status, WireError.BAD_REQUEST);
      assert.match(other.message, /another account/);
      const del = await refusal(mem.server.access.execute({ op: 'schema.del', envPattern: 'app', keyPattern: 'a' }, { account: 'root2', addr: 'test:0', requestId: 'rid-1' }));
      assert.equal(del.status, WireError.BAD_REQUEST);
    });
  });

  test('a violation in a view the writer may not read names the schema and the rule, not the environment, key or path', async () => {
    await withServer('lmdb', async (x, mem) => {
      for (const env of ['base', 'secret/app']) await x({ op: 'env.add', env });
      await x({ op: 'set', env: 'base', key: 'db.pool', value: '{"max":1}' });
      await x({ op: 'env.layers', env: 'secret/app', parents: ['base'] });
      await x({ op: 'schema.set', envPattern: 'secret/*', keyPattern: 'db.*', schema: POOL });
      await mem.account('ed2', 'editor', ['base']);
      const err = await refusal(x({ op: 'set', env: 'base', key: 'db.pool', value: '{"max":900}' }, 'ed2'));
      assert.equal(err.status, WireError.SCHEMA_VIOLATION);
      assert.deepEqual(err.details!.v.map((v) => [v.env, v.key, v.path, v.keyword, v.schema]), [['(no access)', '', '', 'maximum', 'secret/* db.*']]);
      assert.doesNotMatch(err.message, /secret\/app|db\.pool/);
      // The size policy says as little of it.
      // base's value merges with secret/app's own into one past valueBytes: only the view ed2 may not read breaks it.
      await x({ op: 'set', env: 'base', key: 'blob', value: '{"a":"small"}' });
      await x({ op: 'set', env: 'secret/app', key: 'blob', value: JSON.stringify({ b: 'x'.repeat(200 * 1024) }), allowGrowth: true });
      const size = await refusal(x({ op: 'set', env: 'base', key: 'blob', value: JSON.stringify({ a: 'y'.repeat(100 * 1024) }), allowGrowth: true }, 'ed2'));
      assert.equal(size.status, WireError.INVALID_VALUE);
      assert.doesNotMatch(size.message, /secret|blob|\d{4,}/);
    });
  });

  test('several violations of one key are all counted; a warn-mode check that times out is a warning; del may uncover a larger value', async () => {
    await withServer('lmdb', async (x) => {
      await x({ op: 'env.add', env: 'app' });
      const many = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}`, 'x']));
      await x({ op: 'set', env: 'app', key: 'wide', value: JSON.stringify(many) });
      const strict = JSON.stringify({ type: 'object', properties: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}`, { type: 'integer' }])) });
      const err = await refusal(x({ op: 'schema.set', envPattern: 'app', keyPattern: 'wide', schema: strict }));
      assert.equal(err.details!.v.length, 20);
      assert.equal(err.details!.more, 10);
      assert.match(err.message, /not applied: 30 schema violations[\s\S]*… and 10 more/);

      await x({ op: 'schema.set', envPattern: 'app', keyPattern: 're', schema: JSON.stringify({ type: 'string', pattern: '(a+)+$' }), mode: 'warn' });
      const warned = await x({ op: 'set', env: 'app', key: 're', value: JSON.stringify(`${'a'.repeat(40)}b`) });
      assert.equal(warned.changed, 1);
      assert.equal(warned.warnings?.[0]?.keyword, 'timeout');
      const status = await x({ op: 'status' });
      assert.deepEqual(status.schemaWarnings, [{ schema: 'app re', version: 1, failing: 1 }]);

      await x({ op: 'env.add', env: 'base' });
      await x({ op: 'set', env: 'base', key: 'blob', value: JSON.stringify('x'.repeat(200_000)) });
      await x({ op: 'env.layers', env: 'app', parents: ['base'] });
      await x({ op: 'set', env: 'app', key: 'blob', value: '"small"' });
      assert.equal((await x({ op: 'del', env: 'app', key: 'blob' })).changed, 1);
    }, { schemaCheckMs: 500 });
  });
});

describe('schemas across peer servers (MySQL store)', () => {
  test('a schema set through one server checks writes through another at once, and is replicated like a release', async () => {
    const db = databaseName();
    databases.push(db);
    const one = await memoryServer({ store: new MysqlStore(`${MYSQL_BASE}/${db}`, { retainReleases: 1000 }) });
    const two = await memoryServer({ store: new MysqlStore(`${MYSQL_BASE}/${db}`, { retainReleases: 1000 }) });
    try {
      const [x1, x2] = [runner(one), runner(two)];
      await x1({ op: 'env.add', env: 'prod' });
      await x1({ op: 'schema.set', envPattern: 'prod', keyPattern: 'db.*', schema: POOL });
      // Whether or not server two has learned of it yet, its write is checked against the store's schemas under the lock.
      await violated(x2({ op: 'set', env: 'prod', key: 'db.pool', value: '{"max":501}' }), 'prod', 'db.pool', 'maximum');
      await x2({ op: 'set', env: 'prod', key: 'db.pool', value: '{"max":5}' });
      const head = one.server.hub.applied;
      await two.server.hub.catchUp(head);
      assert.equal((await x2({ op: 'schema.list' })).schemas[0]?.version, 1);
      await x2({ op: 'schema.set', envPattern: 'prod', keyPattern: 'db.*', schema: POOL, mode: 'warn' });
      await one.server.hub.catchUp(two.server.hub.applied);
      assert.equal((await x1({ op: 'schema.get', envPattern: 'prod', keyPattern: 'db.*' })).mode, 'warn');
      assert.equal((await x1({ op: 'set', env: 'prod', key: 'db.pool', value: '{"max":501}' })).warnings?.length, 1);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe('schemas (embedded store): the validator and its bounds', () => {
  test('2020-12 keywords: unevaluatedProperties, $dynamicRef; formats', async () => {
    await withServer('lmdb', async (x) => {
      await x({ op: 'env.add', env: 'app' });
      await x({
        op: 'schema.set', envPattern: 'app', keyPattern: 'strict', schema: JSON.stringify({
          type: 'object', properties: { a: { type: 'integer' } }, allOf: [{ properties: { b: { type: 'string' } } }], unevaluatedProperties: false,
        }),
      });
      await x({ op: 'set', env: 'app', key: 'strict', value: '{"a":1,"b":"x"}' });
      await violated(x({ op: 'set', env: 'app', key: 'strict', value: '{"a":1,"c":2}' }), 'app', 'strict', 'unevaluatedProperties');

      const tree = {
        $schema: 'https://json-schema.org/draft/2020-12/schema', $id: 'https://example.com/tree', $dynamicAnchor: 'node',
        type: 'object', properties: { data: true, children: { type: 'array', items: { $dynamicRef: '#node' } } },
      };
      const strictTree = {
        $id: 'https://example.com/strict-tree', $dynamicAnchor: 'node', type: 'object', $ref: 'tree', unevaluatedProperties: false, $defs: { tree },
      };
      await x({ op: 'schema.set', envPattern: 'app', keyPattern: 'tree', schema: JSON.stringify(strictTree) });
      await x({ op: 'set', env: 'app', key: 'tree', value: '{"data":1,"children":[{"data":2,"children":[]}]}' });
      // $dynamicRef resolves to the strict tree at every level: an unknown property deep down is refused.
      const deep = await violated(x({ op: 'set', env: 'app', key: 'tree', value: '{"data":1,"children":[{"data":2,"extra":true}]}' }), 'app', 'tree', 'unevaluatedProperties');
      assert.equal(deep.details!.v[0].path, '/children/0');

      await x({ op: 'schema.set', envPattern: 'app', keyPattern: 'when', schema: JSON.stringify({ type: 'string', format: 'date-time' }) });
      await x({ op: 'set', env: 'app', key: 'when', value: '"2026-12-03T10:00:00Z"' });
      await violated(x({ op: 'set', env: 'app', key: 'when', value: '"yesterday"' }), 'app', 'when', 'format');
      await x({ op: 'schema.set', envPattern: 'app', keyPattern: 'mail', schema: JSON.stringify({ type: 'string', format: 'email' }) });
      await violated(x({ op: 'set', env: 'app', key: 'mail', value: '"not an address"' }), 'app', 'mail', 'format');
    });
  });

  test('hostile schemas are refused or cut off while a small write sent meanwhile commits', async () => {
    await withServer('lmdb', async (x) => {
      await x({ op: 'env.add', env: 'app' });
      await x({ op: 'env.add', env: 'other' });
      const big = JSON.stringify({ type: 'object', description: 'x'.repeat(1024 * 1024) });
      const tooBig = await refusal(x({ op: 'schema.set', envPattern: 'app', keyPattern: '*', schema: big }));
      assert.equal(tooBig.status, WireError.INVALID_VALUE);
      assert.match(tooBig.message, /at most 65536/);
      const deep = `${'{"items":'.repeat(1000)}{}${'}'.repeat(1000)}`;
      const tooDeep = await refusal(x({ op: 'schema.set', envPattern: 'app', keyPattern: '*', schema: deep }));
      assert.match(tooDeep.message, /nested 1001 levels deep/);
      const remote = await refusal(x({ op: 'schema.set', envPattern: 'app', keyPattern: '*', schema: JSON.stringify({ $ref: 'https://example.com/s.json' }) }));
      assert.equal(remote.status, WireError.INVALID_VALUE);
      const data = await refusal(x({ op: 'schema.set', envPattern: 'app', keyPattern: '*', schema: JSON.stringify({ properties: { a: { maximum: { $data: '1/b' } } } }) }));
      assert.equal(data.status, WireError.INVALID_VALUE);
      assert.equal((await refusal(x({ op: 'schema.set', envPattern: 'app', keyPattern: '*', schema: '{"type": ' }))).status, WireError.INVALID_VALUE);
      assert.equal((await refusal(x({ op: 'schema.set', envPattern: 'app', keyPattern: '*', schema: '[1]' }))).status, WireError.INVALID_VALUE);
      // Patterns: bounded in length and stars, environment patterns in the characters of names, no control characters.
      for (const [envPattern, keyPattern] of [['a'.repeat(300), '*'], ['*a*b*c*d*e*f*g*h*i', '*'], ['prod env', '*'], ['', '*'], ['app', 'k\u001b[2J'], ['app', '']]) {
        const bad = await refusal(x({ op: 'schema.set', envPattern: envPattern, keyPattern: keyPattern, schema: '{}' }));
        assert.equal(bad.status, WireError.BAD_REQUEST, `${envPattern} ${keyPattern}`);
      }
      assert.deepEqual((await x({ op: 'schema.list' })).schemas, []);

      await x({ op: 'schema.set', envPattern: 'app', keyPattern: 're', schema: JSON.stringify({ type: 'string', pattern: '(a+)+$' }) });
      const evil = x({ op: 'set', env: 'app', key: 're', value: JSON.stringify(`${'a'.repeat(40)}b`) });
      // Sent while the check runs: a write elsewhere commits.
      const small = await x({ op: 'set', env: 'other', key: 'k', value: '1' });
      assert.equal(small.changed, 1);
      const cut = await refusal(evil);
      assert.equal(cut.status, WireError.SCHEMA_VIOLATION);
      assert.match(cut.message, /validation timed out after \d+ ms/);
      assert.equal(cut.details!.v[0].keyword, 'timeout');
      // The thread was ended and another one checks the next write.
      await x({ op: 'set', env: 'app', key: 're', value: '"aaa"' });
    }, { schemaCheckMs: 500 });
  });

  test('size policy: valueBytes, releaseBytes and growthFactor, each refusal naming size, limit and setting', async () => {
    await withServer('lmdb', async (x) => {
      await x({ op: 'env.add', env: 'app' });
      const valueBytes = await refusal(x({ op: 'set', env: 'app', key: 'v', value: JSON.stringify('x'.repeat(300 * 1024)) }));
      assert.match(valueBytes.message, /262144/);
      await x({ op: 'set', env: 'app', key: 'g', value: JSON.stringify('x'.repeat(10_000)) });
      const growth = await refusal(x({ op: 'set', env: 'app', key: 'g', value: JSON.stringify('x'.repeat(200_000)) }));
      assert.match(growth.message, /would grow from 10002 to 200002 bytes, more than 10 times \(limits\.growthFactor/);
      assert.equal((await x({ op: 'set', env: 'app', key: 'g', value: JSON.stringify('x'.repeat(200_000)), allowGrowth: true })).changed, 1);
      const entries: [string, string][] = Array.from({ length: 20 }, (_, i) => [`r${i}`, JSON.stringify('y'.repeat(100_000))]);
      const release = await refusal(x({ op: 'apply', env: 'app', entries, replace: false }));
      assert.match(release.message, /carry \d+ bytes of keys and values; the limit is 1000000 \(limits\.releaseBytes\)/);
    }, { releaseBytes: 1_000_000 });
  });

  test('an editor cannot set schemas; every account reads them; schema changes are in the audit; the schemas environment is nobody\'s', async () => {
    await withServer('lmdb', async (x, mem) => {
      await x({ op: 'env.add', env: 'app' });
      await mem.account('ed', 'editor', ['*']);
      const forbidden = await refusal(x({ op: 'schema.set', envPattern: '*', keyPattern: '*', schema: '{}' }, 'ed'));
      assert.equal(forbidden.status, WireError.FORBIDDEN);
      await x({ op: 'schema.set', envPattern: '*', keyPattern: 'a', schema: '{"type":"integer"}' });
      assert.equal((await x({ op: 'schema.list' }, 'ed')).schemas.length, 1);
      assert.equal((await refusal(x({ op: 'schema.del', envPattern: '*', keyPattern: 'a' }, 'ed'))).status, WireError.FORBIDDEN);
      await violated(x({ op: 'set', env: 'app', key: 'a', value: '"x"' }, 'ed'), 'app', 'a', 'type');
      const audit = await x({ op: 'audit', limit: 50 });
      assert.ok(audit.entries.some((e) => e.action === 'schema.set' && e.result === 'ok' && e.detail.includes('* a')));
      assert.ok(audit.entries.some((e) => e.action === 'schema.set' && e.result === 'refused' && e.actor === 'ed'));
      // The servers' own environment: never listed, never read, written or followed by name, whatever the role.
      assert.ok(!(await x({ op: 'env.list' })).envs.some((e) => e.env.startsWith(RESERVED_ENV_PREFIX)));
      const own = `${RESERVED_ENV_PREFIX}schemas`;
      for (const req of [
        { op: 'get', env: own, key: '["*","a"]' }, { op: 'set', env: own, key: 'k', value: '1' }, { op: 'history', env: own }, { op: 'list', env: own },
        { op: 'env.del', env: own }, { op: 'rollback', env: own, rev: 1 }, { op: 'watch', env: own },
        { op: 'env.layers', env: 'app', parents: [own] }, { op: 'status', env: own },
      ] as AdminRequest[]) {
        for (const as of ['admin', 'ed']) assert.equal((await refusal(x(req, as))).status, WireError.ENV_NOT_FOUND, `${req.op} as ${as}`);
      }
      assert.equal((await refusal(x({ op: 'env.add', env: own }))).status, WireError.INVALID_VALUE);
      assert.ok(mem.server.hub.state.has(`${RESERVED_ENV_PREFIX}schemas`));
    });
  });
});

describe('schemas (embedded store): large data', () => {
  test('an enforced schema set over an environment of 200,000 covered keys checks them all', async () => {
    await withServer('lmdb', async (x) => {
      await x({ op: 'env.add', env: 'big' });
      for (let part = 0; part < 2; part++) {
        const entries: [string, string][] = Array.from({ length: 100_000 }, (_, i) => [`k/${part}/${i}`, String(i)]);
        await x({ op: 'apply', env: 'big', entries, replace: false });
      }
      assert.equal((await x({ op: 'schema.set', envPattern: 'big', keyPattern: 'k/*', schema: '{"type":"integer","minimum":0}' })).version, 1);
      const err = await refusal(x({ op: 'schema.set', envPattern: 'big', keyPattern: 'k/*', schema: '{"type":"integer","maximum":10}' }));
      assert.equal(err.status, WireError.SCHEMA_VIOLATION);
      assert.match(err.message, /not applied: 199978 schema violations/);
    });
  });

  test('history and every version of a schema of 62 KB, across pages of history that end inside a release', async () => {
    await withServer('lmdb', async (x) => {
      for (let i = 1; i <= 150; i++) await x({ op: 'schema.set', envPattern: 'h', keyPattern: 'k', schema: JSON.stringify({ description: `${i}`.padEnd(62_000, 'x') }) });
      const versions = (await x({ op: 'schema.history', envPattern: 'h', keyPattern: 'k' })).versions.map((v) => v.version);
      // The newest within answerBytes of schema text, none skipped.
      assert.deepEqual(versions, Array.from({ length: versions.length }, (_, i) => 150 - i));
      for (let v = 1; v <= 150; v++) assert.equal((await x({ op: 'schema.get', envPattern: 'h', keyPattern: 'k', version: v })).version, v);
    });
  });
});
