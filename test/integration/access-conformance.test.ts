/**
 * Accounts, agent tokens, audit and shared secrets: one suite against the
 * embedded LMDB store and the MySQL store (a fresh folder or database per
 * test, real MariaDB).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { open as openLmdb } from 'lmdb';
import { WireError } from '../../src/protocol/index.js';
import { RequestError } from '../../src/server/errors.js';
import { createStore } from '../../src/server/store/create.js';
import type { AccountRecord, AuditRecord, Store, TokenRecord } from '../../src/server/store/types.js';
import { MIGRATIONS } from '../../src/server/store/mysql/migrations.js';
import { databaseName, dropDatabase, MYSQL_BASE, query } from '../support/mysql.js';
import { tempDir } from '../support/common.js';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

/** A store on a fresh folder or database; `legacy` first puts accounts there as a build before read grants and identities wrote them. */
const backends: Record<string, (legacy?: object[]) => Promise<Store>> = {
  LmdbStore: async (legacy = []) => {
    const dir = tempDir('vitefa-access-');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    if (legacy.length > 0) {
      const root = openLmdb({ path: path.join(dir, 'store', 'store'), maxDbs: 16 });
      const accounts = root.openDB<object, string>({ name: 'accounts' });
      await root.transaction(() => {
        for (const a of legacy) void accounts.put((a as { name: string }).name, a);
      });
      await root.close();
    }
    return createStore(path.join(dir, 'store'), { retainReleases: 100, retainAudit: 5 });
  },
  MysqlStore: async (legacy = []) => {
    const db = databaseName();
    cleanups.push(() => dropDatabase(db));
    if (legacy.length > 0) {
      // The schema as the last build before read grants left it (7), with its accounts; opening the store upgrades it.
      await query('', `CREATE DATABASE \`${db}\``);
      for (const m of MIGRATIONS.filter((m) => m.version <= 7)) for (const sql of m.statements) await query(db, sql);
      await query(db, 'CREATE TABLE vitefa_schema (id TINYINT UNSIGNED NOT NULL PRIMARY KEY, version INT NOT NULL)');
      await query(db, 'INSERT INTO vitefa_schema (id, version) VALUES (1, 7)');
      for (const a of legacy as AccountRecord[]) {
        await query(db, 'INSERT INTO vitefa_accounts (name, role, envs, salt, iterations, stored_key, server_key, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
          a.name, a.role, JSON.stringify(a.envs), a.verifier.salt, a.verifier.iterations, a.verifier.storedKey, a.verifier.serverKey, a.created,
        ]);
      }
    }
    return createStore(`${MYSQL_BASE}/${db}`, { retainReleases: 100, retainAudit: 5 });
  },
};

const verifier = (n: number) => ({ salt: `salt${n}`, iterations: 4096, storedKey: `stored${n}`, serverKey: `server${n}` });
const account = (name: string, role: AccountRecord['role'] = 'viewer', envs: string[] = [], reads: string[] = []): AccountRecord => ({
  name, role, envs, reads, uid: `uid-of-${name}`, verifier: verifier(1), created: 1000,
});
const token = (name: string, id: string, envs = ['prod']): TokenRecord => ({ name, id, envs, verifier: verifier(2), created: 2000 });
const audit = (i: number, over: Partial<AuditRecord> = {}): AuditRecord => ({
  time: 1_000 + i, actor: 'alice', addr: '127.0.0.1:1', action: 'set', env: 'prod', result: 'ok', code: '', detail: `entry ${i}`, ...over,
});
const status = (s: WireError) => (err: unknown) => err instanceof RequestError && err.status === s;

