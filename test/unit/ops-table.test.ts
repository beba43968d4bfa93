/**
 * The table of operations: every operation of the protocol's request union
 * is exactly one entry with a permission, and each layer's handlers match
 * the entries it runs — checked when they are built, so that an entry
 * without a handler stops the server from being put together.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_OPS, CONFIG_WRITE_OPS, WireError, type AdminOp } from '../../src/protocol/index.js';
import { accountHandlers, type AccountDesk } from '../../src/server/access/account-ops.js';
import { permit } from '../../src/server/access/permissions.js';
import { RequestError } from '../../src/server/errors.js';
import { checkedHandlers, OPERATIONS, operation, PERMISSION_NAMES, type Handlers, type Runner } from '../../src/server/ops/table.js';
import type { AccountRecord } from '../../src/server/store/types.js';

const ops = Object.keys(OPERATIONS) as AdminOp[];
const runBy = (runner: Runner): AdminOp[] => ops.filter((op) => operation(op).runBy === runner);
/** A handler set of `runner` with a stand-in for each of its operations. */
const standIns = (runner: Runner): Record<string, () => { done: string }> => Object.fromEntries(runBy(runner).map((op) => [op, () => ({ done: op })]));

describe('the table of operations', () => {
  test('the protocol lists each operation once', () => {
    assert.equal(new Set(ADMIN_OPS).size, ADMIN_OPS.length);
  });

  test('every operation of the request union has exactly one entry, and the table nothing else', () => {
    assert.deepEqual([...ops].sort(), [...ADMIN_OPS].sort());
  });

  test('every entry has a permission, a runner, and says whether it writes and whether it pages', () => {
    for (const op of ops) {
      const entry = operation(op);
      assert.ok(PERMISSION_NAMES.includes(entry.permission), `${op}: permission ${String(entry.permission)}`);
      assert.ok(entry.runBy === 'hub' || entry.runBy === 'access', `${op}: runner ${String(entry.runBy)}`);
      assert.equal(typeof entry.writes, 'boolean', `${op}: writes`);
      assert.equal(typeof entry.paged, 'boolean', `${op}: paged`);
    }
  });

  test('what writes configuration is run by the hub and needs write or admin; what pages is a read', () => {
    for (const op of ops) {
      const entry = operation(op);
      if (entry.writes) {
        assert.equal(entry.runBy, 'hub', op);
        assert.ok(entry.permission === 'write' || entry.permission === 'admin', op);
      }
      if (entry.paged) assert.equal(entry.permission, 'read', op);
    }
    assert.deepEqual(ops.filter((op) => operation(op).writes).sort(), [...CONFIG_WRITE_OPS].sort());
  });
});

describe('handlers are checked against the table when they are built', () => {
  test('a complete set of each runner is taken as it is', () => {
    for (const runner of ['hub', 'access'] as const) {
      const set = standIns(runner);
      assert.equal(checkedHandlers(runner, set as unknown as Handlers<typeof runner, unknown>), set);
    }
  });

  test('an entry without a handler is refused', () => {
    const set = standIns('hub');
    delete set['rollback'];
    assert.throws(() => checkedHandlers('hub', set as unknown as Handlers<'hub', unknown>), /rollback has no handler/);
  });

  test('a handler for an operation another layer runs, or the table lacks, is refused', () => {
    const taken = { ...standIns('hub'), 'user.add': () => ({ done: '' }) };
    assert.throws(() => checkedHandlers('hub', taken as unknown as Handlers<'hub', unknown>), /user\.add is run by access, not by hub/);
    const unknown = { ...standIns('access'), 'user.rename': () => ({ done: '' }) };
    assert.throws(() => checkedHandlers('access', unknown as unknown as Handlers<'access', unknown>), /user\.rename is not an operation of the table/);
  });

  test('access control supplies a handler for every entry it runs', () => {
    const desk = { store: undefined, state: undefined, book: () => undefined, reload: () => Promise.resolve(), flushAudit: () => Promise.resolve() } as unknown as AccountDesk;
    assert.deepEqual(Object.keys(accountHandlers(desk)).sort(), runBy('access').sort());
  });
});

describe('each entry\'s permission, applied to an account', () => {
  const account = (name: string, role: AccountRecord['role'], envs: string[]): AccountRecord =>
    ({ name, role, envs, reads: [], uid: name, created: 0, verifier: { salt: '', iterations: 0, storedKey: '', serverKey: '' } });
  const viewer = account('vic', 'viewer', ['shop']);
  const editor = account('ed', 'editor', ['shop']);
  const forbidden = (err: unknown): boolean => err instanceof RequestError && err.status === 110;

  test('a read needs the environment among the reads; a write an editor granted it; admin an admin', () => {
    permit({ op: 'get', env: 'shop', key: 'k' }, viewer);
    assert.throws(() => permit({ op: 'get', env: 'prod', key: 'k' }, viewer), forbidden);
    assert.throws(() => permit({ op: 'set', env: 'shop', key: 'k', value: '1' }, viewer), forbidden);
    permit({ op: 'set', env: 'shop', key: 'k', value: '1' }, editor);
    assert.throws(() => permit({ op: 'set', env: 'prod', key: 'k', value: '1' }, editor), forbidden);
    assert.throws(() => permit({ op: 'env.add', env: 'x' }, editor), forbidden);
  });

  test('self: an account acts on itself (its password, its watches), never on another', () => {
    permit({ op: 'user.passwd', verifier: { salt: '', iterations: 0, storedKey: '', serverKey: '' } }, viewer);
    permit({ op: 'user.passwd', name: 'vic', verifier: { salt: '', iterations: 0, storedKey: '', serverKey: '' } }, viewer);
    assert.throws(() => permit({ op: 'user.passwd', name: 'ed', verifier: { salt: '', iterations: 0, storedKey: '', serverKey: '' } }, viewer), forbidden);
    permit({ op: 'unwatch', env: 'prod' }, viewer);
  });
});

describe('an operation the table does not hold', () => {
  test('is refused as a bad request, not a crash, by whoever asks the table', () => {
    for (const op of ['nope', 'constructor', '__proto__', 'toString']) {
      assert.throws(() => operation(op as AdminOp), (err: unknown) => err instanceof RequestError && err.status === WireError.BAD_REQUEST && /unknown operation/.test(err.message));
    }
  });
});
