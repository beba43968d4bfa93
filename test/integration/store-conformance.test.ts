import { after, before, describe, test } from 'node:test';
import { RequestReplay } from '../../src/server/store/requests.js';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { CHAIN_GENESIS, LocalErrorCode, VitefaError, WireError, type KeyChange } from '../../src/protocol/index.js';
import { chainOfStored } from '../../src/server/store/changes.js';
import { RequestError } from '../../src/server/errors.js';
import { createStore } from '../../src/server/store/create.js';
import { LmdbStore } from '../../src/server/store/lmdb/store.js';
import { LATEST_SCHEMA, MIGRATIONS } from '../../src/server/store/mysql/migrations.js';
import { MysqlStore } from '../../src/server/store/mysql/store.js';
import { promised } from '../../src/promised.js';
import type { CommitMeta, CommitPlan, HistoryPageQuery, Planner, Store, StoredRelease } from '../../src/server/store/types.js';

/**
 * One behaviour suite, run against the embedded LMDB store and the MySQL
 * store. The MySQL runs share one fresh database per run, so every test uses
 * its own environment names and reads revisions relative to head().
 */

const MYSQL_BASE = (process.env.VITEFA_TEST_MYSQL ?? 'mysql://root@127.0.0.1:3306').replace(/\/+$/, '');
const RUN_ID = crypto.randomBytes(4).toString('hex');
const RETAIN = 1000;

interface Place {
  /** A new store on this place's data (after closing one, this reopens the same data). */
  make(retainReleases: number): Store;
  dispose(): Promise<void>;
}

interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  place(): Place;
}

const lmdbBackend: Backend = {
  name: 'LmdbStore',
  setup: async () => {},
  teardown: async () => {},
  place() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitefa-conf-'));
    return {
      make: (retainReleases) => new LmdbStore(dir, { retainReleases }),
      dispose: () => promised(() => fs.rmSync(dir, { recursive: true, force: true })),
    };
  },
};

/** Databases this run created, dropped in the after hook. */
const databases: string[] = [];

function newDatabase(suffix = ''): string {
  const name = `vitefa_t_${RUN_ID}${suffix}`;
  databases.push(name);
  return name;
}

async function admin(): Promise<mysql.Connection> {
  const url = new URL(MYSQL_BASE);
  return mysql.createConnection({
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 3306 : Number(url.port),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    connectTimeout: 5_000,
  });
}

const SHARED_DB = newDatabase();

const mysqlBackend: Backend = {
  name: 'MysqlStore',
  async setup() {
    let conn: mysql.Connection;
    try {
      conn = await admin();
    } catch (err) {
      throw new Error(
        `MySQL at ${MYSQL_BASE.replace(/(\/\/[^:@/]*):[^@/]*@/, '$1:***@')} is unreachable (${(err as Error).message || (err as { code?: string }).code}): ` +
          'the MySQL conformance tests need it; start MariaDB/MySQL or point VITEFA_TEST_MYSQL at one',
        { cause: err },
      );
    }
    await conn.end();
  },
  async teardown() {
    const conn = await admin();
    try {
      for (const db of databases) await conn.query(`DROP DATABASE IF EXISTS ${conn.escapeId(db)}`);
    } finally {
      await conn.end();
    }
  },
  place() {
    return {
      make: (retainReleases) => new MysqlStore(`${MYSQL_BASE}/${SHARED_DB}`, { retainReleases }),
      dispose: async () => {},
    };
  },
};

let envCounter = 0;

interface Ctx {
  /** Opens a new store on this test's data (closed after the test). */
  open(retainReleases?: number): Promise<Store>;
  /** An environment name no other test uses. */
  env(label: string): string;
}

async function withCtx(backend: Backend, fn: (ctx: Ctx) => Promise<void>): Promise<void> {
  const place = backend.place();
  const opened: Store[] = [];
  const ctx: Ctx = {
    async open(retainReleases = RETAIN) {
      const store = place.make(retainReleases);
      opened.push(store);
      await store.open();
      return store;
    },
    env: (label) => `${label}-${RUN_ID}-${++envCounter}`,
  };
  try {
    await fn(ctx);
  } finally {
    for (const store of opened) await store.close();
    await place.dispose();
  }
}

const meta = (op = 'set', author = 'tester'): CommitMeta => ({ author, op, time: 1_700_000_000_000 });
const sets = (...changes: [string, string | null][]): Planner => () => Promise.resolve(changes);

/** A predicate for assert.rejects: a RequestError with this wire status. */
function withStatus(status: WireError, text?: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof RequestError, `expected a RequestError, got ${String(err)}`);
    assert.equal(err.status, status, `status of: ${err.message}`);
    if (text !== undefined) assert.ok(err.message.includes(text), `message ${JSON.stringify(err.message)} should include ${text}`);
    return true;
  };
}

async function valuesOf(store: Store, env: string): Promise<Record<string, string> | undefined> {
  const state = (await store.loadAll()).find((e) => e.env === env);
  return state === undefined ? undefined : Object.fromEntries([...state.values].sort());
}

const revs = (releases: StoredRelease[]): number[] => releases.map((r) => r.rev);

/** Bounds no release of these tests reaches: a history page then holds whole releases, as many as `limit` asks. */
const WHOLE = 1 << 30;

/** Releases of `env`, newest first, read whole through the page the server answers `history` from. */
async function history(store: Store, env: string, query: Omit<HistoryPageQuery, 'elideAbove' | 'maxBytes'>): Promise<StoredRelease[]> {
  const page = await store.historyPage(env, { ...query, elideAbove: WHOLE, maxBytes: WHOLE });
  assert.equal(page.next, undefined, 'a page of whole releases ends with the history or the limit');
  return page.releases;
}

