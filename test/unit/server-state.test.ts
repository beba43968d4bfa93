import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHAIN_GENESIS, decodeBody, FrameDecoder, MessageType, type Message } from '../../src/protocol/index.js';
import { chainOfStored } from '../../src/server/store/changes.js';
import { Fanout, type AgentLink } from '../../src/server/push/fanout.js';
import { ChainBroken, ServerState, SNAPSHOT_SLICE, type PublishedRelease } from '../../src/server/releases/state.js';
import type { StoredRelease } from '../../src/server/store/types.js';

/** The one release a plain environment's release publishes. */
const publishedBy = (state: ServerState, stored: StoredRelease): PublishedRelease | undefined => state.apply(stored)[0];

const release = (env: string, rev: number, prev: number, changes: [string, string | null, string | null][], op = 'set'): StoredRelease => ({
  env, rev, prev, time: 1, author: 'a', op, changes,
});

function decode(frames: Buffer[]): Message[] {
  const decoder = new FrameDecoder();
  return frames.flatMap((f) => decoder.push(f)).map((b) => decodeBody(b));
}

function stateWith(recentReleases: number): ServerState {
  const state = new ServerState({ recentReleases, recentBytes: 1 << 20 });
  state.load(0, []);
  state.apply(release('prod', 1, 0, [], 'env.add'));
  state.apply(release('prod', 2, 1, [['a', null, '1']]));
  state.apply(release('other', 3, 0, [], 'env.add'));
  state.apply(release('prod', 4, 2, [['a', '1', '2'], ['b', null, '"x"']]));
  return state;
}

test('an agent a few releases behind gets exactly the releases after its revision, in order', () => {
  const state = stateWith(100);
  const need = state.catchUp('prod', 1);
  assert.equal(need.kind, 'releases');
  const messages = decode(need.kind === 'releases' ? need.frames : []);
  assert.deepEqual(messages.map((m) => (m.t === 4 ? [m.rev, m.prev] : [])), [[2, 1], [4, 2]]);
  assert.deepEqual(state.catchUp('prod', 4), { kind: 'current' });
});

test('an agent older than the releases kept in memory, or unknown to them, gets one snapshot', () => {
  const state = stateWith(1);
  const need = state.catchUp('prod', 1);
  assert.equal(need.kind, 'snapshot');
  const [snapshot] = decode(need.kind === 'snapshot' ? [need.frame] : []);
  assert.deepEqual(snapshot, { t: 3, env: 'prod', rev: 4, entries: [['a', '2'], ['b', '"x"']] });
  assert.equal(state.catchUp('prod', 3).kind, 'snapshot', 'a revision that never belonged to prod');
  assert.equal(state.catchUp('prod', 99).kind, 'ahead', 'an agent ahead of everything the server applied waits');
  assert.equal(state.catchUp('prod', 99, true).kind, 'snapshot', 'unless the store says it is ahead of the store itself (store reset)');
  assert.equal(state.catchUp('prod', 0).kind, 'snapshot');
  const again = state.catchUp('prod', 0);
  assert.equal(again.kind === 'snapshot' && need.kind === 'snapshot' && again.frame, need.frame, 'snapshot encoded once per revision');
});

test('a dropped environment is gone; a release already applied is not applied twice', () => {
  const state = stateWith(10);
  assert.deepEqual(state.apply(release('prod', 4, 2, [['a', '1', '2']])), []);
  const dropped = publishedBy(state, { ...release('other', 5, 3, []), op: 'env.del', drop: true });
  assert.equal(dropped?.message.drop, true);
  assert.deepEqual(state.catchUp('other', 3), { kind: 'gone' });
  assert.deepEqual(state.names(), ['prod']);
});

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const revs = (frames: Buffer[]): number[] => decode(frames).map((m) => (m.t === 4 ? m.rev : -1));

/** A link whose socket never sends anything on unless told: `writableLength` is what it holds. */
class Link implements AgentLink {
  readonly frames: Buffer[] = [];
  failed?: string;
  writableLength = 0;
  bytesWritten = 0;
  readonly since = 0;
  constructor(readonly id: string, readonly addr = 'mem', readonly holds = false) {}
  write(frame: Buffer): void {
    this.frames.push(frame);
    this.bytesWritten += frame.length;
    if (this.holds) this.writableLength += frame.length;
  }
  /** The peer read `bytes`. */
  drain(bytes: number): void {
    this.writableLength = Math.max(0, this.writableLength - bytes);
  }
  fail(_status: number, message: string): void {
    this.failed = message;
  }
}

