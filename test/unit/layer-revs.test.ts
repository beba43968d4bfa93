/**
 * The revisions of the layers behind a host's view: Release.layers and Snapshot.layers on the
 * wire (checked, bounded, absent for plain environments, whose bytes do not change), made by the
 * server's state for each view a write moves, kept by the agent's store under `meta`'s
 * `layers/<env>` in the release's transaction, and read back by the reader library.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { LocalStore } from '../../src/agent/local-store.js';
import {
  decodeBody, encodeBody, encodeMessage, FRAME_HEADER_BYTES, MAX_LAYER_REVS, MessageType, ProtocolError, SnapshotEncoder, snapshotMessage,
  type LayerRev, type Message, type Release, type Snapshot,
} from '../../src/protocol/index.js';
import { ConfigReader } from '../../src/reader/index.js';
import { ServerState } from '../../src/server/releases/state.js';
import { newRelease } from '../../src/server/store/release.js';
import type { EnvState } from '../../src/server/store/types.js';
import { tempDir } from '../support/common.js';

const release = (extra: Partial<Release> = {}): Release =>
  ({ t: MessageType.Release, env: 'app', rev: 7, prev: 6, time: 1, author: 'a', op: 'set', changes: [['k', '1']], ...extra });
const decoded = (message: Message): Message => decodeBody(encodeBody(message));
const messageOf = (frame: Buffer): Message => decodeBody(frame.subarray(FRAME_HEADER_BYTES));

describe('Release.layers and Snapshot.layers on the wire', () => {
  test('are decoded as sent, and left out when absent', () => {
    const layers: LayerRev[] = [['base', 5], ['app', 7]];
    assert.deepEqual(decoded(release({ layers })), release({ layers }));
    assert.equal('layers' in decoded(release()), false);
    const snapshot = snapshotMessage('app', 7, [['k', '1']], undefined, layers);
    assert.deepEqual(decoded(snapshot), snapshot);
  });

  test('are refused when malformed or longer than MAX_LAYER_REVS', () => {
    const long = Array.from({ length: MAX_LAYER_REVS + 1 }, (_, i): LayerRev => [`l${i}`, i]);
    for (const bad of [long, [['base', -1]], [['base']], [[1, 2]], ['base'], 'base'] as unknown[]) {
      assert.throws(() => decoded(release({ layers: bad as LayerRev[] })), ProtocolError, JSON.stringify(bad).slice(0, 40));
      assert.throws(() => decoded({ ...snapshotMessage('app', 7, []), layers: bad as LayerRev[] }), ProtocolError);
    }
    assert.equal((decoded(release({ layers: long.slice(1) })) as Release).layers?.length, MAX_LAYER_REVS);
  });

  test('a snapshot built a slice at a time is the same bytes, and a plain one is as before', () => {
    const entries: [string, string][] = Array.from({ length: 40 }, (_, i) => [`k${i}`, String(i)]);
    const layers: LayerRev[] = [['base', 3], ['app', 9]];
    for (const withLayers of [undefined, layers]) {
      const encoder = new SnapshotEncoder('app', 9, 'aaaaaaaaaaaaaaaa', withLayers);
      encoder.add(entries.slice(0, 16));
      encoder.add(entries.slice(16));
      assert.deepEqual(encoder.frame(), encodeMessage(snapshotMessage('app', 9, entries, 'aaaaaaaaaaaaaaaa', withLayers)));
    }
    const plain: Snapshot = { t: MessageType.Snapshot, env: 'app', rev: 9, chain: 'aaaaaaaaaaaaaaaa', entries };
    assert.deepEqual(encodeMessage(snapshotMessage('app', 9, entries, 'aaaaaaaaaaaaaaaa')), encodeMessage(plain));
  });
});

const meta = { author: 'alice', op: 'set', time: 1000 };

/** base ← prod, base ← eu, prod + eu ← prod/eu, and alone, built on nothing. */
function loaded(): ServerState {
  const state = new ServerState({ recentReleases: 100, recentBytes: 1 << 20 });
  const envs: EnvState[] = [
    { env: 'base', rev: 1, chain: '', values: new Map([['db', '{"port":1}']]) },
    { env: 'prod', rev: 2, chain: '', values: new Map([['db', '{"host":"p"}']]), parents: ['base'] },
    { env: 'eu', rev: 3, chain: '', values: new Map([['x', '1']]), parents: ['base'] },
    { env: 'prod/eu', rev: 4, chain: '', values: new Map([['only', '"x"']]), parents: ['prod', 'eu'] },
    { env: 'alone', rev: 5, chain: '', values: new Map([['a', '1']]) },
  ];
  state.load(5, envs);
  return state;
}

const snapshotOf = (state: ServerState, env: string): Snapshot => {
  const caught = state.catchUp(env, 0);
  assert.equal(caught.kind, 'snapshot');
  return messageOf((caught as { frame: Buffer }).frame) as Snapshot;
};

