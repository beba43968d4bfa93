/**
 * The server's memory of layered environments: merged views built at load, and a release of one
 * layer applied as the releases of every view it changes, at its revision, as one group.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHAIN_GENESIS, decodeBody, FRAME_HEADER_BYTES, type Release } from '../../src/protocol/index.js';
import { ownText } from '../../src/server/model/layers/index.js';
import { chainOfStored } from '../../src/server/store/changes.js';
import { newRelease } from '../../src/server/store/release.js';
import { ChainBroken, ServerState } from '../../src/server/releases/state.js';
import type { EnvState, StoredRelease } from '../../src/server/store/types.js';
import type { KeyChange } from '../../src/protocol/index.js';

const meta = { author: 'alice', op: 'set', time: 1000 };

function loaded(): ServerState {
  const state = new ServerState({ recentReleases: 100, recentBytes: 1 << 20 });
  const envs: EnvState[] = [
    { env: 'base', rev: 1, chain: '', values: new Map([['db', '{"host":"a","port":1}'], ['list', '[1,2]']]) },
    { env: 'prod', rev: 2, chain: '', values: new Map([['db', '{"host":"p"}']]), parents: ['base'] },
    { env: 'eu', rev: 3, chain: '', values: new Map([['list', '[3]']]), parents: ['base'] },
    { env: 'prod/eu', rev: 4, chain: '', values: new Map([['only', '"x"']]), parents: ['prod', 'eu'] },
    { env: 'alone', rev: 5, chain: '', values: new Map([['a', '1']]) },
  ];
  state.load(5, envs);
  return state;
}

const messageOf = (frame: Buffer): Release => decodeBody(frame.subarray(FRAME_HEADER_BYTES)) as Release;

test('merged views are built from the layers at load', () => {
  const state = loaded();
  assert.deepEqual([...state.values('prod')!], [['db', '{"host":"p","port":1}'], ['list', '[1,2]']]);
  assert.deepEqual([...state.values('prod/eu')!].sort(), [['db', '{"host":"p","port":1}'], ['list', '[1,2,3]'], ['only', '"x"']]);
  assert.equal(state.own('prod')!.get('db'), '{"host":"p"}', 'own entries kept beside the view');
  assert.equal(state.values('alone'), state.own('alone'), 'an environment standing alone keeps one map');
  assert.deepEqual(state.info().find((e) => e.env === 'prod/eu')?.parents, ['prod', 'eu']);
});

test('a release of a layer read from the store publishes every view it changes, at its revision, as one group', () => {
  const state = loaded();
  const release = newRelease('base', 6, 1, meta, [['db', '{"host":"a","port":1}', '{"host":"a","port":2}']], '');
  const published = state.apply(release);
  assert.deepEqual(published.map((p) => p.message.env), ['base', 'eu', 'prod', 'prod/eu']);
  for (const p of published) {
    assert.equal(p.message.rev, 6);
    assert.equal(p.message.grp, true);
    assert.deepEqual(messageOf(p.frame), p.message, 'the frame is the message');
  }
  const prodEu = published.find((p) => p.message.env === 'prod/eu')!.message;
  assert.equal(prodEu.via, 'base');
  assert.equal(prodEu.prev, 4);
  assert.deepEqual(prodEu.changes, [['db', '{"host":"p","port":2}']]);
  const expected: StoredRelease = { env: 'prod/eu', rev: 6, prev: 4, ...meta, via: 'base', changes: [], merged: [['db', '{"host":"p","port":1}', '{"host":"p","port":2}']] };
  assert.equal(prodEu.chain, chainOfStored('', expected));
  assert.equal(state.rev('prod/eu'), 6);
  assert.equal(state.values('prod/eu')!.get('db'), '{"host":"p","port":2}');
  assert.equal(state.rev('alone'), 5, 'an environment not built on base is untouched');
  // The store's via release of prod/eu then agrees with what was made here.
  assert.deepEqual(state.apply({ ...expected, chain: prodEu.chain }), []);
  assert.throws(() => state.apply({ ...expected, chain: 'ffffffffffffffff' }), ChainBroken);
});

test('a key one layer overrides is no change of the view built on it', () => {
  const state = loaded();
  const published = state.apply(newRelease('base', 6, 1, meta, [['list', '[1,2]', '[1,2,9]']], ''));
  const envs = published.map((p) => p.message.env);
  assert.deepEqual(envs, ['base', 'eu', 'prod', 'prod/eu']);
  const onProd = state.apply(newRelease('base', 7, 6, meta, [['db', '{"host":"a","port":1}', '{"host":"z","port":1}']], published[0].message.chain!));
  // prod sets host itself: its view, and prod/eu's, keep "p"; eu's changes.
  assert.deepEqual(onProd.map((p) => p.message.env), ['base', 'eu']);
  assert.equal(onProd[0].message.grp, true);
});

test('unset marks hide what the layers give; a parent list change recomputes every key of the stack', () => {
  const state = loaded();
  const mark = ownText({ unset: [['port']] })!;
  const unset = state.apply({ ...newRelease('prod', 6, 2, { ...meta, op: 'unset' }, [['db', '{"host":"p"}', ownText({ text: '{"host":"p"}', unset: [['port']] })!]], '') });
  assert.equal(state.values('prod')!.get('db'), '{"host":"p"}');
  assert.deepEqual(unset.map((p) => p.message.env), ['prod', 'prod/eu']);
  assert.ok(mark.startsWith('!'));
  const layers = state.apply(newRelease('eu', 7, 3, { ...meta, op: 'env.layers' }, [], '', false, { parents: [] }));
  // prod/eu still reaches base through prod, at the same place in its order: its view does not change.
  assert.deepEqual(layers.map((p) => p.message.env), ['eu']);
  assert.deepEqual([...state.values('eu')!], [['list', '[3]']]);
  assert.equal(state.values('eu'), state.own('eu'), 'standing alone again: one map');
  assert.equal(state.values('prod/eu')!.get('list'), '[1,2,3]', 'prod/eu still gets base through prod');
});

test('a release committed here carries its merged changes and group: they are taken; one of another revision is checked', () => {
  const state = loaded();
  const merged: KeyChange[] = [['db', '{"host":"p","port":1}', '{"host":"p","port":3}']];
  const base = newRelease('base', 6, 1, meta, [['db', '{"host":"a","port":1}', '{"host":"a","port":3}']], '');
  const group = ['eu', 'prod', 'prod/eu'].map((env) => newRelease(env, 6, state.rev(env)!, meta, [], '', false, {
    via: 'base', merged: env === 'eu' ? [['db', '{"host":"a","port":1}', '{"host":"a","port":3}']] : merged,
  }));
  assert.equal(state.apply({ ...base, group }).length, 4);
  const wrong = loaded();
  // One made from another revision than this server holds is worked out again, and must agree.
  const forged = group.map((r) => (r.env === 'prod' ? { ...r, prev: 1, chain: 'aaaaaaaaaaaaaaaa' } : r));
  assert.throws(() => wrong.apply({ ...base, group: forged }), ChainBroken);
  assert.equal(CHAIN_GENESIS, '');
});