test('the fan-out writes the same frame to every subscriber and cuts off a slow one', () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { agentBufferBytes: 1000, absentEnvsPerAgent: 16 });
  const fast = new Link('fast');
  const slow = new Link('slow');
  const all = new Link('all');
  const elsewhere = new Link('elsewhere');
  fanout.subscribe(fast, false, [{ env: 'prod', rev: 4 }]);
  fanout.subscribe(slow, false, [{ env: 'prod', rev: 4 }]);
  fanout.subscribe(all, true, [{ env: 'prod', rev: 4 }, { env: 'other', rev: 3 }]);
  fanout.subscribe(elsewhere, false, [{ env: 'other', rev: 3 }]);
  assert.equal(fast.frames.length + all.frames.length + elsewhere.frames.length, 0, 'current agents get nothing on subscribe');
  slow.bytesWritten += 5000; // 5000 bytes written since its catch-up, none of them read
  slow.writableLength = 5000;
  const published = publishedBy(state, release('prod', 6, 4, [['a', '2', '3']]))!;
  fanout.publish(published);
  assert.equal(fast.frames.length, 0, 'queued until the end of this turn of the event loop');
  fanout.flush();
  assert.equal(fast.frames[0], published.frame, 'the very same Buffer');
  assert.equal(all.frames[0], published.frame);
  assert.equal(elsewhere.frames.length, 0);
  assert.equal(slow.frames.length, 0);
  assert.match(slow.failed ?? '', /more than 1000 bytes waiting/);
  assert.equal(fanout.slowDisconnects, 1);
});

test('releases published in one turn go out to agents as one release with the final values; watching admins get each one', () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16 });
  const link = new Link('a');
  const watcher = new Link('admin');
  fanout.subscribe(link, false, [{ env: 'prod', rev: 4 }]);
  fanout.watch(watcher, 'prod');
  for (let rev = 5; rev <= 8; rev++) fanout.publish(publishedBy(state, release('prod', rev, rev - 1, [['a', null, String(rev)], [`k${rev % 2}`, null, rev === 8 ? null : 'x']]))!);
  fanout.flush();
  assert.equal(link.frames.length, 1, 'one write');
  const [merged] = decode(link.frames);
  assert.deepEqual(merged, { t: 4, env: 'prod', rev: 8, prev: 4, time: 1, author: 'a', op: 'batch', changes: [['a', '8'], ['k1', 'x'], ['k0', null]] });
  assert.deepEqual(revs(watcher.frames), [5, 6, 7, 8]);
  // A drop among them: sent as they were.
  const other = new Link('o');
  fanout.subscribe(other, false, [{ env: 'other', rev: 3 }]);
  fanout.publish(publishedBy(state, release('other', 9, 3, [['x', null, '1']]))!);
  fanout.publish(publishedBy(state, { ...release('other', 10, 9, []), op: 'env.del', drop: true })!);
  fanout.flush();
  assert.deepEqual(decode(other.frames).map((m) => (m.t === 4 ? [m.rev, m.drop === true] : [])), [[9, false], [10, true]]);
});

test('an agent following all environments gets new ones as they are created', () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16 });
  const link = new Link('all');
  fanout.subscribe(link, true, []);
  const initial = decode(link.frames).map((m) => (m.t === 4 || m.t === 3 ? `${m.t === 3 ? 'snapshot' : 'release'} ${m.env}@${m.rev}` : ''));
  assert.deepEqual(initial, ['release other@3', 'release prod@1', 'release prod@2', 'release prod@4']);
  link.frames.length = 0;
  fanout.publish(publishedBy(state, release('new', 7, 0, [], 'env.add'))!);
  fanout.flush();
  assert.deepEqual(decode(link.frames).map((m) => (m.t === 4 ? m.env : '')), ['new']);
});

test('an agent following an environment by name gets it again after it is deleted and created again', () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16 });
  const named = new Link('named');
  fanout.subscribe(named, false, [{ env: 'other', rev: 3 }]);
  fanout.publish(publishedBy(state, { ...release('other', 5, 3, []), op: 'env.del', drop: true })!);
  fanout.flush();
  fanout.publish(publishedBy(state, release('other', 6, 0, [], 'env.add'))!);
  fanout.flush();
  fanout.publish(publishedBy(state, release('other', 7, 6, [['k', null, '"again"']]))!);
  fanout.flush();
  const seen = decode(named.frames).map((m) => (m.t === 4 ? `${m.op}@${m.rev}${m.drop === true ? ' drop' : ''}` : ''));
  assert.deepEqual(seen, ['env.del@5 drop', 'env.add@6', 'set@7']);
  assert.deepEqual(fanout.agents(undefined, 10)[0].envs, [{ env: 'other', rev: 0 }], 'followed still, nothing acknowledged of the new one yet');
});