describe('the server names the layers behind each view it publishes', () => {
  test('a write to a layer: every view it moves names each of its layers at the revision they are at after it', () => {
    const state = loaded();
    const published = state.apply(newRelease('base', 6, 1, meta, [['db', '{"port":1}', '{"port":2}']], ''));
    const layersOf = new Map(published.map((p) => [p.message.env, p.message.layers]));
    assert.deepEqual([...layersOf.keys()], ['base', 'eu', 'prod', 'prod/eu']);
    assert.equal(layersOf.get('base'), undefined, 'an environment built on nothing names none');
    assert.deepEqual(layersOf.get('prod'), [['base', 6], ['prod', 6]]);
    assert.deepEqual(layersOf.get('prod/eu'), [['base', 6], ['prod', 6], ['eu', 6], ['prod/eu', 6]], 'prod and eu are at 6 too, whichever was encoded first');
    for (const p of published) assert.deepEqual(messageOf(p.frame), p.message, 'the frame is the message');
    // Without a chain value: the state works the merged changes out itself.
    const own = state.apply({ ...newRelease('prod', 7, 6, meta, [['db', '{"host":"p"}', '{"host":"q"}']], ''), chain: '' });
    assert.deepEqual(own.map((p) => [p.message.env, p.message.layers]), [
      ['prod', [['base', 6], ['prod', 7]]], ['prod/eu', [['base', 6], ['prod', 7], ['eu', 6], ['prod/eu', 7]]],
    ]);
    assert.deepEqual(snapshotOf(state, 'prod/eu').layers, [['base', 6], ['prod', 7], ['eu', 6], ['prod/eu', 7]]);
    assert.equal('layers' in snapshotOf(state, 'base'), false);
    assert.equal('layers' in state.apply(newRelease('alone', 8, 5, meta, [['a', '1', '2']], ''))[0].message, false, 'a plain release carries no layers');
  });

  test('a parent list change names the layers it leaves; none left, none named', () => {
    const state = loaded();
    const gone = state.apply(newRelease('eu', 6, 3, { ...meta, op: 'env.layers' }, [], '', false, { parents: [] }));
    assert.equal(gone[0].message.env, 'eu');
    assert.equal(gone[0].message.layers, undefined);
    const built = state.apply(newRelease('alone', 7, 5, { ...meta, op: 'env.layers' }, [], '', false, { parents: ['eu'] }));
    assert.deepEqual(built[0].message.layers, [['eu', 6], ['alone', 7]]);
  });

  test('a cluster worker names what its primary sent, from its start and with each release', () => {
    const primary = loaded();
    const worker = new ServerState({ recentReleases: 100, recentBytes: 1 << 20 });
    worker.load(primary.head, primary.export());
    assert.deepEqual(snapshotOf(worker, 'prod/eu').layers, [['base', 1], ['prod', 2], ['eu', 3], ['prod/eu', 4]]);
    assert.equal('layers' in snapshotOf(worker, 'alone'), false);
    for (const p of primary.apply(newRelease('base', 6, 1, meta, [['db', '{"port":1}', '{"port":2}']], ''))) {
      const message = messageOf(p.frame) as Release;
      const stored = newRelease(message.env, message.rev, message.prev, meta, message.changes.map(([k, v]) => [k, null, v]), '');
      const published = worker.apply({ ...stored, chain: message.chain! }, { message, frame: p.frame });
      assert.equal(published[0].message.grp, true, "published as the primary sent it: grouped");
    }
    assert.deepEqual(snapshotOf(worker, 'prod/eu').layers, [['base', 6], ['prod', 6], ['eu', 6], ['prod/eu', 6]]);
  });
});

describe('the agent store keeps the layers of each view with it', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  test('written and removed in the transaction of a release or snapshot, read back by the reader', async () => {
    const dir = tempDir('vitefa-layers-');
    dirs.push(dir);
    const read = async <T>(body: (reader: ConfigReader) => T): Promise<T> => {
      const reader = ConfigReader.open(dir);
      try {
        return body(reader);
      } finally {
        await reader.close();
      }
    };
    let store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
    store.applyRelease(release({ rev: 1, prev: 0, layers: [['base', 1], ['app', 1]] }));
    store.applyGroup([release({ env: 'other', rev: 2, prev: 0, layers: [['base', 2], ['other', 2]] }), release({ rev: 2, prev: 1, layers: [['base', 2], ['app', 2]] })]);
    await store.close();
    assert.deepEqual(await read((r) => [r.layers('app'), r.layers('other'), r.layers('missing')]), [
      [{ env: 'base', rev: 2 }, { env: 'app', rev: 2 }], [{ env: 'base', rev: 2 }, { env: 'other', rev: 2 }], [],
    ]);
    // Reopened: the store still knows which environments have layers to remove.
    store = LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 });
    store.applyRelease(release({ rev: 3, prev: 2 }));
    store.applySnapshot({ t: MessageType.Snapshot, env: 'snap', rev: 3, entries: [], layers: [['base', 2], ['snap', 3]] });
    assert.deepEqual(store.layers('app'), [], 'a release without layers removes them');
    assert.deepEqual(store.layers('snap'), [['base', 2], ['snap', 3]]);
    store.applySnapshot({ t: MessageType.Snapshot, env: 'snap', rev: 4, entries: [] });
    store.applyRelease(release({ env: 'other', rev: 4, prev: 2, changes: [], drop: true }));
    assert.deepEqual([store.layers('snap'), store.layers('other')], [[], []], 'a snapshot without layers, and a drop, remove them');
    await store.close();
    assert.deepEqual(await read((r) => [r.layers('app'), r.layers('snap'), r.revision('app')]), [[], [], 3]);
  });
});
