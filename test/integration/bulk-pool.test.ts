/**
 * Large applies are checked on a thread of the bulk pool: the same result
 * and the same errors as the small ones checked at once, and small writes
 * commit while a large one is being checked.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryServer, type MemoryServer } from '../support/servers.js';

const servers: MemoryServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

test('an apply checked on the pool stores what one checked at once does, and refuses the same bad value the same way', async () => {
  const pooled = await memoryServer({ limits: { bulkInPoolFrom: 2 } });
  const direct = await memoryServer({ limits: { bulkInPoolFrom: 1_000_000 } });
  servers.push(pooled, direct);
  const results: unknown[] = [];
  for (const { server } of [pooled, direct]) {
    await server.hub.execute({ op: 'env.add', env: 'e' }, 'test');
    const ok = await server.hub.execute({ op: 'apply', env: 'e', entries: [['a', '{ "x" : 1 }'], ['b', '[1, 2]'], ['c', '"s"']], replace: false }, 'test');
    const bad = await server.hub.execute({ op: 'apply', env: 'e', entries: [['d', '1'], ['e', '{nope']], replace: false }, 'test').then(
      () => 'accepted',
      (err: Error & { status?: number }) => `${err.status} ${err.message}`,
    );
    const got = await server.hub.execute({ op: 'get', env: 'e', key: 'a' }, 'test');
    results.push({ ok, bad, got });
  }
  assert.deepEqual(results[0], results[1]);
  assert.match(String((results[0] as { bad: string }).bad), /e: not valid JSON/);
  assert.equal((results[0] as { got: { value: string } }).got.value, '{"x":1}', 'the canonical JSON text');
});

test('small writes commit while a large apply is checked on the pool', async () => {
  const mem = await memoryServer({ limits: { bulkInPoolFrom: 1_000 } });
  servers.push(mem);
  const { hub } = mem.server;
  await hub.execute({ op: 'env.add', env: 'bulk' }, 'test');
  await hub.execute({ op: 'env.add', env: 'small' }, 'test');
  const entries: [string, string][] = Array.from({ length: 200_000 }, (_, i) => [`k/${i}`, JSON.stringify({ i, s: 'x'.repeat(20) })]);
  const order: string[] = [];
  const big = hub.execute({ op: 'apply', env: 'bulk', entries, replace: false }, 'test').then(() => order.push('apply'));
  const small = hub.execute({ op: 'set', env: 'small', key: 'k', value: '1' }, 'test').then(() => order.push('set'));
  await Promise.all([big, small]);
  assert.deepEqual(order, ['set', 'apply'], 'the set sent after the apply committed first: it did not wait for the apply to be checked');
  assert.equal(hub.appliesCheckedOnThreads, 1, 'the apply was checked on the thread, the set was not');
  await hub.execute({ op: 'apply', env: 'bulk', entries: entries.slice(0, 999), replace: false }, 'test');
  assert.equal(hub.appliesCheckedOnThreads, 1, 'an apply under bulkInPoolFrom is checked at once');
});

test('a diff and a rollback across a large release let small writes commit meanwhile, and give what the history says', async () => {
  const mem = await memoryServer();
  servers.push(mem);
  const { hub } = mem.server;
  await hub.execute({ op: 'env.add', env: 'bulk' }, 'test');
  await hub.execute({ op: 'env.add', env: 'small' }, 'test');
  const start = (await hub.execute({ op: 'set', env: 'bulk', key: 'k/0', value: '"first"' }, 'test')).rev;
  const entries: [string, string][] = Array.from({ length: 100_000 }, (_, i) => [`k/${i}`, JSON.stringify({ i })]);
  await hub.execute({ op: 'apply', env: 'bulk', entries, replace: false }, 'test');

  const order: string[] = [];
  const diff = hub.execute({ op: 'diff', env: 'bulk', from: start }, 'test').then((r) => (order.push('diff'), r));
  const set = hub.execute({ op: 'set', env: 'small', key: 'k', value: '1' }, 'test').then(() => order.push('set'));
  const [changes] = await Promise.all([diff, set]);
  assert.deepEqual(order, ['set', 'diff'], 'the set sent after the diff was answered first');
  assert.equal(changes.changes.length, 100_000);
  assert.deepEqual(changes.changes[0], ['k/0', '"first"', '{"i":0}']);
  assert.deepEqual(changes.changes[1], ['k/1', null, '{"i":1}']);

  order.length = 0;
  const rollback = hub.execute({ op: 'rollback', env: 'bulk', rev: start }, 'test').then((r) => (order.push('rollback'), r));
  const other = hub.execute({ op: 'set', env: 'small', key: 'k', value: '2' }, 'test').then(() => order.push('set'));
  // A release of the same environment arriving while the rollback is worked out is undone too.
  const between = hub.execute({ op: 'set', env: 'bulk', key: 'late', value: '3' }, 'test');
  await Promise.all([rollback, other, between]);
  assert.deepEqual(order, ['set', 'rollback'], 'the set sent after the rollback committed first');
  const list = await hub.execute({ op: 'list', env: 'bulk' }, 'test');
  assert.deepEqual(list.entries, [['k/0', '"first"']], 'the environment is as it was at the revision rolled back to');
});
