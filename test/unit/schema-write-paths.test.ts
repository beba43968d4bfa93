/**
 * Every operation of the table that writes configuration says what it is checked against the
 * schemas for, and each that changes views is refused by a schema that refuses everything: a new
 * write path cannot skip the check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_OPS, CONFIG_WRITE_OPS, WireError, type AdminOp, type AdminRequest } from '../../src/protocol/index.js';
import { RequestError } from '../../src/server/errors.js';
import { operation } from '../../src/server/ops/table.js';
import { memoryServer } from '../support/servers.js';

test('every write of the table says what it is checked for; only writes do', () => {
  for (const op of ADMIN_OPS) {
    const entry = operation(op);
    if (entry.writes) assert.ok(entry.schemaCheck !== undefined, `${op} writes but says nothing of its schema check`);
    else assert.equal(entry.schemaCheck, undefined, `${op} writes nothing`);
  }
  assert.deepEqual(ADMIN_OPS.filter((op) => operation(op).writes).sort(), [...CONFIG_WRITE_OPS].sort());
  // Those that check nothing change no value a schema could refuse.
  assert.deepEqual(ADMIN_OPS.filter((op) => operation(op).schemaCheck === 'nothing').sort(), ['env.add', 'env.del', 'schema.del']);
});

/** A request of each write that changes a view, on an environment `e` built on `p`, holding `k` = {"a":1}. */
function sample(op: AdminOp, rev: number, env = 'e'): AdminRequest | undefined {
  switch (op) {
    case 'set': return { op, env, key: 'k2', value: '1' };
    case 'merge': return { op, env, key: 'k', value: '{"b":2}' };
    case 'clear': return { op, env, key: 'k', path: ['a'] };
    case 'unset': return { op, env, key: 'from-parent', path: [] };
    case 'del': return { op, env, key: 'k' };
    case 'apply': return { op, env, entries: [['k3', '3']], replace: false };
    case 'rollback': return { op, env, rev };
    case 'env.layers': return { op, env, parents: ['p', 'q'] };
    default: return undefined;
  }
}

test('each write that changes views is refused by a schema that refuses everything (a whole-view schema, so deletions are checked too)', async () => {
  const mem = await memoryServer();
  try {
    const x = (req: AdminRequest): Promise<unknown> => mem.server.hub.execute(req, 'admin');
    await x({ op: 'env.add', env: 'p' });
    await x({ op: 'set', env: 'p', key: 'from-parent', value: '1' });
    await x({ op: 'env.add', env: 'q' });
    await x({ op: 'set', env: 'q', key: 'from-q', value: '1' });
    await x({ op: 'env.add', env: 'e' });
    await x({ op: 'env.layers', env: 'e', parents: ['p'] });
    const first = (await x({ op: 'set', env: 'e', key: 'old', value: '1' })) as { rev: number };
    await x({ op: 'set', env: 'e', key: 'k', value: '{"a":1}' });
    await x({ op: 'schema.set', envPattern: 'e', keyPattern: '*', schema: 'false', whole: true, mode: 'warn' });
    // In an order where each still changes the view (del after clear and merge, which change what it removes; rollback last).
    const order: AdminOp[] = ['set', 'merge', 'clear', 'unset', 'apply', 'env.layers', 'del', 'rollback'];
    const checked = order.filter((op) => operation(op).schemaCheck === 'views');
    assert.deepEqual([...checked].sort(), ADMIN_OPS.filter((op) => operation(op).schemaCheck === 'views').sort(), 'a write path has no sample here: add it');
    // In warn mode the refusal is a warning: each write goes through, and says why.
    for (const op of checked) {
      const req = sample(op, first.rev);
      assert.ok(req !== undefined, `no sample request for ${op}: add one`);
      const result = (await x(req)) as { warnings?: unknown[] };
      assert.ok((result.warnings?.length ?? 0) > 0, `${op} was not checked`);
    }
    // Enforced (per key, on an environment with nothing yet): every write that puts a value in its view is refused.
    await x({ op: 'env.add', env: 'f' });
    await x({ op: 'schema.set', envPattern: 'f', keyPattern: '*', schema: 'false' });
    for (const op of checked.filter((o) => o !== 'del' && o !== 'clear' && o !== 'unset' && o !== 'rollback')) {
      await assert.rejects(x(sample(op, first.rev, 'f')!), (err: unknown) => err instanceof RequestError && err.status === WireError.SCHEMA_VIOLATION, op);
    }
    assert.equal((await mem.server.hub.execute({ op: 'env.list' }, 'admin')).envs.find((e) => e.env === 'f')!.keys, 0);
  } finally {
    await mem.close();
  }
});