test('a snapshot larger than the buffer limit, followed by a release, does not cut the agent off; what piles up behind it does', () => {
  const state = stateWith(1);
  const fanout = new Fanout(state, { agentBufferBytes: 200, absentEnvsPerAgent: 16 });
  const big = Array.from({ length: 50 }, (_, i): [string, string | null, string | null] => [`key${i}`, null, `"${'v'.repeat(20)}"`]);
  fanout.publish(publishedBy(state, release('prod', 5, 4, big))!);
  fanout.flush();
  const joiner = new Link('joiner', 'mem', true);
  fanout.subscribe(joiner, false, [{ env: 'prod', rev: 0 }]);
  const snapshotBytes = joiner.writableLength;
  assert.ok(snapshotBytes > 1200, `the snapshot (${snapshotBytes} bytes) is far above the limit`);
  // Releases keep coming while the agent reads its snapshot slowly.
  for (let rev = 6; rev <= 8; rev++) {
    fanout.publish(publishedBy(state, release('prod', rev, rev - 1, [['a', null, String(rev)]]))!);
    fanout.flush();
    joiner.drain(snapshotBytes / 4);
  }
  assert.equal(joiner.failed, undefined, 'the catch-up it was sent does not count against it');
  assert.deepEqual(decode(joiner.frames).map((m) => `${m.t === 3 ? 'snapshot' : 'release'} ${'rev' in m ? m.rev : ''}`), ['snapshot 5', 'release 6', 'release 7', 'release 8']);
  // An agent that stops reading altogether is cut off once more than the limit waits behind the catch-up.
  for (let rev = 9; rev <= 30 && joiner.failed === undefined; rev++) {
    fanout.publish(publishedBy(state, release('prod', rev, rev - 1, [['a', null, `"${'x'.repeat(30)}"`]]))!);
    fanout.flush();
  }
  assert.match(joiner.failed ?? '', /more than 200 bytes waiting/);
});

test('a subscribe while the last catch-up is still unread beyond the limit is a slow consumer', () => {
  const state = stateWith(1);
  const fanout = new Fanout(state, { agentBufferBytes: 10, absentEnvsPerAgent: 16 });
  const link = new Link('repeat', 'mem', true);
  fanout.subscribe(link, false, [{ env: 'prod', rev: 0 }]);
  assert.equal(link.failed, undefined);
  fanout.subscribe(link, false, [{ env: 'prod', rev: 0 }]);
  assert.match(link.failed ?? '', /waiting to be read/);
});

test('acknowledgements for environments an agent does not follow are not kept', () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16 });
  const all = new Link('all');
  const named = new Link('named');
  fanout.subscribe(all, true, []);
  fanout.subscribe(named, false, [{ env: 'prod', rev: 4 }]);
  for (let i = 0; i < 1000; i++) {
    fanout.ack(all, `nope${i}`, i);
    fanout.ack(named, `nope${i}`, i);
  }
  fanout.ack(all, 'prod', 4);
  fanout.ack(named, 'prod', 4);
  const [a, n] = fanout.agents(undefined, 10);
  assert.deepEqual(a.envs.map((e) => e.env).sort(), ['other', 'prod']);
  assert.deepEqual(n.envs, [{ env: 'prod', rev: 4 }]);
});

test('source addresses are counted by IPv4 address, or by IPv6 /64', async () => {
  const { sourceKey } = await import('../../src/server/edge/source.js');
  assert.equal(sourceKey('10.1.2.3'), '10.1.2.3');
  assert.equal(sourceKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(sourceKey('2001:db8:aa:bb:1:2:3:4'), '2001:db8:aa:bb::/64');
  assert.equal(sourceKey('2001:db8:aa:bb::99'), '2001:db8:aa:bb::/64');
  assert.equal(sourceKey('2001:0DB8:00aa:bb::1'), '2001:db8:aa:bb::/64');
  assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.notEqual(sourceKey('2001:db8:aa:bb::1'), sourceKey('2001:db8:aa:bc::1'));
});


test('a fan-out is written a slice at a time: the event loop runs between slices', async () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16, slice: 2 });
  const links = Array.from({ length: 5 }, (_, i) => new Link(`a${i}`));
  for (const link of links) fanout.subscribe(link, false, [{ env: 'prod', rev: 4 }]);
  fanout.publish(publishedBy(state, release('prod', 5, 4, [['a', '2', '3']]))!);
  let ranBetween = false;
  setImmediate(() => (ranBetween = links.some((l) => l.frames.length === 0)));
  await turn();
  assert.deepEqual(links.map((l) => l.frames.length), [1, 1, 0, 0, 0], 'one slice of two sockets');
  assert.equal(fanout.busy, true);
  await turn();
  await turn();
  assert.equal(ranBetween, true, 'other work ran before the fan-out ended');
  assert.deepEqual(links.map((l) => revs(l.frames)), [[5], [5], [5], [5], [5]]);
  assert.equal(fanout.busy, false);
});