function conformance(backend: Backend): void {
  describe(`store conformance: ${backend.name}`, () => {
    before(() => backend.setup());
    after(() => backend.teardown());
    const it = (name: string, fn: (ctx: Ctx) => Promise<void>): void => {
      test(name, () => withCtx(backend, fn));
    };

    it('createEnv allocates consecutive revisions and refuses a duplicate', async (ctx) => {
      const store = await ctx.open();
      const [a, b] = [ctx.env('a'), ctx.env('b')];
      const h0 = await store.head();
      const ra = await store.createEnv(a, meta('env.add', 'alice'));
      const bare = { env: a, rev: h0 + 1, prev: 0, time: 1_700_000_000_000, author: 'alice', op: 'env.add', changes: [] };
      // The chain starts afresh with each environment.
      assert.deepEqual(ra, { ...bare, chain: chainOfStored(CHAIN_GENESIS, bare) });
      const rb = await store.createEnv(b, meta('env.add'));
      assert.equal(rb.rev, h0 + 2);
      assert.equal(await store.head(), h0 + 2);
      await assert.rejects(store.createEnv(a, meta('env.add')), withStatus(WireError.ENV_EXISTS, a));
      assert.equal(await store.head(), h0 + 2, 'a refused create allocates nothing');
      assert.deepEqual(await valuesOf(store, a), {});
    });

    it('has a store id, and rows a peer proves it reads this store by', async (ctx) => {
      const store = await ctx.open();
      const id = await store.identity.id();
      assert.match(id, /^[0-9a-f]{16}$/);
      assert.equal(await store.identity.id(), id, 'the id stays');
      const one = await store.identity.challenge();
      const two = await store.identity.challenge();
      assert.notEqual(one.key, two.key);
      assert.deepEqual(await store.identity.answer(one.key), one.secret);
      assert.deepEqual(await store.identity.answer(two.key), two.secret);
      assert.equal(await store.identity.answer('no-such-row'), undefined);
    });

    it('adopting gives the store a new id and forgets the other servers and their rows', async (ctx) => {
      const store = await ctx.open();
      const before = await store.identity.id();
      const row = { addrs: ['127.0.0.1:1'], peer: '127.0.0.1:2', state: 'alive', agents: 0, head: 0, heartbeat: Date.now(), started: Date.now() };
      await store.members.register({ ...row, id: 'srv-old' });
      await store.members.register({ ...row, id: 'srv-me' });
      const challenge = await store.identity.challenge();
      const { before: was, after } = await store.identity.adopt('srv-me');
      assert.equal(was, before);
      assert.notEqual(after, before);
      assert.equal(await store.identity.id(), after);
      assert.deepEqual((await store.members.list()).map((m) => m.id), ['srv-me']);
      assert.equal(await store.identity.answer(challenge.key), undefined);
    });

    it('commit sets and deletes keys, recording before and after', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('e');
      const created = await store.createEnv(env, meta('env.add'));
      const r1 = await store.commit(env, meta('apply', 'bob'), sets(['a', '1'], ['b', '"two"']));
      const bare1 = {
        env, rev: created.rev + 1, prev: created.rev, time: 1_700_000_000_000, author: 'bob', op: 'apply',
        changes: [['a', null, '1'], ['b', null, '"two"']] as KeyChange[],
      };
      assert.deepEqual(r1, { ...bare1, chain: chainOfStored(created.chain!, bare1) });
      const r2 = await store.commit(env, meta(), sets(['a', null], ['b', '3'], ['c', '{"x":[1]}']));
      assert.equal(r2?.prev, r1?.rev);
      assert.equal(r2?.chain, chainOfStored(r1.chain, r2), 'each release chains to the one before');
      assert.deepEqual((await store.loadAll()).find((e) => e.env === env)?.chain, r2?.chain, 'the environment ends at its last chain value');
      assert.deepEqual((await store.releasesSince(created.rev - 1, 10)).filter((r) => r.env === env).map((r) => r.chain), [created.chain, r1.chain, r2.chain]);
      assert.deepEqual(r2?.changes, [['a', '1', null], ['b', '"two"', '3'], ['c', null, '{"x":[1]}']]);
      assert.deepEqual(await valuesOf(store, env), { b: '3', c: '{"x":[1]}' });
      assert.deepEqual((await store.listEnvs()).find((e) => e.env === env), { env, rev: r2.rev, keys: 2 });
    });

    it('a commit that changes nothing returns null and does not advance head', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('e');
      await store.createEnv(env, meta('env.add'));
      const r1 = await store.commit(env, meta(), sets(['a', '1']));
      const h = await store.head();
      assert.equal(await store.commit(env, meta(), sets()), null);
      assert.equal(await store.commit(env, meta(), sets(['a', '1'])), null, 'same value');
      assert.equal(await store.commit(env, meta(), sets(['gone', null])), null, 'deleting a missing key');
      assert.equal(await store.commit(env, meta(), sets(['a', '2'], ['a', '1'])), null, 'last value of a key wins');
      assert.equal(await store.head(), h);
      assert.deepEqual(revs(await history(store, env, { limit: 10 })), [r1!.rev, r1!.rev - 1]);
      const r2 = await store.commit(env, meta(), sets(['a', '1'], ['a', '5']));
      assert.deepEqual(r2?.changes, [['a', '1', '5']]);
      assert.equal(r2?.rev, h + 1);
    });

    it('the planner sees current values; its error aborts the commit with nothing written', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('e');
      await store.createEnv(env, meta('env.add'));
      const r1 = await store.commit(env, meta(), sets(['a', '1'], ['b', '2']));
      let seen: unknown;
      const r2 = await store.commit(env, meta(), async (view) => {
        seen = { env: view.env, rev: view.rev, a: await view.get('a'), z: await view.get('z'), all: Object.fromEntries(await view.entries()) };
        return [['a', String(Number(await view.get('a')) + 1)]];
      });
      assert.deepEqual(seen, { env, rev: r1!.rev, a: '1', z: undefined, all: { a: '1', b: '2' } });
      assert.deepEqual(r2?.changes, [['a', '1', '2']]);
      const h = await store.head();
      const boom = new Error('planner says no');
      await assert.rejects(store.commit(env, meta(), async (view) => {
        await view.get('a');
        throw boom;
      }), (err) => err === boom);
      const refused = new RequestError(WireError.KEY_NOT_FOUND, 'key q does not exist');
      await assert.rejects(store.commit(env, meta(), () => Promise.reject(refused)), (err) => err === refused);
      assert.equal(await store.head(), h);
      assert.deepEqual(await valuesOf(store, env), { a: '2', b: '2' });
      assert.equal((await history(store, env, { limit: 10 })).length, 3);
      let called = false;
      await assert.rejects(
        store.commit(ctx.env('missing'), meta(), () => { called = true; return Promise.resolve([['a', '1']]); }),
        withStatus(WireError.ENV_NOT_FOUND),
      );
      assert.equal(called, false, 'no planner for a missing environment');
    });

    it('keys and values are stored byte-exact', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('e');
      await store.createEnv(env, meta('env.add'));
      const big = JSON.stringify('x'.repeat(300_000) + 'é€😀');
      const values: Record<string, string> = {
        a: '"a"', 'a ': '"a space"', A: '"upper"', é: '"e acute"', e: '"e"', 'k/😀.y': '"emoji 😀"', big, quote: '"\\"\'\\\\"',
      };
      await store.commit(env, meta(), sets(...Object.entries(values)));
      assert.deepEqual(await valuesOf(store, env), Object.fromEntries(Object.entries(values).sort()));
      assert.equal((await store.listEnvs()).find((e) => e.env === env)?.keys, 8);
      const r = await store.commit(env, meta(), sets(['a ', null]));
      assert.deepEqual(r?.changes, [['a ', '"a space"', null]]);
      assert.equal((await valuesOf(store, env))?.a, '"a"');
      const [last] = await history(store, env, { limit: 1, before: r.rev });
      assert.equal(last?.changes.find(([k]) => k === 'big')?.[2], big);
    });

    it('a key starting with a character outside the BMP is listed, counted and dropped', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('e');
      await store.createEnv(env, meta('env.add'));
      await store.commit(env, meta(), sets(['😀', '1'], ['a', '2']));
      assert.deepEqual(await valuesOf(store, env), { a: '2', '😀': '1' });
      assert.equal((await store.listEnvs()).find((e) => e.env === env)?.keys, 2);
      await store.commit(env, meta(), async (view) => {
        assert.deepEqual(Object.fromEntries(await view.entries()), { a: '2', '😀': '1' });
        return [];
      });
      const drop = await store.dropEnv(env, meta('env.del'));
      assert.deepEqual(drop.changes, [['a', '2', null], ['😀', '1', null]]);
      await store.createEnv(env, meta('env.add'));
      assert.deepEqual(await valuesOf(store, env), {});
      const next = await store.commit(env, meta(), sets(['😀', '3']));
      assert.deepEqual(next?.changes, [['😀', null, '3']], 'the value of the dropped incarnation is gone');
    });

    it('head() increases strictly across environments', async (ctx) => {
      const store = await ctx.open();
      const [a, b] = [ctx.env('a'), ctx.env('b')];
      let head = await store.head();
      const step = async (release: Promise<StoredRelease | null>): Promise<void> => {
        const r = await release;
        assert.equal(r?.rev, head + 1);
        head = r.rev;
        assert.equal(await store.head(), head);
      };
      await step(store.createEnv(a, meta('env.add')));
      await step(store.createEnv(b, meta('env.add')));
      for (let i = 0; i < 4; i++) {
        await step(store.commit(a, meta(), sets(['k', String(i)])));
        await step(store.commit(b, meta(), sets(['k', String(i)])));
      }
      await step(store.dropEnv(b, meta('env.del')));
    });

    it('loadAll and listEnvs show every live environment with its values and key count', async (ctx) => {
      const store = await ctx.open();
      const [a, b, c] = [ctx.env('a'), ctx.env('b'), ctx.env('c')];
      for (const env of [a, b, c]) await store.createEnv(env, meta('env.add'));
      const ra = await store.commit(a, meta(), sets(['x', '1'], ['y', '2'], ['z', '3']));
      const rb = await store.commit(b, meta(), sets(['x', '9']));
      await store.dropEnv(c, meta('env.del'));
      const mine = new Set([a, b, c]);
      const all = (await store.loadAll()).filter((e) => mine.has(e.env)).sort((p, q) => (p.env < q.env ? -1 : 1));
      assert.deepEqual(all.map((e) => ({ env: e.env, rev: e.rev, values: Object.fromEntries(e.values) })), [
        { env: a, rev: ra!.rev, values: { x: '1', y: '2', z: '3' } },
        { env: b, rev: rb!.rev, values: { x: '9' } },
      ]);
      const listed = (await store.listEnvs()).filter((e) => mine.has(e.env)).sort((p, q) => (p.env < q.env ? -1 : 1));
      assert.deepEqual(listed, [{ env: a, rev: ra!.rev, keys: 3 }, { env: b, rev: rb!.rev, keys: 1 }]);
    });

    it('history lists releases newest first, by key, before a revision, up to a limit', async (ctx) => {
      const store = await ctx.open();
      const [env, other] = [ctx.env('e'), ctx.env('o')];
      const c = await store.createEnv(env, meta('env.add'));
      await store.createEnv(other, meta('env.add'));
      const r1 = (await store.commit(env, meta(), sets(['a', '1'], ['b', '1'])))!;
      await store.commit(other, meta(), sets(['a', '7']));
      const r2 = (await store.commit(env, meta(), sets(['b', '2'])))!;
      const r3 = (await store.commit(env, meta(), sets(['a', '3'], ['c', '3'])))!;
      assert.deepEqual(await history(store, env, { limit: 10 }), [r3, r2, r1, c]);
      assert.deepEqual(revs(await history(store, env, { limit: 2 })), [r3.rev, r2.rev]);
      assert.deepEqual(await history(store, env, { limit: 0 }), []);
      assert.deepEqual(revs(await history(store, env, { limit: 10, before: r3.rev })), [r2.rev, r1.rev, c.rev]);
      assert.deepEqual(revs(await history(store, env, { limit: 1, before: r2.rev })), [r1.rev]);
      const byKey = await history(store, env, { limit: 10, key: 'a' });
      assert.deepEqual(byKey.map((r) => [r.rev, r.changes]), [[r3.rev, [['a', '1', '3']]], [r1.rev, [['a', null, '1']]]]);
      assert.deepEqual(revs(await history(store, env, { limit: 1, key: 'a' })), [r3.rev]);
      assert.deepEqual(revs(await history(store, env, { limit: 10, key: 'a', before: r3.rev })), [r1.rev]);
      assert.deepEqual(await history(store, env, { limit: 10, key: 'nope' }), []);
      await assert.rejects(history(store, ctx.env('missing'), { limit: 10 }), withStatus(WireError.ENV_NOT_FOUND));
    });

    it('releasesBetween returns from < rev <= to ascending and refuses revisions it does not hold', async (ctx) => {
      const store = await ctx.open();
      const [env, other] = [ctx.env('e'), ctx.env('o')];
      const c = await store.createEnv(env, meta('env.add'));
      await store.createEnv(other, meta('env.add'));
      const r1 = (await store.commit(env, meta(), sets(['a', '1'])))!;
      await store.commit(other, meta(), sets(['a', '1']));
      const r2 = (await store.commit(env, meta(), sets(['a', '2'])))!;
      const head = await store.head();
      assert.deepEqual(await store.releasesBetween(env, 0, head), [c, r1, r2]);
      assert.deepEqual(await store.releasesBetween(env, c.rev, r2.rev), [r1, r2]);
      assert.deepEqual(await store.releasesBetween(env, r1.rev, r2.rev - 1), []);
      assert.deepEqual(await store.releasesBetween(env, r2.rev, r2.rev), []);
      assert.deepEqual(await store.releasesBetween(env, head, head), []);
      await assert.rejects(store.releasesBetween(env, 0, head + 1), withStatus(WireError.REVISION_NOT_FOUND, `revision ${head + 1} of ${env}`));
      await assert.rejects(store.releasesBetween(env, head + 1, head + 1), withStatus(WireError.REVISION_NOT_FOUND));
      await assert.rejects(store.releasesBetween(ctx.env('missing'), 0, head), withStatus(WireError.ENV_NOT_FOUND));
    });

    it('the view lists releasesAfter a revision for rollbacks, and the revision the environment began at', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('e');
      const c = await store.createEnv(env, meta('env.add'));
      const r1 = (await store.commit(env, meta(), sets(['a', '1'])))!;
      const r2 = (await store.commit(env, meta(), sets(['a', '2'], ['b', '2'])))!;
      await store.createEnv(ctx.env('later'), meta('env.add'));
      let seen: StoredRelease[][] = [];
      let began = -1;
      const result = await store.commit(env, meta('rollback'), async (view) => {
        seen = [await view.releasesAfter(r1.rev), await view.releasesAfter(0), await view.releasesAfter(r2.rev)];
        began = view.created;
        return [];
      });
      assert.equal(result, null);
      assert.deepEqual(seen, [[r2], [c, r1, r2], []]);
      assert.equal(began, c.rev);
      // Undo everything after r1, as a rollback does.
      const undo = await store.commit(env, meta('rollback'), async (view) => {
        const after = await view.releasesAfter(r1.rev);
        return after.reverse().flatMap((r) => r.changes.map(([k, before]): [string, string | null] => [k, before]));
      });
      assert.deepEqual(undo?.changes, [['a', '2', '1'], ['b', '2', null]]);
    });

    it('a write with a request id committed before is not made again: the first one\'s result comes back, also for a no-op and across operations', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('e');
      const prefix = ctx.env('rid');
      const id = (name: string) => `${prefix}-${name}`;
      const withId = (name: string, op = 'set') => ({ ...meta(op), requestId: id(name) });
      const created = await store.createEnv(env, withId('create', 'env.add'));
      await assert.rejects(store.createEnv(env, withId('create', 'env.add')), (err: unknown) => err instanceof RequestReplay && err.record.rev === created.rev && err.record.env === env);
      const first = (await store.commit(env, withId('one'), sets(['a', '1'])))!;
      let planned = 0;
      const again = store.commit(env, withId('one'), () => (planned++, Promise.resolve([['a', '2']])));
      await assert.rejects(again, (err: unknown) => err instanceof RequestReplay && err.record.rev === first.rev && err.record.changed === 1);
      assert.equal(planned, 0, 'the retry was not planned');
      // A write that changed nothing keeps its id: its retry changes nothing, even after the value moved.
      assert.equal(await store.commit(env, withId('noop'), sets(['a', '1'])), null);
      const moved = (await store.commit(env, meta(), sets(['a', '3'])))!;
      await assert.rejects(store.commit(env, withId('noop'), sets(['a', '1'])), (err: unknown) => err instanceof RequestReplay && err.record.rev === first.rev && err.record.changed === 0);
      const kept = await history(store, env, { limit: 10 });
      assert.deepEqual(kept.map((r) => r.rev), [moved.rev, first.rev, created.rev], 'one release per request');
      const dropped = await store.dropEnv(env, withId('drop', 'env.del'));
      await assert.rejects(store.dropEnv(env, withId('drop', 'env.del')), (err: unknown) => err instanceof RequestReplay && err.record.rev === dropped.rev);
    });

    it('a kept request id keeps whose request it was: the account, the operation and the request\'s digest', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('who');
      await store.createEnv(env, meta('env.add'));
      const rid = `${ctx.env('rid')}-who`;
      const digest = 'ab'.repeat(32);
      const first = (await store.commit(env, { ...meta('merge', 'ed'), requestId: rid, requestDigest: digest }, sets(['a', '1'])))!;
      // Whoever sends it again, the store answers with the record; the hub decides whether it is a retry.
      await assert.rejects(store.commit(env, { ...meta('set', 'admin'), requestId: rid, requestDigest: 'cd'.repeat(32) }, sets(['a', '2'])), (err: unknown) => {
        assert.ok(err instanceof RequestReplay);
        assert.deepEqual({ ...err.record, time: 0 }, { env, rev: first.rev, changed: 1, time: 0, author: 'ed', op: 'merge', digest });
        return true;
      });
    });

    it('a history page leaves large values out by size and hash, stops at its bytes, and says where to go on', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('h');
      await store.createEnv(env, meta('env.add'));
      const big = JSON.stringify('x'.repeat(5000));
      const r1 = (await store.commit(env, meta(), sets(['a', big], ['b', '1'])))!;
      const r2 = (await store.commit(env, meta(), sets(['a', '2'], ['c', JSON.stringify('y'.repeat(300))])))!;
      const r3 = (await store.commit(env, meta(), sets(['d', '3'])))!;
      const sha = crypto.createHash('sha256').update(big).digest('hex').slice(0, 16);

      const all = await store.historyPage(env, { limit: 10, elideAbove: 1000, maxBytes: 1 << 20 });
      assert.equal(all.next, undefined);
      assert.deepEqual(all.releases.map((r) => r.rev), [r3.rev, r2.rev, r1.rev, r1.rev - 1]);
      const [, two, one] = all.releases;
      assert.deepEqual(one.changes, [['a', null, null], ['b', null, '1']]);
      assert.deepEqual(one.big, [[0, 2, Buffer.byteLength(big), sha]]);
      assert.deepEqual(two.changes, [['a', null, '2'], ['c', null, JSON.stringify('y'.repeat(300))]]);
      assert.deepEqual(two.big, [[0, 1, Buffer.byteLength(big), sha]]);

      // 300 bytes: r3 (a few bytes), then r2 does not fit whole: its first change only, and the rest counted.
      const page = await store.historyPage(env, { limit: 10, elideAbove: 1000, maxBytes: 300 });
      assert.deepEqual(page.releases.map((r) => [r.rev, r.changes.length, r.more]), [[r3.rev, 1, undefined], [r2.rev, 1, 1]]);
      assert.equal(page.next, r2.rev);
      const on = await store.historyPage(env, { limit: 10, elideAbove: 1000, maxBytes: 300, before: page.next });
      assert.equal(on.releases[0].rev, r1.rev);
      // The first change of a page is always given, whatever its size.
      const tiny = await store.historyPage(env, { limit: 10, elideAbove: 10_000, maxBytes: 1, before: r2.rev });
      assert.deepEqual(tiny.releases.map((r) => [r.rev, r.changes.length, r.more]), [[r1.rev, 1, 1]]);
      assert.equal(tiny.releases[0].changes[0][2], big);
      // By key: only that key's changes.
      const byKey = await store.historyPage(env, { key: 'a', limit: 10, elideAbove: 1000, maxBytes: 1 << 20 });
      assert.deepEqual(byKey.releases.map((r) => r.rev), [r2.rev, r1.rev]);

      // The same left out in a range, and fetched whole by reference.
      const between = await store.releasesBetween(env, r1.rev - 1, r3.rev, 1000);
      assert.deepEqual(between.map((r) => r.big ?? []), [[[0, 2, Buffer.byteLength(big), sha]], [[0, 1, Buffer.byteLength(big), sha]], []]);
      assert.deepEqual(await store.changeValues(env, [
        { rev: r1.rev, key: 'a', side: 2 }, { rev: r2.rev, key: 'a', side: 1 }, { rev: r2.rev, key: 'a', side: 2 }, { rev: r2.rev, key: 'nope', side: 2 },
      ]), [big, big, '2', null]);
    });

    it('retention prunes the oldest releases of an environment and moves its floor', async (ctx) => {
      const store = await ctx.open(3);
      const [env, other] = [ctx.env('e'), ctx.env('o')];
      const c = await store.createEnv(env, meta('env.add'));
      const o = await store.createEnv(other, meta('env.add'));
      const rs: StoredRelease[] = [];
      for (let i = 1; i <= 5; i++) rs.push((await store.commit(env, meta(), sets(['a', String(i)])))!);
      // Kept: the 3 newest; pruned: c, r1, r2 (floor = r2).
      assert.deepEqual(await history(store, env, { limit: 10 }), [rs[4], rs[3], rs[2]]);
      const head = await store.head();
      assert.deepEqual(await store.releasesBetween(env, rs[1].rev, head), [rs[2], rs[3], rs[4]]);
      assert.deepEqual(await store.releasesBetween(env, rs[3].rev, head), [rs[4]]);
      await assert.rejects(store.releasesBetween(env, rs[0].rev, head), withStatus(WireError.REVISION_NOT_FOUND, `revision ${rs[0].rev} of ${env}`));
      await assert.rejects(store.releasesBetween(env, 0, head), withStatus(WireError.REVISION_NOT_FOUND));
      await assert.rejects(
        store.commit(env, meta(), async (view) => (await view.releasesAfter(c.rev), [])),
        withStatus(WireError.REVISION_NOT_FOUND),
      );
      const since = revs(await store.releasesSince(c.rev - 1, 100));
      assert.deepEqual(since, [o.rev, ...rs.slice(2).map((r) => r.rev)], 'pruned releases leave the global log too');
      assert.deepEqual(await history(store, other, { limit: 10 }), [o], 'other environments keep theirs');
      assert.deepEqual(await valuesOf(store, env), { a: '5' });
    });

    it('dropEnv records the values it removes; the name can be created afresh', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('e');
      await store.createEnv(env, meta('env.add'));
      const r1 = (await store.commit(env, meta(), sets(['b', '2'], ['a', '1'])))!;
      const h0 = await store.head();
      const drop = await store.dropEnv(env, meta('env.del', 'carol'));
      const bareDrop = {
        env, rev: h0 + 1, prev: r1.rev, time: 1_700_000_000_000, author: 'carol', op: 'env.del',
        changes: [['a', '1', null], ['b', '2', null]] as KeyChange[], drop: true,
      };
      assert.deepEqual(drop, { ...bareDrop, chain: chainOfStored(r1.chain!, bareDrop) });
      assert.equal(await store.head(), h0 + 1);
      assert.equal(await valuesOf(store, env), undefined);
      assert.equal((await store.listEnvs()).some((e) => e.env === env), false);
      const missing = withStatus(WireError.ENV_NOT_FOUND, env);
      await assert.rejects(store.dropEnv(env, meta('env.del')), missing);
      await assert.rejects(store.commit(env, meta(), sets(['a', '1'])), missing);
      await assert.rejects(history(store, env, { limit: 10 }), missing);
      await assert.rejects(store.releasesBetween(env, 0, h0), missing);
      assert.deepEqual((await store.releasesSince(h0, 10)).at(-1), drop);

      const again = await store.createEnv(env, meta('env.add'));
      assert.equal(again.rev, h0 + 2);
      assert.deepEqual(await valuesOf(store, env), {});
      assert.deepEqual((await store.listEnvs()).find((e) => e.env === env), { env, rev: again.rev, keys: 0 });
      assert.deepEqual(await history(store, env, { limit: 10 }), [again], 'no release of the dropped incarnation');
      assert.deepEqual(await store.releasesBetween(env, 0, again.rev), [again], 'no release of the dropped incarnation');
      let began = -1;
      const next = await store.commit(env, meta(), (view) => {
        began = view.created;
        return Promise.resolve([['a', '3']]);
      });
      assert.equal(began, again.rev, 'the view begins at the new incarnation');
      assert.deepEqual(next?.changes, [['a', null, '3']]);
      assert.equal(next?.prev, again.rev);
    });

    it('releasesSince returns every release after a revision, across environments, in order', async (ctx) => {
      const store = await ctx.open();
      const [a, b] = [ctx.env('a'), ctx.env('b')];
      const h0 = await store.head();
      const written = [
        await store.createEnv(a, meta('env.add')),
        await store.createEnv(b, meta('env.add')),
        (await store.commit(a, meta(), sets(['x', '1'])))!,
        (await store.commit(b, meta(), sets(['y', '1'], ['z', '2'])))!,
        (await store.commit(a, meta(), sets(['x', null])))!,
        await store.dropEnv(b, meta('env.del')),
      ];
      assert.deepEqual(await store.releasesSince(h0, 100), written);
      assert.deepEqual(await store.releasesSince(h0, 2), written.slice(0, 2));
      assert.deepEqual(await store.releasesSince(h0 + 2, 3), written.slice(2, 5));
      assert.deepEqual(await store.releasesSince(h0 + 6, 100), []);
    });

    it('state survives close and reopen', async (ctx) => {
      const [env, gone] = [ctx.env('e'), ctx.env('g')];
      const first = await ctx.open();
      await first.createEnv(env, meta('env.add'));
      await first.createEnv(gone, meta('env.add'));
      await first.commit(env, meta(), sets(['a', '1'], ['b', '2']));
      await first.dropEnv(gone, meta('env.del'));
      const head = await first.head();
      const kept = await history(first, env, { limit: 10 });
      const since = await first.releasesSince(head - 4, 10);
      await first.close();

      const second = await ctx.open();
      assert.equal(await second.head(), head);
      assert.deepEqual(await valuesOf(second, env), { a: '1', b: '2' });
      assert.equal(await valuesOf(second, gone), undefined);
      assert.deepEqual(await history(second, env, { limit: 10 }), kept);
      assert.deepEqual(await second.releasesSince(head - 4, 10), since);
      const next = await second.commit(env, meta(), sets(['a', '2']));
      assert.equal(next?.rev, head + 1);
    });

    it('a closed store refuses writes with STORE_UNAVAILABLE', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('e');
      await store.createEnv(env, meta('env.add'));
      await store.close();
      await assert.rejects(store.commit(env, meta(), sets(['a', '1'])), withStatus(WireError.STORE_UNAVAILABLE));
      await assert.rejects(store.createEnv(ctx.env('f'), meta('env.add')), withStatus(WireError.STORE_UNAVAILABLE));
    });

    it('errors are RequestErrors carrying their wire status and code', async (ctx) => {
      const store = await ctx.open();
      const env = ctx.env('e');
      await store.createEnv(env, meta('env.add'));
      await assert.rejects(store.createEnv(env, meta('env.add')), (err) => {
        assert.ok(err instanceof RequestError && err instanceof VitefaError);
        assert.equal(err.status, WireError.ENV_EXISTS);
        assert.equal(err.code, 'E_ENV_EXISTS');
        return true;
      });
      await assert.rejects(store.dropEnv(ctx.env('missing'), meta('env.del')), (err) => {
        assert.ok(err instanceof RequestError);
        assert.equal(err.status, WireError.ENV_NOT_FOUND);
        assert.equal(err.code, 'E_ENV_NOT_FOUND');
        return true;
      });
      await assert.rejects(store.releasesBetween(env, 0, (await store.head()) + 5), (err) => {
        assert.ok(err instanceof RequestError);
        assert.equal(err.status, WireError.REVISION_NOT_FOUND);
        assert.equal(err.code, 'E_REVISION_NOT_FOUND');
        return true;
      });
    });
  });
}