for (const [name, make] of Object.entries(backends)) {
  describe(`access store: ${name}`, () => {
    async function withStore(fn: (store: Store) => Promise<void>, legacy?: object[]): Promise<void> {
      const store = await make(legacy);
      await store.open();
      try {
        await fn(store);
      } finally {
        await store.close();
      }
    }

    test('the first account is made only when there is none; names are unique; every change grows the stamp', () => withStore(async (store) => {
      const s0 = await store.access.stamp();
      assert.equal(await store.access.createAccount(account('admin', 'admin'), true), true);
      assert.equal(await store.access.createAccount(account('second', 'admin'), true), false, 'not when one exists');
      await store.access.createAccount(account('alice', 'editor', ['shop', 'prod/*']));
      await assert.rejects(store.access.createAccount(account('alice')), status(WireError.ALREADY_EXISTS));
      const loaded = await store.access.load();
      assert.deepEqual(loaded.accounts.map((a) => a.name), ['admin', 'alice']);
      assert.deepEqual(loaded.accounts[1], account('alice', 'editor', ['shop', 'prod/*']));
      assert.ok(loaded.stamp > s0);
      assert.equal(await store.access.stamp(), loaded.stamp);
    }));

    test('a password is replaced; the last admin cannot be deleted; unknown names are NO_SUCH_NAME', () => withStore(async (store) => {
      await store.access.createAccount(account('root', 'admin'));
      await store.access.createAccount(account('bob'));
      await store.access.setVerifier('bob', verifier(9));
      assert.deepEqual((await store.access.load()).accounts.find((a) => a.name === 'bob')!.verifier, verifier(9));
      await assert.rejects(store.access.setVerifier('nobody', verifier(3)), status(WireError.NO_SUCH_NAME));
      await assert.rejects(store.access.deleteAccount('root'), status(WireError.NOT_APPLICABLE));
      await store.access.createAccount(account('root2', 'admin'));
      await store.access.deleteAccount('root');
      await store.access.deleteAccount('bob');
      await assert.rejects(store.access.deleteAccount('bob'), status(WireError.NO_SUCH_NAME));
      assert.deepEqual((await store.access.load()).accounts.map((a) => a.name), ['root2']);
    }));

    test('tokens: unique by name and by id, deleted by name', () => withStore(async (store) => {
      await store.access.createToken(token('web', 'aaaaaaaaaaaa'));
      await assert.rejects(store.access.createToken(token('web', 'bbbbbbbbbbbb')), status(WireError.ALREADY_EXISTS));
      await assert.rejects(store.access.createToken(token('api', 'aaaaaaaaaaaa')), status(WireError.ALREADY_EXISTS));
      await store.access.createToken(token('api', 'cccccccccccc', ['*']));
      assert.deepEqual((await store.access.load()).tokens, [token('api', 'cccccccccccc', ['*']), token('web', 'aaaaaaaaaaaa')]);
      const before = await store.access.stamp();
      await store.access.deleteToken('web');
      assert.ok((await store.access.stamp()) > before);
      await assert.rejects(store.access.deleteToken('web'), status(WireError.NO_SUCH_NAME));
      assert.deepEqual((await store.access.load()).tokens.map((t) => t.name), ['api']);
    }));

    test('audit: newest first, filtered by env, actor and time, kept to the retention', () => withStore(async (store) => {
      await store.access.appendAudit([audit(1), audit(2, { env: 'shop' }), audit(3, { actor: 'bob' })]);
      await store.access.appendAudit([audit(4, { result: 'refused', code: 'FORBIDDEN' })]);
      const all = await store.access.audit({ limit: 10 });
      assert.deepEqual(all.map((e) => e.detail), ['entry 4', 'entry 3', 'entry 2', 'entry 1']);
      assert.ok(all[0].seq > all[1].seq);
      assert.deepEqual({ ...all[0], seq: 0 }, { ...audit(4, { result: 'refused', code: 'FORBIDDEN' }), seq: 0 });
      assert.deepEqual((await store.access.audit({ env: 'shop', limit: 10 })).map((e) => e.detail), ['entry 2']);
      assert.deepEqual((await store.access.audit({ actor: 'bob', limit: 10 })).map((e) => e.detail), ['entry 3']);
      assert.deepEqual((await store.access.audit({ since: 1003, limit: 10 })).map((e) => e.detail), ['entry 4', 'entry 3']);
      assert.deepEqual((await store.access.audit({ limit: 2 })).map((e) => e.detail), ['entry 4', 'entry 3']);
      // Retention (5 here): the oldest go.
      for (let i = 5; i <= 1100; i += 100) await store.access.appendAudit(Array.from({ length: 100 }, (_, j) => audit(i + j)));
      const kept = await store.access.audit({ limit: 10_000 });
      assert.ok(kept.length <= 1000 + 5, `${kept.length} kept`);
      assert.equal(kept[0].detail, 'entry 1104');
    }));

    test('read grants and the identity are kept; an account made again under its name has the identity it was made with', () => withStore(async (store) => {
      await store.access.createAccount(account('admin', 'admin'));
      await store.access.createAccount(account('ed', 'editor', ['shop'], ['prod', 'team/*']));
      await store.access.createAccount(account('vic', 'viewer', [], []));
      const loaded = await store.access.load();
      assert.deepEqual(loaded.accounts.find((a) => a.name === 'ed'), account('ed', 'editor', ['shop'], ['prod', 'team/*']));
      assert.deepEqual(loaded.accounts.find((a) => a.name === 'vic')!.reads, [], 'no read grants: reads nothing');
      await store.access.setVerifier('ed', verifier(7));
      assert.equal((await store.access.load()).accounts.find((a) => a.name === 'ed')!.uid, 'uid-of-ed', 'a new password keeps the identity');
      await store.access.deleteAccount('ed');
      await store.access.createAccount({ ...account('ed', 'admin'), uid: 'another-ed' });
      assert.equal((await store.access.load()).accounts.find((a) => a.name === 'ed')!.uid, 'another-ed');
    }));

    test('accounts stored before read grants read every environment; each has an identity of its own', () => withStore(async (store) => {
      const accounts = (await store.access.load()).accounts;
      assert.deepEqual(accounts.map((a) => [a.name, a.role, a.envs, a.reads]), [['ed', 'editor', ['shop'], ['*']], ['old', 'viewer', [], ['*']]]);
      assert.deepEqual(accounts.map((a) => a.uid), ['created-1000', 'created-2000']);
      // Re-made by this build, an old account gets a new identity: its old sessions are not the new account's.
      await store.access.deleteAccount('old');
      await store.access.createAccount({ ...account('old'), uid: 'fresh', created: 2000 });
      assert.equal((await store.access.load()).accounts.find((a) => a.name === 'old')!.uid, 'fresh');
    }, [
      { name: 'ed', role: 'editor', envs: ['shop'], verifier: verifier(1), created: 1000 },
      { name: 'old', role: 'viewer', envs: [], verifier: verifier(1), created: 2000 },
    ]));

    test('a shared secret is made once and the same on every read, also after reopening', async () => {
      const store = await make();
      await store.open();
      const a = await store.access.secret('tickets', 48);
      assert.equal(a.length, 48);
      assert.deepEqual(await store.access.secret('tickets', 48), a);
      assert.notDeepEqual(await store.access.secret('other', 48), a);
      await store.close();
    });
  });
}