test('releases published during a pass go out joined in the next one, after it, in order', async () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16, slice: 2 });
  const links = Array.from({ length: 4 }, (_, i) => new Link(`a${i}`));
  for (const link of links) fanout.subscribe(link, false, [{ env: 'prod', rev: 4 }]);
  fanout.publish(publishedBy(state, release('prod', 5, 4, [['a', '2', '3']]))!);
  await turn();
  // Half the agents have revision 5; three more releases are committed before the pass ends.
  for (let rev = 6; rev <= 8; rev++) fanout.publish(publishedBy(state, release('prod', rev, rev - 1, [['a', null, String(rev)]]))!);
  while (fanout.busy) await turn();
  for (const link of links) {
    const got = decode(link.frames).map((m) => (m.t === 4 ? [m.prev, m.rev] : []));
    assert.deepEqual(got, [[4, 5], [5, 8]], `${link.id}: the first release, then the three after it as one`);
  }
});

test('an agent that subscribes during a pass gets its catch-up once, and one gone is not written', async () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16, slice: 1 });
  const first = new Link('first');
  const leaving = new Link('leaving');
  const third = new Link('third');
  for (const link of [first, leaving, third]) fanout.subscribe(link, false, [{ env: 'prod', rev: 4 }]);
  fanout.publish(publishedBy(state, release('prod', 5, 4, [['a', '2', '3']]))!);
  await turn();
  fanout.unsubscribe(leaving);
  const late = new Link('late');
  fanout.subscribe(late, false, [{ env: 'prod', rev: 4 }]);
  fanout.publish(publishedBy(state, release('prod', 6, 5, [['a', '3', '4']]))!);
  const again = new Link('again');
  fanout.subscribe(again, false, [{ env: 'prod', rev: 4 }]);
  while (fanout.busy) await turn();
  assert.deepEqual(revs(first.frames), [5, 6]);
  assert.deepEqual(revs(third.frames), [5, 6]);
  assert.deepEqual(revs(leaving.frames), []);
  assert.deepEqual(revs(late.frames), [5, 6], 'its catch-up (5), then the release published after it subscribed (6)');
  assert.deepEqual(revs(again.frames), [5, 6], 'its catch-up had both: nothing written twice');
});

/** What an agent holding `from` would hold after applying `frames` in order (a gap throws); keys counts the values set. */
function applied(frames: Buffer[], from = -1): { rev: number; keys: number } {
  let rev = from;
  let keys = 0;
  for (const m of decode(frames)) {
    if (m.t === MessageType.Snapshot) {
      rev = m.rev;
      keys = m.entries.length;
    } else if (m.t === MessageType.Release) {
      if (m.rev <= rev) continue;
      assert.equal(m.prev, rev, `release ${m.rev} follows ${m.prev}, the agent holds ${rev}`);
      rev = m.rev;
      keys += m.changes.filter(([, v]) => v !== null).length;
    }
  }
  return { rev, keys };
}

test('a large snapshot is built a slice at a time; an agent waiting for it gets it, then every release since, with no gap', async () => {
  // One release kept in memory: an agent at revision 0 needs the snapshot.
  const state = new ServerState({ recentReleases: 1, recentBytes: 1 << 26 });
  state.load(0, []);
  state.apply(release('big', 1, 0, [], 'env.add'));
  const keys = 3 * SNAPSHOT_SLICE + 5;
  state.apply(release('big', 2, 1, Array.from({ length: keys }, (_, i) => [`k${i}`, null, String(i)] as [string, null, string])));
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 26, absentEnvsPerAgent: 16 });
  const first = new Link('first');
  fanout.subscribe(first, false, [{ env: 'big', rev: 0 }]);
  assert.equal(first.frames.length, 0, 'not built in the subscribe');
  fanout.publish(publishedBy(state, release('big', 3, 2, [['new1', null, '1']]))!);
  await turn();
  const second = new Link('second');
  fanout.subscribe(second, false, [{ env: 'big', rev: 0 }]);
  fanout.publish(publishedBy(state, release('big', 4, 3, [['new2', null, '2']]))!);
  for (let i = 0; i < 50 && (fanout.busy || first.frames.length === 0 || second.frames.length === 0); i++) await turn();
  for (let i = 0; i < 10; i++) await turn();
  assert.deepEqual(applied(first.frames), { rev: 4, keys: keys + 2 });
  assert.deepEqual(applied(second.frames), { rev: 4, keys: keys + 2 });
  assert.equal(decode(first.frames)[0].t, MessageType.Snapshot, 'the snapshot first');
  // Built once per revision, then kept: the next one to join at revision 4 gets it at once.
  const built = state.catchUp('big', 0);
  assert.equal(built.kind, 'snapshot');
  const [snapshot] = decode(built.kind === 'snapshot' ? [built.frame] : []);
  assert.ok(snapshot?.t === MessageType.Snapshot && snapshot.rev === 4 && snapshot.entries.length === keys + 2);
});