/** The release as the store reads it back: what a commit returns, without what it keeps in memory only. */
function stored(release: StoredRelease): StoredRelease {
  const { merged: _merged, group: _group, ...rest } = release;
  return rest;
}

/** A planner committing `plan` whatever the view holds. */
const plans = (plan: CommitPlan): Planner => () => Promise.resolve(plan);

function layering(backend: Backend): void {
  describe(`layered environments: ${backend.name}`, () => {
    before(() => backend.setup());
    after(() => backend.teardown());
    const it = (name: string, fn: (ctx: Ctx) => Promise<void>): void => {
      test(name, () => withCtx(backend, fn));
    };

    /** `base` and environments built on it (their parent lists set by a release each). */
    async function built(store: Store, ctx: Ctx, labels: string[]): Promise<[string, ...string[]]> {
      const base = ctx.env('base');
      await store.createEnv(base, meta('env.add'));
      const deps = labels.map((label) => ctx.env(label));
      for (const dep of deps) {
        await store.createEnv(dep, meta('env.add'));
        await store.commit(dep, meta('env.layers'), plans({ changes: [], parents: [base] }));
      }
      return [base, ...deps];
    }

    it('a write changing the views of environments built on it makes a via release of each, at its revision', async (ctx) => {
      let store = await ctx.open();
      const [base, d1, d2, d3] = await built(store, ctx, ['d1', 'd2', 'd3']);
      const before = new Map((await store.loadAll()).map((e) => [e.env, e]));
      const own: KeyChange[] = [['a', null, '"1"'], ['b', null, '"2"']];
      const merged = new Map<string, KeyChange[]>([
        [base, own], [d1, own], [d2, [['b', null, '"2"']]], [d3, []],
      ]);
      const release = (await store.commit(base, meta('set', 'alice'), plans({ changes: [['a', '"1"'], ['b', '"2"']], merged })))!;
      const r = release.rev;
      assert.equal(await store.head(), r, 'one revision for the whole write');
      assert.deepEqual(release.changes, own);
      assert.equal(release.via, undefined);
      assert.equal(release.chain, chainOfStored(before.get(base)!.chain, release));
      const group = release.group ?? [];
      assert.deepEqual(group.map((g) => g.env), [d1, d2], 'a via release for each view changed, by name; none for d3');
      for (const via of group) {
        const prev = before.get(via.env)!;
        assert.deepEqual(
          { rev: via.rev, prev: via.prev, via: via.via, time: via.time, author: via.author, op: via.op, changes: via.changes, merged: via.merged },
          { rev: r, prev: prev.rev, via: base, time: release.time, author: 'alice', op: 'set', changes: [], merged: merged.get(via.env) },
        );
        assert.equal(via.chain, chainOfStored(prev.chain, via));
      }
      await store.close();
      store = await ctx.open();
      const loaded = new Map((await store.loadAll()).map((e) => [e.env, e]));
      for (const via of group) {
        assert.deepEqual([loaded.get(via.env)!.rev, loaded.get(via.env)!.chain, loaded.get(via.env)!.parents], [r, via.chain, [base]]);
        assert.deepEqual(Object.fromEntries(loaded.get(via.env)!.values), {}, 'its own entries are untouched');
      }
      assert.equal(loaded.get(d3)!.rev, before.get(d3)!.rev);
      // Read back: the write's release, then its via releases by name, each showing the write's changes.
      const shown = (via: StoredRelease): StoredRelease => ({ ...stored(via), changes: own });
      assert.deepEqual(await store.releasesSince(r - 1, 10), [stored(release), ...group.map(shown)]);
      assert.equal((await store.releasesSince(r - 1, 1)).length, 3, 'the limit counts own releases: a revision is never split');
      assert.deepEqual((await history(store, d1, { limit: 10 }))[0], shown(group[0]));
      assert.deepEqual(await history(store, d1, { limit: 10, key: 'a' }), [shown(group[0])].map((v) => ({ ...v, changes: [own[0]] })));
      assert.deepEqual(await history(store, d1, { limit: 10, key: 'zz' }), []);
      assert.ok(!revs(await history(store, d1, { limit: 10, own: true })).includes(r), 'own: without its via releases');
      assert.deepEqual(await store.releasesBetween(d1, before.get(d1)!.rev, r), [], 'releasesBetween gives own releases only');
      assert.deepEqual(await store.changeValues(d2, [{ rev: r, key: 'b', side: 2 }, { rev: r, key: 'a', side: 1 }, { rev: r, key: 'x', side: 2 }]), ['"2"', null, null]);
      // The next write to a dependent follows its via release.
      const next = (await store.commit(d1, meta(), sets(['c', '"3"'])))!;
      assert.deepEqual([next.prev, next.chain], [r, chainOfStored(group[0].chain!, next)]);
    });

    it('a plan naming an environment that does not exist is refused, nothing written', async (ctx) => {
      const store = await ctx.open();
      const [base] = await built(store, ctx, []);
      const head = await store.head();
      const missing = ctx.env('missing');
      await assert.rejects(
        store.commit(base, meta(), plans({ changes: [['a', '1']], merged: new Map([[missing, [['a', null, '1']]]]) })),
        (err) => err instanceof Error && err.message.includes(missing),
      );
      assert.equal(await store.head(), head);
      assert.deepEqual(await valuesOf(store, base), {});
    });

    it('a plan with a parent list sets it: releases, layout and loadAll show it', async (ctx) => {
      let store = await ctx.open();
      const [base, d] = await built(store, ctx, ['d']);
      const other = ctx.env('other');
      await store.createEnv(other, meta('env.add'));
      const set = (await history(store, d, { limit: 1 }))[0];
      assert.deepEqual([set.parents, set.changes], [[base], []]);
      assert.equal(await store.commit(d, meta('env.layers'), plans({ changes: [], parents: [base] })), null, 'the same list changes nothing');
      const layered = (await store.commit(d, meta('env.layers'), plans({ changes: [['k', '1']], parents: [other, base] })))!;
      assert.deepEqual(layered.parents, [other, base]);
      let layout = new Map<string, string[]>();
      await store.commit(base, meta(), async (view) => {
        layout = await view.layout();
        return [];
      });
      assert.deepEqual([layout.get(d), layout.get(base), layout.get(other)], [[other, base], undefined, undefined]);
      await store.close();
      store = await ctx.open();
      assert.deepEqual((await store.loadAll()).find((e) => e.env === d)?.parents, [other, base]);
      assert.deepEqual(await store.releasesBetween(d, set.rev - 1, layered.rev), [set, layered]);
      const none = (await store.commit(d, meta('env.layers'), plans({ changes: [], parents: [] })))!;
      assert.deepEqual([none.parents, none.changes], [[], []]);
      assert.deepEqual(await store.releasesBetween(d, layered.rev, none.rev), [none]);
      assert.deepEqual((await store.loadAll()).find((e) => e.env === d)?.parents ?? [], []);
      assert.equal((await store.releasesBetween(d, layered.rev - 1, layered.rev))[0].parents?.length, 2);
    });

    it('an environment others are built on is not deleted', async (ctx) => {
      const store = await ctx.open();
      const [base, d1, d2] = await built(store, ctx, ['d1', 'd2']);
      const head = await store.head();
      await assert.rejects(store.dropEnv(base, meta('env.del')), (err) => {
        withStatus(WireError.NOT_APPLICABLE)(err);
        assert.equal((err as Error).message, `cannot delete ${base}: ${d1}, ${d2} are built on it (remove it from their layers first: env layers ENV …)`);
        return true;
      });
      await store.commit(d1, meta('env.layers'), plans({ changes: [], parents: [] }));
      await assert.rejects(store.dropEnv(base, meta('env.del')), withStatus(WireError.NOT_APPLICABLE, `cannot delete ${base}: ${d2} is built on it (`));
      assert.equal(await store.head(), head + 1, 'the refusals wrote nothing');
      assert.ok((await store.loadAll()).some((e) => e.env === base));
      await store.dropEnv(d2, meta('env.del'));
      assert.equal((await store.dropEnv(base, meta('env.del'))).drop, true);
    });

    it('ownOf reads the own entries of other environments, of some keys or all', async (ctx) => {
      const store = await ctx.open();
      const [a, b, c] = [ctx.env('a'), ctx.env('b'), ctx.env('c')];
      for (const env of [a, b, c]) await store.createEnv(env, meta('env.add'));
      const marked = '!{"u":[["x"]],"v":"1"}';
      await store.commit(a, meta(), sets(['k1', '1'], ['k2', marked]));
      await store.commit(b, meta(), sets(['k2', '2'], ['k3', '3']));
      const seen: Record<string, string>[][] = [];
      await store.commit(c, meta(), async (view) => {
        for (const keys of [['k1', 'k3', 'none'], undefined, []]) {
          const own = await view.ownOf([a, b], keys);
          seen.push([a, b].map((env) => Object.fromEntries([...(own.get(env) ?? new Map<string, string>())].sort())));
        }
        return [];
      });
      assert.deepEqual(seen, [
        [{ k1: '1' }, { k3: '3' }],
        [{ k1: '1', k2: marked }, { k2: '2', k3: '3' }],
        [{}, {}],
      ]);
      assert.deepEqual(await valuesOf(store, a), { k1: '1', k2: marked }, 'own texts are stored as they are');
    });

    it('pruning a write\'s release takes its via releases with it', async (ctx) => {
      const store = await ctx.open(2);
      const [base, d] = await built(store, ctx, ['d']);
      const writes: StoredRelease[] = [];
      for (let i = 1; i <= 3; i++) {
        const change: KeyChange = ['a', i === 1 ? null : String(i - 1), String(i)];
        writes.push((await store.commit(base, meta(), plans({ changes: [['a', String(i)]], merged: new Map([[base, [change]], [d, [change]]]) })))!);
      }
      // base keeps its 2 newest releases: the via release of the first write went with it.
      assert.deepEqual(revs(await history(store, base, { limit: 10 })), [writes[2].rev, writes[1].rev]);
      const dHistory = await history(store, d, { limit: 10 });
      assert.deepEqual(dHistory.filter((r) => r.via !== undefined).map((r) => r.rev), [writes[2].rev, writes[1].rev]);
      assert.equal(dHistory.length, 4, 'and d keeps its own');
      assert.deepEqual(await store.changeValues(d, [{ rev: writes[0].rev, key: 'a', side: 2 }]), [null]);
      assert.ok(!revs(await store.releasesSince(0, 1000)).includes(writes[0].rev));
    });
  });
}

