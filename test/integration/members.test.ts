/**
 * The registry of servers (both stores, real MariaDB) and the membership
 * rules every server applies to gossip: newest (generation, version) wins,
 * an older generation never overrides a newer one, nobody's word about a
 * server overrides its own, and silence is judged against this process's
 * own lateness.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { MemberEntry } from '../../src/protocol/index.js';
import { Membership } from '../../src/server/peers/membership.js';
import { mergeRevisions } from '../../src/server/peers/status.js';
import { createStore } from '../../src/server/store/create.js';
import type { MemberRecord, Store } from '../../src/server/store/types.js';
import { databaseName, dropDatabase, MYSQL_BASE } from '../support/mysql.js';
import { tempDir } from '../support/common.js';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

const backends: Record<string, () => Store> = {
  LmdbStore: () => {
    const dir = tempDir('vitefa-members-');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    return createStore(path.join(dir, 'store'), { retainReleases: 100 });
  },
  MysqlStore: () => {
    const db = databaseName();
    cleanups.push(() => dropDatabase(db));
    return createStore(`${MYSQL_BASE}/${db}`, { retainReleases: 100 });
  },
};

const row = (id: string, over: Partial<MemberRecord> = {}): Omit<MemberRecord, 'gen'> => ({
  id, addrs: ['127.0.0.1:7400'], peer: '127.0.0.1:7401', state: 'alive', agents: 0, head: 0, heartbeat: 10_000, started: 10_000, ...over,
});

for (const [name, make] of Object.entries(backends)) {
  describe(`registry: ${name}`, () => {
    test('each registration is a new generation; a superseded one cannot write its row; old rows are pruned', async () => {
      const store = make();
      await store.open();
      try {
        assert.equal(await store.members.register(row('a')), 1);
        assert.equal(await store.members.register(row('b', { peer: '127.0.0.1:7501' })), 1);
        assert.equal(await store.members.register(row('a', { addrs: ['127.0.0.2:7400'] })), 2, 'a restart of a');
        assert.equal(await store.members.heartbeat({ ...row('a', { agents: 5, head: 9, heartbeat: 20_000 }), gen: 1 }), false, 'the old generation is superseded');
        assert.equal(await store.members.heartbeat({ ...row('a', { agents: 7, head: 9, state: 'draining', heartbeat: 20_000, addrs: ['127.0.0.2:7400'] }), gen: 2 }), true);
        const rows = await store.members.list();
        assert.deepEqual(rows.map((r) => [r.id, r.gen, r.agents, r.state, r.addrs]), [['a', 2, 7, 'draining', ['127.0.0.2:7400']], ['b', 1, 0, 'alive', ['127.0.0.1:7400']]]);
        assert.equal(await store.members.prune(15_000), 1);
        assert.deepEqual((await store.members.list()).map((r) => r.id), ['a']);
      } finally {
        await store.close();
      }
    });
  });
}

const entry = (id: string, gen: number, ver: number, over: Partial<MemberEntry> = {}): MemberEntry => ({
  id, gen, ver, addrs: [`${id}:7400`], peer: `${id}:7401`, state: 'alive', agents: 0, head: 0, ...over,
});

describe('membership', () => {
  const settings = { suspectAfterMs: 5_000, deadAfterMs: 15_000, forgetAfterMs: 60_000 };

  test('the newest (generation, version) of each entry wins; an older generation never comes back', () => {
    const m = new Membership({ id: 'me', gen: 1, addrs: [], peer: '', state: 'alive', agents: 0, head: 0 }, settings, () => 0);
    assert.deepEqual(m.merge([entry('x', 1, 5, { agents: 3 })]).changed, ['x']);
    assert.deepEqual(m.merge([entry('x', 1, 4, { agents: 99 })]).changed, [], 'an older version');
    assert.equal(m.view('x')!.entry.agents, 3);
    assert.deepEqual(m.merge([entry('x', 2, 1, { agents: 0 })]).changed, ['x'], 'a restart: a new generation starts at version 1');
    assert.deepEqual(m.merge([entry('x', 1, 500, { state: 'left' })]).changed, [], 'stale news of the old generation');
    assert.equal(m.view('x')!.entry.gen, 2);
    assert.equal(m.view('x')!.entry.state, 'alive');
  });

  test("nobody's word about this server overrides its own; a newer generation of its id is a conflict", () => {
    const m = new Membership({ id: 'me', gen: 3, addrs: [], peer: '', state: 'alive', agents: 0, head: 0 }, settings, () => 0);
    assert.deepEqual(m.merge([entry('me', 3, 999, { state: 'left' })]), { changed: [] });
    assert.equal(m.self.state, 'alive');
    assert.equal(m.merge([entry('me', 4, 1)]).conflict?.gen, 4);
    assert.equal(m.self.gen, 3);
  });

  test('silence makes a server suspect, then dead; news brings it back; this process lateness stretches both', () => {
    let now = 0;
    const m = new Membership({ id: 'me', gen: 1, addrs: [], peer: '', state: 'alive', agents: 0, head: 0 }, settings, () => now);
    m.merge([entry('x', 1, 1)]);
    now = 4_000;
    assert.deepEqual(m.judge(0), []);
    now = 6_000;
    assert.deepEqual(m.judge(0).map((c) => c.to), ['suspect']);
    assert.deepEqual(m.judge(2_000).map((c) => c.to), ['alive'], 'with this process 2 s late, 6 s of silence is allowed');
    assert.deepEqual(m.judge(0).map((c) => c.to), ['suspect']);
    now = 16_000;
    assert.deepEqual(m.judge(0).map((c) => c.to), ['dead']);
    assert.deepEqual(m.candidates().map((e) => e.id), ['me']);
    assert.deepEqual(m.entries().map((e) => e.id), ['me'], "a dead server's last entry is not passed on");
    m.merge([entry('x', 1, 2)]);
    assert.deepEqual(m.judge(0).map((c) => [c.from, c.to]), [['dead', 'alive']]);
    // This process was 8 s late itself: 8 s of silence is not the other's fault.
    now = 16_000 + 8_000;
    assert.deepEqual(m.judge(8_000), []);
    assert.deepEqual(m.judge(0).map((c) => c.to), ['suspect']);
  });

  test('a stopped server is never judged and is forgotten after forgetAfterMs; the own version grows with each change and beat', () => {
    let now = 0;
    const m = new Membership({ id: 'me', gen: 1, addrs: [], peer: '', state: 'alive', agents: 0, head: 0 }, settings, () => now);
    m.merge([entry('gone', 1, 1, { state: 'left' })]);
    now = 30_000;
    assert.deepEqual(m.judge(0), []);
    assert.equal(Membership.shownState(m.view('gone')!), 'left');
    now = 61_000;
    m.judge(0);
    assert.equal(m.view('gone'), undefined);
    // The copy some server still passes on is not news: only a newer entry (the server came back) is.
    assert.deepEqual(m.merge([entry('gone', 1, 1, { state: 'left' })]).changed, []);
    assert.equal(m.view('gone'), undefined);
    assert.deepEqual(m.merge([entry('gone', 2, 1)]).changed, ['gone']);
    assert.equal(m.view('gone')!.entry.state, 'alive');
    const v = m.self.ver;
    assert.equal(m.update({ agents: 0 }), false);
    assert.equal(m.update({ agents: 4 }), true);
    m.beat();
    assert.equal(m.self.ver, v + 2);
  });
});

test('agents revisions add up across servers by revision and chain, against the highest current revision', () => {
  const merged = mergeRevisions([
    [{ env: 'prod', rev: 9, chain: 'c9', releasedMs: 500, holders: [[9, 10, 'c9'], [8, 1, 'c8']], lagging: [{ id: 'h1', addr: 'a:1', server: 'A', rev: 8 }], laggingTotal: 1 }],
    [
      { env: 'prod', rev: 8, chain: 'c8', releasedMs: 9000, holders: [[8, 5, 'c8'], [9, 2, 'fork']], lagging: [], laggingTotal: 0 },
      { env: 'dev', rev: 2, holders: [[2, 1, '']], lagging: [], laggingTotal: 0 },
    ],
  ], 20);
  assert.deepEqual(merged, [
    { env: 'dev', rev: 2, chain: '', holders: [[2, 1, '']], lagging: [], laggingTotal: 0 },
    // Two agents at 9 of another history are counted apart from the ten of this one: a fork shows.
    { env: 'prod', rev: 9, chain: 'c9', releasedMs: 500, holders: [[9, 10, 'c9'], [9, 2, 'fork'], [8, 6, 'c8']], lagging: [{ id: 'h1', addr: 'a:1', server: 'A', rev: 8 }], laggingTotal: 6 },
  ]);
});