test('an agent that subscribed between releases later joined gets them one by one: the batch would not follow what it holds', () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16 });
  const early = new Link('early');
  fanout.subscribe(early, false, [{ env: 'prod', rev: 4 }]);
  fanout.publish(publishedBy(state, release('prod', 5, 4, [['a', '2', '5']]))!);
  fanout.publish(publishedBy(state, release('other', 6, 3, [['o', null, '1']]))!);
  // Its catch-up has 5; 7 and 8 are published after it.
  const middle = new Link('middle');
  fanout.subscribe(middle, false, [{ env: 'prod', rev: 4 }]);
  fanout.publish(publishedBy(state, release('prod', 7, 5, [['a', '5', '7']]))!);
  fanout.publish(publishedBy(state, release('prod', 8, 7, [['a', '7', '8']]))!);
  fanout.flush();
  assert.deepEqual(decode(early.frames).map((m) => (m.t === 4 ? [m.prev, m.rev, m.op] : [])), [[4, 8, 'batch']]);
  assert.deepEqual(applied(middle.frames, 4), { rev: 8, keys: 3 }, 'its catch-up (5), then 7 and 8 as they were: no gap');
});

test('the chain: a release that does not follow what the server holds is ChainBroken and changes nothing; agents of another history get a snapshot', () => {
  const state = new ServerState({ recentReleases: 10, recentBytes: 1 << 20 });
  const chained = (rev: number, prev: number, previous: string, changes: StoredRelease['changes'], op = 'set'): StoredRelease => {
    const r: StoredRelease = { env: 'c', rev, prev, time: rev, author: 'a', op, changes };
    r.chain = chainOfStored(previous, r);
    return r;
  };
  const created = chained(1, 0, CHAIN_GENESIS, [], 'env.add');
  const one = chained(2, 1, created.chain!, [['k', null, '1']]);
  state.apply(created);
  const published = publishedBy(state, one)!;
  assert.equal(published.message.chain, one.chain);
  assert.equal(published.message.pchain, created.chain);
  assert.equal(state.chain('c'), one.chain);

  // Another history's revision 3: it follows a chain value this server never had.
  const foreign = chained(3, 2, '0123456789abcdef', [['k', null, '"copy"']]);
  assert.throws(() => state.apply(foreign), (err: unknown) => err instanceof ChainBroken && err.env === 'c' && err.rev === 3 && err.got === foreign.chain);
  // A release whose content was altered on the way does not match its own chain value.
  const altered = { ...chained(3, 2, one.chain!, [['k', null, '2']]), changes: [['k', null, '666']] as StoredRelease['changes'] };
  assert.throws(() => state.apply(altered), ChainBroken);
  assert.equal(state.rev('c'), 2);
  assert.equal(state.values('c')!.get('k'), '1', 'nothing of either was applied');

  // An agent holding revision 1 of this history gets the release; one holding revision 1 of another gets a snapshot.
  assert.equal(state.catchUp('c', 1, false, created.chain).kind, 'releases');
  assert.equal(state.catchUp('c', 1, false, 'ffffffffffffffff').kind, 'snapshot');
  assert.equal(state.catchUp('c', 2, false, one.chain).kind, 'current');
  const healed = state.catchUp('c', 2, false, 'ffffffffffffffff');
  assert.equal(healed.kind, 'snapshot');
  const snapshot = decode([(healed as { frame: Buffer }).frame])[0];
  assert.ok(snapshot.t === MessageType.Snapshot && snapshot.chain === one.chain && snapshot.rev === 2);
  // Without a chain (an agent older than chains) nothing changes.
  assert.equal(state.catchUp('c', 1).kind, 'releases');
});