conformance(lmdbBackend);
conformance(mysqlBackend);
layering(lmdbBackend);
layering(mysqlBackend);

describe('MysqlStore only', () => {
  before(() => mysqlBackend.setup());
  after(() => mysqlBackend.teardown());
  const url = (db: string): string => `${MYSQL_BASE}/${db}`;

  test('createStore picks the store from the spec; the description hides the password', () => {
    const store = createStore('mysql://svc:p%40ss@db.example:3307/cfg', { retainReleases: 10 });
    assert.ok(store instanceof MysqlStore);
    assert.equal(store.description, 'mysql://svc@db.example:3307/cfg');
    assert.equal(new MysqlStore('mysql://root@127.0.0.1/x', { retainReleases: 1 }).description, 'mysql://root@127.0.0.1:3306/x');
    assert.ok(createStore(os.tmpdir(), { retainReleases: 10 }) instanceof LmdbStore);
    assert.throws(() => createStore('postgres://u:secret@h/db', { retainReleases: 10 }), (err) => {
      assert.ok(err instanceof VitefaError && err.code === LocalErrorCode.USAGE && !err.message.includes('secret'));
      return true;
    });
  });

  test('migrations are idempotent and safe to run by two servers at once', async () => {
    const db = newDatabase('_mig');
    const stores = [new MysqlStore(url(db), { retainReleases: 10 }), new MysqlStore(url(db), { retainReleases: 10 })];
    try {
      await Promise.all(stores.map((s) => s.open()));
      await stores[0].createEnv('e', meta('env.add'));
      await stores[0].close();
      await stores[0].open();
      const conn = await admin();
      try {
        const [rows] = await conn.query<mysql.RowDataPacket[]>(`SELECT version FROM ${conn.escapeId(db)}.vitefa_schema`);
        assert.deepEqual(rows.map((r): unknown => r.version), [LATEST_SCHEMA]);
        const [head] = await conn.query<mysql.RowDataPacket[]>(`SELECT id, rev FROM ${conn.escapeId(db)}.vitefa_head`);
        assert.deepEqual(head.map((r): unknown[] => [r.id, r.rev]), [[1, 1]]);
      } finally {
        await conn.end();
      }
      assert.equal(await stores[1].head(), 1);
      assert.deepEqual(await stores[0].listEnvs(), [{ env: 'e', rev: 1, keys: 0 }]);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  test('a database at schema 9 upgrades: what it holds reads as environments built on nothing, which can then be layered', async () => {
    const db = newDatabase('_v9');
    const conn = await admin();
    try {
      await conn.query(`CREATE DATABASE ${conn.escapeId(db)} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
      await conn.query(`USE ${conn.escapeId(db)}`);
      await conn.query('CREATE TABLE vitefa_schema (id TINYINT UNSIGNED NOT NULL PRIMARY KEY, version INT NOT NULL)');
      for (const migration of MIGRATIONS.filter((m) => m.version <= 9)) for (const sql of migration.statements) await conn.query(sql);
      await conn.query('INSERT INTO vitefa_schema (id, version) VALUES (1, 9)');
      // An environment as schema 9 kept it: created at 1, `a` set at 2.
      await conn.query('UPDATE vitefa_head SET rev = 2');
      await conn.query(`INSERT INTO vitefa_envs (name, rev, floor, kept, created, chain) VALUES ('old', 2, 0, 2, 1, 'c2')`);
      await conn.query(`INSERT INTO vitefa_values (env, k, v) VALUES ('old', 'a', '"1"')`);
      await conn.query(`INSERT INTO vitefa_releases (rev, env, prev, time, author, op, chain) VALUES (1, 'old', 0, 5, 'x', 'env.add', 'c1'), (2, 'old', 1, 6, 'x', 'set', 'c2')`);
      await conn.query(`INSERT INTO vitefa_changes (rev, seq, k, before_v, after_v) VALUES (2, 0, 'a', NULL, '"1"')`);
    } finally {
      await conn.end();
    }
    const store = new MysqlStore(url(db), { retainReleases: 10 });
    try {
      await store.open();
      assert.deepEqual(await store.loadAll(), [{ env: 'old', rev: 2, values: new Map([['a', '"1"']]), chain: 'c2' }]);
      assert.deepEqual(await store.releasesSince(0, 10), [
        { env: 'old', rev: 1, prev: 0, time: 5, author: 'x', op: 'env.add', chain: 'c1', changes: [] },
        { env: 'old', rev: 2, prev: 1, time: 6, author: 'x', op: 'set', chain: 'c2', changes: [['a', null, '"1"']] },
      ]);
      await store.createEnv('new', meta('env.add'));
      await store.commit('new', meta('env.layers'), () => Promise.resolve({ changes: [], parents: ['old'] }));
      const write = await store.commit('old', meta(), () => Promise.resolve({
        changes: [['a', '"2"']], merged: new Map([['old', [['a', '"1"', '"2"']]], ['new', [['a', '"1"', '"2"']]]]),
      }));
      assert.deepEqual(write?.group?.map((r) => [r.env, r.rev, r.via]), [['new', 5, 'old']]);
      assert.deepEqual((await store.loadAll()).map((e) => [e.env, e.rev, e.parents]), [['new', 5, ['old']], ['old', 5, undefined]]);
    } finally {
      await store.close();
    }
    const check = await admin();
    try {
      const [rows] = await check.query<mysql.RowDataPacket[]>(`SELECT version FROM ${check.escapeId(db)}.vitefa_schema`);
      assert.deepEqual(rows.map((r): unknown => r.version), [LATEST_SCHEMA]);
    } finally {
      await check.end();
    }
  });

  test('a database with a newer schema is refused', async () => {
    const db = newDatabase('_new');
    const first = new MysqlStore(url(db), { retainReleases: 10 });
    await first.open();
    await first.close();
    const conn = await admin();
    try {
      await conn.query(`UPDATE ${conn.escapeId(db)}.vitefa_schema SET version = ?`, [LATEST_SCHEMA + 1]);
    } finally {
      await conn.end();
    }
    const store = new MysqlStore(url(db), { retainReleases: 10 });
    await assert.rejects(store.open(), (err) => {
      assert.ok(err instanceof VitefaError);
      assert.equal(err.code, LocalErrorCode.SCHEMA_TOO_NEW);
      assert.equal(err.message, `database ${store.description} has schema ${LATEST_SCHEMA + 1}, newer than this build knows (${LATEST_SCHEMA})`);
      return true;
    });
    await assert.rejects(store.head(), withStatus(WireError.STORE_UNAVAILABLE), 'a refused store stays closed');
    await store.close();
  });

  test('an unreachable database is STORE_UNAVAILABLE, named without its password', async () => {
    const store = new MysqlStore('mysql://root:s3cret@127.0.0.1:1/x', { retainReleases: 10 });
    assert.equal(store.description, 'mysql://root@127.0.0.1:1/x');
    const unreachable = (err: unknown): boolean => {
      withStatus(WireError.STORE_UNAVAILABLE, 'database mysql://root@127.0.0.1:1/x is unreachable: ')(err);
      assert.ok(!(err as Error).message.includes('s3cret'));
      return true;
    };
    await assert.rejects(store.open(), unreachable);
    await assert.rejects(store.commit('e', meta(), sets(['a', '1'])), withStatus(WireError.STORE_UNAVAILABLE));
    await store.close();
  });

  test('a lost connection is STORE_UNAVAILABLE, writes nothing, and the pool recovers by itself', async () => {
    const store = new MysqlStore(url(SHARED_DB), { retainReleases: 10 });
    const env = `kill-${RUN_ID}`;
    /** Kills every connection to the shared database but the admin one, as a restart of the database would. */
    const killAll = async (): Promise<number> => {
      const conn = await admin();
      try {
        const [rows] = await conn.query<mysql.RowDataPacket[]>(
          'SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()', [SHARED_DB],
        );
        for (const row of rows) await conn.query('KILL CONNECTION ?', [row.id]).catch(() => undefined);
        return rows.length;
      } finally {
        await conn.end();
      }
    };
    /** The first calls after a kill may meet dead pooled connections: those fail as unreachable, then it works. */
    const eventually = async <T>(call: () => Promise<T>): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await call();
        } catch (err) {
          withStatus(WireError.STORE_UNAVAILABLE, `database ${store.description} is unreachable: `)(err);
          if (attempt === 5) throw err;
        }
      }
    };
    const write = (value: string): Promise<StoredRelease | null> => eventually(() => store.commit(env, meta(), sets(['a', value])));
    await store.open();
    try {
      await store.createEnv(env, meta('env.add'));
      const head = await store.head();
      // Killed while idle in the pool.
      assert.ok((await killAll()) > 0);
      assert.equal((await write('1'))?.rev, head + 1);
      // Killed in the middle of a release: the transaction is gone, nothing of it is written.
      await assert.rejects(
        store.commit(env, meta(), async (view) => {
          await view.get('a');
          await killAll();
          return [['b', '1']];
        }),
        withStatus(WireError.STORE_UNAVAILABLE, `database ${store.description} is unreachable: `),
      );
      assert.deepEqual(await eventually(() => valuesOf(store, env)), { a: '1' });
      const after = await write('2');
      assert.equal(after?.rev, head + 2, 'the aborted release left no gap');
      assert.deepEqual(revs(await store.releasesSince(head, 10)), [head + 1, head + 2]);
    } finally {
      await store.close();
    }
  });

  test('4 servers committing at once get revisions 1..N, in commit order, without lost updates', async () => {
    const db = newDatabase('_conc');
    const servers = Array.from({ length: 4 }, () => new MysqlStore(url(db), { retainReleases: 1000 }));
    const poller = new MysqlStore(url(db), { retainReleases: 1000 });
    await Promise.all([...servers, poller].map((s) => s.open()));
    try {
      const envs = ['c1', 'c2'];
      for (const env of envs) await servers[0].createEnv(env, meta('env.add'));
      // A reader polling like another server: it must never see N+1 before N.
      let polled = 0;
      let writing = true;
      const polls = (async () => {
        while (writing || polled < 202) {
          const batch = await poller.releasesSince(polled, 1000);
          for (const r of batch) assert.equal(r.rev, ++polled, 'releasesSince skipped a revision');
          if (!writing && batch.length === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
      polls.catch(() => undefined); // awaited below; this only keeps an early failure from being unhandled
      const results = await Promise.all(servers.flatMap((server, s) => Array.from({ length: 50 }, (_, i) =>
        server.commit(envs[i % 2], meta('set', `s${s}`), async (view) => {
          const n = Number((await view.get('counter')) ?? '0');
          return [['counter', String(n + 1)], [`s${s}-${i}`, String(i)]];
        }),
      ))).finally(() => { writing = false; });
      await polls;
      const total = 2 + 4 * 50;
      assert.deepEqual(results.map((r) => r!.rev).sort((a, b) => a - b), Array.from({ length: total - 2 }, (_, i) => i + 3));
      assert.equal(await poller.head(), total);
      assert.equal(polled, total);
      const all = await poller.releasesSince(0, 10_000);
      assert.deepEqual(revs(all), Array.from({ length: total }, (_, i) => i + 1));
      // Replaying the releases in order gives the stored values; every `before` is what was there.
      const replay = new Map<string, Map<string, string>>();
      const lastRev = new Map<string, number>();
      for (const r of all) {
        const values = replay.get(r.env) ?? new Map<string, string>();
        replay.set(r.env, values);
        assert.equal(r.prev, lastRev.get(r.env) ?? 0, `prev of ${r.rev}`);
        lastRev.set(r.env, r.rev);
        for (const [k, before, after] of r.changes) {
          assert.equal(values.get(k) ?? null, before, `before of ${k} in ${r.rev}`);
          if (after === null) values.delete(k);
          else values.set(k, after);
        }
      }
      const loaded = await poller.loadAll();
      assert.deepEqual(
        loaded.map((e) => [e.env, e.rev, Object.fromEntries([...e.values].sort())]),
        envs.map((env) => [env, lastRev.get(env), Object.fromEntries([...replay.get(env)!].sort())]),
      );
      for (const e of loaded) assert.equal(e.values.get('counter'), '100');
    } finally {
      for (const s of [...servers, poller]) await s.close();
    }
  });
});
